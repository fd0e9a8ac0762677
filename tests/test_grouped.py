"""The grouped algorithm (every group of a grouped convolution in one
parallel region) against the NumPy oracle: forward (bias, ReLU), data
gradient (stride 1, and its own at column stride 2), weight and bias
gradients, both dtypes, every instruction set, 1
and 3 threads, over 2 to 32 groups of 1 to 16 channels, channel multipliers,
symmetric and asymmetric padding, dilation, odd sizes, single and several
images and non-contiguous inputs; the planner's choice, and the errors of
forcing it where it cannot serve.  The oracle convolves each group on its
own, with the padding applied explicitly and the kernel spread out for the
dilation."""

import numpy as np
import pytest

import fastconv
from fastconv import _plan
import reference as ref
from conftest import assert_close, conv_pads

CASES = [
    # x shape, groups, filters per group, kernel, padding, dilation
    ((2, 8, 13, 17), 2, 4, 3, 1, 1),
    ((1, 128, 12, 14), 32, 4, 3, 1, 1),                     # ResNeXt's 32x4d
    ((3, 64, 9, 11), 8, 8, 3, 1, 1),                       # batch > 1, 8 per group
    ((1, 48, 7, 9), 3, 16, 3, 1, 1),                       # 16 per group
    ((2, 12, 11, 10), 4, 6, 3, 1, 1),                      # channel multiplier 2
    ((1, 10, 9, 13), 5, 1, 3, 1, 1),                       # K/G = 1 < C/G = 2
    ((2, 6, 15, 9), 3, 5, 5, ((2, 1), (0, 3)), 1),         # asymmetric padding
    ((1, 16, 17, 19), 4, 4, 3, 2, 2),                      # dilation
    ((1, 20, 10, 23), 4, 8, (3, 5), (1, 2), (2, 1)),       # rectangular, dilated
    ((2, 24, 8, 8), 6, 4, 1, 0, 1),                        # 1x1
    ((1, 32, 5, 3), 16, 2, 3, "same", 1),                  # rows shorter than a vector
    ((1, 12, 9, 11), 3, 4, 4, "same", 1),                  # even kernel: more pad at the end
    ((2, 96, 6, 7), 32, 3, 3, 0, 1),                       # 'valid'
]


def _pairs(v):
    return v if isinstance(v, tuple) else (v, v)


def _oracle(x, w, b, dy, G, padding, dilation, stride=1):
    """(y, dx, dw) in float64, each group convolved on its own."""
    d = _pairs(dilation)
    K, Cg, FH, FW = w.shape
    Kg = K // G
    (pt, pb), (pl, pr) = conv_pads(padding, (FH, FW), d)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ws = np.zeros((K, Cg, (FH - 1) * d[0] + 1, (FW - 1) * d[1] + 1))
    ws[:, :, ::d[0], ::d[1]] = w
    ys, dxs, dws = [], [], []
    for i in range(G):
        xc, wc = xp[:, i * Cg:(i + 1) * Cg], ws[i * Kg:(i + 1) * Kg]
        bc = None if b is None else b[i * Kg:(i + 1) * Kg].astype(np.float64)
        ys.append(ref.conv2d(xc, wc, bc, stride, (0, 0)))
        if dy is not None:
            dxc, dwc, _ = ref.conv2d_backward(dy[:, i * Kg:(i + 1) * Kg].astype(np.float64),
                                              xc, wc, stride, (0, 0))
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
    xs, G, M, kernel, _, _ = case
    FH, FW = _pairs(kernel)
    C = xs[1]
    rng = np.random.default_rng(sum(xs) + 7 * M + FH + G)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((G * M, C // G, FH, FW)).astype(dtype)
    b = rng.standard_normal(G * M).astype(dtype)
    return x, w, b


def _conv(x, w, b, case, **kw):
    _, G, _, _, padding, dilation = case
    return fastconv.conv2d(x, w, b, 1, padding, dilation=dilation, groups=G, strict=False, **kw)


def _backward(dy, x, w, case, **kw):
    _, G, _, _, padding, dilation = case
    return fastconv.conv2d_backward(dy, x, w, 1, padding, dilation=dilation, groups=G, **kw)


def _check(x, w, b, case, dtype, what):
    _, G, _, _, padding, dilation = case
    FH, FW = w.shape[2:]
    Cg = w.shape[1]
    y = _conv(x, w, b, case, algorithm="grouped")
    assert _plan.last_run("conv2d")["algorithm"] == "grouped"
    rng = np.random.default_rng(y.size)
    dy = rng.standard_normal(y.shape).astype(dtype)
    want, rdx, rdw = _oracle(x, w, b, dy, G, padding, dilation)
    scale, sdx, sdw = _oracle(np.abs(x), np.abs(w), np.abs(b), np.abs(dy), G, padding,
                              dilation)
    assert_close(y, want, scale, dtype, Cg * FH * FW, f"y {what}")
    yr = _conv(x, w, b, case, algorithm="grouped", activation="relu")
    assert_close(yr, np.maximum(want, 0), scale, dtype, Cg * FH * FW, f"relu(y) {what}")

    dx, dw, db = _backward(dy, x, w, case, algorithm="grouped")
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "grouped"
    assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "grouped"
    Kg = w.shape[0] // G
    assert_close(dx, rdx, sdx, dtype, Kg * FH * FW, f"dx {what}")
    npix = y.shape[0] * y.shape[2] * y.shape[3]
    assert_close(dw, rdw, sdw, dtype, npix, f"dw {what}")
    assert_close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)),
                 np.abs(dy.astype(np.float64)).sum(axis=(0, 2, 3)), dtype, npix, f"db {what}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_grouped_matches_the_oracle(case, dtype, isa, threads):
    x, w, b = _inputs(case, dtype)
    _check(x, w, b, case, dtype, f"{case} [{isa}, {threads} threads]")


STRIDED = [
    # x shape, groups, filters per group, kernel, padding, dilation, stride
    ((2, 128, 14, 14), 32, 4, 3, 1, 1, 2),                  # ResNeXt's strided 3x3
    ((1, 64, 15, 13), 8, 8, 3, 1, 1, 2),                    # odd sizes, 8 per group
    ((2, 48, 11, 12), 3, 16, 3, 1, 1, 2),                   # 16 per group
    ((1, 64, 9, 10), 2, 32, 3, 1, 1, 2),                    # 32 per group
    ((1, 24, 13, 17), 4, 6, (3, 5), ((2, 0), (1, 3)), (1, 2), (2, 3)),   # per-axis strides
    ((2, 16, 12, 12), 4, 4, 3, 2, 2, 3),                    # dilation, stride 3
    ((1, 12, 9, 11), 3, 4, 1, 0, 1, 2),                     # 1x1, stride 2
    ((1, 8, 7, 7), 2, 4, 4, "valid", 1, 4),                 # stride 4, one output row
    ((2, 16, 7, 75), 4, 4, 3, 1, 1, 2),                     # rows of several vectors
    ((1, 8, 6, 40), 2, 4, 3, ((0, 0), (3, 1)), 1, 2),       # wide left padding
    ((2, 24, 13, 30), 1, 40, 3, 1, 1, 2),                   # one group (a dense layer)
]


@pytest.mark.parametrize("case", STRIDED, ids=str)
def test_grouped_strided_matches_the_oracle(case, dtype, isa, threads):
    xs, G, M, kernel, padding, dilation, stride = case
    x, w, b = _inputs(case[:6], dtype)
    FH, FW = w.shape[2:]
    Cg, Kg = w.shape[1], M
    what = f"{case} [{isa}, {threads} threads]"
    kw = dict(dilation=dilation, groups=G)
    y = fastconv.conv2d(x, w, b, stride, padding, strict=False, algorithm="grouped", **kw)
    assert _plan.last_run("conv2d")["algorithm"] == "grouped"
    rng = np.random.default_rng(y.size)
    dy = rng.standard_normal(y.shape).astype(dtype)
    want, rdx, rdw = _oracle(x, w, b, dy, G, padding, dilation, stride)
    scale, sdx, sdw = _oracle(np.abs(x), np.abs(w), np.abs(b), np.abs(dy), G, padding,
                              dilation, stride)
    assert_close(y, want, scale, dtype, Cg * FH * FW, f"y {what}")
    yr = fastconv.conv2d(x, w, b, stride, padding, strict=False, algorithm="grouped",
                         activation="relu", **kw)
    assert_close(yr, np.maximum(want, 0), scale, dtype, Cg * FH * FW, f"relu(y) {what}")
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, stride, padding,
                                          algorithm=(None, "grouped"), **kw)
    assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "grouped"
    npix = y.shape[0] * y.shape[2] * y.shape[3]
    assert_close(dx, rdx, sdx, dtype, Kg * FH * FW, f"dx {what}")
    if _pairs(stride)[1] == 2:   # grouped's own data gradient serves column stride 2
        dxg, _, _ = fastconv.conv2d_backward(dy, x, w, stride, padding,
                                             algorithm=("grouped", None), **kw)
        assert _plan.last_run("conv2d_backward_data")["algorithm"] == "grouped"
        assert_close(dxg, rdx, sdx, dtype, Kg * FH * FW, f"grouped dx {what}")
    assert_close(dw, rdw, sdw, dtype, npix, f"dw {what}")
    assert_close(db, dy.astype(np.float64).sum(axis=(0, 2, 3)),
                 np.abs(dy.astype(np.float64)).sum(axis=(0, 2, 3)), dtype, npix, f"db {what}")


COLUMN_STRIDE_2 = [
    # x shape, groups, filters per group, kernel, padding, dilation, stride:
    # grouped's data gradient at column stride 2 (both column phases summed
    # in registers and interleaved into dx)
    ((2, 256, 12, 14), 32, 8, 3, 1, 1, 2),                  # ResNeXt's 8 channels a group
    ((1, 96, 9, 100), 2, 48, 3, 1, 1, 2),                   # 50 columns a phase: tiles of 1-3 vectors
    ((1, 64, 5, 201), 2, 64, 3, 1, 1, 2),                   # 64 a group, an odd width
    ((2, 18, 10, 33), 3, 5, 3, 1, 1, (1, 2)),               # row stride 1, 6 channels a group
    ((1, 20, 13, 31), 4, 4, (5, 3), (2, 1), 1, (3, 2)),     # row stride 3, 5 channels a group
    ((1, 12, 17, 19), 2, 7, (3, 4), ((0, 2), (3, 1)), (1, 2), (4, 2)),   # row stride 4
    ((2, 24, 11, 40), 4, 6, 4, ((1, 2), (1, 2)), 1, 2),     # even kernel: both phases 2 taps
    ((1, 16, 8, 37), 4, 4, 3, ((1, 1), (4, 0)), (1, 3), 2),  # dilation 3, wide left padding
    ((2, 12, 9, 1), 3, 4, (3, 1), ((1, 1), (0, 0)), 1, 2),  # one column: phase 1 empty
    ((1, 36, 6, 23), 12, 2, 1, 0, 1, 2),                    # 1x1, 3 channels a group
    ((2, 40, 9, 47), 1, 24, 3, 1, 1, 2),                    # one group (a dense layer)
]


@pytest.mark.parametrize("case", COLUMN_STRIDE_2, ids=str)
def test_grouped_data_gradient_at_column_stride_2(case, dtype, isa, threads):
    xs, G, M, kernel, padding, dilation, stride = case
    x, w, _ = _inputs(case[:6], dtype)
    FH, FW = w.shape[2:]
    kw = dict(dilation=dilation, groups=G)
    y = fastconv.conv2d(x, w, None, stride, padding, strict=False, **kw)
    dy = np.random.default_rng(y.size + 1).standard_normal(y.shape).astype(dtype)
    _, rdx, _ = _oracle(x, w, None, dy, G, padding, dilation, stride)
    _, sdx, _ = _oracle(np.abs(x), np.abs(w), None, np.abs(dy), G, padding, dilation,
                        stride)
    dx, _, _ = fastconv.conv2d_backward(dy, x, w, stride, padding,
                                        algorithm=("grouped", None), **kw)
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "grouped"
    assert_close(dx, rdx, sdx, dtype, M * FH * FW,
                 f"dx {case} [{isa}, {threads} threads]")


@pytest.mark.parametrize("xs, K, G", [((3, 64, 30, 34), 64, 8),
                                      # one image, one group: the bands are cut
                                      # finer for more threads
                                      ((1, 24, 40, 36), 40, 1)], ids=str)
def test_grouped_data_gradient_is_the_same_at_any_thread_count(xs, K, G):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal((K, xs[1] // G, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((xs[0], K, xs[2] // 2, xs[3] // 2)).astype(np.float32)
    before = fastconv.get_num_threads()
    outs = []
    try:
        for nt in (1, 2, 3):
            fastconv.set_num_threads(nt)
            outs.append(fastconv.conv2d_backward(dy, x, w, 2, 1, groups=G, need_dx=True,
                                                 algorithm=("grouped", None))[0])
            ran = _plan.last_run("conv2d_backward_data")
            assert ran["algorithm"] == "grouped"
            p = fastconv.plan("conv2d_backward_data", x.shape, w.shape, dtype=np.float32,
                              stride=2, padding=1, groups=G, algorithm="grouped")
            assert p.threads == ran["threads"], (p, ran)
            assert p.workspace_bytes == fastconv._core.last_workspace_bytes(), p
    finally:
        fastconv.set_num_threads(before)
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])
    _, rdx, _ = _oracle(x, w, None, dy, G, 1, 1, 2)
    _, sdx, _ = _oracle(np.abs(x), np.abs(w), None, np.abs(dy), G, 1, 1, 2)
    assert_close(outs[0], rdx, sdx, np.float32, K // G * 9, "dx")


def test_grouped_data_gradient_keeps_its_workspace_within_the_budget():
    # a dilation of 100 rows over one dx row a band: each band reads ~100
    # rows of dy, 64 filters of 2048 columns each, past the budget, and the
    # planner (only shapes, nothing allocated) says so when it is forced
    kw = dict(dtype="float32", stride=2, strict=False, groups=1)
    xs, ws = (2, 64, 201, 4096), (64, 64, 3, 3)
    ok = fastconv.plan("conv2d_backward_data", xs, ws, padding=(1, 1), algorithm="grouped",
                       **kw)
    assert ok.algorithm == "grouped" and ok.workspace_bytes < 16 << 20, ok
    with pytest.raises(ValueError, match="grouped.*workspace budget"):
        fastconv.plan("conv2d_backward_data", xs, ws, padding=(100, 1), dilation=(100, 1),
                      algorithm="grouped", **kw)
    p = fastconv.plan("conv2d_backward_data", xs, ws, padding=(100, 1), dilation=(100, 1),
                      **kw)
    assert p.algorithm != "grouped", p


def test_grouped_data_gradient_with_inf_weights_keeps_the_oracles_nans():
    # the zeros around dy would meet an inf weight as 0 * inf = NaN in a dx
    # element whose gradient never sums that product: such weights go to an
    # algorithm that skips them, and forcing grouped says why
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 32, 10, 36)).astype(np.float64)
    w = rng.standard_normal((32, 4, 3, 3))
    w[3, 1, 1, 0] = np.inf
    dy = rng.standard_normal((1, 32, 5, 18))
    dx, _, _ = fastconv.conv2d_backward(dy, x, w, 2, 1, groups=8)
    assert _plan.last_run("conv2d_backward_data")["algorithm"] != "grouped"
    _, rdx, _ = _oracle(x, w, None, dy, 8, 1, 1, 2)
    assert np.array_equal(np.isnan(dx), np.isnan(rdx))
    assert np.array_equal(np.isinf(dx), np.isinf(rdx))
    assert np.isinf(dx).any() and np.isfinite(dx).any()
    with pytest.raises(ValueError, match="grouped.*inf or NaN"):
        fastconv.conv2d_backward(dy, x, w, 2, 1, groups=8, algorithm=("grouped", None))


@pytest.mark.parametrize("threads3", [1, 3])
def test_grouped_takes_views_and_three_threads(dtype, threads3):
    case = ((3, 32, 11, 13), 8, 4, 3, 1, 1)
    x, w, b = _inputs(case, dtype)
    # a reversed, strided view of a wider array, and Fortran-ordered weights
    big = np.zeros((3, 32, 11, 26), dtype)
    big[:, :, :, ::2] = x[:, :, :, ::-1]
    xv = big[:, :, :, ::2][:, :, :, ::-1]
    assert not xv.flags.c_contiguous
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(threads3)
    try:
        _check(xv, np.asfortranarray(w), b, case, dtype, f"views, {threads3} threads")
    finally:
        fastconv.set_num_threads(before)


def test_grouped_is_the_same_at_any_thread_count():
    case = ((2, 64, 14, 15), 16, 4, 3, 1, 1)
    x, w, b = _inputs(case, np.float32)
    dy = np.random.default_rng(1).standard_normal((2, 64, 14, 15)).astype(np.float32)
    before = fastconv.get_num_threads()
    outs = []
    try:
        for nt in (1, 2, 3):
            fastconv.set_num_threads(nt)
            outs.append((_conv(x, w, b, case, algorithm="grouped"),)
                        + tuple(_backward(dy, x, w, case, algorithm="grouped")))
    finally:
        fastconv.set_num_threads(before)
    for o in outs[1:]:
        for a, r in zip(o, outs[0]):
            assert np.array_equal(a, r)


def test_an_inf_in_x_reaches_only_the_weights_it_meets():
    # the wide grid's thrown-away columns read real inputs: they must not
    # turn 0 * inf into NaN in a weight whose gradient never meets the inf
    case = ((1, 8, 6, 9), 2, 4, 3, 1, 1)
    x, w, _ = _inputs(case, np.float64)
    x[0, 0, 2, 0] = np.inf
    dy = np.ones((1, 8, 6, 9))
    _, dw, _ = _backward(dy, x, w, case, algorithm="grouped", need_dx=False)
    _, _, rdw = _oracle(x, w, None, dy, 2, 1, 1)
    assert np.array_equal(np.isnan(dw), np.isnan(rdw))
    assert np.array_equal(np.isinf(dw), np.isinf(rdw))
    assert not np.isnan(dw).all()


def _weight_tile_serves(Kg, strided):
    """Whether grouped's weight-gradient tile along the filters takes groups
    of Kg float32 filters on the active instruction set (whole vectors, at
    most four; at a stride not exactly one): beyond 8 channels a group, the
    weight gradient is grouped's only with that tile."""
    lanes = {"avx512": 16, "avx2": 8}.get(fastconv._config.get_isa(), 4)
    return Kg % lanes == 0 and Kg <= 4 * lanes and not (strided and Kg == lanes)


@pytest.mark.parametrize("shape", [(1, 128, 56, 56, 32), (8, 256, 28, 28, 32),
                                   (8, 512, 14, 14, 32), (1, 512, 14, 14, 32),
                                   (8, 1024, 7, 7, 32)], ids=str)
def test_the_planner_picks_grouped_for_resnext_layers(shape):
    N, C, H, W, G = shape
    for op in ("conv2d", "conv2d_backward_data", "conv2d_backward_weight"):
        p = fastconv.plan(op, (N, C, H, W), (C, C // G, 3, 3), dtype="float32", padding=1,
                          groups=G)
        if op == "conv2d_backward_weight" and C // G > 8 and not _weight_tile_serves(C // G,
                                                                                    False):
            assert p.algorithm != "grouped", (op, p)
            continue
        assert p.algorithm == "grouped", (op, p)


@pytest.mark.parametrize("shape", [(8, 256, 56, 56, 32), (8, 512, 28, 28, 32),
                                   (8, 1024, 14, 14, 32)], ids=str)
def test_the_planner_picks_grouped_for_resnext_strided_layers(shape):
    # the forward and the weight gradient; the data gradient where a
    # phase's columns fill at least 3/4 of the vectors grouped's tiles
    # compute (a 14-wide map has 7 columns a phase: half of an AVX-512
    # vector, and the phases keep it).  16 filters a group, one AVX-512
    # vector, leave the weight gradient to kvec per group; the rule depends
    # on the vector length, so it is not asserted here.
    N, C, H, W, G = shape
    lanes = {"avx512": 16, "avx2": 8}.get(fastconv._config.get_isa(), 4)
    cols = -(-W // 2)
    for op in ("conv2d", "conv2d_backward_weight", "conv2d_backward_data"):
        if op == "conv2d_backward_weight" and C // G == 16:
            continue
        p = fastconv.plan(op, (N, C, H, W), (C, C // G, 3, 3), dtype="float32", stride=2,
                          padding=1, groups=G, strict=False)
        want = True
        if op == "conv2d_backward_data":
            want = 4 * cols >= 3 * lanes * -(-cols // lanes)
        if op == "conv2d_backward_weight" and C // G > 8:
            want = _weight_tile_serves(C // G, True)
        assert (p.algorithm == "grouped") == want, (op, p)


@pytest.mark.parametrize("shape", [(4, 64, 56, 64), (8, 16, 64, 32), (3, 37, 33, 45)],
                         ids=str)
def test_the_planner_takes_small_dense_strided_layers_as_one_group(shape):
    # a strided forward of 8 to 64 channels into at most 64 filters: one
    # group on grouped rather than the GEMM's gathered panels; the data
    # gradient where a phase's columns fill the vectors well (the 33-wide
    # map's 17 columns do not); the weight gradient stays elsewhere
    N, C, H, K = shape
    lanes = {"avx512": 16, "avx2": 8}.get(fastconv._config.get_isa(), 4)
    cols = -(-H // 2)
    for op in ("conv2d", "conv2d_backward_data", "conv2d_backward_weight"):
        p = fastconv.plan(op, (N, C, H, H), (K, C, 3, 3), dtype="float32", stride=2,
                          padding=1, strict=False)
        want = {"conv2d": True, "conv2d_backward_weight": False,
                "conv2d_backward_data": 4 * cols >= 3 * lanes * -(-cols // lanes)}[op]
        assert (p.algorithm == "grouped") == want, (op, p)


def test_the_planner_leaves_first_layers_and_wide_ones_off_grouped():
    for xs, ws in (((8, 3, 224, 224), (32, 3, 3, 3)),      # 3 input channels
                   ((4, 64, 56, 56), (128, 64, 3, 3)),     # 128 filters
                   ((4, 96, 56, 56), (64, 96, 3, 3))):     # 96 channels
        for op in ("conv2d", "conv2d_backward_data"):
            p = fastconv.plan(op, xs, ws, dtype="float32", stride=2, padding=1, strict=False)
            assert p.algorithm != "grouped", (xs, ws, op, p)
    # a dense data gradient at batch 1 stays with col2im's one GEMM
    p = fastconv.plan("conv2d_backward_data", (1, 64, 56, 56), (64, 64, 3, 3),
                      dtype="float32", stride=2, padding=1, strict=False)
    assert p.algorithm != "grouped", p
    # and stride 1 keeps the dense algorithms
    p = fastconv.plan("conv2d", (8, 32, 32, 32), (32, 32, 3, 3), dtype="float32", padding=1)
    assert p.algorithm != "grouped", p


def test_the_planner_leaves_big_groups_to_the_per_group_loop():
    p = fastconv.plan("conv2d", (1, 256, 28, 28), (256, 128, 3, 3), dtype="float32",
                      padding=1, groups=2)
    assert p.algorithm != "grouped"
    p = fastconv.plan("conv2d_backward_weight", (1, 128, 28, 28), (128, 64, 3, 3),
                      dtype="float32", padding=1, groups=2)
    assert p.algorithm != "grouped"


def test_an_inf_in_x_reaches_only_the_weights_it_meets_with_whole_vectors_of_filters():
    # the tile along the filters reads only real pixels (16 filters a group
    # fill whole vectors on every instruction set)
    case = ((2, 32, 7, 11), 2, 16, 3, 1, 1)
    x, w, _ = _inputs(case, np.float32)
    x[1, 3, 4, 0] = np.inf
    x[0, 20, 6, 10] = -np.inf
    dy = np.ones((2, 32, 7, 11), np.float32)
    _, dw, _ = _backward(dy, x, w, case, algorithm="grouped", need_dx=False)
    _, _, rdw = _oracle(x, w, None, dy, 2, 1, 1)
    assert np.array_equal(np.isnan(dw), np.isnan(rdw))
    assert np.array_equal(np.isinf(dw), np.isinf(rdw))
    assert np.isinf(dw).any() and np.isfinite(dw).any()


def test_forcing_grouped_where_it_cannot_serve():
    x = np.ones((1, 8, 9, 9), np.float32)
    w = np.ones((8, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="grouped.*strides up to 4"):
        fastconv.conv2d(x, w, stride=5, padding=1, groups=4, algorithm="grouped",
                        strict=False)
    dy = np.ones((1, 8, 3, 3), np.float32)
    with pytest.raises(ValueError, match="grouped.*stride 1.*column stride 2"):
        fastconv.conv2d_backward(dy, x, w, stride=3, padding=1, groups=4,
                                 algorithm="grouped")
    with pytest.raises(ValueError, match="grouped.*64"):
        fastconv.conv2d(np.ones((1, 130, 5, 5), np.float32), np.ones((130, 65, 3, 3),
                        np.float32), groups=2, algorithm="grouped")
    with pytest.raises(ValueError, match="grouped"):
        fastconv.plan("linear", (2, 3), (4, 3), dtype="float32", algorithm="grouped")


def test_groups_too_small_for_two_threads_run_side_by_side(dtype):
    """A stride-2 layer of 8 small groups, each planned on one thread: at
    two threads the groups run side by side, one per thread, with the bits
    of a one-thread run and the oracle's values.  The data gradient is
    forced to col2im, which runs group by group (the planner would take all
    groups at once by phases)."""
    G, stride = 8, 2
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 32, 12, 13)).astype(dtype)
    w = rng.standard_normal((32, 4, 3, 3)).astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    dy = rng.standard_normal((2, 32, 6, 7)).astype(dtype)

    def run():
        y = fastconv.conv2d(x, w, b, stride, 1, groups=G, strict=False)
        return (y,) + tuple(fastconv.conv2d_backward(dy, x, w, stride, 1, groups=G,
                                                     algorithm=("col2im", None)))

    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        one = run()
        fastconv.set_num_threads(2)
        if fastconv.get_num_threads() < 2:
            pytest.skip("this build runs one thread")
        p = fastconv.plan("conv2d_backward_data", x.shape, w.shape, stride=stride,
                          padding=1, groups=G, dtype=dtype, strict=False, algorithm="col2im")
        assert p.threads == 2 and "side by side" in p.reason, p
        for op in ("conv2d", "conv2d_backward_weight"):
            p = fastconv.plan(op, x.shape, w.shape, stride=stride, padding=1, groups=G,
                              dtype=dtype, strict=False)
            if p.algorithm not in ("grouped", "depthwise"):
                assert p.threads == 2 and "side by side" in p.reason, p
        two = run()
    finally:
        fastconv.set_num_threads(before)
    for a, r in zip(two, one):
        assert np.array_equal(a, r)
    want, rdx, rdw = _oracle(x, w, b, dy, G, 1, 1, stride=stride)
    scale, sdx, sdw = _oracle(np.abs(x), np.abs(w), np.abs(b), np.abs(dy), G, 1, 1,
                              stride=stride)
    assert_close(two[0], want, scale, dtype, 4 * 9, "y")
    assert_close(two[1], rdx, sdx, dtype, 4 * 9, "dx")
    assert_close(two[2], rdw, sdw, dtype, 2 * 6 * 7, "dw")
