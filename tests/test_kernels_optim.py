"""Fused optimizer kernels (cengine._C.*_step) against straightforward numpy references of the
PyTorch formulas, on every ISA path and 1/2 threads, plus the gradient-norm reductions."""
import numpy as np
import pytest

from cengine import _C

# sizes chosen to hit: a single element, lengths that are not multiples of any SIMD width, and a
# group big enough (> 2 x 32768 elements) for the update to be split across two threads,
# including a split inside a tensor
SHAPES = [(1,), (3, 5), (17,), (7, 11, 13), (40_003,), (33_000,)]
STEPS = 30
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def make(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return rng, ps


def grads(rng, ps, dtype):
    return [rng.standard_normal(p.shape).astype(dtype) for p in ps]


# ---------------- numpy references (torch.optim documentation formulas) ----------------

def ref_sgd(p, g, buf, first, lr, momentum, dampening, wd, nesterov, maximize):
    g = -g if maximize else g
    if wd != 0:
        g = g + wd * p
    if momentum != 0:
        if first:
            buf[...] = g
        else:
            buf[...] = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def ref_adagrad(p, g, s, step, lr, lr_decay, wd, eps, maximize):
    g = -g if maximize else g
    if wd != 0:
        g = g + wd * p
    clr = lr / (1 + (step - 1) * lr_decay)
    s += g * g
    p -= clr * g / (np.sqrt(s) + eps)


def ref_rmsprop(p, g, sq, ga, buf, lr, alpha, eps, wd, momentum, centered, maximize):
    g = -g if maximize else g
    if wd != 0:
        g = g + wd * p
    sq[...] = alpha * sq + (1 - alpha) * g * g
    if centered:
        ga[...] = alpha * ga + (1 - alpha) * g
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf[...] = momentum * buf + g / avg
        p -= lr * buf
    else:
        p -= lr * g / avg


def ref_adam(p, g, m, v, vmax, step, lr, b1, b2, eps, wd, amsgrad, maximize, decoupled):
    g = -g if maximize else g
    if wd != 0:
        if decoupled:
            p *= 1 - lr * wd
        else:
            g = g + wd * p
    m[...] = b1 * m + (1 - b1) * g
    v[...] = b2 * v + (1 - b2) * g * g
    bc1 = 1 - b1 ** step
    bc2 = 1 - b2 ** step
    vv = v
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        vv = vmax
    denom = np.sqrt(vv) / np.sqrt(bc2) + eps
    p -= (lr / bc1) * m / denom


def close(got, want, dtype):
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **TOL[dtype])


DTYPES = [np.float32, np.float64]

SGD_CASES = [
    dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
    dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
    dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=1e-2, nesterov=True, maximize=False),
    dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=1e-3, nesterov=False, maximize=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", SGD_CASES)
def test_sgd_vs_numpy(isa, nthreads, dtype, hp):
    rng, ps = make(dtype)
    rs = [p.copy() for p in ps]
    bufs = [np.zeros_like(p) for p in ps]
    rbufs = [np.zeros_like(p) for p in ps]
    for step in range(STEPS):
        gs = grads(rng, ps, dtype)
        _C.sgd_step(ps, gs, bufs, [step == 0] * len(ps), **hp)
        for p, g, b in zip(rs, gs, rbufs):
            ref_sgd(p, g, b, step == 0, hp["lr"], hp["momentum"], hp["dampening"],
                    hp["weight_decay"], hp["nesterov"], hp["maximize"])
    close(ps, rs, dtype)
    if hp["momentum"]:
        close(bufs, rbufs, dtype)


ADAGRAD_CASES = [
    dict(lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False),
    dict(lr=0.05, lr_decay=0.01, weight_decay=1e-2, eps=1e-6, maximize=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", ADAGRAD_CASES)
def test_adagrad_vs_numpy(isa, nthreads, dtype, hp):
    rng, ps = make(dtype)
    rs = [p.copy() for p in ps]
    sums = [np.full_like(p, 0.1) for p in ps]
    rsums = [s.copy() for s in sums]
    for step in range(1, STEPS + 1):
        gs = grads(rng, ps, dtype)
        _C.adagrad_step(ps, gs, sums, [step] * len(ps), **hp)
        for p, g, s in zip(rs, gs, rsums):
            ref_adagrad(p, g, s, step, hp["lr"], hp["lr_decay"], hp["weight_decay"], hp["eps"],
                        hp["maximize"])
    close(ps, rs, dtype)
    close(sums, rsums, dtype)


RMSPROP_CASES = [
    dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
         maximize=False),
    dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=1e-2, momentum=0.9, centered=True,
         maximize=False),
    dict(lr=0.005, alpha=0.95, eps=1e-8, weight_decay=0.0, momentum=0.5, centered=False,
         maximize=True),
    dict(lr=0.005, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=True,
         maximize=False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", RMSPROP_CASES)
def test_rmsprop_vs_numpy(isa, nthreads, dtype, hp):
    rng, ps = make(dtype)
    rs = [p.copy() for p in ps]
    st = {k: [np.zeros_like(p) for p in ps] for k in ("sq", "ga", "buf")}
    rst = {k: [np.zeros_like(p) for p in ps] for k in ("sq", "ga", "buf")}
    for _ in range(STEPS):
        gs = grads(rng, ps, dtype)
        _C.rmsprop_step(ps, gs, st["sq"], st["ga"] if hp["centered"] else None,
                        st["buf"] if hp["momentum"] > 0 else None, **hp)
        for i, (p, g) in enumerate(zip(rs, gs)):
            ref_rmsprop(p, g, rst["sq"][i], rst["ga"][i], rst["buf"][i], hp["lr"], hp["alpha"],
                        hp["eps"], hp["weight_decay"], hp["momentum"], hp["centered"],
                        hp["maximize"])
    close(ps, rs, dtype)
    close(st["sq"], rst["sq"], dtype)


ADAM_CASES = [
    dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
         maximize=False, decoupled=False),
    dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=1e-2, amsgrad=True,
         maximize=False, decoupled=False),
    dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=False,
         maximize=True, decoupled=True),
    dict(lr=3e-3, beta1=0.5, beta2=0.9, eps=1e-8, weight_decay=0.1, amsgrad=True,
         maximize=False, decoupled=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", ADAM_CASES)
def test_adam_vs_numpy(isa, nthreads, dtype, hp):
    rng, ps = make(dtype)
    rs = [p.copy() for p in ps]
    st = {k: [np.zeros_like(p) for p in ps] for k in ("m", "v", "x")}
    rst = {k: [np.zeros_like(p) for p in ps] for k in ("m", "v", "x")}
    for step in range(1, STEPS + 1):
        gs = grads(rng, ps, dtype)
        # the rare gradient with a large spike exercises amsgrad's running max
        if step == 5:
            for g in gs:
                g *= 10
        _C.adam_step(ps, gs, st["m"], st["v"], st["x"] if hp["amsgrad"] else None,
                     [step] * len(ps), **hp)
        for i, (p, g) in enumerate(zip(rs, gs)):
            ref_adam(p, g, rst["m"][i], rst["v"][i], rst["x"][i], step, hp["lr"], hp["beta1"],
                     hp["beta2"], hp["eps"], hp["weight_decay"], hp["amsgrad"], hp["maximize"],
                     hp["decoupled"])
    close(ps, rs, dtype)
    close(st["m"], rst["m"], dtype)
    close(st["v"], rst["v"], dtype)
    if hp["amsgrad"]:
        close(st["x"], rst["x"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_per_tensor_steps(isa, dtype):
    """Tensors of one call may be at different step counts (a parameter that had no gradient
    for a while); each gets its own bias correction."""
    rng, ps = make(dtype, shapes=[(5,), (70,), (33,)])
    rs = [p.copy() for p in ps]
    st = [[np.full_like(p, 0.1), np.full_like(p, 0.2)] for p in ps]
    rst = [[a.copy() for a in s] for s in st]
    steps = [1, 7, 3]
    gs = grads(rng, ps, dtype)
    _C.adam_step(ps, gs, [s[0] for s in st], [s[1] for s in st], None, steps, 1e-2)
    for p, g, s, k in zip(rs, gs, rst, steps):
        ref_adam(p, g, s[0], s[1], None, k, 1e-2, 0.9, 0.999, 1e-8, 0.0, False, False, False)
    close(ps, rs, dtype)


def _run_all(dtype, seed):
    """One step of every optimizer on a fresh group; returns all outputs."""
    rng, ps = make(dtype, seed)
    gs = grads(rng, ps, dtype)
    outs = []
    p = [x.copy() for x in ps]
    b = [np.zeros_like(x) for x in ps]
    _C.sgd_step(p, gs, b, [False] * len(p), 0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    outs += p + b
    p = [x.copy() for x in ps]
    s = [np.ones_like(x) for x in ps]
    _C.adagrad_step(p, gs, s, [3] * len(p), 0.1, lr_decay=0.1, weight_decay=0.1)
    outs += p + s
    p = [x.copy() for x in ps]
    sq, ga, mb = ([np.full_like(x, 2.0) for x in ps] for _ in range(3))
    _C.rmsprop_step(p, gs, sq, ga, mb, 0.01, momentum=0.9, centered=True, weight_decay=0.1)
    outs += p + sq + ga + mb
    p = [x.copy() for x in ps]
    m, v, x_ = ([np.full_like(x, 0.5) for x in ps] for _ in range(3))
    _C.adam_step(p, gs, m, v, x_, [4] * len(p), 0.01, weight_decay=0.1, amsgrad=True,
                 decoupled=True)
    outs += p + m + v + x_
    return outs


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_invariance(isa, dtype):
    """The update is elementwise and chunk starts are SIMD aligned: 1 and 2 threads agree
    bit for bit."""
    old = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = _run_all(dtype, 3)
        _C.set_num_threads(2)
        two = _run_all(dtype, 3)
    finally:
        _C.set_num_threads(old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_vs_ref_kernel(isa, nthreads, dtype):
    """The threaded ISA path against the plain single-threaded *_ref kernel (an independent
    element-by-element loop, so every path, generic included, is checked against it)."""
    rng, ps = make(dtype, 5)
    gs = grads(rng, ps, dtype)
    runs = []
    for reference in (False, True):
        p = [x.copy() for x in ps]
        m, v, x_ = ([np.full_like(x, 0.5) for x in ps] for _ in range(3))
        _C.adam_step(p, gs, m, v, x_, [2] * len(p), 0.01, weight_decay=0.1, amsgrad=True,
                     reference=reference)
        p2 = [x.copy() for x in ps]
        b = [np.ones_like(x) for x in ps]
        _C.sgd_step(p2, gs, b, [False] * len(p), 0.1, momentum=0.9, dampening=0.1,
                    reference=reference)
        p3 = [x.copy() for x in ps]
        sq, ga, mb = ([np.full_like(x, 2.0) for x in ps] for _ in range(3))
        _C.rmsprop_step(p3, gs, sq, ga, mb, 0.01, momentum=0.9, centered=True,
                        reference=reference)
        p4 = [x.copy() for x in ps]
        s = [np.ones_like(x) for x in ps]
        _C.adagrad_step(p4, gs, s, [2] * len(p4), 0.1, lr_decay=0.1, reference=reference)
        runs.append(p + m + v + x_ + p2 + b + p3 + sq + ga + mb + p4 + s)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, **TOL[dtype])


def test_sgd_without_momentum_ignores_buffers():
    p = [np.ones(10, np.float32)]
    _C.sgd_step(p, [np.ones(10, np.float32)], None, None, 0.5)
    np.testing.assert_array_equal(p[0], np.full(10, 0.5, np.float32))


def test_empty_group_and_empty_tensor():
    _C.adam_step([], [], [], [], None, [], 0.1)
    p = [np.zeros(0, np.float32), np.ones(3, np.float32)]
    g = [np.zeros(0, np.float32), np.ones(3, np.float32)]
    _C.sgd_step(p, g, None, None, 0.5)
    np.testing.assert_array_equal(p[1], np.full(3, 0.5, np.float32))


# ---------------- bad input: exceptions, never a crash ----------------

def test_bad_inputs():
    p = [np.zeros(4, np.float32)]
    g = [np.zeros(4, np.float32)]
    with pytest.raises(TypeError, match="dtype float64, expected float32"):
        _C.sgd_step(p, [np.zeros(4)], None, None, 0.1)
    with pytest.raises(ValueError, match="grads\\[0\\] has 5 elements but params\\[0\\] has 4"):
        _C.sgd_step(p, [np.zeros(5, np.float32)], None, None, 0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.sgd_step([np.zeros((4, 4), np.float32)[:, 1]], g, None, None, 0.1)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.sgd_step([ro], g, None, None, 0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.sgd_step([np.zeros(4, np.int64)], g, None, None, 0.1)
    with pytest.raises(ValueError, match="one per parameter"):
        _C.adam_step(p, g, [], [np.zeros(4, np.float32)], None, [1], 0.1)
    with pytest.raises(ValueError, match="steps"):
        _C.adam_step(p, g, [np.zeros(4, np.float32)], [np.zeros(4, np.float32)], None, [0], 0.1)
    with pytest.raises(TypeError, match="must be a numpy array"):
        _C.adam_step(p, [[0.0] * 4], [np.zeros(4, np.float32)], [np.zeros(4, np.float32)],
                     None, [1], 0.1)
    with pytest.raises(ValueError, match="first must be a list"):
        _C.sgd_step(p, g, [np.zeros(4, np.float32)], None, 0.1, momentum=0.9)
    with pytest.raises(TypeError, match="list of numpy arrays"):
        _C.multi_sumsq(np.zeros(3))


# ---------------- norm reductions ----------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_sumsq_absmax_scale(isa, nthreads, dtype):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(s).astype(dtype) for s in [(1,), (13, 7), (50_001,), (70_000,)]]
    want = sum(float(np.sum(x.astype(np.float64) ** 2)) for x in xs)
    got = _C.multi_sumsq(xs)
    assert got == pytest.approx(want, rel=1e-12)
    assert _C.multi_sumsq(xs, reference=True) == pytest.approx(want, rel=1e-12)
    amax = max(float(np.abs(x).max()) for x in xs)
    assert _C.multi_absmax(xs) == amax
    assert _C.multi_absmax(xs, reference=True) == amax
    ys = [x.copy() for x in xs]
    _C.multi_scale_(ys, 0.3)
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(y, x * dtype(0.3))


def test_sumsq_same_for_any_thread_count(isa):
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(n).astype(np.float32) for n in (100_003, 5, 60_000)]
    old = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        a = _C.multi_sumsq(xs)
        _C.set_num_threads(2)
        b = _C.multi_sumsq(xs)
    finally:
        _C.set_num_threads(old)
    assert a == b


@pytest.mark.parametrize("dtype", DTYPES)
def test_absmax_nonfinite(isa, dtype):
    for pos in (0, 17, 39_999):
        x = np.zeros(40_000, dtype)
        x[pos] = np.nan
        assert np.isnan(_C.multi_absmax([np.ones(3, dtype), x]))
        assert np.isnan(_C.multi_sumsq([x]))
        x[pos] = -np.inf
        assert _C.multi_absmax([x]) == np.inf
        assert _C.multi_sumsq([x]) == np.inf


def test_reductions_empty():
    assert _C.multi_sumsq([]) == 0.0
    assert _C.multi_absmax([np.zeros(0, np.float32)]) == 0.0
