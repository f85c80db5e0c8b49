/* ewise_half_tmpl.h - loops of ewise_half.c over the vm_* layer (vmath.h) and its bfloat16
 * loads/stores (vmath_cvt.h); instantiated per ISA by isa_each.h, float32 instances only.
 * Tails go through VM_W-element stack copies whose unused lanes hold 0 OP 1 (no spurious
 * floating-point flags). */
#if !VM_IS_F64
#define CE_EWH_OP(OP, X, Y) \
    ((OP) == CE_EW_ADD ? vm_add(X, Y) : (OP) == CE_EW_SUB ? vm_sub(X, Y) \
     : (OP) == CE_EW_MUL ? vm_mul(X, Y) : vm_div(X, Y))

/* out (n) = bf16(a OP b) */
static void VM_FN(ewh_bf16)(int op, uint16_t *out, const uint16_t *a, const uint16_t *b,
                            int64_t n) {
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W)
        vm_store_bf16(out + i, CE_EWH_OP(op, vm_load_bf16(a + i), vm_load_bf16(b + i)));
    if (i < n) {
        uint16_t ta[VM_W], tb[VM_W], to[VM_W];
        for (int k = 0; k < VM_W; k++) {
            ta[k] = k < n - i ? a[i + k] : 0;
            tb[k] = k < n - i ? b[i + k] : 0x3f80u;   /* 1.0 */
        }
        vm_store_bf16(to, CE_EWH_OP(op, vm_load_bf16(ta), vm_load_bf16(tb)));
        for (int k = 0; k < n - i; k++) out[i + k] = to[k];
    }
}

/* out (n) = a OP float(b), or float(b) OP a when rev */
static void VM_FN(ewh_f32_bf16)(int op, float *out, const float *a, const uint16_t *b, int64_t n,
                                int rev) {
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W) {
        vm_t x = vm_load(a + i), y = vm_load_bf16(b + i);
        vm_store(out + i, rev ? CE_EWH_OP(op, y, x) : CE_EWH_OP(op, x, y));
    }
    if (i < n) {
        const int64_t r = n - i;
        uint16_t tb[VM_W];
        for (int k = 0; k < VM_W; k++) tb[k] = k < r ? b[i + k] : 0x3f80u;   /* 1.0 */
        vm_t x = vm_load_part_fill(a + i, r, 1), y = vm_load_bf16(tb);
        vm_store_part(out + i, r, rev ? CE_EWH_OP(op, y, x) : CE_EWH_OP(op, x, y));
    }
}
#undef CE_EWH_OP

/* out[j] = sum over i of g(i, j) for the columns j in [j0, j1), rows added in order, float32;
 * g (M, ld) row-major bfloat16 bits */
static void VM_FN(ewh_colsum_bf16)(float *out, const uint16_t *g, int64_t M, int64_t ld,
                                   int64_t j0, int64_t j1) {
    int64_t j = j0;
    for (; j + VM_W <= j1; j += VM_W) {
        vm_t acc = vm_zero();
        for (int64_t i = 0; i < M; i++) acc = vm_add(acc, vm_load_bf16(g + i * ld + j));
        vm_store(out + j, acc);
    }
    if (j < j1) {
        const int64_t r = j1 - j;
        vm_t acc = vm_zero();
        for (int64_t i = 0; i < M; i++) acc = vm_add(acc, vm_load_bf16_part(g + i * ld + j, r));
        vm_store_part(out + j, r, acc);
    }
}
#endif
