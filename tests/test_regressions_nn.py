"""Regression tests for silent differences from torch in the nn layer: in-place activations under
autograd, losses with ignored rows, attention with masked rows / empty sizes, 0-d and dtype rules
of activations, the packed q/k/v gradient contract. Every test checks a hand-computed expectation
(runs without torch); the *_torch tests compare with torch where it is installed."""
import numpy as np
import pytest

import cengine as ce
import cengine.nn.functional as F
from cengine import nn
from cengine.autograd import gradcheck

RNG = np.random.default_rng(1234)
LEAF_MSG = "a leaf Variable that requires grad is being used in an in-place operation"


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


# name -> (in-place call, numpy value, numpy derivative)
INPLACE = {
    "relu_": (lambda t: F.relu_(t), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "relu(inplace)": (lambda t: F.relu(t, inplace=True), lambda x: np.maximum(x, 0),
                      lambda x: (x > 0) * 1.0),
    "Tensor.relu_": (lambda t: t.relu_(), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "ReLU(inplace)": (lambda t: nn.ReLU(inplace=True)(t), lambda x: np.maximum(x, 0),
                      lambda x: (x > 0) * 1.0),
    "leaky_relu_": (lambda t: F.leaky_relu_(t, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                    lambda x: np.where(x > 0, 1.0, 0.2)),
    "LeakyReLU(inplace)": (lambda t: nn.LeakyReLU(0.3, inplace=True)(t),
                           lambda x: np.where(x > 0, x, 0.3 * x),
                           lambda x: np.where(x > 0, 1.0, 0.3)),
    "sigmoid_": (lambda t: t.sigmoid_(), _sig, lambda x: _sig(x) * (1 - _sig(x))),
    "tanh_": (lambda t: ce.tanh_(t), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "silu(inplace)": (lambda t: F.silu(t, inplace=True), lambda x: x * _sig(x),
                      lambda x: _sig(x) * (1 + x * (1 - _sig(x)))),
    "mish(inplace)": (lambda t: nn.Mish(inplace=True)(t), lambda x: x * np.tanh(_softplus(x)),
                      lambda x: np.tanh(_softplus(x))
                      + x * _sig(x) * (1 - np.tanh(_softplus(x)) ** 2)),
    "elu_": (lambda t: F.elu_(t, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
             lambda x: np.where(x > 0, 1.0, 0.7 * np.exp(x))),
    "hardtanh_": (lambda t: F.hardtanh_(t, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
                  lambda x: ((x > -0.5) & (x < 0.5)) * 1.0),
    "relu6(inplace)": (lambda t: nn.ReLU6(inplace=True)(t), lambda x: np.clip(x, 0, 6),
                       lambda x: ((x > 0) & (x < 6)) * 1.0),
}


def _away_from_kinks(shape):
    x = np.asarray(RNG.standard_normal(shape) * 2)
    x[np.abs(x) < 0.1] += 0.3
    x[np.abs(np.abs(x) - 0.5) < 0.05] += 0.2
    return x


@pytest.mark.parametrize("name", sorted(INPLACE))
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "0-d"])
def test_inplace_activation_under_autograd(name, layout):
    """The input is overwritten, returned, its version bumped, its grad_fn replaced, and the
    gradient flows through the in-place node to the leaf (was: x unchanged, a new tensor)."""
    op, fval, fder = INPLACE[name]
    x = _away_from_kinks(()) if layout == "0-d" else _away_from_kinks((3, 5))
    leaf = ce.tensor(x, dtype=ce.float64, requires_grad=True)
    h = leaf * 1.0
    if layout == "transposed":
        h = h.t()
    hx = x.T if layout == "transposed" else x
    v0, fn0 = h._version[0], h.grad_fn
    out = op(h)
    assert out is h
    assert h._version[0] == v0 + 1
    assert h.grad_fn is not fn0 and h.requires_grad
    assert tuple(h.shape) == hx.shape
    np.testing.assert_allclose(h.detach().numpy(), fval(hx), rtol=1e-12, atol=1e-12)
    w = RNG.standard_normal(hx.shape)
    (out * ce.tensor(w)).sum().backward()
    want = fder(hx) * w
    np.testing.assert_allclose(leaf.grad.numpy(), want.T if layout == "transposed" else want,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_activation_gradcheck_nonleaf(name):
    op = INPLACE[name][0]
    x = ce.tensor(_away_from_kinks((2, 3)), dtype=ce.float64, requires_grad=True)
    assert gradcheck(lambda t: op(t * 1.0), (x,))
    assert gradcheck(lambda t: op(t * 1.0) * t, (x,))   # old and new value both used


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_activation_on_leaf_raises(name):
    op = INPLACE[name][0]
    x = ce.tensor([-1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=LEAF_MSG):
        op(x)
    assert x.tolist() == [-1.0, 2.0]   # refused before writing
    with ce.no_grad():                 # allowed without a graph, as in torch
        assert op(x) is x
    assert x.tolist() != [-1.0, 2.0]


def test_inplace_activation_without_grad_writes_in_place():
    for name, (op, fval, _) in INPLACE.items():
        x = _away_from_kinks((4, 3))
        t = ce.tensor(x)
        v0 = t._version[0]
        assert op(t) is t, name
        assert t._version[0] == v0 + 1, name
        np.testing.assert_allclose(t.numpy(), fval(x).astype(np.float32), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        assert t.grad_fn is None and not t.requires_grad


def test_inplace_activation_version_checks():
    a = ce.randn(3, 4, dtype=ce.float64, requires_grad=True)
    # a node that saved the old value refuses to run on the overwritten one
    h = a * 1.0
    sq = h * h
    F.relu_(h)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        sq.sum().backward()
    # the in-place node saved its result: a later in-place change of it is detected
    h = a * 1.0
    out = h.sigmoid_()
    h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    # so is overwriting it with a second in-place activation (torch raises the same) ...
    h = a * 1.0
    F.relu_(h).tanh_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        h.sum().backward()
    # ... unless the first one kept its own copy of the input (silu needs x, not y)
    h = a * 1.0
    F.silu(h, inplace=True).relu_()
    h.sum().backward()
    x = a.detach().numpy()
    s = x * _sig(x)
    np.testing.assert_allclose(a.grad.numpy(), (s > 0) * _sig(x) * (1 + x * (1 - _sig(x))),
                               rtol=1e-12)


def test_inplace_activation_dtypes():
    t = ce.tensor([-2, 3, 0])
    assert F.relu_(t) is t and t.tolist() == [0, 3, 0] and t.dtype == ce.int64
    t = ce.tensor([-2, 3, 9])
    assert F.relu6(t, inplace=True) is t and t.tolist() == [0, 3, 6]
    with pytest.raises(NotImplementedError, match="\"silu_cpu\" not implemented for 'Long'"):
        F.silu(ce.tensor([1, 2]), inplace=True)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                                           "output type Int64"):
        ce.tensor([1, 2]).sigmoid_()
    h = ce.tensor([-1.0, 0.5, 2.0], dtype=ce.float16)
    assert F.relu_(h) is h and h.dtype == ce.float16 and h.tolist() == [0.0, 0.5, 2.0]


def test_inplace_leaky_relu_negative_slope_backward_raises():
    a = ce.randn(4, requires_grad=True)
    h = a * 1
    F.leaky_relu(h, -0.1, inplace=True)
    with pytest.raises(RuntimeError, match="In-place leakyReLu backward calculation is "
                                           "triggered with a negative slope"):
        h.sum().backward()


def test_inplace_dropout_under_autograd():
    ce.manual_seed(0)
    a = ce.ones(200, dtype=ce.float64, requires_grad=True)
    h = a * 1.0
    out = F.dropout(h, 0.5, training=True, inplace=True)
    assert out is h and h._version[0] == 1
    vals = h.detach().numpy()
    assert set(np.unique(vals)) <= {0.0, 2.0} and 0 < (vals == 0).sum() < 200
    h.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), vals)
    with pytest.raises(RuntimeError, match=LEAF_MSG):
        nn.Dropout(0.5, inplace=True)(a)


def test_inplace_activations_match_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF
    cases = [(lambda Fm, t: Fm.relu(t, inplace=True)), (lambda Fm, t: Fm.relu_(t)),
             (lambda Fm, t: Fm.leaky_relu(t, 0.2, inplace=True)),
             (lambda Fm, t: Fm.silu(t, inplace=True)), (lambda Fm, t: Fm.mish(t, inplace=True)),
             (lambda Fm, t: Fm.elu(t, 0.7, inplace=True)),
             (lambda Fm, t: Fm.hardtanh(t, -0.5, 0.5, inplace=True)),
             (lambda Fm, t: Fm.relu6(t * 4, inplace=True)), (lambda Fm, t: t.sigmoid_()),
             (lambda Fm, t: t.tanh_()), (lambda Fm, t: t.relu_())]
    for i, op in enumerate(cases):
        x = _away_from_kinks((3, 4))
        w = RNG.standard_normal((3, 4))
        got = []
        for lib, Fm in ((torch, TF), (ce, F)):
            leaf = lib.tensor(x, requires_grad=True)
            h = leaf * 1.0
            out = op(Fm, h)
            (out * lib.tensor(w)).sum().backward()
            got.append((out.detach().numpy(), leaf.grad.numpy()))
        np.testing.assert_allclose(got[1][0], got[0][0], rtol=1e-12, atol=1e-12, err_msg=str(i))
        np.testing.assert_allclose(got[1][1], got[0][1], rtol=1e-10, atol=1e-12, err_msg=str(i))


# ============================================================================ losses
NEG_INF_ROWS = np.array([[-np.inf, -0.5, -2.0], [-1.0, -2.0, -0.25], [-0.7, -np.inf, -3.0]])


@pytest.mark.filterwarnings("error")
def test_nll_loss_ignored_rows_with_neg_inf():
    """Rows whose target is ignore_index count as exactly 0 even when they hold -inf (was NaN
    through 0 * -inf), in the value and in the gradient."""
    t = ce.tensor([0, 2, 1])            # rows 0 and 2 point at -inf; ignore class 0 and 1
    for ii, kept in ((0, [1, 2]), (1, [0, 1])):
        x = ce.tensor(NEG_INF_ROWS, requires_grad=True)
        vals = np.array([-NEG_INF_ROWS[i, t.tolist()[i]] for i in range(3)])
        keep = np.array([t.tolist()[i] != ii for i in range(3)])
        none = F.nll_loss(x, t, ignore_index=ii, reduction="none")
        np.testing.assert_array_equal(none.detach().numpy(), np.where(keep, vals, 0.0))
        loss = F.nll_loss(x, t, ignore_index=ii)
        assert loss.item() == pytest.approx(vals[keep].mean())
        assert F.nll_loss(x, t, ignore_index=ii, reduction="sum").item() == \
            pytest.approx(vals[keep].sum())
        loss.backward()
        want = np.zeros((3, 3))
        want[np.arange(3)[keep], np.array(t.tolist())[keep]] = -1.0 / keep.sum()
        np.testing.assert_array_equal(x.grad.numpy(), want)


@pytest.mark.filterwarnings("error")
def test_nll_loss_every_target_ignored():
    x = ce.tensor(NEG_INF_ROWS, requires_grad=True)
    loss = F.nll_loss(x, ce.tensor([0, 0, 0]), ignore_index=0)
    assert np.isnan(loss.item())        # 0 / 0 as in torch
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 3)))   # was NaN
    x.grad = None
    F.nll_loss(x, ce.tensor([0, 0, 0]), ignore_index=0, reduction="sum").backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 3)))


def test_nll_loss_zero_weight_row_stays_nan_like_torch():
    """A kept row of weight 0 at -inf is 0 * inf = NaN in torch too (only ignore_index masks)."""
    x = ce.tensor(NEG_INF_ROWS)
    none = F.nll_loss(x, ce.tensor([0, 2, 1]), weight=ce.tensor([0.0, 1.0, 1.0]),
                      reduction="none")
    v = none.numpy()
    assert np.isnan(v[0]) and v[1] == 0.25 and v[2] == np.inf


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("prob", [False, True])
def test_cross_entropy_empty_batch_backward(reduction, prob):
    """Was ZeroDivisionError (probability targets) / a RuntimeWarning (class indices)."""
    x = ce.randn(0, 4, requires_grad=True)
    t = ce.zeros(0, 4) if prob else ce.zeros(0, dtype=ce.int64)
    loss = F.cross_entropy(x, t, reduction=reduction)
    assert np.isnan(loss.item()) if reduction == "mean" else loss.item() == 0.0
    loss.backward()
    assert tuple(x.grad.shape) == (0, 4)
    x2 = ce.randn(0, 4, requires_grad=True)
    F.nll_loss(x2, ce.zeros(0, dtype=ce.int64), reduction=reduction).backward()
    assert tuple(x2.grad.shape) == (0, 4)


def test_smooth_l1_and_huber_infinite_difference_gradient():
    """The unused branch of the piecewise loss no longer leaks 0 * inf = NaN into the
    gradient: d loss / d x is sign(d) (smooth_l1) and delta * sign(d) (huber) out there."""
    x = ce.tensor([np.inf, -np.inf, 0.3, 5.0, -5.0, 1.0], dtype=ce.float64, requires_grad=True)
    y = ce.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=ce.float64)
    F.smooth_l1_loss(x, y, reduction="sum", beta=1.0).backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, -1.0, 0.3, 1.0, -1.0, 1.0], rtol=1e-15)
    x.grad = None
    F.huber_loss(x, y, reduction="sum", delta=2.0).backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -2.0, 0.3, 2.0, -2.0, 1.0], rtol=1e-15)
    d = np.array([0.3, 5.0, -5.0, 1.0, 2.0])
    xs = ce.tensor(d)
    np.testing.assert_allclose(F.smooth_l1_loss(xs, ce.zeros(5, dtype=ce.float64),
                                                reduction="none", beta=1.5).numpy(),
                               np.where(np.abs(d) < 1.5, 0.5 * d * d / 1.5, np.abs(d) - 0.75),
                               rtol=1e-15)
    np.testing.assert_allclose(F.huber_loss(xs, ce.zeros(5, dtype=ce.float64),
                                            reduction="none", delta=2.0).numpy(),
                               np.where(np.abs(d) <= 2, 0.5 * d * d, 2 * (np.abs(d) - 1.0)),
                               rtol=1e-15)
    for f in (lambda t: F.smooth_l1_loss(t, ce.zeros(5, dtype=ce.float64), beta=1.5),
              lambda t: F.huber_loss(t, ce.zeros(5, dtype=ce.float64), delta=0.7)):
        assert gradcheck(f, (ce.tensor(d + 0.01, requires_grad=True),))


def test_binary_cross_entropy_at_zero_and_one():
    """Inputs of exactly 0 or 1: the loss clamps the log at -100 and the gradient is torch's
    finite (x - y) / max(x (1 - x), 1e-12), also under a zero weight (was NaN from 0 * inf)."""
    x = ce.tensor([1.0, 0.0, 0.25, 1.0], dtype=ce.float64, requires_grad=True)
    y = ce.tensor([0.0, 1.0, 1.0, 1.0], dtype=ce.float64)
    w = ce.tensor([1.0, 0.0, 2.0, 1.0], dtype=ce.float64)
    loss = F.binary_cross_entropy(x, y, weight=w, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [100.0, 0.0, -2 * np.log(0.25), 0.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1e12, 0.0, 2 * -0.75 / 0.1875, 0.0])
    xs = ce.tensor([0.2, 0.7, 0.45], dtype=ce.float64, requires_grad=True)
    ys = ce.tensor([0.1, 1.0, 0.5], dtype=ce.float64, requires_grad=True)
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b), (xs, ys))
    assert F.binary_cross_entropy(ce.tensor(0.5), ce.tensor(1.0), reduction="none").shape == ()


def test_probability_targets_reject_ignore_index():
    x, t = ce.randn(2, 3), F.softmax(ce.randn(2, 3), 1)
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point "
                                           "target"):
        F.cross_entropy(x, t, ignore_index=1)
    F.cross_entropy(x, t, ignore_index=-1)       # negative values are accepted (torch)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        nn.CrossEntropyLoss(ignore_index=0)(x, t)
    # label smoothing with probability targets is torch's q = (1 - eps) t + eps / C
    xd, td = x.double(), t.double()
    q = 0.8 * td.numpy() + 0.2 / 3
    ls = F.log_softmax(xd, 1).numpy()
    assert F.cross_entropy(xd, td, label_smoothing=0.2).item() == \
        pytest.approx(-(q * ls).sum(1).mean(), rel=1e-12)


def test_norm_rejects_empty_normalized_shape():
    for f in (lambda: F.layer_norm(ce.randn(2, 3), []), lambda: F.rms_norm(ce.randn(2, 3), []),
              lambda: nn.LayerNorm([])(ce.randn(2, 3))):
        with pytest.raises(RuntimeError, match="Expected normalized_shape to be at least "
                                               "1-dimensional"):
            f()


def test_losses_with_special_values_match_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF
    specials = [0.0, 1.0, -1.0, 0.5, np.inf, -np.inf, 3.0, -3.0]
    rng = np.random.default_rng(7)
    for _ in range(60):
        x = rng.choice(specials, size=(3, 2))
        tf = rng.choice([0.0, 1.0, 0.5, np.inf, -np.inf], size=(3, 2))
        ti = rng.integers(0, 2, size=3)
        w = rng.choice([0.0, 1.0, 2.0], size=2)
        for red in ("mean", "sum", "none"):
            cases = [("smooth_l1_loss", x, tf, dict(beta=1.0)), ("huber_loss", x, tf, {}),
                     ("mse_loss", x, tf, {}),
                     ("binary_cross_entropy", 1 / (1 + np.exp(-x)), np.clip(tf, 0, 1),
                      dict(weight=w)),
                     ("nll_loss", -np.abs(x), ti, dict(ignore_index=0)),
                     ("nll_loss", -np.abs(x), ti, dict(weight=w))]
            for name, a, b, kw in cases:
                got = []
                for lib, Fm in ((torch, TF), (ce, F)):
                    A = lib.tensor(a, requires_grad=True)
                    B = lib.tensor(b) if b.dtype.kind == "f" else lib.tensor(b, dtype=lib.int64)
                    k = {n: (lib.tensor(v) if isinstance(v, np.ndarray) else v)
                         for n, v in kw.items()}
                    loss = getattr(Fm, name)(A, B, reduction=red, **k)
                    loss.sum().backward()
                    got.append((loss.detach().numpy(), A.grad.numpy()))
                for u, v in zip(*got):
                    np.testing.assert_allclose(v, u, rtol=1e-6, atol=1e-8, equal_nan=True,
                                               err_msg="%s %s %s %s" % (name, red, a, b))


# ============================================================================ attention
def _sdpa_np(q, k, v, live):
    """numpy attention over the rows in `live` (a bool (L,) mask); the other rows are 0."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = p @ v
    o[..., ~live, :] = 0.0
    return o


@pytest.mark.parametrize("kind", ["bool", "float", "float_grad"])
def test_sdpa_fully_masked_query_row_is_zero(kind):
    """Was NaN output and NaN gradients for the row (torch 2.13: 0 and 0)."""
    B, L, S, E = 2, 4, 5, 3
    q = ce.tensor(RNG.standard_normal((B, L, E)), requires_grad=True)
    k = ce.tensor(RNG.standard_normal((B, S, E)), requires_grad=True)
    v = ce.tensor(RNG.standard_normal((B, S, E)), requires_grad=True)
    allowed = np.ones((L, S), bool)
    allowed[1] = False                     # query row 1 may attend nothing
    if kind == "bool":
        mask = ce.tensor(allowed)
    else:
        mask = ce.tensor(np.where(allowed, 0.0, -np.inf), requires_grad=kind == "float_grad")
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    live = allowed.any(1)
    np.testing.assert_allclose(o.detach().numpy(),
                               _sdpa_np(q.detach().numpy(), k.detach().numpy(),
                                        v.detach().numpy(), live), rtol=1e-12, atol=1e-14)
    w = ce.tensor(RNG.standard_normal((B, L, E)))
    (o * w).sum().backward()
    for g in (q.grad, k.grad, v.grad):
        assert np.isfinite(g.numpy()).all()
    np.testing.assert_array_equal(q.grad.numpy()[:, 1], 0.0)
    if kind == "float_grad":
        assert np.isfinite(mask.grad.numpy()).all()
        np.testing.assert_array_equal(mask.grad.numpy()[1], 0.0)
    # k and v get exactly the gradient of the live rows alone
    qd = ce.tensor(q.detach().numpy()[:, live], requires_grad=True)
    kd = ce.tensor(k.detach().numpy(), requires_grad=True)
    vd = ce.tensor(v.detach().numpy(), requires_grad=True)
    (F.scaled_dot_product_attention(qd, kd, vd) * ce.tensor(w.numpy()[:, live])).sum().backward()
    np.testing.assert_allclose(k.grad.numpy(), kd.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v.grad.numpy(), vd.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(q.grad.numpy()[:, live], qd.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_sdpa_fully_masked_gradcheck():
    allowed = np.ones((3, 4), bool)
    allowed[2] = False
    m = ce.tensor(allowed)
    args = [ce.tensor(RNG.standard_normal(s), requires_grad=True) for s in
            ((2, 3, 2), (2, 4, 2), (2, 4, 3))]
    assert gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=m),
                     tuple(args))


def test_mha_key_padding_all_masked():
    """need_weights=False goes through scaled_dot_product_attention: the fully padded sample
    gives 0 (torch); need_weights=True is a plain softmax and gives NaN there, as torch's."""
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    x = ce.randn(2, 3, 4)
    kpm = ce.tensor([[True, True, True], [False, False, True]])
    o, w = mha(x, x, x, key_padding_mask=kpm, need_weights=False)
    assert w is None and np.isfinite(o.detach().numpy()).all()
    bias = mha.out_proj.bias.detach().numpy()
    np.testing.assert_allclose(o.detach().numpy()[0], np.broadcast_to(bias, (3, 4)), atol=1e-7)
    o, w = mha(x, x, x, key_padding_mask=kpm, need_weights=True)
    assert np.isnan(w.detach().numpy()[0]).all() and np.isfinite(w.detach().numpy()[1]).all()


@pytest.mark.parametrize("shapes", [((2, 0, 3), (2, 4, 3), (2, 4, 5)),    # no query
                                    ((2, 3, 3), (2, 0, 3), (2, 0, 5)),    # no key
                                    ((0, 3, 3), (0, 4, 3), (0, 4, 5)),    # no batch
                                    ((2, 3, 0), (2, 4, 0), (2, 4, 5)),    # E = 0
                                    ((1, 2, 0, 3), (1, 2, 0, 3), (1, 2, 0, 3))])
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_empty_sizes(shapes, masked):
    """Was "cannot reshape array of size 0" (S = 0) / ZeroDivisionError (E = 0)."""
    qs, ks, vs = shapes
    q, k, v = (ce.tensor(RNG.standard_normal(s), requires_grad=True) for s in shapes)
    mask = ce.ones(qs[-2], ks[-2], dtype=ce.bool) if masked else None
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert tuple(o.shape) == qs[:-1] + (vs[-1],)
    L, S = qs[-2], ks[-2]
    if S == 0 or qs[-1] != 0:
        want = np.zeros(o.shape) if S == 0 else _sdpa_np(q.detach().numpy(), k.detach().numpy(),
                                                         v.detach().numpy(), np.ones(L, bool))
    else:   # E = 0: every score is 0, the weights uniform
        want = np.broadcast_to(v.detach().numpy().mean(-2, keepdims=True), o.shape)
    np.testing.assert_allclose(o.detach().numpy(), want, rtol=1e-12, atol=1e-14)
    o.sum().backward()
    for t in (q, k, v):
        assert tuple(t.grad.shape) == tuple(t.shape) and np.isfinite(t.grad.numpy()).all()
    if S == 0 or L == 0:
        for t in (q, k, v):
            np.testing.assert_array_equal(t.grad.numpy(), 0.0)


def test_sdpa_masked_and_empty_match_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF
    allowed = np.ones((4, 5), bool)
    allowed[[0, 3]] = False
    cases = [(((2, 4, 3), (2, 5, 3), (2, 5, 2)), allowed),
             (((2, 4, 3), (2, 5, 3), (2, 5, 2)), np.where(allowed, 0.0, -np.inf)),
             (((2, 0, 3), (2, 5, 3), (2, 5, 2)), None), (((2, 4, 3), (2, 0, 3), (2, 0, 2)), None),
             (((2, 4, 0), (2, 5, 0), (2, 5, 2)), None), (((0, 4, 3), (0, 5, 3), (0, 5, 2)), None)]
    for shapes, m in cases:
        arrs = [RNG.standard_normal(s) for s in shapes]
        w = RNG.standard_normal(shapes[0][:-1] + (shapes[2][-1],))
        got = []
        for lib, Fm in ((torch, TF), (ce, F)):
            ts = [lib.tensor(a, requires_grad=True) for a in arrs]
            mm = None if m is None else lib.tensor(m)
            o = Fm.scaled_dot_product_attention(*ts, attn_mask=mm)
            (o * lib.tensor(w)).sum().backward()
            got.append([o.detach().numpy()] + [t.grad.numpy() for t in ts])
        for a, b in zip(*got):
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


# ============================================================================ packed q/k/v
def _counts():
    from cengine.ops.shape import Split
    from cengine.ops import attention as _att
    return Split.PACKED_TAKEN[0], _att._PACKED_QKV[0]


def _delta(before):
    after = _counts()
    return after[0] - before[0], after[1] - before[1]


B_, L_, H_, D_ = 2, 5, 2, 3
E_ = H_ * D_


def _heads(z):
    return z.reshape(B_, L_, H_, D_).transpose(1, 2)


# name -> (q, k, v from the leaf w (B, L, 3E) or its (B, L, 4E) extension, packed path expected)
ALIASING = {
    "chunk3 view+transpose": (lambda w: tuple(_heads(z) for z in w.chunk(3, -1)), True),
    "split sizes": (lambda w: tuple(_heads(z) for z in w.split([E_, E_, E_], -1)), True),
    "k,q,v order": (lambda w: (lambda a, b, c: (_heads(b), _heads(a), _heads(c)))(
        *w.chunk(3, -1)), True),
    "different view chains": (lambda w: (lambda a, b, c: (
        _heads(a), b.view(B_, L_, H_, D_).permute(0, 2, 1, 3), c.reshape(B_, L_, E_)[:, None]
        .expand(B_, 1, L_, E_)))(*w.chunk(3, -1)), False),
    "no head split": (lambda w: tuple(z for z in w.chunk(3, -1)), True),
    "q = k = v": (lambda w: (_heads(w[..., :E_]),) * 3, False),
    "same piece twice": (lambda w: (lambda a, b, c: (_heads(a), _heads(a), _heads(c)))(
        *w.chunk(3, -1)), False),
    "overlapping slices": (lambda w: (_heads(w[..., 0:E_]), _heads(w[..., 1:E_ + 1]),
                                      _heads(w[..., 2:E_ + 2])), False),
    "expanded chunks": (lambda w: tuple(_heads(t.expand(B_, L_, E_))
                                        for t in w[:1].chunk(3, -1)), False),
    "chunk along another dim": (lambda w: tuple(
        _heads(z.reshape(B_, L_, E_)) for z in w.reshape(B_, L_, 3, E_).chunk(3, 2)), False),
    "3 of 4 pieces": (lambda w: tuple(_heads(z) for z in w.chunk(4, -1)[:3]), False),
    "transposed packed": (lambda w: tuple(_heads(z) for z in w.transpose(0, 1).transpose(0, 1)
                                          .chunk(3, -1)), True),
}


@pytest.mark.parametrize("name", sorted(ALIASING))
def test_packed_qkv_gradients_every_aliasing_case(name):
    """The packed q/k/v gradient is used exactly when the graph says q, k, v are the three
    pieces of one split along the last dim; every aliasing case (shared views, overlapping or
    expanded slices, other splits) gets the separately computed gradient."""
    make, packed = ALIASING[name]
    wn = RNG.standard_normal((B_, L_, 4 * E_ if "4 pieces" in name else 3 * E_))
    gn = None

    def run(separate):
        nonlocal gn
        w = ce.tensor(wn, dtype=ce.float64, requires_grad=True)
        q, k, v = make(w)
        if separate:
            q, k, v = q * 1.0, k * 1.0, v * 1.0   # a Mul node in between: never packed
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if gn is None:
            gn = RNG.standard_normal(tuple(o.shape))
        before = _counts()
        o.backward(ce.tensor(gn))
        return w.grad.numpy(), _delta(before)

    got, d_packed = run(False)
    want, d_sep = run(True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert d_sep == (0, 0)
    assert d_packed == ((1, 1) if packed else (0, 0))


def test_packed_qkv_with_other_uses_of_the_pieces():
    """A piece also used elsewhere gets its gradient summed on the way: the split then
    concatenates (the packed buffer is no longer what arrives), and the result is right;
    retain_grad and autograd.grad on the pieces still see their own gradients."""
    wn = RNG.standard_normal((B_, L_, 3 * E_))
    res = []
    for separate in (False, True):
        w = ce.tensor(wn, dtype=ce.float64, requires_grad=True)
        q, k, v = (_heads(z) for z in w.chunk(3, -1))
        if separate:
            q, k, v = q * 1.0, k * 1.0, v * 1.0
        q.retain_grad()
        o = F.scaled_dot_product_attention(q, k, v)
        before = _counts()
        (o.sum() + (k * k).sum()).backward(retain_graph=True)
        d = _delta(before)
        gq, gk = ce.autograd.grad(o.sum(), (q, k))
        res.append((w.grad.numpy(), q.grad.numpy(), gq.numpy(), gk.numpy(), d))
    (a, qa, gqa, gka, da), (b, qb, gqb, gkb, db) = res
    for u, v_ in ((a, b), (qa, qb), (gqa, gqb), (gka, gkb)):
        np.testing.assert_allclose(u, v_, rtol=1e-12, atol=1e-12)
    assert da == (0, 1) and db == (0, 0)   # written packed, not taken: k's gradient had more


def test_packed_qkv_gradcheck():
    w = ce.tensor(RNG.standard_normal((1, 3, 3 * 4)), requires_grad=True)

    def f(w):
        q, k, v = (z.reshape(1, 3, 2, 2).transpose(1, 2) for z in w.chunk(3, -1))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert gradcheck(f, (w,))


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_and_encoder_layer_take_the_packed_path(batch_first, need_weights):
    """MultiheadAttention's self-attention (one in_proj GEMM, chunk(3)) and the encoder layer
    built on it write packed q/k/v gradients that the chunk takes as they are; the gradients
    equal those of the same module run with three separate projections."""
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first, dtype=ce.float64)
    xn = RNG.standard_normal((3, 4, 8))
    grads = []
    for fused in (True, False):
        mha.zero_grad()
        x = ce.tensor(xn, dtype=ce.float64, requires_grad=True)
        # query is key is value: the fused projection; otherwise three linears on x
        kv = x if fused else x * 1.0
        before = _counts()
        o, wts = mha(x, kv, kv if fused else x * 1.0, need_weights=need_weights)
        (o.sum() + (wts.sum() if need_weights else 0)).backward()
        assert _delta(before) == ((1, 1) if fused else (0, 0))
        grads.append((x.grad.numpy(), mha.in_proj_weight.grad.numpy(),
                      mha.in_proj_bias.grad.numpy()))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                       batch_first=batch_first)
    before = _counts()
    layer(ce.randn(3, 4, 8)).sum().backward()
    assert _delta(before) == (1, 1)


# ============================================================================ shapes / dtypes
ZERO_D = {
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + __import__("math").erf(x / np.sqrt(2)))),
    "sigmoid": (F.sigmoid, _sig), "silu": (F.silu, lambda x: x * _sig(x)),
    "relu": (F.relu, lambda x: max(x, 0.0)), "tanh": (F.tanh, np.tanh),
    "softplus": (F.softplus, _softplus), "mish": (F.mish, lambda x: x * np.tanh(_softplus(x))),
    "logsigmoid": (F.logsigmoid, lambda x: -_softplus(-x)),
    "leaky_relu": (F.leaky_relu, lambda x: x if x > 0 else 0.01 * x),
    "elu": (F.elu, lambda x: x if x > 0 else np.expm1(x)),
    "relu6": (F.relu6, lambda x: min(max(x, 0.0), 6.0)),
    "hardtanh": (F.hardtanh, lambda x: min(max(x, -1.0), 1.0)),
    "ce.relu": (ce.relu, lambda x: max(x, 0.0)), "Tensor.sigmoid": (lambda t: t.sigmoid(), _sig),
}


@pytest.mark.parametrize("name", sorted(ZERO_D))
@pytest.mark.parametrize("x", [-0.7, 1.3])
def test_activations_keep_0d_shape(name, x):
    """Was shape (1,) (np.ascontiguousarray turns 0-d into 1-d)."""
    f, ref = ZERO_D[name]
    t = ce.tensor(x, dtype=ce.float64, requires_grad=True)
    y = f(t)
    assert tuple(y.shape) == ()
    assert y.item() == pytest.approx(ref(x), rel=1e-12)
    y.backward()
    assert tuple(t.grad.shape) == ()
    assert gradcheck(f, (ce.tensor(x, dtype=ce.float64, requires_grad=True),))


def test_bce_with_logits_0d_none():
    x, y = ce.tensor(0.3, requires_grad=True), ce.tensor(1.0)
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert tuple(loss.shape) == ()
    assert loss.item() == pytest.approx(_softplus(-0.3), rel=1e-6)


def test_activation_dtypes():
    i = ce.tensor([-3, 2, 9])
    for f, want in ((F.relu6, [0, 2, 6]), (F.hardtanh, [-1, 1, 1]), (F.relu, [0, 2, 9]),
                    (lambda t: F.hardtanh(t, -2.0, 5.0), [-2, 2, 5])):
        y = f(i)
        assert y.dtype == ce.int64 and y.tolist() == want
    for f in (F.sigmoid, F.tanh):    # these promote integers, as in torch
        assert f(i).dtype == ce.float32
    for f, name in ((F.silu, "silu_cpu"), (F.gelu, "GeluKernelImpl"), (F.mish, "mish_cpu"),
                    (F.leaky_relu, "leaky_relu_cpu"), (F.softplus, "softplus_cpu"),
                    (F.elu, "elu_cpu"), (F.logsigmoid, "log_sigmoid_cpu")):
        with pytest.raises(NotImplementedError, match="\"%s\" not implemented for 'Long'" % name):
            f(i)
    h = ce.tensor([-1.0, 0.5, 3.0], dtype=ce.float16, requires_grad=True)
    for f in (F.relu, F.gelu, F.silu, F.sigmoid, F.tanh, F.softplus, F.mish, F.elu, F.relu6,
              F.logsigmoid, F.leaky_relu, F.hardtanh, lambda t: F.softmax(t, 0),
              lambda t: F.log_softmax(t, 0), lambda t: F.softmin(t, 0)):
        y = f(h)
        assert y.dtype == ce.float16
        y.sum().backward()
        assert h.grad.dtype == ce.float16
        h.grad = None
    xs = np.array([-1.0, 0.5, 3.0])
    p = F.softmax(ce.tensor(xs, dtype=ce.float16), 0)
    np.testing.assert_allclose(p.float().numpy(), np.exp(xs) / np.exp(xs).sum(), rtol=2e-3)
    assert F.softmax(ce.tensor(xs, dtype=ce.float16), 0, dtype=ce.float32).dtype == ce.float32


def test_activation_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as TF
    names = ["relu", "relu6", "hardtanh", "leaky_relu", "elu", "silu", "sigmoid", "gelu",
             "softplus", "mish", "logsigmoid", "tanh"]
    for name in names:
        for arr, lib_dt in ((np.array([1, 7, -2]), "int64"), (np.array([1.0, 7.0, -2.0]),
                                                              "float16")):
            res = []
            for lib, Fm in ((torch, TF), (ce, F)):
                t = lib.tensor(arr, dtype=getattr(lib, lib_dt))
                try:
                    res.append(str(getattr(Fm, name)(t).dtype).split(".")[-1])
                except NotImplementedError:
                    res.append("NotImplementedError")
            assert res[0] == res[1], (name, lib_dt, res)
        for x in (0.5, -0.5):
            a = getattr(TF, name)(torch.tensor(x, dtype=torch.float64))
            b = getattr(F, name)(ce.tensor(x, dtype=ce.float64))
            assert tuple(a.shape) == tuple(b.shape) and b.item() == pytest.approx(a.item())
    for dt in ("float16", "float32"):
        x = np.array([1.0, 2.0, 0.5])
        a = TF.softmax(torch.tensor(x, dtype=torch.float16), 0, dtype=getattr(torch, dt)) \
            if dt == "float32" else TF.softmax(torch.tensor(x, dtype=torch.float16), 0)
        b = F.softmax(ce.tensor(x, dtype=ce.float16), 0, dtype=getattr(ce, dt)) \
            if dt == "float32" else F.softmax(ce.tensor(x, dtype=ce.float16), 0)
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
        np.testing.assert_allclose(b.float().numpy(), a.float().numpy(), rtol=1e-3)


def test_custom_function_mark_dirty():
    """ctx.mark_dirty as in torch: the returned tensor is the input, version bumped, history
    rebased; a leaf that requires grad is refused."""
    class MulTwo_(ce.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x *= 2
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    a = ce.tensor([1.0, -3.0], requires_grad=True)
    h = a * 3.0
    out = MulTwo_.apply(h)
    assert out is h and h._version[0] == 1 and h.tolist() == [6.0, -18.0]
    (out * ce.tensor([1.0, 10.0])).sum().backward()
    assert a.grad.tolist() == [6.0, 60.0]
    with pytest.raises(RuntimeError, match=LEAF_MSG):
        MulTwo_.apply(ce.tensor([1.0], requires_grad=True))
    t = ce.tensor([2.0])
    assert MulTwo_.apply(t) is t and t.tolist() == [4.0] and t._version[0] == 1


@pytest.mark.parametrize("name", ["relu", "relu_", "elu", "elu_alpha2"])
@pytest.mark.parametrize("dtype", [ce.float32, ce.float64, ce.bfloat16])
def test_activation_gradient_at_nan_passes_through(name, dtype):
    """torch's ReLU and ELU backward test "x <= 0" for the zero/exp branch, so a NaN input gets
    the identity branch's gradient (dy), not 0."""
    f = {"relu": F.relu, "relu_": lambda t: F.relu(t * 1, inplace=True), "elu": F.elu,
         "elu_alpha2": lambda t: F.elu(t, alpha=2.0)}[name]
    x = ce.tensor([float("nan"), -1.0, 0.0, 2.0], dtype=dtype, requires_grad=True)
    y = f(x)
    assert np.isnan(y[0].float().item())
    y.backward(ce.tensor([3.0, 3.0, 3.0, 3.0], dtype=dtype))
    g = x.grad.float().numpy()
    a = 2.0 if name == "elu_alpha2" else 1.0
    want = [3.0, 0.0, 0.0, 3.0] if name.startswith("relu") else \
        [3.0, 3.0 * a * np.exp(-1.0), 3.0 * a, 3.0]
    np.testing.assert_allclose(g, want, rtol=1e-2 if dtype == ce.bfloat16 else 1e-6)


def test_activation_gradient_at_nan_torch():
    torch = pytest.importorskip("torch")
    for name in ("relu", "elu", "leaky_relu"):
        v = [float("nan"), -1.0, 0.0, 2.0]
        x = ce.tensor(v, requires_grad=True)
        getattr(F, name)(x).sum().backward()
        xt = torch.tensor(v, requires_grad=True)
        getattr(torch.nn.functional, name)(xt).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("bshape", [(5, 4), (2, 1, 4), (5, 1)])
def test_linear_bias_broadcasts_as_addmm(bshape):
    """F.linear adds any bias that broadcasts against the output, as torch's addmm does."""
    x = ce.tensor(RNG.standard_normal((5, 3)), requires_grad=True)
    w = ce.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    b = ce.tensor(RNG.standard_normal(bshape), requires_grad=True)
    y = F.linear(x, w, b)
    want = x.detach().numpy() @ w.detach().numpy().T + b.detach().numpy()
    assert tuple(y.shape) == want.shape
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-12)
    assert gradcheck(lambda a, c, d: F.linear(a, c, d), (x, w, b))
    with pytest.raises(RuntimeError, match="must match"):
        F.linear(x, w, ce.zeros(3, 4, dtype=ce.float64))
