"""float32 <-> bfloat16 / float16 cast kernels (src_c/cast.c): every 16-bit pattern, float32
edge cases and random bit patterns, on each ISA path and 1 / 2 threads, against the scalar
reference, an independent numpy model, and torch's Tensor.to() bits when torch is installed."""
import numpy as np
import pytest

from cengine import _C

ml_dtypes = pytest.importorskip("ml_dtypes")

ALL16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _f32_edge():
    """special values, rounding ties, subnormals, overflow boundaries and random patterns"""
    special = np.array([0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
                        0x7f800001, 0xff812345, 0x7fa00000, 0x00000001, 0x80000001, 0x007fffff,
                        0x00400000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0x7f7fffff,
                        0xff7fffff, 0x7f7f8000, 0x477fe000, 0x477ff000, 0x477fefff, 0x477ff001,
                        0x38800000, 0x387fffff, 0x38000000, 0x33000000, 0x33000001, 0x32ffffff,
                        0x33c00000, 0x3f801000, 0x3f803000, 0x3f802000, 0xc7800000],
                       dtype=np.uint32)
    rng = np.random.default_rng(0)
    rand = rng.integers(0, 1 << 32, size=20011, dtype=np.uint64).astype(np.uint32)
    # values near the float16 range, where every rounding branch is taken
    near = (rng.standard_normal(5003) * np.exp2(rng.integers(-26, 17, 5003))).astype(np.float32)
    return np.concatenate([special, rand, near.view(np.uint32)]).view(np.float32)


def _bf16_model(x):
    """round to nearest even on the bit patterns; NaN -> 0xffff (torch's Tensor.to)"""
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[np.isnan(x)] = 0xffff
    return r


def _f16_model(x):
    """numpy's float16 rounding (correct RNE); NaN: quiet, sign and top payload (F16C)"""
    with np.errstate(over="ignore", invalid="ignore"):
        r = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    u = x.view(np.uint32)[nan]
    r[nan] = (((u >> 16) & 0x8000) | 0x7e00 | ((u >> 13) & 0x3ff)).astype(np.uint16)
    return r


@pytest.mark.parametrize("ref", [False, True])
def test_to_half_bits(isa, nthreads, ref):
    x = _f32_edge()
    for n in (0, 1, 7, 15, 16, 17, 33, x.size):
        np.testing.assert_array_equal(_C.cast_f32_to_bf16(x[:n], ref=ref), _bf16_model(x[:n]))
        np.testing.assert_array_equal(_C.cast_f32_to_f16(x[:n], ref=ref), _f16_model(x[:n]))


@pytest.mark.parametrize("ref", [False, True])
def test_from_half_every_pattern(isa, nthreads, ref):
    b = _C.cast_bf16_to_f32(ALL16, ref=ref)
    np.testing.assert_array_equal(b.view(np.uint32), ALL16.astype(np.uint32) << 16)
    h = _C.cast_f16_to_f32(ALL16, ref=ref)
    want = ALL16.view(np.float16).astype(np.float32)
    nan = np.isnan(want)   # F16C: quiet, sign and payload kept
    want.view(np.uint32)[nan] |= np.uint32(0x400000)
    np.testing.assert_array_equal(h.view(np.uint32), want.view(np.uint32))
    for n in (1, 5, 17):   # partial vectors
        np.testing.assert_array_equal(_C.cast_f16_to_f32(ALL16[31744 - 3:31744 - 3 + n], ref=ref)
                                      .view(np.uint32), want[31744 - 3:31744 - 3 + n].view(np.uint32))


def test_round_trip_every_pattern(isa):
    """every non-NaN 16-bit value survives f32 and back unchanged"""
    b = _C.cast_f32_to_bf16(_C.cast_bf16_to_f32(ALL16))
    keep = ~np.isnan(ALL16.view(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(b[keep], ALL16[keep])
    h = _C.cast_f32_to_f16(_C.cast_f16_to_f32(ALL16))
    keep = ~np.isnan(ALL16.view(np.float16))
    np.testing.assert_array_equal(h[keep], ALL16[keep])


def test_threads_agree_large():
    x = np.random.default_rng(1).standard_normal(300007).astype(np.float32)
    old = _C.get_num_threads()
    try:
        outs = []
        for nt in (1, 2):
            _C.set_num_threads(nt)
            outs.append((_C.cast_f32_to_bf16(x), _C.cast_f32_to_f16(x)))
    finally:
        _C.set_num_threads(old)
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_array_equal(outs[0][0], _bf16_model(x))


def test_layouts_and_dtypes():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]   # non-contiguous
    h = _C.cast_f32_to_bf16(x)
    assert h.shape == (4, 3) and h.dtype == np.uint16
    np.testing.assert_array_equal(h, _bf16_model(np.ascontiguousarray(x)))
    out = np.empty((4, 3), ml_dtypes.bfloat16)
    assert _C.cast_f32_to_bf16(x, out=out) is out
    np.testing.assert_array_equal(out.astype(np.float32), x)
    np.testing.assert_array_equal(_C.cast_bf16_to_f32(out), x)
    f16 = x.astype(np.float16)
    np.testing.assert_array_equal(_C.cast_f16_to_f32(f16), x)
    np.testing.assert_array_equal(_C.cast_f16_to_f32(f16[::-1]), x[::-1])


def test_bad_input():
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        _C.cast_f32_to_bf16(np.ones(3))
    with pytest.raises(TypeError, match="expected dtype bfloat16"):
        _C.cast_bf16_to_f32(np.ones(3, np.float16))
    with pytest.raises(TypeError, match="expected a numpy array"):
        _C.cast_f16_to_f32([1, 2])
    with pytest.raises(ValueError, match="out must be a writable C-contiguous"):
        _C.cast_f32_to_f16(np.ones(3, np.float32), out=np.empty(4, np.uint16))
    with pytest.raises(ValueError, match="out must be"):
        _C.cast_bf16_to_f32(np.ones(3, np.uint16), out=np.empty(3, np.float64))


def test_torch_bits():
    torch = pytest.importorskip("torch")
    x = _f32_edge()
    t = torch.from_numpy(x.copy())
    np.testing.assert_array_equal(_C.cast_f32_to_bf16(x),
                                  t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))
    np.testing.assert_array_equal(_C.cast_f32_to_f16(x),
                                  t.to(torch.float16).view(torch.int16).numpy().view(np.uint16))
    a16 = torch.from_numpy(ALL16.view(np.int16).copy())
    np.testing.assert_array_equal(_C.cast_bf16_to_f32(ALL16).view(np.uint32),
                                  a16.view(torch.bfloat16).float().numpy().view(np.uint32))
    np.testing.assert_array_equal(_C.cast_f16_to_f32(ALL16).view(np.uint32),
                                  a16.view(torch.float16).float().numpy().view(np.uint32))


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (37, 1), (31, 33), (64, 64), (129, 70)])
def test_transpose16(nthreads, shape):
    a = np.random.default_rng(3).integers(0, 1 << 16, size=(shape[0], shape[1] + 5),
                                          dtype=np.uint16)[:, 2:2 + shape[1]]
    for ref in (False, True):
        t = _C.transpose16(a, ref=ref)
        assert t.flags.c_contiguous and t.dtype == a.dtype
        np.testing.assert_array_equal(t, a.T)
    b = a.view(ml_dtypes.bfloat16)
    assert _C.transpose16(b).dtype == b.dtype
    np.testing.assert_array_equal(_C.transpose16(a[::2]), a[::2].T)   # any row stride
    with pytest.raises(TypeError, match="2-D numpy array of 16-bit"):
        _C.transpose16(np.ones((2, 2), np.float32))
