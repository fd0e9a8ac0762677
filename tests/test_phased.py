"""The strided data gradient by phases ("phased"): dx split into SH*SW
phase planes, each a stride-1 convolution of dy with the taps that reach it,
checked against the scatter oracle (reference.conv2d_backward_data) on every
instruction-set path and dtype, through conv2d_backward and
conv_transpose2d; its bits at every thread count and for each image alone;
its plan and when the planner takes it."""

import numpy as np
import pytest

import fastconv
import reference as ref
from conftest import assert_close, assert_fresh_output, randn
from fastconv import _core, _plan

# N, C, H, W, K, (FH, FW), (SH, SW), ((top, bottom), (left, right)), dilation, groups
CASES = [
    (2, 6, 16, 16, 8, (4, 4), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),   # DCGAN's 4x4 s2 p1
    (2, 5, 14, 12, 7, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), 1),   # U-Net's 2x2 s2
    (3, 4, 15, 13, 6, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),   # 3x3 s2, odd sizes
    (1, 3, 11, 17, 5, (3, 3), (3, 3), ((1, 1), (1, 1)), (1, 1), 1),   # stride 3, batch 1
    (2, 4, 9, 10, 3, (3, 2), (3, 2), ((2, 0), (0, 1)), (1, 1), 1),    # asymmetric
    (2, 3, 12, 9, 4, (1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1),    # 1x1 s2: idle phases
    (2, 3, 13, 11, 4, (2, 2), (3, 3), ((0, 0), (0, 0)), (1, 1), 1),   # 2x2 s3: idle phases
    (1, 2, 8, 9, 3, (1, 3), (2, 2), ((3, 2), (3, 0)), (1, 1), 1),     # padding past the kernel
    (2, 4, 13, 14, 5, (3, 3), (2, 2), ((2, 2), (2, 2)), (2, 2), 1),   # dilation 2 at stride 2
    (2, 4, 16, 15, 5, (3, 2), (2, 3), ((3, 1), (1, 2)), (3, 2), 1),   # dilation 3 at stride 2
    (2, 6, 12, 10, 8, (4, 4), (2, 2), ((1, 1), (1, 1)), (1, 1), 2),   # groups
    (2, 4, 9, 9, 4, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 4),     # depthwise
    (3, 7, 10, 7, 9, (5, 3), (2, 1), ((2, 2), (1, 1)), (1, 1), 1),    # stride along H only
    (2, 32, 14, 13, 32, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 4),  # ResNeXt-like s2
    (2, 12, 13, 16, 18, (3, 3), (3, 3), ((1, 1), (1, 1)), (1, 1), 3),  # groups at stride 3
    (2, 16, 15, 14, 8, (3, 3), (2, 2), ((2, 1), (2, 2)), (2, 2), 4),   # groups, dilation 2
    (1, 6, 11, 9, 10, (5, 2), (2, 3), ((2, 1), (0, 1)), (1, 1), 2),    # groups, uneven phases
    (1, 2, 8, 8, 130, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), 2),    # 65 filters a group
]


def _dx(dy, w, x_shape, s, pads, d, groups, algorithm):
    x = np.zeros(x_shape, dy.dtype)
    return fastconv.conv2d_backward(dy, x, w, s, pads, dilation=d, groups=groups,
                                    algorithm=(algorithm, None))[0]


def _case_inputs(case, dtype):
    N, C, H, W, K, f, s, pads, d, G = case
    geom = fastconv.functional.conv_geometry((N, C, H, W), (K, C // G) + f, s, pads,
                                             strict=False, where="test", dilation=d, groups=G)
    dy = randn((N, K, geom.H2, geom.W2), dtype, "phased dy", case)
    w = randn((K, C // G) + f, dtype, "phased w", case)
    return dy, w, (N, C, H, W)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_phased_data_gradient_matches_the_oracle(case, dtype, isa):
    dy, w, x_shape = _case_inputs(case, dtype)
    _, C, _, _, K, f, s, pads, d, G = case
    dx = _dx(dy, w, x_shape, s, pads, d, G, "phased")
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "phased"
    want = ref.conv2d_backward_data(dy, w, x_shape, s, pads, d, G)
    scale = ref.conv2d_backward_data(np.abs(dy), np.abs(w), x_shape, s, pads, d, G)
    assert dx.dtype == dtype and dx.shape == x_shape
    assert_close(dx, want, scale, dtype, K // G * f[0] * f[1], f"phased dx {case} [{isa}]")


# x shape, w shape (C_in, C_out/groups, FH, FW), stride, padding, output_padding, groups,
# dilation
TRANSPOSED = [
    ((2, 6, 4, 4), (6, 5, 4, 4), 2, 1, 0, 1, 1),          # DCGAN
    ((2, 6, 5, 3), (6, 4, 2, 2), 2, 0, 0, 1, 1),          # U-Net
    ((2, 4, 5, 6), (4, 3, 3, 3), 2, 1, 1, 2, 1),          # output_padding, groups
    ((1, 3, 4, 5), (3, 2, 3, 3), 3, 1, (2, 1), 1, 1),     # stride 3, output_padding
    ((2, 2, 6, 5), (2, 3, 3, 2), (2, 3), (1, 0), (1, 2), 1, (2, 1)),
]


@pytest.mark.parametrize("case", TRANSPOSED, ids=str)
def test_phased_transposed_convolution(case, dtype, isa):
    xs, ws, stride, padding, output_padding, groups, dilation = case
    x = randn(xs, dtype, "phased T x", case)
    w = randn(ws, dtype, "phased T w", case)
    args = (stride, padding, output_padding, groups, dilation)
    y = fastconv.conv_transpose2d(x, w, None, *args, algorithm="phased")
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "phased"
    assert_fresh_output(y, x, w)
    # y is the data gradient of the convolution of y's shape with w, whose
    # dy is x: the scatter oracle with the transposed convolution's padding
    # at the top and left
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    pads = ((ph, ph), (pw, pw))
    want = ref.conv2d_backward_data(x, w, y.shape, (sh, sw), pads, d, groups)
    scale = ref.conv2d_backward_data(np.abs(x), np.abs(w), y.shape, (sh, sw), pads, d, groups)
    assert_close(y, want, scale, dtype, xs[1] // groups * ws[2] * ws[3], f"T {case} [{isa}]")


SHAPES_DET = [
    # N, C, H, W, K, F, S, P: several threads' worth of work (over 1e7 flops)
    (4, 16, 32, 32, 32, 4, 2, 1),
    (3, 24, 29, 27, 20, 3, 2, 1),
    (4, 32, 28, 28, 64, 2, 2, 0),
    (3, 16, 31, 31, 24, 3, 3, 1),
]


@pytest.mark.parametrize("shape", SHAPES_DET, ids=str)
def test_phased_bits_do_not_depend_on_threads_or_placement(shape, dtype, isa):
    N, C, H, W, K, F_, S, P = shape
    geom = fastconv.functional.conv_geometry((N, C, H, W), (K, C, F_, F_), S, P, strict=False,
                                             where="test")
    dy = randn((N, K, geom.H2, geom.W2), dtype, "phased det dy", shape)
    w = randn((K, C, F_, F_), dtype, "phased det w", shape)
    pads = ((P, P), (P, P))
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        first = _dx(dy, w, (N, C, H, W), S, pads, 1, 1, "phased")
        for nt in (2, 3):
            fastconv.set_num_threads(nt)
            again = _dx(dy, w, (N, C, H, W), S, pads, 1, 1, "phased")
            assert np.array_equal(again.view(np.uint8), first.view(np.uint8)), (shape, nt)
        # each image alone: the phases' forward plans of one image are those
        # of the batch on these shapes, so the bits are the batch's
        for i in range(N):
            one = _dx(dy[i:i + 1], w, (1, C, H, W), S, pads, 1, 1, "phased")
            assert np.array_equal(one[0].view(np.uint8), first[i].view(np.uint8)), (shape, i)
    finally:
        fastconv.set_num_threads(before)


def test_phased_plan_is_what_runs(dtype, threads):
    # 6 input channels: below the 8 from which grouped takes a dense layer's
    # data gradient at column stride 2
    xs, ws = (4, 6, 16, 16), (64, 6, 4, 4)
    pl = fastconv.plan("conv2d_backward_data", xs, ws, dtype=dtype, stride=2, padding=1)
    assert pl.algorithm == "phased", pl.reason
    assert pl.reason.startswith("phased: strided, small maps, every phase with the same taps, "
                                "several; 4 of 4 phases"), pl.reason
    dy = randn((4, 64, 8, 8), dtype, "phased plan dy")
    w = randn(ws, dtype, "phased plan w")
    fastconv.conv2d_backward(dy, np.zeros(xs, dtype), w, 2, 1)
    ran = _plan.last_run("conv2d_backward_data")
    assert (ran["algorithm"], ran["kernel"], ran["threads"]) == \
        (pl.algorithm, pl.kernel, pl.threads)
    assert pl.workspace_bytes == _core.last_workspace_bytes()
    # with idle phases and padding past the kernel (a cropped copy of dy)
    xs, ws = (2, 8, 13, 11), (6, 8, 1, 3)
    pads = ((3, 1), (2, 0))
    pl = fastconv.plan("conv2d_backward_data", xs, ws, dtype=dtype, stride=(3, 2),
                       padding=pads, algorithm="phased")
    assert pl.algorithm == "phased" and pl.reason.startswith("phased: forced; "), pl.reason
    geom = fastconv.functional.conv_geometry(xs, ws, (3, 2), pads, strict=False, where="t")
    dy = randn((2, 6, geom.H2, geom.W2), dtype, "phased plan dy2")
    fastconv.conv2d_backward(dy, np.zeros(xs, dtype), randn(ws, dtype, "w2"), (3, 2), pads,
                             algorithm=("phased", None))
    assert pl.workspace_bytes == _core.last_workspace_bytes()


@pytest.mark.parametrize("shape, takes", [
    # (N, C, H, K, F, S, P): the planner's choice
    ((8, 128, 16, 256, 4, 2, 1), "phased"),      # DCGAN @8: every phase 2x2 taps
    ((64, 128, 8, 128, 4, 2, 1), "phased"),      # dy of 4x4
    ((8, 128, 12, 64, 6, 3, 0), "phased"),       # 6x6 s3: every phase 2x2 taps, dy 3x3
    ((8, 64, 32, 128, 4, 2, 1), "col2im"),       # DCGAN @16: dy of 256 pixels
    ((8, 64, 56, 128, 2, 2, 0), "col2im"),       # U-Net: one tap per phase
    ((8, 64, 30, 64, 3, 3, 0), "col2im"),        # 3x3 s3: one tap per phase
    ((8, 128, 56, 128, 3, 2, 1), "col2im"),      # 3x3 s2: phases of 1 and 2 taps
    ((8, 256, 28, 512, 1, 2, 0), "col2im"),      # 1x1 s2: three phases idle
    ((8, 1, 64, 64, 4, 2, 1), "col2im"),         # one input channel
    ((1, 512, 8, 512, 4, 2, 1), "col2im"),       # few pixels under many kernels
])
def test_planner_takes_phases_where_they_pay(shape, takes):
    N, C, H, K, F_, S, P = shape
    pl = fastconv.plan("conv2d_backward_data", (N, C, H, H), (K, C, F_, F_),
                       dtype=np.float32, stride=S, padding=P)
    assert pl.algorithm == takes, pl.reason


@pytest.mark.parametrize("shape, whole", [
    # (N, C, H, K, S, G): whether the phases take every group at once
    ((8, 256, 56, 256, 2, 32), True),    # ResNeXt 32x4d stage transitions
    ((8, 512, 28, 512, 2, 32), True),
    ((8, 1024, 14, 1024, 2, 32), True),
    ((4, 64, 16, 64, 3, 8), True),       # stride 3
    ((2, 256, 16, 256, 2, 2), False),    # 128 channels a group: the groups one by one
])
def test_phases_take_every_group_at_once(shape, whole, dtype):
    """A strided grouped data gradient: per group, each phase would be a
    thin convolution; with small groups the plan covers the whole call:
    grouped's own data gradient at column stride 2 where its tiles are
    well filled (grouped's tests say where), else the phases on `grouped`,
    every group at once."""
    N, C, H, K, S, G = shape
    pl = fastconv.plan("conv2d_backward_data", (N, C, H, H), (K, C // G, 3, 3), dtype=dtype,
                       stride=S, padding=1, groups=G, strict=False)
    own = pl.algorithm == "grouped"
    assert (own or "every group at once" in pl.reason) == whole, pl.reason
    if own:
        assert S == 2 and "column stride 2" in pl.reason, pl
    elif whole:
        assert pl.algorithm == "phased" and pl.kernel.startswith("grouped"), pl


def test_grouped_phases_run_as_planned(dtype, threads):
    # forced: at column stride 2 grouped's own data gradient may take it
    xs, ws, G = (3, 32, 15, 14), (48, 4, 3, 3), 8
    pl = fastconv.plan("conv2d_backward_data", xs, ws, dtype=dtype, stride=2, padding=1,
                       groups=G, strict=False, algorithm="phased")
    assert pl.algorithm == "phased" and "every group at once" in pl.reason, pl.reason
    geom = fastconv.functional.conv_geometry(xs, ws, 2, 1, strict=False, where="t", groups=G)
    dy = randn((3, 48, geom.H2, geom.W2), dtype, "grouped phases dy")
    w = randn(ws, dtype, "grouped phases w")
    dx = fastconv.conv2d_backward(dy, np.zeros(xs, dtype), w, 2, 1, groups=G,
                                  algorithm=("phased", None))[0]
    ran = _plan.last_run("conv2d_backward_data")
    assert (ran["algorithm"], ran["kernel"], ran["threads"]) == \
        (pl.algorithm, pl.kernel, pl.threads)
    assert pl.workspace_bytes == _core.last_workspace_bytes()
    pads = ((1, 1), (1, 1))
    want = ref.conv2d_backward_data(dy, w, xs, (2, 2), pads, (1, 1), G)
    scale = ref.conv2d_backward_data(np.abs(dy), np.abs(w), xs, (2, 2), pads, (1, 1), G)
    assert_close(dx, want, scale, dtype, 6 * 9, "grouped phases dx")
    # one image alone gives the batch's bits for that image
    one = fastconv.conv2d_backward(dy[1:2], np.zeros((1,) + xs[1:], dtype), w, 2, 1,
                                   groups=G, algorithm=("phased", None))[0]
    assert np.array_equal(one[0].view(np.uint8), dx[1].view(np.uint8))
    # and one thread the bits of every other thread count
    fastconv.set_num_threads(1)
    alone = fastconv.conv2d_backward(dy, np.zeros(xs, dtype), w, 2, 1, groups=G,
                                     algorithm=("phased", None))[0]
    assert np.array_equal(alone.view(np.uint8), dx.view(np.uint8)), threads


def test_phased_refuses_what_it_cannot_serve():
    x = np.zeros((1, 2, 8, 8), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="phased: serves strided data gradients"):
        fastconv.conv2d_backward(np.ones((1, 3, 8, 8), np.float32), x, w, 1, 1,
                                 algorithm=("phased", None))
    with pytest.raises(ValueError, match="algorithm .phased. does not compute conv2d"):
        fastconv.conv2d(x, w, algorithm="phased")
    # inf in the weights: its products with the zeros around dy would be NaN
    w[0, 0, 1, 1] = np.inf
    dy = np.ones((1, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match="phased: the weights hold inf or NaN"):
        fastconv.conv2d_backward(dy, x, w, 2, 1, algorithm=("phased", None))
    # unforced, such weights go to col2im, which does not multiply padding
    dx = fastconv.conv2d_backward(dy, x, w, 2, 1)[0]
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "col2im"
    want = ref.conv2d_backward_data(dy, w, x.shape, 2, ((1, 1), (1, 1)))
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(want))


@pytest.mark.parametrize("pads", [((0, 1), (0, 0)), ((0, 0), (0, 2)), ((0, 2), (0, 1))], ids=str)
def test_one_by_one_padded_at_the_end_only(pads, dtype, isa):
    # A phase of one tap is such a convolution (its output larger than dy);
    # it must not be read in place as an unpadded 1x1 product.
    x = randn((2, 3, 5, 4), dtype, "1x1 end x", pads)
    w = randn((4, 3, 1, 1), dtype, "1x1 end w", pads)
    y = fastconv.conv2d(x, w, padding=pads)
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    want = ref.conv2d(xp, w)
    assert y.shape == want.shape
    assert_close(y, want, ref.conv2d(np.abs(xp), np.abs(w)), dtype, 3, f"1x1 {pads} [{isa}]")
