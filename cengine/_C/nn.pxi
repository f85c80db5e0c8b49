# nn.pxi - bindings of the nn hot paths (src_c/nn_kernels.h): softmax / log_softmax,
# fused cross-entropy, LayerNorm / RMSNorm, embedding gather / scatter-add.
#
# All float arrays: C-contiguous numpy float32 or float64 (one dtype per call); index arrays:
# C-contiguous int64. "rows" = every leading dim flattened; the reduced axis is the LAST one
# (the Python side moves another dim last first). Gradient outputs named `out`/`dx` are
# overwritten (accumulate=False, default; allocated when None) or added into (accumulate=True);
# parameter-gradient outputs (dweight, dbias, embedding dW) always accumulate (+=).
#
#   softmax_forward(x, out=None, log=False) -> y
#   softmax_backward(y, dy, out=None, log=False, accumulate=False) -> dx
#       softmax: dx = y*(dy - sum(dy*y)); log_softmax: dx = dy - exp(y)*sum(dy)  (y = forward output)
#   cross_entropy_forward(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0)
#       -> (loss_rows, lse, wrow)
#   cross_entropy_backward(logits, target, lse, grad_rows, weight=None, ignore_index=-100,
#       label_smoothing=0.0, out=None, accumulate=False) -> dlogits
#   cross_entropy_prob_forward(logits, target, weight=None, label_smoothing=0.0) -> (loss_rows, lse)
#   cross_entropy_prob_backward(logits, target, lse, grad_rows, weight=None, label_smoothing=0.0,
#       out=None, accumulate=False) -> dlogits
#   layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None) -> (y, mean, rstd)
#   layer_norm_backward(dy, x, mean, rstd, weight=None, need_dx=True, need_dweight=False,
#       need_dbias=False, out=None, accumulate=False, dweight=None, dbias=None) -> (dx, dweight, dbias)
#   rms_norm_forward(x, weight=None, eps=None, out=None) -> (y, rstd)      (eps None: finfo eps)
#   rms_norm_backward(dy, x, rstd, weight=None, need_dx=True, need_dweight=False, out=None,
#       accumulate=False, dweight=None) -> (dx, dweight)
#   embedding_forward(weight, indices, out=None) -> out (indices.shape + (D,))
#   embedding_backward(dy, indices, num_embeddings, padding_idx=None, out=None) -> dW (accumulates)
#   nn_set_stream_bytes(n): threshold for non-temporal output stores (tuning/tests)
# The *_ref variants call the scalar single-threaded reference kernels (tests).
# Arrays not aligned to their dtype are copied once (outputs: computed in an aligned copy that is
# copied back), see _al in core.pxi.

from libc.stdint cimport uint16_t

cdef extern from "nn_kernels.h" nogil:
    void ce_nn_set_stream_bytes(int64_t b)
    void ce_softmax_fwd_f32(float *y, const float *x, int64_t R, int64_t C, int log)
    void ce_softmax_fwd_f64(double *y, const double *x, int64_t R, int64_t C, int log)
    void ce_softmax_bwd_f32(float *dx, const float *y, const float *dy, int64_t R, int64_t C, int log, int accumulate)
    void ce_softmax_bwd_f64(double *dx, const double *y, const double *dy, int64_t R, int64_t C, int log, int accumulate)
    void ce_softmax_fwd_f32_ref(float *y, const float *x, int64_t R, int64_t C, int log)
    void ce_softmax_fwd_f64_ref(double *y, const double *x, int64_t R, int64_t C, int log)
    void ce_softmax_bwd_f32_ref(float *dx, const float *y, const float *dy, int64_t R, int64_t C, int log, int accumulate)
    void ce_softmax_bwd_f64_ref(double *dx, const double *y, const double *dy, int64_t R, int64_t C, int log, int accumulate)

    int64_t ce_index_check(const int64_t *idx, int64_t n, int64_t hi, int64_t ignore, int use_ignore)
    void ce_cross_entropy_fwd_f32(float *loss, float *lse, float *wrow, const float *logits, const int64_t *target, const float *weight, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    void ce_cross_entropy_fwd_f64(double *loss, double *lse, double *wrow, const double *logits, const int64_t *target, const double *weight, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    void ce_cross_entropy_bwd_f32(float *dlogits, const float *logits, const int64_t *target, const float *weight, const float *lse, const float *g, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing, int accumulate)
    void ce_cross_entropy_bwd_f64(double *dlogits, const double *logits, const int64_t *target, const double *weight, const double *lse, const double *g, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing, int accumulate)
    void ce_cross_entropy_prob_fwd_f32(float *loss, float *lse, const float *logits, const float *target, const float *weight, int64_t N, int64_t C, double label_smoothing)
    void ce_cross_entropy_prob_fwd_f64(double *loss, double *lse, const double *logits, const double *target, const double *weight, int64_t N, int64_t C, double label_smoothing)
    void ce_cross_entropy_prob_bwd_f32(float *dlogits, const float *logits, const float *target, const float *weight, const float *lse, const float *g, int64_t N, int64_t C, double label_smoothing, int accumulate)
    void ce_cross_entropy_prob_bwd_f64(double *dlogits, const double *logits, const double *target, const double *weight, const double *lse, const double *g, int64_t N, int64_t C, double label_smoothing, int accumulate)
    int ce_cross_entropy_fwd_bf16(float *loss, float *lse, float *wrow, const uint16_t *logits, const int64_t *target, const float *weight, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    int ce_cross_entropy_bwd_bf16(uint16_t *dlogits, const uint16_t *logits, const int64_t *target, const float *weight, const float *lse, const float *g, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    int ce_cross_entropy_fwd_bf16_ref(float *loss, float *lse, float *wrow, const uint16_t *logits, const int64_t *target, const float *weight, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    int ce_cross_entropy_bwd_bf16_ref(uint16_t *dlogits, const uint16_t *logits, const int64_t *target, const float *weight, const float *lse, const float *g, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    void ce_cross_entropy_fwd_f32_ref(float *loss, float *lse, float *wrow, const float *logits, const int64_t *target, const float *weight, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    void ce_cross_entropy_fwd_f64_ref(double *loss, double *lse, double *wrow, const double *logits, const int64_t *target, const double *weight, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing)
    void ce_cross_entropy_bwd_f32_ref(float *dlogits, const float *logits, const int64_t *target, const float *weight, const float *lse, const float *g, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing, int accumulate)
    void ce_cross_entropy_bwd_f64_ref(double *dlogits, const double *logits, const int64_t *target, const double *weight, const double *lse, const double *g, int64_t N, int64_t C, int64_t ignore_index, double label_smoothing, int accumulate)
    void ce_cross_entropy_prob_fwd_f32_ref(float *loss, float *lse, const float *logits, const float *target, const float *weight, int64_t N, int64_t C, double label_smoothing)
    void ce_cross_entropy_prob_fwd_f64_ref(double *loss, double *lse, const double *logits, const double *target, const double *weight, int64_t N, int64_t C, double label_smoothing)
    void ce_cross_entropy_prob_bwd_f32_ref(float *dlogits, const float *logits, const float *target, const float *weight, const float *lse, const float *g, int64_t N, int64_t C, double label_smoothing, int accumulate)
    void ce_cross_entropy_prob_bwd_f64_ref(double *dlogits, const double *logits, const double *target, const double *weight, const double *lse, const double *g, int64_t N, int64_t C, double label_smoothing, int accumulate)

    void ce_layernorm_fwd_f32(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b, int64_t R, int64_t D, double eps)
    void ce_layernorm_fwd_f64(double *y, double *mean, double *rstd, const double *x, const double *w, const double *b, int64_t R, int64_t D, double eps)
    void ce_layernorm_bwd_f32(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, const float *mean, const float *rstd, int64_t R, int64_t D, int accumulate)
    void ce_layernorm_bwd_f64(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w, const double *mean, const double *rstd, int64_t R, int64_t D, int accumulate)
    void ce_rmsnorm_fwd_f32(float *y, float *rstd, const float *x, const float *w, int64_t R, int64_t D, double eps)
    void ce_rmsnorm_fwd_f64(double *y, double *rstd, const double *x, const double *w, int64_t R, int64_t D, double eps)
    void ce_rmsnorm_bwd_f32(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, int64_t R, int64_t D, int accumulate)
    void ce_rmsnorm_bwd_f64(double *dx, double *dw, const double *dy, const double *x, const double *w, const double *rstd, int64_t R, int64_t D, int accumulate)
    void ce_layernorm_fwd_f32_ref(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b, int64_t R, int64_t D, double eps)
    void ce_layernorm_fwd_f64_ref(double *y, double *mean, double *rstd, const double *x, const double *w, const double *b, int64_t R, int64_t D, double eps)
    void ce_layernorm_bwd_f32_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, const float *mean, const float *rstd, int64_t R, int64_t D, int accumulate)
    void ce_layernorm_bwd_f64_ref(double *dx, double *dw, double *db, const double *dy, const double *x, const double *w, const double *mean, const double *rstd, int64_t R, int64_t D, int accumulate)
    void ce_rmsnorm_fwd_f32_ref(float *y, float *rstd, const float *x, const float *w, int64_t R, int64_t D, double eps)
    void ce_rmsnorm_fwd_f64_ref(double *y, double *rstd, const double *x, const double *w, int64_t R, int64_t D, double eps)
    void ce_rmsnorm_bwd_f32_ref(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, int64_t R, int64_t D, int accumulate)
    void ce_rmsnorm_bwd_f64_ref(double *dx, double *dw, const double *dy, const double *x, const double *w, const double *rstd, int64_t R, int64_t D, int accumulate)

    void ce_embedding_fwd_f32(float *out, const float *W, const int64_t *idx, int64_t n, int64_t V, int64_t D)
    void ce_embedding_fwd_f64(double *out, const double *W, const int64_t *idx, int64_t n, int64_t V, int64_t D)
    void ce_embedding_bwd_f32(float *dW, const float *dy, const int64_t *idx, int64_t n, int64_t V, int64_t D, int64_t padding_idx)
    void ce_embedding_bwd_f64(double *dW, const double *dy, const int64_t *idx, int64_t n, int64_t V, int64_t D, int64_t padding_idx)
    void ce_embedding_bwd_f32_ref(float *dW, const float *dy, const int64_t *idx, int64_t n, int64_t V, int64_t D, int64_t padding_idx)
    void ce_embedding_bwd_f64_ref(double *dW, const double *dy, const int64_t *idx, int64_t n, int64_t V, int64_t D, int64_t padding_idx)


def nn_set_stream_bytes(n):
    """Outputs of >= n bytes are written with non-temporal (streaming) stores by the softmax,
    cross-entropy and LayerNorm/RMSNorm kernels (default: a quarter of the L3 cache, at least
    8 MiB; n < 0 restores it). For tests and tuning."""
    ce_nn_set_stream_bytes(n)


cdef inline bint _nn_is_f32(name, a) except -1:
    """Validate a C-contiguous float32/float64 ndarray; True for float32."""
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(a).__name__))
    cdef object dt = a.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError("%s: expected dtype float32 or float64, got %s" % (name, dt))
    if not _is_c(a):
        raise ValueError("%s: expected a C-contiguous array" % name)
    return dt == np.float32


cdef inline _nn_like(name, a, ref):
    """Validate `a` as C-contiguous with ref's dtype and shape."""
    _check_c(name, a, ref.dtype)
    if a.shape != ref.shape:
        raise ValueError("%s: shape %s does not match %s" % (name, tuple(a.shape), tuple(ref.shape)))


cdef inline _nn_out(name, out, ref, bint accumulate):
    if out is None:
        if accumulate:
            raise ValueError("%s: accumulate=True needs out" % name)
        return np.empty_like(ref)
    _nn_like("out", out, ref)
    return out


cdef inline tuple _nn_rc(a):
    """(rows, last-dim size) of an array viewed as (R, C)."""
    if a.ndim == 0:
        return 1, 1
    cdef int64_t C = a.shape[a.ndim - 1]
    return (_n(a) // C if C > 0 else 0), C


cdef _softmax_forward(x, out, log, bint ref):
    cdef bint f32 = _nn_is_f32("x", x)
    if out is None:
        out = np.empty_like(x)
    else:
        _nn_like("out", out, x)
    R, C = _nn_rc(x)
    cdef int64_t r = R, c = C
    cdef int lg = 1 if log else 0
    cdef void *xp = _ptr(x)
    cdef void *yp = _ptr(out)
    with nogil:
        if f32:
            if ref:
                ce_softmax_fwd_f32_ref(<float*>yp, <const float*>xp, r, c, lg)
            else:
                ce_softmax_fwd_f32(<float*>yp, <const float*>xp, r, c, lg)
        else:
            if ref:
                ce_softmax_fwd_f64_ref(<double*>yp, <const double*>xp, r, c, lg)
            else:
                ce_softmax_fwd_f64(<double*>yp, <const double*>xp, r, c, lg)
    return out


cdef _softmax_backward(y, dy, out, log, accumulate, bint ref):
    cdef bint f32 = _nn_is_f32("y", y)
    _nn_like("grad", dy, y)
    out = _nn_out("softmax_backward", out, y, accumulate)
    R, C = _nn_rc(y)
    cdef int64_t r = R, c = C
    cdef int lg = 1 if log else 0
    cdef int acc = 1 if accumulate else 0
    cdef void *yp = _ptr(y)
    cdef void *gp = _ptr(dy)
    cdef void *op = _ptr(out)
    with nogil:
        if f32:
            if ref:
                ce_softmax_bwd_f32_ref(<float*>op, <const float*>yp, <const float*>gp, r, c, lg, acc)
            else:
                ce_softmax_bwd_f32(<float*>op, <const float*>yp, <const float*>gp, r, c, lg, acc)
        else:
            if ref:
                ce_softmax_bwd_f64_ref(<double*>op, <const double*>yp, <const double*>gp, r, c, lg, acc)
            else:
                ce_softmax_bwd_f64(<double*>op, <const double*>yp, <const double*>gp, r, c, lg, acc)
    return out


def softmax_forward(x, out=None, log=False):
    """softmax (log=False) or log_softmax (log=True) of x over its LAST axis, numerically stable
    (max subtracted). x: C-contiguous float32/float64, any shape (rows = leading dims). Writes
    `out` (allocated when None; may be x) and returns it."""
    o = _al(out)
    return _al_back(out, _softmax_forward(_al(x), o, log, False))


def softmax_backward(y, dy, out=None, log=False, accumulate=False):
    """Jacobian-free backward from the forward OUTPUT y and the upstream grad dy (same shape):
    softmax dx = y*(dy - sum(dy*y, -1)), log_softmax dx = dy - exp(y)*sum(dy, -1).
    Overwrites out (allocated when None; may be dy) or adds into it with accumulate=True."""
    o = _al(out)
    return _al_back(out, _softmax_backward(_al(y), _al(dy), o, log, accumulate, False))


def softmax_forward_ref(x, out=None, log=False):
    o = _al(out)
    return _al_back(out, _softmax_forward(_al(x), o, log, True))


def softmax_backward_ref(y, dy, out=None, log=False, accumulate=False):
    o = _al(out)
    return _al_back(out, _softmax_backward(_al(y), _al(dy), o, log, accumulate, True))


# ------------------------------------------------------------------------------ cross-entropy
cdef inline _ce_check_int64(name, a):
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(a).__name__))
    if a.dtype != np.int64:
        raise TypeError("%s: expected dtype int64 (Long), got %s" % (name, a.dtype))
    if not _is_c(a):
        raise ValueError("%s: expected a C-contiguous array" % name)


cdef inline tuple _ce_logits(logits):
    cdef bint f32 = _nn_is_f32("logits", logits)
    if logits.ndim != 2:
        raise ValueError("cross_entropy kernel: expected logits of shape (N, C), got %s"
                         % (tuple(logits.shape),))
    return f32, logits.shape[0], logits.shape[1]


cdef inline object _ce_weight(weight, logits, int64_t C):
    if weight is None:
        return None
    _check_c("weight", weight, logits.dtype)
    if weight.ndim != 1 or weight.shape[0] != C:
        raise RuntimeError("weight tensor should be defined either for all %d classes or no classes "
                           "but got weight tensor of shape: [%s]"
                           % (C, ", ".join(str(d) for d in weight.shape)))
    return weight


cdef inline double _ce_smoothing(label_smoothing) except -1:
    cdef double ls = label_smoothing
    if not (0.0 <= ls <= 1.0):
        raise RuntimeError("label_smoothing must be between 0.0 and 1.0. Got: %s" % label_smoothing)
    return ls


cdef inline _ce_check_target(target, int64_t N, int64_t C, int64_t ignore):
    _ce_check_int64("target", target)
    if target.ndim != 1 or target.shape[0] != N:
        raise ValueError("Expected input batch_size (%d) to match target batch_size (%d)."
                         % (N, target.shape[0] if target.ndim else 1))
    cdef int64_t bad
    cdef const int64_t *tp = <const int64_t*>_ptr(target)
    with nogil:
        bad = ce_index_check(tp, N, C, ignore, 1)
    if bad >= 0:
        raise IndexError("Target %d is out of bounds." % target[bad])


cdef inline _ce_rowvec(name, a, logits, int64_t N):
    _check_c(name, a, logits.dtype)
    if a.ndim != 1 or a.shape[0] != N:
        raise ValueError("%s: expected shape (%d,), got %s" % (name, N, tuple(a.shape)))


cdef _cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing, bint ref):
    f32_, N_, C_ = _ce_logits(logits)
    cdef bint f32 = f32_
    cdef int64_t N = N_, C = C_, ig = ignore_index
    cdef double ls = _ce_smoothing(label_smoothing)
    weight = _ce_weight(weight, logits, C)
    _ce_check_target(target, N, C, ig)
    if C == 0 and N > 0:
        raise ValueError("cross_entropy kernel: logits have 0 classes")
    loss = np.empty(N, logits.dtype)
    lse = np.empty(N, logits.dtype)
    wrow = np.empty(N, logits.dtype)
    cdef void *lp = _ptr(loss)
    cdef void *sp = _ptr(lse)
    cdef void *wrp = _ptr(wrow)
    cdef void *xp = _ptr(logits)
    cdef const int64_t *tp = <const int64_t*>_ptr(target)
    cdef void *wp = NULL if weight is None else _ptr(weight)
    with nogil:
        if f32:
            if ref:
                ce_cross_entropy_fwd_f32_ref(<float*>lp, <float*>sp, <float*>wrp, <const float*>xp, tp, <const float*>wp, N, C, ig, ls)
            else:
                ce_cross_entropy_fwd_f32(<float*>lp, <float*>sp, <float*>wrp, <const float*>xp, tp, <const float*>wp, N, C, ig, ls)
        else:
            if ref:
                ce_cross_entropy_fwd_f64_ref(<double*>lp, <double*>sp, <double*>wrp, <const double*>xp, tp, <const double*>wp, N, C, ig, ls)
            else:
                ce_cross_entropy_fwd_f64(<double*>lp, <double*>sp, <double*>wrp, <const double*>xp, tp, <const double*>wp, N, C, ig, ls)
    return loss, lse, wrow


cdef _cross_entropy_backward(logits, target, lse, grad_rows, weight, ignore_index, label_smoothing,
                             out, accumulate, bint ref):
    f32_, N_, C_ = _ce_logits(logits)
    cdef bint f32 = f32_
    cdef int64_t N = N_, C = C_, ig = ignore_index
    cdef double ls = _ce_smoothing(label_smoothing)
    weight = _ce_weight(weight, logits, C)
    _ce_check_target(target, N, C, ig)
    _ce_rowvec("lse", lse, logits, N)
    _ce_rowvec("grad_rows", grad_rows, logits, N)
    out = _nn_out("cross_entropy_backward", out, logits, accumulate)
    cdef int acc = 1 if accumulate else 0
    cdef void *op = _ptr(out)
    cdef void *xp = _ptr(logits)
    cdef void *sp = _ptr(lse)
    cdef void *gp = _ptr(grad_rows)
    cdef const int64_t *tp = <const int64_t*>_ptr(target)
    cdef void *wp = NULL if weight is None else _ptr(weight)
    with nogil:
        if f32:
            if ref:
                ce_cross_entropy_bwd_f32_ref(<float*>op, <const float*>xp, tp, <const float*>wp, <const float*>sp, <const float*>gp, N, C, ig, ls, acc)
            else:
                ce_cross_entropy_bwd_f32(<float*>op, <const float*>xp, tp, <const float*>wp, <const float*>sp, <const float*>gp, N, C, ig, ls, acc)
        else:
            if ref:
                ce_cross_entropy_bwd_f64_ref(<double*>op, <const double*>xp, tp, <const double*>wp, <const double*>sp, <const double*>gp, N, C, ig, ls, acc)
            else:
                ce_cross_entropy_bwd_f64(<double*>op, <const double*>xp, tp, <const double*>wp, <const double*>sp, <const double*>gp, N, C, ig, ls, acc)
    return out


cdef inline bint _ce_is_bf16(a):
    return isinstance(a, np.ndarray) and a.dtype.itemsize == 2 and a.dtype.name == "bfloat16"


cdef tuple _ce_bf16_args(logits, target, weight, ignore_index, label_smoothing):
    """checks for bfloat16 logits: (N, C, ignore, smoothing, weight as float32 or None)"""
    if logits.ndim != 2:
        raise ValueError("cross_entropy kernel: expected logits of shape (N, C), got %s"
                         % (tuple(logits.shape),))
    if not _is_c(logits):
        raise ValueError("logits: expected a C-contiguous array")
    cdef int64_t N = logits.shape[0], C = logits.shape[1], ig = ignore_index
    cdef double ls = _ce_smoothing(label_smoothing)
    if weight is not None:
        if not isinstance(weight, np.ndarray) or weight.dtype != np.float32:
            raise TypeError("cross_entropy kernel: bfloat16 logits take a float32 weight")
        _check_c("weight", weight, np.float32)
        if weight.ndim != 1 or weight.shape[0] != C:
            raise RuntimeError("weight tensor should be defined either for all %d classes or no "
                               "classes but got weight tensor of shape: [%s]"
                               % (C, ", ".join(str(d) for d in weight.shape)))
    _ce_check_target(target, N, C, ig)
    if C == 0 and N > 0:
        raise ValueError("cross_entropy kernel: logits have 0 classes")
    return N, C, ig, ls, weight


cdef _cross_entropy_forward_bf16(logits, target, weight, ignore_index, label_smoothing, bint ref):
    """bfloat16 logits (N, C): float32 (loss_rows, lse, wrow), equal to the float32 kernel's on
    the logits cast to float32"""
    N_, C_, ig_, ls_, weight = _ce_bf16_args(logits, target, weight, ignore_index, label_smoothing)
    cdef int64_t N = N_, C = C_, ig = ig_
    cdef double ls = ls_
    loss = np.empty(N, np.float32)
    lse = np.empty(N, np.float32)
    wrow = np.empty(N, np.float32)
    cdef float *lp = <float*>_ptr(loss)
    cdef float *sp = <float*>_ptr(lse)
    cdef float *wrp = <float*>_ptr(wrow)
    cdef const uint16_t *xp = <const uint16_t*>_ptr(logits)
    cdef const int64_t *tp = <const int64_t*>_ptr(target)
    cdef const float *wp = NULL
    if weight is not None:
        wp = <const float*>_ptr(weight)
    cdef int rc
    with nogil:
        if ref:
            rc = ce_cross_entropy_fwd_bf16_ref(lp, sp, wrp, xp, tp, wp, N, C, ig, ls)
        else:
            rc = ce_cross_entropy_fwd_bf16(lp, sp, wrp, xp, tp, wp, N, C, ig, ls)
    if rc != 0:
        raise MemoryError("cross_entropy: could not allocate the row buffers")
    return loss, lse, wrow


cdef _cross_entropy_backward_bf16(logits, target, lse, grad_rows, weight, ignore_index,
                                  label_smoothing, out, accumulate, bint ref):
    """bfloat16 logits: a new bfloat16 dlogits (N, C), the float32 kernel's gradient on the
    logits cast to float32, rounded once"""
    if out is not None or accumulate:
        raise ValueError("cross_entropy_backward: bfloat16 logits write a new gradient "
                         "(out and accumulate are not supported)")
    N_, C_, ig_, ls_, weight = _ce_bf16_args(logits, target, weight, ignore_index, label_smoothing)
    cdef int64_t N = N_, C = C_, ig = ig_
    cdef double ls = ls_
    for name, a in (("lse", lse), ("grad_rows", grad_rows)):
        _check_c(name, a, np.float32)
        if a.ndim != 1 or a.shape[0] != N:
            raise ValueError("%s: expected shape (%d,), got %s" % (name, N, tuple(a.shape)))
    res = np.empty((N, C), logits.dtype)
    cdef uint16_t *op = <uint16_t*>_ptr(res)
    cdef const uint16_t *xp = <const uint16_t*>_ptr(logits)
    cdef const float *sp = <const float*>_ptr(lse)
    cdef const float *gp = <const float*>_ptr(grad_rows)
    cdef const int64_t *tp = <const int64_t*>_ptr(target)
    cdef const float *wp = NULL
    if weight is not None:
        wp = <const float*>_ptr(weight)
    cdef int rc
    with nogil:
        if ref:
            rc = ce_cross_entropy_bwd_bf16_ref(op, xp, tp, wp, sp, gp, N, C, ig, ls)
        else:
            rc = ce_cross_entropy_bwd_bf16(op, xp, tp, wp, sp, gp, N, C, ig, ls)
    if rc != 0:
        raise MemoryError("cross_entropy_backward: could not allocate the row buffers")
    return res


cdef _ce_prob_target(target, logits):
    if not isinstance(target, np.ndarray):
        raise TypeError("target: expected a numpy array, got %s" % type(target).__name__)
    if target.dtype != logits.dtype:
        raise TypeError("target: expected dtype %s (same as the logits), got %s" % (logits.dtype, target.dtype))
    if not _is_c(target):
        raise ValueError("target: expected a C-contiguous array")
    if target.shape != logits.shape:
        raise ValueError("Expected target size %s, got %s" % (list(logits.shape), list(target.shape)))


cdef _cross_entropy_prob_forward(logits, target, weight, label_smoothing, bint ref):
    f32_, N_, C_ = _ce_logits(logits)
    cdef bint f32 = f32_
    cdef int64_t N = N_, C = C_
    cdef double ls = _ce_smoothing(label_smoothing)
    weight = _ce_weight(weight, logits, C)
    _ce_prob_target(target, logits)
    loss = np.empty(N, logits.dtype)
    lse = np.empty(N, logits.dtype)
    cdef void *lp = _ptr(loss)
    cdef void *sp = _ptr(lse)
    cdef void *xp = _ptr(logits)
    cdef void *tp = _ptr(target)
    cdef void *wp = NULL if weight is None else _ptr(weight)
    with nogil:
        if f32:
            if ref:
                ce_cross_entropy_prob_fwd_f32_ref(<float*>lp, <float*>sp, <const float*>xp, <const float*>tp, <const float*>wp, N, C, ls)
            else:
                ce_cross_entropy_prob_fwd_f32(<float*>lp, <float*>sp, <const float*>xp, <const float*>tp, <const float*>wp, N, C, ls)
        else:
            if ref:
                ce_cross_entropy_prob_fwd_f64_ref(<double*>lp, <double*>sp, <const double*>xp, <const double*>tp, <const double*>wp, N, C, ls)
            else:
                ce_cross_entropy_prob_fwd_f64(<double*>lp, <double*>sp, <const double*>xp, <const double*>tp, <const double*>wp, N, C, ls)
    return loss, lse


cdef _cross_entropy_prob_backward(logits, target, lse, grad_rows, weight, label_smoothing, out,
                                  accumulate, bint ref):
    f32_, N_, C_ = _ce_logits(logits)
    cdef bint f32 = f32_
    cdef int64_t N = N_, C = C_
    cdef double ls = _ce_smoothing(label_smoothing)
    weight = _ce_weight(weight, logits, C)
    _ce_prob_target(target, logits)
    _ce_rowvec("lse", lse, logits, N)
    _ce_rowvec("grad_rows", grad_rows, logits, N)
    out = _nn_out("cross_entropy_prob_backward", out, logits, accumulate)
    cdef int acc = 1 if accumulate else 0
    cdef void *op = _ptr(out)
    cdef void *xp = _ptr(logits)
    cdef void *tp = _ptr(target)
    cdef void *sp = _ptr(lse)
    cdef void *gp = _ptr(grad_rows)
    cdef void *wp = NULL if weight is None else _ptr(weight)
    with nogil:
        if f32:
            if ref:
                ce_cross_entropy_prob_bwd_f32_ref(<float*>op, <const float*>xp, <const float*>tp, <const float*>wp, <const float*>sp, <const float*>gp, N, C, ls, acc)
            else:
                ce_cross_entropy_prob_bwd_f32(<float*>op, <const float*>xp, <const float*>tp, <const float*>wp, <const float*>sp, <const float*>gp, N, C, ls, acc)
        else:
            if ref:
                ce_cross_entropy_prob_bwd_f64_ref(<double*>op, <const double*>xp, <const double*>tp, <const double*>wp, <const double*>sp, <const double*>gp, N, C, ls, acc)
            else:
                ce_cross_entropy_prob_bwd_f64(<double*>op, <const double*>xp, <const double*>tp, <const double*>wp, <const double*>sp, <const double*>gp, N, C, ls, acc)
    return out


def cross_entropy_forward(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0):
    """Fused log_softmax + NLL over logits (N, C) with int64 class targets (N,).
    Returns (loss_rows, lse, wrow), each (N,) in the logits' dtype:
      loss_rows[i] = (1-ls)*w[t]*(lse_i - x[i,t]) + ls/C * sum_c w[c]*(lse_i - x[i,c]); 0 if t == ignore_index
      lse[i]       = logsumexp(x[i,:])   (save it for cross_entropy_backward)
      wrow[i]      = w[t] (1 without weight), 0 on ignored rows.
    Reductions (torch): 'none' -> loss_rows; 'sum' -> loss_rows.sum(); 'mean' -> loss_rows.sum()/wrow.sum().
    Raises IndexError("Target 5 is out of bounds.") for targets outside [0, C) other than ignore_index.
    bfloat16 logits (ml_dtypes.bfloat16): float32 results (weight float32), those of the float32
    kernel on the logits cast to float32, bit for bit."""
    if _ce_is_bf16(logits):
        return _cross_entropy_forward_bf16(_al(logits), _al(target), _al(weight), ignore_index,
                                           label_smoothing, False)
    return _cross_entropy_forward(_al(logits), _al(target), _al(weight), ignore_index,
                                  label_smoothing, False)


def cross_entropy_backward(logits, target, lse, grad_rows, weight=None, ignore_index=-100,
                           label_smoothing=0.0, out=None, accumulate=False):
    """dlogits = grad_rows[:, None] * d loss_rows / d logits, one pass, p = exp(logits - lse):
      ((1-ls)*w[t] + ls/C*sum(w)) * p - ls/C * w  - (1-ls)*w[t] at column t;  0 on ignored rows.
    grad_rows (N,): upstream gradient per row (for 'mean': grad / wrow.sum(); 'sum': grad).
    Overwrites out (allocated when None) or adds into it with accumulate=True.
    bfloat16 logits (lse, grad_rows, weight float32): a new bfloat16 gradient, the float32
    kernel's on the logits cast to float32, rounded once (no out / accumulate)."""
    if _ce_is_bf16(logits):
        return _cross_entropy_backward_bf16(_al(logits), _al(target), _al(lse), _al(grad_rows),
                                            _al(weight), ignore_index, label_smoothing, out,
                                            accumulate, False)
    o = _al(out)
    return _al_back(out, _cross_entropy_backward(_al(logits), _al(target), _al(lse),
                                                 _al(grad_rows), _al(weight), ignore_index,
                                                 label_smoothing, o, accumulate, False))


def cross_entropy_prob_forward(logits, target, weight=None, label_smoothing=0.0):
    """Cross-entropy with probability targets (N, C) (same dtype as logits), q = (1-ls)*target + ls/C:
    returns (loss_rows, lse), loss_rows[i] = -sum_c w[c]*q[i,c]*log_softmax(x)[i,c].
    torch's 'mean' divides the sum by N (not by weights)."""
    return _cross_entropy_prob_forward(_al(logits), _al(target), _al(weight), label_smoothing,
                                       False)


def cross_entropy_prob_backward(logits, target, lse, grad_rows, weight=None, label_smoothing=0.0,
                                out=None, accumulate=False):
    """dlogits[i,c] = grad_rows[i] * (p[i,c] * sum_k w[k] q[i,k] - w[c] q[i,c]); overwrite or accumulate."""
    o = _al(out)
    return _al_back(out, _cross_entropy_prob_backward(_al(logits), _al(target), _al(lse),
                                                      _al(grad_rows), _al(weight),
                                                      label_smoothing, o, accumulate, False))


def cross_entropy_forward_ref(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0):
    if _ce_is_bf16(logits):
        return _cross_entropy_forward_bf16(_al(logits), _al(target), _al(weight), ignore_index,
                                           label_smoothing, True)
    return _cross_entropy_forward(_al(logits), _al(target), _al(weight), ignore_index,
                                  label_smoothing, True)


def cross_entropy_backward_ref(logits, target, lse, grad_rows, weight=None, ignore_index=-100,
                               label_smoothing=0.0, out=None, accumulate=False):
    if _ce_is_bf16(logits):
        return _cross_entropy_backward_bf16(_al(logits), _al(target), _al(lse), _al(grad_rows),
                                            _al(weight), ignore_index, label_smoothing, out,
                                            accumulate, True)
    o = _al(out)
    return _al_back(out, _cross_entropy_backward(_al(logits), _al(target), _al(lse),
                                                 _al(grad_rows), _al(weight), ignore_index,
                                                 label_smoothing, o, accumulate, True))


def cross_entropy_prob_forward_ref(logits, target, weight=None, label_smoothing=0.0):
    return _cross_entropy_prob_forward(_al(logits), _al(target), _al(weight), label_smoothing,
                                       True)


def cross_entropy_prob_backward_ref(logits, target, lse, grad_rows, weight=None, label_smoothing=0.0,
                                    out=None, accumulate=False):
    o = _al(out)
    return _al_back(out, _cross_entropy_prob_backward(_al(logits), _al(target), _al(lse),
                                                      _al(grad_rows), _al(weight),
                                                      label_smoothing, o, accumulate, True))


# ------------------------------------------------------------------------------ LayerNorm / RMSNorm
cdef inline void* _nn_opt_ptr(a):
    return NULL if a is None else _ptr(a)


cdef _norm_param(name, p, x, int64_t D):
    if p is None:
        return None
    _check_c(name, p, x.dtype)
    if _n(p) != D or p.ndim < 1:
        raise RuntimeError("%s: expected %d elements (the normalized size), got shape %s"
                           % (name, D, tuple(p.shape)))
    return p


cdef _norm_stat(name, a, x):
    _check_c(name, a, x.dtype)
    if a.shape != x.shape[:x.ndim - 1]:
        raise ValueError("%s: expected shape %s, got %s" % (name, tuple(x.shape[:x.ndim - 1]), tuple(a.shape)))


cdef _norm_grad_param(name, given, bint need, x, int64_t D):
    if given is not None:
        _check_c(name, given, x.dtype)
        if _n(given) != D:
            raise ValueError("%s: expected %d elements, got shape %s" % (name, D, tuple(given.shape)))
        return given
    if need:
        return np.zeros(D, x.dtype)
    return None


cdef _layer_norm_forward(x, weight, bias, eps, out, bint ref):
    cdef bint f32 = _nn_is_f32("input", x)
    if x.ndim < 1:
        raise ValueError("layer_norm: input must have at least 1 dimension")
    R_, D_ = _nn_rc(x)
    cdef int64_t R = R_, D = D_
    weight = _norm_param("weight", weight, x, D)
    bias = _norm_param("bias", bias, x, D)
    if out is None:
        out = np.empty_like(x)
    else:
        _nn_like("out", out, x)
    mean = np.empty(x.shape[:x.ndim - 1], x.dtype)
    rstd = np.empty(x.shape[:x.ndim - 1], x.dtype)
    if D == 0:      # nothing to normalize: statistics are undefined (torch gives NaN)
        mean.fill(np.nan)
        rstd.fill(np.nan)
    cdef double e = eps
    cdef void *yp = _ptr(out)
    cdef void *mp = _ptr(mean)
    cdef void *rp = _ptr(rstd)
    cdef void *xp = _ptr(x)
    cdef void *wp = _nn_opt_ptr(weight)
    cdef void *bp = _nn_opt_ptr(bias)
    with nogil:
        if f32:
            if ref:
                ce_layernorm_fwd_f32_ref(<float*>yp, <float*>mp, <float*>rp, <const float*>xp, <const float*>wp, <const float*>bp, R, D, e)
            else:
                ce_layernorm_fwd_f32(<float*>yp, <float*>mp, <float*>rp, <const float*>xp, <const float*>wp, <const float*>bp, R, D, e)
        else:
            if ref:
                ce_layernorm_fwd_f64_ref(<double*>yp, <double*>mp, <double*>rp, <const double*>xp, <const double*>wp, <const double*>bp, R, D, e)
            else:
                ce_layernorm_fwd_f64(<double*>yp, <double*>mp, <double*>rp, <const double*>xp, <const double*>wp, <const double*>bp, R, D, e)
    return out, mean, rstd


cdef _layer_norm_backward(dy, x, mean, rstd, weight, need_dx, need_dweight, need_dbias, out,
                          accumulate, dweight, dbias, bint ref):
    cdef bint f32 = _nn_is_f32("input", x)
    _nn_like("grad", dy, x)
    R_, D_ = _nn_rc(x)
    cdef int64_t R = R_, D = D_
    _norm_stat("mean", mean, x)
    _norm_stat("rstd", rstd, x)
    weight = _norm_param("weight", weight, x, D)
    dx = _nn_out("layer_norm_backward", out, x, accumulate) if need_dx else None
    dweight = _norm_grad_param("dweight", dweight, need_dweight, x, D)
    dbias = _norm_grad_param("dbias", dbias, need_dbias, x, D)
    cdef int acc = 1 if accumulate else 0
    cdef void *dxp = _nn_opt_ptr(dx)
    cdef void *dwp = _nn_opt_ptr(dweight)
    cdef void *dbp = _nn_opt_ptr(dbias)
    cdef void *gp = _ptr(dy)
    cdef void *xp = _ptr(x)
    cdef void *wp = _nn_opt_ptr(weight)
    cdef void *mp = _ptr(mean)
    cdef void *rp = _ptr(rstd)
    with nogil:
        if f32:
            if ref:
                ce_layernorm_bwd_f32_ref(<float*>dxp, <float*>dwp, <float*>dbp, <const float*>gp, <const float*>xp, <const float*>wp, <const float*>mp, <const float*>rp, R, D, acc)
            else:
                ce_layernorm_bwd_f32(<float*>dxp, <float*>dwp, <float*>dbp, <const float*>gp, <const float*>xp, <const float*>wp, <const float*>mp, <const float*>rp, R, D, acc)
        else:
            if ref:
                ce_layernorm_bwd_f64_ref(<double*>dxp, <double*>dwp, <double*>dbp, <const double*>gp, <const double*>xp, <const double*>wp, <const double*>mp, <const double*>rp, R, D, acc)
            else:
                ce_layernorm_bwd_f64(<double*>dxp, <double*>dwp, <double*>dbp, <const double*>gp, <const double*>xp, <const double*>wp, <const double*>mp, <const double*>rp, R, D, acc)
    return dx, dweight, dbias


cdef _rms_norm_forward(x, weight, eps, out, bint ref):
    cdef bint f32 = _nn_is_f32("input", x)
    if x.ndim < 1:
        raise ValueError("rms_norm: input must have at least 1 dimension")
    R_, D_ = _nn_rc(x)
    cdef int64_t R = R_, D = D_
    weight = _norm_param("weight", weight, x, D)
    if out is None:
        out = np.empty_like(x)
    else:
        _nn_like("out", out, x)
    rstd = np.empty(x.shape[:x.ndim - 1], x.dtype)
    if D == 0:
        rstd.fill(np.nan)
    cdef double e = np.finfo(x.dtype).eps if eps is None else eps
    cdef void *yp = _ptr(out)
    cdef void *rp = _ptr(rstd)
    cdef void *xp = _ptr(x)
    cdef void *wp = _nn_opt_ptr(weight)
    with nogil:
        if f32:
            if ref:
                ce_rmsnorm_fwd_f32_ref(<float*>yp, <float*>rp, <const float*>xp, <const float*>wp, R, D, e)
            else:
                ce_rmsnorm_fwd_f32(<float*>yp, <float*>rp, <const float*>xp, <const float*>wp, R, D, e)
        else:
            if ref:
                ce_rmsnorm_fwd_f64_ref(<double*>yp, <double*>rp, <const double*>xp, <const double*>wp, R, D, e)
            else:
                ce_rmsnorm_fwd_f64(<double*>yp, <double*>rp, <const double*>xp, <const double*>wp, R, D, e)
    return out, rstd


cdef _rms_norm_backward(dy, x, rstd, weight, need_dx, need_dweight, out, accumulate, dweight,
                        bint ref):
    cdef bint f32 = _nn_is_f32("input", x)
    _nn_like("grad", dy, x)
    R_, D_ = _nn_rc(x)
    cdef int64_t R = R_, D = D_
    _norm_stat("rstd", rstd, x)
    weight = _norm_param("weight", weight, x, D)
    dx = _nn_out("rms_norm_backward", out, x, accumulate) if need_dx else None
    dweight = _norm_grad_param("dweight", dweight, need_dweight, x, D)
    cdef int acc = 1 if accumulate else 0
    cdef void *dxp = _nn_opt_ptr(dx)
    cdef void *dwp = _nn_opt_ptr(dweight)
    cdef void *gp = _ptr(dy)
    cdef void *xp = _ptr(x)
    cdef void *wp = _nn_opt_ptr(weight)
    cdef void *rp = _ptr(rstd)
    with nogil:
        if f32:
            if ref:
                ce_rmsnorm_bwd_f32_ref(<float*>dxp, <float*>dwp, <const float*>gp, <const float*>xp, <const float*>wp, <const float*>rp, R, D, acc)
            else:
                ce_rmsnorm_bwd_f32(<float*>dxp, <float*>dwp, <const float*>gp, <const float*>xp, <const float*>wp, <const float*>rp, R, D, acc)
        else:
            if ref:
                ce_rmsnorm_bwd_f64_ref(<double*>dxp, <double*>dwp, <const double*>gp, <const double*>xp, <const double*>wp, <const double*>rp, R, D, acc)
            else:
                ce_rmsnorm_bwd_f64(<double*>dxp, <double*>dwp, <const double*>gp, <const double*>xp, <const double*>wp, <const double*>rp, R, D, acc)
    return dx, dweight


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None):
    """LayerNorm over the LAST axis (D = x.shape[-1]; flatten a multi-dim normalized_shape into
    it first): y = (x - mean)/sqrt(var + eps) * weight + bias, biased variance, like torch.
    weight/bias: D elements or None. Returns (y, mean, rstd), mean/rstd shaped x.shape[:x.ndim - 1]
    (save them for the backward)."""
    o = _al(out)
    y, mean, rstd = _layer_norm_forward(_al(x), _al(weight), _al(bias), eps, o, False)
    return _al_back(out, y), mean, rstd


def layer_norm_backward(dy, x, mean, rstd, weight=None, need_dx=True, need_dweight=False,
                        need_dbias=False, out=None, accumulate=False, dweight=None, dbias=None):
    """Returns (dx, dweight, dbias) (None where not requested).
    dx = rstd*(g - mean(g) - xhat*mean(g*xhat)), g = dy*weight: overwritten/allocated, or added
    into `out` with accumulate=True. dweight += sum_rows dy*xhat, dbias += sum_rows dy: always
    accumulated into the given arrays, or into new zero arrays when need_* is set and none given
    (deterministic: per-thread partials summed in a fixed order)."""
    o, dw, db = _al(out), _al(dweight), _al(dbias)
    dx, dw2, db2 = _layer_norm_backward(_al(dy), _al(x), _al(mean), _al(rstd), _al(weight), need_dx,
                                        need_dweight, need_dbias, o, accumulate, dw, db, False)
    return _al_back(out, dx), _al_back(dweight, dw2), _al_back(dbias, db2)


def rms_norm_forward(x, weight=None, eps=None, out=None):
    """RMSNorm over the LAST axis: y = x / sqrt(mean(x^2) + eps) * weight; eps=None uses
    finfo(dtype).eps like torch. Returns (y, rstd), rstd shaped x.shape[:x.ndim - 1]."""
    o = _al(out)
    y, rstd = _rms_norm_forward(_al(x), _al(weight), eps, o, False)
    return _al_back(out, y), rstd


def rms_norm_backward(dy, x, rstd, weight=None, need_dx=True, need_dweight=False, out=None,
                      accumulate=False, dweight=None):
    """Returns (dx, dweight). dx = rstd*(g - xhat*mean(g*xhat)), g = dy*weight, xhat = x*rstd
    (overwrite, or accumulate=True into out); dweight += sum_rows dy*xhat (always accumulates)."""
    o, dw = _al(out), _al(dweight)
    dx, dw2 = _rms_norm_backward(_al(dy), _al(x), _al(rstd), _al(weight), need_dx, need_dweight, o,
                                 accumulate, dw, False)
    return _al_back(out, dx), _al_back(dweight, dw2)


def layer_norm_forward_ref(x, weight=None, bias=None, eps=1e-5, out=None):
    o = _al(out)
    y, mean, rstd = _layer_norm_forward(_al(x), _al(weight), _al(bias), eps, o, True)
    return _al_back(out, y), mean, rstd


def layer_norm_backward_ref(dy, x, mean, rstd, weight=None, need_dx=True, need_dweight=False,
                            need_dbias=False, out=None, accumulate=False, dweight=None, dbias=None):
    o, dw, db = _al(out), _al(dweight), _al(dbias)
    dx, dw2, db2 = _layer_norm_backward(_al(dy), _al(x), _al(mean), _al(rstd), _al(weight), need_dx,
                                        need_dweight, need_dbias, o, accumulate, dw, db, True)
    return _al_back(out, dx), _al_back(dweight, dw2), _al_back(dbias, db2)


def rms_norm_forward_ref(x, weight=None, eps=None, out=None):
    o = _al(out)
    y, rstd = _rms_norm_forward(_al(x), _al(weight), eps, o, True)
    return _al_back(out, y), rstd


def rms_norm_backward_ref(dy, x, rstd, weight=None, need_dx=True, need_dweight=False, out=None,
                          accumulate=False, dweight=None):
    o, dw = _al(out), _al(dweight)
    dx, dw2 = _rms_norm_backward(_al(dy), _al(x), _al(rstd), _al(weight), need_dx, need_dweight, o,
                                 accumulate, dw, True)
    return _al_back(out, dx), _al_back(dweight, dw2)


# ------------------------------------------------------------------------------ embedding
cdef inline _emb_indices(indices, int64_t V):
    _ce_check_int64("indices", indices)
    cdef int64_t bad
    cdef const int64_t *ip = <const int64_t*>_ptr(indices)
    cdef int64_t n = _n(indices)
    with nogil:
        bad = ce_index_check(ip, n, V, 0, 0)
    if bad >= 0:
        raise IndexError("index out of range in self")


cdef inline int64_t _emb_padding(padding_idx, int64_t V) except? -2:
    if padding_idx is None:
        return -1
    cdef int64_t p = padding_idx
    if p >= V or p < -V:
        raise AssertionError("Padding_idx must be within num_embeddings")
    return p + V if p < 0 else p


def embedding_forward(weight, indices, out=None):
    """out[..., :] = weight[indices[...], :]. weight (V, D) C-contiguous float32/float64,
    indices int64 of any shape (validated: IndexError "index out of range in self").
    Returns out of shape indices.shape + (D,) (allocated when None, else overwritten)."""
    o = _al(out)
    return _al_back(out, _embedding_forward(_al(weight), _al(indices), o))


cdef _embedding_forward(weight, indices, out):
    cdef bint f32 = _nn_is_f32("weight", weight)
    if weight.ndim != 2:
        raise ValueError("embedding: weight must be 2-D (num_embeddings, embedding_dim), got %s"
                         % (tuple(weight.shape),))
    cdef int64_t V = weight.shape[0], D = weight.shape[1]
    _emb_indices(indices, V)
    shape = tuple(indices.shape) + (D,)
    if out is None:
        out = np.empty(shape, weight.dtype)
    else:
        _check_c("out", out, weight.dtype)
        if tuple(out.shape) != shape:
            raise ValueError("out: expected shape %s, got %s" % (shape, tuple(out.shape)))
    cdef int64_t n = _n(indices)
    cdef void *op = _ptr(out)
    cdef void *wp = _ptr(weight)
    cdef const int64_t *ip = <const int64_t*>_ptr(indices)
    with nogil:
        if f32:
            ce_embedding_fwd_f32(<float*>op, <const float*>wp, ip, n, V, D)
        else:
            ce_embedding_fwd_f64(<double*>op, <const double*>wp, ip, n, V, D)
    return out


cdef _embedding_backward(dy, indices, num_embeddings, padding_idx, out, bint ref):
    cdef bint f32 = _nn_is_f32("grad", dy)
    cdef int64_t V = num_embeddings
    if V < 0:
        raise ValueError("embedding_backward: num_embeddings must be >= 0")
    _emb_indices(indices, V)
    if dy.ndim != indices.ndim + 1 or tuple(dy.shape[:dy.ndim - 1]) != tuple(indices.shape):
        raise ValueError("embedding_backward: grad shape %s does not match indices shape %s + (D,)"
                         % (tuple(dy.shape), tuple(indices.shape)))
    cdef int64_t D = dy.shape[dy.ndim - 1]
    cdef int64_t pad = _emb_padding(padding_idx, V)
    if out is None:
        out = np.zeros((V, D), dy.dtype)
    else:
        _check_c("out", out, dy.dtype)
        if tuple(out.shape) != (V, D):
            raise ValueError("out: expected shape %s, got %s" % ((V, D), tuple(out.shape)))
    cdef int64_t n = _n(indices)
    cdef void *op = _ptr(out)
    cdef void *gp = _ptr(dy)
    cdef const int64_t *ip = <const int64_t*>_ptr(indices)
    with nogil:
        if f32:
            if ref:
                ce_embedding_bwd_f32_ref(<float*>op, <const float*>gp, ip, n, V, D, pad)
            else:
                ce_embedding_bwd_f32(<float*>op, <const float*>gp, ip, n, V, D, pad)
        else:
            if ref:
                ce_embedding_bwd_f64_ref(<double*>op, <const double*>gp, ip, n, V, D, pad)
            else:
                ce_embedding_bwd_f64(<double*>op, <const double*>gp, ip, n, V, D, pad)
    return out


def embedding_backward(dy, indices, num_embeddings, padding_idx=None, out=None):
    """Scatter-add: dW[indices[...], :] += dy[..., :], rows equal to padding_idx (may be negative,
    torch-style) get nothing. ACCUMULATES into out (V, D) when given, else into new zeros; returns
    it. Correct with repeated indices under threads; result independent of the thread count."""
    o = _al(out)
    return _al_back(out, _embedding_backward(_al(dy), _al(indices), num_embeddings, padding_idx, o,
                                             False))


def embedding_backward_ref(dy, indices, num_embeddings, padding_idx=None, out=None):
    o = _al(out)
    return _al_back(out, _embedding_backward(_al(dy), _al(indices), num_embeddings, padding_idx, o,
                                             True))
