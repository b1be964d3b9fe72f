"""skew: lane i of `out` is `in` delayed by i cycles; lane 0 is `in` itself; reset clears.

Driver: writes `in` (and reset) right after each rising edge. Monitor: samples in/out in
ReadOnly after the edge, i.e. the values the next edge takes. Model: a shift register.
"""
from __future__ import annotations

import cocotb
import pytest
from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly, RisingEdge

import runner
from tbutil import param, seeded_rng, start_clock_and_reset, uint, unpack


class SkewModel:
    """What the block promises: lane i shows the input of i cycles ago (zero after reset)."""

    def __init__(self, lanes: int):
        self.lanes = lanes
        self.history = [0] * (lanes - 1)  # history[j]: input j+1 cycles ago

    def outputs(self, value: int) -> list[int]:
        return [value] + self.history

    def clock(self, value: int, reset: bool) -> None:
        if reset:
            self.history = [0] * (self.lanes - 1)
        elif self.lanes > 1:
            self.history = [value] + self.history[:-1]


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.width = param(dut, "width")
        self.lanes = param(dut, "lanes")
        self.model = SkewModel(self.lanes)
        self.cycle = 0
        self.checked = 0
        dut._log.info("skew width=%d lanes=%d", self.width, self.lanes)

    async def start(self):
        self.dut["in"].value = 0
        await start_clock_and_reset(self.dut)
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        """Samples what each rising edge takes and checks it against the model."""
        dut = self.dut
        while True:
            await ReadOnly()
            reset = int(dut.reset.value)
            value = uint(dut["in"])
            got = unpack(dut.out.value.to_unsigned(), self.width, self.lanes, signed=False)
            want = self.model.outputs(value)
            for lane, (g, w) in enumerate(zip(got, want)):
                assert g == w, (
                    f"cycle {self.cycle} ({get_sim_time('ns'):.0f} ns): lane {lane} (delay {lane}) expected {w:#x}, got {g:#x}; "
                    f"all lanes expected {want}, got {got}"
                )
            self.checked += 1
            self.model.clock(value, bool(reset))
            self.cycle += 1
            await RisingEdge(dut.clk)

    async def drive(self, value: int, reset: int = 0):
        """Present `value` (and reset) for the next rising edge."""
        self.dut["in"].value = value
        self.dut.reset.value = reset
        await RisingEdge(self.dut.clk)


@cocotb.test()
async def test_lane_delay(dut):
    """Random input stream: lane i equals the input of i cycles earlier."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    n = 40 * tb.lanes + 20
    for _ in range(n):
        await tb.drive(rng.getrandbits(tb.width))
    # a single pulse walks across the lanes one cycle at a time
    ones = (1 << tb.width) - 1
    await tb.drive(ones)
    for _ in range(tb.lanes + 1):
        await tb.drive(0)
    assert tb.checked >= n + tb.lanes, f"monitor checked only {tb.checked} cycles"


@cocotb.test()
async def test_pulse_position(dut):
    """Directed: a one-cycle pulse shows on lane i exactly i cycles later and nowhere else."""
    tb = TB(dut)
    await tb.start()
    ones = (1 << tb.width) - 1
    await tb.drive(ones)  # the edge that just passed took the pulse
    for delay in range(1, tb.lanes + 1):
        dut["in"].value = 0
        await ReadOnly()
        got = unpack(dut.out.value.to_unsigned(), tb.width, tb.lanes, signed=False)
        want = [ones if lane == delay else 0 for lane in range(tb.lanes)]
        assert got == want, f"{get_sim_time('ns'):.0f} ns, {delay} cycles after the pulse: expected lanes {want}, got {got}"
        await RisingEdge(dut.clk)


@cocotb.test()
async def test_reset_clears(dut):
    """Reset mid-stream clears every delayed lane; the delays restart from zero."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    ones = (1 << tb.width) - 1
    for _ in range(tb.lanes + 2):
        await tb.drive(ones)
    await tb.drive(rng.getrandbits(tb.width), reset=1)
    await ReadOnly()
    got = unpack(dut.out.value.to_unsigned(), tb.width, tb.lanes, signed=False)
    assert got[1:] == [0] * (tb.lanes - 1), f"{get_sim_time('ns'):.0f} ns: after reset the delayed lanes should be 0, got {got}"
    await RisingEdge(dut.clk)
    for _ in range(3 * tb.lanes):
        await tb.drive(rng.getrandbits(tb.width))
    # reset held for several cycles while the input keeps changing
    for _ in range(3):
        await tb.drive(ones, reset=1)
    for _ in range(2 * tb.lanes):
        await tb.drive(rng.getrandbits(tb.width))


@pytest.mark.parametrize("width,lanes", [(1, 8), (3, 8), (4, 4), (8, 2)])
def test_skew(width, lanes):
    runner.run("skew", "test_skew", parameters={"width": width, "lanes": lanes}, name="skew")
