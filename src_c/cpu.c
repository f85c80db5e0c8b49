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
}

int ce_cpu_max_isa(void) {
    if (ce_isa_max < 0) {
        ce_cpu_features_t f;
        ce_cpu_features(&f);
        if (f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)
            ce_isa_max = CE_ISA_AVX512;
        else if (f.avx2 && f.fma)
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
