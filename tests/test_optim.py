"""cengine.optim optimizers and cengine.nn.utils.clip_grad against numpy references of the
PyTorch algorithms (and against torch itself when it is installed). The reference
trajectories, clipping and a training run also go on every device present (fixture `device`:
cuda:0 where CuPy sees a GPU, skipped otherwise), the cuda results against the CPU ones."""
import copy
import math

import numpy as np
import pytest

import cengine as ce
from cengine import optim
from cengine.tensor import _wrap
from cengine.nn.utils.clip_grad import (clip_grad_norm_, clip_grad_value_, get_total_norm,
                                        clip_grads_with_norm_)

SHAPES = [(1,), (4, 3), (17,), (2, 3, 5), (300,)]
STEPS = 32
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ---------------- numpy references (one parameter at a time, torch.optim docs) ----------------

class RefSGD:
    def __init__(self, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 maximize=False):
        self.hp = dict(lr=lr, momentum=momentum, dampening=dampening, wd=weight_decay,
                       nesterov=nesterov, maximize=maximize)
        self.buf = {}

    def update(self, i, p, g):
        h = self.hp
        g = -g if h["maximize"] else g
        if h["wd"]:
            g = g + h["wd"] * p
        if h["momentum"]:
            if i not in self.buf:
                self.buf[i] = g.copy()
            else:
                self.buf[i] = h["momentum"] * self.buf[i] + (1 - h["dampening"]) * g
            g = g + h["momentum"] * self.buf[i] if h["nesterov"] else self.buf[i]
        return p - h["lr"] * g


class RefAdam:
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
                 maximize=False, decoupled=False):
        self.hp = dict(lr=lr, b1=betas[0], b2=betas[1], eps=eps, wd=weight_decay,
                       amsgrad=amsgrad, maximize=maximize, decoupled=decoupled)
        self.st = {}

    def update(self, i, p, g):
        h = self.hp
        if i not in self.st:
            self.st[i] = dict(t=0, m=np.zeros_like(p), v=np.zeros_like(p), vmax=np.zeros_like(p))
        s = self.st[i]
        s["t"] += 1
        g = -g if h["maximize"] else g
        if h["wd"]:
            if h["decoupled"]:
                p = p * (1 - h["lr"] * h["wd"])
            else:
                g = g + h["wd"] * p
        s["m"] = h["b1"] * s["m"] + (1 - h["b1"]) * g
        s["v"] = h["b2"] * s["v"] + (1 - h["b2"]) * g * g
        v = s["v"]
        if h["amsgrad"]:
            s["vmax"] = np.maximum(s["vmax"], s["v"])
            v = s["vmax"]
        bc1 = 1 - h["b1"] ** s["t"]
        bc2 = 1 - h["b2"] ** s["t"]
        return p - (h["lr"] / bc1) * s["m"] / (np.sqrt(v) / math.sqrt(bc2) + h["eps"])


class RefAdagrad:
    def __init__(self, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, maximize=False):
        self.hp = dict(lr=lr, lr_decay=lr_decay, wd=weight_decay,
                       init=initial_accumulator_value, eps=eps, maximize=maximize)
        self.st = {}

    def update(self, i, p, g):
        h = self.hp
        if i not in self.st:
            self.st[i] = dict(t=0, sum=np.full_like(p, h["init"]))
        s = self.st[i]
        s["t"] += 1
        g = -g if h["maximize"] else g
        if h["wd"]:
            g = g + h["wd"] * p
        clr = h["lr"] / (1 + (s["t"] - 1) * h["lr_decay"])
        s["sum"] = s["sum"] + g * g
        return p - clr * g / (np.sqrt(s["sum"]) + h["eps"])


class RefRMSprop:
    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, maximize=False):
        self.hp = dict(lr=lr, alpha=alpha, eps=eps, wd=weight_decay, momentum=momentum,
                       centered=centered, maximize=maximize)
        self.st = {}

    def update(self, i, p, g):
        h = self.hp
        if i not in self.st:
            self.st[i] = dict(sq=np.zeros_like(p), ga=np.zeros_like(p), buf=np.zeros_like(p))
        s = self.st[i]
        g = -g if h["maximize"] else g
        if h["wd"]:
            g = g + h["wd"] * p
        s["sq"] = h["alpha"] * s["sq"] + (1 - h["alpha"]) * g * g
        if h["centered"]:
            s["ga"] = h["alpha"] * s["ga"] + (1 - h["alpha"]) * g
            avg = np.sqrt(s["sq"] - s["ga"] * s["ga"]) + h["eps"]
        else:
            avg = np.sqrt(s["sq"]) + h["eps"]
        if h["momentum"] > 0:
            s["buf"] = h["momentum"] * s["buf"] + g / avg
            return p - h["lr"] * s["buf"]
        return p - h["lr"] * g / avg


CASES = [
    (optim.SGD, RefSGD, dict(lr=0.05)),
    (optim.SGD, RefSGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, RefSGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.SGD, RefSGD, dict(lr=0.05, momentum=0.5, dampening=0.2, maximize=True)),
    (optim.Adam, RefAdam, dict(lr=1e-2)),
    (optim.Adam, RefAdam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01, amsgrad=True)),
    (optim.Adam, RefAdam, dict(lr=1e-2, maximize=True, eps=1e-6)),
    (optim.AdamW, lambda **k: RefAdam(decoupled=True, **{"weight_decay": 1e-2, **k}),
     dict(lr=1e-2)),
    (optim.AdamW, lambda **k: RefAdam(decoupled=True, **k),
     dict(lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True)),
    (optim.Adagrad, RefAdagrad, dict(lr=0.1)),
    (optim.Adagrad, RefAdagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                     initial_accumulator_value=0.1, maximize=True)),
    (optim.RMSprop, RefRMSprop, dict(lr=0.01)),
    (optim.RMSprop, RefRMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    (optim.RMSProp, RefRMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, maximize=True)),
]
CASE_IDS = ["%s-%d" % (c[0].__name__, i) for i, c in enumerate(CASES)]


def make_params(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return rng, [_wrap(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def set_grads(rng, params, skip=()):
    for i, p in enumerate(params):
        if i in skip:
            p.grad = None
        else:
            p.grad = _wrap(rng.standard_normal(p.shape).astype(p._data.dtype))


def _same_on_device(device, cls, kw, dtype, cpu_params, steps, skip_every=3):
    """The trajectory of test_optimizer_vs_numpy_reference once more with the parameters and
    gradients on `device` (nothing on the CPU): the parameters end as the CPU run's, on it."""
    if ce.device(device).type == "cpu":
        return
    rng, params = make_params(dtype)
    params = [p.detach().to(device).requires_grad_() for p in params]
    opt = cls(params, **kw)
    for step in range(steps):
        skip = (2,) if step % skip_every == 1 else ()
        for i, p in enumerate(params):
            p.grad = None if i in skip else _wrap(
                rng.standard_normal(p.shape).astype(dtype)).to(device)
        opt.step()
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    for p, c in zip(params, cpu_params):
        assert p.device == ce.device(device) and p._data.dtype == dtype
        np.testing.assert_allclose(p.detach().cpu().numpy(), c._data, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,ref_cls,kw", CASES, ids=CASE_IDS)
def test_optimizer_vs_numpy_reference(cls, ref_cls, kw, dtype, device):
    rng, params = make_params(dtype)
    want = [p._data.copy() for p in params]
    opt = cls(params, **kw)
    ref = ref_cls(**kw)
    for step in range(STEPS):
        # parameter 2 has no gradient on some steps: it is skipped (its step count lags)
        skip = (2,) if step % 3 == 1 else ()
        set_grads(rng, params, skip)
        opt.step()
        for i, p in enumerate(params):
            if i not in skip:
                want[i] = ref.update(i, want[i], p.grad._data)
    for p, w in zip(params, want):
        assert p._data.dtype == dtype
        np.testing.assert_allclose(p._data, w, **TOL[dtype])
    _same_on_device(device, cls, kw, dtype, params, STEPS)


@pytest.mark.parametrize("cls,ref_cls,kw", [CASES[2], CASES[5], CASES[8], CASES[10], CASES[12]],
                         ids=["sgd", "adam", "adamw", "adagrad", "rmsprop"])
def test_optimizer_every_isa_and_thread_count(isa, nthreads, cls, ref_cls, kw):
    """A group large enough (> 65536 elements) to be split over two threads."""
    dtype = np.float32
    rng, params = make_params(dtype, 1, shapes=[(3,), (40_001,), (257, 129)])
    want = [p._data.copy() for p in params]
    opt = cls(params, **kw)
    ref = ref_cls(**kw)
    for _ in range(30):
        set_grads(rng, params)
        opt.step()
        want = [ref.update(i, w, p.grad._data) for i, (w, p) in enumerate(zip(want, params))]
    for p, w in zip(params, want):
        np.testing.assert_allclose(p._data, w, **TOL[dtype])


def test_mixed_dtypes_in_one_group():
    rng = np.random.default_rng(3)
    a = _wrap(rng.standard_normal(10).astype(np.float32), requires_grad=True)
    b = _wrap(rng.standard_normal(7), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    ref = RefAdam(lr=0.1)
    wa, wb = a._data.copy(), b._data.copy()
    for _ in range(5):
        set_grads(rng, [a, b])
        opt.step()
        wa = ref.update(0, wa, a.grad._data)
        wb = ref.update(1, wb, b.grad._data)
    assert a._data.dtype == np.float32 and b._data.dtype == np.float64
    np.testing.assert_allclose(a._data, wa, **TOL[np.float32])
    np.testing.assert_allclose(b._data, wb, **TOL[np.float64])


def test_param_groups_with_own_options():
    rng, params = make_params(np.float64, 4, shapes=[(5,), (6,), (7,)])
    opt = optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5, "momentum": 0.9}],
                    lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    r0, r1 = RefSGD(lr=0.1), RefSGD(lr=0.5, momentum=0.9)
    want = [p._data.copy() for p in params]
    for _ in range(4):
        set_grads(rng, params)
        opt.step()
        want = [r0.update(0, want[0], params[0].grad._data),
                r0.update(1, want[1], params[1].grad._data),
                r1.update(2, want[2], params[2].grad._data)]
    for p, w in zip(params, want):
        np.testing.assert_allclose(p._data, w, **TOL[np.float64])


def test_add_param_group_and_errors():
    _, params = make_params(np.float32, shapes=[(2,), (3,), (4,)])
    opt = optim.Adam(params[:2])
    opt.add_param_group({"params": params[2], "lr": 0.5})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter "
                                         "group"):
        opt.add_param_group({"params": [params[0]]})
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="params argument given to the optimizer should be an "
                                        "iterable of Tensors or dicts"):
        optim.SGD(params[0], lr=0.1)
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="organized in ordered collections"):
        optim.SGD([{"params": set(params)}], lr=0.1)


@pytest.mark.parametrize("call,msg", [
    (lambda p: optim.SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: optim.Adam(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda p: optim.Adam(p, weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (lambda p: optim.AdamW(p, lr=-1.0), "Invalid learning rate: -1.0"),
    (lambda p: optim.AdamW(p, betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (lambda p: optim.Adagrad(p, lr_decay=-1.0), "Invalid lr_decay value: -1.0"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1.0),
     "Invalid initial_accumulator_value value: -1.0"),
    (lambda p: optim.Adagrad(p, eps=-1.0), "Invalid epsilon value: -1.0"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "Invalid alpha value: -0.5"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda p: optim.RMSprop(p, eps=-0.5), "Invalid epsilon value: -0.5"),
])
def test_invalid_hyperparameters(call, msg):
    _, params = make_params(np.float32, shapes=[(3,)])
    with pytest.raises(ValueError) as e:
        call(params)
    assert str(e.value) == msg


def test_defaults_match_torch():
    _, params = make_params(np.float32, shapes=[(3,)])
    assert optim.SGD(params).defaults["lr"] == 1e-3
    a = optim.Adam(params).defaults
    assert (a["lr"], a["betas"], a["eps"], a["weight_decay"], a["amsgrad"]) == \
        (1e-3, (0.9, 0.999), 1e-8, 0, False)
    w = optim.AdamW(params).defaults
    assert w["weight_decay"] == 1e-2 and w["decoupled_weight_decay"] is True
    g = optim.Adagrad(params).defaults
    assert (g["lr"], g["lr_decay"], g["eps"], g["initial_accumulator_value"]) == \
        (1e-2, 0, 1e-10, 0)
    r = optim.RMSprop(params).defaults
    assert (r["lr"], r["alpha"], r["eps"], r["momentum"], r["centered"]) == \
        (1e-2, 0.99, 1e-8, 0, False)
    assert optim.RMSProp is optim.RMSprop


def test_grad_none_is_skipped_and_has_no_state():
    rng, params = make_params(np.float32, shapes=[(3,), (4,)])
    before = params[1]._data.copy()
    opt = optim.Adam(params, lr=0.1)
    set_grads(rng, params, skip=(1,))
    opt.step()
    np.testing.assert_array_equal(params[1]._data, before)
    assert params[1] not in opt.state and params[0] in opt.state
    assert float(opt.state[params[0]]["step"]) == 1.0


def test_zero_grad():
    rng, params = make_params(np.float32, shapes=[(3,), (4,)])
    opt = optim.SGD(params, lr=0.1)
    set_grads(rng, params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    set_grads(rng, params)
    g0 = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is g0
    assert all(np.all(p.grad._data == 0) for p in params)


def test_step_with_closure_returns_loss():
    x = ce.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = optim.SGD([x], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.item()) == pytest.approx(14.0)
    np.testing.assert_allclose(x._data, np.array([1.0, -2.0, 3.0], np.float32) * 0.8, rtol=1e-6)


def test_step_bumps_version_counter():
    rng, params = make_params(np.float32, shapes=[(3,)])
    v0 = params[0]._version[0]
    opt = optim.SGD(params, lr=0.1)
    set_grads(rng, params)
    opt.step()
    assert params[0]._version[0] == v0 + 1


def test_non_contiguous_parameter_is_updated():
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    p = _wrap(base.T, requires_grad=True)      # a transposed (non C-contiguous) view
    opt = optim.SGD([p], lr=0.5)
    p.grad = _wrap(np.ones((4, 3)))
    opt.step()
    np.testing.assert_array_equal(base, np.arange(12, dtype=np.float64).reshape(3, 4) - 0.5)


@pytest.mark.parametrize("cls,kw", [
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
    (optim.AdamW, dict(lr=1e-2)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_resume_is_bit_identical(cls, kw, dtype):
    rng, params = make_params(dtype, 7)
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(20)]
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": kw["lr"] * 0.5}]
    opt = cls(groups, **kw)
    for gs in grads[:10]:
        for p, g in zip(params, gs):
            p.grad = _wrap(g.copy())
        opt.step()
    snap_state = copy.deepcopy(opt.state_dict())
    snap_params = [p._data.copy() for p in params]
    for gs in grads[10:]:
        for p, g in zip(params, gs):
            p.grad = _wrap(g.copy())
        opt.step()

    params2 = [_wrap(a.copy(), requires_grad=True) for a in snap_params]
    opt2 = cls([{"params": params2[:2]}, {"params": params2[2:]}], **kw)
    opt2.load_state_dict(snap_state)
    assert opt2.param_groups[1]["lr"] == kw["lr"] * 0.5
    for gs in grads[10:]:
        for p, g in zip(params2, gs):
            p.grad = _wrap(g.copy())
        opt2.step()
    for a, b in zip(params, params2):
        np.testing.assert_array_equal(a._data, b._data)
    # loading copies the state: the snapshot is not modified by the resumed optimizer
    sd2 = opt2.state_dict()
    for k, st in snap_state["state"].items():
        for name, v in st.items():
            assert v._data is not sd2["state"][k][name]._data


def test_state_dict_layout_matches_torch():
    rng, params = make_params(np.float32, shapes=[(3,), (4,), (5,)])
    opt = optim.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    set_grads(rng, params, skip=(1,))
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert set(sd["state"]) == {0, 2}
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["param_groups"][1]["lr"] == 0.5
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.Adam(params, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.Adam([{"params": params[:2]}, {"params": params[2:]}]).load_state_dict(sd)


def test_training_with_autograd_converges(device):
    ce.manual_seed(0)
    rng = np.random.default_rng(0)
    X = ce.tensor(rng.standard_normal((64, 4)).astype(np.float32)).to(device)
    w_true = ce.tensor(np.array([1.0, -2.0, 0.5, 3.0], np.float32)).to(device)
    y = (X * w_true).sum(1)
    for cls, kw, gamma in [(optim.SGD, dict(lr=0.05, momentum=0.9), 0.99),
                           (optim.Adam, dict(lr=0.05), 1.0),
                           (optim.AdamW, dict(lr=0.05, weight_decay=0.0), 1.0),
                           (optim.Adagrad, dict(lr=0.5), 0.99),
                           (optim.RMSprop, dict(lr=0.01, momentum=0.9), 0.99)]:
        w = ce.zeros(4, requires_grad=True, device=device)
        opt = cls([w], **kw)
        sched = optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
        for _ in range(300):
            opt.zero_grad()
            loss = (((X * w).sum(1) - y) ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
        assert float(loss.item()) < 1e-3, cls.__name__
        assert w.device == ce.device(device) and w.grad.device == ce.device(device)


# ---------------- gradient clipping ----------------

def _grads_params(dtypes=(np.float32,) * 4, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (50_001,), (7,), (20_000,)]
    ps = []
    for s, dt in zip(shapes, dtypes):
        p = _wrap(np.zeros(s, dt), requires_grad=True)
        p.grad = _wrap((scale * rng.standard_normal(s)).astype(dt))
        ps.append(p)
    return ps


@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 3.0, -math.inf, 0.0])
def test_clip_grad_norm(norm_type, nthreads, device):
    if ce.device(device).type != "cpu":      # the same clipping of the gradients on the device
        ps, ds = _grads_params(scale=0.1), _grads_params(scale=0.1)
        for d in ds:
            d.data = d.data.to(device)
            d.grad = d.grad.to(device)
        want = clip_grad_norm_(ps, 0.05, norm_type=norm_type)
        got = clip_grad_norm_(ds, 0.05, norm_type=norm_type)
        assert got.device == ce.device(device)
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5)
        for p, d in zip(ps, ds):
            assert d.grad.device == ce.device(device)
            np.testing.assert_allclose(d.grad.cpu().numpy(), p.grad._data, rtol=1e-5,
                                       atol=1e-9)
        return
    ps = _grads_params(scale=0.1)
    ps.append(_wrap(np.zeros(3, np.float32), requires_grad=True))   # grad None: ignored
    flat = np.concatenate([p.grad._data.astype(np.float64).ravel() for p in ps[:4]])
    if norm_type == 0.0:
        # torch: the 0-norm of the per-gradient 0-norms (gradients holding a non-zero)
        want = float(sum(1 for p in ps[:4] if np.count_nonzero(p.grad._data)))
    else:
        want = float(np.linalg.norm(flat, norm_type))
    before = [p.grad._data.copy() for p in ps[:4]]
    max_norm = want / 2
    total = clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    assert isinstance(total, ce.Tensor) and total.dtype == ce.float32
    assert float(total.item()) == pytest.approx(want, rel=1e-6)
    coef = np.float32(max_norm) / (np.float32(want) + np.float32(1e-6))
    for p, b in zip(ps, before):
        np.testing.assert_allclose(p.grad._data, b * coef, rtol=1e-6)
    # below the limit: untouched
    after = [p.grad._data.copy() for p in ps[:4]]
    clip_grad_norm_(ps, 1e9, norm_type=norm_type)
    for p, a in zip(ps, after):
        np.testing.assert_array_equal(p.grad._data, a)


def test_clip_grad_norm_mixed_dtypes_and_single_tensor():
    ps = _grads_params(dtypes=(np.float32, np.float64, np.float32, np.float64))
    flat = np.concatenate([p.grad._data.astype(np.float64).ravel() for p in ps])
    total = clip_grad_norm_(ps, 1.0)
    assert total.dtype == ce.float64
    assert float(total.item()) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-12)
    p = ps[2]
    n = float(np.linalg.norm(p.grad._data.astype(np.float64)))
    assert float(clip_grad_norm_(p, 1e9).item()) == pytest.approx(n, rel=1e-6)


def test_clip_grad_norm_nonfinite():
    ps = _grads_params()
    ps[1].grad._data[5] = np.nan
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(ps, 1.0)
    assert math.isnan(float(total.item()))
    assert np.all(np.isnan(ps[0].grad._data))     # scaled by nan, as torch does
    ps = _grads_params()
    ps[0].grad._data[0, 0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ps, 1.0, norm_type="inf", error_if_nonfinite=True)


def test_clip_grad_norm_no_grads():
    p = _wrap(np.zeros(3, np.float32), requires_grad=True)
    assert float(clip_grad_norm_([p], 1.0).item()) == 0.0


def test_get_total_norm_and_clip_with_norm():
    ps = _grads_params(scale=0.5)
    grads = [p.grad for p in ps]
    before = [g._data.copy() for g in grads]
    total = get_total_norm(grads)
    clip_grads_with_norm_(ps, 0.5, total)
    coef = np.float32(0.5) / (total._data + np.float32(1e-6))
    for g, b in zip(grads, before):
        np.testing.assert_allclose(g._data, b * coef, rtol=1e-6)


def test_clip_grad_value():
    ps = _grads_params()
    before = [p.grad._data.copy() for p in ps]
    clip_grad_value_(ps, 0.5)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.grad._data, np.clip(b, -0.5, 0.5))


# ---------------- parity with torch itself (optional) ----------------

TORCH_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.2, maximize=True)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_parity_with_torch(name, kw, dtype):
    torch = pytest.importorskip("torch")
    rng, params = make_params(dtype, 11)
    tparams = [torch.tensor(p._data.copy(), requires_grad=True) for p in params]
    opt = getattr(optim, name)(params, **kw)
    topt = getattr(torch.optim, name)(tparams, foreach=False, **kw)
    for _ in range(STEPS):
        set_grads(rng, params)
        for p, tp in zip(params, tparams):
            tp.grad = torch.tensor(p.grad._data.copy())
        opt.step()
        topt.step()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p._data, tp.detach().numpy(), **tol)


def test_clip_parity_with_torch():
    torch = pytest.importorskip("torch")
    for norm_type in (2.0, math.inf, 1.5):
        ps = _grads_params(seed=3, scale=0.2)
        tps = [torch.zeros(p.shape, requires_grad=True) for p in ps]
        for p, tp in zip(ps, tps):
            tp.grad = torch.tensor(p.grad._data.copy())
        total = clip_grad_norm_(ps, 1.0, norm_type=norm_type)
        ttotal = torch.nn.utils.clip_grad_norm_(tps, 1.0, norm_type=norm_type)
        assert float(total.item()) == pytest.approx(float(ttotal), rel=1e-5)
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(p.grad._data, tp.grad.numpy(), rtol=1e-5, atol=1e-8)


def test_non_contiguous_or_other_dtype_gradient():
    rng = np.random.default_rng(5)
    p = _wrap(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    want = p._data.copy()
    g = rng.standard_normal((4, 3)).astype(np.float32)     # transposed below
    p.grad = _wrap(g.T)
    optim.SGD([p], lr=0.5).step()
    np.testing.assert_allclose(p._data, want - np.float32(0.5) * g.T, rtol=1e-6)
    # assigning a gradient of another dtype or shape raises, as in torch
    with pytest.raises(RuntimeError, match="gradient with dtype 'double'"):
        p.grad = _wrap(g.T.astype(np.float64))
    with pytest.raises(RuntimeError, match="assign a gradient of size"):
        p.grad = _wrap(np.zeros(5, np.float32))
    # replacing the gradient's storage behind the check still cannot misapply it
    p.grad.data = _wrap(np.zeros(5, np.float32))
    with pytest.raises(RuntimeError, match="gradient of a parameter has shape"):
        optim.SGD([p], lr=0.5).step()


def test_step_hooks():
    from cengine.optim.optimizer import register_optimizer_step_post_hook
    rng, params = make_params(np.float32, shapes=[(3,)])
    opt = optim.AdamW(params, lr=0.1)
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, a, k: calls.append(("pre", o is opt)))
    h2 = opt.register_step_post_hook(lambda o, a, k: calls.append(("post", o is opt)))
    h3 = register_optimizer_step_post_hook(lambda o, a, k: calls.append(("global", True)))
    sched = optim.lr_scheduler.StepLR(opt, 1)      # wraps step() again; hooks still run once
    set_grads(rng, params)
    opt.step()
    sched.step()
    assert calls == [("pre", True), ("post", True), ("global", True)]
    for h in (h1, h2, h3):
        h.remove()
    opt.step()
    assert len(calls) == 3
