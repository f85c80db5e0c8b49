"""numpy's floating-point warnings off inside cengine's ops: torch prints nothing for log(0),
x / 0, 0 / 0, sqrt(-1) or an overflow to inf, so cengine must not leak numpy's RuntimeWarnings.

quiet_enter() returns a token for quiet_exit(token); both are cheap (no np.errstate object per
op). The user's own numpy error settings are untouched outside cengine's calls."""
import numpy as np

try:  # numpy >= 2: the error state is a context variable; set it to a prepared "ignore all"
    from numpy._core._ufunc_config import _extobj_contextvar as _cv
    with np.errstate(all="ignore"):
        _IGNORE = _cv.get()
except Exception:  # pragma: no cover - numpy 1.x
    _cv = None

if _cv is not None:
    def quiet_enter():
        return _cv.set(_IGNORE)

    def quiet_exit(token):
        _cv.reset(token)
else:  # pragma: no cover
    def quiet_enter():
        return np.seterr(all="ignore")

    def quiet_exit(token):
        np.seterr(**token)
