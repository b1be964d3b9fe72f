"""Small shared pieces of the cocotb benches: clock and reset, parameters, packing, and
the lockstep model-vs-DUT machinery (LockstepTB)."""
from __future__ import annotations

import os
import random
from collections import Counter
from typing import Iterator, NamedTuple

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from model.program import pack_lanes as pack  # noqa: F401  (the one packer, shared with the program builder)


def param(dut, name: str) -> int:
    """Read an HDL parameter back from the DUT, so the bench follows the build."""
    value = getattr(dut, name).value
    return value if isinstance(value, int) else value.to_unsigned()


def uint(handle) -> int:
    """Unsigned value of a signal of any width (a 1-bit signal reads as Logic, not LogicArray).

    Raises ValueError when any bit is X or Z, so an unknown never passes a check.
    """
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def seeded_rng(dut, default: int | None = None) -> random.Random:
    """A private RNG for one test, its seed logged so a failure can be replayed.

    The seed is TB_SEED when set, else cocotb's per-test seed (cocotb.RANDOM_SEED, which
    cocotb 2.x derives from COCOTB_RANDOM_SEED and the test's name), else `default`.
    """
    if "TB_SEED" in os.environ:
        seed = int(os.environ["TB_SEED"])
    elif getattr(cocotb, "RANDOM_SEED", None) is not None:
        seed = int(cocotb.RANDOM_SEED)
    else:
        seed = 1 if default is None else default
    dut._log.info("random seed %d (rerun this test with TB_SEED=%d)", seed, seed)
    return random.Random(seed)


async def start_clock_and_reset(dut, clk: str = "clk", reset: str | None = "reset", cycles: int = 2, period_ns: int = 10):
    """Start the clock, hold reset for `cycles` rising edges, then release it.

    Returns just after the first rising edge that sampled reset low. Like every driver
    here, reset is written right after a rising edge, so the next edge samples it and a
    monitor sampling in ReadOnly after an edge sees what the following edge will take.
    """
    Clock(getattr(dut, clk), period_ns, unit="ns").start()
    if reset is not None:
        getattr(dut, reset).value = 1
        await ClockCycles(getattr(dut, clk), cycles)
        getattr(dut, reset).value = 0
    await RisingEdge(getattr(dut, clk))


def signed(value, bits: int):
    """The low `bits` bits of `value` read as two's complement (so wrapped to `bits` bits).

    Works on a Python int and, lane by lane, on a numpy integer array.
    """
    half = 1 << (bits - 1)
    return ((value + half) & ((1 << bits) - 1)) - half


_signed = signed  # unpack's `signed` flag hides the name there


def unpack(word: int, bits: int, lanes: int, signed: bool) -> list[int]:
    """The inverse of pack (model.program.pack_lanes): lane i of `word`, lane 0 in the low bits."""
    mask = (1 << bits) - 1
    values = [(int(word) >> (i * bits)) & mask for i in range(lanes)]
    return [_signed(v, bits) for v in values] if signed else values


class Phase(NamedTuple):
    """One phase of a random FIFO run: write and read probabilities, the cycle of the phase
    that carries a reset (None: none), and how many cycles it lasts."""
    p_wr: float
    p_rd: float
    reset_at: int | None
    length: int


def fifo_phases(rng: random.Random, mixes, phases: int, depth: int, longest: int) -> Iterator[Phase]:
    """The phases of a random FIFO run, cycling through `mixes` ((P(wr), P(rd)) pairs: fill,
    drain, balanced, ...). Every 7th phase carries a reset in one of its first 5 cycles. A
    fill-heavy phase (P(wr) - P(rd) >= 0.5) lasts 3 to 4 depths + 10 cycles, so it always
    fills up and pushes against full; any other lasts 5 to `longest` cycles."""
    for phase in range(phases):
        p_wr, p_rd = mixes[phase % len(mixes)]
        reset_at = rng.randrange(5) if phase % 7 == 6 else None
        if p_wr - p_rd >= 0.5:
            length = rng.randint(3 * depth + 10, 4 * depth + 10)
        else:
            length = rng.randint(5, longest)
        yield Phase(p_wr, p_rd, reset_at, length)


class LockstepTB:
    """Driver, monitor and checker of a bench that runs a Python model in lockstep with
    the DUT, one step per rising edge.

    Driver: set() writes the inputs; cycle() does so on the next falling edge, so the
    following rising edge takes them (and a test can first look at the outputs there).
    Monitor: at each rising edge samples the inputs that edge takes, steps the model with
    them, then in ReadOnly reads the outputs the edge made. Checker: every output against
    the model's after every edge; an error names the output, lane, expected, got, edge and
    time, and the inputs the edge took.

    A subclass says only what differs:
      INPUTS, OUTPUTS  port names (reset among the inputs); the model's clock() takes, and
                       its outputs() returns, dicts keyed by these names.
      packed           port -> (bits, lanes) for a bus that carries one value per lane:
                       set() takes, and the monitor and outputs() give, a list for it.
      SIGNED           ports that carry two's complement (a packed one lane by lane): set()
                       takes signed values for them (a scalar one raw bits too), and the
                       monitor and outputs() give signed values (so does the model there).
      LANE             what a lane is called in messages ("lane", "column").
      POP_EVENT        the model event meaning "the DUT handed out the head (rd_data) it
                       showed before the edge"; the monitor appends that head to self.popped.
      model_state()    a line on the model's state for failure messages.
    The model: reset(), clock(inputs) -> Counter of events (coverage), outputs() -> dict.
    """

    INPUTS: tuple[str, ...] = ()
    OUTPUTS: tuple[str, ...] = ()
    SIGNED: tuple[str, ...] = ()
    LANE = "lane"
    POP_EVENT: str | None = None

    def __init__(self, dut, model, packed: dict[str, tuple[int, int]] | None = None):
        self.dut = dut
        self.model = model
        self.packed = dict(packed or {})
        self.edges = 0
        self.cover = Counter()
        self.popped: list = []   # what the DUT handed out, in order (for stream checks)

    async def start(self):
        """Idle inputs, clock, reset, then the monitor (it never sees the reset edges,
        which the model's initial state stands for)."""
        self.set()
        await start_clock_and_reset(self.dut)
        cocotb.start_soon(self._monitor())

    def set(self, **inputs) -> None:
        """Write every input now: the ones named, the others 0 (a packed one as a list)."""
        unknown = set(inputs) - set(self.INPUTS)
        if unknown:
            raise TypeError(f"{type(self).__name__}.set(): no input {sorted(unknown)} (inputs {self.INPUTS})")
        for port in self.INPUTS:
            value = inputs.get(port, 0)
            handle = getattr(self.dut, port)
            if port in self.packed:
                bits, lanes = self.packed[port]
                values = value or [0] * lanes
                assert len(values) == lanes, f"{port}: {len(values)} values for {lanes} lanes"
                value = pack(values, bits, signed=port in self.SIGNED)
            elif port in self.SIGNED:
                value = pack([value], len(handle))  # two's complement or raw bits; out of range raises
            handle.value = value

    async def cycle(self, **inputs) -> None:
        """On the next falling edge present `inputs` (others 0) for the following rising edge."""
        await FallingEdge(self.dut.clk)
        self.set(**inputs)

    def _read(self, ports) -> dict:
        """Port values (unsigned, or signed for SIGNED), a packed one as a list; an X or Z
        fails here, by name."""
        values = {}
        for port in ports:
            handle = getattr(self.dut, port)
            assert handle.value.is_resolvable, f"{get_sim_time('ns'):.0f} ns: {port} is {handle.value} (X/Z)"
            values[port] = uint(handle)
            if port in self.packed:
                bits, lanes = self.packed[port]
                values[port] = unpack(values[port], bits, lanes, signed=port in self.SIGNED)
            elif port in self.SIGNED:
                values[port] = signed(values[port], len(handle))
        return values

    def outputs(self) -> dict:
        """The DUT's outputs as they are now (call between edges)."""
        return self._read(self.OUTPUTS)

    def assert_covered(self, *events: str) -> None:
        """Log the coverage so far; each of `events` must have happened at least once."""
        self.dut._log.info("coverage over %d edges: %s", self.edges, dict(self.cover))
        for what in events:
            assert self.cover[what] > 0, f"random stimulus never hit {what}: {dict(self.cover)}"

    def model_state(self) -> str:
        """What the model holds, for failure messages (a subclass says)."""
        return ""

    async def _monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            i = self._read(self.INPUTS)
            before = self.model.outputs()
            event = self.model.clock(i)
            if self.POP_EVENT and event[self.POP_EVENT]:
                self.popped.append(before["rd_data"])
            self.cover.update(event)
            await ReadOnly()
            self.edges += 1
            self._check(i)

    def _check(self, i: dict) -> None:
        """Every output against the model (a packed one as a whole: every lane)."""
        got, want = self.outputs(), self.model.outputs()
        assert want.keys() == got.keys(), f"the model gives {sorted(want)}, the DUT {sorted(got)}: bench bug"
        for name in self.OUTPUTS:
            if got[name] != want[name]:
                raise AssertionError(self._mismatch(name, got, want, i))

    def _mismatch(self, name: str, got: dict, want: dict, i: dict) -> str:
        """The failure message for output `name` (built only on a failure): the first lane
        that differs, the edge and time, the inputs it took and the model's state."""
        where = f"edge {self.edges} ({get_sim_time('ns'):.0f} ns)"
        context = f"inputs at that edge {i}; model: {self.model_state()} (all outputs expected {want}, got {got})"
        form = "d" if name in self.SIGNED else "#x"
        g, w = got[name], want[name]
        if isinstance(w, list):
            if len(g) != len(w):
                return f"{where}: {name} has {len(g)} lanes, model {len(w)}"
            lane = next(n for n, (a, b) in enumerate(zip(g, w)) if a != b)
            return f"{where}: {self.LANE} {lane} {name} expected {w[lane]:{form}}, got {g[lane]:{form}}; {context}"
        return f"{where}: {name} expected {w:{form}}, got {g:{form}}; {context}"
