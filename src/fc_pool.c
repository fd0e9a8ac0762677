/* Max and average pooling, forward and backward, float32 and float64.
 *
 * Each N*C plane is handled by one thread from start to end, so backward
 * scatter-adds never race and the result does not depend on the thread count.
 * Within a plane the work goes one output row at a time:
 *
 *   forward   column passes fold the window's input rows into one padded row
 *             buffer, then a row pass reduces each window across it.  The
 *             buffer's pad value (-inf or 0) makes border windows the same as
 *             interior ones, so no loop branches on the border.
 *   max bwd   the same two stages find each window's first maximum (value
 *             and row per column, then the best column per window).  Windows
 *             that do not overlap: dy is spread into a row buffer, then
 *             written into the dx rows.  Overlapping ones: dy is added into
 *             a zeroed dx plane at the maxima's offsets, window by window;
 *             with the offsets the forward recorded (PyTorch's indices) only
 *             that last step runs.  Both orders give the same bits.
 *   avg bwd   the scaled dy row is spread across a row buffer, which is then
 *             written or added into every input row the window covers.
 *
 * Kernel over the whole plane (global pooling) is one reduction per plane.
 * The loops are plain C that the compiler vectorises, compiled twice: for
 * the baseline of the target, and on x86 once more with an AVX2 target
 * attribute, chosen at run time.  No loop reassociates a sum, so both give
 * the same bits.
 */
/* Loop heads on 32-byte boundaries: these loops are short and run many
 * times (a 49-element plane is 6 vector stores); one that straddles a
 * fetch boundary was measured to run at half speed (global average
 * backward, 0.21 -> 0.43 ms, after unrelated code moved it). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("align-loops=32")
#endif
#include <string.h>
#include <stdint.h>
#include <math.h>

#include "fc_core.h"
#include "fc_kernels.h"
#include "fc_util.h"

/* FC_POOL_GENERIC_ONLY builds what a non-x86 machine gets. */
#if defined(FC_HAVE_X86_KERNELS) && !defined(FC_POOL_GENERIC_ONLY)
#define FC_POOL_X86 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FC_POOL_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FC_POOL_ALWAYS_INLINE inline
#endif

/* ---------------------------------------------------------------- helpers */

/* Entries per phase of a row buffer (see fc_pool.inc): the padded row plus
 * one window's overhang, split into SW phases, with slack. */
static fc_int fc_pool_phase_len(const fc_pool_geom *g)
{
    return fc_ceil_div(g->W + 2 * g->PW + g->KW, g->SW) + 2;
}

/* Backward spreads a row of W2 window values over the phases of a row
 * buffer by reading them at offsets down to -((KW-1)/SW): the rows of
 * window values get that many entries in front and run to the phase length
 * (fc_pool.inc, spread). */
static fc_int fc_pool_spread_pad(const fc_pool_geom *g)
{
    return (g->KW - 1) / g->SW;
}

static fc_int fc_pool_spread_len(const fc_pool_geom *g)
{
    return fc_round_up(fc_pool_spread_pad(g) + fc_pool_phase_len(g), 16);
}

/* Real columns (or rows) in the window of output index i. */
static fc_int fc_pool_span(fc_int i, fc_int s, fc_int p, fc_int k, fc_int n)
{
    return fc_min(i * s - p + k, n) - fc_max(i * s - p, 0);
}

/* Below this many elements (input plus output) per thread a second thread
 * costs more than it saves. */
#define FC_POOL_MIN_WORK_PER_THREAD ((fc_int)1 << 15)

/* The team to ask for: at most one thread per plane and per
 * FC_POOL_MIN_WORK_PER_THREAD elements.  Workspace is taken for this many
 * threads; the team that runs may be smaller (fc_pool_share). */
static int fc_pool_threads(const fc_pool_geom *g, int nthreads)
{
#ifdef _OPENMP
    const fc_int planes = g->N * g->C;
    const fc_int work = planes * (g->H * g->W + g->H2 * g->W2);
    const fc_int nt = fc_min(fc_min(nthreads, planes), work / FC_POOL_MIN_WORK_PER_THREAD);
    return (int)fc_max(nt, 1);
#else
    (void)g;
    (void)nthreads;
    return 1;
#endif
}

/* The calling thread's planes [*p0, *p1): whole planes in contiguous,
 * nearly equal ranges over the team that actually runs, which may have
 * fewer threads than were asked for (one in a build without OpenMP).  Each
 * plane goes to one thread whatever the team, so the result does not
 * depend on it. */
static void fc_pool_share(fc_int planes, fc_int *p0, fc_int *p1)
{
    const fc_int tid = fc_thread_id(), nthr = fc_team_size();
    const fc_int q = planes / nthr, r = planes % nthr;
    *p0 = tid * q + fc_min(tid, r);
    *p1 = *p0 + q + (tid < r ? 1 : 0);
}

/* ---------------------------------------------------------------- kernels */

#define FC_POOL_KERNELS

/* generic: the compiler's baseline for the target (SSE2 on x86-64) */
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

#endif

#undef FC_POOL_KERNELS

/* ----------------------------------------------------------- kernel tables */

#define FC_POOL_TAB_TYPE(T, S)                                                 \
    typedef struct {                                                           \
        void (*fwd)(const fc_pool_geom *, const T *, T *, fc_int, fc_int, T *, \
                    const T *, int);                                           \
        void (*max_bwd)(const fc_pool_geom *, const T *, const T *, T *,       \
                        fc_int, fc_int, T *, int32_t *, int64_t *, int);       \
        void (*max_fwd_idx)(const fc_pool_geom *, const T *, T *, int64_t *,   \
                            fc_int, fc_int, T *, int32_t *, int);              \
        fc_int (*max_bwd_idx)(const fc_pool_geom *, const T *, const int64_t *,\
                              T *, fc_int, fc_int);                            \
        void (*avg_bwd)(const fc_pool_geom *, const T *, T *, fc_int, fc_int,  \
                        T *, const T *);                                       \
    } fc_pool_tab_##S;
FC_POOL_TAB_TYPE(float, s)
FC_POOL_TAB_TYPE(double, d)
#undef FC_POOL_TAB_TYPE

#define FC_POOL_TABLE(S, ISA)                                                  \
    static const fc_pool_tab_##S fc_pool_tab_##S##_##ISA = {                   \
        fc_pool_fwd_##S##_##ISA, fc_pool_max_bwd_##S##_##ISA,                  \
        fc_pool_max_fwd_idx_##S##_##ISA, fc_pool_max_bwd_idx_##S##_##ISA,      \
        fc_pool_avg_bwd_##S##_##ISA};
FC_POOL_TABLE(s, generic)
FC_POOL_TABLE(d, generic)
#ifdef FC_POOL_X86
FC_POOL_TABLE(s, avx2)
FC_POOL_TABLE(d, avx2)
#endif
#undef FC_POOL_TABLE

/* Whether the active instruction set (fc_active_kernels(), the core's one
 * dispatch, so FASTCONV_ISA moves pooling too) includes AVX2.  The AVX-512
 * level also runs the AVX2 loops: measured on this project's Zen 4 machine,
 * 512-bit versions of these memory-bound loops were no faster on large rows
 * and up to twice as slow on short ones (16-lane bodies leave 56- or
 * 13-wide rows mostly to their scalar tails). */
static int fc_pool_use_avx2(void)
{
#ifdef FC_POOL_X86
    const fc_kernel_set *k = fc_active_kernels();
    return k == &fc_kernels_avx2 || k == &fc_kernels_avx512;
#else
    return 0;
#endif
}

static const fc_pool_tab_s *fc_pool_get_s(void)
{
#ifdef FC_POOL_X86
    if (fc_pool_use_avx2())
        return &fc_pool_tab_s_avx2;
#endif
    return &fc_pool_tab_s_generic;
}

static const fc_pool_tab_d *fc_pool_get_d(void)
{
#ifdef FC_POOL_X86
    if (fc_pool_use_avx2())
        return &fc_pool_tab_d_avx2;
#endif
    return &fc_pool_tab_d_generic;
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
