"""cengine.utils.data: datasets, samplers, collate and the DataLoader (with and without
worker processes), against hand-computed expectations."""
import collections
import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import cengine as ce
from cengine.utils.data import (DataLoader, Dataset, IterableDataset, TensorDataset,
                                ConcatDataset, ChainDataset, StackDataset, Subset, random_split,
                                Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler,
                                WeightedRandomSampler, BatchSampler, default_collate,
                                default_convert, get_worker_info)


# ------------------------------------------------------------------ module-level datasets
# (module level, so the same datasets also serve the tests that start workers with
# forkserver/spawn, where what the workers run must be importable)
class Squares(Dataset):
    """sample i: {'x': tensor([i, i*i]) float32, 'y': i, 'name': 'n<i>'}"""

    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": ce.tensor([float(i), float(i * i)]), "y": i, "name": "n%d" % i}


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise ValueError("sample 5 is broken")
        return i


class Dying(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 3:
            os._exit(7)
        return i


class MissingKey(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return {}["nope"]


class Slow(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(1)
        return i


class InfoDataset(Dataset):
    """sample i: (worker id, num_workers, worker seed, a cengine random int, a numpy random
    int, the worker's dataset is self-like)"""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        info = get_worker_info()
        return (info.id, info.num_workers, info.seed, int(ce.randint(0, 10 ** 9, ()).item()),
                int(np.random.randint(0, 10 ** 9)), isinstance(info.dataset, InfoDataset),
                os.environ.get("CE_INIT_FN", ""), ce.get_num_threads())


class OpenMPWork(Dataset):
    """Each sample runs a threaded C kernel (an OpenMP parallel region) in the worker."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        ce.set_num_threads(2)
        return ce.tanh(ce.full((1 << 16,), float(i))).sum()


def _init_fn(worker_id):
    os.environ["CE_INIT_FN"] = "init%d" % worker_id


class Range(IterableDataset):
    """0..n-1; with shard=True each worker yields the numbers i with i % num_workers == id."""

    def __init__(self, n, shard=True):
        self.n = n
        self.shard = shard

    def __len__(self):
        return self.n

    def __iter__(self):
        info = get_worker_info()
        if info is None or not self.shard:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


# ------------------------------------------------------------------ datasets
def test_tensor_dataset():
    x = ce.arange(12).reshape(6, 2).float()
    y = ce.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    a, b = ds[4]
    assert a.tolist() == [8.0, 9.0] and b.item() == 4
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(x, ce.arange(5))


def test_concat_and_subset():
    a = TensorDataset(ce.arange(3))
    b = TensorDataset(ce.arange(10, 14))
    c = a + b
    assert isinstance(c, ConcatDataset) and len(c) == 7
    assert c.cumulative_sizes == [3, 7]
    assert [int(c[i][0]) for i in range(7)] == [0, 1, 2, 10, 11, 12, 13]
    assert int(c[-1][0]) == 13 and int(c[-7][0]) == 0
    with pytest.raises(ValueError, match="absolute value of index"):
        c[-8]
    with pytest.raises(IndexError):
        c[7]
    with pytest.raises(AssertionError, match="empty iterable"):
        ConcatDataset([])
    with pytest.raises(AssertionError, match="does not support IterableDataset"):
        ConcatDataset([a, Range(3)])
    s = Subset(c, [6, 0, 3])
    assert len(s) == 3 and [int(s[i][0]) for i in range(3)] == [13, 0, 10]
    chain = Range(2) + Range(3)
    assert isinstance(chain, ChainDataset) and list(chain) == [0, 1, 0, 1, 2] and len(chain) == 5
    b3 = Subset(b, [0, 1, 2])
    st = StackDataset(a, b3)
    assert len(st) == 3 and int(st[1][1][0]) == 11
    st = StackDataset(p=a, q=b3)
    assert int(st[2]["q"][0]) == 12
    with pytest.raises(ValueError, match="Size mismatch"):
        StackDataset(a, c)


def test_base_dataset_errors():
    with pytest.raises(NotImplementedError):
        Dataset()[0]
    with pytest.raises(NotImplementedError):
        iter(IterableDataset())


def test_random_split_lengths_and_generator():
    ds = Squares(10)
    g = ce.Generator().manual_seed(3)
    parts = random_split(ds, [6, 4], generator=g)
    assert [len(p) for p in parts] == [6, 4]
    idx = parts[0].indices + parts[1].indices
    assert sorted(idx) == list(range(10))
    # the split is the generator's permutation, cut in order
    expect = ce.randperm(10, generator=ce.Generator().manual_seed(3)).tolist()
    assert idx == expect
    parts2 = random_split(ds, [6, 4], generator=ce.Generator().manual_seed(3))
    assert parts2[0].indices == parts[0].indices
    # default generator: reproducible through manual_seed
    ce.manual_seed(5)
    a = random_split(ds, [5, 5])[0].indices
    ce.manual_seed(5)
    assert random_split(ds, [5, 5])[0].indices == a
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(ds, [6, 5])


def test_random_split_fractions():
    ds = Squares(10)
    parts = random_split(ds, [0.33, 0.33, 0.34], generator=ce.Generator().manual_seed(0))
    # floors 3, 3, 3; the remaining sample goes to the first split
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sorted(sum((p.indices for p in parts), [])) == list(range(10))
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        parts = random_split(Squares(2), [0.95, 0.05])
    assert [len(p) for p in parts] == [2, 0]
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        random_split(ds, [0.5, 1.5, -1.0])


# ------------------------------------------------------------------ samplers
def test_sequential_sampler():
    s = SequentialSampler(range(5))
    assert list(s) == [0, 1, 2, 3, 4] and len(s) == 5


def test_random_sampler_permutation_and_generator():
    s = RandomSampler(range(20), generator=ce.Generator().manual_seed(1))
    order = list(s)
    assert sorted(order) == list(range(20)) and order != list(range(20)) and len(s) == 20
    # one permutation from the generator's stream
    assert order == ce.randperm(20, generator=ce.Generator().manual_seed(1)).tolist()
    # the generator advances: the next epoch differs
    assert list(s) != order


def test_random_sampler_default_generator_reproducible():
    s = RandomSampler(range(30))
    ce.manual_seed(11)
    e1, e2 = list(s), list(s)
    ce.manual_seed(11)
    assert list(s) == e1 and list(s) == e2
    assert e1 != e2


def test_random_sampler_num_samples_and_replacement():
    s = RandomSampler(range(4), num_samples=10, generator=ce.Generator().manual_seed(0))
    out = list(s)
    assert len(out) == 10 and len(s) == 10
    # without replacement: two full permutations, then 2 more distinct indices
    assert sorted(out[:4]) == sorted(out[4:8]) == [0, 1, 2, 3]
    assert len(set(out[8:])) == 2
    s = RandomSampler(range(5), replacement=True, num_samples=100,
                      generator=ce.Generator().manual_seed(0))
    out = list(s)
    assert len(out) == 100 and set(out) == {0, 1, 2, 3, 4}  # 100 draws hit every index
    with pytest.raises(TypeError, match="replacement should be a boolean value"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but "
                                         "got num_samples=0"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler([])


def test_subset_random_sampler():
    idx = [3, 7, 11, 19]
    s = SubsetRandomSampler(idx, generator=ce.Generator().manual_seed(2))
    out = list(s)
    assert sorted(out) == idx and len(s) == 4
    perm = ce.randperm(4, generator=ce.Generator().manual_seed(2)).tolist()
    assert out == [idx[p] for p in perm]


def test_weighted_random_sampler():
    g = ce.Generator().manual_seed(0)
    s = WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=g)
    out = np.array(list(s))
    assert len(s) == 4000 and out.shape == (4000,)
    assert not np.any(out == 0)  # zero weight: never drawn
    frac = np.mean(out == 2)
    assert 0.72 < frac < 0.78  # expected 0.75 (std ~0.007)
    s = WeightedRandomSampler(ce.tensor([1.0, 1.0, 1.0, 5.0]), 4, replacement=False,
                              generator=g)
    assert sorted(s) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        WeightedRandomSampler([1.0], 0)
    with pytest.raises(ValueError, match="replacement should be a boolean value"):
        WeightedRandomSampler([1.0], 1, replacement=None)
    with pytest.raises(ValueError, match="weights should be a 1d sequence"):
        WeightedRandomSampler([[1.0, 2.0]], 1)
    with pytest.raises(RuntimeError, match="without replacement"):
        list(WeightedRandomSampler([1.0, 1.0], 3, replacement=False))


def test_batch_sampler():
    b = BatchSampler(SequentialSampler(range(7)), 3, False)
    assert list(b) == [[0, 1, 2], [3, 4, 5], [6]] and len(b) == 3
    b = BatchSampler(SequentialSampler(range(7)), 3, True)
    assert list(b) == [[0, 1, 2], [3, 4, 5]] and len(b) == 2
    b = BatchSampler(range(6), 2, True)
    assert len(b) == 3 and list(b)[-1] == [4, 5]
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but "
                                         "got batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler(range(3), 2, 0)
    with pytest.raises(NotImplementedError):
        iter(Sampler())


# ------------------------------------------------------------------ collate
Point = collections.namedtuple("Point", ["pos", "label"])


def test_collate_nested_dict_of_tuples():
    batch = [{"a": (ce.tensor([1.0, 2.0]), ce.tensor(3)), "b": "s0"},
             {"a": (ce.tensor([4.0, 5.0]), ce.tensor(6)), "b": "s1"}]
    out = default_collate(batch)
    assert set(out) == {"a", "b"}
    assert isinstance(out["a"], list) and len(out["a"]) == 2  # a tuple collates to a list
    assert out["a"][0].tolist() == [[1.0, 2.0], [4.0, 5.0]]
    assert out["a"][0].dtype == ce.float32
    assert out["a"][1].tolist() == [3, 6] and out["a"][1].dtype == ce.int64
    assert out["b"] == ["s0", "s1"]


def test_collate_numbers_numpy_strings():
    f = default_collate([1.5, 2.5])
    assert f.dtype == ce.float64 and f.tolist() == [1.5, 2.5]
    i = default_collate([1, 2, 3])
    assert i.dtype == ce.int64 and i.tolist() == [1, 2, 3]
    b = default_collate([True, False])
    assert b.dtype == ce.bool and b.tolist() == [True, False]
    m = default_collate([1, 2.5])  # first sample an int, then a float: no truncation
    assert m.dtype == ce.float32 and m.tolist() == [1.0, 2.5]
    m = default_collate([True, 2])
    assert m.dtype == ce.int64 and m.tolist() == [1, 2]
    a = default_collate([np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)])
    assert isinstance(a, ce.Tensor) and a.shape == (2, 2, 3) and a.dtype == ce.float32
    assert a.tolist()[1] == [[1.0] * 3] * 2
    s = default_collate([np.int32(4), np.int32(7)])
    assert s.dtype == ce.int32 and s.tolist() == [4, 7]
    assert default_collate(["ab", "cd"]) == ["ab", "cd"]
    assert default_collate([b"x", b"y"]) == [b"x", b"y"]
    nested = default_collate([[1, [2.0, "u"]], [3, [4.0, "v"]]])
    assert nested[0].tolist() == [1, 3]
    assert nested[1][0].dtype == ce.float64 and nested[1][0].tolist() == [2.0, 4.0]
    assert nested[1][1] == ["u", "v"]


def test_collate_namedtuple():
    out = default_collate([Point(ce.tensor([0.0, 1.0]), 0), Point(ce.tensor([2.0, 3.0]), 1)])
    assert isinstance(out, Point)
    assert out.pos.tolist() == [[0.0, 1.0], [2.0, 3.0]] and out.label.tolist() == [0, 1]


def test_collate_stacks_with_grad():
    a = ce.tensor([1.0, 2.0], requires_grad=True)
    b = ce.tensor([3.0, 4.0], requires_grad=True)
    out = default_collate([a, b])
    (out * ce.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert a.grad.tolist() == [1.0, 2.0] and b.grad.tolist() == [3.0, 4.0]


def test_collate_shape_mismatch_message():
    batch = [{"ids": ce.tensor([1, 2, 3])}, {"ids": ce.tensor([4, 5, 6])},
             {"ids": ce.tensor([7, 8])}]
    with pytest.raises(RuntimeError) as ei:
        default_collate(batch)
    msg = str(ei.value)
    assert "sample['ids']" in msg
    assert "[3]" in msg and "[2]" in msg and "tensor 2" in msg
    assert "collate_fn" in msg and "pad_sequence" in msg
    with pytest.raises(RuntimeError, match="pad_sequence"):
        default_collate([np.zeros(3), np.zeros(4)])


def test_collate_errors():
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal "
                                           "size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy "
                                        "arrays, numbers, dicts or lists; found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_default_convert():
    out = default_convert({"a": np.arange(3), "b": (np.float32(2.0), "s"),
                           "p": Point(np.ones(2), 1)})
    assert isinstance(out["a"], ce.Tensor) and out["a"].tolist() == [0, 1, 2]
    assert isinstance(out["b"], list) and isinstance(out["b"][0], ce.Tensor)
    assert out["b"][1] == "s"
    assert isinstance(out["p"], Point) and isinstance(out["p"].pos, ce.Tensor)
    assert out["p"].label == 1
    t = ce.ones(2)
    assert default_convert(t) is t
    assert default_convert(5) == 5


# ------------------------------------------------------------------ DataLoader, main process
def test_loader_batches_in_order():
    dl = DataLoader(Squares(7), batch_size=3)
    batches = list(dl)
    assert len(dl) == 3 and len(batches) == 3
    assert [b["y"].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert batches[1]["x"].tolist() == [[3.0, 9.0], [4.0, 16.0], [5.0, 25.0]]
    assert batches[2]["name"] == ["n6"]
    dl = DataLoader(Squares(7), batch_size=3, drop_last=True)
    assert len(dl) == 2 and [b["y"].tolist() for b in dl] == [[0, 1, 2], [3, 4, 5]]
    # batch_size=1 default
    assert [b["y"].tolist() for b in DataLoader(Squares(2))] == [[0], [1]]


def test_loader_tensor_dataset():
    x = ce.arange(10).float().reshape(5, 2)
    y = ce.arange(5)
    xb, yb = next(iter(DataLoader(TensorDataset(x, y), batch_size=4)))
    assert xb.shape == (4, 2) and xb.tolist() == x.tolist()[:4] and yb.tolist() == [0, 1, 2, 3]


def test_loader_shuffle_reproducible():
    ds = Squares(12)

    def epoch(dl):
        return sum((b["y"].tolist() for b in dl), [])

    ce.manual_seed(0)
    dl = DataLoader(ds, batch_size=5, shuffle=True)
    e1, e2 = epoch(dl), epoch(dl)
    assert sorted(e1) == list(range(12)) and e1 != list(range(12)) and e1 != e2
    ce.manual_seed(0)
    dl = DataLoader(ds, batch_size=5, shuffle=True)
    assert epoch(dl) == e1 and epoch(dl) == e2
    # an explicit generator: independent of the global seed
    g1 = ce.Generator().manual_seed(42)
    ce.manual_seed(1)
    a = epoch(DataLoader(ds, batch_size=5, shuffle=True, generator=g1))
    g2 = ce.Generator().manual_seed(42)
    ce.manual_seed(2)
    b = epoch(DataLoader(ds, batch_size=5, shuffle=True, generator=g2))
    assert a == b and sorted(a) == list(range(12))


def test_loader_sampler_batch_sampler_and_batch_size_none():
    ds = Squares(6)
    dl = DataLoader(ds, batch_size=2, sampler=[5, 3, 1])
    assert [b["y"].tolist() for b in dl] == [[5, 3], [1]] and len(dl) == 2
    dl = DataLoader(ds, batch_sampler=[[0, 5], [2]])
    assert [b["y"].tolist() for b in dl] == [[0, 5], [2]]
    assert dl.batch_size is None and len(dl) == 2
    dl = DataLoader(TensorDataset(ce.arange(3)), batch_size=None)
    out = list(dl)
    assert len(dl) == 3 and len(out) == 3
    assert isinstance(out[1], list) and out[1][0].item() == 1  # default_convert: no batch dim
    dl = DataLoader(ds, batch_size=4, collate_fn=lambda b: [s["y"] * 10 for s in b])
    assert list(dl) == [[0, 10, 20, 30], [40, 50]]
    assert dl.pin_memory is False
    assert len(list(DataLoader(ds, batch_size=3, pin_memory=True))) == 2
    # in_order=False (torch >= 2.6) is accepted; batches still come in sampler order
    dl = DataLoader(ds, batch_size=4, in_order=False, collate_fn=lambda b: [s["y"] for s in b])
    assert dl.in_order is False and list(dl) == [[0, 1, 2, 3], [4, 5]]


def test_loader_option_errors():
    ds = Squares(4)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive with "
                                         "batch_size, shuffle, sampler, and drop_last"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, drop_last=True, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="batch_size=None option disables auto-batching and is "
                                         "mutually exclusive with drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="timeout option should be non-negative"):
        DataLoader(ds, timeout=-1)
    with pytest.raises(ValueError, match="prefetch_factor option could only be specified in "
                                         "multiprocessing"):
        DataLoader(ds, prefetch_factor=2)
    with pytest.raises(ValueError, match="persistent_workers option needs num_workers > 0"):
        DataLoader(ds, persistent_workers=True)
    with pytest.raises(ValueError, match="multiprocessing_context can only be used with "
                                         "multi-process loading"):
        DataLoader(ds, multiprocessing_context="spawn")
    with pytest.raises(ValueError, match="multiprocessing_context option should specify a "
                                         "valid start method"):
        DataLoader(ds, num_workers=1, multiprocessing_context="bogus")
    with pytest.raises(ValueError, match="expected unspecified shuffle option, but got "
                                         "shuffle=True"):
        DataLoader(Range(4), shuffle=True)
    with pytest.raises(ValueError, match="expected unspecified sampler option"):
        DataLoader(Range(4), sampler=[0])
    with pytest.raises(ValueError, match="expected unspecified batch_sampler option"):
        DataLoader(Range(4), batch_sampler=[[0]])
    dl = DataLoader(ds, batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after "
                                         "DataLoader is initialized"):
        dl.batch_size = 3
    dl.num_workers = 0  # other attributes may change
    assert DataLoader(ds, num_workers=2).prefetch_factor == 2


def test_loader_iterable_dataset_main_process():
    dl = DataLoader(Range(7), batch_size=3)
    assert len(dl) == 3 and [b.tolist() for b in dl] == [[0, 1, 2], [3, 4, 5], [6]]
    dl = DataLoader(Range(7), batch_size=3, drop_last=True)
    assert len(dl) == 2 and [b.tolist() for b in dl] == [[0, 1, 2], [3, 4, 5]]
    dl = DataLoader(Range(3), batch_size=None)
    assert len(dl) == 3 and list(dl) == [0, 1, 2]
    assert get_worker_info() is None


def test_tensor_pickles_through_forking_pickler():
    from multiprocessing.reduction import ForkingPickler
    t = ce.arange(6).float().reshape(2, 3)[:, 1]  # a non-contiguous view
    back = pickle.loads(ForkingPickler.dumps(t))
    assert isinstance(back, ce.Tensor) and back.tolist() == [1.0, 4.0]
    leaf = ce.ones(2, requires_grad=True)
    assert pickle.loads(ForkingPickler.dumps(leaf)).requires_grad
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor"):
        ForkingPickler.dumps(leaf * 2)


# ------------------------------------------------------------------ DataLoader with workers
def test_workers_same_batches_as_main_process():
    ds = Squares(11)
    kw = dict(batch_size=3, shuffle=True)
    ref = list(DataLoader(ds, generator=ce.Generator().manual_seed(7), **kw))
    dl = DataLoader(ds, num_workers=2, generator=ce.Generator().manual_seed(7),
                    prefetch_factor=3, **kw)
    assert len(dl) == len(ref) == 4
    it = iter(dl)
    # forked on Linux, as torch's workers (made safe for OpenMP: see the fork tests below)
    expected = "ForkProcess" if sys.platform.startswith("linux") else None
    if expected:
        assert all(type(w).__name__ == expected for w in it._workers)
    got = list(it)
    assert len(got) == 4
    for r, g in zip(ref, got):
        assert g["y"].tolist() == r["y"].tolist()
        assert g["x"].tolist() == r["x"].tolist() and g["x"].dtype == ce.float32
        assert g["name"] == r["name"]


def test_worker_exception_has_traceback():
    dl = DataLoader(Failing(), batch_size=2, num_workers=2)
    with pytest.raises(ValueError) as ei:
        list(dl)
    msg = str(ei.value)
    assert "Caught ValueError in DataLoader worker process 0" in msg  # batch [4, 5]: worker 0
    assert "Original Traceback" in msg
    assert 'raise ValueError("sample 5 is broken")' in msg and "__getitem__" in msg
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process"):
        next(iter(DataLoader(MissingKey(), num_workers=1)))


def test_dead_worker_reported():
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited "
                                           r"unexpectedly \(exit code\(s\) 7\)"):
        list(DataLoader(Dying(), batch_size=2, num_workers=2))
    assert time.monotonic() - t0 < 20
    # killed from outside while idle: at most prefetch_factor batches were already on their way
    it = iter(DataLoader(Squares(40), batch_size=2, num_workers=1))
    assert next(it)["y"].tolist() == [0, 1]
    os.kill(it._workers[0].pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=r"exited unexpectedly \(exit code\(s\) -9\)"):
        for _ in range(20):
            next(it)


def test_timeout():
    dl = DataLoader(Slow(), num_workers=1, timeout=0.2)
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.2 seconds"):
        next(iter(dl))


def test_early_close_shuts_workers_down():
    dl = DataLoader(Squares(40), batch_size=2, num_workers=2)
    it = iter(dl)
    assert next(it)["y"].tolist() == [0, 1]
    workers = list(it._workers)
    assert all(w.is_alive() for w in workers)
    t0 = time.monotonic()
    del it
    gc.collect()
    for w in workers:
        w.join(timeout=10)
    assert not any(w.is_alive() for w in workers)
    assert time.monotonic() - t0 < 10
    # an explicit shutdown in the middle of an epoch (what __del__ calls) is immediate
    it = iter(DataLoader(Squares(40), batch_size=2, num_workers=1))
    next(it)
    workers = list(it._workers)
    it._shutdown_workers()
    assert not any(w.is_alive() for w in workers)
    assert all(w.exitcode == 0 for w in workers)  # they left on their own, not terminated


def test_worker_info_and_seeding():
    ce.manual_seed(123)
    a = list(DataLoader(InfoDataset(), batch_size=None, num_workers=2, worker_init_fn=_init_fn))
    ce.manual_seed(123)
    b = list(DataLoader(InfoDataset(), batch_size=None, num_workers=2, worker_init_fn=_init_fn))
    assert a == b  # reproducible from the global seed
    # batch i goes to worker i % 2
    assert [s[0] for s in a] == [0, 1, 0, 1, 0, 1] and all(s[1] == 2 for s in a)
    base = a[0][2]
    assert a[1][2] == base + 1  # seed = base_seed + worker_id
    assert all(s[5] for s in a) and [s[6] for s in a[:2]] == ["init0", "init1"]
    assert all(s[7] == 1 for s in a)  # one compute thread per worker
    # cengine and numpy RNGs are seeded per worker: the workers' streams differ
    assert a[0][3] != a[1][3] and a[0][4] != a[1][4]
    # the cengine stream in worker 0 is the one manual_seed(seed) gives
    g = ce.Generator().manual_seed(base)
    assert a[0][3] == int(ce.randint(0, 10 ** 9, (), generator=g).item())
    ce.manual_seed(124)
    c = list(DataLoader(InfoDataset(), batch_size=None, num_workers=1))
    assert c[0][2] != base


def test_iterable_dataset_sharded_across_workers():
    dl = DataLoader(Range(10), batch_size=2, num_workers=2)
    got = [b.tolist() for b in dl]
    # worker 0 yields 0,2,4,6,8, worker 1 yields 1,3,5,7,9; batches alternate between them
    assert got == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    # without sharding every worker yields the whole stream (torch's behaviour): a warning
    dl = DataLoader(Range(4, shard=False), batch_size=2, num_workers=2)
    assert len(dl) == 2
    with pytest.warns(UserWarning, match="Length of IterableDataset"):
        got = [b.tolist() for b in dl]
    assert sorted(got) == [[0, 1], [0, 1], [2, 3], [2, 3]]


def test_persistent_workers_across_epochs():
    dl = DataLoader(Squares(7), batch_size=3, num_workers=2, persistent_workers=True)
    e1 = [b["y"].tolist() for b in dl]
    workers = list(dl._iterator._workers)
    e2 = [b["y"].tolist() for b in dl]
    assert e1 == e2 == [[0, 1, 2], [3, 4, 5], [6]]
    it = iter(dl)
    assert next(it)["y"].tolist() == [0, 1, 2]  # abandon this epoch half-way...
    e3 = [b["y"].tolist() for b in dl]  # ...the next one starts cleanly
    assert e3 == e1
    assert dl._iterator._workers == workers and all(w.is_alive() for w in workers)
    dl._iterator._shutdown_workers()
    for w in workers:
        w.join(timeout=10)
    assert not any(w.is_alive() for w in workers)


class Unpicklable(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return (lambda: i) if i == 2 else i


def _as_list(batch):
    return list(batch)


def test_unpicklable_batch_and_dataset_reported():
    dl = DataLoader(Unpicklable(), batch_size=2, num_workers=1, collate_fn=_as_list)
    it = iter(dl)
    assert next(it) == [0, 1]
    with pytest.raises(Exception, match="while sending the batch to the main process") as ei:
        next(it)
    assert "lambda" in str(ei.value)
    it._shutdown_workers()
    # a dataset that cannot reach spawned workers: the error says why and what to do
    with pytest.raises(Exception) as ei:
        iter(DataLoader(Squares(4), num_workers=1, collate_fn=lambda b: b,
                        multiprocessing_context="spawn"))
    notes = "".join(getattr(ei.value, "__notes__", []))
    assert "started with the 'spawn' method" in notes and "must be picklable" in notes
    assert "multiprocessing_context='fork'" in notes


@pytest.mark.skipif(not ce._C.openmp_enabled(), reason="built without OpenMP")
def test_workers_safe_after_openmp_in_main_process():
    # the main process has an OpenMP thread pool; a plain fork() of it deadlocks libgomp in
    # the child's next parallel region. The default start method must not.
    old = ce.get_num_threads()
    ce.set_num_threads(2)
    try:
        ce.tanh(ce.ones(1 << 16))
        out = list(DataLoader(OpenMPWork(), batch_size=None, num_workers=1, timeout=60))
    finally:
        ce.set_num_threads(old)
    np.testing.assert_allclose([float(v) for v in out], [0.0, (1 << 16) * np.tanh(1.0)],
                               rtol=1e-5)


_SCRIPT = textwrap.dedent("""
    import cengine as ce
    from cengine.utils.data import Dataset, DataLoader

    ce.set_num_threads(2)
    WARM = float(ce.tanh(ce.ones(1 << 16)).sum())  # module-level OpenMP work

    class Act(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            ce.set_num_threads(2)
            return ce.tanh(ce.full((1 << 16,), float(i))).sum()

    if __name__ == "__main__":
        out = [float(v) for v in DataLoader(Act(), batch_size=None, num_workers=1, timeout=60)]
        print("OK", out)
""")


@pytest.mark.skipif(not ce._C.openmp_enabled(), reason="built without OpenMP")
def test_script_with_module_level_openmp_work(tmp_path):
    # a script whose module-level code runs threaded kernels: the workers (which import the
    # script again) must not inherit an OpenMP pool through the start method
    script = tmp_path / "train_script.py"
    script.write_text(_SCRIPT)
    root = os.path.dirname(os.path.dirname(ce.__file__))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK [0.0, ")


# ------------------------------------------------------------------ timeouts
class VerySlow(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(60)
        return i


@pytest.mark.parametrize("workers", [1, 2])
def test_timeout_raises_at_the_timeout(workers):
    dl = DataLoader(VerySlow(), num_workers=workers, timeout=2)
    t0 = time.monotonic()
    it = iter(dl)
    pids = list(it._workers)
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 2 seconds"):
        next(it)
    # the stuck workers are gone too, and the iterator says it cannot go on
    assert not any(w.is_alive() for w in pids)
    with pytest.raises(RuntimeError, match="shut down after an error"):
        next(it)
    del it
    gc.collect()
    # well before the 60 s a worker sleeps (a loaded machine needs a moment to reap workers)
    assert time.monotonic() - t0 < 8


# ------------------------------------------------------------------ forked workers (Linux)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="workers are forked by default on Linux only")


@linux_only
def test_local_dataset_and_lambda_collate_with_forked_workers():
    class Local(Dataset):  # defined inside a function: not picklable
        def __len__(self):
            return 9

        def __getitem__(self, i):
            return ce.tensor([float(i), float(-i)]), i % 3

    collate = lambda batch: (ce.stack([b[0] for b in batch]), [b[1] for b in batch])  # noqa
    ref = [(x.tolist(), y) for x, y in DataLoader(Local(), batch_size=2, collate_fn=collate)]
    dl = DataLoader(Local(), batch_size=2, num_workers=2, collate_fn=collate,
                    worker_init_fn=lambda wid: None, timeout=60)
    it = iter(dl)
    assert all(type(w).__name__ == "ForkProcess" for w in it._workers)
    got = [(x.tolist(), y) for x, y in it]
    assert got == ref and len(got) == 5


class Kernels(Dataset):
    """Each sample runs cengine kernels that are threaded in the main process (GEMM,
    tanh); returns the sample, the worker's thread count and whether the worker warned."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            ce.set_num_threads(2)  # refused in a forked worker (stays 1), with a warning
        a = ce.full((96, 96), 0.01 * (i + 1))
        return (float((a @ a).sum()), float(ce.tanh(ce.full((1 << 15,), 0.1 * i)).sum()),
                ce.get_num_threads(), len(w))


@linux_only
@pytest.mark.skipif(not ce._C.openmp_enabled(), reason="built without OpenMP")
def test_fork_after_threaded_kernels_never_hangs():
    old = ce.get_num_threads()
    ce.set_num_threads(2)
    try:
        a = ce.randn(256, 256)
        for _ in range(3):  # the main process's OpenMP pool is up and running
            (a @ a).sum()
            ce.tanh(ce.ones(1 << 16))
        ref = list(DataLoader(Kernels(), batch_size=None))
        for epoch in range(3):  # fork again and again after threaded work in between
            got = list(DataLoader(Kernels(), batch_size=None, num_workers=2, timeout=60))
            (a @ a).sum()
            assert len(got) == 6
            for r, g in zip(ref, got):
                np.testing.assert_allclose(g[:2], r[:2], rtol=1e-5)
                assert g[2] == 1  # one thread in the worker
            # each worker warned once, at its first sample (samples alternate between them)
            assert [g[3] for g in got] == [1, 1, 0, 0, 0, 0]
    finally:
        ce.set_num_threads(old)
    assert ce.get_num_threads() == old  # the parent keeps its own setting


@linux_only
def test_fork_failure_says_what_to_do(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(OSError) as ei:
        iter(DataLoader(Squares(4), num_workers=2))
    notes = "".join(getattr(ei.value, "__notes__", []))
    assert "could not start worker process 0 of 2" in notes and "fewer workers" in notes


_MAIN_CASES = {
    # a script with its dataset in __main__ and no main guard (torch on Linux runs it)
    "module_level": """
        import cengine as ce
        from cengine.utils.data import Dataset, DataLoader

        class DS(Dataset):
            def __len__(self):
                return 7

            def __getitem__(self, i):
                return {"x": ce.tensor([float(i)] * 2), "i": i}

        def run(workers):
            dl = DataLoader(DS(), batch_size=3, num_workers=workers,
                            timeout=60 if workers else 0,
                            collate_fn=lambda b: [d["i"] for d in b])
            return [list(b) for b in dl]

        ref = run(0)
        got = run(2)
        print("OK" if got == ref and len(got) == 3 else "BAD", got)
    """,
    # everything under the main guard, the loop inside a function with a local class
    "main_guard": """
        import cengine as ce
        from cengine.utils.data import Dataset, DataLoader

        if __name__ == "__main__":
            ce.set_num_threads(2)
            w = ce.randn(128, 128)
            (w @ w).sum()  # threaded kernels before the workers are forked

            def main():
                class DS(Dataset):
                    def __len__(self):
                        return 8

                    def __getitem__(self, i):
                        return (ce.full((4,), float(i)) @ ce.ones(4)).reshape(1)

                ref = [b.tolist() for b in DataLoader(DS(), batch_size=2)]
                got = [b.tolist() for b in DataLoader(DS(), batch_size=2, num_workers=2,
                                                      timeout=60)]
                print("OK" if got == ref and len(got) == 4 else "BAD", got)

            main()
    """,
}


def _run_python(args, code, tmp_path, stdin=None):
    root = os.path.dirname(os.path.dirname(ce.__file__))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable] + args, input=stdin, capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(tmp_path))


@linux_only
@pytest.mark.parametrize("case", sorted(_MAIN_CASES))
def test_scripts_with_datasets_in_main(tmp_path, case):
    script = tmp_path / ("train_%s.py" % case)
    script.write_text(textwrap.dedent(_MAIN_CASES[case]))
    res = _run_python([str(script)], None, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK"), res.stdout + res.stderr


_NOTEBOOK = textwrap.dedent("""
    import cengine as ce
    from cengine.utils.data import Dataset, DataLoader
    import sys
    method = sys.argv[1] if len(sys.argv) > 1 else None

    class Cell(Dataset):  # a class defined in a notebook cell: __main__ has no file
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return ce.tensor(float(i * i))

    kw = {} if method is None else {"multiprocessing_context": method}
    ref = [b.tolist() for b in DataLoader(Cell(), batch_size=4)]
    got = [b.tolist() for b in DataLoader(Cell(), batch_size=4, num_workers=2, timeout=60, **kw)]
    print("OK" if got == ref else "BAD", got)
""")


@linux_only
def test_notebook_style_main_with_forked_workers(tmp_path):
    # code that comes from stdin, as a notebook's: nothing for a worker to import
    res = _run_python(["-"], None, tmp_path, stdin=_NOTEBOOK)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK [[0.0, 1.0, 4.0, 9.0], [16.0, 25.0]]"), res.stdout


def test_spawned_worker_that_cannot_find_the_dataset_says_why(tmp_path):
    # with 'spawn' the same notebook code cannot work: the error explains why and what to do
    res = _run_python(["-", "spawn"], None, tmp_path, stdin=_NOTEBOOK)
    assert res.returncode != 0
    assert "exited unexpectedly" in res.stderr, res.stderr
    assert "With the 'spawn' start method each worker imports the main module" in res.stderr
    assert "notebook" in res.stderr
    if sys.platform.startswith("linux"):
        assert "multiprocessing_context='fork' (the default on Linux)" in res.stderr


class ThreadsAfterSet(Dataset):
    """sample i: (i, the worker's thread count after asking for 2, its start method)"""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        import multiprocessing
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ce.set_num_threads(2)
        x = float(ce.tanh(ce.full((1 << 14,), 0.5)).sum())  # a threaded kernel
        return i, ce.get_num_threads(), multiprocessing.get_start_method(allow_none=True), x


@pytest.mark.skipif(not ce._C.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("method", ["forkserver", "spawn", "fork"])
def test_start_methods_stay_selectable(method):
    import multiprocessing
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip("no %s on this platform" % method)
    got = list(DataLoader(ThreadsAfterSet(), batch_size=None, num_workers=2, timeout=120,
                          multiprocessing_context=method))
    assert [g[0] for g in got] == [0, 1, 2, 3]
    np.testing.assert_allclose([g[3] for g in got], [(1 << 14) * np.tanh(0.5)] * 4, rtol=1e-5)
    # a fresh interpreter (forkserver, spawn) may use threads; a forked worker stays on one
    assert all(g[1] == (1 if method == "fork" else 2) for g in got)
