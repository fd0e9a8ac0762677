"""fastconv.dask: ops and module forwards over chunked dask arrays give the
in-memory result -- the same bits, for pooling and for every convolution
algorithm -- for chunks along the batch, the height and the width; modules pickle; the
LocalCluster example runs."""

import itertools
import os
import pickle

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import fastconv  # noqa: E402
import fastconv.dask as fd  # noqa: E402
from fastconv.modules import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d,  # noqa: E402
                              Conv2d, ConvTranspose2d, Flatten, Linear, LPPool2d, MaxPool2d,
                              ReLU, Sequential)

from conftest import randn, run_python  # noqa: E402

DTYPES = [np.float32, np.float64]

# Chunk heights / widths: one chunk, chunks smaller than most halos (merged),
# ragged chunks, and chunks of one row.
CHUNKINGS = [(-1, -1), (5, 7), (1, 3), (8, 4), (3, 11)]

# x shape, kernel, stride, padding, strict
WINDOWS = [
    ((2, 3, 17, 19), (3, 3), (1, 1), (1, 1), True),
    ((3, 2, 20, 23), (3, 3), (2, 2), (1, 1), False),
    ((1, 4, 31, 16), (5, 3), (3, 2), (2, 1), False),
    ((2, 1, 12, 12), (2, 2), (2, 2), (0, 0), True),
    ((1, 2, 9, 14), (4, 1), (1, 3), (0, 0), False),
    ((2, 8, 10, 9), (1, 1), (1, 1), (0, 0), True),
    ((3, 4, 6, 6), (6, 6), (1, 1), (0, 0), True),
]


def as_dask(x, chunks, batch_chunk=1):
    return da.from_array(x, chunks=(batch_chunk, x.shape[1]) + tuple(
        c if c > 0 else s for c, s in zip(chunks, x.shape[2:])))


def bitwise(a, b, what=""):
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), \
        f"{what}: {int((a != b).sum())} of {a.size} elements differ"



# ------------------------------------------------------------------ pooling

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_pooling_is_bitwise_the_in_memory_result(window, dtype):
    shape, k, s, p, strict = window
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        pytest.skip("pooling padding is at most half the kernel")
    x = randn(shape, dtype, "pool", window)
    for chunks in CHUNKINGS:
        xd = as_dask(x, chunks)
        what = f"{window} chunks {chunks}"
        bitwise(fd.max_pool2d(xd, k, s, p, strict=strict).compute(),
                fastconv.max_pool2d(x, k, s, p, strict=strict), "max " + what)
        for cip in (True, False):
            bitwise(fd.avg_pool2d(xd, k, s, p, count_include_pad=cip, strict=strict).compute(),
                    fastconv.avg_pool2d(x, k, s, p, count_include_pad=cip, strict=strict),
                    f"avg cip={cip} " + what)


# x shape, kernel, stride, padding, dilation, ceil_mode
POOL_OPTIONS = [
    ((2, 3, 19, 17), 3, 2, 1, 2, False),
    ((1, 2, 21, 20), 2, 2, 0, 1, True),
    ((2, 2, 18, 23), (3, 2), (2, 3), (1, 1), (1, 2), True),
    ((1, 3, 17, 16), 3, 2, 1, 1, True),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", POOL_OPTIONS, ids=str)
def test_pooling_options_are_bitwise_the_in_memory_result(case, dtype):
    shape, k, s, p, d, cm = case
    x = randn(shape, dtype, "pool options", case)
    for chunks in CHUNKINGS:
        xd = as_dask(x, chunks)
        what = f"{case} chunks {chunks}"
        bitwise(fd.max_pool2d(xd, k, s, p, d, cm, strict=False).compute(),
                fastconv.max_pool2d(x, k, s, p, d, cm, strict=False), "max " + what)
        if d != 1:
            continue
        for cip, div in ((True, None), (False, None), (True, 7)):
            bitwise(fd.avg_pool2d(xd, k, s, p, cm, cip, div, strict=False).compute(),
                    fastconv.avg_pool2d(x, k, s, p, cm, cip, div, strict=False),
                    f"avg cip={cip} divisor={div} " + what)


def test_pool_modules_with_options():
    net = Sequential(MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True, strict=False),
                     AvgPool2d(2, ceil_mode=True, divisor_override=3, strict=False))
    x = randn((3, 2, 23, 19), np.float64, "pool modules")
    ref = net(x)
    for chunks in CHUNKINGS:
        bitwise(fd.forward(net, as_dask(x, chunks)).compute(), ref, f"chunks {chunks}")
    with pytest.raises(ValueError, match="divisor_override"):
        fd.avg_pool2d(as_dask(x, (5, 7)), 2, divisor_override=0, strict=False)


def test_a_block_the_size_of_the_window_pools_like_the_array():
    # The core pools a plane exactly the window's size as one reduction;
    # a 3x3 block of a larger array must still sum as its windows do.
    x = randn((3, 1, 17, 30), np.float32, "global")
    xd = da.from_array(x, chunks=(1, 1, 3, 3))
    bitwise(fd.avg_pool2d(xd, 3, 2, strict=False).compute(),
            fastconv.avg_pool2d(x, 3, 2, strict=False))
    x = randn((2, 2, 3, 3), np.float64, "whole plane")
    bitwise(fd.avg_pool2d(da.from_array(x, chunks=(1, 2, 3, 3)), 3).compute(),
            fastconv.avg_pool2d(x, 3))


# -------------------------------------------------------------- convolution

CONV_ALGORITHMS = ["grouped", "kvec", "lanes", "direct", "gemm_t", "gemm"]


def test_every_forward_algorithm_is_covered():
    # an algorithm computes conv2d when the planner accepts it for some shape
    forward = set()
    for name in fastconv.algorithms():
        for xs, ws in [((16, 32, 7, 7), (64, 32, 3, 3)), ((1, 3, 30, 30), (8, 3, 3, 3))]:
            try:
                fastconv.plan("conv2d", xs, ws, dtype="float32", padding=1, algorithm=name)
                forward.add(name)
            except ValueError:
                pass
    assert forward == set(CONV_ALGORITHMS)


@pytest.mark.parametrize("algorithm", CONV_ALGORITHMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_conv2d_is_bitwise_for_every_algorithm(window, dtype, algorithm):
    shape, k, s, p, strict = window
    x = randn(shape, dtype, "conv x", window)
    w = randn((5, shape[1]) + k, dtype, "conv w", window)
    b = randn((5,), dtype, "conv b", window)
    try:
        ref = fastconv.conv2d(x, w, b, s, p, strict=strict, algorithm=algorithm)
    except ValueError:
        pytest.skip(f"{algorithm} does not serve this shape")
    for chunks in CHUNKINGS:
        for batch_chunk in (1, 2):
            xd = as_dask(x, chunks, batch_chunk)
            got = fd.conv2d(xd, w, b, s, p, strict=strict, algorithm=algorithm).compute()
            bitwise(got, ref, f"{algorithm} {window} chunks {chunks}/{batch_chunk}")
    relu = fastconv.conv2d(x, w, b, s, p, strict=strict, algorithm=algorithm,
                           activation="relu")
    bitwise(fd.conv2d(as_dask(x, (5, 7)), w, b, s, p, strict=strict, algorithm=algorithm,
                      activation="relu").compute(), relu, "relu")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_conv2d_with_the_planned_algorithm(window, dtype):
    shape, k, s, p, strict = window
    x = randn(shape, dtype, "conv x", window)
    w = randn((6, shape[1]) + k, dtype, "conv w", window)
    ref = fastconv.conv2d(x, w, None, s, p, strict=strict)
    for chunks in CHUNKINGS:
        got = fd.conv2d(as_dask(x, chunks, 2), w, None, s, p, strict=strict).compute()
        bitwise(got, ref, f"{window} chunks {chunks}")
        if chunks == (-1, -1):   # one call per batch chunk: the array's own shapes
            assert got.shape == ref.shape


def test_output_chunks_follow_the_input():
    x = da.zeros((4, 3, 64, 48), chunks=(2, 3, 16, 16))
    y = fd.conv2d(x, np.ones((8, 3, 3, 3)), stride=2, padding=1, strict=False)
    assert y.chunks == ((2, 2), (8,), (8, 8, 8, 8), (8, 8, 8))
    y = fd.max_pool2d(x, 2)
    assert y.chunks == ((2, 2), (3,), (8, 8, 8, 8), (8, 8, 8))
    # chunks not on a stride multiple start at the next one
    x = da.zeros((1, 1, 30, 30), chunks=(1, 1, 7, 30))
    assert fd.conv2d(x, np.ones((1, 1, 3, 3)), stride=3, strict=False).chunks[2] == \
        (3, 2, 2, 3)


def test_conv2d_checks_eagerly():
    x = da.zeros((2, 3, 8, 8), chunks=(1, 3, 4, 4))
    with pytest.raises(fastconv.ShapeError, match="fastconv.dask.conv2d: height"):
        fd.conv2d(x, np.ones((4, 3, 3, 3)), stride=2)
    with pytest.raises(ValueError, match="x has 3 channels"):
        fd.conv2d(x, np.ones((4, 2, 3, 3)))
    with pytest.raises(TypeError, match="x must be a dask array"):
        fd.conv2d(np.zeros((2, 3, 8, 8)), np.ones((4, 3, 3, 3)))
    with pytest.raises(TypeError, match="has dtype bool"):
        fd.max_pool2d(x > 0, 2)
    with pytest.raises(ValueError, match="algorithm 'nope'|unknown algorithm"):
        fd.conv2d(x, np.ones((4, 3, 3, 3)), algorithm="nope")


# ---------------------------------------------------- transposed convolution

def transpose_oracle(x, w, b, stride, padding, output_padding):
    """Each input pixel scattered through the kernel, in float64."""
    N, Ci, H, W = x.shape
    _, Co, FH, FW = w.shape
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
    full = np.zeros((N, Co, (H - 1) * sh + FH + oh, (W - 1) * sw + FW + ow))
    for i, j in itertools.product(range(H), range(W)):
        full[:, :, i * sh:i * sh + FH, j * sw:j * sw + FW] += np.einsum(
            "nc,cokl->nokl", x[:, :, i, j].astype(np.float64), w.astype(np.float64))
    y = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


# x shape, w shape, stride, padding, dilation, groups
CONV_OPTIONS = [
    ((2, 4, 19, 17), (6, 2, 3, 3), (1, 1), 2, 2, 2),
    ((1, 6, 21, 16), (6, 1, 3, 3), (2, 2), 1, 1, 6),             # depthwise
    ((2, 32, 13, 15), (32, 4, 3, 3), (1, 1), 1, 1, 8),           # small groups: grouped
    ((1, 24, 11, 9), (12, 6, 3, 3), (1, 1), ((1, 0), (2, 1)), 1, 4),
    ((2, 3, 15, 18), (4, 3, 4, 3), (1, 1), "same", (1, 2), 1),
    ((1, 4, 17, 20), (4, 2, 3, 5), (2, 1), ((2, 0), (1, 3)), (2, 1), 2),
    ((2, 3, 16, 13), (5, 3, 2, 2), (1, 1), "valid", 3, 1),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CONV_OPTIONS, ids=str)
def test_conv2d_dilation_groups_and_padding_forms(case, dtype):
    xs, ws, s, p, d, g = case
    x, w, b = randn(xs, dtype, "ox", case), randn(ws, dtype, "ow", case), \
        randn(ws[:1], dtype, "ob", case)
    ref = fastconv.conv2d(x, w, b, s, p, strict=False, dilation=d, groups=g)
    for chunks in CHUNKINGS:
        got = fd.conv2d(as_dask(x, chunks, 2), w, b, s, p, strict=False, dilation=d,
                        groups=g).compute()
        bitwise(got, ref, f"{case} chunks {chunks}")


# x shape, w shape, stride, padding, output_padding, groups, dilation
TRANSPOSE_OPTIONS = [
    ((2, 4, 9, 11), (4, 3, 3, 3), (2, 2), (1, 1), (1, 0), 2, 1),
    ((1, 3, 10, 8), (3, 2, 3, 2), (1, 2), (1, 0), (0, 1), 1, (2, 3)),
    ((1, 6, 9, 9), (6, 1, 3, 3), (2, 2), (0, 0), (1, 1), 6, 2),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSPOSE_OPTIONS, ids=str)
def test_conv_transpose2d_groups_and_dilation(case, dtype):
    xs, ws, s, p, op, g, d = case
    x, w = randn(xs, dtype, "tox", case), randn(ws, dtype, "tow", case)
    b = randn((ws[1] * g,), dtype, "tob", case)
    ref = fastconv.conv_transpose2d(x, w, b, s, p, op, g, d)
    for chunks in CHUNKINGS:
        got = fd.conv_transpose2d(as_dask(x, chunks), w, b, s, p, op, g, d).compute()
        bitwise(got, ref, f"{case} chunks {chunks}")


def test_module_forward_with_dilation_and_groups():
    net = Sequential(Conv2d(4, 8, 3, padding="same", dilation=2, groups=4, seed=5), ReLU(),
                     Conv2d(8, 6, 3, stride=2, padding=((1, 0), (0, 1)), groups=2, seed=6,
                            strict=False))
    x = randn((3, 4, 17, 15), np.float32, "dg net")
    ref = net(x)
    for chunks in CHUNKINGS:
        bitwise(fd.forward(net, as_dask(x, chunks, 2)).compute(), ref, f"chunks {chunks}")


TRANSPOSES = [  # x shape, w shape, stride, padding, output_padding
    ((2, 3, 9, 11), (3, 4, 3, 3), (2, 2), (1, 1), (1, 0)),
    ((1, 2, 13, 7), (2, 3, 4, 2), (3, 1), (0, 0), (2, 0)),
    ((2, 4, 8, 8), (4, 2, 1, 1), (1, 1), (0, 0), (0, 0)),
    ((1, 3, 10, 10), (3, 2, 5, 5), (2, 2), (3, 3), (0, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSPOSES, ids=str)
def test_conv_transpose2d(case, dtype):
    xs, ws, s, p, op = case
    x, w, b = randn(xs, dtype, "tx", case), randn(ws, dtype, "tw", case), \
        randn(ws[1:2], dtype, "tb", case)
    ref = fastconv.conv_transpose2d(x, w, b, s, p, op)
    oracle = transpose_oracle(x, w, b, s, p, op)
    np.testing.assert_allclose(ref, oracle, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
    for chunks in CHUNKINGS:
        got = fd.conv_transpose2d(as_dask(x, chunks), w, b, s, p, op).compute()
        bitwise(got, ref, f"{case} chunks {chunks}")


# ------------------------------------------------------------------ modules

def small_net(dtype=np.float32):
    return Sequential(Conv2d(3, 6, 3, padding=1, seed=1, dtype=dtype), ReLU(),
                      MaxPool2d(3, 2, 1, strict=False), Conv2d(6, 4, 3, stride=2, seed=2,
                                                              dtype=dtype, strict=False),
                      ReLU(), AvgPool2d(2, count_include_pad=False), Flatten(),
                      Linear(16, 5, seed=3, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_module_forward(dtype):
    net = small_net(dtype)
    x = randn((5, 3, 20, 20), np.float64, "net x")   # converted to the layers' dtype
    ref = net(x)
    net2 = small_net(dtype)       # never run in memory: dask must leave no cache
    for chunks in CHUNKINGS:
        got = fd.forward(net2, as_dask(x, chunks, 2)).compute()
        bitwise(got, ref, f"chunks {chunks}")
    assert all(getattr(layer, "_x", None) is None for layer in net2)


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_forward_without_convolutions_is_bitwise(scheduler):
    import dask
    net = Sequential(ReLU(), MaxPool2d(3, 2, 1, strict=False), AvgPool2d(2), Flatten())
    x = randn((4, 2, 15, 15), np.float32, "pools")
    with dask.config.set(scheduler=scheduler):
        for chunks in CHUNKINGS:
            bitwise(fd.forward(net, as_dask(x, chunks)).compute(), net(x), f"chunks {chunks}")


def test_forward_errors_name_the_layer():
    net = Sequential(Conv2d(3, 4, 3), Conv2d(5, 4, 3))
    with pytest.raises(ValueError, match=r"Sequential\[1\] Conv2d\(5, 4, kernel_size=3\): "
                                         r"expected 5 input channels, got 4"):
        fd.forward(net, da.zeros((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="module must be a fastconv layer"):
        fd.forward(lambda x: x, da.zeros((1, 3, 8, 8)))


def every_layer():
    return [Conv2d(3, 4, 3, padding=1, seed=0), Conv2d(3, 2, (3, 1), stride=2, bias=False,
                                                          dtype=np.float64, strict=False),
            MaxPool2d(3, 2, 1, strict=False), MaxPool2d(2), AvgPool2d(3, 1, 1, False),
            ReLU(), Flatten(), Linear(12, 5, seed=0), small_net(),
            ConvTranspose2d(3, 2, 2, stride=2, seed=0), LPPool2d(2, 2), AdaptiveAvgPool2d(3),
            AdaptiveMaxPool2d((2, 3)), Conv2d(3, 6, 3, padding="same", dilation=2, groups=3,
                                              seed=1)]


@pytest.mark.parametrize("layer", every_layer(), ids=lambda m: repr(m).split("(")[0])
def test_modules_pickle(layer):
    x = randn((2, 3, 8, 8), np.float32, "pickle")
    if isinstance(layer, Linear):
        x = x[:, :, :2, :2].reshape(2, 12)
    if isinstance(layer, Sequential):
        x = randn((2, 3, 20, 20), np.float32, "pickle net")
    copy = pickle.loads(pickle.dumps(layer))
    assert repr(copy) == repr(layer)
    assert copy.params.keys() == layer.params.keys()
    for k in layer.params:
        bitwise(copy.params[k], layer.params[k], k)
    y = layer(x)
    bitwise(copy(x), y)
    # after a forward (its cache included) and a backward
    layer.backward(np.ones_like(y))
    again = pickle.loads(pickle.dumps(layer))
    bitwise(again(x), y)
    dx = again.backward(np.ones_like(y))
    if dx is not None:
        bitwise(dx, layer.backward(np.ones_like(y)))


# ------------------------------------------------------------------ example

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "dask_cluster.py")


@pytest.mark.parametrize("mode", ["--no-processes", "--processes"])
def test_example_runs_on_a_local_cluster(mode):
    pytest.importorskip("distributed")
    code = ("import runpy, sys\n"
            f"sys.argv = ['dask_cluster.py', '--batch', '4', '--size', '24', '--chunk', '10',"
            f" '--batch-chunk', '2', '--check', '{mode}']\n"
            f"runpy.run_path({EXAMPLE!r}, run_name='__main__')\n")
    r = run_python(code, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 workers" in r.stdout and "in memory:" in r.stdout, r.stdout
