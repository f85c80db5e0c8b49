"""bfloat16 activations (cengine._C.act_forward_bf16 / act_backward_bf16, src_c/act_half.c)
against the float32 kernels on the exact values with one rounding (the bits of the cast ->
float32 activation -> cast chain), on every ISA path and 1/2 threads; the bfloat16 tensor
activations take them and match torch."""
import ml_dtypes
import numpy as np
import pytest

import cengine as ce
from cengine import _C

BF = ml_dtypes.bfloat16
KINDS = list(_C.ACT_KINDS)
SIZES = [0, 1, 17, 1023, 1025, 40000]


def bits(a):
    return np.asarray(a).view(np.uint16)


def rnd(f32):
    return _C.cast_f32_to_bf16(np.ascontiguousarray(f32, np.float32), ref=True)


@pytest.mark.parametrize("kind", KINDS)
def test_act_bf16_equals_float32_chain(isa, nthreads, kind):
    rng = np.random.default_rng(KINDS.index(kind))
    for n in SIZES:
        x = (rng.standard_normal(n) * 3).astype(np.float32).astype(BF)
        if n > 5:
            x[:3] = [np.nan, np.inf, -np.inf]
        alpha = 0.2 if kind == "leaky_relu" else (1.5 if kind == "softplus" else None)
        x32 = x.astype(np.float32)
        y32 = _C.act_forward(kind, x32, None, alpha)
        want = rnd(y32)
        np.testing.assert_array_equal(bits(_C.act_forward_bf16(kind, x, None, alpha)), want)
        np.testing.assert_array_equal(bits(_C.act_forward_bf16(kind, x, None, alpha, ref=True)),
                                      rnd(_C.act_forward_ref(kind, x32, None, alpha)))
        g = rng.standard_normal(n).astype(np.float32).astype(BF)
        uses_y = _C.act_backward_uses(kind) == "y"
        s = want.view(BF) if uses_y else x
        s32 = s.astype(np.float32)
        kw = dict(y=s32) if uses_y else dict(x=s32)
        gwant = rnd(_C.act_backward(kind, g.astype(np.float32), alpha=alpha, **kw))
        np.testing.assert_array_equal(bits(_C.act_backward_bf16(kind, g, s, None, alpha)), gwant)
        gref = rnd(_C.act_backward_ref(kind, g.astype(np.float32), alpha=alpha, **kw))
        np.testing.assert_array_equal(bits(_C.act_backward_bf16(kind, g, s, None, alpha,
                                                                ref=True)), gref)


def test_act_bf16_in_place_and_bad_input(isa):
    x = np.linspace(-3, 3, 3001).astype(np.float32).astype(BF)
    want = bits(_C.act_forward_bf16("silu", x)).copy()
    x2 = x.copy()
    assert _C.act_forward_bf16("silu", x2, x2) is x2
    np.testing.assert_array_equal(bits(x2), want)
    with pytest.raises(ValueError, match="unknown activation"):
        _C.act_forward_bf16("swish", x)
    with pytest.raises(TypeError, match="bfloat16"):
        _C.act_forward_bf16("relu", np.ones(3, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.act_forward_bf16("relu", x[::2])
    with pytest.raises(ValueError, match="does not match"):
        _C.act_backward_bf16("relu", x, x[:10])


@pytest.mark.parametrize("name", ["relu", "silu", "gelu", "sigmoid", "tanh"])
def test_bf16_tensor_activations_match_torch(name, nthreads):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((64, 300)) * 2).astype(np.float32)
    g = rng.standard_normal((64, 300)).astype(np.float32)
    res = {}
    for m in (ce, torch):
        t = m.tensor(x).bfloat16().requires_grad_(True)
        y = getattr(m.nn.functional, name)(t)
        assert y.dtype == m.bfloat16
        y.backward(m.tensor(g).bfloat16())
        res[m.__name__] = (y.float().detach().numpy(), t.grad.float().numpy())
    for a, b in zip(res["cengine"], res["torch"]):
        np.testing.assert_allclose(a, b, rtol=1.6e-2, atol=1e-2)
