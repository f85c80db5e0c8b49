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
