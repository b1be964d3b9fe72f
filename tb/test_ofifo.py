"""ofifo: one psum FIFO per column, written column by column (each column of the array
finishes at its own skewed cycle); valid only when every column holds data; rd pops all
columns together, and only when valid (a read before that is refused whole and raises
underflow); full is any column full; overflow / underflow are sticky.

Driver: writes wr/wr_data/rd (and reset) on the falling edge. Monitor: at each rising edge
the inputs that edge takes, then in ReadOnly the outputs it made. Model: a deque per
column. Checker: every output after every edge; the directed tests also check the exact
edge at which valid rises.
Driver, monitor and checker are tbutil.LockstepTB; this file gives the ports and the model.
"""
from __future__ import annotations

from collections import Counter, deque

import cocotb
import pytest
from cocotb.triggers import FallingEdge

import runner
from tbutil import LockstepTB, fifo_phases, param, seeded_rng


class OfifoModel:
    def __init__(self, col: int, depth: int):
        self.col, self.depth = col, depth
        self.reset()

    def reset(self):
        self.q = [deque() for _ in range(self.col)]
        self.overflow = 0
        self.underflow = 0

    def clock(self, i: dict) -> Counter:
        ev = Counter()
        if i["reset"]:
            self.reset()
            ev["reset"] += 1
            return ev
        valid = all(self.q)
        ev["rd_valid"] += i["rd"] and valid
        ev["rd_not_valid"] += i["rd"] and not valid
        if i["rd"] and not valid:
            self.underflow = 1          # refused whole: no column pops
        for c, q in enumerate(self.q):
            wr = i["wr"] >> c & 1
            do_rd = bool(i["rd"] and valid)
            do_wr = bool(wr and (len(q) < self.depth or do_rd))
            if wr and not do_wr:
                self.overflow = 1
                ev["refused_wr"] += 1
            if do_rd:
                q.popleft()
            if do_wr:
                q.append(i["wr_data"][c])
        ev["full"] += any(len(q) == self.depth for q in self.q)
        return ev

    def outputs(self) -> dict:
        return {
            "rd_data": [q[0] if q else 0 for q in self.q],
            "valid": int(all(self.q)),
            "full": int(any(len(q) == self.depth for q in self.q)),
            "overflow": self.overflow,
            "underflow": self.underflow,
        }


class TB(LockstepTB):
    """wr: column mask; wr_data: one psum per column."""
    INPUTS = ("reset", "wr", "rd", "wr_data")
    OUTPUTS = ("rd_data", "valid", "full", "overflow", "underflow")
    LANE = "column"
    POP_EVENT = "rd_valid"   # rd while valid: the whole vector leaves

    def __init__(self, dut):
        self.psum_bw = param(dut, "psum_bw")
        self.col = param(dut, "col")
        self.depth = param(dut, "depth")
        super().__init__(dut, OfifoModel(self.col, self.depth), packed={
            "wr_data": (self.psum_bw, self.col), "rd_data": (self.psum_bw, self.col)})
        dut._log.info("ofifo psum_bw=%d col=%d depth=%d", self.psum_bw, self.col, self.depth)

    def model_state(self) -> str:
        return f"columns hold {[len(q) for q in self.model.q]} entries"

    def vectors(self, rng, n: int) -> list[list[int]]:
        return [[rng.getrandbits(self.psum_bw) for _ in range(self.col)] for _ in range(n)]


@cocotb.test()
async def test_valid_after_last_column(dut):
    """Columns written one at a time, in random order and at random cycles: valid stays low
    until the last column is written and rises right after that edge; rd pops the vector."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    written = []
    for rnd in range(4):
        vec = tb.vectors(rng, 1)[0]
        written.append(vec)
        order = list(range(tb.col))
        rng.shuffle(order)
        for n, c in enumerate(order):
            for _ in range(rng.randint(0, 3)):
                await tb.cycle()
                assert tb.outputs()["valid"] == 0, f"round {rnd}: valid with only {n} of {tb.col} columns written"
            await tb.cycle(wr=1 << c, wr_data=vec)
            await tb.cycle()
            want = int(n == tb.col - 1)
            assert tb.outputs()["valid"] == want, (
                f"round {rnd}: after writing column {c} ({n + 1} of {tb.col}) valid={tb.outputs()['valid']}, expected {want}")
        out = tb.outputs()
        assert out["rd_data"] == vec, f"round {rnd}: vector {out['rd_data']}, written {vec}"
        await tb.cycle(rd=1)
        await tb.cycle()
        out = tb.outputs()
        assert out["valid"] == 0 and out["underflow"] == 0, f"round {rnd}: after rd: {out}"
    assert tb.popped == written, f"popped {tb.popped}, written {written}"


@cocotb.test()
async def test_skewed_stream(dut):
    """Like the array's south edge: column c of vector v written in cycle v + c; the reader
    pops whenever valid. Valid first rises after column col-1 of vector 0; every vector
    arrives once, in order, no flags."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    n = rng.randint(tb.depth // 2 + 1, 2 * tb.depth + 4)
    vecs = tb.vectors(rng, n)
    first_valid = None
    k = 0
    while len(tb.popped) < n:
        await FallingEdge(dut.clk)
        out = tb.outputs()
        if out["valid"] and first_valid is None:
            first_valid = k
        wr, data = 0, [0] * tb.col
        for c in range(tb.col):
            v = k - c
            if 0 <= v < n:
                wr |= 1 << c
                data[c] = vecs[v][c]
        tb.set(wr=wr, wr_data=data, rd=out["valid"])
        k += 1
        assert k < 4 * (n + tb.col) + 20, f"stream stalled: popped {len(tb.popped)} of {n}"
    assert first_valid == tb.col, f"valid first seen {first_valid} edges into the stream, expected {tb.col} (after column {tb.col - 1} of vector 0)"
    assert tb.popped == vecs, "popped vectors differ from the written ones: " + str(
        next((v, p, w) for v, (p, w) in enumerate(zip(tb.popped, vecs)) if p != w))
    await tb.cycle()
    out = tb.outputs()
    assert out["overflow"] == 0 and out["underflow"] == 0, f"no flag expected: {out}"


@cocotb.test()
async def test_flags(dut):
    """rd while not valid raises underflow; a write into a full column raises overflow; full
    is any column full; reset clears everything."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    await tb.cycle(rd=1)
    await tb.cycle()
    assert tb.outputs()["underflow"] == 1, "rd on an empty OFIFO must raise underflow"
    await tb.cycle(reset=1)
    await tb.cycle()
    assert tb.outputs() == {"rd_data": [0] * tb.col, "valid": 0, "full": 0, "overflow": 0, "underflow": 0}, \
        f"after reset: {tb.outputs()}"
    c = rng.randrange(tb.col)
    vec = tb.vectors(rng, 1)[0]
    for n in range(tb.depth):
        await tb.cycle(wr=1 << c, wr_data=vec)
        await tb.cycle()
        assert tb.outputs()["full"] == int(n + 1 == tb.depth), f"column {c} after {n + 1} writes: full={tb.outputs()['full']}"
    await tb.cycle(wr=1 << c, wr_data=vec)
    await tb.cycle()
    out = tb.outputs()
    assert out["overflow"] == 1 and out["underflow"] == 0, f"write into full column {c}: {out}"
    if tb.col > 1:
        await tb.cycle(rd=1)  # column c has data, the others do not: not valid
        await tb.cycle()
        assert tb.outputs()["underflow"] == 1, "rd while not valid must raise underflow"


@cocotb.test()
async def test_random(dut):
    """Random per-column writes, reads and resets against the model."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    all_cols = (1 << tb.col) - 1
    mixes = [(0.9, 0.1), (0.2, 0.6), (0.6, 0.6), (0.95, 0.95)]  # (P(wr), P(rd)) per phase
    for p_wr, p_rd, reset_at, length in fifo_phases(rng, mixes, 40, tb.depth, longest=2 * tb.depth + 10):
        for n in range(length):
            wr = (all_cols if rng.random() < 0.5 else rng.getrandbits(tb.col)) if rng.random() < p_wr else 0
            await tb.cycle(wr=wr, wr_data=tb.vectors(rng, 1)[0], rd=int(rng.random() < p_rd), reset=int(n == reset_at))
    await tb.cycle()
    await tb.cycle()
    tb.assert_covered("rd_valid", "rd_not_valid", "refused_wr", "full", "reset")


@pytest.mark.parametrize("psum_bw,col,depth", [(16, 8, 64), (16, 4, 5), (20, 3, 8)])
def test_ofifo(psum_bw, col, depth):
    runner.run("ofifo", "test_ofifo", parameters={"psum_bw": psum_bw, "col": col, "depth": depth}, name="ofifo")
