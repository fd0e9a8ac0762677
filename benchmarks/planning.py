"""What measured planning gains over the estimates, on the suite's
convolution layers: each entry is timed under ``set_planning("estimate")``
and under ``set_planning("measure")`` (whose first call of a shape times the
candidates; that call is not timed), forward and backward (data and weight
gradients together), the two modes alternating in one process,
and the report gives the median over rounds of estimate's time / measure's
(above 1: measuring found something faster) and the plans each chose.

    python benchmarks/planning.py [--rounds 3] [--seconds 0.2] [--threads 1]
                                  [--dtype float32] [--filter TEXT]

Transposed layers are left out: measured planning covers conv2d,
conv2d_backward_data and conv2d_backward_weight as called directly.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastconv as fc  # noqa: E402
from fastconv import _plan  # noqa: E402
from benchmarks import suite  # noqa: E402
from benchmarks.modern_layers import _median_time  # noqa: E402


def _calls(layer, dtype, rng):
    N = layer.batch(dtype)
    x = rng.standard_normal((N, layer.C, layer.H, layer.W)).astype(dtype)
    w = rng.standard_normal((layer.K, layer.C // layer.groups, layer.FH,
                             layer.FW)).astype(dtype)
    kw = dict(dilation=layer.dilation, groups=layer.groups)
    y = fc.conv2d(x, w, None, layer.stride, layer.padding, strict=False, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    return {
        "fwd": (lambda: fc.conv2d(x, w, None, layer.stride, layer.padding, strict=False,
                                  **kw), ("conv2d",)),
        "bwd": (lambda: fc.conv2d_backward(dy, x, w, layer.stride, layer.padding, **kw),
                ("conv2d_backward_data", "conv2d_backward_weight")),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--filter", default=None, help="only layers whose name contains this")
    args = ap.parse_args()
    fc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    ratios = []
    print(f"{args.threads} thread(s), {args.dtype}: estimate's time / measure's "
          f"(median of {args.rounds} rounds); the plans when they differ")
    before = fc.get_planning()
    try:
        for layer in suite.CONV_LAYERS:
            name = layer.name(args.dtype)
            if layer.transposed or (args.filter and args.filter not in name):
                continue
            for op, (fn, plans) in _calls(layer, args.dtype, rng).items():
                r, algs = [], {}
                for _ in range(args.rounds):
                    times = {}
                    for mode in ("estimate", "measure"):
                        fc.set_planning(mode)
                        times[mode] = _median_time(fn, args.seconds)
                        algs[mode] = "+".join(_plan.last_run(p)["algorithm"] for p in plans)
                    r.append(times["estimate"] / times["measure"])
                ratio = float(np.median(r))
                ratios.append(ratio)
                differ = "" if algs["estimate"] == algs["measure"] else \
                    f"  {algs['estimate']} -> {algs['measure']}"
                print(f"  {name:52s} {op} {ratio:5.2f}x{differ}", flush=True)
    finally:
        fc.set_planning(before)
    a = np.array(ratios)
    print(f"geometric mean {np.exp(np.mean(np.log(a))):.3f}x over {len(a)} entries; "
          f"{int(np.sum(a > 1.05))} gain more than 5%, largest {a.max():.2f}x, "
          f"smallest {a.min():.2f}x")


if __name__ == "__main__":
    main()
