/* loss.c - fused cross-entropy: log-softmax + NLL in one pass per row, with class weights,
 * ignore_index and label smoothing (torch semantics), probability targets, and the one-pass
 * backward from the saved per-row logsumexp (see nn_kernels.h for the formulas).
 * Threaded over rows; row kernels ce_xent_*_<isa>_<dtype> from loss_tmpl.h over softmax_tmpl.h
 * / vmath.h (generic = the same template on one-lane scalar "vectors"); *_ref = the textbook
 * formulas below, computed in double from the logits alone (log-softmax recomputed per row). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>
#include "nn_util.h"

int64_t ce_nn_stream_bytes = CE_NN_STREAM_BYTES;
void ce_nn_set_stream_bytes(int64_t b) { ce_nn_stream_bytes = b < 0 ? ce_nn_stream_default_bytes : b; }

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

/* ---- references ------------------------------------------------------------------------------
 * Static insides per dtype (the public *_ref functions are written out at the end). Everything in
 * double; the backward recomputes the row's log-softmax from the logits (the saved lse is not
 * used), so it checks the optimized kernels' use of lse too. */
static double xent_ref_lse(const double *xr, int64_t C) {
    double m = xr[0], s = 0;
    for (int64_t c = 1; c < C; c++)
        if (xr[c] > m) m = xr[c];
    for (int64_t c = 0; c < C; c++) s += exp(xr[c] - m);
    return m + log(s);
}

/* log-probabilities lp (C) of row xr in double: (x - m) - log(sum exp(x - m)) */
static void xent_ref_logp(double *lp, const double *xr, int64_t C) {
    double m = xr[0], s = 0;
    for (int64_t c = 1; c < C; c++)
        if (xr[c] > m) m = xr[c];
    for (int64_t c = 0; c < C; c++) s += exp(xr[c] - m);
    double ls = log(s);
    for (int64_t c = 0; c < C; c++) lp[c] = (xr[c] - m) - ls;
}

#define CE_XENT_REF(T, SFX)                                                                      \
    static void xent_fwd_ref_##SFX(T *loss, T *lse, T *wrow, const T *x, const int64_t *tg,     \
                                   const T *w, int64_t N, int64_t C, int64_t ignore, double eps) { \
        double *xr = (double *)malloc(sizeof(double) * (size_t)C);                               \
        if (!xr) return;                                                                         \
        for (int64_t r = 0; r < N; r++) {                                                        \
            for (int64_t c = 0; c < C; c++) xr[c] = x[r * C + c];                                \
            double l = xent_ref_lse(xr, C);                                                      \
            lse[r] = (T)l;                                                                       \
            int64_t t = tg[r];                                                                   \
            if (t == ignore) { loss[r] = 0; wrow[r] = 0; continue; }                             \
            double wt = w ? w[t] : 1.0, sm = 0;                                                  \
            for (int64_t c = 0; c < C; c++) sm += (w ? w[c] : 1.0) * (l - xr[c]);                \
            loss[r] = (T)((1 - eps) * wt * (l - xr[t]) + eps / C * sm);                          \
            wrow[r] = (T)wt;                                                                     \
        }                                                                                        \
        free(xr);                                                                                \
    }                                                                                            \
    static void xent_bwd_ref_##SFX(T *dx, const T *x, const int64_t *tg, const T *w,            \
                                   const T *g, int64_t N, int64_t C, int64_t ignore, double eps, \
                                   int acc) {                                                    \
        double *xr = (double *)malloc(sizeof(double) * 2 * (size_t)C), *lp = xr + C;             \
        if (!xr) return;                                                                         \
        double W = 0;                                                                            \
        for (int64_t c = 0; c < C; c++) W += w ? w[c] : 1.0;                                     \
        for (int64_t r = 0; r < N; r++) {                                                        \
            int64_t t = tg[r];                                                                   \
            for (int64_t c = 0; c < C; c++) xr[c] = x[r * C + c];                                \
            xent_ref_logp(lp, xr, C);                                                            \
            double wt = (t == ignore) ? 0 : (w ? w[t] : 1.0);                                    \
            for (int64_t c = 0; c < C; c++) {                                                    \
                double d = 0;                                                                    \
                if (t != ignore) {                                                               \
                    double p = exp(lp[c]);                                                       \
                    d = g[r] * ((1 - eps) * wt * (p - (c == t ? 1.0 : 0.0)) +                    \
                                eps / C * (W * p - (w ? w[c] : 1.0)));                           \
                }                                                                                \
                dx[r * C + c] = (T)(acc ? dx[r * C + c] + d : d);                                \
            }                                                                                    \
        }                                                                                        \
        free(xr);                                                                                \
    }                                                                                            \
    static void xent_prob_fwd_ref_##SFX(T *loss, T *lse, const T *x, const T *tgt, const T *w,  \
                                        int64_t N, int64_t C, double eps) {                      \
        double *xr = (double *)malloc(sizeof(double) * 2 * (size_t)C), *lp = xr + C;             \
        if (!xr) return;                                                                         \
        for (int64_t r = 0; r < N; r++) {                                                        \
            for (int64_t c = 0; c < C; c++) xr[c] = x[r * C + c];                                \
            lse[r] = (T)xent_ref_lse(xr, C);                                                     \
            xent_ref_logp(lp, xr, C);                                                            \
            double s = 0;                                                                        \
            for (int64_t c = 0; c < C; c++)                                                      \
                s -= (w ? w[c] : 1.0) * ((1 - eps) * tgt[r * C + c] + eps / C) * lp[c];          \
            loss[r] = (T)s;                                                                      \
        }                                                                                        \
        free(xr);                                                                                \
    }                                                                                            \
    static void xent_prob_bwd_ref_##SFX(T *dx, const T *x, const T *tgt, const T *w,            \
                                        const T *g, int64_t N, int64_t C, double eps, int acc) { \
        double *xr = (double *)malloc(sizeof(double) * 2 * (size_t)C), *lp = xr + C;             \
        if (!xr) return;                                                                         \
        for (int64_t r = 0; r < N; r++) {                                                        \
            for (int64_t c = 0; c < C; c++) xr[c] = x[r * C + c];                                \
            xent_ref_logp(lp, xr, C);                                                            \
            double sq = 0;                                                                       \
            for (int64_t c = 0; c < C; c++)                                                      \
                sq += (w ? w[c] : 1.0) * ((1 - eps) * tgt[r * C + c] + eps / C);                 \
            for (int64_t c = 0; c < C; c++) {                                                    \
                double q = (w ? w[c] : 1.0) * ((1 - eps) * tgt[r * C + c] + eps / C);           \
                double d = g[r] * (exp(lp[c]) * sq - q);                                         \
                dx[r * C + c] = (T)(acc ? dx[r * C + c] + d : d);                                \
            }                                                                                    \
        }                                                                                        \
        free(xr);                                                                                \
    }
CE_XENT_REF(float, f32)
CE_XENT_REF(double, f64)

/* ---- row kernels per (ISA, dtype), generic included: ce_xent_*_rows_<isa>_<dtype> ---------- */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "softmax_tmpl.h"
#define CE_EACH_INC2 "loss_tmpl.h"   /* (with vmath_cvt.h and loss_bf16_tmpl.h at its end) */
#include "isa_each.h"

/* sum of the class weights (C when there are none), accumulated in double */
static double xent_wsum(const void *w, int f64, int64_t C) {
    if (!w) return (double)C;
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += f64 ? ((const double *)w)[c] : ((const float *)w)[c];
    return s;
}

/* prefetch the logits' rows ahead in software? For logits of more bytes than the streaming
 * threshold (a share of the last-level cache, see nn_util.h; 0 in the tests prefetches always),
 * whose rows come from memory: measured faster there and slightly slower on cache-resident ones
 * (loss_tmpl.h, xent_expsum_max and xent_bwd_row) */
static int xent_prefetch(int64_t bytes) { return bytes > ce_nn_stream_bytes; }

/* ---- public entry points: threads over rows, the instance for ce_isa on each chunk ------------ */
void ce_cross_entropy_fwd_f32(float *loss, float *lse, float *wrow, const float *x,
                              const int64_t *tg, const float *w, int64_t N, int64_t C,
                              int64_t ignore, double eps) {
    if (N <= 0 || C <= 0) return;
    const float W = (float)xent_wsum(w, 0, C);
    const int pf = xent_prefetch(N * C * (int64_t)sizeof(float));
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_fwd_rows, f32, loss, lse, wrow, x, tg, w, lo, hi, C, ignore,
                                  (float)eps, W, pf));
}

void ce_cross_entropy_fwd_f64(double *loss, double *lse, double *wrow, const double *x,
                              const int64_t *tg, const double *w, int64_t N, int64_t C,
                              int64_t ignore, double eps) {
    if (N <= 0 || C <= 0) return;
    const double W = xent_wsum(w, 1, C);
    const int pf = xent_prefetch(N * C * (int64_t)sizeof(double));
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_fwd_rows, f64, loss, lse, wrow, x, tg, w, lo, hi, C, ignore,
                                  eps, W, pf));
}

void ce_cross_entropy_bwd_f32(float *dx, const float *x, const int64_t *tg, const float *w,
                              const float *lse, const float *g, int64_t N, int64_t C,
                              int64_t ignore, double eps, int accumulate) {
    if (N <= 0 || C <= 0) return;
    const float W = (float)xent_wsum(w, 0, C);
    /* streamed only when every row is whole cache lines: rows that start and end inside a line
     * mix masked ordinary stores with the streamed lines, and measured slower streamed than
     * written through the cache (AMD Zen 4, [8192,1000] float32, 1 thread, paired: 6.3-6.9 ms
     * cached vs 7.3-9.1 streamed; [8192,1024]: 6.4-6.8 either way). Streaming the rows of a
     * chunk as one flat range (a row's last partial vector carried into the next row's first, no
     * partial line at all) was tried with the cheaper exp ([8192,1000], 1 thread, CPU time on
     * a loaded machine): 2.87 ms streamed vs 3.27 cached into a preallocated gradient, but 5.26
     * ms streamed into a freshly allocated one against 3.54 cached with the older exp (the API
     * case; presumably the kernel zeroing the new pages leaves them in the cache, where
     * ordinary stores hit), so it was not kept. */
    const int nts = ce_nn_stream(N * C * (int64_t)sizeof(float), C * (int64_t)sizeof(float)) &&
                    (C * (int64_t)sizeof(float)) % 64 == 0;
    const int pf = xent_prefetch(N * C * (int64_t)sizeof(float));
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_bwd_rows, f32, dx, x, tg, w, lse, g, lo, hi, C, ignore,
                                  (float)eps, W, accumulate, nts, pf));
}

void ce_cross_entropy_bwd_f64(double *dx, const double *x, const int64_t *tg, const double *w,
                              const double *lse, const double *g, int64_t N, int64_t C,
                              int64_t ignore, double eps, int accumulate) {
    if (N <= 0 || C <= 0) return;
    const double W = xent_wsum(w, 1, C);
    const int nts = ce_nn_stream(N * C * (int64_t)sizeof(double), C * (int64_t)sizeof(double)) &&
                    (C * (int64_t)sizeof(double)) % 64 == 0;
    const int pf = xent_prefetch(N * C * (int64_t)sizeof(double));
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_bwd_rows, f64, dx, x, tg, w, lse, g, lo, hi, C, ignore, eps,
                                  W, accumulate, nts, pf));
}

/* bfloat16 logits: rows widened into per-thread float32 buffers (one or two rows of C floats
 * per thread, allocated here: -1 when they could not be had) */
static float *xent_bf16_bufs(int64_t C, int nrow, int nt, size_t *per) {
    *per = ((size_t)C * (size_t)nrow + 15) / 16 * 16;
    return (float *)malloc(sizeof(float) * *per * (size_t)(nt > 1 ? nt : 1));
}

int ce_cross_entropy_fwd_bf16(float *loss, float *lse, float *wrow, const uint16_t *x,
                              const int64_t *tg, const float *w, int64_t N, int64_t C,
                              int64_t ignore, double eps) {
    if (N <= 0 || C <= 0) return 0;
    const float W = (float)xent_wsum(w, 0, C);
    const int nt = ce_nn_threads(N * C, CE_NN_MIN_WORK, N);
    size_t per;
    float *buf = xent_bf16_bufs(C, 1, nt, &per);
    if (!buf) return -1;
    /* (a chunk starting at 0 is the calling thread's or thread 0's; others have lo > 0) */
    CE_PAR_CHUNKS(N, nt, 1, CE_ISA_CALL(xent_fwd_rows_bf16, f32, loss, lse, wrow, x, tg, w, lo, hi,
                                        C, ignore, (float)eps, W,
                                        buf + (size_t)(lo ? CE_TID() : 0) * per));
    free(buf);
    return 0;
}

int ce_cross_entropy_bwd_bf16(uint16_t *dx, const uint16_t *x, const int64_t *tg, const float *w,
                              const float *lse, const float *g, int64_t N, int64_t C,
                              int64_t ignore, double eps) {
    if (N <= 0 || C <= 0) return 0;
    const float W = (float)xent_wsum(w, 0, C);
    const int nt = ce_nn_threads(N * C, CE_NN_MIN_WORK, N);
    size_t per;
    float *buf = xent_bf16_bufs(C, 2, nt, &per);
    if (!buf) return -1;
    CE_PAR_CHUNKS(N, nt, 1, {
        float *xb = buf + (size_t)(lo ? CE_TID() : 0) * per;
        CE_ISA_CALL(xent_bwd_rows_bf16, f32, dx, x, tg, w, lse, g, lo, hi, C, ignore, (float)eps,
                    W, xb, xb + C);
    });
    free(buf);
    return 0;
}

void ce_cross_entropy_prob_fwd_f32(float *loss, float *lse, const float *x, const float *tgt,
                                   const float *w, int64_t N, int64_t C, double eps) {
    if (N <= 0 || C <= 0) return;
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_prob_fwd_rows, f32, loss, lse, x, tgt, w, lo, hi, C,
                                  (float)eps));
}

void ce_cross_entropy_prob_fwd_f64(double *loss, double *lse, const double *x, const double *tgt,
                                   const double *w, int64_t N, int64_t C, double eps) {
    if (N <= 0 || C <= 0) return;
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_prob_fwd_rows, f64, loss, lse, x, tgt, w, lo, hi, C, eps));
}

void ce_cross_entropy_prob_bwd_f32(float *dx, const float *x, const float *tgt, const float *w,
                                   const float *lse, const float *g, int64_t N, int64_t C,
                                   double eps, int accumulate) {
    if (N <= 0 || C <= 0) return;
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_prob_bwd_rows, f32, dx, x, tgt, w, lse, g, lo, hi, C,
                                  (float)eps, accumulate));
}

void ce_cross_entropy_prob_bwd_f64(double *dx, const double *x, const double *tgt,
                                   const double *w, const double *lse, const double *g, int64_t N,
                                   int64_t C, double eps, int accumulate) {
    if (N <= 0 || C <= 0) return;
    CE_ROWS_PAR(N, C, CE_ISA_CALL(xent_prob_bwd_rows, f64, dx, x, tgt, w, lse, g, lo, hi, C, eps,
                                  accumulate));
}

void ce_cross_entropy_fwd_f32_ref(float *loss, float *lse, float *wrow, const float *x,
                                  const int64_t *tg, const float *w, int64_t N, int64_t C,
                                  int64_t ignore, double eps) {
    if (N > 0 && C > 0) xent_fwd_ref_f32(loss, lse, wrow, x, tg, w, N, C, ignore, eps);
}

void ce_cross_entropy_fwd_f64_ref(double *loss, double *lse, double *wrow, const double *x,
                                  const int64_t *tg, const double *w, int64_t N, int64_t C,
                                  int64_t ignore, double eps) {
    if (N > 0 && C > 0) xent_fwd_ref_f64(loss, lse, wrow, x, tg, w, N, C, ignore, eps);
}

void ce_cross_entropy_bwd_f32_ref(float *dx, const float *x, const int64_t *tg, const float *w,
                                  const float *lse, const float *g, int64_t N, int64_t C,
                                  int64_t ignore, double eps, int accumulate) {
    (void)lse;
    if (N > 0 && C > 0) xent_bwd_ref_f32(dx, x, tg, w, g, N, C, ignore, eps, accumulate);
}

void ce_cross_entropy_bwd_f64_ref(double *dx, const double *x, const int64_t *tg, const double *w,
                                  const double *lse, const double *g, int64_t N, int64_t C,
                                  int64_t ignore, double eps, int accumulate) {
    (void)lse;
    if (N > 0 && C > 0) xent_bwd_ref_f64(dx, x, tg, w, g, N, C, ignore, eps, accumulate);
}

/* bfloat16 references: the float32 references (double inside) on a float32 copy of the
 * logits; the gradient rounded once (the scalar conversions of vmath_cvt.h, as the cast's
 * reference: nearest even, NaN -> 0xffff) */
int ce_cross_entropy_fwd_bf16_ref(float *loss, float *lse, float *wrow, const uint16_t *x,
                                  const int64_t *tg, const float *w, int64_t N, int64_t C,
                                  int64_t ignore, double eps) {
    if (N <= 0 || C <= 0) return 0;
    float *xf = (float *)malloc(sizeof(float) * (size_t)(N * C));
    if (!xf) return -1;
    for (int64_t i = 0; i < N * C; i++) xf[i] = ce_h_bf16_val(x[i]);
    xent_fwd_ref_f32(loss, lse, wrow, xf, tg, w, N, C, ignore, eps);
    free(xf);
    return 0;
}

int ce_cross_entropy_bwd_bf16_ref(uint16_t *dx, const uint16_t *x, const int64_t *tg,
                                  const float *w, const float *lse, const float *g, int64_t N,
                                  int64_t C, int64_t ignore, double eps) {
    (void)lse;
    if (N <= 0 || C <= 0) return 0;
    float *xf = (float *)malloc(sizeof(float) * 2 * (size_t)(N * C));
    if (!xf) return -1;
    float *df = xf + N * C;
    for (int64_t i = 0; i < N * C; i++) xf[i] = ce_h_bf16_val(x[i]);
    xent_bwd_ref_f32(df, xf, tg, w, g, N, C, ignore, eps, 0);
    for (int64_t i = 0; i < N * C; i++) dx[i] = ce_h_bf16_bits(df[i]);
    free(xf);
    return 0;
}

void ce_cross_entropy_prob_fwd_f32_ref(float *loss, float *lse, const float *x, const float *tgt,
                                       const float *w, int64_t N, int64_t C, double eps) {
    if (N > 0 && C > 0) xent_prob_fwd_ref_f32(loss, lse, x, tgt, w, N, C, eps);
}

void ce_cross_entropy_prob_fwd_f64_ref(double *loss, double *lse, const double *x,
                                       const double *tgt, const double *w, int64_t N, int64_t C,
                                       double eps) {
    if (N > 0 && C > 0) xent_prob_fwd_ref_f64(loss, lse, x, tgt, w, N, C, eps);
}

void ce_cross_entropy_prob_bwd_f32_ref(float *dx, const float *x, const float *tgt,
                                       const float *w, const float *lse, const float *g, int64_t N,
                                       int64_t C, double eps, int accumulate) {
    (void)lse;
    if (N > 0 && C > 0) xent_prob_bwd_ref_f32(dx, x, tgt, w, g, N, C, eps, accumulate);
}

void ce_cross_entropy_prob_bwd_f64_ref(double *dx, const double *x, const double *tgt,
                                       const double *w, const double *lse, const double *g,
                                       int64_t N, int64_t C, double eps, int accumulate) {
    (void)lse;
    if (N > 0 && C > 0) xent_prob_bwd_ref_f64(dx, x, tgt, w, g, N, C, eps, accumulate);
}
