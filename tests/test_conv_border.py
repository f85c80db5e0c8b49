"""conv2d with an inf / NaN in the weight: the outputs (and stride-1 input gradients) whose
window touches the padding hold only the real terms (no 0 * inf = NaN from the padding), as
PyTorch's oneDNN path gives them; the plain references agree with the drivers."""
import numpy as np
import pytest

import cengine as ce
from cengine import _C


def _out(h, k, s, p, d):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


CASES = [(2, 3, 5, 7, 3, 1, 1, 1), (2, 64, 64, 6, 3, 1, 1, 1), (2, 64, 64, 7, 3, 2, 1, 1),
         (2, 3, 4, 9, 3, 1, 2, 2), (1, 1, 1, 1, 1, 1, 0, 1)]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_drivers_match_reference(dt, case):
    N, C, O, H, K, s, p, d = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, H)).astype(dt)
    w = rng.standard_normal((O, C, K, K)).astype(dt)
    b = rng.standard_normal(O).astype(dt)
    OH = _out(H, K, s, p, d)
    geo = ((s, s), (p, p), (d, d), 1)
    y = _C.conv2d_forward(x, w, b, *geo, (OH, OH))
    yr = _C.conv2d_forward_ref(x, w, b, *geo, (OH, OH))
    tol = 1e-4 if dt == np.float32 else 1e-10
    np.testing.assert_allclose(y, yr, rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(dt)
    dx = _C.conv2d_backward(dy, x, w, *geo, True, False, False)[0]
    np.testing.assert_allclose(dx, _C.conv2d_dgrad_ref(dy, x.shape, w, *geo), rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("val", [np.inf, np.nan])
@pytest.mark.parametrize("tap", [(0, 0), (2, 2), (1, 1)])
@pytest.mark.parametrize("case", CASES[:4])
def test_nonfinite_weight_borders(val, tap, case):
    N, C, O, H, K, s, p, d = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((O, C, K, K)).astype(np.float32)
    w[0, 0, tap[0], tap[1]] = val
    OH = _out(H, K, s, p, d)
    geo = ((s, s), (p, p), (d, d), 1)
    y = _C.conv2d_forward(x, w, None, *geo, (OH, OH))
    yr = _C.conv2d_forward_ref(x, w, None, *geo, (OH, OH))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(yr))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(yr))
    fin = np.isfinite(yr)
    np.testing.assert_allclose(y[fin], yr[fin], rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = _C.conv2d_backward(dy, x, w, *geo, True, False, False)[0]
    dxr = _C.conv2d_dgrad_ref(dy, x.shape, w, *geo)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(dxr))
    fin = np.isfinite(dxr)
    np.testing.assert_allclose(dx[fin], dxr[fin], rtol=1e-4, atol=1e-4)
    # the padding terms are absent: the reference itself has no NaN for an inf weight
    if np.isinf(val):
        assert not np.isnan(yr).any() and not np.isnan(dxr).any()


def test_nonfinite_weight_vs_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 6, 6)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    w[0, 0, 0, 0] = np.inf
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, torch.tensor(w), None, 1, 1)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g))
    cx = ce.tensor(x, requires_grad=True)
    cy = ce.nn.functional.conv2d(cx, ce.tensor(w), None, 1, 1)
    cy.backward(ce.tensor(g))
    for a, b in ((cy.detach().numpy(), yt.detach().numpy()), (cx.grad.numpy(), xt.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
        fin = np.isfinite(b)
        np.testing.assert_allclose(a[fin], b[fin], rtol=1e-4, atol=1e-3)
