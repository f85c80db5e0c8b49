"""Small torch surface met in real code: memory_format / layout objects, python types as dtypes,
Tensor hooks returning the shared RemovableHandle."""
import pickle

import numpy as np
import pytest

import cengine as ce
from cengine.utils.hooks import RemovableHandle


# ---------------------------------------------------------------- memory formats
def test_memory_format_objects():
    for name in ("contiguous_format", "channels_last", "channels_last_3d", "preserve_format"):
        mf = getattr(ce, name)
        assert isinstance(mf, ce.memory_format) and repr(mf) == "cengine." + name
        assert pickle.loads(pickle.dumps(mf)) is mf
    assert isinstance(ce.strided, ce.layout) and repr(ce.strided) == "cengine.strided"
    assert ce.randn(2).layout is ce.strided


def test_channels_last_is_a_physical_nhwc_order():
    x = ce.randn(2, 3, 4, 5)
    y = x.contiguous(memory_format=ce.channels_last)
    assert y.shape == x.shape and ce.equal(x, y)
    assert not y.is_contiguous() and y.is_contiguous(memory_format=ce.channels_last)
    assert tuple(s // 4 for s in y._data.strides) == (60, 1, 15, 3)   # torch's strides
    assert y.contiguous(memory_format=ce.channels_last) is y
    assert y.contiguous().is_contiguous() and ce.equal(y.contiguous(), x)
    assert x.to(memory_format=ce.channels_last).is_contiguous(memory_format=ce.channels_last)
    # preserve_format (the default of clone and *_like) keeps channels_last
    assert y.clone().is_contiguous(memory_format=ce.channels_last)
    for like in (ce.zeros_like(y), ce.ones_like(y), ce.empty_like(y), ce.full_like(y, 2.0)):
        assert like.is_contiguous(memory_format=ce.channels_last)
    assert ce.zeros_like(y, memory_format=ce.contiguous_format).is_contiguous()
    assert ce.empty(2, 3, 4, 5, memory_format=ce.channels_last).is_contiguous(
        memory_format=ce.channels_last)
    x5 = ce.randn(2, 3, 2, 2, 2).contiguous(memory_format=ce.channels_last_3d)
    assert x5.is_contiguous(memory_format=ce.channels_last_3d) and not x5.is_contiguous()


def test_channels_last_gradient_and_ops():
    x = ce.randn(2, 3, 5, 5, dtype=ce.float64, requires_grad=True)
    assert ce.autograd.gradcheck(lambda t: (t.contiguous(memory_format=ce.channels_last) ** 2),
                                 (x,))
    assert ce.autograd.gradcheck(lambda t: t.clone(memory_format=ce.channels_last) * 3, (x,))
    conv = ce.nn.Conv2d(3, 4, 3).double()
    ref = conv(x)
    conv.to(memory_format=ce.channels_last)
    assert conv.weight.is_contiguous(memory_format=ce.channels_last)
    assert isinstance(conv.weight, ce.nn.Parameter)
    out = conv(x.contiguous(memory_format=ce.channels_last))
    assert np.allclose(out.detach().numpy(), ref.detach().numpy())


def test_memory_format_errors_as_torch():
    with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
        ce.randn(3).contiguous(memory_format=ce.channels_last)
    with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
        ce.randn(3).to(memory_format=ce.channels_last)
    with pytest.raises(TypeError, match="contiguous\\(\\): argument 'memory_format' must be "
                                        "torch.memory_format, not str"):
        ce.randn(3).contiguous(memory_format="channels_last")
    with pytest.raises(RuntimeError, match="preserve memory format is unsupported by the "
                                           "contiguous operator"):
        ce.randn(3, 4).t().contiguous(memory_format=ce.preserve_format)
    t = ce.randn(3)
    assert t.contiguous(memory_format=ce.preserve_format) is t
    with pytest.raises(RuntimeError, match="unsupported memory format Preserve"):
        ce.empty(2, memory_format=ce.preserve_format)
    assert not ce.randn(3).is_contiguous(memory_format=ce.channels_last)
    assert not ce.randn(3, 4).t().is_contiguous(memory_format=ce.preserve_format)


def test_memory_format_matches_torch():
    torch = pytest.importorskip("torch")
    for lib in (ce, torch):
        x = lib.arange(120.).reshape(2, 3, 4, 5)
        y = x.contiguous(memory_format=lib.channels_last)
        assert y.is_contiguous(memory_format=lib.channels_last)
    assert [s // 4 for s in ce.arange(120.).reshape(2, 3, 4, 5).contiguous(
        memory_format=ce.channels_last)._data.strides] == list(
        torch.arange(120.).reshape(2, 3, 4, 5).contiguous(
            memory_format=torch.channels_last).stride())


# ---------------------------------------------------------------- python types as dtypes
@pytest.mark.parametrize("pytype,name", [(float, "float64"), (int, "int64"), (bool, "bool")])
def test_python_type_dtypes(pytype, name):
    want = getattr(ce, name)
    made = [ce.zeros(2, dtype=pytype), ce.ones(2, dtype=pytype), ce.empty(2, dtype=pytype),
            ce.full((2,), 1, dtype=pytype), ce.arange(3, dtype=pytype),
            ce.tensor([1, 0], dtype=pytype), ce.zeros_like(ce.ones(2), dtype=pytype),
            ce.ones(2).to(pytype), ce.ones(2).type(pytype), ce.as_tensor([1, 0], dtype=pytype)]
    assert all(t.dtype == want for t in made), [t.dtype for t in made]
    if pytype is float:
        assert ce.randn(2, dtype=float).dtype == ce.float64
        assert ce.rand(2, dtype=float).dtype == ce.float64


def test_python_float_is_float64_under_any_default_dtype():
    ce.set_default_dtype(ce.float64)
    try:
        assert ce.zeros(1, dtype=float).dtype == ce.float64
    finally:
        ce.set_default_dtype(ce.float32)
    assert ce.zeros(1, dtype=float).dtype == ce.float64 and ce.zeros(1).dtype == ce.float32


def test_python_complex_dtype_is_refused_clearly():
    with pytest.raises(TypeError, match="no complex dtypes"):
        ce.zeros(2, dtype=complex)


# ---------------------------------------------------------------- tensor hooks
def test_tensor_hooks_return_the_shared_handle():
    w = ce.ones(3, requires_grad=True)
    seen = []
    h1 = w.register_hook(lambda g: seen.append("pre") or g * 2)
    h2 = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.tolist()))
    assert type(h1) is RemovableHandle and type(h2) is RemovableHandle and h1.id != h2.id
    (w * 1).sum().backward()
    assert seen == ["pre", [2.0, 2.0, 2.0]]
    h1.remove()
    h1.remove()   # no-op
    with h2:
        w.grad = None
        (w * 1).sum().backward()
    assert seen[2:] == [[1.0, 1.0, 1.0]]
    w.grad = None
    (w * 1).sum().backward()
    assert len(seen) == 3 and w.grad.tolist() == [1.0, 1.0, 1.0]


def test_same_hook_twice_is_removed_once_per_handle():
    w = ce.ones(2, requires_grad=True)
    calls = []

    def hook(g):
        calls.append(1)

    a = w.register_hook(hook)
    w.register_hook(hook)
    (w * 1).sum().backward()
    assert len(calls) == 2
    a.remove()
    (w * 1).sum().backward()
    assert len(calls) == 3


def test_hook_removing_itself_during_backward():
    w = ce.ones(2, requires_grad=True)
    calls = []
    h = None

    def hook(g):
        calls.append(1)
        h.remove()

    h = w.register_hook(hook)
    w.register_hook(lambda g: calls.append(2))
    (w * 1).sum().backward()
    (w * 1).sum().backward()
    assert calls == [1, 2, 2]
