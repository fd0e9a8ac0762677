"""1-D convolution and pooling on (N, C, L) arrays, as views over the 2-D ops.

An (N, C, L) input is the (N, C, 1, L) image ``x[:, :, None, :]`` (a view,
not a copy), its (K, C / groups, F) weights are (K, C / groups, 1, F), and
the window runs along the width only: kernel (1, F), stride (1, S), padding
(0, P), dilation (1, D).  The 2-D op's (N, K, 1, L2) result is returned
reshaped to (N, K, L2), again a view of the fresh output, so everything the
2-D ops promise (dtypes, any input view, errors before any C runs, inputs
never modified, the planner and every instruction set) holds here too.
Arguments follow ``torch.nn.functional``'s 1-D ops; a size is an int (or a
one-element sequence).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Tuple, Union, overload

import numpy as np
from numpy.typing import NDArray

from . import _validate as valid
from . import functional as F
from ._typing import ArrayLike, FloatArray, IndexArray, Int, ShapeLike

__all__ = ["conv1d", "conv1d_backward", "max_pool1d", "max_pool1d_backward", "avg_pool1d",
           "avg_pool1d_backward"]

#: conv1d's padding: an int, (left, right), "valid" or "same".
Padding1d = Union[Int, Tuple[Int, Int], str]


def _one(value: object, what: str, where: str) -> int:
    """A 1-D size: an int, or a one-element tuple or list of one."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{where}: {what} must be an int (or a 1-tuple), got {value!r}")
        value = value[0]
    return valid.integer(value, what, where)


def _as_2d(a: ArrayLike, what: str, layout: str, where: str) -> NDArray[Any]:
    """An (N, C, L) operand as its (N, C, 1, L) view."""
    arr = valid.computable_array(a, what, where)
    valid.ndim(arr.shape, 3, what, layout, where)
    return arr[:, :, None, :]


def _drop_h(a: NDArray[Any]) -> NDArray[Any]:
    """(N, C, 1, L) -> (N, C, L), a view."""
    return a.reshape(a.shape[0], a.shape[1], a.shape[3])


def _padding(padding: object, where: str) -> Any:
    """conv1d's padding as conv2d takes it."""
    if isinstance(padding, str):
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        left, right = (valid.integer(p, "padding", where) for p in padding)
        return ((0, 0), (left, right))
    p = _one(padding, "padding", where)
    return ((0, 0), (p, p))


def conv1d(x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None, stride: Int = 1,
           padding: Padding1d = 0, dilation: Int = 1, groups: int = 1, *, strict: bool = True,
           activation: Optional[Literal["relu"]] = None, _name: str = "conv1d") -> FloatArray:
    """1-D convolution (cross-correlation): :func:`fastconv.conv2d` on the
    (N, C, 1, L) view of x.

    x: (N, C, L); w: (K, C / groups, F); b: (K,) or None.  Returns (N, K, L2)
    with L2 = (L + P_left + P_right - D*(F - 1) - 1)/S + 1 (``strict`` as for
    conv2d).  ``padding`` is an int, a (left, right) pair, ``"valid"`` or
    ``"same"`` (stride 1; an odd total puts the extra element on the right).
    dtypes as for conv2d.

    >>> import numpy as np, fastconv
    >>> x = np.arange(6.0).reshape(1, 1, 6)
    >>> fastconv.conv1d(x, np.ones((1, 1, 3)))[0, 0].tolist()
    [3.0, 6.0, 9.0, 12.0]
    >>> fastconv.conv1d(x, np.ones((2, 1, 2)), padding="same").shape
    (1, 2, 6)
    """
    where = _name
    x4 = _as_2d(x, "x", "(N, C, L)", where)
    w4 = _as_2d(w, "w", "(K, C, F)", where)
    y = F.conv2d(x4, w4, b, (1, _one(stride, "stride", where)), _padding(padding, where),
                 strict=strict, activation=activation, dilation=(1, _one(dilation, "dilation",
                                                                         where)),
                 groups=groups, _name=where)
    return _drop_h(y)


@overload
def conv1d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: Int = 1,
                    padding: Padding1d = 0, dilation: Int = 1, groups: int = 1, *,
                    need_dx: Literal[True] = True) -> Tuple[FloatArray, FloatArray, FloatArray]:
    ...


@overload
def conv1d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: Int = 1,
                    padding: Padding1d = 0, dilation: Int = 1, groups: int = 1, *,
                    need_dx: Literal[False]) -> Tuple[None, FloatArray, FloatArray]:
    ...


@overload
def conv1d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: Int = 1,
                    padding: Padding1d = 0, dilation: Int = 1, groups: int = 1, *,
                    need_dx: bool) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    ...


def conv1d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: Int = 1,
                    padding: Padding1d = 0, dilation: Int = 1, groups: int = 1, *,
                    need_dx: bool = True) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    """Gradients of :func:`conv1d` with respect to x, w and b:
    :func:`fastconv.conv2d_backward` on the (N, C, 1, L) views.

    dy: (N, K, L2); x and w as given to conv1d.  Returns (dx, dw, db) shaped
    like x, w and (K,); dx is None with ``need_dx=False``.

    >>> import numpy as np, fastconv
    >>> dx, dw, db = fastconv.conv1d_backward(np.ones((1, 1, 4)), np.ones((1, 1, 6)),
    ...                                       np.ones((1, 1, 3)))
    >>> dx[0, 0].tolist(), dw[0, 0].tolist(), db.tolist()
    ([1.0, 2.0, 3.0, 3.0, 2.0, 1.0], [4.0, 4.0, 4.0], [4.0])
    """
    where = "conv1d_backward"
    dy4 = _as_2d(dy, "dy", "(N, K, L2)", where)
    x4 = _as_2d(x, "x", "(N, C, L)", where)
    w4 = _as_2d(w, "w", "(K, C, F)", where)
    dx, dw, db = F.conv2d_backward(dy4, x4, w4, (1, _one(stride, "stride", where)),
                                   _padding(padding, where), need_dx=need_dx,
                                   dilation=(1, _one(dilation, "dilation", where)),
                                   groups=groups)
    return (None if dx is None else _drop_h(dx)), _drop_h(dw), db


def _pool_args(kernel_size: object, stride: object, padding: object, where: str
               ) -> Tuple[Tuple[int, int], Optional[Tuple[int, int]], Tuple[int, int]]:
    k = _one(kernel_size, "kernel_size", where)
    s = None if stride is None else (1, _one(stride, "stride", where))
    return (1, k), s, (0, _one(padding, "padding", where))


@overload
def max_pool1d(x: ArrayLike, kernel_size: Int, stride: Optional[Int] = None, padding: Int = 0,
               dilation: Int = 1, ceil_mode: bool = False, *, strict: bool = True,
               return_indices: Literal[False] = False) -> FloatArray:
    ...


@overload
def max_pool1d(x: ArrayLike, kernel_size: Int, stride: Optional[Int] = None, padding: Int = 0,
               dilation: Int = 1, ceil_mode: bool = False, *, strict: bool = True,
               return_indices: Literal[True]) -> Tuple[FloatArray, IndexArray]:
    ...


@overload
def max_pool1d(x: ArrayLike, kernel_size: Int, stride: Optional[Int] = None, padding: Int = 0,
               dilation: Int = 1, ceil_mode: bool = False, *, strict: bool = True,
               return_indices: bool) -> Union[FloatArray, Tuple[FloatArray, IndexArray]]:
    ...


def max_pool1d(x: ArrayLike, kernel_size: Int, stride: Optional[Int] = None, padding: Int = 0,
               dilation: Int = 1, ceil_mode: bool = False, *, strict: bool = True,
               return_indices: bool = False) -> Union[FloatArray, Tuple[FloatArray, IndexArray]]:
    """1-D max pooling: :func:`fastconv.max_pool2d` on the (N, C, 1, L) view.

    x: (N, C, L) -> (N, C, L2); arguments as for max_pool2d along one axis.
    Indices (``return_indices=True``) are positions along L.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]])
    >>> fastconv.max_pool1d(x, 2, ceil_mode=True)[0, 0].tolist()
    [3.0, 5.0, 4.0]
    >>> fastconv.max_pool1d(x, 2, strict=False, return_indices=True)[1][0, 0].tolist()
    [1, 3]
    """
    where = "max_pool1d"
    x4 = _as_2d(x, "x", "(N, C, L)", where)
    k, s, p = _pool_args(kernel_size, stride, padding, where)
    d = (1, _one(dilation, "dilation", where))
    if valid.flag(return_indices, "return_indices", where):
        y, idx = F.max_pool2d(x4, k, s, p, d, ceil_mode, strict=strict, return_indices=True,
                              _name=where)
        return _drop_h(y), _drop_h(idx)
    return _drop_h(F.max_pool2d(x4, k, s, p, d, ceil_mode, strict=strict, _name=where))


def max_pool1d_backward(dy: ArrayLike, x: ArrayLike, kernel_size: Int,
                        stride: Optional[Int] = None, padding: Int = 0, dilation: Int = 1,
                        ceil_mode: bool = False, *, strict: bool = True,
                        indices: Optional[NDArray[np.integer[Any]]] = None) -> FloatArray:
    """Gradient of :func:`max_pool1d` with respect to x (dy: (N, C, L2));
    ``indices`` as max_pool1d returns them.  Returns dx shaped like x.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[1.0, 3.0, 2.0, 5.0]]])
    >>> fastconv.max_pool1d_backward(np.ones((1, 1, 2)), x, 2)[0, 0].tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    where = "max_pool1d_backward"
    dy4 = _as_2d(dy, "dy", "(N, C, L2)", where)
    x4 = _as_2d(x, "x", "(N, C, L)", where)
    k, s, p = _pool_args(kernel_size, stride, padding, where)
    idx4 = None
    if indices is not None:
        if not isinstance(indices, np.ndarray) or indices.ndim != 3:
            raise ValueError(f"{where}: indices must be max_pool1d's (N, C, L2) integer array")
        idx4 = indices[:, :, None, :]
    dx = F.max_pool2d_backward(dy4, x4, k, s, p, (1, _one(dilation, "dilation", where)),
                               ceil_mode, strict=strict, indices=idx4)
    return _drop_h(dx)


def avg_pool1d(x: ArrayLike, kernel_size: Int, stride: Optional[Int] = None, padding: Int = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, *,
               strict: bool = True) -> FloatArray:
    """1-D average pooling: :func:`fastconv.avg_pool2d` on the (N, C, 1, L) view.

    x: (N, C, L) -> (N, C, L2); arguments as for avg_pool2d along one axis.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[1.0, 3.0, 2.0, 6.0, 4.0]]])
    >>> fastconv.avg_pool1d(x, 2, ceil_mode=True)[0, 0].tolist()
    [2.0, 4.0, 4.0]
    """
    where = "avg_pool1d"
    x4 = _as_2d(x, "x", "(N, C, L)", where)
    k, s, p = _pool_args(kernel_size, stride, padding, where)
    return _drop_h(F.avg_pool2d(x4, k, s, p, ceil_mode, count_include_pad, strict=strict,
                                _name=where))


def avg_pool1d_backward(dy: ArrayLike, x_shape: ShapeLike, kernel_size: Int,
                        stride: Optional[Int] = None, padding: Int = 0, ceil_mode: bool = False,
                        count_include_pad: bool = True, *, strict: bool = True) -> FloatArray:
    """Gradient of :func:`avg_pool1d` with respect to its input of shape
    ``x_shape`` (N, C, L); dy: (N, C, L2).  Returns dx of shape x_shape.

    >>> import numpy as np, fastconv
    >>> fastconv.avg_pool1d_backward(np.ones((1, 1, 2)), (1, 1, 4), 2)[0, 0].tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    where = "avg_pool1d_backward"
    dy4 = _as_2d(dy, "dy", "(N, C, L2)", where)
    if isinstance(x_shape, np.ndarray):
        x_shape = x_shape.tolist()
    if not isinstance(x_shape, (tuple, list)) or len(x_shape) != 3:
        raise ValueError(f"{where}: x_shape must be 3 non-negative ints (N, C, L), "
                         f"got {x_shape!r}")
    n, c, length = x_shape
    k, s, p = _pool_args(kernel_size, stride, padding, where)
    dx = F.avg_pool2d_backward(dy4, (n, c, 1, length), k, s, p, ceil_mode, count_include_pad,
                               strict=strict)
    return _drop_h(dx)
