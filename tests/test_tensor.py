"""Tensor creation, dtypes, promotion, conversion, repr, views and errors."""
import numpy as np
import pytest

import cengine as ce


def test_default_dtypes():
    assert ce.tensor([1.0, 2.0]).dtype is ce.float32
    assert ce.tensor([1, 2]).dtype is ce.int64
    assert ce.tensor([True, False]).dtype is ce.bool
    assert ce.tensor([1, 2.5]).dtype is ce.float32
    assert ce.tensor(np.zeros(3)).dtype is ce.float64  # numpy keeps its dtype, like torch
    assert ce.zeros(2, 3).dtype is ce.float32
    assert ce.arange(5).dtype is ce.int64
    assert ce.arange(0, 1, 0.25).dtype is ce.float32
    assert ce.full((2,), 3).dtype is ce.int64
    assert ce.full((2,), 3.0).dtype is ce.float32


def test_scalar_does_not_upcast_float32():
    x = ce.ones(3)
    for y in (x + 2.5, 2.5 * x, x / 3, x ** 2, x - np.float64(1.0), 1 - x):
        assert y.dtype is ce.float32
    assert (ce.arange(3) * 2.5).dtype is ce.float32  # int tensor * float scalar -> default float
    assert (ce.arange(3) / 2).dtype is ce.float32  # true division of ints
    assert (ce.arange(3) + 2).dtype is ce.int64


def test_tensor_promotion():
    a32 = ce.ones(2)
    a64 = ce.ones(2, dtype=ce.float64)
    i64 = ce.ones(2, dtype=ce.int64)
    assert (a32 + a64).dtype is ce.float64
    assert (i64 + a32).dtype is ce.float32
    # a 0-d tensor of the same category does not promote a dimensioned tensor
    assert (a32 + ce.tensor(2.0, dtype=ce.float64)).dtype is ce.float32
    assert (i64 + ce.tensor(2.0, dtype=ce.float64)).dtype is ce.float64


@pytest.mark.parametrize("maker", [ce.zeros, ce.ones, ce.empty, ce.randn, ce.rand])
def test_factories_sizes(maker):
    assert maker(2, 3).shape == (2, 3)
    assert maker((2, 3)).shape == (2, 3)
    assert maker([4]).shape == (4,)
    assert maker(()).shape == ()
    assert maker(2, 3, dtype=ce.float64).dtype is ce.float64


def test_creation_values():
    np.testing.assert_array_equal(ce.eye(3, 2).numpy(), np.eye(3, 2))
    np.testing.assert_allclose(ce.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(ce.arange(1, 10, 3).numpy(), [1, 4, 7])
    x = ce.randn(3, 2)
    assert ce.zeros_like(x).shape == (3, 2) and ce.ones_like(x).sum().item() == 6
    assert ce.full_like(x, 7).numpy().tolist() == [[7, 7]] * 3
    assert ce.tensor(3.5).item() == 3.5 and ce.tensor(3.5).dim() == 0


def test_from_numpy_zero_copy_and_as_tensor():
    a = np.arange(6, dtype=np.float32)
    t = ce.from_numpy(a)
    a[0] = 42
    assert t[0].item() == 42
    assert ce.as_tensor(a)._data is a
    assert ce.tensor(a)._data is not a
    with pytest.raises(TypeError, match="can't convert np.ndarray of type numpy.complex128"):
        ce.from_numpy(np.zeros(2, np.complex128))


def test_random_reproducible():
    ce.manual_seed(123)
    a = ce.randn(5)
    ce.manual_seed(123)
    b = ce.randn(5)
    assert ce.equal(a, b)
    g1 = ce.Generator().manual_seed(7)
    g2 = ce.Generator().manual_seed(7)
    assert ce.equal(ce.rand(4, generator=g1), ce.rand(4, generator=g2))
    assert ce.equal(ce.randperm(10, generator=g1), ce.randperm(10, generator=g2))
    p = ce.randperm(10)
    assert sorted(p.tolist()) == list(range(10)) and p.dtype is ce.int64
    r = ce.randint(3, 7, (100,))
    assert r.min().item() >= 3 and r.max().item() < 7


def test_inplace_init():
    w = ce.empty(1000)
    ce.manual_seed(0)
    w.uniform_(-2, 3)
    assert -2 <= w.min().item() and w.max().item() < 3
    w.normal_(1.0, 0.5)
    assert abs(w.mean().item() - 1.0) < 0.1 and abs(w.std().item() - 0.5) < 0.1


def test_repr():
    assert repr(ce.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])"
    assert repr(ce.tensor([1.0, 2.0], requires_grad=True)) == "tensor([1., 2.], requires_grad=True)"
    assert repr(ce.tensor([1, 2], dtype=ce.int32)) == "tensor([1, 2], dtype=cengine.int32)"
    x = ce.tensor([1.0], requires_grad=True)
    assert "grad_fn=<MulBackward0>" in repr(x * 2)
    assert repr(ce.tensor(3)) == "tensor(3)"


def test_conversions_and_python_protocols():
    x = ce.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert len(x) == 2 and [r.tolist() for r in x] == [[1.0, 2.0], [3.0, 4.0]]
    assert np.asarray(x).shape == (2, 2)
    assert float(x[0, 1]) == 2.0 and int(x[1, 0]) == 3
    assert bool(ce.tensor([1]))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value"):
        bool(x)
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(ce.tensor(1.0))
    with pytest.raises(RuntimeError, match="a Tensor with 4 elements cannot be converted to Scalar"):
        x.item()
    y = ce.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires grad. "
                                           "Use tensor.detach\\(\\).numpy\\(\\) instead."):
        y.numpy()
    assert y.detach().numpy().tolist() == [1.0, 1.0]
    assert x.long().dtype is ce.int64 and x.double().dtype is ce.float64
    assert x.to(ce.float64).dtype is ce.float64 and x.to("cpu") is x
    with pytest.raises(RuntimeError, match="CUDA"):
        x.to("cuda")


def test_shape_metadata():
    x = ce.zeros(2, 3, 4)
    assert x.size() == (2, 3, 4) and x.size(-1) == 4 and x.dim() == 3 and x.numel() == 24
    assert x.stride() == (12, 4, 1)
    t = x.transpose(0, 2)
    assert t.shape == (4, 3, 2) and t.stride() == (1, 4, 12) and not t.is_contiguous()
    assert t.contiguous().is_contiguous()
    assert repr(x.shape) == "cengine.Size([2, 3, 4])"


def test_views_share_storage_and_view_errors():
    x = ce.arange(12.0).reshape(3, 4)
    v = x.view(4, 3)
    v[0, 0] = 100
    assert x[0, 0].item() == 100
    assert x.view(-1).shape == (12,)
    with pytest.raises(RuntimeError, match="view size is not compatible with input tensor's size "
                                           "and stride"):
        x.t().view(12)
    assert x.t().reshape(12).shape == (12,)
    with pytest.raises(RuntimeError, match=r"shape '\[5, -1\]' is invalid for input of size 12"):
        x.view(5, -1)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.view(-1, -1)


def test_squeeze_unsqueeze_flatten_permute():
    x = ce.zeros(1, 3, 1, 2)
    assert x.squeeze().shape == (3, 2)
    assert x.squeeze(0).shape == (3, 1, 2)
    assert x.squeeze(1).shape == (1, 3, 1, 2)  # not size 1: unchanged, like torch
    assert x.squeeze(-2).shape == (1, 3, 2)
    assert x.unsqueeze(-1).shape == (1, 3, 1, 2, 1)
    assert x.unsqueeze(0).shape == (1, 1, 3, 1, 2)
    assert x.flatten().shape == (6,) and x.flatten(1).shape == (1, 6)
    assert x.permute(3, 1, 0, 2).shape == (2, 3, 1, 1)
    assert ce.zeros(2, 3).T.shape == (3, 2) and ce.zeros(4, 2, 3).mT.shape == (4, 3, 2)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                                         r"\[-4, 3\], but got 4\)"):
        x.squeeze(4)


def test_cat_stack_split_chunk():
    a, b = ce.ones(2, 3), ce.zeros(1, 3)
    assert ce.cat([a, b]).shape == (3, 3)
    assert ce.cat([a, a], dim=1).shape == (2, 6)
    assert ce.stack([a, a], dim=1).shape == (2, 2, 3)
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 1"):
        ce.cat([a, b], dim=1)
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        ce.stack([a, b])
    parts = ce.arange(10).split(3)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert [p.numel() for p in ce.arange(10).split([2, 8])] == [2, 8]
    assert [p.numel() for p in ce.arange(10).chunk(3)] == [4, 4, 2]


def test_expand():
    x = ce.tensor([[1.0], [2.0]])
    assert x.expand(2, 3).tolist() == [[1, 1, 1], [2, 2, 2]]
    assert x.expand(4, -1, 3).shape == (4, 2, 3)
    with pytest.raises(RuntimeError, match="The expanded size of the tensor \\(3\\) must match"):
        x.expand(3, 3)


def test_getitem_setitem():
    x = ce.arange(24).reshape(2, 3, 4)
    n = np.arange(24).reshape(2, 3, 4)
    for idx in [0, -1, (1, 2), (slice(None), 1), (Ellipsis, 2), (None, 0), (slice(0, 2), None, 1),
                (ce.tensor([1, 0, 1]),), (slice(None), ce.tensor([2, 2])), x > 10]:
        nidx = tuple(i.numpy() if isinstance(i, ce.Tensor) else i for i in
                     (idx if isinstance(idx, tuple) else (idx,)))
        np.testing.assert_array_equal(x[idx].numpy(), n[nidx])
    y = ce.zeros(3, 3)
    y[1] = 5
    y[:, 2] = ce.tensor([1.0, 2.0, 3.0])
    y[y > 4] = -1
    assert y.tolist() == [[0, 0, 1], [-1, -1, 2], [0, 0, 3]]
    with pytest.raises(IndexError, match="out of bounds"):
        x[5]
    with pytest.raises(IndexError):
        x[ce.tensor([0.5])]


def test_comparisons_no_grad():
    x = ce.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype is ce.bool and not m.requires_grad
    assert m.tolist() == [False, True, True]
    assert (x == 2).tolist() == [False, True, False]
    assert ce.where(m, x, ce.zeros(3)).tolist() == [0, 2, 3]


def test_reductions_forward():
    n = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    x = ce.from_numpy(n)
    np.testing.assert_allclose(x.sum().item(), n.sum(), rtol=1e-5)
    np.testing.assert_allclose(x.sum((0, 2)).numpy(), n.sum((0, 2)), rtol=1e-5)
    np.testing.assert_allclose(x.mean(-1, keepdim=True).numpy(), n.mean(-1, keepdims=True),
                               rtol=1e-5)
    np.testing.assert_allclose(x.var(1).numpy(), n.var(1, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(x.std(1, unbiased=False).numpy(), n.std(1), rtol=1e-4)
    v, i = x.max(dim=1)
    np.testing.assert_array_equal(v.numpy(), n.max(1))
    np.testing.assert_array_equal(i.numpy(), n.argmax(1))
    assert x.argmin().item() == n.argmin()
    np.testing.assert_allclose(x.norm().item(), np.linalg.norm(n), rtol=1e-5)
    np.testing.assert_allclose(x.logsumexp(2).numpy(), np.log(np.exp(n).sum(2)), rtol=1e-5)
    np.testing.assert_allclose(x.cumsum(1).numpy(), n.cumsum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.prod(0).numpy(), n.prod(0), rtol=1e-5)
    assert ce.arange(5).sum().dtype is ce.int64
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        ce.arange(5).mean()


def test_bad_binary_shapes():
    # torch's error type and message (numpy's would be a ValueError)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of "
                                           r"tensor b \(4\) at non-singleton dimension 1"):
        ce.ones(2, 3) + ce.ones(4)


def test_set_num_threads_and_config(capsys):
    old = ce.get_num_threads()
    ce.set_num_threads(1)
    assert ce.get_num_threads() == 1
    ce.set_num_threads(old)
    with pytest.raises(RuntimeError):
        ce.set_num_threads(0)
    ce.show_config()
    out = capsys.readouterr().out
    assert "ISA in use" in out and "threads" in out and "OpenMP" in out


def test_cengine_isa_env_forces_path(tmp_path):
    import os
    import subprocess
    import sys
    # run where the imported cengine lives (installed or in-place build), not the source tree
    root = os.path.dirname(os.path.dirname(os.path.abspath(ce.__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    code = "import cengine as ce; print(ce.get_isa())"
    best = ce._C.ISA_NAMES.index(ce._C.max_isa())
    for isa in ce._C.ISA_NAMES[:best + 1]:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**env, "CENGINE_ISA": isa}, cwd=tmp_path)
        assert r.stdout.strip() == isa, r.stderr
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**env, "CENGINE_ISA": "neon"}, cwd=tmp_path)
    assert r.returncode != 0 and "unknown ISA" in r.stderr


def test_malloc_tuning_switch(tmp_path):
    """Heap tuning at import (glibc) is on by default and off with CENGINE_MALLOC_TUNING=0 or
    when the user sets glibc's own thresholds."""
    import os
    import platform
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(ce.__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(PYTHONPATH=root)
    code = "from cengine import _config; print(_config.malloc_tuned)"

    def run(**extra):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**env, **extra}, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()
    glibc = platform.libc_ver()[0] == "glibc"
    assert run() == str(glibc)
    assert run(CENGINE_MALLOC_TUNING="0") == "False"
    assert run(CENGINE_MALLOC_TUNING="Off") == "False"
    assert run(MALLOC_MMAP_THRESHOLD_="131072") == "False"
    assert run(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000") == "False"
