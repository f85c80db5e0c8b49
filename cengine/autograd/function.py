"""Function: a differentiable op on numpy arrays, and the graph node (ctx) it leaves behind.

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):              # Tensor args arrive as ndarrays, others unchanged
            y = np.exp(x); ctx.save_for_backward(y); return y
        @staticmethod
        def backward(ctx, grad):          # ndarray shaped like the output
            (y,) = ctx.saved_tensors; return grad * y

    y = Exp.apply(x)                      # a Tensor; a graph node when any input requires grad
"""
import sys
import weakref

from .. import dtypes as _dt
from . import grad_mode
from .._fpe import quiet_enter as _quiet_enter, quiet_exit as _quiet_exit
from .._device import _CP, check_same_device as _check_same_device, no_cuda_path as _no_cuda_path


class _LazyTensorModule:
    """cengine.tensor, resolved on first use (it imports this module)."""

    def __getattr__(self, name):
        mod = sys.modules["cengine.tensor"]
        self.Tensor, self._wrap = mod.Tensor, mod._wrap
        return getattr(mod, name)


_tensor_mod = _LazyTensorModule()

__all__ = ["Function", "Node", "AccumulateGrad"]

_SAVED_FREED = ("Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or if "
                "you need to access saved tensors after calling backward.")


class Node:
    """A recorded op: the ctx its Function sees, and an edge list for the engine.

    next_functions: per forward input, (node, output_nr) or None where no grad flows.
    """
    # plain attributes (not slots): Functions store whatever they need on ctx. Defaults live on
    # the class so creating a node (once per op) costs one object allocation.
    _fn = None
    _saved = ()
    _checks = None
    _freed = False
    needs_input_grad = ()
    next_functions = ()
    _retained = None
    _n_out = 1
    _out_shape = None
    _materialize_grads = True
    _dirty = ()

    # ---- ctx API used by Function.forward/backward ----
    def save_for_backward(self, *arrays):
        self._saved = arrays

    def set_materialize_grads(self, value):
        """False: backward receives None (not zeros) for outputs that got no gradient."""
        self._materialize_grads = bool(value)

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(_SAVED_FREED)
        chk = self._checks
        if chk:
            for i, vc, ver in chk:
                if vc[0] != ver:
                    a = self._saved[i]
                    raise RuntimeError(
                        "one of the variables needed for gradient computation has been modified "
                        "by an inplace operation: [%s %s], which is output 0 of %s, is at version "
                        "%d; expected version %d instead. Hint: the backtrace further above shows "
                        "the operation that failed to compute its gradient."
                        % (getattr(a, "dtype", "?"), list(getattr(a, "shape", ())),
                           self.name(), vc[0], ver))
        return self._saved

    def mark_non_differentiable(self, *arrays):
        self._nondiff = arrays

    def mark_dirty(self, *arrays):
        """Declare input arrays that forward modified in place (and returns as outputs), as
        torch's ctx.mark_dirty: apply then bumps those tensors' versions and returns the input
        tensors themselves, rebased onto this node; a saved dirty array counts as the new value."""
        self._dirty = arrays

    # ---- engine API ----
    def name(self):
        return type(self).__name__

    def apply(self, *grads):
        out = self._fn.backward(self, *grads)
        if not isinstance(out, tuple):
            out = (out,)
        return out

    def _release(self):
        if self._saved:
            self._freed = True
        self._saved = ()

    def register_hook(self, fn):
        raise NotImplementedError("hooks on graph nodes are not supported; use Tensor.register_hook")

    def __repr__(self):
        return "<%s object at %#x>" % (self.name(), id(self))


class AccumulateGrad(Node):
    """Sink node of a leaf tensor: adds the incoming gradient into leaf.grad."""

    def __init__(self, variable):
        self._var = weakref.ref(variable)
        self.pre_hooks = {}   # RemovableHandle.id -> hook, called in registration order
        self.post_hooks = {}

    @property
    def variable(self):
        return self._var()

    def name(self):
        return "AccumulateGrad"


_node_classes = {}


def _node_class(fn_cls):
    nc = _node_classes.get(fn_cls)
    if nc is None:
        name = fn_cls.__name__
        if not name.endswith("Backward"):
            name += "Backward0"
        nc = type(name, (Node,), {"_fn": fn_cls})
        _node_classes[fn_cls] = nc
    return nc


class Function:
    """Base class of differentiable ops; subclasses define static forward/backward on arrays."""

    # the op's name when it has no cuda path yet (its forward calls C kernels on host arrays):
    # cuda inputs then raise NotImplementedError saying so, instead of failing in the kernel
    _no_cuda = None

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        Tensor = _tensor_mod.Tensor
        _wrap = _tensor_mod._wrap
        nc = _node_classes.get(cls) or _node_class(cls)
        ctx = nc()
        record = False
        if grad_mode._state[0]:
            needs = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
            record = True in needs
            ctx.needs_input_grad = needs
        else:
            ctx.needs_input_grad = (False,) * len(args)
        if _CP[0] is not None:   # a cuda array has existed: the inputs must share a device
            dev = _check_same_device([a._data if isinstance(a, Tensor) else a for a in args])
            if dev is not None and dev >= 0 and cls._no_cuda:
                raise _no_cuda_path(cls._no_cuda)
        tok = _quiet_enter()  # no numpy RuntimeWarnings (log(0), 1/0, overflow), as torch
        try:
            out = cls.forward(ctx, *[a._data if isinstance(a, Tensor) else a for a in args])
        finally:
            _quiet_exit(tok)
        if ctx._dirty:
            return _apply_dirty(ctx, args, out, record)
        if not record:
            if isinstance(out, tuple):
                return tuple(_wrap(o) for o in out)
            return _wrap(out)
        ctx.next_functions = tuple(
            (a._grad_edge() if n else None) for a, n in zip(args, needs))
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        nondiff = getattr(ctx, "_nondiff", ())
        results = []
        for i, o in enumerate(outs):
            t = _wrap(o)
            if not any(o is nd for nd in nondiff) and _dt.is_floating(o.dtype):
                t.requires_grad = True
                t.grad_fn = ctx
                t._output_nr = i
            results.append(t)
        ctx._n_out = len(outs)
        if multi:
            ctx._out_meta = tuple((o.shape, o.dtype) for o in outs)
        else:
            ctx._out_shape = out.shape       # the engine checks incoming gradients against it
        # remember versions of saved arrays that are inputs or outputs (in-place checks)
        saved = ctx._saved
        if saved:
            checks = []
            for si, s in enumerate(saved):
                for a in args:
                    if isinstance(a, Tensor) and a._data is s:
                        checks.append((si, a._version, a._version[0]))
                        break
                else:
                    for t in results:
                        if t._data is s:
                            checks.append((si, t._version, t._version[0]))
                            break
            ctx._checks = checks
        return tuple(results) if multi else results[0]


def _apply_dirty(ctx, args, out, record):
    """The end of Function.apply for a forward that called ctx.mark_dirty: each dirty input
    tensor gets its version bumped once; an output that is a dirty input's array is returned as
    that input tensor, whose grad_fn becomes this node (the graph is rebased: the node's edge
    still points at the tensor's previous history). Saved dirty arrays are checked against the
    bumped version, so only a later in-place change of the result invalidates this node."""
    Tensor = _tensor_mod.Tensor
    _wrap = _tensor_mod._wrap
    dirty = {}
    for a in args:
        if isinstance(a, Tensor) and any(a._data is d for d in ctx._dirty):
            dirty[id(a._data)] = a
    if grad_mode._state[0]:
        for a in dirty.values():
            if a.requires_grad and a.grad_fn is None:
                raise RuntimeError("a leaf Variable that requires grad is being used in an "
                                   "in-place operation.")
    if record:   # edges to the inputs' history before it is rebased
        ctx.next_functions = tuple(
            (a._grad_edge() if n else None) for a, n in zip(args, ctx.needs_input_grad))
    for a in dirty.values():
        a._version[0] += 1
    multi = isinstance(out, tuple)
    outs = out if multi else (out,)
    nondiff = getattr(ctx, "_nondiff", ())
    results = []
    for i, o in enumerate(outs):
        t = dirty.get(id(o))
        if t is None:
            t = _wrap(o)
        if record and not any(o is nd for nd in nondiff) and _dt.is_floating(o.dtype):
            t.requires_grad = True
            t.grad_fn = ctx
            t._output_nr = i
        results.append(t)
    if not record:
        return tuple(results) if multi else results[0]
    ctx._n_out = len(outs)
    if multi:
        ctx._out_meta = tuple((o.shape, o.dtype) for o in outs)
    saved = ctx._saved
    if saved:
        checks = []
        for si, s in enumerate(saved):
            if s is None:
                continue
            # a dirty array is the new value: its tensor (already bumped) owns it
            owner = dirty.get(id(s))
            if owner is None:
                owner = next((a for a in args if isinstance(a, Tensor) and a._data is s), None)
            if owner is None:
                owner = next((t for t in results if t._data is s), None)
            if owner is not None:
                checks.append((si, owner._version, owner._version[0]))
        ctx._checks = checks
    return tuple(results) if multi else results[0]
