"""The C GEMM (cengine._C.gemm / gemm_ref) against numpy, on every ISA path and 1/2 threads.

Shapes straddle the register tiles (MR 12/6/4, NR 32/16/8), the K block (256/384), the N block
(512) and the thread split thresholds; layouts cover transposed and sliced views of every
operand; the batched entry covers broadcasting (stride 0) and non-contiguous batches."""
import numpy as np
import pytest

from cengine import _C

DTYPES = [np.float32, np.float64]

# (M, N, K): tiny, primes, just below/at/above tiles and blocks
SHAPES = [
    (1, 1, 1), (17, 33, 65), (3, 5, 2), (11, 31, 7), (12, 32, 8), (13, 33, 9), (5, 17, 1),
    (6, 16, 3), (7, 9, 255), (25, 65, 257), (24, 64, 383), (9, 15, 385),
    (70, 129, 40), (97, 513, 19), (130, 300, 130), (4, 1030, 60), (401, 3, 50),
    (301, 20, 400), (1930, 20, 60), (50, 600, 400), (70, 130, 1024),
]


def _tol(dtype, K):
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=2e-5 * np.sqrt(K + 1) * 4)
    return dict(rtol=1e-12, atol=1e-12 * np.sqrt(K + 1) * 4)


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _layout(x, kind):
    """same values as x (2-D), stored as: 'c' row-major, 'f' column-major, 's' sliced view"""
    if kind == "c":
        return np.ascontiguousarray(x)
    if kind == "f":
        return np.asfortranarray(x)
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3 + 1), x.dtype)
    v = big[::2, 1::3]
    v[...] = x
    return v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "%dx%dx%d" % s)
def test_gemm_matches_numpy(isa, nthreads, dtype, shape):
    M, N, K = shape
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    A, B = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    C = np.full((M, N), np.nan, dtype)           # beta=0 must not read C (NaN-safe)
    out = _C.gemm(A, B, C)
    assert out is C
    np.testing.assert_allclose(C, ref, **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("la", ["c", "f", "s"])
@pytest.mark.parametrize("lb", ["c", "f", "s"])
@pytest.mark.parametrize("lc", ["c", "f", "s"])
@pytest.mark.parametrize("shape", [(13, 37, 29), (70, 150, 300)], ids=lambda s: "%dx%dx%d" % s)
def test_gemm_layouts(isa, nthreads, dtype, la, lb, lc, shape):
    M, N, K = shape
    rng = np.random.default_rng(7)
    A, B, C0 = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype), _rand(rng, (M, N), dtype)
    alpha, beta = 0.75, -1.5
    ref = alpha * (A.astype(np.float64) @ B.astype(np.float64)) + beta * C0
    C = _layout(C0, lc)
    _C.gemm(_layout(A, la), _layout(B, lb), C, alpha=alpha, beta=beta)
    np.testing.assert_allclose(C, ref, **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lc", ["c", "f", "s"])
@pytest.mark.parametrize("shape", [(13, 37, 29), (70, 150, 300), (300, 700, 20), (900, 70, 500)],
                         ids=lambda s: "%dx%dx%d" % s)
def test_gemm_bias(isa, nthreads, dtype, lc, shape):
    """bias along the columns, added in the kernel's pass over C: every C layout (a column-major
    C puts it along the rows of the transposed product), both thread slicings, beta != 0."""
    M, N, K = shape
    rng = np.random.default_rng(11)
    A, B = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    for bias in (_rand(rng, (N,), dtype), _rand(rng, (2 * N,), dtype)[::2],
                 np.broadcast_to(np.array(0.5, dtype), (N,))):
        C = _layout(np.full((M, N), np.nan, dtype), lc)
        _C.gemm(A, B, C, bias=bias)
        np.testing.assert_allclose(C, A64 @ B64 + bias, **_tol(dtype, K))
        C0 = _rand(rng, (M, N), dtype)
        C = _layout(C0.copy(), lc)
        _C.gemm(A, B.T.copy().T, C, 0.5, 2.0, bias=bias)
        np.testing.assert_allclose(C, 0.5 * (A64 @ B64) + 2.0 * C0 + bias, **_tol(dtype, K))
        Cr = np.empty((M, N), dtype)
        _C.gemm_ref(A, B, Cr, bias=bias)
        np.testing.assert_allclose(Cr, A64 @ B64 + bias, **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_bias_batched_k0_and_errors(isa, nthreads, dtype):
    rng = np.random.default_rng(12)
    A, B, bias = _rand(rng, (5, 19, 23), dtype), _rand(rng, (23, 41), dtype), _rand(rng, (41,), dtype)
    C = np.empty((5, 19, 41), dtype)
    _C.gemm(A, B, C, bias=bias)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B + bias, **_tol(dtype, 23))
    C = np.ones((4, 6), dtype)   # K == 0: C = beta*C + bias
    _C.gemm(np.empty((4, 0), dtype), np.empty((0, 6), dtype), C, 1.0, 3.0, bias=bias[:6])
    np.testing.assert_allclose(C, 3.0 + bias[:6] + np.zeros((4, 6)), rtol=1e-6)
    a, b = np.zeros((2, 3), dtype), np.zeros((3, 5), dtype)
    with pytest.raises(RuntimeError, match="bias of shape"):
        _C.gemm(a, b, np.empty((2, 5), dtype), bias=np.zeros(4, dtype))
    with pytest.raises(RuntimeError, match="bias of shape"):   # checked for an empty C too
        _C.gemm(a[:0], b, np.empty((0, 5), dtype), bias=np.zeros(4, dtype))
    with pytest.raises(RuntimeError, match="expected bias to have dtype"):
        _C.gemm(a, b, np.empty((2, 5), dtype), bias=np.zeros(5, np.int64))
    with pytest.raises(TypeError, match="bias must be a numpy array"):
        _C.gemm(a, b, np.empty((2, 5), dtype), bias=[0.0] * 5)
    C = np.empty((2, 5), dtype)
    with pytest.raises(ValueError, match="overlaps the bias"):
        _C.gemm(a, b, C, bias=C[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_alpha_beta(isa, nthreads, dtype):
    rng = np.random.default_rng(1)
    A, B, C0 = _rand(rng, (33, 21), dtype), _rand(rng, (21, 47), dtype), _rand(rng, (33, 47), dtype)
    ref64 = A.astype(np.float64) @ B.astype(np.float64)
    for alpha, beta in [(1.0, 1.0), (2.5, 0.0), (-1.0, 0.5), (0.0, 2.0), (0.0, 0.0)]:
        C = C0.copy()
        _C.gemm(A, B, C, alpha=alpha, beta=beta)
        np.testing.assert_allclose(C, alpha * ref64 + beta * C0, **_tol(dtype, 21))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_beta_zero_ignores_nan_and_alpha_zero_ignores_inputs(isa, dtype):
    A = np.full((5, 4), np.nan, dtype)
    B = np.ones((4, 6), dtype)
    C = np.full((5, 6), 3.0, dtype)
    _C.gemm(A, B, C, alpha=0.0, beta=2.0)          # BLAS: alpha == 0 does not read A, B
    np.testing.assert_array_equal(C, np.full((5, 6), 6.0, dtype))
    A = np.ones((5, 4), dtype)
    C = np.full((5, 6), np.inf, dtype)
    _C.gemm(A, B, C, beta=0.0)
    np.testing.assert_array_equal(C, np.full((5, 6), 4.0, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_k0_and_empty(isa, nthreads, dtype):
    A, B = np.zeros((4, 0), dtype), np.zeros((0, 3), dtype)
    C = np.full((4, 3), 2.0, dtype)
    _C.gemm(A, B, C, beta=0.5)
    np.testing.assert_array_equal(C, np.ones((4, 3), dtype))
    C = np.full((4, 3), np.nan, dtype)
    _C.gemm(A, B, C)
    np.testing.assert_array_equal(C, np.zeros((4, 3), dtype))
    # empty M / N: nothing to do, no error
    _C.gemm(np.zeros((0, 5), dtype), np.zeros((5, 3), dtype), np.zeros((0, 3), dtype))
    _C.gemm(np.zeros((2, 5), dtype), np.zeros((5, 0), dtype), np.zeros((2, 0), dtype))
    _C.gemm(np.zeros((0, 2, 5), dtype), np.zeros((0, 5, 3), dtype), np.zeros((0, 2, 3), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1024, 7, 5, 60), (64, 32, 32, 32), (3, 40, 200, 100),
                                   (5, 130, 70, 20)], ids=lambda s: "%dx%dx%dx%d" % s)
def test_gemm_batched(isa, nthreads, dtype, shape):
    Bn, M, N, K = shape
    rng = np.random.default_rng(3)
    A, B = _rand(rng, (Bn, M, K), dtype), _rand(rng, (Bn, K, N), dtype)
    C = np.full((Bn, M, N), np.nan, dtype)
    _C.gemm(A, B, C)
    np.testing.assert_allclose(C, np.matmul(A.astype(np.float64), B.astype(np.float64)),
                               **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched_broadcast_and_views(isa, nthreads, dtype):
    rng = np.random.default_rng(4)
    A, B = _rand(rng, (6, 19, 23), dtype), _rand(rng, (23, 41), dtype)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    # 2-D B broadcast over the batch (batch stride 0)
    C = np.empty((6, 19, 41), dtype)
    _C.gemm(A, B, C)
    np.testing.assert_allclose(C, A64 @ B64, **_tol(dtype, 23))
    # batch size 1 broadcasts, 2-D A broadcast
    C = np.empty((6, 23, 41), dtype)
    Bb = _rand(rng, (6, 23, 41), dtype)
    W = _rand(rng, (1, 23, 23), dtype)
    _C.gemm(W, Bb, C)
    np.testing.assert_allclose(C, W.astype(np.float64) @ Bb.astype(np.float64), **_tol(dtype, 23))
    # explicit stride-0 batch view (np.broadcast_to)
    Bv = np.broadcast_to(B, (6, 23, 41))
    C = np.empty((6, 19, 41), dtype)
    _C.gemm(A, Bv, C)
    np.testing.assert_allclose(C, A64 @ B64, **_tol(dtype, 23))
    # transposed batches (q @ k^T) and a sliced, permuted output
    k = _rand(rng, (6, 41, 23), dtype)
    big = np.zeros((19, 6, 2 * 41), dtype)
    Cv = big[:, :, ::2].transpose(1, 0, 2)
    _C.gemm(A, k.transpose(0, 2, 1), Cv)
    np.testing.assert_allclose(Cv, A64 @ k.astype(np.float64).transpose(0, 2, 1), **_tol(dtype, 23))
    assert np.all(big[:, :, 1::2] == 0)            # untouched between the slices
    # every batch element of C written from one 2-D product (2-D A and B, 3-D C)
    C = np.empty((3, 19, 41), dtype)
    _C.gemm(A[0], B, C)
    for i in range(3):
        np.testing.assert_allclose(C[i], A64[0] @ B64, **_tol(dtype, 23))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 17, 33, 9), (2, 5, 64, 64, 64), (1, 6, 40, 70, 30),
                                   (4, 1, 13, 200, 20), (2, 3, 130, 20, 300)], ids=str)
def test_gemm_two_batch_levels(isa, nthreads, dtype, shape):
    """(b, h, L, E) views of (b, L, h, E) arrays, as attention heads are, with no copy: the two
    batch levels do not merge into one stride; the output is such a view too."""
    b, h, M, N, K = shape
    rng = np.random.default_rng(7)
    A = _rand(rng, (b, M, h, K), dtype).transpose(0, 2, 1, 3)
    Bt = _rand(rng, (b, N, h, K), dtype).transpose(0, 2, 3, 1)       # (b, h, K, N), k^T view
    store = np.full((b, M, h, N), np.nan, dtype)
    C = store.transpose(0, 2, 1, 3)
    _C.gemm(A, Bt, C)
    ref = np.matmul(A.astype(np.float64), Bt.astype(np.float64))
    np.testing.assert_allclose(C, ref, **_tol(dtype, K))
    # alpha / beta through the same views
    C2 = (store * 0 + 1).transpose(0, 2, 1, 3)
    _C.gemm(A, Bt, C2, 0.5, 2.0)
    np.testing.assert_allclose(C2, 0.5 * ref + 2.0, **_tol(dtype, K))
    # the reference kernel takes the same views
    C3 = np.empty((b, h, M, N), dtype)
    _C.gemm_ref(A, Bt, C3)
    np.testing.assert_allclose(C3, ref, **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_two_batch_levels_broadcast(isa, nthreads, dtype):
    rng = np.random.default_rng(8)
    A = _rand(rng, (3, 5, 19, 23), dtype)
    A64 = A.astype(np.float64)
    for Bshape in [(23, 41), (5, 23, 41), (1, 5, 23, 41), (3, 1, 23, 41), (1, 1, 23, 41)]:
        B = _rand(rng, Bshape, dtype)
        C = np.full((3, 5, 19, 41), np.nan, dtype)
        _C.gemm(A, B, C)
        np.testing.assert_allclose(C, A64 @ B.astype(np.float64), **_tol(dtype, 23))
    # A broadcast over the outer level, B over the inner one
    Ao, B = _rand(rng, (1, 5, 19, 23), dtype), _rand(rng, (3, 1, 23, 41), dtype)
    C = np.empty((3, 5, 19, 41), dtype)
    _C.gemm(Ao, B, C)
    np.testing.assert_allclose(C, Ao.astype(np.float64) @ B.astype(np.float64), **_tol(dtype, 23))
    with pytest.raises(RuntimeError, match="batch sizes do not match"):
        _C.gemm(A, _rand(rng, (2, 5, 23, 41), dtype), np.empty((3, 5, 19, 41), dtype))
    with pytest.raises(RuntimeError, match="batch sizes do not match"):
        _C.gemm(A, _rand(rng, (23, 41), dtype), np.empty((5, 19, 41), dtype))
    with pytest.raises(ValueError, match="overlapping"):
        C0 = np.lib.stride_tricks.as_strided(np.zeros(19 * 41, dtype), (3, 5, 19, 41),
                                             (0, 19 * 41 * A.itemsize, 41 * A.itemsize,
                                              A.itemsize), writeable=True)
        _C.gemm(A, _rand(rng, (23, 41), dtype), C0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(70, 130, 203), (13, 200, 5), (100, 257, 61), (300, 700, 150),
                                   (136, 200, 700), (99, 300, 45), (97, 140, 1), (111, 150, 33)],
                         ids=str)
def test_gemm_row_stride_4k_multiple(isa, nthreads, dtype, shape):
    """row-major A whose rows are a multiple of 4 KiB apart, packed instead of read in place
    (fp32: by the whole team when one product is sliced, or per thread when A has more rows
    than the small path takes; 136 rows: 8-row tail panels, 700 deep: several K blocks; 99, 97
    and 111 rows: a partial 12-row panel for the AVX-512 transposing pack, K = 1 and K past a
    multiple of 16), odd K and M; C the same on 1 and 2 threads"""
    M, N, K = shape
    rng = np.random.default_rng(9)
    big = _rand(rng, (M, 1024), dtype)
    A = big[:, 3:3 + K]   # rows 4 KiB (fp32) / 8 KiB (fp64) apart
    B = _rand(rng, (K, N), dtype)
    C = np.empty((M, N), dtype)
    _C.gemm(A, B, C)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B.astype(np.float64), **_tol(dtype, K))
    old = _C.get_num_threads()
    try:
        _C.set_num_threads(3 - nthreads)
        np.testing.assert_array_equal(_C.gemm(A, B, np.empty((M, N), dtype)), C)
    finally:
        _C.set_num_threads(old)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,la,lb", [
    ((203, 77, 300), "f", "c"),    # x^T @ dy: packed A, A taller than B is wide -> row slices
    ((77, 203, 300), "f", "c"),    # both ways repack -> one slice per thread
    ((150, 260, 1100), "c", "c"),  # B packed row by row (M > in-place limit), 3 K blocks
    ((130, 45, 700), "f", "f"),    # transposing B pack with a packed column-major A
    ((100, 400, 300), "f", "c"),   # column slices sharing one A packed by the whole team
    ((150, 300, 257), "s", "c"),   # the same with a strided (sliced) A
    ((100, 200, 300), "4k", "c"),  # row-major A with 4 KiB rows: packed (fp64), shared
    ((203, 77, 300), "s", "f"),    # row slices sharing one B packed by the team (transposing)
], ids=str)
def test_gemm_training_shapes(isa, nthreads, dtype, shape, la, lb):
    """Shapes of the weight-gradient and forward products of a training step, past the small
    problem paths: whole-block packs with remainder panels and the row/column slicing choice."""
    M, N, K = shape
    rng = np.random.default_rng(11)
    A, B = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
    C = np.full((M, N), np.nan, dtype)
    if la == "4k":
        big = np.zeros((M, 4096 // np.dtype(dtype).itemsize), dtype)
        big[:, :K] = A
        Av = big[:, :K]
    else:
        Av = _layout(A, la)
    _C.gemm(Av, _layout(B, lb), C)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B.astype(np.float64), **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_negative_strides_copied(isa, dtype):
    rng = np.random.default_rng(5)
    A, B = _rand(rng, (9, 14), dtype), _rand(rng, (14, 8), dtype)
    C = np.empty((9, 8), dtype)
    _C.gemm(A[::-1], B[:, ::-1], C)
    np.testing.assert_allclose(C, A[::-1].astype(np.float64) @ B[:, ::-1].astype(np.float64),
                               **_tol(dtype, 14))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (17, 33, 65), (40, 70, 300)], ids=str)
def test_gemm_ref_matches_numpy(dtype, shape):
    M, N, K = shape
    rng = np.random.default_rng(6)
    A, B, C0 = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype), _rand(rng, (M, N), dtype)
    C = C0.copy()
    _C.gemm_ref(np.asfortranarray(A), B, C, alpha=0.5, beta=2.0)
    np.testing.assert_allclose(C, 0.5 * (A.astype(np.float64) @ B) + 2.0 * C0, **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(70, 300, 100), (300, 20, 500), (8, 64, 64, 64)], ids=str)
def test_gemm_same_result_on_1_and_2_threads(isa, dtype, shape):
    """The K loop is never split across threads: results are bitwise independent of threads."""
    rng = np.random.default_rng(8)
    if len(shape) == 3:
        M, N, K = shape
        A, B = _rand(rng, (M, K), dtype), _rand(rng, (K, N), dtype)
    else:
        b, M, N, K = shape
        A, B = _rand(rng, (b, M, K), dtype), _rand(rng, (b, K, N), dtype)
    old = _C.get_num_threads()
    try:
        outs = []
        for nt in (1, 2):
            _C.set_num_threads(nt)
            C = np.empty(A.shape[:-1] + (B.shape[-1],), dtype)
            outs.append(_C.gemm(A, B, C))
    finally:
        _C.set_num_threads(old)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_gemm_errors():
    f32, f64 = np.float32, np.float64
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        _C.gemm(np.zeros((2, 3), f32), np.zeros((4, 5), f32), np.zeros((2, 5), f32))
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype, but got: float != double"):
        _C.gemm(np.zeros((2, 3), f32), np.zeros((3, 5), f64), np.zeros((2, 5), f32))
    with pytest.raises(RuntimeError, match="expected out to have dtype float, but got double"):
        _C.gemm(np.zeros((2, 3), f32), np.zeros((3, 5), f32), np.zeros((2, 5), f64))
    with pytest.raises(TypeError, match="float32 or float64"):
        _C.gemm(np.zeros((2, 3), np.int64), np.zeros((3, 5), np.int64), np.zeros((2, 5), np.int64))
    with pytest.raises(TypeError, match="numpy arrays"):
        _C.gemm([[1.0]], np.zeros((1, 1), f32), np.zeros((1, 1), f32))
    with pytest.raises(RuntimeError, match="2-D to 4-D"):
        _C.gemm(np.zeros(3, f32), np.zeros((3, 5), f32), np.zeros((1, 5), f32))
    with pytest.raises(RuntimeError, match="2-D to 4-D"):
        _C.gemm(np.zeros((1, 1, 1, 2, 3), f32), np.zeros((3, 5), f32), np.zeros((1, 1, 1, 2, 5), f32))
    with pytest.raises(RuntimeError, match="output shape"):
        _C.gemm(np.zeros((2, 3), f32), np.zeros((3, 5), f32), np.zeros((2, 4), f32))
    with pytest.raises(RuntimeError, match="batch sizes do not match"):
        _C.gemm(np.zeros((2, 2, 3), f32), np.zeros((3, 3, 5), f32), np.zeros((3, 2, 5), f32))
    with pytest.raises(RuntimeError, match="batch sizes do not match"):
        _C.gemm(np.zeros((2, 2, 3), f32), np.zeros((3, 5), f32), np.zeros((2, 5), f32))
    ro = np.zeros((2, 5), f32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.gemm(np.zeros((2, 3), f32), np.zeros((3, 5), f32), ro)
    with pytest.raises(ValueError, match="overlapping"):
        overlapping = np.lib.stride_tricks.as_strided(np.zeros(5, f32), (2, 5), (0, 4), writeable=True)
        _C.gemm(np.zeros((2, 3), f32), np.zeros((3, 5), f32), overlapping)
    X = np.zeros((4, 4), f32)
    with pytest.raises(ValueError, match="overlaps an input"):
        _C.gemm(X, np.eye(4, dtype=f32), X)
    with pytest.raises(ValueError, match="overlaps an input"):
        _C.gemm(np.eye(4, dtype=f32), X[:, :2], X[:, 2:])   # interleaved columns of one buffer
    _C.gemm(X[:2], np.eye(4, dtype=f32), X[2:])              # disjoint rows: allowed
    with pytest.raises(ValueError, match="negative strides"):
        _C.gemm(np.zeros((2, 3), f32), np.zeros((3, 5), f32), np.zeros((2, 5), f32)[::-1])


def _batch_layout(x, kind):
    """same values as x (batch, R, C), stored as: 'c' contiguous, 't' each matrix transposed
    in memory (a .transpose(0, 2, 1) view), 's' a sliced view (rows 2 apart, columns 3
    apart, batch 2 apart), 'b' batch-of-1 broadcast by a stride-0 view (x[0] repeated)"""
    if kind == "c":
        return np.ascontiguousarray(x)
    if kind == "t":
        return np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1)
    if kind == "b":
        return np.broadcast_to(x[:1], x.shape)
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 2, x.shape[2] * 3 + 1), x.dtype)
    v = big[::2, ::2, 1::3]
    v[...] = x
    return v


# small batched products (the in-place / per-product packing path: M <= 96, K <= 512): tiny,
# primes, register-tile edges (MR 12/8/6/4, NR 32/16/8), the bmm and attention shapes
SMALL_BATCHED = [(1, 1, 1, 1), (7, 1, 1, 1), (5, 13, 29, 31), (3, 12, 32, 8), (4, 13, 33, 7),
                 (64, 32, 32, 32), (9, 64, 64, 64), (4, 96, 50, 97), (3, 20, 96, 512),
                 (6, 37, 5, 1), (2, 8, 200, 3), (5, 25, 17, 64), (3, 71, 40, 11)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SMALL_BATCHED, ids=lambda s: "%dx%dx%dx%d" % s)
@pytest.mark.parametrize("la", ["c", "t", "s", "b"])
@pytest.mark.parametrize("lb", ["c", "t", "s", "b"])
def test_gemm_small_batched_layouts(isa, nthreads, dtype, shape, la, lb):
    """every layout of A and B against numpy, and bitwise against the contiguous operands (in
    place, column panels or packed, each element is summed in the same order)"""
    Bn, M, N, K = shape
    rng = np.random.default_rng(Bn * 7 + M * 5 + N * 3 + K)
    A0, B0 = _rand(rng, (Bn, M, K), dtype), _rand(rng, (Bn, K, N), dtype)
    A, B = _batch_layout(A0, la), _batch_layout(B0, lb)
    Ac, Bc = np.ascontiguousarray(A), np.ascontiguousarray(B)
    C = np.full((Bn, M, N), np.nan, dtype)
    _C.gemm(A, B, C)
    np.testing.assert_allclose(C, np.matmul(Ac.astype(np.float64), Bc.astype(np.float64)),
                               **_tol(dtype, K))
    Cc = np.empty_like(C)
    _C.gemm(Ac, Bc, Cc)
    np.testing.assert_array_equal(C, Cc)
    # alpha and beta through the same views (C read), and a column-major output
    C0 = _rand(rng, (Bn, M, N), dtype)
    C2 = C0.copy()
    _C.gemm(A, B, C2, 0.5, -2.0)
    ref = 0.5 * np.matmul(Ac.astype(np.float64), Bc.astype(np.float64)) - 2.0 * C0
    np.testing.assert_allclose(C2, ref, **_tol(dtype, K))
    Cf = np.full((Bn, N, M), np.nan, dtype).transpose(0, 2, 1)
    _C.gemm(A, B, Cf)
    np.testing.assert_allclose(Cf, C, **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("la,lb", [("t", "c"), ("c", "t"), ("t", "t"), ("s", "b"), ("b", "t")])
def test_gemm_small_batched_same_result_on_1_and_2_threads(isa, dtype, la, lb):
    rng = np.random.default_rng(11)
    A = _batch_layout(_rand(rng, (37, 45, 61), dtype), la)
    B = _batch_layout(_rand(rng, (37, 61, 70), dtype), lb)
    old = _C.get_num_threads()
    try:
        outs = []
        for nt in (1, 2):
            _C.set_num_threads(nt)
            outs.append(_C.gemm(A, B, np.empty((37, 45, 70), dtype)))
    finally:
        _C.set_num_threads(old)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], np.matmul(A.astype(np.float64), B.astype(np.float64)),
                               **_tol(dtype, 61))


# batches past 4 L2s of products of 32 KiB or more: the small path prefetches the next product
# of each thread's contiguous chunk while it computes one (prime sizes: ragged panels and rows)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(256, 64, 64, 64), (170, 77, 70, 90)],
                         ids=lambda s: "%dx%dx%dx%d" % s)
@pytest.mark.parametrize("la,lb,lc", [("c", "c", "c"), ("t", "t", "c"), ("s", "b", "c"),
                                      ("b", "s", "t"), ("c", "c", "s")])
def test_gemm_small_batched_large_batch(isa, nthreads, dtype, shape, la, lb, lc):
    Bn, M, N, K = shape
    if dtype == np.float64:
        Bn //= 2
    rng = np.random.default_rng(M + N + K)
    A0, B0 = _rand(rng, (Bn, M, K), dtype), _rand(rng, (Bn, K, N), dtype)
    A, B = _batch_layout(A0, la), _batch_layout(B0, lb)
    C = _batch_layout(np.full((Bn, M, N), np.nan, dtype), lc)
    _C.gemm(A, B, C)
    Ac, Bc = np.ascontiguousarray(A), np.ascontiguousarray(B)
    np.testing.assert_allclose(C, np.matmul(Ac.astype(np.float64), Bc.astype(np.float64)),
                               **_tol(dtype, K))
    Cc = _C.gemm(Ac, Bc, np.empty((Bn, M, N), dtype))
    np.testing.assert_array_equal(C, Cc)
