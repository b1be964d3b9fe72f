"""Bench pieces for the core: a program driver, monitors on the pmem write port and the
SFP output, and a scoreboard that names the first difference.

Driver, monitors, model and checker are kept apart: the driver only plays instruction
words, the monitors only record what the DUT did, and the scoreboard asks the reference
tiling (model.tiling) what each observed value should have been.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotb.simtime import get_sim_time
from cocotb_bus.drivers import Driver
from cocotb_bus.monitors import Monitor

from model.program import Program, ProgramReference, encode

IDLE_WORD = encode({})  # active-low SRAM enables: an all-zero word would write both SRAMs
from tbutil import param, start_clock_and_reset, unpack

ERROR_NAMES = ["L0 overflow", "L0 underflow", "IFIFO overflow", "IFIFO underflow",
               "OFIFO overflow", "OFIFO underflow", "SFP overflow", "PE overflow (OS)"]


def expected_flags(overflows: list[str]) -> list[str]:
    """The error flags the core must raise for a reference's overflow report (model.tiling):
    an OS PE sum (os_acc / os_out lines) -> PE overflow (OS); an SFP sum or emitted value
    (acc / out / sfp_out lines) -> SFP overflow. A WS psum line cannot occur: the core's
    elaboration check bounds a column of row products by psum_bw."""
    raised = set()
    for line in overflows:
        if line.startswith("psum["):
            raise AssertionError(f"a WS psum the core cannot hold: {line}")
        if line.startswith("os_"):
            raised.add("PE overflow (OS)")
        elif line.startswith(("acc[", "out[", "sfp_out[")):
            raised.add("SFP overflow")
    return [name for name in ERROR_NAMES if name in raised]


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

    def __init__(self, expected: ProgramReference, representable_only: bool = False):
        """representable_only: skip vectors with a reference value outside psum_bw (a layer
        that overflows on purpose; the error flags must then say so)."""
        self.program = expected.program
        self.expected = expected
        half = 1 << (expected.ref.psum_bw - 1)
        self.representable_only, self.lo, self.hi = representable_only, -half, half - 1
        self.skipped = 0
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
        addr, _ = self.program.psum_writes[i]
        where = self.expected.describe_psum(i)
        if self._unrepresentable(self.expected.psums[i]):
            return
        if write.addr != addr:
            self.psum_errors.append(f"psum write #{i} went to pmem addr {write.addr}, expected {addr} "
                                    f"({where}) at {write.time_ns} ns")
        for c, (e, g) in enumerate(zip(self.expected.psums[i].tolist(), write.lanes)):
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
        if self._unrepresentable(self.expected.outputs[i]):
            return
        for c, (e, g) in enumerate(zip(self.expected.outputs[i].tolist(), out.lanes)):
            if e != g:
                self.output_errors.append(
                    f"output mismatch: {self.expected.describe_output(i)} column={c}: expected {e}, "
                    f"got {g} at {out.time_ns} ns")
                break

    def _unrepresentable(self, values) -> bool:
        skip = self.representable_only and bool(((values < self.lo) | (values > self.hi)).any())
        self.skipped += skip
        return skip

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
        self.psum_bw = param(dut, "psum_bw")
        self.acc_bw = param(dut, "acc_bw")
        self.col = param(dut, "col")
        self.row = param(dut, "row")
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
        self.dut.inst.value = IDLE_WORD
        self.dut.D_xmem.value = 0
        await start_clock_and_reset(self.dut, cycles=3)

    async def play(self, program: Program, scoreboard: LayerScoreboard | None) -> int:
        """Play `program`; return how far the core's busy counter moved meanwhile."""
        self.active = scoreboard
        busy_before = int(self.dut.busy.value)
        await self.driver.send(program)
        await ClockCycles(self.dut.clk, 2)
        self.active = None
        return int(self.dut.busy.value) - busy_before

    def errors(self) -> list[str]:
        bits = int(self.dut.errors.value)
        return [name for i, name in enumerate(ERROR_NAMES) if bits >> i & 1]
