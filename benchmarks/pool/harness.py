"""Stand-alone check and timing of the pooling kernels in src/fc_pool.c.

Builds src/fc_pool.c with standalone.c (which stands in for the rest of the
core) into a shared library, calls it through ctypes, and

    python benchmarks/pool/harness.py check [--cases N] [--seed S]
        compares every kernel with a direct NumPy implementation over random
        shapes, both dtypes, every instruction set the CPU runs;
    python benchmarks/pool/harness.py bench [--threads T] [--repeat R]
        times pooling on tensors larger than L2 and reports bytes moved per
        second next to a plain memcpy measured the same way;
    python benchmarks/pool/harness.py big
        runs each kernel on a tensor of more than 2**31 elements.

FCPOOL_CFLAGS adds compiler flags (e.g. -fsanitize=address,undefined with
LD_PRELOAD=$(gcc -print-file-name=libasan.so), -DFC_POOL_SCALAR_BWD for the
scalar max-backward path, -DFC_POOL_GENERIC_ONLY for a non-x86 build).

Bytes moved: forward reads x and writes y; max backward reads dy and x and
writes dx; average backward reads dy and writes dx; a copy reads and writes
the buffer once each.
"""

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "..", "src"))


class Geom(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in
                ("N", "C", "H", "W", "KH", "KW", "SH", "SW", "PH", "PW", "H2", "W2")]


def build(openmp=True, cc=None):
    """Compile the kernels into a temporary shared library and load it."""
    cc = cc or os.environ.get("CC", "gcc")
    out = os.path.join(tempfile.mkdtemp(prefix="fcpool"), "libfcpool.so")
    cmd = [cc, "-O3", "-std=c11", "-Wall", "-Wextra", "-fPIC", "-shared",
           "-I", SRC, os.path.join(SRC, "fc_pool.c"),
           os.path.join(HERE, "standalone.c"), "-o", out, "-lm"]
    if openmp:
        cmd.insert(1, "-fopenmp")
    cmd[1:1] = os.environ.get("FCPOOL_CFLAGS", "").split()
    subprocess.run(cmd, check=True)
    lib = ctypes.CDLL(out)
    ptr, i = ctypes.c_void_p, ctypes.c_int
    g = ctypes.POINTER(Geom)
    for s in "sd":
        getattr(lib, f"fc_maxpool2d_fwd_{s}").argtypes = [g, ptr, ptr, i]
        getattr(lib, f"fc_maxpool2d_bwd_{s}").argtypes = [g, ptr, ptr, ptr, i]
        getattr(lib, f"fc_maxpool2d_fwd_idx_{s}").argtypes = [g, ptr, ptr, ptr, i]
        getattr(lib, f"fc_maxpool2d_bwd_idx_{s}").argtypes = [g, ptr, ptr, ptr, i]
        getattr(lib, f"fc_avgpool2d_fwd_{s}").argtypes = [g, ptr, ptr, i, i]
        getattr(lib, f"fc_avgpool2d_bwd_{s}").argtypes = [g, ptr, ptr, i, i]
    lib.fc_copy.argtypes = [ptr, ptr, ctypes.c_int64, i]
    lib.fc_standalone_isa.restype = ctypes.c_char_p
    return lib


def out_size(n, k, s, p):
    return (n - k + 2 * p) // s + 1


def geom(shape, k, s, p):
    N, C, H, W = shape
    return Geom(N, C, H, W, k[0], k[1], s[0], s[1], p[0], p[1],
                out_size(H, k[0], s[0], p[0]), out_size(W, k[1], s[1], p[1]))


def _p(a):
    return a.ctypes.data_as(ctypes.c_void_p)


class Kernels:
    """NumPy-facing wrappers.  Outputs start filled with a sentinel, so a
    kernel that leaves an element unwritten is caught."""

    def __init__(self, lib):
        self.lib = lib

    def _fn(self, name, dtype):
        return getattr(self.lib, name + ("_s" if dtype == np.float32 else "_d"))

    def max_fwd(self, x, k, s, p, nt=1):
        g = geom(x.shape, k, s, p)
        y = np.full((g.N, g.C, g.H2, g.W2), 1234.5, x.dtype)
        assert self._fn("fc_maxpool2d_fwd", x.dtype)(ctypes.byref(g), _p(x), _p(y), nt) == 0
        return y

    def max_bwd(self, dy, x, k, s, p, nt=1):
        g = geom(x.shape, k, s, p)
        dx = np.full(x.shape, 1234.5, x.dtype)
        assert self._fn("fc_maxpool2d_bwd", x.dtype)(ctypes.byref(g), _p(dy), _p(x), _p(dx), nt) == 0
        return dx

    def max_fwd_idx(self, x, k, s, p, nt=1):
        g = geom(x.shape, k, s, p)
        y = np.full((g.N, g.C, g.H2, g.W2), 1234.5, x.dtype)
        idx = np.full(y.shape, -7, np.int64)
        assert self._fn("fc_maxpool2d_fwd_idx", x.dtype)(ctypes.byref(g), _p(x), _p(y), _p(idx),
                                                         nt) == 0
        return y, idx

    def max_bwd_idx(self, dy, idx, shape, k, s, p, nt=1):
        """dx, and the kernel's return code."""
        g = geom(shape, k, s, p)
        dx = np.full(shape, 1234.5, dy.dtype)
        rc = self._fn("fc_maxpool2d_bwd_idx", dy.dtype)(ctypes.byref(g), _p(dy), _p(idx), _p(dx),
                                                        nt)
        return dx, rc

    def avg_fwd(self, x, k, s, p, inc, nt=1):
        g = geom(x.shape, k, s, p)
        y = np.full((g.N, g.C, g.H2, g.W2), 1234.5, x.dtype)
        assert self._fn("fc_avgpool2d_fwd", x.dtype)(ctypes.byref(g), _p(x), _p(y), int(inc), nt) == 0
        return y

    def avg_bwd(self, dy, shape, k, s, p, inc, nt=1):
        g = geom(shape, k, s, p)
        dx = np.full(shape, 1234.5, dy.dtype)
        assert self._fn("fc_avgpool2d_bwd", dy.dtype)(ctypes.byref(g), _p(dy), _p(dx), int(inc), nt) == 0
        return dx


# ------------------------------------------------------------ NumPy reference

def _windows(shape, k, s, p):
    N, C, H, W = shape
    H2, W2 = out_size(H, k[0], s[0], p[0]), out_size(W, k[1], s[1], p[1])
    for oh in range(H2):
        for ow in range(W2):
            yield oh, ow, oh * s[0], ow * s[1]  # window origin in padded coords


def ref_max_fwd(x, k, s, p):
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * p[0], W + 2 * p[1]), -np.inf, x.dtype)
    xp[:, :, p[0]:p[0] + H, p[1]:p[1] + W] = x
    H2, W2 = out_size(H, k[0], s[0], p[0]), out_size(W, k[1], s[1], p[1])
    y = np.empty((N, C, H2, W2), x.dtype)
    for oh, ow, a, b in _windows(x.shape, k, s, p):
        y[:, :, oh, ow] = xp[:, :, a:a + k[0], b:b + k[1]].max(axis=(2, 3))
    return y


def ref_max_idx(x, k, s, p):
    """The offset h*W + w in its plane of each window's first maximum
    (row-major; the first NaN in a window holding one; padding never)."""
    N, C, H, W = x.shape
    valid = np.zeros((H + 2 * p[0], W + 2 * p[1]), bool)
    valid[p[0]:p[0] + H, p[1]:p[1] + W] = True
    xp = np.zeros((N, C) + valid.shape, x.dtype)
    xp[:, :, p[0]:p[0] + H, p[1]:p[1] + W] = x
    H2, W2 = out_size(H, k[0], s[0], p[0]), out_size(W, k[1], s[1], p[1])
    idx = np.empty((N, C, H2, W2), np.int64)
    for oh, ow, a, b in _windows(x.shape, k, s, p):
        win = xp[:, :, a:a + k[0], b:b + k[1]].reshape(N, C, -1)
        ok = valid[a:a + k[0], b:b + k[1]].reshape(-1)
        vals = np.where(ok, win, -np.inf)
        nan = np.isnan(vals)
        mx = np.max(np.where(nan, -np.inf, vals), axis=2, keepdims=True)
        # a NaN is the maximum; otherwise the real elements equal to the max
        cand = np.where(nan.any(axis=2, keepdims=True), nan, (vals == mx) & ok)
        first = np.argmax(cand, axis=2)
        kh, kw = np.divmod(first, k[1])
        idx[:, :, oh, ow] = (a + kh - p[0]) * W + (b + kw - p[1])
    return idx


def ref_max_bwd(dy, x, k, s, p):
    """dx[argmax] += dy window by window in row-major order, in x's dtype:
    the order (and so the bits) every kernel path keeps."""
    N, C, H, W = x.shape
    idx = ref_max_idx(x, k, s, p).reshape(N * C, -1)
    dxf = np.zeros((N * C, H * W), x.dtype)
    dyf = dy.reshape(N * C, -1)
    rows = np.arange(N * C)
    for j in range(idx.shape[1]):
        # distinct planes: no repeated index within one fancy-indexed add
        dxf[rows, idx[:, j]] += dyf[:, j]
    return dxf.reshape(x.shape)


def _divisors(shape, k, s, p, inc):
    N, C, H, W = shape
    H2, W2 = out_size(H, k[0], s[0], p[0]), out_size(W, k[1], s[1], p[1])
    d = np.empty((H2, W2))
    for oh, ow, a, b in _windows(shape, k, s, p):
        if inc:
            d[oh, ow] = k[0] * k[1]
        else:
            rows = min(a + k[0], p[0] + H) - max(a, p[0])
            cols = min(b + k[1], p[1] + W) - max(b, p[1])
            d[oh, ow] = rows * cols
    return d


def ref_avg_fwd(x, k, s, p, inc):
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]), np.float64)
    xp[:, :, p[0]:p[0] + H, p[1]:p[1] + W] = x
    d = _divisors(x.shape, k, s, p, inc)
    y = np.empty((N, C) + d.shape)
    for oh, ow, a, b in _windows(x.shape, k, s, p):
        y[:, :, oh, ow] = xp[:, :, a:a + k[0], b:b + k[1]].sum(axis=(2, 3)) / d[oh, ow]
    return y


def ref_avg_bwd(dy, shape, k, s, p, inc):
    N, C, H, W = shape
    d = _divisors(shape, k, s, p, inc)
    dxp = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]))
    for oh, ow, a, b in _windows(shape, k, s, p):
        dxp[:, :, a:a + k[0], b:b + k[1]] += (dy[:, :, oh, ow] / d[oh, ow])[:, :, None, None]
    return dxp[:, :, p[0]:p[0] + H, p[1]:p[1] + W]


# ---------------------------------------------------------------- the check

def isas(lib):
    """The instruction sets the standalone dispatch can run here."""
    have = []
    for name in ("generic", "avx2", "avx512", "neon"):
        os.environ["FASTCONV_ISA"] = name
        if lib.fc_standalone_isa().decode() == name:
            have.append(name)
    return have


def random_case(rng):
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
    H = int(rng.integers(max(1, kh - 2 * ph), 40))
    W = int(rng.integers(max(1, kw - 2 * pw), 70))
    N, C = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    return (N, C, H, W), (kh, kw), (sh, sw), (ph, pw)


FIXED = [
    ((2, 3, 16, 16), (2, 2), (2, 2), (0, 0)),
    ((2, 3, 17, 19), (3, 3), (2, 2), (1, 1)),
    ((1, 2, 15, 33), (3, 3), (1, 1), (1, 1)),
    ((1, 1, 7, 7), (7, 7), (1, 1), (0, 0)),     # global
    ((3, 5, 7, 5), (7, 5), (1, 1), (0, 0)),     # global, rectangular
    ((1, 2, 5, 6), (7, 8), (1, 1), (1, 1)),     # kernel = padded input
    ((1, 2, 9, 9), (1, 1), (3, 3), (0, 0)),     # rows never touched
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
    ((1, 1, 1, 40), (1, 3), (1, 2), (0, 1)),
    ((1, 1, 40, 1), (3, 1), (2, 1), (1, 0)),
    ((2, 2, 12, 70), (2, 5), (1, 3), (1, 2)),
    ((1, 2, 9, 257), (3, 3), (2, 2), (1, 1)),   # long rows: vector bodies
    ((1, 2, 6, 203), (2, 2), (2, 2), (0, 0)),
    ((1, 1, 5, 301), (3, 4), (1, 1), (1, 2)),
    ((1, 1, 4, 150), (5, 7), (3, 4), (2, 3)),
]


def make_x(rng, shape, dtype, kind):
    if kind == "ties":
        # few distinct values: many ties, and -inf to check padding never wins
        x = rng.integers(-2, 2, size=shape).astype(dtype)
        x[rng.random(shape) < 0.1] = -np.inf
        return x
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "nan":
        x[rng.random(shape) < 0.08] = np.nan
        x[rng.random(shape) < 0.05] = -np.inf
        x[rng.random(shape) < 0.05] = np.inf
    if kind == "neginf":
        x[:] = -np.inf
    return x


def check_one(kern, rng, case, dtype, kind, nt, log):
    shape, k, s, p = case
    x = make_x(rng, shape, dtype, kind)
    x0 = x.copy()
    H2, W2 = out_size(shape[2], k[0], s[0], p[0]), out_size(shape[3], k[1], s[1], p[1])
    dy = rng.standard_normal((shape[0], shape[1], H2, W2)).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    tag = f"{shape} k={k} s={s} p={p} {np.dtype(dtype).name} {kind} nt={nt}"

    y = kern.max_fwd(x, k, s, p, nt)
    yr = ref_max_fwd(x, k, s, p)
    np.testing.assert_array_equal(y, yr, err_msg="max fwd " + tag)
    dy[0, 0, 0, :] = -0.0   # -0 gradients give +0, as 0 + g does
    dx = kern.max_bwd(dy, x, k, s, p, nt)
    dxr = ref_max_bwd(dy, x, k, s, p)
    # the same summation order as the reference: the same bits
    assert dx.tobytes() == dxr.tobytes(), "max bwd " + tag
    yi, idx = kern.max_fwd_idx(x, k, s, p, nt)
    assert yi.tobytes() == y.tobytes(), "max fwd with indices " + tag
    np.testing.assert_array_equal(idx, ref_max_idx(x, k, s, p), err_msg="indices " + tag)
    dxi, rc = kern.max_bwd_idx(dy, idx, shape, k, s, p, nt)
    assert rc == 0 and dxi.tobytes() == dx.tobytes(), "max bwd from indices " + tag
    if idx.size:
        bad = idx.copy()
        bad.flat[rng.integers(bad.size)] = rng.choice([-1, shape[2] * shape[3], 2**40])
        assert kern.max_bwd_idx(dy, bad, shape, k, s, p, nt)[1] == -2, "bad index " + tag
    for inc in (True, False):
        ya = kern.avg_fwd(x, k, s, p, inc, nt)
        with np.errstate(invalid="ignore"):
            yar = ref_avg_fwd(x, k, s, p, inc)
        np.testing.assert_allclose(ya, yar, rtol=rtol, atol=rtol,
                                   err_msg=f"avg fwd inc={inc} " + tag)
        da = kern.avg_bwd(dy, shape, k, s, p, inc, nt)
        dar = ref_avg_bwd(dy, shape, k, s, p, inc)
        np.testing.assert_allclose(da, dar, rtol=rtol, atol=rtol,
                                   err_msg=f"avg bwd inc={inc} " + tag)
    np.testing.assert_array_equal(x, x0)  # input untouched
    log.append(tag)


def cmd_check(args):
    lib = build(openmp=not args.no_openmp)
    kern = Kernels(lib)
    rng = np.random.default_rng(args.seed)
    cases = FIXED + [random_case(rng) for _ in range(args.cases)]
    total = 0
    for isa in isas(lib):
        os.environ["FASTCONV_ISA"] = isa
        log = []
        for case in cases:
            for dtype in (np.float32, np.float64):
                for kind in ("normal", "ties", "nan", "neginf"):
                    check_one(kern, rng, case, dtype, kind, 1, log)
            check_one(kern, rng, case, np.float32, "normal", 2, log)
        # the same bits at any thread count
        x = rng.standard_normal((4, 6, 33, 47)).astype(np.float32)
        dy = rng.standard_normal((4, 6, 17, 24)).astype(np.float32)
        geo = ((3, 3), (2, 2), (1, 1))
        for nt in (2, 3):
            assert np.array_equal(kern.max_fwd(x, *geo, 1), kern.max_fwd(x, *geo, nt))
            assert np.array_equal(kern.max_bwd(dy, x, *geo, 1), kern.max_bwd(dy, x, *geo, nt))
            y1, i1 = kern.max_fwd_idx(x, *geo, 1)
            yn, i_n = kern.max_fwd_idx(x, *geo, nt)
            assert np.array_equal(y1, yn) and np.array_equal(i1, i_n)
            assert np.array_equal(kern.max_bwd_idx(dy, i1, x.shape, *geo, 1)[0],
                                  kern.max_bwd_idx(dy, i1, x.shape, *geo, nt)[0])
            assert np.array_equal(kern.avg_fwd(x, *geo, False, 1), kern.avg_fwd(x, *geo, False, nt))
            assert np.array_equal(kern.avg_bwd(dy, x.shape, *geo, False, 1),
                                  kern.avg_bwd(dy, x.shape, *geo, False, nt))
        print(f"{isa}: {len(log)} checks passed")
        total += len(log)
    # all instruction sets agree bit for bit (no reassociated sums)
    x = rng.standard_normal((3, 4, 29, 41))
    dy = rng.standard_normal((3, 4, 15, 21))
    outs = []
    for isa in isas(lib):
        os.environ["FASTCONV_ISA"] = isa
        outs.append((kern.avg_fwd(x, (3, 3), (2, 2), (1, 1), False),
                     kern.avg_bwd(dy, x.shape, (3, 3), (2, 2), (1, 1), False),
                     kern.max_bwd(dy, x, (3, 3), (2, 2), (1, 1)))
                    + kern.max_fwd_idx(x, (3, 3), (2, 2), (1, 1)))
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            assert np.array_equal(a, b)
    print(f"total {total} checks passed; instruction sets agree bitwise")


# ---------------------------------------------------------------- the bench

def cmd_bench(args):
    lib = build()
    if args.isa:
        os.environ["FASTCONV_ISA"] = args.isa
    nt = args.threads
    print("instruction set:", lib.fc_standalone_isa().decode(), "threads:", nt)
    rng = np.random.default_rng(0)
    shape = tuple(args.shape)
    entries = []  # (dtype, name, fn, bytes moved); timed interleaved
    keep = []
    for dtype in (np.float32, np.float64):
        s = "s" if dtype == np.float32 else "d"
        fwd_max, bwd_max = getattr(lib, "fc_maxpool2d_fwd_" + s), getattr(lib, "fc_maxpool2d_bwd_" + s)
        fwd_avg, bwd_avg = getattr(lib, "fc_avgpool2d_fwd_" + s), getattr(lib, "fc_avgpool2d_bwd_" + s)
        x = rng.standard_normal(shape).astype(dtype)
        dst = np.empty_like(x)
        dx = np.empty_like(x)
        keep += [x, dst, dx]
        entries.append((dtype, "memcpy", lambda x=x, dst=dst: lib.fc_copy(_p(dst), _p(x), x.nbytes, nt),
                        2 * x.nbytes))
        for k, st, p in (((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (0, 0)),
                         ((3, 3), (1, 1), (1, 1))):
            g = geom(shape, k, st, p)
            y = np.empty((g.N, g.C, g.H2, g.W2), dtype)
            dy = rng.standard_normal(y.shape).astype(dtype)
            keep += [g, y, dy]
            gp = ctypes.byref(g)
            name = f"{k[0]}x{k[1]} s{st[0]} p{p[0]}"
            entries += [
                (dtype, "max fwd " + name,
                 lambda gp=gp, x=x, y=y, f=fwd_max: f(gp, _p(x), _p(y), nt), x.nbytes + y.nbytes),
                (dtype, "max bwd " + name,
                 lambda gp=gp, x=x, dy=dy, dx=dx, f=bwd_max: f(gp, _p(dy), _p(x), _p(dx), nt),
                 dy.nbytes + 2 * x.nbytes),
                (dtype, "avg fwd " + name,
                 lambda gp=gp, x=x, y=y, f=fwd_avg: f(gp, _p(x), _p(y), 1, nt), x.nbytes + y.nbytes),
                (dtype, "avg bwd " + name,
                 lambda gp=gp, dy=dy, dx=dx, f=bwd_avg: f(gp, _p(dy), _p(dx), 1, nt), dy.nbytes + x.nbytes),
            ]
        # global average pooling, ResNet-50's last stage
        gx = rng.standard_normal((32, 2048, 7, 7)).astype(dtype)
        g = geom(gx.shape, (7, 7), (1, 1), (0, 0))
        gy = np.empty((32, 2048, 1, 1), dtype)
        gdx = np.empty_like(gx)
        keep += [gx, g, gy, gdx]
        gp = ctypes.byref(g)
        entries += [
            (dtype, "avg fwd global 2048@7 b32",
             lambda gp=gp, gx=gx, gy=gy, f=fwd_avg: f(gp, _p(gx), _p(gy), 1, nt), gx.nbytes + gy.nbytes),
            (dtype, "avg bwd global 2048@7 b32",
             lambda gp=gp, gy=gy, gdx=gdx, f=bwd_avg: f(gp, _p(gy), _p(gdx), 1, nt), gx.nbytes + gy.nbytes),
        ]
    walls = [[] for _ in entries]
    cpus = [[] for _ in entries]
    # CPU time of the process: on a shared machine the wall clock also counts
    # the time other jobs held the core; CPU time does not (it still counts
    # memory stalls).  Divided by the thread count for nt > 1.
    for e in entries:  # first touch of every output
        e[2]()
    for _ in range(args.repeat):
        for i, e in enumerate(entries):
            c = time.process_time()
            t = time.perf_counter()
            e[2]()
            walls[i].append(time.perf_counter() - t)
            cpus[i].append((time.process_time() - c) / nt)
    print(f"input {shape}; GB/s = bytes moved per second (1e9), median of "
          f"{args.repeat} interleaved runs; load average {os.getloadavg()[0]:.1f}")
    print(f"{'dtype':8} {'op':28} {'wall ms':>8} {'GB/s':>7} {'/memcpy':>8}"
          f" {'cpu ms':>8} {'GB/s':>7} {'/memcpy':>8}")
    copy_bw = {}
    for (dtype, name, _, moved), tw, tc in zip(entries, walls, cpus):
        tw, tc = float(np.median(tw)), float(np.median(tc))
        bw, bc = moved / tw, moved / max(tc, 1e-9)
        if name == "memcpy":
            copy_bw[dtype] = (bw, bc)
        print(f"{np.dtype(dtype).name:8} {name:28} {tw * 1e3:8.2f} {bw / 1e9:7.2f} "
              f"{bw / copy_bw[dtype][0]:8.2f} {tc * 1e3:8.2f} {bc / 1e9:7.2f} "
              f"{bc / copy_bw[dtype][1]:8.2f}")


def cmd_big(args):
    """One plane of 2**31 + 2**16 float32 elements, so every index past 2**31
    is exercised.  x is np.zeros: its pages stay on the kernel's shared zero
    page except the few set here, so it costs little memory; the forward
    outputs take 2 GiB and each backward output 8 GiB (one at a time)."""
    lib = build()
    Hh, W = 65538, 32768
    x = np.zeros((1, 1, Hh, W), np.float32)
    assert x.size > 2**31
    x[0, 0, Hh - 1, W - 5] = 7.0     # past element 2**31
    x[0, 0, Hh - 2, 2] = 9.0
    x[0, 0, 10, 11] = 3.0
    g = geom(x.shape, (2, 2), (2, 2), (0, 0))
    gp = ctypes.byref(g)
    nt = args.threads
    y = np.empty((1, 1, g.H2, g.W2), np.float32)
    assert lib.fc_maxpool2d_fwd_s(gp, _p(x), _p(y), nt) == 0
    assert y[0, 0, -1, (W - 5) // 2] == 7.0 and y[0, 0, -1, 1] == 9.0 and y[0, 0, 5, 5] == 3.0
    assert np.count_nonzero(y) == 3
    assert lib.fc_avgpool2d_fwd_s(gp, _p(x), _p(y), 1, nt) == 0
    assert y[0, 0, -1, (W - 5) // 2] == 1.75 and y[0, 0, -1, 1] == 2.25
    assert np.count_nonzero(y) == 3
    idx = np.empty(y.shape, np.int64)
    assert lib.fc_maxpool2d_fwd_idx_s(gp, _p(x), _p(y), _p(idx), nt) == 0
    assert y[0, 0, -1, (W - 5) // 2] == 7.0 and idx[0, 0, -1, (W - 5) // 2] == (Hh - 1) * W + W - 5
    assert y[0, 0, -1, 1] == 9.0 and idx[0, 0, -1, 1] == (Hh - 2) * W + 2
    assert idx[0, 0, -1, 0] == (Hh - 2) * W   # an all-zero window: its first element
    assert np.count_nonzero(y) == 3
    del y
    print("forward past 2**31 elements: ok")
    dy = np.zeros((1, 1, g.H2, g.W2), np.float32)
    dy[0, 0, -1, (W - 5) // 2] = 1.5
    dy[0, 0, -1, 1] = 2.5
    dy[0, 0, -1, 0] = 4.0      # an all-zero window: its first element gets it
    dx = np.empty_like(x)
    assert lib.fc_maxpool2d_bwd_s(gp, _p(dy), _p(x), _p(dx), nt) == 0
    tail = dx[0, 0, -2:, :]
    assert tail[1, W - 5] == 1.5 and tail[0, 2] == 2.5 and tail[0, 0] == 4.0
    assert np.count_nonzero(tail) == 3 and not dx[0, 0, :-2].any()
    del dx, tail
    dx = np.empty_like(x)
    assert lib.fc_maxpool2d_bwd_idx_s(gp, _p(dy), _p(idx), _p(dx), nt) == 0
    tail = dx[0, 0, -2:, :]
    assert tail[1, W - 5] == 1.5 and tail[0, 2] == 2.5 and tail[0, 0] == 4.0
    assert np.count_nonzero(tail) == 3 and not dx[0, 0, :-2].any()
    del dx, tail, idx
    dx = np.empty_like(x)
    assert lib.fc_avgpool2d_bwd_s(gp, _p(dy), _p(dx), 1, nt) == 0
    tail = dx[0, 0, -2:, :]
    assert (tail[:, W - 6:W - 4] == 0.375).all() and (tail[:, 0:2] == 1.0).all()
    assert np.count_nonzero(tail) == 12 and not dx[0, 0, :-2].any()
    print("backward past 2**31 elements: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--cases", type=int, default=60)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--no-openmp", action="store_true")
    b = sub.add_parser("bench")
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--repeat", type=int, default=7)
    b.add_argument("--isa", default=None)
    b.add_argument("--shape", type=int, nargs=4, default=[32, 64, 112, 112])
    b = sub.add_parser("big", help="indices past 2**31 (needs about 11 GB of free memory)")
    b.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    {"check": cmd_check, "bench": cmd_bench, "big": cmd_big}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
