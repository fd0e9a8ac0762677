"""max_pool2d / avg_pool2d and their backward against the NumPy oracle."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import (PoolCase, assert_close, assert_exact, assert_fresh_output, case_ids,
                      memo, random_pool_case)

EDGE_CASES = [
    PoolCase(2, 3, 8, 8, 2, 2),                      # 2x2, default stride: tiles exactly
    PoolCase(2, 3, 9, 11, 3, 3, 2, 2, 1, 1),         # overlapping 3x3 s2 p1 (ResNet)
    PoolCase(1, 1, 7, 6, 3, 2, 1, 2, 1, 1),          # rectangular, per-axis stride/padding
    PoolCase(2, 2, 5, 6, 1, 1, 1, 1),                # 1x1 stride 1: identity
    PoolCase(2, 2, 7, 9, 1, 1, 2, 2),                # 1x1 stride 2: subsampling
    PoolCase(3, 4, 7, 7, 7, 7),                      # global pooling
    PoolCase(2, 3, 5, 4, 5, 6, 1, 1, 0, 1),          # kernel equal to the padded input
    PoolCase(2, 3, 6, 9, 1, 5, 1, 1, 0, 2),          # 1x5 with padding only along the width
    PoolCase(1, 2, 4, 4, 4, 4, 1, 1, 2, 2),          # padding of kernel//2 on a small input
    PoolCase(1, 2, 13, 13, 3, 3, 3, 3),              # non-overlapping 3x3
    # Wide rows and many planes: vector tails and thread splits.
    PoolCase(2, 10, 65, 67, 3, 3, 2, 2, 1, 1),       # H2*W2 = 33*34
    PoolCase(4, 16, 97, 95, 3, 3, 2, 2, 1, 1),       # enough work for two threads
    PoolCase(3, 5, 32, 70, 2, 2),                    # CS231n-like 2x2 s2, wide
    PoolCase(1, 3, 40, 41, 2, 3, 1, 1, 1, 1),        # stride 1: heavy overlap, odd width
]

_rng = np.random.default_rng(777)
RANDOM_EXACT = [random_pool_case(_rng, exact=True) for _ in range(20)]
RANDOM_FLOORED = [c for c in (random_pool_case(_rng, exact=False) for _ in range(40))
                  if not c.exact][:8]
CASES = EDGE_CASES + RANDOM_EXACT + RANDOM_FLOORED


def pool_kwargs(case):
    return {} if case.exact else {"strict": False}


def oracle(op, case, dtype, **kw):
    def compute():
        x, dy = case.inputs(dtype)
        if op == "max":
            return (ref.max_pool2d(x, case.kernel, case.stride, case.padding),
                    ref.max_pool2d_backward(dy, x, case.kernel, case.stride, case.padding),
                    ref.max_pool2d_backward(np.abs(dy), x, case.kernel, case.stride, case.padding))
        cip = kw["count_include_pad"]
        return (ref.avg_pool2d(x, case.kernel, case.stride, case.padding, cip),
                ref.avg_pool2d(np.abs(x), case.kernel, case.stride, case.padding, cip),
                ref.avg_pool2d_backward(dy, x.shape, case.kernel, case.stride, case.padding, cip),
                ref.avg_pool2d_backward(np.abs(dy), x.shape, case.kernel, case.stride,
                                        case.padding, cip))
    return memo((op, case, np.dtype(dtype).name, tuple(sorted(kw.items()))), compute)


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_max_pool2d(case, dtype, isa, threads):
    x, dy = case.inputs(dtype)
    y = fastconv.max_pool2d(x, case.kernel, case.stride, case.padding, **pool_kwargs(case))
    dx = fastconv.max_pool2d_backward(dy, x, case.kernel, case.stride, case.padding,
                                      **pool_kwargs(case))
    ry, rdx, sdx = oracle("max", case, dtype)
    # Selecting a maximum does no arithmetic: the result is exact.
    assert_exact(y, ry, dtype, f"max_pool2d y [{isa}]")
    assert_close(dx, rdx, sdx, dtype, case.overlap, f"max_pool2d dx [{isa}]")
    assert_fresh_output(y, x)
    assert_fresh_output(dx, x, dy)


def bits(a):
    return a.dtype.str, a.shape, a.tobytes()


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_max_pool2d_indices(case, dtype, isa, threads):
    # return_indices: the same maxima, PyTorch's offsets h*W + w of each
    # window's first maximum; the backward from them gives the same bits as
    # the one that finds the maxima again, and (float64, where the oracle
    # computes in the same dtype) the oracle's bits: one summation order.
    x, dy = case.inputs(dtype)
    dy = dy.copy()
    dy.flat[::7] = -0.0
    args = (case.kernel, case.stride, case.padding)
    kw = pool_kwargs(case)
    y = fastconv.max_pool2d(x, *args, **kw)
    yi, idx = fastconv.max_pool2d(x, *args, return_indices=True, **kw)
    assert idx.dtype == np.int64 and idx.shape == y.shape
    assert bits(yi) == bits(y)
    np.testing.assert_array_equal(idx, ref.max_pool2d_indices(x, *args))
    assert_fresh_output(idx, x)
    dx = fastconv.max_pool2d_backward(dy, x, *args, **kw)
    dxi = fastconv.max_pool2d_backward(dy, x, *args, indices=idx, **kw)
    assert bits(dxi) == bits(dx)
    if np.dtype(dtype) == np.float64:
        assert bits(dx) == bits(ref.max_pool2d_backward(dy, x, *args))
    # the indices, not x's values, decide where the gradient goes
    dxz = fastconv.max_pool2d_backward(dy, np.zeros_like(x), *args, indices=idx, **kw)
    assert bits(dxz) == bits(dx)
    # any integer dtype and layout of the same offsets
    dxv = fastconv.max_pool2d_backward(dy, x, *args, indices=np.asfortranarray(idx, np.int32),
                                       **kw)
    assert bits(dxv) == bits(dx)


def test_max_pool2d_indices_ties_nan_and_overlap(isa, dtype, threads):
    # Ties in almost every window (integers from {0, 1, 2}), NaN, -inf
    # windows against padding, and windows overlapping in both directions
    # so that one element collects up to 9 gradients.
    rng = np.random.default_rng(21)
    x = rng.integers(0, 3, size=(2, 3, 13, 14)).astype(dtype)
    x[0, 0, 4, 5] = np.nan
    x[1, 2, :3, :3] = -np.inf
    for args in [(3, 1, 1), (3, 2, 1), (5, 2, 2), ((2, 4), (1, 3), (1, 2))]:
        y, idx = fastconv.max_pool2d(x, *args, return_indices=True, strict=False)
        np.testing.assert_array_equal(idx, ref.max_pool2d_indices(x, *args))
        assert bits(y) == bits(fastconv.max_pool2d(x, *args, strict=False))
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = fastconv.max_pool2d_backward(dy, x, *args, strict=False)
        assert bits(fastconv.max_pool2d_backward(dy, x, *args, indices=idx,
                                                 strict=False)) == bits(dx)
        assert_close(dx, ref.max_pool2d_backward(dy, x, *args),
                     ref.max_pool2d_backward(np.abs(dy), x, *args), dtype, 25,
                     f"max_pool2d dx {args}")


def test_max_pool2d_indices_out_of_plane_raise(dtype):
    x = np.arange(2 * 3 * 6 * 6, dtype=dtype).reshape(2, 3, 6, 6)
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    dy = np.ones_like(y)
    for bad in (-1, 36, 2**40, np.iinfo(np.int64).min):
        b = idx.copy()
        b[1, 2, 2, 2] = bad
        with pytest.raises(ValueError, match="an index lies outside its input plane"):
            fastconv.max_pool2d_backward(dy, x, 2, indices=b)
    b = idx.astype(np.uint64)
    b[0, 0, 0, 0] = np.iinfo(np.uint64).max      # wraps to -1 as int64
    with pytest.raises(ValueError, match="outside its input plane"):
        fastconv.max_pool2d_backward(dy, x, 2, indices=b)
    # an index inside the plane but outside its window is honoured as given
    b = idx.copy()
    b[0, 0, 0, 0] = 35
    dx = fastconv.max_pool2d_backward(dy, x, 2, indices=b)
    assert dx[0, 0, 5, 5] == 2 and dx[0, 0, 1, 1] == 0


def test_max_pool2d_module_records_indices_only_for_overlap(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 11, 11)).astype(dtype)
    for k, s, p, records in [(3, 2, 1, True), (2, 2, 0, False), (3, 3, 0, False)]:
        m = fastconv.MaxPool2d(k, s, p, strict=False)
        y = m(x)
        assert (m._indices is not None) == records
        dy = rng.standard_normal(y.shape).astype(dtype)
        want = fastconv.max_pool2d_backward(dy, x, k, s, p, strict=False)
        assert bits(m.backward(dy)) == bits(want)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl_pad", "excl_pad"])
@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_avg_pool2d(case, dtype, isa, threads, count_include_pad):
    x, dy = case.inputs(dtype)
    kw = dict(pool_kwargs(case), count_include_pad=count_include_pad)
    y = fastconv.avg_pool2d(x, case.kernel, case.stride, case.padding, **kw)
    dx = fastconv.avg_pool2d_backward(dy, x.shape, case.kernel, case.stride, case.padding, **kw)
    ry, sy, rdx, sdx = oracle("avg", case, dtype, count_include_pad=count_include_pad)
    # +1 for the division by the window size.
    assert_close(y, ry, sy, dtype, case.KH * case.KW + 1, f"avg_pool2d y [{isa}]")
    assert_close(dx, rdx, sdx, dtype, case.overlap + 1, f"avg_pool2d dx [{isa}]")
    assert_fresh_output(y, x)
    assert_fresh_output(dx, dy)


def test_avg_pool2d_count_include_pad_divisors(isa, dtype):
    # All-ones input, 3x3 window, padding 1: with the padding counted a corner
    # window averages 4 ones over 9 cells; without, over 4 cells.
    x = np.ones((1, 1, 4, 4), dtype)
    incl = fastconv.avg_pool2d(x, 3, 1, 1, count_include_pad=True)
    excl = fastconv.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    np.testing.assert_allclose(incl[0, 0, 0, 0], 4 / 9, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(incl[0, 0, 0, 1], 6 / 9, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(incl[0, 0, 1, 1], 1.0, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(excl, np.ones_like(excl), rtol=4 * np.finfo(dtype).eps)
    # count_include_pad defaults to True
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, 3, 1, 1), incl)


def test_max_pool2d_first_maximum_gets_gradient(isa, dtype, threads):
    # Integer data from {0, 1, 2} puts ties in almost every window; overlapping
    # 3x3 s2 windows and padding make the row-major "first" position matter.
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, size=(2, 3, 11, 11)).astype(dtype)
    dy = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    dx = fastconv.max_pool2d_backward(dy, x, 3, 2, 1)
    want = ref.max_pool2d_backward(dy, x, 3, 2, 1)
    scale = ref.max_pool2d_backward(np.abs(dy), x, 3, 2, 1)
    assert_close(dx, want, scale, dtype, 4, "max_pool2d dx with ties")
    # Constant input: every window's gradient lands on its top-left real cell.
    x = np.zeros((1, 1, 4, 4), dtype)
    dx = fastconv.max_pool2d_backward(np.ones((1, 1, 2, 2), dtype), x, 2)
    want = np.zeros((4, 4))
    want[::2, ::2] = 1
    np.testing.assert_array_equal(dx[0, 0], want)


@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (1, 2, 8, 150), (1, 1, 7, 131)], ids=str)
def test_max_pool2d_2x2_backward_ties_nan_inf_odd_sizes(isa, dtype, threads, shape):
    # 2x2 at stride 2 has a backward of its own on planes up to 64 windows
    # wide (the wide shapes take the general one): ties everywhere, a window
    # of -inf (its top-left cell gets the gradient), a window with two NaNs
    # (the first in row-major order gets it), and odd sizes whose last row
    # and column lie in no window.
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=shape).astype(dtype)
    x[0, 0, 0:2, 0:2] = -np.inf
    x[0, -1, 2, 3] = np.nan
    x[0, -1, 3, 2] = np.nan
    x[-1, 0, -1, :] = 9   # the odd last row: in no window
    dy = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(dtype)
    dx = fastconv.max_pool2d_backward(dy, x, 2, strict=False)
    np.testing.assert_array_equal(dx, ref.max_pool2d_backward(dy, x, 2).astype(dtype))
    assert dx[0, 0, 0, 0] == dy[0, 0, 0, 0] and dx[0, -1, 2, 3] == dy[0, -1, 1, 1]


def test_max_pool2d_pads_with_minus_infinity(isa, dtype):
    # With zero padding the result would be 0 at the borders.
    x = -1.0 - np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    y = fastconv.max_pool2d(x, 3, 1, 1)
    assert (y < 0).all()
    assert_exact(y, ref.max_pool2d(x, 3, 1, 1), dtype, "max_pool2d with padding")
    dy = np.ones_like(y)
    dx = fastconv.max_pool2d_backward(dy, x, 3, 1, 1)
    # Every gradient unit lands on a real input cell: none is lost in the padding.
    assert dx.sum() == dy.sum()
    np.testing.assert_array_equal(dx, ref.max_pool2d_backward(dy, x, 3, 1, 1))


def test_max_pool2d_nan_window_gives_nan(isa, dtype):
    x = np.arange(2 * 6 * 6, dtype=dtype).reshape(1, 2, 6, 6)
    x[0, 0, 1, 1] = np.nan   # only in the first window of plane 0
    x[0, 1, 5, 5] = np.nan   # the last position of the last window of plane 1
    y = fastconv.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 1, 2, 2])
    assert np.isnan(y).sum() == 2
    assert_exact(y, ref.max_pool2d(x, 2), dtype, "max_pool2d with NaN")
    # Overlapping windows: a NaN spreads to every window that holds it.
    y = fastconv.max_pool2d(x, 3, 1, 1)
    assert_exact(y, ref.max_pool2d(x, 3, 1, 1), dtype, "overlapping max_pool2d with NaN")
    assert np.isnan(y[0, 0, :3, :3]).all() and np.isnan(y[0, 1, 4:, 4:]).all()
