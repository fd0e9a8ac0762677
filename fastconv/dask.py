"""Dask bridge: fastconv's ops over dask arrays, past one machine's memory.

    import dask.array as da
    import fastconv.dask as fd

    x = da.from_zarr(...)                     # (N, C, H, W), chunked any way
    y = fd.conv2d(x, w, b, stride=2, padding=1)
    y = fd.forward(model, x)                  # a fastconv layer or Sequential

Every function takes a dask array of activations (NCHW) and in-memory
weights, and returns a lazy dask array; nothing runs until it is computed,
on the threaded scheduler or a ``dask.distributed`` cluster.

How the work is cut:

- chunks along the batch map straight to output chunks (``map_blocks``);
- the channel axis is made one chunk (a convolution sums over it);
- chunks along the height and width use ``dask.array.map_overlap`` with the
  halo of the window.  Output chunk boundaries are put on multiples of the
  stride: input chunk j starts at row o_j * S for output boundary o_j (the
  input is rechunked to that, merging chunks smaller than the halo), and
  each block receives ceil(P/S)*S rows of halo above and F - S - P below.
  Every block then makes one call with the same kernel, stride and padding
  as the whole array would (padding only where the block meets the array's
  border; the few rows computed from padding inside the array are cropped),
  so each output element sees the same input values in the same places.

Exactness: the result has the same bits as the in-memory op for any
chunking.  Pooling reduces each window in a fixed order; a convolution sums
each output in an order fixed by its algorithm and the layer (never by where
the output falls in the call's tiling), and every block runs the algorithm
the planner picks for the whole array (or the one passed as ``algorithm=``).
If that algorithm cannot serve some block's shape, that block falls back to
its own plan and may differ from the in-memory result by rounding.

Threads: each block runs with ``fastconv.get_num_threads()`` threads; with
several dask worker threads per process, limit them
(``client.run(fastconv.set_num_threads, 1)``, or threadpoolctl).

Importing this module needs dask (``pip install 'fastconv[dask]'``);
``import fastconv`` does not.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

try:
    import dask.array as da
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastconv.dask needs dask: pip install 'fastconv[dask]' "
                      f"(or pip install 'dask[array]') ({_exc})", name=_exc.name) from None

from . import _plan
from . import _validate as valid
from . import functional as F
from . import modules as M
from ._shapes import PaddingSpec, ShapeError, conv_geometry, conv_padding, pool_geometry
from ._typing import ArrayLike, IntOrPair

#: A dask array (dask's own annotations are not relied on).
DaskArray = Any
_Pair = Tuple[int, int]
_BlockOp = Callable[[NDArray[Any]], NDArray[Any]]

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "relu", "linear",
           "forward"]


# ------------------------------------------------------- cutting the work

def _dask_input(x: object, where: str) -> DaskArray:
    if not isinstance(x, da.Array):
        raise TypeError(f"{where}: x must be a dask array (dask.array.from_array(x, "
                        f"chunks=...) makes one), got {type(x).__name__}")
    if x.dtype.kind not in "fiu" or (x.dtype.kind == "f" and x.dtype.itemsize > 8):
        # the functional layer's own check, on an empty array of the dtype
        valid.computable_array(np.empty((0,), x.dtype), "x", where)
    return x


def _bounds(chunks: Sequence[int]) -> List[int]:
    out: List[int] = np.concatenate([[0], np.cumsum(chunks)]).astype(int).tolist()
    return out


class _Axis:
    """How one spatial axis of a windowed op is cut.

    A window op with extent E (D*(F - 1) + 1 for kernel F and dilation D),
    stride S and padding P before the first row (and any after the last) maps
    n input rows to n2 output rows; output row r reads input rows r*S - P ..
    r*S - P + E - 1.  ``outs`` are the output chunk boundaries o_0 = 0 < ...
    < o_m = n2, and input chunk j is rows [o_j*S, o_{j+1}*S) (the last one to
    n).  Block j is computed by one call on input rows [(o_j - t_j)*S,
    min(n, (o_{j+1}-1)*S - P + E)), with t_j = min(o_j, ceil(P/S)), keeping
    the call's output rows [t_j, t_j + o_{j+1} - o_j): the rows above come
    from the call's own top padding where the array goes on, and are dropped,
    as are any computed from its bottom padding where the array goes on.
    """

    def __init__(self, n: int, n2: int, e: int, s: int, p: int, in_chunks: Sequence[int]
                 ) -> None:
        self.n, self.n2, self.e, self.s, self.p = n, n2, e, s, p
        self.lead = -(-p // s)                 # ceil(P/S): rows computed above a block
        before, after = self.lead * s, max(0, e - s - p)
        need = max(before, after, 1)           # map_overlap takes a halo from one neighbour
        wanted = {min(n2, -(-b // s)) for b in _bounds(in_chunks)[1:-1]} - {0, n2}
        outs = [0]
        for o in sorted(wanted):
            if (o - outs[-1]) * s >= need:
                outs.append(o)
        while len(outs) > 1 and n - outs[-1] * s < need:
            outs.pop()
        outs.append(n2)
        self.outs = outs
        self.chunked = len(outs) > 2
        self.depth = (before, after) if self.chunked else (0, 0)
        starts = [o * s for o in outs[:-1]]
        self.in_chunks: Tuple[int, ...] = tuple(np.diff(starts + [n]).tolist())
        self.out_chunks: Tuple[int, ...] = tuple(np.diff(outs).tolist())

    def block(self, j: int) -> Tuple[int, int, int]:
        """(first, stop) rows of block j's extended array to compute from,
        and the first output row of that call to keep."""
        o0, o1 = self.outs[j], self.outs[j + 1]
        t = min(o0, self.lead)
        start = (o0 - t) * self.s
        stop = min(self.n, (o1 - 1) * self.s - self.p + self.e)
        ext0 = o0 * self.s - (self.depth[0] if j > 0 else 0)   # the block's first row
        return start - ext0, stop - ext0, t


def _windowed(x: DaskArray, op: _BlockOp, geom_hw: _Pair, extent: _Pair, stride: _Pair,
              padding: _Pair, out_c: int, dtype: np.dtype[Any], where: str) -> DaskArray:
    """``op(block)`` over x's blocks, exact per output block (see _Axis).
    ``op`` is an in-memory call with the whole array's kernel, stride and
    padding, ``strict=False``; ``extent`` is the window's (dilated) height and
    width and ``padding`` the rows and columns before the first; its output
    has ``out_c`` channels."""
    N, C, H, W = x.shape
    H2, W2 = geom_hw
    ah = _Axis(H, H2, extent[0], stride[0], padding[0], x.chunks[2])
    aw = _Axis(W, W2, extent[1], stride[1], padding[1], x.chunks[3])
    x = x.rechunk({1: C or 1, 2: ah.in_chunks, 3: aw.in_chunks})
    out_chunks = (x.chunks[0], (out_c,), ah.out_chunks, aw.out_chunks)
    meta = np.empty((0, 0, 0, 0), dtype)

    def block(xb: NDArray[Any], block_info: Optional[Dict[Any, Any]] = None) -> NDArray[Any]:
        assert block_info is not None
        _, _, jh, jw = block_info[None]["chunk-location"]
        h0, h1, th = ah.block(jh)
        w0, w1, tw = aw.block(jw)
        y = op(xb[:, :, h0:h1, w0:w1])
        nh, nw = ah.out_chunks[jh], aw.out_chunks[jw]
        return np.ascontiguousarray(y[:, :, th:th + nh, tw:tw + nw])

    if not (ah.chunked or aw.chunked):
        return da.map_blocks(block, x, chunks=out_chunks, dtype=dtype, meta=meta)
    depth = {0: (0, 0), 1: (0, 0), 2: ah.depth, 3: aw.depth}
    return da.map_overlap(block, x, depth=depth, boundary="none", trim=False,
                          allow_rechunk=False, chunks=out_chunks, dtype=dtype, meta=meta)


def _planned(x_shape: Tuple[int, ...], w_shape: Tuple[int, ...], dtype: np.dtype[Any],
             conv: Dict[str, Any], algorithm: Optional[str], where: str) -> Optional[str]:
    """The algorithm every block of a convolution runs: the caller's, or the
    planner's for the whole array (``conv``: stride, padding, dilation and
    groups)."""
    if algorithm is not None:
        _plan.plan("conv2d", x_shape, w_shape, dtype=dtype, strict=False,
                   algorithm=algorithm, **conv)   # a name that cannot serve raises here
        return algorithm
    if 0 in x_shape or 0 in w_shape:
        return None
    return _plan.plan("conv2d", x_shape, w_shape, dtype=dtype, strict=False,
                      **conv).algorithm


def _conv_block(w: NDArray[Any], b: Optional[NDArray[Any]], conv: Dict[str, Any],
                relu: bool, algorithm: Optional[str], forced: bool) -> _BlockOp:
    activation: Optional[Literal["relu"]] = "relu" if relu else None

    def op(xb: NDArray[Any]) -> NDArray[Any]:
        if algorithm is not None:
            try:
                return F.conv2d(xb, w, b, strict=False, activation=activation,
                                algorithm=algorithm, **conv)
            except ValueError:
                if forced:
                    raise
                # the whole array's algorithm cannot serve this block's shape
        return F.conv2d(xb, w, b, strict=False, activation=activation, **conv)
    return op


# ------------------------------------------------------------------- ops

def conv2d(x: DaskArray, w: ArrayLike, b: Optional[ArrayLike] = None, stride: IntOrPair = 1,
           padding: PaddingSpec = 0, *, strict: bool = True,
           activation: Optional[Literal["relu"]] = None,
           algorithm: Optional[str] = None, dilation: IntOrPair = 1,
           groups: int = 1) -> DaskArray:
    """:func:`fastconv.conv2d` over a dask array x (N, C, H, W).

    w (K, C / groups, F_h, F_w) and b (K,) are in-memory arrays (anything
    :func:`fastconv.conv2d` takes); ``padding`` (any of its forms),
    ``dilation`` and ``groups`` as there.  Returns a dask array (N, K, H2, W2)
    chunked like x along N and, as nearly as the stride allows, along H and
    W.  ``algorithm`` forces one algorithm on every block (None: the one the
    planner picks for the whole array, where it can serve a block).

    >>> import numpy as np, dask.array as da, fastconv.dask as fd
    >>> x = da.ones((4, 3, 32, 32), chunks=(2, 3, 16, 16))
    >>> y = fd.conv2d(x, np.ones((8, 3, 3, 3)), padding=1)
    >>> y.shape, y.chunks[2]
    ((4, 8, 32, 32), (16, 16))
    """
    where = "fastconv.dask.conv2d"
    x = _dask_input(x, where)
    w = valid.computable_array(w, "w", where)
    if b is not None:
        b = valid.computable_array(b, "b", where)
    relu = valid.activation(activation, where)
    geom = conv_geometry(x.shape, w.shape, stride, padding, strict=strict, where=where,
                         dilation=dilation, groups=groups)
    if b is not None and b.shape != (geom.K,):
        raise ValueError(f"{where}: b must have shape ({geom.K},) to match w's {geom.K} "
                         f"filters, got {b.shape}")
    dtype = F._dtype(np.empty(0, x.dtype), w, b)
    stride = (geom.SH, geom.SW)
    dil = (geom.DH, geom.DW)
    sides = conv_padding(padding, (geom.FH, geom.FW), stride, dil, where)
    conv: Dict[str, Any] = dict(stride=stride, padding=sides, dilation=dil, groups=geom.G)
    alg = _planned(x.shape, w.shape, dtype, conv, algorithm, where)
    w = np.ascontiguousarray(w, dtype)
    b = None if b is None else np.ascontiguousarray(b, dtype)
    extent = (dil[0] * (geom.FH - 1) + 1, dil[1] * (geom.FW - 1) + 1)
    return _windowed(x, _conv_block(w, b, conv, relu, alg, algorithm is not None),
                     (geom.H2, geom.W2), extent, stride, (geom.PH, geom.PW), geom.K, dtype,
                     where)


def _pool_plane(x_shape: Tuple[int, ...], kernel: _Pair, padding: _Pair) -> _BlockOp:
    """What a pooling block is handed: itself, except that a block whose
    plane is exactly the unpadded window (which the core pools as a whole
    plane, summing in another order) gets one more column, which no kept
    window reads, when the whole array is not pooled that way too."""
    if padding != (0, 0) or tuple(x_shape[2:]) == tuple(kernel):
        return lambda xb: xb

    def shape(xb: NDArray[Any]) -> NDArray[Any]:
        if xb.shape[2:] == tuple(kernel):
            return np.pad(xb, ((0, 0), (0, 0), (0, 0), (0, 1)), mode="edge")
        return xb
    return shape


def max_pool2d(x: DaskArray, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False, *,
               strict: bool = True) -> DaskArray:
    """:func:`fastconv.max_pool2d` over a dask array (``dilation`` and
    ``ceil_mode`` as there): the same bits as in memory, for any chunking.

    >>> import dask.array as da, fastconv.dask as fd
    >>> fd.max_pool2d(da.ones((2, 3, 8, 8), chunks=(1, 3, 4, 4)), 2).shape
    (2, 3, 4, 4)
    >>> fd.max_pool2d(da.ones((1, 1, 9, 9), chunks=(1, 1, 5, 5)), 2, ceil_mode=True).shape
    (1, 1, 5, 5)
    """
    where = "fastconv.dask.max_pool2d"
    x = _dask_input(x, where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    g = pool_geometry(x.shape, kernel_size, stride, padding, strict=strict, where=where,
                      dilation=dilation, ceil_mode=ceil_mode)
    k, s, p = (g.KH, g.KW), (g.SH, g.SW), (g.PH, g.PW)
    d = valid.pair(dilation, "dilation", where)
    dtype = F._dtype(np.empty(0, x.dtype))
    shape = _pool_plane(x.shape, k, p) if d == (1, 1) else (lambda xb: xb)
    extent = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
    return _windowed(x, lambda xb: F.max_pool2d(shape(xb), k, s, p, d, ceil_mode, strict=False),
                     (g.H2, g.W2), extent, s, p, g.C, dtype, where)


def avg_pool2d(x: DaskArray, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None, *, strict: bool = True) -> DaskArray:
    """:func:`fastconv.avg_pool2d` over a dask array (``ceil_mode``,
    ``count_include_pad`` and ``divisor_override`` as there): the same bits as
    in memory, for any chunking.

    >>> import dask.array as da, fastconv.dask as fd
    >>> fd.avg_pool2d(da.ones((2, 3, 8, 8), chunks=(1, 3, 4, 4)), 3, 1, 1).shape
    (2, 3, 8, 8)
    """
    where = "fastconv.dask.avg_pool2d"
    x = _dask_input(x, where)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    count_include_pad = valid.flag(count_include_pad, "count_include_pad", where)
    ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
    g = pool_geometry(x.shape, kernel_size, stride, padding, strict=strict, where=where,
                      ceil_mode=ceil_mode)
    k, s, p = (g.KH, g.KW), (g.SH, g.SW), (g.PH, g.PW)
    # checked (and refused with the NumPy API's message) before anything is built
    F.avg_pool2d(np.zeros((0,) + tuple(x.shape[1:]), np.float32), k, s, p, ceil_mode,
                 count_include_pad, divisor_override, strict=False)
    dtype = F._dtype(np.empty(0, x.dtype))
    shape = _pool_plane(x.shape, k, p)
    return _windowed(x, lambda xb: F.avg_pool2d(shape(xb), k, s, p, ceil_mode, count_include_pad,
                                                divisor_override, strict=False),
                     (g.H2, g.W2), k, s, p, g.C, dtype, where)


class _TAxis:
    """How one spatial axis of a transposed convolution is cut.

    With E = D*(F - 1) + 1 the kernel's dilated extent, output row r gathers
    input rows ceil((r + P - E + 1)/S) .. floor((r + P)/S).  Input chunk j,
    rows [u_j, u_{j+1}), gives output rows [u_j*S, u_{j+1}*S) (the last one
    to n_out), with a halo of floor((E - 1 - P)/S) rows above and ceil(P/S)
    below.  Block j is one call with the whole
    array's stride and padding on its extended rows [a, b): the call's output
    row q is the array's row a*S + q.
    """

    def __init__(self, n: int, n_out: int, e: int, s: int, p: int, in_chunks: Sequence[int]
                 ) -> None:
        self.n, self.n_out, self.e, self.s, self.p = n, n_out, e, s, p
        before, after = max(0, (e - 1 - p) // s), -(-p // s)
        need = max(before, after, 1)
        ins = [0]
        for u in _bounds(in_chunks)[1:-1]:
            if u - ins[-1] >= need and u * s < n_out:   # (padding may crop the last rows)
                ins.append(u)
        while len(ins) > 1 and n - ins[-1] < need:
            ins.pop()
        ins.append(n)
        self.ins = ins
        self.chunked = len(ins) > 2
        self.depth = (before, after) if self.chunked else (0, 0)
        self.in_chunks: Tuple[int, ...] = tuple(np.diff(ins).tolist())
        outs = [u * s for u in ins[:-1]] + [n_out]
        self.outs = outs
        self.out_chunks: Tuple[int, ...] = tuple(np.diff(outs).tolist())

    def block(self, j: int, ext_rows: int) -> Tuple[int, int, int]:
        """(first array row of block j's extended rows, output_padding of its
        call, first call row to keep)."""
        a = self.ins[j] - (self.depth[0] if j > 0 else 0)
        base = (ext_rows - 1) * self.s - 2 * self.p + self.e
        need = self.outs[j + 1] - a * self.s
        op = min(self.s - 1, max(0, need - base))
        return a, op, self.outs[j] - a * self.s


def conv_transpose2d(x: DaskArray, w: ArrayLike, b: Optional[ArrayLike] = None,
                     stride: IntOrPair = 1, padding: IntOrPair = 0,
                     output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> DaskArray:
    """Transposed convolution over a dask array x (N, C_in, H, W), with
    in-memory weights w (C_in, C_out / groups, F_h, F_w) and b (C_out,):
    returns (N, C_out, H_out, W_out),
    H_out = (H - 1)*S - 2P + D*(F - 1) + output_padding + 1, as
    :func:`fastconv.conv_transpose2d`.  Input chunk [u, v) along H gives
    output rows [u*S, v*S).

    >>> import numpy as np, dask.array as da, fastconv.dask as fd
    >>> x = da.ones((1, 2, 8, 8), chunks=(1, 2, 4, 4))
    >>> y = fd.conv_transpose2d(x, np.ones((2, 3, 3, 3)), stride=2, padding=1,
    ...                         output_padding=1)
    >>> y.shape, y.chunks[2]
    ((1, 3, 16, 16), (8, 8))
    """
    where = "fastconv.dask.conv_transpose2d"
    x = _dask_input(x, where)
    w = valid.computable_array(w, "w", where)
    if b is not None:
        b = valid.computable_array(b, "b", where)
    geom = F._transpose_geometry(tuple(x.shape), tuple(w.shape), stride, padding,
                                 output_padding, groups, dilation, where)
    stride, padding = (geom.SH, geom.SW), (geom.PH, geom.PW)
    dil, G = (geom.DH, geom.DW), geom.G
    extent = (dil[0] * (geom.FH - 1) + 1, dil[1] * (geom.FW - 1) + 1)
    h_out, w_out, c_out = geom.H, geom.W, geom.C
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"{where}: b must have shape ({c_out},) to match w's {c_out} "
                         f"output channels, got {b.shape}")
    dtype = F._dtype(np.empty(0, x.dtype), w, b)
    w = np.ascontiguousarray(w, dtype)
    b = None if b is None else np.ascontiguousarray(b, dtype)
    alg = None
    if x.size and w.size:
        alg = _plan.plan("conv2d_backward_data", (x.shape[0], c_out, h_out, w_out), w.shape,
                         dtype=dtype, stride=stride, padding=padding, dilation=dil,
                         groups=G).algorithm
    ah = _TAxis(x.shape[2], h_out, extent[0], stride[0], padding[0], x.chunks[2])
    aw = _TAxis(x.shape[3], w_out, extent[1], stride[1], padding[1], x.chunks[3])
    x = x.rechunk({1: x.shape[1] or 1, 2: ah.in_chunks, 3: aw.in_chunks})
    out_chunks = (x.chunks[0], (c_out,), ah.out_chunks, aw.out_chunks)

    def block(xb: NDArray[Any], block_info: Optional[Dict[Any, Any]] = None) -> NDArray[Any]:
        assert block_info is not None
        _, _, jh, jw = block_info[None]["chunk-location"]
        a_h, op_h, q_h = ah.block(jh, xb.shape[2])
        a_w, op_w, q_w = aw.block(jw, xb.shape[3])
        nh, nw = ah.out_chunks[jh], aw.out_chunks[jw]
        out = np.zeros((xb.shape[0], c_out, nh, nw), dtype)
        try:
            try:
                y = F.conv_transpose2d(xb, w, None, stride, padding, (op_h, op_w), G, dil,
                                       algorithm=alg)
            except ValueError:   # the whole array's algorithm cannot serve this block
                y = F.conv_transpose2d(xb, w, None, stride, padding, (op_h, op_w), G, dil)
        except ValueError:
            # A block too small for its call to have output rows: compute it
            # without padding and crop (its rounding may then differ).
            y = F.conv_transpose2d(xb, w, None, stride, 0, (op_h, op_w), G, dil)
            q_h, q_w = q_h + padding[0], q_w + padding[1]
        part = y[:, :, q_h:q_h + nh, q_w:q_w + nw]
        out[:, :, :part.shape[2], :part.shape[3]] = part
        if b is not None:
            out += b.reshape(1, -1, 1, 1)
        return out

    meta = np.empty((0, 0, 0, 0), dtype)
    if not (ah.chunked or aw.chunked):
        return da.map_blocks(block, x, chunks=out_chunks, dtype=dtype, meta=meta)
    depth = {0: (0, 0), 1: (0, 0), 2: ah.depth, 3: aw.depth}
    return da.map_overlap(block, x, depth=depth, boundary="none", trim=False,
                          allow_rechunk=False, chunks=out_chunks, dtype=dtype, meta=meta)


def relu(x: DaskArray) -> DaskArray:
    """:func:`fastconv.relu` elementwise over a dask array, chunks kept.

    >>> import dask.array as da, fastconv.dask as fd
    >>> fd.relu(da.arange(-2.0, 2.0, chunks=2)).compute().tolist()
    [0.0, 0.0, 0.0, 1.0]
    """
    where = "fastconv.dask.relu"
    x = _dask_input(x, where)
    dtype = F._dtype(np.empty(0, x.dtype))
    return x.map_blocks(lambda xb: F.relu(xb), dtype=dtype)


def linear(x: DaskArray, w: ArrayLike, b: Optional[ArrayLike] = None, *,
           activation: Optional[Literal["relu"]] = None) -> DaskArray:
    """:func:`fastconv.linear` over a dask array x (N, ...) chunked along the
    batch (the feature axes are made one chunk); w and b in memory.

    >>> import numpy as np, dask.array as da, fastconv.dask as fd
    >>> y = fd.linear(da.ones((6, 2, 3), chunks=(2, 1, 3)), np.ones((4, 6)), np.arange(4.0))
    >>> y.shape, y.chunks[0], y.compute()[0].tolist()
    ((6, 4), (2, 2, 2), [6.0, 7.0, 8.0, 9.0])
    """
    where = "fastconv.dask.linear"
    x = _dask_input(x, where)
    w = valid.computable_array(w, "w", where)
    if b is not None:
        b = valid.computable_array(b, "b", where)
    valid.activation(activation, where)
    if x.ndim < 2:
        raise ValueError(f"{where}: x must be (N, D) or (N, d1, ..., dk), got shape {x.shape}")
    valid.ndim(w.shape, 2, "w", "(out_features, in_features)", where)
    D = math.prod(x.shape[1:])
    if D != w.shape[1]:
        raise ValueError(f"{where}: x has {D} features per sample (x.shape[1:] = "
                         f"{x.shape[1:]}) but w expects {w.shape[1]} (w.shape[1])")
    dtype = F._dtype(np.empty(0, x.dtype), w, b)
    x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    return da.map_blocks(lambda xb: F.linear(xb, w, b, activation=activation), x,
                         chunks=(x.chunks[0], (w.shape[0],)), drop_axis=list(range(2, x.ndim)),
                         dtype=dtype, meta=np.empty((0, 0), dtype))


# ---------------------------------------------------------------- modules

def _by_batch(layer: M.Module, x: DaskArray, where: str) -> DaskArray:
    """Any layer, one call per batch chunk (every other axis one chunk)."""
    out = layer.output_shape(x.shape[1:])
    x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    probe = copy.copy(layer).forward(np.zeros((1,) + x.shape[1:], x.dtype))

    def block(xb: NDArray[Any]) -> NDArray[Any]:
        # a copy per block: the layer's forward cache stays with the copy,
        # and threads sharing the layer do not write to one object
        return copy.copy(layer).forward(xb)

    lead = x.ndim - len(out) - 1
    kwargs = {"drop_axis": list(range(1 + len(out), x.ndim))} if lead > 0 else \
        {"new_axis": list(range(x.ndim, 1 + len(out)))} if lead < 0 else {}
    return da.map_blocks(block, x, chunks=(x.chunks[0],) + tuple((s,) for s in out),
                         dtype=probe.dtype, meta=np.empty((0,) * (1 + len(out)), probe.dtype),
                         **kwargs)


def forward(module: M.Module, x: DaskArray) -> DaskArray:
    """A fastconv layer's or ``Sequential``'s forward over a dask array.

    Conv2d, MaxPool2d, AvgPool2d and ReLU keep the chunks along H and W
    (each layer through the op of this module, so each is exact as that op
    is); Flatten, Linear and any other layer run once per batch chunk, on
    whole samples.  Layers compute as their forward does (Conv2d and Linear
    in their parameters' dtype).  Layers are sent to the workers as they are:
    they pickle, and each block runs on a copy, so the module keeps no
    forward cache from this call.

    >>> import numpy as np, dask.array as da, fastconv, fastconv.dask as fd
    >>> net = fastconv.Sequential(fastconv.Conv2d(3, 4, 3, padding=1, seed=0),
    ...                           fastconv.ReLU(), fastconv.MaxPool2d(2),
    ...                           fastconv.Flatten(), fastconv.Linear(64, 10, seed=0))
    >>> x = da.ones((6, 3, 8, 8), chunks=(2, 3, 4, 4), dtype=np.float32)
    >>> fd.forward(net, x).shape
    (6, 10)
    """
    where = "fastconv.dask.forward"
    if not isinstance(module, M.Module):
        raise TypeError(f"{where}: module must be a fastconv layer or Sequential, got "
                        f"{type(module).__name__}")
    x = _dask_input(x, where)
    if isinstance(module, M.Sequential):
        for i, layer in enumerate(module.layers):
            try:
                x = forward(layer, x)
            except (ValueError, TypeError) as e:
                if type(e) not in (ShapeError, ValueError, TypeError):
                    raise
                raise type(e)(f"Sequential[{i}] {e}") from None
        return x
    if isinstance(module, M.Conv2d):
        if x.ndim != 4:
            raise ValueError(f"{module!r}: expected input of shape (N, "
                             f"{module.in_channels}, H, W), got shape {x.shape}")
        module._check_channels(x.shape[1])
        return conv2d(x.astype(module.dtype), module.weight, module.bias, module.stride,
                      module.padding, strict=module.strict, dilation=module.dilation,
                      groups=module.groups)
    if isinstance(module, M.MaxPool2d):
        return max_pool2d(x, module.kernel_size, module.stride, module.padding,
                          module.dilation, module.ceil_mode, strict=module.strict)
    if isinstance(module, M.AvgPool2d):
        return avg_pool2d(x, module.kernel_size, module.stride, module.padding,
                          module.ceil_mode, module.count_include_pad, module.divisor_override,
                          strict=module.strict)
    if isinstance(module, M.ReLU):
        return relu(x)
    return _by_batch(module, x, where)
