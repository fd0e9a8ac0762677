"""Pooling on narrow planes: the AVX-512 narrow-plane kernels against the
row kernels, in one process.

    python benchmarks/pool_narrow.py [--rounds 15] [--calls 10]

With AVX-512 active, pooling forward and max pooling backward on planes
whose padded row fits in two vectors take src/fc_pool_small.inc; with AVX2
active they take the row kernels, which the AVX-512 level ran before.  The
instruction set is switched at run time (fastconv._config.using_isa), so
both run in the same process, rounds alternating; times are CPU time per
call (time.process_time), medians over rounds, one thread.  Layers whose
planes are too wide for the narrow kernels (or 2x2 stride-2 max backward,
which has its own one-pass loop) show the same time on both.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastconv as fc
from fastconv import _config

# name, mode, shape, kernel, stride, padding, dtype
LAYERS = [
    ("max 3x3 s2 96@27 b16", "max", (16, 96, 27, 27), 3, 2, 0, np.float32),
    ("max 2x2 s2 3@32 b100", "max", (100, 3, 32, 32), 2, 2, 0, np.float32),
    ("avg 2x2 s2 3@32 b100", "avg", (100, 3, 32, 32), 2, 2, 0, np.float32),
    ("max 3x3 s1 p1 64@16 b32", "max", (32, 64, 16, 16), 3, 1, 1, np.float32),
    ("max 3x3 s2 p1 256@14 b8 f64", "max", (8, 256, 14, 14), 3, 2, 1, np.float64),
    ("avg 3x3 s2 p1 256@14 b8 f64", "avg", (8, 256, 14, 14), 3, 2, 1, np.float64),
    ("max 3x3 s2 p1 64@56 b8 (wide)", "max", (8, 64, 56, 56), 3, 2, 1, np.float32),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=10, help="calls timed together per round")
    args = ap.parse_args()
    if not {"avx2", "avx512"} <= set(_config.available_isas()):
        raise SystemExit("needs a CPU and build with both AVX2 and AVX-512")
    fc.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("1 thread, CPU time per call, medians of", args.rounds, "rounds")
    for name, mode, shape, k, s, p, dt in LAYERS:
        x = rng.standard_normal(shape).astype(dt)
        pool = fc.max_pool2d if mode == "max" else fc.avg_pool2d
        y = pool(x, k, s, p, strict=False)
        dy = rng.standard_normal(y.shape).astype(dt)
        if mode == "max":
            def bwd():
                return fc.max_pool2d_backward(dy, x, k, s, p, strict=False)
        else:
            def bwd():
                return fc.avg_pool2d_backward(dy, x.shape, k, s, p, strict=False)
        for op, fn in (("fwd", lambda: pool(x, k, s, p, strict=False)), ("bwd", bwd)):
            times: dict = {"avx2": [], "avx512": []}
            for _ in range(args.rounds):
                for isa in times:
                    with _config.using_isa(isa):
                        fn()
                        t0 = time.process_time()
                        for _ in range(args.calls):
                            fn()
                        times[isa].append((time.process_time() - t0) / args.calls)
            a, b = float(np.median(times["avx2"])), float(np.median(times["avx512"]))
            print(f"  {name:30s} {op}: row kernels {a * 1e3:8.3f} ms   "
                  f"AVX-512 {b * 1e3:8.3f} ms   speed-up {a / b:5.2f}x")


if __name__ == "__main__":
    main()
