"""float64 gradients of every op against central finite differences.

The loss is L = sum(g * op(...)) for a fixed random g, so dL/d(output) = g and
the analytic gradient is the op's backward applied to g.
"""

import numpy as np
import pytest

import fastconv
from conftest import randn, seed_of

H = 1e-6


def numerical_grad(loss, a):
    """Central differences of the scalar loss() with respect to every element of a."""
    grad = np.empty_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + H
        up = loss()
        flat[i] = keep - H
        down = loss()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * H)
    return grad


def check(analytic, numeric, what):
    # Each difference quotient carries a rounding error of about
    # eps * |L| / H; the ops here are piecewise linear, so there is no
    # truncation error at all.
    assert analytic.shape == numeric.shape, what
    scale = max(1.0, float(np.abs(numeric).max()))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7 * scale, err_msg=what)


def separated(shape, key):
    """Values at least 0.01 apart and away from 0, so that no max-pool
    argmax or relu sign changes within +-H."""
    rng = np.random.default_rng(seed_of(shape, key))
    n = int(np.prod(shape))
    vals = (rng.permutation(n) - n // 2 + 0.5) * 0.01  # half-integers: never 0
    return vals.reshape(shape)


CONV_GEOMS = [
    # x shape, w shape, stride, padding
    ((2, 2, 5, 6), (3, 2, 3, 2), (2, 1), (1, 0)),
    ((1, 3, 4, 4), (2, 3, 1, 1), 1, 0),
    ((2, 1, 6, 5), (2, 1, 2, 3), (2, 1), (0, 1)),
    ((1, 2, 3, 3), (2, 2, 3, 3), 1, 1),
]


@pytest.mark.parametrize("xs, ws, stride, padding", CONV_GEOMS, ids=str)
def test_conv2d_gradients(xs, ws, stride, padding, isa):
    x = randn(xs, np.float64, "gx", xs)
    w = randn(ws, np.float64, "gw", ws)
    b = randn(ws[:1], np.float64, "gb", ws)
    g = randn(fastconv.conv2d(x, w, b, stride, padding).shape, np.float64, "gg", xs)

    def loss():
        return float((fastconv.conv2d(x, w, b, stride, padding) * g).sum())

    dx, dw, db = fastconv.conv2d_backward(g, x, w, stride, padding)
    check(dx, numerical_grad(loss, x), "conv2d dx")
    check(dw, numerical_grad(loss, w), "conv2d dw")
    check(db, numerical_grad(loss, b), "conv2d db")


def test_conv2d_fused_relu_gradient(isa):
    x = randn((2, 2, 5, 5), np.float64, "frx")
    w = randn((3, 2, 3, 3), np.float64, "frw")
    b = randn((3,), np.float64, "frb")
    pre = fastconv.conv2d(x, w, b, 1, 1)
    g = randn(pre.shape, np.float64, "frg")

    def loss():
        return float((fastconv.conv2d(x, w, b, 1, 1, activation="relu") * g).sum())

    dx, dw, db = fastconv.conv2d_backward(fastconv.relu_backward(g, pre), x, w, 1, 1)
    check(dx, numerical_grad(loss, x), "conv2d+relu dx")
    check(dw, numerical_grad(loss, w), "conv2d+relu dw")
    check(db, numerical_grad(loss, b), "conv2d+relu db")


POOL_GEOMS = [
    # x shape, kernel, stride, padding
    ((2, 2, 6, 6), 2, None, 0),
    ((1, 2, 7, 7), 3, 2, 1),
    ((2, 1, 5, 7), (2, 3), (1, 2), (1, 1)),
    ((1, 1, 4, 4), 4, 1, 2),
]


@pytest.mark.parametrize("xs, kernel, stride, padding", POOL_GEOMS, ids=str)
def test_max_pool2d_gradient(xs, kernel, stride, padding, isa):
    x = separated(xs, ("mp", xs))
    g = randn(fastconv.max_pool2d(x, kernel, stride, padding).shape, np.float64, "mpg", xs)

    def loss():
        return float((fastconv.max_pool2d(x, kernel, stride, padding) * g).sum())

    dx = fastconv.max_pool2d_backward(g, x, kernel, stride, padding)
    check(dx, numerical_grad(loss, x), "max_pool2d dx")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("xs, kernel, stride, padding", POOL_GEOMS, ids=str)
def test_avg_pool2d_gradient(xs, kernel, stride, padding, count_include_pad, isa):
    x = randn(xs, np.float64, "ap", xs)
    kw = dict(count_include_pad=count_include_pad)
    g = randn(fastconv.avg_pool2d(x, kernel, stride, padding, **kw).shape, np.float64, "apg")

    def loss():
        return float((fastconv.avg_pool2d(x, kernel, stride, padding, **kw) * g).sum())

    dx = fastconv.avg_pool2d_backward(g, x.shape, kernel, stride, padding, **kw)
    check(dx, numerical_grad(loss, x), "avg_pool2d dx")


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("xs, out", [((3, 5), 4), ((2, 3, 2, 2), 5), ((1, 7), 1)], ids=str)
def test_linear_gradients(xs, out, activation, isa):
    x = randn(xs, np.float64, "lx", xs)
    d = int(np.prod(xs[1:]))
    w = randn((out, d), np.float64, "lw", xs)
    b = randn((out,), np.float64, "lb", xs)
    g = randn((xs[0], out), np.float64, "lg", xs)

    def loss():
        return float((fastconv.linear(x, w, b, activation=activation) * g).sum())

    dy = g if activation is None else fastconv.relu_backward(g, fastconv.linear(x, w, b))
    dx, dw, db = fastconv.linear_backward(dy, x, w)
    check(dx, numerical_grad(loss, x), "linear dx")
    check(dw, numerical_grad(loss, w), "linear dw")
    check(db, numerical_grad(loss, b), "linear db")


@pytest.mark.parametrize("xs", [(7,), (2, 3, 4, 5)], ids=str)
def test_relu_gradient(xs):
    x = separated(xs, ("relu", xs))
    g = randn(xs, np.float64, "rg", xs)

    def loss():
        return float((fastconv.relu(x) * g).sum())

    check(fastconv.relu_backward(g, x), numerical_grad(loss, x), "relu dx")
