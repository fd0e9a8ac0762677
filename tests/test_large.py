"""Big tensors and failed allocations.

The `large` tests (skipped unless pytest runs with --run-large) convolve and
pool a float32 tensor of more than 2**31 elements -- 8 GiB, about 11 GiB at
peak -- and check bands of the result against the oracle, among them the
rows around element 2**31, where 32-bit index arithmetic would wrap.

The MemoryError tests are cheap and always run: an output that cannot exist,
a copy that cannot be made and a kernel workspace that cannot be allocated
all raise MemoryError, leave the inputs alone, and the process carries on.
"""

import os
import sys
import textwrap

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import assert_close, assert_exact, run_python

F = fastconv

# --------------------------------------------------------- > 2**31 elements

H, W = 32776, 65536                   # H * W = 2**31 + 8 * 65536
BIG = 2**31


@pytest.fixture(scope="module")
def big_x():
    x = np.empty((1, 1, H, W), np.float32)
    assert x.size > BIG
    x.fill(0.5)
    rng = np.random.default_rng(2**31)
    # Random values where the result is checked: the first rows, the rows
    # around element 2**31, the last rows.
    for r0 in (0, BIG // W - 6, H - 8):
        x[0, 0, r0:r0 + 8] = rng.standard_normal((8, W)).astype(np.float32)
    yield x


def bands():
    """Row ranges [a, b) of the input, each 8 rows, as filled by big_x."""
    return [(0, 8), (BIG // W - 6, BIG // W + 2), (H - 8, H)]


@pytest.mark.large
def test_conv2d_over_2_31_elements(big_x):
    w = np.random.default_rng(7).standard_normal((1, 1, 3, 3)).astype(np.float32)
    b = np.array([0.25], np.float32)
    y = F.conv2d(big_x, w, b, stride=2, padding=1, strict=False)   # (1, 1, 16388, 32768)
    assert y.shape == (1, 1, H // 2, W // 2)
    for a, z in bands():
        # Output rows whose windows lie inside the band (and the padding).
        o0, o1 = (a + 1) // 2, z // 2
        if a == 0:
            o0 = 0
        lo = 2 * o0 - 1
        x_band = big_x[:, :, max(lo, 0):2 * (o1 - 1) + 2]
        pad_top = 1 if lo < 0 else 0
        xb = np.pad(x_band.astype(np.float64), ((0, 0), (0, 0), (pad_top, 0), (0, 0)))
        want = ref.conv2d(xb, w, b, stride=2, padding=(0, 1))  # rows o0 .. o1-1
        scale = ref.conv2d(np.abs(xb), np.abs(w), np.abs(b), stride=2, padding=(0, 1))
        assert_close(y[:, :, o0:o1], want[:, :, :o1 - o0], scale[:, :, :o1 - o0], np.float32,
                     10, f"conv rows {o0}:{o1}")
    # Elsewhere the input is constant: every interior output is the same.
    interior = y[0, 0, 100:-100:997, 1:-1]
    expected = np.float64(0.5) * w.astype(np.float64).sum() + 0.25
    np.testing.assert_allclose(interior, expected, rtol=1e-5)


@pytest.mark.large
def test_pooling_over_2_31_elements(big_x):
    for op in ("max", "avg"):
        pool = F.max_pool2d if op == "max" else F.avg_pool2d
        y = pool(big_x, 2)                               # (1, 1, 16388, 32768)
        assert y.shape == (1, 1, H // 2, W // 2)
        for a, z in bands():
            o0, o1 = (a + 1) // 2, z // 2
            xb = big_x[:, :, 2 * o0:2 * o1]
            if op == "max":
                assert_exact(y[:, :, o0:o1], ref.max_pool2d(xb, 2), np.float32, f"max {o0}")
            else:
                assert_close(y[:, :, o0:o1], ref.avg_pool2d(xb, 2),
                             ref.avg_pool2d(np.abs(xb), 2), np.float32, 4, f"avg {o0}")
        del y
    # A window that straddles element 2**31 in a plane, 3x3 with padding.
    y = F.max_pool2d(big_x, 3, 3, 1, strict=False)
    r = (BIG // W) // 3
    xb = big_x[:, :, 3 * r - 1:3 * r + 2]
    assert_exact(y[:, :, r:r + 1], ref.max_pool2d(xb, 3, 3, (0, 1)), np.float32, "max 3x3")


# ------------------------------------------------------ failed allocations

def test_output_that_cannot_exist_raises_memory_error():
    x = np.ones((2, 3, 8, 8))
    with pytest.raises(MemoryError, match="conv2d: cannot allocate the output"):
        F.conv2d(x, np.ones((4, 3, 3, 3)), padding=2**30)
    with pytest.raises(MemoryError, match="max_pool2d: cannot allocate the output"):
        F.max_pool2d(np.lib.stride_tricks.as_strided(np.ones(1), (2**30, 2**20, 1, 1),
                                                     (0, 0, 0, 0)), 1)
    with pytest.raises(MemoryError, match="linear: cannot allocate the output"):
        F.linear(np.lib.stride_tricks.as_strided(np.ones(1), (2**50, 1), (0, 0)),
                 np.ones((4, 1)))
    with pytest.raises(MemoryError, match="conv2d_backward: cannot allocate dx"):
        big = np.lib.stride_tricks.as_strided(np.ones(1), (2**10, 1, 2**20, 2**20), (0,) * 4)
        F.conv2d_backward(np.zeros((2**10, 0, 1, 1)), big, np.ones((0, 1, 2**20, 2**20)))
    np.testing.assert_array_equal(x, 1.0)


def test_copy_that_cannot_be_made_raises_memory_error():
    # A zero-stride view of 2**50 elements must be copied before the kernel
    # can read it: 8 PiB, more than any address space.
    x = np.lib.stride_tricks.as_strided(np.ones(1), (1, 1, 2**25, 2**25), (0,) * 4)
    with pytest.raises(MemoryError):
        F.avg_pool2d(x, 2**25)


def _under_instrumentation():
    preload = os.environ.get("LD_PRELOAD", "")
    return bool(os.environ.get("FASTCONV_SANITIZER")) or "asan" in preload or \
        "vgpreload" in preload


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses RLIMIT_AS")
@pytest.mark.skipif(_under_instrumentation(),
                    reason="ASan and valgrind reserve address space beyond any RLIMIT_AS")
def test_workspace_allocation_failure_raises_memory_error():
    # Max pooling over a window that is mostly padding needs a workspace row
    # of about 2**28 elements (2 GiB in float64) while its input and output
    # hold one element each.  Under an address-space limit just above what
    # the process already uses, the C core cannot get that row: the call
    # must raise MemoryError, change nothing and leave the process usable.
    code = textwrap.dedent("""
        import resource, numpy as np, fastconv
        fastconv.set_num_threads(1)
        x = np.full((1, 1, 1, 1), 3.0)
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * resource.getpagesize()
        limit = used + 512 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        kernel, pad = (1, 2**27 + 1), (0, 2**26)
        try:
            fastconv.max_pool2d(x, kernel, padding=pad)
        except MemoryError as exc:
            print("MemoryError:", exc)
        else:
            print("no error")
        assert x.tolist() == [[[[3.0]]]]
        # The process is still usable.
        print("after:", fastconv.max_pool2d(np.arange(4.0).reshape(1, 1, 2, 2), 2).item())
    """)
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert "MemoryError: fastconv: could not allocate the kernel workspace" in r.stdout, \
        r.stdout
    assert "after: 3.0" in r.stdout
