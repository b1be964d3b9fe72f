"""sram: single port, active-low controls. CEN = 0 enables the port; then WEN = 0 writes D
to A, WEN = 1 reads A into Q at the clock edge (one cycle of read latency). Q holds its
value until the next read (through idle cycles and writes); CEN = 1 does nothing.

Driver: writes CEN/WEN/A/D on the falling edge. Monitor: at each rising edge the controls
that edge takes, then in ReadOnly the Q it made. Model: a dict of written words and the Q
register (unknown until the first read of a written address). Checker: Q after every edge.
"""
from __future__ import annotations

from collections import Counter

import cocotb
import pytest
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

import runner
from tbutil import param, seeded_rng, start_clock_and_reset, uint


class SramModel:
    def __init__(self):
        self.mem: dict[int, int] = {}
        self.q: int | None = None  # None: not known (never read, or read of an unwritten word)

    def clock(self, i: dict) -> str:
        if i["CEN"]:
            return "disabled"
        if not i["WEN"]:
            self.mem[i["A"]] = i["D"]
            return "write"
        self.q = self.mem.get(i["A"])
        return "read" if self.q is not None else "read_unwritten"


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.width = param(dut, "width")
        self.depth = param(dut, "depth")
        self.aw = len(dut.A)
        self.model = SramModel()
        self.edges = 0
        self.checked = 0
        self.cover = Counter()
        dut._log.info("sram width=%d depth=%d (address %d bits)", self.width, self.depth, self.aw)

    async def start(self):
        self.set()
        await start_clock_and_reset(self.dut, clk="CLK", reset=None)
        cocotb.start_soon(self._monitor())

    def set(self, CEN: int = 1, WEN: int = 1, A: int = 0, D: int = 0) -> None:
        self.dut.CEN.value = CEN
        self.dut.WEN.value = WEN
        self.dut.A.value = A
        self.dut.D.value = D

    async def cycle(self, **inputs) -> None:
        await FallingEdge(self.dut.CLK)
        self.set(**inputs)

    async def write(self, addr: int, data: int) -> None:
        await self.cycle(CEN=0, WEN=0, A=addr, D=data)

    async def read(self, addr: int, junk: int = 0) -> None:
        await self.cycle(CEN=0, WEN=1, A=addr, D=junk)

    def q(self) -> int:
        value = self.dut.Q.value
        assert value.is_resolvable, f"{get_sim_time('ns'):.0f} ns: Q is {value} (X/Z) where a written word was expected"
        return value.to_unsigned()

    async def _monitor(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.CLK)
            i = {"CEN": uint(dut.CEN), "WEN": uint(dut.WEN), "A": uint(dut.A), "D": uint(dut.D)}
            self.cover[self.model.clock(i)] += 1
            await ReadOnly()
            self.edges += 1
            if self.model.q is None:
                continue
            got = self.q()
            assert got == self.model.q, (
                f"edge {self.edges} ({get_sim_time('ns'):.0f} ns): Q expected {self.model.q:#x}, got {got:#x}; "
                f"controls at that edge CEN={i['CEN']} WEN={i['WEN']} A={i['A']:#x}")
            self.checked += 1


@cocotb.test()
async def test_read_latency(dut):
    """A read presented before edge e shows on Q right after e, not before."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    words = {rng.randrange(tb.depth): rng.getrandbits(tb.width) for _ in range(8)}
    for addr, data in words.items():
        await tb.write(addr, data)
    addrs = list(words)
    for n, addr in enumerate(addrs):
        await tb.read(addr)
        before = tb.q()            # falling edge before the reading edge: the previous word
        await FallingEdge(dut.CLK)
        after = tb.q()
        assert after == words[addr], f"read of {addr:#x}: Q after one edge {after:#x}, expected {words[addr]:#x}"
        if n > 0:
            prev = words[addrs[n - 1]]
            assert before == prev, f"read of {addr:#x}: Q changed before the clock edge ({before:#x}, previous word {prev:#x})"


@cocotb.test()
async def test_q_holds(dut):
    """Q keeps the last read word through idle cycles, writes (also to the same address) and
    CEN-high cycles with WEN low."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    addr, data = rng.randrange(tb.depth), rng.getrandbits(tb.width)
    await tb.write(addr, data)
    await tb.read(addr)
    for what, kwargs in [
        ("idle", dict(CEN=1, WEN=1, A=addr)),
        ("write elsewhere", dict(CEN=0, WEN=0, A=(addr + 1) % tb.depth, D=rng.getrandbits(tb.width))),
        ("write to the address read", dict(CEN=0, WEN=0, A=addr, D=data ^ 1)),
        ("CEN high, WEN low", dict(CEN=1, WEN=0, A=addr, D=rng.getrandbits(tb.width))),
    ]:
        for _ in range(3):
            await tb.cycle(**kwargs)
            await FallingEdge(dut.CLK)
            assert tb.q() == data, f"during {what}: Q changed to {tb.q():#x}, expected it to hold {data:#x}"
    await tb.read(addr)
    await tb.cycle()
    assert tb.q() == data ^ 1, f"the write to the read address must land: Q {tb.q():#x}, expected {data ^ 1:#x}"


@cocotb.test()
async def test_cen_high_does_nothing(dut):
    """With CEN high neither a write (WEN low) nor a read happens."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    words = {rng.randrange(tb.depth): rng.getrandbits(tb.width) for _ in range(16)}
    for addr, data in words.items():
        await tb.write(addr, data)
    for addr in words:
        await tb.cycle(CEN=1, WEN=0, A=addr, D=rng.getrandbits(tb.width))
    last = list(words)[-1]
    await tb.read(last)
    for addr in words:
        await tb.cycle(CEN=1, WEN=1, A=addr)   # a "read" with CEN high: Q must not move
        await FallingEdge(dut.CLK)
        assert tb.q() == words[last], f"CEN high read of {addr:#x} changed Q to {tb.q():#x}"
    for addr, data in words.items():
        await tb.read(addr)
        await FallingEdge(dut.CLK)
        assert tb.q() == data, f"{addr:#x} holds {tb.q():#x} after CEN-high writes, expected {data:#x}"


@cocotb.test()
async def test_random(dut):
    """Random writes, reads and idle cycles (addresses from a small pool and the whole range,
    including the first and last word) against the dict model."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    pool = [0, tb.depth - 1] + [rng.randrange(tb.depth) for _ in range(30)]
    for _ in range(1500):
        addr = rng.choice(pool) if rng.random() < 0.8 else rng.randrange(tb.depth)
        op = rng.random()
        if op < 0.4:
            await tb.write(addr, rng.getrandbits(tb.width))
        elif op < 0.85:
            await tb.read(addr, junk=rng.getrandbits(tb.width))
        else:
            await tb.cycle(CEN=1, WEN=rng.getrandbits(1), A=addr, D=rng.getrandbits(tb.width))
    await tb.cycle()
    await tb.cycle()
    dut._log.info("checked Q after %d of %d edges; %s", tb.checked, tb.edges, dict(tb.cover))
    assert tb.cover["read"] > 300 and tb.cover["write"] > 300, f"random stimulus too thin: {dict(tb.cover)}"


@pytest.mark.parametrize("width,depth", [(32, 2048), (128, 2048)])
def test_sram(width, depth):
    runner.run("sram", "test_sram", parameters={"width": width, "depth": depth}, name="sram")
