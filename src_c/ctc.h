/* ctc.h - Connectionist Temporal Classification: the CTC loss (forward / backward in log space
 * over the extended label sequence) and the CTC prefix beam-search decoder (ctc_decode.c).
 *
 * Dimension letters: T frames, N sequences (batch), C classes (blank included), L target length
 * of one sequence, S = 2L+1 its extended label sequence (blank, l1, blank, l2, ..., blank),
 * W alpha row width (ce_ctc_alpha_width), B beams.
 * Every optimized kernel has a plain single-threaded `*_ref` twin with the same contract.
 * The loss kernels run one sequence per OpenMP task (dynamic schedule) and pick the
 * generic/avx2/avx512 path from ce_isa; the decoder runs one utterance per thread.
 * Callers validate everything: lengths within the arrays, labels in [0,C) and != blank.
 */
#ifndef CE_CTC_H
#define CE_CTC_H
#include "common.h"

/* row width of the saved alpha array for targets of at most max_target_len labels */
int64_t ce_ctc_alpha_width(int64_t max_target_len);

/* lp (T,N,C) log-probabilities; tgt: flat labels, sequence n's at tgt[off[n] .. off[n]+tl[n]);
 * il (N) input lengths <= T; tl (N) target lengths.
 * nll (N) = -log p(target_n | lp[:il[n], n]); +inf when no alignment exists (0 when il = tl = 0).
 * alpha (N,T,W) written: log alpha of (n,t) at alpha[(n*T+t)*W + 2 + s] for s in [0, S); the two
 * cells before s = 0 hold -inf; rows t >= il[n] are not written; the optimized kernels leave -inf
 * in cells that cannot reach the end in the frames left (they are on no complete path).
 * The loss kernels return 0, or -1 when scratch memory could not be allocated. */
int ce_ctc_loss_fwd_f32(float *nll, float *alpha, const float *lp, const int64_t *tgt,
                        const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                        int64_t N, int64_t C, int64_t W, int64_t blank);
int ce_ctc_loss_fwd_f64(double *nll, double *alpha, const double *lp, const int64_t *tgt,
                        const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                        int64_t N, int64_t C, int64_t W, int64_t blank);
int ce_ctc_loss_fwd_f32_ref(float *nll, float *alpha, const float *lp, const int64_t *tgt,
                            const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                            int64_t N, int64_t C, int64_t W, int64_t blank);
int ce_ctc_loss_fwd_f64_ref(double *nll, double *alpha, const double *lp, const int64_t *tgt,
                            const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                            int64_t N, int64_t C, int64_t W, int64_t blank);

/* dlp (T,N,C) += g[n] * (exp(lp) - occ) for t < il[n], where occ[t][c] = sum over s with
 * ext[s] = c of alpha*beta/p (the posterior occupancy) from the saved alpha and a beta recursion
 * (torch's convention: the gradient w.r.t. log_probs that log_softmax's backward turns into the
 * exact gradient of its input). Sequences with nll = inf add nothing when zero_infinity, else
 * g[n] * exp(lp) (no occupancy; never NaN). Rows t >= il[n] are left alone. nll and alpha are
 * the forward's outputs. */
int ce_ctc_loss_bwd_f32(float *dlp, const float *lp, const float *alpha, const float *nll,
                        const float *g, const int64_t *tgt, const int64_t *off,
                        const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C,
                        int64_t W, int64_t blank, int zero_infinity);
int ce_ctc_loss_bwd_f64(double *dlp, const double *lp, const double *alpha, const double *nll,
                        const double *g, const int64_t *tgt, const int64_t *off,
                        const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C,
                        int64_t W, int64_t blank, int zero_infinity);
int ce_ctc_loss_bwd_f32_ref(float *dlp, const float *lp, const float *alpha, const float *nll,
                            const float *g, const int64_t *tgt, const int64_t *off,
                            const int64_t *il, const int64_t *tl, int64_t T, int64_t N,
                            int64_t C, int64_t W, int64_t blank, int zero_infinity);
int ce_ctc_loss_bwd_f64_ref(double *dlp, const double *lp, const double *alpha,
                            const double *nll, const double *g, const int64_t *tgt,
                            const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T,
                            int64_t N, int64_t C, int64_t W, int64_t blank, int zero_infinity);

/* ---- ctc_decode.c: CTC prefix beam search (ctcdecode's algorithm, no language model) ----
 * lp (N,T,C) float32 log-probabilities; sl (N) frames to decode per utterance (<= T).
 * Per frame the classes are sorted by probability, cut after the cumulative probability reaches
 * cutoff_prob and after cutoff_top_n classes; each beam prefix keeps a blank-ending and a
 * non-blank-ending log-probability; extensions to equal prefixes merge (hash table); the best
 * B prefixes (by total log-probability) survive each frame.
 * Outputs, best first: labels (N,B,T) and starts (N,B,T) (frame of each label's start; zero
 * after the beam's length), scores (N,B) = -log p(labeling) (+inf for missing beams), lens
 * (N,B). Threads: one utterance each, at most nthreads (<= 0: cengine's thread count).
 * Returns 0, or -1 when memory ran out. */
int ce_ctc_beam_search(int32_t *labels, float *scores, int32_t *starts, int32_t *lens,
                       const float *lp, const int64_t *sl, int64_t N, int64_t T, int64_t C,
                       int64_t B, int64_t blank, int64_t cutoff_top_n, double cutoff_prob,
                       int nthreads);
/* the same search on one thread, with a plain linear-scan prefix table instead of hashing */
int ce_ctc_beam_search_ref(int32_t *labels, float *scores, int32_t *starts, int32_t *lens,
                           const float *lp, const int64_t *sl, int64_t N, int64_t T, int64_t C,
                           int64_t B, int64_t blank, int64_t cutoff_top_n, double cutoff_prob);

#endif
