/* pool.c - max / average / adaptive pooling over planes, forward and backward (contracts in
 * conv.h). Threads split the P = N*C planes with a static schedule; a plane's outputs (and, in
 * backward, its input gradient) belong to one thread and are computed in a fixed order, so the
 * results do not depend on the thread count. The 2x2 stride-2 max pool (the classic CNN's) has
 * its own branch-light loop. */
#include <math.h>
#include <string.h>
#include "cengine.h"

#define CE_POOL_MIN_WORK 16384

static inline int pool_threads(int64_t P, int64_t work) {
    int th = ce_threads_for(work, CE_POOL_MIN_WORK);
    if (th > P) th = (int)(P < 1 ? 1 : P);
    return th;
}
static inline int64_t ad_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static inline int64_t ad_end(int64_t i, int64_t in, int64_t out) {
    return ((i + 1) * in + out - 1) / out;
}

#define CE_DEF_POOL(T, SFX)                                                                    \
    static void maxpool_plane_##SFX(T *y, int64_t *idx, const T *x, int64_t H, int64_t W,      \
                                    int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, \
                                    int64_t sw, int64_t ph, int64_t pw, int64_t dh,            \
                                    int64_t dw) {                                              \
        if (KH == 2 && KW == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 &&       \
            dw == 1 && 2 * OH <= H && 2 * OW <= W) {                                           \
            for (int64_t oh = 0; oh < OH; oh++) {                                              \
                const T *r0 = x + 2 * oh * W, *r1 = r0 + W;                                    \
                T *yr = y + oh * OW;                                                           \
                int64_t *ir = idx + oh * OW, b0 = 2 * oh * W;                                  \
                /* selects, not branches: random data makes the comparisons unpredictable */  \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];  \
                    T m = a;                                                                   \
                    int64_t k = 0;                                                             \
                    int sb = (b > m) | (b != b);                                               \
                    m = sb ? b : m;                                                            \
                    k = sb ? 1 : k;                                                            \
                    int sc = (c > m) | (c != c);                                               \
                    m = sc ? c : m;                                                            \
                    k = sc ? W : k;                                                            \
                    int sd = (d > m) | (d != d);                                               \
                    m = sd ? d : m;                                                            \
                    k = sd ? W + 1 : k;                                                        \
                    yr[ow] = m;                                                                \
                    ir[ow] = b0 + 2 * ow + k;                                                  \
                }                                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t oh = 0; oh < OH; oh++) {                                                  \
            int64_t h0 = oh * sh - ph;                                                         \
            for (int64_t ow = 0; ow < OW; ow++) {                                              \
                int64_t w0 = ow * sw - pw;                                                     \
                T m = -INFINITY;                                                               \
                int64_t bi = -1;                                                               \
                for (int64_t ki = 0; ki < KH; ki++) {                                          \
                    int64_t ih = h0 + ki * dh;                                                 \
                    if (ih < 0 || ih >= H) continue;                                           \
                    for (int64_t kj = 0; kj < KW; kj++) {                                      \
                        int64_t iw = w0 + kj * dw;                                             \
                        if (iw < 0 || iw >= W) continue;                                       \
                        T v = x[ih * W + iw];                                                  \
                        if (bi < 0) bi = ih * W + iw;                                          \
                        if (v > m || v != v) {                                                 \
                            m = v;                                                             \
                            bi = ih * W + iw;                                                  \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
                y[oh * OW + ow] = m;                                                           \
                idx[oh * OW + ow] = bi < 0 ? 0 : bi;                                           \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void maxpool_##SFX(T *y, int64_t *idx, const T *x, int64_t P, int64_t H, int64_t W, \
                              int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,       \
                              int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {     \
        int th = pool_threads(P, P * OH * OW * KH * KW);                                       \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t p = 0; p < P; p++)                                                        \
            maxpool_plane_##SFX(y + p * OH * OW, idx + p * OH * OW, x + p * H * W, H, W, OH,   \
                                OW, KH, KW, sh, sw, ph, pw, dh, dw);                           \
    }                                                                                          \
    static void maxpool_ref_##SFX(T *y, int64_t *idx, const T *x, int64_t P, int64_t H,        \
                                  int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW,    \
                                  int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,   \
                                  int64_t dw) {                                                 \
        for (int64_t p = 0; p < P; p++)                                                        \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    T m = -INFINITY;                                                           \
                    int64_t bi = -1;                                                           \
                    for (int64_t ki = 0; ki < KH; ki++)                                        \
                        for (int64_t kj = 0; kj < KW; kj++) {                                  \
                            int64_t ih = oh * sh - ph + ki * dh, iw = ow * sw - pw + kj * dw;  \
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;              \
                            T v = x[(p * H + ih) * W + iw];                                    \
                            if (bi < 0) bi = ih * W + iw;                                      \
                            if (v > m || isnan(v)) {                                           \
                                m = v;                                                         \
                                bi = ih * W + iw;                                              \
                            }                                                                  \
                        }                                                                      \
                    y[(p * OH + oh) * OW + ow] = m;                                            \
                    idx[(p * OH + oh) * OW + ow] = bi < 0 ? 0 : bi;                            \
                }                                                                              \
    }                                                                                          \
    static void scatter_##SFX(T *dx, const T *dy, const int64_t *idx, int64_t P, int64_t HW,   \
                              int64_t OL) {                                                     \
        int th = pool_threads(P, P * OL);                                                      \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t p = 0; p < P; p++) {                                                      \
            T *d = dx + p * HW;                                                                \
            const T *g = dy + p * OL;                                                          \
            const int64_t *ix = idx + p * OL;                                                  \
            for (int64_t i = 0; i < OL; i++) d[ix[i]] += g[i];                                 \
        }                                                                                      \
    }                                                                                          \
    /* window of output (oh, ow): rows [*h0,*h1), cols [*w0,*w1) and its divisor */            \
    static inline T avg_win_##SFX(int64_t oh, int64_t ow, int64_t H, int64_t W, int64_t KH,    \
                                  int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,   \
                                  int64_t cip, int64_t divisor, int64_t *h0, int64_t *h1,       \
                                  int64_t *w0, int64_t *w1) {                                   \
        int64_t a = oh * sh - ph, b = ow * sw - pw;                                            \
        int64_t ae = a + KH < H + ph ? a + KH : H + ph, be = b + KW < W + pw ? b + KW : W + pw; \
        int64_t pool = (ae - a) * (be - b);                                                    \
        if (a < 0) a = 0;                                                                      \
        if (b < 0) b = 0;                                                                      \
        if (ae > H) ae = H;                                                                    \
        if (be > W) be = W;                                                                    \
        *h0 = a; *h1 = ae; *w0 = b; *w1 = be;                                                  \
        int64_t d = divisor > 0 ? divisor : (cip ? pool : (ae - a) * (be - b));                \
        return (T)d;                                                                           \
    }                                                                                          \
    static void avgpool_##SFX(T *y, const T *x, int64_t P, int64_t H, int64_t W, int64_t OH,   \
                              int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw,       \
                              int64_t ph, int64_t pw, int64_t cip, int64_t divisor, int ref) { \
        int th = ref ? 1 : pool_threads(P, P * OH * OW * KH * KW);                             \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t p = 0; p < P; p++) {                                                      \
            const T *xp = x + p * H * W;                                                       \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t h0, h1, w0, w1;                                                    \
                    T d = avg_win_##SFX(oh, ow, H, W, KH, KW, sh, sw, ph, pw, cip, divisor,    \
                                        &h0, &h1, &w0, &w1);                                   \
                    T s = 0;                                                                   \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) s += xp[i * W + j];                  \
                    y[(p * OH + oh) * OW + ow] = s / d;                                        \
                }                                                                              \
        }                                                                                      \
    }                                                                                          \
    static void avgpool_bwd_##SFX(T *dx, const T *dy, int64_t P, int64_t H, int64_t W,         \
                                  int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,   \
                                  int64_t sw, int64_t ph, int64_t pw, int64_t cip,              \
                                  int64_t divisor) {                                            \
        int th = pool_threads(P, P * OH * OW * KH * KW);                                       \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t p = 0; p < P; p++) {                                                      \
            T *dp = dx + p * H * W;                                                            \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t h0, h1, w0, w1;                                                    \
                    T d = avg_win_##SFX(oh, ow, H, W, KH, KW, sh, sw, ph, pw, cip, divisor,    \
                                        &h0, &h1, &w0, &w1);                                   \
                    T g = dy[(p * OH + oh) * OW + ow] / d;                                     \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) dp[i * W + j] += g;                  \
                }                                                                              \
        }                                                                                      \
    }                                                                                          \
    static void adavg_##SFX(T *y, const T *x, int64_t P, int64_t H, int64_t W, int64_t OH,     \
                            int64_t OW) {                                                       \
        int th = pool_threads(P, P * H * W);                                                   \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t p = 0; p < P; p++) {                                                      \
            const T *xp = x + p * H * W;                                                       \
            for (int64_t oh = 0; oh < OH; oh++) {                                              \
                int64_t h0 = ad_start(oh, H, OH), h1 = ad_end(oh, H, OH);                      \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t w0 = ad_start(ow, W, OW), w1 = ad_end(ow, W, OW);                  \
                    T s = 0;                                                                   \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) s += xp[i * W + j];                  \
                    y[(p * OH + oh) * OW + ow] = s / (T)((h1 - h0) * (w1 - w0));               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void adavg_bwd_##SFX(T *dx, const T *dy, int64_t P, int64_t H, int64_t W,           \
                                int64_t OH, int64_t OW) {                                      \
        int th = pool_threads(P, P * H * W);                                                   \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t p = 0; p < P; p++) {                                                      \
            T *dp = dx + p * H * W;                                                            \
            for (int64_t oh = 0; oh < OH; oh++) {                                              \
                int64_t h0 = ad_start(oh, H, OH), h1 = ad_end(oh, H, OH);                      \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t w0 = ad_start(ow, W, OW), w1 = ad_end(ow, W, OW);                  \
                    T g = dy[(p * OH + oh) * OW + ow] / (T)((h1 - h0) * (w1 - w0));            \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) dp[i * W + j] += g;                  \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void admax_##SFX(T *y, int64_t *idx, const T *x, int64_t P, int64_t H, int64_t W,   \
                            int64_t OH, int64_t OW) {                                          \
        int th = pool_threads(P, P * H * W);                                                   \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t p = 0; p < P; p++) {                                                      \
            const T *xp = x + p * H * W;                                                       \
            for (int64_t oh = 0; oh < OH; oh++) {                                              \
                int64_t h0 = ad_start(oh, H, OH), h1 = ad_end(oh, H, OH);                      \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t w0 = ad_start(ow, W, OW), w1 = ad_end(ow, W, OW);                  \
                    T m = -INFINITY;                                                           \
                    int64_t bi = h0 * W + w0;                                                  \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) {                                    \
                            T v = xp[i * W + j];                                               \
                            if (v > m || v != v) {                                             \
                                m = v;                                                         \
                                bi = i * W + j;                                                \
                            }                                                                  \
                        }                                                                      \
                    y[(p * OH + oh) * OW + ow] = m;                                            \
                    idx[(p * OH + oh) * OW + ow] = bi;                                         \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

CE_DEF_POOL(float, f32)
CE_DEF_POOL(double, f64)

#define CE_MP_DECL int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, \
    int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw
#define CE_MP_ARGS P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw
void ce_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, CE_MP_DECL) {
    maxpool_f32(y, idx, x, CE_MP_ARGS);
}
void ce_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, CE_MP_DECL) {
    maxpool_f64(y, idx, x, CE_MP_ARGS);
}
void ce_maxpool2d_fwd_f32_ref(float *y, int64_t *idx, const float *x, CE_MP_DECL) {
    maxpool_ref_f32(y, idx, x, CE_MP_ARGS);
}
void ce_maxpool2d_fwd_f64_ref(double *y, int64_t *idx, const double *x, CE_MP_DECL) {
    maxpool_ref_f64(y, idx, x, CE_MP_ARGS);
}
void ce_pool_scatter_bwd_f32(float *dx, const float *dy, const int64_t *idx, int64_t P,
                             int64_t HW, int64_t OL) {
    scatter_f32(dx, dy, idx, P, HW, OL);
}
void ce_pool_scatter_bwd_f64(double *dx, const double *dy, const int64_t *idx, int64_t P,
                             int64_t HW, int64_t OL) {
    scatter_f64(dx, dy, idx, P, HW, OL);
}

#define CE_AP_DECL int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, \
    int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor
#define CE_AP_ARGS P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, cip, divisor
void ce_avgpool2d_fwd_f32(float *y, const float *x, CE_AP_DECL) {
    avgpool_f32(y, x, CE_AP_ARGS, 0);
}
void ce_avgpool2d_fwd_f64(double *y, const double *x, CE_AP_DECL) {
    avgpool_f64(y, x, CE_AP_ARGS, 0);
}
void ce_avgpool2d_fwd_f32_ref(float *y, const float *x, CE_AP_DECL) {
    avgpool_f32(y, x, CE_AP_ARGS, 1);
}
void ce_avgpool2d_fwd_f64_ref(double *y, const double *x, CE_AP_DECL) {
    avgpool_f64(y, x, CE_AP_ARGS, 1);
}
void ce_avgpool2d_bwd_f32(float *dx, const float *dy, CE_AP_DECL) {
    avgpool_bwd_f32(dx, dy, CE_AP_ARGS);
}
void ce_avgpool2d_bwd_f64(double *dx, const double *dy, CE_AP_DECL) {
    avgpool_bwd_f64(dx, dy, CE_AP_ARGS);
}
void ce_adaptive_avgpool2d_fwd_f32(float *y, const float *x, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW) {
    adavg_f32(y, x, P, H, W, OH, OW);
}
void ce_adaptive_avgpool2d_fwd_f64(double *y, const double *x, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW) {
    adavg_f64(y, x, P, H, W, OH, OW);
}
void ce_adaptive_avgpool2d_bwd_f32(float *dx, const float *dy, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW) {
    adavg_bwd_f32(dx, dy, P, H, W, OH, OW);
}
void ce_adaptive_avgpool2d_bwd_f64(double *dx, const double *dy, int64_t P, int64_t H,
                                   int64_t W, int64_t OH, int64_t OW) {
    adavg_bwd_f64(dx, dy, P, H, W, OH, OW);
}
void ce_adaptive_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, int64_t P, int64_t H,
                                   int64_t W, int64_t OH, int64_t OW) {
    admax_f32(y, idx, x, P, H, W, OH, OW);
}
void ce_adaptive_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, int64_t P,
                                   int64_t H, int64_t W, int64_t OH, int64_t OW) {
    admax_f64(y, idx, x, P, H, W, OH, OW);
}
