import pytest

from cengine import _C


def test_isa_names_and_max():
    assert _C.max_isa() in _C.ISA_NAMES
    assert _C.get_isa() in _C.ISA_NAMES


def test_set_isa_roundtrip(isa):
    assert _C.get_isa() == isa


def test_set_isa_unknown():
    with pytest.raises(ValueError, match="unknown ISA"):
        _C.set_isa("sse9")


def test_threads_roundtrip(nthreads):
    assert _C.get_num_threads() == nthreads


def test_set_num_threads_leaves_the_openmp_default_alone():
    """cengine passes its thread count to each of its parallel regions; the process-wide OpenMP
    default (what other OpenMP libraries in the process use) must not change."""
    import ctypes
    import ctypes.util
    if not _C.openmp_enabled():
        pytest.skip("built without OpenMP")
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("libgomp not found")
    old = _C.get_num_threads()
    before = gomp.omp_get_max_threads()
    try:
        for n in (1, before + 3):
            _C.set_num_threads(n)
            assert _C.get_num_threads() == n
            assert gomp.omp_get_max_threads() == before
    finally:
        _C.set_num_threads(old)
