"""GEMM autotuning: measure a few block sizes on this machine and keep the fastest.

    python -m cengine.tune              # measure float32 and float64 on the ISA in use, save
    python -m cengine.tune --show       # print the tune file's entry for this CPU and exit
    python -m cengine.tune --reset      # forget this CPU's entry
    options: --dtypes float32,float64  --size 1024  --rounds 7  --threads 1  --dry-run

The GEMM's default block sizes come from the CPU's caches (the BLIS analytical model, see
src_c/gemm.c); this command times candidates around that default (and the fixed per-ISA
sizes) on square products, samples interleaved so load from other processes hits every
candidate alike (on one thread: medians of CPU time; on more: the fastest wall-clock sample),
and writes the fastest per (dtype, ISA) to a small JSON file:
$XDG_CACHE_HOME/cengine/tune.json (default ~/.cache/cengine/tune.json), keyed by the CPU model,
its CPUID family/model and its cache sizes, so one file serves several machines (a home
directory shared by a cluster). A default within 2% of the best is kept. At import cengine
applies the entry for the CPU it runs on, unless it was tuned against other default block sizes
than this cengine derives (an older version or blocking rule: skipped with a warning, tune
again); CENGINE_TUNE=0 disables that, and an unreadable or malformed file is ignored with a
warning. Block sizes change speed only, never results beyond float rounding.
"""
import json
import sys
import time

__all__ = ["cache_path", "cpu_key", "load", "apply", "tune", "main"]

from ._tunefile import (FILE_VERSION, _read, _write_atomic, apply, cache_path, cpu_key,  # noqa: F401
                        default_blocking, load, status)


def _candidates(dtype, isa):
    """Block sizes to try: the analytical default, KC and NC around it, and the fixed sizes."""
    from . import _C
    _C.gemm_set_blocking(dtype, isa, 0, 0, 0)
    d = _C.gemm_blocking(dtype, isa)
    kc, mc, nc, mr, nr = d["kc"], d["mc"], d["nc"], d["mr"], d["nr"]

    def fit(k, m, n):
        k = min(2048, max(32, k // 8 * 8))
        m = min(4096 // mr * mr, max(mr, m // mr * mr))
        n = min(8192 // nr * nr, max(nr, n // nr * nr))
        return k, m, n

    out = [fit(kc, mc, nc)]
    for k, m, n in [(kc * 3 // 4, mc, nc), (kc * 3 // 2, mc, nc), (kc * 2, mc, nc),
                    (kc, mc, nc // 2), (kc, mc, nc * 2), (kc * 3 // 2, mc, nc * 2 // 3),
                    (kc, mc // 2, nc)] + [(384, 1920, 512) if dtype == "float32" else
                                          (256, 1920, 512)]:
        c = fit(k, m, n)
        if c not in out:
            out.append(c)
    return out


def _measure(dtype, isa, cands, size, rounds, log):
    """seconds per size^3 product per candidate, samples interleaved in a shuffled order each
    round: on one thread the median of CPU-time samples (time another process takes the core
    for is not counted), on more the fastest wall-clock sample"""
    import numpy as np
    from . import _C
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size)).astype(dtype)
    B = rng.standard_normal((size, size)).astype(dtype)
    C = np.empty((size, size), dtype)
    ref = None
    times = {c: [] for c in cands}
    one = _C.get_num_threads() == 1
    clock = time.process_time if one else time.perf_counter
    import random
    order = list(cands)
    loops = 1
    shuf = random.Random(0)
    for r in range(rounds + 1):
        shuf.shuffle(order)
        for c in order:
            _C.gemm_set_blocking(dtype, isa, *c)
            if r == 0:   # warm-up round: check the result and size the samples
                t0 = time.perf_counter()
                _C.gemm(A, B, C)
                loops = max(loops, 1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))
                if ref is None:
                    ref = A.astype(np.float64) @ B.astype(np.float64)
                err = float(np.abs(C - ref).max() / np.abs(ref).max())
                if not err < (1e-4 if dtype == "float32" else 1e-12):
                    raise RuntimeError("tune: wrong result with blocking %s (rel err %g)" % (c, err))
                continue
            t0 = clock()
            for _ in range(loops):
                _C.gemm(A, B, C)
            times[c].append((clock() - t0) / loops)
    # several threads: the fastest sample (load from other processes only ever slows a sample
    # down, so on a shared machine the minimum is the steadiest estimate of undisturbed speed);
    # one thread: CPU time leaves out preemption, and the median the cache disturbance
    med = {c: float(np.median(v) if one else np.min(v)) for c, v in times.items()}
    for c in cands:
        log("  %-6s %-7s kc=%4d mc=%4d nc=%4d  %7.1f GFLOP/s" % (
            dtype, isa, c[0], c[1], c[2], 2.0 * size ** 3 / med[c] / 1e9))
    return med


def tune(dtypes=("float32", "float64"), isa=None, size=None, rounds=7, threads=1,
         path=None, save=True, log=print):
    """Measure the candidates for each dtype on `isa` (default: in use) and, when save, write
    the best to the tune file. Returns {"float32/avx512": {...}, ...}."""
    from . import _C
    isa = isa or _C.get_isa()
    old_threads = _C.get_num_threads()
    if threads:
        _C.set_num_threads(int(threads))
    old = {dt: _C.gemm_blocking(dt, isa) for dt in dtypes}
    results = {}
    try:
        for dt in dtypes:
            n = size or (1024 if dt == "float32" else 768)
            cands = _candidates(dt, isa)
            log("%s on %s, %d thread(s), %d^3 products, %d rounds:" % (
                dt, isa, _C.get_num_threads(), n, rounds))
            med = _measure(dt, isa, cands, n, rounds, log)
            default = cands[0]
            best = min(cands, key=lambda c: med[c])
            if med[best] > med[default] / 1.02:   # within 2%: keep the analytical default
                best = default
            gf = lambda c: round(2.0 * n ** 3 / med[c] / 1e9, 1)
            results["%s/%s" % (dt, isa)] = dict(
                kc=best[0], mc=best[1], nc=best[2], gflops=gf(best), default=list(default),
                default_gflops=gf(default), size=n, threads=_C.get_num_threads())
            log("  -> kc=%d mc=%d nc=%d (%.1f GFLOP/s; default %.1f)" % (
                best[0], best[1], best[2], gf(best), gf(default)))
    finally:
        for dt, b in old.items():
            if b["source"] == "set":
                _C.gemm_set_blocking(dt, isa, b["kc"], b["mc"], b["nc"])
            else:
                _C.gemm_set_blocking(dt, isa, 0, 0, 0)
        _C.set_num_threads(old_threads)
    if save:
        path = path or cache_path()
        _save(path, results)
        log("saved to %s (key %r)" % (path, cpu_key()))
        apply(path, warn=True)
    return results


def _save(path, results):
    try:
        data = _read(path)
    except ValueError:
        data = {}   # a broken file is replaced
    data = data or {"version": FILE_VERSION, "cpus": {}}
    entry = data["cpus"].setdefault(cpu_key(), {})
    if not isinstance(entry, dict):
        entry = data["cpus"][cpu_key()] = {}
    entry.update(results)
    _write_atomic(path, data)


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python -m cengine.tune", description=__doc__.splitlines()[0])
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--isa", default=None, help="kernel path to tune (default: the one in use)")
    p.add_argument("--size", type=int, default=None, help="square product size (default 1024, "
                   "768 for float64)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="threads while measuring (default 1:"
                   " block sizes are per core, and one thread is not thrown off by a neighbour "
                   "process holding another core)")
    p.add_argument("--dry-run", action="store_true", help="measure, but do not write the file")
    p.add_argument("--show", action="store_true", help="print this CPU's entry and exit")
    p.add_argument("--reset", action="store_true", help="remove this CPU's entry and exit")
    args = p.parse_args(argv)
    from . import _C
    path = cache_path()
    if args.show or args.reset:
        try:
            data = _read(path)
        except ValueError as e:
            print("%s: unreadable (%s)" % (path, e))
            return 1
        key = cpu_key()
        if args.reset:
            if data and data["cpus"].pop(key, None) is not None:
                _write_atomic(path, data)
                print("removed the entry for %r from %s" % (key, path))
            else:
                print("no entry for %r in %s" % (key, path))
            return 0
        print("%s\n%r: %s" % (path, key, json.dumps((data or {}).get("cpus", {}).get(key),
                                                     indent=1, sort_keys=True)))
        return 0
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in ("float32", "float64"):
            p.error("--dtypes: expected float32 and/or float64, got %r" % d)
    if args.isa is not None and args.isa not in _C.ISA_NAMES:
        p.error("--isa: expected one of %s" % ", ".join(_C.ISA_NAMES))
    if args.rounds < 1:
        p.error("--rounds must be positive")
    if args.size is not None and not 64 <= args.size <= 8192:
        p.error("--size must be in [64, 8192]")
    print("CPU: %s" % cpu_key())
    tune(dtypes, args.isa, args.size, args.rounds, args.threads, save=not args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
