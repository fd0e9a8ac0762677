"""Every convolution algorithm against the NumPy oracle, on every ISA.

A forward convolution (and the stride-1 data gradient, which is one) takes
one of five algorithms: "gemm" (packed im2col GEMM), "gemm_t" (the same
GEMM turned around, output pixels as the rows of the register tile),
"direct" (stride 1, a zero-padded slab read in place), "lanes" (images, or
tiles of them, as the lanes of the register tile; taps that read only
padding are skipped) or "kvec" (vectors along the output channels, inputs
broadcast from a phase-split slab; for strided first layers).  The weight
gradient has a GEMM, a "kvec", a "dot" (one dot product per weight, for
single-channel filters) and a "dot1x1" variant (1x1 filters, dot products
along the pixels), and the data gradient a "col2im" one (w^T dy in tiles,
scattered into dx) beside the stride-1 forward convolution.  Which one runs
depends on the shape and on the kernel width, so the shape tests alone may
leave one unexercised on some ISA.  Here each algorithm is forced by name
(``algorithm=``) on shapes it serves, including lane tilings with ragged last
tiles (forced through the plan's tile hint), and checked against the oracle;
the planner's own choice is then checked where it matters.
"""

import numpy as np
import pytest

import fastconv
from fastconv import _core, _plan
from fastconv._shapes import conv_geometry
from conftest import ConvCase, assert_close, conv_oracle_backward, conv_oracle_forward
import reference as ref

ALGS = fastconv.algorithms()


_FORCED = {"name": None}


@pytest.fixture
def force():
    """force(name) makes this test's forward convolutions and data gradients
    run algorithm `name`, and its weight gradients too where `name` computes
    them: "lanes" may carry a tile, "lanes:THxTW", and a kernel tile,
    "/wide" or "/narrow"; None lets the planner choose."""
    def set_name(name):
        _FORCED["name"] = name
    yield set_name
    _FORCED["name"] = None


def _parse(name):
    """(algorithm, narrow, th, tw) of a forced name."""
    if name is None:
        return None, -1, 0, 0
    alg, narrow, th, tw = name, -1, 0, 0
    if "/" in alg:
        alg, kernel = alg.split("/")
        narrow = {"wide": 0, "narrow": 1}[kernel]
    if ":" in alg:
        alg, tile = alg.split(":")
        th, tw = (int(v) for v in tile.split("x"))
    return alg, narrow, th, tw


def _forward(x, w, b, stride, padding, strict=True, activation=None):
    """conv2d with the forced algorithm (and lanes tile), and the plan it ran."""
    alg, narrow, th, tw = _parse(_FORCED["name"])
    if narrow < 0 and th == 0:
        y = fastconv.conv2d(x, w, b, stride, padding, strict=strict, activation=activation,
                            algorithm=alg)
        return y, _plan.last_run("conv2d")
    # a lanes tile: the plan's tile hint, through the binding as conv2d calls it
    geom = conv_geometry(x.shape, w.shape, stride, padding, strict=strict, where="conv2d")
    dtype = np.result_type(x, w)
    y = np.empty((geom[0], geom[4], geom[11], geom[12]), dtype)
    bf = np.empty(0, dtype) if b is None else b.astype(dtype).ravel()
    info = _core.conv2d_fwd(tuple(geom), np.ascontiguousarray(x, dtype).ravel(),
                            np.ascontiguousarray(w, dtype).ravel(), bf, y.reshape(-1),
                            activation == "relu", fastconv.get_num_threads(), ALGS.index(alg),
                            narrow, th, tw)
    _plan._ran("conv2d", info)
    return y, info


def _backward(dy, x, w, stride=1, padding=0, need_dx=True, weight=True):
    """conv2d_backward with the forced algorithm on the data gradient (and on
    the weight gradient, with `weight`, where it computes one)."""
    alg = _parse(_FORCED["name"])[0]
    data_alg = alg if alg is not None and _plan._serves(alg, _core.OP_CONV_DATA) else None
    weight_alg = alg if weight and alg is not None and \
        _plan._serves(alg, _core.OP_CONV_WEIGHT) else None
    return fastconv.conv2d_backward(dy, x, w, stride, padding, need_dx=need_dx,
                                    algorithm=(data_alg, weight_alg))


def _run_forward(case, dtype, activation=None):
    x, w, b, _ = case.inputs(dtype)
    y, info = _forward(x, w, b, case.stride, case.padding, strict=case.exact,
                       activation=activation)
    return y, info["algorithm"]


def _at_threads(run, counts=(1, 2, 3)):
    """run() at each thread count in turn, the caller's count restored."""
    before = fastconv.get_num_threads()
    try:
        out = []
        for n in counts:
            fastconv.set_num_threads(n)
            out.append(run())
        return out
    finally:
        fastconv.set_num_threads(before)


def _check_forward_at_threads(case, dtype, isa, path=None):
    """y at 1, 2 and 3 threads comes from `path` (or, with None, from one
    path at every count), matches the oracle and has the same bits every
    time."""
    runs = _at_threads(lambda: _run_forward(case, dtype))
    ran = [p for _, p in runs]
    if path is None:
        assert len(set(ran)) == 1
    else:
        assert ran == [path] * 3
    expected, scale = conv_oracle_forward(case, dtype)
    for y, _ in runs:
        assert_close(y, expected, scale, dtype, case.len_fwd, f"conv2d via {ran[0]} [{isa}]")
        np.testing.assert_array_equal(y, runs[0][0])


def _check_forced_forward(case, dtype, isa, name, path):
    """With `name` forced, y with and without ReLU comes from `path` and
    matches the oracle."""
    for activation in (None, "relu"):
        y, ran = _run_forward(case, dtype, activation)
        assert ran == path, f"expected the {path} path, ran {ran!r} (forced {name!r})"
        expected, scale = conv_oracle_forward(case, dtype, activation)
        assert_close(y, expected, scale, dtype, case.len_fwd, f"conv2d {path} [{isa}]")


# Shapes on which each algorithm applies (direct: stride 1 and a kernel
# larger than 1x1).  Small channel counts and odd sizes keep the oracle quick
# and leave ragged edges everywhere.
LANE_CASES = [
    ConvCase(32, 33, 7, 7, 29, 3, 3, 1, 1, 1, 1),              # one tile per image
    ConvCase(5, 12, 9, 11, 17, 3, 3, 1, 1, 1, 1),              # batch not a lane multiple
    ConvCase(3, 7, 10, 9, 13, 3, 2, 2, 2, 1, 0),               # stride 2, floored, 3x2
    ConvCase(2, 5, 8, 8, 9, 5, 5, 1, 1, 2, 2, bias=False),     # 5x5, no bias
    ConvCase(1, 4, 4, 4, 6, 3, 3, 3, 3, 3, 3),                 # windows wholly in padding
    ConvCase(3, 6, 6, 7, 5, 1, 1),                             # 1x1
]
# (tile rows, tile columns) to force, besides the automatic tiling: ragged
# last tiles on both axes, single-pixel tiles, one tile per image.
TILES = [None, (1, 1), (2, 3), (3, 2), (100, 100)]


@pytest.mark.parametrize("tile", TILES, ids=lambda t: "auto" if t is None else f"{t[0]}x{t[1]}")
@pytest.mark.parametrize("case", LANE_CASES, ids=str)
def test_lanes_forward(case, dtype, isa, threads, force, tile):
    name = "lanes" if tile is None else f"lanes:{tile[0]}x{tile[1]}"
    force(name)
    _check_forced_forward(case, dtype, isa, name, "lanes")


@pytest.mark.parametrize("kernel", ["wide", "narrow"])
@pytest.mark.parametrize("tile", [None, (2, 3)], ids=lambda t: "auto" if t is None else f"{t[0]}x{t[1]}")
@pytest.mark.parametrize("case", LANE_CASES, ids=str)
def test_lanes_kernel_tiles(case, dtype, isa, threads, force, tile, kernel):
    # Each instruction set's wide register tile and its narrow one (AVX-512:
    # 16 rows of one vector; elsewhere the wide tile again) on the lanes path.
    name = ("lanes" if tile is None else f"lanes:{tile[0]}x{tile[1]}") + "/" + kernel
    force(name)
    _check_forced_forward(case, dtype, isa, name, "lanes")
    names = _core.narrow_kernel_names() if kernel == "narrow" else _core.kernel_names()
    assert _plan.last_run("conv2d")["kernel"] == names[dtype == np.float64]


def _tile_columns(kernel_name):
    """NR of a kernel named operation_isa_MRxNR."""
    return int(kernel_name.rsplit("x", 1)[1])


def test_lanes_takes_the_narrow_tile_where_it_fills_the_lanes(isa, force):
    # 16 images of 13x13 (AlexNet's last layers at batch 16) are one block of
    # 16 float32 lanes; 32 lanes would need two tiles of 7 and 6 rows each.
    if 16 not in {_tile_columns(_core.kernel_names()[0]),
                  _tile_columns(_core.narrow_kernel_names()[0])}:
        pytest.skip(f"{isa}: no float32 tile 16 lanes wide (NEON's are 12)")
    force(None)
    case = ConvCase(16, 64, 13, 13, 48, 3, 3, 1, 1, 1, 1)
    y, path = _run_forward(case, np.float32)
    assert path == "lanes"
    assert _plan.last_run("conv2d")["kernel"] == _core.narrow_kernel_names()[0]
    expected, scale = conv_oracle_forward(case, np.float32)
    assert_close(y, expected, scale, np.float32, case.len_fwd, f"conv2d auto [{isa}]")
    # 32 images fill 32 lanes: the wide tile
    case = ConvCase(32, 64, 13, 13, 48, 3, 3, 1, 1, 1, 1)
    _, path = _run_forward(case, np.float32)
    assert path == "lanes"
    assert _plan.last_run("conv2d")["kernel"] == _core.kernel_names()[0]


@pytest.mark.parametrize("path", ["gemm", "gemm_t", "direct", "lanes", "kvec"])
@pytest.mark.parametrize("case", [c for c in LANE_CASES if c.stride == (1, 1)], ids=str)
def test_forced_paths_forward_and_data_gradient(case, dtype, isa, force, path):
    force(path)
    x, w, _, dy = case.inputs(dtype)
    if path == "direct" and case.FH * case.FW == 1:
        # direct needs a kernel larger than 1x1: forcing it says so
        with pytest.raises(ValueError, match="direct: serves stride 1 with a kernel larger"):
            _run_forward(case, dtype)
    else:
        y, ran = _run_forward(case, dtype)
        assert ran == path
        expected, scale = conv_oracle_forward(case, dtype)
        assert_close(y, expected, scale, dtype, case.len_fwd, f"conv2d {path} [{isa}]")
    if case.FH * case.FW == 1 and path not in ("gemm", "gemm_t"):
        # a 1x1 data gradient is one product: gemm, gemm_t or col2im
        with pytest.raises(ValueError, match="one product"):
            _backward(dy, x, w, case.stride, case.padding, weight=False)
        return
    dx, _, _ = _backward(dy, x, w, case.stride, case.padding, weight=False)
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == path
    (rdx, _, _), (sdx, _, _) = conv_oracle_backward(case, dtype)
    assert_close(dx, rdx, sdx, dtype, case.len_dx, f"conv2d dx via {path} [{isa}]")


# Shapes for the output-channel-vector path: strides, odd widths, output
# channels that fill several vectors or part of one, kernels wider than the
# stride, 1x1.
KVEC_CASES = LANE_CASES + [
    ConvCase(2, 3, 37, 41, 64, 11, 11, 4, 4, 2, 2),            # AlexNet's first layer
    ConvCase(1, 3, 30, 29, 70, 7, 7, 2, 2, 3, 3),              # K past four vectors
    ConvCase(2, 1, 40, 23, 5, 9, 4, 2, 3, 0, 1),               # C = 1, tall kernel, stride 3
]


@pytest.mark.parametrize("case", KVEC_CASES, ids=str)
def test_kvec_forward(case, dtype, isa, threads, force):
    force("kvec")
    _check_forced_forward(case, dtype, isa, "kvec", "kvec")


# The direct path's slab rows share their zero padding (a row's right
# padding is the next row's left zeros): no padding, padding on one axis only,
# padding wider than the kernel (the output row then sets the pitch), a
# kernel wider than tall, and tall maps that take several row chunks.
DIRECT_CASES = [
    ConvCase(2, 4, 9, 13, 8, 3, 5, 1, 1, 0, 2),
    ConvCase(1, 3, 6, 5, 4, 3, 3, 1, 1, 1, 4),
    ConvCase(3, 5, 7, 9, 6, 2, 3, 1, 1, 0, 0),
    ConvCase(1, 6, 40, 11, 20, 7, 7, 1, 1, 3, 3),
    ConvCase(2, 3, 12, 10, 9, 1, 4, 1, 1, 2, 1, bias=False),
]


@pytest.mark.parametrize("case", DIRECT_CASES, ids=str)
def test_direct_forward(case, dtype, isa, threads, force):
    force("direct")
    _check_forced_forward(case, dtype, isa, "direct", "direct")


def test_forward_path_does_not_depend_on_threads(isa, force):
    # one image of 28x28 under 128 kernels: 2 or 3 threads cut the direct
    # path's rows into shorter chunks, which must not send the shape to
    # another algorithm (other sums, other bits)
    force(None)
    _check_forward_at_threads(ConvCase(1, 8, 28, 28, 128, 3, 3, 1, 1, 1, 1), np.float32, isa)


@pytest.mark.parametrize("case", KVEC_CASES, ids=str)
def test_turned_gemm_forward(case, dtype, isa, threads, force):
    # the GEMM turned around: output pixels as the rows of the register
    # tile, output channels as its columns (strides, padding, batches, 1x1)
    force("gemm_t")
    _check_forced_forward(case, dtype, isa, "gemm_t", "gemm_t")


# Few output pixels under many kernels: 25 pixels (18 over two images) fill
# vectors of 16, 8 or 4 lanes badly as columns, while as rows they waste
# nothing.
TURNED_CASES = [
    ConvCase(1, 100, 5, 5, 96, 1, 1),
    ConvCase(2, 40, 3, 3, 64, 1, 1),
    ConvCase(1, 30, 9, 9, 128, 3, 3, 2, 2, 1, 1),
]


@pytest.mark.parametrize("case", TURNED_CASES, ids=str)
def test_few_pixels_take_the_turned_gemm(case, dtype, isa, force):
    if isa == "neon" and dtype == np.float64:
        # 6-column tiles of three 2-lane vectors: 25 and 18 pixels waste at
        # most one lane per row as columns, so turning gains nothing
        pytest.skip("NEON float64: vectors of 2 lanes fill these columns")
    force(None)
    _check_forward_at_threads(case, dtype, isa, "gemm_t")
    if case.FH == 1 and case.FW == 1:
        # the data gradient of a 1x1 is a turned GEMM too
        _check_data_gradient_at_threads(case, dtype, isa, "gemm_t")


def _check_weight_gradient(case, dtype, isa, path):
    """dw and db come from `path` and match the oracle."""
    x, w, _, dy = case.inputs(dtype)
    _, dw, db = _backward(dy, x, w, case.stride, case.padding, need_dx=False)
    assert _plan.last_run("conv2d_backward_weight")["algorithm"] == path
    (_, rdw, rdb), (_, sdw, sdb) = conv_oracle_backward(case, dtype)
    assert_close(dw, rdw, sdw, dtype, case.len_dw, f"conv2d dw via {path} [{isa}]")
    assert_close(db, rdb, sdb, dtype, case.len_dw, f"conv2d db via {path} [{isa}]")


@pytest.mark.parametrize("path", ["gemm", "kvec", "dot"])
@pytest.mark.parametrize("case", KVEC_CASES, ids=str)
def test_forced_weight_gradient(case, dtype, isa, threads, force, path):
    force(path)
    _check_weight_gradient(case, dtype, isa, path)


# Shapes for the 1x1 weight gradient as dot products along the pixels: maps
# shorter than one vector (every pixel in the last, partial vector), channel
# counts that leave partial register tiles, maps longer than one chunk of
# pixels, more output channels than the automatic choice gives it.
DOT1X1_CASES = [
    ConvCase(1, 3, 2, 3, 70, 1, 1),
    ConvCase(2, 7, 5, 9, 5, 1, 1),
    ConvCase(1, 13, 33, 35, 9, 1, 1, bias=False),
    ConvCase(3, 20, 24, 24, 30, 1, 1),
]


@pytest.mark.parametrize("case", DOT1X1_CASES, ids=str)
def test_forced_dot1x1_weight_gradient(case, dtype, isa, threads, force):
    force("dot1x1")
    _check_weight_gradient(case, dtype, isa, "dot1x1")


def test_dot1x1_weight_gradient_is_chosen_and_thread_independent(dtype, isa, force):
    # up to 64 output channels on a 1x1 of 512 pixels or more: each thread
    # owns whole weights, so dw has the same bits at any thread count
    force(None)
    case = ConvCase(2, 19, 23, 25, 11, 1, 1)

    def run():
        x, w, _, dy = case.inputs(dtype)
        _, dw, db = fastconv.conv2d_backward(dy, x, w, need_dx=False)
        return dw, db, _plan.last_run("conv2d_backward_weight")["algorithm"]

    runs = _at_threads(run)
    assert [r[2] for r in runs] == ["dot1x1"] * 3
    (_, rdw, _), (_, sdw, _) = conv_oracle_backward(case, dtype)
    for dw, db, _ in runs:
        assert_close(dw, rdw, sdw, dtype, case.len_dw, f"conv2d dw via dot1x1 [{isa}]")
        np.testing.assert_array_equal(dw, runs[0][0])
        np.testing.assert_array_equal(db, runs[0][1])


def _data_gradient_path(case, dtype):
    """dx, and the algorithm that computed it."""
    x, w, _, dy = case.inputs(dtype)
    dx, _, _ = _backward(dy, x, w, case.stride, case.padding, weight=False)
    return dx, _plan.last_run("conv2d_backward_data")["algorithm"]


def _check_data_gradient_at_threads(case, dtype, isa, path):
    """dx at 1, 2 and 3 threads comes from `path`, matches the oracle and has
    the same bits every time."""
    runs = _at_threads(lambda: _data_gradient_path(case, dtype))
    assert [ran for _, ran in runs] == [path] * 3
    (rdx, _, _), (sdx, _, _) = conv_oracle_backward(case, dtype)
    for dx, _ in runs:
        assert_close(dx, rdx, sdx, dtype, case.len_dx, f"conv2d dx via {path} [{isa}]")
        np.testing.assert_array_equal(dx, runs[0][0])


# Stride 1 (where the forward-convolution shortcut also applies), odd channel
# counts that leave partial register panels, kernels wider than tall.
COL2IM_CASES = [c for c in LANE_CASES if c.stride == (1, 1)] + [
    ConvCase(1, 19, 5, 6, 40, 3, 3, 1, 1, 1, 1),
    ConvCase(2, 3, 9, 7, 17, 2, 3, 1, 1, 1, 0),
    ConvCase(1, 37, 7, 7, 70, 3, 3, 1, 1, 1, 1),
]


@pytest.mark.parametrize("case", COL2IM_CASES, ids=str)
def test_forced_col2im_data_gradient(case, dtype, isa, threads, force):
    force("col2im")
    dx, path = _data_gradient_path(case, dtype)
    assert path == "col2im"
    (rdx, _, _), (sdx, _, _) = conv_oracle_backward(case, dtype)
    assert_close(dx, rdx, sdx, dtype, case.len_dx, f"conv2d dx via col2im [{isa}]")


def test_data_gradient_of_few_pixels_takes_col2im(isa, force):
    # 25 pixels under 96 kernels: turning the weights around would cost more
    # than the scatter of dcol
    force(None)
    case = ConvCase(1, 24, 5, 5, 96, 3, 3, 1, 1, 1, 1)
    dx, path = _data_gradient_path(case, np.float32)
    assert path == "col2im"
    (rdx, _, _), (sdx, _, _) = conv_oracle_backward(case, np.float32)
    assert_close(dx, rdx, sdx, np.float32, case.len_dx, f"conv2d dx auto [{isa}]")
    # a batch of them goes through the forward convolution
    case = ConvCase(16, 24, 5, 5, 96, 3, 3, 1, 1, 1, 1)
    _, path = _data_gradient_path(case, np.float32)
    assert path != "col2im"


# Fewer than 8 planes of dx (first layers at batch 1 or 2), maps of 16 kernel
# heights or more: each plane is cut into bands of rows, every band
# recomputing the output rows that reach it and adding into its own rows only.
BANDED_CASES = [
    ConvCase(1, 1, 50, 23, 8, 3, 3, 1, 1, 1, 1),      # 2 bands
    ConvCase(1, 3, 70, 33, 16, 3, 3, 2, 2, 1, 1),     # 2 bands, stride 2
    ConvCase(1, 2, 101, 9, 5, 3, 2, 3, 1, 2, 0),      # 4 bands, stride 3, padding > stride
    ConvCase(2, 1, 90, 12, 4, 5, 3, 2, 1, 0, 1),      # 2 bands, rows past the last window
]


@pytest.mark.parametrize("case", BANDED_CASES, ids=str)
def test_data_gradient_in_bands_of_rows(case, dtype, isa, force):
    # (forced: with 2 input channels and a kernel as tall as the stride, the
    # portable build's planner takes the phases for the third case)
    force("col2im")
    _check_data_gradient_at_threads(case, dtype, isa, "col2im")


@pytest.mark.parametrize("case", [ConvCase(3, 1, 17, 15, 32, 5, 5, 1, 1, 2, 2),
                                  ConvCase(2, 3, 20, 19, 40, 7, 7, 1, 1, 3, 3)], ids=str)
def test_data_gradient_of_few_input_channels_takes_col2im(case, dtype, isa, threads, force):
    # dx of a first layer (1 or 3 channels): w^T has C*FH*FW rows, where
    # the forward-convolution shortcut would have C output channels (the
    # portable build's GEMM tile is too slow for that with 3 channels).  The
    # x86 paths' direct tiles (6 or 8 rows) leave 3 channels half empty; the
    # portable engine copy, which NEON's kernels run on too, has 4 rows.
    force(None)
    dx, path = _data_gradient_path(case, dtype)
    if case.C == 1 or isa in ("avx2", "avx512"):
        assert path == "col2im"
    else:
        assert path != "col2im"
    (rdx, _, _), (sdx, _, _) = conv_oracle_backward(case, dtype)
    assert_close(dx, rdx, sdx, dtype, case.len_dx, f"conv2d dx auto [{isa}]")


def test_few_pixel_gradients_do_not_depend_on_threads(isa, force):
    # 36 pixels under 128 kernels of 1152 weights: the data gradient takes
    # col2im, the weight gradient shares dw's columns among threads; every
    # element is summed in the same order whatever the thread count
    force(None)
    case = ConvCase(1, 128, 6, 6, 128, 3, 3, 1, 1, 1, 1)
    x, w, _, dy = case.inputs(np.float32)

    def run():
        _, dw, db = fastconv.conv2d_backward(dy, x, w, case.stride, case.padding,
                                             need_dx=False)
        assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "gemm"
        dx, path = _data_gradient_path(case, np.float32)
        assert path == "col2im"
        return dx, dw, db

    got = _at_threads(run, (1, 2))
    (rdx, rdw, _), (sdx, sdw, _) = conv_oracle_backward(case, np.float32)
    for dx, dw, _ in got:
        assert_close(dx, rdx, sdx, np.float32, case.len_dx, f"conv2d dx [{isa}]")
        assert_close(dw, rdw, sdw, np.float32, case.len_dw, f"conv2d dw [{isa}]")
    for a, b in zip(got[0], got[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", [ConvCase(1, 32, 8, 8, 512, 3, 3, 1, 1, 1, 1),
                                  ConvCase(1, 64, 7, 7, 256, 3, 3, 1, 1, 1, 1)], ids=str)
def test_data_gradient_tiles_do_not_depend_on_threads(case, dtype, isa, force):
    # col2im's channel blocks and pixel tiles follow the shape alone, so the
    # microkernel's edge tiles (some of which sum in split accumulators) are
    # the same at any thread count, and so is every bit of dx; 49 pixels
    # under 256 kernels take the turned GEMM (pixels as tile rows) for dcol
    force(None)
    _check_data_gradient_at_threads(case, dtype, isa, "col2im")


@pytest.mark.parametrize("case", [ConvCase(1, 32, 14, 14, 128, 3, 3, 1, 1, 1, 1),
                                  ConvCase(1, 24, 15, 13, 200, 3, 3, 1, 1, 1, 0),
                                  ConvCase(1, 512, 7, 7, 250, 1, 1)], ids=str)
def test_gathered_columns_shared_by_threads(case, dtype, isa, force):
    # batch 1, few column panels, many kernels: at more than one thread the
    # GEMM packs B (gathered, or x itself for the 1x1) once for all threads
    # and splits C by rows (AVX-512 tiles); every tile and every sum is the
    # one computed at 1 thread
    force("gemm")
    _check_forward_at_threads(case, dtype, isa, "gemm")


def test_single_channel_filters_take_the_dot_weight_gradient(isa, force):
    force(None)
    _check_weight_gradient(ConvCase(2, 1, 33, 40, 1, 3, 3, 1, 1, 1, 1), np.float64, isa, "dot")


def test_kvec_is_chosen_for_strided_first_layers(isa, force):
    force(None)
    case = ConvCase(8, 3, 64, 64, 16, 11, 11, 4, 4, 2, 2)
    y, path = _run_forward(case, np.float32)
    assert path == "kvec"
    expected, scale = conv_oracle_forward(case, np.float32)
    assert_close(y, expected, scale, np.float32, case.len_fwd, f"conv2d auto [{isa}]")
    # and its weight gradient
    x, w, _, dy = case.inputs(np.float32)
    fastconv.conv2d_backward(dy, x, w, case.stride, case.padding, need_dx=False)
    assert _plan.last_run("conv2d_backward_weight")["algorithm"] == "kvec"


def test_lanes_is_chosen_for_small_maps_and_large_batches(isa, force):
    # 64 images of 7x7: one tile per image fills every lane of every kernel
    force(None)
    case = ConvCase(64, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1)
    y, path = _run_forward(case, np.float32)
    assert path == "lanes"
    expected, scale = conv_oracle_forward(case, np.float32)
    assert_close(y, expected, scale, np.float32, case.len_fwd, f"conv2d auto [{isa}]")
    # a large map goes elsewhere
    case = ConvCase(2, 8, 40, 40, 8, 3, 3, 1, 1, 1, 1)
    _, path = _run_forward(case, np.float32)
    assert path in ("direct", "gemm")


@pytest.mark.parametrize("name, case", [
    ("lanes:2x3", ConvCase(7, 40, 11, 10, 30, 3, 3, 1, 1, 1, 1)),
    # 7x7 tiles: 49 positions per tile, cut into as many jobs as the
    # threads share evenly
    ("lanes:7x7", ConvCase(2, 40, 28, 28, 48, 3, 3, 1, 1, 1, 1)),
    ("lanes:7x7/narrow", ConvCase(2, 40, 28, 28, 48, 3, 3, 1, 1, 1, 1)),
], ids=["2x3", "7x7", "7x7-narrow"])
def test_lanes_results_do_not_depend_on_threads(isa, force, name, case):
    force(name)
    _check_forward_at_threads(case, np.float32, isa, "lanes")


def test_nonfinite_weights_leave_the_lanes_path(isa):
    # Skipping a tap that reads only padding differs from the zero-padded sum
    # when a weight is infinite (0 * inf = NaN there).  Such weights go to
    # the other algorithms, so the result stays the oracle's; forcing lanes
    # on them says why it cannot.
    x = np.ones((64, 64, 7, 7), np.float32)
    w = np.zeros((64, 64, 3, 3), np.float32)
    w[:, :, 1, 1] = 1.0
    fastconv.conv2d(x, w, None, 1, 1, algorithm="lanes")
    assert _plan.last_run("conv2d")["algorithm"] == "lanes"
    assert fastconv.plan("conv2d", x.shape, w.shape, dtype=np.float32,
                         padding=1).algorithm == "lanes"
    fastconv.conv2d(x, w, None, 1, 1)
    assert _plan.last_run("conv2d")["algorithm"] == "lanes"
    w[:, :, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        want = ref.conv2d(x, w, None, 1, 1)
    y = fastconv.conv2d(x, w, None, 1, 1)
    assert _plan.last_run("conv2d")["algorithm"] != "lanes"
    assert np.all(np.isnan(y[:, :, 0, 0])) and np.all(np.isnan(want[:, :, 0, 0]))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(want))
    with pytest.raises(ValueError, match="lanes: the weights hold inf or NaN"):
        fastconv.conv2d(x, w, None, 1, 1, algorithm="lanes")


def test_unknown_algorithm_names_list_the_valid_ones():
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="unknown algorithm 'fft'; valid: .*gemm"):
        fastconv.conv2d(x, w, algorithm="fft")
    with pytest.raises(ValueError, match="'dot' does not compute conv2d; valid:"):
        fastconv.conv2d(x, w, algorithm="dot")
    with pytest.raises(TypeError, match="algorithm must be a str"):
        fastconv.conv2d(x, w, algorithm=3)
    with pytest.raises(ValueError, match="unknown algorithm"):
        fastconv.conv2d_backward(np.ones((1, 3, 3, 3), np.float32), x, w, algorithm="fft")


# A 1x1 stride-1 convolution is x times the weights with x as the GEMM's B.
# Where x is small enough to stay in cache (4 MiB) and the instruction set has
# a kernel for it (AVX-512), panels of B are read in place; a larger x is
# packed first.  Both sum every output in the same order, so one large call
# (packed) and the same images one at a time (in place) agree bit for bit,
# and both match the oracle.  (Maps of a multiple of 32 pixels, so no tile
# straddles two images or ends short and both calls run the same tiles; not
# of 128, whose rows, 1 KiB apart, are always packed.)
@pytest.mark.parametrize("case", [ConvCase(3, 120, 56, 56, 48, 1, 1),
                                  ConvCase(3, 40, 80, 124, 29, 1, 1)], ids=str)
def test_1x1_b_in_place_and_packed_agree(case, dtype, isa, threads, force):
    force(None)
    x, w, b, _ = case.inputs(dtype)
    # float32: the whole x past 4 MiB; float64: one image within it
    assert x.nbytes > 4 << 20 and x[:1].nbytes <= 4 << 20, x.nbytes
    whole = fastconv.conv2d(x, w, b)
    one_by_one = np.concatenate([fastconv.conv2d(x[i:i + 1], w, b) for i in range(case.N)])
    np.testing.assert_array_equal(whole, one_by_one)
    expected, scale = conv_oracle_forward(case, dtype)
    assert_close(whole, expected, scale, dtype, case.len_fwd, f"1x1 conv2d [{isa}]")


# An output of 16 MiB or more from the GEMM goes around the caches
# (non-temporal stores on AVX-512; a hint the other kernels ignore).  One
# large call (streamed) and the same images one at a time (each under the
# threshold, cached stores) agree bit for bit, and both match the oracle:
# the 1x1 forward with bias and ReLU, its data gradient (dx = w^T dy, large),
# and a padded 3x3 forward on the GEMM with the im2col gather.
@pytest.mark.parametrize("case, path", [(ConvCase(4, 24, 72, 96, 160, 1, 1), None),
                                        (ConvCase(4, 8, 128, 128, 70, 3, 3, PH=1, PW=1),
                                         "gemm")], ids=str)
def test_large_output_streamed_and_cached_agree(case, path, dtype, isa, threads, force):
    force(path)
    x, w, b, _ = case.inputs(dtype)
    n_out = case.N * case.K * case.H * case.W    # every case keeps its size
    assert n_out * np.dtype(dtype).itemsize >= 16 << 20
    assert n_out // case.N * np.dtype(dtype).itemsize < 16 << 20
    whole, info = _forward(x, w, b, case.stride, case.padding, activation="relu")
    assert info["algorithm"] == "gemm"
    one_by_one = np.concatenate([
        fastconv.conv2d(x[i:i + 1], w, b, case.stride, case.padding, activation="relu")
        for i in range(case.N)])
    np.testing.assert_array_equal(whole, one_by_one)
    expected, scale = conv_oracle_forward(case, dtype, activation="relu")
    assert_close(whole, expected, scale, dtype, case.len_fwd, f"conv2d streamed [{isa}]")


@pytest.mark.parametrize("case", [ConvCase(4, 160, 72, 96, 24, 1, 1)], ids=str)
def test_large_1x1_data_gradient_streamed_and_cached_agree(case, dtype, isa, threads, force):
    force("gemm")
    x, w, _, dy = case.inputs(dtype)
    assert x.nbytes >= 16 << 20 and x[:1].nbytes < 16 << 20
    dx = _backward(dy, x, w, need_dx=True)[0]
    assert _plan.last_run("conv2d_backward_data")["algorithm"] == "gemm"
    one_by_one = np.concatenate([
        fastconv.conv2d_backward(dy[i:i + 1], x[i:i + 1], w)[0] for i in range(case.N)])
    np.testing.assert_array_equal(dx, one_by_one)
    (rdx, _, _), (sdx, _, _) = conv_oracle_backward(case, dtype)
    assert_close(dx, rdx, sdx, dtype, case.len_dx, f"conv2d dx streamed [{isa}]")


# The weight gradient's reduction runs over every pixel of the batch, in
# blocks that span images (small maps: 35, 72 and 144 pixels here).  A 1x1's
# B panels are blocks of x transposed as they lie (several panels of
# channels: 70 and 40 of them); other shapes gather col(x)^T.
@pytest.mark.parametrize("case", [ConvCase(3, 70, 5, 7, 20, 1, 1),
                                  ConvCase(4, 40, 12, 12, 30, 1, 1),
                                  ConvCase(3, 5, 9, 8, 12, 3, 3, 1, 1, 1, 1)], ids=str)
def test_gemm_weight_gradient_blocks_span_images(case, dtype, isa, threads, force):
    force("gemm")
    _check_weight_gradient(case, dtype, isa, "gemm")
