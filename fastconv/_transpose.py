"""Transposed convolution for NumPy, on the functional layer's kernels.

The transposed convolution of x (N, C_in, H, W) with weights w
(C_in, C_out, F_h, F_w) is the data gradient of the convolution of an
(N, C_out, H_out, W_out) input with the same w read as (K = C_in, C = C_out,
F_h, F_w): each input pixel scatters its C_in values through the kernel into
the output.  Per axis

    H_out = (H - 1) * S - 2 * P + F + output_padding,

with 0 <= output_padding < S: the convolution that this one transposes floors
(H_out + 2P - F) / S, so output_padding picks which of the S output sizes
that map back to H is meant (PyTorch's convention).  Its gradients are
convolutions too: dx is conv2d(dy, w), dw the convolution's weight gradient
with x in the role of dy, db the sum of dy over N, H_out, W_out.

The bridges (:mod:`fastconv.jax`, :mod:`fastconv.dask`) call these; the
checks and messages follow :mod:`fastconv.functional`'s.
"""

import numpy as np

from . import _config, _core, _plan
from . import _validate as valid
from . import functional as F
from ._shapes import conv_geometry

__all__ = ["conv_transpose2d", "conv_transpose2d_backward", "conv_transpose2d_output_hw"]


def conv_transpose2d_output_hw(h, w, kernel, stride, padding, output_padding, where):
    """(H_out, W_out) of a transposed convolution of an h x w input, with the
    window settings as (h, w) pairs; ValueError when output_padding is not
    below the stride or the output would be empty."""
    out = []
    for axis, n, f, s, p, op in (("height", h, kernel[0], stride[0], padding[0],
                                  output_padding[0]),
                                 ("width", w, kernel[1], stride[1], padding[1],
                                  output_padding[1])):
        if s < 1:
            raise ValueError(f"{where}: stride must be >= 1, got {stride}")
        if p < 0:
            raise ValueError(f"{where}: padding must be >= 0, got {padding}")
        if not 0 <= op < s:
            raise ValueError(f"{where}: output_padding must be >= 0 and smaller than the "
                             f"stride, got output_padding {output_padding} with stride "
                             f"{stride}")
        size = (n - 1) * s - 2 * p + f + op
        if n < 1 or size < 1:
            raise ValueError(f"{where}: {axis} (H - 1)*S - 2P + F + output_padding = "
                             f"({n} - 1)*{s} - 2*{p} + {f} + {op} = {size} is less than 1")
        out.append(size)
    return tuple(out)


def _setup(x, w, stride, padding, output_padding, where):
    valid.ndim(x.shape, 4, "x", "(N, C_in, H, W)", where)
    valid.ndim(w.shape, 4, "w", "(C_in, C_out, F_h, F_w)", where)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"{where}: x has {x.shape[1]} channels (x.shape[1]) but w expects "
                         f"{w.shape[0]} (w.shape[0]); w must be (C_in, C_out, F_h, F_w)")
    if w.shape[2] < 1 or w.shape[3] < 1:
        raise ValueError(f"{where}: kernel size must be >= 1, got w.shape = {w.shape}")
    stride = valid.pair(stride, "stride", where)
    padding = valid.pair(padding, "padding", where)
    output_padding = valid.pair(output_padding, "output_padding", where)
    h_out, w_out = conv_transpose2d_output_hw(x.shape[2], x.shape[3], w.shape[2:], stride,
                                              padding, output_padding, where)
    out_shape = (x.shape[0], w.shape[1], h_out, w_out)
    # The convolution this one is the data gradient of: out_shape -> x.shape.
    geom = conv_geometry(out_shape, w.shape, stride, padding, strict=False, where=where)
    assert (geom.H2, geom.W2) == x.shape[2:], (geom, x.shape)
    return geom, stride, padding


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, *, algorithm=None):
    """Transposed convolution ("deconvolution"), as PyTorch's conv_transpose2d.

    x: (N, C_in, H, W); w: (C_in, C_out, F_h, F_w); b: (C_out,) or None.
    Returns (N, C_out, H_out, W_out), H_out = (H - 1)*S - 2P + F + output_padding.
    ``algorithm`` forces a data-gradient algorithm (see ``fastconv.plan``
    with op ``"conv2d_backward_data"``); None lets the planner choose.

    >>> import numpy as np
    >>> from fastconv._transpose import conv_transpose2d
    >>> conv_transpose2d(np.ones((1, 2, 3, 3)), np.ones((2, 4, 3, 3)), stride=2).shape
    (1, 4, 7, 7)
    """
    where = "conv_transpose2d"
    alg = -1 if algorithm is None else _plan.algorithm_id(algorithm, ["conv2d_backward_data"],
                                                          where)
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    if b is not None:
        b = valid.computable_array(b, "b", where)
    geom, stride, padding = _setup(x, w, stride, padding, output_padding, where)
    if b is not None and b.shape != (geom.C,):
        raise ValueError(f"{where}: b must have shape ({geom.C},) to match w's {geom.C} "
                         f"output channels, got {b.shape}")
    dtype = F._dtype(x, w, b)
    y = F._alloc((geom.N, geom.C, geom.H, geom.W), dtype, "the output", where)
    if y.size:
        if geom.K == 0 or x.size == 0:
            y[...] = 0
        else:
            nt = _config.get_num_threads()
            if alg >= 0:
                try:
                    _core.plan_conv(_core.OP_CONV_DATA, tuple(geom), dtype.itemsize, nt, alg)
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
            _plan._ran("conv2d_backward_data",
                       _core.conv2d_bwd_data(tuple(geom), F._flat(x, dtype), F._flat(w, dtype),
                                             y.reshape(-1), nt, alg))
        if b is not None:
            y += np.asarray(b, dtype).reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, *,
                              need_dx=True):
    """Gradients of :func:`conv_transpose2d` with respect to x, w and b.

    dy: (N, C_out, H_out, W_out).  Returns (dx, dw, db) shaped like x, w and
    (C_out,); dx is None when ``need_dx=False``.

    >>> import numpy as np
    >>> from fastconv._transpose import conv_transpose2d_backward
    >>> dx, dw, db = conv_transpose2d_backward(np.ones((1, 4, 7, 7)), np.ones((1, 2, 3, 3)),
    ...                                        np.ones((2, 4, 3, 3)), stride=2)
    >>> dx.shape, dw.shape, db.tolist()
    ((1, 2, 3, 3), (2, 4, 3, 3), [49.0, 49.0, 49.0, 49.0])
    """
    where = "conv_transpose2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    geom, stride, padding = _setup(x, w, stride, padding, output_padding, where)
    out_shape = (geom.N, geom.C, geom.H, geom.W)
    if dy.shape != out_shape:
        raise ValueError(f"{where}: dy must have the shape of conv_transpose2d's output "
                         f"{out_shape}, got {dy.shape}")
    dtype = F._dtype(dy, x, w)
    # x plays dy's part in the weight gradient of the convolution out -> x.
    _, dw, db = F.conv2d_backward(x, dy, w, stride, padding, need_dx=False)
    db = np.asarray(dy, dtype).sum(axis=(0, 2, 3))
    dx = None
    if need_dx:
        dx = F.conv2d(dy, w, None, stride, padding, strict=False, _name=where)
    return dx, dw.astype(dtype, copy=False), db
