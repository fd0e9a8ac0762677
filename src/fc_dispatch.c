/* Run-time choice of the instruction set: the one place that knows which
 * kernel table each CPU uses.  Detection runs once, at import; FASTCONV_ISA
 * (handled by the Python layer through fc_set_isa) can force any path this
 * CPU can execute. */
#include <string.h>
#include "fc_core.h"
#include "fc_kernels.h"
#include "fc_util.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Read by every call, written by fc_set_isa, possibly from another thread:
 * accessed atomically so a call sees one whole table or the other. */
static const fc_kernel_set *active = 0;

#if defined(__GNUC__) || defined(__clang__)
#define FC_LOAD(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define FC_STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#else
#define FC_LOAD(p) (p)
#define FC_STORE(p, v) ((p) = (v))
#endif

FC_THREAD_LOCAL size_t fc_ws_bytes = 0;

size_t fc_last_workspace_bytes(void) { return fc_ws_bytes; }
void fc_reset_workspace_bytes(void) { fc_ws_bytes = 0; }

static const fc_kernel_set *lookup(const char *name)
{
    if (!strcmp(name, "generic"))
        return &fc_kernels_generic;
#ifdef FC_HAVE_X86_KERNELS
    if (!strcmp(name, "avx2"))
        return &fc_kernels_avx2;
    if (!strcmp(name, "avx512"))
        return &fc_kernels_avx512;
#endif
#ifdef FC_HAVE_NEON_KERNELS
    if (!strcmp(name, "neon"))
        return &fc_kernels_neon;
#endif
    return 0;
}

int fc_isa_supported(const char *name)
{
    const fc_kernel_set *k = lookup(name);
    if (!k)
        return 0;
#ifdef FC_HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (k == &fc_kernels_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == &fc_kernels_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
    /* generic runs everywhere, and NEON on every CPU of the AArch64 builds
     * that compile it */
    return 1;
}

static int known_name(const char *name)
{
    return !strcmp(name, "generic") || !strcmp(name, "avx2") || !strcmp(name, "avx512") ||
           !strcmp(name, "neon");
}

const char *fc_isa_best(void)
{
    if (fc_isa_supported("avx512"))
        return "avx512";
    if (fc_isa_supported("avx2"))
        return "avx2";
    if (fc_isa_supported("neon"))
        return "neon";
    return "generic";
}

int fc_set_isa(const char *name)
{
    if (!known_name(name))
        return -1;
    if (!fc_isa_supported(name))
        return -2;
    FC_STORE(active, lookup(name));
    return 0;
}

const fc_kernel_set *fc_active_kernels(void)
{
    const fc_kernel_set *k = FC_LOAD(active);
    if (!k) {
        k = lookup(fc_isa_best());
        FC_STORE(active, k);
    }
    return k;
}

/* BLIS-style, from the caches:
 *   KC: a kc x NR micro-panel of B fills L1 at most (A's micro-panel and C's
 *       tile stream past it), and no more than 256 steps: longer blocks gain
 *       nothing measurable while shorter ones add passes over C;
 *   MC: the mc x kc block of A takes half of L2, leaving the rest to the B
 *       micro-panels streaming through;
 *   NC: the kc x nc block of B takes this core's share of the last-level
 *       cache, at most 4 MiB so that a forward convolution's workspace stays
 *       small at any thread count. */
void fc_fit_blocking(int mr, int nr, int dsize, int *kc, int *mc, int *nc)
{
    const fc_cache_sizes *cs = fc_caches();
    if (strcmp(cs->source, "default") != 0) {
        const int64_t sz = dsize, share = fc_min((int64_t)4 << 20,
                                                 cs->l3 / fc_max(1, cs->l3_sharing));
        *kc = (int)fc_max(64, fc_min(256, cs->l1d / ((int64_t)nr * sz)));
        *mc = (int)(cs->l2 / 2 / ((int64_t)*kc * sz));
        *nc = (int)(share / ((int64_t)*kc * sz));
    }
    /* whole tiles per block */
    *kc = (int)fc_max(*kc, 1);
    *mc = (int)fc_max(mr, (*mc / mr) * mr);
    *nc = (int)fc_max(nr, (*nc / nr) * nr);
}

/* The active kernel's tile and fitted block sizes: mr, nr, kc, mc, nc. */
void fc_active_blocking(int dsize, int narrow, int out[5])
{
    const fc_kernel_set *k = fc_active_kernels();
    const fc_ukr_s_info *s = narrow ? &k->s_narrow : &k->s;
    const fc_ukr_d_info *d = narrow ? &k->d_narrow : &k->d;
    out[0] = dsize == 4 ? s->mr : d->mr;
    out[1] = dsize == 4 ? s->nr : d->nr;
    out[2] = dsize == 4 ? s->kc : d->kc;
    out[3] = dsize == 4 ? s->mc : d->mc;
    out[4] = dsize == 4 ? s->nc : d->nc;
    fc_fit_blocking(out[0], out[1], dsize, &out[2], &out[3], &out[4]);
}

const char *fc_isa(void) { return fc_active_kernels()->isa; }
const char *fc_kernel_name_s(void) { return fc_active_kernels()->s.name; }
const char *fc_kernel_name_d(void) { return fc_active_kernels()->d.name; }
const char *fc_kernel_name_s_narrow(void) { return fc_active_kernels()->s_narrow.name; }
const char *fc_kernel_name_d_narrow(void) { return fc_active_kernels()->d_narrow.name; }

int fc_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fc_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
