"""Checkpoints: cengine.save(obj, f) / cengine.load(f).

Format: one safetensors file. Every tensor (and numpy array) in `obj` is a safetensors entry,
named after its path in the object ("model.0.weight"; a flat state_dict is therefore a plain
safetensors file other tools can read). The rest of the structure (dicts, lists, tuples,
strings, numbers, bools, None) is JSON in the header's metadata under "cengine.structure".
Loading parses JSON and raw tensor bytes only: no pickle, no code from the file is ever run.

Writes to a path are atomic: the data goes to a temporary file in the same directory, is
flushed to disk, then renamed over the target (os.replace), so a crash leaves either the old
file or the new one, never half a file.
"""
import json
import os
import struct
import tempfile
from collections import OrderedDict

import numpy as np

__all__ = ["save", "load"]

_FORMAT = "cengine.format"
_STRUCT = "cengine.structure"
_VERSION = "1"


def _safetensors():
    try:
        import safetensors.numpy as sn
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("cengine.save/load need the 'safetensors' package "
                          "(pip install safetensors)") from e
    return sn


# ---------------------------------------------------------------------------- encoding
class _Encoder:
    def __init__(self):
        self.tensors = {}   # safetensors key -> contiguous ndarray
        self._by_id = {}    # id(ndarray) -> key (shared storage is written once)
        self._keep = []     # keep arrays alive so ids stay unique while encoding

    def _key(self, path):
        base = path or "tensor"
        key, n = base, 1
        while key in self.tensors:
            key = "%s#%d" % (base, n)
            n += 1
        return key

    def _array(self, arr, path):
        k = self._by_id.get(id(arr))
        if k is not None and self.tensors[k].shape == arr.shape:
            return k
        key = self._key(path)
        self.tensors[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        self._by_id[id(arr)] = key
        self._keep.append(arr)
        return key

    def encode(self, obj, path):
        from .tensor import Tensor
        from .dtypes import dtype as _ce_dtype
        from .nn.module import Module
        if obj is None or isinstance(obj, (bool, str)):
            return {"v": obj}
        if isinstance(obj, (int, float)):
            return {"v": obj}
        if isinstance(obj, Tensor):
            from .nn.parameter import Parameter
            if obj._data.dtype.kind not in "biuf":
                raise TypeError("cengine.save: tensors of dtype %s are not supported" % obj.dtype)
            node = {"tensor": self._array(obj._data, path)}
            if obj.requires_grad:
                node["rg"] = True
            if isinstance(obj, Parameter):
                node["param"] = True
            return node
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in "biuf":
                raise TypeError("cengine.save: arrays of dtype %s are not supported" % obj.dtype)
            return {"ndarray": self._array(obj, path)}
        if isinstance(obj, np.generic):
            return {"v": obj.item()}
        if isinstance(obj, _ce_dtype):
            return {"dtype": obj.name}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not (k is None or isinstance(k, (str, int, float, bool, tuple))):
                    raise TypeError("cengine.save: dict keys must be str, int, float, bool, None "
                                    "or tuples of those, got %s" % type(k).__name__)
                sub = k if isinstance(k, str) else str(k)
                items.append([self.encode(k, None), self.encode(v, _join(path, sub))])
            node = {"dict": items}
            if isinstance(obj, OrderedDict):
                node["ordered"] = True
            return node
        if isinstance(obj, (list, tuple)):
            enc = [self.encode(v, _join(path, str(i))) for i, v in enumerate(obj)]
            return {"list": enc} if isinstance(obj, list) else {"tuple": enc}
        if isinstance(obj, Module):
            raise TypeError("cengine.save: saving a whole Module is not supported (it would need "
                            "pickle); save module.state_dict() instead")
        raise TypeError("cengine.save: cannot save an object of type %s (supported: Tensor, "
                        "numpy array, dict, list, tuple, str, int, float, bool, None)"
                        % type(obj).__name__)


def _join(path, name):
    return name if not path else path + "." + name


# ---------------------------------------------------------------------------- decoding
def _decode(node, arrays, where):
    from .tensor import _wrap
    if not isinstance(node, dict) or len(node) == 0:
        raise RuntimeError("%s: malformed structure entry %r" % (where, node))
    if "v" in node:
        v = node["v"]
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise RuntimeError("%s: malformed value %r" % (where, v))
        return v
    if "tensor" in node or "ndarray" in node:
        key = node.get("tensor", node.get("ndarray"))
        if not isinstance(key, str) or key not in arrays:
            raise RuntimeError("%s: the structure refers to a missing tensor %r" % (where, key))
        arr = arrays[key]
        if "ndarray" in node:
            return arr
        if node.get("param"):
            from .nn.parameter import Parameter
            return Parameter(_wrap(arr), bool(node.get("rg", False)))
        t = _wrap(arr)
        if node.get("rg"):
            t.requires_grad_(True)
        return t
    if "dtype" in node:
        from . import dtypes
        d = getattr(dtypes, str(node["dtype"]), None)
        if not isinstance(d, dtypes.dtype):
            raise RuntimeError("%s: unknown dtype %r" % (where, node["dtype"]))
        return d
    if "dict" in node:
        items = node["dict"]
        if not isinstance(items, list):
            raise RuntimeError("%s: malformed dict entry" % where)
        out = OrderedDict() if node.get("ordered") else {}
        for kv in items:
            if not isinstance(kv, list) or len(kv) != 2:
                raise RuntimeError("%s: malformed dict item" % where)
            k = _decode(kv[0], arrays, where)
            if isinstance(k, list):
                k = tuple(k)
            out[k] = _decode(kv[1], arrays, where)
        return out
    if "list" in node or "tuple" in node:
        seq = node.get("list", node.get("tuple"))
        if not isinstance(seq, list):
            raise RuntimeError("%s: malformed sequence entry" % where)
        vals = [_decode(v, arrays, where) for v in seq]
        return vals if "list" in node else tuple(vals)
    raise RuntimeError("%s: unknown structure entry %r" % (where, sorted(node)))


def _header_metadata(data, where):
    """The __metadata__ dict of a safetensors blob (validated JSON; no code)."""
    if len(data) < 8:
        raise RuntimeError("%s is not a valid checkpoint: file too short (%d bytes; truncated?)"
                           % (where, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise RuntimeError("%s is not a valid checkpoint: header length %d exceeds the file size "
                           "(truncated or corrupt file)" % (where, n))
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RuntimeError("%s is not a valid checkpoint: corrupt header (%s)" % (where, e)) \
            from None
    if not isinstance(header, dict):
        raise RuntimeError("%s is not a valid checkpoint: corrupt header" % where)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise RuntimeError("%s is not a valid checkpoint: corrupt metadata" % where)
    return meta


# ---------------------------------------------------------------------------- API
def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Save obj (a state_dict or any nesting of dicts/lists/tuples of tensors, numpy arrays,
    strings, numbers, bools and None) to f: a path (written atomically) or a binary file."""
    sn = _safetensors()
    enc = _Encoder()
    structure = enc.encode(obj, "")
    meta = {_FORMAT: _VERSION, _STRUCT: json.dumps(structure, separators=(",", ":"))}
    if hasattr(f, "write"):
        f.write(sn.save(enc.tensors, metadata=meta))
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        os.close(fd)
        sn.save_file(enc.tensors, tmp, metadata=meta)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort; not every platform allows it)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **kwargs):
    """Load what save() wrote (tensors come back as cengine Tensors; Parameters and
    requires_grad are restored). A plain safetensors file loads as a dict of Tensors.
    Never executes code from the file; a truncated or corrupt file raises RuntimeError."""
    if map_location is not None:
        from .tensor import _check_device
        if not callable(map_location) and not isinstance(map_location, dict):
            _check_device(map_location)
    sn = _safetensors()
    if hasattr(f, "read"):
        data = f.read()
        where = "checkpoint"
    else:
        path = os.fspath(f)
        with open(path, "rb") as fh:
            data = fh.read()
        where = repr(path)
    meta = _header_metadata(data, where)
    try:
        arrays = sn.load(data)
    except Exception as e:  # safetensors raises its own error type on corrupt data
        raise RuntimeError("%s is not a valid checkpoint (truncated or corrupt safetensors "
                           "file): %s" % (where, e)) from None
    struct_json = meta.get(_STRUCT)
    if struct_json is None:
        from .tensor import _wrap
        return OrderedDict((k, _wrap(v)) for k, v in arrays.items())
    if meta.get(_FORMAT) != _VERSION:
        raise RuntimeError("%s was written by an unsupported cengine checkpoint format %r"
                           % (where, meta.get(_FORMAT)))
    try:
        structure = json.loads(struct_json)
    except ValueError as e:
        raise RuntimeError("%s is not a valid checkpoint: corrupt structure metadata (%s)"
                           % (where, e)) from None
    return _decode(structure, arrays, where + " is not a valid checkpoint")


# ---- torch.serialization's allow-list API (add_safe_globals / safe_globals) ----
# cengine's own files are safetensors (no pickle, nothing to allow), so these are accepted with
# torch's signatures; the names given are kept in _SAFE_GLOBALS for any loader that unpickles.
_SAFE_GLOBALS = []


def add_safe_globals(safe_globals):
    """Accept torch's allow-list call (a list of classes/functions, or (obj, "name") pairs)."""
    if not isinstance(safe_globals, (list, tuple)):
        raise TypeError("add_safe_globals expects a list of globals, got %s"
                        % type(safe_globals).__name__)
    for g in safe_globals:
        if g not in _SAFE_GLOBALS:
            _SAFE_GLOBALS.append(g)


def get_safe_globals():
    return list(_SAFE_GLOBALS)


def clear_safe_globals():
    del _SAFE_GLOBALS[:]


class safe_globals:
    """with safe_globals([...]): the globals are allowed inside the block only."""

    def __init__(self, safe_globals):
        if not isinstance(safe_globals, (list, tuple)):
            raise TypeError("safe_globals expects a list of globals, got %s"
                            % type(safe_globals).__name__)
        self._globals = list(safe_globals)

    def __enter__(self):
        self._saved = list(_SAFE_GLOBALS)
        add_safe_globals(self._globals)
        return self

    def __exit__(self, *exc):
        _SAFE_GLOBALS[:] = self._saved
        return False
