"""sfp: accumulates psum vectors into a bank of `depth` sums and emits them, optionally
through ReLU, raw (out_wide, no psum_bw check) or requantized to levels (thresholds).

An operation issues with acc/first/emit/relu/addr at one edge (the bank is a block RAM
read there), executes at the next edge, which takes its in_data: lane by lane at acc_bw
bits, sum = (first ? 0 : bank[addr]) + (acc ? in : 0); bank[addr] <= sum when acc or
first; and emits at the edge after that: with emit, out <= relu(sum) (psum_bw bits) and
out_valid pulses. A sum that does not fit acc_bw (with acc, at the execute edge), or an
emitted value that does not fit psum_bw (at the emit edge), raises the sticky overflow
flag (until reset) instead of wrapping silently. shift adds the psum times 2**shift_bits.
requant emits each lane's level, model.requant.Requant.apply of the sum with the
thresholds of tile thr_tile (written by thr_wr from thr_data, part by part; read at the
execute edge, after the issue edge's write); out_wide carries every emitted value at
acc_bw bits.

Driver: writes the controls on the falling edge and the operation's in_data one cycle
later (TB.cycle takes both together). Monitor: at each rising edge the inputs that edge
takes, then in ReadOnly out/out_valid/overflow. Model: the issued operation and the bank
as Python integers with the exact widths. Checker: every output after every edge.
Driver, monitor and checker are tbutil.LockstepTB; this file gives the ports and the model.
"""
from __future__ import annotations

from collections import Counter

import cocotb
import numpy as np
import pytest

import runner
from model.requant import THRESHOLD_BW, Requant
from tbutil import LockstepTB, param, seeded_rng, signed


def fits(value: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


class SfpModel:
    def __init__(self, col: int, psum_bw: int, acc_bw: int, depth: int, shift_bits: int, levels: int,
                 thr_data_bw: int):
        self.col, self.psum_bw, self.acc_bw, self.depth = col, psum_bw, acc_bw, depth
        self.shift_bits, self.levels, self.thr_data_bw = shift_bits, levels, thr_data_bw
        self.thr_bw = acc_bw + 1
        self.bank: dict[int, list[int]] = {}  # entries never written are unknown
        # threshold parts and descending bits as written: (tile, lane, level, part) -> bits,
        # (tile, lane) -> bit; never reset, unknown until written
        self.thr_parts: dict[tuple, int] = {}
        self.desc: dict[tuple, int] = {}
        self.addr = 0                          # the entry the last edge addressed
        self.reset()

    def reset(self):
        self.out = [0] * self.col
        self.out_wide = [0] * self.col
        self.out_valid = 0
        self.overflow = 0
        self.issued = None                     # the controls of the operation issued at the last edge
        self.held = None                       # the emit executed at the last edge: (operation, sums)

    def outputs(self) -> dict:
        return {"out": list(self.out), "out_wide": list(self.out_wide), "out_valid": self.out_valid,
                "overflow": self.overflow}

    def requant(self, tile: int) -> Requant:
        """The thresholds of `tile` as written so far (all must have been)."""
        parts = -(-self.thr_bw // self.thr_data_bw)
        t = np.zeros((self.col, self.levels), dtype=np.int64)
        for c in range(self.col):
            for k in range(self.levels):
                bits = 0
                for p in range(parts):
                    assert (tile, c, k, p) in self.thr_parts, f"bench: threshold {k} of lane {c} part {p} unwritten"
                    bits |= self.thr_parts[tile, c, k, p] << (p * self.thr_data_bw)
                t[c, k] = signed(bits & ((1 << self.thr_bw) - 1), self.thr_bw)
        desc = np.array([bool(self.desc[tile, c]) for c in range(self.col)])
        # Requant's own range check is for the default core's acc_bw; this bench sweeps acc_bw,
        # so the contract's apply() runs on thresholds of this build's width
        requant = object.__new__(Requant)
        object.__setattr__(requant, "thresholds", t)
        object.__setattr__(requant, "descending", desc)
        return requant

    def write_thresholds(self, i: dict) -> None:
        if i["thr_level"] == self.levels:
            for c in range(self.col):
                self.desc[i["thr_tile"], c] = i["thr_data"] >> c & 1
        elif i["thr_level"] < self.levels and i["thr_lane"] < self.col:
            self.thr_parts[i["thr_tile"], i["thr_lane"], i["thr_level"], i["thr_part"]] = \
                i["thr_data"] & ((1 << self.thr_data_bw) - 1)

    def clock(self, i: dict) -> Counter:
        ev = Counter()
        op, held = self.issued, self.held
        requant = None
        if op is not None and op["emit"] and op["requant"]:   # the thresholds are read at the execute
            requant = self.requant(op["thr_tile"])            # edge, before its write, reset or not
        if i["thr_wr"]:
            self.write_thresholds(i)
            ev["thr_wr"] += 1
        if i["reset"]:
            self.reset()          # the bank and the thresholds are not reset
            return ev
        self.issued = {k: i[k] for k in ("acc", "first", "emit", "relu", "addr", "shift", "raw", "requant",
                                         "thr_tile")}
        self.out_valid = 0
        if held is not None:
            self.emit(*held, ev)
        self.held = None
        if op is not None and (op["acc"] or op["first"] or op["emit"]):
            self.held = self.execute(dict(op, in_data=i["in_data"], thresholds=requant), ev)
        return ev

    def execute(self, i: dict, ev: Counter) -> tuple[dict, list[int]] | None:
        """The issued operation `i` with its in_data: the add and the write-back; returns
        what its emit edge takes (None: no emit)."""
        self.addr = i["addr"]
        if self.issued["addr"] == i["addr"] and (i["acc"] or i["first"]):
            ev["forward"] += 1    # the next operation reads the entry this one writes
        if i["first"]:
            base = [0] * self.col
        else:
            assert i["addr"] in self.bank, f"bench: entry {i['addr']} used before a `first`"
            base = self.bank[i["addr"]]
        scale = 1 << self.shift_bits if i["shift"] else 1
        addend = [v * scale for v in i["in_data"]] if i["acc"] else [0] * self.col
        wide = [b + a for b, a in zip(base, addend)]
        sums = [signed(w, self.acc_bw) for w in wide]
        acc_ovf = bool(i["acc"]) and any(not fits(w, self.acc_bw) for w in wide)
        if i["acc"] or i["first"]:
            self.bank[i["addr"]] = sums
        ev["shift"] += i["acc"] and i["shift"]
        ev["acc_overflow"] += acc_ovf
        ev["acc"] += i["acc"]
        self.overflow |= int(acc_ovf)
        return (i, sums) if i["emit"] else None

    def emit(self, i: dict, sums: list[int], ev: Counter) -> None:
        """The emit edge of operation `i`, whose sums the execute edge registered."""
        acts = [0 if i["relu"] and s < 0 else s for s in sums]
        out_ovf = not (i["raw"] or i["requant"]) and any(not fits(a, self.psum_bw) for a in acts)
        if i["requant"]:
            acts = i["thresholds"].apply(np.array(sums)).tolist()
            ev["requant"] += 1
        self.out_valid = 1
        self.out = [signed(a & ((1 << self.psum_bw) - 1), self.psum_bw) for a in acts]
        self.out_wide = acts
        ev["raw" if i["raw"] else "requant" if i["requant"] else "emit_relu" if i["relu"] else "emit"] += 1
        ev["relu_clipped"] += i["relu"] and any(s < 0 for s in sums)
        ev["out_overflow"] += out_ovf
        self.overflow |= int(out_ovf)


class TB(LockstepTB):
    """in_data and out: one signed psum per lane; out_wide: one signed acc_bw value per lane."""
    INPUTS = ("reset", "acc", "first", "emit", "relu", "addr", "in_data", "shift", "raw", "requant",
              "thr_wr", "thr_tile", "thr_lane", "thr_level", "thr_part", "thr_data")
    OUTPUTS = ("out", "out_wide", "out_valid", "overflow")
    SIGNED = ("in_data", "out", "out_wide")

    def __init__(self, dut):
        self.col = param(dut, "col")
        self.psum_bw = param(dut, "psum_bw")
        self.acc_bw = param(dut, "acc_bw")
        self.depth = param(dut, "depth")
        self.shift_bits = param(dut, "shift_bits")
        self.levels = param(dut, "levels")
        self.thr_data_bw = param(dut, "thr_data_bw")
        self.thr_tiles = param(dut, "thr_tiles")
        super().__init__(dut, SfpModel(self.col, self.psum_bw, self.acc_bw, self.depth, self.shift_bits,
                                       self.levels, self.thr_data_bw), packed={
            "in_data": (self.psum_bw, self.col), "out": (self.psum_bw, self.col),
            "out_wide": (self.acc_bw, self.col)})
        self.emitted: list[list[int]] = []   # what the DUT emitted (out while out_valid), in order
        self._next_in_data = None            # in_data of the operation issued last
        self.pmin, self.pmax = -(1 << (self.psum_bw - 1)), (1 << (self.psum_bw - 1)) - 1
        dut._log.info("sfp col=%d psum_bw=%d acc_bw=%d depth=%d", self.col, self.psum_bw, self.acc_bw, self.depth)

    def model_state(self) -> str:
        return f"bank[{self.model.addr}] now {self.model.bank.get(self.model.addr)}; issued {self.model.issued}"

    async def cycle(self, in_data=None, **controls) -> None:
        """Issue `controls` at the next edge; their in_data goes with the edge after."""
        await super().cycle(in_data=self._next_in_data, **controls)
        self._next_in_data = in_data

    def _check(self, i: dict) -> None:
        super()._check(i)
        got = self.outputs()
        if got["out_valid"]:
            self.emitted.append(got["out"])

    async def settle(self) -> dict:
        """Idle from the next falling edge on and return the outputs after the emit edge of
        the operation issued last (its issue, execute and emit edges)."""
        for _ in range(3):
            await self.cycle()
        return self.outputs()


@cocotb.test()
async def test_accumulate_entries(dut):
    """Interleaved accumulation into several entries (first, then acc), emitted with and
    without ReLU; the emitted vectors equal the Python sums."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    entries = list(range(min(tb.depth, 6)))
    terms = {e: [[rng.randint(-3000, 3000) for _ in range(tb.col)] for _ in range(rng.randint(1, 9))] for e in entries}
    schedule = [(e, n) for e in entries for n in range(len(terms[e]))]
    # keep each entry's own order, interleave the entries at random
    rng.shuffle(schedule)
    schedule.sort(key=lambda en: en[1])
    for e, n in schedule:
        await tb.cycle(acc=1, first=int(n == 0), addr=e, in_data=terms[e][n])
    expected = []
    for k, e in enumerate(entries):
        relu = k % 2
        total = [sum(t[c] for t in terms[e]) for c in range(tb.col)]
        expected.append([max(v, 0) if relu else v for v in total])
        await tb.cycle(emit=1, relu=relu, addr=e)
    out = await tb.settle()
    assert tb.emitted == expected, "\n".join(
        f"entry {e} (relu={k % 2}): emitted {g}, expected {w}" for k, (e, g, w) in enumerate(zip(entries, tb.emitted, expected)) if g != w
    ) or f"emitted {len(tb.emitted)} vectors, expected {len(expected)}"
    assert out["overflow"] == 0, "no overflow expected"
    assert out["out_valid"] == 1 and out["out"] == expected[-1], f"right after the last emit edge: {out}"
    out = await tb.settle()
    assert out["out_valid"] == 0, "out_valid must be a one-cycle pulse"
    assert out["out"] == expected[-1], f"out must hold the last emitted vector: {out['out']}"


@cocotb.test()
async def test_accumulate_and_emit_same_cycle(dut):
    """The last term can be accumulated and the sum emitted in the same cycle; first + emit
    emits just that term; emit does not change the bank."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    a = [rng.randint(-100, 100) for _ in range(tb.col)]
    b = [rng.randint(-100, 100) for _ in range(tb.col)]
    await tb.cycle(acc=1, first=1, addr=0, in_data=a)
    await tb.cycle(acc=1, emit=1, addr=0, in_data=b)
    out = await tb.settle()
    assert out["out"] == [x + y for x, y in zip(a, b)], f"acc+emit: {out['out']}, expected a+b"
    await tb.cycle(emit=1, addr=0, in_data=b)         # acc low: in_data ignored, bank unchanged
    await tb.cycle(emit=1, relu=1, addr=0)
    out = await tb.settle()
    assert tb.emitted[-2] == [x + y for x, y in zip(a, b)], f"emit without acc changed the sum: {tb.emitted[-2]}"
    assert tb.emitted[-1] == [max(x + y, 0) for x, y in zip(a, b)], f"ReLU emit: {tb.emitted[-1]}"
    await tb.cycle(acc=1, first=1, emit=1, addr=0, in_data=b)
    await tb.settle()
    assert tb.emitted[-1] == b, f"first+acc+emit must emit just the new term: {tb.emitted[-1]}, expected {b}"


@cocotb.test()
async def test_extremes_and_overflow(dut):
    """16-bit extremes pass through; the flag catches a sum that leaves acc_bw, and (wider
    acc_bw) an emitted value that leaves psum_bw, but not one ReLU clips to 0."""
    tb = TB(dut)
    await tb.start()
    lo, hi, col = tb.pmin, tb.pmax, tb.col
    ext = [lo if c % 2 else hi for c in range(col)]
    await tb.cycle(acc=1, first=1, emit=1, addr=0, in_data=ext)
    out = await tb.settle()
    assert out["out"] == ext and out["overflow"] == 0, f"extremes must pass unchanged: {out}"
    await tb.cycle(emit=1, relu=1, addr=0)
    out = await tb.settle()
    assert out["out"] == [max(v, 0) for v in ext] and out["overflow"] == 0, f"ReLU of the extremes: {out}"

    # hi + 1 in lane 0 only
    await tb.cycle(acc=1, first=1, addr=1, in_data=[hi] + [0] * (col - 1))
    await tb.cycle(acc=1, addr=1, in_data=[1] + [0] * (col - 1))
    out = await tb.settle()
    if tb.acc_bw == tb.psum_bw:
        assert out["overflow"] == 1, f"{hi} + 1 does not fit {tb.acc_bw} bits: overflow expected"
    else:
        assert out["overflow"] == 0, f"{hi} + 1 fits acc_bw={tb.acc_bw}: no overflow yet"
        await tb.cycle(emit=1, relu=1, addr=1)
        out = await tb.settle()
        assert out["overflow"] == 1, f"emitting {hi + 1} into {tb.psum_bw} bits must raise overflow"
    flag_after_hi = out["overflow"]
    await tb.cycle(reset=1)
    out = await tb.settle()
    assert out["overflow"] == 0 and out["out_valid"] == 0, f"reset must clear the flag: {out}"
    assert flag_after_hi == 1

    # lo - 1 in the last lane
    await tb.cycle(acc=1, first=1, addr=0, in_data=[0] * (col - 1) + [lo])
    await tb.cycle(acc=1, addr=0, in_data=[0] * (col - 1) + [-1])
    out = await tb.settle()
    assert out["overflow"] == int(tb.acc_bw == tb.psum_bw), f"{lo} - 1 at acc_bw={tb.acc_bw}: flag {out['overflow']}"
    if tb.acc_bw > tb.psum_bw:
        await tb.cycle(emit=1, relu=1, addr=0)        # ReLU clips it to 0: fits
        out = await tb.settle()
        assert out["out"][-1] == 0 and out["overflow"] == 0, f"ReLU(lo - 1) = 0 fits: {out}"
        await tb.cycle(emit=1, relu=0, addr=0)        # without ReLU it does not fit
        out = await tb.settle()
        assert out["overflow"] == 1, f"emitting {lo - 1} without ReLU must raise overflow"
        await tb.cycle(reset=1)
        # a wide accumulator absorbs an intermediate excursion: hi + hi - hi - hi + 5 = 5
        await tb.cycle(acc=1, first=1, addr=1, in_data=[hi] * col)
        for term in ([hi] * col, [-hi] * col, [-hi] * col, [5] * col):
            await tb.cycle(acc=1, addr=1, in_data=term)
        await tb.cycle(emit=1, addr=1)
        out = await tb.settle()
        assert out["out"] == [5] * col and out["overflow"] == 0, f"wide accumulation of an excursion: {out}"


@cocotb.test()
async def test_relu_reads_the_sign_bit(dut):
    """A large positive sum, 2**(acc_bw-2) + 5, survives ReLU: a ReLU that tested any bit
    but the sign bit would zero it. When it does not fit psum_bw the lane carries its low
    bits and the overflow flag is raised, as for any emitted value that does not fit."""
    tb = TB(dut)
    await tb.start()
    target = (1 << (tb.acc_bw - 2)) + 5
    full_terms, rest = divmod(target, tb.pmax)
    await tb.cycle(acc=1, first=1, addr=0, in_data=[rest] * tb.col)
    for _ in range(full_terms):
        await tb.cycle(acc=1, addr=0, in_data=[tb.pmax] * tb.col)
    await tb.cycle(emit=1, relu=1, addr=0)
    out = await tb.settle()
    fits = target <= tb.pmax
    want = signed(target & ((1 << tb.psum_bw) - 1), tb.psum_bw)
    assert out["out"] == [want] * tb.col and out["overflow"] == int(not fits), (
        f"ReLU({target}) at acc_bw={tb.acc_bw}: got {out['out'][0]} (overflow {out['overflow']}), "
        f"expected {want} (overflow {int(not fits)})")


async def random_ops(tb: TB, rng, cycles: int, wild: bool) -> None:
    written: set[int] = set()
    for _ in range(cycles):
        addr = rng.randrange(tb.depth)
        first = int(addr not in written or rng.random() < 0.1)
        acc = int(rng.random() < 0.8 or (first and rng.random() < 0.5))
        emit = int(rng.random() < 0.3)
        if wild:
            data = [rng.choice([tb.pmin, tb.pmax, rng.randint(tb.pmin, tb.pmax)]) for _ in range(tb.col)]
        else:
            data = [rng.randint(-1500, 1500) for _ in range(tb.col)]
        written.add(addr) if (acc or first) else None
        if not (acc or first) and addr not in written:
            emit = 0
        await tb.cycle(acc=acc, first=first, emit=emit, relu=rng.getrandbits(1), addr=addr, in_data=data,
                       reset=int(wild and tb.model.overflow and rng.random() < 0.3))


@cocotb.test()
async def test_random(dut):
    """Random accumulate/emit/ReLU against the model: first with values that cannot
    overflow (the flag must stay low), then with extremes (the flag rises exactly when the
    model says, and reset clears it)."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    await random_ops(tb, rng, 600, wild=False)
    out = await tb.settle()
    assert out["overflow"] == 0, "no overflow possible with these values, but the flag is set"
    await random_ops(tb, rng, 900, wild=True)
    # a long run of extreme terms into one entry walks the sum out of acc_bw in any build
    await tb.cycle(reset=1)
    sign = rng.choice([1, -1])
    addr = rng.randrange(tb.depth)
    await tb.cycle(acc=1, first=1, addr=addr, in_data=[rng.randint(0, tb.pmax) * sign for _ in range(tb.col)])
    for _ in range((1 << (tb.acc_bw - tb.psum_bw)) + 2):
        await tb.cycle(acc=1, addr=addr, in_data=[(tb.pmax if sign > 0 else tb.pmin)] * tb.col)
    out = await tb.settle()  # no emit in the run: only the accumulation can have raised the flag
    assert out["overflow"] == 1, f"{(1 << (tb.acc_bw - tb.psum_bw)) + 3} extreme terms must overflow acc_bw={tb.acc_bw}"
    tb.assert_covered("emit", "emit_relu", "relu_clipped", "acc_overflow", "forward")
    if tb.acc_bw > tb.psum_bw:
        assert tb.cover["out_overflow"] > 0, f"random stimulus never overflowed an emitted value: {dict(tb.cover)}"


async def accumulate(tb: TB, addr: int, targets: list[int], **last) -> None:
    """Make bank entry `addr` hold `targets` (one sum per lane, within acc_bw): shifted terms
    (psum x 2**shift_bits) while a lane is beyond a psum, then one plain term, which also
    carries `last` (an emit)."""
    rem, first = list(targets), 1
    while any(not tb.pmin <= r <= tb.pmax for r in rem):
        q = [max(tb.pmin, min(tb.pmax, r >> tb.shift_bits)) for r in rem]
        await tb.cycle(acc=1, first=first, shift=1, addr=addr, in_data=q)
        rem, first = [r - (v << tb.shift_bits) for r, v in zip(rem, q)], 0
    await tb.cycle(acc=1, first=first, addr=addr, in_data=rem, **last)


async def write_thresholds(tb: TB, tile: int, thresholds: np.ndarray, descending: np.ndarray) -> None:
    """thr_wr of every threshold of `tile` (part by part, low part first), then its
    descending bits."""
    thr_bw = tb.acc_bw + 1
    parts = -(-thr_bw // tb.thr_data_bw)
    for c in range(tb.col):
        for k in range(tb.levels):
            bits = int(thresholds[c, k]) & ((1 << thr_bw) - 1)
            for p in range(parts):
                await tb.cycle(thr_wr=1, thr_tile=tile, thr_lane=c, thr_level=k, thr_part=p,
                               thr_data=bits >> (p * tb.thr_data_bw) & ((1 << tb.thr_data_bw) - 1))
    await tb.cycle(thr_wr=1, thr_tile=tile, thr_level=tb.levels,
                   thr_data=sum(int(d) << c for c, d in enumerate(descending)))


@cocotb.test()
async def test_requant_levels(dut):
    """Requantized emits against model.requant.Requant.apply (the checker compares every
    out / out_wide after every edge): two tiles of random, unsorted thresholds, some lanes
    descending, one lane of 'always' (-2**acc_bw) and one of 'never' (2**acc_bw - 1)
    thresholds; sums at every threshold -1, 0 and +1, and at both ends of acc_bw. An
    emit reads its tile's thresholds at its execute edge; levels never raise the flag."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    thr_lo, thr_hi = -(1 << tb.acc_bw), (1 << tb.acc_bw) - 1
    acc_lo, acc_hi = -(1 << (tb.acc_bw - 1)), (1 << (tb.acc_bw - 1)) - 1
    tiles = [0, tb.thr_tiles - 1]
    for tile in tiles:
        t = np.array([[rng.randint(acc_lo // 4, acc_hi // 4) for _ in range(tb.levels)] for _ in range(tb.col)])
        t[0] = thr_lo                       # always: every sum reaches it
        t[-1] = thr_hi                      # never
        t[1 % tb.col, :3] = [acc_lo, acc_hi, 0]
        desc = np.array([rng.random() < 0.4 for _ in range(tb.col)])
        await write_thresholds(tb, tile, t, desc)
        # every threshold's edge on the first tile; the second only shows the emit reads its own tile
        edges = range(tb.levels) if tile == tiles[0] else range(2)
        probes = [[int(t[c, k]) + d for c in range(tb.col)] for k in edges for d in (-1, 0, 1)]
        probes += [[acc_lo] * tb.col, [acc_hi] * tb.col]
        for vector in probes:
            sums = [max(acc_lo, min(acc_hi, v)) for v in vector]
            await accumulate(tb, rng.randrange(tb.depth), sums, emit=1, requant=1, thr_tile=tile)
        await tb.settle()
    assert tb.outputs()["overflow"] == 0, "a requantized emit raised the overflow flag"
    tb.assert_covered("requant", "thr_wr")


def lane_plan(lengths: list[int], col: int) -> list[int]:
    """Lanes per job for `col` lanes: one each, then each spare lane to the job with the most
    values per lane, so the jobs' ranges, split over their lanes, take the fewest cycles."""
    lanes = [1] * len(lengths)
    for _ in range(col - len(lengths)):
        j = max(range(len(lengths)), key=lambda j: -(-lengths[j] // lanes[j]))
        lanes[j] += 1
    return lanes


@cocotb.test()
async def test_requant_float_pipeline(dut):
    """Every reachable sum of real channels through a requantized emit, against the float
    pipeline itself (model.network.level_function: scale, BatchNorm, ReLU, the next conv's
    quantizer), not Requant.apply. The thresholds are model.network's for the seeded tiny
    network of model/tests/test_network.py: its first conv (3 -> 8, BatchNorm) channels with
    a positive, a negative and a zero scale. A channel's reachable sums are |sum| <=
    ic * 9 * 15 * 7 (2835 here); its range is split over several lanes (one tile of
    thresholds), one sum per lane per cycle. (A no-BatchNorm channel of the 8 -> 8 conv
    would double the cycles; model/tests/test_network.py checks those thresholds on every
    sum in Python.)"""
    tb = TB(dut)
    if tb.acc_bw + 1 < THRESHOLD_BW or tb.col < 8:
        pytest.skip(f"needs {THRESHOLD_BW}-bit thresholds and 8 lanes (build: acc_bw={tb.acc_bw}, col={tb.col})")
    from model.network import Network, level_function
    from model.tests.test_network import TINY_GAMMA, TINY_SIZE, tiny_model

    net = Network(tiny_model(), image_size=TINY_SIZE)
    jobs = [(0, TINY_GAMMA.index(1.3)), (0, TINY_GAMMA.index(-0.8)), (0, TINY_GAMMA.index(0.0))]   # (conv, channel)
    ranges = [np.arange(-r, r + 1) for r in (net.stages[k].in_channels * 9 * 15 * 7 for k, _ in jobs)]
    cycles, lanes = 0, []                           # lane -> (job, its stretch of the job's range)
    for j, n in enumerate(lane_plan([len(r) for r in ranges], tb.col)):
        lanes += [(j, part) for part in np.array_split(ranges[j], n)]
        cycles = max(cycles, -(-len(ranges[j]) // n))
    # a short stretch repeats its last sum; each lane's levels straight from the float pipeline
    sums = np.stack([np.pad(part, (0, cycles - len(part)), mode="edge") for _, part in lanes])
    want = np.empty_like(sums)
    for c, (j, _) in enumerate(lanes):
        k, channel = jobs[j]
        stage = net.stages[k]
        rows = np.broadcast_to(sums[c], (stage.out_channels, cycles))
        want[c] = level_function(stage, net.stages[k + 1].conv)(rows)[channel]
    thresholds = np.stack([net.stages[jobs[j][0]].requant.thresholds[jobs[j][1]] for j, _ in lanes])
    descending = np.array([net.stages[jobs[j][0]].requant.descending[jobs[j][1]] for j, _ in lanes])
    await tb.start()
    tile = tb.thr_tiles - 1
    await write_thresholds(tb, tile, thresholds, descending)
    vectors = sums.T.tolist()
    for t, vector in enumerate(vectors):
        await tb.cycle(acc=1, first=1, emit=1, requant=1, thr_tile=tile, addr=t % tb.depth, in_data=vector)
    await tb.settle()
    got = np.array(tb.emitted, dtype=np.int64).T
    assert got.shape == want.shape, f"{got.shape[1]} emits, expected {cycles}"
    wrong = np.argwhere(got != want)
    assert len(wrong) == 0, f"{len(wrong)} levels differ from the float pipeline; first: " + "; ".join(
        f"lane {c} (stage {jobs[lanes[c][0]][0]} channel {jobs[lanes[c][0]][1]}) sum {sums[c, t]}: "
        f"level {got[c, t]}, float pipeline {want[c, t]}" for c, t in wrong[:3])
    # the ranges cross every step: all 16 levels, but one constant level at the zero scale
    reached = [len(set(want[[c for c, (lj, _) in enumerate(lanes) if lj == j]].ravel().tolist())) for j in range(len(jobs))]
    dut._log.info("%d sums in %d cycles; levels reached per channel: %s", sum(len(r) for r in ranges), cycles, reached)
    assert reached == [16, 16, 1], f"levels reached per channel: {reached}"
    assert tb.outputs()["overflow"] == 0, "a requantized emit raised the overflow flag"


@cocotb.test()
async def test_raw_and_shift(dut):
    """raw: a sum beyond psum_bw comes out whole on out_wide without the flag (the plain
    emit of the same sum raises it); shift: psums count 2**shift_bits times, and a shifted
    term that leaves acc_bw raises the flag."""
    tb = TB(dut)
    await tb.start()
    big = [(tb.pmax + 1) * (c + 1) * (-1) ** c for c in range(tb.col)]
    big = [max(-(1 << (tb.acc_bw - 1)), min((1 << (tb.acc_bw - 1)) - 1, v)) for v in big]
    await accumulate(tb, 0, big, emit=1, raw=1)
    out = await tb.settle()
    assert out["out_wide"] == big and out["overflow"] == 0, f"raw emit of {big}: {out}"
    if tb.acc_bw > tb.psum_bw:
        await tb.cycle(emit=1, addr=0)
        out = await tb.settle()
        assert out["overflow"] == 1, "a plain emit of a sum beyond psum_bw must raise the flag"
        await tb.cycle(reset=1)
    # shifted terms of pmax until the sum leaves acc_bw (the checker follows the flag edge by edge)
    acc_hi = (1 << (tb.acc_bw - 1)) - 1
    step = tb.pmax << tb.shift_bits
    await tb.cycle(acc=1, first=1, addr=1, in_data=[0] * tb.col)
    for _ in range(acc_hi // step + 1):
        await tb.cycle(acc=1, shift=1, addr=1, in_data=[tb.pmax] * tb.col)
    out = await tb.settle()
    assert out["overflow"] == 1, f"{acc_hi // step + 1} terms of {tb.pmax} x 2**{tb.shift_bits} must leave acc_bw={tb.acc_bw}"


@pytest.mark.parametrize("col,psum_bw,acc_bw,depth,thr_data_bw", [
    (8, 16, 16, 16, 32),
    pytest.param(8, 16, 24, 16, 32, marks=pytest.mark.long),   # the regression's slowest block test: started first
    (4, 16, 24, 4, 32),
    (3, 16, 16, 2, 32),
    (4, 16, 20, 4, 8),      # a 21-bit threshold in three 8-bit parts (a 2x2 core's xmem word)
])
def test_sfp(col, psum_bw, acc_bw, depth, thr_data_bw):
    runner.run("sfp", "test_sfp", parameters={"col": col, "psum_bw": psum_bw, "acc_bw": acc_bw, "depth": depth,
                                              "thr_data_bw": thr_data_bw}, name="sfp")
