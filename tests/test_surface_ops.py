"""Torch functions real scripts call that cengine lacked: meshgrid, broadcast_tensors,
atleast_*, select, moveaxis, fliplr/flipud, dstack/column_stack, erf/erfc/erfinv/logit
(cengine.special), finfo/iinfo, clamp_min/max, nan_to_num, in-place view and arithmetic
methods, `in`."""
import math
import warnings

import numpy as np
import pytest

import cengine as ce
from cengine.autograd import gradcheck

scipy_special = pytest.importorskip("scipy.special")


def f64(*shape, lo=-1.0, hi=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return ce.tensor(rng.uniform(lo, hi, shape), dtype=ce.float64, requires_grad=True)


# ---------------------------------------------------------------- meshgrid & broadcasting
@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid_matches_numpy(indexing):
    a, b, c = ce.arange(3.), ce.arange(5.), ce.arange(2.)
    got = ce.meshgrid(a, b, c, indexing=indexing)
    want = np.meshgrid(np.arange(3.), np.arange(5.), np.arange(2.), indexing=indexing)
    assert len(got) == 3
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.array_equal(g.numpy(), w)
    got2 = ce.meshgrid([a, b], indexing=indexing)       # the list form
    assert [tuple(g.shape) for g in got2] == [w.shape for w in np.meshgrid(
        np.arange(3.), np.arange(5.), indexing=indexing)]


def test_meshgrid_default_warns_and_is_ij():
    with pytest.warns(UserWarning, match="indexing argument"):
        x, y = ce.meshgrid(ce.arange(2), ce.arange(3))
    assert x.shape == (2, 3) and x.dtype == ce.int64


def test_meshgrid_gradient_and_errors():
    a, b = f64(3), f64(4, seed=1)
    assert gradcheck(lambda a, b: [t * 1.5 for t in ce.meshgrid(a, b, indexing="xy")], (a, b))
    assert gradcheck(lambda a: ce.meshgrid(a, indexing="ij")[0] ** 2, (f64(1),))
    with pytest.raises(RuntimeError, match="Expected 0D or 1D tensor"):
        ce.meshgrid(ce.zeros(2, 2), indexing="ij")
    with pytest.raises(RuntimeError, match="same dtype"):
        ce.meshgrid(ce.zeros(2), ce.zeros(2, dtype=ce.int64), indexing="ij")
    with pytest.raises(ValueError, match="indexing must be one of"):
        ce.meshgrid(ce.zeros(2), indexing="yx")
    assert [t.shape for t in ce.meshgrid(ce.zeros(0), ce.zeros(3), indexing="ij")] == [(0, 3)] * 2


def test_broadcast_tensors_and_shapes():
    a, b = f64(3, 1), f64(1, 4, seed=1)
    x, y = ce.broadcast_tensors(a, b)
    assert x.shape == y.shape == (3, 4)
    assert np.array_equal(x.detach().numpy(), np.broadcast_to(a.detach().numpy(), (3, 4)))
    assert gradcheck(lambda a, b: ce.broadcast_tensors(a, b), (a, b))
    assert ce.broadcast_shapes((3, 1), (4,), 1) == ce.Size([3, 4])
    with pytest.raises(RuntimeError, match="The size of tensor a \\(3\\) must match the size of "
                                           "tensor b \\(4\\) at non-singleton dimension 1"):
        ce.broadcast_tensors(ce.zeros(2, 3), ce.zeros(2, 4))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        ce.broadcast_shapes((2, 3), (4,))


def test_atleast_and_stacks():
    s, v, m = ce.tensor(1.), ce.arange(3.), ce.ones(2, 3)
    assert ce.atleast_1d(s).shape == (1,) and ce.atleast_2d(v).shape == (1, 3)
    assert ce.atleast_3d(v).shape == (1, 3, 1) and ce.atleast_3d(m).shape == (2, 3, 1)
    assert [t.shape for t in ce.atleast_2d(s, v)] == [(1, 1), (1, 3)]
    assert ce.atleast_2d(m) is m
    assert np.array_equal(ce.dstack([v, v]).numpy(), np.dstack([np.arange(3.)] * 2))
    assert np.array_equal(ce.column_stack([v, ce.ones(3, 2)]).numpy(),
                          np.column_stack([np.arange(3.), np.ones((3, 2))]))
    assert gradcheck(lambda a, b: ce.column_stack([a, b]), (f64(4), f64(4, 2, seed=1)))


def test_select_moveaxis_flips():
    x = f64(2, 3, 4)
    xn = x.detach().numpy()
    assert np.array_equal(ce.select(x, 1, -1).detach().numpy(), xn[:, -1])
    assert np.array_equal(x.select(2, 0).detach().numpy(), xn[:, :, 0])
    assert gradcheck(lambda t: t.select(0, 1), (x,))
    assert ce.moveaxis(x, 0, -1).shape == (3, 4, 2) and x.moveaxis(2, 0).shape == (4, 2, 3)
    assert np.array_equal(ce.fliplr(x).detach().numpy(), np.fliplr(xn))
    assert np.array_equal(x.flipud().detach().numpy(), np.flipud(xn))
    with pytest.raises(IndexError, match="select\\(\\): index 3 out of range for tensor of size "
                                         "\\[2, 3, 4\\] at dimension 1"):
        x.select(1, 3)
    with pytest.raises(IndexError, match="cannot be applied to a 0-dim tensor"):
        ce.tensor(1.).select(0, 0)
    with pytest.raises(RuntimeError, match="Input must be >= 2-d."):
        ce.fliplr(ce.zeros(3))


# ---------------------------------------------------------------- special functions
def test_erf_family_forward():
    x = np.concatenate([np.linspace(-6, 6, 101), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    for dt, tol in ((np.float64, 1e-15), (np.float32, 2e-7)):
        t = ce.tensor(x.astype(dt))
        for f, ref in ((ce.erf, scipy_special.erf), (ce.erfc, scipy_special.erfc)):
            r = f(t)
            assert r.dtype == t.dtype
            np.testing.assert_allclose(r.numpy(), ref(x.astype(dt)), rtol=tol, atol=tol)
    y = np.concatenate([np.linspace(-0.999, 0.999, 77), [1.0, -1.0, 1.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = ce.erfinv(ce.tensor(y, dtype=ce.float64)).numpy()
    np.testing.assert_allclose(r, scipy_special.erfinv(y), rtol=1e-13, atol=1e-13)
    assert ce.erf(ce.tensor([1, 2])).dtype == ce.float32        # integers compute in float
    p = np.array([1e-3, 0.2, 0.5, 0.9])
    np.testing.assert_allclose(ce.logit(ce.tensor(p)).numpy(), np.log(p / (1 - p)), rtol=1e-6)
    np.testing.assert_allclose(ce.tensor([0.0, 1.0]).logit(eps=0.25).numpy(),
                               [math.log(1 / 3), math.log(3)], rtol=1e-6)
    assert ce.special.erf is ce.erf and ce.special.expit(ce.tensor(0.)).item() == 0.5


def test_erf_without_scipy_gives_the_same(monkeypatch):
    from cengine.ops import special as sp
    x = np.linspace(-3, 3, 41)
    y = np.linspace(-0.99, 0.99, 41)
    want = (sp.Erf.forward, None)
    monkeypatch.setattr(sp, "_sp", None)
    np.testing.assert_allclose(ce.erf(ce.tensor(x)).numpy(), scipy_special.erf(x), rtol=1e-15,
                               atol=1e-16)
    np.testing.assert_allclose(ce.erfc(ce.tensor(x)).numpy(), scipy_special.erfc(x),
                               rtol=1e-14)
    np.testing.assert_allclose(ce.erfinv(ce.tensor(y)).numpy(), scipy_special.erfinv(y),
                               rtol=1e-12, atol=1e-14)
    assert want[0] is sp.Erf.forward
    assert ce.erf(ce.zeros(0)).shape == (0,)


def test_special_gradients():
    assert gradcheck(ce.erf, (f64(7, lo=-2, hi=2),))
    assert gradcheck(ce.erfc, (f64(2, 3, lo=-2, hi=2),))
    assert gradcheck(ce.erfinv, (f64(5, lo=-0.9, hi=0.9),))
    assert gradcheck(ce.logit, (f64(5, lo=0.1, hi=0.9),))
    assert gradcheck(lambda t: ce.logit(t, eps=0.2), (f64(6, lo=0.05, hi=0.95, seed=3),))
    x = f64(4, 3, seed=2)
    assert gradcheck(lambda t: t.t().erf(), (x,))   # non-contiguous input


def test_manual_gelu_with_erf_matches_the_kernel():
    x = ce.randn(64, dtype=ce.float64)
    manual = 0.5 * x * (1.0 + ce.erf(x / math.sqrt(2.0)))
    np.testing.assert_allclose(manual.numpy(), ce.nn.functional.gelu(x).numpy(), rtol=1e-12,
                               atol=1e-14)


def test_special_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-0.95, 0.95, 9)
    for name in ("erf", "erfc", "erfinv", "logit"):
        a = getattr(ce, name)(ce.tensor(np.abs(x) if name == "logit" else x)).numpy()
        b = getattr(torch, name)(torch.tensor(np.abs(x) if name == "logit" else x)).numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_special_bad_input():
    with pytest.raises(TypeError, match="erf\\(\\): argument 'input' \\(position 1\\) must be "
                                        "Tensor, not list"):
        ce.erf([1.0])


# ---------------------------------------------------------------- finfo / iinfo
def test_finfo_iinfo():
    f = ce.finfo(ce.float32)
    assert f.bits == 32 and f.eps == float(np.finfo(np.float32).eps) and f.dtype == "float32"
    assert f.max == float(np.finfo(np.float32).max) and f.min == -f.max
    assert f.tiny == f.smallest_normal == float(np.finfo(np.float32).tiny)
    assert ce.finfo().dtype == "float32" and ce.finfo(ce.float64).eps == np.finfo(float).eps
    assert ce.finfo(ce.bfloat16).eps == 2.0 ** -7 and ce.finfo(ce.float16).tiny == 2.0 ** -14
    i = ce.iinfo(ce.int64)
    assert (i.bits, i.min, i.max, i.dtype) == (64, -2 ** 63, 2 ** 63 - 1, "int64")
    assert (ce.iinfo(ce.uint8).min, ce.iinfo(ce.uint8).max) == (0, 255)
    assert repr(ce.iinfo(ce.int32)) == "iinfo(min=-2.14748e+09, max=2.14748e+09, dtype=int32)"
    # the masking idiom of many attention implementations
    s = ce.zeros(3).masked_fill(ce.tensor([True, False, True]), ce.finfo(ce.float32).min)
    assert s[0].item() == -f.max
    with pytest.raises(TypeError, match="requires a floating point input type"):
        ce.finfo(ce.int64)
    with pytest.raises(TypeError, match="requires an integer input type"):
        ce.iinfo(ce.float32)
    with pytest.raises(TypeError, match="must be torch.dtype, not str"):
        ce.finfo("float32")


def test_finfo_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("float32", "float64", "float16", "bfloat16"):
        a, b = ce.finfo(getattr(ce, name)), torch.finfo(getattr(torch, name))
        for k in ("bits", "eps", "max", "min", "tiny", "resolution", "dtype"):
            assert getattr(a, k) == getattr(b, k), (name, k)
        assert repr(a) == repr(b)
    for name in ("int64", "int32", "int16", "int8", "uint8"):
        a, b = ce.iinfo(getattr(ce, name)), torch.iinfo(getattr(torch, name))
        assert (a.bits, a.min, a.max, a.dtype) == (b.bits, b.min, b.max, b.dtype)


# ---------------------------------------------------------------- elementwise helpers
def test_clamp_min_max_nan_to_num():
    x = f64(3, 4, lo=-2, hi=2)
    xn = x.detach().numpy()
    assert np.array_equal(ce.clamp_min(x, 0.5).detach().numpy(), np.maximum(xn, 0.5))
    assert np.array_equal(x.clamp_max(0.1).detach().numpy(), np.minimum(xn, 0.1))
    assert gradcheck(lambda t: t.clamp_min(0.3), (x,))
    y = ce.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    assert y.nan_to_num().tolist() == [1.0, 0.0, float(np.finfo(np.float32).max),
                                       float(np.finfo(np.float32).min)]
    assert ce.nan_to_num(y, nan=2.0, posinf=9.0, neginf=-9.0).tolist() == [1.0, 2.0, 9.0, -9.0]
    z = y.clone().nan_to_num_(0.0, 1.0, -1.0)
    assert z.tolist() == [1.0, 0.0, 1.0, -1.0]
    g = ce.tensor([1.0, float("nan"), 2.0], dtype=ce.float64, requires_grad=True)
    ce.nan_to_num(g).sum().backward()
    assert g.grad.tolist() == [1.0, 0.0, 1.0]
    assert ce.nan_to_num(ce.tensor([1, 2])).tolist() == [1, 2]
    w = ce.zeros(3)
    w.clamp_min_(1.0).clamp_max_(0.5)
    assert w.tolist() == [0.5] * 3


def test_inplace_arithmetic_methods_as_custom_optimizers_use_them():
    p = ce.ones(3, dtype=ce.float64)
    g = ce.tensor([1.0, 2.0, 3.0], dtype=ce.float64)
    exp_avg, exp_avg_sq = ce.zeros_like(p), ce.zeros_like(p)
    exp_avg.lerp_(g, 0.1)
    exp_avg_sq.mul_(0.999).addcmul_(g, g, value=0.001)
    p.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(1e-8), value=-0.01)
    np.testing.assert_allclose(exp_avg.numpy(), 0.1 * g.numpy())
    np.testing.assert_allclose(exp_avg_sq.numpy(), 0.001 * g.numpy() ** 2)
    np.testing.assert_allclose(p.numpy(), 1 - 0.01 * 0.1 * g.numpy() /
                               (np.sqrt(0.001) * g.numpy() + 1e-8))
    q = ce.tensor([7, 8])
    q.floor_divide_(3)
    assert q.tolist() == [2, 2]
    m = ce.ones(3, 3)
    m.tril_()
    assert m.numpy().tolist() == np.tril(np.ones((3, 3))).tolist()
    m.triu_(1)
    assert m.sum().item() == 0
    leaf = ce.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        leaf.addcmul_(leaf, leaf)


def test_inplace_view_methods():
    x = ce.arange(6.).reshape(2, 3)
    base = x
    assert x.unsqueeze_(0) is base and x.shape == (1, 2, 3)
    x.squeeze_(0)
    assert x.shape == (2, 3)
    x.t_()
    assert x.shape == (3, 2) and x[0, 1].item() == 3.0
    x.transpose_(0, 1)
    assert x.shape == (2, 3) and x.is_contiguous()
    x.unsqueeze_(-1).squeeze_()
    assert x.shape == (2, 3)
    leaf = ce.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used"):
        leaf.unsqueeze_(0)
    y = leaf * 2
    y.unsqueeze_(0)
    assert y.shape == (1, 3)
    (y * ce.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    assert leaf.grad.tolist() == [2.0, 4.0, 6.0]
    with ce.no_grad():
        leaf.unsqueeze_(0)
    assert leaf.shape == (1, 3)


def test_contains_and_dtype_methods():
    t = ce.tensor([1, 2, 3])
    assert 3 in t and 4 not in t and ce.tensor(2) in t and 2.0 in t
    with pytest.raises(RuntimeError, match="Tensor.__contains__ only supports Tensor or scalar, "
                                           "but you passed in a <class 'str'>."):
        "a" in t
    assert t.byte().dtype == ce.uint8 and t.char().dtype == ce.int8 and t.short().dtype == ce.int16


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_special_and_nan_to_num_keep_half_dtypes(name):
    dt = getattr(ce, name)
    x = ce.tensor([0.5, -1.0, 0.25], dtype=dt)
    for f, ref in ((ce.erf, scipy_special.erf), (ce.erfc, scipy_special.erfc)):
        r = f(x)
        assert r.dtype == dt
        np.testing.assert_allclose(r.float().numpy(), ref(x.float().numpy()), rtol=1e-2)
    y = ce.tensor([1.0, float("nan"), float("inf")], dtype=dt).nan_to_num()
    assert y.dtype == dt and y.float().tolist()[:2] == [1.0, 0.0]
    assert y.float()[2].item() == ce.finfo(dt).max
