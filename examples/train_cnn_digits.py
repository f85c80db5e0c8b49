"""The official PyTorch MNIST example's CNN, trained with cengine on scikit-learn's bundled
handwritten digits (nothing to download).

The network is the example's, unchanged: Conv2d(1, 32, 3) - ReLU - Conv2d(32, 64, 3) - ReLU -
max_pool2d(2) - Dropout(0.25) - flatten - Linear(9216, 128) - ReLU - Dropout(0.5) -
Linear(128, 10) - log_softmax, trained with nll_loss and a StepLR schedule like the original
(SGD with momentum by default; --optimizer adadelta is the original's Adadelta(lr=1.0), or adam).
The 8x8 digit images are upsampled to 28x28 (bilinear) so the layer sizes are
MNIST's; --size 8 trains on the images as they are (the flattened features are then 256).

    python examples/train_cnn_digits.py                   # 28x28, 8 epochs, >= 97% test accuracy
    python examples/train_cnn_digits.py --size 8 --epochs 10 --threads 1
"""
import argparse
import time

import numpy as np

import cengine as ce
from cengine import nn
from cengine.nn import functional as F


class Net(nn.Module):
    def __init__(self, flat=9216):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(flat, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = ce.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def upsample(images, size):
    """(n, 8, 8) -> (n, size, size), bilinear with aligned corners."""
    n, h, w = images.shape
    if size == h:
        return images
    pos = np.linspace(0, h - 1, size)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, h - 1)
    f = (pos - i0)[None, :, None]
    rows = images[:, i0, :] * (1 - f) + images[:, i1, :] * f
    f = (pos - i0)[None, None, :]
    return rows[:, :, i0] * (1 - f) + rows[:, :, i1] * f


def random_shift(x, rng, k):
    """shift each (1, S, S) image by up to k pixels in each direction (zero fill): the small
    training set (1437 digits) generalises better with it."""
    if k <= 0:
        return x
    n, _, S, _ = x.shape
    fill = x.min()
    padded = np.pad(x, ((0, 0), (0, 0), (k, k), (k, k)), constant_values=fill)
    dy, dx = rng.integers(0, 2 * k + 1, n), rng.integers(0, 2 * k + 1, n)
    rows = (dy[:, None] + np.arange(S))[:, :, None]
    cols = (dx[:, None] + np.arange(S))[:, None, :]
    return np.ascontiguousarray(padded[np.arange(n)[:, None, None], 0, rows, cols][:, None])


def load(size, seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = upsample(d.images.astype(np.float32) / 16.0, size)
    x = ((x - 0.1307) / 0.3081).astype(np.float32)[:, None]   # the example's normalisation
    return train_test_split(x, d.target.astype(np.int64), test_size=0.2, random_state=seed,
                            stratify=d.target)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=28, help="image side after upsampling (>= 8)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--optimizer", choices=["sgd", "adam", "adadelta"], default="sgd")
    ap.add_argument("--lr", type=float, default=None,
                    help="default 0.05 (SGD), 1e-3 (Adam), 1.0 (Adadelta)")
    ap.add_argument("--gamma", type=float, default=0.8, help="StepLR decay per epoch")
    ap.add_argument("--shift", type=int, default=None,
                    help="random shift augmentation in pixels (default size//14, 0 = off)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    args = ap.parse_args(argv)
    if args.threads:
        ce.set_num_threads(args.threads)
    ce.manual_seed(args.seed)
    ce.show_config()
    xtr, xte, ytr, yte = load(args.size, args.seed)
    side = ((args.size - 4) // 2)
    model = Net(64 * side * side)
    if args.optimizer == "adam":
        opt = ce.optim.Adam(model.parameters(), lr=args.lr or 1e-3)
    elif args.optimizer == "adadelta":
        opt = ce.optim.Adadelta(model.parameters(), lr=args.lr or 1.0)
    else:
        opt = ce.optim.SGD(model.parameters(), lr=args.lr or 0.05, momentum=0.9)
    sched = ce.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=args.gamma)
    print(model)
    print("train %d, test %d images of %dx%d; optimizer %s"
          % (len(ytr), len(yte), args.size, args.size, type(opt).__name__))
    rng = np.random.default_rng(args.seed)
    shift = args.size // 14 if args.shift is None else args.shift
    xte_t, yte_t = ce.tensor(xte), ce.tensor(yte)
    losses, steps, acc = [], 0, 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = rng.permutation(len(ytr))
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i:i + args.batch_size]
            data = ce.tensor(random_shift(xtr[idx], rng, shift))
            target = ce.tensor(ytr[idx])
            opt.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            steps += 1
            if args.max_steps and steps >= args.max_steps:
                break
        sched.step()
        model.eval()
        with ce.no_grad():
            out = model(xte_t)
            test_loss = F.nll_loss(out, yte_t, reduction="sum").item() / len(yte)
            acc = float((out.argmax(dim=1) == yte_t).float().mean().item())
        print("epoch %d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  (%.1f s)"
              % (epoch, np.mean(losses[-len(perm) // args.batch_size:]), test_loss, 100 * acc,
                 time.perf_counter() - t0), flush=True)
        if args.max_steps and steps >= args.max_steps:
            break
    return {"losses": losses, "test_acc": acc}


if __name__ == "__main__":
    main()
