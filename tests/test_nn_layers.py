"""Layers and functional ops: forward against numpy/scipy references, float64 gradcheck, kernel
paths (ISA x threads) for the C-backed ops, bad inputs; optional parity with torch. A
representative set also runs on every device present (fixture `device`: cuda:0 where CuPy sees
a GPU, skipped otherwise), the cuda outputs and gradients against the CPU ones."""
import math

import numpy as np
import pytest
import scipy.special as sps

import cengine as ce
import cengine.nn as nn
import cengine.nn.functional as F
from cengine.autograd import gradcheck
from _util import same_on_device

RNG = np.random.default_rng(1234)
DRNG = np.random.default_rng(4321)   # inputs of the device checks (RNG's draws stay as they were)


def d64(*shape, scale=1.0):
    return ce.tensor(DRNG.standard_normal(shape) * scale, dtype=ce.float64, requires_grad=True)


def t64(*shape, scale=1.0, rg=True):
    return ce.tensor(RNG.standard_normal(shape) * scale, dtype=ce.float64, requires_grad=rg)


def arr(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


# ============================================================================ linear
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xshape", [(5, 7), (7,), (2, 3, 7), (0, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_backward(isa, nthreads, dtype, xshape, bias):
    x = RNG.standard_normal(xshape).astype(dtype)
    W = arr(4, 7, dtype=dtype)
    b = arr(4, dtype=dtype) if bias else None
    xt = ce.tensor(x, requires_grad=True)
    Wt = ce.tensor(W, requires_grad=True)
    bt = ce.tensor(b, requires_grad=True) if bias else None
    y = F.linear(xt, Wt, bt)
    ref = x @ W.T + (b if bias else 0)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(y._data, ref, **tol)
    assert y.dtype.np == dtype and y.shape == ref.shape
    g = RNG.standard_normal(ref.shape).astype(dtype)
    y.backward(ce.tensor(g))
    g2, x2 = g.reshape(-1, 4), x.reshape(-1, 7)
    np.testing.assert_allclose(xt.grad._data, (g2 @ W).reshape(xshape), **tol)
    np.testing.assert_allclose(Wt.grad._data, g2.T @ x2, **tol)
    if bias:
        np.testing.assert_allclose(bt.grad._data, g2.sum(0), **tol)


def test_linear_gradcheck_and_noncontiguous(device):
    x = t64(3, 4)
    W = t64(5, 4)
    b = t64(5)
    assert gradcheck(lambda x, W, b: F.linear(x, W, b), (x, W, b))
    same_on_device(device, F.linear, x, W, b)
    for bs in [(), (1,)]:   # one bias value broadcast over the outputs
        assert gradcheck(lambda x, W, b: F.linear(x, W, b), (x, W, t64(*bs)))
        same_on_device(device, F.linear, x, W, d64(*bs))
    xt = t64(4, 3)  # transposed (non-contiguous) input
    assert gradcheck(lambda x, W: F.linear(x.t(), W), (xt, W))
    same_on_device(device, lambda x, W: F.linear(x.t(), W), xt, W)
    assert gradcheck(lambda x, W: F.linear(x, W, None), (t64(2, 2, 4), W))
    same_on_device(device, lambda x, W: F.linear(x, W, None), d64(2, 2, 4), W)


def test_linear_module_and_errors():
    m = nn.Linear(3, 2)
    assert m.weight.shape == (2, 3) and m.bias.shape == (2,)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert nn.Linear(3, 2, dtype=ce.float64).weight.dtype == ce.float64
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied "
                                           r"\(4x5 and 3x2\)"):
        m(ce.randn(4, 5))
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype"):
        m(ce.randn(4, 3, dtype=ce.float64))
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        F.linear(ce.ones(2, 3, dtype=ce.int64), ce.ones(2, 3, dtype=ce.int64))
    with pytest.raises(TypeError):
        F.linear(np.ones((2, 3)), m.weight)


def test_identity_flatten_unflatten():
    x = ce.randn(2, 3, 4)
    assert nn.Identity(5, foo=1)(x) is x
    assert nn.Flatten()(x).shape == (2, 12)
    assert nn.Flatten(0, 1)(x).shape == (6, 4)
    assert nn.Unflatten(1, (3, 1))(ce.randn(2, 3)).shape == (2, 3, 1)
    with pytest.raises(TypeError):
        nn.Unflatten(1, 3)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


# ============================================================================ activations
ACTS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.Sigmoid(), sps.expit),
    (nn.Tanh(), np.tanh),
    (nn.GELU(), lambda x: 0.5 * x * (1 + sps.erf(x / math.sqrt(2)))),
    (nn.GELU("tanh"), lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                       * (x + 0.044715 * x ** 3)))),
    (nn.SiLU(), lambda x: x * sps.expit(x)),
    (nn.Softplus(beta=2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
    (nn.ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    (nn.Hardtanh(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
    (nn.ReLU6(), lambda x: np.clip(x, 0, 6)),
    (nn.LogSigmoid(), lambda x: -np.log1p(np.exp(-x))),
    (nn.Mish(), lambda x: x * np.tanh(np.log1p(np.exp(x)))),
]


@pytest.mark.parametrize("mod,ref", ACTS, ids=[type(m).__name__ + str(i)
                                               for i, (m, _) in enumerate(ACTS)])
def test_activation_modules(mod, ref, device):
    x = RNG.standard_normal((4, 5)) * 3
    x[0, 0] = 7.0  # exercises the relu6 / hardtanh clip
    y = mod(ce.tensor(x))
    np.testing.assert_allclose(y._data, ref(x), rtol=1e-10, atol=1e-12)
    xs = ce.tensor(x[:2, :3] + 0.01, requires_grad=True)  # away from kinks at 0
    assert gradcheck(mod, (xs,))
    same_on_device(device, lambda m, x: m(x), mod, ce.tensor(x + 0.01, requires_grad=True))


def test_activation_inplace():
    x = ce.tensor([-1.0, 2.0])
    y = F.relu(x, inplace=True)
    assert y is x and x.tolist() == [0.0, 2.0]
    y2 = nn.LeakyReLU(0.5, inplace=True)(ce.tensor([-2.0]))
    assert y2.tolist() == [-1.0]
    # with autograd too the op writes into b and rebases b's history (as torch)
    a = ce.tensor([-1.0, 3.0], requires_grad=True)
    b = a * 1
    out = F.relu(b, inplace=True)
    assert out is b and b.tolist() == [0.0, 3.0]
    out.sum().backward()
    assert a.grad.tolist() == [0.0, 1.0]
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"


def test_glu():
    x = RNG.standard_normal((3, 6))
    y = F.glu(ce.tensor(x), dim=1)
    np.testing.assert_allclose(y._data, x[:, :3] * sps.expit(x[:, 3:]), rtol=1e-12)
    assert gradcheck(lambda t: nn.GLU(0)(t), (t64(4, 3),))
    with pytest.raises(RuntimeError, match="Halving dimension must be even, but dimension 1 is "
                                           "size 5"):
        F.glu(ce.randn(2, 5), 1)


# ============================================================================ softmax
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,dim", [((4, 7), -1), ((4, 7), 0), ((2, 3, 5), 1), ((3, 17), 1),
                                       ((5,), 0), ((), 0), ((0, 4), 1), ((3, 1), 1)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_forward_backward(isa, nthreads, dtype, shape, dim, log):
    x = np.asarray(RNG.standard_normal(shape) * 4, dtype=dtype)
    xt = ce.from_numpy(x).requires_grad_()
    y = (F.log_softmax if log else F.softmax)(xt, dim=dim)
    ref = (sps.log_softmax if log else sps.softmax)(x.astype(np.float64), axis=dim)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(y._data, ref, **tol)
    assert y.dtype.np == dtype
    g = np.asarray(RNG.standard_normal(shape), dtype=dtype)
    y.backward(ce.from_numpy(g))
    # explicit Jacobian-vector product per row as the reference
    gm = np.moveaxis(g.astype(np.float64), dim, -1) if x.ndim else g.reshape(1)
    ym = np.moveaxis(ref, dim, -1) if x.ndim else ref.reshape(1)
    dx = np.empty_like(ym)
    for idx in np.ndindex(*ym.shape[:-1]):
        yr, gr = ym[idx], gm[idx]
        if log:
            J = np.eye(yr.size) - np.exp(yr)[None, :]
        else:
            J = np.diag(yr) - np.outer(yr, yr)
        dx[idx] = J.T @ gr
    dx = np.moveaxis(dx, -1, dim) if x.ndim else dx.reshape(())
    np.testing.assert_allclose(xt.grad._data, dx, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


def test_softmax_stable_and_gradcheck(device):
    big = ce.tensor([[1000.0, 1001.0, 1002.0], [-1e4, 0.0, 1e4]])
    same_on_device(device, lambda x: (F.softmax(x, 1), F.log_softmax(x, 1)), big, rtol=1e-6,
                   atol=1e-6)
    for dim, shape in ((0, (3, 4)), (1, (2, 3, 2)), (-1, (2, 5)), (1, (4, 1))):
        same_on_device(device, lambda x: (F.softmax(x, dim), F.log_softmax(x, dim)),
                       d64(*shape))
    s = F.softmax(big, dim=1)
    np.testing.assert_allclose(s._data, sps.softmax(big._data, axis=1), rtol=1e-6)
    assert np.isfinite(F.log_softmax(big, 1)._data).all()
    assert gradcheck(lambda x: F.softmax(x, 0), (t64(3, 4),))
    assert gradcheck(lambda x: F.log_softmax(x, 1), (t64(2, 3, 2),))
    assert gradcheck(lambda x: nn.Softmax(dim=-1)(x) * nn.LogSoftmax(dim=-1)(x), (t64(2, 5),))
    assert gradcheck(lambda x: F.softmin(x, 1), (t64(2, 3),))


def test_softmax_dtype_dim_errors():
    x = ce.randn(2, 3)
    assert F.softmax(x, 1, dtype=ce.float64).dtype == ce.float64
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = F.softmax(x)
    np.testing.assert_allclose(y._data, sps.softmax(x._data, axis=1), rtol=1e-6)
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.softmax(x, 2)
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        F.softmax(ce.ones(3, dtype=ce.int64), 0)


# ============================================================================ dropout
def test_dropout_train_eval_reproducible():
    x = ce.ones(1000)
    m = nn.Dropout(0.3)
    ce.manual_seed(7)
    a = m(x)
    ce.manual_seed(7)
    b = m(x)
    np.testing.assert_array_equal(a._data, b._data)
    vals = np.unique(a._data)
    assert len(vals) == 2 and vals[0] == 0 and vals[1] == np.float32(1 / 0.7)
    assert 0.2 < (a._data == 0).mean() < 0.4
    m.eval()
    assert m(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert not F.dropout(x, 1.0)._data.any()
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but "
                                         "got 1.5"):
        nn.Dropout(1.5)
    # gradient: same mask scaled
    xt = ce.ones(50, dtype=ce.float64, requires_grad=True)
    ce.manual_seed(3)
    y = F.dropout(xt, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(xt.grad._data, y._data)


# ============================================================================ norms
def _ln_ref(x, w, b, eps, k):
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,ns", [((4, 6), (6,)), ((2, 3, 5), (3, 5)), ((7,), (7,))])
def test_layer_norm_forward(isa, nthreads, dtype, shape, ns):
    x = (RNG.standard_normal(shape) * 3 + 1).astype(dtype)
    w = arr(*ns, dtype=dtype)
    b = arr(*ns, dtype=dtype)
    y = F.layer_norm(ce.tensor(x), ns, ce.tensor(w), ce.tensor(b), 1e-5)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(y._data, _ln_ref(x.astype(np.float64), w, b, 1e-5, len(ns)),
                               **tol)
    y2 = F.layer_norm(ce.tensor(x), ns)
    np.testing.assert_allclose(y2._data, _ln_ref(x.astype(np.float64), None, None, 1e-5,
                                                 len(ns)), **tol)
    # backward against the closed form: dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy*w
    xt, wt, bt = (ce.tensor(a, requires_grad=True) for a in (x, w, b))
    dy = RNG.standard_normal(shape).astype(dtype)
    F.layer_norm(xt, ns, wt, bt).backward(ce.tensor(dy))
    D = int(np.prod(ns))
    x2, dy2 = x.reshape(-1, D).astype(np.float64), dy.reshape(-1, D).astype(np.float64)
    mu = x2.mean(1, keepdims=True)
    rstd = 1 / np.sqrt(x2.var(1, keepdims=True) + 1e-5)
    xhat = (x2 - mu) * rstd
    g = dy2 * w.reshape(D)
    dx = rstd * (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True))
    tolb = dict(rtol=1e-3, atol=1e-4) if dtype == np.float32 else tol
    np.testing.assert_allclose(xt.grad._data, dx.reshape(shape), **tolb)
    np.testing.assert_allclose(wt.grad._data, (dy2 * xhat).sum(0).reshape(ns), **tolb)
    np.testing.assert_allclose(bt.grad._data, dy2.sum(0).reshape(ns), **tolb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 6), (3, 1, 33), (1,)])
def test_rms_norm_kernel_paths(isa, nthreads, dtype, shape):
    x = (RNG.standard_normal(shape) * 3).astype(dtype)
    D = shape[-1]
    w = arr(D, dtype=dtype)
    xt, wt = ce.tensor(x, requires_grad=True), ce.tensor(w, requires_grad=True)
    y = F.rms_norm(xt, (D,), wt, 1e-6)
    x2 = x.reshape(-1, D).astype(np.float64)
    rstd = 1 / np.sqrt((x2 * x2).mean(1, keepdims=True) + 1e-6)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(y._data, (x2 * rstd * w).reshape(shape), **tol)
    dy = RNG.standard_normal(shape).astype(dtype)
    y.backward(ce.tensor(dy))
    dy2 = dy.reshape(-1, D).astype(np.float64)
    xhat, g = x2 * rstd, dy2 * w
    dx = rstd * (g - xhat * (g * xhat).mean(1, keepdims=True))
    np.testing.assert_allclose(xt.grad._data, dx.reshape(shape), **tol)
    np.testing.assert_allclose(wt.grad._data, (dy2 * xhat).sum(0), **tol)


def test_layer_norm_gradcheck_and_module(device):
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b), (t64(3, 4), t64(4), t64(4)))
    assert gradcheck(lambda x, w: F.layer_norm(x, (2, 3), w), (t64(2, 2, 3), t64(2, 3)))
    assert gradcheck(lambda x: F.layer_norm(x, 5), (t64(2, 5),))
    same_on_device(device, lambda x, w, b: F.layer_norm(x, (4,), w, b), d64(3, 4, scale=3),
                   d64(4), d64(4))
    same_on_device(device, lambda x, w: F.layer_norm(x, (2, 3), w), d64(2, 2, 3), d64(2, 3))
    same_on_device(device, lambda m, x: m(x), nn.LayerNorm(7).double(), d64(5, 7))
    m = nn.LayerNorm(4)
    assert m.weight.tolist() == [1.0] * 4 and m.bias.tolist() == [0.0] * 4
    assert nn.LayerNorm(4, elementwise_affine=False).weight is None
    assert nn.LayerNorm(4, bias=False).bias is None
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[4\], expected input with "
                                           r"shape \[\*, 4\], but got input of size\[2, 3\]"):
        m(ce.randn(2, 3))


def test_rms_norm(device):
    same_on_device(device, lambda x, w: F.rms_norm(x, (4,), w, 1e-5), d64(3, 4), d64(4))
    same_on_device(device, lambda m, x: m(x), nn.RMSNorm(6).double(), d64(2, 3, 6))
    x = RNG.standard_normal((3, 5))
    w = RNG.standard_normal(5)
    y = F.rms_norm(ce.tensor(x), (5,), ce.tensor(w), 1e-6)
    ref = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * w
    np.testing.assert_allclose(y._data, ref, rtol=1e-12)
    m = nn.RMSNorm(5)
    ref2 = x / np.sqrt((x * x).mean(-1, keepdims=True) + np.finfo(np.float64).eps)
    np.testing.assert_allclose(m.double()(ce.tensor(x))._data, ref2, rtol=1e-12)
    assert nn.RMSNorm(5, elementwise_affine=False).weight is None
    assert gradcheck(lambda x, w: F.rms_norm(x, (4,), w, 1e-5), (t64(3, 4), t64(4)))
    assert gradcheck(lambda x: F.rms_norm(x, (2, 2)), (t64(3, 2, 2),))
    assert repr(nn.RMSNorm(5)) == "RMSNorm((5,), eps=None, elementwise_affine=True)"


def test_batch_norm1d(device):
    same_on_device(device, lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
                   d64(4, 3), d64(3), d64(3))
    same_on_device(device, lambda m, x: m(x), nn.BatchNorm1d(3).double(), d64(4, 3, 5))
    m = nn.BatchNorm1d(3, momentum=0.2).double()
    x = RNG.standard_normal((8, 3)) * 2 + 5
    y = m(ce.tensor(x))
    ref = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(y._data, ref, rtol=1e-10)
    np.testing.assert_allclose(m.running_mean._data, 0.2 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.running_var._data, 0.8 + 0.2 * x.var(0, ddof=1), rtol=1e-12)
    assert m.num_batches_tracked.item() == 1
    m.eval()
    y2 = m(ce.tensor(x))
    np.testing.assert_allclose(y2._data, (x - m.running_mean._data)
                               / np.sqrt(m.running_var._data + 1e-5), rtol=1e-10)
    x3 = RNG.standard_normal((4, 3, 5))
    m3 = nn.BatchNorm1d(3).double()
    y3 = m3(ce.tensor(x3))
    mu, var = x3.mean((0, 2), keepdims=True), x3.var((0, 2), keepdims=True)
    np.testing.assert_allclose(y3._data, (x3 - mu) / np.sqrt(var + 1e-5), rtol=1e-10)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
                     (t64(4, 3), t64(3), t64(3)))
    assert gradcheck(lambda x: F.batch_norm(x, None, None, None, None, True), (t64(3, 2, 4),))
    cum = nn.BatchNorm1d(2, momentum=None).double()
    xa, xb = RNG.standard_normal((5, 2)), RNG.standard_normal((5, 2))
    cum(ce.tensor(xa))
    cum(ce.tensor(xb))
    np.testing.assert_allclose(cum.running_mean._data, (xa.mean(0) + xb.mean(0)) / 2)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(ce.randn(1, 3))


# ============================================================================ embedding
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_forward_backward(isa, nthreads, dtype):
    V, D = 11, 5
    W = arr(V, D, dtype=dtype)
    idx = RNG.integers(0, V, (4, 6))
    idx[0, :3] = 2  # repeated indices must add up
    Wt = ce.tensor(W, requires_grad=True)
    out = F.embedding(ce.tensor(idx), Wt)
    np.testing.assert_array_equal(out._data, W[idx])
    g = RNG.standard_normal((4, 6, D)).astype(dtype)
    out.backward(ce.tensor(g))
    ref = np.zeros((V, D))
    np.add.at(ref, idx.reshape(-1), g.reshape(-1, D).astype(np.float64))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(Wt.grad._data, ref, **tol)


def test_embedding_module_options(device):
    m = nn.Embedding(6, 3, padding_idx=1).double()
    same_on_device(device, lambda m, i: m(i), m, ce.tensor([[1, 2, 2], [0, 1, 5]]))
    same_on_device(device, lambda w, i: F.embedding(i, w, scale_grad_by_freq=True), d64(3, 2),
                   ce.tensor([0, 2, 2]))
    assert not m.weight._data[1].any()
    idx = ce.tensor([[1, 2, 2], [0, 1, 5]])
    out = m(idx)
    out.sum().backward()
    assert not m.weight.grad._data[1].any()
    np.testing.assert_allclose(m.weight.grad._data[2], [2.0, 2.0, 2.0])
    assert nn.Embedding(6, 3, padding_idx=-1).padding_idx == 5
    # (padding_idx rows get no gradient by definition, so gradcheck runs without one)
    assert gradcheck(lambda w: F.embedding(ce.tensor([[0, 2], [2, 1]]), w), (t64(3, 2),))
    # scale_grad_by_freq divides each row's gradient by the row's count in the batch
    w = t64(3, 2)
    gy = RNG.standard_normal((3, 2))
    F.embedding(ce.tensor([0, 2, 2]), w, scale_grad_by_freq=True).backward(ce.tensor(gy))
    np.testing.assert_allclose(w.grad._data, [gy[0], [0, 0], (gy[1] + gy[2]) / 2])
    pre = ce.tensor([[1.0, 2.0], [3.0, 4.0]])
    e = nn.Embedding.from_pretrained(pre)
    assert not e.weight.requires_grad and e(ce.tensor([1])).tolist() == [[3.0, 4.0]]
    assert nn.Embedding.from_pretrained(pre, freeze=False).weight.requires_grad
    mn = nn.Embedding(4, 2, max_norm=1.0).double()
    with ce.no_grad():
        mn.weight._data[...] = [[3.0, 4.0], [0.3, 0.4], [6.0, 8.0], [1.0, 0.0]]
    r = mn(ce.tensor([0, 1]))
    np.testing.assert_allclose(np.linalg.norm(r._data, axis=1), [1.0, 0.5], rtol=1e-6)
    assert np.linalg.norm(mn.weight._data[2]) == pytest.approx(10.0)  # not looked up: kept
    with pytest.raises(IndexError, match="index out of range in self"):
        m(ce.tensor([6]))
    with pytest.raises(IndexError, match="index out of range in self"):
        m(ce.tensor([-1]))
    with pytest.raises(RuntimeError, match="'indices' to have one of the following scalar "
                                           "types: Long, Int"):
        m(ce.tensor([1.0]))
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(3, 2, padding_idx=3)


# ============================================================================ attention
def _sdpa_ref(q, k, v, mask=None, causal=False, scale=None):
    s = q @ np.swapaxes(k, -1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    return sps.softmax(s, axis=-1) @ v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sdpa_forward(isa, nthreads, dtype):
    q, k, v = arr(2, 3, 5, 4, dtype=dtype), arr(2, 3, 6, 4, dtype=dtype), arr(2, 3, 6, 3,
                                                                              dtype=dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    Q, K, Vt = ce.tensor(q), ce.tensor(k), ce.tensor(v)
    np.testing.assert_allclose(F.scaled_dot_product_attention(Q, K, Vt)._data,
                               _sdpa_ref(q, k, v), **tol)
    np.testing.assert_allclose(F.scaled_dot_product_attention(Q, K, Vt, is_causal=True)._data,
                               _sdpa_ref(q, k, v, causal=True), **tol)
    bmask = RNG.random((5, 6)) > 0.3
    bmask[:, 0] = True
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(Q, K, Vt, attn_mask=ce.tensor(bmask))._data,
        _sdpa_ref(q, k, v, mask=bmask), **tol)
    fmask = arr(3, 5, 6, dtype=dtype)
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(Q, K, Vt, attn_mask=ce.tensor(fmask), scale=0.3)._data,
        _sdpa_ref(q, k, v, mask=fmask, scale=0.3), **tol)
    # broadcast batch dims (k/v shared across heads)
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(Q, ce.tensor(k[:, :1]), ce.tensor(v[:, :1]))._data,
        _sdpa_ref(q, k[:, :1], v[:, :1]), **tol)


def test_sdpa_gradcheck(device):
    q, k, v = t64(2, 3, 2), t64(2, 4, 2), t64(2, 4, 3)
    sdpa = F.scaled_dot_product_attention
    same_on_device(device, sdpa, q, k, v)
    same_on_device(device, lambda q, k, v: sdpa(q, k, v, is_causal=True), d64(1, 3, 2),
                   d64(1, 3, 2), d64(1, 3, 2))
    same_on_device(device, lambda q, k, v, m: sdpa(q, k, v, attn_mask=m, scale=0.7), q, k, v,
                   d64(3, 4))
    assert gradcheck(lambda q, k, v: sdpa(q, k, v), (q, k, v))
    assert gradcheck(lambda q, k, v: sdpa(q, k, v, is_causal=True), (t64(1, 3, 2), t64(1, 3, 2),
                                                                    t64(1, 3, 2)))
    m = t64(3, 4)
    assert gradcheck(lambda q, k, v, m: sdpa(q, k, v, attn_mask=m, scale=0.7), (q, k, v, m))
    bm = ce.tensor(np.array([[True, False, True, True]] * 3))
    assert gradcheck(lambda q, k: sdpa(q, k, v.detach(), attn_mask=bm), (q, k))
    # broadcast k over a batch dim of q
    assert gradcheck(lambda q, k: sdpa(q, k, k), (t64(2, 2, 3, 2), t64(1, 4, 2)))


def _heads(x, b, L, h, E):
    """q, k, v (b, h, L, E) head views of a fused (b, L, 3*h*E) projection, as models make them"""
    return tuple(z.view(b, L, h, E).transpose(1, 2) for z in x.chunk(3, dim=-1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sdpa_head_views(isa, nthreads, dtype):
    """4-D head views (non-contiguous) go to the kernel without a copy; the output is laid out
    so that transpose(1, 2).reshape(b, L, h*E) is free, and matches the reference."""
    b, L, h, E = 3, 37, 4, 16
    x = ce.tensor(arr(b, L, 3 * h * E, dtype=dtype))
    q, k, v = _heads(x, b, L, h, E)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    qn, kn, vn = (np.asarray(t._data) for t in (q, k, v))
    for causal in (False, True):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        np.testing.assert_allclose(o._data, _sdpa_ref(qn, kn, vn, causal=causal), **tol)
        merged = o.transpose(1, 2).reshape(b, L, h * E)
        assert np.shares_memory(merged._data, o._data)
    fmask = arr(b, 1, L, L, dtype=dtype)
    np.testing.assert_allclose(
        F.scaled_dot_product_attention(q, k, v, attn_mask=ce.tensor(fmask))._data,
        _sdpa_ref(qn, kn, vn, mask=fmask), **tol)


def test_sdpa_head_views_gradcheck():
    b, L, h, E = 2, 3, 2, 2
    sdpa = F.scaled_dot_product_attention

    def f(x, m=None, causal=False):
        q, k, v = _heads(x, b, L, h, E)
        return sdpa(q, k, v, attn_mask=m, is_causal=causal).transpose(1, 2).reshape(b, L, h * E)

    assert gradcheck(lambda x: f(x), (t64(b, L, 3 * h * E),))
    assert gradcheck(lambda x: f(x, causal=True), (t64(b, L, 3 * h * E),))
    assert gradcheck(lambda x, m: f(x, m), (t64(b, L, 3 * h * E), t64(L, L)))
    assert gradcheck(lambda x, m: f(x, m), (t64(b, L, 3 * h * E), t64(b, h, L, L)))


def test_sdpa_dropout_and_errors():
    q = ce.randn(1, 4, 3)
    ce.manual_seed(5)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    ce.manual_seed(5)
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    np.testing.assert_array_equal(a._data, b._data)
    assert not np.allclose(a._data, F.scaled_dot_product_attention(q, q, q)._data)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when "
                                           "is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=ce.ones(4, 4), is_causal=True)
    with pytest.raises(RuntimeError, match="same embedding size"):
        F.scaled_dot_product_attention(q, ce.randn(1, 4, 2), q)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)


def _copy_mha_from_torch(cm, tm):
    cm.load_state_dict({k: ce.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_matches_torch(batch_first):
    torch = pytest.importorskip("torch")
    E, H, N, L, S = 8, 2, 3, 4, 5
    tm = torch.nn.MultiheadAttention(E, H, batch_first=batch_first).double()
    cm = nn.MultiheadAttention(E, H, batch_first=batch_first).double()
    assert list(cm.state_dict()) == list(tm.state_dict())
    _copy_mha_from_torch(cm, tm)
    shp = (N, L, E) if batch_first else (L, N, E)
    kshp = (N, S, E) if batch_first else (S, N, E)
    q, k = RNG.standard_normal(shp), RNG.standard_normal(kshp)
    kpm = np.zeros((N, S), bool)
    kpm[0, -2:] = True
    am = RNG.standard_normal((L, S))  # float attn_mask with a bool key_padding_mask
    to, tw = tm(torch.tensor(q), torch.tensor(k), torch.tensor(k),
                key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(am))
    co, cw = cm(ce.tensor(q), ce.tensor(k), ce.tensor(k), key_padding_mask=ce.tensor(kpm),
                attn_mask=ce.tensor(am))
    np.testing.assert_allclose(co._data, to.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cw._data, tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    # self-attention (fused qkv projection), per-head weights, gradients
    qt = torch.tensor(q, requires_grad=True)
    to, tw = tm(qt, qt, qt, average_attn_weights=False)
    (to.sum() + (tw * tw).sum()).backward()
    qc = ce.tensor(q, requires_grad=True)
    co, cw = cm(qc, qc, qc, average_attn_weights=False)
    (co.sum() + (cw * cw).sum()).backward()
    np.testing.assert_allclose(co._data, to.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(qc.grad._data, qt.grad.numpy(), rtol=1e-9, atol=1e-11)
    tgrads = dict(tm.named_parameters())
    for name, p in cm.named_parameters():
        np.testing.assert_allclose(p.grad._data, tgrads[name].grad.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)


def test_mha_gradcheck_and_shapes(device):
    cm = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = t64(2, 3, 4)
    same_on_device(device, lambda m, x: m(x, x, x), cm, x)
    assert gradcheck(lambda x: cm(x, x, x, need_weights=False)[0], (x,))
    out, w = cm(x, x, x)
    assert out.shape == (2, 3, 4) and w.shape == (2, 3, 3)
    np.testing.assert_allclose(w._data.sum(-1), 1.0)
    u, uw = cm(x[0], x[0], x[0])  # unbatched
    np.testing.assert_allclose(u._data, out._data[0], rtol=1e-12)
    causal, _ = cm(x, x, x, is_causal=True)
    ref, _ = cm(x, x, x, attn_mask=ce.tensor(np.triu(np.ones((3, 3), bool), 1)))
    np.testing.assert_allclose(causal._data, ref._data)
    kv = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, batch_first=True)
    assert kv.in_proj_weight is None and kv.k_proj_weight.shape == (4, 3)
    assert kv(ce.randn(2, 3, 4), ce.randn(2, 6, 3), ce.randn(2, 6, 5))[0].shape == (2, 3, 4)
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(5, 2)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_matches_torch(norm_first):
    torch = pytest.importorskip("torch")
    tl = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                          batch_first=True, norm_first=norm_first,
                                          activation="gelu")
    te = torch.nn.TransformerEncoder(tl, 2, enable_nested_tensor=False).double().eval()
    cl = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True,
                                    norm_first=norm_first, activation="gelu")
    cenc = nn.TransformerEncoder(cl, 2).double().eval()
    assert list(cenc.state_dict()) == list(te.state_dict())
    cenc.load_state_dict({k: ce.tensor(v.detach().numpy()) for k, v in te.state_dict().items()})
    x = RNG.standard_normal((2, 5, 8))
    mask = np.triu(np.ones((5, 5), bool), 1)
    with torch.no_grad():
        ref = te(torch.tensor(x), mask=torch.tensor(mask)).numpy()
    out = cenc(ce.tensor(x), mask=ce.tensor(mask))
    np.testing.assert_allclose(out._data, ref, rtol=1e-9, atol=1e-10)


def test_transformer_layer_trains():
    ce.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, batch_first=True)
    x = ce.randn(2, 5, 8)
    out = layer(x)
    assert out.shape == (2, 5, 8)
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in layer.parameters())
    layer.eval()
    np.testing.assert_array_equal(layer(x)._data, layer(x)._data)


def test_swiglu(device):
    m = nn.SwiGLU(4, 6).double()
    same_on_device(device, lambda m, x: m(x), m, d64(3, 4))
    assert sorted(n for n, _ in m.named_parameters()) == ["down_proj.weight", "gate_proj.weight",
                                                          "up_proj.weight"]
    x = RNG.standard_normal((3, 4))
    g, u, d = (p._data for p in (m.gate_proj.weight, m.up_proj.weight, m.down_proj.weight))
    a = x @ g.T
    ref = ((a * sps.expit(a)) * (x @ u.T)) @ d.T
    np.testing.assert_allclose(m(ce.tensor(x))._data, ref, rtol=1e-12)
    assert gradcheck(lambda x: m(x), (t64(2, 4),))


# ============================================================================ misc functional
def test_one_hot_pad_normalize():
    oh = F.one_hot(ce.tensor([0, 2, 1]), 4)
    np.testing.assert_array_equal(oh._data, np.eye(4, dtype=np.int64)[[0, 2, 1]])
    assert F.one_hot(ce.tensor([[1], [3]])).shape == (2, 1, 4)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(ce.tensor([5]), 3)
    x = RNG.standard_normal((2, 3))
    p = F.pad(ce.tensor(x), (1, 2))
    np.testing.assert_array_equal(p._data, np.pad(x, ((0, 0), (1, 2))))
    p2 = F.pad(ce.tensor(x), (0, -1, 1, 0), value=3.0)
    np.testing.assert_array_equal(p2._data, np.pad(x[:, :2], ((1, 0), (0, 0)),
                                                   constant_values=3.0))
    assert gradcheck(lambda t: F.pad(t, (1, -1, 0, 2)), (t64(2, 3),))
    n = F.normalize(ce.tensor(x), dim=1)
    np.testing.assert_allclose(n._data, x / np.linalg.norm(x, axis=1, keepdims=True))


def test_tensor_softmax_methods():
    x = ce.randn(3, 4)
    np.testing.assert_allclose(x.softmax(1)._data, sps.softmax(x._data, axis=1), rtol=1e-6)
    np.testing.assert_allclose(x.log_softmax(-1)._data, sps.log_softmax(x._data, axis=1),
                               rtol=1e-5, atol=1e-6)


def test_tiny_transformer_learns():
    """End to end: embedding + encoder layer + linear head + cross-entropy, plain SGD; the
    model must fit a fixed next-token task (loss falls well below its start)."""
    ce.manual_seed(0)
    V, E, T = 7, 16, 6

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, E)
            self.pos = nn.Parameter(ce.randn(T, E) * 0.1)
            self.block = nn.TransformerEncoderLayer(E, 2, dim_feedforward=32, dropout=0.0,
                                                    batch_first=True, norm_first=True)
            self.norm = nn.RMSNorm(E)
            self.head = nn.Linear(E, V)

        def forward(self, idx):
            h = self.emb(idx) + self.pos
            h = self.block(h, is_causal=True)
            return self.head(self.norm(h))

    model = Tiny()
    seq = ce.tensor([[1, 2, 3, 4, 5, 6, 1], [6, 5, 4, 3, 2, 1, 6]])
    x, y = seq[:, :-1], seq[:, 1:]
    losses = []
    for _ in range(60):
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        model.zero_grad()
        loss.backward()
        with ce.no_grad():
            for p in model.parameters():
                p._data -= 0.1 * p.grad._data
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses[::10]


def test_inplace_change_of_saved_values_is_detected():
    x = ce.randn(3, 4, requires_grad=True)
    y = F.softmax(x, 1)
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    a = ce.randn(3, 4, requires_grad=True)
    h = a * 1
    out = F.layer_norm(h, (4,))
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    z = a * 1
    loss = F.cross_entropy(z, ce.tensor([0, 1, 2]))
    z.mul_(3)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_norm_layers_match_torch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((6, 4, 5))
    g = RNG.standard_normal((6, 4, 5))
    pairs = [(nn.LayerNorm((4, 5)), torch.nn.LayerNorm((4, 5))),
             (nn.RMSNorm(5, eps=1e-6), torch.nn.RMSNorm(5, eps=1e-6)),
             (nn.BatchNorm1d(4, momentum=0.3), torch.nn.BatchNorm1d(4, momentum=0.3))]
    for cm, tm in pairs:
        cm.double()
        tm.double()
        with torch.no_grad():
            for p in tm.parameters():
                p.copy_(torch.tensor(RNG.standard_normal(tuple(p.shape))))
        cm.load_state_dict({k: ce.tensor(v.numpy()) for k, v in tm.state_dict().items()})
        for step in range(2):  # two training steps (BatchNorm running stats), then eval
            xt = torch.tensor(x + step, requires_grad=True)
            xc = ce.tensor(x + step, requires_grad=True)
            to, co = tm(xt), cm(xc)
            to.backward(torch.tensor(g))
            co.backward(ce.tensor(g))
            np.testing.assert_allclose(co._data, to.detach().numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(xc.grad._data, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
        tparams = dict(tm.named_parameters())
        for name, p in cm.named_parameters():
            np.testing.assert_allclose(p.grad._data, tparams[name].grad.numpy(), rtol=1e-9,
                                       atol=1e-11, err_msg=name)
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(cm.state_dict()[k]._data, v.numpy(), rtol=1e-12,
                                       err_msg=k)
        cm.eval()
        tm.eval()
        with torch.no_grad():
            np.testing.assert_allclose(cm(ce.tensor(x))._data, tm(torch.tensor(x)).numpy(),
                                       rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_layer_gradcheck(norm_first, device):
    ce.manual_seed(1)
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, batch_first=True,
                                       norm_first=norm_first, activation="gelu").double()
    mask = ce.tensor(np.triu(np.ones((3, 3), bool), 1))
    assert gradcheck(lambda x: layer(x, src_mask=mask), (t64(1, 3, 4),))
    same_on_device(device, lambda m, x, k: m(x, src_mask=k), layer, d64(2, 3, 4), mask)
    assert gradcheck(lambda x: nn.Unflatten(1, (2, 2))(nn.Flatten()(x)), (t64(2, 2, 2),))
