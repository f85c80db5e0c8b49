"""Gradient recording switches: no_grad, enable_grad, set_grad_enabled, inference_mode."""
import functools

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode"]

# one global flag (cengine records graphs from one Python thread at a time, like torch per thread)
_state = [True]


def is_grad_enabled():
    return _state[0]


class _Mode:
    """Base: a context manager that is also a decorator (fresh state per call)."""
    _enabled = True

    def __enter__(self):
        self._prev = _state[0]
        _state[0] = self._enabled
        return None

    def __exit__(self, *exc):
        _state[0] = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_Mode):
    """Disable graph recording (context manager or decorator)."""
    _enabled = False


class enable_grad(_Mode):
    """Enable graph recording inside a no_grad block (context manager or decorator)."""
    _enabled = True


class inference_mode(_Mode):
    """Like no_grad (cengine has no separate inference tensors)."""
    _enabled = False

    def __init__(self, mode=True):
        self._enabled = not mode

    def __call__(self, fn):
        mode = not self._enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper


class set_grad_enabled:
    """set_grad_enabled(mode): sets the mode at once; also usable as context manager/decorator."""

    def __init__(self, mode):
        self._prev = _state[0]
        self._mode = bool(mode)
        _state[0] = self._mode

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        _state[0] = self._prev
        return False

    def __call__(self, fn):
        mode = self._mode
        _state[0] = self._prev  # used as decorator: do not change the mode at decoration time

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper
