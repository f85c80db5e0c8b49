# gemm.pxi - bindings of the strided, batched GEMM (src_c/gemm.h).
#
#   gemm(A, B, C, alpha=1.0, beta=0.0):  C = alpha * A @ B + beta * C   (in place, returns C)
#
# A (M,K) or (b,M,K), B (K,N) or (b,K,N), C (M,N) or (b,M,N); any strides (transposed and sliced
# views need no copy); a 2-D operand or a batch dimension of size 1 broadcasts over the batch.
# A and B with negative or unaligned strides are copied first; C must be writable with
# non-negative, element-aligned strides and must not overlap A or B.

cdef extern from "gemm.h" nogil:
    void ce_sgemm(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t sAb, int64_t rsA, int64_t csA,
                  const float *B, int64_t sBb, int64_t rsB, int64_t csB, float beta,
                  float *C, int64_t sCb, int64_t rsC, int64_t csC)
    void ce_dgemm(int64_t batch, int64_t M, int64_t N, int64_t K, double alpha,
                  const double *A, int64_t sAb, int64_t rsA, int64_t csA,
                  const double *B, int64_t sBb, int64_t rsB, int64_t csB, double beta,
                  double *C, int64_t sCb, int64_t rsC, int64_t csC)
    void ce_sgemm_ref(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t sAb, int64_t rsA, int64_t csA,
                      const float *B, int64_t sBb, int64_t rsB, int64_t csB, float beta,
                      float *C, int64_t sCb, int64_t rsC, int64_t csC)
    void ce_dgemm_ref(int64_t batch, int64_t M, int64_t N, int64_t K, double alpha,
                      const double *A, int64_t sAb, int64_t rsA, int64_t csA,
                      const double *B, int64_t sBb, int64_t rsB, int64_t csB, double beta,
                      double *C, int64_t sCb, int64_t rsC, int64_t csC)

_GEMM_TORCH_DTYPE = {"float32": "float", "float64": "double", "float16": "Half",
                     "int64": "long", "int32": "int", "bool": "bool", "int16": "short",
                     "int8": "char", "uint8": "unsigned char", "complex64": "ComplexFloat",
                     "complex128": "ComplexDouble"}


def _gemm_dtype_name(dt):
    return _GEMM_TORCH_DTYPE.get(dt.name, dt.name)


cdef inline bint _gemm_strides_ok(cnp.ndarray a, int64_t itemsize):
    cdef int d
    cdef int64_t s
    for d in range(cnp.PyArray_NDIM(a)):
        s = cnp.PyArray_STRIDES(a)[d]
        if s < 0 or s % itemsize != 0:
            return False
    return True


cdef inline void _gemm_mat(cnp.ndarray a, int64_t itemsize, int64_t *bat, int64_t *r0,
                           int64_t *r1, int64_t *sb, int64_t *rs, int64_t *cs):
    """shape and element strides of a 2-D or 3-D operand (batch 1 and stride 0 for 2-D)."""
    cdef int nd = cnp.PyArray_NDIM(a)
    cdef cnp.npy_intp *sh = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *st = cnp.PyArray_STRIDES(a)
    if nd == 3:
        bat[0] = sh[0]
        sb[0] = st[0] // itemsize if sh[0] > 1 else 0
        r0[0] = sh[1]; r1[0] = sh[2]
        rs[0] = st[1] // itemsize; cs[0] = st[2] // itemsize
    else:
        bat[0] = 1
        sb[0] = 0
        r0[0] = sh[0]; r1[0] = sh[1]
        rs[0] = st[0] // itemsize; cs[0] = st[1] // itemsize


cdef object _gemm_impl(object A, object B, object C, double alpha, double beta, bint ref):
    if not isinstance(A, np.ndarray) or not isinstance(B, np.ndarray) or not isinstance(C, np.ndarray):
        raise TypeError("gemm: expected numpy arrays, got %s, %s and %s"
                        % (type(A).__name__, type(B).__name__, type(C).__name__))
    cdef cnp.ndarray a = <cnp.ndarray>A, b = <cnp.ndarray>B, c = <cnp.ndarray>C
    cdef int na = cnp.PyArray_NDIM(a), nb = cnp.PyArray_NDIM(b), nc = cnp.PyArray_NDIM(c)
    if na < 2 or na > 3 or nb < 2 or nb > 3 or nc < 2 or nc > 3:
        raise RuntimeError("gemm: expected 2-D or 3-D tensors, got %dD, %dD and %dD" % (na, nb, nc))
    cdef int ta = cnp.PyArray_TYPE(a), tb = cnp.PyArray_TYPE(b), tc = cnp.PyArray_TYPE(c)
    if ta != tb:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: %s != %s"
                           % (_gemm_dtype_name(a.dtype), _gemm_dtype_name(b.dtype)))
    if ta != cnp.NPY_FLOAT32 and ta != cnp.NPY_FLOAT64:
        raise TypeError("gemm: expected float32 or float64 operands, got %s" % a.dtype)
    if tc != ta:
        raise RuntimeError("expected out to have dtype %s, but got %s"
                           % (_gemm_dtype_name(a.dtype), _gemm_dtype_name(c.dtype)))
    if not cnp.PyArray_ISWRITEABLE(c):
        raise ValueError("gemm: output array is read-only")
    cdef int64_t isz = cnp.PyArray_ITEMSIZE(a)
    if not _gemm_strides_ok(a, isz):
        a = np.ascontiguousarray(a)
    if not _gemm_strides_ok(b, isz):
        b = np.ascontiguousarray(b)
    if not _gemm_strides_ok(c, isz):
        raise ValueError("gemm: output array must have non-negative strides that are multiples "
                         "of its itemsize")
    cdef int64_t ba, M, K, sAb, rsA, csA, bb, K2, N, sBb, rsB, csB, bc, M2, N2, sCb, rsC, csC
    _gemm_mat(a, isz, &ba, &M, &K, &sAb, &rsA, &csA)
    _gemm_mat(b, isz, &bb, &K2, &N, &sBb, &rsB, &csB)
    _gemm_mat(c, isz, &bc, &M2, &N2, &sCb, &rsC, &csC)
    if K != K2:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (%dx%d and %dx%d)"
                           % (M, K, K2, N))
    cdef int64_t batch = ba if ba != 1 else bb
    if (ba != 1 and bb != 1 and ba != bb) or (nc == 2 and batch != 1) or \
            (nc == 3 and bc != batch and not (batch == 1 and bc >= 1)):
        raise RuntimeError("gemm: batch sizes do not match: %s @ %s -> %s"
                           % (A.shape, B.shape, C.shape))
    if M2 != M or N2 != N:
        raise RuntimeError("gemm: output shape %s does not match the product %s @ %s"
                           % (C.shape, A.shape, B.shape))
    batch = bc if nc == 3 else batch
    if batch == 0 or M == 0 or N == 0:
        return C
    # C elements must be distinct (a zero stride over a dimension longer than 1 would race)
    if (M > 1 and rsC == 0) or (N > 1 and csC == 0) or (batch > 1 and sCb == 0):
        raise ValueError("gemm: output array has overlapping elements (zero stride)")
    if ba == 1: sAb = 0
    if bb == 1: sBb = 0
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    if ta == cnp.NPY_FLOAT32:
        if ref:
            with nogil:
                ce_sgemm_ref(batch, M, N, K, <float>alpha, <const float*>pa, sAb, rsA, csA,
                             <const float*>pb, sBb, rsB, csB, <float>beta, <float*>pc, sCb, rsC, csC)
        else:
            with nogil:
                ce_sgemm(batch, M, N, K, <float>alpha, <const float*>pa, sAb, rsA, csA,
                         <const float*>pb, sBb, rsB, csB, <float>beta, <float*>pc, sCb, rsC, csC)
    else:
        if ref:
            with nogil:
                ce_dgemm_ref(batch, M, N, K, alpha, <const double*>pa, sAb, rsA, csA,
                             <const double*>pb, sBb, rsB, csB, beta, <double*>pc, sCb, rsC, csC)
        else:
            with nogil:
                ce_dgemm(batch, M, N, K, alpha, <const double*>pa, sAb, rsA, csA,
                         <const double*>pb, sBb, rsB, csB, beta, <double*>pc, sCb, rsC, csC)
    return C


def gemm(A, B, C, double alpha=1.0, double beta=0.0):
    """C = alpha * A @ B + beta * C in place on the optimized kernels; returns C.

    A (M,K) or (b,M,K), B (K,N) or (b,K,N), C (M,N) or (b,M,N), all float32 or all float64,
    any strides; 2-D operands and batch size 1 broadcast. beta=0 ignores C's old contents."""
    return _gemm_impl(A, B, C, alpha, beta, False)


def gemm_ref(A, B, C, double alpha=1.0, double beta=0.0):
    """Same contract as gemm, on the plain triple-loop reference (for tests)."""
    return _gemm_impl(A, B, C, alpha, beta, True)
