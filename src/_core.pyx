# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""fastconv._core: marshalling between NumPy buffers and the C core.

Every array arrives flat, C-contiguous, of one dtype, already validated by
fastconv.functional; shapes come as tuples of ints.  The GIL is released
around every kernel.  An empty array stands for "absent" (bias, dx)."""

from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "fc_core.h" nogil:
    ctypedef int64_t fc_int
    ctypedef struct fc_conv_geom:
        fc_int N, C, H, W, K, FH, FW, SH, SW, PH, PW, H2, W2
    ctypedef struct fc_pool_geom:
        fc_int N, C, H, W, KH, KW, SH, SW, PH, PW, H2, W2
    int FC_ENOMEM
    int FC_EINDEX

    int fc_conv2d_fwd_s(const fc_conv_geom *g, const float *x, const float *w, const float *b, float *y, int relu, int nt)
    int fc_conv2d_fwd_d(const fc_conv_geom *g, const double *x, const double *w, const double *b, double *y, int relu, int nt)
    int fc_conv2d_bwd_data_s(const fc_conv_geom *g, const float *dy, const float *w, float *dx, int nt)
    int fc_conv2d_bwd_data_d(const fc_conv_geom *g, const double *dy, const double *w, double *dx, int nt)
    int fc_conv2d_bwd_weight_s(const fc_conv_geom *g, const float *dy, const float *x, float *dw, float *db, int nt)
    int fc_conv2d_bwd_weight_d(const fc_conv_geom *g, const double *dy, const double *x, double *dw, double *db, int nt)
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
    const char *fc_last_conv_path()
    const char *fc_last_lanes_kernel()
    int fc_force_conv_path(const char *name)


cdef inline const floating *cptr(const floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL

cdef inline floating *ptr(floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL

cdef inline int check(int rc) except -1:
    if rc == FC_ENOMEM:
        raise MemoryError("fastconv: could not allocate the kernel workspace")
    if rc == FC_EINDEX:
        raise ValueError("indices: an index lies outside its input plane (indices must "
                         "come from max_pool2d(..., return_indices=True) on an input of "
                         "this shape)")
    return 0

cdef fc_conv_geom conv_geom(tuple s):
    cdef fc_conv_geom g
    g.N, g.C, g.H, g.W, g.K, g.FH, g.FW, g.SH, g.SW, g.PH, g.PW, g.H2, g.W2 = s
    return g

cdef fc_pool_geom pool_geom(tuple s):
    cdef fc_pool_geom g
    g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.H2, g.W2 = s
    return g


def conv2d_fwd(tuple geom, const floating[::1] x, const floating[::1] w,
               const floating[::1] b, floating[::1] y, bint relu, int nt):
    cdef fc_conv_geom g = conv_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_conv2d_fwd_s(&g, &x[0], &w[0], cptr(b), &y[0], relu, nt)
        else:
            rc = fc_conv2d_fwd_d(&g, &x[0], &w[0], cptr(b), &y[0], relu, nt)
    check(rc)


def conv2d_bwd_data(tuple geom, const floating[::1] dy, const floating[::1] w,
                    floating[::1] dx, int nt):
    cdef fc_conv_geom g = conv_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_conv2d_bwd_data_s(&g, &dy[0], &w[0], &dx[0], nt)
        else:
            rc = fc_conv2d_bwd_data_d(&g, &dy[0], &w[0], &dx[0], nt)
    check(rc)


def conv2d_bwd_weight(tuple geom, const floating[::1] dy, const floating[::1] x,
                      floating[::1] dw, floating[::1] db, int nt):
    cdef fc_conv_geom g = conv_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_conv2d_bwd_weight_s(&g, &dy[0], &x[0], &dw[0], ptr(db), nt)
        else:
            rc = fc_conv2d_bwd_weight_d(&g, &dy[0], &x[0], &dw[0], ptr(db), nt)
    check(rc)


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


def avgpool2d_fwd(tuple geom, const floating[::1] x, floating[::1] y, bint cip, int nt):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_avgpool2d_fwd_s(&g, &x[0], &y[0], cip, nt)
        else:
            rc = fc_avgpool2d_fwd_d(&g, &x[0], &y[0], cip, nt)
    check(rc)


def avgpool2d_bwd(tuple geom, const floating[::1] dy, floating[::1] dx, bint cip, int nt):
    cdef fc_pool_geom g = pool_geom(geom)
    cdef int rc
    with nogil:
        fc_reset_workspace_bytes()
        if floating is float:
            rc = fc_avgpool2d_bwd_s(&g, &dy[0], &dx[0], cip, nt)
        else:
            rc = fc_avgpool2d_bwd_d(&g, &dy[0], &dx[0], cip, nt)
    check(rc)


def isa_supported(str name):
    return bool(fc_isa_supported(name.encode()))

def set_isa(str name):
    """0 on success, -1 for an unknown name, -2 when this CPU cannot run it."""
    return fc_set_isa(name.encode())

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

def last_conv_path():
    """The algorithm the last convolution call on this thread took: for a
    forward convolution (also run inside a stride-1 data gradient) "gemm",
    "gemm_t" (the GEMM turned around: output pixels as tile rows), "direct",
    "lanes" or "kvec"; for a weight gradient "gemm", "kvec", "dot" or
    "dot1x1"; for a data gradient also "col2im"; ""
    when the last call ran none of these."""
    return fc_last_conv_path().decode()

def last_lanes_kernel():
    """The microkernel the last "lanes" convolution on this thread ran
    (the instruction set's wide tile or its narrow one), "" before any."""
    return fc_last_lanes_kernel().decode()

def force_conv_path(name):
    """Testing hook: make every forward convolution (and stride-1 data
    gradient) take algorithm `name` ("gemm", "gemm_t", "direct", "lanes",
    "lanes:THxTW" or "kvec"; "lanes" and "lanes:THxTW" may end in "/wide" or
    "/narrow", the kernel tile) wherever it applies, and weight gradients
    "gemm", "kvec", "dot" or "dot1x1"; None or "" restores the automatic
    choice.  Not for use while other threads run convolutions."""
    cdef bytes b = (name or "").encode()
    if fc_force_conv_path(b) != 0:
        raise ValueError(f"conv path name too long: {name!r}")
