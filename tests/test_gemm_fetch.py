"""The GEMM engine's fetch-ahead blocking: where a strided B (x in a 1x1
convolution, dy in its data gradient) is larger than L2 and all of A fits
in an eighth of it, B is taken in small blocks and each block's lines are
fetched while the block before it is computed.  The blocks change no sum:
the batch gives each image's bits alone (whose B is small, and blocked the
usual way), and both agree with the oracle.  Caches are set small in a
child process so that modest shapes take the path, on every instruction
set and in both dtypes.
"""

import os

import numpy as np

from conftest import ISAS, run_python

CHILD = r"""
import sys
import numpy as np
import fastconv as F
sys.path.insert(0, TESTS)
import reference as ref
rng = np.random.default_rng(11)
bad = []
for dtype in (np.float32, np.float64):
    # N, C, H, W, K: B = x (C rows of N*H*W) or dy (K rows) passes 256 KiB
    # and is packed, not read in place: larger than 4 MiB (H*W not a
    # multiple of the tile's columns, so panels straddle images), or rows a
    # multiple of 1 KiB apart
    for N, C, H, W, K in [(8, 64, 45, 45, 24), (4, 24, 32, 32, 80), (6, 64, 16, 16, 7)]:
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((K, C, 1, 1)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype)
        y = F.conv2d(x, w, b, 1, 0, algorithm="gemm")
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = F.conv2d_backward(dy, x, w, 1, 0, algorithm=("gemm", None))[0]
        want_y = ref.conv2d(x, w, b, 1, 0)
        want_dx = ref.conv2d_backward(dy, x, w, 1, 0)[0]
        tol = 1e-4 if dtype == np.float32 else 1e-12
        for name, got, want in (("y", y, want_y), ("dx", dx, want_dx)):
            err = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1))
            if err > tol:
                bad.append((name, dtype.__name__, (N, C, H, W, K), "error", err))
        for i in range(N):
            yi = F.conv2d(x[i:i + 1], w, b, 1, 0, algorithm="gemm")
            dxi = F.conv2d_backward(dy[i:i + 1], x[i:i + 1], w, 1, 0,
                                    algorithm=("gemm", None))[0]
            for name, one, whole in (("y", yi[0], y[i]), ("dx", dxi[0], dx[i])):
                if not np.array_equal(one, whole):
                    bad.append((name, dtype.__name__, (N, C, H, W, K), "image", i))
print(bad)
"""


def test_fetched_blocks_change_no_bits():
    tests = os.path.dirname(os.path.abspath(__file__))
    code = CHILD.replace("TESTS", repr(tests))
    for isa in ISAS:
        for threads in ("1", "2"):
            r = run_python(code, FASTCONV_CACHE_SIZES="l1d=32K,l2=256K,l3=8M",
                           FASTCONV_ISA=isa, FASTCONV_NUM_THREADS=threads)
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == "[]", (isa, threads, r.stdout)
