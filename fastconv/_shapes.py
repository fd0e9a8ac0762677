"""The output-size formula ``(W - F + 2P) / S + 1`` and its error messages.

This module is the only place in fastconv where the formula is written down;
the functional API, the modules and ``Sequential.summary`` all call it.
"""

from ._validate import MAX_WINDOW_PARAM, integer, window_param

__all__ = ["ShapeError", "output_size", "conv_output_hw"]


class ShapeError(ValueError):
    """An output-size formula that does not give a positive integer."""


def output_size(size, kernel, stride=1, padding=0, *, strict=True,
                axis="size", where="output_size"):
    """Output length along one axis: ``(size - kernel + 2*padding) / stride + 1``.

    With ``strict=True`` a :class:`ShapeError` is raised unless the division is
    exact and the result is at least 1; ``strict=False`` floors the division
    (as PyTorch does) and still raises when the output would be empty.

    >>> output_size(32, 5, 1, 2)
    32
    >>> output_size(32, 5, 2, 0, strict=False)
    14
    """
    size = integer(size, "size", where)
    kernel = window_param(kernel, "kernel size", where)
    stride = window_param(stride, "stride", where)
    padding = window_param(padding, "padding", where)
    if size < 0:
        raise ValueError(f"{where}: {axis} must be >= 0, got {size}")
    if kernel < 1:
        raise ValueError(f"{where}: kernel size must be >= 1, got {kernel}")
    if stride < 1:
        raise ValueError(f"{where}: stride must be >= 1, got {stride}")
    if padding < 0:
        raise ValueError(f"{where}: padding must be >= 0, got {padding}")
    span = size - kernel + 2 * padding
    if span < 0 or (strict and span % stride):
        text = (f"{where}: {axis} (W - F + 2P)/S + 1 = "
                f"({size} - {kernel} + 2*{padding})/{stride} + 1 = {span / stride + 1:g}")
        if span < 0:
            raise ShapeError(f"{text} is less than 1: the kernel ({kernel}) is larger "
                             f"than the padded input ({size + 2 * padding})")
        raise ShapeError(f"{text} is not an integer; change the padding or stride, or "
                         f"pass strict=False to floor it")
    return span // stride + 1


def conv_output_hw(h, w, kernel, stride, padding, *, strict=True, where="conv2d"):
    """(H2, W2) for an input of h x w and per-axis (kernel, stride, padding) pairs."""
    # The common case, checked here without a call per axis: plain ints in
    # range whose formula gives positive integers.  Anything else goes
    # through output_size, which checks and words the error.
    if type(h) is int and type(w) is int:
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        if all(type(v) is int and 0 < v <= MAX_WINDOW_PARAM for v in (kh, kw, sh, sw)) and \
                all(type(v) is int and 0 <= v <= MAX_WINDOW_PARAM for v in (ph, pw)) and \
                h >= 0 and w >= 0:
            a, b = h - kh + 2 * ph, w - kw + 2 * pw
            if a >= 0 and b >= 0 and not (strict and (a % sh or b % sw)):
                return a // sh + 1, b // sw + 1
    return (output_size(h, kernel[0], stride[0], padding[0], strict=strict,
                        axis="height", where=where),
            output_size(w, kernel[1], stride[1], padding[1], strict=strict,
                        axis="width", where=where))
