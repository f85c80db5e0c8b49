"""Recurrent layers as autograd Functions: one Function runs a whole layer (both directions, all
time steps) with a hand-written backward through time.

Per direction the input projection of every step is one GEMM (X W_ih^T + bias into a stacked
(S, G*H) gate array), the time loop runs in C (src_c/rnn.c: per step one recurrent GEMM on the
rows still active and one fused cell kernel), and the backward gives the weight gradients as one
GEMM each over all steps (dW_ih = dG^T X, dW_hh = dG^T H_prev, dW_hr = dH^T H_unprojected) and
the input gradient as one GEMM (dX = dG W_ih).

Layout: a layer's input is the stacked (S, input) array of a packed batch (a padded (T, N, *)
batch is the same thing with every batch size N); `batch_sizes` (T,) non-increasing, so row b of
each step belongs to the same sequence."""
import numpy as np

from .. import _C
from ..amp import autocast_mode as _am
from . import _half
from ..autograd.function import Function

__all__ = ["RNNLayer", "rnn_layer"]

_GATES = _C.RNN_GATES
_gemm = _C.gemm


def _pair():
    """run the two directions of a bidirectional layer side by side, one thread each (on 2-3
    threads: the per-step products are too small to split well, and the two directions need
    no synchronisation between steps)"""
    return 2 <= _C.get_num_threads() <= 3


def _padded_t(w):
    """w^T (a copy) with its rows 16 elements longer than needed: rows a multiple of 4 KiB
    apart fall into the same L1 sets when the GEMM reads them in place on every step"""
    r, c = w.shape
    buf = np.empty((c, r + 16), w.dtype)
    t = buf[:, :r]
    t[...] = w.T
    return t


class _Cfg:
    """Static description of one layer call (not a tensor)."""
    __slots__ = ("mode", "H", "P", "D", "bs")

    def __init__(self, mode, H, P, D, bs):
        self.mode, self.H, self.P, self.D, self.bs = mode, H, P, D, bs


class RNNLayer(Function):
    """forward(cfg, x (S, I), h0 (D, N, Hs) or None, c0 (D, N, H) or None (LSTM),
    then per direction w_ih, w_hh, b_ih, b_hh, w_hr (None where absent))
    -> out (S, D*Hs), h_n (D, N, Hs) [, c_n (D, N, H) for LSTM]."""
    _no_cuda = "rnn"

    @staticmethod
    def forward(ctx, cfg, x, h0, c0, *w):
        mode, H, P, D, bs = cfg.mode, cfg.H, cfg.P, cfg.D, cfg.bs
        lstm, gru = mode == "LSTM", mode == "GRU"
        ng = _GATES[mode]
        Hs = P if P else H
        x = np.ascontiguousarray(x)
        dt = x.dtype
        S = x.shape[0]
        N = int(bs[0])
        out = np.empty((S, D * Hs), dt)
        hn = np.empty((D, N, Hs), dt)
        cn = np.empty((D, N, H), dt) if lstm else None
        bufs, calls = [], []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh, w_hr = w[5 * d:5 * d + 5]
            if gru or b_ih is None:
                bias = b_ih
            else:
                bias = b_ih + b_hh
            G = np.empty((S, ng * H), dt)
            _gemm(x, w_ih.T, G, bias=bias)
            h = hn[d]
            if h0 is None:
                h.fill(0)
            else:
                h[...] = h0[d]
            c = None
            if lstm:
                c = cn[d]
                if c0 is None:
                    c.fill(0)
                else:
                    c[...] = c0[d]
            GH = np.empty((S, 3 * H), dt) if gru else None
            HP = np.empty((S, Hs), dt)
            CP = np.empty((S, H), dt) if lstm else None
            HU = np.empty((S, H), dt) if P else None
            WhhT = _padded_t(w_hh)
            WhrT = np.ascontiguousarray(w_hr.T) if P else None
            bhh = np.ascontiguousarray(b_hh) if (gru and b_hh is not None) else None
            calls.append((G, GH, h, c, out[:, d * Hs:(d + 1) * Hs], HP, CP, HU, WhhT, bhh, WhrT))
            bufs.append((G, GH, HP, CP, HU))
        if D == 2 and _pair():
            _C.rnn_seq_forward_pair(mode, calls[0], calls[1], bs)
        else:
            for d in range(D):
                _C.rnn_seq_forward(mode, *calls[d], bs, d == 1)
        ctx.cfg = cfg
        ctx.bufs = bufs
        ctx.save_for_backward(x, *w)
        if lstm:
            return out, hn, cn
        return out, hn

    @staticmethod
    def backward(ctx, dout, dhn, dcn=None):
        cfg = ctx.cfg
        mode, H, P, D, bs = cfg.mode, cfg.H, cfg.P, cfg.D, cfg.bs
        lstm, gru = mode == "LSTM", mode == "GRU"
        ng = _GATES[mode]
        Hs = P if P else H
        saved = ctx.saved_tensors
        x, w = saved[0], saved[1:]
        needs = ctx.needs_input_grad
        dt = x.dtype
        S, N = x.shape[0], int(bs[0])
        dout = np.ascontiguousarray(dout, dtype=dt)
        dx = np.empty_like(x) if needs[1] else None
        dh0 = np.empty((D, N, Hs), dt)
        dc0 = np.empty((D, N, H), dt) if lstm else None
        calls = []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh, w_hr = w[5 * d:5 * d + 5]
            G, GH, HP, CP, HU = ctx.bufs[d]
            dh = dh0[d]
            dh[...] = 0 if dhn is None else dhn[d]
            dc = None
            if lstm:
                dc = dc0[d]
                dc[...] = 0 if dcn is None else dcn[d]
            dG = np.empty((S, ng * H), dt)
            dGH = np.empty((S, 3 * H), dt) if gru else None
            DHR = np.empty((S, P), dt) if P else None
            work = np.empty((N, H), dt) if P else None
            calls.append((dG, dGH, dh, dc, DHR, work, dout[:, d * Hs:(d + 1) * Hs], G, GH, HP, CP,
                          np.ascontiguousarray(w_hh), np.ascontiguousarray(w_hr) if P else None))
        if D == 2 and _pair():
            _C.rnn_seq_backward_pair(mode, calls[0], calls[1], bs)
        else:
            for d in range(D):
                _C.rnn_seq_backward(mode, *calls[d], bs, d == 1)
        wgrads = []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh, w_hr = w[5 * d:5 * d + 5]
            G, GH, HP, CP, HU = ctx.bufs[d]
            dG, dGH, DHR = calls[d][0], calls[d][1], calls[d][4]
            k = 4 + 5 * d
            dR = dGH if gru else dG
            g_ih = g_hh = g_bih = g_bhh = g_hr = None
            if needs[k]:
                g_ih = np.empty(w_ih.shape, dt)
                _gemm(dG.T, x, g_ih)
            if needs[k + 1]:
                g_hh = np.empty(w_hh.shape, dt)
                _gemm(dR.T, HP, g_hh)
            if b_ih is not None and needs[k + 2]:
                g_bih = dG.sum(0)
            if b_hh is not None and needs[k + 3]:
                g_bhh = dR.sum(0) if (gru or not needs[k + 2]) else g_bih.copy()
            if P and needs[k + 4]:
                g_hr = np.empty(w_hr.shape, dt)
                _gemm(DHR.T, HU, g_hr)
            wgrads += [g_ih, g_hh, g_bih, g_bhh, g_hr]
            if dx is not None:
                _gemm(dG, w_ih, dx, beta=0.0 if d == 0 else 1.0)
        return (None, dx, dh0 if needs[2] else None, dc0 if (lstm and needs[3]) else None,
                *wgrads)


def rnn_layer(mode, x, h0, c0, weights, hidden_size, proj_size, num_directions, batch_sizes):
    """Run one recurrent layer on stacked input x (S, I) (Tensors). weights: per direction
    (w_ih, w_hh, b_ih, b_hh, w_hr) with None where absent. Returns (out, h_n[, c_n])."""
    cfg = _Cfg(mode, hidden_size, proj_size, num_directions,
               np.ascontiguousarray(batch_sizes, dtype=np.int64))
    flat = []
    for wd in weights:
        flat += list(wd)
    c0 = c0 if mode == "LSTM" else None
    if mode != "GRU" and _am._tls.lowp is not None:
        # torch's CPU autocast runs LSTM and Elman RNN layers in the lower precision (its
        # mkldnn RNN); GRU stays float32
        x, h0, c0 = _am.cast_lowp(x), _am.cast_lowp(h0), _am.cast_lowp(c0)
        flat = [_am.cast_lowp(w) for w in flat]
    if _half.is_half(x._data.dtype):
        # bfloat16/float16: the recurrence runs on the float32 kernels, results rounded once
        return _half.via_f32(lambda *a: RNNLayer.apply(cfg, *a), x, h0, c0, *flat,
                             keep=x._data.dtype)
    return RNNLayer.apply(cfg, x, h0, c0, *flat)
