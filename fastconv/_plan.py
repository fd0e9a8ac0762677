"""The plan of a call: which algorithm computes it, and why.

Every convolution is planned in the C core before anything computes: one
list names every algorithm (``algorithms()``), and for a call the planner
tries the specialised ones in that order, taking the first whose estimate
beats the general GEMM's.  ``plan(...)`` shows the decision without running
anything; ``conv2d(..., algorithm=name)`` forces one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _config, _core, _validate
from ._shapes import conv_geometry, pool_geometry
from ._typing import IntOrPair, ShapeLike

if TYPE_CHECKING:
    from typing import TypedDict

    from typing_extensions import Unpack

    class PlanOptions(TypedDict, total=False):
        """The keyword arguments of :func:`plan` besides dtype, stride and padding."""
        algorithm: Optional[str]
        strict: bool
        kernel_size: IntOrPair
        threads: Optional[int]

_OPS = {
    "conv2d": _core.OP_CONV_FWD,
    "conv2d_backward_data": _core.OP_CONV_DATA,
    "conv2d_backward_weight": _core.OP_CONV_WEIGHT,
    "linear": _core.OP_LINEAR_FWD,
    "linear_backward": _core.OP_LINEAR_BWD,
    "max_pool2d": _core.OP_POOL,
    "avg_pool2d": _core.OP_POOL,
    "max_pool2d_backward": _core.OP_POOL,
    "avg_pool2d_backward": _core.OP_POOL,
}

_TABLE = _core.algorithms()
_NAMES = tuple(name for name, _, _ in _TABLE)


def algorithms() -> Tuple[str, ...]:
    """The names of every algorithm fastconv has, in the planner's order.

    >>> import fastconv
    >>> "gemm" in fastconv.algorithms() and "direct" in fastconv.algorithms()
    True
    """
    return _NAMES


def algorithm_doc(name: str) -> str:
    """One line on how algorithm ``name`` computes.

    >>> from fastconv import _plan
    >>> isinstance(_plan.algorithm_doc("gemm"), str)
    True
    """
    return _TABLE[_NAMES.index(name)][1]


def _serves(name: str, op: int) -> bool:
    return bool(_TABLE[_NAMES.index(name)][2] & (1 << op))


def algorithm_id(name: object, ops: Sequence[str], where: str) -> int:
    """The index of algorithm ``name``, which must serve one of ``ops``
    (op names of ``_OPS``); ValueError listing the valid names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: algorithm must be a str or None, got {name!r}")
    valid = [n for n in _NAMES if any(_serves(n, _OPS[op]) for op in ops)]
    if name not in _NAMES:
        raise ValueError(f"{where}: unknown algorithm {name!r}; valid: {', '.join(valid)}")
    if name not in valid:
        raise ValueError(f"{where}: algorithm {name!r} does not compute "
                         f"{' or '.join(ops)}; valid: {', '.join(valid)}")
    return _NAMES.index(name)


_last = threading.local()


def _ran(op: str, info: Dict[str, Any]) -> None:
    """Records the plan a call on this thread just ran (see ``last_run``)."""
    setattr(_last, op, info)


def last_run(op: str) -> Optional[Dict[str, Any]]:
    """What the last ``op`` call on this thread ran, as a dict (algorithm,
    kernel, threads, workspace_bytes, reason), or None before any: the plan
    after the weights were seen (weights holding inf or NaN never run
    ``lanes``).  op: ``"conv2d"``, ``"conv2d_backward_data"`` or
    ``"conv2d_backward_weight"``.

    >>> import numpy as np, fastconv
    >>> y = fastconv.conv2d(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), algorithm="gemm")
    >>> fastconv._plan.last_run("conv2d")["algorithm"]
    'gemm'
    """
    return getattr(_last, op, None)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB" if n >= 1024 \
        else f"{n} B"


@dataclass(frozen=True)
class Plan:
    """How one call is computed, decided before anything computes.

    ``algorithm`` (a name of ``fastconv.algorithms()``), ``kernel`` (the
    register tile's kernel), ``threads`` (threads that run it),
    ``workspace_bytes`` (memory it allocates besides its output) and
    ``reason`` (one line saying why the planner chose it), for ``op`` on
    inputs of ``x_shape`` (and weights of ``w_shape``) in ``dtype``
    (``"float32"`` or ``"float64"``).

    >>> import fastconv
    >>> p = fastconv.plan("max_pool2d", (1, 3, 8, 8), dtype="float32", kernel_size=2,
    ...                   threads=1)
    >>> isinstance(p, fastconv.Plan), p.op, p.x_shape, p.w_shape, p.dtype, p.threads
    (True, 'max_pool2d', (1, 3, 8, 8), None, 'float32', 1)
    """
    op: str
    algorithm: str
    kernel: str
    threads: int
    workspace_bytes: int
    reason: str
    dtype: str
    x_shape: Tuple[int, ...]
    w_shape: Optional[Tuple[int, ...]] = None

    def __repr__(self) -> str:
        w = f", w_shape={self.w_shape}" if self.w_shape is not None else ""
        return (f"Plan(op={self.op!r}, x_shape={self.x_shape}{w}, dtype={self.dtype!r}: "
                f"algorithm={self.algorithm!r}, kernel={self.kernel!r}, "
                f"threads={self.threads}, workspace={_mib(self.workspace_bytes)}; "
                f"{self.reason})")


def _shaped(shape: ShapeLike, name: str, where: str) -> NDArray[np.float32]:
    """A zero-byte array of ``shape``, for the functional layer's checks."""
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{where}: {name} must be a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{where}: {name} must not hold negative sizes, got {shape}")
    return np.broadcast_to(np.zeros((), np.float32), shape)


def plan(op: str, x_shape: ShapeLike, w_shape: Optional[ShapeLike] = None, *,
         dtype: DTypeLike, stride: Optional[IntOrPair] = 1, padding: IntOrPair = 0,
         **op_args: Unpack[PlanOptions]) -> Plan:
    """The plan fastconv would run for ``op`` on these shapes, computing nothing.

    op: ``"conv2d"``, ``"conv2d_backward_data"``, ``"conv2d_backward_weight"``,
    ``"linear"``, ``"linear_backward"``, ``"max_pool2d"``, ``"avg_pool2d"`` (and
    their ``_backward``).  x_shape: (N, C, H, W) (linear: (N, D)); w_shape:
    (K, C, F_h, F_w) (linear: (out, in); pooling: None).  dtype: float32 or
    float64.  stride and padding as the op takes them (for pooling, pass
    ``stride=None`` for its default, the kernel size).  op_args:
    ``algorithm=`` (a forced convolution algorithm), ``strict=``,
    ``kernel_size=`` (pooling, required) and ``threads=`` (default:
    ``get_num_threads()``).  A forced algorithm that
    cannot serve the shape raises ValueError saying why.  The plan takes the
    weights as finite: weights holding inf or NaN never run ``lanes``.

    >>> import fastconv
    >>> p = fastconv.plan("conv2d", (8, 64, 56, 56), (64, 64, 3, 3), dtype="float32",
    ...                   padding=1, threads=1)
    >>> p.algorithm in fastconv.algorithms(), p.threads
    (True, 1)
    """
    where = "plan"
    if op not in _OPS:
        raise ValueError(f"{where}: unknown op {op!r}; valid: {', '.join(_OPS)}")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dt}")
    threads = op_args.pop("threads", None)
    nt = _config.get_num_threads() if threads is None else \
        _validate.thread_count(threads, "threads", where)
    algorithm = op_args.pop("algorithm", None)
    x = _shaped(x_shape, "x_shape", where)
    if op.startswith("conv2d"):
        info = _plan_conv(op, x, w_shape, dt, stride, padding, algorithm, nt, op_args, where)
    elif op.startswith("linear"):
        info = _plan_linear(op, x, w_shape, dt, algorithm, nt, op_args, where)
    else:
        info = _plan_pool(op, x, w_shape, dt, stride, padding, algorithm, nt, op_args, where)
    return Plan(op=op, algorithm=info["algorithm"], kernel=info["kernel"],
                threads=info["threads"], workspace_bytes=info["workspace_bytes"],
                reason=info["reason"], dtype=dt.name, x_shape=tuple(x.shape),
                w_shape=None if w_shape is None else tuple(int(s) for s in w_shape))


def _no_more(op_args: PlanOptions, where: str) -> None:
    if op_args:
        raise TypeError(f"{where}: unexpected argument(s) {', '.join(sorted(op_args))}")


def _plan_conv(op: str, x: NDArray[Any], w_shape: Optional[ShapeLike], dt: np.dtype[Any],
               stride: Optional[IntOrPair], padding: IntOrPair, algorithm: Optional[str],
               nt: int, op_args: PlanOptions, where: str) -> Dict[str, Any]:
    if w_shape is None:
        raise ValueError(f"{where}: {op} needs w_shape (K, C, F_h, F_w)")
    strict = op_args.pop("strict", op == "conv2d")
    _no_more(op_args, where)
    w = _shaped(w_shape, "w_shape", where)
    # stride=None (pooling's default) is refused here with conv2d's TypeError
    geom = conv_geometry(x.shape, w.shape, stride, padding,  # type: ignore[arg-type]
                         strict=strict, where=op)
    alg = -1 if algorithm is None else algorithm_id(algorithm, [op], where)
    return _core.plan_conv(_OPS[op], tuple(geom), dt.itemsize, nt, alg)


def _plan_linear(op: str, x: NDArray[Any], w_shape: Optional[ShapeLike], dt: np.dtype[Any],
                 algorithm: Optional[str], nt: int, op_args: PlanOptions,
                 where: str) -> Dict[str, Any]:
    _no_more(op_args, where)
    if algorithm is not None:
        algorithm_id(algorithm, [op], where)
    if x.ndim < 2 or w_shape is None or len(w_shape) != 2:
        raise ValueError(f"{where}: {op} needs x_shape (N, ...) and w_shape (out, in)")
    N, D = x.shape[0], int(np.prod(x.shape[1:]))
    O, Dw = (int(s) for s in w_shape)
    if Dw != D:
        raise ValueError(f"{where}: x has {D} features but w expects {Dw}")
    return _core.plan_linear(N, D, O, op == "linear_backward", dt.itemsize, nt)


def _plan_pool(op: str, x: NDArray[Any], w_shape: Optional[ShapeLike], dt: np.dtype[Any],
               stride: Optional[IntOrPair], padding: IntOrPair, algorithm: Optional[str],
               nt: int, op_args: PlanOptions, where: str) -> Dict[str, Any]:
    if w_shape is not None:
        raise ValueError(f"{where}: pooling has no weights: w_shape must be None")
    if "kernel_size" not in op_args:
        raise TypeError(f"{where}: {op} needs kernel_size=")
    kernel = op_args.pop("kernel_size")
    strict = op_args.pop("strict", True)
    _no_more(op_args, where)
    if algorithm is not None:
        algorithm_id(algorithm, [op], where)
    _validate.ndim(x.shape, 4, "x", "(N, C, H, W)", op)
    geom = pool_geometry(x.shape, kernel, stride, padding, strict=strict, where=op)
    return _core.plan_pool(tuple(geom), dt.itemsize, nt)
