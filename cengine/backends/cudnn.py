"""torch.backends.cudnn without cuDNN: is_available() False, version() None; enabled, benchmark,
deterministic and allow_tf32 are settable module attributes with torch's defaults."""

__all__ = ["is_available", "version", "enabled", "benchmark", "deterministic", "allow_tf32",
           "benchmark_limit"]

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True
benchmark_limit = 10


def is_available():
    return False


def version():
    return None
