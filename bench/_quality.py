"""Where benchmark results go, and how trustworthy their timings were.

out_dir(): bench/out/ (untracked) unless CENGINE_BENCH_OUT names another folder; run.py
--publish points it at bench/results/, the committed report the README links.

record(samples): every timing helper passes the raw samples of one measurement here. Their
spread (interquartile range / median) says whether the machine was quiet: on a loaded machine
samples of the same call scatter widely, and a median of them can be several times off. At exit
each benchmark process prints a warning when measurements were noisy and leaves a small
_quality-<script>.json beside its results, which run.py turns into a warning at the top of the
combined report (with the load average) instead of presenting the numbers as clean."""
import atexit
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NOISY_SPREAD = 0.25     # IQR / median above this: the samples of one call disagree too much

_seen = {"n": 0, "noisy": 0, "worst": 0.0}


def out_dir():
    d = os.environ.get("CENGINE_BENCH_OUT") or os.path.join(HERE, "out")
    os.makedirs(d, exist_ok=True)
    return d


def spread(samples):
    s = sorted(samples)
    n = len(s)
    if n < 3:
        return 0.0
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    q1, q3 = s[n // 4], s[(3 * n) // 4]
    return (q3 - q1) / med if med > 0 else 0.0


def record(samples):
    """Account one measurement's samples; returns its spread."""
    sp = spread(list(samples))
    _seen["n"] += 1
    if sp > NOISY_SPREAD:
        _seen["noisy"] += 1
    _seen["worst"] = max(_seen["worst"], sp)
    return sp


def load_line():
    try:
        la = os.getloadavg()
    except OSError:
        return "load average unavailable"
    return "load average %.2f / %.2f / %.2f on %d CPUs" % (la[0], la[1], la[2], os.cpu_count() or 1)


def summary(n, noisy, worst):
    return ("%d of %d measurements had a sample spread (IQR/median) above %d%% (worst %.0f%%)"
            % (noisy, n, NOISY_SPREAD * 100, worst * 100))


def _at_exit():
    if not _seen["n"]:
        return
    script = os.path.splitext(os.path.basename(sys.argv[0] or "bench"))[0]
    path = os.path.join(out_dir(), "_quality-%s.json" % script)
    with open(path, "w") as f:
        json.dump(dict(_seen, load=load_line()), f)
    if _seen["noisy"]:
        print("WARNING: the machine looks loaded: %s; %s. Rerun on a quiet machine before "
              "trusting these numbers." % (summary(_seen["n"], _seen["noisy"], _seen["worst"]),
                                           load_line()), flush=True)


atexit.register(_at_exit)
