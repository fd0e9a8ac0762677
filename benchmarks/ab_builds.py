"""Two builds of fastconv side by side: each round times every layer in one
process per build, the builds alternating, and the report gives the median
over rounds of each build's time and their ratio.

    python benchmarks/ab_builds.py OLD_TREE NEW_TREE [--rounds 4] [--threads 1]
                                   [--seconds 0.5] [--layers dense|depthwise|grouped|pointwise|pool]

OLD_TREE and NEW_TREE are source trees with an in-place build
(``python setup.py build_ext --inplace``), e.g. a ``git worktree`` of an
older commit beside this one.  Separate processes keep the two compiled
cores apart; alternating them spreads the machine's drift over both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

# name, N, C, H, W, K, F, stride, padding, dtype (groups 1)
LAYERS = [
    ("LeNet 5x5 6->16 @14 b256", 256, 6, 14, 14, 16, 5, 1, 0, "float32"),
    ("stem 3->16 3x3 @112 b8", 8, 3, 112, 112, 16, 3, 1, 1, "float32"),
    ("3x3 64->64 @56 b4", 4, 64, 56, 56, 64, 3, 1, 1, "float32"),
    ("3x3 128->128 @28 b8", 8, 128, 28, 28, 128, 3, 1, 1, "float32"),
    ("3x3 256->256 @14 b8", 8, 256, 14, 14, 256, 3, 1, 1, "float32"),
    ("3x3 512->512 @7 b16", 16, 512, 7, 7, 512, 3, 1, 1, "float32"),
    ("1x1 256->30 @14 b8", 8, 256, 14, 14, 30, 1, 1, 0, "float32"),
    ("3x3 32->18 @40 b4", 4, 32, 40, 40, 18, 3, 1, 1, "float32"),
    ("3x3 64->64 @56 b4 f64", 4, 64, 56, 56, 64, 3, 1, 1, "float64"),
    ("3x3 96->100 @20 b8 f64", 8, 96, 20, 20, 100, 3, 1, 1, "float64"),
    ("3x3 s2 64->128 @56 b4", 4, 64, 56, 56, 128, 3, 2, 1, "float32"),
]

# MobileNetV2's and EfficientNet's depthwise layers (groups = C = K), batch 8
DEPTHWISE = [
    ("dw 3x3 32 @112", 8, 32, 112, 112, 32, 3, 1, 1, "float32"),
    ("dw 3x3 144 @56", 8, 144, 56, 56, 144, 3, 1, 1, "float32"),
    ("dw 3x3 144 s2 @56", 8, 144, 56, 56, 144, 3, 2, 1, "float32"),
    ("dw 3x3 384 @14", 8, 384, 14, 14, 384, 3, 1, 1, "float32"),
    ("dw 3x3 576 s2 @14", 8, 576, 14, 14, 576, 3, 2, 1, "float32"),
    ("dw 3x3 960 @7", 8, 960, 7, 7, 960, 3, 1, 1, "float32"),
    ("dw 5x5 240 @28", 8, 240, 28, 28, 240, 5, 1, 2, "float32"),
    ("dw 5x5 144 s2 @56", 8, 144, 56, 56, 144, 5, 2, 2, "float32"),
    ("dw 3x3 144 @56 f64", 8, 144, 56, 56, 144, 3, 1, 1, "float64"),
]

# ResNeXt's grouped layers (32 groups), stride 1 and 2, batch 8; the last
# column is the groups
GROUPED = [
    ("g32 3x3 128 @56", 8, 128, 56, 56, 128, 3, 1, 1, "float32", 32),
    ("g32 3x3 256 @28", 8, 256, 28, 28, 256, 3, 1, 1, "float32", 32),
    ("g32 3x3 512 @14", 8, 512, 14, 14, 512, 3, 1, 1, "float32", 32),
    ("g32 3x3 256 s2 @56", 8, 256, 56, 56, 256, 3, 2, 1, "float32", 32),
    ("g32 3x3 512 s2 @28", 8, 512, 28, 28, 512, 3, 2, 1, "float32", 32),
    ("g32 3x3 1024 s2 @14", 8, 1024, 14, 14, 1024, 3, 2, 1, "float32", 32),
    ("g8 3x3 64 s2 @56 f64", 4, 64, 56, 56, 64, 3, 2, 1, "float64", 8),
]

# ResNet-50's 1x1 layers (groups 1); the inputs of the two larger batches
# come from memory, the others from L3 on most CPUs
POINTWISE = [
    ("1x1 64->64 @56 b8", 8, 64, 56, 56, 64, 1, 1, 0, "float32"),
    ("1x1 64->64 @56 b32", 32, 64, 56, 56, 64, 1, 1, 0, "float32"),
    ("1x1 64->64 @56 b16 f64", 16, 64, 56, 56, 64, 1, 1, 0, "float64"),
    ("1x1 64->256 @56 b8", 8, 64, 56, 56, 256, 1, 1, 0, "float32"),
    ("1x1 256->64 @56 b8", 8, 256, 56, 56, 64, 1, 1, 0, "float32"),
    ("1x1 128->512 @28 b8", 8, 128, 28, 28, 512, 1, 1, 0, "float32"),
    ("1x1 1024->256 @14 b8", 8, 1024, 14, 14, 256, 1, 1, 0, "float32"),
    ("1x1 2048->512 @7 b8", 8, 2048, 7, 7, 512, 1, 1, 0, "float32"),
    ("1x1 256->64 @56 b1", 1, 256, 56, 56, 64, 1, 1, 0, "float32"),
    ("1x1 s2 256->512 @56 b4", 4, 256, 56, 56, 512, 1, 2, 0, "float32"),
    ("1x1 64->256 @56 b4 f64", 4, 64, 56, 56, 256, 1, 1, 0, "float64"),
]

# Pooling layers: name, mode, N, C, H, W, kernel, stride, padding, dtype;
# narrow planes (the AVX-512 narrow kernel's) and wide ones
POOLING = [
    ("max 3x3 s2 96@27 b16", "max", 16, 96, 27, 27, 3, 2, 0, "float32"),
    ("max 2x2 s2 3@32 b100", "max", 100, 3, 32, 32, 2, 2, 0, "float32"),
    ("avg 2x2 s2 3@32 b100", "avg", 100, 3, 32, 32, 2, 2, 0, "float32"),
    ("max 3x3 s1 p1 64@16 b32", "max", 32, 64, 16, 16, 3, 1, 1, "float32"),
    ("avg 3x3 s2 p1 256@14 b8 f64", "avg", 8, 256, 14, 14, 3, 2, 1, "float64"),
    ("max 3x3 s2 p1 64@112 b8", "max", 8, 64, 112, 112, 3, 2, 1, "float32"),
    ("max 2x2 s2 128@56 b8", "max", 8, 128, 56, 56, 2, 2, 0, "float32"),
]

# The child process: HEAD, then the loop over LAYERS of the kind asked for.
HEAD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import fastconv as fc
fc.set_num_threads(int(sys.argv[2]))
seconds = float(sys.argv[3])
rng = np.random.default_rng(0)
out = {}

def timed(fn):
    fn(); ts = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(ts) < 5:
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))
"""

POOL_LOOP = r"""
for name, mode, N, C, H, W, k, s, p, dt in LAYERS:
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    pool = fc.max_pool2d if mode == "max" else fc.avg_pool2d
    y = pool(x, k, s, p, strict=False)
    dy = rng.standard_normal(y.shape).astype(dt)
    if mode == "max":
        bwd = lambda: fc.max_pool2d_backward(dy, x, k, s, p, strict=False)
    else:
        bwd = lambda: fc.avg_pool2d_backward(dy, x.shape, k, s, p, strict=False)
    out[f"{name} fwd"] = timed(lambda: pool(x, k, s, p, strict=False))
    out[f"{name} bwd"] = timed(bwd)
print(json.dumps(out))
"""

CONV_LOOP = r"""
for name, N, C, H, W, K, F, S, P, dt, *groups in LAYERS:
    G = groups[0] if groups else C if DEPTHWISE else 1
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    w = rng.standard_normal((K, C // G, F, F)).astype(dt)
    b = rng.standard_normal(K).astype(dt)
    dy = rng.standard_normal(fc.conv2d(x, w, b, S, P, strict=False, groups=G).shape).astype(dt)
    out[f"{name} fwd"] = timed(lambda: fc.conv2d(x, w, b, S, P, strict=False, groups=G))
    out[f"{name} bwd"] = timed(lambda: fc.conv2d_backward(dy, x, w, S, P, groups=G))
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--layers", choices=["dense", "depthwise", "grouped", "pointwise", "pool"],
                    default="dense",
                    help="the dense layers above, the depthwise ones (groups = C), the "
                         "grouped ones, the 1x1 ones or the pooling ones")
    args = ap.parse_args()
    layers = {"dense": LAYERS, "depthwise": DEPTHWISE, "grouped": GROUPED,
              "pointwise": POINTWISE, "pool": POOLING}[args.layers]
    code = (f"LAYERS = {layers!r}\nDEPTHWISE = {args.layers == 'depthwise'!r}\n" + HEAD +
            (POOL_LOOP if args.layers == "pool" else CONV_LOOP))
    runs: dict = {"old": [], "new": []}
    for r in range(args.rounds):
        for which in ("old", "new"):
            tree = os.path.abspath(getattr(args, which))   # the children run from /
            res = subprocess.run([sys.executable, "-c", code, tree, str(args.threads),
                                  str(args.seconds)], capture_output=True, text=True,
                                 check=True, cwd="/")
            runs[which].append(json.loads(res.stdout))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{args.threads} thread(s): entry, old ms, new ms, new/old "
          f"(medians of {args.rounds} rounds)")
    ratios = []
    for key in runs["old"][0]:
        o = float(np.median([d[key] for d in runs["old"]]))
        n = float(np.median([d[key] for d in runs["new"]]))
        ratios.append(n / o)
        print(f"  {key:36s} {o * 1e3:9.3f} {n * 1e3:9.3f} {n / o:6.3f}")
    print(f"  geometric mean new/old {np.exp(np.mean(np.log(ratios))):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
