"""Speed under load: one and two threads, with and without a CPU-bound
competitor process, for fastconv's wait policies (and PyTorch, if installed).

    python benchmarks/load.py [--rounds 5] [--seconds 0.4] [--no-torch]

Each (policy, load) cell runs in a fresh process, because the OpenMP
runtime reads its wait policy once, when it is loaded; the competitor is a
busy loop in another process.  For every layer, forward and backward, it
prints the median over rounds of the time at one and at two threads and
their ratio (speed at two threads / speed at one: above 1 is a gain, below
1 a loss), and with PyTorch its two-thread time under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name, N, C, H, W, K, F, S, P (float32)
LAYERS = [
    ("1x1 256->30 @14 b8", 8, 256, 14, 14, 30, 1, 1, 0),
    ("3x3 32->18 @40 b4", 4, 32, 40, 40, 18, 3, 1, 1),
    ("3x3 64->64 @56 b4", 4, 64, 56, 56, 64, 3, 1, 1),
    ("3x3 256->256 @14 b8", 8, 256, 14, 14, 256, 3, 1, 1),
]

CHILD = r"""
import json, sys, time
import numpy as np
seconds, who = float(sys.argv[1]), sys.argv[2]
if who == "torch":      # its own process: torch's OpenMP runtime as users get it
    import torch
    F = torch.nn.functional
else:
    import fastconv as fc
rng = np.random.default_rng(0)
out = {}
for name, N, C, H, W, K, Fk, S, P in LAYERS:
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, Fk, Fk)).astype(np.float32)
    H2, W2 = (H + 2 * P - Fk) // S + 1, (W + 2 * P - Fk) // S + 1
    dy = np.ones((N, K, H2, W2), np.float32)
    if who == "torch":
        tx, tw, tdy = (torch.from_numpy(a) for a in (x, w, dy))
        txg, twg = tx.clone().requires_grad_(True), tw.clone().requires_grad_(True)
        def fwd():
            with torch.no_grad():
                F.conv2d(tx, tw, None, S, P)
        def bwd():
            torch.autograd.grad(F.conv2d(txg, twg, None, S, P), (txg, twg), tdy)
        set_threads = torch.set_num_threads
    else:
        fwd = lambda: fc.conv2d(x, w, None, S, P)
        bwd = lambda: fc.conv2d_backward(dy, x, w, S, P)
        set_threads = fc.set_num_threads
    for nt in (1, 2):
        set_threads(nt)
        for op, fn in (("fwd", fwd), ("bwd", bwd)):
            fn(); ts = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end or len(ts) < 3:
                t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
            out[f"{name}|{op}|{nt}"] = float(np.median(ts))
print(json.dumps(out))
"""


def cell(who: str, loaded: bool, seconds: float) -> dict:
    """One process measuring every layer: ``who`` is a fastconv wait policy
    (``passive`` or ``openmp``) or ``torch``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FASTCONV_NUM_THREADS")}
    env["FASTCONV_WAIT_POLICY"] = "passive" if who == "torch" else who
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    code = f"LAYERS = {LAYERS!r}\n" + CHILD
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
    try:
        time.sleep(0.2 if loaded else 0)
        r = subprocess.run([sys.executable, "-c", code, str(seconds), who],
                           env=env, capture_output=True, text=True, check=True)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.4, help="timing per measurement")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            use_torch = False
    import numpy as np

    who = ["passive", "openmp"] + (["torch"] if use_torch else [])
    cells = [(w, loaded) for loaded in (False, True) for w in who]
    runs: dict = {c: [] for c in cells}
    for r in range(args.rounds):
        for c in cells:   # interleaved, so drift hits every cell alike
            runs[c].append(cell(c[0], c[1], args.seconds))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    for (w, loaded), rs in runs.items():
        label = "PyTorch" if w == "torch" else f"fastconv, wait policy {w}"
        print(f"\n== {label}, {'one CPU-bound competitor' if loaded else 'idle'}"
              f" (medians of {len(rs)} rounds; per-round 2t/1t speed in brackets)")
        for name, *_ in LAYERS:
            for op in ("fwd", "bwd"):
                t1 = [d[f"{name}|{op}|1"] for d in rs]
                t2 = [d[f"{name}|{op}|2"] for d in rs]
                per = " ".join(f"{a / b:.2f}" for a, b in zip(t1, t2))
                line = (f"  {name:22s} {op}: 1t {np.median(t1) * 1e3:8.3f} ms  2t "
                        f"{np.median(t2) * 1e3:8.3f} ms  2t/1t speed "
                        f"{np.median(t1) / np.median(t2):5.2f} [{per}]")
                if w == "passive" and use_torch:
                    tt = [d[f"{name}|{op}|2"] for d in runs[("torch", loaded)]]
                    line += f"  vs torch 2t: {np.median(tt) / np.median(t2):4.2f}x"
                print(line)

if __name__ == "__main__":
    main()
