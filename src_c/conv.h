/* conv.h - convolution packers and pooling kernels, float32 and float64, channels-first.
 *
 * Dimension letters: N images, C channels, H x W input plane, KH x KW kernel, OH x OW output
 * plane, L = OH*OW output positions, P = N*C planes (pooling works plane by plane).
 * Geometry: output (oh, ow) reads input (oh*sh - ph + ki*dh, ow*sw - pw + kj*dw); positions
 * outside [0,H) x [0,W) are zero padding (conv) or skipped (pooling). ph/pw are the top/left
 * padding; the bottom/right padding is implied by OH/OW (so asymmetric 'same' padding works).
 *
 * Convolution runs on the GEMM (gemm.h) over unfolded tiles of nt images:
 *   col (C*KH*KW, ldcol): row r = (c*KH + ki)*KW + kj, column n*L + oh*OW + ow (n < nt, ldcol >= nt*L)
 *   forward        y[n, g]  = W[g] @ col[g][:, n*L : (n+1)*L]          (one product per image, group)
 *   backward-wt    dW[g]   += dyt[g] @ col[g]^T                          (K = nt*L)
 *   backward-data  col[g]   = W[g]^T @ dyt[g], then col2im adds col into dx
 * with dyt (O, ldcol) the tile of dy packed channel-major (ce_conv_pack_dy).
 * The binding (cengine/_C/conv.pxi) picks nt so a tile's col stays about L2-sized; the
 * whole-layer drivers ce_conv2d_fwd/bwd below run the tiles (chunks).
 *
 * Threads: every kernel splits independent items (image x channel pairs, planes, output
 * channels) with a static schedule; each output element is written by one thread in a fixed
 * order, so results are the same on any thread count. Backward kernels accumulate (+=).
 * *_ref: plain single-threaded loops with the same contract, for tests. */
#ifndef CE_CONV_H
#define CE_CONV_H
#include "common.h"

/* x (nt,C,H,W) contiguous -> col (C*KH*KW, ldcol) as above (overwrites; padding -> 0) */
void ce_im2col_f32(float *col, const float *x, int64_t nt, int64_t C, int64_t H, int64_t W,
                   int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                   int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
void ce_im2col_f64(double *col, const double *x, int64_t nt, int64_t C, int64_t H, int64_t W,
                   int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                   int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
void ce_im2col_f32_ref(float *col, const float *x, int64_t nt, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
void ce_im2col_f64_ref(double *col, const double *x, int64_t nt, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
/* dx (nt,C,H,W) += fold(col): every col entry added to the input element it was read from */
void ce_col2im_f32(float *dx, const float *col, int64_t nt, int64_t C, int64_t H, int64_t W,
                   int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                   int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
void ce_col2im_f64(double *dx, const double *col, int64_t nt, int64_t C, int64_t H, int64_t W,
                   int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                   int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
void ce_col2im_f32_ref(float *dx, const float *col, int64_t nt, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
void ce_col2im_f64_ref(double *dx, const double *col, int64_t nt, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol);
/* dy (nt,O,L) contiguous -> dyt (O, ldcol): dyt[o*ldcol + n*L + l] = dy[(n*O + o)*L + l] */
void ce_conv_pack_dy_f32(float *dyt, const float *dy, int64_t nt, int64_t O, int64_t L,
                         int64_t ldcol);
void ce_conv_pack_dy_f64(double *dyt, const double *dy, int64_t nt, int64_t O, int64_t L,
                         int64_t ldcol);
/* y (N,O,L) += b[o] */
void ce_conv_bias_add_f32(float *y, const float *b, int64_t N, int64_t O, int64_t L);
void ce_conv_bias_add_f64(double *y, const double *b, int64_t N, int64_t O, int64_t L);
/* db (O) += sum over n, l of dy (N,O,L) (batchnorm.c: each plane's SIMD partial in the element
 * type, the planes' partials added in double in plane order; threads split channels) */
void ce_conv_bias_grad_f32(float *db, const float *dy, int64_t N, int64_t O, int64_t L);
void ce_conv_bias_grad_f64(double *db, const double *dy, int64_t N, int64_t O, int64_t L);
/* the same, one element at a time in double, one thread */
void ce_conv_bias_grad_f32_ref(float *db, const float *dy, int64_t N, int64_t O, int64_t L);
void ce_conv_bias_grad_f64_ref(double *db, const double *dy, int64_t N, int64_t O, int64_t L);

/* ---- whole-layer drivers (GEMM-based convolution over chunks of `per` images) ----
 * Geometry of one conv2d call: x (N,C,H,W), w (O,C/G,KH,KW), y (N,O,OH,OW), pads top/left. */
typedef struct {
    int64_t N, C, H, W, O, G, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw;
} ce_conv_geom_t;
/* chunks of `per` images; with two or more chunks and threads the chunks are spread over the
 * threads (each unfolds into its own wsz-element slice of ws and runs the GEMM on itself, a
 * nested region), otherwise chunks run in turn with every kernel threaded. ws holds
 * ce_get_num_threads() slices of wsz >= C*KH*KW*per*L elements.
 * forward: y = conv(x, w) (+ b[o] when b is not NULL) */
void ce_conv2d_fwd_f32(float *y, float *ws, const float *x, const float *w, const float *b,
                       const ce_conv_geom_t *g, int64_t per, int64_t wsz);
void ce_conv2d_fwd_f64(double *y, double *ws, const double *x, const double *w,
                       const double *b, const ce_conv_geom_t *g, int64_t per, int64_t wsz);
/* backward: dx (zeroed by the caller, NULL: not wanted) += input gradient; weight gradient
 * (NULL: not wanted) either into partials dwp (nchunks, O, C/G*KH*KW), one per chunk, which
 * the caller sums in chunk order (dw_accumulate == 0), or accumulated straight into dwp
 * (O, C/G*KH*KW) chunk after chunk with every kernel threaded (dw_accumulate == 1). Either
 * way the result does not depend on the thread count. ws slices: wsz >= (C*KH*KW + O)*per*L */
void ce_conv2d_bwd_f32(float *dx, float *dwp, float *ws, const float *dy, const float *x,
                       const float *w, const ce_conv_geom_t *g, int64_t per, int64_t wsz,
                       int dw_accumulate);
void ce_conv2d_bwd_f64(double *dx, double *dwp, double *ws, const double *dy, const double *x,
                       const double *w, const ce_conv_geom_t *g, int64_t per, int64_t wsz,
                       int dw_accumulate);
/* dw (D) += sum over c < nchunks of parts (nchunks, D), in chunk order */
void ce_conv_sum_parts_f32(float *dw, const float *parts, int64_t nchunks, int64_t D);
void ce_conv_sum_parts_f64(double *dw, const double *parts, int64_t nchunks, int64_t D);

/* ---- stride-1, one-group convolution without unfolding (sh = sw = 1, G = 1, pads >= 0 with
 * H + ph <= OH + (KH-1)*dh and W + pw <= OW + (KW-1)*dw) ----
 * The input is copied once into zero-padded (OH+(KH-1)*dh) x (OW+(KW-1)*dw) planes stored
 * channels-last; the GEMM microkernels (gemm.h) then run straight on that grid, over the output
 * positions only: an output row is cut into row panels, and for a panel and an NR-wide block
 * of output channels each kernel row (each tap when dw > 1) is one microkernel call whose A
 * rows are the grid read in place at the tap's offset (y[r, o] = sum_t grid[r + off_t, :] @
 * w_t), all adding into one C tile. Backward-data is the same on dy (placed at the flipped
 * offset) with the flipped, transposed kernel; backward-weight one call per (tile of dW,
 * output row) with K = OW, dy and the grid read in place, the tiles split over the threads.
 * Every output element is summed in an order fixed by the sizes, so results do not depend on
 * the thread count. ws: ce_conv2d_s1_ws(g, bwd, need_dx, need_dw, parts_elems,
 * ce_get_num_threads()) elements (the same count for both dtypes; parts_elems is not used).
 * forward: y (N,O,OH,OW) = conv(x, w) (+ b[o] when b is not NULL), overwritten; the first
 * R*C elements of ws are then x's grid (R = N*Hp*Wp + (KH-1)*dh*Wp + (KW-1)*dw + 1), which the
 * backward may take back as xg (NULL: pack x again);
 * backward: dx (N,C,H,W) = input gradient (dx_accumulate == 0: every element written, dx may
 * start uninitialised) or += it (dx_accumulate == 1), dw (O,C,KH,KW) += weight gradient (NULL:
 * not wanted) */
int64_t ce_conv2d_s1_ws(const ce_conv_geom_t *g, int bwd, int need_dx, int need_dw,
                        int64_t parts_elems, int nthreads);
void ce_conv2d_s1_fwd_f32(float *y, float *ws, const float *x, const float *w, const float *b,
                          const ce_conv_geom_t *g);
void ce_conv2d_s1_fwd_f64(double *y, double *ws, const double *x, const double *w,
                          const double *b, const ce_conv_geom_t *g);
void ce_conv2d_s1_bwd_f32(float *dx, float *dw, float *ws, const float *dy, const float *x,
                          const float *xg, const float *w, const ce_conv_geom_t *g,
                          int64_t parts_elems, int dx_accumulate);
void ce_conv2d_s1_bwd_f64(double *dx, double *dw, double *ws, const double *dy, const double *x,
                          const double *xg, const double *w, const ce_conv_geom_t *g,
                          int64_t parts_elems, int dx_accumulate);

/* ---- pooling over P planes (P = N*C), x (P,H,W), y (P,OH,OW) contiguous (pool.c) ---- */
/* max pool: y = max over the window (NaN wins), idx = h*W + w of the chosen input element
 * (the first maximum in row-major window order); windows never lie wholly in the padding */
void ce_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, int64_t P, int64_t H,
                          int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw);
void ce_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, int64_t P, int64_t H,
                          int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                          int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw);
void ce_maxpool2d_fwd_f32_ref(float *y, int64_t *idx, const float *x, int64_t P, int64_t H,
                              int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                              int64_t dw);
void ce_maxpool2d_fwd_f64_ref(double *y, int64_t *idx, const double *x, int64_t P, int64_t H,
                              int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                              int64_t dw);
/* dx (P, HW) += dy (P, OL) scattered by idx (P, OL) (max pool and adaptive max pool) */
void ce_pool_scatter_bwd_f32(float *dx, const float *dy, const int64_t *idx, int64_t P,
                             int64_t HW, int64_t OL);
void ce_pool_scatter_bwd_f64(double *dx, const double *dy, const int64_t *idx, int64_t P,
                             int64_t HW, int64_t OL);
/* average pool: window rows [oh*sh - ph, +KH) clipped to [-ph, H+ph) then to [0, H) (same for
 * columns); divisor = divisor (when > 0), else the clipped-to-padding window size when
 * count_include_pad, else the count of real elements */
void ce_avgpool2d_fwd_f32(float *y, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH,
                          int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                          int64_t pw, int64_t count_include_pad, int64_t divisor);
void ce_avgpool2d_fwd_f64(double *y, const double *x, int64_t P, int64_t H, int64_t W,
                          int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t count_include_pad, int64_t divisor);
void ce_avgpool2d_fwd_f32_ref(float *y, const float *x, int64_t P, int64_t H, int64_t W,
                              int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                              int64_t sw, int64_t ph, int64_t pw, int64_t count_include_pad,
                              int64_t divisor);
void ce_avgpool2d_fwd_f64_ref(double *y, const double *x, int64_t P, int64_t H, int64_t W,
                              int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                              int64_t sw, int64_t ph, int64_t pw, int64_t count_include_pad,
                              int64_t divisor);
/* dx (P,H,W) += dy spread evenly (1/divisor) over each window's real elements */
void ce_avgpool2d_bwd_f32(float *dx, const float *dy, int64_t P, int64_t H, int64_t W,
                          int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t count_include_pad, int64_t divisor);
void ce_avgpool2d_bwd_f64(double *dx, const double *dy, int64_t P, int64_t H, int64_t W,
                          int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t count_include_pad, int64_t divisor);
/* adaptive pools: output row i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)) */
void ce_adaptive_avgpool2d_fwd_f32(float *y, const float *x, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW);
void ce_adaptive_avgpool2d_fwd_f64(double *y, const double *x, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW);
void ce_adaptive_avgpool2d_bwd_f32(float *dx, const float *dy, int64_t P, int64_t H, int64_t W,
                                   int64_t OH, int64_t OW);
void ce_adaptive_avgpool2d_bwd_f64(double *dx, const double *dy, int64_t P, int64_t H,
                                   int64_t W, int64_t OH, int64_t OW);
void ce_adaptive_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, int64_t P, int64_t H,
                                   int64_t W, int64_t OH, int64_t OW);
void ce_adaptive_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, int64_t P,
                                   int64_t H, int64_t W, int64_t OH, int64_t OW);

/* plain single-threaded references of the pools above (same contracts) */
void ce_avgpool2d_bwd_f32_ref(float *dx, const float *dy, int64_t P, int64_t H, int64_t W,
                              int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                              int64_t sw, int64_t ph, int64_t pw, int64_t count_include_pad,
                              int64_t divisor);
void ce_avgpool2d_bwd_f64_ref(double *dx, const double *dy, int64_t P, int64_t H, int64_t W,
                              int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh,
                              int64_t sw, int64_t ph, int64_t pw, int64_t count_include_pad,
                              int64_t divisor);
void ce_adaptive_avgpool2d_fwd_f32_ref(float *y, const float *x, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW);
void ce_adaptive_avgpool2d_fwd_f64_ref(double *y, const double *x, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW);
void ce_adaptive_avgpool2d_bwd_f32_ref(float *dx, const float *dy, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW);
void ce_adaptive_avgpool2d_bwd_f64_ref(double *dx, const double *dy, int64_t P, int64_t H,
                                       int64_t W, int64_t OH, int64_t OW);
void ce_adaptive_maxpool2d_fwd_f32_ref(float *y, int64_t *idx, const float *x, int64_t P,
                                       int64_t H, int64_t W, int64_t OH, int64_t OW);
void ce_adaptive_maxpool2d_fwd_f64_ref(double *y, int64_t *idx, const double *x, int64_t P,
                                       int64_t H, int64_t W, int64_t OH, int64_t OW);

/* ---- BatchNorm over (N, C, S) (S = H*W), per channel c (batchnorm.c) ----
 * *_ref: plain loops with the same contract (sums in double), one thread, for tests */
/* batch statistics: mean[c], var[c] (biased) in double accumulation, threaded over channels */
void ce_bn_stats_f32(float *mean, float *var, const float *x, int64_t N, int64_t C, int64_t S);
void ce_bn_stats_f64(double *mean, double *var, const double *x, int64_t N, int64_t C, int64_t S);
/* y = (x - mean[c]) * scale[c] + shift... as y = x * a[c] + b[c] */
void ce_bn_apply_f32(float *y, const float *x, const float *a, const float *b, int64_t N,
                     int64_t C, int64_t S);
void ce_bn_apply_f64(double *y, const double *x, const double *a, const double *b, int64_t N,
                     int64_t C, int64_t S);
/* training backward: with xhat = (x - mean) * rstd, sdy[c] = sum dy, sdyx[c] = sum dy*xhat;
 * dx = w[c]*rstd[c] * (dy - sdy/M - xhat * sdyx/M) (M = N*S; w NULL = 1), overwrites dx when
 * dx is not NULL; dw[c] += sdyx and db[c] += sdy when not NULL */
void ce_bn_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x,
                   const float *mean, const float *rstd, const float *w, int64_t N, int64_t C,
                   int64_t S);
void ce_bn_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x,
                   const double *mean, const double *rstd, const double *w, int64_t N, int64_t C,
                   int64_t S);

void ce_bn_stats_f32_ref(float *mean, float *var, const float *x, int64_t N, int64_t C,
                         int64_t S);
void ce_bn_stats_f64_ref(double *mean, double *var, const double *x, int64_t N, int64_t C,
                         int64_t S);
void ce_bn_apply_f32_ref(float *y, const float *x, const float *a, const float *b, int64_t N,
                         int64_t C, int64_t S);
void ce_bn_apply_f64_ref(double *y, const double *x, const double *a, const double *b,
                         int64_t N, int64_t C, int64_t S);
void ce_bn_bwd_f32_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *mean, const float *rstd, const float *w, int64_t N,
                       int64_t C, int64_t S);
void ce_bn_bwd_f64_ref(double *dx, double *dw, double *db, const double *dy, const double *x,
                       const double *mean, const double *rstd, const double *w, int64_t N,
                       int64_t C, int64_t S);

/* ---- exact borders. The drivers above multiply the padding's zeros like any input value:
 * exact unless the weight holds an inf or NaN (0 * inf = NaN where the convolution has no
 * term; PyTorch's oneDNN path has none there). For such weights the binding then calls:
 * fwd_border: y at the outputs whose window touches the padding = b[o] + the real terms
 *   (OVERWRITTEN), any geometry and groups;
 * dgrad_border (sh = sw = 1): dx at the inputs some tap of which falls outside dy = the input
 *   gradient over the real terms (OVERWRITTEN; the stride-1 driver reads dy zero-padded).
 * Double accumulators; threads split output rows. nonfinite: 1 when any of v[0..n) is inf or
 * NaN (serial). */
int ce_conv_nonfinite_f32(const float *v, int64_t n);
int ce_conv_nonfinite_f64(const double *v, int64_t n);
void ce_conv2d_fwd_border_f32(float *y, const float *x, const float *w, const float *b,
                              const ce_conv_geom_t *g);
void ce_conv2d_fwd_border_f64(double *y, const double *x, const double *w, const double *b,
                              const ce_conv_geom_t *g);
void ce_conv2d_dgrad_border_f32(float *dx, const float *dy, const float *w,
                                const ce_conv_geom_t *g);
void ce_conv2d_dgrad_border_f64(double *dx, const double *dy, const double *w,
                                const ce_conv_geom_t *g);
/* plain references, any geometry and groups, over the real terms only, one thread:
 * y = conv(x, w) (+ b) overwritten; dx += the input gradient for dy */
void ce_conv2d_fwd_f32_ref(float *y, const float *x, const float *w, const float *b,
                           const ce_conv_geom_t *g);
void ce_conv2d_fwd_f64_ref(double *y, const double *x, const double *w, const double *b,
                           const ce_conv_geom_t *g);
void ce_conv2d_dgrad_f32_ref(float *dx, const float *dy, const float *w,
                             const ce_conv_geom_t *g);
void ce_conv2d_dgrad_f64_ref(double *dx, const double *dy, const double *w,
                             const ce_conv_geom_t *g);

#endif
