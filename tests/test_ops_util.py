"""The helpers the op modules share (cengine/ops/_util.py): one out= writer, one broadcast-gradient
reducer, the kernel array helpers."""
import numpy as np
import pytest

import cengine as ce
from cengine.autograd import gradcheck
from cengine.ops import _util


# ---------------------------------------------------------------- write_out (out=)
def test_write_out_none_returns_result():
    r = ce.ones(2)
    assert _util.write_out(r, None) is r


def test_write_out_copies_resizes_and_bumps_version():
    o = ce.zeros(1)
    v = o._version[0]
    r = _util.write_out(ce.tensor(np.arange(6.0).reshape(2, 3)), o, "mm")
    assert r is o and tuple(o.shape) == (2, 3) and o._version[0] == v + 1
    np.testing.assert_array_equal(o.numpy(), np.arange(6.0).reshape(2, 3))
    o2 = ce.zeros(2, 3, dtype=ce.float32)   # same shape: written into its own storage, dtype kept
    arr = o2._data
    _util.write_out(ce.ones(2, 3, dtype=ce.float64), o2)
    assert o2._data is arr and o2.dtype == ce.float32 and o2.numpy().sum() == 6


def test_write_out_errors():
    with pytest.raises(TypeError, match=r"^mm\(\): argument 'out' must be Tensor, not int$"):
        _util.write_out(ce.ones(1), 3, "mm")
    with pytest.raises(TypeError, match=r"^argument 'out' must be Tensor, not list$"):
        _util.write_out(ce.ones(1), [1.0])
    o = ce.zeros(1, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"^bmm\(\): functions with out=\.\.\. arguments don't "
                                           r"support automatic differentiation"):
        _util.write_out(ce.ones(1), o, "bmm")
    with ce.no_grad():   # allowed without a graph
        assert _util.write_out(ce.ones(1), o, "bmm") is o


@pytest.mark.parametrize("name,args", [
    ("mm", lambda: (ce.randn(2, 3), ce.randn(3, 4))),
    ("matmul", lambda: (ce.randn(2, 3), ce.randn(3, 4))),
    ("bmm", lambda: (ce.randn(1, 2, 3), ce.randn(1, 3, 4))),
    ("mv", lambda: (ce.randn(2, 3), ce.randn(3))),
    ("dot", lambda: (ce.randn(3), ce.randn(3))),
    ("addmm", lambda: (ce.randn(2, 4), ce.randn(2, 3), ce.randn(3, 4))),
    ("baddbmm", lambda: (ce.randn(1, 2, 4), ce.randn(1, 2, 3), ce.randn(1, 3, 4))),
    ("addmv", lambda: (ce.randn(2), ce.randn(2, 3), ce.randn(3))),
])
def test_linalg_out_names_in_errors_like_torch(name, args):
    a = args()
    with pytest.raises(RuntimeError, match=r"^%s\(\): functions with out=" % name):
        getattr(ce, name)(*a, out=ce.zeros(1, requires_grad=True))
    o = ce.zeros(1)
    r = getattr(ce, name)(*a, out=o)
    assert r is o
    np.testing.assert_allclose(o.numpy(), getattr(ce, name)(*a).numpy(), rtol=1e-6)


def test_elementwise_and_cat_out():
    o = ce.zeros(3)
    assert ce.add(ce.ones(3), ce.ones(3), out=o) is o and o.numpy().tolist() == [2, 2, 2]
    o = ce.zeros(1)
    assert ce.cat([ce.ones(2), ce.zeros(1)], out=o) is o and o.numpy().tolist() == [1, 1, 0]
    with pytest.raises(RuntimeError, match="functions with out=... arguments"):
        ce.mul(ce.ones(2), 2, out=ce.zeros(2, requires_grad=True))


# ---------------------------------------------------------------- unbroadcast
@pytest.mark.parametrize("gshape,shape", [
    ((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)), ((2, 3), ()),
    ((4, 2, 3), (2, 1)), ((4, 1, 3), (1, 1, 3)), ((5, 0, 3), (1, 3)), ((2, 3, 4, 5), (3, 1, 5)),
])
def test_unbroadcast_inverts_numpy_broadcasting(gshape, shape):
    g = np.random.default_rng(0).standard_normal(gshape)
    # the adjoint of broadcast_to: <unbroadcast(g), x> == <g, broadcast_to(x)>
    x = np.random.default_rng(1).standard_normal(shape)
    r = _util.unbroadcast(g, shape)
    assert r.shape == shape
    np.testing.assert_allclose(np.sum(r * x), np.sum(g * np.broadcast_to(x, gshape)), atol=1e-12)


def test_unbroadcast_same_shape_is_identity():
    g = np.ones((2, 3))
    assert _util.unbroadcast(g, (2, 3)) is g


def test_matmul_and_addmm_broadcast_gradients():
    """The gradients that went through linalg's own reducers (_sum_to / _sum_to_shape)."""
    rng = np.random.default_rng(2)
    t = lambda *s: ce.tensor(rng.standard_normal(s), requires_grad=True)  # noqa: E731
    assert gradcheck(ce.matmul, (t(3, 1, 2, 4), t(5, 4, 3)))
    assert gradcheck(ce.matmul, (t(1, 2, 4), t(3, 4, 2)))
    assert gradcheck(ce.matmul, (t(2, 4), t(3, 4, 2)))
    assert gradcheck(lambda i, a, b: ce.baddbmm(i, a, b, beta=0.5), (t(1, 2), t(3, 2, 4), t(3, 4, 2)))
    assert gradcheck(lambda i, a, b: ce.addmm(i, a, b, beta=2.0), (t(1), t(2, 3), t(3, 4)))


# ---------------------------------------------------------------- kernel array helpers
def test_f_reshape_keep():
    a = np.arange(6.0).reshape(2, 3)
    assert _util._f(a) is a
    at = a.T
    c = _util._f(at)
    assert c.flags.c_contiguous and not np.shares_memory(c, a)
    np.testing.assert_array_equal(c, at)
    z = np.array(3.0)
    assert _util._f(z).ndim == 0
    assert _util._reshape(a, (2, 3)) is a and _util._reshape(a, [2, 3]) is a
    assert _util._reshape(a, (3, 2)).shape == (3, 2)
    v = a.reshape(3, 2)
    assert _util._keep(v, a) is a          # a view of the input: save the input itself
    private = a.copy()
    assert _util._keep(private, a) is private
    assert _util._keep(a, a) is a
