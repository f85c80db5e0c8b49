"""The backward engine: topological order over graph nodes, gradient accumulation into leaves."""
import numpy as np

from .._fpe import quiet_enter as _quiet_enter, quiet_exit as _quiet_exit

from .function import AccumulateGrad
from .. import _device as _dv

__all__ = ["backward", "grad", "queue_callback"]

_arith = None
_final_callbacks = []   # run once when the backward() now in progress has finished
_in_backward = [0]      # depth of backward() calls in progress


def queue_callback(fn):
    """Run fn() once, right after the backward() pass now running has finished (what
    DistributedDataParallel uses to wait for its gradient all-reduces); only during backward."""
    if not _in_backward[0]:
        raise RuntimeError("Final callbacks can only be installed during backward pass.")
    _final_callbacks.append(fn)


def _run_final_callbacks():
    try:
        while _final_callbacks:
            _final_callbacks.pop(0)()
    finally:
        _final_callbacks.clear()


def _add_into(a, b):
    """a += b in place (a writeable, same shape and float dtype as b): the threaded kernel for
    large contiguous arrays that do not overlap, numpy's ufunc (overlap-safe) otherwise"""
    from .. import _C
    if (type(b) is np.ndarray and a.size >= (1 << 16) and a.dtype == b.dtype
            and (a.dtype == np.float32 or a.dtype == np.float64)
            and a.flags.c_contiguous and b.flags.c_contiguous and a.flags.aligned
            and b.flags.aligned and not np.may_share_memory(a, b)):
        _C.ewise("add", a, b, out=a)
    else:
        np.add(a, b, out=a)


def _add(a, b):
    """a + b for gradient accumulation (large same-shape float arrays on the threaded kernel)"""
    global _arith
    if _arith is None:   # bound on first use: the ops package imports this one
        from ..ops._util import arith as _arith
    return _arith("add", np.add, a, b)


def _topo(roots):
    """Nodes reachable from roots in an order where every node precedes the nodes it feeds."""
    order, seen = [], set()
    for r in roots:
        if r is None or id(r) in seen:
            continue
        seen.add(id(r))
        stack = [(r, iter(r.next_functions))]
        while stack:
            node, it = stack[-1]
            for e in it:
                if e is not None and id(e[0]) not in seen:
                    seen.add(id(e[0]))
                    stack.append((e[0], iter(e[0].next_functions)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _accumulate_leaf(node, g, fresh):
    """Add g into node.variable.grad. g may be aliased elsewhere unless it is in `fresh`."""
    from ..tensor import _wrap
    var = node.variable
    if var is None:
        return
    seen = False
    for h in list(node.pre_hooks.values()):
        r = h(_wrap(g))
        seen = True      # a hook may keep the tensor it saw (or returned): never take it as .grad
        if r is not None:
            g = r._data
    if g.dtype != var._data.dtype:
        g = g.astype(var._data.dtype)
    if g.shape != var._data.shape:
        g = np.broadcast_to(g, var._data.shape)
    if var.grad is None:
        if seen or not (id(g) in fresh and g.flags.c_contiguous and g.base is None and
                (type(g) is not np.ndarray or g.flags.writeable)):
            g = g.copy(order="C")
        fresh.discard(id(g))
        var.grad = _wrap(g)
    else:
        cur = var.grad._data
        if (type(cur) is np.ndarray and cur.flags.writeable and cur.shape == g.shape
                and cur.dtype == g.dtype and cur.dtype.kind == "f"):
            # in place, as torch's AccumulateGrad (no new array per backward)
            _add_into(cur, g)
            var.grad._version[0] += 1
        else:
            var.grad._data = _add(var.grad._data, g)
    for h in list(node.post_hooks.values()):
        h(var)


def _run(roots, root_grads, retain_graph, capture=None):
    """Propagate root_grads from roots (list of (node, output_nr)); returns captured grads."""
    grads = {}
    # the root gradients are the caller's arrays: a backward that passes one through unchanged
    # (add, reshape to the same shape, ...) must not let a leaf take it as its .grad uncopied
    borrowed = {id(g) for g in root_grads}
    for (node, nr), g in zip(roots, root_grads):
        buf = grads.setdefault(id(node), [None] * node._n_out)
        buf[nr] = g if buf[nr] is None else _add(buf[nr], g)
    order = _topo([n for n, _ in roots])
    fresh = set()  # ids of arrays produced in this pass that no one else holds yet
    captured = {}
    for node in order:
        buf = grads.pop(id(node), None)
        if buf is None:
            continue
        if capture is not None and id(node) in capture:
            captured[id(node)] = buf
            if isinstance(node, AccumulateGrad):
                continue
        if isinstance(node, AccumulateGrad):
            if capture is None:
                _accumulate_leaf(node, buf[0], fresh)
            continue
        if node._retained is not None:
            from ..tensor import _wrap
            for nr, ref in node._retained:
                t = ref()
                if t is not None and buf[nr] is not None:
                    g = buf[nr].copy()
                    if t.grad is None:
                        t.grad = _wrap(g)
                    else:
                        t.grad._data = _add(t.grad._data, g)
        if node._n_out == 1:
            args = buf
        else:
            mat = node._materialize_grads
            xp = _dv.xp_of(*buf)
            args = [b if b is not None else (xp.zeros(s, d) if mat else None)
                    for b, (s, d) in zip(buf, node._out_meta)]
        tok = _quiet_enter()  # no numpy RuntimeWarnings from backward formulas, as torch
        try:
            in_grads = node.apply(*args)
        finally:
            _quiet_exit(tok)
        if not retain_graph:
            node._release()
        for e, g in zip(node.next_functions, in_grads):
            if e is None or g is None:
                continue
            if type(g) is not np.ndarray:
                g = _dv.as_storage(g)
            nxt, nr = e
            # the gradient must have the shape of what it is the gradient of (torch's
            # validate_outputs); inlined: this runs once per edge of every backward
            want = nxt._out_shape
            if want is None:
                if type(nxt) is AccumulateGrad:
                    v = nxt._var()
                    want = None if v is None else v._data.shape
                elif nxt._n_out > 1:
                    want = nxt._out_meta[nr][0]
            if want is not None and g.shape != want:
                g = _validate_grad(node, in_grads, g, want)
            b = grads.get(id(nxt))
            if b is None:
                b = grads[id(nxt)] = [None] * nxt._n_out
            if b[nr] is None:
                b[nr] = g
                if id(g) not in borrowed:
                    fresh.add(id(g))
            else:
                b[nr] = _add(b[nr], g)
                fresh.add(id(b[nr]))
    return captured


def _validate_grad(node, in_grads, g, want):
    """torch's validate_outputs: a gradient larger than its input (the input broadcast to it)
    is summed down to the input's shape; any other shape is an error of the backward."""
    try:
        expandable = np.broadcast_shapes(want, g.shape) == g.shape
    except ValueError:
        expandable = False
    if not expandable:
        i = next(k for k, x in enumerate(in_grads) if x is g or
                 (x is not None and np.shape(x) == g.shape))
        raise RuntimeError("Function %s returned an invalid gradient at index %d - got [%s] but "
                           "expected shape compatible with [%s]"
                           % (node.name(), i, ", ".join(map(str, g.shape)),
                              ", ".join(map(str, want))))
    from ..ops._util import unbroadcast
    return unbroadcast(g, want)


def _roots_and_grads(tensors, grad_tensors):
    from ..tensor import Tensor
    roots, rgrads = [], []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not t.requires_grad:
            raise RuntimeError("element %d of tensors does not require grad and does not have a "
                               "grad_fn" % i)
        if g is None:
            if t._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = _dv.xp(t._data).ones(t._data.shape, t._data.dtype)
        else:
            if isinstance(g, Tensor):
                g = g._data
            g = _dv.as_storage(g)
            if g.shape != t._data.shape:
                raise RuntimeError("Mismatch in shape: grad_output[%d] has a shape of %s and "
                                   "output[%d] has a shape of %s." % (
                                       i, _sz(g.shape), i, _sz(t._data.shape)))
            if _dv.xp(g) is not _dv.xp(t._data):
                from ..tensor import _device_of
                raise RuntimeError("invalid gradient at index %d - expected device %s but got %s"
                                   % (i, _device_of(t._data), _device_of(g)))
            # Not copied (torch does not copy it either): the engine only reads a root gradient.
            # Backward formulas return new arrays (or views) and never write into the gradients
            # they are given, and where a gradient is kept - a leaf's .grad, retain_grad(),
            # grad()'s results - _run copies any array that is not its own (root gradients are
            # never taken as `fresh`), so nothing the caller holds is aliased or changed. A
            # read-only numpy array (a broadcast view, say) is still copied, as before: not every
            # backward path has been checked with read-only gradients.
            g = g.astype(t._data.dtype, copy=False)
            if isinstance(g, np.ndarray) and not g.flags.writeable:
                g = g.copy()
        roots.append(t._grad_edge())
        rgrads.append(g)
    return roots, rgrads


def _sz(shape):
    return "torch.Size([%s])" % ", ".join(str(s) for s in shape)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaves) into the leaves' .grad."""
    from ..tensor import Tensor
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported "
                                  "by cengine yet")
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors) if grad_tensors is None else [grad_tensors]
    roots, rgrads = _roots_and_grads(tensors, grad_tensors)
    _in_backward[0] += 1
    try:
        if inputs is not None:
            _backward_into(tensors, inputs, grad_tensors, retain_graph)
        else:
            _run(roots, rgrads, bool(retain_graph))
    except BaseException:
        _final_callbacks.clear()
        raise
    finally:
        _in_backward[0] -= 1
    _run_final_callbacks()


def _backward_into(tensors, inputs, grad_tensors, retain_graph):
    """backward(inputs=...): accumulate into the given tensors' .grad only; leaves run their
    gradient hooks as in an ordinary backward"""
    from ..tensor import Tensor, _wrap
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    res = grad(tensors, inputs, grad_tensors, retain_graph=retain_graph, allow_unused=True)
    for t, g in zip(inputs, res):
        if g is None:
            continue
        if t.grad_fn is None and t._acc is not None:
            _accumulate_leaf(t._acc, g._data, {id(g._data)})
        elif t.grad is None:
            t.grad = _wrap(g._data.copy())
        else:
            t.grad._data = t.grad._data + g._data


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Return d(outputs)/d(inputs) as a tuple of Tensors, without touching .grad."""
    from ..tensor import Tensor, _wrap
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported "
                                  "by cengine yet")
    if isinstance(outputs, Tensor):
        outputs = [outputs]
    single = isinstance(inputs, Tensor)
    if single:
        inputs = [inputs]
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    roots, rgrads = _roots_and_grads(outputs, grad_outputs)
    edges = [t._grad_edge() for t in inputs]
    capture = {id(n) for n, _ in edges}
    got = _run(roots, rgrads, bool(retain_graph), capture)
    res = []
    for t, (n, nr) in zip(inputs, edges):
        buf = got.get(id(n))
        g = None if buf is None else buf[nr]
        if g is None:
            if materialize_grads:
                g = np.zeros_like(t._data)
            elif not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        res.append(None if g is None else _wrap(g.copy()))
    return tuple(res)
