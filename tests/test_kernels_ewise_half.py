"""Elementwise arithmetic on bfloat16 storage (cengine._C.ewise_bf16 / ewise_f32_bf16,
src_c/ewise_half.c) against float32 numpy on the exact values with one rounding (the bits of
torch's and ml_dtypes' bfloat16 ops), on every ISA path and 1/2 threads; the bfloat16 tensor
ops route same-shape operands through it."""
import ml_dtypes
import numpy as np
import pytest

import cengine as ce
from cengine import _C

BF = ml_dtypes.bfloat16
UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}
SIZES = [0, 1, 15, 17, 31, 33, 1000, 65537, 200003]


def bits(x):
    return np.asarray(x).view(np.uint16)


def round_bf16(f32):
    """float32 -> bfloat16 bits, nearest even, NaN -> 0xffff (the cast kernel's rule)"""
    return np.asarray(_C.cast_f32_to_bf16(np.ascontiguousarray(f32, np.float32), ref=True))


def operands(rng, n):
    a = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32).astype(BF)
    b = rng.standard_normal(n).astype(np.float32).astype(BF)
    b[::7] = 0                                  # x/0 -> inf / nan
    a[::11] = np.nan
    a[5::13] = np.inf
    a[3::17] = BF(1e-39)                        # subnormal values are kept
    return a, b


@pytest.mark.parametrize("op", sorted(UFUNCS))
def test_ewise_bf16_matches_float32_op_rounded_once(isa, nthreads, op):
    rng = np.random.default_rng(0)
    for n in SIZES:
        a, b = operands(rng, n)
        with np.errstate(all="ignore"):
            f = UFUNCS[op](a.astype(np.float32), b.astype(np.float32))
        want = round_bf16(f)
        got = _C.ewise_bf16(op, a, b)
        assert got.dtype == a.dtype and got.shape == a.shape
        np.testing.assert_array_equal(bits(got), want)
        np.testing.assert_array_equal(bits(_C.ewise_bf16(op, a, b, ref=True)), want)
        # uint16 bit patterns are accepted as well
        np.testing.assert_array_equal(bits(_C.ewise_bf16(op, bits(a), bits(b))), want)


@pytest.mark.parametrize("op", sorted(UFUNCS))
def test_ewise_f32_bf16_mixed(isa, nthreads, op):
    rng = np.random.default_rng(1)
    for n in SIZES:
        b, _ = operands(rng, n)
        a = rng.standard_normal(n).astype(np.float32)
        with np.errstate(all="ignore"):
            want = UFUNCS[op](a, b.astype(np.float32))
            want_rev = UFUNCS[op](b.astype(np.float32), a)
        np.testing.assert_array_equal(_C.ewise_f32_bf16(op, a, b), want)
        np.testing.assert_array_equal(_C.ewise_f32_bf16(op, a, b, rev=True), want_rev)
        np.testing.assert_array_equal(_C.ewise_f32_bf16(op, a, b, ref=True), want)
        np.testing.assert_array_equal(_C.ewise_f32_bf16(op, a, b, rev=True, ref=True), want_rev)


def test_ewise_bf16_threads_identical_and_out(isa):
    rng = np.random.default_rng(2)
    a, b = operands(rng, 300007)
    res = []
    for nt in (1, 2):
        old = _C.get_num_threads()
        _C.set_num_threads(nt)
        res.append(bits(_C.ewise_bf16("mul", a, b)).copy())
        _C.set_num_threads(old)
    np.testing.assert_array_equal(res[0], res[1])
    a2 = a.copy()
    assert _C.ewise_bf16("mul", a2, b, out=a2) is a2          # in place into an operand
    np.testing.assert_array_equal(bits(a2), res[0])


def test_ewise_bf16_bad_input():
    a = np.ones(4, BF)
    with pytest.raises(ValueError, match="unknown op"):
        _C.ewise_bf16("pow", a, a)
    with pytest.raises(TypeError, match="bfloat16"):
        _C.ewise_bf16("add", np.ones(4, np.float32), a)
    with pytest.raises(ValueError, match="does not match"):
        _C.ewise_bf16("add", a, np.ones(5, BF))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.ewise_bf16("add", np.ones(8, BF)[::2], a)
    with pytest.raises(ValueError, match="overlaps"):
        big = np.ones(5, BF)
        _C.ewise_bf16("add", big[:4], a, out=big[1:])
    with pytest.raises(TypeError, match="float32"):
        _C.ewise_f32_bf16("add", a, a)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.ones(4, BF)
        ro.flags.writeable = False
        _C.ewise_bf16("add", a, a, out=ro)


def test_bf16_tensor_ops_take_the_kernel_and_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 257)).astype(np.float32)
    b = rng.standard_normal((300, 257)).astype(np.float32)
    ca, cb = ce.tensor(a).bfloat16(), ce.tensor(b).bfloat16()
    ta, tb = torch.tensor(a).bfloat16(), torch.tensor(b).bfloat16()
    for f in (lambda x, y: x * y, lambda x, y: x + y, lambda x, y: x - y, lambda x, y: x / y):
        got = f(ca, cb).float().numpy()
        want = f(ta, tb).float().numpy()
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (3, 0), (7, 15), (2048, 77), (33, 1000)])
def test_colsum_bf16_rows_in_order(isa, nthreads, shape):
    """float32 sums row by row in order: bitwise the float32 loop, on every path and thread count"""
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    g = rng.standard_normal(shape).astype(np.float32).astype(BF)
    want = np.zeros(shape[1], np.float32)
    for i in range(shape[0]):
        want = want + g[i].astype(np.float32)
    got = _C.colsum_bf16(g)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_C.colsum_bf16(g, ref=True), want)
    if shape[0] > 2 and shape[1] > 2:   # a row-strided view (every other row), sliced columns
        v = g[::2, 1:]
        w2 = np.zeros(v.shape[1], np.float32)
        for i in range(v.shape[0]):
            w2 = w2 + v[i].astype(np.float32)
        np.testing.assert_array_equal(_C.colsum_bf16(v), w2)
        np.testing.assert_array_equal(_C.colsum_bf16(np.asfortranarray(g)), want)


def test_colsum_bf16_bad_input():
    with pytest.raises(TypeError, match="bfloat16"):
        _C.colsum_bf16(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        _C.colsum_bf16(np.ones(3, BF))
