/* loss.c - fused cross-entropy: log-softmax + NLL in one pass per row, with class weights,
 * ignore_index and label smoothing (torch semantics), probability targets, and the one-pass
 * backward from the saved per-row logsumexp (see nn_kernels.h for the formulas).
 * Threaded over rows; SIMD rows from loss_tmpl.h over softmax_tmpl.h / vmath.h; generic = the
 * same template on one-lane scalar "vectors"; *_ref = the textbook formulas below. */
#include <math.h>
#include <string.h>
#include <immintrin.h>
#include "nn_util.h"

int64_t ce_nn_stream_bytes = CE_NN_STREAM_BYTES;
void ce_nn_set_stream_bytes(int64_t b) { ce_nn_stream_bytes = b < 0 ? CE_NN_STREAM_BYTES : b; }

int64_t ce_index_check(const int64_t *idx, int64_t n, int64_t hi, int64_t ignore, int use_ignore) {
    if (use_ignore) {
        for (int64_t i = 0; i < n; i++) {
            int64_t v = idx[i];
            if ((uint64_t)v >= (uint64_t)hi && v != ignore) return i;
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            if ((uint64_t)idx[i] >= (uint64_t)hi) return i;
    }
    return -1;
}

/* ---- references ----------------------------------------------------------------------------- */
#define CE_DEF_CE_REF(T, SFX, EXP, LOG)                                                          \
    static T ce_row_lse_ref_##SFX(const T *xr, int64_t C) {                                      \
        T m = -INFINITY, s = 0;                                                                  \
        for (int64_t c = 0; c < C; c++) m = xr[c] > m ? xr[c] : m;                               \
        for (int64_t c = 0; c < C; c++) s += EXP(xr[c] - m);                                     \
        return m + LOG(s);                                                                       \
    }                                                                                            \
    void ce_cross_entropy_fwd_##SFX##_ref(T *loss, T *lse, T *wrow, const T *x, const int64_t *tg, \
                                          const T *w, int64_t N, int64_t C, int64_t ignore,       \
                                          double eps) {                                          \
        for (int64_t r = 0; r < N; r++) {                                                        \
            const T *xr = x + r * C;                                                             \
            T l = ce_row_lse_ref_##SFX(xr, C);                                                   \
            lse[r] = l;                                                                          \
            int64_t t = tg[r];                                                                   \
            if (t == ignore) { loss[r] = 0; wrow[r] = 0; continue; }                             \
            T wt = w ? w[t] : (T)1, sm = 0;                                                      \
            for (int64_t c = 0; c < C; c++) sm += (w ? w[c] : (T)1) * (l - xr[c]);               \
            loss[r] = (T)(1 - eps) * wt * (l - xr[t]) + (T)(eps / C) * sm;                       \
            wrow[r] = wt;                                                                        \
        }                                                                                        \
    }                                                                                            \
    void ce_cross_entropy_bwd_##SFX##_ref(T *dx, const T *x, const int64_t *tg, const T *w,     \
                                          const T *lse, const T *g, int64_t N, int64_t C,        \
                                          int64_t ignore, double eps, int acc) {                 \
        T W = 0;                                                                                 \
        for (int64_t c = 0; c < C; c++) W += w ? w[c] : (T)1;                                    \
        for (int64_t r = 0; r < N; r++) {                                                        \
            int64_t t = tg[r];                                                                   \
            T wt = (t == ignore) ? 0 : (w ? w[t] : (T)1);                                        \
            for (int64_t c = 0; c < C; c++) {                                                    \
                T d = 0;                                                                         \
                if (t != ignore) {                                                               \
                    T p = EXP(x[r * C + c] - lse[r]);                                            \
                    d = g[r] * ((T)(1 - eps) * wt * (p - (c == t ? (T)1 : (T)0)) +               \
                                (T)(eps / C) * (W * p - (w ? w[c] : (T)1)));                     \
                }                                                                                \
                dx[r * C + c] = acc ? dx[r * C + c] + d : d;                                     \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    void ce_cross_entropy_prob_fwd_##SFX##_ref(T *loss, T *lse, const T *x, const T *tgt,       \
                                               const T *w, int64_t N, int64_t C, double eps) {   \
        for (int64_t r = 0; r < N; r++) {                                                        \
            T l = ce_row_lse_ref_##SFX(x + r * C, C), s = 0;                                     \
            lse[r] = l;                                                                          \
            for (int64_t c = 0; c < C; c++) {                                                    \
                T q = (T)(1 - eps) * tgt[r * C + c] + (T)(eps / C);                              \
                s -= (w ? w[c] : (T)1) * q * (x[r * C + c] - l);                                 \
            }                                                                                    \
            loss[r] = s;                                                                         \
        }                                                                                        \
    }                                                                                            \
    void ce_cross_entropy_prob_bwd_##SFX##_ref(T *dx, const T *x, const T *tgt, const T *w,     \
                                               const T *lse, const T *g, int64_t N, int64_t C,   \
                                               double eps, int acc) {                            \
        for (int64_t r = 0; r < N; r++) {                                                        \
            T sq = 0;                                                                            \
            for (int64_t c = 0; c < C; c++)                                                      \
                sq += (w ? w[c] : (T)1) * ((T)(1 - eps) * tgt[r * C + c] + (T)(eps / C));        \
            for (int64_t c = 0; c < C; c++) {                                                    \
                T q = (w ? w[c] : (T)1) * ((T)(1 - eps) * tgt[r * C + c] + (T)(eps / C));        \
                T d = g[r] * (EXP(x[r * C + c] - lse[r]) * sq - q);                              \
                dx[r * C + c] = acc ? dx[r * C + c] + d : d;                                     \
            }                                                                                    \
        }                                                                                        \
    }
CE_DEF_CE_REF(float, f32, expf, logf)
CE_DEF_CE_REF(double, f64, exp, log)

/* ---- generic (scalar template) and SIMD rows ------------------------------------------------- */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "softmax_tmpl.h"
#define CE_EACH_INC2 "loss_tmpl.h"
#include "isa_each.h"

/* ---- dispatch + threading over rows ------------------------------------------------------- */
/* run ROWCALL(lo, hi) over [0, N) split among threads; picks the function by ce_isa via ISA_FN */
#define CE_ROWS_PAR(N, C, BODY)                                                                  \
    do {                                                                                         \
        int nt_ = ce_nn_threads((N) * (C), CE_NN_MIN_WORK, (N));                                 \
        if (nt_ <= 1) {                                                                          \
            int64_t lo = 0, hi = (N);                                                            \
            BODY;                                                                                \
        } else {                                                                                 \
            _Pragma("omp parallel num_threads(nt_)")                                             \
            {                                                                                    \
                int64_t lo, hi;                                                                  \
                ce_chunk((N), CE_TID(), nt_, 1, &lo, &hi);                                       \
                if (hi > lo) BODY;                                                               \
            }                                                                                    \
        }                                                                                        \
    } while (0)

#define CE_ISA_CALL(NAME, SFX, ...)                                                              \
    do {                                                                                         \
        switch (ce_isa) {                                                                        \
        case CE_ISA_AVX512: ce_##NAME##_avx512_##SFX(__VA_ARGS__); break;                        \
        case CE_ISA_AVX2: ce_##NAME##_avx2_##SFX(__VA_ARGS__); break;                            \
        default: ce_##NAME##_scalar_##SFX(__VA_ARGS__); break;                                   \
        }                                                                                        \
    } while (0)

#define CE_DEF_CE_ENTRY(T, SFX)                                                                  \
    static T ce_wsum_##SFX(const T *w, int64_t C) {                                              \
        if (!w) return (T)C;                                                                     \
        double s = 0;                                                                            \
        for (int64_t c = 0; c < C; c++) s += w[c];                                               \
        return (T)s;                                                                             \
    }                                                                                            \
    void ce_cross_entropy_fwd_##SFX(T *loss, T *lse, T *wrow, const T *x, const int64_t *tg,     \
                                    const T *w, int64_t N, int64_t C, int64_t ignore,            \
                                    double eps) {                                                \
        if (N <= 0 || C <= 0) return;                                                            \
        T W = ce_wsum_##SFX(w, C);                                                               \
        CE_ROWS_PAR(N, C, CE_ISA_CALL(ce_fwd_rows, SFX, loss, lse, wrow, x, tg, w, lo, hi, C,    \
                                      ignore, (T)eps, W));                                       \
    }                                                                                            \
    void ce_cross_entropy_bwd_##SFX(T *dx, const T *x, const int64_t *tg, const T *w,           \
                                    const T *lse, const T *g, int64_t N, int64_t C,              \
                                    int64_t ignore, double eps, int acc) {                       \
        if (N <= 0 || C <= 0) return;                                                            \
        T W = ce_wsum_##SFX(w, C);                                                               \
        int nts = ce_nn_stream(N * C * (int64_t)sizeof(T));                                      \
        CE_ROWS_PAR(N, C, CE_ISA_CALL(ce_bwd_rows, SFX, dx, x, tg, w, lse, g, lo, hi, C, ignore, \
                                      (T)eps, W, acc, nts));                                          \
    }                                                                                            \
    void ce_cross_entropy_prob_fwd_##SFX(T *loss, T *lse, const T *x, const T *tgt, const T *w, \
                                         int64_t N, int64_t C, double eps) {                     \
        if (N <= 0 || C <= 0) return;                                                            \
        CE_ROWS_PAR(N, C, CE_ISA_CALL(ce_prob_fwd_rows, SFX, loss, lse, x, tgt, w, lo, hi, C,    \
                                      (T)eps));                                                  \
    }                                                                                            \
    void ce_cross_entropy_prob_bwd_##SFX(T *dx, const T *x, const T *tgt, const T *w,           \
                                         const T *lse, const T *g, int64_t N, int64_t C,         \
                                         double eps, int acc) {                                  \
        if (N <= 0 || C <= 0) return;                                                            \
        CE_ROWS_PAR(N, C, CE_ISA_CALL(ce_prob_bwd_rows, SFX, dx, x, tgt, w, lse, g, lo, hi, C,   \
                                      (T)eps, acc));                                             \
    }
CE_DEF_CE_ENTRY(float, f32)
CE_DEF_CE_ENTRY(double, f64)
