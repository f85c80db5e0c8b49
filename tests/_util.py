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
