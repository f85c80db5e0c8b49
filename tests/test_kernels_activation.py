"""Kernel-level tests of the fused activations (cengine._C.act_forward / act_backward).

Forward and backward on every ISA path and 1/2 threads against float64/longdouble formulas
(scipy/mpmath for erf), against the scalar *_ref kernels, on awkward sizes; special values;
accumulate and in-place modes; bad inputs."""
import numpy as np
import pytest
from scipy.special import erfc

from cengine import _C

KINDS = ["relu", "leaky_relu", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "softplus"]
SIZES = [1, 7, 15, 17, 33, 1000, 1025, 40001]   # 40001 > 2*16384: two threads really split it
DTYPES = [np.float32, np.float64]
K_TANH = 2 * np.sqrt(2 / np.pi)


def _sigmoid_ld(x):
    x = np.asarray(x, dtype=np.longdouble)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def ref_forward(kind, x, alpha=None, beta=None):
    """Reference in long double (float64 for erfc) from the exact input values."""
    xl = x.astype(np.longdouble)
    if kind == "relu":
        return np.where(xl > 0, xl, 0)
    if kind == "leaky_relu":
        a = 0.01 if alpha is None else alpha
        return np.where(xl > 0, xl, xl * x.dtype.type(a))
    if kind == "sigmoid":
        return _sigmoid_ld(xl)
    if kind == "tanh":
        return np.tanh(xl)
    if kind == "silu":
        return xl * _sigmoid_ld(xl)
    if kind == "gelu":
        xd = x.astype(np.float64)
        return (0.5 * xd * erfc(-xd / np.sqrt(2))).astype(np.longdouble)
    if kind == "gelu_tanh":
        return xl * _sigmoid_ld(np.longdouble(K_TANH) * (xl + np.longdouble(0.044715) * xl ** 3))
    if kind == "softplus":
        b = np.longdouble(1.0 if alpha is None else alpha)
        t = 20.0 if beta is None else beta
        bx = xl * b
        sp = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / b
        return np.where(x.astype(np.float64) * (1.0 if alpha is None else alpha) > t, xl, sp)
    raise ValueError(kind)


def ref_grad(kind, x, alpha=None, beta=None):
    """f'(x) in long double."""
    xl = x.astype(np.longdouble)
    if kind == "relu":
        return np.where(xl > 0, 1, 0).astype(np.longdouble)
    if kind == "leaky_relu":
        return np.where(xl > 0, 1, x.dtype.type(0.01 if alpha is None else alpha)).astype(np.longdouble)
    if kind == "sigmoid":
        s = _sigmoid_ld(xl)
        return s * (1 - s)
    if kind == "tanh":
        return 1 - np.tanh(xl) ** 2
    if kind == "silu":
        s = _sigmoid_ld(xl)
        return s * (1 + xl * (1 - s))
    if kind == "gelu":
        xd = x.astype(np.float64)
        return (0.5 * erfc(-xd / np.sqrt(2)) + xd * np.exp(-0.5 * xd * xd) / np.sqrt(2 * np.pi)).astype(np.longdouble)
    if kind == "gelu_tanh":
        k = np.longdouble(K_TANH)
        s = _sigmoid_ld(k * (xl + np.longdouble(0.044715) * xl ** 3))
        return s + xl * s * (1 - s) * k * (1 + 3 * np.longdouble(0.044715) * xl * xl)
    if kind == "softplus":
        b = 1.0 if alpha is None else alpha
        t = 20.0 if beta is None else beta
        return np.where(x.astype(np.float64) * b > t, 1, _sigmoid_ld(xl * np.longdouble(b)))
    raise ValueError(kind)


def fwd_tol(kind, x):
    """Allowed |error| / (eps*|ref|): a few ulp, plus the conditioning of rounding an argument
    inside the formula where that is inherent (gelu: erfc of x/sqrt2; gelu_tanh: sigmoid(2u))."""
    eps = np.finfo(x.dtype).eps
    xd = np.abs(x.astype(np.float64))
    k = np.full(x.shape, 4.0)
    if kind == "gelu" and x.dtype == np.float64:
        k += 12 + 2 * xd * xd   # the float64 scipy reference rounds x/sqrt2 (mpmath test below is tight)
    if kind == "gelu_tanh":
        k += 4 * K_TANH * (xd + 0.044715 * xd ** 3)
    return k * eps


def bwd_tol(kind, x):
    eps = np.finfo(x.dtype).eps
    if kind == "gelu_tanh":   # the rounding of u enters through s and x*s*(1-s)*u'
        return 8 * eps + 4 * fwd_tol(kind, x) * (1 + np.abs(x.astype(np.float64)))
    return 8 * eps


def inputs(n, dtype, seed=0):
    rng = np.random.default_rng(seed + n)
    x = rng.standard_normal(n) * 4
    if n >= 7:
        x[:7] = [0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 0.625]
    return x.astype(dtype)


def assert_close_rel(y, r, tol, absfloor, what):
    y = y.astype(np.longdouble)
    err = np.abs(y - r)
    ok = err <= tol * np.abs(r) + absfloor
    if not ok.all():
        i = np.flatnonzero(~ok)[0]
        raise AssertionError("%s: %d bad, first at %d: got %r want %r" % (what, (~ok).sum(), i, y[i], r[i]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_reference(kind, dtype, isa, nthreads):
    tiny = np.finfo(dtype).tiny
    for n in SIZES:
        x = inputs(n, dtype)
        y = _C.act_forward(kind, x)
        assert y.dtype == dtype and y.shape == x.shape
        assert_close_rel(y, ref_forward(kind, x), fwd_tol(kind, x), 4 * tiny, "%s n=%d" % (kind, n))
        yr = _C.act_forward_ref(kind, x)
        assert_close_rel(y, yr.astype(np.longdouble), 2 * fwd_tol(kind, x), 4 * tiny, "%s vs ref" % kind)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_reference(kind, dtype, isa, nthreads):
    eps = np.finfo(dtype).eps
    for n in SIZES:
        x = inputs(n, dtype)
        dy = np.random.default_rng(n).standard_normal(n).astype(dtype)
        y = _C.act_forward(kind, x)
        kw = {"y": y} if _C.act_backward_uses(kind) == "y" else {"x": x}
        g = _C.act_backward(kind, dy, **kw)
        r = ref_grad(kind, x) * dy.astype(np.longdouble)
        # derivatives are O(1): absolute slack relative to |dy| covers cancellation near f'=0
        # and the rounding of y for the y-based kinds
        assert_close_rel(g, r, bwd_tol(kind, x), 16 * eps * np.abs(dy).astype(np.longdouble) + 4 * np.finfo(dtype).tiny,
                         "%s n=%d" % (kind, n))
        gr = _C.act_backward_ref(kind, dy, **kw)
        assert_close_rel(g, gr.astype(np.longdouble), 2 * bwd_tol(kind, x), 32 * eps * np.abs(dy).astype(np.longdouble), kind)


def test_gelu_f64_against_mpmath(isa):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 100
    x = np.concatenate([np.linspace(-12, 12, 97), [-37.5, 1e-300, -3e-5]])
    want = np.array([float(v * mpmath.erfc(-v / mpmath.sqrt(2)) / 2) for v in map(mpmath.mpf, x)])
    wantd = np.array([float(mpmath.erfc(-v / mpmath.sqrt(2)) / 2 + v * mpmath.exp(-v * v / 2) /
                            mpmath.sqrt(2 * mpmath.pi)) for v in map(mpmath.mpf, x)])
    y = _C.act_forward("gelu", x)
    g = _C.act_backward("gelu", np.ones_like(x), x=x)
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(y, want, rtol=4 * eps, atol=1e-300)
    np.testing.assert_allclose(g, wantd, rtol=4 * eps, atol=16 * eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(dtype, isa):
    x = np.array([-np.inf, np.inf, np.nan, -1000, 1000, -800, 800, 0.0], dtype=dtype)
    f = lambda k, **kw: _C.act_forward(k, x, **kw)
    np.testing.assert_array_equal(f("sigmoid"), np.array([0, 1, np.nan, 0, 1, 0, 1, 0.5], dtype))
    np.testing.assert_array_equal(f("tanh"), np.array([-1, 1, np.nan, -1, 1, -1, 1, 0], dtype))
    np.testing.assert_array_equal(f("relu"), np.array([0, np.inf, np.nan, 0, 1000, 0, 800, 0], dtype))
    np.testing.assert_array_equal(f("softplus"), np.array([0, np.inf, np.nan, 0, 1000, 0, 800, np.log(2)], dtype))
    for k in KINDS:
        y = f(k)
        assert np.isnan(y[2]), k                       # NaN propagates
        assert np.isfinite(y[3:]).all(), k             # no overflow for large |x|
        g = _C.act_backward(k, np.ones_like(x), x=x, y=y)
        assert np.isfinite(g[3:]).all(), k
    np.testing.assert_array_equal(f("silu")[3:], np.array([-0.0, 1000, -0.0, 800, 0], dtype))
    np.testing.assert_array_equal(f("gelu")[3:], np.array([-0.0, 1000, -0.0, 800, 0], dtype))
    # the exp underflow gives exact zeros, overflow exact infinities; denormals survive
    t = np.array([-87.5, -100.0], dtype=np.float32)
    s = _C.act_forward("sigmoid", t)
    want = (1 / (1 + np.exp(-t.astype(np.float64)))).astype(np.float32)
    np.testing.assert_allclose(s, want, rtol=1e-5, atol=2e-45)
    assert s[1] > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_large_inexact_squares(dtype, isa):
    """Large |x| whose square is not exact in the dtype (the low part of x^2 is large there):
    GELU is x (or -0) and its derivative 1 (or 0), never inf/NaN/garbage, on every path."""
    rng = np.random.default_rng(5)
    mags = np.concatenate([[14.0, 15.9, 16.0, 16.1, 17.3, 111378.33, 4.2112034e5, 49355.4, 32776.5,
                            1e9 + 7, 3e38], rng.uniform(10, 2e6, 200)]).astype(dtype)
    x = np.concatenate([mags, -mags])
    y = _C.act_forward("gelu", x)
    g = _C.act_backward("gelu", np.ones_like(x), x=x)
    n = len(mags)
    big = np.abs(x) >= (16 if dtype == np.float32 else 40)   # where Phi(-|x|) underflows
    np.testing.assert_array_equal(y[:n][big[:n]], x[:n][big[:n]])
    np.testing.assert_array_equal(y[n:][big[n:]], np.zeros(big[n:].sum(), dtype))
    np.testing.assert_array_equal(g[big], np.where(x[big] > 0, 1, 0).astype(dtype))
    # the tail x*Phi(x) for x << 0 has condition number ~x^2 (erfc at large argument), so the
    # relative tolerance grows with it
    r = ref_forward("gelu", x)
    cond = 1 + x.astype(np.float64) ** 2
    bad = np.abs(y - r) > 16 * np.finfo(dtype).eps * cond * np.abs(r) + 4 * np.finfo(dtype).tiny
    assert not bad.any(), (x[bad][:4], y[bad][:4], r[bad][:4])


@pytest.mark.parametrize("dtype", DTYPES)
def test_params_leaky_softplus(dtype, isa):
    x = inputs(1025, dtype)
    y = _C.act_forward("leaky_relu", x, alpha=0.2)
    np.testing.assert_array_equal(y, np.where(x > 0, x, x * dtype(0.2)))
    g = _C.act_backward("leaky_relu", np.ones_like(x), x=x, alpha=0.2)
    np.testing.assert_array_equal(g, np.where(x > 0, 1, dtype(0.2)).astype(dtype))
    for beta, thr in [(2.0, 20.0), (0.5, 1.0), (1.0, 5.0)]:
        y = _C.act_forward("softplus", x, alpha=beta, beta=thr)
        r = ref_forward("softplus", x, alpha=beta, beta=thr)
        assert_close_rel(y, r, 16 * np.finfo(dtype).eps, 4 * np.finfo(dtype).tiny, "softplus")
        g = _C.act_backward("softplus", np.ones_like(x), x=x, alpha=beta, beta=thr)
        r = ref_grad("softplus", x, alpha=beta, beta=thr)
        assert_close_rel(g, r, 8 * np.finfo(dtype).eps, 8 * np.finfo(dtype).eps, "softplus'")


@pytest.mark.parametrize("kind", KINDS)
def test_backward_is_derivative_of_forward(kind, isa):
    """Central differences of the kernel's own forward (float64) agree with its backward."""
    x = np.random.default_rng(3).standard_normal(33) * 3
    x = x[np.abs(x) > 1e-3]          # keep away from the relu/leaky kink
    h = 1e-6
    num = (_C.act_forward(kind, x + h) - _C.act_forward(kind, x - h)) / (2 * h)
    y = _C.act_forward(kind, x)
    g = _C.act_backward(kind, np.ones_like(x), x=x, y=y)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accumulate_and_inplace(dtype, isa, nthreads):
    x = inputs(40001, dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    for kind in ["silu", "tanh", "gelu"]:
        y = _C.act_forward(kind, x)
        kw = {"y": y} if _C.act_backward_uses(kind) == "y" else {"x": x}
        g = _C.act_backward(kind, dy, **kw)
        base = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
        acc = base.copy()
        out = _C.act_backward(kind, dy, out=acc, accumulate=True, **kw)
        assert out is acc
        np.testing.assert_allclose(acc, base + g, rtol=2 * np.finfo(dtype).eps, atol=np.finfo(dtype).eps * 4)
        d2 = dy.copy()                                   # dx may alias dy
        _C.act_backward(kind, d2, out=d2, **kw)
        np.testing.assert_array_equal(d2, g)
        x2 = x.copy()                                    # y may alias x
        _C.act_forward(kind, x2, out=x2)
        np.testing.assert_array_equal(x2, y)


def test_multidim_and_empty():
    x = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(_C.act_forward("tanh", x), _C.act_forward("tanh", x.ravel()).reshape(x.shape))
    e = np.empty((0, 4), np.float32)
    assert _C.act_forward("gelu", e).shape == (0, 4)
    assert _C.act_backward("gelu", e, x=e).shape == (0, 4)
    s = np.array(2.0)                                    # 0-d
    assert _C.act_forward("relu", s).shape == ()


def test_relu_backward_accepts_y():
    x = inputs(100, np.float64)
    y = _C.act_forward("relu", x)
    np.testing.assert_array_equal(_C.act_backward("relu", np.ones_like(x), y=y),
                                  _C.act_backward("relu", np.ones_like(x), x=x))
    assert _C.act_backward_uses("relu") == "x" and _C.act_backward_uses("sigmoid") == "y"


def test_bad_inputs():
    x = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        _C.act_forward("swish", x)
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.act_forward("relu", np.ones(8, np.int64))
    with pytest.raises(TypeError, match="expected a numpy array"):
        _C.act_forward("relu", [1.0, 2.0])
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.act_forward("relu", np.ones((4, 4), np.float32).T)
    with pytest.raises(ValueError, match="shape"):
        _C.act_forward("relu", x, out=np.ones(7, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _C.act_forward("relu", x, out=np.ones(8, np.float64))
    with pytest.raises(ValueError, match="needs the forward output y"):
        _C.act_backward("sigmoid", x, x=x)
    with pytest.raises(ValueError, match="needs the forward input x"):
        _C.act_backward("gelu", x, y=x)
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        _C.act_backward("relu", x, x=x, accumulate=True)
    with pytest.raises(ValueError, match="shape"):
        _C.act_backward("relu", x, x=np.ones(9, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_passes_dy_at_nan(dtype, isa, nthreads):
    """torch masks the ReLU gradient with "not x <= 0", so a NaN input passes dy through; the
    vector paths, the tail and the reference agree (NaN at every lane position)."""
    n = 37
    x = np.linspace(-2, 2, n).astype(dtype)
    x[::5] = np.nan
    dy = np.arange(1, n + 1, dtype=dtype)
    want = np.where(np.isnan(x) | (x > 0), dy, 0).astype(dtype)
    for src in ({"x": x}, {"y": _C.act_forward("relu", x)}):
        np.testing.assert_array_equal(_C.act_backward("relu", dy, **src), want)
    np.testing.assert_array_equal(_C.act_backward_ref("relu", dy, x=x), want)
