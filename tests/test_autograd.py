"""Autograd semantics: accumulation, retain_graph, retain_grad, detach, grad modes, in-place
checks, hooks, autograd.grad, and the error messages torch users know."""
import numpy as np
import pytest

import cengine as ce


def test_grad_accumulates_into_leaves():
    x = ce.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [3 + 2, 3 + 4]
    assert x.is_leaf and not (x * 2).is_leaf


def test_shared_gradient_arrays_are_not_aliased():
    a = ce.ones(3, requires_grad=True)
    b = ce.ones(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.zero_()
    assert b.grad.tolist() == [1.0, 1.0, 1.0]


def _passthrough_graphs():
    """(leaf, output, expected d(output)/d(leaf) factor) for graphs whose backward hands the
    root gradient on unchanged (add, same-shape reshape, view, clone, identity-like ops) or
    through a new array (mul, softmax)"""
    def mk():
        return ce.randn(3, 4, requires_grad=True)
    out = []
    x = mk(); out.append(("add", x, x + 0.0))
    x = mk(); out.append(("add two leaves", x, x + ce.zeros(3, 4, requires_grad=True)))
    x = mk(); out.append(("reshape", x, x.reshape(3, 4)))
    x = mk(); out.append(("view", x, x.view(12).view(3, 4)))
    x = mk(); out.append(("clone", x, x.clone()))
    x = mk(); out.append(("mul", x, x * 2.0))
    x = mk(); out.append(("softmax", x, ce.softmax(x, -1)))
    x = mk(); out.append(("leaf itself", x, x))
    return out


@pytest.mark.parametrize("i", range(8))
@pytest.mark.parametrize("as_tensor", [False, True])
def test_root_gradient_is_not_copied_but_never_aliased(i, as_tensor):
    """backward(g) reads g without copying it (as torch), yet no .grad aliases g and g is
    never written: accumulating more gradient afterwards, or changing g, leaves the other
    alone"""
    name, x, y = _passthrough_graphs()[i]
    y.retain_grad() if y is not x else None
    rng = np.random.default_rng(i)
    g_np = rng.standard_normal((3, 4)).astype(np.float32)
    keep = g_np.copy()
    g = ce.tensor(g_np) if as_tensor else g_np
    garr = g._data if as_tensor else g
    y.backward(g, retain_graph=True)
    np.testing.assert_array_equal(garr, keep)   # not written
    first = x.grad.numpy().copy()
    for t in (x, y):
        if t.grad is not None:
            assert not np.may_share_memory(t.grad._data, garr), name
    # a second backward accumulates in place into x.grad: g must not change
    y.backward(g, retain_graph=True)
    np.testing.assert_array_equal(garr, keep)
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)
    # changing g afterwards must not change the gradients
    garr[...] = 1e6
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)


def test_root_gradient_reaches_backward_uncopied():
    """the array given to backward() is what the output's backward receives (no copy of a
    large gradient on every call), as in torch"""
    seen = []

    class Twice(ce.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            seen.append(g)
            return g * 2

    x = ce.randn(4, 5, requires_grad=True)
    g = np.ones((4, 5), np.float32)
    Twice.apply(x).backward(g)
    assert seen[0] is g
    t = ce.ones(4, 5)
    Twice.apply(x).backward(t)
    assert seen[1] is t._data
    np.testing.assert_array_equal(x.grad.numpy(), np.full((4, 5), 4.0))


def test_root_gradient_shared_by_two_roots_and_grad():
    """one array given as the gradient of two roots, and through autograd.grad"""
    x = ce.randn(5, requires_grad=True)
    a, b = x + 0.0, x * 1.0
    g = np.arange(5, dtype=np.float32)
    ce.autograd.backward([a, b], [g, g])
    np.testing.assert_array_equal(g, np.arange(5, dtype=np.float32))
    np.testing.assert_allclose(x.grad.numpy(), 2 * g)
    assert not np.may_share_memory(x.grad._data, g)
    x2 = ce.randn(5, requires_grad=True)
    (gx,) = ce.autograd.grad(x2 + 0.0, x2, [g])
    assert not np.may_share_memory(gx._data, g)
    g[...] = -1
    np.testing.assert_allclose(gx.numpy(), np.arange(5))


def test_root_gradient_dtype_and_readonly():
    """a float64 gradient for a float32 output is cast; a read-only one (a broadcast view)
    works and is not written"""
    x = ce.randn(2, 3, requires_grad=True)
    y = x + 0.0
    y.backward(np.ones((2, 3), np.float64))
    assert x.grad.dtype == ce.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3)))
    ro = np.broadcast_to(np.float32(2.0), (2, 3))
    x.grad = None
    (x + 0.0).backward(ro)
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
    x.grad.zero_()
    assert float(ro[0, 0]) == 2.0


def test_backward_twice_raises_and_retain_graph():
    x = ce.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.backward()


def test_nonscalar_backward_needs_gradient():
    x = ce.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        y.backward()
    y.backward(ce.tensor([1.0, 2.0, 3.0]))
    assert x.grad.tolist() == [2.0, 4.0, 6.0]


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does "
                                           "not have a grad_fn"):
        ce.ones(2).sum().backward()


def test_retain_grad_and_nonleaf_grad():
    x = ce.ones(2, requires_grad=True)
    y = x * 2
    y.retain_grad()
    (y * y).sum().backward()
    assert y.grad.tolist() == [4.0, 4.0]
    assert x.grad.tolist() == [8.0, 8.0]


def test_detach_and_requires_grad_():
    x = ce.ones(2, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d._data is x._data
    y = x * 2
    y.detach_()
    assert y.grad_fn is None and not y.requires_grad
    z = ce.ones(2).requires_grad_()
    assert z.requires_grad
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require "
                                           "gradients"):
        ce.arange(3).requires_grad_()


def test_no_grad_enable_grad_set_grad_enabled():
    x = ce.ones(2, requires_grad=True)
    with ce.no_grad():
        y = x * 2
        with ce.enable_grad():
            z = x * 2
    assert not y.requires_grad and z.requires_grad

    @ce.no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad
    with ce.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert ce.is_grad_enabled()
    ce.set_grad_enabled(False)
    assert not ce.is_grad_enabled()
    ce.set_grad_enabled(True)
    assert ce.is_grad_enabled()


def test_inplace_on_leaf_requiring_grad_raises():
    x = ce.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an "
                                           "in-place operation."):
        x.add_(1)
    with ce.no_grad():
        x.add_(1)  # allowed (optimizer updates)
    assert x.tolist() == [2.0, 2.0]


def test_inplace_modifying_saved_tensor_raises():
    x = ce.ones(3, requires_grad=True)
    y = x * 1
    z = y.sigmoid()  # saves its output
    z.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_inplace_on_nonleaf_is_differentiated():
    x = ce.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.add_(1)
    y.mul_(2)
    y.sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]
    y2 = x * 1
    y2[0] = 0.0
    y2.sum().backward()
    assert x.grad.tolist() == [6.0, 7.0]


def test_inplace_ops_values():
    t = ce.tensor([1.0, -2.0, 3.0])
    t.mul_(2).add_(1).clamp_(-1, 5)
    assert t.tolist() == [3.0, -1.0, 5.0]
    t.zero_()
    assert t.tolist() == [0, 0, 0]
    t.fill_(7)
    t.copy_(ce.tensor([1, 2, 3]))
    assert t.tolist() == [1.0, 2.0, 3.0] and t.dtype is ce.float32
    v = t._version[0]
    t += 1
    assert t._version[0] == v + 1


def test_hooks():
    x = ce.ones(2, requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()) or g * 10)
    x.register_post_accumulate_grad_hook(lambda t: seen.append("ready"))
    (x * 2).sum().backward()
    assert seen == [[2.0, 2.0], "ready"] and x.grad.tolist() == [20.0, 20.0]


def test_autograd_grad():
    x = ce.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 3).sum()
    (g,) = ce.autograd.grad(y, x)
    assert g.tolist() == [3.0, 12.0] and x.grad is None
    z = ce.ones(1, requires_grad=True)
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        ce.autograd.grad((x * 2).sum(), [x, z])


def test_broadcast_gradients_reduce_to_input_shape():
    a = ce.ones(3, 1, requires_grad=True)
    b = ce.ones(4, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and a.grad.tolist() == [[4.0]] * 3
    assert b.grad.tolist() == [3.0] * 4


def test_getitem_repeated_indices_accumulate():
    x = ce.zeros(4, requires_grad=True)
    x[ce.tensor([0, 0, 2, 0])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0, 0.0]


def test_gradcheck_catches_wrong_gradient():
    class Bad(ce.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g  # wrong: should be 2x*g

    x = ce.randn(3, dtype=ce.float64, requires_grad=True)
    with pytest.raises(ce.autograd.GradcheckError):
        ce.autograd.gradcheck(Bad.apply, (x,))
    assert not ce.autograd.gradcheck(Bad.apply, (x,), raise_exception=False)


@pytest.mark.parametrize("materialize", [True, False])
def test_multi_output_function_missing_grads(materialize):
    """Outputs that got no gradient arrive as zeros, or as None after
    ctx.set_materialize_grads(False) (torch's ctx API)."""
    seen = []

    class Two(ce.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(materialize)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            seen.append(gb)
            out = 2 * ga
            if gb is not None:
                out = out + 3 * gb
            return out

    x = ce.randn(4, requires_grad=True)
    a, b = Two.apply(x)
    a.sum().backward()
    assert x.grad.tolist() == [2.0] * 4
    if materialize:
        assert isinstance(seen[0], np.ndarray) and not seen[0].any()
    else:
        assert seen[0] is None


def test_sdpa_weights_only_or_output_only_backward():
    """scaled_dot_product_attention's node skips the zero gradient of unused outputs; using only
    the output, or only the attention weights (MultiheadAttention), still backpropagates."""
    q = ce.randn(2, 5, 4, dtype=ce.float64, requires_grad=True)
    k = ce.randn(2, 6, 4, dtype=ce.float64, requires_grad=True)
    v = ce.randn(2, 6, 3, dtype=ce.float64, requires_grad=True)
    assert ce.autograd.gradcheck(
        lambda q, k, v: ce.nn.functional.scaled_dot_product_attention(q, k, v), (q, k, v))
    mha = ce.nn.MultiheadAttention(8, 2, dtype=ce.float64)
    x = ce.randn(3, 5, 8, dtype=ce.float64, requires_grad=True)
    _, w = mha(x, x, x, need_weights=True)
    w.sum().backward()
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all()


def test_split_backward_packed_grad_contract():
    """Split's backward returns the packed gradient a consumer handed over (`packed_grad`) only
    while every incoming piece is still that consumer's view of it; otherwise it concatenates."""
    from cengine.ops.shape import Split
    ctx = type("Ctx", (), {})()

    def run(gs, G):
        ctx.d, ctx.shape, ctx.sizes = 1, (4, 9), (3, 3, 3)
        if G is not None:
            ctx.packed_grad = G
        out = Split.backward(ctx, *gs)[0]
        assert not hasattr(ctx, "packed_grad")   # consumed by every backward
        return out

    base = np.arange(36.0).reshape(4, 9)
    pieces = (base[:, 0:3], base[:, 3:6], base[:, 6:9])
    assert run(pieces, base) is base
    # no hand-over, pieces out of order, a foreign piece, pieces of another array: concatenated
    for gs, G in [(pieces, None), ((pieces[1], pieces[0], pieces[2]), base),
                  ((pieces[0], pieces[1], np.ones((4, 3))), base),
                  (pieces, np.arange(36.0).reshape(4, 9))]:
        out = run(gs, G)
        assert not np.shares_memory(out, base)
        np.testing.assert_array_equal(out, np.concatenate(gs, axis=1))


def test_sdpa_packed_grads_of_fused_qkv():
    """q, k, v chunks of one projection get their gradients written into one packed array that
    the chunk's backward takes as it is (counted), with the values of the separate computation."""
    from cengine.ops.shape import Split
    from cengine.ops import attention as _att
    F = ce.nn.functional
    rng = np.random.default_rng(0)
    xn = rng.standard_normal((2, 5, 3 * 8))
    g = rng.standard_normal((2, 2, 5, 4))
    grads = []
    for fused in (True, False):
        x = ce.tensor(xn, requires_grad=True)
        if fused:
            q, k, v = (z.view(2, 5, 2, 4).transpose(1, 2) for z in x.chunk(3, dim=-1))
        else:   # separate contiguous copies: no shared base
            q, k, v = (ce.tensor(np.ascontiguousarray(z._data.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)),
                                 requires_grad=True) for z in x.chunk(3, dim=-1))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        taken, packed = Split.PACKED_TAKEN[0], _att._PACKED_QKV[0]
        o.backward(ce.tensor(g))
        assert (Split.PACKED_TAKEN[0] - taken, _att._PACKED_QKV[0] - packed) == \
            ((1, 1) if fused else (0, 0))
        grads.append(x.grad.numpy() if fused else np.concatenate(
            [t.grad.numpy().transpose(0, 2, 1, 3).reshape(2, 5, 8) for t in (q, k, v)], axis=-1))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_sdpa_sibling_grads_only_for_disjoint_views():
    """q = k = v (one view), overlapping slices and expanded chunks share elements: their
    gradients must not be placed in one buffer (they would overwrite each other)."""
    F = ce.nn.functional
    rng = np.random.default_rng(1)
    wn = rng.standard_normal((2, 5, 12))

    def grads(make, separate):
        w = ce.tensor(wn, dtype=ce.float64, requires_grad=True)
        q, k, v = make(w)
        if separate:
            q, k, v = q * 1.0, k * 1.0, v * 1.0   # fresh arrays, no shared base
        F.scaled_dot_product_attention(q, k, v).sum().backward()
        return w.grad.numpy()

    cases = [lambda w: (w[..., :4],) * 3,
             lambda w: (w[..., 0:4], w[..., 1:5], w[..., 2:6]),
             lambda w: tuple(t.expand(2, 5, 4) for t in w[:1].chunk(3, -1))]
    for make in cases:
        np.testing.assert_allclose(grads(make, False), grads(make, True), rtol=1e-12,
                                   atol=1e-12)


def test_leaf_grad_accumulates_in_place_like_torch():
    """a second backward adds into the existing .grad array (as torch's AccumulateGrad), large
    (threaded kernel) and small (numpy), bumping its version; a read-only or differently laid
    out .grad still accumulates correctly"""
    import numpy as np
    import cengine as ce
    for shape in ((3, 5), (300, 301)):
        a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        x = ce.tensor(a, requires_grad=True)
        (x * 2.0).sum().backward()
        g = x.grad
        arr, v = g._data, g._version_count
        (x * 3.0).sum().backward()
        assert x.grad is g and g._data is arr and g._version_count == v + 1
        np.testing.assert_array_equal(g.numpy(), np.full(shape, 5.0, np.float32))
    x = ce.tensor(np.ones((4, 4)), requires_grad=True)
    ro = np.ones((4, 4))
    ro.flags.writeable = False
    x.grad = ce.tensor(ro)
    x.grad._data = ro
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((4, 4), 3.0))
    assert ro[0, 0] == 1.0
    x.grad = ce.tensor(np.ones((4, 4)).T)     # non-contiguous: numpy's in-place add
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((4, 4), 3.0))


def test_a_leaf_hook_keeping_its_gradient_does_not_see_later_accumulation():
    """A tensor hook that stores the gradient it is given keeps that value: .grad is a copy (as
    torch's AccumulateGrad, which copies a gradient someone else holds), not the same array."""
    x = ce.ones(3, requires_grad=True)
    saved = []
    x.register_hook(lambda t: saved.append(t))
    for _ in range(2):
        (x * 2).sum().backward()
    assert saved[0].tolist() == [2.0, 2.0, 2.0]
    assert x.grad.tolist() == [4.0, 4.0, 4.0]
    assert not np.shares_memory(saved[0].numpy(), x.grad.numpy())
