"""Recurrent layers: the fused cell kernels against their scalar references on every ISA path
and thread count, RNN/LSTM/GRU and the cells against a numpy reference, float64 gradcheck,
packed sequences, parity with torch (outputs, final states and every gradient, with copied
weights; skipped without torch) and torch's errors on bad input."""
import math

import numpy as np
import pytest

import cengine as ce
from cengine import _C, nn
from cengine.autograd import gradcheck
from cengine.nn.utils.rnn import (PackedSequence, pack_padded_sequence, pad_packed_sequence,
                                  pack_sequence, unpack_sequence, unpad_sequence)

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-6, atol=1e-9)}


def _torch():
    return pytest.importorskip("torch")


def _t(a, dtype=None, grad=False):
    a = np.asarray(a)
    if dtype is not None:
        a = a.astype(dtype)
    return ce.tensor(a, requires_grad=grad)


def _cls(mode):
    return {"RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[mode]


def _make(mode, *args, **kw):
    if mode == "RNN_RELU":
        kw["nonlinearity"] = "relu"
    return _cls(mode)(*args, **kw)


# ---- numpy reference (padded input (T, N, I), no torch needed) --------------------------------
def _sig(x):
    return 1 / (1 + np.exp(-x))


def _np_cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr):
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0 if b_hh is None else b_hh)
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        c = _sig(f) * c + _sig(i) * np.tanh(g)
        h = _sig(o) * np.tanh(c)
        if w_hr is not None:
            h = h @ w_hr.T
        return h, c
    if mode == "GRU":
        ir, iz, inn = np.split(gi, 3, axis=1)
        hr, hz, hn = np.split(gh, 3, axis=1)
        r, z = _sig(ir + hr), _sig(iz + hz)
        n = np.tanh(inn + r * hn)
        return (1 - z) * n + z * h, None
    pre = gi + gh
    return (np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0)), None


def _np_rnn(m, x, h0=None, c0=None):
    """numpy forward of module m on padded x (T, N, I) (batch_first=False)"""
    D = 2 if m.bidirectional else 1
    H, P = m.hidden_size, m.proj_size
    Hs = P or H
    T, N, _ = x.shape
    hn, cn = [], []
    for layer in range(m.num_layers):
        outs = []
        for d in range(D):
            sfx = "_reverse" if d else ""
            g = lambda n: (getattr(m, "%s_l%d%s" % (n, layer, sfx)).detach().numpy()  # noqa
                           if hasattr(m, "%s_l%d%s" % (n, layer, sfx)) else None)
            w = (g("weight_ih"), g("weight_hh"), g("bias_ih"), g("bias_hh"),
                 g("weight_hr") if P else None)
            k = layer * D + d
            h = np.zeros((N, Hs)) if h0 is None else h0[k]
            c = np.zeros((N, H)) if c0 is None else c0[k]
            o = np.zeros((T, N, Hs))
            for t in (range(T - 1, -1, -1) if d else range(T)):
                h, c2 = _np_cell(m.mode, x[t], h, c, *w)
                c = c2 if c2 is not None else c
                o[t] = h
            outs.append(o)
            hn.append(h)
            cn.append(c)
        x = np.concatenate(outs, axis=2)
    return x, np.stack(hn), np.stack(cn)


# ---- cell kernels vs the scalar references ----------------------------------------------------
def _cell_inputs(mode, n, H, dt, rng):
    G = _C.RNN_GATES[mode]
    d = dict(g=(rng.standard_normal((n, G * H)) * 2).astype(dt),
             c=rng.standard_normal((n, H)).astype(dt),
             gh=rng.standard_normal((n, 3 * H)).astype(dt),
             hp=rng.standard_normal((n, H)).astype(dt),
             dh=rng.standard_normal((n, H)).astype(dt),
             dh2=rng.standard_normal((n, H)).astype(dt))
    return d


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n,H", [(1, 1), (3, 5), (37, 17), (8, 67), (64, 128)])
def test_cell_kernels_match_ref(mode, dt, n, H, isa, nthreads):
    rng = np.random.default_rng(n * 100 + H)
    inp = _cell_inputs(mode, n, H, dt, rng)
    tol = dict(rtol=2e-6, atol=2e-6) if dt == np.float32 else dict(rtol=1e-13, atol=1e-13)
    res = []
    for ref in (True, False):
        g, c = inp["g"].copy(), inp["c"].copy()
        h = np.full((n, H), np.nan, dt)
        kw = {}
        if mode == "LSTM":
            kw = dict(c=c)
        elif mode == "GRU":
            kw = dict(gh=inp["gh"], hp=inp["hp"])
        _C.rnn_cell_forward(mode, g, h, ref=ref, **kw)
        G = _C.RNN_GATES[mode]
        dg = np.full((n, G * H), np.nan, dt)
        bkw = {}
        if mode == "LSTM":
            bkw = dict(dc=inp["c"].copy() * 0.5, cp=inp["c"])
        elif mode == "GRU":
            bkw = dict(dgh=np.full((n, 3 * H), np.nan, dt), dhp=np.full((n, H), np.nan, dt),
                       gh=inp["gh"], hp=inp["hp"])
        _C.rnn_cell_backward(mode, dg, inp["dh"], g, dh2=inp["dh2"], ref=ref, **bkw)
        res.append([g, h, c, dg] + [v for v in bkw.values() if v is not None])
    for a, b in zip(*res):
        np.testing.assert_allclose(b, a, **tol)


def test_cell_kernel_math_against_numpy():
    rng = np.random.default_rng(0)
    n, H = 4, 6
    pre = rng.standard_normal((n, 4 * H))
    c0 = rng.standard_normal((n, H))
    g, c, h = pre.copy(), c0.copy(), np.empty((n, H))
    _C.rnn_cell_forward("LSTM", g, h, c=c)
    i, f, gg, o = np.split(pre, 4, axis=1)
    cr = _sig(f) * c0 + _sig(i) * np.tanh(gg)
    np.testing.assert_allclose(c, cr, rtol=1e-13)
    np.testing.assert_allclose(h, _sig(o) * np.tanh(cr), rtol=1e-13)
    np.testing.assert_allclose(g, np.concatenate([_sig(i), _sig(f), np.tanh(gg), _sig(o)], 1),
                               rtol=1e-13)


def test_cell_kernel_bad_input():
    g = np.zeros((3, 8), np.float32)
    with pytest.raises(ValueError, match="unknown RNN mode"):
        _C.rnn_cell_forward("LSTMX", g, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="h has shape"):
        _C.rnn_cell_forward("LSTM", g, np.zeros((3, 3), np.float32), c=np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _C.rnn_cell_forward("LSTM", g, np.zeros((3, 2)), c=np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="required"):
        _C.rnn_cell_forward("LSTM", g, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="batch_sizes"):
        _C.rnn_seq_forward("RNN_TANH", np.zeros((6, 2), np.float32), None,
                           np.zeros((2, 2), np.float32), None, np.zeros((6, 2), np.float32),
                           np.zeros((6, 2), np.float32), None, None, np.zeros((2, 2), np.float32),
                           None, None, np.array([2, 3, 1]), False)


# ---- modules against the numpy reference (every ISA, 1 and 2 threads) ------------------------
@pytest.mark.parametrize("mode", MODES)
def test_module_forward_numpy_every_isa(mode, isa, nthreads):
    ce.manual_seed(1)
    m = _make(mode, 5, 40, 2, bidirectional=True, dtype=ce.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 6, 5))
    h0 = rng.standard_normal((4, 6, 40))
    c0 = rng.standard_normal((4, 6, 40))
    hx = (_t(h0), _t(c0)) if mode == "LSTM" else _t(h0)
    out, hn = m(_t(x), hx)
    ro, rh, rc = _np_rnn(m, x, h0, c0 if mode == "LSTM" else None)
    np.testing.assert_allclose(out.detach().numpy(), ro, rtol=1e-9, atol=1e-12)
    if mode == "LSTM":
        np.testing.assert_allclose(hn[0].detach().numpy(), rh, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(hn[1].detach().numpy(), rc, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_allclose(hn.detach().numpy(), rh, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("H", [100, 300])
def test_lstm_wide_hidden_blocks(H, nthreads):
    """hidden sizes where the recurrent product runs in column blocks with a remainder"""
    for dt in (ce.float64, ce.float32):
        ce.manual_seed(3)
        m = nn.LSTM(3, H, dtype=dt)
        x = np.random.default_rng(0).standard_normal((4, 5, 3))
        out, _ = m(_t(x, dt.np))
        ro, _, _ = _np_rnn(m, x)
        tol = dict(rtol=1e-9, atol=1e-12) if dt == ce.float64 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out.detach().numpy(), ro, **tol)


def test_threads_agree():
    ce.manual_seed(0)
    m = nn.GRU(7, 64, 2, bidirectional=True)
    x = _t(np.random.default_rng(0).standard_normal((9, 13, 7)), np.float32, grad=True)
    res = []
    old = ce.get_num_threads()
    try:
        for nt in (1, 2):
            ce.set_num_threads(nt)
            m.zero_grad()
            x.grad = None
            out, h = m(x)
            (out.sum() + h.sum()).backward()
            res.append([out.detach().numpy().copy(), x.grad.detach().numpy().copy()]
                       + [p.grad.detach().numpy().copy() for p in m.parameters()])
    finally:
        ce.set_num_threads(old)
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- gradcheck (float64, small) ---------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opts", [dict(), dict(num_layers=2, bidirectional=True),
                                  dict(bias=False, batch_first=True)])
def test_module_gradcheck(mode, opts):
    ce.manual_seed(4)
    m = _make(mode, 3, 4, dtype=ce.float64, **opts)
    D = 2 if m.bidirectional else 1
    rng = np.random.default_rng(5)
    x = _t(rng.standard_normal((2, 3, 3)), grad=True)
    h0 = _t(rng.standard_normal((m.num_layers * D, 2 if opts.get("batch_first") else 3, 4)),
            grad=True)
    params = list(m.parameters())
    if mode == "LSTM":
        c0 = _t(rng.standard_normal(h0.shape), grad=True)

        def fn(x, h0, c0, *p):
            out, (h, c) = m(x, (h0, c0))
            return out, h, c
        assert gradcheck(fn, (x, h0, c0, *params))
    else:
        def fn(x, h0, *p):
            out, h = m(x, h0)
            return out, h
        assert gradcheck(fn, (x, h0, *params))


def test_lstm_proj_gradcheck():
    ce.manual_seed(6)
    m = nn.LSTM(3, 5, 2, proj_size=2, bidirectional=True, dtype=ce.float64)
    rng = np.random.default_rng(7)
    x = _t(rng.standard_normal((3, 2, 3)), grad=True)
    h0 = _t(rng.standard_normal((4, 2, 2)), grad=True)
    c0 = _t(rng.standard_normal((4, 2, 5)), grad=True)

    def fn(x, h0, c0, *p):
        out, (h, c) = m(x, (h0, c0))
        return out, h, c
    assert gradcheck(fn, (x, h0, c0, *m.parameters()))


@pytest.mark.parametrize("mode", MODES)
def test_packed_gradcheck(mode):
    ce.manual_seed(8)
    m = _make(mode, 2, 3, bidirectional=True, dtype=ce.float64)
    rng = np.random.default_rng(9)
    x = _t(rng.standard_normal((4, 3, 2)), grad=True)

    def fn(x, *p):
        packed = pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)
        out, h = m(packed)
        h = h[0] if mode == "LSTM" else h
        return out.data, h
    assert gradcheck(fn, (x, *m.parameters()))


@pytest.mark.parametrize("cell", ["RNNCell", "RNNCell-relu", "LSTMCell", "GRUCell"])
def test_cell_gradcheck(cell):
    ce.manual_seed(10)
    name, _, nl = cell.partition("-")
    kw = dict(nonlinearity=nl) if nl else {}
    m = getattr(nn, name)(3, 4, dtype=ce.float64, **kw)
    rng = np.random.default_rng(11)
    x = _t(rng.standard_normal((2, 3)), grad=True)
    h = _t(rng.standard_normal((2, 4)), grad=True)
    if name == "LSTMCell":
        c = _t(rng.standard_normal((2, 4)), grad=True)
        assert gradcheck(lambda x, h, c, *p: m(x, (h, c)), (x, h, c, *m.parameters()))
    else:
        assert gradcheck(lambda x, h, *p: m(x, h), (x, h, *m.parameters()))


# ---- packed sequences ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_packed_matches_per_sequence(mode):
    """each sequence of a packed, unsorted batch gives what it gives alone"""
    ce.manual_seed(12)
    m = _make(mode, 3, 5, 2, bidirectional=True, dtype=ce.float64)
    rng = np.random.default_rng(13)
    lengths = [3, 6, 1, 6, 4]
    seqs = [rng.standard_normal((L, 3)) for L in lengths]
    packed = pack_sequence([_t(s) for s in seqs], enforce_sorted=False)
    out, hn = m(packed)
    padded, lens = pad_packed_sequence(out, batch_first=True)
    assert lens.detach().numpy().tolist() == lengths
    for b, s in enumerate(seqs):
        o1, h1 = m(_t(s[:, None, :]))
        np.testing.assert_allclose(padded.detach().numpy()[b, :lengths[b]], o1.detach().numpy()[:, 0], rtol=1e-12,
                                   atol=1e-13)
        assert np.all(padded.detach().numpy()[b, lengths[b]:] == 0)
        if mode == "LSTM":
            np.testing.assert_allclose(hn[0].detach().numpy()[:, b], h1[0].detach().numpy()[:, 0], rtol=1e-12)
            np.testing.assert_allclose(hn[1].detach().numpy()[:, b], h1[1].detach().numpy()[:, 0], rtol=1e-12)
        else:
            np.testing.assert_allclose(hn.detach().numpy()[:, b], h1.detach().numpy()[:, 0], rtol=1e-12)


def test_packed_equal_lengths_equals_padded():
    ce.manual_seed(14)
    m = nn.LSTM(3, 4, 2, bidirectional=True, dtype=ce.float64)
    x = _t(np.random.default_rng(0).standard_normal((5, 3, 3)))
    o1, (h1, c1) = m(x)
    o2, (h2, c2) = m(pack_padded_sequence(x, [5, 5, 5]))
    np.testing.assert_allclose(o2.data.detach().numpy(), o1.detach().numpy().reshape(15, 8), rtol=1e-13)
    np.testing.assert_allclose(h2.detach().numpy(), h1.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(c2.detach().numpy(), c1.detach().numpy(), rtol=1e-13)


def test_pack_pad_roundtrip_and_fields():
    x = _t(np.arange(4 * 3 * 2, dtype=np.float64).reshape(4, 3, 2), grad=True)
    p = pack_padded_sequence(x, ce.tensor([2, 4, 3]), enforce_sorted=False)
    assert isinstance(p, PackedSequence)
    assert p.batch_sizes.detach().numpy().tolist() == [3, 3, 2, 1]
    assert p.batch_sizes.dtype == ce.int64
    assert p.sorted_indices.detach().numpy().tolist() == [1, 2, 0]
    assert p.unsorted_indices.detach().numpy().tolist() == [2, 0, 1]
    pad, lens = pad_packed_sequence(p, padding_value=-1.0, total_length=6)
    assert tuple(pad.shape) == (6, 3, 2)
    assert lens.detach().numpy().tolist() == [2, 4, 3]
    ref = x.detach().numpy().copy()
    for b, L in enumerate([2, 4, 3]):
        ref[L:, b] = -1
    np.testing.assert_array_equal(pad.detach().numpy()[:4], ref)
    assert np.all(pad.detach().numpy()[4:] == -1)
    pad.sum().backward()
    g = np.zeros((4, 3, 2))
    for b, L in enumerate([2, 4, 3]):
        g[:L, b] = 1
    np.testing.assert_array_equal(x.grad.detach().numpy(), g)
    seqs = unpack_sequence(p)
    assert [tuple(s.shape) for s in seqs] == [(2, 2), (4, 2), (3, 2)]
    un = unpad_sequence(x, [2, 4, 3])
    for s, u in zip(seqs, un):
        np.testing.assert_array_equal(s.detach().numpy(), u.detach().numpy())
    pf = pack_padded_sequence(x.transpose(0, 1), [2, 4, 3], batch_first=True,
                              enforce_sorted=False)
    np.testing.assert_array_equal(pf.data.detach().numpy(), p.data.detach().numpy())
    padf, _ = pad_packed_sequence(pf, batch_first=True)
    np.testing.assert_array_equal(padf.detach().numpy(), pad.detach().numpy()[:4].transpose(1, 0, 2) * 0
                                  + np.where(pad.detach().numpy()[:4] == -1, 0,
                                             pad.detach().numpy()[:4]).transpose(1, 0, 2))


def test_pack_errors():
    x = _t(np.zeros((5, 3, 2)))
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        pack_padded_sequence(x, [2, 5, 1])
    with pytest.raises(RuntimeError, match="greater than 0"):
        pack_padded_sequence(x, [5, 3, 0])
    with pytest.raises(RuntimeError, match="greater than 0"):
        pack_padded_sequence(x, [0, 5, 3], enforce_sorted=False)
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to batch_size"):
        pack_padded_sequence(x, [5, 3])
    with pytest.raises(RuntimeError, match="exceeds"):
        pack_padded_sequence(x, [6, 3, 2])
    with pytest.raises(RuntimeError, match="1D CPU int64"):
        pack_padded_sequence(x, ce.tensor([[5, 3, 2]]))
    p = pack_padded_sequence(x, [5, 3, 2])
    with pytest.raises(ValueError, match="Expected total_length to be at least"):
        pad_packed_sequence(p, total_length=4)


def test_length_one_sequences():
    m = nn.GRU(2, 3, dtype=ce.float64)
    x = _t(np.random.default_rng(0).standard_normal((1, 4, 2)))
    out, h = m(pack_padded_sequence(x, [1, 1, 1, 1]))
    o2, h2 = m(x)
    np.testing.assert_allclose(out.data.detach().numpy(), o2.detach().numpy()[0], rtol=1e-13)
    np.testing.assert_allclose(h.detach().numpy(), h2.detach().numpy(), rtol=1e-13)


# ---- shapes, options, errors --------------------------------------------------------------------
def test_unbatched_and_batch_first_shapes():
    m = nn.LSTM(3, 4, 2, proj_size=2, bidirectional=True)
    x = ce.randn(5, 3)
    out, (h, c) = m(x)
    assert tuple(out.shape) == (5, 4) and tuple(h.shape) == (4, 2) and tuple(c.shape) == (4, 4)
    out2, (h2, c2) = m(x.unsqueeze(1))
    np.testing.assert_allclose(out.detach().numpy(), out2.detach().numpy()[:, 0], rtol=1e-6)
    out3, _ = m(x, (h, c))
    assert tuple(out3.shape) == (5, 4)
    mb = nn.GRU(3, 4, batch_first=True)
    out, h = mb(ce.randn(2, 5, 3))
    assert tuple(out.shape) == (2, 5, 4) and tuple(h.shape) == (1, 2, 4)
    out, h = mb(ce.randn(5, 3))
    assert tuple(out.shape) == (5, 4) and tuple(h.shape) == (1, 4)
    out, h = nn.RNN(3, 4)(ce.randn(5, 0, 3))
    assert tuple(out.shape) == (5, 0, 4) and tuple(h.shape) == (1, 0, 4)
    hc = nn.LSTMCell(3, 4)(ce.randn(3))
    assert tuple(hc[0].shape) == (4,) and tuple(hc[1].shape) == (4,)
    assert tuple(nn.GRUCell(3, 4)(ce.randn(0, 3)).shape) == (0, 4)


def test_dropout_between_layers():
    ce.manual_seed(0)
    m = nn.LSTM(3, 8, 3, dropout=0.5, dtype=ce.float64)
    x = _t(np.random.default_rng(0).standard_normal((4, 2, 3)))
    m.eval()
    ref = _np_rnn(m, x.detach().numpy())[0]
    np.testing.assert_allclose(m(x)[0].detach().numpy(), ref, rtol=1e-12)
    m.train()
    ce.manual_seed(5)
    a = m(x)[0].detach().numpy()
    ce.manual_seed(5)
    b = m(x)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, ref)
    m0 = nn.GRU(3, 8, 2, dropout=0.0, dtype=ce.float64)
    m0.train()
    np.testing.assert_allclose(m0(x)[0].detach().numpy(), _np_rnn(m0, x.detach().numpy())[0], rtol=1e-12)
    with pytest.warns(UserWarning, match="dropout option adds dropout after all but last"):
        nn.GRU(3, 4, dropout=0.2)


def test_default_init_and_names():
    ce.manual_seed(0)
    m = nn.LSTM(10, 16, 2, bidirectional=True, proj_size=4)
    names = [n for n, _ in m.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                         "weight_hr_l0"]
    assert names[5] == "weight_ih_l0_reverse" and len(names) == 20
    assert tuple(m.weight_ih_l1.shape) == (64, 8) and tuple(m.weight_hh_l0.shape) == (64, 4)
    assert tuple(m.weight_hr_l0.shape) == (4, 16)
    bound = 1 / math.sqrt(16)
    allw = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert np.abs(allw).max() <= bound and np.abs(allw).max() > 0.9 * bound
    assert abs(allw.mean()) < 0.02
    assert len(m.all_weights) == 4 and len(m.all_weights[0]) == 5
    assert repr(m) == "LSTM(10, 16, proj_size=4, num_layers=2, bidirectional=True)"
    assert repr(nn.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"
    assert repr(nn.GRUCell(3, 4, bias=False)) == "GRUCell(3, 4, bias=False)"
    assert [n for n, _ in nn.GRU(2, 3, bias=False).named_parameters()] == ["weight_ih_l0",
                                                                          "weight_hh_l0"]


def test_constructor_errors():
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.GRU(3, 0)
    with pytest.raises(TypeError, match="hidden_size should be of type int, got: float"):
        nn.GRU(3, 4.0)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        nn.RNN(3, 4, 0)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")


def test_forward_errors():
    m = nn.LSTM(4, 6)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. "
                                           "Expected 4, got 5"):
        m(ce.randn(5, 3, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 3, 6\), got \[1, 3, 5\]"):
        m(ce.randn(5, 3, 4), (ce.randn(1, 3, 5), ce.randn(1, 3, 6)))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 3, 6\), got \[1, 2, 6\]"):
        m(ce.randn(5, 3, 4), (ce.randn(1, 3, 6), ce.randn(1, 2, 6)))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx and cx should also be 3-D"):
        m(ce.randn(5, 3, 4), (ce.randn(3, 6), ce.randn(3, 6)))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D instead"):
        m(ce.randn(5, 3, 4, 1))
    with pytest.raises(ValueError, match="RNN input dtype"):
        m(ce.randn(5, 3, 4, dtype=ce.float64))
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
        m(ce.randn(0, 3, 4))
    g = nn.GRU(4, 6)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 3, 6\), got \[1, 3, 5\]"):
        g(ce.randn(5, 3, 4), ce.randn(1, 3, 5))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx should also be 2-D"):
        g(ce.randn(5, 4), ce.randn(1, 1, 6))
    with pytest.raises(ValueError, match="RNN: Expected input to be 2D or 3D, got 1D tensor"):
        nn.RNN(4, 6)(ce.randn(4))
    c = nn.GRUCell(4, 6)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 5 expected 4"):
        c(ce.randn(3, 5))
    with pytest.raises(RuntimeError, match="Input batch size 3 doesn't match hidden0 batch size 2"):
        c(ce.randn(3, 4), ce.randn(2, 6))
    with pytest.raises(RuntimeError, match="hidden0 has inconsistent hidden_size: got 5, "
                                           "expected 6"):
        c(ce.randn(3, 4), ce.randn(3, 5))
    with pytest.raises(RuntimeError, match="hidden state dtype"):
        g(ce.randn(5, 3, 4), ce.randn(1, 3, 6, dtype=ce.float64))
    with pytest.raises(RuntimeError, match="hidden0 dtype"):
        c(ce.randn(3, 4), ce.randn(3, 6, dtype=ce.float64))
    with pytest.raises(ValueError, match="LSTMCell: Expected input to be 1D or 2D, got 3D"):
        nn.LSTMCell(4, 6)(ce.randn(1, 3, 4))


# ---- parity with torch -------------------------------------------------------------------------
def _copy_from_torch(tm, cm):
    cm.load_state_dict({k: ce.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


def _torch_module(torch, mode, *args, **kw):
    if mode == "RNN_RELU":
        kw["nonlinearity"] = "relu"
    cls = {"RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN, "LSTM": torch.nn.LSTM,
           "GRU": torch.nn.GRU}[mode]
    return cls(*args, **kw)


def _compare_grads(torch_params, ce_params, tol):
    tp = dict(torch_params)
    cp = dict(ce_params)
    assert set(tp) == set(cp)
    for n in tp:
        np.testing.assert_allclose(cp[n].grad.detach().numpy(), tp[n].grad.detach().numpy(), err_msg=n, **tol)


OPTS = [dict(), dict(num_layers=2), dict(bidirectional=True), dict(num_layers=2, bidirectional=True),
        dict(batch_first=True), dict(bias=False), dict(num_layers=2, bidirectional=True,
                                                         batch_first=True, bias=False),
        dict(num_layers=2, dropout=0.0)]


PROJ = [dict(proj_size=3), dict(proj_size=2, num_layers=2, bidirectional=True)]


@pytest.mark.parametrize("mode,opts", [(m, o) for m in MODES for o in OPTS]
                         + [("LSTM", o) for o in PROJ])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("with_h0", [False, True])
def test_torch_parity(mode, opts, dt, with_h0):
    torch = _torch()
    tdt = torch.float64 if dt == np.float64 else torch.float32
    torch.manual_seed(0)
    tm = _torch_module(torch, mode, 5, 6, **opts).to(tdt)
    tm.train()
    cm = _make(mode, 5, 6, dtype=ce.float64 if dt == np.float64 else ce.float32, **opts)
    _copy_from_torch(tm, cm)
    D = 2 if opts.get("bidirectional") else 1
    L = opts.get("num_layers", 1)
    Hs = opts.get("proj_size", 0) or 6
    T, N = 7, 4
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, 5) if opts.get("batch_first") else (T, N, 5)).astype(dt)
    xt = torch.tensor(x, requires_grad=True)
    xc = _t(x, grad=True)
    targs, cargs = [xt], [xc]
    if with_h0:
        h0 = rng.standard_normal((L * D, N, Hs)).astype(dt)
        c0 = rng.standard_normal((L * D, N, 6)).astype(dt)
        h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
        h0c, c0c = _t(h0, grad=True), _t(c0, grad=True)
        targs.append((h0t, c0t) if mode == "LSTM" else h0t)
        cargs.append((h0c, c0c) if mode == "LSTM" else h0c)
    ot, ht = tm(*targs)
    oc, hc = cm(*cargs)
    wo = rng.standard_normal(ot.shape).astype(dt)
    tol = TOL[dt]
    np.testing.assert_allclose(oc.detach().numpy(), ot.detach().numpy(), **tol)
    if mode == "LSTM":
        wh = rng.standard_normal(ht[0].shape).astype(dt)
        wc = rng.standard_normal(ht[1].shape).astype(dt)
        np.testing.assert_allclose(hc[0].detach().numpy(), ht[0].detach().numpy(), **tol)
        np.testing.assert_allclose(hc[1].detach().numpy(), ht[1].detach().numpy(), **tol)
        lt = (ot * torch.tensor(wo)).sum() + (ht[0] * torch.tensor(wh)).sum() + \
            (ht[1] * torch.tensor(wc)).sum()
        lc = (oc * _t(wo)).sum() + (hc[0] * _t(wh)).sum() + (hc[1] * _t(wc)).sum()
    else:
        wh = rng.standard_normal(ht.shape).astype(dt)
        np.testing.assert_allclose(hc.detach().numpy(), ht.detach().numpy(), **tol)
        lt = (ot * torch.tensor(wo)).sum() + (ht * torch.tensor(wh)).sum()
        lc = (oc * _t(wo)).sum() + (hc * _t(wh)).sum()
    lt.backward()
    lc.backward()
    gtol = dict(rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    np.testing.assert_allclose(xc.grad.detach().numpy(), xt.grad.detach().numpy(), **gtol)
    if with_h0:
        np.testing.assert_allclose(h0c.grad.detach().numpy(), h0t.grad.detach().numpy(), **gtol)
        if mode == "LSTM":
            np.testing.assert_allclose(c0c.grad.detach().numpy(), c0t.grad.detach().numpy(), **gtol)
    _compare_grads(tm.named_parameters(), cm.named_parameters(), gtol)


@pytest.mark.parametrize("mode,opts", [(m, o) for m in MODES for o in
                                        (dict(), dict(num_layers=2, bidirectional=True))]
                         + [("LSTM", dict(bidirectional=True, proj_size=2))])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_torch_parity_packed(mode, enforce_sorted, opts):
    torch = _torch()
    from torch.nn.utils import rnn as tr
    torch.manual_seed(1)
    tm = _torch_module(torch, mode, 3, 5, **opts).double()
    cm = _make(mode, 3, 5, dtype=ce.float64, **opts)
    _copy_from_torch(tm, cm)
    lengths = [6, 4, 4, 2, 1] if enforce_sorted else [2, 6, 1, 4, 3]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5, 3))
    xt = torch.tensor(x, requires_grad=True)
    xc = _t(x, grad=True)
    pt = tr.pack_padded_sequence(xt, lengths, enforce_sorted=enforce_sorted)
    pc = pack_padded_sequence(xc, lengths, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(pc.batch_sizes.detach().numpy(), pt.batch_sizes.detach().numpy())
    if enforce_sorted:
        assert pc.sorted_indices is None and pc.unsorted_indices is None
    else:
        np.testing.assert_array_equal(pc.sorted_indices.detach().numpy(), pt.sorted_indices.detach().numpy())
        np.testing.assert_array_equal(pc.unsorted_indices.detach().numpy(), pt.unsorted_indices.detach().numpy())
    ot, ht = tm(pt)
    oc, hc = cm(pc)
    assert isinstance(oc, PackedSequence)
    np.testing.assert_allclose(oc.data.detach().numpy(), ot.data.detach().numpy(), rtol=1e-6, atol=1e-9)
    hts = ht if mode == "LSTM" else (ht,)
    hcs = hc if mode == "LSTM" else (hc,)
    for a, b in zip(hcs, hts):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-9)
    padt, lt = tr.pad_packed_sequence(ot, batch_first=True)
    padc, lc = pad_packed_sequence(oc, batch_first=True)
    np.testing.assert_allclose(padc.detach().numpy(), padt.detach().numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(lc.detach().numpy(), lt.detach().numpy())
    w = rng.standard_normal(padt.shape)
    wh = [rng.standard_normal(h.shape) for h in hts]
    losst = (padt * torch.tensor(w)).sum() + sum((h * torch.tensor(v)).sum() for h, v in zip(hts, wh))
    lossc = (padc * _t(w)).sum() + sum((h * _t(v)).sum() for h, v in zip(hcs, wh))
    losst.backward()
    lossc.backward()
    np.testing.assert_allclose(xc.grad.detach().numpy(), xt.grad.detach().numpy(), rtol=1e-6, atol=1e-9)
    _compare_grads(tm.named_parameters(), cm.named_parameters(), dict(rtol=1e-6, atol=1e-9))


@pytest.mark.parametrize("cell", ["RNNCell", "RNNCell-relu", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_torch_parity_cells(cell, dt, bias):
    torch = _torch()
    name, _, nl = cell.partition("-")
    kw = dict(nonlinearity=nl) if nl else {}
    tdt = torch.float64 if dt == np.float64 else torch.float32
    torch.manual_seed(2)
    tm = getattr(torch.nn, name)(4, 5, bias=bias, **kw).to(tdt)
    cm = getattr(nn, name)(4, 5, bias=bias, dtype=ce.float64 if dt == np.float64 else ce.float32,
                           **kw)
    _copy_from_torch(tm, cm)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4)).astype(dt)
    h = rng.standard_normal((3, 5)).astype(dt)
    c = rng.standard_normal((3, 5)).astype(dt)
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    xc, hc, cc = (_t(a, grad=True) for a in (x, h, c))
    tol = TOL[dt]
    if name == "LSTMCell":
        rt, rc = tm(xt, (ht, ct)), cm(xc, (hc, cc))
    else:
        rt, rc = (tm(xt, ht),), (cm(xc, hc),)
    ws = [rng.standard_normal(r.shape).astype(dt) for r in rt]
    for a, b in zip(rc, rt):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **tol)
    sum((r * torch.tensor(w)).sum() for r, w in zip(rt, ws)).backward()
    sum((r * _t(w)).sum() for r, w in zip(rc, ws)).backward()
    gtol = dict(rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
    pairs = [(xc, xt), (hc, ht)] + ([(cc, ct)] if name == "LSTMCell" else [])
    for a, b in pairs:
        np.testing.assert_allclose(a.grad.detach().numpy(), b.grad.detach().numpy(), **gtol)
    _compare_grads(tm.named_parameters(), cm.named_parameters(), gtol)
    # unbatched and default state
    np.testing.assert_allclose(
        (cm(xc[0])[0] if name == "LSTMCell" else cm(xc[0])).detach().numpy(),
        (tm(xt[0])[0] if name == "LSTMCell" else tm(xt[0])).detach().numpy(), **tol)


def test_state_dict_both_ways():
    torch = _torch()
    cm = nn.LSTM(3, 6, 2, bidirectional=True, proj_size=2)
    tm = torch.nn.LSTM(3, 6, 2, bidirectional=True, proj_size=2)
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in cm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(cm(ce.tensor(x))[0].detach().numpy(), tm(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    assert list(cm.state_dict()) == list(tm.state_dict())


def test_torch_utils_parity():
    torch = _torch()
    from torch.nn.utils import rnn as tr
    rng = np.random.default_rng(4)
    seqs = [rng.standard_normal((L, 2)) for L in (3, 5, 1)]
    pt = tr.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    pc = pack_sequence([_t(s) for s in seqs], enforce_sorted=False)
    np.testing.assert_array_equal(pc.data.detach().numpy(), pt.data.detach().numpy())
    np.testing.assert_array_equal(pc.batch_sizes.detach().numpy(), pt.batch_sizes.detach().numpy())
    for a, b in zip(unpack_sequence(pc), tr.unpack_sequence(pt)):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    padded = rng.standard_normal((5, 3, 2))
    for bf in (False, True):
        pd = padded.transpose(1, 0, 2).copy() if bf else padded
        for a, b in zip(unpad_sequence(_t(pd), [5, 2, 3], batch_first=bf),
                        tr.unpad_sequence(torch.tensor(pd), torch.tensor([5, 2, 3]),
                                          batch_first=bf)):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    for bf in (False, True):
        a, la = pad_packed_sequence(pc, batch_first=bf, padding_value=7.0, total_length=6)
        b, lb = tr.pad_packed_sequence(pt, batch_first=bf, padding_value=7.0, total_length=6)
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
        np.testing.assert_array_equal(la.detach().numpy(), lb.detach().numpy())


def test_sequence_tagging_example_smoke(capsys):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                        "sequence_tagging.py")
    spec = importlib.util.spec_from_file_location("sequence_tagging", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--steps", "60", "--batch", "16", "--max-len", "10"])
    losses = res["losses"]
    assert len(losses) == 60 and np.mean(losses[-10:]) < np.mean(losses[:10])
    assert "held-out accuracy" in capsys.readouterr().out
