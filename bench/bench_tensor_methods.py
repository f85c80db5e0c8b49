"""Cost of Tensor's method layer (cengine/_tensor_methods.py: each method is a one-line call of its
op) on the per-op framework overhead of small tensors and on a tiny-MLP training step.

Part 1, in this process: x.method(...) against the op function called directly (what the method
was before the methods were declared on the class), samples taken in turn.
Part 2, with --against DIR (another built checkout, e.g. the revision before a change): the same
workloads and the tiny-MLP step run in a process of each checkout, the processes alternating
round by round; medians over the rounds and the ratio this tree / DIR.

    python bench/bench_tensor_methods.py [--quick] [--against DIR] [--threads N]
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def workloads(ce):
    """name -> (method form, function form); both must give the same result."""
    from cengine.ops import elementwise as ew, shape as sh, reduce as red, index as ix
    from cengine.ops import activation as act
    F = ce.nn.functional
    g = ce.Generator().manual_seed(0)
    a, b = ce.randn(8, 8, generator=g), ce.randn(8, 8, generator=g)
    return {
        "a + b": (lambda: a + b, lambda: ew.add(a, b)),
        "a * 2.0": (lambda: a * 2.0, lambda: ew.mul(a, 2.0)),
        "a.exp()": (lambda: a.exp(), lambda: ew.exp(a)),
        "a.view(64)": (lambda: a.view(64), lambda: sh.view(a, 64)),
        "a.t()": (lambda: a.t(), lambda: sh.t(a)),
        "a.T": (lambda: a.T, lambda: sh.permute(a, 1, 0)),
        "a.sum()": (lambda: a.sum(), lambda: red.sum(a)),
        "a.relu()": (lambda: a.relu(), lambda: act.relu(a)),
        "a[0]": (lambda: a[0], lambda: ix.getitem(a, 0)),
        "a.softmax(-1)": (lambda: a.softmax(-1), lambda: F.softmax(a, -1)),
    }


def tiny_mlp_step(ce):
    sys.path.insert(0, HERE)
    from bench_train import mlp
    ce.manual_seed(0)
    model = mlp(ce, [64, 128, 10])
    opt = ce.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = ce.tensor(rng.standard_normal((32, 64)).astype(np.float32))
    y = ce.tensor(rng.integers(0, 10, 32))
    loss_fn = ce.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def worker(quick, nthreads):
    """Median seconds of each method-form workload and the MLP step, as JSON on stdout."""
    sys.path.insert(0, os.environ["CENGINE_BENCH_ROOT"])   # the checkout to measure
    import cengine as ce
    from _common import median_time
    ce.set_num_threads(nthreads)
    res = {"cengine": os.path.dirname(os.path.abspath(ce.__file__))}
    rep = 3 if quick else 5
    for name, (meth, _) in workloads(ce).items():
        res[name] = median_time(meth, repeat=rep, min_time=0.02)
    step = tiny_mlp_step(ce)
    l0 = float(step())
    assert np.isfinite(l0)
    res["tiny MLP step"] = median_time(step, repeat=rep, min_time=0.05)
    print(json.dumps(res))


def _run_worker(root, quick, nthreads):
    env = dict(os.environ, CENGINE_BENCH_ROOT=root)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(nthreads)]
    if quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--against", help="another built checkout to compare with, alternately")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.quick, args.threads)

    from _common import ce, median_times_interleaved, machine_line, md_table, write_result
    ce.set_num_threads(args.threads)
    md = ["# Tensor method layer", "", machine_line(), "",
          "threads=%d; the machine may be shared: ratios within one run only." % args.threads, "",
          "## x.method(...) against the op function, same process (median us per call, samples "
          "in turn; ratio = method / function)", ""]
    rows = []
    rep = 5 if args.quick else 11
    for name, (meth, fn) in workloads(ce).items():
        rm, rf = meth(), fn()
        np.testing.assert_array_equal(rm.numpy(), rf.numpy())
        tm, tf = median_times_interleaved([meth, fn], repeat=rep, min_time=0.02)
        rows.append([name, tm * 1e6, tf * 1e6, tm / tf])
    md.append(md_table(["op (8x8 float32)", "method us", "function us", "ratio"], rows))
    if args.against:
        rounds = args.rounds or (3 if args.quick else 7)
        here, there = [], []
        for r in range(rounds):   # alternate which checkout goes first
            pair = [(ROOT, here), (os.path.abspath(args.against), there)]
            for root, acc in (pair if r % 2 == 0 else pair[::-1]):
                acc.append(_run_worker(root, args.quick, args.threads))
        assert here[0]["cengine"] != there[0]["cengine"], "both workers imported the same cengine"
        names = [k for k in here[0] if k != "cengine"]
        rows = []
        for k in names:
            h = statistics.median(s[k] for s in here)
            t = statistics.median(s[k] for s in there)
            rows.append([k, h * 1e6, t * 1e6, h / t])
        md += ["", "## This tree against %s (median us over %d alternating rounds of one process "
               "each; ratio = this tree / other)" % (args.against, rounds), "",
               "this tree: %s  \nother: %s" % (here[0]["cengine"], there[0]["cengine"]), "",
               md_table(["workload", "this tree us", "other us", "ratio"], rows)]
    text = "\n".join(md)
    print(text)
    write_result("tensor_methods", text)


if __name__ == "__main__":
    main()
