/* rnn.h - recurrent layers: fused cell kernels (one time step) and the sequence drivers that
 * run a whole layer direction (the per-step recurrent GEMM plus the fused cell kernel).
 *
 * Modes (CE_RNN_*): RNN_TANH, RNN_RELU (1 gate), LSTM (4 gates i,f,g,o), GRU (3 gates r,z,n),
 * gate order and equations as torch:
 *   RNN   h = act(x W_ih^T + b_ih + h W_hh^T + b_hh)
 *   LSTM  i,f,g,o = sig,sig,tanh,sig(pre);  c = f*c + i*g;  h = o*tanh(c)  (h = h W_hr^T: proj)
 *   GRU   r = sig(gi_r + gh_r), z = sig(gi_z + gh_z), n = tanh(gi_n + r*gh_n),
 *         h = (1-z)*n + z*h   with gi = x W_ih^T + b_ih, gh = h W_hh^T + b_hh
 *
 * Cell kernels: n rows (batch), hidden size H; gate arrays are (n, G*H) row-major contiguous,
 * state arrays (n, H) contiguous, h outputs and dh inputs take a row stride (ld) so they can
 * be a column block of a bidirectional output; the optional second h output / dh addend is
 * NULL when unused. Threaded over the rows (CE_RNN_MIN_PER_THREAD elements per thread),
 * SIMD per ISA path (rnn_tmpl.h); *_ref are plain scalar single-threaded references.
 * Backward cell kernels OVERWRITE their gate gradients (the names say _set_): each step's
 * gradient goes to its own rows of a stacked (S, G*H) array that the weight-gradient GEMMs
 * read afterwards.
 *
 * Packed layout: a layer's inputs/outputs over all steps are stacked (S, *) with the rows of
 * step t at offset off[t] = bs[0] + ... + bs[t-1], bs (T) non-increasing batch sizes, bs[0] =
 * N (a padded (T, N, *) array is this layout with every bs[t] = N). Row b of a step is the
 * same sequence at every step, so sequence b's last step is the last t with bs[t] > b.
 */
#ifndef CE_RNN_H
#define CE_RNN_H
#include "common.h"

enum { CE_RNN_TANH = 0, CE_RNN_RELU = 1, CE_RNN_LSTM = 2, CE_RNN_GRU = 3 };
#define CE_RNN_MIN_PER_THREAD 4096

/* ---- cell kernels, forward ---- */
/* RNN: g (n,H) in: pre-activation, out: h = act(g) (kept for backward);
 * h (n, ldh) and h2 (n, ldh2, or NULL) receive h too. kind: CE_RNN_TANH / CE_RNN_RELU */
void ce_rnn_cell_forward_f32(int kind, float *g, float *h, int64_t ldh, float *h2, int64_t ldh2,
                             int64_t n, int64_t H);
void ce_rnn_cell_forward_f64(int kind, double *g, double *h, int64_t ldh, double *h2,
                             int64_t ldh2, int64_t n, int64_t H);
void ce_rnn_cell_forward_f32_ref(int kind, float *g, float *h, int64_t ldh, float *h2,
                                 int64_t ldh2, int64_t n, int64_t H);
void ce_rnn_cell_forward_f64_ref(int kind, double *g, double *h, int64_t ldh, double *h2,
                                 int64_t ldh2, int64_t n, int64_t H);
/* LSTM: g (n,4H) in: pre-activations (i,f,g,o), out: the activations; c (n,H) in: c_prev,
 * out: c; h (n, ldh), h2 (n, ldh2, or NULL) out: o*tanh(c) */
void ce_lstm_cell_forward_f32(float *g, float *c, float *h, int64_t ldh, float *h2, int64_t ldh2,
                              int64_t n, int64_t H);
void ce_lstm_cell_forward_f64(double *g, double *c, double *h, int64_t ldh, double *h2,
                              int64_t ldh2, int64_t n, int64_t H);
void ce_lstm_cell_forward_f32_ref(float *g, float *c, float *h, int64_t ldh, float *h2,
                                  int64_t ldh2, int64_t n, int64_t H);
void ce_lstm_cell_forward_f64_ref(double *g, double *c, double *h, int64_t ldh, double *h2,
                                  int64_t ldh2, int64_t n, int64_t H);
/* GRU: gi (n,3H) in: x W_ih^T + b_ih, out: the activations (r, z, n); gh (n,3H) = h W_hh^T +
 * b_hh; hp (n,H) h_prev (must not alias h or h2); h (n, ldh), h2 (n, ldh2 or NULL) out */
void ce_gru_cell_forward_f32(float *gi, float *h, int64_t ldh, float *h2, int64_t ldh2,
                             const float *gh, const float *hp, int64_t n, int64_t H);
void ce_gru_cell_forward_f64(double *gi, double *h, int64_t ldh, double *h2, int64_t ldh2,
                             const double *gh, const double *hp, int64_t n, int64_t H);
void ce_gru_cell_forward_f32_ref(float *gi, float *h, int64_t ldh, float *h2, int64_t ldh2,
                                 const float *gh, const float *hp, int64_t n, int64_t H);
void ce_gru_cell_forward_f64_ref(double *gi, double *h, int64_t ldh, double *h2, int64_t ldh2,
                                 const double *gh, const double *hp, int64_t n, int64_t H);

/* ---- cell kernels, backward (gate gradients overwritten) ---- */
/* RNN: dg (n,H) = (dh + dh2) * act'(.), from y = g (n,H) the forward's activations;
 * dh (n, lddh), dh2 (n, lddh2) or NULL */
void ce_rnn_cell_backward_set_f32(int kind, float *dg, const float *g, const float *dh,
                                  int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                  int64_t H);
void ce_rnn_cell_backward_set_f64(int kind, double *dg, const double *g, const double *dh,
                                  int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                  int64_t H);
void ce_rnn_cell_backward_set_f32_ref(int kind, float *dg, const float *g, const float *dh,
                                      int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                      int64_t H);
void ce_rnn_cell_backward_set_f64_ref(int kind, double *dg, const double *g, const double *dh,
                                      int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                      int64_t H);
/* LSTM: dg (n,4H) = gradient of the pre-activations; dc (n,H) in: dL/dc_t from later steps,
 * out: dL/dc_prev; g (n,4H) the activations, cp (n,H) c_prev; dh (n, lddh) (+ dh2) = dL/dh_t */
void ce_lstm_cell_backward_set_f32(float *dg, float *dc, const float *g, const float *cp,
                                   const float *dh, int64_t lddh, const float *dh2, int64_t lddh2,
                                   int64_t n, int64_t H);
void ce_lstm_cell_backward_set_f64(double *dg, double *dc, const double *g, const double *cp,
                                   const double *dh, int64_t lddh, const double *dh2,
                                   int64_t lddh2, int64_t n, int64_t H);
void ce_lstm_cell_backward_set_f32_ref(float *dg, float *dc, const float *g, const float *cp,
                                       const float *dh, int64_t lddh, const float *dh2,
                                       int64_t lddh2, int64_t n, int64_t H);
void ce_lstm_cell_backward_set_f64_ref(double *dg, double *dc, const double *g, const double *cp,
                                       const double *dh, int64_t lddh, const double *dh2,
                                       int64_t lddh2, int64_t n, int64_t H);
/* GRU: dgi (n,3H), dgh (n,3H) = gradients of gi and gh; dhp (n, lddh) = dh * z (the direct
 * part of dL/dh_prev; may alias dh); gi (n,3H) the activations r,z,n; gh, hp as forward */
void ce_gru_cell_backward_set_f32(float *dgi, float *dgh, float *dhp, const float *gi,
                                  const float *gh, const float *hp, const float *dh,
                                  int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                  int64_t H);
void ce_gru_cell_backward_set_f64(double *dgi, double *dgh, double *dhp, const double *gi,
                                  const double *gh, const double *hp, const double *dh,
                                  int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                  int64_t H);
void ce_gru_cell_backward_set_f32_ref(float *dgi, float *dgh, float *dhp, const float *gi,
                                      const float *gh, const float *hp, const float *dh,
                                      int64_t lddh, const float *dh2, int64_t lddh2, int64_t n,
                                      int64_t H);
void ce_gru_cell_backward_set_f64_ref(double *dgi, double *dgh, double *dhp, const double *gi,
                                      const double *gh, const double *hp, const double *dh,
                                      int64_t lddh, const double *dh2, int64_t lddh2, int64_t n,
                                      int64_t H);

/* ---- sequence drivers: one layer, one direction, all T steps ----
 * Hs = P when P > 0 (LSTM projection), else H. G = number of gates (1, 4, 3 by mode).
 * forward:
 *   G_ (S, G*H) in: x W_ih^T + bias (RNN/LSTM: b_ih + b_hh; GRU: b_ih), out: the activations
 *   GH (S, 3H) out (GRU only, else NULL): h W_hh^T + b_hh per step
 *   h (N, Hs) in: h_0, out: h_n (each row at its sequence's last step); c (N, H) likewise (LSTM)
 *   out (S, ldo) out: h_t (caller offsets the pointer to its direction's columns)
 *   HP (S, Hs) out: h_prev of each step; CP (S, H) out: c_prev of each step (LSTM)
 *   HU (S, H) out: the unprojected h (LSTM with P > 0, else NULL)
 *   WhhT (Hs, G*H) = W_hh^T, row stride ldw (>= G*H; pad it when G*H*sizeof is a multiple
 *   of 4 KiB); bhh (3H) GRU's b_hh or NULL; WhrT (H, P) = W_hr^T contiguous
 *   bs (T) batch sizes; reverse: run t = T-1 .. 0
 * backward (the same arrays from the forward, then):
 *   dG (S, G*H) out: gradient of G_'s pre-activations (GRU: of gi); dGH (S, 3H) out (GRU)
 *   dh (N, Hs) in: dL/dh_n, out: dL/dh_0; dc (N, H) likewise (LSTM)
 *   dout (S, lddo): dL/d out
 *   DHR (S, P) out: dL/dh_t (projected) per step, for the W_hr gradient (P > 0, else NULL)
 *   work (N, H) scratch (P > 0, else NULL)
 *   Whh (G*H, Hs) = W_hh; Whr (P, H) = W_hr
 * The weight gradients are left to the caller: one GEMM each over all steps
 * (dW_hh = dG^T HP (GRU: dGH^T HP), dW_ih = dG^T X, dW_hr = DHR^T HU). */
void ce_rnn_seq_forward_f32(int mode, float *G_, float *GH, float *h, float *c, float *out,
                            int64_t ldo, float *HP, float *CP, float *HU, const float *WhhT,
                            int64_t ldw, const float *bhh, const float *WhrT, const int64_t *bs,
                            int64_t T, int64_t H, int64_t P, int reverse);
void ce_rnn_seq_forward_f64(int mode, double *G_, double *GH, double *h, double *c, double *out,
                            int64_t ldo, double *HP, double *CP, double *HU, const double *WhhT,
                            int64_t ldw, const double *bhh, const double *WhrT, const int64_t *bs,
                            int64_t T, int64_t H, int64_t P, int reverse);
void ce_rnn_seq_backward_f32(int mode, float *dG, float *dGH, float *dh, float *dc, float *DHR,
                             float *work, const float *dout, int64_t lddo, const float *G_,
                             const float *GH, const float *HP, const float *CP, const float *Whh,
                             const float *Whr, const int64_t *bs, int64_t T, int64_t H,
                             int64_t P, int reverse);
void ce_rnn_seq_backward_f64(int mode, double *dG, double *dGH, double *dh, double *dc,
                             double *DHR, double *work, const double *dout, int64_t lddo,
                             const double *G_, const double *GH, const double *HP,
                             const double *CP, const double *Whh, const double *Whr,
                             const int64_t *bs, int64_t T, int64_t H, int64_t P, int reverse);

/* both directions of a bidirectional layer at once, direction d (0 forward, 1 reverse) on
 * thread d of a two-thread team with everything inside it single-threaded: the same contracts
 * as above, each array argument given per direction ([0] forward, [1] reverse; the strides,
 * batch sizes and sizes are shared) */
void ce_rnn_seq_forward_pair_f32(int mode, float *const *G_, float *const *GH, float *const *h,
                                 float *const *c, float *const *out, int64_t ldo,
                                 float *const *HP, float *const *CP, float *const *HU,
                                 const float *const *WhhT, int64_t ldw, const float *const *bhh,
                                 const float *const *WhrT, const int64_t *bs, int64_t T,
                                 int64_t H, int64_t P);
void ce_rnn_seq_forward_pair_f64(int mode, double *const *G_, double *const *GH,
                                 double *const *h, double *const *c, double *const *out,
                                 int64_t ldo, double *const *HP, double *const *CP,
                                 double *const *HU, const double *const *WhhT, int64_t ldw,
                                 const double *const *bhh, const double *const *WhrT,
                                 const int64_t *bs, int64_t T, int64_t H, int64_t P);
void ce_rnn_seq_backward_pair_f32(int mode, float *const *dG, float *const *dGH, float *const *dh,
                                  float *const *dc, float *const *DHR, float *const *work,
                                  const float *const *dout, int64_t lddo, const float *const *G_,
                                  const float *const *GH, const float *const *HP,
                                  const float *const *CP, const float *const *Whh,
                                  const float *const *Whr, const int64_t *bs, int64_t T,
                                  int64_t H, int64_t P);
void ce_rnn_seq_backward_pair_f64(int mode, double *const *dG, double *const *dGH,
                                  double *const *dh, double *const *dc, double *const *DHR,
                                  double *const *work, const double *const *dout, int64_t lddo,
                                  const double *const *G_, const double *const *GH,
                                  const double *const *HP, const double *const *CP,
                                  const double *const *Whh, const double *const *Whr,
                                  const int64_t *bs, int64_t T, int64_t H, int64_t P);
#endif
