"""fastconv.torch on every sample input of PyTorch's own OpInfo database.

For each OpInfo entry of an op that fastconv.torch provides, every sample of
``op.reference_inputs("cpu", dtype, requires_grad=True)`` (its
``sample_inputs``, and its reference inputs where it has them) in float32
and float64, through the eager path and through the custom operators,
goes through the fastconv.torch function and through torch's, with the same
arguments; the outputs (and indices, where returned) and the gradients of a
randomly weighted sum of the output, with respect to every floating-point
tensor argument that requires a gradient, must agree.

The module inputs of PyTorch's ModuleInfo database for the torch.nn classes
that ``fastconv.torch.convert`` replaces run the same way, the torch module
against its converted copy (this covers lp_pool2d, which has no OpInfo entry).

A sample that fastconv does not compute itself (an argument outside what its
kernels take) goes to torch's function through the documented fallback: it
must then give torch's result all the same.

Skipped where torch, or ``expecttest`` (which ``torch.testing._internal``
imports), is not installed.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")
common_methods_invocations = pytest.importorskip(
    "torch.testing._internal.common_methods_invocations")

import fastconv.torch as ft  # noqa: E402

# PyTorch's own notes on its samples (padding="same" makes a padded copy).
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

#: OpInfo name -> the fastconv.torch function that replaces it.
FUNCTIONS = {
    "nn.functional.conv1d": ft.conv1d,
    "nn.functional.conv2d": ft.conv2d,
    "nn.functional.conv_transpose2d": ft.conv_transpose2d,
    "nn.functional.max_pool2d": ft.max_pool2d,
    "nn.functional.avg_pool2d": ft.avg_pool2d,
    "nn.functional.lp_pool2d": ft.lp_pool2d,
    "nn.functional.adaptive_avg_pool2d": ft.adaptive_avg_pool2d,
    "nn.functional.adaptive_max_pool2d": ft.adaptive_max_pool2d,
    "nn.functional.linear": ft.linear,
    "nn.functional.relu": ft.relu,
}

OPS = [op for op in common_methods_invocations.op_db if op.name in FUNCTIONS]

# Sums over up to a few hundred products: float32 results differ from
# torch's in the last bits, float64 ones hardly at all.
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.float64: dict(rtol=1e-11, atol=1e-11)}
GRAD_TOL = {torch.float32: dict(rtol=2e-5, atol=1e-4),
            torch.float64: dict(rtol=1e-11, atol=1e-10)}


#: The reasons fastconv.torch documents for handing a float32 or float64 CPU
#: call to torch's function; any other fallback on these samples is a failure.
DOCUMENTED_FALLBACKS = ["not smaller than the stride"]


def _op_id(op):
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def _float_tensors(sample):
    """The floating-point tensor arguments of a sample that require a gradient."""
    found = [sample.input] + list(sample.args) + list(sample.kwargs.values())
    return [t for t in found if isinstance(t, torch.Tensor) and t.is_floating_point()
            and t.requires_grad]


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _describe(sample):
    def show(a):
        if isinstance(a, torch.Tensor):
            return f"tensor{tuple(a.shape)}"
        return repr(a)
    parts = [show(sample.input)] + [show(a) for a in sample.args]
    parts += [f"{k}={show(v)}" for k, v in sample.kwargs.items()]
    return "(" + ", ".join(parts) + ")"


def _check_sample(op, fn, sample, dtype, gen):
    """Differences between fastconv's and torch's results on one sample, as
    strings (empty when they agree)."""
    args, kwargs = sample.args, sample.kwargs
    inputs = _float_tensors(sample)
    return _compare(lambda: op(sample.input, *args, **kwargs),
                    lambda: fn(sample.input, *args, **kwargs), inputs, inputs, dtype, gen)


def _compare(torch_call, fastconv_call, torch_inputs, fastconv_inputs, dtype, gen):
    """Differences between the two calls' outputs, and between their
    gradients with respect to ``torch_inputs`` and ``fastconv_inputs`` (the
    same tensors, or matching ones), as strings (empty when they agree)."""
    want = _outputs(torch_call())
    ft._warned.clear()          # so that this sample's fallback, if any, warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ft.FallbackWarning)
        got = _outputs(fastconv_call())
    for w in caught:
        if issubclass(w.category, ft.FallbackWarning) and \
                not any(why in str(w.message) for why in DOCUMENTED_FALLBACKS):
            return [f"went to torch: {w.message}"]
    if len(got) != len(want):
        return [f"{len(got)} outputs, torch gives {len(want)}"]
    problems = []
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or g.dtype != w.dtype:
            problems.append(f"output {i}: {g.dtype}{tuple(g.shape)}, torch gives "
                            f"{w.dtype}{tuple(w.shape)}")
        elif w.is_floating_point():
            if not torch.allclose(g, w, equal_nan=True, **TOL[dtype]):
                err = (g - w).abs().nan_to_num().max().item()
                problems.append(f"output {i}: max difference {err:.3g}")
        elif not torch.equal(g, w):
            problems.append(f"output {i} (indices) differs")
    if problems or not torch_inputs or not want[0].requires_grad:
        return problems
    weights = torch.randn(want[0].shape, generator=gen, dtype=dtype)
    want_grads = torch.autograd.grad((want[0] * weights).sum(), torch_inputs,
                                     allow_unused=True)
    got_grads = torch.autograd.grad((got[0] * weights).sum(), fastconv_inputs,
                                    allow_unused=True)
    for i, (g, w) in enumerate(zip(got_grads, want_grads)):
        if w is None:
            w = torch.zeros_like(torch_inputs[i])
        if g is None:
            g = torch.zeros_like(fastconv_inputs[i])
        if g.shape != w.shape:
            problems.append(f"gradient {i}: shape {tuple(g.shape)}, torch gives "
                            f"{tuple(w.shape)}")
        elif not torch.allclose(g, w, equal_nan=True, **GRAD_TOL[dtype]):
            err = (g - w).abs().nan_to_num().max().item()
            problems.append(f"gradient {i} ({tuple(w.shape)}): max difference {err:.3g}")
    return problems


class _Passthrough(torch.utils._python_dispatch.TorchDispatchMode):
    """Runs every operator as it is; while it is active, fastconv.torch's
    calls go through PyTorch's dispatcher instead of the eager path."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("path", ["eager", "dispatcher"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("op", OPS, ids=_op_id)
def test_opinfo_samples_match_torch(op, dtype, path):
    """Each OpInfo sample (``reference_inputs``: the samples and, where the
    entry has them, its reference inputs), through the eager path and
    through the custom operators."""
    fn = FUNCTIONS[op.name]
    gen = torch.Generator().manual_seed(0)
    failures = []
    count = 0
    for sample in op.reference_inputs("cpu", dtype, requires_grad=True):
        count += 1
        try:
            if path == "dispatcher":
                with _Passthrough():
                    problems = _check_sample(op, fn, sample, dtype, gen)
            else:
                problems = _check_sample(op, fn, sample, dtype, gen)
        except Exception as exc:  # every sample is reported, not only the first
            problems = [f"raised {type(exc).__name__}: {exc}"]
        if problems:
            failures.append(f"{_describe(sample)}: {'; '.join(problems)}")
    assert count > 0, f"{_op_id(op)} has no samples"
    assert not failures, (f"{len(failures)} of {count} samples differ:\n"
                          + "\n".join(failures[:30]))


def test_every_op_has_an_opinfo_entry():
    # lp_pool2d has none in PyTorch's database (the ModuleInfo samples of
    # torch.nn.LPPool2d below cover it); every other op must be found, or this
    # file tests nothing.
    found = {op.name for op in OPS}
    assert found == set(FUNCTIONS) - {"nn.functional.lp_pool2d"}


# ------------------------------------------------ the ModuleInfo database

common_modules = pytest.importorskip("torch.testing._internal.common_modules")

#: PyTorch's ModuleInfo entries of the torch.nn classes that convert replaces.
MODULES = [m for m in common_modules.module_db if m.module_cls in ft._REPLACEMENTS]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("module_info", MODULES, ids=lambda m: m.name)
def test_moduleinfo_samples_match_torch(module_info, dtype):
    """Each module input of PyTorch's ModuleInfo database: the torch module
    against its converted copy, outputs and the gradients in the input and
    every parameter."""
    gen = torch.Generator().manual_seed(0)
    failures = []
    count = 0
    for sample in module_info.module_inputs_func(module_info, device="cpu", dtype=dtype,
                                                 requires_grad=True, training=True):
        if sample.forward_input is None:
            continue
        count += 1
        c, f = sample.constructor_input, sample.forward_input
        ref = module_info.module_cls(*c.args, **c.kwargs).to(dtype)
        mine = ft.convert(ref)
        inputs = [t for t in list(f.args) + list(f.kwargs.values())
                  if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
        # convert copies the parameters: the copy's gradients must be torch's.
        try:
            problems = _compare(lambda: ref(*f.args, **f.kwargs),
                                lambda: mine(*f.args, **f.kwargs),
                                inputs + list(ref.parameters()),
                                inputs + list(mine.parameters()), dtype, gen)
        except Exception as exc:
            problems = [f"raised {type(exc).__name__}: {exc}"]
        if problems:
            failures.append(f"{module_info.name}({c.args}, {c.kwargs}) on "
                            f"{[tuple(t.shape) for t in inputs]}: {'; '.join(problems)}")
    assert count > 0
    assert not failures, "\n".join(failures)
