/* The one list of algorithms, as data for users and tests, and the plan
 * helpers that do not depend on the dtype or the instruction set. */
#include <stdio.h>
#include <string.h>

#include "fc_plan.h"
#include "fc_util.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define FC_ALG_ROW(id, name, ops, doc) {name, ops, doc},
static const struct {
    const char *name;
    unsigned ops;
    const char *doc;
} fc_algs[] = {FC_ALGORITHMS(FC_ALG_ROW)};
#undef FC_ALG_ROW

int fc_algorithm_count(void) { return FC_ALG_COUNT; }

const char *fc_algorithm_name(int alg)
{
    return alg >= 0 && alg < FC_ALG_COUNT ? fc_algs[alg].name : "";
}

const char *fc_algorithm_doc(int alg)
{
    return alg >= 0 && alg < FC_ALG_COUNT ? fc_algs[alg].doc : "";
}

unsigned fc_algorithm_ops(int alg)
{
    return alg >= 0 && alg < FC_ALG_COUNT ? fc_algs[alg].ops : 0u;
}

int fc_algorithm_id(const char *name)
{
    for (int i = 0; i < FC_ALG_COUNT; i++)
        if (!strcmp(name, fc_algs[i].name))
            return i;
    return FC_ALG_NONE;
}

/* A call splits its work for as many threads as will run it: without
 * OpenMP that is one, whatever was asked; inside a parallel region that
 * cannot nest, also one; never more than the runtime's thread limit. */
int fc_threads_usable(int nthreads)
{
    if (nthreads < 1)
        return 1;
#ifdef _OPENMP
    if (omp_get_active_level() >= omp_get_max_active_levels())
        return 1;
    const int limit = omp_get_thread_limit();
    return nthreads < limit ? nthreads : (limit < 1 ? 1 : limit);
#else
    return 1;
#endif
}

void fc_plan_init(fc_plan *pl)
{
    memset(pl, 0, sizeof *pl);
    pl->alg = FC_ALG_NONE;
    pl->narrow = -1;
}

int fc_plan_needs_finite(const fc_plan *pl)
{
    return pl->alg == FC_ALG_LANES || pl->alg == FC_ALG_PHASED ||
           (pl->flags & (FC_PLAN_ROTATED | FC_PLAN_SKIPS)) != 0 ||
           ((pl->alg == FC_ALG_DEPTHWISE || pl->alg == FC_ALG_GROUPED) &&
            pl->op == FC_OP_CONV_DATA);
}

/* Pooling: one algorithm per shape (a window over the whole unpadded plane
 * is one reduction per plane), each plane handled whole by one thread. */
int fc_plan_pool(const fc_pool_geom *g, int dsize, int nthreads, fc_plan *pl)
{
    fc_plan_init(pl);
    pl->op = FC_OP_POOL;
    pl->dsize = dsize;
    pl->nthreads = fc_threads_usable(nthreads);
    pl->alg = (g->KH == g->H && g->KW == g->W && g->PH == 0 && g->PW == 0) ? FC_ALG_POOL_GLOBAL
                                                                           : FC_ALG_POOL_ROWS;
    pl->threads = fc_pool_threads(g, pl->nthreads);
    pl->kernel = fc_isa();
    pl->cost = 1.0;
    snprintf(pl->reason, sizeof pl->reason, "%s: %s", fc_algorithm_name(pl->alg),
             pl->alg == FC_ALG_POOL_GLOBAL ? "the window is the whole plane"
             : fc_pool_narrow(g, dsize)
                 ? "windows smaller than the plane; planes narrow enough for the "
                   "narrow-plane kernels (forward, max backward), a row in two vectors"
                 : "windows smaller than the plane");
    return FC_OK;
}
