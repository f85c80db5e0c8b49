"""Bindings to the C kernels (one compiled module, cengine._C._cengine)."""
try:
    from ._cengine import *  # noqa: F401,F403
    from . import _cengine as lib  # noqa: F401
except ModuleNotFoundError as _e:
    if _e.name != __name__ + "._cengine":
        raise
    import os as _os
    _pkg = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    _root = _os.path.dirname(_pkg)
    if _os.path.exists(_os.path.join(_root, "setup.py")):
        _msg = ("cengine's compiled kernels (cengine._C._cengine) are missing: Python imported "
                "cengine from its source tree at %s, where they have not been built. Either "
                "build them in place (cd %s && python setup.py build_ext --inplace, or "
                "pip install -e .), or run Python from another directory so the installed "
                "cengine is imported instead." % (_pkg, _root, ))
    else:
        _msg = ("cengine's compiled kernels (cengine._C._cengine) are missing from %s: the "
                "installation is incomplete. Reinstall it (pip install --force-reinstall "
                "cengine, or pip install . from a source tree; a C compiler is needed)." % _pkg)
    raise ImportError(_msg, name=_e.name) from None
