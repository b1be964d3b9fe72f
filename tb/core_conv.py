"""One conv layer of a network through the RTL core: CoreConv.run(x_int, w_int, requant).

    conv = CoreConv(sim="verilator", build=Path("build/core_conv"))
    run = conv.run(x_int, w_int, requant)      # requant: model.requant.Requant, or None
    run.out        # (OC, H, W) int64: levels 0..15 (requant given) or the raw sums
    run = conv.run(x_batch, w_int, requant)    # x_batch (N, C, H, W): out (N, OC, H, W)

The layer runs as the fast WS schedule (model.program.network): with a Requant the SFP
emits each output's level, the next layer's activation; without one it emits the whole
sum (the last conv; BatchNorm and what follows run on the host). An input with negative
levels (the normalized image at features.0) runs as base-16 digits
(model.program.signed_input), down to MIN_LEVEL (-255). The program of a geometry is
built once (kept in memory and under build/, model.program.network.template) and each
run only binds its words in numpy. A batch of images runs in programs of up to
model.program.network.max_batch images each, every weight word loaded once per program
and used for each image's pixels. The simulators:

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

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program.memory_map import useful_macs
from model.program.network import (LayerShape, Template, data_hex, layer_operands, max_batch, template,
                                   template_folder, word_table)
from model.requant import Requant

HERE = Path(__file__).resolve().parent
SIMULATORS = ("verilator", "icarus", "cocotb")

__all__ = ["SIMULATORS", "ConvRun", "CoreConv"]


@dataclass
class ConvRun:
    """One layer on the core. out: (OC, H, W) int64 (levels with a Requant, else raw sums);
    cycles / busy: the core's counters over the program (loads included); macs: useful
    MACs (IC*OC*9*H*W of the layer as given, times the images); images: how many; programs:
    how many programs ran them (a batch split at max_batch); errors: names of the raised error flags (a run
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
    sim_cpu_s: float = 0.0     # the simulator process's CPU time (player runs; steadier than sim_s on a loaded machine)
    images: int = 1
    programs: int = 1

    @property
    def cycles_per_image(self) -> float:
        return self.cycles / self.images

    @property
    def utilization(self) -> float:
        n = self.shape.array_size if self.shape else CONFIG.row
        return self.macs / (n * n * self.cycles) if self.cycles else 0.0


class CoreConv:
    """Runs conv layers on the RTL core (module doc). One instance runs one layer at a time."""

    def __init__(self, sim: str = "verilator", array_size: int = CONFIG.row, build: Path = Path("build/core_conv")):
        if sim not in SIMULATORS:
            raise ModelError(f"sim must be one of {', '.join(SIMULATORS)}, got {sim!r}")
        self.sim, self.array_size = sim, array_size
        self.config = CONFIG.with_array(array_size)
        self.build = Path(build).resolve()
        self.build.mkdir(parents=True, exist_ok=True)
        self.cache = self.build / "templates"
        self.player = None
        if sim != "cocotb":
            from tb.player import Player

            self.player = Player(sim, self.build, self.config)
        self._inst_written: dict[LayerShape, Path] = {}

    def run(self, x_int, w_int, requant: Requant | None = None, batch: int | None = None) -> ConvRun:
        """x_int (C, H, W) int (negative levels: the signed first layer), or a batch (N, C, H, W)
        sharing the weights; w_int (OC, C, 3, 3) in -7..7, requant: the thresholds of the OC
        channels, or None for raw sums. A batch runs in programs of at most `batch` images
        (default: max_batch of the layer); cycles and busy are summed over them."""
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1):
            raise ModelError(f"batch must be an integer of at least 1, got {batch!r}")
        x = np.asarray(x_int)
        if x.ndim != 4:
            return self._run(x_int, w_int, requant)
        try:
            whole = layer_operands(x, w_int, self.array_size, "raw")[0]
        except ModelError:
            if x.ndim == 4 and len(x):       # shared weights (and shapes) first: no image to name
                layer_operands(np.zeros_like(x[0]), w_int, self.array_size, "raw")
            for i in range(len(x)):          # name the image that holds the bad value
                try:
                    layer_operands(x[i], w_int, self.array_size, "raw")
                except ModelError as e:
                    raise ModelError(f"image {i} of the batch: {e}") from None
            raise
        # one image as the whole batch splits it into digit groups (image 0 alone may need fewer)
        one = replace(whole, batch=1)
        size = min(batch or len(x), max_batch(one), self._player_batch(one))
        runs = [self._run_images(x, i, min(i + size, len(x)), w_int, requant) for i in range(0, len(x), size)]
        return ConvRun(out=np.concatenate([r.out for r in runs]), cycles=sum(r.cycles for r in runs),
                       busy=sum(r.busy for r in runs), macs=sum(r.macs for r in runs),
                       build_s=sum(r.build_s for r in runs), sim_s=sum(r.sim_s for r in runs), shape=runs[0].shape,
                       sim_cpu_s=sum(r.sim_cpu_s for r in runs), images=len(x), programs=len(runs))

    def _run_images(self, x: np.ndarray, first: int, end: int, w_int, requant: Requant | None) -> ConvRun:
        """Images first..end-1 of the batch x as one program; an error names them."""
        try:
            return self._run(x[first:end], w_int, requant)
        except ModelError as e:
            raise ModelError(f"images {first}..{end - 1} of the batch: {e}") from None

    def _player_batch(self, one: LayerShape) -> int:
        """Images per program that the player's program memory (MAX_CYCLES) surely holds: a
        program takes at least the physical limit, ic tiles x oc tiles x 9 x H x W cycles
        per image; 25% is left for the loads a template adds (at most 1% at batch 8). The
        cocotb flow runs one image per program."""
        from tb.player import MAX_CYCLES

        if self.sim == "cocotb":
            return 1
        geo = one.geometry
        ideal = geo.n_ic_tiles * geo.n_oc_tiles * 9 * geo.n_onij
        return max(1, int(MAX_CYCLES / (1.25 * ideal)))

    def _run(self, x_int, w_int, requant: Requant | None) -> ConvRun:
        """One program: one image (C, H, W) or a batch (N, C, H, W) that fits it."""
        t0 = time.perf_counter()
        if requant is not None and not isinstance(requant, Requant):
            raise ModelError(f"requant must be a model.requant.Requant or None, got {type(requant).__name__}")
        shape, x, w = layer_operands(x_int, w_int, self.array_size, "requant" if requant is not None else "raw")
        if requant is not None and requant.out_channels != shape.oc:
            raise ModelError(f"requant has {requant.out_channels} channels, the layer {shape.oc} output channels")
        if requant is not None and requant.levels != (1 << self.config.lane_bits) - 1:
            raise ModelError(f"requant has {requant.levels} levels, the SFP {(1 << self.config.lane_bits) - 1}")
        macs = useful_macs(int(np.asarray(x_int).shape[-3]), shape.oc, shape.h, shape.w) * shape.batch
        if self.sim == "cocotb":
            if shape.batch > 1:
                raise ModelError("the cocotb flow runs one image per layer; batches run on the player")
            return self._run_cocotb(x_int, w_int, requant, shape, macs, t0)
        tpl = template(shape, self.cache)
        table = word_table(shape, x, w, *((requant.thresholds, requant.descending) if requant else ()))
        folder = self._folder(tpl)
        (folder / "dxmem.hex").write_bytes(data_hex(tpl, table))
        build_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = self.player.play(folder, tpl.n_words, 0, psums=False, progress=False)
        out = self._arrange(tpl, result.outputs_wide)
        out = out if np.ndim(x_int) == 4 else out[0]
        errors = [name for i, name in enumerate(self.config.error_names) if result.summary["errors"] >> i & 1]
        run = ConvRun(out=out, cycles=int(result.output_counters[-1] - result.summary["start"]),
                      busy=result.summary["busy"], macs=macs, errors=errors, build_s=build_s,
                      sim_s=time.perf_counter() - t1, shape=shape, sim_cpu_s=self.player.last_cpu_s,
                      images=shape.batch)
        self._check(run, tpl)
        return run

    def _folder(self, tpl: Template) -> Path:
        """The shape's run folder of this process (runs in parallel processes share the
        build folder): inst.hex links to the template's."""
        folder = self.build / "runs" / str(os.getpid()) / tpl.shape.key
        if tpl.shape not in self._inst_written:
            stored = template_folder(tpl.shape, self.cache)
            if not (stored / "program.json").is_file():     # built in memory by another caller
                tpl.save(stored)
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / "inst.hex"
            link.unlink(missing_ok=True)
            link.symlink_to(stored / "inst.hex")
            self._inst_written[tpl.shape] = folder
        return folder

    @staticmethod
    def _arrange(tpl: Template, outputs: np.ndarray) -> np.ndarray:
        """Output vectors in emit order -> (batch, OC, H, W)."""
        shape, keys = tpl.shape, tpl.emit_keys
        if len(outputs) != len(keys):
            raise ModelError(f"layer {shape.key}: the core emitted {len(outputs)} output vectors, "
                             f"the program {len(keys)}")
        n, pixels = shape.array_size, shape.batch * shape.h * shape.w
        out = np.zeros((-(-shape.oc // n), pixels, n), dtype=np.int64)
        out[keys[:, 0], keys[:, 1]] = outputs
        out = out.transpose(0, 2, 1).reshape(-1, pixels)[:shape.oc].reshape(shape.oc, shape.batch, shape.h, shape.w)
        return out.transpose(1, 0, 2, 3)

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

    def _run_cocotb(self, x_int, w_int, requant: Requant | None, shape: LayerShape, macs: int, t0: float) -> ConvRun:
        """The layer as the cocotb layer bench's "network" schedule (tb/core_layer.py): the
        bench also checks every psum and output against the reference tiling, the cycle
        count against the program and the busy count against its executes."""
        from tb.core_layer import run_case

        case = {"x_int": np.asarray(x_int, dtype=np.int64), "w_int": np.asarray(w_int, dtype=np.int64),
                "layer": f"core_conv {shape.key}"}
        if requant is not None:
            case.update(thresholds=requant.thresholds, descending=requant.descending)
        build_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        log = self.build / f"cocotb-{os.getpid()}.log"
        try:
            summary = run_case(case, "network", f"core_conv-{os.getpid()}", array_size=self.array_size,
                               log_file=log)[0]
        except (AssertionError, SystemExit) as e:
            raise ModelError(f"layer {shape.key} on the cocotb bench: {str(e).splitlines()[0]} (log {log})") from None
        out = np.array(summary["out"], dtype=np.int64).reshape(shape.oc, shape.h, shape.w)
        return ConvRun(out=out, cycles=summary["cycles"], busy=summary["busy"], macs=macs, errors=summary["errors"],
                       build_s=build_s, sim_s=time.perf_counter() - t1, shape=shape)
