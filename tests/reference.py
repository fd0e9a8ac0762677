"""A slow, plainly written NumPy oracle for every fastconv op.

Everything here is computed in float64 straight from the definitions, with
explicit loops over kernel taps (convolution) or output positions (pooling),
so that it can be read and checked by eye.  It never calls fastconv, and the
output size is computed here from the formula ``(W - F + 2P) // S + 1``
(floored, as ``strict=False`` does) rather than taken from fastconv._shapes.

Layouts follow fastconv: activations (N, C, H, W), conv weights
(K, C, FH, FW), linear weights (out_features, in_features).
"""

import numpy as np


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def out_len(size, kernel, stride, padding):
    """The output-size formula, floored; the oracle's own copy."""
    span = size - kernel + 2 * padding
    if span < 0:
        raise ValueError(f"kernel {kernel} larger than padded input {size + 2 * padding}")
    return span // stride + 1


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _pad(x, ph, pw, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _tap(xp, p, q, sh, sw, h2, w2):
    """The input values that tap (p, q) of the kernel meets at every output
    pixel: out[i, j] sees xp[i*sh + p, j*sw + q]."""
    return xp[:, :, p:p + sh * (h2 - 1) + 1:sh, q:q + sw * (w2 - 1) + 1:sw]


# --------------------------------------------------------------------- conv

def conv2d(x, w, b=None, stride=1, padding=0, activation=None):
    """y[n, k, i, j] = b[k] + sum_{c,p,q} xpad[n, c, i*SH + p, j*SW + q] * w[k, c, p, q]"""
    x, w = _f64(x), _f64(w)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    k, c2, fh, fw = w.shape
    assert c == c2
    h2, w2 = out_len(h, fh, sh, ph), out_len(wd, fw, sw, pw)
    xp = _pad(x, ph, pw)
    y = np.zeros((n, k, h2, w2))
    for p in range(fh):
        for q in range(fw):
            y += np.einsum("nchw,kc->nkhw", _tap(xp, p, q, sh, sw, h2, w2), w[:, :, p, q])
    if b is not None:
        y += _f64(b)[None, :, None, None]
    if activation == "relu":
        y = relu(y)
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0):
    """(dx, dw, db) of L = sum(dy * conv2d(x, w, b)); every tap scatters back."""
    dy, x, w = _f64(dy), _f64(x), _f64(w)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    k, _, fh, fw = w.shape
    h2, w2 = out_len(h, fh, sh, ph), out_len(wd, fw, sw, pw)
    assert dy.shape == (n, k, h2, w2), (dy.shape, (n, k, h2, w2))
    xp = _pad(x, ph, pw)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for p in range(fh):
        for q in range(fw):
            dw[:, :, p, q] = np.einsum("nkhw,nchw->kc", dy, _tap(xp, p, q, sh, sw, h2, w2))
            # Within one tap distinct outputs hit distinct inputs, so += on the
            # strided view adds each contribution exactly once.
            _tap(dxp, p, q, sh, sw, h2, w2)[...] += np.einsum("nkhw,kc->nchw", dy, w[:, :, p, q])
    dx = dxp[:, :, ph:ph + h, pw:pw + wd]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


# ------------------------------------------------------------------ pooling

def _pool_geom(x_shape, kernel_size, stride, padding):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    _, _, h, w = x_shape
    return kh, kw, sh, sw, ph, pw, out_len(h, kh, sh, ph), out_len(w, kw, sw, pw)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over each window of the -inf-padded input; NaN in a window gives NaN."""
    x = _f64(x)
    kh, kw, sh, sw, ph, pw, h2, w2 = _pool_geom(x.shape, kernel_size, stride, padding)
    xp = _pad(x, ph, pw, value=-np.inf)
    n, c = x.shape[:2]
    y = np.empty((n, c, h2, w2))
    for i in range(h2):
        for j in range(w2):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, c, -1)
            y[:, :, i, j] = np.where(np.isnan(win).any(axis=-1), np.nan, win.max(axis=-1))
    return y


def max_pool2d_indices(x, kernel_size, stride=None, padding=0):
    """The offset h*W + w within its (H, W) plane of each window's first
    maximum in row-major order (the first NaN in a window holding NaN),
    over the window's real (non-padding) cells."""
    x = _f64(x)
    kh, kw, sh, sw, ph, pw, h2, w2 = _pool_geom(x.shape, kernel_size, stride, padding)
    n, c, h, w = x.shape
    idx = np.empty((n, c, h2, w2), np.int64)
    for i in range(h2):
        r0, r1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
        for j in range(w2):
            c0, c1 = max(j * sw - pw, 0), min(j * sw - pw + kw, w)
            first = np.argmax(x[:, :, r0:r1, c0:c1].reshape(n, c, -1), axis=-1)
            idx[:, :, i, j] = (r0 + first // (c1 - c0)) * w + c0 + first % (c1 - c0)
    return idx


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0):
    """Each window's gradient goes to its first maximum in row-major order
    (max_pool2d_indices: never to padding), added window by window in
    row-major order.

    (np.argmax returns the first occurrence of the maximum; in a window holding
    NaN it picks the first NaN in row-major order; PyTorch picks the last.)
    """
    dy, x = _f64(dy), _f64(x)
    idx = max_pool2d_indices(x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    assert dy.shape == idx.shape
    dxf = np.zeros((n * c, h * w))
    idxf, dyf = idx.reshape(n * c, -1), dy.reshape(n * c, -1)
    planes = np.arange(n * c)
    for j in range(idxf.shape[1]):
        # one window per plane: no repeated index within this fancy-indexed add
        dxf[planes, idxf[:, j]] += dyf[:, j]
    return dxf.reshape(x.shape)


def _avg_counts(h, w, kh, kw, sh, sw, ph, pw, h2, w2, count_include_pad):
    """The divisor of every output position."""
    if count_include_pad:
        return np.full((h2, w2), float(kh * kw))
    inside = _pad(np.ones((1, 1, h, w)), ph, pw)[0, 0]
    cnt = np.empty((h2, w2))
    for i in range(h2):
        for j in range(w2):
            cnt[i, j] = inside[i * sh:i * sh + kh, j * sw:j * sw + kw].sum()
    return cnt


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over each window of the zero-padded input; with
    count_include_pad=False the padding is left out of the divisor."""
    x = _f64(x)
    kh, kw, sh, sw, ph, pw, h2, w2 = _pool_geom(x.shape, kernel_size, stride, padding)
    n, c, h, w = x.shape
    cnt = _avg_counts(h, w, kh, kw, sh, sw, ph, pw, h2, w2, count_include_pad)
    xp = _pad(x, ph, pw)
    y = np.empty((n, c, h2, w2))
    for i in range(h2):
        for j in range(w2):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            y[:, :, i, j] = win.sum(axis=(2, 3)) / cnt[i, j]
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, count_include_pad=True):
    dy = _f64(dy)
    kh, kw, sh, sw, ph, pw, h2, w2 = _pool_geom(x_shape, kernel_size, stride, padding)
    n, c, h, w = x_shape
    assert dy.shape == (n, c, h2, w2)
    cnt = _avg_counts(h, w, kh, kw, sh, sw, ph, pw, h2, w2, count_include_pad)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    for i in range(h2):
        for j in range(w2):
            share = dy[:, :, i, j] / cnt[i, j]
            dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += share[:, :, None, None]
    return dxp[:, :, ph:ph + h, pw:pw + w]


# ------------------------------------------------------------ linear, relu

def linear(x, w, b=None, activation=None):
    """y[n, o] = b[o] + sum_d x[n, d] * w[o, d], with x flattened to (N, D)."""
    x, w = _f64(x), _f64(w)
    x2 = x.reshape(x.shape[0], -1)
    y = np.einsum("nd,od->no", x2, w)
    if b is not None:
        y += _f64(b)[None, :]
    if activation == "relu":
        y = relu(y)
    return y


def linear_backward(dy, x, w):
    dy, x, w = _f64(dy), _f64(x), _f64(w)
    x2 = x.reshape(x.shape[0], -1)
    dx = np.einsum("no,od->nd", dy, w).reshape(x.shape)
    dw = np.einsum("no,nd->od", dy, x2)
    db = dy.sum(axis=0)
    return dx, dw, db


def relu(x):
    """max(x, 0); NaN stays NaN."""
    return np.maximum(_f64(x), 0.0)


def relu_backward(dy, x):
    """The gradient passes where x > 0 (zero at x == 0, as in PyTorch)."""
    return np.where(_f64(x) > 0, _f64(dy), 0.0)


# ------------------------------------------- pooling options, LP, adaptive

def pool_len(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Output length with dilation and PyTorch's ceil_mode; the oracle's own
    copy: floor (or ceil) of (size + 2P - D*(F - 1) - 1)/S, plus one, and
    with ceil_mode a last window starting past the input and its left
    padding is dropped."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        n = int(np.ceil(span / stride)) + 1
        if (n - 1) * stride >= size + padding:
            n -= 1
    else:
        n = span // stride + 1 if span >= 0 else 0
    if n < 1:
        raise ValueError("empty output")
    return n


def _axis_windows(size, kernel, stride, padding, dilation, ceil_mode):
    """Per output index: (the input positions of its taps that lie in the
    input, how many of its taps lie in the padded input, its first tap's
    position moved into the input by whole dilation steps)."""
    out = []
    for i in range(pool_len(size, kernel, stride, padding, dilation, ceil_mode)):
        taps = [i * stride - padding + t * dilation for t in range(kernel)]
        first = taps[0]
        while first < 0:
            first += dilation
        out.append(([t for t in taps if 0 <= t < size],
                    sum(1 for t in taps if -padding <= t < size + padding), first))
    return out


def _windows2d(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    _, _, h, w = x_shape
    return (_axis_windows(h, kh, sh, ph, dh, ceil_mode),
            _axis_windows(w, kw, sw, pw, dw, ceil_mode))


def max_pool2d_ex(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(y, indices) of max pooling with dilation and ceil_mode: the first
    maximum (first NaN) among each window's taps inside the input, in
    row-major order; a window with no tap inside gives -inf and PyTorch's
    index, the offset of its first row and column moved into the input."""
    x = _f64(x)
    n, c, h, w = x.shape
    rows, cols = _windows2d(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.empty((n, c, len(rows), len(cols)))
    idx = np.empty(y.shape, np.int64)
    for i, (rt, _, r0) in enumerate(rows):
        for j, (ct, _, c0) in enumerate(cols):
            offs = [r * w + q for r in rt for q in ct]
            if not offs:
                y[:, :, i, j] = -np.inf
                idx[:, :, i, j] = r0 * w + c0
                continue
            vals = x.reshape(n, c, h * w)[:, :, offs]
            first = np.argmax(vals, axis=-1)   # first maximum, or first NaN
            idx[:, :, i, j] = np.asarray(offs)[first]
            y[:, :, i, j] = np.take_along_axis(vals, first[..., None], -1)[..., 0]
    return y, idx


def scatter_indices(dy, idx, x_shape):
    """dx starting at 0, each dy added at its index within its plane, in
    row-major order of the windows (indices outside the plane skipped)."""
    n, c, h, w = x_shape
    dxf = np.zeros((n * c, h * w))
    dyf, idxf = _f64(dy).reshape(n * c, -1), idx.reshape(n * c, -1)
    for p in range(n * c):
        for j in range(idxf.shape[1]):
            if 0 <= idxf[p, j] < h * w:
                dxf[p, idxf[p, j]] += dyf[p, j]
    return dxf.reshape(x_shape)


def max_pool2d_ex_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1,
                           ceil_mode=False):
    _, idx = max_pool2d_ex(x, kernel_size, stride, padding, dilation, ceil_mode)
    return scatter_indices(dy, idx, np.shape(x))


def _avg_divisors(x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override):
    rows, cols = _windows2d(x_shape, kernel_size, stride, padding, 1, ceil_mode)
    div = np.empty((len(rows), len(cols)))
    for i, (rt, rp, _) in enumerate(rows):
        for j, (ct, cp, _) in enumerate(cols):
            if divisor_override:
                div[i, j] = divisor_override
            elif count_include_pad:
                div[i, j] = rp * cp
            else:
                div[i, j] = len(rt) * len(ct)
    return rows, cols, div


def avg_pool2d_ex(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None):
    """Sum of each window's taps inside the input over its divisor: the
    override, or the taps inside the padded input (count_include_pad), or
    those inside the input."""
    x = _f64(x)
    rows, cols, div = _avg_divisors(x.shape, kernel_size, stride, padding, ceil_mode,
                                    count_include_pad, divisor_override)
    n, c = x.shape[:2]
    y = np.empty((n, c, len(rows), len(cols)))
    for i, (rt, _, _) in enumerate(rows):
        for j, (ct, _, _) in enumerate(cols):
            y[:, :, i, j] = x[:, :, rt][:, :, :, ct].sum(axis=(2, 3)) / div[i, j]
    return y


def avg_pool2d_ex_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                           count_include_pad=True, divisor_override=None):
    dy = _f64(dy)
    rows, cols, div = _avg_divisors(x_shape, kernel_size, stride, padding, ceil_mode,
                                    count_include_pad, divisor_override)
    dx = np.zeros(x_shape)
    for i, (rt, _, _) in enumerate(rows):
        for j, (ct, _, _) in enumerate(cols):
            for r in rt:
                for q in ct:
                    dx[:, :, r, q] += dy[:, :, i, j] / div[i, j]
    return dx


def lp_pool2d(x, p, kernel_size, stride=None, ceil_mode=False):
    """PyTorch's LP pooling: the mean of x**p over each window's taps inside
    the input, times the window's size F_h*F_w, to the power 1/p (sign kept
    for a negative mean); p = inf is the max of |x|."""
    x = _f64(x)
    kh, kw = _pair(kernel_size)
    if np.isinf(p):
        y, _ = max_pool2d_ex(np.abs(x) if p > 0 else -np.abs(x), kernel_size, stride, 0, 1,
                             ceil_mode)
        return y if p > 0 else -y
    with np.errstate(all="ignore"):
        t = avg_pool2d_ex(x ** p, kernel_size, stride, 0, ceil_mode, False)
        return (np.sign(t) * np.abs(t) * (kh * kw)) ** (1.0 / p)


def lp_pool2d_backward(dy, x, p, kernel_size, stride=None, ceil_mode=False):
    """Window by window: with t the window's mean of x**p over its c taps
    inside the input and s = t*F_h*F_w, each tap gets
    dy * s**(1/p - 1) * (F_h*F_w / c) * x**(p - 1); nothing where t = 0."""
    dy, x = _f64(dy), _f64(x)
    kh, kw = _pair(kernel_size)
    if np.isinf(p):
        z = np.abs(x) if p > 0 else -np.abs(x)
        return max_pool2d_ex_backward(dy, z, kernel_size, stride, 0, 1, ceil_mode) * np.sign(x)
    rows, cols = _windows2d(x.shape, kernel_size, stride, 0, 1, ceil_mode)
    dx = np.zeros(x.shape)
    with np.errstate(all="ignore"):
        for i, (rt, _, _) in enumerate(rows):
            for j, (ct, _, _) in enumerate(cols):
                win = x[:, :, rt][:, :, :, ct]
                cnt = len(rt) * len(ct)
                t = (win ** p).sum(axis=(2, 3)) / cnt
                s = t * (kh * kw)
                g = np.where(t != 0, dy[:, :, i, j] * s ** (1.0 / p - 1.0) * (kh * kw) / cnt, 0)
                for a, r in enumerate(rt):
                    for b, q in enumerate(ct):
                        dx[:, :, r, q] += g * win[:, :, a, b] ** (p - 1)
    return dx


def _adaptive_axis(size, out):
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_pool2d(x, out_hw, op):
    """op "avg" or "max": window i along an axis of n inputs and m outputs
    covers [floor(i*n/m), ceil((i+1)*n/m)).  Returns y, and for max the
    indices too (first maximum, row-major)."""
    x = _f64(x)
    n, c, h, w = x.shape
    oh, ow = out_hw
    y = np.empty((n, c, oh, ow))
    idx = np.empty(y.shape, np.int64)
    for i, (r0, r1) in enumerate(_adaptive_axis(h, oh)):
        for j, (c0, c1) in enumerate(_adaptive_axis(w, ow)):
            win = x[:, :, r0:r1, c0:c1].reshape(n, c, -1)
            if op == "avg":
                y[:, :, i, j] = win.mean(axis=-1)
            else:
                first = np.argmax(win, axis=-1)
                y[:, :, i, j] = np.take_along_axis(win, first[..., None], -1)[..., 0]
                idx[:, :, i, j] = (r0 + first // (c1 - c0)) * w + c0 + first % (c1 - c0)
    return (y, idx) if op == "max" else y


def adaptive_avg_pool2d_backward(dy, x_shape, out_hw):
    dy = _f64(dy)
    dx = np.zeros(x_shape)
    _, _, h, w = x_shape
    for i, (r0, r1) in enumerate(_adaptive_axis(h, out_hw[0])):
        for j, (c0, c1) in enumerate(_adaptive_axis(w, out_hw[1])):
            dx[:, :, r0:r1, c0:c1] += (dy[:, :, i, j] / ((r1 - r0) * (c1 - c0)))[:, :, None, None]
    return dx


def adaptive_max_pool2d_backward(dy, x, out_hw):
    _, idx = adaptive_pool2d(x, out_hw, "max")
    return scatter_indices(dy, idx, np.shape(x))


def max_unpool2d(x, indices, out_hw):
    """Zeros of (N, C) + out_hw, each x written at its index in its plane, in
    row-major order."""
    x = _f64(x)
    n, c, h, w = x.shape
    y = np.zeros((n, c, out_hw[0] * out_hw[1]))
    for a in range(n):
        for b in range(c):
            for k, e in enumerate(indices[a, b].reshape(-1)):
                y[a, b, e] = x[a, b].reshape(-1)[k]
    return y.reshape(n, c, *out_hw)


# --------------------------------------------------------------------- 1-D

def conv1d(x, w, b=None, stride=1, pad=(0, 0), dilation=1, groups=1):
    """y[n, k, i] = b[k] + sum over c in k's group and f of
    x_padded[n, c, i*stride + f*dilation] * w[k, c, f]; pad = (left, right)."""
    x, w = _f64(x), _f64(w)
    n, c, length = x.shape
    k, cg, f = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pad))
    l2 = (length + pad[0] + pad[1] - dilation * (f - 1) - 1) // stride + 1
    y = np.zeros((n, k, l2))
    kg = k // groups
    for kk in range(k):
        g = kk // kg
        for cc in range(cg):
            for ff in range(f):
                taps = xp[:, g * cg + cc, ff * dilation:ff * dilation + stride * (l2 - 1) + 1:stride]
                y[:, kk] += taps * w[kk, cc, ff]
    if b is not None:
        y += _f64(b)[None, :, None]
    return y


def conv1d_backward(dy, x, w, stride=1, pad=(0, 0), dilation=1, groups=1):
    """(dx, dw, db) of conv1d, by the same sums run backwards."""
    dy, x, w = _f64(dy), _f64(x), _f64(w)
    n, c, length = x.shape
    k, cg, f = w.shape
    l2 = dy.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), pad))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    kg = k // groups
    for kk in range(k):
        g = kk // kg
        for cc in range(cg):
            for ff in range(f):
                sl = slice(ff * dilation, ff * dilation + stride * (l2 - 1) + 1, stride)
                dw[kk, cc, ff] = (xp[:, g * cg + cc, sl] * dy[:, kk]).sum()
                dxp[:, g * cg + cc, sl] += dy[:, kk] * w[kk, cc, ff]
    return dxp[:, :, pad[0]:pad[0] + length], dw, dy.sum(axis=(0, 2))


def conv2d_backward_data(dy, w, x_shape, stride=1, padding=((0, 0), (0, 0)), dilation=1,
                         groups=1):
    """dx of L = sum(dy * conv2d(x, w)) for any stride, per-side padding
    ((top, bottom), (left, right)), dilation and groups, dy of any height and
    width the padded input allows (strict=False's floor included): tap (p, q)
    of output (i, j) reads padded input row i*SH + p*DH, column j*SW + q*DW,
    and scatters dy times the weight back there."""
    dy, w = _f64(dy), _f64(w)
    (sh, sw), (dh, dw_) = _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = padding
    n, c, h, wd = x_shape
    k, cg, fh, fw = w.shape
    h2, w2 = dy.shape[2], dy.shape[3]
    kg = k // groups
    dxp = np.zeros((n, c, h + pt + pb + (fh - 1) * dh + sh, wd + pl + pr + (fw - 1) * dw_ + sw))
    for gi in range(groups):
        dyg = dy[:, gi * kg:(gi + 1) * kg]
        wg = w[gi * kg:(gi + 1) * kg]
        for p in range(fh):
            for q in range(fw):
                r0, s0 = p * dh, q * dw_
                dxp[:, gi * cg:(gi + 1) * cg, r0:r0 + (h2 - 1) * sh + 1:sh,
                    s0:s0 + (w2 - 1) * sw + 1:sw] += np.einsum("nkhw,kc->nchw", dyg,
                                                               wg[:, :, p, q])
    return dxp[:, :, pt:pt + h, pl:pl + wd]
