"""Parameter: a Tensor that a Module registers as one of its learnable weights."""
import numpy as np

from ..tensor import Tensor, _wrap, _init_slots

__all__ = ["Parameter", "Buffer"]


class Parameter(Tensor):
    """A leaf Tensor (requires_grad=True by default) that Modules register when assigned as an
    attribute. It shares storage and version counter with the tensor it was made from."""
    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            from ..dtypes import get_default_dtype
            arr = np.empty((0,), get_default_dtype().np)
            version = [0]
        elif isinstance(data, Tensor):
            arr, version = data._data, data._version
        else:
            raise TypeError("Parameter(data): expected a cengine.Tensor, got %s"
                            % type(data).__name__)
        t = Tensor.__new__(cls)
        _init_slots(t, arr, version)
        if requires_grad:
            t.requires_grad_(True)
        return t

    def __init__(self, data=None, requires_grad=True):
        pass  # everything happens in __new__ (Tensor.__init__ would replace the storage)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__

    def __deepcopy__(self, memo):
        p = Parameter(_wrap(self._data.copy()), self.requires_grad)
        if self.grad is not None:
            p.grad = _wrap(self.grad._data.copy())
        memo[id(self)] = p
        return p

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self._data, self.requires_grad))


def _rebuild_parameter(arr, requires_grad):
    return Parameter(_wrap(arr), requires_grad)


class Buffer(Tensor):
    """Marker (torch.nn.Buffer): assigning `module.x = Buffer(t, persistent=...)` registers `t`
    as a buffer. The module stores a plain Tensor sharing t's storage."""
    __slots__ = ("persistent",)

    def __new__(cls, data, *, persistent=True):
        if not isinstance(data, Tensor):
            raise TypeError("Buffer(data): expected a cengine.Tensor, got %s" % type(data).__name__)
        t = Tensor.__new__(cls)
        _init_slots(t, data._data, data._version, data.requires_grad)
        t.persistent = bool(persistent)
        return t

    def __init__(self, data, *, persistent=True):
        pass
