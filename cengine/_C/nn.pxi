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
#   layer_norm_forward / layer_norm_backward / rms_norm_forward / rms_norm_backward
#   embedding_forward / embedding_backward
# The *_ref variants call the scalar single-threaded reference kernels (tests).

cdef extern from "nn_kernels.h" nogil:
    void ce_softmax_fwd_f32(float *y, const float *x, int64_t R, int64_t C, int log)
    void ce_softmax_fwd_f64(double *y, const double *x, int64_t R, int64_t C, int log)
    void ce_softmax_bwd_f32(float *dx, const float *y, const float *dy, int64_t R, int64_t C, int log, int accumulate)
    void ce_softmax_bwd_f64(double *dx, const double *y, const double *dy, int64_t R, int64_t C, int log, int accumulate)
    void ce_softmax_fwd_f32_ref(float *y, const float *x, int64_t R, int64_t C, int log)
    void ce_softmax_fwd_f64_ref(double *y, const double *x, int64_t R, int64_t C, int log)
    void ce_softmax_bwd_f32_ref(float *dx, const float *y, const float *dy, int64_t R, int64_t C, int log, int accumulate)
    void ce_softmax_bwd_f64_ref(double *dx, const double *y, const double *dy, int64_t R, int64_t C, int log, int accumulate)


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
    return _softmax_forward(x, out, log, False)


def softmax_backward(y, dy, out=None, log=False, accumulate=False):
    """Jacobian-free backward from the forward OUTPUT y and the upstream grad dy (same shape):
    softmax dx = y*(dy - sum(dy*y, -1)), log_softmax dx = dy - exp(y)*sum(dy, -1).
    Overwrites out (allocated when None; may be dy) or adds into it with accumulate=True."""
    return _softmax_backward(y, dy, out, log, accumulate, False)


def softmax_forward_ref(x, out=None, log=False):
    return _softmax_forward(x, out, log, True)


def softmax_backward_ref(y, dy, out=None, log=False, accumulate=False):
    return _softmax_backward(y, dy, out, log, accumulate, True)
