"""Adadelta, Adamax, NAdam and RAdam: the fused kernels (cengine._C.*_step) against their plain
*_ref references and numpy formulas on every ISA path and 1/2 threads, the optimizers against
numpy references of torch's single-tensor algorithms and against torch itself (when installed):
trajectories, state_dict layout and round trips, torch state dicts loaded, bad hyper-parameters."""
import copy
import inspect

import numpy as np
import pytest

import cengine as ce
from cengine import _C, optim
from cengine.tensor import _wrap

DTYPES = [np.float32, np.float64]
# one element, primes, an empty tensor, and a group big enough (> 2 x 32768 elements) for the
# update to be split across two threads, including a split inside a tensor
KSHAPES = [(1,), (3, 5), (0,), (17,), (7, 11, 13), (40_003,), (33_000,)]
KSTEPS = 12
KTOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


# ---------------- numpy references of torch's single-tensor algorithms ----------------

def lerp(m, g, w):
    """torch.lerp as torch computes it (weight below 0.5 from the start, else from the end)."""
    w = m.dtype.type(w)
    if w < 0.5:
        return m + w * (g - m)
    return g - (g - m) * (m.dtype.type(1) - w)


def np_adadelta(p, g, st, lr, rho, eps, wd, maximize):
    g = -g if maximize else g
    if wd:
        g = g + wd * p
    st["square_avg"][...] = st["square_avg"] * rho + (1 - rho) * g * g
    std = np.sqrt(st["square_avg"] + eps)
    delta = np.sqrt(st["acc_delta"] + eps) / std * g
    st["acc_delta"][...] = st["acc_delta"] * rho + (1 - rho) * delta * delta
    p -= lr * delta


def np_adamax(p, g, st, step, lr, b1, b2, eps, wd, maximize):
    g = -g if maximize else g
    if wd:
        g = g + wd * p
    st["exp_avg"][...] = lerp(st["exp_avg"], g, 1 - b1)
    st["exp_inf"][...] = np.maximum(st["exp_inf"] * b2, np.abs(g) + eps)
    clr = lr / (1 - b1 ** step)
    p -= clr * (st["exp_avg"] / st["exp_inf"])


def nadam_mu(step, b1, md):
    return b1 * (1.0 - 0.5 * 0.96 ** (step * md)), b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * md))


def np_nadam(p, g, st, step, mu_product, lr, b1, b2, eps, wd, md, decoupled, maximize):
    """mu_product: this parameter's product after this step's factor."""
    g = -g if maximize else g
    if wd:
        if decoupled:
            p *= 1 - lr * wd
        else:
            g = g + wd * p
    mu, mu_next = nadam_mu(step, b1, md)
    st["exp_avg"][...] = lerp(st["exp_avg"], g, 1 - b1)
    st["exp_avg_sq"][...] = st["exp_avg_sq"] * b2 + (1 - b2) * g * g
    denom = np.sqrt(st["exp_avg_sq"] / (1 - b2 ** step)) + eps
    p += (-lr * (1 - mu) / (1 - mu_product)) * (g / denom)
    p += ((-lr * mu_next) / (1 - mu_product * mu_next)) * (st["exp_avg"] / denom)


def np_radam(p, g, st, step, lr, b1, b2, eps, wd, decoupled, maximize):
    g = -g if maximize else g
    if wd:
        if decoupled:
            p *= 1 - lr * wd
        else:
            g = g + wd * p
    st["exp_avg"][...] = lerp(st["exp_avg"], g, 1 - b1)
    st["exp_avg_sq"][...] = st["exp_avg_sq"] * b2 + (1 - b2) * g * g
    bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * step * b2 ** step / bc2
    upd = st["exp_avg"] / bc1 * lr
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        upd = upd * (bc2 ** 0.5 / (np.sqrt(st["exp_avg_sq"]) + eps)) * rect
    p -= upd


# ---------------- the kernels ----------------

STATE_KEYS = {"adadelta": ("square_avg", "acc_delta"), "adamax": ("exp_avg", "exp_inf"),
              "nadam": ("exp_avg", "exp_avg_sq"), "radam": ("exp_avg", "exp_avg_sq")}

KCASES = [
    ("adadelta", dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False)),
    ("adadelta", dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.05, maximize=True)),
    ("adamax", dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                    maximize=False)),
    ("adamax", dict(lr=1e-2, beta1=0.3, beta2=0.9, eps=1e-6, weight_decay=0.02, maximize=True)),
    ("nadam", dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                   momentum_decay=4e-3, decoupled=False, maximize=False)),
    ("nadam", dict(lr=1e-2, beta1=0.3, beta2=0.99, eps=1e-6, weight_decay=0.05,
                   momentum_decay=0.1, decoupled=True, maximize=True)),
    ("nadam", dict(lr=1e-2, beta1=0.8, beta2=0.9, eps=1e-8, weight_decay=0.05,
                   momentum_decay=4e-3, decoupled=False, maximize=False)),
    ("radam", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False,
                   maximize=False)),
    # beta2 = 0.9: rho_inf = 19, so the rectified branch starts at step 3
    ("radam", dict(lr=1e-2, beta1=0.3, beta2=0.9, eps=1e-6, weight_decay=0.05, decoupled=True,
                   maximize=True)),
    ("radam", dict(lr=1e-2, beta1=0.9, beta2=0.9, eps=1e-8, weight_decay=0.05, decoupled=False,
                   maximize=False)),
]
KIDS = ["%s-%d" % (c[0], i) for i, c in enumerate(KCASES)]


def kernel_call(name, ps, gs, states, step, mus, hp, reference=False):
    s1, s2 = states
    n = len(ps)
    if name == "adadelta":
        _C.adadelta_step(ps, gs, s1, s2, reference=reference, **hp)
    elif name == "adamax":
        _C.adamax_step(ps, gs, s1, s2, [step] * n, reference=reference, **hp)
    elif name == "nadam":
        _C.nadam_step(ps, gs, s1, s2, [step] * n, mus, reference=reference, **hp)
    else:
        _C.radam_step(ps, gs, s1, s2, [step] * n, reference=reference, **hp)


def numpy_call(name, p, g, st, step, mu, hp):
    if name == "adadelta":
        np_adadelta(p, g, st, hp["lr"], hp["rho"], hp["eps"], hp["weight_decay"],
                    hp["maximize"])
    elif name == "adamax":
        np_adamax(p, g, st, step, hp["lr"], hp["beta1"], hp["beta2"], hp["eps"],
                  hp["weight_decay"], hp["maximize"])
    elif name == "nadam":
        np_nadam(p, g, st, step, mu, hp["lr"], hp["beta1"], hp["beta2"], hp["eps"],
                 hp["weight_decay"], hp["momentum_decay"], hp["decoupled"], hp["maximize"])
    else:
        np_radam(p, g, st, step, hp["lr"], hp["beta1"], hp["beta2"], hp["eps"],
                 hp["weight_decay"], hp["decoupled"], hp["maximize"])


def run_kernel(name, hp, dtype, reference=False, seed=0, shapes=KSHAPES, steps=KSTEPS):
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(s).astype(dtype) for s in shapes]
    states = [[np.zeros_like(p) for p in ps] for _ in range(2)]
    mp = 1.0
    for step in range(1, steps + 1):
        gs = [rng.standard_normal(p.shape).astype(dtype) for p in ps]
        if name == "nadam":
            mp *= nadam_mu(step, hp["beta1"], hp["momentum_decay"])[0]
        kernel_call(name, ps, gs, states, step, [mp] * len(ps), hp, reference)
    return ps, states


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,hp", KCASES, ids=KIDS)
def test_kernel_vs_ref_every_isa_and_thread_count(isa, nthreads, name, hp, dtype):
    got, gst = run_kernel(name, hp, dtype)
    want, wst = run_kernel(name, hp, dtype, reference=True)
    for a, b in zip(got + gst[0] + gst[1], want + wst[0] + wst[1]):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **KTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,hp", KCASES, ids=KIDS)
def test_ref_vs_numpy_formula(name, hp, dtype):
    """The plain C reference follows torch's formula (checked against numpy, in the dtype)."""
    got, gst = run_kernel(name, hp, dtype, reference=True, shapes=[(1,), (17,), (300,)])
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(s).astype(dtype) for s in [(1,), (17,), (300,)]]
    sts = [{k: np.zeros_like(p) for k in STATE_KEYS[name]} for p in ps]
    mp = 1.0
    for step in range(1, KSTEPS + 1):
        gs = [rng.standard_normal(p.shape).astype(dtype) for p in ps]
        if name == "nadam":
            mp *= nadam_mu(step, hp["beta1"], hp["momentum_decay"])[0]
        for p, g, st in zip(ps, gs, sts):
            numpy_call(name, p, g, st, step, mp, hp)
    k1, k2 = STATE_KEYS[name]
    for i, p in enumerate(ps):
        np.testing.assert_allclose(got[i], p, **KTOL[dtype])
        np.testing.assert_allclose(gst[0][i], sts[i][k1], **KTOL[dtype])
        np.testing.assert_allclose(gst[1][i], sts[i][k2], **KTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,hp", [KCASES[1], KCASES[3], KCASES[5], KCASES[8]],
                         ids=["adadelta", "adamax", "nadam", "radam"])
def test_kernel_same_bits_on_1_and_2_threads(isa, name, hp, dtype):
    old = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one, s1 = run_kernel(name, hp, dtype)
        _C.set_num_threads(2)
        two, s2 = run_kernel(name, hp, dtype)
    finally:
        _C.set_num_threads(old)
    for a, b in zip(one + s1[0] + s1[1], two + s2[0] + s2[1]):
        np.testing.assert_array_equal(a, b)


def test_adamax_kernel_keeps_nan(isa):
    """exp_inf = max(beta2*exp_inf, |g| + eps) propagates a NaN from either side (torch.maximum),
    on the vector body and the tail."""
    for dtype in DTYPES:
        for ref in (False, True):
            n = 37
            p = np.ones(n, dtype)
            g = np.ones(n, dtype)
            g[3] = np.nan
            g[n - 1] = np.nan
            m = np.zeros(n, dtype)
            u = np.zeros(n, dtype)
            u[5] = np.nan
            u[n - 2] = np.nan
            _C.adamax_step([p], [g], [m], [u], [1], 0.1, reference=ref)
            bad = [3, 5, n - 2, n - 1]
            assert np.all(np.isnan(u[bad])) and np.all(np.isnan(p[bad]))
            ok = np.setdiff1d(np.arange(n), bad)
            assert np.all(np.isfinite(u[ok])) and np.all(np.isfinite(p[ok]))


def test_kernel_bad_input():
    p = [np.zeros(3, np.float32)]
    g = [np.zeros(3, np.float32)]
    with pytest.raises(TypeError, match=r"adadelta_step: grads\[0\] has dtype float64"):
        _C.adadelta_step(p, [np.zeros(3)], [np.zeros(3, np.float32)], [np.zeros(3, np.float32)],
                         1.0)
    with pytest.raises(ValueError, match=r"adamax_step: exp_infs\[0\] has 4 elements"):
        _C.adamax_step(p, g, [np.zeros(3, np.float32)], [np.zeros(4, np.float32)], [1], 1e-3)
    with pytest.raises(ValueError, match=r"radam_step: steps\[0\] = 0, expected >= 1"):
        _C.radam_step(p, g, [np.zeros(3, np.float32)], [np.zeros(3, np.float32)], [0], 1e-3)
    with pytest.raises(ValueError, match="nadam_step: mu_products must be a list of 1 floats"):
        _C.nadam_step(p, g, [np.zeros(3, np.float32)], [np.zeros(3, np.float32)], [1], [], 1e-3)
    with pytest.raises(ValueError, match=r"nadam_step: exp_avgs\[0\] is read-only"):
        ro = np.zeros(3, np.float32)
        ro.flags.writeable = False
        _C.nadam_step(p, g, [ro], [np.zeros(3, np.float32)], [1], [0.5], 1e-3)
    with pytest.raises(TypeError, match="parameters must be float32 or float64, got int64"):
        _C.adadelta_step([np.zeros(3, np.int64)], g, g, g, 1.0)


# ---------------- the optimizers ----------------

SHAPES = [(1,), (4, 3), (17,), (2, 3, 5), (300,)]
STEPS = 20
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


class Ref:
    """numpy reference optimizer: state per parameter index, torch's state keys."""

    def __init__(self, name, **kw):
        self.name, self.kw, self.state = name, kw, {}

    def update(self, i, p, g):
        kw = self.kw
        st = self.state.get(i)
        if st is None:
            st = self.state[i] = {"step": 0}
            for k in STATE_KEYS[self.name.lower()]:
                st[k] = np.zeros_like(p)
            if self.name == "NAdam":
                st["mu_product"] = np.float32(1.0)
        st["step"] += 1
        t = st["step"]
        p = p.copy()
        lr, wd, maximize = kw.get("lr"), kw.get("weight_decay", 0), kw.get("maximize", False)
        b1, b2 = kw.get("betas", (0.9, 0.999))
        if self.name == "Adadelta":
            np_adadelta(p, g, st, kw.get("lr", 1.0), kw.get("rho", 0.9), kw.get("eps", 1e-6), wd,
                        maximize)
        elif self.name == "Adamax":
            np_adamax(p, g, st, t, lr or 2e-3, b1, b2, kw.get("eps", 1e-8), wd, maximize)
        elif self.name == "NAdam":
            md = kw.get("momentum_decay", 4e-3)
            st["mu_product"] = np.float32(st["mu_product"] * np.float32(nadam_mu(t, b1, md)[0]))
            np_nadam(p, g, st, t, float(st["mu_product"]), lr or 2e-3, b1, b2,
                     kw.get("eps", 1e-8), wd, md, kw.get("decoupled_weight_decay", False),
                     maximize)
        else:
            np_radam(p, g, st, t, lr or 1e-3, b1, b2, kw.get("eps", 1e-8), wd,
                     kw.get("decoupled_weight_decay", False), maximize)
        return p


CASES = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.05, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=1e-2, betas=(0.3, 0.9), eps=1e-6, weight_decay=0.05, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.05, momentum_decay=0.01)),
    ("NAdam", dict(lr=1e-2, betas=(0.3, 0.9), weight_decay=0.1, decoupled_weight_decay=True,
                   maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=1e-2, betas=(0.9, 0.9), weight_decay=0.05)),
    ("RAdam", dict(lr=1e-2, betas=(0.3, 0.95), weight_decay=0.1, decoupled_weight_decay=True,
                   maximize=True)),
]
CASE_IDS = ["%s-%d" % (c[0], i) for i, c in enumerate(CASES)]


def make_params(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return rng, [_wrap(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def grad_plan(rng, params, steps, dtype):
    """Gradients per step; parameter 2 has none on every third step (skipped, its step lags)
    and parameter 4 none at all (no state, unchanged)."""
    plan = []
    for step in range(steps):
        gs = []
        for i, p in enumerate(params):
            if i == 4 or (i == 2 and step % 3 == 1):
                gs.append(None)
            else:
                gs.append(rng.standard_normal(p.shape).astype(dtype))
        plan.append(gs)
    return plan


def set_grads(params, gs):
    for p, g in zip(params, gs):
        p.grad = None if g is None else _wrap(g.copy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_optimizer_vs_numpy_reference(name, kw, dtype):
    rng, params = make_params(dtype)
    want = [p._data.copy() for p in params]
    opt = getattr(optim, name)(params, **kw)
    ref = Ref(name, **kw)
    for gs in grad_plan(rng, params, STEPS, dtype):
        set_grads(params, gs)
        opt.step()
        for i, g in enumerate(gs):
            if g is not None:
                want[i] = ref.update(i, want[i], g)
    for p, w in zip(params, want):
        assert p._data.dtype == dtype
        np.testing.assert_allclose(p._data, w, **TOL[dtype])
    assert params[4] not in opt.state
    np.testing.assert_array_equal(params[4]._data, want[4])
    assert float(opt.state[params[2]]["step"]) == STEPS - len(range(1, STEPS, 3))


def torch_params(torch, params):
    return [torch.tensor(p._data.copy(), requires_grad=True) for p in params]


def set_torch_grads(torch, tparams, gs):
    for tp, g in zip(tparams, gs):
        tp.grad = None if g is None else torch.tensor(g.copy())


def assert_close_torch(params, tparams, dtype):
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p._data, tp.detach().numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_trajectory_matches_torch(name, kw, dtype):
    torch = pytest.importorskip("torch")
    rng, params = make_params(dtype, 11)
    tparams = torch_params(torch, params)
    groups = [{"params": params[:3]}, {"params": params[3:], "weight_decay": 0.01}]
    tgroups = [{"params": tparams[:3]}, {"params": tparams[3:], "weight_decay": 0.01}]
    opt = getattr(optim, name)(groups, foreach=False, **kw)
    topt = getattr(torch.optim, name)(tgroups, foreach=False, **kw)
    for gs in grad_plan(rng, params, STEPS, dtype):
        set_grads(params, gs)
        set_torch_grads(torch, tparams, gs)
        opt.step()
        topt.step()
    assert_close_torch(params, tparams, dtype)
    # the same state entries, with torch's names, shapes and dtypes
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert set(sd["state"]) == set(tsd["state"])
    for k, tst in tsd["state"].items():
        st = sd["state"][k]
        assert list(st) == list(tst)
        for key, tv in tst.items():
            v = st[key]
            assert tuple(v.shape) == tuple(tv.shape), key
            assert str(v.dtype).replace("cengine.", "") == str(tv.dtype).replace("torch.", ""), key
            np.testing.assert_allclose(v._data, tv.numpy(), **TOL[dtype])
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert g == tg


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_trajectory_matches_torch_foreach_and_float64_default(name):
    """torch's foreach path gives the same numbers; with float64 as the default dtype the 0-d
    state (step, NAdam's mu_product) is float64 in both."""
    torch = pytest.importorskip("torch")
    old, told = ce.get_default_dtype(), torch.get_default_dtype()
    ce.set_default_dtype(ce.float64)
    torch.set_default_dtype(torch.float64)
    try:
        rng, params = make_params(np.float64, 5)
        tparams = torch_params(torch, params)
        opt = getattr(optim, name)(params, weight_decay=0.01)
        topt = getattr(torch.optim, name)(tparams, weight_decay=0.01, foreach=True)
        for gs in grad_plan(rng, params, STEPS, np.float64):
            set_grads(params, gs)
            set_torch_grads(torch, tparams, gs)
            opt.step()
            topt.step()
        assert_close_torch(params, tparams, np.float64)
        for k, tst in topt.state_dict()["state"].items():
            for key, tv in tst.items():
                if tv.dim() == 0:
                    v = opt.state_dict()["state"][k][key]
                    assert v.dtype == ce.float64 and tv.dtype == torch.float64
                    assert float(v) == pytest.approx(float(tv), rel=1e-12)
    finally:
        ce.set_default_dtype(old)
        torch.set_default_dtype(told)


def to_cengine_state(tsd):
    """A torch optimizer state dict with its tensors as cengine tensors (the numbers only)."""
    out = copy.deepcopy(tsd)
    out["state"] = {k: {n: _wrap(v.detach().numpy().copy()) for n, v in st.items()}
                    for k, st in tsd["state"].items()}
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", [CASES[1], CASES[3], CASES[6], CASES[9]],
                         ids=["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_load_torch_state_dict_and_continue(name, kw, dtype):
    torch = pytest.importorskip("torch")
    rng, params = make_params(dtype, 3)
    tparams = torch_params(torch, params)
    topt = getattr(torch.optim, name)(tparams, **kw)
    plan = grad_plan(rng, params, 2 * STEPS, dtype)
    for gs in plan[:STEPS]:
        set_torch_grads(torch, tparams, gs)
        topt.step()
    # a fresh cengine optimizer on torch's current parameters, loaded with torch's state
    params = [_wrap(tp.detach().numpy().copy(), requires_grad=True) for tp in tparams]
    opt = getattr(optim, name)(params, **kw)
    opt.load_state_dict(to_cengine_state(topt.state_dict()))
    for gs in plan[STEPS:]:
        set_grads(params, gs)
        set_torch_grads(torch, tparams, gs)
        opt.step()
        topt.step()
    assert_close_torch(params, tparams, dtype)
    # and torch loads cengine's state dict (names and shapes compatible)
    sd = opt.state_dict()
    tsd = copy.deepcopy(sd)
    tsd["state"] = {k: {n: torch.tensor(v._data.copy()) for n, v in st.items()}
                    for k, st in sd["state"].items()}
    topt2 = getattr(torch.optim, name)(torch_params(torch, params), **kw)
    topt2.load_state_dict(tsd)
    assert topt2.state_dict()["param_groups"] == topt.state_dict()["param_groups"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_state_dict_resume_is_bit_identical(name, kw, dtype):
    rng, params = make_params(dtype, 7)
    plan = grad_plan(rng, params, STEPS, dtype)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.5 * kw.get("lr", 1e-3)}]
    opt = getattr(optim, name)(groups, **kw)
    for gs in plan[:10]:
        set_grads(params, gs)
        opt.step()
    snap_state = copy.deepcopy(opt.state_dict())
    snap_params = [p._data.copy() for p in params]
    for gs in plan[10:]:
        set_grads(params, gs)
        opt.step()

    params2 = [_wrap(a.copy(), requires_grad=True) for a in snap_params]
    opt2 = getattr(optim, name)([{"params": params2[:2]}, {"params": params2[2:]}], **kw)
    opt2.load_state_dict(snap_state)
    assert opt2.param_groups[1]["lr"] == 0.5 * kw.get("lr", 1e-3)
    for gs in plan[10:]:
        set_grads(params2, gs)
        opt2.step()
    sd, sd2 = opt.state_dict(), opt2.state_dict()
    if name == "NAdam" and dtype == np.float64:
        # loading casts mu_product to the parameter's dtype, as torch's load_state_dict does,
        # so the product continues in float64: equal up to float rounding, not bit for bit
        assert all(st["mu_product"].dtype == ce.float64 for st in sd2["state"].values())
        check = lambda a, b: np.testing.assert_allclose(a, b, **TOL[dtype])  # noqa: E731
    else:
        check = np.testing.assert_array_equal
    for a, b in zip(params, params2):
        check(a._data, b._data)
    for k, st in sd["state"].items():
        for key, v in st.items():
            w = sd2["state"][k][key]._data
            assert v._data.shape == w.shape
            if key == "mu_product" and check is not np.testing.assert_array_equal:
                np.testing.assert_allclose(v._data, w, rtol=1e-6)   # float32 vs float64
            else:
                check(v._data, w)


def test_nadam_mu_product_is_0d_in_scalar_dtype():
    rng, params = make_params(np.float64, shapes=[(1,), (3,)])
    opt = optim.NAdam(params)
    set_grads(params, [np.ones(1), np.ones(3)])
    opt.step()
    opt.step()
    for p in params:
        mp = opt.state[p]["mu_product"]
        assert mp.shape == () and mp.dtype == ce.float32
        mu1 = 0.9 * (1 - 0.5 * 0.96 ** 0.004)
        mu2 = 0.9 * (1 - 0.5 * 0.96 ** 0.008)
        assert float(mp) == float(np.float32(np.float32(mu1) * np.float32(mu2)))
    # a checkpoint holding plain numbers for step and mu_product (old torch) still loads
    sd = opt.state_dict()
    for st in sd["state"].values():
        st["step"] = 2.0
        st["mu_product"] = float(st["mu_product"])
    opt2 = optim.NAdam([_wrap(p._data.copy(), requires_grad=True) for p in params])
    opt2.load_state_dict(sd)
    set_grads(opt2.param_groups[0]["params"], [np.ones(1), np.ones(3)])
    opt2.step()
    st = opt2.state[opt2.param_groups[0]["params"][0]]
    assert float(st["step"]) == 3.0 and st["mu_product"].shape == ()


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_mixed_dtypes_and_non_contiguous_params(name):
    rng = np.random.default_rng(4)
    base = rng.standard_normal((5, 4))
    a = _wrap(base.T, requires_grad=True)            # transposed view, updated in place
    b = _wrap(rng.standard_normal(7).astype(np.float32), requires_grad=True)
    opt = getattr(optim, name)([a, b], weight_decay=0.01)
    ref = Ref(name, weight_decay=0.01)
    wa, wb = a._data.copy(), b._data.copy()
    for _ in range(5):
        ga, gb = rng.standard_normal((4, 5)), rng.standard_normal(7).astype(np.float32)
        a.grad, b.grad = _wrap(ga), _wrap(gb)
        opt.step()
        wa, wb = ref.update(0, wa, ga), ref.update(1, wb, gb)
    np.testing.assert_allclose(base.T, wa, **TOL[np.float64])
    assert b._data.dtype == np.float32
    np.testing.assert_allclose(b._data, wb, **TOL[np.float32])


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_training_with_autograd_converges(name):
    rng = np.random.default_rng(0)
    X = ce.tensor(rng.standard_normal((64, 4)).astype(np.float32))
    w_true = ce.tensor(np.array([1.0, -2.0, 0.5, 3.0], np.float32))
    y = (X * w_true).sum(1)
    w = ce.zeros(4, requires_grad=True)
    lr = {"Adadelta": 5.0, "Adamax": 0.1, "NAdam": 0.05, "RAdam": 0.05}[name]
    opt = getattr(optim, name)([w], lr=lr)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = ((X * w).sum(1) - y).pow(2).mean()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.item())
    assert float(loss.item()) < 1e-2 * first
    assert w._version[0] > 0


def test_defaults_signatures_and_repr():
    _, params = make_params(np.float32, shapes=[(3,)])
    a = optim.Adadelta(params).defaults
    assert (a["lr"], a["rho"], a["eps"], a["weight_decay"], a["maximize"]) == \
        (1.0, 0.9, 1e-6, 0, False)
    m = optim.Adamax(params).defaults
    assert (m["lr"], m["betas"], m["eps"], m["weight_decay"]) == (2e-3, (0.9, 0.999), 1e-8, 0)
    n = optim.NAdam(params).defaults
    assert (n["lr"], n["betas"], n["eps"], n["momentum_decay"], n["decoupled_weight_decay"]) == \
        (2e-3, (0.9, 0.999), 1e-8, 4e-3, False)
    r = optim.RAdam(params).defaults
    assert (r["lr"], r["betas"], r["eps"], r["decoupled_weight_decay"]) == \
        (1e-3, (0.9, 0.999), 1e-8, False)
    assert "momentum_decay: 0.004" in repr(optim.NAdam(params))
    # foreach / capturable are accepted (the fused C update serves every setting)
    optim.Adadelta(params, foreach=True, capturable=True)
    optim.RAdam(params, foreach=False, capturable=True)


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_signature_and_defaults_match_torch(name):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(optim, name).__init__)
    theirs = inspect.signature(getattr(torch.optim, name).__init__)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
        [(p.name, p.kind, p.default) for p in theirs.parameters.values()]
    _, params = make_params(np.float32, shapes=[(3,)])
    tp = [torch.zeros(3, requires_grad=True)]
    assert getattr(optim, name)(params).defaults == getattr(torch.optim, name)(tp).defaults


@pytest.mark.parametrize("call,exc,msg", [
    (lambda p: optim.Adadelta(p, lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    (lambda p: optim.Adadelta(p, rho=1.5), ValueError, "Invalid rho value: 1.5"),
    (lambda p: optim.Adadelta(p, rho=-0.1), ValueError, "Invalid rho value: -0.1"),
    (lambda p: optim.Adadelta(p, eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    (lambda p: optim.Adadelta(p, weight_decay=-1.0), ValueError,
     "Invalid weight_decay value: -1.0"),
    (lambda p: optim.Adamax(p, lr=-1e-3), ValueError, "Invalid learning rate: -0.001"),
    (lambda p: optim.Adamax(p, eps=-1e-8), ValueError, "Invalid epsilon value: -1e-08"),
    (lambda p: optim.Adamax(p, betas=(1.0, 0.9)), ValueError,
     "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.Adamax(p, betas=(0.9, -0.1)), ValueError,
     "Invalid beta parameter at index 1: -0.1"),
    (lambda p: optim.Adamax(p, weight_decay=-0.5), ValueError,
     "Invalid weight_decay value: -0.5"),
    (lambda p: optim.NAdam(p, lr=-2.0), ValueError, "Invalid learning rate: -2.0"),
    (lambda p: optim.NAdam(p, momentum_decay=-1e-3), ValueError,
     "Invalid momentum_decay value: -0.001"),
    (lambda p: optim.NAdam(p, betas=(0.9, 1.0)), ValueError,
     "Invalid beta parameter at index 1: 1.0"),
    (lambda p: optim.NAdam(p, eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    (lambda p: optim.RAdam(p, lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    (lambda p: optim.RAdam(p, betas=(-0.1, 0.9)), ValueError,
     "Invalid beta parameter at index 0: -0.1"),
    (lambda p: optim.RAdam(p, weight_decay=-1.0), ValueError,
     "Invalid weight_decay value: -1.0"),
    (lambda p: optim.RAdam(p, lr=ce.tensor([0.1, 0.2])), ValueError,
     "Tensor lr must be 1-element"),
    (lambda p: optim.NAdam(p, fused=True), TypeError, "fused"),
    (lambda p: optim.Adadelta(p, 1.0, 0.9, 1e-6, 0, None, False), TypeError, "positional"),
    (lambda p: optim.Adamax(p, differentiable=True), RuntimeError, "differentiable=True"),
    (lambda p: optim.RAdam([]), ValueError, "optimizer got an empty parameter list"),
])
def test_invalid_hyperparameters(call, exc, msg):
    _, params = make_params(np.float32, shapes=[(3,)])
    with pytest.raises(exc) as e:
        call(params)
    if exc is ValueError:
        assert str(e.value) == msg
    else:
        assert msg in str(e.value)


def test_integer_parameter_rejected_at_step():
    p = _wrap(np.zeros(3, np.int64))
    p.grad = _wrap(np.zeros(3, np.int64))
    opt = optim.RAdam([p])
    with pytest.raises(TypeError, match="RAdam: parameters must be floating point, got int64"):
        opt.step()


def test_tensor_lr_and_closure():
    x = ce.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = optim.Adamax([x], lr=ce.tensor(0.1))

    def closure():
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.item()) == pytest.approx(14.0)
    # first Adamax step: exp_avg = 0.1 g, exp_inf = |g| + eps, clr = lr / 0.1 -> p -= lr*sign(g)
    np.testing.assert_allclose(x._data, np.array([0.9, -1.9, 2.9], np.float32), rtol=1e-6)


def test_mnist_example_trains_with_adadelta(capsys):
    """examples/mnist_cnn.py --optimizer adadelta (the official example's optimizer)."""
    pytest.importorskip("sklearn")
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                        "mnist_cnn.py")
    spec = importlib.util.spec_from_file_location("mnist_cnn_adadelta", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--size", "8", "--epochs", "1", "--batch-size", "32", "--optimizer",
                    "adadelta"])
    assert "optimizer Adadelta" in capsys.readouterr().out
    losses = res["losses"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert res["test_acc"] > 0.8


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_on_misaligned_arrays(dtype, isa, nthreads):
    """Arrays whose data is not aligned to their dtype (one byte into a buffer) are updated
    through aligned copies, with the same results as aligned ones."""
    def odd(a):
        buf = np.zeros(a.nbytes + a.itemsize, np.uint8)
        v = buf[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
        v[...] = a
        assert not v.flags.aligned
        return v

    rng = np.random.default_rng(6)
    shapes = [(33,), (7, 5), (1,)]
    ps = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gs = [rng.standard_normal(s).astype(dtype) for s in shapes]

    def run(wrap):
        out = []
        for name, hp in [KCASES[1], KCASES[3], KCASES[5], KCASES[8]]:
            p = [wrap(x.copy()) for x in ps]
            s1, s2 = ([wrap(np.full_like(x, 0.5)) for x in ps] for _ in range(2))
            kernel_call(name, p, [wrap(g) for g in gs], (s1, s2), 3, [0.3] * len(p), hp)
            out += [np.array(a) for a in p + s1 + s2]
        return out

    for a, b in zip(run(odd), run(lambda a: a)):
        np.testing.assert_array_equal(a, b)
