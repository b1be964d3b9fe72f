"""The fast weight-stationary schedule: output-aligned positions, activation reuse, weights staged while the array computes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import LayerError
from model.hwconfig import CONFIG
from model.program.geometry import (KIJ, PMEM_DEPTH, WEIGHT_BASE, XMEM_DEPTH, LayerGeometry, layer_operands,
                                    ofifo_latency)
from model.program.isa import LANE_BITS, Program, Timeline, pack_lanes
from model.tiling import padded_operands


@dataclass
class _Position:
    """One activation vector of the fast schedule, in the order the array takes them."""

    tile: int               # index of the (pass, oct, ict, kij) weight tile
    oct: int
    ict: int
    kij: int
    o_nij: int
    nij: int
    word: tuple | None      # (visit, nij) of the activation word; None for padding (zeros)


class _ActivationSource:
    """Where the L0 gets each non-padding activation word from, cycle by cycle.

    With reuse (the input map of one ic tile fits the activation buffer) each word is read
    from xmem once per (oc tile, ic tile) visit into its buffer entry, then pushed from
    there for every kij; consecutive visits use the two halves of the buffer when they
    fit. Without reuse each push takes the word straight from xmem Q, which holds the
    last word read until the next read.
    """

    def __init__(self, geo: LayerGeometry, positions: list[_Position], abuf_depth: int):
        self.geo = geo
        self.reuse = geo.n_onij <= abuf_depth
        self.halves = self.reuse and 2 * geo.n_onij <= abuf_depth
        self.uses: dict[tuple, int] = {}
        self.order: list[tuple] = []           # words in order of first use
        for pos in positions:
            if pos.word is not None:
                if pos.word not in self.uses:
                    self.order.append(pos.word)
                    self.uses[pos.word] = 0
                self.uses[pos.word] += 1
        self.requested: dict[tuple, int] = {}  # reuse: word -> cycle of its xmem read
        self.owner: dict[int, tuple] = {}      # reuse: buffer entry -> word in it
        self.next_fetch = 0
        self.on_q: tuple | None = None         # direct: word on xmem Q, and since when
        self.on_q_since = 0

    def interior_index(self, nij: int) -> int:
        y, x = divmod(nij, self.geo.wp)
        return (y - 1) * self.geo.w + (x - 1)

    def slot(self, word: tuple) -> int:
        visit, nij = word
        return self.interior_index(nij) + ((visit % 2) * self.geo.n_onij if self.halves else 0)

    def ready(self, word: tuple, t: int) -> bool:
        """Can the word be pushed into the L0 at cycle t?"""
        if self.reuse:
            read = self.requested.get(word)
            return read is not None and read + 2 <= t
        return self.on_q == word and self.on_q_since < t

    def needs_fetch(self, word: tuple) -> bool:
        return word not in self.requested if self.reuse else self.on_q != word

    def pushed(self, word: tuple) -> None:
        self.uses[word] -= 1

    def other_read(self) -> None:
        """xmem Q now holds something else (a weight)."""
        self.on_q = None

    def fetch(self, tl: Timeline, t: int, word: tuple, addr: int) -> bool:
        """Issue the xmem read of `word` at t (reuse: if its buffer entry is free)."""
        if self.reuse:
            slot = self.slot(word)
            holder = self.owner.get(slot)
            if holder is not None and holder != word and self.uses[holder] > 0:
                return False
            self.owner[slot] = word
            tl.at(t + 1, abuf_wr=1, abuf_waddr=slot)
            self.requested[word] = t
        else:
            self.on_q, self.on_q_since = word, t
        tl.xmem_read(t, addr)
        return True


def plan_passes(geo: LayerGeometry) -> list[tuple[list[int], list[int]]]:
    """Split the layer into passes (oc tiles, ic tiles) whose operands fit xmem at once:
    the interior activation words of the ic tiles in xmem[0:1024], the weights of those
    (oc tile, ic tile) pairs in xmem[1024:2048]. Oc-tile groups are as large as the weight
    half allows, so each ic tile's activations are loaded once per group."""
    act_words = geo.n_onij
    tile_weights = KIJ * geo.array_size
    half = XMEM_DEPTH - WEIGHT_BASE
    if act_words > WEIGHT_BASE:
        raise LayerError(f"layer {geo.ic}->{geo.oc} {geo.h}x{geo.w} cannot run: one ic tile needs "
                         f"{act_words} activation words, xmem holds {WEIGHT_BASE}")
    oct_group = min(geo.n_oct, half // tile_weights)
    ict_group = min(geo.n_ict, WEIGHT_BASE // act_words, half // (oct_group * tile_weights))
    octs = [list(range(i, min(i + oct_group, geo.n_oct))) for i in range(0, geo.n_oct, oct_group)]
    icts = [list(range(i, min(i + ict_group, geo.n_ict))) for i in range(0, geo.n_ict, ict_group)]
    return [(og, ig) for og in octs for ig in icts]


# ws_fast without the activation buffer: how many positions past the L0 write pointer the
# xmem port looks for the next word to read (a run of padding zeros needs no read).
_DIRECT_LOOKAHEAD = 8


def ws_fast(x_int: np.ndarray, w_int: np.ndarray, array_size: int = CONFIG.row,
            l0_depth: int = CONFIG.fifo_depth, sfp_depth: int = CONFIG.sfp_depth,
            abuf_depth: int = CONFIG.abuf_depth) -> Program:
    """Weight-stationary, streaming only the output-aligned positions of each kij.

    - Per (oc tile, ic tile, kij) only the Ho*Wo positions that feed an output enter the
      array; padding positions are pushed into the L0 as zeros (L0_ZERO), costing no
      xmem read. xmem holds interior words only.
    - Activation words are read from xmem once per (oc tile, ic tile) into the activation
      buffer and pushed from there for every kij (when the map fits the buffer), so the
      single xmem port is free to stage weights.
    - The next tile's weights are staged column by column while the current tile
      computes: column c may be overwritten once the current tile's start token has
      passed PE(row-1, c), and must be staged before the next start reaches PE(0, c).
    - Psums are accumulated on the fly in the SFP bank (entry oct * Ho*Wo + o_nij) as
      they leave the OFIFO, across kij and ic tiles, and are also written to pmem so they
      can be checked; the last contribution emits the ReLU output.
    - A layer whose operands do not fit xmem runs in passes of (oc-tile group, ic-tile
      group) (plan_passes); the next pass's words are written once the current pass has
      read its last word.
      Single-pass programs are measured from 'data in xmem'; multi-pass programs from
      cycle 0, every load included.
    The builder simulates the xmem port, the L0 write port and the array cycle by cycle.
    """
    geo, x, w = layer_operands(x_int, w_int, array_size)
    n = geo.array_size
    if geo.n_oct * geo.n_onij > sfp_depth:
        raise LayerError(f"layer {geo.ic}->{geo.oc} {geo.h}x{geo.w} cannot run: {geo.n_oct * geo.n_onij} "
                         f"output vectors do not fit the SFP bank ({sfp_depth} entries)")
    passes = plan_passes(geo)
    a_pad, w = padded_operands(x, w, n)
    whole_layer_in_pmem = geo.n_oct * geo.n_ict * KIJ * geo.n_nij <= PMEM_DEPTH
    hp, wp = geo.h + 2, geo.w + 2

    tiles, positions, pass_of_tile = [], [], []
    for p, (octs, icts) in enumerate(passes):
        for oct in octs:
            for ict in icts:
                visit = oct * geo.n_ict + ict
                for kij in range(KIJ):
                    g = len(tiles)
                    tiles.append((oct, ict, kij))
                    pass_of_tile.append(p)
                    for o_nij, nij in enumerate(geo.nij_table[kij].tolist()):
                        py, px = divmod(nij, wp)
                        padding = py in (0, hp - 1) or px in (0, wp - 1)
                        positions.append(_Position(g, oct, ict, kij, o_nij, nij,
                                                   None if padding else (visit, nij)))
    source = _ActivationSource(geo, positions, abuf_depth)
    pass_of_visit = {oct * geo.n_ict + ict: p for p, (octs, icts) in enumerate(passes)
                     for oct in octs for ict in icts}

    ict_slot = {ict: icts.index(ict) for _, icts in passes for ict in icts}
    oct_slot = {oct: octs.index(oct) for octs, _ in passes for oct in octs}
    group_size = len(passes[0][1])

    def word_addr(word):
        visit, nij = word
        return ict_slot[visit % geo.n_ict] * geo.n_onij + source.interior_index(nij)

    def weight_addr(oct, ict, kij, c):
        return WEIGHT_BASE + ((oct_slot[oct] * group_size + ict_slot[ict]) * KIJ + kij) * n + c

    def pass_words(octs, icts):
        words = []
        for ict in icts:
            for py in range(1, hp - 1):
                for px in range(1, wp - 1):
                    nij = py * wp + px
                    words.append((word_addr((ict, nij)),
                                  pack_lanes(a_pad[ict * n:(ict + 1) * n, nij], LANE_BITS, signed=False)))
        for oct in octs:
            for ict in icts:
                for kij in range(KIJ):
                    for c in range(n):
                        lanes = w[oct * n + c, ict * n:(ict + 1) * n, kij]
                        words.append((weight_addr(oct, ict, kij, c), pack_lanes(lanes, LANE_BITS, signed=True)))
        return words

    tl = Timeline()
    tl.at(0, flush=1)   # a clean datapath, whatever the previous program left in flight
    first = pass_words(*passes[0])
    for t, (addr, data) in enumerate(first):
        tl.xmem_write(t, addr, data)
    start = len(first)
    program = Program("ws", "fast", n, [], [], compute_start=start if len(passes) == 1 else 0)

    # the last position and weight tile of each pass, to know when its xmem words are dead
    last_position = {pass_of_tile[pos.tile]: i for i, pos in enumerate(positions) if pos.word is not None}
    last_tile = {p: g for g, p in enumerate(pass_of_tile)}
    pending_writes: list[tuple[int, int]] = []
    loading_pass = 0                # the pass whose words are (being) written
    tile_start = {}                 # tile -> cycle its first vector executes at row 0
    loaded = {}                     # tile -> cycle of each column's LOAD
    next_push = 0                   # next position to push into the L0
    next_exec = 0                   # next position to execute
    pushed_at = {}                  # position -> cycle of its L0 push
    weight_tile, weight_col = 0, 0  # next weight column to stage
    t = start
    while next_exec < len(positions):
        # xmem writes of the next pass, once this pass has read its last activation and weight
        if (not pending_writes and loading_pass + 1 < len(passes)
                and next_push > last_position.get(loading_pass, -1)
                and weight_tile > last_tile[loading_pass]):
            loading_pass += 1
            pending_writes = pass_words(*passes[loading_pass])
        writing = bool(pending_writes)
        # L0 write port: push the next position, in order. Row r pops r cycles after row 0,
        # so the deepest row holds n - 1 more than the vectors not yet executed.
        if next_push < len(positions) and next_push - next_exec < l0_depth - n - 1:
            pos = positions[next_push]
            if pos.word is None:
                tl.at(t, l0_wr=1, l0_zero=1)
            elif source.ready(pos.word, t):
                if source.reuse:
                    tl.at(t, l0_wr=1, l0_abuf=1, abuf_raddr=source.slot(pos.word))
                else:
                    tl.at(t, l0_wr=1)
                source.pushed(pos.word)
            if pos.word is None or tl.busy(t, "l0_wr"):
                pushed_at[next_push] = t
                next_push += 1
        # xmem port, by urgency: the next pass's words (nothing of this pass is left to
        # read), the word the L0 needs next, a weight column whose window is open, then
        # words ahead of their first use.
        if writing:
            addr, data = pending_writes.pop(0)
            tl.xmem_write(t, addr, data)
        # (direct: look past a run of zeros, Q holds the word until the next read)
        ahead = 1 if source.reuse else _DIRECT_LOOKAHEAD
        head = next((p for p in positions[next_push:next_push + ahead] if p.word is not None), None)
        if (not writing and head is not None and pass_of_tile[head.tile] <= loading_pass
                and source.needs_fetch(head.word)
                and (source.reuse or next_push - next_exec < l0_depth - n - 2)):
            source.fetch(tl, t, head.word, word_addr(head.word))
        if not tl.busy(t, "cen_xmem") and weight_tile < len(tiles) and pass_of_tile[weight_tile] <= loading_pass \
                and not (pass_of_tile[weight_tile] == loading_pass and pending_writes):
            prev = weight_tile - 1
            if prev < 0 or (prev in tile_start and t + 1 >= tile_start[prev] + n - 1 + weight_col):
                tl.xmem_read(t, weight_addr(*tiles[weight_tile], weight_col))
                source.other_read()
                tl.at(t + 1, load=1, wcol=weight_col)
                loaded.setdefault(weight_tile, []).append(t + 1)
                weight_col += 1
                if weight_col == n:
                    weight_tile, weight_col = weight_tile + 1, 0
        if source.reuse and not tl.busy(t, "cen_xmem"):
            while source.next_fetch < len(source.order) and source.order[source.next_fetch] in source.requested:
                source.next_fetch += 1
            if source.next_fetch < len(source.order):
                word = source.order[source.next_fetch]
                if pass_of_visit[word[0]] <= loading_pass and not pending_writes:
                    source.fetch(tl, t, word, word_addr(word))
        # Array: execute the next pushed position; a tile's first needs all its columns
        # staged before its start token reaches them.
        if next_exec < next_push and pushed_at[next_exec] < t:
            pos = positions[next_exec]
            first_of_tile = pos.tile not in tile_start
            ready = not first_of_tile or (
                len(loaded.get(pos.tile, [])) == n
                and all(load <= t + c - 1 for c, load in enumerate(loaded[pos.tile])))
            if ready:
                if first_of_tile:
                    tile_start[pos.tile] = t
                tl.at(t, l0_rd=1, execute=1, start=int(first_of_tile))
                _pop_into_sfp(tl, program, geo, pos, t + ofifo_latency(n), whole_layer_in_pmem)
                next_exec += 1
        t += 1
    program.last_emit = max(k for k, c in enumerate(tl.cycles) if c.get("emit")) + 2
    tl.at(program.last_emit + 1)
    program.inst, program.d_xmem = tl.words()
    return program


def _pop_into_sfp(tl: Timeline, program: Program, geo: LayerGeometry, pos: _Position,
                  pop: int, whole_layer_in_pmem: bool) -> None:
    """Pop this position's psum vector: into pmem (for checking) and into SFP entry o_nij."""
    index = len(program.psum_writes)
    addr = geo.psum_addr(pos.oct, pos.ict, pos.kij, pos.nij) if whole_layer_in_pmem else index % PMEM_DEPTH
    first = pos.ict == 0 and pos.kij == 0
    last = pos.ict == geo.n_ict - 1 and pos.kij == KIJ - 1
    tl.at(pop, ofifo_rd=1, cen_pmem=0, wen_pmem=0, a_pmem=addr, acc=1, acc_src=1,
          acc_first=int(first), emit=int(last), relu=int(last),
          acc_addr=pos.oct * geo.n_onij + pos.o_nij)
    program.psum_writes.append((addr, (pos.ict, pos.oct, pos.kij, pos.nij)))
    program.executes += 1
    if last:
        program.emits.append((pos.oct, pos.o_nij))

