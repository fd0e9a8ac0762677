"""Classification losses on class scores, each returning (loss, dscores).

Both take ``scores`` of shape (N, C) and integer labels ``y`` of shape (N,)
with values in [0, C), average over the batch, and return the loss as a
Python float together with its gradient with respect to ``scores`` (same shape,
float32 for float32 scores, float64 otherwise).
"""

from __future__ import annotations

import numbers
from typing import Tuple

import numpy as np
from numpy.typing import NDArray

from . import _validate as valid
from ._typing import ArrayLike, FloatArray

__all__ = ["softmax_cross_entropy", "multiclass_hinge"]


def _check(scores: ArrayLike, y: ArrayLike,
           where: str) -> Tuple[FloatArray, NDArray[np.intp], int]:
    scores = valid.real_array(scores, "scores", where)
    if scores.ndim != 2:
        raise ValueError(f"{where}: scores must have shape (N, C), got shape "
                         f"{scores.shape}")
    n, c = scores.shape
    if n == 0:
        raise ValueError(f"{where}: the batch is empty (N = 0); the mean loss is "
                         f"undefined")
    if c == 0:
        raise ValueError(f"{where}: scores has no classes (C = 0)")
    if scores.dtype != np.float32:
        scores = scores.astype(np.float64)

    y = valid.label_array(y, "y", where)
    if y.shape != (n,):
        raise ValueError(f"{where}: y must have shape ({n},) to match scores "
                         f"{scores.shape}, got shape {y.shape}")
    bad = (y < 0) | (y >= c)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: labels must be in [0, {c}), got y[{i}] = "
                         f"{int(y[i])}")
    return scores, y.astype(np.intp, copy=False), n


def softmax_cross_entropy(scores: ArrayLike, y: ArrayLike) -> Tuple[float, FloatArray]:
    """Mean cross-entropy of softmax(scores) against the labels y.

    loss = mean_i( log(sum_j exp(s_ij)) - s_{i,y_i} );
    dscores = (softmax(scores) - onehot(y)) / N.

    Shifting each row by its maximum keeps exp() from overflowing, so scores
    of any magnitude give a finite loss.

    scores: (N, C) real numbers; y: (N,) integer labels in [0, C).  Returns
    (loss, dscores): the loss a Python float, dscores (N, C), float32 for
    float32 scores and float64 otherwise.

    >>> import numpy as np, fastconv
    >>> loss, dscores = fastconv.softmax_cross_entropy(np.zeros((2, 4), np.float32), [0, 3])
    >>> round(loss, 6), dscores.dtype.name   # log(4): every class equally likely
    (1.386294, 'float32')
    >>> dscores.tolist()
    [[-0.375, 0.125, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]]
    """
    scores, y, n = _check(scores, y, "softmax_cross_entropy")
    rows = np.arange(n)
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1)
    # log-probability of the true class, computed from the shifted scores so
    # that a tiny probability does not round to log(0).
    logp = shifted[rows, y] - np.log(total)
    loss = float(-logp.sum(dtype=np.float64) / n)
    dscores = e / total[:, None]
    dscores[rows, y] -= 1
    dscores /= n
    return loss, dscores


def multiclass_hinge(scores: ArrayLike, y: ArrayLike,
                     margin: float = 1.0) -> Tuple[float, FloatArray]:
    """Mean multiclass SVM (Weston-Watkins) hinge loss.

    loss = mean_i sum_{j != y_i} max(0, s_ij - s_{i,y_i} + margin)

    This is CS231n's ``svm_loss``; PyTorch's ``multi_margin_loss`` equals it
    divided by the number of classes C.  Where a margin term is exactly 0 its
    subgradient is taken as 0.

    scores: (N, C) real numbers; y: (N,) integer labels in [0, C); margin: a
    finite number >= 0.  Returns (loss, dscores): the loss a Python float,
    dscores (N, C), float32 for float32 scores and float64 otherwise.

    >>> import fastconv
    >>> loss, dscores = fastconv.multiclass_hinge([[3.0, 1.0, 2.5], [0.0, 2.0, 0.0]], [0, 1])
    >>> loss, dscores.tolist()
    (0.25, [[-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]])
    >>> fastconv.multiclass_hinge([[3.0, 1.0, 2.5]], [0], margin=0.25)[0]
    0.0
    """
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(f"multiclass_hinge: margin must be a real number, got "
                        f"{margin!r}")
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"multiclass_hinge: margin must be a finite number >= 0, "
                         f"got {margin!r}")
    scores, y, n = _check(scores, y, "multiclass_hinge")
    rows = np.arange(n)
    correct = scores[rows, y][:, None]
    margins = scores - correct + scores.dtype.type(margin)
    margins[rows, y] = 0
    positive = margins > 0
    loss = float(np.maximum(margins, 0).sum(dtype=np.float64) / n)
    dscores = positive.astype(scores.dtype)
    dscores[rows, y] = -positive.sum(axis=1)
    dscores /= n
    return loss, dscores
