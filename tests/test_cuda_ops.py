"""Op, layer, loss and optimizer tests run on every device (fixture `device`: cpu, and cuda:0
only where real CuPy sees a GPU; skipped with the reason otherwise), against numpy references
computed on the host, plus a "fake-cuda" run on the fake CuPy of tests/_fake_cupy.py (the
dispatch and the array-module formulas of cengine/cuda/_ops.py, on the CPU); and the fused CUDA
kernels of cengine/cuda/_kernels.py against the array-module formulas and the CPU kernels (real
GPU only)."""
import numpy as np
import pytest

import cengine as ce
import cengine.nn.functional as F
from cengine import _device

@pytest.fixture(params=["cpu", "cuda", "fake-cuda"])
def device(request):
    """conftest's device (cpu; cuda:0 where real CuPy sees a GPU), and the fake CuPy."""
    from conftest import device_for
    return device_for(request, request.param)


TOL = {np.float32: 2e-5, np.float64: 1e-11}
SHAPES = [(1, 1), (3, 1), (7, 33), (5, 1000), (2, 4099), (0, 5)]


def host(t):
    return t.detach().cpu().numpy()


def _softmax(x, log=False):
    m = x.max(-1, keepdims=True) if x.shape[-1] else 0
    z = x - m
    s = np.log(np.exp(z).sum(-1, keepdims=True))
    return z - s if log else np.exp(z - s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_forward_backward(device, dtype, shape, log):
    rng = np.random.default_rng(sum(shape))
    xa = (rng.standard_normal(shape) * 3).astype(dtype)
    ga = rng.standard_normal(shape).astype(dtype)
    x = ce.tensor(xa, device=device, requires_grad=True)
    y = F.log_softmax(x, -1) if log else F.softmax(x, -1)
    assert y.device == x.device
    y.backward(ce.tensor(ga, device=device))
    ry = _softmax(xa.astype(np.float64), log)
    rdx = ga - np.exp(ry) * ga.sum(-1, keepdims=True) if log else \
        ry * (ga - (ga * ry).sum(-1, keepdims=True))
    np.testing.assert_allclose(host(y), ry, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(host(x.grad), rdx, rtol=10 * TOL[dtype], atol=10 * TOL[dtype])


def _ln_ref(x, w, b, eps, rms):
    if rms:
        r = 1 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
        return x * r * w
    m = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(((x - m) ** 2).mean(-1, keepdims=True) + eps)
    return (x - m) * r * w + b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (4, 1031), (2, 3, 64)])
@pytest.mark.parametrize("rms", [False, True])
def test_norms_forward_backward(device, dtype, shape, rms):
    rng = np.random.default_rng(len(shape) + shape[-1])
    xa = (rng.standard_normal(shape) + 2).astype(dtype)
    wa = rng.standard_normal(shape[-1]).astype(dtype)
    ba = rng.standard_normal(shape[-1]).astype(dtype)
    ga = rng.standard_normal(shape).astype(dtype)
    outs = {}
    for dev in ("cpu", device):
        x = ce.tensor(xa, device=dev, requires_grad=True)
        w = ce.tensor(wa, device=dev, requires_grad=True)
        b = ce.tensor(ba, device=dev, requires_grad=True)
        y = F.rms_norm(x, (shape[-1],), w, 1e-5) if rms else \
            F.layer_norm(x, (shape[-1],), w, b, 1e-5)
        y.backward(ce.tensor(ga, device=dev))
        outs[dev] = [host(y), host(x.grad), host(w.grad)] + ([] if rms else [host(b.grad)])
    ref = _ln_ref(xa.astype(np.float64), wa, ba, 1e-5, rms)
    tol = 20 * TOL[dtype]
    np.testing.assert_allclose(outs[device][0], ref, rtol=tol, atol=tol)
    for a, c in zip(outs[device], outs["cpu"]):       # gradients: the CPU kernels' (gradchecked)
        np.testing.assert_allclose(a, c, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.2}, {"ignore_index": 1},
                                  {"weight": True, "reduction": "sum"},
                                  {"reduction": "none", "label_smoothing": 0.1, "weight": True}])
def test_cross_entropy(device, dtype, opts):
    rng = np.random.default_rng(3)
    N, C = 37, 11
    xa = (rng.standard_normal((N, C)) * 2).astype(dtype)
    ta = rng.integers(0, C, N)
    ta[:5] = 1
    wa = rng.random(C).astype(dtype) + 0.5
    res = {}
    for dev in ("cpu", device):
        x = ce.tensor(xa, device=dev, requires_grad=True)
        kw = dict(opts)
        if kw.pop("weight", False):
            kw["weight"] = ce.tensor(wa, device=dev)
        loss = F.cross_entropy(x, ce.tensor(ta, device=dev), **kw)
        assert loss.device == x.device
        loss.sum().backward() if loss.ndim else loss.backward()
        res[dev] = (host(loss), host(x.grad))
    # the reference: log-softmax and NLL written out in float64
    lp = _softmax(xa.astype(np.float64), True)
    w = wa.astype(np.float64) if opts.get("weight") else np.ones(C)
    ls = opts.get("label_smoothing", 0.0)
    ig = opts.get("ignore_index", -100)
    keep = ta != ig
    rows = -(1 - ls) * w[ta] * lp[np.arange(N), ta] - ls / C * (w * lp).sum(-1)
    rows = np.where(keep, rows, 0)
    red = opts.get("reduction", "mean")
    want = rows if red == "none" else rows.sum() if red == "sum" else \
        rows.sum() / np.where(keep, w[ta], 0).sum()
    tol = 20 * TOL[dtype]
    np.testing.assert_allclose(res[device][0], want, rtol=tol, atol=tol)
    np.testing.assert_allclose(res[device][1], res["cpu"][1], rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["relu", "gelu", "gelu_tanh", "sigmoid", "tanh", "silu",
                                  "softplus", "leaky_relu"])
def test_activations(device, kind):
    xa = np.linspace(-6, 6, 1001)
    fns = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
           "sigmoid": ce.sigmoid, "tanh": ce.tanh, "silu": F.silu, "softplus": F.softplus,
           "leaky_relu": lambda t: F.leaky_relu(t, 0.2)}
    res = {}
    for dev in ("cpu", device):
        x = ce.tensor(xa, device=dev, requires_grad=True)
        y = fns[kind](x)
        (y * y).sum().backward()
        res[dev] = (host(y), host(x.grad))
    for a, c in zip(res[device], res["cpu"]):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_matmul_linear_and_reductions(device):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 5, 7)), rng.standard_normal((7, 4))
    x = ce.tensor(a, device=device, requires_grad=True)
    w = ce.tensor(b, device=device, requires_grad=True)
    y = (x @ w).relu().sum(1).mean() + x.var() + x.amax(-1).sum() + x.logsumexp(0).sum()
    y.backward()
    ref = (np.maximum(a @ b, 0).sum(1).mean() + a.var(ddof=1) + a.max(-1).sum()
           + np.log(np.exp(a).sum(0)).sum())
    np.testing.assert_allclose(host(y), ref, rtol=1e-12)
    gw = np.einsum("bmk,bmn->kn", a, ((a @ b) > 0) / 12.0)
    np.testing.assert_allclose(host(w.grad), gw, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("opt", ["SGD", "AdamW"])
def test_training_steps(device, opt):
    """A transformer-ish block trained a few steps gives the CPU run's parameters."""
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((4, 6, 16)).astype(np.float32)
    ta = rng.integers(0, 10, (4, 6))
    finals = []
    for dev in ("cpu", device):
        ce.manual_seed(0)
        m = ce.nn.Sequential(ce.nn.Linear(16, 32), ce.nn.LayerNorm(32), ce.nn.GELU(),
                             ce.nn.Linear(32, 10)).to(dev)
        o = ce.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) if opt == "SGD" else \
            ce.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
        x, t = ce.tensor(xa, device=dev), ce.tensor(ta, device=dev)
        for _ in range(3):
            o.zero_grad()
            F.cross_entropy(m(x).reshape(-1, 10), t.reshape(-1)).backward()
            o.step()
        finals.append([host(p) for p in m.parameters()])
    for a, c in zip(*finals):
        np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ the CUDA kernels themselves
def _gpu():
    why = _device.cuda_missing_reason()
    if why is not None:
        pytest.skip("no real CUDA device: " + why)
    from cengine.cuda import _kernels
    if not _kernels.available():
        pytest.skip("CuPy has no RawModule")
    return _device.cuda_module()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_gpu_softmax_kernels_against_formula(dtype, shape):
    cp = _gpu()
    from cengine.cuda import _kernels as K, _ops as O
    rng = np.random.default_rng(0)
    x = cp.asarray((rng.standard_normal(shape) * 4).astype(dtype))
    dy = cp.asarray(rng.standard_normal(shape).astype(dtype))
    tol = TOL[dtype] * 10
    for log in (False, True):
        y = K.softmax_forward(x, log)
        np.testing.assert_allclose(cp.asnumpy(y), cp.asnumpy(O.softmax_forward_xp(x, log)),
                                   rtol=tol, atol=tol)
        np.testing.assert_allclose(cp.asnumpy(K.softmax_backward(y, dy, log)),
                                   cp.asnumpy(O.softmax_backward_xp(y, dy, log)),
                                   rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (9, 1031), (2, 4096)])
def test_gpu_norm_kernels_against_cpu(dtype, shape):
    cp = _gpu()
    from cengine.cuda import _kernels as K
    from cengine import _C
    rng = np.random.default_rng(1)
    xa = (rng.standard_normal(shape) + 3).astype(dtype)
    wa, ba = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    dya = rng.standard_normal(shape).astype(dtype)
    x, w, b, dy = (cp.asarray(a) for a in (xa, wa, ba, dya))
    tol = TOL[dtype] * 50
    got = K.layer_norm_forward(x, w, b, 1e-5)
    want = _C.layer_norm_forward(xa, wa, ba, 1e-5)
    for g, r in zip(got, want):
        np.testing.assert_allclose(cp.asnumpy(g), r, rtol=tol, atol=tol)
    got = K.layer_norm_backward(dy, x, got[1], got[2], w, True, True, True)
    want = _C.layer_norm_backward(dya, xa, want[1], want[2], wa, need_dx=True, need_dweight=True,
                                  need_dbias=True)
    for g, r in zip(got, want):
        np.testing.assert_allclose(cp.asnumpy(g), r, rtol=tol, atol=tol)
    got = K.rms_norm_forward(x, w, 1e-6)
    want = _C.rms_norm_forward(xa, wa, 1e-6)
    for g, r in zip(got, want):
        np.testing.assert_allclose(cp.asnumpy(g), r, rtol=tol, atol=tol)
    got = K.rms_norm_backward(dy, x, got[1], w, True, True)
    want = _C.rms_norm_backward(dya, xa, want[1], wa, need_dx=True, need_dweight=True)
    for g, r in zip(got, want):
        np.testing.assert_allclose(cp.asnumpy(g), r, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C", [(1, 1), (5, 3), (64, 1000), (3, 50257)])
def test_gpu_cross_entropy_kernels_against_cpu(dtype, N, C):
    cp = _gpu()
    from cengine.cuda import _kernels as K
    from cengine import _C
    rng = np.random.default_rng(2)
    xa = (rng.standard_normal((N, C)) * 3).astype(dtype)
    ta = rng.integers(0, C, N).astype(np.int64)
    ta[0] = -100
    wa = (rng.random(C) + 0.5).astype(dtype)
    ga = rng.standard_normal(N).astype(dtype)
    tol = TOL[dtype] * 50
    for w, ls in ((None, 0.0), (wa, 0.1)):
        got = K.cross_entropy_forward(cp.asarray(xa), cp.asarray(ta),
                                      None if w is None else cp.asarray(w), -100, ls)
        want = _C.cross_entropy_forward(xa, ta, w, -100, ls)
        for g, r in zip(got, want):
            np.testing.assert_allclose(cp.asnumpy(g), r, rtol=tol, atol=tol)
        dx = K.cross_entropy_backward(cp.asarray(xa), cp.asarray(ta), got[1], cp.asarray(ga),
                                      None if w is None else cp.asarray(w), -100, ls)
        rdx = _C.cross_entropy_backward(xa, ta, want[1], ga, w, -100, ls)
        np.testing.assert_allclose(cp.asnumpy(dx), rdx, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decoupled", [False, True])
def test_gpu_multi_tensor_adam_against_cpu(dtype, decoupled):
    cp = _gpu()
    from cengine.cuda import _kernels as K
    from cengine import _C
    rng = np.random.default_rng(4)
    sizes = [1, 7, 65536, 65537, 200003]
    ps = [rng.standard_normal(n).astype(dtype) for n in sizes]
    gs = [rng.standard_normal(n).astype(dtype) for n in sizes]
    ms = [rng.standard_normal(n).astype(dtype) * 0.1 for n in sizes]
    vs = [rng.random(n).astype(dtype) * 0.1 for n in sizes]
    steps = [3, 3, 1, 10, 2]
    dev = [[cp.asarray(a) for a in group] for group in (ps, gs, ms, vs)]
    args = (1e-2, 0.9, 0.999, 1e-8, 0.1)
    K.adam_step(*dev, steps, *args, False, decoupled)
    _C.adam_step(ps, gs, ms, vs, None, steps, *args, False, False, decoupled)
    tol = TOL[dtype] * 10
    for d, h in zip(dev[0] + dev[2] + dev[3], ps + ms + vs):
        np.testing.assert_allclose(cp.asnumpy(d), h, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [None, "inf", "nan"])
def test_gpu_multi_tensor_amp_unscale_against_cpu(dtype, bad):
    """GradScaler's fused unscale on the GPU (several blocks per tensor, an empty tensor):
    the CPU kernel's values bit for bit and its inf/NaN flag"""
    cp = _gpu()
    from cengine.cuda import _kernels as K
    from cengine import _C
    rng = np.random.default_rng(6)
    sizes = [1, 7, 0, 65536, 65537, 200003]
    hs = [(rng.standard_normal(n) * 1e3).astype(dtype) for n in sizes]
    if bad is not None:
        hs[4][65536] = float(bad)            # the last element, alone in its block
    dev = [cp.asarray(h) for h in hs]
    assert K.multi_usable(dev)
    inv = float(np.float32(1.0 / 65536.0))
    found = K.amp_unscale(dev, inv)
    assert bool(int(found[0])) == _C.amp_unscale(hs, inv) == (bad is not None)
    for d, h in zip(dev, hs):
        np.testing.assert_array_equal(cp.asnumpy(d), h)


def test_cuda_autocast_float16(device):
    """autocast("cuda") on cuda tensors: the matmul family in float16 (cuBLAS through CuPy),
    softmax/layer_norm/losses in float32, gradients to the float32 parameters in float32 and
    close to the float32 run; CPU tensors inside the region are left alone. On the CPU the
    same model under autocast("cpu", float16) gives the same dtypes."""
    ce.manual_seed(0)
    m = ce.nn.Sequential(ce.nn.Linear(16, 32), ce.nn.GELU(), ce.nn.LayerNorm(32),
                         ce.nn.Linear(32, 10))
    ref = [p.detach().clone() for p in m.parameters()]
    m = m.to(device)
    rng = np.random.default_rng(7)
    x = ce.tensor(rng.standard_normal((8, 16)).astype(np.float32), device=device)
    y = ce.tensor(rng.integers(0, 10, 8), device=device)
    kind = ce.device(device).type
    with ce.autocast(kind, dtype=ce.float16):
        h = m[0](x)
        out = m(x)
        sm = F.softmax(out, -1)
        ln = F.layer_norm(h, (32,))
        loss = F.cross_entropy(out, y)
        mm = x @ x.t()
        bmm = ce.bmm(x.reshape(2, 4, 16), x.reshape(2, 16, 4))
        other = ce.randn(3, 4) @ ce.randn(4, 2)      # a CPU product
    assert h.dtype == out.dtype == mm.dtype == bmm.dtype == ce.float16
    assert loss.dtype == ce.float32
    # torch's CUDA policy: softmax and layer_norm are float32 ops; the CPU one keeps the dtype
    want = ce.float32 if kind == "cuda" else ce.float16
    assert sm.dtype == want and ln.dtype == want
    assert other.dtype == (ce.float32 if kind == "cuda" else ce.float16)
    assert out.device == ce.device(device) and loss.device == ce.device(device)
    loss.backward()
    # the float32 run of the same model on the CPU
    m32 = ce.nn.Sequential(ce.nn.Linear(16, 32), ce.nn.GELU(), ce.nn.LayerNorm(32),
                           ce.nn.Linear(32, 10))
    with ce.no_grad():
        for p, r in zip(m32.parameters(), ref):
            p.copy_(r)
    loss32 = F.cross_entropy(m32(x.cpu()), y.cpu())
    loss32.backward()
    np.testing.assert_allclose(loss.item(), loss32.item(), rtol=5e-3, atol=5e-3)
    for p, q in zip(m.parameters(), m32.parameters()):
        assert p.grad.dtype == ce.float32 and p.grad.device == ce.device(device)
        np.testing.assert_allclose(host(p.grad), host(q.grad), rtol=3e-2, atol=3e-3)
