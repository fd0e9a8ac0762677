"""fastconv.compat.cs231n against a pure-NumPy im2col layer, on the assignment shapes.

The CS231n assignment times its "fast" layers on

* conv:  x (100, 3, 31, 31), w (25, 3, 3, 3), stride 2, pad 1
* pool:  x (100, 3, 32, 32), 2x2 windows, stride 2

This script times the compat functions ``conv_forward_fast`` /
``conv_backward_fast`` and ``max_pool_forward_fast`` / ``max_pool_backward_fast``
on those shapes against the NumPy im2col baseline of ``benchmarks/im2col_numpy.py``
(one BLAS GEMM per batch slice, col2im by strided scatter-adds). Both sides
get the same number of threads (NumPy's BLAS through threadpoolctl when it is
installed). Runs of the contenders are interleaved and medians are reported,
so a burst of load on the machine hits both alike.

    python benchmarks/bench_cs231n.py                 # 1 thread and all threads
    python benchmarks/bench_cs231n.py --threads 1 --repeat 30 --dtype float32

The ratio column is NumPy time / fastconv time: above 1 means fastconv is faster.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

try:  # run as a script from any directory: benchmarks/ is sys.path[0]
    import im2col_numpy as baseline
except ImportError:  # run as `python -m benchmarks.bench_cs231n`
    from benchmarks import im2col_numpy as baseline

try:
    import fastconv
except ImportError:  # not installed: use the source tree this script sits in
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastconv
from fastconv.compat import cs231n

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # the NumPy side then uses whatever BLAS threads it has
    threadpool_limits = None

CONV_X = (100, 3, 31, 31)
CONV_W = (25, 3, 3, 3)
CONV_PARAM = {"stride": 2, "pad": 1}
POOL_X = (100, 3, 32, 32)
POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}


def available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def make_cases(dtype, seed=0):
    """[(op name, fastconv callable, numpy callable)], all on fixed data."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(CONV_X).astype(dtype)
    w = rng.standard_normal(CONV_W).astype(dtype)
    b = rng.standard_normal(CONV_W[0]).astype(dtype)
    out, conv_cache = cs231n.conv_forward_fast(x, w, b, CONV_PARAM)
    dout = rng.standard_normal(out.shape).astype(dtype)
    s, p = (CONV_PARAM["stride"],) * 2, (CONV_PARAM["pad"],) * 2

    xp = rng.standard_normal(POOL_X).astype(dtype)
    kernel = (POOL_PARAM["pool_height"], POOL_PARAM["pool_width"])
    ps = (POOL_PARAM["stride"],) * 2
    pout, pool_cache = cs231n.max_pool_forward_fast(xp, POOL_PARAM)
    pdout = rng.standard_normal(pout.shape).astype(dtype)

    def np_conv_backward():
        dx = baseline.conv2d_backward_data(dout, w, x.shape, s, p)
        dw, db = baseline.conv2d_backward_weight(dout, x, w.shape, s, p)
        return dx, dw, db

    return [
        ("conv forward", lambda: cs231n.conv_forward_fast(x, w, b, CONV_PARAM)[0],
         lambda: baseline.conv2d(x, w, b, s, p)),
        ("conv backward", lambda: cs231n.conv_backward_fast(dout, conv_cache),
         np_conv_backward),
        ("pool forward", lambda: cs231n.max_pool_forward_fast(xp, POOL_PARAM)[0],
         lambda: baseline.max_pool2d(xp, kernel, ps)),
        ("pool backward", lambda: cs231n.max_pool_backward_fast(pdout, pool_cache),
         lambda: baseline.max_pool2d_backward(pdout, xp, kernel, ps)),
    ]


def check_agree(name, fc_result, np_result, dtype):
    fc_parts = fc_result if isinstance(fc_result, tuple) else (fc_result,)
    np_parts = np_result if isinstance(np_result, tuple) else (np_result,)
    tol = 1e-3 if dtype == np.float32 else 1e-9
    for a, b in zip(fc_parts, np_parts):
        scale = max(1.0, float(np.max(np.abs(b))))
        err = float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale
        if err > tol:
            raise SystemExit(f"{name}: fastconv and the NumPy baseline disagree "
                             f"(max error {err:.3g} relative to the largest value)")


def time_interleaved(fns, repeat, warmup=2):
    """Median seconds of each callable, their runs interleaved (order rotated)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    order = list(range(len(fns)))
    for r in range(repeat):
        for i in order[r % len(fns):] + order[:r % len(fns)]:
            t0 = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def run(threads, dtype, repeat):
    fastconv.set_num_threads(threads)
    limit = threadpool_limits(limits=threads) if threadpool_limits else None
    try:
        rows = []
        for name, fc_fn, np_fn in make_cases(dtype):
            # Never report a speed for two computations that disagree.
            check_agree(name, fc_fn(), np_fn(), dtype)
            t_fc, t_np = time_interleaved([fc_fn, np_fn], repeat)
            rows.append({"op": name, "threads": threads, "dtype": np.dtype(dtype).name,
                         "fastconv_ms": 1e3 * t_fc, "numpy_ms": 1e3 * t_np,
                         "ratio": t_np / t_fc})
        return rows
    finally:
        if limit is not None:
            limit.unregister()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,all",
                    help="comma-separated thread counts; 'all' = every CPU available "
                         "(default: 1,all)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="the assignments use float64 (default)")
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per contender")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    ncpu = available_cpus()
    counts = []
    for t in args.threads.split(","):
        n = ncpu if t.strip() == "all" else int(t)
        if n not in counts:
            counts.append(n)
    dtype = np.dtype(args.dtype).type

    print(f"fastconv {fastconv.__version__} vs NumPy im2col, {args.dtype}, "
          f"median of {args.repeat} interleaved runs")
    print(f"conv: x {CONV_X}, w {CONV_W}, stride 2, pad 1;  "
          f"pool: x {POOL_X}, 2x2 stride 2")
    if threadpool_limits is None:
        print("(threadpoolctl not installed: NumPy's BLAS runs with its own "
              "thread count)")
    print(f"{'op':<15}{'threads':>8}{'fastconv ms':>13}{'numpy ms':>11}{'ratio':>8}")
    rows = []
    for n in counts:
        for row in run(n, dtype, args.repeat):
            rows.append(row)
            print(f"{row['op']:<15}{row['threads']:>8}{row['fastconv_ms']:>13.3f}"
                  f"{row['numpy_ms']:>11.3f}{row['ratio']:>7.1f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
