"""Optimizer step benchmark: cengine's fused C update vs the same formula in vectorised numpy vs
PyTorch (for-loop, foreach, fused=True) when installed.

10M float32 parameters, laid out as 1 tensor and as 100 tensors; SGD (momentum 0.9), Adam,
AdamW (weight_decay 1e-2), Adadelta, Adamax, NAdam, RAdam (torch has no fused=True for the last
four: its for-loop default and foreach are timed); 1 and 2 threads. Every implementation is validated against the numpy
formula before timing. Reports the median step time, the speed-up over numpy, and the effective
memory bandwidth (bytes the update must move: SGD-momentum 20 B/param, the others 28 B/param)
next to the machine's measured copy bandwidth. Writes optim.md to bench/out/ (run.py --publish: bench/results/) (and optim.png when
matplotlib is installed).

    python bench/bench_optim.py [--n 10000000] [--reps 15] [--quick] [--optimizers NAdam,RAdam]
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import _quality
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

import cengine as ce  # noqa: E402
from cengine import _C, optim  # noqa: E402
from cengine.tensor import _wrap  # noqa: E402
from _common import pyplot, torch, write_lines  # noqa: E402  (torch: None when not installed)

BYTES_PER_PARAM = {"SGD-momentum": 20, "Adam": 28, "AdamW": 28, "Adadelta": 28, "Adamax": 28,
                   "NAdam": 28, "RAdam": 28}
HP = {"SGD-momentum": dict(lr=1e-3, momentum=0.9),
      "Adam": dict(lr=1e-3),
      "AdamW": dict(lr=1e-3, weight_decay=1e-2),
      "Adadelta": dict(lr=1.0),
      "Adamax": dict(lr=2e-3),
      "NAdam": dict(lr=2e-3),
      "RAdam": dict(lr=1e-3)}
CLASS = {"SGD-momentum": "SGD"}   # the optim class of a benchmark name (default: the name)


# ---------------- the numpy formula (torch.optim docs), in place, tensor by tensor ----------------

class NumpyOpt:
    def __init__(self, name, params, grads):
        self.name, self.p, self.g = name, params, grads
        self.s1 = [np.zeros_like(p) for p in params]
        self.s2 = [np.zeros_like(p) for p in params] if name != "SGD-momentum" else None
        self.t = 0
        self.first = True
        self.mu_product = 1.0

    def step(self):
        hp = HP[self.name]
        lr = hp["lr"]
        if self.name in ("Adadelta", "Adamax", "NAdam", "RAdam"):
            return self._step_more(lr)
        if self.name == "SGD-momentum":
            mom = hp["momentum"]
            for p, g, b in zip(self.p, self.g, self.s1):
                if self.first:
                    b[...] = g
                else:
                    b *= mom
                    b += g
                p -= lr * b
            self.first = False
            return
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        wd = hp.get("weight_decay", 0.0)
        step_size = lr / (1 - b1 ** self.t)
        bc2s = np.sqrt(1 - b2 ** self.t)
        for p, g, m, v in zip(self.p, self.g, self.s1, self.s2):
            if wd:
                p *= 1 - lr * wd
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= bc2s
            denom += eps
            p -= step_size * (m / denom)

    def _step_more(self, lr):
        self.t += 1
        t, b1, b2, eps = self.t, 0.9, 0.999, 1e-8
        if self.name == "Adadelta":
            rho, eps = 0.9, 1e-6
            for p, g, sq, acc in zip(self.p, self.g, self.s1, self.s2):
                sq *= rho
                sq += (1 - rho) * (g * g)
                delta = np.sqrt(acc + eps)
                delta /= np.sqrt(sq + eps)
                delta *= g
                acc *= rho
                acc += (1 - rho) * (delta * delta)
                p -= lr * delta
            return
        if self.name == "NAdam":
            mu = b1 * (1 - 0.5 * 0.96 ** (t * 4e-3))
            mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * 4e-3))
            self.mu_product = float(np.float32(self.mu_product) * np.float32(mu))
            c_g = -lr * (1 - mu) / (1 - self.mu_product)
            c_m = -lr * mu_next / (1 - self.mu_product * mu_next)
        if self.name == "RAdam":
            rho_inf = 2 / (1 - b2) - 1
            rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf /
                    ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5 if rho_t > 5 else None
        for p, g, m, v in zip(self.p, self.g, self.s1, self.s2):
            m += (1 - b1) * (g - m)
            if self.name == "Adamax":
                v *= b2
                np.maximum(v, np.abs(g) + eps, out=v)
                p -= lr / (1 - b1 ** t) * (m / v)
                continue
            v *= b2
            v += (1 - b2) * (g * g)
            if self.name == "NAdam":
                denom = np.sqrt(v / (1 - b2 ** t))
                denom += eps
                p += c_g * (g / denom)
                p += c_m * (m / denom)
            elif rect is not None:
                denom = np.sqrt(v)
                denom += eps
                p -= lr / (1 - b1 ** t) * (1 - b2 ** t) ** 0.5 * rect * (m / denom)
            else:
                p -= lr / (1 - b1 ** t) * m


def make_layout(n, ntensors, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [n // ntensors] * ntensors
    sizes[-1] += n - sum(sizes)
    ps = [rng.standard_normal(s, dtype=np.float32) for s in sizes]
    gs = [rng.standard_normal(s, dtype=np.float32) for s in sizes]
    return ps, gs


def make_cengine(name, ps, gs):
    params = [_wrap(p.copy(), requires_grad=True) for p in ps]
    for p, g in zip(params, gs):
        p.grad = _wrap(g)
    opt = getattr(optim, CLASS.get(name, name))(params, **HP[name])
    return opt, [p._data for p in params]


def make_torch(name, ps, gs, mode):
    params = [torch.from_numpy(p.copy()).requires_grad_(True) for p in ps]
    for p, g in zip(params, gs):
        p.grad = torch.from_numpy(g)
    kw = dict(HP[name])
    if mode == "for-loop":
        kw["foreach"] = False
    elif mode == "foreach":
        kw["foreach"] = True
    else:
        kw["fused"] = True
    opt = getattr(torch.optim, CLASS.get(name, name))(params, **kw)
    return opt, [p.detach().numpy() for p in params]


def time_steps(step, reps, max_seconds=6.0):
    step()   # warm-up (allocates state)
    step()
    ts = []
    t_start = time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
        if time.perf_counter() - t_start > max_seconds and len(ts) >= 3:
            break
    _quality.record(ts)
    return statistics.median(ts)


def validate(name, make, small_ps, small_gs, steps=8):
    """Run `steps` steps on a small copy and compare with the numpy formula."""
    ref = NumpyOpt(name, [p.copy() for p in small_ps], small_gs)
    opt, arrays = make(name, small_ps, small_gs)
    for _ in range(steps):
        ref.step()
        opt.step()
    for a, b in zip(arrays, ref.p):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def copy_bandwidth(nbytes=320 * 2**20):
    """GB/s of a large memcpy (read + write counted): numpy (1 thread) and torch (all threads)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    t = time_steps(lambda: np.copyto(dst, src), 7)
    out = {"numpy copyto (1 thread)": 2 * src.nbytes / t / 1e9}
    if torch is not None:
        ts, td = torch.from_numpy(src), torch.from_numpy(dst)
        for nt in (1, 2):
            torch.set_num_threads(nt)
            t = time_steps(lambda: td.copy_(ts), 7)
            out["torch copy_ (%d thread%s)" % (nt, "s" if nt > 1 else "")] = \
                2 * src.nbytes / t / 1e9
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="stop a configuration's rounds after this long (at least 5 rounds)")
    ap.add_argument("--quick", action="store_true", help="1M params, 5 reps")
    ap.add_argument("--optimizers", default=",".join(HP),
                    help="comma-separated subset of: " + ", ".join(HP))
    ap.add_argument("--out", default=os.path.join(_quality.out_dir(), "optim.md"))
    args = ap.parse_args()
    if args.quick:
        args.n, args.reps = 1_000_000, 5
    n = args.n
    names = [x.strip() for x in args.optimizers.split(",") if x.strip()]
    unknown = [x for x in names if x not in HP]
    if unknown:
        ap.error("unknown optimizer(s) %s; choose from %s" % (", ".join(unknown), ", ".join(HP)))
    threads = [1, 2]
    torch_modes = ["for-loop", "foreach", "fused"] if torch is not None else []

    header = ["# Optimizer step: cengine fused C update vs numpy vs torch", "",
              "- machine: %s, %s, %d CPUs; ISA path: %s; OpenMP: %s" % (
                  platform.machine(), platform.processor() or platform.platform(),
                  os.cpu_count(), _C.get_isa(), _C.openmp_enabled()),
              "- numpy %s; torch %s" % (np.__version__,
                                        torch.__version__ if torch else "not installed"),
              "- %d float32 parameters; median of up to %d interleaved rounds; numpy formula runs on 1 thread"
              % (n, args.reps),
              "- load average at start (other processes share these cores): %.2f %.2f %.2f"
              % os.getloadavg(), ""]
    bw = copy_bandwidth()
    header.append("Measured copy bandwidth (read + write): " +
                  ", ".join("%s %.1f GB/s" % kv for kv in bw.items()))
    header.append("")
    print("\n".join(header), flush=True)

    rng = np.random.default_rng(1)
    small_ps = [rng.standard_normal(s, dtype=np.float32) for s in (1000, 37, 4099)]
    small_gs = [rng.standard_normal(p.shape, dtype=np.float32) for p in small_ps]
    for name in names:
        validate(name, make_cengine, small_ps, small_gs)
        for mode in torch_modes:
            try:
                validate(name, lambda nm, p, g: make_torch(nm, p, g, mode), small_ps, small_gs)
            except (RuntimeError, TypeError) as e:  # no fused kernel (build, or optimizer)
                print("torch %s %s unavailable: %s" % (name, mode, e))

    rows = []
    for ntensors in (1, 100):
        ps, gs = make_layout(n, ntensors)
        for name in names:
            # every implementation lives side by side and the rounds interleave them (and the
            # thread counts), so load from other processes hits all of them alike; each timed
            # step follows an untimed one of the same implementation
            impls = {"numpy formula": NumpyOpt(name, [p.copy() for p in ps], gs).step}
            opt, _ = make_cengine(name, ps, gs)
            impls["cengine fused"] = opt.step
            for mode in torch_modes:
                try:
                    topt, _ = make_torch(name, ps, gs, mode)
                    topt.step()
                    impls["torch " + mode] = topt.step
                except (RuntimeError, TypeError):
                    pass
            times = {}
            for nt in threads:           # warm-up: state allocation, thread pools
                ce.set_num_threads(nt)
                if torch is not None:
                    torch.set_num_threads(nt)
                for impl, step in impls.items():
                    step()
            t_begin = time.perf_counter()
            for r in range(args.reps):
                for nt in threads:
                    ce.set_num_threads(nt)
                    if torch is not None:
                        torch.set_num_threads(nt)
                    for impl, step in impls.items():
                        if impl == "numpy formula" and nt != 1:
                            continue     # numpy's elementwise ops use one thread
                        if impl != "numpy formula":
                            # one untimed step first: torch and cengine each have an OpenMP
                            # pool whose idle threads spin for a while after a parallel region;
                            # this lets the other library's spinning threads park before timing
                            step()
                        t0 = time.perf_counter()
                        step()
                        times.setdefault((impl, nt), []).append(time.perf_counter() - t0)
                if time.perf_counter() - t_begin > args.max_seconds and r >= 4:
                    break
            del impls, opt
            for v in times.values():
                _quality.record(v)
            res = {k: statistics.median(v) for k, v in times.items()}
            best = {k: min(v) for k, v in times.items()}
            t_np = res[("numpy formula", 1)]
            for (impl, nt), t in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                gbs = BYTES_PER_PARAM[name] * n / t / 1e9
                rows.append((name, ntensors, impl, nt, t * 1e3, best[(impl, nt)] * 1e3,
                             t_np / t, gbs))
                print("%-13s %3d tensors  %-16s %d thr  %8.2f ms (best %8.2f)  x%6.1f vs numpy"
                      "  %5.1f GB/s" % rows[-1], flush=True)
            tc = res[("cengine fused", 2)]
            if ("torch fused", 2) in res:
                print("    -> torch fused / cengine (2 threads): %.2f"
                      % (res[("torch fused", 2)] / tc), flush=True)
    bw_end = copy_bandwidth()
    header.append("Copy bandwidth again after the runs: " +
                  ", ".join("%s %.1f GB/s" % kv for kv in bw_end.items()) +
                  "; load average at the end: %.2f %.2f %.2f" % os.getloadavg())
    header.append("")

    lines = header + ["| optimizer | tensors | implementation | threads | median step (ms) | "
                      "best step (ms) | speed-up vs numpy (medians) | effective GB/s (median) |",
                      "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %d | %s | %d | %.2f | %.2f | %.1fx | %.1f |" % r)
    lines.append("")
    summary = []
    for name in names:
        for ntensors in (1, 100):
            d = {(r[2], r[3]): r[4] for r in rows if r[0] == name and r[1] == ntensors}
            c2 = d.get(("cengine fused", 2))
            s = "- %s, %d tensor%s: cengine (2 thr) %.2f ms = %.1fx numpy" % (
                name, ntensors, "s" if ntensors > 1 else "", c2, d[("numpy formula", 1)] / c2)
            if ("torch fused", 2) in d:
                s += ", %.2fx torch fused (2 thr)" % (d[("torch fused", 2)] / c2)
            if ("torch foreach", 2) in d:
                s += ", %.2fx torch foreach (2 thr)" % (d[("torch foreach", 2)] / c2)
            summary.append(s)
    lines += ["Summary (ratios > 1: cengine faster):", ""] + summary + [""]
    print("\n".join(summary))
    write_lines(args.out, lines)
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, ntensors in zip(axes, (1, 100)):
        labels, vals = [], []
        for r in rows:
            if r[1] == ntensors:
                labels.append("%s\n%s %dt" % (r[0], r[2], r[3]))
                vals.append(r[7])
        ax.barh(range(len(vals)), vals)
        ax.set_yticks(range(len(vals)))
        ax.set_yticklabels(labels, fontsize=6)
        ax.set_xlabel("effective GB/s")
        ax.set_title("%d tensor(s), %d params" % (ntensors, n))
    fig.tight_layout()
    fig.savefig(os.path.splitext(args.out)[0] + ".png", dpi=120)


if __name__ == "__main__":
    main()
