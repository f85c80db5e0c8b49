"""The stride-1 tile drivers (src_c/conv_s1_tmpl.h) on the shapes that exercise their panel
plans: output rows cut into MR / MR2-row panels (every row length from 1 to past two panels),
output-channel counts that leave partial NR-wide blocks or MR2-row panels in the weight
gradient, a single output channel or input channel (one-column tiles), tap groups per kernel
row and per tap (dilation), segments of several output rows and of one, padding wide enough
that some tap groups (or all of a row's) read only zero rows and are skipped. Forward, input and
weight gradients against the unfolding drivers (tested against numpy in test_conv.py) and the
forward against numpy, on every ISA path; bitwise the same on 1 and 2 threads."""
import numpy as np
import pytest

from cengine import _C

from test_conv import TOL, np_conv2d, rnd

# x, w, pad (top, left), dilation, out_hw; stride 1, one group, channels x KW >= 32 (and
# O x KW >= 32 for the input gradient to take the stride-1 driver too)
CASES = [((2, 16, 3, ow), (20, 16, 3, 3), (1, 1), (1, 1), (3, ow))
         for ow in (1, 2, 5, 7, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 26, 28, 29, 33)]
CASES += [
    ((1, 32, 5, 5), (1, 32, 3, 3), (1, 1), (1, 1), (5, 5)),       # one output channel
    ((2, 1, 9, 9), (40, 1, 3, 3), (1, 1), (1, 1), (9, 9)),        # dx alone: one input channel
    ((2, 11, 7, 10), (45, 11, 3, 3), (0, 0), (1, 1), (5, 8)),     # O = 45: 12*3 + 8 + partial
    ((2, 12, 4, 11), (70, 12, 3, 3), (1, 1), (1, 1), (4, 11)),    # O = 70: three NR blocks
    ((1, 24, 3, 40), (9, 24, 3, 2), (1, 0), (1, 3), (3, 37)),     # dilation 3: a call per tap
    ((2, 8, 6, 7), (16, 8, 5, 5), (2, 2), (2, 1), (2, 7)),        # dh = 2, KW*C = 40
    ((1, 13, 1, 200), (128, 13, 1, 5), (0, 2), (1, 1), (1, 200)),  # conv1d MFCC row
    ((3, 4, 50, 9), (12, 4, 3, 9), (1, 4), (1, 1), (50, 9)),      # many rows per segment
    # padding wider than the kernel: output rows whose every kernel row reads padding (only
    # the bias), rows with one live kernel row (tap groups on zero rows are skipped)
    ((2, 32, 2, 5), (16, 32, 3, 3), (3, 1), (1, 1), (6, 5)),
    ((1, 16, 3, 4), (24, 16, 3, 3), (4, 2), (2, 1), (7, 4)),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stride1_tiles_match_unfolding(case, dtype, isa):
    xs, ws, pad, dil, out = case
    x, w, b = rnd(xs, dtype), rnd(ws, dtype, 1), rnd((ws[0],), dtype, 2)
    dy = rnd((xs[0], ws[0]) + out, dtype, 3)
    geom = ((1, 1), pad, dil, 1)
    old_n = _C.get_num_threads()
    res = {}
    try:
        for s1, nth in ((False, 1), (True, 1), (True, 2)):
            _C.conv_set_s1(s1)
            _C.set_num_threads(nth)
            y = _C.conv2d_forward(x, w, b, *geom, out)
            res[s1, nth] = (y,) + _C.conv2d_backward(dy, x, w, *geom, True, True, False)[:2]
    finally:
        _C.conv_set_s1(True)
        _C.set_num_threads(old_n)
    pb = (out[0] + dil[0] * (ws[2] - 1) - xs[2] - pad[0],
          out[1] + dil[1] * (ws[3] - 1) - xs[3] - pad[1])
    want = np_conv2d(x, w, b, (1, 1), ((pad[0], pb[0]), (pad[1], pb[1])), dil, 1)
    np.testing.assert_allclose(res[True, 1][0], want, **TOL[dtype])
    for got, ref in zip(res[True, 1], res[False, 1]):
        np.testing.assert_allclose(got, ref, **TOL[dtype])
    for a, c in zip(res[True, 1], res[True, 2]):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stride1_weight_gradient_inf_dy_at_padding_rows_is_nan_as_unfolding(dtype, isa):
    """an inf in dy at an output whose tap reads a zero padding row: inf * 0 = NaN in dW there,
    as torch and the unfolding driver compute (the weight-gradient driver multiplies the
    padding rows too)"""
    x, w = rnd((1, 32, 5, 5), dtype), rnd((4, 32, 3, 3), dtype, 1)
    dy = rnd((1, 4, 5, 5), dtype, 3)
    dy[0, 0, 0, 2] = np.inf
    geom = ((1, 1), (1, 1), (1, 1), 1)
    res = []
    try:
        for s1 in (False, True):
            _C.conv_set_s1(s1)
            res.append(_C.conv2d_backward(dy, x, w, *geom, False, True, False)[1])
    finally:
        _C.conv_set_s1(True)
    assert np.isnan(res[0]).sum() > 0
    np.testing.assert_array_equal(np.isnan(res[1]), np.isnan(res[0]))
    np.testing.assert_array_equal(np.isinf(res[1]), np.isinf(res[0]))


def test_stride1_weight_gradient_with_a_smaller_openmp_team(tmp_path):
    """OMP_THREAD_LIMIT=1 with two threads asked: OpenMP forms a team of one, and the weight
    gradient's tiles are split over the team it really has (none left unsummed)"""
    from _util import run_python
    code = (
        "import numpy as np\n"
        "from cengine import _C\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((2, 32, 16, 16)).astype(np.float32)\n"
        "w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)\n"
        "dy = rng.standard_normal((2, 64, 16, 16)).astype(np.float32)\n"
        "g = ((1, 1), (1, 1), (1, 1), 1)\n"
        "_C.set_num_threads(1)\n"
        "a = _C.conv2d_backward(dy, x, w, *g, False, True, False)[1]\n"
        "_C.set_num_threads(2)\n"
        "b = _C.conv2d_backward(dy, x, w, *g, False, True, False)[1]\n"
        "assert np.array_equal(a, b), float(np.abs(a - b).max())\n"
        "print('ok')\n")
    r = run_python(["-c", code], tmp_path, env={"OMP_THREAD_LIMIT": "1"}, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
