/* batchnorm.c - BatchNorm over (N, C, S) planes: batch statistics, the affine pass and the
 * training backward; and the per-channel plane sums of the convolution's bias gradient
 * (contracts in conv.h).
 *
 * Paths: avx512, avx2 and generic are the batchnorm_tmpl.h kernels over vmath.h, instantiated
 * per (ISA, dtype) by isa_each.h (generic = the one-lane scalar instance) and picked from
 * ce_isa; *_ref are the plain loops below, one thread, written independently of the template.
 * Threads split channels (statistics, backward) or planes (apply) with a static schedule; a
 * channel's sums run in a fixed order (plane by plane, plane partials added in double), so
 * results do not depend on the thread count. */
#include <math.h>
#include "nn_util.h"

#define CE_BN_MIN_WORK 65536

#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "batchnorm_tmpl.h"
#include "isa_each.h"

static inline int bn_threads(int64_t work, int64_t items) {
    return ce_nn_threads(work, CE_BN_MIN_WORK, items);
}

/* ---- references: one element at a time ---- */
#define CE_BN_REF(T, SFX)                                                                      \
    static void bn_stats_ref_##SFX(T *mean, T *var, const T *x, int64_t N, int64_t C,         \
                                   int64_t S) {                                                \
        for (int64_t c = 0; c < C; c++) {                                                      \
            double s = 0, v = 0, M = (double)(N * S);                                          \
            for (int64_t n = 0; n < N; n++)                                                    \
                for (int64_t i = 0; i < S; i++) s += x[(n * C + c) * S + i];                   \
            double m = s / M;                                                                  \
            for (int64_t n = 0; n < N; n++)                                                    \
                for (int64_t i = 0; i < S; i++) {                                              \
                    double d = x[(n * C + c) * S + i] - m;                                     \
                    v += d * d;                                                                \
                }                                                                              \
            mean[c] = (T)m;                                                                    \
            var[c] = (T)(v / M);                                                               \
        }                                                                                      \
    }                                                                                          \
    static void bn_apply_ref_##SFX(T *y, const T *x, const T *a, const T *b, int64_t N,       \
                                   int64_t C, int64_t S) {                                     \
        for (int64_t n = 0; n < N; n++)                                                        \
            for (int64_t c = 0; c < C; c++)                                                    \
                for (int64_t i = 0; i < S; i++)                                                \
                    y[(n * C + c) * S + i] = x[(n * C + c) * S + i] * a[c] + b[c];             \
    }                                                                                          \
    static void bn_bwd_ref_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x, const T *mean,  \
                                 const T *rstd, const T *w, int64_t N, int64_t C, int64_t S) { \
        for (int64_t c = 0; c < C; c++) {                                                      \
            double sdy = 0, sdyx = 0, M = (double)(N * S);                                     \
            for (int64_t n = 0; n < N; n++)                                                    \
                for (int64_t i = 0; i < S; i++) {                                              \
                    int64_t k = (n * C + c) * S + i;                                           \
                    sdy += dy[k];                                                              \
                    sdyx += (double)dy[k] * (x[k] - mean[c]) * rstd[c];                        \
                }                                                                              \
            if (dw) dw[c] += (T)sdyx;                                                          \
            if (db) db[c] += (T)sdy;                                                           \
            if (!dx) continue;                                                                 \
            double g = (w ? w[c] : 1.0) * rstd[c];                                             \
            for (int64_t n = 0; n < N; n++)                                                    \
                for (int64_t i = 0; i < S; i++) {                                              \
                    int64_t k = (n * C + c) * S + i;                                           \
                    double xh = (x[k] - mean[c]) * rstd[c];                                    \
                    dx[k] = (T)(g * (dy[k] - sdy / M - xh * sdyx / M));                        \
                }                                                                              \
        }                                                                                      \
    }
CE_BN_REF(float, f32)
CE_BN_REF(double, f64)

#define CE_CONV_BGRAD_REF(T, SFX)                                                              \
    static void conv_bias_grad_ref_##SFX(T *db, const T *dy, int64_t N, int64_t O, int64_t L) { \
        for (int64_t o = 0; o < O; o++) {                                                      \
            double s = 0;                                                                      \
            for (int64_t n = 0; n < N; n++)                                                    \
                for (int64_t l = 0; l < L; l++) s += (double)dy[(n * O + o) * L + l];          \
            db[o] += (T)s;                                                                     \
        }                                                                                      \
    }
CE_CONV_BGRAD_REF(float, f32)
CE_CONV_BGRAD_REF(double, f64)

/* ---- threaded entry points ---- */
#define CE_BN_STATS_BODY(SFX)                                                                  \
    int th = bn_threads(N * C * S, C);                                                         \
    _Pragma("omp parallel for schedule(static) num_threads(th)")                               \
    for (int64_t c = 0; c < C; c++) CE_ISA_CALL(bn_stats_ch, SFX, mean, var, x, N, C, S, c);
#define CE_BN_APPLY_BODY(SFX)                                                                  \
    CE_PAR_CHUNKS(N * C, bn_threads(N * C * S, N * C), 1,                                      \
                  CE_ISA_CALL(bn_apply_planes, SFX, y, x, a, b, lo, hi, C, S));
#define CE_BN_BWD_BODY(SFX)                                                                    \
    int th = bn_threads(N * C * S, C);                                                         \
    _Pragma("omp parallel for schedule(static) num_threads(th)")                               \
    for (int64_t c = 0; c < C; c++)                                                            \
        CE_ISA_CALL(bn_bwd_ch, SFX, dx, dw, db, dy, x, mean, rstd, w, N, C, S, c);

void ce_bn_stats_f32(float *mean, float *var, const float *x, int64_t N, int64_t C, int64_t S) {
    CE_BN_STATS_BODY(f32)
}
void ce_bn_stats_f64(double *mean, double *var, const double *x, int64_t N, int64_t C,
                     int64_t S) {
    CE_BN_STATS_BODY(f64)
}
void ce_bn_apply_f32(float *y, const float *x, const float *a, const float *b, int64_t N,
                     int64_t C, int64_t S) {
    CE_BN_APPLY_BODY(f32)
}
void ce_bn_apply_f64(double *y, const double *x, const double *a, const double *b, int64_t N,
                     int64_t C, int64_t S) {
    CE_BN_APPLY_BODY(f64)
}
void ce_bn_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x,
                   const float *mean, const float *rstd, const float *w, int64_t N, int64_t C,
                   int64_t S) {
    CE_BN_BWD_BODY(f32)
}
void ce_bn_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x,
                   const double *mean, const double *rstd, const double *w, int64_t N, int64_t C,
                   int64_t S) {
    CE_BN_BWD_BODY(f64)
}

#define CE_CONV_BGRAD_BODY(SFX)                                                                \
    int th = bn_threads(N * O * L, O);                                                         \
    _Pragma("omp parallel for schedule(static) num_threads(th)")                               \
    for (int64_t o = 0; o < O; o++) CE_ISA_CALL(chan_sum_add, SFX, db, dy, N, O, L, o);

void ce_conv_bias_grad_f32(float *db, const float *dy, int64_t N, int64_t O, int64_t L) {
    CE_CONV_BGRAD_BODY(f32)
}
void ce_conv_bias_grad_f64(double *db, const double *dy, int64_t N, int64_t O, int64_t L) {
    CE_CONV_BGRAD_BODY(f64)
}
void ce_conv_bias_grad_f32_ref(float *db, const float *dy, int64_t N, int64_t O, int64_t L) {
    conv_bias_grad_ref_f32(db, dy, N, O, L);
}
void ce_conv_bias_grad_f64_ref(double *db, const double *dy, int64_t N, int64_t O, int64_t L) {
    conv_bias_grad_ref_f64(db, dy, N, O, L);
}

void ce_bn_stats_f32_ref(float *mean, float *var, const float *x, int64_t N, int64_t C,
                         int64_t S) {
    bn_stats_ref_f32(mean, var, x, N, C, S);
}
void ce_bn_stats_f64_ref(double *mean, double *var, const double *x, int64_t N, int64_t C,
                         int64_t S) {
    bn_stats_ref_f64(mean, var, x, N, C, S);
}
void ce_bn_apply_f32_ref(float *y, const float *x, const float *a, const float *b, int64_t N,
                         int64_t C, int64_t S) {
    bn_apply_ref_f32(y, x, a, b, N, C, S);
}
void ce_bn_apply_f64_ref(double *y, const double *x, const double *a, const double *b,
                         int64_t N, int64_t C, int64_t S) {
    bn_apply_ref_f64(y, x, a, b, N, C, S);
}
void ce_bn_bwd_f32_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *mean, const float *rstd, const float *w, int64_t N,
                       int64_t C, int64_t S) {
    bn_bwd_ref_f32(dx, dw, db, dy, x, mean, rstd, w, N, C, S);
}
void ce_bn_bwd_f64_ref(double *dx, double *dw, double *db, const double *dy, const double *x,
                       const double *mean, const double *rstd, const double *w, int64_t N,
                       int64_t C, int64_t S) {
    bn_bwd_ref_f64(dx, dw, db, dy, x, mean, rstd, w, N, C, S);
}
