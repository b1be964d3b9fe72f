"""fifo_bank: `lanes` FIFOs side by side (the L0 with lanes = rows, the IFIFO with lanes =
columns). Lane i takes bits [i*width +: width] of the packed buses. With skew_rd = 1 a read
pops lane 0 at once and lane i i cycles later; with skew_rd = 0 all lanes pop together.
overflow / underflow are the OR of the lanes' sticky flags.

Driver: writes wr/wr_data/rd (and reset) on the falling edge. Monitor: at each rising edge
the inputs that edge takes, then in ReadOnly the outputs it made. Model: one deque per lane
behind a read-skew shift register. Checker: every output after every edge. The directed
tests also check, lane by lane, which word each lane presents at which edge.
Driver, monitor and checker are tbutil.LockstepTB; this file gives the ports and the model.
"""
from __future__ import annotations

from collections import Counter, deque

import cocotb
import pytest
from cocotb.triggers import FallingEdge

import runner
from tbutil import LockstepTB, fifo_phases, param, seeded_rng


class BankModel:
    def __init__(self, lanes: int, depth: int, skew_rd: bool):
        self.lanes, self.depth, self.skew_rd = lanes, depth, skew_rd
        self.reset()

    def reset(self):
        self.q = [deque() for _ in range(self.lanes)]
        self.ovf = [0] * self.lanes
        self.udf = [0] * self.lanes
        self.rd_hist = [0] * (self.lanes - 1)  # rd of 1, 2, ... edges ago (the skew stages)

    def lane_rd(self, rd: int) -> list[int]:
        return [rd] + self.rd_hist if self.skew_rd else [rd] * self.lanes

    def clock(self, i: dict) -> Counter:
        ev = Counter()
        if i["reset"]:
            self.reset()
            ev["reset"] += 1
            return ev
        lane_rd = self.lane_rd(i["rd"])
        for n in range(self.lanes):
            wr = i["wr"] >> n & 1
            q = self.q[n]
            do_rd = bool(lane_rd[n] and q)
            do_wr = bool(wr and (len(q) < self.depth or do_rd))
            if wr and not do_wr:
                self.ovf[n] = 1
                ev["refused_wr"] += 1
            if lane_rd[n] and not do_rd:
                self.udf[n] = 1
                ev["refused_rd"] += 1
            if do_rd:
                q.popleft()
                ev["read"] += 1
            if do_wr:
                q.append(i["wr_data"][n])
                ev["write"] += 1
            ev["full"] += len(q) == self.depth
        if self.lanes > 1:
            self.rd_hist = [i["rd"]] + self.rd_hist[:-1]
        return ev

    def outputs(self) -> dict:
        return {
            "rd_data": [q[0] if q else 0 for q in self.q],
            "empty": [int(not q) for q in self.q],
            "full": [int(len(q) == self.depth) for q in self.q],
            "overflow": int(any(self.ovf)),
            "underflow": int(any(self.udf)),
        }


class TB(LockstepTB):
    """wr: lane mask; wr_data: one value per lane (a whole word)."""
    INPUTS = ("reset", "wr", "rd", "wr_data")
    OUTPUTS = ("rd_data", "empty", "full", "overflow", "underflow")

    def __init__(self, dut):
        self.width = param(dut, "width")
        self.lanes = param(dut, "lanes")
        self.depth = param(dut, "depth")
        self.skew_rd = bool(param(dut, "skew_rd"))
        super().__init__(dut, BankModel(self.lanes, self.depth, self.skew_rd), packed={
            "wr_data": (self.width, self.lanes), "rd_data": (self.width, self.lanes),
            "empty": (1, self.lanes), "full": (1, self.lanes)})
        dut._log.info("fifo_bank width=%d lanes=%d depth=%d skew_rd=%d", self.width, self.lanes, self.depth, self.skew_rd)

    def delay(self, lane: int) -> int:
        """Cycles between a read and the pop of `lane`."""
        return lane if self.skew_rd else 0

    def model_state(self) -> str:
        return f"lanes hold {[len(q) for q in self.model.q]} entries"

    def words(self, rng, n: int) -> list[list[int]]:
        return [[rng.getrandbits(self.width) for _ in range(self.lanes)] for _ in range(n)]


@cocotb.test()
async def test_split(dut):
    """One write word splits into the lanes: lane i's head is field i of the first word."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    words = tb.words(rng, min(3, tb.depth))
    all_lanes = (1 << tb.lanes) - 1
    for word in words:
        await tb.cycle(wr=all_lanes, wr_data=word)
    await tb.cycle()
    out = tb.outputs()
    assert out["rd_data"] == words[0], f"heads {out['rd_data']}, first word's fields {words[0]}"
    assert out["empty"] == [0] * tb.lanes, f"every lane should hold data: empty={out['empty']}"
    # a per-lane write mask writes only those lanes
    await tb.cycle(reset=1)
    mask = rng.randrange(1, all_lanes + 1)
    await tb.cycle(wr=mask, wr_data=words[0])
    await tb.cycle()
    out = tb.outputs()
    for lane in range(tb.lanes):
        written = mask >> lane & 1
        assert out["empty"][lane] == 1 - written, f"wr mask {mask:#x}: lane {lane} empty={out['empty'][lane]}"
        assert out["rd_data"][lane] == (words[0][lane] if written else 0), f"wr mask {mask:#x}: lane {lane} head"


@cocotb.test()
async def test_read_timing(dut):
    """N words, then rd for N cycles: lane i presents word k at the edge delay(i) + k after
    the first read (L0: i cycles after lane 0; flat: together), and empties right after."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    all_lanes = (1 << tb.lanes) - 1
    for burst in range(3):
        n = rng.randint(1, tb.depth)
        words = tb.words(rng, n)
        for word in words:
            await tb.cycle(wr=all_lanes, wr_data=word)
        await tb.cycle()
        seen = []   # what each edge j after the first read takes: (rd_data lanes, empty lanes)
        for j in range(n + tb.lanes + 1):
            await FallingEdge(dut.clk)
            out = tb.outputs()
            seen.append((out["rd_data"], out["empty"]))
            tb.set(rd=int(j < n))
        for lane in range(tb.lanes):
            d = tb.delay(lane)
            for k in range(n):
                got = seen[k + d][0][lane]
                assert got == words[k][lane], (
                    f"burst {burst}: lane {lane} at edge {k + d} after the first read should present word {k} "
                    f"({words[k][lane]:#x}), got {got:#x}"
                )
            empties = [seen[j][1][lane] for j in range(len(seen))]
            want = [int(j >= n + d) for j in range(len(seen))]
            assert empties == want, f"burst {burst}: lane {lane} empty per edge {empties}, expected {want} (pops {d} cycles late)"
        out = tb.outputs()
        assert out["underflow"] == 0 and out["overflow"] == 0, f"burst {burst}: no flag expected, got {out}"


@cocotb.test()
async def test_flags(dut):
    """underflow rises when the last lane pops empty (delay(last) edges after the read);
    overflow when one lane is written full; both OR over lanes, sticky until reset."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    last = tb.lanes - 1
    word = tb.words(rng, 1)[0]
    await tb.cycle(wr=((1 << tb.lanes) - 1) & ~(1 << last), wr_data=word)  # every lane but the last
    await tb.cycle(rd=1)
    flags = []
    for j in range(tb.lanes + 2):
        await FallingEdge(dut.clk)
        tb.set()
        flags.append(tb.outputs()["underflow"])
    want = [int(j >= tb.delay(last)) for j in range(len(flags))]
    assert flags == want, f"underflow after each edge from the read on: {flags}, expected {want} (lane {last} pops empty)"
    assert tb.outputs()["overflow"] == 0, "no overflow expected yet"
    await tb.cycle(reset=1)
    await tb.cycle()
    assert tb.outputs()["underflow"] == 0, "reset must clear underflow"
    lane = rng.randrange(tb.lanes)
    for _ in range(tb.depth):
        await tb.cycle(wr=1 << lane, wr_data=word)
    await tb.cycle()
    out = tb.outputs()
    assert out["full"] == [int(n == lane) for n in range(tb.lanes)] and out["overflow"] == 0, f"lane {lane} filled: {out}"
    await tb.cycle(wr=1 << lane, wr_data=word)
    await tb.cycle()
    out = tb.outputs()
    assert out["overflow"] == 1, f"a write into full lane {lane} must raise overflow"
    for _ in range(3):
        await tb.cycle()
    assert tb.outputs()["overflow"] == 1, "overflow must be sticky"


@cocotb.test()
async def test_random(dut):
    """Random per-lane writes, read pulses and resets against the model."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    all_lanes = (1 << tb.lanes) - 1
    mixes = [(0.9, 0.1), (0.1, 0.9), (0.5, 0.5), (0.9, 0.9)]  # (P(wr), P(rd)) per phase
    for p_wr, p_rd, reset_at, length in fifo_phases(rng, mixes, 40, tb.depth, longest=2 * tb.depth + 10):
        lane_mode = rng.choice(["all", "random"])
        for n in range(length):
            wr = (all_lanes if lane_mode == "all" else rng.getrandbits(tb.lanes)) if rng.random() < p_wr else 0
            await tb.cycle(wr=wr, wr_data=tb.words(rng, 1)[0], rd=int(rng.random() < p_rd), reset=int(n == reset_at))
    await tb.cycle()
    await tb.cycle()
    tb.assert_covered("refused_wr", "refused_rd", "read", "write", "full", "reset")


@pytest.mark.parametrize("width,lanes,depth,skew_rd", [
    (4, 8, 64, 1),   # L0 (rows)
    (4, 4, 5, 1),    # IFIFO-like, shallow, non power of two
    (16, 8, 4, 0),   # flat, OFIFO-like
    (4, 3, 6, 0),
])
def test_fifo_bank(width, lanes, depth, skew_rd):
    runner.run("fifo_bank", "test_fifo_bank",
               parameters={"width": width, "lanes": lanes, "depth": depth, "skew_rd": skew_rd}, name="fifo_bank")
