"""What a fastconv.torch call costs on top of the NumPy call it makes.

For a few small layers, where the kernels take a few microseconds, times
the fastconv.torch function on CPU tensors and fastconv's NumPy function on
the same data, in interleaved rounds, and prints the median of each and
their difference (the bridge's overhead per call): without gradients, and
with the inputs requiring a gradient (the forward call only).

    python benchmarks/torch_overhead.py [--rounds 200] [--dtype float32]
"""

import argparse
import os
import statistics
import sys
import time

import torch

try:  # run as a script from any directory: benchmarks/ is sys.path[0]
    import fastconv  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastconv.functional as F  # noqa: E402
import fastconv.torch as ft  # noqa: E402


def _cases(dtype):
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(shape, generator=g, dtype=dtype)

    x, w, b = t(1, 3, 8, 8), t(4, 3, 3, 3), t(4)
    xs, v, lx, lw, lb = t(1, 4, 8, 8), t(4), t(2, 8), t(4, 8), t(4)
    return {
        "conv2d 1x3x8x8 * 4x3x3x3": (
            (x, w, b), lambda x, w, b: ft.conv2d(x, w, b, padding=1),
            lambda x, w, b: F.conv2d(x, w, b, 1, 1)),
        "relu 4 values": (
            (v,), ft.relu, F.relu),
        "max_pool2d 1x4x8x8, 2x2": (
            (xs,), lambda x: ft.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2)),
        "avg_pool2d 1x4x8x8, 2x2": (
            (xs,), lambda x: ft.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2)),
        "linear 2x8 * 4x8": (
            (lx, lw, lb), ft.linear, F.linear),
    }


def _time(fn, args, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(*args)
    return (time.perf_counter() - t0) / reps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--reps", type=int, default=20, help="calls per timing")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    opts = parser.parse_args()
    dtype = getattr(torch, opts.dtype)
    print(f"torch {torch.__version__}, {opts.dtype}, median of {opts.rounds} interleaved "
          f"rounds of {opts.reps} calls, microseconds per call")
    print(f"{'layer':28s} {'numpy':>7s} {'torch':>7s} {'over':>6s} {'grad':>7s} {'over':>6s}")
    for name, (tensors, torch_fn, numpy_fn) in _cases(dtype).items():
        arrays = [t.numpy() for t in tensors]
        grads = [t.clone().requires_grad_() for t in tensors]
        for fn, args in ((numpy_fn, arrays), (torch_fn, tensors), (torch_fn, grads)):
            fn(*args)                               # first calls: plans, warnings
        times = {"numpy": [], "torch": [], "grad": []}
        for _ in range(opts.rounds):
            times["numpy"].append(_time(numpy_fn, arrays, opts.reps))
            times["torch"].append(_time(torch_fn, tensors, opts.reps))
            times["grad"].append(_time(torch_fn, grads, opts.reps))
        med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        print(f"{name:28s} {med['numpy']:7.1f} {med['torch']:7.1f} "
              f"{med['torch'] - med['numpy']:6.1f} {med['grad']:7.1f} "
              f"{med['grad'] - med['numpy']:6.1f}")


if __name__ == "__main__":
    main()
