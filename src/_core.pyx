# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""fastconv._core: marshalling between NumPy buffers and the C core.

Every array arrives flat, C-contiguous, of one dtype, already validated by
fastconv.functional; shapes come as tuples of ints.  The GIL is released
around every kernel.  An empty array stands for "absent" (bias, dx)."""

from cython cimport floating
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uintptr_t
from libc.string cimport memcpy

import threading
from collections import OrderedDict

cdef extern from "fc_core.h" nogil:
    ctypedef int64_t fc_int
    ctypedef struct fc_conv_geom:
        fc_int N, C, H, W, K, FH, FW, SH, SW, PH, PW, H2, W2, DH, DW, XS, YS, G
    ctypedef struct fc_pool_geom:
        fc_int N, C, H, W, KH, KW, SH, SW, PH, PW, H2, W2
    int FC_ENOMEM
    int FC_EINDEX

    int fc_linear_fwd_s(fc_int N, fc_int D, fc_int O, const float *x, const float *w, const float *b, float *y, int relu, int nt)
    int fc_linear_fwd_d(fc_int N, fc_int D, fc_int O, const double *x, const double *w, const double *b, double *y, int relu, int nt)
    int fc_linear_bwd_s(fc_int N, fc_int D, fc_int O, const float *dy, const float *x, const float *w, float *dx, float *dw, float *db, int nt)
    int fc_linear_bwd_d(fc_int N, fc_int D, fc_int O, const double *dy, const double *x, const double *w, double *dx, double *dw, double *db, int nt)
    int fc_maxpool2d_fwd_s(const fc_pool_geom *g, const float *x, float *y, int nt)
    int fc_maxpool2d_fwd_d(const fc_pool_geom *g, const double *x, double *y, int nt)
    int fc_maxpool2d_bwd_s(const fc_pool_geom *g, const float *dy, const float *x, float *dx, int nt)
    int fc_maxpool2d_bwd_d(const fc_pool_geom *g, const double *dy, const double *x, double *dx, int nt)
    int fc_maxpool2d_fwd_idx_s(const fc_pool_geom *g, const float *x, float *y, int64_t *idx, int nt)
    int fc_maxpool2d_fwd_idx_d(const fc_pool_geom *g, const double *x, double *y, int64_t *idx, int nt)
    int fc_maxpool2d_bwd_idx_s(const fc_pool_geom *g, const float *dy, const int64_t *idx, float *dx, int nt)
    int fc_maxpool2d_bwd_idx_d(const fc_pool_geom *g, const double *dy, const int64_t *idx, double *dx, int nt)
    int fc_avgpool2d_fwd_s(const fc_pool_geom *g, const float *x, float *y, int cip, int nt)
    int fc_avgpool2d_fwd_d(const fc_pool_geom *g, const double *x, double *y, int cip, int nt)
    int fc_avgpool2d_bwd_s(const fc_pool_geom *g, const float *dy, float *dx, int cip, int nt)
    int fc_avgpool2d_bwd_d(const fc_pool_geom *g, const double *dy, double *dx, int cip, int nt)
    int fc_avgpool2d_fwd_div_s(const fc_pool_geom *g, const float *x, float *y, int cip,
                               int64_t div, int nt)
    int fc_avgpool2d_fwd_div_d(const fc_pool_geom *g, const double *x, double *y, int cip,
                               int64_t div, int nt)
    int fc_avgpool2d_bwd_div_s(const fc_pool_geom *g, const float *dy, float *dx, int cip,
                               int64_t div, int nt)
    int fc_avgpool2d_bwd_div_d(const fc_pool_geom *g, const double *dy, double *dx, int cip,
                               int64_t div, int nt)
    int fc_pool2d_win_fwd_s(const fc_pool_geom *g, int64_t DH, int64_t DW, int adaptive,
                            int is_max, const float *x, float *y, int64_t *idx, int nt)
    int fc_pool2d_win_fwd_d(const fc_pool_geom *g, int64_t DH, int64_t DW, int adaptive,
                            int is_max, const double *x, double *y, int64_t *idx, int nt)
    int fc_pool2d_win_bwd_s(const fc_pool_geom *g, int64_t DH, int64_t DW, int adaptive,
                            int is_max, const float *dy, const float *x, float *dx, int nt)
    int fc_pool2d_win_bwd_d(const fc_pool_geom *g, int64_t DH, int64_t DW, int adaptive,
                            int is_max, const double *dy, const double *x, double *dx, int nt)

    int fc_isa_supported(const char *name)
    int fc_set_isa(const char *name)
    const char *fc_isa()
    const char *fc_isa_best()
    const char *fc_kernel_name_s()
    const char *fc_kernel_name_d()
    const char *fc_kernel_name_s_narrow()
    const char *fc_kernel_name_d_narrow()
    int fc_openmp_enabled()
    int fc_omp_max_threads()
    double fc_fma_peak_gflops(int dsize, double seconds)
    size_t fc_last_workspace_bytes()
    void fc_reset_workspace_bytes()
    ctypedef struct fc_cache_sizes:
        int64_t l1d, l2, l3
        int l2_sharing, l3_sharing
        const char *source
    const fc_cache_sizes *fc_caches()
    int fc_set_cache_sizes(int64_t l1d, int64_t l2, int64_t l3)
    void fc_active_blocking(int dsize, int narrow, int *out)

cdef extern from "fc_plan.h" nogil:
    int FC_EPLAN
    int FC_ALG_NONE
    int FC_OP_CONV_FWD, FC_OP_CONV_DATA, FC_OP_CONV_WEIGHT, FC_OP_LINEAR_FWD, FC_OP_LINEAR_BWD
    int FC_OP_POOL
    ctypedef struct fc_plan:
        int op, alg, threads, nthreads, engine, dsize
        unsigned flags
        size_t workspace
        const char *kernel
        double cost
        fc_conv_geom g, ag
        int narrow
        fc_int th, tw
        char reason[200]
    void fc_plan_init(fc_plan *pl)
    int fc_plan_needs_finite(const fc_plan *pl)
    int fc_plan_conv_s(int op, const fc_conv_geom *g, int nt, int forced, int wfinite, fc_plan *pl)
    int fc_plan_conv_d(int op, const fc_conv_geom *g, int nt, int forced, int wfinite, fc_plan *pl)
    int fc_conv2d_fwd_plan_s(const fc_plan *pl, const float *x, const float *w, const float *b, float *y, int relu)
    int fc_conv2d_fwd_plan_d(const fc_plan *pl, const double *x, const double *w, const double *b, double *y, int relu)
    int fc_conv2d_bwd_data_plan_s(const fc_plan *pl, const float *dy, const float *w, float *dx)
    int fc_conv2d_bwd_data_plan_d(const fc_plan *pl, const double *dy, const double *w, double *dx)
    int fc_conv2d_bwd_weight_plan_s(const fc_plan *pl, const float *dy, const float *x, float *dw, float *db)
    int fc_conv2d_bwd_weight_plan_d(const fc_plan *pl, const double *dy, const double *x, double *dw, double *db)
    int fc_all_finite_s(const float *a, fc_int n, int nt)
    int fc_all_finite_d(const double *a, fc_int n, int nt)
    int fc_plan_linear_s(fc_int N, fc_int D, fc_int O, int backward, int nt, fc_plan *pl)
    int fc_plan_linear_d(fc_int N, fc_int D, fc_int O, int backward, int nt, fc_plan *pl)
    int fc_plan_pool(const fc_pool_geom *g, int dsize, int nt, fc_plan *pl)
    int fc_algorithm_count()
    const char *fc_algorithm_name(int alg)
    const char *fc_algorithm_doc(int alg)
    unsigned fc_algorithm_ops(int alg)
    int fc_threads_usable(int nthreads)


cdef inline const floating *cptr(const floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL

cdef inline floating *ptr(floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL

cdef inline int check(int rc) except -1:
    if rc == FC_ENOMEM:
        raise MemoryError("fastconv: could not allocate the kernel workspace")
    if rc == FC_EPLAN:
        raise RuntimeError("fastconv: a plan did not match its run (a bug: please report it)")
    if rc == FC_EINDEX:
        raise ValueError("indices: an index lies outside its input plane (indices must "
                         "come from max_pool2d(..., return_indices=True) on an input of "
                         "this shape)")
    return 0

cdef fc_conv_geom conv_geom(tuple s):
    """13 fields (N, C, H, W, K, FH, FW, SH, SW, PH, PW, H2, W2), 15 with the
    dilation (DH, DW) after them, or 16 with the groups after those.  C and K
    are the whole tensors' channels and filters; PH and PW the top and left
    padding."""
    cdef fc_conv_geom g
    g.DH = g.DW = g.G = 1
    g.XS = g.YS = 0
    g.N, g.C, g.H, g.W, g.K, g.FH, g.FW, g.SH, g.SW, g.PH, g.PW, g.H2, g.W2 = s[:13]
    if len(s) >= 15:
        g.DH, g.DW = s[13:15]
    if len(s) == 16:
        g.G = s[15]
    return g

cdef fc_pool_geom pool_geom(tuple s):
    cdef fc_pool_geom g
    g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.H2, g.W2 = s
    return g


OP_CONV_FWD = FC_OP_CONV_FWD
OP_CONV_DATA = FC_OP_CONV_DATA
OP_CONV_WEIGHT = FC_OP_CONV_WEIGHT
OP_LINEAR_FWD = FC_OP_LINEAR_FWD
OP_LINEAR_BWD = FC_OP_LINEAR_BWD
OP_POOL = FC_OP_POOL


def algorithms():
    """The one list of algorithms: a tuple of (name, doc, op bit mask)."""
    return tuple((fc_algorithm_name(i).decode(), fc_algorithm_doc(i).decode(),
                  fc_algorithm_ops(i)) for i in range(fc_algorithm_count()))


def threads_usable(int n):
    return fc_threads_usable(n)


cdef dict plan_dict(fc_plan *pl):
    return {"algorithm": fc_algorithm_name(pl.alg).decode(),
            "kernel": (pl.kernel or b"").decode(),
            "threads": pl.threads,
            "workspace_bytes": pl.workspace,
            "reason": pl.reason.decode(),
            "cost": pl.cost,
            "tile": (pl.th, pl.tw) if pl.alg == fc_algorithm_id_lanes() else None}


cdef int fc_algorithm_id_lanes():
    for i in range(fc_algorithm_count()):
        if fc_algorithm_name(i) == b"lanes":
            return i
    return -1


# ------------------------------------------------------------ the plan cache
#
# Planning a small convolution can cost more than running it (the lanes
# assessment searches tiles), and a network calls the same shapes again and
# again.  A plan is a function of the planner's inputs alone: the op, the
# geometry, the element size, the threads asked for and those that can run,
# the forced algorithm and lanes tile, whether the weights are finite, the
# active instruction set's kernels and the cache sizes the blocking comes
# from.  The first of those make the key; the instruction set and the cache
# sizes change only through set_isa and set_cache_sizes, which empty the
# cache (the instruction set is in the key as well, so that a plan made by
# another thread just before a switch is never taken for the new one).  A
# hit copies the very struct the planner wrote, so a cached call runs the
# same plan, bit for bit, as an uncached one.  Planning that fails (a forced
# algorithm that cannot serve) is not cached.

cdef object _plans = OrderedDict()     # key -> bytes of an fc_plan, least recent first
cdef object _plans_lock = threading.Lock()
cdef Py_ssize_t _plans_max = 256
cdef Py_ssize_t _plan_hits = 0
cdef Py_ssize_t _plan_misses = 0


def plan_cache_clear():
    """Forgets every cached plan and zeroes the hit and miss counts."""
    global _plan_hits, _plan_misses
    with _plans_lock:
        _plans.clear()
        _plan_hits = _plan_misses = 0


def plan_cache_info():
    """(hits, misses, maxsize, currsize) of the plan cache."""
    with _plans_lock:
        return _plan_hits, _plan_misses, _plans_max, len(_plans)


cdef int make_plan(int op, fc_conv_geom *g, tuple geom, int dsize, int nt, int alg, int narrow,
                   fc_int th, fc_int tw, int wfinite, fc_plan *pl) except -1:
    global _plan_hits, _plan_misses
    cdef int rc
    cdef bytes entry
    key = (op, geom, dsize, nt, fc_threads_usable(nt), alg, narrow, th, tw, wfinite,
           <uintptr_t>fc_isa())
    with _plans_lock:
        entry = _plans.get(key)
        if entry is not None:
            _plans.move_to_end(key)
            _plan_hits += 1
    if entry is not None:
        memcpy(pl, PyBytes_AS_STRING(entry), sizeof(fc_plan))
        return 0
    fc_plan_init(pl)
    pl.narrow = narrow
    pl.th = th
    pl.tw = tw
    with nogil:
        if dsize == 4:
            rc = fc_plan_conv_s(op, g, nt, alg, wfinite, pl)
        else:
            rc = fc_plan_conv_d(op, g, nt, alg, wfinite, pl)
    if rc == FC_EPLAN:
        raise ValueError(pl.reason.decode())
    entry = PyBytes_FromStringAndSize(<char *>pl, sizeof(fc_plan))
    with _plans_lock:
        _plan_misses += 1
        _plans[key] = entry
        if len(_plans) > _plans_max:
            _plans.popitem(last=False)
    return 0


def plan_conv(int op, tuple geom, int dsize, int nt, int alg=-1, int narrow=-1, fc_int th=0,
              fc_int tw=0):
    """The plan of a convolution op (OP_CONV_*), weights taken as finite."""
    cdef fc_conv_geom g = conv_geom(geom)
    cdef fc_plan pl
    make_plan(op, &g, geom, dsize, nt, alg, narrow, th, tw, 1, &pl)
    return plan_dict(&pl)


def plan_linear(fc_int N, fc_int D, fc_int O, bint backward, int dsize, int nt):
    cdef fc_plan pl
    if dsize == 4:
        fc_plan_linear_s(N, D, O, backward, nt, &pl)
    else:
        fc_plan_linear_d(N, D, O, backward, nt, &pl)
    return plan_dict(&pl)


def plan_pool(tuple geom, int dsize, int nt):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef fc_plan pl
    fc_plan_pool(&g, dsize, nt, &pl)
    return plan_dict(&pl)


cdef int plan_for_weights(int op, fc_conv_geom *g, tuple geom, const floating[::1] w, int nt,
                          int alg, int narrow, fc_int th, fc_int tw, fc_plan *pl) except -1:
    """Plans op; where the plan needs finite weights and w is not, plans
    again without the algorithms that need them."""
    cdef int finite = 1
    cdef int dsize = sizeof(floating)
    make_plan(op, g, geom, dsize, nt, alg, narrow, th, tw, 1, pl)
    # The weights are looked at on every call, cached plan or not.
    if fc_plan_needs_finite(pl):
        with nogil:
            if floating is float:
                finite = fc_all_finite_s(cptr(w), w.shape[0], nt)
            else:
                finite = fc_all_finite_d(cptr(w), w.shape[0], nt)
        if not finite:
            make_plan(op, g, geom, dsize, nt, alg, narrow, th, tw, 0, pl)
    return 0


def conv2d_fwd(tuple geom, const floating[::1] x, const floating[::1] w,
               const floating[::1] b, floating[::1] y, bint relu, int nt, int alg=-1,
               int narrow=-1, fc_int th=0, fc_int tw=0):
    """Plans and runs a forward convolution; returns the plan it ran."""
    cdef fc_conv_geom g = conv_geom(geom)
    cdef fc_plan pl
    cdef int rc
    plan_for_weights(FC_OP_CONV_FWD, &g, geom, w, nt, alg, narrow, th, tw, &pl)
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_conv2d_fwd_plan_s(&pl, cptr(x), cptr(w), cptr(b), ptr(y), relu)
        else:
            rc = fc_conv2d_fwd_plan_d(&pl, cptr(x), cptr(w), cptr(b), ptr(y), relu)
    check(rc)
    return plan_dict(&pl)


def conv2d_bwd_data(tuple geom, const floating[::1] dy, const floating[::1] w,
                    floating[::1] dx, int nt, int alg=-1, int narrow=-1, fc_int th=0,
                    fc_int tw=0):
    cdef fc_conv_geom g = conv_geom(geom)
    cdef fc_plan pl
    cdef int rc
    plan_for_weights(FC_OP_CONV_DATA, &g, geom, w, nt, alg, narrow, th, tw, &pl)
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_conv2d_bwd_data_plan_s(&pl, cptr(dy), cptr(w), ptr(dx))
        else:
            rc = fc_conv2d_bwd_data_plan_d(&pl, cptr(dy), cptr(w), ptr(dx))
    check(rc)
    return plan_dict(&pl)


def conv2d_bwd_weight(tuple geom, const floating[::1] dy, const floating[::1] x,
                      floating[::1] dw, floating[::1] db, int nt, int alg=-1):
    cdef fc_conv_geom g = conv_geom(geom)
    cdef fc_plan pl
    cdef int rc
    make_plan(FC_OP_CONV_WEIGHT, &g, geom, sizeof(floating), nt, alg, -1, 0, 0, 1, &pl)
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_conv2d_bwd_weight_plan_s(&pl, cptr(dy), cptr(x), ptr(dw), ptr(db))
        else:
            rc = fc_conv2d_bwd_weight_plan_d(&pl, cptr(dy), cptr(x), ptr(dw), ptr(db))
    check(rc)
    return plan_dict(&pl)


def linear_fwd(fc_int N, fc_int D, fc_int O, const floating[::1] x, const floating[::1] w,
               const floating[::1] b, floating[::1] y, bint relu, int nt):
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_linear_fwd_s(N, D, O, &x[0], &w[0], cptr(b), &y[0], relu, nt)
        else:
            rc = fc_linear_fwd_d(N, D, O, &x[0], &w[0], cptr(b), &y[0], relu, nt)
    check(rc)


def linear_bwd(fc_int N, fc_int D, fc_int O, const floating[::1] dy, const floating[::1] x,
               const floating[::1] w, floating[::1] dx, floating[::1] dw, floating[::1] db,
               int nt):
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_linear_bwd_s(N, D, O, &dy[0], &x[0], &w[0], ptr(dx), &dw[0], ptr(db), nt)
        else:
            rc = fc_linear_bwd_d(N, D, O, &dy[0], &x[0], &w[0], ptr(dx), &dw[0], ptr(db), nt)
    check(rc)


def maxpool2d_fwd(tuple geom, const floating[::1] x, floating[::1] y, int nt):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_maxpool2d_fwd_s(&g, &x[0], &y[0], nt)
        else:
            rc = fc_maxpool2d_fwd_d(&g, &x[0], &y[0], nt)
    check(rc)


def maxpool2d_bwd(tuple geom, const floating[::1] dy, const floating[::1] x,
                  floating[::1] dx, int nt):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_maxpool2d_bwd_s(&g, &dy[0], &x[0], &dx[0], nt)
        else:
            rc = fc_maxpool2d_bwd_d(&g, &dy[0], &x[0], &dx[0], nt)
    check(rc)


def maxpool2d_fwd_idx(tuple geom, const floating[::1] x, floating[::1] y,
                      int64_t[::1] idx, int nt):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_maxpool2d_fwd_idx_s(&g, &x[0], &y[0], &idx[0], nt)
        else:
            rc = fc_maxpool2d_fwd_idx_d(&g, &x[0], &y[0], &idx[0], nt)
    check(rc)


def maxpool2d_bwd_idx(tuple geom, const floating[::1] dy, const int64_t[::1] idx,
                      floating[::1] dx, int nt):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_maxpool2d_bwd_idx_s(&g, &dy[0], &idx[0], &dx[0], nt)
        else:
            rc = fc_maxpool2d_bwd_idx_d(&g, &dy[0], &idx[0], &dx[0], nt)
    check(rc)


def avgpool2d_fwd(tuple geom, const floating[::1] x, floating[::1] y, bint cip, int nt,
                  int64_t divisor=0):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_avgpool2d_fwd_div_s(&g, &x[0], &y[0], cip, divisor, nt)
        else:
            rc = fc_avgpool2d_fwd_div_d(&g, &x[0], &y[0], cip, divisor, nt)
    check(rc)


def avgpool2d_bwd(tuple geom, const floating[::1] dy, floating[::1] dx, bint cip, int nt,
                  int64_t divisor=0):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_avgpool2d_bwd_div_s(&g, &dy[0], &dx[0], cip, divisor, nt)
        else:
            rc = fc_avgpool2d_bwd_div_d(&g, &dy[0], &dx[0], cip, divisor, nt)
    check(rc)


def pool2d_win_fwd(tuple geom, int64_t DH, int64_t DW, bint adaptive, bint is_max,
                   const floating[::1] x, floating[::1] y, int64_t[::1] idx, int nt):
    """Pooling window by window (dilated max, adaptive max or average); idx
    empty: no indices."""
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    cdef int64_t *ip = &idx[0] if idx.shape[0] > 0 else NULL
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_pool2d_win_fwd_s(&g, DH, DW, adaptive, is_max, &x[0], &y[0], ip, nt)
        else:
            rc = fc_pool2d_win_fwd_d(&g, DH, DW, adaptive, is_max, &x[0], &y[0], ip, nt)
    check(rc)


def pool2d_win_bwd(tuple geom, int64_t DH, int64_t DW, bint adaptive, bint is_max,
                   const floating[::1] dy, const floating[::1] x, floating[::1] dx, int nt):
    """Backward of pool2d_win_fwd; x is read by max pooling only (empty for
    average pooling)."""
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    cdef const floating *xp = &x[0] if x.shape[0] > 0 else NULL
    cdef const floating *dyp = &dy[0] if dy.shape[0] > 0 else NULL
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_pool2d_win_bwd_s(&g, DH, DW, adaptive, is_max, dyp, xp, &dx[0], nt)
        else:
            rc = fc_pool2d_win_bwd_d(&g, DH, DW, adaptive, is_max, dyp, xp, &dx[0], nt)
    check(rc)


def isa_supported(str name):
    return bool(fc_isa_supported(name.encode()))

def set_isa(str name):
    """0 on success, -1 for an unknown name, -2 when this CPU cannot run it."""
    rc = fc_set_isa(name.encode())
    plan_cache_clear()      # the plans were made for the other kernels
    return rc

def isa():
    return fc_isa().decode()

def isa_best():
    return fc_isa_best().decode()

def kernel_names():
    return fc_kernel_name_s().decode(), fc_kernel_name_d().decode()

def narrow_kernel_names():
    """The narrow tiles the batch-lane path may take instead (float32,
    float64); the same as kernel_names() where the instruction set has none."""
    return fc_kernel_name_s_narrow().decode(), fc_kernel_name_d_narrow().decode()

def openmp_enabled():
    return bool(fc_openmp_enabled())

def cache_sizes():
    """The data caches the core derives its blocking from: a dict of l1d, l2,
    l3 (bytes), l2_sharing, l3_sharing (CPUs per cache) and source."""
    cdef const fc_cache_sizes *c = fc_caches()
    return {"l1d": c.l1d, "l2": c.l2, "l3": c.l3, "l2_sharing": c.l2_sharing,
            "l3_sharing": c.l3_sharing, "source": c.source.decode()}

def set_cache_sizes(int64_t l1d, int64_t l2, int64_t l3):
    """Override the detected sizes (all 0: detect again); ValueError when
    implausible.  Only before any computation (at import)."""
    rc = fc_set_cache_sizes(l1d, l2, l3)
    plan_cache_clear()      # the plans' blocking and budgets came from the old sizes
    if rc != 0:
        raise ValueError(f"implausible cache sizes: L1d {l1d}, L2 {l2}, L3 {l3} bytes "
                         "(need L1d >= 1 KiB, L2 >= L1d, L3 >= L2 or 0)")

def gemm_blocking(int dsize, bint narrow=False):
    """The active GEMM kernel's (mr, nr, kc, mc, nc) for dsize-byte elements."""
    cdef int out[5]
    fc_active_blocking(dsize, 1 if narrow else 0, out)
    return tuple(out[i] for i in range(5))

def omp_max_threads():
    return fc_omp_max_threads()

def fma_peak_gflops(int dsize, double seconds):
    cdef double r
    with nogil:
        r = fc_fma_peak_gflops(dsize, seconds)
    return r

def last_workspace_bytes():
    """Workspace bytes the last kernel call on this thread allocated."""
    return fc_last_workspace_bytes()
