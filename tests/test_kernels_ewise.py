"""Threaded elementwise arithmetic (cengine._C.ewise) against numpy, bitwise, on every ISA path
and 1/2 threads; the Python ops route large same-shape float operands through it."""
import numpy as np
import pytest

import cengine as ce
from cengine import _C

UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}
# below, at and above the one-thread limit (2^15 per thread) and vector widths; odd tails
SIZES = [1, 15, 17, 1000, 32767, 65536, 65537, 200003]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(UFUNCS))
def test_ewise_matches_numpy_bitwise(isa, nthreads, dtype, op):
    rng = np.random.default_rng(0)
    for n in SIZES:
        a = rng.standard_normal(n).astype(dtype)
        b = rng.standard_normal(n).astype(dtype)
        b[::7] = 0.0                                    # div by zero -> inf/nan like numpy
        a[::11] = np.nan
        a[5::13] = np.inf
        with np.errstate(all="ignore"):
            ref = UFUNCS[op](a, b)
        out = _C.ewise(op, a, b)
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(_C.ewise_ref(op, a, b), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ewise_out_aliasing_and_shapes(isa, nthreads, dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 257)).astype(dtype)
    b = rng.standard_normal((300, 257)).astype(dtype)
    ref = a * b
    a2 = a.copy()
    assert _C.ewise("mul", a2, b, out=a2) is a2        # in place into an input
    np.testing.assert_array_equal(a2, ref)
    out = np.empty_like(a)
    assert _C.ewise("sub", a, b, out=out) is out
    np.testing.assert_array_equal(out, a - b)


def test_ewise_errors():
    a = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="unknown op"):
        _C.ewise("pow", a, a)
    with pytest.raises(TypeError, match="dtype"):
        _C.ewise("add", a, a.astype(np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.ewise("add", a.astype(np.int64), a.astype(np.int64))
    with pytest.raises(ValueError, match="shape"):
        _C.ewise("add", a, np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.ewise("add", a.T, np.ones((5, 4), np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        _C.ewise("add", [1.0], a)
    ro = np.ones((4, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.ewise("add", a, a, out=ro)
    buf = np.ones(100, np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        _C.ewise("add", buf[:-1], buf[:-1], out=buf[1:])
    raw = np.zeros(4 * 10 + 1, np.uint8)
    unaligned = raw[1:].view(np.float32)
    assert not unaligned.flags.aligned
    with pytest.raises(ValueError, match="aligned"):
        _C.ewise("add", unaligned, unaligned)


def test_arith_falls_back_to_numpy_where_the_kernel_does_not_apply():
    from cengine.ops._util import arith
    n = 1 << 17
    big_endian = np.arange(n, dtype=">f4")
    np.testing.assert_array_equal(arith("add", np.add, big_endian, big_endian), 2 * big_endian)
    raw = np.zeros(4 * n + 1, np.uint8)
    unaligned = raw[1:].view(np.float32)
    np.testing.assert_array_equal(arith("mul", np.multiply, unaligned, unaligned), unaligned)
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no divide-by-zero warning at any size
        assert np.isinf(arith("div", np.true_divide, ones, zeros)).all()
        assert np.isinf(arith("div", np.true_divide, ones[:10], zeros[:10])).all()


@pytest.mark.parametrize("dtype", [ce.float32, ce.float64])
def test_large_tensor_arithmetic_and_grads_use_same_values(nthreads, dtype):
    """Tensors above the kernel's size limit: values and gradients equal numpy's."""
    x = ce.randn(300, 300, dtype=dtype, requires_grad=True)
    y = ce.randn(300, 300, dtype=dtype, requires_grad=True)
    xn, yn = x.detach().numpy(), y.detach().numpy()
    z = (x * y + x - y) / (y * y + 1)
    np.testing.assert_array_equal(z.detach().numpy(), (xn * yn + xn - yn) / (yn * yn + 1))
    (x * y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), yn)
    np.testing.assert_array_equal(y.grad.numpy(), xn)
