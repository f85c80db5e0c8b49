/* cpu_cache.h - data cache geometry of the CPU (cpu.c), read by the GEMM blocking (gemm.c).
 *
 * Levels 1..3 are stored at index level-1: level 1 is the L1 data cache, 2 and 3 the unified
 * caches. A size of 0 means the level was not found. `shared` is the number of logical CPUs
 * sharing one instance of the cache (an L3 is usually shared by many cores). */
#ifndef CE_CPU_CACHE_H
#define CE_CPU_CACHE_H
#include <stdint.h>

enum { CE_CACHE_SRC_NONE = 0, CE_CACHE_SRC_SYSFS = 1, CE_CACHE_SRC_CPUID = 2,
       CE_CACHE_SRC_TABLE = 3, CE_CACHE_SRC_USER = 4 };

typedef struct {
    int64_t size[3];   /* bytes of one instance */
    int ways[3];       /* associativity (0: unknown; fully associative reported as 0 too) */
    int line[3];       /* line size in bytes */
    int shared[3];     /* logical CPUs per instance (>= 1 when size > 0) */
    int source;        /* CE_CACHE_SRC_*: where the geometry came from */
} ce_cache_info_t;

/* The caches of CPU 0, detected once (sysfs, else CPUID leaf 4 / 0x8000001D, else a per-family
 * table by CPUID vendor/family/model, else all zero) and then returned from a copy. */
void ce_cpu_caches(ce_cache_info_t *ci);
/* CPU brand string (CPUID 0x80000002-4, or "" when unavailable) into buf (NUL-terminated). */
void ce_cpu_model(char *buf, int cap);
/* CPUID leaf 1 display family, model and stepping (family 25 model 17 = Zen 4 Genoa);
 * returns 0 with all three 0 where CPUID is unavailable, else 1. */
int ce_cpu_signature(int *family, int *model, int *stepping);
#endif
