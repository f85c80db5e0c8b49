"""Run by tests/test_distributed.py under `mpiexec -n 2 python tests/_dist_worker.py CASE`.
Each case prints "OK <rank>" when every check on that rank passed."""
import sys

import numpy as np

import cengine as ce
import cengine.distributed as dist
from cengine import nn


def close(a, b, rtol=1e-5, atol=1e-6):
    a = a.detach().numpy() if isinstance(a, ce.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, ce.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def expect_raises(exc, fn, match):
    try:
        fn()
    except exc as e:
        assert match in str(e), str(e)
        return
    raise AssertionError("%s not raised" % exc.__name__)


def case_collectives():
    dist.init_process_group("mpi")
    r, n = dist.get_rank(), dist.get_world_size()
    assert dist.is_initialized() and n == 2 and dist.get_backend() == "mpi"
    R = ReduceOp = dist.ReduceOp
    base = ce.arange(6, dtype=ce.float32).reshape(2, 3)
    for op, want in [(R.SUM, base * 3), (R.AVG, base * 1.5), (R.MAX, base * 2), (R.MIN, base),
                     (R.PRODUCT, base * base * 2)]:
        t = base * (r + 1)
        v = t._version_count
        assert dist.all_reduce(t, op=op) is None
        close(t, want)
        assert t._version_count > v
    # a non-contiguous view is reduced in place through a copy
    big = ce.zeros(3, 4)
    view = big.t()[1:3]
    view.copy_(ce.ones(2, 3) * (r + 1))
    dist.all_reduce(view)
    close(big.t()[1:3], ce.full((2, 3), 3.0))
    close(big.t()[0], ce.zeros(3))
    # int64 sum; AVG needs a float tensor
    ti = ce.tensor([r + 1, 10 * (r + 1)])
    dist.all_reduce(ti)
    assert ti.tolist() == [3, 30]
    expect_raises(RuntimeError, lambda: dist.all_reduce(ce.tensor([1]), op=R.AVG), "floating")
    # async
    t = ce.full((1000,), float(r))
    w = dist.all_reduce(t, async_op=True)
    assert w.wait() and w.is_completed()
    close(t, ce.full((1000,), 1.0))
    # broadcast (also async), reduce
    t = ce.full((5,), float(r + 7))
    dist.broadcast(t, src=1)
    close(t, ce.full((5,), 8.0))
    t = ce.full((2, 2), float(r))
    dist.broadcast(t, src=0, async_op=True).wait()
    close(t, ce.zeros(2, 2))
    t = ce.full((3,), float(r + 1))
    dist.reduce(t, dst=1)
    close(t, ce.full((3,), 3.0 if r == 1 else 1.0))
    # all_gather, all_gather_into_tensor (concatenated and stacked), reduce_scatter_tensor
    mine = ce.tensor([[r, r + 0.5]])
    out = [ce.zeros(1, 2) for _ in range(n)]
    dist.all_gather(out, mine)
    close(out[0], [[0, 0.5]])
    close(out[1], [[1, 1.5]])
    cat = ce.zeros(2, 2)
    dist.all_gather_into_tensor(cat, mine)
    close(cat, [[0, 0.5], [1, 1.5]])
    stk = ce.zeros(2, 1, 2)
    dist.all_gather_into_tensor(stk, mine, async_op=True).wait()
    close(stk, [[[0, 0.5]], [[1, 1.5]]])
    inp = ce.arange(4, dtype=ce.float32) + 10 * r
    o = ce.zeros(2)
    dist.reduce_scatter_tensor(o, inp)
    close(o, [10, 12] if r == 0 else [14, 16])
    expect_raises(ValueError, lambda: dist.reduce_scatter_tensor(ce.zeros(3), inp), "world size")
    # gather / scatter
    glist = [ce.zeros(2) for _ in range(n)] if r == 0 else None
    dist.gather(ce.full((2,), float(r + 1)), glist, dst=0)
    if r == 0:
        close(glist[0], [1, 1])
        close(glist[1], [2, 2])
    s = ce.zeros(3)
    dist.scatter(s, [ce.full((3,), 5.0), ce.full((3,), 6.0)] if r == 0 else None, src=0)
    close(s, ce.full((3,), 5.0 + r))
    # point to point
    if r == 0:
        dist.send(ce.tensor([1.0, 2.0, 3.0]), dst=1)
        w = dist.isend(ce.tensor([4.0]), dst=1, tag=3)
        w.wait()
        rb = ce.zeros(2)
        assert dist.recv(rb, src=1) == 1
        close(rb, [9, 9])
    else:
        rb = ce.zeros(3)
        assert dist.recv(rb) == 0
        close(rb, [1, 2, 3])
        rb2 = ce.zeros(1)
        dist.irecv(rb2, src=0, tag=3).wait()
        close(rb2, [4])
        dist.send(ce.full((2,), 9.0), dst=0)
    # objects, barrier
    objs = [None, None]
    dist.all_gather_object(objs, {"rank": r})
    assert objs == [{"rank": 0}, {"rank": 1}]
    lst = ["a", r] if r == 0 else [None, None]
    dist.broadcast_object_list(lst, src=0)
    assert lst == ["a", 0]
    dist.barrier()
    dist.barrier(async_op=True).wait()
    # mismatched sizes across ranks: a clear error on every rank, not a hang or mixed data
    expect_raises(RuntimeError, lambda: dist.all_reduce(ce.zeros(3 + r)), "different sizes")
    expect_raises(RuntimeError, lambda: dist.broadcast(ce.zeros(2, 2 + r), 0), "different sizes")
    expect_raises(RuntimeError,
                  lambda: dist.all_reduce(ce.zeros(3, dtype=ce.float32 if r else ce.float64)),
                  "dtypes")
    expect_raises(ValueError, lambda: dist.broadcast(ce.zeros(2), src=2), "not a rank")
    expect_raises(TypeError, lambda: dist.all_reduce(np.zeros(2)), "cengine Tensor")
    dist.destroy_process_group()
    assert not dist.is_initialized()
    expect_raises(ValueError, dist.get_rank, "has not been initialized")
    print("OK", r)


def make_model(seed):
    ce.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 3))


def data(steps, batch):
    g = ce.Generator().manual_seed(123)
    xs = ce.randn(steps, batch, 7, generator=g)
    ys = ce.randint(0, 3, (steps, batch), generator=g)
    return xs, ys


def case_ddp():
    dist.init_process_group("mpi")
    r, n = dist.get_rank(), dist.get_world_size()
    ce.set_num_threads(1)
    steps, gb = 6, 8
    xs, ys = data(steps, gb)
    # reference: one process, the whole global batch
    ref = make_model(0)
    opt_ref = ce.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    # DDP: rank 1 starts from other weights; construction broadcasts rank 0's
    local = make_model(0 if r == 0 else 99)
    ddp = nn.parallel.DistributedDataParallel(local, bucket_cap_mb=0.0004)
    assert len(ddp._buckets) > 2
    assert list(ddp.state_dict())[0].startswith("module.")
    opt = ce.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for s in range(steps):
        x, y = xs[s], ys[s]
        lr_ = loss_fn(ref(x), y)
        opt_ref.zero_grad()
        lr_.backward()
        opt_ref.step()
        shard = slice(r * gb // n, (r + 1) * gb // n)
        loss = loss_fn(ddp(x[shard]), y[shard])
        opt.zero_grad()
        loss.backward()
        opt.step()
        g = loss.detach().clone()
        dist.all_reduce(g, op=dist.ReduceOp.AVG)
        close(g, lr_.detach())
    for (name, p), q in zip(ddp.module.named_parameters(), ref.parameters()):
        close(p, q)
    # no_sync: two local micro-batches accumulate, the third backward all-reduces the sum
    ref2 = make_model(1)
    d2 = nn.parallel.DistributedDataParallel(make_model(1))
    x, y = xs[0], ys[0]
    for m in range(3):
        xm, ym = x[m * 2:(m + 1) * 2], y[m * 2:(m + 1) * 2]
        loss_fn(ref2(xm), ym).backward()   # reference: both ranks' samples of micro-batch m
    for m in range(3):
        xm, ym = x[m * 2:(m + 1) * 2], y[m * 2:(m + 1) * 2]
        xr, yr = xm[r:r + 1], ym[r:r + 1]
        if m < 2:
            with d2.no_sync():
                loss_fn(d2(xr), yr).backward()
        else:
            loss_fn(d2(xr), yr).backward()
    for p, q in zip(d2.module.parameters(), ref2.parameters()):
        close(p.grad, q.grad)
    # a parameter used on one rank only: find_unused_parameters=True averages what exists
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

        def forward(self, x, use_b):
            return self.b(self.a(x)) if use_b else self.a(x)
    ce.manual_seed(5)
    m3 = Branchy()
    d3 = nn.parallel.DistributedDataParallel(m3, find_unused_parameters=True)
    x = ce.ones(2, 4) * (r + 1)
    d3(x, use_b=(r == 0)).sum().backward()
    gb_ = m3.b.weight.grad.clone() if m3.b.weight.grad is not None else None
    ga = m3.a.weight.grad.clone()
    got = [None, None]
    dist.all_gather_object(got, None if gb_ is None else gb_.numpy())
    assert gb_ is not None   # rank 1 receives rank 0's gradient / 2
    close(got[0], got[1])
    # never-used parameter on every rank: .grad stays None
    d3b = nn.parallel.DistributedDataParallel(Branchy(), find_unused_parameters=True)
    d3b(x, use_b=False).sum().backward()
    assert d3b.module.b.weight.grad is None and d3b.module.a.weight.grad is not None
    # ... and without find_unused_parameters it is an error
    d4 = nn.parallel.DistributedDataParallel(Branchy())
    expect_raises(RuntimeError, lambda: d4(x, use_b=False).sum().backward(),
                  "find_unused_parameters=True")
    # different models on the ranks: refused at construction
    expect_raises(RuntimeError,
                  lambda: nn.parallel.DistributedDataParallel(nn.Linear(3, 2 + r)), "same model")
    del ga
    print("OK", r)


def case_fault():
    dist.init_process_group("mpi")
    r = dist.get_rank()
    if r == 1:
        raise ValueError("rank 1 fails on purpose")
    t = ce.zeros(4)
    dist.all_reduce(t)   # never completes: rank 1 is gone; the abort ends the job
    print("rank 0 should not get here")


if __name__ == "__main__":
    globals()["case_" + sys.argv[1]]()
