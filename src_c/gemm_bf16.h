/* gemm_bf16.h - bfloat16 matrix products with float32 accumulation, and f32 <-> bf16 casts.
 *
 *   for b in [0, nb), b2 in [0, nb2):
 *       C_b = alpha * rnd(A_b) @ rnd(B_b) + beta * C_b  (+ bias along the columns)
 *
 *   A_b (M,K): element (i,p) at A[b*sAb + b2*sAb2 + i*rsA + p*csA]
 *   B_b (K,N): element (p,j) at B[b*sBb + b2*sBb2 + p*rsB + j*csB]
 *   C_b (M,N): element (i,j) at C[b*sCb + b2*sCb2 + i*rsC + j*csC], float32
 * (two batch dimensions with their own strides: the (batch, head) views of attention go in
 * as they are; nb2 = 1 for one)
 * A and B hold float32 (dtA/dtB = CE_BF16_SRC_F32: rnd rounds each value to the nearest
 * bfloat16, ties to even, while packing) or bfloat16 bit patterns (CE_BF16_SRC_BF16, uint16_t:
 * rnd is the identity). Products of two bfloat16 values are exact in float32; the sums are
 * float32. Strides are in elements, >= 0 (0 broadcasts an operand over the batch); C must not
 * overlap A or B and distinct (b,i,j) must be distinct elements of C. beta == 0 overwrites C
 * without reading it; K == 0 gives C = beta*C (+ bias). bias (NULL for none) is float32,
 * C(i,j) += bias[j*sbias]. A bfloat16 result is this float32 C cast with ce_f32_to_bf16.
 *
 * Operands may be row- or column-major (or any strides): a k-contiguous B and a column-major A
 * are packed through 16 x 16 in-register transposes, as fast as the row-major layouts, so
 * callers pass transposed views without copying them.
 *
 * Paths: with AMX-BF16 (tiles, 32 x 32 C blocks) or AVX512_BF16 (vdpbf16ps, a 12 x 32
 * register tile), at ce_isa == avx512, operands are packed into k-pairs of bfloat16 (one 32-bit
 * lane = elements k and k+1), Goto blocking (K in equal even blocks of at most 1024, 2048 for AMX;
 * row blocks of at most 192 rows in whole register-tile panels, a multiple of the thread count of
 * them with equal panel counts; NC = 2048) and threads over row blocks (and column groups when M
 * is short); on AVX512_BF16 a batch of small products (M <= 192, N <= 2048, K in one K block)
 * splits its elements across the threads instead, each element packed and multiplied whole by
 * one thread (a bfloat16 A with k contiguous and K even read in place, unpacked). The K loop is
 * never split, so results do not depend on the thread count. Otherwise the operands are rounded to bfloat16 into float32
 * copies and ce_sgemm runs on them: the same products, float32 sums in another order.
 * The bf16 instructions treat subnormal bfloat16 inputs as zero and flush subnormal results;
 * the float32 path keeps them.
 */
#ifndef CE_GEMM_BF16_H
#define CE_GEMM_BF16_H
#include "common.h"

enum { CE_BF16_SRC_F32 = 0, CE_BF16_SRC_BF16 = 1 };

void ce_gemm_bf16(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                  const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                  const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                  float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                  const float *bias, int64_t sbias);
/* plain reference, same contract: rounds the operands, sums each product in double */
void ce_gemm_bf16_ref(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                      const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                      const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                      float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                      const float *bias, int64_t sbias);
/* the same product with a bfloat16 C (uint16_t bit patterns; strides in elements): beta reads
 * C's values, and each element's float32 result (the sum, alpha, beta, bias as above) is
 * rounded once, as ce_cast_f32_to_bf16 (cast.h) rounds: nearest even, any NaN -> 0xffff.
 * On the tiled paths with K within one K block the tiles write bfloat16 directly (no float32
 * C in memory); otherwise through a float32 copy. */
void ce_gemm_bf16_to_bf16(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                          const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                          const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                          float beta, uint16_t *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                          const float *bias, int64_t sbias);
/* reference: ce_gemm_bf16_ref into a float32 copy, then rounded as above */
void ce_gemm_bf16_to_bf16_ref(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                              const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                              const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                              float beta, uint16_t *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                              const float *bias, int64_t sbias);
/* the path ce_gemm_bf16 takes now: 2 AMX-BF16 tiles, 1 AVX512_BF16 (vdpbf16ps), 0 rounded
 * float32 copies on ce_sgemm. Paths 1-2 need ce_isa == avx512 and the CPU feature (AMX also
 * the Linux tile-data permission, requested on first use); CENGINE_BF16_AMX=0 in the
 * environment keeps AMX off. */
int ce_gemm_bf16_path(void);
/* cap the path (tests, benchmarks); -1 for a value outside 0..2 */
int ce_gemm_bf16_set_max_path(int path);

/* dst (n) = bfloat16 bits of src (n), round to nearest even; a NaN keeps its sign and the top
 * of its payload and is made quiet (float NaN 0x7fc00000 -> 0x7fc0, as torch's and ml_dtypes'
 * scalar conversions). Threaded, SIMD. */
void ce_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
/* dst (n) = the float32 value of the bfloat16 bits src (n) (exact) */
void ce_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);
void ce_f32_to_bf16_ref(uint16_t *dst, const float *src, int64_t n);
void ce_bf16_to_f32_ref(float *dst, const uint16_t *src, int64_t n);

#endif
