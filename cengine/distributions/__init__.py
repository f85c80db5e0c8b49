"""cengine.distributions: the distributions training scripts use most (Categorical for policies
and samplers, Normal for reparameterised latents, Bernoulli), with torch's constructors,
sample / rsample / log_prob / entropy, differentiable through their parameters; kl_divergence
for Normal-Normal and Categorical-Categorical pairs."""
import math

from .. import ops as _ops  # noqa: F401
from ..tensor import Tensor, Size

__all__ = ["Distribution", "Categorical", "Normal", "Bernoulli", "kl_divergence"]


def _t(x, like=None):
    import cengine as ce
    if isinstance(x, Tensor):
        return x
    return ce.tensor(x, dtype=like.dtype if like is not None else ce.get_default_dtype())


def _shape(sample_shape):
    if isinstance(sample_shape, int):
        return (sample_shape,)
    return tuple(sample_shape)


class Distribution:
    has_rsample = False

    def __init__(self, batch_shape=(), event_shape=()):
        self._batch_shape = Size(batch_shape)
        self._event_shape = Size(event_shape)

    @property
    def batch_shape(self):
        return self._batch_shape

    @property
    def event_shape(self):
        return self._event_shape

    def _extended_shape(self, sample_shape=()):
        return Size(_shape(sample_shape) + tuple(self._batch_shape) + tuple(self._event_shape))

    def rsample(self, sample_shape=()):
        raise NotImplementedError("%s has no reparameterised sampler (rsample)"
                                  % type(self).__name__)

    def __repr__(self):
        return "%s()" % type(self).__name__


class Categorical(Distribution):
    """Categorical(probs=None, logits=None): probabilities (not necessarily normalised) or
    unnormalised log-probabilities over the last dimension."""

    def __init__(self, probs=None, logits=None, validate_args=None):
        import cengine as ce
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            probs = _t(probs)
            if probs.dim() < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            if validate_args is not False and bool((probs < 0).any()):
                raise ValueError("Expected parameter probs of shape %s to satisfy the "
                                 "constraint Simplex(), but found invalid values" % tuple(probs.shape))
            self.probs = probs / probs.sum(-1, keepdim=True)
            self.logits = ce.log(self.probs.clamp(min=ce.finfo(self.probs.dtype).tiny))
        else:
            logits = _t(logits)
            if logits.dim() < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
            self.probs = ce.softmax(self.logits, dim=-1)
        self._num_events = self.probs.shape[-1]
        super().__init__(tuple(self.probs.shape[:-1]))

    @property
    def param_shape(self):
        return self.probs.shape

    @property
    def mean(self):
        import cengine as ce
        return ce.full(self._extended_shape(), float("nan"), dtype=self.probs.dtype)

    @property
    def mode(self):
        return self.probs.argmax(dim=-1)

    def sample(self, sample_shape=()):
        import cengine as ce
        ss = _shape(sample_shape)
        n = 1
        for s in ss:
            n *= s
        with ce.no_grad():
            p2 = self.probs.reshape(-1, self._num_events)
            idx = ce.multinomial(p2, n, replacement=True) if n else \
                ce.zeros(p2.shape[0], 0, dtype=ce.int64)
            return idx.t().reshape(ss + tuple(self._batch_shape))

    def log_prob(self, value):
        import cengine as ce
        value = _t(value).long()
        logits = self.logits
        value, logits = value.unsqueeze(-1), logits
        shape = ce.broadcast_shapes(tuple(value.shape[:-1]), tuple(logits.shape[:-1]))
        value = value.expand(*shape, 1)
        logits = logits.expand(*shape, self._num_events)
        if bool(((value < 0) | (value >= self._num_events)).any()):
            raise ValueError("Expected value argument to be within the support "
                             "(IntegerInterval(lower_bound=0, upper_bound=%d))"
                             % (self._num_events - 1))
        return logits.gather(-1, value).squeeze(-1)

    def entropy(self):
        import cengine as ce
        logits = self.logits.clamp(min=ce.finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand=True):
        import cengine as ce
        v = ce.arange(self._num_events).view((-1,) + (1,) * len(self._batch_shape))
        return v.expand(-1, *self._batch_shape) if expand else v

    def __repr__(self):
        return "Categorical(probs: %s)" % (tuple(self.probs.shape),)


class Normal(Distribution):
    """Normal(loc, scale), broadcast together; rsample is differentiable (loc + scale * eps)."""
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        import cengine as ce
        loc = _t(loc, scale if isinstance(scale, Tensor) else None)
        scale = _t(scale, loc)
        self.loc, self.scale = ce.broadcast_tensors(loc, scale)
        if validate_args is not False and bool((self.scale <= 0).any()):
            raise ValueError("Expected parameter scale (Tensor of shape %s) of distribution "
                             "Normal to satisfy the constraint GreaterThan(lower_bound=0.0), but "
                             "found invalid values" % (tuple(self.scale.shape),))
        super().__init__(tuple(self.loc.shape))

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale.pow(2)

    def rsample(self, sample_shape=()):
        import cengine as ce
        shape = self._extended_shape(sample_shape)
        eps = ce.randn(*shape, dtype=self.loc.dtype)
        return self.loc + eps * self.scale

    def sample(self, sample_shape=()):
        import cengine as ce
        with ce.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value):
        import cengine as ce
        value = _t(value, self.loc)
        var = self.scale ** 2
        return -((value - self.loc) ** 2) / (2 * var) - ce.log(self.scale) - \
            math.log(math.sqrt(2 * math.pi))

    def entropy(self):
        import cengine as ce
        return 0.5 + 0.5 * math.log(2 * math.pi) + ce.log(self.scale)

    def cdf(self, value):
        import cengine as ce
        value = _t(value, self.loc)
        return 0.5 * (1 + ce.erf((value - self.loc) / (self.scale * math.sqrt(2))))

    def icdf(self, value):
        import cengine as ce
        value = _t(value, self.loc)
        return self.loc + self.scale * ce.erfinv(2 * value - 1) * math.sqrt(2)

    def __repr__(self):
        return "Normal(loc: %s, scale: %s)" % (tuple(self.loc.shape), tuple(self.scale.shape))


class Bernoulli(Distribution):
    """Bernoulli(probs=None, logits=None)."""

    def __init__(self, probs=None, logits=None, validate_args=None):
        import cengine as ce
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            self.probs = _t(probs)
            if validate_args is not False and bool(((self.probs < 0) | (self.probs > 1)).any()):
                raise ValueError("Expected parameter probs (Tensor of shape %s) of distribution "
                                 "Bernoulli to satisfy the constraint Interval(lower_bound=0.0, "
                                 "upper_bound=1.0), but found invalid values"
                                 % (tuple(self.probs.shape),))
            eps = ce.finfo(self.probs.dtype).eps
            p = self.probs.clamp(eps, 1 - eps)
            self.logits = ce.log(p) - ce.log1p(-p)
        else:
            self.logits = _t(logits)
            self.probs = ce.sigmoid(self.logits)
        super().__init__(tuple(self.probs.shape))

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        import cengine as ce
        with ce.no_grad():
            return ce.bernoulli(self.probs.expand(*self._extended_shape(sample_shape)))

    def log_prob(self, value):
        import cengine as ce
        value = _t(value, self.logits)
        logits, value = ce.broadcast_tensors(self.logits, value)
        return -ce.nn.functional.binary_cross_entropy_with_logits(logits, value,
                                                                  reduction="none")

    def entropy(self):
        import cengine as ce
        return ce.nn.functional.binary_cross_entropy_with_logits(self.logits, self.probs,
                                                                 reduction="none")


def kl_divergence(p, q):
    """KL(p || q) for Normal-Normal and Categorical-Categorical pairs."""
    import cengine as ce
    if isinstance(p, Normal) and isinstance(q, Normal):
        var_ratio = (p.scale / q.scale).pow(2)
        t1 = ((p.loc - q.loc) / q.scale).pow(2)
        return 0.5 * (var_ratio + t1 - 1 - ce.log(var_ratio))
    if isinstance(p, Categorical) and isinstance(q, Categorical):
        t = p.probs * (p.logits - q.logits)
        t = ce.where(q.probs == 0, float("inf"), t)
        t = ce.where(p.probs == 0, 0.0, t)
        return t.sum(-1)
    raise NotImplementedError("No KL(p || q) is implemented for %s and %s"
                              % (type(p).__name__, type(q).__name__))
