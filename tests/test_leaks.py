"""No leaks: ten thousand calls of each op (and of failing calls) leave the
process's resident memory flat.

A leaked output array or workspace per call would add at least its size
times 10**4 -- tens to hundreds of MiB for the shapes below -- while the
bound allows a few MiB of allocator noise.
"""

import os

import numpy as np
import pytest

import fastconv
from conftest import randn

F = fastconv
CALLS = 10_000
# Every op's outputs hold >= 2 KiB, so a leak of one output per call would
# grow the process by >= 20 MiB; allocator noise stays well below 8 MiB.
BOUND_MIB = 8


def rss_mib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _under_instrumentation():
    preload = os.environ.get("LD_PRELOAD", "")
    return bool(os.environ.get("FASTCONV_SANITIZER")) or "asan" in preload or \
        "vgpreload" in preload


pytestmark = [
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                       reason="needs /proc/self/statm (Linux)"),
    # ASan keeps freed blocks in a quarantine of up to 256 MiB, which reads as growth.
    pytest.mark.skipif(_under_instrumentation(), reason="memory checkers hold freed memory"),
]


def make_ops():
    x = randn((2, 4, 8, 8), np.float32, "leak x")
    w = randn((8, 4, 3, 3), np.float32, "leak w")
    b = randn((8,), np.float32, "leak b")
    dy = randn((2, 8, 8, 8), np.float32, "leak dy")
    dyp = randn((2, 4, 4, 4), np.float32, "leak dyp")
    xl = randn((8, 64), np.float32, "leak xl")
    wl = randn((32, 64), np.float32, "leak wl")
    dyl = randn((8, 32), np.float32, "leak dyl")
    xd = x.astype(np.float64)[:, :, ::-1]    # a view that has to be copied
    return {
        "conv2d": lambda: F.conv2d(x, w, b, 1, 1, activation="relu"),
        "conv2d float64 view": lambda: F.conv2d(xd, w, None, 1, 1),
        "conv2d_backward": lambda: F.conv2d_backward(dy, x, w, 1, 1),
        "conv2d_backward stride 2": lambda: F.conv2d_backward(dy[:, :, :4, :4], x, w, 2, 1,
                                                              need_dx=True),
        "max_pool2d": lambda: F.max_pool2d(x, 2),
        "max_pool2d_backward": lambda: F.max_pool2d_backward(dyp, x, 2),
        "avg_pool2d": lambda: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False, strict=False),
        "avg_pool2d_backward": lambda: F.avg_pool2d_backward(dyp, x.shape, 2),
        "linear": lambda: F.linear(xl, wl, None),
        "linear_backward": lambda: F.linear_backward(dyl, xl, wl),
        "relu": lambda: F.relu(x),
        "relu_backward": lambda: F.relu_backward(x, x),
    }


def failing_calls():
    x = np.ones((2, 4, 8, 8), np.float32)
    return {
        "shape error": (lambda: F.conv2d(x, np.ones((8, 4, 3, 3)), stride=2), ValueError),
        "dtype error": (lambda: F.max_pool2d(x.astype(complex), 2), TypeError),
        "too large": (lambda: F.conv2d(x, np.ones((8, 4, 3, 3)), padding=2**30), MemoryError),
    }


def grows_by(call, expected_exc=None):
    def once():
        if expected_exc is None:
            call()
        else:
            try:
                call()
            except expected_exc:
                pass
            else:
                raise AssertionError("the call did not fail")

    for _ in range(500):     # warm up caches, allocator arenas, OpenMP threads
        once()
    before = rss_mib()
    for _ in range(CALLS):
        once()
    return rss_mib() - before


@pytest.mark.parametrize("op", list(make_ops()))
def test_ten_thousand_calls_leave_memory_flat(op):
    call = make_ops()[op]
    grown = grows_by(call)
    assert grown < BOUND_MIB, f"{op}: resident memory grew by {grown:.1f} MiB over {CALLS} calls"


@pytest.mark.parametrize("case", list(failing_calls()))
def test_failing_calls_do_not_leak(case):
    call, exc = failing_calls()[case]
    grown = grows_by(call, exc)
    assert grown < BOUND_MIB, f"{case}: resident memory grew by {grown:.1f} MiB"


def test_the_measure_sees_a_leak():
    # The same measurement over a call that keeps its outputs must fail the bound.
    kept = []
    call = make_ops()["conv2d"]
    grown = grows_by(lambda: kept.append(call()))
    assert grown >= BOUND_MIB, f"a real leak of {CALLS} outputs showed as {grown:.1f} MiB only"
