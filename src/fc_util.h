/* Small helpers shared by the C core: aligned workspace and thread plumbing. */
#ifndef FC_UTIL_H
#define FC_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define FC_ALIGN 64


#if defined(_MSC_VER)
#define FC_THREAD_LOCAL __declspec(thread)
#else
#define FC_THREAD_LOCAL _Thread_local
#endif

/* Bytes of workspace the current call on this thread has allocated
 * (fc_dispatch.c); read back through fc_last_workspace_bytes(). */
extern FC_THREAD_LOCAL size_t fc_ws_bytes;

/* Workspace aligned to a cache line (and to the widest vector); the
 * original pointer is stored just below the returned block. */
static inline void *fc_malloc(size_t bytes)
{
    if (bytes > SIZE_MAX - FC_ALIGN - sizeof(void *))
        return NULL;
    unsigned char *raw = (unsigned char *)malloc(bytes + FC_ALIGN + sizeof(void *));
    if (!raw)
        return NULL;
    uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + FC_ALIGN - 1) & ~(uintptr_t)(FC_ALIGN - 1);
    ((void **)p)[-1] = raw;
    fc_ws_bytes += bytes;
    return (void *)p;
}

static inline void fc_free(void *p)
{
    if (p)
        free(((void **)p)[-1]);
}

/* Hints that the line holding p will be written (FC_PREFETCH) or read
 * (FC_PREFETCH_R) soon; they never fault. */
#if defined(__GNUC__) || defined(__clang__)
#define FC_PREFETCH(p) __builtin_prefetch((const void *)(p), 1, 3)
#define FC_PREFETCH_R(p) __builtin_prefetch((const void *)(p), 0, 3)
#else
#define FC_PREFETCH(p) ((void)(p))
#define FC_PREFETCH_R(p) ((void)(p))
#endif

/* Orders the non-temporal stores before it ahead of any later store, so
 * that threads joining after it see them. */
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <immintrin.h>
#define FC_STORE_FENCE() _mm_sfence()
#else
#define FC_STORE_FENCE() ((void)0)
#endif

static inline int64_t fc_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t fc_max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t fc_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t fc_round_up(int64_t a, int64_t b) { return fc_ceil_div(a, b) * b; }

static inline int fc_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int fc_team_size(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

#endif
