"""cengine's CUDA path (CuPy storage) against PyTorch on the same GPU, in one process: GEMM 4096
(float32, and float16 / bfloat16 where each library has the dtype), softmax forward+backward,
an AdamW step over 100M parameters, a transformer-encoder training step, and mixed precision
(GradScaler's unscale over 100M gradients; the transformer step under autocast("cuda") float16
with a GradScaler). Each result is
checked against torch's before it is timed; samples of cengine and torch are taken in turn
(GPU work synchronised around each sample), medians and the ratio torch/cengine reported.

Without CuPy or a GPU it writes a short note saying which is missing and exits 0.

    python bench/bench_cuda.py [--quick]
"""
import argparse
import statistics
import sys
import time
import traceback

import numpy as np

from _common import md_table, write_result, machine_line
import _quality

import cengine as ce
from cengine import _device


def _sync_all(cp, torch):
    cp.cuda.Device().synchronize()
    if torch is not None:
        torch.cuda.synchronize()


def interleaved(fns, cp, torch, repeat=7, warmup=2, min_time=0.02):
    """{name: median seconds per call}; one sample of each fn in turn, GPU synchronised before
    and after every sample; a sample repeats the call until it lasts min_time."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync_all(cp, torch)
    reps = {}
    for name, fn in fns.items():
        n = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            _sync_all(cp, torch)
            if time.perf_counter() - t0 >= min_time or n >= 1 << 12:
                break
            n *= 2
        reps[name] = n
    samples = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            _sync_all(cp, torch)
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            _sync_all(cp, torch)
            samples[name].append((time.perf_counter() - t0) / reps[name])
    for v in samples.values():
        _quality.record(v)
    return {k: statistics.median(v) for k, v in samples.items()}


def _row(label, t_ce, t_torch, unit_work=None, unit="GFLOP/s"):
    rate = lambda t: ("%.0f" % (unit_work / t / 1e9)) if unit_work and t else "-"  # noqa: E731
    return [label, "%.3f" % (t_ce * 1e3) if t_ce else "n/a", rate(t_ce),
            "%.3f" % (t_torch * 1e3) if t_torch else "n/a", rate(t_torch),
            "%.2f" % (t_torch / t_ce) if t_ce and t_torch else "-"]


def bench_gemm(cp, torch, n, rows):
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((n, n)).astype(np.float32)
    b_np = rng.standard_normal((n, n)).astype(np.float32)
    for name, ce_dt, t_dt in (("float32", ce.float32, "float32"),
                              ("float16", ce.float16, "float16"),
                              ("bfloat16", None, "bfloat16")):
        fns = {}
        a = b = None
        if ce_dt is not None:
            a = ce.tensor(a_np, device="cuda").to(ce_dt)
            b = ce.tensor(b_np, device="cuda").to(ce_dt)
            fns["ce"] = lambda: a @ b
        if torch is not None:
            ta = torch.tensor(a_np, device="cuda").to(getattr(torch, t_dt))
            tb = torch.tensor(b_np, device="cuda").to(getattr(torch, t_dt))
            fns["torch"] = lambda: ta @ tb
            if a is not None:     # validate against torch before timing
                want = (ta.float() @ tb.float()).cpu().numpy()
                got = (a @ b).float().cpu().numpy()
                tol = 2e-2 if name != "float32" else 1e-3
                err = np.abs(got - want).max() / np.abs(want).max()
                if not err < tol:
                    raise AssertionError("GEMM %s: relative error %.3g" % (name, err))
        t = interleaved(fns, cp, torch)
        rows.append(_row("GEMM %d %s%s" % (n, name, "" if ce_dt is not None else
                                           " (CuPy has no bfloat16)"),
                         t.get("ce"), t.get("torch"), flops))


def bench_softmax(cp, torch, R, C, rows):
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((R, C)).astype(np.float32)
    g_np = rng.standard_normal((R, C)).astype(np.float32)
    x = ce.tensor(x_np, device="cuda", requires_grad=True)
    g = ce.tensor(g_np, device="cuda")

    def run_ce():
        x.grad = None
        ce.nn.functional.softmax(x, -1).backward(g)
    fns = {"ce": run_ce}
    if torch is not None:
        tx = torch.tensor(x_np, device="cuda", requires_grad=True)
        tg = torch.tensor(g_np, device="cuda")

        def run_torch():
            tx.grad = None
            torch.softmax(tx, -1).backward(tg)
        fns["torch"] = run_torch
        run_ce()
        run_torch()
        err = np.abs(x.grad.cpu().numpy() - tx.grad.cpu().numpy()).max()
        if not err < 1e-5:
            raise AssertionError("softmax backward differs from torch by %.3g" % err)
    t = interleaved(fns, cp, torch)
    moved = 4.0 * R * C * 4       # x, y read/written forward; y, dy, dx backward (lower bound)
    rows.append(_row("softmax fwd+bwd %dx%d float32 (GB/s)" % (R, C), t["ce"], t.get("torch"),
                     moved))


def bench_adamw(cp, torch, total, rows):
    n_t = 100
    per = total // n_t
    rng = np.random.default_rng(2)
    init = [rng.standard_normal(per).astype(np.float32) for _ in range(2)]
    ps = [ce.tensor(init[0], device="cuda", requires_grad=True) for _ in range(n_t)]
    for p in ps:
        p.grad = ce.tensor(init[1], device="cuda")
    opt = ce.optim.AdamW(ps, lr=1e-3, weight_decay=0.01)
    fns = {"ce": opt.step}
    if torch is not None:
        tps = [torch.tensor(init[0], device="cuda", requires_grad=True) for _ in range(n_t)]
        for p in tps:
            p.grad = torch.tensor(init[1], device="cuda")
        try:
            topt = torch.optim.AdamW(tps, lr=1e-3, weight_decay=0.01, fused=True)
        except (TypeError, RuntimeError):
            topt = torch.optim.AdamW(tps, lr=1e-3, weight_decay=0.01)
        opt.step()
        topt.step()
        err = max(float(np.abs(a.detach().cpu().numpy() - b.detach().cpu().numpy()).max())
                  for a, b in zip(ps[:3], tps[:3]))
        if not err < 1e-6:
            raise AssertionError("AdamW step differs from torch by %.3g" % err)
        fns["torch"] = topt.step
    t = interleaved(fns, cp, torch, repeat=5)
    rows.append(_row("AdamW step %dM params float32 (GB/s, 28 B/param)" % (total // 10 ** 6),
                     t["ce"], t.get("torch"), 28.0 * per * n_t))


def bench_transformer(cp, torch, rows, quick):
    B, L, D, H = (8, 128, 256, 4) if quick else (16, 256, 512, 8)
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((B, L, D)).astype(np.float32)
    ce.manual_seed(0)
    layer = ce.nn.TransformerEncoderLayer(D, H, 4 * D, dropout=0.0, batch_first=True).to("cuda")
    opt = ce.optim.AdamW(layer.parameters(), lr=1e-4)
    x = ce.tensor(x_np, device="cuda")

    def step_ce():
        opt.zero_grad()
        layer(x).square().mean().backward()
        opt.step()
    fns = {"ce": step_ce}
    if torch is not None:
        tl = torch.nn.TransformerEncoderLayer(D, H, 4 * D, dropout=0.0,
                                              batch_first=True).cuda()
        note = ""
        try:
            tl.load_state_dict({k: torch.tensor(v.detach().cpu().numpy())
                                for k, v in layer.state_dict().items()})
        except Exception as e:     # names differ: compare speed only, say so
            note = " (weights not shared: %s)" % type(e).__name__
        topt = torch.optim.AdamW(tl.parameters(), lr=1e-4)
        tx = torch.tensor(x_np, device="cuda")

        def step_torch():
            topt.zero_grad()
            tl(tx).square().mean().backward()
            topt.step()
        fns["torch"] = step_torch
        if not note:
            a = float(layer(x).square().mean().item())
            b = float(tl(tx).square().mean().item())
            if not abs(a - b) <= 1e-4 * max(1.0, abs(b)):
                raise AssertionError("transformer loss %r vs torch %r" % (a, b))
    else:
        note = ""
    t = interleaved(fns, cp, torch, repeat=5)
    rows.append(_row("TransformerEncoderLayer train step B%d L%d D%d%s" % (B, L, D, note),
                     t["ce"], t.get("torch")))


def bench_amp(cp, torch, total, rows, quick):
    """GradScaler.unscale_ over `total` float32 gradients (100 tensors; one fused launch,
    against torch's _amp_foreach_non_finite_check_and_unscale_), and the transformer step of
    bench_transformer under autocast("cuda") float16 with a GradScaler."""
    n_t = 100
    per = total // n_t
    rng = np.random.default_rng(4)
    g0 = rng.standard_normal(per).astype(np.float32)
    ps = [ce.nn.Parameter(ce.zeros(per, device="cuda")) for _ in range(n_t)]
    for p in ps:
        p.grad = ce.tensor(g0, device="cuda")
    opt = ce.optim.SGD(ps, lr=0.1)
    scaler = ce.amp.GradScaler("cuda")
    one = np.float32(1.0)           # timed with 1.0, so the gradients stay as they are
    fns = {"ce": lambda: scaler._unscale_grads_(opt, one, False)}
    if torch is not None:
        tg = [torch.tensor(g0, device="cuda") for _ in range(n_t)]
        found = torch.zeros(1, device="cuda")
        inv1 = torch.ones(1, device="cuda")
        # validate once with a real scale and an inf in the last tensor
        half = torch.full((1,), 0.5, device="cuda")
        ps[-1].grad[per // 2] = float("inf")
        tg[-1][per // 2] = float("inf")
        got = scaler._unscale_grads_(opt, np.float32(0.5), False)
        torch._amp_foreach_non_finite_check_and_unscale_(tg, found, half)
        if got != {"cuda:0": float(found.item())} or float(found.item()) != 1.0:
            raise AssertionError("unscale found %r, torch %r" % (got, float(found.item())))
        for p, t in zip(ps[:2] + ps[-1:], tg[:2] + tg[-1:]):
            if not np.array_equal(p.grad.cpu().numpy(), t.cpu().numpy()):
                raise AssertionError("unscaled gradients differ from torch's")
        ps[-1].grad[per // 2] = 0.0
        tg[-1][per // 2] = 0.0
        fns["torch"] = lambda: torch._amp_foreach_non_finite_check_and_unscale_(tg, found, inv1)
    t = interleaved(fns, cp, torch, repeat=5)
    rows.append(_row("GradScaler unscale_ %dM grads float32 (GB/s, 8 B/grad)"
                     % (total // 10 ** 6), t["ce"], t.get("torch"), 8.0 * per * n_t))
    del ps, opt
    B, L, D, H = (8, 128, 256, 4) if quick else (16, 256, 512, 8)
    x_np = rng.standard_normal((B, L, D)).astype(np.float32)
    ce.manual_seed(0)
    layer = ce.nn.TransformerEncoderLayer(D, H, 4 * D, dropout=0.0, batch_first=True).to("cuda")
    opt = ce.optim.AdamW(layer.parameters(), lr=1e-4)
    sc = ce.amp.GradScaler("cuda")
    x = ce.tensor(x_np, device="cuda")

    def step_ce():
        opt.zero_grad()
        with ce.autocast("cuda"):
            loss = layer(x).square().mean()
        sc.scale(loss).backward()
        sc.step(opt)
        sc.update()
    fns = {"ce": step_ce}
    note = ""
    if torch is not None:
        tl = torch.nn.TransformerEncoderLayer(D, H, 4 * D, dropout=0.0,
                                              batch_first=True).cuda()
        try:
            tl.load_state_dict({k: torch.tensor(v.detach().cpu().numpy())
                                for k, v in layer.state_dict().items()})
        except Exception as e:
            note = " (weights not shared: %s)" % type(e).__name__
        topt = torch.optim.AdamW(tl.parameters(), lr=1e-4)
        tsc = torch.amp.GradScaler("cuda")
        tx = torch.tensor(x_np, device="cuda")

        def step_torch():
            topt.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = tl(tx).square().mean()
            tsc.scale(loss).backward()
            tsc.step(topt)
            tsc.update()
        fns["torch"] = step_torch
        if not note:
            with ce.autocast("cuda"):
                a = float(layer(x).square().mean().item())
            with torch.autocast("cuda", dtype=torch.float16):
                b = float(tl(tx).square().mean().item())
            if not abs(a - b) <= 2e-2 * max(1.0, abs(b)):
                raise AssertionError("autocast transformer loss %r vs torch %r" % (a, b))
    t = interleaved(fns, cp, torch, repeat=5)
    rows.append(_row("TransformerEncoderLayer autocast float16 + GradScaler step B%d L%d D%d%s"
                     % (B, L, D, note), t["ce"], t.get("torch")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    why = _device.cuda_missing_reason()
    if why is not None:
        msg = "## CUDA (bench_cuda.py)\n\nSkipped: %s.\n" % why
        print(msg)
        write_result("cuda", msg)
        return 0
    cp = _device.cuda_module()
    try:
        import torch
        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    name = ce.cuda.get_device_name(0)
    rows = []
    sections = [("gemm", lambda: bench_gemm(cp, torch, 1024 if args.quick else 4096, rows)),
                ("softmax", lambda: bench_softmax(cp, torch, *((1024, 4096) if args.quick
                                                             else (8192, 8192)), rows)),
                ("adamw", lambda: bench_adamw(cp, torch, 10 ** 7 if args.quick else 10 ** 8,
                                              rows)),
                ("transformer", lambda: bench_transformer(cp, torch, rows, args.quick)),
                ("amp", lambda: bench_amp(cp, torch, 10 ** 7 if args.quick else 10 ** 8, rows,
                                          args.quick))]
    failed = []
    for sec, fn in sections:
        try:
            fn()
        except Exception as e:
            traceback.print_exc()
            failed.append(sec)
            rows.append([sec + " FAILED: %s: %s" % (type(e).__name__, str(e)[:120]), "-", "-",
                         "-", "-", "-"])
        cp.get_default_memory_pool().free_all_blocks()
    md = ["## CUDA: cengine (CuPy storage) vs torch on %s" % name, "", machine_line(), "",
          "torch %s; medians of interleaved samples; ratio = torch time / cengine time (> 1: "
          "cengine faster)." % (torch.__version__ if torch is not None else "not installed"),
          "", md_table(["workload", "cengine ms", "cengine rate", "torch ms", "torch rate",
                        "ratio"], rows)]
    text = "\n".join(md) + "\n"
    print(text)
    write_result("cuda", text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
