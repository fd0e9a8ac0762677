"""conv1d, max_pool1d, avg_pool1d and their backward: views over the 2-D
ops, against 1-D oracles and the 2-D pooling oracles at H = 1."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import assert_close, assert_exact, assert_fresh_output, randn

# (N, C, L, K, F, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 17, 4, 3, 1, 1, 1, 1),
    (1, 4, 20, 6, 5, 2, (2, 1), 1, 2),
    (2, 2, 16, 2, 3, 1, "same", 2, 1),
    (3, 3, 9, 3, 2, 1, "valid", 1, 3),       # depthwise
    (1, 8, 64, 16, 7, 3, 3, 1, 1),
    (2, 1, 5, 1, 5, 1, 0, 1, 1),
]


def _pads(padding, f, dilation):
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        t = dilation * (f - 1)
        return (t // 2, t - t // 2)
    return tuple(padding) if isinstance(padding, tuple) else (padding, padding)


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv1d(case, dtype, isa):
    n, c, length, k, f, s, p, d, g = case
    x = randn((n, c, length), dtype, "c1x", case)
    w = randn((k, c // g, f), dtype, "c1w", case)
    b = randn((k,), dtype, "c1b", case)
    x0 = x.copy()
    y = fastconv.conv1d(x, w, b, s, p, d, g, strict=False)
    pads = _pads(p, f, d)
    y_ref = ref.conv1d(x, w, b, s, pads, d, g)
    scale = ref.conv1d(np.abs(x), np.abs(w), np.abs(b), s, pads, d, g)
    assert_close(y, y_ref, scale, dtype, c // g * f + 1, "y")
    assert y.ndim == 3 and y.flags.c_contiguous
    assert_fresh_output(y, x, w, b)
    dy = randn(y.shape, dtype, "c1dy", case)
    dx, dw, db = fastconv.conv1d_backward(dy, x, w, s, p, d, g)
    dx_r, dw_r, db_r = ref.conv1d_backward(dy, x, w, s, pads, d, g)
    dx_s, dw_s, db_s = ref.conv1d_backward(np.abs(dy), np.abs(x), np.abs(w), s, pads, d, g)
    assert_close(dx, dx_r, dx_s, dtype, k * f, "dx")
    assert_close(dw, dw_r, dw_s, dtype, n * y.shape[2], "dw")
    assert_close(db, db_r, db_s, dtype, n * y.shape[2], "db")
    none, dw2, _ = fastconv.conv1d_backward(dy, x, w, s, p, d, g, need_dx=False)
    assert none is None and dw2.shape == w.shape
    np.testing.assert_array_equal(x, x0)


def test_conv1d_views():
    base = randn((4, 6, 40), np.float32, "c1views")
    x = base[::-2, 1::2, ::-1]
    w = randn((5, 3, 3), np.float32, "c1vw")[:, :, ::-1]
    np.testing.assert_array_equal(fastconv.conv1d(x, w, padding=1),
                                  fastconv.conv1d(np.ascontiguousarray(x),
                                                  np.ascontiguousarray(w), padding=1))


def test_conv1d_matches_conv2d():
    x = randn((2, 3, 15), np.float64, "c1vs2")
    w = randn((4, 3, 3), np.float64, "c1vs2w")
    y2 = fastconv.conv2d(x[:, :, None, :], w[:, :, None, :], None, (1, 2), ((0, 0), (1, 2)),
                         strict=False)
    np.testing.assert_array_equal(fastconv.conv1d(x, w, None, 2, (1, 2), strict=False),
                                  y2[:, :, 0, :])


# (N, C, L, kernel, stride, padding, dilation, ceil_mode)
POOL_CASES = [
    (2, 3, 17, 3, 2, 1, 1, True),
    (1, 2, 10, 2, None, 0, 1, False),
    (2, 2, 21, 3, 1, 1, 2, False),
    (1, 4, 9, 4, 3, 2, 1, True),
    (3, 2, 64, 2, 2, 0, 1, True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_max_pool1d(case, dtype, isa):
    n, c, length, k, s, p, d, ceil = case
    x = randn((n, c, length), dtype, "mp1", case)
    y, idx = fastconv.max_pool1d(x, k, s, p, d, ceil, strict=False, return_indices=True)
    st = (1, k if s is None else s)
    y_r, idx_r = ref.max_pool2d_ex(x[:, :, None, :], (1, k), st, (0, p), (1, d), ceil)
    assert_exact(y, y_r[:, :, 0, :], dtype, "y")
    np.testing.assert_array_equal(idx, idx_r[:, :, 0, :])
    np.testing.assert_array_equal(fastconv.max_pool1d(x, k, s, p, d, ceil, strict=False), y)
    dy = randn(y.shape, dtype, "mp1dy", case)
    dx = fastconv.max_pool1d_backward(dy, x, k, s, p, d, ceil, strict=False)
    dx_r = ref.max_pool2d_ex_backward(dy[:, :, None, :], x[:, :, None, :], (1, k), st, (0, p),
                                      (1, d), ceil)[:, :, 0, :]
    dx_s = ref.max_pool2d_ex_backward(np.abs(dy)[:, :, None, :], x[:, :, None, :], (1, k), st,
                                      (0, p), (1, d), ceil)[:, :, 0, :]
    assert_close(dx, dx_r, dx_s, dtype, k, "dx")
    dx2 = fastconv.max_pool1d_backward(dy, x, k, s, p, d, ceil, strict=False, indices=idx)
    np.testing.assert_array_equal(dx2, dx)


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_avg_pool1d(case, cip, dtype, isa):
    n, c, length, k, s, p, _, ceil = case
    x = randn((n, c, length), dtype, "ap1", case)
    st = (1, k if s is None else s)
    y = fastconv.avg_pool1d(x[:, :, ::-1], k, s, p, ceil, cip, strict=False)
    x4 = np.ascontiguousarray(x[:, :, None, ::-1])
    y_r = ref.avg_pool2d_ex(x4, (1, k), st, (0, p), ceil, cip)[:, :, 0, :]
    scale = ref.avg_pool2d_ex(np.abs(x4), (1, k), st, (0, p), ceil, cip)[:, :, 0, :]
    assert_close(y, y_r, scale, dtype, k, "y")
    dy = randn(y.shape, dtype, "ap1dy", case)
    dx = fastconv.avg_pool1d_backward(dy, x.shape, k, s, p, ceil, cip, strict=False)
    dx_r = ref.avg_pool2d_ex_backward(dy[:, :, None, :], (n, c, 1, length), (1, k), st, (0, p),
                                      ceil, cip)[:, :, 0, :]
    dx_s = ref.avg_pool2d_ex_backward(np.abs(dy)[:, :, None, :], (n, c, 1, length), (1, k), st,
                                      (0, p), ceil, cip)[:, :, 0, :]
    assert_close(dx, dx_r, dx_s, dtype, k, "dx")


def test_errors_1d():
    x = np.ones((1, 2, 8))
    with pytest.raises(ValueError, match=r"\(N, C, L\)"):
        fastconv.conv1d(np.ones((1, 2, 8, 8)), np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="w"):
        fastconv.conv1d(x, np.ones((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="kernel_size"):
        fastconv.max_pool1d(x, (2, 2))
    with pytest.raises(TypeError, match="stride"):
        fastconv.avg_pool1d(x, 2, 1.5)
    with pytest.raises(fastconv.ShapeError, match="max_pool1d"):
        fastconv.max_pool1d(np.ones((1, 2, 7)), 2)
    with pytest.raises(ValueError, match="x_shape"):
        fastconv.avg_pool1d_backward(np.ones((1, 2, 4)), (1, 2, 1, 8), 2)
    with pytest.raises(ValueError, match="same"):
        fastconv.conv1d(x, np.ones((1, 2, 3)), stride=2, padding="same")
