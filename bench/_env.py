"""Imported first by every benchmark, before numpy and cengine are loaded.

Which cengine: a checkout with an in-place build (python setup.py build_ext --inplace) is
benchmarked as built; otherwise the installed package is imported, never the unbuilt sources
of this checkout (which `python -m bench` from the repository root would find first).

numpy's OpenBLAS keeps its worker threads spinning for about 0.1-0.15 s after every BLAS call
(measured here: 0.14 CPU-seconds burnt during a 0.3 s sleep after a 512^2 matmul). When
libraries are timed side by side, that spinning thread takes a core away from whichever library
runs next and makes every 2-thread comparison against numpy meaningless. OpenBLAS's own
OPENBLAS_THREAD_TIMEOUT=20 (2^20 cycles, under a millisecond, about what libgomp spins by
default for cengine and torch) leaves numpy's speed on back-to-back calls intact and stops the
interference. An explicit setting in the environment wins.
"""
import os
import sys

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if any(f.startswith("_cengine") and f.endswith((".so", ".pyd"))
       for f in os.listdir(os.path.join(ROOT, "cengine", "_C"))):
    sys.path.insert(0, ROOT)
else:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]
