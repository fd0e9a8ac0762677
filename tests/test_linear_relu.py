"""linear, relu and their backward against the NumPy oracle."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import LinearCase, assert_close, assert_exact, assert_fresh_output, case_ids, memo

CASES = [
    LinearCase(1, (1,), 1),
    LinearCase(1, (7,), 3, bias=False),
    LinearCase(5, (7,), 3),
    LinearCase(3, (2, 3, 4), 5),         # (N, C, H, W) flattened to (N, 24)
    LinearCase(4, (6, 5), 10),
    LinearCase(33, (17,), 47),           # odd everything
    LinearCase(64, (100,), 16, bias=False),
    LinearCase(2, (601,), 1),            # long reduction, one output
    LinearCase(17, (40,), 14),
    LinearCase(1, (300,), 1000),         # batch 1, wide layer
    LinearCase(1100, (650,), 45),        # crosses cache blocks; O not a multiple of 16
    LinearCase(50, (3, 8, 8), 41),
]


def oracle_forward(case, dtype, activation):
    def compute():
        x, w, b, _ = case.inputs(dtype)
        y = ref.linear(x, w, b, activation=activation)
        scale = ref.linear(np.abs(x), np.abs(w), None if b is None else np.abs(b))
        return y, scale
    return memo(("linear", case, np.dtype(dtype).name, activation), compute)


def oracle_backward(case, dtype):
    def compute():
        x, w, _, dy = case.inputs(dtype)
        return (ref.linear_backward(dy, x, w),
                ref.linear_backward(np.abs(dy), np.abs(x), np.abs(w)))
    return memo(("linear_backward", case, np.dtype(dtype).name), compute)


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_linear_forward(case, dtype, isa, threads, activation):
    x, w, b, _ = case.inputs(dtype)
    kw = {} if activation is None else {"activation": activation}
    y = fastconv.linear(x, w, b, **kw)
    want, scale = oracle_forward(case, dtype, activation)
    assert_close(y, want, scale, dtype, case.D + case.bias, f"linear y [{isa}]")
    assert_fresh_output(y, x, w, b)
    if activation == "relu":
        assert (y >= 0).all()


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_linear_backward(case, dtype, isa, threads):
    x, w, _, dy = case.inputs(dtype)
    dx, dw, db = fastconv.linear_backward(dy, x, w)
    (rdx, rdw, rdb), (sdx, sdw, sdb) = oracle_backward(case, dtype)
    assert dx.shape == x.shape
    assert_close(dx, rdx, sdx, dtype, case.O, f"linear dx [{isa}]")
    assert_close(dw, rdw, sdw, dtype, case.N, f"linear dw [{isa}]")
    assert_close(db, rdb, sdb, dtype, case.N, f"linear db [{isa}]")
    for g in (dx, dw, db):
        assert_fresh_output(g, dy, x, w)


def test_linear_hand_computed(isa, dtype):
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype)
    w = np.array([[1, 0, -1], [2, 1, 0]], dtype)
    b = np.array([10, -20], dtype)
    want = np.array([[8, -16], [8, -7]], dtype)
    np.testing.assert_array_equal(fastconv.linear(x, w, b), want)
    np.testing.assert_array_equal(fastconv.linear(x, w, b, activation="relu"),
                                  np.maximum(want, 0))
    dx, dw, db = fastconv.linear_backward(np.ones((2, 2), dtype), x, w)
    np.testing.assert_array_equal(dx, np.array([[3, 1, -1], [3, 1, -1]], dtype))
    np.testing.assert_array_equal(dw, np.array([[5, 7, 9], [5, 7, 9]], dtype))
    np.testing.assert_array_equal(db, np.array([2, 2], dtype))


RELU_SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (4, 1, 33, 17), (3, 64, 70)]


@pytest.mark.parametrize("shape", RELU_SHAPES, ids=str)
def test_relu(shape, dtype, isa, threads):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    x.flat[::5] = 0.0  # x == 0: relu gives 0 and no gradient passes
    dy = np.random.default_rng(99).standard_normal(shape).astype(dtype)
    y = fastconv.relu(x)
    dx = fastconv.relu_backward(dy, x)
    assert_exact(y, ref.relu(x), dtype, "relu y")
    assert_exact(dx, ref.relu_backward(dy, x), dtype, "relu dx")
    assert_fresh_output(y, x)
    assert_fresh_output(dx, dy, x)
