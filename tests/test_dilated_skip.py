"""kvec's forward leaves out the taps that read the zero padding (tap rows per
output row, tap columns per tile of a row) when the weights are finite.

Checked against the NumPy oracle for dilations 1 to 6 with 'same' padding,
asymmetric padding, padding past the kernel's span and maps smaller than the
dilation, at strides 1 and 2, forced and planned, forward and data gradient
(a stride-1 data gradient is kvec's forward of dy with the rotated weights);
weights holding inf or NaN must give NaN exactly where the oracle does
(inf * 0 in the padding), so those calls multiply the padding; and results
do not depend on the threads or on how the batch is split.
"""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import assert_close, randn


def _spread(w, d):
    """The dilated kernel: w's taps d apart, zeros between them."""
    K, C, FH, FW = w.shape
    ws = np.zeros((K, C, (FH - 1) * d + 1, (FW - 1) * d + 1))
    ws[:, :, ::d, ::d] = w
    return ws


def _oracle_fwd(x, w, b, stride, pads, d):
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    with np.errstate(invalid="ignore", over="ignore"):
        return ref.conv2d(xp, _spread(w.astype(np.float64), d),
                          None if b is None else b.astype(np.float64), stride, (0, 0))


def _pads(p):
    return p if isinstance(p[0], tuple) else ((p[0], p[0]), (p[1], p[1]))


# x shape, w shape, stride, padding ((top, bottom), (left, right)), dilation
CASES = [((2, 5, 13, 11), (7, 5, 3, 3), 1, ((d, d), (d, d)), d) for d in range(1, 7)] + [
    ((1, 6, 17, 19), (40, 6, 3, 3), 1, ((4, 4), (4, 4)), 4),        # 3 vectors of filters
    ((2, 3, 12, 14), (9, 3, 3, 3), 1, ((0, 6), (4, 0)), 3),         # asymmetric
    ((1, 4, 9, 10), (5, 4, 3, 3), 1, ((9, 5), (2, 8)), 2),          # past the span
    ((2, 3, 4, 3), (6, 3, 3, 3), 1, ((5, 5), (5, 5)), 5),           # map under the dilation
    ((1, 3, 3, 5), (4, 3, 3, 2), 1, ((6, 6), (6, 3)), 6),
    ((2, 4, 15, 13), (8, 4, 3, 3), 2, ((3, 3), (3, 3)), 3),         # stride 2
    ((1, 5, 16, 17), (70, 5, 3, 3), 2, ((2, 5), (6, 1)), 2),
    ((1, 3, 21, 20), (6, 3, 5, 4), (2, 1), ((4, 6), (3, 3)), 2),    # 5x4, rectangular stride
]


def _case_id(case):
    xs, ws, s, p, d = case
    return f"x{xs}-w{ws}-s{s}-p{p}-d{d}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("algorithm", ["kvec", None])
def test_forward_against_oracle(case, algorithm, dtype, isa):
    xs, ws, stride, pads, d = case
    x = randn(xs, dtype, "dil x", xs)
    w = randn(ws, dtype, "dil w", ws)
    b = randn(ws[:1], dtype, "dil b", ws)
    y = fastconv.conv2d(x, w, b, stride, pads, dilation=d, strict=False, algorithm=algorithm)
    want = _oracle_fwd(x, w, b, stride, pads, d)
    scale = _oracle_fwd(np.abs(x), np.abs(w), np.abs(b), stride, pads, d)
    assert y.shape == want.shape
    assert_close(y, want, scale, dtype, ws[1] * ws[2] * ws[3], f"y {case} {algorithm} [{isa}]")


STRIDE1 = [c for c in CASES if c[2] == 1]


@pytest.mark.parametrize("case", STRIDE1, ids=_case_id)
@pytest.mark.parametrize("algorithm", ["kvec", None])
def test_data_gradient_against_oracle(case, algorithm, dtype, isa):
    xs, ws, stride, pads, d = case
    (pt, pb), (pl, pr) = pads
    span_h, span_w = (ws[2] - 1) * d + 1, (ws[3] - 1) * d + 1
    if max(pt, pb) >= span_h or max(pl, pr) >= span_w:
        # padding past the span: no forward convolution of dy (col2im)
        algorithm = None
    x = randn(xs, dtype, "dil x", xs)
    w = randn(ws, dtype, "dil w", ws)
    y_shape = _oracle_fwd(x, w, None, stride, pads, d).shape
    dy = randn(y_shape, dtype, "dil dy", xs)
    dx, _, _ = fastconv.conv2d_backward(dy, x, w, stride, pads, dilation=d,
                                        algorithm=(algorithm, None))
    want = ref.conv2d_backward_data(dy, w, xs, stride, pads, d)
    scale = ref.conv2d_backward_data(np.abs(dy), np.abs(w), xs, stride, pads, d)
    assert_close(dx, want, scale, dtype, ws[0] * ws[2] * ws[3], f"dx {case} {algorithm} [{isa}]")


# A DeepLab ASPP branch in small: many channels, 'same' dilated padding.
ASPP = [((1, 64, 12, 12), (64, 64, 3, 3), 1, ((d, d), (d, d)), d) for d in (3, 4)]


@pytest.mark.parametrize("case", ASPP, ids=_case_id)
def test_aspp_is_planned_on_kvec_and_matches(case, dtype, isa):
    xs, ws, stride, pads, d = case
    p = fastconv.plan("conv2d", xs, ws, dtype=dtype, padding=pads, dilation=d, threads=1)
    pd = fastconv.plan("conv2d_backward_data", xs, ws, dtype=dtype, padding=pads, dilation=d,
                       threads=1)
    if isa == "avx512":
        # the estimate: about the GEMM's time per multiply-add, a quarter of
        # them in the padding
        assert p.algorithm == "kvec", p
        assert pd.algorithm == "kvec", pd
    undilated = fastconv.plan("conv2d", xs, ws, dtype=dtype, padding=1, threads=1)
    assert undilated.algorithm != "kvec", undilated
    x = randn(xs, dtype, "aspp x", xs)
    w = randn(ws, dtype, "aspp w", ws)
    y = fastconv.conv2d(x, w, None, stride, pads, dilation=d)
    want = _oracle_fwd(x, w, None, stride, pads, d)
    scale = _oracle_fwd(np.abs(x), np.abs(w), None, stride, pads, d)
    assert_close(y, want, scale, dtype, ws[1] * ws[2] * ws[3], f"aspp y {case} [{isa}]")


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("algorithm", ["kvec", None])
@pytest.mark.parametrize("case", [CASES[3], CASES[8], ASPP[0]], ids=_case_id)
def test_nonfinite_weights_multiply_the_padding(case, algorithm, bad, dtype, isa):
    xs, ws, stride, pads, d = case
    x = randn(xs, dtype, "nf x", xs)
    w = randn(ws, dtype, "nf w", ws)
    # tap (0, 0) of filter 1 reads the top-left padding from the border
    # pixels: the oracle has NaN there (inf * 0), a finite value inside
    w[1, 0, 0, 0] = bad
    y = fastconv.conv2d(x, w, None, stride, pads, dilation=d, strict=False, algorithm=algorithm)
    want = _oracle_fwd(x, w, None, stride, pads, d)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    assert np.isnan(want[:, 1]).any()
    ok = np.isfinite(want)
    np.testing.assert_allclose(y[ok], want[ok], rtol=1e-3 if dtype == np.float32 else 1e-9,
                               atol=1e-3 if dtype == np.float32 else 1e-9)
    if stride == 1:
        dy = randn(y.shape, dtype, "nf dy", xs)
        dx, _, _ = fastconv.conv2d_backward(dy, x, w, stride, pads, dilation=d)
        with np.errstate(invalid="ignore", over="ignore"):
            want_dx = ref.conv2d_backward_data(dy, w, xs, stride, pads, d)
        np.testing.assert_array_equal(np.isnan(dx), np.isnan(want_dx))


def test_nonfinite_weights_are_checked_on_every_call():
    """A plan cached for finite weights must not skip for the next call's inf."""
    xs, ws, _, pads, d = ASPP[0]
    x = randn(xs, np.float32, "cache x")
    w = randn(ws, np.float32, "cache w")
    fastconv.conv2d(x, w, None, 1, pads, dilation=d, algorithm="kvec")
    w[0, 0, 0, 0] = np.inf
    y = fastconv.conv2d(x, w, None, 1, pads, dilation=d, algorithm="kvec")
    assert np.isnan(y[0, 0, 0, 0])


@pytest.mark.parametrize("case", [ASPP[1], CASES[5], CASES[11]], ids=_case_id)
def test_bits_do_not_depend_on_threads_or_batch_split(case, dtype):
    xs, ws, stride, pads, d = case
    xs = (3,) + xs[1:]
    x = randn(xs, dtype, "det x", xs)
    w = randn(ws, dtype, "det w", ws)
    b = randn(ws[:1], dtype, "det b", ws)
    old = fastconv.get_num_threads()
    try:
        outs = []
        for nt in (1, 2, 3):
            fastconv.set_num_threads(nt)
            outs.append(fastconv.conv2d(x, w, b, stride, pads, dilation=d, strict=False,
                                        algorithm="kvec"))
        fastconv.set_num_threads(2)
        outs.append(np.concatenate([fastconv.conv2d(x[i:i + 1], w, b, stride, pads,
                                                    dilation=d, strict=False,
                                                    algorithm="kvec")
                                    for i in range(xs[0])]))
    finally:
        fastconv.set_num_threads(old)
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes()


def test_skipping_changes_no_sum():
    """Skipping only leaves out products with zero: with finite weights the
    result equals the one computed with an inf weight in a filter that is
    then dropped, which multiplies every padding zero (same order of sums),
    up to the sign of exact zeros."""
    xs, ws, _, pads, d = ASPP[1]
    x = randn(xs, np.float64, "same x")
    w = randn(ws, np.float64, "same w")
    w2 = np.concatenate([w, w[:1]])
    w2[-1, 0, 0, 0] = np.inf
    y = fastconv.conv2d(x, w, None, 1, pads, dilation=d, algorithm="kvec")
    y2 = fastconv.conv2d(x, w2, None, 1, pads, dilation=d, algorithm="kvec")
    np.testing.assert_array_equal(y, y2[:, :-1])
