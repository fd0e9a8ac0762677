/* The plan of a call: which algorithm computes it, on which kernel, with how
 * many threads and how much workspace, decided before anything computes.
 *
 * FC_ALGORITHMS is the one list of algorithms.  It drives the planner (the
 * order below is the order in which it tries the specialised algorithms
 * before falling back to the GEMM), the forcing of an algorithm by name,
 * fastconv.algorithms(), the tests and the benchmark records.  Adding an
 * algorithm is one entry here, its assess/run pair, and its case in the
 * planner of each op it serves.
 *
 *   X(ID, "name", ops it serves, one line for users)
 */
#ifndef FC_PLAN_H
#define FC_PLAN_H

#include <stddef.h>
#include "fc_core.h"

enum fc_op {
    FC_OP_CONV_FWD = 0,
    FC_OP_CONV_DATA,
    FC_OP_CONV_WEIGHT,
    FC_OP_LINEAR_FWD,
    FC_OP_LINEAR_BWD,
    FC_OP_POOL,
    FC_OP_COUNT
};

#define FC_FOR(op) (1u << (op))
#define FC_CONV_OPS (FC_FOR(FC_OP_CONV_FWD) | FC_FOR(FC_OP_CONV_DATA))

#define FC_ALGORITHMS(X)                                                                     \
    X(DEPTHWISE, "depthwise", FC_CONV_OPS | FC_FOR(FC_OP_CONV_WEIGHT),                       \
      "one input channel per group: each channel's rows swept by its filters' taps")        \
    X(GROUPED, "grouped", FC_CONV_OPS | FC_FOR(FC_OP_CONV_WEIGHT),                           \
      "small groups, strides up to 4: every group in one parallel region on filter tiles") \
    X(DOT, "dot", FC_FOR(FC_OP_CONV_WEIGHT),                                                 \
      "one long dot product per weight (filters of at most 64 weights)")                    \
    X(DOT1X1, "dot1x1", FC_FOR(FC_OP_CONV_WEIGHT),                                           \
      "1x1 weight gradient as dot products along the pixels of dy and x as they lie")        \
    X(KVEC, "kvec", FC_CONV_OPS | FC_FOR(FC_OP_CONV_WEIGHT),                                 \
      "output-channel vectors over a phase-split slab of input rows: no gather at any stride") \
    X(LANES, "lanes", FC_CONV_OPS,                                                           \
      "images (or tiles of them) as the register tile's columns; all-padding taps skipped")  \
    X(DIRECT, "direct", FC_CONV_OPS,                                                         \
      "stride 1: a zero-padded slab of input rows read in place on a wide grid")             \
    X(GEMM_T, "gemm_t", FC_CONV_OPS,                                                         \
      "the GEMM turned around: output pixels as the register tile's rows")                   \
    X(PHASED, "phased", FC_FOR(FC_OP_CONV_DATA),                                             \
      "strided data gradient as stride-1 convolutions of dy, one per phase of dx's grid")   \
    X(COL2IM, "col2im", FC_FOR(FC_OP_CONV_DATA),                                             \
      "w^T dy in L2-sized tiles, each scattered into dx at once")                           \
    X(GEMM, "gemm", FC_CONV_OPS | FC_FOR(FC_OP_CONV_WEIGHT) | FC_FOR(FC_OP_LINEAR_FWD) |    \
                        FC_FOR(FC_OP_LINEAR_BWD),                                            \
      "packed weights times im2col panels gathered block by block (x itself for a 1x1)")     \
    X(POOL_ROWS, "pool_rows", FC_FOR(FC_OP_POOL),                                            \
      "pooling row by row through padded row buffers, vectorised along the width")          \
    X(POOL_GLOBAL, "pool_global", FC_FOR(FC_OP_POOL),                                        \
      "pooling whose window is the whole plane: one reduction per plane")

#define FC_ALG_ENUM(id, name, ops, doc) FC_ALG_##id,
enum fc_alg { FC_ALG_NONE = -1, FC_ALGORITHMS(FC_ALG_ENUM) FC_ALG_COUNT };
#undef FC_ALG_ENUM

/* A data gradient of stride 1 runs as a forward convolution of dy with the
 * weights turned 180 degrees and K and C swapped. */
#define FC_PLAN_ROTATED 1u
/* The groups of a call run side by side, each on one thread: every group
 * alone is too small for more than one. */
#define FC_PLAN_GROUPS_SIDE 2u
/* The plan leaves out the products of weights with the zero padding, so
 * needs finite weights (kvec's forward). */
#define FC_PLAN_SKIPS 4u

typedef struct {
    int op;                /* enum fc_op */
    int alg;               /* enum fc_alg */
    int threads;           /* threads that run it: never more than can run */
    int nthreads;          /* threads the call may use, of which it takes `threads` */
    int engine;            /* the compiled copy (instruction set) that plans and runs */
    int dsize;             /* 4 or 8 */
    unsigned flags;        /* FC_PLAN_ROTATED, FC_PLAN_GROUPS_SIDE, FC_PLAN_SKIPS */
    size_t workspace;      /* bytes the run allocates */
    const char *kernel;    /* the register tile's kernel, e.g. "sgemm_avx512_14x32" */
    double cost;           /* the estimate that chose it: time relative to the GEMM's */
    fc_conv_geom g;        /* the call's convolution */
    fc_conv_geom ag;       /* the one the algorithm computes: g, or g turned around (a data
                              gradient as a forward convolution of dy) */
    int groups;            /* the groups run one after another on g and ag, the geometry
                              of one group; 1 when the algorithm takes every group at once
                              (depthwise: g and ag are then the whole call's) */
    int narrow;            /* lanes: the narrow register tile */
    fc_int th, tw;         /* lanes: the output tile of a virtual image */
    char reason[200];      /* one line: why this algorithm */
} fc_plan;

/* Planning fails only for a forced algorithm that cannot serve the call:
 * FC_EPLAN, with the reason in plan->reason. */
#define FC_EPLAN (-3)

/* forced: FC_ALG_NONE to let the planner choose.  wfinite: whether every
 * weight is finite (the entry points test it; a weight holding inf or NaN
 * rules out the algorithms that skip zero padding instead of multiplying
 * it). */
#define FC_DECLARE_PLANS(T, S)                                                              \
    int fc_plan_conv_##S(int op, const fc_conv_geom *g, int nthreads, int forced,          \
                         int wfinite, fc_plan *pl);                                         \
    int fc_conv2d_fwd_plan_##S(const fc_plan *pl, const T *x, const T *w, const T *b, T *y, \
                               int relu);                                                   \
    int fc_conv2d_bwd_data_plan_##S(const fc_plan *pl, const T *dy, const T *w, T *dx);     \
    int fc_conv2d_bwd_weight_plan_##S(const fc_plan *pl, const T *dy, const T *x, T *dw,    \
                                      T *db);                                               \
    int fc_all_finite_##S(const T *a, fc_int n, int nthreads);                             \
    int fc_plan_linear_##S(fc_int N, fc_int D, fc_int O, int backward, int nthreads,        \
                           fc_plan *pl);

FC_DECLARE_PLANS(float, s)
FC_DECLARE_PLANS(double, d)

/* Pooling's plan: its algorithm and threads (op is FC_OP_POOL).  The
 * pooling kernels split their planes among fc_pool_threads(g, nthreads). */
int fc_plan_pool(const fc_pool_geom *g, int dsize, int nthreads, fc_plan *pl);
int fc_pool_threads(const fc_pool_geom *g, int nthreads);
/* Whether g's planes are narrow enough for the narrow-plane kernels
 * (fc_pool_small.inc: the forward, and the max backward but for 2x2 stride 2)
 * on the active instruction set, for elements of dsize bytes. */
int fc_pool_narrow(const fc_pool_geom *g, int dsize);

/* A plan ready for fc_plan_conv_*: no lanes tile forced.  Set narrow (0 or
 * 1) or th and tw afterwards to force one. */
void fc_plan_init(fc_plan *pl);

/* Whether running pl needs weights that are all finite (lanes, kvec's
 * forward where it skips the padding, a data gradient through the rotated
 * weights, by phases, or depthwise's data gradient): the
 * entry points test the weights then, and plan again without that algorithm
 * when they are not. */
int fc_plan_needs_finite(const fc_plan *pl);

/* The list, for users and tests. */
int fc_algorithm_count(void);
const char *fc_algorithm_name(int alg);
const char *fc_algorithm_doc(int alg);
unsigned fc_algorithm_ops(int alg);
int fc_algorithm_id(const char *name);   /* FC_ALG_NONE when unknown */

/* The threads a call split for nthreads will really get: 1 in a build
 * without OpenMP, or inside a parallel region that cannot nest. */
int fc_threads_usable(int nthreads);

#endif
