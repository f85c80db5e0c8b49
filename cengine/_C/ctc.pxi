# ctc.pxi - bindings of the CTC kernels (src_c/ctc.h): the CTC loss forward/backward and the
# CTC prefix beam search.
#
#   ctc_loss_forward(lp, tgt, off, il, tl, blank, ref=False) -> (nll, alpha)
#       lp (T,N,C) float32/float64 C-contiguous; tgt int64 flat labels, sequence n's at
#       tgt[off[n]:off[n]+tl[n]]; il, tl, off int64 (N,). nll (N,) (+inf: no alignment),
#       alpha (N,T,W) (saved for the backward)
#   ctc_loss_backward(lp, alpha, nll, g, tgt, off, il, tl, blank, zero_infinity, out=None,
#       ref=False) -> dlp (T,N,C): out (zeros when None) += g[n] * d nll_n / d lp (torch's form)
#   ctc_beam_search(lp, sl, beam_width, blank, cutoff_top_n, cutoff_prob, nthreads, ref=False)
#       -> (labels (N,B,T) int32, scores (N,B) float32, starts (N,B,T) int32, lens (N,B) int32)
#       lp (N,T,C) float32 log-probabilities, sl int64 (N,) frames per utterance
# Everything is validated here (shapes, dtypes, lengths within the arrays, labels in range and
# != blank) before C runs; the C code trusts these checks.

cdef extern from "ctc.h" nogil:
    int64_t ce_ctc_alpha_width(int64_t max_target_len)
    int ce_ctc_loss_fwd_f32(float *nll, float *alpha, const float *lp, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank)
    int ce_ctc_loss_fwd_f64(double *nll, double *alpha, const double *lp, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank)
    int ce_ctc_loss_fwd_f32_ref(float *nll, float *alpha, const float *lp, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank)
    int ce_ctc_loss_fwd_f64_ref(double *nll, double *alpha, const double *lp, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank)
    int ce_ctc_loss_bwd_f32(float *dlp, const float *lp, const float *alpha, const float *nll, const float *g, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank, int zero_infinity)
    int ce_ctc_loss_bwd_f64(double *dlp, const double *lp, const double *alpha, const double *nll, const double *g, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank, int zero_infinity)
    int ce_ctc_loss_bwd_f32_ref(float *dlp, const float *lp, const float *alpha, const float *nll, const float *g, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank, int zero_infinity)
    int ce_ctc_loss_bwd_f64_ref(double *dlp, const double *lp, const double *alpha, const double *nll, const double *g, const int64_t *tgt, const int64_t *off, const int64_t *il, const int64_t *tl, int64_t T, int64_t N, int64_t C, int64_t W, int64_t blank, int zero_infinity)
    int ce_ctc_beam_search(int32_t *labels, float *scores, int32_t *starts, int32_t *lens, const float *lp, const int64_t *sl, int64_t N, int64_t T, int64_t C, int64_t B, int64_t blank, int64_t cutoff_top_n, double cutoff_prob, int nthreads)
    int ce_ctc_beam_search_ref(int32_t *labels, float *scores, int32_t *starts, int32_t *lens, const float *lp, const int64_t *sl, int64_t N, int64_t T, int64_t C, int64_t B, int64_t blank, int64_t cutoff_top_n, double cutoff_prob)


cdef _ctc_check_args(lp, tgt, off, il, tl, int64_t blank):
    if not isinstance(lp, np.ndarray) or lp.dtype not in (np.float32, np.float64):
        raise TypeError("ctc_loss: log_probs must be a float32 or float64 array")
    if not _is_c(lp):
        raise ValueError("ctc_loss: log_probs must be C-contiguous")
    if lp.ndim != 3:
        raise ValueError("ctc_loss: expected log_probs of shape (T, N, C), got %s" % (lp.shape,))
    T, N, C = lp.shape
    for name, a in (("targets", tgt), ("offsets", off), ("input_lengths", il),
                    ("target_lengths", tl)):
        _ce_check_int64(name, a)
        if a.ndim != 1:
            raise ValueError("ctc_loss: %s must be 1-D" % name)
    for name, a in (("offsets", off), ("input_lengths", il), ("target_lengths", tl)):
        if a.shape[0] != N:
            raise ValueError("ctc_loss: %s must have %d entries, got %d" % (name, N, a.shape[0]))
    if not (0 <= blank < C):
        raise RuntimeError("blank must be in label range")
    if N:
        if il.min() < 0 or il.max() > T:
            raise RuntimeError("ctc_loss: input lengths must be in [0, %d]" % T)
        if tl.min() < 0 or off.min() < 0 or (off + tl).max() > tgt.shape[0]:
            raise RuntimeError("ctc_loss: target lengths/offsets run past the targets")
    if tgt.shape[0]:
        if tgt.min() < 0 or tgt.max() >= C:
            raise RuntimeError("ctc_loss: target labels must be in [0, %d)" % C)
        if (tgt == blank).any():
            raise RuntimeError("ctc_loss: target labels must differ from blank (%d)" % blank)
    return T, N, C


def ctc_loss_forward(lp, tgt, off, il, tl, blank, ref=False):
    T_, N_, C_ = _ctc_check_args(lp, tgt, off, il, tl, blank)
    cdef int64_t T = T_, N = N_, C = C_, bl = blank
    cdef int64_t Lmax = int(tl.max()) if N else 0
    cdef int64_t W = ce_ctc_alpha_width(Lmax)
    nll = np.empty(N, dtype=lp.dtype)
    alpha = np.empty((N, T, W), dtype=lp.dtype)
    cdef void *pn = _ptr(nll)
    cdef void *pa = _ptr(alpha)
    cdef void *pl = _ptr(lp)
    cdef const int64_t *pt = <const int64_t*>_ptr(tgt)
    cdef const int64_t *po = <const int64_t*>_ptr(off)
    cdef const int64_t *pi = <const int64_t*>_ptr(il)
    cdef const int64_t *ptl = <const int64_t*>_ptr(tl)
    cdef bint f32 = lp.dtype == np.float32
    cdef bint r = ref
    cdef int rc = 0
    with nogil:
        if f32:
            if r:
                rc = ce_ctc_loss_fwd_f32_ref(<float*>pn, <float*>pa, <const float*>pl, pt, po, pi, ptl, T, N, C, W, bl)
            else:
                rc = ce_ctc_loss_fwd_f32(<float*>pn, <float*>pa, <const float*>pl, pt, po, pi, ptl, T, N, C, W, bl)
        else:
            if r:
                rc = ce_ctc_loss_fwd_f64_ref(<double*>pn, <double*>pa, <const double*>pl, pt, po, pi, ptl, T, N, C, W, bl)
            else:
                rc = ce_ctc_loss_fwd_f64(<double*>pn, <double*>pa, <const double*>pl, pt, po, pi, ptl, T, N, C, W, bl)
    if rc != 0:
        raise MemoryError("ctc_loss: out of memory")
    return nll, alpha


def ctc_loss_backward(lp, alpha, nll, g, tgt, off, il, tl, blank, zero_infinity, out=None,
                      ref=False):
    T_, N_, C_ = _ctc_check_args(lp, tgt, off, il, tl, blank)
    cdef int64_t T = T_, N = N_, C = C_, bl = blank
    cdef int64_t Lmax = int(tl.max()) if N else 0
    cdef int64_t W = ce_ctc_alpha_width(Lmax)
    _check_c("alpha", alpha, lp.dtype)
    if alpha.shape != (N, T, W):
        raise ValueError("ctc_loss_backward: alpha must have shape %s" % ((N, T, W),))
    _check_c("nll", nll, lp.dtype)
    _check_c("grad", g, lp.dtype)
    if nll.shape != (N,) or g.shape != (N,):
        raise ValueError("ctc_loss_backward: nll and grad must have shape (%d,)" % N)
    if out is None:
        out = np.zeros_like(lp)
    else:
        _check_c("out", out, lp.dtype)
        if out.shape != lp.shape:
            raise ValueError("ctc_loss_backward: out must have shape %s" % (lp.shape,))
    cdef void *pd = _ptr(out)
    cdef void *pa = _ptr(alpha)
    cdef void *pn = _ptr(nll)
    cdef void *pg = _ptr(g)
    cdef void *pl = _ptr(lp)
    cdef const int64_t *pt = <const int64_t*>_ptr(tgt)
    cdef const int64_t *po = <const int64_t*>_ptr(off)
    cdef const int64_t *pi = <const int64_t*>_ptr(il)
    cdef const int64_t *ptl = <const int64_t*>_ptr(tl)
    cdef bint f32 = lp.dtype == np.float32
    cdef bint r = ref
    cdef int zi = 1 if zero_infinity else 0
    cdef int rc = 0
    with nogil:
        if f32:
            if r:
                rc = ce_ctc_loss_bwd_f32_ref(<float*>pd, <const float*>pl, <const float*>pa, <const float*>pn, <const float*>pg, pt, po, pi, ptl, T, N, C, W, bl, zi)
            else:
                rc = ce_ctc_loss_bwd_f32(<float*>pd, <const float*>pl, <const float*>pa, <const float*>pn, <const float*>pg, pt, po, pi, ptl, T, N, C, W, bl, zi)
        else:
            if r:
                rc = ce_ctc_loss_bwd_f64_ref(<double*>pd, <const double*>pl, <const double*>pa, <const double*>pn, <const double*>pg, pt, po, pi, ptl, T, N, C, W, bl, zi)
            else:
                rc = ce_ctc_loss_bwd_f64(<double*>pd, <const double*>pl, <const double*>pa, <const double*>pn, <const double*>pg, pt, po, pi, ptl, T, N, C, W, bl, zi)
    if rc != 0:
        raise MemoryError("ctc_loss: out of memory")
    return out


def ctc_beam_search(lp, sl, beam_width, blank, cutoff_top_n, cutoff_prob, nthreads, ref=False):
    _check_c("log_probs", lp, np.float32)
    if lp.ndim != 3:
        raise ValueError("ctc_beam_search: expected log_probs of shape (N, T, C), got %s"
                         % (lp.shape,))
    N_, T_, C_ = lp.shape
    _ce_check_int64("seq_lens", sl)
    if sl.shape != (N_,):
        raise ValueError("ctc_beam_search: seq_lens must have shape (%d,)" % N_)
    if N_ and (sl.min() < 0 or sl.max() > T_):
        raise ValueError("ctc_beam_search: seq_lens must be in [0, %d]" % T_)
    if beam_width < 1:
        raise ValueError("beam_width must be >= 1, got %d" % beam_width)
    if not (0 <= blank < C_):
        raise ValueError("blank_id %d is out of range for %d labels" % (blank, C_))
    if cutoff_top_n < 1:
        raise ValueError("cutoff_top_n must be >= 1, got %d" % cutoff_top_n)
    if not (0.0 < cutoff_prob <= 1.0):
        raise ValueError("cutoff_prob must be in (0, 1], got %r" % cutoff_prob)
    cdef int64_t N = N_, T = T_, C = C_, B = beam_width, bl = blank, top = cutoff_top_n
    cdef double cp = cutoff_prob
    cdef int nt = nthreads
    labels = np.zeros((N, B, T), dtype=np.int32)
    starts = np.zeros((N, B, T), dtype=np.int32)
    scores = np.empty((N, B), dtype=np.float32)
    lens = np.zeros((N, B), dtype=np.int32)
    cdef int32_t *pl = <int32_t*>_ptr(labels)
    cdef int32_t *ps = <int32_t*>_ptr(starts)
    cdef float *pc = <float*>_ptr(scores)
    cdef int32_t *pn = <int32_t*>_ptr(lens)
    cdef const float *px = <const float*>_ptr(lp)
    cdef const int64_t *pq = <const int64_t*>_ptr(sl)
    cdef bint r = ref
    cdef int rc = 0
    with nogil:
        if r:
            rc = ce_ctc_beam_search_ref(pl, pc, ps, pn, px, pq, N, T, C, B, bl, top, cp)
        else:
            rc = ce_ctc_beam_search(pl, pc, ps, pn, px, pq, N, T, C, B, bl, top, cp, nt)
    if rc != 0:
        raise MemoryError("ctc_beam_search: out of memory")
    return labels, scores, starts, lens
