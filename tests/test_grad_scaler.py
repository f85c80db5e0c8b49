"""GradScaler (cengine.amp) and its fused unscale kernel (src_c/amp.c): trajectories against
torch.amp.GradScaler("cpu") with injected inf/NaN gradients, the kernel against its plain
reference on every ISA and thread count, and torch's errors. GradScaler("cuda") on cuda
gradients (its fused CUDA kernel, cengine/cuda/_kernels.py): the same trajectory on the fake
CuPy of tests/_fake_cupy.py (the dispatch) and on a real GPU where there is one."""
import warnings

import numpy as np
import pytest

import cengine as ce
from cengine import _C


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [[1], [3, 17, 0, 5], [40000, 1, 70001], [16] * 50])
def test_amp_unscale_kernel(dt, sizes, isa, nthreads):
    rng = np.random.default_rng(len(sizes))
    for bad_at in (None, "inf", "nan", "-inf"):
        gs = [rng.standard_normal(n).astype(dt) * 1e3 for n in sizes]
        if bad_at is not None:
            big = max(range(len(gs)), key=lambda i: gs[i].size)
            gs[big][gs[big].size // 2] = float(bad_at)
        ref = [g.copy() for g in gs]
        got = _C.amp_unscale(gs, 1.0 / 1024)
        want = _C.amp_unscale(ref, 1.0 / 1024, ref=True)
        assert got == want == (bad_at is not None)
        for a, b in zip(gs, ref):
            assert a.dtype == dt
            np.testing.assert_array_equal(a, b)


def test_amp_unscale_kernel_independent_check():
    g = [np.array([1.0, 2.0, 3.0], np.float32), np.array([np.finfo(np.float32).max], np.float32)]
    assert _C.amp_unscale(g, 2.0) is False     # overflow after scaling is not an inf gradient
    np.testing.assert_array_equal(g[0], [2, 4, 6])
    assert np.isinf(g[1][0])
    with pytest.raises(TypeError, match="share a dtype"):
        _C.amp_unscale([np.ones(2, np.float32), np.ones(2)], 1.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.amp_unscale([np.ones((3, 3), np.float32)[:, 0]], 1.0)
    assert _C.amp_unscale([], 1.0) is False


def _model(lib, seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((6, 4)).astype(np.float32)
    w2 = rng.standard_normal((3, 6)).astype(np.float32)
    m = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.Tanh(), lib.nn.Linear(6, 3))
    with lib.no_grad():
        m[0].weight.copy_(lib.tensor(w1))
        m[2].weight.copy_(lib.tensor(w2))
        m[0].bias.zero_()
        m[2].bias.zero_()
    return m


def _run(lib, steps, inject, device="cpu", **kw):
    """train with a scaler; returns (scales, trackers, step results, final weights)"""
    m = _model(lib).to(device)
    opt = lib.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    scaler = lib.amp.GradScaler(device.split(":")[0], **kw)
    rng = np.random.default_rng(1)
    scales, trackers = [], []
    for s in range(steps):
        x = lib.tensor(rng.standard_normal((8, 4)).astype(np.float32)).to(device)
        loss = (m(x) ** 2).mean()
        opt.zero_grad()
        scaler.scale(loss).backward()
        if s in inject:
            m[0].weight.grad[0, 0] = float(inject[s])
        if s % 3 == 1:    # sometimes unscale first (as for gradient clipping)
            scaler.unscale_(opt)
            lib.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        trackers.append(scaler._get_growth_tracker())
    return (scales, trackers, [p.detach().cpu().numpy().copy() for p in m.parameters()],
            scaler.state_dict())


INJECT = {2: "inf", 3: "nan", 9: "-inf"}


def test_trajectory_matches_torch():
    torch = pytest.importorskip("torch")
    kw = dict(init_scale=2.0 ** 10, growth_factor=3.0, backoff_factor=0.25, growth_interval=3)
    got = _run(ce, 14, INJECT, **kw)
    want = _run(torch, 14, INJECT, **kw)
    assert got[0] == want[0]
    assert got[1] == want[1]
    for a, b in zip(got[2], want[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert got[3] == want[3]


def test_trajectory_by_hand():
    # without torch: the scale backs off on the injected steps and grows every 3 clean ones
    scales, trackers, _, sd = _run(ce, 8, {2: "inf", 3: "nan"}, init_scale=8.0,
                                   growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    assert scales == [8.0, 8.0, 4.0, 2.0, 2.0, 2.0, 4.0, 4.0]
    assert trackers == [1, 2, 0, 0, 1, 2, 0, 1]
    assert sd == {"scale": 4.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                  "growth_interval": 3, "_growth_tracker": 1}


@pytest.mark.parametrize("dev", ["cpu", "fake-cuda", "cuda"])
def test_trajectory_on_each_device(request, dev):
    """GradScaler(device type) on that device's gradients: the CPU run's scales, growth
    trackers, state and weights (on cuda through the fused unscale kernel)"""
    from conftest import device_for
    device = device_for(request, dev)
    kw = dict(init_scale=2.0 ** 10, growth_factor=3.0, backoff_factor=0.25, growth_interval=3)
    got = _run(ce, 14, INJECT, device, **kw)
    want = _run(ce, 14, INJECT, "cpu", **kw)
    assert got[0] == want[0] and got[1] == want[1] and got[3] == want[3]
    assert got[0][2] == got[0][1] / 4 and got[0][3] == got[0][2] / 4    # it backed off
    for a, b in zip(got[2], want[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dev", ["cpu", "fake-cuda", "cuda"])
def test_unscale_groups_on_each_device(request, dev):
    """unscale_ over gradients of two dtypes, a strided one and (allow_fp16) a float16 one:
    each is divided by the scale in place, exactly as the CPU kernel does, and the inf/NaN
    flag of the device is set when any of them has one"""
    from conftest import device_for
    device = device_for(request, dev)
    rng = np.random.default_rng(5)
    host = [rng.standard_normal(s).astype(d) * 1e3 for s, d in
            (((3, 70001), np.float32), ((5,), np.float64), ((4, 6), np.float32),
             ((7,), np.float16), ((0,), np.float32))]
    for bad in (None, 0, 1, 2, 3):
        ps = [ce.nn.Parameter(ce.tensor(np.zeros(h.shape, h.dtype)).to(device)) for h in host]
        gs = [h.copy() for h in host]
        if bad is not None:
            gs[bad].reshape(-1)[gs[bad].size // 2] = np.nan if bad % 2 else np.inf
        for p, g in zip(ps, gs):
            p.grad = ce.tensor(g).to(device)
        ps[2].grad = ce.tensor(np.ascontiguousarray(gs[2].T)).to(device).t()   # strided
        opt = ce.optim.SGD(ps, lr=0.1)
        scaler = ce.amp.GradScaler(device.split(":")[0], init_scale=1024.0)
        scaler.scale(ce.ones(1, device=device))
        inv = np.float32(1.0 / 1024.0)
        found = scaler._unscale_grads_(opt, inv, True)
        assert found == {str(ce.device(device)) if device != "cpu" else "cpu":
                         0.0 if bad is None else 1.0}
        for p, g in zip(ps, gs):
            assert p.grad.device == ce.device(device) and p.grad._data.dtype == g.dtype
            want = [g.copy()] if g.dtype != np.float16 else None
            if want is not None and g.flags.c_contiguous:
                _C.amp_unscale(want, float(inv))
                want = want[0]
            else:
                want = g * g.dtype.type(inv)
            np.testing.assert_array_equal(p.grad.cpu().numpy(), want)
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        scaler._unscale_grads_(opt, np.float32(1.0), False)


def test_skipped_step_leaves_parameters_and_unscales():
    m = _model(ce)
    opt = ce.optim.SGD(m.parameters(), lr=0.1)
    scaler = ce.amp.GradScaler("cpu", init_scale=4.0)
    before = [p.detach().clone() for p in m.parameters()]
    out = scaler.scale(m(ce.ones(2, 4)).sum())
    out.backward()
    g_scaled = m[2].weight.grad.clone()
    m[2].bias.grad[0] = float("nan")
    assert scaler.step(opt) is None
    for p, b in zip(m.parameters(), before):
        assert ce.equal(p, b)
    np.testing.assert_allclose(m[2].weight.grad.numpy(), g_scaled.numpy() / 4.0)
    scaler.update()
    assert scaler.get_scale() == 2.0


def test_unscale_of_a_strided_gradient_is_in_place():
    w = ce.nn.Parameter(ce.ones(3, 2))
    opt = ce.optim.SGD([w], lr=0.1)
    scaler = ce.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale(w.sum()).backward()
    w.grad = ce.full((2, 3), 4.0).t()       # a transposed (non-contiguous) gradient
    held = w.grad._data
    scaler.unscale_(opt)
    np.testing.assert_array_equal(held, np.ones((3, 2)))
    assert w.grad._data is held


def test_errors_and_disabled_scalers():
    m = _model(ce)
    opt = ce.optim.SGD(m.parameters(), lr=0.1)
    scaler = ce.amp.GradScaler("cpu")
    with pytest.raises(AssertionError, match="did not use scaler.scale"):
        scaler.unscale_(opt)
    scaler.scale(m(ce.ones(1, 4)).sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=lambda: 0)
    scaler.update(16.0)
    assert scaler.get_scale() == 16.0
    scaler.update(ce.tensor([2.0]))
    assert scaler.get_scale() == 2.0
    with pytest.raises(AssertionError, match="new_scale should be"):
        scaler.update(ce.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="iterable of Tensors"):
        scaler.scale(3.0)
    a, b = scaler.scale([ce.ones(2), ce.ones(1) * 2])
    assert a.tolist() == [2.0, 2.0] and b.tolist() == [4.0]
    with pytest.raises(AssertionError, match="growth factor"):
        ce.amp.GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(RuntimeError, match="empty"):
        scaler.load_state_dict({})
    # torch's default device is "cuda": without CUDA it warns once and disables itself
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        off = ce.amp.GradScaler()
    assert any("CUDA is not available" in str(x.message) for x in w)
    assert not off.is_enabled() and off.get_scale() == 1.0 and off.state_dict() == {}
    loss = m(ce.ones(1, 4)).sum()
    assert off.scale(loss) is loss
    opt.zero_grad()
    loss.backward()
    off.unscale_(opt)
    off.step(opt)
    off.update()
    fresh = ce.amp.GradScaler("cpu", init_scale=8.0)
    fresh.load_state_dict({"scale": 32.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                           "growth_interval": 5, "_growth_tracker": 3})
    assert fresh.get_scale() == 32.0 and fresh._get_growth_tracker() == 3
    fresh.scale(ce.ones(1))
    assert fresh.get_scale() == 32.0
