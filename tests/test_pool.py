"""Pools (max / avg / adaptive, 1-D and 2-D), BatchNorm2d, Dropout1d / Dropout2d.

Forward against numpy references written here, gradients by float64 gradcheck, torch parity
(values, indices, running statistics) where torch is installed; the C kernels on 1/2 threads
and against their *_ref twins; bad input raises torch's errors."""
import math
import warnings

import numpy as np
import pytest

import cengine as ce
from cengine import _C, nn
from cengine.autograd import gradcheck
from cengine.nn import functional as F


def rnd(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _out(n, k, s, p, d, ceil):
    num = n + 2 * p - d * (k - 1) - 1
    o = (-(-num // s) if ceil else num // s) + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


# ------------------------------------------------------------------------- numpy references
def np_max_pool2d(x, k, s, p, d, ceil):
    """x (..., H, W): max over windows, -inf padding."""
    H, W = x.shape[-2:]
    OH, OW = _out(H, k[0], s[0], p[0], d[0], ceil), _out(W, k[1], s[1], p[1], d[1], ceil)
    y = np.empty(x.shape[:-2] + (OH, OW), x.dtype)
    for i in range(OH):
        for j in range(OW):
            rows = [r for r in range(i * s[0] - p[0], i * s[0] - p[0] + d[0] * k[0], d[0])
                    if 0 <= r < H]
            cols = [c for c in range(j * s[1] - p[1], j * s[1] - p[1] + d[1] * k[1], d[1])
                    if 0 <= c < W]
            y[..., i, j] = x[..., rows, :][..., cols].max(axis=(-1, -2))
    return y


def np_avg_pool2d(x, k, s, p, ceil, cip, div):
    H, W = x.shape[-2:]
    OH, OW = _out(H, k[0], s[0], p[0], 1, ceil), _out(W, k[1], s[1], p[1], 1, ceil)
    y = np.empty(x.shape[:-2] + (OH, OW), x.dtype)
    for i in range(OH):
        for j in range(OW):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], H + p[0]), min(w0 + k[1], W + p[1])
            pool = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            n = div if div else (pool if cip else (h1 - h0) * (w1 - w0))
            y[..., i, j] = x[..., h0:h1, w0:w1].sum(axis=(-1, -2)) / n
    return y


def np_adaptive(x, out, fn):
    H, W = x.shape[-2:]
    y = np.empty(x.shape[:-2] + tuple(out), x.dtype)
    for i in range(out[0]):
        h0, h1 = (i * H) // out[0], -(-((i + 1) * H) // out[0])
        for j in range(out[1]):
            w0, w1 = (j * W) // out[1], -(-((j + 1) * W) // out[1])
            y[..., i, j] = fn(x[..., h0:h1, w0:w1], axis=(-1, -2))
    return y


MAX_GRID = [
    # (shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((2, 3, 9, 7), 2, None, 0, 1, False),
    ((1, 2, 9, 7), 2, None, 0, 1, True),
    ((2, 2, 10, 11), (3, 2), (2, 1), (1, 1), (1, 2), False),
    ((1, 3, 7, 7), 3, 2, 1, 1, True),
    ((3, 5, 6), 3, 1, 1, 2, False),        # unbatched
    ((1, 1, 5, 5), 5, 3, 2, 1, True),
    ((1, 1, 1, 1), 1, None, 0, 1, False),
    ((2, 1, 6, 13), (2, 4), (4, 5), (1, 2), 1, True),   # stride > kernel
]


def _t2(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("case", MAX_GRID)
def test_max_pool2d_matches_numpy_and_gradcheck(case):
    shape, k, s, p, d, ceil = case
    x = rnd(shape)
    y, idx = F.max_pool2d(ce.tensor(x), k, s, p, d, ceil, return_indices=True)
    want = np_max_pool2d(x, _t2(k), _t2(s if s is not None else k), _t2(p), _t2(d), ceil)
    np.testing.assert_array_equal(y.numpy(), want)
    assert idx.dtype == ce.int64 and idx.shape == y.shape
    H, W = shape[-2:]
    flat = x.reshape(-1, H * W)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.numpy().reshape(flat.shape[0], -1),
                                                     1).reshape(want.shape), want)
    if x.size <= 200:
        xt = ce.tensor(x, requires_grad=True)
        assert gradcheck(lambda t: F.max_pool2d(t, k, s, p, d, ceil), (xt,))


@pytest.mark.parametrize("case", [
    ((2, 3, 9, 9), 3, None, 0, True, True, None),
    ((2, 3, 9, 8), (3, 2), (2, 1), (1, 1), False, True, None),
    ((2, 3, 9, 8), (3, 2), (2, 1), (1, 1), False, False, None),
    ((1, 2, 7, 7), 3, 2, 1, True, True, None),
    ((1, 2, 7, 7), 3, 2, 1, True, False, None),
    ((1, 2, 7, 7), 3, 2, 1, False, True, 5),
    ((3, 5, 6), 2, 1, 1, False, True, None),
])
def test_avg_pool2d_matches_numpy_and_gradcheck(case):
    shape, k, s, p, ceil, cip, div = case
    x = rnd(shape)
    y = F.avg_pool2d(ce.tensor(x), k, s, p, ceil, cip, div)
    want = np_avg_pool2d(x, _t2(k), _t2(s if s is not None else k), _t2(p), ceil, cip, div)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-12)
    xt = ce.tensor(x, requires_grad=True)
    if x.size <= 200:
        assert gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil, cip, div), (xt,))


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 9), (3, 4)), ((2, 3, 5, 5), 1),
                                       ((1, 2, 4, 6), (7, 3)), ((3, 5, 8), (None, 3)),
                                       ((1, 1, 6, 6), 6)])
def test_adaptive_pools_2d(shape, out):
    x = rnd(shape)
    o = (out, out) if isinstance(out, int) else tuple(shape[-2 + i] if v is None else v
                                                      for i, v in enumerate(out))
    y = F.adaptive_avg_pool2d(ce.tensor(x), out)
    np.testing.assert_allclose(y.numpy(), np_adaptive(x, o, np.mean), rtol=1e-12, atol=1e-12)
    ym, idx = F.adaptive_max_pool2d(ce.tensor(x), out, return_indices=True)
    np.testing.assert_array_equal(ym.numpy(), np_adaptive(x, o, np.max))
    if x.size <= 120:
        xt = ce.tensor(x, requires_grad=True)
        assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, out), (xt,))
        assert gradcheck(lambda t: F.adaptive_max_pool2d(t, out), (xt,))


def test_pools_1d():
    x = rnd((2, 3, 11))
    x4 = x[:, :, None]
    np.testing.assert_array_equal(F.max_pool1d(ce.tensor(x), 3, 2, 1, 2, True).numpy(),
                                  np_max_pool2d(x4, (1, 3), (1, 2), (0, 1), (1, 2), True)[:, :, 0])
    want = np_avg_pool2d(x4, (1, 4), (1, 3), (0, 2), True, False, None)[:, :, 0]
    np.testing.assert_allclose(F.avg_pool1d(ce.tensor(x), 4, 3, 2, True, False).numpy(), want)
    np.testing.assert_allclose(F.adaptive_avg_pool1d(ce.tensor(x), 4).numpy(),
                               np_adaptive(x4, (1, 4), np.mean)[:, :, 0])
    np.testing.assert_array_equal(F.adaptive_max_pool1d(ce.tensor(x[0]), 5).numpy(),
                                  np_adaptive(x4[0], (1, 5), np.max)[:, 0])
    xt = ce.tensor(x[:1], requires_grad=True)
    assert gradcheck(lambda t: F.max_pool1d(t, 2), (xt,))
    assert gradcheck(lambda t: F.avg_pool1d(t, 3, 2, 1), (xt,))
    assert gradcheck(lambda t: F.adaptive_avg_pool1d(t, 4), (xt,))


# ------------------------------------------------------------------------- torch parity
@pytest.mark.parametrize("case", MAX_GRID)
def test_pools_match_torch(case):
    torch = pytest.importorskip("torch")
    shape, k, s, p, d, ceil = case
    x = rnd(shape, np.float32, 3)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.max_pool2d(xt, k, s, p, d, ceil, return_indices=True)
    xc = ce.tensor(x, requires_grad=True)
    m = nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil)
    yc, ic = m(xc)
    np.testing.assert_array_equal(yc.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(ic.numpy(), it.numpy())
    g = rnd(tuple(yt.shape), np.float32, 4)
    yt.backward(torch.tensor(g))
    yc.backward(ce.tensor(g))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
    if d == 1:
        for cip in (True, False):
            ya = torch.nn.functional.avg_pool2d(torch.tensor(x), k, s, p, ceil, cip)
            yb = nn.AvgPool2d(k, s, p, ceil, cip)(ce.tensor(x))
            np.testing.assert_allclose(yb.numpy(), ya.numpy(), rtol=1e-6, atol=1e-6)
    for out in ((2, 3), 1, (5, None)):
        for mod, tmod in ((nn.AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d),
                          (nn.AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool2d)):
            np.testing.assert_allclose(mod(out)(ce.tensor(x)).numpy(),
                                       tmod(out)(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)
        _, ia = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), out, True)
        _, ib = F.adaptive_max_pool2d(ce.tensor(x), out, True)
        np.testing.assert_array_equal(ib.numpy(), ia.numpy())


def test_pools_1d_match_torch():
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = rnd((2, 3, 12), np.float32, 7)
    for args, ceil in [((3,), False), ((3, 2, 1, 2), True), ((2, 3, 1, 1), False)]:
        a, ia = TF.max_pool1d(torch.tensor(x), *args, ceil_mode=ceil, return_indices=True)
        b, ib = nn.MaxPool1d(*args, return_indices=True, ceil_mode=ceil)(ce.tensor(x))
        np.testing.assert_array_equal(b.numpy(), a.numpy())
        np.testing.assert_array_equal(ib.numpy(), ia.numpy())
    for args in [(3,), (4, 3, 2, True, False), (3, 2, 1, False, True)]:
        np.testing.assert_allclose(nn.AvgPool1d(*args)(ce.tensor(x)).numpy(),
                                   TF.avg_pool1d(torch.tensor(x), *args).numpy(), rtol=1e-6,
                                   atol=1e-6)
    np.testing.assert_allclose(nn.AdaptiveAvgPool1d(5)(ce.tensor(x)).numpy(),
                               TF.adaptive_avg_pool1d(torch.tensor(x), 5).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(nn.AdaptiveMaxPool1d(5)(ce.tensor(x)).numpy(),
                                  TF.adaptive_max_pool1d(torch.tensor(x), 5).numpy())


def test_max_pool_nan_and_inf_like_torch():
    torch = pytest.importorskip("torch")
    x = rnd((1, 1, 4, 6), np.float32)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 2, 2:4] = -np.inf
    x[0, 0, 3, 2:4] = -np.inf
    for k, s in ((2, 2), (3, 1)):
        a, ia = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, return_indices=True)
        b, ib = F.max_pool2d(ce.tensor(x), k, s, return_indices=True)
        np.testing.assert_array_equal(b.numpy(), a.numpy())
        np.testing.assert_array_equal(ib.numpy(), ia.numpy())


# ------------------------------------------------------------------------- C kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_kernels_threads_and_ref(dtype, isa, nthreads):
    x = rnd((24, 37, 41), dtype, 5)   # enough planes and work for two threads
    for k, s, p, d in [((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 2), (2, 3), (1, 1), (2, 1))]:
        out = (_out(37, k[0], s[0], p[0], d[0], True), _out(41, k[1], s[1], p[1], d[1], True))
        y, idx = _C.maxpool2d_forward(x, k, s, p, d, out)
        yr, ir = _C.maxpool2d_forward(x, k, s, p, d, out, ref=True)
        np.testing.assert_array_equal(y, yr)
        np.testing.assert_array_equal(idx, ir)
        dy = rnd(y.shape, dtype, 6)
        dx = _C.pool_scatter_backward(dy, idx, (37, 41))
        want = np.zeros((24, 37 * 41), dtype)
        for pl in range(24):
            np.add.at(want[pl], idx[pl].ravel(), dy[pl].ravel())
        np.testing.assert_array_equal(dx.reshape(24, -1), want)
        for cip in (0, 1):
            a = _C.avgpool2d_forward(x, k, s, p, out, cip, 0)
            ref = _C.avgpool2d_forward(x, k, s, p, out, cip, 0, ref=True)
            # rows then columns in the kernel, row-major in the reference: rounding differs
            np.testing.assert_allclose(a, ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-6 if dtype == np.float32 else 1e-13)


POOL_GEOMS = [
    # (H, W), kernel, stride, pad, dilation
    ((37, 41), (2, 2), (2, 2), (0, 0), (1, 1)),
    ((7, 19), (3, 3), (1, 1), (1, 1), (1, 1)),     # stride 1, W not a vector multiple
    ((9, 16), (3, 2), (2, 3), (1, 1), (2, 1)),     # dilation, exactly one avx512 f32 vector
    ((1, 33), (1, 5), (1, 2), (0, 2), (1, 3)),     # the 1-D shape
    ((1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),
    ((5, 3), (5, 3), (4, 4), (2, 1), (1, 1)),      # stride > kernel, windows in the padding
    ((3, 8300), (2, 3), (1, 2), (1, 1), (1, 1)),   # wide: the max pool's column pass row by row
    ((61, 2), (3, 1), (1, 1), (1, 0), (1, 1)),     # narrow and tall: many rows per column pass
]


@pytest.mark.parametrize("geom", POOL_GEOMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_plane_kernels_match_ref_on_every_path(geom, dtype, isa, nthreads):
    """max (values and indices, with NaN, -inf and ties: exactly), average forward/backward and
    the adaptive pools against their references on every ISA path and 1/2 threads"""
    (H, W), k, s, p, d = geom
    x = rnd((5, H, W), dtype, 11)
    x[x > 1.2] = 0.5                    # ties
    x.flat[::7] = -np.inf
    x.flat[3::11] = np.nan
    out = (_out(H, k[0], s[0], p[0], d[0], True), _out(W, k[1], s[1], p[1], d[1], True))
    y, idx = _C.maxpool2d_forward(x, k, s, p, d, out)
    yr, ir = _C.maxpool2d_forward(x, k, s, p, d, out, ref=True)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(idx, ir)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    xf = rnd((5, H, W), dtype, 12)
    dy = rnd((5,) + out, dtype, 13)
    if d == (1, 1):
        for cip, div in ((0, 0), (1, 0), (1, 3)):
            np.testing.assert_allclose(_C.avgpool2d_forward(xf, k, s, p, out, cip, div),
                                       _C.avgpool2d_forward(xf, k, s, p, out, cip, div,
                                                            ref=True), **tol)
            np.testing.assert_allclose(_C.avgpool2d_backward(dy, (H, W), k, s, p, cip, div),
                                       _C.avgpool2d_backward(dy, (H, W), k, s, p, cip, div,
                                                             ref=True), **tol)
    for ao in ((1, 1), (min(H, 3), min(W, 4)), (H + 2, W + 1)):
        a, ia = _C.adaptive_maxpool2d_forward(x, ao)
        b, ib = _C.adaptive_maxpool2d_forward(x, ao, ref=True)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_allclose(_C.adaptive_avgpool2d_forward(xf, ao),
                                   _C.adaptive_avgpool2d_forward(xf, ao, ref=True), **tol)
        g = rnd((5,) + ao, dtype, 14)
        np.testing.assert_allclose(_C.adaptive_avgpool2d_backward(g, (H, W)),
                                   _C.adaptive_avgpool2d_backward(g, (H, W), ref=True), **tol)


def test_pool_kernel_results_do_not_depend_on_threads():
    x = rnd((16, 30, 30), np.float32, 8)
    dy = rnd((16, 10, 10), np.float32, 9)
    old = _C.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            _C.set_num_threads(n)
            res.append((_C.avgpool2d_backward(dy, (30, 30), (4, 4), (3, 3), (1, 1), 1, 0),
                        _C.adaptive_avgpool2d_backward(dy, (30, 30)),
                        _C.adaptive_maxpool2d_forward(x, (10, 10))[0]))
    finally:
        _C.set_num_threads(old)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------- bad input
def _raises(exc, msg, fn):
    with pytest.raises(exc) as e:
        fn()
    assert msg in str(e.value), str(e.value)


def test_pool_bad_input():
    x = ce.randn(2, 3, 8, 8)
    _raises(RuntimeError, "pad should be at most half of effective kernel size, but got pad=2, "
            "kernel_size=3 and dilation=1", lambda: F.max_pool2d(x, 3, padding=2))
    _raises(RuntimeError, "pad should be at most half of effective kernel size",
            lambda: F.avg_pool2d(x, 3, padding=2))
    _raises(RuntimeError, "non-empty 3D or 4D (batch mode) tensor expected for input",
            lambda: F.max_pool2d(ce.randn(3, 8), 2))
    _raises(RuntimeError, "Given input size: (1x2x2). Calculated output size: (1x0x0). Output "
            "size is too small", lambda: F.max_pool2d(ce.randn(1, 1, 2, 2), 3))
    _raises(RuntimeError, "Given input size: (1x2x2). Calculated output size: (1x0x0).",
            lambda: F.avg_pool2d(ce.randn(1, 1, 2, 2), 3))
    _raises(RuntimeError, "max_pool1d: Expected 2D or 3D (batch mode) tensor",
            lambda: F.max_pool1d(ce.randn(3), 2))
    _raises(RuntimeError, "max_pool1d() Invalid computed output size: 0",
            lambda: F.max_pool1d(ce.randn(1, 3, 2), 3))
    _raises(RuntimeError, "Given input size: (3x1x2). Calculated output size: (3x1x0).",
            lambda: F.avg_pool1d(ce.randn(1, 3, 2), 3))
    _raises(RuntimeError, "stride should not be zero", lambda: F.max_pool2d(x, 2, stride=0))
    _raises(RuntimeError, "dilation should be greater than zero",
            lambda: F.max_pool2d(x, 2, dilation=0))
    _raises(RuntimeError, "adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got [3, 8]",
            lambda: F.adaptive_avg_pool2d(ce.randn(3, 8), 2))
    _raises(RuntimeError, "adaptive_avg_pool2d: elements of output_size must be greater than or "
            "equal to 0 but received {2, -1}", lambda: F.adaptive_avg_pool2d(x, (2, -1)))
    _raises(RuntimeError, "adaptive_max_pool2d(): Expected 3D or 4D tensor",
            lambda: F.adaptive_max_pool2d(ce.randn(3, 8), 2))
    _raises(RuntimeError, "Expected 2 to 3 dimensions, but got 1-dimensional tensor",
            lambda: F.adaptive_avg_pool1d(ce.randn(8), 2))
    _raises(RuntimeError, "with dimension 2 being empty",
            lambda: F.adaptive_avg_pool2d(ce.randn(1, 3, 0, 4), 2))
    _raises(RuntimeError, "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size",
            lambda: F.max_pool2d(ce.randn(1, 3, 0, 4), 2))
    _raises(RuntimeError, "divisor must be not zero",
            lambda: F.avg_pool2d(x, 2, divisor_override=0))


# ------------------------------------------------------------------------- BatchNorm2d
def test_batchnorm2d_matches_numpy_and_gradcheck():
    x = rnd((3, 4, 5, 6))
    m = nn.BatchNorm2d(4, dtype=ce.float64)
    y = m(ce.tensor(x))
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y.detach().numpy(), (x - mu) / np.sqrt(var + 1e-5), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(m.running_mean.numpy(), 0.1 * mu.ravel(), rtol=1e-12)
    n = x.size // 4
    np.testing.assert_allclose(m.running_var.numpy(), 0.9 + 0.1 * var.ravel() * n / (n - 1),
                               rtol=1e-12)
    xs = ce.tensor(rnd((2, 3, 3, 2), seed=1), requires_grad=True)
    w = ce.tensor(rnd((3,), seed=2), requires_grad=True)
    b = ce.tensor(rnd((3,), seed=3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, True), (xs, w, b))
    assert gradcheck(lambda x: F.batch_norm(x, None, None, None, None, True), (xs,))


@pytest.mark.parametrize("kw", [dict(), dict(momentum=None), dict(momentum=0.3, affine=False),
                                dict(track_running_stats=False), dict(eps=1e-3)])
def test_batchnorm2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    tm, cm = torch.nn.BatchNorm2d(5, **kw), nn.BatchNorm2d(5, **kw)
    if tm.weight is not None:
        w, b = rnd((5,), np.float32, 1), rnd((5,), np.float32, 2)
        tm.weight.data = torch.tensor(w)
        tm.bias.data = torch.tensor(b)
        cm.weight.data = ce.tensor(w)
        cm.bias.data = ce.tensor(b)
    for step in range(3):
        x = rnd((4, 5, 7, 3), np.float32, 10 + step) * 2 + 1
        xt, xc = torch.tensor(x, requires_grad=True), ce.tensor(x, requires_grad=True)
        yt, yc = tm(xt), cm(xc)
        np.testing.assert_allclose(yc.detach().numpy(), yt.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
        g = rnd(x.shape, np.float32, 20 + step)
        yt.backward(torch.tensor(g))
        yc.backward(ce.tensor(g))
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
        if tm.weight is not None:
            np.testing.assert_allclose(cm.weight.grad.numpy(), tm.weight.grad.numpy(),
                                       rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(cm.bias.grad.numpy(), tm.bias.grad.numpy(), rtol=1e-4,
                                       atol=1e-4)
    if tm.running_mean is not None:
        np.testing.assert_allclose(cm.running_mean.numpy(), tm.running_mean.numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(cm.running_var.numpy(), tm.running_var.numpy(), rtol=1e-5,
                                   atol=1e-6)
        assert int(cm.num_batches_tracked.item()) == int(tm.num_batches_tracked.item()) == 3
    tm.eval()
    cm.eval()
    x = rnd((2, 5, 3, 3), np.float32, 99)
    np.testing.assert_allclose(cm(ce.tensor(x)).detach().numpy(),
                               tm(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert list(cm.state_dict()) == list(tm.state_dict())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bn_kernels_thread_invariant(dtype):
    x = rnd((8, 6, 40 * 40), dtype, 3)
    dy = rnd(x.shape, dtype, 4)
    w = rnd((6,), dtype, 5)
    old = _C.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            _C.set_num_threads(n)
            mean, var = _C.bn_stats(x)
            rstd = (1 / np.sqrt(var + 1e-5)).astype(dtype)
            res.append((mean, var) + _C.bn_backward(dy, x, mean, rstd, w, True, True, True))
    finally:
        _C.set_num_threads(old)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(res[0][0], x.mean(axis=(0, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res[0][1], x.var(axis=(0, 2)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 5, 37), (1, 1, 1), (2, 3, 16), (4, 2, 17 * 19), (2, 3, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bn_kernels_match_ref(shape, dtype, isa, nthreads):
    """every ISA path and 1/2 threads against the plain references (awkward plane sizes: 1,
    primes, exactly one vector, empty)"""
    x = rnd(shape, dtype, 3) * 3 + 1
    dy = rnd(shape, dtype, 4)
    w, a, b = rnd((shape[1],), dtype, 5), rnd((shape[1],), dtype, 6), rnd((shape[1],), dtype, 7)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_C.bn_apply(x, a, b), _C.bn_apply(x, a, b, ref=True), **tol)
    if shape[2] == 0:
        return
    got, want = _C.bn_stats(x), _C.bn_stats(x, ref=True)
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, **tol)
    mean, var = want
    rstd = (1 / np.sqrt(var.astype(np.float64) + 1e-5)).astype(dtype)
    for wt in (w, None):
        got = _C.bn_backward(dy, x, mean, rstd, wt, True, True, True)
        want = _C.bn_backward(dy, x, mean, rstd, wt, True, True, True, ref=True)
        for g_, w_ in zip(got, want):
            np.testing.assert_allclose(g_, w_, **tol)
    dx = _C.bn_backward(dy, x, mean, rstd, w, True, False, False)[0]   # dx alone
    np.testing.assert_allclose(
        dx, _C.bn_backward(dy, x, mean, rstd, w, True, False, False, ref=True)[0], **tol)


def test_batchnorm2d_bad_input():
    _raises(ValueError, "expected 4D input (got 3D input)",
            lambda: nn.BatchNorm2d(3)(ce.randn(2, 3, 4)))
    _raises(RuntimeError, "running_mean should contain 4 elements not 3",
            lambda: nn.BatchNorm2d(3)(ce.randn(2, 4, 4, 4)))
    _raises(ValueError, "Expected more than 1 value per channel when training",
            lambda: nn.BatchNorm2d(3)(ce.randn(1, 3, 1, 1)))


# ------------------------------------------------------------------------- channel dropout
def test_dropout2d_and_1d_zero_whole_channels():
    ce.manual_seed(0)
    x = ce.ones(8, 16, 5, 4)
    y = nn.Dropout2d(0.5)(x).numpy()
    per = y.reshape(8, 16, -1)
    assert np.all((per == 0).all(-1) | (per == 2.0).all(-1))
    assert 0.2 < (per[:, :, 0] == 0).mean() < 0.8
    m = nn.Dropout2d(0.5)
    m.eval()
    assert m(x) is x
    y1 = nn.Dropout1d(0.25)(ce.ones(4, 32, 7)).numpy()
    assert np.all((y1 == 0).all(-1) | np.isclose(y1, 4 / 3).all(-1))
    yu = F.dropout1d(ce.ones(32, 7), 0.5).numpy()   # unbatched: per channel
    assert np.all((yu == 0).all(-1) | (yu == 2).all(-1))
    assert F.dropout2d(x, 0.0) is x
    assert np.all(F.dropout2d(x, 1.0).numpy() == 0)
    xt = ce.ones(2, 3, 2, 2, requires_grad=True)
    out = F.dropout2d(xt, 0.5)
    out.sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), out.detach().numpy())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        y3 = F.dropout2d(ce.ones(4, 6, 5), 0.5).numpy()
    assert any("3D input to dropout2d" in str(i.message) for i in w)
    assert np.all((y3 == 0).all(-1) | (y3 == 2).all(-1))


def test_dropout_bad_input():
    _raises(RuntimeError, "dropout1d: Expected 2D or 3D input, but received a 4D input.",
            lambda: F.dropout1d(ce.randn(2, 3, 4, 5), 0.5))
    _raises(ValueError, "dropout probability has to be between 0 and 1, but got 1.5",
            lambda: F.dropout2d(ce.randn(2, 3, 4, 5), 1.5))
    _raises(ValueError, "dropout probability has to be between 0 and 1",
            lambda: nn.Dropout2d(-0.1))
