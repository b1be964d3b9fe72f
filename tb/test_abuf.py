"""abuf: the activation reuse buffer, a register file of `depth` words of `width` bits. wr
writes wdata to waddr at the clock edge; rdata is mem[raddr] with no latency (combinational:
it follows raddr between edges, and a write to the entry being read shows right after the
edge, not before). There is no reset: an entry never written is unknown.

Driver: writes wr/waddr/wdata/raddr on the falling edge. Monitor: at each falling edge,
in ReadOnly, rdata for the raddr just set (before the next edge writes anything); at each
rising edge the inputs that edge takes, then in ReadOnly rdata after its write. Model: a
dict of written words. Checker: rdata twice a cycle wherever the entry read is known.
"""
from __future__ import annotations

from collections import Counter

import cocotb
import pytest
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

import runner
from tbutil import param, seeded_rng, start_clock_and_reset, uint


class AbufModel:
    def __init__(self):
        self.mem: dict[int, int] = {}  # entries never written are unknown

    def clock(self, i: dict) -> Counter:
        """One rising edge; returns what happened (for coverage)."""
        ev = Counter()
        if i["wr"]:
            ev["write"] += 1
            if i["waddr"] == i["raddr"] and i["raddr"] in self.mem and self.mem[i["raddr"]] != i["wdata"]:
                ev["write_read_same_entry"] += 1   # old word before the edge, new one after
            self.mem[i["waddr"]] = i["wdata"]
        return ev


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.width = param(dut, "width")
        self.depth = param(dut, "depth")
        self.aw = len(dut.raddr)
        assert self.aw == max(1, (self.depth - 1).bit_length()) and len(dut.waddr) == self.aw, (
            f"address ports {len(dut.waddr)}/{self.aw} bits for depth {self.depth}")
        assert len(dut.wdata) == self.width and len(dut.rdata) == self.width, "data ports are not `width` bits"
        self.model = AbufModel()
        self.edges = 0
        self.checked = 0
        self.cover = Counter()
        dut._log.info("abuf width=%d depth=%d (address %d bits)", self.width, self.depth, self.aw)

    async def start(self):
        self.set()
        await start_clock_and_reset(self.dut, reset=None)
        cocotb.start_soon(self._monitor())

    def set(self, wr: int = 0, waddr: int = 0, wdata: int = 0, raddr: int = 0) -> None:
        self.dut.wr.value = wr
        self.dut.waddr.value = waddr
        self.dut.wdata.value = wdata
        self.dut.raddr.value = raddr

    async def cycle(self, **inputs) -> None:
        """On the next falling edge present `inputs` (others 0) for the following rising edge."""
        await FallingEdge(self.dut.clk)
        self.set(**inputs)

    async def write(self, addr: int, data: int, raddr: int = 0) -> None:
        await self.cycle(wr=1, waddr=addr, wdata=data, raddr=raddr)

    def rdata(self) -> int:
        value = self.dut.rdata.value
        assert value.is_resolvable, f"{get_sim_time('ns'):.0f} ns: rdata is {value} (X/Z) where a written word was expected"
        return value.to_unsigned()

    async def read_now(self, addr: int) -> int:
        """Point raddr at `addr` and return rdata 1 ns later, with no clock edge between."""
        self.dut.raddr.value = addr
        await Timer(1, "ns")
        return self.rdata()

    def _check(self, when: str) -> None:
        raddr = uint(self.dut.raddr)
        want = self.model.mem.get(raddr)
        if want is None:
            return
        got = self.rdata()
        assert got == want, (
            f"{when} edge {self.edges} ({get_sim_time('ns'):.0f} ns): rdata for raddr {raddr:#x} expected {want:#x}, "
            f"got {got:#x}; wr={uint(self.dut.wr)} waddr={uint(self.dut.waddr):#x} wdata={uint(self.dut.wdata):#x}")
        self.checked += 1

    async def _monitor(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()            # the driver has set this cycle's inputs: nothing written yet
            self._check("before")
            await RisingEdge(dut.clk)
            i = {name: uint(getattr(dut, name)) for name in ("wr", "waddr", "wdata", "raddr")}
            self.cover.update(self.model.clock(i))
            await ReadOnly()            # the write has landed, raddr unchanged
            self.edges += 1
            self._check("after")


@cocotb.test()
async def test_write_then_read(dut):
    """Write every entry (first and last included), then read each back."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    words = [rng.getrandbits(tb.width) for _ in range(tb.depth)]
    for addr, data in enumerate(words):
        await tb.write(addr, data)
    await tb.cycle()
    for addr in rng.sample(range(tb.depth), tb.depth):
        got = await tb.read_now(addr)
        assert got == words[addr], f"entry {addr:#x}: read {got:#x}, wrote {words[addr]:#x}"
    for addr in (0, tb.depth - 1):
        await tb.cycle(raddr=addr)
        await FallingEdge(dut.clk)
        assert tb.rdata() == words[addr], f"entry {addr:#x} one cycle later: {tb.rdata():#x}, wrote {words[addr]:#x}"
    assert tb.checked >= 2 * tb.depth, f"the monitor checked rdata only {tb.checked} times"


@cocotb.test()
async def test_read_no_latency(dut):
    """rdata follows raddr between clock edges: every entry read within one clock phase."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    words = {addr: rng.getrandbits(tb.width) for addr in range(tb.depth)}
    for addr, data in words.items():
        await tb.write(addr, data)
    await tb.cycle()
    await tb.cycle()  # a falling edge: the next rising edge is half a period away
    edges, t0 = tb.edges, get_sim_time("ns")
    for addr in rng.sample(range(tb.depth), min(tb.depth, 4)):
        got = await tb.read_now(addr)
        assert got == words[addr], f"raddr {addr:#x}: rdata {got:#x} 1 ns later, expected {words[addr]:#x} (no latency)"
    assert tb.edges == edges and get_sim_time("ns") - t0 < 5, "the reads must not have waited for a clock edge"


@cocotb.test()
async def test_write_read_same_entry(dut):
    """A write to the entry being read in the same cycle: rdata shows the old word until the
    edge and the new one right after it; a write elsewhere leaves rdata alone."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    for _ in range(6):
        addr = rng.randrange(tb.depth)
        old = rng.getrandbits(tb.width)
        new = old ^ (rng.getrandbits(tb.width) | 1)
        await tb.write(addr, old, raddr=(addr + 1) % tb.depth)
        await tb.write(addr, new, raddr=addr)   # write and read the same entry in one cycle
        await Timer(1, "ns")
        assert tb.rdata() == old, f"entry {addr:#x}: before the edge rdata {tb.rdata():#x}, expected the old {old:#x}"
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert tb.rdata() == new, f"entry {addr:#x}: right after the edge rdata {tb.rdata():#x}, expected the new {new:#x}"
        if tb.depth > 1:
            other = (addr + rng.randrange(1, tb.depth)) % tb.depth
            await tb.write(other, rng.getrandbits(tb.width), raddr=addr)
            await tb.cycle(raddr=addr)
            assert tb.rdata() == new, f"a write to {other:#x} changed rdata for {addr:#x} to {tb.rdata():#x}"
    assert tb.cover["write_read_same_entry"] == 6, f"same-entry writes seen by the monitor: {dict(tb.cover)}"


@cocotb.test()
async def test_random(dut):
    """Random writes and reads (addresses from a small pool and the whole range, the first and
    last entry included) against the dict model; rdata checked before and after every edge."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    pool = [0, tb.depth - 1] + [rng.randrange(tb.depth) for _ in range(min(tb.depth, 8))]
    pick = lambda: rng.choice(pool) if rng.random() < 0.7 else rng.randrange(tb.depth)  # noqa: E731
    for _ in range(1500):
        raddr = pick()
        if rng.random() < 0.5:
            waddr = raddr if rng.random() < 0.2 else pick()
            await tb.write(waddr, rng.getrandbits(tb.width), raddr=raddr)
        else:
            await tb.cycle(waddr=pick(), wdata=rng.getrandbits(tb.width), raddr=raddr)  # wr low: no write
    await tb.cycle()
    await tb.cycle()
    dut._log.info("checked rdata %d times over %d edges; %s", tb.checked, tb.edges, dict(tb.cover))
    assert tb.cover["write"] > 500, f"random stimulus too thin: {dict(tb.cover)}"
    assert tb.cover["write_read_same_entry"] > 20, f"too few same-cycle write/read of one entry: {dict(tb.cover)}"
    assert tb.checked > 2000, f"rdata checked only {tb.checked} times"


@pytest.mark.parametrize("width,depth", [(32, 64), (16, 16), (8, 5), (4, 2)])
def test_abuf(width, depth):
    runner.run("abuf", "test_abuf", parameters={"width": width, "depth": depth}, name="abuf")
