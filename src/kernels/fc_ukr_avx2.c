/* AVX2+FMA GEMM microkernels: float32 6x16 and float64 6x8.
 *
 * Register budget (16 ymm): a 6 x 2-vector tile keeps 12 accumulators live,
 * plus the two B vectors of the current k and one broadcast of A.  12
 * independent FMA chains exceed latency x ports of two 256-bit FMA pipes (4-5
 * cycles of latency: 8-10 chains), and each k step issues 12 FMAs
 * against 2 vector loads and 6 broadcasts, within the two or three loads per
 * cycle these cores sustain.
 *
 * Edge tiles: every (m, nv) pair, nv being the number of B vectors the tile
 * needs, is its own specialisation, so a short tile only does the FMAs it
 * needs and never touches a row >= m; the last vector of each row is read and
 * written with vmaskmov, whose masked-off lanes neither fault nor store, so no
 * column >= n is touched either.
 *
 * Built without -m flags: every function carrying intrinsics has its own
 * target attribute, and the dispatcher only calls these on CPUs with AVX2 and
 * FMA.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "../fc_kernels.h"

#define UK_MR 6
#define UK_NR_S 16   /* float32 tile: UK_MR x UK_NR_S */
#define UK_NR_D 8   /* float64 tile: UK_MR x UK_NR_D */

/* Cache blocking where the caches cannot be read (fc_fit_blocking derives
 * it from them otherwise, by the same rules), in BLIS terms: the kc x NR
 * micro-panel of B is
 * reused from L1 by every micro-panel of an mc x kc block of A, which stays in
 * L2, while the kc x nc block of B sits in L2/L3.  AVX2-only CPUs have L1d
 * 32 KiB and L2 from 256 KiB to 1 MiB, so:
 *   KC 256: the B micro-panel is 16 KiB in both types, half of L1, leaving
 *       room for the streaming A micro-panel (6 / 12 KiB) and the C tile; the
 *       C-tile update (12 loads and stores) is ~1% of the 6*kc FMA cycles.
 *   MC: the A block mc*kc*size is 132 KiB (132 rows float32, 66 rows
 *       float64), half of even a 256 KiB L2; multiples of MR, and 132 rows
 *       hold a 128-channel layer in one block.
 *   NC: the B block kc*nc*size is 4 MiB, a per-core share of a typical L3
 *       that keeps a forward convolution's workspace small.
 */
#define S_KC 256
#define S_MC 132
#define S_NC 4096
#define D_KC 256
#define D_MC 66
#define D_NC 2048

#define TGT __attribute__((target("avx2,fma")))
#define INLINE_TGT static inline __attribute__((always_inline, target("avx2,fma")))

/* Row list for the macros below: X(row, arg). */
#define ROWS(X, u) X(0, u) X(1, u) X(2, u) X(3, u) X(4, u) X(5, u)

/* AVX2 tiles ignore FC_UK_STREAM: VSTREAM is never reached */
#define HAVE_STREAM 0
#define VSTREAM(p, v) VSTOREU((p), (v))
#include "fc_ukr_tile.inc"

/* Lane masks for vmaskmov: a window of r all-ones lanes read from a table, one
 * table per lane width. */
static const int32_t s_mask_tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static const int64_t d_mask_tbl[8] = {-1, -1, -1, -1, 0, 0, 0, 0};

/* ---------------------------------------------------------------- float32 */

#define T float
#define VEC __m256
#define VL 8
#define MASK_T __m256i
#define MAKE_MASK(r) _mm256_loadu_si256((const __m256i *)(s_mask_tbl + 8 - (r)))
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOADA(p) _mm256_load_ps(p)
#define VLOADU(p) _mm256_loadu_ps(p)
#define VSTOREU(p, v) _mm256_storeu_ps((p), (v))
#define VMLOAD(p, m) _mm256_maskload_ps((p), (m))
#define VMSTORE(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VMAX(a, b) _mm256_max_ps((a), (b))

INLINE_TGT void s_tile(const int MRE, const int NV, const int MASKED, const int AS,
                       const int BU, const int64_t BS, int64_t kc,
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
#define VEC __m256d
#define VL 4
#define MASK_T __m256i
#define MAKE_MASK(r) _mm256_loadu_si256((const __m256i *)(d_mask_tbl + 4 - (r)))
#define VZERO() _mm256_setzero_pd()
#define VSET1(x) _mm256_set1_pd(x)
#define VLOADA(p) _mm256_load_pd(p)
#define VLOADU(p) _mm256_loadu_pd(p)
#define VSTOREU(p, v) _mm256_storeu_pd((p), (v))
#define VMLOAD(p, m) _mm256_maskload_pd((p), (m))
#define VMSTORE(p, m, v) _mm256_maskstore_pd((p), (m), (v))
#define VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define VADD(a, b) _mm256_add_pd((a), (b))
#define VMAX(a, b) _mm256_max_pd((a), (b))

INLINE_TGT void d_tile(const int MRE, const int NV, const int MASKED, const int AS,
                       const int BU, const int64_t BS, int64_t kc,
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
        s_tile(i + 1, 1, 1, UK_MR, 0, UK_NR_S, kc, A, B, C, ldc, n, bias, flags);  \
    }                                                                              \
    static TGT void s_edge_##i##_2(int64_t kc, const float *A, const float *B,     \
                                   float *C, int64_t ldc, int m, int n,            \
                                   const float *bias, unsigned flags)              \
    {                                                                              \
        (void)m;                                                                   \
        s_tile(i + 1, 2, 1, UK_MR, 0, UK_NR_S, kc, A, B, C, ldc, n, bias, flags);  \
    }                                                                              \
    static TGT void d_edge_##i##_1(int64_t kc, const double *A, const double *B,   \
                                   double *C, int64_t ldc, int m, int n,           \
                                   const double *bias, unsigned flags)             \
    {                                                                              \
        (void)m;                                                                   \
        d_tile(i + 1, 1, 1, UK_MR, 0, UK_NR_D, kc, A, B, C, ldc, n, bias, flags);  \
    }                                                                              \
    static TGT void d_edge_##i##_2(int64_t kc, const double *A, const double *B,   \
                                   double *C, int64_t ldc, int m, int n,           \
                                   const double *bias, unsigned flags)             \
    {                                                                              \
        (void)m;                                                                   \
        d_tile(i + 1, 2, 1, UK_MR, 0, UK_NR_D, kc, A, B, C, ldc, n, bias, flags);  \
    }

ROWS(EDGE_FNS, 0)

#define S_EDGE_1(i, u) s_edge_##i##_1,
#define S_EDGE_2(i, u) s_edge_##i##_2,
#define D_EDGE_1(i, u) d_edge_##i##_1,
#define D_EDGE_2(i, u) d_edge_##i##_2,

static const fc_ukr_s_t s_edges[2][UK_MR] = {{ROWS(S_EDGE_1, 0)}, {ROWS(S_EDGE_2, 0)}};
static const fc_ukr_d_t d_edges[2][UK_MR] = {{ROWS(D_EDGE_1, 0)}, {ROWS(D_EDGE_2, 0)}};

static TGT void sgemm_avx2_6x16(int64_t kc, const float *A, const float *B, float *C,
                                int64_t ldc, int m, int n, const float *bias,
                                unsigned flags)
{
    if (m == UK_MR && n == 16)
        s_tile(UK_MR, 2, 0, UK_MR, 0, UK_NR_S, kc, A, B, C, ldc, n, bias, flags);
    else
        s_edges[n > 8][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

static TGT void dgemm_avx2_6x8(int64_t kc, const double *A, const double *B, double *C,
                               int64_t ldc, int m, int n, const double *bias,
                               unsigned flags)
{
    if (m == UK_MR && n == 8)
        d_tile(UK_MR, 2, 0, UK_MR, 0, UK_NR_D, kc, A, B, C, ldc, n, bias, flags);
    else
        d_edges[n > 4][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

/* No tile reading B in place (fn_sb NULL): a 6-row tile reuses each B row 6
 * times, not 14, too few to hide reading unpacked rows from L2 (docs/tuning.md),
 * so the engine packs B.  No narrow tile either:
 * the lanes path's second entries repeat the first. */
const fc_kernel_set fc_kernels_avx2 = {
    "avx2",
    {"sgemm_avx2_6x16", UK_MR, 16, S_KC, S_MC, S_NC, sgemm_avx2_6x16, NULL, 2},
    {"dgemm_avx2_6x8", UK_MR, 8, D_KC, D_MC, D_NC, dgemm_avx2_6x8, NULL, 2},
    {"sgemm_avx2_6x16", UK_MR, 16, S_KC, S_MC, S_NC, sgemm_avx2_6x16, NULL, 2},
    {"dgemm_avx2_6x8", UK_MR, 8, D_KC, D_MC, D_NC, dgemm_avx2_6x8, NULL, 2},
};

#endif
