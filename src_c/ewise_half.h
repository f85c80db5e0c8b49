/* ewise_half.h - elementwise binary arithmetic on bfloat16 storage (ewise_half.c).
 *
 * bfloat16 values travel as their 16-bit patterns (uint16_t). Each element is computed in
 * float32 from the exact float32 values of its operands, one IEEE operation, and (for a
 * bfloat16 result) rounded once to nearest even, any NaN -> 0xffff: bit for bit what casting
 * the operands to float32 (cast.h), the float32 kernel (ewise.h) and the cast back give, and
 * what torch computes for bfloat16 tensors on the CPU. OP is CE_EW_ADD/SUB/MUL/DIV (ewise.h).
 * out may alias an operand of its own type (each vector is read before it is written).
 * Threaded over chunks of n; the ISA path (avx512 / avx2 / generic) follows ce_isa. */
#ifndef CE_EWISE_HALF_H
#define CE_EWISE_HALF_H
#include "common.h"

/* out (n) = bf16(a OP b), a, b, out (n) bfloat16 bits */
void ce_ewise_bf16(int op, uint16_t *out, const uint16_t *a, const uint16_t *b, int64_t n);
/* out (n) float32 = a OP float(b) (rev == 0) or float(b) OP a (rev != 0); a (n) float32,
 * b (n) bfloat16 bits: the float32 op of a mixed pair, without a float32 copy of b */
void ce_ewise_f32_bf16(int op, float *out, const float *a, const uint16_t *b, int64_t n, int rev);
/* out (N) float32 = the column sums of g (M, N) bfloat16 bits, rows ld elements apart: float32
 * additions row by row in order (the same sums on every path and thread count) */
void ce_colsum_bf16(float *out, const uint16_t *g, int64_t M, int64_t N, int64_t ld);
/* plain single-threaded loops, same contracts */
void ce_ewise_bf16_ref(int op, uint16_t *out, const uint16_t *a, const uint16_t *b, int64_t n);
void ce_ewise_f32_bf16_ref(int op, float *out, const float *a, const uint16_t *b, int64_t n,
                           int rev);
void ce_colsum_bf16_ref(float *out, const uint16_t *g, int64_t M, int64_t N, int64_t ld);
#endif
