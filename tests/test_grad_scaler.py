"""GradScaler (cengine.amp) and its fused unscale kernel (src_c/amp.c): trajectories against
torch.amp.GradScaler("cpu") with injected inf/NaN gradients, the kernel against its plain
reference on every ISA and thread count, and torch's errors."""
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


def _run(lib, steps, inject, **kw):
    """train with a scaler; returns (scales, trackers, step results, final weights)"""
    m = _model(lib)
    opt = lib.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    scaler = lib.amp.GradScaler("cpu", **kw)
    rng = np.random.default_rng(1)
    scales, trackers = [], []
    for s in range(steps):
        x = lib.tensor(rng.standard_normal((8, 4)).astype(np.float32))
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
    return scales, trackers, [p.detach().numpy().copy() for p in m.parameters()], scaler.state_dict()


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
