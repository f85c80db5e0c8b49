"""torch's namespaces on a CPU-only machine: cuda, accelerator, backends, default device,
compile, deterministic algorithms, nn.modules / nn.parallel, serialization allow-lists;
compared with torch's CPU build where torch is installed."""
import importlib
import warnings

import pytest

import cengine as ce


def test_cuda_reports_no_device():
    c = ce.cuda
    assert c.is_available() is False and c.device_count() == 0 and c.is_initialized() is False
    assert c.is_bf16_supported() is False and c.get_arch_list() == []
    assert c.memory_allocated() == 0 and c.max_memory_allocated() == 0
    c.empty_cache()
    c.reset_peak_memory_stats()
    for f in (c.synchronize, c.current_device, c.get_device_name, c.init,
              lambda: c.set_device(0), lambda: c.set_device("cuda:1")):
        with pytest.raises(AssertionError, match="not compiled with CUDA enabled"):
            f()
    with pytest.raises(ValueError, match="Expected a cuda device, but got: cpu"):
        c.set_device("cpu")
    with c.device(None):
        pass
    with pytest.raises(AssertionError):
        with c.device(0):
            pass


def test_cuda_seeding_seeds_nothing_else():
    ce.manual_seed(123)
    a = ce.rand(3).tolist()
    ce.manual_seed(123)
    ce.cuda.manual_seed(7)
    ce.cuda.manual_seed_all(7)
    ce.cuda.seed()
    ce.cuda.seed_all()
    assert ce.rand(3).tolist() == a


def test_accelerator():
    assert ce.accelerator.is_available() is False
    assert ce.accelerator.current_accelerator() is None
    assert ce.accelerator.current_accelerator(check_available=True) is None
    assert ce.accelerator.device_count() == 0
    with pytest.raises(RuntimeError, match="none is available"):
        ce.accelerator.synchronize()
    with pytest.raises(RuntimeError, match="none is available"):
        ce.accelerator.current_device_index()


def test_backends_flags_are_settable():
    b = ce.backends
    assert b.cuda.matmul.allow_tf32 is False and b.cudnn.allow_tf32 is True
    assert b.cudnn.benchmark is False and b.cudnn.deterministic is False and b.cudnn.enabled
    old = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark, b.cudnn.deterministic)
    try:
        b.cuda.matmul.allow_tf32 = True
        b.cudnn.allow_tf32 = False
        b.cudnn.benchmark = True
        b.cudnn.deterministic = True
        import cengine.backends.cudnn as cudnn
        assert ce.backends.cuda.matmul.allow_tf32 is True and cudnn.benchmark is True
        assert cudnn.deterministic is True and cudnn.allow_tf32 is False
    finally:
        (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark,
         b.cudnn.deterministic) = old
    assert b.cudnn.is_available() is False and b.cudnn.version() is None
    assert b.mps.is_available() is False and b.mps.is_built() is False
    assert b.cuda.is_built() is False
    b.cuda.enable_flash_sdp(False)
    assert b.cuda.flash_sdp_enabled() is False
    b.cuda.enable_flash_sdp(True)
    assert b.cpu.get_cpu_capability() in ("AVX512", "AVX2", "DEFAULT")
    assert isinstance(b.openmp.is_available(), bool)


def test_default_device_and_precision():
    ce.set_default_device("cpu")
    ce.set_default_device(None)
    assert ce.get_default_device() == ce.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA"):
        ce.set_default_device("cuda")
    old = ce.get_float32_matmul_precision()
    ce.set_float32_matmul_precision("high")
    assert ce.get_float32_matmul_precision() == "high"
    ce.set_float32_matmul_precision(old)
    with pytest.raises(RuntimeError, match="Invalid precision"):
        ce.set_float32_matmul_precision("fast")


def test_compile_returns_the_model_with_one_note(monkeypatch):
    from cengine import _surface
    monkeypatch.setitem(_surface._state, "compile_noted", False)
    m = ce.nn.Linear(2, 2)
    with pytest.warns(UserWarning, match="returns the model unchanged"):
        assert ce.compile(m) is m
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ce.compile(m, mode="max-autotune") is m       # the note is shown once

        @ce.compile
        def f(x):
            return x * 2

        @ce.compile(fullgraph=True)
        def g(x):
            return x + 1
    assert f(3) == 6 and g(3) == 4
    with pytest.raises(RuntimeError, match="Either mode or options"):
        ce.compile(m, mode="default", options={})


def test_use_deterministic_algorithms():
    ce.use_deterministic_algorithms(True, warn_only=True)
    assert ce.are_deterministic_algorithms_enabled() is True
    assert ce.is_deterministic_algorithms_warn_only_enabled() is True
    ce.use_deterministic_algorithms(False)
    assert ce.are_deterministic_algorithms_enabled() is False
    with pytest.raises(TypeError):
        ce.use_deterministic_algorithms("yes")


@pytest.mark.parametrize("mod,name", [("module", "Module"), ("linear", "Linear"),
                                      ("linear", "Identity"), ("activation", "ReLU"),
                                      ("activation", "MultiheadAttention"),
                                      ("container", "Sequential"), ("dropout", "Dropout"),
                                      ("loss", "CrossEntropyLoss"), ("normalization", "LayerNorm"),
                                      ("batchnorm", "BatchNorm1d"), ("sparse", "Embedding"),
                                      ("transformer", "TransformerEncoderLayer"),
                                      ("flatten", "Flatten")])
def test_nn_modules_layout(mod, name):
    m = importlib.import_module("cengine.nn.modules." + mod)
    assert getattr(m, name) is getattr(ce.nn, name)
    assert getattr(ce.nn.modules, name) is getattr(ce.nn, name)


def test_nn_parallel():
    import cengine.nn.parallel as par
    lin = ce.nn.Linear(3, 2)
    dp = ce.nn.DataParallel(lin)
    assert dp.module is lin and par.DataParallel is ce.nn.DataParallel
    assert list(dp.state_dict()) == ["module.weight", "module.bias"]
    x = ce.randn(4, 3)
    assert ce.equal(dp(x), lin(x))
    with pytest.raises(AssertionError, match="CUDA"):
        ce.nn.DataParallel(lin, device_ids=[0])


def test_serialization_safe_globals():
    s = ce.serialization
    s.clear_safe_globals()
    s.add_safe_globals([int])
    assert s.get_safe_globals() == [int]
    with s.safe_globals([float]):
        assert s.get_safe_globals() == [int, float]
    assert s.get_safe_globals() == [int]
    s.clear_safe_globals()
    with pytest.raises(TypeError):
        s.add_safe_globals(int)


def test_against_torch_cpu_build():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("torch has CUDA here")
    assert ce.cuda.is_available() == torch.cuda.is_available()
    assert ce.cuda.device_count() == torch.cuda.device_count()
    assert ce.cuda.is_bf16_supported() == torch.cuda.is_bf16_supported()
    assert ce.accelerator.is_available() == torch.accelerator.is_available()
    for flag in ("allow_tf32", "benchmark", "deterministic", "enabled"):
        assert getattr(ce.backends.cudnn, flag) == getattr(torch.backends.cudnn, flag)
    assert ce.backends.cuda.matmul.allow_tf32 == torch.backends.cuda.matmul.allow_tf32
    assert ce.backends.mps.is_available() == torch.backends.mps.is_available()
    for f in ("synchronize", "current_device"):
        with pytest.raises(AssertionError):
            getattr(torch.cuda, f)()
        with pytest.raises(AssertionError):
            getattr(ce.cuda, f)()
