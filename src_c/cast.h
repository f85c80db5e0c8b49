/* cast.h - float32 <-> bfloat16 / float16 conversions of contiguous arrays (cast.c).
 *
 * Half-precision values travel as their 16-bit patterns (uint16_t). Rounding is to nearest,
 * ties to even, overflow to +-inf, subnormals kept (no flush), bit for bit what torch's
 * Tensor.to() gives on the CPU, NaN included:
 *   f32 -> bf16  any NaN -> 0xffff
 *   f32 -> f16   a NaN keeps its sign and the top 10 bits of its payload, made quiet (F16C)
 *   bf16 -> f32  exact (the bits shifted up; NaN payloads kept)
 *   f16 -> f32   exact; a NaN keeps sign and payload, made quiet (F16C; torch's vectorised
 *                path, its scalar tail gives 0x7fffffff)
 * Threaded over chunks of n; the ISA path (avx512 / avx2 / generic) follows ce_isa (the avx2
 * f16 casts use F16C, which every CPU with AVX2 + FMA has; generic otherwise). */
#ifndef CE_CAST_H
#define CE_CAST_H
#include <stdint.h>

/* dst (n) uint16 bits, src (n) float32 */
void ce_cast_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
void ce_cast_f32_to_f16(uint16_t *dst, const float *src, int64_t n);
/* dst (n) float32, src (n) uint16 bits */
void ce_cast_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);
void ce_cast_f16_to_f32(float *dst, const uint16_t *src, int64_t n);
/* the same two casts on the calling thread only (no parallel region; ISA path from ce_isa), for
 * callers already inside one: the optimizers' fused refresh of autocast copies (optim.h) */
void ce_cast_f32_to_bf16_seg(uint16_t *dst, const float *src, int64_t n);
void ce_cast_f32_to_f16_seg(uint16_t *dst, const float *src, int64_t n);
/* plain scalar references, one thread */
void ce_cast_f32_to_bf16_ref(uint16_t *dst, const float *src, int64_t n);
void ce_cast_f32_to_f16_ref(uint16_t *dst, const float *src, int64_t n);
void ce_cast_bf16_to_f32_ref(float *dst, const uint16_t *src, int64_t n);
void ce_cast_f16_to_f32_ref(float *dst, const uint16_t *src, int64_t n);

/* dst (C, R) row-major = src (R, C)^T, src rows lds elements apart (lds >= C); 16-bit elements
 * (bf16/f16 patterns), for making a transposed GEMM operand row-major. Threaded. */
void ce_transpose_u16(uint16_t *dst, const uint16_t *src, int64_t R, int64_t C, int64_t lds);
void ce_transpose_u16_ref(uint16_t *dst, const uint16_t *src, int64_t R, int64_t C, int64_t lds);
#endif
