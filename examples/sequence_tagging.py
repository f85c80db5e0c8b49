"""Tagging and classifying variable-length sequences with a packed bidirectional LSTM.

Generated data (no downloads): sequences of digits 0-9 with lengths 4..max_len. Two targets:
  - a tag per step: (previous digit + next digit) is odd (a digit outside the sequence counts as
    0), which needs context from both sides, so the LSTM is bidirectional;
  - a label per sequence: its first digit is larger than its last, read from the final states
    h_n of both directions (each sequence's own last step, thanks to packing).
Pieces: Embedding, pack_padded_sequence with enforce_sorted=False (batches are not sorted by
length), a 2-layer bidirectional nn.LSTM with dropout, pad_packed_sequence back to a padded
batch, a masked per-step cross-entropy (ignore_index on the padding) plus a sequence loss,
AdamW and gradient clipping.

    python examples/sequence_tagging.py [--steps 300] [--threads 2]
"""
import argparse
import time

import numpy as np

import cengine as ce
from cengine import nn
from cengine.nn import functional as F
from cengine.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD_TAG = -100


def make_batch(rng, batch, max_len):
    """(digits (B, T) int64, lengths list, tags (B, T) int64 with PAD_TAG, seq labels (B,))"""
    lengths = rng.integers(4, max_len + 1, size=batch)
    T = int(lengths.max())
    x = np.zeros((batch, T), np.int64)
    tags = np.full((batch, T), PAD_TAG, np.int64)
    labels = np.zeros(batch, np.int64)
    for b, L in enumerate(lengths):
        d = rng.integers(0, 10, size=L)
        x[b, :L] = d
        prev = np.concatenate([[0], d[:-1]])
        nxt = np.concatenate([d[1:], [0]])
        tags[b, :L] = (prev + nxt) % 2
        labels[b] = int(d[0] > d[-1])
    return ce.tensor(x), lengths.tolist(), ce.tensor(tags), ce.tensor(labels)


class Tagger(nn.Module):
    def __init__(self, emb=16, hidden=48):
        super().__init__()
        self.embed = nn.Embedding(10, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=2, bidirectional=True, batch_first=True,
                            dropout=0.1)
        self.tag_head = nn.Linear(2 * hidden, 2)
        self.seq_head = nn.Linear(2 * hidden, 2)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True,
                                      enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        final = ce.cat([h_n[-2], h_n[-1]], dim=1)   # last layer, both directions
        return self.tag_head(out), self.seq_head(final)


def accuracy(model, rng, batch, max_len):
    model.eval()
    with ce.no_grad():
        x, lengths, tags, labels = make_batch(rng, batch, max_len)
        tag_logits, seq_logits = model(x, lengths)
        pred = tag_logits.argmax(-1).numpy()
        t = tags.numpy()
        mask = t != PAD_TAG
        tag_acc = float((pred[mask] == t[mask]).mean())
        seq_acc = float((seq_logits.argmax(-1).numpy() == labels.numpy()).mean())
    model.train()
    return tag_acc, seq_acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        ce.set_num_threads(args.threads)
    ce.show_config()
    ce.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Tagger()
    opt = ce.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, lengths, tags, labels = make_batch(rng, args.batch, args.max_len)
        tag_logits, seq_logits = model(x, lengths)
        loss = F.cross_entropy(tag_logits.reshape(-1, 2), tags.reshape(-1),
                               ignore_index=PAD_TAG) + F.cross_entropy(seq_logits, labels)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.item()))
        if step % 50 == 0 or step == args.steps:
            print("step %4d  loss %.4f  (%.1f steps/s)" % (step, np.mean(losses[-50:]),
                                                          step / (time.perf_counter() - t0)))
    tag_acc, seq_acc = accuracy(model, np.random.default_rng(args.seed + 1), 256, args.max_len)
    print("held-out accuracy: per-step tags %.3f, first > last %.3f" % (tag_acc, seq_acc))
    return {"losses": losses, "tag_acc": tag_acc, "seq_acc": seq_acc}


if __name__ == "__main__":
    main()
