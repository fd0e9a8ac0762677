"""Arrays that are not ndarrays: every functional op takes what NumPy can
view (``__array__``, ``__array_interface__``, the buffer protocol) and objects
that offer only DLPack, reads them without a copy where the layout allows,
and rejects arrays in GPU memory with a TypeError that says to move them to
the CPU.  JAX arrays and torch CPU tensors are tested where installed."""

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv import _validate as valid

from conftest import randn

X = randn((2, 3, 8, 8), np.float64, "foreign x")
W = randn((4, 3, 3, 3), np.float64, "foreign w")
B = randn((4,), np.float64, "foreign b")
DY = randn((2, 4, 8, 8), np.float64, "foreign dy")
DYP = randn((2, 3, 4, 4), np.float64, "foreign dy pool")
XL = randn((5, 6), np.float64, "foreign xl")
WL = randn((7, 6), np.float64, "foreign wl")
DYL = randn((5, 7), np.float64, "foreign dyl")


class DLPackOnly:
    """Offers DLPack alone: no __array__, no __array_interface__."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class DLPackNoDevice:
    """Only __dlpack__, not even __dlpack_device__."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)


class InterfaceOnly:
    """The array interface protocol, as many C extensions expose memory."""

    def __init__(self, a):
        self._a = a
        self.__array_interface__ = a.__array_interface__


class ArrayMethod:
    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a


class OnDevice:
    """What a GPU array reports over DLPack (device type, device id)."""

    def __init__(self, device_type, device_id=0):
        self._dev = (device_type, device_id)

    def __dlpack__(self, **kwargs):  # pragma: no cover - never reached
        raise AssertionError("fastconv must not ask a GPU array for its data")

    def __dlpack_device__(self):
        return self._dev


class CudaInterface:
    """A CuPy-like array: __cuda_array_interface__, and __array__ refusing."""

    @property
    def __cuda_array_interface__(self):
        return {"shape": (2, 3, 8, 8), "typestr": "<f8", "data": (0, False), "version": 3}

    def __array__(self, dtype=None, copy=None):  # pragma: no cover - never reached
        raise TypeError("Implicit conversion to a NumPy array is not allowed")


WRAPPERS = [DLPackOnly, DLPackNoDevice, InterfaceOnly, ArrayMethod]


def _ops(wrap):
    """Every functional op, with each array argument wrapped."""
    return {
        "conv2d": lambda: F.conv2d(wrap(X), wrap(W), wrap(B), padding=1),
        "conv2d_backward": lambda: F.conv2d_backward(wrap(DY), wrap(X), wrap(W), padding=1),
        "max_pool2d": lambda: F.max_pool2d(wrap(X), 2),
        "max_pool2d_backward": lambda: F.max_pool2d_backward(wrap(DYP), wrap(X), 2),
        "avg_pool2d": lambda: F.avg_pool2d(wrap(X), 2),
        "avg_pool2d_backward": lambda: F.avg_pool2d_backward(wrap(DYP), X.shape, 2),
        "linear": lambda: F.linear(wrap(XL), wrap(WL)),
        "linear_backward": lambda: F.linear_backward(wrap(DYL), wrap(XL), wrap(WL)),
        "relu": lambda: F.relu(wrap(X)),
        "relu_backward": lambda: F.relu_backward(wrap(X), wrap(X - 0.5)),
    }


def _same(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("op", list(_ops(lambda a: a)))
def test_every_op_takes_foreign_arrays(op, wrapper):
    _same(_ops(wrapper)[op](), _ops(lambda a: a)[op]())


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda c: c.__name__)
def test_read_in_place_without_a_copy(wrapper):
    for a in (X, X.astype(np.float32)):
        got = valid.computable_array(wrapper(a), "x", "conv2d")
        assert np.shares_memory(got, a)
        # what the kernel is handed: the caller's memory itself
        assert np.shares_memory(F._flat(got, a.dtype), a)


@pytest.mark.parametrize("view", ["transposed", "strided", "negative", "fortran"])
def test_dlpack_views_compute_like_their_ndarrays(view):
    a = {"transposed": lambda: np.ascontiguousarray(X.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
         "strided": lambda: np.repeat(X, 2, axis=3)[..., ::2],
         "negative": lambda: np.ascontiguousarray(X[..., ::-1])[..., ::-1],
         "fortran": lambda: np.asfortranarray(X)}[view]()
    try:
        wrapped = DLPackOnly(a)
        y = F.conv2d(wrapped, W, padding=1)
    except TypeError as exc:
        # NumPy refuses to export negative strides over DLPack
        assert view == "negative" and "DLPack" in str(exc)
        return
    _same(y, F.conv2d(X, W, padding=1))


def test_dlpack_integers_promote_like_ndarrays():
    xi = (X * 10).astype(np.int32)
    _same(F.max_pool2d(DLPackOnly(xi), 2), F.max_pool2d(xi, 2))


@pytest.mark.parametrize("bad, message", [
    (lambda: DLPackOnly(X > 0), "conv2d: x has dtype bool; fastconv computes in float32 or "
                                "float64 and accepts real numeric arrays only"),
    (lambda: DLPackOnly(X.astype(np.complex128)),
     "conv2d: x has dtype complex128 (complex); fastconv computes"),
])
def test_dlpack_bad_dtypes_keep_their_messages(bad, message):
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        F.conv2d(bad(), W)


@pytest.mark.parametrize("device_type, device_id, name", [
    (2, 0, "CUDA device 0"), (2, 3, "CUDA device 3"), (10, 1, "ROCm device 1"),
    (8, 0, "Metal device 0"), (99, 0, "DLPack device type 99 device 0")])
def test_gpu_dlpack_arrays_are_rejected(device_type, device_id, name):
    with pytest.raises(TypeError, match=rf"conv2d: x is on {name}, not the CPU; .*move the "
                                        rf"array to the CPU first"):
        F.conv2d(OnDevice(device_type, device_id), W)


def test_cuda_array_interface_is_rejected():
    for call in (lambda: F.conv2d(X, CudaInterface()), lambda: F.relu(CudaInterface())):
        with pytest.raises(TypeError, match=r"is on a CUDA device, not the CPU; .*move the array "
                                            r"to the CPU first \(CuPy: a.get\(\)"):
            call()


def test_host_dlpack_devices_are_accepted():
    class Pinned(DLPackOnly):
        def __dlpack_device__(self):
            return (3, 0)          # CUDA pinned host memory: the CPU reads it
    got = valid.computable_array(Pinned(X), "x", "conv2d")
    assert np.shares_memory(got, X)


def test_failing_dlpack_export_is_a_type_error():
    class Broken:
        def __dlpack__(self, **kwargs):
            raise BufferError("no")
    with pytest.raises(TypeError, match=r"conv2d: x could not be converted to an array "
                                        r"through DLPack: no"):
        F.conv2d(Broken(), W)


def test_layers_and_losses_take_dlpack():
    conv = fastconv.Conv2d(3, 4, 3, padding=1, dtype=np.float64, seed=0)
    _same(conv(DLPackOnly(X)), conv(X))
    dx = conv.backward(DLPackOnly(DY))
    _same(dx, conv.backward(DY))
    scores = randn((5, 4), np.float64, "scores")
    labels = np.array([0, 3, 1, 2, 0])
    _same(np.asarray(fastconv.softmax_cross_entropy(DLPackOnly(scores), DLPackOnly(labels))[0]),
          np.asarray(fastconv.softmax_cross_entropy(scores, labels)[0]))


# ------------------------------------------------------------- frameworks

def _x64(jax, on):
    # jax.enable_x64 is the context manager of recent JAX; older releases
    # had it as jax.experimental.enable_x64.
    switch = getattr(jax, "enable_x64", None)
    if switch is None:
        from jax.experimental import enable_x64 as switch
    return switch(on)


def test_jax_arrays():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    for dtype in (np.float32, np.float64):
        with _x64(jax, dtype == np.float64):
            xj, wj = jnp.asarray(X.astype(dtype)), jnp.asarray(W.astype(dtype))
            assert xj.dtype == dtype
            _same(F.conv2d(xj, wj, padding=1), F.conv2d(X.astype(dtype), W.astype(dtype),
                                                         padding=1))
            got = valid.computable_array(xj, "x", "conv2d")
            # JAX's CPU buffer, read where it lies
            assert got.__array_interface__["data"][0] == xj.unsafe_buffer_pointer()


def test_torch_cpu_tensors():
    torch = pytest.importorskip("torch")
    xt, wt = torch.from_numpy(X.copy()), torch.from_numpy(W.copy())
    _same(F.conv2d(xt, wt, padding=1), F.conv2d(X, W, padding=1))
    assert np.shares_memory(valid.computable_array(xt, "x", "conv2d"), xt.numpy())
    # a non-contiguous tensor: a view NumPy can read, copied for the kernel only
    _same(F.max_pool2d(xt.transpose(2, 3), 2), F.max_pool2d(X.transpose(0, 1, 3, 2), 2))
    _same(F.relu(xt.float()), F.relu(X.astype(np.float32)))
    with pytest.raises(TypeError, match=r"conv2d: x could not be converted to an array: .*"
                                        r"requires grad"):
        F.conv2d(xt.clone().requires_grad_(True), W)
    # a CUDA tensor's DLPack device, as a stand-in (no GPU here)
    with pytest.raises(TypeError, match="x is on CUDA device 0, not the CPU"):
        F.conv2d(OnDevice(2, 0), wt)
