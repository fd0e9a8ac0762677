/* What an OpenMP parallel region of two threads costs after the team has
 * been idle for a while: the wake-up a call pays under the runtime's wait
 * policy (docs/robustness.md, "Threads on a busy machine").
 *
 *   gcc -O2 -fopenmp benchmarks/omp_wake.c -o /tmp/omp_wake
 *   OMP_WAIT_POLICY=PASSIVE /tmp/omp_wake     # fastconv's default policy
 *   GOMP_SPINCOUNT=10000 /tmp/omp_wake        # a bounded spin
 *   /tmp/omp_wake                             # the runtime's default spin
 *
 * For each gap, the calling thread busy-waits that long, then times a region
 * in which each thread writes one word; the median of 101 rounds is
 * printed. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static volatile int words[2 * 16];   /* a cache line apart */

int main(void)
{
    enum { ROUNDS = 101 };
    static const double gaps_us[] = {1, 5, 20, 50, 100, 300, 1000, 3000};
#pragma omp parallel num_threads(2)
    words[16 * omp_get_thread_num()]++;   /* start the team */
    for (size_t i = 0; i < sizeof gaps_us / sizeof gaps_us[0]; i++) {
        double t[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            const double until = now() + 1e-6 * gaps_us[i];
            while (now() < until)
                ;
            const double t0 = now();
#pragma omp parallel num_threads(2)
            words[16 * omp_get_thread_num()]++;
            t[r] = now() - t0;
        }
        qsort(t, ROUNDS, sizeof t[0], by_value);
        printf("idle %6.0f us before: region %7.1f us (median of %d)\n", gaps_us[i],
               1e6 * t[ROUNDS / 2], ROUNDS);
    }
    return 0;
}
