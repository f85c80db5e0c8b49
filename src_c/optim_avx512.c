/* optim_avx512.c - AVX-512 optimizer segment kernels (float32: 16 lanes, float64: 8 lanes) and
 * the gradient-norm reductions. Compiled for avx512 by target pragma; called only when
 * ce_isa == CE_ISA_AVX512 (see optim.c). */
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")
#include <immintrin.h>
#include <math.h>
#include "optim_impl.h"

/* ---- float32 ---- */
#define T float
#define V __m512
#define W 16
#define SFX f32_avx512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, x) _mm512_storeu_ps((p), (x))
#define VSET1(s) _mm512_set1_ps(s)
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VSQRT _mm512_sqrt_ps
#define VMAX _mm512_max_ps
#define VNEG(x) _mm512_xor_ps((x), _mm512_set1_ps(-0.0f))
#define VFMA _mm512_fmadd_ps
#define VFNMA _mm512_fnmadd_ps
#include "optim_simd.h"
#undef T
#undef V
#undef W
#undef SFX
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VSQRT
#undef VMAX
#undef VNEG
#undef VFMA
#undef VFNMA

/* ---- float64 ---- */
#define T double
#define V __m512d
#define W 8
#define SFX f64_avx512
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, x) _mm512_storeu_pd((p), (x))
#define VSET1(s) _mm512_set1_pd(s)
#define VADD _mm512_add_pd
#define VSUB _mm512_sub_pd
#define VMUL _mm512_mul_pd
#define VDIV _mm512_div_pd
#define VSQRT _mm512_sqrt_pd
#define VMAX _mm512_max_pd
#define VNEG(x) _mm512_xor_pd((x), _mm512_set1_pd(-0.0))
#define VFMA _mm512_fmadd_pd
#define VFNMA _mm512_fnmadd_pd
#include "optim_simd.h"
#undef T
#undef V
#undef W
#undef SFX
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VSQRT
#undef VMAX
#undef VNEG
#undef VFMA
#undef VFNMA

/* ---- reductions ---- */

/* x: (n) float32; sum of x^2 accumulated in double, fixed lane order */
double ce_sumsq_seg_f32_avx512(const float *x, int64_t n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512d d0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
        __m512d d1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        __m512d d2 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16));
        __m512d d3 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24));
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
        a2 = _mm512_fmadd_pd(d2, d2, a2);
        a3 = _mm512_fmadd_pd(d3, d3, a3);
    }
    for (; i < n; i += 8) {
        int64_t r = n - i;
        __mmask8 m = r >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << r) - 1);
        __m512d d = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i));
        a0 = _mm512_fmadd_pd(d, d, a0);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

/* x: (n) float64 */
double ce_sumsq_seg_f64_avx512(const double *x, int64_t n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512d d0 = _mm512_loadu_pd(x + i), d1 = _mm512_loadu_pd(x + i + 8);
        __m512d d2 = _mm512_loadu_pd(x + i + 16), d3 = _mm512_loadu_pd(x + i + 24);
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
        a2 = _mm512_fmadd_pd(d2, d2, a2);
        a3 = _mm512_fmadd_pd(d3, d3, a3);
    }
    for (; i < n; i += 8) {
        int64_t r = n - i;
        __mmask8 m = r >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << r) - 1);
        __m512d d = _mm512_maskz_loadu_pd(m, x + i);
        a0 = _mm512_fmadd_pd(d, d, a0);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}

/* x: (n); max |x|, NaN if any element is NaN */
double ce_absmax_seg_f32_avx512(const float *x, int64_t n) {
    __m512 m0 = _mm512_setzero_ps(), m1 = m0;
    __mmask16 nan = 0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        nan |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, _mm512_abs_ps(v0));
        m1 = _mm512_max_ps(m1, _mm512_abs_ps(v1));
    }
    for (; i < n; i += 16) {
        int64_t r = n - i;
        __mmask16 k = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, _mm512_abs_ps(v));
    }
    if (nan) return NAN;
    return (double)_mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

double ce_absmax_seg_f64_avx512(const double *x, int64_t n) {
    __m512d m0 = _mm512_setzero_pd(), m1 = m0;
    __mmask8 nan = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d v0 = _mm512_loadu_pd(x + i), v1 = _mm512_loadu_pd(x + i + 8);
        nan |= _mm512_cmp_pd_mask(v0, v1, _CMP_UNORD_Q);
        m0 = _mm512_max_pd(m0, _mm512_abs_pd(v0));
        m1 = _mm512_max_pd(m1, _mm512_abs_pd(v1));
    }
    for (; i < n; i += 8) {
        int64_t r = n - i;
        __mmask8 k = r >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << r) - 1);
        __m512d v = _mm512_maskz_loadu_pd(k, x + i);
        nan |= _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
        m0 = _mm512_max_pd(m0, _mm512_abs_pd(v));
    }
    if (nan) return NAN;
    return _mm512_reduce_max_pd(_mm512_max_pd(m0, m1));
}

/* x: (n); x *= alpha */
void ce_scale_seg_f32_avx512(float *x, int64_t n, double alpha) {
    __m512 a = _mm512_set1_ps((float)alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), a));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), a));
    }
}

void ce_scale_seg_f64_avx512(double *x, int64_t n, double alpha) {
    __m512d a = _mm512_set1_pd(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(x + i, _mm512_mul_pd(_mm512_loadu_pd(x + i), a));
    if (i < n) {
        __mmask8 k = (__mmask8)((1u << (n - i)) - 1);
        _mm512_mask_storeu_pd(x + i, k, _mm512_mul_pd(_mm512_maskz_loadu_pd(k, x + i), a));
    }
}
