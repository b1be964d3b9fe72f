"""The instruction set of the core and how a program is written down.

The field layout comes from rtl/core_inst.vh (model.hwconfig parses it): ``FIELDS`` maps a
field name to (offset, width), ``encode`` / ``decode`` convert between field values and one
instruction word. ``pack_lanes`` packs the lanes of an xmem word. ``Timeline`` collects the
fields of each cycle while a schedule is built; ``Program`` is the result: one
instruction word, one D_xmem word and one D_wmem entry per cycle, plus the key of every
result.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import numpy as np

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.tiling import A_BIT, W_BIT, field_range

#: bits per lane of an xmem word (activation and weight lanes alike)
LANE_BITS = CONFIG.lane_bits
if not A_BIT == W_BIT == LANE_BITS:
    raise ModelError(f"rtl/core_inst.vh CORE_BW={LANE_BITS} but the model quantizes to "
                     f"{A_BIT}-bit activations and {W_BIT}-bit weights")

FIELDS, INST_WIDTH = CONFIG.isa.fields, CONFIG.isa.width
encode = CONFIG.isa.encode
decode = CONFIG.isa.decode


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
        self.d_wmem: dict[int, int] = {}

    def at(self, t: int, **fields: int) -> None:
        cycles = self.cycles
        if t >= len(cycles):
            cycles.extend({} for _ in range(t + 1 - len(cycles)))
        cycle = cycles[t]
        for name, value in fields.items():
            old = cycle.get(name)
            if old is None:
                cycle[name] = int(value)
            elif old != value:
                raise AssertionError(f"cycle {t}: field {name} set to {old} and {value}")

    def busy(self, t: int, name: str) -> bool:
        return t < len(self.cycles) and name in self.cycles[t]

    def xmem_write(self, t: int, addr: int, data: int) -> None:
        """Write `data` (the cycle's D_xmem word) into xmem[addr]."""
        self.at(t, cen_xmem=0, wen_xmem=0, a_xmem=addr)
        if self.d_xmem.setdefault(t, data) != data:
            raise AssertionError(f"cycle {t}: D_xmem set to {self.d_xmem[t]} and {data}")

    def wmem_write(self, t: int, addr: int, data: int) -> None:
        """Write `data` (the cycle's D_wmem entry: two weight words, the low one first) into
        wmem[addr] through its write port."""
        self.at(t, wen_wmem=0, a_wmem_w=addr)
        if self.d_wmem.setdefault(t, data) != data:
            raise AssertionError(f"cycle {t}: D_wmem set to {self.d_wmem[t]} and {data}")

    def write(self, t: int, mem: str, addr: int, data: int) -> None:
        """xmem_write (mem "xmem") or wmem_write (mem "wmem": `data` is the entry)."""
        (self.wmem_write if mem == "wmem" else self.xmem_write)(t, addr, data)

    def xmem_read(self, t: int, addr: int, mem: str = "xmem") -> None:
        """Read xmem[addr] (or wmem's through its read port with mem="wmem"): on that
        memory's Q from cycle t + 1."""
        self.at(t, **({"cen_wmem": 0, "a_wmem": addr} if mem == "wmem" else {"cen_xmem": 0, "wen_xmem": 1,
                                                                              "a_xmem": addr}))

    def words(self) -> tuple[list[int], list[int], list[int]]:
        """The instruction words, D_xmem words and D_wmem entries, one per cycle."""
        inst = [encode(c) for c in self.cycles]
        data = [self.d_xmem.get(t, 0) for t in range(len(self.cycles))]
        wdata = [self.d_wmem.get(t, 0) for t in range(len(self.cycles))]
        return inst, data, wdata


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
    emit: str = "relu"                 # what an output is: "relu" (ReLU of the sum, on sfp_out),
                                       # "requant" (the level, model.requant) or "raw" (the sum,
                                       # on sfp_wide)
    ic_tile_shift: tuple = ()          # per ic tile: 1 = its psums count 2**LANE_BITS times
                                       # (a signed input's high digit); () = all 0
    a_bit: int = A_BIT                 # activation bits: 2 is the array's 2-bit mode (ws_fast)
    d_wmem: list[int] = field(default_factory=list)   # D_wmem entry of each cycle ([]: none written)

    @property
    def cycles(self) -> int:
        """Cycles from compute_start to the last output on sfp_out."""
        return self.last_emit - self.compute_start

    def check_lengths(self, error: type[ModelError] = ModelError) -> None:
        """One D_xmem word per instruction word, and one D_wmem entry each or none at all;
        else a one-line `error` naming both lists' lengths."""
        if len(self.d_xmem) != len(self.inst):
            raise error(f"program has {len(self.inst)} instruction words but {len(self.d_xmem)} D_xmem words")
        if len(self.d_wmem) not in (0, len(self.inst)):
            raise error(f"program has {len(self.inst)} instruction words but {len(self.d_wmem)} D_wmem entries")

    def checked_wmem_words(self, error: type[ModelError] = ModelError) -> list:
        """Every D_xmem word, D_wmem entry and instruction word within its bus (check_words,
        one-line `error` naming the first bad cycle); returns the D_wmem entries of every
        cycle, zeros for a program that has none. The lists' lengths are check_lengths'."""
        bits = self.array_size * CONFIG.lane_bits          # an xmem word: one lane per row
        wdata = self.d_wmem if len(self.d_wmem) else [0] * len(self.d_xmem)
        check_words("D_xmem word", self.d_xmem, bits, error)
        check_words("D_wmem entry", wdata, 2 * bits, error)
        check_words("instruction word", self.inst, INST_WIDTH, error)
        return wdata

    def save_hex(self, folder: Path) -> tuple[Path, Path]:
        """inst.hex / dxmem.hex: one word per line, for the pure-Verilog players; a dxmem.hex
        line is {D_wmem, D_xmem} (D_xmem in the low bits). ModelError (one line) for a
        program with no instruction word (nothing to play), lists of other lengths
        (check_lengths), or an instruction word, D_xmem word or D_wmem entry outside its bus
        width."""
        if len(self.inst) == 0:
            raise ModelError("program has no instruction words: nothing to play")
        self.check_lengths()
        # a word outside its bus would spill into the other one in {D_wmem, D_xmem}, not be cut
        wdata = self.checked_wmem_words()
        bits = CONFIG.with_array(self.array_size).xmem_word_bits
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        inst_path, data_path = folder / "inst.hex", folder / "dxmem.hex"
        # one %-format of all words: formatting word by word costs about twice as much
        inst_path.write_text(f"%0{(INST_WIDTH + 3) // 4}x\n" * len(self.inst) % tuple(self.inst))
        data = map(operator.or_, map(operator.lshift, map(int, wdata), repeat(bits)), map(int, self.d_xmem))
        data_path.write_text(f"%0{(3 * bits + 3) // 4}x\n" * len(self.d_xmem) % tuple(data))
        return inst_path, data_path


def check_words(what: str, words, bits: int, error: type[ModelError] = ModelError) -> None:
    """Every word of `words` (a list or array, one per cycle) an integer in 0 .. 2**bits - 1
    (the bus or field it drives); else a one-line `error` naming the first bad cycle:
    nothing is masked to fit."""
    # fast path (C-level passes): only int / numpy integer types (not bool: its own type), and
    # the extremes in range; anything else is named by the loop below
    if all(kind is int or issubclass(kind, np.integer) for kind in set(map(type, words))) and (
            not len(words) or (0 <= min(words) and max(words) < 1 << bits)):
        return
    for t, word in enumerate(words):
        if isinstance(word, bool) or not isinstance(word, (int, np.integer)):
            raise error(f"cycle {t}: {what} {word!r} is not an integer")
        if not 0 <= word < 1 << bits:
            raise error(f"cycle {t}: {what} {int(word):#x} does not fit {bits} bits (0 .. 2**{bits} - 1)")

