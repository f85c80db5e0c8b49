"""cengine.utils.hooks: the handle every register_*_hook returns (torch.utils.hooks)."""
import itertools

__all__ = ["RemovableHandle"]


class RemovableHandle:
    """Returned by register_*_hook (Module forward hooks, optimizer step hooks); remove()
    unregisters the hook, and the handle is a context manager that removes it on exit.

    hooks_dict is the dict the hook was stored in under the key `handle.id`; extra_dict is an
    optional dict (or list of dicts) holding entries under the same key, removed with it."""

    _next_id = itertools.count()

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.hooks_dict = hooks_dict
        self.id = next(RemovableHandle._next_id)
        if extra_dict is None:
            self.extra_dicts = ()
        elif isinstance(extra_dict, (list, tuple)):
            self.extra_dicts = tuple(extra_dict)
        else:
            self.extra_dicts = (extra_dict,)

    def remove(self):
        """Unregister the hook (a second call, or a hook already gone, does nothing)."""
        self.hooks_dict.pop(self.id, None)
        for d in self.extra_dicts:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
