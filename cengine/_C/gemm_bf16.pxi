# gemm_bf16.pxi - bindings of the bfloat16 GEMM and the f32 <-> bf16 casts (src_c/gemm_bf16.h).
#
#   gemm_bf16(A, B, C, alpha=1.0, beta=0.0, bias=None) -> C
#       C = alpha * bf16(A) @ bf16(B) + beta * C (+ bias along the columns), float32 sums, in place;
#       C float32, or bfloat16 (ml_dtypes.bfloat16 / uint16 bits: each result rounded once)
#   gemm_bf16_ref(...)                    the plain reference (tests)
#   gemm_bf16_path() -> 2 (AMX), 1 (AVX512_BF16), 0 (fp32 GEMM on rounded copies); gemm_bf16_set_max_path(p)
#   f32_to_bf16(x, out=None) -> uint16    bfloat16 bits, round to nearest even
#   bf16_to_f32(h, out=None) -> float32
#   (f32_to_bf16_ref / bf16_to_f32_ref: the scalar references)
#
# A (M, K), (b, M, K) or (b, h, M, K) and B (K, N), (b, K, N) or (b, h, K, N): float32
# (rounded to bfloat16 while packing)
# or bfloat16 (an ml_dtypes.bfloat16 or a uint16 array of bit patterns); any non-negative
# element-aligned strides (other layouts are copied first); a 2-D operand broadcasts over the
# batch (size-1 batch dims broadcast too). C (M, N), (b, M, N) or (b, h, M, N): writable float32
# or bfloat16, must not overlap A or B. bias: float32 (N,).

from libc.stdint cimport uint16_t

cdef extern from "gemm_bf16.h" nogil:
    int CE_BF16_SRC_F32
    int CE_BF16_SRC_BF16
    void ce_gemm_bf16(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                      const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                      const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                      float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                      const float *bias, int64_t sbias)
    void ce_gemm_bf16_ref(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                          const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                          const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                          float beta, float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                          const float *bias, int64_t sbias)
    void ce_gemm_bf16_to_bf16(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                              const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                              const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                              float beta, uint16_t *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                              const float *bias, int64_t sbias)
    void ce_gemm_bf16_to_bf16_ref(int64_t nb, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                                  const void *A, int dtA, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                                  const void *B, int dtB, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB,
                                  float beta, uint16_t *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                                  const float *bias, int64_t sbias)
    int ce_gemm_bf16_path()
    int ce_gemm_bf16_set_max_path(int path)
    void ce_f32_to_bf16(uint16_t *dst, const float *src, int64_t n)
    void ce_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
    void ce_f32_to_bf16_ref(uint16_t *dst, const float *src, int64_t n)
    void ce_bf16_to_f32_ref(float *dst, const uint16_t *src, int64_t n)


def gemm_bf16_path():
    """2: AMX-BF16 tiles, 1: AVX512_BF16, 0: bfloat16-rounded float32 copies on the fp32 GEMM"""
    return ce_gemm_bf16_path()


def gemm_bf16_set_max_path(int path):
    """Cap the bf16 GEMM path (2 = no cap); returns the previous cap's effect via gemm_bf16_path"""
    if ce_gemm_bf16_set_max_path(path) != 0:
        raise ValueError("path must be 0, 1 or 2, got %d" % path)


cdef inline bint _is_bf16(a):
    return a.dtype == np.uint16 or (a.dtype.itemsize == 2 and a.dtype.name == "bfloat16")


cdef object _bf16_operand(name, a):
    """(array as float32 or uint16 with usable strides, source code)"""
    if not isinstance(a, np.ndarray):
        raise TypeError("gemm_bf16: %s must be a numpy array, got %s" % (name, type(a).__name__))
    if a.ndim not in (2, 3, 4):
        raise ValueError("gemm_bf16: %s must be 2-D, 3-D or 4-D, got %d-D" % (name, a.ndim))
    if _is_bf16(a):
        a = a.view(np.uint16)
        code = CE_BF16_SRC_BF16
    elif a.dtype == np.float32:
        code = CE_BF16_SRC_F32
    else:
        raise TypeError("gemm_bf16: %s must be float32 or bfloat16, got %s" % (name, a.dtype))
    if not _gemm_strides_ok(a, a.dtype.itemsize) or not a.flags.aligned:
        a = np.ascontiguousarray(a)
    return a, code


cdef tuple _bf16_mat(cnp.ndarray a):
    """(batch counts n1, n2, batch strides s1, s2, rows, cols, row stride, col stride) in
    elements; a batch stride is 0 where that batch dimension has size 1"""
    cdef int64_t e = a.dtype.itemsize
    cdef int nd = a.ndim
    r, c, rs, cs = a.shape[nd - 2], a.shape[nd - 1], a.strides[nd - 2] // e, a.strides[nd - 1] // e
    if nd == 2:
        return 1, 1, 0, 0, r, c, rs, cs
    if nd == 3:
        return (1, a.shape[0], 0, a.strides[0] // e if a.shape[0] > 1 else 0, r, c, rs, cs)
    return (a.shape[0], a.shape[1], a.strides[0] // e if a.shape[0] > 1 else 0,
            a.strides[1] // e if a.shape[1] > 1 else 0, r, c, rs, cs)


def _gemm_bf16_call(A, B, C, alpha, beta, bias, bint ref):
    A, da = _bf16_operand("A", A)
    B, db = _bf16_operand("B", B)
    if not isinstance(C, np.ndarray) or not (C.dtype == np.float32 or _is_bf16(C)):
        raise TypeError("gemm_bf16: C must be a float32 or bfloat16 numpy array")
    cdef bint c16 = C.dtype != np.float32
    if c16:
        C = C.view(np.uint16)
    if C.ndim not in (2, 3, 4) or not C.flags.writeable or not C.flags.aligned or \
            not _gemm_strides_ok(C, C.dtype.itemsize):
        raise ValueError("gemm_bf16: C must be a writable 2-D, 3-D or 4-D float32 or bfloat16 "
                         "array with non-negative, element-aligned strides")
    cdef int64_t nA1, nA2, sA, sA2, M, K, rsA, csA, nB1, nB2, sB, sB2, K2, N, rsB, csB
    cdef int64_t nC1, nC2, sC, sC2, M2, N2, rsC, csC
    nA1, nA2, sA, sA2, M, K, rsA, csA = _bf16_mat(A)
    nB1, nB2, sB, sB2, K2, N, rsB, csB = _bf16_mat(B)
    nC1, nC2, sC, sC2, M2, N2, rsC, csC = _bf16_mat(C)
    if K != K2:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (%dx%d and %dx%d)"
                           % (M, K, K2, N))
    if M != M2 or N != N2:
        raise ValueError("gemm_bf16: C has shape %s, the product is %dx%d"
                         % (tuple(C.shape), M, N))
    if (A.ndim not in (2, C.ndim) or B.ndim not in (2, C.ndim) or nA1 not in (1, nC1)
            or nA2 not in (1, nC2) or nB1 not in (1, nC1) or nB2 not in (1, nC2)):
        raise ValueError("gemm_bf16: batch sizes do not match (A %s, B %s, C %s)"
                         % (tuple(A.shape), tuple(B.shape), tuple(C.shape)))
    if C.size and ((A.size and _gemm_overlap(A, C)) or (B.size and _gemm_overlap(B, C))):
        raise ValueError("gemm_bf16: C must not overlap A or B")
    if C.size == 0:    # an empty product (numpy gives empty arrays zero strides): nothing to do
        return C
    for d in range(C.ndim):
        if C.shape[d] > 1 and C.strides[d] == 0:
            raise ValueError("gemm_bf16: C must not repeat elements (stride 0 along a dimension)")
    cdef int64_t sbias = 0
    cdef const float *pbias = NULL
    if bias is not None:
        if not isinstance(bias, np.ndarray) or bias.dtype != np.float32 or bias.shape != (N,):
            raise ValueError("gemm_bf16: bias must be a float32 array of shape (%d,)" % N)
        if not bias.flags.aligned or bias.strides[0] < 0 or bias.strides[0] % 4 or \
                (C.size and _gemm_overlap(bias, C)):
            bias = np.array(bias, order="C", copy=True)
        sbias = bias.strides[0] // 4
        pbias = <const float *>_ptr(bias)
    cdef const void *pa = _ptr(A)
    cdef const void *pb = _ptr(B)
    cdef float *pc = <float *>_ptr(C)
    cdef uint16_t *ph = <uint16_t *>_ptr(C)
    cdef float fa = alpha, fb = beta
    cdef int ia = da, ib = db
    with nogil:
        if c16 and ref:
            ce_gemm_bf16_to_bf16_ref(nC1, nC2, M, N, K, fa, pa, ia, sA, sA2, rsA, csA, pb, ib, sB,
                                     sB2, rsB, csB, fb, ph, sC, sC2, rsC, csC, pbias, sbias)
        elif c16:
            ce_gemm_bf16_to_bf16(nC1, nC2, M, N, K, fa, pa, ia, sA, sA2, rsA, csA, pb, ib, sB, sB2,
                                 rsB, csB, fb, ph, sC, sC2, rsC, csC, pbias, sbias)
        elif ref:
            ce_gemm_bf16_ref(nC1, nC2, M, N, K, fa, pa, ia, sA, sA2, rsA, csA, pb, ib, sB, sB2,
                             rsB, csB, fb, pc, sC, sC2, rsC, csC, pbias, sbias)
        else:
            ce_gemm_bf16(nC1, nC2, M, N, K, fa, pa, ia, sA, sA2, rsA, csA, pb, ib, sB, sB2, rsB,
                         csB, fb, pc, sC, sC2, rsC, csC, pbias, sbias)
    return C


def gemm_bf16(A, B, C, alpha=1.0, beta=0.0, bias=None):
    return _gemm_bf16_call(A, B, C, alpha, beta, bias, False)


def gemm_bf16_ref(A, B, C, alpha=1.0, beta=0.0, bias=None):
    return _gemm_bf16_call(A, B, C, alpha, beta, bias, True)


def _cast_args(x, out, src_dt, out_dt, name):
    if not isinstance(x, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(x).__name__))
    if src_dt == np.uint16 and x.dtype != np.uint16 and _is_bf16(x):
        x = x.view(np.uint16)
    if x.dtype != src_dt:
        raise TypeError("%s: expected dtype %s, got %s" % (name, np.dtype(src_dt).name, x.dtype))
    x = np.ascontiguousarray(x) if not (x.flags.c_contiguous and x.flags.aligned) else x
    if out is None:
        out = np.empty(x.shape, out_dt)
    else:
        if out_dt == np.uint16 and isinstance(out, np.ndarray) and out.dtype != np.uint16 and _is_bf16(out):
            out = out.view(np.uint16)
        if not isinstance(out, np.ndarray) or out.dtype != out_dt or out.shape != x.shape or \
                not out.flags.c_contiguous or not out.flags.aligned or not out.flags.writeable:
            raise ValueError("%s: out must be a writable C-contiguous %s array of shape %s"
                             % (name, np.dtype(out_dt).name, x.shape))
    return x, out


def f32_to_bf16(x, out=None, ref=False):
    x, out = _cast_args(x, out, np.float32, np.uint16, "f32_to_bf16")
    cdef uint16_t *po = <uint16_t *>_ptr(out)
    cdef const float *px = <const float *>_ptr(x)
    cdef int64_t n = _n(x)
    cdef bint r = ref
    with nogil:
        if r:
            ce_f32_to_bf16_ref(po, px, n)
        else:
            ce_f32_to_bf16(po, px, n)
    return out


def bf16_to_f32(x, out=None, ref=False):
    x, out = _cast_args(x, out, np.uint16, np.float32, "bf16_to_f32")
    cdef float *po = <float *>_ptr(out)
    cdef const uint16_t *px = <const uint16_t *>_ptr(x)
    cdef int64_t n = _n(x)
    cdef bint r = ref
    with nogil:
        if r:
            ce_bf16_to_f32_ref(po, px, n)
        else:
            ce_bf16_to_f32(po, px, n)
    return out
