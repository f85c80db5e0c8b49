/* pool.c - max / average / adaptive pooling over planes, forward and backward (contracts in
 * conv.h).
 *
 * Paths: avx512, avx2 and generic are the pool_tmpl.h plane kernels over vmath.h, instantiated
 * per (ISA, dtype) by isa_each.h (generic = the one-lane scalar instance) and picked from ce_isa:
 * every pool is separable, so a vectorised pass over the window's rows is followed by a short
 * pass over its columns. *_ref are the plain window loops below, one thread. The drivers
 * compute each output row's and column's taps once per call (ce_pool_axis_t) and split the
 * P = N*C planes over threads with a static schedule; a plane belongs to one thread and is
 * computed in a fixed order, so results do not depend on the thread count. The index scatter
 * of the max-pool backward is a plain loop (a scatter has nothing to vectorise). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn_util.h"

#define CE_POOL_MIN_WORK 16384

/* the taps of one axis: output o reads inputs s[o] + k*step, k < n[o] (all inside the input);
 * e[o] is the window's extent inside the padded input (count_include_pad's divisor). For the
 * max pools' columns also the gather tables of the column pass, which works on blocks of rb
 * output rows (a few hundred outputs, a few thousand inputs): for output o = r*O + c of a
 * block (r < rb, c < O) and tap k < ntap (= max n, at least 1), tapj[k*ld + o] = the column
 * s[c] + k*step for k < n[c], else s[c] (0 when n[c] == 0), and tapc[k*ld + o] =
 * r*W + tapj[k*ld + o] (its place in the block's row-pass buffer); ld = rb*O rounded up to 16
 * (the widest vector), 0 in the padding lanes. NULL/0 elsewhere. */
typedef struct {
    const int64_t *s, *n, *e;
    int64_t step;
    const int32_t *tapc, *tapj;
    int64_t ntap, ld, rb;
} ce_pool_axis_t;

/* the max pool's column pass: output rows per block */
static inline int64_t pool_max_rows_per_block(int64_t OH, int64_t OW, int64_t W) {
    int64_t rb = 256 / (OW > 0 ? OW : 1), rw = 8192 / (W > 0 ? W : 1);
    rb = rb < rw ? rb : rw;
    return rb < 1 ? 1 : (rb > OH ? (OH > 0 ? OH : 1) : rb);
}
static inline int64_t pool_max_ld(int64_t OH, int64_t OW, int64_t W) {
    return (pool_max_rows_per_block(OH, OW, W) * OW + 15) / 16 * 16;
}
/* a plane kernel's buffer: 2*W (the average pools' row pass), or for the max pools the row
 * pass of a block of rows and two vectors of its outputs */
static inline int64_t pool_buf_elems(int64_t W, int64_t OH, int64_t OW) {
    return 2 * pool_max_rows_per_block(OH, OW, W) * W + 2 * pool_max_ld(OH, OW, W);
}

#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "pool_tmpl.h"
#include "isa_each.h"

static inline int pool_threads(int64_t P, int64_t work) {
    return ce_nn_threads(work, CE_POOL_MIN_WORK, P);
}
static inline int64_t ad_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static inline int64_t ad_end(int64_t i, int64_t in, int64_t out) {
    return ((i + 1) * in + out - 1) / out;
}

/* kinds of axis */
enum { CE_AX_MAX, CE_AX_AVG, CE_AX_ADAPTIVE };
/* fill an axis of O outputs over an input of I (kernel K, stride s, pad p, dilation d) */
static void pool_axis(int64_t *s, int64_t *n, int64_t *e, int kind, int64_t O, int64_t I,
                      int64_t K, int64_t st, int64_t p, int64_t d) {
    for (int64_t o = 0; o < O; o++) {
        if (kind == CE_AX_ADAPTIVE) {
            s[o] = ad_start(o, I, O);
            n[o] = e[o] = ad_end(o, I, O) - s[o];
        } else if (kind == CE_AX_AVG) {
            int64_t a = o * st - p, ae = a + K < I + p ? a + K : I + p;
            int64_t lo = a > 0 ? a : 0, hi = ae < I ? ae : I;
            s[o] = lo;
            n[o] = hi > lo ? hi - lo : 0;
            e[o] = ae - a;
        } else {
            int64_t base = o * st - p;
            int64_t kmin = base >= 0 ? 0 : (-base + d - 1) / d;
            int64_t kmax = base > I - 1 ? -1 : (I - 1 - base) / d;
            if (kmax > K - 1) kmax = K - 1;
            s[o] = base + kmin * d;
            n[o] = kmax >= kmin ? kmax - kmin + 1 : 0;
            e[o] = K;
        }
    }
}

/* the per-call work space: both axes, a pool_buf_elems buffer per thread, then the max pools'
 * column gather table; NULL when out of memory (the callers then run the reference) */
typedef struct {
    int64_t *mem;
    ce_pool_axis_t rows, cols;
    int th;
} pool_plan_t;
static int pool_plan(pool_plan_t *pl, int kind, int64_t P, int64_t H, int64_t W, int64_t OH,
                     int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                     int64_t pw, int64_t dh, int64_t dw, int64_t work, size_t elem) {
    pl->th = pool_threads(P, work);
    int64_t ld = pool_max_ld(OH, OW, W), RB = pool_max_rows_per_block(OH, OW, W);
    int64_t kt = kind == CE_AX_ADAPTIVE ? (W + OW - 1) / OW + 1 : kind == CE_AX_MAX ? KW : 0;
    size_t ints = (size_t)(3 * (OH + OW)), bufb = (size_t)pool_buf_elems(W, OH, OW) * elem;
    size_t bytes = ints * sizeof(int64_t) + (size_t)pl->th * (bufb + 64) +
                   (size_t)(2 * kt * ld) * sizeof(int32_t);
    pl->mem = (int64_t *)malloc(bytes);
    if (!pl->mem) return 0;
    int64_t *a = pl->mem;
    pool_axis(a, a + OH, a + 2 * OH, kind, OH, H, KH, sh, ph, dh);
    pool_axis(a + 3 * OH, a + 3 * OH + OW, a + 3 * OH + 2 * OW, kind, OW, W, KW, sw, pw, dw);
    pl->rows = (ce_pool_axis_t){a, a + OH, a + 2 * OH, kind == CE_AX_MAX ? dh : 1,
                                NULL, NULL, 0, 0, 0};
    pl->cols = (ce_pool_axis_t){a + 3 * OH, a + 3 * OH + OW, a + 3 * OH + 2 * OW,
                                kind == CE_AX_MAX ? dw : 1, NULL, NULL, 0, ld, RB};
    if (kt > 0) {   /* the max pools' column gather tables */
        int32_t *tapj = (int32_t *)((char *)pl->mem + ints * sizeof(int64_t) +
                                    (size_t)pl->th * (bufb + 64));
        int32_t *tapc = tapj + kt * ld;
        const int64_t *s = pl->cols.s, *n = pl->cols.n;
        int64_t nt = 1;
        for (int64_t o = 0; o < OW; o++) nt = n[o] > nt ? n[o] : nt;
        if (nt > kt) nt = kt;   /* never: a window has at most kt taps */
        for (int64_t k = 0; k < nt; k++)
            for (int64_t o = 0; o < ld; o++) {
                int64_t r = o / OW, c = o % OW, j;
                if (r >= RB) {
                    j = 0;
                    r = 0;
                } else {
                    j = n[c] > k ? s[c] + k * pl->cols.step : (n[c] > 0 ? s[c] : 0);
                }
                tapj[k * ld + o] = (int32_t)j;
                tapc[k * ld + o] = (int32_t)(r * W + j);
            }
        pl->cols.tapc = tapc;
        pl->cols.tapj = tapj;
        pl->cols.ntap = nt;
    }
    return 1;
}
/* thread t's buffer (64-byte aligned) */
static inline void *pool_buf(pool_plan_t *pl, int64_t OH, int64_t OW, int64_t W, size_t elem,
                             int t) {
    char *b = (char *)(pl->mem + 3 * (OH + OW));
    size_t bufb = (size_t)pool_buf_elems(W, OH, OW) * elem + 64;
    b += (size_t)t * bufb;
    return (void *)(((uintptr_t)b + 63) & ~(uintptr_t)63);
}

/* ---- references: plain window loops, one thread ---- */
#define CE_DEF_POOL_REF(T, SFX)                                                                \
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
    static void avgpool_ref_##SFX(T *y, const T *x, int64_t P, int64_t H, int64_t W,           \
                                  int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,   \
                                  int64_t sw, int64_t ph, int64_t pw, int64_t cip,              \
                                  int64_t divisor) {                                            \
        for (int64_t p = 0; p < P; p++)                                                        \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t h0, h1, w0, w1;                                                    \
                    T d = avg_win_##SFX(oh, ow, H, W, KH, KW, sh, sw, ph, pw, cip, divisor,    \
                                        &h0, &h1, &w0, &w1);                                   \
                    T s = 0;                                                                   \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) s += x[(p * H + i) * W + j];         \
                    y[(p * OH + oh) * OW + ow] = s / d;                                        \
                }                                                                              \
    }                                                                                          \
    static void avgpool_bwd_ref_##SFX(T *dx, const T *dy, int64_t P, int64_t H, int64_t W,     \
                                      int64_t OH, int64_t OW, int64_t KH, int64_t KW,           \
                                      int64_t sh, int64_t sw, int64_t ph, int64_t pw,           \
                                      int64_t cip, int64_t divisor) {                           \
        for (int64_t p = 0; p < P; p++)                                                        \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t h0, h1, w0, w1;                                                    \
                    T d = avg_win_##SFX(oh, ow, H, W, KH, KW, sh, sw, ph, pw, cip, divisor,    \
                                        &h0, &h1, &w0, &w1);                                   \
                    T g = dy[(p * OH + oh) * OW + ow] / d;                                     \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) dx[(p * H + i) * W + j] += g;        \
                }                                                                              \
    }                                                                                          \
    static void adavg_ref_##SFX(T *y, const T *x, int64_t P, int64_t H, int64_t W, int64_t OH, \
                                int64_t OW) {                                                   \
        for (int64_t p = 0; p < P; p++)                                                        \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t h0 = ad_start(oh, H, OH), h1 = ad_end(oh, H, OH);                  \
                    int64_t w0 = ad_start(ow, W, OW), w1 = ad_end(ow, W, OW);                  \
                    T s = 0;                                                                   \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) s += x[(p * H + i) * W + j];         \
                    y[(p * OH + oh) * OW + ow] = s / (T)((h1 - h0) * (w1 - w0));               \
                }                                                                              \
    }                                                                                          \
    static void adavg_bwd_ref_##SFX(T *dx, const T *dy, int64_t P, int64_t H, int64_t W,       \
                                    int64_t OH, int64_t OW) {                                  \
        for (int64_t p = 0; p < P; p++)                                                        \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t h0 = ad_start(oh, H, OH), h1 = ad_end(oh, H, OH);                  \
                    int64_t w0 = ad_start(ow, W, OW), w1 = ad_end(ow, W, OW);                  \
                    T g = dy[(p * OH + oh) * OW + ow] / (T)((h1 - h0) * (w1 - w0));            \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) dx[(p * H + i) * W + j] += g;        \
                }                                                                              \
    }                                                                                          \
    static void admax_ref_##SFX(T *y, int64_t *idx, const T *x, int64_t P, int64_t H,          \
                                int64_t W, int64_t OH, int64_t OW) {                            \
        for (int64_t p = 0; p < P; p++)                                                        \
            for (int64_t oh = 0; oh < OH; oh++)                                                \
                for (int64_t ow = 0; ow < OW; ow++) {                                          \
                    int64_t h0 = ad_start(oh, H, OH), h1 = ad_end(oh, H, OH);                  \
                    int64_t w0 = ad_start(ow, W, OW), w1 = ad_end(ow, W, OW);                  \
                    T m = -INFINITY;                                                           \
                    int64_t bi = h0 * W + w0;                                                  \
                    for (int64_t i = h0; i < h1; i++)                                          \
                        for (int64_t j = w0; j < w1; j++) {                                    \
                            T v = x[(p * H + i) * W + j];                                      \
                            if (v > m || isnan(v)) {                                           \
                                m = v;                                                         \
                                bi = i * W + j;                                                \
                            }                                                                  \
                        }                                                                      \
                    y[(p * OH + oh) * OW + ow] = m;                                            \
                    idx[(p * OH + oh) * OW + ow] = bi;                                         \
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
    }

CE_DEF_POOL_REF(float, f32)
CE_DEF_POOL_REF(double, f64)

/* ---- threaded drivers: one plane per task, the plane kernel of ce_isa; 0 when the work
 * space could not be had (the entry points then run the reference). The row index of a max is
 * carried in the element type, exact below 2^24 rows (taller planes use the reference); the
 * column gather tables hold int32 places (wider planes than 2^24 use the reference too). */
#define CE_DEF_POOL_RUN(T, SFX)                                                                \
    static int pool_max_run_##SFX(int kind, T *y, int64_t *idx, const T *x, int64_t P,         \
                                  int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH,     \
                                  int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,   \
                                  int64_t dh, int64_t dw) {                                     \
        pool_plan_t pl;                                                                        \
        if (H >= ((int64_t)1 << 24) || W >= ((int64_t)1 << 24) ||                             \
            !pool_plan(&pl, kind, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw,             \
                       P * (H * W + OH * OW * KW), sizeof(T)))                                 \
            return 0;                                                                          \
        _Pragma("omp parallel num_threads(pl.th)")                                             \
        {                                                                                      \
            T *buf = (T *)pool_buf(&pl, OH, OW, W, sizeof(T), CE_TID());                       \
            _Pragma("omp for schedule(static)")                                                \
            for (int64_t p = 0; p < P; p++)                                                    \
                CE_ISA_CALL(pool_max_plane, SFX, y + p * OH * OW, idx + p * OH * OW,           \
                            x + p * H * W, W, OH, OW, &pl.rows, &pl.cols, buf);               \
        }                                                                                      \
        free(pl.mem);                                                                          \
        return 1;                                                                              \
    }                                                                                          \
    /* average forward (bwd == 0: out = y, in = x) or backward (out = dx, in = dy) */          \
    static int pool_avg_run_##SFX(int bwd, int kind, T *out, const T *in, int64_t P, int64_t H, \
                                  int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW,    \
                                  int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip,  \
                                  int64_t divisor) {                                            \
        pool_plan_t pl;                                                                        \
        if (!pool_plan(&pl, kind, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, 1, 1,               \
                       P * (H * W + OH * OW * KW), sizeof(T)))                                 \
            return 0;                                                                          \
        int64_t osz = bwd ? H * W : OH * OW, isz = bwd ? OH * OW : H * W;                      \
        _Pragma("omp parallel num_threads(pl.th)")                                             \
        {                                                                                      \
            T *buf = (T *)pool_buf(&pl, OH, OW, W, sizeof(T), CE_TID());                       \
            _Pragma("omp for schedule(static)")                                                \
            for (int64_t p = 0; p < P; p++) {                                                  \
                if (bwd)                                                                       \
                    CE_ISA_CALL(pool_avg_bwd_plane, SFX, out + p * osz, in + p * isz, W, OH,   \
                                OW, &pl.rows, &pl.cols, cip, divisor, buf);                    \
                else                                                                           \
                    CE_ISA_CALL(pool_avg_plane, SFX, out + p * osz, in + p * isz, W, OH, OW,   \
                                &pl.rows, &pl.cols, cip, divisor, buf);                        \
            }                                                                                  \
        }                                                                                      \
        free(pl.mem);                                                                          \
        return 1;                                                                              \
    }
CE_DEF_POOL_RUN(float, f32)
CE_DEF_POOL_RUN(double, f64)

#define CE_MP_DECL int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, \
    int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw
#define CE_MP_ARGS P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw
void ce_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, CE_MP_DECL) {
    if (!pool_max_run_f32(CE_AX_MAX, y, idx, x, CE_MP_ARGS)) maxpool_ref_f32(y, idx, x, CE_MP_ARGS);
}
void ce_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, CE_MP_DECL) {
    if (!pool_max_run_f64(CE_AX_MAX, y, idx, x, CE_MP_ARGS)) maxpool_ref_f64(y, idx, x, CE_MP_ARGS);
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
    if (!pool_avg_run_f32(0, CE_AX_AVG, y, x, CE_AP_ARGS)) avgpool_ref_f32(y, x, CE_AP_ARGS);
}
void ce_avgpool2d_fwd_f64(double *y, const double *x, CE_AP_DECL) {
    if (!pool_avg_run_f64(0, CE_AX_AVG, y, x, CE_AP_ARGS)) avgpool_ref_f64(y, x, CE_AP_ARGS);
}
void ce_avgpool2d_fwd_f32_ref(float *y, const float *x, CE_AP_DECL) {
    avgpool_ref_f32(y, x, CE_AP_ARGS);
}
void ce_avgpool2d_fwd_f64_ref(double *y, const double *x, CE_AP_DECL) {
    avgpool_ref_f64(y, x, CE_AP_ARGS);
}
void ce_avgpool2d_bwd_f32(float *dx, const float *dy, CE_AP_DECL) {
    if (!pool_avg_run_f32(1, CE_AX_AVG, dx, dy, CE_AP_ARGS))
        avgpool_bwd_ref_f32(dx, dy, CE_AP_ARGS);
}
void ce_avgpool2d_bwd_f64(double *dx, const double *dy, CE_AP_DECL) {
    if (!pool_avg_run_f64(1, CE_AX_AVG, dx, dy, CE_AP_ARGS))
        avgpool_bwd_ref_f64(dx, dy, CE_AP_ARGS);
}
void ce_avgpool2d_bwd_f32_ref(float *dx, const float *dy, CE_AP_DECL) {
    avgpool_bwd_ref_f32(dx, dy, CE_AP_ARGS);
}
void ce_avgpool2d_bwd_f64_ref(double *dx, const double *dy, CE_AP_DECL) {
    avgpool_bwd_ref_f64(dx, dy, CE_AP_ARGS);
}

/* adaptive pools: the same plane kernels on adaptive axes (no kernel geometry) */
#define CE_AD_ARGS P, H, W, OH, OW
#define CE_AD_NOGEOM 0, 0, 0, 0, 0, 0
void ce_adaptive_avgpool2d_fwd_f32(float *y, const float *x, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW) {
    if (!pool_avg_run_f32(0, CE_AX_ADAPTIVE, y, x, CE_AD_ARGS, CE_AD_NOGEOM, 0, 0))
        adavg_ref_f32(y, x, CE_AD_ARGS);
}
void ce_adaptive_avgpool2d_fwd_f64(double *y, const double *x, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW) {
    if (!pool_avg_run_f64(0, CE_AX_ADAPTIVE, y, x, CE_AD_ARGS, CE_AD_NOGEOM, 0, 0))
        adavg_ref_f64(y, x, CE_AD_ARGS);
}
void ce_adaptive_avgpool2d_bwd_f32(float *dx, const float *dy, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW) {
    if (!pool_avg_run_f32(1, CE_AX_ADAPTIVE, dx, dy, CE_AD_ARGS, CE_AD_NOGEOM, 0, 0))
        adavg_bwd_ref_f32(dx, dy, CE_AD_ARGS);
}
void ce_adaptive_avgpool2d_bwd_f64(double *dx, const double *dy, int64_t P, int64_t H,
                                   int64_t W, int64_t OH, int64_t OW) {
    if (!pool_avg_run_f64(1, CE_AX_ADAPTIVE, dx, dy, CE_AD_ARGS, CE_AD_NOGEOM, 0, 0))
        adavg_bwd_ref_f64(dx, dy, CE_AD_ARGS);
}
void ce_adaptive_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, int64_t P, int64_t H,
                                   int64_t W, int64_t OH, int64_t OW) {
    if (!pool_max_run_f32(CE_AX_ADAPTIVE, y, idx, x, CE_AD_ARGS, CE_AD_NOGEOM, 1, 1))
        admax_ref_f32(y, idx, x, CE_AD_ARGS);
}
void ce_adaptive_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, int64_t P,
                                   int64_t H, int64_t W, int64_t OH, int64_t OW) {
    if (!pool_max_run_f64(CE_AX_ADAPTIVE, y, idx, x, CE_AD_ARGS, CE_AD_NOGEOM, 1, 1))
        admax_ref_f64(y, idx, x, CE_AD_ARGS);
}

/* references of the pools without a kernel geometry and of the average backward */
void ce_adaptive_avgpool2d_fwd_f32_ref(float *y, const float *x, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW) {
    adavg_ref_f32(y, x, P, H, W, OH, OW);
}
void ce_adaptive_avgpool2d_fwd_f64_ref(double *y, const double *x, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW) {
    adavg_ref_f64(y, x, P, H, W, OH, OW);
}
void ce_adaptive_avgpool2d_bwd_f32_ref(float *dx, const float *dy, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW) {
    adavg_bwd_ref_f32(dx, dy, P, H, W, OH, OW);
}
void ce_adaptive_avgpool2d_bwd_f64_ref(double *dx, const double *dy, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW) {
    adavg_bwd_ref_f64(dx, dy, P, H, W, OH, OW);
}
void ce_adaptive_maxpool2d_fwd_f32_ref(float *y, int64_t *idx, const float *x, int64_t P,
                                       int64_t H, int64_t W, int64_t OH, int64_t OW) {
    admax_ref_f32(y, idx, x, P, H, W, OH, OW);
}
void ce_adaptive_maxpool2d_fwd_f64_ref(double *y, int64_t *idx, const double *x, int64_t P,
                                       int64_t H, int64_t W, int64_t OH, int64_t OW) {
    admax_ref_f64(y, idx, x, P, H, W, OH, OW);
}
