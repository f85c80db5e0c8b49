"""Shared benchmark helpers: thread control for every library, medians, machine facts,
markdown tables and result files. Benchmarks validate results before timing and report ratios
against references measured in the same run."""
import contextlib
import datetime
import os

import _env  # noqa: F401,E402
import _quality  # noqa: E402
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

import cengine as ce  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional: its columns are left out
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None


@contextlib.contextmanager
def threads(n):
    """Run cengine, numpy's BLAS and torch on n threads inside the block."""
    old_ce = ce.get_num_threads()
    old_torch = torch.get_num_threads() if torch is not None else None
    ce.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    ctx = threadpool_limits(limits=n) if threadpool_limits is not None else contextlib.nullcontext()
    with ctx:
        try:
            yield
        finally:
            ce.set_num_threads(old_ce)
            if torch is not None:
                torch.set_num_threads(old_torch)


def median_time(fn, repeat=7, warmup=2, min_time=0.05):
    """Median seconds per call of fn over `repeat` samples; each sample loops until min_time."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    loops = max(1, int(min_time / one))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - t0) / loops)
    _quality.record(samples)
    return statistics.median(samples)


def median_times_interleaved(fns, repeat=9, warmup=2, min_time=0.05):
    """Median seconds per call of each fn, with the samples of the fns taken in turn (fn0,
    fn1, fn0, fn1, ...) so that a slow spell of a shared machine hits every fn alike instead
    of one whole block of samples. Each sample loops a fn for about min_time."""
    loops = []
    for fn in fns:
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-7)
        loops.append(max(1, int(min_time / one)))
    samples = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(loops[i]):
                fn()
            samples[i].append((time.perf_counter() - t0) / loops[i])
    for s in samples:
        _quality.record(s)
    return [statistics.median(s) for s in samples]


def cpu_model():
    """The CPU's model name (what the tune file keys on too)."""
    from cengine._tunefile import _model_name
    return _model_name()


def machine_line():
    """One line with the facts a reader needs to compare runs."""
    return ("%s | %d CPUs | cengine %s ISA=%s | numpy %s | torch %s | %s" % (
        cpu_model(), os.cpu_count(), ce.__version__, ce.get_isa(), __import__("numpy").__version__,
        torch.__version__ if torch is not None else "not installed",
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))


def md_table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(v) for v in r) + " |")
    return "\n".join(out)


def _fmt(v):
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 1000 else "%.0f" % v
    return "-" if v is None else str(v)


def results_dir():
    """bench/out/ (untracked), or CENGINE_BENCH_OUT (run.py --publish: bench/results/)."""
    return _quality.out_dir()


def write_result(name, markdown):
    """Write <results_dir>/<name>.md and return its path."""
    path = os.path.join(results_dir(), name + ".md")
    with open(path, "w") as f:
        f.write(markdown + "\n")
    return path


def write_lines(path, lines):
    """Write the markdown lines to path (making its folder) and say so."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", path)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def bar_plot(path, title, labels, series, ylabel):
    """Grouped bar chart (series: {name: [values per label]}) as PNG; skipped without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    import numpy as np
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4))
    w = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(x + i * w, [v if v is not None else 0 for v in vals], w, label=name)
    ax.set_xticks(x + w * (len(series) - 1) / 2)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ whole-step benchmarks
# (bench_train, bench_amp, bench_conv: the same model built with either library, cengine's
# initial weights copied into torch, steps timed in turn)
def copy_weights(src, dst):
    """cengine module's state_dict -> torch module (same parameter names by construction)."""
    import numpy as np
    sd = {k: torch.tensor(np.array(v.detach().numpy())) for k, v in src.state_dict().items()}
    dst.load_state_dict(sd)


def time_steps(cstep, tstep, repeat, warmup):
    """(cengine s, torch s) per step, medians; the samples taken in turn. tstep None (no
    torch): (cengine s, None)."""
    if tstep is None:
        return median_time(cstep, repeat=repeat, warmup=warmup), None
    tc, tt = median_times_interleaved([cstep, tstep], repeat=repeat, warmup=warmup)
    return tc, tt


def step_row(rows, name, nt, tc, tt, width=12):
    """Append [name, threads, cengine ms, torch ms, cengine / torch] to rows and print it."""
    ratio = tc / tt if tt else None
    rows.append([name, nt, tc * 1e3, tt * 1e3 if tt else None, ratio])
    print("%-*s threads=%d  cengine %.2f ms  torch %s  ratio %s" % (
        width, name, nt, tc * 1e3, "%.2f ms" % (tt * 1e3) if tt else "-",
        "%.2f" % ratio if ratio else "-"), flush=True)
    return ratio


def step_report(title, rows, png, what):
    """Markdown of step_row rows under '## title', and a bar plot results_dir()/png: the
    cengine / torch ratios (they keep sub-millisecond cases visible next to large ones), or
    cengine's ms without torch. what: the plot title's subject ('training step time')."""
    md = ("## %s (median ms per step, cengine and torch samples taken in turn; ratio = cengine /"
          " torch, lower is better)\n\n" % title)
    md += machine_line() + "\n\n"
    md += md_table(["workload", "threads", "cengine ms", "torch ms", "ratio"], rows)
    labels = ["%s/%dt" % (r[0], r[1]) for r in rows]
    path = os.path.join(results_dir(), png)
    if torch is not None:
        bar_plot(path, "%s, cengine / torch (same run; below 1: cengine faster)" % what,
                 labels, {"cengine / torch": [r[4] for r in rows]}, "step time ratio")
    else:
        bar_plot(path, "%s (ms, lower is better)" % what, labels,
                 {"cengine": [r[2] for r in rows]}, "ms per step")
    return md
