"""cengine.nn.modules: torch.nn.modules' layout, for code that imports layers from there
(`from torch.nn.modules.module import Module`, `torch.nn.modules.linear.Linear`, ...).
Every layer is the one cengine.nn exports; names added to cengine.nn appear here too."""
from . import (module, linear, activation, container, dropout, loss, normalization,  # noqa: F401
               batchnorm, sparse, transformer, flatten)


def __getattr__(name):
    import cengine.nn as _nn
    try:
        return getattr(_nn, name)
    except AttributeError:
        raise AttributeError("module 'cengine.nn.modules' has no attribute '%s'" % name) from None


def __dir__():
    import cengine.nn as _nn
    return sorted(set(globals()) | set(getattr(_nn, "__all__", dir(_nn))))
