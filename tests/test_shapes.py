"""fastconv.output_size and the ShapeError messages of the output-size formula."""

import re

import numpy as np
import pytest

import fastconv
import reference as ref
from fastconv import ShapeError


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)


@pytest.mark.parametrize("size, kernel, stride, padding, want", [
    (32, 5, 1, 2, 32),
    (32, 5, 1, 0, 28),
    (31, 3, 2, 1, 16),      # the CS231n layer
    (32, 3, 1, 1, 32),
    (227, 11, 4, 0, 55),    # AlexNet conv1
    (7, 7, 1, 0, 1),        # kernel equal to the input
    (5, 7, 1, 1, 1),        # kernel equal to the padded input
    (1, 1, 1, 0, 1),
    (9, 1, 2, 0, 5),        # 1x1 stride 2
    (3, 3, 3, 3, 3),        # padding equal to the kernel
])
def test_output_size_exact(size, kernel, stride, padding, want):
    assert fastconv.output_size(size, kernel, stride, padding) == want
    assert fastconv.output_size(size, kernel, stride, padding, strict=False) == want
    assert ref.out_len(size, kernel, stride, padding) == want


def test_output_size_defaults():
    assert fastconv.output_size(10, 3) == 8
    assert isinstance(fastconv.output_size(10, 3), int)
    assert isinstance(fastconv.output_size(np.int64(10), np.int32(3)), int)


@pytest.mark.parametrize("size, kernel, stride, padding, floored", [
    (32, 5, 2, 0, 14),      # 14.5
    (7, 2, 2, 0, 3),        # 3.5
    (224, 7, 2, 3, 112),    # ResNet conv1: 112.5
    (10, 3, 4, 0, 2),       # 2.75
    (11, 3, 3, 1, 4),       # 4.33
    (2, 2, 3, 0, 1),        # exact: both modes agree
])
def test_output_size_floors_when_not_strict(size, kernel, stride, padding, floored):
    assert fastconv.output_size(size, kernel, stride, padding, strict=False) == floored
    exact = (size - kernel + 2 * padding) % stride == 0
    if exact:
        assert fastconv.output_size(size, kernel, stride, padding) == floored
    else:
        with pytest.raises(ShapeError, match="not an integer"):
            fastconv.output_size(size, kernel, stride, padding)


def test_strict_message_shows_the_numbers():
    with pytest.raises(ShapeError) as info:
        fastconv.output_size(32, 5, 2, 0)
    msg = str(info.value)
    assert "(W - F + 2P)/S + 1" in msg
    assert "(32 - 5 + 2*0)/2 + 1" in msg
    assert "14.5" in msg
    assert "not an integer" in msg
    assert "strict=False" in msg  # says how to get the floored size


@pytest.mark.parametrize("strict", [True, False])
def test_empty_output_raises_even_when_not_strict(strict):
    with pytest.raises(ShapeError, match=r"\(3 - 5 \+ 2\*0\)/1 \+ 1") as info:
        fastconv.output_size(3, 5, 1, 0, strict=strict)
    assert "less than 1" in str(info.value)


@pytest.mark.parametrize("args, exc, words", [
    ((10, 0), ValueError, "kernel"),
    ((10, -3), ValueError, "kernel"),
    ((10, 3, 0), ValueError, "stride"),
    ((10, 3, -1), ValueError, "stride"),
    ((10, 3, 1, -1), ValueError, "padding"),
    ((10.0, 3), TypeError, "int"),
    ((10, 3.0), TypeError, "int"),
    ((10, 3, True), TypeError, "bool"),
    ((10, True), TypeError, "bool"),
    ((10, 3, 1, "1"), TypeError, "int"),
])
def test_output_size_rejects_bad_arguments(args, exc, words):
    with pytest.raises(exc, match=words):
        fastconv.output_size(*args)


# The functional API routes every op through the same formula; its messages
# name the op and the axis, with the example verbatim for conv2d.

def test_conv2d_message_matches_the_documented_example():
    x = np.zeros((1, 1, 32, 32))
    w = np.zeros((1, 1, 5, 5))
    want = "conv2d: width (W - F + 2P)/S + 1 = (32 - 5 + 2*0)/2 + 1 = 14.5 is not an integer"
    with pytest.raises(ShapeError, match=re.escape(want)):
        fastconv.conv2d(x, w, stride=(1, 2))
    y = fastconv.conv2d(x, w, stride=(1, 2), strict=False)
    assert y.shape == (1, 1, 28, 14)


def test_conv2d_message_names_the_height_axis():
    x = np.zeros((1, 1, 10, 9))
    w = np.zeros((1, 1, 3, 3))
    want = "height (W - F + 2P)/S + 1 = (10 - 3 + 2*1)/2 + 1 = 5.5"
    with pytest.raises(ShapeError, match=re.escape(want)):
        fastconv.conv2d(x, w, stride=2, padding=1)


@pytest.mark.parametrize("call, name", [
    (lambda x: fastconv.max_pool2d(x, 2), "max_pool2d"),
    (lambda x: fastconv.avg_pool2d(x, 2), "avg_pool2d"),
    (lambda x: fastconv.max_pool2d_backward(np.zeros((1, 1, 3, 3)), x, 2), "max_pool2d_backward"),
    (lambda x: fastconv.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), x.shape, 2),
     "avg_pool2d_backward"),
])
def test_pool_message(call, name):
    x = np.zeros((1, 1, 7, 7))
    with pytest.raises(ShapeError, match=re.escape("(7 - 2 + 2*0)/2 + 1 = 3.5")) as info:
        call(x)
    assert name.split("_backward")[0] in str(info.value)


def test_pool_strict_false_floors():
    x = np.arange(49, dtype=np.float64).reshape(1, 1, 7, 7)
    assert fastconv.max_pool2d(x, 2, strict=False).shape == (1, 1, 3, 3)
    assert fastconv.avg_pool2d(x, 2, strict=False).shape == (1, 1, 3, 3)
    dx = fastconv.max_pool2d_backward(np.ones((1, 1, 3, 3)), x, 2, strict=False)
    assert dx.shape == x.shape and dx[0, 0, 6].sum() == 0 and dx[0, 0, :, 6].sum() == 0
    dx = fastconv.avg_pool2d_backward(np.ones((1, 1, 3, 3)), x.shape, 2, strict=False)
    assert dx.shape == x.shape and dx[0, 0, 6].sum() == 0 and dx[0, 0, :, 6].sum() == 0


@pytest.mark.parametrize("strict", [True, False])
def test_kernel_larger_than_padded_input(strict):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ShapeError, match="less than 1"):
        fastconv.conv2d(x, np.zeros((1, 1, 5, 3)), strict=strict)
    with pytest.raises(ShapeError, match="less than 1"):
        fastconv.max_pool2d(x, (1, 5), strict=strict)
    with pytest.raises(ShapeError, match="less than 1"):
        fastconv.avg_pool2d(x, (5, 1), strict=strict)
