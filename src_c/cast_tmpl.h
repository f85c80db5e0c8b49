/* cast_tmpl.h - row kernels of cast.c, written once over the vm_* layer (vmath.h) and its
 * half-precision loads/stores (vmath_cvt.h); instantiated per ISA by isa_each.h. Only the
 * float32 instances define anything. */
#if !VM_IS_F64
/* dst (n) bits = half(src (n)) */
static void VM_FN(cast_f32_bf16)(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W) vm_store_bf16(dst + i, vm_load(src + i));
    if (i < n) vm_store_bf16_part(dst + i, n - i, vm_load_part(src + i, n - i));
}

static void VM_FN(cast_f32_f16)(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W) vm_store_f16(dst + i, vm_load(src + i));
    if (i < n) vm_store_f16_part(dst + i, n - i, vm_load_part(src + i, n - i));
}

/* dst (n) = float32 of the bits src (n) */
static void VM_FN(cast_bf16_f32)(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W) vm_store(dst + i, vm_load_bf16(src + i));
    if (i < n) vm_store_part(dst + i, n - i, vm_load_bf16_part(src + i, n - i));
}

static void VM_FN(cast_f16_f32)(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + VM_W <= n; i += VM_W) vm_store(dst + i, vm_load_f16(src + i));
    if (i < n) vm_store_part(dst + i, n - i, vm_load_f16_part(src + i, n - i));
}
#endif
