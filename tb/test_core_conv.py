"""tb.core_conv.CoreConv: conv layers of a small network chained through the RTL (the Icarus
player and the cocotb bench), against the integer conv (F.conv2d) and Requant.apply."""
from __future__ import annotations

import numpy as np
import pytest

from model.errors import ModelError
from model.requant import Requant
from tb import runner
from tb.core_conv import ConvRun, CoreConv
from tb.layer_cases import int_conv, quantile_requant


@pytest.mark.parametrize("sim", ["icarus", "cocotb"])
def test_small_network_chain(sim):
    """A signed 3-channel image (levels -255..15) -> 8 channels (levels) -> max-pool on the
    host -> 12 channels (raw sums): each layer's RTL output equals the reference, the
    second layer's input is the first's output from the core; the cycles include the loads."""
    rng = np.random.default_rng(4)
    conv = CoreConv(sim=sim, build=runner.SIM_BUILD / f"core_conv-{sim}")
    x = rng.integers(-255, 16, (3, 4, 4))
    w0, w1 = rng.integers(-7, 8, (8, 3, 3, 3)), rng.integers(-7, 8, (12, 8, 3, 3))
    rq = quantile_requant(int_conv(x, w0), rng)
    first = conv.run(x, w0, rq)
    np.testing.assert_array_equal(first.out, rq.apply(int_conv(x, w0)))
    assert first.out.min() == 0 and first.out.max() == 15 and first.errors == []
    pooled = first.out.reshape(8, 2, 2, 2, 2).max(axis=(2, 4))
    second = conv.run(pooled, w1, None)
    np.testing.assert_array_equal(second.out, int_conv(pooled, w1))
    assert second.macs == 8 * 12 * 9 * 2 * 2 and second.busy > 0 and second.cycles > second.busy
    assert first.cycles > 15 * 8 * 2       # the threshold words went through xmem first


def test_the_template_is_reused(tmp_path):
    """The second image of a geometry binds new words into the same template."""
    rng = np.random.default_rng(5)
    conv = CoreConv(sim="icarus", build=runner.SIM_BUILD / "core_conv-icarus")
    w = rng.integers(-7, 8, (8, 8, 3, 3))
    runs = [conv.run(rng.integers(0, 16, (8, 3, 3)), w) for _ in range(2)]
    assert runs[0].cycles == runs[1].cycles and not np.array_equal(runs[0].out, runs[1].out)


def test_a_batch_is_each_image_bit_exact():
    """Three distinct images through one batched program of a 2x2 layer (every
    weight word loaded once for the three): each image's levels equal its own reference,
    so images mixed up, shifted or overwritten in the batch fail; the batch costs less
    than three programs. With batch=2 the same images run in two programs."""
    rng = np.random.default_rng(6)
    conv = CoreConv(sim="icarus", build=runner.SIM_BUILD / "core_conv-icarus")
    x = rng.integers(0, 16, (3, 16, 2, 2))
    w = rng.integers(-7, 8, (16, 16, 3, 3))
    sums = np.stack([int_conv(image, w) for image in x])
    rq = quantile_requant(sums.transpose(1, 0, 2, 3), rng)
    want = np.stack([rq.apply(s) for s in sums])
    assert all(not np.array_equal(want[0], want[b]) for b in (1, 2))
    batched = conv.run(x, w, rq)
    np.testing.assert_array_equal(batched.out, want)
    assert (batched.programs, batched.shape.batch, batched.images, batched.errors) == (1, 3, 3, [])
    assert batched.macs == 3 * 16 * 16 * 9 * 2 * 2
    single = conv.run(x[1], w, rq)
    np.testing.assert_array_equal(single.out, want[1])
    assert batched.cycles < 2 * single.cycles
    split = conv.run(x, w, rq, batch=2)
    np.testing.assert_array_equal(split.out, want)
    assert split.programs == 2 and split.cycles > batched.cycles


def test_a_signed_batch():
    """A signed first layer batched: the digit split covers the whole batch (image 1 alone
    needs the third digit group), each image's raw sums are its own."""
    rng = np.random.default_rng(7)
    conv = CoreConv(sim="icarus", build=runner.SIM_BUILD / "core_conv-icarus")
    x = np.stack([rng.integers(-15, 16, (3, 4, 4)), rng.integers(-255, 16, (3, 4, 4))])
    w = rng.integers(-7, 8, (8, 3, 3, 3))
    run = conv.run(x, w)
    np.testing.assert_array_equal(run.out, np.stack([int_conv(image, w) for image in x]))
    assert run.shape.batch == 2 and len(run.shape.ic_tile_shift) == 2


def test_refusals():
    conv = CoreConv(sim="icarus", build=runner.SIM_BUILD / "core_conv-icarus")
    w = np.zeros((8, 3, 3, 3), dtype=np.int64)
    with pytest.raises(ModelError, match=r"^x_int: levels -300\.\.-300; a signed first layer takes -255\.\.15"):
        conv.run(np.full((3, 2, 2), -300), w)
    with pytest.raises(ModelError, match="requant has 4 channels, the layer 8"):
        conv.run(np.zeros((3, 2, 2)), w, Requant(np.zeros((4, 15), dtype=np.int64), np.zeros(4, dtype=bool)))
    with pytest.raises(ModelError, match="w_int has 3 input channels but x_int has 2"):
        conv.run(np.zeros((2, 2, 2)), w)
    for batch in (0, -1, 1.5, "2", True):
        for x in (np.zeros((2, 3, 2, 2)), np.zeros((3, 2, 2))):     # checked for one image too
            with pytest.raises(ModelError, match=rf"^batch must be an integer of at least 1, got {batch!r}$"):
                conv.run(x, w, batch=batch)
    bad = np.zeros((3, 3, 2, 2))
    bad[2, 1, 0, 1] = 16
    with pytest.raises(ModelError, match=r"^image 2 of the batch: x_int value 16 at \[ic=1, h=0, w=1\]"):
        conv.run(bad, w)
    with pytest.raises(ModelError, match=r"^w_int value 8 "):   # shared weights: no image named
        conv.run(np.zeros((3, 3, 2, 2)), np.full((8, 3, 3, 3), 8))
    with pytest.raises(ModelError, match=r"^x_int is an empty batch: shape \(0, 3, 2, 2\)$"):
        conv.run(np.zeros((0, 3, 2, 2)), w)
    with pytest.raises(ModelError, match=r"^x_int must be 3-D \[IC, H, W\] or 4-D \[N, IC, H, W\], got shape \(2, 2\)$"):
        conv.run(np.zeros((2, 2)), w)
    with pytest.raises(ModelError, match="sim must be one of"):
        CoreConv(sim="xsim")
    flagged = ConvRun(out=np.zeros(0), cycles=1, busy=1, macs=1, errors=["SFP overflow"])
    with pytest.raises(ModelError, match="the core raised SFP overflow"):
        CoreConv._check(flagged, conv_template())


def test_a_batch_fits_the_player():
    """CoreConv splits a batch so that each program fits the player's program memory
    (tb/player.py MAX_CYCLES): the 512->512 2x2 layer, 16 images by the buffers, runs 11
    per program on the player (16 x its 147,456-cycle physical limit would not fit), and
    the cocotb flow runs one image per program."""
    from model.program.network import LayerShape, max_batch
    from tb.player import MAX_CYCLES

    shape = LayerShape(512, 512, 2, 2, 8, "raw")
    player, cocotb = CoreConv.__new__(CoreConv), CoreConv.__new__(CoreConv)
    player.sim, player.array_size, cocotb.sim = "verilator", 8, "cocotb"
    assert max_batch(shape) == 16 and 16 * 147_456 > MAX_CYCLES
    assert player._player_batch(shape) == 11 and 11 * 147_456 * 1.25 <= MAX_CYCLES
    assert cocotb._player_batch(shape) == 1


def test_a_batch_is_sized_by_its_own_digit_split(monkeypatch):
    """A signed batch whose image 0 has no negative level while image 1 needs the third
    digit group: the programs are sized for the batch's split (2 ic tiles), not image 0's
    (1 ic tile), which would let twice the images into one program."""
    seen = []

    class Sized(Exception):
        pass

    def player_batch(self, one):
        seen.append(one)
        raise Sized

    monkeypatch.setattr(CoreConv, "_player_batch", player_batch)
    conv = CoreConv.__new__(CoreConv)
    conv.sim, conv.array_size = "verilator", 8
    x = np.zeros((2, 3, 4, 4), dtype=np.int64)
    x[1, 0, 0, 0] = -200
    with pytest.raises(Sized):
        conv.run(x, np.zeros((8, 3, 3, 3), dtype=np.int64))
    from model.program.network import layer_operands

    batch_split, image0_split = (layer_operands(xs, np.zeros((8, 3, 3, 3)), 8, "raw")[0] for xs in (x, x[:1]))
    assert image0_split.geometry.n_ic_tiles == 1            # the case tells the two apart
    assert seen[0].batch == 1 and seen[0].ic_tile_shift == batch_split.ic_tile_shift
    assert seen[0].geometry.n_ic_tiles == batch_split.geometry.n_ic_tiles == 2


def conv_template():
    from model.hwconfig import CONFIG
    from model.program.network import LayerShape, template

    return template(LayerShape(8, 8, 2, 2, CONFIG.row, "raw"))
