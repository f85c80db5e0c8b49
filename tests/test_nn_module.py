"""Module system: registration, naming, dedup, state_dict, train/eval, to(dtype), repr, hooks,
containers and nn.init."""
import copy
import math
from collections import OrderedDict

import numpy as np
import pytest

import cengine as ce
import cengine.nn as nn
import cengine.nn.functional as F
from cengine.nn import init


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.ReLU()
        self.register_buffer("count", ce.zeros(1))
        self.register_buffer("scratch", ce.zeros(2), persistent=False)

    def forward(self, x):
        return self.act(self.fc(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(4, 2, bias=False)
        self.scale = nn.Parameter(ce.ones(1))

    def forward(self, x):
        for layer in self.encoder.layers:
            x = x + layer(x)
        return self.head(x) * self.scale


def test_parameter_basics():
    t = ce.randn(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, nn.Parameter) and isinstance(p, ce.Tensor)
    assert p.requires_grad and p.is_leaf
    assert p._data is t._data  # shares storage
    assert repr(p).startswith("Parameter containing:\ntensor(")
    q = nn.Parameter(t, requires_grad=False)
    assert not q.requires_grad
    y = p * 2  # ops on parameters give plain tensors
    assert type(y) is ce.Tensor
    d = copy.deepcopy(p)
    assert isinstance(d, nn.Parameter) and d._data is not p._data
    np.testing.assert_array_equal(d._data, p._data)
    with pytest.raises(TypeError):
        nn.Parameter([1.0, 2.0])


def test_registration_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "encoder.layers.0.fc.weight", "encoder.layers.0.fc.bias",
                     "encoder.layers.1.fc.weight", "encoder.layers.1.fc.bias", "head.weight"]
    assert len(list(net.parameters())) == 6
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_parameters(prefix="m")][0] == "m.scale"
    assert [n for n, _ in net.named_children()] == ["encoder", "head"]
    mods = [n for n, _ in net.named_modules()]
    assert mods == ["", "encoder", "encoder.layers", "encoder.layers.0", "encoder.layers.0.fc",
                    "encoder.layers.0.act", "encoder.layers.1", "encoder.layers.1.fc",
                    "encoder.layers.1.act", "head"]
    assert [n for n, _ in net.named_buffers()] == [
        "encoder.layers.0.count", "encoder.layers.0.scratch", "encoder.layers.1.count",
        "encoder.layers.1.scratch"]
    assert net.get_submodule("encoder.layers.1.fc") is net.encoder.layers[1].fc
    assert net.get_parameter("encoder.layers.1.fc.bias") is net.encoder.layers[1].fc.bias
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        net.get_submodule("encoder.nope")
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'missing'"):
        net.missing


def test_shared_parameters_dedup():
    a = nn.Linear(3, 3)
    b = nn.Linear(3, 3)
    b.weight = a.weight  # tied
    seq = nn.Sequential(a, b)
    assert len(list(seq.parameters())) == 3
    names = [n for n, _ in seq.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.bias"]
    assert len(list(seq.named_parameters(remove_duplicate=False))) == 4
    # the same module twice
    seq2 = nn.Sequential(a, a)
    assert len(list(seq2.modules())) == 2 and len(list(seq2.parameters())) == 2
    # state_dict keeps every key (like torch)
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_setattr_rules():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'cengine.FloatTensor' as parameter "
                                        "'weight'"):
        m.weight = ce.zeros(2, 2)
    m.bias = None
    assert m.bias is None and "bias" in m._parameters
    m.weight = nn.Parameter(ce.zeros(2, 2))
    assert isinstance(m.weight, nn.Parameter)
    with pytest.raises(KeyError, match="attribute 'in_features' already exists"):
        m.register_buffer("in_features", ce.zeros(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", ce.zeros(1))
    with pytest.raises(TypeError, match="buffer 'buf'"):
        m.register_buffer("buf", [1, 2])
    with pytest.raises(TypeError):
        m.register_parameter("p", ce.zeros(1))
    m.register_buffer("buf", ce.zeros(1))
    with pytest.raises(TypeError, match="as buffer 'buf'"):
        m.buf = 3
    del m.buf
    assert "buf" not in m._buffers
    m.extra = nn.Buffer(ce.ones(2), persistent=False)
    assert "extra" in m._buffers and "extra" not in m.state_dict()
    with pytest.raises(ValueError, match="non-leaf"):
        m.register_parameter("q", nn.Parameter(ce.ones(1)) * 2 if False else _nonleaf_param())


def _nonleaf_param():
    p = nn.Parameter(ce.ones(2))
    p.grad_fn = (p * 2).grad_fn
    return p


def test_state_dict_keys_and_roundtrip():
    net = Net()
    sd = net.state_dict()
    # torch's order: own parameters, own persistent buffers, then children
    assert list(sd) == ["scale", "encoder.layers.0.count", "encoder.layers.0.fc.weight",
                        "encoder.layers.0.fc.bias", "encoder.layers.1.count",
                        "encoder.layers.1.fc.weight", "encoder.layers.1.fc.bias", "head.weight"]
    assert not any(v.requires_grad for v in sd.values())
    assert sd["head.weight"]._data is net.head.weight._data  # shares storage (detached)
    net2 = Net()
    res = net2.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        np.testing.assert_array_equal(a._data, b._data, err_msg=k)
    # loading copies: the models do not share storage afterwards
    assert net2.head.weight._data is not net.head.weight._data
    x = ce.randn(5, 4)
    np.testing.assert_allclose(net(x)._data, net2(x)._data)


def test_load_state_dict_errors():
    net = Net()
    sd = net.state_dict()
    del sd["head.weight"]
    sd["foo.bar"] = ce.zeros(1)
    with pytest.raises(RuntimeError) as ei:
        Net().load_state_dict(sd)
    msg = str(ei.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:\n\t")
    assert 'Missing key(s) in state_dict: "head.weight". ' in msg
    assert 'Unexpected key(s) in state_dict: "foo.bar". ' in msg
    assert msg.index("Missing") < msg.index("Unexpected")
    res = Net().load_state_dict(sd, strict=False)
    assert res.missing_keys == ["head.weight"] and res.unexpected_keys == ["foo.bar"]
    bad = net.state_dict()
    bad["head.weight"] = ce.zeros(5, 5)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.weight: copying a param with "
                                           r"shape .*\[5, 5\].* from checkpoint, the shape in "
                                           r"current model is .*\[2, 4\]"):
        Net().load_state_dict(bad, strict=False)
    with pytest.raises(TypeError):
        Net().load_state_dict([1, 2])


def test_load_state_dict_casts_dtype_and_keeps_identity():
    m = nn.Linear(3, 2)
    w = m.weight
    sd = {k: v.double() for k, v in nn.Linear(3, 2).state_dict().items()}
    m.load_state_dict(sd)
    assert m.weight is w and m.weight.dtype == ce.float32
    np.testing.assert_allclose(m.weight._data, sd["weight"]._data.astype(np.float32))


def test_train_eval_and_requires_grad():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_zero_grad_and_apply():
    net = Net()
    net(ce.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad._data.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"

    def init_weights(m):
        if isinstance(m, nn.Linear):
            init.zeros_(m.weight)
    net.apply(init_weights)
    assert not net.head.weight._data.any()


def test_to_dtype():
    m = nn.BatchNorm1d(3)
    w = m.weight
    m.double()
    assert m.weight is w and m.weight.dtype == ce.float64
    assert m.running_mean.dtype == ce.float64
    assert m.num_batches_tracked.dtype == ce.int64  # integer buffers untouched
    m.to(ce.float32)
    assert m.weight.dtype == ce.float32
    m.to("cpu")
    with pytest.raises(TypeError, match="floating point"):
        m.to(ce.int64)
    with pytest.raises(RuntimeError):
        m.to("cuda")
    lin = nn.Linear(3, 2).double()
    out = lin(ce.randn(4, 3, dtype=ce.float64))
    assert out.dtype == ce.float64


def test_repr_like_torch():
    net = nn.Sequential(OrderedDict([("fc", nn.Linear(4, 3)), ("act", nn.GELU("tanh")),
                                     ("inner", nn.Sequential(nn.Dropout(0.1), nn.LayerNorm(3)))]))
    assert repr(net) == (
        "Sequential(\n"
        "  (fc): Linear(in_features=4, out_features=3, bias=True)\n"
        "  (act): GELU(approximate='tanh')\n"
        "  (inner): Sequential(\n"
        "    (0): Dropout(p=0.1, inplace=False)\n"
        "    (1): LayerNorm((3,), eps=1e-05, elementwise_affine=True)\n"
        "  )\n"
        ")")
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == "Embedding(10, 3, padding_idx=0)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"


def test_forward_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h = m.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out * 0)
    hp = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    x = ce.ones(1, 2)
    assert not m(x)._data.any()
    assert calls == [(1, 2)]
    h.remove()
    hp.remove()
    np.testing.assert_allclose(m(x)._data, F.linear(x, m.weight, m.bias)._data)
    assert len(calls) == 1


def test_module_without_forward_and_before_init():
    class NoFwd(nn.Module):
        pass
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        NoFwd()(ce.ones(1))

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(ce.ones(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_sequential():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b, c)
    assert len(s) == 3 and s[0] is a and s[-1] is c
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub._modules) == ["1", "2"]
    x = ce.randn(4, 2)
    np.testing.assert_allclose(s(x)._data, c(b(a(x)))._data)
    s.append(nn.Sigmoid())
    assert len(s) == 4 and isinstance(s[3], nn.Sigmoid)
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and s[1] is c
    s[0] = nn.Identity()
    assert isinstance(s[0], nn.Identity)
    with pytest.raises(IndexError):
        s[10]
    s.insert(0, nn.Tanh())
    assert isinstance(s[0], nn.Tanh) and len(s) == 4
    d = nn.Sequential(OrderedDict(first=nn.ReLU()))
    assert d.first is d[0]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    ml.append(nn.ReLU())
    ml += [nn.Tanh()]
    assert len(ml) == 5 and isinstance(ml[-1], nn.Tanh)
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2", "3"]
    ml.insert(1, nn.Identity())
    assert isinstance(ml[1], nn.Identity)
    with pytest.raises(IndexError):
        ml[9]
    md = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    assert "a" in md and len(md) == 2 and list(md.keys()) == ["a", "b"]
    md["c"] = nn.Tanh()
    assert [k for k, _ in md.items()] == ["a", "b", "c"]
    assert md.pop("b").__class__ is nn.ReLU and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    pl = nn.ParameterList([nn.Parameter(ce.ones(2)), ce.zeros(3)])
    assert len(pl) == 2 and isinstance(pl[1], nn.Parameter)
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]
    pd = nn.ParameterDict({"x": ce.ones(1)})
    assert isinstance(pd["x"], nn.Parameter) and list(pd.state_dict()) == ["x"]


def test_deepcopy_module():
    net = Net()
    c = copy.deepcopy(net)
    assert c.head.weight is not net.head.weight
    assert isinstance(c.head.weight, nn.Parameter)
    np.testing.assert_array_equal(c.head.weight._data, net.head.weight._data)


# ------------------------------------------------------------------ init
def test_calculate_gain_and_fans():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75 and init.calculate_gain("linear") == 1
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("foo")
    assert init._calculate_fan_in_and_fan_out(ce.empty(5, 3, 2, 2)) == (12, 20)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(ce.empty(4))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(ce.empty(3, 3), mode="fan_avg")


def test_init_distributions():
    ce.manual_seed(0)
    w = ce.empty(200, 300)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = math.sqrt(6 / ((1 + 5) * 300))
    assert np.abs(w._data).max() <= bound and np.abs(w._data).max() > 0.95 * bound
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w._data.std() - math.sqrt(2 / 200)) < 0.03 * math.sqrt(2 / 200)
    init.xavier_uniform_(w, gain=2.0)
    a = 2.0 * math.sqrt(6 / 500)
    assert np.abs(w._data).max() <= a and np.abs(w._data).max() > 0.95 * a
    init.xavier_normal_(w)
    assert abs(w._data.std() - math.sqrt(2 / 500)) < 0.03 * math.sqrt(2 / 500)
    init.trunc_normal_(w, mean=1.0, std=2.0, a=-1.0, b=2.0)
    assert w._data.min() >= -1.0 and w._data.max() <= 2.0
    # mean of N(1, 2) truncated to [-1, 2]: mu + sigma (phi(al) - phi(be)) / (Phi(be) - Phi(al))
    al, be = -1.0, 0.5
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    expect = 1.0 + 2.0 * (phi(al) - phi(be)) / (Phi(be) - Phi(al))
    assert abs(w._data.mean() - expect) < 0.02
    init.constant_(w, 0.5)
    assert np.all(w._data == 0.5)
    init.ones_(w)
    assert np.all(w._data == 1)
    init.zeros_(w)
    assert not w._data.any()
    e = ce.empty(3, 4)
    init.eye_(e)
    np.testing.assert_array_equal(e._data, np.eye(3, 4))
    o = ce.empty(4, 6)
    init.orthogonal_(o)
    np.testing.assert_allclose(o._data @ o._data.T, np.eye(4), atol=1e-5)


def test_init_reproducible_and_no_graph():
    ce.manual_seed(123)
    a = nn.Linear(5, 4)
    ce.manual_seed(123)
    b = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight._data, b.weight._data)
    np.testing.assert_array_equal(a.bias._data, b.bias._data)
    assert a.weight.is_leaf and a.weight.grad_fn is None
    bound = 1 / math.sqrt(5)
    assert np.abs(a.bias._data).max() <= bound
    # kaiming_uniform(a=sqrt(5)) gives the bound 1/sqrt(fan_in)
    assert np.abs(a.weight._data).max() <= bound


def test_linear_init_matches_torch_bounds():
    torch = pytest.importorskip("torch")
    t = torch.nn.Linear(7, 3)
    c = nn.Linear(7, 3)
    c.load_state_dict({k: ce.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32)
    np.testing.assert_allclose(c(ce.tensor(x))._data, t(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_load_state_dict_assign_and_non_persistent():
    m = nn.Linear(3, 2)
    src = nn.Linear(3, 2).double().state_dict()
    m.load_state_dict(src, assign=True)
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad
    assert m.weight.dtype == ce.float64 and m.weight._data is src["weight"]._data
    b = Block()
    sd = b.state_dict()
    assert "scratch" not in sd and "count" in sd
    res = Block().load_state_dict(sd)  # non-persistent buffers are neither missing nor expected
    assert res.missing_keys == [] and res.unexpected_keys == []
