"""Pooling on narrow planes: with AVX-512, planes whose padded row fits in
two vectors take their own forward and max-backward kernels
(src/fc_pool_small.inc).  It must
give the row kernels' bits exactly -- infinities and signed zeros included,
and for max pooling the payload of the NaN that wins -- and the oracle's
values.

The reference for the bits is the AVX2 instance of the row kernels (the one
the AVX-512 level ran before); where AVX-512 is not available these tests
are skipped, and test_pool.py covers the other paths."""

import numpy as np
import pytest

import fastconv
from fastconv import _config

import reference as ref

F = fastconv

needs_avx512 = pytest.mark.skipif(
    not {"avx2", "avx512"} <= set(_config.available_isas()),
    reason="needs both the AVX2 and the AVX-512 paths")

# (N, C, H, W, kernel, stride, padding, ceil_mode): widths around the
# kernel's limits (two vectors of input, one of output) for both dtypes
GEOMS = [
    (3, 5, 27, 27, 3, 2, 0, False),     # the odd 3x3 s2 of AlexNet-like nets
    (2, 3, 32, 32, 2, 2, 0, False),     # CS231n: 16 outputs a row
    (2, 4, 31, 29, 3, 2, 1, False),     # ResNet's stem pool on a small plane
    (2, 3, 9, 11, 3, 2, 1, True),       # ceil_mode: the last window runs past
    (1, 2, 16, 16, 3, 1, 1, False),     # stride 1, 16 outputs a row
    (2, 2, 7, 7, 3, 1, 1, False),
    (1, 3, 13, 15, 1, 2, 0, False),     # 1x1 subsampling
    (2, 2, 8, 30, (2, 5), (1, 2), (0, 2), False),
    (1, 2, 5, 17, (3, 4), (2, 3), (1, 1), True),
    (2, 3, 40, 12, 3, 3, 0, False),     # stride 3
    (1, 1, 6, 6, (3, 6), (1, 1), (1, 0), False),  # window as wide as the plane
]


def _planes(shape, dtype, seed):
    """Random values with NaNs of distinct payloads, infinities of both
    signs and zeros of both signs sprinkled in."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    n = flat.size
    bits = flat.view(np.uint32 if dtype == np.float32 else np.uint64)
    for i, k in enumerate(rng.choice(n, size=max(1, n // 40), replace=False)):
        if dtype == np.float32:
            bits[k] = np.uint32(0x7FC00000 | (i + 1)) | np.uint32(0x80000000 * (i % 2))
        else:
            bits[k] = np.uint64(0x7FF8000000000000 | (i + 1))
    flat[rng.choice(n, size=max(1, n // 50), replace=False)] = np.inf
    flat[rng.choice(n, size=max(1, n // 50), replace=False)] = -np.inf
    flat[rng.choice(n, size=max(1, n // 30), replace=False)] = -0.0
    flat[rng.choice(n, size=max(1, n // 30), replace=False)] = 0.0
    return x


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _on(isa, fn):
    with _config.using_isa(isa):
        return fn()


def _ids(geoms):
    return ["x".join(str(v) for v in g[:4]) + f"-k{g[4]}s{g[5]}p{g[6]}{'-ceil' if g[7] else ''}"
            .replace(" ", "") for g in geoms]


@needs_avx512
@pytest.mark.parametrize("geom", GEOMS, ids=_ids(GEOMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_max_narrow_bits(geom, dtype):
    N, C, H, W, k, s, p, ceil = geom
    x = _planes((N, C, H, W), dtype, 11)
    run = lambda: F.max_pool2d(x, k, s, p, ceil_mode=ceil, strict=False)
    assert np.array_equal(_bits(_on("avx512", run)), _bits(_on("avx2", run)))


@needs_avx512
@pytest.mark.parametrize("geom", GEOMS, ids=_ids(GEOMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cip,divisor", [(True, None), (False, None), (True, 5)],
                         ids=["include-pad", "exclude-pad", "divisor5"])
def test_avg_narrow_bits(geom, dtype, cip, divisor):
    N, C, H, W, k, s, p, ceil = geom
    x = _planes((N, C, H, W), dtype, 12)
    run = lambda: F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip,
                               divisor_override=divisor, strict=False)
    _same_but_nan_payloads(_on("avx512", run), _on("avx2", run))


def _same_but_nan_payloads(got, want):
    """Which payload a sum of two NaNs carries is the hardware's pick of an
    operand, and compilers may swap an addition's operands: the row kernels'
    own instances (generic, AVX2) differ there already.  Every other bit must
    match."""
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(_bits(got)[~nan], _bits(want)[~nan])


@needs_avx512
@pytest.mark.parametrize("geom", GEOMS, ids=_ids(GEOMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("data", ["specials", "ties"])
def test_max_backward_narrow_bits(geom, dtype, data):
    """The gradient goes to each window's first maximum in row-major order
    (ties of equal values, of -inf against the padding and of NaNs
    included), and overlapping windows add into dx in row-major order."""
    N, C, H, W, k, s, p, ceil = geom
    if data == "ties":
        rng = np.random.default_rng(15)
        x = rng.integers(-2, 3, (N, C, H, W)).astype(dtype)
        x[rng.random(x.shape) < 0.05] = -np.inf
        x[rng.random(x.shape) < 0.03] = np.nan
    else:
        x = _planes((N, C, H, W), dtype, 16)
    y = F.max_pool2d(x, k, s, p, ceil_mode=ceil, strict=False)
    dy = _planes(y.shape, dtype, 17)
    run = lambda: F.max_pool2d_backward(dy, x, k, s, p, ceil_mode=ceil, strict=False)
    _same_but_nan_payloads(_on("avx512", run), _on("avx2", run))


@needs_avx512
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_narrow_against_oracle(dtype):
    """Finite inputs: the values of the slow reference."""
    rng = np.random.default_rng(13)
    for N, C, H, W, k, s, p, ceil in GEOMS:
        if ceil:
            continue
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        kk, ss, pp = (v if isinstance(v, tuple) else (v, v) for v in (k, s, p))
        got = _on("avx512", lambda: F.max_pool2d(x, kk, ss, pp, strict=False))
        np.testing.assert_array_equal(got, ref.max_pool2d(x, kk, ss, pp)[..., :got.shape[2],
                                                                         :got.shape[3]])
        y = _on("avx512", lambda: F.max_pool2d(x, kk, ss, pp, strict=False))
        dy = rng.standard_normal(y.shape).astype(dtype)
        got = _on("avx512", lambda: F.max_pool2d_backward(dy, x, kk, ss, pp, strict=False))
        want = ref.max_pool2d_backward(dy, x, kk, ss, pp)
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        got = _on("avx512", lambda: F.avg_pool2d(x, kk, ss, pp, strict=False))
        want = ref.avg_pool2d(x, kk, ss, pp, True)[..., :got.shape[2], :got.shape[3]]
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@needs_avx512
def test_narrow_takes_both_threads():
    """Enough planes for two threads: each plane is one thread's, the bits
    the same as on one thread."""
    x = _planes((64, 96, 27, 27), np.float32, 14)
    with _config.using_isa("avx512"):
        before = F.get_num_threads()
        try:
            F.set_num_threads(1)
            one = F.max_pool2d(x, 3, 2)
            F.set_num_threads(2)
            two = F.max_pool2d(x, 3, 2)
        finally:
            F.set_num_threads(before)
    assert np.array_equal(_bits(one), _bits(two))
