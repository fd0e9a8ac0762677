"""Timing and the machine: the interleaved median timer, the NumPy
baseline's time budget, the copy bandwidth, the allocator setting, and the
facts about the machine recorded with the results."""

import ctypes
import gc
import math
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# ------------------------------------------------------------ machine facts

def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cpu_model():
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_caches():
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for entry in entries:
        if not entry.startswith("index"):
            continue
        d = os.path.join(base, entry)
        level = _read(os.path.join(d, "level")).strip()
        kind = _read(os.path.join(d, "type")).strip()
        size = _read(os.path.join(d, "size")).strip()
        if level and size and kind != "Instruction":
            out[f"L{level}{'d' if kind == 'Data' else ''}"] = size
    return out


def cpus_available():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info():
    mem = ""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal"):
            mem = line.split(":", 1)[1].strip()
    return {
        "cpu": cpu_model(),
        "cpus_available": cpus_available(),
        "cpu_count": os.cpu_count(),
        "caches": cpu_caches(),
        "memory": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def parse_size(text):
    """'1024K' -> 1048576; '' -> None."""
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        if text and text[-1] in mult:
            return int(float(text[:-1]) * mult[text[-1]])
        return int(text) if text else None
    except ValueError:
        return None


def measure_copy_bandwidth(nthreads, mib=64, rounds=5):
    """Best read+write bandwidth (GB/s, counting both directions) of
    ``nthreads`` threads each copying its own ``mib`` MiB array, larger than
    any cache, with NumPy (which releases the GIL while copying)."""
    n = (mib << 20) // 8
    pairs = [(np.ones(n), np.empty(n)) for _ in range(nthreads)]
    for src, dst in pairs:          # fault the pages in before timing
        np.copyto(dst, src)
    best = 0.0
    with ThreadPoolExecutor(max_workers=nthreads) as pool:
        for _ in range(rounds):
            barrier = threading.Barrier(nthreads)

            def work(pair):
                barrier.wait()
                np.copyto(pair[1], pair[0])

            t0 = time.perf_counter()
            list(pool.map(work, pairs))
            dt = time.perf_counter() - t0
            best = max(best, 2 * 8 * n * nthreads / dt / 1e9)
    return best


def retain_freed_memory():
    """Ask glibc's malloc to keep freed memory instead of returning it to the
    kernel, so that buffers of up to 32 MiB reallocated on every call are not
    page-faulted in again each time. Page faults cost every contender
    (fastconv's and PyTorch's outputs and workspaces, NumPy's columns) but
    unevenly, and on some virtual machines a fault costs microseconds: left
    alone they can dominate a layer's time and the comparison stops being one
    of the kernels. Returns a description of what was done."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return "allocator left as is (not glibc)"
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "allocator left as is (libc not found)"
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = (libc.mallopt(m_mmap_threshold, 32 << 20)      # glibc's upper limit
          and libc.mallopt(m_trim_threshold, 1 << 30)
          and libc.mallopt(m_top_pad, 64 << 20))
    if not ok:
        return "allocator left as is (mallopt refused)"
    return ("glibc malloc keeps freed memory (mmap threshold 32 MiB, trim threshold "
            "1 GiB; --malloc default to leave it alone)")


# ------------------------------------------------------------- the timing

def _time(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def measure(fns, repeat, budget, min_sample=0.005, gap=0.0, drop_above=None):
    """Median time per call of each callable in ``fns`` (dict name -> fn),
    the contenders interleaved round by round in a rotating order.

    Each contender is called once first (warm-up: page faults, caches,
    thread pools), twice when that call is short; the last of these calls
    sets how many calls make one sample (enough to fill ``min_sample``
    seconds). The number of rounds is
    ``repeat``, fewer (but at least 3) when the rounds would take more than
    ``budget`` seconds. With ``gap`` > 0 the process sleeps that long before
    each sample, untimed, so that the previous contender's OpenMP workers,
    which spin for some milliseconds after a parallel region, have gone to
    sleep and do not compete for the cores. Returns ({name: result of the
    first call}, {name: {"median_s", "samples_s", "number"}}, {name: seconds
    of one call} for the contenders of ``drop_above`` (name -> seconds) whose
    warm-up call took longer than that: they are left out of the rounds)."""
    names = list(fns)
    first = {}
    number = {}
    dropped = {}
    cost = 0.0
    for name in list(names):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        first[name] = fns[name]()
        t = time.perf_counter() - t0
        if t < 0.05:
            # A short first call is dominated by one-off costs (page faults
            # on fresh buffers, thread start-up): time a second one.
            t = _time(fns[name], 1)
        if drop_above and name in drop_above and t > drop_above[name]:
            dropped[name] = t
            names.remove(name)
            continue
        number[name] = max(1, int(min_sample / max(t, 1e-9)))
        cost += t * number[name]
    rounds = max(3, min(repeat, int(budget / max(cost, 1e-9))))
    samples = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for i in range(len(names)):
                name = names[(i + r) % len(names)]
                if gap:
                    time.sleep(gap)
                samples[name].append(_time(fns[name], number[name]))
    finally:
        if gc_was_enabled:
            gc.enable()
    stats = {name: {"median_s": statistics.median(samples[name]),
                    "min_s": min(samples[name]),
                    "samples_s": samples[name], "number": number[name]}
             for name in names}
    return first, stats, dropped


class NumpyBudget:
    """Decides whether the NumPy baseline is worth running on an entry: its
    time per call is predicted from the rates it reached on earlier entries
    of the same op and dtype, and it is skipped above ``limit`` seconds."""

    DEFAULT_RATE = {"conv": 5e9, "pool": 1e9}   # flop/s and byte/s, pessimistic

    def __init__(self, limit):
        self.limit = limit
        self.rates = {}

    def predict(self, key, kind, work):
        rates = self.rates.get(key)
        rate = (math.exp(sum(map(math.log, rates)) / len(rates)) if rates
                else self.DEFAULT_RATE[kind])
        return work / rate

    def record(self, key, work, seconds):
        if seconds > 0:
            self.rates.setdefault(key, []).append(work / seconds)
