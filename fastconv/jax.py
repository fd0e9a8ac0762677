"""JAX bridge: fastconv's CPU kernels as differentiable JAX functions.

Each function here is a ``jax.custom_vjp`` whose forward and backward are
``jax.pure_callback`` calls into :mod:`fastconv.functional`, so it works
under ``jax.jit``, ``jax.grad`` (and ``jax.vjp``, ``jax.value_and_grad``) and
``jax.vmap``, in float32 and float64 (with ``jax_enable_x64``)::

    import jax, jax.numpy as jnp
    import fastconv.jax as fj

    def loss(w, x):
        return fj.max_pool2d(jax.nn.relu(fj.conv2d(x, w, padding=1)), 2).sum()

    g = jax.jit(jax.grad(loss))(w, x)

Layouts and arguments are the NumPy API's: activations NCHW, conv weights
(K, C / groups, F_h, F_w), transposed-conv weights (C_in, C_out / groups,
F_h, F_w), linear weights (out_features, in_features); ``stride``,
``dilation`` and pooling's ``padding`` an int or an (h, w) pair, a
convolution's ``padding`` also ``((top, bottom), (left, right))``,
``"valid"`` or ``"same"``; ``groups`` as in :func:`fastconv.conv2d`;
``strict`` as there (a :class:`ShapeError` raised while tracing, before
anything runs); pooling's ``ceil_mode``, ``dilation``, ``count_include_pad``
and ``divisor_override`` as in :func:`fastconv.max_pool2d` and
:func:`fastconv.avg_pool2d`.

Inputs are promoted with JAX's rules and must come out float32 or float64
(integer, float16 and bfloat16 inputs raise TypeError: cast them first).  The
computation runs on the host CPU: arrays on another device are copied there
by ``pure_callback``.  Forward-mode differentiation (``jax.jvp``,
``jax.jacfwd``) is not available for ``custom_vjp`` functions.

Under ``vmap`` the callbacks receive the mapped axes in front
(``vmap_method="expand_dims"``): when only the activations are mapped, the
mapped axes are folded into the batch and fastconv runs once; otherwise it
runs once per mapped element.

Importing this module needs JAX; ``import fastconv`` does not.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

try:
    import jax
    import jax.numpy as jnp
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastconv.jax needs JAX: pip install 'fastconv[jax]' "
                      f"(or pip install jax) ({_exc})", name=_exc.name) from None

from . import _validate as valid
from . import functional as F
from ._shapes import PaddingSpec, conv_geometry, conv_padding, pool_geometry
from ._typing import IntOrPair

#: A JAX array (typed loosely: JAX's own annotations are not relied on).
JaxArray = Any
#: An array argument: a JAX array or anything ``jax.numpy.asarray`` takes.
JaxArrayLike = Any
#: Forward of a custom_vjp: (x, w, b or None) -> (y, residuals).
_Forward = Callable[[JaxArray, JaxArray, Optional[JaxArray]], Tuple[JaxArray, Any]]
#: Backward of a custom_vjp: (residuals, g) -> (dx, dw, db).
_Backward = Callable[[Any, JaxArray], Any]
_Ops = Tuple[Callable[..., JaxArray], Callable[..., JaxArray]]
#: Padding as ((top, bottom), (left, right)).
_Padding = Tuple[Tuple[int, int], Tuple[int, int]]

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "lp_pool2d", "linear"]

_VMAP_METHOD = "expand_dims"
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------- helpers

def _arrays(where: str, names: Sequence[str], *arrays: JaxArrayLike
            ) -> Tuple[List[JaxArray], np.dtype[Any]]:
    """The arguments as JAX arrays of one float dtype (JAX's promotion)."""
    out = []
    for name, a in zip(names, arrays):
        try:
            out.append(jnp.asarray(a))
        except TypeError as exc:
            raise TypeError(f"{where}: {name} could not be converted to a JAX array: "
                            f"{exc}") from None
    dtype = np.dtype(jnp.result_type(*out))
    if dtype not in _FLOATS:
        raise TypeError(f"{where}: the arguments promote to {dtype}; fastconv computes in "
                        f"float32 or float64: cast them first")
    return [a.astype(dtype) for a in out], dtype


def _host(fn: Callable[..., Any], core_ndims: Sequence[int],
          out_core: Sequence[Tuple[Tuple[int, ...], Any]],
          fold: Optional[int] = None) -> Callable[..., Any]:
    """``fn`` over NumPy arrays, for a pure_callback under any number of vmaps.

    With ``vmap_method="expand_dims"`` every argument arrives with the mapped
    axes in front (size 1 where that argument is not mapped); ``core_ndims``
    gives each argument's own number of axes and ``out_core`` the
    (shape, dtype) of each of fn's results without them.  When only argument
    ``fold`` is mapped, and fn maps its first axis to its results' first
    axis, the mapped axes are folded into that axis and fn runs once;
    otherwise fn runs once per mapped element.
    """
    def call(*raw: Any) -> Any:
        args = [np.asarray(a) for a in raw]
        leads = [a.shape[:a.ndim - k] for a, k in zip(args, core_ndims)]
        batch = np.broadcast_shapes(*leads)
        if not batch:
            return fn(*args)
        outs = [np.empty(batch + tuple(shape), dtype) for shape, dtype in out_core]
        if not all(batch):
            return outs[0] if len(outs) == 1 else tuple(outs)
        if fold is not None and all(math.prod(lead) == 1
                                    for i, lead in enumerate(leads) if i != fold):
            parts = [a.reshape((-1,) + a.shape[len(lead) + 1:]) if i == fold
                     else a.reshape(a.shape[len(lead):])
                     for i, (a, lead) in enumerate(zip(args, leads))]
            res = fn(*parts)
            for o, r in zip(outs, res if isinstance(res, tuple) else (res,)):
                o[...] = r.reshape(o.shape)
        else:
            for idx in np.ndindex(*batch):
                parts = []
                for a, lead in zip(args, leads):
                    mine = idx[len(batch) - len(lead):]
                    parts.append(a[tuple(i if n > 1 else 0 for i, n in zip(mine, lead))])
                res = fn(*parts)
                for o, r in zip(outs, res if isinstance(res, tuple) else (res,)):
                    o[idx] = r
        return outs[0] if len(outs) == 1 else tuple(outs)
    return call


def _callback(fn: Callable[..., Any], core_ndims: Sequence[int], results: Any,
              *args: JaxArray, fold: Optional[int] = None) -> Any:
    """pure_callback of ``fn`` with results ``results`` (ShapeDtypeStructs)."""
    single = not isinstance(results, tuple)
    outs = (results,) if single else results
    host = _host(fn, core_ndims, [(r.shape, r.dtype) for r in outs], fold)
    return jax.pure_callback(host, results, *args, vmap_method=_VMAP_METHOD)


def _sds(shape: Sequence[int], dtype: Any) -> Any:
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


def _with_bias(make: Callable[[], Tuple[_Forward, _Backward]]) -> _Ops:
    """A custom_vjp function of (x, w, b) and one of (x, w) from ``make(has_bias)``,
    which returns (forward, backward): forward(x, w, b or None) -> (y, residuals),
    backward(residuals, g) -> (dx, dw, db)."""
    forward, backward = make()

    @jax.custom_vjp  # type: ignore[untyped-decorator]
    def with_b(x: JaxArray, w: JaxArray, b: JaxArray) -> JaxArray:
        return forward(x, w, b)[0]

    with_b.defvjp(lambda x, w, b: forward(x, w, b),
                  lambda res, g: tuple(backward(res, g)))

    @jax.custom_vjp  # type: ignore[untyped-decorator]
    def without_b(x: JaxArray, w: JaxArray) -> JaxArray:
        return forward(x, w, None)[0]

    without_b.defvjp(lambda x, w: forward(x, w, None),
                     lambda res, g: tuple(backward(res, g)[:2]))
    return with_b, without_b


def _call_with_bias(ops: _Ops, x: JaxArray, w: JaxArray, b: Optional[JaxArray]
                    ) -> JaxArray:
    with_b, without_b = ops
    return without_b(x, w) if b is None else with_b(x, w, b)


# -------------------------------------------------------------- convolution

@functools.lru_cache(maxsize=None)
def _conv2d_ops(stride: Tuple[int, int], padding: _Padding, dilation: Tuple[int, int],
                groups: int, strict: bool, relu: bool) -> _Ops:
    where = "fastconv.jax.conv2d"
    activation: Optional[Literal["relu"]] = "relu" if relu else None
    settings: Dict[str, Any] = dict(dilation=dilation, groups=groups)

    def make() -> Tuple[_Forward, _Backward]:
        def forward(x: JaxArray, w: JaxArray, b: Optional[JaxArray]
                    ) -> Tuple[JaxArray, Any]:
            geom = conv_geometry(x.shape, w.shape, stride, padding, strict=strict, where=where,
                                 **settings)
            args = (x, w) if b is None else (x, w, b)
            y = _callback(lambda *a: F.conv2d(a[0], a[1], a[2] if len(a) > 2 else None,
                                              stride, padding, strict=strict,
                                              activation=activation, **settings),
                          (4, 4, 1)[:len(args)], _sds(geom.out_shape, x.dtype), *args, fold=0)
            return y, (x, w, y if relu else None)

        def backward(res: Any, g: JaxArray) -> Any:
            x, w, y = res
            if relu:
                g = jnp.where(y > 0, g, jnp.zeros_like(g))
            results = (_sds(x.shape, x.dtype), _sds(w.shape, w.dtype),
                       _sds(w.shape[:1], w.dtype))
            return _callback(lambda dy, x, w: F.conv2d_backward(dy, x, w, stride, padding,
                                                                **settings),
                             (4, 4, 4), results, g, x, w)
        return forward, backward
    return _with_bias(make)


def conv2d(x: JaxArrayLike, w: JaxArrayLike, b: Optional[JaxArrayLike] = None,
           stride: IntOrPair = 1, padding: PaddingSpec = 0, dilation: IntOrPair = 1,
           groups: int = 1, *, strict: bool = True,
           activation: Optional[Literal["relu"]] = None) -> JaxArray:
    """2-D convolution (cross-correlation), differentiable in x, w and b.

    x: (N, C, H, W); w: (K, C / groups, F_h, F_w); b: (K,) or None.  Returns
    (N, K, H2, W2) with H2 = (H + P_top + P_bottom - D_h*(F_h - 1) - 1)/S_h + 1
    (same for W), as :func:`fastconv.conv2d`: ``padding`` an int, an (h, w)
    pair, ``((top, bottom), (left, right))``, ``"valid"`` or ``"same"``;
    ``dilation`` an int or pair; ``groups`` divides channels and filters.
    ``activation="relu"`` fuses a ReLU (its gradient included).

    >>> import jax.numpy as jnp, fastconv.jax as fj
    >>> fj.conv2d(jnp.ones((1, 3, 8, 8)), jnp.ones((4, 3, 3, 3)), padding=1).shape
    (1, 4, 8, 8)
    """
    where = "fastconv.jax.conv2d"
    relu = valid.activation(activation, where)
    strict = valid.flag(strict, "strict", where)
    names, args = ("x", "w", "b")[:2 + (b is not None)], [x, w] + ([b] if b is not None else [])
    args, _ = _arrays(where, names, *args)
    x, w, b = args[0], args[1], (args[2] if b is not None else None)
    geom = conv_geometry(x.shape, w.shape, stride, padding, strict=strict, where=where,
                         dilation=dilation, groups=groups)
    if b is not None and b.shape != (geom.K,):
        raise ValueError(f"{where}: b must have shape ({geom.K},) to match w's {geom.K} "
                         f"filters, got {b.shape}")
    pads = conv_padding(padding, (geom.FH, geom.FW), (geom.SH, geom.SW), (geom.DH, geom.DW),
                        where)
    return _call_with_bias(_conv2d_ops((geom.SH, geom.SW), pads, (geom.DH, geom.DW), geom.G,
                                       strict, relu), x, w, b)


@functools.lru_cache(maxsize=None)
def _conv_transpose2d_ops(stride: Tuple[int, int], padding: Tuple[int, int],
                          output_padding: Tuple[int, int], groups: int,
                          dilation: Tuple[int, int]) -> _Ops:
    where = "fastconv.jax.conv_transpose2d"

    def make() -> Tuple[_Forward, _Backward]:
        def forward(x: JaxArray, w: JaxArray, b: Optional[JaxArray]
                    ) -> Tuple[JaxArray, Any]:
            g = F._transpose_geometry(tuple(x.shape), tuple(w.shape), stride, padding,
                                      output_padding, groups, dilation, where)
            args = (x, w) if b is None else (x, w, b)
            y = _callback(lambda *a: F.conv_transpose2d(
                              a[0], a[1], a[2] if len(a) > 2 else None, stride, padding,
                              output_padding, groups, dilation),
                          (4, 4, 1)[:len(args)], _sds((g.N, g.C, g.H, g.W), x.dtype),
                          *args, fold=0)
            return y, (x, w)

        def backward(res: Any, g: JaxArray) -> Any:
            x, w = res
            results = (_sds(x.shape, x.dtype), _sds(w.shape, w.dtype),
                       _sds((w.shape[1] * groups,), w.dtype))
            return _callback(lambda dy, x, w: F.conv_transpose2d_backward(
                                 dy, x, w, stride, padding, output_padding, groups, dilation),
                             (4, 4, 4), results, g, x, w)
        return forward, backward
    return _with_bias(make)


def conv_transpose2d(x: JaxArrayLike, w: JaxArrayLike, b: Optional[JaxArrayLike] = None,
                     stride: IntOrPair = 1, padding: IntOrPair = 0,
                     output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> JaxArray:
    """Transposed convolution, as PyTorch's ``conv_transpose2d``.

    x: (N, C_in, H, W); w: (C_in, C_out / groups, F_h, F_w); b: (C_out,) or
    None.  Returns (N, C_out, H_out, W_out) with

        H_out = (H - 1)*S - 2*P + D*(F - 1) + output_padding + 1   (same for W).

    It is the input gradient of ``conv2d`` with the same w, stride and
    padding; ``padding`` removes P rows and columns from each border of the
    result.  A convolution floors (H_out + 2P - F)/S, so S output sizes map
    back to the same H: ``output_padding`` (an int or (h, w) pair, 0 <=
    output_padding < stride) picks the larger ones, adding rows and columns
    at the bottom and right.  ``groups`` and ``dilation`` are as for
    :func:`conv2d`.

    >>> import jax.numpy as jnp, fastconv.jax as fj
    >>> fj.conv_transpose2d(jnp.ones((1, 2, 4, 4)), jnp.ones((2, 3, 3, 3)), stride=2,
    ...                     padding=1, output_padding=1).shape
    (1, 3, 8, 8)
    """
    where = "fastconv.jax.conv_transpose2d"
    names, args = ("x", "w", "b")[:2 + (b is not None)], [x, w] + ([b] if b is not None else [])
    args, _ = _arrays(where, names, *args)
    x, w, b = args[0], args[1], (args[2] if b is not None else None)
    stride = valid.pair(stride, "stride", where)
    padding = valid.pair(padding, "padding", where)
    output_padding = valid.pair(output_padding, "output_padding", where)
    dilation = valid.pair(dilation, "dilation", where)
    geom = F._transpose_geometry(tuple(x.shape), tuple(w.shape), stride, padding,
                                 output_padding, groups, dilation, where)
    if b is not None and b.shape != (geom.C,):
        raise ValueError(f"{where}: b must have shape ({geom.C},) to match w's "
                         f"{geom.C} output channels, got {b.shape}")
    return _call_with_bias(_conv_transpose2d_ops(stride, padding, output_padding, geom.G,
                                                 dilation), x, w, b)


# ------------------------------------------------------------------ pooling

def _pool_args(where: str, x: JaxArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair],
               padding: IntOrPair, strict: bool, dilation: IntOrPair = 1,
               ceil_mode: bool = False) -> Tuple[JaxArray, Dict[str, Any]]:
    """x as a JAX array and the pooling's settings, checked while tracing (a
    hashable dict of kernel_size, stride, padding, dilation, ceil_mode and
    strict)."""
    (x,), _ = _arrays(where, ("x",), x)
    valid.ndim(x.shape, 4, "x", "(N, C, H, W)", where)
    kernel = valid.pair(kernel_size, "kernel_size", where)
    settings: Dict[str, Any] = dict(
        kernel_size=kernel, stride=kernel if stride is None else valid.pair(stride, "stride", where),
        padding=valid.pair(padding, "padding", where),
        dilation=valid.pair(dilation, "dilation", where),
        ceil_mode=valid.flag(ceil_mode, "ceil_mode", where),
        strict=valid.flag(strict, "strict", where))
    pool_geometry(x.shape, where=where, **settings)
    return x, settings


def _frozen(settings: Dict[str, Any]) -> Tuple[Tuple[str, Any], ...]:
    return tuple(sorted(settings.items()))


def _pool_vjp(out_shape: Callable[[Tuple[int, ...]], Tuple[int, ...]],
              run: Callable[[NDArray[Any]], NDArray[Any]],
              run_backward: Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]]
              ) -> Callable[[JaxArray], JaxArray]:
    """A pooling whose gradient needs x as a custom_vjp: ``run(x)`` and
    ``run_backward(dy, x)`` on NumPy arrays, ``out_shape(x.shape)``."""
    def forward(x: JaxArray) -> Tuple[JaxArray, JaxArray]:
        y = _callback(run, (4,), _sds(out_shape(tuple(x.shape)), x.dtype), x, fold=0)
        return y, x

    def backward(x: JaxArray, g: JaxArray) -> Tuple[JaxArray]:
        return (_callback(run_backward, (4, 4), _sds(x.shape, x.dtype), g, x),)

    @jax.custom_vjp  # type: ignore[untyped-decorator]
    def op(x: JaxArray) -> JaxArray:
        return forward(x)[0]

    op.defvjp(forward, backward)
    return op  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=None)
def _max_pool2d_op(frozen: Tuple[Tuple[str, Any], ...]) -> Callable[[JaxArray], JaxArray]:
    where = "fastconv.jax.max_pool2d"
    settings = dict(frozen)
    return _pool_vjp(lambda shape: pool_geometry(shape, where=where, **settings).out_shape,
                     lambda x: F.max_pool2d(x, **settings),
                     lambda dy, x: F.max_pool2d_backward(dy, x, **settings))


def max_pool2d(x: JaxArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False, *,
               strict: bool = True) -> JaxArray:
    """Max pooling over windows of ``kernel_size`` (stride defaults to it).

    x: (N, C, H, W) -> (N, C, H2, W2), as :func:`fastconv.max_pool2d`:
    padding counts as -inf and may be at most half the kernel; ``dilation``
    spaces the window's taps; ``ceil_mode`` rounds the output size up
    (PyTorch's rule); the first maximum of a window in row-major order
    receives its gradient.  ``strict=False`` floors the output size.

    >>> import jax.numpy as jnp, fastconv.jax as fj
    >>> fj.max_pool2d(jnp.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    >>> fj.max_pool2d(jnp.arange(25.0).reshape(1, 1, 5, 5), 2, ceil_mode=True).shape
    (1, 1, 3, 3)
    """
    where = "fastconv.jax.max_pool2d"
    x, settings = _pool_args(where, x, kernel_size, stride, padding, strict, dilation,
                             ceil_mode)
    return _max_pool2d_op(_frozen(settings))(x)


@functools.lru_cache(maxsize=None)
def _avg_pool2d_op(frozen: Tuple[Tuple[str, Any], ...]
                   ) -> Callable[[Tuple[int, ...]], Callable[[JaxArray], JaxArray]]:
    where = "fastconv.jax.avg_pool2d"
    settings = dict(frozen)
    shape_settings = {k: v for k, v in settings.items()
                      if k not in ("count_include_pad", "divisor_override")}

    def forward(x: JaxArray) -> Tuple[JaxArray, None]:
        geom = pool_geometry(x.shape, where=where, **shape_settings)
        y = _callback(lambda x: F.avg_pool2d(x, **settings),
                      (4,), _sds(geom.out_shape, x.dtype), x, fold=0)
        return y, None   # the gradient needs x's shape alone, known when tracing

    def backward(res: None, g: JaxArray, x_shape: Tuple[int, ...]) -> Tuple[JaxArray]:
        dx = _callback(lambda dy: F.avg_pool2d_backward(dy, x_shape, **settings),
                       (4,), _sds(x_shape, g.dtype), g)
        return (dx,)

    @functools.lru_cache(maxsize=None)
    def for_shape(x_shape: Tuple[int, ...]) -> Callable[[JaxArray], JaxArray]:
        @jax.custom_vjp  # type: ignore[untyped-decorator]
        def op(x: JaxArray) -> JaxArray:
            return forward(x)[0]

        op.defvjp(forward, lambda res, g: backward(res, g, x_shape))
        return op  # type: ignore[no-any-return]
    return for_shape


def avg_pool2d(x: JaxArrayLike, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None, *, strict: bool = True) -> JaxArray:
    """Average pooling over windows of ``kernel_size`` (stride defaults to it).

    x: (N, C, H, W) -> (N, C, H2, W2), as :func:`fastconv.avg_pool2d`; with
    ``count_include_pad=False`` a window is divided by the number of input
    values it covers, with ``divisor_override=d`` by d; ``ceil_mode`` rounds
    the output size up (PyTorch's rule).

    >>> import jax.numpy as jnp, fastconv.jax as fj
    >>> fj.avg_pool2d(jnp.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    >>> fj.avg_pool2d(jnp.ones((1, 1, 4, 4)), 2, divisor_override=1)[0, 0, 0, 0].item()
    4.0
    """
    where = "fastconv.jax.avg_pool2d"
    x, settings = _pool_args(where, x, kernel_size, stride, padding, strict, 1, ceil_mode)
    del settings["dilation"]
    settings["count_include_pad"] = valid.flag(count_include_pad, "count_include_pad", where)
    if divisor_override is not None:
        divisor_override = valid.integer(divisor_override, "divisor_override", where)
        if divisor_override == 0:
            raise ValueError(f"{where}: divisor_override must be a nonzero int (or None), "
                             f"got 0")
    settings["divisor_override"] = divisor_override
    return _avg_pool2d_op(_frozen(settings))(tuple(x.shape))(x)


@functools.lru_cache(maxsize=None)
def _lp_pool2d_op(norm_type: float, frozen: Tuple[Tuple[str, Any], ...]
                  ) -> Callable[[JaxArray], JaxArray]:
    where = "fastconv.jax.lp_pool2d"
    settings = dict(frozen)
    return _pool_vjp(lambda shape: pool_geometry(shape, padding=0, dilation=1, where=where,
                                                 **settings).out_shape,
                     lambda x: F.lp_pool2d(x, norm_type, **settings),
                     lambda dy, x: F.lp_pool2d_backward(dy, x, norm_type, **settings))


def lp_pool2d(x: JaxArrayLike, norm_type: float, kernel_size: IntOrPair,
              stride: Optional[IntOrPair] = None, ceil_mode: bool = False, *,
              strict: bool = True) -> JaxArray:
    """Power-average (LP) pooling, as :func:`fastconv.lp_pool2d` and PyTorch's
    ``lp_pool2d``: each window's (sum of x**p)**(1/p); ``norm_type`` p = 2 is
    L2-norm pooling.  x: (N, C, H, W) -> (N, C, H2, W2), no padding.

    >>> import jax.numpy as jnp, fastconv.jax as fj
    >>> fj.lp_pool2d(jnp.full((1, 1, 2, 2), 3.0), 2, 2)[0, 0, 0, 0].item()
    6.0
    """
    where = "fastconv.jax.lp_pool2d"
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: norm_type must be a number, got "
                        f"{type(norm_type).__name__}") from None
    x, settings = _pool_args(where, x, kernel_size, stride, 0, strict, 1, ceil_mode)
    del settings["padding"], settings["dilation"]
    return _lp_pool2d_op(p, _frozen(settings))(x)


# ------------------------------------------------------------------- linear

@functools.lru_cache(maxsize=None)
def _linear_ops(relu: bool, x_ndim: int) -> _Ops:
    activation: Optional[Literal["relu"]] = "relu" if relu else None

    def make() -> Tuple[_Forward, _Backward]:
        def forward(x: JaxArray, w: JaxArray, b: Optional[JaxArray]
                    ) -> Tuple[JaxArray, Any]:
            args = (x, w) if b is None else (x, w, b)
            y = _callback(lambda *a: F.linear(a[0], a[1], a[2] if len(a) > 2 else None,
                                              activation=activation),
                          (x_ndim, 2, 1)[:len(args)], _sds((x.shape[0], w.shape[0]), x.dtype),
                          *args, fold=0)
            return y, (x, w, y if relu else None)

        def backward(res: Any, g: JaxArray) -> Any:
            x, w, y = res
            if relu:
                g = jnp.where(y > 0, g, jnp.zeros_like(g))
            results = (_sds(x.shape, x.dtype), _sds(w.shape, w.dtype),
                       _sds(w.shape[:1], w.dtype))
            return _callback(F.linear_backward, (2, x_ndim, 2), results, g, x, w)
        return forward, backward
    return _with_bias(make)


def linear(x: JaxArrayLike, w: JaxArrayLike, b: Optional[JaxArrayLike] = None, *,
           activation: Optional[Literal["relu"]] = None) -> JaxArray:
    """Fully connected layer: y = x_flat @ w.T + b, as :func:`fastconv.linear`.

    x: (N, D) or (N, d1, ..., dk), flattened to (N, D); w: (out_features, D);
    b: (out_features,) or None.  Returns (N, out_features); the gradient of x
    has x's shape.  ``activation="relu"`` fuses a ReLU.

    >>> import jax.numpy as jnp, fastconv.jax as fj
    >>> fj.linear(jnp.ones((2, 3)), jnp.ones((4, 3)), jnp.arange(4.0)).tolist()
    [[3.0, 4.0, 5.0, 6.0], [3.0, 4.0, 5.0, 6.0]]
    """
    where = "fastconv.jax.linear"
    relu = valid.activation(activation, where)
    names, args = ("x", "w", "b")[:2 + (b is not None)], [x, w] + ([b] if b is not None else [])
    args, _ = _arrays(where, names, *args)
    x, w, b = args[0], args[1], (args[2] if b is not None else None)
    if x.ndim < 2:
        raise ValueError(f"{where}: x must be (N, D) or (N, d1, ..., dk), got shape {x.shape}")
    valid.ndim(w.shape, 2, "w", "(out_features, in_features)", where)
    D = math.prod(x.shape[1:])
    if D != w.shape[1]:
        raise ValueError(f"{where}: x has {D} features per sample (x.shape[1:] = "
                         f"{x.shape[1:]}) but w expects {w.shape[1]} (w.shape[1])")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"{where}: b must have shape ({w.shape[0]},) to match w's "
                         f"{w.shape[0]} outputs, got {b.shape}")
    return _call_with_bias(_linear_ops(relu, x.ndim), x, w, b)
