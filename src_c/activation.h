/* activation.h - fused elementwise activations, forward and backward (f32, f64).
 *
 * Kinds (CE_ACT_*), parameters p0/p1:
 *   RELU        y = max(x, 0) (NaN kept)               backward input: x (or y: same sign test)
 *   LEAKY_RELU  y = x > 0 ? x : p0*x   (p0 = slope)    backward input: x
 *   SIGMOID     y = 1/(1+exp(-x))                      backward input: y  (dy*y*(1-y))
 *   TANH        y = tanh(x)                            backward input: y  (dy*(1-y*y))
 *   SILU        y = x*sigmoid(x)                       backward input: x
 *   GELU        y = x*Phi(x) = x/2*erfc(-x/sqrt2)      backward input: x
 *   GELU_TANH   y = x/2*(1+tanh(sqrt(2/pi)*(x+0.044715x^3))) = x*sigmoid(2u)   backward input: x
 *   SOFTPLUS    y = x*p0 > p1 ? x : log1p(exp(p0*x))/p0  (p0 = beta, p1 = threshold, as torch)
 *                                                      backward input: x
 * Every kernel works on n contiguous elements; y may alias x, dx may alias dy.
 * Threaded over chunks when n is large (CE_ACT_MIN_PER_THREAD elements per thread).
 */
#ifndef CE_ACTIVATION_H
#define CE_ACTIVATION_H
#include "common.h"

enum {
    CE_ACT_RELU = 0,
    CE_ACT_LEAKY_RELU = 1,
    CE_ACT_SIGMOID = 2,
    CE_ACT_TANH = 3,
    CE_ACT_SILU = 4,
    CE_ACT_GELU = 5,
    CE_ACT_GELU_TANH = 6,
    CE_ACT_SOFTPLUS = 7,
    CE_ACT_COUNT = 8
};
#define CE_ACT_MIN_PER_THREAD 16384

/* 1 if the backward of `kind` reads the forward output y, 0 if it reads the input x */
int ce_act_backward_uses_y(int kind);

/* y (n) = f(x (n)) */
void ce_act_forward_f32(int kind, float *y, const float *x, int64_t n, double p0, double p1);
void ce_act_forward_f64(int kind, double *y, const double *x, int64_t n, double p0, double p1);
/* dx (n) = dy * f'(.)  (accumulate == 0)   or   dx += dy * f'(.)  (accumulate != 0)
 * xy (n): the forward input x, or the forward output y when ce_act_backward_uses_y(kind) */
void ce_act_backward_f32(int kind, float *dx, const float *xy, const float *dy, int64_t n,
                         double p0, double p1, int accumulate);
void ce_act_backward_f64(int kind, double *dx, const double *xy, const double *dy, int64_t n,
                         double p0, double p1, int accumulate);

/* plain single-threaded scalar references, same contracts */
void ce_act_forward_f32_ref(int kind, float *y, const float *x, int64_t n, double p0, double p1);
void ce_act_forward_f64_ref(int kind, double *y, const double *x, int64_t n, double p0, double p1);
void ce_act_backward_f32_ref(int kind, float *dx, const float *xy, const float *dy, int64_t n,
                             double p0, double p1, int accumulate);
void ce_act_backward_f64_ref(int kind, double *dx, const double *xy, const double *dy, int64_t n,
                             double p0, double p1, int accumulate);
#endif
