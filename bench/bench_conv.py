"""Convolution workloads, cengine vs PyTorch, same weights, same data, 1 and 2 threads.

  mnist_cnn_step  the official MNIST example's CNN (Conv2d(1,32,3), Conv2d(32,64,3),
                  max_pool2d(2), dropout, Linear(9216,128), Linear(128,10), log_softmax +
                  nll_loss), batch 64 of 1x28x28 random images, forward + backward + SGD step
  conv1d_mfcc     Conv1d(13, 128, 5, padding=2) over MFCC-like frames (32, 13, 200),
                  forward + backward (input, weight and bias gradients)
  conv2d_3x3      Conv2d(32, 64, 3, padding=1) over (64, 32, 28, 28), forward + backward
  conv2d_3x3_56   the same over (64, 32, 56, 56)
  resnet_block    ResNet's basic block (conv3x3-BN-ReLU-conv3x3-BN + identity, ReLU), 64
                  channels, (16, 64, 56, 56), training mode, forward + backward

Results are validated first (outputs and gradients against torch in the same run, or the
first loss in eval mode for the CNN whose dropout masks differ), then timed with the samples
of cengine and torch taken in turn; medians; ratio = cengine / torch (lower is better).

    python bench/bench_conv.py [--quick] [--threads 1 2] [--workloads ...]
    python bench/bench_conv.py --profile [--threads 1 2]   # the basic block piece by piece
"""
import _env  # noqa: F401  (before numpy: OpenBLAS thread spin, see _env.py)
import argparse

import numpy as np

from _common import ce, torch, threads, machine_line, md_table, \
    write_result, copy_weights, time_steps, step_row, step_report


def mnist_cnn(lib):
    nn, F = lib.nn, lib.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = lib.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = self.dropout2(x)
            return F.log_softmax(self.fc2(x), dim=1)

    return Net()


def cnn_workload(rng):
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64).astype(np.int64)

    def make(lib, model):
        opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xt, yt = lib.tensor(x), lib.tensor(y)

        def step():
            loss = lib.nn.functional.nll_loss(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        def eval_loss():
            model.eval()
            with lib.no_grad():
                v = lib.nn.functional.nll_loss(model(xt), yt).item()
            model.train()
            return v
        return step, eval_loss

    def build(with_torch):
        ce.manual_seed(0)
        cm = mnist_cnn(ce)
        cstep, ceval = make(ce, cm)
        tstep = None
        if with_torch:
            tm = mnist_cnn(torch)
            copy_weights(cm, tm)
            tstep, teval = make(torch, tm)
            lc, lt = ceval(), teval()
            if not np.isclose(lc, lt, rtol=1e-4, atol=1e-4):
                raise SystemExit("mnist_cnn_step: first losses differ: cengine %.6f torch %.6f"
                                 % (lc, lt))
        return cstep, tstep
    return build


def layer_workload(rng, nd, cin, cout, k, padding, xshape):
    x = rng.standard_normal(xshape).astype(np.float32)

    def make(lib, mod):
        xt = lib.tensor(x, requires_grad=True)
        out_shape = tuple(mod(xt).shape)
        g = lib.tensor(np.random.default_rng(1).standard_normal(out_shape).astype(np.float32))

        def step():
            xt.grad = None
            mod.weight.grad = None
            mod.bias.grad = None
            y = mod(xt)
            y.backward(g)
            return y
        return step, xt, mod

    def build(with_torch):
        ce.manual_seed(0)
        cls = "Conv%dd" % nd
        cm = getattr(ce.nn, cls)(cin, cout, k, padding=padding)
        cstep, cx, _ = make(ce, cm)
        tstep = None
        if with_torch:
            tm = getattr(torch.nn, cls)(cin, cout, k, padding=padding)
            copy_weights(cm, tm)
            tstep, tx, _ = make(torch, tm)
            yc, yt = cstep(), tstep()
            for a, b in ((yc, yt), (cx.grad, tx.grad), (cm.weight.grad, tm.weight.grad),
                         (cm.bias.grad, tm.bias.grad)):
                a = a.detach().numpy()
                b = b.detach().numpy()
                if not np.allclose(a, b, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(b).max())):
                    raise SystemExit("%s: results differ from torch (max diff %g)"
                                     % (cls, np.abs(a - b).max()))
        return cstep, tstep
    return build


def basic_block(lib, c):
    """ResNet's basic block: conv3x3-BN-ReLU-conv3x3-BN, plus the input, then ReLU"""
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            out = nn.functional.relu(self.bn1(self.conv1(x)))
            return nn.functional.relu(self.bn2(self.conv2(out)) + x)
    return Block()


def block_workload(rng, xshape):
    x = rng.standard_normal(xshape).astype(np.float32)

    def make(lib, mod):
        xt = lib.tensor(x, requires_grad=True)

        def step():
            xt.grad = None
            for p in mod.parameters():
                p.grad = None
            y = mod(xt)
            y.sum().backward()
            return y
        return step, xt

    def build(with_torch):
        ce.manual_seed(0)
        cm = basic_block(ce, xshape[1])
        cstep, cx = make(ce, cm)
        tstep = None
        if with_torch:
            tm = basic_block(torch, xshape[1])
            copy_weights(cm, tm)
            tstep, tx = make(torch, tm)
            yc, yt = cstep(), tstep()
            # the output element by element; the gradients by their relative (Frobenius)
            # error: an inner ReLU whose input lies within float rounding of 0 may switch one
            # way in cengine and the other in torch, which changes that element's input
            # gradient by O(1) (and the weight gradient's sums by as much), a valid result
            # either way, while a wrong kernel moves the whole tensor (or a border of it:
            # ~1e-1 relative) far past 1e-3
            a, b = yc.detach().numpy(), yt.detach().numpy()
            if not np.allclose(a, b, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(b).max())):
                raise SystemExit("basic block: outputs differ from torch (max diff %g)"
                                 % np.abs(a - b).max())
            for what, a, b in (("input", cx.grad, tx.grad),
                               ("conv1 weight", cm.conv1.weight.grad, tm.conv1.weight.grad)):
                a, b = a.detach().numpy().astype(np.float64), b.detach().numpy()
                rel = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
                if not rel <= 1e-3:
                    raise SystemExit("basic block: %s gradients differ from torch (relative "
                                     "error %g, max diff %g)" % (what, rel, np.abs(a - b).max()))
        return cstep, tstep
    return build


def run(names, thread_counts, quick):
    rng = np.random.default_rng(0)
    workloads = {
        "mnist_cnn_step": cnn_workload(rng),
        "conv1d_mfcc": layer_workload(rng, 1, 13, 128, 5, 2, (32, 13, 200)),
        "conv2d_3x3": layer_workload(rng, 2, 32, 64, 3, 1, (64, 32, 28, 28)),
        "conv2d_3x3_56": layer_workload(rng, 2, 32, 64, 3, 1, (64, 32, 56, 56)),
        "resnet_block": block_workload(rng, (16, 64, 56, 56)),
    }
    rows = []
    for name in names:
        for nt in thread_counts:
            with threads(nt):
                cstep, tstep = workloads[name](torch is not None)
                rep, warm = (3, 1) if quick else (11, 2)
                tc, tt = time_steps(cstep, tstep, rep, warm)
            step_row(rows, name, nt, tc, tt, width=15)
    return step_report("Convolution", rows, "conv.png", "convolution step time")


def profile_pieces(thread_counts, quick):
    """The basic block's pieces timed alone, cengine and torch in turn (same data, results
    checked first): conv forward / backward-data / backward-weight, BatchNorm2d forward +
    backward, ReLU forward + backward, the residual add forward + backward."""
    from cengine import _C
    rng = np.random.default_rng(0)
    N, C, H = 16, 64, 56
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((C, C, 3, 3)) * 0.05).astype(np.float32)
    dy = rng.standard_normal((N, C, H, H)).astype(np.float32)
    xt, wt, dyt = torch.tensor(x), torch.tensor(w), torch.tensor(dy)
    geom = ((1, 1), (1, 1), (1, 1), 1)
    tb = torch.ops.aten.convolution_backward

    def tconv_bwd(mask):
        return lambda: tb(dyt, xt, wt, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
    cx, cdy = ce.tensor(x, requires_grad=True), ce.tensor(dy)
    tx = xt.clone().requires_grad_()
    cbn, tbn = ce.nn.BatchNorm2d(C), torch.nn.BatchNorm2d(C)
    pieces = [
        ("conv fwd", lambda: _C.conv2d_forward(x, w, None, *geom, (H, H)),
         lambda: torch.nn.functional.conv2d(xt, wt, None, 1, 1)),
        ("conv bwd-data", lambda: _C.conv2d_backward(dy, x, w, *geom, True, False, False),
         tconv_bwd([True, False, False])),
        ("conv bwd-weight", lambda: _C.conv2d_backward(dy, x, w, *geom, False, True, False),
         tconv_bwd([False, True, False])),
        ("BatchNorm2d fwd+bwd", lambda: cbn(cx).backward(cdy), lambda: tbn(tx).backward(dyt)),
        ("relu fwd+bwd", lambda: ce.nn.functional.relu(cx).backward(cdy),
         lambda: torch.relu(tx).backward(dyt)),
        ("add fwd+bwd", lambda: (cx + cx).backward(cdy), lambda: (tx + tx).backward(dyt)),
    ]
    # the kernels agree with torch before anything is timed
    np.testing.assert_allclose(pieces[0][1](), pieces[0][2]().numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(pieces[1][1]()[0], pieces[1][2]()[0].numpy(), rtol=1e-3,
                               atol=1e-3)
    np.testing.assert_allclose(pieces[2][1]()[1], pieces[2][2]()[1].numpy(), rtol=1e-3,
                               atol=2e-2)
    rows = []
    for nt in thread_counts:
        with threads(nt):
            for name, fc, ft in pieces:
                rep, warm = (3, 1) if quick else (9, 2)
                step_row(rows, name, nt, *time_steps(fc, ft, rep, warm), width=20)
    md = ("## ResNet basic block, piece by piece (16x64x56x56, median ms; ratio = cengine / "
          "torch)\n\n" + machine_line() + "\n\n")
    return md + md_table(["piece", "threads", "cengine ms", "torch ms", "ratio"], rows)


WORKLOADS = ["mnist_cnn_step", "conv1d_mfcc", "conv2d_3x3", "conv2d_3x3_56", "resnet_block"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workloads", nargs="+", default=WORKLOADS, choices=WORKLOADS)
    ap.add_argument("--profile", action="store_true",
                    help="time the basic block's pieces (needs torch) instead")
    args = ap.parse_args(argv)
    if args.profile:
        if torch is None:
            raise SystemExit("--profile compares with torch, which is not installed")
        md = profile_pieces(args.threads, args.quick)
        print(md)
        print("written", write_result("conv_profile", md))
        return
    md = run(args.workloads, args.threads, args.quick)
    print(md)
    print("written", write_result("conv", md))


if __name__ == "__main__":
    main()
