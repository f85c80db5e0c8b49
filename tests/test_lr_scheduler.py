"""cengine.optim.lr_scheduler: lr sequences against closed forms computed here, PyTorch step-order
semantics, state_dict round trips, ReduceLROnPlateau with plateaus, cooldown and min_lr."""
import copy
import math
import warnings

import numpy as np
import pytest

from cengine import optim
from cengine.optim import lr_scheduler as S
from cengine.tensor import _wrap

BASE = [0.1, 0.05]


def make_opt(cls=optim.SGD, lrs=BASE, **kw):
    groups = [{"params": [_wrap(np.zeros(3, np.float32), requires_grad=True)], "lr": lr}
              for lr in lrs]
    return cls(groups, **kw)


def run(sched, n, metric=None):
    """lrs of epoch 0 (after construction) and of the n following epochs; optimizer.step()
    before scheduler.step() as PyTorch requires."""
    out = [list(sched.get_last_lr())]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
    return out


def check(seq, expected_fn, n):
    for e in range(n + 1):
        for g, base in enumerate(BASE):
            assert seq[e][g] == pytest.approx(expected_fn(base, e), rel=1e-9, abs=1e-15), (e, g)


def test_lambda_lr():
    opt = make_opt()
    check(run(S.LambdaLR(opt, lambda e: 0.95 ** e), 12), lambda b, e: b * 0.95 ** e, 12)
    opt = make_opt()
    seq = run(S.LambdaLR(opt, [lambda e: 1.0 / (e + 1), lambda e: 2.0]), 5)
    for e in range(6):
        assert seq[e] == pytest.approx([0.1 / (e + 1), 0.1])


def test_multiplicative_lr():
    opt = make_opt()
    check(run(S.MultiplicativeLR(opt, lambda e: 0.9), 10), lambda b, e: b * 0.9 ** e, 10)


def test_step_lr():
    opt = make_opt()
    check(run(S.StepLR(opt, step_size=3, gamma=0.5), 14), lambda b, e: b * 0.5 ** (e // 3), 14)


def test_multistep_lr_with_repeated_milestone():
    opt = make_opt()
    ms = [2, 5, 5, 8]
    check(run(S.MultiStepLR(opt, milestones=ms, gamma=0.1), 10),
          lambda b, e: b * 0.1 ** sum(m <= e for m in ms), 10)


def test_exponential_lr():
    opt = make_opt()
    check(run(S.ExponentialLR(opt, gamma=0.9), 20), lambda b, e: b * 0.9 ** e, 20)


def test_cosine_annealing_lr_recursive_matches_closed_form():
    opt = make_opt()
    T, eta = 10, 0.001
    check(run(S.CosineAnnealingLR(opt, T_max=T, eta_min=eta), 35),
          lambda b, e: eta + (b - eta) * (1 + math.cos(math.pi * e / T)) / 2, 35)


def test_linear_lr_warmup():
    opt = make_opt()
    sf, ef, T = 0.25, 1.0, 4
    check(run(S.LinearLR(opt, start_factor=sf, end_factor=ef, total_iters=T), 8),
          lambda b, e: b * (sf + (ef - sf) * min(e, T) / T), 8)


def test_constant_lr():
    opt = make_opt()
    check(run(S.ConstantLR(opt, factor=0.5, total_iters=3), 6),
          lambda b, e: b * (0.5 if e < 3 else 1.0), 6)


def test_polynomial_lr():
    opt = make_opt()
    check(run(S.PolynomialLR(opt, total_iters=5, power=2.0), 8),
          lambda b, e: b * (1 - min(e, 5) / 5) ** 2, 8)


def test_sequential_lr_warmup_then_decay():
    opt = make_opt()
    warm = S.LinearLR(opt, start_factor=0.1, total_iters=3)
    decay = S.ExponentialLR(opt, gamma=0.9)
    seq = run(S.SequentialLR(opt, [warm, decay], milestones=[3]), 10)
    check(seq, lambda b, e: b * (0.1 + 0.9 * e / 3) if e < 3 else b * 0.9 ** (e - 3), 10)


def test_sequential_lr_linear_then_cosine():
    opt = make_opt()
    T = 8
    sched = S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.5, total_iters=2),
                                 S.CosineAnnealingLR(opt, T_max=T)], milestones=[2])
    check(run(sched, 10), lambda b, e: b * (0.5 + 0.5 * e / 2) if e < 2
          else b * (1 + math.cos(math.pi * (e - 2) / T)) / 2, 10)


def test_chained_scheduler():
    opt = make_opt()
    sched = S.ChainedScheduler([S.ExponentialLR(opt, gamma=0.9), S.StepLR(opt, 2, gamma=0.5)])
    check(run(sched, 9), lambda b, e: b * 0.9 ** e * 0.5 ** (e // 2), 9)


def test_cyclic_lr_triangular_cycles_momentum():
    opt = make_opt(momentum=0.9)
    s = 4
    sched = S.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=s)
    moms = [opt.param_groups[0]["momentum"]]
    seq = [list(sched.get_last_lr())]
    for _ in range(17):
        opt.step()
        sched.step()
        seq.append(list(sched.get_last_lr()))
        moms.append(opt.param_groups[0]["momentum"])
    for e, lrs in enumerate(seq):
        cycle = math.floor(1 + e / (2 * s))
        x = abs(e / s - 2 * cycle + 1)
        frac = max(0.0, 1 - x)
        assert lrs[0] == pytest.approx(0.01 + 0.09 * frac)
        assert moms[e] == pytest.approx(0.9 - 0.1 * frac)


def _one_cycle_expected(max_lr, total, pct, e, three_phase=False, anneal="cos", div=25.0,
                        final_div=1e4, m_lo=0.85, m_hi=0.95):
    """OneCycleLR's lr and momentum at step e, from the phase definitions (phase ends at
    pct*total - 1, [2*pct*total - 2,] total - 1)."""
    init = max_lr / div
    low = init / final_div
    if anneal == "cos":
        f = lambda a, b, t: b + (a - b) * (1 + math.cos(math.pi * t)) / 2  # noqa: E731
    else:
        f = lambda a, b, t: a + (b - a) * t  # noqa: E731
    up = pct * total - 1
    if three_phase:
        phases = [(0.0, up, init, max_lr, m_hi, m_lo), (up, 2 * pct * total - 2, max_lr, init,
                                                        m_lo, m_hi),
                  (2 * pct * total - 2, total - 1, init, low, m_hi, m_hi)]
    else:
        phases = [(0.0, up, init, max_lr, m_hi, m_lo), (up, total - 1, max_lr, low, m_lo, m_hi)]
    for k, (s0, s1, a, b, ma, mb) in enumerate(phases):
        if e <= s1 or k == len(phases) - 1:
            t = (e - s0) / (s1 - s0)
            return f(a, b, t), f(ma, mb, t)


@pytest.mark.parametrize("anneal,three_phase", [("cos", False), ("linear", False),
                                                ("cos", True)])
def test_one_cycle_lr(anneal, three_phase):
    opt = make_opt(momentum=0.9)
    total = 20
    sched = S.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=total, pct_start=0.3,
                         anneal_strategy=anneal, three_phase=three_phase)
    for e in range(total):
        for g, m in enumerate([1.0, 0.5]):
            lr, mom = _one_cycle_expected(m, total, 0.3, e, three_phase, anneal)
            assert opt.param_groups[g]["lr"] == pytest.approx(lr, rel=1e-9), (e, g)
            assert opt.param_groups[g]["momentum"] == pytest.approx(mom, rel=1e-9)
        if e < total - 1:
            opt.step()
            sched.step()
    # the schedule ends at initial_lr / final_div_factor
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 25 / 1e4)
    opt.step()
    sched.step()            # step `total` is still allowed (torch: step_num > total_steps fails)
    with pytest.raises(ValueError, match="Tried to step 21 times"):
        opt.step()
        sched.step()


def test_one_cycle_lr_adam_betas_and_epochs_form():
    opt = make_opt(optim.Adam, lrs=[0.1])
    sched = S.OneCycleLR(opt, max_lr=0.01, epochs=2, steps_per_epoch=5)
    assert sched.total_steps == 10
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)
    for _ in range(3):
        opt.step()
        sched.step()
    _, mom = _one_cycle_expected(0.01, 10, 0.3, 3)
    assert opt.param_groups[0]["betas"][0] == pytest.approx(mom)
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        S.OneCycleLR(make_opt(), max_lr=0.1)
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        S.OneCycleLR(make_opt(optim.Adagrad), max_lr=0.1, total_steps=5)


def test_cosine_annealing_warm_restarts():
    opt = make_opt()
    T0, mult, eta = 3, 2, 0.001
    seq = run(S.CosineAnnealingWarmRestarts(opt, T_0=T0, T_mult=mult, eta_min=eta), 25)

    def expected(b, e):
        Ti, start = T0, 0
        while e >= start + Ti:
            start += Ti
            Ti *= mult
        return eta + (b - eta) * (1 + math.cos(math.pi * (e - start) / Ti)) / 2

    check(seq, expected, 25)
    # fractional epochs (closed form)
    opt = make_opt()
    sched = S.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched.step(5.5)
    assert sched.get_last_lr()[0] == pytest.approx(0.1 * (1 + math.cos(math.pi * 1.5 / 4)) / 2)
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        S.CosineAnnealingWarmRestarts(make_opt(), T_0=0)


def test_initial_lr_and_base_lrs():
    opt = make_opt()
    sched = S.StepLR(opt, 2)
    assert [g["initial_lr"] for g in opt.param_groups] == BASE
    assert sched.base_lrs == BASE and sched.last_epoch == 0
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_opt(), 2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), 2)


def test_step_order_warning():
    opt = make_opt()
    sched = S.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt = make_opt()
    sched = S.StepLR(opt, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()


def test_scheduler_state_dict_resume():
    opt = make_opt()
    sched = S.SequentialLR(opt, [S.LinearLR(opt, 0.1, total_iters=3),
                                 S.CosineAnnealingLR(opt, T_max=7)], milestones=[3])
    run(sched, 5)
    osd, ssd = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    rest = run(sched, 6)[1:]
    opt2 = make_opt()
    sched2 = S.SequentialLR(opt2, [S.LinearLR(opt2, 0.1, total_iters=3),
                                   S.CosineAnnealingLR(opt2, T_max=7)], milestones=[3])
    opt2.load_state_dict(osd)
    sched2.load_state_dict(ssd)
    assert run(sched2, 6)[1:] == rest
    assert "optimizer" not in ssd


# ---------------- ReduceLROnPlateau ----------------

def plateau_run(sched, metrics):
    out = []
    for m in metrics:
        sched.optimizer.step()
        sched.step(m)
        out.append([g["lr"] for g in sched.optimizer.param_groups])
    return out


def test_plateau_patience():
    # best 0.9 at step 2; steps 3,4,5 are bad (3 > patience 2) -> halve at 5, then again at 8
    opt = make_opt(lrs=[1.0])
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    got = plateau_run(sched, [1.0, 0.9] + [0.9] * 6)
    assert [g[0] for g in got] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert sched.get_last_lr() == [0.25]


def test_plateau_improvement_resets_and_threshold():
    # rel threshold 0.1: 0.95 is not better than 1.0 * 0.9, 0.85 is
    opt = make_opt(lrs=[1.0])
    sched = S.ReduceLROnPlateau(opt, factor=0.1, patience=1, threshold=0.1)
    got = plateau_run(sched, [1.0, 0.95, 0.85, 0.8, 0.7])
    # step2 bad(1), step3 better (0.85 < 0.9), step4: 0.8 < 0.765? no -> bad 1,
    # step5: 0.7 < 0.765 -> better
    assert [g[0] for g in got] == [1, 1, 1, 1, 1]
    got = plateau_run(sched, [0.7, 0.7])     # bad 1, bad 2 > 1 -> reduce
    assert got[-1][0] == pytest.approx(0.1)


def test_plateau_cooldown():
    opt = make_opt(lrs=[1.0])
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=2)
    got = plateau_run(sched, [1.0, 0.9] + [0.9] * 8)
    # reduce at step 5; steps 6-7 in cooldown (bad epochs ignored); bad again 8,9,10 -> reduce
    assert [g[0] for g in got] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_plateau_min_lr_per_group_and_eps():
    opt = make_opt(lrs=[1.0, 0.1])
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=[0.3, 0.0])
    got = plateau_run(sched, [1.0, 1.0, 1.0, 1.0])
    assert [g[0] for g in got] == [1.0, 0.5, 0.3, 0.3]
    assert [g[1] for g in got] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    # a reduction smaller than eps is skipped
    opt = make_opt(lrs=[1e-8])
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=0, eps=1e-8)
    assert [g[0] for g in plateau_run(sched, [1.0, 1.0, 1.0])] == [1e-8] * 3


def test_plateau_mode_max_abs():
    opt = make_opt(lrs=[1.0])
    sched = S.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1, threshold=0.05,
                                threshold_mode="abs")
    # 0.53 is not better than 0.5 + 0.05: bad 1; 0.56 > 0.55: better (bad 0); 0.6 is not
    # better than 0.56 + 0.05: bad 1, bad 2 > patience -> halve at step 5; 0.62 > 0.61 better
    got = plateau_run(sched, [0.5, 0.53, 0.56, 0.6, 0.6, 0.62, 0.62, 0.62])
    assert [g[0] for g in got] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_plateau_errors_and_state_dict():
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        S.ReduceLROnPlateau(make_opt(), factor=1.0)
    with pytest.raises(ValueError, match="mode median is unknown!"):
        S.ReduceLROnPlateau(make_opt(), mode="median")
    with pytest.raises(ValueError, match="threshold mode x is unknown!"):
        S.ReduceLROnPlateau(make_opt(), threshold_mode="x")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        S.ReduceLROnPlateau(make_opt(), min_lr=[0.1])
    opt = make_opt(lrs=[1.0])
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    plateau_run(sched, [1.0, 1.0])
    sd = copy.deepcopy(sched.state_dict())
    opt2 = make_opt(lrs=[1.0])
    sched2 = S.ReduceLROnPlateau(opt2, factor=0.5, patience=1)
    sched2.load_state_dict(sd)
    assert sched2.num_bad_epochs == 1 and sched2.best == 1.0
    assert plateau_run(sched2, [1.0])[0][0] == 0.5


# ---------------- parity with torch (optional) ----------------

TORCH_SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
    ("LinearLR", dict(start_factor=0.2, total_iters=4)),
    ("ConstantLR", dict(factor=0.5, total_iters=3)),
    ("PolynomialLR", dict(total_iters=6, power=1.5)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.01)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=25, three_phase=True)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.2, step_size_up=3, mode="triangular2")),
]


@pytest.mark.parametrize("name,kw", TORCH_SCHEDULES, ids=[s[0] for s in TORCH_SCHEDULES])
def test_parity_with_torch(name, kw):
    torch = pytest.importorskip("torch")
    opt = make_opt(momentum=0.9)
    tp = [torch.zeros(3, requires_grad=True) for _ in BASE]
    topt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(tp, BASE)],
                           momentum=0.9)
    sched = getattr(S, name)(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    for _ in range(24):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=1e-15)
        assert [g["momentum"] for g in opt.param_groups] == \
            pytest.approx([g["momentum"] for g in topt.param_groups], rel=1e-12)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()


def test_lambda_scheduler_state_dict_saves_callable_objects():
    """a callable object's attributes travel in the state dict (torch's rule); a plain
    function's do not, and loading leaves it as it is"""
    class Decay:
        def __init__(self):
            self.rate = 0.5

        def __call__(self, e):
            return self.rate ** e

    opt = make_opt()
    fn = Decay()
    sched = S.LambdaLR(opt, fn)
    fn.rate = 0.8
    sd = copy.deepcopy(sched.state_dict())
    assert sd["lr_lambdas"] and all(x == {"rate": 0.8} for x in sd["lr_lambdas"])
    fn2 = Decay()
    sched2 = S.LambdaLR(make_opt(), fn2)
    sched2.load_state_dict(sd)
    assert fn2.rate == 0.8 and sched2.last_epoch == sched.last_epoch
    plain = S.LambdaLR(make_opt(), lambda e: 1.0)
    assert all(x is None for x in plain.state_dict()["lr_lambdas"])
    plain.load_state_dict(plain.state_dict())
