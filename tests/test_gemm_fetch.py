"""The GEMM engine's fetch-ahead blocking: where a strided B (x in a 1x1
convolution, dy in its data gradient) is packed, is larger than L2, and
all of A fits in an eighth of L2, B is taken in small column blocks and each
block's lines are fetched while the block before it is computed.  The
blocks change no sum: the same calls under caches where the path is never
taken (an L2 larger than every B here; L1, which sets the reduction blocks,
unchanged) give the same bits, each image alone gives the batch's bits, and
all agree with the oracle.  On every instruction set and in both dtypes.
"""

import os

import numpy as np
import pytest

from conftest import ISAS, run_python

# The path under test, and caches that never take it: same L1, so the same
# reduction blocks.
SMALL_L2 = "l1d=32K,l2=256K,l3=8M"
HUGE_L2 = "l1d=32K,l2=64M,l3=1024M"

CHILD = r"""
import sys
import numpy as np
import fastconv as F
sys.path.insert(0, TESTS)
import reference as ref
rng = np.random.default_rng(11)
bad, out = [], {}
for dtype in (np.float32, np.float64):
    # N, C, H, W, K.  Under SMALL_L2, B (x for the forward, dy for the data
    # gradient) passes 256 KiB and is packed, not read in place: larger than
    # 4 MiB, or rows a multiple of 1 KiB apart; A takes at most 32 KiB.
    # 46x46 is not a multiple of a tile's columns, so panels straddle
    # images; 272 channels are two reduction blocks, so the block fetched
    # next is also the next reduction block of the same columns.
    for N, C, H, W, K in [(8, 64, 46, 46, 24), (4, 24, 32, 32, 80), (6, 64, 16, 16, 7),
                          (4, 272, 16, 16, 7)]:
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((K, C, 1, 1)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype)
        y = F.conv2d(x, w, b, 1, 0, algorithm="gemm")
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = F.conv2d_backward(dy, x, w, 1, 0, algorithm=("gemm", None))[0]
        key = f"{np.dtype(dtype).name} {N},{C},{H},{W},{K}"
        out[key + " y"], out[key + " dx"] = y, dx
        want_y = ref.conv2d(x, w, b, 1, 0)
        want_dx = ref.conv2d_backward(dy, x, w, 1, 0)[0]
        tol = 1e-4 if dtype == np.float32 else 1e-12
        for name, got, want in (("y", y, want_y), ("dx", dx, want_dx)):
            err = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1))
            if err > tol:
                bad.append((key, name, "error", err))
        for i in range(N):
            yi = F.conv2d(x[i:i + 1], w, b, 1, 0, algorithm="gemm")
            dxi = F.conv2d_backward(dy[i:i + 1], x[i:i + 1], w, 1, 0,
                                    algorithm=("gemm", None))[0]
            for name, one, whole in (("y", yi[0], y[i]), ("dx", dxi[0], dx[i])):
                if not np.array_equal(one, whole):
                    bad.append((key, name, "image", i))
np.savez(OUT, **out)
print(bad)
"""


@pytest.mark.parametrize("isa", ISAS)
def test_fetched_blocks_change_no_bits(isa, tmp_path):
    tests = os.path.dirname(os.path.abspath(__file__))
    results = {}
    for caches in (SMALL_L2, HUGE_L2):
        for threads in ("1", "2"):
            out = tmp_path / f"{len(results)}.npz"
            code = CHILD.replace("TESTS", repr(tests)).replace("OUT", repr(str(out)))
            r = run_python(code, FASTCONV_CACHE_SIZES=caches, FASTCONV_ISA=isa,
                           FASTCONV_NUM_THREADS=threads)
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == "[]", (caches, threads, r.stdout)
            with np.load(out) as z:
                results[caches, threads] = {k: z[k] for k in z.files}
    base = results[HUGE_L2, "1"]
    for setting, arrays in results.items():
        assert arrays.keys() == base.keys()
        for k, a in arrays.items():
            assert np.array_equal(a, base[k]), (setting, k)
