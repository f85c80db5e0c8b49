"""Legacy constructors (Tensor(...), FloatTensor & co), negative factory sizes, and torch's
warnings for .grad of a non-leaf and tensor(existing_tensor)."""
import warnings

import numpy as np
import pytest

import cengine as ce

LEGACY = [("FloatTensor", ce.float32), ("DoubleTensor", ce.float64), ("HalfTensor", ce.float16),
          ("LongTensor", ce.int64), ("IntTensor", ce.int32), ("ShortTensor", ce.int16),
          ("CharTensor", ce.int8), ("ByteTensor", ce.uint8), ("BoolTensor", ce.bool)]


def test_tensor_constructor_forms():
    e = ce.Tensor()
    assert e.shape == (0,) and e.dtype is ce.float32
    assert ce.Tensor(2, 3).shape == (2, 3) and ce.Tensor(2, 3).dtype is ce.float32
    assert ce.Tensor(ce.Size([2, 3])).shape == (2, 3)
    assert ce.Tensor(4).shape == (4,)
    t = ce.Tensor((2, 3))                       # a tuple is data, a Size is sizes (torch)
    assert t.tolist() == [2, 3] and t.dtype is ce.float32
    assert ce.Tensor([[1, 2], [3, 4]]).dtype is ce.float32
    assert ce.Tensor(np.zeros(2)).dtype is ce.float32
    assert ce.Tensor([True, False]).tolist() == [1.0, 0.0]


def test_tensor_constructor_follows_default_dtype():
    old = ce.get_default_dtype()
    ce.set_default_dtype(ce.float64)
    try:
        assert ce.Tensor([1, 2]).dtype is ce.float64 and ce.Tensor(3).dtype is ce.float64
    finally:
        ce.set_default_dtype(old)


def test_tensor_of_tensor_is_an_alias():
    t = ce.tensor([1, 2])
    a = ce.Tensor(t)
    assert a is not t and a.dtype is ce.int64 and a.data_ptr() == t.data_ptr()
    a[0] = 7
    assert t.tolist() == [7, 2]


@pytest.mark.parametrize("name,dt", LEGACY)
def test_typed_constructors(name, dt):
    cls = getattr(ce, name)
    s = cls(2, 3)
    assert s.shape == (2, 3) and s.dtype is dt
    assert cls(ce.Size([4])).shape == (4,)
    d = cls([1, 0, 1])
    assert d.dtype is dt and d.tolist() == [1, 0, 1]
    assert isinstance(d, cls) and isinstance(d, ce.Tensor)
    assert not isinstance(ce.zeros(1, dtype=ce.float32 if dt is not ce.float32 else ce.int64), cls)
    assert cls().shape == (0,) and cls().dtype is dt
    same = ce.zeros(2, dtype=dt)
    assert cls(same).data_ptr() == same.data_ptr()
    assert repr(cls) == "<class 'cengine.%s>" % (name + "'")


def test_typed_constructor_conversions_and_errors():
    assert ce.LongTensor([1.7, 2]).tolist() == [1, 2]
    assert ce.FloatTensor(np.zeros(2)).dtype is ce.float32
    assert ce.ByteTensor([1, 255]).tolist() == [1, 255]
    with pytest.raises(RuntimeError, match="value cannot be converted to type uint8 without "
                                           "overflow"):
        ce.ByteTensor([1, 255, 256])
    with pytest.raises(TypeError, match="expected cengine.int64"):
        ce.LongTensor(ce.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="data must be a sequence"):
        ce.Tensor(2.5)
    with pytest.raises(RuntimeError, match=r"negative dimension -1: \[-1, 2\]"):
        ce.FloatTensor(-1, 2)
    with pytest.raises(TypeError, match="must be tuple of ints"):
        ce.Tensor(2, 3.0)
    with pytest.raises(RuntimeError, match="legacy constructor expects device type: cpu but device type: cuda"):
        ce.FloatTensor(2, device="cuda")


def test_negative_factory_sizes_raise_runtime_error():
    with pytest.raises(RuntimeError, match="zeros: Dimension size must be non-negative"):
        ce.zeros(-1, 3)
    for f in (lambda: ce.ones(2, -3), lambda: ce.empty(-2), lambda: ce.full((-1,), 2.),
              lambda: ce.randn(-1), lambda: ce.rand(2, -1), lambda: ce.randint(3, (-1,))):
        with pytest.raises(RuntimeError, match="Trying to create tensor with negative dimension"):
            f()


def test_grad_of_non_leaf_warns_once_like_torch():
    a = ce.ones(2, requires_grad=True)
    b = a * 2
    with pytest.warns(UserWarning, match="not a leaf Tensor is being accessed"):
        assert b.grad is None
    c = a * 3
    c.retain_grad()
    (c * b).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert a.grad.tolist() == [12, 12]     # leaves never warn
        assert c.grad.tolist() == [2, 2]       # nor tensors that retain their gradient
        assert ce.ones(1).grad is None


def test_tensor_of_tensor_warns_like_torch():
    a = ce.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match=r"sourceTensor.detach\(\).clone\(\)"):
        b = ce.tensor(a)
    assert b.requires_grad is False and b.data_ptr() != a.data_ptr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce.tensor([1, 2]), ce.tensor(np.ones(2)), ce.as_tensor(a)


def test_legacy_against_torch():
    torch = pytest.importorskip("torch")
    for name, _ in LEGACY:
        if name == "HalfTensor":
            continue
        for data in ([1, 0, 3], [[1.5, 2], [0, 1]]):
            t, c = getattr(torch, name)(data), getattr(ce, name)(data)
            assert str(t.dtype).split(".")[1] == c.dtype.name
            np.testing.assert_array_equal(c.numpy(), t.numpy())
    assert tuple(torch.Tensor(torch.Size([2, 3])).shape) == tuple(ce.Tensor(ce.Size([2, 3])).shape)
    assert torch.Tensor((2, 3)).tolist() == ce.Tensor((2, 3)).tolist()
