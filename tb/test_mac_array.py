"""mac_array: the row x col systolic array against numpy.

Weight-stationary: column c's weights are staged with wload_en[c] (nibble r of wload_data
for row r); the vector that carries `start` switches every PE to the staged tile. Vector v
enters row 0 at cycle s_v and row r at s_v + r (the bench applies the data skew, the array
skews the control); column c's psum for it shows at the south edge with psum_valid[c].
Output-stationary: os = 1 (it also shifts the OS weights down the columns, reaching column c
c cycles later), column c's weight for step t at cycle t + c, row r's activation at t + r,
start on step 0; after the last product, drain for `row` cycles and
the held psums leave at the south edge, bottom row first. Overlapped: the next group's
start moves each PE's finished sum into its shadow register, and a drain with drain_shadow
moves the shadow sums out while that group computes.

Driver: plays a per-cycle program (every bus written once per cycle; lanes that carry no
data get random junk). Monitors: one records the west/north inputs the array takes, one
the south edge. Model: rebuilds the tiles, vectors and OS groups from the recorded inputs
(the contract's timing) and computes the psums with numpy. Checker: each column's
(cycle, psum) sequence at the south edge equals the model's; the bench also checks that
the model rebuilt exactly the tiles it generated.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cocotb
import numpy as np
import pytest
from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly, RisingEdge

import runner
from tbutil import pack, param, seeded_rng, signed, start_clock_and_reset, uint, unpack


# ----------------------------------------------------------------------------- program

@dataclass
class Cycle:
    """Everything the bench drives in one cycle; None lanes carry no data (junk is driven)."""
    a: list            # per row
    w: list            # per column (OS north edge)
    wload: list        # per row, for the column in wload_en
    valid: int = 0
    start: int = 0
    os: int = 0
    drain: int = 0
    drain_shadow: int = 0  # with drain: the shadow sums
    wload_en: int = 0
    act2: int = 0          # 2-bit mode: travels with valid/start (test_ws_2bit_mode)
    wload_act2: int = 0    # a 2-bit weight load of the rows in wload_half
    wload_half: int = 0
    wload2_en: int = 0     # a second 4-bit load in the cycle (wload2_data): another column
    wload2: list | None = None


class Program:
    def __init__(self, row: int, col: int):
        self.row, self.col = row, col
        self.cycles: list[Cycle] = []
        # what the bench meant, for the self-check of the model
        self.ws_tiles: list[tuple[np.ndarray, np.ndarray]] = []   # (W[row, col], A[n, row])
        self.os_groups: list[tuple[np.ndarray, np.ndarray]] = []  # (A[T, row], W[T, col])

    def at(self, k: int) -> Cycle:
        while len(self.cycles) <= k:
            self.cycles.append(Cycle(a=[None] * self.row, w=[None] * self.col, wload=[None] * self.row))
        return self.cycles[k]

    def __len__(self):
        return len(self.cycles)

    def load_column(self, k: int, c: int, weights) -> None:
        """Stage column c in cycle k: through wload, or wload2 when wload is taken."""
        cyc = self.at(k)
        assert not cyc.wload2_en, f"bench: three weight loads in cycle {k}"
        if cyc.wload_en:
            cyc.wload2_en, cyc.wload2 = 1 << c, [int(v) for v in weights]
        else:
            cyc.wload_en, cyc.wload = 1 << c, [int(v) for v in weights]

    def ws_vector(self, k: int, a, start: bool) -> None:
        cyc = self.at(k)
        cyc.valid, cyc.start, cyc.os = 1, int(start), 0
        for r in range(self.row):
            lane = self.at(k + r)
            assert lane.a[r] is None, f"bench: row {r} carries two activations in cycle {k + r}"
            lane.a[r] = int(a[r])

    def os_step(self, k: int, a, w, start: bool) -> None:
        cyc = self.at(k)
        cyc.valid, cyc.start = 1, int(start)
        for r in range(self.row):
            self.at(k + r).a[r] = int(a[r])
        for c in range(self.col):
            self.at(k + c).w[c] = int(w[c])

    def os_region(self, first: int, last: int) -> None:
        for k in range(first, last + 1):
            self.at(k).os = 1


def build_ws(prog: Program, rng, tiles, k0: int, gap_prob: float = 0.0, load: str = "random") -> int:
    """Stream WS tiles [(W, A)] back to back from cycle k0; the first tile is loaded before
    it, every next tile is staged while the previous one streams. Returns the next free cycle."""
    row, col = prog.row, prog.col
    for c in range(col):
        prog.load_column(k0 + c, c, tiles[0][0][:, c])
    k = k0 + col
    firsts = []
    for W, A in tiles:
        firsts.append(k)
        for v in range(A.shape[0]):
            prog.ws_vector(k, A[v], start=(v == 0))
            k += 1
            while rng.random() < gap_prob:
                k += 1
        prog.ws_tiles.append((W, A))
        # the next tile can start once its columns can be loaded (one column per cycle) in
        # their windows: max(row, col) cycles after this tile's first vector
        k = max(k, firsts[-1] + max(row, col))
    last_load = k0 + col - 1
    for i in range(1, len(tiles)):
        # column c: after PE (row-1, c) took tile i-1's start, before PE (0, c) takes tile i's
        lo, hi = firsts[i - 1] + row - 1, firsts[i] - 1
        d_min, d_max = max(0, last_load + 1 - lo), hi - lo
        assert d_min <= d_max, f"bench: no room to load tile {i}"
        d = {"earliest": d_min, "latest": d_max}.get(load)
        if d is None:
            d = rng.randint(d_min, d_max)
        for c in range(col):
            prog.load_column(lo + d + c, c, tiles[i][0][:, c])
        last_load = lo + d + col - 1
    return max(k, len(prog))


def build_os(prog: Program, groups, k0: int, drain: list) -> int:
    """OS groups [(A[T, row], W[T, col])] from cycle k0. drain[i]: True drains group i's live
    sums after its last product; "shadow" starts the next group right after it and drains
    group i's shadow sums while that one computes (the group after waits until that drain
    has left row 0); False leaves them (a later start must discard them). Returns the next
    free cycle."""
    row = prog.row
    k = free = k0            # free: the first cycle no earlier drain holds column 0
    moved = False            # the previous group's sums wait in the shadow registers
    for (A, W), how in zip(groups, drain):
        k = max(k, free)
        if moved:            # this start has reached row row-1 by then
            for j in range(row):
                prog.at(k + row + j).drain = prog.at(k + row + j).drain_shadow = 1
            free, moved = k + 2 * row, False
        for t in range(A.shape[0]):
            prog.os_step(k + t, A[t], W[t], start=(t == 0))
        k += A.shape[0]
        if how == "shadow":
            moved = True
        elif how:
            d = max(k + row - 1, free)  # the bottom PE of each column has made its last product
            for j in range(row):
                prog.at(d + j).drain = 1
            k = d + row
        prog.os_groups.append((A, W))
    assert not moved, "bench: a shadow drain needs a next group"
    prog.os_region(k0, k + prog.col + row)
    return len(prog)


# ----------------------------------------------------------------------------- model

@dataclass
class Expect:
    cycle: int
    value: int
    what: str


@dataclass
class Rebuilt:
    ws_tiles: list = field(default_factory=list)   # [(W, [a vectors])]
    os_groups: list = field(default_factory=list)  # [(A steps, W steps)]


class ArrayModel:
    """The array's contract applied to the recorded inputs of every cycle."""

    def __init__(self, row: int, col: int, bw: int, psum_bw: int):
        self.row, self.col, self.bw, self.psum_bw = row, col, bw, psum_bw

    def w(self, raw: int) -> int:
        return signed(raw, self.bw)

    def run(self, hist: list[dict]) -> tuple[list[list[Expect]], Rebuilt]:
        row, col = self.row, self.col
        n = len(hist)
        out = [[] for _ in range(col)]
        rebuilt = Rebuilt()
        # what writes w_q of column c: a load (wload_en) or, when none, an OS shift (os
        # reaches column c c cycles later)
        writes = [dict() for _ in range(col)]
        for k, h in enumerate(hist):
            for c in range(col):
                if h["os"] and k + c < n:
                    writes[c][k + c] = None  # shifted in: not a staged tile
            for c in range(col):
                if h["wload_en"] >> c & 1:
                    writes[c][k] = h["wload"]
                if h["wload2_en"] >> c & 1:
                    writes[c][k] = h["wload2"]

        def staged(r: int, c: int, k: int) -> int:
            """w_q of PE (r, c) as read in cycle k: the last write of column c before k."""
            before = [kw for kw in writes[c] if kw < k]
            if not before:
                return 0
            data = writes[c][max(before)]
            assert data is not None, (
                f"bench: the WS start reaching PE ({r}, {c}) in cycle {k} would take a weight "
                f"the OS chain shifted in (cycle {max(before)}), not a staged one")
            return self.w(data[r])

        active = np.zeros((row, col), dtype=np.int64)
        held = [[0] * col for _ in range(row)]  # OS psums per PE (None: unknown after WS use)
        shadow = [[0] * col for _ in range(row)]  # OS shadow registers
        events = [[] for _ in range(col)]       # per column: (cycle, order, kind, payload)
        for k, h in enumerate(hist):
            if h["drain"]:
                for c in range(col):
                    events[c].append((k + c, 0, "drain", h["drain_shadow"]))
            if not h["valid"]:
                continue
            assert k + row + col < n, f"model: vector at cycle {k} not fully recorded"
            a = np.array([hist[k + r]["a"][r] for r in range(row)], dtype=np.int64)
            if h["os"]:
                for r in range(1, row):
                    assert hist[k + r - 1]["os"], f"bench: os low in cycle {k + r - 1} during the OS step of cycle {k}"
                w = np.array([self.w(hist[k + c]["w"][c]) for c in range(col)], dtype=np.int64)
                if h["start"]:
                    rebuilt.os_groups.append(([], []))
                rebuilt.os_groups[-1][0].append(a)
                rebuilt.os_groups[-1][1].append(w)
                for c in range(col):
                    for r in range(row):
                        events[c].append((k + r + c, 1, "mac", (r, int(a[r] * w[c]), h["start"])))
            else:
                if h["start"]:
                    active = np.array([[staged(r, c, k + r + c) for c in range(col)] for r in range(row)])
                    rebuilt.ws_tiles.append((active.copy(), []))
                assert rebuilt.ws_tiles, f"bench: WS vector at cycle {k} before any start"
                rebuilt.ws_tiles[-1][1].append(a)
                psums = signed(a @ active, self.psum_bw)
                t, v = len(rebuilt.ws_tiles) - 1, len(rebuilt.ws_tiles[-1][1]) - 1
                for c in range(col):
                    out[c].append(Expect(k + row + c, int(psums[c]), f"WS tile {t} vector {v} (row 0 in cycle {k})"))
                    for r in range(row):
                        events[c].append((k + r + c, 1, "ws", r))
        # OS per column in time order; a live drain wins over a product in the same cycle, a
        # shadow drain over a start's move into the shadow registers
        for c in range(col):
            drains_done = {0: 0, 1: 0}
            evs = sorted(events[c], key=lambda e: (e[0], e[1]))
            i = 0
            while i < len(evs):
                cyc = evs[i][0]
                same = [e for e in evs[i:] if e[0] == cyc]
                i += len(same)
                drained = [e[3] for e in same if e[2] == "drain"]
                if drained:
                    regs = shadow if drained[0] else held
                    bottom = regs[row - 1][c]
                    assert bottom is not None, f"bench: drain in cycle {cyc} of column {c} outputs a WS psum"
                    n_done = drains_done[drained[0]]
                    out[c].append(Expect(cyc, int(signed(bottom, self.psum_bw)),
                                         f"OS {'shadow' if drained[0] else 'live'} drain {n_done} "
                                         f"(row {row - 1 - n_done % row} of the group)"))
                    drains_done[drained[0]] += 1
                    for r in range(row - 1, 0, -1):
                        regs[r][c] = regs[r - 1][c]
                    regs[0][c] = 0
                    if not drained[0]:
                        continue
                for _, _, kind, payload in same:
                    if kind == "drain":
                        continue
                    if kind == "ws":
                        held[payload][c] = None
                    else:
                        r, prod, start = payload
                        if start and not drained:
                            shadow[r][c] = held[r][c]
                        if start:
                            held[r][c] = prod
                        elif held[r][c] is not None:
                            held[r][c] += prod
            out[c].sort(key=lambda e: e.cycle)
        return out, rebuilt


# ----------------------------------------------------------------------------- bench

class TB:
    def __init__(self, dut):
        self.dut = dut
        self.row = param(dut, "row")
        self.col = param(dut, "col")
        self.bw = param(dut, "bw")
        self.psum_bw = param(dut, "psum_bw")
        self.rng = seeded_rng(dut)
        self.inputs: list[dict] = []
        self.played: list[Program] = []
        self.south: list[list[tuple[int, int]]] = [[] for _ in range(self.col)]
        self.model = ArrayModel(self.row, self.col, self.bw, self.psum_bw)
        dut._log.info("mac_array row=%d col=%d bw=%d psum_bw=%d", self.row, self.col, self.bw, self.psum_bw)

    def _drive(self, cyc: Cycle | None) -> None:
        dut, rng, bw = self.dut, self.rng, self.bw
        if cyc is None:
            cyc = Cycle(a=[None] * self.row, w=[None] * self.col, wload=[None] * self.row)
        junk = lambda lanes: [rng.getrandbits(bw) if v is None else v for v in lanes]  # noqa: E731
        dut.a_in.value = pack(junk(cyc.a), bw)
        dut.w_in.value = pack(junk(cyc.w), bw)
        dut.wload_data.value = pack(junk(cyc.wload), bw)
        dut.wload_en.value = cyc.wload_en
        dut.wload2_data.value = pack(junk(cyc.wload2 or [None] * self.row), bw)
        dut.wload2_en.value = cyc.wload2_en
        dut.wload_act2.value = cyc.wload_act2
        dut.wload_half.value = cyc.wload_half
        dut.act2.value = cyc.act2
        dut.valid.value = cyc.valid
        dut.start.value = cyc.start
        dut.os.value = cyc.os
        dut.drain.value = cyc.drain
        dut.drain_shadow.value = cyc.drain_shadow

    async def start(self):
        self._drive(None)
        await start_clock_and_reset(self.dut)
        cocotb.start_soon(self._input_monitor())
        cocotb.start_soon(self._south_monitor())

    async def _input_monitor(self):
        dut, row, col, bw = self.dut, self.row, self.col, self.bw
        while True:
            await ReadOnly()  # what the next edge takes
            self.inputs.append({
                "a": unpack(uint(dut.a_in), bw, row, signed=False),
                "w": unpack(uint(dut.w_in), bw, col, signed=False),
                "wload": unpack(uint(dut.wload_data), bw, row, signed=False),
                "wload_en": uint(dut.wload_en),
                "wload2": unpack(uint(dut.wload2_data), bw, row, signed=False),
                "wload2_en": uint(dut.wload2_en),
                "valid": uint(dut.valid), "start": uint(dut.start), "os": uint(dut.os),
                "drain": uint(dut.drain), "drain_shadow": uint(dut.drain_shadow),
            })
            await RisingEdge(dut.clk)

    async def _south_monitor(self):
        dut, col, pb = self.dut, self.col, self.psum_bw
        k = 0
        while True:
            await ReadOnly()  # the south edge as the next edge (the OFIFO) takes it
            valid = uint(dut.psum_valid)
            if valid:
                psums = unpack(uint(dut.psum_out), pb, col, signed=True)
                for c in range(col):
                    if valid >> c & 1:
                        self.south[c].append((k, psums[c]))
            k += 1
            await RisingEdge(dut.clk)

    async def play(self, prog: Program, tail: int | None = None) -> None:
        """Drive the program one cycle per edge, then idle long enough for every result."""
        self.played.append(prog)
        for cyc in prog.cycles:
            self._drive(cyc)
            await RisingEdge(self.dut.clk)
        for _ in range(self.row + self.col + 4 if tail is None else tail):
            self._drive(None)
            await RisingEdge(self.dut.clk)

    def check(self) -> int:
        """Compare the south edge with the model of everything driven so far."""
        expected, rebuilt = self.model.run(self.inputs)
        base = 0
        for c in range(self.col):
            got, want = self.south[c], expected[c]
            for i, (g, e) in enumerate(zip(got, want)):
                assert (g[0], g[1]) == (e.cycle, e.value), (
                    f"column {c}, output {i} ({e.what}): expected psum {e.value} in cycle {e.cycle}, "
                    f"got {g[1]} in cycle {g[0]} (now {get_sim_time('ns'):.0f} ns)"
                )
            assert len(got) == len(want), (
                f"column {c}: expected {len(want)} psums at the south edge, got {len(got)}; "
                f"first extra/missing: {(got[len(want):] or want[len(got):])[:3]}"
            )
            base += len(want)
        self.self_check(rebuilt)
        return base

    def self_check(self, rebuilt: Rebuilt) -> None:
        """The model must have rebuilt exactly what the bench generated (bench/model bugs)."""
        ws_tiles = [t for prog in self.played for t in prog.ws_tiles]
        os_groups = [g for prog in self.played for g in prog.os_groups]
        assert len(rebuilt.ws_tiles) == len(ws_tiles), (
            f"model found {len(rebuilt.ws_tiles)} WS tiles, bench made {len(ws_tiles)}")
        for t, ((W, A), (Wr, Ar)) in enumerate(zip(ws_tiles, rebuilt.ws_tiles)):
            assert np.array_equal(W, Wr), f"WS tile {t}: weights rebuilt\n{Wr}\nbench made\n{W}"
            assert np.array_equal(A, np.array(Ar)), f"WS tile {t}: activations differ"
        assert len(rebuilt.os_groups) == len(os_groups), (
            f"model found {len(rebuilt.os_groups)} OS groups, bench made {len(os_groups)}")
        for g, ((A, W), (Ar, Wr)) in enumerate(zip(os_groups, rebuilt.os_groups)):
            assert np.array_equal(A, np.array(Ar)) and np.array_equal(W, np.array(Wr)), f"OS group {g} differs"

    # ---- random data
    def rand_w(self, *shape):
        return np.array([[self.rng.randint(-8, 7) for _ in range(shape[1])] for _ in range(shape[0])], dtype=np.int64)

    def rand_a(self, *shape):
        return np.array([[self.rng.randint(0, 15) for _ in range(shape[1])] for _ in range(shape[0])], dtype=np.int64)


def ws_numpy(W, A, psum_bw):
    """Column c of the result for vector v: sum over rows r of A[v, r] * W[r, c]."""
    return signed(A @ W, psum_bw)


def os_numpy(A, W, psum_bw):
    """PE (r, c) holds sum over steps t of A[t, r] * W[t, c]."""
    return signed(A.T @ W, psum_bw)


def assert_south_is_ws(tb, start_cycle: int, W, A, rnd: int) -> None:
    """The south edge since start_cycle, in stream order, equals the numpy reference
    W^T a of the tile, straight from the generated W and A."""
    got = np.array([[v for k, v in tb.south[c] if k >= start_cycle] for c in range(tb.col)]).T
    want = ws_numpy(W, A, tb.psum_bw)
    assert np.array_equal(got, want), f"round {rnd}: south edge\n{got}\nnumpy W^T a\n{want}"


@cocotb.test()
async def test_ws_single_tiles(dut):
    """WS: one random tile at a time (several), vectors back to back; psums vs numpy W^T a."""
    tb = TB(dut)
    await tb.start()
    for rnd in range(3):
        prog = Program(tb.row, tb.col)
        W, A = tb.rand_w(tb.row, tb.col), tb.rand_a(tb.rng.randint(1, 12), tb.row)
        build_ws(prog, tb.rng, [(W, A)], k0=0)
        start_cycle = len(tb.inputs)
        await tb.play(prog)
        tb.check()
        assert_south_is_ws(tb, start_cycle, W, A, rnd)


@cocotb.test()
async def test_ws_two_loads_a_cycle(dut):
    """WS: a tile's columns staged two a cycle (column c on wload, column c + col/2 on
    wload2, as the core's LOAD / LOAD2), then streamed; psums vs numpy W^T a."""
    tb = TB(dut)
    await tb.start()
    half = (tb.col + 1) // 2
    for rnd in range(3):
        prog = Program(tb.row, tb.col)
        W, A = tb.rand_w(tb.row, tb.col), tb.rand_a(tb.rng.randint(1, 12), tb.row)
        for c in range(tb.col):
            prog.load_column(c % half, c, W[:, c])
        for v in range(A.shape[0]):
            prog.ws_vector(half + v, A[v], start=(v == 0))
        prog.ws_tiles.append((W, A))
        start_cycle = len(tb.inputs)
        await tb.play(prog)
        tb.check()
        assert_south_is_ws(tb, start_cycle, W, A, rnd)


@cocotb.test()
async def test_ws_2bit_mode(dut):
    """2-bit mode: two loads per column (wload_half 0: rows 0..row/2-1, 1: the rest; nibbles
    2p, 2p+1 -> slots 0, 1 of the half's row p), vectors of two 2-bit activations per lane
    (row r: channels 2r, 2r+1); column c's psum is the sum over 2 x row channels (numpy).
    Then a 4-bit tile right after: the mode travels with each vector. (The ArrayModel of the
    other tests is 4-bit only: the numpy comparison is the check here.)"""
    tb = TB(dut)
    await tb.start()
    r, c, half = tb.row, tb.col, tb.row // 2
    if r % 2:
        return                                   # the 2-bit mode needs an even row count
    W = np.array([[tb.rng.randint(-8, 7) for _ in range(c)] for _ in range(2 * r)], dtype=np.int64)
    A = np.array([[tb.rng.randint(0, 3) for _ in range(2 * r)] for _ in range(9)], dtype=np.int64)
    prog = Program(r, c)
    for k, (h, cc) in enumerate((h, cc) for h in (0, 1) for cc in range(c)):
        cyc = prog.at(k)
        cyc.wload_en, cyc.wload_act2, cyc.wload_half = 1 << cc, 1, h
        cyc.wload = [int(W[2 * h * half + j, cc]) for j in range(r)]    # nibble j: channel 2 h half + j
    k0 = 2 * c
    for v in range(len(A)):
        prog.ws_vector(k0 + v, A[v, 0::2] | A[v, 1::2] << 2, start=v == 0)
        prog.at(k0 + v).act2 = 1
    W4, A4 = tb.rand_w(r, c), tb.rand_a(5, r)
    for cc in range(c):
        prog.load_column(k0 + r + cc, cc, W4[:, cc])          # after the 2-bit start passed the column
    k4 = k0 + max(len(A), r + c + 1)
    for v in range(len(A4)):
        prog.ws_vector(k4 + v, A4[v], start=v == 0)
    start_cycle = len(tb.inputs)
    await tb.play(prog)
    got = np.array([[v for k, v in tb.south[cc] if k >= start_cycle] for cc in range(c)]).T
    want = np.concatenate([ws_numpy(W, A, tb.psum_bw), ws_numpy(W4, A4, tb.psum_bw)])
    assert np.array_equal(got, want), f"south edge\n{got}\nnumpy (2-bit tile, then 4-bit tile)\n{want}"


@cocotb.test()
async def test_ws_extremes(dut):
    """WS: the largest psums of either sign (all a = 15, all w = -8 or 7) and zeros."""
    tb = TB(dut)
    await tb.start()
    r, c = tb.row, tb.col
    W = np.full((r, c), -8, dtype=np.int64)
    W[:, ::2] = 7
    A = np.array([[15] * r, [0] * r, [15] * r, [1] * r], dtype=np.int64)
    prog = Program(r, c)
    build_ws(prog, tb.rng, [(W, A)], k0=0)
    await tb.play(prog)
    tb.check()
    want = ws_numpy(W, A, tb.psum_bw)
    got = np.array([[v for _, v in tb.south[cc]] for cc in range(c)]).T
    assert np.array_equal(got, want), f"south edge\n{got}\nnumpy\n{want}"


@cocotb.test()
async def test_ws_back_to_back(dut):
    """WS: tiles streamed with no bubble, each next tile staged while the previous streams
    (earliest, latest and random legal load cycles), start on the first vector of each."""
    tb = TB(dut)
    await tb.start()
    for load in ("earliest", "latest", "random"):
        tiles = [(tb.rand_w(tb.row, tb.col), tb.rand_a(max(tb.row, tb.col) + tb.rng.randint(0, 4), tb.row)) for _ in range(3)]
        prog = Program(tb.row, tb.col)
        build_ws(prog, tb.rng, tiles, k0=0, load=load)
        valid_cycles = [k for k, cyc in enumerate(prog.cycles) if cyc.valid]
        assert valid_cycles == list(range(valid_cycles[0], valid_cycles[0] + len(valid_cycles))), \
            "bench: the tiles should stream without a bubble"
        start_cycle = len(tb.inputs)
        await tb.play(prog)
        tb.check()
        got = np.array([[v for k, v in tb.south[c] if k >= start_cycle] for c in range(tb.col)]).T
        want = np.concatenate([ws_numpy(W, A, tb.psum_bw) for W, A in tiles])
        assert np.array_equal(got, want), f"{load} loads: south edge\n{got}\nnumpy per tile\n{want}"


@cocotb.test()
async def test_ws_gaps(dut):
    """WS: random bubbles between vectors (valid low, junk on the data lanes)."""
    tb = TB(dut)
    await tb.start()
    tiles = [(tb.rand_w(tb.row, tb.col), tb.rand_a(tb.rng.randint(1, 10), tb.row)) for _ in range(4)]
    prog = Program(tb.row, tb.col)
    build_ws(prog, tb.rng, tiles, k0=0, gap_prob=0.3)
    await tb.play(prog)
    tb.check()


@cocotb.test()
async def test_os(dut):
    """OS: random groups; drained psums (bottom row first) equal numpy A^T W; a group that
    is not drained is discarded by the next start."""
    tb = TB(dut)
    await tb.start()
    for rnd in range(3):
        groups = [(tb.rand_a(T, tb.row), tb.rand_w(T, tb.col)) for T in (tb.rng.randint(1, 20), tb.rng.randint(1, 20))]
        drain = [rnd == 0, True]  # round 0 drains both; later rounds leave the first group in place
        prog = Program(tb.row, tb.col)
        build_os(prog, groups, k0=0, drain=drain)
        start_cycle = len(tb.inputs)
        await tb.play(prog)
        tb.check()
        for c in range(tb.col):
            got = [v for k, v in tb.south[c] if k >= start_cycle]
            want = []
            for (A, W), d in zip(groups, drain):
                if d:
                    want += list(os_numpy(A, W, tb.psum_bw)[::-1, c])  # bottom row first
            assert got == [int(x) for x in want], f"round {rnd} column {c}: drained {got}, numpy A^T W (bottom first) {want}"


@cocotb.test()
async def test_os_overlap(dut):
    """OS, groups back to back: each group's sums drain from the shadow registers while the
    next one computes (the last one's live), bottom row first, and equal numpy A^T W."""
    tb = TB(dut)
    await tb.start()
    for rnd in range(2):
        lengths = [tb.rng.randint(1, 3 * tb.row) for _ in range(4)]
        groups = [(tb.rand_a(T, tb.row), tb.rand_w(T, tb.col)) for T in lengths]
        prog = Program(tb.row, tb.col)
        build_os(prog, groups, k0=0, drain=["shadow"] * (len(groups) - 1) + [True])
        start_cycle = len(tb.inputs)
        await tb.play(prog)
        tb.check()
        for c in range(tb.col):
            got = [v for k, v in tb.south[c] if k >= start_cycle]
            want = [int(x) for A, W in groups for x in os_numpy(A, W, tb.psum_bw)[::-1, c]]
            assert got == want, (f"round {rnd} (steps {lengths}) column {c}: drained {got}, "
                                 f"numpy A^T W (bottom first) {want}")


@cocotb.test()
async def test_mixed_dataflows(dut):
    """WS tile, OS group, WS tile again without reset: the modes do not disturb each other."""
    tb = TB(dut)
    await tb.start()
    prog = Program(tb.row, tb.col)
    k = build_ws(prog, tb.rng, [(tb.rand_w(tb.row, tb.col), tb.rand_a(5, tb.row))], k0=0)
    k = build_os(prog, [(tb.rand_a(9, tb.row), tb.rand_w(9, tb.col))], k0=k + 1, drain=[True])
    build_ws(prog, tb.rng, [(tb.rand_w(tb.row, tb.col), tb.rand_a(7, tb.row))], k0=k + tb.col)
    await tb.play(prog)
    n = tb.check()
    assert n == (5 + tb.row + 7) * tb.col, f"expected {(5 + tb.row + 7) * tb.col} psums in all, model gave {n}"


@pytest.mark.parametrize("row,col", [(8, 8), (4, 4), (4, 8), (8, 3)])
def test_mac_array(row, col):
    runner.run("mac_array", "test_mac_array", parameters={"row": row, "col": col}, name="mac_array")
