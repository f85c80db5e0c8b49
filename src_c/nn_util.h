/* nn_util.h - private helpers of the kernel files (activation.c softmax.c loss.c norm.c
 * embedding.c optim.c ...): ISA dispatch of templated kernels and the threaded split of a range.
 * Not part of the public C API (cengine.h); a kernel file includes it first. */
#ifndef CE_NN_UTIL_H
#define CE_NN_UTIL_H
#include "cengine.h"
#ifdef _OPENMP
#include <omp.h>
#define CE_TID() omp_get_thread_num()
#define CE_NTEAM() omp_get_num_threads()
#else
#define CE_TID() 0
#define CE_NTEAM() 1
#endif

/* threads for `work` elements with at least `min_per_thread` each, capped by `items` (rows);
 * 1 without OpenMP (the chunk splitting assumes the threads really run) */
static inline int ce_nn_threads(int64_t work, int64_t min_per_thread, int64_t items) {
    int nt = ce_par_threads(work, min_per_thread);
    return items < nt ? (int)(items < 1 ? 1 : items) : nt;
}
#define CE_NN_MIN_WORK 16384

/* write outputs of `bytes` with non-temporal stores? For outputs well beyond the per-core caches
 * this skips the read-for-ownership of the destination: measured 5-20% faster for the softmax /
 * log_softmax / cross-entropy write passes on 16-32 MB outputs (interleaved runs, 32 MiB L3).
 * But an output that fits the last-level cache is better left there for its reader (the next
 * op, or the backward): on a machine with a large L3 streaming a 16 MiB softmax output made
 * forward+backward ~20% slower. Default (ce_nn_stream_default_bytes, set at load by softmax.c
 * from ce_cpu_caches): a quarter of one L3 instance, at least 8 MiB (the four operands of a
 * softmax forward+backward then fit it); ce_nn_set_stream_bytes tunes it. */
#define CE_NN_STREAM_BYTES ((int64_t)8 << 20)
extern int64_t ce_nn_stream_bytes;
extern int64_t ce_nn_stream_default_bytes;
/* ... and only rows of at least CE_NN_STREAM_ROW_BYTES: short rows measured much slower
 * streamed (AMD Zen 4, float32, 1 thread, paired: softmax fwd+bwd [65536,64] 10.9 vs 5.2 ms,
 * [32768,64] 5.2 vs 2.6, [16384,256] 6.4 vs 5.4; rows of 1024: [2048,1024] 2.3 vs 2.6,
 * [8192,1024] 10.0 vs 11.6 streamed vs cached). A threshold of 0 streams every output (tests). */
#define CE_NN_STREAM_ROW_BYTES 4096
static inline int ce_nn_stream(int64_t bytes, int64_t row_bytes) {
    return bytes >= ce_nn_stream_bytes &&
           (ce_nn_stream_bytes == 0 || row_bytes >= CE_NN_STREAM_ROW_BYTES);
}

/* ---- ISA dispatch of a templated kernel -------------------------------------------------------
 * A template instantiated by isa_each.h with CE_EACH_SCALAR 1 defines VM_FN(NAME) once per pair:
 * ce_NAME_avx512_SFX, ce_NAME_avx2_SFX and ce_NAME_scalar_SFX (SFX f32 or f64).
 *   CE_ISA_PICK(NAME, SFX)          the instance for the path chosen at run time (ce_isa)
 *   CE_ISA_CALL(NAME, SFX, args...) call it */
#define CE_ISA_PICK(NAME, SFX)                                                                   \
    (ce_isa >= CE_ISA_AVX512 ? ce_##NAME##_avx512_##SFX                                          \
     : ce_isa >= CE_ISA_AVX2 ? ce_##NAME##_avx2_##SFX                                            \
                             : ce_##NAME##_scalar_##SFX)
#define CE_ISA_CALL(NAME, SFX, ...) (CE_ISA_PICK(NAME, SFX)(__VA_ARGS__))

/* ---- threaded split of a range ------------------------------------------------------------------
 * CE_PAR_CHUNKS(n, nt, align, BODY): run BODY with int64_t lo, hi bound to contiguous chunks
 * [lo, hi) of [0, n) (starts a multiple of `align`), one per thread of an OpenMP team of `nt`
 * (from ce_par_threads / ce_nn_threads); BODY runs once on the calling thread with [0, n) when
 * nt <= 1. The split uses the team OpenMP actually forms, so no chunk is skipped if it is
 * smaller than asked for. Every region passes num_threads: the process-wide OpenMP default is
 * never used nor changed. */
#define CE_PAR_CHUNKS(n, nt, align, BODY)                                                        \
    do {                                                                                         \
        const int64_t n_ = (n);                                                                  \
        const int nt_ = (nt);                                                                    \
        if (nt_ <= 1) {                                                                          \
            const int64_t lo = 0, hi = n_;                                                       \
            BODY;                                                                                \
        } else {                                                                                 \
            _Pragma("omp parallel num_threads(nt_)")                                             \
            {                                                                                    \
                int64_t lo, hi;                                                                  \
                ce_chunk(n_, CE_TID(), CE_NTEAM(), (align), &lo, &hi);                           \
                if (hi > lo) BODY;                                                               \
            }                                                                                    \
        }                                                                                        \
    } while (0)

/* CE_ROWS_PAR(R, C, BODY): CE_PAR_CHUNKS over the R rows of an (R, C) problem, threads from
 * ce_nn_threads(R*C, CE_NN_MIN_WORK, R); BODY sees the row range [lo, hi). */
#define CE_ROWS_PAR(R, C, BODY) \
    CE_PAR_CHUNKS((R), ce_nn_threads((R) * (C), CE_NN_MIN_WORK, (R)), 1, BODY)
#endif
