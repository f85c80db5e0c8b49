/* ewise_half.c - elementwise binary arithmetic on bfloat16 storage (contract in ewise_half.h).
 *
 * The loops (ewise_half_tmpl.h over vmath.h + vmath_cvt.h) are instantiated per ISA by
 * isa_each.h, the one-lane scalar instance being the generic path; the entry points split n
 * into per-thread chunks. *_ref below are plain scalar loops written independently of them. */
#include <string.h>
#include "nn_util.h"
#include "ewise.h"
#include "ewise_half.h"

#define CE_EWH_MIN_PER_THREAD (1 << 15)

#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "vmath_cvt.h"
#define CE_EACH_INC2 "ewise_half_tmpl.h"
#include "isa_each.h"

void ce_ewise_bf16(int op, uint16_t *out, const uint16_t *a, const uint16_t *b, int64_t n) {
    if (n <= 0) return;
    CE_PAR_CHUNKS(n, ce_par_threads(n, CE_EWH_MIN_PER_THREAD), 32,
                  CE_ISA_CALL(ewh_bf16, f32, op, out + lo, a + lo, b + lo, hi - lo));
}

void ce_ewise_f32_bf16(int op, float *out, const float *a, const uint16_t *b, int64_t n, int rev) {
    if (n <= 0) return;
    CE_PAR_CHUNKS(n, ce_par_threads(n, CE_EWH_MIN_PER_THREAD), 32,
                  CE_ISA_CALL(ewh_f32_bf16, f32, op, out + lo, a + lo, b + lo, hi - lo, rev));
}

void ce_colsum_bf16(float *out, const uint16_t *g, int64_t M, int64_t N, int64_t ld) {
    if (N <= 0) return;
    /* columns split across the threads (each sums all rows of its own columns, in order) */
    CE_PAR_CHUNKS(N, ce_par_threads(M * N, CE_EWH_MIN_PER_THREAD), 32,
                  CE_ISA_CALL(ewh_colsum_bf16, f32, out, g, M, ld, lo, hi));
}

/* ---- plain references ------------------------------------------------------------------------ */
static float ref_val(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t ref_bits(float f) {
    if (f != f) return 0xffffu;
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t hi = u >> 16, lo = u & 0xffffu;
    if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u))) hi++;
    return (uint16_t)hi;
}

static float ref_op(int op, float x, float y) {
    return op == CE_EW_ADD ? x + y : op == CE_EW_SUB ? x - y : op == CE_EW_MUL ? x * y : x / y;
}

void ce_ewise_bf16_ref(int op, uint16_t *out, const uint16_t *a, const uint16_t *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = ref_bits(ref_op(op, ref_val(a[i]), ref_val(b[i])));
}

void ce_ewise_f32_bf16_ref(int op, float *out, const float *a, const uint16_t *b, int64_t n,
                           int rev) {
    for (int64_t i = 0; i < n; i++)
        out[i] = rev ? ref_op(op, ref_val(b[i]), a[i]) : ref_op(op, a[i], ref_val(b[i]));
}

void ce_colsum_bf16_ref(float *out, const uint16_t *g, int64_t M, int64_t N, int64_t ld) {
    for (int64_t j = 0; j < N; j++) {
        float s = 0.0f;
        for (int64_t i = 0; i < M; i++) s += ref_val(g[i * ld + j]);
        out[j] = s;
    }
}
