/* Stand-ins for the parts of the fastconv core that the pooling kernels use,
 * so src/fc_pool.c can be built and timed on its own (see harness.py):
 * the workspace counter of fc_util.h (fc_dispatch.c in the real build), the
 * active instruction set, which comes from FASTCONV_ISA (default: the best
 * one the CPU runs), and fc_copy, the copy bandwidth the pooling speed is
 * compared with. */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "fc_kernels.h"
#include "fc_util.h"

FC_THREAD_LOCAL size_t fc_ws_bytes = 0;

/* The core's rule (fc_plan.c): never more threads than can run. */
int fc_threads_usable(int nthreads)
{
    if (nthreads < 1)
        return 1;
#ifdef _OPENMP
    if (omp_get_active_level() >= omp_get_max_active_levels())
        return 1;
    return nthreads < omp_get_thread_limit() ? nthreads : omp_get_thread_limit();
#else
    return 1;
#endif
}

/* The kernel tables pooling compares the active one with; only their names
 * are filled in, pooling reads nothing else. */
const fc_kernel_set fc_kernels_generic = {.isa = "generic"};
#ifdef FC_HAVE_X86_KERNELS
const fc_kernel_set fc_kernels_avx2 = {.isa = "avx2"};
const fc_kernel_set fc_kernels_avx512 = {.isa = "avx512"};
#endif
#ifdef FC_HAVE_NEON_KERNELS
const fc_kernel_set fc_kernels_neon = {.isa = "neon"};
#endif

const fc_kernel_set *fc_active_kernels(void)
{
    const char *e = getenv("FASTCONV_ISA");
#ifdef FC_HAVE_X86_KERNELS
    __builtin_cpu_init();
    const int has512 = __builtin_cpu_supports("avx512f");
    const int has2 = __builtin_cpu_supports("avx2");
    if (e && strcmp(e, "generic") == 0)
        return &fc_kernels_generic;
    if (e && strcmp(e, "avx2") == 0 && has2)
        return &fc_kernels_avx2;
    if (has512 && !(e && strcmp(e, "avx2") == 0))
        return &fc_kernels_avx512;
    if (has2)
        return &fc_kernels_avx2;
#elif defined(FC_HAVE_NEON_KERNELS)
    /* every AArch64 CPU runs NEON; pooling runs its generic loops there */
    if (!(e && strcmp(e, "generic") == 0))
        return &fc_kernels_neon;
#else
    (void)e;
#endif
    return &fc_kernels_generic;
}

const char *fc_standalone_isa(void)
{
    return fc_active_kernels()->isa;
}

/* memcpy split into one contiguous chunk per thread, the way the pooling
 * drivers split planes. */
void fc_copy(void *dst, const void *src, int64_t bytes, int nthreads)
{
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
    {
        const int t = fc_thread_id(), n = fc_team_size();
        const int64_t q = bytes / n, r = bytes % n;
        const int64_t b = t * q + (t < r ? t : r), e = b + q + (t < r ? 1 : 0);
        memcpy((char *)dst + b, (const char *)src + b, (size_t)(e - b));
    }
#else
    (void)nthreads;
    memcpy(dst, src, (size_t)bytes);
#endif
}
