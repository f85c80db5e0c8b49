"""Benchmark of the nn hot-path kernels: cengine (C bindings) vs numpy vs torch (when installed).

Cases (float32): softmax and log_softmax forward+backward on [4096,1024] and [512*64,64],
cross-entropy (mean) forward+backward on [8192,1000], LayerNorm (affine) forward+backward on
[4096,1024] and [8192,1024], embedding forward+backward (V=32000, D=512, 8192 indices).
The report records the CPU model and cache sizes, measures the machine's copy bandwidth (numpy
copies of 16 MiB arrays on 1 and 2 threads) and gives each memory-bound case's achieved bandwidth
(minimum bytes moved / preallocated cengine time) as a fraction of it.
Every implementation is validated against numpy before timing. Timings: the implementations are
interleaved inside each repetition (so background load hits them alike); the median is reported.
Writes bench_nn.md (and bench_nn.png when matplotlib is installed) to bench/out/ (run.py
--publish: bench/results/).

    python bench/bench_nn.py [--threads 1 2] [--repeat 15] [--quick]
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import _quality
import argparse
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
from cengine import _C  # noqa: E402
from _common import cpu_model, pyplot, write_lines  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is optional
    torch = None


# ------------------------------------------------------------------------------------- cases
def case_softmax(R, C, log):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((R, C), dtype=np.float32) * 3
    dy = rng.standard_normal((R, C), dtype=np.float32)

    def ce():
        y = _C.softmax_forward(x, log=log)
        return y, _C.softmax_backward(y, dy, log=log)

    def npy():
        m = x.max(-1, keepdims=True)
        if log:
            z = x - m
            y = z - np.log(np.exp(z).sum(-1, keepdims=True))
            return y, dy - np.exp(y) * dy.sum(-1, keepdims=True)
        e = np.exp(x - m)
        y = e / e.sum(-1, keepdims=True)
        return y, y * (dy - (dy * y).sum(-1, keepdims=True))

    impls = {"cengine": ce, "numpy": npy}
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_()
        dyt = torch.from_numpy(dy)
        fn = torch.log_softmax if log else torch.softmax

        def tor():
            xt.grad = None
            y = fn(xt, -1)
            y.backward(dyt)
            return y.detach().numpy(), xt.grad.numpy()
        impls["torch"] = tor
    y0, dx0 = np.empty_like(x), np.empty_like(x)

    def ce_pre():
        _C.softmax_forward(x, out=y0, log=log)
        return y0, _C.softmax_backward(y0, dy, out=dx0, log=log)

    pre = {"cengine": ce_pre}
    if torch is not None:
        yt, dxt = torch.empty_like(xt), torch.empty_like(xt)
        aten = torch.ops.aten

        def tor_pre():
            if log:
                aten._log_softmax.out(xt.detach(), -1, False, out=yt)
                aten._log_softmax_backward_data.out(dyt, yt, -1, torch.float32, out=dxt)
            else:
                aten._softmax.out(xt.detach(), -1, False, out=yt)
                aten._softmax_backward_data.out(dyt, yt, -1, torch.float32, grad_input=dxt)
            return yt.numpy(), dxt.numpy()
        pre["torch"] = tor_pre
    name = "%s fwd+bwd [%d,%d]" % ("log_softmax" if log else "softmax", R, C)
    # fwd reads x, writes y; bwd reads y, dy, writes dx
    return name, impls, pre, 2e-5, (5 * 4, R * C)


def case_cross_entropy(N, C):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C), dtype=np.float32) * 3
    t = rng.integers(0, C, N).astype(np.int64)

    def ce():
        loss, lse, wrow = _C.cross_entropy_forward(x, t)
        den = wrow.sum()
        g = np.full(N, 1 / den, np.float32)
        return np.array(loss.sum() / den), _C.cross_entropy_backward(x, t, lse, g)

    def npy():
        m = x.max(-1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(-1, keepdims=True))
        loss = (lse[:, 0] - x[np.arange(N), t]).mean()
        p = np.exp(x - lse)
        p[np.arange(N), t] -= 1
        p /= N
        return np.array(loss), p

    impls = {"cengine": ce, "numpy": npy}
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_()
        tt = torch.from_numpy(t)

        def tor():
            xt.grad = None
            loss = F.cross_entropy(xt, tt)
            loss.backward()
            return loss.detach().numpy(), xt.grad.numpy()
        impls["torch"] = tor
    d0 = np.empty_like(x)

    def ce_pre():
        loss, lse, wrow = _C.cross_entropy_forward(x, t)
        den = wrow.sum()
        g = np.full(N, 1 / den, np.float32)
        return np.array(loss.sum() / den), _C.cross_entropy_backward(x, t, lse, g, out=d0)

    # fwd reads x; bwd reads x, writes dx
    return "cross_entropy fwd+bwd [%d,%d]" % (N, C), impls, {"cengine": ce_pre}, 1e-5, (3 * 4, N * C)


def case_layer_norm(R, D):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((R, D), dtype=np.float32)
    w = rng.standard_normal(D, dtype=np.float32)
    b = rng.standard_normal(D, dtype=np.float32)
    dy = rng.standard_normal((R, D), dtype=np.float32)
    eps = 1e-5

    def ce():
        y, m, rs = _C.layer_norm_forward(x, w, b, eps)
        dx, dw, db = _C.layer_norm_backward(dy, x, m, rs, w, need_dweight=True, need_dbias=True)
        return y, dx, dw, db

    def npy():
        m = x.mean(-1, keepdims=True)
        xc = x - m
        rs = 1 / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
        xh = xc * rs
        y = xh * w + b
        g = dy * w
        dx = rs * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
        return y, dx, (dy * xh).sum(0), dy.sum(0)

    impls = {"cengine": ce, "numpy": npy}
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        bt = torch.from_numpy(b).requires_grad_()
        dyt = torch.from_numpy(dy)

        def tor():
            xt.grad = wt.grad = bt.grad = None
            y = F.layer_norm(xt, (D,), wt, bt, eps)
            y.backward(dyt)
            return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()
        impls["torch"] = tor
    y0, dx0 = np.empty_like(x), np.empty_like(x)

    def ce_pre():
        y, m, rs = _C.layer_norm_forward(x, w, b, eps, out=y0)
        dx, dw, db = _C.layer_norm_backward(dy, x, m, rs, w, need_dweight=True, need_dbias=True, out=dx0)
        return y, dx, dw, db

    pre = {"cengine": ce_pre}
    if torch is not None:
        aten = torch.ops.aten
        yt, dxt = torch.empty_like(xt), torch.empty_like(xt)
        mt, rt = torch.empty(R, 1), torch.empty(R, 1)
        dwt, dbt = torch.empty(D), torch.empty(D)

        def tor_pre():
            aten.native_layer_norm.out(xt.detach(), [D], wt.detach(), bt.detach(), eps, out0=yt, out1=mt, out2=rt)
            aten.native_layer_norm_backward.out(dyt, xt.detach(), [D], mt, rt, wt.detach(), bt.detach(),
                                                [True, True, True], out0=dxt, out1=dwt, out2=dbt)
            return yt.numpy(), dxt.numpy(), dwt.numpy(), dbt.numpy()
        pre["torch"] = tor_pre
    # fwd reads x, writes y; bwd reads dy, x, writes dx (w, b, mean, rstd, dw, db: negligible)
    return "layer_norm fwd+bwd [%d,%d]" % (R, D), impls, pre, 2e-3, (5 * 4, R * D)


def case_embedding(V, D, n):
    rng = np.random.default_rng(3)
    W = rng.standard_normal((V, D), dtype=np.float32)
    idx = rng.integers(0, V, n).astype(np.int64)
    idx[: n // 4] = 7          # a hot token: many repeated indices
    dy = rng.standard_normal((n, D), dtype=np.float32)

    def ce():
        return _C.embedding_forward(W, idx), _C.embedding_backward(dy, idx, V)

    def npy():
        dW = np.zeros((V, D), np.float32)
        np.add.at(dW, idx, dy)
        return W[idx], dW

    impls = {"cengine": ce, "numpy": npy}
    if torch is not None:
        Wt = torch.from_numpy(W).requires_grad_()
        it = torch.from_numpy(idx)
        dyt = torch.from_numpy(dy)

        def tor():
            Wt.grad = None
            y = F.embedding(it, Wt)
            y.backward(dyt)
            return y.detach().numpy(), Wt.grad.numpy()
        impls["torch"] = tor
    o0, g0 = np.empty((n, D), np.float32), np.empty((V, D), np.float32)

    def ce_pre():
        g0.fill(0)
        return _C.embedding_forward(W, idx, out=o0), _C.embedding_backward(dy, idx, V, out=g0)

    return "embedding fwd+bwd V=%d D=%d n=%d" % (V, D, n), impls, {"cengine": ce_pre}, 1e-3, None


# ------------------------------------------------------------------------------ machine facts
def cache_sizes():
    """'L1d 48K, L2 2048K, L3 ...' from sysfs (cpu0), or '' where it is not readable."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    out = []
    try:
        for d in sorted(os.listdir(base)):
            if not d.startswith("index"):
                continue
            rd = lambda k: open(os.path.join(base, d, k)).read().strip()
            kind = rd("type")
            if kind == "Instruction":
                continue
            out.append("L%s%s %s" % (rd("level"), "d" if kind == "Data" else "", rd("size")))
    except OSError:
        pass
    return ", ".join(out)


def copy_bandwidth(nbytes, nt, repeat):
    """Median GB/s of a numpy copy of `nbytes` (bytes read + bytes written per second), split over
    nt Python threads (numpy releases the GIL while it copies): the machine's practical copy
    bandwidth for arrays the size of the kernels' operands, on that many cores."""
    from concurrent.futures import ThreadPoolExecutor
    n = nbytes // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    cuts = [n * i // nt // 16 * 16 for i in range(nt)] + [n]
    parts = [(dst[a:b], src[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    with ThreadPoolExecutor(nt) as pool:
        def run():
            if nt == 1:
                np.copyto(dst, src)
            else:
                list(pool.map(lambda p: np.copyto(*p), parts))
        for _ in range(3):
            run()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    return 2 * nbytes / float(np.median(times)) / 1e9


# ------------------------------------------------------------------------------------- driver
def validate(name, impls, tol, ref=None):
    ref = impls["numpy"]() if ref is None else ref
    for k, f in impls.items():
        out = f()
        for a, r in zip(out, ref):
            a = np.asarray(a, np.float64)
            r = np.asarray(r, np.float64)
            scale = max(1.0, float(np.abs(r).max()))
            err = float(np.abs(a - r).max()) / scale
            if not err <= tol:
                raise SystemExit("%s: %s disagrees with numpy (max scaled error %.3g)" % (name, k, err))


def time_interleaved(impls, repeat):
    for f in impls.values():     # warm up (page faults, torch init)
        f()
    times = {k: [] for k in impls}
    for _ in range(repeat):
        for k, f in impls.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    for v in times.values():
        _quality.record(v)
    return {k: float(np.median(v)) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    ap.add_argument("--out", default=os.path.join(_quality.out_dir(), "bench_nn.md"))
    args = ap.parse_args()
    s = 16 if args.quick else 1
    cases = [
        lambda: case_softmax(4096 // s, 1024, False),
        lambda: case_softmax(512 * 64 // s, 64, False),
        lambda: case_softmax(4096 // s, 1024, True),
        lambda: case_softmax(512 * 64 // s, 64, True),
        lambda: case_cross_entropy(8192 // s, 1000),
        lambda: case_layer_norm(4096 // s, 1024),
        lambda: case_layer_norm(8192 // s, 1024),
        lambda: case_embedding(32000 // s, 512, 8192 // s),
    ]
    head = ("machine: %s (%s), %d CPUs, caches %s; cengine ISA %s (max %s), OpenMP %s; numpy %s; torch %s"
            % (cpu_model(), platform.machine(), os.cpu_count(), cache_sizes() or "?", _C.get_isa(),
               _C.max_isa(), _C.openmp_enabled(), np.__version__,
               torch.__version__ if torch is not None else "not installed"))
    print(head)
    load0 = os.getloadavg()
    rows = []
    bw = {}
    for nt in args.threads:
        _C.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        # the copy bandwidth for operands of the cases' size (16 MiB; 1 MiB with --quick)
        bw[nt] = copy_bandwidth((16 << 20) // s, nt, args.repeat)
        print("threads=%d numpy copy bandwidth (16 MiB arrays): %.1f GB/s" % (nt, bw[nt]), flush=True)
        for mk in cases:
            name, impls, pre, tol, traffic = mk()
            validate(name, impls, tol)
            validate(name, pre, tol, impls["numpy"]())
            t = time_interleaved(impls, args.repeat)
            tp = time_interleaved(pre, args.repeat)
            gbs = traffic[0] * traffic[1] / tp["cengine"] / 1e9 if traffic else None
            row = (nt, name, t["cengine"], t["numpy"], t.get("torch"), tp["cengine"], tp.get("torch"), gbs,
                   gbs / bw[nt] if gbs else None)
            rows.append(row)
            print("threads=%d %-40s cengine %8.3f ms  numpy %8.3f ms (x%.1f)  torch %s | preallocated: cengine %8.3f ms torch %s%s"
                  % (nt, name, row[2] * 1e3, row[3] * 1e3, row[3] / row[2],
                     "%8.3f ms (x%.2f)" % (row[4] * 1e3, row[4] / row[2]) if row[4] else "-",
                     row[5] * 1e3, "%8.3f ms (x%.2f)" % (row[6] * 1e3, row[6] / row[5]) if row[6] else "-",
                     " | %.1f GB/s = %.0f%% of copy" % (gbs, 100 * row[8]) if gbs else ""),
                  flush=True)
    load1 = os.getloadavg()
    load = ("load average (1/5/15 min) at start %.2f/%.2f/%.2f, at end %.2f/%.2f/%.2f on %d CPUs "
            "(other processes share them: 2-thread timings are unreliable when load > 1)"
            % (load0 + load1 + (os.cpu_count(),)))
    print(load)
    lines = ["# bench_nn: nn kernels, float32, median of %d interleaved runs" % args.repeat, "",
             head, "", load, "", "speedup = reference time / cengine time (> 1: cengine faster)", "",
             "Fresh outputs: every call allocates its outputs (as the Python API and torch autograd do).",
             "Preallocated: outputs passed in (cengine `out=`; torch `aten.*.out` ops where they exist),",
             "which isolates kernel speed from page faults of freshly mapped large arrays.", "",
             "Bandwidth: the bytes a fused kernel must move at least (each operand read or written once;",
             "softmax and LayerNorm fwd+bwd 20 bytes per element, cross-entropy 12) per preallocated",
             "cengine second, against a numpy copy of 16 MiB arrays (bytes read + written) on as many",
             "threads: " + ", ".join("%d thread%s %.1f GB/s" % (k, "s" if k > 1 else "", v)
                                     for k, v in sorted(bw.items())) + ".", "",
             "| threads | case | cengine ms | numpy ms | speedup vs numpy | torch ms | speedup vs torch "
             "| cengine prealloc ms | torch prealloc ms | speedup vs torch (prealloc) "
             "| cengine GB/s (prealloc) | % of copy bandwidth |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for nt, name, tc, tn, tt, tcp, ttp, gbs, frac in rows:
        lines.append("| %d | %s | %.3f | %.3f | %.2f | %s | %s | %.3f | %s | %s | %s | %s |"
                     % (nt, name, tc * 1e3, tn * 1e3, tn / tc,
                        "%.3f" % (tt * 1e3) if tt else "-", "%.2f" % (tt / tc) if tt else "-",
                        tcp * 1e3, "%.3f" % (ttp * 1e3) if ttp else "-",
                        "%.2f" % (ttp / tcp) if ttp else "-",
                        "%.1f" % gbs if gbs else "-", "%.0f%%" % (100 * frac) if frac else "-"))
    write_lines(args.out, lines)
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(10, 5))
    labels = ["%s\n(%dt)" % (r[1].split(" [")[0].split(" V=")[0], r[0]) for r in rows]
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r[3] / r[2] for r in rows], 0.4, label="vs numpy")
    if torch is not None:
        ax.bar(xs + 0.2, [r[4] / r[2] for r in rows], 0.4, label="vs torch")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=6, rotation=60)
    ax.set_ylabel("speedup of cengine")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.splitext(args.out)[0] + ".png", dpi=120)


if __name__ == "__main__":
    main()
