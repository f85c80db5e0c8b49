"""Process-wide switches torch scripts set on any machine: default device, torch.compile,
deterministic algorithms, float32 matmul precision. On cengine's CPU engine they are accepted
with torch's signatures; what each one does here is said in its docstring."""
import warnings

__all__ = ["set_default_device", "get_default_device", "compile", "use_deterministic_algorithms",
           "are_deterministic_algorithms_enabled", "is_deterministic_algorithms_warn_only_enabled",
           "set_float32_matmul_precision", "get_float32_matmul_precision"]

_state = {"deterministic": False, "warn_only": False, "fp32_precision": "highest",
          "compile_noted": False}


def set_default_device(device):
    """Only the CPU exists: "cpu" (or None) is accepted, anything else raises as device='cuda'
    does elsewhere."""
    from .tensor import _check_device
    _check_device(device)


def get_default_device():
    from .tensor import device
    return device("cpu")


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None,
            options=None, disable=False, **kwargs):
    """torch.compile's signature; returns `model` unchanged (cengine runs eagerly on its C
    kernels, there is no graph compiler), with a one-time note. Without a model it returns a
    decorator, as torch does (`@ce.compile` and `@ce.compile(mode=...)` both work)."""
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be specified "
                           "at the same time.")
    if model is None:
        def deco(fn):
            return compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                           options=options, disable=disable)
        return deco
    if not callable(model):
        raise RuntimeError("compile() expects a callable (a Module or a function), got %s"
                           % type(model).__name__)
    if not _state["compile_noted"] and not disable:
        _state["compile_noted"] = True
        warnings.warn("cengine.compile returns the model unchanged: cengine executes eagerly on "
                      "its C kernels and has no graph compiler (this note is shown once).",
                      UserWarning, stacklevel=2)
    return model


def use_deterministic_algorithms(mode, *, warn_only=False):
    """Recorded for are_deterministic_algorithms_enabled(). cengine's kernels are deterministic
    already: for a given thread count every op gives the same bits run after run."""
    if not isinstance(mode, bool):
        raise TypeError("use_deterministic_algorithms(): argument 'mode' must be bool, not %s"
                        % type(mode).__name__)
    _state["deterministic"] = mode
    _state["warn_only"] = bool(warn_only)


def are_deterministic_algorithms_enabled():
    return _state["deterministic"]


def is_deterministic_algorithms_warn_only_enabled():
    return _state["warn_only"]


def set_float32_matmul_precision(precision):
    """"highest", "high" or "medium"; remembered (float32 GEMMs always run in full float32)."""
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError("Invalid precision %s: expected one of highest, high, medium"
                           % precision)
    _state["fp32_precision"] = precision


def get_float32_matmul_precision():
    return _state["fp32_precision"]




__all__ += ["get_num_interop_threads", "set_num_interop_threads"]


def get_num_interop_threads():
    """1: cengine runs one op after another (its parallelism is inside each op, see
    get_num_threads)."""
    return 1


def set_num_interop_threads(nthreads):
    """Checked as torch checks it and accepted; cengine has no inter-op thread pool, so
    get_num_interop_threads() stays 1."""
    if not isinstance(nthreads, int) or isinstance(nthreads, bool):
        raise TypeError("set_num_interop_threads(): argument 'num' must be int, not %s"
                        % type(nthreads).__name__)
    if nthreads <= 0:
        raise RuntimeError("Expected positive number of threads")
