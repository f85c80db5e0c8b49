"""bfloat16 autocast's fused paths against torch.autocast: a float32 activation goes into the
bf16 GEMM as it is (rounded while packed, no Cast node, its gradient float32 from the GEMM),
bfloat16 GEMM results are written by the kernel (no float32 copy), the bias gradient is a
float32-accumulated column sum."""
import numpy as np
import pytest

import cengine as ce
from cengine.ops import _half
from cengine import _C


def _to_np(t):
    return t.detach().float().numpy()


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "3d"])
def test_linear_on_float32_activation_matches_torch(layout, nthreads):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((6, 37, 48) if layout == "3d" else (37, 48)).astype(np.float32)
    w = (rng.standard_normal((29, 48)) * 0.2).astype(np.float32)
    b = rng.standard_normal(29).astype(np.float32)
    res = {}
    for m in (ce, torch):
        xl = m.tensor(x0.T.copy() if layout == "transposed" else x0, requires_grad=True)
        W, B = m.tensor(w, requires_grad=True), m.tensor(b, requires_grad=True)
        with m.autocast("cpu", dtype=m.bfloat16):
            h = xl.t() * 1.5 if layout == "transposed" else xl * 1.5     # a float32 activation
            y = m.nn.functional.linear(h, W, B)
            assert y.dtype == m.bfloat16
            if m is ce:
                # no Cast node between the activation and the product
                assert type(y.grad_fn.next_functions[0][0]).__name__ == "MulBackward0"
            loss = (y.float() ** 2).sum()
        loss.backward()
        assert xl.grad.dtype == m.float32 and W.grad.dtype == m.float32
        if m is ce:
            # the weight and bias gradients are the GEMM's / column sums' float32 values, not
            # rounded to bfloat16 on the way back to the float32 parameters
            for gr in (W.grad.numpy(), B.grad.numpy()):
                assert np.any(gr.view(np.uint32) & 0xFFFF)
        res[m.__name__] = [_to_np(y), xl.grad.numpy(), W.grad.numpy(), B.grad.numpy()]
    for a, t in zip(res["cengine"], res["torch"]):
        np.testing.assert_allclose(a, t, rtol=3e-2, atol=3e-2 * (np.abs(t).max() + 1))


def test_linear_mixed_forward_equals_cast_then_product():
    """rounding while packing is the same rounding as the Cast: bitwise the same output"""
    rng = np.random.default_rng(1)
    x = ce.tensor(rng.standard_normal((50, 70)).astype(np.float32))
    w = ce.tensor(rng.standard_normal((30, 70)).astype(np.float32), requires_grad=True)
    with ce.autocast("cpu"):
        y = ce.nn.functional.linear(x, w)
    y2 = ce.nn.functional.linear(x.bfloat16(), w.detach().bfloat16())
    np.testing.assert_array_equal(y.detach().numpy().view(np.uint16),
                                  y2.numpy().view(np.uint16))


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2048, 77), (4099, 3)])
def test_bf16_colsum_is_float32_sum_rounded_once(shape, nthreads):
    rng = np.random.default_rng(2)
    g = rng.standard_normal(shape).astype(np.float32)
    gb = _C.cast_f32_to_bf16(g).view(_half._BF16)
    got = _half.colsum(gb)
    assert got.dtype == _half._BF16 and got.shape == (shape[1],)
    s32 = _half.colsum(gb, f32=True)
    assert s32.dtype == np.float32
    np.testing.assert_array_equal(_C.cast_f32_to_bf16(s32), got.view(np.uint16))
    exact = gb.astype(np.float64).sum(axis=0)
    # float32 sums of M terms then one bfloat16 rounding
    tol = np.abs(exact) * 2.0 ** -8 + shape[0] * 2e-7 * np.abs(gb.astype(np.float64)).sum(axis=0)
    assert np.all(np.abs(got.astype(np.float64) - exact) <= tol + 1e-30)


@pytest.mark.parametrize("od", ["bf16", "f32"])
def test_half_gemm_writes_bf16_and_mixed_operands(od, nthreads):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 40, 24)).astype(np.float32)
    bm = rng.standard_normal((2, 3, 24, 18)).astype(np.float32)
    ab = _C.cast_f32_to_bf16(a).view(_half._BF16)
    bb = _C.cast_f32_to_bf16(bm).view(_half._BF16)
    want = ab.astype(np.float32) @ bb.astype(np.float32)
    for x, y in [(ab, bb), (a, bb), (ab, bm), (np.swapaxes(np.swapaxes(ab, -1, -2).copy(), -1, -2), bb)]:
        out = np.empty((2, 3, 40, 18), _half._BF16 if od == "bf16" else np.float32)
        _half.gemm(x, y, out)
        np.testing.assert_allclose(out.astype(np.float32), want, rtol=1e-2, atol=1e-2)
    # a head-view output whose batch dims do not merge
    big = np.zeros((2, 40, 3, 18), _half._BF16 if od == "bf16" else np.float32)
    out = big.transpose(0, 2, 1, 3)
    _half.gemm(ab, bb, out)
    np.testing.assert_allclose(out.astype(np.float32), want, rtol=1e-2, atol=1e-2)
    with pytest.raises(RuntimeError, match="same dtype"):
        _half.gemm(a.astype(np.float16), bb, np.empty((2, 3, 40, 18), np.float32))


def _block_attention(m, x, wqkv, heads, mask_kind):
    """the usual block: fused qkv projection, chunk, head views, sdpa, heads merged back"""
    b, t, d = x.shape
    F = m.nn.functional
    q, k, v = F.linear(x, wqkv).chunk(3, dim=-1)
    q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))
    kw = {}
    if mask_kind == "causal":
        kw["is_causal"] = True
    elif mask_kind == "bool":
        kw["attn_mask"] = m.tensor(np.tril(np.ones((t, t), bool)) | np.eye(t, k=3, dtype=bool))
    elif mask_kind == "float":
        kw["attn_mask"] = m.tensor(np.random.default_rng(9).standard_normal((t, t))
                                   .astype(np.float32))
    a = F.scaled_dot_product_attention(q, k, v, **kw)
    return a.transpose(1, 2).reshape(b, t, d)


@pytest.mark.parametrize("mask_kind", ["none", "causal", "bool", "float"])
def test_bf16_attention_matches_torch_autocast(mask_kind, nthreads):
    torch = pytest.importorskip("torch")
    from cengine.ops.shape import Split
    rng = np.random.default_rng(4)
    b, t, d, heads = 3, 19, 32, 4
    x0 = rng.standard_normal((b, t, d)).astype(np.float32)
    w0 = (rng.standard_normal((3 * d, d)) * 0.3).astype(np.float32)
    go = rng.standard_normal((b, t, d)).astype(np.float32)
    res = {}
    for m in (ce, torch):
        x, w = m.tensor(x0, requires_grad=True), m.tensor(w0, requires_grad=True)
        with m.autocast("cpu", dtype=m.bfloat16):
            a = _block_attention(m, x, w, heads, mask_kind)
            assert a.dtype == m.bfloat16
            if m is ce:
                # the attention node takes the bf16 head views directly (no casts around it)
                assert type(a.grad_fn).__name__ == "ReshapeBackward0"
            loss = (a.float() * m.tensor(go)).sum()
        taken = Split.PACKED_TAKEN[0]
        loss.backward()
        if m is ce:     # q/k/v gradients written into one packed buffer, no concatenation
            assert Split.PACKED_TAKEN[0] == taken + 1
        res[m.__name__] = [_to_np(a), x.grad.numpy(), w.grad.numpy()]
    for got, want in zip(res["cengine"], res["torch"]):
        np.testing.assert_allclose(got, want, rtol=5e-2, atol=3e-2 * (np.abs(want).max() + 1))


def test_bf16_attention_close_to_float32_attention():
    """the bf16 path is the float32 computation on bfloat16-rounded q/k/v with P rounded for
    the P V product: within bf16 rounding of the float32 attention of the same inputs"""
    rng = np.random.default_rng(5)
    q, k, v = (ce.tensor(rng.standard_normal((2, 3, 23, 16)).astype(np.float32)).bfloat16()
               for _ in range(3))
    for t in (q, k, v):
        t.requires_grad_(True)
    o = ce.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert o.dtype is ce.bfloat16
    g = rng.standard_normal(o.shape).astype(np.float32)
    (o.float() * ce.tensor(g)).sum().backward()
    q32, k32, v32 = (ce.tensor(t.detach().float().numpy(), requires_grad=True) for t in (q, k, v))
    o32 = ce.nn.functional.scaled_dot_product_attention(q32, k32, v32, is_causal=True)
    (o32 * ce.tensor(g)).sum().backward()
    np.testing.assert_allclose(_to_np(o), o32.detach().numpy(), rtol=2e-2, atol=2e-2)
    for a, b in ((q, q32), (k, k32), (v, v32)):
        assert a.grad.dtype is ce.bfloat16
        np.testing.assert_allclose(a.grad.float().numpy(), b.grad.numpy(), rtol=3e-2,
                                   atol=3e-2 * (np.abs(b.grad.numpy()).max() + 1))


def test_mixed_float32_bf16_add_one_pass_and_grads():
    """x (float32) + y (bfloat16): one node, the bits of casting y first, float32 result;
    y's gradient bfloat16 (the cast's backward), x's float32; either operand order"""
    rng = np.random.default_rng(6)
    x0 = rng.standard_normal((64, 130)).astype(np.float32)
    y0 = rng.standard_normal((64, 130)).astype(np.float32)
    g = rng.standard_normal((64, 130)).astype(np.float32)
    for order in (0, 1):
        x = ce.tensor(x0, requires_grad=True)
        y = ce.tensor(y0).bfloat16().requires_grad_(True)
        z = x + y if order == 0 else y + x
        assert z.dtype is ce.float32
        assert type(z.grad_fn).__name__ == "_AddF32BF16Backward0"
        want = x0 + y.detach().float().numpy()
        np.testing.assert_array_equal(z.detach().numpy(), want)
        z.backward(ce.tensor(g))
        np.testing.assert_array_equal(x.grad.numpy(), g)
        assert y.grad.dtype is ce.bfloat16
        np.testing.assert_array_equal(y.grad.numpy().view(np.uint16), _C.cast_f32_to_bf16(g))
    # small, broadcast or strided operands keep the general path (a cast node), same values
    z = ce.tensor(x0[:, :1]) + ce.tensor(y0).bfloat16()
    np.testing.assert_array_equal(z.numpy(), x0[:, :1] + ce.tensor(y0).bfloat16().float().numpy())


# ------------------------------------------------------------ optimizer-refreshed autocast copies
# SGD and Adam/AdamW on float32 parameters write each updated parameter's autocast copy
# (bfloat16 / float16) in the same pass (optim.h *_lowp), so the next region reuses it.
_LOWP_SIZES = [1, 7, 16, 4095, 4097, 70001]      # > 2 x 32768 in all: two threads split the group


def _lowp_group(seed, dt):
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(n).astype(np.float32) for n in _LOWP_SIZES]
    gs = [rng.standard_normal(n).astype(np.float32) for n in _LOWP_SIZES]
    hs = [np.full(n, 7, np.uint16).view(dt) for n in _LOWP_SIZES]
    hs[2] = None                                  # a parameter without a copy
    return ps, gs, hs


def _cast_bits(p, f16):
    return (_C.cast_f32_to_f16 if f16 else _C.cast_f32_to_bf16)(p).view(np.uint16)


def _lowp_run(kind, ps, gs, hs, f16, reference=False, steps=2):
    """`steps` updates of (copies of) ps, with lowp=hs when hs is not None; returns the params"""
    ps = [p.copy() for p in ps]
    if kind == "sgd":
        bufs = [np.zeros_like(p) for p in ps]
        for s in range(steps):
            kw = {} if hs is None else dict(lowp=hs, lowp_f16=f16)
            _C.sgd_step(ps, gs, bufs, [s == 0] * len(ps), 0.1, momentum=0.9, dampening=0.1,
                        weight_decay=1e-2, reference=reference, **kw)
    else:
        m = [np.zeros_like(p) for p in ps]
        v = [np.zeros_like(p) for p in ps]
        vx = [np.zeros_like(p) for p in ps]
        for s in range(steps):
            kw = {} if hs is None else dict(lowp=hs, lowp_f16=f16)
            _C.adam_step(ps, gs, m, v, vx if kind == "amsgrad" else None, [s + 1] * len(ps),
                         1e-2, weight_decay=1e-2, amsgrad=kind == "amsgrad",
                         decoupled=kind == "adamw", reference=reference, **kw)
    return ps


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw", "amsgrad"])
@pytest.mark.parametrize("f16", [False, True])
def test_optimizer_refreshes_autocast_copies(kind, f16, isa, nthreads):
    dt = np.float16 if f16 else _half._BF16
    ps, gs, hs = _lowp_group(3, dt)
    plain = _lowp_run(kind, ps, gs, None, f16)
    fused = _lowp_run(kind, ps, gs, hs, f16)
    for i, (a, b) in enumerate(zip(plain, fused)):
        np.testing.assert_array_equal(a, b)       # the update itself is unchanged
        if hs[i] is None:
            continue
        assert hs[i].dtype == dt
        np.testing.assert_array_equal(hs[i].view(np.uint16), _cast_bits(b, f16))
    # the references: the plain update, then the scalar casts
    _, _, hr = _lowp_group(3, dt)
    ref = _lowp_run(kind, ps, gs, hr, f16, reference=True)
    for i, (a, b) in enumerate(zip(ref, fused)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        if hr[i] is not None:
            want = (_C.cast_f32_to_f16 if f16 else _C.cast_f32_to_bf16)(a, ref=True)
            np.testing.assert_array_equal(hr[i].view(np.uint16), want.view(np.uint16))


def test_optimizer_lowp_bad_inputs():
    ps = [np.ones(5, np.float32), np.ones(3, np.float32)]
    gs = [np.ones(5, np.float32), np.ones(3, np.float32)]
    bf = _half._BF16
    with pytest.raises(ValueError, match="lowp must be a list of 2"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[None])
    with pytest.raises(ValueError, match="lowp\\[1\\] has 4 elements but params\\[1\\] has 3"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[None, np.zeros(4, bf)])
    with pytest.raises(TypeError, match="lowp\\[0\\] must be a bfloat16"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[np.zeros(5, np.float16), None])
    with pytest.raises(TypeError, match="lowp\\[0\\] must be a float16"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[np.zeros(5, bf), None], lowp_f16=True)
    with pytest.raises(ValueError, match="writable aligned C-contiguous"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[np.zeros(10, bf)[::2], None])
    ro = np.zeros(5, bf)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable aligned C-contiguous"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[ro, None])
    with pytest.raises(ValueError, match="a lowp array overlaps another array of the call"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[ps[0][:3].view(bf)[:5], None])
    h = np.zeros(8, bf)
    with pytest.raises(ValueError, match="a lowp array overlaps another array of the call"):
        _C.sgd_step(ps, gs, None, None, 0.1, lowp=[h[:5], h[3:6]])
    m, v = [np.zeros(5, np.float32)], [np.zeros(5, np.float32)]
    with pytest.raises(ValueError, match="a lowp array overlaps another array of the call"):
        _C.adam_step(ps[:1], gs[:1], m, v, None, [1], 0.1, lowp=[v[0].view(bf)[:5]])
    # many tensors (the sorted sweep): clean, then one copy inside the last gradient
    n = 300
    pp = [np.ones(3 + i % 5, np.float32) for i in range(n)] + [np.ones(0, np.float32)]
    gg = [np.ones_like(p) for p in pp]
    hh = [np.zeros(p.size, bf) for p in pp]
    _C.sgd_step(pp, gg, None, None, 0.5, lowp=hh)
    assert all(np.all(h.astype(np.float32) == 0.5) for h in hh)
    hh[7] = gg[-2].view(np.uint16)[:hh[7].size].view(bf)
    with pytest.raises(ValueError, match="a lowp array overlaps another array of the call"):
        _C.sgd_step(pp, gg, None, None, 0.5, lowp=hh)
    p64 = [np.ones(5)]
    with pytest.raises(TypeError, match="needs float32 parameters"):
        _C.sgd_step(p64, [np.ones(5)], None, None, 0.1, lowp=[np.zeros(5, bf)])
    assert np.all(ps[0] == 1) and np.all(ps[1] == 1)     # nothing was updated


def _mlp_step_setup(opt_name, seed=0):
    ce.manual_seed(seed)
    m = ce.nn.Sequential(ce.nn.Linear(9, 33), ce.nn.ReLU(), ce.nn.Linear(33, 4))
    opt = (ce.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) if opt_name == "sgd"
           else ce.optim.AdamW(m.parameters(), lr=1e-2))
    return m, opt


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_step_leaves_current_copies_and_training_is_unchanged(opt_name, dtype, nthreads):
    """after opt.step() the persistent copies hold the cast of the updated weights (the next
    region casts nothing), and the losses and weights of a loop are bit for bit those of a loop
    that casts afresh every step"""
    from cengine.amp import autocast_mode as am
    dt = getattr(ce, dtype)
    x, y = ce.randn(13, 9), ce.randint(0, 4, (13,))

    def run(fresh):
        m, opt = _mlp_step_setup(opt_name)
        losses = []
        for _ in range(4):
            if fresh:
                am._tls.persist.clear()
            with ce.autocast("cpu", dtype=dt):
                loss = ce.nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if not fresh:
                for p in m.parameters():
                    e = am._tls.persist[id(p)]
                    assert e.version == p._version[0] and e.out_version[0] == 0
                    want = p._data.astype(np.float16) if dtype == "float16" else \
                        _C.cast_f32_to_bf16(p._data).view(_half._BF16)
                    np.testing.assert_array_equal(e.buf.view(np.uint16), want.view(np.uint16))
        return losses, [p.detach().numpy().copy() for p in m.parameters()]
    # the next region takes the copies as they are: no cast kernel runs for the parameters
    la, pa = run(False)
    lb, pb = run(True)
    assert la == lb
    for a, b in zip(pa, pb):
        np.testing.assert_array_equal(a, b)


def test_step_does_not_refresh_copies_still_held(monkeypatch):
    """a copy something still holds (a graph not backpropagated) is left alone by the step"""
    from cengine.amp import autocast_mode as am
    m, opt = _mlp_step_setup("sgd")
    x, y = ce.randn(5, 9), ce.randint(0, 4, (5,))
    with ce.autocast("cpu"):
        loss = ce.nn.functional.cross_entropy(m(x), y)
    loss.backward()
    with ce.autocast("cpu"):
        kept = m(x)                       # its graph holds the bfloat16 weights
    w = m[0].weight
    held = am._tls.persist[id(w)].buf
    before = held.copy()
    opt.step()
    np.testing.assert_array_equal(held.view(np.uint16), before.view(np.uint16))
    assert am._tls.persist[id(w)].version != w._version[0]     # refilled when next cast
    with ce.autocast("cpu"):
        c = am.cast_lowp(w)
    np.testing.assert_array_equal(c._data.view(np.uint16),
                                  _C.cast_f32_to_bf16(w._data).view(np.uint16))
    del kept


def test_next_region_casts_no_parameter(monkeypatch):
    """the cast kernel is not called for the parameters in the region after a step"""
    m, opt = _mlp_step_setup("adamw")
    x, y = ce.randn(5, 9), ce.randint(0, 4, (5,))
    calls = []
    orig = _C.cast_f32_to_bf16

    def counting(a, out=None):
        calls.append(a.shape)
        return orig(a, out=out)

    for step in range(3):
        if step == 2:
            monkeypatch.setattr(_C, "cast_f32_to_bf16", counting)
        with ce.autocast("cpu"):
            loss = ce.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    shapes = {tuple(p.shape) for p in m.parameters()}
    assert not [s for s in calls if tuple(s) in shapes]


# ------------------------------------------------------------ F.linear on float32 parameters
# In a bfloat16 CPU region F.linear on float32 leaf parameters is one node that reads their
# persistent bfloat16 copies (no cast nodes); values and gradients are those of the cast path.
def _linear_case(layout, bias, xgrad, seed=0):
    rng = np.random.default_rng(seed)
    K, N = (1, 1) if layout == "1x1" else (37, 29)
    shape = {"2d": (23, K), "1x1": (1, K), "3d": (3, 5, K), "t": (K, 23), "empty": (0, K),
             "bf16": (23, K)}[layout]
    x0 = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal((N, K)) * 0.3).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32) if bias else None
    return x0, w, b


def _linear_run(x0, w, b, layout, xgrad, fused):
    xl = ce.tensor(x0, requires_grad=xgrad)
    W = ce.nn.Parameter(ce.tensor(w))
    B = ce.nn.Parameter(ce.tensor(b)) if b is not None else None
    with ce.autocast("cpu", cache_enabled=fused):
        h = xl.t() if layout == "t" else xl
        if layout == "bf16":
            h = h.bfloat16()
        y = ce.nn.functional.linear(h, W, B)
        loss = (y.float() * ce.linspace(-1, 1, y.shape[-1])).sum()
    loss.backward()
    return y, [y, xl.grad, W.grad, None if B is None else B.grad]


@pytest.mark.parametrize("layout", ["2d", "1x1", "3d", "t", "empty", "bf16"])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_autocast_linear_equals_cast_path(layout, bias, nthreads):
    xgrad = layout != "empty"
    x0, w, b = _linear_case(layout, bias, xgrad)
    y, got = _linear_run(x0, w, b, layout, xgrad, True)
    assert type(y.grad_fn).__name__ == "_LinearAutocastBackward0"
    assert y.dtype == ce.bfloat16
    # the parameters are the node's inputs: no cast nodes between
    assert type(y.grad_fn.next_functions[1][0]).__name__ == "AccumulateGrad"
    y2, want = _linear_run(x0, w, b, layout, xgrad, False)   # cache off: the cast-node path
    assert type(y2.grad_fn).__name__ != "_LinearAutocastBackward0"
    for a, c in zip(got, want):
        if c is None:
            assert a is None
            continue
        assert a.dtype == c.dtype
        np.testing.assert_array_equal(a.detach().numpy().view(np.uint8),
                                      c.detach().numpy().view(np.uint8))
    assert got[2].dtype == ce.float32 and (not bias or got[3].dtype == ce.float32)


def test_fused_autocast_linear_matches_torch(nthreads):
    torch = pytest.importorskip("torch")
    x0, w, b = _linear_case("3d", True, True, seed=4)
    res = {}
    for m in (ce, torch):
        xl = m.tensor(x0, requires_grad=True)
        W, B = m.tensor(w, requires_grad=True), m.tensor(b, requires_grad=True)
        with m.autocast("cpu", dtype=m.bfloat16):
            y = m.nn.functional.linear(xl, W, B)
            loss = (y.float() ** 2).sum()
        loss.backward()
        assert y.dtype == m.bfloat16 and W.grad.dtype == m.float32 and xl.grad.dtype == m.float32
        res[m.__name__] = [_to_np(y), xl.grad.numpy(), W.grad.numpy(), B.grad.numpy()]
    # the forward is bit for bit torch's (the same bfloat16 operands, one rounding of sums)
    for a, t in zip(res["cengine"], res["torch"]):
        np.testing.assert_allclose(a, t, rtol=3e-2, atol=3e-2 * (np.abs(t).max() + 1))


def test_fused_autocast_linear_casts_weight_once(monkeypatch):
    """two uses of a weight in a region: one cast kernel call; a second region after no change:
    none"""
    x = ce.randn(6, 8)
    W = ce.nn.Parameter(ce.randn(5, 8))
    calls = []
    orig = _C.cast_f32_to_bf16

    def counting(a, out=None):
        if a.shape == (5, 8):            # the weight's casts (not the gradients' below)
            calls.append(a.shape)
        return orig(a, out=out)
    monkeypatch.setattr(_C, "cast_f32_to_bf16", counting)
    with ce.autocast("cpu"):
        y = ce.nn.functional.linear(x, W) + ce.nn.functional.linear(x * 2, W)
    assert calls == [(5, 8)]
    y.float().sum().backward()
    with ce.autocast("cpu"):
        ce.nn.functional.linear(x, W)
    assert calls == [(5, 8)]
    with ce.no_grad():
        W.mul_(0.5)                     # a new version: cast again
    with ce.autocast("cpu"):
        y = ce.nn.functional.linear(x, W)
    assert calls == [(5, 8), (5, 8)]
    np.testing.assert_array_equal(
        y.detach().float().numpy(),
        ce.nn.functional.linear(x.bfloat16(), W.detach().bfloat16()).float().numpy())


@pytest.mark.parametrize("case", ["float16", "frozen_weight", "frozen_bias", "scalar_bias",
                                  "cache_off"])
def test_fused_autocast_linear_falls_back(case):
    x = ce.randn(4, 8)
    W = ce.nn.Parameter(ce.randn(3, 8), requires_grad=case != "frozen_weight")
    B = ce.nn.Parameter(ce.randn(() if case == "scalar_bias" else 3),
                        requires_grad=case != "frozen_bias")
    dt = ce.float16 if case == "float16" else ce.bfloat16
    with ce.autocast("cpu", dtype=dt, cache_enabled=case != "cache_off"):
        y = ce.nn.functional.linear(x, W, B)
    assert type(y.grad_fn).__name__ != "_LinearAutocastBackward0"
    assert y.dtype == dt
