"""CTC loss: values and gradients against a plain numpy reference written here (alpha/beta in
log space) and a brute-force sum over all alignments, torch when installed, float64 gradcheck,
every ISA path and 1 vs 2 threads, the C kernels against their scalar references, bad inputs."""
import itertools

import numpy as np
import pytest

import cengine as ce
from cengine import _C
from cengine.autograd import gradcheck
import cengine.nn.functional as F


# ---------------------------------------------------------------------- numpy reference
def _ext(lab, blank):
    e = [blank]
    for c in lab:
        e += [int(c), blank]
    return e


def np_ctc(lp, lab, blank):
    """-log p(lab | lp) and d/d lp in torch's form (exp(lp) - occupancy), lp (T, C) float64."""
    T, C = lp.shape
    e = _ext(lab, blank)
    S = len(e)
    ninf = -np.inf
    if T == 0:
        return (0.0 if len(lab) == 0 else np.inf), np.zeros((0, C))
    a = np.full((T, S), ninf)
    b = np.full((T, S), ninf)
    a[0, 0] = lp[0, e[0]]
    if S > 1:
        a[0, 1] = lp[0, e[1]]
    for t in range(1, T):
        for s in range(S):
            v = a[t - 1, s]
            if s >= 1:
                v = np.logaddexp(v, a[t - 1, s - 1])
            if s >= 2 and e[s] != blank and e[s] != e[s - 2]:
                v = np.logaddexp(v, a[t - 1, s - 2])
            a[t, s] = v + lp[t, e[s]]
    b[T - 1, S - 1] = lp[T - 1, e[S - 1]]
    if S > 1:
        b[T - 1, S - 2] = lp[T - 1, e[S - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(S):
            v = b[t + 1, s]
            if s + 1 < S:
                v = np.logaddexp(v, b[t + 1, s + 1])
            if s + 2 < S and e[s] != blank and e[s + 2] != e[s]:
                v = np.logaddexp(v, b[t + 1, s + 2])
            b[t, s] = v + lp[t, e[s]]
    ll = a[T - 1, S - 1] if S == 1 else np.logaddexp(a[T - 1, S - 1], a[T - 1, S - 2])
    grad = np.exp(lp).copy()
    if np.isfinite(ll):
        for t in range(T):
            for s in range(S):
                ab = a[t, s] + b[t, s]
                if ab > ninf:
                    grad[t, e[s]] -= np.exp(ab - lp[t, e[s]] - ll)
    return -ll, grad


def brute_nll(lp, lab, blank):
    """-log of the sum over every frame labelling that collapses to lab (tiny T, C only)."""
    T, C = lp.shape
    tot = -np.inf
    for path in itertools.product(range(C), repeat=T):
        out, prev = [], None
        for c in path:
            if c != prev and c != blank:
                out.append(c)
            prev = c
        if out == list(lab):
            tot = np.logaddexp(tot, sum(lp[t, c] for t, c in enumerate(path)))
    return -tot


def np_loss(lp, labs, il, blank, reduction, zero_infinity):
    """batch reference: lp (T, N, C) -> (loss, grad w.r.t. lp for loss.sum() or the reduction)"""
    T, N, C = lp.shape
    nll = np.zeros(N)
    grads = np.zeros_like(lp)
    for n in range(N):
        v, g = np_ctc(lp[: il[n], n], labs[n], blank)
        nll[n] = v
        if np.isinf(v) and zero_infinity:
            g = np.zeros_like(g)
        grads[: il[n], n] = g
    if zero_infinity:
        nll = np.where(np.isinf(nll), 0.0, nll)
    tl = np.array([len(x) for x in labs])
    if reduction == "none":
        return nll, grads
    if reduction == "sum":
        return nll.sum(), grads
    w = 1.0 / np.maximum(tl, 1) / N
    return (nll / np.maximum(tl, 1)).mean(), grads * w[None, :, None]


def log_softmax_np(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def make_case(rng, T, N, C, blank=0, max_len=None, repeats=False):
    lp = log_softmax_np(rng.standard_normal((T, N, C)) * 2)
    labels = [c for c in range(C) if c != blank]
    max_len = max_len if max_len is not None else max(1, T // 3)
    tl = rng.integers(0, max_len + 1, size=N)
    labs = []
    for n in range(N):
        if repeats and tl[n] >= 2:
            x = rng.choice(labels, size=tl[n])
            x[1] = x[0]
        else:
            x = rng.choice(labels, size=tl[n])
        labs.append(list(x))
    il = rng.integers(max(1, T // 2), T + 1, size=N)
    return lp, labs, il, tl


def padded(labs, S=None, fill=-1):
    S = max([len(x) for x in labs] + [1]) if S is None else S
    a = np.full((len(labs), S), fill, dtype=np.int64)
    for n, x in enumerate(labs):
        a[n, : len(x)] = x
    return a


# ---------------------------------------------------------------------------- values
def test_reference_matches_brute_force():
    rng = np.random.default_rng(0)
    for lab in ([], [1], [1, 1], [1, 2], [2, 1, 2], [1, 1, 1]):
        lp = log_softmax_np(rng.standard_normal((5, 3)))
        v, _ = np_ctc(lp, lab, 0)
        assert np.isclose(v, brute_nll(lp, lab, 0)) or (np.isinf(v) and np.isinf(brute_nll(lp, lab, 0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("layout", ["padded", "concat"])
def test_loss_and_grad_vs_numpy(isa, nthreads, dtype, reduction, layout):
    rng = np.random.default_rng(1)
    for (T, N, C, blank) in ((1, 1, 2, 0), (13, 3, 5, 0), (29, 7, 11, 10), (17, 4, 6, 3)):
        lp, labs, il, tl = make_case(rng, T, N, C, blank, repeats=True)
        ref, gref = np_loss(lp, labs, il, blank, reduction, False)
        x = ce.tensor(lp.astype(dtype), requires_grad=True)
        tg = ce.tensor(padded(labs)) if layout == "padded" else \
            ce.tensor(np.array(sum(labs, []), dtype=np.int64))
        out = F.ctc_loss(x, tg, ce.tensor(il), ce.tensor(tl), blank=blank, reduction=reduction)
        assert out.dtype == x.dtype
        tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(out.detach().numpy(), ref, **tol)
        out.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), gref, **tol)


def test_brute_force_small(isa):
    rng = np.random.default_rng(2)
    for lab in ([1], [1, 1], [2, 1], [1, 2, 1]):
        lp = log_softmax_np(rng.standard_normal((5, 3)))
        out = F.ctc_loss(ce.tensor(lp), ce.tensor([lab]), [5], [len(lab)], reduction="none")
        np.testing.assert_allclose(out.detach().numpy(), [brute_nll(lp, lab, 0)], rtol=1e-12)


def test_lengths_as_list_tuple_tensor_and_int32_targets():
    rng = np.random.default_rng(3)
    lp, labs, il, tl = make_case(rng, 20, 3, 6)
    x = ce.tensor(lp)
    tg = padded(labs)
    ref = F.ctc_loss(x, ce.tensor(tg), ce.tensor(il), ce.tensor(tl)).item()
    for a, b in ((list(il), list(tl)), (tuple(il), tuple(tl)), (ce.tensor(il.astype(np.int32)),
                 ce.tensor(tl.astype(np.int32))), (il, tl)):
        assert F.ctc_loss(x, ce.tensor(tg), a, b).item() == ref
    assert F.ctc_loss(x, ce.tensor(tg.astype(np.int32)), il, tl).item() == ref
    # padding values are never read (blank, out of range, anything)
    assert F.ctc_loss(x, ce.tensor(padded(labs, S=12, fill=0)), il, tl).item() == ref
    assert F.ctc_loss(x, ce.tensor(padded(labs, S=12, fill=99)), il, tl).item() == ref


def test_unbatched():
    rng = np.random.default_rng(4)
    lp, labs, il, tl = make_case(rng, 15, 1, 5)
    lab = labs[0] or [1]
    x = ce.tensor(lp[:, 0], requires_grad=True)
    out = F.ctc_loss(x, ce.tensor(lab), [15], [len(lab)], reduction="none")
    assert out.shape == ()
    v, g = np_ctc(lp[:, 0], lab, 0)
    np.testing.assert_allclose(out.item(), v, rtol=1e-12)
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), g, rtol=1e-10, atol=1e-12)
    assert F.ctc_loss(x, ce.tensor(lab), (15,), (len(lab),)).shape == ()


def test_non_contiguous_log_probs():
    rng = np.random.default_rng(5)
    lp, labs, il, tl = make_case(rng, 12, 4, 5)
    base = ce.tensor(np.ascontiguousarray(lp.transpose(1, 0, 2)), requires_grad=True)
    x = base.transpose(0, 1)   # (T, N, C) view
    out = F.ctc_loss(x, ce.tensor(padded(labs)), il, tl, reduction="sum")
    ref, gref = np_loss(lp, labs, il, 0, "sum", False)
    np.testing.assert_allclose(out.item(), ref, rtol=1e-12)
    out.backward()
    np.testing.assert_allclose(base.grad.numpy(), gref.transpose(1, 0, 2), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_impossible_alignments(isa, zero_infinity, reduction):
    rng = np.random.default_rng(6)
    C = 4
    lp = log_softmax_np(rng.standard_normal((6, 4, C)))
    labs = [[1, 1, 1], [1, 2, 3], [2, 2], [1]]
    il = np.array([4, 2, 6, 0])   # [1,1,1] needs 5 frames; [1,2,3] needs 3; [1] with no frames
    x = ce.tensor(lp, requires_grad=True)
    out = F.ctc_loss(x, ce.tensor(padded(labs)), il, [3, 3, 2, 1], reduction=reduction,
                     zero_infinity=zero_infinity)
    ref, gref = np_loss(lp, labs, il, 0, reduction, zero_infinity)
    if zero_infinity:
        np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
    else:
        o = np.atleast_1d(out.detach().numpy())
        assert np.isinf(o).any() and not np.isnan(o).any()
    out.sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all()   # never NaN (torch gives NaN here without zero_infinity)
    # the feasible sequence's gradient is unaffected by its infeasible neighbours
    np.testing.assert_allclose(g[:, 2], gref[:, 2], rtol=1e-10, atol=1e-12)
    if zero_infinity:
        np.testing.assert_allclose(g, gref, rtol=1e-10, atol=1e-12)
        assert (g[:, [0, 1, 3]] == 0).all()


def test_edge_lengths():
    rng = np.random.default_rng(7)
    lp = log_softmax_np(rng.standard_normal((5, 3, 4)))
    x = ce.tensor(lp, requires_grad=True)
    # empty targets: -log prod p(blank); zero frames and zero targets: 0
    out = F.ctc_loss(x, ce.tensor(np.zeros((3, 0), np.int64)), [5, 3, 0], [0, 0, 0],
                     reduction="none")
    np.testing.assert_allclose(out.detach().numpy(), [-lp[:5, 0, 0].sum(), -lp[:3, 1, 0].sum(), 0],
                               rtol=1e-12)
    out.sum().backward()
    assert (x.grad.numpy()[3:, 1] == 0).all() and (x.grad.numpy()[:, 2] == 0).all()
    # 'mean' divides by max(target_length, 1)
    m = F.ctc_loss(x, ce.tensor(np.zeros((3, 0), np.int64)), [5, 3, 0], [0, 0, 0])
    np.testing.assert_allclose(m.item(), out.detach().numpy().mean(), rtol=1e-12)
    # single class (blank only)
    y = ce.tensor(np.zeros((4, 2, 1)))
    assert F.ctc_loss(y, ce.tensor(np.zeros((2, 0), np.int64)), [4, 2], [0, 0]).item() == 0


def test_grad_beyond_input_length_is_zero():
    rng = np.random.default_rng(8)
    lp, labs, il, tl = make_case(rng, 20, 5, 7)
    il[0] = 10
    x = ce.tensor(lp, requires_grad=True)
    F.ctc_loss(x, ce.tensor(padded(labs)), il, tl).backward()
    for n in range(5):
        assert (x.grad.numpy()[il[n]:, n] == 0).all()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_gradcheck_through_log_softmax(reduction, zero_infinity):
    """torch's gradient convention is exact for inputs of log_softmax, so check through it."""
    rng = np.random.default_rng(9)
    T, N, C = 7, 3, 4
    z = ce.tensor(rng.standard_normal((T, N, C)), requires_grad=True)
    tg = ce.tensor([[1, 2, 2], [3, 1, 0], [2, 2, 2]])
    il, tl = [7, 6, 4], [3, 2, 3]   # the last one is impossible (needs 5 frames)
    fn = lambda z: F.ctc_loss(z.log_softmax(2), tg, il, tl, blank=0, reduction=reduction,
                              zero_infinity=zero_infinity)
    if not zero_infinity:
        il[2] = 6
    assert gradcheck(fn, (z,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_blank_last_and_concat():
    rng = np.random.default_rng(10)
    z = ce.tensor(rng.standard_normal((9, 2, 5)), requires_grad=True)
    tg = ce.tensor([0, 1, 1, 3, 2])
    fn = lambda z: F.ctc_loss(z.log_softmax(-1), tg, (9, 8), (3, 2), blank=4, reduction="sum")
    assert gradcheck(fn, (z,), eps=1e-6, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------------------ torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_vs_torch(dtype, reduction, zero_infinity):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for (T, N, C, blank) in ((40, 6, 9, 0), (25, 5, 30, 29), (3, 4, 3, 1)):
        lp, labs, il, tl = make_case(rng, T, N, C, blank, repeats=True)
        lp = lp.astype(dtype)
        tg = padded(labs, fill=blank)
        x = ce.tensor(lp, requires_grad=True)
        a = F.ctc_loss(x, ce.tensor(tg), il, tl, blank, reduction, zero_infinity)
        xt = torch.tensor(lp, requires_grad=True)
        b = torch.nn.functional.ctc_loss(xt, torch.tensor(tg), torch.tensor(il), torch.tensor(tl),
                                         blank, reduction, zero_infinity)
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **tol)
        g = rng.standard_normal(a.shape)
        a.backward(ce.tensor(g.astype(dtype)))
        b.backward(torch.tensor(g.astype(dtype)))
        bg = xt.grad.numpy()
        ok = np.isfinite(bg)
        np.testing.assert_allclose(x.grad.numpy()[ok], bg[ok], **tol)


def test_module():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    lp, labs, il, tl = make_case(rng, 30, 4, 8, blank=2)
    tg = padded(labs, fill=0)
    m = ce.nn.CTCLoss(blank=2, reduction="sum", zero_infinity=True)
    assert (m.blank, m.reduction, m.zero_infinity) == (2, "sum", True)
    r = torch.nn.CTCLoss(blank=2, reduction="sum", zero_infinity=True)(
        torch.tensor(lp), torch.tensor(tg), torch.tensor(il), torch.tensor(tl))
    np.testing.assert_allclose(m(ce.tensor(lp), ce.tensor(tg), il, tl).item(), r.item(), rtol=1e-12)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        ce.nn.CTCLoss(reduction="avg")


# ------------------------------------------------------------ kernels: refs and threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_vs_reference(isa, nthreads, dtype):
    rng = np.random.default_rng(13)
    for (T, N, C) in ((1, 1, 1), (1, 3, 2), (7, 5, 3), (31, 17, 13), (64, 3, 37), (100, 2, 5)):
        lp, labs, il, tl = make_case(rng, T, N, C, max_len=min(T, 20) if C > 1 else 0,
                                     repeats=True)
        lp = lp.astype(dtype)
        tgt = np.array(sum(labs, []), dtype=np.int64)
        off = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
        il, tl = il.astype(np.int64), tl.astype(np.int64)
        nll, al = _C.ctc_loss_forward(lp, tgt, off, il, tl, 0)
        nr, ar = _C.ctc_loss_forward(lp, tgt, off, il, tl, 0, ref=True)
        tol = dict(rtol=1e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(nll, nr, **tol)
        g = rng.standard_normal(N).astype(dtype)
        for zi in (0, 1):
            d = _C.ctc_loss_backward(lp, al, nll, g, tgt, off, il, tl, 0, zi)
            dr = _C.ctc_loss_backward(lp, ar, nr, g, tgt, off, il, tl, 0, zi, ref=True)
            np.testing.assert_allclose(d, dr, **tol)
        # the backward accumulates into `out`
        o = np.ones_like(lp)
        _C.ctc_loss_backward(lp, al, nll, g, tgt, off, il, tl, 0, 1, out=o)
        np.testing.assert_allclose(o, d + 1, **tol)


def test_threads_bitwise_identical(isa):
    rng = np.random.default_rng(14)
    lp, labs, il, tl = make_case(rng, 120, 16, 20, max_len=40)
    res = []
    for nt in (1, 2):
        old = _C.get_num_threads()
        _C.set_num_threads(nt)
        try:
            x = ce.tensor(lp.astype(np.float32), requires_grad=True)
            out = F.ctc_loss(x, ce.tensor(padded(labs)), il, tl, reduction="none")
            out.sum().backward()
            res.append((out.detach().numpy(), x.grad.numpy()))
        finally:
            _C.set_num_threads(old)
    assert np.array_equal(res[0][0], res[1][0]) and np.array_equal(res[0][1], res[1][1])


def test_long_sequences_no_underflow():
    """log space: a confident model over many frames gives a finite, exact loss in float32"""
    T, C = 2000, 5
    lp = np.full((T, 1, C), -30.0, np.float32)
    lp[:, 0, 0] = np.log1p(-4 * np.exp(-30.0))
    lab = [1, 2, 3, 4] * 10
    x = ce.tensor(lp, requires_grad=True)
    out = F.ctc_loss(x, ce.tensor([lab]), [T], [len(lab)], reduction="sum")
    v, g = np_ctc(lp[:, 0].astype(np.float64), lab, 0)
    np.testing.assert_allclose(out.item(), v, rtol=1e-5)
    out.backward()
    assert np.isfinite(x.grad.numpy()).all()


# ---------------------------------------------------------------------------- bad input
def _args():
    lp = ce.tensor(log_softmax_np(np.random.default_rng(0).standard_normal((5, 2, 4))))
    return lp, ce.tensor([[1, 1, 2], [1, 2, 3]]), [5, 5], [3, 3]


@pytest.mark.parametrize("change, exc, msg", [
    (lambda a: (a[0], a[1], [6, 5], a[3]), RuntimeError,
     "Expected input_lengths to have value at most 5, but got value 6"),
    (lambda a: (a[0], a[1], [-1, 5], a[3]), RuntimeError,
     "Expected input_lengths to have value at least 0, but got value -1"),
    (lambda a: (a[0], a[1], a[2], [4, 3]), RuntimeError,
     "Expected tensor to have size at least 4 at dimension 1, but got size 3"),
    (lambda a: (a[0], a[1], a[2], [-1, 3]), RuntimeError,
     "Expected target_lengths to have value at least 0, but got value -1"),
    (lambda a: (a[0], a[1] * 2, a[2], a[3]), RuntimeError, "out of bounds for 4 classes"),
    (lambda a: (a[0], a[1] - 2, a[2], a[3]), RuntimeError, "out of bounds for 4 classes"),
    (lambda a: (a[0], a[1] - 1, a[2], a[3]), RuntimeError, "must not contain the blank"),
    (lambda a: (a[0], a[1].float(), a[2], a[3]), RuntimeError, "must be an integer tensor"),
    (lambda a: (a[0], a[1], [5, 5, 5], a[3]), RuntimeError, "input_lengths must be of size batch_size"),
    (lambda a: (a[0], a[1], a[2], [3]), RuntimeError, "target_lengths must be of size batch_size"),
    (lambda a: (a[0], a[1][:1], a[2], a[3]), RuntimeError,
     "Expected tensor to have size 2 at dimension 0, but got size 1"),
    (lambda a: (a[0], a[1].reshape(-1), a[2], [3, 4]), RuntimeError,
     "Expected tensor to have size 7 at dimension 0, but got size 6"),
    (lambda a: (a[0], a[1].reshape(2, 3, 1), a[2], a[3]), RuntimeError,
     "Expected 1 to 2 dimensions, but got 3-dimensional tensor"),
    (lambda a: (a[0].reshape(1, 5, 2, 4), a[1], a[2], a[3]), RuntimeError,
     "Expected 3-dimensional tensor, but got 4-dimensional"),
    (lambda a: (a[0], a[1], ce.tensor([5.0, 5.0]), a[3]), RuntimeError, "input_lengths must be integral"),
    (lambda a: (a[0], a[1], [5.0, 5], a[3]), TypeError, "input_lengths must be a tuple of ints"),
    (lambda a: (a[0].to(ce.int64), a[1], a[2], a[3]), NotImplementedError, "not implemented for 'Long'"),
    (lambda a: (a[0].numpy(), a[1], a[2], a[3]), TypeError, "must be Tensor"),
])
def test_bad_inputs(change, exc, msg):
    with pytest.raises(exc, match=msg.replace("(", r"\(").replace(")", r"\)")):
        F.ctc_loss(*change(_args()))


def test_bad_blank_and_reduction():
    lp, tg, il, tl = _args()
    for b in (4, -1):
        with pytest.raises(RuntimeError, match="blank must be in label range"):
            F.ctc_loss(lp, tg, il, tl, blank=b)
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.ctc_loss(lp, tg, il, tl, reduction="foo")


def test_binding_validates():
    lp = np.zeros((3, 1, 2), np.float32)
    z = np.zeros(1, np.int64)
    with pytest.raises(RuntimeError, match="input lengths"):
        _C.ctc_loss_forward(lp, np.zeros(0, np.int64), z, np.array([4]), z, 0)
    with pytest.raises(RuntimeError, match="run past the targets"):
        _C.ctc_loss_forward(lp, np.zeros(0, np.int64), z, np.array([3]), np.array([1]), 0)
    with pytest.raises(TypeError):
        _C.ctc_loss_forward(lp.astype(np.int32), np.zeros(0, np.int64), z, z, z, 0)
