"""The core model against the RTL: model.program_check replays a program cycle by cycle
without a simulator (model/tests/test_program.py relies on it); here the same programs run
through the RTL (tb/core_player.v on Icarus) and both must agree.

Programs: every schedule (the 2-bit mode's fast2 included) on small layers at two array
sizes, and network layers (model.program.network: levels with their thresholds loaded in
the program, raw sums, a signed input's digits), each also corrupted at random (a control
bit flipped, a word dropped, two words swapped; seeded). Where the model
replays a program without complaint, the RTL must make the same pmem writes (address and
vector), the same SFP outputs in the same cycles, and raise no error flag. Where the model
refuses a FIFO operation or an SFP overflow, the RTL must raise that flag; where it refuses
data that was never written (memory, activation buffer, SFP bank entry), the RTL must dump
unknown (X) values.
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program import ALL_SCHEDULES, SCHEDULES, SCHEDULES_2BIT, Program
from model.program_check import ProgramError, check_program
from model.tiling import random_layer
from tb import runner
from tb.player import Player

# control bits a corruption may flip (1-bit fields, so every corrupted word still encodes)
CONTROL = ["load", "execute", "l0_wr", "l0_rd", "ififo_wr", "ififo_rd", "ofifo_rd", "start", "drain", "drain_shadow",
           "acc", "acc_first", "emit", "abuf_wr", "l0_zero", "l0_abuf", "act2", "wsrc", "load2"]
NETWORK_CONTROL = CONTROL + ["thr_wr", "acc_shift", "requant", "raw"]
# model refusals -> the error flag the RTL must raise
FLAGS = {("L0", "full"): "L0 overflow", ("L0", "empty"): "L0 underflow",
         ("IFIFO", "full"): "IFIFO overflow", ("IFIFO", "empty"): "IFIFO underflow",
         ("OFIFO", "full"): "OFIFO overflow", ("OFIFO", "empty"): "OFIFO underflow",
         ("SFP", "overflows"): "SFP overflow"}
# model refusals that name data never written (X in the RTL)
UNKNOWN = ("unknown", "never written", "ever wrote")
CORRUPTIONS = 4      # corrupted variants per program

BASES = [(n, shape, schedule) for n, shape in ((8, (8, 8, 4, 4)), (4, (5, 6, 3, 3)))
         for schedule in sorted(SCHEDULES)] + [(8, (16, 8, 4, 4), "fast2"), (4, (10, 6, 3, 3), "fast2")]
# paired weight sets (LOAD2; ws_fast): a 2x2 map on the 8x8 array, a 1x1 map on a 4x4 one
BASES += [(8, (24, 16, 2, 2), "fast"), (4, (9, 6, 1, 1), "fast")]


def corrupt(program: Program, rng: random.Random, control: list[str] = CONTROL) -> tuple[Program, str]:
    """One random corruption inside the compute part of the program."""
    inst, data = list(program.inst), list(program.d_xmem)
    wdata = list(program.d_wmem) or [0] * len(inst)
    t = rng.randrange(program.compute_start, len(inst) - 1)
    kind = rng.choice(["flip", "flip", "drop", "swap"])
    if kind == "flip":
        name = rng.choice(control)
        inst[t] ^= 1 << CONFIG.isa.fields[name][0]
        what = f"{name} flipped at cycle {t}"
    elif kind == "drop":
        del inst[t], data[t], wdata[t]
        what = f"word {t} dropped"
    else:
        inst[t], inst[t + 1], data[t], data[t + 1] = inst[t + 1], inst[t], data[t + 1], data[t]
        wdata[t], wdata[t + 1] = wdata[t + 1], wdata[t]
        what = f"words {t} and {t + 1} swapped"
    return dataclasses.replace(program, inst=inst, d_xmem=data, d_wmem=wdata), what


def with_tail(program: Program) -> Program:
    """Idle words after the program, so late outputs of a corrupted one land inside the run."""
    tail = 2 * program.array_size + 4
    return dataclasses.replace(program, inst=program.inst + [CONFIG.isa.idle] * tail,
                               d_xmem=program.d_xmem + [0] * tail,
                               d_wmem=(program.d_wmem or [0] * len(program.inst)) + [0] * tail)


def agree(player: Player, program: Program, folder, what: str) -> str:
    """Play `program` on both; returns 'same' or the refusal both saw. Fails otherwise."""
    program = with_tail(program)
    try:
        report = check_program(program, None, None, verify=False)
    except ProgramError as e:
        report, refusal = None, str(e)
    if report is None and "before this program read" in refusal:
        return "stale SRAM Q"   # the RTL takes what an earlier read left in Q: no flag, refused on purpose
    try:
        got = player.run(program, folder)
    except ModelError as e:
        assert "unknown" in str(e) and report is None and any(k in refusal for k in UNKNOWN), (
            f"{what}: the model says {refusal if report is None else 'nothing'}; the RTL: {e}")
        return "unknown data"
    flags = [f for i, f in enumerate(CONFIG.error_names) if got.summary["errors"] >> i & 1]
    if report is None:
        wanted = [flag for (unit, word), flag in FLAGS.items() if f" {unit}" in refusal and word in refusal]
        assert wanted, f"{what}: model refusal this test cannot map to a flag: {refusal}"
        assert wanted[0] in flags, f"{what}: the model says '{refusal}', the RTL raised {flags or 'no flag'}"
        return wanted[0]
    assert not flags, f"{what}: the model replays it cleanly, the RTL raised {flags}"
    np.testing.assert_array_equal(got.psum_addr, report.psum_addr, err_msg=f"{what}: pmem write addresses")
    np.testing.assert_array_equal(got.psums, report.psum_lanes, err_msg=f"{what}: pmem write vectors")
    # levels and raw sums are read from sfp_wide (sfp_out holds their low psum_bw bits)
    outputs = got.outputs if program.emit == "relu" else got.outputs_wide
    np.testing.assert_array_equal(outputs, report.output_lanes, err_msg=f"{what}: SFP outputs")
    np.testing.assert_array_equal(got.output_counters - got.summary["start"],
                                  report.output_cycles - program.compute_start, err_msg=f"{what}: output cycles")
    return "same"


@pytest.mark.parametrize("n,shape,schedule", BASES, ids=[f"{n}x{n}-{'x'.join(map(str, s))}-{k}" for n, s, k in BASES])
def test_model_agrees_with_the_rtl(n, shape, schedule):
    folder = runner.SIM_BUILD / f"core_model-{n}-{'x'.join(map(str, shape))}-{schedule}-icarus"
    player = Player("icarus", folder, CONFIG.with_array(n))
    x, w = random_layer(np.random.default_rng(list(shape)), *shape, a_bit=2 if schedule in SCHEDULES_2BIT else 4)
    program = ALL_SCHEDULES[schedule](x, w, array_size=n)
    assert agree(player, program, folder / "valid", "the valid program") == "same"
    rng = random.Random(f"{n}-{shape}-{schedule}")
    seen = []
    for k in range(CORRUPTIONS):
        bad, what = corrupt(program, rng)
        seen.append(agree(player, bad, folder / f"corrupt{k}", what))
    print(f"{n}x{n} {schedule}: valid + {CORRUPTIONS} corrupted programs agree ({', '.join(seen)})")


def test_drain_with_drain_shadow_in_ws():
    """DRAIN with DRAIN_SHADOW in a WS program: a shadow drain is OS only (the array gates
    it with the column's OS bit), so it is a live drain, and model and RTL agree: at cycle
    114 of the 8->8 fast program (where an ungated shadow fed the WS adders 0), for 1 and
    for 8 cycles."""
    n, shape = 8, (8, 8, 4, 4)
    folder = runner.SIM_BUILD / "core_model-ws-drain-shadow-icarus"
    player = Player("icarus", folder, CONFIG.with_array(n))
    x, w = random_layer(np.random.default_rng(list(shape)), *shape)
    program = ALL_SCHEDULES["fast"](x, w, array_size=n)
    both = (1 << CONFIG.isa.fields["drain"][0]) | (1 << CONFIG.isa.fields["drain_shadow"][0])
    for length in (1, 8):
        inst = list(program.inst)
        for t in range(114, 114 + length):
            inst[t] |= both
        what = f"drain + drain_shadow in cycles 114..{113 + length}"
        agree(player, dataclasses.replace(program, inst=inst), folder / f"cycles{length}", what)


NETWORK = [(8, (20, 12, 4, 5), 0, True), (4, (3, 6, 3, 3), -255, True), (8, (3, 8, 3, 3), -100, False)]


@pytest.mark.parametrize("n,shape,lo,requant", NETWORK,
                         ids=[f"{n}x{n}-{'x'.join(map(str, s))}-{'signed-' if lo < 0 else ''}{'requant' if r else 'raw'}"
                              for n, s, lo, r in NETWORK])
def test_model_agrees_with_the_rtl_on_network_layers(n, shape, lo, requant):
    from model.program.network import layer_program
    from tb.layer_cases import int_conv, quantile_requant

    name = f"core_model-network-{n}-{'x'.join(map(str, shape))}-{lo}-{int(requant)}-icarus"
    folder = runner.SIM_BUILD / name
    player = Player("icarus", folder, CONFIG.with_array(n))
    ic, oc, h, w_ = shape
    rng = np.random.default_rng(list(shape))
    x, w = rng.integers(lo, 16, (ic, h, w_)), rng.integers(-7, 8, (oc, ic, 3, 3))
    rq = quantile_requant(int_conv(x, w), rng) if requant else None
    program = layer_program(x, w, rq, array_size=n)[0]
    assert agree(player, program, folder / "valid", "the valid program") == "same"
    corrupter = random.Random(name)
    seen = []
    for k in range(CORRUPTIONS):
        bad, what = corrupt(program, corrupter, NETWORK_CONTROL)
        seen.append(agree(player, bad, folder / f"corrupt{k}", what))
    print(f"{n}x{n} network: valid + {CORRUPTIONS} corrupted programs agree ({', '.join(seen)})")
