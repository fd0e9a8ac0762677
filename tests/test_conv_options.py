"""conv2d and conv2d_backward with dilation, groups and every padding form,
against the NumPy oracle: a dilated kernel is the kernel spread out with
zeros between its taps, a grouped convolution is each group's slices
convolved on their own, and padding that differs on two sides is an input
padded explicitly."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import assert_close, conv_pads

CASES = [
    # x shape, w shape, stride, padding, dilation, groups
    ((2, 4, 11, 12), (6, 4, 3, 3), 1, 2, 2, 1),
    ((2, 6, 13, 10), (9, 2, 3, 2), (2, 1), 1, (1, 2), 3),
    ((1, 8, 9, 9), (8, 1, 3, 3), 1, "same", 1, 8),              # depthwise, 'same'
    ((2, 3, 10, 11), (5, 3, 4, 4), 1, "same", 1, 1),            # even kernel: one more at the end
    ((2, 3, 10, 11), (5, 3, 3, 3), 1, "same", 3, 1),
    ((1, 4, 12, 9), (4, 4, 3, 3), 2, ((0, 2), (1, 0)), 1, 1),
    ((2, 4, 8, 8), (4, 2, 2, 2), 1, "valid", 2, 2),
]


def _oracle(x, w, b, dy, stride, padding, dilation, groups):
    s = stride if isinstance(stride, tuple) else (stride, stride)
    d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    (pt, pb), (pl, pr) = conv_pads(padding, w.shape[2:], d)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    K, Cg, FH, FW = w.shape
    ws = np.zeros((K, Cg, (FH - 1) * d[0] + 1, (FW - 1) * d[1] + 1))
    ws[:, :, ::d[0], ::d[1]] = w
    Kg = K // groups
    ys, dxs, dws = [], [], []
    for g in range(groups):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        wg = ws[g * Kg:(g + 1) * Kg]
        ys.append(ref.conv2d(xg, wg, None if b is None else b[g * Kg:(g + 1) * Kg], s, (0, 0)))
        if dy is not None:
            dxg, dwg, _ = ref.conv2d_backward(dy[:, g * Kg:(g + 1) * Kg].astype(np.float64),
                                              xg, wg, s, (0, 0))
            dxs.append(dxg)
            dws.append(dwg)
    y = np.concatenate(ys, axis=1)
    if dy is None:
        return y
    H, W = x.shape[2:]
    dx = np.concatenate(dxs, axis=1)[:, :, pt:pt + H, pl:pl + W]
    dw = np.concatenate(dws, axis=0)[:, :, ::d[0], ::d[1]]
    return y, dx, dw


@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv2d_options(case, dtype, isa):
    xs, ws, stride, padding, dilation, groups = case
    rng = np.random.default_rng(sum(xs))
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = fastconv.conv2d(x, w, b, stride, padding, dilation=dilation, groups=groups,
                        strict=False)
    want = _oracle(x, w, b.astype(np.float64), None, stride, padding, dilation, groups)
    scale = _oracle(np.abs(x), np.abs(w), np.abs(b).astype(np.float64), None, stride, padding,
                    dilation, groups)
    length = ws[1] * ws[2] * ws[3]
    assert_close(y, want, scale, dtype, length, f"conv2d {case} [{isa}]")
    if padding == "same":
        assert y.shape[2:] == x.shape[2:]
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, stride, padding, dilation=dilation,
                                          groups=groups)
    _, rdx, rdw = _oracle(x, w, None, dy, stride, padding, dilation, groups)
    _, sdx, sdw = _oracle(np.abs(x), np.abs(w), None, np.abs(dy), stride, padding, dilation,
                          groups)
    assert_close(dx, rdx, sdx, dtype, ws[0] * ws[2] * ws[3], f"dx {case} [{isa}]")
    assert_close(dw, rdw, sdw, dtype, y.shape[0] * y.shape[2] * y.shape[3], f"dw {case}")
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)),
                               rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-3)


def test_shape_errors_show_dilation():
    x = np.ones((1, 1, 8, 8), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(fastconv.ShapeError,
                       match=r"\(W \+ P_begin \+ P_end - D\*\(F - 1\) - 1\)/S \+ 1 = "
                             r"\(8 \+ 0 \+ 0 - 4\*\(3 - 1\) - 1\)/1 \+ 1"):
        fastconv.conv2d(x, w, dilation=4)
    with pytest.raises(fastconv.ShapeError, match=r"= 3\.5 is not an integer"):
        fastconv.conv2d(x, w, stride=2, padding=1, dilation=2)


def test_bad_options_are_refused_before_any_c_runs():
    x = np.ones((1, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        fastconv.conv2d(x, np.ones((2, 4, 3, 3), np.float32), stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be an int, a pair"):
        fastconv.conv2d(x, np.ones((2, 4, 3, 3), np.float32), padding="full")
    with pytest.raises(ValueError, match="with groups=3, x's 4 channels"):
        fastconv.conv2d(x, np.ones((3, 1, 3, 3), np.float32), groups=3)
    with pytest.raises(ValueError, match=r"w must be \(K, C/groups, F_h, F_w\) = \(2, 2,"):
        fastconv.conv2d(x, np.ones((2, 4, 3, 3), np.float32), groups=2)
    with pytest.raises(ValueError, match="groups must be >= 1"):
        fastconv.conv2d(x, np.ones((2, 4, 3, 3), np.float32), groups=0)
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        fastconv.conv2d(x, np.ones((2, 4, 3, 3), np.float32), dilation=0)


def test_plan_takes_dilation_and_groups():
    pl = fastconv.plan("conv2d", (2, 8, 16, 16), (8, 2, 3, 3), dtype="float32", padding=2,
                       dilation=2, groups=4)
    assert pl.algorithm in fastconv.algorithms() and pl.algorithm != "lanes"


def test_conv2d_options_match_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    for xs, ws, stride, padding, dilation, groups in CASES:
        if isinstance(padding, tuple) and isinstance(padding[0], tuple):
            continue   # torch's conv2d has no ((top, bottom), (left, right)) form
        rng = np.random.default_rng(2)
        x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        y = fastconv.conv2d(x, w, b, stride, padding, dilation=dilation, groups=groups,
                            strict=False)
        t = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride,
                     padding, dilation, groups).numpy()
        np.testing.assert_allclose(y, t, rtol=1e-10, atol=1e-10)


def test_conv2d_layer_options():
    rng = np.random.default_rng(3)
    layer = fastconv.Conv2d(6, 9, 3, padding="same", dilation=2, groups=3, dtype=np.float64,
                            seed=0)
    assert repr(layer) == ("Conv2d(6, 9, kernel_size=3, padding='same', dilation=2, groups=3, "
                           "dtype=float64)")
    assert layer.weight.shape == (9, 2, 3, 3) and layer.num_params == 9 * 2 * 9 + 9
    x = rng.standard_normal((2, 6, 10, 11))
    y = layer(x)
    np.testing.assert_array_equal(y, fastconv.conv2d(x, layer.weight, layer.bias, 1, "same",
                                                     dilation=2, groups=3))
    assert layer.output_shape((6, 10, 11)) == (9, 10, 11)
    assert layer.mult_adds((6, 10, 11)) == 9 * 10 * 11 * 2 * 9
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    want = fastconv.conv2d_backward(dy, x, layer.weight, 1, "same", dilation=2, groups=3)
    np.testing.assert_array_equal(dx, want[0])
    np.testing.assert_array_equal(layer.grads["weight"], want[1])
    sides = fastconv.Conv2d(2, 2, 2, padding=((0, 1), (1, 0)))
    assert sides.output_shape((2, 5, 5)) == (2, 5, 5)
    with pytest.raises(ValueError, match="multiples of groups"):
        fastconv.Conv2d(6, 9, 3, groups=4)
    with pytest.raises(ValueError, match="needs stride 1"):
        fastconv.Conv2d(6, 9, 3, stride=2, padding="same")
