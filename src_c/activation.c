/* activation.c - fused elementwise activations (see activation.h for the kinds and contracts).
 *
 * Paths: avx512, avx2 and generic are the activation_tmpl.h row kernels over vmath.h,
 * instantiated per (ISA, dtype) by isa_each.h (generic = the one-lane scalar instance);
 * *_ref is the plain scalar C below, one thread, written independently of the template.
 * The public entry points split n into per-thread chunks and pick the path from ce_isa. */
#include <math.h>
#include "nn_util.h"
/* threads for n elements; 1 without OpenMP (the chunk split below assumes real threads) */
static inline int act_threads(int64_t n) { return ce_par_threads(n, CE_ACT_MIN_PER_THREAD); }

int ce_act_backward_uses_y(int kind) { return kind == CE_ACT_SIGMOID || kind == CE_ACT_TANH; }

/* ---- scalar element functions ------------------------------------------------------------ */
#define CE_SQRT1_2 0.70710678118654752440
#define CE_INV_SQRT_2PI 0.39894228040143267794
#define CE_SQRT_2_PI 0.79788456080286535588

static inline float sig_f32(float x) {
    float e = expf(-fabsf(x)), r = 1.0f / (1.0f + e);
    return x >= 0 ? r : e * r;
}
static inline double sig_f64(double x) {
    double e = exp(-fabs(x)), r = 1.0 / (1.0 + e);
    return x >= 0 ? r : e * r;
}

/* GELU in double for both dtypes: Phi(x) = erfc(w)/2 with w = -x/sqrt2, phi(x) = exp(-x^2/2)/sqrt(2pi).
 * w is carried as wh + wl (1/sqrt2 split in two doubles, FMA for the product's rounding error) and
 * erfc(wh + wl) = erfc(wh) - wl * 2/sqrt(pi) * exp(-wh^2): otherwise the rounding of x/sqrt2 costs
 * ~2 w^2 ulp in the far negative tail. */
#define CE_SQRT1_2_HI 0.70710678118654757274
#define CE_SQRT1_2_LO (-4.8336466185019915e-17)
static inline double gelu_phi_d(double x) {
    double wh = -x * CE_SQRT1_2_HI;
    double wl = fma(-x, CE_SQRT1_2_HI, -wh) - x * CE_SQRT1_2_LO;
    double c = erfc(wh);
    if (wl != 0 && wh > 1) c -= wl * 1.12837916709551257390 * exp(-wh * wh);
    return 0.5 * c;
}
static inline double gelu_d(double x) { return x * gelu_phi_d(x); }
static inline double gelu_grad_d(double x) {
    double x2 = x * x, x2l = fma(x, x, -x2);   /* x^2 = x2 + x2l exactly */
    return gelu_phi_d(x) + x * (exp(-0.5 * x2) * (1 - 0.5 * x2l)) * CE_INV_SQRT_2PI;
}

/* the reference element functions per dtype (static insides, not public names) */
#define CE_ACT_REF(T, SFX, EXP, LOG1P, TANH, SIG)                                            \
    static inline T act1_##SFX(int kind, T x, T p0, T p1) {                                     \
        switch (kind) {                                                                         \
        case CE_ACT_RELU: return (x > 0 || x != x) ? x : (T)0;                                  \
        case CE_ACT_LEAKY_RELU: return x > 0 ? x : x * p0;                                      \
        case CE_ACT_SIGMOID: return SIG(x);                                                     \
        case CE_ACT_TANH: return TANH(x);                                                       \
        case CE_ACT_SILU: return x * SIG(x);                                                    \
        case CE_ACT_GELU: return (T)gelu_d((double)x);                                          \
        case CE_ACT_GELU_TANH: {                                                                \
            T u2 = (T)(2 * CE_SQRT_2_PI) * (x + (T)0.044715 * x * x * x);                       \
            return x * SIG(u2);                                                                 \
        }                                                                                       \
        case CE_ACT_SOFTPLUS: return x * p0 > p1 ? x : LOG1P(EXP(x * p0)) / p0;                 \
        default: return x;                                                                      \
        }                                                                                       \
    }                                                                                           \
    /* in = x, or y for sigmoid/tanh; returns f'(.) (to be multiplied by dy) */                 \
    static inline T actd1_##SFX(int kind, T in, T p0, T p1) {                                  \
        switch (kind) {                                                                         \
        case CE_ACT_RELU: return in <= 0 ? (T)0 : (T)1;                                          \
        case CE_ACT_LEAKY_RELU: return in > 0 ? (T)1 : p0;                                      \
        case CE_ACT_SIGMOID: return in * ((T)1 - in);                                           \
        case CE_ACT_TANH: return (T)1 - in * in;                                                \
        case CE_ACT_SILU: {                                                                     \
            T s = SIG(in);                                                                      \
            return s * ((T)1 + in * ((T)1 - s));                                                \
        }                                                                                       \
        case CE_ACT_GELU: return (T)gelu_grad_d((double)in);                                    \
        case CE_ACT_GELU_TANH: {                                                                \
            T u2 = (T)(2 * CE_SQRT_2_PI) * (in + (T)0.044715 * in * in * in);                   \
            T du2 = (T)(2 * CE_SQRT_2_PI) * ((T)1 + (T)(3 * 0.044715) * in * in);               \
            T s = SIG(u2);                                                                      \
            return s + in * s * ((T)1 - s) * du2;                                               \
        }                                                                                       \
        case CE_ACT_SOFTPLUS: return in * p0 > p1 ? (T)1 : SIG(in * p0);                        \
        default: return (T)1;                                                                   \
        }                                                                                       \
    }                                                                                           \
    static void act_fwd_scalar_##SFX(int kind, T *y, const T *x, int64_t n, T p0, T p1) {      \
        for (int64_t i = 0; i < n; i++) y[i] = act1_##SFX(kind, x[i], p0, p1);                  \
    }                                                                                           \
    static void act_bwd_scalar_##SFX(int kind, T *dx, const T *in, const T *dy, int64_t n,     \
                                     T p0, T p1, int acc) {                                     \
        if (acc)                                                                                \
            for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * actd1_##SFX(kind, in[i], p0, p1);  \
        else                                                                                    \
            for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * actd1_##SFX(kind, in[i], p0, p1);   \
    }

CE_ACT_REF(float, f32, expf, log1pf, tanhf, sig_f32)
CE_ACT_REF(double, f64, exp, log1p, tanh, sig_f64)

/* the f64 template instances use these for GELU (libm erfc keeps full double accuracy) */
#define CE_ACT_SCALAR_FWD(kind, y, x, n, p0, p1) act_fwd_scalar_f64(kind, y, x, n, p0, p1)
#define CE_ACT_SCALAR_BWD(kind, dx, in, dy, n, p0, p1, acc) \
    act_bwd_scalar_f64(kind, dx, in, dy, n, p0, p1, acc)

/* ---- templated paths (avx512, avx2, generic) ------------------------------------------------ */
#define CE_EACH_SCALAR 1
#define CE_EACH_INC1 "activation_tmpl.h"
#include "isa_each.h"

/* ---- dispatch + threading ------------------------------------------------------------------
 * The public entry points split n into per-thread chunks (CE_PAR_CHUNKS) and run the instance of
 * activation_tmpl.h for ce_isa on each (the scalar one-lane instance is the generic path). */
void ce_act_forward_f32(int kind, float *y, const float *x, int64_t n, double p0, double p1) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    CE_PAR_CHUNKS(n, act_threads(n), 16,
                  CE_ISA_CALL(act_fwd, f32, kind, y + lo, x + lo, hi - lo, (float)p0, (float)p1));
}

void ce_act_forward_f64(int kind, double *y, const double *x, int64_t n, double p0, double p1) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    CE_PAR_CHUNKS(n, act_threads(n), 16,
                  CE_ISA_CALL(act_fwd, f64, kind, y + lo, x + lo, hi - lo, p0, p1));
}

void ce_act_backward_f32(int kind, float *dx, const float *xy, const float *dy, int64_t n,
                         double p0, double p1, int accumulate) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    CE_PAR_CHUNKS(n, act_threads(n), 16,
                  CE_ISA_CALL(act_bwd, f32, kind, dx + lo, xy + lo, dy + lo, hi - lo, (float)p0,
                              (float)p1, accumulate));
}

void ce_act_backward_f64(int kind, double *dx, const double *xy, const double *dy, int64_t n,
                         double p0, double p1, int accumulate) {
    if (kind < 0 || kind >= CE_ACT_COUNT || n <= 0) return;
    CE_PAR_CHUNKS(n, act_threads(n), 16,
                  CE_ISA_CALL(act_bwd, f64, kind, dx + lo, xy + lo, dy + lo, hi - lo, p0, p1,
                              accumulate));
}

/* plain single-threaded references (the scalar functions above, written independently of the
 * template) */
void ce_act_forward_f32_ref(int kind, float *y, const float *x, int64_t n, double p0, double p1) {
    if (kind >= 0 && kind < CE_ACT_COUNT && n > 0)
        act_fwd_scalar_f32(kind, y, x, n, (float)p0, (float)p1);
}

void ce_act_forward_f64_ref(int kind, double *y, const double *x, int64_t n, double p0, double p1) {
    if (kind >= 0 && kind < CE_ACT_COUNT && n > 0) act_fwd_scalar_f64(kind, y, x, n, p0, p1);
}

void ce_act_backward_f32_ref(int kind, float *dx, const float *xy, const float *dy, int64_t n,
                             double p0, double p1, int accumulate) {
    if (kind >= 0 && kind < CE_ACT_COUNT && n > 0)
        act_bwd_scalar_f32(kind, dx, xy, dy, n, (float)p0, (float)p1, accumulate);
}

void ce_act_backward_f64_ref(int kind, double *dx, const double *xy, const double *dy, int64_t n,
                             double p0, double p1, int accumulate) {
    if (kind >= 0 && kind < CE_ACT_COUNT && n > 0)
        act_bwd_scalar_f64(kind, dx, xy, dy, n, p0, p1, accumulate);
}
