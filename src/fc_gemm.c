/* The GEMM engine (packing, blocking, threads) and the convolution and
 * linear operations on top of it, compiled from fc_gemm.inc once per dtype
 * and, with GCC on x86-64, once per instruction set as well: the packing
 * (im2col gather, transposes, col2im) then runs on the same vector width as
 * the microkernels.  The public entry points pick the copy that matches the
 * active kernel table. */
#include <stdio.h>
#include <string.h>

#include "fc_core.h"
#include "fc_kernels.h"
#include "fc_util.h"

#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)

/* Direct stride-1 path: needs GNU C vector extensions.  Tile per
 * instruction set: enough accumulators to hide FMA latency, few enough to
 * stay in registers (FC_DMR rows of FC_DNV vectors, 2 unless set).  Rows
 * come in multiples of 8 because channel counts usually do. */
#if defined(__GNUC__)
#define FC_VEC_BYTES 16
#define FC_DMR 4
#endif

#define FC_ISA generic
#include "fc_pack_tr.inc"
#undef FC_ISA
#define T float
#define KI fc_ukr_s_info
#define KSEL(set) ((set)->s)
#define KSEL_NARROW(set) ((set)->s_narrow)
#define FN(name) FC_CAT(name, s_generic)
#include "fc_gemm.inc"
#undef FN
#undef T
#undef KI
#undef KSEL
#undef KSEL_NARROW

#define T double
#define KI fc_ukr_d_info
#define KSEL(set) ((set)->d)
#define KSEL_NARROW(set) ((set)->d_narrow)
#define FN(name) FC_CAT(name, d_generic)
#include "fc_gemm.inc"
#undef FN
#undef T
#undef KI
#undef KSEL
#undef KSEL_NARROW

#if defined(FC_HAVE_X86_KERNELS) && defined(__GNUC__) && !defined(__clang__)
#define FC_ENGINE_PER_ISA 1
#include <immintrin.h>

#undef FC_VEC_BYTES
#undef FC_DMR
#define FC_VEC_BYTES 32
#define FC_DMR 6
#pragma GCC push_options
#pragma GCC target("avx2,fma,tune=haswell")
#define FC_ISA avx2
#include "fc_pack_tr.inc"
#undef FC_ISA
#define T float
#define KI fc_ukr_s_info
#define KSEL(set) ((set)->s)
#define KSEL_NARROW(set) ((set)->s_narrow)
#define FN(name) FC_CAT(name, s_avx2)
#include "fc_gemm.inc"
#undef FN
#undef T
#undef KI
#undef KSEL
#undef KSEL_NARROW
#define T double
#define KI fc_ukr_d_info
#define KSEL(set) ((set)->d)
#define KSEL_NARROW(set) ((set)->d_narrow)
#define FN(name) FC_CAT(name, d_avx2)
#include "fc_gemm.inc"
#undef FN
#undef T
#undef KI
#undef KSEL
#undef KSEL_NARROW
#pragma GCC pop_options

#undef FC_VEC_BYTES
#undef FC_DMR
#define FC_VEC_BYTES 64
#define FC_DMR 8
#define FC_DNV 3
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")
#define FC_ISA avx512
#include "fc_pack_tr.inc"
#undef FC_ISA
#define T float
#define KI fc_ukr_s_info
#define KSEL(set) ((set)->s)
#define KSEL_NARROW(set) ((set)->s_narrow)
#define FN(name) FC_CAT(name, s_avx512)
#include "fc_gemm.inc"
#undef FN
#undef T
#undef KI
#undef KSEL
#undef KSEL_NARROW
#define T double
#define KI fc_ukr_d_info
#define KSEL(set) ((set)->d)
#define KSEL_NARROW(set) ((set)->d_narrow)
#define FN(name) FC_CAT(name, d_avx512)
#include "fc_gemm.inc"
#undef FN
#undef T
#undef KI
#undef KSEL
#undef KSEL_NARROW
#pragma GCC pop_options
#endif

/* 0 generic, 1 avx2, 2 avx512: which compiled copy of the engine to run */
static int engine(void)
{
#ifdef FC_ENGINE_PER_ISA
    const fc_kernel_set *k = fc_active_kernels();
    if (k == &fc_kernels_avx512)
        return 2;
    if (k == &fc_kernels_avx2)
        return 1;
#endif
    return 0;
}

#ifdef FC_ENGINE_PER_ISA
#define FC_DISPATCH(name, S, args)                                                   \
    switch (engine()) {                                                              \
    case 2:                                                                          \
        return name##_##S##_avx512 args;                                             \
    case 1:                                                                          \
        return name##_##S##_avx2 args;                                               \
    default:                                                                         \
        return name##_##S##_generic args;                                            \
    }
#else
#define FC_DISPATCH(name, S, args) return name##_##S##_generic args;
#endif

#define FC_ENTRY_POINTS(T, S)                                                        \
    int fc_conv2d_fwd_##S(const fc_conv_geom *g, const T *x, const T *w, const T *b, \
                          T *y, int relu, int nt)                                    \
    {                                                                                \
        FC_DISPATCH(fc_conv2d_fwd, S, (g, x, w, b, y, relu, nt))                     \
    }                                                                                \
    int fc_conv2d_bwd_data_##S(const fc_conv_geom *g, const T *dy, const T *w, T *dx, \
                               int nt)                                               \
    {                                                                                \
        FC_DISPATCH(fc_conv2d_bwd_data, S, (g, dy, w, dx, nt))                       \
    }                                                                                \
    int fc_conv2d_bwd_weight_##S(const fc_conv_geom *g, const T *dy, const T *x,     \
                                 T *dw, T *db, int nt)                               \
    {                                                                                \
        FC_DISPATCH(fc_conv2d_bwd_weight, S, (g, dy, x, dw, db, nt))                 \
    }                                                                                \
    int fc_linear_fwd_##S(fc_int N, fc_int D, fc_int O, const T *x, const T *w,      \
                          const T *b, T *y, int relu, int nt)                        \
    {                                                                                \
        FC_DISPATCH(fc_linear_fwd, S, (N, D, O, x, w, b, y, relu, nt))               \
    }                                                                                \
    int fc_linear_bwd_##S(fc_int N, fc_int D, fc_int O, const T *dy, const T *x,     \
                          const T *w, T *dx, T *dw, T *db, int nt)                   \
    {                                                                                \
        FC_DISPATCH(fc_linear_bwd, S, (N, D, O, dy, x, w, dx, dw, db, nt))           \
    }

FC_ENTRY_POINTS(float, s)
FC_ENTRY_POINTS(double, d)
