# ewise.pxi - bindings of the threaded elementwise binary arithmetic (src_c/ewise.h).
#
# API:
#   ewise(op, a, b, out=None) -> out = a OP b, op in EWISE_OPS ('add', 'sub', 'mul', 'div');
#       a, b: C-contiguous numpy arrays of one dtype (float32 or float64) and the same shape;
#       out: allocated when None, else a C-contiguous array of that shape and dtype (may be a or b
#       itself, must not overlap them otherwise); all arrays aligned to their dtype.
#   ewise_ref(...): the plain single-threaded loop (tests).

cdef extern from "ewise.h" nogil:
    void ce_ewise_f32(int op, float *out, const float *a, const float *b, int64_t n)
    void ce_ewise_f64(int op, double *out, const double *a, const double *b, int64_t n)
    void ce_ewise_f32_ref(int op, float *out, const float *a, const float *b, int64_t n)
    void ce_ewise_f64_ref(int op, double *out, const double *a, const double *b, int64_t n)

EWISE_OPS = ("add", "sub", "mul", "div")
cdef dict _EW_IDS = {k: i for i, k in enumerate(EWISE_OPS)}


cdef _ewise(op, a, b, out, bint ref):
    cdef object k = _EW_IDS.get(op)
    if k is None:
        raise ValueError("unknown op %r: expected one of %s" % (op, ", ".join(EWISE_OPS)))
    cdef int opi = <int>k
    if not isinstance(a, np.ndarray):
        raise TypeError("a: expected a numpy array, got %s" % type(a).__name__)
    if a.dtype != np.float32 and a.dtype != np.float64:
        raise TypeError("a: expected dtype float32 or float64, got %s" % a.dtype)
    _check_c("a", a, a.dtype)
    _check_c("b", b, a.dtype)
    if b.shape != a.shape:
        raise ValueError("b: shape %s does not match %s" % (tuple(b.shape), tuple(a.shape)))
    if out is None:
        out = np.empty_like(a)
    else:
        _check_c("out", out, a.dtype)
        if out.shape != a.shape:
            raise ValueError("out: shape %s does not match %s" % (tuple(out.shape), tuple(a.shape)))
        if not out.flags.writeable:
            raise ValueError("out: array is read-only")
        for name, x in (("a", a), ("b", b)):
            if _ptr(out) != _ptr(x) and np.shares_memory(out, x):
                raise ValueError("out: overlaps %s partially (it may only be %s itself)"
                                 % (name, name))
    for name, x in (("a", a), ("b", b)):
        if not x.flags.aligned:
            raise ValueError("%s: array is not aligned to its dtype" % name)
    if not out.flags.aligned:
        raise ValueError("out: array is not aligned to its dtype")
    cdef int64_t n = _n(a)
    cdef void *ap = _ptr(a)
    cdef void *bp = _ptr(b)
    cdef void *op_ = _ptr(out)
    if a.dtype == np.float32:
        with nogil:
            if ref:
                ce_ewise_f32_ref(opi, <float*>op_, <const float*>ap, <const float*>bp, n)
            else:
                ce_ewise_f32(opi, <float*>op_, <const float*>ap, <const float*>bp, n)
    else:
        with nogil:
            if ref:
                ce_ewise_f64_ref(opi, <double*>op_, <const double*>ap, <const double*>bp, n)
            else:
                ce_ewise_f64(opi, <double*>op_, <const double*>ap, <const double*>bp, n)
    return out


def ewise(op, a, b, out=None):
    """out = a OP b elementwise (op: 'add', 'sub', 'mul', 'div') on the threaded C kernel."""
    return _ewise(op, a, b, out, False)


def ewise_ref(op, a, b, out=None):
    return _ewise(op, a, b, out, True)
