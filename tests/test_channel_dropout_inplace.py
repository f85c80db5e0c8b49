"""F.dropout1d / F.dropout2d with inplace=True (they raised ImportError before)."""
import warnings

import numpy as np
import pytest

import cengine as ce
import cengine.nn.functional as F


@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (3, 4, 5)), (F.dropout1d, (4, 7)),
                                      (F.dropout2d, (2, 3, 4, 5)), (F.dropout2d, (3, 4, 5))])
def test_inplace_matches_out_of_place(fn, shape):
    x0 = np.random.default_rng(0).standard_normal(shape)
    ce.manual_seed(3)
    want = fn(ce.tensor(x0), 0.4).numpy()
    ce.manual_seed(3)
    x = ce.tensor(x0)
    v = x._version[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # dropout2d's 3-D input warning
        r = fn(x, 0.4, inplace=True)
    assert r is x and x._version[0] > v
    np.testing.assert_array_equal(x.numpy(), want)
    assert np.any(want == 0) and np.any(want != 0)


def test_inplace_gradient_is_the_mask_and_leaf_refused():
    a = ce.tensor(np.random.default_rng(1).standard_normal((4, 6, 3)), requires_grad=True)
    b = a * 1.0
    ce.manual_seed(5)
    r = F.dropout1d(b, 0.5, inplace=True)
    assert r is b and r.grad_fn is not None
    r.sum().backward()
    kept = b.detach().numpy() != 0
    np.testing.assert_array_equal(a.grad.numpy(), np.where(kept, 2.0, 0.0))
    # whole channels: the mask is constant along the last axis
    assert np.all(a.grad.numpy() == a.grad.numpy()[..., :1])
    leaf = ce.ones(2, 3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in "
                                           "an in-place operation"):
        F.dropout1d(leaf, 0.5, inplace=True)
    assert F.dropout1d(leaf, 0.5, training=False, inplace=True) is leaf
