"""Whole training steps (forward + backward + optimizer), cengine vs PyTorch, same models, same
data, same optimizer, 1 and 2 threads. The models are written once against the torch-shaped API
and instantiated with either library; cengine's initial weights are copied into torch, and the
first losses are compared before anything is timed.

Workloads (issue 7):
  mlp          MLP 784-1024-1024-10, batch 256, ReLU, cross-entropy, AdamW
  tiny_mlp     MLP 64-128-10, batch 32, SGD momentum (per-op framework overhead)
  transformer  2 pre-norm blocks, d_model 256, 4 heads, SwiGLU FFN 683, seq 64, batch 32,
               vocab 1000 embedding and head, cross-entropy, AdamW

    python bench/bench_train.py [--quick] [--threads 1 2] [--workloads mlp tiny_mlp transformer]
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import argparse
import contextlib

import numpy as np

from _common import ce, torch, threads, write_result, copy_weights, time_steps, step_row, \
    step_report


def mlp(lib, sizes):
    nn = lib.nn
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def transformer(lib, vocab=1000, d=256, heads=4, hidden=683, layers=2, seq=64):
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.n2 = nn.LayerNorm(d)
            self.gate = nn.Linear(d, hidden, bias=False)
            self.up = nn.Linear(d, hidden, bias=False)
            self.down = nn.Linear(hidden, d, bias=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.n1(x)).chunk(3, dim=-1)
            q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
            h = self.n2(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, d)
            self.pos = nn.Embedding(seq, d)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, vocab)

        def forward(self, idx):
            x = self.emb(idx) + self.pos(lib.arange(idx.shape[1]))
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.norm(x))

    return Model()


WORKLOADS = {
    "mlp": dict(build=lambda lib: mlp(lib, [784, 1024, 1024, 10]), batch=256, inp=("f", 784),
                classes=10, opt=("AdamW", dict(lr=1e-3))),
    "tiny_mlp": dict(build=lambda lib: mlp(lib, [64, 128, 10]), batch=32, inp=("f", 64),
                     classes=10, opt=("SGD", dict(lr=0.01, momentum=0.9))),
    "transformer": dict(build=lambda lib: transformer(lib), batch=32, inp=("i", 64, 1000),
                        classes=1000, opt=("AdamW", dict(lr=1e-3))),
}


def make_data(spec, rng):
    b = spec["batch"]
    if spec["inp"][0] == "f":
        x = rng.standard_normal((b, spec["inp"][1])).astype(np.float32)
        y = rng.integers(0, spec["classes"], b)
    else:
        x = rng.integers(0, spec["inp"][2], (b, spec["inp"][1]))
        y = rng.integers(0, spec["classes"], (b, spec["inp"][1]))
    return x, y.astype(np.int64)


def stepper(lib, model, spec, x, y, amp=False):
    """One training step of model on (x, y) with lib (cengine or torch) as a function returning
    the loss; amp=True: forward and loss under bfloat16 autocast (bench_amp.py)."""
    opt_name, kw = spec["opt"]
    opt = getattr(lib.optim, opt_name)(model.parameters(), **kw)
    loss_fn = lib.nn.CrossEntropyLoss()
    xt = lib.tensor(x)
    yt = lib.tensor(y)
    ctx = (lambda: lib.autocast("cpu", dtype=lib.bfloat16)) if amp else contextlib.nullcontext

    def step():
        with ctx():
            out = model(xt)
            loss = loss_fn(out.reshape(-1, out.shape[-1]), yt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def each_workload(names, thread_counts):
    """(name, threads, spec, x, y) for each workload and thread count, yielded inside
    threads(n) with cengine's generator seeded (bench_amp.py uses it too)."""
    rng = np.random.default_rng(0)
    for name in names:
        spec = WORKLOADS[name]
        x, y = make_data(spec, rng)
        for nt in thread_counts:
            with threads(nt):
                ce.manual_seed(0)
                yield name, nt, spec, x, y


def torch_twin(name, cm, cstep, spec, x, y, amp=False, tol=2e-3):
    """torch's step for a copy of cengine model cm, after checking that the first losses of
    cstep and it agree within tol (SystemExit when not)."""
    tm = spec["build"](torch)
    copy_weights(cm, tm)
    tstep = stepper(torch, tm, spec, x, y, amp)
    lc, lt = cstep().item(), tstep().item()
    if not np.isclose(lc, lt, rtol=tol, atol=tol):
        raise SystemExit("%s: first %slosses differ: cengine %.6f torch %.6f"
                         % (name, "autocast " if amp else "", lc, lt))
    return tstep


def run(names, thread_counts, quick):
    rows = []
    for name, nt, spec, x, y in each_workload(names, thread_counts):
        cm = spec["build"](ce)
        cstep = stepper(ce, cm, spec, x, y)
        tstep = torch_twin(name, cm, cstep, spec, x, y) if torch is not None else None
        rep, warm = (3, 1) if quick else (15, 3)
        step_row(rows, name, nt, *time_steps(cstep, tstep, rep, warm))
    return step_report("Training steps", rows, "train_steps.png", "training step time")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    args = ap.parse_args(argv)
    md = run(args.workloads, args.threads, args.quick)
    print(md)
    print("written", write_result("train_steps", md))


if __name__ == "__main__":
    main()
