"""One conv layer of a network through the RTL core: CoreConv.run(x_int, w_int, requant).

    conv = CoreConv(sim="verilator", build=Path("build/core_conv"))
    run = conv.run(x_int, w_int, requant)      # requant: model.requant.Requant, or None
    run.out        # (OC, H, W) int64: levels 0..15 (requant given) or the raw sums

The layer runs as the fast WS schedule (model.program.network): with a Requant the SFP
emits each output's level, the next layer's activation; without one it emits the whole
sum (the last conv; BatchNorm and what follows run on the host). An input with negative
levels (the normalized image at features.0) runs as base-16 digits
(model.program.signed_input), down to MIN_LEVEL (-255). The program of a geometry is
built once (kept in memory and under build/, model.program.network.template) and each
run only binds its words in numpy. The simulators:

* "verilator" / "icarus": the pure-Verilog player (tb/core_player.v, tb/player.py),
  built once per simulator and array size;
* "cocotb": the cocotb layer harness on Icarus (tb/core_harness.v), one simulator run
  per layer (slow: meant for small layers in the regression).

Every output comes from the RTL (sfp_wide); cycles and busy from the core's counters,
from the program's first word (every xmem write of activations, weights and thresholds
included) to the last output. Any error flag, or a layer the core cannot run, raises a
one-line ModelError.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program.memory_map import useful_macs
from model.program.network import LayerShape, Template, bind, hex_lines, inst_hex, template, word_table
from model.program.signed_input import split_signed
from model.requant import Requant
from model.tiling import as_int_array, check_layer

HERE = Path(__file__).resolve().parent
SIMULATORS = ("verilator", "icarus", "cocotb")

__all__ = ["SIMULATORS", "ConvRun", "CoreConv"]


@dataclass
class ConvRun:
    """One layer on the core. out: (OC, H, W) int64 (levels with a Requant, else raw sums);
    cycles / busy: the core's counters over the program (loads included); macs: useful
    MACs (IC*OC*9*H*W of the layer as given); errors: names of the raised error flags (a run
    that raises one is refused, so this is empty); build_s: program build or template
    lookup plus binding; sim_s: the simulator run, reading its dumps included."""

    out: np.ndarray
    cycles: int
    busy: int
    macs: int
    errors: list[str] = field(default_factory=list)
    build_s: float = 0.0
    sim_s: float = 0.0
    shape: LayerShape | None = None

    @property
    def utilization(self) -> float:
        n = self.shape.array_size if self.shape else CONFIG.row
        return self.macs / (n * n * self.cycles) if self.cycles else 0.0


def layer_operands(x_int, w_int, array_size: int, emit: str):
    """(shape, x, w) the core runs for the layer: the digits of a signed input
    (split_signed), else the input as is. One-line ModelError / LayerError on a bad layer."""
    x = as_int_array(x_int, "x_int")
    if x.size and x.min() < 0:
        _, w = check_layer(np.clip(x, 0, None), w_int)    # shapes, weight range (split_signed: levels)
        xs, ws, shifts = split_signed(x, w, array_size)
    else:
        xs, ws = check_layer(x, w_int)
        shifts = ()
    shape = LayerShape(ic=xs.shape[0], oc=ws.shape[0], h=xs.shape[1], w=xs.shape[2],
                       array_size=array_size, emit=emit, ic_tile_shift=shifts)
    return shape, xs, ws


class CoreConv:
    """Runs conv layers on the RTL core (module doc). One instance runs one layer at a time."""

    def __init__(self, sim: str = "verilator", array_size: int = CONFIG.row, build: Path = Path("build/core_conv")):
        if sim not in SIMULATORS:
            raise ModelError(f"sim must be one of {', '.join(SIMULATORS)}, got {sim!r}")
        self.sim, self.array_size = sim, array_size
        self.config = CONFIG.with_array(array_size)
        self.build = Path(build).resolve()
        self.cache = self.build / "templates"
        self.player = None
        if sim != "cocotb":
            from tb.player import Player

            self.player = Player(sim, self.build, self.config)
        self._inst_written: dict[LayerShape, Path] = {}

    def run(self, x_int, w_int, requant: Requant | None = None) -> ConvRun:
        """x_int (C, H, W) int (negative levels: the signed first layer), w_int (OC, C, 3, 3)
        in -7..7, requant: the thresholds of the OC channels, or None for raw sums."""
        t0 = time.perf_counter()
        if requant is not None and not isinstance(requant, Requant):
            raise ModelError(f"requant must be a model.requant.Requant or None, got {type(requant).__name__}")
        shape, x, w = layer_operands(x_int, w_int, self.array_size, "requant" if requant is not None else "raw")
        if requant is not None and requant.out_channels != shape.oc:
            raise ModelError(f"requant has {requant.out_channels} channels, the layer {shape.oc} output channels")
        if requant is not None and requant.levels != (1 << self.config.lane_bits) - 1:
            raise ModelError(f"requant has {requant.levels} levels, the SFP {(1 << self.config.lane_bits) - 1}")
        tpl = template(shape, self.cache)
        table = word_table(shape, x, w, *((requant.thresholds, requant.descending) if requant else ()))
        d_xmem = bind(tpl, table)
        macs = useful_macs(int(np.asarray(x_int).shape[0]), shape.oc, shape.h, shape.w)
        if self.sim == "cocotb":
            return self._run_cocotb(tpl, d_xmem, x, w, requant, macs, t0)
        folder = self._folder(tpl)
        (folder / "dxmem.hex").write_bytes(hex_lines(d_xmem, (self.config.xmem_word_bits + 3) // 4))
        build_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = self.player.play(folder, len(tpl.program.inst), 0, psums=False)
        out = self._arrange(tpl, result.outputs_wide)
        errors = [name for i, name in enumerate(self.config.error_names) if result.summary["errors"] >> i & 1]
        run = ConvRun(out=out, cycles=int(result.output_counters[-1] - result.summary["start"]),
                      busy=result.summary["busy"], macs=macs, errors=errors, build_s=build_s,
                      sim_s=time.perf_counter() - t1, shape=shape)
        self._check(run, tpl)
        return run

    def _folder(self, tpl: Template) -> Path:
        """The shape's run folder, with its inst.hex written once per instance."""
        folder = self.build / "runs" / tpl.shape.key
        if tpl.shape not in self._inst_written:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "inst.hex").write_bytes(inst_hex(tpl.program.inst))
            self._inst_written[tpl.shape] = folder
        return folder

    @staticmethod
    def _arrange(tpl: Template, outputs: np.ndarray) -> np.ndarray:
        """Output vectors in emit order -> (OC, H, W)."""
        shape, program = tpl.shape, tpl.program
        if len(outputs) != len(program.emits):
            raise ModelError(f"layer {shape.key}: the core emitted {len(outputs)} output vectors, "
                             f"the program {len(program.emits)}")
        n, pixels = shape.array_size, shape.h * shape.w
        keys = np.array(program.emits, dtype=np.int64).reshape(-1, 2)
        out = np.zeros((-(-shape.oc // n), pixels, n), dtype=np.int64)
        out[keys[:, 0], keys[:, 1]] = outputs
        return out.transpose(0, 2, 1).reshape(-1, pixels)[:shape.oc].reshape(shape.oc, shape.h, shape.w)

    @staticmethod
    def _check(run: ConvRun, tpl: Template) -> None:
        if run.errors:
            raise ModelError(f"layer {tpl.shape.key}: the core raised {', '.join(run.errors)}")
        if run.cycles != tpl.program.cycles:
            raise ModelError(f"layer {tpl.shape.key}: the core counted {run.cycles} cycles, "
                             f"the program plans {tpl.program.cycles}")
        if run.busy != tpl.program.executes:
            raise ModelError(f"layer {tpl.shape.key}: the core's busy counter is {run.busy}, "
                             f"the program executes {tpl.program.executes} vectors")

    def _run_cocotb(self, tpl, d_xmem, x, w, requant, macs, t0) -> ConvRun:
        raise ModelError("sim='cocotb' is not available yet")
