"""Data parallelism over MPI: cengine.distributed against raw mpi4py, and a DDP training step.

    python bench/bench_dist.py [--quick]

Launches `mpiexec -n 2` workers (this file with --worker) and collects their medians:
- all_reduce of 1M and 25M float32 through cengine.distributed vs mpi4py's Allreduce on the
  same buffer (samples interleaved, in the same processes);
- the MLP step of bench_train (784-1024-1024-10, global batch 256, AdamW) as DDP on 2 ranks x
  1 thread against one process on 2 threads at the same global batch, and the share of the
  gradient all-reduce hidden behind backward: 1 - (DDP step - no_sync step) / all-reduce alone.
Skipped (with the reason) when mpi4py or mpiexec is missing.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def make_mlp(ce):
    nn = ce.nn
    ce.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


def worker(kind, quick):
    import numpy as np
    from _common import median_times_interleaved, median_time
    import cengine as ce
    import cengine.distributed as dist
    from mpi4py import MPI
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    comm = MPI.COMM_WORLD
    out = {}
    repeat = 5 if quick else 11
    if kind == "allreduce":
        ce.set_num_threads(1)
        for n in (1 << 20, 25 << 20):
            t = ce.full((n,), float(rank + 1))
            a = np.full(n, rank + 1.0, np.float32)
            dist.all_reduce(t)
            comm.Allreduce(MPI.IN_PLACE, a, MPI.SUM)
            assert float(t[0]) == 3.0 and a[0] == 3.0   # validate before timing

            def ce_ar():
                dist.all_reduce(t)

            def mpi_ar():
                comm.Allreduce(MPI.IN_PLACE, a, MPI.SUM)

            # both ranks must run the same sequence of collectives: same loop counts
            tc, tm = median_times_interleaved([ce_ar, mpi_ar], repeat=repeat, warmup=1,
                                              min_time=0.0)
            tc, tm = comm.allreduce(tc, MPI.MAX), comm.allreduce(tm, MPI.MAX)
            out["%dM" % (n >> 20)] = (tc, tm)
    else:
        ce.set_num_threads(1)
        model = make_mlp(ce)
        ddp = ce.nn.parallel.DistributedDataParallel(model)
        opt = ce.optim.AdamW(ddp.parameters(), lr=1e-3)
        g = ce.Generator().manual_seed(rank)
        x = ce.randn(256 // world, 784, generator=g)
        y = ce.randint(0, 10, (256 // world,), generator=g)
        loss_fn = ce.nn.CrossEntropyLoss()

        def step():
            loss = loss_fn(ddp(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def step_nosync():   # the same step without communication
            with ddp.no_sync():
                loss = loss_fn(ddp(x), y)
                opt.zero_grad()
                loss.backward()
            opt.step()
        step()
        w = [p.detach().numpy().copy() for p in model.parameters()]
        got = comm.allgather(sum(float(np.abs(a).sum()) for a in w))
        assert abs(got[0] - got[1]) <= 1e-6 * abs(got[0])   # ranks hold the same weights
        flat = np.zeros(sum(p.numel() for p in model.parameters()), np.float32)

        def allreduce_alone():
            comm.Allreduce(MPI.IN_PLACE, flat, MPI.SUM)
        comm.Barrier()
        ts, tn, ta = median_times_interleaved([step, step_nosync, allreduce_alone],
                                              repeat=repeat, warmup=1, min_time=0.0)
        out["ddp"] = [comm.allreduce(v, MPI.MAX) for v in (ts, tn, ta)]
    if rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def single_process_step(quick):
    from _common import median_time, threads
    import cengine as ce
    with threads(2):
        model = make_mlp(ce)
        opt = ce.optim.AdamW(model.parameters(), lr=1e-3)
        g = ce.Generator().manual_seed(0)
        x = ce.randn(256, 784, generator=g)
        y = ce.randint(0, 10, (256,), generator=g)
        loss_fn = ce.nn.CrossEntropyLoss()

        def step():
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return median_time(step, repeat=5 if quick else 11, warmup=2, min_time=0.0)


def run_ranks(kind, quick):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [_mpiexec(), "-n", "2", sys.executable, os.path.abspath(__file__), "--worker", kind]
    if quick:
        cmd.append("--quick")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError("mpiexec failed:\n" + p.stdout + p.stderr)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.quick)
    from _common import machine_line, md_table, write_result
    if importlib.util.find_spec("mpi4py") is None or _mpiexec() is None:
        print('skipped: needs mpi4py and mpiexec (pip install "cengine[dist]")')
        write_result("dist", "## Data parallel over MPI\n\nskipped: mpi4py/mpiexec missing")
        return
    ar = run_ranks("allreduce", args.quick)
    ddp = run_ranks("ddp", args.quick)["ddp"]
    one = single_process_step(args.quick)
    rows = [["all_reduce %s float32, 2 ranks" % k, v[0] * 1e3, v[1] * 1e3, v[0] / v[1]]
            for k, v in ar.items()]
    t_step, t_nosync, t_ar = ddp
    hidden = 1.0 - (t_step - t_nosync) / t_ar if t_ar > 0 else float("nan")
    md = ["## Data parallel over MPI (mpiexec -n 2, 1 thread per rank)", "", machine_line(), "",
          md_table(["collective", "cengine ms", "mpi4py ms", "ratio"], rows), "",
          md_table(["MLP step, global batch 256", "ms"],
                   [["DDP, 2 ranks x 1 thread", t_step * 1e3],
                    ["same step under no_sync (no communication)", t_nosync * 1e3],
                    ["all-reduce of all gradients alone", t_ar * 1e3],
                    ["1 process x 2 threads", one * 1e3],
                    ["DDP / 1 process", t_step / one],
                    ["share of the all-reduce hidden behind backward", hidden]])]
    text = "\n".join(md)
    print(text)
    write_result("dist", text)


if __name__ == "__main__":
    main()
