"""A forward convolution's workspace stays within max(16 MiB, 10% of input + output)."""
import numpy as np
import pytest

import fastconv
from fastconv import _core

LIMIT_MIN = 16 << 20

# (N, C, H, K, F, stride, padding): weights larger than the limit in float64
# (512*512*3*3*8 bytes = 18 MiB), big images, 1x1, strided, batch 1
SHAPES = [
    (2, 512, 7, 512, 3, 1, 1),
    (1, 3, 224, 64, 7, 2, 3),
    (2, 64, 56, 64, 3, 1, 1),
    (2, 256, 28, 512, 1, 2, 0),
    (2, 1024, 7, 512, 1, 1, 0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_workspace_within_budget(isa, dtype, shape, threads):
    N, C, H, K, F, S, P = shape
    x = np.ones((N, C, H, H), dtype)
    w = np.ones((K, C, F, F), dtype)
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        y = fastconv.conv2d(x, w, None, S, P, strict=False)
        used = _core.last_workspace_bytes()
    finally:
        fastconv.set_num_threads(before)
    limit = max(LIMIT_MIN, (x.nbytes + y.nbytes) // 10)
    assert 0 < used <= limit, (used, limit)
    # the output is still right: every window sums C*F*F ones, less padding
    assert y[0, 0, H // 4 + 1, H // 4 + 1] == C * F * F


def test_thread_count_cap():
    from conftest import run_python

    with pytest.raises(ValueError, match=r"set_num_threads: n must be at most 1024, got 2147483648"):
        fastconv.set_num_threads(2**31)
    r = run_python("import numpy, fastconv; fastconv.max_pool2d(numpy.ones((1, 1, 2, 2)), 2)",
                   FASTCONV_NUM_THREADS="5000")
    assert r.returncode != 0
    assert "FASTCONV_NUM_THREADS must be at most 1024, got '5000'" in r.stderr, r.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_handles_empty_problems(dtype):
    # The Python layer never sends these, but the core must not divide by
    # zero or touch memory when a dimension is empty.
    dx = np.empty(0, dtype)
    _core.conv2d_bwd_data((1, 1, 0, 4, 2, 2, 1, 1, 1, 1, 0, 1, 4), np.ones(8, dtype),
                          np.ones(4, dtype), dx, 1)
    y = np.empty(0, dtype)
    _core.conv2d_fwd((0, 1, 4, 4, 2, 3, 3, 1, 1, 1, 1, 4, 4), np.ones(16, dtype),
                     np.ones(18, dtype), np.empty(0, dtype), y, False, 1)
