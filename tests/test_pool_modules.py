"""MaxPool2d / AvgPool2d options and the LPPool2d and adaptive pooling
layers: repr, output shapes (Sequential.summary), forward and backward
against the functional ops and the oracle."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import randn

LAYERS = [
    (fastconv.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True),
     "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)"),
    (fastconv.MaxPool2d(2, ceil_mode=True), "MaxPool2d(kernel_size=2, ceil_mode=True)"),
    (fastconv.AvgPool2d(3, 2, 1, False, ceil_mode=True, divisor_override=4),
     "AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, "
     "divisor_override=4)"),
    (fastconv.LPPool2d(2, 3, 2, True), "LPPool2d(norm_type=2, kernel_size=3, stride=2, "
                                       "ceil_mode=True)"),
    (fastconv.LPPool2d(float("inf"), (2, 3), strict=False),
     "LPPool2d(norm_type=inf, kernel_size=(2, 3), strict=False)"),
    (fastconv.AdaptiveAvgPool2d((3, None)), "AdaptiveAvgPool2d(output_size=(3, None))"),
    (fastconv.AdaptiveMaxPool2d(4), "AdaptiveMaxPool2d(output_size=4)"),
]


@pytest.mark.parametrize("layer,text", LAYERS, ids=[t.split("(")[0] + str(i)
                                                     for i, (_, t) in enumerate(LAYERS)])
def test_repr_summary_forward_backward(layer, text, dtype):
    assert repr(layer) == text
    x = randn((2, 3, 11, 9), dtype, "module", text)
    model = fastconv.Sequential(layer, fastconv.Flatten())
    y = layer(x)
    assert y.dtype == dtype
    assert layer.output_shape(x.shape[1:]) == y.shape[1:]
    summary = model.summary(x.shape[1:])
    assert summary.output_shape == (int(np.prod(y.shape[1:])),)
    assert layer.num_params == 0
    dy = randn(y.shape, dtype, "module dy", text)
    dx = layer.backward(dy)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert layer.backward(dy, need_dx=False) is None


def test_modules_match_functional():
    x = randn((2, 3, 11, 9), np.float64, "match")
    m = fastconv.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True)
    y = m(x)
    y_ref, _ = ref.max_pool2d_ex(x, 3, 2, 1, 2, True)
    np.testing.assert_array_equal(y, y_ref)
    dy = randn(y.shape, np.float64, "match dy")
    np.testing.assert_allclose(m.backward(dy), ref.max_pool2d_ex_backward(dy, x, 3, 2, 1, 2, True),
                               rtol=1e-13, atol=1e-13)
    a = fastconv.AvgPool2d(3, 2, 1, False, ceil_mode=True, divisor_override=4)
    np.testing.assert_allclose(a(x), ref.avg_pool2d_ex(x, 3, 2, 1, True, False, 4), rtol=1e-13)
    lp = fastconv.LPPool2d(2, 3, 2, True)
    np.testing.assert_allclose(lp(x), ref.lp_pool2d(x, 2, 3, 2, True), rtol=1e-12)
    ad = fastconv.AdaptiveAvgPool2d((3, None))
    np.testing.assert_allclose(ad(x), ref.adaptive_pool2d(x, (3, 9), "avg"), rtol=1e-13)
    am = fastconv.AdaptiveMaxPool2d(4)
    ym = am(x)
    np.testing.assert_array_equal(ym, ref.adaptive_pool2d(x, (4, 4), "max")[0])
    dy = randn(ym.shape, np.float64, "am dy")
    np.testing.assert_allclose(am.backward(dy), ref.adaptive_max_pool2d_backward(dy, x, (4, 4)),
                               rtol=1e-13, atol=1e-13)


def test_summary_shapes():
    model = fastconv.Sequential(
        fastconv.Conv2d(3, 4, 3, padding=1), fastconv.MaxPool2d(2, ceil_mode=True),
        fastconv.AvgPool2d(3, 2, 1, ceil_mode=True), fastconv.LPPool2d(2, 2, ceil_mode=True),
        fastconv.AdaptiveMaxPool2d((None, 3)), fastconv.AdaptiveAvgPool2d(1), fastconv.Flatten())
    s = model.summary((3, 13, 13))
    # 13 -> ceil 7 -> ceil((7 + 2 - 3)/2) + 1 = 4 -> 2 -> (2, 3) -> (1, 1)
    assert s.output_shape == (4,)
    text = str(s)
    for shape in ("4 x 7 x 7", "4 x 4 x 4", "4 x 2 x 2", "4 x 2 x 3", "4 x 1 x 1"):
        assert shape in text
    y = model(randn((2, 3, 13, 13), np.float32, "summary"))
    assert y.shape == (2, 4)


def test_construction_errors():
    with pytest.raises(ValueError, match="dilation"):
        fastconv.MaxPool2d(2, dilation=0)
    with pytest.raises(TypeError, match="ceil_mode"):
        fastconv.AvgPool2d(2, ceil_mode="yes")
    with pytest.raises(ValueError, match="divisor_override"):
        fastconv.AvgPool2d(2, divisor_override=0)
    with pytest.raises(ValueError, match="norm_type"):
        fastconv.LPPool2d(0, 2)
    with pytest.raises(TypeError, match="norm_type"):
        fastconv.LPPool2d(None, 2)
    with pytest.raises(ValueError, match="output_size"):
        fastconv.AdaptiveAvgPool2d(0)
    with pytest.raises(ValueError, match="output_size"):
        fastconv.AdaptiveMaxPool2d((1, 2, 3))
    with pytest.raises(RuntimeError, match="before forward"):
        fastconv.AdaptiveMaxPool2d(2).backward(np.ones((1, 1, 2, 2)))
    with pytest.raises(fastconv.ShapeError, match=r"MaxPool2d\(kernel_size=2\)"):
        fastconv.MaxPool2d(2)(np.ones((1, 1, 5, 5)))
