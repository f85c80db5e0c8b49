/* conv.c - im2col / col2im packers, dy packing and bias passes for the GEMM-based convolution,
 * and the BatchNorm-over-planes kernels (contracts in conv.h).
 *
 * The packers move whole output rows: for a kernel tap (ki, kj) and output row oh the input
 * columns read are iw = ow*sw + (kj*dw - pw), so the valid ow form one range [lo, hi) computed
 * once per tap; stride 1 rows are one memcpy. Threads split (image, channel) pairs: each pair
 * owns its KH*KW rows segment of col (im2col) or its input plane of dx (col2im), so there are
 * no races and the accumulation order of col2im is fixed. */
#include <math.h>
#include <string.h>
#include "cengine.h"

#define CE_CONV_MIN_WORK 32768

/* valid output columns [*lo, *hi) for input offset off = kj*dw - pw: 0 <= ow*sw + off < W */
static inline void ow_range(int64_t off, int64_t sw, int64_t W, int64_t OW, int64_t *lo,
                            int64_t *hi) {
    int64_t a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t b = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
    if (b > OW) b = OW;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

#define CE_DEF_PACK(T, SFX)                                                                    \
    static void im2col_one_##SFX(T *col, const T *xp, int64_t n, int64_t c, int64_t H,         \
                                 int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW,     \
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,    \
                                 int64_t dw, int64_t ldcol) {                                   \
        int64_t L = OH * OW;                                                                   \
        for (int64_t ki = 0; ki < KH; ki++)                                                    \
            for (int64_t kj = 0; kj < KW; kj++) {                                              \
                T *row = col + ((c * KH + ki) * KW + kj) * ldcol + n * L;                      \
                int64_t off = kj * dw - pw, lo, hi;                                            \
                ow_range(off, sw, W, OW, &lo, &hi);                                            \
                for (int64_t oh = 0; oh < OH; oh++) {                                          \
                    T *dst = row + oh * OW;                                                    \
                    int64_t ih = oh * sh - ph + ki * dh;                                       \
                    if (ih < 0 || ih >= H) {                                                   \
                        memset(dst, 0, (size_t)OW * sizeof(T));                                \
                        continue;                                                              \
                    }                                                                          \
                    const T *src = xp + ih * W + off;                                          \
                    for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;                           \
                    if (sw == 1)                                                               \
                        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(T));             \
                    else                                                                       \
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * sw];           \
                    for (int64_t ow = hi; ow < OW; ow++) dst[ow] = 0;                          \
                }                                                                              \
            }                                                                                  \
    }                                                                                          \
    static void col2im_one_##SFX(T *dxp, const T *col, int64_t n, int64_t c, int64_t H,        \
                                 int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW,     \
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,    \
                                 int64_t dw, int64_t ldcol) {                                   \
        int64_t L = OH * OW;                                                                   \
        for (int64_t ki = 0; ki < KH; ki++)                                                    \
            for (int64_t kj = 0; kj < KW; kj++) {                                              \
                const T *row = col + ((c * KH + ki) * KW + kj) * ldcol + n * L;                \
                int64_t off = kj * dw - pw, lo, hi;                                            \
                ow_range(off, sw, W, OW, &lo, &hi);                                            \
                for (int64_t oh = 0; oh < OH; oh++) {                                          \
                    int64_t ih = oh * sh - ph + ki * dh;                                       \
                    if (ih < 0 || ih >= H) continue;                                           \
                    const T *src = row + oh * OW;                                              \
                    T *dst = dxp + ih * W + off;                                               \
                    if (sw == 1)                                                               \
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] += src[ow];               \
                    else                                                                       \
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow * sw] += src[ow];          \
                }                                                                              \
            }                                                                                  \
    }                                                                                          \
    static void im2col_##SFX(T *col, const T *x, int64_t nt, int64_t C, int64_t H, int64_t W,  \
                             int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh,        \
                             int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,        \
                             int64_t ldcol) {                                                   \
        int64_t items = nt * C;                                                                \
        int th = ce_threads_for(items * KH * KW * OH * OW, CE_CONV_MIN_WORK);                  \
        if (th > items) th = (int)items;                                                       \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++) {                                               \
            int64_t n = it / C, c = it % C;                                                    \
            im2col_one_##SFX(col, x + it * H * W, n, c, H, W, KH, KW, OH, OW, sh, sw, ph, pw,  \
                             dh, dw, ldcol);                                                   \
        }                                                                                      \
    }                                                                                          \
    static void col2im_##SFX(T *dx, const T *col, int64_t nt, int64_t C, int64_t H, int64_t W, \
                             int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh,        \
                             int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,        \
                             int64_t ldcol) {                                                   \
        int64_t items = nt * C;                                                                \
        int th = ce_threads_for(items * KH * KW * OH * OW, CE_CONV_MIN_WORK);                  \
        if (th > items) th = (int)items;                                                       \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++) {                                               \
            int64_t n = it / C, c = it % C;                                                    \
            col2im_one_##SFX(dx + it * H * W, col, n, c, H, W, KH, KW, OH, OW, sh, sw, ph, pw, \
                             dh, dw, ldcol);                                                   \
        }                                                                                      \
    }                                                                                          \
    /* references: one element at a time, every bound tested */                                \
    static void im2col_ref_##SFX(T *col, const T *x, int64_t nt, int64_t C, int64_t H,        \
                                 int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW,     \
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,    \
                                 int64_t dw, int64_t ldcol) {                                   \
        for (int64_t n = 0; n < nt; n++)                                                       \
            for (int64_t c = 0; c < C; c++)                                                    \
                for (int64_t ki = 0; ki < KH; ki++)                                            \
                    for (int64_t kj = 0; kj < KW; kj++)                                        \
                        for (int64_t oh = 0; oh < OH; oh++)                                    \
                            for (int64_t ow = 0; ow < OW; ow++) {                              \
                                int64_t ih = oh * sh - ph + ki * dh;                           \
                                int64_t iw = ow * sw - pw + kj * dw;                           \
                                T v = (ih >= 0 && ih < H && iw >= 0 && iw < W)                 \
                                          ? x[((n * C + c) * H + ih) * W + iw]                 \
                                          : (T)0;                                              \
                                col[((c * KH + ki) * KW + kj) * ldcol + n * OH * OW +          \
                                    oh * OW + ow] = v;                                         \
                            }                                                                  \
    }                                                                                          \
    static void col2im_ref_##SFX(T *dx, const T *col, int64_t nt, int64_t C, int64_t H,        \
                                 int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW,     \
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,    \
                                 int64_t dw, int64_t ldcol) {                                   \
        for (int64_t n = 0; n < nt; n++)                                                       \
            for (int64_t c = 0; c < C; c++)                                                    \
                for (int64_t ki = 0; ki < KH; ki++)                                            \
                    for (int64_t kj = 0; kj < KW; kj++)                                        \
                        for (int64_t oh = 0; oh < OH; oh++)                                    \
                            for (int64_t ow = 0; ow < OW; ow++) {                              \
                                int64_t ih = oh * sh - ph + ki * dh;                           \
                                int64_t iw = ow * sw - pw + kj * dw;                           \
                                if (ih >= 0 && ih < H && iw >= 0 && iw < W)                    \
                                    dx[((n * C + c) * H + ih) * W + iw] +=                     \
                                        col[((c * KH + ki) * KW + kj) * ldcol +                \
                                            n * OH * OW + oh * OW + ow];                       \
                            }                                                                  \
    }                                                                                          \
    static void pack_dy_##SFX(T *dyt, const T *dy, int64_t nt, int64_t O, int64_t L,           \
                              int64_t ldcol) {                                                  \
        int64_t items = nt * O;                                                                \
        int th = ce_threads_for(items * L, CE_CONV_MIN_WORK * 4);                              \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++) {                                               \
            int64_t o = it / nt, n = it % nt;                                                  \
            memcpy(dyt + o * ldcol + n * L, dy + (n * O + o) * L, (size_t)L * sizeof(T));      \
        }                                                                                      \
    }                                                                                          \
    static void bias_add_##SFX(T *y, const T *b, int64_t N, int64_t O, int64_t L) {            \
        int64_t items = N * O;                                                                 \
        int th = ce_threads_for(items * L, CE_CONV_MIN_WORK * 4);                              \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++) {                                               \
            T v = b[it % O], *p = y + it * L;                                                  \
            for (int64_t l = 0; l < L; l++) p[l] += v;                                         \
        }                                                                                      \
    }                                                                                          \
    static void bias_grad_##SFX(T *db, const T *dy, int64_t N, int64_t O, int64_t L) {         \
        int th = ce_threads_for(N * O * L, CE_CONV_MIN_WORK * 4);                              \
        if (th > O) th = (int)(O < 1 ? 1 : O);                                                 \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t o = 0; o < O; o++) {                                                      \
            double s = 0;                                                                      \
            for (int64_t n = 0; n < N; n++) {                                                  \
                const T *p = dy + (n * O + o) * L;                                             \
                T part = 0;                                                                    \
                for (int64_t l = 0; l < L; l++) part += p[l];                                  \
                s += (double)part;                                                             \
            }                                                                                  \
            db[o] += (T)s;                                                                     \
        }                                                                                      \
    }

CE_DEF_PACK(float, f32)
CE_DEF_PACK(double, f64)

#define CE_PACK_ARGS_DECL(T) int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, \
    int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, \
    int64_t ldcol
#define CE_PACK_ARGS nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol

void ce_im2col_f32(float *col, const float *x, CE_PACK_ARGS_DECL(float)) {
    im2col_f32(col, x, CE_PACK_ARGS);
}
void ce_im2col_f64(double *col, const double *x, CE_PACK_ARGS_DECL(double)) {
    im2col_f64(col, x, CE_PACK_ARGS);
}
void ce_im2col_f32_ref(float *col, const float *x, CE_PACK_ARGS_DECL(float)) {
    im2col_ref_f32(col, x, CE_PACK_ARGS);
}
void ce_im2col_f64_ref(double *col, const double *x, CE_PACK_ARGS_DECL(double)) {
    im2col_ref_f64(col, x, CE_PACK_ARGS);
}
void ce_col2im_f32(float *dx, const float *col, CE_PACK_ARGS_DECL(float)) {
    col2im_f32(dx, col, CE_PACK_ARGS);
}
void ce_col2im_f64(double *dx, const double *col, CE_PACK_ARGS_DECL(double)) {
    col2im_f64(dx, col, CE_PACK_ARGS);
}
void ce_col2im_f32_ref(float *dx, const float *col, CE_PACK_ARGS_DECL(float)) {
    col2im_ref_f32(dx, col, CE_PACK_ARGS);
}
void ce_col2im_f64_ref(double *dx, const double *col, CE_PACK_ARGS_DECL(double)) {
    col2im_ref_f64(dx, col, CE_PACK_ARGS);
}
void ce_conv_pack_dy_f32(float *dyt, const float *dy, int64_t nt, int64_t O, int64_t L,
                         int64_t ldcol) {
    pack_dy_f32(dyt, dy, nt, O, L, ldcol);
}
void ce_conv_pack_dy_f64(double *dyt, const double *dy, int64_t nt, int64_t O, int64_t L,
                         int64_t ldcol) {
    pack_dy_f64(dyt, dy, nt, O, L, ldcol);
}
void ce_conv_bias_add_f32(float *y, const float *b, int64_t N, int64_t O, int64_t L) {
    bias_add_f32(y, b, N, O, L);
}
void ce_conv_bias_add_f64(double *y, const double *b, int64_t N, int64_t O, int64_t L) {
    bias_add_f64(y, b, N, O, L);
}
void ce_conv_bias_grad_f32(float *db, const float *dy, int64_t N, int64_t O, int64_t L) {
    bias_grad_f32(db, dy, N, O, L);
}
void ce_conv_bias_grad_f64(double *db, const double *dy, int64_t N, int64_t O, int64_t L) {
    bias_grad_f64(db, dy, N, O, L);
}

/* ---- BatchNorm over (N, C, S): threads split channels; each channel's sums run in a fixed
 * order (image by image, plane partial sums in T, image sums in double) ---- */
#define CE_DEF_BN(T, SFX)                                                                      \
    static void bn_stats_##SFX(T *mean, T *var, const T *x, int64_t N, int64_t C, int64_t S) { \
        int th = ce_threads_for(N * C * S, CE_CONV_MIN_WORK * 2);                              \
        if (th > C) th = (int)(C < 1 ? 1 : C);                                                 \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t c = 0; c < C; c++) {                                                      \
            double s = 0, M = (double)(N * S);                                                 \
            for (int64_t n = 0; n < N; n++) {                                                  \
                const T *p = x + (n * C + c) * S;                                              \
                T part = 0;                                                                    \
                for (int64_t i = 0; i < S; i++) part += p[i];                                  \
                s += (double)part;                                                             \
            }                                                                                  \
            double m = s / M, v = 0;                                                           \
            T mt = (T)m;                                                                       \
            for (int64_t n = 0; n < N; n++) {                                                  \
                const T *p = x + (n * C + c) * S;                                              \
                T part = 0;                                                                    \
                for (int64_t i = 0; i < S; i++) {                                              \
                    T d = p[i] - mt;                                                           \
                    part += d * d;                                                             \
                }                                                                              \
                v += (double)part;                                                             \
            }                                                                                  \
            mean[c] = mt;                                                                      \
            var[c] = (T)(v / M);                                                               \
        }                                                                                      \
    }                                                                                          \
    static void bn_apply_##SFX(T *y, const T *x, const T *a, const T *b, int64_t N, int64_t C, \
                               int64_t S) {                                                    \
        int64_t items = N * C;                                                                 \
        int th = ce_threads_for(items * S, CE_CONV_MIN_WORK * 4);                              \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++) {                                               \
            T av = a[it % C], bv = b[it % C];                                                  \
            const T *p = x + it * S;                                                           \
            T *q = y + it * S;                                                                 \
            for (int64_t i = 0; i < S; i++) q[i] = p[i] * av + bv;                             \
        }                                                                                      \
    }                                                                                          \
    static void bn_bwd_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x, const T *mean,      \
                             const T *rstd, const T *w, int64_t N, int64_t C, int64_t S) {     \
        int th = ce_threads_for(N * C * S, CE_CONV_MIN_WORK * 2);                              \
        if (th > C) th = (int)(C < 1 ? 1 : C);                                                 \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t c = 0; c < C; c++) {                                                      \
            double sdy = 0, sdyx = 0, M = (double)(N * S);                                     \
            T m = mean[c], r = rstd[c];                                                        \
            for (int64_t n = 0; n < N; n++) {                                                  \
                const T *p = x + (n * C + c) * S, *g = dy + (n * C + c) * S;                   \
                T a0 = 0, a1 = 0;                                                              \
                for (int64_t i = 0; i < S; i++) {                                              \
                    a0 += g[i];                                                                \
                    a1 += g[i] * (p[i] - m);                                                   \
                }                                                                              \
                sdy += (double)a0;                                                             \
                sdyx += (double)a1;                                                            \
            }                                                                                  \
            sdyx *= (double)r;                                                                 \
            if (dw) dw[c] += (T)sdyx;                                                          \
            if (db) db[c] += (T)sdy;                                                           \
            if (dx) {                                                                          \
                T k = (w ? w[c] : (T)1) * r, mdy = (T)(sdy / M), mdyx = (T)(sdyx / M);         \
                for (int64_t n = 0; n < N; n++) {                                              \
                    const T *p = x + (n * C + c) * S, *g = dy + (n * C + c) * S;               \
                    T *q = dx + (n * C + c) * S;                                               \
                    for (int64_t i = 0; i < S; i++)                                            \
                        q[i] = k * (g[i] - mdy - (p[i] - m) * r * mdyx);                       \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

CE_DEF_BN(float, f32)
CE_DEF_BN(double, f64)

void ce_bn_stats_f32(float *mean, float *var, const float *x, int64_t N, int64_t C, int64_t S) {
    bn_stats_f32(mean, var, x, N, C, S);
}
void ce_bn_stats_f64(double *mean, double *var, const double *x, int64_t N, int64_t C,
                     int64_t S) {
    bn_stats_f64(mean, var, x, N, C, S);
}
void ce_bn_apply_f32(float *y, const float *x, const float *a, const float *b, int64_t N,
                     int64_t C, int64_t S) {
    bn_apply_f32(y, x, a, b, N, C, S);
}
void ce_bn_apply_f64(double *y, const double *x, const double *a, const double *b, int64_t N,
                     int64_t C, int64_t S) {
    bn_apply_f64(y, x, a, b, N, C, S);
}
void ce_bn_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x,
                   const float *mean, const float *rstd, const float *w, int64_t N, int64_t C,
                   int64_t S) {
    bn_bwd_f32(dx, dw, db, dy, x, mean, rstd, w, N, C, S);
}
void ce_bn_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x,
                   const double *mean, const double *rstd, const double *w, int64_t N, int64_t C,
                   int64_t S) {
    bn_bwd_f64(dx, dw, db, dy, x, mean, rstd, w, N, C, S);
}
