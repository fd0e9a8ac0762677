/* The GEMM microkernel contract and the per-ISA kernel table.
 *
 * A microkernel computes one MR x NR tile of C = A * B over a depth kc:
 *
 *   A  packed micro-panel, kc x MR, k-major:  A[k*MR + i]   (rows = output channels)
 *   B  packed micro-panel, kc x NR, k-major:  B[k*NR + j]   (cols = output pixels)
 *   C  row-major tile, row stride ldc elements, column stride 1
 *
 * Only the top-left m x n corner (1 <= m <= MR, 1 <= n <= NR) of C is read or
 * written; packed panels are always full (zero-filled past m / n), so kernels
 * may read the whole panel.  B panels start 64-byte aligned when NR *
 * sizeof(T) is a multiple of 64 or divides it, as it must for a kernel that
 * loads them with aligned loads (x86); NEON's 48-byte rows leave panels past
 * the first 16-byte aligned at best, which its loads do not mind.  A panels
 * are only element-aligned, which broadcasts do not mind.  kc >= 1.
 *
 *   flags & FC_UK_ACC   C += A*B          otherwise C = A*B (C is not read)
 *   bias != NULL        then adds bias[i] to row i (bias has m valid entries)
 *   flags & FC_UK_RELU  finally C = max(C, 0), NaN stays NaN
 *   flags & FC_UK_STREAM  a hint that C will not be read again soon: a kernel
 *                       may write its full vectors that start on a 64-byte
 *                       boundary with non-temporal stores, around the caches
 *                       (the caller issues FC_STORE_FENCE before C is read)
 *
 * The engine passes the bias on the first kc block only and RELU on the last.
 * Microkernels know nothing of threads, convolution or Python.
 */
#ifndef FC_KERNELS_H
#define FC_KERNELS_H

#include <stdint.h>

#define FC_UK_ACC  1u
#define FC_UK_RELU 2u
#define FC_UK_STREAM 4u

typedef void (*fc_ukr_s_t)(int64_t kc, const float *A, const float *B, float *C,
                           int64_t ldc, int m, int n, const float *bias, unsigned flags);
typedef void (*fc_ukr_d_t)(int64_t kc, const double *A, const double *B, double *C,
                           int64_t ldc, int m, int n, const double *bias, unsigned flags);

/* The same tile with B read in place instead of from a packed panel:
 * B[k*ldb + j], rows of a matrix ldb elements apart, any alignment, and
 * always a full NR columns (n = NR); 1 <= m <= MR as above. */
typedef void (*fc_ukr_sb_s_t)(int64_t kc, const float *A, const float *B, int64_t ldb,
                              float *C, int64_t ldc, int m, const float *bias,
                              unsigned flags);
typedef void (*fc_ukr_sb_d_t)(int64_t kc, const double *A, const double *B, int64_t ldb,
                              double *C, int64_t ldc, int m, const double *bias,
                              unsigned flags);

typedef struct {
    const char *name;   /* operation_isa_MRxNR */
    int mr, nr;
    int kc, mc, nc;     /* default cache blocking, in elements */
    fc_ukr_s_t fn;
    fc_ukr_sb_s_t fn_sb; /* B in place, or NULL: the engine packs B */
    int nv;             /* vectors in a row of the tile, whose lanes (nr / nv)
                           the planner counts edge tiles in; 0 means 2 */
} fc_ukr_s_info;

typedef struct {
    const char *name;
    int mr, nr;
    int kc, mc, nc;
    fc_ukr_d_t fn;
    fc_ukr_sb_d_t fn_sb;
    int nv;
} fc_ukr_d_info;

typedef struct {
    const char *isa;    /* "generic", "avx2", "avx512", "neon" */
    fc_ukr_s_info s;
    fc_ukr_d_info d;
    /* A second tile, half as wide (NR), that the batch-lane path may take
     * when a batch fills that many lanes better; an instruction set without
     * one repeats s and d here. */
    fc_ukr_s_info s_narrow;
    fc_ukr_d_info d_narrow;
} fc_kernel_set;

/* The portable reference microkernels (fc_ukr_generic.c). */
void fc_sgemm_generic_4x16(int64_t kc, const float *A, const float *B, float *C,
                           int64_t ldc, int m, int n, const float *bias, unsigned flags);
void fc_dgemm_generic_4x8(int64_t kc, const double *A, const double *B, double *C,
                          int64_t ldc, int m, int n, const double *bias, unsigned flags);

/* One table entry per instruction set, defined next to its kernels. */
extern const fc_kernel_set fc_kernels_generic;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_HAVE_X86_KERNELS 1
extern const fc_kernel_set fc_kernels_avx2;
extern const fc_kernel_set fc_kernels_avx512;
#endif
/* AArch64: Advanced SIMD is mandatory there, so the NEON set is supported
 * wherever it is compiled (fc_ukr_neon.c). */
#if defined(__aarch64__)
#define FC_HAVE_NEON_KERNELS 1
extern const fc_kernel_set fc_kernels_neon;
#endif

/* The active set, chosen once at import (fc_dispatch.c). */
const fc_kernel_set *fc_active_kernels(void);

/* Block sizes (in elements) for an mr x nr tile of dsize-byte elements,
 * derived from the CPU's caches (fc_dispatch.c; with unknown caches *kc,
 * *mc and *nc, the table's, stand), in whole tiles. */
void fc_fit_blocking(int mr, int nr, int dsize, int *kc, int *mc, int *nc);

#endif
