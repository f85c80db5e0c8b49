"""float32 <-> bfloat16 / float16 conversions: cengine's SIMD cast kernels (Tensor.to) against
torch's Tensor.to and numpy / ml_dtypes astype, 1 and 2 threads, 4M elements; results checked
bit for bit against torch (or the scalar reference) before timing.

    python bench/bench_cast.py [--quick]
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import argparse

import ml_dtypes
import numpy as np

from _common import ce, torch, threads, median_times_interleaved, machine_line, md_table, \
    write_result
from cengine import _C


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n = 1 << 20 if args.quick else 1 << 22
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    rows = []
    cases = [("f32 -> bf16", ce.bfloat16, ml_dtypes.bfloat16, "bfloat16", _C.cast_f32_to_bf16),
             ("f32 -> f16", ce.float16, np.float16, "float16", _C.cast_f32_to_f16)]
    for nt in (1, 2):
        with threads(nt):
            for name, cd, npd, tname, kern in cases:
                t = ce.tensor(x)
                h = t.to(cd)
                np.testing.assert_array_equal(h.numpy().view(np.uint16), kern(x, ref=True))
                fns = [lambda: t.to(cd), lambda: x.astype(npd)]
                back = [lambda: h.float(), lambda: h.numpy().astype(np.float32)]
                if torch is not None:
                    tt = torch.from_numpy(x)
                    th = tt.to(getattr(torch, tname))
                    np.testing.assert_array_equal(h.numpy().view(np.uint16),
                                                  th.view(torch.int16).numpy().view(np.uint16))
                    fns.append(lambda: tt.to(getattr(torch, tname)))
                    back.append(lambda: th.float())
                for label, fs in ((name, fns), (name.replace("->", "<-"), back)):
                    ts = median_times_interleaved(fs, repeat=5 if args.quick else 9)
                    gb = lambda s: 6 * n / s / 1e9   # noqa: E731  (bytes read + written)
                    rows.append([label, nt, ts[0] * 1e3, gb(ts[0]), ts[1] / ts[0],
                                 ts[2] / ts[0] if torch is not None else None])
                    print(rows[-1], flush=True)
    md = "## float32 <-> bfloat16 / float16 casts (%d elements; median ms)\n\n" % n
    md += machine_line() + "\n\n"
    md += md_table(["cast", "threads", "cengine ms", "cengine GB/s", "numpy/ml_dtypes / cengine",
                    "torch / cengine"], rows)
    print(md)
    print("written", write_result("cast", md))


if __name__ == "__main__":
    main()
