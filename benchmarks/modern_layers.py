"""fastconv against PyTorch on the layers of modern ConvNets: depthwise
(MobileNetV2, EfficientNet), grouped (ResNeXt), dilated (DeepLab's ASPP) and
transposed (U-Net, DCGAN) convolutions, forward and backward (data and
weight gradients), float32, at 1 and 2 threads.

    python benchmarks/modern_layers.py [--rounds 5] [--seconds 0.3] [--threads 1 2]

Needs torch (``pip install torch==2.13.0``).  For each entry the two
libraries are timed alternately in one process, each time the median of
calls over ``--seconds``; the printed ratio is PyTorch's time over
fastconv's (above 1: fastconv is faster), the median over rounds, with the
smallest and largest round in brackets.  Both compute the same gradients:
``conv2d_backward`` (dx, dw, db) against ``aten.convolution_backward`` with
all three outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastconv as fc  # noqa: E402

# kind, name, N, C, HW, K, F, stride, padding, dilation, groups
CONV = [
    ("depthwise", "MobileNetV2 dw 3x3 32 @112", 8, 32, 112, 32, 3, 1, 1, 1, 32),
    ("depthwise", "MobileNetV2 dw 3x3 144 @56", 8, 144, 56, 144, 3, 1, 1, 1, 144),
    ("depthwise", "MobileNetV2 dw 3x3 144 s2 @56", 8, 144, 56, 144, 3, 2, 1, 1, 144),
    ("depthwise", "MobileNetV2 dw 3x3 384 @14", 8, 384, 14, 384, 3, 1, 1, 1, 384),
    ("depthwise", "EfficientNet dw 5x5 240 @28", 8, 240, 28, 240, 5, 1, 2, 1, 240),
    ("depthwise", "EfficientNet dw 5x5 144 s2 @56", 8, 144, 56, 144, 5, 2, 2, 1, 144),
    ("grouped", "ResNeXt 3x3 128 g32 @56", 8, 128, 56, 128, 3, 1, 1, 1, 32),
    ("grouped", "ResNeXt 3x3 256 g32 @28", 8, 256, 28, 256, 3, 1, 1, 1, 32),
    ("grouped", "ResNeXt 3x3 512 g32 @14", 8, 512, 14, 512, 3, 1, 1, 1, 32),
    ("grouped", "ResNeXt 3x3 256 g32 s2 @56", 8, 256, 56, 256, 3, 2, 1, 1, 32),
    ("grouped", "ResNeXt 3x3 512 g32 s2 @28", 8, 512, 28, 512, 3, 2, 1, 1, 32),
    ("grouped", "ResNeXt 3x3 1024 g32 s2 @14", 8, 1024, 14, 1024, 3, 2, 1, 1, 32),
    ("dilated", "ASPP 3x3 256->256 d2 @33", 4, 256, 33, 256, 3, 1, 2, 2, 1),
    ("dilated", "ASPP 3x3 256->256 d4 @33", 4, 256, 33, 256, 3, 1, 4, 4, 1),
    ("dilated", "ASPP 3x3 256->256 d6 @33", 4, 256, 33, 256, 3, 1, 6, 6, 1),
]
# kind, name, N, C_in, HW, C_out, F, stride, padding
TRANSPOSED = [
    ("transposed", "U-Net up 2x2 s2 128->64 @28", 8, 128, 28, 64, 2, 2, 0),
    ("transposed", "U-Net up 2x2 s2 256->128 @14", 8, 256, 14, 128, 2, 2, 0),
    ("transposed", "DCGAN 4x4 s2 p1 256->128 @8", 32, 256, 8, 128, 4, 2, 1),
    ("transposed", "DCGAN 4x4 s2 p1 128->64 @16", 32, 128, 16, 64, 4, 2, 1),
]


def _median_time(fn, seconds):
    fn()
    ts = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(ts) < 3:
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def entries(torch):
    F = torch.nn.functional
    aten = torch.ops.aten
    rng = np.random.default_rng(0)
    for kind, name, N, C, HW, K, Fk, s, p, d, g in CONV:
        x = rng.standard_normal((N, C, HW, HW)).astype(np.float32)
        w = rng.standard_normal((K, C // g, Fk, Fk)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        y = fc.conv2d(x, w, b, s, p, strict=False, dilation=d, groups=g)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
        yield (kind, name, "fwd",
               lambda x=x, w=w, b=b, s=s, p=p, d=d, g=g:
                   fc.conv2d(x, w, b, s, p, strict=False, dilation=d, groups=g),
               lambda tx=tx, tw=tw, tb=tb, s=s, p=p, d=d, g=g: F.conv2d(tx, tw, tb, s, p, d, g))
        yield (kind, name, "bwd",
               lambda dy=dy, x=x, w=w, s=s, p=p, d=d, g=g:
                   fc.conv2d_backward(dy, x, w, s, p, dilation=d, groups=g),
               lambda tdy=tdy, tx=tx, tw=tw, K=K, s=s, p=p, d=d, g=g:
                   aten.convolution_backward(tdy, tx, tw, [K], [s, s], [p, p], [d, d], False,
                                             [0, 0], g, [True, True, True]))
    for kind, name, N, C, HW, K, Fk, s, p in TRANSPOSED:
        x = rng.standard_normal((N, C, HW, HW)).astype(np.float32)
        w = rng.standard_normal((C, K, Fk, Fk)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        y = fc.conv_transpose2d(x, w, b, s, p)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
        yield (kind, name, "fwd",
               lambda x=x, w=w, b=b, s=s, p=p: fc.conv_transpose2d(x, w, b, s, p),
               lambda tx=tx, tw=tw, tb=tb, s=s, p=p: F.conv_transpose2d(tx, tw, tb, s, p))
        yield (kind, name, "bwd",
               lambda dy=dy, x=x, w=w, s=s, p=p: fc.conv_transpose2d_backward(dy, x, w, s, p),
               lambda tdy=tdy, tx=tx, tw=tw, K=K, s=s, p=p:
                   aten.convolution_backward(tdy, tx, tw, [K], [s, s], [p, p], [1, 1], True,
                                             [0, 0], 1, [True, True, True]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--kinds", nargs="+", default=None,
                    choices=["depthwise", "grouped", "dilated", "transposed"],
                    help="run only these kinds of layer")
    args = ap.parse_args()
    import torch
    print(f"fastconv {fc.__version__} ({fc._config.get_isa()}), torch {torch.__version__}")
    for nt in args.threads:
        fc.set_num_threads(nt)
        torch.set_num_threads(nt)
        print(f"\n== {nt} thread{'s' if nt > 1 else ''}: PyTorch time / fastconv time "
              f"(median of {args.rounds} rounds [min, max])")
        per_kind = {}
        with torch.no_grad():
            for kind, name, op, ours, theirs in entries(torch):
                if args.kinds and kind not in args.kinds:
                    continue
                ratios, tf, tt = [], [], []
                for _ in range(args.rounds):
                    a = _median_time(ours, args.seconds)
                    t = _median_time(theirs, args.seconds)
                    ratios.append(t / a)
                    tf.append(a)
                    tt.append(t)
                r = float(np.median(ratios))
                per_kind.setdefault((kind, op), []).append(r)
                print(f"  {kind:10s} {name:34s} {op}: fastconv {np.median(tf) * 1e3:8.3f} ms, "
                      f"torch {np.median(tt) * 1e3:8.3f} ms  "
                      f"{r:5.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]")
        print("  geometric means:", ", ".join(
            f"{k} {o} {np.exp(np.mean(np.log(v))):.2f}x (lowest {min(v):.2f}x)"
            for (k, o), v in per_kind.items()))


if __name__ == "__main__":
    main()
