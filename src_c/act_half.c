/* act_half.c - bfloat16 activations through the float32 kernels (contract in act_half.h).
 *
 * Each thread takes a chunk of n and walks it in blocks of CE_ACTH_BLOCK elements: the block is
 * widened into a float32 buffer on the stack (cast.h), the float32 activation kernel
 * (activation.h; below its threading threshold, so on the calling thread) runs in place, and
 * the block is rounded back (cast.h). The ISA path is the one those kernels take (ce_isa). The
 * references chain the scalar references of the same three steps. */
#include "nn_util.h"
#include "activation.h"
#include "cast.h"
#include "act_half.h"

#define CE_ACTH_BLOCK 1024
#define CE_ACTH_MIN_PER_THREAD 16384

static inline int64_t acth_min(int64_t a, int64_t b) { return a < b ? a : b; }

static void acth_fwd(int kind, uint16_t *y, const uint16_t *x, int64_t n, double p0, double p1,
                     int ref) {
    float t[CE_ACTH_BLOCK] __attribute__((aligned(64)));
    for (int64_t i = 0; i < n; i += CE_ACTH_BLOCK) {
        const int64_t m = acth_min(CE_ACTH_BLOCK, n - i);
        if (ref) {
            ce_cast_bf16_to_f32_ref(t, x + i, m);
            ce_act_forward_f32_ref(kind, t, t, m, p0, p1);
            ce_cast_f32_to_bf16_ref(y + i, t, m);
        } else {
            ce_cast_bf16_to_f32(t, x + i, m);
            ce_act_forward_f32(kind, t, t, m, p0, p1);
            ce_cast_f32_to_bf16(y + i, t, m);
        }
    }
}

static void acth_bwd(int kind, uint16_t *dx, const uint16_t *xy, const uint16_t *dy, int64_t n,
                     double p0, double p1, int ref) {
    float s[CE_ACTH_BLOCK] __attribute__((aligned(64)));
    float g[CE_ACTH_BLOCK] __attribute__((aligned(64)));
    for (int64_t i = 0; i < n; i += CE_ACTH_BLOCK) {
        const int64_t m = acth_min(CE_ACTH_BLOCK, n - i);
        if (ref) {
            ce_cast_bf16_to_f32_ref(s, xy + i, m);
            ce_cast_bf16_to_f32_ref(g, dy + i, m);
            ce_act_backward_f32_ref(kind, g, s, g, m, p0, p1, 0);
            ce_cast_f32_to_bf16_ref(dx + i, g, m);
        } else {
            ce_cast_bf16_to_f32(s, xy + i, m);
            ce_cast_bf16_to_f32(g, dy + i, m);
            ce_act_backward_f32(kind, g, s, g, m, p0, p1, 0);
            ce_cast_f32_to_bf16(dx + i, g, m);
        }
    }
}

void ce_act_forward_bf16(int kind, uint16_t *y, const uint16_t *x, int64_t n, double p0,
                         double p1) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    CE_PAR_CHUNKS(n, ce_par_threads(n, CE_ACTH_MIN_PER_THREAD), 32,
                  acth_fwd(kind, y + lo, x + lo, hi - lo, p0, p1, 0));
}

void ce_act_backward_bf16(int kind, uint16_t *dx, const uint16_t *xy, const uint16_t *dy,
                          int64_t n, double p0, double p1) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    CE_PAR_CHUNKS(n, ce_par_threads(n, CE_ACTH_MIN_PER_THREAD), 32,
                  acth_bwd(kind, dx + lo, xy + lo, dy + lo, hi - lo, p0, p1, 0));
}

void ce_act_forward_bf16_ref(int kind, uint16_t *y, const uint16_t *x, int64_t n, double p0,
                             double p1) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    acth_fwd(kind, y, x, n, p0, p1, 1);
}

void ce_act_backward_bf16_ref(int kind, uint16_t *dx, const uint16_t *xy, const uint16_t *dy,
                              int64_t n, double p0, double p1) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    acth_bwd(kind, dx, xy, dy, n, p0, p1, 1);
}
