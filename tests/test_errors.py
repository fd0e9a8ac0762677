"""Every bad input of the functional API raises a clear exception before any C
runs, and no call (good or bad) modifies its input arrays."""

import re

import numpy as np
import pytest

import fastconv
from fastconv import ShapeError
from conftest import inputs_never_written

_rng = np.random.default_rng(3)
# Valid inputs; each bad call below changes exactly one thing about them.
X = _rng.standard_normal((2, 3, 8, 8))
W = _rng.standard_normal((4, 3, 3, 3))
B = _rng.standard_normal(4)
DY = _rng.standard_normal((2, 4, 6, 6))        # conv2d(X, W) output shape
DYP = _rng.standard_normal((2, 3, 4, 4))       # 2x2 pooling of X
XL = _rng.standard_normal((5, 6))
WL = _rng.standard_normal((7, 6))
BL = _rng.standard_normal(7)
DYL = _rng.standard_normal((5, 7))
INPUTS = [X, W, B, DY, DYP, XL, WL, BL, DYL]


inputs_unchanged = inputs_never_written(INPUTS)


def check_raises(call, exc, op, *words):
    """`call` raises `exc` whose message names the op and matches every word."""
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    assert op in msg, f"message does not name {op}: {msg!r}"
    for word in words:
        assert re.search(word, msg, re.IGNORECASE), f"{word!r} not in message {msg!r}"
    return msg


F = fastconv
BAD_CALLS = {
    # wrong ndim
    "conv2d x 3-D": (lambda: F.conv2d(X[0], W), ValueError, "conv2d", r"\bx\b", r"4-?D|dim"),
    "conv2d x 5-D": (lambda: F.conv2d(X[None], W), ValueError, "conv2d", r"\bx\b", r"4-?D|dim"),
    "conv2d w 3-D": (lambda: F.conv2d(X, W[0]), ValueError, "conv2d", r"\bw\b", r"4-?D|dim"),
    "conv2d_backward x 3-D": (lambda: F.conv2d_backward(DY, X[0], W), ValueError,
                              "conv2d_backward", r"\bx\b", r"4-?D|dim"),
    "max_pool2d x 2-D": (lambda: F.max_pool2d(X[0, 0], 2), ValueError, "max_pool2d",
                         r"\bx\b", r"4-?D|dim"),
    "avg_pool2d x 3-D": (lambda: F.avg_pool2d(X[0], 2), ValueError, "avg_pool2d",
                         r"\bx\b", r"4-?D|dim"),
    "max_pool2d_backward x 3-D": (lambda: F.max_pool2d_backward(DYP[0], X[0], 2), ValueError,
                                  "max_pool2d_backward", r"\bx\b", r"4-?D|dim"),
    "avg_pool2d_backward x_shape 3": (lambda: F.avg_pool2d_backward(DYP, X.shape[1:], 2),
                                      ValueError, "avg_pool2d_backward", "x_shape"),
    "linear x 1-D": (lambda: F.linear(XL[0], WL), ValueError, "linear", r"\bx\b"),
    "linear w 3-D": (lambda: F.linear(XL, WL[None]), ValueError, "linear", r"\bw\b",
                     r"2-?D|dim"),
    # channel / feature mismatch
    "conv2d channels": (lambda: F.conv2d(X, W[:, :2]), ValueError, "conv2d", "channel",
                        r"\b3\b", r"\b2\b"),
    "conv2d_backward channels": (lambda: F.conv2d_backward(DY, X[:, :2], W), ValueError,
                                 "conv2d_backward", "channel"),
    "linear features": (lambda: F.linear(XL, WL[:, :5]), ValueError, "linear", "feature",
                        r"\b6\b", r"\b5\b"),
    "linear_backward features": (lambda: F.linear_backward(DYL, XL[:, :5], WL), ValueError,
                                 "linear_backward", "feature"),
    # bias of the wrong length or ndim
    "conv2d bias long": (lambda: F.conv2d(X, W, np.zeros(5)), ValueError, "conv2d",
                         r"\bb\b", r"\b4\b"),
    "conv2d bias 2-D": (lambda: F.conv2d(X, W, B[None]), ValueError, "conv2d", r"\bb\b"),
    "linear bias short": (lambda: F.linear(XL, WL, BL[:6]), ValueError, "linear",
                          r"\bb\b", r"\b7\b"),
    # non-positive stride or kernel, negative padding
    "conv2d stride 0": (lambda: F.conv2d(X, W, stride=0), ValueError, "conv2d", "stride"),
    "conv2d stride (1, -1)": (lambda: F.conv2d(X, W, stride=(1, -1)), ValueError, "conv2d",
                              "stride"),
    "conv2d padding -1": (lambda: F.conv2d(X, W, padding=-1), ValueError, "conv2d", "padding"),
    "conv2d empty kernel": (lambda: F.conv2d(X, W[:, :, :0]), ValueError, "conv2d", "kernel"),
    "conv2d_backward stride 0": (lambda: F.conv2d_backward(DY, X, W, stride=0), ValueError,
                                 "conv2d_backward", "stride"),
    "conv2d_backward padding -2": (lambda: F.conv2d_backward(DY, X, W, padding=(0, -2)),
                                   ValueError, "conv2d_backward", "padding"),
    "max_pool2d kernel 0": (lambda: F.max_pool2d(X, 0), ValueError, "max_pool2d", "kernel"),
    "max_pool2d kernel -2": (lambda: F.max_pool2d(X, (2, -2)), ValueError, "max_pool2d",
                             "kernel"),
    "avg_pool2d kernel 0": (lambda: F.avg_pool2d(X, (0, 2)), ValueError, "avg_pool2d", "kernel"),
    "max_pool2d stride 0": (lambda: F.max_pool2d(X, 2, 0), ValueError, "max_pool2d", "stride"),
    "avg_pool2d stride -1": (lambda: F.avg_pool2d(X, 2, (2, -1)), ValueError, "avg_pool2d",
                             "stride"),
    "max_pool2d padding -1": (lambda: F.max_pool2d(X, 2, 2, -1), ValueError, "max_pool2d",
                              "padding"),
    "avg_pool2d padding -1": (lambda: F.avg_pool2d(X, 3, 1, (-1, 0)), ValueError,
                              "avg_pool2d", "padding"),
    "max_pool2d_backward kernel 0": (lambda: F.max_pool2d_backward(DYP, X, 0), ValueError,
                                     "max_pool2d_backward", "kernel"),
    "avg_pool2d_backward stride 0": (lambda: F.avg_pool2d_backward(DYP, X.shape, 2, 0),
                                     ValueError, "avg_pool2d_backward", "stride"),
    # pooling padding larger than half the kernel (as in PyTorch)
    "max_pool2d padding > k//2": (lambda: F.max_pool2d(X, 2, 2, 2), ValueError, "max_pool2d",
                                  "padding", "half|k.*//.*2"),
    "avg_pool2d padding > k//2": (lambda: F.avg_pool2d(X, (3, 3), 1, (1, 2)), ValueError,
                                  "avg_pool2d", "padding"),
    # dy of the wrong shape
    "conv2d_backward dy": (lambda: F.conv2d_backward(DY[:, :, :5], X, W), ValueError,
                           "conv2d_backward", r"\bdy\b", r"\(2, 4, 6, 6\)"),
    "conv2d_backward dy 3-D": (lambda: F.conv2d_backward(DY[0], X, W), ValueError,
                               "conv2d_backward", r"\bdy\b"),
    "max_pool2d_backward dy": (lambda: F.max_pool2d_backward(DYP[:1], X, 2), ValueError,
                               "max_pool2d_backward", r"\bdy\b", r"\(2, 3, 4, 4\)"),
    "avg_pool2d_backward dy": (lambda: F.avg_pool2d_backward(DYP, X.shape, 3, 1, 1),
                               ValueError, "avg_pool2d_backward", r"\bdy\b"),
    "linear_backward dy": (lambda: F.linear_backward(DYL[:, :6], XL, WL), ValueError,
                           "linear_backward", r"\bdy\b", r"\(5, 7\)"),
    "relu_backward dy": (lambda: F.relu_backward(DYL, XL), ValueError, "relu_backward",
                         r"\bdy\b"),
    # non-integer or bool sizes
    "conv2d stride float": (lambda: F.conv2d(X, W, stride=1.0), TypeError, "conv2d",
                            "stride", "int"),
    "conv2d stride bool": (lambda: F.conv2d(X, W, stride=True), TypeError, "conv2d",
                           "stride", "bool"),
    "conv2d padding float in pair": (lambda: F.conv2d(X, W, padding=(1, 0.5)), TypeError,
                                     "conv2d", "padding", "int"),
    "conv2d padding bool": (lambda: F.conv2d(X, W, padding=(False, 0)), TypeError, "conv2d",
                            "padding", "bool"),
    "conv2d stride triple": (lambda: F.conv2d(X, W, stride=(1, 1, 1)), ValueError, "conv2d",
                             "stride", "pair"),
    "conv2d_backward stride str": (lambda: F.conv2d_backward(DY, X, W, stride="1"), TypeError,
                                   "conv2d_backward", "stride"),
    "max_pool2d kernel float": (lambda: F.max_pool2d(X, 2.0), TypeError, "max_pool2d",
                                "kernel", "int"),
    "max_pool2d kernel bool": (lambda: F.max_pool2d(X, (True, 2)), TypeError, "max_pool2d",
                               "kernel", "bool"),
    "avg_pool2d stride float": (lambda: F.avg_pool2d(X, 2, 2.0), TypeError, "avg_pool2d",
                                "stride", "int"),
    "avg_pool2d padding bool": (lambda: F.avg_pool2d(X, 2, 2, True), TypeError, "avg_pool2d",
                                "padding", "bool"),
    "max_pool2d_backward stride float": (lambda: F.max_pool2d_backward(DYP, X, 2, 2.5),
                                         TypeError, "max_pool2d_backward", "stride"),
    "avg_pool2d_backward kernel bool": (lambda: F.avg_pool2d_backward(DYP, X.shape, True),
                                        TypeError, "avg_pool2d_backward", "kernel"),
    # strict output-size formula
    "conv2d not integer": (lambda: F.conv2d(X, W, stride=2), ShapeError, "conv2d",
                           re.escape("(8 - 3 + 2*0)/2 + 1 = 3.5"), "not an integer"),
    "max_pool2d not integer": (lambda: F.max_pool2d(X, 3), ShapeError, "max_pool2d",
                               re.escape("(8 - 3 + 2*0)/3 + 1 = 2.66667"), "not an integer"),
    "avg_pool2d not integer": (lambda: F.avg_pool2d(X, (2, 3), (2, 2)), ShapeError,
                               "avg_pool2d", "width", re.escape("(8 - 3 + 2*0)/2 + 1 = 3.5")),
    "conv2d empty output": (lambda: F.conv2d(X, np.zeros((4, 3, 9, 3))), ShapeError,
                            "conv2d", "height", r"less than 1"),
    "conv2d empty output floored": (lambda: F.conv2d(X, np.zeros((4, 3, 3, 11)), strict=False),
                                    ShapeError, "conv2d", "width", r"less than 1"),
    # bad activation name
    "conv2d activation": (lambda: F.conv2d(X, W, activation="tanh"), ValueError, "conv2d",
                          "activation", "relu"),
    "linear activation": (lambda: F.linear(XL, WL, activation="Relu"), ValueError, "linear",
                          "activation"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_argument(name):
    call, exc, op, *words = BAD_CALLS[name]
    check_raises(call, exc, op, *words)


def test_shape_error_is_value_error():
    with pytest.raises(ValueError):
        fastconv.conv2d(X, W, stride=2)


# Arrays of dtypes fastconv does not compute in: every array argument of every
# op is tried in turn.

BAD_DTYPES = {
    "complex": (lambda a: a.astype(np.complex128), "complex"),
    "bool": (lambda a: a > 0, "bool"),
    "object": (lambda a: a.astype(object), "object"),
    "str": (lambda a: a.astype(str), r"str|<U"),
    "bytes": (lambda a: a.astype("S8"), r"bytes|\|S"),
}

OPS = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b), (X, W, B), ("x", "w", "b")),
    "conv2d_backward": (lambda dy, x, w: F.conv2d_backward(dy, x, w), (DY, X, W),
                        ("dy", "x", "w")),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), (X,), ("x",)),
    "max_pool2d_backward": (lambda dy, x: F.max_pool2d_backward(dy, x, 2), (DYP, X),
                            ("dy", "x")),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), (X,), ("x",)),
    "avg_pool2d_backward": (lambda dy: F.avg_pool2d_backward(dy, X.shape, 2), (DYP,), ("dy",)),
    "linear": (lambda x, w, b: F.linear(x, w, b), (XL, WL, BL), ("x", "w", "b")),
    "linear_backward": (lambda dy, x, w: F.linear_backward(dy, x, w), (DYL, XL, WL),
                        ("dy", "x", "w")),
    "relu": (lambda x: F.relu(x), (XL,), ("x",)),
    "relu_backward": (lambda dy, x: F.relu_backward(dy, x), (XL, XL), ("dy", "x")),
}

DTYPE_CASES = [(op, i, kind) for op, (_, args, _) in OPS.items()
               for i in range(len(args)) for kind in BAD_DTYPES]


@pytest.mark.parametrize("op, position, kind", DTYPE_CASES,
                         ids=[f"{op}-{OPS[op][2][i]}-{k}" for op, i, k in DTYPE_CASES])
def test_bad_dtype_is_type_error(op, position, kind):
    call, args, names = OPS[op]
    convert, word = BAD_DTYPES[kind]
    args = list(args)
    args[position] = convert(args[position])
    check_raises(lambda: call(*args), TypeError, op, rf"\b{names[position]}\b", word)


@pytest.mark.parametrize("op", list(OPS))
def test_good_calls_leave_inputs_alone(op):
    # The autouse fixture compares every input with its copy afterwards; the
    # views here also check that read-only inputs are never written.
    call, args, _ = OPS[op]
    views = []
    for a in args:
        v = a.copy()
        v.flags.writeable = False
        views.append(v)
    call(*args)
    call(*views)
    for v, a in zip(views, args):
        np.testing.assert_array_equal(v, a)
