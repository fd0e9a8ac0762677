"""Argument validation: every rule fastconv applies to its arguments, and the
wording of its error, written once.

The functional API, the layers, the losses, the CS231n layer functions and
the run-time configuration check their arguments here.  Each function takes
the argument's name ``what`` and the name ``where`` of the op or layer that
the message starts with, returns the value in the form its caller goes on
with, and raises TypeError (the wrong kind of value) or ValueError (the right
kind, out of range).  The output-size formula, which checks the sizes the
arguments combine into, is in :mod:`fastconv._shapes`.
"""

from __future__ import annotations

import numbers
from typing import Any, Tuple, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._typing import ArrayLike

# Kernel sizes, strides and paddings above this are rejected: no real layer
# comes near it, and the bound keeps every product the C core forms from
# them (padded sizes, window offsets, workspace rows) far from int64 overflow.
MAX_WINDOW_PARAM = 2**31 - 1

# More threads than this is a typo, not a machine: OpenMP runtimes abort on
# thread creation long before 2**31.
MAX_THREADS = 1024


# ----------------------------------------------------- numbers and switches

def integer(value: object, what: str, where: str) -> int:
    """``value`` as a Python int; any integral number is accepted but a bool."""
    if type(value) is int:   # the common case, without the abstract-class check
        return value
    # bool is an int subclass, but a True kernel size is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {what} must be an int, got {value!r} "
                        f"({type(value).__name__})")
    return int(value)


def layer_size(value: object, what: str, where: str) -> int:
    """A layer's number of channels or features: an int >= 1 (NumPy's too)."""
    # bool is an int subclass; Conv2d(True, 8, 3) is always a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {what} must be an int, got {value!r} "
                        f"({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{where}: {what} must be >= 1, got {value}")
    return int(value)


def thread_count(value: object, what: str, where: str) -> int:
    """A number of threads: a Python int from 1 to MAX_THREADS."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {what} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{where}: {what} must be >= 1, got {value}")
    if value > MAX_THREADS:
        raise ValueError(f"{where}: {what} must be at most {MAX_THREADS}, got {value}")
    return value


def flag(value: object, what: str, where: str) -> bool:
    """A True/False argument (NumPy's bool too); anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {what} must be True or False, got {value!r}")
    return bool(value)


def activation(value: object, where: str) -> bool:
    """Whether the ``activation`` argument (None or "relu") asks for a fused ReLU."""
    if value is None:
        return False
    if value == "relu":
        return True
    raise ValueError(f"{where}: activation must be None or 'relu', got {value!r}")


# ------------------------------------ windows: kernel size, stride, padding

def window_param(value: object, what: str, where: str) -> int:
    """An int kernel size, stride or padding no larger than MAX_WINDOW_PARAM."""
    value = integer(value, what, where)
    if value > MAX_WINDOW_PARAM:
        raise ValueError(f"{where}: {what} must be at most 2**31 - 1 = {MAX_WINDOW_PARAM}, "
                         f"got {value}")
    return value


def pair(value: object, what: str, where: str = "fastconv") -> Tuple[int, int]:
    """A window parameter given as an int or an (h, w) pair, as a tuple of two
    Python ints.  Their lower bounds are the caller's to check."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{where}: {what} must be an int or an (h, w) pair, "
                             f"got {value!r}")
        return (window_param(value[0], what, where), window_param(value[1], what, where))
    v = window_param(value, what, where)
    return (v, v)


def pair_at_least(value: object, lowest: int, what: str, where: str) -> Tuple[int, int]:
    """A layer's window setting as :func:`pair` gives it, each entry at least
    ``lowest``; the error shows the value as the caller wrote it."""
    p = pair(value, what, where)
    if p[0] < lowest or p[1] < lowest:
        raise ValueError(f"{where}: {what} must be >= {lowest}, got {value!r}")
    return p


def show_pair(p: Tuple[int, int]) -> str:
    """An (h, w) pair as a layer's repr shows it: one number when h == w."""
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def pool_window(kernel: Tuple[int, int], padding: Tuple[int, int], where: str, *,
                compact: bool = False) -> None:
    """Check pooling's (h, w) kernel and padding pairs: per axis, kernel >= 1
    and 0 <= padding <= kernel // 2.

    The bound on padding is PyTorch's rule: a window made only of padding
    would have no input value to pool.  By default the error shows the pairs
    as the functional API normalises them and names the axis at fault;
    ``compact=True`` shows them as a layer's repr does, with the bound.
    """
    for axis, k, p in (("height", kernel[0], padding[0]), ("width", kernel[1], padding[1])):
        if k < 1:
            raise ValueError(f"{where}: kernel_size must be >= 1, got {kernel}")
        if p < 0:
            raise ValueError(f"{where}: padding must be >= 0, got {padding}")
        if p > k // 2:
            if compact:
                half = (kernel[0] // 2, kernel[1] // 2)
                raise ValueError(f"{where}: padding {show_pair(padding)} must be at most "
                                 f"half the kernel size {show_pair(kernel)}, i.e. <= "
                                 f"{show_pair(half)}")
            raise ValueError(f"{where}: padding {padding} must be at most half the kernel "
                             f"size {kernel} (a window must hold at least one input value); "
                             f"{axis} padding {p} > {k}//2")


# -------------------------------------------------------- dtypes and arrays

# DLPack device types whose memory the CPU reads directly (CPU, and CUDA or
# ROCm pinned host and managed memory), as NumPy's from_dlpack accepts them.
_DLPACK_HOST = frozenset({1, 3, 11, 13})
_DLPACK_DEVICES = {2: "CUDA", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI",
                   10: "ROCm", 12: "ExtDev", 14: "oneAPI", 15: "WebGPU", 16: "Hexagon",
                   17: "MAIA"}


def _off_cpu(what: str, where: str, device: str) -> TypeError:
    return TypeError(f"{where}: {what} is on {device}, not the CPU; fastconv computes on the "
                     f"CPU: move the array to the CPU first (CuPy: a.get(), PyTorch: "
                     f"a.cpu(), JAX: jax.device_put(a, jax.devices('cpu')[0]))")


def host_array(a: object, what: str, where: str) -> NDArray[Any]:
    """``a`` as an ndarray, without a copy where NumPy can view its memory.

    Anything NumPy converts (ndarrays, lists, scalars, objects with
    ``__array__``, ``__array_interface__``, ``__array_struct__`` or the buffer
    protocol: torch CPU tensors, JAX CPU arrays) goes through np.asarray; an
    object offering only DLPack (``__dlpack__``) through np.from_dlpack.
    Arrays in GPU memory (``__cuda_array_interface__``, or a
    ``__dlpack_device__`` that is not the CPU's) raise TypeError saying to
    move them to the CPU, as does anything NumPy cannot convert.
    """
    if isinstance(a, np.ndarray):
        return a
    cls = type(a)
    if cls in (list, tuple, int, float):   # plain Python values: no device, no DLPack
        return _asarray(a, what, where)
    if hasattr(cls, "__cuda_array_interface__"):
        try:
            a.__cuda_array_interface__  # type: ignore[attr-defined]  # torch: AttributeError on CPU
        except AttributeError:
            pass
        else:
            raise _off_cpu(what, where, "a CUDA device")
    if hasattr(cls, "__dlpack_device__"):
        try:
            device_type, device_id = a.__dlpack_device__()  # type: ignore[attr-defined]
            device_type = int(device_type)
        except Exception as exc:
            raise TypeError(f"{where}: {what}: __dlpack_device__() failed: {exc}") from None
        if device_type not in _DLPACK_HOST:
            name = _DLPACK_DEVICES.get(device_type, f"DLPack device type {device_type}")
            raise _off_cpu(what, where, f"{name} device {device_id}")
    if hasattr(cls, "__dlpack__") and not any(
            hasattr(cls, attr) for attr in
            ("__array__", "__array_interface__", "__array_struct__", "__buffer__")):
        try:
            return np.from_dlpack(a)  # type: ignore[arg-type]
        except Exception as exc:
            raise TypeError(f"{where}: {what} could not be converted to an array through "
                            f"DLPack: {exc}") from None
    return _asarray(a, what, where)


def _asarray(a: object, what: str, where: str) -> NDArray[Any]:
    try:
        return np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{where}: {what} could not be converted to an array: "
                        f"{exc}") from None


_PARAM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def param_dtype(dtype: DTypeLike, where: str) -> np.dtype[np.floating[Any]]:
    """The dtype a layer keeps its parameters in: float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: dtype must be float32 or float64, "
                        f"got {dtype!r}") from None
    if dt not in _PARAM_DTYPES:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dt}")
    return cast("np.dtype[np.floating[Any]]", dt)


def ndim(shape: Tuple[int, ...], n: int, what: str, layout: str, where: str) -> None:
    """Check that an array of shape ``shape`` has ``n`` axes, read as ``layout``."""
    if len(shape) != n:
        raise ValueError(f"{where}: {what} must be {n}-D {layout}, got shape {shape}")


def real_array(a: ArrayLike, what: str, where: str) -> NDArray[Any]:
    """``a`` as an ndarray of real numbers, of any integer or float dtype, for
    a caller that converts it to the dtype it computes in."""
    arr = host_array(a, what, where)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{where}: {what} must hold real numbers, got dtype {arr.dtype}")
    return arr


def label_array(y: ArrayLike, what: str, where: str) -> NDArray[np.integer[Any]]:
    """Class labels as an ndarray of an integer dtype; the caller checks
    their shape and range against the scores."""
    y = host_array(y, what, where)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{where}: {what} must hold integer class labels, got dtype "
                        f"{y.dtype}")
    return y


def computable_array(a: ArrayLike, what: str, where: str) -> NDArray[Any]:
    """``a`` as an ndarray whose dtype fastconv's kernels compute on, after
    conversion: an integer, or a float of at most 64 bits.  Lists are
    converted; complex, bool, object and string arrays raise TypeError."""
    if a is None:
        raise TypeError(f"{where}: {what} must be an array, got None")
    if not isinstance(a, np.ndarray):
        a = host_array(a, what, where)
    kind = a.dtype.kind
    if kind in "iu":
        return a
    if kind == "f":
        if a.dtype.itemsize > 8:
            raise TypeError(f"{where}: {what} has dtype {a.dtype}, which fastconv does not "
                            f"compute in; cast it to float64")
        return a
    described = {"c": "complex", "O": "object", "U": "string", "S": "bytes"}.get(kind)
    shown = (f"{a.dtype} ({described})" if described and described != str(a.dtype)
             else str(a.dtype))
    raise TypeError(f"{where}: {what} has dtype {shown}; fastconv computes in "
                    f"float32 or float64 and accepts real numeric arrays only")
