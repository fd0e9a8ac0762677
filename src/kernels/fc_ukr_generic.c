/* Portable C microkernels: the reference every ISA variant is tested against,
 * and the path used on CPUs without AVX2 (and on non-x86 machines). */
#include <stddef.h>

#include "../fc_kernels.h"

#define T float
#define MR 4
#define NR 16
#define UKR fc_sgemm_generic_4x16
#include "fc_ukr_generic.inc"
#undef T
#undef MR
#undef NR
#undef UKR

#define T double
#define MR 4
#define NR 8
#define UKR fc_dgemm_generic_4x8
#include "fc_ukr_generic.inc"
#undef T
#undef MR
#undef NR
#undef UKR

const fc_kernel_set fc_kernels_generic = {
    "generic",
    {"sgemm_generic_4x16", 4, 16, 256, 128, 2048, fc_sgemm_generic_4x16, NULL, 2},
    {"dgemm_generic_4x8", 4, 8, 256, 128, 1024, fc_dgemm_generic_4x8, NULL, 2},
    {"sgemm_generic_4x16", 4, 16, 256, 128, 2048, fc_sgemm_generic_4x16, NULL, 2},
    {"dgemm_generic_4x8", 4, 8, 256, 128, 1024, fc_dgemm_generic_4x8, NULL, 2},
};
