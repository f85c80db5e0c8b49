"""Arrays whose data starts at an address that is not a multiple of their itemsize (e.g. a float32
view one byte into a uint8 buffer) through every kernel family, at the binding level and through
the public API (ce.from_numpy). The bindings copy such inputs once and compute misaligned outputs
in an aligned copy that is copied back: results must equal those of aligned arrays, outputs must
land in the caller's array, and the sanitizer job (.ci/sanitize.sh, UBSan) must report nothing
(a misaligned typed load is undefined behaviour)."""
import numpy as np
import pytest

import cengine as ce
from cengine import _C
from cengine import nn
from cengine.nn import functional as F

DTYPES = [np.float32, np.float64]


def odd(a):
    """A copy of `a` whose data starts one byte past an aligned address (not aligned)."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + a.itemsize, np.uint8)
    v = buf[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
    v[...] = a
    assert not v.flags.aligned and v.flags.c_contiguous
    return v


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation(dtype, isa, nthreads):
    rng = np.random.default_rng(0)
    x, dy = rand(rng, 1001, dtype), rand(rng, 1001, dtype)
    for kind in _C.ACT_KINDS:
        y = _C.act_forward(kind, x)
        np.testing.assert_array_equal(_C.act_forward(kind, odd(x)), y)
        out = odd(np.zeros_like(x))
        assert _C.act_forward(kind, odd(x), out=out) is out
        np.testing.assert_array_equal(out, y)
        ox = odd(x)   # in place on a misaligned array
        _C.act_forward(kind, ox, out=ox)
        np.testing.assert_array_equal(ox, y)
        kw = {"y": y} if _C.act_backward_uses(kind) == "y" else {"x": x}
        okw = {k: odd(v) for k, v in kw.items()}
        g = _C.act_backward(kind, dy, **kw)
        np.testing.assert_array_equal(_C.act_backward(kind, odd(dy), **okw), g)
        acc, want = odd(np.ones_like(x)), np.ones_like(x)
        _C.act_backward(kind, dy, out=want, accumulate=True, **kw)
        _C.act_backward(kind, odd(dy), out=acc, accumulate=True, **okw)
        np.testing.assert_array_equal(acc, want)
        np.testing.assert_array_equal(_C.act_forward_ref(kind, odd(x)), _C.act_forward_ref(kind, x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(dtype, isa, nthreads):
    rng = np.random.default_rng(1)
    x, dy = rand(rng, (37, 129), dtype), rand(rng, (37, 129), dtype)
    for log in (False, True):
        y = _C.softmax_forward(x, log=log)
        np.testing.assert_array_equal(_C.softmax_forward(odd(x), log=log), y)
        out = odd(np.zeros_like(x))
        assert _C.softmax_forward(odd(x), out=out, log=log) is out
        np.testing.assert_array_equal(out, y)
        dx = _C.softmax_backward(y, dy, log=log)
        np.testing.assert_array_equal(_C.softmax_backward(odd(y), odd(dy), log=log), dx)
        acc, want = odd(np.ones_like(x)), np.ones_like(x)
        _C.softmax_backward(y, dy, out=want, log=log, accumulate=True)
        _C.softmax_backward(odd(y), odd(dy), out=acc, log=log, accumulate=True)
        np.testing.assert_array_equal(acc, want)
        np.testing.assert_array_equal(_C.softmax_forward_ref(odd(x), log=log),
                                      _C.softmax_forward_ref(x, log=log))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy(dtype, isa, nthreads):
    rng = np.random.default_rng(2)
    N, C = 33, 71
    x = rand(rng, (N, C), dtype)
    t = rng.integers(0, C, N).astype(np.int64)
    t[3] = -100
    w = rng.random(C).astype(dtype)
    g = rand(rng, N, dtype)
    q = rng.random((N, C)).astype(dtype)
    q /= q.sum(1, keepdims=True)
    loss, lse, wrow = _C.cross_entropy_forward(x, t, w, label_smoothing=0.1)
    for a, b in zip(_C.cross_entropy_forward(odd(x), odd(t), odd(w), label_smoothing=0.1),
                    (loss, lse, wrow)):
        np.testing.assert_array_equal(a, b)
    d = _C.cross_entropy_backward(x, t, lse, g, w, label_smoothing=0.1)
    out = odd(np.zeros_like(x))
    assert _C.cross_entropy_backward(odd(x), odd(t), odd(lse), odd(g), odd(w), label_smoothing=0.1,
                                     out=out) is out
    np.testing.assert_array_equal(out, d)
    pl, plse = _C.cross_entropy_prob_forward(x, q, w, label_smoothing=0.1)
    for a, b in zip(_C.cross_entropy_prob_forward(odd(x), odd(q), odd(w), label_smoothing=0.1),
                    (pl, plse)):
        np.testing.assert_array_equal(a, b)
    pd = _C.cross_entropy_prob_backward(x, q, plse, g, w, label_smoothing=0.1)
    np.testing.assert_array_equal(
        _C.cross_entropy_prob_backward(odd(x), odd(q), odd(plse), odd(g), odd(w), label_smoothing=0.1), pd)
    np.testing.assert_array_equal(_C.cross_entropy_backward_ref(odd(x), odd(t), odd(lse), odd(g), odd(w)),
                                  _C.cross_entropy_backward_ref(x, t, lse, g, w))


@pytest.mark.parametrize("dtype", DTYPES)
def test_norms(dtype, isa, nthreads):
    rng = np.random.default_rng(3)
    x, dy = rand(rng, (29, 67), dtype), rand(rng, (29, 67), dtype)
    w, b = rand(rng, 67, dtype), rand(rng, 67, dtype)
    y, m, r = _C.layer_norm_forward(x, w, b)
    out = odd(np.zeros_like(x))
    y2, m2, r2 = _C.layer_norm_forward(odd(x), odd(w), odd(b), out=out)
    assert y2 is out
    for a, e in zip((y2, m2, r2), (y, m, r)):
        np.testing.assert_array_equal(a, e)
    dx, dw, db = _C.layer_norm_backward(dy, x, m, r, w, need_dweight=True, need_dbias=True)
    odw, odb, odx = odd(np.zeros(67, dtype)), odd(np.zeros(67, dtype)), odd(np.zeros_like(x))
    res = _C.layer_norm_backward(odd(dy), odd(x), odd(m), odd(r), odd(w), out=odx, dweight=odw,
                                 dbias=odb)
    assert res[0] is odx and res[1] is odw and res[2] is odb
    for a, e in zip(res, (dx, dw, db)):
        np.testing.assert_array_equal(a, e)
    y, r = _C.rms_norm_forward(x, w)
    y2, r2 = _C.rms_norm_forward(odd(x), odd(w))
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(r2, r)
    dx, dw = _C.rms_norm_backward(dy, x, r, w, need_dweight=True)
    odw = odd(np.zeros(67, dtype))
    dx2, dw2 = _C.rms_norm_backward(odd(dy), odd(x), odd(r), odd(w), dweight=odw)
    assert dw2 is odw
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(dw2, dw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding(dtype, isa, nthreads):
    rng = np.random.default_rng(4)
    W = rand(rng, (50, 19), dtype)
    idx = rng.integers(0, 50, (7, 9)).astype(np.int64)
    dy = rand(rng, (7, 9, 19), dtype)
    e = _C.embedding_forward(W, idx)
    out = odd(np.zeros_like(e))
    assert _C.embedding_forward(odd(W), odd(idx), out=out) is out
    np.testing.assert_array_equal(out, e)
    dW = _C.embedding_backward(dy, idx, 50, padding_idx=3)
    odW = odd(np.zeros((50, 19), dtype))
    assert _C.embedding_backward(odd(dy), odd(idx), 50, padding_idx=3, out=odW) is odW
    np.testing.assert_array_equal(odW, dW)
    np.testing.assert_array_equal(_C.embedding_backward_ref(odd(dy), odd(idx), 50), 
                                  _C.embedding_backward_ref(dy, idx, 50))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm(dtype, isa, nthreads):
    rng = np.random.default_rng(5)
    A, B, bias = rand(rng, (3, 37, 41), dtype), rand(rng, (41, 29), dtype), rand(rng, 29, dtype)
    C0 = rand(rng, (3, 37, 29), dtype)
    ref = C0.copy()
    _C.gemm(A, B, ref, alpha=0.5, beta=2.0, bias=bias)
    C = odd(C0)
    assert _C.gemm(odd(A), odd(B), C, alpha=0.5, beta=2.0, bias=odd(bias)) is C
    np.testing.assert_array_equal(C, ref)
    Ct = odd(np.zeros((29, 37), dtype)).T   # misaligned, column-major output
    _C.gemm(odd(A[0]), odd(B), Ct)
    np.testing.assert_allclose(Ct, A[0] @ B, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)
    Cr = odd(C0)
    _C.gemm_ref(odd(A), odd(B), Cr, alpha=0.5, beta=2.0, bias=odd(bias))
    np.testing.assert_allclose(Cr, ref, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_optim(dtype, isa, nthreads):
    rng = np.random.default_rng(6)
    shapes = [(33,), (7, 5), (1,)]
    ps = [rand(rng, s, dtype) for s in shapes]
    gs = [rand(rng, s, dtype) for s in shapes]

    def run(wrap):
        p = [wrap(x.copy()) for x in ps]
        m, v, vm = ([wrap(np.full_like(x, 0.5)) for x in ps] for _ in range(3))
        _C.adam_step(p, [wrap(g) for g in gs], m, v, vm, [3] * len(p), 0.01, weight_decay=0.1,
                     amsgrad=True, decoupled=True)
        p2 = [wrap(x.copy()) for x in ps]
        b = [wrap(np.ones_like(x)) for x in ps]
        _C.sgd_step(p2, [wrap(g) for g in gs], b, [False] * len(p), 0.1, momentum=0.9)
        p3 = [wrap(x.copy()) for x in ps]
        sq, ga, mb = ([wrap(np.full_like(x, 2.0)) for x in ps] for _ in range(3))
        _C.rmsprop_step(p3, [wrap(g) for g in gs], sq, ga, mb, 0.01, momentum=0.9, centered=True)
        p4 = [wrap(x.copy()) for x in ps]
        s = [wrap(np.ones_like(x)) for x in ps]
        _C.adagrad_step(p4, [wrap(g) for g in gs], s, [2] * len(p4), 0.1)
        sc = [wrap(x.copy()) for x in ps]
        _C.multi_scale_(sc, 0.3)
        norms = (_C.multi_sumsq([wrap(g) for g in gs]), _C.multi_absmax([wrap(g) for g in gs]))
        return [np.array(a) for a in p + m + v + vm + p2 + b + p3 + sq + ga + mb + p4 + s + sc], norms

    want, wn = run(lambda a: a)
    got, gn = run(odd)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert gn == wn


def test_ewise_rejects_misaligned():
    a = np.ones(100, np.float32)
    with pytest.raises(ValueError, match="not aligned"):
        _C.ewise("add", odd(a), a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_public_api(dtype, isa):
    """The same through tensors made with from_numpy: forward and backward of each op family, and
    an optimizer step on a misaligned parameter, equal to the aligned run."""
    rng = np.random.default_rng(7)
    xs = {"x": rand(rng, (6, 40), dtype), "w": rand(rng, (40, 24), dtype), "b": rand(rng, 24, dtype),
          "lw": rand(rng, 24, dtype), "lb": rand(rng, 24, dtype)}
    t = rng.integers(0, 24, 6).astype(np.int64)
    idx = rng.integers(0, 10, 5).astype(np.int64)
    E = rand(rng, (10, 24), dtype)

    def run(wrap):
        ts = {k: ce.from_numpy(wrap(v)).requires_grad_() for k, v in xs.items()}
        emb = ce.from_numpy(wrap(E)).requires_grad_()
        h = ts["x"] @ ts["w"] + ts["b"]
        h = F.layer_norm(h, (24,), ts["lw"], ts["lb"])
        h = F.gelu(h) + F.silu(h) + F.relu(h) + F.softmax(h, dim=-1) + F.log_softmax(h, dim=-1)
        h = h + F.embedding(ce.from_numpy(wrap(idx)), emb).sum(0)
        loss = F.cross_entropy(h, ce.from_numpy(wrap(t)))
        loss.backward()
        opt = ce.optim.AdamW(list(ts.values()) + [emb], lr=0.01)
        opt.step()
        nn.utils.clip_grad_norm_(list(ts.values()), 0.5)
        return [float(loss.item())] + [ts[k].detach().numpy().copy() for k in xs] + \
            [ts[k].grad.numpy().copy() for k in xs] + [emb.grad.numpy().copy()]

    want, got = run(lambda a: a.copy()), run(odd)   # (from_numpy shares memory: steps write it)
    assert got[0] == want[0]
    for a, b in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(a, b)
