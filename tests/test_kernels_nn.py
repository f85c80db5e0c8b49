"""Kernel-level tests of the nn hot paths (cengine._C softmax / cross-entropy / norms / embedding).

Every kernel on every ISA path and 1/2 threads, against scipy/numpy formulas and against its
scalar *_ref twin, on awkward row lengths; backward against explicit Jacobian-vector products or
central differences; bad inputs raise in the binding."""
import numpy as np
import pytest
from scipy.special import log_softmax as sp_log_softmax, softmax as sp_softmax

from cengine import _C

COLS = [1, 7, 15, 17, 33, 1000, 1025]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def rows_for(C):
    # enough work for two threads on the wide shapes (R*C > 2*16384), a few rows on narrow ones
    return 40 if C >= 1000 else 67


def rnd(shape, dtype, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_forward(dtype, log, isa, nthreads):
    ref_fn = sp_log_softmax if log else sp_softmax
    for C in COLS:
        x = rnd((rows_for(C), C), dtype, C)
        y = _C.softmax_forward(x, log=log)
        assert y.shape == x.shape and y.dtype == dtype
        np.testing.assert_allclose(y, ref_fn(x.astype(np.float64), axis=-1), **TOL[dtype])
        np.testing.assert_allclose(y, _C.softmax_forward_ref(x, log=log), **TOL[dtype])
        if not log:
            np.testing.assert_allclose(y.sum(-1), 1, rtol=0, atol=4e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backward(dtype, log, isa, nthreads):
    for C in COLS:
        R = rows_for(C)
        x = rnd((R, C), dtype, C)
        dy = rnd((R, C), dtype, C + 1, 1.0)
        y = _C.softmax_forward(x, log=log)
        dx = _C.softmax_backward(y, dy, log=log)
        p = sp_softmax(x.astype(np.float64), axis=-1)
        g = dy.astype(np.float64)
        if log:
            want = g - p * g.sum(-1, keepdims=True)
        else:
            want = p * (g - (g * p).sum(-1, keepdims=True))
        np.testing.assert_allclose(dx, want, **TOL[dtype])
        np.testing.assert_allclose(dx, _C.softmax_backward_ref(y, dy, log=log), **TOL[dtype])


@pytest.mark.parametrize("log", [False, True])
def test_softmax_backward_equals_jacobian_vector_product(log, isa):
    rng = np.random.default_rng(5)
    for C in [1, 3, 7, 17]:
        x = rng.standard_normal((4, C))
        dy = rng.standard_normal((4, C))
        y = _C.softmax_forward(x, log=log)
        dx = _C.softmax_backward(y, dy, log=log)
        for r in range(4):
            p = sp_softmax(x[r])
            # explicit Jacobian J[i,j] = d y_i / d x_j
            J = (np.eye(C) - p[None, :]) if log else (np.diag(p) - np.outer(p, p))
            np.testing.assert_allclose(dx[r], J.T @ dy[r], rtol=1e-12, atol=1e-14)
            # and the Jacobian itself against central differences of the kernel's forward
            h = 1e-6
            Jn = np.empty((C, C))
            for j in range(C):
                e = np.zeros(C)
                e[j] = h
                Jn[:, j] = (_C.softmax_forward(x[r] + e, log=log) - _C.softmax_forward(x[r] - e, log=log)) / (2 * h)
            np.testing.assert_allclose(Jn, J, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extremes(dtype, isa):
    x = np.array([[1e4, 0, -1e4, 1e4 - 1],
                  [-np.inf, 0.0, -np.inf, 1.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [np.nan, 0, 1, 2]], dtype=dtype)
    y = _C.softmax_forward(x)
    ly = _C.softmax_forward(x, log=True)
    np.testing.assert_allclose(y[0], sp_softmax(x[0].astype(np.float64)), **TOL[dtype])
    np.testing.assert_allclose(ly[0], sp_log_softmax(x[0].astype(np.float64)), **TOL[dtype])
    np.testing.assert_allclose(y[1], [0, 1 / (1 + np.e), 0, np.e / (1 + np.e)], **TOL[dtype])
    assert ly[1, 0] == -np.inf and ly[1, 2] == -np.inf
    assert np.isnan(y[2]).all() and np.isnan(ly[2]).all()       # torch gives NaN for an all -inf row
    assert np.isnan(y[3]).all() and np.isnan(ly[3]).all()       # NaN spreads over its row
    assert np.isfinite(y[:2]).all()


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_accumulate_alias_shapes(dtype, log, isa, nthreads):
    x = rnd((3, 5, 33), dtype)
    y = _C.softmax_forward(x, log=log)
    np.testing.assert_array_equal(y, _C.softmax_forward(x.reshape(15, 33), log=log).reshape(x.shape))
    x2 = x.copy()
    _C.softmax_forward(x2, out=x2, log=log)                     # in place
    np.testing.assert_array_equal(x2, y)
    dy = rnd(x.shape, dtype, 1)
    dx = _C.softmax_backward(y, dy, log=log)
    base = rnd(x.shape, dtype, 2)
    acc = base.copy()
    assert _C.softmax_backward(y, dy, out=acc, log=log, accumulate=True) is acc
    np.testing.assert_allclose(acc, base + dx, **TOL[dtype])
    d2 = dy.copy()
    _C.softmax_backward(y, d2, out=d2, log=log)                 # dx aliasing dy
    np.testing.assert_array_equal(d2, dx)
    e = np.empty((0, 7), dtype)
    assert _C.softmax_forward(e).shape == (0, 7)
    assert _C.softmax_backward(e, e).shape == (0, 7)
    v = rnd((9,), dtype)                                        # 1-d: one row
    np.testing.assert_allclose(_C.softmax_forward(v), sp_softmax(v.astype(np.float64)), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_streaming_store_path_matches(dtype, isa, nthreads):
    """The non-temporal-store write path (used for huge outputs) gives the same bits."""
    rng = np.random.default_rng(0)
    for C in COLS + [64]:   # 64: whole cache lines per row (cross-entropy streams only those)
        R = rows_for(C)
        x = rnd((R, C), dtype, C)
        dy = rnd((R, C), dtype, C + 1)
        t = rng.integers(0, C, R).astype(np.int64)
        t[::7] = -100
        g = rnd((R,), dtype, 2)
        w = (rng.random(C) + 0.5).astype(dtype)

        def run():
            out = []
            for log in (False, True):
                y = _C.softmax_forward(x, log=log)
                out += [y, _C.softmax_backward(y, dy, log=log)]
            loss, lse, _ = _C.cross_entropy_forward(x, t, weight=w, label_smoothing=0.1)
            out += [loss, lse]   # (the forward prefetches ahead with a threshold of 0)
            out.append(_C.cross_entropy_backward(x, t, lse, g, weight=w, label_smoothing=0.1))
            out.append(_C.cross_entropy_backward(x, t, lse, g))
            return out

        plain = run()
        try:
            _C.nn_set_stream_bytes(0)
            streamed = run()
        finally:
            _C.nn_set_stream_bytes(-1)
        for a, b in zip(plain, streamed):
            np.testing.assert_array_equal(a, b)
        # outputs at every offset from the stream alignment (head / body / tail split)
        for off in (1, 3):
            buf = np.empty(R * C + off, dtype)
            out = buf[off:].reshape(R, C)
            try:
                _C.nn_set_stream_bytes(0)
                _C.softmax_forward(x, out=out)
                np.testing.assert_array_equal(out, plain[0])
                _C.softmax_backward(plain[0], dy, out=out)
                np.testing.assert_array_equal(out, plain[1])
            finally:
                _C.nn_set_stream_bytes(-1)


def test_softmax_bad_inputs():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.softmax_forward(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.softmax_forward(np.ones((3, 2), np.float32).T)
    with pytest.raises(ValueError, match="shape"):
        _C.softmax_backward(x, np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _C.softmax_backward(x, np.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        _C.softmax_backward(x, x, accumulate=True)
    with pytest.raises(ValueError, match="shape"):
        _C.softmax_forward(x, out=np.ones((3, 2), np.float32))


# ---------------------------------------------------------------------------- cross-entropy
def np_ce(x, t, w, ignore, ls):
    """numpy reference: per-row losses, d(sum g*loss)/dx pieces (float64)."""
    x = x.astype(np.float64)
    N, C = x.shape
    lp = sp_log_softmax(x, axis=-1)
    wv = np.ones(C) if w is None else w.astype(np.float64)
    mask = t != ignore
    tc = np.where(mask, t, 0)
    nll = -lp[np.arange(N), tc] * wv[tc]
    smooth = -(lp * wv).sum(-1)
    loss = ((1 - ls) * nll + ls / C * smooth) * mask
    wrow = wv[tc] * mask
    return loss, wrow


def np_ce_grad(x, t, w, ignore, ls, g):
    x = x.astype(np.float64)
    N, C = x.shape
    p = sp_softmax(x, axis=-1)
    wv = np.ones(C) if w is None else w.astype(np.float64)
    mask = t != ignore
    tc = np.where(mask, t, 0)
    onehot = np.eye(C)[tc]
    d = (1 - ls) * wv[tc][:, None] * (p - onehot) + ls / C * (wv.sum() * p - wv[None, :])
    return d * (g * mask)[:, None]


def ce_case(C, dtype, seed):
    rng = np.random.default_rng(seed)
    N = rows_for(C)
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    t = rng.integers(0, C, N).astype(np.int64)
    t[::5] = -100
    w = (rng.random(C) + 0.5).astype(dtype)
    g = rng.standard_normal(N).astype(dtype)
    return x, t, w, g


@pytest.mark.parametrize("ls", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_forward_backward(dtype, weighted, ls, isa, nthreads):
    for C in COLS:
        x, t, w, g = ce_case(C, dtype, C)
        w = w if weighted else None
        loss, lse, wrow = _C.cross_entropy_forward(x, t, weight=w, label_smoothing=ls)
        want, wantw = np_ce(x, t, w, -100, ls)
        np.testing.assert_allclose(loss, want, **TOL[dtype])
        np.testing.assert_allclose(wrow, wantw, **TOL[dtype])
        np.testing.assert_allclose(lse, np.log(np.exp(x.astype(np.float64)).sum(-1)), **TOL[dtype])
        r = _C.cross_entropy_forward_ref(x, t, weight=w, label_smoothing=ls)
        for a, b in zip((loss, lse, wrow), r):
            np.testing.assert_allclose(a, b, **TOL[dtype])
        d = _C.cross_entropy_backward(x, t, lse, g, weight=w, label_smoothing=ls)
        np.testing.assert_allclose(d, np_ce_grad(x, t, w, -100, ls, g.astype(np.float64)), **TOL[dtype])
        np.testing.assert_allclose(d, _C.cross_entropy_backward_ref(x, t, lse, g, weight=w, label_smoothing=ls),
                                   **TOL[dtype])
        assert (d[t == -100] == 0).all()
        base = rnd(x.shape, dtype, 9)
        acc = base.copy()
        _C.cross_entropy_backward(x, t, lse, g, weight=w, label_smoothing=ls, out=acc, accumulate=True)
        np.testing.assert_allclose(acc, base + d, **TOL[dtype])


@pytest.mark.parametrize("ls", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_backward_central_differences(weighted, ls, isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 7))
    t = np.array([0, 6, -100, 3, 3], np.int64)
    w = rng.random(7) + 0.5 if weighted else None
    g = rng.standard_normal(5)
    f = lambda z: float(_C.cross_entropy_forward(z, t, weight=w, label_smoothing=ls)[0] @ g)
    lse = _C.cross_entropy_forward(x, t, weight=w, label_smoothing=ls)[1]
    d = _C.cross_entropy_backward(x, t, lse, g, weight=w, label_smoothing=ls)
    h = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        num[idx] = (f(x + e) - f(x - e)) / (2 * h)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ls", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_prob_targets(dtype, weighted, ls, isa, nthreads):
    for C in COLS:
        x, _, w, g = ce_case(C, dtype, C)
        w = w if weighted else None
        q = sp_softmax(rnd(x.shape, np.float64, C + 3), axis=-1).astype(dtype)
        loss, lse = _C.cross_entropy_prob_forward(x, q, weight=w, label_smoothing=ls)
        wv = np.ones(C) if w is None else w.astype(np.float64)
        qq = (1 - ls) * q.astype(np.float64) + ls / C
        lp = sp_log_softmax(x.astype(np.float64), axis=-1)
        np.testing.assert_allclose(loss, -(wv * qq * lp).sum(-1), **TOL[dtype])
        r = _C.cross_entropy_prob_forward_ref(x, q, weight=w, label_smoothing=ls)
        np.testing.assert_allclose(loss, r[0], **TOL[dtype])
        d = _C.cross_entropy_prob_backward(x, q, lse, g, weight=w, label_smoothing=ls)
        p = np.exp(lp)
        want = g.astype(np.float64)[:, None] * (p * (wv * qq).sum(-1, keepdims=True) - wv * qq)
        np.testing.assert_allclose(d, want, **TOL[dtype])
        np.testing.assert_allclose(d, _C.cross_entropy_prob_backward_ref(x, q, lse, g, weight=w, label_smoothing=ls),
                                   **TOL[dtype])


def test_cross_entropy_matches_torch_reductions():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, t, w, _ = ce_case(33, np.float64, 4)
    for weight in (None, w):
        for ls in (0.0, 0.3):
            loss, lse, wrow = _C.cross_entropy_forward(x, t, weight=weight, label_smoothing=ls)
            tw = None if weight is None else torch.from_numpy(weight)
            kw = dict(weight=tw, label_smoothing=ls)
            xt, tt = torch.from_numpy(x), torch.from_numpy(t)
            np.testing.assert_allclose(loss, F.cross_entropy(xt, tt, reduction="none", **kw).numpy(), rtol=1e-12)
            np.testing.assert_allclose(loss.sum(), F.cross_entropy(xt, tt, reduction="sum", **kw).item(), rtol=1e-12)
            np.testing.assert_allclose(loss.sum() / wrow.sum(), F.cross_entropy(xt, tt, **kw).item(), rtol=1e-12)
            xg = xt.clone().requires_grad_()
            F.cross_entropy(xg, tt, **kw).backward()
            g = np.full(len(t), 1 / wrow.sum())
            np.testing.assert_allclose(_C.cross_entropy_backward(x, t, lse, g, weight=weight, label_smoothing=ls),
                                       xg.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_cross_entropy_extreme_logits(isa):
    x = np.array([[1e4, 0, -1e4], [-np.inf, 0, 1]], np.float32)
    t = np.array([1, 2], np.int64)
    loss, lse, _ = _C.cross_entropy_forward(x, t)
    np.testing.assert_allclose(loss, [1e4, np.log1p(np.e ** -1)], rtol=1e-6)
    d = _C.cross_entropy_backward(x, t, lse, np.ones(2, np.float32))
    assert np.isfinite(d).all()
    np.testing.assert_allclose(d[0], [1, -1, 0], atol=1e-6)


def _xent_grad_f64(x, t, w, ls):
    """d/dx of the per-row smoothed, weighted cross-entropy, in float64 from x - max (exact for
    the logits below)."""
    x = x.astype(np.float64)
    N, C = x.shape
    d = x - x.max(1, keepdims=True)
    p = np.exp(d) / np.exp(d).sum(1, keepdims=True)
    w = np.ones(C) if w is None else w.astype(np.float64)
    onehot = np.eye(C)[t]
    return (1 - ls) * w[t][:, None] * (p - onehot) + ls / C * (w.sum() * p - w[None, :])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("base", [1e3, 1e8, 1e10, -1e8, 3e30])
def test_cross_entropy_large_logits(dtype, base, isa, nthreads):
    """Logits of 1e8 and beyond: the saved lse rounds to the dtype (ulp(1e8) = 8 in float32), so
    exp(x - lse) alone gives p = 1 for every near-maximal logit; the backward must recover the
    exact probabilities (regression: gradients were wrong around 1e8, issue 13)."""
    ulp = float(np.spacing(dtype(base)))
    offs = np.array([[0, -1, -2, 1, 0, -40], [3, 3, 0, -1, 2, 1], [0, 0, 0, 0, 0, 0]]) * ulp
    x = (dtype(base) + offs.astype(dtype)).astype(dtype)
    assert np.array_equal(x.astype(np.float64) - np.float64(dtype(base)), offs)   # exact logits
    t = np.array([1, 4, 2], np.int64)
    rng = np.random.default_rng(0)
    w = rng.random(6).astype(dtype) + dtype(0.5)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for weight, ls in ((None, 0.0), (w, 0.2)):
        loss, lse, _ = _C.cross_entropy_forward(x, t, weight, label_smoothing=ls)
        d = _C.cross_entropy_backward(x, t, lse, np.ones(3, dtype), weight, label_smoothing=ls)
        np.testing.assert_allclose(d, _xent_grad_f64(x, t, weight, ls), **tol)
        np.testing.assert_allclose(_C.cross_entropy_backward_ref(x, t, lse, np.ones(3, dtype), weight,
                                                                 label_smoothing=ls),
                                   _xent_grad_f64(x, t, weight, ls), **tol)
        # probability targets: one-hot q gives the same gradient as class targets
        q = np.eye(6, dtype=dtype)[t]
        _, plse = _C.cross_entropy_prob_forward(x, q, weight, label_smoothing=ls)
        pd = _C.cross_entropy_prob_backward(x, q, plse, np.ones(3, dtype), weight, label_smoothing=ls)
        wq = (np.ones(6) if weight is None else weight.astype(np.float64))
        qs = (1 - ls) * q + ls / 6
        d64 = x.astype(np.float64) - x.astype(np.float64).max(1, keepdims=True)
        p64 = np.exp(d64) / np.exp(d64).sum(1, keepdims=True)
        np.testing.assert_allclose(pd, p64 * (wq * qs).sum(1, keepdims=True) - wq * qs, **tol)


def test_cross_entropy_large_logits_matches_torch():
    torch = pytest.importorskip("torch")
    import cengine as ce
    from cengine.nn import functional as CF
    for dtype in DTYPES:
        for base in (1e8, 1e9, -3e10):
            x = (dtype(base) + np.array([[0, -8, 8, 16], [8, 8, 0, -8]], dtype) *
                 dtype(np.spacing(dtype(base)) / 8)).astype(dtype)
            t = np.array([0, 2], np.int64)
            xt = torch.from_numpy(x.copy()).requires_grad_()
            torch.nn.functional.cross_entropy(xt, torch.from_numpy(t), label_smoothing=0.1).backward()
            xc = ce.from_numpy(x.copy()).requires_grad_()
            CF.cross_entropy(xc, ce.from_numpy(t), label_smoothing=0.1).backward()
            np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_thread_count_independent(dtype, isa):
    """the same bits with 1 and 2 threads: a chunk's first row takes its max in a pass of its own,
    the others in the previous row's loop (both in sm_max's order), so where the rows split must
    not show (class and probability targets, forward and backward; NaN / -inf / ignored rows)"""
    rng = np.random.default_rng(5)
    for N, C in ((40, 1000), (33, 1025), (2001, 17), (67, 1)):
        x = (rng.standard_normal((N, C)) * 3).astype(dtype)
        h = N // 2   # about where 2 threads split: rows whose max is in the tail / the head
        x[h - 2:h + 3, C - 1] += 120     # (a max taken without them would overflow the exp)
        x[h + 3:h + 5, 0] += 120
        for r in (1, h - 3, h + 5):
            x[r, (r * 7) % C] = np.nan
        x[2] = -np.inf
        t = rng.integers(0, C, N).astype(np.int64)
        t[3] = -100
        q = sp_softmax(rng.standard_normal((N, C)), axis=-1).astype(dtype)
        w = (rng.random(C) + 0.5).astype(dtype)
        g = rng.standard_normal(N).astype(dtype)
        outs = []
        old = _C.get_num_threads()
        try:
            for nt in (1, 2):
                _C.set_num_threads(nt)
                loss, lse, wrow = _C.cross_entropy_forward(x, t, weight=w, label_smoothing=0.1)
                ploss, plse = _C.cross_entropy_prob_forward(x, q, weight=w)
                outs.append([loss, lse, wrow, ploss, plse,
                             _C.cross_entropy_backward(x, t, lse, g, weight=w, label_smoothing=0.1),
                             _C.cross_entropy_prob_backward(x, q, plse, g, weight=w)])
        finally:
            _C.set_num_threads(old)
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)


def test_cross_entropy_exp_accuracy(isa, nthreads):
    """the backward's probabilities p = exp(x - lse) to ~1 ulp of the exponential of the float32
    argument over the whole unflushed range [-87.3, 0] (vmath.h's vexp_ftz: on AVX-512 its table
    form, on AVX2 vexp_poly, libm on the generic path), and exactly 0 below the smallest normal
    result (-88, -inf); rows of one 0 logit and tiny ones (lse ~ 1e-7) and rows [0, d]"""
    rng = np.random.default_rng(3)
    a = np.sort(rng.uniform(-87.3, -17.5, 200 * 32)).astype(np.float32).reshape(200, 32)
    xa = np.concatenate([np.zeros((200, 1), np.float32), a, np.full((200, 1), -88, np.float32),
                         np.full((200, 1), -np.inf, np.float32)], 1)          # C = 35
    xb = np.stack([np.zeros(3001, np.float32), np.linspace(-17.5, 0, 3001, dtype=np.float32)], 1)
    for x in (xa, xb):
        N, C = x.shape
        t = np.zeros(N, np.int64)
        loss, lse, _ = _C.cross_entropy_forward(x, t)
        np.testing.assert_allclose(lse, np.log(np.exp(x.astype(np.float64)).sum(1)), rtol=0, atol=1e-6)
        d = _C.cross_entropy_backward(x, t, lse, np.ones(N, np.float32))
        arg = (x - lse[:, None]).astype(np.float64)           # the float32 argument the kernel forms
        want = np.exp(arg)
        fin = x[:, 1:] > -87.33
        got, ref = d[:, 1:][fin].astype(np.float64), want[:, 1:][fin]
        assert np.all(np.abs(got - ref) <= 1.3e-7 * ref), np.max(np.abs(got - ref) / ref)
        assert (d[:, 1:][~fin] == 0).all()


def test_cross_entropy_bad_inputs():
    x = np.zeros((3, 4), np.float32)
    t = np.array([0, 1, 2], np.int64)
    with pytest.raises(IndexError, match=r"^Target 5 is out of bounds\.$"):
        _C.cross_entropy_forward(x, np.array([0, 5, 1], np.int64))
    with pytest.raises(IndexError, match=r"^Target -1 is out of bounds\.$"):
        _C.cross_entropy_forward(x, np.array([0, -1, 1], np.int64))
    _C.cross_entropy_forward(x, np.array([0, 7, 1], np.int64), ignore_index=7)   # ignored: fine
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(2\)"):
        _C.cross_entropy_forward(x, np.array([0, 1], np.int64))
    with pytest.raises(TypeError, match="int64"):
        _C.cross_entropy_forward(x, t.astype(np.int32))
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 4 classes"):
        _C.cross_entropy_forward(x, t, weight=np.ones(3, np.float32))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        _C.cross_entropy_forward(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        _C.cross_entropy_forward(np.zeros(4, np.float32), t)
    loss, lse, _ = _C.cross_entropy_forward(x, t)
    with pytest.raises(ValueError, match="grad_rows"):
        _C.cross_entropy_backward(x, t, lse, np.ones(4, np.float32))
    with pytest.raises(IndexError, match="Target 9 is out of bounds"):
        _C.cross_entropy_backward(x, np.array([0, 9, 1], np.int64), lse, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="Expected target size"):
        _C.cross_entropy_prob_forward(x, np.zeros((3, 5), np.float32))
    with pytest.raises(TypeError, match="same as the logits"):
        _C.cross_entropy_prob_forward(x, np.zeros((3, 4), np.float64))


# ---------------------------------------------------------------------------- LayerNorm / RMSNorm
def np_layer_norm(x, w, b, eps):
    x = x.astype(np.float64)
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    rs = 1 / np.sqrt(v + eps)
    y = (x - m) * rs
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y, m[..., 0], rs[..., 0]


def np_layer_norm_grad(dy, x, w, eps, rms=False):
    x = x.astype(np.float64)
    dy = dy.astype(np.float64)
    D = x.shape[-1]
    if rms:
        rs = 1 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
        xh = x * rs
    else:
        m = x.mean(-1, keepdims=True)
        rs = 1 / np.sqrt(((x - m) ** 2).mean(-1, keepdims=True) + eps)
        xh = (x - m) * rs
    g = dy * (1 if w is None else w)
    dx = rs * (g - (0 if rms else g.mean(-1, keepdims=True)) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, (dy * xh).reshape(-1, D).sum(0), dy.reshape(-1, D).sum(0)


NTOL = {np.float32: dict(rtol=1e-4, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(dtype, affine, isa, nthreads):
    for D in COLS:
        R = rows_for(D)
        x = rnd((R, D), dtype, D, 2.0) + dtype(1.5)
        w = rnd((D,), dtype, D + 1) if affine else None
        b = rnd((D,), dtype, D + 2) if affine else None
        dy = rnd((R, D), dtype, D + 3, 1.0)
        y, m, rs = _C.layer_norm_forward(x, w, b, eps=1e-5)
        wy, wm, wrs = np_layer_norm(x, w, b, 1e-5)
        np.testing.assert_allclose(y, wy, **NTOL[dtype])
        np.testing.assert_allclose(m, wm, **NTOL[dtype])
        np.testing.assert_allclose(rs, wrs, **NTOL[dtype])
        for a, r in zip((y, m, rs), _C.layer_norm_forward_ref(x, w, b, eps=1e-5)):
            np.testing.assert_allclose(a, r, **NTOL[dtype])
        dx, dw, db = _C.layer_norm_backward(dy, x, m, rs, w, need_dweight=affine, need_dbias=affine)
        wdx, wdw, wdb = np_layer_norm_grad(dy, x, w, 1e-5)
        np.testing.assert_allclose(dx, wdx, **NTOL[dtype])
        rdx, rdw, rdb = _C.layer_norm_backward_ref(dy, x, m, rs, w, need_dweight=affine, need_dbias=affine)
        np.testing.assert_allclose(dx, rdx, **NTOL[dtype])
        if affine:
            big = dict(rtol=NTOL[dtype]["rtol"], atol=NTOL[dtype]["atol"] * R)
            np.testing.assert_allclose(dw, wdw, **big)
            np.testing.assert_allclose(db, wdb, **big)
            np.testing.assert_allclose(dw, rdw, **big)
            np.testing.assert_allclose(db, rdb, **big)
        else:
            assert dw is None and db is None


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm(dtype, affine, isa, nthreads):
    for D in COLS:
        R = rows_for(D)
        x = rnd((R, D), dtype, D, 2.0)
        w = rnd((D,), dtype, D + 1) if affine else None
        dy = rnd((R, D), dtype, D + 3, 1.0)
        eps = np.finfo(dtype).eps
        y, rs = _C.rms_norm_forward(x, w)                       # eps=None -> finfo eps
        xd = x.astype(np.float64)
        wrs = 1 / np.sqrt((xd * xd).mean(-1) + eps)
        np.testing.assert_allclose(rs, wrs, **NTOL[dtype])
        np.testing.assert_allclose(y, xd * wrs[:, None] * (1 if w is None else w), **NTOL[dtype])
        np.testing.assert_allclose(y, _C.rms_norm_forward_ref(x, w)[0], **NTOL[dtype])
        dx, dw = _C.rms_norm_backward(dy, x, rs, w, need_dweight=affine)
        wdx, wdw, _ = np_layer_norm_grad(dy, x, w, eps, rms=True)
        np.testing.assert_allclose(dx, wdx, **NTOL[dtype])
        rdx, rdw = _C.rms_norm_backward_ref(dy, x, rs, w, need_dweight=affine)
        np.testing.assert_allclose(dx, rdx, **NTOL[dtype])
        if affine:
            big = dict(rtol=NTOL[dtype]["rtol"], atol=NTOL[dtype]["atol"] * R)
            np.testing.assert_allclose(dw, wdw, **big)
            np.testing.assert_allclose(dw, rdw, **big)


@pytest.mark.parametrize("rms", [False, True])
def test_norm_backward_central_differences(rms, isa):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6)) + 0.5
    w = rng.standard_normal(6)
    b = rng.standard_normal(6)
    dy = rng.standard_normal((3, 6))
    if rms:
        fwd = lambda xx, ww, bb: _C.rms_norm_forward(xx, ww, eps=1e-5)[0]
    else:
        fwd = lambda xx, ww, bb: _C.layer_norm_forward(xx, ww, bb, eps=1e-5)[0]
    f = lambda xx, ww, bb: float((fwd(xx, ww, bb) * dy).sum())

    def num(arr, which):
        out = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            e = np.zeros_like(arr)
            e[idx] = 1e-6
            args_p = [x, w, b]
            args_m = [x, w, b]
            args_p[which] = arr + e
            args_m[which] = arr - e
            out[idx] = (f(*args_p) - f(*args_m)) / 2e-6
        return out

    if rms:
        y, rs = _C.rms_norm_forward(x, w, eps=1e-5)
        dx, dw = _C.rms_norm_backward(dy, x, rs, w, need_dweight=True)
    else:
        y, m, rs = _C.layer_norm_forward(x, w, b, eps=1e-5)
        dx, dw, db = _C.layer_norm_backward(dy, x, m, rs, w, need_dweight=True, need_dbias=True)
        np.testing.assert_allclose(db, num(b, 2), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, num(x, 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, num(w, 1), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_accumulate_modes_and_shapes(dtype, isa, nthreads):
    x = rnd((4, 10, 33), dtype, 1) + dtype(1)
    w = rnd((33,), dtype, 2)
    b = rnd((33,), dtype, 3)
    dy = rnd(x.shape, dtype, 4)
    y, m, rs = _C.layer_norm_forward(x, w, b)
    assert m.shape == (4, 10) and rs.shape == (4, 10)
    dx, dw, db = _C.layer_norm_backward(dy, x, m, rs, w, need_dweight=True, need_dbias=True)
    base = rnd(x.shape, dtype, 5)
    acc = base.copy()
    dw0, db0 = rnd((33,), dtype, 6), rnd((33,), dtype, 7)
    dw1, db1 = dw0.copy(), db0.copy()
    r = _C.layer_norm_backward(dy, x, m, rs, w, out=acc, accumulate=True, dweight=dw1, dbias=db1)
    assert r[0] is acc and r[1] is dw1 and r[2] is db1
    np.testing.assert_allclose(acc, base + dx, **NTOL[dtype])
    np.testing.assert_allclose(dw1, dw0 + dw, **NTOL[dtype])
    np.testing.assert_allclose(db1, db0 + db, **NTOL[dtype])
    only = _C.layer_norm_backward(dy, x, m, rs, w, need_dx=False, need_dweight=True, need_dbias=True)
    assert only[0] is None
    np.testing.assert_allclose(only[1], dw, **NTOL[dtype])
    np.testing.assert_allclose(only[2], db, **NTOL[dtype])
    y2, rs2 = _C.rms_norm_forward(x, w, eps=1e-6)
    dxr, dwr = _C.rms_norm_backward(dy, x, rs2, w, need_dweight=True)
    accr = base.copy()
    _C.rms_norm_backward(dy, x, rs2, w, out=accr, accumulate=True)
    np.testing.assert_allclose(accr, base + dxr, **NTOL[dtype])
    onlyr = _C.rms_norm_backward(dy, x, rs2, w, need_dx=False, need_dweight=True)
    assert onlyr[0] is None
    np.testing.assert_allclose(onlyr[1], dwr, **NTOL[dtype])


def test_norm_param_grads_thread_count_independent(isa):
    x = rnd((300, 130), np.float64, 1)
    dy = rnd(x.shape, np.float64, 2)
    w = rnd((130,), np.float64, 3)
    y, m, rs = _C.layer_norm_forward(x, w, None)
    old = _C.get_num_threads()
    try:
        res = []
        for nt in (1, 2):
            _C.set_num_threads(nt)
            res.append(_C.layer_norm_backward(dy, x, m, rs, w, need_dweight=True, need_dbias=True))
    finally:
        _C.set_num_threads(old)
    for a, b in zip(res[0], res[1]):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_norm_empty_shapes():
    y, m, rs = _C.layer_norm_forward(np.ones((3, 0), np.float32))
    assert y.shape == (3, 0) and np.isnan(m).all() and np.isnan(rs).all()
    y, rs = _C.rms_norm_forward(np.ones((0, 4)))
    assert y.shape == (0, 4) and rs.shape == (0,)
    dx, dw, db = _C.layer_norm_backward(np.ones((0, 4)), np.ones((0, 4)), np.ones(0), np.ones(0),
                                        np.ones(4), need_dweight=True, need_dbias=True)
    assert dx.shape == (0, 4) and (dw == 0).all() and (db == 0).all()


def test_norm_bad_inputs():
    x = np.ones((2, 4), np.float32)
    with pytest.raises(RuntimeError, match="expected 4 elements"):
        _C.layer_norm_forward(x, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _C.layer_norm_forward(x, np.ones(4, np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.layer_norm_forward(np.ones((2, 4), np.int64))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        _C.rms_norm_forward(np.array(1.0))
    y, m, rs = _C.layer_norm_forward(x)
    with pytest.raises(ValueError, match="mean: expected shape"):
        _C.layer_norm_backward(x, x, np.ones(3, np.float32), rs)
    with pytest.raises(ValueError, match="shape"):
        _C.layer_norm_backward(np.ones((2, 5), np.float32), x, m, rs)
    with pytest.raises(ValueError, match="dweight: expected 4 elements"):
        _C.layer_norm_backward(x, x, m, rs, dweight=np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        _C.layer_norm_backward(x, x, m, rs, accumulate=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_streaming_store_path_matches(dtype, isa, nthreads):
    """LayerNorm/RMSNorm outputs written with non-temporal stores (huge arrays) give the same
    bits as the cached path, at every offset of the output from the stream alignment."""
    for D in COLS + [64, 1024]:
        R = rows_for(D) + 3              # a partial block of backward rows
        x = rnd((R, D), dtype, D, 2.0) + dtype(0.5)
        w, b = rnd((D,), dtype, D + 1), rnd((D,), dtype, D + 2)
        dy = rnd((R, D), dtype, D + 3, 1.0)

        def run(off):
            out = []
            buf = np.empty(R * D + off, dtype)
            o = buf[off:].reshape(R, D)
            y, m, rs = _C.layer_norm_forward(x, w, b, out=o)
            out += [y.copy(), m, rs]
            dx, dw, db = _C.layer_norm_backward(dy, x, m, rs, w, need_dweight=True, need_dbias=True,
                                                out=o)
            out += [dx.copy(), dw, db]
            y, rs = _C.rms_norm_forward(x, w, eps=1e-6, out=o)
            out += [y.copy(), rs]
            dx, dw = _C.rms_norm_backward(dy, x, rs, w, need_dweight=True, out=o)
            out += [dx.copy(), dw]
            out.append(_C.layer_norm_backward(dy, x, m, rs, None, out=o)[0].copy())
            return out

        plain = run(0)
        for off in (0, 1, 3):
            try:
                _C.nn_set_stream_bytes(0)
                streamed = run(off)
            finally:
                _C.nn_set_stream_bytes(-1)
            for a, c in zip(plain, streamed):
                np.testing.assert_array_equal(a, c)


def _np_norm_scaled(x, w, b, eps, rms=False):
    """float64 LayerNorm/RMSNorm of rows of any magnitude: each row is scaled by a power of two
    first (normalization is scale-invariant; eps scales with the square)."""
    x = x.astype(np.float64)
    s = np.exp2(np.ceil(np.log2(np.abs(x).max(-1, keepdims=True))))
    xs = x / s
    m = 0 if rms else xs.mean(-1, keepdims=True)
    v = ((xs - m) ** 2).mean(-1, keepdims=True)
    rs = 1 / np.sqrt(v + eps / s / s)
    y = (xs - m) * rs * (1 if w is None else w) + (0 if b is None else b)
    return y, (m * s)[..., 0] if not rms else None, (rs / s)[..., 0], xs, s


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e30), (np.float32, 3e37), (np.float32, 1e20),
                                         (np.float64, 1e160), (np.float64, 1e300)])
def test_norm_huge_values(dtype, scale, isa, nthreads):
    """Rows whose squares overflow the dtype (|x| ~ 1e30 in float32) normalize like any other
    row (the variance is taken on scaled values), not to 0 or NaN; mixed with ordinary rows."""
    R, D = 40, 1000
    x = rnd((R, D), dtype, 11, 1.0)
    x[::2] = (x[::2].astype(np.float64) * scale + 0.25 * scale).astype(dtype)
    w, b = rnd((D,), dtype, 12), rnd((D,), dtype, 13)
    dy = rnd((R, D), dtype, 14)
    tol = NTOL[dtype]
    y, m, rs = _C.layer_norm_forward(x, w, b, eps=1e-5)
    wy, wm, wrs, xs, s = _np_norm_scaled(x, w, b, 1e-5)
    assert np.isfinite(y).all() and np.isfinite(rs).all() and (rs > 0).all()
    np.testing.assert_allclose(y, wy, **tol)
    np.testing.assert_allclose(m, wm, rtol=tol["rtol"])
    np.testing.assert_allclose(rs, wrs, rtol=tol["rtol"])
    dx, dw, db = _C.layer_norm_backward(dy, x, m, rs, w, need_dweight=True, need_dbias=True)
    wdx, wdw, wdb = np_layer_norm_grad(dy, xs, w, 1e-5 / s / s)
    np.testing.assert_allclose(dx * s, wdx, rtol=1e-3 if dtype == np.float32 else 1e-9,
                               atol=1e-4 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(dw, wdw, rtol=1e-3, atol=1e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(db, wdb, **tol)
    y, rs = _C.rms_norm_forward(x, w, eps=1e-6)
    wy, _, wrs, _, _ = _np_norm_scaled(x, w, None, 1e-6, rms=True)
    assert np.isfinite(y).all() and (rs > 0).all()
    np.testing.assert_allclose(y, wy, **tol)
    np.testing.assert_allclose(rs, wrs, rtol=tol["rtol"])
    if dtype == np.float32:
        torch = pytest.importorskip("torch")
        ty = torch.nn.functional.layer_norm(torch.from_numpy(x.astype(np.float64)), (D,),
                                            torch.from_numpy(w).double(), torch.from_numpy(b).double(),
                                            1e-5)
        np.testing.assert_allclose(_C.layer_norm_forward(x, w, b, eps=1e-5)[0], ty.numpy(), **tol)


def test_norm_nonfinite_rows_give_nan(isa):
    """inf / NaN in a row gives NaN there (as torch), the other rows are untouched."""
    x = rnd((4, 50), np.float32, 3)
    x[1, 7] = np.inf
    x[2, 9] = np.nan
    y, m, rs = _C.layer_norm_forward(x)
    assert np.isnan(y[1]).all() and np.isnan(y[2]).all()
    np.testing.assert_allclose(y[[0, 3]], np_layer_norm(x[[0, 3]], None, None, 1e-5)[0],
                               **NTOL[np.float32])
    y, rs = _C.rms_norm_forward(x)
    assert np.isnan(y[2]).all() and np.isfinite(y[[0, 3]]).all()


# ---------------------------------------------------------------------------------- embedding
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_forward_backward(dtype, isa, nthreads):
    rng = np.random.default_rng(0)
    for D in COLS:
        for V, shape in [(1, (5,)), (13, (4, 9)), (50, (1200,))]:   # 1200*D > 2*16384 for wide D
            if shape == (1200,) and D not in (33, 1025):
                continue
            W = rnd((V, D), dtype, D)
            idx = rng.integers(0, V, shape).astype(np.int64)
            idx.flat[: len(idx.flat) // 3] = 0                         # many repeats of one row
            out = _C.embedding_forward(W, idx)
            assert out.shape == shape + (D,)
            np.testing.assert_array_equal(out, W[idx])
            dy = rnd(shape + (D,), dtype, D + 1)
            for pad in (None, V - 1, -1):
                dW = _C.embedding_backward(dy, idx, V, padding_idx=pad)
                want = np.zeros((V, D), np.float64)
                keep = np.ones(idx.shape, bool) if pad is None else idx != (pad % V)
                np.add.at(want, idx[keep], dy[keep].astype(np.float64))
                mag = np.zeros((V, D), np.float64)
                np.add.at(mag, idx[keep], np.abs(dy[keep].astype(np.float64)))
                assert (np.abs(dW - want) <= 4 * np.finfo(dtype).eps * mag + 1e-300).all()
                if pad is not None:
                    assert (dW[pad % V] == 0).all()
                np.testing.assert_array_equal(dW, _C.embedding_backward_ref(dy, idx, V, padding_idx=pad))


@pytest.mark.parametrize("D", [8, 300])     # row-slice and column-slice thread splits
def test_embedding_backward_thread_independent_and_accumulates(D, isa):
    rng = np.random.default_rng(3)
    V = 37
    idx = rng.integers(0, V, 4000).astype(np.int64)
    dy = rnd((4000, D), np.float32, 5)
    old = _C.get_num_threads()
    try:
        res = []
        for nt in (1, 2):
            _C.set_num_threads(nt)
            res.append(_C.embedding_backward(dy, idx, V))
    finally:
        _C.set_num_threads(old)
    np.testing.assert_array_equal(res[0], res[1])                    # same summation order
    base = rnd((V, D), np.float32, 6)
    acc = base.copy()
    assert _C.embedding_backward(dy, idx, V, out=acc) is acc
    np.testing.assert_allclose(acc, base + res[0], rtol=1e-5, atol=1e-4)


def test_embedding_bad_inputs():
    W = np.ones((5, 3), np.float32)
    with pytest.raises(IndexError, match="^index out of range in self$"):
        _C.embedding_forward(W, np.array([0, 5], np.int64))
    with pytest.raises(IndexError, match="index out of range in self"):
        _C.embedding_forward(W, np.array([[-1]], np.int64))
    with pytest.raises(TypeError, match="int64"):
        _C.embedding_forward(W, np.array([0, 1], np.int32))
    with pytest.raises(ValueError, match="2-D"):
        _C.embedding_forward(np.ones(5, np.float32), np.array([0], np.int64))
    with pytest.raises(IndexError, match="index out of range in self"):
        _C.embedding_backward(np.ones((2, 3), np.float32), np.array([0, 7], np.int64), 5)
    with pytest.raises(ValueError, match="does not match indices shape"):
        _C.embedding_backward(np.ones((3, 3), np.float32), np.array([0, 1], np.int64), 5)
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        _C.embedding_backward(np.ones((2, 3), np.float32), np.array([0, 1], np.int64), 5, padding_idx=5)
    with pytest.raises(ValueError, match="out: expected shape"):
        _C.embedding_backward(np.ones((2, 3), np.float32), np.array([0, 1], np.int64), 5,
                              out=np.zeros((4, 3), np.float32))
    e = _C.embedding_forward(W, np.zeros((0,), np.int64))
    assert e.shape == (0, 3)
    assert (_C.embedding_backward(np.ones((0, 3), np.float32), np.zeros((0,), np.int64), 5) == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_masked_and_underflowing_rows(isa, nthreads, dtype):
    """Causal-mask rows (-inf) and probabilities below the smallest normal number: the SIMD
    paths return those as exactly 0 (no subnormals), every row still sums to 1, and the rest matches the
    reference; log_softmax keeps -inf for masked entries."""
    rng = np.random.default_rng(3)
    R, C = 96, 67
    x = rng.standard_normal((R, C)).astype(dtype)
    x[np.triu_indices(C, 1)[0] % R, np.triu_indices(C, 1)[1]] = -np.inf
    x[:, 3] = -800.0 if dtype == np.float64 else -100.0     # exp underflows below normal
    y = _C.softmax_forward(x)
    ref = _C.softmax_forward_ref(x)
    assert np.all(y[np.isneginf(x)] == 0)
    if isa == "generic":       # the scalar path is the IEEE reference: subnormals stay
        assert np.all(y[:, 3] < np.finfo(dtype).tiny)
    else:
        assert np.all(y[:, 3] == 0)
    np.testing.assert_allclose(y, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-30)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    ly = _C.softmax_forward(x, log=True)
    assert np.all(np.isneginf(ly[np.isneginf(x)]))
    dy = rng.standard_normal((R, C)).astype(dtype)
    dx = _C.softmax_backward(y, dy)
    np.testing.assert_allclose(dx, _C.softmax_backward_ref(y, dy),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    assert np.all(dx[np.isneginf(x)] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [7, 64, 100, 1000, 1023, 4096])
@pytest.mark.parametrize("c", [1.2345e10, -3.0e7, 0.1])
def test_layer_norm_constant_row_is_zero(dtype, D, c, isa, nthreads):
    """A row whose elements are all equal normalizes to exactly 0 (torch does), also for large
    values, where a plain sum / D can be off by an ulp and the variance pass then reads that
    rounding as spread (gave +-1 for 1.2345e10 in float32)."""
    x = np.full((5, D), c, dtype)
    x[1] = dtype(-c)
    w, b = np.ones(D, dtype), np.zeros(D, dtype)
    y, m, rs = _C.layer_norm_forward(x, w, b, eps=1e-5)
    assert (y == 0).all()
    np.testing.assert_array_equal(m, x[:, 0])
