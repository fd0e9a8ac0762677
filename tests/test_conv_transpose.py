"""conv_transpose2d against a scatter oracle written from its definition,
and its backward through the adjoint identities: the transposed convolution
is linear in x and in w, so <T(x; w), dy> = <x, dx> = <w, dw>."""

import numpy as np
import pytest

import fastconv
from conftest import assert_close

CASES = [
    # x shape, w shape (C_in, C_out/groups, FH, FW), stride, padding, output_padding,
    # groups, dilation
    ((2, 3, 5, 4), (3, 4, 2, 2), 2, 0, 0, 1, 1),          # U-Net 2x2 stride 2
    ((1, 4, 4, 4), (4, 2, 4, 4), 2, 1, 0, 1, 1),          # DCGAN 4x4 stride 2
    ((2, 4, 5, 6), (4, 3, 3, 3), 2, 1, 1, 2, 1),          # groups, output_padding
    ((1, 2, 6, 5), (2, 3, 3, 2), (1, 2), (1, 0), (0, 1), 1, (2, 1)),
    ((3, 6, 3, 3), (6, 1, 3, 3), 1, 1, 0, 6, 2),          # depthwise, dilated
]


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def scatter_oracle(x, w, b, stride, padding, output_padding, groups, dilation):
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, Cin, H, W = x.shape
    _, Cog, FH, FW = w.shape
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = map(_pair, (stride, padding, output_padding,
                                                        dilation))
    Hout = (H - 1) * sh - 2 * ph + dh * (FH - 1) + oh + 1
    Wout = (W - 1) * sw - 2 * pw + dw * (FW - 1) + ow + 1
    y = np.zeros((N, Cog * groups, Hout, Wout))
    cig = Cin // groups
    for ci in range(Cin):
        g = ci // cig
        for r in range(FH):
            for s in range(FW):
                for ih in range(H):
                    yh = ih * sh - ph + r * dh
                    if not 0 <= yh < Hout:
                        continue
                    for iw in range(W):
                        yw = iw * sw - pw + s * dw
                        if 0 <= yw < Wout:
                            y[:, g * Cog:(g + 1) * Cog, yh, yw] += \
                                x[:, ci, ih, iw, None] * w[ci, :, r, s]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv_transpose2d(case, dtype, isa):
    xs, ws, stride, padding, output_padding, groups, dilation = case
    rng = np.random.default_rng(sum(xs))
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[1] * groups).astype(dtype)
    args = (stride, padding, output_padding, groups, dilation)
    y = fastconv.conv_transpose2d(x, w, b, *args)
    want = scatter_oracle(x, w, b, *args)
    scale = scatter_oracle(np.abs(x), np.abs(w), np.abs(b), *args)
    assert_close(y, want, scale, dtype, ws[0] // groups * ws[2] * ws[3], f"T {case} [{isa}]")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = fastconv.conv_transpose2d_backward(dy, x, w, *args)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    # adjoints, in float64 on the inputs fastconv saw
    dy64 = dy.astype(np.float64)
    lin = scatter_oracle(x, w, None, *args)
    inner = float((lin * dy64).sum())
    tol = (1e-4 if dtype == np.float32 else 1e-11) * float((np.abs(scatter_oracle(
        np.abs(x), np.abs(w), None, *args)) * np.abs(dy64)).sum())
    assert abs(float((x.astype(np.float64) * dx).sum()) - inner) <= tol
    assert abs(float((w.astype(np.float64) * dw).sum()) - inner) <= tol
    np.testing.assert_allclose(db, dy64.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-3)
    assert fastconv.conv_transpose2d_backward(dy, x, w, *args, need_dx=False)[0] is None


def test_conv_transpose2d_errors():
    x = np.ones((1, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="w has 3"):
        fastconv.conv_transpose2d(x, np.ones((3, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="output_padding .* smaller than the stride"):
        fastconv.conv_transpose2d(x, np.ones((2, 2, 2, 2), np.float32), stride=2,
                                  output_padding=2)
    with pytest.raises(fastconv.ShapeError, match="must be at least 1"):
        fastconv.conv_transpose2d(x, np.ones((2, 2, 2, 2), np.float32), padding=3)
    with pytest.raises(ValueError, match="b must have shape"):
        fastconv.conv_transpose2d(x, np.ones((2, 2, 2, 2), np.float32), np.ones(3))
    with pytest.raises(ValueError, match="dy must have the shape"):
        fastconv.conv_transpose2d_backward(np.ones((1, 2, 3, 3)), x,
                                           np.ones((2, 2, 2, 2), np.float32))


def test_conv_transpose2d_matches_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    for xs, ws, stride, padding, output_padding, groups, dilation in CASES:
        rng = np.random.default_rng(1)
        x = rng.standard_normal(xs)
        w = rng.standard_normal(ws)
        b = rng.standard_normal(ws[1] * groups)
        y = fastconv.conv_transpose2d(x, w, b, stride, padding, output_padding, groups,
                                      dilation)
        t = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                               stride, padding, output_padding, groups, dilation).numpy()
        np.testing.assert_allclose(y, t, rtol=1e-10, atol=1e-10)
