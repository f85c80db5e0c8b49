/* amp.c - fused unscale + non-finite check over all gradients of an optimizer (amp.h).
 * Paths: avx512 / avx2 / generic from one vm_* template (amp_tmpl.h via isa_each.h); the
 * *_ref references are independent plain loops with isfinite(). */
#include <math.h>
#include "cengine.h"
#ifdef _OPENMP
#include <omp.h>
#define CE_TID() omp_get_thread_num()
#define CE_TEAM() omp_get_num_threads()
#else
#define CE_TID() 0
#define CE_TEAM() 1
#endif

#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "amp_tmpl.h"
#include "isa_each.h"

/* g[t] *= inv over the elements [lo, hi) of the concatenation of the buffers */
#define CE_AMP_RANGE(SFX, T)                                                                    \
    static int amp_range_##SFX(T *const *g, const int64_t *n, int64_t count, T inv, int64_t lo, \
                               int64_t hi) {                                                    \
        int bad = 0;                                                                            \
        int64_t start = 0;                                                                      \
        for (int64_t t = 0; t < count && start < hi; start += n[t], t++) {                      \
            int64_t a = lo > start ? lo - start : 0, b = hi - start < n[t] ? hi - start : n[t]; \
            if (b <= a) continue;                                                               \
            switch (ce_isa) {                                                                   \
            case CE_ISA_AVX512: bad |= ce_amp_unscale_avx512_##SFX(g[t] + a, b - a, inv); break; \
            case CE_ISA_AVX2: bad |= ce_amp_unscale_avx2_##SFX(g[t] + a, b - a, inv); break;    \
            default: bad |= ce_amp_unscale_scalar_##SFX(g[t] + a, b - a, inv); break;          \
            }                                                                                   \
        }                                                                                       \
        return bad;                                                                             \
    }
CE_AMP_RANGE(f32, float)
CE_AMP_RANGE(f64, double)

static int64_t amp_total(const int64_t *n, int64_t count) {
    int64_t s = 0;
    for (int64_t t = 0; t < count; t++) s += n[t];
    return s;
}

/* g[t] *= inv over all buffers, threads taking equal shares of the concatenated elements */
#define CE_AMP_ENTRY(SFX, T, ALIGN)                                                              \
    static int amp_unscale_##SFX(T *const *g, const int64_t *n, int64_t count, T inv) {         \
        const int64_t total = amp_total(n, count);                                              \
        const int nt = ce_par_threads(total, CE_AMP_MIN_PER_THREAD);                            \
        int bad = 0;                                                                            \
        _Pragma("omp parallel num_threads(nt) if (nt > 1) reduction(| : bad)")                  \
        {                                                                                       \
            int64_t lo, hi;                                                                     \
            ce_chunk(total, CE_TID(), CE_TEAM(), ALIGN, &lo, &hi);                              \
            if (hi > lo) bad |= amp_range_##SFX(g, n, count, inv, lo, hi);                      \
        }                                                                                       \
        return bad;                                                                             \
    }                                                                                           \
    /* the reference: a plain loop with isfinite() */                                           \
    static int amp_unscale_ref_##SFX(T *const *g, const int64_t *n, int64_t count, T inv) {     \
        int bad = 0;                                                                            \
        for (int64_t t = 0; t < count; t++)                                                     \
            for (int64_t i = 0; i < n[t]; i++) {                                                \
                if (!isfinite(g[t][i])) bad = 1;                                                \
                g[t][i] *= inv;                                                                 \
            }                                                                                   \
        return bad;                                                                             \
    }
CE_AMP_ENTRY(f32, float, 16)
CE_AMP_ENTRY(f64, double, 8)

int ce_amp_unscale_f32(float *const *g, const int64_t *n, int64_t count, float inv_scale) {
    return amp_unscale_f32(g, n, count, inv_scale);
}

int ce_amp_unscale_f64(double *const *g, const int64_t *n, int64_t count, double inv_scale) {
    return amp_unscale_f64(g, n, count, inv_scale);
}

int ce_amp_unscale_f32_ref(float *const *g, const int64_t *n, int64_t count, float inv_scale) {
    return amp_unscale_ref_f32(g, n, count, inv_scale);
}

int ce_amp_unscale_f64_ref(double *const *g, const int64_t *n, int64_t count, double inv_scale) {
    return amp_unscale_ref_f64(g, n, count, inv_scale);
}
