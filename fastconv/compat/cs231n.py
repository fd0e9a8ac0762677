"""The CS231n assignment layer API, computed by fastconv.

Stanford CS231n's assignments build networks from small NumPy functions:
``layers.py`` (conv, max pooling, affine, ReLU, softmax and SVM losses),
``fast_layers.py`` (faster conv and pooling) and ``layer_utils.py`` (the
conv-relu, conv-relu-pool and affine-relu sandwiches). This module provides
those names with the same signatures, return values and conventions, so one
import line switches existing code to fastconv's kernels::

    from fastconv.compat.cs231n import *

Conventions, as in the assignments:

- Every ``*_forward`` returns ``(out, cache)``; the matching ``*_backward``
  takes ``(dout, cache)`` and returns ``dx`` or ``(dx, dw, db)``.
- ``conv_param = {'stride': s, 'pad': p}``: one stride and one zero padding
  for both axes. ``pool_param = {'pool_height': ph, 'pool_width': pw,
  'stride': s}``: no padding.
- Output sizes are floored, ``H' = 1 + (H + 2*pad - HH) // stride``, for every
  conv and pooling variant (the behaviour of ``conv_forward_strides``).
  Rectangular kernels, overlapping pooling windows (3x3 stride 2) and windows
  that do not tile the input all work with every variant.
- float64 inputs give float64 results; float32 gives float32; mixed float32 /
  float64 follows NumPy's promotion (float64), and integer inputs compute in
  float64. Inputs are never modified.
- A cache is only meant to be handed back to the matching backward function.

The ``naive``, ``fast``, ``strides``, ``im2col`` and ``reshape`` variants all
run the same fastconv kernels; they are kept as separate names so that code
and notebooks written against any of them run unchanged, and the caches of
one variant are accepted by the backward function of another.

Where the originals differ from each other fastconv picks one rule: when
several elements of a pooling window share the maximum, the gradient goes to
the first of them in row-major order (the original ``_reshape`` variant split
it between them).
"""

from __future__ import annotations

from typing import Any, Mapping, Tuple

import numpy as np
from numpy.typing import NDArray

from .. import _validate
from .. import functional as _F
from .._typing import ArrayLike, FloatArray, Int

__all__ = [
    "affine_forward", "affine_backward",
    "relu_forward", "relu_backward",
    "conv_forward_naive", "conv_backward_naive",
    "conv_forward_fast", "conv_backward_fast",
    "conv_forward_strides", "conv_backward_strides",
    "conv_forward_im2col", "conv_backward_im2col",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "max_pool_forward_fast", "max_pool_backward_fast",
    "max_pool_forward_reshape", "max_pool_backward_reshape",
    "max_pool_forward_im2col", "max_pool_backward_im2col",
    "affine_relu_forward", "affine_relu_backward",
    "conv_relu_forward", "conv_relu_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
    "softmax_loss", "svm_loss",
]


# ---------------------------------------------------------------------------
# parameter dicts and caches

#: ``conv_param``, {'stride': s, 'pad': p}, and ``pool_param``,
#: {'pool_height': ph, 'pool_width': pw, 'stride': s}: a dict of ints.
Param = Mapping[str, Int]

#: A conv forward's cache: (x, w, b, conv_param).
ConvCache = Tuple[ArrayLike, ArrayLike, ArrayLike, Param]

#: A max-pool forward's cache: (x, pool_param).
PoolCache = Tuple[ArrayLike, Param]

#: An affine forward's cache: (x, w, b).
AffineCache = Tuple[ArrayLike, ArrayLike, ArrayLike]

#: The sandwiches' caches.
AffineReluCache = Tuple[AffineCache, FloatArray]
ConvReluCache = Tuple[ConvCache, FloatArray]
ConvReluPoolCache = Tuple[ConvCache, FloatArray, PoolCache]

#: What the conv backward functions return: (dx, dw, db).
Grads3 = Tuple[FloatArray, FloatArray, FloatArray]


def _conv_settings(conv_param: Param) -> Tuple[Int, Int]:
    try:
        return conv_param["stride"], conv_param["pad"]
    except KeyError as e:
        raise KeyError(f"conv_param needs the keys 'stride' and 'pad'; "
                       f"missing {e.args[0]!r}") from None
    except TypeError:
        raise TypeError(f"conv_param must be a dict with the keys 'stride' and "
                        f"'pad', got {type(conv_param).__name__}") from None


def _pool_settings(pool_param: Param) -> Tuple[Tuple[Int, Int], Int]:
    try:
        kernel = (pool_param["pool_height"], pool_param["pool_width"])
        return kernel, pool_param["stride"]
    except KeyError as e:
        raise KeyError(f"pool_param needs the keys 'pool_height', 'pool_width' "
                       f"and 'stride'; missing {e.args[0]!r}") from None
    except TypeError:
        raise TypeError(f"pool_param must be a dict with the keys 'pool_height', "
                        f"'pool_width' and 'stride', got "
                        f"{type(pool_param).__name__}") from None


# ---------------------------------------------------------------------------
# affine and ReLU


class _AffineCache(Tuple[ArrayLike, ArrayLike, ArrayLike]):
    """``(x, w, b)`` as the original cache, plus the contiguous ``w.T``.

    fastconv's linear layer stores its weight as (out_features, in_features),
    the transpose of the assignments' (D, M). Keeping the one transposed copy
    made by the forward pass saves making it again in the backward pass.
    """

    wt: FloatArray

    def __new__(cls, x: ArrayLike, w: ArrayLike, b: ArrayLike, wt: FloatArray) -> _AffineCache:
        self = super().__new__(cls, (x, w, b))
        self.wt = wt
        return self


def _transposed_weight(w: ArrayLike) -> FloatArray:
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"affine: w must have shape (D, M), got shape {w.shape}")
    # A no-op when w itself is a transposed view of a C-ordered array.
    return np.ascontiguousarray(w.T)


def affine_forward(x: ArrayLike, w: ArrayLike, b: ArrayLike) -> Tuple[FloatArray, AffineCache]:
    """An affine (fully connected) layer, forward pass.

    Each of the N examples in ``x`` is flattened to a vector of length
    D = d_1 * ... * d_k and mapped to M outputs: ``out = x_flat @ w + b``.

    Inputs:
    - x: array of shape (N, d_1, ..., d_k)
    - w: weights of shape (D, M)
    - b: biases of shape (M,)

    Returns a tuple of:
    - out: array of shape (N, M)
    - cache: (x, w, b), for affine_backward

    >>> x = np.arange(6.0).reshape(2, 1, 3)
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> out, cache = affine_forward(x, w, np.array([0.5, -0.5]))
    >>> out
    array([[2.5, 2.5],
           [8.5, 8.5]])
    """
    wt = _transposed_weight(w)
    out = _F.linear(x, wt, b)
    return out, _AffineCache(x, w, b, wt)


def affine_backward(dout: ArrayLike, cache: AffineCache) -> Grads3:
    """An affine (fully connected) layer, backward pass.

    Inputs:
    - dout: upstream gradient of shape (N, M)
    - cache: the cache returned by affine_forward

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, d_1, ..., d_k)
    - dw: gradient with respect to w, of shape (D, M) (it may be a
      Fortran-ordered view)
    - db: gradient with respect to b, of shape (M,)

    >>> x = np.arange(6.0).reshape(2, 1, 3)
    >>> w = np.ones((3, 2))
    >>> out, cache = affine_forward(x, w, np.zeros(2))
    >>> dx, dw, db = affine_backward(np.ones((2, 2)), cache)
    >>> dx.shape, dw.shape, db.shape
    ((2, 1, 3), (3, 2), (2,))
    >>> dw[:, 0]
    array([3., 5., 7.])
    """
    x, w = cache[0], cache[1]
    wt = getattr(cache, "wt", None)
    if wt is None:
        wt = _transposed_weight(w)
    dx, dwt, db = _F.linear_backward(dout, x, wt)
    return dx, dwt.T, db


def relu_forward(x: ArrayLike) -> Tuple[FloatArray, ArrayLike]:
    """A layer of rectified linear units, forward pass: ``max(0, x)``.

    Input:
    - x: array of any shape

    Returns a tuple of:
    - out: array of the same shape as x
    - cache: x, for relu_backward

    >>> out, cache = relu_forward(np.array([-1.5, 0.0, 2.0]))
    >>> out
    array([0., 0., 2.])
    """
    return _F.relu(x), x


def relu_backward(dout: ArrayLike, cache: ArrayLike) -> FloatArray:
    """A layer of rectified linear units, backward pass.

    Inputs:
    - dout: upstream gradient, of any shape
    - cache: the cache returned by relu_forward (x, of the same shape)

    Returns:
    - dx: gradient with respect to x; zero where x <= 0

    >>> out, cache = relu_forward(np.array([-1.5, 0.0, 2.0]))
    >>> relu_backward(np.array([10.0, 10.0, 10.0]), cache)
    array([ 0.,  0., 10.])
    """
    return _F.relu_backward(dout, cache)


# ---------------------------------------------------------------------------
# convolution


def _conv_forward(x: ArrayLike, w: ArrayLike, b: ArrayLike,
                  conv_param: Param) -> Tuple[FloatArray, ConvCache]:
    stride, pad = _conv_settings(conv_param)
    out = _F.conv2d(x, w, b, stride, pad, strict=False)
    return out, (x, w, b, conv_param)


def _conv_backward(dout: ArrayLike, cache: ConvCache) -> Grads3:
    x, w, _, conv_param = cache
    stride, pad = _conv_settings(conv_param)
    return _F.conv2d_backward(dout, x, w, stride, pad)


def conv_forward_naive(x: ArrayLike, w: ArrayLike, b: ArrayLike,
                       conv_param: Param) -> Tuple[FloatArray, ConvCache]:
    """A convolutional layer, forward pass.

    The input holds N examples of C channels, each H high and W wide. It is
    cross-correlated with F filters, each spanning all C channels over a
    window HH high and WW wide, and a bias is added per filter.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w: filter weights of shape (F, C, HH, WW)
    - b: biases of shape (F,)
    - conv_param: dict with the keys
      - 'stride': distance in pixels between neighbouring windows (both axes)
      - 'pad': number of zero rows / columns added on every side of the input

    Returns a tuple of:
    - out: output of shape (N, F, H', W'), where
      H' = 1 + (H + 2 * pad - HH) // stride
      W' = 1 + (W + 2 * pad - WW) // stride
    - cache: (x, w, b, conv_param), for the conv backward functions

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> w = np.ones((1, 1, 2, 2))
    >>> out, cache = conv_forward_naive(x, w, np.zeros(1), {'stride': 1, 'pad': 0})
    >>> out
    array([[[[ 8., 12.],
             [20., 24.]]]])
    """
    return _conv_forward(x, w, b, conv_param)


def conv_backward_naive(dout: ArrayLike, cache: ConvCache) -> Grads3:
    """A convolutional layer, backward pass.

    Inputs:
    - dout: upstream gradient of shape (N, F, H', W')
    - cache: the cache returned by a conv forward function

    Returns a tuple of:
    - dx: gradient with respect to x, shape (N, C, H, W)
    - dw: gradient with respect to w, shape (F, C, HH, WW)
    - db: gradient with respect to b, shape (F,)

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> out, cache = conv_forward_naive(x, np.ones((1, 1, 2, 2)), np.zeros(1),
    ...                                 {'stride': 1, 'pad': 0})
    >>> dx, dw, db = conv_backward_naive(np.ones_like(out), cache)
    >>> dx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> dw[0, 0], db
    (array([[ 8., 12.],
           [20., 24.]]), array([4.]))
    """
    return _conv_backward(dout, cache)


def conv_forward_fast(x: ArrayLike, w: ArrayLike, b: ArrayLike,
                      conv_param: Param) -> Tuple[FloatArray, ConvCache]:
    """A convolutional layer, forward pass (fast_layers.py's name).

    Same arguments, output and cache as conv_forward_naive: x (N, C, H, W),
    w (F, C, HH, WW), b (F,), conv_param {'stride', 'pad'}; out has shape
    (N, F, 1 + (H + 2*pad - HH) // stride, 1 + (W + 2*pad - WW) // stride).

    >>> x = np.zeros((2, 3, 31, 31))
    >>> out, cache = conv_forward_fast(x, np.zeros((25, 3, 3, 3)), np.ones(25),
    ...                                {'stride': 2, 'pad': 1})
    >>> out.shape, float(out.min())
    ((2, 25, 16, 16), 1.0)
    """
    return _conv_forward(x, w, b, conv_param)


def conv_backward_fast(dout: ArrayLike, cache: ConvCache) -> Grads3:
    """A convolutional layer, backward pass (fast_layers.py's name).

    dout (N, F, H', W') and a conv cache in; (dx, dw, db) out, shaped like
    x (N, C, H, W), w (F, C, HH, WW) and b (F,), in the dtype of the forward's
    output. See conv_backward_naive.

    >>> x = np.ones((2, 3, 8, 8), np.float32)
    >>> out, cache = conv_forward_fast(x, np.ones((4, 3, 3, 3), np.float32),
    ...                                np.zeros(4, np.float32), {'stride': 1, 'pad': 1})
    >>> dx, dw, db = conv_backward_fast(np.ones_like(out), cache)
    >>> dx.shape, dw.shape, db.tolist(), dx.dtype.name
    ((2, 3, 8, 8), (4, 3, 3, 3), [128.0, 128.0, 128.0, 128.0], 'float32')
    """
    return _conv_backward(dout, cache)


def conv_forward_strides(x: ArrayLike, w: ArrayLike, b: ArrayLike,
                         conv_param: Param) -> Tuple[FloatArray, ConvCache]:
    """A convolutional layer, forward pass (the stride-trick variant's name).

    Same arguments, output and cache as conv_forward_naive; the output size is
    floored when the windows do not tile the padded input.

    >>> out, cache = conv_forward_strides(np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3)),
    ...                                   np.zeros(1), {'stride': 2, 'pad': 0})
    >>> out.shape
    (1, 1, 2, 2)
    """
    return _conv_forward(x, w, b, conv_param)


def conv_backward_strides(dout: ArrayLike, cache: ConvCache) -> Grads3:
    """A convolutional layer, backward pass (the stride-trick variant's name).

    dout (N, F, H', W') and a conv cache in; (dx, dw, db) out, shaped like
    x, w and b. See conv_backward_naive.

    >>> out, cache = conv_forward_strides(np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3)),
    ...                                   np.zeros(1), {'stride': 2, 'pad': 0})
    >>> dx, dw, db = conv_backward_strides(np.ones_like(out), cache)
    >>> dx[0, 0, :, 5].tolist(), dw[0, 0].tolist(), db.tolist()
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0], [4.0, 4.0, 4.0]], [4.0])
    """
    return _conv_backward(dout, cache)


def conv_forward_im2col(x: ArrayLike, w: ArrayLike, b: ArrayLike,
                        conv_param: Param) -> Tuple[FloatArray, ConvCache]:
    """A convolutional layer, forward pass (the im2col variant's name).

    Same arguments, output and cache as conv_forward_naive. Unlike the
    original im2col version it does not require the windows to tile the padded
    input: the output size is floored.

    >>> out, cache = conv_forward_im2col(np.ones((1, 2, 4, 5)), np.ones((3, 2, 1, 2)),
    ...                                  np.zeros(3), {'stride': 1, 'pad': 0})
    >>> out.shape, float(out[0, 0, 0, 0])
    ((1, 3, 4, 4), 4.0)
    """
    return _conv_forward(x, w, b, conv_param)


def conv_backward_im2col(dout: ArrayLike, cache: ConvCache) -> Grads3:
    """A convolutional layer, backward pass (the im2col variant's name).

    dout (N, F, H', W') and a conv cache in; (dx, dw, db) out, shaped like
    x, w and b. See conv_backward_naive.

    >>> out, cache = conv_forward_im2col(np.ones((1, 2, 4, 5)), np.ones((3, 2, 1, 2)),
    ...                                  np.zeros(3), {'stride': 1, 'pad': 0})
    >>> dx, dw, db = conv_backward_im2col(np.ones_like(out), cache)
    >>> dx.shape, dw.shape, db.tolist()
    ((1, 2, 4, 5), (3, 2, 1, 2), [16.0, 16.0, 16.0])
    """
    return _conv_backward(dout, cache)


# ---------------------------------------------------------------------------
# max pooling


def _pool_forward(x: ArrayLike, pool_param: Param) -> Tuple[FloatArray, PoolCache]:
    kernel, stride = _pool_settings(pool_param)
    out = _F.max_pool2d(x, kernel, stride, 0, strict=False)
    return out, (x, pool_param)


def _pool_backward(dout: ArrayLike, cache: PoolCache) -> FloatArray:
    x, pool_param = cache
    kernel, stride = _pool_settings(pool_param)
    return _F.max_pool2d_backward(dout, x, kernel, stride, 0, strict=False)


def max_pool_forward_naive(x: ArrayLike, pool_param: Param) -> Tuple[FloatArray, PoolCache]:
    """A max-pooling layer, forward pass.

    Every channel of every example is pooled separately; there is no padding.

    Inputs:
    - x: input of shape (N, C, H, W)
    - pool_param: dict with the keys
      - 'pool_height': height of each pooling window
      - 'pool_width': width of each pooling window
      - 'stride': distance between neighbouring windows (both axes)

    Returns a tuple of:
    - out: output of shape (N, C, H', W'), where
      H' = 1 + (H - pool_height) // stride
      W' = 1 + (W - pool_width) // stride
    - cache: (x, pool_param), for the max-pool backward functions

    >>> x = np.array([[[[1., 5., 2., 0.],
    ...                 [3., 4., 8., 7.],
    ...                 [0., 1., 2., 3.],
    ...                 [9., 6., 4., 5.]]]])
    >>> pool_param = {'pool_height': 2, 'pool_width': 2, 'stride': 2}
    >>> out, cache = max_pool_forward_naive(x, pool_param)
    >>> out
    array([[[[5., 8.],
             [9., 5.]]]])
    """
    return _pool_forward(x, pool_param)


def max_pool_backward_naive(dout: ArrayLike, cache: PoolCache) -> FloatArray:
    """A max-pooling layer, backward pass.

    Each window's upstream gradient goes to the position of its maximum (the
    first one in row-major order when there are ties); overlapping windows add
    up.

    Inputs:
    - dout: upstream gradient of shape (N, C, H', W')
    - cache: the cache returned by a max-pool forward function

    Returns:
    - dx: gradient with respect to x, shape (N, C, H, W)

    >>> x = np.array([[[[1., 5.], [3., 4.]]]])
    >>> out, cache = max_pool_forward_naive(
    ...     x, {'pool_height': 2, 'pool_width': 2, 'stride': 2})
    >>> max_pool_backward_naive(np.array([[[[7.]]]]), cache)
    array([[[[0., 7.],
             [0., 0.]]]])
    """
    return _pool_backward(dout, cache)


def max_pool_forward_fast(x: ArrayLike, pool_param: Param) -> Tuple[FloatArray, PoolCache]:
    """A max-pooling layer, forward pass (fast_layers.py's name).

    Same arguments, output and cache as max_pool_forward_naive: x (N, C, H, W)
    and {'pool_height', 'pool_width', 'stride'} in, out of shape
    (N, C, 1 + (H - pool_height) // stride, 1 + (W - pool_width) // stride).
    Any window and stride work, overlapping ones included.

    >>> x = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> out, cache = max_pool_forward_fast(
    ...     x, {'pool_height': 3, 'pool_width': 3, 'stride': 2})
    >>> out
    array([[[[12., 14.],
             [22., 24.]]]])
    """
    return _pool_forward(x, pool_param)


def max_pool_backward_fast(dout: ArrayLike, cache: PoolCache) -> FloatArray:
    """A max-pooling layer, backward pass (fast_layers.py's name).

    dout (N, C, H', W') and a max-pool cache in; dx of shape (N, C, H, W)
    out. See max_pool_backward_naive.

    >>> x = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> out, cache = max_pool_forward_fast(
    ...     x, {'pool_height': 3, 'pool_width': 3, 'stride': 2})
    >>> dx = max_pool_backward_fast(np.ones_like(out), cache)
    >>> dx.shape, float(dx.sum()), float(dx[0, 0, 4, 4])
    ((1, 1, 5, 5), 4.0, 1.0)
    """
    return _pool_backward(dout, cache)


def max_pool_forward_reshape(x: ArrayLike, pool_param: Param) -> Tuple[FloatArray, PoolCache]:
    """A max-pooling layer, forward pass (the reshape variant's name).

    Same arguments, output and cache as max_pool_forward_naive. The original
    only accepted square windows that tile the input with stride equal to the
    window; this one accepts any.

    >>> out, cache = max_pool_forward_reshape(
    ...     np.arange(16.0).reshape(1, 1, 4, 4),
    ...     {'pool_height': 2, 'pool_width': 2, 'stride': 2})
    >>> out
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    return _pool_forward(x, pool_param)


def max_pool_backward_reshape(dout: ArrayLike, cache: PoolCache) -> FloatArray:
    """A max-pooling layer, backward pass (the reshape variant's name).

    dout (N, C, H', W') and a max-pool cache in; dx of shape (N, C, H, W)
    out. A tie within a window sends the gradient to its first maximum.

    >>> out, cache = max_pool_forward_reshape(
    ...     np.ones((1, 1, 2, 2), np.float32), {'pool_height': 2, 'pool_width': 2, 'stride': 2})
    >>> dx = max_pool_backward_reshape(np.full_like(out, 3.0), cache)
    >>> dx[0, 0].tolist(), dx.dtype.name
    ([[3.0, 0.0], [0.0, 0.0]], 'float32')
    """
    return _pool_backward(dout, cache)


def max_pool_forward_im2col(x: ArrayLike, pool_param: Param) -> Tuple[FloatArray, PoolCache]:
    """A max-pooling layer, forward pass (the im2col variant's name).

    Same arguments, output and cache as max_pool_forward_naive; the output
    size is floored when the windows do not tile the input.

    >>> out, cache = max_pool_forward_im2col(
    ...     np.arange(15.0).reshape(1, 1, 3, 5),
    ...     {'pool_height': 2, 'pool_width': 3, 'stride': 2})
    >>> out
    array([[[[7., 9.]]]])
    """
    return _pool_forward(x, pool_param)


def max_pool_backward_im2col(dout: ArrayLike, cache: PoolCache) -> FloatArray:
    """A max-pooling layer, backward pass (the im2col variant's name).

    dout (N, C, H', W') and a max-pool cache in; dx of shape (N, C, H, W)
    out. See max_pool_backward_naive.

    >>> out, cache = max_pool_forward_im2col(
    ...     np.arange(15.0).reshape(1, 1, 3, 5),
    ...     {'pool_height': 2, 'pool_width': 3, 'stride': 2})
    >>> max_pool_backward_im2col(np.array([[[[1.0, 2.0]]]]), cache)[0, 0].tolist()
    [[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    return _pool_backward(dout, cache)


# ---------------------------------------------------------------------------
# layer_utils sandwiches
#
# ReLU's backward only looks at the sign of its input, and relu(a) > 0 exactly
# where a > 0, so the sandwiches use fastconv's fused conv/linear + ReLU and
# keep the activated output as the ReLU cache: one pass and one array fewer.


def affine_relu_forward(x: ArrayLike, w: ArrayLike,
                        b: ArrayLike) -> Tuple[FloatArray, AffineReluCache]:
    """An affine layer followed by a ReLU.

    Inputs:
    - x: input of shape (N, d_1, ..., d_k)
    - w: weights of shape (D, M)
    - b: biases of shape (M,)

    Returns a tuple of:
    - out: relu(x_flat @ w + b), shape (N, M)
    - cache: for affine_relu_backward

    >>> out, cache = affine_relu_forward(np.array([[1.0, -2.0]]), np.eye(2), np.zeros(2))
    >>> out
    array([[1., 0.]])
    """
    wt = _transposed_weight(w)
    out = _F.linear(x, wt, b, activation="relu")
    return out, (_AffineCache(x, w, b, wt), out)


def affine_relu_backward(dout: ArrayLike, cache: AffineReluCache) -> Grads3:
    """Backward pass of affine_relu_forward.

    Inputs:
    - dout: upstream gradient of shape (N, M)
    - cache: the cache returned by affine_relu_forward

    Returns a tuple (dx, dw, db) shaped like x, w and b.

    >>> out, cache = affine_relu_forward(np.array([[1.0, -2.0]]), np.eye(2), np.zeros(2))
    >>> dx, dw, db = affine_relu_backward(np.array([[3.0, 3.0]]), cache)
    >>> dx, db
    (array([[3., 0.]]), array([3., 0.]))
    """
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, fc_cache)


def conv_relu_forward(x: ArrayLike, w: ArrayLike, b: ArrayLike,
                      conv_param: Param) -> Tuple[FloatArray, ConvReluCache]:
    """A convolutional layer followed by a ReLU.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w: filter weights of shape (F, C, HH, WW)
    - b: biases of shape (F,)
    - conv_param: dict with the keys 'stride' and 'pad'

    Returns a tuple of:
    - out: relu(conv(x, w) + b), shape (N, F, H', W') with
      H' = 1 + (H + 2 * pad - HH) // stride, W' likewise
    - cache: for conv_relu_backward

    >>> out, cache = conv_relu_forward(np.ones((1, 1, 3, 3)), -np.ones((2, 1, 3, 3)),
    ...                                np.array([10.0, 0.0]), {'stride': 1, 'pad': 0})
    >>> out.ravel()
    array([1., 0.])
    """
    stride, pad = _conv_settings(conv_param)
    out = _F.conv2d(x, w, b, stride, pad, strict=False, activation="relu")
    return out, ((x, w, b, conv_param), out)


def conv_relu_backward(dout: ArrayLike, cache: ConvReluCache) -> Grads3:
    """Backward pass of conv_relu_forward.

    Inputs:
    - dout: upstream gradient of shape (N, F, H', W')
    - cache: the cache returned by conv_relu_forward

    Returns a tuple (dx, dw, db) shaped like x (N, C, H, W), w (F, C, HH, WW)
    and b (F,).

    >>> out, cache = conv_relu_forward(np.ones((1, 1, 3, 3)), -np.ones((2, 1, 3, 3)),
    ...                                np.array([10.0, 0.0]), {'stride': 1, 'pad': 0})
    >>> dx, dw, db = conv_relu_backward(np.ones_like(out), cache)
    >>> db.tolist(), float(dx.sum()), dw.shape   # filter 1's output is 0: no gradient
    ([1.0, 0.0], -9.0, (2, 1, 3, 3))
    """
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return _conv_backward(da, conv_cache)


def conv_relu_pool_forward(x: ArrayLike, w: ArrayLike, b: ArrayLike, conv_param: Param,
                           pool_param: Param) -> Tuple[FloatArray, ConvReluPoolCache]:
    """A convolutional layer, a ReLU and a max-pooling layer.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w: filter weights of shape (F, C, HH, WW)
    - b: biases of shape (F,)
    - conv_param: dict with the keys 'stride' and 'pad'
    - pool_param: dict with the keys 'pool_height', 'pool_width' and 'stride'

    Returns a tuple of:
    - out: the pooled activations, shape (N, F, H'', W'')
    - cache: for conv_relu_pool_backward

    >>> x = np.ones((2, 3, 8, 8))
    >>> out, cache = conv_relu_pool_forward(
    ...     x, np.ones((4, 3, 3, 3)), np.zeros(4), {'stride': 1, 'pad': 1},
    ...     {'pool_height': 2, 'pool_width': 2, 'stride': 2})
    >>> out.shape, float(out.max())
    ((2, 4, 4, 4), 27.0)
    """
    stride, pad = _conv_settings(conv_param)
    a = _F.conv2d(x, w, b, stride, pad, strict=False, activation="relu")
    out, pool_cache = _pool_forward(a, pool_param)
    return out, ((x, w, b, conv_param), a, pool_cache)


def conv_relu_pool_backward(dout: ArrayLike, cache: ConvReluPoolCache) -> Grads3:
    """Backward pass of conv_relu_pool_forward.

    Inputs:
    - dout: upstream gradient of shape (N, F, H'', W'')
    - cache: the cache returned by conv_relu_pool_forward

    Returns a tuple (dx, dw, db) shaped like x (N, C, H, W), w (F, C, HH, WW)
    and b (F,).

    >>> x = np.ones((2, 3, 8, 8))
    >>> out, cache = conv_relu_pool_forward(
    ...     x, np.ones((4, 3, 3, 3)), np.zeros(4), {'stride': 1, 'pad': 1},
    ...     {'pool_height': 2, 'pool_width': 2, 'stride': 2})
    >>> dx, dw, db = conv_relu_pool_backward(np.ones_like(out), cache)
    >>> dx.shape, dw.shape, db.tolist()   # 2 * 4 * 4 windows per filter
    ((2, 3, 8, 8), (4, 3, 3, 3), [32.0, 32.0, 32.0, 32.0])
    """
    conv_cache, relu_cache, pool_cache = cache
    ds = _pool_backward(dout, pool_cache)
    da = relu_backward(ds, relu_cache)
    return _conv_backward(da, conv_cache)


# ---------------------------------------------------------------------------
# losses


def _loss_inputs(x: ArrayLike, y: ArrayLike,
                 where: str) -> Tuple[NDArray[Any], NDArray[np.integer[Any]], NDArray[np.intp]]:
    x = _validate.real_array(x, "x", where)
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"{where}: x must have shape (N, C), got shape {x.shape}")
    y = _validate.label_array(y, "y", where)
    n, c = x.shape
    if y.shape != (n,):
        raise ValueError(f"{where}: y must have shape ({n},) to match x of shape "
                         f"{x.shape}, got shape {y.shape}")
    if n and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"{where}: labels must lie in [0, {c}), got values from "
                         f"{y.min()} to {y.max()}")
    return x, y, np.arange(n)


def softmax_loss(x: ArrayLike, y: ArrayLike) -> Tuple[np.floating[Any], FloatArray]:
    """Softmax cross-entropy loss and its gradient, averaged over the batch.

    Inputs:
    - x: class scores of shape (N, C); x[i, j] is the score of class j for
      example i
    - y: labels of shape (N,), with 0 <= y[i] < C

    Returns a tuple of:
    - loss: the mean of -log(softmax(x[i])[y[i]]), a scalar
    - dx: gradient of the loss with respect to x, shape (N, C)

    >>> loss, dx = softmax_loss(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(float(loss), 6), float(dx[0, 0]), float(dx[0, 1])
    (1.386294, -0.375, 0.125)
    """
    x, y, rows = _loss_inputs(x, y, "softmax_loss")
    n = x.shape[0]
    # Subtracting the row maximum keeps exp() from overflowing; it also gives
    # a fresh array, so the caller's x is never written to.
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, y].sum() / n
    dx = np.exp(log_probs, out=log_probs)
    dx[rows, y] -= 1
    dx /= n
    return loss, dx


def svm_loss(x: ArrayLike, y: ArrayLike) -> Tuple[np.floating[Any], FloatArray]:
    """Multiclass SVM (hinge) loss with margin 1 and its gradient, averaged
    over the batch.

    Inputs:
    - x: class scores of shape (N, C)
    - y: labels of shape (N,), with 0 <= y[i] < C

    Returns a tuple of:
    - loss: the mean over i of sum_{j != y[i]} max(0, x[i, j] - x[i, y[i]] + 1)
    - dx: gradient of the loss with respect to x, shape (N, C)

    >>> x = np.array([[3.0, 1.0, 2.5], [0.0, 2.0, 0.0]])
    >>> loss, dx = svm_loss(x, np.array([0, 1]))
    >>> float(loss)
    0.25
    >>> dx
    array([[-0.5,  0. ,  0.5],
           [ 0. ,  0. ,  0. ]])
    """
    x, y, rows = _loss_inputs(x, y, "svm_loss")
    n = x.shape[0]
    margins = np.maximum(0, x - x[rows, y][:, None] + 1)
    margins[rows, y] = 0
    loss = margins.sum() / n
    positive = margins > 0
    dx = positive.astype(x.dtype)
    dx[rows, y] -= positive.sum(axis=1)
    dx /= n
    return loss, dx
