"""cengine.nn.utils.rnn.pad_sequence: padding sides, layouts, dtypes, autograd and errors."""
import importlib.util
import os

import numpy as np
import pytest

import cengine as ce

try:
    from cengine.nn.utils.rnn import pad_sequence
except ImportError:  # cengine.nn not wired into the package yet: load the file directly
    _path = os.path.join(os.path.dirname(ce.__file__), "nn", "utils", "rnn.py")
    _spec = importlib.util.spec_from_file_location("_cengine_nn_utils_rnn", _path)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    pad_sequence = _mod.pad_sequence


def _seqs(dtype=np.float64, trailing=(), requires_grad=False):
    rng = np.random.default_rng(0)
    return [ce.tensor(rng.standard_normal((n,) + trailing).astype(dtype),
                      requires_grad=requires_grad) for n in (3, 1, 4)]


def _expected(seqs, batch_first, value, side):
    arrs = [s.detach().numpy() for s in seqs]
    L = max(a.shape[0] for a in arrs)
    out = np.full((len(arrs), L) + arrs[0].shape[1:], value, dtype=arrs[0].dtype)
    for i, a in enumerate(arrs):
        if side == "right":
            out[i, :a.shape[0]] = a
        else:
            out[i, L - a.shape[0]:] = a
    return out if batch_first else np.swapaxes(out, 0, 1)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("trailing", [(), (2, 3)])
def test_pad_values_and_layout(batch_first, side, trailing):
    seqs = _seqs(np.float32, trailing)
    out = pad_sequence(seqs, batch_first=batch_first, padding_value=-7.0, padding_side=side)
    exp = _expected(seqs, batch_first, -7.0, side)
    assert tuple(out.shape) == exp.shape
    assert out.shape == ((3, 4) if batch_first else (4, 3)) + trailing
    assert out.dtype == ce.float32
    np.testing.assert_array_equal(out.numpy(), exp)


def test_hand_computed_example():
    a, b = ce.tensor([1, 2, 3]), ce.tensor([4])
    assert pad_sequence([a, b]).tolist() == [[1, 4], [2, 0], [3, 0]]
    assert pad_sequence([a, b], batch_first=True).tolist() == [[1, 2, 3], [4, 0, 0]]
    assert pad_sequence([a, b], batch_first=True, padding_side="left",
                        padding_value=9).tolist() == [[1, 2, 3], [9, 9, 4]]
    assert pad_sequence([a, b]).dtype == ce.int64
    # a tensor is split along its first dimension
    t = ce.arange(6).reshape(2, 3)
    assert pad_sequence(t, batch_first=True).tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_gradient_flows_back(batch_first, side):
    seqs = _seqs(np.float64, (2,), requires_grad=True)
    out = pad_sequence(seqs, batch_first=batch_first, padding_side=side)
    w = np.arange(np.prod(out.shape), dtype=np.float64).reshape(tuple(out.shape))
    (out * ce.tensor(w)).sum().backward()
    wb = w if batch_first else np.swapaxes(w, 0, 1)
    L = wb.shape[1]
    for i, s in enumerate(seqs):
        n = s.shape[0]
        exp = wb[i, :n] if side == "right" else wb[i, L - n:]
        np.testing.assert_array_equal(s.grad.numpy(), exp)


def test_gradcheck():
    seqs = _seqs(np.float64, (2,), requires_grad=True)
    assert ce.autograd.gradcheck(
        lambda *s: pad_sequence(list(s), batch_first=True, padding_side="left",
                                padding_value=0.5), tuple(seqs))
    # only some inputs require grad
    a = ce.tensor([1.0, 2.0], requires_grad=True)
    b = ce.tensor([3.0])
    pad_sequence([a, b]).sum().backward()
    assert a.grad.tolist() == [1.0, 1.0] and b.grad is None


def test_collate_fn_with_pad_sequence():
    from cengine.utils.data import DataLoader

    data = [[1, 2, 3], [4], [5, 6]]

    def collate(batch):
        seqs = [ce.tensor(s) for s in batch]
        lengths = ce.tensor([len(s) for s in batch])
        return pad_sequence(seqs, batch_first=True), lengths

    out = list(DataLoader(data, batch_size=2, collate_fn=collate))
    assert out[0][0].tolist() == [[1, 2, 3], [4, 0, 0]] and out[0][1].tolist() == [3, 1]
    assert out[1][0].tolist() == [[5, 6]]


def test_errors():
    with pytest.raises(RuntimeError, match="Expected padding_side to be one of left or right, "
                                         "but got middle."):
        pad_sequence([ce.ones(2)], padding_side="middle")
    with pytest.raises(RuntimeError, match="empty list of sequences"):
        pad_sequence([])
    with pytest.raises(RuntimeError, match="same trailing dimensions"):
        pad_sequence([ce.ones(2, 3), ce.ones(2, 4)])
    with pytest.raises(RuntimeError, match="0-d"):
        pad_sequence([ce.tensor(1.0)])
    with pytest.raises(TypeError, match="expected a sequence of Tensors"):
        pad_sequence([[1, 2]])
