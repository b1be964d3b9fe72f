"""model.tiling: the vectorized reference against conv2d, a per-tile einsum and the seed loops."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import seed_style
from model.errors import LayerError, ModelError, PsumOverflowError
from model.tiling import (acc_addresses, field_range, os_operands, os_reference,
                          output_to_input_nij, pad_flatten, padded_operands, psum_address,
                          random_layer, ws_reference)


def rand_layer(rng, ic, oc, h, w=None):
    return random_layer(rng, ic, oc, h, h if w is None else w)


def conv(x, w):
    xt = torch.tensor(np.asarray(x), dtype=torch.float64)[None]
    wt = torch.tensor(np.asarray(w), dtype=torch.float64)
    return F.conv2d(xt, wt, padding=1)[0].numpy().round().astype(np.int64)


SHAPES = [(3, 16, 4, 4), (5, 11, 7, 9), (8, 8, 4, 4), (16, 24, 12, 12), (8, 8, 6, 6),
          (1, 1, 1, 1), (9, 3, 5, 4), (24, 8, 10, 12)]


@pytest.mark.parametrize("ic,oc,h,w", SHAPES)
def test_ws_and_os_equal_conv2d(rng, ic, oc, h, w):
    x, wt = rand_layer(rng, ic, oc, h, w)
    expected = conv(x, wt)
    ref = ws_reference(x, wt)
    osr = os_reference(x, wt)
    assert ref.overflows == [] and osr.overflows == []
    np.testing.assert_array_equal(ref.output(), expected)
    np.testing.assert_array_equal(osr.output(), expected)
    np.testing.assert_array_equal(ref.output(relu=True), np.maximum(expected, 0))
    np.testing.assert_array_equal(osr.output(relu=True), np.maximum(expected, 0))
    assert ref.out.shape == (oc, h * w) and ref.out.dtype == np.int64
    n_i, n_o = -(-ic // 8), -(-oc // 8)
    assert ref.psum.shape == (n_i, n_o, 8, (h + 2) * (w + 2), 9)
    assert (ref.n_ic_tiles, ref.n_oc_tiles, ref.Hp, ref.Wp, ref.Ho, ref.Wo) == \
        (n_i, n_o, h + 2, w + 2, h, w)
    n_g = -(-(h * w) // 8)
    assert osr.out.shape == (n_g, n_o, 8, 8)
    assert osr.activation.shape == (n_g, n_o, n_i * 8 * 9, 8)
    assert osr.weight.shape == (n_g, n_o, n_i * 8 * 9, 8)
    assert ref.activation.shape == (n_i, 8, (h + 2) * (w + 2))
    assert ref.weight.shape == (n_o, n_i, 8, 8, 9)


def test_large_layer_matches_conv(rng):
    x, wt = rand_layer(rng, 64, 16, 32)
    np.testing.assert_array_equal(ws_reference(x, wt, acc_bw=32).output(), conv(x, wt))


def test_torch_and_float_inputs_accepted(rng):
    x, wt = rand_layer(rng, 8, 8, 4)
    a = ws_reference(torch.tensor(x, dtype=torch.float32), torch.tensor(wt, dtype=torch.int8))
    b = ws_reference(x.astype(np.uint8), wt.astype(np.float64))
    np.testing.assert_array_equal(a.psum, b.psum)


@pytest.mark.parametrize("a_bit,ic,tile", [(4, 13, 8), (2, 21, 16)])
def test_ws_psum_equals_per_tile_einsum(rng, a_bit, ic, tile):
    """The psum of each (ic tile, oc tile) is that tile's einsum; a_bit=2 (the array's 2-bit
    mode): an ic tile is 16 channels (row r: channels 2r, 2r+1). The accumulated output is
    the convolution."""
    oc, h, w = 19, 5, 3
    x, wt = rand_layer(rng, ic, oc, h, w)
    x %= 1 << a_bit
    ref = ws_reference(x, wt, a_bit=a_bit)
    assert ref.ic_tile == tile and ref.psum.shape[:3] == (2, 3, 8)
    a = np.zeros((2 * tile, h + 2, w + 2), np.int64)
    a[:ic, 1:-1, 1:-1] = x
    a = a.reshape(2 * tile, -1)
    wp = np.zeros((24, 2 * tile, 9), np.int64)
    wp[:oc, :ic] = wt.reshape(oc, ic, 9)
    for i in range(2):
        for o in range(3):
            a_tile = a[i * tile:(i + 1) * tile]                       # [ic, nij]
            w_tile = wp[o * 8:(o + 1) * 8, i * tile:(i + 1) * tile]   # [oc, ic, kij]
            np.testing.assert_array_equal(ref.psum[i, o],
                                          np.einsum("crk,rn->cnk", w_tile, a_tile))
    np.testing.assert_array_equal(ref.output(), conv(x, wt))


def test_ws_equals_seed_loops_8x8_6x6(rng):
    x, wt = rand_layer(rng, 8, 8, 6)
    ref = ws_reference(x, wt)
    psum = seed_style.seed_ws_psum(x, wt)
    np.testing.assert_array_equal(ref.psum, psum)
    np.testing.assert_array_equal(ref.out, seed_style.seed_accumulate(psum, 6, 6))


def test_ws_equals_seed_loops_multi_tile(rng):
    x, wt = rand_layer(rng, 12, 10, 3)
    ref = ws_reference(x, wt)
    psum = seed_style.seed_ws_psum(x, wt)
    np.testing.assert_array_equal(ref.psum, psum)
    np.testing.assert_array_equal(ref.out, seed_style.seed_accumulate(psum, 3, 3)[:10])


def test_os_activation_is_output_aligned(rng):
    """activation[g, :, ic*9+kij, lane] = a_pad[ic, (oi+ki)*Wp + oj+kj] (not the notebook's
    (7 - o_nij + i) + Wpad*j), weight[.., s, c] = w[oc, ic, kij], zero past the end."""
    ic, oc, h, w = 10, 9, 3, 5
    x, wt = rand_layer(rng, ic, oc, h, w)
    osr = os_reference(x, wt)
    a_pad = pad_flatten(x)
    for g in range(osr.n_groups):
        for s in range(osr.steps):
            c, kij = divmod(s, 9)
            ki, kj = divmod(kij, 3)
            for lane in range(8):
                o_nij = g * 8 + lane
                if o_nij < h * w and c < ic:
                    oi, oj = divmod(o_nij, w)
                    exp = a_pad[c, (oi + ki) * (w + 2) + oj + kj]
                else:
                    exp = 0
                assert osr.activation[g, 1, s, lane] == exp
    for o in range(2):
        for s in range(osr.steps):
            c, kij = divmod(s, 9)
            for lane in range(8):
                oc_i = o * 8 + lane
                exp = wt[oc_i, c].reshape(9)[kij] if oc_i < oc and c < ic else 0
                assert osr.weight[0, o, s, lane] == exp
    # out = sum over steps of activation x weight
    direct = np.einsum("gosl,gosc->golc", osr.activation, osr.weight)
    np.testing.assert_array_equal(osr.out, direct)


def test_layout_helpers():
    idx = output_to_input_nij(4, 4)
    assert idx.shape == (9, 16)
    for o_nij in range(16):
        for kij in range(9):
            assert idx[kij, o_nij] == (o_nij // 4) * 6 + o_nij % 4 + (kij // 3) * 6 + kij % 3
    addr = acc_addresses(4, 4)
    assert addr.shape == (16, 9)
    assert addr[0, 0] == 0 and addr[0, 1] == 36 + 1 and addr[15, 8] == 8 * 36 + 35
    assert addr.max() < 2048
    assert psum_address(4, 17, 36) == 4 * 36 + 17
    assert psum_address(4, 17, 36, ict=1, oct=2, n_ict=3) == ((2 * 3 + 1) * 9 + 4) * 36 + 17
    x = np.arange(2 * 2 * 3).reshape(2, 2, 3)
    p = pad_flatten(x)
    assert p.shape == (2, 20) and p[0, :6].tolist() == [0] * 6 and p[0, 7] == x[0, 0, 1]
    assert p.reshape(2, 4, 5)[1, 1:-1, 1:-1].tolist() == x[1].tolist()


def full_layer(ic=64, oc=8, h=4):
    return np.full((ic, h, h), 15), np.full((oc, ic, 3, 3), 7)


def test_overflow_reported_not_wrapped():
    x, wt = full_layer()
    ref = ws_reference(x, wt)
    assert ref.out.max() == 64 * 9 * 105           # exact, never wrapped
    text = "\n".join(ref.overflows)
    assert "out[oc=0, o_nij=5] = 60480 does not fit 16-bit two's complement" in text
    assert any(line.startswith("acc[") for line in ref.overflows)
    assert any(line.startswith("... and ") for line in ref.overflows)   # summarized
    assert not any(line.startswith("psum[") for line in ref.overflows)  # 8 x 105 fits
    assert any(line.startswith("sfp_out[") for line in ref.overflows)  # the 16-bit output lane
    assert len(ref.overflows) <= 3 * 11
    osr = os_reference(x, wt)
    assert any(line.startswith("os_out[") for line in osr.overflows)
    assert any(line.startswith("os_acc[") for line in osr.overflows)
    np.testing.assert_array_equal(osr.output(), ref.output())
    with pytest.raises(PsumOverflowError, match=r"does not fit 16-bit"):
        ws_reference(x, wt, strict=True)
    with pytest.raises(PsumOverflowError, match=r"^os_"):
        os_reference(x, wt, strict=True)
    # wider accumulator: no report
    assert ws_reference(x, wt, acc_bw=17, psum_bw=17).overflows == []
    assert os_reference(x, wt, psum_bw=17).overflows == []


def test_psum_overflow_at_narrow_width():
    x, wt = full_layer(ic=8, oc=8)
    ref = ws_reference(x, wt, psum_bw=8, acc_bw=32)
    assert ref.overflows[0].startswith("psum[ic_tile=0, oc_tile=0, col=0, nij=")
    assert "= 840 does not fit 8-bit two's complement (-128..127)" in ref.overflows[0]
    with pytest.raises(PsumOverflowError, match=r"^psum\["):
        ws_reference(x, wt, psum_bw=8, acc_bw=32, strict=True)


def test_prefix_overflow_even_when_final_fits():
    # positive then negative contributions: prefix leaves 12 bits, final is 0
    x = np.full((16, 1, 1), 15)
    wt = np.zeros((8, 16, 3, 3), np.int64)
    wt[:, :8, 1, 1] = 7
    wt[:, 8:, 1, 1] = -7
    ref = ws_reference(x, wt, acc_bw=10, psum_bw=12)
    assert ref.out.max() == 0
    assert any(l.startswith("acc[") for l in ref.overflows)
    assert not any(l.startswith("out[") for l in ref.overflows)


@pytest.mark.parametrize("x_shape,w_shape,exc,pattern", [
    ((8, 4), (8, 8, 3, 3), LayerError, r"x_int must be 3-D.*\(8, 4\)"),
    ((8, 4, 4), (8, 8, 3), LayerError, r"w_int must be 4-D"),
    ((8, 4, 4), (8, 8, 5, 5), LayerError, r"kernel 5x5 not supported"),
    ((8, 4, 4), (8, 16, 3, 3), LayerError, r"w_int has 16 input channels but x_int has 8"),
    ((8, 33, 4), (8, 8, 3, 3), LayerError, r"feature map 33x4 not supported"),
])
def test_bad_shapes(x_shape, w_shape, exc, pattern):
    with pytest.raises(exc, match=pattern):
        ws_reference(np.zeros(x_shape, np.int64), np.zeros(w_shape, np.int64))


def test_bad_values_and_mapping(rng):
    x, wt = rand_layer(rng, 8, 8, 4)
    bad = x.copy()
    bad[1, 2, 3] = 16
    with pytest.raises(ModelError, match=r"x_int value 16 at \[ic=1, h=2, w=3\] is outside 0..15"):
        ws_reference(bad, wt)
    badw = wt.copy()
    badw[0, 0, 0, 0] = -8
    with pytest.raises(ModelError, match=r"w_int value -8 .* outside -7..7"):
        os_reference(x, badw)
    xf = x.astype(np.float64)
    xf[0, 1, 2] = 2.5
    with pytest.raises(ModelError, match=r"x_int must hold integers, got 2.5 at \[0, 1, 2\]"):
        ws_reference(xf, wt)
    with pytest.raises(LayerError, match=r"stride 2 not supported"):
        ws_reference(x, wt, stride=2)
    with pytest.raises(LayerError, match=r"padding 0 not supported"):
        os_reference(x, wt, padding=0)
    with pytest.raises(ModelError, match=r"psum_bw must be an integer"):
        ws_reference(x, wt, psum_bw=0)


def test_random_layer_spans_the_operand_ranges():
    x, wt = random_layer(np.random.default_rng(5), 16, 24, 6, 5)
    assert x.shape == (16, 6, 5) and wt.shape == (24, 16, 3, 3)
    assert x.dtype == np.int64 and wt.dtype == np.int64
    assert (x.min(), x.max()) == (0, 15) and (wt.min(), wt.max()) == (-7, 7)
    assert field_range(4) == (-8, 7) and field_range(4, signed=False) == (0, 15)


def test_operand_helpers_match_the_references(rng):
    """padded_operands / os_operands are what ws_reference / os_reference (and through them
    the program builders and the classic files) use; checked here against a direct loop."""
    ic, oc, h, w = 10, 9, 3, 5
    x, wt = rand_layer(rng, ic, oc, h, w)
    a, wk = padded_operands(x, wt, 8)
    assert a.shape == (16, 5 * 7) and wk.shape == (16, 16, 9)
    np.testing.assert_array_equal(a.reshape(16, 5, 7)[:ic, 1:-1, 1:-1], x)
    assert not a.reshape(16, 5, 7)[ic:].any() and not a.reshape(16, 5, 7)[:, 0].any()
    np.testing.assert_array_equal(wk[:oc, :ic], wt.reshape(oc, ic, 9))
    assert not wk[oc:].any() and not wk[:, ic:].any()
    act, wgt = os_operands(x, wt, 8)
    osr = os_reference(x, wt)
    np.testing.assert_array_equal(osr.activation[:, 0], act)
    np.testing.assert_array_equal(osr.weight[0], wgt)
    ref = ws_reference(x, wt)
    np.testing.assert_array_equal(ref.activation.reshape(16, -1), a)
    for o in range(2):
        for i in range(2):
            np.testing.assert_array_equal(ref.weight[o, i], wk[o * 8:(o + 1) * 8, i * 8:(i + 1) * 8])


def test_2bit_activation_above_3_is_refused():
    x = np.zeros((16, 4, 4), np.int64)
    x[5, 2, 1] = 4
    with pytest.raises(ModelError, match=r"^x_int value 4 at \[ic=5, h=2, w=1\] is outside 0..3 \(2-bit unsigned\)"):
        ws_reference(x, np.zeros((8, 16, 3, 3), np.int64), a_bit=2)
