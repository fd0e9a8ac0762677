"""dtype promotion, output layout, input views and empty batches."""

import numpy as np
import pytest

import fastconv
from conftest import assert_fresh_output, randn

F = fastconv


def make_args(dtype):
    """Valid arguments for every op (stride 2 / padding 1 so that geometry is
    not trivial), keyed by op name; each entry is (call, arrays)."""
    x = randn((2, 3, 9, 8), dtype, "x")
    w = randn((5, 3, 3, 2), dtype, "w")
    b = randn((5,), dtype, "b")
    dy = randn((2, 5, 5, 5), dtype, "dy")          # conv2d(x, w, stride 2, padding 1)
    dyp = randn((2, 3, 5, 5), dtype, "dyp")        # (3, 2) pooling, stride 2, padding 1
    xl = randn((4, 3, 2, 2), dtype, "xl")
    wl = randn((6, 12), dtype, "wl")
    bl = randn((6,), dtype, "bl")
    dyl = randn((4, 6), dtype, "dyl")
    return {
        "conv2d": (lambda x, w, b: F.conv2d(x, w, b, 2, 1, activation="relu"), [x, w, b]),
        "conv2d_backward": (lambda dy, x, w: F.conv2d_backward(dy, x, w, 2, 1), [dy, x, w]),
        "max_pool2d": (lambda x: F.max_pool2d(x, (3, 2), 2, 1), [x]),
        "max_pool2d_backward": (lambda dy, x: F.max_pool2d_backward(dy, x, (3, 2), 2, 1),
                                [dyp, x]),
        "avg_pool2d": (lambda x: F.avg_pool2d(x, (3, 2), 2, 1, count_include_pad=False), [x]),
        "avg_pool2d_backward": (lambda dy: F.avg_pool2d_backward(dy, (2, 3, 9, 8), (3, 2), 2, 1),
                                [dyp]),
        "linear": (lambda x, w, b: F.linear(x, w, b), [xl, wl, bl]),
        "linear_backward": (lambda dy, x, w: F.linear_backward(dy, x, w), [dyl, xl, wl]),
        "relu": (lambda x: F.relu(x), [x]),
        "relu_backward": (lambda dy, x: F.relu_backward(dy, x), [x[::-1].copy(), x]),
    }


OP_NAMES = list(make_args(np.float64))


def _outputs(result):
    return [r for r in (result if isinstance(result, tuple) else (result,)) if r is not None]


def test_argument_shapes_are_consistent():
    # Guards the hand-written shapes of make_args.
    args = make_args(np.float64)
    assert F.conv2d(*args["conv2d"][1], 2, 1).shape == args["conv2d_backward"][1][0].shape
    assert F.max_pool2d(args["max_pool2d"][1][0], (3, 2), 2, 1).shape == \
        args["max_pool2d_backward"][1][0].shape


# ------------------------------------------------------------- promotion

@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_dtype_follows_input(op, dtype):
    call, arrays = make_args(dtype)[op]
    outs = _outputs(call(*arrays))
    assert outs
    for y in outs:
        assert y.dtype == np.dtype(dtype)
        assert_fresh_output(y, *arrays)


@pytest.mark.parametrize("op", [n for n in OP_NAMES if len(make_args(np.float64)[n][1]) > 1])
def test_float32_with_float64_gives_float64(op):
    call, a32 = make_args(np.float32)[op]
    a64 = [a.astype(np.float64) for a in a32]
    want = _outputs(call(*a64))
    for i in range(len(a32)):
        mixed = list(a32)
        mixed[i] = a64[i]   # one float64 argument among float32 ones
        got = _outputs(call(*mixed))
        for g, w in zip(got, want):
            assert g.dtype == np.float64
            # float32 values are exact in float64: same inputs, same kernel.
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("int_dtype", [np.int64, np.int32])
def test_integer_inputs_compute_in_float64(op, int_dtype):
    call, a64 = make_args(np.float64)[op]
    ints = [np.round(a * 4).astype(int_dtype) for a in a64]
    got = _outputs(call(*ints))
    want = _outputs(call(*[i.astype(np.float64) for i in ints]))
    for g, w in zip(got, want):
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("op", [n for n in OP_NAMES if len(make_args(np.float64)[n][1]) > 1])
def test_integer_with_float32_gives_float64(op):
    call, a32 = make_args(np.float32)[op]
    mixed = [np.round(a32[0] * 4).astype(np.int64)] + list(a32[1:])
    for y in _outputs(call(*mixed)):
        assert y.dtype == np.float64


# ----------------------------------------------------------------- views

def non_contiguous(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), a.dtype)
    big[..., 1::2] = a
    return big[..., 1::2]


def negative_strides(a):
    every_axis = (slice(None, None, -1),) * a.ndim
    return np.ascontiguousarray(a[every_axis])[every_axis]


def fortran_order(a):
    return np.asfortranarray(a)


def read_only(a):
    c = a.copy()
    c.flags.writeable = False
    return c


def big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


def strided_channels(a):
    # Every other element of the second axis, the rest holding junk.
    if a.ndim < 2:
        return non_contiguous(a)
    big = np.full((a.shape[0], 2 * a.shape[1]) + a.shape[2:], np.nan, a.dtype)
    big[:, ::2] = a
    return big[:, ::2]


VIEWS = [non_contiguous, negative_strides, fortran_order, read_only, big_endian,
         strided_channels]


@pytest.mark.parametrize("view", VIEWS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_views_give_the_same_result(op, view, dtype):
    call, arrays = make_args(dtype)[op]
    viewed = [view(a) for a in arrays]
    for v, a in zip(viewed, arrays):
        np.testing.assert_array_equal(v, a)  # same values, other memory layout
    if view is not read_only and view is not big_endian:
        assert not all(v.flags.c_contiguous for v in viewed)
    want = _outputs(call(*arrays))
    got = _outputs(call(*viewed))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == np.dtype(dtype) and g.dtype.isnative
        assert g.flags.c_contiguous
        np.testing.assert_array_equal(g, w)
    for v, a in zip(viewed, arrays):
        np.testing.assert_array_equal(v, a)


def test_fortran_order_output_is_c_contiguous():
    x = np.asfortranarray(randn((2, 3, 6, 6), np.float64, "f"))
    w = np.asfortranarray(randn((4, 3, 3, 3), np.float64, "g"))
    for y in (F.conv2d(x, w), F.max_pool2d(x, 2), F.avg_pool2d(x, 2), F.relu(x)):
        assert y.flags.c_contiguous and not y.flags.f_contiguous


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_outputs_start_on_a_cache_line(dtype):
    # Outputs of 4 MiB and more are 64-byte aligned (views into a slightly
    # larger buffer): fresh, writeable, C-contiguous, of the right shape and
    # dtype, and each in its own memory.
    x = randn((2, 16, 192, 192), dtype, "big x")
    w = randn((24, 16, 1, 1), dtype, "big w")
    dy = randn((2, 24, 192, 192), dtype, "big dy")
    xl = randn((2048, 64), dtype, "big xl")
    wl = randn((600, 64), dtype, "big wl")
    y1, y2 = F.conv2d(x, w), F.conv2d(x, w)
    outs = {"conv2d": y1, "dx": F.conv2d_backward(dy, x, w)[0],
            "max_pool2d": F.max_pool2d(x, 1), "avg_pool2d": F.avg_pool2d(x, 1),
            "relu": F.relu(x), "relu_backward": F.relu_backward(x, x),
            "linear": F.linear(xl, wl)}
    for name, y in outs.items():
        assert y.nbytes >= F.functional._ALIGN_FROM, name
        assert y.ctypes.data % 64 == 0, name
        assert y.dtype == dtype, name
        assert_fresh_output(y, x, w, dy, xl, wl)
    assert y1.shape == (2, 24, 192, 192) and outs["linear"].shape == (2048, 600)
    np.testing.assert_array_equal(y1, y2)
    y1[...] = 1
    assert not np.shares_memory(y1, y2) and (y2 != 1).any()
    small = F.conv2d(x[:1, :, :8, :8], w)
    assert small.nbytes < F.functional._ALIGN_FROM and small.flags.owndata


# ----------------------------------------------------------- empty batch

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch(dtype, isa):
    x = np.zeros((0, 3, 9, 8), dtype)
    w = randn((5, 3, 3, 2), dtype, "w0")
    b = randn((5,), dtype, "b0")
    y = F.conv2d(x, w, b, 2, 1)
    assert y.shape == (0, 5, 5, 5) and y.dtype == dtype
    dx, dw, db = F.conv2d_backward(np.zeros((0, 5, 5, 5), dtype), x, w, 2, 1)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert dw.shape == w.shape and not dw.any() and dw.dtype == dtype
    assert db.shape == (5,) and not db.any() and db.dtype == dtype
    _, dw, db = F.conv2d_backward(np.zeros((0, 5, 5, 5), dtype), x, w, 2, 1, need_dx=False)
    assert not dw.any() and not db.any()

    for y in (F.max_pool2d(x, (3, 2), 2, 1), F.avg_pool2d(x, (3, 2), 2, 1)):
        assert y.shape == (0, 3, 5, 5) and y.dtype == dtype
    dyp = np.zeros((0, 3, 5, 5), dtype)
    assert F.max_pool2d_backward(dyp, x, (3, 2), 2, 1).shape == x.shape
    assert F.avg_pool2d_backward(dyp, x.shape, (3, 2), 2, 1).shape == x.shape

    xl = np.zeros((0, 3, 2, 2), dtype)
    wl = randn((6, 12), dtype, "wl0")
    y = F.linear(xl, wl, randn((6,), dtype, "bl0"))
    assert y.shape == (0, 6) and y.dtype == dtype
    dx, dw, db = F.linear_backward(np.zeros((0, 6), dtype), xl, wl)
    assert dx.shape == xl.shape and dw.shape == wl.shape and db.shape == (6,)
    assert not dw.any() and not db.any()

    assert F.relu(x).shape == x.shape
    assert F.relu_backward(x, x).shape == x.shape


def test_empty_batch_still_checks_the_formula():
    x = np.zeros((0, 3, 8, 8))
    with pytest.raises(fastconv.ShapeError):
        F.conv2d(x, np.zeros((4, 3, 3, 3)), stride=2)
    with pytest.raises(fastconv.ShapeError):
        F.max_pool2d(x, 3)
    with pytest.raises(ValueError, match="channel"):
        F.conv2d(x, np.zeros((4, 2, 3, 3)))
