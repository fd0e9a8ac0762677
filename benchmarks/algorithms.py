"""Every algorithm that can serve a convolution layer, forced one at a time
against the planner's own choice, interleaved in one process: the planner's
estimates checked by measurement, one layer at a time.

    python benchmarks/algorithms.py LAYER [LAYER ...] [--op fwd|data|weight]
                                    [--dtype float32] [--threads 1]
                                    [--rounds 5] [--seconds 0.15]

LAYER is N,C,K,H,F,S,P[,G]: N images of C channels of H x H, K filters of
F x F at stride S with padding P, in G groups (default 1), e.g.
``8,64,64,56,3,2,1`` or ``8,256,256,56,3,2,1,32``.  Each round times every
candidate once (the median of calls over --seconds); the report gives the
median over rounds, in ms, and each candidate's time over the plan's (below
1: faster than what the planner picks).  ``data`` times the data gradient
alone, through the binding, as the suite does; ``weight`` calls
``conv2d_backward(..., need_dx=False)``, which adds the bias gradient.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastconv as fc  # noqa: E402
from fastconv import _plan  # noqa: E402
from benchmarks.modern_layers import _median_time  # noqa: E402

OPS = {"fwd": "conv2d", "data": "conv2d_backward_data", "weight": "conv2d_backward_weight"}


def _layer(text):
    v = [int(t) for t in text.split(",")]
    if len(v) not in (7, 8):
        raise argparse.ArgumentTypeError(f"expected N,C,K,H,F,S,P[,G], got {text!r}")
    return tuple(v) + ((1,) if len(v) == 7 else ())


def _call(op, x, w, dy, S, P, G, alg):
    """A callable running op with algorithm alg (None: the planner's)."""
    if op == "fwd":
        return lambda: fc.conv2d(x, w, None, S, P, groups=G, strict=False, algorithm=alg)
    if op == "weight":
        return lambda: fc.conv2d_backward(dy, x, w, S, P, groups=G, need_dx=False,
                                          algorithm=(None, alg))
    N, C, H, W = x.shape
    K, _, F, _ = w.shape
    geom = (N, C, H, W, K, F, F, S, S, P, P, dy.shape[2], dy.shape[3], 1, 1, G)
    aid = -1 if alg is None else _plan.algorithm_id(alg, [OPS["data"]], "algorithms.py")
    dyf, wf = dy.reshape(-1), w.reshape(-1)

    def data():
        dx = np.empty(x.shape, x.dtype)
        fc._core.conv2d_bwd_data(geom, dyf, wf, dx.reshape(-1), fc.get_num_threads(), aid)
        return dx
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layers", nargs="+", type=_layer, metavar="LAYER")
    ap.add_argument("--op", choices=sorted(OPS), default="fwd")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.15)
    args = ap.parse_args()
    fc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{args.op}, {args.dtype}, {fc.get_num_threads()} thread(s): ms (candidate / plan), "
          f"medians of {args.rounds} interleaved rounds")
    for N, C, K, H, F, S, P, G in args.layers:
        x = rng.standard_normal((N, C, H, H)).astype(args.dtype)
        w = rng.standard_normal((K, C // G, F, F)).astype(args.dtype)
        dy = rng.standard_normal(fc.conv2d(x, w, None, S, P, groups=G, strict=False).shape
                                 ).astype(args.dtype)
        plan = fc.plan(OPS[args.op], x.shape, w.shape, dtype=args.dtype, stride=S, padding=P,
                       groups=G, strict=False)
        calls = {"plan": _call(args.op, x, w, dy, S, P, G, None)}
        for name in fc.algorithms():
            try:
                fc.plan(OPS[args.op], x.shape, w.shape, dtype=args.dtype, stride=S, padding=P,
                        groups=G, strict=False, algorithm=name)
            except ValueError:
                continue   # cannot serve this layer or op
            calls[name] = _call(args.op, x, w, dy, S, P, G, name)
        times = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, fn in calls.items():
                times[name].append(_median_time(fn, args.seconds))
        med = {name: float(np.median(t)) for name, t in times.items()}
        cells = "  ".join(f"{n}={t * 1e3:.3f} ({t / med['plan']:.2f})"
                          for n, t in sorted(med.items(), key=lambda kv: kv[1]))
        print(f"  {N},{C},{K},{H},{F},{S},{P},{G}  plan: {plan.algorithm}  {cells}", flush=True)


if __name__ == "__main__":
    main()
