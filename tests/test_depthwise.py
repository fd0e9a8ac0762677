"""The depthwise algorithm (one input channel per group, M filters each)
against the NumPy oracle: forward (bias, ReLU), data gradient, weight and
bias gradients, both dtypes, every instruction set, 1 and 2 threads, over
strides 1 to 3, symmetric and asymmetric padding, dilation, multipliers 1 to
3, kernels 1x1 to 7x7 and rectangular, widths that leave a vector tail,
single and several images.  The oracle convolves each group on its own,
with the padding applied explicitly and the kernel spread out for the
dilation."""

import numpy as np
import pytest

import fastconv
from fastconv import _core, _plan
import reference as ref
from conftest import assert_close, conv_pads

CASES = [
    # x shape, filters per channel, kernel, stride, padding, dilation
    ((2, 5, 13, 17), 1, 3, 1, 1, 1),
    ((1, 4, 16, 33), 1, 3, 2, 1, 1),                       # stride 2, odd width
    ((2, 3, 15, 14), 2, 5, 1, 2, 1),
    ((1, 6, 19, 21), 3, 5, 2, ((2, 1), (0, 3)), 1),        # asymmetric padding
    ((2, 4, 14, 23), 1, 7, 3, 3, 1),                       # stride 3
    ((1, 3, 9, 37), 2, 1, 1, 0, 1),                        # 1x1
    ((1, 3, 9, 11), 1, 1, 2, 1, 1),                        # 1x1, strided and padded
    ((2, 4, 17, 19), 1, 3, 1, 2, 2),                       # dilation
    ((1, 5, 18, 20), 2, 3, (2, 1), ((1, 0), (2, 1)), (2, 3)),
    ((3, 2, 8, 70), 1, (3, 5), 2, (1, 2), 1),              # several strips per row
    ((1, 1, 12, 12), 3, 3, 1, 1, 1),                       # C = 1: groups = 1
    ((2, 3, 6, 5), 1, 3, 1, "same", 1),                    # rows shorter than a vector
    ((1, 2, 11, 9), 1, 4, 1, "same", 1),                   # even kernel: more pad at the end
    ((1, 2, 21, 100), 1, 3, 2, 1, 1),                      # long rows at stride 2
    ((2, 3, 7, 9), 2, 3, 1, 3, 1),                         # padding past the kernel's reach
    ((2, 3, 7, 7), 1, 3, 2, 1, 1),                         # 7x7 at stride 2
    ((1, 2, 10, 12), 1, 1, 3, 0, 1),                       # phases no tap reaches
]


def _pairs(v):
    return v if isinstance(v, tuple) else (v, v)


def _oracle(x, w, b, dy, stride, padding, dilation):
    """(y, dx, dw) in float64, each group convolved on its own."""
    s, d = _pairs(stride), _pairs(dilation)
    K, _, FH, FW = w.shape
    C = x.shape[1]
    (pt, pb), (pl, pr) = conv_pads(padding, (FH, FW), d)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ws = np.zeros((K, 1, (FH - 1) * d[0] + 1, (FW - 1) * d[1] + 1))
    ws[:, :, ::d[0], ::d[1]] = w
    M = K // C
    ys, dxs, dws = [], [], []
    for c in range(C):
        xc, wc = xp[:, c:c + 1], ws[c * M:(c + 1) * M]
        bc = None if b is None else b[c * M:(c + 1) * M].astype(np.float64)
        ys.append(ref.conv2d(xc, wc, bc, s, (0, 0)))
        if dy is not None:
            dxc, dwc, _ = ref.conv2d_backward(dy[:, c * M:(c + 1) * M].astype(np.float64), xc,
                                              wc, s, (0, 0))
            dxs.append(dxc)
            dws.append(dwc)
    y = np.concatenate(ys, axis=1)
    if dy is None:
        return y, None, None
    H, W = x.shape[2:]
    dx = np.concatenate(dxs, axis=1)[:, :, pt:pt + H, pl:pl + W]
    dw = np.concatenate(dws, axis=0)[:, :, ::d[0], ::d[1]]
    return y, dx, dw


def _inputs(case, dtype):
    xs, M, kernel, stride, padding, dilation = case
    FH, FW = _pairs(kernel)
    C = xs[1]
    rng = np.random.default_rng(sum(xs) + 7 * M + FH)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((C * M, 1, FH, FW)).astype(dtype)
    b = rng.standard_normal(C * M).astype(dtype)
    return x, w, b


def _conv(x, w, b, case, **kw):
    _, _, _, stride, padding, dilation = case
    return fastconv.conv2d(x, w, b, stride, padding, dilation=dilation, groups=x.shape[1],
                           strict=False, **kw)


def _backward(dy, x, w, case, **kw):
    _, _, _, stride, padding, dilation = case
    return fastconv.conv2d_backward(dy, x, w, stride, padding, dilation=dilation,
                                    groups=x.shape[1], **kw)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_depthwise_matches_the_oracle(case, dtype, isa, threads):
    x, w, b = _inputs(case, dtype)
    _, _, _, stride, padding, dilation = case
    FH, FW = w.shape[2:]
    y = _conv(x, w, b, case, algorithm="depthwise")
    assert _plan.last_run("conv2d")["algorithm"] == "depthwise"
    rng = np.random.default_rng(y.size)
    dy = rng.standard_normal(y.shape).astype(dtype)
    want, rdx, rdw = _oracle(x, w, b, dy, stride, padding, dilation)
    scale, sdx, sdw = _oracle(np.abs(x), np.abs(w), np.abs(b), np.abs(dy), stride, padding,
                              dilation)
    what = f"{case} [{isa}, {threads} threads]"
    assert_close(y, want, scale, dtype, FH * FW, f"y {what}")
    yr = _conv(x, w, b, case, algorithm="depthwise", activation="relu")
    assert_close(yr, np.maximum(want, 0), scale, dtype, FH * FW, f"relu(y) {what}")

    dx, dw, db = _backward(dy, x, w, case, algorithm="depthwise")
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "depthwise"
    assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "depthwise"
    M = w.shape[0] // x.shape[1]
    assert_close(dx, rdx, sdx, dtype, M * FH * FW, f"dx {what}")
    assert_close(dw, rdw, sdw, dtype, y.shape[0] * y.shape[2] * y.shape[3], f"dw {what}")
    assert_close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)),
                 np.abs(dy.astype(np.float64)).sum(axis=(0, 2, 3)), dtype,
                 y.shape[0] * y.shape[2] * y.shape[3], f"db {what}")


@pytest.mark.parametrize("case", [c for c in CASES if c[0][1] > 1], ids=str)
def test_the_planner_picks_depthwise(case):
    x, w, b = _inputs(case, np.float32)
    y = _conv(x, w, b, case)
    assert _plan.last_run("conv2d")["algorithm"] == "depthwise"
    dy = np.ones_like(y)
    _backward(dy, x, w, case)
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "depthwise"
    assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "depthwise"
    p = fastconv.plan("conv2d", x.shape, w.shape, dtype="float32", stride=case[3],
                      padding=case[4], dilation=case[5], groups=x.shape[1], strict=False)
    assert p.algorithm == "depthwise" and "depthwise" in p.kernel


def test_many_filters_per_channel_go_to_the_groups_gemm_unless_forced(dtype):
    """With 8 filters per channel or more each group is a real GEMM;
    depthwise still serves it when forced, and gets the same result."""
    case = ((2, 3, 12, 13), 8, 3, 1, 1, 1)
    x, w, b = _inputs(case, dtype)
    y = _conv(x, w, b, case)
    assert _plan.last_run("conv2d")["algorithm"] != "depthwise"
    yd = _conv(x, w, b, case, algorithm="depthwise")
    want, _, _ = _oracle(x, w, b, None, 1, 1, 1)
    scale, _, _ = _oracle(np.abs(x), np.abs(w), np.abs(b), None, 1, 1, 1)
    assert_close(y, want, scale, dtype, 9, "per group")
    assert_close(yd, want, scale, dtype, 9, "depthwise")


def test_a_single_channel_without_groups_keeps_the_other_algorithms():
    # groups = 1: nothing runs group by group, and first layers have their own paths
    x = np.ones((2, 1, 33, 40))
    fastconv.conv2d(x, np.ones((2, 1, 3, 3)), padding=1)
    assert _plan.last_run("conv2d")["algorithm"] != "depthwise"


def test_depthwise_refuses_what_it_cannot_serve():
    x = np.ones((1, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="one input channel per group"):
        fastconv.conv2d(x, np.ones((4, 2, 3, 3), np.float32), groups=2, algorithm="depthwise")
    with pytest.raises(ValueError, match="one input channel per group"):
        fastconv.conv2d_backward(np.ones((1, 4, 6, 6), np.float32), x,
                                 np.ones((4, 4, 3, 3), np.float32), algorithm="depthwise")


def test_non_finite_weights_leave_the_data_gradient_to_others(dtype):
    """Its data gradient multiplies the zeros around dy by the weights, so a
    weight holding inf goes to an algorithm that does not (forcing depthwise
    is refused); the forward multiplies the zero padding as the oracle does."""
    case = ((1, 3, 9, 10), 1, 3, 1, 1, 1)
    x, w, b = _inputs(case, dtype)
    w[1, 0, 0, 2] = np.inf
    y = _conv(x, w, b, case)
    assert _plan.last_run("conv2d")["algorithm"] == "depthwise"
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    want, rdx, rdw = _oracle(x, w, b, dy, 1, 1, 1)
    with np.errstate(invalid="ignore"):
        scale, sdx, sdw = _oracle(np.abs(x), np.abs(w), np.abs(b), np.abs(dy), 1, 1, 1)
    assert_close(y, want, scale, dtype, 9, "y")
    dx, dw, db = _backward(dy, x, w, case)
    assert _plan.last_run("conv2d_backward_data")["algorithm"] != "depthwise"
    assert_close(dx, rdx, sdx, dtype, 9, "dx")
    with pytest.raises(ValueError, match="inf or NaN"):
        _backward(dy, x, w, case, algorithm="depthwise")


def test_views_are_read_as_they_lie(dtype):
    """Non-contiguous and negatively strided inputs; the inputs unchanged."""
    case = ((2, 6, 15, 19), 2, 3, 2, 1, 1)
    x, w, b = _inputs(case, dtype)
    xv = np.ascontiguousarray(x[:, :, :, ::-1].transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    xv = xv[:, :, :, ::-1]
    assert not xv.flags.c_contiguous and np.array_equal(xv, x)
    wv = np.asfortranarray(w)
    keep = xv.copy()
    y = _conv(xv, wv, b, case)
    np.testing.assert_array_equal(y, _conv(x, w, b, case))
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    big = np.zeros((dy.shape[0], dy.shape[1], dy.shape[2], 2 * dy.shape[3]), dtype)
    big[..., ::2] = dy
    got = _backward(big[..., ::2], xv, wv, case)
    for a, e in zip(got, _backward(dy, x, w, case)):
        np.testing.assert_array_equal(a, e)
    np.testing.assert_array_equal(xv, keep)


@pytest.mark.parametrize("stride", [1, 2])
def test_bits_do_not_depend_on_the_threads(stride, dtype, isa):
    """Each output is one sum in a fixed order: the same bits at 1, 2 and 3
    threads, and from run to run."""
    case = ((2, 24, 40, 41), 1, 3, stride, 1, 1)
    x, w, b = _inputs(case, dtype)
    dy = None
    outs = []
    before = fastconv.get_num_threads()
    try:
        for nt in (1, 2, 3, 2):
            fastconv.set_num_threads(nt)
            y = _conv(x, w, b, case)
            if dy is None:
                dy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
            outs.append((y,) + _backward(dy, x, w, case))
            assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "depthwise"
    finally:
        fastconv.set_num_threads(before)
    for other in outs[1:]:
        for a, e in zip(other, outs[0]):
            assert a.tobytes() == e.tobytes()


def test_plan_shows_the_threads_that_run():
    p = fastconv.plan("conv2d_backward_weight", (8, 3, 64, 64), (3, 1, 3, 3), dtype="float32",
                      padding=1, groups=3, threads=8)
    assert p.algorithm == "depthwise" and 1 <= p.threads <= 3


def test_transposed_depthwise_is_the_data_gradient(dtype):
    """conv_transpose2d with one output channel per group runs depthwise's
    data gradient."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 7, 9)).astype(dtype)
    w = rng.standard_normal((4, 1, 3, 3)).astype(dtype)
    y = fastconv.conv_transpose2d(x, w, stride=2, padding=1, groups=4)
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "depthwise"
    H = (7 - 1) * 2 - 2 + 3
    W = (9 - 1) * 2 - 2 + 3
    want, dx, _ = _oracle(np.zeros((2, 4, H, W)), w, None, x, 2, 1, 1)
    _, sdx, _ = _oracle(np.zeros((2, 4, H, W)), np.abs(w), None, np.abs(x), 2, 1, 1)
    assert_close(y, dx, sdx, dtype, 9, "conv_transpose2d")


def test_an_inf_in_x_reaches_only_the_weights_whose_windows_meet_it(dtype, isa):
    """At stride 2 without padding, x's last column (10 wide, 3x3) is in no
    window: an inf there leaves dw finite, while an inf that windows meet
    turns exactly the weights the oracle turns."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 9, 10)).astype(dtype)
    w = rng.standard_normal((2, 1, 3, 3)).astype(dtype)
    x[1, 0, 4, 9] = np.inf
    x[0, 1, 3, 4] = np.inf
    case = ((2, 2, 9, 10), 1, 3, 2, 0, 1)
    dy = rng.standard_normal((2, 2, 4, 4)).astype(dtype)
    _, dw, db = _backward(dy, x, w, case, algorithm="depthwise")
    with np.errstate(invalid="ignore", over="ignore"):
        _, _, rdw = _oracle(x, w, None, dy, 2, 0, 1)
    assert np.isfinite(dw[0]).all(), f"{isa}: {dw[0]}"
    np.testing.assert_array_equal(np.isfinite(dw), np.isfinite(rdw))
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(rdw))
    ok = np.isfinite(rdw)
    np.testing.assert_allclose(dw[ok], rdw[ok], rtol=1e-4 if dtype == np.float32 else 1e-12)


def test_an_inf_in_a_corner_of_x_stays_out_of_the_taps_that_never_meet_it(dtype, isa):
    """With 'same' padding at stride 1 the corner x[0, 0] meets only the
    taps (r, s) with r, s <= 1 of a 3x3 kernel: an inf there leaves the
    others' gradients finite and equal to the oracle's."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 10, 21)).astype(dtype)
    w = rng.standard_normal((3, 1, 3, 3)).astype(dtype)
    x[1, 2, 0, 0] = np.inf
    case = ((2, 3, 10, 21), 1, 3, 1, 1, 1)
    dy = rng.standard_normal((2, 3, 10, 21)).astype(dtype)
    _, dw, db = _backward(dy, x, w, case, algorithm="depthwise")
    with np.errstate(invalid="ignore", over="ignore"):
        _, _, rdw = _oracle(x, w, None, dy, 1, 1, 1)
    assert np.isfinite(dw[2, 0, 2, :]).all() and np.isfinite(dw[2, 0, :, 2]).all(), isa
    np.testing.assert_array_equal(np.isfinite(dw), np.isfinite(rdw))
    ok = np.isfinite(rdw)
    np.testing.assert_allclose(dw[ok], rdw[ok], rtol=1e-4 if dtype == np.float32 else 1e-12)


# Small planes, one filter a channel: the forward runs with the channels in
# the vector lanes (channels that do not fill the last vector, planes whose
# positions do not fill whole vectors, strides, dilation, uneven padding)
LANES_CASES = [
    # x shape, kernel, stride, padding, dilation
    ((2, 37, 14, 14), 3, 2, 1, 1),       # MobileNetV2's stride-2 layers @14
    ((3, 20, 7, 7), 3, 1, 1, 1),         # @7
    ((1, 5, 14, 14), 5, 2, 2, 1),        # EfficientNet's 5x5 stride 2
    ((2, 17, 9, 11), 3, 3, ((2, 0), (1, 3)), 1),
    ((1, 24, 8, 10), 3, 1, 2, 2),        # dilation
    ((2, 3, 5, 3), (3, 2), (1, 2), ((1, 1), (0, 1)), (1, 2)),
    ((1, 16, 4, 4), 1, 1, 0, 1),         # 1x1: one vector of positions exactly
]


def _with_small_caches(fn):
    c = _core.cache_sizes()
    try:
        _core.set_cache_sizes(1024, 2048, c["l3"])
        return fn()
    finally:
        if c["source"] == "FASTCONV_CACHE_SIZES":
            _core.set_cache_sizes(c["l1d"], c["l2"], c["l3"])
        else:
            _core.set_cache_sizes(0, 0, 0)


@pytest.mark.parametrize("case", LANES_CASES, ids=str)
def test_small_planes_run_with_the_channels_in_the_lanes(case, dtype, isa, threads):
    """The forward of small planes against the oracle, with and without the
    fused ReLU and bias, and bit for bit against the grid, which tiny caches
    force: each output is the same sum in the same order on both.  Strided
    small planes take the lanes on every instruction set; the others where
    the planner's rule says so."""
    xs, kernel, stride, padding, dilation = case
    full = (xs, 1, kernel, stride, padding, dilation)
    x, w, b = _inputs(full, dtype)
    FH, FW = w.shape[2:]
    pl = fastconv.plan("conv2d", x.shape, w.shape, dtype=dtype, stride=stride,
                       padding=padding, dilation=dilation, groups=xs[1], strict=False)
    assert pl.algorithm == "depthwise", pl
    lanes = "channels in the vector lanes" in pl.reason
    assert lanes or _pairs(stride) == (1, 1), pl
    what = f"{case} [{isa}, {threads} threads]"
    small = _with_small_caches(lambda: fastconv.plan(
        "conv2d", x.shape, w.shape, dtype=dtype, stride=stride, padding=padding,
        dilation=dilation, groups=xs[1], strict=False, algorithm="depthwise"))
    # the grid to compare with, unless the planes fit even those caches
    differ = lanes and "channels in the vector lanes" not in small.reason
    assert differ or xs[2] * xs[3] < 100 or not lanes, small
    want, _, _ = _oracle(x, w, b, None, stride, padding, dilation)
    scale, _, _ = _oracle(np.abs(x), np.abs(w), np.abs(b), None, stride, padding, dilation)
    for bias in (b, None):
        for act in (None, "relu"):
            y = _conv(x, w, bias, full, activation=act)
            assert _plan.last_run("conv2d")["algorithm"] == "depthwise"
            ref_y = want if bias is not None else want - b.astype(np.float64)[:, None, None]
            if act:
                ref_y = np.maximum(ref_y, 0)
            assert_close(y, ref_y, scale, dtype, FH * FW, f"y {what} bias={bias is not None}")
            if differ:
                grid = _with_small_caches(lambda: _conv(x, w, bias, full, activation=act,
                                                        algorithm="depthwise"))
                assert np.array_equal(y, grid), what
    # the weight gradient takes the lanes where the forward does: one chain
    # a weight per lane, images then outputs in order, whatever the threads
    dy = np.random.default_rng(7).standard_normal(want.shape).astype(dtype)
    _, rdx, rdw = _oracle(x, w, b, dy, stride, padding, dilation)
    _, sdx, sdw = _oracle(np.abs(x), np.abs(w), np.abs(b), np.abs(dy), stride, padding,
                          dilation)
    dx, dw, db = _backward(dy, x, w, full)
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "depthwise"
    assert_close(dx, rdx, sdx, dtype, FH * FW, f"dx {what}")
    if differ:   # the data gradient's sums are the grid's too
        grid_dx = _with_small_caches(lambda: _backward(dy, x, w, full,
                                                       algorithm="depthwise")[0])
        assert np.array_equal(dx, grid_dx), what
    assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "depthwise"
    npix = dy.shape[0] * dy.shape[2] * dy.shape[3]
    assert_close(dw, rdw, sdw, dtype, npix, f"dw {what}")
    assert_close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)),
                 np.abs(dy.astype(np.float64)).sum(axis=(0, 2, 3)), dtype, npix, f"db {what}")
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        _, dw1, db1 = _backward(dy, x, w, full, need_dx=False)
    finally:
        fastconv.set_num_threads(before)
    assert np.array_equal(dw1.view(np.uint8), dw.view(np.uint8)), what
    assert np.array_equal(db1.view(np.uint8), db.view(np.uint8)), what
