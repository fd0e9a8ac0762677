"""max_pool2d's dilation and ceil_mode, avg_pool2d's ceil_mode and
divisor_override, and LP pooling, against the NumPy oracle."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import assert_close, assert_exact, assert_fresh_output, memo, randn

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    (2, 3, 9, 11, (3, 3), (2, 2), (1, 1), (1, 1), True),    # ResNet stem shape, ceil
    (1, 2, 7, 7, (2, 2), (2, 2), (0, 0), (1, 1), True),     # odd size: last window clipped
    (2, 2, 6, 8, (2, 2), (2, 2), (0, 0), (1, 1), True),     # even: ceil changes nothing
    (1, 3, 5, 5, (2, 2), (2, 2), (1, 1), (1, 1), True),     # a window starting in the padding dropped
    (2, 2, 10, 9, (3, 2), (1, 2), (1, 1), (2, 3), False),   # dilated, per axis
    (1, 2, 11, 12, (3, 3), (2, 3), (1, 0), (2, 2), True),   # dilated and ceil
    (1, 1, 2, 9, (2, 4), (2, 3), (1, 0), (2, 1), False),    # dilated windows with no input row
    (2, 5, 33, 40, (3, 3), (2, 2), (1, 1), (1, 1), True),   # wide rows, many planes
    (1, 2, 1, 1, (2, 2), (2, 2), (0, 0), (1, 1), True),     # window larger than the input
    (3, 2, 8, 13, (1, 3), (1, 3), (0, 1), (1, 1), True),
    (2, 8, 64, 73, (3, 3), (2, 2), (1, 1), (2, 2), True),   # dilated, enough work for two threads
]
AVG_CASES = [
    (2, 3, 9, 11, (3, 3), (2, 2), (1, 1), True),
    (1, 2, 5, 5, (2, 2), (2, 2), (1, 1), True),    # last window runs past the padding
    (1, 2, 7, 6, (3, 2), (2, 2), (0, 0), True),
    (2, 2, 8, 8, (2, 2), (2, 2), (0, 0), False),
    (2, 4, 31, 45, (3, 3), (2, 2), (1, 1), True),
    (1, 1, 6, 6, (6, 6), (1, 1), (0, 0), False),   # global window
    (1, 2, 1, 1, (2, 2), (2, 2), (0, 0), True),
]


def _ids(cases):
    return ["-".join(str(v) for v in c).replace(" ", "") for c in cases]


def _max_oracle(case, dtype):
    def compute():
        n, c, h, w, k, s, p, d, ceil = case
        x = randn((n, c, h, w), dtype, "max", case)
        y, idx = ref.max_pool2d_ex(x, k, s, p, d, ceil)
        dy = randn(y.shape, dtype, "dy", case)
        return x, dy, y, idx, ref.max_pool2d_ex_backward(dy, x, k, s, p, d, ceil), \
            ref.max_pool2d_ex_backward(np.abs(dy), x, k, s, p, d, ceil)
    return memo(("max_ex", case, dtype.name), compute)


@pytest.mark.parametrize("case", MAX_CASES, ids=_ids(MAX_CASES))
def test_max_pool2d_dilation_ceil(case, dtype, isa, threads):
    _, _, _, _, k, s, p, d, ceil = case
    x, dy, y_ref, idx_ref, dx_ref, dx_scale = _max_oracle(case, dtype)
    x0 = x.copy()
    y = fastconv.max_pool2d(x, k, s, p, d, ceil, strict=False)
    assert_exact(y, y_ref, dtype, "y")
    y2, idx = fastconv.max_pool2d(x, k, s, p, d, ceil, strict=False, return_indices=True)
    assert_exact(y2, y_ref, dtype, "y with indices")
    np.testing.assert_array_equal(idx, idx_ref)
    dx = fastconv.max_pool2d_backward(dy, x, k, s, p, d, ceil, strict=False)
    n_win = int(np.ceil(k[0] / s[0]) * np.ceil(k[1] / s[1]))
    assert_close(dx, dx_ref, dx_scale, dtype, n_win, "dx")
    if (idx < x.shape[2] * x.shape[3]).all():
        dx2 = fastconv.max_pool2d_backward(dy, x, k, s, p, d, ceil, strict=False, indices=idx)
        np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(x, x0)
    assert_fresh_output(y, x)


def _avg_oracle(case, dtype, cip, div):
    def compute():
        n, c, h, w, k, s, p, ceil = case
        x = randn((n, c, h, w), dtype, "avg", case)
        y = ref.avg_pool2d_ex(x, k, s, p, ceil, cip, div)
        dy = randn(y.shape, dtype, "dy", case)
        return (x, dy, y, ref.avg_pool2d_ex(np.abs(x), k, s, p, ceil, cip, div),
                ref.avg_pool2d_ex_backward(dy, x.shape, k, s, p, ceil, cip, div),
                ref.avg_pool2d_ex_backward(np.abs(dy), x.shape, k, s, p, ceil, cip, div))
    return memo(("avg_ex", case, dtype.name, cip, div), compute)


@pytest.mark.parametrize("div", [None, 3, -2])
@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("case", AVG_CASES, ids=_ids(AVG_CASES))
def test_avg_pool2d_ceil_divisor(case, cip, div, dtype, isa, threads):
    _, _, _, _, k, s, p, ceil = case
    x, dy, y_ref, y_scale, dx_ref, dx_scale = _avg_oracle(case, dtype, cip, div)
    y = fastconv.avg_pool2d(x, k, s, p, ceil, cip, div, strict=False)
    assert_close(y, y_ref, np.abs(y_scale), dtype, k[0] * k[1], "y")
    dx = fastconv.avg_pool2d_backward(dy, x.shape, k, s, p, ceil, cip, div, strict=False)
    n_win = int(np.ceil(k[0] / s[0]) * np.ceil(k[1] / s[1]))
    assert_close(dx, dx_ref, np.abs(dx_scale), dtype, n_win, "dx")
    # keywords, as the torch-style positional order names them
    y_kw = fastconv.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip,
                               divisor_override=div, strict=False)
    np.testing.assert_array_equal(y_kw, y)


@pytest.mark.parametrize("size", range(1, 14))
@pytest.mark.parametrize("k,s,p,d", [(2, 2, 0, 1), (3, 2, 1, 1), (2, 2, 1, 1), (3, 3, 1, 1),
                                     (2, 3, 1, 2), (4, 3, 2, 1), (1, 2, 0, 1)])
def test_ceil_mode_sizes(size, k, s, p, d):
    """output_size with ceil_mode follows the oracle's PyTorch rule, also
    where the last window would start in the right padding (dropped)."""
    try:
        expected = ref.pool_len(size, k, s, p, d, True)
    except ValueError:
        with pytest.raises(fastconv.ShapeError):
            fastconv._shapes.output_size(size, k, s, p, dilation=d, ceil_mode=True)
        return
    assert fastconv._shapes.output_size(size, k, s, p, dilation=d, ceil_mode=True) == expected
    assert fastconv._shapes.output_size(size, k, s, p, dilation=d, ceil_mode=True,
                                        strict=False) == expected


def test_ceil_mode_drops_window_starting_in_padding():
    # 5 inputs, kernel 2, stride 2, padding 1: ceil((5 + 2 - 2)/2) + 1 = 4 windows
    # would start at -1, 1, 3, 5; the last starts in the right padding.
    assert fastconv._shapes.output_size(5, 2, 2, 1, ceil_mode=True) == 3
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    assert fastconv.max_pool2d(x, 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    # without padding the 3rd window starts at 4, inside: kept, holding one column
    y = fastconv.avg_pool2d(x, 2, 2, 0, ceil_mode=True)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 0, 2] == (4 + 9) / 2


def test_ceil_mode_ignores_strict():
    x = np.ones((1, 1, 7, 7))
    with pytest.raises(fastconv.ShapeError):
        fastconv.max_pool2d(x, 2)
    assert fastconv.max_pool2d(x, 2, ceil_mode=True).shape == (1, 1, 4, 4)


def test_views(dtype, isa):
    base = randn((3, 4, 12, 18), dtype, "views")
    x = base[::-1, 1:, ::-1, ::2]
    xc = np.ascontiguousarray(x)
    for f, kw in ((fastconv.max_pool2d, dict(dilation=2, ceil_mode=True)),
                  (fastconv.avg_pool2d, dict(ceil_mode=True, divisor_override=5))):
        np.testing.assert_array_equal(f(x, 3, 2, 1, **kw), f(xc, 3, 2, 1, **kw))
    np.testing.assert_array_equal(fastconv.lp_pool2d(x, 2, 3, 2, True),
                                  fastconv.lp_pool2d(xc, 2, 3, 2, True))


def test_errors():
    x = np.ones((1, 1, 6, 6))
    with pytest.raises(ValueError, match="dilation"):
        fastconv.max_pool2d(x, 2, dilation=0)
    with pytest.raises(TypeError, match="ceil_mode"):
        fastconv.max_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(ValueError, match="divisor_override"):
        fastconv.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match="divisor_override"):
        fastconv.avg_pool2d(x, 2, divisor_override=1.5)
    with pytest.raises(fastconv.ShapeError, match=r"ceil\(\(1 \+ 0 \+ 0 - 1\*\(3 - 1\) - 1\)/1\)"):
        fastconv.max_pool2d(np.ones((1, 1, 1, 1)), 3, 1, ceil_mode=True)
    with pytest.raises(ValueError, match="dy must have the shape"):
        fastconv.max_pool2d_backward(np.ones((1, 1, 3, 3)), x, 2, 1, dilation=2)
    with pytest.raises(ValueError, match="norm_type"):
        fastconv.lp_pool2d(x, 0, 2)
    with pytest.raises(TypeError, match="norm_type"):
        fastconv.lp_pool2d(x, "2", 2)
    with pytest.raises(ValueError, match="dy must have the shape"):
        fastconv.lp_pool2d_backward(np.ones((1, 1, 2, 2)), x, 2, 2)


# ---------------------------------------------------------------- LP pooling

LP_CASES = [
    # (N, C, H, W, p, kernel, stride, ceil_mode)
    (2, 3, 8, 8, 2, (2, 2), None, False),
    (1, 2, 7, 9, 2, (3, 2), (2, 2), True),     # clipped last windows
    (2, 2, 6, 6, 3, (2, 2), (1, 1), False),    # odd p: negative sums
    (1, 2, 9, 7, 1.5, (3, 3), (2, 2), True),   # fractional p (on |x|)
    (1, 3, 5, 6, 1, (2, 3), (2, 3), True),
    (2, 2, 7, 7, float("inf"), (3, 3), (2, 2), True),
    (1, 2, 6, 5, -float("inf"), (2, 2), None, True),
]


def _lp_inputs(case, dtype):
    n, c, h, w, p, *_ = case
    x = randn((n, c, h, w), dtype, "lp", case)
    if p == 1.5:
        x = np.abs(x)
    x[0, 0, :2, :3] = 0        # windows whose sum of x**p is zero
    return x


@pytest.mark.parametrize("case", LP_CASES, ids=_ids(LP_CASES))
def test_lp_pool2d(case, dtype, isa):
    _, _, _, _, p, k, s, ceil = case
    x = _lp_inputs(case, dtype)
    x0 = x.copy()
    y = fastconv.lp_pool2d(x, p, k, s, ceil, strict=False)
    y_ref = ref.lp_pool2d(x, p, k, s, ceil)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    assert y.dtype == dtype and y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=rtol)
    dy = randn(y.shape, dtype, "lpdy", case)
    dx = fastconv.lp_pool2d_backward(dy, x, p, k, s, ceil, strict=False)
    dx_ref = ref.lp_pool2d_backward(dy, x, p, k, s, ceil)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, dx_ref, rtol=10 * rtol, atol=10 * rtol)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("p,ceil", [(2, True), (3, False), (1.5, True)])
def test_lp_pool2d_gradcheck(p, ceil):
    """float64 central differences, away from zero sums (positive inputs)."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.5, (1, 2, 5, 7))
    dy = rng.standard_normal(fastconv.lp_pool2d(x, p, 2, 2, ceil, strict=False).shape)
    dx = fastconv.lp_pool2d_backward(dy, x, p, 2, 2, ceil, strict=False)
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = ((fastconv.lp_pool2d(xp, p, 2, 2, ceil, strict=False) -
                   fastconv.lp_pool2d(xm, p, 2, 2, ceil, strict=False)) * dy).sum() / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-7)


def test_lp_pool2d_zero_sum_gradient_is_zero():
    x = np.zeros((1, 1, 2, 2))
    assert fastconv.lp_pool2d(x, 2, 2)[0, 0, 0, 0] == 0
    dx = fastconv.lp_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, 2)
    np.testing.assert_array_equal(dx, 0)
