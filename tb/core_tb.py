"""Bench pieces for the core: a program driver, monitors on the pmem write port and the
SFP output, and a scoreboard that names the first difference.

Driver, monitors, model and checker are kept apart: the driver only plays instruction
words, the monitors only record what the DUT did, and the scoreboard asks the reference
tiling (model.tiling) what each observed value should have been.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotb.utils import get_sim_time
from cocotb_bus.drivers import Driver
from cocotb_bus.monitors import Monitor

from model.program import Program, encode
from model.tiling import os_reference, ws_reference

IDLE_WORD = encode({})  # active-low SRAM enables: an all-zero word would write both SRAMs
from tbutil import unpack

ERROR_NAMES = ["L0 overflow", "L0 underflow", "IFIFO overflow", "IFIFO underflow",
               "OFIFO overflow", "OFIFO underflow", "SFP overflow"]


def waves_hint() -> str:
    path = os.environ.get("WAVES_PATH")
    return f"waveform: {path}" if path else "rerun with WAVES=1 for a waveform"


class ProgramDriver(Driver):
    """Plays a Program: instruction k is on `inst` during cycle k (set after rising edge k).

    Records the value of the core's own cycle counter in the cycle the compute part of
    the program starts, so the cycle count comes from the RTL."""

    def __init__(self, dut):
        self.dut = dut
        self.inst = dut.inst
        self.d_xmem = dut.D_xmem
        self.counter_at_start = None
        super().__init__()

    async def _driver_send(self, program: Program, sync: bool = True, **kwargs) -> None:
        for k, (word, data) in enumerate(zip(program.inst, program.d_xmem)):
            await RisingEdge(self.dut.clk)
            self.inst.value = word
            self.d_xmem.value = data
            if k == program.compute_start:
                await FallingEdge(self.dut.clk)
                self.counter_at_start = int(self.dut.cycles.value)
        await RisingEdge(self.dut.clk)
        self.inst.value = IDLE_WORD
        self.d_xmem.value = 0


@dataclass
class PsumWrite:
    addr: int
    lanes: list[int]
    time_ns: float


@dataclass
class SfpOutput:
    lanes: list[int]
    time_ns: float
    counter: int


class PmemWriteMonitor(Monitor):
    """Every psum vector written into pmem (sampled mid-cycle, when inputs are stable)."""

    def __init__(self, dut, psum_bw: int, col: int, callback=None):
        self.dut = dut
        self.port = dut.u_pmem
        self.psum_bw, self.col = psum_bw, col
        super().__init__(callback)

    async def _monitor_recv(self):
        cen, wen, addr, data = self.port.CEN, self.port.WEN, self.port.A, self.port.D
        while True:
            await FallingEdge(self.dut.clk)
            if not int(cen.value) and not int(wen.value):
                self._recv(PsumWrite(int(addr.value),
                                     unpack(int(data.value), self.psum_bw, self.col, signed=True),
                                     get_sim_time("ns")))


class SfpOutputMonitor(Monitor):
    """Every vector the SFP emits (sfp_valid), with the core's cycle counter."""

    def __init__(self, dut, psum_bw: int, col: int, callback=None):
        self.dut = dut
        self.psum_bw, self.col = psum_bw, col
        super().__init__(callback)

    async def _monitor_recv(self):
        valid, out, cycles = self.dut.sfp_valid, self.dut.sfp_out, self.dut.cycles
        while True:
            await FallingEdge(self.dut.clk)
            if int(valid.value):
                self._recv(SfpOutput(unpack(int(out.value), self.psum_bw, self.col, signed=True),
                                     get_sim_time("ns"), int(cycles.value)))


class LayerScoreboard:
    """Compares what the monitors saw with the reference tiling, value by value."""

    def __init__(self, program: Program, expected):
        """expected: an Expectation for the program's keys (see expected_from_reference)."""
        self.program = program
        self.expected = expected
        self.psums: list[PsumWrite] = []
        self.outputs: list[SfpOutput] = []
        self.psum_errors: list[str] = []
        self.output_errors: list[str] = []

    def on_psum(self, write: PsumWrite) -> None:
        i = len(self.psums)
        self.psums.append(write)
        if i >= len(self.program.psum_writes):
            self.psum_errors.append(f"unexpected pmem write #{i} at addr {write.addr} at {write.time_ns} ns")
            return
        addr, key = self.program.psum_writes[i]
        where = self.expected.describe_psum(key)
        if write.addr != addr:
            self.psum_errors.append(f"psum write #{i} went to pmem addr {write.addr}, expected {addr} "
                                    f"({where}) at {write.time_ns} ns")
        for c, (e, g) in enumerate(zip(self.expected.psum(key), write.lanes)):
            if e != g:
                self.psum_errors.append(
                    f"psum mismatch: {where} column={c} (pmem addr {write.addr}): expected {e}, "
                    f"got {g} at {write.time_ns} ns")
                break

    def on_output(self, out: SfpOutput) -> None:
        i = len(self.outputs)
        self.outputs.append(out)
        if i >= len(self.program.emits):
            self.output_errors.append(f"unexpected SFP output #{i} at {out.time_ns} ns")
            return
        key = self.program.emits[i]
        for c, (e, g) in enumerate(zip(self.expected.out(key), out.lanes)):
            if e != g:
                self.output_errors.append(
                    f"output mismatch: {self.expected.describe_out(key)} column={c}: expected {e}, "
                    f"got {g} at {out.time_ns} ns")
                break

    def check(self) -> None:
        """Raise on the first difference, the psums first (they explain the outputs)."""
        hint = waves_hint()
        assert not self.psum_errors, f"{self.psum_errors[0]} ({len(self.psum_errors)} psum errors); {hint}"
        assert len(self.psums) == len(self.program.psum_writes), (
            f"saw {len(self.psums)} psum writes, expected {len(self.program.psum_writes)}; {hint}")
        assert not self.output_errors, f"{self.output_errors[0]} ({len(self.output_errors)} output errors); {hint}"
        assert len(self.outputs) == len(self.program.emits), (
            f"saw {len(self.outputs)} SFP outputs, expected {len(self.program.emits)}; {hint}")


class CoreTB:
    """Clock, reset, the program driver and both monitors around a `core` DUT.

    Programs may run back to back in one simulation; the monitors report to the
    scoreboard of the program being played (None while an aborted one plays)."""

    def __init__(self, dut):
        self.dut = dut
        self.psum_bw = int(dut.psum_bw.value)
        self.acc_bw = int(dut.acc_bw.value)
        self.col = int(dut.col.value)
        self.row = int(dut.row.value)
        self.driver = ProgramDriver(dut)
        self.active: LayerScoreboard | None = None
        self.psum_monitor = PmemWriteMonitor(dut, self.psum_bw, self.col, self._on_psum)
        self.out_monitor = SfpOutputMonitor(dut, self.psum_bw, self.col, self._on_output)

    def _on_psum(self, write: PsumWrite) -> None:
        if self.active is not None:
            self.active.on_psum(write)

    def _on_output(self, out: SfpOutput) -> None:
        if self.active is not None:
            self.active.on_output(out)

    async def reset(self) -> None:
        Clock(self.dut.clk, 10, unit="ns").start()
        self.dut.inst.value = IDLE_WORD
        self.dut.D_xmem.value = 0
        self.dut.reset.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.reset.value = 0

    async def play(self, program: Program, scoreboard: LayerScoreboard | None) -> None:
        self.active = scoreboard
        await self.driver.send(program)
        await ClockCycles(self.dut.clk, 2)
        self.active = None

    def errors(self) -> list[str]:
        bits = int(self.dut.errors.value)
        return [name for i, name in enumerate(ERROR_NAMES) if bits >> i & 1]


class Expectation:
    """What the reference tiling says each program key should hold.

    Weight-stationary keys: psum (ict, oct, kij, nij), output (oct, o_nij).
    Output-stationary keys: (group, oct, row) for output pixel group*8 + row, psum
    before and output after ReLU."""

    def __init__(self, x_int, w_int, program: Program, psum_bw: int, acc_bw: int):
        self.program = program
        self.n = program.array_size
        if program.dataflow == "ws":
            self.ref = ws_reference(x_int, w_int, array_size=self.n, psum_bw=psum_bw, acc_bw=acc_bw)
            self.out_tiles = self.ref.out_tiles(relu=True)
        else:
            self.ref = os_reference(x_int, w_int, array_size=self.n, psum_bw=psum_bw)
        assert not self.ref.overflows, f"the reference overflows the hardware widths: {self.ref.overflows[0]}"

    def psum(self, key) -> list[int]:
        if self.program.dataflow == "ws":
            ict, oct, kij, nij = key
            return [int(v) for v in self.ref.psum[ict, oct, :, nij, kij]]
        g, oct, row = key
        return [int(v) for v in self.ref.out[g, oct, row]]

    def out(self, key) -> list[int]:
        if self.program.dataflow == "ws":
            oct, o_nij = key
            return [int(v) for v in self.out_tiles[oct, :, o_nij]]
        g, oct, row = key
        return [int(v) for v in self.ref.out_relu[g, oct, row]]

    def describe_psum(self, key) -> str:
        if self.program.dataflow == "ws":
            ict, oct, kij, nij = key
            return f"kij={kij} nij={nij} (ic_tile={ict} oc_tile={oct})"
        g, oct, row = key
        return f"output pixel {g * self.n + row} (group={g} row={row} oc_tile={oct})"

    def describe_out(self, key) -> str:
        if self.program.dataflow == "ws":
            oct, o_nij = key
            return f"o_nij={o_nij} (oc_tile={oct})"
        return self.describe_psum(key)

    def output_pixel(self, key) -> tuple[int, int]:
        """(oc tile, output pixel) of an emit key."""
        if self.program.dataflow == "ws":
            return key
        g, oct, row = key
        return oct, g * self.n + row

    @property
    def useful_macs(self) -> int:
        r = self.ref
        return r.n_ic_tiles * r.n_oc_tiles * self.n * self.n * 9 * r.Ho * r.Wo


def hardware_outputs(expected: Expectation, scoreboard: LayerScoreboard, oc: int, n_onij: int) -> np.ndarray:
    """The SFP outputs arranged as [OC, n_onij]."""
    n = expected.n
    n_oct = -(-oc // n)
    out = np.zeros((n_oct * n, n_onij), dtype=np.int64)
    for key, seen in zip(expected.program.emits, scoreboard.outputs):
        oct, o_nij = expected.output_pixel(key)
        if o_nij < n_onij:
            out[oct * n:(oct + 1) * n, o_nij] = seen.lanes
    return out[:oc]
