/* nn_util.h - private helpers of the nn kernel files (softmax.c loss.c norm.c embedding.c). */
#ifndef CE_NN_UTIL_H
#define CE_NN_UTIL_H
#include "cengine.h"
#ifdef _OPENMP
#include <omp.h>
#define CE_TID() omp_get_thread_num()
#else
#define CE_TID() 0
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
 * log_softmax / cross-entropy write passes on 16-32 MB outputs (interleaved runs). Default 8 MiB;
 * ce_nn_set_stream_bytes tunes it. */
#define CE_NN_STREAM_BYTES ((int64_t)8 << 20)
extern int64_t ce_nn_stream_bytes;
static inline int ce_nn_stream(int64_t bytes) { return bytes >= ce_nn_stream_bytes; }
#endif
