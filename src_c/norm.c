/* norm.c - LayerNorm and RMSNorm over the last dim D of a contiguous (R,D) array, forward
 * (saving mean/rstd) and backward (dx plus dweight/dbias). Threaded over rows; parameter
 * gradients go to per-thread partial buffers that are summed in thread order afterwards (no
 * races, no atomics). Row kernels ce_{ln,rms}_{fwd,bwd}_rows_<isa>_<dtype> from norm_tmpl.h
 * (generic = the template on one-lane scalars); *_ref = textbook loops, one thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn_util.h"
#include "cpu_cache.h"

/* ---- references ------------------------------------------------------------------------------
 * static insides per dtype; the public *_ref functions are written out at the end of the file */
#define CE_NORM_REF(T, SFX)                                                                  \
    static void ln_fwd_ref_##SFX(T *y, T *mean, T *rstd, const T *x, const T *w,           \
                                      const T *b, int64_t R, int64_t D, double eps) {            \
        for (int64_t r = 0; r < R; r++) {                                                        \
            const T *xr = x + r * D;                                                             \
            T m = 0, v = 0;                                                                      \
            for (int64_t c = 0; c < D; c++) m += xr[c];                                          \
            m /= (T)D;                                                                           \
            T ds = 0;                                                                            \
            for (int64_t c = 0; c < D; c++) {                                                    \
                v += (xr[c] - m) * (xr[c] - m);                                                  \
                ds += xr[c] - m;                                                                 \
            }                                                                                    \
            ds /= (T)D;                                                                          \
            m += ds; /* corrected two-pass: see nm_sqdev in norm_tmpl.h */                       \
            v = v / (T)D - ds * ds;                                                              \
            if (v < 0) v = 0;                                                                    \
            T rs = (T)(1.0 / sqrt((double)v + eps));                                             \
            mean[r] = m;                                                                         \
            rstd[r] = rs;                                                                        \
            for (int64_t c = 0; c < D; c++)                                                      \
                y[r * D + c] = (xr[c] - m) * rs * (w ? w[c] : (T)1) + (b ? b[c] : (T)0);         \
        }                                                                                        \
    }                                                                                            \
    static void ln_bwd_ref_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w, \
                                      const T *mean, const T *rstd, int64_t R, int64_t D,        \
                                      int acc) {                                                 \
        for (int64_t r = 0; r < R; r++) {                                                        \
            T a = 0, c2 = 0;                                                                     \
            for (int64_t c = 0; c < D; c++) {                                                    \
                T xh = (x[r * D + c] - mean[r]) * rstd[r];                                       \
                T g = dy[r * D + c] * (w ? w[c] : (T)1);                                         \
                a += g;                                                                          \
                c2 += g * xh;                                                                    \
                if (dw) dw[c] += dy[r * D + c] * xh;                                             \
                if (db) db[c] += dy[r * D + c];                                                  \
            }                                                                                    \
            a /= (T)D;                                                                           \
            c2 /= (T)D;                                                                          \
            if (dx)                                                                              \
                for (int64_t c = 0; c < D; c++) {                                                \
                    T xh = (x[r * D + c] - mean[r]) * rstd[r];                                   \
                    T g = dy[r * D + c] * (w ? w[c] : (T)1);                                     \
                    T d = rstd[r] * (g - a - xh * c2);                                           \
                    dx[r * D + c] = acc ? dx[r * D + c] + d : d;                                 \
                }                                                                                \
        }                                                                                        \
    }                                                                                            \
    static void rms_fwd_ref_##SFX(T *y, T *rstd, const T *x, const T *w, int64_t R, int64_t D, \
                                    double eps) {                                                \
        for (int64_t r = 0; r < R; r++) {                                                        \
            T s = 0;                                                                             \
            for (int64_t c = 0; c < D; c++) s += x[r * D + c] * x[r * D + c];                    \
            T rs = (T)(1.0 / sqrt((double)(s / (T)D) + eps));                                    \
            rstd[r] = rs;                                                                        \
            for (int64_t c = 0; c < D; c++) y[r * D + c] = x[r * D + c] * rs * (w ? w[c] : (T)1); \
        }                                                                                        \
    }                                                                                            \
    static void rms_bwd_ref_##SFX(T *dx, T *dw, const T *dy, const T *x, const T *w,          \
                                    const T *rstd, int64_t R, int64_t D, int acc) {              \
        for (int64_t r = 0; r < R; r++) {                                                        \
            T c2 = 0;                                                                            \
            for (int64_t c = 0; c < D; c++) {                                                    \
                T xh = x[r * D + c] * rstd[r];                                                   \
                c2 += dy[r * D + c] * (w ? w[c] : (T)1) * xh;                                    \
                if (dw) dw[c] += dy[r * D + c] * xh;                                             \
            }                                                                                    \
            c2 /= (T)D;                                                                          \
            if (dx)                                                                              \
                for (int64_t c = 0; c < D; c++) {                                                \
                    T xh = x[r * D + c] * rstd[r];                                               \
                    T d = rstd[r] * (dy[r * D + c] * (w ? w[c] : (T)1) - xh * c2);               \
                    dx[r * D + c] = acc ? dx[r * D + c] + d : d;                                 \
                }                                                                                \
        }                                                                                        \
    }
CE_NORM_REF(float, f32)
CE_NORM_REF(double, f64)

/* ---- generic (scalar template) and SIMD rows ------------------------------------------------- */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "softmax_tmpl.h"
#define CE_EACH_INC2 "norm_tmpl.h"
#include "isa_each.h"

/* Rows per backward block (nm_bwd_rows in norm_tmpl.h): as many as let the block's dy and x
 * rows and the next block's, which pass 2 prefetches, fit in L1 together (4 * blk * D * size
 * bytes), 1 to CE_NM_BLK. On a 32 KiB L1 (AMD Zen 4) at D = 1024 float32 that is 2 rows instead
 * of 4: backward [4096,1024], 1 thread, paired: 3.5-4.1 vs 4.6-4.7 ms; [8192,1024] and
 * [16384,512], [2048,2048] within noise of 4. */
static int ce_norm_blk(int64_t D, int64_t size) {
    ce_cache_info_t ci;
    ce_cpu_caches(&ci);
    const int64_t l1 = ci.size[0] > 0 ? ci.size[0] : 32768;
    const int64_t b = l1 / (4 * D * size);
    return b < 1 ? 1 : (b > CE_NM_BLK ? CE_NM_BLK : (int)b);
}

/* Backward with parameter grads (static insides per dtype): nparts zeroed partial buffers of D
 * (one per thread, for dw and db; each padded by 64 bytes so dw's and db's columns never sit
 * 4 KiB apart, which stalls the loads behind the stores), rows split among threads, then
 * dw[c] += part_0[c] + part_1[c] + ... in thread order. dx is streamed (non-temporal stores)
 * when it is large and overwritten. */
#define CE_NORM_BWD(T, SFX)                                                                      \
    static void norm_bwd_##SFX(int rms, T *dx, T *dw, T *db, const T *dy, const T *x,            \
                               const T *w, const T *mean, const T *rstd, int64_t R, int64_t D,   \
                               int acc) {                                                        \
        if (R <= 0 || D <= 0) return;                                                            \
        int nt = ce_nn_threads(R * D, CE_NN_MIN_WORK, R);                                        \
        int nb = (dw != 0) + (db != 0);                                                          \
        const int64_t Dp = D + 64 / (int64_t)sizeof(T); /* padded stride of a partial buffer */  \
        const int nts = dx && !acc &&                                                            \
                        ce_nn_stream(R * D * (int64_t)sizeof(T), D * (int64_t)sizeof(T));        \
        const int blk = ce_norm_blk(D, (int64_t)sizeof(T));                                      \
        T *part = 0;                                                                             \
        if (nb) {                                                                                \
            part = (T *)calloc((size_t)nt * (size_t)nb * (size_t)Dp, sizeof(T));                 \
            if (!part) nt = 1; /* out of memory: one thread straight into dw/db, still correct */ \
        }                                                                                        \
        if (nt <= 1) {                                                                           \
            T *pw = part ? part : dw, *pb = part ? (dw ? part + Dp : part) : db;                 \
            if (!dw) pw = 0;                                                                     \
            if (!db) pb = 0;                                                                     \
            if (rms) CE_ISA_CALL(rms_bwd_rows, SFX, dx, pw, dy, x, w, rstd, 0, R, D, acc, nts,   \
                                  blk);                                                          \
            else CE_ISA_CALL(ln_bwd_rows, SFX, dx, pw, pb, dy, x, w, mean, rstd, 0, R, D, acc,   \
                             nts, blk);                                                          \
        } else {                                                                                 \
            _Pragma("omp parallel num_threads(nt)")                                              \
            {                                                                                    \
                int tid = CE_TID(); /* < nt: indexes this thread's partial buffer */             \
                int64_t lo, hi;                                                                  \
                ce_chunk(R, tid, CE_NTEAM(), 1, &lo, &hi);                                       \
                T *base = part ? part + (size_t)tid * nb * Dp : 0;                               \
                T *pw = dw ? base : 0, *pb = db ? (dw ? base + Dp : base) : 0;                   \
                if (hi > lo) {                                                                   \
                    if (rms) CE_ISA_CALL(rms_bwd_rows, SFX, dx, pw, dy, x, w, rstd, lo, hi, D, acc, nts, blk); \
                    else CE_ISA_CALL(ln_bwd_rows, SFX, dx, pw, pb, dy, x, w, mean, rstd, lo, hi, D, acc, nts, blk); \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        if (part) {                                                                              \
            for (int t = 0; t < nt; t++) {                                                       \
                const T *base = part + (size_t)t * nb * Dp;                                      \
                if (dw)                                                                          \
                    for (int64_t c = 0; c < D; c++) dw[c] += base[c];                            \
                if (db) {                                                                        \
                    const T *pb = dw ? base + Dp : base;                                         \
                    for (int64_t c = 0; c < D; c++) db[c] += pb[c];                              \
                }                                                                                \
            }                                                                                    \
            free(part);                                                                          \
        }                                                                                        \
    }
CE_NORM_BWD(float, f32)
CE_NORM_BWD(double, f64)

/* ---- public entry points ------------------------------------------------------------------------ */
void ce_layernorm_fwd_f32(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int64_t R, int64_t D, double eps) {
    if (R <= 0 || D <= 0) return;
    const int nts = ce_nn_stream(R * D * (int64_t)sizeof(float), D * (int64_t)sizeof(float));
    CE_ROWS_PAR(R, D, CE_ISA_CALL(ln_fwd_rows, f32, y, mean, rstd, x, w, b, lo, hi, D, eps, nts));
}

void ce_layernorm_fwd_f64(double *y, double *mean, double *rstd, const double *x, const double *w,
                          const double *b, int64_t R, int64_t D, double eps) {
    if (R <= 0 || D <= 0) return;
    const int nts = ce_nn_stream(R * D * (int64_t)sizeof(double), D * (int64_t)sizeof(double));
    CE_ROWS_PAR(R, D, CE_ISA_CALL(ln_fwd_rows, f64, y, mean, rstd, x, w, b, lo, hi, D, eps, nts));
}

void ce_rmsnorm_fwd_f32(float *y, float *rstd, const float *x, const float *w, int64_t R,
                        int64_t D, double eps) {
    if (R <= 0 || D <= 0) return;
    const int nts = ce_nn_stream(R * D * (int64_t)sizeof(float), D * (int64_t)sizeof(float));
    CE_ROWS_PAR(R, D, CE_ISA_CALL(rms_fwd_rows, f32, y, rstd, x, w, lo, hi, D, eps, nts));
}

void ce_rmsnorm_fwd_f64(double *y, double *rstd, const double *x, const double *w, int64_t R,
                        int64_t D, double eps) {
    if (R <= 0 || D <= 0) return;
    const int nts = ce_nn_stream(R * D * (int64_t)sizeof(double), D * (int64_t)sizeof(double));
    CE_ROWS_PAR(R, D, CE_ISA_CALL(rms_fwd_rows, f64, y, rstd, x, w, lo, hi, D, eps, nts));
}

void ce_layernorm_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, const float *mean, const float *rstd, int64_t R,
                          int64_t D, int accumulate) {
    norm_bwd_f32(0, dx, dw, db, dy, x, w, mean, rstd, R, D, accumulate);
}

void ce_layernorm_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x,
                          const double *w, const double *mean, const double *rstd, int64_t R,
                          int64_t D, int accumulate) {
    norm_bwd_f64(0, dx, dw, db, dy, x, w, mean, rstd, R, D, accumulate);
}

void ce_rmsnorm_bwd_f32(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        const float *rstd, int64_t R, int64_t D, int accumulate) {
    norm_bwd_f32(1, dx, dw, 0, dy, x, w, 0, rstd, R, D, accumulate);
}

void ce_rmsnorm_bwd_f64(double *dx, double *dw, const double *dy, const double *x, const double *w,
                        const double *rstd, int64_t R, int64_t D, int accumulate) {
    norm_bwd_f64(1, dx, dw, 0, dy, x, w, 0, rstd, R, D, accumulate);
}

void ce_layernorm_fwd_f32_ref(float *y, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int64_t R, int64_t D, double eps) {
    ln_fwd_ref_f32(y, mean, rstd, x, w, b, R, D, eps);
}

void ce_layernorm_fwd_f64_ref(double *y, double *mean, double *rstd, const double *x,
                              const double *w, const double *b, int64_t R, int64_t D, double eps) {
    ln_fwd_ref_f64(y, mean, rstd, x, w, b, R, D, eps);
}

void ce_layernorm_bwd_f32_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                              const float *w, const float *mean, const float *rstd, int64_t R,
                              int64_t D, int accumulate) {
    ln_bwd_ref_f32(dx, dw, db, dy, x, w, mean, rstd, R, D, accumulate);
}

void ce_layernorm_bwd_f64_ref(double *dx, double *dw, double *db, const double *dy, const double *x,
                              const double *w, const double *mean, const double *rstd, int64_t R,
                              int64_t D, int accumulate) {
    ln_bwd_ref_f64(dx, dw, db, dy, x, w, mean, rstd, R, D, accumulate);
}

void ce_rmsnorm_fwd_f32_ref(float *y, float *rstd, const float *x, const float *w, int64_t R,
                            int64_t D, double eps) {
    rms_fwd_ref_f32(y, rstd, x, w, R, D, eps);
}

void ce_rmsnorm_fwd_f64_ref(double *y, double *rstd, const double *x, const double *w, int64_t R,
                            int64_t D, double eps) {
    rms_fwd_ref_f64(y, rstd, x, w, R, D, eps);
}

void ce_rmsnorm_bwd_f32_ref(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const float *rstd, int64_t R, int64_t D, int accumulate) {
    rms_bwd_ref_f32(dx, dw, dy, x, w, rstd, R, D, accumulate);
}

void ce_rmsnorm_bwd_f64_ref(double *dx, double *dw, const double *dy, const double *x,
                            const double *w, const double *rstd, int64_t R, int64_t D,
                            int accumulate) {
    rms_bwd_ref_f64(dx, dw, dy, x, w, rstd, R, D, accumulate);
}
