# core.pxi - shared cimports and helpers for every binding file, plus CPU/thread control.
# Every other .pxi in this folder is included after this one into the single module
# cengine._C._cengine (see setup.py). Wrappers validate dtype/contiguity/shape in Python-facing
# code, then call C with the GIL released; C never sees an invalid input.
cimport numpy as cnp
import numpy as np
from libc.stdint cimport int64_t, int32_t, uint8_t, uintptr_t

cnp.import_array()

cdef extern from "cengine.h" nogil:
    ctypedef struct ce_cpu_features_t:
        int avx2, fma, avx512f, avx512bw, avx512vl, avx512dq, avx512bf16, f16c
    void ce_cpu_features(ce_cpu_features_t *f)
    int ce_cpu_max_isa()
    void ce_cpu_init()
    int ce_set_isa(int level)
    int ce_get_isa()
    void ce_set_num_threads(int n)
    int ce_get_num_threads()
    int ce_openmp_enabled()
    int ce_tune_malloc(long mmap_threshold, long trim_threshold)

ISA_NAMES = ("generic", "avx2", "avx512")

ce_cpu_init()


cdef inline void* _ptr(object a):
    """Data pointer of a numpy array (caller has checked dtype/contiguity)."""
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline int64_t _n(object a):
    return <int64_t>cnp.PyArray_SIZE(<cnp.ndarray>a)


cdef inline bint _is_c(object a):
    return cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)


cdef inline object _al(object a):
    """`a` itself, unless it is a C-contiguous ndarray whose data is not aligned to its dtype
    (e.g. a float32 view starting at an odd byte of a uint8 buffer): then an aligned copy. The C
    kernels access elements through typed pointers, and a misaligned one is undefined behaviour,
    so every binding passes its inputs through this (once) and its outputs through _al/_al_back.
    Anything else (None, non-arrays, non-contiguous arrays) is returned unchanged for the
    binding's own validation to accept or reject."""
    if isinstance(a, cnp.ndarray) and not cnp.PyArray_ISALIGNED(<cnp.ndarray>a) and \
            cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        return np.array(a, copy=True, order="C")
    return a


cdef inline object _al_back(object user, object used):
    """The output to return when the kernel wrote `used` = _al(user): `used` itself, or `user`
    after copying the result back into it (user was misaligned)."""
    if user is None or used is None or user is used:
        return used
    user[...] = used
    return user


def _check_c(name, a, dtype):
    """Raise unless `a` is a C-contiguous ndarray of `dtype` (bindings call this before C)."""
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(a).__name__))
    if a.dtype != dtype:
        raise TypeError("%s: expected dtype %s, got %s" % (name, np.dtype(dtype), a.dtype))
    if not a.flags.c_contiguous:
        raise ValueError("%s: expected a C-contiguous array" % name)


def cpu_features():
    cdef ce_cpu_features_t f
    ce_cpu_features(&f)
    return {"avx2": bool(f.avx2), "fma": bool(f.fma), "avx512f": bool(f.avx512f),
            "avx512bw": bool(f.avx512bw), "avx512vl": bool(f.avx512vl),
            "avx512dq": bool(f.avx512dq), "avx512_bf16": bool(f.avx512bf16),
            "f16c": bool(f.f16c)}


def max_isa():
    return ISA_NAMES[ce_cpu_max_isa()]


def get_isa():
    return ISA_NAMES[ce_get_isa()]


def set_isa(name):
    """Force a kernel path: 'generic', 'avx2' or 'avx512' (never above what the CPU has)."""
    if name not in ISA_NAMES:
        raise ValueError("unknown ISA %r: expected one of %s" % (name, ", ".join(ISA_NAMES)))
    if ce_set_isa(ISA_NAMES.index(name)) != 0:
        raise RuntimeError("ISA %r is not supported by this CPU (best available: %s)"
                           % (name, max_isa()))


def set_num_threads(int n):
    ce_set_num_threads(n)


def get_num_threads():
    return ce_get_num_threads()


def tune_malloc(long mmap_threshold, long trim_threshold):
    """glibc mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD); True if applied."""
    for name, v in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if v <= 0 or v > 2147483647:
            raise ValueError("%s must be in [1, 2**31 - 1] bytes, got %d" % (name, v))
    return bool(ce_tune_malloc(mmap_threshold, trim_threshold))


def openmp_enabled():
    return bool(ce_openmp_enabled())
