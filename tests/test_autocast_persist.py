"""The persistent per-parameter low-precision buffers of autocast: reused across regions,
refilled when the parameter changes, never overwritten while something still holds them."""
import numpy as np
import pytest

import cengine as ce
from cengine import dtypes as _dt
from cengine.amp import autocast_mode as am


def _bf16_of(a):
    return _dt.astype(np.ascontiguousarray(a, np.float32), _dt.BF16_NP)


def _lowp_weight(w, dtype=ce.bfloat16):
    with ce.autocast("cpu", dtype=dtype):
        return am.cast_lowp(w)


def test_buffer_reused_and_refilled_on_version_change(isa):
    w = ce.nn.Parameter(ce.randn(7, 13))
    c1 = _lowp_weight(w)
    buf = c1._data.__array_interface__["data"][0]   # its address (holding it would pin it)
    np.testing.assert_array_equal(c1._data.view(np.uint16), _bf16_of(w._data).view(np.uint16))
    del c1
    c2 = _lowp_weight(w)
    assert c2._data.__array_interface__["data"][0] == buf            # same storage, nothing else held it
    del c2
    with ce.no_grad():
        w.mul_(3.0)                   # bumps the version: the buffer is refilled
    c3 = _lowp_weight(w)
    assert c3._data.__array_interface__["data"][0] == buf
    np.testing.assert_array_equal(c3._data.view(np.uint16), _bf16_of(w._data).view(np.uint16))
    del c3
    w.data = ce.randn(7, 13)          # new storage: refilled
    c4 = _lowp_weight(w)
    np.testing.assert_array_equal(c4._data.view(np.uint16), _bf16_of(w._data).view(np.uint16))


def test_held_buffer_is_not_overwritten():
    w = ce.nn.Parameter(ce.randn(5, 3))
    kept = _lowp_weight(w)
    before = kept._data.copy()
    with ce.no_grad():
        w.add_(1.0)
    fresh = _lowp_weight(w)
    assert fresh._data is not kept._data
    np.testing.assert_array_equal(kept._data.view(np.uint16), before.view(np.uint16))
    np.testing.assert_array_equal(fresh._data.view(np.uint16), _bf16_of(w._data).view(np.uint16))


def test_in_place_write_to_old_cast_forces_refill():
    w = ce.nn.Parameter(ce.randn(4, 4))
    c = _lowp_weight(w)
    with ce.no_grad():
        c.zero_()
    del c
    c2 = _lowp_weight(w)
    np.testing.assert_array_equal(c2._data.view(np.uint16), _bf16_of(w._data).view(np.uint16))


def test_float16_region_after_bfloat16():
    w = ce.nn.Parameter(ce.randn(6, 2))
    assert _lowp_weight(w)._data.dtype == _dt.BF16_NP
    h = _lowp_weight(w, ce.float16)
    assert h.dtype == ce.float16
    np.testing.assert_array_equal(h._data, w._data.astype(np.float16))


def test_entry_dropped_with_parameter():
    w = ce.nn.Parameter(ce.randn(3, 3))
    _lowp_weight(w)
    key = id(w)
    assert key in am._tls.persist
    del w
    assert key not in am._tls.persist


def test_clear_autocast_cache_drops_buffers():
    w = ce.nn.Parameter(ce.randn(3, 3))
    _lowp_weight(w)
    ce.clear_autocast_cache() if hasattr(ce, "clear_autocast_cache") else am.clear_autocast_cache()
    assert id(w) not in am._tls.persist


def test_training_matches_fresh_casts(nthreads):
    """an AdamW loop under autocast gives the same losses and weights with the buffers kept as
    with a fresh cast every step (bit for bit: the values cast are the same)"""
    def run(persist):
        ce.manual_seed(0)
        m = ce.nn.Sequential(ce.nn.Linear(9, 17), ce.nn.GELU(), ce.nn.Linear(17, 3))
        opt = ce.optim.AdamW(m.parameters(), lr=1e-2)
        x, y = ce.randn(11, 9), ce.randn(11, 3)
        losses = []
        for _ in range(5):
            if not persist:
                am._tls.persist.clear()
            with ce.autocast("cpu", dtype=ce.bfloat16):
                loss = ce.nn.functional.mse_loss(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, [p.detach().numpy().copy() for p in m.parameters()]
    la, pa = run(True)
    lb, pb = run(False)
    assert la == lb
    for a, b in zip(pa, pb):
        np.testing.assert_array_equal(a, b)
    assert la[-1] < la[0]


def test_gradient_reaches_float32_parameter():
    w = ce.nn.Parameter(ce.randn(4, 5))
    x = ce.randn(3, 4)
    for _ in range(2):               # second pass reuses the buffer
        w.grad = None
        with ce.autocast("cpu", dtype=ce.bfloat16):
            out = x @ w
        assert out.dtype == ce.bfloat16
        out.float().sum().backward()
        assert w.grad.dtype == ce.float32
        np.testing.assert_allclose(w.grad.numpy(), np.repeat(x.numpy().sum(0)[:, None], 5, 1),
                                   rtol=1e-2, atol=1e-2)


def test_parameter_viewing_a_flat_buffer_sees_writes_through_the_buffer():
    """p.data = flat.view(...) (a flat master buffer): an in-place op on the buffer does not bump
    p's version, so such a parameter gets a fresh cast per region, not a persistent copy"""
    lin = ce.nn.Linear(4, 2, bias=False)
    x = ce.ones(1, 4)
    flat = ce.zeros(8)
    lin.weight.data = flat.view(2, 4)
    with ce.autocast("cpu"):
        y0 = lin(x)
        y1 = x @ lin.weight.t()
    with ce.no_grad():
        flat.add_(1.0)
    with ce.autocast("cpu"):
        z0 = lin(x)
        z1 = x @ lin.weight.t()
    assert float(y0.float().abs().sum()) == 0 and float(y1.float().abs().sum()) == 0
    np.testing.assert_array_equal(z0.float().detach().numpy(), [[4.0, 4.0]])
    np.testing.assert_array_equal(z1.float().detach().numpy(), [[4.0, 4.0]])
