"""tb/core.gtkw, the GTKWave save file of the core, derived from the hardware configuration.

Every vector in a save file is named with its bit range (GTKWave finds it only by its full
name, e.g. core_harness.u_core.inst[73:0]), so the ranges follow the configuration: ``gtkw_for(config)``
rewrites them from WIDTHS. tb/core.gtkw is gtkw_for(CONFIG) (tb/test_waves.py checks it);
the demo writes the save file of another array size next to its waveform.
"""
from __future__ import annotations

import re
from pathlib import Path

from model.hwconfig import CONFIG, CoreConfig

GTKW = Path(__file__).resolve().parent / "core.gtkw"

# signal of the core (without its range) -> width in bits
_CORE_WIDTHS = {
    "core.inst": lambda c: c.isa.width,
    "core.u_corelet.wcol": lambda c: c.wcol_bits,
    "core.u_corelet.wload_en": lambda c: c.col,
    "core.u_corelet.wload2_en": lambda c: c.col,
    "core.u_xmem.A": lambda c: c.addr_bits,
    "core.u_xmem.D": lambda c: c.xmem_word_bits,
    "core.u_xmem.Q": lambda c: c.xmem_word_bits,
    "core.u_wmem.RA": lambda c: c.addr_bits,
    "core.u_wmem.WA": lambda c: c.addr_bits,
    "core.u_wmem.Q": lambda c: c.wmem_word_bits,
    "core.u_corelet.weight_q": lambda c: c.xmem_word_bits,
    "core.u_corelet.u_abuf.waddr": lambda c: c.abuf_bits,
    "core.u_corelet.u_abuf.raddr": lambda c: c.abuf_bits,
    "core.u_corelet.l0_in": lambda c: c.row * c.lane_bits,
    "core.u_corelet.u_l0.wr": lambda c: c.row,
    "core.u_corelet.u_l0.lane_rd": lambda c: c.row,
    "core.u_corelet.u_l0.rd_data": lambda c: c.row * c.lane_bits,
    "core.u_corelet.u_l0.empty": lambda c: c.row,
    "core.u_corelet.u_l0.full": lambda c: c.row,
    "core.u_corelet.u_array.a_in": lambda c: c.row * c.lane_bits,
    "core.u_corelet.u_array.west_ctl": lambda c: 4 * c.row,      # valid, start, os, act2 per row
    "core.u_corelet.u_array.w_in": lambda c: c.col * c.lane_bits,
    "core.u_corelet.u_array.col_ctl": lambda c: 3 * c.col,       # shift, drain, drain_shadow per column
    "core.u_corelet.u_array.psum_out": lambda c: c.pmem_word_bits,
    "core.u_corelet.u_array.psum_valid": lambda c: c.col,
    "core.u_corelet.u_ififo.wr": lambda c: c.col,
    "core.u_corelet.u_ififo.wr_data": lambda c: c.col * c.lane_bits,
    "core.u_corelet.u_ififo.lane_rd": lambda c: c.col,
    "core.u_corelet.u_ififo.rd_data": lambda c: c.col * c.lane_bits,
    "core.u_corelet.u_ififo.empty": lambda c: c.col,
    "core.u_corelet.u_ififo.full": lambda c: c.col,
    "core.u_corelet.u_ofifo.wr": lambda c: c.col,
    "core.u_corelet.u_ofifo.wr_data": lambda c: c.pmem_word_bits,
    "core.u_corelet.u_ofifo.rd_data": lambda c: c.pmem_word_bits,
    "core.u_corelet.u_ofifo.empty": lambda c: c.col,
    "core.u_pmem.A": lambda c: c.addr_bits,
    "core.u_pmem.D": lambda c: c.pmem_word_bits,
    "core.u_pmem.Q": lambda c: c.pmem_word_bits,
    "core.u_corelet.u_sfp.addr": lambda c: c.sfp_bits,
    "core.u_corelet.u_sfp.in_data": lambda c: c.pmem_word_bits,
    "core.u_corelet.u_sfp.out": lambda c: c.pmem_word_bits,
    "core.cycles": lambda c: 32,
    "core.busy": lambda c: 32,
    "core.errors": lambda c: len(c.error_names),
    "core.fifo_flags": lambda c: 5,
}
# The waveforms are of the cocotb top level, tb/core_harness.v, which holds the core as u_core.
WIDTHS = {"core_harness.u_core." + name[len("core."):]: width for name, width in _CORE_WIDTHS.items()}
WIDTHS["core_harness.pc"] = lambda c: 32

_RANGED = re.compile(r"^(\S+)\[(\d+):0\]$", re.M)


def gtkw_for(config: CoreConfig = CONFIG, template: Path = GTKW) -> str:
    """The save file with every vector's range set for `config`. A ranged signal missing
    from WIDTHS raises KeyError (add it there, not a literal range)."""
    return _RANGED.sub(lambda m: f"{m.group(1)}[{WIDTHS[m.group(1)](config) - 1}:0]", template.read_text())
