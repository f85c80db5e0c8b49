"""Shared fixtures: run kernel tests on every ISA path this CPU has and on 1 and 2 threads."""
import os

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


def _real_cuda_reason():
    """None when real CuPy sees a GPU, else why the cuda parameter is skipped."""
    from cengine import _device
    return _device.cuda_missing_reason()


def device_for(request, name):
    """The device string a `device` parameter names: 'cpu'; 'cuda' (cuda:0, skipped unless real
    CuPy sees a GPU); 'fake-cuda' (cuda:0 on the fake CuPy of tests/_fake_cupy.py)."""
    if name == "fake-cuda":
        request.getfixturevalue("fake_cuda")
        return "cuda:0"
    if name == "cuda":
        why = _real_cuda_reason()
        if why is not None:
            pytest.skip("no real CUDA device: " + why)
        return "cuda:0"
    return "cpu"


# CENGINE_TEST_FAKE_CUDA=1 adds a "fake-cuda" case to the `device` fixture: the tests that take
# it then also run on the fake CuPy (a check of the tests' own device code on a machine without
# a GPU; the fake is numpy underneath, so some ops it lacks may fail there and not on a GPU)
_DEVICES = ["cpu", "cuda"] + (["fake-cuda"] if os.environ.get("CENGINE_TEST_FAKE_CUDA") else [])


@pytest.fixture(params=_DEVICES)
def device(request):
    """Run the test on the CPU and (only where real CuPy sees a GPU) on cuda:0."""
    return device_for(request, request.param)


@pytest.fixture
def fake_cuda(monkeypatch):
    """A fake CuPy with one GPU (tests/_fake_cupy.py): the cuda dispatch code runs on the CPU."""
    from _fake_cupy import install, uninstall
    m = install(monkeypatch, 1)
    yield m
    uninstall()


@pytest.fixture
def fake_cuda2(monkeypatch):
    """The fake CuPy with two GPUs."""
    from _fake_cupy import install, uninstall
    m = install(monkeypatch, 2)
    yield m
    uninstall()
