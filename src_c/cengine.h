/* cengine.h - the C layer's public header: every kernel prototype, by concern.
 * Each kernel family has its own header (one concern per file); this umbrella includes them all,
 * and the Cython bindings (cengine/_C/ one .pxi per family) extern from it. */
#ifndef CENGINE_H
#define CENGINE_H
#include "common.h"

/* ---- cpu.c ---- */
typedef struct {
    int avx2, fma, avx512f, avx512bw, avx512vl, avx512dq, avx512bf16, f16c;
} ce_cpu_features_t;
void ce_cpu_features(ce_cpu_features_t *f);
int ce_cpu_max_isa(void);   /* highest CE_ISA_* this CPU (and OS) supports */
void ce_cpu_init(void);     /* ce_isa = ce_cpu_max_isa() */
int ce_set_isa(int level);  /* -1 if the CPU lacks it */
int ce_get_isa(void);
#include "cpu_cache.h"  /* ce_cpu_caches, ce_cpu_model: cache geometry and CPU model */

/* ---- threads.c ---- */
void ce_set_num_threads(int n);
int ce_get_num_threads(void);
int ce_openmp_enabled(void);
int ce_tune_malloc(long mmap_threshold, long trim_threshold); /* glibc mallopt; 1 if applied */

/* ---- kernel families (one header each; a family's .pxi externs from its own header) ---- */
#if __has_include("amp.h")
#include "amp.h"
#endif
#if __has_include("act_half.h")
#include "act_half.h"
#endif
#if __has_include("activation.h")
#include "activation.h"
#endif
#if __has_include("conv.h")
#include "conv.h"
#endif
#if __has_include("ewise.h")
#include "ewise.h"
#endif
#if __has_include("ewise_half.h")
#include "ewise_half.h"
#endif
#if __has_include("gemm.h")
#include "gemm.h"
#endif
#if __has_include("gemm_bf16.h")
#include "gemm_bf16.h"
#endif
#if __has_include("nn_kernels.h")
#include "nn_kernels.h"
#endif
#if __has_include("optim.h")
#include "optim.h"
#endif
#if __has_include("cast.h")
#include "cast.h"
#endif
#if __has_include("ctc.h")
#include "ctc.h"
#endif
#if __has_include("rnn.h")
#include "rnn.h"
#endif

#endif
