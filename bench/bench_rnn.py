"""Recurrent layer benchmark: cengine's nn.LSTM / nn.GRU vs torch's, forward + backward.

Cases (float32): 2-layer bidirectional LSTM and GRU, T=100 steps, batch N=32, input 40,
hidden 256 (the phoneme recogniser's shape), on 1 and 2 threads. Both libraries get the same
weights (torch's state_dict loaded into cengine) and input; outputs and input gradients are
checked against each other before timing. One sample = forward, sum of the output, backward
(parameter gradients cleared first). Samples of cengine and torch are interleaved and the
median is reported; ratio = torch time / cengine time (above 1: cengine is faster). Writes
bench/results/rnn.md (and rnn.png when matplotlib is installed).

    python bench/bench_rnn.py [--threads 1 2] [--repeat 9] [--quick]

On a machine shared with other busy processes, OpenMP's spinning wait (the default) lets a
thread that lost its core stall the other at every barrier; OMP_WAIT_POLICY=passive (read by
both libraries' OpenMP at start-up) gives steadier 2-thread numbers there.
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (bar_plot, machine_line, md_table, median_times_interleaved,  # noqa: E402
                     results_dir, threads, torch, write_result)

import cengine as ce  # noqa: E402
from cengine import nn  # noqa: E402


def make_case(kind, T, N, I, H, layers=2):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, N, I), dtype=np.float32)
    cm = getattr(nn, kind)(I, H, layers, bidirectional=True)
    xc = ce.tensor(x, requires_grad=True)

    def run_ce():
        cm.zero_grad()
        xc.grad = None
        out, _ = cm(xc)
        out.sum().backward()
        return out

    impls = {"cengine": run_ce}
    if torch is not None:
        tm = getattr(torch.nn, kind)(I, H, layers, bidirectional=True)
        cm.load_state_dict({k: ce.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
        xt = torch.from_numpy(x).requires_grad_()

        def run_torch():
            tm.zero_grad()
            xt.grad = None
            out, _ = tm(xt)
            out.sum().backward()
            return out

        impls["torch"] = run_torch
        # validate: same outputs and input gradients
        oc = run_ce().detach().numpy()
        ot = run_torch().detach().numpy()
        np.testing.assert_allclose(oc, ot, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-3, atol=1e-4)
        gc = dict(cm.named_parameters())
        for n, p in tm.named_parameters():
            np.testing.assert_allclose(gc[n].grad.numpy(), p.grad.numpy(), rtol=1e-3, atol=1e-3)
    else:
        run_ce()
    return impls


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="T=50, 5 samples")
    args = ap.parse_args(argv)
    T, N, I, H = 100, 32, 40, 256
    repeat = args.repeat
    if args.quick:
        T, repeat = 50, 5
    print(machine_line())
    print("OMP_WAIT_POLICY:", os.environ.get("OMP_WAIT_POLICY", "unset"))
    rows, labels, series = [], [], {"cengine": [], "torch": []}
    for kind in ("LSTM", "GRU"):
        for nt in args.threads:
            with threads(nt):
                impls = make_case(kind, T, N, I, H)
                names = list(impls)
                times = median_times_interleaved([impls[k] for k in names], repeat=repeat,
                                                 warmup=1, min_time=0.0)
            t = dict(zip(names, times))
            tc, tt = t["cengine"], t.get("torch")
            ratio = tt / tc if tt is not None else None
            case = "%s 2-layer bidir T=%d N=%d in=%d H=%d" % (kind, T, N, I, H)
            rows.append([case, nt, ce.get_isa(), tc * 1e3, None if tt is None else tt * 1e3,
                         ratio])
            labels.append("%s %dt" % (kind, nt))
            series["cengine"].append(tc * 1e3)
            series["torch"].append(None if tt is None else tt * 1e3)
            print("%-45s threads=%d  cengine %.1f ms  torch %s  ratio %s" % (
                case, nt, tc * 1e3, "-" if tt is None else "%.1f ms" % (tt * 1e3),
                "-" if ratio is None else "%.2f" % ratio), flush=True)
    policy = os.environ.get("OMP_WAIT_POLICY", "unset (spinning)")
    md = ["## Recurrent layers (forward + backward, float32)", "", machine_line(), "",
          "ratio = torch time / cengine time (above 1: cengine faster); medians of interleaved "
          "samples; OMP_WAIT_POLICY %s (it applies to both libraries)." % policy, "",
          md_table(["case", "threads", "ISA", "cengine ms", "torch ms", "ratio"], rows)]
    path = write_result("rnn", "\n".join(md))
    bar_plot(os.path.join(results_dir(), "rnn.png"), "LSTM / GRU forward+backward", labels,
             series if torch is not None else {"cengine": series["cengine"]}, "ms")
    print("wrote", path)


if __name__ == "__main__":
    main()
