"""fastconv.compat.cs231n: the classic assignment checks.

Forward values against hand-computed numbers and against explicit loops
written here from the definitions; every backward against float64 central
finite differences; every fast variant against the naive one; overlapping and
non-tiling pooling windows; rectangular kernels; dtypes; inputs untouched.
"""

import doctest

import numpy as np
import pytest

from fastconv.compat import cs231n as cs
from fastconv.compat.cs231n import (
    affine_backward, affine_forward, affine_relu_backward, affine_relu_forward,
    conv_backward_naive, conv_forward_naive, conv_relu_backward,
    conv_relu_forward, conv_relu_pool_backward, conv_relu_pool_forward,
    max_pool_backward_fast, max_pool_backward_naive, max_pool_forward_fast,
    max_pool_forward_naive, relu_backward,
    relu_forward, softmax_loss, svm_loss,
)

CONV_VARIANTS = [
    (cs.conv_forward_naive, cs.conv_backward_naive),
    (cs.conv_forward_fast, cs.conv_backward_fast),
    (cs.conv_forward_strides, cs.conv_backward_strides),
    (cs.conv_forward_im2col, cs.conv_backward_im2col),
]
POOL_VARIANTS = [
    (cs.max_pool_forward_naive, cs.max_pool_backward_naive),
    (cs.max_pool_forward_fast, cs.max_pool_backward_fast),
    (cs.max_pool_forward_reshape, cs.max_pool_backward_reshape),
    (cs.max_pool_forward_im2col, cs.max_pool_backward_im2col),
]
CONV_IDS = ["naive", "fast", "strides", "im2col"]
POOL_IDS = ["naive", "fast", "reshape", "im2col"]

# (pool_height, pool_width, stride): tiling, overlapping 3x3/2, rectangular,
# stride 1, stride larger than the window (gaps), non-tiling.
POOL_SETTINGS = [(2, 2, 2), (3, 3, 2), (2, 3, 1), (3, 2, 3), (1, 1, 2), (4, 4, 3)]


# ---------------------------------------------------------------------------
# oracles: loops straight from the definitions


def conv_loops(x, w, b, stride, pad):
    n_, c_, h, wd = x.shape
    f_, _, hh, ww = w.shape
    h2 = 1 + (h + 2 * pad - hh) // stride
    w2 = 1 + (wd + 2 * pad - ww) // stride
    xp = np.zeros((n_, c_, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    out = np.zeros((n_, f_, h2, w2))
    for n in range(n_):
        for f in range(f_):
            for i in range(h2):
                for j in range(w2):
                    acc = float(b[f])
                    for c in range(c_):
                        for p in range(hh):
                            for q in range(ww):
                                acc += (xp[n, c, i * stride + p, j * stride + q]
                                        * w[f, c, p, q])
                    out[n, f, i, j] = acc
    return out


def pool_loops(x, ph, pw, stride):
    n_, c_, h, wd = x.shape
    h2 = 1 + (h - ph) // stride
    w2 = 1 + (wd - pw) // stride
    out = np.empty((n_, c_, h2, w2))
    for n in range(n_):
        for c in range(c_):
            for i in range(h2):
                for j in range(w2):
                    best = -np.inf
                    for p in range(ph):
                        for q in range(pw):
                            best = max(best, x[n, c, i * stride + p, j * stride + q])
                    out[n, c, i, j] = best
    return out


def pool_backward_loops(dout, x, ph, pw, stride):
    """Each window's gradient to its first maximum (row-major)."""
    dx = np.zeros(x.shape)
    n_, c_, h2, w2 = dout.shape
    for n in range(n_):
        for c in range(c_):
            for i in range(h2):
                for j in range(w2):
                    best, at = -np.inf, None
                    for p in range(ph):
                        for q in range(pw):
                            v = x[n, c, i * stride + p, j * stride + q]
                            if v > best:
                                best, at = v, (i * stride + p, j * stride + q)
                    dx[n, c, at[0], at[1]] += dout[n, c, i, j]
    return dx


def softmax_loss_loops(x, y):
    total = 0.0
    for i in range(x.shape[0]):
        m = max(x[i])
        z = sum(np.exp(v - m) for v in x[i])
        total += -(x[i, y[i]] - m - np.log(z))
    return total / x.shape[0]


def svm_loss_loops(x, y):
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if j != y[i]:
                total += max(0.0, x[i, j] - x[i, y[i]] + 1.0)
    return total / x.shape[0]


# ---------------------------------------------------------------------------
# numerical gradients


def numerical_gradient(f, x, dout, h=1e-4):
    """d(sum(f(x) * dout))/dx by central differences; x is left as it was.

    Every layer here except softmax is piecewise linear, so between kinks the
    difference quotient is exact and only rounding limits it; h = 1e-4 keeps
    that rounding well below 1e-8 relative (h = 1e-5 leaves ~4e-8 on
    gradient entries of ~1e-3), and the inputs are chosen so that no step
    crosses a kink.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for ix in np.ndindex(*x.shape):
        old = x[ix]
        x[ix] = old + h
        plus = np.array(f(x), dtype=np.float64)
        x[ix] = old - h
        minus = np.array(f(x), dtype=np.float64)
        x[ix] = old
        grad[ix] = np.sum((plus - minus) * dout) / (2 * h)
    return grad


def rel_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


GRAD_TOL = 1e-8


def separated(rng, shape, gap=1e-3):
    """Random values whose pairwise differences all exceed `gap`.

    Max pooling and ReLU have kinks where two inputs tie or one is zero; a
    finite-difference step must never cross one.
    """
    size = int(np.prod(shape))
    vals = (np.arange(size) - size / 2.0 + 0.5) * gap * 2
    return rng.permutation(vals).reshape(shape)


# ---------------------------------------------------------------------------
# module surface


def test_star_import_exports_every_assignment_name():
    ns = {}
    exec("from fastconv.compat.cs231n import *", ns)
    expected = {
        "conv_forward_naive", "conv_backward_naive",
        "conv_forward_fast", "conv_backward_fast",
        "conv_forward_strides", "conv_backward_strides",
        "conv_forward_im2col", "conv_backward_im2col",
        "max_pool_forward_naive", "max_pool_backward_naive",
        "max_pool_forward_fast", "max_pool_backward_fast",
        "max_pool_forward_reshape", "max_pool_backward_reshape",
        "max_pool_forward_im2col", "max_pool_backward_im2col",
        "affine_forward", "affine_backward", "relu_forward", "relu_backward",
        "conv_relu_forward", "conv_relu_backward",
        "conv_relu_pool_forward", "conv_relu_pool_backward",
        "affine_relu_forward", "affine_relu_backward",
        "softmax_loss", "svm_loss",
    }
    exported = {k for k in ns if not k.startswith("__")}
    assert exported == expected
    assert all(callable(ns[k]) for k in expected)


def test_compat_package_exposes_submodule():
    import fastconv.compat
    assert fastconv.compat.cs231n is cs


def test_docstring_examples_run():
    result = doctest.testmod(cs, extraglobs={"np": np}, verbose=False)
    assert result.attempted >= 40
    assert result.failed == 0


# ---------------------------------------------------------------------------
# convolution


@pytest.mark.parametrize("fwd, bwd", CONV_VARIANTS, ids=CONV_IDS)
def test_conv_forward_hand_computed(fwd, bwd):
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out, _ = fwd(x, np.ones((1, 1, 2, 2)), np.zeros(1), {"stride": 1, "pad": 0})
    np.testing.assert_array_equal(out, [[[[8.0, 12.0], [20.0, 24.0]]]])

    # Padded, stride 2, windows that do not tile the padded 5x5 input: the
    # output size is floored to 1 + (3 + 2 - 2) // 2 = 2.
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    out, _ = fwd(x, w, np.array([1.0]), {"stride": 2, "pad": 1})
    np.testing.assert_array_equal(out, [[[[5.0, 19.0], [37.0, 78.0]]]])


@pytest.mark.parametrize("fwd, bwd", CONV_VARIANTS, ids=CONV_IDS)
def test_conv_forward_rectangular_hand_computed(fwd, bwd):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).reshape(1, 1, 2, 3)
    tall = np.array([1.0, 2.0]).reshape(1, 1, 2, 1)
    wide = np.array([1.0, -1.0]).reshape(1, 1, 1, 2)
    out, _ = fwd(x, tall, np.zeros(1), {"stride": 1, "pad": 0})
    np.testing.assert_array_equal(out, [[[[9.0, 12.0, 15.0]]]])
    out, _ = fwd(x, wide, np.array([0.5]), {"stride": 1, "pad": 0})
    np.testing.assert_array_equal(out, [[[[-0.5, -0.5], [-0.5, -0.5]]]])


CONV_SHAPES = [
    # (N, C, H, W), (F, HH, WW), stride, pad
    ((2, 3, 7, 7), (4, 3, 3), 1, 1),
    ((2, 3, 7, 8), (2, 3, 2), 2, 1),     # rectangular, non-tiling
    ((1, 2, 6, 5), (3, 1, 4), 3, 2),     # tall kernel, floored
    ((3, 1, 5, 5), (1, 5, 5), 1, 0),     # kernel equals input
    ((2, 2, 4, 9), (2, 2, 5), 2, 0),     # wide kernel
    ((1, 4, 8, 8), (5, 1, 1), 2, 0),     # 1x1 strided
]


@pytest.mark.parametrize("fwd, bwd", CONV_VARIANTS, ids=CONV_IDS)
@pytest.mark.parametrize("xs, ws, stride, pad", CONV_SHAPES)
def test_conv_forward_matches_loops(fwd, bwd, xs, ws, stride, pad):
    rng = np.random.default_rng(abs(hash((xs, ws, stride, pad))) % 2**32)
    x = rng.standard_normal(xs)
    w = rng.standard_normal((ws[0], xs[1], ws[1], ws[2]))
    b = rng.standard_normal(ws[0])
    out, _ = fwd(x, w, b, {"stride": stride, "pad": pad})
    expected = conv_loops(x, w, b, stride, pad)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fwd, bwd", CONV_VARIANTS, ids=CONV_IDS)
@pytest.mark.parametrize("xs, ws, stride, pad", [
    ((2, 3, 5, 6), (3, 3, 2), 2, 1),
    ((1, 2, 5, 5), (2, 2, 3), 1, 1),
    ((2, 2, 6, 4), (2, 4, 1), 3, 2),
])
def test_conv_backward_numerical(fwd, bwd, xs, ws, stride, pad):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs)
    w = rng.standard_normal((ws[0], xs[1], ws[1], ws[2]))
    b = rng.standard_normal(ws[0])
    cp = {"stride": stride, "pad": pad}
    out, cache = fwd(x, w, b, cp)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = bwd(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert rel_error(dx, numerical_gradient(lambda v: fwd(v, w, b, cp)[0], x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient(lambda v: fwd(x, v, b, cp)[0], w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient(lambda v: fwd(x, w, v, cp)[0], b, dout)) < GRAD_TOL


def test_conv_backward_hand_computed():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out, cache = conv_forward_naive(x, np.ones((1, 1, 2, 2)), np.zeros(1),
                                    {"stride": 1, "pad": 0})
    dx, dw, db = conv_backward_naive(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_array_equal(dw[0, 0], [[8, 12], [20, 24]])
    np.testing.assert_array_equal(db, [4.0])


def test_conv_fast_variants_agree_with_naive():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 11, 10))
    w = rng.standard_normal((5, 3, 3, 2))
    b = rng.standard_normal(5)
    cp = {"stride": 2, "pad": 1}
    ref_out, ref_cache = conv_forward_naive(x, w, b, cp)
    dout = rng.standard_normal(ref_out.shape)
    ref_grads = conv_backward_naive(dout, ref_cache)
    for fwd, bwd in CONV_VARIANTS[1:]:
        out, cache = fwd(x, w, b, cp)
        np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
        for got, ref in zip(bwd(dout, cache), ref_grads):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        # Caches are interchangeable between the variants.
        for got, ref in zip(conv_backward_naive(dout, cache), ref_grads):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_conv_assignment_shape_floors():
    # The assignment's timing shape: (31 + 2 - 3) / 2 + 1 = 16.
    x = np.zeros((2, 3, 31, 31))
    out, _ = cs.conv_forward_fast(x, np.zeros((25, 3, 3, 3)), np.zeros(25),
                                  {"stride": 2, "pad": 1})
    assert out.shape == (2, 25, 16, 16)
    # Non-integer (32 + 2 - 3) / 2 + 1 = 16.5 floors to 16 in every variant.
    x = np.zeros((1, 3, 32, 32))
    for fwd, _ in CONV_VARIANTS:
        out, _ = fwd(x, np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 2, "pad": 1})
        assert out.shape == (1, 2, 16, 16)


def test_conv_param_missing_key():
    with pytest.raises(KeyError, match="pad"):
        conv_forward_naive(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 2, 2)),
                           np.zeros(1), {"stride": 1})


# ---------------------------------------------------------------------------
# max pooling


@pytest.mark.parametrize("fwd, bwd", POOL_VARIANTS, ids=POOL_IDS)
def test_pool_hand_computed(fwd, bwd):
    x = np.array([[1.0, 5.0, 2.0, 0.0],
                  [3.0, 4.0, 8.0, 7.0],
                  [0.0, 1.0, 2.0, 3.0],
                  [9.0, 6.0, 4.0, 5.0]]).reshape(1, 1, 4, 4)
    out, cache = fwd(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    np.testing.assert_array_equal(out, [[[[5.0, 8.0], [9.0, 5.0]]]])
    dx = bwd(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 1, 0, 0],
                                             [0, 0, 2, 0],
                                             [0, 0, 0, 0],
                                             [3, 0, 0, 4]])


@pytest.mark.parametrize("fwd, bwd", POOL_VARIANTS, ids=POOL_IDS)
def test_pool_overlapping_windows_accumulate(fwd, bwd):
    # The centre is the maximum of all four 2x2 stride-1 windows.
    x = np.array([[1.0, 2.0, 3.0],
                  [4.0, 9.0, 5.0],
                  [6.0, 7.0, 8.0]]).reshape(1, 1, 3, 3)
    out, cache = fwd(x, {"pool_height": 2, "pool_width": 2, "stride": 1})
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 9.0))
    dx = bwd(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]), cache)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 1111.0
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("fwd, bwd", POOL_VARIANTS, ids=POOL_IDS)
def test_pool_overlapping_3x3_stride_2_hand_computed(fwd, bwd):
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    out, cache = fwd(x, {"pool_height": 3, "pool_width": 3, "stride": 2})
    np.testing.assert_array_equal(out, [[[[12.0, 14.0], [22.0, 24.0]]]])
    # Make the shared centre column/row hold the maxima so windows overlap on them.
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    out, cache = fwd(x, {"pool_height": 3, "pool_width": 3, "stride": 2})
    np.testing.assert_array_equal(out, np.ones((1, 1, 2, 2)))
    dx = bwd(np.full((1, 1, 2, 2), 0.5), cache)
    assert dx[0, 0, 2, 2] == 2.0
    assert np.count_nonzero(dx) == 1


@pytest.mark.parametrize("fwd, bwd", POOL_VARIANTS, ids=POOL_IDS)
def test_pool_ties_go_to_first_maximum(fwd, bwd):
    x = np.array([[2.0, 2.0], [2.0, 1.0]]).reshape(1, 1, 2, 2)
    _, cache = fwd(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = bwd(np.array([[[[3.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[3.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("fwd, bwd", POOL_VARIANTS, ids=POOL_IDS)
@pytest.mark.parametrize("ph, pw, stride", POOL_SETTINGS)
def test_pool_matches_loops(fwd, bwd, ph, pw, stride):
    rng = np.random.default_rng(ph * 100 + pw * 10 + stride)
    x = rng.standard_normal((2, 3, 9, 8))
    out, cache = fwd(x, {"pool_height": ph, "pool_width": pw, "stride": stride})
    expected = pool_loops(x, ph, pw, stride)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(bwd(dout, cache),
                               pool_backward_loops(dout, x, ph, pw, stride),
                               rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("fwd, bwd", POOL_VARIANTS, ids=POOL_IDS)
@pytest.mark.parametrize("ph, pw, stride", POOL_SETTINGS)
def test_pool_backward_numerical(fwd, bwd, ph, pw, stride):
    rng = np.random.default_rng(11)
    x = separated(rng, (2, 2, 7, 8))
    pp = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = fwd(x, pp)
    dout = rng.standard_normal(out.shape)
    dx = bwd(dout, cache)
    assert dx.shape == x.shape
    assert rel_error(dx, numerical_gradient(lambda v: fwd(v, pp)[0], x, dout)) < GRAD_TOL


def test_pool_fast_variants_agree_with_naive():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 13, 11))
    for ph, pw, stride in POOL_SETTINGS:
        pp = {"pool_height": ph, "pool_width": pw, "stride": stride}
        ref_out, ref_cache = max_pool_forward_naive(x, pp)
        dout = rng.standard_normal(ref_out.shape)
        ref_dx = max_pool_backward_naive(dout, ref_cache)
        for fwd, bwd in POOL_VARIANTS[1:]:
            out, cache = fwd(x, pp)
            np.testing.assert_array_equal(out, ref_out)
            np.testing.assert_array_equal(bwd(dout, cache), ref_dx)


def test_pool_non_tiling_floors():
    x = np.zeros((1, 2, 7, 6))
    for fwd, _ in POOL_VARIANTS:
        out, _ = fwd(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
        assert out.shape == (1, 2, 3, 3)
        out, _ = fwd(x, {"pool_height": 3, "pool_width": 2, "stride": 2})
        assert out.shape == (1, 2, 3, 3)


def test_pool_param_missing_key():
    with pytest.raises(KeyError, match="pool_width"):
        max_pool_forward_naive(np.zeros((1, 1, 4, 4)), {"pool_height": 2, "stride": 2})


# ---------------------------------------------------------------------------
# affine and ReLU


def test_affine_forward_hand_computed():
    x = np.arange(6.0).reshape(2, 1, 3)
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out, _ = affine_forward(x, w, np.array([0.5, -0.5]))
    np.testing.assert_array_equal(out, [[2.5, 2.5], [8.5, 8.5]])


def test_affine_forward_flattens_and_matches_loops():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 4, 5))
    w = rng.standard_normal((40, 6))
    b = rng.standard_normal(6)
    out, _ = affine_forward(x, w, b)
    expected = np.zeros((3, 6))
    for n in range(3):
        flat = x[n].ravel()
        for m in range(6):
            expected[n, m] = b[m] + sum(flat[d] * w[d, m] for d in range(40))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xshape", [(4, 6), (3, 2, 3, 2), (1, 5, 1)])
def test_affine_backward_numerical(xshape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(xshape)
    d = int(np.prod(xshape[1:]))
    w = rng.standard_normal((d, 5))
    b = rng.standard_normal(5)
    out, cache = affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = affine_backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert rel_error(dx, numerical_gradient(lambda v: affine_forward(v, w, b)[0], x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient(lambda v: affine_forward(x, v, b)[0], w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient(lambda v: affine_forward(x, w, v)[0], b, dout)) < GRAD_TOL


def test_affine_backward_accepts_plain_tuple_cache():
    # Code that builds the original (x, w, b) cache by hand still works.
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    dout = rng.standard_normal((3, 2))
    _, cache = affine_forward(x, w, b)
    for got, ref in zip(affine_backward(dout, (x, w, b)), affine_backward(dout, cache)):
        np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(affine_backward(dout, cache)[1], x.T @ dout, rtol=1e-12)


def test_affine_transposed_weight_view():
    # A w that is itself a transposed view gives the same results.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4))
    w = np.ascontiguousarray(rng.standard_normal((2, 4))).T
    b = rng.standard_normal(2)
    out, cache = affine_forward(x, w, b)
    np.testing.assert_allclose(out, x @ w + b, rtol=1e-12)
    dout = rng.standard_normal((3, 2))
    dx, dw, db = affine_backward(dout, cache)
    np.testing.assert_allclose(dx, dout @ w.T, rtol=1e-12)
    np.testing.assert_allclose(dw, x.T @ dout, rtol=1e-12)


def test_relu_forward_hand_computed():
    x = np.array([[-2.0, -0.5, 0.0], [0.25, 1.0, 3.0]])
    out, cache = relu_forward(x)
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.0], [0.25, 1.0, 3.0]])
    dx = relu_backward(np.full((2, 3), 7.0), cache)
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 0.0], [7.0, 7.0, 7.0]])


def test_relu_backward_numerical():
    rng = np.random.default_rng(9)
    x = separated(rng, (3, 4, 5), gap=1e-3)
    out, cache = relu_forward(x)
    dout = rng.standard_normal(out.shape)
    dx = relu_backward(dout, cache)
    assert rel_error(dx, numerical_gradient(lambda v: relu_forward(v)[0], x, dout)) < GRAD_TOL


# ---------------------------------------------------------------------------
# layer_utils sandwiches


def test_conv_relu_matches_composition_and_gradient():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    cp = {"stride": 1, "pad": 1}
    out, cache = conv_relu_forward(x, w, b, cp)
    a, conv_cache = conv_forward_naive(x, w, b, cp)
    ref, relu_cache = relu_forward(a)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_relu_backward(dout, cache)
    rdx, rdw, rdb = conv_backward_naive(relu_backward(dout, relu_cache), conv_cache)
    np.testing.assert_allclose(dx, rdx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, rdw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, rdb, rtol=1e-12, atol=1e-12)
    f = lambda xx, ww, bb: conv_relu_forward(xx, ww, bb, cp)[0]
    assert rel_error(dx, numerical_gradient(lambda v: f(v, w, b), x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient(lambda v: f(x, v, b), w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient(lambda v: f(x, w, v), b, dout)) < GRAD_TOL


@pytest.mark.parametrize("pool", [(2, 2, 2), (3, 3, 2)])
def test_conv_relu_pool_matches_composition_and_gradient(pool):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((3, 3, 3, 3))
    b = rng.standard_normal(3)
    cp = {"stride": 1, "pad": 1}
    pp = {"pool_height": pool[0], "pool_width": pool[1], "stride": pool[2]}
    out, cache = conv_relu_pool_forward(x, w, b, cp, pp)
    a = np.maximum(conv_loops(x, w, b, 1, 1), 0)
    np.testing.assert_allclose(out, pool_loops(a, *pool), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_relu_pool_backward(dout, cache)
    f = lambda xx, ww, bb: conv_relu_pool_forward(xx, ww, bb, cp, pp)[0]
    assert rel_error(dx, numerical_gradient(lambda v: f(v, w, b), x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient(lambda v: f(x, v, b), w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient(lambda v: f(x, w, v), b, dout)) < GRAD_TOL


def test_affine_relu_matches_composition_and_gradient():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4, 3, 2))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    out, cache = affine_relu_forward(x, w, b)
    np.testing.assert_allclose(out, np.maximum(x.reshape(4, 6) @ w + b, 0),
                               rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = affine_relu_backward(dout, cache)
    assert dx.shape == x.shape
    f = lambda xx, ww, bb: affine_relu_forward(xx, ww, bb)[0]
    assert rel_error(dx, numerical_gradient(lambda v: f(v, w, b), x, dout)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient(lambda v: f(x, v, b), w, dout)) < GRAD_TOL
    assert rel_error(db, numerical_gradient(lambda v: f(x, w, v), b, dout)) < GRAD_TOL


# ---------------------------------------------------------------------------
# losses


def test_softmax_loss_hand_computed():
    # Equal scores: loss = log(C); dx = (1/C - [j == y]) / N.
    loss, dx = softmax_loss(np.zeros((2, 4)), np.array([0, 3]))
    assert abs(loss - np.log(4.0)) < 1e-15
    np.testing.assert_allclose(dx, [[-0.375, 0.125, 0.125, 0.125],
                                    [0.125, 0.125, 0.125, -0.375]], rtol=1e-15)


def test_svm_loss_hand_computed():
    x = np.array([[3.0, 1.0, 2.5], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    loss, dx = svm_loss(x, np.array([0, 1, 2]))
    # Rows contribute 0.5, 0 and 1 + 1.
    assert loss == pytest.approx(2.5 / 3, rel=1e-15)
    np.testing.assert_allclose(dx, np.array([[-1.0, 0.0, 1.0],
                                             [0.0, 0.0, 0.0],
                                             [1.0, 1.0, -2.0]]) / 3, rtol=1e-15)


@pytest.mark.parametrize("loss_fn, loops", [(softmax_loss, softmax_loss_loops),
                                            (svm_loss, svm_loss_loops)])
def test_loss_matches_loops_and_gradient(loss_fn, loops):
    rng = np.random.default_rng(15)
    x = 0.5 * rng.standard_normal((7, 5))
    y = rng.integers(0, 5, size=7)
    loss, dx = loss_fn(x, y)
    assert loss == pytest.approx(loops(x, y), rel=1e-12)
    assert dx.shape == x.shape
    num = numerical_gradient(lambda v: loss_fn(v, y)[0], x, 1.0)
    assert rel_error(dx, num) < GRAD_TOL


def test_softmax_loss_large_scores_are_stable():
    x = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    loss, dx = softmax_loss(x, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    assert loss == pytest.approx(0.0, abs=1e-12)


def test_loss_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        softmax_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        svm_loss(np.zeros((2, 3)), np.array([0, 1, 2]))


# ---------------------------------------------------------------------------
# dtypes


def _all_ops(x4, w4, b4, x2, w2, b2, y):
    """Every forward and backward on the given inputs; yields (name, array)."""
    cp = {"stride": 2, "pad": 1}
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    for fwd, bwd in CONV_VARIANTS:
        out, cache = fwd(x4, w4, b4, cp)
        yield fwd.__name__, out
        for g in bwd(np.ones_like(out), cache):
            yield bwd.__name__, g
    for fwd, bwd in POOL_VARIANTS:
        out, cache = fwd(x4, pp)
        yield fwd.__name__, out
        yield bwd.__name__, bwd(np.ones_like(out), cache)
    out, cache = affine_forward(x2, w2, b2)
    yield "affine_forward", out
    for g in affine_backward(np.ones_like(out), cache):
        yield "affine_backward", g
    out, cache = relu_forward(x4)
    yield "relu_forward", out
    yield "relu_backward", relu_backward(np.ones_like(out), cache)
    out, cache = conv_relu_pool_forward(x4, w4, b4, cp, pp)
    yield "conv_relu_pool_forward", out
    for g in conv_relu_pool_backward(np.ones_like(out), cache):
        yield "conv_relu_pool_backward", g
    out, cache = affine_relu_forward(x2, w2, b2)
    yield "affine_relu_forward", out
    for g in affine_relu_backward(np.ones_like(out), cache):
        yield "affine_relu_backward", g
    out, cache = conv_relu_forward(x4, w4, b4, cp)
    yield "conv_relu_forward", out
    for g in conv_relu_backward(np.ones_like(out), cache):
        yield "conv_relu_backward", g
    for loss_fn in (softmax_loss, svm_loss):
        _, dx = loss_fn(out.reshape(out.shape[0], -1), y)
        yield loss_fn.__name__, dx


def _inputs(rng, dtype_x=np.float64, dtype_w=np.float64):
    x4 = rng.standard_normal((2, 3, 6, 6)).astype(dtype_x)
    w4 = rng.standard_normal((4, 3, 3, 3)).astype(dtype_w)
    b4 = rng.standard_normal(4).astype(dtype_w)
    x2 = rng.standard_normal((2, 3, 2)).astype(dtype_x)
    w2 = rng.standard_normal((6, 5)).astype(dtype_w)
    b2 = rng.standard_normal(5).astype(dtype_w)
    y = np.array([0, 2])
    return x4, w4, b4, x2, w2, b2, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dtype_preserved(dtype):
    rng = np.random.default_rng(16)
    for name, arr in _all_ops(*_inputs(rng, dtype, dtype)):
        assert arr.dtype == dtype, name


def test_mixed_dtypes_promote_to_float64():
    rng = np.random.default_rng(17)
    seen = set()
    for name, arr in _all_ops(*_inputs(rng, np.float32, np.float64)):
        seen.add(name)
        # Pooling and ReLU see only the float32 x (and a float32 dout).
        only_x = name.startswith("max_pool") or name.startswith("relu")
        assert arr.dtype == (np.float32 if only_x else np.float64), name
    assert len(seen) > 20


def test_float32_close_to_float64():
    rng = np.random.default_rng(18)
    inputs = _inputs(rng)
    single = [np.asarray(v, np.float32) if v.dtype.kind == "f" else v for v in inputs]
    for (name, a), (_, b) in zip(_all_ops(*inputs), _all_ops(*single)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=name)


def test_integer_inputs_work():
    rng = np.random.default_rng(19)
    xi = rng.integers(-5, 6, size=(2, 2, 5, 5))
    w = rng.standard_normal((3, 2, 2, 2))
    b = rng.standard_normal(3)
    out, cache = conv_forward_naive(xi, w, b, {"stride": 1, "pad": 0})
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, conv_loops(xi.astype(float), w, b, 1, 0), rtol=1e-12)
    dx, dw, db = conv_backward_naive(np.ones_like(out), cache)
    assert dx.dtype == dw.dtype == np.float64

    out, cache = max_pool_forward_fast(xi, {"pool_height": 2, "pool_width": 2, "stride": 1})
    np.testing.assert_array_equal(out, pool_loops(xi.astype(float), 2, 2, 1))
    max_pool_backward_fast(np.ones_like(out, dtype=float), cache)

    xa = rng.integers(-3, 4, size=(4, 6))
    out, cache = affine_forward(xa, rng.standard_normal((6, 2)), np.zeros(2))
    assert out.dtype == np.float64
    affine_backward(np.ones((4, 2)), cache)

    out, cache = relu_forward(xi)
    np.testing.assert_array_equal(out, np.maximum(xi, 0))

    loss, dx = softmax_loss(np.array([[1, 2, 3]]), np.array([2]))
    assert dx.dtype == np.float64
    assert loss == pytest.approx(softmax_loss_loops(np.array([[1.0, 2.0, 3.0]]), [2]))
    loss, dx = svm_loss(np.array([[1, 2, 3]]), np.array([2]))
    assert loss == 0.0 and dx.dtype == np.float64


# ---------------------------------------------------------------------------
# inputs are never modified


def test_inputs_never_modified():
    rng = np.random.default_rng(20)
    inputs = _inputs(rng)
    copies = [v.copy() for v in inputs]
    for v in inputs:
        v.setflags(write=False)
    # Read-only inputs must be accepted, and nothing may change them.
    results = list(_all_ops(*inputs))
    assert len(results) > 20
    for v, c in zip(inputs, copies):
        np.testing.assert_array_equal(v, c)


def test_dout_never_modified():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    out, cache = conv_relu_pool_forward(x, w, b, {"stride": 1, "pad": 1},
                                        {"pool_height": 3, "pool_width": 3, "stride": 2})
    dout = rng.standard_normal(out.shape)
    keep = dout.copy()
    conv_relu_pool_backward(dout, cache)
    np.testing.assert_array_equal(dout, keep)
    scores = rng.standard_normal((4, 3))
    keep = scores.copy()
    softmax_loss(scores, np.array([0, 1, 2, 0]))
    svm_loss(scores, np.array([0, 1, 2, 0]))
    np.testing.assert_array_equal(scores, keep)
