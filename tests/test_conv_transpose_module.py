"""ConvTranspose2d: forward against the scatter oracle, backward the same
bits as the functional op, parameters and multiply-adds in a summary, repr
and argument errors."""

import numpy as np
import pytest

import fastconv
from fastconv import ConvTranspose2d, ReLU, Sequential, ShapeError
from conftest import assert_close
from test_conv_transpose import scatter_oracle

CASES = [  # in, out, kernel, stride, padding, output_padding, groups, dilation
    (3, 4, 3, 2, 1, 1, 1, 1),
    (4, 6, (2, 3), (1, 2), (0, 1), (0, 1), 2, 1),
    (6, 6, 3, 2, 0, 0, 6, 2),
    (2, 3, 1, 1, 0, 0, 1, 1),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer_computes_the_transposed_convolution(case, dtype):
    cin, cout, k, s, p, op, g, d = case
    layer = ConvTranspose2d(cin, cout, k, s, p, op, g, dilation=d, dtype=dtype, seed=3)
    rng = np.random.default_rng(cin * 7 + cout)
    layer.bias = rng.standard_normal(cout)
    x = rng.standard_normal((2, cin, 5, 4))
    y = layer(x)
    args = (s, p, op, g, d)
    xd = x.astype(dtype)
    assert y.dtype == dtype and y.shape == (2,) + layer.output_shape((cin, 5, 4))
    want = scatter_oracle(xd, layer.weight, layer.bias, *args)
    scale = scatter_oracle(np.abs(xd), np.abs(layer.weight), np.abs(layer.bias), *args)
    fh, fw = layer.kernel_size
    assert_close(y, want, scale, dtype, cin // g * fh * fw, f"layer {case}")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    ref = fastconv.conv_transpose2d_backward(dy, xd, layer.weight, *args)
    for got, exp in zip((dx, layer.grads["weight"], layer.grads["bias"]), ref):
        assert np.array_equal(got, exp)
    assert layer.backward(dy, need_dx=False) is None


def test_parameters_summary_and_repr():
    up = ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2, seed=0)
    assert up.weight.shape == (8, 2, 4, 4)
    assert up.num_params == 4 * 4 * 8 * 2 + 4
    assert repr(up) == "ConvTranspose2d(8, 4, kernel_size=4, stride=2, padding=1, groups=2)"
    net = Sequential(ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2, seed=0), ReLU(),
                     ConvTranspose2d(4, 1, 3, padding=1, bias=False, seed=1))
    summary = net.summary((8, 7, 7))
    assert len(summary.rows) == 3 and summary.output_shape == (1, 14, 14)
    # every input value meets (out/groups)*F*F weights
    assert up.mult_adds((8, 7, 7)) == 8 * 7 * 7 * 2 * 4 * 4
    assert summary.total_params == up.num_params + 4 * 1 * 9
    assert summary.total_mult_adds == up.mult_adds((8, 7, 7)) + 4 * 14 * 14 * 1 * 9
    no_bias = ConvTranspose2d(2, 3, 2, bias=False, dtype=np.float64)
    assert no_bias.bias is None and "bias=False, dtype=float64" in repr(no_bias)


def test_errors():
    with pytest.raises(ValueError, match="output_padding .* must be smaller than the stride"):
        ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="multiples of groups"):
        ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size"):
        ConvTranspose2d(3, 4, 0)
    up = ConvTranspose2d(3, 4, 3, padding=2)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        up(np.ones((1, 2, 4, 4)))
    with pytest.raises(ShapeError, match="at least 1"):
        up(np.ones((1, 3, 1, 1)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        ConvTranspose2d(1, 1, 1).backward(np.ones((1, 1, 1, 1)))
