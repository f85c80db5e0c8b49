"""Conv1d / Conv2d, F.conv1d / F.conv2d and F.pad (all modes).

Forward and gradients against a plain numpy convolution written here (so the file means
something without torch), against torch with copied weights where installed, float64 gradcheck;
the C packers against their *_ref twins on every ISA path and 1/2 threads; results identical on
1 and 2 threads and for any tile size; bad input raises torch's errors."""
import math

import numpy as np
import pytest

import cengine as ce
from cengine import _C, nn
from cengine.autograd import gradcheck
from cengine.nn import functional as F

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def rnd(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------- numpy reference
def np_conv2d(x, w, b=None, stride=(1, 1), pads=((0, 0), (0, 0)), dil=(1, 1), groups=1):
    """x (N,C,H,W), w (O,C/g,KH,KW); pads ((top, bottom), (left, right)) of zeros."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    N, C, H, W = xp.shape
    O, Cg, KH, KW = w.shape
    OH = (H - dil[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W - dil[1] * (KW - 1) - 1) // stride[1] + 1
    y = np.zeros((N, O, OH, OW))
    Og = O // groups
    for g in range(groups):
        xs = xp[:, g * Cg:(g + 1) * Cg]
        for ki in range(KH):
            for kj in range(KW):
                h0, w0 = ki * dil[0], kj * dil[1]
                patch = xs[:, :, h0:h0 + stride[0] * (OH - 1) + 1:stride[0],
                           w0:w0 + stride[1] * (OW - 1) + 1:stride[1]]
                y[:, g * Og:(g + 1) * Og] += np.einsum("nchw,oc->nohw", patch,
                                                       w[g * Og:(g + 1) * Og, :, ki, kj])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def np_conv_grads(x, w, dy, stride, pads, dil, groups):
    """dx, dw of sum(conv(x, w) * dy) by linearity: dw[o,c,i,j] = sum over the patch."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    dw = np.zeros_like(w64)
    for idx in np.ndindex(*w.shape):
        e = np.zeros_like(w64)
        e[idx] = 1
        dw[idx] = (np_conv2d(x64, e, None, stride, pads, dil, groups) * dy).sum()
    dx = np.zeros_like(x64)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x64)
        e[idx] = 1
        dx[idx] = (np_conv2d(e, w64, None, stride, pads, dil, groups) * dy).sum()
    return dx, dw


GRID2D = [
    # (N, C, H, W, O, KH, KW, stride, padding, dilation, groups)
    (2, 3, 7, 9, 4, 3, 2, (1, 2), (1, 0), (1, 2), 1),
    (3, 4, 5, 5, 6, 3, 3, 2, 1, 1, 2),
    (2, 4, 6, 6, 4, 1, 1, 1, 0, 1, 4),        # 1x1 depthwise
    (2, 4, 6, 5, 8, 1, 1, 1, 0, 1, 1),        # 1x1 (direct GEMM path)
    (1, 2, 11, 13, 3, 5, 3, (3, 4), (2, 1), (2, 1), 1),   # stride > kernel, odd sizes
    (2, 6, 8, 7, 6, 3, 3, 1, "same", 2, 6),   # depthwise, dilation with 'same'
    (2, 3, 6, 6, 4, 4, 2, 1, "same", 1, 1),   # even kernel 'same': asymmetric padding
    (2, 3, 6, 6, 4, 3, 3, 1, "valid", 1, 1),
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1),
    (2, 2, 3, 4, 2, 3, 4, 1, 0, 1, 1),        # kernel = input
]


def _pads(padding, k, dil):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        t = [d * (kk - 1) for kk, d in zip(k, dil)]
        return tuple((v // 2, v - v // 2) for v in t)
    p = (padding, padding) if isinstance(padding, int) else padding
    return ((p[0], p[0]), (p[1], p[1]))


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("case", GRID2D)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_matches_numpy(case, dtype):
    N, C, H, W, O, KH, KW, s, p, d, g = case
    x, w, b = rnd((N, C, H, W), dtype, 1), rnd((O, C // g, KH, KW), dtype, 2), rnd((O,), dtype, 3)
    pads = _pads(p, (KH, KW), _pair(d))
    want = np_conv2d(x, w, b, _pair(s), pads, _pair(d), g)
    xt, wt, bt = (ce.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, s, p, d, g)
    assert y.dtype == xt.dtype and tuple(y.shape) == want.shape
    np.testing.assert_allclose(y.detach().numpy(), want, **TOL[dtype])
    dy = rnd(want.shape, np.float64, 4)
    y.backward(ce.tensor(dy.astype(dtype)))
    dx, dw = np_conv_grads(x, w, dy, _pair(s), pads, _pair(d), g)
    np.testing.assert_allclose(xt.grad.numpy(), dx, **TOL[dtype])
    np.testing.assert_allclose(wt.grad.numpy(), dw, **TOL[dtype])
    np.testing.assert_allclose(bt.grad.numpy(), dy.sum((0, 2, 3)), **TOL[dtype])


def test_conv2d_unbatched_and_conv1d_match_numpy():
    x, w, b = rnd((3, 6, 7)), rnd((4, 3, 2, 3), seed=1), rnd((4,), seed=2)
    y = F.conv2d(ce.tensor(x), ce.tensor(w), ce.tensor(b), padding=1)
    want = np_conv2d(x[None], w, b, pads=((1, 1), (1, 1)))[0]
    np.testing.assert_allclose(y.detach().numpy(), want, **TOL[np.float32])
    # conv1d = conv2d with H = 1
    x1, w1 = rnd((2, 4, 17)), rnd((6, 2, 5), seed=3)
    y1 = F.conv1d(ce.tensor(x1), ce.tensor(w1), None, stride=2, padding=3, dilation=2, groups=2)
    want = np_conv2d(x1[:, :, None], w1[:, :, None], None, (1, 2), ((0, 0), (3, 3)), (1, 2), 2)
    np.testing.assert_allclose(y1.detach().numpy(), want[:, :, 0], **TOL[np.float32])
    y1u = F.conv1d(ce.tensor(x1[0]), ce.tensor(w1), None, 2, 3, 2, 2)
    np.testing.assert_allclose(y1u.numpy(), want[0, :, 0], **TOL[np.float32])


def test_conv_empty_batch():
    y = F.conv2d(ce.zeros(0, 3, 5, 5, requires_grad=True), ce.randn(4, 3, 3, 3))
    assert tuple(y.shape) == (0, 4, 3, 3)
    y.sum().backward()


def test_conv_noncontiguous_input():
    x = rnd((2, 5, 9, 3)).transpose(0, 3, 1, 2)   # (2, 3, 5, 9), not contiguous
    w = rnd((4, 3, 3, 3), seed=1)
    y = F.conv2d(ce.tensor(x), ce.tensor(w), padding=1)
    np.testing.assert_allclose(y.detach().numpy(), np_conv2d(x, w, pads=((1, 1), (1, 1))),
                               **TOL[np.float32])


# ------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("case", [
    ((2, 2, 4, 5), (3, 2, 2, 3), dict(stride=(2, 1), padding=1, dilation=(1, 2))),
    ((1, 4, 4, 4), (4, 2, 3, 3), dict(padding="same", groups=2)),
    ((1, 3, 3, 3), (2, 3, 1, 1), dict()),
    ((3, 4, 4), (2, 3, 2, 2), dict(padding="valid")),   # unbatched
])
def test_conv2d_gradcheck(case):
    xs, ws, kw = case
    x = ce.tensor(rnd(xs, np.float64), requires_grad=True)
    w = ce.tensor(rnd(ws, np.float64, 1), requires_grad=True)
    b = ce.tensor(rnd((ws[0],), np.float64, 2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), (x, w, b))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv1d_module_gradcheck(mode):
    m = nn.Conv1d(2, 3, 3, padding=1, padding_mode=mode, dtype=ce.float64)
    x = ce.tensor(rnd((2, 2, 5), np.float64), requires_grad=True)
    assert gradcheck(lambda x, w, b: m._conv_forward(x, w, b), (x, m.weight, m.bias))


# ------------------------------------------------------------------------- torch parity
TORCH_GRID = [
    dict(cin=3, cout=8, k=3),
    dict(cin=4, cout=6, k=(3, 2), stride=2, padding=(1, 0), dilation=(2, 1), groups=2),
    dict(cin=6, cout=6, k=3, padding="same", groups=6, bias=False),
    dict(cin=2, cout=4, k=4, padding="same", dilation=2),
    dict(cin=3, cout=5, k=3, padding=2, padding_mode="reflect"),
    dict(cin=3, cout=5, k=(3, 5), padding=(1, 2), padding_mode="replicate"),
    dict(cin=3, cout=5, k=3, padding=1, padding_mode="circular", stride=2),
    dict(cin=3, cout=4, k=2, padding="same", padding_mode="reflect"),
    dict(cin=5, cout=7, k=1),
]


def _modules(torch, nd, cfg, dtype):
    cfg = dict(cfg)
    cin, cout, k = cfg.pop("cin"), cfg.pop("cout"), cfg.pop("k")
    if nd == 1:
        k = k if isinstance(k, int) else k[0]
        for key in ("stride", "dilation", "padding"):
            if isinstance(cfg.get(key), tuple):
                cfg[key] = cfg[key][0]
    tm = getattr(torch.nn, "Conv%dd" % nd)(cin, cout, k, dtype=torch.float64, **cfg)
    cm = getattr(nn, "Conv%dd" % nd)(cin, cout, k, dtype=dtype, **cfg)
    cm.weight.data = ce.tensor(tm.weight.detach().numpy().astype(dtype))
    if tm.bias is not None:
        cm.bias.data = ce.tensor(tm.bias.detach().numpy().astype(dtype))
    return tm, cm, cin


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("cfg", TORCH_GRID)
def test_conv_modules_match_torch(cfg, nd, batched):
    torch = pytest.importorskip("torch")
    tm, cm, cin = _modules(torch, nd, cfg, np.float32)
    shape = (3, cin) + ((9, 11) if nd == 2 else (13,))
    if not batched:
        shape = shape[1:]
    x = rnd(shape, np.float32, 5)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    yt = tm(xt)
    xc = ce.tensor(x, requires_grad=True)
    yc = cm(xc)
    assert tuple(yc.shape) == tuple(yt.shape)
    np.testing.assert_allclose(yc.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    dy = rnd(tuple(yt.shape), np.float32, 6)
    yt.backward(torch.tensor(dy.astype(np.float64)))
    yc.backward(ce.tensor(dy))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cm.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-3)
    if tm.bias is not None:
        np.testing.assert_allclose(cm.bias.grad.numpy(), tm.bias.grad.numpy(), rtol=1e-4,
                                   atol=1e-3)


def test_conv_module_layout_init_and_repr():
    torch = pytest.importorskip("torch")
    for args, kw in [((3, 8, 3), {}), ((4, 6, (3, 2)), dict(groups=2, bias=False)),
                     ((2, 4, 5), dict(padding="same", padding_mode="reflect"))]:
        t = torch.nn.Conv2d(*args, **kw)
        c = nn.Conv2d(*args, **kw)
        assert repr(c) == repr(t)
        assert list(c.state_dict()) == list(t.state_dict())
        assert tuple(c.weight.shape) == tuple(t.weight.shape)
    t1, c1 = torch.nn.Conv1d(13, 128, 5, stride=2), nn.Conv1d(13, 128, 5, stride=2)
    assert repr(c1) == repr(t1) and tuple(c1.weight.shape) == (128, 13, 5)


def test_conv_default_init_bounds():
    m = nn.Conv2d(16, 32, 3)
    fan_in = 16 * 9
    bound = 1 / math.sqrt(fan_in)   # kaiming_uniform_(a=sqrt(5)) gives the same bound
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound and w.std() > 0.5 * bound / math.sqrt(3)
    m2 = nn.Conv2d(4, 8, 3, groups=4)
    assert tuple(m2.weight.shape) == (8, 1, 3, 3)
    assert np.abs(m2.weight.detach().numpy()).max() <= 1 / 3


# ------------------------------------------------------------------------- C kernels
GEOMS = [
    # (N, C, H, W, KH, KW, stride, pad, dilation)
    (2, 3, 7, 9, 3, 2, (1, 2), (1, 0), (1, 2)),
    (1, 2, 11, 13, 5, 3, (3, 4), (2, 1), (2, 1)),
    (3, 5, 4, 4, 1, 1, (1, 1), (0, 0), (1, 1)),
    (2, 1, 6, 17, 3, 3, (1, 1), (2, 3), (1, 1)),
    (2, 3, 33, 35, 3, 3, (1, 1), (1, 1), (1, 1)),   # enough work for two threads
]


def _out(H, W, KH, KW, s, p, d):
    return ((H + 2 * p[0] - d[0] * (KH - 1) - 1) // s[0] + 1,
            (W + 2 * p[1] - d[1] * (KW - 1) - 1) // s[1] + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMS)
def test_im2col_col2im_match_ref(geom, dtype, isa, nthreads):
    N, C, H, W, KH, KW, s, p, d = geom
    out = _out(H, W, KH, KW, s, p, d)
    x = rnd((N, C, H, W), dtype)
    col = _C.im2col(x, (KH, KW), s, p, d, out)
    np.testing.assert_array_equal(col, _C.im2col(x, (KH, KW), s, p, d, out, ref=True))
    # against numpy: row (c, ki, kj), column (n, oh, ow)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    want = np.empty_like(col).reshape(C, KH, KW, N, out[0], out[1])
    for ki in range(KH):
        for kj in range(KW):
            sl = xp[:, :, ki * d[0]:ki * d[0] + s[0] * (out[0] - 1) + 1:s[0],
                    kj * d[1]:kj * d[1] + s[1] * (out[1] - 1) + 1:s[1]]
            want[:, ki, kj] = sl.transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(col, want.reshape(col.shape))
    c2 = rnd(col.shape, dtype, 1)
    dx = _C.col2im(c2, x.shape, (KH, KW), s, p, d, out)
    np.testing.assert_allclose(dx, _C.col2im(c2, x.shape, (KH, KW), s, p, d, out, ref=True),
                               rtol=1e-6, atol=1e-6)
    # adjoint: <im2col(x), c2> == <x, col2im(c2)>
    np.testing.assert_allclose((col.astype(np.float64) * c2).sum(),
                               (x.astype(np.float64) * dx).sum(), rtol=1e-4)


INVARIANCE_CASES = [
    # x, w, dy shapes, geometry (stride, pad, dilation, groups), out_hw
    ((5, 6, 13, 12), (8, 3, 3, 3), (5, 8, 7, 12), ((2, 1), (1, 2), (1, 2), 2), (7, 12)),
    # enough work that chunks of images run on separate threads
    ((7, 8, 20, 21), (16, 8, 3, 3), (7, 16, 20, 21), ((1, 1), (1, 1), (1, 1), 1), (20, 21)),
]


@pytest.mark.parametrize("case", INVARIANCE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_kernels_thread_and_tile_invariant(dtype, case, isa):
    xs, ws, dys, geom, out = case
    x, w, b = rnd(xs, dtype), rnd(ws, dtype, 1), rnd((ws[0],), dtype, 2)
    dy = rnd(dys, dtype, 3)
    old_t, old_n, old_p = _C.conv_get_tile_elems(), _C.get_num_threads(), _C.conv_get_parts_elems()
    results = []
    try:
        # tile sizes; weight-gradient partials per chunk (default) or accumulated (parts=0)
        for tile, parts in ((1 << 21, old_p), (1, old_p), (3000, old_p), (3000, 0)):
            _C.conv_set_tile_elems(tile)
            _C.conv_set_parts_elems(parts)
            for nth in (1, 2):
                _C.set_num_threads(nth)
                y = _C.conv2d_forward(x, w, b, *geom, out)
                results.append((y,) + _C.conv2d_backward(dy, x, w, *geom, True, True, True))
    finally:
        _C.conv_set_tile_elems(old_t)
        _C.conv_set_parts_elems(old_p)
        _C.set_num_threads(old_n)
    s, p, d, g = geom
    want = np_conv2d(x, w, b, s, ((p[0], p[0]), (p[1], p[1])), d, g)
    np.testing.assert_allclose(results[0][0], want, **TOL[dtype])
    # the thread count never changes a bit; tile sizes change only the dW summation order
    for i in range(0, len(results), 2):
        for a, c in zip(results[i], results[i + 1]):
            np.testing.assert_array_equal(a, c)
    for r in results[2:]:
        for a, c in zip(r, results[0]):
            np.testing.assert_allclose(a, c, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_bias_grad_matches_ref(dtype, isa, nthreads):
    """the bias gradient (SIMD plane sums) against the plain reference and numpy, on every ISA
    path, awkward plane sizes (partial vectors, fewer values than one vector) and enough
    channels for two threads; bitwise the same on 1 and 2 threads"""
    for shape in [(1, 1, 1), (2, 3, 1), (3, 5, 7), (2, 4, 17, 3), (4, 33, 31), (5, 64, 24, 24)]:
        dy = rnd(shape, dtype, 4) + 0.5
        got = _C.conv_bias_grad(dy)
        ref = _C.conv_bias_grad(dy, ref=True)
        want = dy.astype(np.float64).sum(axis=tuple(i for i in range(dy.ndim) if i != 1))
        np.testing.assert_allclose(got, ref, **TOL[dtype])
        np.testing.assert_allclose(got, want, **TOL[dtype])
        old = _C.get_num_threads()
        try:
            _C.set_num_threads(1)
            one = _C.conv_bias_grad(dy)
        finally:
            _C.set_num_threads(old)
        np.testing.assert_array_equal(got, one)


# ------------------------------------------------------------------------- stride-1 drivers
S1_CASES = [
    # x, w, pad (top, left), dilation, out_hw: stride 1, one group, channels x KW >= 32
    ((3, 35, 40, 37), (33, 35, 3, 3), (1, 1), (1, 1), (40, 37)),   # several row chunks
    ((2, 16, 7, 9), (40, 16, 3, 3), (1, 1), (1, 1), (7, 9)),
    ((3, 32, 6, 5), (9, 32, 3, 3), (2, 1), (1, 2), (6, 3)),        # dw > 1: a GEMM per tap
    ((1, 40, 4, 4), (33, 40, 2, 3), (0, 0), (1, 1), (3, 2)),       # even kernel, no padding
    ((2, 11, 1, 30), (12, 11, 1, 5), (0, 2), (1, 1), (1, 30)),     # conv1d shape
    ((2, 33, 5, 6), (34, 33, 1, 1), (1, 0), (1, 1), (7, 6)),       # 1x1 with padding
    ((1, 12, 6, 6), (12, 12, 4, 3), (1, 1), (1, 1), (4, 6)),       # 'same'-like asymmetric cut
]


@pytest.mark.parametrize("case", S1_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_stride1_driver_matches_unfolding(case, dtype, isa):
    """the shifted-GEMM drivers against numpy and the unfolding drivers, on every ISA path;
    bitwise the same on 1 and 2 threads, and with the weight-gradient partials accumulated"""
    xs, ws, pad, dil, out = case
    x, w, b = rnd(xs, dtype), rnd(ws, dtype, 1), rnd((ws[0],), dtype, 2)
    dy = rnd((xs[0], ws[0]) + out, dtype, 3)
    geom = ((1, 1), pad, dil, 1)
    old_n, old_p = _C.get_num_threads(), _C.conv_get_parts_elems()
    res = {}
    try:
        for s1, parts, nth in ((False, old_p, 1), (True, old_p, 1), (True, old_p, 2),
                               (True, 0, 1), (True, 0, 2)):
            _C.conv_set_s1(s1)
            _C.conv_set_parts_elems(parts)
            _C.set_num_threads(nth)
            y = _C.conv2d_forward(x, w, b, *geom, out)
            res[s1, parts, nth] = (y,) + _C.conv2d_backward(dy, x, w, *geom, True, True, True)
    finally:
        _C.conv_set_s1(True)
        _C.conv_set_parts_elems(old_p)
        _C.set_num_threads(old_n)
    # padding as given at the top/left, the bottom/right implied by the output size
    pb = (out[0] + dil[0] * (ws[2] - 1) - xs[2] - pad[0], out[1] + dil[1] * (ws[3] - 1) - xs[3] - pad[1])
    want = np_conv2d(x, w, b, (1, 1), ((pad[0], pb[0]), (pad[1], pb[1])), dil, 1)
    assert res[True, old_p, 1][0].shape == want.shape
    np.testing.assert_allclose(res[True, old_p, 1][0], want, **TOL[dtype])
    for key, r in res.items():
        for a, c in zip(r, res[False, old_p, 1]):
            np.testing.assert_allclose(a, c, **TOL[dtype])
    for parts in (old_p, 0):
        for a, c in zip(res[True, parts, 1], res[True, parts, 2]):
            np.testing.assert_array_equal(a, c)
    # the forward's packed input, reused by the weight gradient: the same bits; a grid that
    # does not fit is not used
    y, grid = _C.conv2d_forward(x, w, b, *geom, out, keep_grid=True)
    assert grid is not None
    np.testing.assert_array_equal(y, res[True, old_p, 2][0])
    other = np.zeros(grid.size, np.float32 if dtype == np.float64 else np.float64)
    for gr in (grid, grid[:10], other):
        got = _C.conv2d_backward(dy, x, w, *geom, True, True, True, grid=gr)
        for a, c in zip(got, res[True, old_p, 2][1:]):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("case", S1_CASES[1:] + [((2, 33, 5, 6), (34, 33, 1, 1), (0, 0), (1, 1),
                                                   (5, 6))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_input_grad_written_whole(case, dtype, isa, nthreads):
    """the stride-1 driver and the 1x1 GEMM overwrite every element of dx (it is allocated
    uninitialised): a freed NaN block of dx's size, which the allocator hands out again for
    these small sizes, never shows through"""
    xs, ws, pad, dil, out = case
    x, w = rnd(xs, dtype), rnd(ws, dtype, 1)
    dy = rnd((xs[0], ws[0]) + out, dtype, 3)
    geom = ((1, 1), pad, dil, 1)
    _C.conv_set_s1(False)
    try:
        want = _C.conv2d_backward(dy, x, w, *geom, True, False, False)[0]
    finally:
        _C.conv_set_s1(True)
    for _ in range(3):
        junk = np.full(xs, np.nan, dtype)
        del junk
        got = _C.conv2d_backward(dy, x, w, *geom, True, False, False)[0]
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("case", [S1_CASES[0], S1_CASES[1], S1_CASES[2], S1_CASES[6]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_stride1_weight_grad_nonfinite_input(case, dtype, isa, nthreads):
    """an inf/NaN of x next to the padding columns/rows gives the weight gradient the
    unfolding drivers (and the definition) give: +-inf where it meets dy, never a NaN from
    the grid rows outside the output"""
    xs, ws, pad, dil, out = case
    x, w = rnd(xs, dtype), rnd(ws, dtype, 1)
    dy = np.abs(rnd((xs[0], ws[0]) + out, dtype, 3)) + 0.5
    x[0, 1, 0, -1] = np.inf           # last column, first row
    x[-1, 0, -1, 0] = -np.inf         # first column, last row
    x[0, -1, -1, -1] = np.inf         # bottom-right corner
    x[0, 2, xs[2] // 2, xs[3] // 2] = -np.inf   # inside: meets no padding row
    geom = ((1, 1), pad, dil, 1)
    old_p = _C.conv_get_parts_elems()
    res = {}
    try:
        for s1, parts in ((False, old_p), (True, old_p), (True, 0)):
            _C.conv_set_s1(s1)
            _C.conv_set_parts_elems(parts)
            y, grid = _C.conv2d_forward(x, w, None, *geom, out, keep_grid=True)
            res[s1, parts] = _C.conv2d_backward(dy, x, w, *geom, False, True, False,
                                                grid=grid)[1]
    finally:
        _C.conv_set_s1(True)
        _C.conv_set_parts_elems(old_p)
    want = res[False, old_p]
    assert np.isinf(want).any()
    for key in ((True, old_p), (True, 0)):
        got = res[key]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], **TOL[dtype])
    # only an interior inf (the scan of the padding band finds nothing): the fast products
    x2 = rnd(xs, dtype)
    x2[0, 2, xs[2] // 2, xs[3] // 2] = np.inf
    _C.conv_set_s1(False)
    try:
        ref = _C.conv2d_backward(dy, x2, w, *geom, False, True, False)[1]
    finally:
        _C.conv_set_s1(True)
    got = _C.conv2d_backward(dy, x2, w, *geom, False, True, False)[1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    # a NaN of x reaches exactly the weights whose windows see it
    x[0, 1, 0, -1] = np.nan
    got = _C.conv2d_backward(dy, x, w, *geom, False, True, False)[1]
    _C.conv_set_s1(False)
    try:
        ref = _C.conv2d_backward(dy, x, w, *geom, False, True, False)[1]
    finally:
        _C.conv_set_s1(True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert not np.isnan(got).all()


def test_conv_weight_grad_inf_input_matches_torch():
    torch = pytest.importorskip("torch")
    x = rnd((2, 16, 7, 9), np.float32)
    w = rnd((4, 16, 3, 3), np.float32, 1)
    x[0, 1, 2, 8] = np.inf
    x[1, 0, 6, 0] = -np.inf
    for pad in (0, 1):
        wt = torch.tensor(w, requires_grad=True)
        torch.nn.functional.conv2d(torch.tensor(x), wt, padding=pad).sum().backward()
        wc = ce.tensor(w, requires_grad=True)
        F.conv2d(ce.tensor(x), wc, padding=pad).sum().backward()
        a, b = wt.grad.numpy(), wc.grad.numpy()
        assert not np.isnan(b).any()
        np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
        np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
        np.testing.assert_allclose(b[np.isfinite(a)], a[np.isfinite(a)], rtol=1e-4, atol=1e-4)


def test_conv_stride1_driver_gradcheck():
    x = ce.tensor(rnd((2, 11, 5, 4), np.float64), requires_grad=True)
    w = ce.tensor(rnd((12, 11, 3, 3), np.float64, 1), requires_grad=True)
    b = ce.tensor(rnd((12,), np.float64, 2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=(1, 2), dilation=(1, 2)), (x, w, b))
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding="same"), (x, w, b))


# ------------------------------------------------------------------------- bad input
def _raises(exc, msg, fn):
    with pytest.raises(exc) as e:
        fn()
    assert msg in str(e.value), str(e.value)


def test_conv_bad_input():
    x, w = ce.randn(2, 3, 8, 8), ce.randn(4, 3, 3, 3)
    _raises(RuntimeError, "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got "
            "input of size: [2, 3]", lambda: F.conv2d(ce.randn(2, 3), w))
    _raises(RuntimeError, "Given groups=1, weight of size [4, 3, 3, 3], expected input[2, 5, 8, "
            "8] to have 3 channels, but got 5 channels instead",
            lambda: F.conv2d(ce.randn(2, 5, 8, 8), w))
    _raises(RuntimeError, "expected input[1, 5, 8, 8] to have 3 channels",
            lambda: F.conv2d(ce.randn(5, 8, 8), w))
    _raises(RuntimeError, "Given groups=2, expected weight to be divisible by 2 at dimension 0",
            lambda: F.conv2d(x, ce.randn(3, 3, 3, 3), groups=2))
    _raises(RuntimeError, "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x "
            "3). Kernel size can't be greater than actual input size",
            lambda: F.conv2d(ce.randn(2, 3, 2, 2), w))
    _raises(RuntimeError, "Calculated padded input size per channel: (4). Kernel size: (5).",
            lambda: F.conv1d(ce.randn(2, 3, 4), ce.randn(4, 3, 5)))
    _raises(RuntimeError, "padding='same' is not supported for strided convolutions",
            lambda: F.conv2d(x, w, padding="same", stride=2))
    _raises(RuntimeError, "Invalid padding string: 'foo'", lambda: F.conv2d(x, w, padding="foo"))
    _raises(RuntimeError, "non-positive stride is not supported", lambda: F.conv2d(x, w, stride=0))
    _raises(RuntimeError, "negative padding is not supported", lambda: F.conv2d(x, w, padding=-1))
    _raises(RuntimeError, "non-positive dilation is not supported",
            lambda: F.conv2d(x, w, dilation=0))
    _raises(RuntimeError, "non-positive groups is not supported", lambda: F.conv2d(x, w, groups=0))
    _raises(RuntimeError, "expected bias to be 1-dimensional with 4 elements, but got bias of "
            "size [5] instead", lambda: F.conv2d(x, w, ce.randn(5)))
    _raises(RuntimeError, "expected scalar type Double but found Float",
            lambda: F.conv2d(x.double(), w))
    _raises(RuntimeError, "expected stride to be a single integer value or a list of 2 values",
            lambda: F.conv2d(x, w, stride=(1, 2, 3)))
    _raises(RuntimeError, "Expected 2D (unbatched) or 3D (batched) input to conv1d",
            lambda: F.conv1d(ce.randn(2, 3, 4, 5), ce.randn(4, 3, 5)))
    _raises(ValueError, "Invalid padding string 'foo', should be one of {'same', 'valid'}",
            lambda: nn.Conv2d(3, 4, 3, padding="foo"))
    _raises(ValueError, "padding='same' is not supported for strided convolutions",
            lambda: nn.Conv2d(3, 4, 3, padding="same", stride=2))
    _raises(ValueError, "in_channels must be divisible by groups",
            lambda: nn.Conv2d(3, 4, 3, groups=2))
    _raises(ValueError, "out_channels must be divisible by groups",
            lambda: nn.Conv2d(4, 3, 3, groups=2))
    _raises(ValueError, "groups must be a positive integer", lambda: nn.Conv2d(4, 4, 3, groups=0))
    _raises(ValueError, "padding_mode must be one of", lambda: nn.Conv2d(4, 4, 3, padding_mode="x"))
    _raises(TypeError, "must be Tensor", lambda: F.conv2d(np.zeros((2, 3, 8, 8)), w))


# ------------------------------------------------------------------------- F.pad
NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pad", [((2, 5), (2, 1)), ((1, 2, 6), (3, 0)),
                                       ((2, 4, 5), (1, 2, 3, 1)),
                                       ((1, 2, 3, 4, 5), (1, 1, 2, 0, 1, 2)),
                                       ((1, 2, 4, 4), (1, 1, 1, 1))])
def test_pad_modes_match_numpy(mode, shape, pad):
    x = rnd(shape, np.float64)
    y = F.pad(ce.tensor(x), pad, mode=mode)
    k = len(pad) // 2
    widths = [(0, 0)] * (len(shape) - k) + [(pad[2 * i], pad[2 * i + 1])
                                            for i in reversed(range(k))]
    np.testing.assert_array_equal(y.detach().numpy(), np.pad(x, widths, mode=NP_MODE[mode]))
    xt = ce.tensor(x, requires_grad=True)
    if x.size <= 60:
        assert gradcheck(lambda t: F.pad(t, pad, mode=mode), (xt,))


def test_pad_matches_torch_negative_and_constant():
    torch = pytest.importorskip("torch")
    x = rnd((2, 3, 6), np.float64)
    for mode, pad in [("replicate", (-1, 2)), ("circular", (-2, 3)), ("constant", (-1, 2)),
                      ("reflect", (-1, 2)), ("circular", (6, 6))]:
        want = torch.nn.functional.pad(torch.tensor(x), pad, mode=mode).numpy()
        np.testing.assert_array_equal(F.pad(ce.tensor(x), pad, mode=mode).numpy(), want)
    y = F.pad(ce.tensor(x), (1, 1), value=2.5)
    want = torch.nn.functional.pad(torch.tensor(x), (1, 1), value=2.5).numpy()
    np.testing.assert_array_equal(y.detach().numpy(), want)


# torch's messages that come from its internals rather than a check (compared by type only)
_TORCH_INTERNAL = ("numel: integer multiplication overflow", "unsupported operation",
                   "doesn't match the broadcast shape")


def _pad_outcome(lib, x, pad, mode):
    try:
        return "ok", lib.nn.functional.pad(lib.tensor(x), pad, mode=mode).numpy()
    except Exception as e:   # noqa: BLE001 - the outcome is compared
        return type(e).__name__, str(e).split("\n")[0]


def _circular_overwraps(shape, pad):
    """torch's circular pad copies overlapping or uninitialised memory (no defined values)"""
    k = len(pad) // 2
    for i in range(k):
        n, lo, hi = shape[-1 - i], pad[2 * i], pad[2 * i + 1]
        m = n - max(-lo, 0) - max(-hi, 0)
        if n + lo + hi > 0 and (m < 0 or lo > m or hi > m):
            return True
    return False


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape", [(1, 1, 4), (2, 3), (1, 1, 1), (1, 2, 3, 4), (2, 3, 2),
                                   (1, 1, 0), (1, 1, 2, 3, 2)])
def test_pad_negative_and_edge_cases_match_torch(mode, shape):
    """every pad in [-5, 4] (1-D) or [-3, 3] (2-D/3-D, a sample): values, or the error torch
    raises (type, and message where it comes from a check)"""
    torch = pytest.importorskip("torch")
    import itertools
    k = 1 if len(shape) in (2, 3) and shape != (2, 3, 2) else 2
    if len(shape) == 5:
        k = 3
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    rng = range(-5, 5) if k == 1 else range(-3, 4)
    pads = list(itertools.product(rng, repeat=2 * k))
    if k > 1:
        pads = [pads[i] for i in np.random.default_rng(k).permutation(len(pads))[:400]]
    for pad in pads:
        got, want = _pad_outcome(ce, x, pad, mode), _pad_outcome(torch, x, pad, mode)
        if mode == "circular" and _circular_overwraps(shape, pad):
            if want[0] == "ok":   # torch: uninitialised or overlapping copies; cengine raises
                assert got == ("RuntimeError", "Padding value causes wrapping around more "
                               "than once."), (pad, got)
                continue
        if want[0] == "ok":
            assert got[0] == "ok", (pad, got)
            np.testing.assert_array_equal(got[1], want[1], err_msg=str(pad))
        else:
            assert got[0] == want[0], (pad, got, want)
            if not any(s in want[1] for s in _TORCH_INTERNAL):
                assert got[1] == want[1], (pad, got, want)


@pytest.mark.parametrize("mode,pad", [("reflect", (2, -4)), ("reflect", (-3, 3)),
                                      ("replicate", (3, -5)), ("replicate", (-2, 2)),
                                      ("circular", (-2, 1)), ("circular", (-4, 0)),
                                      ("reflect", (1, -2, -1, 2)), ("circular", (2, -2, -1, 1))])
def test_pad_cropping_gradcheck(mode, pad):
    shape = (2, 4) if len(pad) == 2 else (1, 3, 4)
    x = ce.tensor(rnd(shape, np.float64), requires_grad=True)
    assert gradcheck(lambda t: F.pad(t, pad, mode=mode), (x,))


def test_pad_bad_input():
    _raises(RuntimeError, "Argument #4: Padding size should be less than the corresponding input "
            "dimension, but got: padding (3, 3) at dimension 2 of input [1, 1, 3]",
            lambda: F.pad(ce.randn(1, 1, 3), (3, 3), mode="reflect"))
    _raises(NotImplementedError, "Padding size 2 is not supported for 1D input tensor.",
            lambda: F.pad(ce.randn(3), (1, 1), mode="reflect"))
    _raises(RuntimeError, "Padding value causes wrapping around more than once.",
            lambda: F.pad(ce.randn(1, 1, 3), (4, 4), mode="circular"))
    _raises(NotImplementedError, "Unrecognised padding mode foo",
            lambda: F.pad(ce.randn(1, 1, 3), (1, 1), mode="foo"))
    _raises(NotImplementedError, "Padding size 4 is not supported for 2D input tensor.",
            lambda: F.pad(ce.randn(2, 3), (1, 1, 1, 1), mode="replicate"))


# ------------------------------------------------------------------------- ConvTranspose
CT_GRID = [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 3), dilation=2, groups=2, output_padding=1),
    dict(stride=1, dilation=2, output_padding=1, bias=False),
    dict(stride=3, padding=2),
]


@pytest.mark.parametrize("kw", CT_GRID)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(kw):
    """<conv_transpose2d(x, w), y> == <x, conv2d(y, w)> with the same weight and geometry."""
    kw = dict(kw)
    kw.pop("bias", None)
    op = kw.pop("output_padding", 0)
    x, w = rnd((2, 4, 5, 6), np.float64), rnd((4, 3, 3, 3), np.float64, 1)
    y = F.conv_transpose2d(ce.tensor(x), ce.tensor(w), None, output_padding=op, **kw)
    z = rnd(tuple(y.shape), np.float64, 2)
    s, p, d = _pair(kw.get("stride", 1)), _pair(kw.get("padding", 0)), _pair(kw.get("dilation", 1))
    cz = np_conv2d(z, w, None, s, ((p[0], p[0]), (p[1], p[1])), d, kw.get("groups", 1))
    cz = cz[:, :, :x.shape[2], :x.shape[3]]
    np.testing.assert_allclose((y.numpy() * z).sum(), (x * cz).sum(), rtol=1e-10)


@pytest.mark.parametrize("nd", [1, 2])
def test_conv_transpose_gradcheck(nd):
    shape = (2, 4, 3, 4) if nd == 2 else (2, 4, 5)
    x = ce.tensor(rnd(shape, np.float64), requires_grad=True)
    w = ce.tensor(rnd((4, 1) + (2,) * nd, np.float64, 1), requires_grad=True)
    b = ce.tensor(rnd((2,), np.float64, 2), requires_grad=True)
    fn = F.conv_transpose2d if nd == 2 else F.conv_transpose1d
    assert gradcheck(lambda x, w, b: fn(x, w, b, 2, 1, 1, 2, 1), (x, w, b))
    xu = ce.tensor(rnd(shape[1:], np.float64), requires_grad=True)   # unbatched
    b1 = ce.tensor(rnd((1,), np.float64, 3), requires_grad=True)
    assert gradcheck(lambda x, w, b: fn(x, w, b, 1, 0, 0, 1, 2), (xu, w, b1))


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("kw", CT_GRID)
def test_conv_transpose_matches_torch(kw, nd):
    torch = pytest.importorskip("torch")
    kw = dict(kw)
    if nd == 1:
        kw = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    tm = getattr(torch.nn, "ConvTranspose%dd" % nd)(4, 6, 3, **kw)
    cm = getattr(nn, "ConvTranspose%dd" % nd)(4, 6, 3, **kw)
    assert repr(cm) == repr(tm) and list(cm.state_dict()) == list(tm.state_dict())
    cm.weight.data = ce.tensor(tm.weight.detach().numpy())
    if tm.bias is not None:
        cm.bias.data = ce.tensor(tm.bias.detach().numpy())
    x = rnd((2, 4, 5, 7) if nd == 2 else (2, 4, 9), np.float32, 3)
    xt, xc = torch.tensor(x, requires_grad=True), ce.tensor(x, requires_grad=True)
    yt, yc = tm(xt), cm(xc)
    np.testing.assert_allclose(yc.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = rnd(tuple(yt.shape), np.float32, 4)
    yt.backward(torch.tensor(g))
    yc.backward(ce.tensor(g))
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cm.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-4)
    if tm.bias is not None:
        np.testing.assert_allclose(cm.bias.grad.numpy(), tm.bias.grad.numpy(), rtol=1e-4,
                                   atol=1e-4)


def test_conv_transpose_output_size_and_bad_input():
    m = nn.ConvTranspose2d(4, 3, 3, stride=2)
    x = ce.randn(2, 4, 5, 5)
    assert tuple(m(x).shape) == (2, 3, 11, 11)
    assert tuple(m(x, output_size=(12, 12)).shape) == (2, 3, 12, 12)
    assert tuple(m(x, output_size=[2, 3, 11, 12]).shape) == (2, 3, 11, 12)
    _raises(ValueError, "requested an output size of (13, 13), but valid sizes range from "
            "[11, 11] to [12, 12]", lambda: m(x, output_size=(13, 13)))
    w = ce.randn(4, 3, 3, 3)
    _raises(RuntimeError, "Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d",
            lambda: F.conv_transpose2d(ce.randn(2, 3), w))
    _raises(RuntimeError, "Given transposed=1, weight of size [4, 3, 3, 3], expected input[2, 5, "
            "5, 5] to have 4 channels, but got 5 channels instead",
            lambda: F.conv_transpose2d(ce.randn(2, 5, 5, 5), w))
    _raises(RuntimeError, "output padding must be smaller than either stride or dilation",
            lambda: F.conv_transpose2d(x, w, stride=2, output_padding=2))
    _raises(RuntimeError, "Calculated output size per channel: (-1 x -1). Output size is too small",
            lambda: F.conv_transpose2d(ce.randn(1, 4, 1, 1), w, padding=2))
    _raises(RuntimeError, "expected bias to be 1-dimensional with 3 elements",
            lambda: F.conv_transpose2d(x, w, ce.randn(4)))
    _raises(RuntimeError, "Given groups=2, expected weight to be divisible by 2 at dimension 0",
            lambda: F.conv_transpose2d(x, ce.randn(3, 3, 3, 3), groups=2))
    _raises(ValueError, 'Only "zeros" padding mode is supported for ConvTranspose2d',
            lambda: nn.ConvTranspose2d(4, 3, 3, padding_mode="reflect"))


def test_conv_transpose_with_an_empty_output_dim_is_empty_like_torch():
    x = ce.tensor(np.ones((2, 4, 2, 2), np.float32), requires_grad=True)
    w = ce.tensor(np.ones((4, 2, 3, 3), np.float32), requires_grad=True)
    y = F.conv_transpose2d(x, w, stride=(1, 5), padding=(2, 0), groups=2, dilation=(1, 3))
    assert tuple(y.shape) == (2, 4, 0, 12)
    y.sum().backward()
    assert not x.grad.numpy().any() and not w.grad.numpy().any()
    with pytest.raises(RuntimeError, match="Output size is too small"):
        F.conv_transpose2d(x, w, padding=(3, 0))
