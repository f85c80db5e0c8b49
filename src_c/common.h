/* common.h - shared macros for every kernel file: ISA levels, threading helper, restrict.
 *
 * Conventions (CONTRIBUTING.md at the repository root has the full list and a worked example):
 *  - outputs first, then const inputs, then sizes as int64_t;
 *  - a comment with every shape, dimension letters: B batch, T time/seq, C channels/classes,
 *    M,N,K matrix dims, D feature dim, V vocabulary, n flat element count;
 *  - backward kernels write the input gradient as their `accumulate` argument says (0: dx = ...,
 *    overwritten; 1: dx += ...); parameter gradients (dweight, dbias, dW) always accumulate (+=);
 *  - every optimized kernel keeps a plain, independently written reference `*_ref` beside it;
 *  - every exported function is written out by name (grep "ce_NAME(" finds its definition);
 *  - pointers are aligned to their element type (the Cython bindings copy misaligned arrays).
 */
#ifndef CE_COMMON_H
#define CE_COMMON_H
#include <stdint.h>
#include <stddef.h>

#define CE_RESTRICT __restrict__
#define CE_ALIGN 64

/* ISA levels, ordered: a higher level can run every lower one. */
enum { CE_ISA_GENERIC = 0, CE_ISA_AVX2 = 1, CE_ISA_AVX512 = 2 };

/* target strings for per-function ISA code: use as
 *   __attribute__((target(CE_TARGET_AVX512))) static void f(...)
 * or at file scope: #pragma GCC target(...) before including immintrin.h */
#define CE_TARGET_AVX2 "avx2,fma"
#define CE_TARGET_AVX512 "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq"

/* the level chosen at import (cpu.c); kernels switch on it per call */
extern int ce_isa;

/* threads.c: the one place that knows the thread count */
int ce_get_num_threads(void);
/* number of threads worth using for `work` units when one thread should get at least
 * `min_per_thread` of them (1 for small problems, so no parallel region is opened). */
static inline int ce_threads_for(int64_t work, int64_t min_per_thread) {
    int nt = ce_get_num_threads();
    if (min_per_thread < 1) min_per_thread = 1;
    int64_t want = work / min_per_thread;
    if (want < 1) want = 1;
    return want < nt ? (int)want : nt;
}

/* ce_threads_for for kernels that split work by thread id: 1 in a build without OpenMP, where
 * a parallel region runs once on one thread and a split by thread id would skip work */
static inline int ce_par_threads(int64_t work, int64_t min_per_thread) {
#ifdef _OPENMP
    return ce_threads_for(work, min_per_thread);
#else
    (void)work;
    (void)min_per_thread;
    return 1;
#endif
}

/* contiguous chunk [*lo, *hi) of n items for thread `tid` of `nt`, aligned to `align` items */
static inline void ce_chunk(int64_t n, int tid, int nt, int64_t align, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nt - 1) / nt;
    per = (per + align - 1) / align * align;
    int64_t a = per * tid, b = a + per;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

#endif
