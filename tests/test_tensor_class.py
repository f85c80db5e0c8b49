"""Tensor's methods are declared on the class (cengine/tensor.py and the mixins of
cengine/_tensor_methods.py), not attached at import time: visible to help(), inspect and type
checkers, the same after `import cengine.tensor` as after importing every submodule, and with the
same parameters as the ops they call."""
import ast
import inspect
import pydoc
import textwrap

import numpy as np
import pytest

import cengine as ce
from cengine import _tensor_methods as tm
from _util import run_python

Tensor = ce.Tensor

# torch.Tensor methods a torch user reaches for first; all must be declared (no torch needed)
CORE = ["__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__truediv__", "__matmul__",
        "__getitem__", "__setitem__", "__iadd__", "__eq__", "__neg__", "__pow__", "add", "add_",
        "mul", "div", "exp", "log", "sqrt", "abs", "clamp", "sum", "mean", "max", "argmax", "std",
        "var", "view", "reshape", "permute", "transpose", "unsqueeze", "squeeze", "flatten",
        "expand", "contiguous", "clone", "chunk", "split", "T", "mT", "view_as", "gather",
        "masked_fill", "index_select", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
        "sort", "topk", "scatter", "scatter_", "scatter_add_", "index_add_", "matmul", "mm",
        "bmm", "addmm", "normal_", "uniform_", "bernoulli", "multinomial", "to", "float",
        "detach", "backward", "item", "numpy", "size", "dim", "zero_", "fill_", "copy_", "where"]


def _declared_names():
    """Names bound in the class bodies of Tensor and its bases, read from their source."""
    names = {}
    for cls in Tensor.__mro__[:-1]:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        body = tree.body[0].body
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.setdefault(node.name, cls)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        names.setdefault(t.id, cls)
    return names


def test_every_public_attribute_is_declared_in_a_class_body():
    declared = _declared_names()
    own = {n for cls in Tensor.__mro__[:-1] for n in vars(cls)}
    slots = {n for cls in Tensor.__mro__[:-1] for n in getattr(cls, "__slots__", ())}
    auto = {"__module__", "__qualname__", "__doc__", "__slots__", "__dict__", "__hash__",
            "__firstlineno__", "__static_attributes__"}
    missing = sorted(n for n in own if n not in declared and n not in slots and n not in auto)
    assert missing == [], "attributes set on Tensor outside its class statements: %s" % missing
    for n in CORE:
        assert n in declared, n


def test_torch_tensor_methods_cengine_has_are_declared_on_the_class():
    torch = pytest.importorskip("torch")
    declared = _declared_names()
    x = ce.ones(1)
    slots = {n for cls in Tensor.__mro__[:-1] for n in getattr(cls, "__slots__", ())}
    missing = object()
    shared = [n for n in dir(torch.Tensor)
              if inspect.getattr_static(x, n, missing) is not missing and n not in slots
              and n not in ("__dict__", "__module__", "__weakref__", "__annotations__")
              and not (n.startswith("__") and n in vars(object))]
    assert len(shared) > 200
    runtime = [n for n in shared if n not in declared]
    assert runtime == [], runtime
    # each one is found through the class itself (its __dict__ or a base's), not the instance
    for n in shared:
        assert any(n in vars(c) for c in Tensor.__mro__), n


def test_help_and_getmembers_list_the_methods():
    text = pydoc.render_doc(Tensor, renderer=pydoc.plaintext)
    for n in ("view(self, *shape)", "softmax(self, dim, dtype=None)", "scatter_add_(self, dim, "
              "index, src)", "normal_(self, mean=0.0, std=1.0, *, generator=None)",
              "addmm(self, mat1, mat2, *, beta=1, alpha=1)"):
        assert n in text, n
    members = dict(inspect.getmembers(Tensor))
    for n in CORE:
        assert n in members, n


def test_methods_exist_right_after_importing_cengine_tensor_and_submodules_add_none(tmp_path):
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import cengine.tensor
        T = sys.modules["cengine.tensor"].Tensor
        before = {c.__name__: dict(vars(c)) for c in T.__mro__}
        assert all(hasattr(T, n) for n in ("view", "softmax", "normal_", "__matmul__", "T"))
        import cengine
        skip = ("cengine.distributed.launch",)
        for m in pkgutil.walk_packages(cengine.__path__, "cengine."):
            if m.name.startswith(skip) or ".__main__" in m.name:
                continue
            try:
                importlib.import_module(m.name)
            except ImportError:
                pass   # optional dependency missing (mpi4py, cupy, ...)
        after = {c.__name__: dict(vars(c)) for c in T.__mro__}
        assert before.keys() == after.keys()
        for k in before:
            added = set(after[k]) - set(before[k])
            changed = [n for n in before[k] if after[k].get(n) is not before[k][n]]
            assert not added and not changed, (k, sorted(added), changed)
        print("ok")
    """)
    r = run_python(["-c", code], tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def _forwards():
    """(mixin, method name, method, callee) for every method whose body is
    `return _mod.op(self, <its parameters in order>)`."""
    out = []
    for cls in Tensor.__mro__:
        if cls.__module__ != tm.__name__:
            continue
        for name, fn in vars(cls).items():
            if not inspect.isfunction(fn) or fn.__name__ != name:
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
            ret = tree.body[0].body[-1]
            if not (isinstance(ret, ast.Return) and isinstance(ret.value, ast.Call)
                    and isinstance(ret.value.func, ast.Attribute)
                    and isinstance(ret.value.func.value, ast.Name)):
                continue
            call = ret.value
            if not (call.args and isinstance(call.args[0], ast.Name) and call.args[0].id == "self"):
                continue
            params = [p.name for p in list(inspect.signature(fn).parameters.values())[1:]]
            passed = [a.value.id if isinstance(a, ast.Starred) and isinstance(a.value, ast.Name)
                      else getattr(a, "id", None) for a in call.args[1:]]
            passed += [k.arg for k in call.keywords
                       if isinstance(k.value, ast.Name) and k.value.id == k.arg]
            if passed != params or len(passed) != len(call.args) - 1 + len(call.keywords):
                continue   # not a plain forward (reflected operators, view_as, ...)
            callee = getattr(getattr(tm, call.func.value.id), call.func.attr)
            if callee.__name__ == "_inplace":
                continue
            out.append((cls.__name__, name, fn, callee))
    return out


def test_method_signatures_match_the_ops_they_call():
    fw = _forwards()
    assert len(fw) > 150
    bad = []
    # Tensor.softmax(dim, dtype=None) is torch's method signature; F.softmax's dim=None and
    # _stacklevel belong to the functional form only
    own_signature = {"softmax", "log_softmax"}
    for cls, name, fn, callee in fw:
        if name in own_signature:
            continue
        mp = list(inspect.signature(fn).parameters.values())[1:]
        op = [p for p in list(inspect.signature(callee).parameters.values())[1:]
              if not (p.kind == p.KEYWORD_ONLY and p.name == "out")]
        if name.startswith("__"):   # operators take the required operands only
            op = [p for p in op if p.default is p.empty and p.kind != p.KEYWORD_ONLY]
        key = [(p.name, p.kind, p.default) for p in mp]
        if key != [(p.name, p.kind, p.default) for p in op]:
            bad.append("%s.%s%s vs %s%s" % (cls, name, inspect.signature(fn), callee.__name__,
                                             inspect.signature(callee)))
    assert bad == [], "\n".join(bad)


def test_operators_and_reflected_forms():
    a = ce.tensor([[1.0, 2.0], [3.0, 4.0]])
    an = a.numpy()
    np.testing.assert_allclose((2 - a).numpy(), 2 - an)
    np.testing.assert_allclose((2 / a).numpy(), 2 / an)
    np.testing.assert_allclose((2 ** a).numpy(), 2 ** an)
    np.testing.assert_allclose((7 % a).numpy(), 7 % an)
    np.testing.assert_allclose((7 // a).numpy(), 7 // an)
    np.testing.assert_allclose((an @ a).numpy(), an @ an)
    b = a.clone()
    b += 1
    b -= 0.5
    b *= 2
    b /= 4
    np.testing.assert_allclose(b.numpy(), (an + 0.5) / 2)
    np.testing.assert_array_equal(a.where(a > 2, 0.0).numpy(), np.where(an > 2, an, 0))
    assert a.T.shape == (2, 2) and a.T.data_ptr() == a.data_ptr()
    np.testing.assert_array_equal(ce.arange(24.0).reshape(2, 3, 4).T.numpy(),
                                  np.arange(24.0).reshape(2, 3, 4).T)
    np.testing.assert_array_equal(a.mT.numpy(), an.T)
    with pytest.raises(RuntimeError, match="tensor.mT is only supported on matrices"):
        ce.ones(3).mT
    v = ce.ones(3)
    assert v.T is v
    assert a.view_as(ce.zeros(4)).shape == (4,) and a.reshape_as(ce.zeros(4, 1)).shape == (4, 1)


def test_inplace_scatter_family_matches_out_of_place():
    idx = ce.tensor([[0, 1], [1, 0]])
    src = ce.tensor([[5.0, 6.0], [7.0, 8.0]])
    base = ce.zeros(2, 2)
    for name, args, kw in [("scatter", (1, idx, src), {}), ("scatter", (1, idx), {"value": 3.0}),
                           ("scatter_add", (1, idx, src), {}),
                           ("scatter_reduce", (1, idx, src, "amax"), {"include_self": False}),
                           ("index_add", (0, ce.tensor([1, 0]), src), {"alpha": 2}),
                           ("index_copy", (0, ce.tensor([1, 0]), src), {}),
                           ("index_fill", (1, ce.tensor([0]), -1.0), {}),
                           ("masked_scatter", (ce.tensor([[True, False], [False, True]]), src),
                            {})]:
        want = getattr(base, name)(*args, **kw)
        t = base.clone()
        v0 = t._version_count
        r = getattr(t, name + "_")(*args, **kw)
        assert r is t and t._version_count > v0, name
        np.testing.assert_array_equal(t.numpy(), want.numpy(), err_msg=name)


def test_inplace_scatter_on_a_leaf_that_requires_grad_raises():
    w = ce.zeros(2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.index_fill_(1, ce.tensor([0]), 1.0)


def test_methods_take_no_out_argument_like_torch():
    a = ce.ones(2)
    with pytest.raises(TypeError, match="out"):
        a.add(a, out=ce.empty(2))


# ---------------------------------------------------------------- torch's names of each dtype
_NAMES = [("float32", "Float", "float"), ("float64", "Double", "double"),
          ("float16", "Half", "c10::Half"), ("bfloat16", "BFloat16", "c10::BFloat16"),
          ("int64", "Long", "long int"), ("int32", "Int", "int"), ("int16", "Short", "short int"),
          ("int8", "Char", "signed char"), ("uint8", "Byte", "unsigned char"),
          ("bool", "Bool", "bool")]


@pytest.mark.parametrize("name,scalar,cpp", _NAMES)
def test_dtype_torch_names(name, scalar, cpp):
    from cengine import dtypes
    d = getattr(ce, name)
    assert dtypes.torch_type_name(d) == scalar and dtypes.torch_cpp_name(d) == cpp
    if d.np is not None:
        assert dtypes.torch_type_name(d.np) == scalar and dtypes.torch_cpp_name(d.np) == cpp
        assert ce.zeros(1, dtype=d).type() == "cengine.%sTensor" % scalar
        assert getattr(ce, scalar + "Tensor").dtype is d
    torch = pytest.importorskip("torch")
    td = getattr(torch, name)
    assert torch.empty(0, dtype=td).type() == "torch.%sTensor" % scalar
    other = torch.float64 if td != torch.float64 else torch.float32
    with pytest.raises(RuntimeError) as e:
        torch.mm(torch.ones(2, 2, dtype=td), torch.ones(2, 2, dtype=other))
    assert "but got: %s != " % cpp in str(e.value)


def test_dtype_names_of_numpy_only_dtypes():
    from cengine import dtypes
    assert dtypes.torch_type_name(np.complex64) == "ComplexFloat"
    assert dtypes.torch_cpp_name(np.dtype(np.complex128)) == "c10::complex<double>"
    assert dtypes.torch_type_name(np.dtype("U2")) == "str64"   # falls back to numpy's name


def test_messages_use_torch_names():
    f16, i64 = ce.ones(2, 2, dtype=ce.float16), ce.ones(2, 2, dtype=ce.int64)
    with pytest.raises(RuntimeError, match=r"but got: c10::Half != float"):
        ce.mm(f16, ce.ones(2, 2))
    with pytest.raises(RuntimeError, match=r"but got: long int != float"):
        ce.mm(i64, ce.ones(2, 2))
    with pytest.raises(RuntimeError, match=r"self and mat2 must have the same dtype, but got "
                                           r"Double and Float"):
        ce.addmm(ce.ones(2, 2, dtype=ce.float64), ce.ones(2, 2), ce.ones(2, 2))
    with pytest.raises(RuntimeError, match=r"Input type \(float\) and bias type \(long int\)"):
        ce.nn.functional.conv1d(ce.ones(1, 1, 3), ce.ones(1, 1, 1), ce.ones(1, dtype=ce.int64))
    x = ce.zeros(2, dtype=ce.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="gradient with dtype 'signed char' to a tensor with "
                                           "grad_dtype 'Double'"):
        x.grad = ce.zeros(2, dtype=ce.int8)
    with pytest.raises(RuntimeError, match="multinomial only supports floating-point dtypes for "
                                           "input, got: Short"):
        ce.multinomial(ce.ones(3, dtype=ce.int16), 1)


# ---------------------------------------------------------------- Tensor.to / Module.to parsing
def test_tensor_to_forms():
    t = ce.ones(2)
    assert t.to(ce.float32) is t and t.to("cpu") is t and t.to(None) is t
    assert t.to(ce.device("cpu"), non_blocking=True) is t and t.to(memory_format=None) is t
    assert t.to(float).dtype is ce.float64 and t.to(int).dtype is ce.int64
    assert t.to(bool).dtype is ce.bool
    assert t.to("cpu", ce.float64).dtype is ce.float64
    assert t.to(device="cpu", dtype=ce.int32).dtype is ce.int32
    assert t.to(ce.float64, True).dtype is ce.float64
    assert t.to("cpu", ce.float64, False, True).dtype is ce.float64
    d = ce.zeros(1, dtype=ce.float64)
    assert t.to(d).dtype is ce.float64
    c = t.to(t, True, True)
    assert c is not t and c.data_ptr() != t.data_ptr()
    assert t.to(copy=True) is not t and t.to(ce.float32, copy=True) is not t


@pytest.mark.parametrize("args,kwargs,got", [
    ((ce.float64,), {"device": "cpu"}, "(cengine.dtype, device=str)"),
    ((ce.float64,), {"dtype": ce.float32}, "(cengine.dtype, dtype=cengine.dtype)"),
    ((), {"foo": 1}, "(foo=int, )"),
    ((ce.float64, "x"), {}, "(cengine.dtype, str)"),
    ((ce.ones(1), ce.float64), {}, "(Tensor, cengine.dtype)"),
    ((ce.float64, 1), {}, "(cengine.dtype, int)"),
    ((3.5,), {}, "(float)"),
    (("cpu", ce.float64, False, True, 1), {}, "(str, cengine.dtype, bool, bool, int)"),
])
def test_tensor_to_bad_arguments(args, kwargs, got):
    with pytest.raises(TypeError) as e:
        ce.ones(2).to(*args, **kwargs)
    msg = str(e.value)
    assert msg.startswith("to() received an invalid combination of arguments - got %s, but "
                          "expected one of:\n * (cengine.device device = None" % got), msg


def test_to_refuses_accelerators():
    for dev in ("cuda", "cuda:0", 0):
        with pytest.raises(RuntimeError, match="cannot use a cuda device here"):
            ce.ones(1).to(dev)
        with pytest.raises(RuntimeError, match="cannot use a cuda device here"):
            ce.nn.Linear(1, 1).to(dev)


def test_module_to_uses_the_same_forms():
    m = ce.nn.Linear(2, 2)
    assert m.to("cpu") is m and m.to(memory_format=None) is m and m.to(None) is m
    assert m.to(ce.float64, True).weight.dtype is ce.float64
    assert m.to(ce.zeros(1)).weight.dtype is ce.float32
    assert m.to(device="cpu", dtype=ce.float64).bias.dtype is ce.float64
    with pytest.raises(RuntimeError, match=r"\.to\(\) does not accept copy argument"):
        m.to(copy=True)
    with pytest.raises(TypeError, match="only accepts floating point dtypes"):
        m.to(ce.int64)
    with pytest.raises(TypeError, match=r"got \(foo=int, \), but expected one of"):
        m.to(foo=1)
    with pytest.raises(TypeError, match=r"got \(float\), but expected one of"):
        m.to(3.0)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError):
        torch.nn.Linear(2, 2).to(foo=1)
