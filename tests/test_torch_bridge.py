"""fastconv.torch: each op against torch.nn.functional on a table of sample
inputs (values and gradients, both dtypes), gradcheck, opcheck, the
fallback to torch's kernels, the modules, convert, and torch.compile.

Skipped where torch is not installed.
"""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
TF = torch.nn.functional

import fastconv.torch as ft  # noqa: E402

# PyTorch's note on its own padded copy (the reference side of a sample).
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-5, atol=2e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}
GRAD_TOL = {torch.float32: dict(rtol=1e-5, atol=1e-4),
            torch.float64: dict(rtol=1e-12, atol=1e-11)}


# ------------------------------------------------------------ the samples

class T:
    """A tensor argument of a sample: its shape and how the op sees it
    ("contig", "sliced": every other column of a wider tensor,
    "channels_last", "transposed": a permuted view); ``positive`` draws
    |x| + 0.1 (LP pooling with a p that gives NaN on negative values, as
    PyTorch's does)."""

    def __init__(self, *shape, view="contig", grad=True, positive=False):
        self.shape, self.view, self.grad, self.positive = shape, view, grad, positive

    def leaf(self, gen, dtype):
        shape = list(self.shape)
        if self.view == "sliced":
            shape[-1] *= 2
        if self.view == "transposed":
            shape = shape[::-1]
        t = torch.randn(shape, generator=gen, dtype=dtype)
        if self.positive:
            t = t.abs() + 0.1
        if self.view == "channels_last":
            t = t.contiguous(memory_format=torch.channels_last)
        return t.requires_grad_(self.grad)

    def view_of(self, leaf):
        if self.view == "sliced":
            return leaf[..., ::2]
        if self.view == "transposed":
            return leaf.permute(*reversed(range(leaf.dim())))
        return leaf


def S(*args, **kwargs):
    return pytest.param(args, kwargs, id=_sample_id(args, kwargs))


def _sample_id(args, kwargs):
    parts = ["x".join(map(str, a.shape)) + ("" if a.view == "contig" else f"-{a.view}")
             if isinstance(a, T) else repr(a) for a in args]
    parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    return ",".join(parts).replace(" ", "")


SAMPLES = {
    "conv2d": [
        S(T(2, 3, 8, 8), T(4, 3, 3, 3), T(4)),
        S(T(2, 3, 9, 8), T(4, 3, 3, 3), T(4), stride=2, padding=1),
        S(T(1, 3, 9, 7), T(5, 3, 3, 2), None, stride=(2, 1), padding=(1, 0)),
        S(T(2, 3, 8, 8), T(4, 3, 4, 2), T(4), padding="same"),
        S(T(2, 3, 10, 9), T(4, 3, 3, 3), T(4), padding="same", dilation=2),
        S(T(2, 3, 8, 8), T(4, 3, 3, 3), T(4), padding="valid", dilation=(2, 1), stride=(2,)),
        S(T(2, 4, 7, 7), T(6, 2, 3, 3), T(6), padding=1, groups=2),
        S(T(1, 4, 6, 6), T(4, 1, 3, 3), None, padding=1, groups=4),
        S(T(2, 8, 5, 5), T(3, 8, 1, 1), T(3)),
        S(T(3, 8, 8), T(4, 3, 3, 3), T(4), padding=1),
        S(T(2, 3, 8, 8, view="sliced"), T(4, 3, 3, 3), T(4), padding=1),
        S(T(2, 3, 8, 8, view="channels_last"), T(4, 3, 3, 3, view="channels_last"), None),
        S(T(2, 3, 8, 8), T(4, 3, 3, 3, view="transposed"), T(4), stride=3, padding=2),
    ],
    "conv1d": [
        S(T(2, 3, 12), T(4, 3, 3), T(4)),
        S(T(2, 3, 12), T(4, 3, 3), None, stride=2, padding=1),
        S(T(2, 3, 11), T(4, 3, 4), T(4), padding="same", dilation=2),
        S(T(2, 4, 10), T(6, 2, 3), T(6), padding=(2,), groups=2),
        S(T(3, 12), T(4, 3, 3), T(4), padding="valid"),
        S(T(2, 3, 12, view="sliced"), T(4, 3, 3), T(4), padding=1),
    ],
    "conv_transpose2d": [
        S(T(2, 3, 5, 5), T(3, 4, 3, 3), T(4)),
        S(T(2, 3, 4, 5), T(3, 2, 3, 3), T(2), stride=2, padding=1, output_padding=1),
        S(T(1, 4, 4, 4), T(4, 3, 3, 2), None, stride=(2, 3), output_padding=(1, 2)),
        S(T(2, 4, 5, 5), T(4, 2, 3, 3), T(4), groups=2, padding=1),
        S(T(2, 3, 5, 5), T(3, 4, 3, 3), T(4), dilation=2, stride=2, output_padding=1),
        S(T(3, 5, 5), T(3, 4, 3, 3), T(4), stride=2),
        S(T(2, 3, 5, 5, view="sliced"), T(3, 4, 3, 3, view="transposed"), T(4)),
    ],
    "max_pool2d": [
        S(T(2, 3, 8, 8), 2),
        S(T(2, 3, 9, 9), 3, 2, 1),
        S(T(2, 3, 9, 8), (3, 2), stride=(1, 2), padding=(1, 0)),
        S(T(2, 3, 8, 8), 2, return_indices=True),
        S(T(3, 7, 7), 3, 2, return_indices=True),
        S(T(2, 3, 8, 8, view="sliced"), 2, stride=[]),
        S(T(2, 3, 8, 8, view="channels_last"), 3, 1, 1),
        S(T(2, 3, 9, 9), 3, 2, dilation=2),
        S(T(2, 3, 8, 8), 3, 2, 1, ceil_mode=True, return_indices=True),
        S(T(3, 10, 9), 2, 3, ceil_mode=True),
    ],
    "avg_pool2d": [
        S(T(2, 3, 8, 8), 2),
        S(T(2, 3, 9, 9), 3, 2, 1),
        S(T(2, 3, 9, 9), 3, 2, 1, count_include_pad=False),
        S(T(2, 3, 9, 8), (3, 2), stride=(1, 2), padding=(1, 0)),
        S(T(3, 7, 7), 3, 2),
        S(T(2, 3, 8, 8, view="sliced"), 2, 1),
        S(T(2, 3, 8, 8), 3, 2, 1, ceil_mode=True),
        S(T(2, 3, 8, 8), 3, 2, 1, ceil_mode=True, count_include_pad=False),
        S(T(2, 3, 8, 8), 2, divisor_override=3),
    ],
    "lp_pool2d": [
        S(T(2, 3, 8, 8), 2.0, 2),
        S(T(2, 3, 9, 8, positive=True), 3.0, (3, 2), stride=(2, 1)),
        S(T(2, 3, 9, 9, positive=True), 1.5, 2, ceil_mode=True),
        # NaN where PyTorch has NaN: the output at a window with an x < 0,
        # the gradient over all of that window (overlapping windows too).
        S(T(2, 3, 6, 6), 1.5, 2),
        S(T(2, 3, 7, 7), 1.5, 3, 1, ceil_mode=True),
        S(T(3, 8, 8), 2, 2),
        S(T(2, 3, 8, 8), float("inf"), 2),
        S(T(2, 3, 8, 8, view="sliced"), 2.0, 3, 2),
    ],
    "adaptive_avg_pool2d": [
        S(T(2, 3, 8, 8), 2),
        S(T(2, 3, 7, 5), (3, None)),
        S(T(2, 3, 5, 5), (2, 3)),
        S(T(3, 9, 6), 4),
        S(T(2, 3, 8, 8, view="sliced"), 3),
    ],
    "adaptive_max_pool2d": [
        S(T(2, 3, 8, 8), 2),
        S(T(2, 3, 7, 5), (3, None), True),
        S(T(3, 9, 6), 4, return_indices=True),
        S(T(2, 3, 8, 8, view="sliced"), (5, 3)),
    ],
    "linear": [
        S(T(4, 3), T(5, 3), T(5)),
        S(T(3), T(5, 3), T(5)),
        S(T(2, 4, 3), T(5, 3), None),
        S(T(4, 6, view="transposed"), T(5, 6), T(5)),
        S(T(2, 3, 8, view="sliced"), T(5, 8, view="transposed"), T(5)),
    ],
    "relu": [
        S(T(2, 3, 4)),
        S(T(7)),
        S(T(2, 3, 8, view="sliced")),
    ],
}

ALL = [pytest.param(op, *s.values, marks=s.marks, id=f"{op}-{s.id}")
       for op, samples in SAMPLES.items() for s in samples]


def _build(args, kwargs, dtype, seed=0):
    """The leaves (for gradients) and the op's arguments made of them."""
    gen = torch.Generator().manual_seed(seed)
    leaves, call = [], []
    for a in args:
        if isinstance(a, T):
            leaf = a.leaf(gen, dtype)
            leaves.append(leaf)
            call.append(a.view_of(leaf))
        else:
            call.append(a)
    return leaves, call


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


def _compare(op, args, kwargs, dtype):
    leaves, call = _build(args, kwargs, dtype)
    mine = _outputs(getattr(ft, op)(*call, **kwargs))
    leaves_t, call_t = _build(args, kwargs, dtype)
    theirs = _outputs(getattr(TF, op)(*call_t, **kwargs))
    assert len(mine) == len(theirs)
    for m, t in zip(mine, theirs):
        assert m.shape == t.shape and m.dtype == t.dtype
        if m.dtype == torch.int64:
            torch.testing.assert_close(m, t, rtol=0, atol=0)
        else:
            torch.testing.assert_close(m, t, equal_nan=True, **TOL[dtype])
    if not any(leaf.requires_grad for leaf in leaves):
        return
    g = torch.randn(mine[0].shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    grads = torch.autograd.grad(mine[0], leaves, g)
    grads_t = torch.autograd.grad(theirs[0], leaves_t, g)
    for a, b in zip(grads, grads_t):
        torch.testing.assert_close(a, b, equal_nan=True, **GRAD_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op,args,kwargs", ALL)
def test_matches_torch(op, args, kwargs, dtype):
    _compare(op, args, kwargs, dtype)


GRADCHECK = [pytest.param(op, *samples[i].values, marks=samples[i].marks, id=op)
             for op, samples in SAMPLES.items() for i in (1,)]


@pytest.mark.parametrize("op,args,kwargs", GRADCHECK)
def test_gradcheck(op, args, kwargs):
    leaves, _ = _build(args, kwargs, torch.float64)

    def fn(*ls):
        call, it = [], iter(ls)
        for a in args:
            call.append(a.view_of(next(it)) if isinstance(a, T) else a)
        return _outputs(getattr(ft, op)(*call, **kwargs))[0]

    assert torch.autograd.gradcheck(fn, tuple(leaves))


def test_max_pool_gradient_goes_to_the_first_maximum():
    x = torch.tensor([[[[1.0, 3.0], [3.0, 0.0]]]], requires_grad=True)
    ft.max_pool2d(x, 2).sum().backward()
    assert x.grad.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


def test_relu_inplace():
    x = torch.tensor([-1.0, 2.0])
    assert ft.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    leaf = torch.tensor([-1.0, 2.0], requires_grad=True)
    y = leaf * 1
    ft.relu(y, inplace=True).sum().backward()
    assert leaf.grad.tolist() == [0.0, 1.0]


def test_no_copy_of_contiguous_inputs():
    t = torch.randn(2, 3, 4, 4)
    a = ft._np(t)
    assert np.shares_memory(a, t.numpy()) and a.flags.c_contiguous
    s = t[..., ::2]
    assert np.shares_memory(ft._np(s), t.numpy())   # a view: fastconv copies once, itself
    y = ft.conv2d(t, torch.randn(2, 3, 1, 1))
    assert y.is_contiguous()


# ----------------------------------------------------------- argument errors

@pytest.mark.parametrize("call,error,match", [
    (lambda x, w: ft.conv2d(x, w, stride="a"), TypeError, "stride"),
    (lambda x, w: ft.conv2d(x, w, padding="full"), ValueError, "'valid' or 'same'"),
    (lambda x, w: ft.conv2d(x, w, stride=2, padding="same"), ValueError, "stride 1"),
    (lambda x, w: ft.conv2d(x[None], w), ValueError, "3-D"),
    (lambda x, w: ft.conv2d(x, w[0]), ValueError, "weight must be 4-D"),
    (lambda x, w: ft.conv2d(x, torch.ones(2, 3, 9, 9)), ValueError, "larger"),
    (lambda x, w: ft.conv2d(x, w, groups=2), ValueError, "groups"),
    (lambda x, w: ft.max_pool2d(x, 2, padding=2), ValueError, "half"),
    (lambda x, w: ft.max_pool2d(x, (2, 2, 2)), TypeError, "kernel_size"),
    (lambda x, w: ft.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda x, w: ft.linear(x, torch.ones(4, 3)), ValueError, "features"),
    (lambda x, w: ft.lp_pool2d(x, "2", 2), TypeError, "norm_type"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.ones(2, 3, 6, 6), torch.ones(4, 3, 3, 3))


# ---------------------------------------------------- what goes back to torch

@pytest.fixture
def fresh_warnings():
    ft._warned.clear()
    yield
    ft._warned.clear()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_falls_back_once(dtype, fresh_warnings):
    x = torch.randn(1, 2, 6, 6).to(dtype)
    w = torch.randn(3, 2, 3, 3).to(dtype)
    with pytest.warns(ft.FallbackWarning, match=f"conv2d: tensors of dtype {dtype}"):
        y = ft.conv2d(x, w, padding=1)
    torch.testing.assert_close(y, TF.conv2d(x, w, padding=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft.conv2d(x, w, padding=1)          # warned once per op only
    with pytest.warns(ft.FallbackWarning, match="max_pool2d"):
        assert ft.max_pool2d(x, 2).dtype == dtype


def test_output_padding_beyond_the_stride_goes_to_torch(fresh_warnings):
    # PyTorch takes an output_padding below the dilation; fastconv's kernels
    # only one below the stride.
    x, w = torch.randn(1, 2, 4, 4, dtype=torch.float64), torch.randn(2, 3, 3, 3,
                                                                      dtype=torch.float64)
    with pytest.warns(ft.FallbackWarning, match=r"output_padding \(2, 2\) not smaller"):
        y = ft.conv_transpose2d(x, w, stride=2, output_padding=2, dilation=3)
    torch.testing.assert_close(y, TF.conv_transpose2d(x, w, stride=2, output_padding=2,
                                                      dilation=3))
    with pytest.raises(ValueError, match="smaller than the stride"):
        ft.conv_transpose2d(x, w, stride=2, output_padding=2)   # torch refuses it too


def test_other_dtypes_go_to_torch(fresh_warnings):
    with pytest.warns(ft.FallbackWarning, match="int64"):
        assert ft.relu(torch.tensor([-2, 3])).tolist() == [0, 3]
    with pytest.warns(ft.FallbackWarning, match="float32 and torch.float64"):
        with pytest.raises(RuntimeError):     # torch's own refusal of mixed dtypes
            ft.linear(torch.ones(2, 3), torch.ones(4, 3, dtype=torch.float64))


def test_meta_tensors_get_shapes(fresh_warnings):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, w = torch.empty(2, 3, 9, 9, device="meta"), torch.empty(4, 3, 3, 3, device="meta")
        y = ft.conv2d(x, w, stride=2, padding="valid")
        assert y.device.type == "meta" and y.shape == TF.conv2d(x, w, stride=2).shape
        assert ft.max_pool2d(x, 3, 2, 1, return_indices=True)[1].dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_falls_back(fresh_warnings):  # pragma: no cover - needs a GPU
    x = torch.randn(1, 2, 6, 6, device="cuda")
    with pytest.warns(ft.FallbackWarning, match="cuda"):
        assert ft.avg_pool2d(x, 2).device.type == "cuda"


# ------------------------------------------------------------------ opcheck

def _r(*shape, dtype=torch.float64, grad=True):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(3)
                       ).requires_grad_(grad)


OPCHECK = [
    ("conv2d", lambda: (_r(2, 3, 7, 7), _r(4, 3, 3, 3), _r(4), [1, 1], [1, 1, 1, 1], [1, 1], 1)),
    ("conv2d", lambda: (_r(1, 4, 8, 7), _r(6, 2, 2, 3), None, [2, 1], [0, 1, 1, 2], [1, 2], 2)),
    ("conv2d_backward", lambda: (_r(2, 4, 7, 7, grad=False), _r(2, 3, 7, 7, grad=False),
                                 _r(4, 3, 3, 3, grad=False), [1, 1], [1, 1, 1, 1], [1, 1], 1,
                                 True)),
    ("conv_transpose2d", lambda: (_r(2, 3, 4, 4), _r(3, 2, 3, 3), _r(2), [2, 2], [1, 1],
                                  [1, 1], 1, [1, 1])),
    ("conv_transpose2d_backward", lambda: (_r(2, 2, 8, 8, grad=False), _r(2, 3, 4, 4, grad=False),
                                           _r(3, 2, 3, 3, grad=False), [2, 2], [1, 1], [1, 1], 1,
                                           [1, 1], False)),
    ("max_pool2d", lambda: (_r(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], [1, 1], False)),
    ("max_pool2d_backward", lambda: (_r(2, 3, 4, 4, grad=False), _r(2, 3, 7, 7, grad=False),
                                     TF.max_pool2d(_r(2, 3, 7, 7, grad=False), 3, 2, 1,
                                                   return_indices=True)[1],
                                     [3, 3], [2, 2], [1, 1], [1, 1], False)),
    ("avg_pool2d", lambda: (_r(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], False, False, None)),
    ("avg_pool2d_backward", lambda: (_r(2, 3, 4, 4, grad=False), [2, 3, 7, 7], [3, 3], [2, 2],
                                     [1, 1], False, True, None)),
    ("linear", lambda: (_r(2, 5, 3), _r(4, 3), _r(4))),
    ("linear_backward", lambda: (_r(2, 5, 4, grad=False), _r(2, 5, 3, grad=False),
                                 _r(4, 3, grad=False))),
    ("relu", lambda: (_r(3, 4),)),
    ("relu_backward", lambda: (_r(3, 4, grad=False), _r(3, 4, grad=False))),
    ("lp_pool2d", lambda: (_r(2, 3, 6, 6), 2.0, [2, 2], [2, 2], False)),
    ("adaptive_avg_pool2d", lambda: (_r(2, 3, 7, 6), [3, 2])),
    ("adaptive_max_pool2d", lambda: (_r(2, 3, 7, 6), [3, 2])),
    ("lp_pool2d_backward", lambda: (_r(2, 3, 3, 3, grad=False), _r(2, 3, 6, 6, grad=False), 2.0,
                                    [2, 2], [2, 2], False)),
    ("adaptive_avg_pool2d_backward", lambda: (_r(2, 3, 3, 2, grad=False), [2, 3, 7, 6], [3, 2])),
    ("adaptive_max_pool2d_backward", lambda: (_r(2, 3, 3, 2, grad=False),
                                              _r(2, 3, 7, 6, grad=False), [3, 2])),
]


@pytest.mark.parametrize("name,sample", OPCHECK, ids=lambda v: v if isinstance(v, str) else "")
def test_opcheck(name, sample):
    torch.library.opcheck(getattr(torch.ops.fastconv, name), sample())


# ------------------------------------------------------------------ modules

MODULES = [
    ("Conv1d", (3, 4, 3), dict(stride=2, padding=1), (2, 3, 11)),
    ("Conv1d", (3, 4, 4), dict(padding="same", padding_mode="reflect"), (2, 3, 11)),
    ("Conv2d", (3, 4, 3), dict(padding=1), (2, 3, 8, 8)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=2, groups=2, dilation=(1, 2), bias=False),
     (2, 4, 9, 9)),
    ("Conv2d", (3, 4, 3), dict(padding=2, padding_mode="reflect"), (2, 3, 8, 8)),
    ("Conv2d", (3, 4, 3), dict(padding=(1, 2), padding_mode="circular"), (3, 8, 8)),
    ("ConvTranspose2d", (3, 4, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 5, 5)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1), (2, 3, 9, 9)),
    ("MaxPool2d", (2,), dict(return_indices=True), (3, 8, 8)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 9, 9)),
    ("LPPool2d", (2, 2), {}, (2, 3, 8, 8)),
    ("AdaptiveAvgPool2d", ((3, None),), {}, (2, 3, 8, 7)),
    ("AdaptiveMaxPool2d", (2,), dict(return_indices=True), (2, 3, 8, 7)),
    ("Linear", (6, 5), {}, (2, 3, 6)),
    ("ReLU", (), {}, (2, 3, 4)),
    ("ReLU", (), dict(inplace=True), (2, 3, 4)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", [
    pytest.param(*m, id=f"{m[0]}-{i}") for i, m in enumerate(MODULES)])
def test_module_matches_torch(name, args, kwargs, shape):
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(*args, **kwargs).double()
    mine = getattr(ft, name)(*args, **kwargs).double()
    assert isinstance(mine, type(ref)) and repr(mine) == repr(ref)
    mine.load_state_dict(ref.state_dict())
    assert mine.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(shape, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = _outputs(mine(xa * 1)), _outputs(ref(xb * 1))
    for a, b in zip(ya, yb):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    ya[0].sum().backward()
    yb[0].sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=1e-12)
    for (n, pa), (_, pb) in zip(mine.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-12, atol=1e-11, msg=n)


def test_conv_transpose_output_size():
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    mine = ft.convert(ref)
    x = torch.randn(1, 2, 4, 4)
    for size in ((7, 7), (8, 8), (7, 8)):
        torch.testing.assert_close(mine(x, output_size=size), ref(x, output_size=size),
                                   **TOL[torch.float32])


class _MyConv(torch.nn.Conv2d):
    def forward(self, x):
        return super().forward(x) * 2


def _cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"), torch.nn.ReLU(),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(6 * 2 * 2, 3))


def test_convert_replaces_the_torch_layers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(_cnn(), _MyConv(3, 3, 1), torch.nn.Linear(3, 2).half())
    model[1] = torch.nn.Identity()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast, report = ft.convert(model, report=True)
    assert type(model[0][0]) is torch.nn.Conv2d            # the original stays torch's
    assert [type(m).__module__ for m in fast[0]] == ["fastconv.torch"] * 6 + [
        "torch.nn.modules.flatten", "fastconv.torch"]
    assert [name for name, _ in report.converted] == ["0.0", "0.1", "0.2", "0.3", "0.4",
                                                      "0.5", "0.7"]
    assert report.kept == [("2", "Linear", "its parameters and buffers are tensors of "
                                           "dtype torch.float16")]
    assert "kept 2 (Linear)" in str(report)
    for k, v in fast.state_dict().items():
        assert torch.equal(v, before[k])
    assert ft.convert(_MyConv(3, 3, 1), report=True)[1].converted == []
    assert type(ft.convert(torch.nn.ReLU())) is ft.ReLU
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ft.convert(lambda x: x)


def test_convert_keeps_hooks_and_mode():
    seen = []
    conv = torch.nn.Conv2d(1, 2, 3)
    conv.register_forward_hook(lambda m, args, out: seen.append(type(m).__name__))
    conv.eval()
    fast = ft.convert(conv)
    assert type(fast) is ft.Conv2d and not fast.training
    fast(torch.ones(1, 1, 4, 4))
    assert seen == ["Conv2d"] and fast._forward_hooks


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_training_matches_torch(dtype):
    torch.manual_seed(0)
    ref = _cnn().to(dtype)
    fast = ft.convert(ref)
    x = torch.randn(8, 1, 8, 8, dtype=dtype)
    labels = torch.randint(0, 3, (8,))
    losses = []
    for model in (ref, fast):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        run = []
        for _ in range(5):
            opt.zero_grad()
            loss = TF.cross_entropy(model(x), labels)
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    assert losses[0][-1] < losses[0][0]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4 if dtype == torch.float32
                               else 1e-10)


# ------------------------------------------------------------------ compile

def _compiled_grads(backend, model, x):
    torch._dynamo.reset()
    fn = torch.compile(model, fullgraph=True, backend=backend)
    y = fn(x)
    y.square().sum().backward()
    return y, [p.grad.clone() for p in model.parameters()]


def _compare_compiled(backend, model, shape):
    x = torch.randn(shape)
    ref = _cnn() if model is None else model
    y, grads = _compiled_grads(backend, ft.convert(ref), x)
    yt = ref(x)
    yt.square().sum().backward()
    torch.testing.assert_close(y, yt, rtol=1e-4, atol=1e-5)
    for g, p in zip(grads, ref.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-4)


def test_compile_default_backend():
    torch.manual_seed(0)
    _compare_compiled("inductor", None, (4, 1, 8, 8))


def test_compile_aot_eager_every_layer():
    torch.manual_seed(0)
    layers = [torch.nn.Conv1d(2, 3, 3, padding="same")]
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(4, 4, 2, stride=2), torch.nn.MaxPool2d(3, 2, 1),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5))
    _compare_compiled("aot_eager", model, (3, 2, 8, 8))
    conv1 = torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(3 * 7, 2))
    _compare_compiled("aot_eager", conv1, (3, 2, 7))


def test_compile_aot_eager_new_pools():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.LPPool2d(2, 2),
        torch.nn.AdaptiveMaxPool2d(3), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(16, 3))
    _compare_compiled("aot_eager", model, (3, 2, 8, 8))


def test_compile_dynamic_shapes():
    torch.manual_seed(0)
    model = ft.convert(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.MaxPool2d(2)))
    torch._dynamo.reset()
    fn = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=True)
    for n, h in ((2, 8), (3, 11)):
        x = torch.randn(n, 1, h, h)
        torch.testing.assert_close(fn(x), model(x))


def test_export_keeps_the_operators():
    torch.manual_seed(0)
    model = ft.convert(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(),
                                           torch.nn.MaxPool2d(2)))
    x = torch.randn(2, 1, 8, 8)
    program = torch.export.export(model, (x,))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"fastconv.conv2d.default", "fastconv.relu.default",
            "fastconv.max_pool2d.default"} <= ops
    torch.testing.assert_close(program.module()(x), model(x))


# ------------------------------------------------- eager calls and the dispatcher

class _Recorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the operators that reach the dispatcher."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("grad", [False, True])
def test_eager_calls_skip_the_dispatcher(grad, monkeypatch):
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=grad)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=grad)
    want = TF.max_pool2d(TF.relu(TF.conv2d(x, w, padding=1)), 2)

    def refuse(*args):
        raise AssertionError("the dispatcher was called")

    for op in (ft._conv2d_op, ft._conv2d_backward_op, ft._relu_op, ft._relu_backward_op,
               ft._max_pool2d_op, ft._max_pool2d_backward_op):
        monkeypatch.setattr(op, "op", refuse)
    y = ft.max_pool2d(ft.relu(ft.conv2d(x, w, padding=1)), 2)
    torch.testing.assert_close(y, want)
    assert y.requires_grad == grad
    if grad:
        dy = torch.randn(y.shape, dtype=torch.float64)
        got = torch.autograd.grad(y, (x, w), dy)
        torch.testing.assert_close(got, torch.autograd.grad(want, (x, w), dy))


def test_a_dispatch_mode_sees_the_operators():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    with _Recorder() as rec:
        y = ft.relu(ft.conv2d(x, w, padding=1))
        y.sum().backward()
    assert "fastconv.conv2d.default" in rec.ops and "fastconv.relu.default" in rec.ops
    assert "fastconv.conv2d_backward.default" in rec.ops
    torch.testing.assert_close(y, TF.relu(TF.conv2d(x, w, padding=1)))


def test_no_double_backward():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(ft.conv2d(x, w).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(dx.sum(), w)


def test_no_grad_mode_builds_no_graph():
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    with torch.no_grad():
        y = ft.conv2d(x, w)
    assert not y.requires_grad and y.grad_fn is None
    torch.testing.assert_close(y, TF.conv2d(x, w).detach())


def test_routes():
    x = torch.randn(2, 3)
    assert ft._route((x, [1, 1])) == ft._BODY
    assert ft._route((x.requires_grad_(), [1, 1])) == ft._AUTOGRAD
    with torch.no_grad():
        assert ft._route((x,)) == ft._BODY
    assert ft._route((torch.empty(2, device="meta"),)) == ft._DISPATCHER
    with _Recorder():
        assert ft._route((x,)) == ft._DISPATCHER


def test_routes_under_functorch():
    x = torch.randn(2, 3)
    seen = []
    torch.func.grad(lambda t: (seen.append(ft._route((t, [1]))), t.sum())[1])(x)
    torch.func.vmap(lambda t: (seen.append(ft._route((t,))), t)[1])(x)
    assert seen == [ft._FUNCTORCH, ft._FUNCTORCH]


# ------------------------------------------------------------ torch.func

def _conv_relu_loss(f):
    def loss(x, w, b):
        return f.relu(f.conv2d(x, w, b, padding=1)).square().sum()
    return loss


def test_func_grad_and_jacrev_match_torch():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    got = torch.func.grad(_conv_relu_loss(ft), argnums=(0, 1, 2))(x, w, b)
    want = torch.func.grad(_conv_relu_loss(TF), argnums=(0, 1, 2))(x, w, b)
    torch.testing.assert_close(got, want)
    xs = x[:1, :1, :4, :4]
    torch.testing.assert_close(torch.func.jacrev(lambda t: ft.max_pool2d(t, 2))(xs),
                               torch.func.jacrev(lambda t: TF.max_pool2d(t, 2))(xs))
    lw = torch.randn(5, 6, dtype=torch.float64)
    lx = torch.randn(3, 6, dtype=torch.float64)
    _, vjp = torch.func.vjp(lambda t: ft.linear(t, lw), lx)
    _, vjp_t = torch.func.vjp(lambda t: TF.linear(t, lw), lx)
    dy = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(vjp(dy), vjp_t(dy))
    with pytest.raises(NotImplementedError):      # no forward-mode formula
        torch.func.jvp(ft.relu, (lx,), (torch.ones_like(lx),))


def test_func_vmap_and_per_sample_gradients_match_torch():
    torch.manual_seed(1)
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64)

    def conv(f):
        return lambda t: f.conv2d(t.unsqueeze(0), w, padding=1)

    torch.testing.assert_close(torch.func.vmap(conv(ft))(x), torch.func.vmap(conv(TF))(x))
    y, idx = torch.func.vmap(lambda t: ft.max_pool2d(t, 2, return_indices=True))(x)
    y_t, idx_t = TF.max_pool2d(x, 2, return_indices=True)
    torch.testing.assert_close(y, y_t)
    assert torch.equal(idx, idx_t)

    def per_sample(f):
        def loss(w, t):
            return f.conv2d(t.unsqueeze(0), w, padding=1).square().sum()
        return torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(w, x)

    torch.testing.assert_close(per_sample(ft), per_sample(TF))

    def batched_loss(f):
        return lambda v: torch.func.vmap(lambda t: f.conv2d(t.unsqueeze(0), v))(x).sum()

    torch.testing.assert_close(torch.func.grad(batched_loss(ft))(w),
                               torch.func.grad(batched_loss(TF))(w))


def test_remembered_geometries_follow_the_settings():
    # The bridge works a geometry out once per op, shapes and settings: a
    # change of any of them is another geometry, and settings that give none
    # raise on every call.
    torch.manual_seed(2)
    x = torch.randn(1, 2, 9, 8, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    for kw in (dict(padding=1), dict(padding=0), dict(stride=2), dict(dilation=2),
               dict(padding=(1, 0)), dict(padding=1)):
        torch.testing.assert_close(ft.conv2d(x, w, **kw), TF.conv2d(x, w, **kw))
        torch.testing.assert_close(ft.max_pool2d(x, 3, **kw), TF.max_pool2d(x, 3, **kw))
    for _ in range(2):
        with pytest.raises(ValueError):
            ft.conv2d(x[:, :, :2], w)
        with pytest.raises(ValueError):
            ft.max_pool2d(x, 2, padding=2)
    ft._geometries.clear()
    for h in range(5, 5 + ft._GEOMETRIES_MAX + 3):
        ft.conv2d(torch.ones(1, 1, h, 3), torch.ones(1, 1, 1, 1))
        assert len(ft._geometries) <= ft._GEOMETRIES_MAX


def test_eager_autograd_formulas_are_the_registered_ones():
    for op in (ft._conv2d_op, ft._max_pool2d_op, ft._linear_op, ft._relu_op):
        assert op.function.forward is op.body
        assert issubclass(op.function, torch.autograd.Function)
    assert ft._conv2d_backward_op.function is None
