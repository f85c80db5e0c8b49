"""cengine.testing.assert_close: torch.testing.assert_close for cengine tensors (and python
numbers, sequences and mappings of them), with torch's default tolerances per dtype."""
import collections.abc as _abc

import numpy as np

__all__ = ["assert_close"]

# (rtol, atol) defaults, as torch's
_TOL = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
        "float64": (1e-7, 1e-7)}


def _as_tensor(x):
    from ..tensor import Tensor
    from ..ops.creation import tensor
    if isinstance(x, Tensor):
        return x
    if isinstance(x, float):   # a python float is a float64 scalar here, as in torch
        from ..dtypes import float64
        return tensor(x, dtype=float64)
    return tensor(x)


def _fail(msg, user_msg, path):
    where = "" if not path else " at item %s" % "".join("[%r]" % p for p in path)
    if user_msg is not None:
        raise AssertionError(user_msg if isinstance(user_msg, str) else user_msg(msg))
    raise AssertionError(msg + where)


def _compare(a, e, rtol, atol, equal_nan, check_dtype, msg, path):
    from ..tensor import Tensor
    if isinstance(e, _abc.Mapping) and not isinstance(e, Tensor):
        if not isinstance(a, _abc.Mapping) or set(a) != set(e):
            _fail("The keys of the mappings do not match", msg, path)
        for k in e:
            _compare(a[k], e[k], rtol, atol, equal_nan, check_dtype, msg, path + [k])
        return
    if isinstance(e, (list, tuple)) and not isinstance(a, Tensor):
        if not isinstance(a, (list, tuple)) or len(a) != len(e):
            _fail("The length of the sequences mismatch: %d != %d"
                  % (len(a) if hasattr(a, "__len__") else -1, len(e)), msg, path)
        for i, (x, y) in enumerate(zip(a, e)):
            _compare(x, y, rtol, atol, equal_nan, check_dtype, msg, path + [i])
        return
    scalar = not isinstance(e, Tensor) and not isinstance(a, Tensor)
    ta, te = _as_tensor(a), _as_tensor(e)
    if scalar and type(a) is not type(e) and check_dtype:
        _fail("The values for attribute 'type' do not match: %s != %s." % (type(a), type(e)),
              msg, path)
    if ta.shape != te.shape:
        _fail("The values for attribute 'shape' do not match: %r != %r." % (ta.shape, te.shape),
              msg, path)
    if check_dtype and ta.dtype != te.dtype:
        _fail("The values for attribute 'dtype' do not match: %r != %r." % (ta.dtype, te.dtype),
              msg, path)
    if rtol is None:
        names = (ta.dtype.name, te.dtype.name)
        rt = max(_TOL.get(n, (0.0, 0.0))[0] for n in names)
        at = max(_TOL.get(n, (0.0, 0.0))[1] for n in names)
    else:
        rt, at = rtol, atol
    x = np.asarray(ta._data, dtype=np.float64) if ta._data.dtype.kind in "fc" else ta._data
    y = np.asarray(te._data, dtype=np.float64) if te._data.dtype.kind in "fc" else te._data
    if x.dtype.kind == "b" or y.dtype.kind == "b":
        bad = x != y
    else:
        x = x.astype(np.float64)
        y = y.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isclose(x, y, rtol=rt, atol=at, equal_nan=equal_nan) | (x == y)
        bad = ~ok
    if not bad.any():
        return
    n_bad, n = int(bad.sum()), bad.size
    kind = "Scalars" if scalar else "Tensor-likes"
    if x.ndim == 0:
        if x.dtype.kind == "b":
            text = "%s are not equal!" % kind
        else:
            d = abs(float(x) - float(y))
            r = d / abs(float(y)) if float(y) != 0 else float("inf")
            text = ("%s are not close!\n\nExpected %s but got %s.\nAbsolute difference: %s (up to "
                    "%s allowed)\nRelative difference: %s (up to %s allowed)"
                    % (kind, float(y), float(x), d, at, r, rt))
        _fail(text, msg, path)
    kinds = (ta._data.dtype.kind, te._data.dtype.kind)
    ct = np.promote_types(ta._data.dtype, te._data.dtype) if kinds == ("f", "f") else np.float64
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = np.abs(ta._data.astype(ct) - te._data.astype(ct))   # in the inputs' dtype, as torch
        rel = diff / np.abs(te._data.astype(ct))
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = np.where(np.isnan(rel), np.inf, rel)
    ia = np.unravel_index(int(np.argmax(np.where(bad, diff, -1))), bad.shape)
    ir = np.unravel_index(int(np.argmax(np.where(bad, rel, -1))), bad.shape)
    text = ("%s are not close!\n\nMismatched elements: %d / %d (%.1f%%)\n"
            "Greatest absolute difference: %s at index %s (up to %s allowed)\n"
            "Greatest relative difference: %s at index %s (up to %s allowed)"
            % (kind, n_bad, n, 100.0 * n_bad / n, float(diff[ia]), tuple(int(i) for i in ia), at,
               float(rel[ir]), tuple(int(i) for i in ir), rt))
    _fail(text, msg, path)


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None,
                 equal_nan=False, check_device=True, check_dtype=True, check_layout=True,
                 check_stride=False, msg=None):
    """Raise AssertionError unless actual and expected are close: |a - e| <= atol + rtol * |e|
    elementwise, same shape and (with check_dtype) same dtype. rtol and atol go together;
    omitted, they default by dtype as in torch (float32: 1.3e-6 and 1e-5)."""
    if (rtol is None) != (atol is None):
        raise ValueError("Both 'rtol' and 'atol' must be either specified or omitted, but got no "
                         "%s." % ("rtol" if rtol is None else "atol"))
    _compare(actual, expected, rtol, atol, equal_nan, check_dtype, msg, [])
