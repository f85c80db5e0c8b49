"""Load a torch program from tests/real_code with only its import lines changed to cengine
(`import torch` -> `import cengine as torch`, `from torch.x import y` -> `from cengine.x
import y`, ...), or unchanged under torch."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))

_IMPORT_AS = re.compile(r"^(\s*)import torch((?:\.\w+)*)(\s+as\s+(\w+))?\s*$")
_FROM = re.compile(r"^(\s*)from torch((?:\.\w+)*) import (.*)$")


def to_cengine(src):
    """Rewrite the import lines only; every other line is left exactly as written."""
    out = []
    for line in src.splitlines(True):
        end = "\n" if line.endswith("\n") else ""
        m = _IMPORT_AS.match(line.rstrip("\n"))
        if m:
            ind, sub, _, alias = m.groups()
            if alias:
                line = "%simport cengine%s as %s%s" % (ind, sub, alias, end)
            elif sub:  # `import torch.nn` binds the name torch
                line = "%simport cengine%s; import cengine as torch%s" % (ind, sub, end)
            else:
                line = "%simport cengine as torch%s" % (ind, end)
        else:
            m = _FROM.match(line.rstrip("\n"))
            if m:
                ind, sub, names = m.groups()
                line = "%sfrom cengine%s import %s%s" % (ind, sub, names, end)
        out.append(line)
    return "".join(out)


def load(name, lib):
    """Execute tests/real_code/<name>.py as a module namespace with lib 'torch' or 'cengine'."""
    path = os.path.join(HERE, name + ".py")
    with open(path) as f:
        src = f.read()
    if lib == "cengine":
        src = to_cengine(src)
        assert not re.search(r"^\s*(import|from) torch\b", src, re.M)
    ns = {"__name__": "real_code_" + name, "__file__": path}
    exec(compile(src, path, "exec"), ns)
    return ns
