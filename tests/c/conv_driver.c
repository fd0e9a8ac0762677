/* The C core's convolution and pooling entry points against plain C
 * references, without Python: the test that runs wherever a C compiler
 * does, including a cross-compiled AArch64 build under qemu-user
 * (tools/check-aarch64.sh).
 *
 *   conv_driver [--isa NAME]... [--threads N] [--quick] [--batch-bits]
 *
 * For every instruction set this build and CPU can run (or those named),
 * both dtypes and each thread count (1, and N when the core has OpenMP;
 * default N = 3), it plans every convolution op (forward, data gradient,
 * weight gradient) of a list of shapes (strided, padded, 1x1, odd sizes,
 * batch 1, C = 1, K = 1, reductions longer than one KC block) once with
 * the planner's own choice and once forced to each algorithm that serves
 * the op (lanes also with each tile width), skips the forced plans the
 * planner refuses, runs the others and compares them with direct loops in
 * double.  A result may differ from the exact sum by rounding only:
 * |got - ref| <= eps * (L + 2) * sum |terms|, L the reduction length.
 * Pooling (max and average, forward and backward, max with indices, with
 * and without counting the padding) is checked over its own shapes: max
 * pooling exactly (selection; the backward adds dy window by window in
 * row-major order, as the core does), average pooling within rounding.
 * Outputs start as NaN, so an element left unwritten fails; inputs are
 * checked unchanged.  With --batch-bits, forward and data-gradient results
 * of batches must also be the same bits as the images run one at a time
 * (where the single-image plan takes the same algorithm): a column's sum
 * must not depend on where in a register tile its pixel falls.
 *
 * Prints a line per (instruction set, dtype, threads) and per part, and
 * ends with "conv_driver: N checks, F failed"; exits 1 on any failure.
 * Every algorithm must have run for every op it serves, or that is a
 * failure too (a driver that silently tests nothing is no test).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fc_core.h"
#include "fc_plan.h"

static long n_checks, n_fail;
/* --batch-bits: forward and data-gradient results must be the same bits
 * whole and image by image (where the per-image plan takes the same
 * algorithm); counts of those comparisons */
static int batch_bits;
static long n_batch_same;

/* ------------------------------------------------------------ utilities */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static double urand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* Values exactly representable in float32, so both dtypes see the same data
 * and the double reference is exact for both. */
static void fill(double *a, fc_int n)
{
    for (fc_int i = 0; i < n; i++)
        a[i] = (double)(float)urand();
}

static fc_int out_size(fc_int n, fc_int k, fc_int s, fc_int p) { return (n + 2 * p - k) / s + 1; }

/* A failure's report: at most a few lines per case. */
static int report(int bad, const char *what, fc_int i, double got, double ref, double tol)
{
    if (bad < 3)
        printf("    %s[%lld] = %.9g, reference %.9g (tolerance %.3g)\n", what, (long long)i,
               got, ref, tol);
    return bad + 1;
}

/* ------------------------------------------------- convolution references */

typedef struct {
    fc_int N, C, H, W, K, FH, FW, SH, SW, PH, PW;
} conv_shape;

static fc_conv_geom conv_geom_of(const conv_shape *s)
{
    fc_conv_geom g = {0};
    g.DH = g.DW = 1, g.G = 1;   /* dense images, no dilation, one group */
    g.N = s->N, g.C = s->C, g.H = s->H, g.W = s->W, g.K = s->K, g.FH = s->FH, g.FW = s->FW;
    g.SH = s->SH, g.SW = s->SW, g.PH = s->PH, g.PW = s->PW;
    g.H2 = out_size(s->H, s->FH, s->SH, s->PH);
    g.W2 = out_size(s->W, s->FW, s->SW, s->PW);
    return g;
}

#define XI(g, n, c, h, w) ((((n) * (g)->C + (c)) * (g)->H + (h)) * (g)->W + (w))
#define YI(g, n, k, h, w) ((((n) * (g)->K + (k)) * (g)->H2 + (h)) * (g)->W2 + (w))
#define WI(g, k, c, h, w) ((((k) * (g)->C + (c)) * (g)->FH + (h)) * (g)->FW + (w))

/* The exact sums (products of float32 values are exact in double, and the
 * sums here are short) and the sums of the terms' magnitudes. */
typedef struct {
    double *y, *ymag;     /* forward, bias included */
    double *dx, *dxmag;   /* data gradient */
    double *dw, *dwmag;   /* weight gradient */
    double *db, *dbmag;   /* bias gradient */
} conv_ref;

static void conv_reference(const fc_conv_geom *g, const double *x, const double *w,
                           const double *b, const double *dy, conv_ref *r)
{
    const fc_int ny = g->N * g->K * g->H2 * g->W2, nx = g->N * g->C * g->H * g->W;
    const fc_int nw = g->K * g->C * g->FH * g->FW;
    r->y = calloc((size_t)ny, sizeof(double));
    r->ymag = calloc((size_t)ny, sizeof(double));
    r->dx = calloc((size_t)nx, sizeof(double));
    r->dxmag = calloc((size_t)nx, sizeof(double));
    r->dw = calloc((size_t)nw, sizeof(double));
    r->dwmag = calloc((size_t)nw, sizeof(double));
    r->db = calloc((size_t)g->K, sizeof(double));
    r->dbmag = calloc((size_t)g->K, sizeof(double));
    for (fc_int n = 0; n < g->N; n++)
        for (fc_int k = 0; k < g->K; k++)
            for (fc_int oh = 0; oh < g->H2; oh++)
                for (fc_int ow = 0; ow < g->W2; ow++) {
                    const fc_int yi = YI(g, n, k, oh, ow);
                    double acc = b[k], mag = fabs(b[k]);
                    const double d = dy[yi];
                    r->db[k] += d;
                    r->dbmag[k] += fabs(d);
                    for (fc_int c = 0; c < g->C; c++)
                        for (fc_int fh = 0; fh < g->FH; fh++) {
                            const fc_int ih = oh * g->SH - g->PH + fh;
                            if (ih < 0 || ih >= g->H)
                                continue;
                            for (fc_int fw = 0; fw < g->FW; fw++) {
                                const fc_int iw = ow * g->SW - g->PW + fw;
                                if (iw < 0 || iw >= g->W)
                                    continue;
                                const fc_int xi = XI(g, n, c, ih, iw), wi = WI(g, k, c, fh, fw);
                                acc += x[xi] * w[wi];
                                mag += fabs(x[xi] * w[wi]);
                                r->dx[xi] += d * w[wi];
                                r->dxmag[xi] += fabs(d * w[wi]);
                                r->dw[wi] += d * x[xi];
                                r->dwmag[wi] += fabs(d * x[xi]);
                            }
                        }
                    r->y[yi] = acc;
                    r->ymag[yi] = mag;
                }
}

static void conv_reference_free(conv_ref *r)
{
    free(r->y), free(r->ymag), free(r->dx), free(r->dxmag);
    free(r->dw), free(r->dwmag), free(r->db), free(r->dbmag);
}

/* ------------------------------------------------------ the convolutions */

/* Runs per (op, algorithm), for the coverage check; index FC_ALG_COUNT is
 * the planner's own choice. */
static long ran[3][FC_ALG_COUNT + 1];

static const char *op_name(int op)
{
    return op == FC_OP_CONV_FWD ? "forward" : op == FC_OP_CONV_DATA ? "data" : "weight";
}

/* One dtype: plan, run and compare every (op, algorithm) of a shape.
 * Returns the number of failed checks. */
#define DEFINE_CONV(T, S, EPS)                                                          \
    static int check_##S(const T *got, const double *ref, const double *mag, fc_int n,  \
                         double L, int relu, const char *what)                          \
    {                                                                                   \
        int bad = 0;                                                                    \
        for (fc_int i = 0; i < n; i++) {                                                \
            double r = ref[i];                                                          \
            if (relu && r < 0)                                                          \
                r = 0;                                                                  \
            const double tol = (EPS) * (L + 2) * mag[i];                                \
            const double v = (double)got[i];                                            \
            if (!(fabs(v - r) <= tol))                                                  \
                bad = report(bad, what, i, v, r, tol);                                  \
        }                                                                               \
        return bad;                                                                     \
    }                                                                                   \
                                                                                        \
    static T *to_##S(const double *a, fc_int n)                                         \
    {                                                                                   \
        T *t = xmalloc(sizeof(T) * (size_t)(n ? n : 1));                                \
        for (fc_int i = 0; i < n; i++)                                                  \
            t[i] = (T)a[i];                                                             \
        return t;                                                                       \
    }                                                                                   \
                                                                                        \
    static void nan_fill_##S(T *a, fc_int n)                                            \
    {                                                                                   \
        for (fc_int i = 0; i < n; i++)                                                  \
            a[i] = (T)NAN;                                                              \
    }                                                                                   \
                                                                                        \
    /* out (the whole batch's y or dx) against op run image by image with   \
     * the algorithm (and lanes tile) of pl; 0 when they agree or the        \
     * per-image plan takes another algorithm */                             \
    static int batch_same_##S(int op, const fc_conv_geom *g, const fc_plan *pl,        \
                              const T *in, const T *w, const T *b, const T *out,       \
                              int relu, int nt)                                        \
    {                                                                                   \
        fc_conv_geom g1 = *g;                                                           \
        g1.N = 1;                                                                       \
        const fc_int nin = op == FC_OP_CONV_FWD ? g->C * g->H * g->W                    \
                                                : g->K * g->H2 * g->W2;                 \
        const fc_int nout = op == FC_OP_CONV_FWD ? g->K * g->H2 * g->W2                 \
                                                 : g->C * g->H * g->W;                  \
        fc_plan p1;                                                                     \
        fc_plan_init(&p1);                                                              \
        if (pl->alg == FC_ALG_LANES)                                                    \
            p1.narrow = pl->narrow;                                                     \
        if (fc_plan_conv_##S(op, &g1, nt, pl->alg, 1, &p1) != FC_OK ||                  \
            p1.alg != pl->alg)                                                          \
            return 0;                                                                   \
        T *o1 = xmalloc(sizeof(T) * (size_t)nout);                                      \
        int bad = 0;                                                                    \
        for (fc_int n = 0; n < g->N && !bad; n++) {                                    \
            const int rc = op == FC_OP_CONV_FWD                                         \
                ? fc_conv2d_fwd_plan_##S(&p1, in + n * nin, w, b, o1, relu)             \
                : fc_conv2d_bwd_data_plan_##S(&p1, in + n * nin, w, o1);                \
            if (rc != FC_OK || memcmp(o1, out + n * nout, sizeof(T) * (size_t)nout)) {  \
                printf("    image %lld alone: not the bits of the whole batch\n",       \
                       (long long)n);                                                   \
                bad = 1;                                                                \
            }                                                                           \
        }                                                                               \
        free(o1);                                                                       \
        n_batch_same++;                                                                 \
        return bad;                                                                     \
    }                                                                                   \
                                                                                        \
    static int run_conv_##S(const conv_shape *s, int idx, const double *xd,             \
                            const double *wd, const double *bd, const double *dyd,      \
                            const conv_ref *r, int nt, long *refused)                   \
    {                                                                                   \
        const fc_conv_geom g = conv_geom_of(s);                                         \
        const fc_int nx = g.N * g.C * g.H * g.W, ny = g.N * g.K * g.H2 * g.W2;          \
        const fc_int nw = g.K * g.C * g.FH * g.FW;                                      \
        T *x = to_##S(xd, nx), *w = to_##S(wd, nw), *b = to_##S(bd, g.K);               \
        T *dy = to_##S(dyd, ny);                                                        \
        T *x0 = to_##S(xd, nx), *w0 = to_##S(wd, nw), *dy0 = to_##S(dyd, ny);           \
        T *y = xmalloc(sizeof(T) * (size_t)ny), *dx = xmalloc(sizeof(T) * (size_t)nx);  \
        T *dw = xmalloc(sizeof(T) * (size_t)nw), *db = xmalloc(sizeof(T) * (size_t)g.K); \
        int failed = 0;                                                                 \
        for (int op = FC_OP_CONV_FWD; op <= FC_OP_CONV_WEIGHT; op++) {                  \
            for (int alg = -1; alg < FC_ALG_COUNT; alg++) {                             \
                if (alg >= 0 && !(fc_algorithm_ops(alg) & FC_FOR(op)))                  \
                    continue;                                                           \
                /* lanes: also each tile width, where the set has two */                \
                const int nvar = alg == FC_ALG_LANES ? 3 : 1;                           \
                for (int var = 0; var < nvar; var++) {                                  \
                    fc_plan pl;                                                         \
                    fc_plan_init(&pl);                                                  \
                    if (alg == FC_ALG_LANES && var > 0)                                 \
                        pl.narrow = var - 1;                                            \
                    const int rc = fc_plan_conv_##S(op, &g, nt, alg, 1, &pl);           \
                    if (rc == FC_EPLAN && alg >= 0) {                                   \
                        (*refused)++;                                                   \
                        continue;                                                       \
                    }                                                                   \
                    char what[160];                                                     \
                    snprintf(what, sizeof what, "%s %s/%s", op_name(op),                \
                             alg < 0 ? "auto" : fc_algorithm_name(alg),                 \
                             fc_algorithm_name(pl.alg));                                \
                    n_checks++;                                                         \
                    int bad = 0;                                                        \
                    if (rc != FC_OK || (alg >= 0 && pl.alg != alg)) {                   \
                        printf("    planning returned %d, algorithm %s: %s\n", rc,      \
                               fc_algorithm_name(pl.alg), pl.reason);                   \
                        bad = 1;                                                        \
                    } else if (pl.alg == FC_ALG_GEMM &&                                 \
                               strcmp(pl.kernel ? pl.kernel : "", fc_kernel_name_##S())) { \
                        /* the engine runs the active table's microkernel */            \
                        printf("    the GEMM plan names kernel %s, the active set %s\n", \
                               pl.kernel ? pl.kernel : "(none)", fc_kernel_name_##S()); \
                        bad = 1;                                                        \
                    } else if (op == FC_OP_CONV_FWD) {                                  \
                        /* alternate: bias and ReLU, or neither */                      \
                        const int with_b = (idx + var) % 2 == 0;                        \
                        nan_fill_##S(y, ny);                                            \
                        if (fc_conv2d_fwd_plan_##S(&pl, x, w, with_b ? b : NULL, y,     \
                                                   with_b) != FC_OK)                    \
                            bad = report(bad, "run failed", 0, 0, 0, 0);                \
                        else if (with_b)                                                \
                            bad += check_##S(y, r->y, r->ymag, ny,                      \
                                             (double)(g.C * g.FH * g.FW), 1, "y");      \
                        else {                                                          \
                            /* without bias: the reference minus it */                  \
                            double *yn = xmalloc(sizeof(double) * (size_t)ny);          \
                            double *mn = xmalloc(sizeof(double) * (size_t)ny);          \
                            for (fc_int i = 0; i < ny; i++) {                           \
                                const fc_int k = (i / (g.H2 * g.W2)) % g.K;             \
                                yn[i] = r->y[i] - bd[k];                                \
                                mn[i] = r->ymag[i] - fabs(bd[k]);                       \
                            }                                                           \
                            bad += check_##S(y, yn, mn, ny, (double)(g.C * g.FH * g.FW), \
                                             0, "y");                                   \
                            free(yn);                                                   \
                            free(mn);                                                   \
                        }                                                               \
                        if (!bad && batch_bits && g.N > 1)                              \
                            bad += batch_same_##S(op, &g, &pl, x, w, with_b ? b : NULL, \
                                                  y, with_b, nt);                       \
                    } else if (op == FC_OP_CONV_DATA) {                                 \
                        nan_fill_##S(dx, nx);                                           \
                        if (fc_conv2d_bwd_data_plan_##S(&pl, dy, w, dx) != FC_OK)       \
                            bad = report(bad, "run failed", 0, 0, 0, 0);                \
                        else                                                            \
                            bad += check_##S(dx, r->dx, r->dxmag, nx,                   \
                                             (double)(g.K * g.FH * g.FW), 0, "dx");     \
                        if (!bad && batch_bits && g.N > 1)                              \
                            bad += batch_same_##S(op, &g, &pl, dy, w, NULL, dx, 0, nt); \
                    } else {                                                            \
                        const int with_db = (idx + alg) % 2 == 0;                       \
                        nan_fill_##S(dw, nw);                                           \
                        nan_fill_##S(db, g.K);                                          \
                        if (fc_conv2d_bwd_weight_plan_##S(&pl, dy, x, dw,               \
                                                          with_db ? db : NULL) != FC_OK) \
                            bad = report(bad, "run failed", 0, 0, 0, 0);                \
                        else {                                                          \
                            const double L = (double)(g.N * g.H2 * g.W2);               \
                            bad += check_##S(dw, r->dw, r->dwmag, nw, L, 0, "dw");      \
                            if (with_db)                                                \
                                bad += check_##S(db, r->db, r->dbmag, g.K, L, 0, "db"); \
                        }                                                               \
                    }                                                                   \
                    if (memcmp(x, x0, sizeof(T) * (size_t)nx) ||                        \
                        memcmp(w, w0, sizeof(T) * (size_t)nw) ||                        \
                        memcmp(dy, dy0, sizeof(T) * (size_t)ny)) {                      \
                        printf("    an input was modified\n");                          \
                        memcpy(x, x0, sizeof(T) * (size_t)nx);                          \
                        memcpy(w, w0, sizeof(T) * (size_t)nw);                          \
                        memcpy(dy, dy0, sizeof(T) * (size_t)ny);                        \
                        bad++;                                                          \
                    }                                                                   \
                    if (!bad)                                                           \
                        ran[op][alg < 0 ? FC_ALG_COUNT : alg]++;                        \
                    else {                                                              \
                        n_fail++;                                                       \
                        failed++;                                                       \
                        printf("FAIL conv %s: N=%lld C=%lld H=%lld W=%lld K=%lld "      \
                               "%lldx%lld stride %lldx%lld pad %lldx%lld, %d threads, " \
                               "lanes tile %d, kernel %s\n",                            \
                               what, (long long)g.N, (long long)g.C, (long long)g.H,    \
                               (long long)g.W, (long long)g.K, (long long)g.FH,         \
                               (long long)g.FW, (long long)g.SH, (long long)g.SW,       \
                               (long long)g.PH, (long long)g.PW, nt, pl.narrow,         \
                               pl.kernel ? pl.kernel : "-");                            \
                    }                                                                   \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        free(x), free(w), free(b), free(dy), free(x0), free(w0), free(dy0);             \
        free(y), free(dx), free(dw), free(db);                                          \
        return failed;                                                                  \
    }

DEFINE_CONV(float, s, (double)FLT_EPSILON)
DEFINE_CONV(double, d, DBL_EPSILON)

/* N C H W  K FH FW  SH SW PH PW */
static const conv_shape conv_shapes[] = {
    {2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1},      /* padded 3x3, odd sizes */
    {2, 4, 10, 13, 6, 3, 3, 2, 2, 1, 1},     /* strided and padded */
    {1, 8, 7, 7, 16, 1, 1, 1, 1, 0, 0},      /* plain 1x1, batch 1 */
    {3, 5, 6, 9, 7, 1, 1, 2, 2, 0, 0},       /* strided 1x1 */
    {2, 3, 5, 5, 4, 1, 1, 1, 1, 1, 1},       /* padded 1x1: border outputs are bias only */
    {1, 1, 12, 10, 1, 5, 5, 1, 1, 2, 2},     /* C = 1, K = 1 */
    {2, 1, 15, 15, 9, 3, 3, 1, 1, 0, 0},     /* C = 1, unpadded */
    {2, 6, 8, 8, 1, 3, 3, 1, 1, 1, 1},       /* K = 1 */
    {1, 3, 17, 19, 4, 7, 7, 2, 2, 3, 3},     /* 7x7 stem, stride 2 */
    {2, 3, 5, 20, 10, 2, 4, 1, 3, 0, 1},     /* rectangular filter, uneven stride */
    {8, 2, 6, 6, 3, 3, 3, 1, 1, 1, 1},       /* batch 8: lanes */
    {16, 3, 5, 5, 12, 3, 3, 1, 1, 1, 1},     /* batch 16 */
    {1, 20, 9, 9, 33, 3, 3, 1, 1, 1, 1},     /* K = 33: row-edge tiles */
    {2, 32, 12, 12, 40, 3, 3, 1, 1, 1, 1},   /* C*9 = 288: two reduction blocks */
    {1, 64, 6, 6, 16, 5, 5, 1, 1, 2, 2},     /* C*25 = 1600: several blocks */
    {3, 4, 1, 1, 5, 1, 1, 1, 1, 0, 0},       /* 1x1 images */
    {2, 3, 4, 4, 5, 4, 4, 1, 1, 0, 0},       /* filter = image: 1x1 output */
    {2, 5, 11, 7, 3, 3, 2, 3, 2, 2, 1},      /* stride 3, padding 2 */
    {4, 16, 14, 14, 24, 3, 3, 1, 1, 1, 1},   /* a small real layer */
};

static const conv_shape conv_shapes_quick[] = {
    {2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1},
    {1, 8, 7, 7, 16, 1, 1, 1, 1, 0, 0},
    {8, 2, 6, 6, 3, 3, 3, 1, 1, 1, 1},
    {2, 32, 12, 12, 40, 3, 3, 1, 1, 1, 1},
};

/* ------------------------------------------------------------- pooling */

typedef struct {
    fc_int N, C, H, W, KH, KW, SH, SW, PH, PW;
} pool_shape;

static fc_pool_geom pool_geom_of(const pool_shape *s)
{
    fc_pool_geom g;
    g.N = s->N, g.C = s->C, g.H = s->H, g.W = s->W, g.KH = s->KH, g.KW = s->KW;
    g.SH = s->SH, g.SW = s->SW, g.PH = s->PH, g.PW = s->PW;
    g.H2 = out_size(s->H, s->KH, s->SH, s->PH);
    g.W2 = out_size(s->W, s->KW, s->SW, s->PW);
    return g;
}

/* Real rows [h0, h1) and columns [w0, w1) of output (oh, ow)'s window. */
static void window(const fc_pool_geom *g, fc_int oh, fc_int ow, fc_int *h0, fc_int *h1,
                   fc_int *w0, fc_int *w1)
{
    const fc_int a = oh * g->SH - g->PH, b = ow * g->SW - g->PW;
    *h0 = a < 0 ? 0 : a;
    *h1 = a + g->KH < g->H ? a + g->KH : g->H;
    *w0 = b < 0 ? 0 : b;
    *w1 = b + g->KW < g->W ? b + g->KW : g->W;
}

#define DEFINE_POOL(T, S, EPS)                                                          \
    static int run_pool_##S(const pool_shape *s, const double *xd, const double *dyd,   \
                            int nt)                                                     \
    {                                                                                   \
        const fc_pool_geom g = pool_geom_of(s);                                         \
        const fc_int planes = g.N * g.C, P = g.H * g.W, P2 = g.H2 * g.W2;               \
        const fc_int nx = planes * P, ny = planes * P2;                                 \
        T *x = to_##S(xd, nx), *dy = to_##S(dyd, ny);                                   \
        T *x0 = to_##S(xd, nx), *dy0 = to_##S(dyd, ny);                                 \
        T *y = xmalloc(sizeof(T) * (size_t)ny), *dx = xmalloc(sizeof(T) * (size_t)nx);  \
        T *ry = xmalloc(sizeof(T) * (size_t)ny), *rdx = xmalloc(sizeof(T) * (size_t)nx); \
        int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)ny);                           \
        int64_t *ridx = xmalloc(sizeof(int64_t) * (size_t)ny);                          \
        double *ad = xmalloc(sizeof(double) * (size_t)(ny > nx ? ny : nx));             \
        double *am = xmalloc(sizeof(double) * (size_t)(ny > nx ? ny : nx));             \
        int failed = 0;                                                                 \
        /* max: the first maximum of each window in row-major order; the             \
         * backward adds dy into dx window by window in that order, in T */          \
        memset(rdx, 0, sizeof(T) * (size_t)nx);                                         \
        for (fc_int pl = 0; pl < planes; pl++)                                          \
            for (fc_int oh = 0; oh < g.H2; oh++)                                        \
                for (fc_int ow = 0; ow < g.W2; ow++) {                                  \
                    fc_int h0, h1, w0, w1, best = -1;                                   \
                    window(&g, oh, ow, &h0, &h1, &w0, &w1);                             \
                    for (fc_int h = h0; h < h1; h++)                                    \
                        for (fc_int w = w0; w < w1; w++)                                \
                            if (best < 0 || x[pl * P + h * g.W + w] > x[pl * P + best]) \
                                best = h * g.W + w;                                     \
                    const fc_int o = pl * P2 + oh * g.W2 + ow;                          \
                    ry[o] = x[pl * P + best];                                           \
                    ridx[o] = best;                                                     \
                    rdx[pl * P + best] += dy[o];                                        \
                }                                                                       \
        for (int part = 0; part < 8; part++) {                                          \
            static const char *const names[8] = {                                       \
                "max forward", "max forward with indices", "max backward",             \
                "max backward from indices", "avg forward", "avg forward, padding counted", \
                "avg backward", "avg backward, padding counted"};                       \
            const int cip = part & 1;                                                   \
            int bad = 0, rc = FC_OK;                                                    \
            n_checks++;                                                                 \
            if (part == 0 || part == 1) {                                               \
                nan_fill_##S(y, ny);                                                    \
                for (fc_int i = 0; i < ny; i++)                                         \
                    idx[i] = -1;                                                        \
                rc = part == 0 ? fc_maxpool2d_fwd_##S(&g, x, y, nt)                     \
                               : fc_maxpool2d_fwd_idx_##S(&g, x, y, idx, nt);           \
                for (fc_int i = 0; rc == FC_OK && i < ny; i++) {                        \
                    if (memcmp(&y[i], &ry[i], sizeof(T)))                               \
                        bad = report(bad, "y", i, (double)y[i], (double)ry[i], 0);      \
                    if (part == 1 && idx[i] != ridx[i])                                 \
                        bad = report(bad, "indices", i, (double)idx[i],                 \
                                     (double)ridx[i], 0);                               \
                }                                                                       \
            } else if (part == 2 || part == 3) {                                        \
                nan_fill_##S(dx, nx);                                                   \
                rc = part == 2 ? fc_maxpool2d_bwd_##S(&g, dy, x, dx, nt)                \
                               : fc_maxpool2d_bwd_idx_##S(&g, dy, ridx, dx, nt);        \
                for (fc_int i = 0; rc == FC_OK && i < nx; i++)                          \
                    if (memcmp(&dx[i], &rdx[i], sizeof(T)))                             \
                        bad = report(bad, "dx", i, (double)dx[i], (double)rdx[i], 0);   \
            } else if (part == 4 || part == 5) {                                        \
                for (fc_int pl = 0; pl < planes; pl++)                                  \
                    for (fc_int oh = 0; oh < g.H2; oh++)                                \
                        for (fc_int ow = 0; ow < g.W2; ow++) {                          \
                            fc_int h0, h1, w0, w1;                                      \
                            window(&g, oh, ow, &h0, &h1, &w0, &w1);                     \
                            double sum = 0, mag = 0;                                    \
                            for (fc_int h = h0; h < h1; h++)                            \
                                for (fc_int w = w0; w < w1; w++) {                      \
                                    sum += xd[pl * P + h * g.W + w];                    \
                                    mag += fabs(xd[pl * P + h * g.W + w]);              \
                                }                                                       \
                            const double div =                                          \
                                cip ? (double)(g.KH * g.KW) : (double)((h1 - h0) * (w1 - w0)); \
                            ad[pl * P2 + oh * g.W2 + ow] = sum / div;                   \
                            am[pl * P2 + oh * g.W2 + ow] = mag / div;                   \
                        }                                                               \
                nan_fill_##S(y, ny);                                                    \
                rc = fc_avgpool2d_fwd_##S(&g, x, y, cip, nt);                           \
                if (rc == FC_OK)                                                        \
                    bad += check_##S(y, ad, am, ny, (double)(g.KH * g.KW), 0, "y");     \
            } else {                                                                    \
                for (fc_int i = 0; i < nx; i++)                                         \
                    ad[i] = am[i] = 0;                                                  \
                for (fc_int pl = 0; pl < planes; pl++)                                  \
                    for (fc_int oh = 0; oh < g.H2; oh++)                                \
                        for (fc_int ow = 0; ow < g.W2; ow++) {                          \
                            fc_int h0, h1, w0, w1;                                      \
                            window(&g, oh, ow, &h0, &h1, &w0, &w1);                     \
                            const double div =                                          \
                                cip ? (double)(g.KH * g.KW) : (double)((h1 - h0) * (w1 - w0)); \
                            const double v = dyd[pl * P2 + oh * g.W2 + ow] / div;       \
                            for (fc_int h = h0; h < h1; h++)                            \
                                for (fc_int w = w0; w < w1; w++) {                      \
                                    ad[pl * P + h * g.W + w] += v;                      \
                                    am[pl * P + h * g.W + w] += fabs(v);                \
                                }                                                       \
                        }                                                               \
                nan_fill_##S(dx, nx);                                                   \
                rc = fc_avgpool2d_bwd_##S(&g, dy, dx, cip, nt);                         \
                if (rc == FC_OK)                                                        \
                    bad += check_##S(dx, ad, am, nx, (double)(g.KH * g.KW), 0, "dx");   \
            }                                                                           \
            if (rc != FC_OK)                                                            \
                bad = report(bad, "run failed", rc, 0, 0, 0);                           \
            if (memcmp(x, x0, sizeof(T) * (size_t)nx) ||                                \
                memcmp(dy, dy0, sizeof(T) * (size_t)ny)) {                              \
                printf("    an input was modified\n");                                  \
                memcpy(x, x0, sizeof(T) * (size_t)nx);                                  \
                memcpy(dy, dy0, sizeof(T) * (size_t)ny);                                \
                bad++;                                                                  \
            }                                                                           \
            if (bad) {                                                                  \
                n_fail++;                                                               \
                failed++;                                                               \
                printf("FAIL pool %s: N=%lld C=%lld H=%lld W=%lld window %lldx%lld "    \
                       "stride %lldx%lld pad %lldx%lld, %d threads\n",                  \
                       names[part], (long long)g.N, (long long)g.C, (long long)g.H,     \
                       (long long)g.W, (long long)g.KH, (long long)g.KW,                \
                       (long long)g.SH, (long long)g.SW, (long long)g.PH,               \
                       (long long)g.PW, nt);                                            \
            }                                                                           \
        }                                                                               \
        free(x), free(dy), free(x0), free(dy0), free(y), free(dx), free(ry), free(rdx); \
        free(idx), free(ridx), free(ad), free(am);                                      \
        return failed;                                                                  \
    }

DEFINE_POOL(float, s, (double)FLT_EPSILON)
DEFINE_POOL(double, d, DBL_EPSILON)

/* N C H W  KH KW  SH SW PH PW */
static const pool_shape pool_shapes[] = {
    {2, 3, 16, 16, 2, 2, 2, 2, 0, 0},
    {2, 3, 17, 19, 3, 3, 2, 2, 1, 1},
    {1, 2, 15, 33, 3, 3, 1, 1, 1, 1},        /* overlapping windows */
    {1, 1, 7, 7, 7, 7, 1, 1, 0, 0},          /* global */
    {3, 5, 7, 5, 7, 5, 1, 1, 0, 0},          /* global, rectangular */
    {1, 2, 5, 6, 7, 8, 1, 1, 1, 1},          /* window = padded input */
    {1, 2, 9, 9, 1, 1, 3, 3, 0, 0},          /* rows never touched */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
    {1, 1, 1, 40, 1, 3, 1, 2, 0, 1},
    {1, 1, 40, 1, 3, 1, 2, 1, 1, 0},
    {2, 2, 12, 70, 2, 5, 1, 3, 1, 2},
    {1, 2, 9, 257, 3, 3, 2, 2, 1, 1},        /* long rows: vector bodies */
    {1, 1, 4, 150, 5, 7, 3, 4, 2, 3},
    {4, 16, 32, 32, 3, 3, 2, 2, 1, 1},       /* work enough for two threads */
};

/* --------------------------------------------------------------- driver */

static int run_all(int nt, int quick, int ties)
{
    int failed = 0;
    const conv_shape *cs = quick ? conv_shapes_quick : conv_shapes;
    const size_t ncs = quick ? sizeof conv_shapes_quick / sizeof conv_shapes_quick[0]
                             : sizeof conv_shapes / sizeof conv_shapes[0];
    for (int dt = 0; dt < 2; dt++) {
        const long c0 = n_checks, f0 = n_fail;
        long refused = 0;
        rng_state = 0x2545F4914F6CDD1Dull;   /* the same data on every path */
        for (size_t q = 0; q < ncs; q++) {
            const fc_conv_geom g = conv_geom_of(&cs[q]);
            const fc_int nx = g.N * g.C * g.H * g.W, ny = g.N * g.K * g.H2 * g.W2;
            const fc_int nw = g.K * g.C * g.FH * g.FW;
            double *x = xmalloc(sizeof(double) * (size_t)nx);
            double *w = xmalloc(sizeof(double) * (size_t)nw);
            double *b = xmalloc(sizeof(double) * (size_t)g.K);
            double *dy = xmalloc(sizeof(double) * (size_t)ny);
            fill(x, nx), fill(w, nw), fill(b, g.K), fill(dy, ny);
            conv_ref r;
            conv_reference(&g, x, w, b, dy, &r);
            failed += dt ? run_conv_d(&cs[q], (int)q, x, w, b, dy, &r, nt, &refused)
                         : run_conv_s(&cs[q], (int)q, x, w, b, dy, &r, nt, &refused);
            conv_reference_free(&r);
            free(x), free(w), free(b), free(dy);
        }
        printf("  conv    %-8s %d thread%s: %4ld checks, %ld failed (%ld forced plans "
               "refused by the planner)\n", dt ? "float64" : "float32", nt, nt > 1 ? "s" : "",
               n_checks - c0, n_fail - f0, refused);
    }
    const size_t nps = quick ? 4 : sizeof pool_shapes / sizeof pool_shapes[0];
    for (int dt = 0; dt < 2; dt++) {
        const long c0 = n_checks, f0 = n_fail;
        for (size_t q = 0; q < nps; q++) {
            const fc_pool_geom g = pool_geom_of(&pool_shapes[q]);
            const fc_int nx = g.N * g.C * g.H * g.W, ny = g.N * g.C * g.H2 * g.W2;
            double *x = xmalloc(sizeof(double) * (size_t)nx);
            double *dy = xmalloc(sizeof(double) * (size_t)ny);
            for (int t = 0; t < 1 + ties; t++) {
                fill(x, nx), fill(dy, ny);
                if (t) /* few distinct values: ties, where the first maximum wins */
                    for (fc_int i = 0; i < nx; i++)
                        x[i] = floor(2 * x[i]);
                failed += dt ? run_pool_d(&pool_shapes[q], x, dy, nt)
                             : run_pool_s(&pool_shapes[q], x, dy, nt);
            }
            free(x), free(dy);
        }
        printf("  pool    %-8s %d thread%s: %4ld checks, %ld failed\n", dt ? "float64" : "float32",
               nt, nt > 1 ? "s" : "", n_checks - c0, n_fail - f0);
    }
    return failed;
}

int main(int argc, char **argv)
{
    static const char *known[] = {"generic", "avx2", "avx512", "neon"};
    const char *isas[8];
    int nisa = 0, threads = 3, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc && nisa < 8)
            isas[nisa++] = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--batch-bits"))
            batch_bits = 1;
        else {
            fprintf(stderr, "usage: %s [--isa generic|avx2|avx512|neon]... [--threads N] "
                            "[--quick] [--batch-bits]\n", argv[0]);
            return 2;
        }
    }
    if (!nisa)
        for (int i = 0; i < 4; i++)
            if (fc_isa_supported(known[i]))
                isas[nisa++] = known[i];
    printf("conv_driver: OpenMP %s, best instruction set %s\n",
           fc_openmp_enabled() ? "on" : "off", fc_isa_best());
    int tested = 0;
    for (int t = 0; t < nisa; t++) {
        if (fc_set_isa(isas[t]) != 0) {
            printf("%-8s not available on this build/CPU, skipped\n", isas[t]);
            continue;
        }
        tested++;
        memset(ran, 0, sizeof ran);
        const long c0 = n_checks, f0 = n_fail;
        printf("%s: kernels %s, %s\n", fc_isa(), fc_kernel_name_s(), fc_kernel_name_d());
        run_all(1, quick, 1);
        if (fc_openmp_enabled() && threads > 1)
            run_all(threads, quick, 0);
        /* every algorithm ran, correctly, for every op it serves (the quick
         * shapes do not reach them all) */
        for (int op = FC_OP_CONV_FWD; !quick && op <= FC_OP_CONV_WEIGHT; op++)
            for (int alg = 0; alg < FC_ALG_COUNT; alg++)
                if ((fc_algorithm_ops(alg) & FC_FOR(op)) && !ran[op][alg]) {
                    printf("FAIL coverage: %s never ran (and passed) for the %s op\n",
                           fc_algorithm_name(alg), op_name(op));
                    n_checks++;
                    n_fail++;
                }
        printf("%-8s %ld checks, %ld failed\n", fc_isa(), n_checks - c0, n_fail - f0);
    }
    if (!tested) {
        printf("conv_driver: no instruction set could be tested\n");
        return 1;
    }
    if (batch_bits)
        printf("conv_driver: %ld results also the same bits image by image\n", n_batch_same);
    printf("conv_driver: %ld checks, %ld failed\n", n_checks, n_fail);
    return n_fail != 0;
}
