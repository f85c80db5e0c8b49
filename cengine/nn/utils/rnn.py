"""Utilities for variable-length sequences (torch.nn.utils.rnn): pad_sequence, PackedSequence,
pack_padded_sequence, pad_packed_sequence, pack_sequence, unpack_sequence, unpad_sequence,
invert_permutation."""
from collections import namedtuple

import numpy as np

from ... import dtypes as _dt

from cengine.autograd.function import Function
from cengine.dtypes import torch_type_name
from cengine.tensor import Tensor, _wrap

__all__ = ["pad_sequence", "PackedSequence", "pack_padded_sequence", "pad_packed_sequence",
           "pack_sequence", "unpack_sequence", "unpad_sequence", "invert_permutation"]


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


# ---- packed sequences -------------------------------------------------------------------------
def invert_permutation(permutation):
    """The inverse of a permutation tensor (None stays None)."""
    if permutation is None:
        return None
    p = np.asarray(permutation._data if isinstance(permutation, Tensor) else permutation,
                   dtype=np.int64)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.shape[0], dtype=np.int64)
    return _wrap(inv)


_PackedSequenceBase = namedtuple("PackedSequence",
                                 ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


class PackedSequence(_PackedSequenceBase):
    """A batch of variable-length sequences packed time step by time step (torch's layout):
    data (sum(lengths), *) holds step 0 of every sequence, then step 1 of those still running,
    ...; batch_sizes (T,) int64 counts the sequences at each step (non-increasing). The
    sequences are stored longest first: sorted_indices[i] is the original batch index of packed
    sequence i and unsorted_indices its inverse (both None when the input was already sorted).
    Build one with pack_padded_sequence or pack_sequence rather than by hand."""
    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            if not isinstance(data, (list, tuple)) or len(data) != 2:
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def cpu(self, *args, **kwargs):
        return self.to("cpu")

    def double(self):
        return self.to(dtype=_dtypes().float64)

    def float(self):
        return self.to(dtype=_dtypes().float32)

    def long(self):
        return self.to(dtype=_dtypes().int64)

    def int(self):
        return self.to(dtype=_dtypes().int32)

    def bool(self):
        return self.to(dtype=_dtypes().bool)

    @property
    def is_cuda(self):
        return bool(getattr(self.data, "is_cuda", False))

    def is_pinned(self):
        return False


def _dtypes():
    import cengine
    return cengine


def _as_lengths(lengths):
    if isinstance(lengths, Tensor):
        a = lengths._data
        if a.ndim != 1 or a.dtype.kind not in "iu":
            kind = torch_type_name(a.dtype)
            raise RuntimeError("'lengths' argument should be a 1D CPU int64 tensor, but got %dD "
                               "cpu %s tensor" % (a.ndim, kind))
        return a.astype(np.int64)
    a = np.asarray(lengths)
    if a.ndim != 1:
        raise RuntimeError("'lengths' argument should be a 1D CPU int64 tensor, but got %dD cpu "
                           "Long tensor" % a.ndim)
    if a.size and a.dtype.kind not in "iu":
        if _dt.is_floating(a.dtype) and np.all(a == np.floor(a)):
            return a.astype(np.int64)
        raise TypeError("lengths must be integers, got %s" % (a.dtype,))
    return a.astype(np.int64)


def _batch_sizes(lengths):
    """batch_sizes (T,) of lengths sorted in decreasing order"""
    T = int(lengths[0])
    return (lengths[None, :] > np.arange(T)[:, None]).sum(1).astype(np.int64)


def _packed_rows(batch_sizes, total, batch_first):
    """row of each packed element in the flattened padded array (T, N) or (N, T)"""
    T = batch_sizes.shape[0]
    steps = np.repeat(np.arange(T, dtype=np.int64), batch_sizes)
    starts = np.concatenate([[0], np.cumsum(batch_sizes)[:-1]]).astype(np.int64)
    seq = np.arange(steps.shape[0], dtype=np.int64) - np.repeat(starts, batch_sizes)
    N = int(batch_sizes[0]) if T else 0
    return seq * total + steps if batch_first else steps * N + seq


class _Pack(Function):
    """data (S, *) = the rows `idx` of the padded input flattened over its first two dims"""

    @staticmethod
    def forward(ctx, x, idx):
        flat = x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])
        ctx.shape, ctx.idx = x.shape, idx
        return np.ascontiguousarray(flat[idx])

    @staticmethod
    def backward(ctx, g):
        shape = ctx.shape
        full = np.zeros((shape[0] * shape[1],) + shape[2:], g.dtype)
        full[ctx.idx] = g
        return full.reshape(shape), None


class _Unpack(Function):
    """padded (A, B, *) filled with padding_value and the packed rows at `idx`"""

    @staticmethod
    def forward(ctx, data, idx, A, B, padding_value):
        out = np.full((A * B,) + data.shape[1:], padding_value, dtype=data.dtype)
        out[idx] = data
        ctx.idx = idx
        return out.reshape((A, B) + data.shape[1:])

    @staticmethod
    def backward(ctx, g):
        flat = g.reshape((-1,) + g.shape[2:])
        return np.ascontiguousarray(flat[ctx.idx]), None, None, None, None


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences with the
    given lengths into a PackedSequence. enforce_sorted=True expects lengths in decreasing
    order; False sorts the batch first and records the permutation."""
    ln = _as_lengths(lengths)
    sorted_indices = None
    if not enforce_sorted:
        order = np.argsort(-ln, kind="stable").astype(np.int64)
        ln = ln[order]
        sorted_indices = _wrap(order)
        input = input.index_select(0 if batch_first else 1, sorted_indices)
    if input.dim() < 2:
        raise RuntimeError("pack_padded_sequence: expected a padded input with at least 2 "
                           "dimensions, got %dD" % input.dim())
    T, B = (input.shape[1], input.shape[0]) if batch_first else (input.shape[0], input.shape[1])
    if ln.shape[0] != B:
        raise RuntimeError("Expected `len(lengths)` to be equal to batch_size, but got %d "
                           "(batch_size=%d)" % (ln.shape[0], B))
    if B and np.any(np.diff(ln) > 0):
        raise RuntimeError(
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
            "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
            "sidestep this requirement if you do not need ONNX exportability.")
    if B == 0 or ln[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    if ln[0] > T:
        raise RuntimeError("pack_padded_sequence: the longest length (%d) exceeds the padded "
                           "sequence length (%d)" % (ln[0], T))
    bs = _batch_sizes(ln)
    idx = _packed_rows(bs, T, batch_first)
    data = _Pack.apply(input, idx)
    return PackedSequence(data, _wrap(bs), sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Inverse of pack_padded_sequence: returns (padded, lengths) with padded (T, B, *) (or
    (B, T, *) with batch_first) in the original batch order and lengths an int64 tensor.
    total_length pads to that many steps (at least the longest sequence)."""
    data, batch_sizes = sequence.data, sequence.batch_sizes
    bs = np.asarray(batch_sizes._data if isinstance(batch_sizes, Tensor) else batch_sizes,
                    dtype=np.int64)
    T = bs.shape[0]
    if total_length is not None:
        if total_length < T:
            raise ValueError("Expected total_length to be at least the length of the longest "
                             "sequence in input, but got total_length=%d and max sequence "
                             "length being %d" % (total_length, T))
        T = int(total_length)
    N = int(bs[0])
    idx = _packed_rows(bs, T, batch_first)
    A, B = (N, T) if batch_first else (T, N)
    padded = _Unpack.apply(data, idx, A, B, padding_value)
    lengths = (bs[None, :] > np.arange(N)[:, None]).sum(1).astype(np.int64)
    if sequence.unsorted_indices is not None:
        un = sequence.unsorted_indices
        padded = padded.index_select(0 if batch_first else 1, un)
        lengths = lengths[np.asarray(un._data, dtype=np.int64)]
    return padded, _wrap(lengths)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of tensors (L_i, *) into a PackedSequence (pad_sequence, then
    pack_padded_sequence)."""
    lengths = [int(v.shape[0]) for v in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The list of tensors (L_i, *) a PackedSequence holds, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return [padded[i][:int(l)] for i, l in enumerate(lengths._data)]


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of tensors (L_i, *) in a padded batch (T, B, *) (or (B, T, *) with
    batch_first), cut to their lengths."""
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    ln = _as_lengths(lengths)
    if ln.shape[0] != padded_sequences.shape[0]:
        raise RuntimeError("unpad_sequence: got %d lengths for a batch of %d sequences"
                           % (ln.shape[0], padded_sequences.shape[0]))
    return [padded_sequences[i][:int(l)] for i, l in enumerate(ln)]
