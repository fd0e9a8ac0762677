"""Benchmark runner: fastconv against PyTorch and a NumPy im2col baseline.

    python benchmarks/run.py --quick            # about a minute
    python benchmarks/run.py                    # the full suite (minutes on 2 cores)
    python benchmarks/run.py --op fwd --dtype float32 --threads 1 --filter resnet50

For every entry (layer x op x dtype x thread count) fastconv and torch run in
the same process, interleaved (fastconv, torch, then the next round in the
other order), after a warm-up, and the NumPy baseline after them in rounds of
its own; the reported time is the median of the rounds. Reported:
milliseconds, GFLOP/s (2*N*K*C*FH*FW*H2*W2 / t) or GB/s for pooling, the
fraction of this machine's FMA peak (measured once per run with
fastconv's own microbenchmark, times the thread count) or of its copy
bandwidth for pooling, and speed ratios: other contender's time / fastconv's
time (above 1: fastconv is faster).

Results go to the terminal, to a JSON file and to a PNG plot (when matplotlib
is installed); see benchmarks/README.md.
"""

import argparse
import ctypes
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# OpenBLAS worker threads busy-wait for a long while (~0.1 s) after each call
# unless told otherwise; interleaved with fastconv and PyTorch that would
# steal a core from whoever runs next. This only takes effect when set before
# NumPy loads OpenBLAS, i.e. when this file is the program.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

if __package__:
    from . import im2col_numpy as npconv
    from . import suite
else:
    sys.path.insert(0, HERE)
    import im2col_numpy as npconv
    import suite

CONTENDERS = ("fastconv", "torch", "numpy")


# ------------------------------------------------------------------ imports

def _has_inplace_build():
    pkg = os.path.join(ROOT, "fastconv")
    return os.path.isdir(pkg) and any(
        name.startswith("_core") and name.endswith((".so", ".pyd"))
        for name in os.listdir(pkg))


def import_fastconv():
    """The fastconv to measure: the source tree's in-place build when there is
    one (the code being worked on), else the installed package."""
    saved = list(sys.path)
    if _has_inplace_build():
        sys.path.insert(0, ROOT)
    else:
        # An unbuilt source tree on the path (python -m from the checkout)
        # would hide the installed package.
        sys.path[:] = [p for p in sys.path
                       if os.path.abspath(p or os.curdir) != ROOT]
    try:
        import fastconv
        return fastconv, None
    except ImportError as exc:
        return None, str(exc).splitlines()[0]
    finally:
        sys.path[:] = saved


def import_torch():
    try:
        import torch
        import torch.nn.functional  # noqa: F401
        return torch, None
    except ImportError as exc:
        return None, str(exc)


def import_threadpoolctl():
    try:
        import threadpoolctl
        return threadpoolctl.ThreadpoolController()
    except Exception:  # not installed, or a library it cannot introspect
        return None


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


# --------------------------------------------------------------- the ops

def _pair(v):
    return tuple(v)


class Contenders:
    """Builds, for one task and its data, a zero-argument callable per
    contender that performs exactly that op."""

    def __init__(self, fastconv, torch):
        self.fc = fastconv
        self.torch = torch

    # --- data
    @staticmethod
    def make_data(task, seed):
        layer, op, dtype = task.layer, task.op, np.dtype(task.dtype)
        rng = np.random.default_rng(seed)
        n = layer.batch(task.dtype)
        h2, w2 = layer.out_hw
        d = {}
        if layer.kind == "conv":
            d["x"] = rng.standard_normal((n, layer.C, layer.H, layer.W), dtype=dtype)
            fan_in = layer.C * layer.FH * layer.FW
            d["w"] = rng.standard_normal((layer.K, layer.C, layer.FH, layer.FW),
                                         dtype=dtype) * dtype.type(1 / math.sqrt(fan_in))
            d["b"] = rng.standard_normal(layer.K, dtype=dtype)
            if op != "fwd":
                d["dy"] = rng.standard_normal((n, layer.K, h2, w2), dtype=dtype)
        else:
            d["x"] = rng.standard_normal((n, layer.C, layer.H, layer.W), dtype=dtype)
            if op == "pool_bwd":
                d["dy"] = rng.standard_normal((n, layer.C, h2, w2), dtype=dtype)
        return d

    # --- fastconv
    def fastconv_fn(self, task, d):
        fc, layer, op = self.fc, task.layer, task.op
        if layer.kind == "conv":
            s, p = _pair(layer.stride), _pair(layer.padding)
            x, w, b = d["x"], d["w"], d["b"]
            if op == "fwd":
                return lambda: fc.conv2d(x, w, b, s, p, strict=layer.strict)
            if op == "bwd_weight":
                return lambda: fc.conv2d_backward(d["dy"], x, w, s, p, need_dx=False)[1:]
            # The public conv2d_backward always computes dw and db; the data
            # gradient alone is timed through the binding, with the output
            # allocated on every call as the public API does.
            core, dy = fc._core, d["dy"]
            n = x.shape[0]
            h2, w2 = layer.out_hw
            geom = (n, layer.C, layer.H, layer.W, layer.K, layer.FH, layer.FW,
                    s[0], s[1], p[0], p[1], h2, w2)
            nt = fc.get_num_threads
            dyf, wf = dy.reshape(-1), w.reshape(-1)

            def bwd_data():
                dx = np.empty(x.shape, x.dtype)
                core.conv2d_bwd_data(geom, dyf, wf, dx.reshape(-1), nt())
                return dx
            return bwd_data
        k, s, p = _pair(layer.kernel), _pair(layer.stride), _pair(layer.padding)
        x = d["x"]
        if layer.mode == "max":
            if op == "pool_fwd":
                return lambda: fc.max_pool2d(x, k, s, p, strict=layer.strict)
            # The backward fastconv.MaxPool2d runs: from the indices its
            # forward records when windows overlap (recorded here, outside
            # the timing, as for PyTorch below), from x when they do not.
            idx = None
            if k[0] > s[0] or k[1] > s[1]:
                _, idx = fc.max_pool2d(x, k, s, p, strict=layer.strict, return_indices=True)
            return lambda: fc.max_pool2d_backward(d["dy"], x, k, s, p, strict=layer.strict,
                                                  indices=idx)
        cip = layer.count_include_pad
        if op == "pool_fwd":
            return lambda: fc.avg_pool2d(x, k, s, p, count_include_pad=cip,
                                         strict=layer.strict)
        return lambda: fc.avg_pool2d_backward(d["dy"], x.shape, k, s, p,
                                              count_include_pad=cip, strict=layer.strict)

    # --- torch
    def torch_fn(self, task, d):
        torch, layer, op = self.torch, task.layer, task.op
        F = torch.nn.functional
        aten = torch.ops.aten
        t = {key: torch.from_numpy(v) for key, v in d.items()}
        x = t["x"]
        if layer.kind == "conv":
            s, p = list(layer.stride), list(layer.padding)
            w, b = t["w"], t["b"]
            if op == "fwd":
                return lambda: F.conv2d(x, w, b, s, p)
            # What autograd runs for conv2d's backward, asked for the same
            # outputs as the fastconv call: dx alone, or dw and db together.
            mask = [True, False, False] if op == "bwd_data" else [False, True, True]
            dy = t["dy"]
            return lambda: aten.convolution_backward(dy, x, w, [layer.K], s, p, [1, 1],
                                                     False, [0, 0], 1, mask)
        k, s, p = list(layer.kernel), list(layer.stride), list(layer.padding)
        if layer.mode == "max":
            if op == "pool_fwd":
                return lambda: F.max_pool2d(x, k, s, p)
            # PyTorch's backward reads the indices its forward recorded, so
            # they are computed here, outside the timing: PyTorch is timed on
            # its cheapest path for each direction.
            _, idx = aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)
            dy = t["dy"]
            return lambda: aten.max_pool2d_with_indices_backward(dy, x, k, s, p, [1, 1],
                                                                 False, idx)
        cip = layer.count_include_pad
        if op == "pool_fwd":
            return lambda: F.avg_pool2d(x, k, s, p, False, cip)
        dy = t["dy"]
        return lambda: aten.avg_pool2d_backward(dy, x, k, s, p, False, cip, None)

    # --- numpy
    @staticmethod
    def numpy_fn(task, d):
        layer, op = task.layer, task.op
        x = d["x"]
        if layer.kind == "conv":
            s, p = _pair(layer.stride), _pair(layer.padding)
            w, b = d["w"], d["b"]
            if op == "fwd":
                return lambda: npconv.conv2d(x, w, b, s, p)
            if op == "bwd_data":
                return lambda: npconv.conv2d_backward_data(d["dy"], w, x.shape, s, p)
            return lambda: npconv.conv2d_backward_weight(d["dy"], x, w.shape, s, p)
        k, s, p = _pair(layer.kernel), _pair(layer.stride), _pair(layer.padding)
        if layer.mode == "max":
            if op == "pool_fwd":
                return lambda: npconv.max_pool2d(x, k, s, p)
            return lambda: npconv.max_pool2d_backward(d["dy"], x, k, s, p)
        cip = layer.count_include_pad
        if op == "pool_fwd":
            return lambda: npconv.avg_pool2d(x, k, s, p, cip)
        return lambda: npconv.avg_pool2d_backward(d["dy"], x.shape, k, s, p, cip)


def _primary(result):
    """The array a contender's result is checked on (dx, dw or y)."""
    if isinstance(result, (tuple, list)):
        result = result[0] if result[0] is not None else result[1]
    if hasattr(result, "numpy"):
        result = result.numpy()
    return np.asarray(result)


def compare(a, b, dtype):
    """Largest difference relative to the largest magnitude: a sanity check
    that everyone computes the same thing, not a precision test."""
    a, b = _primary(a), _primary(b)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a.astype(np.float64) - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


CHECK_TOL = {"float32": 1e-3, "float64": 1e-9}


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


class Progress:
    """A one-line progress bar on stderr (a line per 10% when not a terminal)."""

    def __init__(self, total, stream=sys.stderr, width=28):
        self.total = max(1, total)
        self.stream = stream
        self.width = width
        self.start = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_decile = -1

    def update(self, done, label=""):
        frac = done / self.total
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        filled = int(round(self.width * frac))
        bar = "#" * filled + "." * (self.width - filled)
        text = (f"[{bar}] {done}/{self.total} {elapsed:5.0f}s"
                f"{f' (~{eta:.0f}s left)' if 0 < frac < 1 else ''}  {label}")
        if self.tty:
            cols = 100
            try:
                cols = os.get_terminal_size(self.stream.fileno()).columns
            except (OSError, ValueError):
                pass
            self.stream.write("\r" + text[:cols - 1].ljust(cols - 1))
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self.last_decile:
                self.last_decile = decile
                self.stream.write(text + "\n")
                self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ------------------------------------------------------------- the runner

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


def thread_counts(spec):
    all_n = cpus_available()
    if spec == "1":
        return [1]
    if spec == "all":
        return [all_n]
    if spec == "both":
        return sorted({1, all_n})
    try:
        n = int(spec)
    except ValueError:
        raise SystemExit(f"--threads must be 1, all, both or a number, got {spec!r}")
    if n < 1:
        raise SystemExit(f"--threads must be >= 1, got {n}")
    return [n]


def parse_dtypes(spec):
    names = {"float32": "float32", "f32": "float32", "float64": "float64",
             "f64": "float64"}
    if spec in ("both", "all"):
        return suite.DTYPES
    out = []
    for part in spec.split(","):
        if part.strip() not in names:
            raise SystemExit(f"--dtype must be float32, float64 or both, got {spec!r}")
        out.append(names[part.strip()])
    return tuple(out)


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


def layer_tags(layer, dtype, l2_bytes):
    """Subsets the summary reports on their own (the kinds of layer the
    performance targets single out)."""
    tags = []
    if layer.kind == "conv":
        if layer.pointwise:
            tags.append("1x1")
        if (layer.FH, layer.FW) == (3, 3) and layer.C >= 64 and layer.K >= 64:
            tags.append("3x3 C,K>=64")
    else:
        x_bytes = layer.batch(dtype) * layer.C * layer.H * layer.W * np.dtype(dtype).itemsize
        if l2_bytes and x_bytes > l2_bytes:
            tags.append("x > L2")
    return tags


def geomean(values):
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def run(args):
    malloc_note = (retain_freed_memory() if args.malloc == "retain"
                   else "glibc malloc defaults (--malloc default)")
    fastconv, fc_err = ((None, "disabled with --no-fastconv") if args.no_fastconv
                        else import_fastconv())
    torch, torch_err = (None, "disabled with --no-torch") if args.no_torch else import_torch()
    tpc = import_threadpoolctl()
    threads = thread_counts(args.threads)
    dtypes = parse_dtypes(args.dtype)
    try:
        ops = suite.expand_ops(args.op) if args.op else None
    except ValueError as exc:
        raise SystemExit(str(exc))
    tasks = suite.select(quick=args.quick, ops=ops, dtypes=dtypes, name_filter=args.filter)
    if args.list:
        for t in tasks:
            print(f"{t.name:48s} {t.op:10s} {t.dtype}")
        print(f"{len(tasks)} entries x {len(threads)} thread count(s)")
        return None
    if not tasks:
        raise SystemExit("no benchmark entry matches the given --op / --dtype / --filter")

    out = sys.stdout
    print(f"fastconv benchmark ({'quick' if args.quick else 'full'} suite): "
          f"{len(tasks)} entries x threads {threads}", file=out)
    print(f"  cpu: {cpu_model()} ({cpus_available()} available)", file=out)
    if fastconv is None:
        print(f"  fastconv: NOT AVAILABLE ({fc_err}); timing the other contenders only",
              file=out)
        fc_info = None
    else:
        fc_info = fastconv._config.config_info()
        print(f"  fastconv {fastconv.__version__} from {os.path.dirname(fastconv.__file__)}: "
              f"{fc_info['isa']} ({fc_info['kernel_float32']}, {fc_info['kernel_float64']}), "
              f"OpenMP {'on' if fc_info['openmp'] else 'off'}", file=out)
    if torch is None:
        print(f"  torch: not available ({torch_err}); PyTorch columns skipped", file=out)
    else:
        print(f"  torch {torch.__version__} (oneDNN: "
              f"{torch.backends.mkldnn.is_available()})", file=out)
        torch.set_grad_enabled(False)
    print(f"  numpy {np.__version__}"
          f"{'' if tpc else ' (threadpoolctl missing: its BLAS keeps its own thread count)'}",
          file=out)
    print(f"  memory: {malloc_note}", file=out)

    # Ceilings: FMA peak of one core per dtype; copy bandwidth per thread count.
    peaks = {}
    if fastconv is not None:
        for dt in sorted({t.dtype for t in tasks}):
            peaks[dt] = float(fastconv._config.fma_peak_gflops(dt, args.peak_seconds))
        print("  FMA peak, 1 core: " + ", ".join(f"{dt} {v:.1f} GFLOP/s"
                                                 for dt, v in peaks.items()), file=out)
    copy_bw = {}
    if any(t.layer.kind == "pool" for t in tasks):
        for n in threads:
            copy_bw[n] = measure_copy_bandwidth(n)
        print("  copy bandwidth: " + ", ".join(f"{n} thread(s) {v:.1f} GB/s"
                                               for n, v in copy_bw.items()), file=out)
    out.flush()

    l2_bytes = parse_size(cpu_caches().get("L2", ""))
    contenders = Contenders(fastconv, torch)
    budget_np = NumpyBudget(args.numpy_limit)
    records = []
    progress = Progress(len(tasks) * len(threads))
    done = 0
    prev_threads = 1
    for ti, task in enumerate(tasks):
        layer = task.layer
        data = contenders.make_data(task, args.seed + ti)
        fns = {}
        if fastconv is not None:
            fns["fastconv"] = contenders.fastconv_fn(task, data)
        if torch is not None:
            fns["torch"] = contenders.torch_fn(task, data)
        np_fn = None if args.no_numpy else contenders.numpy_fn(task, data)
        if layer.kind == "conv":
            work, unit = layer.flops(task.dtype), "flop"
        else:
            work, unit = layer.bytes_moved(task.op, task.dtype), "byte"
        np_skip_reason = "disabled with --no-numpy" if args.no_numpy else None
        for nt in threads:
            progress.update(done, f"{task.name} {task.op} {task.dtype} t{nt}")
            if fastconv is not None:
                fastconv.set_num_threads(nt)
            if torch is not None:
                torch.set_num_threads(nt)
            entry_fns = dict(fns)
            np_key = (task.op, task.dtype, nt)
            if np_fn is not None and np_skip_reason is None:
                predicted = budget_np.predict(np_key, layer.kind, work)
                if predicted > args.numpy_limit:
                    np_skip_reason = f"numpy skipped: ~{predicted:.1f} s/call"
                else:
                    entry_fns["numpy"] = np_fn
            if not entry_fns:
                raise SystemExit("nothing to time: fastconv, torch and numpy are all "
                                 "unavailable or disabled")
            limits = tpc.limit(limits=nt, user_api="blas") if tpc else None
            try:
                # Single-threaded calls leave no spinning workers behind, so
                # they need one pause only, after a multi-threaded phase.
                if nt == 1 and prev_threads > 1:
                    time.sleep(args.gap)
                prev_threads = nt
                # The NumPy baseline is timed in rounds of its own, after
                # the others: interleaved, its BLAS calls at more than one
                # thread left the next contender's samples up to 4x slower
                # on a 2-core machine (with OPENBLAS_THREAD_TIMEOUT as set
                # above; both fastconv's and torch's, in some rounds only).
                first, stats, dropped = {}, {}, {}
                for group in ([n for n in entry_fns if n != "numpy"], ["numpy"]):
                    group = [n for n in group if n in entry_fns]
                    if not group:
                        continue
                    if nt > 1 and stats:
                        time.sleep(args.gap)
                    f, st, dr = measure(
                        {n: entry_fns[n] for n in group}, args.repeat, args.budget,
                        gap=args.gap if nt > 1 else 0.0,
                        drop_above={"numpy": args.numpy_limit})
                    first.update(f)
                    stats.update(st)
                    dropped.update(dr)
            finally:
                if limits is not None:
                    limits.restore_original_limits()
            if "numpy" in stats:
                budget_np.record(np_key, work, stats["numpy"]["median_s"])
            elif "numpy" in dropped:
                budget_np.record(np_key, work, dropped["numpy"])
                np_skip_reason = f"numpy skipped: one call took {dropped['numpy']:.1f} s"
            # Everyone must have computed the same thing.
            ref_name = "torch" if "torch" in first else ("numpy" if "numpy" in first else None)
            check = None
            if "fastconv" in first and ref_name:
                err = compare(first["fastconv"], first[ref_name], task.dtype)
                check = {"against": ref_name, "rel_err": err,
                         "ok": err <= CHECK_TOL[task.dtype]}
            del first
            rec = {
                "layer": task.name, "net": layer.net, "desc": layer.desc,
                # the float32 name, shared by the float64 entry of the layer
                # even when that one runs at a smaller batch
                "row": layer.name("float32"),
                "kind": layer.kind, "op": task.op, "dtype": task.dtype, "threads": nt,
                "batch": layer.batch(task.dtype),
                "pointwise": bool(getattr(layer, "pointwise", False)),
                "tags": layer_tags(layer, task.dtype, l2_bytes),
                "work": work, "unit": unit,
                "times": stats, "check": check, "notes": [],
            }
            if layer.kind == "conv":
                rec["shape"] = {"x": list(data["x"].shape), "w": list(data["w"].shape),
                                "stride": list(layer.stride), "padding": list(layer.padding),
                                "out_hw": list(layer.out_hw), "strict": layer.strict}
            else:
                rec["shape"] = {"x": list(data["x"].shape), "mode": layer.mode,
                                "kernel": list(layer.kernel), "stride": list(layer.stride),
                                "padding": list(layer.padding), "out_hw": list(layer.out_hw),
                                "strict": layer.strict,
                                "count_include_pad": layer.count_include_pad}
            for name, st in stats.items():
                st["rate"] = work / st["median_s"] / 1e9     # GFLOP/s or GB/s
            if "fastconv" in stats:
                t_fc = stats["fastconv"]["median_s"]
                rate = stats["fastconv"]["rate"]
                if unit == "flop" and task.dtype in peaks:
                    rec["peak_gflops"] = peaks[task.dtype] * nt
                    rec["frac_peak"] = rate / rec["peak_gflops"]
                elif unit == "byte" and nt in copy_bw:
                    rec["copy_gbps"] = copy_bw[nt]
                    rec["frac_copy_bw"] = rate / rec["copy_gbps"]
                for other in ("torch", "numpy"):
                    if other in stats:
                        rec[f"ratio_{other}"] = stats[other]["median_s"] / t_fc
            if fastconv is not None and "fastconv" in stats and layer.kind == "conv":
                # the algorithm of the last fastconv call (a thread-local the
                # other contenders do not touch)
                alg = getattr(fastconv._core, "last_conv_path", lambda: "")()
                if alg:
                    rec["algorithm"] = alg
                    rec["notes"].append(alg)
            if np_skip_reason:
                rec["notes"].append(np_skip_reason)
            if check and not check["ok"]:
                rec["notes"].append(f"MISMATCH vs {ref_name}: rel err {check['rel_err']:.1e}")
            records.append(rec)
            done += 1
        del data, fns, np_fn
    progress.update(done, "done")
    progress.close()
    if fastconv is not None:
        fastconv.set_num_threads(None)

    results = {
        "schema": 1,
        "suite": "quick" if args.quick else "full",
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": {
            "fastconv": getattr(fastconv, "__version__", None),
            "fastconv_path": os.path.dirname(fastconv.__file__) if fastconv else None,
            "torch": getattr(torch, "__version__", None),
            "numpy": np.__version__,
        },
        "fastconv_config": fc_info,
        "unavailable": {k: v for k, v in (("fastconv", fc_err), ("torch", torch_err)) if v},
        "fma_peak_gflops_per_core": peaks,
        "copy_bandwidth_gbps": {str(k): v for k, v in copy_bw.items()},
        "settings": {"threads": threads, "dtypes": list(dtypes), "ops": list(ops or []),
                     "filter": args.filter, "repeat": args.repeat, "budget_s": args.budget,
                     "numpy_limit_s": args.numpy_limit, "seed": args.seed,
                     "gap_s": args.gap, "malloc": malloc_note},
        "records": records,
    }
    results["summary"] = summarise(records)
    results["thread_scaling"] = thread_scaling(records)
    return results


# ----------------------------------------------------------- the summaries

def _combined(records, ops, label):
    """Per (layer, dtype, threads), records of ``ops`` merged into one: times
    added, work added (e.g. backward = data + weight gradients)."""
    groups = {}
    for r in records:
        if r["op"] in ops:
            groups.setdefault((r["layer"], r["dtype"], r["threads"]), {})[r["op"]] = r
    out = []
    for (layer, dtype, nt), parts in groups.items():
        if set(parts) != set(ops):
            continue
        rs = list(parts.values())
        merged = {"layer": layer, "dtype": dtype, "threads": nt, "op": label,
                  "tags": rs[0].get("tags", []), "kind": rs[0]["kind"],
                  "work": sum(r["work"] for r in rs), "unit": rs[0]["unit"]}
        for name in CONTENDERS:
            if all(name in r["times"] for r in rs):
                merged[name] = sum(r["times"][name]["median_s"] for r in rs)
        if "fastconv" in merged:
            for other in ("torch", "numpy"):
                if other in merged:
                    merged[f"ratio_{other}"] = merged[other] / merged["fastconv"]
            rate = merged["work"] / merged["fastconv"] / 1e9
            if rs[0].get("peak_gflops"):
                merged["frac_peak"] = rate / rs[0]["peak_gflops"]
            if rs[0].get("copy_gbps"):
                merged["frac_copy_bw"] = rate / rs[0]["copy_gbps"]
        out.append(merged)
    return out


BASE_ORDER = ["fwd", "bwd_data", "bwd_weight", "bwd (data+weight)",
              "pool_fwd", "pool_bwd", "pool (fwd+bwd)"]
TAGGED_OPS = ("fwd", "bwd (data+weight)", "pool_fwd", "pool (fwd+bwd)")


def summarise(records):
    """Geometric means per (op, dtype, threads) with the worst layer; also for
    backward (data + weights, times added per layer), pooling (forward +
    backward), and the tagged subsets (1x1 layers, large 3x3 layers, pooling
    inputs larger than L2)."""
    flat = []
    for r in records:
        row = {k: r.get(k) for k in ("layer", "dtype", "threads", "op", "tags",
                                     "kind", "work", "unit", "ratio_torch",
                                     "ratio_numpy", "frac_peak", "frac_copy_bw")}
        flat.append(row)
    flat += _combined(records, ("bwd_data", "bwd_weight"), "bwd (data+weight)")
    flat += _combined(records, ("pool_fwd", "pool_bwd"), "pool (fwd+bwd)")
    flat += [dict(r, op=f"{r['op']} [{tag}]") for r in list(flat)
             if r["op"] in TAGGED_OPS for tag in (r.get("tags") or [])]

    def order(key):
        op = key[0]
        base = op.split(" [")[0]
        return (BASE_ORDER.index(base) if base in BASE_ORDER else 99, op != base, op,
                key[1], key[2])

    groups = {}
    for r in flat:
        groups.setdefault((r["op"], r["dtype"], r["threads"]), []).append(r)
    summary = []
    for key in sorted(groups, key=order):
        rows = groups[key]
        item = {"op": key[0], "dtype": key[1], "threads": key[2], "entries": len(rows)}
        for other in ("torch", "numpy"):
            vals = [r.get(f"ratio_{other}") for r in rows if r.get(f"ratio_{other}")]
            item[f"geomean_ratio_{other}"] = geomean(vals)
            item[f"n_{other}"] = len(vals)
            if vals:
                worst = min((r for r in rows if r.get(f"ratio_{other}")),
                            key=lambda r: r[f"ratio_{other}"])
                item[f"worst_{other}"] = {"layer": worst["layer"],
                                          "ratio": worst[f"ratio_{other}"]}
        fr = [r.get("frac_peak") for r in rows if r.get("frac_peak")]
        item["geomean_frac_peak"] = geomean(fr)
        fb = [r.get("frac_copy_bw") for r in rows if r.get("frac_copy_bw")]
        item["geomean_frac_copy_bw"] = geomean(fb)
        summary.append(item)
    return summary


def thread_scaling(records, min_work=1e9):
    """Speed-up from 1 thread to the largest thread count, per (op, dtype),
    over the conv layers of at least ``min_work`` flops: geometric mean and
    the weakest layer, for fastconv and for PyTorch."""
    by = {}
    for r in records:
        if r["kind"] != "conv" or r["work"] < min_work:
            continue
        by.setdefault((r["layer"], r["op"], r["dtype"]), {})[r["threads"]] = r
    out = {}
    for (layer, op, dtype), per in by.items():
        if 1 not in per or len(per) < 2:
            continue
        nmax = max(per)
        for name in ("fastconv", "torch"):
            t1 = per[1]["times"].get(name, {}).get("median_s")
            tn = per[nmax]["times"].get(name, {}).get("median_s")
            if t1 and tn:
                out.setdefault((op, dtype, nmax, name), []).append((t1 / tn, layer))
    result = []
    for (op, dtype, nmax, name), vals in sorted(
            out.items(), key=lambda kv: (BASE_ORDER.index(kv[0][0]), kv[0][1], kv[0][3])):
        worst = min(vals)
        result.append({"op": op, "dtype": dtype, "threads": nmax, "contender": name,
                       "layers": len(vals), "geomean_speedup": geomean([v for v, _ in vals]),
                       "worst": {"layer": worst[1], "speedup": worst[0]}})
    return result


# ------------------------------------------------------------ the printing

def _f(v, fmt, empty="-"):
    return empty if v is None else format(v, fmt)


def print_table(results, stream=sys.stdout):
    recs = results["records"]
    if not recs:
        return
    wl = max(len("layer"), max(len(r["layer"]) for r in recs))
    head = (f"{'layer':<{wl}}  {'op':<10} {'dtype':<7} {'thr':>3}  {'fastconv':>9} "
            f"{'rate':>11} {'%peak':>6}  {'torch':>9} {'x torch':>7}  {'numpy':>9} "
            f"{'x numpy':>7}  notes")
    print(head, file=stream)
    print("-" * len(head), file=stream)
    for r in recs:
        t = r["times"]
        ms = {name: t[name]["median_s"] * 1e3 if name in t else None for name in CONTENDERS}
        rate = t["fastconv"]["rate"] if "fastconv" in t else None
        unit = "GF/s" if r["unit"] == "flop" else "GB/s"
        frac = r.get("frac_peak", r.get("frac_copy_bw"))
        frac_s = "-" if frac is None else (f"{100 * frac:5.1f}" +
                                           ("" if "frac_peak" in r else "b"))
        notes = "; ".join(r["notes"])
        print(f"{r['layer']:<{wl}}  {r['op']:<10} {r['dtype']:<7} {r['threads']:>3}  "
              f"{_f(ms['fastconv'], '9.3f'):>9} "
              f"{(_f(rate, '6.1f') + ' ' + unit) if rate else '-':>11} {frac_s:>6}  "
              f"{_f(ms['torch'], '9.3f'):>9} {_f(r.get('ratio_torch'), '7.2f'):>7}  "
              f"{_f(ms['numpy'], '9.3f'):>9} {_f(r.get('ratio_numpy'), '7.2f'):>7}  {notes}",
              file=stream)
    print("times: median ms per call; x torch / x numpy: that contender's time / "
          "fastconv's (above 1: fastconv faster);\n%peak: of the measured FMA peak x "
          "threads (conv), or with 'b' of the measured copy bandwidth (pooling)",
          file=stream)


def print_summary(results, stream=sys.stdout):
    summ = results["summary"]
    if not summ:
        return
    print("\nGeometric means (ratio = other's time / fastconv's time; worst = lowest "
          "ratio vs torch)", file=stream)
    head = (f"{'op':<34} {'dtype':<7} {'thr':>3} {'n':>3}  {'x torch':>7}  "
            f"{'x numpy':>7}  {'%peak':>6}  worst vs torch")
    print(head, file=stream)
    print("-" * (len(head) + 30), file=stream)
    for s in summ:
        frac = s.get("geomean_frac_peak") or s.get("geomean_frac_copy_bw")
        frac_s = "-" if not frac else (f"{100 * frac:5.1f}" +
                                       ("" if s.get("geomean_frac_peak") else "b"))
        worst = s.get("worst_torch")
        worst_s = f"{worst['ratio']:.2f} {worst['layer']}" if worst else "-"
        print(f"{s['op']:<34} {s['dtype']:<7} {s['threads']:>3} {s['entries']:>3}  "
              f"{_f(s.get('geomean_ratio_torch'), '7.2f'):>7}  "
              f"{_f(s.get('geomean_ratio_numpy'), '7.2f'):>7}  {frac_s:>6}  {worst_s}",
              file=stream)
    scaling = results.get("thread_scaling") or []
    if scaling:
        print(f"\nThread scaling on conv layers of at least 1 GFLOP "
              f"(time at 1 thread / time at {scaling[0]['threads']})", file=stream)
        head = f"{'op':<12} {'dtype':<7} {'contender':<9} {'n':>3}  {'speed-up':>8}  weakest"
        print(head, file=stream)
        print("-" * (len(head) + 30), file=stream)
        for s in scaling:
            print(f"{s['op']:<12} {s['dtype']:<7} {s['contender']:<9} {s['layers']:>3}  "
                  f"{s['geomean_speedup']:8.2f}  {s['worst']['speedup']:.2f} "
                  f"{s['worst']['layer']}", file=stream)
    bad = [r for r in results["records"] if r.get("check") and not r["check"]["ok"]]
    if bad:
        print(f"\nWARNING: {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} where fastconv's "
              f"result differs from the reference (see notes)", file=stream)


# ------------------------------------------------------------------- main

def build_parser():
    p = argparse.ArgumentParser(
        description="Time fastconv's convolution and pooling against PyTorch and a "
                    "NumPy im2col baseline.",
        epilog="--op takes op names (fwd, bwd_data, bwd_weight, pool_fwd, pool_bwd) or "
               "groups (conv, bwd, pool, all), comma-separated.")
    p.add_argument("--quick", action="store_true",
                   help="a handful of entries (about a minute) instead of the full suite")
    p.add_argument("--threads", default="both",
                   help="1, all, both (default) or a number of threads")
    p.add_argument("--dtype", default="both", help="float32, float64 or both (default)")
    p.add_argument("--op", default=None, help="only these ops, e.g. fwd or bwd,pool")
    p.add_argument("--filter", default=None, help="only layers whose name contains this")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed rounds per entry (default 7, quick 5; at least 3)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed rounds per entry before rounds are cut "
                        "(default 3, quick 1.5)")
    p.add_argument("--numpy-limit", type=float, default=1.0,
                   help="skip the NumPy baseline where a call is predicted to take "
                        "longer than this many seconds (default 1)")
    p.add_argument("--no-fastconv", action="store_true",
                   help="do not time fastconv (compare the baselines only)")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    p.add_argument("--no-numpy", action="store_true", help="do not time the NumPy baseline")
    p.add_argument("--json", default=None,
                   help="write results here (default benchmarks/results/<suite>.json)")
    p.add_argument("--plot", default=None,
                   help="write the PNG plot here (default benchmarks/results/<suite>.png)")
    p.add_argument("--no-save", action="store_true", help="write neither JSON nor plot")
    p.add_argument("--peak-seconds", type=float, default=0.3,
                   help="duration of each FMA-peak measurement (default 0.3)")
    p.add_argument("--gap", type=float, default=0.01,
                   help="untimed pause (s) between samples at more than one thread, "
                        "for the previous contender's spinning workers to sleep "
                        "(default 0.01)")
    p.add_argument("--malloc", choices=("retain", "default"), default="retain",
                   help="retain (default): make glibc keep freed memory so that "
                        "per-call buffers are not page-faulted in on every call; "
                        "default: leave malloc as it is")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="list the entries and exit")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.repeat is None:
        args.repeat = 5 if args.quick else 7
    if args.budget is None:
        args.budget = 1.5 if args.quick else 3.0
    args.repeat = max(3, args.repeat)
    results = run(args)
    if results is None:
        return 0
    print()
    print_table(results)
    print_summary(results)
    if not args.no_save:
        tag = results["suite"]
        json_path = args.json or os.path.join(HERE, "results", f"{tag}.json")
        plot_path = args.plot or os.path.join(HERE, "results", f"{tag}.png")
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"\nJSON: {json_path}")
        if __package__:
            from . import plot as plotmod
        else:
            import plot as plotmod
        message = plotmod.make_plot(results, plot_path)
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
