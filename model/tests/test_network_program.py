"""Network layers as programs (model.program.network): templates bound to data, the SFP's
requant / raw / shift fields through the core model (model.program_check), the signed
input's digits (model.program.signed_input), all against the integer conv computed
independently (torch.nn.functional.conv2d in float64) and Requant.apply."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program import ws_fast
from model.program.network import LayerShape, Template, layer_program, template, template_folder
from model.program.signed_input import MIN_LEVEL, split_signed
from model.program_check import ProgramError, check_program
from model.requant import Requant


def int_conv(x, w) -> np.ndarray:
    out = F.conv2d(torch.tensor(x, dtype=torch.float64)[None], torch.tensor(w, dtype=torch.float64), padding=1)
    return out[0].numpy().astype(np.int64)


def random_requant(sums: np.ndarray, rng) -> Requant:
    """Unsorted thresholds drawn around the sums (so some equal a sum), a third descending."""
    oc = sums.shape[0]
    t = rng.integers(sums.min() - 2, sums.max() + 3, (oc, 15))
    return Requant(t, rng.random(oc) < 0.34)


def arrange(program, lanes: np.ndarray, oc: int, h: int, w: int) -> np.ndarray:
    """Output vectors in emit order (WS keys (oc tile, pixel)) -> (OC, H, W)."""
    n = program.array_size
    out = np.zeros((-(-oc // n), h * w, n), dtype=np.int64)
    keys = np.array(program.emits).reshape(-1, 2)
    out[keys[:, 0], keys[:, 1]] = lanes
    return out.transpose(0, 2, 1).reshape(-1, h * w)[:oc].reshape(oc, h, w)


LAYERS = [(8, 20, 12, 4, 5, 0), (8, 3, 10, 5, 5, MIN_LEVEL), (8, 3, 10, 4, 4, -15),
          (4, 8, 8, 3, 3, -100), (16, 5, 20, 3, 3, 0)]


@pytest.mark.parametrize("requant", [False, True])
@pytest.mark.parametrize("n,ic,oc,h,w,lo", LAYERS)
def test_network_layer_through_the_core_model(n, ic, oc, h, w, lo, requant):
    """Every psum and output of the program through the core model, against the reference
    tiling; the outputs also against F.conv2d (+ Requant.apply) on the original, possibly
    signed, integers."""
    rng = np.random.default_rng([n, ic, oc, -lo])
    x, wt = rng.integers(lo, 16, (ic, h, w)), rng.integers(-7, 8, (oc, ic, 3, 3))
    x.flat[0] = lo
    sums = int_conv(x, wt)
    rq = random_requant(sums, rng) if requant else None
    program, xs, ws = layer_program(x, wt, rq, array_size=n)
    report = check_program(program, xs, ws, requant=rq)
    want = rq.apply(sums) if requant else sums
    np.testing.assert_array_equal(arrange(program, report.output_lanes, oc, h, w), want)
    assert program.emit == ("requant" if requant else "raw")
    assert program.ic_tile_shift == (split_signed(x, wt, n)[2] if lo < 0 else ())


def test_template_bound_to_data_is_the_builders_program():
    """A template (built without data) bound to a layer's words is word for word the program
    ws_fast builds from the data (ReLU mode: no thresholds), paired weight sets (a 2x2 map:
    D_wmem entries of boundary words) included."""
    rng = np.random.default_rng(5)
    for ic, oc, h, w_ in ((20, 12, 6, 5), (24, 16, 2, 2)):
        x, w = rng.integers(0, 16, (ic, h, w_)), rng.integers(-7, 8, (oc, ic, 3, 3))
        bound = layer_program(x, w, emit="relu")[0]
        built = ws_fast(x, w)
        assert bound.inst == built.inst and bound.d_xmem == built.d_xmem and bound.d_wmem == built.d_wmem
        assert bound.emits == built.emits and bound.psum_writes == built.psum_writes


def test_template_depends_only_on_the_geometry(tmp_path):
    """Two images of one shape share one template (memory cache), a fresh process finds it
    on disk, and the bound programs differ only in D_xmem."""
    rng = np.random.default_rng(6)
    w = rng.integers(-7, 8, (8, 8, 3, 3))
    a = layer_program(rng.integers(0, 16, (8, 4, 4)), w, emit="raw", cache=tmp_path)[0]
    b = layer_program(rng.integers(0, 16, (8, 4, 4)), w, emit="raw", cache=tmp_path)[0]
    assert a.inst == b.inst and a.d_xmem != b.d_xmem
    shape = LayerShape(8, 8, 4, 4, CONFIG.row, "raw")
    assert template(shape) is template(shape)
    stored = Template.load(shape, template_folder(shape, tmp_path))     # what a fresh process reads
    fresh = template(shape)
    assert stored.inst_hex == fresh.inst_hex and stored.program == fresh.program
    assert all(np.array_equal(getattr(stored, k), getattr(fresh, k)) for k in Template._ARRAYS)
    assert stored.full_program(a.d_xmem, a.d_wmem) == a


def test_requant_program_loads_every_threshold_into_the_sfp():
    """Dropping one THR_WR leaves a threshold unwritten: the core model refuses the emit
    that reads it, naming the cycle; an emit with another tile's thresholds differs."""
    rng = np.random.default_rng(7)
    x, w = rng.integers(0, 16, (8, 4, 4)), rng.integers(-7, 8, (16, 8, 3, 3))
    rq = random_requant(int_conv(x, w), rng)
    program, xs, ws = layer_program(x, w, rq)
    thr_wr = 1 << CONFIG.isa.fields["thr_wr"][0]
    first = next(t for t, word in enumerate(program.inst) if word & thr_wr)
    dropped = dataclasses.replace(program, inst=[word & ~thr_wr if t == first else word
                                                 for t, word in enumerate(program.inst)])
    with pytest.raises(ProgramError, match=r"^cycle \d+: REQUANT emit with tile 0's threshold 0 of lane 0"):
        check_program(dropped, xs, ws, requant=rq)
    off, width = CONFIG.isa.fields["thr_tile"]
    emit = 1 << CONFIG.isa.fields["emit"][0]
    swapped = [word ^ (1 << off) if word & emit else word for word in program.inst]   # tile 0 <-> 1
    with pytest.raises(ProgramError, match=r"output #0 .* expected"):
        check_program(dataclasses.replace(program, inst=swapped), xs, ws, requant=rq)


def test_threshold_write_after_a_requant_emit_is_refused():
    """The threshold block RAM cannot read and write one word in a cycle (undefined on the
    FPGA). A REQUANT emit reads its tile's thresholds at the SFP's execute edge, which is the
    write edge of the next instruction: a THR_WR of a threshold of that tile there is a
    ProgramError; of another tile it is not (nor does it change an output)."""
    rng = np.random.default_rng(7)
    x, w = rng.integers(0, 16, (8, 4, 4)), rng.integers(-7, 8, (8, 8, 3, 3))
    rq = random_requant(int_conv(x, w), rng)
    program, xs, ws = layer_program(x, w, rq)
    check_program(program, xs, ws, requant=rq)
    isa = CONFIG.isa
    emit = 1 << isa.fields["emit"][0]
    # the last emit: the instruction after it is no emit, so its THR_TILE is free to choose
    last = max(t for t, word in enumerate(program.inst) if word & emit)
    tile = isa.decode(program.inst[last])["thr_tile"]

    def thr_wr_after_the_emit(tile: int) -> list[int]:
        f = isa.decode(program.inst[last + 1])
        word = isa.encode({**f, "thr_wr": 1, "thr_tile": tile, "thr_level": 0})
        return [word if t == last + 1 else w for t, w in enumerate(program.inst)]

    with pytest.raises(ProgramError, match=rf"^cycle {last + 1}: THR_WR of threshold 0 right after a REQUANT "
                                           rf"EMIT of tile {tile}"):
        check_program(dataclasses.replace(program, inst=thr_wr_after_the_emit(tile)), xs, ws, requant=rq)
    check_program(dataclasses.replace(program, inst=thr_wr_after_the_emit(tile + 1)), xs, ws, requant=rq)


def test_dropped_shift_is_caught():
    """Without ACC_SHIFT on the high digit's psums the outputs differ (the model says where)."""
    x = np.full((3, 3, 3), -200)
    w = np.ones((8, 3, 3, 3), dtype=np.int64)
    program, xs, ws = layer_program(x, w)
    shift = 1 << CONFIG.isa.fields["acc_shift"][0]
    assert any(word & shift for word in program.inst)
    cleared = dataclasses.replace(program, inst=[word & ~shift for word in program.inst])
    with pytest.raises(ProgramError, match="output #0"):
        check_program(cleared, xs, ws)


def test_signed_input_limits():
    w = np.ones((4, 3, 3, 3), dtype=np.int64)
    x = np.zeros((3, 2, 2), dtype=np.int64)
    x[0, 0, 0] = MIN_LEVEL
    xs, ws, shifts = split_signed(x, w, 8)
    assert shifts == (0, 1) and xs.min() >= 0 and xs.max() <= 15 and np.abs(ws).max() <= 7
    x[0, 0, 0] = MIN_LEVEL - 1
    with pytest.raises(ModelError, match=r"^x_int: levels -256\.\.0; a signed first layer takes -255\.\.15"):
        layer_program(x, w)
    x[0, 0, 0] = -3
    assert split_signed(x, w, 8)[2] == (0,)        # no level below -15: one digit, one tile


def test_requant_refusals():
    x, w = np.zeros((8, 2, 2), dtype=np.int64), np.zeros((8, 8, 3, 3), dtype=np.int64)
    with pytest.raises(ModelError, match="requant has 4 channels"):
        layer_program(x, w, Requant(np.zeros((4, 15), dtype=np.int64), np.zeros(4, dtype=bool)))
    with pytest.raises(ModelError, match="the SFP holds thresholds for 512"):
        LayerShape(8, 520, 2, 2, 8, "requant")


@pytest.mark.parametrize("ic, oc, h, want", [
    (512, 512, 2, 16),    # 16 images' 2x2 maps fill the 64-entry activation buffer
    (8, 512, 4, 4),       # 4 images' 4x4 maps fill it
    (256, 256, 8, 1),     # an 8x8 map fills it alone: not batched
    (64, 64, 32, 1),      # larger than the buffer: not batched
    (8, 4096, 2, 4),      # 512 oc tiles x 4 pixels x 4 images fill the 8,192-entry SFP bank
])
def test_max_batch(ic, oc, h, want):
    from model.program.network import max_batch

    assert max_batch(LayerShape(ic, oc, h, h, 8, "raw")) == want


def test_batch_refusals():
    from model.errors import LayerError

    with pytest.raises(ModelError, match=r"^batch must be at least 1, got 0$"):
        LayerShape(8, 8, 2, 2, 8, "raw", batch=0)
    with pytest.raises(LayerError, match=r"^layer 8->8 16x16, batch 9 cannot run: one ic tile needs 2304 activation"):
        template(LayerShape(8, 8, 16, 16, 8, "raw", batch=9))
    with pytest.raises(LayerError, match=r"^layer 8->512 4x4, batch 9 cannot run: 9216 output vectors do not fit"):
        template(LayerShape(8, 512, 4, 4, 8, "raw", batch=9))
