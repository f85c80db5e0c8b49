# gemm.pxi - bindings of the strided, batched GEMM (src_c/gemm.h).
#
#   gemm(A, B, C, alpha=1.0, beta=0.0, bias=None):  C = alpha * A @ B + beta * C (+ bias along
#   the columns), in place, returns C
#
# A (..., M, K), B (..., K, N), C (..., M, N) with up to two batch dimensions (2-D to 4-D); any
# strides (transposed and sliced views, such as the (batch, heads, L, E) view of a (batch, L,
# heads, E) array, need no copy); a missing or size-1 batch dimension of A or B broadcasts over
# C's. A and B with negative or unaligned strides, or data not aligned to the dtype, are copied
# first; C must be writable with non-negative, element-aligned strides and must not overlap A or
# B (checked by address range); a C whose data is misaligned is computed in an aligned copy.

cdef extern from "gemm.h" nogil:
    void ce_sgemm(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                  const float *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                  float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                  const float *bias, int64_t sbias)
    void ce_dgemm(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, double alpha,
                  const double *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                  const double *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, double beta,
                  double *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                  const double *bias, int64_t sbias)
    void ce_sgemm_ref(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                      const float *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, float beta,
                      float *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                      const float *bias, int64_t sbias)
    void ce_dgemm_ref(int64_t nb1, int64_t nb2, int64_t M, int64_t N, int64_t K, double alpha,
                      const double *A, int64_t sAb, int64_t sAb2, int64_t rsA, int64_t csA,
                      const double *B, int64_t sBb, int64_t sBb2, int64_t rsB, int64_t csB, double beta,
                      double *C, int64_t sCb, int64_t sCb2, int64_t rsC, int64_t csC,
                      const double *bias, int64_t sbias)

def _gemm_dtype_name(dt):
    from cengine.dtypes import torch_cpp_name   # only on the error path
    return torch_cpp_name(dt)


cdef inline bint _gemm_strides_ok(cnp.ndarray a, int64_t itemsize):
    cdef int d
    cdef int64_t s
    for d in range(cnp.PyArray_NDIM(a)):
        s = cnp.PyArray_STRIDES(a)[d]
        if s < 0 or s % itemsize != 0:
            return False
    return True


cdef inline bint _gemm_overlap(cnp.ndarray a, cnp.ndarray c):
    """whether the byte ranges spanned by a and c intersect (strides are non-negative here)"""
    cdef char *pa = <char*>cnp.PyArray_DATA(a)
    cdef char *pc = <char*>cnp.PyArray_DATA(c)
    cdef int64_t ea = cnp.PyArray_ITEMSIZE(a), ec = cnp.PyArray_ITEMSIZE(c)
    cdef int d
    if cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_SIZE(c) == 0:
        return False
    for d in range(cnp.PyArray_NDIM(a)):
        ea += (cnp.PyArray_DIMS(a)[d] - 1) * cnp.PyArray_STRIDES(a)[d]
    for d in range(cnp.PyArray_NDIM(c)):
        ec += (cnp.PyArray_DIMS(c)[d] - 1) * cnp.PyArray_STRIDES(c)[d]
    return pa < pc + ec and pc < pa + ea


cdef inline void _gemm_mat(cnp.ndarray a, int64_t itemsize, int64_t *nb, int64_t *sb,
                           int64_t *r0, int64_t *r1, int64_t *rs, int64_t *cs):
    """batch counts nb[0:2] and strides sb[0:2] (left-padded with 1 and 0; stride 0 where the
    count is 1), then the matrix shape and element strides of a 2-D to 4-D operand."""
    cdef int nd = cnp.PyArray_NDIM(a), d, lev
    cdef cnp.npy_intp *sh = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *st = cnp.PyArray_STRIDES(a)
    nb[0] = 1; nb[1] = 1; sb[0] = 0; sb[1] = 0
    for d in range(nd - 2):
        lev = d + 4 - nd   # 0 = outer, 1 = inner batch level
        nb[lev] = sh[d]
        sb[lev] = st[d] // itemsize if sh[d] > 1 else 0
    r0[0] = sh[nd - 2]; r1[0] = sh[nd - 1]
    rs[0] = st[nd - 2] // itemsize; cs[0] = st[nd - 1] // itemsize


cdef object _gemm_impl(object A, object B, object C, double alpha, double beta, bint ref,
                       object bias=None):
    if not isinstance(A, np.ndarray) or not isinstance(B, np.ndarray) or not isinstance(C, np.ndarray):
        raise TypeError("gemm: expected numpy arrays, got %s, %s and %s"
                        % (type(A).__name__, type(B).__name__, type(C).__name__))
    cdef cnp.ndarray a = <cnp.ndarray>A, b = <cnp.ndarray>B, c = <cnp.ndarray>C
    cdef int na = cnp.PyArray_NDIM(a), nb = cnp.PyArray_NDIM(b), nc = cnp.PyArray_NDIM(c)
    if na < 2 or na > 4 or nb < 2 or nb > 4 or nc < 2 or nc > 4:
        raise RuntimeError("gemm: expected 2-D to 4-D tensors, got %dD, %dD and %dD" % (na, nb, nc))
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
    # operands the kernels cannot address (negative or partial-element strides, or data not
    # aligned to the dtype: undefined behaviour for typed loads) are copied once
    if not _gemm_strides_ok(a, isz) or not cnp.PyArray_ISALIGNED(a):
        a = np.array(a, copy=True, order="C")
    if not _gemm_strides_ok(b, isz) or not cnp.PyArray_ISALIGNED(b):
        b = np.array(b, copy=True, order="C")
    if not _gemm_strides_ok(c, isz):
        raise ValueError("gemm: output array must have non-negative strides that are multiples "
                         "of its itemsize")
    # a misaligned output is computed in an aligned copy (it holds C's values for beta != 0)
    # and copied back at the end
    cdef object c_user = None
    if not cnp.PyArray_ISALIGNED(c):
        if any(n > 1 and st == 0 for n, st in zip(C.shape, C.strides)):
            raise ValueError("gemm: output array has overlapping elements (zero stride)")
        c_user = c
        c = np.array(c, copy=True, order="C")
    cdef int64_t nA[2]
    cdef int64_t nB[2]
    cdef int64_t nC[2]
    cdef int64_t sA[2]
    cdef int64_t sB[2]
    cdef int64_t sC[2]
    cdef int64_t M, K, rsA, csA, K2, N, rsB, csB, M2, N2, rsC, csC
    cdef int lev
    _gemm_mat(a, isz, nA, sA, &M, &K, &rsA, &csA)
    _gemm_mat(b, isz, nB, sB, &K2, &N, &rsB, &csB)
    _gemm_mat(c, isz, nC, sC, &M2, &N2, &rsC, &csC)
    if K != K2:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (%dx%d and %dx%d)"
                           % (M, K, K2, N))
    # each batch level of A and B is C's or 1 (broadcast, stride 0)
    for lev in range(2):
        if (nA[lev] != 1 and nA[lev] != nC[lev]) or (nB[lev] != 1 and nB[lev] != nC[lev]):
            raise RuntimeError("gemm: batch sizes do not match: %s @ %s -> %s"
                               % (A.shape, B.shape, C.shape))
    if M2 != M or N2 != N:
        raise RuntimeError("gemm: output shape %s does not match the product %s @ %s"
                           % (C.shape, A.shape, B.shape))
    cdef cnp.ndarray bv
    cdef void *pbias = NULL
    cdef int64_t sbias = 0
    if bias is not None:
        if not isinstance(bias, np.ndarray):
            raise TypeError("gemm: bias must be a numpy array, got %s" % type(bias).__name__)
        bv = <cnp.ndarray>bias
        if cnp.PyArray_TYPE(bv) != ta:
            raise RuntimeError("expected bias to have dtype %s, but got %s"
                               % (_gemm_dtype_name(a.dtype), _gemm_dtype_name(bv.dtype)))
        if cnp.PyArray_NDIM(bv) != 1 or cnp.PyArray_DIMS(bv)[0] != N:
            raise RuntimeError("gemm: bias of shape %s does not match the %d output columns"
                               % (bias.shape, N))
        if not _gemm_strides_ok(bv, isz) or not cnp.PyArray_ISALIGNED(bv):
            bv = np.array(bv, copy=True, order="C")
        if _gemm_overlap(bv, c):
            raise ValueError("gemm: the output array overlaps the bias; pass a separate output")
        pbias = cnp.PyArray_DATA(bv)
        sbias = cnp.PyArray_STRIDES(bv)[0] // isz if N > 1 else 0
    if nC[0] == 0 or nC[1] == 0 or M == 0 or N == 0:
        return C
    # C elements must be distinct (a zero stride over a dimension longer than 1 would race)
    if (M > 1 and rsC == 0) or (N > 1 and csC == 0) or (nC[0] > 1 and sC[0] == 0) or \
            (nC[1] > 1 and sC[1] == 0):
        raise ValueError("gemm: output array has overlapping elements (zero stride)")
    if _gemm_overlap(a, c) or _gemm_overlap(b, c):
        raise ValueError("gemm: the output array overlaps an input; pass a separate output")
    # one batch level where the two merge (outer stride = inner count * inner stride for all)
    if nC[0] == 1 or (sA[0] == nC[1] * sA[1] and sB[0] == nC[1] * sB[1] and
                      sC[0] == nC[1] * sC[1]):
        if nC[1] > 1:   # the merged level steps by the inner strides
            sA[0] = sA[1]; sB[0] = sB[1]; sC[0] = sC[1]
        nC[0] *= nC[1]; nC[1] = 1
        sA[1] = sB[1] = sC[1] = 0
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    if ta == cnp.NPY_FLOAT32:
        if ref:
            with nogil:
                ce_sgemm_ref(nC[0], nC[1], M, N, K, <float>alpha, <const float*>pa, sA[0], sA[1],
                             rsA, csA, <const float*>pb, sB[0], sB[1], rsB, csB, <float>beta,
                             <float*>pc, sC[0], sC[1], rsC, csC,
                             <const float*>pbias, sbias)
        else:
            with nogil:
                ce_sgemm(nC[0], nC[1], M, N, K, <float>alpha, <const float*>pa, sA[0], sA[1],
                         rsA, csA, <const float*>pb, sB[0], sB[1], rsB, csB, <float>beta,
                         <float*>pc, sC[0], sC[1], rsC, csC,
                             <const float*>pbias, sbias)
    else:
        if ref:
            with nogil:
                ce_dgemm_ref(nC[0], nC[1], M, N, K, alpha, <const double*>pa, sA[0], sA[1],
                             rsA, csA, <const double*>pb, sB[0], sB[1], rsB, csB, beta,
                             <double*>pc, sC[0], sC[1], rsC, csC,
                             <const double*>pbias, sbias)
        else:
            with nogil:
                ce_dgemm(nC[0], nC[1], M, N, K, alpha, <const double*>pa, sA[0], sA[1],
                         rsA, csA, <const double*>pb, sB[0], sB[1], rsB, csB, beta,
                         <double*>pc, sC[0], sC[1], rsC, csC,
                             <const double*>pbias, sbias)
    if c_user is not None:
        c_user[...] = c
    return C


def gemm(A, B, C, double alpha=1.0, double beta=0.0, bias=None):
    """C = alpha * A @ B + beta * C in place on the optimized kernels; returns C.

    A (..., M, K), B (..., K, N), C (..., M, N) with up to two batch dimensions, all float32 or
    all float64, any strides; missing or size-1 batch dimensions of A and B broadcast over C's.
    beta=0 ignores C's old contents. bias (N,), any stride: C += bias along the columns once,
    in the kernel's pass over C (Linear's bias without a separate pass)."""
    return _gemm_impl(A, B, C, alpha, beta, False, bias)


def gemm_ref(A, B, C, double alpha=1.0, double beta=0.0, bias=None):
    """Same contract as gemm, on the plain triple-loop reference (for tests)."""
    return _gemm_impl(A, B, C, alpha, beta, True, bias)


# ---- cache geometry and GEMM block sizes (src_c/cpu_cache.h, gemm.h) ----

cdef extern from "gemm.h" nogil:
    ctypedef struct ce_cache_info_t:
        int64_t size[3]
        int ways[3]
        int line[3]
        int shared[3]
        int source
    ctypedef struct ce_gemm_blocking_t:
        int64_t kc, mc, nc
    void ce_cpu_caches(ce_cache_info_t *ci)
    void ce_cpu_model(char *buf, int cap)
    int ce_cpu_signature(int *family, int *model, int *stepping)
    void ce_gemm_tile(int dtype, int isa, int *mr, int *nr)
    int CE_GEMM_PF_ROWS_AVX512
    int ce_gemm_derive_blocking(ce_gemm_blocking_t *out, const ce_cache_info_t *ci, int mr,
                                int nr, int elsize, int pf_rows)
    int ce_gemm_get_blocking(ce_gemm_blocking_t *out, int dtype, int isa)
    int ce_gemm_set_blocking(int dtype, int isa, int64_t kc, int64_t mc, int64_t nc)

CACHE_SOURCES = ("none", "sysfs", "cpuid", "family table", "user")
GEMM_BLOCKING_SOURCES = ("fixed", "caches", "set")
_GEMM_BLK_DTYPES = {"float32": 0, "float64": 1}


def cpu_caches():
    """The data caches of CPU 0 as {"L1": {...}, "L2": {...}, "L3": {...}, "source": str}; each
    level {"size": bytes, "ways": int (0 unknown), "line": bytes, "shared": logical CPUs per
    instance}, or None when the level was not found."""
    cdef ce_cache_info_t ci
    ce_cpu_caches(&ci)
    out = {}
    for L in range(3):
        out["L%d" % (L + 1)] = None if ci.size[L] <= 0 else {
            "size": int(ci.size[L]), "ways": int(ci.ways[L]), "line": int(ci.line[L]),
            "shared": int(ci.shared[L])}
    out["source"] = CACHE_SOURCES[ci.source]
    return out


def cpu_model():
    """The CPU's brand string from CPUID ('' where there is none)."""
    cdef char buf[64]
    ce_cpu_model(buf, 64)
    return buf.decode("ascii", "replace")


def cpu_signature():
    """(family, model, stepping) from CPUID leaf 1 (AMD EPYC Zen 4 Genoa: (25, 17, 1)), or None
    where CPUID is unavailable."""
    cdef int fam, mod, step
    if not ce_cpu_signature(&fam, &mod, &step):
        return None
    return fam, mod, step


def _gemm_blk_args(dtype, isa):
    dt = np.dtype(dtype).name
    if dt not in _GEMM_BLK_DTYPES:
        raise TypeError("gemm blocking: expected float32 or float64, got %s" % dt)
    if isa is None:
        isa = get_isa()
    if isa not in ISA_NAMES:
        raise ValueError("unknown ISA %r: expected one of %s" % (isa, ", ".join(ISA_NAMES)))
    return _GEMM_BLK_DTYPES[dt], ISA_NAMES.index(isa)


def gemm_tile(dtype="float32", isa=None):
    """(MR, NR): the register tile of the GEMM kernel for dtype on isa (default: in use)."""
    cdef int d, i, mr, nr
    d, i = _gemm_blk_args(dtype, isa)
    ce_gemm_tile(d, i, &mr, &nr)
    return mr, nr


def gemm_blocking(dtype="float32", isa=None):
    """{"kc", "mc", "nc", "mr", "nr", "source"} in use for dtype on isa (default: the ISA in
    use); source 'caches' (derived from the CPU's caches), 'fixed' (caches unknown) or 'set'
    (gemm_set_blocking, e.g. from the autotune file)."""
    cdef int d, i, mr, nr, src
    cdef ce_gemm_blocking_t b
    d, i = _gemm_blk_args(dtype, isa)
    src = ce_gemm_get_blocking(&b, d, i)
    ce_gemm_tile(d, i, &mr, &nr)
    return {"kc": int(b.kc), "mc": int(b.mc), "nc": int(b.nc), "mr": mr, "nr": nr,
            "source": GEMM_BLOCKING_SOURCES[src]}


def gemm_set_blocking(dtype, isa, kc, mc, nc):
    """Use block sizes kc/mc/nc for dtype on isa (rounded down to multiples of 8 / MR / NR);
    kc = mc = nc = 0 restores the default."""
    cdef int d, i, mr, nr
    d, i = _gemm_blk_args(dtype, isa)
    for name, v in (("kc", kc), ("mc", mc), ("nc", nc)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError("gemm_set_blocking: %s must be an int, got %s" % (name, type(v).__name__))
    if kc == 0 and mc == 0 and nc == 0:
        ce_gemm_set_blocking(d, i, 0, 0, 0)
        return
    ce_gemm_tile(d, i, &mr, &nr)
    if not (32 <= kc <= 2048 and mr <= mc <= 4096 and nr <= nc <= 8192):
        raise ValueError("gemm_set_blocking: need 32 <= kc <= 2048, %d <= mc <= 4096 and "
                         "%d <= nc <= 8192, got kc=%d mc=%d nc=%d" % (mr, nr, kc, mc, nc))
    if ce_gemm_set_blocking(d, i, kc, mc, nc) != 0:   # pragma: no cover - checked above
        raise ValueError("gemm_set_blocking: invalid block sizes")


def gemm_derive_blocking(caches, int mr, int nr, int itemsize, int pf_rows=0):
    """The analytical block sizes (kc, mc, nc) for an mr x nr kernel of itemsize-byte elements
    on the given caches (a dict shaped like cpu_caches()'s), or None when L1 or L2 is missing.
    pf_rows: how many rows ahead the kernel prefetches the streamed B panel (0: none; the
    AVX-512 kernels: gemm_prefetch_rows("avx512"))."""
    cdef ce_cache_info_t ci
    cdef ce_gemm_blocking_t b
    if mr <= 0 or nr <= 0 or itemsize <= 0 or pf_rows < 0:
        raise ValueError("gemm_derive_blocking: mr, nr and itemsize must be positive "
                         "(pf_rows >= 0)")
    ci.source = 4
    for L in range(3):
        lv = caches.get("L%d" % (L + 1))
        if lv is None:
            ci.size[L] = 0; ci.ways[L] = 0; ci.line[L] = 64; ci.shared[L] = 1
            continue
        ci.size[L] = int(lv["size"])
        ci.ways[L] = int(lv.get("ways", 0))
        ci.line[L] = int(lv.get("line", 64))
        ci.shared[L] = int(lv.get("shared", 1))
        if ci.size[L] < 0 or ci.ways[L] < 0 or ci.line[L] <= 0 or ci.shared[L] <= 0:
            raise ValueError("gemm_derive_blocking: invalid L%d geometry %r" % (L + 1, lv))
    if not ce_gemm_derive_blocking(&b, &ci, mr, nr, itemsize, pf_rows):
        return None
    return int(b.kc), int(b.mc), int(b.nc)


def gemm_prefetch_rows(isa=None):
    """Rows ahead that the GEMM kernel of isa (default: the one in use) prefetches the streamed
    B panel: the pf_rows its default block sizes were derived with (0: no software prefetch)."""
    i = _gemm_blk_args("float32", isa)[1]
    return CE_GEMM_PF_ROWS_AVX512 if ISA_NAMES[i] == "avx512" else 0
