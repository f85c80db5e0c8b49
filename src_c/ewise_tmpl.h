/* ewise_tmpl.h - out = a OP b over n contiguous elements, written once with the vm_* macros of
 * vmath.h; included by ewise.c once per (ISA, dtype) pair through isa_each.h (the one-lane scalar
 * pairs are the generic path). out may alias a or b (each vector is read before it is written).
 * One IEEE operation per element, so every instance gives the plain loop's bits. */
#define CE_EW_LOOP(OP)                                                                          \
    do {                                                                                        \
        int64_t i = 0;                                                                          \
        for (; i + VM_W <= n; i += VM_W) vm_store(out + i, OP(vm_load(a + i), vm_load(b + i))); \
        if (i < n)                                                                              \
            vm_store_part(out + i, n - i,                                                       \
                          OP(vm_load_part(a + i, n - i), vm_load_part_fill(b + i, n - i, 1)));  \
    } while (0)

static void VM_FN(ew)(int op, vm_s *out, const vm_s *a, const vm_s *b, int64_t n) {
    switch (op) {
    case CE_EW_ADD: CE_EW_LOOP(vm_add); break;
    case CE_EW_SUB: CE_EW_LOOP(vm_sub); break;
    case CE_EW_MUL: CE_EW_LOOP(vm_mul); break;
    default: CE_EW_LOOP(vm_div); break;   /* tail lanes divide 0 by 1: no spurious flags */
    }
}
#undef CE_EW_LOOP
