"""matmul family (cengine.ops.linalg) against numpy, gradchecked in float64, torch-style errors."""
import numpy as np
import pytest

import cengine as ce
from cengine.ops import linalg as L
from cengine.autograd import gradcheck

DTYPES = [np.float32, np.float64]


def _t(a, requires_grad=False):
    return ce.tensor(np.asarray(a), requires_grad=requires_grad)


def _rand(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


MATMUL_SHAPES = [
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((2, 1, 4, 3), (5, 3, 2)), ((5, 2, 3), (5, 3, 4)),
    ((1, 2, 3), (4, 3, 2)), ((2, 3), (4, 3, 5)), ((3, 1, 2, 3), (1, 4, 3, 2)),
    ((2, 0, 3), (3, 4)), ((2, 3), (3, 0)), ((2, 0), (0, 4)), ((2, 1, 3, 2, 3), (1, 2, 1, 3, 4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul_forward(dtype, sa, sb):
    a, b = _rand(sa, dtype, 1), _rand(sb, dtype, 2)
    out = L.matmul(_t(a), _t(b))
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert out.shape == ref.shape
    assert out.dtype.np == dtype
    np.testing.assert_allclose(out._data, ref, **_tol(dtype))


@pytest.mark.parametrize("sa,sb", [s for s in MATMUL_SHAPES if 0 not in s[0] + s[1]], ids=str)
def test_matmul_gradcheck(sa, sb):
    a, b = _t(_rand(sa, seed=3), True), _t(_rand(sb, seed=4), True)
    assert gradcheck(L.matmul, (a, b))


def test_matmul_grad_values_batched_broadcast():
    """dA = dC @ B^T, dB = A^T @ dC summed over the broadcast batch dims, against numpy"""
    a, b = _rand((4, 1, 5, 3), seed=5), _rand((6, 3, 2), seed=6)
    ta, tb = _t(a, True), _t(b, True)
    out = L.matmul(ta, tb)
    g = _rand(out.shape, seed=7)
    out.backward(_t(g))
    ga = np.matmul(g, np.swapaxes(b, -1, -2)).sum(axis=1, keepdims=True)
    gb = np.matmul(np.swapaxes(a, -1, -2), g).sum(axis=0)
    np.testing.assert_allclose(ta.grad._data, ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad._data, gb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_head_views(dtype, nthreads):
    """q @ k^T and p @ v on (b, h, T, E) views of (b, T, h*E) arrays (batch dims that do not
    merge into one stride) go to the kernel as they are; values and grads against numpy"""
    b, T, h, E = 3, 9, 4, 5
    x = _rand((b, T, 3 * h * E), dtype, 11)
    tx = _t(x, True)
    q, k, v = (z.view(b, T, h, E).transpose(1, 2) for z in tx.chunk(3, dim=-1))
    s = L.matmul(q, k.transpose(-2, -1))
    o = L.matmul(s, v)
    qn, kn, vn = (np.asarray(z._data, np.float64) for z in (q, k, v))
    sn = qn @ np.swapaxes(kn, -1, -2)
    np.testing.assert_allclose(o._data, sn @ vn, **_tol(dtype))
    g = _rand(o.shape, dtype, 12).astype(np.float64)
    o.backward(_t(g.astype(dtype)))
    gs = g @ np.swapaxes(vn, -1, -2)
    gq, gk, gv = gs @ kn, np.swapaxes(gs, -1, -2) @ qn, np.swapaxes(sn, -1, -2) @ g
    ref = np.concatenate([z.transpose(0, 2, 1, 3).reshape(b, T, h * E) for z in (gq, gk, gv)], -1)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else _tol(dtype)
    np.testing.assert_allclose(tx.grad._data, ref, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_shaped_products_and_grads(dtype, nthreads):
    """x (B,T,K) @ W^T (a transposed view): forward and both grads as folded GEMMs"""
    x, w = _rand((3, 7, 20), dtype, 8), _rand((11, 20), dtype, 9)
    tx, tw = _t(x, True), _t(w, True)
    out = L.matmul(tx, tw.t())
    np.testing.assert_allclose(out._data, x.astype(np.float64) @ w.T.astype(np.float64),
                               **_tol(dtype))
    g = _rand(out.shape, dtype, 10)
    out.backward(_t(g))
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(tx.grad._data, g64 @ w.astype(np.float64), **_tol(dtype))
    np.testing.assert_allclose(tw.grad._data, np.einsum("btn,btk->nk", g64, x.astype(np.float64)),
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)
    assert tx.grad.dtype.np == dtype and tw.grad.dtype.np == dtype


def test_noncontiguous_operands():
    a = _rand((6, 8), seed=11)
    b = _rand((10, 6), seed=12)
    ta, tb = _t(a, True), _t(b, True)
    # transposed and sliced views go to the kernel as strided operands
    out = L.matmul(ta.t()[::2], tb.t()[:, 1::3])
    ref = a.T[::2] @ b.T[:, 1::3]
    np.testing.assert_allclose(out._data, ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x, y: L.matmul(x.t()[::2], y.t()[:, 1::3]), (ta, tb))


def test_mm_bmm_mv_dot_outer_forward_and_grad():
    A, B = _t(_rand((4, 3), seed=1), True), _t(_rand((3, 5), seed=2), True)
    np.testing.assert_allclose(L.mm(A, B)._data, A._data @ B._data, rtol=1e-12)
    assert gradcheck(L.mm, (A, B))
    X, Y = _t(_rand((2, 4, 3), seed=3), True), _t(_rand((2, 3, 2), seed=4), True)
    np.testing.assert_allclose(L.bmm(X, Y)._data, X._data @ Y._data, rtol=1e-12)
    assert gradcheck(L.bmm, (X, Y))
    v = _t(_rand((3,), seed=5), True)
    np.testing.assert_allclose(L.mv(A, v)._data, A._data @ v._data, rtol=1e-12)
    assert gradcheck(L.mv, (A, v))
    u = _t(_rand((3,), seed=6), True)
    d = L.dot(u, v)
    assert d.shape == ()
    np.testing.assert_allclose(d.item(), float(u._data @ v._data), rtol=1e-12)
    assert gradcheck(L.dot, (u, v))
    w = _t(_rand((4,), seed=7), True)
    np.testing.assert_allclose(L.outer(w, v)._data, np.outer(w._data, v._data), rtol=1e-12)
    assert gradcheck(L.outer, (w, v))
    np.testing.assert_allclose(L.inner(A, _t(_rand((5, 3), seed=8)))._data,
                               np.inner(A._data, _rand((5, 3), seed=8)), rtol=1e-12)


@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, -2.0), (0, 1.5)])
def test_addmm_baddbmm_addmv(beta, alpha):
    M1, M2 = _t(_rand((4, 3), seed=1), True), _t(_rand((3, 5), seed=2), True)
    for inp_shape in [(4, 5), (5,), (1, 5), (4, 1), ()]:
        inp = _t(_rand(inp_shape, seed=3), True)
        out = L.addmm(inp, M1, M2, beta=beta, alpha=alpha)
        np.testing.assert_allclose(out._data, beta * inp._data + alpha * (M1._data @ M2._data),
                                   rtol=1e-12, atol=1e-12)
        assert gradcheck(lambda i, a, b: L.addmm(i, a, b, beta=beta, alpha=alpha), (inp, M1, M2))
    X, Y = _t(_rand((2, 4, 3), seed=4), True), _t(_rand((2, 3, 2), seed=5), True)
    inp = _t(_rand((1, 4, 2), seed=6), True)
    out = L.baddbmm(inp, X, Y, beta=beta, alpha=alpha)
    np.testing.assert_allclose(out._data, beta * inp._data + alpha * (X._data @ Y._data),
                               rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda i, a, b: L.baddbmm(i, a, b, beta=beta, alpha=alpha), (inp, X, Y))
    v, iv = _t(_rand((3,), seed=7), True), _t(_rand((4,), seed=8), True)
    out = L.addmv(iv, M1, v, beta=beta, alpha=alpha)
    np.testing.assert_allclose(out._data, beta * iv._data + alpha * (M1._data @ v._data),
                               rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda i, a, b: L.addmv(i, a, b, beta=beta, alpha=alpha), (iv, M1, v))


def test_addmm_beta_zero_ignores_nan_input():
    inp = _t(np.full((2, 2), np.nan))
    out = L.addmm(inp, _t(np.eye(2)), _t(np.ones((2, 2))), beta=0)
    np.testing.assert_array_equal(out._data, np.ones((2, 2)))


def test_tensor_methods_and_operator():
    a, b = _t(_rand((2, 3), seed=1)), _t(_rand((3, 4), seed=2))
    np.testing.assert_allclose((a @ b)._data, a._data @ b._data, rtol=1e-12)
    np.testing.assert_allclose(a.mm(b)._data, a._data @ b._data, rtol=1e-12)
    np.testing.assert_allclose(a.matmul(b)._data, a._data @ b._data, rtol=1e-12)
    np.testing.assert_allclose((a._data @ b)._data, a._data @ b._data, rtol=1e-12)  # __rmatmul__
    v = _t(_rand((3,), seed=3))
    np.testing.assert_allclose(a.mv(v)._data, a._data @ v._data, rtol=1e-12)
    np.testing.assert_allclose(v.dot(v).item(), float(v._data @ v._data), rtol=1e-12)
    np.testing.assert_allclose(v.outer(v)._data, np.outer(v._data, v._data), rtol=1e-12)
    x = _t(_rand((2, 2, 3), seed=4))
    y = _t(_rand((2, 3, 2), seed=5))
    np.testing.assert_allclose(x.bmm(y)._data, x._data @ y._data, rtol=1e-12)
    inp = _t(_rand((2, 4), seed=6))
    np.testing.assert_allclose(inp.addmm(a, b, beta=2)._data, 2 * inp._data + a._data @ b._data,
                               rtol=1e-12)


def test_integer_matmul_falls_back_to_numpy():
    a = ce.tensor(np.arange(6).reshape(2, 3))
    b = ce.tensor(np.arange(12).reshape(3, 4))
    out = L.matmul(a, b)
    np.testing.assert_array_equal(out._data, np.arange(6).reshape(2, 3) @ np.arange(12).reshape(3, 4))
    assert out.dtype == ce.int64


def test_out_argument():
    a, b = _t(_rand((2, 3), seed=1)), _t(_rand((3, 4), seed=2))
    o = _t(np.zeros((2, 4)))
    r = L.matmul(a, b, out=o)
    assert r is o
    np.testing.assert_allclose(o._data, a._data @ b._data, rtol=1e-12)


def test_errors():
    f32 = lambda *s: _t(np.zeros(s, np.float32))  # noqa: E731
    f64 = lambda *s: _t(np.zeros(s, np.float64))  # noqa: E731
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        L.mm(f32(2, 3), f32(4, 5))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        L.matmul(f32(2, 3), f32(4, 5))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        f32(2, 3) @ f32(4, 5)
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype, but got: float != double"):
        L.mm(f32(2, 3), f64(3, 5))
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype"):
        L.matmul(f32(2, 3), f64(3, 5))
    with pytest.raises(RuntimeError, match="self must be a matrix"):
        L.mm(f32(2, 3, 4), f32(4, 5))
    with pytest.raises(RuntimeError, match="mat2 must be a matrix"):
        L.mm(f32(2, 3), f32(3))
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        L.bmm(f32(2, 3), f32(2, 3, 4))
    with pytest.raises(RuntimeError, match="batch2 must be a 3D tensor"):
        L.bmm(f32(2, 2, 3), f32(3, 4))
    with pytest.raises(RuntimeError, match=r"Expected size for first two dimensions of batch2 tensor to be: \[2, 3\] but got: \[3, 3\]"):
        L.bmm(f32(2, 2, 3), f32(3, 3, 4))
    with pytest.raises(RuntimeError, match="both arguments to matmul need to be at least 1D, but they are 0D and 2D"):
        L.matmul(f32(), f32(2, 2))
    with pytest.raises(RuntimeError, match="inconsistent tensor size"):
        L.dot(f32(3), f32(4))
    with pytest.raises(RuntimeError, match="1D tensors expected, but got 2D and 1D tensors"):
        L.dot(f32(3, 1), f32(3))
    with pytest.raises(RuntimeError, match="dot : expected both vectors to have same dtype, but found Float and Double"):
        L.dot(f32(3), f64(3))
    with pytest.raises(RuntimeError, match=r"size mismatch, got input \(2\), mat \(2x3\), vec \(4\)"):
        L.mv(f32(2, 3), f32(4))
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        L.matmul(f32(2, 2, 3), f32(3, 3, 4))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        L.addmm(f32(2, 5), f32(2, 3), f32(4, 5))
    with pytest.raises(TypeError):
        L.mm([[1.0]], f32(1, 1))


EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)]),
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ij->", [(3, 4)]),
    ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("ab,cb->", [(2, 3), (4, 3)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(eq, shapes):
    arrs = [_rand(s, seed=i) for i, s in enumerate(shapes)]
    out = L.einsum(eq, *[_t(a) for a in arrs])
    np.testing.assert_allclose(out._data, np.einsum(eq, *arrs), rtol=1e-12, atol=1e-12)
    ts = [_t(a, True) for a in arrs]
    assert gradcheck(lambda *xs: L.einsum(eq, *xs), tuple(ts))


def test_einsum_errors():
    with pytest.raises(RuntimeError, match="number of subscripts"):
        L.einsum("ij,jk->ik", _t(np.zeros(3)), _t(np.zeros((3, 3))))
    with pytest.raises(RuntimeError, match="fewer operands"):
        L.einsum("ij,jk->ik", _t(np.zeros((3, 3))))
    with pytest.raises(RuntimeError, match="output subscript z does not appear"):
        L.einsum("ij->iz", _t(np.zeros((3, 3))))
