/* nn_kernels.h - neural-network hot paths: softmax / log_softmax, fused cross-entropy,
 * LayerNorm / RMSNorm, embedding gather / scatter-add (f32 and f64).
 *
 * Dimension letters: R rows (all leading dims flattened), C classes / softmax axis (last, contiguous),
 * N samples, D feature dim, V vocabulary (embedding rows), n index count.
 * Every kernel has a plain single-threaded `*_ref` twin with the same contract, written
 * independently of the optimized rows (softmax and cross-entropy references compute in double;
 * the cross-entropy backward references recompute the log-softmax from the logits and do not
 * read lse), so tests comparing the two can fail.
 * Kernels are threaded over rows (or columns for the embedding scatter) and pick the
 * generic/avx2/avx512 path from ce_isa. Backward kernels take `accumulate`: 0 overwrites the
 * gradient output, 1 adds into it; dweight/dbias/dW outputs always accumulate (+=).
 */
#ifndef CE_NN_KERNELS_H
#define CE_NN_KERNELS_H
#include "common.h"

/* outputs of at least this many bytes are written with non-temporal stores (default 8 MiB;
 * negative restores the default; tests use 0 to exercise the streaming path on small arrays) */
void ce_nn_set_stream_bytes(int64_t bytes);

/* ---- softmax.c ---- */
/* x (R,C), y (R,C): y = softmax(x) (log=0) or log_softmax(x) (log=1) along C; y may alias x */
void ce_softmax_fwd_f32(float *y, const float *x, int64_t R, int64_t C, int log);
void ce_softmax_fwd_f64(double *y, const double *x, int64_t R, int64_t C, int log);
/* y, dy, dx (R,C): softmax:     dx (+)= y * (dy - sum_c(dy*y))
 *                  log_softmax: dx (+)= dy - exp(y) * sum_c(dy)      (y = forward output)
 * dx may alias dy */
void ce_softmax_bwd_f32(float *dx, const float *y, const float *dy, int64_t R, int64_t C, int log,
                        int accumulate);
void ce_softmax_bwd_f64(double *dx, const double *y, const double *dy, int64_t R, int64_t C, int log,
                        int accumulate);
void ce_softmax_fwd_f32_ref(float *y, const float *x, int64_t R, int64_t C, int log);
void ce_softmax_fwd_f64_ref(double *y, const double *x, int64_t R, int64_t C, int log);
void ce_softmax_bwd_f32_ref(float *dx, const float *y, const float *dy, int64_t R, int64_t C, int log,
                            int accumulate);
void ce_softmax_bwd_f64_ref(double *dx, const double *y, const double *dy, int64_t R, int64_t C,
                            int log, int accumulate);

/* ---- loss.c: fused log-softmax + NLL (cross-entropy) ---- */
/* first i in [0,n) with idx[i] outside [0, hi) (and, when use_ignore, idx[i] != ignore), or -1
 * (validation helper for the bindings: targets, embedding indices) */
int64_t ce_index_check(const int64_t *idx, int64_t n, int64_t hi, int64_t ignore, int use_ignore);

/* class-index targets. logits (N,C), target (N), weight (C) or NULL;
 * outputs: loss (N) per-row loss (0 on ignored rows), lse (N) per-row logsumexp (saved for the
 * backward), wrow (N) the row's weight in a 'mean' reduction (weight[t] or 1; 0 when ignored).
 * loss_i = (1-eps) * w[t_i] * (lse_i - x[i,t_i]) + eps/C * sum_c w[c] * (lse_i - x[i,c])
 * Targets must be validated (ce_index_check) before the call. */
void ce_cross_entropy_fwd_f32(float *loss, float *lse, float *wrow, const float *logits,
                              const int64_t *target, const float *weight, int64_t N, int64_t C,
                              int64_t ignore_index, double label_smoothing);
void ce_cross_entropy_fwd_f64(double *loss, double *lse, double *wrow, const double *logits,
                              const int64_t *target, const double *weight, int64_t N, int64_t C,
                              int64_t ignore_index, double label_smoothing);
/* dlogits (N,C) (+)= g_i * d loss_i / d logits[i,:] with p = exp(logits - lse) (rows with
 * |lse| > 16 recompute the row's max and log-sum-exp, so p stays exact when lse has rounded, as
 * for logits of 1e8 in float32):
 *   g_i * [ ((1-eps) w[t] + eps/C * sum(w)) p_c - eps/C w[c] - (1-eps) w[t] [c==t] ]
 * g (N): upstream gradient per row (the Python side folds the reduction into it). */
void ce_cross_entropy_bwd_f32(float *dlogits, const float *logits, const int64_t *target,
                              const float *weight, const float *lse, const float *g, int64_t N,
                              int64_t C, int64_t ignore_index, double label_smoothing, int accumulate);
void ce_cross_entropy_bwd_f64(double *dlogits, const double *logits, const int64_t *target,
                              const double *weight, const double *lse, const double *g, int64_t N,
                              int64_t C, int64_t ignore_index, double label_smoothing, int accumulate);

/* the same with bfloat16 logits (uint16_t bits) and float32 loss, lse, wrow, weight, g: the
 * results of the float32 kernels on the logits cast to float32, bit for bit; the backward
 * writes (overwrites) dlogits in bfloat16, its float32 values rounded once (nearest even, NaN
 * -> 0xffff: the cast of the float32 gradient). 0, or -1 when the row buffers could not be
 * allocated (nothing written then). *_ref: the float32 references on a float32 copy. */
int ce_cross_entropy_fwd_bf16(float *loss, float *lse, float *wrow, const uint16_t *logits,
                              const int64_t *target, const float *weight, int64_t N, int64_t C,
                              int64_t ignore_index, double label_smoothing);
int ce_cross_entropy_bwd_bf16(uint16_t *dlogits, const uint16_t *logits, const int64_t *target,
                              const float *weight, const float *lse, const float *g, int64_t N,
                              int64_t C, int64_t ignore_index, double label_smoothing);
int ce_cross_entropy_fwd_bf16_ref(float *loss, float *lse, float *wrow, const uint16_t *logits,
                                  const int64_t *target, const float *weight, int64_t N,
                                  int64_t C, int64_t ignore_index, double label_smoothing);
int ce_cross_entropy_bwd_bf16_ref(uint16_t *dlogits, const uint16_t *logits,
                                  const int64_t *target, const float *weight, const float *lse,
                                  const float *g, int64_t N, int64_t C, int64_t ignore_index,
                                  double label_smoothing);

/* probability targets. target (N,C): q = (1-eps)*target + eps/C;
 * loss_i = -sum_c w[c] q[i,c] (x[i,c] - lse_i);  dlogits (+)= g_i (p_c sum_k w_k q_k - w_c q_c) */
void ce_cross_entropy_prob_fwd_f32(float *loss, float *lse, const float *logits, const float *target,
                                   const float *weight, int64_t N, int64_t C, double label_smoothing);
void ce_cross_entropy_prob_fwd_f64(double *loss, double *lse, const double *logits,
                                   const double *target, const double *weight, int64_t N, int64_t C,
                                   double label_smoothing);
void ce_cross_entropy_prob_bwd_f32(float *dlogits, const float *logits, const float *target,
                                   const float *weight, const float *lse, const float *g, int64_t N,
                                   int64_t C, double label_smoothing, int accumulate);
void ce_cross_entropy_prob_bwd_f64(double *dlogits, const double *logits, const double *target,
                                   const double *weight, const double *lse, const double *g,
                                   int64_t N, int64_t C, double label_smoothing, int accumulate);
void ce_cross_entropy_fwd_f32_ref(float *loss, float *lse, float *wrow, const float *logits,
                                  const int64_t *target, const float *weight, int64_t N, int64_t C,
                                  int64_t ignore_index, double label_smoothing);
void ce_cross_entropy_fwd_f64_ref(double *loss, double *lse, double *wrow, const double *logits,
                                  const int64_t *target, const double *weight, int64_t N, int64_t C,
                                  int64_t ignore_index, double label_smoothing);
void ce_cross_entropy_bwd_f32_ref(float *dlogits, const float *logits, const int64_t *target,
                                  const float *weight, const float *lse, const float *g, int64_t N,
                                  int64_t C, int64_t ignore_index, double label_smoothing,
                                  int accumulate);
void ce_cross_entropy_bwd_f64_ref(double *dlogits, const double *logits, const int64_t *target,
                                  const double *weight, const double *lse, const double *g,
                                  int64_t N, int64_t C, int64_t ignore_index,
                                  double label_smoothing, int accumulate);
void ce_cross_entropy_prob_fwd_f32_ref(float *loss, float *lse, const float *logits,
                                       const float *target, const float *weight, int64_t N,
                                       int64_t C, double label_smoothing);
void ce_cross_entropy_prob_fwd_f64_ref(double *loss, double *lse, const double *logits,
                                       const double *target, const double *weight, int64_t N,
                                       int64_t C, double label_smoothing);
void ce_cross_entropy_prob_bwd_f32_ref(float *dlogits, const float *logits, const float *target,
                                       const float *weight, const float *lse, const float *g,
                                       int64_t N, int64_t C, double label_smoothing, int accumulate);
void ce_cross_entropy_prob_bwd_f64_ref(double *dlogits, const double *logits, const double *target,
                                       const double *weight, const double *lse, const double *g,
                                       int64_t N, int64_t C, double label_smoothing, int accumulate);

/* ---- norm.c ---- */
/* LayerNorm over D. x (R,D), w/b (D) or NULL; y (R,D), mean (R), rstd (R) = 1/sqrt(var+eps)
 * (biased variance). y = (x-mean)*rstd*w + b */
void ce_layernorm_fwd_f32(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int64_t R, int64_t D, double eps);
void ce_layernorm_fwd_f64(double *y, double *mean, double *rstd, const double *x, const double *w,
                          const double *b, int64_t R, int64_t D, double eps);
/* dx (R,D) (+)= rstd * (g - mean_D(g) - xhat * mean_D(g*xhat)), g = dy*w, xhat = (x-mean)*rstd;
 * dw (D) += sum_R dy*xhat and db (D) += sum_R dy when non-NULL (per-thread partials, fixed-order
 * sum); dx may be NULL (only parameter grads). */
void ce_layernorm_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, const float *mean, const float *rstd, int64_t R,
                          int64_t D, int accumulate);
void ce_layernorm_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x,
                          const double *w, const double *mean, const double *rstd, int64_t R,
                          int64_t D, int accumulate);
/* RMSNorm over D: rstd = 1/sqrt(mean_D(x^2) + eps), y = x*rstd*w */
void ce_rmsnorm_fwd_f32(float *y, float *rstd, const float *x, const float *w, int64_t R, int64_t D,
                        double eps);
void ce_rmsnorm_fwd_f64(double *y, double *rstd, const double *x, const double *w, int64_t R,
                        int64_t D, double eps);
/* dx (+)= rstd * (g - xhat * mean_D(g*xhat)), g = dy*w, xhat = x*rstd; dw += sum_R dy*xhat */
void ce_rmsnorm_bwd_f32(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        const float *rstd, int64_t R, int64_t D, int accumulate);
void ce_rmsnorm_bwd_f64(double *dx, double *dw, const double *dy, const double *x, const double *w,
                        const double *rstd, int64_t R, int64_t D, int accumulate);
void ce_layernorm_fwd_f32_ref(float *y, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int64_t R, int64_t D, double eps);
void ce_layernorm_fwd_f64_ref(double *y, double *mean, double *rstd, const double *x,
                              const double *w, const double *b, int64_t R, int64_t D, double eps);
void ce_layernorm_bwd_f32_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                              const float *w, const float *mean, const float *rstd, int64_t R,
                              int64_t D, int accumulate);
void ce_layernorm_bwd_f64_ref(double *dx, double *dw, double *db, const double *dy, const double *x,
                              const double *w, const double *mean, const double *rstd, int64_t R,
                              int64_t D, int accumulate);
void ce_rmsnorm_fwd_f32_ref(float *y, float *rstd, const float *x, const float *w, int64_t R,
                            int64_t D, double eps);
void ce_rmsnorm_fwd_f64_ref(double *y, double *rstd, const double *x, const double *w, int64_t R,
                            int64_t D, double eps);
void ce_rmsnorm_bwd_f32_ref(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const float *rstd, int64_t R, int64_t D, int accumulate);
void ce_rmsnorm_bwd_f64_ref(double *dx, double *dw, const double *dy, const double *x,
                            const double *w, const double *rstd, int64_t R, int64_t D,
                            int accumulate);

/* ---- embedding.c ---- */
/* W (V,D), idx (n) in [0,V) (validated by the caller), out (n,D): out[i,:] = W[idx[i],:] */
void ce_embedding_fwd_f32(float *out, const float *W, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D);
void ce_embedding_fwd_f64(double *out, const double *W, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D);
/* dW (V,D) += dy[i,:] at row idx[i] for every i with idx[i] != padding_idx (pass -1 for none).
 * Race-free under threads (each thread owns a column or row range); summation order per row is
 * ascending i, so the result does not depend on the thread count. */
void ce_embedding_bwd_f32(float *dW, const float *dy, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D, int64_t padding_idx);
void ce_embedding_bwd_f64(double *dW, const double *dy, const int64_t *idx, int64_t n, int64_t V,
                          int64_t D, int64_t padding_idx);
void ce_embedding_bwd_f32_ref(float *dW, const float *dy, const int64_t *idx, int64_t n, int64_t V,
                              int64_t D, int64_t padding_idx);
void ce_embedding_bwd_f64_ref(double *dW, const double *dy, const int64_t *idx, int64_t n, int64_t V,
                              int64_t D, int64_t padding_idx);
#endif
