/* optim.h - fused multi-tensor optimizer updates and gradient-norm reductions.
 *
 * Every entry point updates a whole parameter group in ONE call: the group's tensors are given as
 * arrays of `ntensors` pointers (params, grads, state buffers) and `sizes[t]` element counts; all
 * arrays of one tensor have sizes[t] contiguous elements. The total work is laid out as the
 * tensors one after another (each padded to a cache line) and cut into fixed cache-line aligned
 * blocks that the OpenMP threads take dynamically (so a 10M tensor and 100 small ones balance the
 * same way, and a thread slowed by a busy core does not hold the others up); every piece is
 * updated with the ISA path chosen at run time (avx512 / avx2 / generic C). Results do not depend
 * on the thread count (the update is elementwise; reductions use fixed blocks).
 *
 * The formulas are PyTorch's (torch.optim documentation, single-tensor implementations):
 *   g  = maximize ? -grad : grad
 *   SGD:     g += wd*p;  if momentum: buf = first ? g : momentum*buf + (1-dampening)*g,
 *            g = nesterov ? g + momentum*buf : buf;   p -= lr*g
 *   Adagrad: g += wd*p;  clr = lr / (1 + (step-1)*lr_decay);  sum += g*g;
 *            p -= clr * g / (sqrt(sum) + eps)
 *   RMSprop: g += wd*p;  sq = alpha*sq + (1-alpha)*g*g;
 *            centered: gavg = alpha*gavg + (1-alpha)*g, avg = sqrt(sq - gavg^2) + eps
 *            else avg = sqrt(sq) + eps;
 *            momentum > 0: buf = momentum*buf + g/avg, p -= lr*buf   else p -= lr*g/avg
 *   Adam:    decoupled (AdamW): p *= 1 - lr*wd   else g += wd*p;
 *            m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g;
 *            amsgrad: vmax = max(vmax, v), use vmax for v;
 *            p -= (lr/(1-beta1^step)) * m / (sqrt(v)/sqrt(1-beta2^step) + eps)
 *   Adadelta: g += wd*p;  sq = rho*sq + (1-rho)*g*g;  delta = sqrt(acc + eps) / sqrt(sq + eps) * g;
 *            acc = rho*acc + (1-rho)*delta^2;  p -= lr*delta
 *   Adamax:  g += wd*p;  m = lerp(m, g, 1-beta1);  u = max(beta2*u, |g| + eps) (NaN kept);
 *            p -= (lr/(1-beta1^step)) * m / u
 *   NAdam:   decoupled: p *= 1 - lr*wd   else g += wd*p;  m = lerp(m, g, 1-beta1);
 *            v = beta2*v + (1-beta2)*g*g;  denom = sqrt(v / (1-beta2^step)) + eps;
 *            mu(s) = beta1*(1 - 0.5*0.96^(s*momentum_decay)), mu = mu(step), mu_next = mu(step+1);
 *            p += -lr*(1-mu)/(1-mu_product) * g/denom
 *                 + -lr*mu_next/(1-mu_product*mu_next) * m/denom
 *   RAdam:   decoupled: p *= 1 - lr*wd   else g += wd*p;  m = lerp(m, g, 1-beta1);
 *            v = beta2*v + (1-beta2)*g*g;  bc1 = 1-beta1^step, bc2 = 1-beta2^step;
 *            rho_inf = 2/(1-beta2) - 1, rho_t = rho_inf - 2*step*beta2^step/bc2;
 *            rho_t > 5: p -= lr/bc1 * rect * sqrt(bc2) * m / (sqrt(v) + eps) with
 *            rect = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t));
 *            else p -= lr/bc1 * m
 *   lerp(m, g, w) is torch's: m + w*(g-m) for w < 0.5, else g - (1-w)*(g-m).
 * Per-step scalars (bias corrections, clr) are computed once per tensor in double from `steps[t]`
 * (the step count after this step's increment) before the threads start.
 * State pointers an option does not use may be NULL (buf when momentum == 0, gavg when !centered,
 * vmax when !amsgrad). */
#ifndef CE_OPTIM_H
#define CE_OPTIM_H
#include "common.h"

/* ---- SGD ---- params[t], bufs[t], grads[t]: (sizes[t]); first[t] != 0: momentum buffer is new
 * (buf = g). bufs/first may be NULL when momentum == 0. */
void ce_sgd_step_f32(float *const *params, float *const *bufs, const float *const *grads,
                     const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                     double lr, double momentum, double dampening, double weight_decay,
                     int nesterov, int maximize);
void ce_sgd_step_f64(double *const *params, double *const *bufs, const double *const *grads,
                     const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                     double lr, double momentum, double dampening, double weight_decay,
                     int nesterov, int maximize);
void ce_sgd_step_f32_ref(float *const *params, float *const *bufs, const float *const *grads,
                         const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                         double lr, double momentum, double dampening, double weight_decay,
                         int nesterov, int maximize);
void ce_sgd_step_f64_ref(double *const *params, double *const *bufs, const double *const *grads,
                         const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                         double lr, double momentum, double dampening, double weight_decay,
                         int nesterov, int maximize);

/* ---- Adagrad ---- params[t], sums[t], grads[t]: (sizes[t]); steps[t] >= 1 */
void ce_adagrad_step_f32(float *const *params, float *const *sums, const float *const *grads,
                         const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                         double lr, double lr_decay, double weight_decay, double eps, int maximize);
void ce_adagrad_step_f64(double *const *params, double *const *sums, const double *const *grads,
                         const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                         double lr, double lr_decay, double weight_decay, double eps, int maximize);
void ce_adagrad_step_f32_ref(float *const *params, float *const *sums, const float *const *grads,
                             const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                             double lr, double lr_decay, double weight_decay, double eps,
                             int maximize);
void ce_adagrad_step_f64_ref(double *const *params, double *const *sums,
                             const double *const *grads, const int64_t *steps,
                             const int64_t *sizes, int64_t ntensors, double lr, double lr_decay,
                             double weight_decay, double eps, int maximize);

/* ---- RMSprop ---- params, square_avgs, grad_avgs (centered), bufs (momentum > 0), grads:
 * (sizes[t]) */
void ce_rmsprop_step_f32(float *const *params, float *const *square_avgs, float *const *grad_avgs,
                         float *const *bufs, const float *const *grads, const int64_t *sizes,
                         int64_t ntensors, double lr, double alpha, double eps,
                         double weight_decay, double momentum, int centered, int maximize);
void ce_rmsprop_step_f64(double *const *params, double *const *square_avgs,
                         double *const *grad_avgs, double *const *bufs,
                         const double *const *grads, const int64_t *sizes, int64_t ntensors,
                         double lr, double alpha, double eps, double weight_decay,
                         double momentum, int centered, int maximize);
void ce_rmsprop_step_f32_ref(float *const *params, float *const *square_avgs,
                             float *const *grad_avgs, float *const *bufs,
                             const float *const *grads, const int64_t *sizes, int64_t ntensors,
                             double lr, double alpha, double eps, double weight_decay,
                             double momentum, int centered, int maximize);
void ce_rmsprop_step_f64_ref(double *const *params, double *const *square_avgs,
                             double *const *grad_avgs, double *const *bufs,
                             const double *const *grads, const int64_t *sizes, int64_t ntensors,
                             double lr, double alpha, double eps, double weight_decay,
                             double momentum, int centered, int maximize);

/* ---- Adam / AdamW (decoupled != 0) ---- params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs
 * (amsgrad), grads: (sizes[t]); steps[t] >= 1 */
void ce_adam_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                      float *const *max_exp_avg_sqs, const float *const *grads,
                      const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                      double lr, double beta1, double beta2, double eps, double weight_decay,
                      int amsgrad, int maximize, int decoupled);
void ce_adam_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_avg_sqs,
                      double *const *max_exp_avg_sqs, const double *const *grads,
                      const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                      double lr, double beta1, double beta2, double eps, double weight_decay,
                      int amsgrad, int maximize, int decoupled);
void ce_adam_step_f32_ref(float *const *params, float *const *exp_avgs,
                          float *const *exp_avg_sqs, float *const *max_exp_avg_sqs,
                          const float *const *grads, const int64_t *steps, const int64_t *sizes,
                          int64_t ntensors, double lr, double beta1, double beta2, double eps,
                          double weight_decay, int amsgrad, int maximize, int decoupled);
void ce_adam_step_f64_ref(double *const *params, double *const *exp_avgs,
                          double *const *exp_avg_sqs, double *const *max_exp_avg_sqs,
                          const double *const *grads, const int64_t *steps, const int64_t *sizes,
                          int64_t ntensors, double lr, double beta1, double beta2, double eps,
                          double weight_decay, int amsgrad, int maximize, int decoupled);

/* ---- float32 SGD and Adam/AdamW that also refresh the autocast copies of the parameters ----
 * The update of ce_sgd_step_f32 / ce_adam_step_f32 (same arguments), and then, for every tensor
 * t with lowp[t] != NULL, lowp[t] (sizes[t] uint16 bits) = the updated params[t] rounded to
 * bfloat16 (lowp_f16 == 0) or float16 (lowp_f16 != 0) exactly as ce_cast_f32_to_bf16 /
 * ce_cast_f32_to_f16 (cast.h) round it; each piece is cast right after its update, while it is
 * still in cache (no second pass over the float32 parameters). lowp[t] must not overlap any
 * array of the call. The references: the plain update, then the scalar cast references. */
void ce_sgd_step_f32_lowp(float *const *params, float *const *bufs, const float *const *grads,
                          const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                          double lr, double momentum, double dampening, double weight_decay,
                          int nesterov, int maximize, uint16_t *const *lowp, int lowp_f16);
void ce_sgd_step_f32_lowp_ref(float *const *params, float *const *bufs,
                              const float *const *grads, const uint8_t *first,
                              const int64_t *sizes, int64_t ntensors, double lr, double momentum,
                              double dampening, double weight_decay, int nesterov, int maximize,
                              uint16_t *const *lowp, int lowp_f16);
void ce_adam_step_f32_lowp(float *const *params, float *const *exp_avgs,
                           float *const *exp_avg_sqs, float *const *max_exp_avg_sqs,
                           const float *const *grads, const int64_t *steps, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int amsgrad, int maximize, int decoupled,
                           uint16_t *const *lowp, int lowp_f16);
void ce_adam_step_f32_lowp_ref(float *const *params, float *const *exp_avgs,
                               float *const *exp_avg_sqs, float *const *max_exp_avg_sqs,
                               const float *const *grads, const int64_t *steps,
                               const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                               double beta2, double eps, double weight_decay, int amsgrad,
                               int maximize, int decoupled, uint16_t *const *lowp, int lowp_f16);

/* ---- Adadelta ---- params, square_avgs, acc_deltas, grads: (sizes[t]) */
void ce_adadelta_step_f32(float *const *params, float *const *square_avgs, float *const *acc_deltas,
                          const float *const *grads, const int64_t *sizes, int64_t ntensors,
                          double lr, double rho, double eps, double weight_decay, int maximize);
void ce_adadelta_step_f64(double *const *params, double *const *square_avgs,
                          double *const *acc_deltas, const double *const *grads,
                          const int64_t *sizes, int64_t ntensors, double lr, double rho, double eps,
                          double weight_decay, int maximize);
void ce_adadelta_step_f32_ref(float *const *params, float *const *square_avgs,
                              float *const *acc_deltas, const float *const *grads,
                              const int64_t *sizes, int64_t ntensors, double lr, double rho,
                              double eps, double weight_decay, int maximize);
void ce_adadelta_step_f64_ref(double *const *params, double *const *square_avgs,
                              double *const *acc_deltas, const double *const *grads,
                              const int64_t *sizes, int64_t ntensors, double lr, double rho,
                              double eps, double weight_decay, int maximize);

/* ---- Adamax ---- params, exp_avgs, exp_infs, grads: (sizes[t]); steps[t] >= 1 */
void ce_adamax_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_infs,
                        const float *const *grads, const int64_t *steps, const int64_t *sizes,
                        int64_t ntensors, double lr, double beta1, double beta2, double eps,
                        double weight_decay, int maximize);
void ce_adamax_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_infs,
                        const double *const *grads, const int64_t *steps, const int64_t *sizes,
                        int64_t ntensors, double lr, double beta1, double beta2, double eps,
                        double weight_decay, int maximize);
void ce_adamax_step_f32_ref(float *const *params, float *const *exp_avgs, float *const *exp_infs,
                            const float *const *grads, const int64_t *steps, const int64_t *sizes,
                            int64_t ntensors, double lr, double beta1, double beta2, double eps,
                            double weight_decay, int maximize);
void ce_adamax_step_f64_ref(double *const *params, double *const *exp_avgs, double *const *exp_infs,
                            const double *const *grads, const int64_t *steps, const int64_t *sizes,
                            int64_t ntensors, double lr, double beta1, double beta2, double eps,
                            double weight_decay, int maximize);

/* ---- NAdam (decoupled != 0: decoupled weight decay) ---- params, exp_avgs, exp_avg_sqs, grads:
 * (sizes[t]); steps[t] >= 1; mu_products[t]: the state's mu_product after this step's factor */
void ce_nadam_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                       const float *const *grads, const int64_t *steps, const double *mu_products,
                       const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double momentum_decay,
                       int decoupled, int maximize);
void ce_nadam_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_avg_sqs,
                       const double *const *grads, const int64_t *steps, const double *mu_products,
                       const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double momentum_decay,
                       int decoupled, int maximize);
void ce_nadam_step_f32_ref(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                           const float *const *grads, const int64_t *steps,
                           const double *mu_products, const int64_t *sizes, int64_t ntensors,
                           double lr, double beta1, double beta2, double eps, double weight_decay,
                           double momentum_decay, int decoupled, int maximize);
void ce_nadam_step_f64_ref(double *const *params, double *const *exp_avgs,
                           double *const *exp_avg_sqs, const double *const *grads,
                           const int64_t *steps, const double *mu_products, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, double momentum_decay, int decoupled,
                           int maximize);

/* ---- RAdam (decoupled != 0: decoupled weight decay) ---- params, exp_avgs, exp_avg_sqs, grads:
 * (sizes[t]); steps[t] >= 1 */
void ce_radam_step_f32(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                       const float *const *grads, const int64_t *steps, const int64_t *sizes,
                       int64_t ntensors, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled, int maximize);
void ce_radam_step_f64(double *const *params, double *const *exp_avgs, double *const *exp_avg_sqs,
                       const double *const *grads, const int64_t *steps, const int64_t *sizes,
                       int64_t ntensors, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled, int maximize);
void ce_radam_step_f32_ref(float *const *params, float *const *exp_avgs, float *const *exp_avg_sqs,
                           const float *const *grads, const int64_t *steps, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled, int maximize);
void ce_radam_step_f64_ref(double *const *params, double *const *exp_avgs,
                           double *const *exp_avg_sqs, const double *const *grads,
                           const int64_t *steps, const int64_t *sizes, int64_t ntensors, double lr,
                           double beta1, double beta2, double eps, double weight_decay,
                           int decoupled, int maximize);

/* ---- gradient-norm helpers (clip_grad_norm_) ----
 * xs[t]: (sizes[t]). sumsq: *out = sum over all tensors of x^2, accumulated in double over fixed
 * blocks (same result for any thread count). absmax: *out = max |x| (NaN if any x is NaN).
 * scale: xs[t] *= alpha (alpha rounded to the tensor dtype). */
void ce_sumsq_multi_f32(double *out, const float *const *xs, const int64_t *sizes,
                        int64_t ntensors);
void ce_sumsq_multi_f64(double *out, const double *const *xs, const int64_t *sizes,
                        int64_t ntensors);
void ce_sumsq_multi_f32_ref(double *out, const float *const *xs, const int64_t *sizes,
                            int64_t ntensors);
void ce_sumsq_multi_f64_ref(double *out, const double *const *xs, const int64_t *sizes,
                            int64_t ntensors);
void ce_absmax_multi_f32(double *out, const float *const *xs, const int64_t *sizes,
                         int64_t ntensors);
void ce_absmax_multi_f64(double *out, const double *const *xs, const int64_t *sizes,
                         int64_t ntensors);
void ce_absmax_multi_f32_ref(double *out, const float *const *xs, const int64_t *sizes,
                             int64_t ntensors);
void ce_absmax_multi_f64_ref(double *out, const double *const *xs, const int64_t *sizes,
                             int64_t ntensors);
void ce_scale_multi_f32(float *const *xs, const int64_t *sizes, int64_t ntensors, double alpha);
void ce_scale_multi_f64(double *const *xs, const int64_t *sizes, int64_t ntensors, double alpha);

#endif
