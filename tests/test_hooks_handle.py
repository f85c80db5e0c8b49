"""cengine.utils.hooks.RemovableHandle: the one handle class Module and Optimizer hooks return."""
from collections import OrderedDict

import numpy as np
import pytest

import cengine as ce
from cengine import nn
from cengine.utils.hooks import RemovableHandle


def test_one_class_everywhere():
    from cengine.nn.module import RemovableHandle as M
    from cengine.optim.optimizer import RemovableHandle as O
    assert M is RemovableHandle and O is RemovableHandle
    lin = nn.Linear(2, 2)
    opt = ce.optim.SGD(lin.parameters(), lr=0.1)
    handles = [lin.register_forward_hook(lambda m, a, o: None),
               lin.register_forward_pre_hook(lambda m, a: None),
               opt.register_step_pre_hook(lambda o, a, k: None),
               opt.register_step_post_hook(lambda o, a, k: None),
               ce.optim.optimizer.register_optimizer_step_pre_hook(lambda o, a, k: None),
               ce.optim.optimizer.register_optimizer_step_post_hook(lambda o, a, k: None)]
    assert all(type(h) is RemovableHandle for h in handles)
    assert len({h.id for h in handles}) == len(handles)
    for h in handles:
        h.remove()
        h.remove()   # a second remove is a no-op
    assert not lin._forward_hooks and not lin._forward_pre_hooks
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    assert not ce.optim.optimizer._global_optimizer_pre_hooks
    assert not ce.optim.optimizer._global_optimizer_post_hooks


def test_remove_only_its_own_hook_and_context_manager():
    lin = nn.Linear(3, 2)
    calls = []
    h1 = lin.register_forward_hook(lambda m, a, o: calls.append(1))
    with lin.register_forward_hook(lambda m, a, o: calls.append(2)) as h2:
        assert isinstance(h2, RemovableHandle)
        lin(ce.ones(1, 3))
    assert calls == [1, 2]
    lin(ce.ones(1, 3))
    assert calls == [1, 2, 1]
    h1.remove()
    lin(ce.ones(1, 3))
    assert calls == [1, 2, 1]


def test_optimizer_step_hooks_removed():
    p = nn.Parameter(ce.tensor(np.ones(3, np.float32)))
    opt = ce.optim.SGD([p], lr=0.5)
    seen = []
    h = opt.register_step_post_hook(lambda o, a, k: seen.append(o))
    p.grad = ce.ones(3)
    opt.step()
    h.remove()
    opt.step()
    assert seen == [opt]
    np.testing.assert_allclose(p.detach().numpy(), np.zeros(3))


def test_extra_dict():
    hooks, extra1, extra2 = OrderedDict(), {}, {}
    h = RemovableHandle(hooks, extra_dict=extra1)
    hooks[h.id], extra1[h.id] = "hook", True
    h.remove()
    assert not hooks and not extra1
    h = RemovableHandle(hooks, extra_dict=[extra1, extra2])
    hooks[h.id], extra1[h.id], extra2[h.id] = "hook", 1, 2
    other = RemovableHandle(hooks)
    hooks[other.id] = "other"
    h.remove()
    assert list(hooks.values()) == ["other"] and not extra1 and not extra2


def test_extra_dict_is_keyword_only():
    with pytest.raises(TypeError):
        RemovableHandle({}, {})
