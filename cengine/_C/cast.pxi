# cast.pxi - float32 <-> bfloat16 / float16 array casts (src_c/cast.h), torch's Tensor.to() bits.
#
#   cast_f32_to_bf16(x, out=None, ref=False) -> uint16 bfloat16 patterns of float32 x
#   cast_f32_to_f16(x, out=None, ref=False)  -> uint16 float16 patterns
#   cast_bf16_to_f32(h, out=None, ref=False) -> float32 (h: uint16 or ml_dtypes.bfloat16)
#   cast_f16_to_f32(h, out=None, ref=False)  -> float32 (h: uint16 or numpy float16)
#   transpose16(a, ref=False) -> a.T as a new C-contiguous array, for a 2-D array of 16-bit
#                                elements whose last dimension has unit stride
# Any layout is accepted (non-contiguous input is copied first); out must be a writable
# C-contiguous array of x's shape (of the 16-bit dtype, or float32). ref: the scalar reference.

from libc.stdint cimport uint16_t

cdef extern from "cast.h" nogil:
    void ce_cast_f32_to_bf16(uint16_t *dst, const float *src, int64_t n)
    void ce_cast_f32_to_f16(uint16_t *dst, const float *src, int64_t n)
    void ce_cast_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
    void ce_cast_f16_to_f32(float *dst, const uint16_t *src, int64_t n)
    void ce_cast_f32_to_bf16_ref(uint16_t *dst, const float *src, int64_t n)
    void ce_cast_f32_to_f16_ref(uint16_t *dst, const float *src, int64_t n)
    void ce_cast_bf16_to_f32_ref(float *dst, const uint16_t *src, int64_t n)
    void ce_cast_f16_to_f32_ref(float *dst, const uint16_t *src, int64_t n)
    void ce_transpose_u16(uint16_t *dst, const uint16_t *src, int64_t R, int64_t C, int64_t lds)
    void ce_transpose_u16_ref(uint16_t *dst, const uint16_t *src, int64_t R, int64_t C,
                              int64_t lds)


cdef object _half_in(x, str name, str half):
    """x as an aligned C-contiguous uint16 (half patterns) or float32 array"""
    if not isinstance(x, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(x).__name__))
    if half:
        if x.dtype.itemsize != 2 or x.dtype.name not in ("uint16", half):
            raise TypeError("%s: expected dtype %s (or uint16 bit patterns), got %s"
                            % (name, half, x.dtype))
    elif x.dtype != np.float32:
        raise TypeError("%s: expected dtype float32, got %s" % (name, x.dtype))
    if not (x.flags.c_contiguous and x.flags.aligned):
        x = np.ascontiguousarray(x)
    return x.view(np.uint16) if half else x


cdef object _half_out(out, shape, str name, bint to_half):
    if out is None:
        return np.empty(shape, np.uint16 if to_half else np.float32)
    ok = isinstance(out, np.ndarray) and out.shape == shape and out.flags.c_contiguous and \
        out.flags.aligned and out.flags.writeable
    if ok and to_half:
        ok = out.dtype.itemsize == 2 and out.dtype.name in ("uint16", "bfloat16", "float16")
    elif ok:
        ok = out.dtype == np.float32
    if not ok:
        raise ValueError("%s: out must be a writable C-contiguous %s array of shape %s"
                         % (name, "16-bit" if to_half else "float32", shape))
    return out


def _cast_to_half(x, out, bint ref, int kind):
    name = "cast_f32_to_bf16" if kind == 0 else "cast_f32_to_f16"
    x = _half_in(x, name, "")
    out = _half_out(out, x.shape, name, True)
    cdef uint16_t *po = <uint16_t *>_ptr(out)
    cdef const float *px = <const float *>_ptr(x)
    cdef int64_t n = x.size
    with nogil:
        if kind == 0:
            if ref:
                ce_cast_f32_to_bf16_ref(po, px, n)
            else:
                ce_cast_f32_to_bf16(po, px, n)
        else:
            if ref:
                ce_cast_f32_to_f16_ref(po, px, n)
            else:
                ce_cast_f32_to_f16(po, px, n)
    return out


def _cast_from_half(x, out, bint ref, int kind):
    name = "cast_bf16_to_f32" if kind == 0 else "cast_f16_to_f32"
    x = _half_in(x, name, "bfloat16" if kind == 0 else "float16")
    out = _half_out(out, x.shape, name, False)
    cdef float *po = <float *>_ptr(out)
    cdef const uint16_t *px = <const uint16_t *>_ptr(x)
    cdef int64_t n = x.size
    with nogil:
        if kind == 0:
            if ref:
                ce_cast_bf16_to_f32_ref(po, px, n)
            else:
                ce_cast_bf16_to_f32(po, px, n)
        else:
            if ref:
                ce_cast_f16_to_f32_ref(po, px, n)
            else:
                ce_cast_f16_to_f32(po, px, n)
    return out


def cast_f32_to_bf16(x, out=None, ref=False):
    return _cast_to_half(x, out, ref, 0)


def cast_f32_to_f16(x, out=None, ref=False):
    return _cast_to_half(x, out, ref, 1)


def cast_bf16_to_f32(x, out=None, ref=False):
    return _cast_from_half(x, out, ref, 0)


def cast_f16_to_f32(x, out=None, ref=False):
    return _cast_from_half(x, out, ref, 1)


def transpose16(a, ref=False):
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype.itemsize != 2:
        raise TypeError("transpose16: expected a 2-D numpy array of 16-bit elements")
    if a.shape[1] > 1 and a.strides[1] != 2 or a.strides[0] < 0 or a.strides[0] % 2 or \
            not a.flags.aligned:
        a = np.ascontiguousarray(a)
    cdef int64_t R = a.shape[0], C = a.shape[1]
    cdef int64_t lds = a.strides[0] // 2 if R > 1 else C
    out = np.empty((C, R), a.dtype)
    cdef uint16_t *po = <uint16_t *>_ptr(out)
    cdef const uint16_t *pa = <const uint16_t *>_ptr(a)
    cdef bint r = ref
    with nogil:
        if r:
            ce_transpose_u16_ref(po, pa, R, C, lds)
        else:
            ce_transpose_u16(po, pa, R, C, lds)
    return out
