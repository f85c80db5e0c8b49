# amp.pxi - binding of GradScaler's fused unscale + non-finite check (src_c/amp.h).
#
#   amp_unscale(grads, inv_scale, ref=False) -> bool
#       every array in grads (a list of writable, C-contiguous float32 or float64 numpy arrays,
#       one dtype per call) is multiplied by inv_scale in place, in one threaded C pass;
#       returns True when any element was NaN or +-inf before scaling.

cdef extern from "amp.h" nogil:
    int ce_amp_unscale_f32(float *const *g, const int64_t *n, int64_t count, float inv_scale)
    int ce_amp_unscale_f64(double *const *g, const int64_t *n, int64_t count, double inv_scale)
    int ce_amp_unscale_f32_ref(float *const *g, const int64_t *n, int64_t count, float inv_scale)
    int ce_amp_unscale_f64_ref(double *const *g, const int64_t *n, int64_t count, double inv_scale)


def amp_unscale(grads, inv_scale, ref=False):
    grads = list(grads)
    cdef int64_t count = len(grads), t
    if count == 0:
        return False
    dt = None
    for a in grads:
        if not isinstance(a, np.ndarray):
            raise TypeError("amp_unscale: expected numpy arrays, got %s" % type(a).__name__)
        if a.dtype != np.float32 and a.dtype != np.float64:
            raise TypeError("amp_unscale: expected float32 or float64 arrays, got %s" % a.dtype)
        if dt is None:
            dt = a.dtype
        elif a.dtype != dt:
            raise TypeError("amp_unscale: all arrays of one call must share a dtype (%s and %s)"
                            % (dt, a.dtype))
        if not (a.flags.c_contiguous and a.flags.aligned and a.flags.writeable):
            raise ValueError("amp_unscale: arrays must be writable, aligned and C-contiguous")
    ptrs = np.empty(count, np.uintp)
    sizes = np.empty(count, np.int64)
    for t in range(count):
        ptrs[t] = <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>grads[t])
        sizes[t] = cnp.PyArray_SIZE(<cnp.ndarray>grads[t])
    cdef void *pp = _ptr(ptrs)
    cdef const int64_t *pn = <const int64_t *>_ptr(sizes)
    cdef double inv = inv_scale
    cdef float invf = <float>inv_scale
    cdef int bad
    cdef bint r = ref, f32 = dt == np.float32
    with nogil:
        if f32:
            bad = ce_amp_unscale_f32_ref(<float *const *>pp, pn, count, invf) if r else \
                ce_amp_unscale_f32(<float *const *>pp, pn, count, invf)
        else:
            bad = ce_amp_unscale_f64_ref(<double *const *>pp, pn, count, inv) if r else \
                ce_amp_unscale_f64(<double *const *>pp, pn, count, inv)
    return bool(bad)
