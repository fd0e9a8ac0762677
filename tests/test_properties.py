"""Property-based tests: every op and its backward against the NumPy oracle
(tests/reference.py) over random geometry, dtypes, memory layouts, thread
counts and instruction-set paths, with hypothesis shrinking a failure to a
minimal case.

The default run draws a few hundred examples in all, so CI stays fast.  For a
longer search set FASTCONV_HYPOTHESIS_EXAMPLES to the number of examples per
test, e.g.

    FASTCONV_HYPOTHESIS_EXAMPLES=5000 pytest tests/test_properties.py

and replay a reported failure with pytest's --hypothesis-seed=N.
"""

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastconv  # noqa: E402
import reference as ref  # noqa: E402
from conftest import ISAS, assert_close, assert_exact  # noqa: E402
from fastconv import _config  # noqa: E402


def examples(default):
    raw = os.environ.get("FASTCONV_HYPOTHESIS_EXAMPLES", "").strip()
    return int(raw) if raw else default


def budget(default):
    """hypothesis settings for one property: no deadline (the oracle's speed
    varies with the shape, and the suite also runs under valgrind and
    sanitizers), no example database written into the tree."""
    return settings(max_examples=examples(default), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    print_blob=True)


# ------------------------------------------------------------- strategies

isas = st.sampled_from(ISAS)
threads = st.sampled_from([1, 2])
seeds = st.integers(0, 2**32 - 1)
# (dtype of x, dtype of the other inputs): the result is float64 as soon as
# one input is.
dtype_pairs = st.sampled_from([(np.float32, np.float32), (np.float64, np.float64),
                               (np.float32, np.float64), (np.float64, np.float32)])
layouts = st.sampled_from(["c", "fortran", "reversed", "strided"])


def lay_out(a, layout):
    """The same values in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "reversed":
        flipped = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
        return flipped[(slice(None, None, -1),) * a.ndim]
    if layout == "strided":
        big = np.zeros(a.shape + (2,), a.dtype)
        big[..., 1] = a
        return big[..., 1]
    return a


class Run:
    """Set the instruction set and thread count for one example."""

    def __init__(self, isa, nthreads):
        self.isa, self.nthreads = isa, nthreads

    def __enter__(self):
        self.ctx = _config.using_isa(self.isa)
        self.ctx.__enter__()
        self.before = fastconv.get_num_threads()
        fastconv.set_num_threads(self.nthreads)

    def __exit__(self, *exc):
        fastconv.set_num_threads(self.before)
        return self.ctx.__exit__(*exc)


@st.composite
def conv_geometry(draw):
    fh, fw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # Padding may reach the kernel size: windows wholly inside the padding.
    ph, pw = draw(st.integers(0, fh)), draw(st.integers(0, fw))
    h = draw(st.integers(max(1, fh - 2 * ph), 12))
    # Wide enough now and then for several NR-column panels and ragged tails.
    w = draw(st.integers(max(1, fw - 2 * pw), 40))
    return dict(N=draw(st.integers(1, 3)), C=draw(st.integers(1, 6)), H=h, W=w,
                K=draw(st.integers(1, 33)), FH=fh, FW=fw, SH=sh, SW=sw, PH=ph, PW=pw)


@st.composite
def pool_geometry(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 14))
    w = draw(st.integers(max(1, kw - 2 * pw), 40))
    return dict(N=draw(st.integers(1, 3)), C=draw(st.integers(1, 4)), H=h, W=w,
                kernel=(kh, kw), stride=stride, padding=(ph, pw))


def values(rng, shape, dtype):
    a = rng.standard_normal(shape)
    if rng.random() < 0.2:
        # Small integers: many exact ties, which matter for max pooling.
        a = rng.integers(-3, 4, shape).astype(np.float64)
    return a.astype(dtype)


# ------------------------------------------------------------ convolution

@budget(150)
@given(g=conv_geometry(), dts=dtype_pairs, bias=st.booleans(), relu=st.booleans(),
       layout=layouts, isa=isas, nthreads=threads, seed=seeds)
def test_conv2d_matches_oracle(g, dts, bias, relu, layout, isa, nthreads, seed):
    rng = np.random.default_rng(seed)
    x = values(rng, (g["N"], g["C"], g["H"], g["W"]), dts[0])
    w = values(rng, (g["K"], g["C"], g["FH"], g["FW"]), dts[1])
    b = values(rng, (g["K"],), dts[1]) if bias else None
    stride, padding = (g["SH"], g["SW"]), (g["PH"], g["PW"])
    act = "relu" if relu else None
    with Run(isa, nthreads):
        y = fastconv.conv2d(lay_out(x, layout), lay_out(w, layout), b, stride, padding,
                            strict=False, activation=act)
    want = ref.conv2d(x, w, b, stride, padding, activation=act)
    scale = ref.conv2d(np.abs(x), np.abs(w), None if b is None else np.abs(b), stride,
                       padding)
    dtype = np.result_type(*dts)
    assert_close(y, want, scale, dtype, g["C"] * g["FH"] * g["FW"] + 1, "y")

    dy = values(rng, want.shape, dts[1])
    with Run(isa, nthreads):
        dx, dw, db = fastconv.conv2d_backward(lay_out(dy, layout), lay_out(x, layout), w,
                                              stride, padding)
    e_dx, e_dw, e_db = ref.conv2d_backward(dy, x, w, stride, padding)
    s_dx, s_dw, s_db = ref.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), stride, padding)
    pixels = g["N"] * want.shape[2] * want.shape[3]
    taps = g["K"] * -(-g["FH"] // g["SH"]) * -(-g["FW"] // g["SW"])
    assert_close(dx, e_dx, s_dx, dtype, taps, "dx")
    assert_close(dw, e_dw, s_dw, dtype, pixels, "dw")
    assert_close(db, e_db, s_db, dtype, pixels, "db")


# ---------------------------------------------------------------- pooling

@budget(150)
@given(g=pool_geometry(), dt=st.sampled_from([np.float32, np.float64]), cip=st.booleans(),
       nan=st.booleans(), layout=layouts, isa=isas, nthreads=threads, seed=seeds)
def test_pooling_matches_oracle(g, dt, cip, nan, layout, isa, nthreads, seed):
    rng = np.random.default_rng(seed)
    shape = (g["N"], g["C"], g["H"], g["W"])
    x = values(rng, shape, dt)
    if nan:
        x.reshape(-1)[rng.choice(x.size, size=max(1, x.size // 20), replace=False)] = np.nan
    k, s, p = g["kernel"], g["stride"], g["padding"]
    xl = lay_out(x, layout)
    with Run(isa, nthreads):
        y_max = fastconv.max_pool2d(xl, k, s, p, strict=False)
        y_avg = fastconv.avg_pool2d(xl, k, s, p, count_include_pad=cip, strict=False)
    # Max pooling does no arithmetic: bit for bit the oracle.
    assert_exact(y_max, ref.max_pool2d(x, k, s, p), dt, "max y")
    with np.errstate(invalid="ignore"):
        want = ref.avg_pool2d(x, k, s, p, cip)
        scale = ref.avg_pool2d(np.abs(x), k, s, p, cip)
    assert_close(y_avg, want, scale, dt, k[0] * k[1], "avg y")

    dy = values(rng, y_max.shape, dt)
    with Run(isa, nthreads):
        dx_max = fastconv.max_pool2d_backward(lay_out(dy, layout), xl, k, s, p, strict=False)
        dx_avg = fastconv.avg_pool2d_backward(lay_out(dy, layout), shape, k, s, p,
                                              count_include_pad=cip, strict=False)
    steps = k if s is None else s
    overlap = -(-k[0] // steps[0]) * -(-k[1] // steps[1])
    assert_close(dx_max, ref.max_pool2d_backward(dy, x, k, s, p),
                 ref.max_pool2d_backward(np.abs(dy), x, k, s, p), dt, overlap, "max dx")
    assert_close(dx_avg, ref.avg_pool2d_backward(dy, shape, k, s, p, cip),
                 ref.avg_pool2d_backward(np.abs(dy), shape, k, s, p, cip), dt, overlap,
                 "avg dx")


# ---------------------------------------------------------- linear, relu

@budget(80)
@given(n=st.integers(1, 20), feat=st.lists(st.integers(1, 7), min_size=1, max_size=3),
       o=st.integers(1, 40), dts=dtype_pairs, bias=st.booleans(), relu=st.booleans(),
       layout=layouts, isa=isas, nthreads=threads, seed=seeds)
def test_linear_matches_oracle(n, feat, o, dts, bias, relu, layout, isa, nthreads, seed):
    rng = np.random.default_rng(seed)
    x = values(rng, (n,) + tuple(feat), dts[0])
    d = int(np.prod(feat))
    w = values(rng, (o, d), dts[1])
    b = values(rng, (o,), dts[1]) if bias else None
    act = "relu" if relu else None
    with Run(isa, nthreads):
        y = fastconv.linear(lay_out(x, layout), lay_out(w, layout), b, activation=act)
    dtype = np.result_type(*dts)
    assert_close(y, ref.linear(x, w, b, act),
                 ref.linear(np.abs(x), np.abs(w), None if b is None else np.abs(b)),
                 dtype, d + 1, "y")
    dy = values(rng, (n, o), dts[1])
    with Run(isa, nthreads):
        got = fastconv.linear_backward(lay_out(dy, layout), x, lay_out(w, layout))
    want = ref.linear_backward(dy, x, w)
    scale = ref.linear_backward(np.abs(dy), np.abs(x), np.abs(w))
    for name, g_, e, s_, L in zip(("dx", "dw", "db"), got, want, scale, (o, n, n)):
        assert_close(g_, e, s_, dtype, L, name)


@budget(20)
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=5),
       dt=st.sampled_from([np.float32, np.float64]), seed=seeds)
def test_relu_matches_oracle(shape, dt, seed):
    rng = np.random.default_rng(seed)
    x = values(rng, tuple(shape), dt)
    dy = values(rng, tuple(shape), dt)
    assert_exact(fastconv.relu(x), ref.relu(x), dt, "relu")
    assert_exact(fastconv.relu_backward(dy, x), ref.relu_backward(dy, x), dt, "relu dx")
