"""The core's hardware configuration, read from rtl/core_inst.vh (the one definition).

The RTL takes its parameter defaults, port widths and instruction layout from that
header; this module parses it so the program builders, the core model
(model.program_check), the benches and the README checks use the same numbers. Nothing
else in the tree restates them.

``CONFIG`` is the configuration as the header defines it (an 8 x 8 array);
``CONFIG.with_array(n)`` is the same core with an n x n array, which is what a build
with ``row = col = n`` is. Everything that depends on the array size (the xmem word
width, the pmem word width, the OFIFO latency) is a property, never a constant.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from model.errors import ModelError

__all__ = ["CONFIG", "CoreConfig", "INST_HEADER", "InstructionSet", "read_config"]

INST_HEADER = Path(__file__).resolve().parent.parent / "rtl" / "core_inst.vh"

# Widths of the multi-bit instruction fields: which width define each one uses.
_FIELD_WIDTHS = {"A_XMEM": "ADDR_BITS", "A_PMEM": "ADDR_BITS", "A_WMEM": "ADDR_BITS", "A_WMEM_W": "ADDR_BITS",
                 "WCOL": "WCOL_BITS", "WCOL2": "WCOL_BITS",
                 "ACC_ADDR": "ACC_BITS", "ABUF_WADDR": "ABUF_BITS", "ABUF_RADDR": "ABUF_BITS",
                 "THR_TILE": "THR_TILE_BITS", "THR_LANE": "WCOL_BITS", "THR_LEVEL": "THR_LEVEL_BITS",
                 "THR_PART": "THR_PART_BITS"}


@dataclass(frozen=True)
class InstructionSet:
    """The instruction word: field name (lower case, without INST_) -> (offset, width)."""

    fields: dict
    width: int
    active_low: frozenset      # fields that are 1 in the idle word

    @property
    def idle_fields(self) -> dict[str, int]:
        return {name: 1 for name in sorted(self.active_low)}

    def encode(self, fields: dict[str, int]) -> int:
        """One instruction word; fields not named take their idle value. A value that does
        not fit its field raises ModelError."""
        word = 0
        for name, value in {**self.idle_fields, **fields}.items():
            offset, width = self.fields[name]
            if not 0 <= value < (1 << width):
                raise ModelError(f"instruction field {name}={value} does not fit {width} bits")
            word |= value << offset
        return word

    def decode(self, word: int) -> dict[str, int]:
        return {name: (word >> off) & ((1 << w) - 1) for name, (off, w) in self.fields.items()}

    @property
    def idle(self) -> int:
        """The word of a cycle that does nothing (active-low SRAM enables high)."""
        return self.encode({})


@dataclass(frozen=True)
class CoreConfig:
    """One core: array size, widths, depths and the xmem map (units: bits, entries, words)."""

    row: int                   # array rows = L0 lanes = activation lanes of an xmem word
    col: int                   # array columns = IFIFO / OFIFO / psum lanes
    lane_bits: int             # bits of an activation / weight lane
    psum_bw: int               # bits of a psum lane
    acc_bw: int                # bits of an SFP bank sum
    fifo_depth: int            # entries per L0 / IFIFO / OFIFO lane
    weight_base: int           # xmem address of the first weight word
    addr_bits: int             # xmem / wmem / pmem address width
    abuf_bits: int             # activation buffer address width
    sfp_bits: int              # SFP bank address width
    wcol_bits: int             # LOAD column field width
    error_names: tuple         # names of core.errors bits, bit 0 first
    isa: InstructionSet

    def __post_init__(self):
        if self.row != self.col:
            raise ModelError(f"array {self.row}x{self.col}: the program builders need a square array")
        if not 1 <= self.col <= self.max_array:
            raise ModelError(f"array size {self.col} does not fit the {self.wcol_bits}-bit WCOL field "
                             f"(1..{self.max_array})")
        if self.weight_base >= self.xmem_depth:
            raise ModelError(f"weight base {self.weight_base} is outside xmem ({self.xmem_depth} words)")

    def with_array(self, n: int) -> "CoreConfig":
        """The same core with an n x n array (ModelError when n is not a valid size)."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise ModelError(f"array size must be an integer, got {n!r}")
        return dataclasses.replace(self, row=n, col=n)

    @property
    def array_size(self) -> int:
        return self.row

    @property
    def max_array(self) -> int:
        """The widest array (columns) the LOAD instruction's WCOL field can number."""
        return 1 << self.wcol_bits

    @property
    def xmem_word_bits(self) -> int:
        """D_xmem / xmem word: one lane per row."""
        return self.row * self.lane_bits

    @property
    def pmem_word_bits(self) -> int:
        """pmem word / psum vector / sfp_out: one lane per column."""
        return self.col * self.psum_bw

    @property
    def xmem_depth(self) -> int:
        return 1 << self.addr_bits

    @property
    def wmem_depth(self) -> int:
        """Weight memory entries (each wmem_word_bits wide): a read port beside xmem's, and
        a write port of its own (D_wmem)."""
        return 1 << self.addr_bits

    @property
    def wmem_word_bits(self) -> int:
        """D_wmem / wmem entry: two weight words (xmem_word_bits each), the low one first."""
        return 2 * self.xmem_word_bits

    @property
    def pmem_depth(self) -> int:
        return 1 << self.addr_bits

    @property
    def abuf_depth(self) -> int:
        return 1 << self.abuf_bits

    @property
    def sfp_depth(self) -> int:
        return 1 << self.sfp_bits

    @property
    def psum_bw_range(self) -> range:
        """The psum widths (bits) this core builds with: more than a product's 2 * lane_bits
        + 1 (rtl/mac.v), a WS column of row products of the largest activation sum per PE
        (15, or the 2-bit mode's 3 + 3) and weight magnitude fits (rtl/corelet.v), at most
        acc_bw (rtl/sfp.v). Each module refuses the rest at elaboration."""
        pe_max = max((1 << self.lane_bits) - 1, 2 * ((1 << self.lane_bits // 2) - 1))
        column_max = self.row * pe_max * (1 << (self.lane_bits - 1))
        return range(max(2 * self.lane_bits + 2, column_max.bit_length() + 1), self.acc_bw + 1)

    @property
    def threshold_bw(self) -> int:
        """Bits of an SFP requantization threshold: acc_bw + 1, signed (model.requant)."""
        return self.acc_bw + 1

    @property
    def threshold_tiles(self) -> int:
        """Oc tiles whose thresholds the SFP holds (the THR_TILE field's reach)."""
        return 1 << self.isa.fields["thr_tile"][1]

    @property
    def threshold_parts(self) -> int:
        """xmem words per threshold: ceil(threshold_bw / xmem_word_bits)."""
        return -(-self.threshold_bw // self.xmem_word_bits)

    @property
    def ofifo_latency(self) -> int:
        """Cycles from the instruction that executes an activation vector at row 0 until its
        psum vector can be popped from the OFIFO: row + col - 1 PE hops, the bottom
        register, the OFIFO write."""
        return self.row + self.col

    @property
    def sfp_latency(self) -> int:
        """Cycles from the instruction with EMIT (cycle e) to the cycle its output is on
        sfp_out / sfp_wide with sfp_valid (e + 3): rtl/sfp.v's issue edge (end of e: the
        controls and the bank read), execute edge (the add) and emit edge (ReLU / levels
        into the output register)."""
        return 3

    def parameters(self) -> dict[str, int]:
        """HDL parameters of rtl/core.v for this configuration (only what differs from the
        header's defaults, so a default build keeps its build folder)."""
        return {k: v for k, v in (("row", self.row), ("col", self.col)) if v != getattr(CONFIG, k)}


def _defines(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"^`define\s+(\w+)\s+(\d+)\b", text, re.M)}


def read_config(path: Path = INST_HEADER) -> CoreConfig:
    """Parse the header (the defines with a decimal value, and the 'active low' notes)."""
    path = Path(path)
    text = path.read_text()
    d = _defines(text)
    try:
        fields = {}
        for name, offset in d.items():
            if name.startswith("INST_") and name != "INST_WIDTH":
                short = name[len("INST_"):]
                fields[short.lower()] = (offset, d[_FIELD_WIDTHS[short]] if short in _FIELD_WIDTHS else 1)
        active_low = frozenset(m.lower() for m in re.findall(r"^`define\s+INST_(\w+)\s+\d+\s*//\s*active low",
                                                             text, re.M))
        errors = sorted((v, k[len("ERR_"):]) for k, v in d.items() if k.startswith("ERR_") and k != "ERR_COUNT")
        if [v for v, _ in errors] != list(range(d["ERR_COUNT"])):
            raise ModelError(f"{path}: ERR_* bits are not 0..ERR_COUNT-1")
        acronyms = {"l0", "ififo", "ofifo", "sfp", "os", "pe"}
        names = tuple(" ".join(w.upper() if w in acronyms else w for w in k.lower().split("_")) for _, k in errors)
        return CoreConfig(row=d["CORE_ROW"], col=d["CORE_COL"], lane_bits=d["CORE_BW"],
                          psum_bw=d["CORE_PSUM_BW"], acc_bw=d["CORE_ACC_BW"], fifo_depth=d["CORE_FIFO_DEPTH"],
                          weight_base=d["CORE_WEIGHT_BASE"], addr_bits=d["ADDR_BITS"], abuf_bits=d["ABUF_BITS"],
                          sfp_bits=d["ACC_BITS"], wcol_bits=d["WCOL_BITS"], error_names=names,
                          isa=InstructionSet(fields, d["INST_WIDTH"], active_low))
    except KeyError as e:
        raise ModelError(f"{path}: no `define {e.args[0]}") from None


CONFIG = read_config()
