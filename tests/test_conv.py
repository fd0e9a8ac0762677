"""conv2d and conv2d_backward against the NumPy oracle, on every ISA path."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import (ConvCase, assert_close, assert_fresh_output, case_ids,
                      conv_oracle_backward, conv_oracle_forward, random_conv_case)

EDGE_CASES = [
    ConvCase(1, 1, 5, 7, 1, 3, 3, 1, 1, 1, 1),        # batch 1, C = 1, K = 1
    ConvCase(2, 5, 6, 7, 3, 1, 1),                    # 1x1, stride 1, no padding
    ConvCase(2, 5, 7, 9, 4, 1, 1, 2, 2, bias=False),  # 1x1, stride 2
    ConvCase(2, 3, 7, 6, 4, 1, 1, 2, 1, 1, 2),        # 1x1 with stride and padding
    ConvCase(2, 3, 5, 4, 6, 7, 8, 1, 1, 1, 2),        # kernel equal to the padded input
    ConvCase(3, 2, 6, 6, 5, 6, 6),                    # kernel equal to the input
    ConvCase(2, 3, 9, 8, 5, 1, 5, 2, 1, 0, 2),        # 1x5, per-axis stride and padding
    ConvCase(2, 3, 8, 9, 5, 5, 1, 1, 2, 2, 0),        # 5x1
    ConvCase(1, 4, 3, 3, 7, 3, 3, 3, 3, 3, 3),        # windows lying wholly in the padding
    ConvCase(1, 3, 31, 31, 25, 3, 3, 2, 2, 1, 1),     # the CS231n layer, batch 1
    ConvCase(2, 8, 20, 23, 17, 3, 3, 1, 1, 1, 1),     # K = 17: one row past a tile
    ConvCase(1, 3, 40, 40, 32, 3, 3, 1, 1, 1, 1),     # K a multiple of 16, H2*W2 = 1600
    ConvCase(16, 3, 12, 12, 8, 3, 3, 1, 1, 1, 1),     # long dW reduction (N*H2*W2 = 2304)
    ConvCase(4, 70, 5, 5, 50, 3, 3, 1, 1, 1, 1),      # deep and small
    ConvCase(1, 1, 161, 71, 33, 20, 5, 2, 2),         # C = 1, tall kernel, floored height
]
# Large enough to cross cache blocks and leave ragged packing edges.
BLOCK_CASES = [
    ConvCase(2, 14, 39, 39, 45, 7, 7, 1, 1, 2, 2),    # C*FH*FW = 686, H2*W2 = 1369
    ConvCase(1, 650, 33, 31, 45, 1, 1),               # 1x1, C = 650, H*W = 1023
    ConvCase(3, 9, 69, 70, 41, 9, 8, 2, 2, 3, 4),     # strided, C*FH*FW = 648, H2*W2 = 1224
]

_rng = np.random.default_rng(20250101)
RANDOM_EXACT = [random_conv_case(_rng, exact=True) for _ in range(24)]
RANDOM_FLOORED = [c for c in (random_conv_case(_rng, exact=False) for _ in range(40))
                  if not c.exact][:8]
CASES = EDGE_CASES + BLOCK_CASES + RANDOM_EXACT + RANDOM_FLOORED


def run_conv2d(case, x, w, b, **kw):
    if not case.exact:
        kw["strict"] = False
    return fastconv.conv2d(x, w, b, case.stride, case.padding, **kw)


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_conv2d_forward(case, dtype, isa, threads, activation):
    x, w, b, _ = case.inputs(dtype)
    kw = {} if activation is None else {"activation": activation}
    y = run_conv2d(case, x, w, b, **kw)
    expected, scale = conv_oracle_forward(case, dtype, activation)
    assert_close(y, expected, scale, dtype, case.len_fwd, f"conv2d y [{isa}]")
    assert_fresh_output(y, x, w, b)
    if activation == "relu":
        assert (y >= 0).all()


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_conv2d_backward(case, dtype, isa, threads):
    x, w, _, dy = case.inputs(dtype)
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, case.stride, case.padding)
    (rdx, rdw, rdb), (sdx, sdw, sdb) = conv_oracle_backward(case, dtype)
    assert_close(dx, rdx, sdx, dtype, case.len_dx, f"conv2d dx [{isa}]")
    assert_close(dw, rdw, sdw, dtype, case.len_dw, f"conv2d dw [{isa}]")
    assert_close(db, rdb, sdb, dtype, case.len_dw, f"conv2d db [{isa}]")
    for g in (dx, dw, db):
        assert_fresh_output(g, dy, x, w)


@pytest.mark.parametrize("case", CASES[::3], ids=case_ids(CASES[::3]))
def test_conv2d_backward_without_dx(case, dtype, isa):
    x, w, _, dy = case.inputs(dtype)
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, case.stride, case.padding, need_dx=False)
    assert dx is None
    (_, rdw, rdb), (_, sdw, sdb) = conv_oracle_backward(case, dtype)
    assert_close(dw, rdw, sdw, dtype, case.len_dw, "conv2d dw (need_dx=False)")
    assert_close(db, rdb, sdb, dtype, case.len_dw, "conv2d db (need_dx=False)")


def test_conv2d_int_stride_and_padding_mean_both_axes(isa):
    case = ConvCase(2, 3, 9, 9, 4, 3, 3, 2, 2, 1, 1)
    x, w, b, dy = case.inputs(np.float64)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, b, 2, 1),
                                  fastconv.conv2d(x, w, b, (2, 2), (1, 1)))
    for g1, g2 in zip(fastconv.conv2d_backward(dy, x, w, 2, 1),
                      fastconv.conv2d_backward(dy, x, w, (2, 2), (1, 1))):
        np.testing.assert_array_equal(g1, g2)


def test_conv2d_hand_computed(isa, dtype):
    # A 3x3 ramp with a 2x2 kernel whose taps all differ: a flipped kernel
    # (true convolution instead of cross-correlation) or a transposed one
    # gives different numbers.
    x = np.arange(9, dtype=dtype).reshape(1, 1, 3, 3)
    w = np.array([[1, 2], [3, 4]], dtype=dtype).reshape(1, 1, 2, 2)
    want = np.array([[27, 37], [57, 67]], dtype=dtype).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(ref.conv2d(x, w), want)
    np.testing.assert_array_equal(fastconv.conv2d(x, w), want)
    # Zero padding: a 3x3 box filter over a 4x4 ramp sums each clipped window.
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 3, 3), dtype=dtype)
    want = np.array([[10, 18, 24, 18],
                     [27, 45, 54, 39],
                     [51, 81, 90, 63],
                     [42, 66, 72, 50]], dtype=dtype).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(ref.conv2d(x, w, padding=1), want)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, padding=1), want)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, np.array([-5], dtype), padding=1),
                                  want - 5)


@pytest.mark.parametrize("case", BLOCK_CASES[:2], ids=str)
def test_conv2d_repeatable_at_fixed_threads(case, isa):
    x, w, b, dy = case.inputs(np.float32)
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        y1 = fastconv.conv2d(x, w, b, case.stride, case.padding)
        g1 = fastconv.conv2d_backward(dy, x, w, case.stride, case.padding)
        y2 = fastconv.conv2d(x, w, b, case.stride, case.padding)
        g2 = fastconv.conv2d_backward(dy, x, w, case.stride, case.padding)
    finally:
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(y1, y2)
    for a, b2 in zip(g1, g2):
        np.testing.assert_array_equal(a, b2)
