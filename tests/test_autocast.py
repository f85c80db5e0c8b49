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


def test_cuda_autocast_disables_itself():
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


def test_cpu_amp_namespace():
    with pytest.warns(FutureWarning, match="cengine.cpu.amp.autocast"):
        a = ce.cpu.amp.autocast()
    with a:
        assert ce.is_autocast_enabled("cpu") and ce.get_autocast_dtype("cpu") is ce.bfloat16
    assert ce.cpu.is_available()
    s = ce.cpu.amp.GradScaler()
    assert s.is_enabled()
