"""Shared fixtures and helpers for the fastconv test suite.

- ``isa``: runs a test once per instruction-set path this machine and build can
  execute (only the forced one when FASTCONV_ISA is set in the environment).
- ``threads``: runs a test at 1 and at 2 threads.
- ``dtype``: float32 and float64.
- ``assert_close``: error bound per dtype, scaled by the reduction length.
- the shape cases (``ConvCase``, ``PoolCase``, ``LinearCase``) and seeded inputs.
- the ``large`` marker: skipped unless ``--run-large`` is given.
"""

import dataclasses
import math
import os
import sys
import zlib

import numpy as np
import pytest

# Test modules import `reference` and `conftest` by name; make that work
# whether or not tests/ is collected as a package.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastconv  # noqa: E402
from fastconv import _config  # noqa: E402

import reference as ref  # noqa: E402

# --------------------------------------------------------------- options

def pytest_addoption(parser):
    parser.addoption("--run-large", action="store_true", default=False,
                     help="run tests marked `large` (tensors over 2**31 elements)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "large: needs many GiB of memory and minutes; run with --run-large")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-large"):
        return
    skip = pytest.mark.skip(reason="large test: pass --run-large to run it")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


# -------------------------------------------------------------- fixtures

def _isas_under_test():
    isas = list(_config.available_isas())
    forced = os.environ.get("FASTCONV_ISA")
    # A run with FASTCONV_ISA set is meant to exercise that one path.
    if forced and forced in isas:
        return [forced]
    return isas


ISAS = _isas_under_test()
DTYPES = [np.float32, np.float64]
THREADS = [1, 2]


@pytest.fixture(params=ISAS)
def isa(request):
    with _config.using_isa(request.param):
        yield request.param


@pytest.fixture(params=THREADS, ids=lambda n: f"t{n}")
def threads(request):
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        fastconv.set_num_threads(before)


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


# ------------------------------------------------------------ tolerances

# Rounding error of a sum of L products, measured against the sum of the
# absolute values of its terms S, stays below about 2*eps*S for sequential
# float accumulation even at L = 10**4 (and grows like sqrt(L) when all terms
# have one sign).  3*eps*sqrt(L)*S leaves room for any summation order a
# blocked, threaded GEMM may use (on every path the worst error seen is about
# a quarter of it) and is about 1e-5 * S for float32 at L = 700.
TOL_C = 3.0


def tolerance(dtype, reduction_len):
    """Allowed |error| / (sum of |terms|) for a reduction of this length."""
    return TOL_C * np.finfo(dtype).eps * math.sqrt(max(int(reduction_len), 1))


def assert_close(actual, expected, scale, dtype, reduction_len, what="result"):
    """|actual - expected| <= tolerance(dtype, L) * scale, element-wise.

    `expected` is the float64 oracle evaluated on the very inputs (already
    rounded to `dtype`) that fastconv saw; `scale` is the oracle evaluated on
    absolute values, i.e. the sum of |terms| behind every output element.
    NaN is expected exactly where the oracle has NaN.
    """
    dtype = np.dtype(dtype)
    assert isinstance(actual, np.ndarray), f"{what}: got {type(actual).__name__}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    a = actual.astype(np.float64)
    nan_exp = np.isnan(expected)
    assert np.array_equal(np.isnan(a), nan_exp), f"{what}: NaN at different places"
    a, e, s = a[~nan_exp], expected[~nan_exp], np.asarray(scale, dtype=np.float64)
    s = np.broadcast_to(s, expected.shape)[~nan_exp]
    inf = np.isinf(e)
    assert np.array_equal(a[inf], e[inf]), f"{what}: infinities differ"
    a, e, s = a[~inf], e[~inf], s[~inf]
    if a.size == 0:
        return
    tol = tolerance(dtype, reduction_len)
    err = np.abs(a - e)
    bound = tol * s
    bad = err > bound
    if bad.any():
        i = int(np.argmax(err - bound))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {a.size} elements outside the {dtype.name} "
            f"bound (L={reduction_len}, tol={tol:.3g}*scale); worst: got {float(a[i])!r}, "
            f"expected {float(e[i])!r}, |err|={err[i]:.3g} > {bound[i]:.3g}")


def assert_exact(actual, expected, dtype, what="result"):
    """For ops that do no arithmetic (max pooling, relu): bitwise the oracle."""
    dtype = np.dtype(dtype)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    np.testing.assert_array_equal(actual, expected.astype(dtype), err_msg=what)


def assert_fresh_output(y, *inputs):
    """Outputs are new, writeable, C-contiguous arrays that alias no input."""
    assert isinstance(y, np.ndarray)
    assert y.flags.c_contiguous, "output is not C-contiguous"
    assert y.flags.writeable, "output is read-only"
    for a in inputs:
        if isinstance(a, np.ndarray):
            assert not np.shares_memory(y, a), "output shares memory with an input"


# ---------------------------------------------------------------- inputs

def seed_of(*key):
    """A stable seed from any repr-able key (hash() of str is salted)."""
    return zlib.crc32(repr(key).encode())


def randn(shape, dtype, *key):
    """Seeded standard-normal data, rounded to dtype."""
    rng = np.random.default_rng(seed_of(shape, *key))
    return rng.standard_normal(shape).astype(dtype)


_memo = {}


def memo(key, compute):
    """Cache oracle results: every case runs on several ISAs and thread counts
    with the same inputs, and the oracle is the slow part."""
    if key not in _memo:
        _memo[key] = compute()
    return _memo[key]


def _abs(a):
    return None if a is None else np.abs(a)


def conv_oracle_forward(case, dtype, activation=None):
    """The oracle's y for a ConvCase, and its scale (the sum of |terms|)."""
    def compute():
        x, w, b, _ = case.inputs(dtype)
        y = ref.conv2d(x, w, b, case.stride, case.padding, activation=activation)
        # relu does not increase an error, so the bound of the plain sum holds.
        scale = ref.conv2d(np.abs(x), np.abs(w), _abs(b), case.stride, case.padding)
        return y, scale
    return memo(("conv2d", case, np.dtype(dtype).name, activation), compute)


def conv_oracle_backward(case, dtype):
    """The oracle's (dx, dw, db) for a ConvCase, and their scales."""
    def compute():
        x, w, _, dy = case.inputs(dtype)
        exact = ref.conv2d_backward(dy, x, w, case.stride, case.padding)
        scale = ref.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), case.stride, case.padding)
        return exact, scale
    return memo(("conv2d_backward", case, np.dtype(dtype).name), compute)


# ----------------------------------------------------------------- cases

@dataclasses.dataclass(frozen=True)
class ConvCase:
    N: int
    C: int
    H: int
    W: int
    K: int
    FH: int
    FW: int
    SH: int = 1
    SW: int = 1
    PH: int = 0
    PW: int = 0
    bias: bool = True

    @property
    def H2(self):
        return ref.out_len(self.H, self.FH, self.SH, self.PH)

    @property
    def W2(self):
        return ref.out_len(self.W, self.FW, self.SW, self.PW)

    @property
    def exact(self):
        """Whether the formula divides exactly (strict=True accepts it)."""
        return ((self.H - self.FH + 2 * self.PH) % self.SH == 0
                and (self.W - self.FW + 2 * self.PW) % self.SW == 0)

    @property
    def stride(self):
        return (self.SH, self.SW)

    @property
    def padding(self):
        return (self.PH, self.PW)

    @property
    def x_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def w_shape(self):
        return (self.K, self.C, self.FH, self.FW)

    @property
    def y_shape(self):
        return (self.N, self.K, self.H2, self.W2)

    @property
    def len_fwd(self):
        return self.C * self.FH * self.FW + self.bias

    @property
    def len_dx(self):
        # How many (k, tap) pairs can reach one input pixel.
        return self.K * -(-self.FH // self.SH) * -(-self.FW // self.SW)

    @property
    def len_dw(self):
        return self.N * self.H2 * self.W2

    def __str__(self):
        s = (f"n{self.N}c{self.C}h{self.H}w{self.W}k{self.K}f{self.FH}x{self.FW}"
             f"s{self.SH}x{self.SW}p{self.PH}x{self.PW}")
        return s if self.bias else s + "nobias"

    def inputs(self, dtype):
        dtype = np.dtype(dtype)
        x = randn(self.x_shape, dtype, str(self), "x")
        w = randn(self.w_shape, dtype, str(self), "w")
        b = randn((self.K,), dtype, str(self), "b") if self.bias else None
        dy = randn(self.y_shape, dtype, str(self), "dy")
        return x, w, b, dy


@dataclasses.dataclass(frozen=True)
class PoolCase:
    N: int
    C: int
    H: int
    W: int
    KH: int
    KW: int
    SH: int = None  # None: the stride defaults to the kernel size
    SW: int = None
    PH: int = 0
    PW: int = 0

    @property
    def kernel(self):
        return (self.KH, self.KW)

    @property
    def stride(self):
        return None if self.SH is None else (self.SH, self.SW)

    @property
    def padding(self):
        return (self.PH, self.PW)

    @property
    def steps(self):
        return (self.KH, self.KW) if self.SH is None else (self.SH, self.SW)

    @property
    def H2(self):
        return ref.out_len(self.H, self.KH, self.steps[0], self.PH)

    @property
    def W2(self):
        return ref.out_len(self.W, self.KW, self.steps[1], self.PW)

    @property
    def exact(self):
        sh, sw = self.steps
        return ((self.H - self.KH + 2 * self.PH) % sh == 0
                and (self.W - self.KW + 2 * self.PW) % sw == 0)

    @property
    def x_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def y_shape(self):
        return (self.N, self.C, self.H2, self.W2)

    @property
    def overlap(self):
        """How many windows can cover one input pixel."""
        sh, sw = self.steps
        return -(-self.KH // sh) * -(-self.KW // sw)

    def __str__(self):
        st = "sNone" if self.SH is None else f"s{self.SH}x{self.SW}"
        return (f"n{self.N}c{self.C}h{self.H}w{self.W}k{self.KH}x{self.KW}"
                f"{st}p{self.PH}x{self.PW}")

    def inputs(self, dtype):
        x = randn(self.x_shape, dtype, str(self), "x")
        dy = randn(self.y_shape, dtype, str(self), "dy")
        return x, dy


@dataclasses.dataclass(frozen=True)
class LinearCase:
    N: int
    feat: tuple  # the per-sample shape of x; flattened to D
    O: int
    bias: bool = True

    @property
    def D(self):
        return math.prod(self.feat)

    @property
    def x_shape(self):
        return (self.N,) + tuple(self.feat)

    def __str__(self):
        f = "x".join(map(str, self.feat))
        return f"n{self.N}d{f}o{self.O}" + ("" if self.bias else "nobias")

    def inputs(self, dtype):
        x = randn(self.x_shape, dtype, str(self), "x")
        w = randn((self.O, self.D), dtype, str(self), "w")
        b = randn((self.O,), dtype, str(self), "b") if self.bias else None
        dy = randn((self.N, self.O), dtype, str(self), "dy")
        return x, w, b, dy


def random_conv_case(rng, exact=True, max_hw=11):
    """A random small conv geometry: rectangular kernel, per-axis stride and
    padding (padding may reach the kernel size), odd sizes.  With exact=True
    the formula divides exactly; otherwise it usually floors."""
    fh, fw = (int(v) for v in rng.integers(1, 6, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    ph, pw = int(rng.integers(0, fh + 1)), int(rng.integers(0, fw + 1))

    def size(f, s, p):
        for _ in range(100):
            if exact:
                n2 = int(rng.integers(1, max_hw))
                n = (n2 - 1) * s + f - 2 * p
            else:
                n = int(rng.integers(1, max_hw + 4))
            if 1 <= n and n + 2 * p >= f:
                return n
        return f  # kernel equal to the input always fits

    return ConvCase(N=int(rng.integers(1, 4)), C=int(rng.integers(1, 7)),
                    H=size(fh, sh, ph), W=size(fw, sw, pw), K=int(rng.integers(1, 20)),
                    FH=fh, FW=fw, SH=sh, SW=sw, PH=ph, PW=pw,
                    bias=bool(rng.random() < 0.8))


def random_pool_case(rng, exact=True, max_hw=12):
    """A random pooling geometry with padding <= kernel // 2 per axis."""
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    default_stride = rng.random() < 0.25
    sh, sw = (kh, kw) if default_stride else (int(v) for v in rng.integers(1, 4, 2))
    ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))

    def size(k, s, p):
        for _ in range(100):
            if exact:
                n = (int(rng.integers(1, max_hw)) - 1) * s + k - 2 * p
            else:
                n = int(rng.integers(1, max_hw + 4))
            if 1 <= n and n + 2 * p >= k:
                return n
        return k

    return PoolCase(N=int(rng.integers(1, 4)), C=int(rng.integers(1, 6)),
                    H=size(kh, sh, ph), W=size(kw, sw, pw), KH=kh, KW=kw,
                    SH=None if default_stride else sh, SW=None if default_stride else sw,
                    PH=ph, PW=pw)


def case_ids(cases):
    return [str(c) for c in cases]


def run_python(code, timeout=300, **env_vars):
    """Run ``code`` in a fresh interpreter that imports this same fastconv.

    The child starts in the directory that holds the imported package, so an
    unbuilt source tree in the current directory cannot shadow an installed
    fastconv (and an in-place build is found when that is what runs)."""
    import subprocess

    home = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTCONV_ISA", "FASTCONV_NUM_THREADS")}
    env["PYTHONPATH"] = home + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=home)


def inputs_never_written(arrays):
    """An autouse fixture checking that no test modifies any of ``arrays``."""

    @pytest.fixture(autouse=True)
    def _guard():
        before = [a.copy() for a in arrays]
        yield
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b, err_msg="an input array was modified")

    return _guard


def conv_pads(padding, kernel, dilation):
    """((top, bottom), (left, right)) of a convolution's padding argument, as
    fastconv reads it ('same' puts an odd total's extra row at the end)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        t = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (t[0] // 2, t[0] - t[0] // 2), (t[1] // 2, t[1] - t[1] // 2)
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        return padding
    p = padding if isinstance(padding, tuple) else (padding, padding)
    return (p[0], p[0]), (p[1], p[1])
