"""bfloat16 GEMM (fp32 accumulation) against cengine's own fp32 GEMM and torch's bf16 matmul.

    python bench/bench_bf16.py [--quick]

Square products n = 1024, 2048 (and 4096 without --quick), operands already in bfloat16 (as
under autocast, where weights are cast once per step) and in float32 (rounded while packing);
1 and 2 threads; medians of interleaved samples. Prints the bf16 path in use: 2 AMX tiles,
1 AVX512_BF16 (vdpbf16ps), 0 fp32 GEMM on rounded copies.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (machine_line, md_table, median_times_interleaved, threads,  # noqa: E402
                     torch, write_result)

import cengine as ce  # noqa: E402
from cengine import _C  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [1024, 2048] if args.quick else [1024, 2048, 4096]
    rng = np.random.default_rng(0)
    rows = []
    for nt in (1, 2):
        with threads(nt):
            for n in sizes:
                a = rng.standard_normal((n, n)).astype(np.float32)
                b = rng.standard_normal((n, n)).astype(np.float32)
                ah, bh = _C.f32_to_bf16(a), _C.f32_to_bf16(b)
                c = np.empty((n, n), np.float32)
                ref = np.empty((n, n), np.float32)
                # validate before timing: against the fp32 product of the rounded operands
                _C.gemm_bf16(ah, bh, c)
                _C.gemm(_C.bf16_to_f32(ah), _C.bf16_to_f32(bh), ref)
                err = np.abs(c - ref).max() / np.abs(ref).max()
                assert err < 1e-5, err
                fns = [lambda: _C.gemm(a, b, c), lambda: _C.gemm_bf16(ah, bh, c),
                       lambda: _C.gemm_bf16(a, b, c)]
                if torch is not None:
                    ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
                    fns.append(lambda: torch.mm(ta, tb))
                reps = 3 if n >= 4096 else 5
                ts = median_times_interleaved(fns, repeat=reps, warmup=1, min_time=0.0)
                gf = [2.0 * n ** 3 / t / 1e9 for t in ts]
                rows.append([nt, n, gf[0], gf[1], gf[2], gf[3] if torch is not None else None,
                             ts[0] / ts[1], ts[3] / ts[1] if torch is not None else None])
    head = ["threads", "n", "fp32 GEMM GFLOP/s", "bf16 GEMM (bf16 in)", "bf16 GEMM (fp32 in)",
            "torch bf16 mm", "bf16 speed-up over fp32", "bf16 vs torch bf16 (time ratio)"]
    text = "\n".join(["## bfloat16 GEMM (bf16 path %d)" % _C.gemm_bf16_path(), "",
                      machine_line(), "", md_table(head, rows)])
    print(text)
    write_result("bf16", text)


if __name__ == "__main__":
    main()
