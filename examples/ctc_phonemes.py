"""A phoneme recogniser trained with CTC on a generated speech-like data set, written with
cengine alone: nn.CTCLoss(blank=0, reduction='mean', zero_infinity=True) for training, the CTC
beam-search decoder (cengine.ctcdecode.CTCBeamDecoder, ctcdecode's interface) and a greedy
decoder for evaluation, phoneme error rate (PER = Levenshtein distance / reference length) on a
held-out split.

Data (made on the fly, deterministic from --seed, no downloads): utterances are random phoneme
sequences (no phoneme twice in a row, as a lexicon would give); each phoneme has an onset and a
steady-state template of 13 "MFCC" coefficients; a phoneme lasts 2-7 frames gliding from its
onset to its steady state into the next phoneme; silence pads both ends; every utterance has its
own speaker offset and gain, and frame noise on top. The model: a Linear front end over a window
of stacked frames (+-4 frames), then an encoder (--encoder mlp: two GELU layers with LayerNorm
and residuals; --encoder lstm: a bidirectional nn.LSTM where cengine has one; --encoder
transformer: a TransformerEncoder; both slower), a Linear to the phoneme classes and
log_softmax; AdamW with a one-cycle learning-rate schedule.

    python examples/ctc_phonemes.py [--epochs 6] [--threads 2] [--encoder mlp|lstm|transformer]
"""
import argparse
import math
import sys
import time

import numpy as np

import cengine as ce
from cengine import nn
from cengine.ctcdecode import CTCBeamDecoder, greedy_decode

PHONEMES = ["_", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "EH", "ER", "EY", "F", "G",
            "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "P", "R", "S", "SH", "T", "UW",
            "V", "W", "Y", "Z"]   # index 0 is the CTC blank
NFEAT = 13
CONTEXT = 4


class SpeechLikeData:
    """Phoneme sequences rendered as noisy 13-dim frame sequences (see the module docstring)."""

    def __init__(self, n, seed, min_len=4, max_len=14):
        rng = np.random.default_rng(seed)
        trng = np.random.default_rng(1234)   # the phoneme templates are the same for every split
        P = len(PHONEMES)
        self.onset = trng.standard_normal((P, NFEAT)) * 1.2
        self.steady = trng.standard_normal((P, NFEAT)) * 1.2
        self.silence = trng.standard_normal(NFEAT) * 0.3
        self.feats, self.labels = [], []
        for _ in range(n):
            L = int(rng.integers(min_len, max_len + 1))
            seq = []
            while len(seq) < L:
                p = int(rng.integers(1, P))
                if not seq or p != seq[-1]:
                    seq.append(p)
            frames = [self.silence] * int(rng.integers(2, 7))
            for i, p in enumerate(seq):
                d = int(rng.integers(2, 8))
                nxt = self.onset[seq[i + 1]] if i + 1 < L else self.silence
                for k in range(d):
                    a = k / max(1, d - 1)
                    if a < 0.5:   # onset -> steady state
                        f = self.onset[p] * (1 - 2 * a) + self.steady[p] * 2 * a
                    else:         # steady state, gliding a little towards the next phoneme
                        f = self.steady[p] * (1.3 - 0.6 * a) + nxt * (0.6 * a - 0.3)
                    frames.append(f)
            frames += [self.silence] * int(rng.integers(2, 7))
            x = np.array(frames)
            x = x * rng.uniform(0.8, 1.25) + rng.standard_normal(NFEAT) * 0.3   # speaker
            x = x + rng.standard_normal(x.shape) * 0.7                           # noise
            self.feats.append(x.astype(np.float32))
            self.labels.append(seq)

    def __len__(self):
        return len(self.feats)


def stack_frames(x, k=CONTEXT):
    """(T, F) -> (T, (2k+1)F): every frame with its k neighbours on each side (edges repeated)"""
    T = x.shape[0]
    idx = np.clip(np.arange(T)[:, None] + np.arange(-k, k + 1)[None, :], 0, T - 1)
    return x[idx].reshape(T, -1)


def batches(data, idx, batch_size):
    """-> (stacked frames (N, T, (2k+1)F), frame counts, padded targets (N, S), target lengths)"""
    for i in range(0, len(idx), batch_size):
        b = idx[i:i + batch_size]
        xs = [stack_frames(data.feats[j]) for j in b]
        T = max(len(x) for x in xs)
        X = np.zeros((len(b), T, xs[0].shape[1]), np.float32)
        for n, x in enumerate(xs):
            X[n, :len(x)] = x
        tl = np.array([len(data.labels[j]) for j in b], np.int64)
        Y = np.zeros((len(b), tl.max()), np.int64)
        for n, j in enumerate(b):
            Y[n, :tl[n]] = data.labels[j]
        yield X, np.array([len(x) for x in xs], np.int64), Y, tl


class AcousticModel(nn.Module):
    def __init__(self, n_in, n_classes, d=256, encoder="mlp", layers=2):
        super().__init__()
        self.front = nn.Linear(n_in, d)
        self.encoder_kind = encoder
        if encoder == "mlp":
            self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU())
                                         for _ in range(layers)])
        elif encoder == "lstm":
            if not hasattr(nn, "LSTM"):
                raise ValueError("--encoder lstm needs nn.LSTM, which this cengine lacks")
            self.encoder = nn.LSTM(d, d // 2, num_layers=layers, batch_first=True,
                                   bidirectional=True)
        elif encoder == "transformer":
            layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=2 * d, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=layers)
        else:
            raise ValueError("encoder must be 'mlp', 'lstm' or 'transformer', got %r" % encoder)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, n_classes)

    def forward(self, x, lengths=None):   # x (N, T, F) -> log-probabilities (N, T, C)
        h = nn.functional.gelu(self.front(x))
        if self.encoder_kind == "mlp":
            for blk in self.blocks:
                h = h + blk(h)
        elif self.encoder_kind == "lstm":
            h = self.encoder(h)[0]
        else:
            mask = None
            if lengths is not None:
                mask = ce.tensor(np.arange(x.shape[1])[None, :] >= np.asarray(lengths)[:, None])
            h = self.encoder(h, src_key_padding_mask=mask)
        return self.out(self.norm(h)).log_softmax(-1)


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def per(hyps, refs):
    return sum(edit_distance(h, r) for h, r in zip(hyps, refs)) / max(1, sum(len(r) for r in refs))


def evaluate(model, data, decoder, batch_size=64):
    """-> (greedy PER, beam PER, example (reference, greedy, beam))"""
    model.eval()
    g_h, b_h, refs = [], [], []
    with ce.no_grad():
        for X, il, Y, tl in batches(data, np.arange(len(data)), batch_size):
            lp = model(ce.tensor(X), il).numpy()
            g_h += greedy_decode(lp, il, blank=0)
            r, _, _, ol = decoder.decode(lp, il)
            r, ol = r.numpy(), ol.numpy()
            b_h += [r[n, 0, :ol[n, 0]].tolist() for n in range(len(il))]
            refs += [Y[n, :tl[n]].tolist() for n in range(len(il))]
    model.train()
    return per(g_h, refs), per(b_h, refs), (refs[0], g_h[0], b_h[0])


def names(seq):
    return " ".join(PHONEMES[p] for p in seq)


def progress(iterable, total, desc, enabled):
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--test-size", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--encoder", default="mlp", choices=["mlp", "lstm", "transformer"])
    ap.add_argument("--beam-width", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        ce.set_num_threads(args.threads)
    ce.show_config()
    ce.manual_seed(args.seed)
    show = not args.no_progress and sys.stderr.isatty()
    t0 = time.time()
    train = SpeechLikeData(args.train_size, seed=args.seed + 1)
    test = SpeechLikeData(args.test_size, seed=args.seed + 2)
    print("data: %d train / %d test utterances, %d-%d frames, %d phonemes + blank (%.1f s)"
          % (len(train), len(test), min(len(x) for x in train.feats),
             max(len(x) for x in train.feats), len(PHONEMES) - 1, time.time() - t0))
    model = AcousticModel(NFEAT * (2 * CONTEXT + 1), len(PHONEMES), encoder=args.encoder)
    decoder = CTCBeamDecoder(PHONEMES, blank_id=0, beam_width=args.beam_width,
                             num_processes=ce.get_num_threads(), log_probs_input=True)
    ctc = nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)
    g0, b0, _ = evaluate(model, test, decoder)
    print("untrained: PER greedy %.3f, beam %.3f" % (g0, b0))
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    opt = ce.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = ce.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total,
                                             pct_start=0.15)
    rng = np.random.default_rng(args.seed)
    losses, step = [], 0
    t0 = time.time()
    for epoch in range(args.epochs):
        it = batches(train, rng.permutation(len(train)), args.batch_size)
        bar = progress(it, steps_per_epoch, "epoch %d" % (epoch + 1), show)
        for X, il, Y, tl in bar:
            lp = model(ce.tensor(X), il)                        # (N, T, C)
            loss = ctc(lp.transpose(0, 1), ce.tensor(Y), ce.tensor(il), ce.tensor(tl))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss="%.3f" % losses[-1])
            if step >= total:
                break
        print("epoch %d: loss %.3f (%.0f s)" % (epoch + 1, np.mean(losses[-steps_per_epoch:]),
                                               time.time() - t0), flush=True)
        if step >= total:
            break
    g1, b1, (ref, gh, bh) = evaluate(model, test, decoder)
    print("trained (%d steps, %.0f s): PER greedy %.3f, beam %.3f (untrained %.3f / %.3f)"
          % (step, time.time() - t0, g1, b1, g0, b0))
    print("  reference: %s\n  greedy:    %s\n  beam:      %s" % (names(ref), names(gh), names(bh)))
    return {"losses": losses, "per_untrained": (g0, b0), "per_greedy": g1, "per_beam": b1}


if __name__ == "__main__":
    main()
