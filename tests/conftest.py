"""Shared fixtures: run kernel tests on every ISA path this CPU has and on 1 and 2 threads."""
import pytest

from cengine import _C

ISAS = [name for name in _C.ISA_NAMES if _C.ISA_NAMES.index(name) <= _C.ISA_NAMES.index(_C.max_isa())]


@pytest.fixture(params=ISAS)
def isa(request):
    """Force one kernel path (generic/avx2/avx512) for the test, restore afterwards."""
    old = _C.get_isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(old)


@pytest.fixture(params=[1, 2])
def nthreads(request):
    """Run the test with 1 and with 2 OpenMP threads."""
    old = _C.get_num_threads()
    _C.set_num_threads(request.param)
    yield request.param
    _C.set_num_threads(old)
