"""Helpers shared by several test files (import as `from _util import ...`; tests/ is on
sys.path through its conftest.py)."""
import importlib.util
import os

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name):
    """examples/NAME.py imported as a module (its main() is not run)"""
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def twice_function(name, backward):
    """An autograd Function class called `name` whose forward is x * 2 and whose backward is
    backward(ctx, g): for tests of what the engine and gradcheck do with a wrong backward."""
    import cengine as ce

    def forward(ctx, x):
        return x * 2

    return type(name, (ce.autograd.Function,),
                {"forward": staticmethod(forward), "backward": staticmethod(backward)})


def run_python(args, cwd, env=None, timeout=300):
    """Run `python ARGS` in a child that imports the same cengine this test process imported
    (the installed one in CI, the in-place build in a checkout): its parent folder goes first
    on PYTHONPATH and the child runs in `cwd` (a temporary folder), never in the repository
    root, whose unbuilt source tree would shadow an installed cengine."""
    import subprocess
    import sys
    import cengine
    e = dict(os.environ, **(env or {}))
    parent = os.path.dirname(os.path.dirname(os.path.abspath(cengine.__file__)))
    e["PYTHONPATH"] = parent + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable] + list(args), cwd=str(cwd), env=e,
                          capture_output=True, text=True, timeout=timeout)


def _to_dev(v, device):
    """v moved to device: a Tensor (a fresh leaf keeping requires_grad), a Module (a deep copy
    moved), lists/tuples item by item, anything else as it is"""
    import copy
    import cengine as ce
    if isinstance(v, ce.Tensor):
        return v.detach().to(device).requires_grad_(v.requires_grad)
    if isinstance(v, ce.nn.Module):
        return copy.deepcopy(v).to(device)
    if isinstance(v, (list, tuple)):
        return type(v)(_to_dev(x, device) for x in v)
    return v


def _outputs(out):
    import cengine as ce
    if isinstance(out, ce.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [o for x in out for o in _outputs(x)]
    return []


def same_on_device(device, fn, *inputs, rtol=1e-10, atol=1e-12):
    """The device half of an op/layer/loss test: on "cpu" nothing more (the test itself checked
    the CPU result); on a cuda device, fn(*inputs) with the inputs (tensors, modules) moved
    there must give outputs on that device equal to the CPU run's within rtol/atol, and the
    gradients of sum(out * w) (fixed weights w) with respect to every input tensor that
    requires grad, and every parameter of an input module, equal to the CPU run's (those on
    the device too). Returns the device outputs (None on the CPU)."""
    import numpy as np
    import cengine as ce
    dev = ce.device(device)
    if dev.type == "cpu":
        return None
    if dev.index is None:                  # "cuda": the current device, as torch
        dev = ce.device("cuda", ce.cuda.current_device())
    runs = []
    for d in ("cpu", dev):
        args = [_to_dev(v, d) for v in inputs]
        outs = _outputs(fn(*args))
        loss = None
        for o in outs:
            if o.requires_grad and o.numel():
                w = ce.tensor(np.linspace(-1.0, 1.5, o.numel()).reshape(o.shape),
                              dtype=o.dtype, device=o.device)
                term = (o * w).sum()
                loss = term if loss is None else loss + term
        leaves = [a for a in _outputs(args) if a.requires_grad]
        for m in args:
            if isinstance(m, ce.nn.Module):
                leaves += [p for p in m.parameters() if p.requires_grad]
        if loss is not None:
            loss.backward()
        runs.append((outs, [p.grad for p in leaves]))
    (co, cg), (do, dg) = runs
    assert len(co) == len(do)
    for c, g in zip(co, do):
        assert g.device == dev, "an output is on %s, not %s" % (g.device, dev)
        assert g.dtype == c.dtype and tuple(g.shape) == tuple(c.shape)
        np.testing.assert_allclose(g.detach().cpu().numpy(), c.detach().numpy(), rtol=rtol,
                                   atol=atol)
    for c, g in zip(cg, dg):
        assert (c is None) == (g is None)
        if c is not None:
            assert g.device == dev
            np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), rtol=rtol, atol=atol)
    return do
