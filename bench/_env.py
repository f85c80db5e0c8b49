"""Imported first by every benchmark, before numpy is loaded.

numpy's OpenBLAS keeps its worker threads spinning for about 0.1-0.15 s after every BLAS call
(measured here: 0.14 CPU-seconds burnt during a 0.3 s sleep after a 512^2 matmul). When
libraries are timed side by side, that spinning thread takes a core away from whichever library
runs next and makes every 2-thread comparison against numpy meaningless. OpenBLAS's own
OPENBLAS_THREAD_TIMEOUT=20 (2^20 cycles, under a millisecond, about what libgomp spins by
default for cengine and torch) leaves numpy's speed on back-to-back calls intact and stops the
interference. An explicit setting in the environment wins.
"""
import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")
