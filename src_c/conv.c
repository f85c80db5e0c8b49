/* conv.c - im2col / col2im packers, dy packing and bias passes for the GEMM-based convolution,
 * and the stride-1 drivers (contracts in conv.h; BatchNorm is in batchnorm.c).
 *
 * The packers move whole output rows: for a kernel tap (ki, kj) and output row oh the input
 * columns read are iw = ow*sw + (kj*dw - pw), so the valid ow form one range [lo, hi) computed
 * once per tap; stride 1 rows are one memcpy. Threads split (image, channel) pairs: each pair
 * owns its KH*KW rows segment of col (im2col) or its input plane of dx (col2im), so there are
 * no races and the accumulation order of col2im is fixed. */
#include <math.h>
#include <string.h>
#include "cengine.h"
#ifdef _OPENMP
#include <omp.h>
#endif

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
    /* one (image n, channel c) pair: fold == 0 unfolds the image plane img into its KH*KW   \
     * rows of col (padding -> 0), fold == 1 adds those rows of col back into the plane */    \
    static void unfold_one_##SFX(T *col, T *img, int fold, int64_t n, int64_t c, int64_t H,    \
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
                    T *cr = row + oh * OW;                                                     \
                    int64_t ih = oh * sh - ph + ki * dh;                                       \
                    if (ih < 0 || ih >= H) {                                                   \
                        if (!fold) memset(cr, 0, (size_t)OW * sizeof(T));                      \
                        continue;                                                              \
                    }                                                                          \
                    T *ir = img + ih * W + off;                                                \
                    if (fold) {                                                                \
                        for (int64_t ow = lo; ow < hi; ow++) ir[ow * sw] += cr[ow];            \
                        continue;                                                              \
                    }                                                                          \
                    for (int64_t ow = 0; ow < lo; ow++) cr[ow] = 0;                            \
                    if (sw == 1)                                                               \
                        memcpy(cr + lo, ir + lo, (size_t)(hi - lo) * sizeof(T));               \
                    else                                                                       \
                        for (int64_t ow = lo; ow < hi; ow++) cr[ow] = ir[ow * sw];             \
                    for (int64_t ow = hi; ow < OW; ow++) cr[ow] = 0;                           \
                }                                                                              \
            }                                                                                  \
    }                                                                                          \
    /* images (nt,C,H,W) <-> col: (image, channel) pairs split over threads, each owning its   \
     * rows of col (unfold) or its plane (fold) */                                             \
    static void unfold_##SFX(T *col, T *img, int fold, int64_t nt, int64_t C, int64_t H,       \
                             int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW,         \
                             int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,        \
                             int64_t dw, int64_t ldcol) {                                       \
        int64_t items = nt * C;                                                                \
        int th = ce_threads_for(items * KH * KW * OH * OW, CE_CONV_MIN_WORK);                  \
        if (th > items) th = (int)items;                                                       \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++)                                                 \
            unfold_one_##SFX(col, img + it * H * W, fold, it / C, it % C, H, W, KH, KW, OH,    \
                             OW, sh, sw, ph, pw, dh, dw, ldcol);                               \
    }                                                                                          \
    static void im2col_##SFX(T *col, const T *x, int64_t nt, int64_t C, int64_t H, int64_t W,  \
                             int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh,        \
                             int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,        \
                             int64_t ldcol) {                                                   \
        unfold_##SFX(col, (T *)x, 0, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw,      \
                     ldcol);                                                                   \
    }                                                                                          \
    static void col2im_##SFX(T *dx, const T *col, int64_t nt, int64_t C, int64_t H, int64_t W, \
                             int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh,        \
                             int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,        \
                             int64_t ldcol) {                                                   \
        unfold_##SFX((T *)col, dx, 1, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw,     \
                     ldcol);                                                                   \
    }                                                                                          \
    /* reference of both directions: one element at a time, every bound tested */              \
    static void unfold_ref_##SFX(T *col, T *img, int fold, int64_t nt, int64_t C, int64_t H,   \
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
                                int in = ih >= 0 && ih < H && iw >= 0 && iw < W;               \
                                T *e = col + ((c * KH + ki) * KW + kj) * ldcol +               \
                                       n * OH * OW + oh * OW + ow;                             \
                                int64_t v = ((n * C + c) * H + ih) * W + iw;                   \
                                if (fold) {                                                    \
                                    if (in) img[v] += *e;                                      \
                                } else {                                                       \
                                    *e = in ? img[v] : (T)0;                                   \
                                }                                                              \
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
    unfold_ref_f32(col, (float *)x, 0, CE_PACK_ARGS);
}
void ce_im2col_f64_ref(double *col, const double *x, CE_PACK_ARGS_DECL(double)) {
    unfold_ref_f64(col, (double *)x, 0, CE_PACK_ARGS);
}
void ce_col2im_f32(float *dx, const float *col, CE_PACK_ARGS_DECL(float)) {
    col2im_f32(dx, col, CE_PACK_ARGS);
}
void ce_col2im_f64(double *dx, const double *col, CE_PACK_ARGS_DECL(double)) {
    col2im_f64(dx, col, CE_PACK_ARGS);
}
void ce_col2im_f32_ref(float *dx, const float *col, CE_PACK_ARGS_DECL(float)) {
    unfold_ref_f32((float *)col, dx, 1, CE_PACK_ARGS);
}
void ce_col2im_f64_ref(double *dx, const double *col, CE_PACK_ARGS_DECL(double)) {
    unfold_ref_f64((double *)col, dx, 1, CE_PACK_ARGS);
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
/* ---- whole-layer drivers -------------------------------------------------------------------
 * Threads over chunks only when the GEMM calls inside become single-threaded (nested regions
 * inactive, the OpenMP default); otherwise chunks run in turn and every kernel threads. */
static int chunk_threads(int64_t nchunks, int64_t work) {
    int th = ce_par_threads(work, CE_CONV_MIN_WORK * 8);
    if (th > nchunks) th = (int)nchunks;
#ifdef _OPENMP
    if (omp_get_max_active_levels() > 1) th = 1;
#endif
    return th < 1 ? 1 : th;
}
#ifdef _OPENMP
#define CE_CONV_TID() omp_get_thread_num()
#define CE_CONV_NTEAM() omp_get_num_threads()
#else
#define CE_CONV_TID() 0
#define CE_CONV_NTEAM() 1
#endif

#define CE_DEF_DRIVER(T, SFX, GEMM)                                                            \
    static void conv_fwd_chunk_##SFX(T *y, T *col, const T *x, const T *w, const T *b,         \
                                     const ce_conv_geom_t *g, int64_t n0, int64_t m) {         \
        int64_t L = g->OH * g->OW, Og = g->O / g->G, Cg = g->C / g->G;                         \
        int64_t CgKK = Cg * g->KH * g->KW, ldcol = m * L;                                      \
        im2col_##SFX(col, x + n0 * g->C * g->H * g->W, m, g->C, g->H, g->W, g->KH, g->KW,      \
                     g->OH, g->OW, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, ldcol);           \
        /* y[n, grp] (Og, L) = W[grp] (Og, CgKK) @ col[grp][:, n*L : (n+1)*L] */               \
        GEMM(m, g->G, Og, L, CgKK, 1, w, 0, Og * CgKK, CgKK, 1, col, L, CgKK * ldcol, ldcol, 1, \
             0, y + n0 * g->O * L, g->O * L, Og * L, L, 1, NULL, 0);                            \
        if (b) bias_add_##SFX(y + n0 * g->O * L, b, m, g->O, L);                               \
    }                                                                                          \
    static void conv_fwd_##SFX(T *y, T *ws, const T *x, const T *w, const T *b,                \
                               const ce_conv_geom_t *g, int64_t per, int64_t wsz) {             \
        int64_t nch = (g->N + per - 1) / per;                                                  \
        int th = chunk_threads(nch, g->N * g->O * g->OH * g->OW * g->C / g->G * g->KH * g->KW); \
        /* th == 1: chunks in turn with every kernel threaded (an inactive region); else one  \
         * chunk per thread at a time on its own slice of ws */                                \
        _Pragma("omp parallel for schedule(dynamic, 1) num_threads(th) if(th > 1)")            \
        for (int64_t c = 0; c < nch; c++) {                                                    \
            int64_t n0 = c * per, m = g->N - n0 < per ? g->N - n0 : per;                       \
            conv_fwd_chunk_##SFX(y, ws + (th > 1 ? (int64_t)CE_CONV_TID() * wsz : 0), x, w, b, \
                                 g, n0, m);                                                    \
        }                                                                                      \
    }                                                                                          \
    static void conv_bwd_chunk_##SFX(T *dx, T *dwc, T *col, T *dyt, const T *dy, const T *x,   \
                                     const T *w, const ce_conv_geom_t *g, int64_t n0,          \
                                     int64_t m, T beta) {                                       \
        int64_t L = g->OH * g->OW, Og = g->O / g->G, Cg = g->C / g->G;                         \
        int64_t CgKK = Cg * g->KH * g->KW, ldcol = m * L;                                      \
        pack_dy_##SFX(dyt, dy + n0 * g->O * L, m, g->O, L, ldcol);                             \
        if (dwc) {                                                                             \
            im2col_##SFX(col, x + n0 * g->C * g->H * g->W, m, g->C, g->H, g->W, g->KH, g->KW,  \
                         g->OH, g->OW, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, ldcol);       \
            /* dW[grp] (Og, CgKK) = beta*dW + dyt[grp] (Og, m*L) @ col[grp]^T (m*L, CgKK) */   \
            GEMM(g->G, 1, Og, CgKK, ldcol, 1, dyt, Og * ldcol, 0, ldcol, 1, col, CgKK * ldcol, \
                 0, 1, ldcol, beta, dwc, Og * CgKK, 0, CgKK, 1, NULL, 0);                      \
        }                                                                                      \
        if (dx) {                                                                              \
            /* col[grp] (CgKK, m*L) = W[grp]^T (CgKK, Og) @ dyt[grp] (Og, m*L), then fold */   \
            GEMM(g->G, 1, CgKK, ldcol, Og, 1, w, Og * CgKK, 0, 1, CgKK, dyt, Og * ldcol, 0,    \
                 ldcol, 1, 0, col, CgKK * ldcol, 0, ldcol, 1, NULL, 0);                         \
            col2im_##SFX(dx + n0 * g->C * g->H * g->W, col, m, g->C, g->H, g->W, g->KH, g->KW, \
                         g->OH, g->OW, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, ldcol);       \
        }                                                                                      \
    }                                                                                          \
    static void conv_bwd_##SFX(T *dx, T *dwp, T *ws, const T *dy, const T *x, const T *w,     \
                               const ce_conv_geom_t *g, int64_t per, int64_t wsz, int acc) {    \
        int64_t nch = (g->N + per - 1) / per, L = g->OH * g->OW;                               \
        int64_t D = g->O * (g->C / g->G) * g->KH * g->KW, colsz = g->C * g->KH * g->KW * per * L; \
        int th = acc ? 1 : chunk_threads(nch, g->N * L * D);                                   \
        _Pragma("omp parallel for schedule(dynamic, 1) num_threads(th) if(th > 1)")            \
        for (int64_t c = 0; c < nch; c++) {                                                    \
            int64_t n0 = c * per, m = g->N - n0 < per ? g->N - n0 : per;                       \
            T *wt = ws + (th > 1 ? (int64_t)CE_CONV_TID() * wsz : 0);                          \
            T *dwc = !dwp ? NULL : acc ? dwp : dwp + c * D;                                    \
            conv_bwd_chunk_##SFX(dx, dwc, wt, wt + colsz, dy, x, w, g, n0, m,                  \
                                 (T)(acc && c > 0 ? 1 : 0));                                   \
        }                                                                                      \
    }                                                                                          \
    static void sum_parts_##SFX(T *dw, const T *parts, int64_t nch, int64_t D) {               \
        int th = ce_threads_for(nch * D, CE_CONV_MIN_WORK * 4);                                \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t i = 0; i < D; i++) {                                                      \
            T s = dw[i];                                                                       \
            for (int64_t c = 0; c < nch; c++) s += parts[c * D + i];                           \
            dw[i] = s;                                                                         \
        }                                                                                      \
    }

CE_DEF_DRIVER(float, f32, ce_sgemm)
CE_DEF_DRIVER(double, f64, ce_dgemm)

void ce_conv2d_fwd_f32(float *y, float *ws, const float *x, const float *w, const float *b,
                       const ce_conv_geom_t *g, int64_t per, int64_t wsz) {
    conv_fwd_f32(y, ws, x, w, b, g, per, wsz);
}
void ce_conv2d_fwd_f64(double *y, double *ws, const double *x, const double *w,
                       const double *b, const ce_conv_geom_t *g, int64_t per, int64_t wsz) {
    conv_fwd_f64(y, ws, x, w, b, g, per, wsz);
}
void ce_conv2d_bwd_f32(float *dx, float *dwp, float *ws, const float *dy, const float *x,
                       const float *w, const ce_conv_geom_t *g, int64_t per, int64_t wsz,
                       int dw_accumulate) {
    conv_bwd_f32(dx, dwp, ws, dy, x, w, g, per, wsz, dw_accumulate);
}
void ce_conv2d_bwd_f64(double *dx, double *dwp, double *ws, const double *dy, const double *x,
                       const double *w, const ce_conv_geom_t *g, int64_t per, int64_t wsz,
                       int dw_accumulate) {
    conv_bwd_f64(dx, dwp, ws, dy, x, w, g, per, wsz, dw_accumulate);
}
void ce_conv_sum_parts_f32(float *dw, const float *parts, int64_t nchunks, int64_t D) {
    sum_parts_f32(dw, parts, nchunks, D);
}
void ce_conv_sum_parts_f64(double *dw, const double *parts, int64_t nchunks, int64_t D) {
    sum_parts_f64(dw, parts, nchunks, D);
}

/* ---- transposes for the stride-1 drivers: d[j*ldd + c] = s[c*lds + j], c < nc, j < nj ----
 * 8x8 (float) / 4x4 (double) register tiles on AVX2 and up, plain loops for the edges and the
 * generic path */
#include <immintrin.h>
__attribute__((target(CE_TARGET_AVX2))) static void tr_tile_f32_avx2(float *d, int64_t ldd,
                                                                    const float *s, int64_t lds) {
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds);
    __m256 r2 = _mm256_loadu_ps(s + 2 * lds), r3 = _mm256_loadu_ps(s + 3 * lds);
    __m256 r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds);
    __m256 r6 = _mm256_loadu_ps(s + 6 * lds), r7 = _mm256_loadu_ps(s + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
__attribute__((target(CE_TARGET_AVX2))) static void tr_tile_f64_avx2(double *d, int64_t ldd,
                                                                    const double *s, int64_t lds) {
    __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
    __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(d + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(d + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(d + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#define CE_DEF_TR(T, SFX, B)                                                                   \
    static void tr_##SFX(T *d, int64_t ldd, const T *s, int64_t lds, int64_t nc, int64_t nj) { \
        int64_t c0 = 0, j0;                                                                    \
        if (ce_isa >= CE_ISA_AVX2)                                                             \
            for (; c0 + B <= nc; c0 += B)                                                      \
                for (j0 = 0; j0 + B <= nj; j0 += B)                                            \
                    tr_tile_##SFX##_avx2(d + j0 * ldd + c0, ldd, s + c0 * lds + j0, lds);      \
        /* what the tiles left: columns j0.. of the tiled channel rows, then the other rows */ \
        int64_t jt = ce_isa >= CE_ISA_AVX2 ? nj / B * B : 0;                                   \
        for (int64_t c = 0; c < c0; c++)                                                       \
            for (int64_t j = jt; j < nj; j++) d[j * ldd + c] = s[c * lds + j];                 \
        for (int64_t j = 0; j < nj; j++)                                                       \
            for (int64_t c = c0; c < nc; c++) d[j * ldd + c] = s[c * lds + j];                 \
    }
CE_DEF_TR(float, f32, 8)
CE_DEF_TR(double, f64, 4)

/* ---- stride-1 drivers: shifted GEMMs over a channels-last zero-padded grid (conv_s1_tmpl.h) */
#define CE_T float
#define CE_SFX f32
#define CE_S1_LP s
#define CE_S1_UP S
#include "conv_s1_tmpl.h"
#undef CE_T
#undef CE_SFX
#undef CE_S1_LP
#undef CE_S1_UP
#define CE_T double
#define CE_SFX f64
#define CE_S1_LP d
#define CE_S1_UP D
#include "conv_s1_tmpl.h"
#undef CE_T
#undef CE_SFX
#undef CE_S1_LP
#undef CE_S1_UP

int64_t ce_conv2d_s1_ws(const ce_conv_geom_t *g, int bwd, int need_dx, int need_dw,
                        int64_t parts_elems, int nthreads) {
    return s1_ws_f32(g, bwd, need_dx, need_dw, parts_elems, nthreads);
}
void ce_conv2d_s1_fwd_f32(float *y, float *ws, const float *x, const float *w, const float *b,
                          const ce_conv_geom_t *g) {
    s1_fwd_f32(y, ws, x, w, b, g);
}
void ce_conv2d_s1_fwd_f64(double *y, double *ws, const double *x, const double *w,
                          const double *b, const ce_conv_geom_t *g) {
    s1_fwd_f64(y, ws, x, w, b, g);
}
void ce_conv2d_s1_bwd_f32(float *dx, float *dw, float *ws, const float *dy, const float *x,
                          const float *xg, const float *w, const ce_conv_geom_t *g,
                          int64_t parts_elems, int dx_accumulate) {
    s1_bwd_f32(dx, dw, ws, dy, x, xg, w, g, parts_elems, dx_accumulate);
}
void ce_conv2d_s1_bwd_f64(double *dx, double *dw, double *ws, const double *dy, const double *x,
                          const double *xg, const double *w, const ce_conv_geom_t *g,
                          int64_t parts_elems, int dx_accumulate) {
    s1_bwd_f64(dx, dw, ws, dy, x, xg, w, g, parts_elems, dx_accumulate);
}

/* ---- exact borders: outputs whose window touches the padding, over the real terms only ----
 * (the drivers multiply the padding's zeros too: exact unless the weight holds an inf or NaN,
 * where 0 * inf = NaN appears although the convolution has no such term) */
#define CE_DEF_BORDER(T, SFX)                                                                  \
    static int nonfinite_##SFX(const T *v, int64_t n) {                                        \
        int bad = 0;                                                                           \
        for (int64_t i = 0; i < n; i++) bad |= !isfinite(v[i]);                                \
        return bad;                                                                            \
    }                                                                                          \
    static void fwd_border_##SFX(T *y, const T *x, const T *w, const T *b,                     \
                                 const ce_conv_geom_t *g) {                                    \
        const int64_t Cg = g->C / g->G, Og = g->O / g->G, KH = g->KH, KW = g->KW;              \
        const int64_t OH = g->OH, OW = g->OW, H = g->H, W = g->W, items = g->N * OH;           \
        int th = ce_threads_for(items * OW * g->O, CE_CONV_MIN_WORK);                          \
        if (th > items) th = (int)(items < 1 ? 1 : items);                                     \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++) {                                               \
            int64_t n = it / OH, oh = it % OH, ih0 = oh * g->sh - g->ph;                       \
            int rowin = ih0 >= 0 && ih0 + (KH - 1) * g->dh < H;                                \
            for (int64_t ow = 0; ow < OW; ow++) {                                              \
                int64_t iw0 = ow * g->sw - g->pw;                                              \
                if (rowin && iw0 >= 0 && iw0 + (KW - 1) * g->dw < W) continue;                 \
                for (int64_t o = 0; o < g->O; o++) {                                           \
                    double s = b ? (double)b[o] : 0.0;                                         \
                    int64_t c0 = (o / Og) * Cg;                                                \
                    for (int64_t c = 0; c < Cg; c++)                                           \
                        for (int64_t ki = 0; ki < KH; ki++) {                                  \
                            int64_t ih = ih0 + ki * g->dh;                                     \
                            if (ih < 0 || ih >= H) continue;                                   \
                            for (int64_t kj = 0; kj < KW; kj++) {                              \
                                int64_t iw = iw0 + kj * g->dw;                                 \
                                if (iw < 0 || iw >= W) continue;                               \
                                s += (double)x[((n * g->C + c0 + c) * H + ih) * W + iw] *      \
                                     (double)w[((o * Cg + c) * KH + ki) * KW + kj];            \
                            }                                                                  \
                        }                                                                      \
                    y[((n * g->O + o) * OH + oh) * OW + ow] = (T)s;                            \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    /* stride 1: dx positions some tap of which falls outside dy, recomputed (overwritten) */ \
    static void dgrad_border_##SFX(T *dx, const T *dy, const T *w, const ce_conv_geom_t *g) {  \
        const int64_t Cg = g->C / g->G, Og = g->O / g->G, KH = g->KH, KW = g->KW;              \
        const int64_t OH = g->OH, OW = g->OW, H = g->H, W = g->W, items = g->N * H;            \
        int th = ce_threads_for(items * W * g->C, CE_CONV_MIN_WORK);                           \
        if (th > items) th = (int)(items < 1 ? 1 : items);                                     \
        _Pragma("omp parallel for schedule(static) num_threads(th)")                           \
        for (int64_t it = 0; it < items; it++) {                                               \
            int64_t n = it / H, ih = it % H, a0 = ih + g->ph;   /* oh = a0 - ki*dh */          \
            int rowin = a0 - (KH - 1) * g->dh >= 0 && a0 < OH;                                 \
            for (int64_t iw = 0; iw < W; iw++) {                                               \
                int64_t b0 = iw + g->pw;                                                       \
                if (rowin && b0 - (KW - 1) * g->dw >= 0 && b0 < OW) continue;                  \
                for (int64_t ci = 0; ci < g->C; ci++) {                                        \
                    double s = 0;                                                              \
                    int64_t grp = ci / Cg, c = ci % Cg;                                        \
                    for (int64_t o = grp * Og; o < (grp + 1) * Og; o++)                        \
                        for (int64_t ki = 0; ki < KH; ki++) {                                  \
                            int64_t oh = a0 - ki * g->dh;                                      \
                            if (oh < 0 || oh >= OH) continue;                                  \
                            for (int64_t kj = 0; kj < KW; kj++) {                              \
                                int64_t ow = b0 - kj * g->dw;                                  \
                                if (ow < 0 || ow >= OW) continue;                              \
                                s += (double)dy[((n * g->O + o) * OH + oh) * OW + ow] *        \
                                     (double)w[((o * Cg + c) * KH + ki) * KW + kj];            \
                            }                                                                  \
                        }                                                                      \
                    dx[((n * g->C + ci) * H + ih) * W + iw] = (T)s;                            \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }
CE_DEF_BORDER(float, f32)
CE_DEF_BORDER(double, f64)
int ce_conv_nonfinite_f32(const float *v, int64_t n) { return nonfinite_f32(v, n); }
int ce_conv_nonfinite_f64(const double *v, int64_t n) { return nonfinite_f64(v, n); }
void ce_conv2d_fwd_border_f32(float *y, const float *x, const float *w, const float *b,
                              const ce_conv_geom_t *g) {
    fwd_border_f32(y, x, w, b, g);
}
void ce_conv2d_fwd_border_f64(double *y, const double *x, const double *w, const double *b,
                              const ce_conv_geom_t *g) {
    fwd_border_f64(y, x, w, b, g);
}
void ce_conv2d_dgrad_border_f32(float *dx, const float *dy, const float *w,
                                const ce_conv_geom_t *g) {
    dgrad_border_f32(dx, dy, w, g);
}
void ce_conv2d_dgrad_border_f64(double *dx, const double *dy, const double *w,
                                const ce_conv_geom_t *g) {
    dgrad_border_f64(dx, dy, w, g);
}

/* ---- plain references of the whole convolution (one group or several), term by term over
 * the real taps only, double accumulators, one thread ---- */
#define CE_DEF_CONV_REF(T, SFX)                                                                \
    static void conv_ref_fwd_##SFX(T *y, const T *x, const T *w, const T *b,                   \
                                   const ce_conv_geom_t *g) {                                  \
        int64_t Cg = g->C / g->G, Og = g->O / g->G;                                            \
        for (int64_t n = 0; n < g->N; n++)                                                     \
            for (int64_t o = 0; o < g->O; o++)                                                 \
                for (int64_t oh = 0; oh < g->OH; oh++)                                         \
                    for (int64_t ow = 0; ow < g->OW; ow++) {                                   \
                        double s = b ? (double)b[o] : 0.0;                                     \
                        int64_t c0 = (o / Og) * Cg;                                            \
                        for (int64_t c = 0; c < Cg; c++)                                       \
                            for (int64_t ki = 0; ki < g->KH; ki++)                             \
                                for (int64_t kj = 0; kj < g->KW; kj++) {                       \
                                    int64_t ih = oh * g->sh - g->ph + ki * g->dh;              \
                                    int64_t iw = ow * g->sw - g->pw + kj * g->dw;              \
                                    if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue; \
                                    s += (double)x[((n * g->C + c0 + c) * g->H + ih) * g->W + iw] * \
                                         (double)w[((o * Cg + c) * g->KH + ki) * g->KW + kj];  \
                                }                                                              \
                        y[((n * g->O + o) * g->OH + oh) * g->OW + ow] = (T)s;                  \
                    }                                                                          \
    }                                                                                          \
    static void conv_ref_dgrad_##SFX(T *dx, const T *dy, const T *w, const ce_conv_geom_t *g) { \
        int64_t Cg = g->C / g->G, Og = g->O / g->G;                                            \
        for (int64_t n = 0; n < g->N; n++)                                                     \
            for (int64_t ci = 0; ci < g->C; ci++)                                              \
                for (int64_t ih = 0; ih < g->H; ih++)                                          \
                    for (int64_t iw = 0; iw < g->W; iw++) {                                    \
                        double s = 0;                                                          \
                        int64_t grp = ci / Cg, c = ci % Cg;                                    \
                        for (int64_t o = grp * Og; o < (grp + 1) * Og; o++)                    \
                            for (int64_t ki = 0; ki < g->KH; ki++)                             \
                                for (int64_t kj = 0; kj < g->KW; kj++) {                       \
                                    int64_t a = ih + g->ph - ki * g->dh;                       \
                                    int64_t bb = iw + g->pw - kj * g->dw;                      \
                                    if (a < 0 || bb < 0 || a % g->sh || bb % g->sw) continue;  \
                                    a /= g->sh;                                                \
                                    bb /= g->sw;                                               \
                                    if (a >= g->OH || bb >= g->OW) continue;                   \
                                    s += (double)dy[((n * g->O + o) * g->OH + a) * g->OW + bb] * \
                                         (double)w[((o * Cg + c) * g->KH + ki) * g->KW + kj];  \
                                }                                                              \
                        dx[((n * g->C + ci) * g->H + ih) * g->W + iw] += (T)s;                 \
                    }                                                                          \
    }
CE_DEF_CONV_REF(float, f32)
CE_DEF_CONV_REF(double, f64)
void ce_conv2d_fwd_f32_ref(float *y, const float *x, const float *w, const float *b,
                           const ce_conv_geom_t *g) {
    conv_ref_fwd_f32(y, x, w, b, g);
}
void ce_conv2d_fwd_f64_ref(double *y, const double *x, const double *w, const double *b,
                           const ce_conv_geom_t *g) {
    conv_ref_fwd_f64(y, x, w, b, g);
}
void ce_conv2d_dgrad_f32_ref(float *dx, const float *dy, const float *w,
                             const ce_conv_geom_t *g) {
    conv_ref_dgrad_f32(dx, dy, w, g);
}
void ce_conv2d_dgrad_f64_ref(double *dx, const double *dy, const double *w,
                             const ce_conv_geom_t *g) {
    conv_ref_dgrad_f64(dx, dy, w, g);
}
