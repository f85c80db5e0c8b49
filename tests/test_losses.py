"""Losses: forward against numpy/scipy formulas, float64 gradcheck for every option, bad inputs;
optional parity with torch. The gradchecked cases also run on every device present (fixture
`device`: cuda:0 where CuPy sees a GPU, skipped otherwise), against the CPU results."""
import numpy as np
import pytest
import scipy.special as sps

import cengine as ce
import cengine.nn as nn
import cengine.nn.functional as F
from cengine.autograd import gradcheck
from _util import same_on_device

RNG = np.random.default_rng(99)
DRNG = np.random.default_rng(4321)   # inputs of the device checks (RNG's draws stay as they were)


def d64(*shape, scale=1.0):
    return ce.tensor(DRNG.standard_normal(shape) * scale, dtype=ce.float64, requires_grad=True)


def t64(*shape, scale=1.0, rg=True):
    return ce.tensor(RNG.standard_normal(shape) * scale, dtype=ce.float64, requires_grad=rg)


def _red(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore"):
        return loss.sum() / (loss.size if denom is None else denom)


# ============================================================================ cross-entropy
def ce_ref(x, t, weight=None, ignore_index=-100, reduction="mean", ls=0.0):
    """Reference: classes on axis 1 (or 0 when unbatched), hand formula of torch's docs."""
    if x.ndim == 1:
        x, t, unb = x[None], np.asarray(t)[None], True
    else:
        unb = False
    C = x.shape[1]
    logp = np.moveaxis(sps.log_softmax(x.astype(np.float64), axis=1), 1, -1).reshape(-1, C)
    tf = t.reshape(-1)
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    valid = tf != ignore_index
    ts = np.where(valid, tf, 0)
    nll = -w[ts] * logp[np.arange(len(tf)), ts] * valid
    smooth = -(logp * w).sum(1) * valid
    loss = (1 - ls) * nll + ls / C * smooth
    denom = (w[ts] * valid).sum()
    if reduction == "none":
        out = loss.reshape((x.shape[0],) + x.shape[2:])
        return out[0] if unb else out
    return _red(loss, reduction, denom)


def ce_prob_ref(x, q, weight=None, reduction="mean", ls=0.0):
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    ax = 1 if x.ndim > 1 else 0
    logp = sps.log_softmax(x.astype(np.float64), axis=ax)
    q = q * (1 - ls) + ls / C
    wq = q if weight is None else q * np.expand_dims(weight, tuple(range(1, x.ndim - ax))) \
        if x.ndim > 2 else q * weight
    loss = -(wq * logp).sum(axis=ax)
    n = loss.size
    return _red(loss, reduction, n)


OPTS = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(ignore_index=1),
        dict(weight=True), dict(ls=0.2), dict(weight=True, ls=0.1, ignore_index=2),
        dict(weight=True, reduction="none", ls=0.3)]


def _mk_ce_args(opts, C):
    w = RNG.random(C) + 0.5 if opts.get("weight") else None
    kw = dict(reduction=opts.get("reduction", "mean"), ignore_index=opts.get("ignore_index",
                                                                             -100),
              label_smoothing=opts.get("ls", 0.0))
    return w, kw


@pytest.mark.parametrize("opts", OPTS, ids=[str(o) for o in OPTS])
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 2), (5,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_class_targets(opts, shape, dtype):
    C = shape[1] if len(shape) > 1 else shape[0]
    x = (RNG.standard_normal(shape) * 3).astype(dtype)
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    t = np.asarray(RNG.integers(0, C, tshape))
    if len(shape) > 1 and "ignore_index" in opts:
        t.reshape(-1)[:2] = opts["ignore_index"]
    w, kw = _mk_ce_args(opts, C)
    out = F.cross_entropy(ce.tensor(x), ce.tensor(t),
                          weight=None if w is None else ce.tensor(w.astype(dtype)), **kw)
    ref = ce_ref(x, t, w, kw["ignore_index"], kw["reduction"], kw["label_smoothing"])
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(out._data, ref, **tol)
    assert out.dtype.np == dtype and out.shape == np.shape(ref)
    mod = nn.CrossEntropyLoss(weight=None if w is None else ce.tensor(w.astype(dtype)), **kw)
    np.testing.assert_allclose(mod(ce.tensor(x), ce.tensor(t))._data, ref, **tol)


def _ce_grad_ref(x, t, w, ii, ls, reduction):
    """d loss / d logits for (N, C) logits: softmax minus the (smoothed, weighted) target."""
    N, C = x.shape
    p = sps.softmax(x.astype(np.float64), axis=1)
    w = np.ones(C) if w is None else w.astype(np.float64)
    valid = t != ii
    ts = np.where(valid, t, 0)
    onehot = np.eye(C)[ts]
    g = valid[:, None] * ((1 - ls) * w[ts][:, None] * (p - onehot)
                          + ls / C * (p * w.sum() - w))
    if reduction == "mean":
        g /= (w[ts] * valid).sum()
    return g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C", [(1, 1), (7, 3), (33, 17), (5, 100)])
def test_cross_entropy_kernel_paths(isa, nthreads, dtype, N, C):
    x = (RNG.standard_normal((N, C)) * 4).astype(dtype)
    t = RNG.integers(0, C, N)
    t[0] = -100 if N > 1 else t[0]
    w = (RNG.random(C) + 0.5).astype(dtype)
    tol = dict(rtol=3e-5, atol=3e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for weight, ls, red in [(None, 0.0, "mean"), (w, 0.15, "sum"), (w, 0.0, "mean")]:
        xt = ce.tensor(x, requires_grad=True)
        out = F.cross_entropy(xt, ce.tensor(t), weight=None if weight is None
                              else ce.tensor(weight), label_smoothing=ls, reduction=red)
        np.testing.assert_allclose(out._data, ce_ref(x, t, weight, -100, red, ls), **tol)
        out.backward()
        np.testing.assert_allclose(xt.grad._data, _ce_grad_ref(x, t, weight, -100, ls, red),
                                   **tol)
    q = sps.softmax(RNG.standard_normal((N, C)), axis=1).astype(dtype)
    xt = ce.tensor(x, requires_grad=True)
    out = F.cross_entropy(xt, ce.tensor(q), label_smoothing=0.1)
    np.testing.assert_allclose(out._data, ce_prob_ref(x, q, None, "mean", 0.1), **tol)
    out.backward()
    p = sps.softmax(x.astype(np.float64), axis=1)
    qs = q * 0.9 + 0.1 / C
    np.testing.assert_allclose(xt.grad._data, (p * qs.sum(1, keepdims=True) - qs) / N, **tol)


@pytest.mark.parametrize("opts", OPTS, ids=[str(o) for o in OPTS])
def test_cross_entropy_gradcheck(opts, device):
    for shape in [(4, 3), (2, 3, 2)]:
        C = shape[1]
        t = RNG.integers(0, C, (shape[0],) + shape[2:])
        if "ignore_index" in opts:
            t.reshape(-1)[0] = opts["ignore_index"]
            if (t == opts["ignore_index"]).all():   # every row ignored: a nan mean, no check
                t.reshape(-1)[-1] = (opts["ignore_index"] + 1) % C
        w, kw = _mk_ce_args(opts, C)
        wt = None if w is None else ce.tensor(w)
        tt = ce.tensor(t)
        assert gradcheck(lambda x: F.cross_entropy(x, tt, weight=wt, **kw), (t64(*shape),))
        same_on_device(device, lambda x, t, w: F.cross_entropy(x, t, weight=w, **kw),
                       d64(*shape, scale=3), tt, wt)
    assert gradcheck(lambda x: F.cross_entropy(x, ce.tensor(2), label_smoothing=0.1),
                     (t64(4),))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("use_w,ls", [(False, 0.0), (True, 0.25)])
def test_cross_entropy_prob_targets(reduction, use_w, ls, device):
    for shape in [(5, 4), (2, 4, 3), (4,)]:
        C = shape[1] if len(shape) > 1 else shape[0]
        x = RNG.standard_normal(shape) * 2
        q = sps.softmax(RNG.standard_normal(shape), axis=1 if len(shape) > 1 else 0)
        w = RNG.random(C) + 0.5 if use_w else None
        wt = None if w is None else ce.tensor(w)
        out = F.cross_entropy(ce.tensor(x), ce.tensor(q), weight=wt, reduction=reduction,
                              label_smoothing=ls)
        np.testing.assert_allclose(out._data, ce_prob_ref(x, q, w, reduction, ls), rtol=1e-11,
                                   atol=1e-12)
        xt, qt = t64(*shape), ce.tensor(q, requires_grad=True)
        assert gradcheck(lambda x, q: F.cross_entropy(x, q, weight=wt, reduction=reduction,
                                                      label_smoothing=ls), (xt, qt))
        same_on_device(device, lambda x, q, w: F.cross_entropy(x, q, weight=w,
                                                               reduction=reduction,
                                                               label_smoothing=ls), xt, qt, wt)


def test_cross_entropy_all_ignored_is_nan_and_ignored_rows_get_no_grad():
    x = t64(3, 4)
    t = ce.tensor([-100, -100, -100])
    assert np.isnan(F.cross_entropy(x, t).item())
    t2 = ce.tensor([1, -100, 2])
    F.cross_entropy(x, t2).backward()
    assert not x.grad._data[1].any() and x.grad._data[0].any()


def test_cross_entropy_errors():
    x = ce.randn(3, 5)
    with pytest.raises(IndexError, match="Target 5 is out of bounds."):
        F.cross_entropy(x, ce.tensor([0, 5, 1]))
    with pytest.raises(IndexError, match="Target -1 is out of bounds."):
        F.cross_entropy(x, ce.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target "
                                         r"batch_size \(2\)."):
        F.cross_entropy(x, ce.tensor([0, 1]))
    with pytest.raises(RuntimeError, match=r"Expected target size \[2, 4\], got \[2, 3\]"):
        F.cross_entropy(ce.randn(2, 5, 4), ce.zeros(2, 3, dtype=ce.int64))
    with pytest.raises(RuntimeError, match="expected scalar type Long but found Float"):
        F.cross_entropy(x, ce.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(RuntimeError, match="Expected floating point type for target with class "
                                           "probabilities, got Long"):
        F.cross_entropy(x, ce.zeros(3, 5, dtype=ce.int64))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0. Got: "
                                           "1.5"):
        F.cross_entropy(x, ce.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 5 "
                                           "classes or no classes"):
        F.cross_entropy(x, ce.tensor([0, 1, 2]), weight=ce.ones(4))
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.cross_entropy(x, ce.tensor([0, 1, 2]), reduction="foo")
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="foo")
    with pytest.raises(ValueError, match=r"Expected 1 or more dimensions \(got 0\)"):
        F.cross_entropy(ce.tensor(1.0), ce.tensor(0))
    with pytest.raises(TypeError):
        F.cross_entropy(x, [0, 1, 2])


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((4, 5, 3))
    t = RNG.integers(0, 5, (4, 3))
    t[0, 0] = 3
    w = RNG.random(5) + 0.5
    for kw in [dict(), dict(ignore_index=3, label_smoothing=0.2), dict(reduction="none")]:
        xt = torch.tensor(x, requires_grad=True)
        tl = torch.nn.functional.cross_entropy(xt, torch.tensor(t), weight=torch.tensor(w), **kw)
        tl.sum().backward()
        xc = ce.tensor(x, requires_grad=True)
        cl = F.cross_entropy(xc, ce.tensor(t), weight=ce.tensor(w), **kw)
        cl.sum().backward()
        np.testing.assert_allclose(cl._data, tl.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(xc.grad._data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


# ============================================================================ nll
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction, device):
    x = sps.log_softmax(RNG.standard_normal((5, 4)), axis=1)
    t = np.array([0, 3, 1, 1, 2])
    w = RNG.random(4) + 0.5
    for weight, ii in [(None, -100), (w, 1)]:
        out = nn.NLLLoss(weight=None if weight is None else ce.tensor(weight), ignore_index=ii,
                         reduction=reduction)(ce.tensor(x), ce.tensor(t))
        ww = np.ones(4) if weight is None else weight
        valid = t != ii
        loss = -ww[t] * x[np.arange(5), t] * valid
        np.testing.assert_allclose(out._data, _red(loss, reduction, (ww[t] * valid).sum()),
                                   rtol=1e-12)
        wt = None if weight is None else ce.tensor(weight)
        assert gradcheck(lambda x: F.nll_loss(x, ce.tensor(t), weight=wt, ignore_index=ii,
                                              reduction=reduction), (t64(5, 4),))
        same_on_device(device, lambda x, t, w: F.nll_loss(x, t, weight=w, ignore_index=ii,
                                                          reduction=reduction),
                       d64(5, 4), ce.tensor(t), wt)
    assert gradcheck(lambda x: F.nll_loss(x, ce.tensor([[0, 2], [1, 1]]), reduction=reduction),
                     (t64(2, 3, 2),))
    with pytest.raises(IndexError, match="Target 4 is out of bounds."):
        F.nll_loss(ce.tensor(x), ce.tensor([0, 4, 1, 1, 2]))


# ============================================================================ regression losses
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction, device):
    x = RNG.standard_normal((4, 3)) * 2
    y = RNG.standard_normal((4, 3)) * 2
    d = x - y
    a = np.abs(d)
    cases = [
        (nn.MSELoss(reduction=reduction), d * d),
        (nn.L1Loss(reduction=reduction), a),
        (nn.SmoothL1Loss(reduction=reduction, beta=0.7),
         np.where(a < 0.7, 0.5 * d * d / 0.7, a - 0.35)),
        (nn.SmoothL1Loss(reduction=reduction, beta=0.0), a),
        (nn.HuberLoss(reduction=reduction, delta=1.3),
         np.where(a <= 1.3, 0.5 * d * d, 1.3 * (a - 0.65))),
    ]
    for mod, ref in cases:
        out = mod(ce.tensor(x), ce.tensor(y))
        np.testing.assert_allclose(out._data, _red(ref, reduction), rtol=1e-12, err_msg=repr(mod))
        assert gradcheck(lambda x, y: mod(x, y), (t64(3, 2), t64(3, 2)))
        same_on_device(device, lambda x, y: mod(x, y), d64(3, 2, scale=2), d64(3, 2))


def test_regression_loss_broadcast_warning_and_errors():
    with pytest.warns(UserWarning, match="Using a target size"):
        F.mse_loss(ce.randn(3, 1), ce.randn(3))
    with pytest.raises(ValueError, match="bar is not a valid value for reduction"):
        F.l1_loss(ce.randn(2), ce.randn(2), reduction="bar")
    with pytest.raises(RuntimeError, match="negative values for beta"):
        F.smooth_l1_loss(ce.randn(2), ce.randn(2), beta=-1.0)


# ============================================================================ BCE family
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce(reduction, device):
    p = RNG.uniform(0.05, 0.95, (4, 3))
    y = RNG.uniform(0, 1, (4, 3))
    w = RNG.random(3) + 0.5
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    out = nn.BCELoss(reduction=reduction)(ce.tensor(p), ce.tensor(y))
    np.testing.assert_allclose(out._data, _red(ref, reduction), rtol=1e-12)
    outw = nn.BCELoss(weight=ce.tensor(w), reduction=reduction)(ce.tensor(p), ce.tensor(y))
    np.testing.assert_allclose(outw._data, _red(ref * w, reduction), rtol=1e-12)
    pt = ce.tensor(RNG.uniform(0.1, 0.9, (3, 2)), requires_grad=True)
    yt = ce.tensor(RNG.uniform(0, 1, (3, 2)), requires_grad=True)
    assert gradcheck(lambda p, y: F.binary_cross_entropy(p, y, reduction=reduction), (pt, yt))
    same_on_device(device, lambda p, y, w: F.binary_cross_entropy(p, y, weight=w,
                                                                  reduction=reduction),
                   pt, yt, ce.tensor(DRNG.random(2) + 0.5))
    # log clamped at -100: p = 0 or 1 stays finite
    edge = F.binary_cross_entropy(ce.tensor([0.0, 1.0]), ce.tensor([1.0, 0.0]),
                                  reduction="none")
    np.testing.assert_allclose(edge._data, [100.0, 100.0])


def test_bce_errors():
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(ce.tensor([1.5]), ce.tensor([1.0]))
    with pytest.raises(ValueError, match="Using a target size .* that is different to the input "
                                         "size"):
        F.binary_cross_entropy(ce.tensor([0.5, 0.5]), ce.tensor([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="must be the same as input size"):
        F.binary_cross_entropy_with_logits(ce.randn(3), ce.randn(3, 1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(reduction, device):
    x = RNG.standard_normal((4, 3)) * 5
    x[0, 0], x[0, 1] = 60.0, -60.0  # stable at large |x|
    y = RNG.uniform(0, 1, (4, 3))
    pw = RNG.random(3) + 0.5
    w = RNG.random(3) + 0.5
    sp_neg = np.logaddexp(0, -x)  # softplus(-x) = -log sigmoid(x)
    sp_pos = np.logaddexp(0, x)   # -log(1 - sigmoid(x))
    ref = y * sp_neg + (1 - y) * sp_pos
    out = nn.BCEWithLogitsLoss(reduction=reduction)(ce.tensor(x), ce.tensor(y))
    np.testing.assert_allclose(out._data, _red(ref, reduction), rtol=1e-12)
    refp = (pw * y * sp_neg + (1 - y) * sp_pos) * w
    outp = nn.BCEWithLogitsLoss(weight=ce.tensor(w), pos_weight=ce.tensor(pw),
                                reduction=reduction)(ce.tensor(x), ce.tensor(y))
    np.testing.assert_allclose(outp._data, _red(refp, reduction), rtol=1e-12)
    args = (t64(3, 3), ce.tensor(RNG.uniform(0, 1, (3, 3)), requires_grad=True))
    assert gradcheck(lambda x, y: F.binary_cross_entropy_with_logits(
        x, y, weight=ce.tensor(w), pos_weight=ce.tensor(pw), reduction=reduction), args)
    assert gradcheck(lambda x, pw: F.binary_cross_entropy_with_logits(
        x, args[1].detach(), pos_weight=pw, reduction=reduction), (args[0], t64(3)))
    same_on_device(device, lambda x, y, w, pw: F.binary_cross_entropy_with_logits(
        x, y, weight=w, pos_weight=pw, reduction=reduction), args[0], args[1], ce.tensor(w),
        d64(3))


# ============================================================================ KL divergence
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target, device):
    logq = sps.log_softmax(RNG.standard_normal((4, 5)), axis=1)
    p = sps.softmax(RNG.standard_normal((4, 5)), axis=1)
    if not log_target:
        p[0, 0] = 0.0  # 0 log 0 = 0
    tgt = np.log(p) if log_target else p
    ref = sps.xlogy(p, p) - p * logq
    expect = ref.sum() / 4 if reduction == "batchmean" else _red(ref, reduction)
    mod = nn.KLDivLoss(reduction=reduction, log_target=log_target)
    if reduction == "mean":
        with pytest.warns(UserWarning, match="batchmean"):
            out = mod(ce.tensor(logq), ce.tensor(tgt))
    else:
        out = mod(ce.tensor(logq), ce.tensor(tgt))
    np.testing.assert_allclose(out._data, expect, rtol=1e-12, atol=1e-15)
    if reduction != "mean":
        tg = ce.tensor(RNG.uniform(0.1, 1, (3, 4)) if not log_target
                       else RNG.standard_normal((3, 4)), requires_grad=True)
        assert gradcheck(lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target),
                         (t64(3, 4), tg))
        same_on_device(device, lambda x, t: F.kl_div(x, t, reduction=reduction,
                                                     log_target=log_target), d64(3, 4), tg)


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = RNG.standard_normal((3, 4))
    y = RNG.uniform(0, 1, (3, 4))
    pw = RNG.random(4) + 0.5
    pairs = [
        (F.smooth_l1_loss(ce.tensor(x), ce.tensor(y), beta=0.5),
         tf.smooth_l1_loss(torch.tensor(x), torch.tensor(y), beta=0.5)),
        (F.huber_loss(ce.tensor(x), ce.tensor(y), delta=0.4),
         tf.huber_loss(torch.tensor(x), torch.tensor(y), delta=0.4)),
        (F.binary_cross_entropy_with_logits(ce.tensor(x), ce.tensor(y), pos_weight=ce.tensor(pw)),
         tf.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y),
                                             pos_weight=torch.tensor(pw))),
        (F.kl_div(ce.tensor(x), ce.tensor(y), reduction="batchmean"),
         tf.kl_div(torch.tensor(x), torch.tensor(y), reduction="batchmean")),
        (F.cross_entropy(ce.tensor(x), ce.tensor(sps.softmax(y, 1)), label_smoothing=0.3),
         tf.cross_entropy(torch.tensor(x), torch.tensor(sps.softmax(y, 1)), label_smoothing=0.3)),
    ]
    for c, t in pairs:
        np.testing.assert_allclose(c._data, t.numpy(), rtol=1e-12)


def test_cross_entropy_with_no_classes_like_torch():
    """(N, 0) logits: a class-index target is out of bounds (torch's IndexError); (0, 0): the
    mean over no rows is NaN"""
    with pytest.raises(IndexError, match="Target 0 is out of bounds"):
        ce.nn.functional.cross_entropy(ce.zeros(3, 0), ce.zeros(3, dtype=ce.int64))
    r = ce.nn.functional.cross_entropy(ce.zeros(0, 0), ce.zeros(0, dtype=ce.int64))
    assert np.isnan(float(r))
