/* Stand-alone test and timing harness for the GEMM microkernels.
 *
 *   ukr_bench test  [isa...]        every edge shape, depth and flag against a
 *                                   scalar reference; guards around C; panels
 *                                   allocated to the exact byte (build with
 *                                   ASan to catch reads past them)
 *   ukr_bench bench [isa...]        full-tile GFLOP/s on L1-resident panels
 *   ukr_bench block [isa...]        the two innermost GEMM loops over an
 *                                   MC x KC block of A (from L2) and a KC x NC
 *                                   block of B, at the kernel's default blocking
 *                                   and at a few other depths
 *
 * isa is generic, avx2, avx512 or neon (default: every one of this machine's
 * architecture: generic, avx2 and avx512 on x86-64, generic and neon on
 * AArch64).
 * `bench` first measures the FMA peak of one core at the ISA's vector width
 * (independent multiply-add chains, no memory traffic) and reports each kernel
 * as a fraction of it; FC_PEAK_S / FC_PEAK_D (GFLOP/s) add a second fraction
 * against a nominal peak, e.g. the data-sheet figure.
 * Times are thread CPU time, best of many short samples.
 * See build.sh for the compile lines.
 *
 * Built with -DUKR_GUARD_PAGES (tools/check-aarch64.sh does, where ASan is
 * not at hand), every panel and C buffer ends flush against an inaccessible
 * page, so a read or write past its last element faults; the buffers are
 * then only element-aligned, which the generic and NEON kernels accept but
 * the x86 kernels' aligned loads do not.
 */
#define _POSIX_C_SOURCE 200809L
#ifdef UKR_GUARD_PAGES
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS */
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/fc_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif
#ifdef FC_HAVE_NEON_KERNELS
#include <arm_neon.h>
#endif
#ifdef UKR_GUARD_PAGES
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

static const fc_kernel_set *find_set(const char *isa)
{
    if (!strcmp(isa, "generic"))
        return &fc_kernels_generic;
#ifdef FC_HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (!strcmp(isa, "avx2"))
        return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                   ? &fc_kernels_avx2 : NULL;
    if (!strcmp(isa, "avx512"))
        return __builtin_cpu_supports("avx512f") ? &fc_kernels_avx512 : NULL;
#endif
#ifdef FC_HAVE_NEON_KERNELS
    if (!strcmp(isa, "neon"))
        return &fc_kernels_neon;   /* every AArch64 CPU has NEON */
#endif
    return NULL;
}

#ifdef UKR_GUARD_PAGES
/* The case being checked, for the fault handler. */
static char current_case[160] = "(no check running)";

static void on_fault(int sig)
{
    static const char msg[] = "FAULT: memory access past a buffer in ";
    ssize_t w = write(2, msg, sizeof msg - 1);
    w = write(2, current_case, strlen(current_case));
    w = write(2, "\n", 1);
    (void)w;
    _exit(128 + sig);
}

/* bytes ending at an inaccessible page; the mapping's start and length are
 * kept just below the block. */
static void *xalloc(size_t bytes)
{
    static int installed;
    if (!installed) {
        signal(SIGSEGV, on_fault);
        signal(SIGBUS, on_fault);
        installed = 1;
    }
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t head = 2 * sizeof(size_t) + sizeof(void *);
    const size_t body = (bytes + head + page - 1) / page * page;
    unsigned char *base = mmap(NULL, body + page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || mprotect(base + body, page, PROT_NONE)) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    unsigned char *p = base + body - bytes;
    const size_t len = body + page;
    memcpy(p - head, &base, sizeof base);
    memcpy(p - head + sizeof base, &len, sizeof len);
    return p;
}

static void xfree(void *p)
{
    if (!p)
        return;
    const size_t head = 2 * sizeof(size_t) + sizeof(void *);
    void *base;
    size_t len;
    memcpy(&base, (unsigned char *)p - head, sizeof base);
    memcpy(&len, (unsigned char *)p - head + sizeof base, sizeof len);
    munmap(base, len);
}
#define SET_CASE(...) snprintf(current_case, sizeof current_case, __VA_ARGS__)
#else
static void *xalloc(size_t bytes)
{
    void *p = NULL;
    /* exact size, so ASan's redzone starts right after the last element */
    if (posix_memalign(&p, 64, bytes ? bytes : 1)) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void xfree(void *p) { free(p); }
#define SET_CASE(...) ((void)0)
#endif

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* Thread CPU time: on a shared machine, time slices given to other processes
 * do not count against the kernel being timed. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* ------------------------------------------------------------ correctness */

static long n_checks, n_fail;

/* The test body, once per element type: T, EPS, UKR_T, FIELD, CALL_NAME. */
#define DEFINE_CHECK(T, S, FIELD, EPS)                                                 \
    static int check_##S(const fc_kernel_set *ks, int m, int n, int64_t kc,            \
                         unsigned flags, int use_bias, int nan_case, int exact_c)      \
    {                                                                                  \
        const int MR = ks->FIELD.mr, NR = ks->FIELD.nr;                                \
        SET_CASE("%s m=%d n=%d kc=%lld flags=%u bias=%d nan=%d exact=%d",              \
                 ks->FIELD.name, m, n, (long long)kc, flags, use_bias, nan_case,       \
                 exact_c);                                                             \
        T *A = xalloc(sizeof(T) * (size_t)(kc * MR));                                  \
        T *B = xalloc(sizeof(T) * (size_t)(kc * NR));                                  \
        T *bias = use_bias ? xalloc(sizeof(T) * (size_t)m) : NULL;                     \
        /* Guard layout: the tile sits one row and three columns into a larger      \
         * array whose row stride is odd.  Exact layout: C is exactly m x n. */     \
        const int64_t ldc = exact_c ? n : NR + 7;                                      \
        const int64_t rows = exact_c ? m : MR + 2;                                     \
        const int64_t off = exact_c ? 0 : ldc + 3;                                     \
        const size_t clen = (size_t)(exact_c ? (int64_t)m * n : rows * ldc);           \
        T *cbuf = xalloc(sizeof(T) * clen);                                            \
        T *c0 = malloc(sizeof(T) * clen);                                              \
        T *C = cbuf + off;                                                             \
        const T guard = (T)-7777.25;                                                   \
        for (int64_t k = 0; k < kc; k++) {                                             \
            for (int i = 0; i < MR; i++)                                               \
                A[k * MR + i] = i < m ? (T)urand() : (T)0;                             \
            for (int j = 0; j < NR; j++)                                               \
                B[k * NR + j] = j < n ? (T)urand() : (T)0;                             \
        }                                                                              \
        for (int i = 0; use_bias && i < m; i++)                                        \
            bias[i] = (T)urand();                                                      \
        for (size_t t = 0; t < clen; t++)                                              \
            cbuf[t] = guard;                                                           \
        for (int i = 0; i < m; i++)                                                    \
            for (int j = 0; j < n; j++)                                                \
                C[i * ldc + j] = (T)(4 * urand());                                     \
        if (nan_case) {                                                                \
            /* a NaN in C (seen only with ACC) and one in a column of B */             \
            C[(m - 1) * ldc + (n - 1) / 2] = (T)NAN;                                   \
            B[(kc - 1) * NR + n - 1] = (T)NAN;                                         \
        }                                                                              \
        memcpy(c0, cbuf, sizeof(T) * clen);                                            \
        ks->FIELD.fn(kc, A, B, C, ldc, m, n, bias, flags);                             \
        int bad = 0;                                                                   \
        for (int64_t r = 0; r < (int64_t)clen; r++) {                                  \
            const int64_t rel = r - off;                                               \
            const int64_t i = rel >= 0 ? rel / ldc : -1, j = rel >= 0 ? rel % ldc : -1; \
            const int inside = rel >= 0 && i < m && j < n;                             \
            if (!inside) {                                                             \
                if (memcmp(&cbuf[r], &c0[r], sizeof(T))) {                             \
                    if (bad++ < 5)                                                     \
                        printf("  wrote outside the tile at row %lld col %lld\n",     \
                               (long long)i, (long long)j);                            \
                }                                                                      \
                continue;                                                              \
            }                                                                          \
            long double ref = 0, mag = 0;                                              \
            for (int64_t k = 0; k < kc; k++) {                                         \
                const long double p = (long double)A[k * MR + i] * B[k * NR + j];      \
                ref += p;                                                              \
                mag += fabsl(p);                                                       \
            }                                                                          \
            if (flags & FC_UK_ACC) {                                                   \
                ref += c0[r];                                                          \
                mag += fabsl((long double)c0[r]);                                      \
            }                                                                          \
            if (use_bias) {                                                            \
                ref += bias[i];                                                        \
                mag += fabsl((long double)bias[i]);                                    \
            }                                                                          \
            if ((flags & FC_UK_RELU) && ref < 0)                                       \
                ref = 0;                                                               \
            const T got = C[i * ldc + j];                                              \
            int ok;                                                                    \
            if (isnan(ref))                                                            \
                ok = isnan(got);                                                       \
            else                                                                       \
                ok = !isnan(got) && fabsl((long double)got - ref) <=                   \
                                        (long double)(EPS) * (kc + 3) * mag;           \
            if ((flags & FC_UK_RELU) && !isnan(got) && got < 0)                        \
                ok = 0;                                                                \
            if (!ok && bad++ < 5)                                                      \
                printf("  C[%lld][%lld] = %.9g, reference %.9Lg\n", (long long)i,    \
                       (long long)j, (double)got, ref);                                \
        }                                                                              \
        if (flags & FC_UK_STREAM) {                                                    \
            /* the streaming hint changes how C is stored, not what */             \
            T *cb3 = xalloc(sizeof(T) * clen);                                         \
            memcpy(cb3, c0, sizeof(T) * clen);                                         \
            ks->FIELD.fn(kc, A, B, cb3 + off, ldc, m, n, bias, flags & ~FC_UK_STREAM); \
            if (memcmp(cb3, cbuf, sizeof(T) * clen)) {                                 \
                if (bad++ < 5)                                                         \
                    printf("  streamed: not the cached stores' bits\n");              \
            }                                                                          \
            xfree(cb3);                                                                \
        }                                                                              \
        if (ks->FIELD.fn_sb && n == NR) {                                              \
            /* B read in place: the same panel as rows ldb apart, off any         \
             * alignment, allocated to the exact byte; same sums, same bits */   \
            const int64_t ldb = NR + 5;                                                \
            T *Bs = xalloc(sizeof(T) * (size_t)((kc - 1) * ldb + NR + 1));             \
            for (int64_t k = 0; k < kc; k++)                                           \
                memcpy(Bs + 1 + k * ldb, B + k * NR, sizeof(T) * (size_t)NR);          \
            T *cb2 = xalloc(sizeof(T) * clen);                                         \
            memcpy(cb2, c0, sizeof(T) * clen);                                         \
            ks->FIELD.fn_sb(kc, A, Bs + 1, ldb, cb2 + off, ldc, m, bias, flags);       \
            if (memcmp(cb2, cbuf, sizeof(T) * clen)) {                                 \
                if (bad++ < 5)                                                         \
                    printf("  B in place: not the packed kernel's bits\n");            \
            }                                                                          \
            xfree(Bs);                                                                 \
            xfree(cb2);                                                                \
        }                                                                              \
        n_checks++;                                                                    \
        if (bad) {                                                                     \
            n_fail++;                                                                  \
            printf("FAIL %s m=%d n=%d kc=%lld flags=%u bias=%d nan=%d exact=%d\n",   \
                   ks->FIELD.name, m, n, (long long)kc, flags, use_bias, nan_case,     \
                   exact_c);                                                           \
        }                                                                              \
        xfree(A);                                                                      \
        xfree(B);                                                                      \
        xfree(bias);                                                                   \
        xfree(cbuf);                                                                   \
        free(c0);                                                                      \
        return bad;                                                                    \
    }

DEFINE_CHECK(float, s, s, 1.2e-7)
DEFINE_CHECK(double, d, d, 2.3e-16)
DEFINE_CHECK(float, sn, s_narrow, 1.2e-7)
DEFINE_CHECK(double, dn, d_narrow, 2.3e-16)

/* Kernel kinds of a set: 0 float32, 1 float64, 2 and 3 their narrow tiles
 * (checked and timed only where they are kernels of their own). */
static int kind_present(const fc_kernel_set *ks, int kind)
{
    if (kind == 2)
        return ks->s_narrow.fn != ks->s.fn;
    if (kind == 3)
        return ks->d_narrow.fn != ks->d.fn;
    return 1;
}

static void kind_shape(const fc_kernel_set *ks, int kind, const char **name, int *mr, int *nr)
{
    switch (kind) {
    case 0: *name = ks->s.name; *mr = ks->s.mr; *nr = ks->s.nr; break;
    case 1: *name = ks->d.name; *mr = ks->d.mr; *nr = ks->d.nr; break;
    case 2: *name = ks->s_narrow.name; *mr = ks->s_narrow.mr; *nr = ks->s_narrow.nr; break;
    default: *name = ks->d_narrow.name; *mr = ks->d_narrow.mr; *nr = ks->d_narrow.nr; break;
    }
}

static void check_kind(const fc_kernel_set *ks, int kind, int m, int n, int64_t kc,
                       unsigned flags, int use_bias, int nan_case, int exact_c)
{
    switch (kind) {
    case 0: check_s(ks, m, n, kc, flags, use_bias, nan_case, exact_c); break;
    case 1: check_d(ks, m, n, kc, flags, use_bias, nan_case, exact_c); break;
    case 2: check_sn(ks, m, n, kc, flags, use_bias, nan_case, exact_c); break;
    default: check_dn(ks, m, n, kc, flags, use_bias, nan_case, exact_c); break;
    }
}

static void run_tests(const fc_kernel_set *ks)
{
    static const int64_t kcs[] = {1, 2, 3, 7, 64, 257};
    const long f0 = n_fail, c0 = n_checks;
    for (int dt = 0; dt < 4; dt++) {
        if (!kind_present(ks, dt))
            continue;
        const char *kname;
        int MR, NR;
        kind_shape(ks, dt, &kname, &MR, &NR);
        (void)kname;
        for (size_t q = 0; q < sizeof kcs / sizeof kcs[0]; q++)
            for (int m = 1; m <= MR; m++)
                for (int n = 1; n <= NR; n++)
                    for (unsigned v = 0; v < 32; v++) {
                        const unsigned flags = (v & 3) | ((v & 16) ? FC_UK_STREAM : 0u);
                        const int use_bias = (v >> 2) & 1, nan_case = (v >> 3) & 1;
                        check_kind(ks, dt, m, n, kcs[q], flags, use_bias, nan_case, 0);
                    }
        /* exact-size C: a read or write past the m x n corner of the last row
         * leaves the allocation; it starts on a cache line, so with n = NR
         * (rows of 64 or 128 bytes) the streaming hint streams every row */
        for (int m = 1; m <= MR; m++)
            for (int n = 1; n <= NR; n++)
                for (unsigned flags = 0; flags < 8; flags++)
                    check_kind(ks, dt, m, n, 7, flags, 1, 0, 1);
    }
    printf("%-8s %-20s %-20s %ld cases, %ld failed\n", ks->isa, ks->s.name, ks->d.name,
           n_checks - c0, n_fail - f0);
    if (kind_present(ks, 2) || kind_present(ks, 3))
        printf("%-8s and %s, %s\n", "", ks->s_narrow.name, ks->d_narrow.name);
}

/* ----------------------------------------------------------------- timing */

/* Best of NSAMPLES short samples, each ~20 ms: the best one is the least
 * disturbed by other work on the machine. */
#define NSAMPLES 25

static double nominal_peak(int dsize)
{
    const char *e = getenv(dsize == 4 ? "FC_PEAK_S" : "FC_PEAK_D");
    return e ? atof(e) : 0.0;
}

static volatile double peak_sink;

/* FMA throughput: NCH independent chains acc = acc * m + c, enough to cover
 * latency x ports on current cores; m and c keep the values finite. */
#define DEFINE_PEAK(NAME, TGT, V, NCH, SET1, FMA, STORE, T)                            \
    TGT static double NAME(long iters)                                                 \
    {                                                                                  \
        V acc[NCH];                                                                    \
        const V m = SET1((T)0.999999), c = SET1((T)1e-6);                              \
        for (int i = 0; i < NCH; i++)                                                  \
            acc[i] = SET1((T)i);                                                       \
        const double t0 = now();                                                       \
        for (long r = 0; r < iters; r++) {                                             \
            _Pragma("GCC unroll 24") for (int i = 0; i < NCH; i++)                     \
                acc[i] = FMA(acc[i], m, c);                                            \
        }                                                                              \
        const double dt = now() - t0;                                                  \
        T out[64 / sizeof(T)];                                                         \
        double sum = 0;                                                                \
        for (int i = 0; i < NCH; i++) {                                                \
            STORE(out, acc[i]);                                                        \
            sum += out[0];                                                             \
        }                                                                              \
        peak_sink = sum;                                                               \
        return 2.0 * NCH * (sizeof(V) / sizeof(T)) * iters / dt * 1e-9;                \
    }

#ifdef FC_HAVE_X86_KERNELS
DEFINE_PEAK(peak512_s, __attribute__((target("avx512f"))), __m512, 24, _mm512_set1_ps,
            _mm512_fmadd_ps, _mm512_storeu_ps, float)
DEFINE_PEAK(peak512_d, __attribute__((target("avx512f"))), __m512d, 24, _mm512_set1_pd,
            _mm512_fmadd_pd, _mm512_storeu_pd, double)
DEFINE_PEAK(peak256_s, __attribute__((target("avx2,fma"))), __m256, 12, _mm256_set1_ps,
            _mm256_fmadd_ps, _mm256_storeu_ps, float)
DEFINE_PEAK(peak256_d, __attribute__((target("avx2,fma"))), __m256d, 12, _mm256_set1_pd,
            _mm256_fmadd_pd, _mm256_storeu_pd, double)
#endif
#ifdef FC_HAVE_NEON_KERNELS
#define NEON_FMA_S(acc, m, c) vfmaq_f32((c), (acc), (m))
#define NEON_FMA_D(acc, m, c) vfmaq_f64((c), (acc), (m))
DEFINE_PEAK(peakneon_s, , float32x4_t, 24, vdupq_n_f32, NEON_FMA_S, vst1q_f32, float)
DEFINE_PEAK(peakneon_d, , float64x2_t, 24, vdupq_n_f64, NEON_FMA_D, vst1q_f64, double)
#endif

/* Best-of-samples peak of one core for this ISA's vector width; 0 if unknown. */
static double measured_peak(const fc_kernel_set *ks, int dsize)
{
    double (*fn)(long) = NULL;
#ifdef FC_HAVE_X86_KERNELS
    if (!strcmp(ks->isa, "avx512"))
        fn = dsize == 4 ? peak512_s : peak512_d;
    else if (!strcmp(ks->isa, "avx2"))
        fn = dsize == 4 ? peak256_s : peak256_d;
#endif
#ifdef FC_HAVE_NEON_KERNELS
    if (!strcmp(ks->isa, "neon"))
        fn = dsize == 4 ? peakneon_s : peakneon_d;
#endif
    if (!fn)
        return 0.0;
    double best = 0;
    for (int s = 0; s < NSAMPLES; s++) {
        const double g = fn(200000);
        if (g > best)
            best = g;
    }
    return best;
}

/* GFLOP/s of repeated m x n tile calls on the same (L1-resident) panels,
 * counting only the 2*m*n*kc useful flops. */
#define DEFINE_TIME_TILE(T, S, FIELD)                                                  \
    static double time_tile_##S(const fc_kernel_set *ks, int m, int n, int64_t kc,    \
                                 unsigned flags)                                       \
    {                                                                                  \
        const int MR = ks->FIELD.mr, NR = ks->FIELD.nr;                                \
        T *A = xalloc(sizeof(T) * (size_t)(kc * MR));                                  \
        T *B = xalloc(sizeof(T) * (size_t)(kc * NR));                                  \
        T *C = xalloc(sizeof(T) * (size_t)(MR * NR));                                  \
        for (int64_t t = 0; t < kc * MR; t++)                                          \
            A[t] = (T)(urand() * 1e-3);                                                \
        for (int64_t t = 0; t < kc * NR; t++)                                          \
            B[t] = (T)(urand() * 1e-3);                                                \
        memset(C, 0, sizeof(T) * (size_t)(MR * NR));                                   \
        long reps = 1;                                                                 \
        for (;;) { /* calibrate to ~20 ms per sample */                                \
            const double t0 = now();                                                   \
            for (long r = 0; r < reps; r++)                                            \
                ks->FIELD.fn(kc, A, B, C, NR, m, n, NULL, flags);                      \
            if (now() - t0 > 0.02)                                                     \
                break;                                                                 \
            reps *= 2;                                                                 \
        }                                                                              \
        double best = 1e30;                                                            \
        for (int s = 0; s < NSAMPLES; s++) {                                           \
            const double t0 = now();                                                   \
            for (long r = 0; r < reps; r++)                                            \
                ks->FIELD.fn(kc, A, B, C, NR, m, n, NULL, flags);                      \
            const double dt = now() - t0;                                              \
            if (dt < best)                                                             \
                best = dt;                                                             \
        }                                                                              \
        xfree(A);                                                                      \
        xfree(B);                                                                      \
        xfree(C);                                                                      \
        return 2.0 * m * n * kc * reps / best * 1e-9;                                  \
    }

DEFINE_TIME_TILE(float, s, s)
DEFINE_TIME_TILE(double, d, d)
DEFINE_TIME_TILE(float, sn, s_narrow)
DEFINE_TIME_TILE(double, dn, d_narrow)

static double time_tile_kind(const fc_kernel_set *ks, int kind, int m, int n, int64_t kc,
                             unsigned flags)
{
    switch (kind) {
    case 0: return time_tile_s(ks, m, n, kc, flags);
    case 1: return time_tile_d(ks, m, n, kc, flags);
    case 2: return time_tile_sn(ks, m, n, kc, flags);
    default: return time_tile_dn(ks, m, n, kc, flags);
    }
}

/* The jr/ir loops of a BLIS-style GEMM on one packed block pair:
 * C (mc x nc, ldc = nc) += A_block (mc x kc) * B_block (kc x nc). */
#define DEFINE_TIME_BLOCK(T, S, FIELD)                                                 \
    static double time_block_##S(const fc_kernel_set *ks, int64_t kc, int64_t mc,      \
                                 int64_t nc)                                           \
    {                                                                                  \
        const int MR = ks->FIELD.mr, NR = ks->FIELD.nr;                                \
        mc = (mc + MR - 1) / MR * MR;                                                  \
        nc = (nc + NR - 1) / NR * NR;                                                  \
        T *A = xalloc(sizeof(T) * (size_t)(kc * mc));                                  \
        T *B = xalloc(sizeof(T) * (size_t)(kc * nc));                                  \
        T *C = xalloc(sizeof(T) * (size_t)(mc * nc));                                  \
        for (int64_t t = 0; t < kc * mc; t++)                                          \
            A[t] = (T)(urand() * 1e-3);                                                \
        for (int64_t t = 0; t < kc * nc; t++)                                          \
            B[t] = (T)(urand() * 1e-3);                                                \
        memset(C, 0, sizeof(T) * (size_t)(mc * nc));                                   \
        double best = 1e30;                                                            \
        for (int s = 0; s < 7; s++) {                                                  \
            const double t0 = now();                                                   \
            for (int64_t jr = 0; jr < nc; jr += NR)                                    \
                for (int64_t ir = 0; ir < mc; ir += MR)                                \
                    ks->FIELD.fn(kc, A + ir * kc, B + jr * kc, C + ir * nc + jr, nc,   \
                                 MR, NR, NULL, FC_UK_ACC);                             \
            const double dt = now() - t0;                                              \
            if (dt < best)                                                             \
                best = dt;                                                             \
        }                                                                              \
        xfree(A);                                                                      \
        xfree(B);                                                                      \
        xfree(C);                                                                      \
        return 2.0 * mc * nc * kc / best * 1e-9;                                       \
    }

DEFINE_TIME_BLOCK(float, s, s)
DEFINE_TIME_BLOCK(double, d, d)

static void print_rate(double g, double peak, double nominal)
{
    printf(" %7.1f GFLOP/s", g);
    if (peak > 0)
        printf("  %5.1f%% of measured peak", 100 * g / peak);
    if (nominal > 0)
        printf("  %5.1f%% of nominal", 100 * g / nominal);
    printf("\n");
}

static void run_bench(const fc_kernel_set *ks)
{
    static const int64_t kcs[] = {64, 128, 256, 384};
    for (int dt = 0; dt < 4; dt++) {
        if (!kind_present(ks, dt))
            continue;
        const char *name;
        int MR, NR;
        kind_shape(ks, dt, &name, &MR, &NR);
        const int dsize = dt & 1 ? 8 : 4;
        const double peak = measured_peak(ks, dsize), nominal = nominal_peak(dsize);
        if (peak > 0)
            printf("%-20s FMA peak of one core at this vector width: %.1f GFLOP/s\n", name,
                   peak);
        for (size_t q = 0; q < sizeof kcs / sizeof kcs[0]; q++)
            for (unsigned flags = 0; flags < 2; flags++) {
                const double g = time_tile_kind(ks, dt, MR, NR, kcs[q], flags);
                printf("%-20s %2dx%-2d kc=%-4lld %-4s", name, MR, NR, (long long)kcs[q],
                       flags ? "acc" : "set");
                print_rate(g, peak, nominal);
            }
        /* edge tiles, useful flops only */
        const int shapes[][2] = {{MR / 2 + 1, NR}, {MR - 1, NR}, {MR, NR - 1},
                                 {MR, NR / 2 + 1}, {MR, NR / 2}, {1, NR}, {MR, 1}};
        for (size_t q = 0; q < sizeof shapes / sizeof shapes[0]; q++) {
            const int m = shapes[q][0], n = shapes[q][1];
            const double g = time_tile_kind(ks, dt, m, n, 256, FC_UK_ACC);
            printf("%-20s %2dx%-2d kc=256  acc ", name, m, n);
            print_rate(g, peak, nominal);
        }
    }
}

/* The default blocking, then one of KC / MC varied at a time. */
static void run_block(const fc_kernel_set *ks)
{
    static const int64_t kcs[] = {128, 192, 384, 512}, mcf[] = {2, 4};
    for (int dt = 0; dt < 2; dt++) {
        const char *name = dt ? ks->d.name : ks->s.name;
        const int64_t kc0 = dt ? ks->d.kc : ks->s.kc, mc0 = dt ? ks->d.mc : ks->s.mc;
        const int64_t nc = dt ? ks->d.nc : ks->s.nc;
        const double peak = measured_peak(ks, dt ? 8 : 4), nominal = nominal_peak(dt ? 8 : 4);
        const size_t nk = sizeof kcs / sizeof kcs[0], nm = sizeof mcf / sizeof mcf[0];
        for (size_t q = 0; q < 1 + nk + nm; q++) {
            const int64_t kc = (q >= 1 && q <= nk) ? kcs[q - 1] : kc0;
            const int64_t mc = q > nk ? mc0 * mcf[q - 1 - nk] : mc0;
            const double g = dt ? time_block_d(ks, kc, mc, nc) : time_block_s(ks, kc, mc, nc);
            printf("%-20s block kc=%-4lld mc=%-4lld nc=%-4lld%s", name, (long long)kc,
                   (long long)mc, (long long)nc, q ? "          " : " (default)");
            print_rate(g, peak, nominal);
        }
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "test";
#ifdef FC_HAVE_NEON_KERNELS
    static const char *all[] = {"generic", "neon"};
#else
    static const char *all[] = {"generic", "avx2", "avx512"};
#endif
    const char **isas = argc > 2 ? (const char **)argv + 2 : all;
    const int nisa = argc > 2 ? argc - 2 : (int)(sizeof all / sizeof all[0]);
    for (int t = 0; t < nisa; t++) {
        const fc_kernel_set *ks = find_set(isas[t]);
        if (!ks) {
            printf("%-8s not available on this build/CPU, skipped\n", isas[t]);
            continue;
        }
        if (!strcmp(mode, "test"))
            run_tests(ks);
        else if (!strcmp(mode, "bench"))
            run_bench(ks);
        else if (!strcmp(mode, "block"))
            run_block(ks);
        else {
            fprintf(stderr, "usage: %s test|bench|block [generic|avx2|avx512|neon ...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!strcmp(mode, "test")) {
        printf("%ld cases, %ld failed\n", n_checks, n_fail);
        return n_fail != 0;
    }
    return 0;
}
