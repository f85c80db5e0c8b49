"""Shared benchmark helpers: thread control for every library, medians, machine facts,
markdown tables and result files. Benchmarks validate results before timing and report ratios
against references measured in the same run."""
import contextlib
import datetime
import os

import _env  # noqa: F401,E402
import _quality  # noqa: E402
import platform
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


def machine_line():
    """One line with the facts a reader needs to compare runs."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return ("%s | %d CPUs | cengine %s ISA=%s | numpy %s | torch %s | %s" % (
        cpu, os.cpu_count(), ce.__version__, ce.get_isa(), __import__("numpy").__version__,
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
