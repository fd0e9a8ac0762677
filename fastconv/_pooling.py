"""LP-norm pooling, adaptive pooling and max unpooling, forward and backward.

The functional API's pooling ops beyond max_pool2d and avg_pool2d (which
are in :mod:`fastconv.functional`, as are the helpers used here); each is
re-exported there and from the package.  Conventions as everywhere in the
functional layer: NCHW, float32 and float64 computed natively, every bad
argument rejected before any C runs, inputs never modified, outputs fresh
C-contiguous arrays.

Adaptive pooling whose input divides evenly by the output size is ordinary
pooling (kernel = stride = H / H2) and runs on its row kernels; any other
runs window by window in C (src/fc_pool_windows.inc).  LP pooling is
average pooling of ``x**p`` and elementwise NumPy work around it, computed
the way PyTorch computes it so that the values match.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np
from numpy.typing import NDArray

from . import _config, _core
from . import _validate as valid
from ._shapes import PoolGeometry, adaptive_output_hw, pool_geometry
from ._typing import ArrayLike, FloatArray, IndexArray, IntOrPair, ShapeLike
from .functional import (_alloc, _dtype, _empty_flat, _flat, _indices, _x_shape,
                         avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward)

__all__ = ["lp_pool2d", "lp_pool2d_backward", "adaptive_avg_pool2d",
           "adaptive_avg_pool2d_backward", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
           "max_unpool2d"]

#: adaptive pooling's output_size: an int or an (h, w) pair, None keeping
#: the input's size along that axis.
AdaptiveSize = Union[int, None, Tuple[Optional[int], Optional[int]]]


# ---------------------------------------------------------------- LP pooling

def _norm_type(norm_type: object, where: str) -> float:
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"{where}: norm_type must be a real number, got {norm_type!r}")
    p = float(norm_type)
    if p != p or p == 0:
        raise ValueError(f"{where}: norm_type must be nonzero and not NaN, got {norm_type!r}")
    return p


def _window_size(kernel_size: IntOrPair, where: str) -> int:
    kh, kw = valid.pair(kernel_size, "kernel_size", where)
    return kh * kw


def lp_pool2d(x: ArrayLike, norm_type: float, kernel_size: IntOrPair,
              stride: Optional[IntOrPair] = None, ceil_mode: bool = False, *,
              strict: bool = True, _name: str = "lp_pool2d") -> FloatArray:
    """Power-average (LP-norm) pooling: ``(sum over the window of x**p)**(1/p)``.

    x: (N, C, H, W) -> (N, C, H2, W2), sized as :func:`avg_pool2d` without
    padding (``ceil_mode`` and ``strict`` as there).  ``norm_type`` p = 2 is
    L2-norm pooling; p = inf is max pooling of ``|x|`` (and -inf minus max
    pooling of ``-|x|``), as in PyTorch.  float32 and float64 keep their
    dtype; integers give float64.

    Computed as PyTorch computes it, so that the values agree: t = average
    pooling of ``x**p`` (C kernels), then ``(sign(t) * relu(|t|) * F_h*F_w)
    ** (1/p)`` elementwise.  A window that ceil_mode clips is averaged over
    the part inside the input and then scaled by the whole window's size.
    Negative inputs with a non-integer p give NaN, as ``x**p`` does.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[[3.0, 4.0], [0.0, 0.0]]]])
    >>> fastconv.lp_pool2d(x, 2, 2)[0, 0].tolist()
    [[5.0]]
    >>> fastconv.lp_pool2d(x, float("inf"), 2)[0, 0].tolist()
    [[4.0]]
    """
    where = _name
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    p = _norm_type(norm_type, where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    # sizes first, so that a bad one is reported before any work
    pool_geometry(x.shape, kernel_size, stride, 0, strict=strict, where=where,
                  ceil_mode=ceil_mode)
    dtype = _dtype(x)
    xa = np.asarray(x, dtype)
    if p == np.inf:
        return max_pool2d(np.abs(xa), kernel_size, stride, 0, 1, ceil_mode, strict=strict,
                          _name=where)
    if p == -np.inf:
        y = max_pool2d(-np.abs(xa), kernel_size, stride, 0, 1, ceil_mode, strict=strict,
                       _name=where)
        np.negative(y, out=y)
        return y
    size = _window_size(kernel_size, where)
    t = _lp_sum(xa, p, kernel_size, stride, ceil_mode, strict, where)
    with np.errstate(all="ignore"):
        u: FloatArray = np.sign(t) * np.maximum(np.abs(t), 0) * np.asarray(size, dtype)
        np.power(u, np.asarray(1.0 / p, dtype), out=u)
    return u


def _lp_sum(xa: NDArray[Any], p: float, kernel_size: IntOrPair, stride: Optional[IntOrPair],
            ceil_mode: bool, strict: bool, where: str) -> FloatArray:
    """avg_pool2d of x**p: LP pooling's window means, before the scaling."""
    with np.errstate(all="ignore"):
        xp = np.power(xa, np.asarray(p, xa.dtype))
    return avg_pool2d(xp, kernel_size, stride, 0, ceil_mode, strict=strict, _name=where)


def lp_pool2d_backward(dy: ArrayLike, x: ArrayLike, norm_type: float, kernel_size: IntOrPair,
                       stride: Optional[IntOrPair] = None, ceil_mode: bool = False, *,
                       strict: bool = True) -> FloatArray:
    """Gradient of :func:`lp_pool2d` with respect to x.

    dy: (N, C, H2, W2), the gradient with respect to lp_pool2d's output; x:
    (N, C, H, W), its input; the other arguments are lp_pool2d's.  Returns
    dx shaped like x, in the dtype of dy and x promoted.

    The chain rule through PyTorch's formula (see lp_pool2d): where a
    window's sum of ``x**p`` is zero (or NaN) the gradient is zero, as
    PyTorch documents; elsewhere ``dy * y**(1-p) * x**(p-1)`` for each
    element of the window.  p = +-inf is max pooling's gradient times
    ``sign(x)``.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[[3.0, 4.0], [0.0, 0.0]]]])
    >>> fastconv.lp_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, 2)[0, 0].round(6).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    where = "lp_pool2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    p = _norm_type(norm_type, where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    geom = pool_geometry(x.shape, kernel_size, stride, 0, strict=strict, where=where,
                         ceil_mode=ceil_mode)
    if dy.shape != geom.out_shape:
        raise ValueError(f"{where}: dy must have the shape of lp_pool2d's output "
                         f"{geom.out_shape}, got {dy.shape}")
    dtype = _dtype(dy, x)
    xa = np.asarray(x, dtype)
    if p in (np.inf, -np.inf):
        z = np.abs(xa) if p > 0 else -np.abs(xa)
        dz = max_pool2d_backward(np.asarray(dy, dtype), z, kernel_size, stride, 0, 1, ceil_mode,
                                 strict=strict)
        out: FloatArray = dz * np.sign(xa)
        return out
    size = np.asarray(_window_size(kernel_size, where), dtype)
    t = _lp_sum(xa, p, kernel_size, stride, ceil_mode, strict, where)
    with np.errstate(all="ignore"):
        v = t * size
        gv = np.asarray(dy, dtype) * np.asarray(1.0 / p, dtype) * \
            np.power(v, np.asarray(1.0 / p - 1.0, dtype))
        gt = np.where(np.abs(t) > 0, gv * size, np.zeros((), dtype))
    gxp = avg_pool2d_backward(gt, xa.shape, kernel_size, stride, 0, ceil_mode, strict=strict)
    with np.errstate(all="ignore"):
        dx: FloatArray = gxp * (np.asarray(p, dtype) * np.power(xa, np.asarray(p - 1.0, dtype)))
    return dx


# ---------------------------------------------------------- adaptive pooling

def _adaptive(x_shape: Tuple[int, ...], output_size: object,
              where: str) -> Tuple[PoolGeometry, bool]:
    """The geometry of adaptive pooling and whether it is plain pooling
    (kernel = stride = H / H2 along both axes)."""
    N, C, H, W = x_shape
    H2, W2 = adaptive_output_hw(x_shape, output_size, where)
    if H % H2 == 0 and W % W2 == 0:
        kh, kw = H // H2, W // W2
        return PoolGeometry(N, C, H, W, kh, kw, kh, kw, 0, 0, H2, W2), True
    # The window loops read no kernel, stride or padding for adaptive
    # windows; the fields say "one element" so nothing else misreads them.
    return PoolGeometry(N, C, H, W, 1, 1, 1, 1, 0, 0, H2, W2), False


def adaptive_avg_pool2d(x: ArrayLike, output_size: AdaptiveSize, *,
                        _name: str = "adaptive_avg_pool2d") -> FloatArray:
    """Average pooling to a given output size.

    x: (N, C, H, W) -> (N, C, H2, W2) with (H2, W2) = ``output_size`` (an
    int or an (h, w) pair; None keeps the input's size along that axis).
    Output row i averages input rows ``floor(i*H/H2)`` to
    ``ceil((i+1)*H/H2) - 1`` (columns alike), as in PyTorch, so windows may
    differ in size and overlap.  float32 and float64 keep their dtype;
    integers give float64.

    >>> import numpy as np, fastconv
    >>> x = np.arange(12.0).reshape(1, 1, 3, 4)
    >>> fastconv.adaptive_avg_pool2d(x, (1, 2))[0, 0].tolist()
    [[4.5, 6.5]]
    >>> fastconv.adaptive_avg_pool2d(x, (2, None))[0, 0].tolist()
    [[2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0]]
    """
    where = _name
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    geom, plain = _adaptive(x.shape, output_size, where)
    if plain:
        return avg_pool2d(x, (geom.KH, geom.KW), _name=where)
    dtype = _dtype(x)
    y = _alloc(geom.out_shape, dtype, "the output", where)
    if y.size:
        _core.pool2d_win_fwd(tuple(geom), 1, 1, True, False, _flat(x, dtype), y.reshape(-1),
                             _empty_flat(np.int64), _config.get_num_threads())
    return y


def adaptive_avg_pool2d_backward(dy: ArrayLike, x_shape: ShapeLike,
                                 output_size: AdaptiveSize) -> FloatArray:
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input.

    dy: (N, C, H2, W2), the gradient with respect to the output; x_shape:
    (N, C, H, W), four ints.  Each window's gradient is shared evenly among
    its inputs; overlapping windows add up.  Returns dx of shape x_shape in
    dy's dtype (float32 or float64).

    >>> import numpy as np, fastconv
    >>> dx = fastconv.adaptive_avg_pool2d_backward(np.ones((1, 1, 1, 2)), (1, 1, 1, 3), (1, 2))
    >>> dx[0, 0].tolist()
    [[0.5, 1.0, 0.5]]
    """
    where = "adaptive_avg_pool2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    shape = _x_shape(x_shape, where)
    geom, plain = _adaptive(shape, output_size, where)
    if dy.shape != geom.out_shape:
        raise ValueError(f"{where}: dy must have the shape of adaptive_avg_pool2d's output "
                         f"{geom.out_shape}, got {dy.shape}")
    if plain:
        return avg_pool2d_backward(dy, shape, (geom.KH, geom.KW))
    dtype = _dtype(dy)
    dx = _alloc(shape, dtype, "dx", where)
    if dx.size:
        _core.pool2d_win_bwd(tuple(geom), 1, 1, True, False, _flat(dy, dtype),
                             _empty_flat(dtype), dx.reshape(-1), _config.get_num_threads())
    return dx


@overload
def adaptive_max_pool2d(x: ArrayLike, output_size: AdaptiveSize,
                        return_indices: Literal[False] = False, *,
                        _name: str = "adaptive_max_pool2d") -> FloatArray:
    ...


@overload
def adaptive_max_pool2d(x: ArrayLike, output_size: AdaptiveSize, return_indices: Literal[True],
                        *, _name: str = "adaptive_max_pool2d") -> Tuple[FloatArray, IndexArray]:
    ...


@overload
def adaptive_max_pool2d(x: ArrayLike, output_size: AdaptiveSize, return_indices: bool, *,
                        _name: str = "adaptive_max_pool2d"
                        ) -> Union[FloatArray, Tuple[FloatArray, IndexArray]]:
    ...


def adaptive_max_pool2d(x: ArrayLike, output_size: AdaptiveSize, return_indices: bool = False,
                        *, _name: str = "adaptive_max_pool2d"
                        ) -> Union[FloatArray, Tuple[FloatArray, IndexArray]]:
    """Max pooling to a given output size.

    x: (N, C, H, W) -> (N, C, H2, W2); ``output_size`` and the windows as
    for :func:`adaptive_avg_pool2d`.  The first maximum of a window in
    row-major order counts; a window holding NaN gives NaN.  With
    ``return_indices=True`` the result is ``(y, indices)``, indices as
    :func:`max_pool2d` gives them (int64 offsets ``h*W + w`` in the plane).

    >>> import numpy as np, fastconv
    >>> x = np.arange(12.0).reshape(1, 1, 3, 4)
    >>> y, idx = fastconv.adaptive_max_pool2d(x, 2, return_indices=True)
    >>> y[0, 0].tolist(), idx[0, 0].tolist()
    ([[5.0, 7.0], [9.0, 11.0]], [[5, 7], [9, 11]])
    """
    where = _name
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    return_indices = valid.flag(return_indices, "return_indices", where)
    geom, plain = _adaptive(x.shape, output_size, where)
    if plain:
        return max_pool2d(x, (geom.KH, geom.KW), return_indices=return_indices, _name=where)
    dtype = _dtype(x)
    y = _alloc(geom.out_shape, dtype, "the output", where)
    idx = _alloc(y.shape, np.int64, "the indices", where) if return_indices else \
        _empty_flat(np.int64)
    if y.size:
        _core.pool2d_win_fwd(tuple(geom), 1, 1, True, True, _flat(x, dtype), y.reshape(-1),
                             idx.reshape(-1), _config.get_num_threads())
    return (y, idx) if return_indices else y


def adaptive_max_pool2d_backward(dy: ArrayLike, x: ArrayLike, output_size: AdaptiveSize, *,
                                 indices: Optional[NDArray[np.integer[Any]]] = None
                                 ) -> FloatArray:
    """Gradient of :func:`adaptive_max_pool2d` with respect to x.

    dy: (N, C, H2, W2); x: (N, C, H, W), the forward's input.  Each window's
    gradient goes to its first maximum; overlapping windows add up, in
    window order.  ``indices`` from ``adaptive_max_pool2d(...,
    return_indices=True)`` spare finding the maxima again (same result; an
    index outside its plane raises ValueError).  Returns dx shaped like x.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[[1.0, 5.0, 2.0]]]])
    >>> fastconv.adaptive_max_pool2d_backward(np.ones((1, 1, 1, 2)), x, (1, 2))[0, 0].tolist()
    [[0.0, 2.0, 0.0]]
    """
    where = "adaptive_max_pool2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    geom, plain = _adaptive(x.shape, output_size, where)
    if dy.shape != geom.out_shape:
        raise ValueError(f"{where}: dy must have the shape of adaptive_max_pool2d's output "
                         f"{geom.out_shape}, got {dy.shape}")
    if plain:
        return max_pool2d_backward(dy, x, (geom.KH, geom.KW), indices=indices)
    idx = None if indices is None else _indices(indices, geom.out_shape, where)
    dtype = _dtype(dy, x)
    dx = _alloc(x.shape, dtype, "dx", where)
    if not dx.size:
        return dx
    nt = _config.get_num_threads()
    if idx is None:
        _core.pool2d_win_bwd(tuple(geom), 1, 1, True, True, _flat(dy, dtype), _flat(x, dtype),
                             dx.reshape(-1), nt)
        return dx
    try:
        # the scatter of recorded indices reads nothing of the windows
        _core.maxpool2d_bwd_idx(tuple(geom), _flat(dy, dtype), idx, dx.reshape(-1), nt)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return dx


# ------------------------------------------------------------- max unpooling

def _unpool_size(in_hw: Tuple[int, int], kernel: Tuple[int, int], stride: Tuple[int, int],
                 padding: Tuple[int, int], output_size: Optional[Sequence[Any]],
                 where: str) -> Tuple[int, int]:
    """max_unpool2d's output (H, W): by default (H_in - 1)*S - 2P + F, the
    input size max_pool2d would map to H_in; an explicit one must be within
    a stride of it (PyTorch's rule)."""
    default = [(n - 1) * s - 2 * p + k for n, k, s, p in zip(in_hw, kernel, stride, padding)]
    if output_size is None:
        size = default
    else:
        if isinstance(output_size, np.ndarray):
            output_size = output_size.tolist()
        if not isinstance(output_size, (tuple, list)) or len(output_size) not in (2, 4):
            raise ValueError(f"{where}: output_size must be (H, W) or (N, C, H, W), "
                             f"got {output_size!r}")
        size = [valid.integer(v, "output_size", where) for v in output_size[-2:]]
        for axis, n, d, s in zip(("height", "width"), size, default, stride):
            if not d - s < n < d + s:
                raise ValueError(f"{where}: output_size {axis} {n} must lie strictly between "
                                 f"{d - s} and {d + s} (the default (H - 1)*S - 2P + F = {d}, "
                                 f"plus or minus the stride {s})")
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"{where}: the output would be {size[0]} x {size[1]}; (H - 1)*S - 2P "
                         f"+ F must be >= 1 along both axes")
    return size[0], size[1]


def max_unpool2d(x: ArrayLike, indices: ArrayLike, kernel_size: IntOrPair,
                 stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                 output_size: Optional[Sequence[Any]] = None) -> FloatArray:
    """The partial inverse of :func:`max_pool2d`: each value goes back to
    where its window's maximum was, every other element is zero.

    x: (N, C, H, W) pooled values; indices: integers of x's shape, as
    ``max_pool2d(..., return_indices=True)`` gives them (the offset
    ``h*W_out + w`` within the output plane).  The output is (N, C, H_out,
    W_out), by default H_out = (H - 1)*S - 2P + F (stride defaults to the
    kernel size); ``output_size`` ((H_out, W_out) or a whole shape) may pick
    another size within a stride of it, for a pooling that floored.  An index
    outside the output plane raises ValueError; where two values share an
    index, the later one in row-major order is kept.  float32 and float64
    keep their dtype; integers give float64.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[[1.0, 3.0], [4.0, 2.0]]]])
    >>> y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    >>> fastconv.max_unpool2d(y, idx, 2)[0, 0].tolist()
    [[0.0, 0.0], [4.0, 0.0]]
    """
    where = "max_unpool2d"
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    kernel = valid.pair(kernel_size, "kernel_size", where)
    stride_hw = kernel if stride is None else valid.pair(stride, "stride", where)
    pad = valid.pair(padding, "padding", where)
    for what, v, low in (("kernel_size", kernel, 1), ("stride", stride_hw, 1),
                         ("padding", pad, 0)):
        if min(v) < low:
            raise ValueError(f"{where}: {what} must be >= {low}, got {v}")
    idx = _indices(indices, x.shape, where)
    N, C, H, W = x.shape
    Ho, Wo = _unpool_size((H, W), kernel, stride_hw, pad, output_size, where)
    plane = Ho * Wo
    planes = N * C
    idx2 = idx.reshape(planes, H * W)
    if idx2.size:
        lo, hi = int(idx2.min()), int(idx2.max())
        if lo < 0 or hi >= plane:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{where}: index {bad} lies outside the output plane of "
                             f"{Ho} x {Wo} = {plane} elements")
    dtype = _dtype(x)
    y = _alloc((N, C, Ho, Wo), dtype, "the output", where)
    y[...] = 0
    if idx2.size:
        y2 = y.reshape(planes, plane)
        rows = np.arange(planes, dtype=np.int64)[:, None]
        y2[rows, idx2] = np.asarray(x, dtype).reshape(planes, H * W)
    return y
