"""Run every benchmark in bench/ and collect the tables into one report.

    python -m bench [--quick] [--only bench_gemm.py ...] [--publish]

Each bench_*.py is run as its own process (so thread settings and imports stay separate) and
writes its markdown table (and plot) to bench/out/, which git ignores; this script concatenates
them in order with the machine line on top into bench/out/<date>-<host>.md. --publish writes to
bench/results/ instead: the committed report the README links changes only when asked.

The report starts with the machine's load and how much the timing samples scattered: on a busy
machine it says so in a warning instead of presenting outliers as results.
"""
import argparse
import datetime
import glob
import json
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["bench_gemm.py", "bench_nn.py", "bench_optim.py", "bench_train.py"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="+", help="benchmark files to run (default: all)")
    ap.add_argument("--publish", action="store_true",
                    help="write into bench/results/ (the committed report) instead of bench/out/")
    args = ap.parse_args(argv)
    os.environ["CENGINE_BENCH_OUT"] = os.path.join(HERE, "results" if args.publish else "out")
    names = args.only or [n for n in ORDER if os.path.exists(os.path.join(HERE, n))]
    names += [n for n in sorted(os.listdir(HERE)) if n.startswith("bench_") and n.endswith(".py")
              and n not in names and not args.only]
    sys.path.insert(0, HERE)
    from _common import machine_line, results_dir
    import _quality
    for q in glob.glob(os.path.join(results_dir(), "_quality-*.json")):
        os.remove(q)
    load_before = _quality.load_line()
    parts = ["# cengine benchmarks\n", machine_line(), ""]
    quality_at = len(parts)
    failed = []
    for n in names:
        print("== %s" % n, flush=True)
        before = set(os.listdir(results_dir()))
        cmd = [sys.executable, os.path.join(HERE, n)] + (["--quick"] if args.quick else [])
        r = subprocess.run(cmd, cwd=os.path.dirname(HERE))
        if r.returncode != 0:
            failed.append(n)
            parts.append("## %s\n\nFAILED (exit code %d)\n" % (n, r.returncode))
            continue
        new = sorted(f for f in os.listdir(results_dir()) if f.endswith(".md")
                     and f not in before) or []
        stem = n[len("bench_"):-3]
        cands = new or [f for f in os.listdir(results_dir()) if f.endswith(".md") and stem in f]
        for f in sorted(cands):
            with open(os.path.join(results_dir(), f)) as fh:
                parts.append(fh.read())
    n = noisy = 0
    worst = 0.0
    for q in sorted(glob.glob(os.path.join(results_dir(), "_quality-*.json"))):
        with open(q) as fh:
            d = json.load(fh)
        n, noisy, worst = n + d["n"], noisy + d["noisy"], max(worst, d["worst"])
        os.remove(q)
    loads = "%s before, %s after" % (load_before, _quality.load_line())
    if noisy:
        note = ("> **Warning: the machine was busy during this run** (%s; %s). Samples of the "
                "same call scattered, so the medians below may be off by large factors; rerun "
                "on a quiet machine before trusting them.\n" % (_quality.summary(n, noisy, worst),
                                                                loads))
        print("WARNING: busy machine: %s" % _quality.summary(n, noisy, worst))
    else:
        note = "Timing quality: %s; %s.\n" % (_quality.summary(n, noisy, worst), loads)
    parts.insert(quality_at, note)
    out = os.path.join(results_dir(), "%s-%s.md" % (datetime.date.today().isoformat(),
                                                     socket.gethostname()))
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print("report:", out)
    if failed:
        sys.exit("failed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
