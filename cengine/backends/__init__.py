"""cengine.backends: torch.backends' flags as they are on a CPU-only machine. The CUDA, cuDNN and
MPS flags are plain settable attributes (scripts set them before training); they change nothing
in cengine, whose kernels are the CPU's. backends.cpu reports the SIMD path in use."""
from . import cpu, cuda, cudnn, mps, openmp  # noqa: F401

__all__ = ["cpu", "cuda", "cudnn", "mps", "openmp"]
