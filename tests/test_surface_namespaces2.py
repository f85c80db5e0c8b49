"""Namespaces and helpers training scripts touch: set_printoptions, jit, version, testing,
distributions, bincount, parameters_to_vector, interop threads."""
import math
import warnings

import numpy as np
import pytest

import cengine as ce
from cengine.autograd import gradcheck


@pytest.fixture
def restore_print():
    yield
    ce.set_printoptions(profile="default", sci_mode=None)


def test_set_printoptions(restore_print):
    t = ce.tensor([1.23456, 1e-5])
    assert repr(t) == "tensor([1.2346e+00, 1.0000e-05])"
    ce.set_printoptions(precision=2)
    assert repr(t) == "tensor([1.23e+00, 1.00e-05])"
    ce.set_printoptions(precision=3, sci_mode=False)
    assert repr(t) == "tensor([1.235, 0.000])"
    ce.set_printoptions(sci_mode=True)
    assert repr(ce.tensor([2.0])) == "tensor([2.000e+00])"   # precision 3 stays
    ce.set_printoptions(profile="default")
    assert repr(ce.tensor([0.5, 0.25])) == "tensor([0.5000, 0.2500])"
    ce.set_printoptions(threshold=5, edgeitems=1)
    assert repr(ce.arange(10)) == "tensor([0, ..., 9])"
    ce.set_printoptions(profile="full")
    assert "..." not in repr(ce.arange(2000))
    with pytest.raises(ValueError, match="profile must be one of"):
        ce.set_printoptions(profile="long")


def test_set_printoptions_matches_torch(restore_print):
    torch = pytest.importorskip("torch")
    try:
        # (cengine's printer does not pad for signs nor around "..." as torch's does, so the
        # values here share a sign and are not summarised)
        for kw in (dict(precision=3, sci_mode=False), dict(precision=2), dict(precision=6)):
            ce.set_printoptions(**kw)
            torch.set_printoptions(**kw)
            for vals in ([1.23456, 1e-5], [0.5, 2.25], list(range(12))):
                a = repr(ce.tensor(vals)).replace("cengine.", "torch.")
                assert a == repr(torch.tensor(vals)), (kw, vals)
            ce.set_printoptions(profile="default")
            torch.set_printoptions(profile="default")
    finally:
        torch.set_printoptions(profile="default")


def test_jit_passes_through_with_one_note():
    import cengine.jit as jit
    jit._noted[0] = False

    def f(x):
        return x * 2

    with pytest.warns(UserWarning, match="returns its argument unchanged"):
        assert ce.jit.script(f) is f
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = ce.nn.Linear(2, 2)
        assert ce.jit.trace(m, ce.ones(1, 2)) is m   # no second note
    assert ce.jit.ignore(f) is f and ce.jit.unused(f) is f and ce.jit.export(f) is f
    assert ce.jit.ignore(drop=True)(f) is f
    assert not ce.jit.is_scripting() and not ce.jit.is_tracing()
    assert ce.jit.Final[int] is int
    with pytest.raises(RuntimeError, match="cannot write TorchScript archives"):
        ce.jit.save(m, "m.pt")
    with pytest.raises(RuntimeError, match="cannot read TorchScript archives"):
        ce.jit.load("m.pt")
    with pytest.raises(RuntimeError, match="expected a function"):
        ce.jit.script(3)


def test_version_and_interop_threads():
    assert ce.version.__version__ == ce.__version__ and ce.version.cuda is None
    assert ce.version.hip is None
    assert ce.get_num_interop_threads() == 1
    ce.set_num_interop_threads(4)
    assert ce.get_num_interop_threads() == 1
    with pytest.raises(RuntimeError, match="Expected positive number of threads"):
        ce.set_num_interop_threads(0)
    with pytest.raises(TypeError, match="must be int"):
        ce.set_num_interop_threads(2.0)


def test_assert_close():
    ce.testing.assert_close(ce.tensor([1.0, 2.0]), ce.tensor([1.0, 2.0 + 1e-6]))
    ce.testing.assert_close({"a": [ce.ones(2), 3]}, {"a": [ce.ones(2), 3]})
    ce.testing.assert_close(ce.tensor([float("nan")]), ce.tensor([float("nan")]), equal_nan=True)
    ce.testing.assert_close(ce.ones(2), ce.ones(2) + 0.1, rtol=0, atol=0.2)
    ce.testing.assert_close(ce.ones(2), ce.ones(2, dtype=ce.float64), check_dtype=False)
    with pytest.raises(AssertionError, match="Tensor-likes are not close!\n\nMismatched elements: "
                                             "1 / 2 \\(50.0%\\)\nGreatest absolute difference: "
                                             "1.0 at index \\(1,\\) \\(up to 1e-05 allowed\\)"):
        ce.testing.assert_close(ce.tensor([1.0, 2.0]), ce.tensor([1.0, 3.0]))
    with pytest.raises(AssertionError, match="attribute 'shape' do not match"):
        ce.testing.assert_close(ce.ones(2), ce.ones(3))
    with pytest.raises(AssertionError, match="attribute 'dtype' do not match"):
        ce.testing.assert_close(ce.ones(2), ce.ones(2, dtype=ce.float64))
    with pytest.raises(AssertionError, match="Scalars are not close!"):
        ce.testing.assert_close(1.0, 1.001)
    with pytest.raises(AssertionError, match="not close"):
        ce.testing.assert_close(ce.tensor([float("nan")]), ce.tensor([float("nan")]))
    with pytest.raises(AssertionError, match="custom"):
        ce.testing.assert_close(ce.ones(1), ce.zeros(1), msg="custom")
    with pytest.raises(ValueError, match="Both 'rtol' and 'atol' must be either specified"):
        ce.testing.assert_close(ce.ones(1), ce.ones(1), rtol=1e-3)
    ce.testing.assert_close(ce.tensor([1, 2]), ce.tensor([1, 2]))
    with pytest.raises(AssertionError):
        ce.testing.assert_close(ce.tensor([1, 2]), ce.tensor([1, 3]))


def test_assert_close_messages_match_torch():
    torch = pytest.importorskip("torch")
    for a, b in (([1.0, 2.0], [1.0, 3.0]), ([0.0, 1.0, 5.0], [1.0, 1.0, 4.0])):
        msgs = []
        for lib in (ce, torch):
            with pytest.raises(AssertionError) as e:
                lib.testing.assert_close(lib.tensor(a), lib.tensor(b))
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1]


def test_categorical():
    ce.manual_seed(0)
    probs = ce.tensor([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    m = ce.distributions.Categorical(probs)
    assert m.batch_shape == (2,) and m.event_shape == ()
    s = m.sample((4000,))
    assert s.shape == (4000, 2) and s.dtype == ce.int64
    freq = np.stack([np.bincount(s[:, i].numpy(), minlength=3) / 4000 for i in range(2)])
    assert np.allclose(freq, probs.numpy(), atol=0.03) and freq[1, 2] == 0
    lp = m.log_prob(ce.tensor([2, 0]))
    assert np.allclose(lp.numpy(), np.log([0.7, 0.5]))
    ent = m.entropy().numpy()
    p = probs.numpy()
    assert np.allclose(ent, [-(p[0] * np.log(p[0])).sum(), np.log(2)], atol=1e-6)
    assert m.sample().shape == (2,)
    lg = ce.randn(3, 4, dtype=ce.float64, requires_grad=True)
    assert gradcheck(lambda t: ce.distributions.Categorical(logits=t).log_prob(
        ce.tensor([0, 3, 1])), (lg,))
    assert gradcheck(lambda t: ce.distributions.Categorical(logits=t).entropy(), (lg,))
    assert gradcheck(lambda t: ce.distributions.Categorical(probs=t.softmax(-1)).log_prob(
        ce.tensor([1, 1, 2])), (lg,))
    with pytest.raises(ValueError, match="Either `probs` or `logits` must be specified"):
        ce.distributions.Categorical()
    with pytest.raises(ValueError, match="within the support"):
        m.log_prob(ce.tensor([3, 0]))
    with pytest.raises(ValueError, match="constraint Simplex"):
        ce.distributions.Categorical(ce.tensor([-0.1, 1.1]))


def test_normal_and_bernoulli():
    ce.manual_seed(0)
    loc = ce.tensor([0.0, 2.0], dtype=ce.float64, requires_grad=True)
    scale = ce.tensor([1.0, 0.5], dtype=ce.float64, requires_grad=True)
    n = ce.distributions.Normal(loc, scale)
    x = n.rsample((5000,))
    assert x.shape == (5000, 2) and x.requires_grad
    xn = x.detach().numpy()
    assert np.allclose(xn.mean(0), [0, 2], atol=0.05) and np.allclose(xn.std(0), [1, .5], atol=.05)
    assert not n.sample((3,)).requires_grad
    v = ce.tensor([0.3, 1.0], dtype=ce.float64)
    want = -((v.numpy() - [0, 2]) ** 2) / (2 * np.array([1, .25])) - np.log([1, .5]) - \
        0.5 * math.log(2 * math.pi)
    assert np.allclose(n.log_prob(v).detach().numpy(), want)
    assert np.allclose(n.entropy().detach().numpy(), 0.5 + 0.5 * math.log(2 * math.pi) +
                       np.log([1, .5]))
    assert np.allclose(n.cdf(ce.tensor([0.0, 2.0], dtype=ce.float64)).detach().numpy(), 0.5)
    assert np.allclose(n.icdf(ce.tensor([0.5, 0.5], dtype=ce.float64)).detach().numpy(), [0, 2])
    assert gradcheck(lambda a, b: ce.distributions.Normal(a, b).log_prob(v), (loc, scale))
    q = ce.distributions.Normal(ce.zeros(2, dtype=ce.float64), ce.ones(2, dtype=ce.float64))
    kl = ce.distributions.kl_divergence(n, q).detach().numpy()
    s = np.array([1, .5])
    assert np.allclose(kl, 0.5 * (s ** 2 + np.array([0, 4]) - 1 - np.log(s ** 2)))
    with pytest.raises(ValueError, match="GreaterThan"):
        ce.distributions.Normal(0.0, -1.0)
    b = ce.distributions.Bernoulli(probs=ce.tensor([0.2, 0.9]))
    smp = b.sample((4000,))
    assert smp.shape == (4000, 2) and np.allclose(smp.numpy().mean(0), [0.2, 0.9], atol=0.03)
    assert np.allclose(b.log_prob(ce.tensor([1.0, 0.0])).numpy(), np.log([0.2, 0.1]), atol=1e-5)
    assert np.allclose(ce.distributions.Bernoulli(logits=ce.tensor([0.0])).probs.numpy(), 0.5)
    with pytest.raises(NotImplementedError, match="No KL"):
        ce.distributions.kl_divergence(b, n)


def test_distributions_match_torch():
    torch = pytest.importorskip("torch")
    lg = np.random.default_rng(0).standard_normal((3, 5))
    v = [0, 4, 2]
    a = ce.distributions.Categorical(logits=ce.tensor(lg))
    b = torch.distributions.Categorical(logits=torch.tensor(lg))
    assert np.allclose(a.log_prob(ce.tensor(v)).numpy(), b.log_prob(torch.tensor(v)).numpy())
    assert np.allclose(a.entropy().numpy(), b.entropy().numpy())
    assert np.allclose(a.probs.numpy(), b.probs.numpy()) and np.allclose(a.logits.numpy(),
                                                                         b.logits.numpy())
    n1 = ce.distributions.Normal(ce.tensor(lg), ce.tensor(np.exp(lg)))
    n2 = torch.distributions.Normal(torch.tensor(lg), torch.tensor(np.exp(lg)))
    x = lg[::-1].copy()
    assert np.allclose(n1.log_prob(ce.tensor(x)).numpy(), n2.log_prob(torch.tensor(x)).numpy())
    assert np.allclose(n1.cdf(ce.tensor(x)).numpy(), n2.cdf(torch.tensor(x)).numpy())


def test_bincount_and_parameter_vectors():
    assert ce.bincount(ce.tensor([0, 2, 2])).tolist() == [1, 0, 2]
    assert ce.tensor([1]).bincount(minlength=3).tolist() == [0, 1, 0]
    w = ce.bincount(ce.tensor([0, 2]), weights=ce.tensor([0.5, 1.0]))
    assert w.dtype == ce.float32 and w.tolist() == [0.5, 0.0, 1.0]
    assert ce.bincount(ce.tensor([0, 2]), weights=ce.tensor([1, 2])).dtype == ce.float64
    for bad in (ce.tensor([-1]), ce.tensor([[1]])):
        with pytest.raises(RuntimeError, match="1-d non-negative integral inputs"):
            ce.bincount(bad)
    with pytest.raises(NotImplementedError, match="not implemented for 'Float'"):
        ce.bincount(ce.tensor([1.0]))
    m = ce.nn.Linear(3, 2)
    vec = ce.nn.utils.parameters_to_vector(m.parameters())
    assert vec.shape == (8,) and np.array_equal(vec.detach().numpy()[:6],
                                                m.weight.detach().numpy().ravel())
    ce.nn.utils.vector_to_parameters(ce.arange(8.), m.parameters())
    assert m.weight.tolist() == [[0, 1, 2], [3, 4, 5]] and m.bias.tolist() == [6, 7]
    assert isinstance(m.weight, ce.nn.Parameter) and m.weight.requires_grad
    with pytest.raises(RuntimeError, match="cannot fill parameters"):
        ce.nn.utils.vector_to_parameters(ce.arange(7.), m.parameters())
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        ce.nn.utils.vector_to_parameters([1.0], m.parameters())
