"""Parity with torch.nn.functional, forward and gradients (skipped without torch).

Also checks the NumPy oracle itself against PyTorch, so that the oracle
cannot share a misreading of the definitions with fastconv.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
TF = torch.nn.functional

import fastconv  # noqa: E402
import reference as ref  # noqa: E402
from conftest import (ConvCase, PoolCase, assert_close, case_ids, random_conv_case,  # noqa: E402
                      random_pool_case)


def tt(a, grad=False):
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(grad)


def npy(t):
    return t.detach().numpy().astype(np.float64)


def torch_conv(x, w, b, stride, padding, dy):
    xt, wt = tt(x, True), tt(w, True)
    bt = None if b is None else tt(b, True)
    y = TF.conv2d(xt, wt, bt, stride, padding)
    y.backward(tt(dy))
    db = None if bt is None else npy(bt.grad)
    return npy(y), npy(xt.grad), npy(wt.grad), db


def torch_pool(kind, x, kernel, stride, padding, dy, count_include_pad=True):
    xt = tt(x, True)
    st = kernel if stride is None else stride  # torch's None stride means kernel as well
    if kind == "max":
        y = TF.max_pool2d(xt, kernel, st, padding)
    else:
        y = TF.avg_pool2d(xt, kernel, st, padding, count_include_pad=count_include_pad)
    y.backward(tt(dy))
    return npy(y), npy(xt.grad)


# ------------------------------------------------------ the oracle itself

_rng = np.random.default_rng(4242)
ORACLE_CONV = ([random_conv_case(_rng, exact=True) for _ in range(15)]
               + [random_conv_case(_rng, exact=False) for _ in range(10)])
ORACLE_POOL = ([random_pool_case(_rng, exact=True) for _ in range(15)]
               + [random_pool_case(_rng, exact=False) for _ in range(10)])
TIGHT = 1e-13  # both sides sum the same float64 terms in some order


@pytest.mark.parametrize("case", ORACLE_CONV, ids=case_ids(ORACLE_CONV))
def test_oracle_conv_matches_torch(case):
    x, w, b, dy = case.inputs(np.float64)
    y, dx, dw, db = torch_conv(x, w, b, case.stride, case.padding, dy)
    np.testing.assert_allclose(ref.conv2d(x, w, b, case.stride, case.padding), y,
                               rtol=TIGHT, atol=TIGHT)
    rdx, rdw, rdb = ref.conv2d_backward(dy, x, w, case.stride, case.padding)
    np.testing.assert_allclose(rdx, dx, rtol=TIGHT, atol=TIGHT)
    np.testing.assert_allclose(rdw, dw, rtol=TIGHT, atol=TIGHT)
    if b is not None:
        np.testing.assert_allclose(rdb, db, rtol=TIGHT, atol=TIGHT)


@pytest.mark.parametrize("case", ORACLE_POOL, ids=case_ids(ORACLE_POOL))
def test_oracle_pool_matches_torch(case):
    x, dy = case.inputs(np.float64)
    y, dx = torch_pool("max", x, case.kernel, case.stride, case.padding, dy)
    np.testing.assert_array_equal(ref.max_pool2d(x, case.kernel, case.stride, case.padding), y)
    np.testing.assert_allclose(
        ref.max_pool2d_backward(dy, x, case.kernel, case.stride, case.padding), dx,
        rtol=TIGHT, atol=TIGHT)
    for cip in (True, False):
        y, dx = torch_pool("avg", x, case.kernel, case.stride, case.padding, dy, cip)
        np.testing.assert_allclose(
            ref.avg_pool2d(x, case.kernel, case.stride, case.padding, cip), y,
            rtol=TIGHT, atol=TIGHT)
        np.testing.assert_allclose(
            ref.avg_pool2d_backward(dy, x.shape, case.kernel, case.stride, case.padding, cip),
            dx, rtol=TIGHT, atol=TIGHT)


def test_oracle_linear_relu_match_torch():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 2, 3, 2))
    w, b = rng.standard_normal((5, 12)), rng.standard_normal(5)
    dy = rng.standard_normal((6, 5))
    xt, wt, bt = tt(x, True), tt(w, True), tt(b, True)
    y = TF.linear(xt.reshape(6, -1), wt, bt)
    y.backward(tt(dy))
    np.testing.assert_allclose(ref.linear(x, w, b), npy(y), rtol=TIGHT, atol=TIGHT)
    for mine, theirs in zip(ref.linear_backward(dy, x, w), (xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(mine, npy(theirs), rtol=TIGHT, atol=TIGHT)
    z = rng.standard_normal((4, 5))
    z[0, :3] = 0.0
    zt = tt(z, True)
    r = TF.relu(zt)
    r.backward(tt(dy[:4]))
    np.testing.assert_array_equal(ref.relu(z), npy(r))
    np.testing.assert_array_equal(ref.relu_backward(dy[:4], z), npy(zt.grad))


# ------------------------------------------------------------ fastconv

PARITY_CONV = [
    ConvCase(2, 3, 9, 8, 5, 3, 2, 2, 1, 1, 1),
    ConvCase(1, 3, 31, 31, 25, 3, 3, 2, 2, 1, 1),
    ConvCase(2, 16, 14, 14, 33, 3, 3, 1, 1, 1, 1),
    ConvCase(2, 40, 7, 9, 20, 1, 1),
    ConvCase(1, 4, 12, 13, 7, 5, 3, 2, 3, 2, 1),  # floored
    ConvCase(2, 3, 6, 6, 4, 6, 6, bias=False),
]
PARITY_POOL = [
    PoolCase(2, 3, 8, 8, 2, 2),
    PoolCase(2, 4, 11, 11, 3, 3, 2, 2, 1, 1),
    PoolCase(1, 2, 9, 10, 3, 2, 1, 2, 1, 1),
    PoolCase(2, 2, 7, 7, 2, 2),  # floored
    PoolCase(1, 3, 7, 7, 7, 7),
]


def _kw(case):
    return {} if case.exact else {"strict": False}


@pytest.mark.parametrize("case", PARITY_CONV, ids=case_ids(PARITY_CONV))
def test_conv2d_matches_torch(case, dtype, isa):
    x, w, b, dy = case.inputs(dtype)
    ty, tdx, tdw, tdb = torch_conv(x, w, b, case.stride, case.padding, dy)
    y = fastconv.conv2d(x, w, b, case.stride, case.padding, **_kw(case))
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, case.stride, case.padding)
    ab = None if b is None else np.abs(b)
    sy = ref.conv2d(np.abs(x), np.abs(w), ab, case.stride, case.padding)
    sdx, sdw, sdb = ref.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), case.stride,
                                        case.padding)
    # Two roundings (fastconv's and torch's) against one exact value: 2L.
    assert_close(y, ty, sy, dtype, 2 * case.len_fwd, "conv2d vs torch")
    assert_close(dx, tdx, sdx, dtype, 2 * case.len_dx, "conv2d dx vs torch")
    assert_close(dw, tdw, sdw, dtype, 2 * case.len_dw, "conv2d dw vs torch")
    if b is not None:
        assert_close(db, tdb, sdb, dtype, 2 * case.len_dw, "conv2d db vs torch")


@pytest.mark.parametrize("case", PARITY_POOL, ids=case_ids(PARITY_POOL))
def test_max_pool2d_matches_torch(case, dtype, isa):
    x, dy = case.inputs(dtype)
    ty, tdx = torch_pool("max", x, case.kernel, case.stride, case.padding, dy)
    y = fastconv.max_pool2d(x, case.kernel, case.stride, case.padding, **_kw(case))
    dx = fastconv.max_pool2d_backward(dy, x, case.kernel, case.stride, case.padding, **_kw(case))
    np.testing.assert_array_equal(y, ty.astype(dtype))
    sdx = ref.max_pool2d_backward(np.abs(dy), x, case.kernel, case.stride, case.padding)
    assert_close(dx, tdx, sdx, dtype, 2 * case.overlap, "max_pool2d dx vs torch")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", PARITY_POOL, ids=case_ids(PARITY_POOL))
def test_avg_pool2d_matches_torch(case, dtype, isa, count_include_pad):
    x, dy = case.inputs(dtype)
    ty, tdx = torch_pool("avg", x, case.kernel, case.stride, case.padding, dy, count_include_pad)
    kw = dict(_kw(case), count_include_pad=count_include_pad)
    y = fastconv.avg_pool2d(x, case.kernel, case.stride, case.padding, **kw)
    dx = fastconv.avg_pool2d_backward(dy, x.shape, case.kernel, case.stride, case.padding, **kw)
    sy = ref.avg_pool2d(np.abs(x), case.kernel, case.stride, case.padding, count_include_pad)
    sdx = ref.avg_pool2d_backward(np.abs(dy), x.shape, case.kernel, case.stride, case.padding,
                                  count_include_pad)
    assert_close(y, ty, sy, dtype, 2 * (case.KH * case.KW + 1), "avg_pool2d vs torch")
    assert_close(dx, tdx, sdx, dtype, 2 * (case.overlap + 1), "avg_pool2d dx vs torch")


def test_max_pool2d_nan_and_ties_match_torch(isa, dtype):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=(2, 2, 9, 9)).astype(dtype)
    x[0, 0, 4, 4] = np.nan
    dy = rng.standard_normal((2, 2, 5, 5)).astype(dtype)
    ty, _ = torch_pool("max", x, 3, 2, 1, dy)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, 3, 2, 1), ty.astype(dtype))
    # Ties only (no NaN): the gradient goes where torch sends it.
    x[0, 0, 4, 4] = 1
    _, tdx = torch_pool("max", x, 3, 2, 1, dy)
    dx = fastconv.max_pool2d_backward(dy, x, 3, 2, 1)
    sdx = ref.max_pool2d_backward(np.abs(dy), x, 3, 2, 1)
    assert_close(dx, tdx, sdx, dtype, 8, "max_pool2d dx with ties vs torch")


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("n, feat, out", [(7, (13,), 9), (4, (3, 4, 4), 33), (300, (70,), 41)],
                         ids=str)
def test_linear_matches_torch(n, feat, out, activation, dtype, isa):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n,) + feat).astype(dtype)
    d = int(np.prod(feat))
    w = rng.standard_normal((out, d)).astype(dtype)
    b = rng.standard_normal(out).astype(dtype)
    dy = rng.standard_normal((n, out)).astype(dtype)
    xt, wt, bt = tt(x, True), tt(w, True), tt(b, True)
    yt = TF.linear(xt.reshape(n, -1), wt, bt)
    if activation == "relu":
        yt = TF.relu(yt)
    yt.backward(tt(dy))
    y = fastconv.linear(x, w, b, activation=activation)
    pre = fastconv.linear(x, w, b)
    g = dy if activation is None else fastconv.relu_backward(dy, pre)
    dx, dw, db = fastconv.linear_backward(g, x, w)
    sy = ref.linear(np.abs(x), np.abs(w), np.abs(b))
    sdx, sdw, sdb = ref.linear_backward(np.abs(dy), np.abs(x), np.abs(w))
    assert_close(y, npy(yt), sy, dtype, 2 * (d + 1), "linear vs torch")
    assert_close(dx, npy(xt.grad), sdx, dtype, 2 * out, "linear dx vs torch")
    assert_close(dw, npy(wt.grad), sdw, dtype, 2 * n, "linear dw vs torch")
    assert_close(db, npy(bt.grad), sdb, dtype, 2 * n, "linear db vs torch")


def test_relu_matches_torch(dtype):
    x = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(dtype)
    x[0, 0] = 0
    dy = np.ones_like(x)
    xt = tt(x, True)
    TF.relu(xt).backward(tt(dy))
    np.testing.assert_array_equal(fastconv.relu(x), TF.relu(tt(x)).numpy())
    np.testing.assert_array_equal(fastconv.relu_backward(dy, x), xt.grad.numpy())
