"""Bench pieces for the core: a program driver, readers of what the core wrote (pmem
writes, SFP outputs), and a scoreboard that names the first difference.

The DUT is tb/core_harness.v: `core` with its clock, program player and result recorders
in HDL, so Python wakes once per program instead of once per cycle. Driver, monitors,
model and checker are kept apart: the driver only hands a program to the HDL player, the
monitors only read back what the HDL recorders saw, and the scoreboard asks the reference
tiling (model.tiling) what each observed value should have been.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge

from model.hwconfig import CONFIG
from model.program import Program, ProgramReference
from tb.player import digit_lanes, hex_values, top_digit_max
from tb.tbutil import param

ERROR_NAMES = CONFIG.error_names   # core.errors, bit 0 first


def expected_flags(overflows: list[str]) -> list[str]:
    """The error flags the core must raise for a reference's overflow report (model.tiling):
    an OS PE sum (os_acc / os_out lines) -> OS PE overflow; an SFP sum or emitted value
    (acc / out / sfp_out lines) -> SFP overflow. A WS psum line cannot occur: the core's
    elaboration check bounds a column of row products by psum_bw."""
    raised = set()
    for line in overflows:
        if line.startswith("psum["):
            raise AssertionError(f"a WS psum the core cannot hold: {line}")
        if line.startswith("os_"):
            raised.add("OS PE overflow")
        elif line.startswith(("acc[", "out[", "sfp_out[")):
            raised.add("SFP overflow")
    return [name for name in ERROR_NAMES if name in raised]


def waves_hint() -> str:
    path = os.environ.get("WAVES_PATH")
    return f"waveform: {path}" if path else "rerun with WAVES=1 for a waveform"


class ProgramDriver:
    """Hands a Program to the harness's HDL player, which puts instruction k on `inst`
    during cycle k, and waits until it has played it (and two idle cycles).

    Each program gets its own folder program<k>/ in the simulator's working directory:
    the program's hex files, and what the recorders saw while it played. Records the
    core's own cycle counter in the cycle the compute part of the program starts, so the
    cycle count comes from the RTL."""

    def __init__(self, dut):
        self.dut = dut
        self.max_words = param(dut, "max_words")
        self.played = 0
        self.counter_at_start = None

    async def send(self, program: Program) -> Path:
        """Play `program`; returns its folder. ModelError for a program without words or
        with lists of other lengths (Program.save_hex), ValueError for one too long."""
        if len(program.inst) > self.max_words:
            raise ValueError(f"a program of {len(program.inst)} words exceeds the harness's "
                             f"max_words = {self.max_words} (tb/core_harness.v)")
        folder = Path.cwd() / f"program{self.played}"
        program.save_hex(folder)
        dut = self.dut
        dut.prog_index.value = self.played
        dut.n_words.value = len(program.inst)
        dut.start_word.value = program.compute_start
        dut.go.value = 1
        await RisingEdge(dut.done)
        dut.go.value = 0
        await FallingEdge(dut.done)
        self.counter_at_start = int(dut.start_counter.value)
        self.played += 1
        return folder


@dataclass
class PsumWrites:
    """Every pmem write of one program, in order: row i is write i."""
    addr: np.ndarray          # [n] pmem address
    lanes: np.ndarray         # [n, col] the psum vector, int64, column 0 first
    time_ns: np.ndarray       # [n] int64, ns

    def __len__(self) -> int:
        return len(self.addr)


@dataclass
class SfpOutputs:
    """Every SFP output of one program, in order: row i is output i."""
    lanes: np.ndarray         # [n, col] sfp_out (psum_bw lanes), int64
    time_ns: np.ndarray       # [n] int64, ns
    counter: np.ndarray       # [n] the core's cycle counter with it on sfp_out
    wide: np.ndarray          # [n, col] sfp_wide (acc_bw lanes): raw sums, levels

    def __len__(self) -> int:
        return len(self.counter)


#: digits of a recorded time: {$time} is a 64-bit vector, %h prints all its 16 digits
TIME_DIGITS = 16
#: the core's cycle counter (rtl/core.v `cycles`), the key of outputs.txt
COUNTER_BITS = 32
#: characters of a bad line a read error echoes: a line of megabytes must not become the message
ECHO = 80


def read_recording(path: Path, key_bits: int, bits: int, lanes: int, wide: int = 0) -> tuple:
    """A recorder file of core_harness.v, one line per event, every field in hex in the
    digits of its bus (%h: every line alike): time (ns, $time: TIME_DIGITS), a key of
    `key_bits` bits, a vector (and, with `wide`, a second vector of `wide`-bit lanes).
    Returns the times and keys, [n] int64, and the vectors' lanes (tb.player.digit_lanes),
    [n, lanes] int64, two's complement of `bits` bits (then the wide lanes), lane 0 from
    the low bits. ValueError naming the file and line for an X or Z bit, a field not in its
    bus's digits (the first line's included), a field above its bus's bits (a key of
    `key_bits` bits, a vector of `bits` x `lanes`) or a time int64 cannot hold (>= 2**63 ns):
    numpy reads the whole file at once."""
    data = path.read_bytes()
    lane_bits = [bits, wide] if wide else [bits]
    if not data:    # no event
        return (np.zeros(0, dtype=np.int64),) * 2 + tuple(np.zeros((0, lanes), dtype=np.int64) for _ in lane_bits)
    widths = [TIME_DIGITS] + [(b * k + 3) // 4 for b, k in [(key_bits, 1)] + [(b, lanes) for b in lane_bits]]
    template = np.frombuffer(b" ".join(b"0" * w for w in widths) + b"\n", dtype=np.uint8)   # 0: a digit
    n, rest = divmod(len(data), len(template))
    values = hex_values(data).reshape(n, len(template)) if not rest else None
    if rest or not np.where(template == ord("0"), values <= 15,
                            np.frombuffer(data, dtype=np.uint8).reshape(n, len(template)) == template).all():
        line = re.compile(rb" ".join(rb"[0-9a-fA-F]{%d}" % w for w in widths) + rb"\n")
        number, text = next((i + 1, t) for i, t in enumerate(data.splitlines(keepends=True)) if not line.fullmatch(t))
        shown = text.decode(errors="replace")
        shown = repr(shown[:ECHO]) + "..." if len(shown) > ECHO else repr(shown)
        raise ValueError(f"{path} line {number}: {'an empty line' if not text.strip() else shown} is not {len(widths)} "
                         f"hex fields of {widths} digits (an X or Z bit?)")
    start = np.cumsum([0] + [w + 1 for w in widths])
    # each field's top digit holds only what its bits leave (an 11-bit key's: 0..7; %h never
    # writes more, an edited file may); the time's 63 bits are what int64 holds
    field_bits = [63, key_bits] + [b * lanes for b in lane_bits]
    over = values[:, start[:-1]] > [top_digit_max(b) for b in field_bits]
    if over.any():
        line, i = np.argwhere(over)[0]
        at = line * len(template) + start[i]
        raise ValueError(f"{path} line {line + 1}: {['time', 'key', 'vector', 'wide vector'][i]} "
                         f"{data[at:at + widths[i]].decode()} does not fit "
                         f"{'int64 (2**63 ns or more)' if i == 0 else f'{field_bits[i]} bits'}")
    field = [values[:, start[i]:start[i + 1] - 1] for i in range(len(widths))]
    times, keys = (digit_lanes(f, 4 * f.shape[1], 1, signed=False)[:, 0] for f in field[:2])
    return (times, keys, *(digit_lanes(f, b, lanes) for f, b in zip(field[2:], lane_bits)))


class PmemWriteMonitor:
    """Every psum vector written into pmem, as the harness recorded it (psums.txt: time,
    address, vector; sampled mid-cycle, when the inputs are stable)."""

    def __init__(self, psum_bw: int, col: int):
        self.psum_bw, self.col = psum_bw, col

    def read(self, folder: Path) -> PsumWrites:
        times, addrs, lanes = read_recording(folder / "psums.txt", CONFIG.addr_bits, self.psum_bw, self.col)
        return PsumWrites(addrs, lanes, times)


class SfpOutputMonitor:
    """Every vector the SFP emitted (sfp_valid), with the core's cycle counter, as the
    harness recorded it (outputs.txt: time, counter, vector, wide vector)."""

    def __init__(self, psum_bw: int, col: int, acc_bw: int):
        self.psum_bw, self.col, self.acc_bw = psum_bw, col, acc_bw

    def read(self, folder: Path) -> SfpOutputs:
        times, counters, lanes, wide = read_recording(folder / "outputs.txt", COUNTER_BITS, self.psum_bw, self.col,
                                                     wide=self.acc_bw)
        return SfpOutputs(lanes, times, counters, wide)


class LayerScoreboard:
    """Compares what the monitors saw with the reference tiling, value by value (numpy
    finds the differing vectors; only those are described)."""

    def __init__(self, expected: ProgramReference, representable_only: bool = False):
        """representable_only: skip vectors with a reference value outside psum_bw (a layer
        that overflows on purpose; the error flags must then say so)."""
        self.program = expected.program
        self.expected = expected
        half = 1 << (expected.ref.psum_bw - 1)
        self.representable_only, self.lo, self.hi = representable_only, -half, half - 1
        self.skipped = 0
        none, no_lanes = np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.int64)
        self.psums = PsumWrites(none, no_lanes, none)
        self.outputs = SfpOutputs(no_lanes, none, none, no_lanes)
        self.psum_errors: list[str] = []
        self.output_errors: list[str] = []

    def compare(self, psums: PsumWrites, outputs: SfpOutputs) -> None:
        """Record every error of one played program (check() raises on the first)."""
        self.psums, self.outputs = psums, outputs
        want_addr = np.array([addr for addr, _ in self.program.psum_writes], dtype=np.int64)
        for i in self._differing(psums.lanes, self.expected.psums, psums.addr, want_addr):
            addr, time_ns = psums.addr[i], psums.time_ns[i]
            if i >= len(want_addr):
                self.psum_errors.append(f"unexpected pmem write #{i} at addr {addr} at {time_ns} ns")
                continue
            if self._unrepresentable(self.expected.psums[i]):
                continue
            where = self.expected.describe_psum(i)
            if addr != want_addr[i]:
                self.psum_errors.append(f"psum write #{i} went to pmem addr {addr}, expected "
                                        f"{want_addr[i]} ({where}) at {time_ns} ns")
            for c, (e, g) in enumerate(zip(self.expected.psums[i].tolist(), psums.lanes[i].tolist())):
                if e != g:
                    self.psum_errors.append(
                        f"psum mismatch: {where} column={c} (pmem addr {addr}): expected {e}, "
                        f"got {g} at {time_ns} ns")
                    break
        # raw sums and levels are read from sfp_wide (sfp_out holds their low psum_bw bits)
        emitted = outputs.lanes if self.program.emit == "relu" else outputs.wide
        for i in self._differing(emitted, self.expected.outputs):
            if i >= len(self.program.emits):
                self.output_errors.append(f"unexpected SFP output #{i} at {outputs.time_ns[i]} ns")
                continue
            if self._unrepresentable(self.expected.outputs[i]):
                continue
            for c, (e, g) in enumerate(zip(self.expected.outputs[i].tolist(), emitted[i].tolist())):
                if e != g:
                    self.output_errors.append(
                        f"output mismatch: {self.expected.describe_output(i)} column={c}: expected {e}, "
                        f"got {g} at {outputs.time_ns[i]} ns")
                    break

    @staticmethod
    def _differing(got: np.ndarray, want: np.ndarray, got_keys=None, want_keys=None) -> list[int]:
        """Indices (ascending) of the observed vectors ([n, lanes]) that differ from the
        expected ones in a lane or in their key ([n]), or that have no expected vector."""
        n = min(len(got), len(want))
        bad = np.zeros(len(got), dtype=bool)
        bad[n:] = True
        if n:
            bad[:n] = (got[:n] != want[:n]).any(axis=1)
        if got_keys is not None:
            m = min(len(got_keys), len(want_keys))
            bad[:m] |= got_keys[:m] != want_keys[:m]
        return np.flatnonzero(bad).tolist()

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
    """The program driver, both monitors and the reset around a core_harness DUT.

    Programs may run back to back in one simulation; each is checked by the scoreboard
    given with it (None: played unchecked, e.g. one cut off halfway)."""

    def __init__(self, dut):
        self.dut = dut
        self.psum_bw = param(dut, "psum_bw")
        self.acc_bw = param(dut, "acc_bw")
        self.col = param(dut, "col")
        self.row = param(dut, "row")
        self.driver = ProgramDriver(dut)
        self.psum_monitor = PmemWriteMonitor(self.psum_bw, self.col)
        self.out_monitor = SfpOutputMonitor(self.psum_bw, self.col, self.acc_bw)
        # the last play() (load, simulate, read back, compare): wall time, and CPU time of
        # this process, i.e. the simulator with cocotb in it (robust on a loaded machine)
        self.wall_s = self.cpu_s = 0.0

    async def reset(self) -> None:
        """The harness holds reset for its first 3 cycles: wait until it lets go."""
        if int(self.dut.reset.value):
            await FallingEdge(self.dut.reset)

    async def play(self, program: Program, scoreboard: LayerScoreboard | None) -> int:
        """Play `program`; return how far the core's busy counter moved meanwhile."""
        t0, c0 = time.perf_counter(), time.process_time()
        busy_before = int(self.dut.busy.value)
        folder = await self.driver.send(program)
        if scoreboard is not None:
            scoreboard.compare(self.psum_monitor.read(folder), self.out_monitor.read(folder))
        self.wall_s, self.cpu_s = time.perf_counter() - t0, time.process_time() - c0
        return int(self.dut.busy.value) - busy_before

    def errors(self) -> list[str]:
        bits = int(self.dut.errors.value)
        return [name for i, name in enumerate(ERROR_NAMES) if bits >> i & 1]
