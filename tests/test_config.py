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
