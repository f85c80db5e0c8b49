# rnn.pxi - bindings of the recurrent cell kernels and sequence drivers (src_c/rnn.h).
#
#   RNN_MODES: ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"); RNN_GATES: gates per mode (1, 1, 4, 3)
#   rnn_cell_forward(mode, g, h, c=None, gh=None, hp=None, ref=False)
#       one step, n rows, hidden H: g (n, G*H) in: pre-activations, out: activations;
#       h (n, H) out; LSTM: c (n, H) in c_prev, out c; GRU: gh (n, 3H), hp (n, H) h_prev
#   rnn_cell_backward(mode, dg, dh, g, dh2=None, dc=None, cp=None, dgh=None, dhp=None, gh=None,
#                     hp=None, ref=False)
#       dg (n, G*H) out (overwritten) from dh (+ dh2) (n, H); LSTM: dc (n, H) in/out, cp (n, H);
#       GRU: dgh (n, 3H) out, dhp (n, H) out (may be dh), gh, hp
#   rnn_seq_forward(mode, G, GH, h, c, out, HP, CP, HU, WhhT, bhh, WhrT, batch_sizes, reverse)
#   rnn_seq_backward(mode, dG, dGH, dh, dc, DHR, work, dout, G, GH, HP, CP, Whh, Whr,
#                    batch_sizes, reverse)
#       one layer direction over all steps (contracts in rnn.h); arrays not used by the mode are
#       None; `out`/`dout` may be column blocks (unit column stride, any row stride) of wider
#       arrays, and so may WhhT (a padded row stride avoids 4 KiB aliasing); every other
#       array is C-contiguous. batch_sizes: int64 (T,), non-increasing,
#       positive, batch_sizes[0] = rows of h.
#   rnn_seq_forward_pair(mode, fwd, rev, batch_sizes), rnn_seq_backward_pair(mode, fwd, rev,
#                        batch_sizes): both directions of a bidirectional layer at once, one
#       thread each; fwd/rev: the array arguments of the one-direction call as tuples
# ref=True runs the plain scalar single-threaded references (tests). All arrays of a call share
# one dtype (float32 or float64).

cdef extern from "rnn.h" nogil:
    void ce_rnn_cell_forward_f32(int kind, float *g, float *h, int64_t ldh, float *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_rnn_cell_forward_f64(int kind, double *g, double *h, int64_t ldh, double *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_rnn_cell_forward_f32_ref(int kind, float *g, float *h, int64_t ldh, float *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_rnn_cell_forward_f64_ref(int kind, double *g, double *h, int64_t ldh, double *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_lstm_cell_forward_f32(float *g, float *c, float *h, int64_t ldh, float *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_lstm_cell_forward_f64(double *g, double *c, double *h, int64_t ldh, double *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_lstm_cell_forward_f32_ref(float *g, float *c, float *h, int64_t ldh, float *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_lstm_cell_forward_f64_ref(double *g, double *c, double *h, int64_t ldh, double *h2, int64_t ldh2, int64_t n, int64_t H)
    void ce_gru_cell_forward_f32(float *gi, float *h, int64_t ldh, float *h2, int64_t ldh2, const float *gh, const float *hp, int64_t n, int64_t H)
    void ce_gru_cell_forward_f64(double *gi, double *h, int64_t ldh, double *h2, int64_t ldh2, const double *gh, const double *hp, int64_t n, int64_t H)
    void ce_gru_cell_forward_f32_ref(float *gi, float *h, int64_t ldh, float *h2, int64_t ldh2, const float *gh, const float *hp, int64_t n, int64_t H)
    void ce_gru_cell_forward_f64_ref(double *gi, double *h, int64_t ldh, double *h2, int64_t ldh2, const double *gh, const double *hp, int64_t n, int64_t H)
    void ce_rnn_cell_backward_set_f32(int kind, float *dg, const float *g, const float *dh, int64_t lddh, const float *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_rnn_cell_backward_set_f64(int kind, double *dg, const double *g, const double *dh, int64_t lddh, const double *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_rnn_cell_backward_set_f32_ref(int kind, float *dg, const float *g, const float *dh, int64_t lddh, const float *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_rnn_cell_backward_set_f64_ref(int kind, double *dg, const double *g, const double *dh, int64_t lddh, const double *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_lstm_cell_backward_set_f32(float *dg, float *dc, const float *g, const float *cp, const float *dh, int64_t lddh, const float *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_lstm_cell_backward_set_f64(double *dg, double *dc, const double *g, const double *cp, const double *dh, int64_t lddh, const double *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_lstm_cell_backward_set_f32_ref(float *dg, float *dc, const float *g, const float *cp, const float *dh, int64_t lddh, const float *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_lstm_cell_backward_set_f64_ref(double *dg, double *dc, const double *g, const double *cp, const double *dh, int64_t lddh, const double *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_gru_cell_backward_set_f32(float *dgi, float *dgh, float *dhp, const float *gi, const float *gh, const float *hp, const float *dh, int64_t lddh, const float *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_gru_cell_backward_set_f64(double *dgi, double *dgh, double *dhp, const double *gi, const double *gh, const double *hp, const double *dh, int64_t lddh, const double *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_gru_cell_backward_set_f32_ref(float *dgi, float *dgh, float *dhp, const float *gi, const float *gh, const float *hp, const float *dh, int64_t lddh, const float *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_gru_cell_backward_set_f64_ref(double *dgi, double *dgh, double *dhp, const double *gi, const double *gh, const double *hp, const double *dh, int64_t lddh, const double *dh2, int64_t lddh2, int64_t n, int64_t H)
    void ce_rnn_seq_forward_f32(int mode, float *G_, float *GH, float *h, float *c, float *out, int64_t ldo, float *HP, float *CP, float *HU, const float *WhhT, int64_t ldw, const float *bhh, const float *WhrT, const int64_t *bs, int64_t T, int64_t H, int64_t P, int reverse)
    void ce_rnn_seq_forward_f64(int mode, double *G_, double *GH, double *h, double *c, double *out, int64_t ldo, double *HP, double *CP, double *HU, const double *WhhT, int64_t ldw, const double *bhh, const double *WhrT, const int64_t *bs, int64_t T, int64_t H, int64_t P, int reverse)
    void ce_rnn_seq_backward_f32(int mode, float *dG, float *dGH, float *dh, float *dc, float *DHR, float *work, const float *dout, int64_t lddo, const float *G_, const float *GH, const float *HP, const float *CP, const float *Whh, const float *Whr, const int64_t *bs, int64_t T, int64_t H, int64_t P, int reverse)
    void ce_rnn_seq_backward_f64(int mode, double *dG, double *dGH, double *dh, double *dc, double *DHR, double *work, const double *dout, int64_t lddo, const double *G_, const double *GH, const double *HP, const double *CP, const double *Whh, const double *Whr, const int64_t *bs, int64_t T, int64_t H, int64_t P, int reverse)

cdef extern from "rnn.h" nogil:
    void ce_rnn_seq_forward_pair_f32(int mode, float **G_, float **GH, float **h, float **c, float **out, int64_t ldo, float **HP, float **CP, float **HU, const float **WhhT, int64_t ldw, const float **bhh, const float **WhrT, const int64_t *bs, int64_t T, int64_t H, int64_t P)
    void ce_rnn_seq_forward_pair_f64(int mode, double **G_, double **GH, double **h, double **c, double **out, int64_t ldo, double **HP, double **CP, double **HU, const double **WhhT, int64_t ldw, const double **bhh, const double **WhrT, const int64_t *bs, int64_t T, int64_t H, int64_t P)
    void ce_rnn_seq_backward_pair_f32(int mode, float **dG, float **dGH, float **dh, float **dc, float **DHR, float **work, const float **dout, int64_t lddo, const float **G_, const float **GH, const float **HP, const float **CP, const float **Whh, const float **Whr, const int64_t *bs, int64_t T, int64_t H, int64_t P)
    void ce_rnn_seq_backward_pair_f64(int mode, double **dG, double **dGH, double **dh, double **dc, double **DHR, double **work, const double **dout, int64_t lddo, const double **G_, const double **GH, const double **HP, const double **CP, const double **Whh, const double **Whr, const int64_t *bs, int64_t T, int64_t H, int64_t P)

RNN_MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")
RNN_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


cdef int _rnn_mode(mode) except -1:
    if mode not in RNN_GATES:
        raise ValueError("unknown RNN mode %r: expected one of %s" % (mode, ", ".join(RNN_MODES)))
    return RNN_MODES.index(mode)


cdef void* _rnn_arr(str name, object a, object dtype, tuple shape, bint write) except? NULL:
    """pointer of a C-contiguous array of `dtype` and `shape` (None: NULL)"""
    if a is None:
        raise ValueError("rnn: %s is required here" % name)
    _check_c(name, a, dtype)
    if tuple(a.shape) != shape:
        raise ValueError("rnn: %s has shape %s, expected %s" % (name, tuple(a.shape), shape))
    if write and not a.flags.writeable:
        raise ValueError("rnn: %s is read-only" % name)
    if _n(a) == 0:
        return NULL
    return _ptr(a)


cdef void* _rnn_rows(str name, object a, object dtype, int64_t rows, int64_t cols, bint write,
                     int64_t *ld) except? NULL:
    """pointer and row stride of a 2-D (rows, cols) array with unit column stride"""
    if not isinstance(a, np.ndarray):
        raise TypeError("%s: expected a numpy array, got %s" % (name, type(a).__name__))
    if a.dtype != dtype:
        raise TypeError("%s: expected dtype %s, got %s" % (name, np.dtype(dtype), a.dtype))
    if a.ndim != 2 or a.shape[0] != rows or a.shape[1] != cols:
        raise ValueError("rnn: %s has shape %s, expected %s" % (name, tuple(a.shape), (rows, cols)))
    cdef int64_t isz = a.itemsize
    if rows > 0 and cols > 0:
        if (cols > 1 and a.strides[1] != isz) or a.strides[0] % isz != 0 or \
                (rows > 1 and a.strides[0] < cols * isz):
            raise ValueError("rnn: %s must have unit column stride and non-overlapping rows" % name)
    if write and not a.flags.writeable:
        raise ValueError("rnn: %s is read-only" % name)
    ld[0] = a.strides[0] // isz if rows > 1 else cols
    if rows == 0 or cols == 0:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


def rnn_cell_forward(mode, g, h, c=None, gh=None, hp=None, bint ref=False):
    """One fused cell step forward (see the file comment). Returns h."""
    cdef int m = _rnn_mode(mode)
    cdef int64_t G = RNN_GATES[mode]
    if not isinstance(g, np.ndarray) or g.ndim != 2 or g.shape[1] % G != 0:
        raise ValueError("rnn_cell_forward: g must be a 2-D array with a multiple of %d columns" % G)
    dt = g.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError("rnn_cell_forward: expected float32 or float64, got %s" % dt)
    cdef int64_t n = g.shape[0], H = g.shape[1] // G
    cdef void *pg = _rnn_arr("g", g, dt, (n, G * H), True)
    cdef void *ph = _rnn_arr("h", h, dt, (n, H), True)
    cdef void *pc = NULL
    cdef void *pgh = NULL
    cdef void *php = NULL
    cdef bint f32 = dt == np.float32
    if m == 2:
        pc = _rnn_arr("c", c, dt, (n, H), True)
    elif m == 3:
        pgh = _rnn_arr("gh", gh, dt, (n, 3 * H), False)
        php = _rnn_arr("hp", hp, dt, (n, H), False)
        if np.shares_memory(hp, h):
            raise ValueError("rnn_cell_forward: hp must not share memory with h")
    if n == 0 or H == 0:
        return h
    with nogil:
        if m == 2:
            if f32:
                if ref: ce_lstm_cell_forward_f32_ref(<float*>pg, <float*>pc, <float*>ph, H, NULL, 0, n, H)
                else: ce_lstm_cell_forward_f32(<float*>pg, <float*>pc, <float*>ph, H, NULL, 0, n, H)
            else:
                if ref: ce_lstm_cell_forward_f64_ref(<double*>pg, <double*>pc, <double*>ph, H, NULL, 0, n, H)
                else: ce_lstm_cell_forward_f64(<double*>pg, <double*>pc, <double*>ph, H, NULL, 0, n, H)
        elif m == 3:
            if f32:
                if ref: ce_gru_cell_forward_f32_ref(<float*>pg, <float*>ph, H, NULL, 0, <const float*>pgh, <const float*>php, n, H)
                else: ce_gru_cell_forward_f32(<float*>pg, <float*>ph, H, NULL, 0, <const float*>pgh, <const float*>php, n, H)
            else:
                if ref: ce_gru_cell_forward_f64_ref(<double*>pg, <double*>ph, H, NULL, 0, <const double*>pgh, <const double*>php, n, H)
                else: ce_gru_cell_forward_f64(<double*>pg, <double*>ph, H, NULL, 0, <const double*>pgh, <const double*>php, n, H)
        else:
            if f32:
                if ref: ce_rnn_cell_forward_f32_ref(m, <float*>pg, <float*>ph, H, NULL, 0, n, H)
                else: ce_rnn_cell_forward_f32(m, <float*>pg, <float*>ph, H, NULL, 0, n, H)
            else:
                if ref: ce_rnn_cell_forward_f64_ref(m, <double*>pg, <double*>ph, H, NULL, 0, n, H)
                else: ce_rnn_cell_forward_f64(m, <double*>pg, <double*>ph, H, NULL, 0, n, H)
    return h


def rnn_cell_backward(mode, dg, dh, g, dh2=None, dc=None, cp=None, dgh=None, dhp=None, gh=None,
                      hp=None, bint ref=False):
    """One fused cell step backward (see the file comment). Returns dg."""
    cdef int m = _rnn_mode(mode)
    cdef int64_t G = RNN_GATES[mode]
    if not isinstance(g, np.ndarray) or g.ndim != 2 or g.shape[1] % G != 0:
        raise ValueError("rnn_cell_backward: g must be a 2-D array with a multiple of %d columns" % G)
    dt = g.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError("rnn_cell_backward: expected float32 or float64, got %s" % dt)
    cdef int64_t n = g.shape[0], H = g.shape[1] // G
    cdef void *pg = _rnn_arr("g", g, dt, (n, G * H), False)
    cdef void *pdg = _rnn_arr("dg", dg, dt, (n, G * H), True)
    cdef void *pdh = _rnn_arr("dh", dh, dt, (n, H), False)
    cdef void *pdh2 = NULL
    cdef void *pdc = NULL
    cdef void *pcp = NULL
    cdef void *pdgh = NULL
    cdef void *pdhp = NULL
    cdef void *pgh = NULL
    cdef void *php = NULL
    cdef bint f32 = dt == np.float32
    if dh2 is not None:
        pdh2 = _rnn_arr("dh2", dh2, dt, (n, H), False)
    if m == 2:
        pdc = _rnn_arr("dc", dc, dt, (n, H), True)
        pcp = _rnn_arr("cp", cp, dt, (n, H), False)
    elif m == 3:
        pdgh = _rnn_arr("dgh", dgh, dt, (n, 3 * H), True)
        pdhp = _rnn_arr("dhp", dhp, dt, (n, H), True)
        pgh = _rnn_arr("gh", gh, dt, (n, 3 * H), False)
        php = _rnn_arr("hp", hp, dt, (n, H), False)
    if n == 0 or H == 0:
        return dg
    with nogil:
        if m == 2:
            if f32:
                if ref: ce_lstm_cell_backward_set_f32_ref(<float*>pdg, <float*>pdc, <const float*>pg, <const float*>pcp, <const float*>pdh, H, <const float*>pdh2, H, n, H)
                else: ce_lstm_cell_backward_set_f32(<float*>pdg, <float*>pdc, <const float*>pg, <const float*>pcp, <const float*>pdh, H, <const float*>pdh2, H, n, H)
            else:
                if ref: ce_lstm_cell_backward_set_f64_ref(<double*>pdg, <double*>pdc, <const double*>pg, <const double*>pcp, <const double*>pdh, H, <const double*>pdh2, H, n, H)
                else: ce_lstm_cell_backward_set_f64(<double*>pdg, <double*>pdc, <const double*>pg, <const double*>pcp, <const double*>pdh, H, <const double*>pdh2, H, n, H)
        elif m == 3:
            if f32:
                if ref: ce_gru_cell_backward_set_f32_ref(<float*>pdg, <float*>pdgh, <float*>pdhp, <const float*>pg, <const float*>pgh, <const float*>php, <const float*>pdh, H, <const float*>pdh2, H, n, H)
                else: ce_gru_cell_backward_set_f32(<float*>pdg, <float*>pdgh, <float*>pdhp, <const float*>pg, <const float*>pgh, <const float*>php, <const float*>pdh, H, <const float*>pdh2, H, n, H)
            else:
                if ref: ce_gru_cell_backward_set_f64_ref(<double*>pdg, <double*>pdgh, <double*>pdhp, <const double*>pg, <const double*>pgh, <const double*>php, <const double*>pdh, H, <const double*>pdh2, H, n, H)
                else: ce_gru_cell_backward_set_f64(<double*>pdg, <double*>pdgh, <double*>pdhp, <const double*>pg, <const double*>pgh, <const double*>php, <const double*>pdh, H, <const double*>pdh2, H, n, H)
        else:
            if f32:
                if ref: ce_rnn_cell_backward_set_f32_ref(m, <float*>pdg, <const float*>pg, <const float*>pdh, H, <const float*>pdh2, H, n, H)
                else: ce_rnn_cell_backward_set_f32(m, <float*>pdg, <const float*>pg, <const float*>pdh, H, <const float*>pdh2, H, n, H)
            else:
                if ref: ce_rnn_cell_backward_set_f64_ref(m, <double*>pdg, <const double*>pg, <const double*>pdh, H, <const double*>pdh2, H, n, H)
                else: ce_rnn_cell_backward_set_f64(m, <double*>pdg, <const double*>pg, <const double*>pdh, H, <const double*>pdh2, H, n, H)
    return dg


cdef object _rnn_bs(object batch_sizes, int64_t N):
    if N < 0:
        raise ValueError("rnn: the state must be a 2-D array")
    bs = np.ascontiguousarray(batch_sizes, dtype=np.int64)
    if bs.ndim != 1 or bs.shape[0] == 0:
        raise ValueError("rnn: batch_sizes must be a non-empty 1-D array")
    if bs[0] != N or (bs <= 0).any() or (bs.shape[0] > 1 and (np.diff(bs) > 0).any()):
        raise ValueError("rnn: batch_sizes must be positive, non-increasing and start with the "
                         "state's %d rows, got %s" % (N, bs.tolist()))
    return bs



cdef struct _RnnFwd:
    void *G
    void *GH
    void *h
    void *c
    void *out
    void *HP
    void *CP
    void *HU
    void *WhhT
    void *bhh
    void *WhrT
    int64_t ldo, ldw, T, H, P, S
    bint f32


cdef struct _RnnBwd:
    void *dG
    void *dGH
    void *dh
    void *dc
    void *DHR
    void *work
    void *dout
    void *G
    void *GH
    void *HP
    void *CP
    void *Whh
    void *Whr
    int64_t lddo, T, H, P, S
    bint f32


cdef int _rnn_fwd_check(int m, G, GH, h, c, out, HP, CP, HU, WhhT, bhh, WhrT, bs,
                        _RnnFwd *p) except -1:
    cdef int64_t ng = RNN_GATES[RNN_MODES[m]]
    if not isinstance(h, np.ndarray) or h.ndim != 2:
        raise ValueError("rnn_seq_forward: h must be a 2-D array")
    dt = h.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError("rnn_seq_forward: expected float32 or float64, got %s" % dt)
    if not isinstance(G, np.ndarray) or G.ndim != 2 or G.shape[1] % ng != 0:
        raise ValueError("rnn_seq_forward: G must be a 2-D array with a multiple of %d columns" % ng)
    cdef int64_t N = h.shape[0], Hs = h.shape[1], H = G.shape[1] // ng
    cdef int64_t P = 0 if WhrT is None else Hs
    if m != 2 and WhrT is not None:
        raise ValueError("rnn_seq_forward: projections are only supported for LSTM")
    if P == 0 and Hs != H:
        raise ValueError("rnn_seq_forward: h has %d columns, expected %d" % (Hs, H))
    if bs.shape[0] == 0 or bs[0] != N:
        raise ValueError("rnn: batch_sizes must start with the state's %d rows" % N)
    cdef int64_t T = bs.shape[0], S = int(bs.sum())
    p.T, p.H, p.P, p.S, p.f32 = T, H, P, S, dt == np.float32
    p.G = _rnn_arr("G", G, dt, (S, ng * H), True)
    p.h = _rnn_arr("h", h, dt, (N, Hs), True)
    p.out = _rnn_rows("out", out, dt, S, Hs, True, &p.ldo)
    p.HP = _rnn_arr("HP", HP, dt, (S, Hs), True)
    p.WhhT = _rnn_rows("WhhT", WhhT, dt, Hs, ng * H, False, &p.ldw)
    p.GH = p.c = p.CP = p.HU = p.bhh = p.WhrT = NULL
    if m == 2:
        p.c = _rnn_arr("c", c, dt, (N, H), True)
        p.CP = _rnn_arr("CP", CP, dt, (S, H), True)
        if P > 0:
            p.HU = _rnn_arr("HU", HU, dt, (S, H), True)
            p.WhrT = _rnn_arr("WhrT", WhrT, dt, (H, P), False)
    if m == 3:
        p.GH = _rnn_arr("GH", GH, dt, (S, 3 * H), True)
        if bhh is not None:
            p.bhh = _rnn_arr("bhh", bhh, dt, (3 * H,), False)
    if np.shares_memory(out, h) or np.shares_memory(out, G) or np.shares_memory(out, HP):
        raise ValueError("rnn_seq_forward: out must not share memory with the other arrays")
    return 0


cdef int _rnn_bwd_check(int m, dG, dGH, dh, dc, DHR, work, dout, G, GH, HP, CP, Whh, Whr, bs,
                        _RnnBwd *p) except -1:
    cdef int64_t ng = RNN_GATES[RNN_MODES[m]]
    if not isinstance(dh, np.ndarray) or dh.ndim != 2:
        raise ValueError("rnn_seq_backward: dh must be a 2-D array")
    dt = dh.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError("rnn_seq_backward: expected float32 or float64, got %s" % dt)
    if not isinstance(G, np.ndarray) or G.ndim != 2 or G.shape[1] % ng != 0:
        raise ValueError("rnn_seq_backward: G must be a 2-D array with a multiple of %d columns" % ng)
    cdef int64_t N = dh.shape[0], Hs = dh.shape[1], H = G.shape[1] // ng
    cdef int64_t P = 0 if Whr is None else Hs
    if m != 2 and Whr is not None:
        raise ValueError("rnn_seq_backward: projections are only supported for LSTM")
    if P == 0 and Hs != H:
        raise ValueError("rnn_seq_backward: dh has %d columns, expected %d" % (Hs, H))
    if bs.shape[0] == 0 or bs[0] != N:
        raise ValueError("rnn: batch_sizes must start with the state's %d rows" % N)
    cdef int64_t T = bs.shape[0], S = int(bs.sum())
    p.T, p.H, p.P, p.S, p.f32 = T, H, P, S, dt == np.float32
    p.dG = _rnn_arr("dG", dG, dt, (S, ng * H), True)
    p.dh = _rnn_arr("dh", dh, dt, (N, Hs), True)
    p.dout = _rnn_rows("dout", dout, dt, S, Hs, False, &p.lddo)
    p.G = _rnn_arr("G", G, dt, (S, ng * H), False)
    p.HP = _rnn_arr("HP", HP, dt, (S, Hs), False)
    p.Whh = _rnn_arr("Whh", Whh, dt, (ng * H, Hs), False)
    p.dGH = p.dc = p.DHR = p.work = p.GH = p.CP = p.Whr = NULL
    if m == 2:
        p.dc = _rnn_arr("dc", dc, dt, (N, H), True)
        p.CP = _rnn_arr("CP", CP, dt, (S, H), False)
        if P > 0:
            p.DHR = _rnn_arr("DHR", DHR, dt, (S, P), True)
            p.work = _rnn_arr("work", work, dt, (N, H), True)
            p.Whr = _rnn_arr("Whr", Whr, dt, (P, H), False)
    if m == 3:
        p.dGH = _rnn_arr("dGH", dGH, dt, (S, 3 * H), True)
        p.GH = _rnn_arr("GH", GH, dt, (S, 3 * H), False)
    for name, a in (("dG", dG), ("dh", dh)):
        if np.shares_memory(dout, a):
            raise ValueError("rnn_seq_backward: dout must not share memory with %s" % name)
    return 0


def rnn_seq_forward(mode, G, GH, h, c, out, HP, CP, HU, WhhT, bhh, WhrT, batch_sizes,
                    bint reverse):
    """One layer direction forward over all steps (rnn.h: ce_rnn_seq_forward_*)."""
    cdef int m = _rnn_mode(mode)
    bs = _rnn_bs(batch_sizes, h.shape[0] if isinstance(h, np.ndarray) and h.ndim == 2 else -1)
    cdef _RnnFwd p
    _rnn_fwd_check(m, G, GH, h, c, out, HP, CP, HU, WhhT, bhh, WhrT, bs, &p)
    cdef const int64_t *pbs = <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>bs)
    cdef int rev = 1 if reverse else 0
    if p.S == 0 or p.H == 0:
        return out
    with nogil:
        if p.f32:
            ce_rnn_seq_forward_f32(m, <float*>p.G, <float*>p.GH, <float*>p.h, <float*>p.c,
                                   <float*>p.out, p.ldo, <float*>p.HP, <float*>p.CP, <float*>p.HU,
                                   <const float*>p.WhhT, p.ldw, <const float*>p.bhh,
                                   <const float*>p.WhrT, pbs, p.T, p.H, p.P, rev)
        else:
            ce_rnn_seq_forward_f64(m, <double*>p.G, <double*>p.GH, <double*>p.h, <double*>p.c,
                                   <double*>p.out, p.ldo, <double*>p.HP, <double*>p.CP,
                                   <double*>p.HU, <const double*>p.WhhT, p.ldw,
                                   <const double*>p.bhh, <const double*>p.WhrT, pbs, p.T, p.H,
                                   p.P, rev)
    return out


def rnn_seq_backward(mode, dG, dGH, dh, dc, DHR, work, dout, G, GH, HP, CP, Whh, Whr,
                     batch_sizes, bint reverse):
    """One layer direction backward through time (rnn.h: ce_rnn_seq_backward_*)."""
    cdef int m = _rnn_mode(mode)
    bs = _rnn_bs(batch_sizes, dh.shape[0] if isinstance(dh, np.ndarray) and dh.ndim == 2 else -1)
    cdef _RnnBwd p
    _rnn_bwd_check(m, dG, dGH, dh, dc, DHR, work, dout, G, GH, HP, CP, Whh, Whr, bs, &p)
    cdef const int64_t *pbs = <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>bs)
    cdef int rev = 1 if reverse else 0
    if p.S == 0 or p.H == 0:
        return dG
    with nogil:
        if p.f32:
            ce_rnn_seq_backward_f32(m, <float*>p.dG, <float*>p.dGH, <float*>p.dh, <float*>p.dc,
                                    <float*>p.DHR, <float*>p.work, <const float*>p.dout, p.lddo,
                                    <const float*>p.G, <const float*>p.GH, <const float*>p.HP,
                                    <const float*>p.CP, <const float*>p.Whh, <const float*>p.Whr,
                                    pbs, p.T, p.H, p.P, rev)
        else:
            ce_rnn_seq_backward_f64(m, <double*>p.dG, <double*>p.dGH, <double*>p.dh,
                                    <double*>p.dc, <double*>p.DHR, <double*>p.work,
                                    <const double*>p.dout, p.lddo, <const double*>p.G,
                                    <const double*>p.GH, <const double*>p.HP, <const double*>p.CP,
                                    <const double*>p.Whh, <const double*>p.Whr, pbs, p.T, p.H,
                                    p.P, rev)
    return dG


def rnn_seq_forward_pair(mode, fwd, rev, batch_sizes):
    """Both directions of a bidirectional layer at once, one thread each
    (ce_rnn_seq_forward_pair_*). fwd, rev: the (G, GH, h, c, out, HP, CP, HU, WhhT, bhh, WhrT)
    of rnn_seq_forward for the forward and the reverse direction; the two must agree in dtype,
    sizes and the row strides of out and WhhT."""
    cdef int m = _rnn_mode(mode)
    h0 = fwd[2]
    bs = _rnn_bs(batch_sizes, h0.shape[0] if isinstance(h0, np.ndarray) and h0.ndim == 2 else -1)
    cdef _RnnFwd p[2]
    if len(fwd) != 11 or len(rev) != 11:
        raise ValueError("rnn_seq_forward_pair: expected 11 arrays per direction")
    _rnn_fwd_check(m, fwd[0], fwd[1], fwd[2], fwd[3], fwd[4], fwd[5], fwd[6], fwd[7], fwd[8],
                   fwd[9], fwd[10], bs, &p[0])
    _rnn_fwd_check(m, rev[0], rev[1], rev[2], rev[3], rev[4], rev[5], rev[6], rev[7], rev[8],
                   rev[9], rev[10], bs, &p[1])
    if p[0].f32 != p[1].f32 or p[0].H != p[1].H or p[0].P != p[1].P or \
            p[0].ldo != p[1].ldo or p[0].ldw != p[1].ldw:
        raise ValueError("rnn_seq_forward_pair: the two directions differ in dtype, sizes or strides")
    for a in fwd:
        for b in rev:
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.flags.writeable \
                    and b.flags.writeable and a is not b and np.shares_memory(a, b):
                raise ValueError("rnn_seq_forward_pair: the directions' arrays overlap")
    cdef const int64_t *pbs = <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>bs)
    if p[0].S == 0 or p[0].H == 0:
        return None
    cdef void *G2[2]
    cdef void *GH2[2]
    cdef void *h2[2]
    cdef void *c2[2]
    cdef void *o2[2]
    cdef void *HP2[2]
    cdef void *CP2[2]
    cdef void *HU2[2]
    cdef void *W2[2]
    cdef void *b2[2]
    cdef void *R2[2]
    cdef int d
    for d in range(2):
        G2[d] = p[d].G; GH2[d] = p[d].GH; h2[d] = p[d].h; c2[d] = p[d].c; o2[d] = p[d].out
        HP2[d] = p[d].HP; CP2[d] = p[d].CP; HU2[d] = p[d].HU; W2[d] = p[d].WhhT
        b2[d] = p[d].bhh; R2[d] = p[d].WhrT
    with nogil:
        if p[0].f32:
            ce_rnn_seq_forward_pair_f32(m, <float**>G2, <float**>GH2, <float**>h2, <float**>c2,
                                        <float**>o2, p[0].ldo, <float**>HP2, <float**>CP2,
                                        <float**>HU2, <const float**>W2, p[0].ldw,
                                        <const float**>b2, <const float**>R2, pbs, p[0].T,
                                        p[0].H, p[0].P)
        else:
            ce_rnn_seq_forward_pair_f64(m, <double**>G2, <double**>GH2, <double**>h2,
                                        <double**>c2, <double**>o2, p[0].ldo, <double**>HP2,
                                        <double**>CP2, <double**>HU2, <const double**>W2,
                                        p[0].ldw, <const double**>b2, <const double**>R2, pbs,
                                        p[0].T, p[0].H, p[0].P)
    return None


def rnn_seq_backward_pair(mode, fwd, rev, batch_sizes):
    """Both directions' backward at once, one thread each (ce_rnn_seq_backward_pair_*).
    fwd, rev: the (dG, dGH, dh, dc, DHR, work, dout, G, GH, HP, CP, Whh, Whr) of
    rnn_seq_backward for each direction (same dtype, sizes and dout row stride)."""
    cdef int m = _rnn_mode(mode)
    dh0 = fwd[2]
    bs = _rnn_bs(batch_sizes, dh0.shape[0] if isinstance(dh0, np.ndarray) and dh0.ndim == 2 else -1)
    cdef _RnnBwd p[2]
    if len(fwd) != 13 or len(rev) != 13:
        raise ValueError("rnn_seq_backward_pair: expected 13 arrays per direction")
    _rnn_bwd_check(m, fwd[0], fwd[1], fwd[2], fwd[3], fwd[4], fwd[5], fwd[6], fwd[7], fwd[8],
                   fwd[9], fwd[10], fwd[11], fwd[12], bs, &p[0])
    _rnn_bwd_check(m, rev[0], rev[1], rev[2], rev[3], rev[4], rev[5], rev[6], rev[7], rev[8],
                   rev[9], rev[10], rev[11], rev[12], bs, &p[1])
    if p[0].f32 != p[1].f32 or p[0].H != p[1].H or p[0].P != p[1].P or p[0].lddo != p[1].lddo:
        raise ValueError("rnn_seq_backward_pair: the two directions differ in dtype, sizes or strides")
    for i in (0, 1, 2, 3, 4, 5):
        for b in rev[:6]:
            a = fwd[i]
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.shares_memory(a, b):
                raise ValueError("rnn_seq_backward_pair: the directions' output arrays overlap")
    cdef const int64_t *pbs = <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>bs)
    if p[0].S == 0 or p[0].H == 0:
        return None
    cdef void *a0[2]
    cdef void *a1[2]
    cdef void *a2[2]
    cdef void *a3[2]
    cdef void *a4[2]
    cdef void *a5[2]
    cdef void *a6[2]
    cdef void *a7[2]
    cdef void *a8[2]
    cdef void *a9[2]
    cdef void *a10[2]
    cdef void *a11[2]
    cdef void *a12[2]
    cdef int d
    for d in range(2):
        a0[d] = p[d].dG; a1[d] = p[d].dGH; a2[d] = p[d].dh; a3[d] = p[d].dc; a4[d] = p[d].DHR
        a5[d] = p[d].work; a6[d] = p[d].dout; a7[d] = p[d].G; a8[d] = p[d].GH; a9[d] = p[d].HP
        a10[d] = p[d].CP; a11[d] = p[d].Whh; a12[d] = p[d].Whr
    with nogil:
        if p[0].f32:
            ce_rnn_seq_backward_pair_f32(m, <float**>a0, <float**>a1, <float**>a2, <float**>a3,
                                         <float**>a4, <float**>a5, <const float**>a6, p[0].lddo,
                                         <const float**>a7, <const float**>a8,
                                         <const float**>a9, <const float**>a10,
                                         <const float**>a11, <const float**>a12, pbs, p[0].T,
                                         p[0].H, p[0].P)
        else:
            ce_rnn_seq_backward_pair_f64(m, <double**>a0, <double**>a1, <double**>a2,
                                         <double**>a3, <double**>a4, <double**>a5,
                                         <const double**>a6, p[0].lddo, <const double**>a7,
                                         <const double**>a8, <const double**>a9,
                                         <const double**>a10, <const double**>a11,
                                         <const double**>a12, pbs, p[0].T, p[0].H, p[0].P)
    return None
