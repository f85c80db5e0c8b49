/* amp_tmpl.h - SIMD body of the fused unscale, written once with the vm_* macros of vmath.h
 * and instantiated per (ISA, dtype) by isa_each.h (amp.c). Defines
 *   int VM_FN(amp_unscale)(vm_s *g, int64_t n, vm_s inv): g *= inv over n contiguous values;
 *   returns 1 when any value was NaN or +-inf before scaling.
 * The check sums x*0 over the values: 0 for finite x, NaN as soon as one is not. */
static int VM_FN(amp_unscale)(vm_s *g, int64_t n, vm_s inv) {
    const vm_t vi = vm_set1(inv), z = vm_zero();
    vm_t acc = z;
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W) {
        vm_t x = vm_load(g + i);
        acc = vm_add(acc, vm_mul(x, z));
        vm_store(g + i, vm_mul(x, vi));
    }
    if (i < n) {
        vm_t x = vm_load_part(g + i, n - i);
        acc = vm_add(acc, vm_mul(x, z));
        vm_store_part(g + i, n - i, vm_mul(x, vi));
    }
    vm_s s = vm_hsum(acc);
    return s != s;
}
