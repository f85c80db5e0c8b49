/* optim_avx2.c - AVX2+FMA optimizer segment kernels (float32: 8 lanes, float64: 4 lanes) and the
 * gradient-norm reductions. Compiled for avx2 by target pragma; called only when
 * ce_isa >= CE_ISA_AVX2 selects it (see optim.c). */
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#include <math.h>
#include "optim_impl.h"

/* ---- float32 ---- */
#define T float
#define V __m256
#define W 8
#define SFX f32_avx2
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, x) _mm256_storeu_ps((p), (x))
#define VSET1(s) _mm256_set1_ps(s)
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VSQRT _mm256_sqrt_ps
#define VMAX _mm256_max_ps
#define VNEG(x) _mm256_xor_ps((x), _mm256_set1_ps(-0.0f))
#define VFMA _mm256_fmadd_ps
#define VFNMA _mm256_fnmadd_ps
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
#define V __m256d
#define W 4
#define SFX f64_avx2
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, x) _mm256_storeu_pd((p), (x))
#define VSET1(s) _mm256_set1_pd(s)
#define VADD _mm256_add_pd
#define VSUB _mm256_sub_pd
#define VMUL _mm256_mul_pd
#define VDIV _mm256_div_pd
#define VSQRT _mm256_sqrt_pd
#define VMAX _mm256_max_pd
#define VNEG(x) _mm256_xor_pd((x), _mm256_set1_pd(-0.0))
#define VFMA _mm256_fmadd_pd
#define VFNMA _mm256_fnmadd_pd
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

static inline double hsum256d(__m256d a) {
    __m128d lo = _mm256_castpd256_pd128(a), hi = _mm256_extractf128_pd(a, 1);
    __m128d s = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* x: (n) float32; sum of x^2 accumulated in double, fixed lane order */
double ce_sumsq_seg_f32_avx2(const float *x, int64_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256d d0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        __m256d d1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        __m256d d2 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8));
        __m256d d3 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
        a2 = _mm256_fmadd_pd(d2, d2, a2);
        a3 = _mm256_fmadd_pd(d3, d3, a3);
    }
    double t = 0.0;
    for (; i < n; i++) t = fma((double)x[i], (double)x[i], t);
    return hsum256d(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3))) + t;
}

double ce_sumsq_seg_f64_avx2(const double *x, int64_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256d d0 = _mm256_loadu_pd(x + i), d1 = _mm256_loadu_pd(x + i + 4);
        __m256d d2 = _mm256_loadu_pd(x + i + 8), d3 = _mm256_loadu_pd(x + i + 12);
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
        a2 = _mm256_fmadd_pd(d2, d2, a2);
        a3 = _mm256_fmadd_pd(d3, d3, a3);
    }
    double t = 0.0;
    for (; i < n; i++) t = fma(x[i], x[i], t);
    return hsum256d(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3))) + t;
}

/* x: (n); max |x|, NaN if any element is NaN */
double ce_absmax_seg_f32_avx2(const float *x, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m0 = _mm256_setzero_ps(), m1 = m0, bad = m0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(v0, v1, _CMP_UNORD_Q));
        m0 = _mm256_max_ps(m0, _mm256_andnot_ps(sign, v0));
        m1 = _mm256_max_ps(m1, _mm256_andnot_ps(sign, v1));
    }
    m0 = _mm256_max_ps(m0, m1);
    float r[8];
    _mm256_storeu_ps(r, m0);
    float mx = 0.0f;
    for (int k = 0; k < 8; k++) mx = r[k] > mx ? r[k] : mx;
    int nan = _mm256_movemask_ps(bad) != 0;
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a != a) nan = 1;
        else if (a > mx) mx = a;
    }
    return nan ? NAN : (double)mx;
}

double ce_absmax_seg_f64_avx2(const double *x, int64_t n) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d m0 = _mm256_setzero_pd(), m1 = m0, bad = m0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d v0 = _mm256_loadu_pd(x + i), v1 = _mm256_loadu_pd(x + i + 4);
        bad = _mm256_or_pd(bad, _mm256_cmp_pd(v0, v1, _CMP_UNORD_Q));
        m0 = _mm256_max_pd(m0, _mm256_andnot_pd(sign, v0));
        m1 = _mm256_max_pd(m1, _mm256_andnot_pd(sign, v1));
    }
    m0 = _mm256_max_pd(m0, m1);
    double r[4];
    _mm256_storeu_pd(r, m0);
    double mx = 0.0;
    for (int k = 0; k < 4; k++) mx = r[k] > mx ? r[k] : mx;
    int nan = _mm256_movemask_pd(bad) != 0;
    for (; i < n; i++) {
        double a = fabs(x[i]);
        if (a != a) nan = 1;
        else if (a > mx) mx = a;
    }
    return nan ? NAN : mx;
}

/* x: (n); x *= alpha */
void ce_scale_seg_f32_avx2(float *x, int64_t n, double alpha) {
    const float af = (float)alpha;
    __m256 a = _mm256_set1_ps(af);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), a));
    for (; i < n; i++) x[i] *= af;
}

void ce_scale_seg_f64_avx2(double *x, int64_t n, double alpha) {
    __m256d a = _mm256_set1_pd(alpha);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_mul_pd(_mm256_loadu_pd(x + i), a));
    for (; i < n; i++) x[i] *= alpha;
}
