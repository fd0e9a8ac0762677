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
 *
 * This file holds the helpers and the instantiation; the kernels are in
 * fc_pool_rows.inc (row buffers), fc_pool_fwd.inc (forward),
 * fc_pool_argmax.inc (window maxima, forward with indices),
 * fc_pool_max_bwd.inc and fc_pool_avg_bwd.inc (backward), gathered into one
 * instance by fc_pool_kernels.inc; the entry points are in
 * fc_pool_drivers.inc.  Windows that are not a plain grid (dilated max
 * pooling, adaptive pooling) go window by window through the loops of
 * fc_pool_windows.inc.
 *
 * ceil_mode needs nothing of its own here: its extra last window starts
 * inside the input or the left padding, so it reads at most a window's
 * overhang past the padded row, which the row buffers' slack holds as pad
 * values; only the divisors of average pooling (fc_pool_count) and the
 * 2x2 backward shortcut (which assumes whole windows) look at it.
 */
/* Loop heads on 32-byte boundaries: these loops are short and run many
 * times (a 49-element plane is 6 vector stores), and a loop that straddles
 * an instruction-fetch boundary is fetched in two pieces on every
 * iteration.  Without the alignment, a loop's speed would depend on where
 * unrelated code happens to place it (docs/tuning.md, Pooling). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("align-loops=32")
#endif
#include <string.h>
#include <stdint.h>
#include <math.h>

#include "fc_core.h"
#include "fc_kernels.h"
#include "fc_plan.h"
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

/* Entries per phase of a row buffer (see fc_pool_rows.inc): the padded row
 * plus one window's overhang, split into SW phases, with slack. */
static fc_int fc_pool_phase_len(const fc_pool_geom *g)
{
    return fc_ceil_div(g->W + 2 * g->PW + g->KW, g->SW) + 2;
}

/* Backward spreads a row of W2 window values over the phases of a row
 * buffer by reading them at offsets down to -((KW-1)/SW): the rows of
 * window values get that many entries in front and run to the phase length
 * (fc_pool_rows.inc, spread). */
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

/* Average pooling's divisor along one axis for output index i: with
 * count_include_pad (cip) the window clipped to the padded input (a window
 * that ceil_mode lets run past the end of the padding counts only what it
 * covers, as PyTorch does), otherwise to the input itself. */
static fc_int fc_pool_count(fc_int i, fc_int s, fc_int p, fc_int k, fc_int n, int cip)
{
    return cip ? fc_min(i * s - p + k, n + p) - (i * s - p) : fc_pool_span(i, s, p, k, n);
}

/* The windows along one axis of n inputs and n2 outputs, for the
 * window-by-window loops (fc_pool_windows.inc): output i reads inputs a[i],
 * a[i] + d, ... below b[i].  A grid window (kernel k, stride s, padding p,
 * dilation d) starts at its first tap inside the input; a window of
 * adaptive pooling (d = 1) is [floor(i*n/n2), ceil((i+1)*n/n2)).  A dilated
 * window whose taps all fall in the padding gets b[i] = a[i]: it is empty. */
static void fc_pool_win_axis(fc_int n, fc_int n2, fc_int k, fc_int s, fc_int p, fc_int d,
                             int adaptive, fc_int *a, fc_int *b)
{
    for (fc_int i = 0; i < n2; i++) {
        if (adaptive) {
            a[i] = i * n / n2;
            b[i] = fc_ceil_div((i + 1) * n, n2);
            continue;
        }
        fc_int s0 = i * s - p;
        const fc_int end = fc_min(s0 + (k - 1) * d + 1, n);
        if (s0 < 0)
            s0 += fc_ceil_div(-s0, d) * d;
        a[i] = s0;
        b[i] = fc_max(end, s0);
    }
}

/* The per-thread workspace of max pooling backward and of the forward that
 * records indices (see max_bwd in fc_pool_max_bwd.inc), for elements of
 * `elem` bytes: bt bytes of elements, then bi bytes of int32s, then int64s;
 * each piece starts on a cache line. */
static size_t fc_pool_argws(const fc_pool_geom *g, size_t elem, size_t *bt, size_t *bi)
{
    const fc_int nP = fc_round_up(g->SW * fc_pool_phase_len(g), 16);
    const fc_int n2 = fc_round_up(g->W2, 16);
    const fc_int nG = fc_pool_spread_len(g);
    *bt = (size_t)fc_round_up((2 * nP + n2 + nG) * (fc_int)elem, FC_ALIGN);
    *bi = (size_t)fc_round_up((nP + n2 + nG) * (fc_int)sizeof(int32_t), FC_ALIGN);
    return *bt + *bi + (size_t)fc_round_up(n2 * (fc_int)sizeof(int64_t), FC_ALIGN);
}

/* Whether max pooling may take the vector argmax, which keeps a window's
 * rows and columns in int32.  FC_POOL_SCALAR_BWD forces the scalar scan,
 * to test it. */
static int fc_pool_vec(const fc_pool_geom *g)
{
#ifdef FC_POOL_SCALAR_BWD
    (void)g;
    return 0;
#else
    return g->KH < (fc_int)INT32_MAX && g->KW < (fc_int)INT32_MAX;
#endif
}

/* Below this many elements (input plus output) per thread a second thread
 * costs more than it saves: a pass moves them at memory speed, about a
 * hundred microseconds for this many, while waking a sleeping thread costs
 * from a few microseconds on bare metal to tens under a hypervisor
 * (docs/robustness.md). */
#define FC_POOL_MIN_WORK_PER_THREAD ((fc_int)1 << 18)

/* The team to ask for: at most one thread per plane and per
 * FC_POOL_MIN_WORK_PER_THREAD elements.  Workspace is taken for this many
 * threads; the team that runs may be smaller (fc_pool_share).  fc_plan_pool
 * reports it. */
int fc_pool_threads(const fc_pool_geom *g, int nthreads)
{
#ifdef _OPENMP
    const fc_int planes = g->N * g->C;
    const fc_int work = planes * (g->H * g->W + g->H2 * g->W2);
    const fc_int nt = fc_min(fc_min(fc_threads_usable(nthreads), planes),
                             work / FC_POOL_MIN_WORK_PER_THREAD);
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

/* -------------------------------------------------------------- instances */

#define FC_POOL_CAT_(a, b) a##b
#define FC_POOL_CAT(a, b) FC_POOL_CAT_(a, b)
/* A kernel's name in one instance: fc_pool_fwd_s_avx2. */
#define FC_POOL_NAME_(name, s, isa) fc_pool_##name##_##s##_##isa
#define FC_POOL_NAME(name, s, isa) FC_POOL_NAME_(name, s, isa)

/* Element types, by the suffix of their entry points: the type, its -inf,
 * an unsigned integer as wide (for the bit blends of fc_pool_rows.inc) and a
 * signed one (for the row indices of fc_pool_small.inc). */
#define FC_POOL_T_s float
#define FC_POOL_NEG_INF_s (-HUGE_VALF)
#define FC_POOL_UINT_s uint32_t
#define FC_POOL_T_d double
#define FC_POOL_NEG_INF_d (-HUGE_VAL)
#define FC_POOL_UINT_d uint64_t
#define FC_POOL_INT_s int32_t
#define FC_POOL_INT_d int64_t

/* Instruction sets, by name: the target attribute of their kernels.
 * generic is the compiler's baseline for the target (SSE2 on x86-64).
 * AVX2 goes without FMA: nothing here multiplies and adds, and leaving FMA
 * out keeps every variant's rounding identical. */
#define FC_POOL_TGT_generic
#define FC_POOL_TGT_avx2 __attribute__((target("avx2")))

/* Every (element type, instruction set) pair: fc_pool_kernels.inc reads
 * FC_POOL_S and FC_POOL_ISA, and undefines both. */
#define FC_POOL_S s
#define FC_POOL_ISA generic
#include "fc_pool_kernels.inc"
#define FC_POOL_S d
#define FC_POOL_ISA generic
#include "fc_pool_kernels.inc"
#ifdef FC_POOL_X86
#define FC_POOL_S s
#define FC_POOL_ISA avx2
#include "fc_pool_kernels.inc"
#define FC_POOL_S d
#define FC_POOL_ISA avx2
#include "fc_pool_kernels.inc"
#endif

/* Which instance runs: an index into each element type's kernel tables
 * (fc_pool_drivers.inc), 0 for generic, 1 for avx2.  It follows the active
 * kernel table (fc_active_kernels(), the core's one dispatch, so
 * FASTCONV_ISA and set_isa move pooling too).  The AVX-512 level also runs
 * the AVX2 loops: they are bound by memory, so wider vectors gain nothing
 * on long rows, and on the short rows pooling often has, 16-lane bodies
 * leave most of a row to their scalar tails (docs/tuning.md, Pooling).
 * On planes narrow enough for two vectors a row, its forward and max
 * backward have kernels of their own instead (fc_pool_small.inc), masked
 * loads in place of the tails.
 * Every other table, NEON's on AArch64 included, runs the generic instance,
 * which the compiler vectorises for the target's baseline (NEON there). */
static int fc_pool_isa(void)
{
#ifdef FC_POOL_X86
    const fc_kernel_set *k = fc_active_kernels();
    if (k == &fc_kernels_avx2 || k == &fc_kernels_avx512)
        return 1;
#endif
    return 0;
}

#ifdef FC_POOL_X86
#include <immintrin.h>
#define FC_POOL_S s
#include "fc_pool_small.inc"
#define FC_POOL_S d
#include "fc_pool_small.inc"
#endif

int fc_pool_narrow(const fc_pool_geom *g, int dsize)
{
#ifdef FC_POOL_X86
    return dsize == 4 ? fc_pool_small_takes_s(g) : fc_pool_small_takes_d(g);
#else
    (void)g;
    (void)dsize;
    return 0;
#endif
}

/* ----------------------------------------------------------- entry points */

/* fc_pool_drivers.inc reads FC_POOL_S and undefines it. */
#define FC_POOL_S s
#include "fc_pool_drivers.inc"
#define FC_POOL_S d
#include "fc_pool_drivers.inc"
#define FC_POOL_S s
#include "fc_pool_windows.inc"
#define FC_POOL_S d
#include "fc_pool_windows.inc"
