"""Regression tests for silent differences from torch: gradcheck on detached outputs, .grad
assignment checks, indexing bounds, empty matrix products, var/std/norm edge cases, gradient
clipping definitions, duplicate optimizer parameters. Each test checks a hand-computed
expectation; the *_torch tests compare with torch where it is installed."""
import math
import warnings

import numpy as np
import pytest

import cengine as ce
from cengine.autograd import gradcheck, GradcheckError
from _util import twice_function


def D(*vals, rg=True):
    return ce.tensor(np.array(vals, dtype=np.float64), requires_grad=rg)


# ------------------------------------------------------------------ gradcheck
def test_gradcheck_fails_on_detached_output():
    x = ce.randn(3, dtype=ce.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="Numerical gradient for function expected to be zero"):
        gradcheck(lambda t: (t * 2).detach(), (x,))
    assert gradcheck(lambda t: (t * 2).detach(), (x,), raise_exception=False) is False
    # an output that does not depend on the inputs is fine
    assert gradcheck(lambda t: (t * 0).detach(), (x,))
    # a detached part inside a differentiable output: zero analytic vs non-zero numerical
    with pytest.raises(GradcheckError, match="Jacobian mismatch for output 0 with respect to "
                                             "input 0"):
        gradcheck(lambda t: (t * 2).detach() + t.sum() * 0, (x,))


def test_gradcheck_indices_count_differentiable_ones():
    class Bad(ce.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g * 3, g

    x, y = D(1.0, 2.0), D(3.0, 4.0)
    c = ce.ones(1, dtype=ce.float64)
    # c does not require grad: x is differentiable input 0, the detached output is skipped
    with pytest.raises(GradcheckError, match="output 0 with respect to input 0"):
        gradcheck(lambda a, b, d: ((b * 2).detach(), Bad.apply(b, d)), (c, x, y))


def test_gradcheck_nan_is_a_mismatch():
    x = D(1.0, 2.0)
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        gradcheck(lambda t: t * float("nan"), (x,))


def test_gradcheck_non_reentrant_backward():
    calls = [0]

    def backward(ctx, g):
        calls[0] += 1
        return g * (2 + 1e-9 * calls[0])

    Drift = twice_function("Drift", backward)

    x = D(1.0, 2.0)
    with pytest.raises(GradcheckError, match="Backward is not reentrant"):
        gradcheck(Drift.apply, (x,))
    assert gradcheck(Drift.apply, (x,), raise_exception=False) is False
    assert gradcheck(Drift.apply, (x,), nondet_tol=1e-6)


def test_gradcheck_wrong_gradient_shape_and_inputs():
    Scalar = twice_function("Scalar", lambda ctx, g: g.sum(keepdims=True) * 2)

    # the engine rejects the gradient first, as torch's does
    with pytest.raises(RuntimeError, match=r"Function ScalarBackward0 returned an invalid "
                                           r"gradient at index 0 - got \[1\] but expected shape "
                                           r"compatible with \[3\]"):
        gradcheck(Scalar.apply, (D(1.0, 2.0, 3.0),))
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gradcheck(lambda t: t * 2, (D(1.0, rg=False),))
    with pytest.raises(ValueError, match="at least one input tensor"):
        gradcheck(lambda t: t * 2, (D(1.0, rg=False),), raise_exception=False)
    e = ce.ones(1, dtype=ce.float64).expand(3).requires_grad_()
    with pytest.raises(RuntimeError, match="The 0th input has a dimension with stride 0"):
        gradcheck(lambda t: t * 2, (e,))
    with pytest.raises(TypeError, match="output 0 is float"):
        gradcheck(lambda t: float(t.sum().item()), (D(1.0),))
    x32 = ce.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="Input #0 requires gradient and is not a double"):
        gradcheck(lambda t: t * 2, (x32,), eps=1e-2, atol=1e-2, rtol=1e-2)
    # lists of outputs, non-tensor arguments and a single tensor instead of a tuple
    assert gradcheck(lambda t, s: [t * s], (D(1.0, 2.0), 3.0))
    assert gradcheck(lambda t: t * 2, D(1.0, 2.0))
    assert gradcheck(lambda t: t[:0] * 2, (D(1.0, 2.0),))


def test_gradcheck_matches_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (lambda m: (lambda t: (t * 2).detach()), False),
        (lambda m: (lambda t: (t * 0).detach()), True),
        (lambda m: (lambda t: ((t * 2), (t * 3).detach())), True),
        (lambda m: (lambda t: (t * 2).detach() + t.sum() * 0), False),
        (lambda m: (lambda t: t.sin()), True),
        (lambda m: (lambda t: t * float("nan")), False),
    ]
    xv = np.array([0.3, -1.2, 2.0])
    for make, expected in cases:
        got_ce = gradcheck(make(ce), (ce.tensor(xv, requires_grad=True),),
                           raise_exception=False)
        got_t = torch.autograd.gradcheck(make(torch), (torch.tensor(xv, requires_grad=True),),
                                         raise_exception=False)
        assert got_ce == got_t == expected


# ------------------------------------------------------------------ .grad assignment
def test_grad_assignment_checks_shape_and_dtype():
    p = ce.nn.Parameter(ce.ones(3))
    with pytest.raises(RuntimeError, match=r"assign a gradient of size '\[4\]' to a tensor of "
                                           r"size '\[3\]'"):
        p.grad = ce.ones(4)
    with pytest.raises(RuntimeError, match=r"of size '\[1, 3\]'"):
        p.grad = ce.ones(1, 3)
    with pytest.raises(RuntimeError, match="gradient with dtype 'double' to a tensor with "
                                           "grad_dtype 'Float'"):
        p.grad = ce.ones(3, dtype=ce.float64)
    with pytest.raises(TypeError, match="Tensor or None but got grad of type int"):
        p.grad = 3
    with pytest.raises(RuntimeError, match="can't assign Variable as its own grad"):
        p.grad = p
    assert p.grad is None
    p.grad = ce.full((3,), 2.0)
    assert p.grad.tolist() == [2.0, 2.0, 2.0]
    p.grad = None
    assert p.grad is None
    p.grad = ce.ones(3)
    del p.grad
    assert p.grad is None


def test_wrong_grad_never_reaches_the_optimizer():
    p = ce.nn.Parameter(ce.zeros(2, 2))
    opt = ce.optim.SGD([p], lr=1.0)
    with pytest.raises(RuntimeError):
        p.grad = ce.tensor([1.0, 2.0, 3.0, 4.0])      # same numel, other shape
    p.grad = ce.tensor([[1.0, 2.0], [3.0, 4.0]])
    opt.step()
    assert p.detach().tolist() == [[-1.0, -2.0], [-3.0, -4.0]]


def test_grad_assignment_matches_torch():
    torch = pytest.importorskip("torch")
    for mk in [lambda m: m.ones(4), lambda m: m.ones(3, dtype=m.float64),
               lambda m: m.ones(()), lambda m: m.ones(3, dtype=m.int64)]:
        pc, pt = ce.nn.Parameter(ce.ones(3)), torch.nn.Parameter(torch.ones(3))
        with pytest.raises(RuntimeError) as ec:
            pc.grad = mk(ce)
        with pytest.raises(RuntimeError) as et:
            pt.grad = mk(torch)
        assert str(ec.value).split("'")[0] == str(et.value).split("'")[0]


# ------------------------------------------------------------------ elementwise autograd
def test_remainder_and_fmod_have_gradients():
    a, b = D(1.5, -2.5, 3.0), D(2.0, -1.5, 0.7)
    r = ce.remainder(a, b)
    assert r.requires_grad
    np.testing.assert_allclose(r.detach().numpy(), [1.5, -1.0, 0.2], atol=1e-12)
    r.sum().backward()
    assert a.grad.tolist() == [1.0, 1.0, 1.0]
    assert b.grad.tolist() == [-0.0, -1.0, -4.0]          # -floor(a / b)
    a.grad = b.grad = None
    f = ce.fmod(a, b)
    np.testing.assert_allclose(f.detach().numpy(), [1.5, -1.0, 0.2], atol=1e-12)
    f.sum().backward()
    assert b.grad.tolist() == [-0.0, -1.0, -4.0]          # -trunc(a / b)
    a2, b2 = D(-3.5, 2.5), D(2.0, -2.0)
    ce.remainder(a2, b2).sum().backward()
    assert b2.grad.tolist() == [2.0, 2.0]                 # floor(-1.75) = -2, floor(-1.25) = -2
    a2.grad = b2.grad = None
    ce.fmod(a2, b2).sum().backward()
    assert b2.grad.tolist() == [1.0, 1.0]                 # trunc: -1, -1
    for f in (ce.remainder, ce.fmod):
        assert gradcheck(lambda x, y: f(x, y), (D(1.3, -2.6, 3.1), D(2.0, -1.1, 0.7)))
        assert gradcheck(lambda x: f(x, 0.8), (D(1.3, -2.6, 3.1),))
    assert (D(5.0, 7.0) % 3).requires_grad
    assert (7 % ce.tensor([2, 3])).tolist() == [1, 1]
    assert (7 // ce.tensor([2, 3])).tolist() == [3, 2]


def test_integer_division_by_zero_raises():
    for f in (lambda: ce.remainder(ce.tensor([1, 2]), 0), lambda: ce.fmod(ce.tensor([1]), 0),
              lambda: ce.tensor([3]) // 0, lambda: 3 % ce.tensor([0, 1])):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            f()
    assert math.isnan(ce.remainder(ce.tensor([1.0]), 0).item())


def test_piecewise_constant_ops_keep_the_graph():
    x = D(1.5, -2.5, 3.0)
    for f in (ce.floor, ce.ceil, ce.round, ce.trunc, ce.sign,
              lambda t: ce.div(t, 2, rounding_mode="floor"),
              lambda t: ce.div(t, 2, rounding_mode="trunc")):
        y = f(x)
        assert y.requires_grad
        x.grad = None
        (y * 3).sum().backward()
        assert x.grad.tolist() == [0.0, 0.0, 0.0]
    assert ce.floor(x).grad_fn.name() == "FloorBackward0"


def test_elementwise_autograd_matches_torch():
    torch = pytest.importorskip("torch")
    av, bv = np.array([1.5, -2.5, 3.0, -0.3]), np.array([2.0, -1.5, 0.7, 0.4])
    for name in ("remainder", "fmod"):
        ac, bc = ce.tensor(av, requires_grad=True), ce.tensor(bv, requires_grad=True)
        at, bt = torch.tensor(av, requires_grad=True), torch.tensor(bv, requires_grad=True)
        getattr(ce, name)(ac, bc).sum().backward()
        getattr(torch, name)(at, bt).sum().backward()
        np.testing.assert_allclose(ac.grad.numpy(), at.grad.numpy())
        np.testing.assert_allclose(bc.grad.numpy(), bt.grad.numpy())
    for name in ("floor", "ceil", "round", "trunc", "sign"):
        assert getattr(ce, name)(ce.tensor(av, requires_grad=True)).requires_grad == \
            getattr(torch, name)(torch.tensor(av, requires_grad=True)).requires_grad


# ------------------------------------------------------------------ indexing
def test_negative_indices_raise():
    with pytest.raises(IndexError, match="index out of range in self"):
        ce.index_select(ce.ones(3), 0, ce.tensor([-1]))
    with pytest.raises(RuntimeError, match="index -1 is out of bounds for dimension 0 with size 3"):
        ce.ones(3).scatter_add(0, ce.tensor([-1]), ce.ones(1))
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 0 with size 3"):
        ce.ones(3).scatter_add(0, ce.tensor([3]), ce.ones(1))
    with pytest.raises(RuntimeError, match="index -1 is out of bounds"):
        ce.zeros(3).scatter(0, ce.tensor([-1]), 1.0)
    with pytest.raises(RuntimeError, match="index -1 is out of bounds for dimension 1 with size 4"):
        ce.gather(ce.ones(3, 4), 1, ce.tensor([[-1]]))


def test_scatter_add_size_and_dtype_checks():
    with pytest.raises(RuntimeError, match=r"Expected index \[2, 2\] to be no larger than self "
                                           r"\[3, 4\] apart from dimension 1 and to be no larger "
                                           r"size than src \[1, 9\]"):
        ce.zeros(3, 4).scatter_add(1, ce.zeros(2, 2, dtype=ce.int64), ce.ones(1, 9))
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        ce.zeros(3).scatter_add(0, ce.tensor([0]), ce.ones(1, dtype=ce.float64))
    out = ce.zeros(3, 4).scatter_add(1, ce.zeros(2, 9, dtype=ce.int64), ce.ones(2, 9))
    assert out[:, 0].tolist() == [9.0, 9.0, 0.0]
    assert ce.zeros(3, 4).scatter_add(1, ce.zeros(5, 0, dtype=ce.int64), ce.ones(1, 1)).sum() == 0


def test_gather_empty_index_and_shapes():
    x = ce.arange(12.0).view(3, 4)
    assert ce.gather(x, 1, ce.zeros(3, 0, dtype=ce.int64)).shape == (3, 0)
    assert ce.gather(x, 1, ce.zeros(0, 2, dtype=ce.int64)).shape == (0, 2)
    assert ce.gather(x, 1, ce.zeros(5, 0, dtype=ce.int64)).shape == (5, 0)
    assert ce.gather(x, 1, ce.zeros(2, 9, dtype=ce.int64)).shape == (2, 9)
    with pytest.raises(RuntimeError, match=r"Size does not match at dimension 0 expected index "
                                           r"\[5, 1\] to be no larger than self \[3, 4\] apart "
                                           r"from dimension 1"):
        ce.gather(x, 1, ce.zeros(5, 1, dtype=ce.int64))
    assert ce.gather(ce.tensor(5.0), 0, ce.tensor([0, 0])).tolist() == [5.0, 5.0]
    xg = ce.ones(3, 4, dtype=ce.float64, requires_grad=True)
    y = ce.gather(xg, 1, ce.zeros(3, 0, dtype=ce.int64))
    y.sum().backward()
    assert xg.grad.tolist() == [[0.0] * 4] * 3


def test_take_along_dim_broadcasts():
    x = ce.arange(12.0).view(3, 4)
    r = ce.take_along_dim(x, ce.tensor([[0, 3]]), 1)           # indices (1, 2) -> (3, 2)
    assert r.tolist() == [[0.0, 3.0], [4.0, 7.0], [8.0, 11.0]]
    col = ce.tensor([[10.0], [20.0], [30.0]])                     # input (3, 1), indices (1, 2)
    assert ce.take_along_dim(col, ce.zeros(1, 2, dtype=ce.int64), 1).tolist() == \
        [[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]]
    assert ce.take_along_dim(x, ce.tensor([[-1]]), 1).tolist() == [[3.0], [7.0], [11.0]]
    assert ce.take_along_dim(x, ce.tensor([[0], [1], [2]])).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(RuntimeError, match="size of tensor a \\(3\\) must match the size of "
                                           "tensor b \\(2\\) at non-singleton dimension 0"):
        ce.take_along_dim(x, ce.zeros(2, 2, dtype=ce.int64), 1)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        ce.take_along_dim(x, ce.zeros(2, dtype=ce.int64), 1)
    with pytest.raises(RuntimeError, match="dtype of indices should be Long but got Int"):
        ce.take_along_dim(x, ce.zeros(1, 1, dtype=ce.int32), 1)
    xg = ce.tensor([[1.0], [2.0]], dtype=ce.float64, requires_grad=True)
    ce.take_along_dim(xg, ce.zeros(1, 3, dtype=ce.int64), 1).sum().backward()
    assert xg.grad.tolist() == [[3.0], [3.0]]
    assert gradcheck(lambda t: ce.take_along_dim(t, ce.tensor([[0, 2, 1]]), 1),
                     (ce.randn(2, 3, dtype=ce.float64, requires_grad=True),))


def test_chunk_of_empty_dimension():
    assert [c.shape for c in ce.chunk(ce.ones(0), 3)] == [(0,)] * 3
    assert [c.shape for c in ce.chunk(ce.ones(2, 0), 3, dim=1)] == [(2, 0)] * 3
    assert [c.shape for c in ce.chunk(ce.ones(0, 2), 3, dim=1)] == [(0, 1)] * 2


def test_indexing_matches_torch():
    torch = pytest.importorskip("torch")
    xv = np.arange(12.0).reshape(3, 4)
    for idx, dim in [([[0, 3]], 1), ([[-1]], 1), ([[1], [2], [0]], 0), ([[2, 1, 0, 1]], 0)]:
        ic, it = ce.tensor(idx), torch.tensor(idx)
        np.testing.assert_array_equal(ce.take_along_dim(ce.tensor(xv), ic, dim).numpy(),
                                      torch.take_along_dim(torch.tensor(xv), it, dim).numpy())
    for shape in [(3, 0), (0, 2), (5, 0), (2, 9)]:
        assert tuple(ce.gather(ce.tensor(xv), 1, ce.zeros(*shape, dtype=ce.int64)).shape) == \
            tuple(torch.gather(torch.tensor(xv), 1, torch.zeros(*shape, dtype=torch.long)).shape)
    for n in (0, 1, 5):
        for k in (1, 3, 7):
            assert [tuple(c.shape) for c in ce.chunk(ce.ones(2, n), k, 1)] == \
                [tuple(c.shape) for c in torch.chunk(torch.ones(2, n), k, 1)]


# ------------------------------------------------------------------ empty matrix products
@pytest.mark.parametrize("sa,sb", [((2, 7, 0), (0, 8)), ((3, 0), (0, 4)), ((0, 3), (3, 4)),
                                   ((2, 3, 0), (2, 0, 4)), ((2, 0, 3), (3, 4)),
                                   ((2, 3, 4, 0), (2, 3, 0, 5)), ((0,), (0,)), ((0,), (0, 3)),
                                   ((3, 0), (0,)), ((2, 2, 2, 3, 0), (2, 2, 2, 0, 4)),
                                   ((4, 0), (2, 3, 0, 5))], ids=str)
def test_matmul_with_empty_dimensions(sa, sb):
    a = ce.ones(*sa, dtype=ce.float64, requires_grad=True)
    b = ce.ones(*sb, dtype=ce.float64, requires_grad=True)
    c = ce.matmul(a, b)
    expected = np.matmul(np.ones(sa), np.ones(sb))
    assert c.shape == expected.shape
    np.testing.assert_array_equal(c.detach().numpy(), expected)     # K = 0: zeros
    (c * 2).sum().backward()
    # every case has K = 0 or M = 0: each gradient is empty or a sum over nothing (zeros)
    assert a.grad.shape == sa and b.grad.shape == sb
    assert np.all(a.grad.numpy() == 0) and np.all(b.grad.numpy() == 0)


@pytest.mark.parametrize("f,ref,shapes", [
    (ce.mm, np.matmul, [(3, 0), (0, 4)]), (ce.mm, np.matmul, [(0, 3), (3, 4)]),
    (ce.mm, np.matmul, [(2, 3), (3, 0)]),
    (ce.bmm, np.matmul, [(2, 3, 0), (2, 0, 4)]), (ce.bmm, np.matmul, [(0, 3, 2), (0, 2, 4)]),
    (lambda a, b: ce.einsum("ij,jk->ik", a, b), np.matmul, [(3, 0), (0, 4)]),
    (lambda a, b: ce.einsum("bij,bjk->bik", a, b), np.matmul, [(2, 3, 0), (2, 0, 4)]),
    (lambda a, b: ce.einsum("ij,jk->ik", a, b), np.matmul, [(0, 3), (3, 4)]),
    (ce.inner, np.inner, [(2, 0), (3, 0)]), (ce.outer, np.outer, [(0,), (3,)]),
    (lambda a, b: ce.addmm(ce.ones(3, 4, dtype=ce.float64), a, b),
     lambda a, b: 1.0 + a @ b, [(3, 0), (0, 4)]),
    (lambda a, b: ce.baddbmm(ce.ones(2, 3, 4, dtype=ce.float64), a, b),
     lambda a, b: 1.0 + a @ b, [(2, 3, 0), (2, 0, 4)]),
], ids=lambda v: "x".join(map(str, v)) if isinstance(v, list) else "")
def test_products_with_empty_dimensions(f, ref, shapes):
    xs = [np.random.default_rng(0).standard_normal(s) for s in shapes]
    ts = [ce.tensor(x, requires_grad=True) for x in xs]
    y = f(*ts)
    np.testing.assert_array_equal(y.detach().numpy(), ref(*xs))
    y.sum().backward()
    for t, x in zip(ts, xs):
        assert t.grad.shape == x.shape
        assert np.all(t.grad.numpy() == 0)       # empty, or a sum over an empty dimension


def test_empty_matmul_matches_torch():
    torch = pytest.importorskip("torch")
    for sa, sb in [((2, 7, 0), (0, 8)), ((0, 3), (3, 4)), ((2, 3, 0), (2, 0, 4)), ((0,), (0, 3))]:
        ac, bc = ce.ones(*sa, requires_grad=True), ce.ones(*sb, requires_grad=True)
        at, bt = torch.ones(*sa, requires_grad=True), torch.ones(*sb, requires_grad=True)
        yc, yt = ce.matmul(ac, bc), torch.matmul(at, bt)
        np.testing.assert_array_equal(yc.detach().numpy(), yt.detach().numpy())
        yc.sum().backward()
        yt.sum().backward()
        np.testing.assert_array_equal(ac.grad.numpy(), at.grad.numpy())
        np.testing.assert_array_equal(bc.grad.numpy(), bt.grad.numpy())


# ------------------------------------------------------------------ var / std / norm
def _caught(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = fn()
    return r, [str(x.message) for x in w]


def test_var_of_one_element_backward_is_nan_with_warning():
    for shape in [(), (1,)]:
        x = ce.ones(*shape, dtype=ce.float64, requires_grad=True)
        v, msgs = _caught(lambda: x.var())
        assert any("var(): degrees of freedom is <= 0" in m for m in msgs)
        assert math.isnan(v.item())
        v.backward()
        assert np.isnan(x.grad.numpy()).all()
        x.grad = None
        s, msgs = _caught(lambda: x.std())
        assert any("std(): degrees of freedom is <= 0" in m for m in msgs)
        s.backward()
        assert np.isnan(x.grad.numpy()).all()
    x = ce.ones(1, dtype=ce.float64, requires_grad=True)
    v, msgs = _caught(lambda: x.var(correction=0))          # dof 1: no warning, grad 0
    assert not msgs and v.item() == 0.0
    v.backward()
    assert x.grad.tolist() == [0.0]


def test_var_zero_dof_gradients_follow_torch():
    x = D(1.0, 2.0, 3.0)
    v, _ = _caught(lambda: x.var(correction=3))
    assert v.item() == math.inf
    v.backward()
    g = x.grad.numpy()                    # all-element reduction: inf, nan where x == mean
    assert g[0] == math.inf and math.isnan(g[1]) and g[2] == math.inf
    x = ce.tensor([[1.0, 2.0], [3.0, 3.0]], dtype=ce.float64, requires_grad=True)
    v, _ = _caught(lambda: x.var(dim=1, correction=2))     # per-dim: (2 / 0) * (x - mean)
    v.sum().backward()
    g = x.grad.numpy()
    assert g[0].tolist() == [-math.inf, math.inf] and np.isnan(g[1]).all()
    x.grad = None
    v, _ = _caught(lambda: x.var(dim=1, correction=2.5))   # dof -0.5: 2 / -0.5 = -4
    v.sum().backward()
    assert x.grad.numpy()[0].tolist() == [2.0, -2.0]


def test_std_of_constant_has_zero_gradient():
    x = D(3.0, 3.0, 3.0)
    s = x.std()
    assert s.item() == 0.0
    s.backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    assert gradcheck(lambda t: t.std(dim=1), (ce.randn(3, 4, dtype=ce.float64,
                                                       requires_grad=True),))
    assert gradcheck(lambda t: t.var(dim=0, correction=0), (ce.randn(3, 4, dtype=ce.float64,
                                                                     requires_grad=True),))


def test_std_and_norm_do_not_overflow():
    big = ce.tensor([1e30, -1e30, 3e30, 0.0])
    mean = 0.75e30
    ref = math.sqrt(sum((v - mean) ** 2 for v in [1e30, -1e30, 3e30, 0.0]) / 3)
    assert big.std().item() == pytest.approx(ref, rel=1e-6)             # 1.7078e30
    assert big.var().item() == math.inf                                  # > float32 max
    assert big.norm().item() == pytest.approx(math.sqrt(11) * 1e30, rel=1e-6)
    assert big.norm(p=3).item() == pytest.approx((1 + 1 + 27) ** (1 / 3) * 1e30, rel=1e-6)
    tiny = ce.tensor([1e-30, -1e-30, 3e-30, 0.0])
    assert tiny.norm().item() == pytest.approx(math.sqrt(11) * 1e-30, rel=1e-6)
    huge = ce.tensor([1e200, -1e200, 3e200, 0.0], dtype=ce.float64)
    assert huge.std().item() == pytest.approx(ref * 1e170, rel=1e-12)
    assert huge.norm().item() == pytest.approx(math.sqrt(11) * 1e200, rel=1e-12)
    x = ce.tensor([1e30, 2e30], requires_grad=True)
    x.norm().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1 / math.sqrt(5), 2 / math.sqrt(5)], rtol=1e-6)


def test_norm_p_below_one_gradient_at_zero_and_errors():
    x = D(0.0, 1.0, -2.0)
    x.norm(p=0.5).backward()
    assert x.grad.numpy()[0] == 0.0
    with pytest.raises(RuntimeError, match="Expected a floating point or complex tensor as "
                                           "input. Got Long"):
        ce.tensor([1, 2]).norm()
    with pytest.raises(RuntimeError, match="cannot compute the inf norm on an empty tensor"):
        ce.ones(0).norm(p=float("inf"))
    with pytest.raises(RuntimeError, match="std and var only support floating point"):
        ce.tensor([1, 2]).var()


def test_var_std_norm_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for vals in [rng.standard_normal((3, 4)), np.array([[1.0, 2.0], [3.0, 3.0]]),
                 np.array([[5.0]])]:
        for kw in [{}, {"dim": 1}, {"dim": 0, "correction": 0}, {"dim": 1, "correction": 2},
                   {"correction": vals.size}]:
            for name in ("var", "std"):
                xc = ce.tensor(vals, requires_grad=True)
                xt = torch.tensor(vals, requires_grad=True)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yc, yt = getattr(xc, name)(**kw), getattr(xt, name)(**kw)
                np.testing.assert_allclose(yc.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
                yc.sum().backward()
                yt.sum().backward()
                np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    big = [1e30, -1e30, 3e30, 0.0]
    assert ce.tensor(big).std().item() == pytest.approx(torch.tensor(big).std().item(), rel=1e-6)
    for p in (2, 3, 0.5, 1, float("inf")):
        xc = ce.tensor([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0]], dtype=ce.float64, requires_grad=True)
        xt = torch.tensor(xc.detach().numpy(), requires_grad=True)
        xc.norm(p=p, dim=1).sum().backward()
        xt.norm(p=p, dim=1).sum().backward()
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


# ------------------------------------------------------------------ tril / triu
def test_tril_triu_need_two_dimensions():
    for f, name in ((ce.tril, "tril"), (ce.triu, "triu")):
        with pytest.raises(RuntimeError, match="%s: input tensor must have at least 2 dimensions"
                                               % name):
            f(ce.ones(3))
        with pytest.raises(RuntimeError, match="at least 2 dimensions"):
            f(ce.tensor(1.0))
        assert f(ce.ones(2, 3, 3), 1).shape == (2, 3, 3)


# ------------------------------------------------------------------ gradient clipping
def _params(grads):
    ps = []
    for g in grads:
        p = ce.nn.Parameter(ce.ones(len(g)))
        p.grad = ce.tensor(g)
        ps.append(p)
    return ps


def test_clip_grad_norm_zero_counts_gradients_with_nonzeros():
    # torch: the 0-"norm" of the per-gradient 0-norms, i.e. how many gradients have a non-zero
    ps = _params([[1.0, 0.0, 2.0], [0.0, 0.0]])
    assert ce.nn.utils.clip_grad_norm_(ps, 10.0, norm_type=0).item() == 1.0
    ps = _params([[1.0, 0.0, 2.0], [0.0, 3.0]])
    assert ce.nn.utils.clip_grad_norm_(ps, 10.0, norm_type=0).item() == 2.0
    ps = _params([[1.0, float("nan")], [3.0]])
    assert ce.nn.utils.clip_grad_norm_(ps, 10.0, norm_type=0).item() == 2.0


def test_clip_grad_norm_negative_order_with_inf_and_zero():
    ps = _params([[float("inf")], [float("inf")]])
    total = ce.nn.utils.clip_grad_norm_(ps, 1.0, norm_type=-1)      # used to ZeroDivisionError
    assert total.item() == math.inf
    assert all(math.isnan(p.grad.item()) for p in ps)                 # inf * (1 / inf)
    ps = _params([[1.0, float("inf")], [2.0]])
    assert ce.nn.utils.clip_grad_norm_(ps, 1.0, norm_type=-1).item() == pytest.approx(2 / 3)
    ps = _params([[1.0, 0.0], [2.0]])
    assert ce.nn.utils.clip_grad_norm_(ps, 1.0, norm_type=-1).item() == 0.0


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    cases = [([[1.0, 0.0, 2.0], [0.0, 0.0]], 0), ([[1.0, 0.0, 2.0], [0.0, 3.0]], 0),
             ([[1.0, float("inf")], [2.0]], -1), ([[1.0, float("inf")], [2.0]], -2.5),
             ([[1.0, 0.0], [2.0]], -1), ([[1.0, 2.0], [3.0]], 0.5),
             ([[float("inf")], [float("inf")]], -1), ([[1.0, 2.0], [3.0]], -math.inf),
             ([[1.0, float("nan")], [3.0]], 0), ([[1.0, 2.0], [3.0]], 3)]
    for gs, p in cases:
        pc = _params(gs)
        pt = [torch.nn.Parameter(torch.ones(len(g))) for g in gs]
        for q, g in zip(pt, gs):
            q.grad = torch.tensor(g)
        tc = ce.nn.utils.clip_grad_norm_(pc, 1.0, norm_type=p).item()
        tt = torch.nn.utils.clip_grad_norm_(pt, 1.0, norm_type=p).item()
        assert tc == pytest.approx(tt, rel=1e-5, nan_ok=True)
        for a, b in zip(pc, pt):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5)


# ------------------------------------------------------------------ duplicate parameters
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_duplicate_parameters_warn_and_update_per_listing(name):
    kw = {"momentum": 0.9} if name == "SGD" else {}
    p, q = ce.nn.Parameter(ce.ones(3)), ce.nn.Parameter(ce.ones(2))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt = getattr(ce.optim, name)([p, q, p], lr=0.1, **kw)
    p.grad, q.grad = ce.ones(3), ce.ones(2)
    opt.step()
    opt.step()
    expected = {"SGD": 0.339, "Adam": 0.6, "AdamW": 0.5966, "RMSprop": -1.7929,
                "Adagrad": 0.7216}[name]     # torch's single-tensor loop, hand-traced for SGD
    np.testing.assert_allclose(p.detach().numpy(), expected, atol=1e-4)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter "
                                         "group"):
        getattr(ce.optim, name)([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_duplicate_parameters_large_tensor_deterministic():
    # one listing per fused call: two threads never update the same array at once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            p = ce.nn.Parameter(ce.ones(1 << 18))
            opt = ce.optim.SGD([p, p], lr=0.25)
            p.grad = ce.ones(1 << 18)
            opt.step()
            assert np.all(p.detach().numpy() == 0.5)


def test_duplicate_parameters_match_torch():
    torch = pytest.importorskip("torch")
    for name in ["SGD", "Adam", "RMSprop", "Adagrad"]:
        kw = {"momentum": 0.9} if name == "SGD" else {}
        pc, qc = ce.nn.Parameter(ce.ones(3)), ce.nn.Parameter(ce.ones(2))
        pt, qt = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            oc = getattr(ce.optim, name)([pc, qc, pc], lr=0.1, **kw)
            ot = getattr(torch.optim, name)([pt, qt, pt], lr=0.1, **kw)
        for _ in range(3):
            pc.grad, qc.grad = ce.ones(3), ce.ones(2)
            pt.grad, qt.grad = torch.ones(3), torch.ones(2)
            oc.step()
            ot.step()
        np.testing.assert_allclose(pc.detach().numpy(), pt.detach().numpy(), rtol=1e-5)
        np.testing.assert_allclose(qc.detach().numpy(), qt.detach().numpy(), rtol=1e-5)


# ------------------------------------------------------------------ found by tests/fuzz
def test_int_then_index_tensor_follows_torch():
    # torch applies the int first: x[-6, :, t] is (2, 1); numpy's rule gives (1, 2)
    x = ce.arange(42.0, dtype=ce.float64).reshape(7, 2, 3)
    y = x[-6, :, ce.tensor([2])]
    assert y.shape == (2, 1) and y.tolist() == [[8.0], [11.0]]
    assert x[1, ..., ce.tensor([0])].shape == (2, 1)
    xg = x.clone().requires_grad_()
    xg[-6, :, ce.tensor([2, 2])].sum().backward()
    assert xg.grad[1].tolist() == [[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]]
    z = ce.zeros(7, 2, 3)
    z[-6, :, ce.tensor([2])] = ce.tensor([[1.0], [2.0]])
    assert z[1].tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]]
    v = ce.tensor([[1.0], [2.0]], dtype=ce.float64, requires_grad=True)
    w = ce.zeros(7, 2, 3, dtype=ce.float64, requires_grad=True) * 1
    w[-6, :, ce.tensor([2])] = v
    w.sum().backward()
    assert v.grad.tolist() == [[1.0], [1.0]]


def test_backward_returning_a_wrong_shape_raises():
    Small = twice_function("Small", lambda ctx, g: g[:1])
    # (2, 3): summed down to (3,) as torch does
    Big = twice_function("Big", lambda ctx, g: np.stack([g, g]))

    x = ce.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="SmallBackward0 returned an invalid gradient at "
                                           "index 0"):
        Small.apply(x).sum().backward()
    Big.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]
    y = ce.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="invalid gradient"):
        (Small.apply(y) + 1).sum().backward()        # also through an intermediate node


def test_broadcast_error_is_torchs():
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(7\) must match the size of "
                                           r"tensor b \(5\) at non-singleton dimension 2"):
        ce.ones(1, 1, 7) + ce.ones(7, 1, 5)
    for f in (ce.mul, ce.div, ce.eq, ce.remainder, ce.maximum):
        with pytest.raises(RuntimeError, match="must match the size"):
            f(ce.ones(2, 3), ce.ones(4, 3))


def test_maximum_minimum_rules():
    with pytest.raises(TypeError, match=r"maximum\(\): argument 'other' \(position 2\) must be "
                                        "Tensor, not float"):
        ce.maximum(ce.ones(2), 0.5)
    a, b = D(1.0, float("nan"), 2.0), D(1.0, 0.0, 3.0)
    ce.maximum(a, b).sum().backward()
    # tie: half each; NaN on one side: the gradient goes to both; loser: nothing
    assert a.grad.tolist() == [0.5, 1.0, 0.0] and b.grad.tolist() == [0.5, 1.0, 1.0]
    a.grad = b.grad = None
    ce.minimum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 1.0, 1.0] and b.grad.tolist() == [0.5, 1.0, 0.0]


def test_nan_rules_of_sign_abs_max():
    x = D(float("nan"), -2.0, 0.0)
    assert ce.sign(x).tolist() == [0.0, -1.0, 0.0]           # torch: sign(nan) = 0
    ce.abs(x).sum().backward()
    assert x.grad.tolist() == [0.0, -1.0, 0.0]
    x = D(1e30, float("nan"))
    x.max().backward()                                         # max(): gradient to the NaN
    assert x.grad.tolist() == [0.0, 1.0]
    x = D(1.0, float("nan"))
    x.amax().backward()                                        # amax: torch's mask -> all NaN
    assert np.isnan(x.grad.numpy()).all()
    a, b = D(float("inf"), 3.0), D(2.0, 2.0)
    ce.remainder(a, b).sum().backward()
    assert math.isnan(b.grad.tolist()[0]) and b.grad.tolist()[1] == -1.0


def test_empty_reduction_errors_are_torchs():
    with pytest.raises(IndexError, match=r"amax\(\): Expected reduction dim 0 to have non-zero"):
        ce.amax(ce.ones(0, 3), 0)
    with pytest.raises(IndexError, match=r"argmax\(\): Expected reduction dim to be specified "
                                         r"for input.numel\(\) == 0"):
        ce.argmax(ce.ones(0, 3))
    with pytest.raises(IndexError, match=r"argmin\(\): Expected reduction dim 0"):
        ce.argmin(ce.ones(0, 3), 0)
    with pytest.raises(RuntimeError, match=r"min\(\): Expected reduction dim to be specified"):
        ce.min(ce.ones(0))
    assert ce.amax(ce.ones(0, 3), 1).shape == (0,)
    assert ce.argmax(ce.ones(0, 3), 1).shape == (0,)
    assert ce.max(ce.ones(0, 3), 1).values.shape == (0,)


def test_scatter_add_backward_with_src_larger_than_index():
    x = ce.zeros(3, 4, dtype=ce.float64, requires_grad=True)
    src = ce.arange(1.0, 13.0, dtype=ce.float64).reshape(3, 4).requires_grad_()
    idx = ce.tensor([[0, 1], [2, 3]])                  # (2, 2): smaller than x and src
    y = ce.scatter_add(x, 1, idx, src)
    assert y.tolist() == [[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 5.0, 6.0], [0.0, 0.0, 0.0, 0.0]]
    w = ce.arange(12.0, dtype=ce.float64).reshape(3, 4)
    (y * w).sum().backward()
    assert src.grad.tolist() == [[0.0, 1.0, 0.0, 0.0], [6.0, 7.0, 0.0, 0.0], [0.0] * 4]
    assert x.grad.tolist() == w.tolist()


def test_inplace_op_keeps_the_value_it_overwrites():
    # y.mul_(b) needs the old y for b's gradient: torch saves the original, so backward works
    a, b = D(1.0, 2.0, 3.0), D(4.0, 5.0, 6.0)
    y = a * 1
    y.mul_(b)
    (y * 2).sum().backward()
    assert a.grad.tolist() == [8.0, 10.0, 12.0] and b.grad.tolist() == [2.0, 4.0, 6.0]
    a.grad = b.grad = None
    y = a * 1
    y.div_(b)
    y.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), [-1 / 16, -2 / 25, -3 / 36])
    a.grad = None
    y = a * 1
    y.clamp_(1.5, 2.5)
    y.sum().backward()
    assert a.grad.tolist() == [0.0, 1.0, 0.0]
    e = ce.zeros(0, 2, dtype=ce.float64, requires_grad=True)
    z = e * 1
    z.mul_(D(1.0, 2.0))
    z.sum().backward()
    assert e.grad.shape == (0, 2)
    # a value saved by an earlier node is still protected
    x = D(0.5, 1.0)
    w = x.exp()
    w.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        w.sum().backward()


def test_prod_gradient_does_not_overflow_in_float32():
    # the exclusive products are moderate, the running ones are not: 1e30 * 1e30 overflows
    # float32 (so does this forward's running product: inf, as torch's)
    x = ce.tensor([1e30, 1e30, 1e-30, 1e-30], requires_grad=True)
    x.prod().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1e-30, 1e-30, 1e30, 1e30], rtol=1e-5)
