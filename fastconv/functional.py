"""The functional API: stateless convolution, pooling, linear and ReLU ops.

Each function normalises and validates its arguments (by the rules of
:mod:`fastconv._validate`; a convolution or pooling describes its sizes by the
geometry that :mod:`fastconv._shapes` builds from them), picks the
computation dtype, makes its inputs C-contiguous, allocates the output and
makes one call into the C core.  Every bad input raises here, before any C
runs.

The forward ops also take a private keyword ``_name``, the name their error
messages start with (the op's own by default): the layers of
:mod:`fastconv.modules` pass their repr, so that an error raised during a
layer's call names the layer.

Layouts: activations NCHW, conv weights (K, C, F_h, F_w), linear weights
(out_features, in_features).  dtypes: float32 and float64 natively; integer
inputs count as float64, float16 as float32, and mixed inputs follow NumPy's
promotion (float32 with float64 gives float64).  Outputs are fresh
C-contiguous arrays (from 4 MiB on, views starting on a 64-byte boundary of a
buffer of their own); inputs are never modified.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _config, _core, _plan
from . import _validate as valid
from ._shapes import (ConvGeometry, PaddingSpec, PoolGeometry, ShapeError, conv_geometry,
                      pool_geometry)
from ._shapes import output_size as _output_size
from ._typing import ArrayLike, FloatArray, IndexArray, Int, IntOrPair, ShapeLike

__all__ = [
    "conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d",
    "avg_pool2d_backward", "lp_pool2d", "lp_pool2d_backward", "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    "max_unpool2d", "conv1d", "conv1d_backward", "max_pool1d", "max_pool1d_backward",
    "avg_pool1d", "avg_pool1d_backward", "linear", "linear_backward", "relu", "relu_backward",
    "output_size", "ShapeError",
]


# ----------------------------------------------------------------- helpers

#: conv2d_backward's ``algorithm``: one name, a (data, weight) pair, or None.
BackwardAlgorithm = Optional[Union[str, Tuple[Optional[str], Optional[str]]]]

_NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _dtype(*arrays: Optional[NDArray[Any]]) -> np.dtype[Any]:
    """The computation dtype: integers count as float64, float16 as float32."""
    first = arrays[0].dtype  # type: ignore[union-attr]  # the first is x, never None
    if first in _NATIVE_FLOATS and all(a is None or a.dtype == first for a in arrays):
        return first   # the common case: every operand already in one native float dtype
    kinds: List[np.dtype[Any]] = []
    for a in arrays:
        if a is None:
            continue
        if a.dtype.kind in "iu":
            kinds.append(np.dtype(np.float64))
        elif a.dtype.itemsize < 4:
            kinds.append(np.dtype(np.float32))
        else:
            kinds.append(a.dtype.newbyteorder("="))
    return np.result_type(*kinds)


def _flat(a: NDArray[Any], dtype: DTypeLike) -> NDArray[Any]:
    """A flat, C-contiguous, native-order, aligned view or copy of ``a`` in ``dtype``."""
    try:
        a = np.ascontiguousarray(a, dtype=dtype)
    except MemoryError:
        nbytes = a.size * np.dtype(dtype).itemsize
        raise MemoryError(f"fastconv: cannot make the contiguous {np.dtype(dtype).name} copy "
                          f"of an input of shape {a.shape} that the kernels read "
                          f"({nbytes / 2**30:.3g} GiB)") from None
    # A buffer at an odd address (np.frombuffer with an offset, a packed
    # record field) is C-contiguous but not aligned; the kernels assume
    # elements sit at multiples of their size.
    if not a.flags.aligned:
        a = a.copy()
    return a.reshape(-1)


def _empty_flat(dtype: DTypeLike) -> NDArray[Any]:
    return np.empty(0, dtype=dtype)


# Outputs of at least this many bytes start on a 64-byte boundary.  NumPy's
# allocator gives 16 bytes; an output row segment that a microkernel tile
# stores then straddles one more cache line, and where the output streams out
# of the caches (a 1x1 convolution's, 64 -> 64 channels at 56x56: 5% at batch
# 8, 6.4 MB) that costs several per cent, and keeps the stores from going
# around the caches.  Smaller outputs stay in cache, where it made no
# difference up to 3.2 MB, and the extra steps cost 3 microseconds.
_ALIGN = 64
_ALIGN_FROM = 4 << 20


def _alloc(shape: Sequence[int], dtype: DTypeLike, what: str, where: str) -> NDArray[Any]:
    """A new uninitialised C-contiguous array; MemoryError naming the op when
    it cannot exist.  Large ones are views of a slightly larger byte buffer,
    aligned to _ALIGN.

    NumPy reports a shape whose byte count overflows as a ValueError; here
    that is the same condition as running out of memory."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for s in shape:
        nbytes *= int(s)
    try:
        if nbytes < _ALIGN_FROM:
            return np.empty(shape, dtype)
        raw = np.empty(nbytes + _ALIGN, np.uint8)
        start = -raw.__array_interface__["data"][0] % _ALIGN
        return raw[start:start + nbytes].view(dtype).reshape(shape)
    except (MemoryError, ValueError):
        raise MemoryError(f"{where}: cannot allocate {what} of shape {tuple(shape)} "
                          f"and dtype {dtype.name} ({nbytes / 2**30:.3g} GiB)") from None


# -------------------------------------------------------------- convolution

def conv2d(x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None, stride: IntOrPair = 1,
           padding: PaddingSpec = 0, *, strict: bool = True,
           activation: Optional[Literal["relu"]] = None, algorithm: Optional[str] = None,
           dilation: IntOrPair = 1, groups: int = 1, _name: str = "conv2d") -> FloatArray:
    """2-D convolution (cross-correlation, as in deep learning frameworks).

    x: (N, C, H, W); w: (K, C / groups, F_h, F_w); b: (K,) or None.
    Returns y: (N, K, H2, W2) with H2 = (H - F_h + 2*P_h)/S_h + 1 (same for W),
    in general (H + P_top + P_bottom - D_h*(F_h - 1) - 1)/S_h + 1.
    ``stride`` and ``dilation`` are an int or an (h, w) pair; ``padding`` (zeros)
    an int, an (h, w) pair, ``((top, bottom), (left, right))``, ``"valid"`` or
    ``"same"`` (stride 1; an odd total puts the extra row and column at the
    bottom and right, as PyTorch does).  ``groups`` cuts the channels and
    filters into that many groups, each filter seeing its group's channels.
    ``strict=True`` raises ShapeError when the formula does not give an
    integer; ``strict=False`` floors it.  ``activation="relu"`` fuses a ReLU.
    ``algorithm`` forces one of ``fastconv.algorithms()`` (None: the planner
    chooses, see ``fastconv.plan``); a name that cannot serve the shape raises
    ValueError saying why.

    dtypes: y is float32 when every operand is float32 (or float16), float64
    when any is float64 or an integer array.

    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 3, 32, 32), np.float32); w = np.ones((8, 3, 5, 5), np.float32)
    >>> y = fastconv.conv2d(x, w, stride=1, padding=2)
    >>> y.shape, y.dtype.name, float(y[0, 0, 16, 16]), float(y[0, 0, 0, 0])
    ((1, 8, 32, 32), 'float32', 75.0, 27.0)
    >>> fastconv.conv2d(x, w, stride=2, padding=(0, 1), strict=False).shape
    (1, 8, 14, 15)
    >>> fastconv.conv2d(x, w, padding="same", dilation=2).shape
    (1, 8, 32, 32)
    >>> fastconv.conv2d(np.ones((1, 4, 8, 8)), np.ones((6, 2, 3, 3)), groups=2).shape
    (1, 6, 6, 6)
    """
    where = _name
    alg = -1 if algorithm is None else _plan.algorithm_id(algorithm, ["conv2d"], where)
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    if b is not None:
        b = valid.computable_array(b, "b", where)
    relu = valid.activation(activation, where)
    geom = conv_geometry(x.shape, w.shape, stride, padding, strict=strict, where=where,
                         dilation=dilation, groups=groups)
    return _conv2d_run(x, w, b, geom, relu, alg, where)


def _conv2d_run(x: NDArray[Any], w: NDArray[Any], b: Optional[NDArray[Any]],
                geom: ConvGeometry, relu: bool, alg: int, where: str) -> FloatArray:
    """conv2d once its arguments are checked: x, w (and b) arrays of a dtype
    fastconv computes in, geom their geometry, alg an algorithm's index or -1.
    (The PyTorch bridge comes in here with a geometry it has worked out
    before.)"""
    K = geom.K
    if b is not None and b.shape != (K,):
        raise ValueError(f"{where}: b must have shape ({K},) to match w's {K} filters, "
                         f"got {b.shape}")
    dtype = _dtype(x, w, b)
    y = _alloc(geom.out_shape, dtype, "the output", where)
    if y.size == 0:
        return y
    if geom.C == 0:
        y[...] = 0 if b is None else np.asarray(b, dtype).reshape(1, K, 1, 1)
        return np.maximum(y, 0) if relu else y
    bf = _flat(b, dtype) if b is not None else _empty_flat(dtype)
    xf, wf, yf, g = _flat(x, dtype), _flat(w, dtype), y.reshape(-1), tuple(geom)
    _plan.run_planned("conv2d", g, dtype, _config.get_num_threads(), alg,
                      lambda a, narrow, nt: _core.conv2d_fwd(g, xf, wf, bf, yf, relu, nt, a,
                                                             narrow))
    return y


def _backward_algorithms(algorithm: BackwardAlgorithm, geom: Tuple[int, ...],
                         dtype: np.dtype[Any], nt: int, need_dx: bool,
                         where: str) -> Tuple[int, int]:
    """(data, weight) algorithm indices for conv2d_backward's ``algorithm``:
    a name forces each gradient it computes (the other is planned freely), a
    pair (data, weight) forces each; either may be None.  Both are planned
    before anything computes, so a name that cannot serve raises first."""
    if algorithm is None:
        return -1, -1
    if isinstance(algorithm, (tuple, list)):
        if len(algorithm) != 2:
            raise ValueError(f"{where}: algorithm must be a name or a (data, weight) pair, "
                             f"got {algorithm!r}")
        names = list(algorithm)
    else:
        _plan.algorithm_id(algorithm, ["conv2d_backward_data", "conv2d_backward_weight"], where)
        names = [algorithm if _plan._serves(algorithm, _core.OP_CONV_DATA) else None,
                 algorithm if _plan._serves(algorithm, _core.OP_CONV_WEIGHT) else None]
    ids = []
    for name, op, code in ((names[0], "conv2d_backward_data", _core.OP_CONV_DATA),
                           (names[1], "conv2d_backward_weight", _core.OP_CONV_WEIGHT)):
        if name is None or (op == "conv2d_backward_data" and not need_dx):
            ids.append(-1)
            continue
        ids.append(_plan.algorithm_id(name, [op], where))
        try:
            _core.plan_conv(code, tuple(geom), dtype.itemsize, nt, ids[-1])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return ids[0], ids[1]


@overload
def conv2d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: IntOrPair = 1,
                    padding: PaddingSpec = 0, *, need_dx: Literal[True] = True,
                    algorithm: BackwardAlgorithm = None, dilation: IntOrPair = 1,
                    groups: int = 1
                    ) -> Tuple[FloatArray, FloatArray, FloatArray]:
    ...


@overload
def conv2d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: IntOrPair = 1,
                    padding: PaddingSpec = 0, *, need_dx: Literal[False],
                    algorithm: BackwardAlgorithm = None, dilation: IntOrPair = 1,
                    groups: int = 1
                    ) -> Tuple[None, FloatArray, FloatArray]:
    ...


@overload
def conv2d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: IntOrPair = 1,
                    padding: PaddingSpec = 0, *, need_dx: bool,
                    algorithm: BackwardAlgorithm = None, dilation: IntOrPair = 1,
                    groups: int = 1
                    ) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    ...


def conv2d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, stride: IntOrPair = 1,
                    padding: PaddingSpec = 0, *, need_dx: bool = True,
                    algorithm: BackwardAlgorithm = None, dilation: IntOrPair = 1,
                    groups: int = 1
                    ) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    """Gradients of ``conv2d`` with respect to x, w and b.

    dy: (N, K, H2, W2), the gradient of the loss with respect to conv2d's
    output; x and w as given to conv2d (the output size is recomputed with
    flooring, so this works after either ``strict`` setting).
    Returns (dx, dw, db) shaped like x, w and (K,); dx is None when
    ``need_dx=False`` (a first layer needs no input gradient).  The gradients
    have the dtype conv2d's output has for these operands (float32 or
    float64).
    ``algorithm`` forces an algorithm: a name applies to each gradient it
    computes (``"col2im"`` or ``"phased"`` the data gradient alone, ``"dot"``
    the weight gradient alone, ``"gemm"`` both), a pair ``(data, weight)`` names each
    (None: the planner chooses).  A name that cannot serve the shape raises
    ValueError saying why, before anything computes.

    >>> import numpy as np, fastconv
    >>> x = np.ones((2, 3, 8, 8)); w = np.ones((4, 3, 3, 3))
    >>> dy = np.ones((2, 4, 8, 8))
    >>> dx, dw, db = fastconv.conv2d_backward(dy, x, w, padding=1)
    >>> dx.shape, dw.shape, db.tolist(), dx.dtype.name
    ((2, 3, 8, 8), (4, 3, 3, 3), [128.0, 128.0, 128.0, 128.0], 'float64')
    >>> fastconv.conv2d_backward(dy, x, w, padding=1, need_dx=False)[0] is None
    True
    """
    where = "conv2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    geom = conv_geometry(x.shape, w.shape, stride, padding, strict=False, where=where,
                         dilation=dilation, groups=groups)
    return _conv2d_backward_run(dy, x, w, geom, need_dx, algorithm, where)


def _conv2d_backward_run(dy: NDArray[Any], x: NDArray[Any], w: NDArray[Any],
                         geom: ConvGeometry, need_dx: bool, algorithm: BackwardAlgorithm,
                         where: str) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    """conv2d_backward once its arguments are checked (as ``_conv2d_run``)."""
    if dy.shape != geom.out_shape:
        raise ValueError(f"{where}: dy must have the shape of conv2d's output "
                         f"{geom.out_shape}, got {dy.shape}")
    dtype = _dtype(dy, x, w)
    dx = _alloc(x.shape, dtype, "dx", where) if need_dx else None
    dw = _alloc(w.shape, dtype, "dw", where)
    db = _alloc((geom.K,), dtype, "db", where)
    if geom.N == 0 or geom.K == 0 or geom.C == 0:
        dw[...] = 0
        db[...] = np.asarray(dy, dtype).sum(axis=(0, 2, 3))
        if dx is not None:
            dx[...] = 0
        return dx, dw, db
    nt = _config.get_num_threads()
    g = tuple(geom)
    alg_data, alg_weight = _backward_algorithms(algorithm, g, np.dtype(dtype), nt,
                                                need_dx and dx is not None and dx.size > 0,
                                                where)
    dyf = _flat(dy, dtype)
    wf = _flat(w, dtype)
    xf, dwf = _flat(x, dtype), dw.reshape(-1)
    _plan.run_planned("conv2d_backward_weight", g, dtype, nt, alg_weight,
                      lambda a, _, t: _core.conv2d_bwd_weight(g, dyf, xf, dwf, db, t, a))
    # An input of height or width 0 (the output then comes from padding
    # alone) has an empty gradient, and nothing to compute.
    if dx is not None and dx.size:
        dxf = dx.reshape(-1)
        _plan.run_planned("conv2d_backward_data", g, dtype, nt, alg_data,
                          lambda a, narrow, t: _core.conv2d_bwd_data(g, dyf, wf, dxf, t, a,
                                                                     narrow))
    return dx, dw, db


# ---------------------------------------------------- transposed convolution

def _transpose_geometry(x_shape: Tuple[int, ...], w_shape: Tuple[int, ...], stride: IntOrPair,
                        padding: IntOrPair, output_padding: IntOrPair, groups: int,
                        dilation: IntOrPair, where: str) -> ConvGeometry:
    """The convolution whose data gradient the transposed convolution of x
    (N, C_in, H, W) with w (C_in, C_out / groups, F_h, F_w) is: its input is
    the transposed convolution's output (N, C_out, H_out, W_out), with
    H_out = (H - 1)*S - 2P + D*(F - 1) + output_padding + 1, and its output x."""
    valid.ndim(x_shape, 4, "x", "(N, C_in, H, W)", where)
    valid.ndim(w_shape, 4, "w", "(C_in, C_out/groups, F_h, F_w)", where)
    N, Cin, H, W = x_shape
    Kw, Cg, FH, FW = w_shape
    G = valid.integer(groups, "groups", where)
    if G < 1:
        raise ValueError(f"{where}: groups must be >= 1, got {G}")
    if Kw != Cin:
        raise ValueError(f"{where}: x has {Cin} channels (x.shape[1]) but w has {Kw} "
                         f"(w.shape[0]); w must be (C_in, C_out/groups, F_h, F_w)")
    if Cin % G:
        raise ValueError(f"{where}: x's {Cin} channels do not divide into groups={G}")
    s = valid.pair(stride, "stride", where)
    p = valid.pair(padding, "padding", where)
    d = valid.pair(dilation, "dilation", where)
    op = valid.pair(output_padding, "output_padding", where)
    if min(s + d) < 1 or min(p + op) < 0:
        raise ValueError(f"{where}: stride and dilation must be >= 1, padding and "
                         f"output_padding >= 0; got stride={stride!r}, dilation={dilation!r}, "
                         f"padding={padding!r}, output_padding={output_padding!r}")
    if op[0] >= s[0] or op[1] >= s[1]:
        raise ValueError(f"{where}: output_padding {op} must be smaller than the stride {s}")
    Hout = (H - 1) * s[0] - 2 * p[0] + d[0] * (FH - 1) + op[0] + 1
    Wout = (W - 1) * s[1] - 2 * p[1] + d[1] * (FW - 1) + op[1] + 1
    if Hout < 1 or Wout < 1:
        raise ShapeError(f"{where}: output (H - 1)*S - 2P + D*(F - 1) + output_padding + 1 = "
                         f"({H} - 1)*{s[0]} - 2*{p[0]} + {d[0]}*({FH} - 1) + {op[0]} + 1 = "
                         f"{Hout} high and {Wout} wide: it must be at least 1")
    return conv_geometry((N, Cg * G, Hout, Wout), (Cin, Cg, FH, FW), s, p, strict=False,
                         where=where, dilation=d, groups=G)


def conv_transpose2d(x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None,
                     stride: IntOrPair = 1, padding: IntOrPair = 0,
                     output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1, *, algorithm: Optional[str] = None
                     ) -> FloatArray:
    """Transposed 2-D convolution (PyTorch's conv_transpose2d): the data
    gradient of the convolution with the same weights, computed by the same
    algorithms.

    x: (N, C_in, H, W); w: (C_in, C_out / groups, F_h, F_w); b: (C_out,) or
    None.  Returns (N, C_out, H_out, W_out) with
    H_out = (H - 1)*S - 2P + D*(F_h - 1) + output_padding + 1 (same for W);
    output_padding must be smaller than the stride.  float32 or float64 as
    conv2d.  ``algorithm`` forces a data-gradient algorithm (see
    ``fastconv.plan`` with op ``"conv2d_backward_data"``; a name that cannot
    serve the shape raises ValueError); None lets the planner choose.

    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 2, 3, 3), np.float32); w = np.ones((2, 4, 2, 2), np.float32)
    >>> y = fastconv.conv_transpose2d(x, w, stride=2)
    >>> y.shape, float(y[0, 0, 0, 0]), float(y.sum())
    ((1, 4, 6, 6), 2.0, 288.0)
    """
    where = "conv_transpose2d"
    alg = -1 if algorithm is None else _plan.algorithm_id(algorithm, ["conv2d_backward_data"],
                                                          where)
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    if b is not None:
        b = valid.computable_array(b, "b", where)
    geom = _transpose_geometry(x.shape, w.shape, stride, padding, output_padding, groups,
                               dilation, where)
    if b is not None and b.shape != (geom.C,):
        raise ValueError(f"{where}: b must have shape ({geom.C},), one per output channel, "
                         f"got {b.shape}")
    dtype = _dtype(x, w, b)
    y = _alloc((geom.N, geom.C, geom.H, geom.W), dtype, "the output", where)
    if y.size == 0 or x.size == 0 or w.size == 0:
        y[...] = 0
    else:
        xf, wf, yf, g = _flat(x, dtype), _flat(w, dtype), y.reshape(-1), tuple(geom)
        nt = _config.get_num_threads()
        if alg >= 0:
            try:
                _core.plan_conv(_core.OP_CONV_DATA, g, dtype.itemsize, nt, alg)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        _plan.run_planned("conv2d_backward_data", g, dtype, nt, alg,
                          lambda a, narrow, t: _core.conv2d_bwd_data(g, xf, wf, yf, t, a,
                                                                     narrow))
    if b is not None:
        y += np.asarray(b, dtype).reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike,
                              stride: IntOrPair = 1, padding: IntOrPair = 0,
                              output_padding: IntOrPair = 0, groups: int = 1,
                              dilation: IntOrPair = 1, *, need_dx: bool = True
                              ) -> Tuple[Optional[FloatArray], FloatArray, FloatArray]:
    """Gradients of ``conv_transpose2d`` with respect to x, w and b: dx is the
    forward convolution of dy with w, dw the convolution's weight gradient
    with dy as its input and x as its output gradient, db dy summed.

    dy: (N, C_out, H_out, W_out); x, w as given to conv_transpose2d.  Returns
    (dx, dw, db) shaped like x, w and (C_out,); dx is None when
    ``need_dx=False``.

    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 2, 3, 3)); w = np.ones((2, 4, 2, 2))
    >>> dx, dw, db = fastconv.conv_transpose2d_backward(np.ones((1, 4, 6, 6)), x, w, stride=2)
    >>> dx.shape, dw.shape, db.tolist()
    ((1, 2, 3, 3), (2, 4, 2, 2), [36.0, 36.0, 36.0, 36.0])
    """
    where = "conv_transpose2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    geom = _transpose_geometry(x.shape, w.shape, stride, padding, output_padding, groups,
                               dilation, where)
    out_shape = (geom.N, geom.C, geom.H, geom.W)
    if dy.shape != out_shape:
        raise ValueError(f"{where}: dy must have the shape of conv_transpose2d's output "
                         f"{out_shape}, got {dy.shape}")
    s, p, d = (geom.SH, geom.SW), (geom.PH, geom.PW), (geom.DH, geom.DW)
    dtype = _dtype(dy, x, w)
    dx = conv2d(dy, w, None, s, p, strict=False, dilation=d, groups=geom.G,
                _name=where) if need_dx else None
    _, dw, _ = conv2d_backward(x, dy, w, s, p, need_dx=False, dilation=d, groups=geom.G)
    db = np.asarray(dy, dtype).sum(axis=(0, 2, 3))
    return (None if dx is None else dx.astype(dtype, copy=False)), dw.astype(dtype, copy=False), db


# ------------------------------------------------------------------ pooling

@overload
def max_pool2d(x: ArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False, *,
               strict: bool = True,
               return_indices: Literal[False] = False, _name: str = "max_pool2d") -> FloatArray:
    ...


@overload
def max_pool2d(x: ArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False, *,
               strict: bool = True, return_indices: Literal[True],
               _name: str = "max_pool2d") -> Tuple[FloatArray, IndexArray]:
    ...


@overload
def max_pool2d(x: ArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False, *,
               strict: bool = True, return_indices: bool,
               _name: str = "max_pool2d") -> Union[FloatArray, Tuple[FloatArray, IndexArray]]:
    ...


def max_pool2d(x: ArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False, *,
               strict: bool = True, return_indices: bool = False,
               _name: str = "max_pool2d") -> Union[FloatArray, Tuple[FloatArray, IndexArray]]:
    """Max pooling over windows of ``kernel_size`` (stride defaults to it).

    x: (N, C, H, W) -> (N, C, H2, W2), H2 = (H - F_h + 2*P_h)/S_h + 1 (same
    for W); with dilation D_h, H2 = (H + 2*P_h - D_h*(F_h - 1) - 1)/S_h + 1
    (window taps D_h rows apart).  Padding counts as -inf (it never wins) and
    may be at most half the kernel.  A window holding NaN gives NaN.  float32
    and float64 keep their dtype; integers give float64, float16 float32.

    ``ceil_mode=True`` rounds the output size up rather than down (so the
    division need not be exact, whatever ``strict`` says): the last window
    may run past the padded input and then pools what it covers; a window
    that would start past the input and its left padding is dropped
    (PyTorch's rule).  A dilated window whose taps all fall in the padding
    gives -inf (and, as in PyTorch, the index of its first row and column
    inside the input).

    With ``return_indices=True`` the result is ``(y, indices)``: indices
    (int64, shaped like y) holds the offset ``h*W + w`` within its (H, W)
    plane of each window's first maximum in row-major order, PyTorch's
    convention.  Passed to ``max_pool2d_backward``, they spare it finding the
    maxima again.

    >>> import numpy as np, fastconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> fastconv.max_pool2d(x, 2)[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    >>> y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    >>> idx[0, 0].tolist()
    [[5, 7], [13, 15]]
    >>> fastconv.max_pool2d(x, 3, 2, ceil_mode=True)[0, 0].tolist()
    [[10.0, 11.0], [14.0, 15.0]]
    >>> fastconv.max_pool2d(x, 2, 1, dilation=2)[0, 0].tolist()
    [[10.0, 11.0], [14.0, 15.0]]
    """
    where = _name
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    return_indices = valid.flag(return_indices, "return_indices", where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    geom = pool_geometry(x.shape, kernel_size, stride, padding, strict=strict, where=where,
                         dilation=dilation, ceil_mode=ceil_mode)
    dil = valid.pair(dilation, "dilation", where)
    return _max_pool2d_run(x, geom, dil, return_indices, where)


def _max_pool2d_run(x: NDArray[Any], geom: PoolGeometry, dil: Tuple[int, int],
                    return_indices: bool, where: str
                    ) -> Union[FloatArray, Tuple[FloatArray, IndexArray]]:
    """max_pool2d once its arguments are checked: x a 4-D array of a dtype
    fastconv computes in, geom its geometry, dil the dilation.  (The PyTorch
    bridge comes in here with a geometry it has worked out before.)"""
    dtype = _dtype(x)
    y = _alloc(geom.out_shape, dtype, "the output", where)
    nt = _config.get_num_threads()
    if not return_indices:
        if y.size and dil != (1, 1):
            _core.pool2d_win_fwd(tuple(geom), dil[0], dil[1], False, True, _flat(x, dtype),
                                 y.reshape(-1), _empty_flat(np.int64), nt)
        elif y.size:
            _core.maxpool2d_fwd(tuple(geom), _flat(x, dtype), y.reshape(-1), nt)
        return y
    idx = _alloc(y.shape, np.int64, "the indices", where)
    if y.size and dil != (1, 1):
        _core.pool2d_win_fwd(tuple(geom), dil[0], dil[1], False, True, _flat(x, dtype),
                             y.reshape(-1), idx.reshape(-1), nt)
    elif y.size:
        _core.maxpool2d_fwd_idx(tuple(geom), _flat(x, dtype), y.reshape(-1), idx.reshape(-1), nt)
    return y, idx


def max_pool2d_backward(dy: ArrayLike, x: ArrayLike, kernel_size: IntOrPair,
                        stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                        dilation: IntOrPair = 1, ceil_mode: bool = False, *,
                        strict: bool = True,
                        indices: Optional[NDArray[np.integer[Any]]] = None) -> FloatArray:
    """Gradient of ``max_pool2d`` with respect to x.

    dy: (N, C, H2, W2), the gradient with respect to max_pool2d's output; x:
    (N, C, H, W), its input.  The first maximum of each window in row-major
    order receives the window's gradient; overlapping windows add up, in window
    order.  Returns dx shaped like x, in the dtype of dy and x promoted
    (float32 or float64).

    ``indices``, from ``max_pool2d(..., return_indices=True)`` on this x, say
    where the maxima are, so x's values are not read (its shape and dtype
    still are); the result has the same bits as without them.  An index
    outside its plane raises ValueError.  The other arguments are
    max_pool2d's.

    >>> import numpy as np, fastconv
    >>> x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    >>> fastconv.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2)[0, 0].tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    >>> y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    >>> fastconv.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, indices=idx)[0, 0].tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """
    where = "max_pool2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    geom = pool_geometry(x.shape, kernel_size, stride, padding, strict=strict, where=where,
                         dilation=dilation, ceil_mode=ceil_mode)
    dil = valid.pair(dilation, "dilation", where)
    if dy.shape != geom.out_shape:
        raise ValueError(f"{where}: dy must have the shape of max_pool2d's output "
                         f"{geom.out_shape}, got {dy.shape}")
    if indices is not None:
        indices = _indices(indices, geom.out_shape, where)
    dtype = _dtype(dy, x)
    dx = _alloc(x.shape, dtype, "dx", where)
    if dx.size:
        if indices is None and dil != (1, 1):
            _core.pool2d_win_bwd(tuple(geom), dil[0], dil[1], False, True, _flat(dy, dtype),
                                 _flat(x, dtype), dx.reshape(-1), _config.get_num_threads())
        elif indices is None:
            _core.maxpool2d_bwd(tuple(geom), _flat(dy, dtype), _flat(x, dtype), dx.reshape(-1),
                                _config.get_num_threads())
        else:
            try:
                _core.maxpool2d_bwd_idx(tuple(geom), _flat(dy, dtype), indices, dx.reshape(-1),
                                        _config.get_num_threads())
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
    return dx


def _indices(indices: object, out_shape: Tuple[int, ...], where: str) -> NDArray[np.int64]:
    """Max-pooling indices as a flat C-contiguous int64 array."""
    if not isinstance(indices, np.ndarray):
        raise TypeError(f"{where}: indices must be a NumPy integer array, "
                        f"got {type(indices).__name__}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{where}: indices must have an integer dtype, got {indices.dtype}")
    if indices.shape != out_shape:
        raise ValueError(f"{where}: indices must have the shape of max_pool2d's output "
                         f"{out_shape}, got {indices.shape}")
    # uint64 values past int64's range wrap to negative ones, which the kernel
    # reports as outside the plane like any other.
    return _flat(indices, np.int64)


def avg_pool2d(x: ArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[Int] = None, *, strict: bool = True,
               _name: str = "avg_pool2d") -> FloatArray:
    """Average pooling over windows of ``kernel_size`` (stride defaults to it).

    x: (N, C, H, W) -> (N, C, H2, W2), H2 = (H - F_h + 2*P_h)/S_h + 1 (same
    for W).  With ``count_include_pad=True`` every window is divided by
    F_h*F_w (padding counts as zeros); otherwise by the number of real input
    values in the window.  ``divisor_override`` (a nonzero int) replaces
    every window's divisor.  ``ceil_mode`` is as for :func:`max_pool2d`; a
    last window that runs past the padded input divides, with
    ``count_include_pad``, by the part of it inside the padded input (as
    PyTorch does).  float32 and float64 keep their dtype; integers give
    float64, float16 float32.

    >>> import numpy as np, fastconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> fastconv.avg_pool2d(x, 2)[0, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    >>> ones = np.ones((1, 1, 2, 2), np.float32)
    >>> y = fastconv.avg_pool2d(ones, 2, stride=1, padding=1, count_include_pad=False)
    >>> y.shape, y.dtype.name, float(y.min())
    ((1, 1, 3, 3), 'float32', 1.0)
    >>> fastconv.avg_pool2d(x, 3, 2, ceil_mode=True)[0, 0].tolist()
    [[5.0, 6.5], [11.0, 12.5]]
    >>> fastconv.avg_pool2d(x, 2, divisor_override=1)[0, 0].tolist()
    [[10.0, 18.0], [42.0, 50.0]]
    """
    where = _name
    x = valid.computable_array(x, "x", where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    divisor = _divisor(divisor_override, where)
    geom = pool_geometry(x.shape, kernel_size, stride, padding, strict=strict, where=where,
                         ceil_mode=ceil_mode)
    dtype = _dtype(x)
    y = _alloc(geom.out_shape, dtype, "the output", where)
    if y.size:
        _core.avgpool2d_fwd(tuple(geom), _flat(x, dtype), y.reshape(-1),
                            bool(count_include_pad), _config.get_num_threads(), divisor)
    return y


def _x_shape(x_shape: ShapeLike, where: str) -> Tuple[int, int, int, int]:
    """A backward's ``x_shape`` argument as four Python ints."""
    if isinstance(x_shape, np.ndarray) and x_shape.ndim == 1:
        x_shape = x_shape.tolist()
    if (not isinstance(x_shape, (tuple, list)) or len(x_shape) != 4
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_))
                       and s >= 0 for s in x_shape)):  # type: ignore[operator]
        raise ValueError(f"{where}: x_shape must be 4 non-negative ints (N, C, H, W), "
                         f"got {x_shape!r}")
    n, c, h, w = (int(s) for s in x_shape)
    return n, c, h, w


def _divisor(divisor_override: object, where: str) -> int:
    """avg_pool2d's divisor_override as the core takes it: 0 for None."""
    if divisor_override is None:
        return 0
    d = valid.integer(divisor_override, "divisor_override", where)
    if d == 0 or abs(d) > valid.MAX_WINDOW_PARAM:
        raise ValueError(f"{where}: divisor_override must be a nonzero int (or None), "
                         f"got {divisor_override!r}")
    return d


def avg_pool2d_backward(dy: ArrayLike, x_shape: ShapeLike, kernel_size: IntOrPair,
                        stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: Optional[Int] = None, *,
                        strict: bool = True) -> FloatArray:
    """Gradient of ``avg_pool2d`` with respect to its input of shape ``x_shape``.

    dy: (N, C, H2, W2), the gradient with respect to avg_pool2d's output;
    x_shape: (N, C, H, W), four ints; the other arguments are avg_pool2d's.
    Returns dx of shape x_shape in dy's dtype (float32 or float64; integers
    give float64).

    >>> import numpy as np, fastconv
    >>> fastconv.avg_pool2d_backward(np.ones((1, 1, 1, 1)), (1, 1, 2, 2), 2)[0, 0].tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    where = "avg_pool2d_backward"
    dy = valid.computable_array(dy, "dy", where)
    x_shape = _x_shape(x_shape, where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    divisor = _divisor(divisor_override, where)
    geom = pool_geometry(x_shape, kernel_size, stride, padding, strict=strict, where=where,
                         ceil_mode=ceil_mode)
    if dy.shape != geom.out_shape:
        raise ValueError(f"{where}: dy must have the shape of avg_pool2d's output "
                         f"{geom.out_shape}, got {dy.shape}")
    dtype = _dtype(dy)
    dx = _alloc(x_shape, dtype, "dx", where)
    if dx.size:
        _core.avgpool2d_bwd(tuple(geom), _flat(dy, dtype), dx.reshape(-1),
                            bool(count_include_pad), _config.get_num_threads(), divisor)
    return dx


# ------------------------------------------------------------------- linear

def _linear_setup(x: NDArray[Any], w: NDArray[Any], where: str) -> Tuple[int, int, int]:
    if x.ndim < 2:
        raise ValueError(f"{where}: x must be (N, D) or (N, d1, ..., dk), got shape {x.shape}")
    valid.ndim(w.shape, 2, "w", "(out_features, in_features)", where)
    N = x.shape[0]
    D = math.prod(x.shape[1:])
    O, Dw = w.shape
    if D != Dw:
        raise ValueError(f"{where}: x has {D} features per sample (x.shape[1:] = "
                         f"{x.shape[1:]}) but w expects {Dw} (w.shape[1])")
    return N, D, O


def linear(x: ArrayLike, w: ArrayLike, b: Optional[ArrayLike] = None, *,
           activation: Optional[Literal["relu"]] = None, _name: str = "linear") -> FloatArray:
    """Fully connected layer: y = x_flat @ w.T + b.

    x: (N, D) or (N, d1, ..., dk) flattened to (N, D); w: (out_features, D);
    b: (out_features,) or None.  Returns (N, out_features), float32 when every
    operand is float32, float64 when any is float64 or an integer array.
    ``activation="relu"`` fuses a ReLU.

    >>> import numpy as np, fastconv
    >>> fastconv.linear(np.ones((2, 3)), np.ones((4, 3)), np.arange(4.0)).tolist()
    [[3.0, 4.0, 5.0, 6.0], [3.0, 4.0, 5.0, 6.0]]
    >>> y = fastconv.linear(np.ones((2, 1, 3), np.float32), -np.ones((4, 3), np.float32),
    ...                     activation="relu")
    >>> y.shape, y.dtype.name, float(y.max())
    ((2, 4), 'float32', 0.0)
    """
    where = _name
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    if b is not None:
        b = valid.computable_array(b, "b", where)
    relu = valid.activation(activation, where)
    N, D, O = _linear_setup(x, w, where)
    return _linear_run(x, w, b, N, D, O, relu, where)


def _linear_run(x: NDArray[Any], w: NDArray[Any], b: Optional[NDArray[Any]], N: int, D: int,
                O: int, relu: bool, where: str) -> FloatArray:
    """linear once its arguments are checked: x, w (and b) arrays of a dtype
    fastconv computes in, x of N rows of D features, w (O, D).  (The PyTorch
    bridge comes in here with the sizes it has read.)"""
    if b is not None and b.shape != (O,):
        raise ValueError(f"{where}: b must have shape ({O},) to match w's {O} outputs, "
                         f"got {b.shape}")
    dtype = _dtype(x, w, b)
    y = _alloc((N, O), dtype, "the output", where)
    if y.size == 0:
        return y
    if D == 0:
        y[...] = 0 if b is None else np.asarray(b, dtype)
        return np.maximum(y, 0) if relu else y
    bf = _flat(b, dtype) if b is not None else _empty_flat(dtype)
    _core.linear_fwd(N, D, O, _flat(x, dtype), _flat(w, dtype), bf, y.reshape(-1), relu,
                     _config.get_num_threads())
    return y


def linear_backward(dy: ArrayLike, x: ArrayLike,
                    w: ArrayLike) -> Tuple[FloatArray, FloatArray, FloatArray]:
    """Gradients of ``linear``: returns (dx, dw, db), dx in x's shape.

    dy: (N, out_features), the gradient with respect to linear's output; x
    and w as given to linear.  dx has x's shape, dw (out_features, D) and db
    (out_features,), in the dtype of the operands promoted (float32 or
    float64).

    >>> import numpy as np, fastconv
    >>> dx, dw, db = fastconv.linear_backward(np.ones((2, 4)), np.ones((2, 3)), np.ones((4, 3)))
    >>> dx.shape, dw.shape, db.tolist()
    ((2, 3), (4, 3), [2.0, 2.0, 2.0, 2.0])
    """
    where = "linear_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    w = valid.computable_array(w, "w", where)
    N, D, O = _linear_setup(x, w, where)
    if dy.shape != (N, O):
        raise ValueError(f"{where}: dy must have the shape of linear's output {(N, O)}, "
                         f"got {dy.shape}")
    dtype = _dtype(dy, x, w)
    dx = _alloc((N, D), dtype, "dx", where)
    dw = _alloc((O, D), dtype, "dw", where)
    db = _alloc((O,), dtype, "db", where)
    if N == 0 or D == 0 or O == 0:
        dx[...] = 0
        dw[...] = 0
        db[...] = np.asarray(dy, dtype).sum(axis=0)
        return dx.reshape(x.shape), dw, db
    _core.linear_bwd(N, D, O, _flat(dy, dtype), _flat(x, dtype), _flat(w, dtype),
                     dx.reshape(-1), dw.reshape(-1), db, _config.get_num_threads())
    return dx.reshape(x.shape), dw, db


# --------------------------------------------------------------------- relu

def relu(x: ArrayLike, *, _name: str = "relu") -> FloatArray:
    """max(x, 0) elementwise; NaN stays NaN.

    x: any shape.  Returns a new array of x's shape: float32 and float64 keep
    their dtype, integers give float64, float16 float32.

    >>> import fastconv
    >>> fastconv.relu([-1.0, 0.5]).tolist()
    [0.0, 0.5]
    >>> fastconv.relu([[-3, 3]]).dtype.name
    'float64'
    """
    x = valid.computable_array(x, "x", _name)
    dtype = _dtype(x)
    # out= keeps a 0-d input a 0-d array (a bare ufunc call returns a scalar).
    y: FloatArray = np.maximum(np.asarray(x, dtype), 0,
                               out=_alloc(x.shape, dtype, "the output", _name))
    return y


def relu_backward(dy: ArrayLike, x: ArrayLike) -> FloatArray:
    """Gradient of ``relu``: dy where x > 0, else 0.

    dy and x: the same shape, any.  Returns dx of that shape, in the dtype of
    dy and x promoted (float32 or float64).

    >>> import fastconv
    >>> fastconv.relu_backward([2.0, 3.0], [-1.0, 1.0]).tolist()
    [0.0, 3.0]
    """
    where = "relu_backward"
    dy = valid.computable_array(dy, "dy", where)
    x = valid.computable_array(x, "x", where)
    if dy.shape != x.shape:
        raise ValueError(f"{where}: dy must have x's shape {x.shape}, got {dy.shape}")
    dtype = _dtype(dy, x)
    dx = _alloc(x.shape, dtype, "dx", where)
    # (np.ascontiguousarray would turn a 0-d result into shape (1,).)
    dx[...] = np.where(x > 0, dy, 0)
    return dx


def output_size(size: Int, kernel: Int, stride: Int = 1, padding: Int = 0, *,
                strict: bool = True) -> int:
    """Output length of a convolution or pooling along one axis.

    ``(size - kernel + 2*padding) / stride + 1``, an int; see :func:`conv2d`
    for ``strict``.  Every argument is an int (a NumPy integer too).

    >>> import fastconv
    >>> fastconv.output_size(227, 11, 4, 0)
    55
    >>> fastconv.output_size(224, 7, 2, 3, strict=False)
    112
    """
    return _output_size(size, kernel, stride, padding, strict=strict, where="output_size")


# LP, adaptive and unpooling, and the 1-D views, live in modules of their
# own, which build on the helpers and ops above (so they are imported last).
from ._one_d import (avg_pool1d, avg_pool1d_backward, conv1d, conv1d_backward,  # noqa: E402
                     max_pool1d, max_pool1d_backward)
from ._pooling import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward,  # noqa: E402
                       adaptive_max_pool2d, adaptive_max_pool2d_backward, lp_pool2d,
                       lp_pool2d_backward, max_unpool2d)
