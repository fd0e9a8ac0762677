"""Modules: forward/backward against the functional API, the oracle and finite
differences; Sequential.summary and the formula errors; validation, repr,
initialisation and dtype handling."""

import io
import math

import numpy as np
import pytest

import fastconv as fc
import fastconv.modules as nn
from fastconv import functional as F

import reference as ref


def numeric_grad(f, x, dy, h=1e-5):
    """d/dx of sum(f(x) * dy) by central differences (float64).

    Conv, linear and average pooling are linear in each argument, so their
    central difference has no truncation error and a large h (1e-3) keeps the
    rounding error small; max and ReLU stay linear within h of x when no two
    compared values are closer than 2h.
    """
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = np.sum(f(x) * dy)
        flat[i] = old - h
        minus = np.sum(f(x) * dy)
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return g


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------- forward

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_forward_matches_functional_and_oracle(rng, dtype):
    layer = nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), dtype=dtype, seed=0)
    layer.bias = rng.standard_normal(5)
    x = rng.standard_normal((2, 3, 9, 7)).astype(dtype)
    y = layer(x)
    assert y.dtype == dtype and y.shape == (2, 5, 5, 6)
    np.testing.assert_array_equal(
        y, F.conv2d(x, layer.weight, layer.bias, (2, 1), (1, 0)))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(
        y, ref.conv2d(x, layer.weight, layer.bias, (2, 1), (1, 0)), rtol=tol, atol=tol)


def test_pool_relu_flatten_linear_forward_match_functional(rng):
    x = rng.standard_normal((2, 3, 7, 7))
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, 1)(x), F.max_pool2d(x, 3, 2, 1))
    np.testing.assert_array_equal(
        nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x),
        F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
    np.testing.assert_allclose(
        nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x),
        ref.avg_pool2d(x, 3, 1, 1, count_include_pad=False), rtol=1e-12)
    np.testing.assert_array_equal(nn.ReLU()(x), np.maximum(x, 0))
    flat = nn.Flatten()(x)
    assert flat.shape == (2, 147)
    np.testing.assert_array_equal(flat, x.reshape(2, -1))
    lin = nn.Linear(147, 4, dtype=np.float64, seed=1)
    lin.bias = [1.0, -2.0, 3.0, 0.5]
    # Linear flattens (N, ...) input itself.
    np.testing.assert_array_equal(lin(x), F.linear(x, lin.weight, lin.bias))
    np.testing.assert_allclose(lin(x), x.reshape(2, -1) @ lin.weight.T + lin.bias,
                               rtol=1e-12)


def test_params_are_used_and_updated_in_place(rng):
    layer = nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, seed=0)
    x = rng.standard_normal((1, 2, 5, 5))
    y0 = layer(x)
    layer.params["bias"] += 1.0
    np.testing.assert_allclose(layer(x), y0 + 1.0, rtol=1e-12)
    assert layer.bias is layer.params["bias"]


# ---------------------------------------------------------------- backward

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_backward_matches_functional(rng, dtype):
    layer = nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=dtype, seed=3)
    x = rng.standard_normal((2, 3, 7, 7)).astype(dtype)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    edx, edw, edb = F.conv2d_backward(dy, x, layer.weight, 2, 1)
    np.testing.assert_array_equal(dx, edx)
    np.testing.assert_array_equal(layer.grads["weight"], edw)
    np.testing.assert_array_equal(layer.grads["bias"], edb)
    assert dx.dtype == layer.grads["weight"].dtype == dtype
    assert layer.backward(dy, need_dx=False) is None
    np.testing.assert_array_equal(layer.grads["weight"], edw)


def test_conv2d_gradients_finite_differences(rng):
    layer = nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 1), dtype=np.float64, seed=0)
    layer.bias = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 5, 4))
    dy = rng.standard_normal(layer(x).shape)
    layer(x)
    dx = layer.backward(dy)
    w0, b0 = layer.weight.copy(), layer.bias.copy()

    def with_w(w):
        return F.conv2d(x, w, b0, (2, 1), (1, 1))

    def with_b(b):
        return F.conv2d(x, w0, b, (2, 1), (1, 1))

    num = numeric_grad(lambda v: F.conv2d(v, w0, b0, (2, 1), (1, 1)), x, dy, h=1e-3)
    assert rel_err(dx, num) < 1e-8
    assert rel_err(layer.grads["weight"], numeric_grad(with_w, w0, dy, h=1e-3)) < 1e-8
    assert rel_err(layer.grads["bias"], numeric_grad(with_b, b0, dy, h=1e-3)) < 1e-8


def test_linear_gradients_finite_differences(rng):
    layer = nn.Linear(12, 5, dtype=np.float64, seed=0)
    layer.bias = rng.standard_normal(5)
    x = rng.standard_normal((3, 3, 2, 2))
    dy = rng.standard_normal((3, 5))
    layer(x)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    w0, b0 = layer.weight.copy(), layer.bias.copy()
    assert rel_err(dx, numeric_grad(lambda v: F.linear(v, w0, b0), x, dy, h=1e-3)) < 1e-8
    assert rel_err(layer.grads["weight"],
                   numeric_grad(lambda w: F.linear(x, w, b0), w0, dy, h=1e-3)) < 1e-8
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.MaxPool2d(2), (2, 3, 6, 4)),
    (lambda: nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 1)), (2, 3, 7, 5)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 7, 5)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 7, 5)),
    (lambda: nn.ReLU(), (2, 3, 7, 5)),
    (lambda: nn.Flatten(), (2, 3, 7, 5)),
], ids=["max2", "max32", "avg3", "avg3_nopad", "relu", "flatten"])
def test_parameterless_layers_finite_differences(rng, make, shape):
    layer = make()
    # Distinct values 0.01 apart and none at 0: max and ReLU stay
    # differentiable within the finite-difference step.
    n = math.prod(shape)
    x = rng.permutation(np.arange(1, n + 1)).reshape(shape) * 0.01 - 0.005 * n
    x = np.where(np.abs(x) < 0.005, 0.005, x)
    y = layer(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    num = numeric_grad(lambda v: make()(v), x, dy, h=1e-3)
    assert rel_err(dx, num) < 1e-8


def test_sequential_backward_finite_differences(rng):
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, seed=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 4, dtype=np.float64, seed=2))
    x = rng.standard_normal((2, 2, 4, 4))
    dy = rng.standard_normal((2, 4))
    net(x)
    dx = net.backward(dy)
    assert rel_err(dx, numeric_grad(lambda v: net.forward(v), x, dy)) < 1e-6
    grads = net.grads
    assert sorted(grads) == ["0.bias", "0.weight", "4.bias", "4.weight"]
    for name, p in net.params.items():
        def f(v, name=name, p=p):
            old = p.copy()
            p[...] = v
            out = net.forward(x)
            p[...] = old
            return out
        assert rel_err(grads[name], numeric_grad(f, p.copy(), dy)) < 1e-6, name


def test_sequential_need_dx_false_keeps_parameter_gradients(rng):
    net = nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, 3, dtype=np.float64, seed=0),
                        nn.Flatten(), nn.Linear(8, 3, dtype=np.float64, seed=1))
    x = rng.standard_normal((2, 1, 4, 4))
    dy = rng.standard_normal((2, 3))
    net(x)
    dx = net.backward(dy)
    full = {k: v.copy() for k, v in net.grads.items()}
    assert dx.shape == x.shape
    assert net.backward(dy, need_dx=False) is None
    for k, v in net.grads.items():
        np.testing.assert_array_equal(v, full[k])


def test_backward_before_forward_raises():
    for layer in (nn.Conv2d(1, 1, 1), nn.Linear(2, 2), nn.MaxPool2d(2),
                  nn.AvgPool2d(2), nn.ReLU(), nn.Flatten()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(np.zeros((1, 1, 1, 1)))


def test_zero_grad_and_grads_keys():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, seed=0), nn.ReLU(), nn.Flatten(),
                        nn.Linear(2, 3, bias=False, seed=1))
    assert list(net.params) == ["0.weight", "0.bias", "3.weight"]
    assert list(net.grads) == list(net.params)
    net[0].bias = [10.0, 10.0]  # keeps the ReLU open
    net(np.ones((1, 1, 3, 3), np.float32))
    net.backward(np.ones((1, 3), np.float32))
    assert np.any(net.grads["3.weight"] != 0)
    net.zero_grad()
    for k, g in net.grads.items():
        assert g.shape == net.params[k].shape and not g.any()


def test_empty_batch_passes_through():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, seed=0), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3, seed=1))
    y = net(np.zeros((0, 1, 4, 4), np.float32))
    assert y.shape == (0, 3)


# ------------------------------------------------------------------ dtypes

def test_modules_compute_in_parameter_dtype(rng):
    layer32 = nn.Conv2d(2, 3, 3, seed=0)
    x64 = rng.standard_normal((1, 2, 5, 5))
    y = layer32(x64)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, layer32(x64.astype(np.float32)))
    assert layer32.backward(np.ones_like(y, dtype=np.float64)).dtype == np.float32
    layer64 = nn.Linear(4, 2, dtype=np.float64, seed=0)
    assert layer64(np.ones((3, 4), np.float32)).dtype == np.float64
    yi = layer64(np.arange(8).reshape(2, 4))
    np.testing.assert_allclose(yi, F.linear(np.arange(8.0).reshape(2, 4), layer64.weight,
                                            layer64.bias))
    for bad in (np.ones((1, 2, 5, 5), complex), np.ones((1, 2, 5, 5), bool)):
        with pytest.raises(TypeError, match=r"Conv2d\(2, 3, kernel_size=3\): input must "
                                            r"hold real numbers"):
            layer32(bad)


def test_pool_and_relu_keep_input_dtype():
    for dtype in (np.float32, np.float64):
        x = np.ones((1, 1, 4, 4), dtype)
        assert nn.MaxPool2d(2)(x).dtype == dtype
        assert nn.AvgPool2d(2)(x).dtype == dtype
        assert nn.ReLU()(x).dtype == dtype


# ------------------------------------------------------- summary and errors

def cs231n_net():
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2, seed=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, seed=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 100, seed=2), nn.ReLU(),
        nn.Linear(100, 10, seed=3))


def test_summary_table_values():
    out = io.StringIO()
    s = cs231n_net().summary((3, 32, 32), file=out)
    shapes = [r[2] for r in s.rows]
    assert shapes == [(32, 32, 32), (32, 32, 32), (32, 16, 16), (64, 16, 16),
                      (64, 16, 16), (64, 8, 8), (4096,), (100,), (100,), (10,)]
    params = [r[3] for r in s.rows]
    assert params == [5 * 5 * 3 * 32 + 32, 0, 0, 3 * 3 * 32 * 64 + 64, 0, 0, 0,
                      4096 * 100 + 100, 0, 100 * 10 + 10]
    macs = [r[4] for r in s.rows]
    assert macs == [32 * 32 * 32 * 75, 0, 0, 64 * 16 * 16 * 288, 0, 0, 0,
                    4096 * 100, 0, 1000]
    assert s.total_params == sum(params) == 431_638
    assert s.total_mult_adds == sum(macs)
    assert s.output_shape == (10,)
    text = out.getvalue()
    assert text.strip() == str(s).strip()
    lines = text.splitlines()
    assert "Conv2d(3, 32, kernel_size=5, padding=2)" in lines[3]
    assert "32 x 32 x 32" in lines[3] and "2,432" in lines[3] and "2,457,600" in lines[3]
    assert lines[-1].split()[-2:] == ["431,638", f"{s.total_mult_adds:,}"]


def test_summary_prints_to_stdout_and_num_params(capsys):
    net = cs231n_net()
    s = net.summary((3, 32, 32))
    assert "total" in capsys.readouterr().out
    assert net.num_params == s.total_params
    assert net[0].num_params == 2432
    net.summary((3, 32, 32), file=False)
    assert capsys.readouterr().out == ""


def test_summary_does_not_run_the_layers(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("summary must not compute")
    monkeypatch.setattr(F, "conv2d", boom)
    monkeypatch.setattr(F, "linear", boom)
    assert cs231n_net().summary((3, 32, 32), file=False).output_shape == (10,)


BAD_NET_MSG = ("Sequential[3] Conv2d(32, 64, kernel_size=5, stride=2): height "
               "(W - F + 2P)/S + 1 = (16 - 5 + 2*0)/2 + 1 = 6.5 is not an integer")


def bad_net():
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, seed=0), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 64, kernel_size=5, stride=2),
                         nn.ReLU())


def test_summary_raises_shape_error_naming_the_layer():
    with pytest.raises(fc.ShapeError) as info:
        bad_net().summary((3, 32, 32), file=False)
    assert str(info.value).startswith(BAD_NET_MSG)
    assert isinstance(info.value, ValueError)


def test_forward_raises_the_same_shape_error():
    with pytest.raises(fc.ShapeError) as info:
        bad_net()(np.zeros((1, 3, 32, 32), np.float32))
    assert str(info.value).startswith(BAD_NET_MSG)


def test_width_error_and_empty_output():
    conv = nn.Conv2d(32, 64, kernel_size=5, stride=2)
    with pytest.raises(fc.ShapeError) as info:
        conv(np.zeros((1, 32, 33, 32), np.float32))
    assert str(info.value).startswith(
        "Conv2d(32, 64, kernel_size=5, stride=2): width (W - F + 2P)/S + 1 = "
        "(32 - 5 + 2*0)/2 + 1 = 14.5")
    net = nn.Sequential(nn.MaxPool2d(2), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3))
    with pytest.raises(fc.ShapeError, match=r"^Sequential\[2\] Conv2d\(1, 1, "
                                            r"kernel_size=3\): height .* less than 1"):
        net.summary((1, 8, 8), file=False)


def test_strict_false_floors_like_pytorch(rng):
    x = rng.standard_normal((1, 2, 8, 8))
    pool = nn.MaxPool2d(3, stride=2, padding=1, strict=False)
    assert repr(pool) == "MaxPool2d(kernel_size=3, stride=2, padding=1, strict=False)"
    y = pool(x)
    assert y.shape == (1, 2, 4, 4)
    np.testing.assert_array_equal(y, ref.max_pool2d(x, 3, 2, 1))
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(pool.backward(dy), ref.max_pool2d_backward(dy, x, 3, 2, 1))
    avg = nn.AvgPool2d(2, stride=3, strict=False)
    np.testing.assert_allclose(avg(x), ref.avg_pool2d(x, 2, 3), rtol=1e-12)
    conv = nn.Conv2d(2, 3, 3, stride=2, dtype=np.float64, seed=0, strict=False)
    assert repr(conv) == "Conv2d(2, 3, kernel_size=3, stride=2, dtype=float64, strict=False)"
    y = conv(x)
    np.testing.assert_allclose(y, ref.conv2d(x, conv.weight, conv.bias, 2, 0), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    edx, edw, edb = ref.conv2d_backward(dy, x, conv.weight, 2, 0)
    np.testing.assert_allclose(dx, edx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(conv.grads["weight"], edw, rtol=1e-12)
    net = nn.Sequential(conv, nn.ReLU(), pool)
    assert net.summary((2, 8, 8), file=False).output_shape == (3, 2, 2)
    with pytest.raises(fc.ShapeError, match="is not an integer"):
        nn.MaxPool2d(3, stride=2, padding=1)(x)


def test_channel_and_feature_mismatch_name_the_layer():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ValueError, match=r"^Sequential\[0\] Conv2d\(3, 4, kernel_size=3\): "
                                         r"expected 3 input channels, got 1"):
        net(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"^Sequential\[2\] Linear\(10, 2\): expected 10 "
                                         r"input features per sample, got 36"):
        net.summary((3, 5, 5), file=False)
    with pytest.raises(ValueError, match="no batch axis"):
        net.summary((1, 3, 5, 5), file=False)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        nn.Conv2d(3, 4, 3)(np.zeros((3, 5, 5)))


# ------------------------------------------------------------- validation

@pytest.mark.parametrize("make, exc, msg", [
    (lambda: nn.Conv2d(0, 8, 3), ValueError, "Conv2d: in_channels must be >= 1, got 0"),
    (lambda: nn.Conv2d(3, -1, 3), ValueError, "Conv2d: out_channels must be >= 1, got -1"),
    (lambda: nn.Conv2d(3.0, 8, 3), TypeError, "Conv2d: in_channels must be an int, got 3.0"),
    (lambda: nn.Conv2d(True, 8, 3), TypeError, "Conv2d: in_channels must be an int, got True"),
    (lambda: nn.Conv2d(3, 8, 0), ValueError, "Conv2d: kernel_size must be >= 1, got 0"),
    (lambda: nn.Conv2d(3, 8, (3, 3, 3)), ValueError,
     "Conv2d: kernel_size must be an int or an (h, w) pair"),
    (lambda: nn.Conv2d(3, 8, 3, stride=(1, 0)), ValueError,
     "Conv2d: stride must be >= 1, got (1, 0)"),
    (lambda: nn.Conv2d(3, 8, 3, padding=-1), ValueError,
     "Conv2d: padding must be >= 0, got -1"),
    (lambda: nn.Conv2d(3, 8, 3, bias="no"), TypeError,
     "Conv2d: bias must be True or False"),
    (lambda: nn.Conv2d(3, 8, 3, dtype=np.int32), TypeError,
     "Conv2d: dtype must be float32 or float64, got int32"),
    (lambda: nn.Linear(0, 3), ValueError, "Linear: in_features must be >= 1, got 0"),
    (lambda: nn.Linear(3, 2, dtype=np.float16), TypeError,
     "Linear: dtype must be float32 or float64, got float16"),
    (lambda: nn.MaxPool2d(0), ValueError, "MaxPool2d: kernel_size must be >= 1, got 0"),
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, "MaxPool2d: stride must be >= 1"),
    (lambda: nn.MaxPool2d(3, padding=2), ValueError,
     "MaxPool2d: padding 2 must be at most half the kernel size 3, i.e. <= 1"),
    (lambda: nn.AvgPool2d((4, 2), padding=(2, 2)), ValueError,
     "AvgPool2d: padding 2 must be at most half the kernel size (4, 2), i.e. <= (2, 1)"),
    (lambda: nn.AvgPool2d(2, count_include_pad=1), TypeError,
     "AvgPool2d: count_include_pad must be True or False"),
    (lambda: nn.MaxPool2d(2, strict=None), TypeError,
     "MaxPool2d: strict must be True or False"),
    (lambda: nn.Sequential(nn.ReLU(), 3), TypeError,
     "Sequential: argument 1 is 3 (int), not a fastconv layer"),
    (lambda: nn.Sequential([nn.ReLU()]), TypeError, "Sequential(*layers), not a list"),
])
def test_constructor_validation(make, exc, msg):
    with pytest.raises(exc) as info:
        make()
    assert msg in str(info.value)


def test_parameter_setter_checks_shape():
    layer = nn.Conv2d(2, 3, 3)
    with pytest.raises(ValueError, match=r"weight must have shape \(3, 2, 3, 3\), "
                                         r"got \(3, 2, 3\)"):
        layer.weight = np.zeros((3, 2, 3))
    layer.bias = [1, 2, 3]
    assert layer.bias.dtype == np.float32
    np.testing.assert_array_equal(layer.bias, [1, 2, 3])
    nobias = nn.Linear(2, 2, bias=False)
    assert nobias.bias is None and "bias" not in nobias.params


# -------------------------------------------------------------------- repr

@pytest.mark.parametrize("layer, text", [
    (nn.Conv2d(32, 64, kernel_size=5, stride=2), "Conv2d(32, 64, kernel_size=5, stride=2)"),
    (nn.Conv2d(3, 8, 3), "Conv2d(3, 8, kernel_size=3)"),
    (nn.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 2), bias=False, dtype=np.float64),
     "Conv2d(3, 8, kernel_size=(3, 5), stride=(1, 2), padding=(1, 2), bias=False, "
     "dtype=float64)"),
    (nn.MaxPool2d(2), "MaxPool2d(kernel_size=2)"),
    (nn.MaxPool2d(2, stride=2), "MaxPool2d(kernel_size=2)"),
    (nn.MaxPool2d(3, 2, 1), "MaxPool2d(kernel_size=3, stride=2, padding=1)"),
    (nn.AvgPool2d(3, 1, 1, count_include_pad=False),
     "AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False)"),
    (nn.Linear(128, 10), "Linear(128, 10)"),
    (nn.Linear(4, 2, bias=False, dtype=np.float64), "Linear(4, 2, bias=False, dtype=float64)"),
    (nn.ReLU(), "ReLU()"),
    (nn.Flatten(), "Flatten()"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
     "Sequential(\n  (0): Conv2d(1, 2, kernel_size=3)\n  (1): ReLU()\n)"),
])
def test_repr(layer, text):
    assert repr(layer) == text


# ------------------------------------------------------------------- init

def test_init_reproducible_with_seed():
    a, b = nn.Conv2d(3, 8, 3, seed=7), nn.Conv2d(3, 8, 3, seed=7)
    np.testing.assert_array_equal(a.weight, b.weight)
    c = nn.Conv2d(3, 8, 3, seed=8)
    assert not np.array_equal(a.weight, c.weight)
    np.testing.assert_array_equal(nn.Linear(5, 4, seed=np.random.default_rng(3)).weight,
                                  nn.Linear(5, 4, seed=np.random.default_rng(3)).weight)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_he_initialisation(dtype):
    conv = nn.Conv2d(64, 128, 3, dtype=dtype, seed=0)
    assert conv.weight.dtype == dtype and conv.bias.dtype == dtype
    assert conv.weight.shape == (128, 64, 3, 3)
    assert not conv.bias.any()
    n = conv.weight.size
    std = math.sqrt(2.0 / (64 * 9))
    # The sample std of n normals is within a few std / sqrt(2n) of the truth.
    assert abs(conv.weight.std() - std) < 5 * std / math.sqrt(2 * n)
    assert abs(conv.weight.mean()) < 5 * std / math.sqrt(n)
    lin = nn.Linear(1000, 300, dtype=dtype, seed=1)
    std = math.sqrt(2.0 / 1000)
    assert abs(lin.weight.std() - std) < 5 * std / math.sqrt(2 * lin.weight.size)
    assert lin.num_params == 1000 * 300 + 300


def test_num_params_formula():
    assert nn.Conv2d(3, 16, (5, 3)).num_params == 5 * 3 * 3 * 16 + 16
    assert nn.Conv2d(3, 16, (5, 3), bias=False).num_params == 5 * 3 * 3 * 16
    assert nn.MaxPool2d(2).num_params == 0
    assert nn.ReLU().params == {} and nn.Flatten().grads == {}


def test_modules_are_exported_at_top_level():
    for name in ("Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU", "Flatten",
                 "Sequential"):
        assert getattr(fc, name) is getattr(nn, name)
