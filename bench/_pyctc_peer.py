"""Peer timing for bench_ctc.py: pyctcdecode's beam search, run by a Python that has
pyctcdecode (which needs numpy < 2, so usually a separate virtual environment; this file
imports nothing from cengine).

    python _pyctc_peer.py IN.npz OUT.json

IN.npz: lp (N, T, C) float32 log-probabilities, labels (C,) str (blank = "" first), beams (k,),
repeat, processes. OUT.json: {beam: {"times": [seconds per sample], "texts": [best per utterance]}}
"""
import json
import sys
import time

import numpy as np


def main():
    d = np.load(sys.argv[1])
    from pyctcdecode import build_ctcdecoder
    labels = [str(x) for x in d["labels"]]
    dec = build_ctcdecoder(labels)
    lp = d["lp"].astype(np.float32)
    items = [np.ascontiguousarray(x) for x in lp]
    procs = int(d["processes"])
    pool = None
    if procs > 1:
        import multiprocessing
        pool = multiprocessing.get_context("fork").Pool(procs)
    out = {}
    for B in d["beams"].tolist():
        times, texts = [], None
        for _ in range(int(d["repeat"])):
            t0 = time.perf_counter()
            if pool is None:
                res = [dec.decode(x, beam_width=B) for x in items]
            else:
                res = dec.decode_batch(pool, items, beam_width=B)
            times.append(time.perf_counter() - t0)
            texts = res
        out[str(B)] = {"times": times, "texts": texts}
    if pool is not None:
        pool.close()
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
