"""Smaller nn modules and functionals (SELU, CELU, Hardswish, Hardsigmoid, Softsign, Tanhshrink,
Softshrink, Hardshrink, Threshold, PReLU, CosineSimilarity, PairwiseDistance, padding layers):
formulas by hand, gradcheck, torch parity of values, gradients and reprs, errors."""
import numpy as np
import pytest

import cengine as ce
from cengine import nn
from cengine.autograd import gradcheck
import cengine.nn.functional as F

X = np.array([-4.0, -2.5, -0.7, -0.2, 0.3, 0.9, 2.2, 3.5])

ACTS = [("selu", {}), ("celu", {"alpha": 0.7}), ("hardswish", {}), ("hardsigmoid", {}),
        ("softsign", {}), ("tanhshrink", {}), ("softshrink", {"lambd": 0.4}),
        ("hardshrink", {"lambd": 0.4}), ("threshold", {"threshold": 0.1, "value": -2.0})]


def test_formulas_by_hand():
    x = ce.tensor(X, dtype=ce.float64)
    a, s = 1.6732632423543772, 1.0507009873554805
    np.testing.assert_allclose(F.selu(x).numpy(), s * np.where(X > 0, X, a * np.expm1(X)))
    np.testing.assert_allclose(F.celu(x, 0.7).numpy(), np.where(X > 0, X, 0.7 * np.expm1(X / 0.7)))
    np.testing.assert_allclose(F.hardsigmoid(x).numpy(), np.clip(X + 3, 0, 6) / 6)
    np.testing.assert_allclose(F.hardswish(x).numpy(), X * np.clip(X + 3, 0, 6) / 6)
    np.testing.assert_allclose(F.softsign(x).numpy(), X / (1 + np.abs(X)))
    np.testing.assert_allclose(F.tanhshrink(x).numpy(), X - np.tanh(X))
    np.testing.assert_allclose(F.softshrink(x, 0.4).numpy(),
                               np.where(X > 0.4, X - 0.4, np.where(X < -0.4, X + 0.4, 0)))
    np.testing.assert_allclose(F.hardshrink(x, 0.4).numpy(), np.where(np.abs(X) > 0.4, X, 0))
    np.testing.assert_allclose(F.threshold(x, 0.1, -2.0).numpy(), np.where(X > 0.1, X, -2.0))


@pytest.mark.parametrize("name,kw", ACTS)
def test_gradcheck(name, kw):
    x = ce.tensor(X, dtype=ce.float64, requires_grad=True)
    assert gradcheck(lambda t: getattr(F, name)(t, **kw), (x,))


@pytest.mark.parametrize("name,kw", ACTS)
def test_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    tx = torch.tensor(X, requires_grad=True)
    cx = ce.tensor(X, requires_grad=True)
    ty = getattr(torch.nn.functional, name)(tx, **kw)
    cy = getattr(F, name)(cx, **kw)
    np.testing.assert_allclose(cy.detach().numpy(), ty.detach().numpy(), atol=1e-15)
    w = np.linspace(-1, 1, X.size)
    (ty * torch.tensor(w)).sum().backward()
    (cy * ce.tensor(w)).sum().backward()
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), atol=1e-15)


def test_inplace_variants():
    for name in ("selu", "hardswish", "hardsigmoid"):
        x = ce.tensor(X.copy())
        y = getattr(F, name)(x, inplace=True)
        assert y is x
        np.testing.assert_allclose(x.numpy(), getattr(F, name)(ce.tensor(X)).numpy())
    x = ce.tensor(X.copy())
    assert F.threshold(x, 0.0, 0.0, inplace=True) is x and float(x.min()) == 0.0
    with pytest.raises(NotImplementedError, match="not implemented for 'Int64'"):
        F.selu(ce.tensor([1, 2]))


def test_prelu():
    m = nn.PReLU()
    assert m.weight.shape == (1,) and float(m.weight) == 0.25 and repr(m) == \
        "PReLU(num_parameters=1)"
    x = ce.tensor([[-2.0, 1.0]])
    assert m(x).tolist() == [[-0.5, 1.0]]
    mc = nn.PReLU(3, init=0.1, dtype=ce.float64)
    xc = ce.randn(2, 3, 4, dtype=ce.float64, requires_grad=True)
    assert gradcheck(lambda a, w: F.prelu(a, w), (xc, mc.weight))
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers and input channel"):
        mc(ce.randn(2, 4, dtype=ce.float64))


def test_prelu_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5))
    tm, cm = torch.nn.PReLU(3).double(), nn.PReLU(3, dtype=ce.float64)
    tx, cx = torch.tensor(x, requires_grad=True), ce.tensor(x, requires_grad=True)
    tm(tx).pow(2).sum().backward()
    cm(cx).pow(2).sum().backward()
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), atol=1e-14)
    np.testing.assert_allclose(cm.weight.grad.numpy(), tm.weight.grad.numpy(), atol=1e-13)


def test_distances():
    a = ce.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=ce.float64)
    b = ce.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=ce.float64)
    np.testing.assert_allclose(F.cosine_similarity(a, b).numpy(), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(nn.PairwiseDistance()(a, b).numpy(),
                               [np.sqrt(2) * 1e-6, np.sqrt(1.000001 ** 2 + 1.999999 ** 2)])
    assert nn.CosineSimilarity(dim=0)(a, b).shape == (2,)
    x1 = ce.randn(3, 4, dtype=ce.float64, requires_grad=True)
    x2 = ce.randn(3, 4, dtype=ce.float64, requires_grad=True)
    assert gradcheck(lambda p, q: F.cosine_similarity(p, q), (x1, x2))
    assert gradcheck(lambda p, q: F.pairwise_distance(p, q, 3.0), (x1, x2))


def test_distances_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    p, q = rng.standard_normal((4, 6)), rng.standard_normal((1, 6))
    np.testing.assert_allclose(F.cosine_similarity(ce.tensor(p), ce.tensor(q)).numpy(),
                               torch.nn.functional.cosine_similarity(
                                   torch.tensor(p), torch.tensor(q)).numpy(), atol=1e-14)
    for pp in (1.0, 2.0, 3.0):
        np.testing.assert_allclose(
            F.pairwise_distance(ce.tensor(p), ce.tensor(q), pp, keepdim=True).numpy(),
            torch.nn.functional.pairwise_distance(torch.tensor(p), torch.tensor(q), pp,
                                                  keepdim=True).numpy(), atol=1e-13)


@pytest.mark.parametrize("name,args,shape", [
    ("ZeroPad1d", (2,), (1, 2, 5)), ("ZeroPad2d", ((1, 0, 2, 1),), (1, 2, 3, 4)),
    ("ConstantPad1d", ((1, 3), 2.5), (2, 4)), ("ConstantPad2d", (1, -1.0), (1, 3, 3)),
    ("ReflectionPad1d", (2,), (1, 2, 5)), ("ReflectionPad2d", ((1, 2, 0, 1),), (1, 1, 3, 4)),
    ("ReplicationPad1d", ((3, 1),), (1, 2, 4)), ("ReplicationPad2d", (1,), (1, 2, 3, 3))])
def test_padding_layers_match_torch(name, args, shape):
    torch = pytest.importorskip("torch")
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    t, c = getattr(torch.nn, name)(*args), getattr(nn, name)(*args)
    np.testing.assert_array_equal(c(ce.tensor(x)).numpy(), t(torch.tensor(x)).numpy())
    assert repr(c) == repr(t)


def test_reprs_match_torch():
    torch = pytest.importorskip("torch")
    for name, args in [("SELU", ()), ("CELU", (0.5,)), ("Hardswish", ()), ("Softshrink", (0.3,)),
                       ("Hardshrink", ()), ("Threshold", (0.1, 20)), ("Softsign", ()),
                       ("Tanhshrink", ()), ("Hardsigmoid", ()), ("PReLU", (4,))]:
        assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args)), name
