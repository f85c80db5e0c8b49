/* vmath.h - a thin SIMD abstraction plus vectorised exp / sigmoid / tanh / log1p / erfc.
 *
 * Re-includable template. A kernel file selects one (ISA, dtype) pair and includes this header
 * inside a region compiled for that ISA, e.g.
 *
 *     #include <immintrin.h>
 *     #pragma GCC push_options
 *     #pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")
 *     #define CE_VM CE_VM_AVX512_F32
 *     #include "vmath.h"          // vm_t, vm_add, ..., VM_FN(vexp) = ce_vexp_avx512_f32, ...
 *     #include "softmax_tmpl.h"   // kernel bodies written once with the vm_* macros
 *     #undef CE_VM
 *     #pragma GCC pop_options
 *
 * Pairs: CE_VM_AVX512_F32/F64, CE_VM_AVX2_F32/F64, and CE_VM_SCALAR_F32/F64 (one-lane plain C
 * "vectors": the same templates then give the generic path; math maps to libm). Include each
 * pair at most once per translation unit (its helper functions are not re-entrant-guarded).
 * Inside, one block per ISA serves both dtypes: CE_VM_X(op) is the pair's intrinsic
 * (_mm512_<op>_ps / _pd, _mm256_<op>_ps / _pd) and the operations both ISAs spell alike follow
 * the blocks once.
 * Each inclusion (re)defines the macros below for that pair and defines static inline functions
 * whose names carry the pair's suffix (so several pairs coexist in one translation unit):
 *   types   vm_t (vector), vm_m (comparison mask), vm_s (scalar), VM_W (lanes)
 *   memory  vm_load/vm_store (unaligned), vm_load_part(p, r)/vm_store_part(p, r, v) for the
 *           first r < VM_W lanes (others read as 0, not written), vm_load_part_fill(p, r, fill)
 *           vm_gather_i32(p, ix) = (p[ix[0]], ..., p[ix[VM_W-1]]) for VM_W int32 indices at ix
 *   arith   vm_set1 vm_zero vm_add vm_sub vm_mul vm_div vm_fmadd(a,b,c)=a*b+c
 *           vm_fnmadd(a,b,c)=c-a*b vm_min vm_max (x86 semantics: NaN in the 2nd operand is
 *           returned, so vm_max(c, x) propagates a NaN x) vm_abs vm_round (to nearest) vm_sqrt
 *   logic   vm_lt vm_le vm_gt vm_ge (ordered: false on NaN) -> vm_m; vm_unord(a, b) (a or b NaN);
 *           vm_mand vm_mor (masks); vm_any(m) (any lane set, as int); vm_sel(m, t, f) = m ? t : f;
 *           vm_and vm_or vm_andnot(a, b) = ~a & b (bitwise on vectors)
 *   reduce  vm_hsum vm_hmax (horizontal, to a scalar)
 *   dacc    double accumulation whatever the dtype (sums of squares for norms):
 *           vm_dacc_t (VM_W double lanes), vm_dacc_zero(), vm_dacc_sq(acc, v) = acc + v*v per
 *           lane in double, vm_dacc_add(a, b), vm_dacc_hsum(acc) -> double
 *   stream  vm_stream(p, v) non-temporal store (p aligned to VM_W*sizeof(vm_s)); vm_head(p, n)
 *           = elements before p reaches that alignment (<= n); callers _mm_sfence() afterwards
 *   math    VM_FN(vexp)(x)   exp, ~1 ulp, exact 0 / inf at under/overflow (denormals kept), NaN kept
 *           VM_FN(vexp_poly)(hi, lo, with_lo) the unclamped core of every exp: exp(hi) or, with
 *           with_lo = 1, exp(hi + lo) for an exact hi and a small lo
 *           VM_FN(vexp_ftz)(x) exp, ~1 ulp, with results below the smallest normal number
 *           flushed to exactly 0 (no subnormal assists), exact inf above overflow, NaN kept;
 *           AVX-512 float32: a 16-entry table of 2^(j/16) and a cubic (cross-entropy's exp);
 *           other pairs: vexp_poly
 *           VM_FN(vsigmoid)(x) 1/(1+exp(-x)) without overflow (sigmoid(-1000) = 0)
 *           VM_FN(vtanh)(x)  odd polynomial/rational for |x| < 0.625, else via exp; tanh(+-inf)=+-1
 *           VM_FN(vlog1p01)(u) log1p(u) for u in [0, 1] (what softplus needs)
 *           VM_FN(vlog_core)(m) log(m) for m in [1/sqrt2, sqrt2]; add k*log 2 as
 *           k*VM_LN2HI + k*VM_LN2LO (the CTC kernels' log of a log-sum-exp sum uses it)
 *           VM_FN(verfc_p)(t) the polynomial of the Numerical-Recipes erfc form
 *           erfc(z) = t*exp(-z^2 + P(t)), t = 1/(1 + z/2) (f32 accuracy; the exact GELU's)
 *
 * Scalars on the generic path use libm; nothing here is used without an ISA region.
 */
#ifndef CE_VMATH_ONCE
#define CE_VMATH_ONCE
#include <immintrin.h>
#include <stdint.h>
#define CE_VM_AVX2_F32 1
#define CE_VM_AVX2_F64 2
#define CE_VM_AVX512_F32 3
#define CE_VM_AVX512_F64 4
#define CE_VM_SCALAR_F32 5   /* one-lane "vectors" in plain C: the generic path of templated kernels */
#define CE_VM_SCALAR_F64 6
#include <math.h>
#define CE_VM_CAT3_(a, b, c) a##_##b##_##c
#define CE_VM_CAT3(a, b, c) CE_VM_CAT3_(a, b, c)
#endif

#ifdef CE_VM

#undef VM_W
#undef VM_SUF
#undef VM_IS_F64
#undef VM_FN
#undef vm_t
#undef vm_m
#undef vm_s
#undef vm_set1
#undef vm_zero
#undef vm_load
#undef vm_store
#undef vm_add
#undef vm_sub
#undef vm_mul
#undef vm_div
#undef vm_fmadd
#undef vm_fnmadd
#undef vm_fmsub
#undef vm_min
#undef vm_max
#undef vm_sqrt
#undef vm_abs
#undef vm_round
#undef vm_floor
#undef vm_lt
#undef vm_le
#undef vm_gt
#undef vm_ge
#undef vm_sel
#undef vm_and
#undef vm_or
#undef vm_andnot
#undef vm_mand
#undef vm_mor
#undef vm_unord
#undef vm_any
#undef vm_signbit
#undef vm_stream
#undef vm_dacc_t
#undef CE_VM_X
#undef CE_VM_CMP
#define VM_FN(name) CE_VM_CAT3(ce, name, VM_SUF)   /* this pair's instance of name */

/* ------------------------------------------------------------------------------------------ */
/* AVX-512, float32 and float64: CE_VM_X(op) is the intrinsic _mm512_<op>_ps / _mm512_<op>_pd */
#if CE_VM == CE_VM_AVX512_F32 || CE_VM == CE_VM_AVX512_F64
#if CE_VM == CE_VM_AVX512_F32
#define VM_W 16
#define VM_SUF avx512_f32
#define VM_IS_F64 0
typedef __m512 ce_vm_t_avx512_f32;
typedef __mmask16 ce_vm_m_avx512_f32;
#define vm_t ce_vm_t_avx512_f32
#define vm_m ce_vm_m_avx512_f32
#define vm_s float
#define CE_VM_X(op) _mm512_##op##_ps
#define CE_VM_CMP(a, b, pred) _mm512_cmp_ps_mask(a, b, pred)
#else
#define VM_W 8
#define VM_SUF avx512_f64
#define VM_IS_F64 1
typedef __m512d ce_vm_t_avx512_f64;
typedef __mmask8 ce_vm_m_avx512_f64;
#define vm_t ce_vm_t_avx512_f64
#define vm_m ce_vm_m_avx512_f64
#define vm_s double
#define CE_VM_X(op) _mm512_##op##_pd
#define CE_VM_CMP(a, b, pred) _mm512_cmp_pd_mask(a, b, pred)
#endif
#define vm_abs CE_VM_X(abs)
#define vm_round(a) CE_VM_X(roundscale)(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vm_floor(a) CE_VM_X(roundscale)(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
#define vm_lt(a, b) CE_VM_CMP(a, b, _CMP_LT_OQ)
#define vm_le(a, b) CE_VM_CMP(a, b, _CMP_LE_OQ)
#define vm_gt(a, b) CE_VM_CMP(a, b, _CMP_GT_OQ)
#define vm_ge(a, b) CE_VM_CMP(a, b, _CMP_GE_OQ)
#define vm_sel(m, t, f) CE_VM_X(mask_blend)(m, f, t)
#define vm_mand(a, b) ((vm_m)((a) & (b)))
#define vm_mor(a, b) ((vm_m)((a) | (b)))
#define vm_unord(a, b) CE_VM_CMP(a, b, _CMP_UNORD_Q)
#define vm_any(m) ((m) != 0)
static inline vm_m CE_VM_CAT3(ce_vm, tail, VM_SUF)(int64_t r) { return (vm_m)((1u << r) - 1u); }
static inline vm_t CE_VM_CAT3(ce_vm, load_part, VM_SUF)(const vm_s *p, int64_t r) {
    return CE_VM_X(maskz_loadu)(CE_VM_CAT3(ce_vm, tail, VM_SUF)(r), p);
}
static inline vm_t CE_VM_CAT3(ce_vm, load_part_fill, VM_SUF)(const vm_s *p, int64_t r, vm_s fill) {
    return CE_VM_X(mask_loadu)(CE_VM_X(set1)(fill), CE_VM_CAT3(ce_vm, tail, VM_SUF)(r), p);
}
static inline void CE_VM_CAT3(ce_vm, store_part, VM_SUF)(vm_s *p, int64_t r, vm_t v) {
    CE_VM_X(mask_storeu)(p, CE_VM_CAT3(ce_vm, tail, VM_SUF)(r), v);
}
static inline vm_s CE_VM_CAT3(ce_vm, hsum, VM_SUF)(vm_t v) { return CE_VM_X(reduce_add)(v); }
static inline vm_s CE_VM_CAT3(ce_vm, hmax, VM_SUF)(vm_t v) { return CE_VM_X(reduce_max)(v); }
/* p * 2^n for integral n (any range: scalef rounds to denormal / inf correctly) */
static inline vm_t CE_VM_CAT3(ce_vm, ldexp, VM_SUF)(vm_t p, vm_t n) { return CE_VM_X(scalef)(p, n); }
static inline vm_t CE_VM_CAT3(ce_vm, gather_i32, VM_SUF)(const vm_s *p, const int32_t *ix) {
#if CE_VM == CE_VM_AVX512_F32
    return _mm512_i32gather_ps(_mm512_loadu_si512((const void *)ix), p, 4);
#else
    return _mm512_i32gather_pd(_mm256_loadu_si256((const __m256i *)ix), p, 8);
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* AVX2 + FMA, float32 and float64: CE_VM_X(op) is _mm256_<op>_ps / _mm256_<op>_pd; masks are
 * vectors with all bits of a lane set */
#elif CE_VM == CE_VM_AVX2_F32 || CE_VM == CE_VM_AVX2_F64
#if CE_VM == CE_VM_AVX2_F32
#define VM_W 8
#define VM_SUF avx2_f32
#define VM_IS_F64 0
typedef __m256 ce_vm_t_avx2_f32;
typedef __m256 ce_vm_m_avx2_f32;
#define vm_t ce_vm_t_avx2_f32
#define vm_m ce_vm_m_avx2_f32
#define vm_s float
#define CE_VM_X(op) _mm256_##op##_ps
#else
#define VM_W 4
#define VM_SUF avx2_f64
#define VM_IS_F64 1
typedef __m256d ce_vm_t_avx2_f64;
typedef __m256d ce_vm_m_avx2_f64;
#define vm_t ce_vm_t_avx2_f64
#define vm_m ce_vm_m_avx2_f64
#define vm_s double
#define CE_VM_X(op) _mm256_##op##_pd
#endif
#define vm_abs(a) CE_VM_X(andnot)(CE_VM_X(set1)((vm_s)-0.0), a)
#define vm_round(a) CE_VM_X(round)(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vm_floor(a) CE_VM_X(round)(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
#define vm_lt(a, b) CE_VM_X(cmp)(a, b, _CMP_LT_OQ)
#define vm_le(a, b) CE_VM_X(cmp)(a, b, _CMP_LE_OQ)
#define vm_gt(a, b) CE_VM_X(cmp)(a, b, _CMP_GT_OQ)
#define vm_ge(a, b) CE_VM_X(cmp)(a, b, _CMP_GE_OQ)
#define vm_sel(m, t, f) CE_VM_X(blendv)(f, t, m)
#define vm_mand CE_VM_X(and)
#define vm_mor CE_VM_X(or)
#define vm_unord(a, b) CE_VM_X(cmp)(a, b, _CMP_UNORD_Q)
#define vm_any(m) (CE_VM_X(movemask)(m) != 0)
#ifndef CE_VMATH_HSUM4D
#define CE_VMATH_HSUM4D
/* sum of the 4 doubles of an AVX register (the f64 vm_hsum and the f32 double accumulator) */
static inline double ce_vm_hsum4d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}
#endif
#if CE_VM == CE_VM_AVX2_F32
static inline __m256i ce_vm_tail_avx2_f32(int64_t r) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline float ce_vm_hsum_avx2_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float ce_vm_hmax_avx2_f32(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* p * 2^n for integral n in [-252, 254] (two exact power-of-two factors, one final rounding) */
static inline __m256 ce_vm_ldexp_avx2_f32(__m256 p, __m256 n) {
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256i b = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, b), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, b), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}
#else
static inline __m256i ce_vm_tail_avx2_f64(int64_t r) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline double ce_vm_hsum_avx2_f64(__m256d v) { return ce_vm_hsum4d(v); }
static inline double ce_vm_hmax_avx2_f64(__m256d v) {
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_max_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}
/* p * 2^n for integral n in [-2044, 2046]: split in two halves, build 2^k from the bits */
static inline __m256d ce_vm_ldexp_avx2_f64(__m256d p, __m256d n) {
    __m256d n1 = _mm256_round_pd(_mm256_mul_pd(n, _mm256_set1_pd(0.5)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m256d n2 = _mm256_sub_pd(n, n1);
    const __m256d magic = _mm256_set1_pd(6755399441055744.0); /* 1.5 * 2^52 */
    __m256i b = _mm256_set1_epi64x(1023);
    __m256i k1 = _mm256_castpd_si256(_mm256_add_pd(n1, magic));
    __m256i k2 = _mm256_castpd_si256(_mm256_add_pd(n2, magic));
    __m256d s1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k1, b), 52));
    __m256d s2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k2, b), 52));
    return _mm256_mul_pd(_mm256_mul_pd(p, s1), s2);
}
#endif
static inline vm_t CE_VM_CAT3(ce_vm, load_part, VM_SUF)(const vm_s *p, int64_t r) {
    return CE_VM_X(maskload)(p, CE_VM_CAT3(ce_vm, tail, VM_SUF)(r));
}
static inline vm_t CE_VM_CAT3(ce_vm, load_part_fill, VM_SUF)(const vm_s *p, int64_t r, vm_s fill) {
    __m256i m = CE_VM_CAT3(ce_vm, tail, VM_SUF)(r);
    return CE_VM_X(blendv)(CE_VM_X(set1)(fill), CE_VM_X(maskload)(p, m), CE_VM_X(castsi256)(m));
}
static inline void CE_VM_CAT3(ce_vm, store_part, VM_SUF)(vm_s *p, int64_t r, vm_t v) {
    CE_VM_X(maskstore)(p, CE_VM_CAT3(ce_vm, tail, VM_SUF)(r), v);
}
static inline vm_t CE_VM_CAT3(ce_vm, gather_i32, VM_SUF)(const vm_s *p, const int32_t *ix) {
#if CE_VM == CE_VM_AVX2_F32
    return _mm256_i32gather_ps(p, _mm256_loadu_si256((const __m256i *)ix), 4);
#else
    return _mm256_i32gather_pd(p, _mm_loadu_si128((const __m128i *)ix), 8);
#endif
}
/* ------------------------------------------------------------------------------------------ */
#elif CE_VM == CE_VM_SCALAR_F32 || CE_VM == CE_VM_SCALAR_F64
#define VM_W 1
#if CE_VM == CE_VM_SCALAR_F32
#define VM_SUF scalar_f32
#define VM_IS_F64 0
#define vm_t float
#define vm_s float
#else
#define VM_SUF scalar_f64
#define VM_IS_F64 1
#define vm_t double
#define vm_s double
#endif
#define vm_m int
#define vm_set1(a) ((vm_s)(a))
#define vm_zero() ((vm_s)0)
#define vm_load(p) (*(p))
#define vm_store(p, v) (*(p) = (v))
#define vm_add(a, b) ((a) + (b))
#define vm_sub(a, b) ((a) - (b))
#define vm_mul(a, b) ((a) * (b))
#define vm_div(a, b) ((a) / (b))
#define vm_fmadd(a, b, c) ((a) * (b) + (c))
#define vm_fnmadd(a, b, c) ((c) - (a) * (b))
#define vm_fmsub(a, b, c) ((a) * (b) - (c))
#define vm_min(a, b) ((a) < (b) ? (a) : (b))
#define vm_max(a, b) ((a) > (b) ? (a) : (b))
#define vm_lt(a, b) ((a) < (b))
#define vm_le(a, b) ((a) <= (b))
#define vm_gt(a, b) ((a) > (b))
#define vm_ge(a, b) ((a) >= (b))
#define vm_sel(m, t, f) ((m) ? (t) : (f))
#define vm_mand(a, b) ((a) && (b))
#define vm_stream(p, v) (*(p) = (v))
#define vm_mor(a, b) ((a) || (b))
#define vm_unord(a, b) ((a) != (a) || (b) != (b))
#define vm_any(m) ((m) != 0)
#if CE_VM == CE_VM_SCALAR_F32
#define vm_sqrt sqrtf
#define vm_abs fabsf
#else
#define vm_sqrt sqrt
#define vm_abs fabs
#endif
/* never called with r >= 1 lanes missing (VM_W == 1), defined for completeness */
static inline vm_s CE_VM_CAT3(ce_vm, load_part, VM_SUF)(const vm_s *p, int64_t r) { return r > 0 ? *p : 0; }
static inline vm_s CE_VM_CAT3(ce_vm, load_part_fill, VM_SUF)(const vm_s *p, int64_t r, vm_s f) { return r > 0 ? *p : f; }
static inline void CE_VM_CAT3(ce_vm, store_part, VM_SUF)(vm_s *p, int64_t r, vm_s v) { if (r > 0) *p = v; }
static inline vm_s CE_VM_CAT3(ce_vm, hsum, VM_SUF)(vm_s v) { return v; }
static inline vm_s CE_VM_CAT3(ce_vm, hmax, VM_SUF)(vm_s v) { return v; }
static inline vm_s CE_VM_CAT3(ce_vm, gather_i32, VM_SUF)(const vm_s *p, const int32_t *ix) {
    return p[ix[0]];
}
#else
#error "unknown CE_VM"
#endif
#if CE_VM != CE_VM_SCALAR_F32 && CE_VM != CE_VM_SCALAR_F64
/* the operations AVX-512 and AVX2 name alike (CE_VM_X(op): this pair's intrinsic for op) */
#define vm_set1(a) CE_VM_X(set1)(a)
#define vm_zero() CE_VM_X(setzero)()
#define vm_load(p) CE_VM_X(loadu)(p)
#define vm_store(p, v) CE_VM_X(storeu)(p, v)
#define vm_add CE_VM_X(add)
#define vm_sub CE_VM_X(sub)
#define vm_mul CE_VM_X(mul)
#define vm_div CE_VM_X(div)
#define vm_fmadd CE_VM_X(fmadd)
#define vm_fnmadd CE_VM_X(fnmadd)
#define vm_fmsub CE_VM_X(fmsub)
#define vm_min CE_VM_X(min)
#define vm_max CE_VM_X(max)
#define vm_sqrt CE_VM_X(sqrt)
#define vm_and CE_VM_X(and)
#define vm_or CE_VM_X(or)
#define vm_andnot CE_VM_X(andnot)
#define vm_signbit() CE_VM_X(set1)((vm_s)-0.0)
#define vm_stream(p, v) CE_VM_X(stream)(p, v)
#endif

#undef vm_slog
#if VM_IS_F64
#define vm_slog(s) log(s)   /* scalar log in the pair's precision */
#else
#define vm_slog(s) logf(s)
#endif
/* elements before p is aligned for vm_stream (VM_W * sizeof(vm_s) bytes), at most n */
#define vm_head(p, n)                                                                              \
    ((int64_t)(((VM_W * sizeof(vm_s) - ((uintptr_t)(p) & (VM_W * sizeof(vm_s) - 1))) &            \
                (VM_W * sizeof(vm_s) - 1)) / sizeof(vm_s)) < (n)                                   \
         ? (int64_t)(((VM_W * sizeof(vm_s) - ((uintptr_t)(p) & (VM_W * sizeof(vm_s) - 1))) &       \
                      (VM_W * sizeof(vm_s) - 1)) / sizeof(vm_s))                                   \
         : (n))
#define vm_load_part VM_FN(vm_load_part)
#define vm_load_part_fill VM_FN(vm_load_part_fill)
#define vm_store_part VM_FN(vm_store_part)
#define vm_hsum VM_FN(vm_hsum)
#define vm_hmax VM_FN(vm_hmax)
#define vm_ldexp VM_FN(vm_ldexp)
#define vm_gather_i32 VM_FN(vm_gather_i32)

/* ---- double accumulators (vm_dacc_*), once per pair and translation unit ------------------- */
#define vm_dacc_zero VM_FN(vm_dacc_zero)
#define vm_dacc_sq VM_FN(vm_dacc_sq)
#define vm_dacc_add VM_FN(vm_dacc_add)
#define vm_dacc_hsum VM_FN(vm_dacc_hsum)
#if CE_VM == CE_VM_AVX512_F32
#define vm_dacc_t ce_vm_dacc_avx512_f32
#elif CE_VM == CE_VM_AVX512_F64
#define vm_dacc_t __m512d
#elif CE_VM == CE_VM_AVX2_F32
#define vm_dacc_t ce_vm_dacc_avx2_f32
#elif CE_VM == CE_VM_AVX2_F64
#define vm_dacc_t __m256d
#else
#define vm_dacc_t double
#endif
#undef CE_VM_D
#undef CE_VM_LO
#undef CE_VM_HI
#undef CE_VM_DHSUM
#if (CE_VM == CE_VM_AVX512_F32 && !defined(CE_VMATH_DACC_3)) || \
    (CE_VM == CE_VM_AVX2_F32 && !defined(CE_VMATH_DACC_1))
/* float32 vectors: two double vectors, one for each half of the lanes. CE_VM_D(op) is the
 * double intrinsic of the same width, CE_VM_LO/HI the halves of a float vector */
#if CE_VM == CE_VM_AVX512_F32
#define CE_VMATH_DACC_3
typedef struct { __m512d lo, hi; } ce_vm_dacc_avx512_f32;
#define CE_VM_D(op) _mm512_##op##_pd
#define CE_VM_LO(v) _mm512_castps512_ps256(v)
#define CE_VM_HI(v) _mm512_extractf32x8_ps(v, 1)
#define CE_VM_DHSUM(d) _mm512_reduce_add_pd(d)
#else
#define CE_VMATH_DACC_1
typedef struct { __m256d lo, hi; } ce_vm_dacc_avx2_f32;
#define CE_VM_D(op) _mm256_##op##_pd
#define CE_VM_LO(v) _mm256_castps256_ps128(v)
#define CE_VM_HI(v) _mm256_extractf128_ps(v, 1)
#define CE_VM_DHSUM(d) ce_vm_hsum4d(d)
#endif
static inline vm_dacc_t vm_dacc_zero(void) {
    vm_dacc_t a = {CE_VM_D(setzero)(), CE_VM_D(setzero)()};
    return a;
}
static inline vm_dacc_t vm_dacc_sq(vm_dacc_t a, vm_t v) {
    vm_dacc_t d = {CE_VM_D(cvtps)(CE_VM_LO(v)), CE_VM_D(cvtps)(CE_VM_HI(v))};
    a.lo = CE_VM_D(fmadd)(d.lo, d.lo, a.lo);
    a.hi = CE_VM_D(fmadd)(d.hi, d.hi, a.hi);
    return a;
}
static inline vm_dacc_t vm_dacc_add(vm_dacc_t a, vm_dacc_t b) {
    a.lo = CE_VM_D(add)(a.lo, b.lo);
    a.hi = CE_VM_D(add)(a.hi, b.hi);
    return a;
}
static inline double vm_dacc_hsum(vm_dacc_t a) { return CE_VM_DHSUM(CE_VM_D(add)(a.lo, a.hi)); }
#elif (CE_VM == CE_VM_AVX512_F64 && !defined(CE_VMATH_DACC_4)) || \
    (CE_VM == CE_VM_AVX2_F64 && !defined(CE_VMATH_DACC_2))
/* float64 vectors accumulate in themselves */
#if CE_VM == CE_VM_AVX512_F64
#define CE_VMATH_DACC_4
#else
#define CE_VMATH_DACC_2
#endif
static inline vm_t vm_dacc_zero(void) { return vm_zero(); }
static inline vm_t vm_dacc_sq(vm_t a, vm_t v) { return vm_fmadd(v, v, a); }
static inline vm_t vm_dacc_add(vm_t a, vm_t b) { return vm_add(a, b); }
static inline double vm_dacc_hsum(vm_t a) { return vm_hsum(a); }
#elif (CE_VM == CE_VM_SCALAR_F32 && !defined(CE_VMATH_DACC_5)) || \
    (CE_VM == CE_VM_SCALAR_F64 && !defined(CE_VMATH_DACC_6))
#if CE_VM == CE_VM_SCALAR_F32
#define CE_VMATH_DACC_5
#else
#define CE_VMATH_DACC_6
#endif
static inline double vm_dacc_zero(void) { return 0.0; }
static inline double vm_dacc_sq(double a, vm_s v) { return a + (double)v * (double)v; }
static inline double vm_dacc_add(double a, double b) { return a + b; }
static inline double vm_dacc_hsum(double a) { return a; }
#endif

/* ---- math functions (guarded so one pair is defined once per translation unit) ------------ */
#if (CE_VM == CE_VM_SCALAR_F32 && !defined(CE_VMATH_DONE_5)) || \
    (CE_VM == CE_VM_SCALAR_F64 && !defined(CE_VMATH_DONE_6))
/* the scalar pairs map to libm: CE_VM_LIBM(exp) is expf or exp */
#undef CE_VM_LIBM
#if CE_VM == CE_VM_SCALAR_F32
#define CE_VMATH_DONE_5
#define CE_VM_LIBM(fn) fn##f
#else
#define CE_VMATH_DONE_6
#define CE_VM_LIBM(fn) fn
#endif
static inline vm_s VM_FN(vexp)(vm_s x) { return CE_VM_LIBM(exp)(x); }
static inline vm_s VM_FN(vtanh)(vm_s x) { return CE_VM_LIBM(tanh)(x); }
static inline vm_s VM_FN(vsigmoid)(vm_s x) {
    vm_s e = CE_VM_LIBM(exp)(-CE_VM_LIBM(fabs)(x)), r = (vm_s)1 / ((vm_s)1 + e);
    return x >= 0 ? r : e * r;
}
static inline vm_s VM_FN(vlog1p01)(vm_s u) { return CE_VM_LIBM(log1p)(u); }
static inline vm_s VM_FN(vexp_ftz)(vm_s x) {
    return x < (vm_s)(VM_IS_F64 ? -708.39 : -87.33f) ? (vm_s)0 : CE_VM_LIBM(exp)(x);
}
#elif (CE_VM == CE_VM_AVX512_F32 && !defined(CE_VMATH_DONE_3)) || \
    (CE_VM == CE_VM_AVX512_F64 && !defined(CE_VMATH_DONE_4)) || \
    (CE_VM == CE_VM_AVX2_F32 && !defined(CE_VMATH_DONE_1)) || \
    (CE_VM == CE_VM_AVX2_F64 && !defined(CE_VMATH_DONE_2))
#if CE_VM == CE_VM_AVX512_F32
#define CE_VMATH_DONE_3
#elif CE_VM == CE_VM_AVX512_F64
#define CE_VMATH_DONE_4
#elif CE_VM == CE_VM_AVX2_F32
#define CE_VMATH_DONE_1
#else
#define CE_VMATH_DONE_2
#endif

/* ln 2 split for Cody-Waite reductions: n*VM_LN2HI is exact for the n of exp's and log's ranges,
 * VM_LN2HI + VM_LN2LO = ln 2 to beyond the dtype's precision. VM_EXP_MAX: the argument above
 * which exp overflows for sure (the upper clamp that keeps the result an exact inf). */
#undef VM_LN2HI
#undef VM_LN2LO
#undef VM_EXP_MAX
#if VM_IS_F64
#define VM_LN2HI 6.93147180369123816490e-01
#define VM_LN2LO 1.90821492927058770002e-10
#define VM_EXP_MAX 710.0
#else
#define VM_LN2HI 0.693359375f
#define VM_LN2LO -2.12194440e-4f
#define VM_EXP_MAX 89.0f
#endif

/* The one exp polynomial: vexp below, the softmax rows' sm_exp (softmax_tmpl.h) and GELU's
 * two-part exp (activation_tmpl.h) all call it. Returns 2^n * e^r with n = round((hi+lo)/ln2)
 * and r = (hi - n*VM_LN2HI) + lo - n*VM_LN2LO, |r| <= ~ln2/2, e^r = 1 + r + r^2 P(r) as one
 * Horner chain of FMAs (f32: the Cephes expf polynomial; f64: Taylor to r^13, truncation
 * < 2e-16 relative); ~0.9 ulp at most, 0.26 on average, both dtypes.
 * with_lo is a constant at each call: 0 for exp(hi) (lo unused: pass vm_zero()), 1 for
 * exp(hi + lo) where hi is exact and lo a small correction (|lo| <~ 2) that joins the reduced
 * argument, so the pair needs one exponential instead of exp(hi) * exp(lo).
 * No clamping here: lanes with hi + lo above VM_EXP_MAX or below -746 (f64) / -112 (f32), and
 * -inf (whose reduction is NaN), are the caller's to clamp or select away. In range, vm_ldexp
 * makes overflow an exact inf and keeps the denormals; NaN stays NaN. */
static inline vm_t VM_FN(vexp_poly)(vm_t hi, vm_t lo, const int with_lo) {
    vm_t n = vm_round(vm_mul(with_lo ? vm_add(hi, lo) : hi,
                             vm_set1((vm_s)1.4426950408889634073599)));
    vm_t r = vm_fnmadd(n, vm_set1(VM_LN2HI), hi);
    if (with_lo) r = vm_add(r, lo);
    r = vm_fnmadd(n, vm_set1(VM_LN2LO), r);
#if VM_IS_F64
    vm_t p = vm_set1(1.0 / 6227020800.0);
    p = vm_fmadd(p, r, vm_set1(1.0 / 479001600.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 39916800.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 3628800.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 362880.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 40320.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 5040.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 720.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 120.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 24.0));
    p = vm_fmadd(p, r, vm_set1(1.0 / 6.0));
    p = vm_fmadd(p, r, vm_set1(0.5));
#else
    vm_t p = vm_set1(1.9875691500E-4f);
    p = vm_fmadd(p, r, vm_set1(1.3981999507E-3f));
    p = vm_fmadd(p, r, vm_set1(8.3334519073E-3f));
    p = vm_fmadd(p, r, vm_set1(4.1665795894E-2f));
    p = vm_fmadd(p, r, vm_set1(1.6666665459E-1f));
    p = vm_fmadd(p, r, vm_set1(5.0000001201E-1f));
#endif
    vm_t one = vm_set1((vm_s)1);
    p = vm_fmadd(p, r, one);
    p = vm_fmadd(p, r, one);
    return vm_ldexp(p, n);
}

/* exp(x), ~1 ulp: x clamped (NaN-preserving order) so that the scaling gives exactly inf above
 * the overflow threshold and 0 below the smallest denormal. */
static inline vm_t VM_FN(vexp)(vm_t x) {
    x = vm_max(vm_set1((vm_s)(VM_IS_F64 ? -746.0 : -104.0)), vm_min(vm_set1(VM_EXP_MAX), x));
    return VM_FN(vexp_poly)(x, vm_zero(), 0);
}

/* exp(x) with results below the smallest normal number (x < -87.33 float32, -708.39 float64)
 * flushed to exactly 0 (a subnormal result takes a microcode assist on x86), exact inf above
 * the overflow threshold, NaN kept, -inf -> 0.
 * AVX-512 float32 (1.0 ulp at most, 0.31 on average, measured on a dense grid of [-87.3, 1]):
 * x = (n/16) ln2 + r with n = round(16 x / ln2) (the shift trick: the integer n sits in the low
 * bits of t), |r| <= ln2/32, reduced Cody-Waite with VM_LN2HI/16 + VM_LN2LO/16; 2^((n mod 16)/16)
 * from a 16-entry table by one permute (vpermps reads the low 4 bits of t), exp(r) by a cubic
 * (minimax for the relative error on |r| <= ln2/32: 1.6e-9), 2^floor(n/16) and the flush by one
 * zero-masked scalef. 13 vector operations against the 15 of vexp_poly with the same clamps
 * (AMD Zen 4, exp-sum over an L1-resident row: 0.17 vs 0.21 ns per element).
 * Other pairs: vexp_poly with those clamps. */
#if CE_VM == CE_VM_AVX512_F32
static const float ce_vm_exp2_16[16] __attribute__((aligned(64))) = {
    1.000000000e+00f, 1.044273734e+00f, 1.090507746e+00f, 1.138788581e+00f,
    1.189207077e+00f, 1.241857767e+00f, 1.296839595e+00f, 1.354255557e+00f,
    1.414213538e+00f, 1.476826191e+00f, 1.542210817e+00f, 1.610490322e+00f,
    1.681792855e+00f, 1.756252170e+00f, 1.834008098e+00f, 1.915206552e+00f};   /* 2^(j/16) */
static inline __m512 VM_FN(vexp_ftz)(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);        /* above: inf (NaN x stays NaN) */
    const __m512 sh = _mm512_set1_ps(12582912.0f);       /* 1.5 * 2^23 */
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(23.0831203f), sh);   /* 16 / ln2 */
    __m512 n = _mm512_sub_ps(t, sh);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VM_LN2HI / 16), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VM_LN2LO / 16), r);
    __m512 T = _mm512_permutexvar_ps(_mm512_castps_si512(t), _mm512_load_ps(ce_vm_exp2_16));
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(1.6666073057e-1f), r, _mm512_set1_ps(5.0001620179e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    __m512 e = _mm512_fmadd_ps(_mm512_mul_ps(T, r), q, T);            /* T exp(r) */
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33f), _CMP_NLT_UQ);
    return _mm512_maskz_scalef_ps(keep, e, _mm512_mul_ps(n, _mm512_set1_ps(0.0625f)));
}
#else
static inline vm_t VM_FN(vexp_ftz)(vm_t x) {
    x = vm_min(vm_set1(VM_EXP_MAX), x);
    vm_t e = VM_FN(vexp_poly)(x, vm_zero(), 0);
    return vm_sel(vm_lt(x, vm_set1((vm_s)(VM_IS_F64 ? -708.39 : -87.33f))), vm_zero(), e);
}
#endif

/* sigmoid(x) = 1/(1+exp(-x)) computed from e = exp(-|x|) <= 1: never overflows; NaN kept */
static inline vm_t VM_FN(vsigmoid)(vm_t x) {
    vm_t one = vm_set1((vm_s)1);
    vm_t e = VM_FN(vexp)(vm_sub(vm_zero(), vm_abs(x)));
    vm_t r = vm_div(one, vm_add(one, e));
    return vm_sel(vm_ge(x, vm_zero()), r, vm_mul(e, r));
}

/* tanh(x): |x| < 0.625 by the Cephes odd polynomial (f32) / rational (f64) form, otherwise
 * 1 - 2/(exp(2|x|)+1); sign copied from x. */
static inline vm_t VM_FN(vtanh)(vm_t x) {
    vm_t one = vm_set1((vm_s)1);
    vm_t a = vm_abs(x);
    vm_t e = VM_FN(vexp)(vm_add(a, a));
    vm_t big = vm_sub(one, vm_div(vm_set1((vm_s)2), vm_add(e, one)));
    vm_t s = vm_mul(x, x);
#if VM_IS_F64
    vm_t P = vm_set1(-9.64399179425052238628E-1);
    P = vm_fmadd(P, s, vm_set1(-9.92877231001918586564E1));
    P = vm_fmadd(P, s, vm_set1(-1.61468768441708447952E3));
    vm_t Q = vm_add(s, vm_set1(1.12811678491632931402E2));
    Q = vm_fmadd(Q, s, vm_set1(2.23548839060100448583E3));
    Q = vm_fmadd(Q, s, vm_set1(4.84406305325125486048E3));
    vm_t small = vm_fmadd(vm_mul(x, s), vm_div(P, Q), x);
#else
    vm_t P = vm_set1(-5.70498872745E-3f);
    P = vm_fmadd(P, s, vm_set1(2.06390887954E-2f));
    P = vm_fmadd(P, s, vm_set1(-5.37397155531E-2f));
    P = vm_fmadd(P, s, vm_set1(1.33314422036E-1f));
    P = vm_fmadd(P, s, vm_set1(-3.33332819422E-1f));
    vm_t small = vm_fmadd(vm_mul(x, s), P, x);
#endif
    vm_t sgn = vm_and(x, vm_signbit());
    return vm_sel(vm_lt(a, vm_set1((vm_s)0.625)), small, vm_or(big, sgn));
}

/* log(m) for m in [1/sqrt2, sqrt2]: 2 atanh(s), s = (m-1)/(m+1), by its series in s^2 <= 0.0295
 * (f32 to s^9: truncation ~2e-9 relative; f64 to s^19). Callers add k*log(2) as
 * k*VM_LN2HI + k*VM_LN2LO (Cody-Waite split). The core of vlog1p01 here and of the CTC
 * kernels' log (ctc_tmpl.h). */
static inline vm_t VM_FN(vlog_core)(vm_t m) {
    vm_t one = vm_set1((vm_s)1);
    vm_t s = vm_div(vm_sub(m, one), vm_add(m, one));
    vm_t s2 = vm_mul(s, s);
#if VM_IS_F64
    vm_t p = vm_set1(1.0 / 19);
    p = vm_fmadd(p, s2, vm_set1(1.0 / 17));
    p = vm_fmadd(p, s2, vm_set1(1.0 / 15));
    p = vm_fmadd(p, s2, vm_set1(1.0 / 13));
    p = vm_fmadd(p, s2, vm_set1(1.0 / 11));
    p = vm_fmadd(p, s2, vm_set1(1.0 / 9));
#else
    vm_t p = vm_set1(1.0f / 9);
#endif
    p = vm_fmadd(p, s2, vm_set1((vm_s)1 / 7));
    p = vm_fmadd(p, s2, vm_set1((vm_s)1 / 5));
    p = vm_fmadd(p, s2, vm_set1((vm_s)1 / 3));
    vm_t s2x = vm_add(s, s);
    return vm_fmadd(vm_mul(s2x, s2), p, s2x);               /* 2s + 2s*s2*p */
}

/* log1p(u) for u in [0, 1]: w = 1+u = 2^k * m with k in {0,1}, m in [1/sqrt2, sqrt2], plus the
 * rounding correction (u - (w-1))/w. */
static inline vm_t VM_FN(vlog1p01)(vm_t u) {
    vm_t one = vm_set1((vm_s)1);
    vm_t w = vm_add(one, u);
    vm_m big = vm_gt(w, vm_set1((vm_s)1.41421356237309504880));
    vm_t m = vm_sel(big, vm_mul(w, vm_set1((vm_s)0.5)), w);
    vm_t k = vm_sel(big, one, vm_zero());
    vm_t corr = vm_div(vm_sub(u, vm_sub(w, one)), w);
    vm_t lo = vm_fmadd(k, vm_set1(VM_LN2LO), vm_add(VM_FN(vlog_core)(m), corr));
    return vm_fmadd(k, vm_set1(VM_LN2HI), lo);
}

/* P(t) of the Numerical Recipes erfc form erfc(z) = t * exp(-z^2 + P(t)), t = 1/(1 + z/2),
 * z >= 0 (relative error < 1.2e-7: f32 accuracy). The exact GELU (activation_tmpl.h) takes
 * exp(-z^2 + P(t)) as one vexp_poly with z^2 split exactly in two. */
static inline vm_t VM_FN(verfc_p)(vm_t t) {
    vm_t p = vm_set1((vm_s)0.17087277);
    p = vm_fmadd(p, t, vm_set1((vm_s)-0.82215223));
    p = vm_fmadd(p, t, vm_set1((vm_s)1.48851587));
    p = vm_fmadd(p, t, vm_set1((vm_s)-1.13520398));
    p = vm_fmadd(p, t, vm_set1((vm_s)0.27886807));
    p = vm_fmadd(p, t, vm_set1((vm_s)-0.18628806));
    p = vm_fmadd(p, t, vm_set1((vm_s)0.09678418));
    p = vm_fmadd(p, t, vm_set1((vm_s)0.37409196));
    p = vm_fmadd(p, t, vm_set1((vm_s)1.00002368));
    return vm_fmadd(p, t, vm_set1((vm_s)-1.26551223));
}

#endif /* math functions once per pair */
#endif /* CE_VM */
