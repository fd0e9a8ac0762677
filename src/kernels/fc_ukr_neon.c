/* NEON (AArch64 Advanced SIMD) GEMM microkernels: float32 8x12 and float64
 * 8x6.  Both tiles are eight rows (output channels) by three 128-bit vectors
 * of columns (output pixels): 12 floats or 6 doubles.
 *
 * Register budget (32 q registers): the 8 x 3-vector tile keeps 24
 * accumulators live.  Each k step loads the step's three B vectors and the
 * step's eight A values as whole vectors (two q registers of floats, four of
 * doubles), and every FMA takes its A value as a lane of one of those:
 * FMLA (by element), vfmaq_laneq_*, which reads any lane of any of the 32
 * registers.  No broadcasts: 24 + 3 + 2 = 29 registers in float32, 24 + 3 + 4
 * = 31 in float64, so nothing spills.  A fourth B vector (8 x 16 floats)
 * would need 32 accumulators, and nine or more rows would not leave room
 * for A; 12 x 8 (24 accumulators too) would round output-channel counts
 * up to multiples of 12 (64 channels: 72 rows), where eight divides the
 * usual ones.
 *
 * Chains against latency x pipes: AArch64 cores issue two to four 128-bit
 * FMAs per cycle with a latency of about 4 cycles, so up to 16 independent
 * chains are needed to keep every pipe busy; the full tile has 24.  Each k
 * step issues 24 FMAs against 5 vector loads (float32; 7 in float64), within
 * the two or three loads per cycle these cores sustain even at four FMAs per
 * cycle.
 *
 * Every output is one chain of FMAs over k, in order, in every tile shape:
 * no edge tile splits its sums over several sets of accumulators (as short
 * x86 tiles do to hide latency), so an output's bits do not depend on where
 * its row or column falls in the tiling.  A batch gives the same bits whole
 * or image by image, and so does the turned GEMM, whose rows are pixels.
 * The price: an edge tile of m rows and nv vectors has only m * nv chains
 * and runs latency-bound when that is under the ~16 the pipes need.
 *
 * The loop runs one k step per iteration: its four scalar instructions go
 * to the integer pipes, and unrolled copies make GCC move accumulators
 * between registers, or spill them, at the back edge.  With that and the
 * end-of-step barrier of KSTEP, built with GCC 12 at -O2 and -O3, no loop of
 * these kernels holds a stack access or a register move.
 *
 * Edge tiles: every (m, nv) pair, nv being the number of B vectors the tile
 * needs, is its own specialisation, so a short tile only does the FMAs it
 * needs, and rows >= m are neither read nor written.  The last vector of
 * each row is read and written lane by lane when it is partial (NEON has no
 * masked loads or stores), so no column >= n is touched either.
 *
 * Panels: packed A and B are read as whole vectors, which NEON loads take
 * at any address; the kernels assume only element alignment (a B row of 48
 * bytes does not keep later panels on 64-byte boundaries).
 *
 * FC_UK_STREAM is ignored: C is written with ordinary stores (a non-temporal
 * store would also need a barrier where the engine's FC_STORE_FENCE is a
 * no-op).  ReLU keeps x unless x < 0, as the portable kernels do: NaN and
 * -0.0 pass through unchanged (FMAX would turn -0.0 into +0.0).
 *
 * Advanced SIMD is part of every AArch64 CPU, so no target attributes and no
 * run-time check are needed; elsewhere this file compiles to nothing.
 */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "../fc_kernels.h"

#define UK_MR 8
#define UK_NR_S 12   /* float32 tile: UK_MR x UK_NR_S */
#define UK_NR_D 6    /* float64 tile: UK_MR x UK_NR_D */

/* Cache blocking where the caches cannot be read (fc_fit_blocking derives
 * it from them otherwise, by the same rules), in BLIS terms: the kc x NR
 * micro-panel of B is
 * reused from L1 by every micro-panel of an mc x kc block of A, which stays in
 * L2, while the kc x nc block of B sits in L2 or L3.  AArch64 cores have L1d
 * of 32 to 128 KiB and L2 of 512 KiB or more, so:
 *   KC 256: the B micro-panel is 12 KiB in both types, and with the A
 *       micro-panel streaming next to it (8 / 16 KiB) the pair fits a 32 KiB
 *       L1; the C-tile update (24 loads and stores) is ~1% of the 8*kc FMA
 *       steps.
 *   MC: the A block mc*kc*size is 128 KiB (128 rows float32, 64 rows
 *       float64), a quarter of the smallest L2; multiples of MR, and 128
 *       rows hold a 128-channel layer in one block.
 *   NC: the B block kc*nc*size is 3 MiB, within a shared L2 or a per-core
 *       share of L3; multiples of NR.
 */
#define S_KC 256
#define S_MC 128
#define S_NC 3072
#define D_KC 256
#define D_MC 64
#define D_NC 1536

#define INLINE static inline __attribute__((always_inline))

/* Row list for the macros below: X(row, arg). */
#define ROWS(X, u) X(0, u) X(1, u) X(2, u) X(3, u) X(4, u) X(5, u) X(6, u) X(7, u)

/* Partial vectors: the first r lanes of p (1 <= r <= lanes), never touching
 * p[r] and beyond; loaded lanes past r are zero. */
INLINE float32x4_t s_load_part(const float *p, int r)
{
    switch (r) {
    case 1:
        return vld1q_lane_f32(p, vdupq_n_f32(0.0f), 0);
    case 2:
        return vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
    case 3:
        return vcombine_f32(vld1_f32(p), vld1_lane_f32(p + 2, vdup_n_f32(0.0f), 0));
    default:
        return vld1q_f32(p);
    }
}

INLINE void s_store_part(float *p, float32x4_t v, int r)
{
    switch (r) {
    case 1:
        vst1q_lane_f32(p, v, 0);
        break;
    case 2:
        vst1_f32(p, vget_low_f32(v));
        break;
    case 3:
        vst1_f32(p, vget_low_f32(v));
        vst1q_lane_f32(p + 2, v, 2);
        break;
    default:
        vst1q_f32(p, v);
        break;
    }
}

INLINE float64x2_t d_load_part(const double *p, int r)
{
    return r == 1 ? vld1q_lane_f64(p, vdupq_n_f64(0.0), 0) : vld1q_f64(p);
}

INLINE void d_store_part(double *p, float64x2_t v, int r)
{
    if (r == 1)
        vst1q_lane_f64(p, v, 0);
    else
        vst1q_f64(p, v);
}

/* The tile body, written once for both element types.  It expects, from the
 * enclosing function: compile-time constants MRE (rows computed, 1..8), NV
 * (vectors per row, 1..3) and MASKED (the last vector may be partial); the
 * microkernel arguments; and the type macros T, VEC, VL (lanes), NR (the
 * panel's columns), VZERO, VDUP, VLD, VST, VLD_PART, VST_PART, VADD,
 * VFMA_LANE(acc, b, a, lane) (acc + b * a[lane]), VRELU, and AVEC_<i> /
 * ALANE_<i>: the A vector and lane holding row i's value.
 *
 * Accumulators are acc<row>_<vector> (the constants fold, unused ones are
 * dropped). */
#define ACC_DECL(i, u) VEC acc##i##_0 = VZERO(), acc##i##_1 = VZERO(), acc##i##_2 = VZERO();

#define FMA_ROW(i, u)                                                              \
    if (MRE > i) {                                                                 \
        acc##i##_0 = VFMA_LANE(acc##i##_0, b0, AVEC_##i, ALANE_##i);               \
        if (NV > 1)                                                                \
            acc##i##_1 = VFMA_LANE(acc##i##_1, b1, AVEC_##i, ALANE_##i);           \
        if (NV > 2)                                                                \
            acc##i##_2 = VFMA_LANE(acc##i##_2, b2, AVEC_##i, ALANE_##i);           \
    }

/* One k step: the B vectors the tile needs, the A vectors holding its rows
 * (whole vectors of the full panel), then the FMAs.  The empty asm with a
 * memory clobber ends the step for the compiler: no load of the next step
 * moves above these FMAs.  Without it GCC's scheduler hoists later steps'
 * loads, which needs more than the 32 registers and spills accumulators to
 * the stack inside the loop; the CPU runs loads ahead by itself. */
#define KSTEP                                                                      \
    b0 = VLD(b);                                                                   \
    if (NV > 1)                                                                    \
        b1 = VLD(b + VL);                                                          \
    if (NV > 2)                                                                    \
        b2 = VLD(b + 2 * VL);                                                      \
    a0 = VLD(a);                                                                   \
    if (MRE > VL)                                                                  \
        a1 = VLD(a + VL);                                                          \
    if (MRE > 2 * VL)                                                              \
        a2 = VLD(a + 2 * VL);                                                      \
    if (MRE > 3 * VL)                                                              \
        a3 = VLD(a + 3 * VL);                                                      \
    ROWS(FMA_ROW, 0)                                                               \
    __asm__ volatile("" ::: "memory");

/* Writing a row of C soon: its first and last element's lines (a 48-byte
 * row may span two), so the misses overlap the k loop.  Never faults. */
#define PREFETCH_ROW(i, u)                                                         \
    if (MRE > i) {                                                                 \
        __builtin_prefetch(C + (int64_t)(i) * ldc, 1, 3);                          \
        __builtin_prefetch(C + (int64_t)(i) * ldc + n - 1, 1, 3);                  \
    }

/* The last vector of a row (vector NV - 1): partial when MASKED. */
#define LOAD_LAST(p) (MASKED ? VLD_PART((p), r) : VLD(p))
#define STORE_LAST(p, v)                                                           \
    do {                                                                           \
        if (MASKED)                                                                \
            VST_PART((p), (v), r);                                                 \
        else                                                                       \
            VST((p), (v));                                                         \
    } while (0)

#define ADD_C_ROW(i, u)                                                            \
    if (MRE > i) {                                                                 \
        const T *ci = C + (int64_t)(i) * ldc;                                      \
        if (NV == 1) {                                                             \
            acc##i##_0 = VADD(acc##i##_0, LOAD_LAST(ci));                          \
        } else if (NV == 2) {                                                      \
            acc##i##_0 = VADD(acc##i##_0, VLD(ci));                                \
            acc##i##_1 = VADD(acc##i##_1, LOAD_LAST(ci + VL));                     \
        } else {                                                                   \
            acc##i##_0 = VADD(acc##i##_0, VLD(ci));                                \
            acc##i##_1 = VADD(acc##i##_1, VLD(ci + VL));                           \
            acc##i##_2 = VADD(acc##i##_2, LOAD_LAST(ci + 2 * VL));                 \
        }                                                                          \
    }

#define ADD_BIAS_ROW(i, u)                                                         \
    if (MRE > i) {                                                                 \
        const VEC bi = VDUP(bias[i]);                                              \
        acc##i##_0 = VADD(acc##i##_0, bi);                                         \
        if (NV > 1)                                                                \
            acc##i##_1 = VADD(acc##i##_1, bi);                                     \
        if (NV > 2)                                                                \
            acc##i##_2 = VADD(acc##i##_2, bi);                                     \
    }

#define RELU_ROW(i, u)                                                             \
    if (MRE > i) {                                                                 \
        acc##i##_0 = VRELU(acc##i##_0);                                            \
        if (NV > 1)                                                                \
            acc##i##_1 = VRELU(acc##i##_1);                                        \
        if (NV > 2)                                                                \
            acc##i##_2 = VRELU(acc##i##_2);                                        \
    }

#define STORE_ROW(i, u)                                                            \
    if (MRE > i) {                                                                 \
        T *ci = C + (int64_t)(i) * ldc;                                            \
        if (NV == 1) {                                                             \
            STORE_LAST(ci, acc##i##_0);                                            \
        } else if (NV == 2) {                                                      \
            VST(ci, acc##i##_0);                                                   \
            STORE_LAST(ci + VL, acc##i##_1);                                       \
        } else {                                                                   \
            VST(ci, acc##i##_0);                                                   \
            VST(ci + VL, acc##i##_1);                                              \
            STORE_LAST(ci + 2 * VL, acc##i##_2);                                   \
        }                                                                          \
    }

#define UNUSED_ROW(i, u) (void)acc##i##_0; (void)acc##i##_1; (void)acc##i##_2;

#define TILE_BODY                                                                  \
    const int r = n - (NV - 1) * VL; /* lanes of the last vector, 1..VL */         \
    VEC b0, b1 = VZERO(), b2 = VZERO();                                            \
    VEC a0, a1 = VZERO(), a2 = VZERO(), a3 = VZERO();                              \
    ROWS(ACC_DECL, 0)                                                              \
    ROWS(PREFETCH_ROW, 0)                                                          \
    const T *a = A, *b = B;                                                        \
    int64_t k = kc;                                                                \
    for (; k > 0; k--, a += UK_MR, b += NR) {                                      \
        KSTEP                                                                      \
    }                                                                              \
    if (flags & FC_UK_ACC) {                                                       \
        ROWS(ADD_C_ROW, 0)                                                         \
    }                                                                              \
    if (bias) {                                                                    \
        ROWS(ADD_BIAS_ROW, 0)                                                      \
    }                                                                              \
    if (flags & FC_UK_RELU) {                                                      \
        ROWS(RELU_ROW, 0)                                                          \
    }                                                                              \
    ROWS(STORE_ROW, 0)                                                             \
    ROWS(UNUSED_ROW, 0)                                                            \
    (void)r; (void)a0; (void)a1; (void)a2; (void)a3; (void)b1; (void)b2;

/* ---------------------------------------------------------------- float32 */

#define T float
#define VEC float32x4_t
#define VL 4
#define NR UK_NR_S
#define VZERO() vdupq_n_f32(0.0f)
#define VDUP(x) vdupq_n_f32(x)
#define VLD(p) vld1q_f32(p)
#define VST(p, v) vst1q_f32((p), (v))
#define VLD_PART(p, r) s_load_part((p), (r))
#define VST_PART(p, v, r) s_store_part((p), (v), (r))
#define VADD(x, y) vaddq_f32((x), (y))
#define VFMA_LANE(c, b, a, l) vfmaq_laneq_f32((c), (b), (a), (l))
/* x < 0 ? 0 : x, lane by lane (the comparison is false for NaN and -0.0) */
#define VRELU(x) vbslq_f32(vcltzq_f32(x), vdupq_n_f32(0.0f), (x))
#define AVEC_0 a0
#define AVEC_1 a0
#define AVEC_2 a0
#define AVEC_3 a0
#define AVEC_4 a1
#define AVEC_5 a1
#define AVEC_6 a1
#define AVEC_7 a1
#define ALANE_0 0
#define ALANE_1 1
#define ALANE_2 2
#define ALANE_3 3
#define ALANE_4 0
#define ALANE_5 1
#define ALANE_6 2
#define ALANE_7 3

INLINE void s_tile(const int MRE, const int NV, const int MASKED, int64_t kc,
                   const float *A, const float *B, float *C, int64_t ldc, int n,
                   const float *bias, unsigned flags)
{
    TILE_BODY
}

#undef T
#undef VEC
#undef VL
#undef NR
#undef VZERO
#undef VDUP
#undef VLD
#undef VST
#undef VLD_PART
#undef VST_PART
#undef VADD
#undef VFMA_LANE
#undef VRELU
#undef AVEC_0
#undef AVEC_1
#undef AVEC_2
#undef AVEC_3
#undef AVEC_4
#undef AVEC_5
#undef AVEC_6
#undef AVEC_7
#undef ALANE_0
#undef ALANE_1
#undef ALANE_2
#undef ALANE_3
#undef ALANE_4
#undef ALANE_5
#undef ALANE_6
#undef ALANE_7

/* ---------------------------------------------------------------- float64 */

#define T double
#define VEC float64x2_t
#define VL 2
#define NR UK_NR_D
#define VZERO() vdupq_n_f64(0.0)
#define VDUP(x) vdupq_n_f64(x)
#define VLD(p) vld1q_f64(p)
#define VST(p, v) vst1q_f64((p), (v))
#define VLD_PART(p, r) d_load_part((p), (r))
#define VST_PART(p, v, r) d_store_part((p), (v), (r))
#define VADD(x, y) vaddq_f64((x), (y))
#define VFMA_LANE(c, b, a, l) vfmaq_laneq_f64((c), (b), (a), (l))
#define VRELU(x) vbslq_f64(vcltzq_f64(x), vdupq_n_f64(0.0), (x))
#define AVEC_0 a0
#define AVEC_1 a0
#define AVEC_2 a1
#define AVEC_3 a1
#define AVEC_4 a2
#define AVEC_5 a2
#define AVEC_6 a3
#define AVEC_7 a3
#define ALANE_0 0
#define ALANE_1 1
#define ALANE_2 0
#define ALANE_3 1
#define ALANE_4 0
#define ALANE_5 1
#define ALANE_6 0
#define ALANE_7 1

INLINE void d_tile(const int MRE, const int NV, const int MASKED, int64_t kc,
                   const double *A, const double *B, double *C, int64_t ldc, int n,
                   const double *bias, unsigned flags)
{
    TILE_BODY
}

/* ------------------------------------------------- edge tiles and entries */

/* One out-of-line function per (rows, vectors) edge shape keeps each
 * specialisation's register allocation separate and the full-tile path small. */
#define EDGE_FN(S, T, i, nv)                                                       \
    static void S##_edge_##i##_##nv(int64_t kc, const T *A, const T *B, T *C,      \
                                    int64_t ldc, int m, int n, const T *bias,      \
                                    unsigned flags)                                \
    {                                                                              \
        (void)m;                                                                   \
        S##_tile(i + 1, nv, 1, kc, A, B, C, ldc, n, bias, flags);                  \
    }
#define EDGE_FNS(i, u)                                                             \
    EDGE_FN(s, float, i, 1) EDGE_FN(s, float, i, 2) EDGE_FN(s, float, i, 3)        \
    EDGE_FN(d, double, i, 1) EDGE_FN(d, double, i, 2) EDGE_FN(d, double, i, 3)

ROWS(EDGE_FNS, 0)

#define S_EDGE(i, nv) s_edge_##i##_##nv,
#define D_EDGE(i, nv) d_edge_##i##_##nv,

static const fc_ukr_s_t s_edges[3][UK_MR] = {
    {ROWS(S_EDGE, 1)}, {ROWS(S_EDGE, 2)}, {ROWS(S_EDGE, 3)}};
static const fc_ukr_d_t d_edges[3][UK_MR] = {
    {ROWS(D_EDGE, 1)}, {ROWS(D_EDGE, 2)}, {ROWS(D_EDGE, 3)}};

static void sgemm_neon_8x12(int64_t kc, const float *A, const float *B, float *C,
                            int64_t ldc, int m, int n, const float *bias, unsigned flags)
{
    if (m == UK_MR && n == UK_NR_S)
        s_tile(UK_MR, 3, 0, kc, A, B, C, ldc, n, bias, flags);
    else
        s_edges[(n - 1) / 4][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

static void dgemm_neon_8x6(int64_t kc, const double *A, const double *B, double *C,
                           int64_t ldc, int m, int n, const double *bias, unsigned flags)
{
    if (m == UK_MR && n == UK_NR_D)
        d_tile(UK_MR, 3, 0, kc, A, B, C, ldc, n, bias, flags);
    else
        d_edges[(n - 1) / 2][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

/* No tile reading B in place (fn_sb NULL): the engine packs B.  No narrow
 * tile either: the lanes path's second entries repeat the first.  Three
 * vectors per row (nv 3), where the x86 tiles have two. */
const fc_kernel_set fc_kernels_neon = {
    "neon",
    {"sgemm_neon_8x12", UK_MR, UK_NR_S, S_KC, S_MC, S_NC, sgemm_neon_8x12, NULL, 3},
    {"dgemm_neon_8x6", UK_MR, UK_NR_D, D_KC, D_MC, D_NC, dgemm_neon_8x6, NULL, 3},
    {"sgemm_neon_8x12", UK_MR, UK_NR_S, S_KC, S_MC, S_NC, sgemm_neon_8x12, NULL, 3},
    {"dgemm_neon_8x6", UK_MR, UK_NR_D, D_KC, D_MC, D_NC, dgemm_neon_8x6, NULL, 3},
};

#endif
