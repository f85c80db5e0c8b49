"""cengine.autocast and its namespaced forms: state, nesting, decorator, threads, warnings, the
weight-cast cache; op policy (output dtypes op by op against torch's CPU autocast, values in
bfloat16 tolerance, gradients reaching float32 parameters)."""
import threading
import warnings

import numpy as np
import pytest

import cengine as ce
from cengine.amp import autocast_mode as am


def test_state_and_nesting():
    assert not ce.is_autocast_enabled("cpu")
    assert ce.get_autocast_dtype("cpu") is ce.bfloat16
    assert ce.get_autocast_dtype("cuda") is ce.float16
    with ce.autocast("cpu") as a:
        assert isinstance(a, ce.autocast)
        assert ce.is_autocast_enabled("cpu") and not ce.is_autocast_enabled()
        with ce.autocast("cpu", dtype=ce.float16):
            assert ce.get_autocast_dtype("cpu") is ce.float16
            with ce.autocast("cpu", enabled=False):
                assert not ce.is_autocast_enabled("cpu")
            assert ce.is_autocast_enabled("cpu")
        assert ce.get_autocast_dtype("cpu") is ce.bfloat16
    assert not ce.is_autocast_enabled("cpu")
    assert ce.amp.autocast is ce.autocast


def test_state_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with ce.autocast("cpu"):
            1 / 0
    assert not ce.is_autocast_enabled("cpu") and am._tls.nesting == 0


def test_decorator_and_recursion():
    seen = []

    @ce.autocast("cpu")
    def f(n):
        seen.append(ce.is_autocast_enabled("cpu"))
        return f(n - 1) if n else 0

    f(3)
    assert seen == [True] * 4 and not ce.is_autocast_enabled("cpu")

    @ce.autocast("cpu", enabled=False)
    def g():
        return ce.is_autocast_enabled("cpu")

    with ce.autocast("cpu"):
        assert g() is False
        assert ce.is_autocast_enabled("cpu")


def test_thread_local():
    out = []
    with ce.autocast("cpu"):
        t = threading.Thread(target=lambda: out.append(ce.is_autocast_enabled("cpu")))
        t.start()
        t.join()
    assert out == [False]


def test_bad_arguments():
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        ce.autocast(3)
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        ce.autocast("tpu")
    for dt in (ce.int32, ce.float64, ce.float32, "bf16"):
        with pytest.warns(UserWarning, match="In CPU autocast, but the target dtype is not "
                                             "supported. Disabling autocast"):
            a = ce.autocast("cpu", dtype=dt)
        with a:
            assert not ce.is_autocast_enabled("cpu")


def test_cuda_autocast_disables_itself(no_cuda):
    with pytest.warns(UserWarning, match="CUDA is not available"):
        a = ce.autocast("cuda")
    with a:
        assert not ce.is_autocast_enabled("cuda") and not ce.is_autocast_enabled("cpu")
    from cengine.cuda.amp import autocast, GradScaler   # noqa: F401  (torch.cuda.amp's names)
    am_cuda = ce.cuda.amp
    am_cuda._warned[0] = False
    with pytest.warns(UserWarning, match="CUDA is not available. Disabling autocast"):
        c = ce.cuda.amp.autocast()
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # once per process
        ce.cuda.amp.autocast()
    x = ce.randn(3, 4)
    with c:
        assert not ce.is_autocast_enabled("cpu")
        assert (x @ x.T).dtype == ce.float32


def test_cuda_autocast_with_the_cuda_path(fake_cuda):
    """With the CUDA path (here the fake CuPy) autocast("cuda") is a float16 region for cuda
    tensors only; autocast("cpu") leaves cuda tensors alone; bfloat16 on cuda raises torch's
    error (CuPy has no bfloat16); another dtype warns and disables, as on the CPU."""
    w = ce.randn(8, 8, requires_grad=True, device="cuda")
    x = ce.randn(4, 8, device="cuda")
    xc = ce.randn(4, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        region = ce.autocast("cuda")
    assert region.fast_dtype is ce.float16
    with region:
        assert ce.is_autocast_enabled() and ce.is_autocast_enabled("cuda")
        assert not ce.is_autocast_enabled("cpu")
        a = ce.nn.functional.linear(x, w)
        b = ce.nn.functional.linear(x, w)
        assert a.dtype == b.dtype == ce.float16 and a.device == "cuda:0"
        assert a.grad_fn.next_functions[1][0] is b.grad_fn.next_functions[1][0]  # cached cast
        assert len(am._tls.cache) == 1
        assert (xc @ xc.T).dtype == ce.float32           # a CPU tensor: the CPU region is off
        # torch's CUDA float32 ops: a float16 cuda input gives float32 (values as the cast)
        h = a.detach()
        for f in (lambda t: t.sum(), lambda t: t.sum(1), lambda t: t.cumsum(0),
                  lambda t: t.cumprod(1), lambda t: t.norm(), lambda t: t.logsumexp(-1), lambda t: ce.nn.functional.softmax(t, -1),
                  lambda t: ce.nn.functional.layer_norm(t, (8,))):
            r = f(h)
            assert r.dtype == ce.float32 and r.device == "cuda:0"
            np.testing.assert_allclose(r.cpu().numpy(), f(h.cpu().float()).numpy(), rtol=1e-5,
                                       atol=1e-5)
        assert h.sum(dtype=ce.float16).dtype == ce.float16 and h.mean().dtype == ce.float16
        assert h.cpu().sum().dtype == ce.float16         # a CPU tensor keeps its dtype
        assert ce.nn.functional.mse_loss(a, b).dtype == ce.float32
        with ce.autocast("cpu"):                          # both regions: each its own device
            assert (xc @ xc.T).dtype == ce.bfloat16 and (x @ x.T).dtype == ce.float16
        assert (xc @ xc.T).dtype == ce.float32
        with ce.autocast("cuda", enabled=False):
            assert (x @ x.T).dtype == ce.float32
    assert len(am._tls.cache) == 0 and not ce.is_autocast_enabled("cuda")
    (a.float().sum() + b.float().sum()).backward()
    assert w.grad.dtype is ce.float32 and w.grad.device == "cuda:0"
    with ce.autocast("cpu"):
        assert (x @ x.T).dtype == ce.float32          # the CPU region leaves cuda tensors alone
    with ce.cuda.amp.autocast():
        assert (x @ x.T).dtype == ce.float16

    @ce.autocast("cuda")
    def f(t):
        return t @ t.T
    assert f(x).dtype == ce.float16 and (x @ x.T).dtype == ce.float32
    with pytest.raises(RuntimeError, match="Current CUDA Device does not support bfloat16. "
                                           "Please switch dtype to float16."):
        ce.autocast("cuda", dtype=ce.bfloat16)
    with pytest.warns(UserWarning, match="In CUDA autocast, but the target dtype is not "
                                         "supported. Disabling autocast."):
        off = ce.autocast("cuda", dtype=ce.float32)
    with off:
        assert not ce.is_autocast_enabled("cuda") and (x @ x.T).dtype == ce.float32
    assert ce.amp.is_autocast_available("cuda") and not ce.cuda.is_bf16_supported()


def test_cpu_amp_namespace():
    with pytest.warns(FutureWarning, match="cengine.cpu.amp.autocast"):
        a = ce.cpu.amp.autocast()
    with a:
        assert ce.is_autocast_enabled("cpu") and ce.get_autocast_dtype("cpu") is ce.bfloat16
    assert ce.cpu.is_available()
    s = ce.cpu.amp.GradScaler()
    assert s.is_enabled()


# ---------------------------------------------------------------------------- op policy vs torch
def _ops(m):
    F = m.nn.functional
    return {
        "linear": lambda x, w, y: F.linear(x, w),
        "linear_bias": lambda x, w, y: F.linear(x, w, w[0]),
        "matmul": lambda x, w, y: x @ w,
        "mm": lambda x, w, y: m.mm(x, w),
        "bmm": lambda x, w, y: m.bmm(x[None], w[None]),
        "addmm": lambda x, w, y: m.addmm(x, x, w),
        "baddbmm": lambda x, w, y: m.baddbmm(x[None], x[None], w[None]),
        "einsum": lambda x, w, y: m.einsum("ij,jk->ik", x, w),
        "conv1d": lambda x, w, y: F.conv1d(x[None], w[:4, :4, None]),
        "conv2d": lambda x, w, y: F.conv2d(x[None, None], w[None, None, :3, :3]),
        "conv_transpose1d": lambda x, w, y: F.conv_transpose1d(x[None], w[:4, :4, None]),
        "sdpa": lambda x, w, y: F.scaled_dot_product_attention(x[None], x[None], x[None]),
        "softmax_of_lowp": lambda x, w, y: F.softmax(x @ w, -1),
        "log_softmax_of_lowp": lambda x, w, y: F.log_softmax(x @ w, -1),
        "layer_norm_of_lowp": lambda x, w, y: F.layer_norm(x @ w, (8,), w[0], w[1]),
        "relu_of_lowp": lambda x, w, y: F.relu(x @ w),
        "sum_of_lowp": lambda x, w, y: (x @ w).sum(),
        "mean_of_lowp": lambda x, w, y: (x @ w).mean(1),
        "mixed_add": lambda x, w, y: (x @ w) + x,
        "scalar_mul": lambda x, w, y: (x @ w) * 2.5,
        "cross_entropy": lambda x, w, y: F.cross_entropy(x @ w, y),
        "nll_loss": lambda x, w, y: F.nll_loss(F.log_softmax(x @ w, -1), y),
        "mse_loss": lambda x, w, y: F.mse_loss(x @ w, x),
        "l1_loss": lambda x, w, y: F.l1_loss(x @ w, x),
        "smooth_l1_loss": lambda x, w, y: F.smooth_l1_loss(x @ w, x),
        "bce_logits": lambda x, w, y: F.binary_cross_entropy_with_logits(x @ w, x.sigmoid()),
        "float64_matmul": lambda x, w, y: x.double() @ w.double(),
        "prod_of_lowp": lambda x, w, y: (x @ w)[0, :3].prod(),
        "ctc_loss": lambda x, w, y: F.ctc_loss(F.log_softmax(x @ w, -1)[:, None],
                                               m.tensor([[1, 2]]), [4], [2]),
        "softmax_f32": lambda x, w, y: F.softmax(x, -1),
        "embedding": lambda x, w, y: F.embedding(y, w),
        "mha": lambda x, w, y: m.nn.functional.multi_head_attention_forward(
            x[:, None], x[:, None], x[:, None], 8, 2, w.repeat(3, 1), w[0].repeat(3), None, None,
            False, 0.0, w, w[0], training=False, need_weights=False)[0],
    }


@pytest.mark.parametrize("name", sorted(_ops(ce)))
def test_op_dtypes_and_values_as_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    w = rng.standard_normal((8, 8)).astype(np.float32) * 0.3
    y = rng.integers(0, 8, 4)
    try:
        cf = _ops(ce)[name]
    except AttributeError:
        pytest.skip("not in cengine")
    if name == "mha" and not hasattr(ce.nn.functional, "multi_head_attention_forward"):
        pytest.skip("no functional MHA in cengine")
    with ce.autocast("cpu"):
        r = cf(ce.tensor(x), ce.tensor(w), ce.tensor(y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t = _ops(torch)[name](torch.tensor(x), torch.tensor(w), torch.tensor(y))
    assert str(r.dtype).split(".")[-1] == str(t.dtype).split(".")[-1], name
    np.testing.assert_allclose(r.float().detach().numpy(), t.float().detach().numpy(),
                               rtol=3e-2, atol=3e-2)


def test_gradients_reach_float32_params_and_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 12)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    w1 = rng.standard_normal((20, 12)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((5, 20)).astype(np.float32) * 0.3
    grads = {}
    for m in (ce, torch):
        p1, p2 = m.tensor(w1, requires_grad=True), m.tensor(w2, requires_grad=True)
        b1 = m.zeros(20, requires_grad=True)
        with m.autocast("cpu", dtype=m.bfloat16):
            h = m.nn.functional.relu(m.nn.functional.linear(m.tensor(x), p1, b1))
            out = m.nn.functional.linear(h, p2)
            loss = m.nn.functional.cross_entropy(out, m.tensor(y))
        assert loss.dtype == m.float32 and out.dtype == m.bfloat16
        loss.backward()
        assert p1.grad.dtype == m.float32 and b1.grad.dtype == m.float32
        grads[m.__name__] = [p.grad.numpy() for p in (p1, p2, b1)]
    for a, b in zip(grads["cengine"], grads["torch"]):
        np.testing.assert_allclose(a, b, rtol=3e-2, atol=3e-3)


@pytest.mark.parametrize("shape,kw", [((6, 11), {}), ((6, 11), dict(reduction="sum")),
                                      ((6, 11), dict(reduction="none", label_smoothing=0.1)),
                                      ((6, 11), dict(ignore_index=3, weight="f32")),
                                      ((3, 11, 4), dict(reduction="mean")), ((11,), {})])
def test_cross_entropy_reads_bfloat16_logits_as_the_float32_cast(shape, kw):
    """under autocast, cross_entropy of bfloat16 logits runs in float32 on the kernel that reads
    the bfloat16 logits itself: loss and logit gradient bit for bit those of casting the logits
    to float32 first (torch's policy), loss float32, gradient bfloat16"""
    rng = np.random.default_rng(len(shape) * 10 + len(kw))
    C = shape[1] if len(shape) > 1 else shape[0]
    xv = (rng.standard_normal(shape) * 3).astype(np.float32)
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    y = ce.tensor(rng.integers(0, C, tshape))
    kw = dict(kw)
    if kw.get("weight") == "f32":
        kw["weight"] = ce.tensor(rng.random(C).astype(np.float32))
    res = []
    for cast_first in (False, True):
        x = ce.tensor(xv).bfloat16().detach().requires_grad_()
        with ce.autocast("cpu", dtype=ce.bfloat16):
            loss = ce.nn.functional.cross_entropy(x.float() if cast_first else x, y, **kw)
        assert loss.dtype == ce.float32
        loss.backward(ce.ones_like(loss))
        assert x.grad.dtype == ce.bfloat16
        res.append((loss.detach().numpy(), x.grad.float().numpy()))
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_array_equal(res[0][1], res[1][1])
    torch = pytest.importorskip("torch")
    xt = torch.tensor(xv).bfloat16().requires_grad_()
    tkw = dict(kw)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(tkw["weight"].numpy())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lt = torch.nn.functional.cross_entropy(xt, torch.tensor(y.numpy()), **tkw)
    lt.backward(torch.ones_like(lt))
    assert lt.dtype == torch.float32
    np.testing.assert_allclose(res[0][0], lt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res[0][1], xt.grad.float().numpy(), rtol=2 ** -7, atol=1e-6)


def test_weight_cast_cached_per_region():
    w = ce.randn(8, 8, requires_grad=True)
    x = ce.randn(4, 8)
    with ce.autocast("cpu"):
        # (matmul: F.linear on float32 parameters in a bfloat16 region reads their persistent
        # copies in one node without cast nodes, test_autocast_fused.py)
        a = x @ w
        b = x @ w
        # the same cast node feeds both products
        ca = a.grad_fn.next_functions[1][0]
        assert ca is b.grad_fn.next_functions[1][0]
        assert len(am._tls.cache) == 1
        with ce.autocast("cpu"):          # nested: the cache lives until the outermost exit
            assert len(am._tls.cache) == 1
        assert len(am._tls.cache) == 1
    assert len(am._tls.cache) == 0
    with ce.autocast("cpu", cache_enabled=False):
        a = x @ w
        b = x @ w
        assert a.grad_fn.next_functions[1][0] is not b.grad_fn.next_functions[1][0]
        assert len(am._tls.cache) == 0
    (a.float().sum() + b.float().sum()).backward()
    assert w.grad.dtype is ce.float32
    with ce.autocast("cpu"):     # non-leaf tensors are not cached
        h = w * 1
        x @ h
        ce.nn.functional.linear(x, h)
        assert len(am._tls.cache) == 0


def test_float16_autocast_and_disabled_region():
    x, w = ce.randn(4, 8), ce.randn(8, 8)
    with ce.autocast("cpu", dtype=ce.float16):
        assert (x @ w).dtype is ce.float16
        with ce.autocast("cpu", enabled=False):
            assert (x @ w).dtype is ce.float32
    assert (x @ w).dtype is ce.float32
    # integer matmul is not cast
    i = ce.ones(3, 3, dtype=ce.int64)
    with ce.autocast("cpu"):
        assert (i @ i).dtype is ce.int64


def test_recurrent_layers_as_torch():
    torch = pytest.importorskip("torch")
    ce.manual_seed(0)
    x = ce.randn(6, 2, 4)
    for name in ("LSTM", "GRU", "RNN"):
        m = getattr(ce.nn, name)(4, 3, num_layers=2)
        t = getattr(torch.nn, name)(4, 3, num_layers=2)
        t.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
        with ce.autocast("cpu"):
            out, _ = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            tout, _ = t(torch.tensor(x.numpy()))
        assert str(out.dtype).split(".")[-1] == str(tout.dtype).split(".")[-1], name
        np.testing.assert_allclose(out.float().detach().numpy(), tout.float().detach().numpy(),
                                   rtol=3e-2, atol=3e-2)
        out.float().sum().backward()
        assert m.weight_ih_l0.grad.dtype is ce.float32


@pytest.mark.parametrize("rows", [0, 3])
def test_linear_and_matmul_of_an_empty_batch(rows):
    """Zero rows under autocast (and a bf16 matmul with zero rows) give empty bf16 results and
    float32 zero weight gradients, as torch; zero strides of empty arrays are not an error."""
    lin = ce.nn.Linear(8, 4)
    x = ce.zeros(0, rows, 8, requires_grad=True)
    with ce.autocast("cpu", dtype=ce.bfloat16):
        y = lin(x)
    assert y.shape == (0, rows, 4) and y.dtype is ce.bfloat16
    y.float().sum().backward()
    assert lin.weight.grad.dtype is ce.float32 and not lin.weight.grad.numpy().any()
    assert lin.bias.grad.dtype is ce.float32 and not lin.bias.grad.numpy().any()
    z = ce.zeros(0, 8).bfloat16() @ ce.zeros(8, 4).bfloat16()
    assert z.shape == (0, 4) and z.dtype is ce.bfloat16
