"""bfloat16 / float16 tensors with real storage: creation, conversions (torch's bits), promotion,
elementwise ops computed in float32 and rounded once, reductions accumulating in float32,
matrix products on the bf16 GEMM, autograd, .numpy(), printing; parity with torch where it is
installed, and against a numpy model (float32 compute, one rounding) everywhere."""
import numpy as np
import pytest

import cengine as ce
from cengine import _C

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
HALVES = [ce.bfloat16, ce.float16]


def _tdt(torch, d):
    return {ce.bfloat16: torch.bfloat16, ce.float16: torch.float16, ce.float32: torch.float32,
            ce.float64: torch.float64, ce.int64: torch.int64, ce.bool: torch.bool}[d]


def _bits(t):
    return t.numpy().view(np.uint16)


def _round(x, d):
    """numpy model: float32 values rounded once to the half dtype"""
    return np.asarray(x, np.float32).astype(d.np)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("d", HALVES)
def test_storage_and_conversions(d, rng):
    a = (rng.standard_normal((5, 7)) * 3).astype(np.float32)
    t = ce.tensor(a).to(d)
    assert t.dtype is d and t.numpy().dtype == d.np and t.element_size() == 2
    np.testing.assert_array_equal(_bits(t), _round(a, d).view(np.uint16))
    assert (t.bfloat16() if d is ce.bfloat16 else t.half()) is t
    back = t.float()
    assert back.dtype is ce.float32
    np.testing.assert_array_equal(back.numpy(), _round(a, d).astype(np.float32))
    assert t.double().dtype is ce.float64 and t.long().dtype is ce.int64
    np.testing.assert_array_equal(t.long().numpy(), _round(a, d).astype(np.float32).astype(np.int64))
    for make in (lambda: ce.tensor([1.5, -2.0], dtype=d), lambda: ce.zeros(2, 3, dtype=d),
                 lambda: ce.ones(4, dtype=d), lambda: ce.full((2,), 0.1, dtype=d),
                 lambda: ce.arange(5, dtype=d), lambda: ce.randn(3, dtype=d),
                 lambda: ce.rand(3, dtype=d), lambda: ce.empty(2, dtype=d),
                 lambda: ce.zeros_like(t), lambda: t.new_ones(3)):
        assert make().dtype is d
    assert ce.full((1,), 0.1, dtype=d).numpy()[0] == np.float32(0.1).astype(d.np)
    # non-contiguous views convert too
    np.testing.assert_array_equal(ce.tensor(a)[:, ::2].to(d).numpy(), _round(a[:, ::2], d))


def test_bf16_half_cross_and_f64():
    x = np.array([1.00390625 + 1e-12, 3.0, 1e-30, 70000.0], np.float64)
    t = ce.tensor(x)
    # float64 reaches bfloat16 through float32, as torch does
    np.testing.assert_array_equal(_bits(t.bfloat16()), x.astype(np.float32).astype(BF16)
                                  .view(np.uint16))
    h = t.bfloat16().half()
    assert h.dtype is ce.float16
    with np.errstate(over="ignore"):
        want = t.bfloat16().numpy().astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(h.numpy(), want)


@pytest.mark.parametrize("d", HALVES)
def test_promotion(d):
    x = ce.ones(3, dtype=d)
    other = ce.float16 if d is ce.bfloat16 else ce.bfloat16
    assert (x + ce.ones(3, dtype=other)).dtype is ce.float32
    assert (x + ce.ones(3)).dtype is ce.float32
    assert (x + ce.ones(3, dtype=ce.float64)).dtype is ce.float64
    assert (x + ce.ones(3, dtype=ce.int64)).dtype is d
    assert (x + 1).dtype is d and (x * 2.5).dtype is d and (2.5 - x).dtype is d
    assert (x + ce.tensor(1.5)).dtype is d          # a 0-d float32 does not widen
    assert (ce.ones(3, dtype=ce.int32) + ce.tensor(1.5, dtype=d)).dtype is d
    assert (x / 2).dtype is d and (x > 0).dtype is ce.bool
    assert ce.promote_types(ce.bfloat16, ce.float16) is ce.float32
    assert ce.promote_types(d, ce.int8) is d
    assert x.is_floating_point()


_OPS = {
    "add": lambda m, p, q: p + q, "sub": lambda m, p, q: p - q, "mul": lambda m, p, q: p * q,
    "div": lambda m, p, q: p / q, "scalar": lambda m, p, q: p * 2.5 + 1, "pow": lambda m, p, q: p ** 2,
    "exp": lambda m, p, q: p.exp(), "log": lambda m, p, q: p.abs().log(),
    "sqrt": lambda m, p, q: p.abs().sqrt(), "tanh": lambda m, p, q: p.tanh(),
    "sigmoid": lambda m, p, q: p.sigmoid(), "relu": lambda m, p, q: m.relu(p),
    "silu": lambda m, p, q: m.nn.functional.silu(p), "clamp": lambda m, p, q: p.clamp(-1, 1),
    "maximum": lambda m, p, q: m.maximum(p, q), "where": lambda m, p, q: m.where(p > 0, p, q),
    "lerp": lambda m, p, q: m.lerp(p, q, 0.3), "addcmul": lambda m, p, q: m.addcmul(p, p, q, value=0.5),
    "sum": lambda m, p, q: p.sum(1), "mean": lambda m, p, q: p.mean(0), "amax": lambda m, p, q: p.amax(1),
    "cumsum": lambda m, p, q: p.cumsum(1), "std": lambda m, p, q: p.std(1), "norm": lambda m, p, q: p.norm(),
    "matmul": lambda m, p, q: p @ q.T, "cat": lambda m, p, q: m.cat([p, q]), "sort": lambda m, p, q: p.sort(1).values,
    "mixed_f32": lambda m, p, q: p + q.float(),
}


@pytest.mark.parametrize("d", HALVES)
@pytest.mark.parametrize("op", sorted(_OPS))
def test_ops_bitwise_as_torch(d, op, rng):
    torch = pytest.importorskip("torch")
    a = (rng.standard_normal((7, 13)) * 2).astype(np.float32)
    b = (rng.standard_normal((7, 13)) * 2).astype(np.float32)
    td = _tdt(torch, d)
    r = _OPS[op](ce, ce.tensor(a).to(d), ce.tensor(b).to(d))
    t = _OPS[op](torch, torch.tensor(a).to(td), torch.tensor(b).to(td))
    assert str(r.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
    np.testing.assert_array_equal(r.float().numpy(), t.float().numpy())


@pytest.mark.parametrize("d", HALVES)
def test_ops_round_once_model(d, rng):
    """no torch needed: float32 compute, one rounding"""
    a = _round(rng.standard_normal(1001) * 2, d)
    b = _round(rng.standard_normal(1001) * 2, d)
    x, y = ce.tensor(a), ce.tensor(b)
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    for got, want in ((x * y, fa * fb), (x / y, fa / fb), (x.exp(), np.exp(fa)),
                      (ce.lerp(x, y, 0.3), fa + np.float32(0.3) * (fb - fa)),
                      (x.sum(), fa.sum(dtype=np.float32)), (x.mean(), fa.mean(dtype=np.float32))):
        assert got.dtype is d
        np.testing.assert_allclose(got.float().numpy(), _round(want, d).astype(np.float32),
                                   rtol=0, atol=0 if got.ndim else 4e-3 * abs(float(want)))


@pytest.mark.parametrize("d", HALVES)
def test_reductions_accumulate_in_f32(d):
    # 4096 ones: a half-precision running sum would stop at 256 (bf16) or 2048 (f16)
    x = ce.ones(4096, dtype=d)
    assert x.sum().item() == 4096.0 and x.sum().dtype is d
    assert x.mean().item() == 1.0
    assert ce.ones(64, 64, dtype=d).sum(0)[0].item() == 64.0
    assert x.cumsum(0)[-1].item() == 4096.0
    s = ce.full((3000,), 0.01, dtype=d).sum()
    want = np.float32(np.float32(ce.tensor(0.01).to(d).item()) * 3000)
    assert abs(s.item() - want) <= 0.01 * want


@pytest.mark.parametrize("d", HALVES)
def test_autograd_in_half(d, rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((6, 5)).astype(np.float32)
    x = ce.tensor(a).to(d).requires_grad_()
    W = ce.tensor(w).to(d).requires_grad_()
    loss = ((x @ W).tanh() * 2).sum() + x.exp().mean()
    assert loss.dtype is d
    loss.backward()
    assert x.grad.dtype is d and W.grad.dtype is d
    # gradient through a cast reaches a float32 master tensor in float32
    m = ce.tensor(a, requires_grad=True)
    (m.to(d) * 3).float().sum().backward()
    assert m.grad.dtype is ce.float32
    np.testing.assert_array_equal(m.grad.numpy(), np.full(a.shape, 3, np.float32))
    torch = pytest.importorskip("torch")
    td = _tdt(torch, d)
    tx = torch.tensor(a).to(td).requires_grad_()
    tW = torch.tensor(w).to(td).requires_grad_()
    (((tx @ tW).tanh() * 2).sum() + tx.exp().mean()).backward()
    np.testing.assert_allclose(x.grad.float().numpy(), tx.grad.float().numpy(), rtol=2e-2,
                               atol=2e-2)
    np.testing.assert_allclose(W.grad.float().numpy(), tW.grad.float().numpy(), rtol=2e-2,
                               atol=2e-2)


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 5), (3, 64, 17), (33, 1, 40)])
def test_bf16_matmul_exact_fp32_accumulation(isa, nthreads, shape, rng):
    M, K, N = shape
    a = ce.tensor(rng.standard_normal((M, K)).astype(np.float32)).bfloat16()
    b = ce.tensor(rng.standard_normal((K, N)).astype(np.float32)).bfloat16()
    want = a.float().numpy() @ b.float().numpy()   # the rounded operands, float32 sums
    got = a @ b
    assert got.dtype is ce.bfloat16
    np.testing.assert_allclose(got.float().numpy(), _round(want, ce.bfloat16).astype(np.float32),
                               rtol=8e-3, atol=1e-5 * np.abs(want).max())
    # batched with a broadcast 2-D operand, non-contiguous (transposed) views
    a3 = ce.tensor(rng.standard_normal((2, 3, M, K)).astype(np.float32)).bfloat16()
    got3 = a3 @ b.T.contiguous().T
    want3 = a3.float().numpy() @ b.float().numpy()
    np.testing.assert_allclose(got3.float().numpy(), want3, rtol=1e-2, atol=1e-2)


def test_half_matmul_dtype_errors():
    with pytest.raises(RuntimeError, match=r"expected m1 and m2 to have the same dtype, but got: "
                                           r"c10::BFloat16 != float"):
        ce.ones(2, 3).bfloat16() @ ce.ones(3, 2)
    with pytest.raises(RuntimeError, match="c10::Half != float"):
        ce.mm(ce.ones(2, 3).half(), ce.ones(3, 2))
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require"):
        ce.ones(2, dtype=ce.int64).requires_grad_()


@pytest.mark.parametrize("d", HALVES)
def test_conv_and_pool_half(d, rng):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    F = ce.nn.functional
    xc, wc = ce.tensor(x).to(d), ce.tensor(w).to(d)
    y = F.conv2d(xc, wc, padding=1)
    assert y.dtype is d
    want = F.conv2d(xc.float(), wc.float(), padding=1).numpy()
    np.testing.assert_array_equal(y.numpy(), _round(want, d))
    assert F.max_pool2d(xc, 2).dtype is d and F.avg_pool2d(xc, 2).dtype is d
    torch = pytest.importorskip("torch")
    td = _tdt(torch, d)
    t = torch.nn.functional.conv2d(torch.tensor(x).to(td), torch.tensor(w).to(td), padding=1)
    np.testing.assert_allclose(y.float().numpy(), t.float().numpy(), rtol=1e-2, atol=2e-2)
    with pytest.raises(RuntimeError, match="expected scalar type"):
        F.conv2d(xc, ce.tensor(w))


@pytest.mark.parametrize("d", HALVES)
def test_numpy_print_inplace(d):
    x = ce.tensor([1.5, -2.25, 3e-5, 100.0]).to(d)
    assert x.numpy().dtype == d.np
    r = repr(x)
    assert r.endswith("dtype=cengine.%s)" % d.name) and "1.5" in r
    assert repr(ce.tensor([1.0, 2.0]).to(d)) == "tensor([1., 2.], dtype=cengine.%s)" % d.name
    y = x.clone()
    y.add_(ce.ones(4))            # a float32 operand, written back in the half dtype
    y.mul_(2)
    y[0] = 0.1
    assert y.dtype is d
    np.testing.assert_array_equal(y.numpy()[1:], _round((x.float().numpy()[1:] + 1) * 2, d))
    assert y.numpy()[0] == np.float32(0.1).astype(d.np)
    assert x[0].item() == 1.5 and isinstance(x[0].item(), float)
    assert x.tolist()[1] == -2.25


def test_cast_kernels_serve_to(isa, nthreads):
    x = np.random.default_rng(2).standard_normal(70001).astype(np.float32)
    x[::977] = np.nan
    t = ce.tensor(x)
    np.testing.assert_array_equal(_bits(t.bfloat16()), _C.cast_f32_to_bf16(x, ref=True))
    np.testing.assert_array_equal(_bits(t.half()), _C.cast_f32_to_f16(x, ref=True))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
@pytest.mark.parametrize("d", HALVES)
def test_optimizers_take_half_params_with_f32_state(name, d, rng):
    """the update runs in float32 on float32 state; the parameter is rounded once per step"""
    w0 = rng.standard_normal((5, 3)).astype(np.float32)
    kw = dict(lr=0.05, momentum=0.9) if name == "SGD" else dict(lr=0.05)
    w = ce.tensor(w0).to(d).requires_grad_()
    ref = ce.tensor(w.detach().float().numpy(), requires_grad=True)   # float32 twin
    o = getattr(ce.optim, name)([w], **kw)
    o_ref = getattr(ce.optim, name)([ref], **kw)
    for _ in range(3):
        (w.float() ** 2).sum().backward()
        o.step()
        o.zero_grad()
        # the twin starts each step from the rounded parameter, with the same float32 state
        (ref ** 2).sum().backward()
        o_ref.step()
        o_ref.zero_grad()
        np.testing.assert_array_equal(w.detach().numpy(), _round(ref.detach().numpy(), d))
        with ce.no_grad():
            ref.copy_(w.float())
    assert w.dtype is d
    for k, v in o.state[w].items():
        if k != "step":
            assert v.dtype is ce.float32
    sd = o.state_dict()
    o.load_state_dict(sd)
    assert all(v.dtype is ce.float32 for k, v in o.state[w].items() if k != "step")


def test_module_in_bfloat16_trains():
    ce.manual_seed(0)
    m = ce.nn.Sequential(ce.nn.Linear(6, 8), ce.nn.LayerNorm(8), ce.nn.GELU(), ce.nn.Linear(8, 3))
    assert m.bfloat16() is m
    assert all(p.dtype is ce.bfloat16 for p in m.parameters())
    x = ce.randn(16, 6).bfloat16()
    y = ce.randint(0, 3, (16,))
    opt = ce.optim.AdamW(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = ce.nn.functional.cross_entropy(m(x), y)
        assert loss.dtype is ce.bfloat16
        opt.zero_grad()
        loss.backward()
        assert m[0].weight.grad.dtype is ce.bfloat16
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert m.float()[0].weight.dtype is ce.float32


@pytest.mark.parametrize("in_f,out_f", [(5, 9), (9, 5), (1, 1), (33, 64)])
@pytest.mark.parametrize("d", HALVES)
def test_linear_grads_half(d, in_f, out_f, rng):
    """forward and the three gradients against float32 products of the rounded operands"""
    x0 = _round(rng.standard_normal((3, 7, in_f)), d)
    w0 = _round(rng.standard_normal((out_f, in_f)), d)
    b0 = _round(rng.standard_normal(out_f), d)
    g0 = _round(rng.standard_normal((3, 7, out_f)), d)
    x, w, b = (ce.tensor(a).requires_grad_() for a in (x0, w0, b0))
    y = ce.nn.functional.linear(x, w, b)
    assert y.dtype is d
    y.backward(ce.tensor(g0))
    f = lambda a: a.astype(np.float32)   # noqa: E731
    x2, g2 = f(x0).reshape(-1, in_f), f(g0).reshape(-1, out_f)
    tol = dict(rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(y.float().detach().numpy().reshape(-1, out_f),
                               x2 @ f(w0).T + f(b0), **tol)
    np.testing.assert_allclose(x.grad.float().numpy().reshape(-1, in_f), g2 @ f(w0), **tol)
    np.testing.assert_allclose(w.grad.float().numpy(), g2.T @ x2, **tol)
    np.testing.assert_allclose(b.grad.float().numpy(), g2.sum(0), **tol)
    assert x.grad.dtype is d and w.grad.dtype is d and b.grad.dtype is d


@pytest.mark.parametrize("d", HALVES)
def test_recurrent_layers_in_half(d):
    ce.manual_seed(0)
    x = ce.randn(5, 2, 4)
    for name in ("LSTM", "GRU"):
        m = getattr(ce.nn, name)(4, 3, bidirectional=True)
        ref, _ = m(x.to(d).float())
        m.to(d)
        out, h = m(x.to(d))
        assert out.dtype is d and (h[0] if name == "LSTM" else h).dtype is d
        np.testing.assert_allclose(out.float().detach().numpy(), ref.detach().numpy(),
                                   rtol=2e-2, atol=2e-2)
        out.float().sum().backward()
        assert m.weight_hh_l0.grad.dtype is d
