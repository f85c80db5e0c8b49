/* softmax.c - softmax / log_softmax over the last axis of a contiguous (R,C) array, forward and
 * Jacobian-free backward (see nn_kernels.h). Threaded over rows, SIMD within a row
 * (softmax_rows_tmpl.h over softmax_tmpl.h / vmath.h, one instance per ISA and dtype; the
 * one-lane scalar instance is the generic path); *_ref = the plain two-pass formulas below,
 * summed in double, one thread, written independently of the template.
 * Forward: m = max, e = exp(x - m), y = e / sum(e)  |  y = (x - m) - log(sum(e)). */
#include <math.h>
#include <stdlib.h>
#include <immintrin.h>
#include "nn_util.h"
#include "cpu_cache.h"

/* ---- the streaming-store threshold of the nn kernels (see nn_util.h), from the L3 size -------
 * The size of one L3 instance as the GEMM blocking reads it (ce_cpu_caches: sysfs, else CPUID
 * leaf 4 / 0x8000001D, else a per-family table), not glibc's sysconf(_SC_LEVEL3_CACHE_SIZE):
 * on an AMD EPYC guest with a 32 MiB L3 (sysfs) that reported 320 MiB, which put the threshold
 * at 80 MiB, so no LayerNorm / softmax / cross-entropy output of the benchmarks was streamed
 * (float32 [4096,1024], 1 thread, paired: LayerNorm forward 2.8-3.5 -> 2.0-2.2 ms, backward
 * 5.5-6.1 -> 4.1-4.7 ms streamed). */
int64_t ce_nn_stream_default_bytes = CE_NN_STREAM_BYTES;
__attribute__((constructor)) static void ce_nn_stream_init(void) {
    ce_cache_info_t ci;
    ce_cpu_caches(&ci);
    if (ci.size[2] / 4 > ce_nn_stream_default_bytes) ce_nn_stream_default_bytes = ci.size[2] / 4;
    if (ce_nn_stream_bytes == CE_NN_STREAM_BYTES) ce_nn_stream_bytes = ce_nn_stream_default_bytes;
}

/* ---- references ------------------------------------------------------------------------------ */
/* static insides per dtype; the public *_ref functions are at the end of the file */
#define CE_SM_REF(T, SFX)                                                                        \
    static void sm_fwd_ref_##SFX(T *y, const T *x, int64_t R, int64_t C, int lg) {               \
        for (int64_t r = 0; r < R; r++) {                                                        \
            const T *xr = x + r * C;                                                             \
            T *yr = y + r * C;                                                                   \
            T m = xr[0];                                                                         \
            for (int64_t c = 1; c < C; c++)                                                      \
                if (xr[c] > m) m = xr[c];                                                        \
            double s = 0;                                                                        \
            for (int64_t c = 0; c < C; c++) s += exp((double)xr[c] - (double)m);                 \
            for (int64_t c = 0; c < C; c++)                                                      \
                yr[c] = lg ? (T)(((double)xr[c] - (double)m) - log(s))                           \
                           : (T)(exp((double)xr[c] - (double)m) / s);                            \
        }                                                                                        \
    }                                                                                            \
    static void sm_bwd_ref_##SFX(T *dx, const T *y, const T *dy, int64_t R, int64_t C, int lg,  \
                                 int acc) {                                                      \
        for (int64_t r = 0; r < R; r++) {                                                        \
            const T *yr = y + r * C, *gr = dy + r * C;                                           \
            T *dr = dx + r * C;                                                                  \
            double s = 0;                                                                        \
            for (int64_t c = 0; c < C; c++) s += lg ? (double)gr[c] : (double)gr[c] * yr[c];     \
            for (int64_t c = 0; c < C; c++) {                                                    \
                double g = lg ? gr[c] - exp((double)yr[c]) * s : yr[c] * (gr[c] - s);            \
                dr[c] = (T)(acc ? dr[c] + g : g);                                                \
            }                                                                                    \
        }                                                                                        \
    }
CE_SM_REF(float, f32)
CE_SM_REF(double, f64)

/* ---- row kernels per (ISA, dtype): ce_sm_fwd_rows_<isa>_<dtype>, ce_sm_bwd_rows_... ------------ */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "softmax_tmpl.h"
#define CE_EACH_INC2 "softmax_rows_tmpl.h"
#include "isa_each.h"

/* ---- public entry points: threads over rows, the instance for ce_isa on each chunk ------------ */
void ce_softmax_fwd_f32(float *y, const float *x, int64_t R, int64_t C, int lg) {
    if (R <= 0 || C <= 0) return;
    const int nts = ce_nn_stream(R * C * (int64_t)sizeof(float), C * (int64_t)sizeof(float));
    CE_ROWS_PAR(R, C, CE_ISA_CALL(sm_fwd_rows, f32, y, x, lo, hi, C, lg, nts));
}

void ce_softmax_fwd_f64(double *y, const double *x, int64_t R, int64_t C, int lg) {
    if (R <= 0 || C <= 0) return;
    const int nts = ce_nn_stream(R * C * (int64_t)sizeof(double), C * (int64_t)sizeof(double));
    CE_ROWS_PAR(R, C, CE_ISA_CALL(sm_fwd_rows, f64, y, x, lo, hi, C, lg, nts));
}

void ce_softmax_bwd_f32(float *dx, const float *y, const float *dy, int64_t R, int64_t C, int lg,
                        int accumulate) {
    if (R <= 0 || C <= 0) return;
    const int nts = ce_nn_stream(R * C * (int64_t)sizeof(float), C * (int64_t)sizeof(float));
    CE_ROWS_PAR(R, C, CE_ISA_CALL(sm_bwd_rows, f32, dx, y, dy, lo, hi, C, lg, accumulate, nts));
}

void ce_softmax_bwd_f64(double *dx, const double *y, const double *dy, int64_t R, int64_t C,
                        int lg, int accumulate) {
    if (R <= 0 || C <= 0) return;
    const int nts = ce_nn_stream(R * C * (int64_t)sizeof(double), C * (int64_t)sizeof(double));
    CE_ROWS_PAR(R, C, CE_ISA_CALL(sm_bwd_rows, f64, dx, y, dy, lo, hi, C, lg, accumulate, nts));
}

void ce_softmax_fwd_f32_ref(float *y, const float *x, int64_t R, int64_t C, int lg) {
    if (R > 0 && C > 0) sm_fwd_ref_f32(y, x, R, C, lg);
}

void ce_softmax_fwd_f64_ref(double *y, const double *x, int64_t R, int64_t C, int lg) {
    if (R > 0 && C > 0) sm_fwd_ref_f64(y, x, R, C, lg);
}

void ce_softmax_bwd_f32_ref(float *dx, const float *y, const float *dy, int64_t R, int64_t C,
                            int lg, int accumulate) {
    if (R > 0 && C > 0) sm_bwd_ref_f32(dx, y, dy, R, C, lg, accumulate);
}

void ce_softmax_bwd_f64_ref(double *dx, const double *y, const double *dy, int64_t R, int64_t C,
                            int lg, int accumulate) {
    if (R > 0 && C > 0) sm_bwd_ref_f64(dx, y, dy, R, C, lg, accumulate);
}
