"""Bindings to the C kernels (one compiled module, cengine._C._cengine)."""
from ._cengine import *  # noqa: F401,F403
from . import _cengine as lib  # noqa: F401
