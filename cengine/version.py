"""cengine.version: torch.version's fields (no CUDA/ROCm build: cuda and hip are None)."""
__version__ = "0.1.0"
cuda = None
hip = None
debug = False
git_version = "unknown"
