"""Layers with parameters, gradients and a forward cache: the CONV / POOL /
FC / RELU building blocks of a ConvNet, and ``Sequential`` to chain them.

Every layer is a plain object::

    y = layer(x)              # same as layer.forward(x); caches what backward needs
    dx = layer.backward(dy)   # returns dL/dx and stores dL/dparam in layer.grads

``layer.params`` and ``layer.grads`` map ``"weight"`` / ``"bias"`` to arrays;
an optimiser updates ``params`` in place.  ``backward`` overwrites ``grads``
(it does not accumulate), so calling ``zero_grad`` between steps is optional.

A layer checks its settings when it is built.  The computation itself is one
call into :mod:`fastconv.functional`, to which the layer passes its repr as
the name to start error messages with: the output-size formula
``(W - F + 2P)/S + 1`` is checked on every forward through
:mod:`fastconv._shapes`, and a :class:`ShapeError` names the layer (and, inside
a ``Sequential``, its index).  Conv2d and the pooling layers take the
functional API's keyword ``strict``: True (the default) rejects a fractional
output size, False floors it as PyTorch does.

dtypes: ``Conv2d`` and ``Linear`` compute in the dtype of their parameters
(float32 by default, float64 with ``dtype=np.float64``).  Any real input
(float16/32/64, integer) is converted to that dtype first, so a float64 array
fed to a float32 layer is rounded to float32 and the output, and the input
gradient returned by ``backward``, are float32.  Complex, bool, object and
string inputs raise TypeError.  Pooling and ReLU have no parameters and follow
the functional API (float32 and float64 kept, integers promoted to float64);
Flatten only reshapes, so it keeps any dtype.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import (TYPE_CHECKING, Any, Dict, Iterator, List, Literal, Optional, Sequence,
                    Tuple, Union, overload)

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _validate as valid
from . import functional as F
from ._shapes import (PaddingSpec, ShapeError, adaptive_output_hw, conv_geometry,
                      conv_output_hw, conv_padding, output_size)
from ._typing import ArrayLike, FloatArray, IndexArray, Int, IntOrPair, Shape, ShapeLike

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["Module", "Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool2d", "Linear", "ReLU", "Flatten", "Sequential", "Summary"]

# --------------------------------------------------------------------------
# helpers

def _fmt_shape(shape: Sequence[int]) -> str:
    return " x ".join(str(s) for s in shape)


# --------------------------------------------------------------------------
# base class

class Module:
    """Base of all layers: parameters, gradients and the call protocol.

    ``params`` and ``grads`` map names (``"weight"``, ``"bias"``) to arrays of
    the same shapes, in the layer's dtype (float32 or float64); a layer
    without parameters has empty dicts.  ``layer(x)`` is ``layer.forward(x)``.

    >>> import numpy as np, fastconv
    >>> layer = fastconv.Linear(3, 2)
    >>> isinstance(layer, fastconv.modules.Module), sorted(layer.params)
    (True, ['bias', 'weight'])
    >>> layer.params["weight"].shape, layer.grads["weight"].shape, fastconv.ReLU().params
    ((2, 3), (2, 3), {})
    """

    def __init__(self) -> None:
        self.params: Dict[str, FloatArray] = {}
        self.grads: Dict[str, FloatArray] = {}

    def __call__(self, x: ArrayLike) -> NDArray[Any]:
        """``layer(x)``: the same as ``layer.forward(x)``.

        >>> import numpy as np, fastconv
        >>> fastconv.ReLU()(np.array([[-1.0, 2.0]])).tolist()
        [[0.0, 2.0]]
        """
        return self.forward(x)

    def forward(self, x: ArrayLike) -> NDArray[Any]:  # pragma: no cover - every layer overrides it
        """The layer's output for a batch ``x`` (batch axis first); keeps what
        ``backward`` needs.  Each layer says its shapes and dtypes.

        >>> import numpy as np, fastconv
        >>> fastconv.Flatten().forward(np.zeros((2, 3, 4))).shape
        (2, 12)
        """
        raise NotImplementedError

    def backward(self, dy: ArrayLike,
                 need_dx: bool = True) -> Optional[NDArray[Any]]:  # pragma: no cover
        """Back-propagate ``dy`` (shaped like the last forward's output):
        stores the parameters' gradients in ``grads`` (overwriting them) and
        returns the gradient with respect to the last forward's input, or
        None with ``need_dx=False``.  RuntimeError before any forward.

        >>> import numpy as np, fastconv
        >>> relu = fastconv.ReLU()
        >>> y = relu(np.array([-1.0, 2.0]))
        >>> relu.backward(np.array([5.0, 5.0])).tolist(), relu.backward(y, need_dx=False)
        ([0.0, 5.0], None)
        """
        raise NotImplementedError

    def output_shape(self, input_shape: ShapeLike) -> Shape:  # pragma: no cover
        """Shape of one output sample for one input sample (no batch axis).

        >>> import fastconv
        >>> fastconv.Flatten().output_shape((8, 4, 4))
        (128,)
        """
        raise NotImplementedError

    def mult_adds(self, input_shape: ShapeLike) -> int:
        """Multiply-adds per sample; layers without weights report 0.

        >>> import fastconv
        >>> fastconv.ReLU().mult_adds((8, 4, 4)), fastconv.Linear(4, 2).mult_adds((4,))
        (0, 8)
        """
        return 0

    @property
    def num_params(self) -> int:
        """The number of parameters: the sizes of ``params`` added up.

        >>> import fastconv
        >>> fastconv.Conv2d(3, 8, 5).num_params, fastconv.MaxPool2d(2).num_params
        (608, 0)
        """
        return int(sum(p.size for p in self.params.values()))

    def zero_grad(self) -> None:
        """Set every gradient in ``grads`` to zeros shaped like its parameter.

        >>> import numpy as np, fastconv
        >>> layer = fastconv.Linear(2, 1)
        >>> _ = layer(np.ones((1, 2))); _ = layer.backward(np.ones((1, 1)))
        >>> layer.grads["bias"].tolist(), layer.zero_grad(), layer.grads["bias"].tolist()
        ([1.0], None, [0.0])
        """
        for name, p in self.params.items():
            self.grads[name] = np.zeros_like(p)

    def _need_forward(self, attr: str) -> Any:
        value = getattr(self, attr, None)
        if value is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        return value

    def _sample_shape(self, input_shape: ShapeLike, ndim: Optional[int],
                      layout: str) -> Shape:
        # Shared by forward (x.shape[1:]) and Sequential.summary.
        try:
            shape = tuple(int(s) for s in input_shape)
        except TypeError:
            raise TypeError(f"{self!r}: input shape must be a tuple of ints, "
                            f"got {input_shape!r}") from None
        if ndim is not None and len(shape) != ndim:
            raise ValueError(f"{self!r}: expected samples of shape {layout} "
                             f"(no batch axis), got {_fmt_shape(shape) or '()'}")
        if any(s < 0 for s in shape):
            raise ValueError(f"{self!r}: negative size in input shape {shape}")
        return shape


class _Parametrised(Module):
    """Conv2d and Linear: He-initialised weight, zero bias, a fixed dtype."""

    dtype: np.dtype[np.floating[Any]]

    def _init_params(self, wshape: Tuple[int, ...], fan_in: int, bias: bool,
                     dtype: np.dtype[np.floating[Any]], seed: Optional[int]) -> None:
        rng = np.random.default_rng(seed)
        # Kaiming normal for ReLU networks: keeps the activation variance
        # roughly constant from layer to layer.
        std = math.sqrt(2.0 / fan_in)
        self.params["weight"] = rng.standard_normal(wshape, dtype=dtype) * dtype.type(std)
        if bias:
            self.params["bias"] = np.zeros(wshape[0], dtype=dtype)
        self.zero_grad()

    def _set_param(self, name: str, value: ArrayLike) -> None:
        if name not in self.params:
            raise AttributeError(f"{self!r} has no {name}")
        old = self.params[name]
        arr = valid.real_array(value, name, repr(self))
        if arr.shape != old.shape:
            raise ValueError(f"{self!r}: {name} must have shape {old.shape}, "
                             f"got {arr.shape}")
        self.params[name] = np.array(arr, dtype=self.dtype, order="C", copy=True)

    @property
    def weight(self) -> FloatArray:
        """The weights: (out_channels, in_channels, F_h, F_w) for Conv2d,
        (out_features, in_features) for Linear, in the layer's dtype.
        Assigning an array (any real dtype) of that shape stores a copy in
        the layer's dtype.

        >>> import numpy as np, fastconv
        >>> layer = fastconv.Linear(3, 2)
        >>> layer.weight = np.ones((2, 3), np.int64)
        >>> layer.weight.dtype.name, float(layer.weight.sum())
        ('float32', 6.0)
        >>> layer.weight is layer.params["weight"]
        True
        """
        return self.params["weight"]

    @weight.setter
    def weight(self, value: ArrayLike) -> None:
        self._set_param("weight", value)

    @property
    def bias(self) -> Optional[FloatArray]:
        """The biases, (out_channels,) or (out_features,), in the layer's
        dtype; None for a layer built with ``bias=False``.  Assigning copies,
        as for ``weight``.

        >>> import fastconv
        >>> fastconv.Conv2d(3, 2, 1).bias.tolist(), fastconv.Linear(3, 2, bias=False).bias
        ([0.0, 0.0], None)
        """
        return self.params.get("bias")

    @bias.setter
    def bias(self, value: ArrayLike) -> None:
        self._set_param("bias", value)

    def _as_param_dtype(self, a: ArrayLike, what: str) -> FloatArray:
        a = valid.real_array(a, what, repr(self))
        return a.astype(self.dtype, copy=False)


# --------------------------------------------------------------------------
# layers

class Conv2d(_Parametrised):
    """2-D convolution over NCHW input: K filters of F_h x F_w on D1 channels.

    ``weight`` has shape (out_channels, in_channels / groups, F_h, F_w) and
    ``bias`` (out_channels,); the layer holds F_h*F_w*(D1/groups)*K + K
    parameters.  ``kernel_size``, ``stride`` and ``dilation`` take an int or
    an (h, w) pair; ``padding`` also ``((top, bottom), (left, right))``,
    ``"valid"`` or ``"same"`` (see :func:`fastconv.conv2d`).
    ``seed`` makes the He initialisation reproducible.  ``strict=False``
    floors a fractional output size as PyTorch does, instead of raising.
    ``dtype`` (float32 or float64) is the dtype of the parameters, of the
    output and of the input gradient.

    >>> import numpy as np, fastconv
    >>> conv = fastconv.Conv2d(3, 8, 5, padding=2, seed=0)
    >>> conv
    Conv2d(3, 8, kernel_size=5, padding=2)
    >>> conv.weight.shape, conv.bias.shape, conv.weight.dtype.name, conv.num_params
    ((8, 3, 5, 5), (8,), 'float32', 608)
    >>> fastconv.Conv2d(8, 8, 3, padding="same", dilation=2, groups=8).num_params
    80
    """

    def __init__(self, in_channels: Int, out_channels: Int, kernel_size: IntOrPair,
                 stride: IntOrPair = 1, padding: PaddingSpec = 0, bias: bool = True, *,
                 dtype: DTypeLike = np.float32, seed: Optional[int] = None,
                 strict: bool = True, dilation: IntOrPair = 1, groups: Int = 1) -> None:
        super().__init__()
        where = "Conv2d"
        self.in_channels = valid.layer_size(in_channels, "in_channels", where)
        self.out_channels = valid.layer_size(out_channels, "out_channels", where)
        self.kernel_size = valid.pair_at_least(kernel_size, 1, "kernel_size", where)
        self.stride = valid.pair_at_least(stride, 1, "stride", where)
        self.dilation = valid.pair_at_least(dilation, 1, "dilation", where)
        self.groups = valid.layer_size(groups, "groups", where)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{where}: in_channels ({self.in_channels}) and out_channels "
                             f"({self.out_channels}) must be multiples of groups "
                             f"({self.groups})")
        # kept as given when it is a string or per-side pairs (the repr shows
        # it so), else as an (h, w) pair
        self.padding: Any
        if isinstance(padding, str) or (isinstance(padding, (tuple, list)) and
                                        any(isinstance(p, (tuple, list)) for p in padding)):
            sides = conv_padding(padding, self.kernel_size, self.stride, self.dilation, where)
            self.padding = padding if isinstance(padding, str) else sides
        else:
            self.padding = valid.pair_at_least(padding, 0, "padding", where)
        has_bias = valid.flag(bias, "bias", where)
        self.dtype = valid.param_dtype(dtype, where)
        self.strict = valid.flag(strict, "strict", where)
        fh, fw = self.kernel_size
        cg = self.in_channels // self.groups
        self._init_params((self.out_channels, cg, fh, fw), cg * fh * fw, has_bias,
                          self.dtype, seed)
        self._x: Optional[FloatArray] = None

    def __repr__(self) -> str:
        parts = [str(self.in_channels), str(self.out_channels),
                 f"kernel_size={valid.show_pair(self.kernel_size)}"]
        if self.stride != (1, 1):
            parts.append(f"stride={valid.show_pair(self.stride)}")
        if isinstance(self.padding, str) or isinstance(self.padding[0], tuple):
            parts.append(f"padding={self.padding!r}")
        elif self.padding != (0, 0):
            parts.append(f"padding={valid.show_pair(self.padding)}")
        if self.dilation != (1, 1):
            parts.append(f"dilation={valid.show_pair(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if "bias" not in self.params:
            parts.append("bias=False")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        if not self.strict:
            parts.append("strict=False")
        return f"Conv2d({', '.join(parts)})"

    def _check_channels(self, c: int) -> None:
        # conv2d checks this too, but words it for a caller who passed w.
        if c != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input "
                             f"channels, got {c}")

    def output_shape(self, input_shape: ShapeLike) -> Tuple[int, int, int]:
        """(out_channels, H2, W2) for one sample of shape (in_channels, H, W);
        ShapeError when the output-size formula does not give an integer (with
        ``strict=True``) or gives less than 1.

        >>> import fastconv
        >>> fastconv.Conv2d(3, 8, 4, stride=2, padding=1).output_shape((3, 32, 32))
        (8, 16, 16)
        """
        c, h, w = self._sample_shape(input_shape, 3, "(C, H, W)")
        self._check_channels(c)
        g = conv_geometry((1, c, h, w), self.weight.shape, self.stride, self.padding,
                          strict=self.strict, where=repr(self), dilation=self.dilation,
                          groups=self.groups)
        return (self.out_channels, g.H2, g.W2)

    def mult_adds(self, input_shape: ShapeLike) -> int:
        """Multiply-adds per sample: K*H2*W2 outputs of (C/groups)*F_h*F_w each.

        >>> import fastconv
        >>> fastconv.Conv2d(3, 8, 3, padding=1).mult_adds((3, 32, 32))  # 8*32*32 * 3*3*3
        221184
        """
        k, h2, w2 = self.output_shape(input_shape)
        fh, fw = self.kernel_size
        return k * h2 * w2 * (self.in_channels // self.groups) * fh * fw

    def forward(self, x: ArrayLike) -> FloatArray:
        """The convolution of x: (N, in_channels, H, W) -> (N, out_channels,
        H2, W2).  x (any real dtype) is converted to the layer's dtype, which
        the output has.

        >>> import numpy as np, fastconv
        >>> conv = fastconv.Conv2d(3, 8, 4, stride=2, padding=1, seed=0)
        >>> y = conv(np.ones((2, 3, 32, 32)))
        >>> y.shape, y.dtype.name
        ((2, 8, 16, 16), 'float32')
        """
        x = self._as_param_dtype(x, "input")
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected input of shape (N, "
                             f"{self.in_channels}, H, W), got shape {x.shape}")
        self._check_channels(x.shape[1])
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                     strict=self.strict, dilation=self.dilation, groups=self.groups,
                     _name=repr(self))
        self._x = x
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """Back-propagate dy, (N, out_channels, H2, W2): stores
        ``grads["weight"]`` and ``grads["bias"]`` and returns dx shaped like
        the last forward's input, all in the layer's dtype (dx is None with
        ``need_dx=False``).

        >>> import numpy as np, fastconv
        >>> conv = fastconv.Conv2d(1, 2, 3, padding=1, dtype=np.float64, seed=0)
        >>> y = conv(np.ones((1, 1, 4, 4)))
        >>> dx = conv.backward(np.ones_like(y))
        >>> dx.shape, conv.grads["weight"].shape, conv.grads["bias"].tolist()
        ((1, 1, 4, 4), (2, 1, 3, 3), [16.0, 16.0])
        >>> conv.backward(np.ones_like(y), need_dx=False) is None
        True
        """
        x = self._need_forward("_x")
        dy = self._as_param_dtype(dy, "dy")
        dx, dw, db = F.conv2d_backward(dy, x, self.weight, self.stride, self.padding,
                                       need_dx=need_dx, dilation=self.dilation,
                                       groups=self.groups)
        self.grads["weight"] = dw
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx


class Linear(_Parametrised):
    """Fully connected layer: y = x W^T + b with W of shape (out, in).

    Input of shape (N, d1, ..., dk) is flattened to (N, in_features); the
    input gradient has the input's shape.  ``dtype`` (float32 or float64) is
    the dtype of the parameters, of the output and of the input gradient;
    ``seed`` makes the He initialisation reproducible.

    >>> import numpy as np, fastconv
    >>> fc = fastconv.Linear(12, 5, dtype=np.float64, seed=0)
    >>> fc
    Linear(12, 5, dtype=float64)
    >>> fc.weight.shape, fc.bias.shape, fc.num_params
    ((5, 12), (5,), 65)
    """

    def __init__(self, in_features: Int, out_features: Int, bias: bool = True, *,
                 dtype: DTypeLike = np.float32, seed: Optional[int] = None) -> None:
        super().__init__()
        where = "Linear"
        self.in_features = valid.layer_size(in_features, "in_features", where)
        self.out_features = valid.layer_size(out_features, "out_features", where)
        has_bias = valid.flag(bias, "bias", where)
        self.dtype = valid.param_dtype(dtype, where)
        self._init_params((self.out_features, self.in_features), self.in_features,
                          has_bias, self.dtype, seed)
        self._x: Optional[FloatArray] = None

    def __repr__(self) -> str:
        parts = [str(self.in_features), str(self.out_features)]
        if "bias" not in self.params:
            parts.append("bias=False")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return f"Linear({', '.join(parts)})"

    def output_shape(self, input_shape: ShapeLike) -> Tuple[int]:
        """(out_features,) for one sample of in_features values in any shape.

        >>> import fastconv
        >>> fastconv.Linear(12, 5).output_shape((3, 2, 2))
        (5,)
        """
        shape = self._sample_shape(input_shape, None, "")
        d = math.prod(shape)
        if len(shape) == 0 or d != self.in_features:
            got = (f"{_fmt_shape(shape)} = {d}" if len(shape) > 1
                   else str(shape[0]) if shape else "()")
            raise ValueError(f"{self!r}: expected {self.in_features} input "
                             f"features per sample, got {got}")
        return (self.out_features,)

    def mult_adds(self, input_shape: ShapeLike) -> int:
        """Multiply-adds per sample: in_features * out_features.

        >>> import fastconv
        >>> fastconv.Linear(12, 5).mult_adds((12,))
        60
        """
        self.output_shape(input_shape)
        return self.in_features * self.out_features

    def forward(self, x: ArrayLike) -> FloatArray:
        """x: (N, in_features) or (N, d1, ..., dk) with d1*...*dk =
        in_features -> (N, out_features).  x (any real dtype) is converted to
        the layer's dtype, which the output has.

        >>> import numpy as np, fastconv
        >>> fc = fastconv.Linear(12, 5, dtype=np.float64)
        >>> y = fc(np.ones((2, 3, 2, 2), np.float32))
        >>> y.shape, y.dtype.name
        ((2, 5), 'float64')
        """
        x = self._as_param_dtype(x, "input")
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input of shape (N, "
                             f"{self.in_features}) or (N, ...), got shape {x.shape}")
        # linear checks the feature count too, but words it for a caller who passed w.
        self.output_shape(x.shape[1:])
        y = F.linear(x, self.weight, self.bias, _name=repr(self))
        self._x = x
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """Back-propagate dy, (N, out_features): stores ``grads["weight"]``
        (out_features, in_features) and ``grads["bias"]`` and returns dx
        shaped like the last forward's input, in the layer's dtype (None with
        ``need_dx=False``).

        >>> import numpy as np, fastconv
        >>> fc = fastconv.Linear(3, 2)
        >>> fc.weight = [[1, 0, 0], [0, 1, 0]]
        >>> y = fc(np.ones((4, 3)))
        >>> dx = fc.backward(np.ones_like(y))
        >>> dx.shape, dx[0].tolist(), fc.grads["bias"].tolist()
        ((4, 3), [1.0, 1.0, 0.0], [4.0, 4.0])
        """
        x = self._need_forward("_x")
        dy = self._as_param_dtype(dy, "dy")
        dx, dw, db = F.linear_backward(dy, x, self.weight)
        self.grads["weight"] = dw
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx if need_dx else None


class _Pool2d(Module):
    _name = "Pool2d"

    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair],
                 padding: IntOrPair, strict: bool, *, dilation: IntOrPair = 1,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        where = self._name
        self.strict = valid.flag(strict, "strict", where)
        self.ceil_mode = valid.flag(ceil_mode, "ceil_mode", where)
        self.kernel_size = valid.pair_at_least(kernel_size, 1, "kernel_size", where)
        self.stride = (self.kernel_size if stride is None
                       else valid.pair_at_least(stride, 1, "stride", where))
        self.padding = valid.pair_at_least(padding, 0, "padding", where)
        self.dilation = valid.pair_at_least(dilation, 1, "dilation", where)
        valid.pool_window(self.kernel_size, self.padding, where, compact=True)

    def _repr_parts(self) -> List[str]:
        parts = [f"kernel_size={valid.show_pair(self.kernel_size)}"]
        if self.stride != self.kernel_size:
            parts.append(f"stride={valid.show_pair(self.stride)}")
        if self.padding != (0, 0):
            parts.append(f"padding={valid.show_pair(self.padding)}")
        if self.dilation != (1, 1):
            parts.append(f"dilation={valid.show_pair(self.dilation)}")
        if self.ceil_mode:
            parts.append("ceil_mode=True")
        if not self.strict:
            parts.append("strict=False")
        return parts

    def __repr__(self) -> str:
        return f"{self._name}({', '.join(self._repr_parts())})"

    def output_shape(self, input_shape: ShapeLike) -> Tuple[int, int, int]:
        """(C, H2, W2) for one sample of shape (C, H, W); ShapeError when the
        output-size formula does not give an integer (with ``strict=True``
        and without ``ceil_mode``).

        >>> import fastconv
        >>> fastconv.MaxPool2d(3, stride=2, padding=1, strict=False).output_shape((64, 112, 112))
        (64, 56, 56)
        >>> fastconv.AvgPool2d(2).output_shape((3, 8, 6))
        (3, 4, 3)
        >>> fastconv.MaxPool2d(2, ceil_mode=True).output_shape((3, 7, 7))
        (3, 4, 4)
        """
        c, h, w = self._sample_shape(input_shape, 3, "(C, H, W)")
        if self.dilation == (1, 1) and not self.ceil_mode:
            h2, w2 = conv_output_hw(h, w, self.kernel_size, self.stride, self.padding,
                                    strict=self.strict, where=repr(self))
            return (c, h2, w2)
        h2, w2 = (output_size(n, k, s, p, strict=self.strict, axis=axis, where=repr(self),
                              dilation=d, ceil_mode=self.ceil_mode)
                  for n, k, s, p, d, axis in zip((h, w), self.kernel_size, self.stride,
                                                 self.padding, self.dilation,
                                                 ("height", "width")))
        return (c, h2, w2)

    def _checked_input(self, x: ArrayLike) -> NDArray[Any]:
        # The op checks the dtype and ndim too, but in words about its argument x.
        x = valid.real_array(x, "input", repr(self))
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected input of shape (N, C, H, W), "
                             f"got shape {x.shape}")
        return x


class MaxPool2d(_Pool2d):
    """Max pooling; ``stride=None`` means stride = kernel_size; ``strict=False``
    floors a fractional output size (e.g. 3x3 stride 2 padding 1 on 112 -> 56).

    ``dilation`` spaces a window's taps (as :func:`fastconv.max_pool2d`);
    ``ceil_mode=True`` rounds the output size up, PyTorch's way.  Padding
    counts as -inf; the first maximum of a window (row-major order)
    receives the gradient.  When windows overlap (kernel larger than
    stride) or are dilated, the forward records where the maxima are
    (``max_pool2d(..., return_indices=True)``) and the backward adds dy
    there; otherwise the backward finds them again from the saved input.
    Either way the gradient has the same bits.

    >>> import fastconv
    >>> fastconv.MaxPool2d(2), fastconv.MaxPool2d(3, stride=2, padding=1, strict=False)
    (MaxPool2d(kernel_size=2), MaxPool2d(kernel_size=3, stride=2, padding=1, strict=False))
    >>> fastconv.MaxPool2d(3, 2, dilation=2, ceil_mode=True)
    MaxPool2d(kernel_size=3, stride=2, dilation=2, ceil_mode=True)
    """

    _name = "MaxPool2d"

    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, *, ceil_mode: bool = False,
                 strict: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, strict, dilation=dilation,
                         ceil_mode=ceil_mode)
        self._x: Optional[NDArray[Any]] = None
        self._indices: Optional[IndexArray] = None
        # Overlapping windows: the forward records where the maxima are, and
        # the backward only adds dy there (finding them again from x costs
        # more than the forward itself; so does every dilated window, which
        # the window-by-window loops find).  Disjoint windows: the backward
        # finds them again from x, in vector loops that beat the scatter.
        # Both give the same bits.
        self._record = (self.kernel_size[0] > self.stride[0]
                        or self.kernel_size[1] > self.stride[1]
                        or self.dilation != (1, 1))

    def forward(self, x: ArrayLike) -> FloatArray:
        """The maxima of x's windows: (N, C, H, W) -> (N, C, H2, W2); float32
        and float64 keep their dtype, integers give float64.

        >>> import numpy as np, fastconv
        >>> fastconv.MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
        """
        x = self._checked_input(x)
        if self._record:
            y, self._indices = F.max_pool2d(x, self.kernel_size, self.stride, self.padding,
                                            self.dilation, self.ceil_mode, strict=self.strict,
                                            return_indices=True, _name=repr(self))
        else:
            y = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                             self.ceil_mode, strict=self.strict, _name=repr(self))
        self._x = x
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """Back-propagate dy, (N, C, H2, W2): each window's gradient goes to
        its first maximum; returns dx shaped like the last forward's input
        (None with ``need_dx=False``).

        >>> import numpy as np, fastconv
        >>> pool = fastconv.MaxPool2d(2)
        >>> y = pool(np.arange(16.0).reshape(1, 1, 4, 4))
        >>> pool.backward(np.ones_like(y))[0, 0].tolist()
        [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
        """
        x = self._need_forward("_x")
        if not need_dx:
            return None
        return F.max_pool2d_backward(dy, x, self.kernel_size, self.stride, self.padding,
                                     self.dilation, self.ceil_mode, strict=self.strict,
                                     indices=self._indices)


class AvgPool2d(_Pool2d):
    """Average pooling; ``stride=None`` means stride = kernel_size;
    ``strict=False`` floors a fractional output size.

    With ``count_include_pad=False`` each window is divided by the number of
    input (non-padding) elements it covers; ``divisor_override`` (a nonzero
    int) divides every window by that number instead.  ``ceil_mode=True``
    rounds the output size up, PyTorch's way (see
    :func:`fastconv.avg_pool2d`).

    >>> import fastconv
    >>> fastconv.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False)
    >>> fastconv.AvgPool2d(2, ceil_mode=True, divisor_override=3)
    AvgPool2d(kernel_size=2, ceil_mode=True, divisor_override=3)
    """

    _name = "AvgPool2d"

    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
                 padding: IntOrPair = 0, count_include_pad: bool = True, *,
                 ceil_mode: bool = False, divisor_override: Optional[Int] = None,
                 strict: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, strict, ceil_mode=ceil_mode)
        self.count_include_pad = valid.flag(count_include_pad, "count_include_pad",
                                            self._name)
        self.divisor_override: Optional[int] = None
        if divisor_override is not None:
            d = valid.integer(divisor_override, "divisor_override", self._name)
            if d == 0:
                raise ValueError(f"{self._name}: divisor_override must be a nonzero int "
                                 f"(or None), got {divisor_override!r}")
            self.divisor_override = d
        self._x_shape: Optional[Shape] = None

    def _repr_parts(self) -> List[str]:
        parts = super()._repr_parts()
        if not self.count_include_pad:
            parts.append("count_include_pad=False")
        if self.divisor_override is not None:
            parts.append(f"divisor_override={self.divisor_override}")
        return parts

    def forward(self, x: ArrayLike) -> FloatArray:
        """The means of x's windows: (N, C, H, W) -> (N, C, H2, W2); float32
        and float64 keep their dtype, integers give float64.

        >>> import numpy as np, fastconv
        >>> fastconv.AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))[0, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
        """
        x = self._checked_input(x)
        y = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                         self.count_include_pad, self.divisor_override, strict=self.strict,
                         _name=repr(self))
        self._x_shape = x.shape
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """Back-propagate dy, (N, C, H2, W2): each window's gradient is shared
        out over its inputs; returns dx shaped like the last forward's input
        (None with ``need_dx=False``).

        >>> import numpy as np, fastconv
        >>> pool = fastconv.AvgPool2d(2)
        >>> y = pool(np.zeros((1, 1, 2, 4)))
        >>> pool.backward(np.array([[[[4.0, 8.0]]]]))[0, 0].tolist()
        [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
        """
        x_shape = self._need_forward("_x_shape")
        if not need_dx:
            return None
        return F.avg_pool2d_backward(dy, x_shape, self.kernel_size, self.stride,
                                     self.padding, self.ceil_mode, self.count_include_pad,
                                     self.divisor_override, strict=self.strict)


class LPPool2d(_Pool2d):
    """Power-average pooling, ``(sum over the window of x**p)**(1/p)``
    (:func:`fastconv.lp_pool2d`); ``norm_type=2`` is L2-norm pooling.  No
    padding; ``stride=None`` means stride = kernel_size; ``ceil_mode`` and
    ``strict`` as for :class:`AvgPool2d`.

    >>> import fastconv
    >>> fastconv.LPPool2d(2, 3, stride=2, ceil_mode=True)
    LPPool2d(norm_type=2, kernel_size=3, stride=2, ceil_mode=True)
    """

    _name = "LPPool2d"

    def __init__(self, norm_type: float, kernel_size: IntOrPair,
                 stride: Optional[IntOrPair] = None, ceil_mode: bool = False, *,
                 strict: bool = True) -> None:
        super().__init__(kernel_size, stride, 0, strict, ceil_mode=ceil_mode)
        if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, numbers.Real):
            raise TypeError(f"{self._name}: norm_type must be a real number, got {norm_type!r}")
        if norm_type != norm_type or norm_type == 0:
            raise ValueError(f"{self._name}: norm_type must be nonzero and not NaN, "
                             f"got {norm_type!r}")
        self.norm_type: float = float(norm_type) if isinstance(norm_type, np.floating) \
            else norm_type
        self._x: Optional[NDArray[Any]] = None

    def _repr_parts(self) -> List[str]:
        return [f"norm_type={self.norm_type!r}"] + super()._repr_parts()

    def forward(self, x: ArrayLike) -> FloatArray:
        """The LP norms of x's windows: (N, C, H, W) -> (N, C, H2, W2);
        float32 and float64 keep their dtype, integers give float64.

        >>> import numpy as np, fastconv
        >>> fastconv.LPPool2d(2, 2)(np.array([[[[3.0, 4.0], [0.0, 0.0]]]])).tolist()
        [[[[5.0]]]]
        """
        x = self._checked_input(x)
        y = F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
                        strict=self.strict, _name=repr(self))
        self._x = x
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """Back-propagate dy, (N, C, H2, W2) (zero where a window's sum of
        ``x**p`` is zero); returns dx shaped like the last forward's input
        (None with ``need_dx=False``).

        >>> import numpy as np, fastconv
        >>> pool = fastconv.LPPool2d(2, 2)
        >>> y = pool(np.array([[[[3.0, 4.0], [0.0, 0.0]]]]))
        >>> pool.backward(np.ones_like(y))[0, 0].round(6).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
        """
        x = self._need_forward("_x")
        if not need_dx:
            return None
        return F.lp_pool2d_backward(dy, x, self.norm_type, self.kernel_size, self.stride,
                                    self.ceil_mode, strict=self.strict)


class _AdaptivePool2d(Module):
    _name = "AdaptivePool2d"

    def __init__(self, output_size: Union[int, None, Tuple[Optional[int], Optional[int]]]
                 ) -> None:
        super().__init__()
        # checked now, against a stand-in input whose size None entries keep
        adaptive_output_hw((1, 1, 1, 1), output_size, self._name)
        self.output_size = output_size

    def __repr__(self) -> str:
        return f"{self._name}(output_size={self.output_size!r})"

    def output_shape(self, input_shape: ShapeLike) -> Tuple[int, int, int]:
        """(C, H2, W2) for one sample of shape (C, H, W): ``output_size``,
        None entries keeping the input's size.

        >>> import fastconv
        >>> fastconv.AdaptiveAvgPool2d((1, None)).output_shape((8, 5, 7))
        (8, 1, 7)
        """
        c, h, w = self._sample_shape(input_shape, 3, "(C, H, W)")
        h2, w2 = adaptive_output_hw((1, c, h, w), self.output_size, repr(self))
        return (c, h2, w2)

    def _checked_input(self, x: ArrayLike) -> NDArray[Any]:
        x = valid.real_array(x, "input", repr(self))
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected input of shape (N, C, H, W), "
                             f"got shape {x.shape}")
        return x


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """Average pooling to a fixed output size (:func:`fastconv.adaptive_avg_pool2d`):
    ``output_size`` is an int or an (h, w) pair, None keeping the input's size.

    >>> import numpy as np, fastconv
    >>> pool = fastconv.AdaptiveAvgPool2d(1)
    >>> pool, pool(np.arange(8.0).reshape(1, 2, 2, 2)).ravel().tolist()
    (AdaptiveAvgPool2d(output_size=1), [1.5, 5.5])
    """

    _name = "AdaptiveAvgPool2d"

    def __init__(self, output_size: Union[int, None, Tuple[Optional[int], Optional[int]]]
                 ) -> None:
        super().__init__(output_size)
        self._x_shape: Optional[Shape] = None

    def forward(self, x: ArrayLike) -> FloatArray:
        """The means of x's adaptive windows: (N, C, H, W) -> (N, C, H2, W2).

        >>> import numpy as np, fastconv
        >>> fastconv.AdaptiveAvgPool2d((1, 2))(np.arange(6.0).reshape(1, 1, 2, 3)).tolist()
        [[[[2.0, 3.0]]]]
        """
        x = self._checked_input(x)
        y = F.adaptive_avg_pool2d(x, self.output_size, _name=repr(self))
        self._x_shape = x.shape
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """Back-propagate dy: each window's gradient is shared out over its
        inputs; returns dx shaped like the last forward's input.

        >>> import numpy as np, fastconv
        >>> pool = fastconv.AdaptiveAvgPool2d(1)
        >>> y = pool(np.zeros((1, 1, 2, 2)))
        >>> pool.backward(np.ones_like(y))[0, 0].tolist()
        [[0.25, 0.25], [0.25, 0.25]]
        """
        x_shape = self._need_forward("_x_shape")
        if not need_dx:
            return None
        return F.adaptive_avg_pool2d_backward(dy, x_shape, self.output_size)


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """Max pooling to a fixed output size (:func:`fastconv.adaptive_max_pool2d`);
    the forward records where the maxima are, and the backward adds dy there.

    >>> import numpy as np, fastconv
    >>> pool = fastconv.AdaptiveMaxPool2d((1, 2))
    >>> pool, pool(np.arange(6.0).reshape(1, 1, 2, 3)).tolist()
    (AdaptiveMaxPool2d(output_size=(1, 2)), [[[[4.0, 5.0]]]])
    """

    _name = "AdaptiveMaxPool2d"

    def __init__(self, output_size: Union[int, None, Tuple[Optional[int], Optional[int]]]
                 ) -> None:
        super().__init__(output_size)
        self._x: Optional[NDArray[Any]] = None
        self._indices: Optional[IndexArray] = None

    def forward(self, x: ArrayLike) -> FloatArray:
        """The maxima of x's adaptive windows: (N, C, H, W) -> (N, C, H2, W2).

        >>> import numpy as np, fastconv
        >>> fastconv.AdaptiveMaxPool2d(1)(np.arange(4.0).reshape(1, 1, 2, 2)).tolist()
        [[[[3.0]]]]
        """
        x = self._checked_input(x)
        y, self._indices = F.adaptive_max_pool2d(x, self.output_size, True, _name=repr(self))
        self._x = x
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """Back-propagate dy: each window's gradient goes to its first
        maximum; returns dx shaped like the last forward's input.

        >>> import numpy as np, fastconv
        >>> pool = fastconv.AdaptiveMaxPool2d(1)
        >>> y = pool(np.arange(4.0).reshape(1, 1, 2, 2))
        >>> pool.backward(np.ones_like(y))[0, 0].tolist()
        [[0.0, 0.0], [0.0, 1.0]]
        """
        x = self._need_forward("_x")
        if not need_dx:
            return None
        return F.adaptive_max_pool2d_backward(dy, x, self.output_size, indices=self._indices)


class ReLU(Module):
    """max(0, x) elementwise; the gradient at 0 is 0.

    >>> import numpy as np, fastconv
    >>> relu = fastconv.ReLU()
    >>> relu(np.array([-2.0, 0.0, 3.0])).tolist(), relu.params
    ([0.0, 0.0, 3.0], {})
    """

    def __init__(self) -> None:
        super().__init__()
        self._x: Optional[NDArray[Any]] = None

    def __repr__(self) -> str:
        return "ReLU()"

    def output_shape(self, input_shape: ShapeLike) -> Shape:
        """The input's shape: ReLU works elementwise.

        >>> import fastconv
        >>> fastconv.ReLU().output_shape((8, 4, 4))
        (8, 4, 4)
        """
        return self._sample_shape(input_shape, None, "")

    def forward(self, x: ArrayLike) -> FloatArray:
        """max(0, x) for x of any shape; float32 and float64 keep their dtype,
        integers give float64.

        >>> import numpy as np, fastconv
        >>> y = fastconv.ReLU()(np.array([[-1, 2]]))
        >>> y.tolist(), y.dtype.name
        ([[0.0, 2.0]], 'float64')
        """
        x = valid.real_array(x, "input", repr(self))
        y = F.relu(x, _name=repr(self))
        self._x = x
        return y

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[FloatArray]:
        """dy where the last forward's input was > 0, else 0 (dy and that
        input of one shape); None with ``need_dx=False``.

        >>> import numpy as np, fastconv
        >>> relu = fastconv.ReLU()
        >>> _ = relu(np.array([-1.0, 0.0, 1.0]))
        >>> relu.backward(np.array([7.0, 7.0, 7.0])).tolist()
        [0.0, 0.0, 7.0]
        """
        x = self._need_forward("_x")
        return F.relu_backward(dy, x) if need_dx else None


class Flatten(Module):
    """(N, d1, ..., dk) -> (N, d1*...*dk), the bridge from CONV/POOL to FC.

    Only reshapes: any dtype is kept, and the output is a view of the input
    where NumPy can make one.

    >>> import numpy as np, fastconv
    >>> fastconv.Flatten()(np.zeros((2, 8, 4, 4), np.int32)).shape
    (2, 128)
    """

    def __init__(self) -> None:
        super().__init__()
        self._x_shape: Optional[Shape] = None

    def __repr__(self) -> str:
        return "Flatten()"

    def output_shape(self, input_shape: ShapeLike) -> Tuple[int]:
        """(d1*...*dk,) for one sample of shape (d1, ..., dk).

        >>> import fastconv
        >>> fastconv.Flatten().output_shape((8, 4, 4))
        (128,)
        """
        shape = self._sample_shape(input_shape, None, "")
        return (math.prod(shape),)

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """x: (N, d1, ..., dk) -> (N, d1*...*dk), in x's dtype.

        >>> import numpy as np, fastconv
        >>> fastconv.Flatten().forward(np.arange(8).reshape(2, 2, 2)).tolist()
        [[0, 1, 2, 3], [4, 5, 6, 7]]
        """
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"{self!r}: expected input of shape (N, ...), got a "
                             f"0-d array")
        self._x_shape = x.shape
        # An explicit size (not -1) so that an empty batch reshapes too.
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[NDArray[Any]]:
        """dy, (N, d1*...*dk), reshaped to the last forward's input shape (N,
        d1, ..., dk), in dy's dtype; None with ``need_dx=False``.

        >>> import numpy as np, fastconv
        >>> flat = fastconv.Flatten()
        >>> y = flat(np.zeros((2, 3, 4)))
        >>> flat.backward(np.ones((2, 12))).shape
        (2, 3, 4)
        """
        x_shape = self._need_forward("_x_shape")
        if not need_dx:
            return None
        dy = np.asarray(dy)
        expect = (x_shape[0], math.prod(x_shape[1:]))
        if dy.shape != expect:
            raise ValueError(f"{self!r}: dy must have shape {expect}, got {dy.shape}")
        return dy.reshape(x_shape)


# --------------------------------------------------------------------------
# Sequential and its summary

#: One row of a :class:`Summary`: index, layer repr, output shape, parameters
#: and multiply-adds per sample.
SummaryRow = Tuple[int, str, Shape, int, int]


class Summary:
    """The table returned by :meth:`Sequential.summary`.

    ``rows`` holds one ``(index, layer repr, output shape, params, mult_adds)``
    tuple per layer; output shapes are per sample (no batch axis).
    ``input_shape``, ``output_shape``, ``total_params`` and
    ``total_mult_adds`` sum it up; ``str(summary)`` is the printed table.

    >>> import fastconv
    >>> model = fastconv.Sequential(fastconv.Flatten(), fastconv.Linear(12, 5))
    >>> s = model.summary((3, 2, 2), file=False)
    >>> s.rows
    [(0, 'Flatten()', (12,), 0, 0), (1, 'Linear(12, 5)', (5,), 65, 60)]
    >>> s.input_shape, s.output_shape, s.total_params, s.total_mult_adds
    ((3, 2, 2), (5,), 65, 60)
    """

    def __init__(self, input_shape: ShapeLike, rows: List[SummaryRow]) -> None:
        self.input_shape = tuple(input_shape)
        self.rows = rows
        self.total_params = sum(r[3] for r in rows)
        self.total_mult_adds = sum(r[4] for r in rows)
        self.output_shape = rows[-1][2] if rows else self.input_shape

    def __str__(self) -> str:
        """The table: one line per layer, then the totals.

        >>> import fastconv
        >>> print(fastconv.Sequential(fastconv.Linear(4, 2)).summary((4,), file=False))
        #  layer         output shape  params  mult-adds
        ------------------------------------------------
           input                    4
        0  Linear(4, 2)             2      10          8
        ------------------------------------------------
           total                           10          8
        """
        head = ("#", "layer", "output shape", "params", "mult-adds")
        body = [("", "input", _fmt_shape(self.input_shape), "", "")]
        body += [(str(i), name, _fmt_shape(shape), f"{p:,}", f"{m:,}")
                 for i, name, shape, p, m in self.rows]
        total = ("", "total", "", f"{self.total_params:,}",
                 f"{self.total_mult_adds:,}")
        widths = [max(len(r[c]) for r in [head, total] + body) for c in range(5)]

        def line(r: Sequence[str]) -> str:
            return (f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  "
                    f"{r[3]:>{widths[3]}}  {r[4]:>{widths[4]}}").rstrip()

        rule = "-" * (sum(widths) + 8)
        return "\n".join([line(head), rule] + [line(r) for r in body]
                         + [rule, line(total)])

    def __repr__(self) -> str:
        return str(self)


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse.

    ``params`` / ``grads`` gather every layer's arrays under ``"<index>.<name>"``
    (e.g. ``"0.weight"``); the arrays are the layers' own, so updating them in
    place updates the layers.  ``len(model)``, ``model[i]`` (a layer; a slice
    gives a list) and ``for layer in model`` reach the layers.

    >>> import numpy as np, fastconv
    >>> model = fastconv.Sequential(
    ...     fastconv.Conv2d(3, 8, 3, padding=1, seed=0), fastconv.ReLU(), fastconv.MaxPool2d(2),
    ...     fastconv.Flatten(), fastconv.Linear(8 * 16 * 16, 10, seed=1))
    >>> scores = model(np.ones((2, 3, 32, 32), np.float32))
    >>> scores.shape, scores.dtype.name
    ((2, 10), 'float32')
    >>> loss, dscores = fastconv.softmax_cross_entropy(scores, [3, 7])
    >>> dx = model.backward(dscores)
    >>> dx.shape, sorted(model.grads) == sorted(model.params)
    ((2, 3, 32, 32), True)
    >>> len(model), model[1], [type(layer).__name__ for layer in model[3:]]
    (5, ReLU(), ['Flatten', 'Linear'])
    """

    def __init__(self, *layers: Module) -> None:
        # No Module.__init__: params and grads are gathered from the layers.
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            raise TypeError("Sequential: pass the layers as separate arguments, "
                            "Sequential(*layers), not a list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: argument {i} is {layer!r} "
                                f"({type(layer).__name__}), not a fastconv layer")
        self.layers = list(layers)

    def __repr__(self) -> str:
        if not self.layers:
            return "Sequential()"
        inner = "\n".join(f"  ({i}): " + repr(layer).replace("\n", "\n  ")
                          for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

    def __len__(self) -> int:
        """The number of layers.

        >>> import fastconv
        >>> len(fastconv.Sequential(fastconv.ReLU(), fastconv.Flatten()))
        2
        """
        return len(self.layers)

    @overload
    def __getitem__(self, i: int) -> Module: ...

    @overload
    def __getitem__(self, i: slice) -> List[Module]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Module, List[Module]]:
        """Layer ``i`` (negative counts from the end); a slice gives a list.

        >>> import fastconv
        >>> model = fastconv.Sequential(fastconv.ReLU(), fastconv.Flatten())
        >>> model[0], model[-1], model[:1]
        (ReLU(), Flatten(), [ReLU()])
        """
        return self.layers[i]

    def __iter__(self) -> Iterator[Module]:
        """The layers, in order.

        >>> import fastconv
        >>> [repr(layer) for layer in fastconv.Sequential(fastconv.ReLU(), fastconv.Flatten())]
        ['ReLU()', 'Flatten()']
        """
        return iter(self.layers)

    # Read-only here: a model's params and grads are gathered from its layers.
    @property
    def params(self) -> Dict[str, FloatArray]:  # type: ignore[override]
        """Every layer's parameters under ``"<index>.<name>"``: a new dict of
        the layers' own arrays (read-only: assign to the layers).

        >>> import fastconv
        >>> model = fastconv.Sequential(fastconv.Linear(4, 3), fastconv.ReLU(),
        ...                             fastconv.Linear(3, 2, bias=False))
        >>> {name: p.shape for name, p in model.params.items()}
        {'0.weight': (3, 4), '0.bias': (3,), '2.weight': (2, 3)}
        >>> model.params["2.weight"] is model[2].params["weight"]
        True
        """
        return {f"{i}.{name}": p for i, layer in enumerate(self.layers)
                for name, p in layer.params.items()}

    @property
    def grads(self) -> Dict[str, FloatArray]:  # type: ignore[override]
        """Every layer's gradients under the names of ``params``, as the last
        ``backward`` left them.

        >>> import numpy as np, fastconv
        >>> model = fastconv.Sequential(fastconv.Linear(4, 3), fastconv.ReLU())
        >>> y = model(np.ones((2, 4)))
        >>> _ = model.backward(np.ones_like(y))
        >>> {name: g.shape for name, g in model.grads.items()}
        {'0.weight': (3, 4), '0.bias': (3,)}
        """
        return {f"{i}.{name}": g for i, layer in enumerate(self.layers)
                for name, g in layer.grads.items()}

    def zero_grad(self) -> None:
        """Set every layer's gradients to zeros.

        >>> import numpy as np, fastconv
        >>> model = fastconv.Sequential(fastconv.Linear(4, 3))
        >>> y = model(np.ones((2, 4)))
        >>> _ = model.backward(np.ones_like(y))
        >>> model.zero_grad(); float(abs(model.grads["0.weight"]).sum())
        0.0
        """
        for layer in self.layers:
            layer.zero_grad()

    def _run(self, i: int, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.layers[i], method)(*args, **kwargs)
        except (ValueError, TypeError) as e:
            if type(e) not in (ShapeError, ValueError, TypeError):
                raise
            # The layer's own message starts with its repr; adding the index
            # says which of several identical layers failed.
            raise type(e)(f"Sequential[{i}] {e}") from None

    def forward(self, x: ArrayLike) -> NDArray[Any]:
        """Every layer's forward in turn; the output is the last layer's (x
        itself when there are no layers).  An error names the layer and its
        index.

        >>> import numpy as np, fastconv
        >>> model = fastconv.Sequential(fastconv.MaxPool2d(2), fastconv.Flatten())
        >>> model.forward(np.arange(16.0).reshape(1, 1, 4, 4)).tolist()
        [[5.0, 7.0, 13.0, 15.0]]
        """
        for i in range(len(self.layers)):
            x = self._run(i, "forward", x)
        # (x as given when there are no layers)
        return x  # type: ignore[return-value]

    def backward(self, dy: ArrayLike, need_dx: bool = True) -> Optional[NDArray[Any]]:
        """Back-propagate dy (shaped like the last forward's output) through
        the layers in reverse; returns the gradient with respect to the
        model's input.  With ``need_dx=False`` the layers before the first one
        with parameters are skipped and None is returned.

        >>> import numpy as np, fastconv
        >>> model = fastconv.Sequential(fastconv.ReLU(), fastconv.Linear(2, 1))
        >>> model[1].weight = [[3.0, 4.0]]
        >>> y = model(np.array([[-1.0, 1.0]]))
        >>> model.backward(np.ones_like(y)).tolist(), model.backward(y, need_dx=False)
        ([[0.0, 4.0]], None)
        """
        stop = 0
        if not need_dx:
            with_params = [i for i, layer in enumerate(self.layers) if layer.params]
            if not with_params:
                return None
            stop = with_params[0]
        for i in range(len(self.layers) - 1, stop - 1, -1):
            dy = self._run(i, "backward", dy,
                           need_dx=need_dx or i > stop)
        # (dy as given when there are no layers)
        return dy  # type: ignore[return-value]

    def output_shape(self, input_shape: ShapeLike) -> Shape:
        """The shape of one output sample for one input sample, through every
        layer's formula; ShapeError naming the first layer that does not fit.

        >>> import fastconv
        >>> model = fastconv.Sequential(fastconv.Conv2d(3, 8, 3), fastconv.MaxPool2d(2),
        ...                             fastconv.Flatten())
        >>> model.output_shape((3, 10, 10))
        (128,)
        """
        shape = tuple(input_shape)
        for i in range(len(self.layers)):
            shape = self._run(i, "output_shape", shape)
        return shape

    def mult_adds(self, input_shape: ShapeLike) -> int:
        """Multiply-adds per sample, every layer's added up.

        >>> import fastconv
        >>> fastconv.Sequential(fastconv.Linear(4, 3), fastconv.Linear(3, 2)).mult_adds((4,))
        18
        """
        return self.summary(input_shape, file=False).total_mult_adds

    def summary(self, input_shape: ShapeLike, *,
                file: Union[None, Literal[False], SupportsWrite[str]] = None) -> Summary:
        """Walk the output-size formula layer by layer, without running anything.

        ``input_shape`` is the shape of one sample: (C, H, W) for images, (D,)
        for feature vectors.  Returns a :class:`Summary` (layer, output shape,
        parameter count and multiply-adds per sample, and totals) and prints it
        to ``file`` (stdout by default; ``file=False`` prints nothing).  The
        first layer whose formula does not give a positive integer raises
        :class:`ShapeError` naming it.

        >>> import fastconv
        >>> model = fastconv.Sequential(
        ...     fastconv.Conv2d(3, 8, 3, padding=1), fastconv.ReLU(), fastconv.MaxPool2d(2),
        ...     fastconv.Flatten(), fastconv.Linear(8 * 16 * 16, 10))
        >>> summary = model.summary((3, 32, 32))
        #  layer                                   output shape  params  mult-adds
        --------------------------------------------------------------------------
           input                                    3 x 32 x 32
        0  Conv2d(3, 8, kernel_size=3, padding=1)   8 x 32 x 32     224    221,184
        1  ReLU()                                   8 x 32 x 32       0          0
        2  MaxPool2d(kernel_size=2)                 8 x 16 x 16       0          0
        3  Flatten()                                       2048       0          0
        4  Linear(2048, 10)                                  10  20,490     20,480
        --------------------------------------------------------------------------
           total                                                 20,714    241,664
        >>> summary.total_params, summary.output_shape
        (20714, (10,))
        """
        try:
            shape = tuple(int(s) for s in input_shape)
        except TypeError:
            raise TypeError(f"Sequential.summary: input_shape must be a tuple of "
                            f"ints such as (3, 32, 32), got {input_shape!r}") from None
        rows: List[SummaryRow] = []
        for i, layer in enumerate(self.layers):
            out = self._run(i, "output_shape", shape)
            macs = self._run(i, "mult_adds", shape)
            rows.append((i, repr(layer).replace("\n", " "), out, layer.num_params, macs))
            shape = out
        table = Summary(input_shape, rows)
        if file is not False:
            print(table, file=sys.stdout if file is None else file)
        return table
