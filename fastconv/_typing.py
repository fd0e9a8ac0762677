"""Type aliases of fastconv's public signatures, written once.

Inputs are anything NumPy turns into an array (``numpy.typing.ArrayLike``);
outputs are NumPy arrays of a floating dtype (float32 or float64).  Window
settings (kernel size, stride, padding) are an int or an ``(h, w)`` pair of
ints; NumPy integers count as ints, as they do at run time.

The aliases are evaluated at run time too, so they use ``typing.Union`` and
``typing.Tuple`` (the package supports Python 3.9); the modules that use them
in annotations have ``from __future__ import annotations``.
"""

from typing import Any, Mapping, Protocol, Sequence, Tuple, Union

import numpy as np
# ArrayLike, an array argument: anything NumPy turns into an array.  Every
# public signature takes its arrays as fastconv._typing.ArrayLike, so that
# accepting more (objects that offer only ``__dlpack__``, say) is a change
# here alone.
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "NDArray", "Int", "IntOrPair", "Shape", "ShapeLike", "FloatArray",
           "IndexArray", "ParamsOwner"]

#: An integer as fastconv's arguments take it: a Python or a NumPy integer.
Int = Union[int, np.integer[Any]]

#: A kernel size, stride or padding: one int for both axes, or ``(h, w)``.
IntOrPair = Union[Int, Tuple[Int, Int]]

#: The shape of an array, as NumPy gives it.
Shape = Tuple[int, ...]

#: A shape as an argument: a sequence of ints (a tuple, a list) or a 1-D
#: integer array.
ShapeLike = Union[Sequence[Int], NDArray[np.integer[Any]]]

#: An array fastconv computes and returns: float32 or float64.
FloatArray = NDArray[np.floating[Any]]

#: Max pooling's indices: int64 offsets within each (H, W) plane.
IndexArray = NDArray[np.int64]


class ParamsOwner(Protocol):
    """What an optimiser updates: a model or a layer with ``params`` and
    ``grads`` of the same names, and ``zero_grad()`` (a
    :class:`~fastconv.Sequential` or any layer)."""

    @property
    def params(self) -> Mapping[str, NDArray[Any]]: ...

    @property
    def grads(self) -> Mapping[str, NDArray[Any]]: ...

    def zero_grad(self) -> None: ...
