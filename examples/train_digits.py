"""Train an MLP on scikit-learn's bundled handwritten digits (8x8 images, 10 classes) with cengine.

The PyTorch recipe with only the import changed: a custom Dataset, DataLoader, an MLP of
Linear/ReLU or SwiGLU blocks with Dropout, CrossEntropyLoss, AdamW, a LinearLR warm-up followed
by ReduceLROnPlateau, per-epoch validation, checkpoints and --resume.

    python examples/train_digits.py                 # train, save checkpoints/digits.safetensors
    python examples/train_digits.py --resume        # continue from the checkpoint
    python examples/train_digits.py --block swiglu --threads 1 --epochs 30
                                    # its own checkpoint: checkpoints/digits-swiglu.safetensors
    mpiexec -n 2 python examples/train_digits.py --ddp --threads 1   # data parallel over MPI

Each architecture (--block, --hidden) keeps its own checkpoint file, so runs of different models
never overwrite each other, and --resume refuses a checkpoint of another architecture.
The progress bar (tqdm) shows only when the output is a terminal; --no-progress turns it off.
"""
import argparse
import os
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import cengine as ce
from cengine import nn
from cengine.utils.data import DataLoader, Dataset

try:
    from tqdm import tqdm
except ImportError:  # the progress bar is optional
    tqdm = None


class DigitsDataset(Dataset):
    """(image as a float vector scaled to [0, 1], label) pairs."""

    def __init__(self, images, labels):
        self.x = ce.tensor(images.astype(np.float32) / 16.0)
        self.y = ce.tensor(labels.astype(np.int64))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class SwiGLUBlock(nn.Module):
    """down(silu(gate(x)) * up(x)), the LLaMA-style feed-forward block."""

    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.gate = nn.Linear(d_in, d_hidden)
        self.up = nn.Linear(d_in, d_hidden)
        self.down = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def make_model(block, hidden, dropout):
    if block == "swiglu":
        return nn.Sequential(SwiGLUBlock(64, hidden, hidden), nn.Dropout(dropout),
                             nn.Linear(hidden, 10))
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, 10))


def default_checkpoint(block, hidden):
    """One file per architecture; the default model keeps the historical name."""
    name = "digits" if block == "relu" else "digits-%s" % block
    if hidden != 256:
        name += "-h%d" % hidden
    return os.path.join("checkpoints", name + ".safetensors")


def evaluate(model, loader, loss_fn):
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    with ce.no_grad():
        for x, y in loader:
            logits = model(x)
            loss_sum += loss_fn(logits, y).item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
            total += len(y)
    model.train()
    return loss_sum / total, correct / total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--block", choices=["relu", "swiglu"], default="relu")
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None,
                   help="default: checkpoints/digits.safetensors for the default model, "
                        "checkpoints/digits-<block>[-h<hidden>].safetensors for the others")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimizer steps (smoke tests)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--ddp", action="store_true",
                   help="data-parallel over MPI: launch with mpiexec -n N (same global batch)")
    args = p.parse_args(argv)
    if args.checkpoint is None:
        args.checkpoint = default_checkpoint(args.block, args.hidden)
    arch = {"block": args.block, "hidden": args.hidden}

    rank, world = 0, 1
    if args.ddp:
        import cengine.distributed as dist
        dist.init_process_group("mpi")
        rank, world = dist.get_rank(), dist.get_world_size()
        if args.batch_size % world:
            sys.exit("--batch-size must be a multiple of the number of ranks (%d)" % world)
    log = print if rank == 0 else (lambda *a, **k: None)

    if args.threads:
        ce.set_num_threads(args.threads)
    if rank == 0:
        ce.show_config()
    ce.manual_seed(args.seed)

    digits = load_digits()
    x_trval, x_test, y_trval, y_test = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=args.seed, stratify=digits.target)
    x_train, x_val, y_train, y_val = train_test_split(
        x_trval, y_trval, test_size=0.125, random_state=args.seed, stratify=y_trval)
    train_ds = DigitsDataset(x_train, y_train)
    g = ce.Generator().manual_seed(args.seed)
    if args.ddp:   # each rank reads its own shard; batch_size / world per rank
        sampler = ce.utils.data.DistributedSampler(train_ds, world, rank, seed=args.seed)
        train_loader = DataLoader(train_ds, batch_size=args.batch_size // world, sampler=sampler)
    else:
        sampler = None
        train_loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, generator=g)
    val_loader = DataLoader(DigitsDataset(x_val, y_val), batch_size=256)
    test_loader = DataLoader(DigitsDataset(x_test, y_test), batch_size=256)
    log("data: %d train, %d validation, %d test samples" % (len(train_ds), len(y_val),
                                                               len(y_test)))

    model = net = make_model(args.block, args.hidden, args.dropout)
    if args.ddp:   # net: what is trained; model: the plain module, saved and evaluated
        net = nn.parallel.DistributedDataParallel(model)
        ce.manual_seed(args.seed + rank)   # (rank 0's weights were broadcast) own dropout masks
    loss_fn = nn.CrossEntropyLoss()
    opt = ce.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-2)
    warmup_steps = max(1, args.warmup_epochs * len(train_loader))
    warmup = ce.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=warmup_steps)
    plateau = ce.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)

    start_epoch, step = 0, 0
    if args.resume:
        have = os.path.exists(args.checkpoint)
        if args.ddp:   # every rank leaves together (one exiting alone would leave the others waiting)
            found = [None] * world
            dist.all_gather_object(found, have)
            have = all(found)
        if not have:
            sys.exit("no checkpoint at %s to resume from" % args.checkpoint)
        ck = ce.load(args.checkpoint)
        saved_arch = ck.get("arch", {"block": "relu", "hidden": args.hidden})
        if saved_arch != arch:
            sys.exit("%s holds a %s model with hidden=%s; resume it with --block %s --hidden %s, "
                     "or pick another --checkpoint" % (args.checkpoint, saved_arch["block"],
                                                       saved_arch["hidden"], saved_arch["block"],
                                                       saved_arch["hidden"]))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        warmup.load_state_dict(ck["warmup"])
        plateau.load_state_dict(ck["plateau"])
        start_epoch, step = ck["epoch"], ck["step"]
        g.set_state(ck["loader_rng"])
        ce.set_rng_state(ck["rng"])  # dropout masks continue where they stopped
        log("resumed from %s at epoch %d" % (args.checkpoint, start_epoch))

    t0 = time.perf_counter()
    losses = []
    for epoch in range(start_epoch, args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        it = train_loader
        if tqdm is not None and not args.no_progress and rank == 0 and sys.stderr.isatty():
            it = tqdm(train_loader, desc="epoch %d" % (epoch + 1), leave=False)
        running = 0.0
        for x, y in it:
            loss = loss_fn(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step < warmup_steps:
                warmup.step()
            step += 1
            losses.append(loss.item())
            running += losses[-1]
            if args.max_steps is not None and step >= args.max_steps:
                break
        val_loss, val_acc = evaluate(model, val_loader, loss_fn)
        if step >= warmup_steps:
            plateau.step(val_loss)
        log("epoch %2d  train loss %.4f  val loss %.4f  val acc %.4f  lr %.2e"
              % (epoch + 1, running / len(train_loader), val_loss, val_acc,
                 opt.param_groups[0]["lr"]))
        if rank == 0:
            os.makedirs(os.path.dirname(args.checkpoint) or ".", exist_ok=True)
            ce.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "warmup": warmup.state_dict(), "plateau": plateau.state_dict(),
                     "epoch": epoch + 1, "step": step, "loader_rng": g.get_state(),
                     "rng": ce.get_rng_state(), "arch": arch},
                    args.checkpoint)
        if args.max_steps is not None and step >= args.max_steps:
            break
    test_loss, test_acc = evaluate(model, test_loader, loss_fn)
    log("test loss %.4f  test accuracy %.4f  (%.1f s)" % (test_loss, test_acc,
                                                            time.perf_counter() - t0))
    return {"test_acc": test_acc, "losses": losses}


if __name__ == "__main__":
    main()
