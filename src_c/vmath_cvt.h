/* vmath_cvt.h - half-precision loads and stores for the float32 pairs of vmath.h (include it
 * right after vmath.h, per instance; float64 pairs get nothing). Values in memory are the
 * 16-bit patterns (uint16_t); every conversion rounds to nearest even as torch's Tensor.to():
 *   vm_load_bf16(p) / vm_load_bf16_part(p, r)        VM_W bfloat16 -> float32 (exact)
 *   vm_store_bf16(p, v) / vm_store_bf16_part(p, r, v) float32 -> bfloat16, NaN -> 0xffff
 *   vm_load_f16(p) / vm_load_f16_part(p, r)          float16 -> float32 (exact), a NaN made quiet
 *   vm_store_f16(p, v) / vm_store_f16_part(p, r, v)   float32 -> float16, NaN quiet, sign and
 *                                                     top payload kept (the F16C result)
 * _part forms touch the first r < VM_W elements only (the others load as 0).
 * The AVX2 pair's f16 forms use F16C: this header turns it on for the rest of that instance
 * (callers must check the CPU has it). */
#include <string.h>

#ifndef CE_VMATH_CVT_SCALAR
#define CE_VMATH_CVT_SCALAR
static inline uint16_t ce_h_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0xffffu;
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline float ce_h_bf16_val(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t ce_h_f16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);   /* >= 65520 (and inf) -> inf */
    if (a >= 0x38800000u) {                                      /* a normal half */
        uint32_t r = a - 0x38000000u;
        return (uint16_t)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
    }
    uint32_t e = a >> 23;                                        /* subnormal half or zero */
    if (e < 102) return sign;
    uint32_t m = (a & 0x7fffffu) | 0x800000u, s = 126 - e;
    uint32_t k = m >> s, rem = m & ((1u << s) - 1u), half = 1u << (s - 1);
    if (rem > half || (rem == half && (k & 1u))) k++;
    return (uint16_t)(sign | k);
}
static inline float ce_h_f16_val(uint16_t h) {
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    float f;
    if (e == 31) {
        u = sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0u);
    } else if (e == 0) {
        f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    } else {
        u = sign | ((e + 112u) << 23) | (m << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}
#endif

#undef vm_load_bf16
#undef vm_load_bf16_part
#undef vm_store_bf16
#undef vm_store_bf16_part
#undef vm_load_f16
#undef vm_load_f16_part
#undef vm_store_f16
#undef vm_store_f16_part
#define vm_load_bf16 VM_FN(vm_load_bf16)
#define vm_load_bf16_part VM_FN(vm_load_bf16_part)
#define vm_store_bf16 VM_FN(vm_store_bf16)
#define vm_store_bf16_part VM_FN(vm_store_bf16_part)
#define vm_load_f16 VM_FN(vm_load_f16)
#define vm_load_f16_part VM_FN(vm_load_f16_part)
#define vm_store_f16 VM_FN(vm_store_f16)
#define vm_store_f16_part VM_FN(vm_store_f16_part)

#if CE_VM == CE_VM_AVX512_F32
/* rounded bfloat16 bits in the low half of each 32-bit lane */
static inline __m512i ce_vm_bf16_lanes_avx512_f32(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    return _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q),
                                 _mm512_set1_epi32(0xffff));
}
static inline void vm_store_bf16(uint16_t *p, __m512 x) {
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(ce_vm_bf16_lanes_avx512_f32(x)));
}
static inline void vm_store_bf16_part(uint16_t *p, int64_t r, __m512 x) {
    _mm512_mask_cvtepi32_storeu_epi16(p, ce_vm_tail_avx512_f32(r), ce_vm_bf16_lanes_avx512_f32(x));
}
static inline __m512 ce_vm_bf16_widen_avx512_f32(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline __m512 vm_load_bf16(const uint16_t *p) {
    return ce_vm_bf16_widen_avx512_f32(_mm256_loadu_si256((const __m256i *)p));
}
static inline __m512 vm_load_bf16_part(const uint16_t *p, int64_t r) {
    return ce_vm_bf16_widen_avx512_f32(_mm256_maskz_loadu_epi16(ce_vm_tail_avx512_f32(r), p));
}
#define CE_VM_F16_RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
static inline void vm_store_f16(uint16_t *p, __m512 x) {
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(x, CE_VM_F16_RND));
}
static inline void vm_store_f16_part(uint16_t *p, int64_t r, __m512 x) {
    _mm256_mask_storeu_epi16(p, ce_vm_tail_avx512_f32(r), _mm512_cvtps_ph(x, CE_VM_F16_RND));
}
static inline __m512 vm_load_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline __m512 vm_load_f16_part(const uint16_t *p, int64_t r) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(ce_vm_tail_avx512_f32(r), p));
}

#elif CE_VM == CE_VM_AVX2_F32
#pragma GCC target("avx2,fma,f16c")
/* 8 rounded bfloat16 patterns in the low 128 bits */
static inline __m128i ce_vm_bf16_pack_avx2_f32(__m256 x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    r = _mm256_or_si256(r, _mm256_srli_epi32(nan, 16));
    __m256i p = _mm256_packus_epi32(r, r);   /* per 128-bit lane: r0-3 r0-3 | r4-7 r4-7 */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}
static inline void vm_store_bf16(uint16_t *p, __m256 x) {
    _mm_storeu_si128((__m128i *)p, ce_vm_bf16_pack_avx2_f32(x));
}
static inline void vm_store_bf16_part(uint16_t *p, int64_t r, __m256 x) {
    uint16_t t[8];
    _mm_storeu_si128((__m128i *)t, ce_vm_bf16_pack_avx2_f32(x));
    memcpy(p, t, (size_t)r * 2);
}
static inline __m256 ce_vm_bf16_widen_avx2_f32(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline __m256 vm_load_bf16(const uint16_t *p) {
    return ce_vm_bf16_widen_avx2_f32(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256 vm_load_bf16_part(const uint16_t *p, int64_t r) {
    uint16_t t[8] = {0};
    memcpy(t, p, (size_t)r * 2);
    return vm_load_bf16(t);
}
#define CE_VM_F16_RND_AVX2 (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
static inline void vm_store_f16(uint16_t *p, __m256 x) {
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(x, CE_VM_F16_RND_AVX2));
}
static inline void vm_store_f16_part(uint16_t *p, int64_t r, __m256 x) {
    uint16_t t[8];
    _mm_storeu_si128((__m128i *)t, _mm256_cvtps_ph(x, CE_VM_F16_RND_AVX2));
    memcpy(p, t, (size_t)r * 2);
}
static inline __m256 vm_load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256 vm_load_f16_part(const uint16_t *p, int64_t r) {
    uint16_t t[8] = {0};
    memcpy(t, p, (size_t)r * 2);
    return vm_load_f16(t);
}

#elif CE_VM == CE_VM_SCALAR_F32
static inline void vm_store_bf16(uint16_t *p, float x) { *p = ce_h_bf16_bits(x); }
static inline void vm_store_bf16_part(uint16_t *p, int64_t r, float x) { if (r > 0) *p = ce_h_bf16_bits(x); }
static inline float vm_load_bf16(const uint16_t *p) { return ce_h_bf16_val(*p); }
static inline float vm_load_bf16_part(const uint16_t *p, int64_t r) { return r > 0 ? ce_h_bf16_val(*p) : 0.0f; }
static inline void vm_store_f16(uint16_t *p, float x) { *p = ce_h_f16_bits(x); }
static inline void vm_store_f16_part(uint16_t *p, int64_t r, float x) { if (r > 0) *p = ce_h_f16_bits(x); }
static inline float vm_load_f16(const uint16_t *p) { return ce_h_f16_val(*p); }
static inline float vm_load_f16_part(const uint16_t *p, int64_t r) { return r > 0 ? ce_h_f16_val(*p) : 0.0f; }
#endif
