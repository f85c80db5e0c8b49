"""Utilities for variable-length sequences (torch.nn.utils.rnn): pad_sequence."""
import numpy as np

from cengine.autograd.function import Function
from cengine.tensor import Tensor

__all__ = ["pad_sequence"]


class _PadSequence(Function):
    """Stack sequences (L_i, *) into one padded array; backward slices the gradient back."""

    @staticmethod
    def forward(ctx, batch_first, padding_value, left, *seqs):
        max_len = max(s.shape[0] for s in seqs)
        trailing = seqs[0].shape[1:]
        dtype = seqs[0].dtype
        out = np.full((len(seqs), max_len) + trailing, padding_value, dtype=dtype)
        for i, s in enumerate(seqs):
            n = s.shape[0]
            if left:
                out[i, max_len - n:] = s
            else:
                out[i, :n] = s
        ctx.lens = [s.shape[0] for s in seqs]
        ctx.dtypes = [s.dtype for s in seqs]
        ctx.max_len = max_len
        ctx.batch_first = batch_first
        ctx.left = left
        if not batch_first:
            out = np.ascontiguousarray(np.swapaxes(out, 0, 1))
        return out

    @staticmethod
    def backward(ctx, grad):
        if not ctx.batch_first:
            grad = np.swapaxes(grad, 0, 1)
        grads = [None, None, None]
        for i, (n, dt) in enumerate(zip(ctx.lens, ctx.dtypes)):
            if not ctx.needs_input_grad[3 + i]:
                grads.append(None)
                continue
            g = grad[i, ctx.max_len - n:] if ctx.left else grad[i, :n]
            grads.append(np.ascontiguousarray(g, dtype=dt))
        return tuple(grads)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Pad a list of tensors shaped (L_i, *) to the longest length L and stack them:
    (L, B, *) by default, (B, L, *) with batch_first=True. padding_side='right' keeps each
    sequence at the start, 'left' at the end. The result has the dtype of the first sequence
    and is differentiable with respect to every sequence."""
    if padding_side not in ("left", "right"):
        raise RuntimeError("Expected padding_side to be one of left or right, but got %s."
                         % (padding_side,))
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    if not isinstance(sequences, (list, tuple)):
        sequences = list(sequences)
    if len(sequences) == 0:
        raise RuntimeError("received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError("pad_sequence(): expected a sequence of Tensors, but element %d is "
                            "%s" % (i, type(s).__name__))
        if s.dim() == 0:
            raise RuntimeError("pad_sequence(): sequence %d is a 0-d tensor; every sequence "
                               "needs at least one dimension (its length)" % i)
    trailing = tuple(sequences[0].shape[1:])
    for i, s in enumerate(sequences):
        if tuple(s.shape[1:]) != trailing:
            raise RuntimeError("pad_sequence(): all sequences must have the same trailing "
                               "dimensions: sequence 0 has shape %s but sequence %d has shape "
                               "%s" % (list(sequences[0].shape), i, list(s.shape)))
    return _PadSequence.apply(bool(batch_first), padding_value, padding_side == "left",
                              *sequences)
