/* The convolution engine (GEMM engine, algorithms, planner), compiled once
 * per dtype and, with GCC on x86-64, once per instruction set as well: the
 * packing (im2col gather, transposes, col2im) then runs on the same vector
 * width as the microkernels.  A plan records which copy made it, and runs on
 * that copy. */
#include <stdio.h>
#include <string.h>

#include "fc_core.h"
#include "fc_kernels.h"
#include "fc_plan.h"
#include "fc_util.h"

#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_PASTE3_(a, b, c) a##b##c
#define FC_PASTE3(a, b, c) FC_PASTE3_(a, b, c)
#define FC_XSTR_(a) #a
#define FC_XSTR(a) FC_XSTR_(a)

/* Per instruction set: the vector width of the packing and of the direct,
 * kvec and dot1x1 tiles, and the rows of the direct tile (FC_DMR rows of
 * FC_DNV vectors, 2 unless set): enough accumulators to hide the FMA
 * latency, few enough to stay in registers.  Those three algorithms need GNU
 * C vector extensions; without them FC_DMR stays unset and the planner never
 * offers them. */
enum { FC_ENGINE_GENERIC = 0, FC_ENGINE_AVX2 = 1, FC_ENGINE_AVX512 = 2 };

#define FC_ISA generic
#if defined(__GNUC__)
#define FC_VEC_BYTES 16
#define FC_DMR 4
#endif
#include "fc_instance.inc"

#if defined(FC_HAVE_X86_KERNELS) && defined(__GNUC__) && !defined(__clang__)
#define FC_ENGINE_PER_ISA 1
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,tune=haswell")
#define FC_ISA avx2
#define FC_VEC_BYTES 32
#define FC_DMR 6
#include "fc_instance.inc"
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")
#define FC_ISA avx512
#define FC_VEC_BYTES 64
#define FC_DMR 8
#define FC_DNV 3
#include "fc_instance.inc"
#pragma GCC pop_options
#endif

/* Which compiled copy of the engine matches the active kernel table.  The
 * generic copy serves every other table (NEON's on AArch64, where NEON is
 * the baseline the generic copy is compiled for): it takes its microkernels
 * from fc_active_kernels() at each call. */
static int engine(void)
{
#ifdef FC_ENGINE_PER_ISA
    const fc_kernel_set *k = fc_active_kernels();
    if (k == &fc_kernels_avx512)
        return FC_ENGINE_AVX512;
    if (k == &fc_kernels_avx2)
        return FC_ENGINE_AVX2;
#endif
    return FC_ENGINE_GENERIC;
}

#ifdef FC_ENGINE_PER_ISA
#define FC_ON(e, name, S, args)                                                      \
    switch (e) {                                                                     \
    case FC_ENGINE_AVX512:                                                           \
        return name##_##S##_avx512 args;                                             \
    case FC_ENGINE_AVX2:                                                             \
        return name##_##S##_avx2 args;                                               \
    default:                                                                         \
        return name##_##S##_generic args;                                            \
    }
#else
#define FC_ON(e, name, S, args) return ((void)(e), name##_##S##_generic args);
#endif

#define FC_RUNS(T, S)                                                                \
    static int run_fwd_##S(const fc_plan *pl, const T *x, const T *w, const T *b, T *y, \
                           int relu)                                                 \
    {                                                                                \
        FC_ON(pl->engine, run_conv_fwd, S, (pl, x, w, b, y, relu))                   \
    }                                                                                \
    static int run_data_##S(const fc_plan *pl, const T *dy, const T *w, T *dx)       \
    {                                                                                \
        FC_ON(pl->engine, run_conv_data, S, (pl, dy, w, dx))                         \
    }                                                                                \
    static int run_weight_##S(const fc_plan *pl, const T *dy, const T *x, T *dw, T *db) \
    {                                                                                \
        FC_ON(pl->engine, run_conv_weight, S, (pl, dy, x, dw, db))                   \
    }
FC_RUNS(float, s)
FC_RUNS(double, d)

static int plan_on(int e, int op, const fc_conv_geom *g, int nt, int forced, int wfinite,
                   fc_plan *pl, int dsize)
{
    if (dsize == 4) {
        FC_ON(e, plan_conv, s, (op, g, nt, forced, wfinite, pl))
    }
    FC_ON(e, plan_conv, d, (op, g, nt, forced, wfinite, pl))
}

/* A plan's groups, one after another or (FC_PLAN_GROUPS_SIDE) side by side
 * on pl->threads threads, each group on one: the first failure is
 * returned; side by side, the other groups still run. */
static int run_groups(const fc_plan *pl, int (*one)(const fc_plan *, int, const void *const *),
                      const void *const *a)
{
    int rc = FC_OK;
    if (pl->flags & FC_PLAN_GROUPS_SIDE) {
#pragma omp parallel for num_threads(pl->threads) schedule(dynamic, 1)
        for (int i = 0; i < pl->groups; i++) {
            const int r = one(pl, i, a);
            if (r != FC_OK) {
#pragma omp critical(fc_groups_rc)
                rc = r;
            }
        }
        return rc;
    }
    for (int i = 0; i < pl->groups && rc == FC_OK; i++)
        rc = one(pl, i, a);
    return rc;
}

#define FC_ENTRY_POINTS(T, S, DSIZE)                                                 \
    int fc_plan_conv_##S(int op, const fc_conv_geom *g, int nt, int forced,          \
                         int wfinite, fc_plan *pl)                                   \
    {                                                                                \
        const int e = engine();                                                      \
        const int rc = plan_on(e, op, g, nt, forced, wfinite, pl, DSIZE);            \
        pl->engine = e;                                                              \
        return rc;                                                                   \
    }                                                                                \
    static int fwd_group_##S(const fc_plan *pl, int i, const void *const *a)        \
    {                                                                                \
        const fc_conv_geom *g = &pl->g;                                              \
        const T *x = (const T *)a[0], *w = (const T *)a[1], *b = (const T *)a[2];    \
        return run_fwd_##S(pl, x + i * g->C * g->H * g->W,                           \
                           w + i * g->K * g->C * g->FH * g->FW, b ? b + i * g->K : b, \
                           (T *)a[3] + i * g->K * g->H2 * g->W2, *(const int *)a[4]); \
    }                                                                                \
    int fc_conv2d_fwd_plan_##S(const fc_plan *pl, const T *x, const T *w, const T *b, \
                               T *y, int relu)                                       \
    {                                                                                \
        const void *a[5] = {x, w, b, y, &relu};                                      \
        return run_groups(pl, fwd_group_##S, a);                                     \
    }                                                                                \
    static int data_group_##S(const fc_plan *pl, int i, const void *const *a)       \
    {                                                                                \
        const fc_conv_geom *g = &pl->g;                                              \
        return run_data_##S(pl, (const T *)a[0] + i * g->K * g->H2 * g->W2,          \
                            (const T *)a[1] + i * g->K * g->C * g->FH * g->FW,       \
                            (T *)a[2] + i * g->C * g->H * g->W);                     \
    }                                                                                \
    int fc_conv2d_bwd_data_plan_##S(const fc_plan *pl, const T *dy, const T *w, T *dx) \
    {                                                                                \
        const void *a[3] = {dy, w, dx};                                              \
        return run_groups(pl, data_group_##S, a);                                    \
    }                                                                                \
    static int weight_group_##S(const fc_plan *pl, int i, const void *const *a)     \
    {                                                                                \
        const fc_conv_geom *g = &pl->g;                                              \
        T *db = (T *)a[3];                                                           \
        return run_weight_##S(pl, (const T *)a[0] + i * g->K * g->H2 * g->W2,        \
                              (const T *)a[1] + i * g->C * g->H * g->W,              \
                              (T *)a[2] + i * g->K * g->C * g->FH * g->FW,           \
                              db ? db + i * g->K : db);                              \
    }                                                                                \
    int fc_conv2d_bwd_weight_plan_##S(const fc_plan *pl, const T *dy, const T *x,    \
                                      T *dw, T *db)                                  \
    {                                                                                \
        const void *a[4] = {dy, x, dw, db};                                          \
        return run_groups(pl, weight_group_##S, a);                                  \
    }                                                                                \
    int fc_all_finite_##S(const T *a, fc_int n, int nt)                              \
    {                                                                                \
        FC_ON(engine(), all_finite_par, S, (a, n, fc_threads_usable(nt)))            \
    }                                                                                \
    int fc_plan_linear_##S(fc_int N, fc_int D, fc_int O, int backward, int nt,       \
                           fc_plan *pl)                                              \
    {                                                                                \
        memset(pl, 0, sizeof *pl);                                                   \
        pl->op = backward ? FC_OP_LINEAR_BWD : FC_OP_LINEAR_FWD;                     \
        pl->alg = FC_ALG_GEMM;                                                       \
        pl->dsize = DSIZE;                                                           \
        pl->nthreads = fc_threads_usable(nt);                                        \
        pl->engine = engine();                                                       \
        pl->cost = 1.0;                                                              \
        snprintf(pl->reason, sizeof pl->reason, "gemm: a linear layer is one product"); \
        FC_ON(pl->engine, plan_linear, S, (N, D, O, backward, pl->nthreads, pl))     \
    }                                                                                \
    int fc_linear_fwd_##S(fc_int N, fc_int D, fc_int O, const T *x, const T *w,      \
                          const T *b, T *y, int relu, int nt)                        \
    {                                                                                \
        FC_ON(engine(), fc_linear_fwd, S, (N, D, O, x, w, b, y, relu,                \
                                           fc_threads_usable(nt)))                   \
    }                                                                                \
    int fc_linear_bwd_##S(fc_int N, fc_int D, fc_int O, const T *dy, const T *x,     \
                          const T *w, T *dx, T *dw, T *db, int nt)                   \
    {                                                                                \
        FC_ON(engine(), fc_linear_bwd, S, (N, D, O, dy, x, w, dx, dw, db,            \
                                           fc_threads_usable(nt)))                   \
    }

FC_ENTRY_POINTS(float, s, 4)
FC_ENTRY_POINTS(double, d, 8)
