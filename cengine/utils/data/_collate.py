"""default_collate / default_convert (torch.utils.data._utils.collate)."""
import collections.abc
import copy
import re

import numpy as np

from ...tensor import Tensor, _wrap

__all__ = ["default_collate", "default_convert", "collate", "default_collate_fn_map"]

np_str_obj_array_pattern = re.compile(r"[SaUO]")

default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
    "found {}")

_PAD_HINT = ("The samples of a batch must have the same shape to be stacked (e.g. sequences of "
             "different lengths cannot be). Pass a collate_fn to the DataLoader that pads or "
             "crops them, e.g. with cengine.nn.utils.rnn.pad_sequence(seqs, batch_first=True), "
             "or use batch_size=1.")


def _is_namedtuple(obj):
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def _path_str(path):
    if not path:
        return "the samples"
    s = "sample"
    for p in path:
        s += "[%r]" % (p,)
    return s


def _shape_str(shape):
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _check_same_shape(shapes, path, what):
    ref = shapes[0]
    for i, s in enumerate(shapes):
        if s != ref:
            raise RuntimeError(
                "default_collate: cannot stack %s of %s into a batch: %s 0 has shape %s but %s "
                "%d has shape %s. %s" % (what, _path_str(path), what[:-1], _shape_str(ref),
                                         what[:-1], i, _shape_str(s), _PAD_HINT))


# ---------------------------------------------------------------- per-type collate functions
def collate_tensor_fn(batch, *, collate_fn_map=None, _path=()):
    _check_same_shape([tuple(t._data.shape) for t in batch], _path, "tensors")
    if any(t.requires_grad for t in batch) or \
            any(t._data.dtype != batch[0]._data.dtype for t in batch):
        from ...ops.shape import stack
        return stack(list(batch), 0)
    return _wrap(np.stack([t._data for t in batch], 0))


def collate_numpy_array_fn(batch, *, collate_fn_map=None, _path=()):
    elem = batch[0]
    if np_str_obj_array_pattern.search(elem.dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(elem.dtype))
    _check_same_shape([tuple(np.shape(b)) for b in batch], _path, "arrays")
    return _wrap(np.stack([np.asarray(b) for b in batch], 0))


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None, _path=()):
    return _wrap(np.asarray(batch))


def collate_float_fn(batch, *, collate_fn_map=None, _path=()):
    return _wrap(np.asarray(batch, dtype=np.float64))


def collate_int_fn(batch, *, collate_fn_map=None, _path=()):
    # like torch.tensor(batch): int64 for ints, bool for bools, the default float dtype when
    # a float follows the first int (never a silent truncation)
    if all(type(b) is int for b in batch):
        return _wrap(np.asarray(batch, dtype=np.int64))
    from ...ops.creation import tensor
    return tensor(list(batch))


def collate_str_fn(batch, *, collate_fn_map=None, _path=()):
    return batch


default_collate_fn_map = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    np.memmap: collate_numpy_array_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def _call(fn, batch, collate_fn_map, path):
    if fn in _BUILTIN_FNS:
        return fn(batch, collate_fn_map=collate_fn_map, _path=path)
    return fn(batch, collate_fn_map=collate_fn_map)


_BUILTIN_FNS = {collate_tensor_fn, collate_numpy_array_fn, collate_numpy_scalar_fn,
                collate_float_fn, collate_int_fn, collate_str_fn}


def collate(batch, *, collate_fn_map=None, _path=()):
    """Collate a list of samples recursively; `collate_fn_map` maps an element type to the
    function that collates a list of such elements (looked up by exact type, then isinstance).
    """
    elem = batch[0]
    elem_type = type(elem)

    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return _call(collate_fn_map[elem_type], batch, collate_fn_map, _path)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return _call(collate_fn_map[collate_type], batch, collate_fn_map, _path)

    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_",
                                                                      "bytes_"):
        if isinstance(elem, np.generic):  # numpy scalar
            return collate_numpy_scalar_fn(batch)
    if isinstance(elem, collections.abc.Mapping):
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map,
                                       _path=_path + (key,)) for key in elem})
            return clone
        try:
            return elem_type({key: collate([d[key] for d in batch],
                                           collate_fn_map=collate_fn_map, _path=_path + (key,))
                              for key in elem})
        except TypeError:
            return {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map,
                                 _path=_path + (key,)) for key in elem}
    if _is_namedtuple(elem):
        return elem_type(*(collate(list(samples), collate_fn_map=collate_fn_map,
                                   _path=_path + (f,))
                           for f, samples in zip(elem._fields, zip(*batch))))
    if isinstance(elem, collections.abc.Sequence):
        it = iter(batch)
        elem_size = len(next(it))
        if not all(len(e) == elem_size for e in it):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            return [collate(list(samples), collate_fn_map=collate_fn_map, _path=_path + (i,))
                    for i, samples in enumerate(transposed)]
        try:
            return elem_type([collate(list(samples), collate_fn_map=collate_fn_map,
                                      _path=_path + (i,))
                              for i, samples in enumerate(transposed)])
        except TypeError:
            return [collate(list(samples), collate_fn_map=collate_fn_map, _path=_path + (i,))
                    for i, samples in enumerate(transposed)]
    raise TypeError(default_collate_err_msg_format.format(elem_type))


def default_collate(batch):
    """Turn a list of samples into a batch, like torch's default_collate:

    Tensors and numpy arrays are stacked along a new first dimension, Python floats become a
    float64 tensor, ints an int64 tensor, bools a bool tensor, strings/bytes stay a list, and
    dicts, namedtuples, tuples and lists are collated field by field (a tuple gives a list).
    Samples whose tensors differ in shape raise a RuntimeError naming the field and shapes."""
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    """Convert numpy arrays in (nested) data to cengine tensors without batching (used when
    automatic batching is off, batch_size=None)."""
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_",
                                                                      "bytes_"):
        if isinstance(data, np.ndarray) and \
                np_str_obj_array_pattern.search(data.dtype.str) is not None:
            return data
        if isinstance(data, (np.ndarray, np.generic)):
            return _wrap(np.asarray(data))
        return data
    if isinstance(data, collections.abc.Mapping):
        if isinstance(data, collections.abc.MutableMapping):
            clone = copy.copy(data)
            clone.update({key: default_convert(data[key]) for key in data})
            return clone
        try:
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:
            return {key: default_convert(data[key]) for key in data}
    if _is_namedtuple(data):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data

