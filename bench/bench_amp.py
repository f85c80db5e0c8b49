"""Whole training steps under bfloat16 autocast: cengine.autocast("cpu") vs
torch.autocast("cpu", dtype=torch.bfloat16), and vs cengine's own float32 step; the three
workloads of bench_train.py (MLP, tiny MLP, transformer), same models, data and optimizers,
1 and 2 threads. cengine's initial weights are copied into torch and the first autocast losses
compared (bf16 tolerance) before anything is timed.

    python bench/bench_amp.py [--quick] [--threads 1 2] [--workloads mlp tiny_mlp transformer]
                              [--profile]

--profile: after the timings, cProfile of five cengine autocast steps per workload (1 thread),
the functions with the most own time (where the step's time goes: GEMMs, casts, Python).
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import argparse

import numpy as np

from _common import ce, torch, threads, median_times_interleaved, machine_line, md_table, \
    write_result, bar_plot, results_dir
from bench_train import WORKLOADS, each_workload, make_data, stepper, torch_twin
from cengine import _C


def run(names, thread_counts, quick):
    rows = []
    for name, nt, spec, x, y in each_workload(names, thread_counts):
        cm = spec["build"](ce)
        ce.manual_seed(0)
        cm32 = spec["build"](ce)
        cm32.load_state_dict(cm.state_dict())
        fns = [stepper(ce, cm, spec, x, y, True), stepper(ce, cm32, spec, x, y, False)]
        if torch is not None:
            fns.append(torch_twin(name, cm, fns[0], spec, x, y, amp=True, tol=3e-2))
            fns[1]()
        rep, warm = (3, 1) if quick else (11, 2)
        ts = median_times_interleaved(fns, repeat=rep, warmup=warm)
        tc, t32 = ts[0], ts[1]
        tt = ts[2] if torch is not None else None
        rows.append([name, nt, tc * 1e3, t32 * 1e3, tt * 1e3 if tt else None,
                     tc / tt if tt else None, tc / t32])
        print("%-12s threads=%d  cengine amp %.2f ms  cengine fp32 %.2f ms  torch amp %s"
              % (name, nt, tc * 1e3, t32 * 1e3, "%.2f ms" % (tt * 1e3) if tt else "-"),
              flush=True)
    md = ("## Training steps under bfloat16 autocast (median ms per step, samples taken in turn; "
          "ratios: lower is better for cengine)\n\n")
    md += machine_line() + ", bf16 GEMM path %d\n\n" % _C.gemm_bf16_path()
    md += md_table(["workload", "threads", "cengine amp ms", "cengine fp32 ms", "torch amp ms",
                    "cengine amp / torch amp", "cengine amp / cengine fp32"], rows)
    labels = ["%s/%dt" % (r[0], r[1]) for r in rows]
    series = {"amp / cengine fp32": [r[6] for r in rows]}
    if torch is not None:
        series["amp / torch amp"] = [r[5] for r in rows]
    bar_plot(results_dir() + "/amp_steps.png", "bf16 autocast training step time ratios",
             labels, series, "step time ratio")
    return md


def profile(names, steps=5, top=15):
    import cProfile
    import io
    import pstats
    rng = np.random.default_rng(0)
    for name in names:
        spec = WORKLOADS[name]
        x, y = make_data(spec, rng)
        with threads(1):
            ce.manual_seed(0)
            step = stepper(ce, spec["build"](ce), spec, x, y, True)
            step()
            step()
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(steps):
                step()
            pr.disable()
        out = io.StringIO()
        pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(top)
        print("## %s: cProfile of %d autocast steps, 1 thread\n" % (name, steps))
        print(out.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    md = run(args.workloads, args.threads, args.quick)
    print(md)
    print("written", write_result("amp_steps", md))
    if args.profile:
        profile(args.workloads)


if __name__ == "__main__":
    main()
