"""PyTorch bridge: fastconv's CPU kernels as PyTorch operators and modules.

The functions here take ``torch.nn.functional``'s arguments, with the same
names, defaults and forms (an int or a tuple; ``padding="same"`` and
``"valid"``; unbatched inputs (C, H, W), or (C, L) for ``conv1d``), and give
its results, computed by fastconv::

    import torch
    import fastconv.torch as ft

    y = ft.max_pool2d(ft.relu(ft.conv2d(x, w, b, padding=1)), 2)
    y.sum().backward()                  # the gradients come from fastconv too

    model = ft.convert(model)           # torch.nn layers -> fastconv's subclasses

Each op is a custom operator of the ``fastconv`` namespace
(``torch.ops.fastconv.conv2d``, ``torch.ops.fastconv.conv2d_backward``, ...)
registered with ``torch.library.custom_op``: it has a fake implementation
(the output's shape from torch's own meta kernel of the same op), so it works
under ``torch.compile`` (also with ``fullgraph=True``) and ``torch.export``,
and an autograd formula that calls the matching ``*_backward`` operator, so
``backward()`` and ``torch.autograd.grad`` work.  Double backward is not
available.  ``conv1d`` runs ``fastconv::conv2d`` on a height-1 view;
``lp_pool2d`` with ``norm_type`` = +-inf is max pooling of ``|x|``, as in
PyTorch.

**What fastconv computes, and what it hands back to PyTorch.**  fastconv
computes calls whose tensors are all float32, or all float64, on the CPU
(strided layout).  The tensors reach the kernels as NumPy views, without a
copy where the kernels can read them as they are (C-contiguous); results come
back through ``torch.from_numpy``.  Meta tensors get the output's shape
without computing.  Any other call - float16 or bfloat16, integer tensors,
tensors on a GPU, mixed dtypes, sparse tensors - is computed by
``torch.nn.functional``'s own function instead, and the first such call of
each op warns with a :class:`FallbackWarning` (once per op and process) that
says why.  The modules follow the same rule.

Errors: bad arguments raise fastconv's ValueError or TypeError (a
:class:`fastconv.ShapeError` for an output-size formula that gives no
positive size) before anything computes, where PyTorch raises RuntimeError.

**Eager calls.**  On plain CPU tensors outside torch.compile, tracing,
dispatch modes and functorch transforms, a call runs the operator's body
directly (through a ``torch.autograd.Function`` with the registered gradient
formula when an input requires a gradient), skipping the dispatcher's
per-call cost; the results are the same.

**torch.func.**  Under ``torch.func`` transforms (``grad``, ``vjp``,
``jacrev``, ``vmap`` and their compositions, such as per-sample gradients
``vmap(grad(f))``) the ops run through that ``torch.autograd.Function``,
which functorch can differentiate; ``vmap`` runs the op once per entry of the
mapped axis.  Forward-mode transforms (``jvp``, ``jacfwd``) are not
available.

**Modules.**  :class:`Conv1d`, :class:`Conv2d`, :class:`ConvTranspose2d`,
:class:`MaxPool2d`, :class:`AvgPool2d`, :class:`LPPool2d`,
:class:`AdaptiveAvgPool2d`, :class:`AdaptiveMaxPool2d`, :class:`Linear` and
:class:`ReLU` subclass the ``torch.nn`` modules of the same names: same
constructor, parameters, buffers and ``state_dict``; their forward runs the
functions above.  A convolution whose ``padding_mode`` is not ``"zeros"``
pads with ``torch.nn.functional.pad`` first, as PyTorch's own forward does.
:func:`convert` turns a model's torch modules into these.

Importing this module needs PyTorch; ``import fastconv`` does not.
"""

import copy
import dataclasses
import math
import numbers
import warnings
from typing import (Any, Callable, Dict, List, Literal, Optional, Sequence, Set, Tuple, Union,
                    cast, overload)

import numpy as np

try:
    import torch
    import torch.nn.functional as TF
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastconv.torch needs PyTorch: pip install 'fastconv[torch]' "
                      f"(or pip install torch) ({_exc})", name=_exc.name) from None

from . import _validate
from . import functional as F
from ._shapes import ConvGeometry, conv_geometry, pool_geometry

__all__ = ["conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "lp_pool2d",
           "adaptive_avg_pool2d", "adaptive_max_pool2d", "linear", "relu",
           "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "LPPool2d",
           "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Linear", "ReLU",
           "convert", "ConversionReport", "FallbackWarning"]

#: A torch.Tensor (typed loosely: PyTorch's own annotations are not relied on).
Tensor = Any
#: An int, or a tuple of ints (one per spatial axis, or a single one for all).
IntOrTuple = Union[int, Sequence[int]]

_FLOATS = (torch.float32, torch.float64)
_Ints = Sequence[int]


class FallbackWarning(UserWarning):
    """A call that fastconv does not compute went to ``torch.nn.functional``.

    Issued once per op and process, by the op's first call whose tensors are
    not all float32 or all float64 on the CPU; ``warnings.simplefilter("error",
    FallbackWarning)`` turns such calls into errors.

    >>> import torch, fastconv.torch as ft
    >>> issubclass(ft.FallbackWarning, UserWarning)
    True
    """


# ----------------------------------------------------------------- helpers

#: The ops that have issued their FallbackWarning.
_warned: Set[str] = set()


def _unserved(*tensors: Optional[Tensor]) -> Optional[str]:
    """Why fastconv cannot compute on ``tensors`` (None when it can)."""
    # The common case first, in few attribute reads: this runs on every call.
    dtype = None
    for t in tensors:
        if t is None:
            continue
        if dtype is None:
            dtype = t.dtype
        if t.dtype is not dtype or t.layout is not torch.strided or not (t.is_cpu or t.is_meta):
            break
    else:
        if dtype is None or dtype in _FLOATS:
            return None
    ts = [t for t in tensors if t is not None]
    devices = sorted({str(t.device) for t in ts if t.device.type not in ("cpu", "meta")})
    if devices:
        return f"tensors on {', '.join(devices)}"
    if any(t.layout != torch.strided for t in ts):
        return "a tensor of layout " + str(next(t.layout for t in ts
                                                if t.layout != torch.strided))
    dtypes = sorted({str(t.dtype) for t in ts})
    if len(dtypes) > 1:
        return "tensors of dtypes " + " and ".join(dtypes)
    if ts and ts[0].dtype not in _FLOATS:
        return f"tensors of dtype {ts[0].dtype}"
    return None


def _fall_back(op: str, reason: Optional[str],
               rule: str = "fastconv computes float32 or float64 tensors on the CPU") -> None:
    if op not in _warned:
        _warned.add(op)
        warnings.warn(f"fastconv.torch.{op}: {reason}: {rule}; torch.nn.functional.{op} "
                      f"computes this call (warned once per op)", FallbackWarning, stacklevel=3)


def _np(t: Tensor) -> "np.ndarray[Any, Any]":
    """A NumPy view of a CPU tensor (its strides as they are: fastconv makes
    the contiguous copy its kernels need, when they need one)."""
    # force=True drops the gradient in C++ (no detached tensor object); on a
    # CPU tensor of a float dtype it makes no copy.
    return t.numpy(force=True)  # type: ignore[no-any-return]


def _ints(value: object, n: int, what: str, where: str) -> Tuple[int, ...]:
    """An int, or a sequence of 1 or n ints, as n ints (PyTorch's forms)."""
    if type(value) is int:          # the common forms first, without the checks below
        return (value,) * n
    if type(value) is tuple and len(value) == n and all(type(v) is int for v in value):
        return value
    items = list(value) if isinstance(value, (tuple, list, torch.Size)) else [value]
    if len(items) == 1:
        items = items * n
    if len(items) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                  for v in items):
        raise TypeError(f"{where}: {what} must be an int or a tuple of {n} ints, got {value!r}")
    return tuple(int(v) for v in cast(List[numbers.Integral], items))


def _pair(v: Sequence[int]) -> Tuple[int, int]:
    return int(v[0]), int(v[1])


def _spatial(x: Tensor, batched: int, where: str, layout: str) -> bool:
    """Whether x lacks the batch axis (it has ``batched - 1`` axes)."""
    if x.dim() not in (batched - 1, batched):
        raise ValueError(f"{where}: expected a {batched - 1}-D (unbatched) or {batched}-D "
                         f"{layout} input, got shape {tuple(x.shape)}")
    return bool(x.dim() == batched - 1)


#: Tensor types that the eager path computes on directly: a subclass (a fake
#: or functional tensor of a tracer, or a user's) goes through the dispatcher.
_PLAIN = (torch.Tensor, torch.nn.Parameter)


#: How ``_route`` sends a call: through the dispatcher, straight to the
#: operator's body, to the body inside the operator's autograd.Function, or
#: to that Function through functorch (``torch.func.grad``, ``vmap``, ...).
_DISPATCHER, _BODY, _AUTOGRAD, _FUNCTORCH = 0, 1, 2, 3

_functorch_active = torch._C._are_functorch_transforms_active
_dispatch_modes = torch._C._len_torch_dispatch_stack
_tracing = torch._C._get_tracing_state
_is_compiling = torch.compiler.is_compiling


def _route(args: Tuple[Any, ...]) -> int:
    """How a call on ``args`` runs.  It skips PyTorch's dispatcher on CPU
    tensors of the plain types with no compiler, tracer, dispatch mode or
    functorch transform watching (each of those must see the operator
    itself), and then needs autograd when an input requires a gradient.
    Under functorch transforms (``torch.func.grad``, ``vmap``, ...), the
    operator's autograd.Function runs through functorch, which can
    differentiate it (not the registered formula) and batch it."""
    if _is_compiling() or _dispatch_modes() or _tracing():
        return _DISPATCHER
    if _functorch_active():
        cpu = all(a.is_cpu for a in args if isinstance(a, torch.Tensor))
        return _FUNCTORCH if cpu else _DISPATCHER
    grad = False
    for a in args:
        if isinstance(a, torch.Tensor):
            if type(a) not in _PLAIN or not a.is_cpu or _is_functorch_wrapper(a):
                return _DISPATCHER
            grad = grad or a.requires_grad
    return _AUTOGRAD if grad and torch.is_grad_enabled() else _BODY


#: What ``_served`` returns for a call that fastconv does not compute.
_UNSERVED = -1


def _served(*tensors: Optional[Tensor]) -> int:
    """The route (``_route``) of a public function's call on ``tensors``, or
    ``_UNSERVED`` when fastconv does not compute them (``_unserved`` says
    why): both tests in one pass over the tensors, as this runs on every
    call.  The ops' other arguments are settings, never tensors."""
    # Under a compiler, tracer or dispatch mode the tensors are not looked
    # at beyond what _unserved reads (a compiler would have to trace more).
    if _is_compiling() or _dispatch_modes() or _tracing():
        route = _DISPATCHER
    elif _functorch_active():
        route = _FUNCTORCH
    else:
        route = _BODY
    dtype = None
    grad = False
    for t in tensors:
        if t is None:
            continue
        if dtype is None:
            dtype = t.dtype
        if t.dtype is not dtype or t.layout is not torch.strided:
            return _UNSERVED
        if t.is_cpu:
            if route == _BODY:
                if type(t) not in _PLAIN or _is_functorch_wrapper(t):
                    route = _DISPATCHER
                elif t.requires_grad:
                    grad = True
        elif t.is_meta:
            route = _DISPATCHER
        else:
            return _UNSERVED
    if dtype is not None and dtype not in _FLOATS:
        return _UNSERVED
    return _AUTOGRAD if grad and route == _BODY and torch.is_grad_enabled() else route


#: Whether a tensor is a functorch wrapper (one that outlived its transform
#: looks like a plain tensor otherwise).
_is_functorch_wrapper = torch._C._functorch.is_functorch_wrapped_tensor


class _Operator:
    """A ``fastconv::<name>`` custom operator (``self.op``), called either
    through PyTorch's dispatcher or, in eager mode, straight into its body.

    The dispatcher costs tens of microseconds per call, more than the kernels
    of a small layer; in eager mode on plain CPU tensors it adds nothing the
    body does not do, so the call skips it: the body runs as it is when no
    input needs a gradient, and inside the operator's own
    ``torch.autograd.Function`` (``self.function``: the body as its forward,
    the registered setup and gradient formula) when one does.  Under
    torch.compile, export, tracing, fake or functional tensors or a dispatch
    mode, the operator runs as registered; under ``torch.func`` transforms
    the Function does (functorch cannot differentiate the registered
    formula), with a vmap rule that runs it once per batch entry.
    """

    def __init__(self, name: str, body: Callable[..., Any]) -> None:
        self.name = name
        self.body = body
        self.op = torch.library.custom_op(f"fastconv::{name}", mutates_args=(),
                                          device_types="cpu")(body)
        self.register_fake = self.op.register_fake
        self.function: Any = None       # the autograd.Function, once registered
        self.apply: Optional[Callable[..., Any]] = None

    def register_autograd(self, grad: Callable[..., Any],
                          setup_context: Callable[..., Any]) -> None:
        self.op.register_autograd(grad, setup_context=setup_context)
        self.function = function = _autograd_function(self.name, self.body, setup_context,
                                                      grad)
        # Function.apply's Python layer binds default arguments (the bodies
        # have none) and unwraps dead functorch wrappers (_route has turned
        # those away): eager calls take its C++ part directly.
        base: Any = super(torch.autograd.Function, function)
        self.apply = base.apply

    def __call__(self, *args: Any) -> Any:
        return self.run(_route(args), *args)

    def run(self, route: int, *args: Any) -> Any:
        """Runs the operator on ``args`` by ``route`` (``_route(args)``)."""
        if route == _BODY:
            return self.body(*args)
        if route == _AUTOGRAD and self.apply is not None:
            return self.apply(*args)
        if route == _FUNCTORCH and self.function is not None:
            return self.function.apply(*args)
        return self.op(*args)       # (without a formula, the dispatcher's error)


def _autograd_function(name: str, body: Callable[..., Any], setup: Callable[..., Any],
                       grad: Callable[..., Any]) -> Any:
    """The ``torch.autograd.Function`` of an operator: ``body`` as its
    forward, ``setup`` as its ``setup_context`` and ``grad`` (which gives a
    gradient or None per argument of the operator) as its backward, the same
    three that the operator registers."""

    @torch.autograd.function.once_differentiable  # type: ignore[untyped-decorator]
    def backward(ctx: Any, *grads: Any) -> Any:
        return grad(ctx, *grads)

    def vmap(info: Any, in_dims: Tuple[Optional[int], ...], *args: Any) -> Any:
        # The kernels take one batch already: a vmap runs the op once per
        # entry of the mapped axis and stacks the results along axis 0.
        # (in_dims mirrors the arguments: a list of settings has a list of Nones)
        outs = [cls.apply(*(a.select(d, i) if isinstance(d, int) else a
                            for a, d in zip(args, in_dims)))
                for i in range(info.batch_size)]
        if isinstance(outs[0], tuple):
            stacked = tuple(torch.stack(parts) for parts in zip(*outs))
            return stacked, (0,) * len(stacked)
        return torch.stack(outs), 0

    cls: Any = type(f"_{name}_function", (torch.autograd.Function,),
                    {"forward": staticmethod(body), "setup_context": staticmethod(setup),
                     "backward": staticmethod(backward), "vmap": staticmethod(vmap),
                     "__module__": __name__})
    return cls


def _op(name: str) -> Callable[[Callable[..., Any]], _Operator]:
    """The CPU operator ``fastconv::<name>`` (``torch.library.custom_op``),
    which changes none of its arguments."""
    return lambda body: _Operator(name, body)


# ------------------------------------------------- the operators: convolution
#
# The operators take their arguments normalised (every window setting a list
# of ints, a convolution's padding as [top, bottom, left, right]); the public
# functions below turn PyTorch's forms into these.  A fake implementation
# states the output's shape by torch's own meta kernel of the op, so that the
# shape rule is PyTorch's under tracing too; its outputs are contiguous, as
# the real ones are.

#: Geometries already worked out, by op, shapes and settings (see
#: ``_conv_geometry``).
_geometries: Dict[Tuple[Any, ...], Any] = {}
_GEOMETRIES_MAX = 256


def _remember(key: Tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """``make()``, the geometry of ``key``, worked out once: a network calls
    the same shapes again and again, and working one out costs more than a
    small layer's kernels.  Settings that give no geometry raise every time
    (they are not kept)."""
    geom = _geometries.get(key)
    if geom is None:
        geom = make()
        if len(_geometries) >= _GEOMETRIES_MAX:
            _geometries.clear()
        _geometries[key] = geom
    return geom


def _conv_geometry(x: Tensor, w: Tensor, stride: Sequence[int], padding: Sequence[int],
                   dilation: Sequence[int], groups: int, where: str) -> ConvGeometry:
    """The geometry of a convolution of x with w (the operators' settings,
    output sizes floored), remembered."""
    key = ("conv", *x.shape, *w.shape, *stride, *padding, *dilation, groups)
    geom = _geometries.get(key)     # (the common case without _remember's closure)
    if geom is not None:
        return cast(ConvGeometry, geom)
    t, bo, le, r = padding
    return cast(ConvGeometry, _remember(
        key, lambda: conv_geometry(tuple(x.shape), tuple(w.shape), _pair(stride),
                                   ((t, bo), (le, r)), strict=False, where=where,
                                   dilation=_pair(dilation), groups=groups)))


@_op("conv2d")
def _conv2d_op(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor],
               stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
               groups: int) -> torch.Tensor:
    where = "fastconv.torch.conv2d"
    geom = _conv_geometry(x, w, stride, padding, dilation, groups, where)
    y = F._conv2d_run(_np(x), _np(w), None if b is None else _np(b), geom, False, -1, where)
    return torch.from_numpy(y)


def _conv_shape_like(x: Tensor, w: Tensor, b: Optional[Tensor], stride: _Ints,
                     padding: _Ints, dilation: _Ints, groups: int) -> Tensor:
    t, bo, le, r = padding
    if t == bo and le == r:
        return TF.conv2d(x, w, b, stride, (t, le), dilation, groups)
    return TF.conv2d(TF.pad(x, (le, r, t, bo)), w, b, stride, 0, dilation, groups)


@_conv2d_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, w: Tensor, b: Optional[Tensor], stride: _Ints, padding: _Ints,
      dilation: _Ints, groups: int) -> Tensor:
    return x.new_empty(_conv_shape_like(x, w, b, stride, padding, dilation, groups).shape)


@_op("conv2d_backward")
def _conv2d_backward_op(dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
                        stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                        groups: int, need_dx: bool
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    where = "conv2d_backward"
    geom = _conv_geometry(x, w, stride, padding, dilation, groups, where)
    dx, dw, db = F._conv2d_backward_run(_np(dy), _np(x), _np(w), geom, need_dx, None, where)
    if dx is None:
        dx = np.empty(0, dw.dtype)
    return torch.from_numpy(dx), torch.from_numpy(dw), torch.from_numpy(db)


@_conv2d_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x: Tensor, w: Tensor, stride: _Ints, padding: _Ints, dilation: _Ints,
      groups: int, need_dx: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return (x.new_empty(x.shape if need_dx else (0,)), w.new_empty(w.shape),
            w.new_empty(w.shape[:1]))


def _conv2d_setup(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(inputs[0], inputs[1])
    ctx.settings = inputs[3:]
    ctx.has_b = inputs[2] is not None


def _conv2d_grad(ctx: Any, dy: Tensor) -> Tuple[Optional[Tensor], ...]:
    x, w = ctx.saved_tensors
    need = ctx.needs_input_grad
    dx, dw, db = _conv2d_backward_op(dy, x, w, *ctx.settings, need[0])
    return (dx if need[0] else None, dw if need[1] else None,
            db if ctx.has_b and need[2] else None, None, None, None, None)


_conv2d_op.register_autograd(_conv2d_grad, setup_context=_conv2d_setup)


@_op("conv_transpose2d")
def _conv_transpose2d_op(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor],
                         stride: Sequence[int], padding: Sequence[int],
                         output_padding: Sequence[int], groups: int,
                         dilation: Sequence[int]) -> torch.Tensor:
    y = F.conv_transpose2d(_np(x), _np(w), None if b is None else _np(b), _pair(stride),
                           _pair(padding), _pair(output_padding), groups, _pair(dilation))
    return torch.from_numpy(y)


@_conv_transpose2d_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, w: Tensor, b: Optional[Tensor], stride: _Ints, padding: _Ints,
      output_padding: _Ints, groups: int, dilation: _Ints) -> Tensor:
    y = TF.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
    return x.new_empty(y.shape)


@_op("conv_transpose2d_backward")
def _conv_transpose2d_backward_op(dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
                                  stride: Sequence[int], padding: Sequence[int],
                                  output_padding: Sequence[int], groups: int,
                                  dilation: Sequence[int], need_dx: bool
                                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dx, dw, db = F.conv_transpose2d_backward(_np(dy), _np(x), _np(w), _pair(stride),
                                             _pair(padding), _pair(output_padding), groups,
                                             _pair(dilation), need_dx=need_dx)
    if dx is None:
        dx = np.empty(0, dw.dtype)
    return torch.from_numpy(dx), torch.from_numpy(dw), torch.from_numpy(db)


@_conv_transpose2d_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x: Tensor, w: Tensor, stride: _Ints, padding: _Ints,
      output_padding: _Ints, groups: int, dilation: _Ints,
      need_dx: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return (x.new_empty(x.shape if need_dx else (0,)), w.new_empty(w.shape),
            w.new_empty((w.shape[1] * groups,)))


def _conv_transpose2d_grad(ctx: Any, dy: Tensor) -> Tuple[Optional[Tensor], ...]:
    x, w = ctx.saved_tensors
    need = ctx.needs_input_grad
    dx, dw, db = _conv_transpose2d_backward_op(dy, x, w, *ctx.settings, need[0])
    return (dx if need[0] else None, dw if need[1] else None,
            db if ctx.has_b and need[2] else None, None, None, None, None, None)


_conv_transpose2d_op.register_autograd(_conv_transpose2d_grad, setup_context=_conv2d_setup)


# ------------------------------------------------------ the operators: pooling

@_op("max_pool2d")
def _max_pool2d_op(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    where = "fastconv.torch.max_pool2d"
    _validate.ndim(tuple(x.shape), 4, "x", "(N, C, H, W)", where)
    geom = _remember(("max_pool2d", *x.shape, *kernel_size, *stride, *padding, *dilation,
                      ceil_mode),
                     lambda: pool_geometry(tuple(x.shape), _pair(kernel_size), _pair(stride),
                                           _pair(padding), strict=False, where=where,
                                           dilation=_pair(dilation), ceil_mode=ceil_mode))
    y, idx = F._max_pool2d_run(_np(x), geom, _pair(dilation), True, where)
    return torch.from_numpy(y), torch.from_numpy(idx)


@_max_pool2d_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, kernel_size: _Ints, stride: _Ints, padding: _Ints, dilation: _Ints,
      ceil_mode: bool) -> Tuple[Tensor, Tensor]:
    y = TF.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    return x.new_empty(y.shape), x.new_empty(y.shape, dtype=torch.int64)


@_op("max_pool2d_backward")
def _max_pool2d_backward_op(dy: torch.Tensor, x: torch.Tensor, indices: torch.Tensor,
                            kernel_size: Sequence[int], stride: Sequence[int],
                            padding: Sequence[int], dilation: Sequence[int],
                            ceil_mode: bool) -> torch.Tensor:
    dx = F.max_pool2d_backward(_np(dy), _np(x), _pair(kernel_size), _pair(stride),
                               _pair(padding), _pair(dilation), ceil_mode, strict=False,
                               indices=_np(indices))
    return torch.from_numpy(dx)


@_max_pool2d_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x: Tensor, indices: Tensor, kernel_size: _Ints, stride: _Ints,
      padding: _Ints, dilation: _Ints, ceil_mode: bool) -> Tensor:
    return x.new_empty(x.shape)


def _max_pool2d_setup(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, Tensor]
                      ) -> None:
    x, *settings = inputs
    ctx.save_for_backward(x, output[1])
    ctx.settings = settings
    ctx.mark_non_differentiable(output[1])


def _max_pool2d_grad(ctx: Any, dy: Tensor, _: Any) -> Tuple[Optional[Tensor], ...]:
    x, indices = ctx.saved_tensors
    return (_max_pool2d_backward_op(dy, x, indices, *ctx.settings),
            None, None, None, None, None)


_max_pool2d_op.register_autograd(_max_pool2d_grad, setup_context=_max_pool2d_setup)


@_op("avg_pool2d")
def _avg_pool2d_op(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int], ceil_mode: bool, count_include_pad: bool,
                   divisor_override: Optional[int]) -> torch.Tensor:
    y = F.avg_pool2d(_np(x), _pair(kernel_size), _pair(stride), _pair(padding), ceil_mode,
                     count_include_pad, divisor_override, strict=False,
                     _name="fastconv.torch.avg_pool2d")
    return torch.from_numpy(y)


@_avg_pool2d_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, kernel_size: _Ints, stride: _Ints, padding: _Ints, ceil_mode: bool,
      count_include_pad: bool, divisor_override: Optional[int]) -> Tensor:
    y = TF.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                      divisor_override)
    return x.new_empty(y.shape)


@_op("avg_pool2d_backward")
def _avg_pool2d_backward_op(dy: torch.Tensor, x_shape: Sequence[int],
                            kernel_size: Sequence[int], stride: Sequence[int],
                            padding: Sequence[int], ceil_mode: bool, count_include_pad: bool,
                            divisor_override: Optional[int]) -> torch.Tensor:
    dx = F.avg_pool2d_backward(_np(dy), tuple(x_shape), _pair(kernel_size), _pair(stride),
                               _pair(padding), ceil_mode, count_include_pad, divisor_override,
                               strict=False)
    return torch.from_numpy(dx)


@_avg_pool2d_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x_shape: _Ints, kernel_size: _Ints, stride: _Ints, padding: _Ints,
      ceil_mode: bool, count_include_pad: bool, divisor_override: Optional[int]) -> Tensor:
    return dy.new_empty(x_shape)


def _shape_setup(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    """For a gradient that needs the input's shape alone (x is not kept)."""
    x, *settings = inputs
    ctx.x_shape = list(x.shape)
    ctx.settings = settings


def _avg_pool2d_grad(ctx: Any, dy: Tensor) -> Tuple[Optional[Tensor], ...]:
    return (_avg_pool2d_backward_op(dy, ctx.x_shape, *ctx.settings),
            None, None, None, None, None, None)


_avg_pool2d_op.register_autograd(_avg_pool2d_grad, setup_context=_shape_setup)


@_op("lp_pool2d")
def _lp_pool2d_op(x: torch.Tensor, norm_type: float, kernel_size: Sequence[int],
                  stride: Sequence[int], ceil_mode: bool) -> torch.Tensor:
    y = F.lp_pool2d(_np(x), norm_type, _pair(kernel_size), _pair(stride), ceil_mode,
                    strict=False, _name="fastconv.torch.lp_pool2d")
    return torch.from_numpy(y)


@_lp_pool2d_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, norm_type: float, kernel_size: _Ints, stride: _Ints,
      ceil_mode: bool) -> Tensor:
    y = TF.avg_pool2d(x, kernel_size, stride, 0, ceil_mode)
    return x.new_empty(y.shape)


@_op("lp_pool2d_backward")
def _lp_pool2d_backward_op(dy: torch.Tensor, x: torch.Tensor, norm_type: float,
                           kernel_size: Sequence[int], stride: Sequence[int],
                           ceil_mode: bool) -> torch.Tensor:
    k, s = _pair(kernel_size), _pair(stride)
    dx = F.lp_pool2d_backward(_np(dy), _np(x), norm_type, k, s, ceil_mode, strict=False)
    bad = np.isnan(dx)
    if bad.any():
        # A NaN input, or a negative one under a fractional p, makes its
        # window's output NaN; PyTorch's gradient (through that output) is
        # then NaN over the whole window, fastconv's only at that value.
        # Spreading a NaN over every window that holds one gives PyTorch's.
        hit = F.avg_pool2d(bad.astype(dx.dtype), k, s, 0, ceil_mode, strict=False) > 0
        spread = F.avg_pool2d_backward(np.where(hit, np.nan, 0.0).astype(dx.dtype), dx.shape,
                                       k, s, 0, ceil_mode, strict=False)
        dx = dx + spread
    return torch.from_numpy(dx)


@_lp_pool2d_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x: Tensor, norm_type: float, kernel_size: _Ints, stride: _Ints,
      ceil_mode: bool) -> Tensor:
    return x.new_empty(x.shape)


def _x_setup(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
    """For a gradient that reads the input."""
    x, *settings = inputs
    ctx.save_for_backward(x)
    ctx.settings = settings
    if isinstance(output, tuple):
        ctx.mark_non_differentiable(output[1])


def _lp_pool2d_grad(ctx: Any, dy: Tensor) -> Tuple[Optional[Tensor], ...]:
    (x,) = ctx.saved_tensors
    return (_lp_pool2d_backward_op(dy, x, *ctx.settings), None, None, None, None)


_lp_pool2d_op.register_autograd(_lp_pool2d_grad, setup_context=_x_setup)


@_op("adaptive_avg_pool2d")
def _adaptive_avg_pool2d_op(x: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
    y = F.adaptive_avg_pool2d(_np(x), _pair(output_size))
    return torch.from_numpy(y)


@_adaptive_avg_pool2d_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, output_size: _Ints) -> Tensor:
    return x.new_empty((*x.shape[:2], *output_size))


@_op("adaptive_avg_pool2d_backward")
def _adaptive_avg_pool2d_backward_op(dy: torch.Tensor, x_shape: Sequence[int],
                                     output_size: Sequence[int]) -> torch.Tensor:
    dx = F.adaptive_avg_pool2d_backward(_np(dy), tuple(x_shape), _pair(output_size))
    return torch.from_numpy(dx)


@_adaptive_avg_pool2d_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x_shape: _Ints, output_size: _Ints) -> Tensor:
    return dy.new_empty(x_shape)


def _adaptive_avg_pool2d_grad(ctx: Any, dy: Tensor) -> Tuple[Optional[Tensor], ...]:
    return _adaptive_avg_pool2d_backward_op(dy, ctx.x_shape, *ctx.settings), None


_adaptive_avg_pool2d_op.register_autograd(_adaptive_avg_pool2d_grad, setup_context=_shape_setup)


@_op("adaptive_max_pool2d")
def _adaptive_max_pool2d_op(x: torch.Tensor, output_size: Sequence[int]
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
    y, idx = F.adaptive_max_pool2d(_np(x), _pair(output_size), return_indices=True)
    return torch.from_numpy(y), torch.from_numpy(idx)


@_adaptive_max_pool2d_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, output_size: _Ints) -> Tuple[Tensor, Tensor]:
    shape = (*x.shape[:2], *output_size)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)


@_op("adaptive_max_pool2d_backward")
def _adaptive_max_pool2d_backward_op(dy: torch.Tensor, x: torch.Tensor,
                                     output_size: Sequence[int]) -> torch.Tensor:
    dx = F.adaptive_max_pool2d_backward(_np(dy), _np(x), _pair(output_size))
    return torch.from_numpy(dx)


@_adaptive_max_pool2d_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x: Tensor, output_size: _Ints) -> Tensor:
    return x.new_empty(x.shape)


def _adaptive_max_pool2d_grad(ctx: Any, dy: Tensor, _: Any) -> Tuple[Optional[Tensor], ...]:
    (x,) = ctx.saved_tensors
    return _adaptive_max_pool2d_backward_op(dy, x, *ctx.settings), None


_adaptive_max_pool2d_op.register_autograd(_adaptive_max_pool2d_grad, setup_context=_x_setup)


# ------------------------------------------------ the operators: linear, relu

def _rows(a: "np.ndarray[Any, Any]", n: int) -> "np.ndarray[Any, Any]":
    """``a`` (..., n) as rows (M, n): a view where NumPy can make one."""
    return a.reshape(-1, n)


@_op("linear")
def _linear_op(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
    O, D = w.shape
    if x.shape[-1] != D:
        raise ValueError(f"fastconv.torch.linear: x has {x.shape[-1]} features (its last "
                         f"axis, shape {tuple(x.shape)}) but w expects {D} (w.shape[1])")
    where = "fastconv.torch.linear"
    bn = None if b is None else _np(b)
    if x.dim() == 2:                # rows already: no reshaping either way
        return torch.from_numpy(F._linear_run(_np(x), _np(w), bn, x.shape[0], D, O, False,
                                              where))
    rows = _rows(_np(x), D)
    y = F._linear_run(rows, _np(w), bn, rows.shape[0], D, O, False, where)
    return torch.from_numpy(y.reshape(*x.shape[:-1], O))


@_linear_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    return x.new_empty(TF.linear(x, w, b).shape)


@_op("linear_backward")
def _linear_backward_op(dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    O, D = w.shape
    dx, dw, db = F.linear_backward(_rows(_np(dy), O), _rows(_np(x), D), _np(w))
    return torch.from_numpy(dx.reshape(x.shape)), torch.from_numpy(dw), torch.from_numpy(db)


@_linear_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, x: Tensor, w: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    return x.new_empty(x.shape), w.new_empty(w.shape), w.new_empty(w.shape[:1])


def _linear_setup(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    x, w, b = inputs
    ctx.save_for_backward(x, w)
    ctx.has_b = b is not None


def _linear_grad(ctx: Any, dy: Tensor) -> Tuple[Optional[Tensor], ...]:
    x, w = ctx.saved_tensors
    need = ctx.needs_input_grad
    dx, dw, db = _linear_backward_op(dy, x, w)
    return (dx if need[0] else None, dw if need[1] else None,
            db if ctx.has_b and need[2] else None)


_linear_op.register_autograd(_linear_grad, setup_context=_linear_setup)


@_op("relu")
def _relu_op(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(F.relu(_np(x), _name="fastconv.torch.relu"))


@_relu_op.register_fake  # type: ignore[untyped-decorator]
def _(x: Tensor) -> Tensor:
    return x.new_empty(x.shape)


@_op("relu_backward")
def _relu_backward_op(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # relu's output is positive exactly where its input is, so the gradient
    # keeps the output (which the next layer holds anyway) instead of x.
    # PyTorch's gradient passes dy through a NaN input (it zeroes it where the
    # output is <= 0, which NaN is not); fastconv.relu_backward keeps dy where
    # x > 0, which zeroes it there, so the rule is written out here.
    if dy.shape != y.shape:
        raise ValueError(f"fastconv.torch.relu_backward: dy must have relu's output shape "
                         f"{tuple(y.shape)}, got {tuple(dy.shape)}")
    dyn = _np(dy)
    return torch.from_numpy(np.where(_np(y) <= 0, dyn.dtype.type(0), dyn))


@_relu_backward_op.register_fake  # type: ignore[untyped-decorator]
def _(dy: Tensor, y: Tensor) -> Tensor:
    return y.new_empty(y.shape)


def _relu_setup(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(output)


def _relu_grad(ctx: Any, dy: Tensor) -> Tensor:
    (y,) = ctx.saved_tensors
    return _relu_backward_op(dy, y)


_relu_op.register_autograd(_relu_grad, setup_context=_relu_setup)


# ----------------------------------------------------- the public functions

def _conv_padding(padding: object, kernel: Sequence[int], stride: Sequence[int],
                  dilation: Sequence[int], n: int, where: str) -> List[int]:
    """PyTorch's convolution ``padding`` (an int, a tuple, "valid", "same")
    as [begin, end] per spatial axis, flattened."""
    if type(padding) is int:        # the common form first
        return [padding] * (2 * n)
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * (2 * n)
        if padding != "same":
            raise ValueError(f"{where}: padding must be an int, a tuple of {n} ints, "
                             f"'valid' or 'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{where}: padding='same' needs stride 1, got stride "
                             f"{tuple(stride)}")
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            # An odd total puts the extra row or column at the end, as PyTorch does.
            out += [total // 2, total - total // 2]
        return out
    return [p for p in _ints(padding, n, "padding", where) for _ in (0, 1)]


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
           stride: IntOrTuple = 1, padding: Union[IntOrTuple, str] = 0,
           dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    input: (N, C_in, H, W) or (C_in, H, W); weight: (C_out, C_in / groups,
    F_h, F_w); bias: (C_out,) or None.  Returns (N, C_out, H_out, W_out) (no
    N for an unbatched input) with H_out = floor((H + 2P - D*(F_h - 1) - 1)/S)
    + 1, same for W.  ``stride``, ``dilation``: an int or a pair;
    ``padding``: an int, a pair, ``"valid"`` or ``"same"`` (stride 1; an odd
    total puts the extra row and column at the bottom and right).  float32 or
    float64 (see the module's text for other dtypes and devices);
    differentiable in input, weight and bias.

    >>> import torch, fastconv.torch as ft
    >>> x = torch.ones(1, 3, 8, 8); w = torch.ones(4, 3, 3, 3)
    >>> ft.conv2d(x, w, padding=1).shape
    torch.Size([1, 4, 8, 8])
    >>> ft.conv2d(x, w, padding="same", dilation=2)[0, 0, 4, 4].item()
    27.0
    """
    where = "fastconv.torch.conv2d"
    route = _served(input, weight, bias)
    if route == _UNSERVED:
        _fall_back("conv2d", _unserved(input, weight, bias))
        return TF.conv2d(input, weight, bias, stride, padding, dilation, groups)
    unbatched = _spatial(input, 4, where, "(N, C, H, W)")
    x = input.unsqueeze(0) if unbatched else input
    if weight.dim() != 4:
        raise ValueError(f"{where}: weight must be 4-D (C_out, C_in/groups, F_h, F_w), got "
                         f"shape {tuple(weight.shape)}")
    s = _ints(stride, 2, "stride", where)
    d = _ints(dilation, 2, "dilation", where)
    p = _conv_padding(padding, weight.shape[2:], s, d, 2, where)
    y = _conv2d_op.run(route, x, weight, bias, list(s), p, list(d), groups)
    return y.squeeze(0) if unbatched else y


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
           stride: IntOrTuple = 1, padding: Union[IntOrTuple, str] = 0,
           dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    """1-D convolution, as ``torch.nn.functional.conv1d``: ``fastconv::conv2d``
    on a height-1 view of the input and weight (no copy).

    input: (N, C_in, L) or (C_in, L); weight: (C_out, C_in / groups, F);
    bias: (C_out,) or None.  Returns (N, C_out, L_out) with L_out =
    floor((L + 2P - D*(F - 1) - 1)/S) + 1.  ``padding``: an int, a 1-tuple,
    ``"valid"`` or ``"same"``.  float32 or float64; differentiable.

    >>> import torch, fastconv.torch as ft
    >>> ft.conv1d(torch.ones(2, 3, 10), torch.ones(4, 3, 3), stride=2).shape
    torch.Size([2, 4, 4])
    """
    where = "fastconv.torch.conv1d"
    route = _served(input, weight, bias)
    if route == _UNSERVED:
        _fall_back("conv1d", _unserved(input, weight, bias))
        return TF.conv1d(input, weight, bias, stride, padding, dilation, groups)
    unbatched = _spatial(input, 3, where, "(N, C, L)")
    x = input.unsqueeze(0) if unbatched else input
    if weight.dim() != 3:
        raise ValueError(f"{where}: weight must be 3-D (C_out, C_in/groups, F), got shape "
                         f"{tuple(weight.shape)}")
    (s,) = _ints(stride, 1, "stride", where)
    (d,) = _ints(dilation, 1, "dilation", where)
    p = _conv_padding(padding, weight.shape[2:], (s,), (d,), 1, where)
    y = _conv2d_op.run(route, x.unsqueeze(2), weight.unsqueeze(2), bias, [1, s], [0, 0] + p,
                       [1, d], groups).squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    """Transposed 2-D convolution, as ``torch.nn.functional.conv_transpose2d``.

    input: (N, C_in, H, W) or (C_in, H, W); weight: (C_in, C_out / groups,
    F_h, F_w); bias: (C_out,) or None.  Returns (N, C_out, H_out, W_out) with
    H_out = (H - 1)*S - 2P + D*(F_h - 1) + output_padding + 1 (same for W);
    fastconv computes an output_padding smaller than the stride; PyTorch
    also takes one smaller than the dilation alone, and such a call goes to
    ``torch.nn.functional.conv_transpose2d`` (with a :class:`FallbackWarning`
    once).  float32 or float64; differentiable in input, weight and bias.

    >>> import torch, fastconv.torch as ft
    >>> ft.conv_transpose2d(torch.ones(1, 2, 4, 4), torch.ones(2, 3, 3, 3), stride=2,
    ...                     padding=1, output_padding=1).shape
    torch.Size([1, 3, 8, 8])
    """
    where = "fastconv.torch.conv_transpose2d"
    route = _served(input, weight, bias)
    if route == _UNSERVED:
        _fall_back("conv_transpose2d", _unserved(input, weight, bias))
        return TF.conv_transpose2d(input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)
    s = _ints(stride, 2, "stride", where)
    op = _ints(output_padding, 2, "output_padding", where)
    d = _ints(dilation, 2, "dilation", where)
    if any(o >= si and o < di for o, si, di in zip(op, s, d)):
        # PyTorch takes an output padding up to the dilation, whose extra
        # rows the kernel still reaches; fastconv's kernels stop at the stride.
        _fall_back("conv_transpose2d", f"output_padding {op} not smaller than the stride {s}",
                   "fastconv computes an output_padding smaller than the stride")
        return TF.conv_transpose2d(input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)
    unbatched = _spatial(input, 4, where, "(N, C, H, W)")
    x = input.unsqueeze(0) if unbatched else input
    y = _conv_transpose2d_op.run(route, x, weight, bias, list(s),
                                 list(_ints(padding, 2, "padding", where)), list(op), groups,
                                 list(d))
    return y.squeeze(0) if unbatched else y


def _pool_input(input: Tensor, where: str) -> Tuple[Tensor, bool]:
    unbatched = _spatial(input, 4, where, "(N, C, H, W)")
    return (input.unsqueeze(0) if unbatched else input), unbatched


def _pool_stride(stride: Optional[IntOrTuple], kernel: Tuple[int, ...],
                 where: str) -> List[int]:
    # PyTorch reads stride None, and an empty list, as the kernel size.
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return list(kernel)
    return list(_ints(stride, 2, "stride", where))


def max_pool2d(input: Tensor, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Any:
    """Max pooling, as ``torch.nn.functional.max_pool2d``.

    input: (N, C, H, W) or (C, H, W).  Returns y: (N, C, H_out, W_out) with
    H_out = floor((H + 2P - D*(F - 1) - 1)/S) + 1 (``ceil_mode=True``
    rounds up, dropping a last window that would start in the bottom or
    right padding); with ``return_indices=True``, ``(y, indices)``, the int64
    offset h*W + w within its plane of each window's first maximum.  stride
    defaults to kernel_size; padding is at most half the kernel.  float32 or
    float64; the gradient goes to each window's first maximum.

    >>> import torch, fastconv.torch as ft
    >>> y, idx = ft.max_pool2d(torch.arange(16.0).reshape(1, 4, 4), 2, return_indices=True)
    >>> y.tolist(), idx.tolist()
    ([[[5.0, 7.0], [13.0, 15.0]]], [[[5, 7], [13, 15]]])
    """
    where = "fastconv.torch.max_pool2d"
    route = _served(input)
    if route == _UNSERVED:
        _fall_back("max_pool2d", _unserved(input))
        pool: Any = TF.max_pool2d    # torch's overloads want a literal return_indices
        return pool(input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode,
                    return_indices=return_indices)
    x, unbatched = _pool_input(input, where)
    k = _ints(kernel_size, 2, "kernel_size", where)
    y, idx = _max_pool2d_op.run(route, x, list(k), _pool_stride(stride, k, where),
                                list(_ints(padding, 2, "padding", where)),
                                list(_ints(dilation, 2, "dilation", where)), bool(ceil_mode))
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def avg_pool2d(input: Tensor, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None
               ) -> Tensor:
    """Average pooling, as ``torch.nn.functional.avg_pool2d``.

    input: (N, C, H, W) or (C, H, W).  Returns (N, C, H_out, W_out) with
    H_out = floor((H + 2P - F)/S) + 1 (``ceil_mode=True`` rounds up).  A
    window is divided by F_h*F_w, by the number of input values it covers
    when ``count_include_pad=False``, or by ``divisor_override``.  float32
    or float64; differentiable.

    >>> import torch, fastconv.torch as ft
    >>> ft.avg_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    where = "fastconv.torch.avg_pool2d"
    route = _served(input)
    if route == _UNSERVED:
        _fall_back("avg_pool2d", _unserved(input))
        return TF.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override)
    x, unbatched = _pool_input(input, where)
    k = _ints(kernel_size, 2, "kernel_size", where)
    if divisor_override is not None and (isinstance(divisor_override, bool)
                                         or not isinstance(divisor_override, int)
                                         or divisor_override == 0):
        raise ValueError(f"{where}: divisor_override must be a nonzero int or None, got "
                         f"{divisor_override!r}")
    y = _avg_pool2d_op.run(route, x, list(k), _pool_stride(stride, k, where),
                           list(_ints(padding, 2, "padding", where)), bool(ceil_mode),
                           bool(count_include_pad), divisor_override)
    return y.squeeze(0) if unbatched else y


def lp_pool2d(input: Tensor, norm_type: float, kernel_size: IntOrTuple,
              stride: Optional[IntOrTuple] = None, ceil_mode: bool = False) -> Tensor:
    """Power-average pooling, as ``torch.nn.functional.lp_pool2d``.

    input: (N, C, H, W) or (C, H, W).  Each window gives
    (sum of x**p)**(1/p), p = ``norm_type`` (PyTorch's definition: the
    average of x**p times F_h*F_w, so a window that ``ceil_mode`` clips is
    scaled up to the full window size); p = inf is max pooling of |x|.  No
    padding.  Returns (N, C, H_out, W_out) as avg_pool2d's.  float32 or
    float64; differentiable (the gradient is zero where a window's sum is).

    >>> import torch, fastconv.torch as ft
    >>> ft.lp_pool2d(torch.full((1, 1, 2, 2), 3.0), 2, 2).flatten().tolist()
    [6.0]
    """
    where = "fastconv.torch.lp_pool2d"
    route = _served(input)
    if route == _UNSERVED:
        _fall_back("lp_pool2d", _unserved(input))
        return TF.lp_pool2d(input, norm_type, kernel_size, stride, ceil_mode)
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"{where}: norm_type must be a number, got {norm_type!r}")
    if math.isinf(norm_type):
        # PyTorch's own definition of the limit.
        y = max_pool2d(input.abs() if norm_type > 0 else -input.abs(), kernel_size, stride,
                       0, 1, ceil_mode)
        return y if norm_type > 0 else -y
    x, unbatched = _pool_input(input, where)
    k = _ints(kernel_size, 2, "kernel_size", where)
    y = _lp_pool2d_op.run(route, x, float(norm_type), list(k), _pool_stride(stride, k, where),
                          bool(ceil_mode))
    return y.squeeze(0) if unbatched else y


def _adaptive_size(output_size: object, x: Tensor, where: str) -> List[int]:
    """PyTorch's adaptive ``output_size``: an int, or a pair whose None
    entries keep the input's size."""
    items = list(output_size) if isinstance(output_size, (tuple, list, torch.Size)) \
        else [output_size]
    if len(items) == 1:
        items = items * 2
    if len(items) != 2:
        raise ValueError(f"{where}: output_size must be an int or a pair, got {output_size!r}")
    return [x.shape[-2 + i] if v is None else _ints(v, 1, "output_size", where)[0]
            for i, v in enumerate(items)]


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    input: (N, C, H, W) or (C, H, W); output_size: an int or an (H_out,
    W_out) pair, None keeping that axis's size.  Output row i averages input
    rows floor(i*H/H_out) to ceil((i+1)*H/H_out) - 1, the same for columns.
    float32 or float64; differentiable.

    >>> import torch, fastconv.torch as ft
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> ft.adaptive_avg_pool2d(x, (1, 2)).tolist()
    [[[[6.5, 8.5]]]]
    """
    where = "fastconv.torch.adaptive_avg_pool2d"
    route = _served(input)
    if route == _UNSERVED:
        _fall_back("adaptive_avg_pool2d", _unserved(input))
        return TF.adaptive_avg_pool2d(input, output_size)
    x, unbatched = _pool_input(input, where)
    y = _adaptive_avg_pool2d_op.run(route, x, _adaptive_size(output_size, x, where))
    return y.squeeze(0) if unbatched else y


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool2d``.

    input: (N, C, H, W) or (C, H, W); output_size as for
    :func:`adaptive_avg_pool2d`, whose windows it takes.  Returns y, or
    ``(y, indices)`` (int64 offsets h*W + w within the plane) with
    ``return_indices=True``.  float32 or float64; differentiable.

    >>> import torch, fastconv.torch as ft
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> ft.adaptive_max_pool2d(x, 1).tolist()
    [[[[15.0]]]]
    """
    where = "fastconv.torch.adaptive_max_pool2d"
    route = _served(input)
    if route == _UNSERVED:
        _fall_back("adaptive_max_pool2d", _unserved(input))
        adaptive: Any = TF.adaptive_max_pool2d   # overloads want a literal return_indices
        return adaptive(input, output_size, return_indices)
    x, unbatched = _pool_input(input, where)
    y, idx = _adaptive_max_pool2d_op.run(route, x, _adaptive_size(output_size, x, where))
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """Fully connected layer y = input @ weight.T + bias, as
    ``torch.nn.functional.linear``.

    input: (*, in_features); weight: (out_features, in_features); bias:
    (out_features,) or None.  Returns (*, out_features).  float32 or float64;
    differentiable in input, weight and bias.

    >>> import torch, fastconv.torch as ft
    >>> ft.linear(torch.ones(2, 3), torch.ones(4, 3), torch.arange(4.0)).tolist()
    [[3.0, 4.0, 5.0, 6.0], [3.0, 4.0, 5.0, 6.0]]
    """
    route = _served(input, weight, bias)
    if route == _UNSERVED:
        _fall_back("linear", _unserved(input, weight, bias))
        return TF.linear(input, weight, bias)
    if weight.dim() != 2 or input.dim() < 1:
        raise ValueError(f"fastconv.torch.linear: weight must be 2-D (out_features, "
                         f"in_features) and input at least 1-D, got shapes "
                         f"{tuple(input.shape)} and {tuple(weight.shape)}")
    return _linear_op.run(route, input, weight, bias)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(input, 0) elementwise, as ``torch.nn.functional.relu``; NaN stays NaN.

    input: any shape, float32 or float64.  ``inplace=True`` writes the result
    into input and returns it.  Differentiable.

    >>> import torch, fastconv.torch as ft
    >>> ft.relu(torch.tensor([-1.0, 0.5])).tolist()
    [0.0, 0.5]
    """
    route = _served(input)
    if route == _UNSERVED:
        _fall_back("relu", _unserved(input))
        return TF.relu(input, inplace)
    y = _relu_op.run(route, input)
    return input.copy_(y) if inplace else y


# ------------------------------------------------------------------ modules

class Conv1d(torch.nn.Conv1d):  # type: ignore[misc]
    """``torch.nn.Conv1d`` computed by :func:`conv1d`.

    Same constructor, parameters and state_dict as torch's.  input (N, C_in,
    L) or (C_in, L) -> (N, C_out, L_out); float32 or float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.Conv1d(3, 4, 3, padding="same")(torch.ones(2, 3, 10)).shape
    torch.Size([2, 4, 10])
    """

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.padding_mode != "zeros":
            return conv1d(TF.pad(input, self._reversed_padding_repeated_twice,
                                 mode=self.padding_mode),
                          weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv1d(input, weight, bias, self.stride, self.padding, self.dilation,
                      self.groups)


class Conv2d(torch.nn.Conv2d):  # type: ignore[misc]
    """``torch.nn.Conv2d`` computed by :func:`conv2d`.

    Same constructor, parameters and state_dict as torch's.  input (N, C_in,
    H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out); float32 or float64.
    A ``padding_mode`` other than ``"zeros"`` pads with
    ``torch.nn.functional.pad`` first, as torch's forward does.

    >>> import torch, fastconv.torch as ft
    >>> ft.Conv2d(3, 8, 3, padding=1)(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 8, 8, 8])
    """

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.padding_mode != "zeros":
            return conv2d(TF.pad(input, self._reversed_padding_repeated_twice,
                                 mode=self.padding_mode),
                          weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation,
                      self.groups)


class ConvTranspose2d(torch.nn.ConvTranspose2d):  # type: ignore[misc]
    """``torch.nn.ConvTranspose2d`` computed by :func:`conv_transpose2d`.

    Same constructor, parameters and state_dict as torch's; ``forward(input,
    output_size=None)`` picks the output padding from ``output_size`` as
    torch's does.  float32 or float64.

    >>> import torch, fastconv.torch as ft
    >>> m = ft.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    >>> m(torch.ones(1, 2, 4, 4), output_size=(8, 8)).shape
    torch.Size([1, 3, 8, 8])
    """

    def forward(self, input: Tensor, output_size: Optional[List[int]] = None) -> Tensor:
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for ConvTranspose2d")
        output_padding = self._output_padding(input, output_size, self.stride, self.padding,
                                              self.kernel_size, 2, self.dilation)
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                output_padding, self.groups, self.dilation)


class MaxPool2d(torch.nn.MaxPool2d):  # type: ignore[misc]
    """``torch.nn.MaxPool2d`` computed by :func:`max_pool2d`.

    input (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out), and the indices
    when built with ``return_indices=True``; float32 or float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.MaxPool2d(2)(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 3, 4, 4])
    """

    def forward(self, input: Tensor) -> Any:
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool2d(torch.nn.AvgPool2d):  # type: ignore[misc]
    """``torch.nn.AvgPool2d`` computed by :func:`avg_pool2d`.

    input (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out); float32 or
    float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.AvgPool2d(2, stride=1)(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 3, 7, 7])
    """

    def forward(self, input: Tensor) -> Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)


class LPPool2d(torch.nn.LPPool2d):  # type: ignore[misc]
    """``torch.nn.LPPool2d`` computed by :func:`lp_pool2d`.

    input (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out); float32 or
    float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.LPPool2d(2, 2)(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 3, 4, 4])
    """

    def forward(self, input: Tensor) -> Tensor:
        return lp_pool2d(input, float(self.norm_type), self.kernel_size, self.stride,
                         self.ceil_mode)


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d):  # type: ignore[misc]
    """``torch.nn.AdaptiveAvgPool2d`` computed by :func:`adaptive_avg_pool2d`.

    input (N, C, H, W) or (C, H, W) -> (N, C, *output_size); float32 or
    float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.AdaptiveAvgPool2d((2, 3))(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 3, 2, 3])
    """

    def forward(self, input: Tensor) -> Tensor:
        return adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool2d(torch.nn.AdaptiveMaxPool2d):  # type: ignore[misc]
    """``torch.nn.AdaptiveMaxPool2d`` computed by :func:`adaptive_max_pool2d`.

    input (N, C, H, W) or (C, H, W) -> (N, C, *output_size), and the indices
    when built with ``return_indices=True``; float32 or float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.AdaptiveMaxPool2d(1)(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 3, 1, 1])
    """

    def forward(self, input: Tensor) -> Any:
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)


class Linear(torch.nn.Linear):  # type: ignore[misc]
    """``torch.nn.Linear`` computed by :func:`linear`.

    input (*, in_features) -> (*, out_features); float32 or float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.Linear(3, 4)(torch.ones(2, 5, 3)).shape
    torch.Size([2, 5, 4])
    """

    def forward(self, input: Tensor) -> Tensor:
        return linear(input, self.weight, self.bias)


class ReLU(torch.nn.ReLU):  # type: ignore[misc]
    """``torch.nn.ReLU`` computed by :func:`relu` (``inplace`` as torch's).

    input: any shape, float32 or float64.

    >>> import torch, fastconv.torch as ft
    >>> ft.ReLU()(torch.tensor([-2.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return relu(input, inplace=self.inplace)


# ------------------------------------------------------------------ convert

#: torch.nn class -> the fastconv class that replaces it.
_REPLACEMENTS: Dict[type, type] = {
    torch.nn.Conv1d: Conv1d, torch.nn.Conv2d: Conv2d,
    torch.nn.ConvTranspose2d: ConvTranspose2d, torch.nn.MaxPool2d: MaxPool2d,
    torch.nn.AvgPool2d: AvgPool2d, torch.nn.LPPool2d: LPPool2d,
    torch.nn.AdaptiveAvgPool2d: AdaptiveAvgPool2d,
    torch.nn.AdaptiveMaxPool2d: AdaptiveMaxPool2d, torch.nn.Linear: Linear,
    torch.nn.ReLU: ReLU,
}

@dataclasses.dataclass
class ConversionReport:
    """What :func:`convert` did: ``converted`` lists (name, torch class) of the
    modules it replaced, ``kept`` (name, torch class, reason) of those of a
    replaceable class that it left to torch.  The model itself is named
    ``""``.  ``str(report)`` shows both, one module a line.

    >>> import torch, fastconv.torch as ft
    >>> _, report = ft.convert(torch.nn.Sequential(torch.nn.Linear(2, 2)), report=True)
    >>> report.converted
    [('0', 'Linear')]
    """

    converted: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    kept: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"converted {name or '(model)'} ({cls})" for name, cls in self.converted]
        lines += [f"kept {name or '(model)'} ({cls}): {why}" for name, cls, why in self.kept]
        return "\n".join(lines) if lines else "nothing to convert"


def _kept_because(module: Any) -> Optional[str]:
    """Why convert leaves ``module`` (of a replaceable class) to torch."""
    tensors = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
    why = _unserved(*tensors)
    return None if why is None else f"its parameters and buffers are {why}"


@overload
def convert(model: Any, *, report: Literal[False] = False) -> Any: ...


@overload
def convert(model: Any, *, report: Literal[True]) -> Tuple[Any, ConversionReport]: ...


def convert(model: Any, *, report: bool = False) -> Any:
    """A deep copy of ``model`` whose torch.nn layers fastconv computes.

    Every module of one of the classes ``torch.nn.Conv1d``, ``Conv2d``,
    ``ConvTranspose2d``, ``MaxPool2d``, ``AvgPool2d``, ``LPPool2d``,
    ``AdaptiveAvgPool2d``, ``AdaptiveMaxPool2d``, ``Linear`` and ``ReLU``
    (that class exactly: a subclass may compute something else) becomes the
    fastconv class of the same name, with the same parameters, buffers,
    hooks and training mode; ``model`` itself is not changed.  A module whose
    parameters are not float32 or float64 on the CPU stays torch's.  Other
    modules are copied as they are.

    Returns the copy; with ``report=True``, ``(copy, report)``, a
    :class:`ConversionReport` naming the modules replaced and those kept.

    >>> import torch, fastconv.torch as ft
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    >>> fast, report = ft.convert(net, report=True)
    >>> type(fast[0]).__module__, len(report.converted)
    ('fastconv.torch', 2)
    >>> x = torch.randn(1, 3, 5, 5)
    >>> torch.allclose(fast(x), net(x), rtol=1e-5, atol=1e-6)
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fastconv.torch.convert: model must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    report_flag = bool(report)
    new = copy.deepcopy(model)
    done = ConversionReport()
    for name, module in new.named_modules():
        cls = _REPLACEMENTS.get(type(module))
        if cls is None:
            continue
        why = _kept_because(module)
        if why is None:
            # The fastconv class adds no state: the module keeps its own.
            done.converted.append((name, type(module).__name__))
            module.__class__ = cls
        else:
            done.kept.append((name, type(module).__name__, why))
    return (new, done) if report_flag else new
