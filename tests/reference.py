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
