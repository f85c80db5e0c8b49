"""bfloat16 GEMM (fp32 accumulation) and f32 <-> bf16 casts (src_c/gemm_bf16.c) against plain
references: every path the CPU offers (AMX tiles, AVX512_BF16, the fp32-GEMM fallback), every
ISA setting, 1 and 2 threads, awkward shapes, strides, batches, bias, beta."""
import numpy as np
import pytest

from cengine import _C


def bf16_round(x):
    """float32 values rounded to the nearest bfloat16 (ties to even), in numpy integer ops"""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def bf16_value(h):
    return (h.astype(np.uint32) << 16).view(np.float32)


PATHS = [0, 1, 2]


@pytest.fixture(params=PATHS)
def path(request, isa):
    """cap the bf16 GEMM path; skip caps that give a path already tested"""
    _C.gemm_bf16_set_max_path(request.param)
    got = _C.gemm_bf16_path()
    if got != request.param:
        _C.gemm_bf16_set_max_path(2)
        pytest.skip("path %d not available here (isa %s gives %d)" % (request.param, isa, got))
    yield got
    _C.gemm_bf16_set_max_path(2)


def test_cast_matches_integer_reference_and_torch():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(1000).astype(np.float32) * 10.0 ** rng.integers(-40, 38, 1000),
                        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45,
                                  3.0e38, 3.4e38, 1.00390625, 1.01171875, 1.0078125], np.float32)]
                       ).astype(np.float32)
    want = bf16_round(x)
    for ref in (False, True):
        h = _C.f32_to_bf16(x, ref=ref)
        assert h.dtype == np.uint16
        np.testing.assert_array_equal(h, want)
        back = _C.bf16_to_f32(h, ref=ref)
        np.testing.assert_array_equal(back.view(np.uint32), (want.astype(np.uint32) << 16))
    torch = pytest.importorskip("torch")
    fin = ~np.isnan(x)    # torch's vectorised and scalar casts give different NaN payloads
    th = torch.from_numpy(x[fin]).bfloat16().view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(want[fin], th)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 100003])
def test_cast_sizes_isas_threads(n, isa, nthreads):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    np.testing.assert_array_equal(_C.f32_to_bf16(x), bf16_round(x))
    h = bf16_round(x)
    np.testing.assert_array_equal(_C.bf16_to_f32(h), bf16_value(h))
    out = np.empty(n, np.uint16)
    assert _C.f32_to_bf16(x, out=out) is out


def _ref(A, B, alpha=1.0, beta=0.0, C=None, bias=None):
    """float64 product of the bfloat16-rounded operands"""
    ra = bf16_value(A).astype(np.float64) if A.dtype == np.uint16 else \
        bf16_value(bf16_round(A)).astype(np.float64)
    rb = bf16_value(B).astype(np.float64) if B.dtype == np.uint16 else \
        bf16_value(bf16_round(B)).astype(np.float64)
    out = alpha * (ra @ rb)
    if bias is not None:
        out = out + bias
    if beta != 0:
        out = out + beta * C
    return out, np.abs(alpha) * (np.abs(ra) @ np.abs(rb))


SHAPES = [(1, 1, 1), (1, 7, 1), (5, 1, 3), (12, 32, 2), (13, 33, 31), (31, 65, 64),
          (33, 17, 513), (64, 96, 1029), (197, 70, 37), (40, 48, 97), (17, 35, 2100),
          (64, 64, 2100)]


@pytest.mark.parametrize("M,N,K", SHAPES)
def test_gemm_bf16_matches_reference(M, N, K, path, nthreads):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    want, scale = _ref(A, B)
    # float32 sums of exact products: a few ulp of the sum of |products| (measured: < 2e-7)
    tol = 1.5e-6 * scale + 1e-30
    for a, b in [(A, B), (bf16_round(A), bf16_round(B)), (np.asfortranarray(A), np.asfortranarray(B)),
                 (bf16_round(A).T.copy().T, bf16_round(B).T.copy().T), (A, bf16_round(B)),
                 (np.asfortranarray(A), B), (A, np.asfortranarray(B)),
                 (bf16_round(A).T.copy().T, bf16_round(B)), (bf16_round(A), bf16_round(B).T.copy().T),
                 (np.repeat(A, 2, axis=1)[:, ::2], np.repeat(B, 2, axis=0)[::2])]:
        C = np.full((M, N), np.nan, np.float32)
        _C.gemm_bf16(a, b, C)
        assert np.all(np.abs(C - want) <= tol), (path, np.abs(C - want).max())
    R = np.empty((M, N), np.float32)
    _C.gemm_bf16_ref(A, B, R)
    assert np.all(np.abs(R - want) <= tol)


def test_gemm_bf16_alpha_beta_bias_batch(path, nthreads):
    rng = np.random.default_rng(7)
    b, M, N, K = 3, 29, 45, 70
    A = rng.standard_normal((b, M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)      # broadcast over the batch
    C0 = rng.standard_normal((b, M, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    C = C0.copy()
    _C.gemm_bf16(A, B, C, alpha=0.5, beta=2.0, bias=bias)
    for i in range(b):
        want, scale = _ref(A[i], B, 0.5, 2.0, C0[i], bias)
        np.testing.assert_allclose(C[i], want, atol=1e-5 * (scale.max() + 1), rtol=1e-5)
    # K == 0 and alpha == 0: C = beta * C + bias without reading A/B
    C = C0[0].copy()
    _C.gemm_bf16(np.zeros((M, 0), np.float32), np.zeros((0, N), np.float32), C, beta=3.0, bias=bias)
    np.testing.assert_allclose(C, 3.0 * C0[0] + bias, rtol=1e-6)
    C = np.full((M, N), np.nan, np.float32)
    _C.gemm_bf16(A[0], B, C, alpha=0.0)
    np.testing.assert_array_equal(C, np.zeros((M, N), np.float32))
    # a strided C (every other column of a wider array)
    wide = np.zeros((M, 2 * N), np.float32)
    _C.gemm_bf16(A[0], B, wide[:, ::2])
    want, scale = _ref(A[0], B)
    np.testing.assert_allclose(wide[:, ::2], want, atol=1e-5 * (scale.max() + 1), rtol=1e-5)
    assert not wide[:, 1::2].any()


def test_gemm_bf16_threads_give_identical_results(path):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((301, 777)).astype(np.float32)
    B = rng.standard_normal((777, 130)).astype(np.float32)
    out = []
    for nt in (1, 2):
        old = _C.get_num_threads()
        _C.set_num_threads(nt)
        C = np.empty((301, 130), np.float32)
        _C.gemm_bf16(A, B, C)
        _C.set_num_threads(old)
        out.append(C)
    np.testing.assert_array_equal(out[0], out[1])


def test_gemm_bf16_bad_input():
    A = np.ones((3, 4), np.float32)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        _C.gemm_bf16(A, np.ones((5, 2), np.float32), np.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="float32 or bfloat16"):
        _C.gemm_bf16(A.astype(np.float64), np.ones((4, 2), np.float32), np.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="C must be a float32"):
        _C.gemm_bf16(A, np.ones((4, 2), np.float32), np.empty((3, 2), np.float64))
    with pytest.raises(ValueError, match="C has shape"):
        _C.gemm_bf16(A, np.ones((4, 2), np.float32), np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="bias"):
        _C.gemm_bf16(A, np.ones((4, 2), np.float32), np.empty((3, 2), np.float32),
                     bias=np.ones(3, np.float32))
    C = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        _C.gemm_bf16(C, C, C)
    with pytest.raises(ValueError, match="repeat elements"):
        _C.gemm_bf16(A, np.ones((4, 2), np.float32),
                     np.lib.stride_tricks.as_strided(np.zeros(2, np.float32), (3, 2), (0, 4)))
    with pytest.raises(ValueError, match="path"):
        _C.gemm_bf16_set_max_path(3)
    with pytest.raises(ValueError, match="out must be"):
        _C.f32_to_bf16(np.ones(3, np.float32), out=np.empty(4, np.uint16))


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (13, 33, 31), (32, 32, 64), (64, 96, 1029),
                                   (197, 70, 37), (17, 35, 2100), (40, 48, 600)])
def test_gemm_bf16_bfloat16_output(M, N, K, path, nthreads):
    """a bfloat16 C: each element the float32 result rounded once (within a bfloat16 ulp of the
    reference's rounding; equal to it away from rounding ties), with bias, beta and strides,
    on the direct tile stores and through the float32 copy (K beyond a K block)"""
    import ml_dtypes
    rng = np.random.default_rng(M + 7 * N + 13 * K)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    C0 = bf16_round(rng.standard_normal((M, N)).astype(np.float32))
    for kw, c0 in [({}, None), (dict(bias=bias), None), (dict(beta=1.0), C0),
                   (dict(alpha=0.5, beta=-2.0, bias=bias), C0)]:
        want, scale = _ref(A, B, kw.get("alpha", 1.0), kw.get("beta", 0.0),
                           None if c0 is None else bf16_value(c0).astype(np.float64),
                           kw.get("bias"))
        for layout in ("c", "f", "strided"):
            if layout == "c":
                C = np.full((M, N), 0x7fff, np.uint16) if c0 is None else c0.copy()
            elif layout == "f":
                C = np.array(np.full((M, N), 0x7fff, np.uint16) if c0 is None else c0,
                             order="F", copy=True)
            else:
                big = np.zeros((M, 2 * N), np.uint16)
                C = big[:, ::2]
                if c0 is not None:
                    C[...] = c0
            _C.gemm_bf16(A, bf16_round(B).view(ml_dtypes.bfloat16), C, **kw)
            got = bf16_value(np.ascontiguousarray(C)).astype(np.float64)
            # one bfloat16 rounding (2^-8 relative) plus the float32 sums' error
            err = np.abs(got - want)
            assert np.all(err <= np.abs(want) * 2.0 ** -8 + 2e-6 * scale + 1e-30), (kw, layout)
            if layout == "strided":
                assert not big[:, 1::2].any()
        R = np.full((M, N), 0x7fff, np.uint16) if c0 is None else c0.copy()
        _C.gemm_bf16_ref(A, bf16_round(B), R, **kw)
        # the reference rounds its float32 result as the cast kernel does
        F = np.zeros((M, N), np.float32) if c0 is None else bf16_value(c0).copy()
        _C.gemm_bf16_ref(A, bf16_round(B), F, **kw)
        np.testing.assert_array_equal(R, _C.cast_f32_to_bf16(F))


def test_gemm_bf16_bfloat16_output_rounding_and_nan(path):
    """the tile epilogue rounds as the cast kernel (ties to even, NaN -> 0xffff, inf kept)"""
    M, N, K = 32, 32, 2
    A = np.zeros((M, K), np.float32)
    A[:, 0] = 1.0
    B = np.zeros((K, N), np.float32)
    vals = np.array([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, -(1.0 + 2.0 ** -8), 3.0e38, 1e-40,
                     np.inf, -np.inf, 0.0], np.float32)
    # B row 0 is rounded to bfloat16 by the GEMM: put the tie values in the bias instead
    bias = np.resize(vals, N).astype(np.float32)
    B[0, :] = 0.0
    B[0, 5] = np.nan
    C = np.empty((M, N), np.uint16)
    _C.gemm_bf16(A, B, C, bias=bias)
    F = np.empty((M, N), np.float32)
    _C.gemm_bf16(A, B, F, bias=bias)
    np.testing.assert_array_equal(C, np.broadcast_to(_C.cast_f32_to_bf16(F[0]), (M, N)))
    assert C[0, 5] == 0xffff
    assert C[0, 0] == bf16_round(np.float32(1.0)) and C[0, 1] == bf16_round(np.float32(1.015625))


def test_gemm_bf16_bfloat16_output_threads_identical(path):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((301, 500)).astype(np.float32)
    B = rng.standard_normal((500, 130)).astype(np.float32)
    out = []
    for nt in (1, 2):
        old = _C.get_num_threads()
        _C.set_num_threads(nt)
        C = np.empty((301, 130), np.uint16)
        _C.gemm_bf16(A, B, C)
        _C.set_num_threads(old)
        out.append(C)
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("out16", [False, True])
def test_gemm_bf16_two_batch_dims_head_views(path, nthreads, out16):
    """(b, h, L, E) head views of (b, L, h, E) arrays go in as they are (two batch strides),
    a size-1 batch dimension broadcasts; float32 and bfloat16 C"""
    rng = np.random.default_rng(11)
    b, h, L, S, E = 3, 4, 13, 17, 40
    q = rng.standard_normal((b, L, h, E)).astype(np.float32).transpose(0, 2, 1, 3)
    k = bf16_round(rng.standard_normal((b, S, h, E)).astype(np.float32)).transpose(0, 2, 1, 3)
    kT = np.swapaxes(k, -1, -2)
    bias = rng.standard_normal(S).astype(np.float32)
    big = np.zeros((b, L, h, S), np.uint16 if out16 else np.float32)
    C = big.transpose(0, 2, 1, 3)
    _C.gemm_bf16(q, kT, C, alpha=0.5, bias=bias)
    R = np.empty((b, h, L, S), np.uint16 if out16 else np.float32)
    _C.gemm_bf16_ref(q, kT, R, alpha=0.5, bias=bias)
    got = bf16_value(np.ascontiguousarray(C)) if out16 else C
    ref = bf16_value(R) if out16 else R
    for i in range(b):
        for j in range(h):
            want, scale = _ref(np.ascontiguousarray(q[i, j]), np.ascontiguousarray(kT[i, j]),
                               0.5, 0.0, None, bias)
            tol = (np.abs(want) * 2.0 ** -8 if out16 else 0) + 2e-6 * scale + 1e-6
            assert np.all(np.abs(got[i, j] - want) <= tol)
            assert np.all(np.abs(ref[i, j] - want) <= tol)
    # a (1, h) operand broadcast over the first batch dimension
    w = rng.standard_normal((1, h, E, 9)).astype(np.float32)
    C2 = np.empty((b, h, L, 9), np.float32)
    _C.gemm_bf16(q, w, C2)
    for i in range(b):
        for j in range(h):
            want, scale = _ref(np.ascontiguousarray(q[i, j]), w[0, j])
            assert np.all(np.abs(C2[i, j] - want) <= 2e-6 * scale + 1e-6)
    with pytest.raises(ValueError, match="batch sizes"):
        _C.gemm_bf16(q, np.ones((2, h, E, 9), np.float32), C2)


@pytest.mark.parametrize("M,N,K", [(31, 45, 64), (12, 32, 2), (64, 64, 2100), (7, 70, 600),
                                   (197, 33, 130)])
def test_gemm_bf16_bfloat16_a_row_strides(M, N, K, path, nthreads):
    """a bfloat16 A with k contiguous: rows at an odd element stride (k-pairs 2 bytes off
    4-byte alignment), partial row tiles (12-row panels), K over two K blocks, head views;
    float32 and bfloat16 C against the reference"""
    import ml_dtypes
    rng = np.random.default_rng(M * 7 + N + K)
    wide = bf16_round(rng.standard_normal((M, K + 1)).astype(np.float32))
    B = bf16_round(rng.standard_normal((K, N)).astype(np.float32))
    bias = rng.standard_normal(N).astype(np.float32)
    for a in (wide[:, :K].copy(), wide[:, :K], wide[:, 1:]):
        a16 = a.view(ml_dtypes.bfloat16)
        want, scale = _ref(a, B, 0.5, 0.0, None, bias)
        C = np.full((M, N), np.nan, np.float32)
        _C.gemm_bf16(a16, B, C, alpha=0.5, bias=bias)
        assert np.all(np.abs(C - want) <= 1.5e-6 * scale + 1e-6), np.abs(C - want).max()
        C16 = np.full((M, N), 0x7fff, np.uint16)
        _C.gemm_bf16(a16, B.view(ml_dtypes.bfloat16), C16, alpha=0.5, bias=bias)
        got = bf16_value(C16).astype(np.float64)
        assert np.all(np.abs(got - want) <= np.abs(want) * 2.0 ** -8 + 2e-6 * scale + 1e-30)
    # (b, h, L, E) head views of a bfloat16 (b, L, h, E) array as A, E even
    b, h, L, E = 2, 3, 13, 40
    q = bf16_round(rng.standard_normal((b, L, h, E)).astype(np.float32))
    q16 = q.view(ml_dtypes.bfloat16).transpose(0, 2, 1, 3)
    k = bf16_round(rng.standard_normal((1, h, E, 9)).astype(np.float32))
    C = np.empty((b, h, L, 9), np.float32)
    _C.gemm_bf16(q16, k, C)
    for i in range(b):
        for j in range(h):
            want, scale = _ref(np.ascontiguousarray(q[i, :, j]), k[0, j])
            assert np.all(np.abs(C[i, j] - want) <= 2e-6 * scale + 1e-6)


@pytest.mark.parametrize("nbt,M,N,K", [(2, 1, 1, 1), (5, 4, 33, 3), (16, 64, 64, 64),
                                       (17, 13, 70, 1024), (4, 192, 65, 17), (6, 20, 31, 9),
                                       (4, 193, 31, 8), (3, 5, 7, 1025), (8, 21, 2049, 6)])
@pytest.mark.parametrize("out16", [False, True])
def test_gemm_bf16_small_batches(nbt, M, N, K, out16, path, nthreads):
    """batches of small products (the per-thread batch split: M <= 192, N <= 2048, one K block)
    and their neighbours on the blocked loop (M 193, K 1025, N 2049): each element equal to the
    2-D product of that element (the same packing, tiles and sums, bit for bit), and to the
    reference; row-major, column-major and head-view operands, a broadcast operand (packed once
    per thread), alpha, beta, bias, float32 and bfloat16 C"""
    import ml_dtypes
    rng = np.random.default_rng(nbt * 100003 + M * 1009 + N * 31 + K)
    h = 2 if nbt % 2 == 0 else 1
    b1 = nbt // h
    A = rng.standard_normal((b1, h, M, K)).astype(np.float32)
    Bt = bf16_round(rng.standard_normal((b1, N, h, K)).astype(np.float32))
    B16 = Bt.view(ml_dtypes.bfloat16).transpose(0, 2, 3, 1)       # (b1, h, K, N), k contiguous
    W = rng.standard_normal((K, N)).astype(np.float32)            # broadcast over the batch
    bias = rng.standard_normal(N).astype(np.float32)
    cdt = np.uint16 if out16 else np.float32
    C0 = rng.standard_normal((b1, h, M, N)).astype(np.float32)
    C0 = bf16_round(C0) if out16 else C0
    # bfloat16 A with k contiguous (read in place by the tiles when K is even), also as head
    # views (rows h*K apart) and broadcast
    A16 = bf16_round(A).view(ml_dtypes.bfloat16)
    A16h = np.ascontiguousarray(A16.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    for a, b, kw in [(A, B16, {}), (np.swapaxes(np.swapaxes(A, -1, -2).copy(), -1, -2), B16,
                                    dict(alpha=0.5, bias=bias)),
                     (A, W, dict(beta=2.0)), (A[:1, :1], B16, dict(beta=-1.0, bias=bias)),
                     (A16, B16, dict(bias=bias)), (A16h, W, dict(alpha=-2.0, beta=0.5)),
                     (A16[:1, :1], B16, {})]:
        beta = kw.get("beta", 0.0)
        C = C0.copy() if beta else np.full((b1, h, M, N), 0x7fff if out16 else np.nan, cdt)
        _C.gemm_bf16(a, b, C, **kw)
        for i in range(b1):
            for j in range(h):
                ai = a[min(i, a.shape[0] - 1), min(j, a.shape[1] - 1)]
                bi = b if b.ndim == 2 else b[i, j]
                c1 = C0[i, j].copy() if beta else np.empty((M, N), cdt)
                _C.gemm_bf16(ai, bi, c1, **kw)
                np.testing.assert_array_equal(C[i, j], c1)
                c0 = None if not beta else (bf16_value(C0[i, j]) if out16 else C0[i, j])
                want, scale = _ref(np.ascontiguousarray(ai).view(np.uint16)
                                   if ai.dtype != np.float32 else np.ascontiguousarray(ai),
                                   np.ascontiguousarray(bi).view(np.uint16)
                                   if bi.dtype != np.float32 else bi,
                                   kw.get("alpha", 1.0), beta, c0, kw.get("bias"))
                got = bf16_value(C[i, j]) if out16 else C[i, j]
                tol = (np.abs(want) * 2.0 ** -8 if out16 else 0) + 2e-6 * scale + 1e-6
                assert np.all(np.abs(got - want) <= tol), (i, j, np.abs(got - want).max())


@pytest.mark.parametrize("M", [683, 1000, 2048])
def test_gemm_bf16_row_blocks_threads_identical(M, path):
    """M split into an even number of row blocks of whole panels for 2 threads (683, 1000 and
    2048 rows: uneven 192-row blocks before): the same results on 1 and 2 threads, and the
    reference's"""
    rng = np.random.default_rng(M)
    A = bf16_round(rng.standard_normal((M, 72)).astype(np.float32))
    B = rng.standard_normal((72, 40)).astype(np.float32)
    out = []
    for nt in (1, 2):
        old = _C.get_num_threads()
        _C.set_num_threads(nt)
        C = np.empty((M, 40), np.float32)
        _C.gemm_bf16(np.asfortranarray(A), B, C)
        _C.set_num_threads(old)
        out.append(C)
    np.testing.assert_array_equal(out[0], out[1])
    want, scale = _ref(A, B)
    assert np.all(np.abs(out[0] - want) <= 1.5e-6 * scale + 1e-30)


@pytest.mark.parametrize("N,C", [(1, 1), (3, 7), (5, 16), (300, 1003), (64, 1000)])
def test_cross_entropy_bfloat16_logits(N, C, isa, nthreads):
    """cross-entropy forward/backward reading bfloat16 logits: the float32 kernel's results on
    the logits cast to float32, bit for bit (and its gradient rounded as the cast rounds),
    with class weights, ignore_index and label smoothing, every ISA path, 1 and 2 threads
    (300 x 1003 splits over two); close to the double reference"""
    import ml_dtypes
    rng = np.random.default_rng(N * 7 + C)
    x = (rng.standard_normal((N, C)) * 4).astype(np.float32).astype(ml_dtypes.bfloat16)
    if C > 5:
        x.reshape(-1)[5] = np.inf     # row 0: an infinite logit (NaN loss and gradient)
    if C > 5 and N > 2:
        x[2, C - 2] = np.nan          # row 2: a NaN logit (the widening's max as the float32 max)
    t = rng.integers(0, C, N).astype(np.int64)
    t[N // 2] = -100
    g = rng.random(N).astype(np.float32)
    x32 = x.astype(np.float32)
    for w in (None, rng.random(C).astype(np.float32)):
        for ls in (0.0, 0.2):
            got = _C.cross_entropy_forward(x, t, w, -100, ls)
            want = _C.cross_entropy_forward(x32, t, w, -100, ls)
            for a, b in zip(got, want):
                assert a.dtype == np.float32
                np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
            ref = _C.cross_entropy_forward_ref(x, t, w, -100, ls)
            fin = np.isfinite(ref[0])
            np.testing.assert_allclose(got[0][fin], ref[0][fin], rtol=1e-5, atol=1e-5)
            d = _C.cross_entropy_backward(x, t, got[1], g, w, -100, ls)
            assert d.dtype == x.dtype and d.shape == (N, C)
            d32 = _C.cross_entropy_backward(x32, t, want[1], g, w, -100, ls)
            np.testing.assert_array_equal(d.view(np.uint16), _C.cast_f32_to_bf16(d32).view(np.uint16))
            dr = _C.cross_entropy_backward_ref(x, t, got[1], g, w, -100, ls).astype(np.float32)
            fin = np.isfinite(dr)
            np.testing.assert_allclose(d.astype(np.float32)[fin], dr[fin], rtol=2 ** -7, atol=1e-6)
            assert not d[N // 2].astype(np.float32).any()     # the ignored row


def test_cross_entropy_bfloat16_logits_bad_input():
    import ml_dtypes
    x = np.zeros((4, 3), ml_dtypes.bfloat16)
    t = np.zeros(4, np.int64)
    with pytest.raises(TypeError, match="float32 weight"):
        _C.cross_entropy_forward(x, t, np.ones(3, np.float64))
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        _C.cross_entropy_forward(x, np.array([0, 3, 0, 0], np.int64))
    loss, lse, _ = _C.cross_entropy_forward(x, t)
    with pytest.raises(ValueError, match="out and accumulate"):
        _C.cross_entropy_backward(x, t, lse, lse, accumulate=True)
    with pytest.raises(ValueError, match="lse: expected shape"):
        _C.cross_entropy_backward(x, t, lse[:3], lse)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.cross_entropy_forward(np.zeros((3, 4), ml_dtypes.bfloat16).T, t)
