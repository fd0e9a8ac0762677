"""Losses against hand-computed values, finite differences and PyTorch;
optimisers against hand-written update rules and torch.optim."""

import math

import numpy as np
import pytest

import fastconv.modules as nn
from fastconv.losses import multiclass_hinge, softmax_cross_entropy
from fastconv.optim import SGD, Adam


def numeric_grad(f, x, h=1e-6):
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x)
        x[i] = old - h
        minus = f(x)
        x[i] = old
        g[i] = (plus - minus) / (2 * h)
    return g


# -------------------------------------------------------------- softmax

def test_softmax_cross_entropy_hand_values():
    scores = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    loss, d = softmax_cross_entropy(scores, [2, 0])
    e = np.exp([1.0, 2.0, 3.0])
    expect = ((math.log(e.sum()) - 3.0) + math.log(3.0)) / 2
    assert isinstance(loss, float)
    assert loss == pytest.approx(expect, rel=1e-14)
    p0 = e / e.sum()
    np.testing.assert_allclose(d, np.array([[p0[0], p0[1], p0[2] - 1],
                                            [1 / 3 - 1, 1 / 3, 1 / 3]]) / 2, rtol=1e-14)
    assert d.sum() == pytest.approx(0.0, abs=1e-15)


def test_softmax_cross_entropy_is_stable_for_huge_scores():
    scores = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, -1e4]])
    loss, d = softmax_cross_entropy(scores, [2, 0])
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert loss == pytest.approx((2000.0 + math.log(2.0)) / 2, rel=1e-12)
    loss32, d32 = softmax_cross_entropy(scores.astype(np.float32), [2, 0])
    assert d32.dtype == np.float32 and np.all(np.isfinite(d32))
    assert loss32 == pytest.approx(loss, rel=1e-6)


def test_softmax_cross_entropy_gradient_finite_differences():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((4, 6)) * 3
    y = np.array([0, 5, 2, 2])
    _, d = softmax_cross_entropy(scores, y)
    num = numeric_grad(lambda s: softmax_cross_entropy(s, y)[0], scores)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


def test_loss_dtypes_and_inputs_untouched():
    s = np.arange(6, dtype=np.int64).reshape(2, 3)
    loss, d = softmax_cross_entropy(s, np.array([1, 2], np.uint8))
    assert d.dtype == np.float64
    s32 = np.ones((2, 3), np.float32)
    before = s32.copy()
    for fn in (softmax_cross_entropy, multiclass_hinge):
        _, d = fn(s32, [0, 1])
        assert d.dtype == np.float32
        np.testing.assert_array_equal(s32, before)


def test_losses_are_exported_at_top_level():
    import fastconv
    assert fastconv.softmax_cross_entropy is softmax_cross_entropy
    assert fastconv.multiclass_hinge is multiclass_hinge


# ---------------------------------------------------------------- hinge

CS231N_SCORES = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
CS231N_Y = np.array([0, 1, 2])


def test_multiclass_hinge_hand_values():
    loss, d = multiclass_hinge(CS231N_SCORES, CS231N_Y)
    # The lecture's cat / car / frog example: per-image losses 2.9, 0 and 12.9.
    assert loss == pytest.approx((2.9 + 0.0 + 12.9) / 3, rel=1e-12)
    np.testing.assert_array_equal(d * 3, [[-1, 1, 0], [0, 0, 0], [1, 1, -2]])
    loss0, d0 = multiclass_hinge(CS231N_SCORES, CS231N_Y, margin=0.0)
    assert loss0 == pytest.approx((1.9 + 0.0 + 10.9) / 3, rel=1e-12)
    np.testing.assert_array_equal(d0 * 3, [[-1, 1, 0], [0, 0, 0], [1, 1, -2]])
    loss5, _ = multiclass_hinge(CS231N_SCORES, CS231N_Y, margin=5)
    assert loss5 == pytest.approx((6.9 + 0.1 + 1.4 + 2.1 + 10.3 + 10.6) / 3, rel=1e-12)


def test_multiclass_hinge_gradient_finite_differences():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    _, d = multiclass_hinge(scores, y, margin=0.7)
    num = numeric_grad(lambda s: multiclass_hinge(s, y, margin=0.7)[0], scores)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------- validation

@pytest.mark.parametrize("fn", [softmax_cross_entropy, multiclass_hinge])
@pytest.mark.parametrize("scores, y, exc, msg", [
    (np.ones((2, 3)), [0, 3], ValueError, "labels must be in [0, 3), got y[1] = 3"),
    (np.ones((2, 3)), [-1, 0], ValueError, "labels must be in [0, 3), got y[0] = -1"),
    (np.ones((2, 3)), [0.0, 1.0], TypeError, "y must hold integer class labels"),
    (np.ones((2, 3)), [0, 1, 2], ValueError, "y must have shape (2,)"),
    (np.ones((2, 3)), [[0, 1]], ValueError, "y must have shape (2,)"),
    (np.ones(3), [0], ValueError, "scores must have shape (N, C)"),
    (np.ones((0, 3)), np.zeros(0, int), ValueError, "the batch is empty"),
    (np.ones((2, 3), complex), [0, 1], TypeError, "scores must hold real numbers"),
])
def test_loss_validation(fn, scores, y, exc, msg):
    with pytest.raises(exc) as info:
        fn(scores, y)
    assert msg in str(info.value)
    assert str(info.value).startswith(fn.__name__)


def test_hinge_margin_validation():
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        multiclass_hinge(np.ones((1, 2)), [0], margin=-1.0)
    with pytest.raises(TypeError, match="margin must be a real number"):
        multiclass_hinge(np.ones((1, 2)), [0], margin="1")


# ------------------------------------------------------ losses vs torch

def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((7, 5)) * 4
    y = rng.integers(0, 5, 7)
    ts = torch.tensor(scores, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(ts, torch.tensor(y))
    tl.backward()
    loss, d = softmax_cross_entropy(scores, y)
    assert loss == pytest.approx(tl.item(), rel=1e-12)
    np.testing.assert_allclose(d, ts.grad.numpy(), rtol=1e-10, atol=1e-15)

    # torch's multi_margin_loss also divides by the number of classes.
    ts = torch.tensor(scores, requires_grad=True)
    tl = torch.nn.functional.multi_margin_loss(ts, torch.tensor(y), margin=1.5)
    tl.backward()
    loss, d = multiclass_hinge(scores, y, margin=1.5)
    assert loss / 5 == pytest.approx(tl.item(), rel=1e-12)
    np.testing.assert_allclose(d / 5, ts.grad.numpy(), rtol=1e-10, atol=1e-15)


# ------------------------------------------------------------ optimisers

class Owner:
    """The smallest params/grads holder an optimiser accepts."""

    def __init__(self, params):
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def zero_grad(self):
        for k in self.grads:
            self.grads[k] = np.zeros_like(self.params[k])


def test_sgd_plain_momentum_and_weight_decay_by_hand():
    g = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-1.0, 4.0])]
    p0 = np.array([0.3, -0.7])

    own = Owner({"w": p0})
    opt = SGD(own, lr=0.1)
    own.grads["w"] = g[0]
    opt.step()
    np.testing.assert_allclose(own.params["w"], p0 - 0.1 * g[0], rtol=1e-15)

    own = Owner({"w": p0})
    opt = SGD(own, lr=0.1, momentum=0.9, weight_decay=0.01)
    p, v = p0.copy(), None
    for gi in g:
        own.grads["w"] = gi
        opt.step()
        d = gi + 0.01 * p
        v = d if v is None else 0.9 * v + d
        p = p - 0.1 * v
        np.testing.assert_allclose(own.params["w"], p, rtol=1e-14)

    own = Owner({"w": p0})
    opt = SGD(own, lr=0.1, momentum=0.5, nesterov=True)
    p, v = p0.copy(), None
    for gi in g:
        own.grads["w"] = gi
        opt.step()
        v = gi if v is None else 0.5 * v + gi
        p = p - 0.1 * (gi + 0.5 * v)
        np.testing.assert_allclose(own.params["w"], p, rtol=1e-14)


def test_adam_by_hand():
    g = [np.array([1.0, -2.0, 0.0]), np.array([0.5, 0.5, 1e-3]), np.array([-1.0, 4.0, 2.0])]
    p = np.array([0.3, -0.7, 1.0])
    own = Owner({"w": p})
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.99, 1e-6, 0.1
    opt = Adam(own, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    m = v = np.zeros(3)
    for t, gi in enumerate(g, start=1):
        own.grads["w"] = gi
        opt.step()
        d = gi + wd * p
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d * d
        mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
        np.testing.assert_allclose(own.params["w"], p, rtol=1e-13)
    # The first step of Adam moves every coordinate with a gradient by ~lr.
    own = Owner({"w": np.zeros(3)})
    own.grads["w"] = np.array([1e-3, -50.0, 0.0])
    Adam(own, lr=0.01).step()
    np.testing.assert_allclose(own.params["w"], [-0.01, 0.01, 0.0], rtol=1e-4)


def small_model(dtype, seed=0):
    return nn.Sequential(nn.Linear(6, 5, dtype=dtype, seed=seed), nn.ReLU(),
                         nn.Linear(5, 3, dtype=dtype, seed=seed + 1))


def test_optimiser_updates_sequential_in_place():
    model = small_model(np.float64)
    ids = {k: id(v) for k, v in model.params.items()}
    before = {k: v.copy() for k, v in model.params.items()}
    opt = SGD(model, lr=0.5)
    x = np.random.default_rng(0).standard_normal((4, 6))
    model(x)
    model.backward(np.ones((4, 3)))
    grads = {k: v.copy() for k, v in model.grads.items()}
    opt.step()
    for k, p in model.params.items():
        assert id(p) == ids[k]
        np.testing.assert_allclose(p, before[k] - 0.5 * grads[k], rtol=1e-15)
    assert model[0].weight is model.params["0.weight"]


def test_optimiser_validation():
    own = Owner({"w": [1.0]})
    with pytest.raises(ValueError, match="SGD: lr must be a finite number >= 0, got -0.1"):
        SGD(own, lr=-0.1)
    with pytest.raises(ValueError, match="SGD: nesterov=True needs momentum > 0"):
        SGD(own, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Adam: betas\[1\] must be < 1, got 1.0"):
        Adam(own, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Adam: betas must be a pair"):
        Adam(own, betas=0.9)
    with pytest.raises(TypeError, match="Adam: lr must be a real number"):
        Adam(own, lr="fast")
    with pytest.raises(TypeError, match="expected a model with params and grads"):
        SGD(object(), lr=0.1)
    own.grads = {}
    with pytest.raises(RuntimeError, match="no gradient for 'w'"):
        SGD(own, lr=0.1).step()


# -------------------------------------------------- optimisers vs torch

CONFIGS = [
    (SGD, "SGD", dict(lr=0.1)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.9)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    (Adam, "Adam", dict()),
    (Adam, "Adam", dict(lr=3e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=5e-3)),
]


@pytest.mark.parametrize("cls, tname, kwargs", CONFIGS,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CONFIGS)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimisers_match_torch(cls, tname, kwargs, dtype):
    torch = pytest.importorskip("torch")
    model = small_model(dtype)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True)
               for k, v in model.params.items()}
    topt = getattr(torch.optim, tname)(list(tparams.values()), **kwargs)
    opt = cls(model, **kwargs)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6)).astype(dtype)
    y = rng.integers(0, 3, 8)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for _ in range(6):
        # Gradients come from fastconv; both optimisers apply the same ones.
        scores = model(x)
        _, d = softmax_cross_entropy(scores, y)
        model.backward(d)
        for k, tp in tparams.items():
            tp.grad = torch.tensor(model.grads[k].copy())
        opt.step()
        topt.step()
        for k, tp in tparams.items():
            np.testing.assert_allclose(model.params[k], tp.detach().numpy(),
                                       rtol=tol, atol=tol * 1e-2, err_msg=k)
