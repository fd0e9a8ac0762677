/* fastconv C core: the public entry points called by the Cython binding.
 *
 * Pure C on raw pointers.  Every tensor is dense and C-contiguous:
 * activations NCHW, conv weights (K, C, FH, FW), linear weights (O, D).
 * The caller (the Python layer) has validated every shape and allocated every
 * output; the core writes each output completely (gradients are zeroed here,
 * not by the caller).  Functions return 0 on success or FC_ENOMEM when
 * workspace could not be allocated, in which case no output has been touched;
 * max-pooling backward from indices returns FC_EINDEX when an index lies
 * outside its plane (that entry is skipped; dx must then be discarded).
 * Suffix _s is float32, _d is float64.
 */
#ifndef FC_CORE_H
#define FC_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef int64_t fc_int;

#define FC_OK 0
#define FC_ENOMEM (-1)
#define FC_EINDEX (-2) /* a pooling index outside its plane (dx is then invalid) */

typedef struct {
    fc_int N, C, H, W;     /* input  */
    fc_int K, FH, FW;      /* filters */
    fc_int SH, SW, PH, PW; /* stride and zero padding per axis */
    fc_int H2, W2;         /* output, from the output-size formula */
    fc_int DH, DW;         /* dilation per axis: tap (r, s) reads input row r*DH, column
                              s*DW of its window (1: every row and column) */
    fc_int XS, YS;         /* elements from one image to the next in x (and dx) and in
                              y (and dy); 0: the dense C*H*W and K*H2*W2.  A group of a
                              grouped convolution is a geometry of its own channels with
                              the whole tensors' image strides. */
    fc_int G;              /* groups (0 or 1: one): channels and filters cut into G equal
                              groups, group i's filters seeing its channels only */
} fc_conv_geom;

static inline fc_int fc_xs(const fc_conv_geom *g) { return g->XS ? g->XS : g->C * g->H * g->W; }
static inline fc_int fc_ys(const fc_conv_geom *g) { return g->YS ? g->YS : g->K * g->H2 * g->W2; }

/* The rows and columns one window spans: (F - 1)*D + 1. */
static inline fc_int fc_span_h(const fc_conv_geom *g) { return (g->FH - 1) * g->DH + 1; }
static inline fc_int fc_span_w(const fc_conv_geom *g) { return (g->FW - 1) * g->DW + 1; }
static inline int fc_conv_is_dilated(const fc_conv_geom *g) { return g->DH != 1 || g->DW != 1; }

/* A 1x1 convolution at stride 1 without padding: a plain product of the
 * weights with each image's C x H*W matrix, which every path can read in
 * place.  Padding at the bottom or right alone (an output larger than the
 * input) is not plain. */
static inline int fc_conv_is_plain_1x1(const fc_conv_geom *g)
{
    return g->FH == 1 && g->FW == 1 && g->SH == 1 && g->SW == 1 && g->PH == 0 && g->PW == 0 &&
           g->H2 == g->H && g->W2 == g->W;
}

typedef struct {
    fc_int N, C, H, W;     /* input */
    fc_int KH, KW;         /* window */
    fc_int SH, SW, PH, PW; /* stride and padding per axis */
    fc_int H2, W2;         /* output */
} fc_pool_geom;

/* Pooling (fc_pool.c): the window grid of fc_pool_geom, for any output
 * size the caller computed (ceil_mode's included).  The _div forms of
 * average pooling take divisor_override (0: none).  The window-by-window
 * forms take a dilation (max pooling) or, with adaptive set, ignore KH..PW
 * and use PyTorch's adaptive windows; idx may be NULL, and x is read only
 * by max pooling's backward. */

/* Convolutions are planned, then run: fc_plan.h. */
#define FC_DECLARE_OPS(T, S)                                                        \
    int fc_linear_fwd_##S(fc_int N, fc_int D, fc_int O, const T *x, const T *w,     \
                          const T *b, T *y, int relu, int nthreads);                \
    int fc_linear_bwd_##S(fc_int N, fc_int D, fc_int O, const T *dy, const T *x,    \
                          const T *w, T *dx, T *dw, T *db, int nthreads);           \
    int fc_maxpool2d_fwd_##S(const fc_pool_geom *g, const T *x, T *y, int nthreads); \
    int fc_maxpool2d_bwd_##S(const fc_pool_geom *g, const T *dy, const T *x, T *dx, \
                             int nthreads);                                         \
    int fc_maxpool2d_fwd_idx_##S(const fc_pool_geom *g, const T *x, T *y,           \
                                 int64_t *idx, int nthreads);                       \
    int fc_maxpool2d_bwd_idx_##S(const fc_pool_geom *g, const T *dy,                \
                                 const int64_t *idx, T *dx, int nthreads);          \
    int fc_avgpool2d_fwd_##S(const fc_pool_geom *g, const T *x, T *y,               \
                             int count_include_pad, int nthreads);                  \
    int fc_avgpool2d_bwd_##S(const fc_pool_geom *g, const T *dy, T *dx,             \
                             int count_include_pad, int nthreads);                  \
    int fc_avgpool2d_fwd_div_##S(const fc_pool_geom *g, const T *x, T *y,           \
                                 int count_include_pad, fc_int divisor,             \
                                 int nthreads);                                     \
    int fc_avgpool2d_bwd_div_##S(const fc_pool_geom *g, const T *dy, T *dx,         \
                                 int count_include_pad, fc_int divisor,             \
                                 int nthreads);                                     \
    int fc_pool2d_win_fwd_##S(const fc_pool_geom *g, fc_int DH, fc_int DW,          \
                              int adaptive, int is_max, const T *x, T *y,           \
                              int64_t *idx, int nthreads);                          \
    int fc_pool2d_win_bwd_##S(const fc_pool_geom *g, fc_int DH, fc_int DW,          \
                              int adaptive, int is_max, const T *dy, const T *x,    \
                              T *dx, int nthreads);

FC_DECLARE_OPS(float, s)
FC_DECLARE_OPS(double, d)

/* Instruction-set dispatch (fc_dispatch.c). */
int fc_isa_supported(const char *name);   /* 1 if this build and CPU can run it */
int fc_set_isa(const char *name);         /* 0 ok, -1 unknown name, -2 unsupported */
const char *fc_isa(void);                 /* the active instruction set */
const char *fc_isa_best(void);            /* what detection chose */
const char *fc_kernel_name_s(void);       /* e.g. "sgemm_avx512_14x32" */
const char *fc_kernel_name_d(void);
const char *fc_kernel_name_s_narrow(void); /* the batch-lane path's narrow tiles, e.g. */
const char *fc_kernel_name_d_narrow(void); /* "sgemm_avx512_16x16" (else the same as above) */
int fc_openmp_enabled(void);
int fc_omp_max_threads(void);             /* omp_get_max_threads(), 1 without OpenMP */

/* The CPU's data caches (fc_cpu.c): sizes in bytes and how many CPUs share
 * each, detected once (sysfs, then cpuid) unless set; the block sizes and
 * the algorithms' working-set budgets derive from them. */
typedef struct {
    int64_t l1d, l2, l3;       /* l3: the last level (L2 again where there is no L3) */
    int l2_sharing, l3_sharing;
    const char *source;        /* "sysfs", "cpuid", "FASTCONV_CACHE_SIZES" or "default" */
} fc_cache_sizes;
const fc_cache_sizes *fc_caches(void);
/* Sets the sizes (l3 <= 0: none); all <= 0 returns to detection.  -1 when
 * they are implausible (L1d under 1 KiB, L2 under L1d, L3 under L2).  Only
 * before any computation: plans read them without a lock. */
int fc_set_cache_sizes(int64_t l1d, int64_t l2, int64_t l3);
/* The active kernel's tile and block sizes as the engine uses them (mr, nr,
 * kc, mc, nc) for dsize-byte elements; narrow: the batch-lane tile. */
void fc_active_blocking(int dsize, int narrow, int out[5]);

/* Workspace bytes allocated by this thread since the last reset: the
 * binding resets before each call, so this is what one call used. */
size_t fc_last_workspace_bytes(void);
void fc_reset_workspace_bytes(void);

/* A forward convolution keeps its workspace within this many bytes or 10% of
 * its input plus output, whichever is larger. */
#define FC_FWD_WORKSPACE_MIN ((size_t)16 << 20)

/* Peak FMA throughput of one core, GFLOP/s, measured for `seconds`
 * with the active instruction set (fc_peak.c). dsize is 4 or 8. */
double fc_fma_peak_gflops(int dsize, double seconds);

#endif
