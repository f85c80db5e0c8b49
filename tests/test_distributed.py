"""cengine.distributed, DistributedDataParallel and DistributedSampler.

The collective and DDP checks run on 2 MPI ranks: `mpiexec -n 2 python tests/_dist_worker.py
CASE` in a subprocess (MPI is never started inside the pytest process). They skip with the
reason when mpi4py or mpiexec is missing (pip install "cengine[dist]")."""
import importlib.util
import os
import shutil
import subprocess
import sys
import time

import pytest

import cengine as ce
import cengine.distributed as dist
from cengine.utils.data import DistributedSampler

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_dist_worker.py")


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
    reason='needs mpi4py and mpiexec: pip install "cengine[dist]"')


def run_ranks(case, n=2, timeout=120):
    env = dict(os.environ)
    # the child ranks import the same cengine as this process
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(ce.__file__)) + os.pathsep + \
        env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    t0 = time.monotonic()
    p = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, WORKER, case], env=env,
                       capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t0


# collectives on 2 ranks; a 2-rank DDP run against one process at the same global batch (loss
# curve, final parameters, no_sync accumulation, unused parameters); the dtypes of a first
# collective, one rank's argument error raised on both, dropped async handles, p2p size/dtype
# checks; DDP after a failed backward and with backward(inputs=...)
@needs_mpi
@pytest.mark.parametrize("case", ["collectives", "ddp", "first_dtype", "ddp_recover"])
def test_two_ranks(case):
    p, _ = run_ranks(case)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK 0" in p.stdout and "OK 1" in p.stdout


def test_queue_callback_only_during_backward():
    with pytest.raises(RuntimeError, match="only be installed during backward"):
        ce.autograd.engine.queue_callback(lambda: None)
    calls = []
    x = ce.ones(2, requires_grad=True)
    x.register_post_accumulate_grad_hook(
        lambda t: ce.autograd.engine.queue_callback(lambda: calls.append(t.grad.tolist())))
    (x * 3).sum().backward()
    assert calls == [[3.0, 3.0]]
    (x * 1).sum().backward(inputs=[x])      # hooks also run for backward(inputs=...)
    assert calls[-1] == [4.0, 4.0]


@needs_mpi
def test_an_exception_on_one_rank_ends_the_job():
    p, took = run_ranks("fault", timeout=90)
    assert p.returncode != 0
    assert took < 60
    assert "rank 1 fails on purpose" in p.stderr
    assert "rank 0 should not get here" not in p.stdout


def test_uninitialized_and_bad_arguments():
    assert dist.is_available() == (importlib.util.find_spec("mpi4py") is not None)
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="has not been initialized"):
        dist.get_rank()
    with pytest.raises(ValueError, match="has not been initialized"):
        dist.all_reduce(ce.zeros(2))
    with pytest.raises(RuntimeError, match="no NCCL backend"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="Invalid backend"):
        dist.init_process_group("carrier-pigeon")
    assert {op.name for op in dist.ReduceOp} >= {"SUM", "AVG", "MAX", "MIN", "PRODUCT"}


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setattr(dist._S, "MPI", None)
    monkeypatch.setattr(dist, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r'pip install "cengine\[dist\]"'):
        dist.init_process_group("mpi")


def test_ddp_needs_a_process_group():
    with pytest.raises(ValueError, match="has not been initialized"):
        ce.nn.parallel.DistributedDataParallel(ce.nn.Linear(2, 2))


def test_data_parallel_runs_the_module_on_cpu():
    m = ce.nn.Linear(3, 2)
    dp = ce.nn.DataParallel(m) if hasattr(ce.nn, "DataParallel") else ce.nn.parallel.DataParallel(m)
    x = ce.randn(4, 3)
    assert ce.equal(dp(x), m(x))
    assert list(dp.state_dict()) == ["module.weight", "module.bias"]


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (9, 3, False),
                                                   (2, 4, False), (7, 2, True), (1, 1, False)])
def test_distributed_sampler_partition(n, replicas, drop_last):
    ds = list(range(n))
    shards = [list(DistributedSampler(ds, replicas, r, shuffle=False, drop_last=drop_last))
              for r in range(replicas)]
    lens = {len(s) for s in shards}
    assert len(lens) == 1 and lens.pop() == len(DistributedSampler(ds, replicas, 0,
                                                                   drop_last=drop_last))
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(set(flat)) == len(flat)           # no repeats, only the tail dropped
        assert len(flat) == (n // replicas) * replicas
    else:
        assert set(flat) == set(range(n))            # every sample, padded by repetition
    # rank r takes every replicas-th index from r
    assert shards[0] == list(range(n))[0:len(shards[0]) * replicas:replicas][:len(shards[0])] \
        or n < replicas
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TS
    for r in range(replicas):
        assert shards[r] == list(TS(ds, replicas, r, shuffle=False, drop_last=drop_last))


@pytest.mark.parametrize("n,replicas,seed,epoch", [(10, 3, 0, 0), (97, 4, 7, 3), (1, 2, 1, 0),
                                                    (1000, 2, 2 ** 40 + 3, 5)])
def test_distributed_sampler_shuffle_matches_torch(n, replicas, seed, epoch):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TS
    ds = list(range(n))
    for r in range(replicas):
        mine, theirs = DistributedSampler(ds, replicas, r, seed=seed), TS(ds, replicas, r, seed=seed)
        mine.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(mine) == list(theirs)


def test_distributed_sampler_shuffle_and_epochs():
    ds = list(range(50))
    a = [list(DistributedSampler(ds, 2, r, seed=3)) for r in range(2)]
    assert sorted(a[0] + a[1]) == ds        # both ranks draw the same permutation
    s = DistributedSampler(ds, 2, 0, seed=3)
    first = list(s)
    assert first == a[0] and list(s) == first
    s.set_epoch(1)
    assert list(s) != first
    with pytest.raises(ValueError, match="Invalid rank 2"):
        DistributedSampler(ds, 2, 2)
    with pytest.raises(RuntimeError, match="Requires distributed package"):
        DistributedSampler(ds)


@needs_mpi
def test_train_digits_example_with_ddp(tmp_path):
    pytest.importorskip("sklearn")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(ce.__file__)) + os.pathsep + \
        env.get("PYTHONPATH", "")
    script = os.path.join(os.path.dirname(HERE), "examples", "train_digits.py")
    ck = str(tmp_path / "ck.safetensors")
    cmd = [_mpiexec(), "-n", "2", sys.executable, script, "--ddp", "--threads", "1",
           "--no-progress", "--epochs", "2", "--checkpoint", ck]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("test accuracy") == 1          # only rank 0 prints
    assert os.path.exists(ck)
    p = subprocess.run(cmd[:-4] + ["--epochs", "3", "--checkpoint", ck, "--resume"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "resumed from" in p.stdout and "epoch  3" in p.stdout
