"""adaptive_avg_pool2d, adaptive_max_pool2d and max_unpool2d against the
NumPy oracle."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import assert_close, assert_exact, assert_fresh_output, memo, randn

# (N, C, H, W, output_size)
CASES = [
    (2, 3, 7, 9, (3, 4)),       # uneven: windows of different sizes, overlapping
    (1, 2, 8, 8, (4, 4)),       # even: plain pooling on the row kernels
    (2, 2, 6, 10, (1, 1)),      # global
    (1, 3, 5, 5, (7, 8)),       # more outputs than inputs
    (2, 2, 9, 6, (None, 4)),    # None keeps the height
    (1, 1, 1, 13, (1, 5)),
    (2, 4, 33, 47, 5),          # int output_size, wide planes
    (1, 2, 12, 10, (3, 5)),     # even along both axes
    (4, 32, 60, 70, (7, 9)),    # enough work for two threads
]


def _ids(cases):
    return ["-".join(str(v) for v in c).replace(" ", "") for c in cases]


def _out_hw(case):
    _, _, h, w, o = case
    o = o if isinstance(o, tuple) else (o, o)
    return (h if o[0] is None else o[0], w if o[1] is None else o[1])


def _oracle(case, dtype):
    def compute():
        n, c, h, w, _ = case
        x = randn((n, c, h, w), dtype, "adaptive", case)
        x[0, 0, 0, :2] = x[0, 0, 0, 0]   # a tie: the first maximum counts
        hw = _out_hw(case)
        ya = ref.adaptive_pool2d(x, hw, "avg")
        ym, idx = ref.adaptive_pool2d(x, hw, "max")
        dy = randn(ya.shape, dtype, "dy", case)
        return (x, dy, ya, ref.adaptive_pool2d(np.abs(x), hw, "avg"), ym, idx,
                ref.adaptive_avg_pool2d_backward(dy, x.shape, hw),
                ref.adaptive_avg_pool2d_backward(np.abs(dy), x.shape, hw),
                ref.adaptive_max_pool2d_backward(dy, x, hw),
                ref.adaptive_max_pool2d_backward(np.abs(dy), x, hw))
    return memo(("adaptive", case, dtype.name), compute)


def _overlap(case):
    _, _, h, w, _ = case
    oh, ow = _out_hw(case)
    return (h // oh + 2) * (w // ow + 2)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_adaptive_avg(case, dtype, isa, threads):
    x, dy, y_ref, y_scale, *_, dxa, dxa_scale, _, _ = _oracle(case, dtype)
    x0 = x.copy()
    y = fastconv.adaptive_avg_pool2d(x, case[4])
    assert_close(y, y_ref, y_scale, dtype, _overlap(case), "y")
    dx = fastconv.adaptive_avg_pool2d_backward(dy, x.shape, case[4])
    assert_close(dx, dxa, dxa_scale, dtype, _overlap(case), "dx")
    np.testing.assert_array_equal(x, x0)
    assert_fresh_output(y, x)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_adaptive_max(case, dtype, isa, threads):
    x, dy, _, _, y_ref, idx_ref, _, _, dxm, dxm_scale = _oracle(case, dtype)
    y = fastconv.adaptive_max_pool2d(x, case[4])
    assert_exact(y, y_ref, dtype, "y")
    y2, idx = fastconv.adaptive_max_pool2d(x, case[4], return_indices=True)
    assert_exact(y2, y_ref, dtype, "y with indices")
    np.testing.assert_array_equal(idx, idx_ref)
    dx = fastconv.adaptive_max_pool2d_backward(dy, x, case[4])
    assert_close(dx, dxm, dxm_scale, dtype, _overlap(case), "dx")
    dx2 = fastconv.adaptive_max_pool2d_backward(dy, x, case[4], indices=idx)
    np.testing.assert_array_equal(dx2, dx)


def test_adaptive_nan_and_views(isa):
    x = randn((2, 3, 9, 14), np.float32, "nan")[:, ::-1, ::-1, ::2]
    x[0, 0, 1, 1] = np.nan
    y = fastconv.adaptive_max_pool2d(x, (4, 3))
    np.testing.assert_array_equal(y, ref.adaptive_pool2d(x, (4, 3), "max")[0].astype(np.float32))
    assert np.isnan(y[0, 0, 0, 0])
    np.testing.assert_array_equal(fastconv.adaptive_avg_pool2d(x, (4, 3)),
                                  fastconv.adaptive_avg_pool2d(np.ascontiguousarray(x), (4, 3)))


def test_adaptive_avg_gradcheck():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 5, 7))
    dy = rng.standard_normal((1, 2, 3, 4))
    dx = fastconv.adaptive_avg_pool2d_backward(dy, x.shape, (3, 4))
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = ((fastconv.adaptive_avg_pool2d(xp, (3, 4)) -
                   fastconv.adaptive_avg_pool2d(xm, (3, 4))) * dy).sum() / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-9)


def test_adaptive_max_gradcheck():
    rng = np.random.default_rng(4)
    x = rng.permutation(70).reshape(1, 2, 5, 7) / 7.0   # distinct values: no ties
    dy = rng.standard_normal((1, 2, 3, 4))
    dx = fastconv.adaptive_max_pool2d_backward(dy, x, (3, 4))
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = ((fastconv.adaptive_max_pool2d(xp, (3, 4)) -
                   fastconv.adaptive_max_pool2d(xm, (3, 4))) * dy).sum() / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_adaptive_errors():
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(ValueError, match="output_size"):
        fastconv.adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match="output_size"):
        fastconv.adaptive_max_pool2d(x, (1, 2, 3))
    with pytest.raises(TypeError, match="output_size"):
        fastconv.adaptive_avg_pool2d(x, 1.5)
    with pytest.raises(ValueError, match="dy must have the shape"):
        fastconv.adaptive_avg_pool2d_backward(np.ones((1, 1, 3, 3)), x.shape, 2)
    with pytest.raises(ValueError, match="dy must have the shape"):
        fastconv.adaptive_max_pool2d_backward(np.ones((1, 1, 3, 3)), x, (3, 2))
    with pytest.raises(ValueError, match="H >= 1"):
        fastconv.adaptive_avg_pool2d(np.ones((1, 1, 0, 4)), 2)
    with pytest.raises(ValueError, match="outside its input plane"):
        fastconv.adaptive_max_pool2d_backward(np.ones((1, 1, 2, 3)), np.ones((1, 1, 3, 4)),
                                              (2, 3), indices=np.full((1, 1, 2, 3), 12))


# ------------------------------------------------------------- max_unpool2d

@pytest.mark.parametrize("shape,k,s,p,out", [
    ((2, 3, 8, 10), 2, None, 0, None), ((2, 3, 9, 11), 3, 2, 1, None),
    ((2, 3, 9, 11), 2, 1, 0, None), ((2, 3, 9, 11), 3, 2, 1, (9, 11)),
    ((1, 1, 9, 9), 2, 2, 0, (1, 1, 9, 9)),    # floored pooling: output_size restores 9
])
def test_max_unpool2d(shape, k, s, p, out, dtype):
    x = randn(shape, dtype, "unpool", k, s, p)
    y, idx = fastconv.max_pool2d(x, k, s, p, strict=False, return_indices=True)
    u = fastconv.max_unpool2d(y, idx, k, s, p, out)
    st = k if s is None else s
    hw = ((y.shape[2] - 1) * st - 2 * p + k, (y.shape[3] - 1) * st - 2 * p + k) \
        if out is None else tuple(out[-2:])
    assert_exact(u, ref.max_unpool2d(y, idx, hw), dtype, "unpooled")
    assert_fresh_output(u, y)
    # every pooled maximum is back where it came from
    assert set(np.flatnonzero(u[0, 0])) <= set(idx[0, 0].ravel())


def test_max_unpool2d_errors():
    y = np.ones((1, 1, 2, 2))
    idx = np.zeros((1, 1, 2, 2), np.int64)
    with pytest.raises(ValueError, match="outside the output plane"):
        fastconv.max_unpool2d(y, idx + 16, 2)
    with pytest.raises(ValueError, match="outside the output plane"):
        fastconv.max_unpool2d(y, idx - 1, 2)
    with pytest.raises(ValueError, match="strictly between"):
        fastconv.max_unpool2d(y, idx, 2, output_size=(6, 4))
    with pytest.raises(ValueError, match="shape"):
        fastconv.max_unpool2d(y, idx[..., :1], 2)
    with pytest.raises(TypeError, match="integer"):
        fastconv.max_unpool2d(y, idx.astype(float), 2)
