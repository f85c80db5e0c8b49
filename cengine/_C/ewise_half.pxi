# ewise_half.pxi - bindings of the bfloat16 elementwise arithmetic (src_c/ewise_half.h).
#
#   ewise_bf16(op, a, b, out=None, ref=False) -> out = bf16(a OP b), a, b bfloat16
#       (ml_dtypes.bfloat16 or uint16 bit patterns), C-contiguous, aligned, one shape; out
#       allocated (of a's dtype) when None, else such an array of that shape (may be a or b
#       itself, must not overlap them otherwise)
#   ewise_f32_bf16(op, a, b, out=None, rev=False, ref=False) -> float32 out = a OP float(b)
#       (b OP a when rev), a float32, b bfloat16, same rules
#   colsum_bf16(g, ref=False) -> float32 (N,) column sums of a 2-D bfloat16 g (rows with unit
#       element stride along them, any row stride), float32 additions row by row in order
#   op in EWISE_OPS ('add', 'sub', 'mul', 'div'); ref: the plain single-threaded loop

from libc.stdint cimport uint16_t

cdef extern from "ewise_half.h" nogil:
    void ce_ewise_bf16(int op, uint16_t *out, const uint16_t *a, const uint16_t *b, int64_t n)
    void ce_ewise_f32_bf16(int op, float *out, const float *a, const uint16_t *b, int64_t n,
                           int rev)
    void ce_colsum_bf16(float *out, const uint16_t *g, int64_t M, int64_t N, int64_t ld)
    void ce_colsum_bf16_ref(float *out, const uint16_t *g, int64_t M, int64_t N, int64_t ld)
    void ce_ewise_bf16_ref(int op, uint16_t *out, const uint16_t *a, const uint16_t *b, int64_t n)
    void ce_ewise_f32_bf16_ref(int op, float *out, const float *a, const uint16_t *b, int64_t n,
                               int rev)


cdef object _ewh_arr(name, x, bint half):
    if not isinstance(x, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(x).__name__))
    if half:
        if x.dtype.itemsize != 2 or x.dtype.name not in ("uint16", "bfloat16"):
            raise TypeError("%s: expected dtype bfloat16 (or uint16 bit patterns), got %s"
                            % (name, x.dtype))
    elif x.dtype != np.float32:
        raise TypeError("%s: expected dtype float32, got %s" % (name, x.dtype))
    if not x.flags.c_contiguous:
        raise ValueError("%s: expected a C-contiguous array" % name)
    if not x.flags.aligned:
        raise ValueError("%s: array is not aligned to its dtype" % name)
    return x


cdef object _ewh_out(out, a, b, like, bint half):
    if out is None:
        return np.empty(like.shape, like.dtype)
    _ewh_arr("out", out, half)
    if out.shape != like.shape:
        raise ValueError("out: shape %s does not match %s" % (tuple(out.shape), tuple(like.shape)))
    if not out.flags.writeable:
        raise ValueError("out: array is read-only")
    for name, x in (("a", a), ("b", b)):
        if _ptr(out) != _ptr(x) and np.shares_memory(out, x):
            raise ValueError("out: overlaps %s partially (it may only be %s itself)" % (name, name))
    return out


cdef int _ewh_op(op) except -1:
    k = _EW_IDS.get(op)
    if k is None:
        raise ValueError("unknown op %r: expected one of %s" % (op, ", ".join(EWISE_OPS)))
    return <int>k


def ewise_bf16(op, a, b, out=None, ref=False):
    cdef int opi = _ewh_op(op)
    a = _ewh_arr("a", a, True)
    b = _ewh_arr("b", b, True)
    if b.shape != a.shape:
        raise ValueError("b: shape %s does not match %s" % (tuple(b.shape), tuple(a.shape)))
    out = _ewh_out(out, a, b, a, True)
    cdef uint16_t *po = <uint16_t *>_ptr(out)
    cdef const uint16_t *pa = <const uint16_t *>_ptr(a)
    cdef const uint16_t *pb = <const uint16_t *>_ptr(b)
    cdef int64_t n = a.size
    cdef bint r = ref
    with nogil:
        if r:
            ce_ewise_bf16_ref(opi, po, pa, pb, n)
        else:
            ce_ewise_bf16(opi, po, pa, pb, n)
    return out


def ewise_f32_bf16(op, a, b, out=None, rev=False, ref=False):
    cdef int opi = _ewh_op(op)
    a = _ewh_arr("a", a, False)
    b = _ewh_arr("b", b, True)
    if b.shape != a.shape:
        raise ValueError("b: shape %s does not match %s" % (tuple(b.shape), tuple(a.shape)))
    out = _ewh_out(out, a, b, a, False)
    cdef float *po = <float *>_ptr(out)
    cdef const float *pa = <const float *>_ptr(a)
    cdef const uint16_t *pb = <const uint16_t *>_ptr(b)
    cdef int64_t n = a.size
    cdef bint r = ref
    cdef int rv = 1 if rev else 0
    with nogil:
        if r:
            ce_ewise_f32_bf16_ref(opi, po, pa, pb, n, rv)
        else:
            ce_ewise_f32_bf16(opi, po, pa, pb, n, rv)
    return out


def colsum_bf16(g, ref=False):
    if not isinstance(g, np.ndarray):
        raise TypeError("colsum_bf16: expected a numpy array, got %s" % type(g).__name__)
    if g.dtype.itemsize != 2 or g.dtype.name not in ("uint16", "bfloat16"):
        raise TypeError("colsum_bf16: expected dtype bfloat16 (or uint16 bit patterns), got %s"
                        % g.dtype)
    if g.ndim != 2:
        raise ValueError("colsum_bf16: expected a 2-D array, got %d-D" % g.ndim)
    if (g.shape[1] > 1 and g.strides[1] != 2) or g.strides[0] < 0 or g.strides[0] % 2 \
            or not g.flags.aligned:
        g = np.ascontiguousarray(g)
    cdef int64_t M = g.shape[0], N = g.shape[1]
    cdef int64_t ld = g.strides[0] // 2 if M > 1 else N
    out = np.empty(N, np.float32)
    cdef float *po = <float *>_ptr(out)
    cdef const uint16_t *pg = <const uint16_t *>_ptr(g)
    cdef bint r = ref
    with nogil:
        if r:
            ce_colsum_bf16_ref(po, pg, M, N, ld)
        else:
            ce_colsum_bf16(po, pg, M, N, ld)
    return out
