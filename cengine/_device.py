"""Why a cuda device cannot be used here, told without importing CuPy (import cengine never
imports it): CuPy missing (with the extra that brings it) or the CuPy array path not built."""
import importlib.util

_INSTALL = 'pip install "cengine[cuda]" brings CuPy for CUDA 12'


def cuda_missing_reason():
    """One sentence naming what is missing for device='cuda'."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (%s)" % _INSTALL
    return "CuPy is installed, but cengine's CuPy array path is not built yet"
