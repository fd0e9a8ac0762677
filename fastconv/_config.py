"""Run-time configuration: thread count and instruction set.

Thread count, first match wins: ``set_num_threads(n)`` > the environment
variable ``FASTCONV_NUM_THREADS`` > the OpenMP runtime's own setting (which
follows ``OMP_NUM_THREADS``, ``threadpoolctl.threadpool_limits(n,
user_api="openmp")`` and the CPUs available to the process).

Instruction set: detected once at import; ``FASTCONV_ISA=generic|avx2|avx512|neon``
forces a path, ``set_isa`` / ``using_isa`` switch it at run time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from typing import Any, Dict, Iterator, List, Optional

from numpy.typing import DTypeLike

from . import _core, _waiting
from . import _validate as valid
from ._validate import MAX_THREADS
from ._version import __version__

ISAS = ("generic", "avx2", "avx512", "neon")

_lock = threading.Lock()
_num_threads: Optional[int] = None


def set_num_threads(n: Optional[int]) -> None:
    """Use ``n`` threads in every fastconv call (``None`` restores the default).

    ``n``: an int from 1 to 1024, process-wide, ahead of
    ``FASTCONV_NUM_THREADS`` and the OpenMP runtime's setting.

    >>> import fastconv
    >>> fastconv.set_num_threads(1); fastconv.get_num_threads()
    1
    >>> fastconv.set_num_threads(None)
    """
    global _num_threads
    with _lock:
        _num_threads = None if n is None else valid.thread_count(n, "n", "set_num_threads")
    _core.plan_cache_clear()


def _env_threads() -> Optional[int]:
    raw = os.environ.get("FASTCONV_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"FASTCONV_NUM_THREADS must be a positive integer, got {raw!r}")
    if n > MAX_THREADS:
        raise ValueError(f"FASTCONV_NUM_THREADS must be at most {MAX_THREADS}, got {raw!r}")
    return n


def _requested_threads() -> int:
    n = _num_threads
    if n is not None:
        return n
    n = _env_threads()
    if n is not None:
        return n
    return max(1, _core.omp_max_threads())


def get_num_threads() -> int:
    """The number of threads the next fastconv call will use: the setting
    above, but never more than can run (1 in a build without OpenMP, or
    inside an OpenMP parallel region that cannot nest).

    >>> import fastconv
    >>> fastconv.set_num_threads(2)
    >>> fastconv.get_num_threads() == (2 if fastconv._core.openmp_enabled() else 1)
    True
    >>> fastconv.set_num_threads(None); fastconv.get_num_threads() >= 1
    True
    """
    return _core.threads_usable(_requested_threads())


def available_isas() -> List[str]:
    """Instruction sets this build and CPU can run, slowest first.

    >>> from fastconv import _config
    >>> _config.available_isas()[0], set(_config.available_isas()) <= set(_config.ISAS)
    ('generic', True)
    """
    return [name for name in ISAS if _core.isa_supported(name)]


def get_isa() -> str:
    """The active instruction set: ``"generic"``, ``"avx2"``, ``"avx512"`` or ``"neon"``.

    >>> from fastconv import _config
    >>> _config.get_isa() in _config.available_isas()
    True
    """
    return _core.isa()


def set_isa(name: str) -> None:
    """Switch every kernel to instruction set ``name`` (process-wide).

    ValueError for a name fastconv does not know, RuntimeError for one this
    CPU or build cannot run.

    >>> from fastconv import _config
    >>> before = _config.get_isa()
    >>> _config.set_isa("generic"); _config.get_isa()
    'generic'
    >>> _config.set_isa(before)
    """
    if name not in ISAS:
        raise ValueError(f"unknown instruction set {name!r}; choose one of {', '.join(ISAS)}")
    if _core.set_isa(name) != 0:
        raise RuntimeError(f"instruction set {name!r} is not supported by this CPU or build; "
                           f"available: {', '.join(available_isas())}")


@contextlib.contextmanager
def using_isa(name: str) -> Iterator[None]:
    """Context manager running the enclosed code on instruction set ``name``.

    >>> from fastconv import _config
    >>> with _config.using_isa("generic"):
    ...     print(_config.get_isa())
    generic
    """
    previous = get_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


def fma_peak_gflops(dtype: DTypeLike = "float32", seconds: float = 0.2) -> float:
    """Measured single-core FMA peak of the active instruction set, GFLOP/s."""
    import numpy as np

    return _core.fma_peak_gflops(np.dtype(dtype).itemsize, float(seconds))


def _apply_env_isa() -> None:
    name = os.environ.get("FASTCONV_ISA", "").strip().lower()
    if not name:
        return
    if name not in ISAS:
        raise ValueError(f"FASTCONV_ISA={name!r} is not an instruction set fastconv knows; "
                         f"use one of {', '.join(ISAS)}")
    if not _core.isa_supported(name):
        warnings.warn(f"FASTCONV_ISA={name!r}: this CPU or build cannot run it; using "
                      f"{_core.isa_best()!r} instead", RuntimeWarning, stacklevel=3)
        return
    _core.set_isa(name)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
               "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20}


def _parse_cache_sizes(text: str) -> Dict[str, int]:
    """``"l1d=48K,l2=2M,l3=64M"`` -> bytes per level (l3 may be left out)."""
    sizes: Dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        num = value.rstrip("kmibB")
        unit = value[len(num):]
        if not sep or key not in ("l1d", "l2", "l3") or key in sizes or \
                not num.isdigit() or unit not in _SIZE_UNITS:
            raise ValueError(f"FASTCONV_CACHE_SIZES={text!r}: expected entries such as "
                             f"'l1d=48K,l2=2M,l3=64M' (l1d and l2 required, units K or M)")
        sizes[key] = int(num) * _SIZE_UNITS[unit]
    if "l1d" not in sizes or "l2" not in sizes:
        raise ValueError(f"FASTCONV_CACHE_SIZES={text!r}: give at least l1d and l2")
    return sizes


def _apply_env_caches() -> None:
    """FASTCONV_CACHE_SIZES replaces the detected cache sizes the blocking is
    derived from (for a CPU whose caches the system reports wrongly, and for
    tests of other blockings)."""
    text = os.environ.get("FASTCONV_CACHE_SIZES", "").strip()
    if not text:
        return
    sizes = _parse_cache_sizes(text)
    try:
        _core.set_cache_sizes(sizes["l1d"], sizes["l2"], sizes.get("l3", 0))
    except ValueError as e:
        raise ValueError(f"FASTCONV_CACHE_SIZES={text!r}: {e}") from None


def _kib(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"


def config_info() -> Dict[str, Any]:
    """What ``show_config`` prints, as a dict.

    >>> import fastconv
    >>> info = fastconv._config.config_info()
    >>> info["version"] == fastconv.__version__, "gemm" in info["algorithms"]
    (True, True)
    """
    s_kernel, d_kernel = _core.kernel_names()
    s_narrow, d_narrow = _core.narrow_kernel_names()
    if _num_threads is not None:
        source = "set_num_threads"
    elif os.environ.get("FASTCONV_NUM_THREADS", "").strip():
        source = "FASTCONV_NUM_THREADS"
    elif _core.openmp_enabled():
        source = "OpenMP runtime (OMP_NUM_THREADS / CPUs available)"
    else:
        source = "sequential build"
    return {
        "version": __version__,
        "isa": get_isa(),
        "isa_detected": _core.isa_best(),
        "isa_available": available_isas(),
        "kernel_float32": s_kernel,
        "kernel_float64": d_kernel,
        # the batch-lane path's narrow tiles (the same names where there are none)
        "kernel_float32_narrow": s_narrow,
        "kernel_float64_narrow": d_narrow,
        "openmp": _core.openmp_enabled(),
        "algorithms": [name for name, _, _ in _core.algorithms()],
        "num_threads": get_num_threads(),
        "num_threads_source": source,
        # the caches the blocking is derived from, and the active kernels'
        # (mr, nr, kc, mc, nc)
        "wait_policy": _waiting.describe(),
        "caches": _core.cache_sizes(),
        "blocking_float32": _core.gemm_blocking(4),
        "blocking_float64": _core.gemm_blocking(8),
    }


def show_config() -> None:
    """Print the build and run-time configuration of fastconv: version,
    instruction set, kernels, OpenMP, algorithms and threads.

    >>> import fastconv
    >>> fastconv.show_config()  # doctest: +ELLIPSIS
    fastconv ...
      instruction set : ...
      float32 kernel  : ...
      float64 kernel  : ...
      OpenMP          : ...
      algorithms      : ...gemm...
      threads         : ...
      waiting threads : ...
      caches          : L1d ...
      blocking        : ...
    """
    info = config_info()
    omp = "enabled" if info["openmp"] else "not available (sequential build)"

    c = info["caches"]
    caches = (f"L1d {_kib(c['l1d'])}, L2 {_kib(c['l2'])}, last level {_kib(c['l3'])} "
              f"shared by {c['l3_sharing']} CPUs (from {c['source']})")

    def blocking(dt: str) -> str:
        return "KC {2}, MC {3}, NC {4}".format(*info[f"blocking_{dt}"])

    def kernels(dt: str) -> str:
        wide, narrow = info[f"kernel_{dt}"], info[f"kernel_{dt}_narrow"]
        return wide if narrow == wide else f"{wide} (batch lanes also {narrow})"
    print(f"fastconv {info['version']}\n"
          f"  instruction set : {info['isa']} (detected: {info['isa_detected']}; "
          f"available: {', '.join(info['isa_available'])})\n"
          f"  float32 kernel  : {kernels('float32')}\n"
          f"  float64 kernel  : {kernels('float64')}\n"
          f"  OpenMP          : {omp}\n"
          f"  algorithms      : {', '.join(info['algorithms'])}\n"
          f"  threads         : {info['num_threads']} (from {info['num_threads_source']})\n"
          f"  waiting threads : {info['wait_policy']}\n"
          f"  caches          : {caches}\n"
          f"  blocking        : float32 {blocking('float32')}; float64 {blocking('float64')}")
