/* AVX-512F GEMM microkernels: float32 14x32 and float64 14x16, and the
 * one-vector-wide float32 16x16 and float64 16x8 that the batch-lane path
 * takes when a batch of 16 (8) images fills its lanes better than 32 (16).
 *
 * Register budget (32 zmm): a 14 x 2-vector tile keeps 28 accumulators live,
 * leaving room for the two B vectors of the current k and one broadcast of A.
 * 28 independent FMA chains are more than latency x FMA ports on any current
 * core (4 x 2 at most), and each k step issues 28 FMAs against 2 vector loads
 * and 14 scalar broadcasts, so the loop is bound by the FMA ports, not by
 * loads.  Two vectors of pixels (32 floats, 16 doubles) also waste less of a
 * small feature map (7x7, 14x14) in edge tiles than a three-vector tile would.
 *
 * The narrow tiles keep 16 accumulators and issue 16 FMAs against one vector
 * load and 16 broadcasts per k step: still more chains than latency x ports
 * (their rate against the wide tiles' is in docs/tuning.md).
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
#include <stddef.h>
#include <stdint.h>

#include "../fc_kernels.h"

#define UK_MR 14
#define UK_NR_S 32   /* float32 tile: UK_MR x UK_NR_S */
#define UK_NR_D 16   /* float64 tile: UK_MR x UK_NR_D */

/* Cache blocking where the caches cannot be read (fc_fit_blocking derives
 * it from them otherwise, by the same rules), in BLIS terms: the kc x NR
 * micro-panel of B is
 * reused from L1 by every micro-panel of an mc x kc block of A, which stays in
 * L2, while the kc x nc block of B sits in L2/L3.  Sizes assume L1d 32-48 KiB,
 * L2 of 1 MiB or more per core and a shared L3.
 *   KC 256: each k step reads 2 B vectors per 14 FMA cycles, so even the part
 *       of the 32 KiB B micro-panel that falls out of a 32 KiB L1 streams from
 *       L2 without stalls (kc from 128 to 512 run alike: docs/tuning.md);
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

/* Row lists for the macros below: X(row, arg).  ROWS covers the tallest
 * tile (the narrow kernels' 16 rows), ROWS14 the wide kernels' rows. */
#define ROWS14(X, u)                                                               \
    X(0, u) X(1, u) X(2, u) X(3, u) X(4, u) X(5, u) X(6, u)                        \
    X(7, u) X(8, u) X(9, u) X(10, u) X(11, u) X(12, u) X(13, u)
#define ROWS(X, u) ROWS14(X, u) X(14, u) X(15, u)
#define UK_MR_N 16   /* rows of the narrow tiles (one vector wide) */

#define HAVE_STREAM 1
#include "fc_ukr_tile.inc"

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
#define VSTREAM(p, v) _mm512_stream_ps((p), (v))
#define VMLOAD(p, m) _mm512_maskz_loadu_ps((m), (p))
#define VMSTORE(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VMAX(a, b) _mm512_max_ps((a), (b))

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
#undef VSTREAM
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
#define VSTREAM(p, v) _mm512_stream_pd((p), (v))
#define VMLOAD(p, m) _mm512_maskz_loadu_pd((m), (p))
#define VMSTORE(p, m, v) _mm512_mask_storeu_pd((p), (m), (v))
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define VADD(a, b) _mm512_add_pd((a), (b))
#define VMAX(a, b) _mm512_max_pd((a), (b))

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

ROWS14(EDGE_FNS, 0)

/* The narrow tiles' edges: any row count, the one vector under a mask. */
#define NARROW_EDGE_FNS(i, u)                                                      \
    static TGT void s_nedge_##i(int64_t kc, const float *A, const float *B,        \
                                float *C, int64_t ldc, int m, int n,               \
                                const float *bias, unsigned flags)                 \
    {                                                                              \
        (void)m;                                                                   \
        s_tile(i + 1, 1, 1, UK_MR_N, 0, 16, kc, A, B, C, ldc, n, bias, flags);     \
    }                                                                              \
    static TGT void d_nedge_##i(int64_t kc, const double *A, const double *B,      \
                                double *C, int64_t ldc, int m, int n,              \
                                const double *bias, unsigned flags)                \
    {                                                                              \
        (void)m;                                                                   \
        d_tile(i + 1, 1, 1, UK_MR_N, 0, 8, kc, A, B, C, ldc, n, bias, flags);      \
    }

ROWS(NARROW_EDGE_FNS, 0)

#define S_EDGE_1(i, u) s_edge_##i##_1,
#define S_EDGE_2(i, u) s_edge_##i##_2,
#define D_EDGE_1(i, u) d_edge_##i##_1,
#define D_EDGE_2(i, u) d_edge_##i##_2,
#define S_NEDGE(i, u) s_nedge_##i,
#define D_NEDGE(i, u) d_nedge_##i,

static const fc_ukr_s_t s_edges[2][UK_MR] = {{ROWS14(S_EDGE_1, 0)}, {ROWS14(S_EDGE_2, 0)}};
static const fc_ukr_d_t d_edges[2][UK_MR] = {{ROWS14(D_EDGE_1, 0)}, {ROWS14(D_EDGE_2, 0)}};
static const fc_ukr_s_t s_nedges[UK_MR_N] = {ROWS(S_NEDGE, 0)};
static const fc_ukr_d_t d_nedges[UK_MR_N] = {ROWS(D_NEDGE, 0)};

static TGT void sgemm_avx512_14x32(int64_t kc, const float *A, const float *B, float *C,
                                   int64_t ldc, int m, int n, const float *bias,
                                   unsigned flags)
{
    if (m == UK_MR && n == 32)
        s_tile(UK_MR, 2, 0, UK_MR, 0, UK_NR_S, kc, A, B, C, ldc, n, bias, flags);
    else
        s_edges[n > 16][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

static TGT void dgemm_avx512_14x16(int64_t kc, const double *A, const double *B, double *C,
                                   int64_t ldc, int m, int n, const double *bias,
                                   unsigned flags)
{
    if (m == UK_MR && n == 16)
        d_tile(UK_MR, 2, 0, UK_MR, 0, UK_NR_D, kc, A, B, C, ldc, n, bias, flags);
    else
        d_edges[n > 8][m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

static TGT void sgemm_avx512_16x16(int64_t kc, const float *A, const float *B, float *C,
                                   int64_t ldc, int m, int n, const float *bias,
                                   unsigned flags)
{
    if (m == UK_MR_N && n == 16)
        s_tile(UK_MR_N, 1, 0, UK_MR_N, 0, 16, kc, A, B, C, ldc, n, bias, flags);
    else
        s_nedges[m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

static TGT void dgemm_avx512_16x8(int64_t kc, const double *A, const double *B, double *C,
                                  int64_t ldc, int m, int n, const double *bias,
                                  unsigned flags)
{
    if (m == UK_MR_N && n == 8)
        d_tile(UK_MR_N, 1, 0, UK_MR_N, 0, 8, kc, A, B, C, ldc, n, bias, flags);
    else
        d_nedges[m - 1](kc, A, B, C, ldc, m, n, bias, flags);
}

/* The wide tiles with B read in place (full width, any row count). */
#define SB_FNS(i, u)                                                               \
    static TGT void s_sb_##i(int64_t kc, const float *A, const float *B,           \
                             int64_t ldb, float *C, int64_t ldc, int m,            \
                             const float *bias, unsigned flags)                    \
    {                                                                              \
        (void)m;                                                                   \
        s_tile(i + 1, 2, 0, UK_MR, 1, ldb, kc, A, B, C, ldc, UK_NR_S, bias, flags); \
    }                                                                              \
    static TGT void d_sb_##i(int64_t kc, const double *A, const double *B,         \
                             int64_t ldb, double *C, int64_t ldc, int m,           \
                             const double *bias, unsigned flags)                   \
    {                                                                              \
        (void)m;                                                                   \
        d_tile(i + 1, 2, 0, UK_MR, 1, ldb, kc, A, B, C, ldc, UK_NR_D, bias, flags); \
    }

ROWS14(SB_FNS, 0)

#define S_SB(i, u) s_sb_##i,
#define D_SB(i, u) d_sb_##i,
static const fc_ukr_sb_s_t s_sbs[UK_MR] = {ROWS14(S_SB, 0)};
static const fc_ukr_sb_d_t d_sbs[UK_MR] = {ROWS14(D_SB, 0)};

static TGT void sgemm_avx512_14x32_sb(int64_t kc, const float *A, const float *B, int64_t ldb,
                                      float *C, int64_t ldc, int m, const float *bias,
                                      unsigned flags)
{
    s_sbs[m - 1](kc, A, B, ldb, C, ldc, m, bias, flags);
}

static TGT void dgemm_avx512_14x16_sb(int64_t kc, const double *A, const double *B,
                                      int64_t ldb, double *C, int64_t ldc, int m,
                                      const double *bias, unsigned flags)
{
    d_sbs[m - 1](kc, A, B, ldb, C, ldc, m, bias, flags);
}

/* MC of the narrow tiles: the wide tiles' A block, in multiples of 16 rows. */
const fc_kernel_set fc_kernels_avx512 = {
    "avx512",
    {"sgemm_avx512_14x32", UK_MR, 32, S_KC, S_MC, S_NC, sgemm_avx512_14x32,
     sgemm_avx512_14x32_sb, 2},
    {"dgemm_avx512_14x16", UK_MR, 16, D_KC, D_MC, D_NC, dgemm_avx512_14x16,
     dgemm_avx512_14x16_sb, 2},
    {"sgemm_avx512_16x16", UK_MR_N, 16, S_KC, S_MC / UK_MR_N * UK_MR_N, S_NC,
     sgemm_avx512_16x16, NULL, 1},
    {"dgemm_avx512_16x8", UK_MR_N, 8, D_KC, D_MC / UK_MR_N * UK_MR_N, D_NC, dgemm_avx512_16x8,
     NULL, 1},
};

#endif
