/* AVX-512F GEMM microkernels: float32 14x32 and float64 14x16.
 *
 * Register budget (32 zmm): a 14 x 2-vector tile keeps 28 accumulators live,
 * leaving room for the two B vectors of the current k and one broadcast of A.
 * 28 independent FMA chains are more than latency x FMA ports on any current
 * core (4 x 2 at most), and each k step issues 28 FMAs against 2 vector loads
 * and 14 scalar broadcasts, so the loop is bound by the FMA ports, not by
 * loads.  Two vectors of pixels (32 floats, 16 doubles) also waste less of a
 * small feature map (7x7, 14x14) in edge tiles than a three-vector tile would.
 *
 * Edge tiles: every (m, nv) pair, nv being the number of B vectors the tile
 * needs, is its own specialisation, so a short tile only does the FMAs it
 * needs and never touches a row >= m; the last vector of each row is read and
 * written under a lane mask, so no column >= n is touched either.
 *
 * Built without -m flags: every function carrying intrinsics has its own
 * target attribute, and the dispatcher only calls these on CPUs with AVX-512F.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <stdint.h>

#include "../fc_kernels.h"

#define UK_MR 14

/* Default cache blocking, in BLIS terms: the kc x NR micro-panel of B is
 * reused from L1 by every micro-panel of an mc x kc block of A, which stays in
 * L2, while the kc x nc block of B sits in L2/L3.  Sizes assume L1d 32-48 KiB,
 * L2 1 MiB per core, a shared L3 (Skylake-SP, Ice Lake, Zen 4, Zen 5).
 *   KC 256: each k step reads 2 B vectors per 14 FMA cycles, so even the part
 *       of the 32 KiB B micro-panel that falls out of a 32 KiB L1 streams from
 *       L2 without stalls (kc = 128..512 measured within 3% of each other);
 *       256 halves the passes over C against 128 for convolution depths
 *       C*FH*FW of 576..4608, and keeps the C-tile update (28 loads and
 *       stores) under 1% of the 14*kc FMA cycles.
 *   MC: the A block mc*kc*size is about half of L2: 518 rows (518 KiB) in
 *       float32, so layers with up to 512 output channels need one block;
 *       266 rows (532 KiB) in float64.  Multiples of MR.
 *   NC: the B block kc*nc*size is 4 MiB, a per-core share of L3 that keeps
 *       a forward convolution's workspace well under 16 MiB at two threads.
 */
#define S_KC 256
#define S_MC 518
#define S_NC 4096
#define D_KC 256
#define D_MC 266
#define D_NC 2048

#define TGT __attribute__((target("avx512f")))
#define INLINE_TGT static inline __attribute__((always_inline, target("avx512f")))

/* Row lists for the macros below: X(row, arg). */
#define ROWS(X, u)                                                                 \
    X(0, u) X(1, u) X(2, u) X(3, u) X(4, u) X(5, u) X(6, u)                         \
    X(7, u) X(8, u) X(9, u) X(10, u) X(11, u) X(12, u) X(13, u)

/* The tile body, written once for both element types.  It expects, from the
 * enclosing function: compile-time constants MRE (rows computed), NV (1 or 2
 * vectors per row), MASKED (last vector partial); the microkernel arguments;
 * and the type macros T, VEC, VL, VSET1, VLOADA, VLOADU, VSTOREU, VMLOAD,
 * VMSTORE, VFMA, VADD, VMAX, VZERO, MASK_T, MAKE_MASK.
 *
 * Accumulators are acc<row>_<2*set + vector>.  A tile with few FMA chains
 * (MRE * NV < 6) is bound by FMA latency rather than throughput, so such edge
 * tiles spread consecutive k over SPLIT = 2 or 4 sets of accumulators, added
 * together at the end (the threshold stays low because more live accumulators
 * make the compiler spill in the 16-register AVX2 version); full tiles use one
 * set. */
#define ACC_DECL(i, u)                                                             \
    VEC acc##i##_0 = VZERO(), acc##i##_1 = VZERO(), acc##i##_2 = VZERO(),          \
        acc##i##_3 = VZERO(), acc##i##_4 = VZERO(), acc##i##_5 = VZERO(),          \
        acc##i##_6 = VZERO(), acc##i##_7 = VZERO();

#define FMA_SET(i, s0, s1)                                                         \
    do {                                                                           \
        acc##i##_##s0 = VFMA(ai, b0, acc##i##_##s0);                               \
        if (NV > 1)                                                                \
            acc##i##_##s1 = VFMA(ai, b1, acc##i##_##s1);                           \
    } while (0)

/* step u of the unrolled loop goes to set u mod SPLIT (constants fold) */
#define FMA_ROW(i, u)                                                              \
    if (MRE > i) {                                                                 \
        const VEC ai = VSET1(a[(u) * UK_MR + i]);                                  \
        switch ((u) & (SPLIT - 1)) {                                               \
        case 0: FMA_SET(i, 0, 1); break;                                           \
        case 1: FMA_SET(i, 2, 3); break;                                           \
        case 2: FMA_SET(i, 4, 5); break;                                           \
        default: FMA_SET(i, 6, 7); break;                                          \
        }                                                                          \
    }

#define FOLD_ROW(i, u)                                                             \
    if (MRE > i) {                                                                 \
        if (SPLIT == 4) {                                                          \
            acc##i##_0 = VADD(VADD(acc##i##_0, acc##i##_2), VADD(acc##i##_4, acc##i##_6)); \
            acc##i##_1 = VADD(VADD(acc##i##_1, acc##i##_3), VADD(acc##i##_5, acc##i##_7)); \
        } else if (SPLIT == 2) {                                                   \
            acc##i##_0 = VADD(acc##i##_0, acc##i##_2);                             \
            acc##i##_1 = VADD(acc##i##_1, acc##i##_3);                             \
        }                                                                          \
    }

#define KSTEP(u)                                                                   \
    b0 = VLOADA(b + (u) * 2 * VL);                                                 \
    if (NV > 1)                                                                    \
        b1 = VLOADA(b + (u) * 2 * VL + VL);                                        \
    ROWS(FMA_ROW, u)

/* Prefetching the first and last element of each C row in the tile hides the
 * miss on C behind the k loop; prefetches never fault. */
#define PREFETCH_ROW(i, u)                                                         \
    if (MRE > i) {                                                                 \
        _mm_prefetch((const char *)(C + (int64_t)(i) * ldc), _MM_HINT_T0);         \
        _mm_prefetch((const char *)(C + (int64_t)(i) * ldc + n - 1), _MM_HINT_T0); \
    }

/* The last vector of a row: partial when MASKED. */
#define LOAD_LAST(p) (MASKED ? VMLOAD((p), mk) : VLOADU(p))
#define STORE_LAST(p, v)                                                           \
    do {                                                                           \
        if (MASKED)                                                                \
            VMSTORE((p), mk, (v));                                                 \
        else                                                                       \
            VSTOREU((p), (v));                                                     \
    } while (0)

#define ADD_C_ROW(i, u)                                                            \
    if (MRE > i) {                                                                 \
        T *ci = C + (int64_t)(i) * ldc;                                            \
        if (NV > 1) {                                                              \
            acc##i##_0 = VADD(acc##i##_0, VLOADU(ci));                             \
            acc##i##_1 = VADD(acc##i##_1, LOAD_LAST(ci + VL));                     \
        } else {                                                                   \
            acc##i##_0 = VADD(acc##i##_0, LOAD_LAST(ci));                          \
        }                                                                          \
    }

#define ADD_BIAS_ROW(i, u)                                                         \
    if (MRE > i) {                                                                 \
        const VEC bi = VSET1(bias[i]);                                             \
        acc##i##_0 = VADD(acc##i##_0, bi);                                         \
        if (NV > 1)                                                                \
            acc##i##_1 = VADD(acc##i##_1, bi);                                     \
    }

/* max(0, x) with zero as the first operand: the instruction returns its
 * second operand when either is NaN, so NaN passes through. */
#define RELU_ROW(i, u)                                                             \
    if (MRE > i) {                                                                 \
        acc##i##_0 = VMAX(zero, acc##i##_0);                                       \
        if (NV > 1)                                                                \
            acc##i##_1 = VMAX(zero, acc##i##_1);                                   \
    }

#define STORE_ROW(i, u)                                                            \
    if (MRE > i) {                                                                 \
        T *ci = C + (int64_t)(i) * ldc;                                            \
        if (NV > 1) {                                                              \
            VSTOREU(ci, acc##i##_0);                                               \
            STORE_LAST(ci + VL, acc##i##_1);                                       \
        } else {                                                                   \
            STORE_LAST(ci, acc##i##_0);                                            \
        }                                                                          \
    }

#define UNUSED_ROW(i, u)                                                           \
    (void)acc##i##_0; (void)acc##i##_1; (void)acc##i##_2; (void)acc##i##_3;        \
    (void)acc##i##_4; (void)acc##i##_5; (void)acc##i##_6; (void)acc##i##_7;

#define TILE_BODY                                                                  \
    const int SPLIT = MRE * NV >= 6 ? 1 : MRE * NV >= 3 ? 2 : 4;                   \
    const MASK_T mk = MAKE_MASK(n - (NV - 1) * VL);                                \
    VEC b0, b1 = VZERO();                                                          \
    ROWS(ACC_DECL, 0)                                                              \
    ROWS(PREFETCH_ROW, 0)                                                          \
    const T *a = A, *b = B;                                                        \
    int64_t k = kc;                                                                \
    for (; k >= 4; k -= 4, a += 4 * UK_MR, b += 4 * 2 * VL) {                      \
        KSTEP(0) KSTEP(1) KSTEP(2) KSTEP(3)                                        \
    }                                                                              \
    for (; k > 0; k--, a += UK_MR, b += 2 * VL) {                                  \
        KSTEP(0)                                                                   \
    }                                                                              \
    ROWS(FOLD_ROW, 0)                                                              \
    if (flags & FC_UK_ACC) {                                                       \
        ROWS(ADD_C_ROW, 0)                                                         \
    }                                                                              \
    if (bias) {                                                                    \
        ROWS(ADD_BIAS_ROW, 0)                                                      \
    }                                                                              \
    if (flags & FC_UK_RELU) {                                                      \
        const VEC zero = VZERO();                                                  \
        ROWS(RELU_ROW, 0)                                                          \
    }                                                                              \
    ROWS(STORE_ROW, 0)                                                             \
    ROWS(UNUSED_ROW, 0)                                                            \
    (void)mk; (void)b1;

/* ---------------------------------------------------------------- float32 */

#define T float
#define VEC __m512
#define VL 16
#define MASK_T __mmask16
#define MAKE_MASK(r) ((__mmask16)((1u << (r)) - 1u))
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOADA(p) _mm512_load_ps(p)
#define VLOADU(p) _mm512_loadu_ps(p)
#define VSTOREU(p, v) _mm512_storeu_ps((p), (v))
#define VMLOAD(p, m) _mm512_maskz_loadu_ps((m), (p))
#define VMSTORE(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VMAX(a, b) _mm512_max_ps((a), (b))

INLINE_TGT void s_tile(const int MRE, const int NV, const int MASKED, int64_t kc,
                       const float *A, const float *B, float *C, int64_t ldc, int n,
                       const float *bias, unsigned flags)
{
    TILE_BODY
}

#undef T
#undef VEC
#undef VL
#undef MASK_T
#undef MAKE_MASK
#undef VZERO
#undef VSET1
#undef VLOADA
#undef VLOADU
#undef VSTOREU
#undef VMLOAD
#undef VMSTORE
#undef VFMA
#undef VADD
#undef VMAX

/* ---------------------------------------------------------------- float64 */

#define T double
#define VEC __m512d
#define VL 8
#define MASK_T __mmask8
#define MAKE_MASK(r) ((__mmask8)((1u << (r)) - 1u))
#define VZERO() _mm512_setzero_pd()
#define VSET1(x) _mm512_set1_pd(x)
#define VLOADA(p) _mm512_load_pd(p)
#define VLOADU(p) _mm512_loadu_pd(p)
#define VSTOREU(p, v) _mm512_storeu_pd((p), (v))
#define VMLOAD(p, m) _mm512_maskz_loadu_pd((m), (p))
#define VMSTORE(p, m, v) _mm512_mask_storeu_pd((p), (m), (v))
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VADD(a, b) _mm512_add_pd((a), (b))
#define VMAX(a, b) _mm512_max_pd((a), (b))

INLINE_TGT void d_tile(const int MRE, const int NV, const int MASKED, int64_t kc,
                       const double *A, const double *B, double *C, int64_t ldc, int n,
                       const double *bias, unsigned flags)
{
    TILE_BODY
}

/* ------------------------------------------------- edge tiles and entries */

/* One out-of-line function per (rows, vectors) edge shape keeps each
 * specialisation's register allocation separate and the full-tile path small. */
#define EDGE_FNS(i, u)                                                             \
    static TGT void s_edge_##i##_1(int64_t kc, const float *A, const float *B,     \
                                   float *C, int64_t ldc, int m, int n,            \
                                   const float *bias, unsigned flags)              \
    {                                                                              \
        (void)m;                                                                   \
        s_tile(i + 1, 1, 1, kc, A, B, C, ldc, n, bias, flags);                     \
    }                                                                              \
    static TGT void s_edge_##i##_2(int64_t kc, const float *A, const float *B,     \
                                   float *C, int64_t ldc, int m, int n,            \
                                   const float *bias, unsigned flags)              \
    {                                                                              \
        (void)m;                                                                   \
        s_tile(i + 1, 2, 1, kc, A, B, C, ldc, n, bias, flags);                     \
    }                                                                              \
    static TGT void d_edge_##i##_1(int64_t kc, const double *A, const double *B,   \
                                   double *C, int64_t ldc, int m, int n,           \
                                   const double *bias, unsigned flags)             \
    {                                                                              \
        (void)m;                                                                   \
        d_tile(i + 1, 1, 1, kc, A, B, C, ldc, n, bias, flags);                     \
    }                                                                              \
    static TGT void d_edge_##i##_2(int64_t kc, const double *A, const double *B,   \
                                   double *C, int64_t ldc, int m, int n,           \
                                   const double *bias, unsigned flags)             \
    {                                                                              \
        (void)m;                                                                   \
        d_tile(i + 1, 2, 1, kc, A, B, C, ldc, n, bias, flags);                     \
    }

ROWS(EDGE_FNS, 0)

#define S_EDGE_1(i, u) s_edge_##i##_1,
#define S_EDGE_2(i, u) s_edge_##i##_2,
#define D_EDGE_1(i, u) d_edge_##i##_1,
#define D_EDGE_2(i, u) d_edge_##i##_2,

static const fc_ukr_s_t s_edges[2][UK_MR] = {{ROWS(S_EDGE_1, 0)}, {ROWS(S_EDGE_2, 0)}};
static const fc_ukr_d_t d_edges[2][UK_MR] = {{ROWS(D_EDGE_1, 0)}, {ROWS(D_EDGE_2, 0)}};

static TGT void sgemm_avx512_14x32(int64_t kc, const float *A, const float *B, float *C,
                                   int64_t ldc, int m, int n, const float *bias,
                                   unsigned flags)
{
    if (m == UK_MR && n == 32)
        s_tile(UK_MR, 2, 0, kc, A, B, C, ldc, n, bias, flags);
    else
        s_edges[n > 16][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

static TGT void dgemm_avx512_14x16(int64_t kc, const double *A, const double *B, double *C,
                                   int64_t ldc, int m, int n, const double *bias,
                                   unsigned flags)
{
    if (m == UK_MR && n == 16)
        d_tile(UK_MR, 2, 0, kc, A, B, C, ldc, n, bias, flags);
    else
        d_edges[n > 8][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

const fc_kernel_set fc_kernels_avx512 = {
    "avx512",
    {"sgemm_avx512_14x32", UK_MR, 32, S_KC, S_MC, S_NC, sgemm_avx512_14x32},
    {"dgemm_avx512_14x16", UK_MR, 16, D_KC, D_MC, D_NC, dgemm_avx512_14x16},
};

#endif
