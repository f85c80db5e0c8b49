"""Kernel-level tests of the nn hot paths (cengine._C softmax / cross-entropy / norms / embedding).

Every kernel on every ISA path and 1/2 threads, against scipy/numpy formulas and against its
scalar *_ref twin, on awkward row lengths; backward against explicit Jacobian-vector products or
central differences; bad inputs raise in the binding."""
import numpy as np
import pytest
from scipy.special import log_softmax as sp_log_softmax, softmax as sp_softmax

from cengine import _C

COLS = [1, 7, 15, 17, 33, 1000, 1025]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def rows_for(C):
    # enough work for two threads on the wide shapes (R*C > 2*16384), a few rows on narrow ones
    return 40 if C >= 1000 else 67


def rnd(shape, dtype, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_forward(dtype, log, isa, nthreads):
    ref_fn = sp_log_softmax if log else sp_softmax
    for C in COLS:
        x = rnd((rows_for(C), C), dtype, C)
        y = _C.softmax_forward(x, log=log)
        assert y.shape == x.shape and y.dtype == dtype
        np.testing.assert_allclose(y, ref_fn(x.astype(np.float64), axis=-1), **TOL[dtype])
        np.testing.assert_allclose(y, _C.softmax_forward_ref(x, log=log), **TOL[dtype])
        if not log:
            np.testing.assert_allclose(y.sum(-1), 1, rtol=0, atol=4e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backward(dtype, log, isa, nthreads):
    for C in COLS:
        R = rows_for(C)
        x = rnd((R, C), dtype, C)
        dy = rnd((R, C), dtype, C + 1, 1.0)
        y = _C.softmax_forward(x, log=log)
        dx = _C.softmax_backward(y, dy, log=log)
        p = sp_softmax(x.astype(np.float64), axis=-1)
        g = dy.astype(np.float64)
        if log:
            want = g - p * g.sum(-1, keepdims=True)
        else:
            want = p * (g - (g * p).sum(-1, keepdims=True))
        np.testing.assert_allclose(dx, want, **TOL[dtype])
        np.testing.assert_allclose(dx, _C.softmax_backward_ref(y, dy, log=log), **TOL[dtype])


@pytest.mark.parametrize("log", [False, True])
def test_softmax_backward_equals_jacobian_vector_product(log, isa):
    rng = np.random.default_rng(5)
    for C in [1, 3, 7, 17]:
        x = rng.standard_normal((4, C))
        dy = rng.standard_normal((4, C))
        y = _C.softmax_forward(x, log=log)
        dx = _C.softmax_backward(y, dy, log=log)
        for r in range(4):
            p = sp_softmax(x[r])
            # explicit Jacobian J[i,j] = d y_i / d x_j
            J = (np.eye(C) - p[None, :]) if log else (np.diag(p) - np.outer(p, p))
            np.testing.assert_allclose(dx[r], J.T @ dy[r], rtol=1e-12, atol=1e-14)
            # and the Jacobian itself against central differences of the kernel's forward
            h = 1e-6
            Jn = np.empty((C, C))
            for j in range(C):
                e = np.zeros(C)
                e[j] = h
                Jn[:, j] = (_C.softmax_forward(x[r] + e, log=log) - _C.softmax_forward(x[r] - e, log=log)) / (2 * h)
            np.testing.assert_allclose(Jn, J, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extremes(dtype, isa):
    x = np.array([[1e4, 0, -1e4, 1e4 - 1],
                  [-np.inf, 0.0, -np.inf, 1.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [np.nan, 0, 1, 2]], dtype=dtype)
    y = _C.softmax_forward(x)
    ly = _C.softmax_forward(x, log=True)
    np.testing.assert_allclose(y[0], sp_softmax(x[0].astype(np.float64)), **TOL[dtype])
    np.testing.assert_allclose(ly[0], sp_log_softmax(x[0].astype(np.float64)), **TOL[dtype])
    np.testing.assert_allclose(y[1], [0, 1 / (1 + np.e), 0, np.e / (1 + np.e)], **TOL[dtype])
    assert ly[1, 0] == -np.inf and ly[1, 2] == -np.inf
    assert np.isnan(y[2]).all() and np.isnan(ly[2]).all()       # torch gives NaN for an all -inf row
    assert np.isnan(y[3]).all() and np.isnan(ly[3]).all()       # NaN spreads over its row
    assert np.isfinite(y[:2]).all()


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_accumulate_alias_shapes(dtype, log, isa, nthreads):
    x = rnd((3, 5, 33), dtype)
    y = _C.softmax_forward(x, log=log)
    np.testing.assert_array_equal(y, _C.softmax_forward(x.reshape(15, 33), log=log).reshape(x.shape))
    x2 = x.copy()
    _C.softmax_forward(x2, out=x2, log=log)                     # in place
    np.testing.assert_array_equal(x2, y)
    dy = rnd(x.shape, dtype, 1)
    dx = _C.softmax_backward(y, dy, log=log)
    base = rnd(x.shape, dtype, 2)
    acc = base.copy()
    assert _C.softmax_backward(y, dy, out=acc, log=log, accumulate=True) is acc
    np.testing.assert_allclose(acc, base + dx, **TOL[dtype])
    d2 = dy.copy()
    _C.softmax_backward(y, d2, out=d2, log=log)                 # dx aliasing dy
    np.testing.assert_array_equal(d2, dx)
    e = np.empty((0, 7), dtype)
    assert _C.softmax_forward(e).shape == (0, 7)
    assert _C.softmax_backward(e, e).shape == (0, 7)
    v = rnd((9,), dtype)                                        # 1-d: one row
    np.testing.assert_allclose(_C.softmax_forward(v), sp_softmax(v.astype(np.float64)), **TOL[dtype])


def test_softmax_bad_inputs():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.softmax_forward(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.softmax_forward(np.ones((3, 2), np.float32).T)
    with pytest.raises(ValueError, match="shape"):
        _C.softmax_backward(x, np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _C.softmax_backward(x, np.ones((2, 3), np.float64))
    with pytest.raises(ValueError, match="accumulate=True needs out"):
        _C.softmax_backward(x, x, accumulate=True)
    with pytest.raises(ValueError, match="shape"):
        _C.softmax_forward(x, out=np.ones((3, 2), np.float32))
