"""cengine.jit: torch.jit's decorators for eager code. cengine has no TorchScript compiler:
script/trace return the function or module unchanged (it runs eagerly on cengine's kernels, as
a torch model does when scripting is turned off), with a one-time note; saving or loading a
TorchScript archive is refused with what to use instead."""
import warnings

__all__ = ["script", "trace", "ignore", "unused", "export", "is_scripting", "is_tracing",
           "save", "load", "Final"]

_noted = [False]


def _note(what):
    if not _noted[0]:
        _noted[0] = True
        warnings.warn("cengine.jit.%s returns its argument unchanged: cengine runs eagerly and has "
                      "no TorchScript compiler (this note is shown once)." % what, UserWarning,
                      stacklevel=3)


def script(obj, optimize=None, _frames_up=0, _rcb=None, example_inputs=None):
    if not callable(obj):
        raise RuntimeError("script(): expected a function, a class or an nn.Module, got %s"
                           % type(obj).__name__)
    _note("script")
    return obj


def trace(func, example_inputs=None, optimize=None, check_trace=True, check_inputs=None,
          check_tolerance=1e-05, strict=True, _force_outplace=False, _module_class=None,
          _compilation_unit=None, example_kwarg_inputs=None, _store_inputs=True):
    if not callable(func):
        raise RuntimeError("trace(): expected a function or an nn.Module, got %s"
                           % type(func).__name__)
    _note("trace")
    return func


def ignore(drop=False, **kwargs):
    if callable(drop):
        return drop
    return lambda fn: fn


def unused(fn):
    return fn


def export(fn):
    return fn


def is_scripting():
    return False


def is_tracing():
    return False


def save(m, f, _extra_files=None):
    raise RuntimeError("cengine cannot write TorchScript archives: save the weights with "
                       "cengine.save(model.state_dict(), path) and rebuild the model in Python")


def load(f, map_location=None, _extra_files=None):
    raise RuntimeError("cengine cannot read TorchScript archives (they hold compiled code): load a "
                       "state_dict saved with torch.save(model.state_dict(), path) instead, with "
                       "model.load_state_dict(cengine.load(path))")


class _FinalType:
    def __getitem__(self, item):
        return item


Final = _FinalType()
