/* cpu.c - CPU feature detection and the run-time ISA choice.
 * ce_isa is set once at import (cengine/_C/core.pxi calls ce_cpu_init and, when CENGINE_ISA is
 * set, ce_set_isa); kernels read it on every call and pick their generic/avx2/avx512 path. */
#include "cengine.h"

int ce_isa = CE_ISA_GENERIC;
static int ce_isa_max = -1;

void ce_cpu_features(ce_cpu_features_t *f) {
    __builtin_cpu_init();
    f->avx2 = __builtin_cpu_supports("avx2") != 0;
    f->fma = __builtin_cpu_supports("fma") != 0;
    f->avx512f = __builtin_cpu_supports("avx512f") != 0;
    f->avx512bw = __builtin_cpu_supports("avx512bw") != 0;
    f->avx512vl = __builtin_cpu_supports("avx512vl") != 0;
    f->avx512dq = __builtin_cpu_supports("avx512dq") != 0;
    f->avx512bf16 = __builtin_cpu_supports("avx512bf16") != 0;
    f->f16c = __builtin_cpu_supports("f16c") != 0;
}

int ce_cpu_max_isa(void) {
    if (ce_isa_max < 0) {
        ce_cpu_features_t f;
        ce_cpu_features(&f);
        /* the avx2 and avx512 instances of the half-precision kernels use F16C conversions
         * (vmath_cvt.h), which every AVX2 CPU shipped has; checked all the same */
        if (f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)
            ce_isa_max = CE_ISA_AVX512;
        else if (f.avx2 && f.fma && f.f16c)
            ce_isa_max = CE_ISA_AVX2;
        else
            ce_isa_max = CE_ISA_GENERIC;
    }
    return ce_isa_max;
}

void ce_cpu_init(void) { ce_isa = ce_cpu_max_isa(); }

int ce_set_isa(int level) {
    if (level < CE_ISA_GENERIC || level > ce_cpu_max_isa()) return -1;
    ce_isa = level;
    return 0;
}

int ce_get_isa(void) { return ce_isa; }

/* ---- cache geometry (cpu_cache.h) ----
 * Order of sources: Linux sysfs (/sys/devices/system/cpu/cpu0/cache/index*), which also holds
 * the sharing of each instance; CPUID deterministic cache parameters (Intel leaf 4, AMD leaf
 * 0x8000001D); a small table of well-known families; otherwise nothing (size 0), and the GEMM
 * falls back to fixed block sizes. Detected once, the first time it is asked for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CE_HAVE_CPUID 1
#else
#define CE_HAVE_CPUID 0
#endif

static ce_cache_info_t ce_caches;
static int ce_caches_done = 0;

/* first line of a small sysfs file into buf; 0 on success */
static int ce_read_line(const char *path, char *buf, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *r = fgets(buf, cap, f);
    fclose(f);
    if (!r) return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

/* "48K", "2048K", "1M", "32768" -> bytes (0 if unparsable) */
static int64_t ce_parse_size(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0) return 0;
    if (*end == 'K' || *end == 'k') v <<= 10;
    else if (*end == 'M' || *end == 'm') v <<= 20;
    else if (*end == 'G' || *end == 'g') v <<= 30;
    return (int64_t)v;
}

/* number of CPUs in a list such as "0-3,8,10-11" (0 if unparsable) */
static int ce_count_cpu_list(const char *s) {
    int n = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s) return n;
        long b = a;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1) return n;
            s = end;
        }
        if (b >= a) n += (int)(b - a + 1);
        if (*s == ',') s++;
        else break;
    }
    return n;
}

static int ce_caches_sysfs(ce_cache_info_t *ci) {
    int found = 0;
    for (int idx = 0; idx < 16; idx++) {
        char path[128], buf[256];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", idx);
        if (ce_read_line(path, buf, sizeof buf) != 0) {
            if (idx > 0) break;   /* index0 missing: no sysfs caches at all */
            return 0;
        }
        int level = atoi(buf);
        if (level < 1 || level > 3) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", idx);
        if (ce_read_line(path, buf, sizeof buf) != 0) continue;
        if (strcmp(buf, "Instruction") == 0) continue;
        if (level == 1 && strcmp(buf, "Data") != 0) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
        if (ce_read_line(path, buf, sizeof buf) != 0) continue;
        int64_t size = ce_parse_size(buf);
        if (size <= 0) continue;
        int L = level - 1, line = 64, ways = 0, sets = 0, shared = 1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/coherency_line_size", idx);
        if (ce_read_line(path, buf, sizeof buf) == 0 && atoi(buf) > 0) line = atoi(buf);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/ways_of_associativity", idx);
        if (ce_read_line(path, buf, sizeof buf) == 0) ways = atoi(buf);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/number_of_sets", idx);
        if (ce_read_line(path, buf, sizeof buf) == 0) sets = atoi(buf);
        if (ways <= 0 && sets > 0 && line > 0) ways = (int)(size / ((int64_t)sets * line));
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/shared_cpu_list", idx);
        if (ce_read_line(path, buf, sizeof buf) == 0 && ce_count_cpu_list(buf) > 0)
            shared = ce_count_cpu_list(buf);
        ci->size[L] = size;
        ci->ways[L] = ways > 0 ? ways : 0;
        ci->line[L] = line;
        ci->shared[L] = shared;
        found = 1;
    }
    if (found) ci->source = CE_CACHE_SRC_SYSFS;
    return found && ci->size[0] > 0;
}

#if CE_HAVE_CPUID
static void ce_cpuid_vendor(char v[13]) {
    unsigned a, b, c, d;
    v[0] = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    memcpy(v, &b, 4);
    memcpy(v + 4, &d, 4);
    memcpy(v + 8, &c, 4);
    v[12] = 0;
}

/* deterministic cache parameters: Intel leaf 4, AMD/Hygon leaf 0x8000001D (same layout) */
static int ce_caches_cpuid(ce_cache_info_t *ci) {
    char v[13];
    unsigned a, b, c, d, leaf;
    ce_cpuid_vendor(v);
    if (strcmp(v, "GenuineIntel") == 0) {
        if (__get_cpuid_max(0, NULL) < 4) return 0;
        leaf = 4;
    } else if (strcmp(v, "AuthenticAMD") == 0 || strcmp(v, "HygonGenuine") == 0) {
        if (__get_cpuid_max(0x80000000u, NULL) < 0x8000001Du) return 0;
        __cpuid(0x80000001u, a, b, c, d);
        if (!(c & (1u << 22))) return 0;   /* no TOPOEXT: leaf 0x8000001D not valid */
        leaf = 0x8000001Du;
    } else {
        return 0;
    }
    int found = 0;
    for (unsigned sub = 0; sub < 16; sub++) {
        __cpuid_count(leaf, sub, a, b, c, d);
        unsigned type = a & 31u, level = (a >> 5) & 7u;
        if (type == 0) break;
        if (type == 2 || level < 1 || level > 3) continue;   /* instruction cache */
        if (level == 1 && type != 1) continue;
        int line = (int)(b & 0xFFFu) + 1, parts = (int)((b >> 12) & 0x3FFu) + 1;
        int ways = (int)((b >> 22) & 0x3FFu) + 1;
        int64_t sets = (int64_t)c + 1;
        int L = (int)level - 1;
        ci->size[L] = (int64_t)ways * parts * line * sets;
        ci->ways[L] = (a & (1u << 9)) ? 0 : ways;   /* fully associative: unknown ways */
        ci->line[L] = line;
        ci->shared[L] = (int)((a >> 14) & 0xFFFu) + 1;
        found = 1;
    }
    if (found) ci->source = CE_CACHE_SRC_CPUID;
    return found && ci->size[0] > 0;
}

/* per-family table (per core L1d/L2, L3 per instance with its sharing), used only when neither
 * sysfs nor CPUID report the caches */
static int ce_caches_table(ce_cache_info_t *ci) {
    char v[13];
    unsigned a, b, c, d;
    ce_cpuid_vendor(v);
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned fam = (a >> 8) & 15u, model = (a >> 4) & 15u;
    if (fam == 15) fam += (a >> 20) & 255u;
    if (fam == 6 || fam == 15) model |= ((a >> 16) & 15u) << 4;
    /* {L1d KiB, ways, L2 KiB, ways, L3 KiB, ways, cores per L3} */
    static const int zen5[7] = {48, 12, 1024, 16, 32768, 16, 16};
    static const int zen4[7] = {32, 8, 1024, 8, 32768, 16, 16};
    static const int zen23[7] = {32, 8, 512, 8, 16384, 16, 8};
    static const int spr[7] = {48, 12, 2048, 16, 1920, 15, 1};
    static const int icx[7] = {48, 12, 1280, 20, 1536, 12, 1};
    static const int skx[7] = {32, 8, 1024, 16, 1408, 11, 1};
    static const int intel_client[7] = {32, 8, 256, 4, 2048, 16, 1};
    const int *t = NULL;
    if (strcmp(v, "AuthenticAMD") == 0 || strcmp(v, "HygonGenuine") == 0) {
        if (fam >= 0x1A) t = zen5;
        else if (fam == 0x19) t = (model < 0x10 || (model >= 0x20 && model < 0x60)) ? zen23 : zen4;
        else if (fam >= 0x17) t = zen23;
    } else if (strcmp(v, "GenuineIntel") == 0 && fam == 6) {
        if (model == 0x8F || model == 0xCF || model == 0xAD || model == 0xAE) t = spr;
        else if (model == 0x6A || model == 0x6C) t = icx;
        else if (model == 0x55) t = skx;
        else t = intel_client;
    }
    if (!t) return 0;
    for (int L = 0; L < 3; L++) {
        ci->size[L] = (int64_t)t[2 * L] << 10;
        ci->ways[L] = t[2 * L + 1];
        ci->line[L] = 64;
        ci->shared[L] = L == 2 ? t[6] : 1;
    }
    ci->source = CE_CACHE_SRC_TABLE;
    return 1;
}
#endif

void ce_cpu_caches(ce_cache_info_t *ci) {
    if (!__atomic_load_n(&ce_caches_done, __ATOMIC_ACQUIRE)) {
        ce_cache_info_t c;
        memset(&c, 0, sizeof c);
        int ok = ce_caches_sysfs(&c);
#if CE_HAVE_CPUID
        if (!ok) {
            memset(&c, 0, sizeof c);
            ok = ce_caches_cpuid(&c);
        }
        if (!ok) {
            memset(&c, 0, sizeof c);
            ok = ce_caches_table(&c);
        }
#endif
        if (!ok) memset(&c, 0, sizeof c);
        ce_caches = c;   /* every thread computes the same value: a racing second write is benign */
        __atomic_store_n(&ce_caches_done, 1, __ATOMIC_RELEASE);
    }
    *ci = ce_caches;
}

void ce_cpu_model(char *buf, int cap) {
    if (cap <= 0) return;
    buf[0] = 0;
#if CE_HAVE_CPUID
    unsigned r[12];
    if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) return;
    for (unsigned i = 0; i < 3; i++) __cpuid(0x80000002u + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
    char s[49];
    memcpy(s, r, 48);
    s[48] = 0;
    const char *p = s;
    while (*p == ' ') p++;
    int n = (int)strlen(p);
    while (n > 0 && p[n - 1] == ' ') n--;
    if (n >= cap) n = cap - 1;
    memcpy(buf, p, (size_t)n);
    buf[n] = 0;
#endif
}

int ce_cpu_signature(int *family, int *model, int *stepping) {
    *family = *model = *stepping = 0;
#if CE_HAVE_CPUID
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned fam = (a >> 8) & 15u, mod = (a >> 4) & 15u;
    if (fam == 15) fam += (a >> 20) & 255u;
    if (fam == 6 || fam >= 15) mod |= ((a >> 16) & 15u) << 4;
    *family = (int)fam;
    *model = (int)mod;
    *stepping = (int)(a & 15u);
    return 1;
#else
    return 0;
#endif
}
