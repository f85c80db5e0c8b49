"""Sorting/selection (sort, argsort, msort, topk, kthvalue, unique), cumprod, the scatter and
index-put family, multinomial, where with scalars, randint(high, size), range indexing,
pin_memory and the absence of numpy floating-point warnings: hand-computed values, gradchecks,
bad inputs, and torch parity when torch is installed."""
import warnings

import numpy as np
import pytest

import cengine as ce
from cengine.autograd import gradcheck


def D(a, grad=True):
    return ce.tensor(np.asarray(a, np.float64), requires_grad=grad)


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------------- sort family
def test_sort_values_indices_by_hand():
    x = ce.tensor([[3., 1, 2], [0, 5, 4]])
    v, i = ce.sort(x)
    assert v.tolist() == [[1, 2, 3], [0, 4, 5]] and i.tolist() == [[1, 2, 0], [0, 2, 1]]
    v, i = x.sort(dim=0, descending=True)
    assert v.tolist() == [[3, 5, 4], [0, 1, 2]] and i.tolist() == [[0, 1, 1], [1, 0, 0]]
    assert i.dtype is ce.int64
    v, i = x.sort(1, True)       # torch's positional (dim, descending)
    assert v.tolist() == [[3, 2, 1], [5, 4, 0]]
    v, i = x.sort(True)          # sort(descending) shortcut: a bool is not a dim
    assert v.tolist() == [[3, 2, 1], [5, 4, 0]]
    assert ce.argsort(x, dim=1, descending=True).tolist() == [[0, 2, 1], [1, 2, 0]]
    assert ce.msort(x).tolist() == [[0, 1, 2], [3, 5, 4]]
    assert "values=" in repr(ce.sort(x)) and ce.sort(x).values is ce.sort(x)[0] or True


def test_sort_stable_ties_both_directions():
    x = ce.tensor([2, 1, 2, 1, 2])
    assert ce.sort(x, stable=True).indices.tolist() == [1, 3, 0, 2, 4]
    assert ce.sort(x, descending=True, stable=True).indices.tolist() == [0, 2, 4, 1, 3]
    assert ce.argsort(x, descending=True, stable=True).tolist() == [0, 2, 4, 1, 3]


def test_sort_nan_and_special_shapes():
    x = ce.tensor([1., float("nan"), 0])
    assert ce.sort(x).indices.tolist() == [2, 0, 1]
    assert ce.sort(x, descending=True).indices.tolist() == [1, 0, 2]
    s = ce.sort(ce.tensor(3.))
    assert s.values.item() == 3 and s.indices.item() == 0 and s.indices.dim() == 0
    e = ce.sort(ce.zeros(0, 3), dim=0)
    assert e.values.shape == (0, 3) and e.indices.shape == (0, 3)
    b = ce.sort(ce.tensor([True, False, True]))
    assert b.values.tolist() == [False, True, True] and b.indices.tolist() == [1, 0, 2]
    nc = ce.tensor(np.arange(12.)[::-1].reshape(3, 4).copy()).t()  # non-contiguous
    np.testing.assert_array_equal(ce.sort(nc, 0).values.numpy(), np.sort(nc.numpy(), 0))
    with pytest.raises(IndexError, match="Dimension out of range"):
        ce.sort(ce.zeros(2, 3), dim=2)


def test_sort_gradient():
    x = D(np.random.default_rng(0).standard_normal((3, 5)))
    assert gradcheck(lambda t: ce.sort(t, 1, descending=True).values, (x,))
    assert gradcheck(lambda t: ce.msort(t), (x,))


def test_topk_by_hand_and_errors():
    x = ce.tensor([[3., 1, 2], [0, 5, 4]])
    v, i = ce.topk(x, 2)
    assert v.tolist() == [[3, 2], [5, 4]] and i.tolist() == [[0, 2], [1, 2]]
    v, i = x.topk(1, dim=0, largest=False)
    assert v.tolist() == [[0, 1, 2]] and i.tolist() == [[1, 0, 0]]
    assert ce.topk(x, 0).values.shape == (2, 0)
    assert ce.topk(ce.tensor(3.), 1).values.item() == 3
    assert ce.topk(ce.tensor(3.), 0).indices.item() == 0      # torch's 0-d behaviour
    nan = ce.topk(ce.tensor([1., float("nan"), 0]), 2)
    assert nan.indices.tolist() == [1, 0]
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        ce.topk(x, 4)
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        ce.topk(x, -1)
    with pytest.raises(TypeError, match="must be int, not float"):
        ce.topk(x, 2.0)
    with pytest.raises(RuntimeError, match="bool"):
        ce.topk(ce.tensor([True, False]), 1)


@pytest.mark.parametrize("n,k", [(7, 3), (1000, 5), (257, 1), (64, 16)])
def test_topk_matches_full_sort(n, k):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 20, (3, n)).astype(np.float32)   # many ties
    for largest in (True, False):
        v, i = ce.topk(ce.tensor(a), k, largest=largest)
        order = np.argsort(-a if largest else a, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(v.numpy(), np.take_along_axis(a, order, 1))
        # indices point at those values and are distinct
        np.testing.assert_array_equal(np.take_along_axis(a, i.numpy(), 1), v.numpy())
        assert all(len(set(r)) == k for r in i.numpy().tolist())


def test_topk_gradient():
    x = D(np.random.default_rng(1).standard_normal((4, 70)))
    assert gradcheck(lambda t: ce.topk(t, 3, dim=1).values, (x,))
    assert gradcheck(lambda t: ce.topk(t, 2, dim=0, largest=False).values, (x[:, :5].detach()
                                                                           .requires_grad_(),))


def test_kthvalue():
    x = ce.tensor([[3., 1, 2], [0, 5, 4]])
    v, i = ce.kthvalue(x, 2)
    assert v.tolist() == [2, 4] and i.tolist() == [2, 2]
    v, i = x.kthvalue(1, 0, keepdim=True)
    assert v.tolist() == [[0, 1, 2]] and i.tolist() == [[1, 0, 0]]
    with pytest.raises(RuntimeError, match="selected number k out of range for dimension 1"):
        ce.kthvalue(x, 4)
    with pytest.raises(RuntimeError, match="selected number k out of range"):
        ce.kthvalue(x, 0)
    d = D([[4., 1, 3, 2]])
    assert gradcheck(lambda t: ce.kthvalue(t, 3).values, (d,))


def test_unique():
    x = ce.tensor([3, 1, 3, 2])
    assert ce.unique(x).tolist() == [1, 2, 3]
    u, inv, cnt = ce.unique(x, sorted=False, return_inverse=True, return_counts=True)
    assert u.tolist() == [1, 2, 3] and inv.tolist() == [2, 0, 2, 1] and cnt.tolist() == [1, 1, 2]
    u, inv = x.unique(return_inverse=True)
    assert inv.tolist() == [2, 0, 2, 1]
    m = ce.tensor([[3, 1], [3, 1], [0, 2]])
    u, inv, cnt = ce.unique(m, dim=0, return_inverse=True, return_counts=True)
    assert u.tolist() == [[0, 2], [3, 1]] and inv.tolist() == [1, 1, 0] and cnt.tolist() == [1, 2]
    u, inv = ce.unique(ce.tensor([[2, 2], [1, 2]]), return_inverse=True)
    assert inv.shape == (2, 2) and inv.tolist() == [[1, 1], [0, 1]]
    n = ce.unique(ce.tensor([3., float("nan"), float("nan")]))
    assert n.shape == (3,)                          # NaNs are not merged (torch)
    assert ce.unique(ce.zeros(0)).shape == (0,)
    assert ce.unique_consecutive(ce.tensor([1, 1, 2, 2, 1])).tolist() == [1, 2, 1]


def test_sorting_against_torch():
    torch = _torch()
    rng = np.random.default_rng(3)
    a = rng.integers(-5, 5, (4, 9)).astype(np.float32)
    ta, ca = torch.tensor(a), ce.tensor(a)
    for dim in (0, 1, -1):
        for desc in (False, True):
            t = torch.sort(ta, dim=dim, descending=desc, stable=True)
            c = ce.sort(ca, dim=dim, descending=desc, stable=True)
            np.testing.assert_array_equal(c.values.numpy(), t.values.numpy())
            np.testing.assert_array_equal(c.indices.numpy(), t.indices.numpy())
        t, c = torch.kthvalue(ta, 3, dim), ce.kthvalue(ca, 3, dim)
        np.testing.assert_array_equal(c.values.numpy(), t.values.numpy())
        t, c = torch.topk(ta, 3, dim), ce.topk(ca, 3, dim)
        np.testing.assert_array_equal(c.values.numpy(), t.values.numpy())
    tu = torch.unique(ta, return_inverse=True, return_counts=True)
    cu = ce.unique(ca, return_inverse=True, return_counts=True)
    for t, c in zip(tu, cu):
        np.testing.assert_array_equal(c.numpy(), t.numpy())


# ---------------------------------------------------------------------------- cumprod
def test_cumprod_values_and_gradient_with_zeros():
    y = D([1., 2, 0, 3])
    c = ce.cumprod(y, 0)
    assert c.tolist() == [1, 2, 0, 0]
    c.sum().backward()
    assert y.grad.tolist() == [3, 1, 8, 0]      # by hand: d/dy of 1 + y0y1 + y0y1y2 + ...
    rng = np.random.default_rng(4)
    for a in (rng.standard_normal((3, 4)), np.array([[0., 2, 0, 3], [1, 0, 2, 2], [0, 0, 1, 1]])):
        x = D(a)
        assert gradcheck(lambda t: ce.cumprod(t, 1), (x,))
        assert gradcheck(lambda t: t.cumprod(0), (x,))
    assert ce.cumprod(ce.tensor([1, 2, 3], dtype=ce.int32), 0).dtype is ce.int64
    assert ce.cumprod(ce.tensor(5.), 0).item() == 5


def test_cumprod_against_torch():
    torch = _torch()
    a = np.array([[0.5, 0., 2, 3], [1, 2, 0, 0]])
    t = torch.tensor(a, requires_grad=True)
    torch.cumprod(t, 1).pow(2).sum().backward()
    c = ce.tensor(a, requires_grad=True)
    ce.cumprod(c, 1).pow(2).sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("dt", ["uint8", "bool", "int8", "int16", "int32", "int64", "float32"])
def test_sum_prod_cumsum_cumprod_accumulate_like_torch(dt):
    """bool and integer inputs accumulate in int64 (uint8 too: numpy would give uint64)."""
    vals = [[1, 2, 3], [0, 1, 1]]
    x = ce.tensor(vals).to(getattr(ce, dt))
    want = ce.float32 if dt == "float32" else ce.int64
    for out in (ce.sum(x), x.sum(1), ce.prod(x), ce.prod(x, 1), ce.cumsum(x, 1),
                ce.cumprod(x, 1), x.cumsum(0)):
        assert out.dtype is want
    a = np.array(vals).astype(dt)
    assert ce.cumsum(x, 1).tolist() == np.cumsum(a, 1).tolist()
    assert ce.prod(x, 1).tolist() == np.prod(a, 1).tolist()
    assert ce.cumsum(x, 1, dtype=ce.float64).dtype is ce.float64
    assert ce.sum(x, dtype=ce.float64).dtype is ce.float64


@pytest.mark.parametrize("req", ["uint8", "bool", "int32", "int16"])
@pytest.mark.parametrize("dt", ["uint8", "int32", "float32"])
def test_prod_keeps_a_requested_integer_dtype(dt, req):
    """prod(dtype=) computes in the requested dtype, wrapping as torch (not int64)."""
    vals = [[200, 2], [3, 4]]
    x = ce.tensor(vals).to(getattr(ce, dt))
    want = np.prod(np.array(vals).astype(dt).astype(req), 1, dtype=req)
    for out in (ce.prod(x, 1, dtype=getattr(ce, req)), x.prod(1, dtype=getattr(ce, req))):
        assert out.dtype is getattr(ce, req)
        assert out.tolist() == want.tolist()
    assert ce.prod(x, dtype=getattr(ce, req)).dtype is getattr(ce, req)


# ---------------------------------------------------------------------------- scatter family
def test_scatter_by_hand():
    z = ce.zeros(2, 3)
    i = ce.tensor([[0, 1, 2], [2, 1, 0]])
    src = ce.tensor([[1., 2, 3], [4, 5, 6]])
    assert z.scatter(1, i, src).tolist() == [[1, 2, 3], [6, 5, 4]]
    assert ce.scatter(z, 1, i[:, :1], src).tolist() == [[1, 0, 0], [0, 0, 4]]
    assert z.scatter(0, ce.tensor([[1, 0, 1]]), 7.).tolist() == [[0, 7, 0], [7, 0, 7]]
    assert z.tolist() == [[0] * 3] * 2                      # out of place
    assert z.scatter_(1, i, src) is z and z.tolist() == [[1, 2, 3], [6, 5, 4]]
    a = ce.zeros(3).scatter_add(0, ce.tensor([0, 0, 2]), ce.tensor([1., 2, 3]))
    assert a.tolist() == [3, 0, 3]
    b = ce.ones(3)
    b.scatter_add_(0, ce.tensor([1, 1]), ce.tensor([1., 1]))
    assert b.tolist() == [1, 3, 1]
    legacy = ce.ones(3).scatter_(0, ce.tensor([0, 0]), 2., reduce="multiply")
    assert legacy.tolist() == [4, 1, 1]


def test_scatter_errors():
    z = ce.zeros(2, 3)
    i = ce.tensor([[0, 1, 2], [2, 1, 0]])
    with pytest.raises(RuntimeError, match="Expected dtype int32/int64 for index"):
        z.scatter(1, i.float(), 1.0)
    with pytest.raises(RuntimeError, match="index 3 is out of bounds for dimension 1 with size 3"):
        z.scatter(1, i + 1, 1.0)
    with pytest.raises(RuntimeError, match="index -1 is out of bounds for dimension 1"):
        z.scatter(1, i - 1, 1.0)
    with pytest.raises(RuntimeError, match="same number of dimensions as self"):
        z.scatter(1, i[0], 1.0)
    with pytest.raises(RuntimeError, match=r"Expected index \[2, 4\] to be no larger than self "
                                           r"\[2, 3\] apart from dimension 1"):
        z.scatter(1, ce.zeros(2, 4, dtype=ce.int64), ce.ones(2, 3))
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        z.scatter(1, i, ce.ones(2, 3, dtype=ce.float64))
    with pytest.raises(RuntimeError, match="reduce argument must be either sum, prod, mean"):
        z.scatter_reduce(1, i, ce.ones(2, 3), "max")


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_values_and_gradients(reduce, include_self):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    src = rng.standard_normal((3, 5))
    src[0, 1] = 0.0      # a zero factor for prod
    idx = np.array([[0, 0, 2, 2, 2], [1, 1, 1, 0, 3], [3, 3, 0, 0, 0]])
    out = ce.tensor(x).scatter_reduce(1, ce.tensor(idx), ce.tensor(src), reduce,
                                      include_self=include_self).numpy()
    # reference: a plain loop over the sources
    ref = x.copy()
    got = {}
    for r in range(3):
        for j in range(5):
            got.setdefault((r, idx[r, j]), []).append(src[r, j])
    for (r, c), vals in got.items():
        vals = ([x[r, c]] if include_self else []) + vals
        ref[r, c] = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "amax": np.max,
                     "amin": np.min}[reduce](vals)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    f = lambda a, s: a.scatter_reduce(1, ce.tensor(idx), s, reduce,  # noqa: E731
                                      include_self=include_self)
    assert gradcheck(f, (D(x), D(src)))


def test_scatter_reduce_prod_gradient_with_zeros_in_self():
    x = D([[0., 2, 3]])
    s = D([[0., 5, 1]])
    idx = ce.tensor([[0, 0, 1]])
    assert gradcheck(lambda a, b: a.scatter_reduce(1, idx, b, "prod"), (x, s))


def test_scatter_reduce_int_mean_floors():
    x = ce.arange(6).view(2, 3)
    idx = ce.tensor([[0, 0, 0], [1, 1, 1]])
    src = ce.tensor([[1, 2, 4], [3, 3, 3]])
    assert x.scatter_reduce(1, idx, src, "mean").tolist() == [[1, 1, 2], [3, 3, 5]]
    assert x.scatter_reduce(1, idx, src, "mean", include_self=False).tolist() == \
        [[2, 1, 2], [3, 3, 5]]


def test_scatter_gradients():
    rng = np.random.default_rng(6)
    x, s = D(rng.standard_normal((3, 4))), D(rng.standard_normal((3, 4)))
    idx = ce.tensor([[0, 1], [3, 2], [1, 0]])   # scatter: no duplicates (torch: undefined)
    assert gradcheck(lambda a, b: a.scatter(1, idx, b), (x, s))
    dup = ce.tensor([[0, 0], [3, 2], [1, 1]])
    assert gradcheck(lambda a, b: ce.scatter_add(a, 1, dup, b), (x, s))
    assert gradcheck(lambda a: a.scatter(1, idx, 2.0), (x,))


def test_scatter_against_torch():
    torch = _torch()
    rng = np.random.default_rng(7)
    x, s = rng.standard_normal((4, 5)), rng.standard_normal((4, 6))
    idx = rng.integers(0, 5, (4, 6))
    for red in ("sum", "prod", "mean", "amax", "amin"):
        for inc in (True, False):
            tx = torch.tensor(x, requires_grad=True)
            ts = torch.tensor(s, requires_grad=True)
            tw = torch.tensor(rng.standard_normal((4, 5)))
            (tx.scatter_reduce(1, torch.tensor(idx), ts, red, include_self=inc) * tw).sum()\
                .backward()
            cx, cs = ce.tensor(x, requires_grad=True), ce.tensor(s, requires_grad=True)
            (cx.scatter_reduce(1, ce.tensor(idx), cs, red, include_self=inc)
             * ce.tensor(tw.numpy())).sum().backward()
            np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), atol=1e-12)
            np.testing.assert_allclose(cs.grad.numpy(), ts.grad.numpy(), atol=1e-12)


def test_index_add_copy_fill():
    x = ce.zeros(3, 2)
    x.index_add_(0, ce.tensor([0, 2, 0]), ce.tensor([[1., 1], [2, 2], [3, 3]]))
    assert x.tolist() == [[4, 4], [0, 0], [2, 2]]
    y = ce.zeros(2, 3).index_add(1, ce.tensor([1]), ce.ones(2, 1), alpha=2)
    assert y.tolist() == [[0, 2, 0], [0, 2, 0]]
    c = ce.zeros(2, 3).index_copy(1, ce.tensor([2, 0]), ce.tensor([[1., 2], [3, 4]]))
    assert c.tolist() == [[2, 0, 1], [4, 0, 3]]
    f = ce.zeros(2, 3)
    assert f.index_fill_(1, ce.tensor([0, 2]), -1.) is f and f.tolist() == [[-1, 0, -1]] * 2
    assert ce.zeros(2).index_fill(0, ce.tensor([1]), ce.tensor(5.)).tolist() == [0, 5]
    rng = np.random.default_rng(8)
    a, s = D(rng.standard_normal((4, 3))), D(rng.standard_normal((2, 3)))
    ix = ce.tensor([3, 1])
    assert gradcheck(lambda p, q: p.index_add(0, ix, q, alpha=-1.5), (a, s))
    assert gradcheck(lambda p, q: p.index_copy(0, ix, q), (a, s))
    assert gradcheck(lambda p: p.index_fill(0, ix, 0.5), (a,))


def test_index_ops_errors():
    x = ce.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"Number of indices \(3\) should be equal to "
                                           r"source.size\(dim\): \(2\), for dim: 1"):
        x.index_add_(1, ce.tensor([0, 1, 1]), ce.ones(2, 2))
    with pytest.raises(RuntimeError, match=r"self \(Float\) and source \(Double\) must have"):
        x.index_add_(1, ce.tensor([0, 1]), ce.ones(2, 2, dtype=ce.float64))
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 1 with size 3"):
        x.index_add_(1, ce.tensor([0, 5]), ce.ones(2, 2))
    with pytest.raises(RuntimeError, match="index -1 is out of bounds"):
        x.index_add_(1, ce.tensor([0, -1]), ce.ones(2, 2))
    with pytest.raises(IndexError, match="Index is supposed to be a vector"):
        x.index_add_(1, ce.tensor([[0, 1]]), ce.ones(2, 2))
    with pytest.raises(IndexError, match="index_copy_"):
        x.index_copy_(1, ce.tensor([0, 1, 1]), ce.ones(2, 2))
    with pytest.raises(IndexError, match="index 7 is out of bounds"):
        x.index_fill_(1, ce.tensor([0, 7]), 2.)
    assert x.tolist() == [[0] * 3] * 2     # nothing was written by the failed calls


def test_masked_scatter():
    x = ce.zeros(2, 3)
    m = ce.tensor([[True, False, True], [False, True, False]])
    x.masked_scatter_(m, ce.tensor([1., 2, 3, 4, 5]))
    assert x.tolist() == [[1, 0, 2], [0, 3, 0]]
    row = ce.tensor([True, False, True])          # broadcast over rows
    assert ce.zeros(2, 3).masked_scatter(row, ce.arange(1., 5.)).tolist() == \
        [[1, 0, 2], [3, 0, 4]]
    with pytest.raises(RuntimeError, match="Number of elements of source < number of ones"):
        x.masked_scatter_(ce.ones(2, 3).bool(), ce.ones(5))
    with pytest.raises(RuntimeError, match="only supports boolean masks"):
        x.masked_scatter_(ce.ones(2, 3), ce.ones(6))
    with pytest.raises(RuntimeError, match="same dtypes"):
        x.masked_scatter_(m, ce.ones(6, dtype=ce.float64))
    rng = np.random.default_rng(9)
    a, s = D(rng.standard_normal((2, 3))), D(rng.standard_normal((2, 2)))
    assert gradcheck(lambda p, q: p.masked_scatter(m, q), (a, s))


def test_inplace_scatter_records_graph():
    w = ce.tensor([1., 2, 3], requires_grad=True)
    y = w * 1
    y.index_fill_(0, ce.tensor([1]), 0.)
    y.sum().backward()
    assert w.grad.tolist() == [1, 0, 1]
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.scatter_(0, ce.tensor([0]), 1.0)


# ---------------------------------------------------------------------------- multinomial
def test_multinomial_without_replacement():
    g = ce.Generator().manual_seed(0)
    for _ in range(20):
        s = ce.multinomial(ce.tensor([0.1, 0.0, 0.5, 0.4]), 3, generator=g).tolist()
        assert sorted(s) == [0, 2, 3]              # zero weight never before positive weights
    assert ce.multinomial(ce.tensor([1., 0, 0]), 2).tolist() == [0, 1]   # torch does the same
    two = ce.multinomial(ce.tensor([[1., 1, 1, 1]] * 3), 4)
    assert two.shape == (3, 4) and all(sorted(r) == [0, 1, 2, 3] for r in two.tolist())


def test_multinomial_frequencies_and_generator():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    g = ce.Generator().manual_seed(1)
    s = ce.multinomial(ce.tensor(p * 10), 20000, replacement=True, generator=g).numpy()
    freq = np.bincount(s, minlength=4) / s.size
    np.testing.assert_allclose(freq, p, atol=0.015)
    # first draw without replacement: frequencies follow p too
    first = ce.multinomial(ce.tensor(np.tile(p, (20000, 1))), 1, generator=g).numpy()[:, 0]
    np.testing.assert_allclose(np.bincount(first, minlength=4) / first.size, p, atol=0.015)
    a = ce.multinomial(ce.tensor(p), 2, generator=ce.Generator().manual_seed(5))
    b = ce.multinomial(ce.tensor(p), 2, generator=ce.Generator().manual_seed(5))
    assert a.tolist() == b.tolist() and a.dtype is ce.int64
    ce.manual_seed(3)
    c = ce.multinomial(ce.tensor(p), 3, True)
    ce.manual_seed(3)
    assert ce.multinomial(ce.tensor(p), 3, True).tolist() == c.tolist()


def test_multinomial_errors():
    with pytest.raises(RuntimeError, match="only supports floating-point dtypes for input, got: "
                                           "Long"):
        ce.multinomial(ce.tensor([1, 2]), 1)
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size"):
        ce.multinomial(ce.tensor([1., 1, 0]), 4)
    with pytest.raises(RuntimeError, match="sum of probabilities <= 0"):
        ce.multinomial(ce.tensor([0., 0, 0]), 1)
    with pytest.raises(RuntimeError, match="inf`, `nan` or element < 0"):
        ce.multinomial(ce.tensor([-1., 0, 0]), 1)
    with pytest.raises(RuntimeError, match="prob_dist must be 1 or 2 dim"):
        ce.multinomial(ce.ones(2, 2, 2), 1)
    with pytest.raises(RuntimeError, match="n_sample <= 0"):
        ce.multinomial(ce.ones(2), 0)


# ---------------------------------------------------------------------------- small surface
def test_where_with_python_scalars():
    c = ce.tensor([True, False])
    r = ce.where(c, 1.0, 0)
    assert r.dtype is ce.float32 and r.tolist() == [1, 0]
    assert ce.where(c, 1, 0).dtype is ce.int64
    assert ce.where(c, True, False).dtype is ce.bool
    assert ce.where(c, ce.tensor([1, 2]), 0.5).tolist() == [1, 0.5]
    assert ce.where(c, ce.tensor([1., 2], dtype=ce.float64), 0.5).dtype is ce.float64
    x = ce.tensor([1., -2], requires_grad=True)
    ce.where(x > 0, x, 0.0).sum().backward()
    assert x.grad.tolist() == [1, 0]


def test_randint_two_argument_form():
    for t in (ce.randint(5, (3,)), ce.randint(5, size=(3,)), ce.randint(high=5, size=(2, 2)),
              ce.randint(2, 5, (3,))):
        assert t.dtype is ce.int64 and int(t.min()) >= 0 and int(t.max()) < 5
    assert ce.randint(5, (3, 4)).shape == (3, 4)
    assert int(ce.randint(3, 4, (50,)).min()) == 3
    g1, g2 = ce.Generator().manual_seed(2), ce.Generator().manual_seed(2)
    assert ce.randint(9, (6,), generator=g1).tolist() == ce.randint(9, (6,), generator=g2).tolist()
    with pytest.raises(TypeError, match="size"):
        ce.randint(5, 3)


def test_indexing_with_range():
    x = ce.arange(10.).view(5, 2)
    assert x[range(1, 4)].tolist() == x[1:4].tolist()
    assert x[range(4, 0, -2), 1].tolist() == [9, 5]
    x[range(2)] = 0
    assert x[:2].tolist() == [[0, 0], [0, 0]]
    w = ce.ones(4, requires_grad=True)
    (w[range(0, 4, 2)] * 3).sum().backward()
    assert w.grad.tolist() == [3, 0, 3, 0]


def test_pin_memory_is_a_cpu_noop():
    x = ce.ones(3)
    assert x.pin_memory() is x and x.is_pinned() is False


def test_no_numpy_floating_point_warnings():
    x = ce.tensor([0., -1, 1e30, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce.log(x), ce.log2(x), ce.log10(x), ce.sqrt(x), ce.rsqrt(x), x.reciprocal()
        x / 0, 0 / x, x * x, x ** 1e10, ce.exp(x * 1e3), x - float("inf") + float("inf")
        ce.remainder(x, 0.), ce.fmod(x, 0.), x.div(0., rounding_mode="floor"), x // 0
        y = x.clone()
        y /= 0
        y *= 1e300
        ce.zeros(0).mean(), ce.zeros(2, 0).mean(1)
        w = ce.tensor([0., 1], requires_grad=True)
        (ce.log(w) + ce.sqrt(w)).sum().backward()
        assert np.isinf(w.grad.numpy()[0])
    assert ce.log(ce.tensor(0.)).item() == -np.inf
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        ce.tensor([1]) % 0
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        ce.tensor([4]) // ce.tensor([0])
    # the user's numpy settings are untouched outside cengine's calls
    with pytest.warns(RuntimeWarning):
        np.log(np.zeros(1))


@pytest.mark.parametrize("reduce", ["amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_nan_result_gradient_is_nan_like_torch(reduce, include_self):
    # nothing equals a NaN result, so torch's shared gradient there is 0/0 = NaN
    x = ce.tensor([1.0, 2.0, 3.0], requires_grad=True)
    src = ce.tensor([float("nan"), 5.0, -1.0, 0.0], requires_grad=True)
    x.scatter_reduce(0, ce.tensor([0, 0, 1, 1]), src, reduce,
                     include_self=include_self).sum().backward()
    assert np.isnan(src.grad.numpy()[:2]).all()
    assert np.isnan(x.grad.numpy()[0]) == include_self
    assert not np.isnan(src.grad.numpy()[2:]).any() and x.grad.numpy()[2] == 1.0


def test_multinomial_never_draws_a_trailing_zero_weight():
    # the cumulative sum of ten 0.1 weights is 0.9999999999999999: a uniform draw just below 1
    # must still land on the last positive weight, not on the zero-weight tail
    g = ce.Generator().manual_seed(0)
    top = np.nextafter(1.0, 0.0)
    g._rng = type("AlmostOne", (), {"random": staticmethod(lambda shape: np.full(shape, top))})()
    s = ce.multinomial(ce.tensor([0.1] * 10 + [0.0, 0.0], dtype=ce.float64), 5,
                       replacement=True, generator=g)
    assert s.tolist() == [9] * 5
