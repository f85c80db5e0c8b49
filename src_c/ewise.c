/* ewise.c - threaded elementwise binary arithmetic (contract in ewise.h).
 *
 * One loop (ewise_tmpl.h over vmath.h) instantiated per (ISA, dtype) by isa_each.h, the scalar
 * one-lane instance being the generic path. The entry points split n into cache-line aligned
 * per-thread chunks; below CE_EW_MIN_PER_THREAD elements a second thread costs more than it
 * brings and the call stays on one thread. */
#include "nn_util.h"

#define CE_EW_MIN_PER_THREAD (1 << 15)

#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "ewise_tmpl.h"
#include "isa_each.h"

void ce_ewise_f32(int op, float *out, const float *a, const float *b, int64_t n) {
    if (n <= 0) return;
    CE_PAR_CHUNKS(n, ce_par_threads(n, CE_EW_MIN_PER_THREAD), 16,
                  CE_ISA_CALL(ew, f32, op, out + lo, a + lo, b + lo, hi - lo));
}

void ce_ewise_f64(int op, double *out, const double *a, const double *b, int64_t n) {
    if (n <= 0) return;
    CE_PAR_CHUNKS(n, ce_par_threads(n, CE_EW_MIN_PER_THREAD), 8,
                  CE_ISA_CALL(ew, f64, op, out + lo, a + lo, b + lo, hi - lo));
}

/* plain single-threaded loops (tests) */
void ce_ewise_f32_ref(int op, float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = a[i], y = b[i];
        out[i] = op == CE_EW_ADD ? x + y : op == CE_EW_SUB ? x - y : op == CE_EW_MUL ? x * y : x / y;
    }
}

void ce_ewise_f64_ref(int op, double *out, const double *a, const double *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        out[i] = op == CE_EW_ADD ? x + y : op == CE_EW_SUB ? x - y : op == CE_EW_MUL ? x * y : x / y;
    }
}
