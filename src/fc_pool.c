/* Max and average pooling, forward and backward, float32 and float64.
 *
 * Each N*C plane is handled by one thread from start to end, so backward
 * scatter-adds never race and the result does not depend on the thread count.
 * Within a plane the work goes one output row at a time:
 *
 *   forward   a column pass folds the window's rows into one padded row
 *             buffer (contiguous, vectorised), then a row pass reduces each
 *             window across that buffer (contiguous for stride 1,
 *             de-interleaving loads for stride 2).  The buffer's pad value
 *             (-inf or 0) makes border windows the same as interior ones.
 *   max bwd   the argmax of every interior window is found with vector loops
 *             over the window's taps, then dy is added in scalar order;
 *             border windows use a clipped scalar scan.
 *   avg bwd   the scaled dy row is spread across a padded row buffer, which
 *             is then added to every input row the window covers.
 *
 * The loops are compiled once per instruction set (generic, and on x86 also
 * AVX2 and AVX-512F through target attributes); the set named by
 * fc_active_kernels() is used.
 */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>

#include "fc_core.h"
#include "fc_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* FC_POOL_GENERIC_ONLY builds what a non-x86 machine gets. */
#if defined(FC_HAVE_X86_KERNELS) && !defined(FC_POOL_GENERIC_ONLY)
#define FC_POOL_X86 1
#endif

/* ------------------------------------------------------------ kernel tables */

typedef struct {
    void (*fwd)(const fc_pool_geom *, const float *, float *, fc_int, fc_int,
                float *, const float *, int);
    void (*max_bwd)(const fc_pool_geom *, const float *, const float *, float *,
                    fc_int, fc_int, float *, float *, float *, int32_t *,
                    int32_t *, int32_t *, int);
    void (*avg_bwd)(const fc_pool_geom *, const float *, float *, fc_int, fc_int,
                    float *, float *, const float *);
} fc_pool_tab_s;

typedef struct {
    void (*fwd)(const fc_pool_geom *, const double *, double *, fc_int, fc_int,
                double *, const double *, int);
    void (*max_bwd)(const fc_pool_geom *, const double *, const double *, double *,
                    fc_int, fc_int, double *, double *, double *, int32_t *,
                    int32_t *, int32_t *, int);
    void (*avg_bwd)(const fc_pool_geom *, const double *, double *, fc_int, fc_int,
                    double *, double *, const double *);
} fc_pool_tab_d;

#if defined(__GNUC__) || defined(__clang__)
#define FC_POOL_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FC_POOL_ALWAYS_INLINE inline
#endif

#define FC_POOL_KERNELS

/* generic: whatever the baseline of the compiler's target is */
#define FC_TGT
#define T float
#define T_NEG_INF (-HUGE_VALF)
#define T_UINT uint32_t
#define FCP(name) fc_pool_##name##_s_generic
#include "fc_pool.inc"
#undef T
#undef T_NEG_INF
#undef T_UINT
#undef FCP
#define T double
#define T_NEG_INF (-HUGE_VAL)
#define T_UINT uint64_t
#define FCP(name) fc_pool_##name##_d_generic
#include "fc_pool.inc"
#undef T
#undef T_NEG_INF
#undef T_UINT
#undef FCP
#undef FC_TGT

#ifdef FC_POOL_X86
/* AVX2 without FMA: nothing here multiplies and adds, and leaving FMA out
 * keeps every variant's rounding identical. */
#define FC_TGT __attribute__((target("avx2")))
#define T float
#define T_NEG_INF (-HUGE_VALF)
#define T_UINT uint32_t
#define FCP(name) fc_pool_##name##_s_avx2
#include "fc_pool.inc"
#undef T
#undef T_NEG_INF
#undef T_UINT
#undef FCP
#define T double
#define T_NEG_INF (-HUGE_VAL)
#define T_UINT uint64_t
#define FCP(name) fc_pool_##name##_d_avx2
#include "fc_pool.inc"
#undef T
#undef T_NEG_INF
#undef T_UINT
#undef FCP
#undef FC_TGT

#define FC_TGT __attribute__((target("avx512f")))
#define T float
#define T_NEG_INF (-HUGE_VALF)
#define T_UINT uint32_t
#define FCP(name) fc_pool_##name##_s_avx512
#include "fc_pool.inc"
#undef T
#undef T_NEG_INF
#undef T_UINT
#undef FCP
#define T double
#define T_NEG_INF (-HUGE_VAL)
#define T_UINT uint64_t
#define FCP(name) fc_pool_##name##_d_avx512
#include "fc_pool.inc"
#undef T
#undef T_NEG_INF
#undef T_UINT
#undef FCP
#undef FC_TGT
#endif

#undef FC_POOL_KERNELS

#define FC_POOL_TABLES(S)                                                      \
    static const fc_pool_tab_##S fc_pool_tab_##S##_generic = {                 \
        fc_pool_fwd_##S##_generic, fc_pool_max_bwd_##S##_generic,              \
        fc_pool_avg_bwd_##S##_generic};
FC_POOL_TABLES(s)
FC_POOL_TABLES(d)
#undef FC_POOL_TABLES

#ifdef FC_POOL_X86
#define FC_POOL_TABLES(S, ISA)                                                 \
    static const fc_pool_tab_##S fc_pool_tab_##S##_##ISA = {                   \
        fc_pool_fwd_##S##_##ISA, fc_pool_max_bwd_##S##_##ISA,                  \
        fc_pool_avg_bwd_##S##_##ISA};
FC_POOL_TABLES(s, avx2)
FC_POOL_TABLES(d, avx2)
FC_POOL_TABLES(s, avx512)
FC_POOL_TABLES(d, avx512)
#undef FC_POOL_TABLES
#endif

/* 0 generic, 1 AVX2, 2 AVX-512F: follows the GEMM dispatch, so that
 * FASTCONV_ISA moves pooling too. */
static int fc_pool_level(void)
{
#ifdef FC_POOL_X86
    const fc_kernel_set *k = fc_active_kernels();
    if (k && k->isa) {
        if (strcmp(k->isa, "avx512") == 0)
            return 2;
        if (strcmp(k->isa, "avx2") == 0)
            return 1;
    }
#endif
    return 0;
}

static const fc_pool_tab_s *fc_pool_get_s(void)
{
#ifdef FC_POOL_X86
    switch (fc_pool_level()) {
    case 2: return &fc_pool_tab_s_avx512;
    case 1: return &fc_pool_tab_s_avx2;
    default: break;
    }
#endif
    return &fc_pool_tab_s_generic;
}

static const fc_pool_tab_d *fc_pool_get_d(void)
{
#ifdef FC_POOL_X86
    switch (fc_pool_level()) {
    case 2: return &fc_pool_tab_d_avx512;
    case 1: return &fc_pool_tab_d_avx2;
    default: break;
    }
#endif
    return &fc_pool_tab_d_generic;
}

/* ---------------------------------------------------------------- helpers */

/* Below this many elements (input plus output) a second thread costs more
 * than it saves. */
#define FC_POOL_MIN_WORK_PER_THREAD ((fc_int)1 << 15)

static int fc_pool_threads(const fc_pool_geom *g, int nthreads)
{
#ifdef _OPENMP
    fc_int nt = nthreads < 1 ? 1 : nthreads;
    const fc_int planes = g->N * g->C;
    const fc_int work = planes * (g->H * g->W + g->H2 * g->W2);
    const fc_int by_work = work / FC_POOL_MIN_WORK_PER_THREAD;
    if (nt > planes)
        nt = planes;
    if (nt > by_work)
        nt = by_work;
    return nt < 1 ? 1 : (int)nt;
#else
    (void)g;
    (void)nthreads;
    return 1;
#endif
}

static int fc_pool_tid(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int fc_pool_nthr(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Static partition of [0, n) into nthr nearly equal contiguous ranges. */
static void fc_pool_split(fc_int n, int tid, int nthr, fc_int *b, fc_int *e)
{
    const fc_int q = n / nthr, r = n % nthr;
    *b = tid * q + (tid < r ? tid : r);
    *e = *b + q + (tid < r ? 1 : 0);
}

/* Workspace pieces start on cache lines. */
static size_t fc_pool_round(size_t bytes)
{
    return (bytes + 63) & ~(size_t)63;
}

static void *fc_pool_alloc(size_t bytes)
{
    char *raw = (char *)malloc(bytes + 64 + sizeof(void *));
    if (!raw)
        return NULL;
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}

static void fc_pool_free(void *p)
{
    if (p)
        free(((void **)p)[-1]);
}

/* Real columns (or rows) in the window of output index i. */
static fc_int fc_pool_span(fc_int i, fc_int s, fc_int p, fc_int k, fc_int n)
{
    fc_int a = i * s - p, b = a + k;
    if (a < 0) a = 0;
    if (b > n) b = n;
    return b - a;
}

/* ---------------------------------------------------------- entry points */

#define FC_POOL_DRIVERS

#define T float
#define S s
#define FC_POOL_TAB fc_pool_tab_s
#define FC_POOL_GET fc_pool_get_s
#include "fc_pool.inc"
#undef T
#undef S
#undef FC_POOL_TAB
#undef FC_POOL_GET

#define T double
#define S d
#define FC_POOL_TAB fc_pool_tab_d
#define FC_POOL_GET fc_pool_get_d
#include "fc_pool.inc"
#undef T
#undef S
#undef FC_POOL_TAB
#undef FC_POOL_GET

#undef FC_POOL_DRIVERS
