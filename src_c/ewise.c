/* ewise.c - threaded elementwise binary arithmetic (contract in ewise.h).
 *
 * One loop body (CE_EW_BODY) instantiated for the generic path and, inside target regions, for
 * avx2 and avx512, where the compiler vectorises it with that ISA's registers. The entry points
 * split n into cache-line aligned per-thread chunks; below CE_EW_MIN_PER_THREAD elements a
 * second thread costs more than it brings and the call stays on one thread. */
#include "cengine.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define CE_EW_MIN_PER_THREAD (1 << 15)


/* out = a OP b over [0, n); out may alias a or b (the loops read before they write) */
#define CE_EW_BODY(T, NAME)                                                                      \
    static void NAME(int op, T *out, const T *a, const T *b, int64_t n) {                        \
        switch (op) {                                                                            \
        case CE_EW_ADD: for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i]; break;             \
        case CE_EW_SUB: for (int64_t i = 0; i < n; i++) out[i] = a[i] - b[i]; break;             \
        case CE_EW_MUL: for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i]; break;             \
        default: for (int64_t i = 0; i < n; i++) out[i] = a[i] / b[i]; break;                    \
        }                                                                                        \
    }

CE_EW_BODY(float, ew_generic_f32)
CE_EW_BODY(double, ew_generic_f64)

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")
CE_EW_BODY(float, ew_avx512_f32)
CE_EW_BODY(double, ew_avx512_f64)
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
CE_EW_BODY(float, ew_avx2_f32)
CE_EW_BODY(double, ew_avx2_f64)
#pragma GCC pop_options

#ifdef _OPENMP
/* split [0, n) over the team OpenMP actually forms (it may be smaller than asked for) */
#define CE_EW_PARALLEL(fn, op, out, a, b, n, nt, T)                                              \
    _Pragma("omp parallel num_threads(nt)")                                                      \
    {                                                                                            \
        int64_t lo, hi;                                                                          \
        ce_chunk(n, omp_get_thread_num(), omp_get_num_threads(), 64 / (int64_t)sizeof(T), &lo,  \
                 &hi);                                                                           \
        if (hi > lo) fn(op, out + lo, a + lo, b + lo, hi - lo);                                  \
    }
#else
#define CE_EW_PARALLEL(fn, op, out, a, b, n, nt, T) fn(op, out, a, b, n);
#endif

#define CE_EW_ENTRY(T, SFX)                                                                      \
    void ce_ewise_##SFX##_ref(int op, T *out, const T *a, const T *b, int64_t n) {              \
        for (int64_t i = 0; i < n; i++) {                                                        \
            T x = a[i], y = b[i];                                                                \
            out[i] = op == CE_EW_ADD ? x + y : op == CE_EW_SUB ? x - y                           \
                   : op == CE_EW_MUL ? x * y : x / y;                                            \
        }                                                                                        \
    }                                                                                            \
    void ce_ewise_##SFX(int op, T *out, const T *a, const T *b, int64_t n) {                    \
        void (*fn)(int, T *, const T *, const T *, int64_t) =                                    \
            ce_isa >= CE_ISA_AVX512 ? ew_avx512_##SFX                                            \
            : ce_isa >= CE_ISA_AVX2 ? ew_avx2_##SFX : ew_generic_##SFX;                          \
        const int nt = ce_par_threads(n, CE_EW_MIN_PER_THREAD);                                  \
        if (nt <= 1) {                                                                           \
            fn(op, out, a, b, n);                                                                \
            return;                                                                              \
        }                                                                                        \
        CE_EW_PARALLEL(fn, op, out, a, b, n, nt, T)                                              \
    }

CE_EW_ENTRY(float, f32)
CE_EW_ENTRY(double, f64)
