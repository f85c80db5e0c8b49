# activation.pxi - bindings of the fused elementwise activations (src_c/activation.h).
#
# API (all arrays C-contiguous numpy, float32 or float64, one dtype per call, any shape; the
# kernels see them flat):
#   act_forward(kind, x, out=None, alpha=None, beta=None)   -> out          (overwrites out)
#   act_backward(kind, dy, x=None, y=None, out=None, alpha=None, beta=None, accumulate=False) -> out
#       out = dy * f'(.)  (accumulate=False, the default: out is overwritten / newly allocated)
#       out += dy * f'(.) (accumulate=True: out must be given)
#   act_backward_uses(kind) -> 'x' or 'y': which forward tensor the backward needs (save only it)
#   act_forward_ref / act_backward_ref: the plain scalar single-threaded references (tests)
#   ACT_KINDS: the kind names.
# kind: 'relu', 'leaky_relu' (alpha = negative_slope, default 0.01), 'sigmoid', 'tanh', 'silu',
#   'gelu' (exact erf form), 'gelu_tanh' (tanh approximation), 'softplus' (alpha = beta, default 1;
#   beta = threshold, default 20; torch semantics: x*beta > threshold -> x).
# out may alias x (forward) or dy (backward) for in-place use. Arrays not aligned to their dtype
# are copied (outputs: computed in an aligned copy, then copied back).

cdef extern from "activation.h" nogil:
    int ce_act_backward_uses_y(int kind)
    void ce_act_forward_f32(int kind, float *y, const float *x, int64_t n, double p0, double p1)
    void ce_act_forward_f64(int kind, double *y, const double *x, int64_t n, double p0, double p1)
    void ce_act_backward_f32(int kind, float *dx, const float *xy, const float *dy, int64_t n,
                             double p0, double p1, int accumulate)
    void ce_act_backward_f64(int kind, double *dx, const double *xy, const double *dy, int64_t n,
                             double p0, double p1, int accumulate)
    void ce_act_forward_f32_ref(int kind, float *y, const float *x, int64_t n, double p0, double p1)
    void ce_act_forward_f64_ref(int kind, double *y, const double *x, int64_t n, double p0, double p1)
    void ce_act_backward_f32_ref(int kind, float *dx, const float *xy, const float *dy, int64_t n,
                                 double p0, double p1, int accumulate)
    void ce_act_backward_f64_ref(int kind, double *dx, const double *xy, const double *dy, int64_t n,
                                 double p0, double p1, int accumulate)

ACT_KINDS = ("relu", "leaky_relu", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "softplus")
cdef dict _ACT_IDS = {k: i for i, k in enumerate(ACT_KINDS)}


cdef int _act_kind(kind) except -1:
    cdef object k = _ACT_IDS.get(kind)
    if k is None:
        raise ValueError("unknown activation %r: expected one of %s" % (kind, ", ".join(ACT_KINDS)))
    return <int>k


cdef inline tuple _act_params(int k, alpha, beta):
    if k == 1:    # leaky_relu: negative_slope
        return (0.01 if alpha is None else float(alpha), 0.0)
    if k == 7:    # softplus: beta, threshold
        return (1.0 if alpha is None else float(alpha), 20.0 if beta is None else float(beta))
    return (0.0, 0.0)


cdef _act_check_float(name, a):
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(a).__name__))
    if a.dtype != np.float32 and a.dtype != np.float64:
        raise TypeError("%s: expected dtype float32 or float64, got %s" % (name, a.dtype))
    if not _is_c(a):
        raise ValueError("%s: expected a C-contiguous array" % name)


cdef _act_check_like(name, a, ref):
    _check_c(name, a, ref.dtype)
    if a.shape != ref.shape:
        raise ValueError("%s: shape %s does not match %s" % (name, tuple(a.shape), tuple(ref.shape)))


def act_backward_uses(kind):
    """'y' if the backward of `kind` reads the forward output (sigmoid, tanh), else 'x'.
    (relu also accepts y, since y > 0 exactly where x > 0.)"""
    return "y" if ce_act_backward_uses_y(_act_kind(kind)) else "x"


cdef _act_forward(kind, x, out, alpha, beta, bint ref):
    cdef int k = _act_kind(kind)
    _act_check_float("x", x)
    if out is None:
        out = np.empty_like(x)
    else:
        _act_check_like("out", out, x)
    p0, p1 = _act_params(k, alpha, beta)
    cdef double a0 = p0, a1 = p1
    cdef int64_t n = _n(x)
    cdef void *xp = _ptr(x)
    cdef void *yp = _ptr(out)
    if x.dtype == np.float32:
        with nogil:
            if ref:
                ce_act_forward_f32_ref(k, <float*>yp, <const float*>xp, n, a0, a1)
            else:
                ce_act_forward_f32(k, <float*>yp, <const float*>xp, n, a0, a1)
    else:
        with nogil:
            if ref:
                ce_act_forward_f64_ref(k, <double*>yp, <const double*>xp, n, a0, a1)
            else:
                ce_act_forward_f64(k, <double*>yp, <const double*>xp, n, a0, a1)
    return out


cdef _act_backward(kind, dy, x, y, out, alpha, beta, bint accumulate, bint ref):
    cdef int k = _act_kind(kind)
    _act_check_float("dy", dy)
    if ce_act_backward_uses_y(k):
        if y is None:
            raise ValueError("act_backward(%r) needs the forward output y" % kind)
        src = y
        _act_check_like("y", y, dy)
    elif x is not None:
        src = x
        _act_check_like("x", x, dy)
    elif k == 0 and y is not None:   # relu: y > 0 <=> x > 0
        src = y
        _act_check_like("y", y, dy)
    else:
        raise ValueError("act_backward(%r) needs the forward input x" % kind)
    if out is None:
        if accumulate:
            raise ValueError("act_backward: accumulate=True needs out")
        out = np.empty_like(dy)
    else:
        _act_check_like("out", out, dy)
    p0, p1 = _act_params(k, alpha, beta)
    cdef double a0 = p0, a1 = p1
    cdef int acc = 1 if accumulate else 0
    cdef int64_t n = _n(dy)
    cdef void *sp = _ptr(src)
    cdef void *gp = _ptr(dy)
    cdef void *op = _ptr(out)
    if dy.dtype == np.float32:
        with nogil:
            if ref:
                ce_act_backward_f32_ref(k, <float*>op, <const float*>sp, <const float*>gp, n, a0, a1, acc)
            else:
                ce_act_backward_f32(k, <float*>op, <const float*>sp, <const float*>gp, n, a0, a1, acc)
    else:
        with nogil:
            if ref:
                ce_act_backward_f64_ref(k, <double*>op, <const double*>sp, <const double*>gp, n, a0, a1, acc)
            else:
                ce_act_backward_f64(k, <double*>op, <const double*>sp, <const double*>gp, n, a0, a1, acc)
    return out


def act_forward(kind, x, out=None, alpha=None, beta=None):
    """out = f(x) elementwise (overwrites out; allocates it when None) and returns out.
    x: C-contiguous float32/float64 array of any shape; out: same shape/dtype (may be x).
    alpha/beta: leaky_relu negative_slope (alpha, default 0.01); softplus beta (alpha,
    default 1.0) and threshold (beta, default 20.0)."""
    o = _al(out)
    return _al_back(out, _act_forward(kind, _al(x), o, alpha, beta, False))


def act_backward(kind, dy, x=None, y=None, out=None, alpha=None, beta=None, accumulate=False):
    """Gradient of act_forward: out = dy * f'(.) (accumulate=False; overwrites/allocates out)
    or out += dy * f'(.) (accumulate=True; out required). Needs x (the forward input) or, for
    sigmoid/tanh, y (the forward output): see act_backward_uses(kind). Returns out."""
    o = _al(out)
    return _al_back(out, _act_backward(kind, _al(dy), _al(x), _al(y), o, alpha, beta, accumulate,
                                       False))


def act_forward_ref(kind, x, out=None, alpha=None, beta=None):
    """Scalar single-threaded reference of act_forward (for tests)."""
    o = _al(out)
    return _al_back(out, _act_forward(kind, _al(x), o, alpha, beta, True))


def act_backward_ref(kind, dy, x=None, y=None, out=None, alpha=None, beta=None, accumulate=False):
    """Scalar single-threaded reference of act_backward (for tests)."""
    o = _al(out)
    return _al_back(out, _act_backward(kind, _al(dy), _al(x), _al(y), o, alpha, beta, accumulate,
                                       True))
