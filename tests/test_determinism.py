"""Determinism: at a fixed thread count and instruction set, repeated calls
return the same bits -- whatever the addresses of the inputs -- for every op
and both dtypes.  Across thread counts only the convolution weight gradient
may change (its reduction is split among threads), and across instruction
sets the GEMM ops stay within the oracle tolerance of each other while
pooling stays bit for bit the same.  docs/robustness.md gives the measured
sizes of those differences.
"""

import numpy as np
import pytest

import fastconv
from conftest import ISAS, assert_close
from conftest import randn as _randn
from fastconv import _config

F = fastconv
THREAD_COUNTS = [1, 2, 3]   # 3: more threads than this machine may have cores


def make_ops(dtype, absolute=False):
    """Every op on shapes large enough that the kernels use several threads
    (the GEMM ops above 2 MFLOP, pooling above 256 Ki elements per thread).
    Each entry: (call, reduction length per output, whether the result
    depends on the thread count).  With absolute=True every input is
    replaced by its absolute value, which turns each result into the sum of
    the magnitudes of its terms: the scale of its rounding error."""
    def randn(shape, dtype, *key):
        a = _randn(shape, dtype, *key)
        return np.abs(a) if absolute else a

    # About 2e7 flops per GEMM op, twice the core's threshold for threads.
    x = randn((4, 16, 24, 24), dtype, "det x")
    x2 = randn((4, 16, 47, 47), dtype, "det x2")
    w = randn((32, 16, 3, 3), dtype, "det w")
    b = randn((32,), dtype, "det b")
    dy1 = randn((4, 32, 24, 24), dtype, "det dy1")      # stride 1, padding 1
    dy2 = randn((4, 32, 24, 24), dtype, "det dy2")      # x2, stride 2, padding 1
    xp = randn((4, 48, 65, 63), dtype, "det xp")
    dyp = randn((4, 48, 33, 32), dtype, "det dyp")      # 3x3, stride 2, padding 1
    x1 = randn((1, 16, 48, 48), dtype, "det x1")          # one image: bands per thread
    dy1b = randn((1, 32, 48, 48), dtype, "det dy1b")
    xl = randn((96, 400), dtype, "det xl")
    wl = randn((300, 400), dtype, "det wl")
    bl = randn((300,), dtype, "det bl")
    dyl = randn((96, 300), dtype, "det dyl")
    return {
        "conv2d": (lambda: [F.conv2d(x, w, b, 1, 1, activation="relu")], 145, False),
        "conv2d stride 2": (lambda: [F.conv2d(x2, w, b, 2, 1)], 145, False),
        "conv2d_backward dx": (lambda: [F.conv2d_backward(dy1, x, w, 1, 1)[0]], 288, False),
        "conv2d_backward dw": (lambda: list(F.conv2d_backward(dy1, x, w, 1, 1)[1:]), 2304,
                               True),
        # The bias gradient is summed per output row, the rows in order,
        # however the weight gradient's reduction is split.
        "conv2d_backward db": (lambda: [F.conv2d_backward(dy1, x, w, 1, 1)[2]], 2304, False),
        "conv2d_backward db batch 1": (
            lambda: [F.conv2d_backward(dy1b, x1, w, 1, 1, need_dx=False)[2]], 2304, False),
        "conv2d_backward stride 2": (lambda: [F.conv2d_backward(dy2, x2, w, 2, 1)[0]], 128,
                                     False),
        "max_pool2d": (lambda: [F.max_pool2d(xp, 3, 2, 1, strict=False)], 9, False),
        "max_pool2d_backward": (lambda: [F.max_pool2d_backward(dyp, xp, 3, 2, 1,
                                                               strict=False)], 4, False),
        "avg_pool2d": (lambda: [F.avg_pool2d(xp, 3, 2, 1, count_include_pad=False,
                                             strict=False)], 9, False),
        "avg_pool2d_backward": (lambda: [F.avg_pool2d_backward(dyp, xp.shape, 3, 2, 1,
                                                               strict=False)], 4, False),
        "linear": (lambda: [F.linear(xl, wl, bl, activation="relu")], 401, False),
        "linear_backward": (lambda: list(F.linear_backward(dyl, xl, wl)), 300, False),
    }


OPS = list(make_ops(np.float64))


def bits(a):
    """The exact bit pattern (NaN payloads included)."""
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def assert_same_bits(got, want, what):
    assert len(got) == len(want)
    for g, e in zip(got, want):
        assert g.shape == e.shape and g.dtype == e.dtype
        diff = int(np.count_nonzero(bits(g) != bits(e)))
        assert diff == 0, f"{what}: {diff} of {g.size} elements differ"


@pytest.fixture
def restore_threads():
    before = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(before)


@pytest.mark.parametrize("op", OPS)
def test_repeated_calls_are_bitwise_identical(op, dtype, isa, restore_threads):
    call = make_ops(dtype)[op][0]
    for n in THREAD_COUNTS:
        fastconv.set_num_threads(n)
        first = call()
        for _ in range(3):
            assert_same_bits(call(), first, f"{op} at {n} threads, repeated")


def shifted(a, shift):
    """A copy of `a` whose data starts `shift` elements past a 64-byte
    boundary, so repeated runs see the same values at other addresses."""
    raw = np.empty(a.size + 64, a.dtype)
    base = (-raw.ctypes.data % 64) // a.itemsize
    out = raw[base + shift: base + shift + a.size].reshape(a.shape)
    out[...] = a
    return out


def test_results_do_not_depend_on_addresses(dtype, isa, restore_threads):
    # Run to run, malloc places the inputs at other addresses; vector loops
    # that peel to an alignment boundary must not change the sums they make.
    fastconv.set_num_threads(2)
    x = _randn((2, 8, 13, 17), dtype, "addr x")
    w = _randn((20, 8, 3, 3), dtype, "addr w")
    dy = _randn((2, 20, 13, 17), dtype, "addr dy")
    xl, wl = _randn((9, 37), dtype, "addr xl"), _randn((21, 37), dtype, "addr wl")

    def run(s):
        sx, sw, sdy = shifted(x, s), shifted(w, s), shifted(dy, s)
        return ([F.conv2d(sx, sw, None, 1, 1)] + list(F.conv2d_backward(sdy, sx, sw, 1, 1))
                + [F.max_pool2d(sx, 3, 1, 1), F.avg_pool2d(sx, 3, 1, 1),
                   F.avg_pool2d(sx, (13, 17)), F.linear(shifted(xl, s), shifted(wl, s))])

    first = run(0)
    for s in (1, 3, 5, 7):
        assert_same_bits(run(s), first, f"inputs shifted by {s} elements")


@pytest.mark.parametrize("op", OPS)
def test_thread_count_changes_only_the_weight_gradient(op, dtype, isa, restore_threads):
    call, length, varies = make_ops(dtype)[op]
    results = {}
    for n in THREAD_COUNTS:
        fastconv.set_num_threads(n)
        results[n] = call()
    if varies and fastconv._core.openmp_enabled():
        # Premise: the shapes reach the threaded path, where the split of the
        # reduction shows in the bits (else this test could not fail).  A
        # sequential build runs one thread at every setting.
        assert any(not np.array_equal(a, b) for a, b in zip(results[2], results[1])), \
            f"{op}: 1 and 2 threads give the same bits; enlarge the shapes of make_ops"
    scale = make_ops(dtype, absolute=True)[op][0]()
    for n in THREAD_COUNTS[1:]:
        if not varies:
            assert_same_bits(results[n], results[1], f"{op}: {n} threads vs 1")
        else:
            # Another split of the same sum: both within the oracle tolerance
            # of the exact value, so within twice of it from each other.
            for g, e, sc in zip(results[n], results[1], scale):
                assert_close(g, e.astype(np.float64), 2 * sc.astype(np.float64), dtype, length,
                             f"{op}: {n} threads vs 1")


@pytest.mark.skipif(len(ISAS) < 2, reason="only one instruction set to compare")
@pytest.mark.parametrize("op", OPS)
def test_instruction_sets_agree(op, dtype, restore_threads):
    fastconv.set_num_threads(1)
    results = {}
    for name in ISAS:
        with _config.using_isa(name):
            results[name] = make_ops(dtype)[op][0]()
    length = make_ops(dtype)[op][1]
    scale = make_ops(dtype, absolute=True)[op][0]()
    ref_name = ISAS[0]
    for name in ISAS[1:]:
        if "pool" in op:
            # No arithmetic is reassociated in pooling: every path gives the same bits.
            assert_same_bits(results[name], results[ref_name], f"{op}: {name} vs {ref_name}")
        else:
            for g, e, sc in zip(results[name], results[ref_name], scale):
                assert_close(g, e.astype(np.float64), 2 * sc.astype(np.float64), dtype, length,
                             f"{op}: {name} vs {ref_name}")


# Shapes whose tilings leave edge tiles of every kind: output channels that
# are not a multiple of any kernel's rows, pixel counts that are not a
# multiple of its columns, batches whose images share a tile.
PLACEMENT_SHAPES = [
    # N, C, H, W, K, F, S, P
    (4, 3, 17, 19, 16, 3, 1, 1),
    (3, 16, 9, 13, 2, 3, 1, 1),
    (2, 8, 30, 30, 5, 3, 2, 1),
    (4, 32, 7, 7, 33, 3, 1, 1),
    (2, 64, 14, 14, 30, 1, 1, 0),
    (5, 6, 11, 11, 17, 5, 1, 2),
    (3, 4, 6, 6, 9, 6, 1, 0),
    (3, 24, 19, 23, 48, 3, 1, 1, 24),     # depthwise, channel multiplier 2
    (2, 16, 21, 18, 16, 5, 2, 2, 16),
    (3, 32, 13, 17, 32, 3, 1, 1, 8),      # small groups
    (2, 24, 9, 11, 12, 3, 1, 1, 4),       # 6 channels, 3 filters per group
]
FORWARD_ALGORITHMS = [a for a in fastconv.algorithms()
                      if a not in ("phased", "col2im", "pool_rows", "pool_global")]


@pytest.mark.parametrize("shape", PLACEMENT_SHAPES, ids=str)
def test_an_output_does_not_depend_on_its_place_in_the_tiling(shape, dtype, isa):
    # Each image alone, and the lower rows of the output computed from a
    # crop of the input, give the batch's bits under the same algorithm.
    N, C, H, W, K, F_, S, P = shape[:8]
    G = shape[8] if len(shape) > 8 else 1
    x = _randn((N, C, H, W), dtype, "placement x", shape)
    w = _randn((K, C // G, F_, F_), dtype, "placement w", shape)
    b = _randn((K,), dtype, "placement b", shape)
    served = 0
    for alg in FORWARD_ALGORITHMS:
        try:
            y = F.conv2d(x, w, b, S, P, strict=False, algorithm=alg, groups=G)
        except ValueError:
            continue       # cannot serve this shape
        served += 1
        for i in range(N):
            yi = F.conv2d(x[i:i + 1], w, b, S, P, strict=False, algorithm=alg, groups=G)
            assert_same_bits([yi[0]], [y[i]], f"{alg} image {i} of {shape}")
        first = y.shape[2] // 3          # output row the crop starts at
        lo = first * S - P               # its first input row
        if lo < 0:
            continue
        try:
            yc = F.conv2d(x[:, :, lo:], w, b, S, ((0, P), (P, P)), strict=False,
                          algorithm=alg, groups=G)
        except ValueError:
            continue
        rows = min(yc.shape[2], y.shape[2] - first)
        assert_same_bits([np.ascontiguousarray(yc[:, :, :rows])],
                         [np.ascontiguousarray(y[:, :, first:first + rows])],
                         f"{alg} crop from row {first} of {shape}")
    assert served >= 2, f"only {served} algorithms serve {shape}"
