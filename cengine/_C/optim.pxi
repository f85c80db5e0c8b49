# optim.pxi - bindings for the fused multi-tensor optimizer updates and gradient norms (optim.h).
# Each *_step takes Python lists of numpy arrays (one entry per parameter of a group: parameter,
# gradient, state buffers), all C-contiguous and of one dtype (float32 or float64), builds the
# pointer arrays once and makes ONE C call with the GIL released. reference=True runs the plain
# single-threaded *_ref kernel instead (tests compare the two).
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport uint16_t
from libc.string cimport memset
from libc.stdlib cimport qsort

cdef extern from "optim.h" nogil:
    void ce_sgd_step_f32(float **params, float **bufs, const float **grads, const uint8_t *first,
                         const int64_t *sizes, int64_t ntensors, double lr, double momentum,
                         double dampening, double weight_decay, int nesterov, int maximize)
    void ce_sgd_step_f64(double **params, double **bufs, const double **grads,
                         const uint8_t *first, const int64_t *sizes, int64_t ntensors, double lr,
                         double momentum, double dampening, double weight_decay, int nesterov,
                         int maximize)
    void ce_sgd_step_f32_ref(float **params, float **bufs, const float **grads,
                             const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                             double lr, double momentum, double dampening, double weight_decay,
                             int nesterov, int maximize)
    void ce_sgd_step_f64_ref(double **params, double **bufs, const double **grads,
                             const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                             double lr, double momentum, double dampening, double weight_decay,
                             int nesterov, int maximize)
    void ce_adagrad_step_f32(float **params, float **sums, const float **grads,
                             const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                             double lr, double lr_decay, double weight_decay, double eps,
                             int maximize)
    void ce_adagrad_step_f64(double **params, double **sums, const double **grads,
                             const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                             double lr, double lr_decay, double weight_decay, double eps,
                             int maximize)
    void ce_adagrad_step_f32_ref(float **params, float **sums, const float **grads,
                                 const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                                 double lr, double lr_decay, double weight_decay, double eps,
                                 int maximize)
    void ce_adagrad_step_f64_ref(double **params, double **sums, const double **grads,
                                 const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                                 double lr, double lr_decay, double weight_decay, double eps,
                                 int maximize)
    void ce_rmsprop_step_f32(float **params, float **square_avgs, float **grad_avgs,
                             float **bufs, const float **grads, const int64_t *sizes,
                             int64_t ntensors, double lr, double alpha, double eps,
                             double weight_decay, double momentum, int centered, int maximize)
    void ce_rmsprop_step_f64(double **params, double **square_avgs, double **grad_avgs,
                             double **bufs, const double **grads, const int64_t *sizes,
                             int64_t ntensors, double lr, double alpha, double eps,
                             double weight_decay, double momentum, int centered, int maximize)
    void ce_rmsprop_step_f32_ref(float **params, float **square_avgs, float **grad_avgs,
                                 float **bufs, const float **grads, const int64_t *sizes,
                                 int64_t ntensors, double lr, double alpha, double eps,
                                 double weight_decay, double momentum, int centered,
                                 int maximize)
    void ce_rmsprop_step_f64_ref(double **params, double **square_avgs, double **grad_avgs,
                                 double **bufs, const double **grads, const int64_t *sizes,
                                 int64_t ntensors, double lr, double alpha, double eps,
                                 double weight_decay, double momentum, int centered,
                                 int maximize)
    void ce_adam_step_f32(float **params, float **exp_avgs, float **exp_avg_sqs,
                          float **max_exp_avg_sqs, const float **grads, const int64_t *steps,
                          const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                          double beta2, double eps, double weight_decay, int amsgrad,
                          int maximize, int decoupled)
    void ce_adam_step_f64(double **params, double **exp_avgs, double **exp_avg_sqs,
                          double **max_exp_avg_sqs, const double **grads, const int64_t *steps,
                          const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                          double beta2, double eps, double weight_decay, int amsgrad,
                          int maximize, int decoupled)
    void ce_adam_step_f32_ref(float **params, float **exp_avgs, float **exp_avg_sqs,
                              float **max_exp_avg_sqs, const float **grads, const int64_t *steps,
                              const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                              double beta2, double eps, double weight_decay, int amsgrad,
                              int maximize, int decoupled)
    void ce_sgd_step_f32_lowp(float **params, float **bufs, const float **grads,
                              const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                              double lr, double momentum, double dampening, double weight_decay,
                              int nesterov, int maximize, uint16_t **lowp, int lowp_f16)
    void ce_sgd_step_f32_lowp_ref(float **params, float **bufs, const float **grads,
                                  const uint8_t *first, const int64_t *sizes, int64_t ntensors,
                                  double lr, double momentum, double dampening,
                                  double weight_decay, int nesterov, int maximize,
                                  uint16_t **lowp, int lowp_f16)
    void ce_adam_step_f32_lowp(float **params, float **exp_avgs, float **exp_avg_sqs,
                               float **max_exp_avg_sqs, const float **grads,
                               const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                               double lr, double beta1, double beta2, double eps,
                               double weight_decay, int amsgrad, int maximize, int decoupled,
                               uint16_t **lowp, int lowp_f16)
    void ce_adam_step_f32_lowp_ref(float **params, float **exp_avgs, float **exp_avg_sqs,
                                   float **max_exp_avg_sqs, const float **grads,
                                   const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                                   double lr, double beta1, double beta2, double eps,
                                   double weight_decay, int amsgrad, int maximize,
                                   int decoupled, uint16_t **lowp, int lowp_f16)
    void ce_adam_step_f64_ref(double **params, double **exp_avgs, double **exp_avg_sqs,
                              double **max_exp_avg_sqs, const double **grads,
                              const int64_t *steps, const int64_t *sizes, int64_t ntensors,
                              double lr, double beta1, double beta2, double eps,
                              double weight_decay, int amsgrad, int maximize, int decoupled)
    void ce_adadelta_step_f32(float **params, float **square_avgs, float **acc_deltas,
                              const float **grads, const int64_t *sizes, int64_t ntensors,
                              double lr, double rho, double eps, double weight_decay, int maximize)
    void ce_adadelta_step_f64(double **params, double **square_avgs, double **acc_deltas,
                              const double **grads, const int64_t *sizes, int64_t ntensors,
                              double lr, double rho, double eps, double weight_decay, int maximize)
    void ce_adadelta_step_f32_ref(float **params, float **square_avgs, float **acc_deltas,
                                  const float **grads, const int64_t *sizes, int64_t ntensors,
                                  double lr, double rho, double eps, double weight_decay,
                                  int maximize)
    void ce_adadelta_step_f64_ref(double **params, double **square_avgs, double **acc_deltas,
                                  const double **grads, const int64_t *sizes, int64_t ntensors,
                                  double lr, double rho, double eps, double weight_decay,
                                  int maximize)
    void ce_adamax_step_f32(float **params, float **exp_avgs, float **exp_infs, const float **grads,
                            const int64_t *steps, const int64_t *sizes, int64_t ntensors, double lr,
                            double beta1, double beta2, double eps, double weight_decay,
                            int maximize)
    void ce_adamax_step_f64(double **params, double **exp_avgs, double **exp_infs,
                            const double **grads, const int64_t *steps, const int64_t *sizes,
                            int64_t ntensors, double lr, double beta1, double beta2, double eps,
                            double weight_decay, int maximize)
    void ce_adamax_step_f32_ref(float **params, float **exp_avgs, float **exp_infs,
                                const float **grads, const int64_t *steps, const int64_t *sizes,
                                int64_t ntensors, double lr, double beta1, double beta2, double eps,
                                double weight_decay, int maximize)
    void ce_adamax_step_f64_ref(double **params, double **exp_avgs, double **exp_infs,
                                const double **grads, const int64_t *steps, const int64_t *sizes,
                                int64_t ntensors, double lr, double beta1, double beta2, double eps,
                                double weight_decay, int maximize)
    void ce_nadam_step_f32(float **params, float **exp_avgs, float **exp_avg_sqs,
                           const float **grads, const int64_t *steps, const double *mu_products,
                           const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                           double beta2, double eps, double weight_decay, double momentum_decay,
                           int decoupled, int maximize)
    void ce_nadam_step_f64(double **params, double **exp_avgs, double **exp_avg_sqs,
                           const double **grads, const int64_t *steps, const double *mu_products,
                           const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                           double beta2, double eps, double weight_decay, double momentum_decay,
                           int decoupled, int maximize)
    void ce_nadam_step_f32_ref(float **params, float **exp_avgs, float **exp_avg_sqs,
                               const float **grads, const int64_t *steps, const double *mu_products,
                               const int64_t *sizes, int64_t ntensors, double lr, double beta1,
                               double beta2, double eps, double weight_decay, double momentum_decay,
                               int decoupled, int maximize)
    void ce_nadam_step_f64_ref(double **params, double **exp_avgs, double **exp_avg_sqs,
                               const double **grads, const int64_t *steps,
                               const double *mu_products, const int64_t *sizes, int64_t ntensors,
                               double lr, double beta1, double beta2, double eps,
                               double weight_decay, double momentum_decay, int decoupled,
                               int maximize)
    void ce_radam_step_f32(float **params, float **exp_avgs, float **exp_avg_sqs,
                           const float **grads, const int64_t *steps, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled, int maximize)
    void ce_radam_step_f64(double **params, double **exp_avgs, double **exp_avg_sqs,
                           const double **grads, const int64_t *steps, const int64_t *sizes,
                           int64_t ntensors, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled, int maximize)
    void ce_radam_step_f32_ref(float **params, float **exp_avgs, float **exp_avg_sqs,
                               const float **grads, const int64_t *steps, const int64_t *sizes,
                               int64_t ntensors, double lr, double beta1, double beta2, double eps,
                               double weight_decay, int decoupled, int maximize)
    void ce_radam_step_f64_ref(double **params, double **exp_avgs, double **exp_avg_sqs,
                               const double **grads, const int64_t *steps, const int64_t *sizes,
                               int64_t ntensors, double lr, double beta1, double beta2, double eps,
                               double weight_decay, int decoupled, int maximize)
    void ce_sumsq_multi_f32(double *out, const float **xs, const int64_t *sizes, int64_t n)
    void ce_sumsq_multi_f64(double *out, const double **xs, const int64_t *sizes, int64_t n)
    void ce_sumsq_multi_f32_ref(double *out, const float **xs, const int64_t *sizes, int64_t n)
    void ce_sumsq_multi_f64_ref(double *out, const double **xs, const int64_t *sizes, int64_t n)
    void ce_absmax_multi_f32(double *out, const float **xs, const int64_t *sizes, int64_t n)
    void ce_absmax_multi_f64(double *out, const double **xs, const int64_t *sizes, int64_t n)
    void ce_absmax_multi_f32_ref(double *out, const float **xs, const int64_t *sizes, int64_t n)
    void ce_absmax_multi_f64_ref(double *out, const double **xs, const int64_t *sizes, int64_t n)
    void ce_scale_multi_f32(float **xs, const int64_t *sizes, int64_t n, double alpha)
    void ce_scale_multi_f64(double **xs, const int64_t *sizes, int64_t n, double alpha)


cdef class _OptimArgs:
    """Pointer tables for one multi-tensor call: `k` pointer rows of n entries, sizes, steps and
    flags, in one allocation freed with the object."""
    cdef void *mem
    cdef void **ptrs
    cdef int64_t *sizes
    cdef int64_t *steps
    cdef uint8_t *flags
    cdef Py_ssize_t n
    cdef int k
    cdef int typenum
    cdef list keep      # aligned copies of misaligned arrays (alive until the call is over)
    cdef list back      # (user array, aligned copy) pairs to copy back after the call

    def __cinit__(self, Py_ssize_t n, int k):
        self.n = n
        self.k = k
        cdef size_t nb = sizeof(void *) * k * n + sizeof(int64_t) * 2 * n + n + 8
        self.mem = PyMem_Malloc(nb if nb > 0 else 8)
        if self.mem == NULL:
            raise MemoryError()
        memset(self.mem, 0, nb if nb > 0 else 8)     # rows a call leaves unused read as NULL
        self.ptrs = <void **>self.mem
        self.sizes = <int64_t *>(self.ptrs + k * n)
        self.steps = self.sizes + n
        self.flags = <uint8_t *>(self.steps + n)

    def __dealloc__(self):
        PyMem_Free(self.mem)

    cdef inline void **row(self, int r) noexcept nogil:
        return self.ptrs + r * self.n

    cdef finish(self):
        """Copy the results of misaligned written arrays back from their aligned copies."""
        if self.back is not None:
            for user, used in self.back:
                user[...] = used


cdef str _optim_dtype_name(int typenum):
    return str(np.dtype(cnp.PyArray_TypeObjectFromType(typenum)))


cdef int _optim_fill(_OptimArgs A, int r, str fname, str what, object arrs,
                     bint writable) except -1:
    """Validate list `arrs` (n C-contiguous arrays of A.typenum; row 0 sets the sizes, later rows
    must match them) and store the data pointers in row r."""
    cdef Py_ssize_t i, n = A.n
    cdef cnp.ndarray a
    cdef void **row = A.row(r)
    if not isinstance(arrs, (list, tuple)):
        raise TypeError("%s: %s must be a list of numpy arrays, got %s"
                        % (fname, what, type(arrs).__name__))
    if len(arrs) != n:
        raise ValueError("%s: %s has %d arrays, expected %d (one per parameter)"
                         % (fname, what, len(arrs), n))
    for i in range(n):
        obj = arrs[i]
        if not isinstance(obj, cnp.ndarray):
            raise TypeError("%s: %s[%d] must be a numpy array, got %s"
                            % (fname, what, i, type(obj).__name__))
        a = <cnp.ndarray>obj
        if cnp.PyArray_TYPE(a) != A.typenum:
            raise TypeError("%s: %s[%d] has dtype %s, expected %s (one dtype per call)"
                            % (fname, what, i, a.dtype, _optim_dtype_name(A.typenum)))
        if not cnp.PyArray_IS_C_CONTIGUOUS(a):
            raise ValueError("%s: %s[%d] must be C-contiguous" % (fname, what, i))
        if writable and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError("%s: %s[%d] is read-only" % (fname, what, i))
        if r == 0:
            A.sizes[i] = <int64_t>cnp.PyArray_SIZE(a)
        elif <int64_t>cnp.PyArray_SIZE(a) != A.sizes[i]:
            raise ValueError("%s: %s[%d] has %d elements but params[%d] has %d"
                             % (fname, what, i, cnp.PyArray_SIZE(a), i, A.sizes[i]))
        if not cnp.PyArray_ISALIGNED(a):
            # a misaligned address is undefined behaviour for the typed C kernels: work on an
            # aligned copy (written arrays are copied back by A.finish())
            c = np.array(a, copy=True, order="C")
            if A.keep is None:
                A.keep = []
                A.back = []
            A.keep.append(c)
            if writable:
                A.back.append((a, c))
            a = <cnp.ndarray>c
        row[i] = cnp.PyArray_DATA(a)
    return 0


cdef _OptimArgs _optim_begin(str fname, object params, int k):
    """Pointer tables for `params` (row 0) and k-1 more rows; dtype taken from params[0]."""
    if not isinstance(params, (list, tuple)):
        raise TypeError("%s: params must be a list of numpy arrays, got %s"
                        % (fname, type(params).__name__))
    cdef Py_ssize_t n = len(params)
    cdef _OptimArgs A = _OptimArgs(n, k)
    if n == 0:
        A.typenum = cnp.NPY_FLOAT32
        return A
    p0 = params[0]
    if not isinstance(p0, cnp.ndarray):
        raise TypeError("%s: params[0] must be a numpy array, got %s" % (fname, type(p0).__name__))
    A.typenum = cnp.PyArray_TYPE(<cnp.ndarray>p0)
    if A.typenum != cnp.NPY_FLOAT32 and A.typenum != cnp.NPY_FLOAT64:
        raise TypeError("%s: parameters must be float32 or float64, got %s"
                        % (fname, (<cnp.ndarray>p0).dtype))
    _optim_fill(A, 0, fname, "params", params, True)
    return A


cdef int _optim_steps(_OptimArgs A, str fname, object steps) except -1:
    cdef Py_ssize_t i
    cdef int64_t s
    if not isinstance(steps, (list, tuple)) or len(steps) != A.n:
        raise ValueError("%s: steps must be a list of %d ints (one per parameter)" % (fname, A.n))
    for i in range(A.n):
        s = steps[i]
        if s < 1:
            raise ValueError("%s: steps[%d] = %d, expected >= 1" % (fname, i, s))
        A.steps[i] = s
    return 0


cdef struct _Iv:
    uintptr_t lo
    uintptr_t hi
    int low


cdef int _iv_cmp(const void *a, const void *b) noexcept nogil:
    cdef uintptr_t x = (<const _Iv *>a).lo, y = (<const _Iv *>b).lo
    return -1 if x < y else (1 if x > y else 0)


cdef class _LowpTable:
    """The uint16_t * table of a fused update's autocast copies (lowp=, see sgd_step): entry i
    the data of lowp[i] or NULL where lowp[i] is None."""
    cdef uint16_t **ptrs
    cdef list keep

    def __cinit__(self, Py_ssize_t n):
        self.ptrs = <uint16_t **>PyMem_Malloc(sizeof(uint16_t *) * (n if n > 0 else 1))
        if self.ptrs == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.ptrs)


cdef _LowpTable _optim_lowp(_OptimArgs A, str fname, object lowp, bint f16):
    """Validate lowp (None, or one entry per parameter: None or a writable aligned C-contiguous
    bfloat16 array - float16 with lowp_f16 - or uint16 bit patterns, as many elements as the
    parameter, overlapping none of the call's arrays); None when there is nothing to refresh."""
    if lowp is None:
        return None
    if A.typenum != cnp.NPY_FLOAT32:
        raise TypeError("%s: lowp (autocast copies) needs float32 parameters" % fname)
    if not isinstance(lowp, (list, tuple)) or len(lowp) != A.n:
        raise ValueError("%s: lowp must be a list of %d entries (an array or None per parameter)"
                         % (fname, A.n))
    want = "float16" if f16 else "bfloat16"
    cdef _LowpTable T = _LowpTable(A.n)
    cdef Py_ssize_t i
    cdef bint any_ = False
    T.keep = []
    for i in range(A.n):
        h = lowp[i]
        if h is None:
            T.ptrs[i] = NULL
            continue
        if not isinstance(h, np.ndarray) or h.dtype.itemsize != 2 or \
                h.dtype.name not in ("uint16", want):
            raise TypeError("%s: lowp[%d] must be a %s (or uint16) numpy array, got %s"
                            % (fname, i, want, getattr(h, "dtype", type(h).__name__)))
        if not h.flags.c_contiguous or not h.flags.aligned or not h.flags.writeable:
            raise ValueError("%s: lowp[%d] must be a writable aligned C-contiguous array"
                             % (fname, i))
        if h.size != A.sizes[i]:
            raise ValueError("%s: lowp[%d] has %d elements but params[%d] has %d"
                             % (fname, i, h.size, i, A.sizes[i]))
        T.keep.append(h)
        T.ptrs[i] = <uint16_t *>_ptr(h)
        any_ = True
    if not any_:
        return None
    # no copy may overlap an array of the call (every filled row) or another copy: the address
    # ranges sorted by start, then one sweep (a range overlaps an earlier one iff it starts
    # before the largest end so far), O(N log N) for groups of any size
    cdef Py_ssize_t r, j, m = 0, cap = A.n * (A.k + 1)
    cdef int64_t isz = 4 if A.typenum == cnp.NPY_FLOAT32 else 8
    cdef _Iv *iv = <_Iv *>PyMem_Malloc(sizeof(_Iv) * (cap if cap > 0 else 1))
    if iv == NULL:
        raise MemoryError()
    cdef uintptr_t end_low = 0, end_any = 0
    cdef bint bad = False
    try:
        for j in range(A.n):
            if A.sizes[j] == 0:
                continue
            for r in range(A.k):
                if A.row(r)[j] != NULL:
                    iv[m].lo = <uintptr_t>A.row(r)[j]
                    iv[m].hi = iv[m].lo + <uintptr_t>(isz * A.sizes[j])
                    iv[m].low = 0
                    m += 1
            if T.ptrs[j] != NULL:
                iv[m].lo = <uintptr_t>T.ptrs[j]
                iv[m].hi = iv[m].lo + 2 * <uintptr_t>A.sizes[j]
                iv[m].low = 1
                m += 1
        qsort(iv, m, sizeof(_Iv), _iv_cmp)
        for j in range(m):
            if (iv[j].low and end_any > iv[j].lo) or (not iv[j].low and end_low > iv[j].lo):
                bad = True
                break
            if iv[j].hi > end_any:
                end_any = iv[j].hi
            if iv[j].low and iv[j].hi > end_low:
                end_low = iv[j].hi
    finally:
        PyMem_Free(iv)
    if bad:
        raise ValueError("%s: a lowp array overlaps another array of the call" % fname)
    return T


def sgd_step(params, grads, momentum_buffers, first, double lr, double momentum=0.0,
             double dampening=0.0, double weight_decay=0.0, bint nesterov=False,
             bint maximize=False, bint reference=False, lowp=None, bint lowp_f16=False):
    """Fused SGD over one group (torch.optim.SGD formula). momentum_buffers: list (used when
    momentum != 0); first: list of bools, True where the buffer is new (it is set to the grad).
    lowp (float32 parameters): a list with, per parameter, None or a bfloat16 array (float16
    with lowp_f16) that receives the updated parameter rounded to that dtype in the same pass
    (the autocast copy of the next step, optim.h)."""
    cdef _OptimArgs A = _optim_begin("sgd_step", params, 3)
    cdef Py_ssize_t i, n = A.n
    cdef bint use_mom = momentum != 0.0
    if n == 0:
        return
    _optim_fill(A, 1, "sgd_step", "grads", grads, False)
    if use_mom:
        _optim_fill(A, 2, "sgd_step", "momentum_buffers", momentum_buffers, True)
        if not isinstance(first, (list, tuple)) or len(first) != n:
            raise ValueError("sgd_step: first must be a list of %d bools" % n)
        for i in range(n):
            A.flags[i] = 1 if first[i] else 0
    cdef float **pf = <float **>A.row(0)
    cdef double **pd = <double **>A.row(0)
    cdef int ne = nesterov, mx = maximize
    cdef uint8_t *fl = A.flags if use_mom else NULL
    cdef _LowpTable L = _optim_lowp(A, "sgd_step", lowp, lowp_f16)
    cdef uint16_t **lp = L.ptrs if L is not None else NULL
    cdef int lf = lowp_f16
    with nogil:
        if lp != NULL:
            if reference:
                ce_sgd_step_f32_lowp_ref(pf, <float **>A.row(2) if use_mom else NULL,
                                         <const float **>A.row(1), fl, A.sizes, n, lr, momentum,
                                         dampening, weight_decay, ne, mx, lp, lf)
            else:
                ce_sgd_step_f32_lowp(pf, <float **>A.row(2) if use_mom else NULL,
                                     <const float **>A.row(1), fl, A.sizes, n, lr, momentum,
                                     dampening, weight_decay, ne, mx, lp, lf)
        elif A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_sgd_step_f32_ref(pf, <float **>A.row(2) if use_mom else NULL,
                                    <const float **>A.row(1), fl, A.sizes, n, lr, momentum,
                                    dampening, weight_decay, ne, mx)
            else:
                ce_sgd_step_f32(pf, <float **>A.row(2) if use_mom else NULL,
                                <const float **>A.row(1), fl, A.sizes, n, lr, momentum,
                                dampening, weight_decay, ne, mx)
        else:
            if reference:
                ce_sgd_step_f64_ref(pd, <double **>A.row(2) if use_mom else NULL,
                                    <const double **>A.row(1), fl, A.sizes, n, lr, momentum,
                                    dampening, weight_decay, ne, mx)
            else:
                ce_sgd_step_f64(pd, <double **>A.row(2) if use_mom else NULL,
                                <const double **>A.row(1), fl, A.sizes, n, lr, momentum,
                                dampening, weight_decay, ne, mx)
    A.finish()


def adagrad_step(params, grads, state_sums, steps, double lr, double lr_decay=0.0,
                 double weight_decay=0.0, double eps=1e-10, bint maximize=False,
                 bint reference=False):
    """Fused Adagrad over one group (torch.optim.Adagrad formula); steps: list of step counts
    after this step's increment."""
    cdef _OptimArgs A = _optim_begin("adagrad_step", params, 3)
    cdef Py_ssize_t n = A.n
    if n == 0:
        return
    _optim_fill(A, 1, "adagrad_step", "grads", grads, False)
    _optim_fill(A, 2, "adagrad_step", "state_sums", state_sums, True)
    _optim_steps(A, "adagrad_step", steps)
    cdef int mx = maximize
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_adagrad_step_f32_ref(<float **>A.row(0), <float **>A.row(2),
                                        <const float **>A.row(1), A.steps, A.sizes, n, lr,
                                        lr_decay, weight_decay, eps, mx)
            else:
                ce_adagrad_step_f32(<float **>A.row(0), <float **>A.row(2),
                                    <const float **>A.row(1), A.steps, A.sizes, n, lr, lr_decay,
                                    weight_decay, eps, mx)
        else:
            if reference:
                ce_adagrad_step_f64_ref(<double **>A.row(0), <double **>A.row(2),
                                        <const double **>A.row(1), A.steps, A.sizes, n, lr,
                                        lr_decay, weight_decay, eps, mx)
            else:
                ce_adagrad_step_f64(<double **>A.row(0), <double **>A.row(2),
                                    <const double **>A.row(1), A.steps, A.sizes, n, lr,
                                    lr_decay, weight_decay, eps, mx)
    A.finish()


def rmsprop_step(params, grads, square_avgs, grad_avgs, momentum_buffers, double lr,
                 double alpha=0.99, double eps=1e-8, double weight_decay=0.0,
                 double momentum=0.0, bint centered=False, bint maximize=False,
                 bint reference=False):
    """Fused RMSprop over one group (torch.optim.RMSprop formula). grad_avgs is used when
    centered, momentum_buffers when momentum > 0 (otherwise pass None)."""
    cdef _OptimArgs A = _optim_begin("rmsprop_step", params, 5)
    cdef Py_ssize_t n = A.n
    cdef bint use_mom = momentum > 0.0
    if n == 0:
        return
    _optim_fill(A, 1, "rmsprop_step", "grads", grads, False)
    _optim_fill(A, 2, "rmsprop_step", "square_avgs", square_avgs, True)
    if centered:
        _optim_fill(A, 3, "rmsprop_step", "grad_avgs", grad_avgs, True)
    if use_mom:
        _optim_fill(A, 4, "rmsprop_step", "momentum_buffers", momentum_buffers, True)
    cdef int ce_ = centered, mx = maximize
    cdef void **ga = A.row(3) if centered else NULL
    cdef void **mb = A.row(4) if use_mom else NULL
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_rmsprop_step_f32_ref(<float **>A.row(0), <float **>A.row(2), <float **>ga,
                                        <float **>mb, <const float **>A.row(1), A.sizes, n, lr,
                                        alpha, eps, weight_decay, momentum, ce_, mx)
            else:
                ce_rmsprop_step_f32(<float **>A.row(0), <float **>A.row(2), <float **>ga,
                                    <float **>mb, <const float **>A.row(1), A.sizes, n, lr,
                                    alpha, eps, weight_decay, momentum, ce_, mx)
        else:
            if reference:
                ce_rmsprop_step_f64_ref(<double **>A.row(0), <double **>A.row(2), <double **>ga,
                                        <double **>mb, <const double **>A.row(1), A.sizes, n,
                                        lr, alpha, eps, weight_decay, momentum, ce_, mx)
            else:
                ce_rmsprop_step_f64(<double **>A.row(0), <double **>A.row(2), <double **>ga,
                                    <double **>mb, <const double **>A.row(1), A.sizes, n, lr,
                                    alpha, eps, weight_decay, momentum, ce_, mx)
    A.finish()


def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, double lr,
              double beta1=0.9, double beta2=0.999, double eps=1e-8, double weight_decay=0.0,
              bint amsgrad=False, bint maximize=False, bint decoupled=False,
              bint reference=False, lowp=None, bint lowp_f16=False):
    """Fused Adam (decoupled=False) / AdamW (decoupled=True) over one group (torch.optim
    formula). max_exp_avg_sqs is used when amsgrad (otherwise pass None); steps: list of step
    counts after this step's increment (bias corrections are computed from them in double).
    lowp, lowp_f16: the autocast copies refreshed in the same pass, as sgd_step's."""
    cdef _OptimArgs A = _optim_begin("adam_step", params, 5)
    cdef Py_ssize_t n = A.n
    if n == 0:
        return
    _optim_fill(A, 1, "adam_step", "grads", grads, False)
    _optim_fill(A, 2, "adam_step", "exp_avgs", exp_avgs, True)
    _optim_fill(A, 3, "adam_step", "exp_avg_sqs", exp_avg_sqs, True)
    if amsgrad:
        _optim_fill(A, 4, "adam_step", "max_exp_avg_sqs", max_exp_avg_sqs, True)
    _optim_steps(A, "adam_step", steps)
    cdef int am = amsgrad, mx = maximize, dc = decoupled
    cdef void **vm = A.row(4) if amsgrad else NULL
    cdef _LowpTable L = _optim_lowp(A, "adam_step", lowp, lowp_f16)
    cdef uint16_t **lp = L.ptrs if L is not None else NULL
    cdef int lf = lowp_f16
    with nogil:
        if lp != NULL:
            if reference:
                ce_adam_step_f32_lowp_ref(<float **>A.row(0), <float **>A.row(2),
                                          <float **>A.row(3), <float **>vm,
                                          <const float **>A.row(1), A.steps, A.sizes, n, lr,
                                          beta1, beta2, eps, weight_decay, am, mx, dc, lp, lf)
            else:
                ce_adam_step_f32_lowp(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                      <float **>vm, <const float **>A.row(1), A.steps, A.sizes,
                                      n, lr, beta1, beta2, eps, weight_decay, am, mx, dc, lp, lf)
        elif A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_adam_step_f32_ref(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                     <float **>vm, <const float **>A.row(1), A.steps, A.sizes,
                                     n, lr, beta1, beta2, eps, weight_decay, am, mx, dc)
            else:
                ce_adam_step_f32(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                 <float **>vm, <const float **>A.row(1), A.steps, A.sizes, n,
                                 lr, beta1, beta2, eps, weight_decay, am, mx, dc)
        else:
            if reference:
                ce_adam_step_f64_ref(<double **>A.row(0), <double **>A.row(2),
                                     <double **>A.row(3), <double **>vm,
                                     <const double **>A.row(1), A.steps, A.sizes, n, lr, beta1,
                                     beta2, eps, weight_decay, am, mx, dc)
            else:
                ce_adam_step_f64(<double **>A.row(0), <double **>A.row(2), <double **>A.row(3),
                                 <double **>vm, <const double **>A.row(1), A.steps, A.sizes, n,
                                 lr, beta1, beta2, eps, weight_decay, am, mx, dc)
    A.finish()


def adadelta_step(params, grads, square_avgs, acc_deltas, double lr, double rho=0.9,
                  double eps=1e-6, double weight_decay=0.0, bint maximize=False,
                  bint reference=False):
    """Fused Adadelta over one group (torch.optim.Adadelta formula)."""
    cdef _OptimArgs A = _optim_begin("adadelta_step", params, 4)
    cdef Py_ssize_t n = A.n
    if n == 0:
        return
    _optim_fill(A, 1, "adadelta_step", "grads", grads, False)
    _optim_fill(A, 2, "adadelta_step", "square_avgs", square_avgs, True)
    _optim_fill(A, 3, "adadelta_step", "acc_deltas", acc_deltas, True)
    cdef int mx = maximize
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_adadelta_step_f32_ref(<float **>A.row(0), <float **>A.row(2),
                                         <float **>A.row(3), <const float **>A.row(1), A.sizes,
                                         n, lr, rho, eps, weight_decay, mx)
            else:
                ce_adadelta_step_f32(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                     <const float **>A.row(1), A.sizes, n, lr, rho, eps,
                                     weight_decay, mx)
        else:
            if reference:
                ce_adadelta_step_f64_ref(<double **>A.row(0), <double **>A.row(2),
                                         <double **>A.row(3), <const double **>A.row(1),
                                         A.sizes, n, lr, rho, eps, weight_decay, mx)
            else:
                ce_adadelta_step_f64(<double **>A.row(0), <double **>A.row(2),
                                     <double **>A.row(3), <const double **>A.row(1), A.sizes, n,
                                     lr, rho, eps, weight_decay, mx)
    A.finish()


def adamax_step(params, grads, exp_avgs, exp_infs, steps, double lr, double beta1=0.9,
                double beta2=0.999, double eps=1e-8, double weight_decay=0.0,
                bint maximize=False, bint reference=False):
    """Fused Adamax over one group (torch.optim.Adamax formula); steps: list of step counts
    after this step's increment."""
    cdef _OptimArgs A = _optim_begin("adamax_step", params, 4)
    cdef Py_ssize_t n = A.n
    if n == 0:
        return
    _optim_fill(A, 1, "adamax_step", "grads", grads, False)
    _optim_fill(A, 2, "adamax_step", "exp_avgs", exp_avgs, True)
    _optim_fill(A, 3, "adamax_step", "exp_infs", exp_infs, True)
    _optim_steps(A, "adamax_step", steps)
    cdef int mx = maximize
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_adamax_step_f32_ref(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                       <const float **>A.row(1), A.steps, A.sizes, n, lr, beta1,
                                       beta2, eps, weight_decay, mx)
            else:
                ce_adamax_step_f32(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                   <const float **>A.row(1), A.steps, A.sizes, n, lr, beta1,
                                   beta2, eps, weight_decay, mx)
        else:
            if reference:
                ce_adamax_step_f64_ref(<double **>A.row(0), <double **>A.row(2),
                                       <double **>A.row(3), <const double **>A.row(1), A.steps,
                                       A.sizes, n, lr, beta1, beta2, eps, weight_decay, mx)
            else:
                ce_adamax_step_f64(<double **>A.row(0), <double **>A.row(2), <double **>A.row(3),
                                   <const double **>A.row(1), A.steps, A.sizes, n, lr, beta1,
                                   beta2, eps, weight_decay, mx)
    A.finish()


def nadam_step(params, grads, exp_avgs, exp_avg_sqs, steps, mu_products, double lr,
               double beta1=0.9, double beta2=0.999, double eps=1e-8, double weight_decay=0.0,
               double momentum_decay=4e-3, bint decoupled=False, bint maximize=False,
               bint reference=False):
    """Fused NAdam over one group (torch.optim.NAdam formula); steps: list of step counts after
    this step's increment; mu_products: list of floats, each parameter's mu_product after this
    step's factor (the caller keeps that state)."""
    cdef _OptimArgs A = _optim_begin("nadam_step", params, 4)
    cdef Py_ssize_t n = A.n
    if n == 0:
        return
    _optim_fill(A, 1, "nadam_step", "grads", grads, False)
    _optim_fill(A, 2, "nadam_step", "exp_avgs", exp_avgs, True)
    _optim_fill(A, 3, "nadam_step", "exp_avg_sqs", exp_avg_sqs, True)
    _optim_steps(A, "nadam_step", steps)
    if not isinstance(mu_products, (list, tuple)) or len(mu_products) != n:
        raise ValueError("nadam_step: mu_products must be a list of %d floats (one per parameter)"
                         % n)
    cdef cnp.ndarray mus = np.array(mu_products, dtype=np.float64)
    cdef const double *mp = <const double *>cnp.PyArray_DATA(mus)
    cdef int dc = decoupled, mx = maximize
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_nadam_step_f32_ref(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                      <const float **>A.row(1), A.steps, mp, A.sizes, n, lr,
                                      beta1, beta2, eps, weight_decay, momentum_decay, dc, mx)
            else:
                ce_nadam_step_f32(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                  <const float **>A.row(1), A.steps, mp, A.sizes, n, lr, beta1,
                                  beta2, eps, weight_decay, momentum_decay, dc, mx)
        else:
            if reference:
                ce_nadam_step_f64_ref(<double **>A.row(0), <double **>A.row(2),
                                      <double **>A.row(3), <const double **>A.row(1), A.steps,
                                      mp, A.sizes, n, lr, beta1, beta2, eps, weight_decay,
                                      momentum_decay, dc, mx)
            else:
                ce_nadam_step_f64(<double **>A.row(0), <double **>A.row(2), <double **>A.row(3),
                                  <const double **>A.row(1), A.steps, mp, A.sizes, n, lr, beta1,
                                  beta2, eps, weight_decay, momentum_decay, dc, mx)
    A.finish()


def radam_step(params, grads, exp_avgs, exp_avg_sqs, steps, double lr, double beta1=0.9,
               double beta2=0.999, double eps=1e-8, double weight_decay=0.0,
               bint decoupled=False, bint maximize=False, bint reference=False):
    """Fused RAdam over one group (torch.optim.RAdam formula); steps: list of step counts after
    this step's increment (the rectification is decided per parameter from its step)."""
    cdef _OptimArgs A = _optim_begin("radam_step", params, 4)
    cdef Py_ssize_t n = A.n
    if n == 0:
        return
    _optim_fill(A, 1, "radam_step", "grads", grads, False)
    _optim_fill(A, 2, "radam_step", "exp_avgs", exp_avgs, True)
    _optim_fill(A, 3, "radam_step", "exp_avg_sqs", exp_avg_sqs, True)
    _optim_steps(A, "radam_step", steps)
    cdef int dc = decoupled, mx = maximize
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_radam_step_f32_ref(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                      <const float **>A.row(1), A.steps, A.sizes, n, lr, beta1,
                                      beta2, eps, weight_decay, dc, mx)
            else:
                ce_radam_step_f32(<float **>A.row(0), <float **>A.row(2), <float **>A.row(3),
                                  <const float **>A.row(1), A.steps, A.sizes, n, lr, beta1,
                                  beta2, eps, weight_decay, dc, mx)
        else:
            if reference:
                ce_radam_step_f64_ref(<double **>A.row(0), <double **>A.row(2),
                                      <double **>A.row(3), <const double **>A.row(1), A.steps,
                                      A.sizes, n, lr, beta1, beta2, eps, weight_decay, dc, mx)
            else:
                ce_radam_step_f64(<double **>A.row(0), <double **>A.row(2), <double **>A.row(3),
                                  <const double **>A.row(1), A.steps, A.sizes, n, lr, beta1,
                                  beta2, eps, weight_decay, dc, mx)
    A.finish()


cdef _OptimArgs _optim_begin_ro(str fname, object xs):
    """Like _optim_begin for read-only inputs (the norm reductions)."""
    if not isinstance(xs, (list, tuple)):
        raise TypeError("%s: expected a list of numpy arrays, got %s" % (fname, type(xs).__name__))
    cdef _OptimArgs A = _OptimArgs(len(xs), 1)
    A.typenum = cnp.NPY_FLOAT32
    if A.n == 0:
        return A
    x0 = xs[0]
    if not isinstance(x0, cnp.ndarray):
        raise TypeError("%s: xs[0] must be a numpy array, got %s" % (fname, type(x0).__name__))
    A.typenum = cnp.PyArray_TYPE(<cnp.ndarray>x0)
    if A.typenum != cnp.NPY_FLOAT32 and A.typenum != cnp.NPY_FLOAT64:
        raise TypeError("%s: arrays must be float32 or float64, got %s"
                        % (fname, (<cnp.ndarray>x0).dtype))
    _optim_fill(A, 0, fname, "xs", xs, False)
    return A


def multi_sumsq(xs, bint reference=False):
    """Sum of squares over all arrays of the list (one dtype), accumulated in double in fixed
    blocks (the same result for any thread count). Returns a Python float."""
    cdef _OptimArgs A = _optim_begin_ro("multi_sumsq", xs)
    cdef double out = 0.0
    if A.n == 0:
        return 0.0
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_sumsq_multi_f32_ref(&out, <const float **>A.row(0), A.sizes, A.n)
            else:
                ce_sumsq_multi_f32(&out, <const float **>A.row(0), A.sizes, A.n)
        else:
            if reference:
                ce_sumsq_multi_f64_ref(&out, <const double **>A.row(0), A.sizes, A.n)
            else:
                ce_sumsq_multi_f64(&out, <const double **>A.row(0), A.sizes, A.n)
    return out


def multi_absmax(xs, bint reference=False):
    """max |x| over all arrays of the list (one dtype); nan if any element is NaN."""
    cdef _OptimArgs A = _optim_begin_ro("multi_absmax", xs)
    cdef double out = 0.0
    if A.n == 0:
        return 0.0
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            if reference:
                ce_absmax_multi_f32_ref(&out, <const float **>A.row(0), A.sizes, A.n)
            else:
                ce_absmax_multi_f32(&out, <const float **>A.row(0), A.sizes, A.n)
        else:
            if reference:
                ce_absmax_multi_f64_ref(&out, <const double **>A.row(0), A.sizes, A.n)
            else:
                ce_absmax_multi_f64(&out, <const double **>A.row(0), A.sizes, A.n)
    return out


def multi_scale_(xs, double alpha):
    """x *= alpha in place for every array of the list (one dtype); alpha is rounded to it."""
    cdef _OptimArgs A = _optim_begin("multi_scale_", xs, 1)
    if A.n == 0:
        return
    with nogil:
        if A.typenum == cnp.NPY_FLOAT32:
            ce_scale_multi_f32(<float **>A.row(0), A.sizes, A.n, alpha)
        else:
            ce_scale_multi_f64(<double **>A.row(0), A.sizes, A.n, alpha)
    A.finish()
