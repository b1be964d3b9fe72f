"""Instruction programs: a conv layer, cycle by cycle, for the core (rtl/core.v).

A program is one instruction word (and one D_xmem word) per cycle, plus what the
checker needs to name each result: the key of every pmem write and of every SFP output
(see Program). The field layout comes from rtl/core_inst.vh, the single definition
shared with the RTL. Three schedules: ws_classic, ws_fast, os_program.

Classic memory map (a contract with the classic files and testbench):
  xmem[ict * n_nij + nij]                         activation word: lane r = a_pad[ict*8 + r, nij]
  xmem[1024 + ((oct * n_ict + ict) * 9 + kij) * 8 + c]
                                                  weight word: lane r = w[oct*8 + c, ict*8 + r, kij]
  pmem[((oct * n_ict + ict) * 9 + kij) * n_nij + nij]
                                                  psum vector of that nij (lane c = column c)
For one tile: activations at 0..35, weights at 1024 + kij*8 + c, psum(kij, nij) at
kij*36 + nij (acc_address.txt). ws_fast keeps only the interior words of each pass
(plan_passes), os_program its own operand words (see their docstrings).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from model.errors import LayerError, ModelError, PsumOverflowError
from model.hwconfig import CONFIG
from model.tiling import (A_BIT, W_BIT, _check_bits, check_layer, field_range, os_operands,
                          os_reference, output_to_input_nij, padded_operands, psum_address,
                          ws_reference)

WEIGHT_BASE = CONFIG.weight_base
XMEM_DEPTH = CONFIG.xmem_depth
PMEM_DEPTH = CONFIG.pmem_depth
KIJ = 9
#: bits per lane of an xmem word (activation and weight lanes alike)
LANE_BITS = CONFIG.lane_bits
if not A_BIT == W_BIT == LANE_BITS:
    raise ModelError(f"rtl/core_inst.vh CORE_BW={LANE_BITS} but the model quantizes to "
                     f"{A_BIT}-bit activations and {W_BIT}-bit weights")

FIELDS, INST_WIDTH = CONFIG.isa.fields, CONFIG.isa.width
encode = CONFIG.isa.encode
decode = CONFIG.isa.decode


def ofifo_latency(array_size: int) -> int:
    """hwconfig.CoreConfig.ofifo_latency of an array_size x array_size core."""
    return CONFIG.with_array(array_size).ofifo_latency


def pack_lanes(values, bits: int, signed: bool | None = None) -> int:
    """Lane i holds values[i] (lane 0 in the low bits), negative values in two's complement.

    A value that does not fit its lane raises ModelError (nothing is masked silently):
    signed=False accepts 0..2**bits-1, signed=True -2**(bits-1)..2**(bits-1)-1, and the
    default (None) either, -2**(bits-1)..2**bits-1, for benches that drive raw lane
    values as well as two's complement ones."""
    if signed is None:
        lo, hi = field_range(bits, True)[0], field_range(bits, False)[1]
        kind = f"{bits}-bit"
    else:
        lo, hi = field_range(bits, signed)
        kind = f"{bits}-bit {'signed' if signed else 'unsigned'}"
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        v = int(v)
        if not lo <= v <= hi:
            raise ModelError(f"lane {i} value {v} does not fit a {kind} lane ({lo}..{hi})")
        word |= (v & mask) << (i * bits)
    return word


class Timeline:
    """Instruction fields by cycle; two activities may share a cycle but not a field."""

    def __init__(self):
        self.cycles: list[dict[str, int]] = []
        self.d_xmem: dict[int, int] = {}

    def at(self, t: int, **fields: int) -> None:
        while len(self.cycles) <= t:
            self.cycles.append({})
        cycle = self.cycles[t]
        for name, value in fields.items():
            if name in cycle and cycle[name] != value:
                raise AssertionError(f"cycle {t}: field {name} set to {cycle[name]} and {value}")
            cycle[name] = int(value)

    def busy(self, t: int, name: str) -> bool:
        return t < len(self.cycles) and name in self.cycles[t]

    def xmem_write(self, t: int, addr: int, data: int) -> None:
        self.at(t, cen_xmem=0, wen_xmem=0, a_xmem=addr)
        self.d_xmem[t] = data

    def xmem_read(self, t: int, addr: int) -> None:
        self.at(t, cen_xmem=0, wen_xmem=1, a_xmem=addr)

    def words(self) -> tuple[list[int], list[int]]:
        inst = [encode(c) for c in self.cycles]
        data = [self.d_xmem.get(t, 0) for t in range(len(self.cycles))]
        return inst, data


@dataclass
class Program:
    """One layer on the core. Cycle indices count from the first instruction.

    Keys name what each pmem write / SFP output holds. Weight-stationary: psum writes
    (ict, oct, kij, nij), outputs (oct, o_nij). Output-stationary: both (group, oct, row)
    for output pixel group * array_size + row."""

    dataflow: str
    schedule: str
    array_size: int
    inst: list[int]
    d_xmem: list[int]
    compute_start: int                 # where the measurement starts: after the xmem
                                       # preload, or 0 when the layer runs in passes
    psum_writes: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # (pmem addr, key)
    emits: list[tuple[int, ...]] = field(default_factory=list)                     # keys
    executes: int = 0                  # activation vectors sent into the array
    last_emit: int = 0                 # cycle in which the last output is on sfp_out

    @property
    def cycles(self) -> int:
        """Cycles from compute_start to the last output on sfp_out."""
        return self.last_emit - self.compute_start

    def save_hex(self, folder: Path) -> tuple[Path, Path]:
        """inst.hex / dxmem.hex: one word per line, for the pure-Verilog player."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        digits = (INST_WIDTH + 3) // 4
        data_digits = (CONFIG.with_array(self.array_size).xmem_word_bits + 3) // 4
        inst_path, data_path = folder / "inst.hex", folder / "dxmem.hex"
        inst_path.write_text("".join(f"{w:0{digits}x}\n" for w in self.inst))
        data_path.write_text("".join(f"{w:0{data_digits}x}\n" for w in self.d_xmem))
        return inst_path, data_path


@dataclass
class LayerGeometry:
    """Tiling of one 3x3 / stride 1 / padding 1 conv layer onto an array."""

    ic: int
    oc: int
    h: int
    w: int
    array_size: int = CONFIG.row

    @property
    def n_ict(self) -> int:
        return -(-self.ic // self.array_size)

    @property
    def n_oct(self) -> int:
        return -(-self.oc // self.array_size)

    @property
    def wp(self) -> int:
        return self.w + 2

    @property
    def n_nij(self) -> int:
        return (self.h + 2) * (self.w + 2)

    @property
    def n_onij(self) -> int:
        return self.h * self.w

    @cached_property
    def nij_table(self) -> np.ndarray:
        """int64 [9, Ho*Wo]: model.tiling.output_to_input_nij of this layer."""
        return output_to_input_nij(self.h, self.w)

    def input_nij(self, o_nij: int, kij: int) -> int:
        """Index in the padded map of the input under output pixel o_nij at offset kij."""
        return int(self.nij_table[kij, o_nij])

    def act_addr(self, ict: int, nij: int) -> int:
        return ict * self.n_nij + nij

    def weight_addr(self, oct: int, ict: int, kij: int, c: int) -> int:
        return WEIGHT_BASE + ((oct * self.n_ict + ict) * KIJ + kij) * self.array_size + c

    def psum_addr(self, oct: int, ict: int, kij: int, nij: int) -> int:
        """pmem address of a psum vector: model.tiling.psum_address (the one layout)."""
        return psum_address(kij, nij, self.n_nij, ict, oct, self.n_ict)


def _layer(x_int, w_int, array_size: int) -> tuple[LayerGeometry, np.ndarray, np.ndarray]:
    """Validate the layer (model.tiling.check_layer: shapes, value ranges, at most
    MAX_HW x MAX_HW) and return its geometry and int64 x_int, w_int."""
    n = _check_bits(array_size, "array_size")
    CONFIG.with_array(n)               # refuses a size the core cannot be built with
    x, w = check_layer(x_int, w_int)
    return LayerGeometry(x.shape[0], w.shape[0], x.shape[1], x.shape[2], n), x, w


def geometry(x_int, w_int, array_size: int = CONFIG.row) -> LayerGeometry:
    """The tiling of a layer the array can run; refuses (LayerError / ModelError, one line)
    what model.tiling.check_layer refuses."""
    return _layer(x_int, w_int, array_size)[0]


def useful_macs(ic: int, oc: int, ho: int, wo: int) -> int:
    """Multiply-accumulates a 3x3 layer needs (no padding channels or padding pixels)."""
    return ic * oc * KIJ * ho * wo


def scalesim_cycles(ic: int, oc: int, h: int, w: int, dataflow: str, n: int = CONFIG.row) -> int:
    """SCALE-Sim v2's analytic runtime of a 3x3, stride 1, padding 1 layer on an n x n array
    (its paper's equations): WS ceil(9IC/n) * ceil(OC/n) * (2n + n + Ho*Wo - 2) - 1,
    OS ceil(Ho*Wo/n) * ceil(OC/n) * (n + n + 9IC - 2) - 1."""
    pixels, window = h * w, KIJ * ic
    if dataflow == "ws":
        return math.ceil(window / n) * math.ceil(oc / n) * (2 * n + n + pixels - 2) - 1
    if dataflow == "os":
        return math.ceil(pixels / n) * math.ceil(oc / n) * (n + n + window - 2) - 1
    raise ModelError(f"dataflow must be ws or os, got {dataflow!r}")


def _preload_xmem(tl: Timeline, geo: LayerGeometry, a_pad: np.ndarray, w: np.ndarray) -> int:
    """Write every activation and weight word into xmem; returns the next free cycle."""
    n = geo.array_size
    words = []
    for ict in range(geo.n_ict):
        for nij in range(geo.n_nij):
            words.append((geo.act_addr(ict, nij),
                          pack_lanes(a_pad[ict * n:(ict + 1) * n, nij], LANE_BITS, signed=False)))
    for oct in range(geo.n_oct):
        for ict in range(geo.n_ict):
            for kij in range(KIJ):
                for c in range(n):
                    lanes = w[oct * n + c, ict * n:(ict + 1) * n, kij]
                    words.append((geo.weight_addr(oct, ict, kij, c), pack_lanes(lanes, LANE_BITS, signed=True)))
    tl.at(0, flush=1)  # a clean datapath, whatever the previous program left in flight
    for t, (addr, data) in enumerate(words):
        tl.xmem_write(t, addr, data)
    return len(words)


def _check_fits(geo: LayerGeometry, pmem_words: int) -> None:
    act_words = geo.n_ict * geo.n_nij
    weight_words = geo.n_oct * geo.n_ict * KIJ * geo.array_size
    if act_words > WEIGHT_BASE:
        raise LayerError(f"layer {geo.ic}->{geo.oc} {geo.h}x{geo.w}: {act_words} activation words "
                         f"do not fit xmem[0:{WEIGHT_BASE}]")
    if weight_words > XMEM_DEPTH - WEIGHT_BASE:
        raise LayerError(f"layer {geo.ic}->{geo.oc} {geo.h}x{geo.w}: {weight_words} weight words "
                         f"do not fit xmem[{WEIGHT_BASE}:{XMEM_DEPTH}]")
    if pmem_words > PMEM_DEPTH:
        raise LayerError(f"layer {geo.ic}->{geo.oc} {geo.h}x{geo.w}: {pmem_words} psum vectors "
                         f"do not fit pmem ({PMEM_DEPTH} words)")


def ws_classic(x_int: np.ndarray, w_int: np.ndarray, array_size: int = CONFIG.row) -> Program:
    """The notebooks' weight-stationary schedule: per (tile, kij) load the weights, stream
    all n_nij padded positions, store every psum vector in pmem; then a separate pass reads
    the psums of each output pixel back (acc_address order) and the SFP accumulates them
    and applies ReLU."""
    geo, x, w = _layer(x_int, w_int, array_size)
    n = geo.array_size
    _check_fits(geo, geo.n_oct * geo.n_ict * KIJ * geo.n_nij)
    a_pad, w = padded_operands(x, w, n)
    tl = Timeline()
    t = _preload_xmem(tl, geo, a_pad, w)
    program = Program("ws", "classic", n, [], [], compute_start=t)
    last_write = t
    for oct in range(geo.n_oct):
        for ict in range(geo.n_ict):
            for kij in range(KIJ):
                # Stage the 8 columns (xmem read, then LOAD the word next cycle).
                for c in range(n):
                    tl.xmem_read(t + c, geo.weight_addr(oct, ict, kij, c))
                    tl.at(t + c + 1, load=1, wcol=c)
                t += n
                for nij in range(geo.n_nij):
                    tl.xmem_read(t + nij, geo.act_addr(ict, nij))
                    tl.at(t + nij + 1, l0_wr=1)
                    execute = t + nij + 2
                    tl.at(execute, l0_rd=1, execute=1, start=int(nij == 0))
                    pop = execute + ofifo_latency(n)
                    addr = geo.psum_addr(oct, ict, kij, nij)
                    tl.at(pop, ofifo_rd=1, cen_pmem=0, wen_pmem=0, a_pmem=addr)
                    program.psum_writes.append((addr, (ict, oct, kij, nij)))
                    program.executes += 1
                    last_write = pop
                t += geo.n_nij
    # Accumulation pass: one pmem read per (ict, kij) of each output pixel.
    t = last_write + 1
    for oct in range(geo.n_oct):
        for o_nij in range(geo.n_onij):
            reads = [(ict, kij) for ict in range(geo.n_ict) for kij in range(KIJ)]
            nijs = geo.nij_table[:, o_nij].tolist()
            for i, (ict, kij) in enumerate(reads):
                addr = geo.psum_addr(oct, ict, kij, nijs[kij])
                last = i == len(reads) - 1
                tl.at(t, cen_pmem=0, wen_pmem=1, a_pmem=addr, acc=1, acc_src=0,
                      acc_first=int(i == 0), emit=int(last), relu=int(last), acc_addr=0)
                t += 1
            program.emits.append((oct, o_nij))
    program.last_emit = t + 1          # the emit at t-1 is on sfp_out during t+1
    tl.at(program.last_emit + 1)       # a few idle cycles so the player sees the last output
    program.inst, program.d_xmem = tl.words()
    return program


@dataclass
class _Position:
    """One activation vector of the fast schedule, in the order the array takes them."""

    tile: int               # index of the (pass, oct, ict, kij) weight tile
    oct: int
    ict: int
    kij: int
    o_nij: int
    nij: int
    word: tuple | None      # (visit, nij) of the activation word; None for padding (zeros)


class _ActivationSource:
    """Where the L0 gets each non-padding activation word from, cycle by cycle.

    With reuse (the input map of one ic tile fits the activation buffer) each word is read
    from xmem once per (oc tile, ic tile) visit into its buffer entry, then pushed from
    there for every kij; consecutive visits use the two halves of the buffer when they
    fit. Without reuse each push takes the word straight from xmem Q, which holds the
    last word read until the next read.
    """

    def __init__(self, geo: LayerGeometry, positions: list[_Position], abuf_depth: int):
        self.geo = geo
        self.reuse = geo.n_onij <= abuf_depth
        self.halves = self.reuse and 2 * geo.n_onij <= abuf_depth
        self.uses: dict[tuple, int] = {}
        self.order: list[tuple] = []           # words in order of first use
        for pos in positions:
            if pos.word is not None:
                if pos.word not in self.uses:
                    self.order.append(pos.word)
                    self.uses[pos.word] = 0
                self.uses[pos.word] += 1
        self.requested: dict[tuple, int] = {}  # reuse: word -> cycle of its xmem read
        self.owner: dict[int, tuple] = {}      # reuse: buffer entry -> word in it
        self.next_fetch = 0
        self.on_q: tuple | None = None         # direct: word on xmem Q, and since when
        self.on_q_since = 0

    def interior_index(self, nij: int) -> int:
        y, x = divmod(nij, self.geo.wp)
        return (y - 1) * self.geo.w + (x - 1)

    def slot(self, word: tuple) -> int:
        visit, nij = word
        return self.interior_index(nij) + ((visit % 2) * self.geo.n_onij if self.halves else 0)

    def ready(self, word: tuple, t: int) -> bool:
        """Can the word be pushed into the L0 at cycle t?"""
        if self.reuse:
            read = self.requested.get(word)
            return read is not None and read + 2 <= t
        return self.on_q == word and self.on_q_since < t

    def needs_fetch(self, word: tuple) -> bool:
        return word not in self.requested if self.reuse else self.on_q != word

    def pushed(self, word: tuple) -> None:
        self.uses[word] -= 1

    def other_read(self) -> None:
        """xmem Q now holds something else (a weight)."""
        self.on_q = None

    def fetch(self, tl: Timeline, t: int, word: tuple, addr: int) -> bool:
        """Issue the xmem read of `word` at t (reuse: if its buffer entry is free)."""
        if self.reuse:
            slot = self.slot(word)
            holder = self.owner.get(slot)
            if holder is not None and holder != word and self.uses[holder] > 0:
                return False
            self.owner[slot] = word
            tl.at(t + 1, abuf_wr=1, abuf_waddr=slot)
            self.requested[word] = t
        else:
            self.on_q, self.on_q_since = word, t
        tl.xmem_read(t, addr)
        return True


def plan_passes(geo: LayerGeometry) -> list[tuple[list[int], list[int]]]:
    """Split the layer into passes (oc tiles, ic tiles) whose operands fit xmem at once:
    the interior activation words of the ic tiles in xmem[0:1024], the weights of those
    (oc tile, ic tile) pairs in xmem[1024:2048]. Oc-tile groups are as large as the weight
    half allows, so each ic tile's activations are loaded once per group."""
    act_words = geo.n_onij
    tile_weights = KIJ * geo.array_size
    half = XMEM_DEPTH - WEIGHT_BASE
    if act_words > WEIGHT_BASE:
        raise LayerError(f"layer {geo.ic}->{geo.oc} {geo.h}x{geo.w} cannot run: one ic tile needs "
                         f"{act_words} activation words, xmem holds {WEIGHT_BASE}")
    oct_group = min(geo.n_oct, half // tile_weights)
    ict_group = min(geo.n_ict, WEIGHT_BASE // act_words, half // (oct_group * tile_weights))
    octs = [list(range(i, min(i + oct_group, geo.n_oct))) for i in range(0, geo.n_oct, oct_group)]
    icts = [list(range(i, min(i + ict_group, geo.n_ict))) for i in range(0, geo.n_ict, ict_group)]
    return [(og, ig) for og in octs for ig in icts]


# ws_fast without the activation buffer: how many positions past the L0 write pointer the
# xmem port looks for the next word to read (a run of padding zeros needs no read).
_DIRECT_LOOKAHEAD = 8


def ws_fast(x_int: np.ndarray, w_int: np.ndarray, array_size: int = CONFIG.row,
            l0_depth: int = CONFIG.fifo_depth, sfp_depth: int = CONFIG.sfp_depth,
            abuf_depth: int = CONFIG.abuf_depth) -> Program:
    """Weight-stationary, streaming only the output-aligned positions of each kij.

    - Per (oc tile, ic tile, kij) only the Ho*Wo positions that feed an output enter the
      array; padding positions are pushed into the L0 as zeros (L0_ZERO), costing no
      xmem read. xmem holds interior words only.
    - Activation words are read from xmem once per (oc tile, ic tile) into the activation
      buffer and pushed from there for every kij (when the map fits the buffer), so the
      single xmem port is free to stage weights.
    - The next tile's weights are staged column by column while the current tile
      computes: column c may be overwritten once the current tile's start token has
      passed PE(row-1, c), and must be staged before the next start reaches PE(0, c).
    - Psums are accumulated on the fly in the SFP bank (entry oct * Ho*Wo + o_nij) as
      they leave the OFIFO, across kij and ic tiles, and are also written to pmem so they
      can be checked; the last contribution emits the ReLU output.
    - A layer whose operands do not fit xmem runs in passes of (oc-tile group, ic-tile
      group) (plan_passes); the next pass's words are written once the current pass has
      read its last word.
      Single-pass programs are measured from 'data in xmem'; multi-pass programs from
      cycle 0, every load included.
    The builder simulates the xmem port, the L0 write port and the array cycle by cycle.
    """
    geo, x, w = _layer(x_int, w_int, array_size)
    n = geo.array_size
    if geo.n_oct * geo.n_onij > sfp_depth:
        raise LayerError(f"layer {geo.ic}->{geo.oc} {geo.h}x{geo.w} cannot run: {geo.n_oct * geo.n_onij} "
                         f"output vectors do not fit the SFP bank ({sfp_depth} entries)")
    passes = plan_passes(geo)
    a_pad, w = padded_operands(x, w, n)
    whole_layer_in_pmem = geo.n_oct * geo.n_ict * KIJ * geo.n_nij <= PMEM_DEPTH
    hp, wp = geo.h + 2, geo.w + 2

    tiles, positions, pass_of_tile = [], [], []
    for p, (octs, icts) in enumerate(passes):
        for oct in octs:
            for ict in icts:
                visit = oct * geo.n_ict + ict
                for kij in range(KIJ):
                    g = len(tiles)
                    tiles.append((oct, ict, kij))
                    pass_of_tile.append(p)
                    for o_nij, nij in enumerate(geo.nij_table[kij].tolist()):
                        py, px = divmod(nij, wp)
                        padding = py in (0, hp - 1) or px in (0, wp - 1)
                        positions.append(_Position(g, oct, ict, kij, o_nij, nij,
                                                   None if padding else (visit, nij)))
    source = _ActivationSource(geo, positions, abuf_depth)
    pass_of_visit = {oct * geo.n_ict + ict: p for p, (octs, icts) in enumerate(passes)
                     for oct in octs for ict in icts}

    ict_slot = {ict: icts.index(ict) for _, icts in passes for ict in icts}
    oct_slot = {oct: octs.index(oct) for octs, _ in passes for oct in octs}
    group_size = len(passes[0][1])

    def word_addr(word):
        visit, nij = word
        return ict_slot[visit % geo.n_ict] * geo.n_onij + source.interior_index(nij)

    def weight_addr(oct, ict, kij, c):
        return WEIGHT_BASE + ((oct_slot[oct] * group_size + ict_slot[ict]) * KIJ + kij) * n + c

    def pass_words(octs, icts):
        words = []
        for ict in icts:
            for py in range(1, hp - 1):
                for px in range(1, wp - 1):
                    nij = py * wp + px
                    words.append((word_addr((ict, nij)),
                                  pack_lanes(a_pad[ict * n:(ict + 1) * n, nij], LANE_BITS, signed=False)))
        for oct in octs:
            for ict in icts:
                for kij in range(KIJ):
                    for c in range(n):
                        lanes = w[oct * n + c, ict * n:(ict + 1) * n, kij]
                        words.append((weight_addr(oct, ict, kij, c), pack_lanes(lanes, LANE_BITS, signed=True)))
        return words

    tl = Timeline()
    tl.at(0, flush=1)   # a clean datapath, whatever the previous program left in flight
    first = pass_words(*passes[0])
    for t, (addr, data) in enumerate(first):
        tl.xmem_write(t, addr, data)
    start = len(first)
    program = Program("ws", "fast", n, [], [], compute_start=start if len(passes) == 1 else 0)

    # the last position and weight tile of each pass, to know when its xmem words are dead
    last_position = {pass_of_tile[pos.tile]: i for i, pos in enumerate(positions) if pos.word is not None}
    last_tile = {p: g for g, p in enumerate(pass_of_tile)}
    pending_writes: list[tuple[int, int]] = []
    loading_pass = 0                # the pass whose words are (being) written
    tile_start = {}                 # tile -> cycle its first vector executes at row 0
    loaded = {}                     # tile -> cycle of each column's LOAD
    next_push = 0                   # next position to push into the L0
    next_exec = 0                   # next position to execute
    pushed_at = {}                  # position -> cycle of its L0 push
    weight_tile, weight_col = 0, 0  # next weight column to stage
    t = start
    while next_exec < len(positions):
        # xmem writes of the next pass, once this pass has read its last activation and weight
        if (not pending_writes and loading_pass + 1 < len(passes)
                and next_push > last_position.get(loading_pass, -1)
                and weight_tile > last_tile[loading_pass]):
            loading_pass += 1
            pending_writes = pass_words(*passes[loading_pass])
        writing = bool(pending_writes)
        # L0 write port: push the next position, in order. Row r pops r cycles after row 0,
        # so the deepest row holds n - 1 more than the vectors not yet executed.
        if next_push < len(positions) and next_push - next_exec < l0_depth - n - 1:
            pos = positions[next_push]
            if pos.word is None:
                tl.at(t, l0_wr=1, l0_zero=1)
            elif source.ready(pos.word, t):
                if source.reuse:
                    tl.at(t, l0_wr=1, l0_abuf=1, abuf_raddr=source.slot(pos.word))
                else:
                    tl.at(t, l0_wr=1)
                source.pushed(pos.word)
            if pos.word is None or tl.busy(t, "l0_wr"):
                pushed_at[next_push] = t
                next_push += 1
        # xmem port, by urgency: the next pass's words (nothing of this pass is left to
        # read), the word the L0 needs next, a weight column whose window is open, then
        # words ahead of their first use.
        if writing:
            addr, data = pending_writes.pop(0)
            tl.xmem_write(t, addr, data)
        # (direct: look past a run of zeros, Q holds the word until the next read)
        ahead = 1 if source.reuse else _DIRECT_LOOKAHEAD
        head = next((p for p in positions[next_push:next_push + ahead] if p.word is not None), None)
        if (not writing and head is not None and pass_of_tile[head.tile] <= loading_pass
                and source.needs_fetch(head.word)
                and (source.reuse or next_push - next_exec < l0_depth - n - 2)):
            source.fetch(tl, t, head.word, word_addr(head.word))
        if not tl.busy(t, "cen_xmem") and weight_tile < len(tiles) and pass_of_tile[weight_tile] <= loading_pass \
                and not (pass_of_tile[weight_tile] == loading_pass and pending_writes):
            prev = weight_tile - 1
            if prev < 0 or (prev in tile_start and t + 1 >= tile_start[prev] + n - 1 + weight_col):
                tl.xmem_read(t, weight_addr(*tiles[weight_tile], weight_col))
                source.other_read()
                tl.at(t + 1, load=1, wcol=weight_col)
                loaded.setdefault(weight_tile, []).append(t + 1)
                weight_col += 1
                if weight_col == n:
                    weight_tile, weight_col = weight_tile + 1, 0
        if source.reuse and not tl.busy(t, "cen_xmem"):
            while source.next_fetch < len(source.order) and source.order[source.next_fetch] in source.requested:
                source.next_fetch += 1
            if source.next_fetch < len(source.order):
                word = source.order[source.next_fetch]
                if pass_of_visit[word[0]] <= loading_pass and not pending_writes:
                    source.fetch(tl, t, word, word_addr(word))
        # Array: execute the next pushed position; a tile's first needs all its columns
        # staged before its start token reaches them.
        if next_exec < next_push and pushed_at[next_exec] < t:
            pos = positions[next_exec]
            first_of_tile = pos.tile not in tile_start
            ready = not first_of_tile or (
                len(loaded.get(pos.tile, [])) == n
                and all(load <= t + c - 1 for c, load in enumerate(loaded[pos.tile])))
            if ready:
                if first_of_tile:
                    tile_start[pos.tile] = t
                tl.at(t, l0_rd=1, execute=1, start=int(first_of_tile))
                _pop_into_sfp(tl, program, geo, pos, t + ofifo_latency(n), whole_layer_in_pmem)
                next_exec += 1
        t += 1
    program.last_emit = max(k for k, c in enumerate(tl.cycles) if c.get("emit")) + 2
    tl.at(program.last_emit + 1)
    program.inst, program.d_xmem = tl.words()
    return program


def _pop_into_sfp(tl: Timeline, program: Program, geo: LayerGeometry, pos: _Position,
                  pop: int, whole_layer_in_pmem: bool) -> None:
    """Pop this position's psum vector: into pmem (for checking) and into SFP entry o_nij."""
    index = len(program.psum_writes)
    addr = geo.psum_addr(pos.oct, pos.ict, pos.kij, pos.nij) if whole_layer_in_pmem else index % PMEM_DEPTH
    first = pos.ict == 0 and pos.kij == 0
    last = pos.ict == geo.n_ict - 1 and pos.kij == KIJ - 1
    tl.at(pop, ofifo_rd=1, cen_pmem=0, wen_pmem=0, a_pmem=addr, acc=1, acc_src=1,
          acc_first=int(first), emit=int(last), relu=int(last),
          acc_addr=pos.oct * geo.n_onij + pos.o_nij)
    program.psum_writes.append((addr, (pos.ict, pos.oct, pos.kij, pos.nij)))
    program.executes += 1
    if last:
        program.emits.append((pos.oct, pos.o_nij))


def os_program(x_int: np.ndarray, w_int: np.ndarray, array_size: int = CONFIG.row,
               fifo_depth: int = CONFIG.fifo_depth) -> Program:
    """Output-stationary: row r of the array holds output pixel group*8 + r, column c output
    channel oct*8 + c; the reduction over (ic, kij) runs in time, one step per cycle at
    most. Per step the L0 takes the activation word (lane r = the input under pixel r at
    that (ic, kij)) and the IFIFO the weight word (lane c = w[oct*8+c, ic, kij]); both come
    from xmem, so a step costs two xmem reads. After the last step the held psums drain
    down the columns into the OFIFO (bottom row first) and through the SFP (ReLU).

    xmem (step = ic * 9 + kij): when every operand fits, activation word (group, step) at
    group * steps + step and weight word (oc tile, step) at 1024 + oct * steps + step,
    written once before the measurement starts. Otherwise the part that does not fit is
    written per (oc tile, group) in chunks of steps (the PEs hold their sums meanwhile), and
    the measurement starts at cycle 0 with every load included.
    Keys: psum_writes and emits hold (group, oct, row) for output pixel group*8 + row.
    """
    geo, x, w = _layer(x_int, w_int, array_size)
    n = geo.array_size
    act, wt = os_operands(x, w, n)
    n_groups, steps = act.shape[0], act.shape[1]
    half = XMEM_DEPTH - WEIGHT_BASE
    act_resident = n_groups * steps <= WEIGHT_BASE
    w_resident = geo.n_oct * steps <= half
    chunk = min(steps, WEIGHT_BASE, half)

    def act_word(g, s):
        return (g * steps + s if act_resident else s % chunk), pack_lanes(act[g, s], LANE_BITS, signed=False)

    def weight_word(o, s):
        return (WEIGHT_BASE + (o * steps + s if w_resident else s % chunk),
                pack_lanes(wt[o, s], LANE_BITS, signed=True))

    tl = Timeline()
    tl.at(0, flush=1)
    resident = [act_word(g, s) for g in range(n_groups) for s in range(steps)] if act_resident else []
    resident += [weight_word(o, s) for o in range(geo.n_oct) for s in range(steps)] if w_resident else []
    for t, (addr, data) in enumerate(resident):
        tl.xmem_write(t, addr, data)
    t = len(resident)
    program = Program("os", "os", n, [], [], compute_start=t if act_resident and w_resident else 0)
    earliest_start = t          # a group may start once the previous one has drained
    execute = t
    for oct in range(geo.n_oct):
        for g in range(n_groups):
            for c0 in range(0, steps, chunk):
                rng = range(c0, min(c0 + chunk, steps))
                writes = [] if act_resident else [act_word(g, s) for s in rng]
                writes += [] if w_resident else [weight_word(oct, s) for s in rng]
                for addr, data in writes:
                    tl.xmem_write(t, addr, data)
                    t += 1
                # fill: activation then weight per step (two xmem reads), pushes a cycle later;
                # each step executes once both its words are in (bubbles keep the pairs aligned)
                pushed = []
                for s in rng:
                    tl.xmem_read(t, act_word(g, s)[0])
                    tl.at(t + 1, l0_wr=1)
                    tl.xmem_read(t + 1, weight_word(oct, s)[0])
                    tl.at(t + 2, ififo_wr=1)
                    pushed.append(t + 2)
                    t += 2
                if c0 == 0:
                    execute = max(execute, earliest_start)
                for i, s in enumerate(rng):
                    execute = max(execute, pushed[i] + 1)
                    waiting = sum(1 for p in pushed if p < execute) - i
                    if waiting + n >= fifo_depth:   # a builder invariant: row n-1 pops n-1 cycles late
                        raise ModelError(f"output-stationary schedule would overfill the {fifo_depth}-deep FIFOs")
                    tl.at(execute, l0_rd=1, ififo_rd=1, execute=1, start=int(s == 0))
                    program.executes += 1
                    execute += 1
            drain = execute - 1 + n            # PE(row-1, c) has its last product by then
            for k in range(n):
                tl.at(drain + k, drain=1)
            for k in range(n):                 # vector k is row n-1-k, complete once column n-1 wrote it
                row = n - 1 - k
                key = (g, oct, row)
                addr = len(program.psum_writes) % PMEM_DEPTH
                tl.at(drain + n + k, ofifo_rd=1, cen_pmem=0, wen_pmem=0, a_pmem=addr, acc=1,
                      acc_src=1, acc_first=1, emit=1, relu=1, acc_addr=0)
                program.psum_writes.append((addr, key))
                program.emits.append(key)
            program.last_emit = drain + 2 * n - 1 + 2
            earliest_start = drain + n
    tl.at(program.last_emit + 1)
    for k in range(program.compute_start, len(tl.cycles)):
        tl.at(k, os=1)                         # the OS weight chain shifts every cycle
    program.inst, program.d_xmem = tl.words()
    return program


# The schedules by name, as the tests, the bench and the demo choose them.
SCHEDULES = {"classic": ws_classic, "fast": ws_fast, "os": os_program}


@dataclass
class ProgramReference:
    """What the reference tiling says every pmem write and SFP output of a program holds.

    psums[i] is the vector of program.psum_writes[i], outputs[i] that of program.emits[i]
    (lanes = columns, int64); ref is the model.tiling reference they come from."""

    program: Program
    ref: object
    psums: np.ndarray
    outputs: np.ndarray

    def describe_psum(self, i: int) -> str:
        key = self.program.psum_writes[i][1]
        if self.program.dataflow == "ws":
            ict, oct, kij, nij = key
            return f"kij={kij} nij={nij} (ic_tile={ict} oc_tile={oct})"
        return self._describe_pixel(key)

    def describe_output(self, i: int) -> str:
        key = self.program.emits[i]
        if self.program.dataflow == "ws":
            oct, o_nij = key
            return f"o_nij={o_nij} (oc_tile={oct})"
        return self._describe_pixel(key)

    def _describe_pixel(self, key) -> str:
        group, oct, row = key
        return f"output pixel {group * self.program.array_size + row} (group={group} row={row} oc_tile={oct})"

    def output_pixel(self, i: int) -> tuple[int, int]:
        """(oc tile, output pixel) of output i."""
        key = self.program.emits[i]
        if self.program.dataflow == "ws":
            return key
        group, oct, row = key
        return oct, group * self.program.array_size + row

    def arrange(self, outputs: np.ndarray) -> np.ndarray:
        """Output vectors in emit order -> [OC, Ho*Wo] (lanes past the layer dropped)."""
        n, oc, pixels = self.program.array_size, self.ref.OC, self.ref.Ho * self.ref.Wo
        out = np.zeros((-(-oc // n) * n, pixels), dtype=np.int64)
        for i, lanes in enumerate(outputs):
            oct, pixel = self.output_pixel(i)
            if pixel < pixels:
                out[oct * n:(oct + 1) * n, pixel] = lanes
        return out[:oc]

    @property
    def useful_macs(self) -> int:
        return useful_macs(self.ref.IC, self.ref.OC, self.ref.Ho, self.ref.Wo)


def reference_results(program: Program, x_int: np.ndarray, w_int: np.ndarray,
                      psum_bw: int = CONFIG.psum_bw, acc_bw: int = CONFIG.acc_bw, check_widths: bool = True) -> ProgramReference:
    """The reference value of every result of `program`. With check_widths, a reference that
    does not fit the hardware widths raises (nothing is compared with wrapped values);
    without, the caller reports overflow itself (the program checker models the SFP)."""
    n = program.array_size
    psum_keys = np.array([key for _, key in program.psum_writes], dtype=np.int64)
    out_keys = np.array(program.emits, dtype=np.int64)
    if program.dataflow == "ws":
        ref = ws_reference(x_int, w_int, array_size=n, psum_bw=psum_bw, acc_bw=acc_bw)
        ict, oct, kij, nij = psum_keys.reshape(-1, 4).T
        psums = ref.psum[ict, oct, :, nij, kij]
        oct, o_nij = out_keys.reshape(-1, 2).T
        outputs = ref.out_tiles(relu=True)[oct, :, o_nij]
    else:
        ref = os_reference(x_int, w_int, array_size=n, psum_bw=psum_bw)
        group, oct, row = psum_keys.reshape(-1, 3).T
        psums = ref.out[group, oct, row]
        group, oct, row = out_keys.reshape(-1, 3).T
        outputs = ref.out_relu[group, oct, row]
    if check_widths and ref.overflows:
        raise PsumOverflowError(f"the reference does not fit the hardware widths: {ref.overflows[0]}")
    return ProgramReference(program, ref, np.ascontiguousarray(psums, dtype=np.int64),
                            np.ascontiguousarray(outputs, dtype=np.int64))
