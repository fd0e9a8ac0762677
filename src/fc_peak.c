/* Single-core FMA throughput, the ceiling the benchmark suite divides by.
 *
 * Each loop runs many independent multiply-add chains acc = acc * m + c, so
 * the measured rate is bounded by the FMA ports' throughput rather than their
 * latency: with L cycles of latency and P ports, at least L * P chains must be
 * in flight (8 on current x86 cores); the loops below keep 24 (AVX-512, 32
 * registers) or 12 (AVX2, 16 registers) so that a wider or slower core is
 * still saturated without spilling.  m < 1 and c > 0 make every chain
 * converge to c / (1 - m): no overflow, no denormals, no slow paths.
 *
 * The instruction set is the one the GEMM kernels run with
 * (fc_active_kernels()->isa), so "fraction of peak" compares like with like;
 * under FASTCONV_ISA=generic the ceiling is what plain C reaches with the
 * baseline vector unit (multiply and add, no FMA, on x86_64).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L
#endif

#include <string.h>
#include <time.h>

#include "fc_core.h"
#include "fc_kernels.h"

#if defined(_WIN32)
#include <windows.h>
static double fc_peak_now(void)
{
    LARGE_INTEGER f, t;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&t);
    return (double)t.QuadPart / (double)f.QuadPart;
}
#else
static double fc_peak_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif

/* Results are folded into this so that no loop can be removed as dead code. */
static volatile double fc_peak_sink;

/* Read through volatiles so the compiler cannot fold the chains to a constant. */
static volatile float fc_peak_mul_s = 0.999f;
static volatile float fc_peak_add_s = 1e-3f;
static volatile double fc_peak_mul_d = 0.999;
static volatile double fc_peak_add_d = 1e-3;

/* A loop body: runs `iters` iterations and returns the flops it performed. */
typedef double (*fc_peak_loop)(long iters);

/* ---------------------------------------------------------------- portable */

#if defined(__GNUC__) || defined(__clang__)
/* 16-byte GCC/Clang vectors lower to SSE2 on x86_64, NEON on arm64, scalar
 * code elsewhere: the width the generic microkernel can count on. */
typedef float fc_pv4s __attribute__((vector_size(16)));
typedef double fc_pv2d __attribute__((vector_size(16)));
#define FC_P_ACC 12

#define FC_PORTABLE_LOOP(NAME, VT, T, LANES, MULV, ADDV)                      \
    static double NAME(long iters)                                            \
    {                                                                         \
        VT m, c, a[FC_P_ACC];                                                 \
        int j, l;                                                             \
        for (l = 0; l < LANES; ++l) {                                         \
            m[l] = MULV;                                                      \
            c[l] = ADDV;                                                      \
        }                                                                     \
        for (j = 0; j < FC_P_ACC; ++j)                                        \
            for (l = 0; l < LANES; ++l)                                       \
                a[j][l] = (T)(j + l);                                         \
        for (long it = 0; it < iters; ++it) {                                 \
            a[0] = a[0] * m + c;   a[1] = a[1] * m + c;                       \
            a[2] = a[2] * m + c;   a[3] = a[3] * m + c;                       \
            a[4] = a[4] * m + c;   a[5] = a[5] * m + c;                       \
            a[6] = a[6] * m + c;   a[7] = a[7] * m + c;                       \
            a[8] = a[8] * m + c;   a[9] = a[9] * m + c;                       \
            a[10] = a[10] * m + c; a[11] = a[11] * m + c;                     \
        }                                                                     \
        double s = 0.0;                                                       \
        for (j = 0; j < FC_P_ACC; ++j)                                        \
            for (l = 0; l < LANES; ++l)                                       \
                s += (double)a[j][l];                                         \
        fc_peak_sink = s;                                                     \
        return 2.0 * FC_P_ACC * LANES * (double)iters;                        \
    }

FC_PORTABLE_LOOP(fc_peak_portable_s, fc_pv4s, float, 4, fc_peak_mul_s, fc_peak_add_s)
FC_PORTABLE_LOOP(fc_peak_portable_d, fc_pv2d, double, 2, fc_peak_mul_d, fc_peak_add_d)

#else
/* Other compilers: independent scalar chains. */
#define FC_P_ACC 12
#define FC_PORTABLE_LOOP(NAME, T, MULV, ADDV)                                 \
    static double NAME(long iters)                                            \
    {                                                                         \
        T m = MULV, c = ADDV;                                                 \
        T a0 = 0, a1 = 1, a2 = 2, a3 = 3, a4 = 4, a5 = 5;                     \
        T a6 = 6, a7 = 7, a8 = 8, a9 = 9, a10 = 10, a11 = 11;                 \
        for (long it = 0; it < iters; ++it) {                                 \
            a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c;                \
            a3 = a3 * m + c; a4 = a4 * m + c; a5 = a5 * m + c;                \
            a6 = a6 * m + c; a7 = a7 * m + c; a8 = a8 * m + c;                \
            a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c;            \
        }                                                                     \
        fc_peak_sink = (double)(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8    \
                                + a9 + a10 + a11);                            \
        return 2.0 * FC_P_ACC * (double)iters;                                \
    }
FC_PORTABLE_LOOP(fc_peak_portable_s, float, fc_peak_mul_s, fc_peak_add_s)
FC_PORTABLE_LOOP(fc_peak_portable_d, double, fc_peak_mul_d, fc_peak_add_d)
#endif

/* ------------------------------------------------------------------- x86 */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* Twelve chains for the 16 ymm registers: two hold m and c. */
#define FC_FMA12(F)                                                           \
    a0 = F(a0, m, c); a1 = F(a1, m, c); a2 = F(a2, m, c);                     \
    a3 = F(a3, m, c); a4 = F(a4, m, c); a5 = F(a5, m, c);                     \
    a6 = F(a6, m, c); a7 = F(a7, m, c); a8 = F(a8, m, c);                     \
    a9 = F(a9, m, c); a10 = F(a10, m, c); a11 = F(a11, m, c)

#define FC_FMA24(F)                                                           \
    FC_FMA12(F);                                                              \
    b0 = F(b0, m, c); b1 = F(b1, m, c); b2 = F(b2, m, c);                     \
    b3 = F(b3, m, c); b4 = F(b4, m, c); b5 = F(b5, m, c);                     \
    b6 = F(b6, m, c); b7 = F(b7, m, c); b8 = F(b8, m, c);                     \
    b9 = F(b9, m, c); b10 = F(b10, m, c); b11 = F(b11, m, c)

#define FC_SUM12(ADD, a)                                                      \
    ADD(ADD(ADD(ADD(a##0, a##1), ADD(a##2, a##3)),                            \
            ADD(ADD(a##4, a##5), ADD(a##6, a##7))),                           \
        ADD(ADD(a##8, a##9), ADD(a##10, a##11)))

/* Distinct starting values: chains that start equal stay equal, and the
 * compiler would merge them, halving the work actually done. */
#define FC_DECL12(VT, a, SET1, o)                                             \
    VT a##0 = SET1(o + 0), a##1 = SET1(o + 1), a##2 = SET1(o + 2);            \
    VT a##3 = SET1(o + 3), a##4 = SET1(o + 4), a##5 = SET1(o + 5);            \
    VT a##6 = SET1(o + 6), a##7 = SET1(o + 7), a##8 = SET1(o + 8);            \
    VT a##9 = SET1(o + 9), a##10 = SET1(o + 10), a##11 = SET1(o + 11)

__attribute__((target("avx2,fma")))
static double fc_peak_avx2_s(long iters)
{
    const __m256 m = _mm256_set1_ps(fc_peak_mul_s), c = _mm256_set1_ps(fc_peak_add_s);
    FC_DECL12(__m256, a, _mm256_set1_ps, 0);
    for (long it = 0; it < iters; ++it) {
        FC_FMA12(_mm256_fmadd_ps);
    }
    __m256 s = FC_SUM12(_mm256_add_ps, a);
    float out[8];
    _mm256_storeu_ps(out, s);
    fc_peak_sink = (double)out[0] + out[7];
    return 2.0 * 12 * 8 * (double)iters;
}

__attribute__((target("avx2,fma")))
static double fc_peak_avx2_d(long iters)
{
    const __m256d m = _mm256_set1_pd(fc_peak_mul_d), c = _mm256_set1_pd(fc_peak_add_d);
    FC_DECL12(__m256d, a, _mm256_set1_pd, 0);
    for (long it = 0; it < iters; ++it) {
        FC_FMA12(_mm256_fmadd_pd);
    }
    __m256d s = FC_SUM12(_mm256_add_pd, a);
    double out[4];
    _mm256_storeu_pd(out, s);
    fc_peak_sink = out[0] + out[3];
    return 2.0 * 12 * 4 * (double)iters;
}

__attribute__((target("avx512f")))
static double fc_peak_avx512_s(long iters)
{
    const __m512 m = _mm512_set1_ps(fc_peak_mul_s), c = _mm512_set1_ps(fc_peak_add_s);
    FC_DECL12(__m512, a, _mm512_set1_ps, 0);
    FC_DECL12(__m512, b, _mm512_set1_ps, 12);
    for (long it = 0; it < iters; ++it) {
        FC_FMA24(_mm512_fmadd_ps);
    }
    __m512 s = _mm512_add_ps(FC_SUM12(_mm512_add_ps, a), FC_SUM12(_mm512_add_ps, b));
    fc_peak_sink = (double)_mm512_reduce_add_ps(s);
    return 2.0 * 24 * 16 * (double)iters;
}

__attribute__((target("avx512f")))
static double fc_peak_avx512_d(long iters)
{
    const __m512d m = _mm512_set1_pd(fc_peak_mul_d), c = _mm512_set1_pd(fc_peak_add_d);
    FC_DECL12(__m512d, a, _mm512_set1_pd, 0);
    FC_DECL12(__m512d, b, _mm512_set1_pd, 12);
    for (long it = 0; it < iters; ++it) {
        FC_FMA24(_mm512_fmadd_pd);
    }
    __m512d s = _mm512_add_pd(FC_SUM12(_mm512_add_pd, a), FC_SUM12(_mm512_add_pd, b));
    fc_peak_sink = _mm512_reduce_add_pd(s);
    return 2.0 * 24 * 8 * (double)iters;
}
#endif

/* ------------------------------------------------------------ the driver */

static fc_peak_loop fc_peak_pick(int dsize)
{
    const fc_kernel_set *ks = fc_active_kernels();
    const char *isa = (ks && ks->isa) ? ks->isa : "generic";
    (void)isa;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* The dispatcher only activates a set this CPU can run, so the ISA name
     * alone is enough to choose the loop. */
    if (strcmp(isa, "avx512") == 0)
        return dsize == 4 ? fc_peak_avx512_s : fc_peak_avx512_d;
    if (strcmp(isa, "avx2") == 0)
        return dsize == 4 ? fc_peak_avx2_s : fc_peak_avx2_d;
#endif
    return dsize == 4 ? fc_peak_portable_s : fc_peak_portable_d;
}

double fc_fma_peak_gflops(int dsize, double seconds)
{
    if (dsize != 4 && dsize != 8)
        return -1.0;
    if (!(seconds > 0.0))       /* also catches NaN */
        seconds = 0.2;
    if (seconds > 60.0)
        seconds = 60.0;

    fc_peak_loop loop = fc_peak_pick(dsize);

    /* Runs of about a millisecond: long against the clock's resolution,
     * short against a scheduler time slice, so that on a busy machine most
     * runs still execute without being preempted. */
    const double chunk = seconds / 16.0 < 0.001 ? seconds / 16.0 : 0.001;
    long iters = 256;
    double t0, dt;
    for (;;) {
        t0 = fc_peak_now();
        loop(iters);
        dt = fc_peak_now() - t0;
        if (dt >= chunk || iters > (1L << 40))
            break;
        if (dt < chunk / 64.0)
            iters *= 16;
        else
            iters = (long)((double)iters * (1.1 * chunk / dt)) + 1;
    }

    /* Best of many equal runs: interruptions and frequency changes only
     * ever make a run slower. */
    double best = 0.0;
    const double start = fc_peak_now();
    int runs = 0;
    do {
        t0 = fc_peak_now();
        double flops = loop(iters);
        dt = fc_peak_now() - t0;
        if (dt > 0.0 && flops / dt > best)
            best = flops / dt;
        ++runs;
    } while (runs < 8 || fc_peak_now() - start < seconds);
    return best * 1e-9;
}
