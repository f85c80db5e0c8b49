/* loss_bf16_tmpl.h - cross-entropy rows (class targets) with bfloat16 logits, over the float32
 * row kernels of loss_tmpl.h: each row is widened (exactly) into a float32 row buffer and run
 * through xent_fwd_rows / xent_bwd_rows, and the backward's float32 row is rounded once into
 * the bfloat16 gradient (nearest even, NaN -> 0xffff, as the cast kernel rounds). The results
 * are therefore those of the float32 kernels on the logits cast to float32 and of the cast
 * back, bit for bit (torch's autocast runs cross_entropy in float32), without the float32 copies
 * of the logits and of their gradient. Included at the end of loss_tmpl.h (per (ISA, dtype)
 * pair, after vmath_cvt.h); only the float32 pairs define anything. */
#if CE_VM == CE_VM_AVX512_F32 || CE_VM == CE_VM_AVX2_F32 || CE_VM == CE_VM_SCALAR_F32
/* d (C) = float32 values of the bfloat16 bits s (C) */
static inline void VM_FN(xent_widen_bf16)(float *d, const uint16_t *s, int64_t C) {
    int64_t i = 0;
    for (; i + VM_W <= C; i += VM_W) vm_store(d + i, vm_load_bf16(s + i));
    if (i < C) vm_store_part(d + i, C - i, vm_load_bf16_part(s + i, C - i));
}

/* xent_widen_bf16 returning the row's max as sm_max takes it (the same two accumulators and
 * order, so the same value, NaN rows included): the forward's max pass folded into the widening */
static inline float VM_FN(xent_widen_bf16_max)(float *d, const uint16_t *s, int64_t C) {
    vm_t m0 = vm_set1(-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 2 * VM_W <= C; i += 2 * VM_W) {
        vm_t a = vm_load_bf16(s + i), b = vm_load_bf16(s + i + VM_W);
        vm_store(d + i, a);
        vm_store(d + i + VM_W, b);
        m0 = vm_max(m0, a);
        m1 = vm_max(m1, b);
    }
    for (; i + VM_W <= C; i += VM_W) {
        vm_t a = vm_load_bf16(s + i);
        vm_store(d + i, a);
        m0 = vm_max(m0, a);
    }
    if (i < C) {
        vm_store_part(d + i, C - i, vm_load_bf16_part(s + i, C - i));
        m1 = vm_max(m1, vm_load_part_fill(d + i, C - i, -INFINITY));
    }
    return vm_hmax(vm_max(m0, m1));
}

/* d (C) = bfloat16 bits of s (C) */
static inline void VM_FN(xent_narrow_bf16)(uint16_t *d, const float *s, int64_t C) {
    int64_t i = 0;
    for (; i + VM_W <= C; i += VM_W) vm_store_bf16(d + i, vm_load(s + i));
    if (i < C) vm_store_bf16_part(d + i, C - i, vm_load_part(s + i, C - i));
}

/* rows [r0, r1) of xent_fwd_rows for bfloat16 logits x (N,C); xb: a float32 buffer of C */
static void VM_FN(xent_fwd_rows_bf16)(float *loss, float *lse, float *wrow, const uint16_t *x,
                                      const int64_t *tg, const float *w, int64_t r0, int64_t r1,
                                      int64_t C, int64_t ignore, float eps, float W, float *xb) {
    for (int64_t r = r0; r < r1; r++) {
        float m = VM_FN(xent_widen_bf16_max)(xb, x + r * C, C);
        float ls = vm_slog(VM_FN(xent_expsum)(xb, C, m));
        VM_FN(xent_fwd_out)(loss + r, lse + r, wrow + r, xb, tg[r], w, C, ignore, eps, W, m, ls);
    }
}

/* rows [r0, r1) of xent_bwd_rows (overwriting) for bfloat16 logits x and gradient dx (N,C);
 * xb, db: float32 buffers of C */
static void VM_FN(xent_bwd_rows_bf16)(uint16_t *dx, const uint16_t *x, const int64_t *tg,
                                      const float *w, const float *lse, const float *g,
                                      int64_t r0, int64_t r1, int64_t C, int64_t ignore,
                                      float eps, float W, float *xb, float *db) {
    for (int64_t r = r0; r < r1; r++) {
        VM_FN(xent_widen_bf16)(xb, x + r * C, C);
        VM_FN(xent_bwd_rows)(db, xb, tg + r, w, lse + r, g + r, 0, 1, C, ignore, eps, W, 0, 0, 0);
        VM_FN(xent_narrow_bf16)(dx + r * C, db, C);
    }
}
#endif
