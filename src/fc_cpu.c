/* The CPU's cache sizes, read once: the one source the block sizes and the
 * algorithms' working-set budgets are derived from (no CPU is named).
 *
 * Where they come from, first that answers:
 *   1. fc_set_cache_sizes (the Python layer passes FASTCONV_CACHE_SIZES);
 *   2. Linux sysfs, /sys/devices/system/cpu/cpu0/cache/index*: level, type,
 *      size and the CPUs sharing each cache;
 *   3. x86 cpuid, the deterministic cache parameters (leaf 4 on Intel,
 *      0x8000001D on AMD);
 *   4. nothing: the sizes the kernel tables' block sizes were chosen for
 *      (fc_caches()->source says "default"), so blocking is as in the tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fc_core.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define FC_HAVE_CPUID 1
#endif

/* What the kernel tables' block sizes assume. */
static const fc_cache_sizes defaults = {32 << 10, 1 << 20, 32 << 20, 1, 1, "default"};

static fc_cache_sizes detected, overridden;
static int have_detected, have_override;

/* "32K", "1024K", "2M" or a plain number of bytes, from sysfs. */
static int64_t parse_size(const char *s)
{
    char *end;
    const long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0)
        return 0;
    if (*end == 'K' || *end == 'k')
        return (int64_t)v << 10;
    if (*end == 'M' || *end == 'm')
        return (int64_t)v << 20;
    if (*end == 'G' || *end == 'g')
        return (int64_t)v << 30;
    return (int64_t)v;
}

static int read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    const int ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = 0;
    return ok;
}

/* CPUs in a list such as "0-3,8-11". */
static int count_cpus(const char *list)
{
    int n = 0;
    const char *p = list;
    while (*p) {
        char *end;
        const long a = strtol(p, &end, 10);
        if (end == p)
            break;
        long b = a;
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            p = end;
        }
        if (b >= a)
            n += (int)(b - a + 1);
        if (*p == ',')
            p++;
    }
    return n > 0 ? n : 1;
}

static int from_sysfs(fc_cache_sizes *c)
{
    int found = 0;
    for (int i = 0; i < 16; i++) {
        char path[128], level[16], type[32], size[32], shared[256];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!read_line(path, level, sizeof level))
            break;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!read_line(path, type, sizeof type) || !strcmp(type, "Instruction"))
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (!read_line(path, size, sizeof size))
            continue;
        snprintf(path, sizeof path,
                 "/sys/devices/system/cpu/cpu0/cache/index%d/shared_cpu_list", i);
        const int sharing = read_line(path, shared, sizeof shared) ? count_cpus(shared) : 1;
        const int64_t bytes = parse_size(size);
        if (bytes <= 0)
            continue;
        switch (atoi(level)) {
        case 1: c->l1d = bytes; found |= 1; break;
        case 2: c->l2 = bytes, c->l2_sharing = sharing; found |= 2; break;
        case 3: c->l3 = bytes, c->l3_sharing = sharing; found |= 4; break;
        default: break;
        }
    }
    return (found & 3) == 3;   /* L1d and L2 at least */
}

#ifdef FC_HAVE_CPUID
static int from_cpuid(fc_cache_sizes *c)
{
    unsigned a, b, cx, d;
    if (!__get_cpuid(0, &a, &b, &cx, &d))
        return 0;
    /* "AuthenticAMD" / "HygonGenuine" keep the same records at 0x8000001D */
    unsigned leaf = 4;
    if (b == 0x68747541u || b == 0x6f677948u) {
        if (!__get_cpuid(0x80000000u, &a, &b, &cx, &d) || a < 0x8000001Du)
            return 0;
        leaf = 0x8000001Du;
    } else if (a < 4) {
        return 0;
    }
    int found = 0;
    for (unsigned i = 0; i < 16; i++) {
        __cpuid_count(leaf, i, a, b, cx, d);
        const unsigned type = a & 31u, level = (a >> 5) & 7u;
        if (type == 0)
            break;
        if (type == 2)   /* instruction cache */
            continue;
        const int64_t bytes = (int64_t)((b >> 22) + 1) * (((b >> 12) & 0x3ffu) + 1) *
                              ((b & 0xfffu) + 1) * ((int64_t)cx + 1);
        const int sharing = (int)((a >> 14) & 0xfffu) + 1;
        if (level == 1)
            c->l1d = bytes, found |= 1;
        else if (level == 2)
            c->l2 = bytes, c->l2_sharing = sharing, found |= 2;
        else if (level == 3)
            c->l3 = bytes, c->l3_sharing = sharing, found |= 4;
    }
    return (found & 3) == 3;
}
#endif

static void detect(void)
{
    fc_cache_sizes c = defaults;
    c.l3 = 0, c.l3_sharing = 1;
    if (from_sysfs(&c)) {
        c.source = "sysfs";
#ifdef FC_HAVE_CPUID
    } else if (c = defaults, c.l3 = 0, from_cpuid(&c)) {
        c.source = "cpuid";
#endif
    } else {
        c = defaults;
    }
    if (c.l3 <= 0)     /* no L3: L2 is the last level */
        c.l3 = c.l2, c.l3_sharing = c.l2_sharing;
    detected = c;
}

/* Called at import, under the interpreter's lock, before any computation;
 * afterwards only read. */
const fc_cache_sizes *fc_caches(void)
{
    if (have_override)
        return &overridden;
    if (!have_detected) {
        detect();
        have_detected = 1;
    }
    return &detected;
}

int fc_set_cache_sizes(int64_t l1d, int64_t l2, int64_t l3)
{
    if (l1d <= 0 && l2 <= 0 && l3 <= 0) {
        have_override = 0;
        return 0;
    }
    if (l1d < 1024 || l2 < l1d || (l3 > 0 && l3 < l2))
        return -1;
    const fc_cache_sizes *d = (have_override = 0, fc_caches());
    overridden.l1d = l1d, overridden.l2 = l2;
    overridden.l3 = l3 > 0 ? l3 : l2;
    overridden.l2_sharing = 1;
    overridden.l3_sharing = l3 > 0 ? d->l3_sharing : 1;
    overridden.source = "FASTCONV_CACHE_SIZES";
    have_override = 1;
    return 0;
}
