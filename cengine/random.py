"""Random numbers: Generator (reproducible streams), manual_seed, rand/randn/randint/randperm,
normal/bernoulli/multinomial and the in-place initialisers normal_/uniform_/bernoulli_."""
import builtins

import numpy as np

from . import dtypes as _dt
from .tensor import Tensor, Size, _wrap, _check_device
from . import _device as _dv
from .ops._util import size_args, check_nonneg
from .ops.creation import _dtype_or_default, _finish as _make  # a new tensor from an array

__all__ = ["Generator", "manual_seed", "seed", "initial_seed", "default_generator", "rand",
           "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
           "bernoulli", "multinomial", "get_rng_state", "set_rng_state"]

_DEFAULT_SEED = 67280421310721


class Generator:
    """A random stream (numpy PCG64 underneath); same seed, same numbers."""

    def __init__(self, device="cpu"):
        _check_device(device)
        self.device = device
        self.manual_seed(_DEFAULT_SEED)

    def manual_seed(self, seed):
        seed = builtins.int(seed)
        if seed < 0:
            seed &= (1 << 64) - 1
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed))
        return self

    def seed(self):
        s = builtins.int(np.random.SeedSequence().entropy) & ((1 << 63) - 1)
        self.manual_seed(s)
        return s

    def initial_seed(self):
        return self._seed

    def get_state(self):
        return dict(self._rng.bit_generator.state)

    def set_state(self, state):
        self._rng.bit_generator.state = state
        return self


default_generator = Generator()


def _rng(generator):
    return (generator or default_generator)._rng


def manual_seed(seed):
    """Seed the default generator (and return it), like torch.manual_seed."""
    return default_generator.manual_seed(seed)


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)


def _float_dtype(dtype):
    npd = _dtype_or_default(dtype)
    if not _dt.is_floating(npd):
        raise RuntimeError("\"check_uniform_bounds\" not implemented for '%s'" % npd.name)
    return npd


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    npd = _float_dtype(dtype)
    shape = check_nonneg(size_args(size))
    return _make(_rng(generator).random(shape, dtype=np.float64).astype(npd, copy=False)
                 if npd != np.float32 else _rng(generator).random(shape, dtype=np.float32),
                 requires_grad, device)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    npd = _float_dtype(dtype)
    g = _rng(generator)
    arr = g.standard_normal(check_nonneg(size_args(size)),
                            dtype=np.float32 if npd == np.float32 else np.float64)
    return _make(arr.astype(npd, copy=False), requires_grad, device)


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False):
    """randint(high, size) or randint(low, high, size): integers uniform in [low, high)."""
    if size is None and isinstance(high, (tuple, list, Size)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing 1 required positional argument: 'size'")
    if not isinstance(size, (tuple, list, Size)):
        raise TypeError("randint(): argument 'size' must be tuple of ints, not %s"
                        % type(size).__name__)
    low, high = (v.item() if isinstance(v, Tensor) else v for v in (low, high))
    if high <= low:
        raise RuntimeError("random_ expects 'from' to be less than 'to', but got from=%d >= to=%d"
                           % (low, high))
    npd = np.dtype(np.int64) if dtype is None else _dt.to_numpy_dtype(dtype)
    arr = _rng(generator).integers(low, high, size=check_nonneg(size_args((size,))),
                                   dtype=np.int64)
    return _make(arr.astype(npd, copy=False), requires_grad, device)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    if n < 0:
        raise RuntimeError("n must be non-negative, got%d" % n)
    npd = np.dtype(np.int64) if dtype is None else _dt.to_numpy_dtype(dtype)
    return _make(_rng(generator).permutation(n).astype(npd), requires_grad, device)


def rand_like(input, *, dtype=None, device=None, generator=None):
    return rand(*input.shape, dtype=dtype or input.dtype, generator=generator,
               device=input.device if device is None else device)


def randn_like(input, *, dtype=None, device=None, generator=None):
    return randn(*input.shape, dtype=dtype or input.dtype, generator=generator,
               device=input.device if device is None else device)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, generator=None):
    return randint(low, high, tuple(input.shape), dtype=dtype or input.dtype, generator=generator,
                   device=input.device if device is None else device)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None):
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    if size is None:
        size = np.broadcast_shapes(np.shape(m), np.shape(s))
        if dtype is None and isinstance(mean, Tensor):
            dtype = mean.dtype
    npd = _float_dtype(dtype)
    z = _rng(generator).standard_normal(size_args((size,)) if not isinstance(size, tuple)
                                        else size)
    return _wrap(np.asarray(m + s * z, dtype=npd))


def bernoulli(input, p=None, *, generator=None):
    probs = input._data if p is None else np.full(input._data.shape, p)
    if np.any((probs < 0) | (probs > 1)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    return _wrap((_rng(generator).random(probs.shape) < probs).astype(input._data.dtype))


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Sample num_samples category indices per row of the (1-D or 2-D) weights `input`.

    Without replacement the draw is the exponential race (argsort of E/p, E ~ Exp(1)): exactly
    sequential sampling without replacement; categories of weight 0 come after every other one,
    as in torch. With replacement: inverse CDF of the normalised weights."""
    if not isinstance(input, Tensor):
        raise TypeError("multinomial(): argument 'input' (position 1) must be Tensor, not %s"
                        % type(input).__name__)
    if not _dt.is_floating(input._data.dtype):
        raise RuntimeError("multinomial only supports floating-point dtypes for input, got: %s"
                           % _dt.torch_type_name(input.dtype))
    if input._data.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if not isinstance(num_samples, (builtins.int, np.integer)) or \
            isinstance(num_samples, builtins.bool):
        raise TypeError("multinomial(): argument 'num_samples' (position 2) must be int, not %s"
                        % type(num_samples).__name__)
    num_samples = builtins.int(num_samples)
    p = np.asarray(input._data, np.float64)
    rows = p.reshape(-1, p.shape[-1])
    n = rows.shape[1]
    if n == 0:
        raise RuntimeError("cannot sample from an empty probability distribution" if num_samples
                           > 0 else "cannot sample n_sample <= 0 samples")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if not replacement and num_samples > n:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if np.any(rows < 0) or not np.all(np.isfinite(rows)):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    tot = rows.sum(axis=1)
    if np.any(tot <= 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    g = _rng(generator)
    if replacement:
        cdf = np.cumsum(rows / tot[:, None], axis=1)
        # 1 from the last positive weight on: rounding in the cumsum must not leave room to
        # draw a zero-weight category at the end
        last = rows.shape[1] - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
        cdf[np.arange(cdf.shape[1])[None, :] >= last[:, None]] = 1.0
        u = g.random((rows.shape[0], num_samples))
        out = np.empty((rows.shape[0], num_samples), np.int64)
        for r in range(rows.shape[0]):
            out[r] = np.searchsorted(cdf[r], u[r], side="right")
        # a zero-weight tail has cdf == 1 too: searchsorted never lands past the last
        # positive weight because u < 1
    else:
        e = g.standard_exponential(rows.shape)
        with np.errstate(divide="ignore"):
            key = e / rows
        if num_samples == 1:   # the usual language-model sampling step: one pass, no sort
            out = np.argmin(key, axis=1)[:, None].astype(np.int64)
        else:
            out = np.argsort(key, axis=1, kind="stable")[:, :num_samples].astype(np.int64)
    return _wrap(out.reshape(p.shape[:-1] + (num_samples,)))


# ---- in-place initialisers (no graph: they overwrite the data) ----
def _fill(t, values):
    """Write the host array `values` into t's storage (copied to the device of a cuda tensor)."""
    a = t._data
    if type(a) is np.ndarray:
        a[...] = values
    else:
        a[...] = _dv.xp(a).asarray(np.asarray(values, a.dtype))


def _check_inplace_init(t):
    from .autograd import grad_mode as _gm
    if _gm._state[0] and t.requires_grad and t.is_leaf:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    _check_inplace_init(self)
    _fill(self, _rng(generator).standard_normal(self._data.shape) * std + mean)
    self._version[0] += 1
    return self


def uniform_(self, a=0.0, b=1.0, *, generator=None):
    _check_inplace_init(self)
    _fill(self, _rng(generator).uniform(a, b, self._data.shape))
    self._version[0] += 1
    return self


def bernoulli_(self, p=0.5, *, generator=None):
    _check_inplace_init(self)
    _fill(self, _rng(generator).random(self._data.shape) < p)
    self._version[0] += 1
    return self


def random_(self, low=0, high=None, *, generator=None):
    _check_inplace_init(self)
    if high is None:
        low, high = 0, low
    _fill(self, _rng(generator).integers(low, high, self._data.shape))
    self._version[0] += 1
    return self


def exponential_(self, lambd=1.0, *, generator=None):
    _check_inplace_init(self)
    _fill(self, _rng(generator).exponential(1.0 / lambd, self._data.shape))
    self._version[0] += 1
    return self
