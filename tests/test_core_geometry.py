"""Dilation and padding that differs on the two sides of an axis, in the C
core, through the binding.

A convolution with dilation (DH, DW) is the convolution with the kernel
spread out, zeros between its taps; the NumPy oracle of the spread kernel is
the reference.  Every algorithm that serves dilation is forced on strided,
padded, rectangular and 1x1 shapes, forward and both gradients, both dtypes,
every instruction set; lanes says it cannot serve it.
"""

import numpy as np
import pytest

import fastconv
from fastconv import _core
import reference as ref
from conftest import assert_close

ALGS = fastconv.algorithms()

# (N, C, H, W, K, FH, FW, SH, SW, PH, PW, DH, DW)
SHAPES = [
    (2, 3, 11, 13, 4, 3, 3, 1, 1, 2, 2, 2, 2),
    (1, 5, 14, 12, 6, 3, 2, 2, 1, 1, 0, 3, 2),
    (3, 2, 9, 10, 5, 2, 3, 1, 2, 0, 3, 1, 3),
    (2, 4, 16, 16, 8, 5, 5, 1, 1, 4, 4, 2, 2),
    (2, 6, 7, 8, 3, 1, 1, 1, 1, 0, 0, 2, 3),
]


def _geom(s):
    N, C, H, W, K, FH, FW, SH, SW, PH, PW, DH, DW = s
    H2 = (H + 2 * PH - DH * (FH - 1) - 1) // SH + 1
    W2 = (W + 2 * PW - DW * (FW - 1) - 1) // SW + 1
    return (N, C, H, W, K, FH, FW, SH, SW, PH, PW, H2, W2, DH, DW)


def _spread(w, DH, DW):
    K, C, FH, FW = w.shape
    out = np.zeros((K, C, (FH - 1) * DH + 1, (FW - 1) * DW + 1), w.dtype)
    out[:, :, ::DH, ::DW] = w
    return out


def _inputs(s, dtype):
    g = _geom(s)
    rng = np.random.default_rng(sum(s))
    x = rng.standard_normal(g[:4]).astype(dtype)
    w = rng.standard_normal((g[4], g[1], g[5], g[6])).astype(dtype)
    b = rng.standard_normal(g[4]).astype(dtype)
    dy = rng.standard_normal((g[0], g[4], g[11], g[12])).astype(dtype)
    return g, x, w, b, dy


def _oracle(s, x, w, b, dy):
    g = _geom(s)
    ws = _spread(w.astype(np.float64), g[13], g[14])
    stride, pad = (g[7], g[8]), (g[9], g[10])
    y = ref.conv2d(x.astype(np.float64), ws, b.astype(np.float64), stride, pad)
    ya = ref.conv2d(np.abs(x.astype(np.float64)), np.abs(ws), np.abs(b.astype(np.float64)),
                    stride, pad)
    dx, dws, db = ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), ws,
                                      stride, pad)
    adx, adws, _ = ref.conv2d_backward(np.abs(dy.astype(np.float64)),
                                       np.abs(x.astype(np.float64)), np.abs(ws), stride, pad)
    DH, DW = g[13], g[14]
    return (y, ya), (dx, adx), (dws[:, :, ::DH, ::DW], adws[:, :, ::DH, ::DW]), db


def _run(op, g, x, w, b, dy, alg, dtype):
    nt = fastconv.get_num_threads()
    K = g[4]
    flat = lambda a: np.ascontiguousarray(a, dtype).ravel()
    if op == "fwd":
        y = np.empty((g[0], g[4], g[11], g[12]), dtype)
        info = _core.conv2d_fwd(g, flat(x), flat(w), flat(b), y.reshape(-1), False, nt, alg)
        return y, info
    if op == "data":
        dx = np.empty(x.shape, dtype)
        info = _core.conv2d_bwd_data(g, flat(dy), flat(w), dx.reshape(-1), nt, alg)
        return dx, info
    dw = np.empty(w.shape, dtype)
    db = np.empty(K, dtype)
    info = _core.conv2d_bwd_weight(g, flat(dy), flat(x), dw.reshape(-1), db, nt, alg)
    return (dw, db), info


CODES = {"fwd": _core.OP_CONV_FWD, "data": _core.OP_CONV_DATA, "weight": _core.OP_CONV_WEIGHT}


def _every_algorithm(op, g, x, w, b, dy, dtype):
    """(output, plan) of op on g planned freely, then forced to every
    algorithm that can serve it."""
    for alg in [-1] + list(range(len(ALGS))):
        if alg >= 0:
            try:
                _core.plan_conv(CODES[op], g, np.dtype(dtype).itemsize, 1, alg)
            except ValueError:
                continue
        yield _run(op, g, x, w, b, dy, alg, dtype)


@pytest.mark.parametrize("op", ["fwd", "data", "weight"])
@pytest.mark.parametrize("s", SHAPES, ids=str)
def test_dilated_convolution_on_every_algorithm(s, op, dtype, isa, threads):
    g, x, w, b, dy = _inputs(s, dtype)
    (y, ya), (dx, adx), (dw, adw), db = _oracle(s, x, w, b, dy)
    FH, FW, DH, DW = g[5], g[6], g[13], g[14]
    length = {"fwd": g[1] * FH * FW, "data": g[4] * FH * FW, "weight": g[0] * g[11] * g[12]}[op]
    ran = set()
    for alg in [-1] + list(range(len(ALGS))):
        if alg >= 0:
            try:
                _core.plan_conv(CODES[op], g, np.dtype(dtype).itemsize, 1, alg)
            except ValueError as exc:
                if ALGS[alg] == "lanes" and op == "fwd":
                    assert "dilation 1" in str(exc)
                continue
        out, info = _run(op, g, x, w, b, dy, alg, dtype)
        ran.add(info["algorithm"])
        what = f"{op} via {info['algorithm']} [{isa}]"
        if op == "fwd":
            assert_close(out, y, ya, dtype, length, what)
        elif op == "data":
            assert_close(out, dx, adx, dtype, length, what)
        else:
            assert_close(out[0], dw, adw, dtype, length, what)
            np.testing.assert_allclose(out[1], db, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                       atol=1e-3 if dtype == np.float32 else 1e-9)
    assert "lanes" not in ran
    must = {"fwd": {"gemm", "gemm_t", "kvec"}, "data": {"col2im"},
            "weight": {"gemm", "kvec", "dot"}}[op]
    if op == "fwd" and g[7] == g[8] == 1 and FH * FW > 1:
        must.add("direct")
    if op == "data" and g[7] == g[8] == 1 and FH * FW > 1:
        must |= {"direct", "kvec", "gemm"}
    if op == "data" and (g[7] > 1 or g[8] > 1):
        must.add("phased")
    assert must <= ran, (must, ran)


# Padding that differs on the two sides of an axis (top, bottom, left,
# right), with and without dilation: the geometry holds the top and left
# padding, the output size the total; the oracle pads x explicitly.
ASYM = [
    # N, C, H, W, K, FH, FW, SH, SW, (top, bottom), (left, right), DH, DW
    (2, 3, 10, 9, 4, 4, 4, 1, 1, (1, 2), (1, 2), 1, 1),       # 'same' of an even kernel
    (1, 4, 12, 11, 5, 2, 2, 1, 1, (0, 1), (0, 1), 1, 1),
    (2, 2, 13, 14, 3, 3, 3, 2, 1, (2, 0), (0, 3), 2, 1),
    (1, 3, 9, 16, 6, 3, 5, 1, 1, (3, 1), (4, 2), 2, 2),
]


@pytest.mark.parametrize("op", ["fwd", "data", "weight"])
@pytest.mark.parametrize("s", ASYM, ids=str)
def test_asymmetric_padding_on_every_algorithm(s, op, dtype, isa):
    N, C, H, W, K, FH, FW, SH, SW, (pt, pb), (pl, pr), DH, DW = s
    H2 = (H + pt + pb - DH * (FH - 1) - 1) // SH + 1
    W2 = (W + pl + pr - DW * (FW - 1) - 1) // SW + 1
    g = (N, C, H, W, K, FH, FW, SH, SW, pt, pl, H2, W2, DH, DW)
    rng = np.random.default_rng(H * W)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, FH, FW)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    dy = rng.standard_normal((N, K, H2, W2)).astype(dtype)
    # oracle: x padded explicitly (past the last window's reach, trimmed), the
    # spread kernel, no padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ws = _spread(w.astype(np.float64), DH, DW)
    y = ref.conv2d(xp, ws, b.astype(np.float64), (SH, SW), (0, 0))
    ya = ref.conv2d(np.abs(xp), np.abs(ws), np.abs(b.astype(np.float64)), (SH, SW), (0, 0))
    dxp, dws, _ = ref.conv2d_backward(dy.astype(np.float64), xp, ws, (SH, SW), (0, 0))
    adxp, adws, _ = ref.conv2d_backward(np.abs(dy.astype(np.float64)), np.abs(xp), np.abs(ws),
                                        (SH, SW), (0, 0))
    dx, adx = dxp[:, :, pt:pt + H, pl:pl + W], adxp[:, :, pt:pt + H, pl:pl + W]
    dw, adw = dws[:, :, ::DH, ::DW], adws[:, :, ::DH, ::DW]
    ran = set()
    for out, info in _every_algorithm(op, g, x, w, b, dy, dtype):
        ran.add(info["algorithm"])
        what = f"{op} via {info['algorithm']} [{isa}]"
        if op == "fwd":
            assert_close(out, y, ya, dtype, C * FH * FW, what)
        elif op == "data":
            assert_close(out, dx, adx, dtype, K * FH * FW, what)
        else:
            assert_close(out[0], dw, adw, dtype, N * H2 * W2, what)
    if op == "fwd" and SH == SW == 1:
        assert "direct" in ran
    if op == "fwd" and DH == DW == 1:
        assert "lanes" in ran


# Grouped convolution: the channels and filters cut into G groups, each
# group's filters seeing only its channels; each group runs on the planned
# algorithm through the whole tensors' image strides (no copies).  The
# oracle convolves each group's slices on their own.
GROUPED = [
    # N, C, H, W, K, FH, FW, SH, SW, PH, PW, DH, DW, G
    (2, 8, 9, 10, 12, 3, 3, 1, 1, 1, 1, 1, 1, 4),
    (3, 6, 11, 9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 6),      # depthwise, two filters each
    (2, 4, 12, 12, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2),      # dilated
    (1, 6, 7, 8, 9, 1, 1, 1, 1, 0, 0, 1, 1, 3),        # 1x1
    (4, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 2),      # small maps: lanes
    (2, 32, 9, 11, 32, 3, 3, 1, 1, 1, 1, 1, 1, 8),     # small groups: grouped
    (1, 12, 8, 13, 24, 3, 3, 1, 1, 1, 2, 2, 1, 3),     # grouped, multiplier 2, dilated
]


@pytest.mark.parametrize("op", ["fwd", "data", "weight"])
@pytest.mark.parametrize("s", GROUPED, ids=str)
def test_grouped_convolution_on_every_algorithm(s, op, dtype, isa, threads):
    N, C, H, W, K, FH, FW, SH, SW, PH, PW, DH, DW, G = s
    H2 = (H + 2 * PH - DH * (FH - 1) - 1) // SH + 1
    W2 = (W + 2 * PW - DW * (FW - 1) - 1) // SW + 1
    g = (N, C, H, W, K, FH, FW, SH, SW, PH, PW, H2, W2, DH, DW, G)
    Cg, Kg = C // G, K // G
    rng = np.random.default_rng(C * K + G)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, Cg, FH, FW)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    dy = rng.standard_normal((N, K, H2, W2)).astype(dtype)
    want, scale = [], []
    for i in range(G):
        xs = x[:, i * Cg:(i + 1) * Cg].astype(np.float64)
        ws = _spread(w[i * Kg:(i + 1) * Kg].astype(np.float64), DH, DW)
        bs = b[i * Kg:(i + 1) * Kg].astype(np.float64)
        ds = dy[:, i * Kg:(i + 1) * Kg].astype(np.float64)
        if op == "fwd":
            want.append(ref.conv2d(xs, ws, bs, (SH, SW), (PH, PW)))
            scale.append(ref.conv2d(np.abs(xs), np.abs(ws), np.abs(bs), (SH, SW), (PH, PW)))
            continue
        r = ref.conv2d_backward(ds, xs, ws, (SH, SW), (PH, PW))
        a = ref.conv2d_backward(np.abs(ds), np.abs(xs), np.abs(ws), (SH, SW), (PH, PW))
        if op == "data":
            want.append(r[0])
            scale.append(a[0])
        else:
            want.append(r[1][:, :, ::DH, ::DW])
            scale.append(a[1][:, :, ::DH, ::DW])
    want = np.concatenate(want, axis=1 if op != "weight" else 0)
    scale = np.concatenate(scale, axis=1 if op != "weight" else 0)
    length = {"fwd": Cg * FH * FW, "data": Kg * FH * FW, "weight": N * H2 * W2}[op]
    ran = set()
    for out, info in _every_algorithm(op, g, x, w, b, dy, dtype):
        ran.add(info["algorithm"])
        got = out[0] if op == "weight" else out
        assert_close(got, want, scale, dtype, length, f"{op} via {info['algorithm']} [{isa}]")
        if op == "weight":
            np.testing.assert_allclose(out[1], dy.astype(np.float64).sum(axis=(0, 2, 3)),
                                       rtol=1e-4 if dtype == np.float32 else 1e-10,
                                       atol=1e-3 if dtype == np.float32 else 1e-9)
    assert "gemm" in ran or op == "data"
    if C == G:   # one input channel per group
        assert "depthwise" in ran
    if C != G and SH == SW == 1 and PH < DH * (FH - 1) + 1 and PW < DW * (FW - 1) + 1:
        assert "grouped" in ran
