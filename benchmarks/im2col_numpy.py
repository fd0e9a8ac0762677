"""Pure-NumPy baselines: im2col convolution and sliding-window pooling.

This is the fast way to write these layers in plain NumPy (the way a course
assignment's "fast" layers do it): the im2col matrix is built by one strided
copy from an ``as_strided`` view, the reduction is a single BLAS matrix
product, and col2im is one vectorised scatter-add per kernel offset. It is
what fastconv is measured against when a user would otherwise stay in NumPy.

Shapes follow fastconv: x (N, C, H, W), w (K, C, FH, FW), y (N, K, H2, W2).
``stride`` and ``padding`` are (h, w) pairs; output sizes are floored, as in
PyTorch (the benchmark suite only uses exact shapes for convolution).

To keep memory bounded, im2col is done for a slice of the batch at a time,
holding at most about ``COLS_BYTES`` of columns.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["conv2d", "conv2d_backward_data", "conv2d_backward_weight",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]

COLS_BYTES = 64 << 20

# Below this many output pixels per image, one GEMM over the whole batch slice
# (pixels of all images side by side) beats one small GEMM per image, at the
# price of transposing the result.
_FLAT_PIXELS = 256


def _out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _pad(x, ph, pw, value=0.0):
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _windows(xp, fh, fw, sh, sw, h2, w2):
    """View of xp as (N, C, FH, FW, H2, W2): element [n, c, i, j, y, x] is
    xp[n, c, y*sh + i, x*sw + j]."""
    n, c = xp.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(xp, shape=(n, c, fh, fw, h2, w2),
                      strides=(s_n, s_c, s_h, s_w, s_h * sh, s_w * sw),
                      writeable=False)


def _batch_slices(n, per_image_bytes):
    step = max(1, COLS_BYTES // max(1, per_image_bytes))
    for n0 in range(0, n, step):
        yield n0, min(n, n0 + step)


def _is_pointwise(fh, fw, stride, padding):
    return fh == 1 and fw == 1 and stride == (1, 1) and padding == (0, 0)


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0)):
    """Forward convolution through im2col + GEMM."""
    n, c, h, wd = x.shape
    k, _, fh, fw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    h2, w2 = _out(h, fh, sh, ph), _out(wd, fw, sw, pw)
    p = h2 * w2
    cff = c * fh * fw
    wm = w.reshape(k, cff)
    y = np.empty((n, k, p), dtype=np.result_type(x, w))
    if _is_pointwise(fh, fw, stride, padding):
        # The input already is the column matrix of every image.
        np.matmul(wm, x.reshape(n, c, h * wd), out=y)
    else:
        xp = _pad(x, ph, pw)
        win = _windows(xp, fh, fw, sh, sw, h2, w2)
        for n0, n1 in _batch_slices(n, cff * p * x.itemsize):
            if p < _FLAT_PIXELS:
                cols = np.ascontiguousarray(win[n0:n1].transpose(1, 2, 3, 0, 4, 5))
                out = wm @ cols.reshape(cff, (n1 - n0) * p)
                y[n0:n1] = out.reshape(k, n1 - n0, p).transpose(1, 0, 2)
            else:
                cols = np.ascontiguousarray(win[n0:n1]).reshape(n1 - n0, cff, p)
                np.matmul(wm, cols, out=y[n0:n1])
    if b is not None:
        y += b.reshape(1, k, 1)
    return y.reshape(n, k, h2, w2)


def conv2d_backward_data(dy, w, x_shape, stride=(1, 1), padding=(0, 0)):
    """dL/dx: GEMM with the transposed weights into columns, then col2im."""
    n, c, h, wd = x_shape
    k, _, fh, fw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    h2, w2 = dy.shape[2:]
    p = h2 * w2
    cff = c * fh * fw
    wt = w.reshape(k, cff).T
    dy3 = dy.reshape(n, k, p)
    if _is_pointwise(fh, fw, stride, padding):
        return np.matmul(wt, dy3).reshape(n, c, h, wd)
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=dy.dtype)
    hs, ws = sh * (h2 - 1) + 1, sw * (w2 - 1) + 1
    for n0, n1 in _batch_slices(n, cff * p * dy.itemsize):
        m = n1 - n0
        if p < _FLAT_PIXELS:
            dyt = np.ascontiguousarray(dy3[n0:n1].transpose(1, 0, 2)).reshape(k, m * p)
            # (C, FH, FW, m, H2, W2) -> per offset a (C, m, H2, W2) block
            cols = (wt @ dyt).reshape(c, fh, fw, m, h2, w2)
            for i in range(fh):
                for j in range(fw):
                    dxp[n0:n1, :, i:i + hs:sh, j:j + ws:sw] += \
                        cols[:, i, j].transpose(1, 0, 2, 3)
        else:
            cols = np.matmul(wt, dy3[n0:n1]).reshape(m, c, fh, fw, h2, w2)
            for i in range(fh):
                for j in range(fw):
                    dxp[n0:n1, :, i:i + hs:sh, j:j + ws:sw] += cols[:, :, i, j]
    return dxp[:, :, ph:ph + h, pw:pw + wd]


def conv2d_backward_weight(dy, x, w_shape, stride=(1, 1), padding=(0, 0)):
    """(dL/dw, dL/db): one GEMM per batch slice over all of its pixels."""
    n, c, h, wd = x.shape
    k, _, fh, fw = w_shape
    (sh, sw), (ph, pw) = stride, padding
    h2, w2 = dy.shape[2:]
    p = h2 * w2
    cff = c * fh * fw
    dy3 = dy.reshape(n, k, p)
    db = dy3.sum(axis=(0, 2))
    dw = np.zeros((k, cff), dtype=np.result_type(dy, x))
    xp = _pad(x, ph, pw)
    win = _windows(xp, fh, fw, sh, sw, h2, w2)
    for n0, n1 in _batch_slices(n, cff * p * x.itemsize):
        m = n1 - n0
        # Both operands laid out with the images' pixels as the shared,
        # contiguous inner dimension, so the product is a plain A @ B.T.
        cols = np.ascontiguousarray(win[n0:n1].transpose(1, 2, 3, 0, 4, 5))
        dyt = np.ascontiguousarray(dy3[n0:n1].transpose(1, 0, 2))
        dw += dyt.reshape(k, m * p) @ cols.reshape(cff, m * p).T
    return dw.reshape(k, c, fh, fw), db


# ----------------------------------------------------------------- pooling

def _pool_views(xp, kh, kw, sh, sw, h2, w2):
    """(i, j, view): for each window offset, the (N, C, H2, W2) strided view of
    the elements at that offset in every window, in row-major offset order."""
    hs, ws = sh * (h2 - 1) + 1, sw * (w2 - 1) + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i:i + hs:sh, j:j + ws:sw]


def max_pool2d(x, kernel, stride, padding=(0, 0)):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x.shape
    h2, w2 = _out(h, kh, sh, ph), _out(wd, kw, sw, pw)
    xp = _pad(x, ph, pw, -np.inf)
    y = None
    for _, _, v in _pool_views(xp, kh, kw, sh, sw, h2, w2):
        if y is None:
            y = v.copy()
        else:
            np.maximum(y, v, out=y)
    return y


def max_pool2d_backward(dy, x, kernel, stride, padding=(0, 0)):
    """Recomputes the argmax (first maximum of each window in row-major order)
    from x, then scatters dy to it, one offset at a time."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x.shape
    h2, w2 = dy.shape[2:]
    xp = _pad(x, ph, pw, -np.inf)
    views = list(_pool_views(xp, kh, kw, sh, sw, h2, w2))
    best = views[0][2].copy()
    arg = np.zeros(best.shape, dtype=np.int16 if kh * kw < 32768 else np.int32)
    for idx, (_, _, v) in enumerate(views[1:], start=1):
        better = v > best          # strict: ties keep the earlier offset
        np.copyto(best, v, where=better)
        np.copyto(arg, idx, where=better)
    dxp = np.zeros(xp.shape, dtype=dy.dtype)
    hs, ws = sh * (h2 - 1) + 1, sw * (w2 - 1) + 1
    zero = dy.dtype.type(0)
    for idx, (i, j, _) in enumerate(views):
        dxp[:, :, i:i + hs:sh, j:j + ws:sw] += np.where(arg == idx, dy, zero)
    return dxp[:, :, ph:ph + h, pw:pw + wd]


def _avg_counts(h, wd, kernel, stride, padding, h2, w2, include_pad, dtype):
    """Divisor of every window: KH*KW, or the number of real (non-padding)
    elements it covers."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if include_pad or (ph == 0 and pw == 0):
        return dtype.type(kh * kw)
    ones = np.zeros((1, 1, h + 2 * ph, wd + 2 * pw), dtype=dtype)
    ones[:, :, ph:ph + h, pw:pw + wd] = 1
    cnt = np.zeros((1, 1, h2, w2), dtype=dtype)
    for _, _, v in _pool_views(ones, kh, kw, sh, sw, h2, w2):
        cnt += v
    return cnt


def avg_pool2d(x, kernel, stride, padding=(0, 0), count_include_pad=True):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x.shape
    h2, w2 = _out(h, kh, sh, ph), _out(wd, kw, sw, pw)
    if (kh, kw) == (h, wd) and (ph, pw) == (0, 0):
        # Global average: one reduction instead of KH*KW strided passes.
        return x.mean(axis=(2, 3), keepdims=True)
    xp = _pad(x, ph, pw)
    y = None
    for _, _, v in _pool_views(xp, kh, kw, sh, sw, h2, w2):
        if y is None:
            y = v.copy()
        else:
            y += v
    y /= _avg_counts(h, wd, kernel, stride, padding, h2, w2, count_include_pad, x.dtype)
    return y


def avg_pool2d_backward(dy, x_shape, kernel, stride, padding=(0, 0),
                        count_include_pad=True):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, wd = x_shape
    h2, w2 = dy.shape[2:]
    g = dy / _avg_counts(h, wd, kernel, stride, padding, h2, w2,
                         count_include_pad, dy.dtype)
    if (kh, kw) == (h, wd) and (ph, pw) == (0, 0):
        return np.broadcast_to(g, (n, c, h, wd)).copy()
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=dy.dtype)
    hs, ws = sh * (h2 - 1) + 1, sw * (w2 - 1) + 1
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + hs:sh, j:j + ws:sw] += g
    return dxp[:, :, ph:ph + h, pw:pw + wd]
