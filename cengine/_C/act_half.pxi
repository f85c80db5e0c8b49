# act_half.pxi - bindings of the bfloat16 activations (src_c/act_half.h).
#
#   act_forward_bf16(kind, x, out=None, alpha=None, beta=None, ref=False) -> out = bf16(f(x))
#   act_backward_bf16(kind, dy, xy, out=None, alpha=None, beta=None, ref=False)
#       -> out = bf16(dy * f'(.)); xy: the forward input x, or for sigmoid/tanh the output y
#          (act_backward_uses(kind))
# Arrays: bfloat16 (ml_dtypes.bfloat16 or uint16 bit patterns), C-contiguous, aligned, one
# shape; out allocated (x's / dy's dtype) when None, may be x (forward) or dy (backward).
# kind, alpha, beta: as act_forward (activation.pxi). ref: the scalar references, one thread.

from libc.stdint cimport uint16_t

cdef extern from "act_half.h" nogil:
    void ce_act_forward_bf16(int kind, uint16_t *y, const uint16_t *x, int64_t n, double p0,
                             double p1)
    void ce_act_backward_bf16(int kind, uint16_t *dx, const uint16_t *xy, const uint16_t *dy,
                              int64_t n, double p0, double p1)
    void ce_act_forward_bf16_ref(int kind, uint16_t *y, const uint16_t *x, int64_t n, double p0,
                                 double p1)
    void ce_act_backward_bf16_ref(int kind, uint16_t *dx, const uint16_t *xy, const uint16_t *dy,
                                  int64_t n, double p0, double p1)


cdef object _acth_arr(name, a, like):
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(a).__name__))
    if a.dtype.itemsize != 2 or a.dtype.name not in ("uint16", "bfloat16"):
        raise TypeError("%s: expected dtype bfloat16 (or uint16 bit patterns), got %s"
                        % (name, a.dtype))
    if not a.flags.c_contiguous or not a.flags.aligned:
        raise ValueError("%s: expected an aligned C-contiguous array" % name)
    if like is not None and a.shape != like.shape:
        raise ValueError("%s: shape %s does not match %s" % (name, tuple(a.shape), tuple(like.shape)))
    return a


cdef object _acth_out(out, like, inputs):
    if out is None:
        return np.empty(like.shape, like.dtype)
    _acth_arr("out", out, like)
    if not out.flags.writeable:
        raise ValueError("out: array is read-only")
    for name, x in inputs:
        if _ptr(out) != _ptr(x) and np.shares_memory(out, x):
            raise ValueError("out: overlaps %s partially (it may only be %s itself)" % (name, name))
    return out


def act_forward_bf16(kind, x, out=None, alpha=None, beta=None, ref=False):
    cdef int k = _act_kind(kind)
    x = _acth_arr("x", x, None)
    out = _acth_out(out, x, (("x", x),))
    p0, p1 = _act_params(k, alpha, beta)
    cdef double a0 = p0, a1 = p1
    cdef int64_t n = x.size
    cdef uint16_t *py = <uint16_t *>_ptr(out)
    cdef const uint16_t *px = <const uint16_t *>_ptr(x)
    cdef bint r = ref
    with nogil:
        if r:
            ce_act_forward_bf16_ref(k, py, px, n, a0, a1)
        else:
            ce_act_forward_bf16(k, py, px, n, a0, a1)
    return out


def act_backward_bf16(kind, dy, xy, out=None, alpha=None, beta=None, ref=False):
    cdef int k = _act_kind(kind)
    dy = _acth_arr("dy", dy, None)
    xy = _acth_arr("xy", xy, dy)
    out = _acth_out(out, dy, (("dy", dy), ("xy", xy)))
    if _ptr(out) == _ptr(xy) and _ptr(out) != _ptr(dy):
        raise ValueError("out: may be dy itself, not xy")
    p0, p1 = _act_params(k, alpha, beta)
    cdef double a0 = p0, a1 = p1
    cdef int64_t n = dy.size
    cdef uint16_t *po = <uint16_t *>_ptr(out)
    cdef const uint16_t *ps = <const uint16_t *>_ptr(xy)
    cdef const uint16_t *pg = <const uint16_t *>_ptr(dy)
    cdef bint r = ref
    with nogil:
        if r:
            ce_act_backward_bf16_ref(k, po, ps, pg, n, a0, a1)
        else:
            ce_act_backward_bf16(k, po, ps, pg, n, a0, a1)
    return out
