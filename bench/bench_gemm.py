"""GEMM benchmark: GFLOP/s of cengine's C GEMM vs numpy (OpenBLAS) and torch (when installed).

Cases: square N in {64..2048}, MLP shapes (forward and both backward products, the backward ones
through transposed views), transposed operands vs contiguous, batched products; float32 and
float64; 1 and 2 threads (numpy's BLAS threads set with threadpoolctl, or OPENBLAS_NUM_THREADS
when it is missing). Every result is validated against numpy before timing; timings of the
libraries are interleaved in short samples (ce, numpy, torch, ce, numpy, torch, ...) so
background load hits all of them alike, and medians over the samples are reported.

    python bench/bench_gemm.py            # full run (a few minutes)
    python bench/bench_gemm.py --quick    # fewer shapes and repeats
    options: --threads 1,2  --dtypes float32,float64  --out bench/out (default; run.py --publish: bench/results)

The report starts with the machine: CPU model, cache sizes, the block sizes cengine's GEMM uses
(and where they came from), and the OpenBLAS kernel numpy runs (threadpoolctl). Besides
gemm.md, each run writes by-cpu/gemm-<family>.md (family: vendor, ISA and L1d/L2 sizes), so
published runs (python -m bench --publish) keep one result file per CPU family in
bench/results/by-cpu/. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (set by some environments for old
OpenBLAS builds; they slow a current numpy) are removed from this process before numpy loads.
"""
import os
for _v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_v, None)
import _env  # noqa: F401,E402  (before numpy: OpenBLAS thread spin, see _env.py)
import _quality
import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

from cengine import _C  # noqa: E402
from _common import cpu_model, pyplot, torch, write_lines  # noqa: E402  (torch: None when not installed)

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = threadpool_info = None


def _proc_cpuinfo(field):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _kib(n):
    return "%d KiB" % (n // 1024) if n < 1 << 20 else "%g MiB" % (n / float(1 << 20))


def cache_line():
    c = _C.cpu_caches()
    parts = []
    for lv, name in (("L1", "L1d"), ("L2", "L2"), ("L3", "L3")):
        if c[lv]:
            parts.append("%s %s %d-way%s" % (name, _kib(c[lv]["size"]), c[lv]["ways"],
                                              " (shared by %d CPUs)" % c[lv]["shared"]
                                              if c[lv]["shared"] > 1 else ""))
    return "%s [%s]" % (", ".join(parts) or "unknown", c["source"])


def blocking_line():
    out = []
    for dt in ("float32", "float64"):
        b = _C.gemm_blocking(dt)
        out.append("%s %dx%d tile KC=%d MC=%d NC=%d (%s)" % (dt, b["mr"], b["nr"], b["kc"],
                                                             b["mc"], b["nc"], b["source"]))
    return "; ".join(out)


def openblas_line():
    if threadpool_info is None:
        return "unknown (threadpoolctl not installed)"
    libs = [d for d in threadpool_info() if d.get("internal_api") == "openblas"]
    if not libs:
        return "numpy does not use OpenBLAS here"
    return ", ".join("OpenBLAS %s, kernel %s" % (d.get("version"), d.get("architecture"))
                     for d in libs)


def family_slug():
    """vendor-isa-l1dNk-l2-Nk: the file name part of this CPU family's result file"""
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(_proc_cpuinfo("vendor_id"),
                                                                   platform.machine().lower())
    c = _C.cpu_caches()
    l1 = c["L1"]["size"] // 1024 if c["L1"] else 0
    l2 = c["L2"]["size"] // 1024 if c["L2"] else 0
    return "%s-%s-l1d%dk-l2-%dk" % (vendor or "cpu", _C.max_isa(), l1, l2)


class np_threads:
    """limit numpy's BLAS to n threads for the block"""

    def __init__(self, n):
        self.n = n
        self.ctx = threadpool_limits(n) if threadpool_limits else None

    def __enter__(self):
        if self.ctx:
            self.ctx.__enter__()

    def __exit__(self, *a):
        if self.ctx:
            self.ctx.__exit__(*a)


def make_case(name, kind, bshape, M, N, K, dtype, ta=False, tb=False, rng=None):
    """operands: A (..,M,K), B (..,K,N), stored transposed (a .T / transpose view) if ta/tb"""
    rng = rng or np.random.default_rng(0)
    if ta:
        A = rng.standard_normal(bshape + (K, M)).astype(dtype).swapaxes(-1, -2)
    else:
        A = rng.standard_normal(bshape + (M, K)).astype(dtype)
    if tb:
        B = rng.standard_normal(bshape + (N, K)).astype(dtype).swapaxes(-1, -2)
    else:
        B = rng.standard_normal(bshape + (K, N)).astype(dtype)
    C = np.empty(bshape + (M, N), dtype)
    flops = 2.0 * int(np.prod(bshape, dtype=np.int64)) * M * N * K
    return dict(name=name, kind=kind, A=A, B=B, C=C, flops=flops)


def cases(quick, dtype):
    out = []
    sq = [64, 128, 256, 512, 1024] if quick else [64, 128, 256, 512, 1024, 2048]
    for n in sq:
        out.append(make_case("square %d" % n, "square", (), n, n, n, dtype))
    # MLP 784-1024-10 at batch 256: forward, dX = dY @ W^T, dW = X^T @ dY
    mlp = [("mlp fwd 256x784@784x1024", 256, 1024, 784, False, False),
           ("mlp dX 256x1024@(784x1024)^T", 256, 784, 1024, False, True),
           ("mlp dW (256x784)^T@256x1024", 784, 1024, 256, True, False),
           ("mlp fwd 256x1024@1024x10", 256, 10, 1024, False, False)]
    for name, M, N, K, ta, tb in (mlp[:2] if quick else mlp):
        out.append(make_case(name, "mlp", (), M, N, K, dtype, ta, tb))
    # per-image conv products (ResNet stage 1: Cout 64, 56x56, Cin*9 = 576): the forward, the
    # weight and the input gradient as src_c/conv.c calls them, and the four transpose
    # combinations at the forward's shape
    convs = [("conv fwd 64x3136x576 A@B", 64, 3136, 576, False, False),
             ("conv dW 64x576x3136 A@B^T", 64, 576, 3136, False, True),
             ("conv dX 576x3136x64 A^T@B", 576, 3136, 64, True, False),
             ("conv 64x3136x576 A^T@B", 64, 3136, 576, True, False),
             ("conv 64x3136x576 A@B^T", 64, 3136, 576, False, True),
             ("conv 64x3136x576 A^T@B^T", 64, 3136, 576, True, True)]
    for name, M, N, K, ta, tb in (convs[:3] if quick else convs):
        out.append(make_case(name, "conv", (), M, N, K, dtype, ta, tb))
    tn = 1024
    for name, ta, tb in [("N=%d A@B" % tn, False, False), ("N=%d A^T@B" % tn, True, False),
                         ("N=%d A@B^T" % tn, False, True), ("N=%d A^T@B^T" % tn, True, True)]:
        if quick and ta and tb:
            continue
        out.append(make_case(name, "transposed", (), tn, tn, tn, dtype, ta, tb))
    bat = [(1024, 32), (256, 64), (128, 64), (64, 128)]
    for b, m in bat:
        out.append(make_case("batch %dx%d^3" % (b, m), "batched", (b,), m, m, m, dtype))
    out.append(make_case("attn q@k^T 128x64x64x64", "batched", (128,), 64, 64, 64, dtype, False, True))
    return out


def timeit_interleaved(fns, budget, min_reps=7, max_reps=41, sample_time=1e-3):
    """median seconds per call of each fn. Samples are short (one call, or a loop of calls
    lasting ~sample_time for tiny products) and interleaved across fns, so load from other
    processes on the machine hits every library alike and shows up as outlier samples that
    the median drops; about `budget` seconds are spent per fn."""
    loops, est = [], []
    for f in fns:
        f()
        t = time.perf_counter()
        f()
        dt = max(time.perf_counter() - t, 1e-7)
        loops.append(max(1, int(sample_time / dt)))
        est.append(dt * loops[-1])
    reps = int(max(min_reps, min(max_reps, budget / max(est))))
    samples = [[] for _ in fns]
    for _ in range(reps):
        for i, f in enumerate(fns):
            n = loops[i]
            t = time.perf_counter()
            for _ in range(n):
                f()
            samples[i].append((time.perf_counter() - t) / n)
    for s in samples:
        _quality.record(s)
    return [float(np.median(s)) for s in samples]


def run(args):
    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    budget = 0.3 if args.quick else 1.0
    rows = []
    info = "cengine ISA %s, OpenMP %s, CPU %s (%d logical CPUs), numpy %s, torch %s" % (
        _C.get_isa(), _C.openmp_enabled(), cpu_model(), os.cpu_count(), np.__version__,
        torch.__version__ if torch else "not installed")
    info += ("\n\n- caches: %s\n- cengine GEMM blocking: %s\n- numpy BLAS: %s\n- CPU family "
             "file: by-cpu/gemm-%s.md" % (cache_line(), blocking_line(), openblas_line(), family_slug()))
    print(info)
    old_nt = _C.get_num_threads()
    for dtype in dtypes:
        cs = cases(args.quick, dtype)
        for nt in threads:
            _C.set_num_threads(nt)
            if torch:
                torch.set_num_threads(nt)
            with np_threads(nt):
                for c in cs:
                    A, B, C = c["A"], c["B"], c["C"]
                    ref = np.matmul(A.astype(np.float64), B.astype(np.float64))
                    _C.gemm(A, B, C)
                    tol = 1e-3 if dtype == np.float32 else 1e-10
                    err = np.abs(C - ref).max() / max(np.abs(ref).max(), 1e-30)
                    if not err < tol:
                        raise SystemExit("validation failed for %s %s: rel err %g"
                                         % (c["name"], np.dtype(dtype).name, err))
                    Cn = np.empty_like(C)
                    fns = [lambda: _C.gemm(A, B, C), lambda: np.matmul(A, B, out=Cn)]
                    if torch:
                        tA, tB, tC = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(np.empty_like(C))
                        fns.append(lambda: torch.matmul(tA, tB, out=tC))
                    ts = timeit_interleaved(fns, budget)
                    g = [c["flops"] / t / 1e9 for t in ts]
                    row = dict(case=c["name"], kind=c["kind"], dtype=np.dtype(dtype).name,
                               threads=nt, ce=g[0], np=g[1], torch=g[2] if torch else None)
                    rows.append(row)
                    print("%-8s %d thr  %-34s ce %7.1f  numpy %7.1f  ratio %5.2f%s" % (
                        row["dtype"], nt, row["case"], g[0], g[1], g[0] / g[1],
                        "  torch %7.1f" % g[2] if torch else ""), flush=True)
    _C.set_num_threads(old_nt)
    return info, rows


def write_markdown(info, rows, path):
    has_torch = any(r["torch"] is not None for r in rows)
    lines = ["# GEMM benchmark (%s)" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
             "", info, "", "GFLOP/s, medians of interleaved runs; ratio = cengine / numpy.", ""]
    head = "| dtype | threads | case | cengine | numpy | ratio |" + (" torch |" if has_torch else "")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append("| %s | %d | %s | %.1f | %.1f | %.2f |%s" % (
            r["dtype"], r["threads"], r["case"], r["ce"], r["np"], r["ce"] / r["np"],
            " %.1f |" % r["torch"] if has_torch else ""))
    write_lines(path, lines)


def write_plot(rows, path):
    plt = pyplot()
    if plt is None:
        print("matplotlib not installed: no plot")
        return
    groups = sorted({(r["dtype"], r["threads"]) for r in rows})
    fig, axes = plt.subplots(len(groups), 1, figsize=(12, 3.2 * len(groups)), squeeze=False)
    for ax, (dt, nt) in zip(axes[:, 0], groups):
        rs = [r for r in rows if r["dtype"] == dt and r["threads"] == nt]
        x = np.arange(len(rs))
        w = 0.27
        ax.bar(x - w, [r["ce"] for r in rs], w, label="cengine")
        ax.bar(x, [r["np"] for r in rs], w, label="numpy")
        if any(r["torch"] for r in rs):
            ax.bar(x + w, [r["torch"] or 0 for r in rs], w, label="torch")
        ax.set_xticks(x)
        ax.set_xticklabels([r["case"] for r in rs], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("GFLOP/s")
        ax.set_title("%s, %d thread(s)" % (dt, nt))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("wrote", path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--out", default=_quality.out_dir())
    args = p.parse_args()
    if threadpool_limits is None:
        print("threadpoolctl not installed: numpy's BLAS thread count is not controlled "
              "(set OPENBLAS_NUM_THREADS or pip install threadpoolctl)")
    info, rows = run(args)
    stamp = "gemm_quick" if args.quick else "gemm"
    write_markdown(info, rows, os.path.join(args.out, stamp + ".md"))
    # one file per CPU family, in a subfolder (run.py collects only the top-level tables),
    # with the timing quality of this run (run.py puts it atop its combined report instead)
    q = _quality._seen
    info += "\n- timing quality: %s; %s" % (_quality.summary(q["n"], q["noisy"], q["worst"]),
                                            _quality.load_line())
    write_markdown(info, rows, os.path.join(args.out, "by-cpu", "%s-%s.md" % (stamp, family_slug())))
    write_plot(rows, os.path.join(args.out, stamp + ".png"))


if __name__ == "__main__":
    main()
