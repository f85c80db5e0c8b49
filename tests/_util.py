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
