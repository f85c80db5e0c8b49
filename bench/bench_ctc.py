"""Benchmark of CTC: the loss (forward + backward) against torch, and beam-search decoding
against pyctcdecode.

Loss: T=200 frames, N=32 sequences, C=42 classes, targets of S=60 labels (padded (N, S)),
'mean' reduction, float32; cengine's F.ctc_loss + backward against torch.nn.functional.ctc_loss
+ backward, results compared first, samples interleaved, medians.
Decoding: N=32 utterances, T=200, C=42, beam 50 and 300, speech-like posteriors (one class
boosted per frame); cengine's CTCBeamDecoder with ctcdecode's defaults (cutoff_top_n=40,
cutoff_prob=1.0: every class is expanded) against pyctcdecode's decoder with its defaults
(which prune harder: classes below log-prob -5 and beams 10 below the best are dropped).
pyctcdecode needs numpy < 2, so it runs in another Python (--pyctc-python, or the environment
variable CENGINE_BENCH_PYCTC_PYTHON, default /tmp/pyctc/bin/python) through bench/_pyctc_peer.py,
on the first --peer-utts utterances (it takes seconds per utterance); its column is left out when
that Python is missing. Best-beam transcripts of both are compared (agreement is printed),
and where they differ their exact CTC likelihoods (cengine's loss over all alignments).
Blocks of cengine and pyctcdecode samples alternate in time (they cannot share a process).
Writes bench/results/bench_ctc.md (and bench_ctc.png when matplotlib is installed).

    python bench/bench_ctc.py [--threads 1 2] [--repeat 9] [--quick]
"""
import _env  # noqa: F401  (before numpy)
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
import cengine as ce  # noqa: E402
from cengine import _C  # noqa: E402
from cengine.ctcdecode import CTCBeamDecoder  # noqa: E402
from _common import median_times_interleaved, pyplot, write_lines  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
from ctc_phonemes import edit_distance  # noqa: E402  (the example's PER helper)

try:
    import torch
except ImportError:  # torch is optional
    torch = None

LABELS = [""] + [chr(ord("a") + i) for i in range(26)] + [chr(ord("A") + i) for i in range(15)]


def log_softmax_np(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def loss_case(T=200, N=32, C=42, S=60):
    rng = np.random.default_rng(0)
    lp = log_softmax_np(rng.standard_normal((T, N, C)) * 2).astype(np.float32)
    tg = rng.integers(1, C, size=(N, S)).astype(np.int64)
    il = np.full(N, T, np.int64)
    tl = np.full(N, S, np.int64)

    def run_ce():
        x = ce.tensor(lp, requires_grad=True)
        loss = ce.nn.functional.ctc_loss(x, ce.tensor(tg), ce.tensor(il), ce.tensor(tl))
        loss.backward()
        return loss.item(), x.grad.numpy()

    impls = {"cengine": run_ce}
    if torch is not None:
        tgt, ilt, tlt = torch.from_numpy(tg), torch.from_numpy(il), torch.from_numpy(tl)

        def run_torch():
            x = torch.tensor(lp, requires_grad=True)
            loss = torch.nn.functional.ctc_loss(x, tgt, ilt, tlt)
            loss.backward()
            return loss.item(), x.grad.numpy()
        impls["torch"] = run_torch
    return impls


def validate_loss(impls):
    a = impls["cengine"]()
    if "torch" in impls:
        b = impls["torch"]()
        if not np.isclose(a[0], b[0], rtol=1e-4):
            raise SystemExit("loss mismatch: cengine %r torch %r" % (a[0], b[0]))
        if not np.allclose(a[1], b[1], rtol=1e-3, atol=1e-5):
            raise SystemExit("gradient mismatch: max diff %g" % np.abs(a[1] - b[1]).max())


def decode_case(N=32, T=200, C=42):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, C)) * 1.5
    # a label sequence with durations: runs of one class, blanks between
    for n in range(N):
        t = 0
        while t < T:
            c = int(rng.integers(0, C)) if rng.random() < 0.6 else 0
            d = int(rng.integers(1, 5))
            x[n, t:t + d, c] += 6
            t += d
    return np.ascontiguousarray(log_softmax_np(x).astype(np.float32))


def exact_nll(lp, text):
    """-log p(text | lp) summed over every alignment (cengine's CTC loss in float64)"""
    lab = [LABELS.index(ch) for ch in text]
    x = ce.tensor(lp[:, None, :].astype(np.float64))
    return ce.nn.functional.ctc_loss(x, ce.tensor([lab], dtype=ce.int64), [lp.shape[0]],
                                     [len(lab)], reduction="sum").item()


def run_peer(py, lp, beams, repeat, procs):
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.npz"), os.path.join(d, "out.json")
        np.savez(fin, lp=lp, labels=np.array(LABELS), beams=np.array(beams), repeat=repeat,
                 processes=procs)
        r = subprocess.run([py, os.path.join(HERE, "_pyctc_peer.py"), fin, fout],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            print("pyctcdecode peer failed:", r.stderr[-2000:])
            return None
        with open(fout) as f:
            return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="fewer samples and peer utterances")
    ap.add_argument("--pyctc-python", default=os.environ.get("CENGINE_BENCH_PYCTC_PYTHON",
                                                               "/tmp/pyctc/bin/python"))
    ap.add_argument("--peer-utts", type=int, default=None,
                    help="utterances pyctcdecode decodes per sample (default 8, quick 2)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_ctc.md"))
    args = ap.parse_args()
    repeat = 3 if args.quick else args.repeat
    peer_utts = args.peer_utts or (2 if args.quick else 8)
    peer_py = args.pyctc_python if os.path.exists(args.pyctc_python) else None
    head = ("machine: %s, %s, %d CPUs; cengine ISA %s (max %s), OpenMP %s; numpy %s; torch %s; "
            "pyctcdecode peer: %s" % (platform.machine(), platform.processor() or platform.platform(),
                                      os.cpu_count(), _C.get_isa(), _C.max_isa(),
                                      _C.openmp_enabled(), np.__version__,
                                      torch.__version__ if torch is not None else "not installed",
                                      peer_py or "not available"))
    print(head, flush=True)
    load0 = os.getloadavg()
    loss_rows, dec_rows = [], []
    impls = loss_case()
    for nt in args.threads:
        ce.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        validate_loss(impls)
        names = list(impls)
        ts = median_times_interleaved([impls[k] for k in names], repeat=repeat)
        t = dict(zip(names, ts))
        loss_rows.append((nt, t["cengine"], t.get("torch")))
        print("loss fwd+bwd threads=%d: cengine %.2f ms, torch %s" % (
            nt, t["cengine"] * 1e3, "%.2f ms (x%.2f)" % (t["torch"] * 1e3, t["torch"] / t["cengine"])
            if "torch" in t else "-"), flush=True)
    lp = decode_case()
    N = lp.shape[0]
    beams = [50, 300]
    for nt in args.threads:
        decs = {B: CTCBeamDecoder(LABELS, beam_width=B, num_processes=nt, log_probs_input=True)
                for B in beams}
        res = {B: decs[B].decode(lp) for B in beams}   # warm-up, and the transcripts to compare
        ce_t = {B: [] for B in beams}
        peer_t = {B: [] for B in beams}
        peer_texts = None
        blocks = 3 if peer_py else 1
        for blk in range(blocks):   # alternate blocks of cengine and peer samples
            for B in beams:
                for _ in range(max(1, repeat // blocks)):
                    t0 = time.perf_counter()
                    decs[B].decode(lp)
                    ce_t[B].append((time.perf_counter() - t0) / N)
            if peer_py:
                out = run_peer(peer_py, lp[:peer_utts], beams, 1, nt)
                if out is None:
                    peer_py = None
                    break
                for B in beams:
                    peer_t[B] += [x / peer_utts for x in out[str(B)]["times"]]
                peer_texts = out
        for B in beams:
            tc = statistics.median(ce_t[B])
            tp = statistics.median(peer_t[B]) if peer_t[B] else None
            agree = None
            if peer_texts is not None:
                r, s, _, l = [x.numpy() for x in res[B]]
                mine = ["".join(LABELS[c] for c in r[n, 0, :l[n, 0]]) for n in range(peer_utts)]
                theirs = peer_texts[str(B)]["texts"]
                better = sum(exact_nll(lp[n], mine[n]) <= exact_nll(lp[n], theirs[n]) + 1e-9
                             for n in range(peer_utts))
                agree = (sum(a == b for a, b in zip(mine, theirs)) / peer_utts,
                         1 - sum(edit_distance(a, b) for a, b in zip(mine, theirs)) /
                         max(1, sum(len(b) for b in theirs)), better / peer_utts)
            dec_rows.append((nt, B, tc, tp, agree))
            print("decode beam %d threads=%d: cengine %.2f ms/utt (%.1f ms for %d), pyctcdecode %s%s"
                  % (B, nt, tc * 1e3, tc * N * 1e3, N,
                     "%.1f ms/utt (x%.0f)" % (tp * 1e3, tp / tc) if tp else "-",
                     ", best transcripts equal on %d%% of %d, %.2f%% of characters; cengine's "
                     "at least as probable (exact CTC likelihood) on %d%%"
                     % (100 * agree[0], peer_utts, 100 * agree[1], 100 * agree[2])
                     if agree is not None else ""), flush=True)
    load1 = os.getloadavg()
    load = ("load average (1/5/15 min) at start %.2f/%.2f/%.2f, at end %.2f/%.2f/%.2f on %d CPUs "
            "(other processes share them: timings are unreliable when load > 1)"
            % (load0 + load1 + (os.cpu_count(),)))
    print(load)
    lines = ["# bench_ctc: CTC loss and beam-search decoding", "", head, "", load, "",
             "## CTC loss forward + backward (T=200, N=32, C=42, S=60, float32, 'mean'), "
             "median of %d interleaved samples" % repeat, "",
             "| threads | cengine ms | torch ms | speedup vs torch |", "|---|---|---|---|"]
    for nt, tc, tt in loss_rows:
        lines.append("| %d | %.3f | %s | %s |" % (nt, tc * 1e3, "%.3f" % (tt * 1e3) if tt else "-",
                                                  "%.2f" % (tt / tc) if tt else "-"))
    lines += ["", "## Beam search (N=32, T=200, C=42), time per utterance", "",
              "cengine: ctcdecode's defaults (all 40 top classes expanded per frame). pyctcdecode: "
              "its defaults (token_min_logp=-5, beam_prune_logp=-10), %d utterances per sample, "
              "%s process(es) (a multiprocessing pool for more than one)." % (peer_utts, "/".join(
                  str(t) for t in args.threads)), "",
              "Where the best transcripts differ, the exact CTC likelihood (all alignments) of "
              "each is computed: the last column counts cengine's at least as probable.", "",
              "| threads | beam | cengine ms/utt | pyctcdecode ms/utt | speedup | equal best "
              "transcripts | equal characters (1 - edit distance / length) | cengine's best at "
              "least as probable |", "|---|---|---|---|---|---|---|---|"]
    for nt, B, tc, tp, agree in dec_rows:
        lines.append("| %d | %d | %.3f | %s | %s | %s | %s | %s |" % (
            nt, B, tc * 1e3, "%.1f" % (tp * 1e3) if tp else "-", "%.0f" % (tp / tc) if tp else "-",
            "%d%%" % (100 * agree[0]) if agree is not None else "-",
            "%.2f%%" % (100 * agree[1]) if agree is not None else "-",
            "%d%%" % (100 * agree[2]) if agree is not None else "-"))
    write_lines(args.out, lines)
    plt = pyplot()
    if plt is None:
        return
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    ax = axs[0]
    if torch is not None:
        ax.bar([str(r[0]) for r in loss_rows], [r[2] / r[1] for r in loss_rows])
    ax.axhline(1, color="k", lw=0.8)
    ax.set_title("CTC loss fwd+bwd: speedup vs torch")
    ax.set_xlabel("threads")
    ax = axs[1]
    rows = [r for r in dec_rows if r[3]]
    ax.bar(["beam %d\n%dt" % (r[1], r[0]) for r in rows], [r[3] / r[2] for r in rows])
    ax.set_yscale("log")
    ax.set_title("beam search: speedup vs pyctcdecode")
    fig.tight_layout()
    fig.savefig(os.path.splitext(args.out)[0] + ".png", dpi=120)


if __name__ == "__main__":
    main()
