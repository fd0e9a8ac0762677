/* The GEMM engine (packing, blocking, threads) and the convolution and
 * linear operations on top of it, compiled once per dtype from fc_gemm.inc. */
#include "fc_core.h"
#include "fc_kernels.h"
#include "fc_util.h"

#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)

#define T float
#define FN(name) FC_CAT(name, s)
#define KI fc_ukr_s_info
#define KSEL(set) ((set)->s)
#include "fc_gemm.inc"
#undef T
#undef FN
#undef KI
#undef KSEL

#define T double
#define FN(name) FC_CAT(name, d)
#define KI fc_ukr_d_info
#define KSEL(set) ((set)->d)
#include "fc_gemm.inc"
#undef T
#undef FN
#undef KI
#undef KSEL
