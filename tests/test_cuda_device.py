"""The cuda device model and dispatch. Without CuPy (this machine): requests for cuda say what
is missing. With the fake CuPy of tests/_fake_cupy.py (fixtures fake_cuda / fake_cuda2): device
tagging, moves, creation with device=, mixed-device errors, ops and autograd on CuPy storage,
Module.to, optimizers, save/load with map_location - the dispatch code a GPU run goes through,
checked on the CPU against the same computation on CPU tensors."""
import importlib.util
import io

import numpy as np
import pytest

import cengine as ce
import cengine.nn.functional as F
from cengine import _device
from _util import run_python

_REAL_CUPY = importlib.util.find_spec("cupy") is not None


def _close(a, b, tol=1e-6):
    """Compare a cengine tensor (any device) with a CPU tensor or array."""
    a = a.detach().cpu().numpy() if isinstance(a, ce.Tensor) else a
    b = b.detach().cpu().numpy() if isinstance(b, ce.Tensor) else np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# ------------------------------------------------------------------ without CuPy
@pytest.mark.skipif(_REAL_CUPY, reason="CuPy is installed here")
def test_cuda_request_names_what_is_missing():
    for f in (lambda: ce.zeros(2, device="cuda"), lambda: ce.ones(1).cuda(),
              lambda: ce.ones(1).to("cuda:0"), lambda: ce.nn.Linear(2, 2).cuda(),
              lambda: ce.tensor([1.0], device=ce.device("cuda", 0)),
              lambda: ce.randn(2, device="cuda")):
        with pytest.raises(RuntimeError, match="cannot use a cuda device") as e:
            f()
        assert 'CuPy is not installed (pip install "cengine[cuda]"' in str(e.value)
    assert ce.cuda.is_available() is False
    assert ce.cuda.device_count() == 0
    with pytest.raises(AssertionError, match="CuPy is not installed"):
        ce.cuda.current_device()
    with pytest.raises(AssertionError, match="CuPy is not installed"):
        ce.cuda.get_device_name(0)


def test_import_cengine_does_not_import_cupy():
    code = ("import sys, cengine; cengine.cuda.is_available(); cengine.ones(2) + 1; "
            "print('cupy' in sys.modules)")
    out = run_python(["-c", code], str(__import__("pathlib").Path(ce.__file__).parents[1]))
    assert out.returncode == 0, out.stderr
    if not _REAL_CUPY:
        assert out.stdout.strip() == "False"


def test_device_objects():
    d = ce.device("cuda:1")
    assert (d.type, d.index, str(d)) == ("cuda", 1, "cuda:1")
    assert ce.device("cuda", 0) == "cuda:0" and ce.device(0) == ce.device("cuda:0")
    assert ce.device("cpu") != ce.device("cuda")
    assert repr(ce.device("cuda", 2)) == "device(type='cuda', index=2)"
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda device type"):
        ce.device("tpu")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        ce.device("cuda:x")
    with pytest.raises(RuntimeError, match="must not be negative"):
        ce.device("cuda", -1)
    assert ce.ones(1).device == ce.device("cpu") and ce.ones(1).get_device() == -1
    assert ce.ones(1).is_cuda is False and ce.ones(1).cpu().is_cpu


def test_pin_memory_accepted():
    t = ce.ones(3)
    assert t.pin_memory() is t and t.is_pinned() is False
    dl = ce.utils.data.DataLoader(ce.utils.data.TensorDataset(ce.arange(6.0)), batch_size=2,
                                  pin_memory=True)
    assert [b[0].tolist() for b in dl] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]


# ------------------------------------------------------------------ the fake CuPy
def test_fake_backend_is_strict(fake_cuda):
    """The stand-in refuses what CuPy refuses, so a host-only code path cannot pass unseen."""
    a = fake_cuda.asarray(np.ones(3, np.float32))
    assert type(a) is not np.ndarray
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        np.add(a, np.ones(3, np.float32))
    with pytest.raises(TypeError):
        ce._C.softmax_forward(a.reshape(1, 3))
    assert type(np.exp(a)) is fake_cuda.ndarray and type(a.sum()) is fake_cuda.ndarray


def test_cuda_module_with_a_gpu(fake_cuda2):
    c = ce.cuda
    assert c.is_available() and c.device_count() == 2 and c.is_initialized()
    assert c.current_device() == 0 and c.get_device_name(1) == "Fake GPU 1"
    assert c.get_device_capability() == (9, 0)
    assert c.get_device_properties(0).total_memory == 1 << 34
    c.synchronize()
    c.synchronize("cuda:1")
    c.manual_seed(3)
    with c.device(1):
        assert c.current_device() == 1
        assert ce.zeros(2, device="cuda").device == ce.device("cuda:1")
    assert c.current_device() == 0
    c.set_device(1)
    assert ce.ones(1).cuda().device == "cuda:1"
    c.set_device(0)
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        ce.zeros(1, device="cuda:2")
    with pytest.raises(ValueError, match="Expected a cuda device"):
        c.set_device("cpu")


def test_accelerator_and_amp_with_a_gpu(fake_cuda):
    assert ce.accelerator.is_available() and ce.accelerator.device_count() == 1
    assert ce.accelerator.current_accelerator() == ce.device("cuda")
    assert ce.accelerator.current_device_index() == 0
    ce.accelerator.synchronize()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # with the CUDA path: no warning, enabled
        a = ce.autocast("cuda")
        s = ce.amp.GradScaler("cuda")
        s2 = ce.cuda.amp.GradScaler()
        a2 = ce.cuda.amp.autocast()
    assert ce.amp.is_autocast_available("cuda")
    with a:
        assert ce.is_autocast_enabled("cuda") and ce.is_autocast_enabled()
        assert ce.get_autocast_dtype("cuda") == ce.float16
        assert not ce.is_autocast_enabled("cpu")
    assert not ce.is_autocast_enabled("cuda")
    with a2:
        assert ce.is_autocast_enabled("cuda")
    assert s.is_enabled() and s2.is_enabled()


def test_creation_with_device(fake_cuda):
    cp = fake_cuda
    ce.manual_seed(0)
    ref = ce.randn(2, 3)
    ce.manual_seed(0)
    made = {
        "zeros": (ce.zeros(2, 3, device="cuda"), np.zeros((2, 3))),
        "ones": (ce.ones(4, device="cuda:0", dtype=ce.float64), np.ones(4)),
        "full": (ce.full((2,), 7.0, device="cuda"), np.full(2, 7.0)),
        "arange": (ce.arange(5, device="cuda"), np.arange(5)),
        "linspace": (ce.linspace(0, 1, 3, device="cuda"), np.linspace(0, 1, 3)),
        "eye": (ce.eye(3, device=ce.device("cuda")), np.eye(3)),
        "tensor": (ce.tensor([[1, 2], [3, 4]], device="cuda"), np.array([[1, 2], [3, 4]])),
        "as_tensor": (ce.as_tensor(np.arange(3.0), device="cuda"), np.arange(3.0)),
        "randn": (ce.randn(2, 3, device="cuda"), ref.numpy()),
        "scalar": (ce.scalar_tensor(2.5, device="cuda"), np.array(2.5)),
        "empty": (ce.empty(0, 2, device="cuda"), np.empty((0, 2))),
    }
    for name, (t, want) in made.items():
        assert t.device == ce.device("cuda:0") and t.is_cuda, name
        assert type(t._data) is cp.ndarray, name
        np.testing.assert_allclose(t.cpu().numpy(), want, err_msg=name)
    assert made["arange"][0].dtype == ce.int64 and made["ones"][0].dtype == ce.float64
    x = made["zeros"][0]
    for like in (ce.zeros_like(x), ce.ones_like(x), ce.empty_like(x), ce.full_like(x, 2),
                 ce.rand_like(x), ce.randn_like(x), x.new_zeros(3), x.new_ones(2),
                 x.new_full((2,), 1.0), x.new_tensor([1.0]), x.new_empty(1)):
        assert like.device == "cuda:0"
    assert ce.zeros_like(x, device="cpu").device == "cpu"
    assert ce.randint(0, 5, (4,), device="cuda").device == "cuda:0"
    t = ce.empty(3, device="cuda")
    t.normal_()
    t.uniform_(0, 1)
    assert t.device == "cuda:0" and (t.cpu().numpy() >= 0).all()
    with pytest.raises(RuntimeError, match="legacy constructor expects device type: cpu but "
                                           "device type: cuda was passed"):
        ce.FloatTensor(2, device="cuda")
    with pytest.raises(RuntimeError, match="legacy constructor expects device type: cpu"):
        ce.Tensor(2, 3, device="cuda:0")
    # ce.tensor of a cuda tensor copies it on its device
    with pytest.warns(UserWarning):
        assert ce.tensor(x).device == "cuda:0"


def test_moves_and_conversions(fake_cuda):
    x = ce.arange(6.0).reshape(2, 3)
    c = x.cuda()
    assert c.device == "cuda:0" and x.device == "cpu"
    assert c.cuda() is c and c.to("cuda:0") is c and c.to("cuda") is c and x.cpu() is x
    assert x.to("cuda", ce.float64).dtype == ce.float64
    assert x.to(c).device == "cuda:0"          # to(other): other's device and dtype
    assert c.to(0).device == "cuda:0"
    back = c.cpu()
    assert back.device == "cpu" and type(back._data) is np.ndarray
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    assert c.tolist() == x.tolist() and c[1, 2].item() == 5.0 and float(c.sum()) == 15.0
    assert bool(c[0, 1] == 1.0) and int(c[1, 0]) == 3 and len(c) == 2
    assert "device='cuda:0'" in repr(c)
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        c.numpy()
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        np.asarray(c)
    np.testing.assert_array_equal(c.numpy(force=True), x.numpy())
    assert c.data_ptr() != 0 and c.get_device() == 0
    assert c.clone().device == "cuda:0" and c.detach().device == "cuda:0"
    assert c.contiguous().device == "cuda:0" and c.t().contiguous().device == "cuda:0"
    import copy
    assert copy.deepcopy(c).device == "cuda:0"


def test_mixed_devices_raise_torch_error(fake_cuda):
    a, b = ce.ones(2, 2).cuda(), ce.ones(2, 2)
    msg = ("Expected all tensors to be on the same device, but found at least two devices, "
           "cuda:0 and cpu!")
    for f in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: F.linear(a, b),
              lambda: ce.cat([a, b]), lambda: ce.where(a > 0, a, b),
              lambda: F.mse_loss(a, b), lambda: F.cross_entropy(a, ce.tensor([0, 1])),
              lambda: a.add_(b), lambda: a.mul_(b), lambda: a == b, lambda: a < b,
              lambda: ce.maximum(a, b), lambda: ce.stack([a, b]),
              lambda: a.__setitem__(0, b[0]), lambda: a.masked_fill(b > 0, 0.0)):
        with pytest.raises(RuntimeError) as e:
            f()
        assert str(e.value) == msg


def test_cpu_scalar_tensor_with_cuda_tensor(fake_cuda):
    """torch lets a 0-d CPU tensor be an operand of an elementwise op on cuda tensors (a CPU
    scalar), either side, in place too; the result is on the cuda device."""
    x = ce.arange(6.0).reshape(2, 3)
    c = x.cuda()
    s = ce.tensor(2.0)
    for got, want in ((c * s, x * 2), (s * c, x * 2), (c + ce.tensor(2.0), x + 2),
                      (s - c, 2 - x), (c / s, x / 2), (s ** c, 2 ** x), (c > s, x > 2),
                      (ce.maximum(c, s), ce.maximum(x, s)), (ce.where(c > 1, c, s),
                                                             ce.where(x > 1, x, s))):
        assert got.device == "cuda:0", got.device
        assert type(got._data) is not np.ndarray
        _close(got, want)
    # torch's promotion: an int cuda tensor times a float CPU scalar is float32
    i = ce.arange(3, device="cuda")
    r = i * ce.tensor(2.5)
    assert r.dtype == ce.float32 and r.device == "cuda:0" and r.tolist() == [0.0, 2.5, 5.0]
    assert (ce.tensor(3) + ce.ones(2, device="cuda", dtype=ce.int64)).dtype == ce.int64
    # 0-d and 0-d: the cuda one decides
    z = ce.tensor(1.5, device="cuda") + ce.tensor(2.0)
    assert z.device == "cuda:0" and z.item() == 3.5
    # in place, with and without a graph, and setitem
    a = ce.zeros(3, device="cuda")
    a.add_(ce.tensor(1.0)).mul_(ce.tensor(3.0))
    a[1] = ce.tensor(7.0)
    assert a.device == "cuda:0" and a.tolist() == [3.0, 7.0, 3.0]
    w = ce.ones(3, device="cuda", requires_grad=True)
    h = w * 1.0
    h.add_(ce.tensor(2.0))
    h[0] = ce.tensor(5.0)
    assert h.device == "cuda:0" and h.tolist() == [5.0, 3.0, 3.0]
    # anything but a 0-d CPU tensor is still refused
    msg = ("Expected all tensors to be on the same device, but found at least two devices, "
           "cuda:0 and cpu!")
    for f in (lambda: c * ce.ones(3), lambda: ce.ones(1) + c, lambda: c.add_(ce.ones(3)),
              lambda: ce.tensor(1.0, device="cuda") * ce.ones(3),
              lambda: c.__setitem__(0, ce.ones(3))):
        with pytest.raises(RuntimeError) as e:
            f()
        assert str(e.value) == msg


def test_cpu_scalar_tensor_gradient_stays_on_the_cpu(fake_cuda):
    """The CPU scalar's gradient is a CPU tensor (torch moves it back), the cuda operand's is
    on cuda; both as the all-CPU computation gives them."""
    grads = {}
    for dev in ("cpu", "cuda"):
        s = ce.tensor(2.0, requires_grad=True)
        w = ce.arange(1.0, 7.0).reshape(2, 3).to(dev).detach().requires_grad_()
        ((w * s + s) / (s + 1.0)).pow(2).sum().backward()
        assert s.grad.device == "cpu" and type(s.grad._data) is np.ndarray
        assert w.grad.device == w.device
        grads[dev] = (s.grad, w.grad)
    _close(grads["cuda"][0], grads["cpu"][0], 1e-5)
    _close(grads["cuda"][1], grads["cpu"][1], 1e-5)


def test_cpu_scalar_tensor_with_the_second_gpu(fake_cuda2):
    b = ce.ones(2, device="cuda:1")
    r = b * ce.tensor(3.0)
    assert r.device == "cuda:1" and r.tolist() == [3.0, 3.0]


def test_to_cuda_means_the_current_device(fake_cuda2):
    """torch: a cuda device without an index is the current device, so .to("cuda") and .cuda()
    copy a tensor of another GPU to it and return a tensor already there as it is."""
    b = ce.arange(3.0, device="cuda:1")
    assert ce.cuda.current_device() == 0
    for moved in (b.to("cuda"), b.to(ce.device("cuda")), b.cuda()):
        assert moved is not b and moved.device == "cuda:0" and moved.tolist() == [0.0, 1.0, 2.0]
    assert b.to("cuda:1") is b and b.cuda(1) is b
    with ce.cuda.device(1):
        assert b.to("cuda") is b and b.cuda() is b
        assert ce.arange(2.0).to("cuda").device == "cuda:1"
    m = ce.nn.Linear(2, 2).to("cuda:1")
    w = m.weight
    m.to("cuda")
    assert m.weight is w and m.weight.device == "cuda:0" and m.bias.device == "cuda:0"
    # differentiable: the gradient goes back to cuda:1
    leaf = ce.ones(2, device="cuda:1", requires_grad=True)
    (leaf.to("cuda") * 2).sum().backward()
    assert leaf.grad.device == "cuda:1" and leaf.grad.tolist() == [2.0, 2.0]


def test_advanced_index_gradients_on_cuda(fake_cuda):
    """Index tensors on cuda: repeated indices add up in the gradient (scatter-add, not a
    set), an int mixed with an index tensor takes torch's dim order, and the gradient of a
    value assigned through an index has the value's shape; all as on the CPU."""
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((2, 3, 4))
    va = rng.standard_normal(3)
    cases = [lambda x, v, d: x[:, ce.tensor([2, 0, 2], device=d)],
             lambda x, v, d: x[1, :, ce.tensor([3, 3], device=d)],
             lambda x, v, d: x.index_select(2, ce.tensor([1, 1, 0], device=d)),
             lambda x, v, d: x[ce.tensor([0, 0], device=d)]]

    def put(x, v, d):
        y = x * 1
        y[1, 2, :3] = v * 2
        y[0, ce.tensor([1, 1], device=d)] = v.sum()
        return y
    for f in cases + [put]:
        res = []
        for d in ("cpu", "cuda:0"):
            x = ce.tensor(xa, device=d, requires_grad=True)
            v = ce.tensor(va, device=d, requires_grad=True)
            y = f(x, v, d)
            w = ce.tensor(np.linspace(-1, 2, y.numel()).reshape(y.shape), device=d)
            (y * w).sum().backward()
            assert y.device == ce.device(d) and x.grad.device == ce.device(d)
            res.append((y, x.grad, v.grad))
        _close(res[1][0], res[0][0])
        _close(res[1][1], res[0][1])
        assert (res[1][2] is None) == (res[0][2] is None)
        if res[0][2] is not None:
            assert res[1][2].shape == res[0][2].shape == (3,)
            _close(res[1][2], res[0][2])


def test_inplace_ops_on_cuda(fake_cuda):
    a = ce.arange(4.0, device="cuda")
    a.add_(ce.ones(4, device="cuda")).mul_(2).sub_(1).div_(ce.full((4,), 2.0, device="cuda"))
    a.relu_()
    a[1] = 7.0
    a[2:] = ce.zeros(2, device="cuda")
    assert a.device == "cuda:0" and a.tolist() == [0.5, 7.0, 0.0, 0.0]
    a.copy_(ce.arange(4.0))                 # copy_ copies across devices, as torch's
    assert a.device == "cuda:0" and a.tolist() == [0.0, 1.0, 2.0, 3.0]
    c = ce.zeros(4)
    c.copy_(a)
    assert c.device == "cpu" and c.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_mixed_cuda_devices(fake_cuda2):
    a = ce.ones(2, device="cuda:0")
    b = ce.ones(2, device="cuda:1")
    assert b.device == "cuda:1" and b.to("cuda:0").device == "cuda:0"
    with pytest.raises(RuntimeError, match="found at least two devices, cuda:0 and cuda:1!"):
        a + b
    assert (a + b.to(a.device)).device == "cuda:0"


def _run_both(fn, *arrays, requires_grad=True):
    """fn on CPU tensors and on their cuda copies; returns (cpu outs, cuda outs, cpu grads,
    cuda grads) with the gradients of sum(out * fixed weights)."""
    res = []
    for dev in ("cpu", "cuda"):
        ts = [ce.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
              for a in arrays]
        ins = [t if dev == "cpu" else t.to(dev) for t in ts]
        out = fn(*ins)
        assert out.device == ce.device(dev if dev == "cpu" else "cuda:0"), fn
        if out.requires_grad:
            w = ce.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape).astype(
                out.detach().cpu().numpy().dtype)).to(out.device)
            (out * w).sum().backward()
        res.append((out, [t.grad for t in ts]))
    (o1, g1), (o2, g2) = res
    return o1, o2, g1, g2


_rng = np.random.default_rng(5)
_X = _rng.standard_normal((4, 7)).astype(np.float64)
_Y = _rng.standard_normal((4, 7)).astype(np.float64)
_W = _rng.standard_normal((5, 7)).astype(np.float64)
_T = np.array([0, 6, 3, 2])

_OPS = {
    "add_mul_div": (lambda a, b: (a + 2 * b) / (1.5 + b * b), (_X, _Y)),
    "exp_log_pow": (lambda a, b: a.exp() + (b * b + 1).log() + a.abs() ** 1.5, (_X, _Y)),
    "sum_mean_max": (lambda a: a.sum(1) + a.mean(0).sum() + a.max(1).values + a.amax(0).sum(),
                     (_X,)),
    "var_std_norm": (lambda a: a.var(1) + a.std(0).sum() + a.norm(), (_X,)),
    "logsumexp": (lambda a: a.logsumexp(1), (_X,)),
    "softmax": (lambda a: F.softmax(a, 1) * 3 + F.log_softmax(a, 0), (_X,)),
    "activations": (lambda a: F.relu(a) + F.gelu(a) + F.gelu(a, approximate="tanh") +
                    a.sigmoid() + a.tanh() + F.silu(a) + F.softplus(a) + F.leaky_relu(a, 0.1),
                    (_X,)),
    "matmul_linear": (lambda a, w: F.linear(a, w, w[:, 0]) + (a @ w.t()).relu(), (_X, _W)),
    "bmm": (lambda a, b: ce.bmm(a.reshape(2, 2, 7), b.reshape(2, 7, 2)).reshape(2, 4), (_X, _Y)),
    "layer_norm": (lambda a, w: F.layer_norm(a, (7,), w[0], w[1]), (_X, _W)),
    "rms_norm": (lambda a, w: F.rms_norm(a, (7,), w[0], 1e-6), (_X, _W)),
    "cross_entropy": (lambda a, t: F.cross_entropy(a, t), (_X, _T)),
    "cross_entropy_opts": (lambda a, w, t: F.cross_entropy(a, t, weight=w[0].abs().detach(),
                                                           ignore_index=3, label_smoothing=0.1,
                                                           reduction="sum"), (_X, _W, _T)),
    "cross_entropy_none": (lambda a, t: F.cross_entropy(a, t, reduction="none"), (_X, _T)),
    "cross_entropy_probs": (lambda a, b: F.cross_entropy(a, F.softmax(b, 1).detach()),
                            (_X, _Y)),
    "nll": (lambda a, t: F.nll_loss(F.log_softmax(a, 1), t), (_X, _T)),
    "mse_l1_huber": (lambda a, b: F.mse_loss(a, b) + F.l1_loss(a, b) + F.huber_loss(a, b),
                     (_X, _Y)),
    "bce_logits": (lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid().detach()),
                   (_X, _Y)),
    "shape_ops": (lambda a, b: ce.cat([a, b], 0).reshape(2, -1).t().unsqueeze(0).sum(0) +
                  ce.stack([a, b]).permute(1, 0, 2).reshape(4, 14).sum(1, keepdim=True)[0],
                  (_X, _Y)),
    "index": (lambda a: a[1:3, ::2] * 2 + a[:, 1:2].expand(4, 4)[:2], (_X,)),
    "clamp_where": (lambda a, b: ce.where(a > b, a, b).clamp(-0.5, 0.5) + ce.maximum(a, b),
                    (_X, _Y)),
    "embedding": (lambda w, i: F.embedding(i, w), (_W, np.array([[0, 4], [4, 1]]))),
    "batch_norm": (lambda a, w: F.batch_norm(a.reshape(2, 2, 7), None, None, w[0, :2],
                                             w[1, :2], training=True), (_X, _W)),
    "scatter_add": (lambda a, b: a.scatter_add(1, ce.tensor([[0, 6]] * 4, device=a.device),
                                               b[:, :2] * 3), (_X, _Y)),
    "gather_sort_topk": (lambda a: a.gather(1, a.argsort(1)[:, :3]) + a.topk(3, 1).values,
                         (_X,)),
    "sdpa_causal": (lambda a, b: F.scaled_dot_product_attention(
        a.reshape(1, 2, 2, 7), b.reshape(1, 2, 2, 7), a.reshape(1, 2, 2, 7), is_causal=True),
        (_X, _Y)),
    "sdpa_bool_mask": (lambda a, b: F.scaled_dot_product_attention(
        a.reshape(2, 2, 7), b.reshape(2, 2, 7), b.reshape(2, 2, 7),
        attn_mask=ce.tensor([[True, False], [True, True]], device=a.device)), (_X, _Y)),
}


@pytest.mark.parametrize("name", sorted(_OPS))
def test_ops_on_cuda_storage_match_cpu(fake_cuda, name):
    fn, arrays = _OPS[name]
    o1, o2, g1, g2 = _run_both(fn, *arrays)
    assert type(o2._data) is fake_cuda.ndarray
    _close(o2, o1, 1e-10)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert b.device == "cpu"      # the leaves are the CPU tensors moved with .to()
            _close(b, a, 1e-10)


def test_transformer_layer_on_cuda(fake_cuda):
    x = _rng.standard_normal((2, 5, 16)).astype(np.float32)
    outs = []
    for dev in ("cpu", "cuda"):
        ce.manual_seed(0)
        layer = ce.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True).to(dev)
        xt = ce.tensor(x, device=dev, requires_grad=True)
        layer(xt, is_causal=True, src_mask=ce.nn.Transformer.generate_square_subsequent_mask(
            5, device=dev)).square().mean().backward()
        outs.append([xt.grad] + [p.grad for p in layer.parameters()])
    for a, b in zip(*outs):
        _close(b, a, 1e-5)
    drop = ce.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.5, batch_first=True).cuda()
    assert drop(ce.ones(2, 5, 16, device="cuda")).device == "cuda:0"


def test_cuda_leaves_get_cuda_grads(fake_cuda):
    x = ce.randn(3, 4, device="cuda", requires_grad=True)
    y = (x.softmax(-1) * ce.arange(4.0, device="cuda")).sum()
    y.backward()
    assert x.grad.device == "cuda:0" and x.grad.shape == x.shape
    g1 = x.grad.cpu()
    y = (x.softmax(-1) * ce.arange(4.0, device="cuda")).sum()
    y.backward()                          # accumulates on the device
    _close(x.grad, 2 * g1.numpy())
    (gx,) = ce.autograd.grad((x * x).sum(), [x])
    assert gx.device == "cuda:0"
    _close(gx, 2 * x.detach().cpu().numpy())
    with pytest.raises(RuntimeError, match="invalid gradient at index 0 - expected device "
                                           "cuda:0 but got cpu"):
        (x * 1).backward(ce.ones(3, 4))


def test_one_hot_and_grad_clipping_on_cuda(fake_cuda):
    t = ce.tensor([0, 2, 1], device="cuda")
    oh = F.one_hot(t, 4)
    assert oh.device == "cuda:0" and oh.dtype == ce.int64
    np.testing.assert_array_equal(oh.cpu().numpy(), np.eye(4, dtype=np.int64)[[0, 2, 1]])
    for norm_type in (2.0, 1.0, float("inf"), 3.0):
        res = []
        for dev in ("cpu", "cuda"):
            ps = [ce.nn.Parameter(ce.tensor(a, device=dev)) for a in (_X, _W)]
            for p, a in zip(ps, (_Y, _W)):
                p.grad = ce.tensor(a * 2, device=dev)
            total = ce.nn.utils.clip_grad_norm_(ps, 0.5, norm_type)
            assert total.device == ps[0].device
            res.append([total] + [p.grad for p in ps])
        for a, b in zip(*res):
            _close(b, a, 1e-12)
    p = ce.nn.Parameter(ce.tensor(_X, device="cuda"))
    p.grad = ce.tensor(_Y, device="cuda")
    ce.nn.utils.clip_grad_value_([p], 0.1)
    _close(p.grad, np.clip(_Y, -0.1, 0.1))


def test_dropout_on_cuda(fake_cuda):
    x = ce.ones(200, 10, device="cuda")
    ce.cuda.manual_seed(1)
    y = F.dropout(x, 0.5)
    ce.cuda.manual_seed(1)
    y2 = F.dropout(x, 0.5)
    assert y.device == "cuda:0"
    v = y.cpu().numpy()
    assert set(np.unique(v)) <= {0.0, 2.0} and 0.3 < (v == 0).mean() < 0.7
    np.testing.assert_array_equal(v, y2.cpu().numpy())
    assert F.dropout(x, 0.5, training=False) is x


def _model():
    ce.manual_seed(0)
    return ce.nn.Sequential(ce.nn.Linear(6, 8), ce.nn.LayerNorm(8), ce.nn.GELU(),
                            ce.nn.Linear(8, 3))


@pytest.mark.parametrize("opt", ["SGD", "AdamW", "Adam_amsgrad", "Adagrad", "RMSprop"])
def test_module_to_and_optimizer_steps(fake_cuda, opt):
    """A few training steps of a model moved with Module.to('cuda') give the CPU run's weights."""
    make = {"SGD": lambda p: ce.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                          weight_decay=0.01),
            "AdamW": lambda p: ce.optim.AdamW(p, lr=0.01, weight_decay=0.1),
            "Adam_amsgrad": lambda p: ce.optim.Adam(p, lr=0.01, amsgrad=True),
            "Adagrad": lambda p: ce.optim.Adagrad(p, lr=0.1),
            "RMSprop": lambda p: ce.optim.RMSprop(p, lr=0.01, momentum=0.5)}[opt]
    x = ce.tensor(_rng.standard_normal((5, 6)), dtype=ce.float32)
    t = ce.tensor([0, 2, 1, 1, 0])
    finals = []
    for dev in ("cpu", "cuda"):
        m = _model()
        params = list(m.parameters())
        assert m.to(dev) is m
        assert [id(p) for p in m.parameters()] == [id(p) for p in params]
        assert all(p.device == ce.device(dev if dev == "cpu" else "cuda:0") for p in params)
        o = make(m.parameters())
        for _ in range(3):
            o.zero_grad()
            loss = F.cross_entropy(m(x.to(dev)), t.to(dev))
            loss.backward()
            o.step()
        for st in o.state.values():
            for k, v in st.items():
                if isinstance(v, ce.Tensor) and k != "step":
                    assert v.device == params[0].device, k
        finals.append([p.detach().cpu().numpy() for p in m.parameters()])
    for a, b in zip(*finals):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)


def test_module_cuda_cpu_roundtrip_and_state_dict_load(fake_cuda):
    m = _model()
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    m.cuda()
    assert all(p.is_cuda for p in m.parameters())
    m.cpu()
    assert not any(p.is_cuda for p in m.parameters())
    m.to(ce.device("cuda"))
    m.load_state_dict(sd)                  # CPU values copied into the cuda parameters
    assert all(p.is_cuda for p in m.parameters())
    for k, v in m.state_dict().items():
        _close(v, sd[k])
    o = ce.optim.Adam(m.parameters())
    m(ce.ones(2, 6, device="cuda")).sum().backward()
    o.step()
    saved = o.state_dict()
    o2 = ce.optim.Adam(m.parameters())
    o2.load_state_dict(saved)
    for st in o2.state.values():
        assert st["exp_avg"].device == "cuda:0" and st["step"].device == "cpu"


def test_save_from_cuda_and_load_with_map_location(fake_cuda, tmp_path):
    m = _model().cuda()
    x = ce.arange(4.0, device="cuda")
    obj = {"model": m.state_dict(), "x": x, "cpu": ce.ones(2)}
    p = tmp_path / "ck.safetensors"
    ce.save(obj, p)
    back = ce.load(p)
    assert back["x"].device == "cuda:0" and back["cpu"].device == "cpu"
    assert all(v.device == "cuda:0" for v in back["model"].values())
    _close(back["x"], x)
    on_cpu = ce.load(p, map_location="cpu")
    assert on_cpu["x"].device == "cpu" and type(on_cpu["x"]._data) is np.ndarray
    _close(on_cpu["model"]["0.weight"], m[0].weight)
    assert ce.load(p, map_location={"cuda:0": "cpu"})["x"].device == "cpu"
    assert ce.load(p, map_location="cuda")["cpu"].device == "cuda:0"
    seen = []
    out = ce.load(p, map_location=lambda t, loc: seen.append(loc))
    assert out["x"].device == "cuda:0" and "cuda:0" in seen and "cpu" in seen
    buf = io.BytesIO()
    ce.save(x, buf)
    buf.seek(0)
    assert ce.load(buf, map_location=ce.device("cpu")).device == "cpu"
    # pickling (copy, multiprocessing) of a cuda tensor goes through the host
    import pickle
    assert pickle.loads(pickle.dumps(x)).device == "cuda:0"


@pytest.mark.skipif(_REAL_CUPY, reason="CuPy is installed here")
def test_loading_a_cuda_checkpoint_without_cuda_names_what_is_missing(fake_cuda, tmp_path,
                                                                     monkeypatch):
    p = tmp_path / "ck.safetensors"
    ce.save({"x": ce.ones(2, device="cuda")}, p)
    monkeypatch.delitem(__import__("sys").modules, "cupy")
    saved, _device._CP[0] = _device._CP[0], None
    try:
        with pytest.raises(RuntimeError, match="CuPy is not installed"):
            ce.load(p)
        assert ce.load(p, map_location="cpu")["x"].device == "cpu"
    finally:
        _device._CP[0] = saved


@pytest.mark.parametrize("name, run", [
    ("conv2d", lambda ce: ce.nn.Conv2d(2, 3, 3).to("cuda")(ce.randn(1, 2, 5, 5, device="cuda"))),
    ("conv2d", lambda ce: ce.nn.Conv1d(2, 3, 3).to("cuda")(ce.randn(1, 2, 5, device="cuda"))),
    ("conv_transpose2d",
     lambda ce: ce.nn.ConvTranspose2d(2, 3, 3).to("cuda")(ce.randn(1, 2, 5, 5, device="cuda"))),
    ("max_pool", lambda ce: ce.nn.functional.max_pool2d(ce.randn(1, 2, 4, 4, device="cuda"), 2)),
    ("avg_pool", lambda ce: ce.nn.functional.avg_pool2d(ce.randn(1, 2, 4, 4, device="cuda"), 2)),
    ("adaptive_avg_pool",
     lambda ce: ce.nn.functional.adaptive_avg_pool2d(ce.randn(1, 2, 4, 4, device="cuda"), 1)),
    ("rnn", lambda ce: ce.nn.LSTM(3, 4).to("cuda")(ce.randn(2, 1, 3, device="cuda"))),
    ("rnn", lambda ce: ce.nn.GRU(3, 4).to("cuda")(ce.randn(2, 1, 3, device="cuda"))),
    ("ctc_loss", lambda ce: ce.nn.functional.ctc_loss(
        ce.randn(5, 1, 4, device="cuda").log_softmax(2), ce.tensor([[1, 2]], device="cuda"),
        [5], [2])),
])
def test_ops_without_a_cuda_path_say_so(fake_cuda, name, run):
    """An op with no cuda path raises torch's NotImplementedError naming the op and the CUDA
    backend, not a TypeError from inside the C binding."""
    import cengine as ce
    with pytest.raises(NotImplementedError, match=r"Could not run '%s' with arguments from the "
                       r"'CUDA' backend" % name):
        run(ce)


def test_the_device_check_helper_compares_with_the_cpu(fake_cuda):
    """_util.same_on_device (the cuda half of the device-parametrized op/layer/loss tests) on
    the fake CuPy: it passes for an op that agrees with the CPU, and fails when the values,
    the device of an output, or a gradient differ."""
    from _util import same_on_device
    x = ce.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    w = ce.tensor(np.linspace(0, 1, 12).reshape(4, 3), requires_grad=True)
    outs = same_on_device("cuda:0", F.linear, x, w)
    assert outs[0].device == "cuda:0"
    assert same_on_device("cpu", F.linear, x, w) is None
    m = ce.nn.Linear(3, 2).double()
    same_on_device("cuda", lambda m, x: m(x), m, x)
    assert m.weight.device == "cpu" and m.weight.grad is None     # the module was copied
    with pytest.raises(AssertionError):                            # other values on cuda
        same_on_device("cuda:0", lambda x: x * (2 if x.device.type == "cpu" else 3), x)
    with pytest.raises(AssertionError, match="an output is on cpu"):
        same_on_device("cuda:0", lambda x: x.cpu() * 2, x)
    with pytest.raises(AssertionError, match="Not equal"):         # same values, but
        same_on_device("cuda:0", lambda x: x * 2 if x.device.type == "cpu"   # another gradient
                       else x.detach() * 2 + x * 0, x)
