"""model.program builders, replayed cycle by cycle by model.program_check against the reference.

check_program models the core register by register (SRAM Q latency, abuf, skewed L0/IFIFO,
PE array, OFIFO, SFP one cycle behind); it was cross-checked bit for bit (psums, outputs,
output cycles, refused FIFO operations) against the Icarus RTL player on 153 programs,
mutants included. Here: every builder on many shapes passes, corrupted programs are caught
with the cycle named, refusals are one line, lanes are never masked silently, and the
SCALE-Sim formula (model.program.scalesim_cycles) against its published figures.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from model import program as P
from model.program import memory_map
from model.errors import LayerError, ModelError
from model.program import FIELDS, INST_WIDTH, Program, Timeline, decode, geometry, pack_lanes, plan_passes
from model.program.ws_fast import paired_period, xmem_banks
from model.program_check import CheckReport, ProgramError, check_program
from model.tiling import psum_address, random_layer

BUILDERS = P.ALL_SCHEDULES


def layer(ic, oc, h, w, seed=0):
    return random_layer(np.random.default_rng([ic, oc, h, w, seed]), ic, oc, h, w)


def build_and_check(schedule, x, w, **kw) -> tuple[Program, CheckReport]:
    program = BUILDERS[schedule](x, w, **kw)
    assert program.array_size == kw.get("array_size", 8)
    report = check_program(program, x, w)
    assert report.psum_lanes.shape == (len(program.psum_writes), program.array_size)
    assert report.output_lanes.shape == (len(program.emits), program.array_size)
    assert report.last_output == program.last_emit
    assert report.executes == program.executes
    return program, report


# (ic, oc, h, w): which schedules; ws_classic keeps every psum in pmem, so only small layers
SHAPES = [
    ((8, 8, 4, 4), "classic fast os"),
    ((16, 16, 8, 8), "fast os"),
    ((3, 16, 4, 4), "classic fast os"),
    ((24, 16, 4, 4), "classic fast os"),
    ((64, 16, 8, 8), "fast os"),          # ws_fast: 2 passes; OS: operands in chunks
    ((8, 128, 4, 4), "fast os"),
    ((5, 11, 6, 6), "classic fast os"),
    ((1, 1, 3, 3), "classic fast os"),
    ((9, 3, 5, 7), "classic fast os"),    # not square
    ((8, 8, 16, 16), "fast os"),          # OS activations do not fit xmem at once
]
CASES = [(shape, s) for shape, schedules in SHAPES for s in schedules.split()]


@pytest.mark.parametrize("shape,schedule", CASES, ids=[f"{'x'.join(map(str, s))}-{k}" for s, k in CASES])
def test_builder_passes_the_cycle_check(shape, schedule):
    build_and_check(schedule, *layer(*shape))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("schedule", ["classic", "fast", "os"])
def test_random_seeds(seed, schedule):
    build_and_check(schedule, *layer(8, 8, 4, 4, seed))
    build_and_check(schedule, *layer(5, 11, 3, 5, seed))


@pytest.mark.parametrize("n", [4, 16])
@pytest.mark.parametrize("schedule", ["classic", "fast", "os"])
def test_other_array_sizes(n, schedule):
    build_and_check(schedule, *layer(8, 8, 4, 4), array_size=n)


def sfp_cycles(program) -> int:
    """Cycles from the last EMIT instruction to its output on sfp_out, as the builder counts
    them (the checker holds it to the core's)."""
    return program.last_emit - max(t for t, word in enumerate(program.inst) if decode(word)["emit"])


def test_fast_8x8_layer_cycles():
    """Weights through wmem, activations through xmem: the first set starts in the cycle after
    column 0's LOAD (cycle 2), 144 vectors back to back, the OFIFO latency (16) and the
    SFP's cycles (CoreConfig.sfp_latency, 3): 164."""
    x, w = layer(8, 8, 4, 4)
    program, report = build_and_check("fast", x, w)
    assert program.cycles <= 2 + 144 - 1 + 16 + sfp_cycles(program)
    assert report.last_output - program.compute_start == program.cycles


def test_os_8x8_layer_cycles():
    """One step per cycle (activation from xmem, weight from wmem in one cycle): per pixel
    group 72 steps, the groups back to back (the first group's sums drain from the shadow
    registers while the second computes, DRAIN_SHADOW); the last group's drain and OFIFO
    take 3n - 1 after its last step, then the SFP's cycles (3), after a fill of 2: 171,
    SCALE-Sim's figure."""
    x, w = layer(8, 8, 4, 4)
    program, _ = build_and_check("os", x, w)
    n, steps = 8, 72
    assert program.cycles == 2 + steps + steps - 1 + 3 * n - 1 + sfp_cycles(program)
    assert program.cycles <= P.scalesim_cycles(8, 8, 4, 4, "os")
    fields = [decode(word) for word in program.inst]
    assert sum(f["drain"] and f["drain_shadow"] for f in fields) == n      # group 0, overlapped
    assert sum(f["drain"] and f["drain_shadow"] and f["execute"] for f in fields) == n


@pytest.mark.parametrize("hazard", ["early", "live"])
def test_os_shadow_drain_hazards_are_refused(hazard):
    """The checker replays the shadow registers: the overlapped drain one cycle early (the
    start has not yet moved row n-1's sum) or without DRAIN_SHADOW (it would shift the live
    sums of the group computing) gives wrong psums, and the replay says where."""
    x, w = layer(8, 8, 4, 4)
    program = P.os_program(x, w)
    inst = list(program.inst)
    shadow = [t for t, word in enumerate(inst) if decode(word)["drain_shadow"]]
    bit = 1 << FIELDS["drain_shadow"][0]
    if hazard == "early":
        inst[shadow[0] - 1] = inst[shadow[0] - 1] | (1 << FIELDS["drain"][0]) | bit
        inst[shadow[-1]] &= ~(bit | (1 << FIELDS["drain"][0]))
    else:
        inst = [word & ~bit for word in inst]
    with pytest.raises(ProgramError, match=r"^cycle \d+: pmem write #0 .* column \d+: expected"):
        check_program(dataclasses.replace(program, inst=inst), x, w)


def test_two_pass_layer():
    x, w = layer(64, 32, 4, 4)                 # 4 x 8 tile pairs of weights: more than wmem holds
    assert len(plan_passes(geometry(x, w))) == 2 and len(plan_passes(geometry(x, w), banks=2)) == 3
    program, report = build_and_check("fast", x, w)
    assert program.compute_start == 0          # multi-pass: measured with every load
    assert len(report.psum_lanes) == 4 * 8 * 9 * 16


def test_paired_weight_sets_load_two_columns_a_cycle():
    """2x2 maps: a weight set has 4 positions for 8 columns, so boundary words stage the lower
    rows of one set with the upper rows of the one before, two columns a cycle (LOAD and
    LOAD2 from one wmem entry): sets start every 4 cycles. The passes are double-buffered
    through D_wmem, each entry written once; after the first pass's preload the array is
    idle only between passes (n + period + the read latency, at most 16 cycles each)."""
    x, w = layer(128, 32, 2, 2)
    geo = geometry(x, w)
    assert paired_period(geo) == 4 and xmem_banks(geo) == 2
    passes = plan_passes(geo, 2)
    program, _ = build_and_check("fast", x, w)
    fields = [decode(word) for word in program.inst]
    assert all(f["wsrc"] for f in fields if f["load"]) and any(f["load2"] for f in fields)
    assert sum(f["load"] + f["load2"] for f in fields) == 4 * 16 * 9 * 8 + len(passes) * 8   # + each pass's last boundary
    entries = [len(octs) * len(icts) * 9 * 4 + 8 for octs, icts in passes]
    assert sum(1 for f in fields if not f["wen_wmem"]) == sum(entries)
    assert program.cycles <= entries[0] + program.executes + 16 * len(passes) + 16 + 3


def test_report_contents():
    x, w = layer(8, 8, 4, 4)
    program, report = build_and_check("classic", x, w)
    writes = report.pmem_writes
    assert [a for a, _ in writes] == [a for a, _ in program.psum_writes]
    assert all(len(lanes) == 8 for _, lanes in writes)
    outs = report.outputs
    assert len(outs) == len(program.emits) == 16 and outs[-1][1] == program.last_emit
    assert all(min(lanes) >= 0 for lanes, _ in outs)            # ReLU
    assert report.executes == 9 * 36 and report.cycles == len(program.inst)
    again = check_program(program, None, None, verify=False)    # replay only, no reference
    np.testing.assert_array_equal(again.psum_lanes, report.psum_lanes)
    np.testing.assert_array_equal(again.output_cycles, report.output_cycles)


# ---- corrupted programs: caught, with the cycle named ----
def set_field(word: int, name: str, value: int) -> int:
    off, width = FIELDS[name]
    return (word & ~(((1 << width) - 1) << off)) | (value << off)


def cycles_with(program, name, cond=lambda d: True):
    return [t for t, word in enumerate(program.inst)
            if t >= program.compute_start and (d := decode(word))[name] and cond(d)]


def corrupt(program, changes):
    inst = list(program.inst)
    for t, name, value in changes:
        inst[t] = set_field(inst[t], name, value)
    program.inst = inst
    return program


def expect_caught(program, x, w, at: int):
    with pytest.raises(ProgramError) as info:
        check_program(program, x, w)
    msg = str(info.value)
    assert "\n" not in msg
    m = re.match(r"cycle (\d+): ", msg)
    assert m, msg
    assert at <= int(m.group(1)) <= at + 64, msg
    return msg


def middle(cycles):
    return cycles[len(cycles) // 2]


@pytest.mark.parametrize("schedule", ["fast", "classic"])
def test_dropped_load_is_caught(schedule):
    x, w = layer(8, 8, 4, 4)
    program = BUILDERS[schedule](x, w)
    t = middle(cycles_with(program, "load"))
    msg = expect_caught(corrupt(program, [(t, "load", 0)]), x, w, t)
    assert "pmem write" in msg and "expected" in msg


@pytest.mark.parametrize("schedule", ["fast", "classic"])
def test_start_one_cycle_early_is_caught(schedule):
    x, w = layer(8, 8, 4, 4)
    program = BUILDERS[schedule](x, w)
    t = middle(cycles_with(program, "start"))
    expect_caught(corrupt(program, [(t, "start", 0), (t - 1, "start", 1)]), x, w, t - 1)


@pytest.mark.parametrize("schedule", ["fast", "classic", "os"])
def test_dropped_ofifo_read_is_caught(schedule):
    x, w = layer(8, 8, 4, 4)
    program = BUILDERS[schedule](x, w)
    t = middle(cycles_with(program, "ofifo_rd"))
    expect_caught(corrupt(program, [(t, "ofifo_rd", 0)]), x, w, t)


def test_dropped_last_ofifo_read_leaves_the_ofifo_non_empty():
    x, w = layer(8, 8, 4, 4)
    program = P.ws_fast(x, w)
    t = cycles_with(program, "ofifo_rd")[-1]
    with pytest.raises(ProgramError, match=r"entries left in the OFIFO"):
        check_program(corrupt(program, [(t, "ofifo_rd", 0)]), x, w)


@pytest.mark.parametrize("on", [False, True])
def test_flipped_l0_zero_is_caught(on):
    x, w = layer(8, 8, 4, 4)
    program = P.ws_fast(x, w)
    t = middle(cycles_with(program, "l0_wr", lambda d: d["l0_zero"] != on))
    expect_caught(corrupt(program, [(t, "l0_zero", int(on))]), x, w, t)


def test_dropped_execute_is_a_refused_ofifo_read():
    x, w = layer(8, 8, 4, 4)
    program = P.ws_fast(x, w)
    t = middle(cycles_with(program, "execute"))
    msg = expect_caught(corrupt(program, [(t, "execute", 0)]), x, w, t)
    assert "OFIFO_RD while column" in msg


def test_sfp_overflow_is_caught():
    x, w = layer(8, 8, 4, 4)
    program = P.ws_fast(x, w)
    with pytest.raises(ProgramError, match=r"^cycle \d+: SFP bank entry \d+ column \d overflows 9 bits"):
        check_program(program, x, w, acc_bw=9)


@pytest.mark.parametrize("schedule", ["classic", "fast", "os"])
def test_psum_width_overflow_is_not_a_schedule_bug(schedule):
    """A reference whose array sums do not fit psum_bw is refused as such (no cycle named),
    not reported as a wrong psum of the program."""
    x, w = np.full((8, 4, 4), 15), np.full((8, 8, 3, 3), 7)          # psums up to 8 x 105 = 840
    program = BUILDERS[schedule](x, w)
    with pytest.raises(ProgramError) as info:
        check_program(program, x, w, psum_bw=8)
    msg = str(info.value)
    assert msg.startswith("the reference does not fit the hardware psum width (8 bits)"), msg
    assert ("psum[" if schedule != "os" else "os_") in msg and "\n" not in msg
    check_program(program, x, w)                                   # 16 bits: fits, passes


# ---- hand-made programs: FIFO refusals, unknown data ----
def hand_program(tl: Timeline, n: int = 8) -> Program:
    tl.at(len(tl.cycles) + 2)
    inst, data, wdata = tl.words()
    return Program("ws", "test", n, inst, data, compute_start=0, d_wmem=wdata)


def test_l0_pop_of_an_empty_lane():
    tl = Timeline()
    tl.xmem_write(0, 0, 0x12345678)
    tl.xmem_read(1, 0)
    tl.at(2, l0_wr=1)
    tl.at(3, l0_rd=1)
    tl.at(4, l0_rd=1)
    with pytest.raises(ProgramError, match=r"^cycle 4: L0 row 0 pops an empty FIFO \(the L0_RD of cycle 4"):
        check_program(hand_program(tl), None, None)


def test_l0_push_into_a_full_lane_names_the_lane():
    tl = Timeline()
    tl.xmem_write(0, 0, 0x12345678)
    tl.xmem_read(1, 0)
    for t in range(2, 66):          # 64 pushes fill every lane
        tl.at(t, l0_wr=1)
    tl.at(66, l0_wr=1, l0_rd=1)     # row 0 pops now and takes the push; row 1 pops next cycle
    with pytest.raises(ProgramError, match=r"^cycle 66: L0_WR into a full L0 row 1 \(64 entries\)"):
        check_program(hand_program(tl), None, None)


def test_ififo_and_ofifo_refusals():
    tl = Timeline()
    tl.at(3, ififo_rd=1)
    with pytest.raises(ProgramError, match=r"^cycle 3: IFIFO column 0 pops an empty FIFO"):
        check_program(hand_program(tl), None, None)
    tl = Timeline()
    tl.at(5, ofifo_rd=1)
    with pytest.raises(ProgramError, match=r"^cycle 5: OFIFO_RD while column 0 of the OFIFO is empty"):
        check_program(hand_program(tl), None, None)


def test_load2_misuse_is_refused():
    """LOAD2 takes wmem Q's high word into column WCOL2: refused into LOAD's own column, in
    2-bit mode, outside the array, and before wmem Q holds a written entry; a wmem entry
    read and written in one cycle (a block RAM's undefined collision) is refused too."""
    def program_with(**load):
        tl = Timeline()
        tl.wmem_write(0, 3, 0x11111111_22222222)
        tl.xmem_read(1, 3, "wmem")
        tl.at(2, load=1, wsrc=1, wcol=0, **load)
        return hand_program(tl)

    check_program(program_with(load2=1, wcol2=5), None, None, verify=False)       # the legal pair
    for load, message in (({"load2": 1, "wcol2": 0}, "LOAD and LOAD2 both into column 0"),
                          ({"load2": 1, "wcol2": 2, "act2": 1}, r"LOAD2 in 2-bit mode \(ACT2\)"),
                          ({"load2": 1, "wcol2": 8}, "LOAD2 into column 8 of an array of 8 columns")):
        with pytest.raises(ProgramError, match=r"^cycle 2: " + message):
            check_program(program_with(**load), None, None, verify=False)
    tl = Timeline()
    tl.xmem_read(1, 4, "wmem")      # never written
    tl.at(2, load2=1, wcol2=1)
    with pytest.raises(ProgramError, match=r"^cycle 2: LOAD2 takes wmem Q, which is unknown \(wmem\[4\]"):
        check_program(hand_program(tl), None, None, verify=False)
    tl = Timeline()
    tl.wmem_write(1, 9, 1)
    tl.xmem_read(1, 9, "wmem")
    with pytest.raises(ProgramError, match=r"^cycle 1: wmem entry 9 is read and written in one cycle"):
        check_program(hand_program(tl), None, None, verify=False)


def test_words_that_do_not_fit_their_bus_are_refused(tmp_path):
    """D_xmem (row x 4 bits), D_wmem (2 x row x 4) and instruction words out of their range
    are refused, naming the cycle, never masked to fit: the player would move a D_xmem bit
    above 32 into D_wmem ({D_wmem, D_xmem} is one data word)."""
    def program():
        tl = Timeline()
        tl.xmem_write(0, 0, 1)
        tl.wmem_write(1, 0, 1)
        return hand_program(tl)

    check_program(program(), None, None, verify=False)
    cases = (("d_xmem", 0, 1 << 32, r"cycle 0: D_xmem word 0x100000001 does not fit 32 bits"),
             ("d_xmem", 0, -2, r"cycle 0: D_xmem word -0x1 does not fit 32 bits"),
             ("d_wmem", 1, 1 << 64, r"cycle 1: D_wmem entry 0x10000000000000001 does not fit 64 bits"),
             ("d_wmem", 1, -2, r"cycle 1: D_wmem entry -0x1 does not fit 64 bits"),
             ("inst", 2, -1, rf"cycle 2: instruction word -0x1 does not fit {INST_WIDTH} bits"),
             ("inst", 2, 1.0, r"cycle 2: instruction word 1\.0 is not an integer"),
             ("inst", 2, True, r"cycle 2: instruction word True is not an integer"),
             ("d_xmem", 0, np.bool_(True), r"cycle 0: D_xmem word np\.True_ is not an integer"))
    for field, t, value, message in cases:
        p = program()
        words = getattr(p, field)
        words[t] = words[t] + value if isinstance(value, int) and field != "inst" else value
        with pytest.raises(ProgramError, match="^" + message):
            check_program(p, None, None, verify=False)
        with pytest.raises(ModelError, match="^" + message):     # and so do the players' files
            p.save_hex(tmp_path)

    # numpy integers are words like any other: the same files as Python ints
    p = program()
    p.save_hex(tmp_path / "int")
    for field in ("inst", "d_xmem", "d_wmem"):
        setattr(p, field, [np.uint64(w) if w < 1 << 64 else w for w in getattr(p, field)])
    p.save_hex(tmp_path / "numpy")
    for name in ("inst.hex", "dxmem.hex"):
        assert (tmp_path / "numpy" / name).read_bytes() == (tmp_path / "int" / name).read_bytes()


def test_word_lists_of_other_lengths_and_empty_programs_are_refused(tmp_path):
    """One D_xmem word per instruction word and one D_wmem entry each (or none): a shorter
    or longer list is refused in one line naming both lengths, by the checker and by the
    players' files alike (nothing padded or dropped); a program without words is refused
    before any player runs it."""
    def program():
        tl = Timeline()
        tl.xmem_write(0, 0, 1)
        tl.wmem_write(1, 0, 1)
        return hand_program(tl)                # 5 cycles: 2 writes, 3 idle

    assert len(program().inst) == 5
    cases = (("d_wmem", -1, "5 instruction words but 4 D_wmem entries"),
             ("d_wmem", 1, "5 instruction words but 6 D_wmem entries"),
             ("d_xmem", -1, "5 instruction words but 4 D_xmem words"),
             ("d_xmem", 1, "5 instruction words but 6 D_xmem words"))
    for name, change, message in cases:
        p = program()
        words = getattr(p, name)
        setattr(p, name, words[:change] if change < 0 else words + [0] * change)
        with pytest.raises(ProgramError, match=f"^program has {message}$"):
            check_program(p, None, None, verify=False)
        with pytest.raises(ModelError, match=f"^program has {message}$"):
            p.save_hex(tmp_path)
    p = program()
    p.d_wmem = []                              # no D_wmem entries: none written, a valid program
    p.save_hex(tmp_path)
    as_lists = (tmp_path / "inst.hex").read_text(), (tmp_path / "dxmem.hex").read_text()
    p.inst, p.d_xmem = np.array(p.inst, dtype=object), np.array(p.d_xmem, dtype=np.int64)   # arrays: the same files
    p.save_hex(tmp_path)
    assert ((tmp_path / "inst.hex").read_text(), (tmp_path / "dxmem.hex").read_text()) == as_lists
    with pytest.raises(ModelError, match="^program has no instruction words: nothing to play$"):
        Program("ws", "test", 8, [], [], compute_start=0).save_hex(tmp_path)


def test_sram_q_is_unknown_until_the_program_reads():
    """xmem / wmem / pmem Q survive reset and flush (rtl/sram.v, sram_1r1w.v): a LOAD (or an
    ACC from pmem) that takes Q before the program's first read would use what an earlier
    program read."""
    for mem, fields in (("xmem", {"load": 1, "wcol": 0}), ("wmem", {"load": 1, "wcol": 0, "wsrc": 1}),
                        ("wmem", {"load2": 1, "wcol2": 1})):
        tl = Timeline()
        tl.at(2, **fields)
        with pytest.raises(ProgramError, match=rf"^cycle 2: LOAD2? takes {mem} Q before this program read {mem}"):
            check_program(hand_program(tl), None, None, verify=False)
    tl = Timeline()                 # the SFP accumulating pmem Q (acc_src 0)
    tl.at(2, acc=1, acc_first=1, emit=1)
    with pytest.raises(ProgramError, match=r"^cycle 2: ACC from pmem Q before this program read pmem"):
        check_program(hand_program(tl), None, None, verify=False)


def test_unknown_data_is_caught():
    tl = Timeline()
    tl.xmem_read(1, 7)              # never written
    tl.at(2, load=1, wcol=3)
    with pytest.raises(ProgramError, match=r"^cycle 2: LOAD takes xmem Q, which is unknown \(xmem\[7\]"):
        check_program(hand_program(tl), None, None)
    tl = Timeline()                 # wmem: WSRC takes its Q, which a read of xmem does not set
    tl.wmem_write(0, 7, 5)
    tl.xmem_read(1, 7)
    tl.xmem_read(1, 6, "wmem")      # never written
    tl.at(2, ififo_wr=1, wsrc=1)
    with pytest.raises(ProgramError, match=r"^cycle 2: IFIFO_WR takes wmem Q, which is unknown \(wmem\[6\]"):
        check_program(hand_program(tl), None, None)
    tl = Timeline()
    tl.at(4, emit=1, acc_addr=5)
    with pytest.raises(ProgramError, match=r"^cycle 4: SFP bank entry 5 is used before an ACC_FIRST"):
        check_program(hand_program(tl), None, None)


# ---- refusals: one-line LayerErrors ----
def one_line_refusal(builder, x, w, pattern):
    with pytest.raises(LayerError, match=pattern) as info:
        builder(x, w)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("schedule", ["classic", "fast", "os"])
def test_refusals(schedule):
    b = BUILDERS[schedule]
    x, _ = layer(8, 8, 8, 8)
    one_line_refusal(b, x, np.zeros((8, 8, 5, 5), int), r"kernel 5x5 not supported")
    one_line_refusal(b, np.zeros((8, 33, 33), int), np.zeros((8, 8, 3, 3), int),
                     r"feature map 33x33 not supported: H and W must be <= 32")
    one_line_refusal(b, np.zeros((8, 8), int), np.zeros((8, 8, 3, 3), int), r"x_int must be 3-D \[IC, H, W\]")
    one_line_refusal(b, x, np.zeros((8, 8, 9), int), r"w_int must be 4-D \[OC, IC, 3, 3\]")
    one_line_refusal(b, x, np.zeros((8, 4, 3, 3), int), r"w_int has 4 input channels but x_int has 8")


@pytest.mark.parametrize("schedule", ["classic", "fast", "os"])
def test_values_outside_the_lanes_are_refused(schedule):
    """What does not fit a 4-bit lane is refused, never masked into the program words."""
    b = BUILDERS[schedule]
    with pytest.raises(ModelError, match=r"^x_int value 16 at \[ic=0, h=0, w=0\] is outside 0..15"):
        b(np.full((8, 2, 2), 16), np.full((8, 8, 3, 3), 7))
    with pytest.raises(ModelError, match=r"^w_int value 8 at .* is outside -7..7"):
        b(np.full((8, 2, 2), 15), np.full((8, 8, 3, 3), 8))
    with pytest.raises(ModelError, match=r"^w_int value -8 .* is outside -7..7"):
        b(np.full((8, 2, 2), 15), np.full((8, 8, 3, 3), -8))
    with pytest.raises(ModelError, match=r"^x_int value -1 "):
        b(np.full((8, 2, 2), -1), np.full((8, 8, 3, 3), 7))
    with pytest.raises(ModelError, match=r"x_int must hold integers, got 1.5"):
        b(np.full((8, 2, 2), 1.5), np.full((8, 8, 3, 3), 7))


@pytest.mark.parametrize("builder, argument, reach, too_far", [
    (P.ws_classic, "array_size", ">= 1", 0),
    (P.os_program, "array_size", ">= 1", -1),
    (P.os_program, "fifo_depth", ">= 1", 0),
    (P.ws_fast, "l0_depth", ">= 1", 0),
    (P.ws_fast_2bit, "l0_depth", ">= 1", -1),
    (P.ws_fast, "sfp_depth", "in 1..8192", 8193),      # the ACC_ADDR field's reach
    (P.ws_fast, "abuf_depth", "in 0..64", 65),         # the ABUF fields' reach
    ("layer_program", "array_size", ">= 1", 0),
], ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_integer_arguments_are_checked(builder, argument, reach, too_far):
    """A program builder's integer argument that is a float (an integral one included), a
    bool or out of range is refused in one line naming it (tiling.check_int): ws_fast built
    a program with l0_depth=11.5, and array_size=0 failed layer_program with ZeroDivisionError."""
    if builder == "layer_program":
        from model.program.network import layer_program as builder
    x, w = np.ones((8, 2, 2), int), np.ones((8, 8, 3, 3), int)
    for value in (11.5, 8.0, True, too_far):
        with pytest.raises(ModelError, match=rf"^{argument} must be an integer {reach}, got {re.escape(repr(value))}$"):
            builder(x, w, **{argument: value})


def test_pack_lanes_refuses_what_does_not_fit():
    assert pack_lanes([1, 15, 0, 7], 4, signed=False) == 0x70F1
    assert pack_lanes([-1, 7, -8], 4, signed=True) == 0x87F
    assert pack_lanes([15, -8, -1], 4) == 0xF8F                  # default: raw or two's complement
    assert pack_lanes([-32768, 65535], 16) == 0xFFFF8000
    for values, bits, signed, shown, rng in [([3, 16], 4, False, "lane 1 value 16", "0..15"),
                                             ([-1], 4, False, "lane 0 value -1", "0..15"),
                                             ([8], 4, True, "lane 0 value 8", "-8..7"),
                                             ([0, 0, -9], 4, True, "lane 2 value -9", "-8..7"),
                                             ([16], 4, None, "lane 0 value 16", "-8..15"),
                                             ([-9], 4, None, "lane 0 value -9", "-8..15")]:
        with pytest.raises(ModelError) as info:
            pack_lanes(values, bits, signed)
        msg = str(info.value)
        assert msg.startswith(shown) and f"{bits}-bit" in msg and f"({rng})" in msg, msg


def test_geometry_uses_the_tiling_layout():
    geo = geometry(*layer(24, 16, 5, 7))
    assert (geo.n_ic_tiles, geo.n_oc_tiles, geo.n_nij, geo.n_onij) == (3, 2, 7 * 9, 35)
    for o_nij in range(geo.n_onij):
        for kij in range(9):
            oi, oj = divmod(o_nij, 7)
            assert geo.input_nij(o_nij, kij) == (oi + kij // 3) * 9 + oj + kij % 3
    assert memory_map.psum_addr(geo, 1, 2, 4, 17) == psum_address(4, 17, 63, ict=2, oct=1, n_ict=3) \
        == ((1 * 3 + 2) * 9 + 4) * 63 + 17


def test_fast_refuses_a_layer_whose_sums_do_not_fit_the_sfp_bank():
    one_line_refusal(P.ws_fast, np.zeros((1, 32, 32), int), np.zeros((72, 1, 3, 3), int),
                     r"9216 output vectors do not fit the SFP bank")


def test_fast_refuses_an_l0_too_shallow_for_its_schedule():
    """ws_fast needs n + 3 L0 entries a lane (check_l0_depth), and its refusal says why: with
    fewer it looped for ever (n + 1) or, on a paired layer, failed its own assertion (n + 2;
    other layers built slower programs). A paired layer read
    straight from xmem Q (a map larger than the activation buffer) whose activations come
    too late for its fixed start cycles is refused in one line too (an assertion before);
    a deeper L0 runs it, checked cycle by cycle."""
    x, w = layer(8, 8, 2, 2)                       # 4 positions for 8 rows: paired
    assert paired_period(geometry(x, w)) == 4
    one_line_refusal(lambda a, b: P.ws_fast(a, b, l0_depth=10), x, w,
                     r"^layer 8->8 2x2 cannot run: the fast schedule needs an L0 of at least 11 entries on the "
                     r"8x8 array \(n \+ 1 never pushes, n \+ 2 loses its one vector a cycle and fails paired "
                     r"layers\), l0_depth is 10$")
    build_and_check("fast", x, w, l0_depth=11)
    one_line_refusal(lambda a, b: P.ws_fast(a, b, l0_depth=11, abuf_depth=0), x, w,
                     r"^layer 8->8 2x2 cannot run: paired weight set 1 is due to start in cycle \d+, its "
                     r"activations reach the L0 for cycle \d+ \(a map larger than the activation buffer needs "
                     r"a deeper L0\)$")
    program = P.ws_fast(x, w, l0_depth=13, abuf_depth=0)
    check_program(program, x, w, fifo_depth=13, abuf_depth=0)


def test_classic_refuses_what_does_not_fit_pmem():
    one_line_refusal(P.ws_classic, *layer(16, 16, 8, 8), r"3600 psum vectors do not fit pmem")


# ---- SCALE-Sim analytic figures (model.program.scalesim_cycles, used by tb/bench.py) ----
def test_scalesim_formula():
    """341 / 171 (8->8 4x4, WS / OS) and 602,495 (64->64 32x32, WS) are the SCALE-Sim v2
    figures published in the project's design brief (quoted in the README): the formula is
    checked against those published values, not against itself."""
    assert P.scalesim_cycles(8, 8, 4, 4, "ws") == 341
    assert P.scalesim_cycles(8, 8, 4, 4, "os") == 171
    assert P.scalesim_cycles(64, 64, 32, 32, "ws") == 602495
    with pytest.raises(ModelError, match="dataflow must be ws or os"):
        P.scalesim_cycles(8, 8, 4, 4, "rs")


def test_useful_macs():
    assert P.useful_macs(8, 8, 4, 4) == 9216 == 144 * 64           # README: 9,216 MACs, 144 ideal cycles
    x, w = layer(3, 11, 5, 6)
    program = P.ws_fast(x, w)
    assert P.reference_results(program, x, w).useful_macs == P.useful_macs(3, 11, 5, 6) == 3 * 11 * 9 * 30


# ---- the 2-bit mode (a_bit=2): 16 input channels per ic tile, two products per PE ----
def layer2(ic, oc, h, w, seed=0):
    return random_layer(np.random.default_rng([ic, oc, h, w, seed, 2]), ic, oc, h, w, a_bit=2)


@pytest.mark.parametrize("shape", [(16, 16, 4, 4), (8, 8, 4, 4), (3, 8, 4, 4), (40, 24, 5, 5), (17, 9, 3, 6),
                                   (16, 16, 8, 8), (48, 64, 4, 4)])
def test_2bit_builder_passes_the_cycle_check(shape):
    program, report = build_and_check("fast2", *layer2(*shape))
    assert program.a_bit == 2
    assert report.executes == -(-shape[0] // 16) * -(-shape[1] // 8) * 9 * shape[2] * shape[3]


def test_2bit_on_a_4x4_array():
    build_and_check("fast2", *layer2(16, 8, 4, 4), array_size=4)


def test_2bit_16_to_16_4x4_cycles():
    """The bench's 2-bit row: 36,864 MACs, 288 cycles at 128 MACs per cycle; the wmem port
    needs 288 LOADs (16 per weight set of 16 positions), so with the activations on the
    xmem port the array is the bound: the first set starts in cycle 6 (its last LOAD, the
    16th, in cycle 16, is due when the start token reaches row 4 of column 7), 288 vectors
    back to back, the OFIFO latency (16) and the SFP's cycles (3): 312."""
    program, _ = build_and_check("fast2", *layer2(16, 16, 4, 4))
    assert program.cycles <= 6 + 288 - 1 + 16 + sfp_cycles(program), program.cycles


def test_2bit_refusals():
    x, w = layer2(16, 8, 4, 4)
    bad = x.copy()
    bad[3, 0, 2] = 5
    with pytest.raises(ModelError, match=r"^x_int value 5 at \[ic=3, h=0, w=2\] is outside 0\.\.3 \(2-bit unsigned\);"):
        P.ws_fast_2bit(bad, w)
    with pytest.raises(LayerError, match=r"^2-bit mode needs an even array size .* this array is 16x16$"):
        P.ws_fast_2bit(x, w, array_size=16)
    # only the widths the array runs (4, and 2 in its 2-bit mode): no program labelled a_bit 3
    for a_bit in (1, 3, 8):
        with pytest.raises(LayerError, match=rf"^a_bit {a_bit} not supported: the array runs a_bit 4 \(or 2, "):
            P.ws_fast(x % 2, w, a_bit=a_bit)


def test_2bit_load_into_a_missing_column_is_caught():
    x, w = layer2(16, 8, 4, 4)
    program = P.ws_fast_2bit(x, w)
    inst = list(program.inst)
    k = next(i for i, word in enumerate(inst) if decode(word)["load"] and decode(word)["wcol"] >= 8)
    inst[k] &= ~(1 << FIELDS["act2"][0])           # the upper-rows LOAD read as a 4-bit one
    with pytest.raises(ProgramError, match=rf"^cycle {k}: LOAD into column \d+ of an array of 8 columns"):
        check_program(Program(**{**program.__dict__, "inst": inst}), x, w)
