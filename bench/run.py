"""Run every benchmark in bench/ and collect the tables into bench/results/<date>-<host>.md.

    python bench/run.py [--quick]        # --quick: about a minute per benchmark family

Each bench_*.py is run as its own process (so thread settings and imports stay separate) and
writes its markdown table to bench/results/<name>.md; this script concatenates them in order with
the machine line on top.
"""
import argparse
import datetime
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
    args = ap.parse_args(argv)
    names = args.only or [n for n in ORDER if os.path.exists(os.path.join(HERE, n))]
    names += [n for n in sorted(os.listdir(HERE)) if n.startswith("bench_") and n.endswith(".py")
              and n not in names and not args.only]
    sys.path.insert(0, HERE)
    from _common import machine_line, results_dir
    parts = ["# cengine benchmarks\n", machine_line(), ""]
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
    out = os.path.join(results_dir(), "%s-%s.md" % (datetime.date.today().isoformat(),
                                                     socket.gethostname()))
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print("report:", out)
    if failed:
        sys.exit("failed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
