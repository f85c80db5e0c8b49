# conv.pxi - convolution on the GEMM (im2col tiles), pooling and BatchNorm-over-planes kernels
# (src_c/conv.h). All float arrays C-contiguous float32 or float64, one dtype per call; the
# Python side (cengine/ops/conv.py) checks shapes and computes the output sizes, so these
# wrappers only check what C relies on (dtype, contiguity, sizes that fit).
#
#   conv2d_forward(x, w, b, stride, pad, dilation, groups, out_hw) -> y
#       x (N,C,H,W), w (O,C/groups,KH,KW), b (O,) or None, pad = (top, left), out_hw = (OH, OW)
#   conv2d_backward(dy, x, w, stride, pad, dilation, groups, need_dx, need_dw, need_db)
#       -> (dx, dw, db) (None where not needed)
#   im2col(x, kernel, stride, pad, dilation, out_hw, ref=False) -> col (C*KH*KW, N*OH*OW)
#   col2im(col, x_shape, kernel, stride, pad, dilation, out_hw, ref=False) -> dx
#   conv_set_tile_elems(n) / conv_get_tile_elems(): unfolded elements per tile (tuning, tests)
#   maxpool2d_forward(x, kernel, stride, pad, dilation, out_hw, ref=False) -> (y, idx)
#       x (P,H,W); idx int64, h*W + w inside each plane
#   pool_scatter_backward(dy, idx, hw) -> dx (P,H,W): dy added at idx
#   avgpool2d_forward(x, kernel, stride, pad, out_hw, count_include_pad, divisor, ref=False) -> y
#   avgpool2d_backward(dy, hw, kernel, stride, pad, count_include_pad, divisor) -> dx
#   adaptive_avgpool2d_forward(x, out_hw) -> y;  adaptive_avgpool2d_backward(dy, hw) -> dx
#   adaptive_maxpool2d_forward(x, out_hw) -> (y, idx)
#   bn_stats(x (N,C,S)) -> (mean, var);  bn_apply(x, a, b) -> x*a[c] + b[c]
#   bn_backward(dy, x, mean, rstd, w, need_dx, need_dw, need_db) -> (dx, dw, db)

cdef extern from "conv.h" nogil:
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
    void ce_bn_stats_f32(float *mean, float *var, const float *x, int64_t N, int64_t C, int64_t S)
    void ce_bn_stats_f64(double *mean, double *var, const double *x, int64_t N, int64_t C, int64_t S)
    void ce_bn_apply_f32(float *y, const float *x, const float *a, const float *b, int64_t N, int64_t C, int64_t S)
    void ce_bn_apply_f64(double *y, const double *x, const double *a, const double *b, int64_t N, int64_t C, int64_t S)
    void ce_bn_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean, const float *rstd, const float *w, int64_t N, int64_t C, int64_t S)
    void ce_bn_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x, const double *mean, const double *rstd, const double *w, int64_t N, int64_t C, int64_t S)


cdef int64_t _conv_tile_elems = 1 << 21


def conv_set_tile_elems(int64_t n):
    """Target size (elements) of one unfolded tile; at least one image per tile."""
    global _conv_tile_elems
    if n < 1:
        raise ValueError("conv_set_tile_elems: n must be positive")
    _conv_tile_elems = n


def conv_get_tile_elems():
    return _conv_tile_elems


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


cdef int64_t _conv_tile(int64_t N, int64_t per_image):
    cdef int64_t nt = _conv_tile_elems // per_image if per_image > 0 else N
    if nt < 1:
        nt = 1
    if nt > N:
        nt = N
    return nt


def conv2d_forward(x, w, b, stride, pad, dilation, int64_t groups, out_hw):
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
        return y
    if CgKK == 0:
        y[...] = 0
        if b is not None:
            y += b.reshape(1, O, 1, 1)
        return y
    cdef void *px = _ptr(x)
    cdef void *pw_ = _ptr(w)
    cdef void *py = _ptr(y)
    cdef void *pb = _ptr(b) if b is not None else NULL
    cdef int64_t isz = x.dtype.itemsize, nt, n0, m, ldcol
    cdef void *pc
    cdef bint direct = (KH == 1 and KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
                        and OH == H and OW == W)
    if direct:   # 1x1 convolution: the input planes are the unfolded matrix already
        with nogil:
            _cgemm(d, N, G, Og, L, Cg, pw_, 0, Og * Cg, Cg, 1, px, C * L, Cg * L, L, 1,
                   0.0, py, O * L, Og * L, L, 1)
    else:
        nt = _conv_tile(N, C * KH * KW * L)
        col = np.empty(C * KH * KW * nt * L, x.dtype)
        pc = _ptr(col)
        with nogil:
            n0 = 0
            while n0 < N:
                m = nt if N - n0 > nt else N - n0
                ldcol = m * L
                _im2col(d, False, pc, <char*>px + n0 * C * H * W * isz, m, C, H, W, KH, KW,
                        OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
                # y[n, g] (Og, L) = W[g] (Og, CgKK) @ col[g][:, n*L:(n+1)*L]
                _cgemm(d, m, G, Og, L, CgKK, pw_, 0, Og * CgKK, CgKK, 1,
                       pc, L, CgKK * ldcol, ldcol, 1, 0.0,
                       <char*>py + n0 * O * L * isz, O * L, Og * L, L, 1)
                n0 += m
    if pb != NULL:
        with nogil:
            if d:
                ce_conv_bias_add_f64(<double*>py, <const double*>pb, N, O, L)
            else:
                ce_conv_bias_add_f32(<float*>py, <const float*>pb, N, O, L)
    return y


def conv2d_backward(dy, x, w, stride, pad, dilation, int64_t groups, bint need_dx,
                    bint need_dw, bint need_db):
    cdef bint d = _conv_dtype("conv2d_backward", (dy, x, w))
    cdef int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int64_t O = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3]
    cdef int64_t sh = stride[0], sw = stride[1], ph = pad[0], pw = pad[1]
    cdef int64_t dh = dilation[0], dw = dilation[1]
    cdef int64_t G = groups, Og = O // G, CgKK = Cg * KH * KW
    if dy.ndim != 4 or dy.shape[0] != N or dy.shape[1] != O or Cg * G != C or Og * G != O:
        raise ValueError("conv2d_backward: inconsistent shapes %s, %s, %s"
                         % (dy.shape, x.shape, w.shape))
    cdef int64_t OH = dy.shape[2], OW = dy.shape[3], L = OH * OW
    dx = np.zeros(x.shape, x.dtype) if need_dx else None
    dW = np.zeros(w.shape, w.dtype) if need_dw else None
    db = np.zeros((O,), x.dtype) if need_db else None
    cdef int64_t isz = x.dtype.itemsize, nt, n0, m, ldcol
    cdef void *px = _ptr(x)
    cdef void *pw_ = _ptr(w)
    cdef void *pdy = _ptr(dy)
    cdef void *pdx = _ptr(dx) if need_dx else NULL
    cdef void *pdw = _ptr(dW) if need_dw else NULL
    cdef void *pc
    cdef void *pt
    cdef double beta
    cdef bint direct = (KH == 1 and KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
                        and OH == H and OW == W)
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
    nt = _conv_tile(N, C * KH * KW * L + O * L)
    col = np.empty(C * KH * KW * nt * L, x.dtype)
    dyt = np.empty(O * nt * L, x.dtype)
    pc = _ptr(col)
    pt = _ptr(dyt)
    with nogil:
        n0 = 0
        while n0 < N:
            m = nt if N - n0 > nt else N - n0
            ldcol = m * L
            if d:
                ce_conv_pack_dy_f64(<double*>pt, <const double*>(<char*>pdy + n0 * O * L * isz), m, O, L, ldcol)
            else:
                ce_conv_pack_dy_f32(<float*>pt, <const float*>(<char*>pdy + n0 * O * L * isz), m, O, L, ldcol)
            if need_dw:
                _im2col(d, False, pc, <char*>px + n0 * C * H * W * isz, m, C, H, W, KH, KW,
                        OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
                # dW[g] (Og, CgKK) += dyt[g] (Og, m*L) @ col[g]^T (m*L, CgKK)
                beta = 0.0 if n0 == 0 else 1.0
                _cgemm(d, G, 1, Og, CgKK, ldcol, pt, Og * ldcol, 0, ldcol, 1,
                       pc, CgKK * ldcol, 0, 1, ldcol, beta, pdw, Og * CgKK, 0, CgKK, 1)
            if need_dx and not direct:
                # col[g] (CgKK, m*L) = W[g]^T (CgKK, Og) @ dyt[g] (Og, m*L), folded into dx
                _cgemm(d, G, 1, CgKK, ldcol, Og, pw_, Og * CgKK, 0, 1, CgKK,
                       pt, Og * ldcol, 0, ldcol, 1, 0.0, pc, CgKK * ldcol, 0, ldcol, 1)
                _col2im(d, False, <char*>pdx + n0 * C * H * W * isz, pc, m, C, H, W, KH, KW,
                        OH, OW, sh, sw, ph, pw, dh, dw, ldcol)
            n0 += m
    return dx, dW, db


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


def avgpool2d_backward(dy, hw, kernel, stride, pad, bint count_include_pad, int64_t divisor):
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
            ce_avgpool2d_bwd_f64(<double*>pdx, <const double*>pdy, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
        else:
            ce_avgpool2d_bwd_f32(<float*>pdx, <const float*>pdy, P, H, W, OH, OW, KH, KW, sh, sw, ph, pw, count_include_pad, divisor)
    return dx


def adaptive_avgpool2d_forward(x, out_hw):
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
            ce_adaptive_avgpool2d_fwd_f64(<double*>py, <const double*>px, P, H, W, OH, OW)
        else:
            ce_adaptive_avgpool2d_fwd_f32(<float*>py, <const float*>px, P, H, W, OH, OW)
    return y


def adaptive_avgpool2d_backward(dy, hw):
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
            ce_adaptive_avgpool2d_bwd_f64(<double*>pdx, <const double*>pdy, P, H, W, OH, OW)
        else:
            ce_adaptive_avgpool2d_bwd_f32(<float*>pdx, <const float*>pdy, P, H, W, OH, OW)
    return dx


def adaptive_maxpool2d_forward(x, out_hw):
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
            ce_adaptive_maxpool2d_fwd_f64(<double*>py, pi, <const double*>px, P, H, W, OH, OW)
        else:
            ce_adaptive_maxpool2d_fwd_f32(<float*>py, pi, <const float*>px, P, H, W, OH, OW)
    return y, idx


def bn_stats(x):
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
            ce_bn_stats_f64(<double*>pm, <double*>pv, <const double*>px, N, C, S)
        else:
            ce_bn_stats_f32(<float*>pm, <float*>pv, <const float*>px, N, C, S)
    return mean, var


def bn_apply(x, a, b):
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
            ce_bn_apply_f64(<double*>py, <const double*>px, <const double*>pa, <const double*>pb, N, C, S)
        else:
            ce_bn_apply_f32(<float*>py, <const float*>px, <const float*>pa, <const float*>pb, N, C, S)
    return y


def bn_backward(dy, x, mean, rstd, w, bint need_dx, bint need_dw, bint need_db):
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
            ce_bn_bwd_f64(<double*>pdx, <double*>pdw, <double*>pdb, <const double*>pdy, <const double*>px, <const double*>pm, <const double*>pr, <const double*>pw_, N, C, S)
        else:
            ce_bn_bwd_f32(<float*>pdx, <float*>pdw, <float*>pdb, <const float*>pdy, <const float*>px, <const float*>pm, <const float*>pr, <const float*>pw_, N, C, S)
    return dx, dw, db
