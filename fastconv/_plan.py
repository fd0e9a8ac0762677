"""The plan of a call: which algorithm computes it, and why.

Every convolution is planned in the C core before anything computes: one
list names every algorithm (``algorithms()``), and for a call the planner
tries the specialised ones in that order, taking the first whose estimate
beats the general GEMM's.  ``plan(...)`` shows the decision without running
anything; ``conv2d(..., algorithm=name)`` forces one.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

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
        dilation: IntOrPair
        groups: int

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
    if name in _NAMES:              # the common case, without the list of valid names
        alg = _NAMES.index(name)
        if any(_TABLE[alg][2] & (1 << _OPS[op]) for op in ops):
            return alg
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


class PlanCacheInfo(NamedTuple):
    """The plan cache's counts, as :func:`plan_cache_info` returns them:
    ``hits`` (calls that reused a plan), ``misses`` (calls that ran the
    planner), ``maxsize`` (plans it keeps at most) and ``currsize`` (plans
    it holds).

    >>> import fastconv
    >>> info = fastconv.plan_cache_info()
    >>> isinstance(info, fastconv.PlanCacheInfo), info.maxsize > 0
    (True, True)
    """
    hits: int
    misses: int
    maxsize: int
    currsize: int


def plan_cache_info() -> PlanCacheInfo:
    """How the plan cache has served convolution calls since it was last cleared.

    Every convolution (``conv2d``, its gradients, the transposed and 1-D
    convolutions, ``plan``) is planned before it computes; a call whose op,
    shapes, dtype, forced algorithm, thread count and instruction set were
    planned before reuses that plan instead of planning again (the least
    recently used of ``maxsize`` plans is dropped first).  The plan is the
    same, so are the results.  ``set_num_threads``, ``set_planning``,
    ``import_wisdom``, ``forget_wisdom`` and switching the instruction set
    empty the cache.  Whether the weights hold inf or NaN is checked on
    every call, cached plan or not.

    Returns a :class:`PlanCacheInfo` ``(hits, misses, maxsize, currsize)``.

    >>> import numpy as np, fastconv
    >>> fastconv.plan_cache_clear()
    >>> x = np.ones((1, 2, 9, 9), np.float32); w = np.ones((3, 2, 3, 3), np.float32)
    >>> y1 = fastconv.conv2d(x, w); y2 = fastconv.conv2d(x, w)
    >>> info = fastconv.plan_cache_info()
    >>> info.hits, info.misses, info.currsize
    (1, 1, 1)
    """
    return PlanCacheInfo(*_core.plan_cache_info())


def plan_cache_clear() -> None:
    """Empties the plan cache (see :func:`plan_cache_info`) and zeroes its counts.

    >>> import fastconv
    >>> fastconv.plan_cache_clear(); fastconv.plan_cache_info().currsize
    0
    """
    _core.plan_cache_clear()


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
    dilation = op_args.pop("dilation", 1)
    groups = op_args.pop("groups", 1)
    _no_more(op_args, where)
    w = _shaped(w_shape, "w_shape", where)
    # stride=None (pooling's default) is refused here with conv2d's TypeError
    geom = conv_geometry(x.shape, w.shape, stride, padding,  # type: ignore[arg-type]
                         strict=strict, where=op, dilation=dilation, groups=groups)
    alg = -1 if algorithm is None else algorithm_id(algorithm, [op], where)
    if alg < 0 and _planning == "measure":
        with _wisdom_lock:
            entry = _wisdom.get(_key(op, geom, dt, nt))
        if entry is not None:
            a, narrow, threads = entry["choice"]
            info = _core.plan_conv(_OPS[op], tuple(geom), dt.itemsize, threads, a, narrow)
            info["reason"] = f"measured: {_choice_name(entry['choice'])} the fastest of " \
                             f"{len(entry['seconds'])} candidates; {info['reason']}"
            return info
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


# ------------------------------------------------------------ measured planning
#
# Like FFTW_MEASURE or cudnn.benchmark: with set_planning("measure"), the
# first call of a convolution op on a shape times every candidate that can
# serve it (each algorithm, lanes' two kernel tiles, all threads or one) on
# the call's own arrays and keeps the fastest; later calls of that shape run
# it straight away.  The decisions ("wisdom") can be saved and loaded.

_PLANNINGS = ("estimate", "measure")
_planning = "estimate"
_Runner = Callable[[int, int, int], Dict[str, Any]]   # (algorithm, tile, threads) -> plan run
_Choice = Tuple[int, int, int]          # algorithm id, lanes tile (-1, 0, 1), threads
_Key = Tuple[str, Tuple[int, ...], str, str, int]
_wisdom: Dict[_Key, Dict[str, Any]] = {}
_wisdom_lock = threading.Lock()
WISDOM_FORMAT = "fastconv-wisdom"
WISDOM_VERSION = 1


def set_planning(mode: str) -> None:
    """How convolutions choose their algorithm: ``"estimate"`` (the default:
    the planner's estimates, deterministic) or ``"measure"`` (the first call
    of each shape times the candidates and keeps the fastest).

    >>> import fastconv
    >>> fastconv.set_planning("measure"); fastconv.get_planning()
    'measure'
    >>> fastconv.set_planning("estimate")
    """
    global _planning
    if mode not in _PLANNINGS:
        raise ValueError(f"set_planning: mode must be one of {', '.join(_PLANNINGS)}, "
                         f"got {mode!r}")
    _planning = mode
    _core.plan_cache_clear()


def get_planning() -> str:
    """The planning mode: ``"estimate"`` or ``"measure"``.

    >>> import fastconv
    >>> fastconv.get_planning()
    'estimate'
    """
    return _planning


def _signature() -> Dict[str, Any]:
    """What wisdom is only valid for: this fastconv, CPU and kernels."""
    from ._version import __version__
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if not model:
        import platform
        model = platform.processor() or platform.machine()
    return {"fastconv": __version__, "cpu": model,
            "isas": list(_config.available_isas()),
            "kernels": list(_core.kernel_names()) + list(_core.narrow_kernel_names())}


def _key(op: str, geom: Sequence[int], dtype: DTypeLike, nt: int) -> _Key:
    return (op, tuple(int(v) for v in geom), np.dtype(dtype).name, _config.get_isa(), int(nt))


def _candidates(op: str, geom: Tuple[int, ...], dsize: int, nt: int) -> list[_Choice]:
    """(algorithm id, narrow, threads) of every way op can run geom."""
    code = _OPS[op]
    out: list[_Choice] = []
    for alg, name in enumerate(_NAMES):
        if not _serves(name, code):
            continue
        try:
            _core.plan_conv(code, geom, dsize, nt, alg)
        except ValueError:
            continue
        tiles = (0, 1) if name == "lanes" and _core.narrow_kernel_names() != \
            _core.kernel_names() else (-1,)
        for narrow in tiles:
            for threads in ((nt, 1) if nt > 1 else (nt,)):
                out.append((alg, narrow, threads))
    return out


def _measure(op: str, geom: Tuple[int, ...], dtype: DTypeLike, nt: int,
             call: _Runner) -> Tuple[_Choice, Dict[_Choice, float]]:
    """Times each candidate on the call's own arrays (median of three runs
    after one warm-up) and returns the fastest, with the times."""
    import time
    times: Dict[_Choice, float] = {}
    for cand in _candidates(op, geom, np.dtype(dtype).itemsize, nt):
        try:
            call(*cand)
        except ValueError:   # e.g. lanes on weights holding inf or NaN
            continue
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            call(*cand)
            runs.append(time.perf_counter() - t0)
        times[cand] = sorted(runs)[1]
    best = min(times, key=lambda c: times[c])
    return best, times


def _choice_name(cand: _Choice) -> str:
    alg, narrow, threads = cand
    tile = {0: "/wide", 1: "/narrow"}.get(narrow, "")
    return f"{_NAMES[alg]}{tile}@{threads}"


def run_planned(op: str, geom: Tuple[int, ...], dtype: DTypeLike, nt: int, alg: int,
                call: _Runner) -> Dict[str, Any]:
    """Runs ``call(alg, narrow, threads)`` (a binding call returning the plan
    it ran) as the planning mode says and records it for ``last_run``: a
    forced algorithm or "estimate" planning runs the planner's choice; under
    "measure", an unforced call runs the measured best for its shape."""
    if alg >= 0 or _planning != "measure":
        info = call(alg, -1, nt)
        _ran(op, info)
        return info
    key = _key(op, geom, dtype, nt)
    with _wisdom_lock:
        entry = _wisdom.get(key)
    if entry is None:
        best, times = _measure(op, geom, dtype, nt, call)
        entry = {"choice": best, "seconds": {_choice_name(c): t for c, t in times.items()}}
        with _wisdom_lock:
            _wisdom[key] = entry
    info = call(*entry["choice"])
    info["reason"] = f"measured: {_choice_name(entry['choice'])} the fastest of " \
                     f"{len(entry['seconds'])} candidates; {info['reason']}"
    _ran(op, info)
    return info


def forget_wisdom() -> None:
    """Forgets every measured decision.

    >>> import fastconv
    >>> fastconv.forget_wisdom()
    """
    with _wisdom_lock:
        _wisdom.clear()
    _core.plan_cache_clear()


def export_wisdom(path: str | os.PathLike[str]) -> int:
    """Saves the measured decisions to ``path`` (JSON), with the signature of
    this fastconv and CPU that they are valid for; returns how many.

    >>> import os, tempfile, numpy as np, fastconv
    >>> fastconv.set_planning("measure")
    >>> y = fastconv.conv2d(np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32))
    >>> path = os.path.join(tempfile.mkdtemp(), "wisdom.json")
    >>> fastconv.export_wisdom(path)
    1
    >>> fastconv.forget_wisdom(); fastconv.import_wisdom(path)
    1
    >>> fastconv.set_planning("estimate"); fastconv.forget_wisdom()
    """
    import json
    with _wisdom_lock:
        entries = [{"op": k[0], "geometry": list(k[1]), "dtype": k[2], "isa": k[3],
                    "threads": k[4], "algorithm": _NAMES[v["choice"][0]],
                    "narrow": v["choice"][1], "run_threads": v["choice"][2],
                    "seconds": v["seconds"]} for k, v in _wisdom.items()]
    doc = {"format": WISDOM_FORMAT, "version": WISDOM_VERSION, "signature": _signature(),
           "entries": entries}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    return len(entries)


def _parse_entry(e: Dict[str, Any]) -> Tuple[_Key, Dict[str, Any]]:
    if e["op"] not in ("conv2d", "conv2d_backward_data", "conv2d_backward_weight"):
        raise ValueError(f"unknown op {e['op']!r}")
    geometry = tuple(int(v) for v in e["geometry"])
    if len(geometry) not in (13, 16):
        raise ValueError("a geometry has 13 or 16 fields")
    if e["algorithm"] not in _NAMES:
        raise ValueError(f"unknown algorithm {e['algorithm']!r}")
    narrow, threads = int(e["narrow"]), int(e["run_threads"])
    if narrow not in (-1, 0, 1) or threads < 1:
        raise ValueError("bad kernel tile or thread count")
    key = (e["op"], geometry, np.dtype(e["dtype"]).name, str(e["isa"]), int(e["threads"]))
    seconds = {str(k): float(v) for k, v in dict(e.get("seconds", {})).items()}
    return key, {"choice": (_NAMES.index(e["algorithm"]), narrow, threads), "seconds": seconds}


def import_wisdom(path: str | os.PathLike[str]) -> int:
    """Loads decisions saved by ``export_wisdom``; returns how many.  A file
    from another fastconv version or CPU is ignored with a warning (0); a
    corrupt one raises ValueError and changes nothing.

    >>> import os, tempfile, fastconv
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.json")
    >>> fastconv.export_wisdom(path), fastconv.import_wisdom(path)
    (0, 0)
    """
    import json
    import warnings
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"import_wisdom: {path} is not a wisdom file (not JSON: {exc})") \
            from None
    try:
        if doc.get("format") != WISDOM_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {WISDOM_FORMAT!r}")
        if doc.get("version") != WISDOM_VERSION or doc.get("signature") != _signature():
            warnings.warn(f"import_wisdom: {path} was measured by another fastconv version "
                          f"or on another CPU; ignored", RuntimeWarning, stacklevel=2)
            return 0
        parsed = dict(_parse_entry(e) for e in doc["entries"])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"import_wisdom: {path} is corrupt ({exc}); nothing imported") \
            from None
    with _wisdom_lock:
        _wisdom.update(parsed)
    _core.plan_cache_clear()
    return len(parsed)
