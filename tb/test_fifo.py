"""fifo: synchronous first-word fall-through FIFO with sticky error flags.

rd_data shows the oldest entry while not empty, 0 (never X) when empty; rd pops it. A
write when full and not popping in the same cycle, or a read when empty, is refused
(nothing changes) and raises the sticky overflow / underflow flag until reset.

Driver: decides and writes wr/wr_data/rd (and reset) on the falling edge, from the outputs
it sees there (so a producer can respect `full`). Monitor: at each rising edge samples the
inputs that edge takes, then in ReadOnly the outputs it made. Model: a deque. Checker:
every output after every edge.
Driver, monitor and checker are tbutil.LockstepTB; this file gives the ports and the model.
"""
from __future__ import annotations

from collections import Counter, deque

import cocotb
import pytest
from cocotb.triggers import FallingEdge

import runner
from tbutil import LockstepTB, fifo_phases, param, seeded_rng


class FifoModel:
    def __init__(self, depth: int):
        self.depth = depth
        self.reset()

    def reset(self):
        self.q = deque()
        self.overflow = 0
        self.underflow = 0

    def clock(self, i: dict) -> Counter:
        """One rising edge; returns what happened (for coverage)."""
        if i["reset"]:
            self.reset()
            return Counter(reset=1)
        do_rd = bool(i["rd"] and self.q)
        do_wr = bool(i["wr"] and (len(self.q) < self.depth or do_rd))
        event = {
            "refused_wr": i["wr"] and not do_wr,
            "refused_rd": i["rd"] and not do_rd,
            "rd_wr_full": i["rd"] and i["wr"] and len(self.q) == self.depth,
            "rd_wr_empty": i["rd"] and i["wr"] and not self.q,
            "write": do_wr, "read": do_rd,
        }
        self.overflow |= int(i["wr"] and not do_wr)
        self.underflow |= int(i["rd"] and not do_rd)
        if do_rd:
            self.q.popleft()
        if do_wr:
            self.q.append(i["wr_data"])
        event["full"] = len(self.q) == self.depth
        event["empty"] = not self.q
        return Counter(k for k, v in event.items() if v)

    def outputs(self) -> dict:
        return {
            "rd_data": self.q[0] if self.q else 0,
            "empty": int(not self.q),
            "full": int(len(self.q) == self.depth),
            "overflow": self.overflow,
            "underflow": self.underflow,
        }


class TB(LockstepTB):
    INPUTS = ("reset", "wr", "rd", "wr_data")
    OUTPUTS = ("rd_data", "empty", "full", "overflow", "underflow")
    POP_EVENT = "read"

    def __init__(self, dut):
        self.width = param(dut, "width")
        self.depth = param(dut, "depth")
        super().__init__(dut, FifoModel(self.depth))
        dut._log.info("fifo width=%d depth=%d", self.width, self.depth)

    def model_state(self) -> str:
        return f"holds {len(self.model.q)} entries"


@cocotb.test()
async def test_empty_after_reset(dut):
    """After reset: empty, not full, no flags, rd_data 0 and not X."""
    tb = TB(dut)
    await tb.start()
    await tb.cycle()
    out = tb.outputs()
    assert out == {"rd_data": 0, "empty": 1, "full": 0, "overflow": 0, "underflow": 0}, f"after reset: {out}"


@cocotb.test()
async def test_fill_and_refuse(dut):
    """Fill to depth (full rises exactly then), a refused write raises overflow and changes
    nothing, drain in order, a refused read raises underflow and changes nothing."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    data = [rng.getrandbits(tb.width) for _ in range(tb.depth)]
    for n, value in enumerate(data):
        await tb.cycle(wr=1, wr_data=value)
        await FallingEdge(dut.clk)
        out = tb.outputs()
        assert out["full"] == int(n + 1 == tb.depth), f"after {n + 1} writes full={out['full']} (depth {tb.depth})"
        assert out["rd_data"] == data[0], f"after {n + 1} writes the head should stay {data[0]:#x}, got {out['rd_data']:#x}"
        tb.set()
    extra = (~data[0]) & ((1 << tb.width) - 1)
    await tb.cycle(wr=1, wr_data=extra)               # refused
    await tb.cycle()
    out = tb.outputs()
    assert out["overflow"] == 1, "a write when full must raise overflow"
    assert out["full"] == 1 and out["rd_data"] == data[0], f"a refused write must change nothing: {out}"
    await tb.cycle(wr=1, wr_data=extra)               # refused again; flag stays
    for n in range(tb.depth):
        await tb.cycle(rd=1)
    await tb.cycle()
    assert tb.popped == data, f"drained {tb.popped}, wrote {data} (the refused {extra:#x} must not be in it)"
    out = tb.outputs()
    assert out["empty"] == 1 and out["rd_data"] == 0, f"after draining: {out}"
    assert out["overflow"] == 1 and out["underflow"] == 0, f"overflow sticky, no underflow yet: {out}"
    await tb.cycle(rd=1)                              # refused read
    await tb.cycle()
    out = tb.outputs()
    assert out["underflow"] == 1 and out["empty"] == 1 and out["rd_data"] == 0, f"refused read: {out}"
    await tb.cycle(wr=1, wr_data=data[-1])
    await tb.cycle()
    assert tb.outputs()["rd_data"] == data[-1], "the FIFO must still work after a refused read"
    assert tb.outputs()["overflow"] == 1 and tb.outputs()["underflow"] == 1, "flags must stay until reset"


@cocotb.test()
async def test_simultaneous(dut):
    """Read and write in the same cycle: when full (both happen, stays full) and when empty
    (the read is refused and flagged, the write happens)."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    await tb.cycle(wr=1, rd=1, wr_data=5 % (1 << tb.width))  # empty: write only
    await tb.cycle()
    out = tb.outputs()
    assert out["underflow"] == 1 and out["empty"] == 0 and out["rd_data"] == 5 % (1 << tb.width), (
        f"rd+wr when empty: the read is refused (underflow), the write lands: {out}")
    await tb.cycle(reset=1)
    data = [rng.getrandbits(tb.width) for _ in range(tb.depth + 8)]
    for value in data[:tb.depth]:
        await tb.cycle(wr=1, wr_data=value)
    for n, value in enumerate(data[tb.depth:]):       # full: stream through
        await tb.cycle(wr=1, rd=1, wr_data=value)
        await FallingEdge(dut.clk)
        out = tb.outputs()
        assert out["full"] == 1 and out["overflow"] == 0, f"rd+wr when full must stay full without overflow: {out}"
        assert out["rd_data"] == data[n + 1], f"after {n + 1} rd+wr when full head expected {data[n + 1]:#x}, got {out['rd_data']:#x}"
        tb.set()
    for _ in range(tb.depth):
        await tb.cycle(rd=1)
    await tb.cycle()
    assert tb.popped == data, f"popped {tb.popped}, wrote {data}"


@cocotb.test()
async def test_back_pressure(dut):
    """A producer that stops on full and a consumer that stalls at random: every item
    arrives once, in order, and no flag is raised."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    items = [rng.getrandbits(tb.width) for _ in range(6 * tb.depth + 40)]
    sent = 0
    saw_full = 0
    await FallingEdge(dut.clk)
    for k in range(20 * len(items)):
        out = tb.outputs()
        slow = (k // 37) % 2 == 0   # phases where the consumer is slower than the producer
        rd = int(not out["empty"] and rng.random() < (0.3 if slow else 0.9))
        wr = int(sent < len(items) and not out["full"] and rng.random() < 0.8)
        saw_full += out["full"]
        tb.set(wr=wr, rd=rd, wr_data=items[sent] if wr else rng.getrandbits(tb.width))
        sent += wr
        await FallingEdge(dut.clk)
        if len(tb.popped) == len(items):
            break
    tb.set()
    assert tb.popped == items, f"received {len(tb.popped)} items, sent {len(items)}; first difference at " \
        f"{next((n for n, (a, b) in enumerate(zip(tb.popped, items)) if a != b), min(len(tb.popped), len(items)))}"
    assert saw_full > 0, "the slow consumer never let the FIFO fill: back-pressure not exercised"
    out = tb.outputs()
    assert out["overflow"] == 0 and out["underflow"] == 0, f"a well-behaved producer/consumer raised a flag: {out}"


@cocotb.test()
async def test_reset_mid_stream(dut):
    """Reset with data inside and flags raised: empty, flags clear, rd_data 0; then it works."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    for _ in range(tb.depth + 2):
        await tb.cycle(wr=1, wr_data=rng.getrandbits(tb.width))  # overflows at the end
    await tb.cycle(wr=1, rd=1, wr_data=1, reset=1)  # reset wins over rd/wr
    await tb.cycle()
    out = tb.outputs()
    assert out == {"rd_data": 0, "empty": 1, "full": 0, "overflow": 0, "underflow": 0}, f"after reset mid-stream: {out}"
    value = rng.getrandbits(tb.width)
    await tb.cycle(wr=1, wr_data=value)
    await tb.cycle()
    assert tb.outputs()["rd_data"] == value and tb.outputs()["empty"] == 0, "the FIFO must work after the reset"


@cocotb.test()
async def test_random(dut):
    """Random push/pop (fill-heavy, drain-heavy and balanced phases, occasional resets)
    against the deque model, every output after every edge."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    mixes = [(0.8, 0.2), (0.2, 0.8), (0.5, 0.5), (0.9, 0.9), (1.0, 0.0), (0.0, 1.0)]  # (P(wr), P(rd)) per phase
    for p_wr, p_rd, reset_at, length in fifo_phases(rng, mixes, 60, tb.depth, longest=4 * tb.depth + 10):
        for n in range(length):
            await tb.cycle(wr=int(rng.random() < p_wr), rd=int(rng.random() < p_rd), wr_data=rng.getrandbits(tb.width),
                           reset=int(n == reset_at))
    await tb.cycle()
    await tb.cycle()
    tb.assert_covered("refused_wr", "refused_rd", "rd_wr_full", "rd_wr_empty", "full", "empty", "reset", "read", "write")


@pytest.mark.parametrize("width,depth", [(4, 4), (16, 64), (8, 5), (4, 1)])
def test_fifo(width, depth):
    runner.run("fifo", "test_fifo", parameters={"width": width, "depth": depth}, name="fifo")
