# conv.pxi - convolution on the GEMM (im2col tiles), pooling and BatchNorm-over-planes kernels
# (src_c/conv.h). All float arrays C-contiguous float32 or float64, one dtype per call; the
# Python side (cengine/ops/conv.py) checks shapes and computes the output sizes, so these
# wrappers only check what C relies on (dtype, contiguity, sizes that fit).
#
#   conv2d_forward(x, w, b, stride, pad, dilation, groups, out_hw, keep_grid=False) -> y
#       (or (y, grid) with keep_grid: the stride-1 driver's packed input, for the backward)
#       x (N,C,H,W), w (O,C/groups,KH,KW), b (O,) or None, pad = (top, left), out_hw = (OH, OW)
#   conv2d_backward(dy, x, w, stride, pad, dilation, groups, need_dx, need_dw, need_db,
#                   grid=None)
#       -> (dx, dw, db) (None where not needed)
#   im2col(x, kernel, stride, pad, dilation, out_hw, ref=False) -> col (C*KH*KW, N*OH*OW)
#   col2im(col, x_shape, kernel, stride, pad, dilation, out_hw, ref=False) -> dx
#   conv_set_tile_elems(n) / conv_get_tile_elems(): unfolded elements per tile (tuning, tests)
#   conv_set_parts_elems(n) / conv_get_parts_elems(): budget of weight-gradient partials
#   maxpool2d_forward(x, kernel, stride, pad, dilation, out_hw, ref=False) -> (y, idx)
#       x (P,H,W); idx int64, h*W + w inside each plane
#   pool_scatter_backward(dy, idx, hw) -> dx (P,H,W): dy added at idx
#   avgpool2d_forward(x, kernel, stride, pad, out_hw, count_include_pad, divisor, ref=False) -> y
#   avgpool2d_backward(dy, hw, kernel, stride, pad, count_include_pad, divisor, ref=False) -> dx
#   adaptive_avgpool2d_forward(x, out_hw, ref=False) -> y
#   adaptive_avgpool2d_backward(dy, hw, ref=False) -> dx
#   adaptive_maxpool2d_forward(x, out_hw, ref=False) -> (y, idx)
#   bn_stats(x (N,C,S), ref=False) -> (mean, var);  bn_apply(x, a, b, ref=False) -> x*a[c] + b[c]
#   bn_backward(dy, x, mean, rstd, w, need_dx, need_dw, need_db, ref=False) -> (dx, dw, db)

cdef extern from "conv.h" nogil:
    ctypedef struct ce_conv_geom_t:
        int64_t N, C, H, W, O, G, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw
    void ce_conv2d_fwd_f32(float *y, float *ws, const float *x, const float *w, const float *b, const ce_conv_geom_t *g, int64_t per, int64_t wsz)
    void ce_conv2d_fwd_f64(double *y, double *ws, const double *x, const double *w, const double *b, const ce_conv_geom_t *g, int64_t per, int64_t wsz)
    void ce_conv2d_bwd_f32(float *dx, float *dwp, float *ws, const float *dy, const float *x, const float *w, const ce_conv_geom_t *g, int64_t per, int64_t wsz, int dw_accumulate)
    void ce_conv2d_bwd_f64(double *dx, double *dwp, double *ws, const double *dy, const double *x, const double *w, const ce_conv_geom_t *g, int64_t per, int64_t wsz, int dw_accumulate)
    int64_t ce_conv2d_s1_ws(const ce_conv_geom_t *g, int bwd, int need_dx, int need_dw, int64_t parts_elems, int nthreads)
    void ce_conv2d_s1_fwd_f32(float *y, float *ws, const float *x, const float *w, const float *b, const ce_conv_geom_t *g)
    void ce_conv2d_s1_fwd_f64(double *y, double *ws, const double *x, const double *w, const double *b, const ce_conv_geom_t *g)
    void ce_conv2d_s1_bwd_f32(float *dx, float *dw, float *ws, const float *dy, const float *x, const float *xg, const float *w, const ce_conv_geom_t *g, int64_t parts_elems, int dx_accumulate)
    void ce_conv2d_s1_bwd_f64(double *dx, double *dw, double *ws, const double *dy, const double *x, const double *xg, const double *w, const ce_conv_geom_t *g, int64_t parts_elems, int dx_accumulate)
    int ce_conv_nonfinite_f32(const float *v, int64_t n)
    int ce_conv_nonfinite_f64(const double *v, int64_t n)
    void ce_conv2d_fwd_border_f32(float *y, const float *x, const float *w, const float *b, const ce_conv_geom_t *g)
    void ce_conv2d_fwd_border_f64(double *y, const double *x, const double *w, const double *b, const ce_conv_geom_t *g)
    void ce_conv2d_dgrad_border_f32(float *dx, const float *dy, const float *w, const ce_conv_geom_t *g)
    void ce_conv2d_dgrad_border_f64(double *dx, const double *dy, const double *w, const ce_conv_geom_t *g)
    void ce_conv2d_fwd_f32_ref(float *y, const float *x, const float *w, const float *b, const ce_conv_geom_t *g)
    void ce_conv2d_fwd_f64_ref(double *y, const double *x, const double *w, const double *b, const ce_conv_geom_t *g)
    void ce_conv2d_dgrad_f32_ref(float *dx, const float *dy, const float *w, const ce_conv_geom_t *g)
    void ce_conv2d_dgrad_f64_ref(double *dx, const double *dy, const double *w, const ce_conv_geom_t *g)
    void ce_conv_sum_parts_f32(float *dw, const float *parts, int64_t nchunks, int64_t D)
    void ce_conv_sum_parts_f64(double *dw, const double *parts, int64_t nchunks, int64_t D)
    void ce_im2col_f32(float *col, const float *x, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_im2col_f64(double *col, const double *x, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_im2col_f32_ref(float *col, const float *x, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_im2col_f64_ref(double *col, const double *x, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_col2im_f32(float *dx, const float *col, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_col2im_f64(double *dx, const double *col, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_col2im_f32_ref(float *dx, const float *col, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_col2im_f64_ref(double *dx, const double *col, int64_t nt, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ldcol)
    void ce_conv_pack_dy_f32(float *dyt, const float *dy, int64_t nt, int64_t O, int64_t L, int64_t ldcol)
    void ce_conv_pack_dy_f64(double *dyt, const double *dy, int64_t nt, int64_t O, int64_t L, int64_t ldcol)
    void ce_conv_bias_add_f32(float *y, const float *b, int64_t N, int64_t O, int64_t L)
    void ce_conv_bias_add_f64(double *y, const double *b, int64_t N, int64_t O, int64_t L)
    void ce_conv_bias_grad_f32(float *db, const float *dy, int64_t N, int64_t O, int64_t L)
    void ce_conv_bias_grad_f64(double *db, const double *dy, int64_t N, int64_t O, int64_t L)
    void ce_conv_bias_grad_f32_ref(float *db, const float *dy, int64_t N, int64_t O, int64_t L)
    void ce_conv_bias_grad_f64_ref(double *db, const double *dy, int64_t N, int64_t O, int64_t L)
    void ce_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw)
    void ce_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw)
    void ce_maxpool2d_fwd_f32_ref(float *y, int64_t *idx, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw)
    void ce_maxpool2d_fwd_f64_ref(double *y, int64_t *idx, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw)
    void ce_pool_scatter_bwd_f32(float *dx, const float *dy, const int64_t *idx, int64_t P, int64_t HW, int64_t OL)
    void ce_pool_scatter_bwd_f64(double *dx, const double *dy, const int64_t *idx, int64_t P, int64_t HW, int64_t OL)
    void ce_avgpool2d_fwd_f32(float *y, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_avgpool2d_fwd_f64(double *y, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_avgpool2d_fwd_f32_ref(float *y, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_avgpool2d_fwd_f64_ref(double *y, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_avgpool2d_bwd_f32(float *dx, const float *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_avgpool2d_bwd_f64(double *dx, const double *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_adaptive_avgpool2d_fwd_f32(float *y, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_avgpool2d_fwd_f64(double *y, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_avgpool2d_bwd_f32(float *dx, const float *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_avgpool2d_bwd_f64(double *dx, const double *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_maxpool2d_fwd_f32(float *y, int64_t *idx, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_maxpool2d_fwd_f64(double *y, int64_t *idx, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_avgpool2d_bwd_f32_ref(float *dx, const float *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_avgpool2d_bwd_f64_ref(double *dx, const double *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t cip, int64_t divisor)
    void ce_adaptive_avgpool2d_fwd_f32_ref(float *y, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_avgpool2d_fwd_f64_ref(double *y, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_avgpool2d_bwd_f32_ref(float *dx, const float *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_avgpool2d_bwd_f64_ref(double *dx, const double *dy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_maxpool2d_fwd_f32_ref(float *y, int64_t *idx, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_adaptive_maxpool2d_fwd_f64_ref(double *y, int64_t *idx, const double *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW)
    void ce_bn_stats_f32(float *mean, float *var, const float *x, int64_t N, int64_t C, int64_t S)
    void ce_bn_stats_f64(double *mean, double *var, const double *x, int64_t N, int64_t C, int64_t S)
    void ce_bn_apply_f32(float *y, const float *x, const float *a, const float *b, int64_t N, int64_t C, int64_t S)
    void ce_bn_apply_f64(double *y, const double *x, const double *a, const double *b, int64_t N, int64_t C, int64_t S)
    void ce_bn_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean, const float *rstd, const float *w, int64_t N, int64_t C, int64_t S)
    void ce_bn_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x, const double *mean, const double *rstd, const double *w, int64_t N, int64_t C, int64_t S)
    void ce_bn_stats_f32_ref(float *mean, float *var, const float *x, int64_t N, int64_t C, int64_t S)
    void ce_bn_stats_f64_ref(double *mean, double *var, const double *x, int64_t N, int64_t C, int64_t S)
    void ce_bn_apply_f32_ref(float *y, const float *x, const float *a, const float *b, int64_t N, int64_t C, int64_t S)
    void ce_bn_apply_f64_ref(double *y, const double *x, const double *a, const double *b, int64_t N, int64_t C, int64_t S)
    void ce_bn_bwd_f32_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean, const float *rstd, const float *w, int64_t N, int64_t C, int64_t S)
    void ce_bn_bwd_f64_ref(double *dx, double *dw, double *db, const double *dy, const double *x, const double *mean, const double *rstd, const double *w, int64_t N, int64_t C, int64_t S)


# one tile of unfolded images: 512 Ki elements (2 MiB of float32, about one core's L2), so col
# is still cached when the GEMM packs it and col2im reads it back (CPU-time sweep on the MNIST
# CNN's 32->64 3x3 layer: 1.3x faster forward and backward than 8 MiB tiles). Never depends on the
# thread count, so neither do the results.
cdef int64_t _conv_tile_elems = 1 << 19
# weight-gradient partials (one per chunk, summed in chunk order) are kept up to this many
# elements in all; beyond, chunks accumulate into dW one after another
cdef int64_t _conv_parts_elems = 1 << 22


# stride-1 one-group convolutions run without unfolding (ce_conv2d_s1_*) when the GEMM operand
# rows are wide enough (channels x kernel width >= 32); 0 forces the unfolding path (tests)
cdef bint _conv_s1 = True


def conv_set_s1(bint on):
    """Use the stride-1 shifted-GEMM drivers where they apply (default True)."""
    global _conv_s1
    _conv_s1 = on


def conv_get_s1():
    return _conv_s1


cdef bint _s1_ok(int64_t cs, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH,
                 int64_t OW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                 int64_t dw, int64_t G):
    """whether the stride-1 driver applies, cs = channels of the shifted operand"""
    return (_conv_s1 and sh == 1 and sw == 1 and G == 1 and cs * KW >= 32 and ph >= 0
            and pw >= 0 and H + ph <= OH + (KH - 1) * dh and W + pw <= OW + (KW - 1) * dw)


def conv_set_tile_elems(int64_t n):
    """Target size (elements) of one unfolded tile; at least one image per tile."""
    global _conv_tile_elems
    if n < 1:
        raise ValueError("conv_set_tile_elems: n must be positive")
    _conv_tile_elems = n


def conv_get_tile_elems():
    return _conv_tile_elems


def conv_set_parts_elems(int64_t n):
    """Most elements kept for per-chunk weight-gradient partials (beyond: accumulate chunk
    after chunk); tuning and tests."""
    global _conv_parts_elems
    if n < 0:
        raise ValueError("conv_set_parts_elems: n must be non-negative")
    _conv_parts_elems = n


def conv_get_parts_elems():
    return _conv_parts_elems


cdef bint _conv_dtype(name, arrays):
    """True for float64, False for float32; raise unless every array is one of them, contiguous."""
    cdef object dt = None
    for a in arrays:
        if a is None:
            continue
        if not isinstance(a, np.ndarray):
            raise TypeError("%s: expected numpy arrays, got %s" % (name, type(a).__name__))
        if dt is None:
            dt = a.dtype
            if dt != np.float32 and dt != np.float64:
                raise TypeError("%s: expected float32 or float64, got %s" % (name, dt))
        elif a.dtype != dt:
            raise TypeError("%s: mixed dtypes %s and %s" % (name, dt, a.dtype))
        if not a.flags.c_contiguous:
            raise ValueError("%s: expected C-contiguous arrays" % name)
    return dt == np.float64


cdef inline void _im2col(bint d, bint ref, void *col, const void *x, int64_t nt, int64_t C,
                         int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                         int64_t ldcol) noexcept nogil:
    if d:
        if ref:
            ce_im2col_f64_ref(<double*>col, <const double*>x, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
        else:
            ce_im2col_f64(<double*>col, <const double*>x, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
    else:
        if ref:
            ce_im2col_f32_ref(<float*>col, <const float*>x, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
        else:
            ce_im2col_f32(<float*>col, <const float*>x, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)


cdef inline void _col2im(bint d, bint ref, void *dx, const void *col, int64_t nt, int64_t C,
                         int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                         int64_t ldcol) noexcept nogil:
    if d:
        if ref:
            ce_col2im_f64_ref(<double*>dx, <const double*>col, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
        else:
            ce_col2im_f64(<double*>dx, <const double*>col, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
    else:
        if ref:
            ce_col2im_f32_ref(<float*>dx, <const float*>col, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
        else:
            ce_col2im_f32(<float*>dx, <const float*>col, nt, C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, ldcol)


cdef inline void _cgemm(bint d, int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K,
                        const void *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                        const void *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                        double beta, void *C, int64_t sCb, int64_t sCb2, int64_t rsC,
                        int64_t csC) noexcept nogil:
    """C = A @ B + beta*C on the optimized GEMM (strides in elements)."""
    if d:
        ce_dgemm(nb1, nb2, M, N, K, 1.0, <const double*>A, sAb, sAb2, rsA, csA,
                 <const double*>B, sBb, sBb2, rsB, csB, beta, <double*>C, sCb, sCb2, rsC, csC,
                 NULL, 0)
    else:
        ce_sgemm(nb1, nb2, M, N, K, 1.0, <const float*>A, sAb, sAb2, rsA, csA,
                 <const float*>B, sBb, sBb2, rsB, csB, <float>beta, <float*>C, sCb, sCb2, rsC,
                 csC, NULL, 0)


cdef ce_conv_geom_t _conv_geom(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t G,
                               int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t sh,
                               int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw):
    cdef ce_conv_geom_t g
    g.N = N; g.C = C; g.H = H; g.W = W; g.O = O; g.G = G; g.KH = KH; g.KW = KW
    g.OH = OH; g.OW = OW; g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw
    return g


cdef int64_t _conv_tile(int64_t N, int64_t per_image):
    """images per tile: as many as fit the tile size, then evened out over the tiles that
    makes (batch 64 at 18 a tile: 4 tiles of 16, not 18+18+18+10, which left one of two
    threads idle a quarter of the time); depends on the sizes only"""
    cdef int64_t nt = _conv_tile_elems // per_image if per_image > 0 else N
    if nt < 1:
        nt = 1
    if nt > N:
        nt = N
    cdef int64_t nch = (N + nt - 1) // nt
    return (N + nch - 1) // nch


cdef int64_t _s1_grid_rows(int64_t N, int64_t KH, int64_t KW, int64_t OH, int64_t OW,
                           int64_t dh, int64_t dw):
    """rows of the stride-1 drivers' padded grid (conv.h)"""
    cdef int64_t Wp = OW + (KW - 1) * dw
    return N * (OH + (KH - 1) * dh) * Wp + (KH - 1) * dh * Wp + (KW - 1) * dw + 1


def conv2d_forward(x, w, b, stride, pad, dilation, int64_t groups, out_hw, bint keep_grid=False):
    """keep_grid: return (y, grid), grid being what conv2d_backward(grid=) can reuse for the
    weight gradient (None when the stride-1 driver did not run)"""
    y = _conv2d_forward(x, w, b, stride, pad, dilation, groups, out_hw)
    if y[0].size and (pad[0] or pad[1] or y[0].shape[2] * stride[0] + (w.shape[2] - 1) * dilation[0] > x.shape[2]
                      or y[0].shape[3] * stride[1] + (w.shape[3] - 1) * dilation[1] > x.shape[3]):
        _conv_border_fwd(y[0], x, w, b, stride, pad, dilation, groups)
    if keep_grid:
        return y
    return y[0]


cdef bint _conv_nonfinite(bint d, w):
    cdef void *p = _ptr(w)
    cdef int64_t n = w.size
    cdef int r
    with nogil:
        r = ce_conv_nonfinite_f64(<const double*>p, n) if d else ce_conv_nonfinite_f32(<const float*>p, n)
    return r != 0


def _conv_border_fwd(y, x, w, b, stride, pad, dilation, int64_t groups):
    """a weight with inf or NaN: the outputs whose window touches the padding over the real
    terms only (ce_conv2d_fwd_border_*), as PyTorch's oneDNN path gives them"""
    cdef bint d = x.dtype == np.float64
    if not _conv_nonfinite(d, w):
        return
    cdef ce_conv_geom_t g = _conv_geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                                       w.shape[0], groups, w.shape[2], w.shape[3], y.shape[2],
                                       y.shape[3], stride[0], stride[1], pad[0], pad[1],
                                       dilation[0], dilation[1])
    cdef void *py = _ptr(y)
    cdef void *px = _ptr(x)
    cdef void *pw_ = _ptr(w)
    cdef void *pb = _ptr(b) if b is not None else NULL
    with nogil:
        if d:
            ce_conv2d_fwd_border_f64(<double*>py, <const double*>px, <const double*>pw_, <const double*>pb, &g)
        else:
            ce_conv2d_fwd_border_f32(<float*>py, <const float*>px, <const float*>pw_, <const float*>pb, &g)


def _conv2d_forward(x, w, b, stride, pad, dilation, int64_t groups, out_hw):
    cdef bint d = _conv_dtype("conv2d_forward", (x, w, b))
    cdef int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int64_t O = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3]
    cdef int64_t sh = stride[0], sw = stride[1], ph = pad[0], pw = pad[1]
    cdef int64_t dh = dilation[0], dw = dilation[1], OH = out_hw[0], OW = out_hw[1]
    cdef int64_t G = groups, Og = O // G, CgKK = Cg * KH * KW, L = OH * OW
    if Cg * G != C or Og * G != O or x.ndim != 4 or w.ndim != 4:
        raise ValueError("conv2d_forward: inconsistent shapes %s, %s, groups=%d"
                         % (x.shape, w.shape, G))
    if b is not None and b.shape != (O,):
        raise ValueError("conv2d_forward: bias must have shape (%d,)" % O)
    y = np.empty((N, O, OH, OW), x.dtype)
    if y.size == 0:
        return y, None
    if CgKK == 0:
        y[...] = 0
        if b is not None:
            y += b.reshape(1, O, 1, 1)
        return y, None
    cdef void *px = _ptr(x)
    cdef void *pw_ = _ptr(w)
    cdef void *py = _ptr(y)
    cdef void *pb = _ptr(b) if b is not None else NULL
    cdef int64_t isz = x.dtype.itemsize, nt, n0, m, ldcol
    cdef void *pc
    cdef int64_t wsz
    cdef ce_conv_geom_t geom
    cdef bint direct = (KH == 1 and KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
                        and OH == H and OW == W)
    if direct:   # 1x1 convolution: the input planes are the unfolded matrix already
        with nogil:
            _cgemm(d, N, G, Og, L, Cg, pw_, 0, Og * Cg, Cg, 1, px, C * L, Cg * L, L, 1,
                   0.0, py, O * L, Og * L, L, 1)
    elif _s1_ok(C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, G):
        geom = _conv_geom(N, C, H, W, O, G, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw)
        ws = np.empty(ce_conv2d_s1_ws(&geom, 0, 0, 0, 0, ce_get_num_threads()), x.dtype)
        pc = _ptr(ws)
        with nogil:
            if d:
                ce_conv2d_s1_fwd_f64(<double*>py, <double*>pc, <const double*>px, <const double*>pw_, <const double*>pb, &geom)
            else:
                ce_conv2d_s1_fwd_f32(<float*>py, <float*>pc, <const float*>px, <const float*>pw_, <const float*>pb, &geom)
        return y, ws
    else:
        nt = _conv_tile(N, C * KH * KW * L)
        geom = _conv_geom(N, C, H, W, O, G, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw)
        wsz = C * KH * KW * nt * L
        ws = np.empty(wsz * ce_get_num_threads(), x.dtype)
        pc = _ptr(ws)
        with nogil:
            if d:
                ce_conv2d_fwd_f64(<double*>py, <double*>pc, <const double*>px, <const double*>pw_, <const double*>pb, &geom, nt, wsz)
            else:
                ce_conv2d_fwd_f32(<float*>py, <float*>pc, <const float*>px, <const float*>pw_, <const float*>pb, &geom, nt, wsz)
        return y, None
    if pb != NULL:
        with nogil:
            if d:
                ce_conv_bias_add_f64(<double*>py, <const double*>pb, N, O, L)
            else:
                ce_conv_bias_add_f32(<float*>py, <const float*>pb, N, O, L)
    return y, None


def conv2d_backward(dy, x, w, stride, pad, dilation, int64_t groups, bint need_dx,
                    bint need_dw, bint need_db, grid=None):
    """x may be just the input's shape (a tuple) when need_dw is False; grid: the one
    conv2d_forward(keep_grid=True) gave for this x (or None)."""
    cdef bint shape_only = isinstance(x, tuple)
    if shape_only and need_dw:
        raise ValueError("conv2d_backward: the weight gradient needs the input array")
    cdef bint d = _conv_dtype("conv2d_backward", (dy, w) if shape_only else (dy, x, w))
    xshape = x if shape_only else x.shape
    if len(xshape) != 4 or w.ndim != 4:
        raise ValueError("conv2d_backward: expected 4-D input and weight")
    cdef int64_t N = xshape[0], C = xshape[1], H = xshape[2], W = xshape[3]
    cdef int64_t O = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3]
    cdef int64_t sh = stride[0], sw = stride[1], ph = pad[0], pw = pad[1]
    cdef int64_t dh = dilation[0], dw = dilation[1]
    cdef int64_t G = groups, Og = O // G, CgKK = Cg * KH * KW
    if dy.ndim != 4 or dy.shape[0] != N or dy.shape[1] != O or Cg * G != C or Og * G != O:
        raise ValueError("conv2d_backward: inconsistent shapes %s, %s, %s"
                         % (dy.shape, xshape, w.shape))
    cdef int64_t OH = dy.shape[2], OW = dy.shape[3], L = OH * OW
    cdef bint direct = (KH == 1 and KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
                        and OH == H and OW == W)
    cdef bint s1_dx = need_dx and not direct and _s1_ok(O, H, W, KH, KW, OH, OW, sh, sw, ph, pw,
                                                        dh, dw, G)
    # the 1x1 GEMM and the stride-1 driver write every element of dx (no zero fill first);
    # col2im adds into it
    if need_dx and dy.size and CgKK and (direct or s1_dx):
        dx = np.empty(xshape, w.dtype)
    else:
        dx = np.zeros(xshape, w.dtype) if need_dx else None
    dW = np.zeros(w.shape, w.dtype) if need_dw else None
    db = np.zeros((O,), w.dtype) if need_db else None
    cdef int64_t isz = w.dtype.itemsize, nt, n0, m, ldcol
    cdef void *px = NULL if shape_only else _ptr(x)
    cdef void *pw_ = _ptr(w)
    cdef void *pdy = _ptr(dy)
    cdef void *pdx = _ptr(dx) if need_dx else NULL
    cdef void *pdw = _ptr(dW) if need_dw else NULL
    cdef void *pc
    cdef void *pt
    cdef void *pg
    cdef void *pdb = _ptr(db) if need_db else NULL
    if need_db and dy.size:
        with nogil:
            if d:
                ce_conv_bias_grad_f64(<double*>pdb, <const double*>pdy, N, O, L)
            else:
                ce_conv_bias_grad_f32(<float*>pdb, <const float*>pdy, N, O, L)
    if dy.size == 0 or CgKK == 0 or not (need_dx or need_dw):
        return dx, dW, db
    if need_dx and direct:   # dx[n, g] (Cg, L) = W[g]^T (Cg, Og) @ dy[n, g] (Og, L)
        with nogil:
            _cgemm(d, N, G, Cg, L, Og, pw_, 0, Og * Cg, 1, Cg, pdy, O * L, Og * L, L, 1,
                   0.0, pdx, C * L, Cg * L, L, 1)
        if not need_dw:
            return dx, dW, db
    # stride 1, one group: the shifted-GEMM driver for what it applies to, unfolding for the rest
    cdef bint s1_dw = need_dw and _s1_ok(C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, G)
    cdef ce_conv_geom_t geom = _conv_geom(N, C, H, W, O, G, KH, KW, OH, OW, sh, sw, ph, pw,
                                          dh, dw)
    cdef int64_t pe = _conv_parts_elems
    if s1_dx or s1_dw:
        ws = np.empty(ce_conv2d_s1_ws(&geom, 1, s1_dx, s1_dw, pe, ce_get_num_threads()),
                      w.dtype)
        pc = _ptr(ws)
        pt = pdx if s1_dx else NULL
        pg = NULL
        if (s1_dw and isinstance(grid, np.ndarray) and grid.dtype == w.dtype
                and grid.flags.c_contiguous and grid.ndim == 1
                and grid.size >= _s1_grid_rows(N, KH, KW, OH, OW, dh, dw) * C):
            pg = _ptr(grid)
        with nogil:
            if d:
                ce_conv2d_s1_bwd_f64(<double*>pt, <double*>(pdw if s1_dw else NULL), <double*>pc, <const double*>pdy, <const double*>px, <const double*>pg, <const double*>pw_, &geom, pe, 0)
            else:
                ce_conv2d_s1_bwd_f32(<float*>pt, <float*>(pdw if s1_dw else NULL), <float*>pc, <const float*>pdy, <const float*>px, <const float*>pg, <const float*>pw_, &geom, pe, 0)
        if s1_dx and _conv_nonfinite(d, w):
            # dy was read zero-padded: 0 * inf = NaN at the borders where there is no term
            with nogil:
                if d:
                    ce_conv2d_dgrad_border_f64(<double*>pdx, <const double*>pdy, <const double*>pw_, &geom)
                else:
                    ce_conv2d_dgrad_border_f32(<float*>pdx, <const float*>pdy, <const float*>pw_, &geom)
        if s1_dx:
            direct = True   # dx done: the unfolding pass below only does dW (if still wanted)
            pdx = NULL
        if s1_dw:
            need_dw = False
            pdw = NULL
        if not need_dw and (direct or not need_dx):
            return dx, dW, db
    nt = _conv_tile(N, C * KH * KW * L + O * L)
    cdef int64_t nch = (N + nt - 1) // nt, D = O * CgKK
    # weight gradient: one partial per chunk summed in chunk order (lets the chunks run on
    # separate threads) unless the partials would be large; then chunk after chunk
    cdef int acc = need_dw and nch * D > _conv_parts_elems
    cdef int64_t wsz = (C * KH * KW + O) * nt * L
    ws = np.empty(wsz * ce_get_num_threads(), w.dtype)
    parts = None
    if need_dw:
        parts = dW if acc else np.empty(nch * D, w.dtype)
    pc = _ptr(ws)
    pt = _ptr(parts) if need_dw else NULL
    if direct:
        pdx = NULL   # done above
    with nogil:
        if d:
            ce_conv2d_bwd_f64(<double*>pdx, <double*>pt, <double*>pc, <const double*>pdy, <const double*>px, <const double*>pw_, &geom, nt, wsz, acc)
            if pt != NULL and not acc:
                ce_conv_sum_parts_f64(<double*>pdw, <const double*>pt, nch, D)
        else:
            ce_conv2d_bwd_f32(<float*>pdx, <float*>pt, <float*>pc, <const float*>pdy, <const float*>px, <const float*>pw_, &geom, nt, wsz, acc)
            if pt != NULL and not acc:
                ce_conv_sum_parts_f32(<float*>pdw, <const float*>pt, nch, D)
    return dx, dW, db


def conv_bias_add(y, b):
    """y (N,O,...) += b (O,) in place (ConvTranspose's bias)."""
    cdef bint d = _conv_dtype("conv_bias_add", (y, b))
    if y.ndim < 2 or b.shape != (y.shape[1],):
        raise ValueError("conv_bias_add: bias must have shape (%d,)" % y.shape[1])
    cdef int64_t N = y.shape[0], O = y.shape[1], L = y.size // (N * O) if N * O else 0
    if y.size == 0:
        return y
    cdef void *py = _ptr(y)
    cdef void *pb = _ptr(b)
    with nogil:
        if d:
            ce_conv_bias_add_f64(<double*>py, <const double*>pb, N, O, L)
        else:
            ce_conv_bias_add_f32(<float*>py, <const float*>pb, N, O, L)
    return y


def conv_bias_grad(dy, bint ref=False):
    """sum of dy (N,O,...) over every axis but 1 (fixed order, double accumulation); ref:
    the plain reference."""
    cdef bint d = _conv_dtype("conv_bias_grad", (dy,))
    if dy.ndim < 2:
        raise ValueError("conv_bias_grad: expected (N,O,...)")
    cdef int64_t N = dy.shape[0], O = dy.shape[1], L = dy.size // (N * O) if N * O else 0
    db = np.zeros((O,), dy.dtype)
    if dy.size == 0:
        return db
    cdef void *pdb = _ptr(db)
    cdef void *pdy = _ptr(dy)
    with nogil:
        if d:
            if ref:
                ce_conv_bias_grad_f64_ref(<double*>pdb, <const double*>pdy, N, O, L)
            else:
                ce_conv_bias_grad_f64(<double*>pdb, <const double*>pdy, N, O, L)
        else:
            if ref:
                ce_conv_bias_grad_f32_ref(<float*>pdb, <const float*>pdy, N, O, L)
            else:
                ce_conv_bias_grad_f32(<float*>pdb, <const float*>pdy, N, O, L)
    return db


def im2col(x, kernel, stride, pad, dilation, out_hw, bint ref=False):
    cdef bint d = _conv_dtype("im2col", (x,))
    if x.ndim != 4:
        raise ValueError("im2col: expected (N,C,H,W)")
    cdef int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int64_t KH = kernel[0], KW = kernel[1], OH = out_hw[0], OW = out_hw[1]
    col = np.empty((C * KH * KW, N * OH * OW), x.dtype)
    if col.size:
        _im2col(d, ref, _ptr(col), _ptr(x), N, C, H, W, KH, KW, OH, OW, stride[0], stride[1],
                pad[0], pad[1], dilation[0], dilation[1], N * OH * OW)
    return col


def col2im(col, x_shape, kernel, stride, pad, dilation, out_hw, bint ref=False):
    cdef bint d = _conv_dtype("col2im", (col,))
    cdef int64_t N = x_shape[0], C = x_shape[1], H = x_shape[2], W = x_shape[3]
    cdef int64_t KH = kernel[0], KW = kernel[1], OH = out_hw[0], OW = out_hw[1]
    if col.shape != (C * KH * KW, N * OH * OW):
        raise ValueError("col2im: col must have shape %s" % ((C * KH * KW, N * OH * OW),))
    dx = np.zeros(tuple(x_shape), col.dtype)
    if col.size and dx.size:
        _col2im(d, ref, _ptr(dx), _ptr(col), N, C, H, W, KH, KW, OH, OW, stride[0], stride[1],
                pad[0], pad[1], dilation[0], dilation[1], N * OH * OW)
    return dx


def maxpool2d_forward(x, kernel, stride, pad, dilation, out_hw, bint ref=False):
    cdef bint d = _conv_dtype("maxpool2d_forward", (x,))
    if x.ndim != 3:
        raise ValueError("maxpool2d_forward: expected (P,H,W)")
    cdef int64_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef int64_t KH = kernel[0], KW = kernel[1], sh = stride[0], sw = stride[1]
    cdef int64_t ph = pad[0], pw = pad[1], dh = dilation[0], dw = dilation[1]
    cdef int64_t OH = out_hw[0], OW = out_hw[1]
    y = np.empty((P, OH, OW), x.dtype)
    idx = np.empty((P, OH, OW), np.int64)
    if y.size == 0:
        return y, idx
    cdef void *py = _ptr(y)
    cdef void *px = _ptr(x)
    cdef int64_t *pi = <int64_t*>_ptr(idx)
    with nogil:
        if d:
            if ref:
                ce_maxpool2d_fwd_f64_ref(<double*>py, pi, <const double*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw)
            else:
                ce_maxpool2d_fwd_f64(<double*>py, pi, <const double*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw)
        else:
            if ref:
                ce_maxpool2d_fwd_f32_ref(<float*>py, pi, <const float*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw)
            else:
                ce_maxpool2d_fwd_f32(<float*>py, pi, <const float*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw)
    return y, idx


def pool_scatter_backward(dy, idx, hw):
    cdef bint d = _conv_dtype("pool_scatter_backward", (dy,))
    _check_c("pool_scatter_backward", idx, np.int64)
    if dy.ndim != 3 or idx.shape != dy.shape:
        raise ValueError("pool_scatter_backward: dy and idx must be (P,OH,OW) alike")
    cdef int64_t P = dy.shape[0], H = hw[0], W = hw[1], OL = dy.shape[1] * dy.shape[2]
    dx = np.zeros((P, H, W), dy.dtype)
    if dy.size == 0 or dx.size == 0:
        return dx
    if idx.min() < 0 or idx.max() >= H * W:
        raise IndexError("pool_scatter_backward: index out of range")
    cdef void *pdx = _ptr(dx)
    cdef void *pdy = _ptr(dy)
    cdef const int64_t *pi = <const int64_t*>_ptr(idx)
    with nogil:
        if d:
            ce_pool_scatter_bwd_f64(<double*>pdx, <const double*>pdy, pi, P, H * W, OL)
        else:
            ce_pool_scatter_bwd_f32(<float*>pdx, <const float*>pdy, pi, P, H * W, OL)
    return dx


def avgpool2d_forward(x, kernel, stride, pad, out_hw, bint count_include_pad, int64_t divisor,
                      bint ref=False):
    cdef bint d = _conv_dtype("avgpool2d_forward", (x,))
    if x.ndim != 3:
        raise ValueError("avgpool2d_forward: expected (P,H,W)")
    cdef int64_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef int64_t KH = kernel[0], KW = kernel[1], sh = stride[0], sw = stride[1]
    cdef int64_t ph = pad[0], pw = pad[1], OH = out_hw[0], OW = out_hw[1]
    y = np.empty((P, OH, OW), x.dtype)
    if y.size == 0:
        return y
    cdef void *py = _ptr(y)
    cdef void *px = _ptr(x)
    with nogil:
        if d:
            if ref:
                ce_avgpool2d_fwd_f64_ref(<double*>py, <const double*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
            else:
                ce_avgpool2d_fwd_f64(<double*>py, <const double*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
        else:
            if ref:
                ce_avgpool2d_fwd_f32_ref(<float*>py, <const float*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
            else:
                ce_avgpool2d_fwd_f32(<float*>py, <const float*>px, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
    return y


def avgpool2d_backward(dy, hw, kernel, stride, pad, bint count_include_pad, int64_t divisor,
                       bint ref=False):
    cdef bint d = _conv_dtype("avgpool2d_backward", (dy,))
    if dy.ndim != 3:
        raise ValueError("avgpool2d_backward: expected (P,OH,OW)")
    cdef int64_t P = dy.shape[0], H = hw[0], W = hw[1], OH = dy.shape[1], OW = dy.shape[2]
    cdef int64_t KH = kernel[0], KW = kernel[1], sh = stride[0], sw = stride[1]
    cdef int64_t ph = pad[0], pw = pad[1]
    dx = np.zeros((P, H, W), dy.dtype)
    if dy.size == 0 or dx.size == 0:
        return dx
    cdef void *pdx = _ptr(dx)
    cdef void *pdy = _ptr(dy)
    with nogil:
        if d:
            if ref:
                ce_avgpool2d_bwd_f64_ref(<double*>pdx, <const double*>pdy, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
            else:
                ce_avgpool2d_bwd_f64(<double*>pdx, <const double*>pdy, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
        else:
            if ref:
                ce_avgpool2d_bwd_f32_ref(<float*>pdx, <const float*>pdy, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
            else:
                ce_avgpool2d_bwd_f32(<float*>pdx, <const float*>pdy, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
    return dx


def adaptive_avgpool2d_forward(x, out_hw, bint ref=False):
    cdef bint d = _conv_dtype("adaptive_avgpool2d_forward", (x,))
    if x.ndim != 3:
        raise ValueError("adaptive_avgpool2d_forward: expected (P,H,W)")
    cdef int64_t P = x.shape[0], H = x.shape[1], W = x.shape[2], OH = out_hw[0], OW = out_hw[1]
    y = np.empty((P, OH, OW), x.dtype)
    if y.size == 0:
        return y
    if H == 0 or W == 0:
        raise ValueError("adaptive_avgpool2d_forward: empty input plane")
    cdef void *py = _ptr(y)
    cdef void *px = _ptr(x)
    with nogil:
        if d:
            if ref:
                ce_adaptive_avgpool2d_fwd_f64_ref(<double*>py, <const double*>px, P, H, W, OH, OW)
            else:
                ce_adaptive_avgpool2d_fwd_f64(<double*>py, <const double*>px, P, H, W, OH, OW)
        else:
            if ref:
                ce_adaptive_avgpool2d_fwd_f32_ref(<float*>py, <const float*>px, P, H, W, OH, OW)
            else:
                ce_adaptive_avgpool2d_fwd_f32(<float*>py, <const float*>px, P, H, W, OH, OW)
    return y


def adaptive_avgpool2d_backward(dy, hw, bint ref=False):
    cdef bint d = _conv_dtype("adaptive_avgpool2d_backward", (dy,))
    if dy.ndim != 3:
        raise ValueError("adaptive_avgpool2d_backward: expected (P,OH,OW)")
    cdef int64_t P = dy.shape[0], H = hw[0], W = hw[1], OH = dy.shape[1], OW = dy.shape[2]
    dx = np.zeros((P, H, W), dy.dtype)
    if dy.size == 0 or dx.size == 0:
        return dx
    cdef void *pdx = _ptr(dx)
    cdef void *pdy = _ptr(dy)
    with nogil:
        if d:
            if ref:
                ce_adaptive_avgpool2d_bwd_f64_ref(<double*>pdx, <const double*>pdy, P, H, W, OH, OW)
            else:
                ce_adaptive_avgpool2d_bwd_f64(<double*>pdx, <const double*>pdy, P, H, W, OH, OW)
        else:
            if ref:
                ce_adaptive_avgpool2d_bwd_f32_ref(<float*>pdx, <const float*>pdy, P, H, W, OH, OW)
            else:
                ce_adaptive_avgpool2d_bwd_f32(<float*>pdx, <const float*>pdy, P, H, W, OH, OW)
    return dx


def adaptive_maxpool2d_forward(x, out_hw, bint ref=False):
    cdef bint d = _conv_dtype("adaptive_maxpool2d_forward", (x,))
    if x.ndim != 3:
        raise ValueError("adaptive_maxpool2d_forward: expected (P,H,W)")
    cdef int64_t P = x.shape[0], H = x.shape[1], W = x.shape[2], OH = out_hw[0], OW = out_hw[1]
    y = np.empty((P, OH, OW), x.dtype)
    idx = np.empty((P, OH, OW), np.int64)
    if y.size == 0:
        return y, idx
    if H == 0 or W == 0:
        raise ValueError("adaptive_maxpool2d_forward: empty input plane")
    cdef void *py = _ptr(y)
    cdef void *px = _ptr(x)
    cdef int64_t *pi = <int64_t*>_ptr(idx)
    with nogil:
        if d:
            if ref:
                ce_adaptive_maxpool2d_fwd_f64_ref(<double*>py, pi, <const double*>px, P, H, W, OH, OW)
            else:
                ce_adaptive_maxpool2d_fwd_f64(<double*>py, pi, <const double*>px, P, H, W, OH, OW)
        else:
            if ref:
                ce_adaptive_maxpool2d_fwd_f32_ref(<float*>py, pi, <const float*>px, P, H, W, OH, OW)
            else:
                ce_adaptive_maxpool2d_fwd_f32(<float*>py, pi, <const float*>px, P, H, W, OH, OW)
    return y, idx


def bn_stats(x, bint ref=False):
    cdef bint d = _conv_dtype("bn_stats", (x,))
    if x.ndim != 3:
        raise ValueError("bn_stats: expected (N,C,S)")
    cdef int64_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    if N * S == 0:
        raise ValueError("bn_stats: no values per channel")
    mean = np.empty((C,), x.dtype)
    var = np.empty((C,), x.dtype)
    cdef void *pm = _ptr(mean)
    cdef void *pv = _ptr(var)
    cdef void *px = _ptr(x)
    with nogil:
        if d:
            if ref:
                ce_bn_stats_f64_ref(<double*>pm, <double*>pv, <const double*>px, N, C, S)
            else:
                ce_bn_stats_f64(<double*>pm, <double*>pv, <const double*>px, N, C, S)
        else:
            if ref:
                ce_bn_stats_f32_ref(<float*>pm, <float*>pv, <const float*>px, N, C, S)
            else:
                ce_bn_stats_f32(<float*>pm, <float*>pv, <const float*>px, N, C, S)
    return mean, var


def bn_apply(x, a, b, bint ref=False):
    cdef bint d = _conv_dtype("bn_apply", (x, a, b))
    if x.ndim != 3 or a.shape != (x.shape[1],) or b.shape != (x.shape[1],):
        raise ValueError("bn_apply: expected x (N,C,S), a and b (C,)")
    cdef int64_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    y = np.empty(x.shape, x.dtype)
    if y.size == 0:
        return y
    cdef void *py = _ptr(y)
    cdef void *px = _ptr(x)
    cdef void *pa = _ptr(a)
    cdef void *pb = _ptr(b)
    with nogil:
        if d:
            if ref:
                ce_bn_apply_f64_ref(<double*>py, <const double*>px, <const double*>pa, <const double*>pb, N, C, S)
            else:
                ce_bn_apply_f64(<double*>py, <const double*>px, <const double*>pa, <const double*>pb, N, C, S)
        else:
            if ref:
                ce_bn_apply_f32_ref(<float*>py, <const float*>px, <const float*>pa, <const float*>pb, N, C, S)
            else:
                ce_bn_apply_f32(<float*>py, <const float*>px, <const float*>pa, <const float*>pb, N, C, S)
    return y


def bn_backward(dy, x, mean, rstd, w, bint need_dx, bint need_dw, bint need_db, bint ref=False):
    cdef bint d = _conv_dtype("bn_backward", (dy, x, mean, rstd, w))
    if x.ndim != 3 or dy.shape != x.shape or mean.shape != (x.shape[1],) or \
            rstd.shape != (x.shape[1],) or (w is not None and w.shape != (x.shape[1],)):
        raise ValueError("bn_backward: expected dy, x (N,C,S), mean, rstd, w (C,)")
    cdef int64_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    dx = np.empty(x.shape, x.dtype) if need_dx else None
    dw = np.zeros((C,), x.dtype) if need_dw else None
    db = np.zeros((C,), x.dtype) if need_db else None
    if x.size == 0:
        return dx, dw, db
    cdef void *pdx = _ptr(dx) if need_dx else NULL
    cdef void *pdw = _ptr(dw) if need_dw else NULL
    cdef void *pdb = _ptr(db) if need_db else NULL
    cdef void *pdy = _ptr(dy)
    cdef void *px = _ptr(x)
    cdef void *pm = _ptr(mean)
    cdef void *pr = _ptr(rstd)
    cdef void *pw_ = _ptr(w) if w is not None else NULL
    with nogil:
        if d:
            if ref:
                ce_bn_bwd_f64_ref(<double*>pdx, <double*>pdw, <double*>pdb, <const double*>pdy, <const double*>px, <const double*>pm, <const double*>pr, <const double*>pw_, N, C, S)
            else:
                ce_bn_bwd_f64(<double*>pdx, <double*>pdw, <double*>pdb, <const double*>pdy, <const double*>px, <const double*>pm, <const double*>pr, <const double*>pw_, N, C, S)
        else:
            if ref:
                ce_bn_bwd_f32_ref(<float*>pdx, <float*>pdw, <float*>pdb, <const float*>pdy, <const float*>px, <const float*>pm, <const float*>pr, <const float*>pw_, N, C, S)
            else:
                ce_bn_bwd_f32(<float*>pdx, <float*>pdw, <float*>pdb, <const float*>pdy, <const float*>px, <const float*>pm, <const float*>pr, <const float*>pw_, N, C, S)
    return dx, dw, db


def conv2d_forward_ref(x, w, b, stride, pad, dilation, int64_t groups, out_hw):
    """the plain reference of conv2d_forward (ce_conv2d_fwd_*_ref: term by term, one thread)"""
    cdef bint d = _conv_dtype("conv2d_forward_ref", (x, w, b))
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] * groups != x.shape[1] or w.shape[0] % groups:
        raise ValueError("conv2d_forward_ref: inconsistent shapes")
    cdef ce_conv_geom_t g = _conv_geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                                       w.shape[0], groups, w.shape[2], w.shape[3], out_hw[0],
                                       out_hw[1], stride[0], stride[1], pad[0], pad[1],
                                       dilation[0], dilation[1])
    y = np.empty((g.N, g.O, g.OH, g.OW), x.dtype)
    cdef void *pb = _ptr(b) if b is not None else NULL
    cdef void *px = _ptr(x)
    cdef void *pw_ = _ptr(w)
    cdef void *py = _ptr(y)
    with nogil:
        if d:
            ce_conv2d_fwd_f64_ref(<double*>py, <const double*>px, <const double*>pw_, <const double*>pb, &g)
        else:
            ce_conv2d_fwd_f32_ref(<float*>py, <const float*>px, <const float*>pw_, <const float*>pb, &g)
    return y


def conv2d_dgrad_ref(dy, xshape, w, stride, pad, dilation, int64_t groups):
    """the plain reference of conv2d_backward's input gradient (ce_conv2d_dgrad_*_ref)"""
    cdef bint d = _conv_dtype("conv2d_dgrad_ref", (dy, w))
    if dy.ndim != 4 or w.ndim != 4 or len(xshape) != 4:
        raise ValueError("conv2d_dgrad_ref: inconsistent shapes")
    cdef ce_conv_geom_t g = _conv_geom(xshape[0], xshape[1], xshape[2], xshape[3],
                                       w.shape[0], groups, w.shape[2], w.shape[3], dy.shape[2],
                                       dy.shape[3], stride[0], stride[1], pad[0], pad[1],
                                       dilation[0], dilation[1])
    dx = np.zeros(tuple(xshape), dy.dtype)
    cdef void *pdy = _ptr(dy)
    cdef void *pw_ = _ptr(w)
    cdef void *pdx = _ptr(dx)
    with nogil:
        if d:
            ce_conv2d_dgrad_f64_ref(<double*>pdx, <const double*>pdy, <const double*>pw_, &g)
        else:
            ce_conv2d_dgrad_f32_ref(<float*>pdx, <const float*>pdy, <const float*>pw_, &g)
    return dx
