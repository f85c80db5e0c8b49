"""Where things live: autograd Functions in cengine/ops/ (one module per op family), the
torch-named surface in cengine/nn/functional.py; ops never import nn at module level."""
import ast
import os

import cengine
import cengine.nn.functional as F
from cengine.autograd.function import Function

ROOT = os.path.dirname(cengine.__file__)


def _parse(rel):
    with open(os.path.join(ROOT, rel)) as fh:
        return ast.parse(fh.read())


def test_nn_functional_defines_no_function_class():
    for rel in ("nn/functional.py", "nn/_more_functional.py"):
        classes = [n.name for n in _parse(rel).body if isinstance(n, ast.ClassDef)]
        assert classes == [], "%s defines %s: autograd Functions belong in cengine/ops/" % (
            rel, classes)


def test_ops_modules_do_not_import_nn_at_module_level():
    for name in sorted(os.listdir(os.path.join(ROOT, "ops"))):
        if not name.endswith(".py"):
            continue
        for node in _parse(os.path.join("ops", name)).body:
            if isinstance(node, ast.ImportFrom):
                mod = "." * node.level + (node.module or "")
                assert not mod.startswith("..nn") and not mod.startswith("cengine.nn"), \
                    "ops/%s imports %s at module level" % (name, mod)


def test_functions_used_by_the_surface_live_in_ops():
    """The Functions nn.functional calls are the ops modules' own classes."""
    from cengine.ops import softmax, norm, loss, attention, linalg, embedding, conv
    for obj, mod in [(F._Softmax, softmax), (F._LayerNorm, norm), (F._RMSNorm, norm),
                     (F._BatchNorm, norm), (F._CrossEntropy, loss), (F._CrossEntropyProb, loss),
                     (F._NLL, loss), (F._HuberElem, loss), (F._BCE, loss), (F._SDPA, attention),
                     (F._Linear, linalg), (F._Embedding, embedding), (F._Pad, conv)]:
        assert issubclass(obj, Function) and obj.__module__ == mod.__name__
