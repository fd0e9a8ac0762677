"""The output-size formula ``(W - F + 2P) / S + 1`` and its error messages,
and the geometry of a convolution or pooling call built with it.

This module is the only place in fastconv where the formula is written down;
the functional API, the modules and ``Sequential.summary`` all call it.  Every
convolution op describes its call by a :class:`ConvGeometry` from
:func:`conv_geometry`, every pooling op by a :class:`PoolGeometry` from
:func:`pool_geometry`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

from ._typing import Int, IntOrPair, Shape
from ._validate import MAX_WINDOW_PARAM, integer, ndim, pair, pool_window, window_param

__all__ = ["ShapeError", "output_size", "conv_output_hw", "ConvGeometry", "PoolGeometry",
           "conv_geometry", "pool_geometry", "adaptive_output_hw"]


class ShapeError(ValueError):
    """An output-size formula that does not give a positive integer.

    A ValueError: the sizes given do not fit together.  The message shows the
    formula with the numbers put in.

    >>> import fastconv
    >>> try:
    ...     fastconv.output_size(224, 7, 2, 3)
    ... except fastconv.ShapeError as e:
    ...     print(str(e).split(";")[0])
    output_size: size (W - F + 2P)/S + 1 = (224 - 7 + 2*3)/2 + 1 = 112.5 is not an integer
    >>> issubclass(fastconv.ShapeError, ValueError)
    True
    """


def output_size(size: Int, kernel: Int, stride: Int = 1, padding: Int = 0, *,
                strict: bool = True, axis: str = "size", where: str = "output_size",
                dilation: Int = 1, padding_end: Optional[Int] = None,
                ceil_mode: bool = False) -> int:
    """Output length along one axis: ``(size - kernel + 2*padding) / stride + 1``,
    in general ``(size + P_begin + P_end - D*(kernel - 1) - 1) / stride + 1``
    with ``padding`` the padding at the start (``padding_end`` at the end,
    the same by default) and dilation D.

    With ``strict=True`` a :class:`ShapeError` is raised unless the division is
    exact and the result is at least 1; ``strict=False`` floors the division
    (as PyTorch does) and still raises when the output would be empty.

    ``ceil_mode=True`` (pooling) rounds the division up instead, whatever
    ``strict`` says, and then drops the last window if it would start past
    the input and its start padding (PyTorch's rule: every window starts
    inside the input or the left padding, so it holds an input value or, at
    worst, ends in the right padding).

    >>> output_size(32, 5, 1, 2)
    32
    >>> output_size(32, 5, 2, 0, strict=False)
    14
    >>> output_size(32, 3, 1, 2, dilation=2)
    32
    >>> output_size(5, 2, 2, 0, ceil_mode=True), output_size(5, 2, 2, 1, ceil_mode=True)
    (3, 3)
    """
    if dilation != 1 or padding_end is not None or ceil_mode:
        return _output_size_general(size, kernel, stride, padding, padding_end, dilation,
                                    strict=strict, axis=axis, where=where,
                                    ceil_mode=bool(ceil_mode))
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


def _output_size_general(size: Int, kernel: Int, stride: Int, padding: Int,
                         padding_end: Optional[Int], dilation: Int, *, strict: bool, axis: str,
                         where: str, ceil_mode: bool = False) -> int:
    """output_size with dilation, padding that may differ at the two ends or
    ceil_mode; its error shows every number."""
    size = integer(size, "size", where)
    kernel = window_param(kernel, "kernel size", where)
    stride = window_param(stride, "stride", where)
    dilation = window_param(dilation, "dilation", where)
    pb = window_param(padding, "padding", where)
    pe = pb if padding_end is None else window_param(padding_end, "padding", where)
    if size < 0:
        raise ValueError(f"{where}: {axis} must be >= 0, got {size}")
    for what, v, low in (("kernel size", kernel, 1), ("stride", stride, 1),
                         ("dilation", dilation, 1), ("padding", min(pb, pe), 0)):
        if v < low:
            raise ValueError(f"{where}: {what} must be >= {low}, got {v}")
    span = size + pb + pe - dilation * (kernel - 1) - 1
    if ceil_mode:
        n = -(-span // stride) + 1
        if (n - 1) * stride >= size + pb:
            n -= 1
        if n >= 1:
            return n
        raise ShapeError(f"{where}: {axis} ceil((W + P_begin + P_end - D*(F - 1) - 1)/S) + 1 = "
                         f"ceil(({size} + {pb} + {pe} - {dilation}*({kernel} - 1) - 1)/{stride})"
                         f" + 1 = {n} is less than 1: the dilated kernel "
                         f"({dilation * (kernel - 1) + 1}) is larger than the padded input "
                         f"({size + pb + pe}) by a stride or more")
    if span < 0 or (strict and span % stride):
        text = (f"{where}: {axis} (W + P_begin + P_end - D*(F - 1) - 1)/S + 1 = "
                f"({size} + {pb} + {pe} - {dilation}*({kernel} - 1) - 1)/{stride} + 1 = "
                f"{span / stride + 1:g}")
        if span < 0:
            raise ShapeError(f"{text} is less than 1: the dilated kernel "
                             f"({dilation * (kernel - 1) + 1}) is larger than the padded "
                             f"input ({size + pb + pe})")
        raise ShapeError(f"{text} is not an integer; change the padding or stride, or "
                         f"pass strict=False to floor it")
    return span // stride + 1


def conv_output_hw(h: Int, w: Int, kernel: Tuple[int, int], stride: Tuple[int, int],
                   padding: Tuple[int, int], *, strict: bool = True,
                   where: str = "conv2d") -> Tuple[int, int]:
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


# The C core takes a call's sizes as a struct (fc_conv_geom, fc_pool_geom in
# src/fc_core.h); the binding fills it by unpacking a tuple of these fields in
# this order.  The binding types that argument as `tuple`, which Cython checks
# exactly (a subclass is refused), so callers pass tuple(geom).

class ConvGeometry(NamedTuple):
    """One convolution: input x (N, C, H, W), weights w (K, C / G, FH, FW),
    stride (SH, SW), zero padding (PH, PW) at the top and left (the bottom
    and right padding shows in the output size), output (N, K, H2, W2),
    dilation (DH, DW) and G groups."""
    N: int
    C: int
    H: int
    W: int
    K: int
    FH: int
    FW: int
    SH: int
    SW: int
    PH: int
    PW: int
    H2: int
    W2: int
    DH: int = 1
    DW: int = 1
    G: int = 1

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        """The shape of the output, (N, K, H2, W2)."""
        return (self.N, self.K, self.H2, self.W2)


class PoolGeometry(NamedTuple):
    """One pooling: input x (N, C, H, W), window (KH, KW), stride (SH, SW),
    padding (PH, PW) and output (N, C, H2, W2)."""
    N: int
    C: int
    H: int
    W: int
    KH: int
    KW: int
    SH: int
    SW: int
    PH: int
    PW: int
    H2: int
    W2: int

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        """The shape of the output, (N, C, H2, W2)."""
        return (self.N, self.C, self.H2, self.W2)


PaddingSpec = Union[IntOrPair, str, Tuple[Tuple[int, int], Tuple[int, int]]]


def conv_padding(padding: object, kernel: Tuple[int, int], stride: Tuple[int, int],
                 dilation: Tuple[int, int], where: str) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """((top, bottom), (left, right)) of a convolution's ``padding``: an int,
    an (h, w) pair, ``((top, bottom), (left, right))``, ``"valid"`` (none) or
    ``"same"`` (stride 1; the output keeps the input's size, and an odd total
    puts the extra row or column at the bottom or right, as PyTorch does)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"{where}: padding must be an int, a pair, ((top, bottom), "
                             f"(left, right)), 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{where}: padding='same' needs stride 1, got stride {stride}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[0] - total[0] // 2), (total[1] // 2, total[1] - total[1] // 2)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and \
            all(isinstance(p, (tuple, list)) for p in padding):
        h, w = (pair(p, "padding", where) for p in padding)
        return h, w
    p = pair(padding, "padding", where)
    return (p[0], p[0]), (p[1], p[1])


def conv_geometry(x_shape: Shape, w_shape: Shape, stride: IntOrPair, padding: PaddingSpec, *,
                  strict: bool, where: str, dilation: IntOrPair = 1,
                  groups: Int = 1) -> ConvGeometry:
    """The :class:`ConvGeometry` of convolving an input of shape ``x_shape``
    (N, C, H, W) with weights of shape ``w_shape`` (K, C / groups, F_h, F_w).

    ``stride`` and ``dilation`` are an int or an (h, w) pair; ``padding`` as
    :func:`conv_padding` takes it; ``strict`` is as for :func:`output_size`.
    A ValueError (a :class:`ShapeError` for the formula) starting with
    ``where`` says what does not fit.
    """
    ndim(x_shape, 4, "x", "(N, C, H, W)", where)
    ndim(w_shape, 4, "w", "(K, C, F_h, F_w)", where)
    N, C, H, W = x_shape
    K, Cw, FH, FW = w_shape
    G = integer(groups, "groups", where)
    if G < 1:
        raise ValueError(f"{where}: groups must be >= 1, got {G}")
    if G == 1 and C != Cw:
        raise ValueError(f"{where}: x has {C} channels (x.shape[1]) but w expects {Cw} "
                         f"(w.shape[1]); w must be (K, C, F_h, F_w)")
    if G > 1 and (C % G or K % G or Cw * G != C):
        raise ValueError(f"{where}: with groups={G}, x's {C} channels and w's {K} filters "
                         f"must divide into {G} groups and w must be (K, C/groups, F_h, F_w) = "
                         f"({K}, {C // G if C % G == 0 else C / G:g}, F_h, F_w); got w.shape = "
                         f"{tuple(w_shape)}")
    if FH < 1 or FW < 1:
        raise ValueError(f"{where}: kernel size must be >= 1, got w.shape = {w_shape}")
    stride = pair(stride, "stride", where)
    dil = pair(dilation, "dilation", where)
    if dil[0] < 1 or dil[1] < 1:
        raise ValueError(f"{where}: dilation must be >= 1, got {dilation!r}")
    (pt, pb), (pl, pr) = conv_padding(padding, (FH, FW), stride, dil, where)
    if dil == (1, 1) and pt == pb and pl == pr:
        H2, W2 = conv_output_hw(H, W, (FH, FW), stride, (pt, pl), strict=strict, where=where)
    else:
        H2 = output_size(H, FH, stride[0], pt, strict=strict, axis="height", where=where,
                         dilation=dil[0], padding_end=pb)
        W2 = output_size(W, FW, stride[1], pl, strict=strict, axis="width", where=where,
                         dilation=dil[1], padding_end=pr)
    return ConvGeometry(N, C, H, W, K, FH, FW, stride[0], stride[1], pt, pl, H2, W2,
                        dil[0], dil[1], G)


def pool_geometry(x_shape: Shape, kernel_size: IntOrPair, stride: Optional[IntOrPair],
                  padding: IntOrPair, *, strict: bool, where: str, dilation: IntOrPair = 1,
                  ceil_mode: bool = False) -> PoolGeometry:
    """The :class:`PoolGeometry` of pooling an input of shape ``x_shape``, four
    ints (N, C, H, W) that the caller has checked.

    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are an int or
    an (h, w) pair; ``stride=None`` means the kernel size.  ``strict`` and
    ``ceil_mode`` are as for :func:`output_size`.  The dilation is not part
    of the geometry (the caller passes it on); it only enters the output
    size.  A ValueError (a :class:`ShapeError` for the formula) starting
    with ``where`` says what does not fit.
    """
    kernel = pair(kernel_size, "kernel_size", where)
    stride = kernel if stride is None else pair(stride, "stride", where)
    padding = pair(padding, "padding", where)
    dil = pair(dilation, "dilation", where)
    pool_window(kernel, padding, where)
    if dil[0] < 1 or dil[1] < 1:
        raise ValueError(f"{where}: dilation must be >= 1, got {dil}")
    N, C, H, W = x_shape
    if H == 0 or W == 0:
        raise ValueError(f"{where}: x has height {H} and width {W}; pooling needs H >= 1 and "
                         f"W >= 1 (a window must hold at least one input value)")
    if dil == (1, 1) and not ceil_mode:
        H2, W2 = conv_output_hw(H, W, kernel, stride, padding, strict=strict, where=where)
    else:
        H2 = output_size(H, kernel[0], stride[0], padding[0], strict=strict, axis="height",
                         where=where, dilation=dil[0], ceil_mode=ceil_mode)
        W2 = output_size(W, kernel[1], stride[1], padding[1], strict=strict, axis="width",
                         where=where, dilation=dil[1], ceil_mode=ceil_mode)
    return PoolGeometry(N, C, H, W, kernel[0], kernel[1], stride[0], stride[1],
                        padding[0], padding[1], H2, W2)


def adaptive_output_hw(x_shape: Shape, output_size: object, where: str) -> Tuple[int, int]:
    """(H2, W2) of adaptive pooling: ``output_size`` is an int or an (h, w)
    pair whose entries may be None (keep the input's size), each >= 1."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{where}: output_size must be an int or a pair (h, w), "
                             f"got {output_size!r}")
        parts = list(output_size)
    else:
        parts = [output_size, output_size]
    hw = []
    for v, n, axis in zip(parts, x_shape[2:], ("height", "width")):
        if v is None:
            hw.append(int(n))
            continue
        v = integer(v, "output_size", where)
        if v < 1:
            raise ValueError(f"{where}: output_size must be >= 1 (or None), got {output_size!r}")
        hw.append(v)
    if x_shape[2] == 0 or x_shape[3] == 0:
        raise ValueError(f"{where}: x has height {x_shape[2]} and width {x_shape[3]}; adaptive "
                         f"pooling needs H >= 1 and W >= 1")
    return hw[0], hw[1]
