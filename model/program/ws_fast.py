"""The fast weight-stationary schedule (ws_fast): output-aligned positions, activation
reuse, weights staged while the array computes, psums accumulated in the SFP on the fly.

Activations live in xmem, weights in the weight memory wmem: two ports, so a LOAD (WSRC,
its word read from wmem) never waits for an activation read. The D_xmem bus writes xmem,
the D_wmem bus wmem's write port (an entry of two weight words per cycle), so the next
pass's operands go in while the array reads the current one.

Paired weight sets (plan.period > 0, paired_period: 4-bit layers whose weight set has fewer
positions than the array has rows, the 2x2 maps of VGG16 at batch 1): a column's LOAD
cannot wait for the start token to leave the whole column (n cycles) when a set lasts
fewer cycles. A *boundary word* then stages rows 0..h-1 (h = n // 2) of set j + 1 together
with rows h..n-1 of set j, in the one cycle the start token of set j sits between the two
halves of the column; each set starts `period` cycles after the previous one, and the two
boundary words due in the same cycle (columns c and c + period of consecutive boundaries)
come from one wmem entry: LOAD (its low word, column WCOL) and LOAD2 (its high word, column
WCOL2).

The builder simulates the resources cycle by cycle, one small stage per resource:
_XmemLoader (the next pass's xmem and wmem writes), _L0Writer (the L0 write port),
_ActivationSource (activation reads: abuf or xmem Q), _WeightStager (weight columns from
wmem into the staged registers) and _ArrayIssuer (EXECUTE, and the OFIFO pop into the SFP). A
"weight set" is the n x n weights of one (oc tile, ic tile, kij): what the array holds
while the positions of that kij stream through.

2-bit mode (a_bit=2, model.tiling.lanes_per_pe): an ic tile is 2n channels, an
activation word holds 2n 2-bit lanes (channel j of the tile in bits 2j+1:2j, so row j // 2,
weight slot j % 2), and a weight set is 2n words: LOAD column k < n stages the weight
pairs of rows 0..n/2-1 of column k, k >= n those of rows n/2.. of column k - n; each word
holds channels (k // n) * n .. + n-1 of the tile, nibble by nibble (the 4-bit word of that
half of the tile). ACT2 is set with every EXECUTE and LOAD.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from model.errors import LayerError
from model.hwconfig import CONFIG
from model.program.memory_map import (KIJ, PMEM_DEPTH, WMEM_DEPTH, XMEM_DEPTH, LayerGeometry, layer_operands,
                                      ofifo_latency, psum_addr)
from model.program.isa import LANE_BITS, Program, Timeline, pack_lanes
from model.tiling import A_BIT, check_int, padded_operands


@dataclass
class _Position:
    """One activation vector of the fast schedule, in the order the array takes them."""

    wset: int               # index of its weight set (oct, ict, kij), in array order
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
    last word read until the next read (weights come through wmem and leave it alone).
    """

    def __init__(self, plan: "_Plan", abuf_depth: int):
        geo = plan.geo
        self.plan = plan
        self.reuse = geo.n_onij <= abuf_depth
        self.halves = self.reuse and 2 * geo.n_onij <= abuf_depth
        self.uses: dict[tuple, int] = {}
        self.order: list[tuple] = []           # words in order of first use
        for pos in plan.positions:
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

    def slot(self, word: tuple) -> int:
        visit, nij = word
        return self.plan.geo.interior_index(nij) + ((visit % 2) * self.plan.geo.n_onij if self.halves else 0)

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

    def fetch(self, tl: Timeline, t: int, word: tuple, addr: int) -> None:
        """Issue the xmem read of `word` at t (reuse: only if its buffer entry is free; else
        nothing this cycle, the caller asks again)."""
        if self.reuse:
            slot = self.slot(word)
            holder = self.owner.get(slot)
            if holder is not None and holder != word and self.uses[holder] > 0:
                return
            self.owner[slot] = word
            tl.at(t + 1, abuf_wr=1, abuf_waddr=slot)
            self.requested[word] = t
        else:
            self.on_q, self.on_q_since = word, t
        tl.xmem_read(t, addr)

    def prefetch(self, tl: Timeline, t: int, xmem: "_XmemLoader") -> None:
        """Reuse: with the xmem port free, read the next word not yet requested into the
        activation buffer, ahead of its first use."""
        if not self.reuse or tl.busy(t, "cen_xmem"):
            return
        while self.next_fetch < len(self.order) and self.order[self.next_fetch] in self.requested:
            self.next_fetch += 1
        if self.next_fetch < len(self.order):
            word = self.order[self.next_fetch]
            if xmem.readable(self.plan.pass_of_visit[word[0]]):
                self.fetch(tl, t, word, self.plan.word_addr(word))


def plan_passes(geo: LayerGeometry, banks: int = 1) -> list[tuple[list[int], list[int]]]:
    """Split the layer into passes (oc tiles, ic tiles) whose operands fit one of `banks`
    equal parts of each memory at once: the interior activation words of the ic tiles in a
    part of xmem, the weight entries of those (oc tile, ic tile) pairs in a part of wmem
    (pair_entries). Oc-tile groups are as large as the weight part allows, so each ic
    tile's activations are loaded once per group."""
    act_words = geo.n_onij
    per_pair, per_pass = pair_entries(geo)
    act_room, weight_room = XMEM_DEPTH // banks, WMEM_DEPTH // banks - per_pass
    if act_words > act_room:
        raise LayerError(f"layer {geo.name} cannot run: one ic tile needs "
                         f"{act_words} activation words, xmem holds {act_room}")
    if per_pair > weight_room:
        raise LayerError(f"layer {geo.name} cannot run: one (oc tile, ic tile) pair needs "
                         f"{per_pair} weight entries, wmem holds {weight_room}")
    oct_group = min(geo.n_oc_tiles, weight_room // per_pair)
    ict_group = min(geo.n_ic_tiles, act_room // act_words, weight_room // (oct_group * per_pair))
    octs = [list(range(i, min(i + oct_group, geo.n_oc_tiles))) for i in range(0, geo.n_oc_tiles, oct_group)]
    icts = [list(range(i, min(i + ict_group, geo.n_ic_tiles))) for i in range(0, geo.n_ic_tiles, ict_group)]
    return [(og, ig) for og in octs for ig in icts]


def paired_period(geo: LayerGeometry) -> int:
    """Cycles between the starts of consecutive weight sets of a paired layer (module doc):
    a set's positions, and at least n - n // 2 (a boundary word's rows must both be free);
    0 when the layer is not paired (2-bit mode, or as many positions as rows)."""
    n = geo.array_size
    if geo.lanes != 1 or n < 2 or geo.n_onij >= n:
        return 0
    return max(geo.n_onij, n - n // 2)


def pair_entries(geo: LayerGeometry) -> tuple[int, int]:
    """wmem entries per (oc tile, ic tile) pair, and per pass on top of those: paired, a
    set's `period` entries and n more for the pass's last boundary; else a word per entry."""
    period = paired_period(geo)
    if period:
        return KIJ * period, geo.array_size
    return KIJ * geo.array_size * geo.lanes, 0


def xmem_banks(geo: LayerGeometry) -> int:
    """2 when the layer needs more than one pass and one (oc tile, ic tile) pair fits half
    of xmem and of wmem: pass p's words then live in bank p % 2 (that half of each), and
    pass p + 1's are written in the ports' idle cycles while pass p computes (double
    buffering); else 1."""
    if len(plan_passes(geo)) == 1:
        return 1
    per_pair, per_pass = pair_entries(geo)
    halves_fit = geo.n_onij <= XMEM_DEPTH // 2 and per_pair + per_pass <= WMEM_DEPTH // 2
    return 2 if halves_fit else 1

# ws_fast without the activation buffer: how many positions past the L0 write pointer the
# xmem port looks for the next word to read (a run of padding zeros needs no read).
_DIRECT_LOOKAHEAD = 8


class _Plan:
    """What enters the array, in order, and where its words live in xmem, pass by pass."""

    def __init__(self, geo: LayerGeometry, a_pad: np.ndarray | None, w: np.ndarray | None):
        """a_pad / w None: a template (model.program.network): each xmem write carries the
        word's id (word_ids) instead of its value, each wmem write the ids of its words'
        halves (pass_words)."""
        self.geo, self.a_pad, self.w = geo, a_pad, w
        self.banks = xmem_banks(geo)
        self.passes = plan_passes(geo, self.banks)
        self.period = paired_period(geo)
        n, lanes = geo.array_size, geo.lanes
        # LOAD columns of a weight set (wcol k: column k % n, rows from first_row[k], n // lanes
        # of them), in order of the cycle the start token reaches their first row
        self.rows_per_load = n // lanes
        self.first_row = [(k // n) * self.rows_per_load for k in range(lanes * n)]
        self.loads = sorted(range(lanes * n), key=lambda k: (k % n + self.first_row[k], k // n))
        self.mode = {"act2": 1} if lanes == 2 else {}      # instruction fields of every EXECUTE / LOAD
        self.wsets: list[tuple[int, int, int]] = []       # (oct, ict, kij)
        self.pass_of_wset: list[int] = []
        self.positions: list[_Position] = []
        # one ic tile in one pass: every oc tile reads the same words, once (one visit)
        shared = len(self.passes) == 1 and geo.n_ic_tiles == 1
        self.pass_of_visit: dict[int, int] = {}
        for p, (octs, icts) in enumerate(self.passes):
            for oct in octs:
                for ict in icts:
                    visit = 0 if shared else oct * geo.n_ic_tiles + ict
                    self.pass_of_visit[visit] = p
                    for kij in range(KIJ):
                        g = len(self.wsets)
                        self.wsets.append((oct, ict, kij))
                        self.pass_of_wset.append(p)
                        for o_nij, nij in enumerate(geo.nij_table[kij].tolist()):
                            self.positions.append(_Position(g, oct, ict, kij, o_nij, nij,
                                                            None if geo.is_padding(nij) else (visit, nij)))
        self.ict_slot = {ict: icts.index(ict) for _, icts in self.passes for ict in icts}
        self.oct_slot = {oct: octs.index(oct) for octs, _ in self.passes for oct in octs}
        self.group_size = len(self.passes[0][1])
        self.pass_of_pair = {(oct, ict): p for p, (octs, icts) in enumerate(self.passes) for oct in octs for ict in icts}
        # the last position with a word and the last weight set of each pass: after them
        # its xmem words are dead
        self.last_position = {self.pass_of_wset[pos.wset]: i for i, pos in enumerate(self.positions)
                              if pos.word is not None}
        self.last_wset = {p: g for g, p in enumerate(self.pass_of_wset)}
        self.wsets_of_pass = {p: [g for g, q in enumerate(self.pass_of_wset) if q == p]
                              for p in range(len(self.passes))}
        self.first_position = {}
        for i, pos in enumerate(self.positions):
            self.first_position.setdefault(self.pass_of_wset[pos.wset], i)

    def word_addr(self, word: tuple) -> int:
        """xmem address of activation word (visit, nij)."""
        visit, nij = word
        return self.act_addr(self.pass_of_visit[visit], visit % self.geo.n_ic_tiles, nij)

    def act_addr(self, p: int, ict: int, nij: int) -> int:
        """xmem address of ic tile ict's word at nij in pass p: in the pass's bank."""
        bank = p % self.banks * (XMEM_DEPTH // self.banks)
        return bank + self.ict_slot[ict] * self.geo.n_onij + self.geo.interior_index(nij)

    def weight_bank(self, p: int) -> int:
        """First wmem entry of pass p's bank."""
        return p % self.banks * (WMEM_DEPTH // self.banks)

    def weight_addr(self, oct: int, ict: int, kij: int, k: int) -> int:
        """wmem entry of LOAD column k of weight set (oct, ict, kij), not paired: one word
        (the entry's low word) per entry, in its pass's bank."""
        slot = self.oct_slot[oct] * self.group_size + self.ict_slot[ict]
        bank = self.weight_bank(self.pass_of_pair[(oct, ict)])
        return bank + (slot * KIJ + kij) * self.geo.array_size * self.geo.lanes + k

    def paired_entries(self, p: int) -> list[list[tuple[int, int]]]:
        """A paired pass's wmem entries in LOAD order (entry e at wmem[weight_bank(p) + e],
        LOADed in cycle base + e): the (boundary b, column c) of each word, column order.
        Boundary b of the pass's m sets stages rows 0..h-1 of set min(b, m-1) and rows
        h..n-1 of set max(b-1, 0); its column c is due period * b + c cycles after base."""
        n, period = self.geo.array_size, self.period
        m = len(self.wsets_of_pass[p])
        return [[(b, e - b * period) for b in range(m, -1, -1) if 0 <= e - b * period < n]
                for e in range(m * period + n)]

    def _weight_word(self, key: tuple[int, int, int, int]):
        """Weight word (oct, ict, kij, k) of LOAD column k: its value, or a template's id."""
        oct, ict, kij, k = key
        geo, n, loads = self.geo, self.geo.array_size, self.geo.lanes * self.geo.array_size
        if self.w is None:
            return geo.n_ic_tiles * geo.n_onij + ((oct * geo.n_ic_tiles + ict) * KIJ + kij) * loads + k
        first = ict * geo.ic_tile + (k // n) * n
        return pack_lanes(self.w[oct * n + k % n, first:first + n, kij], LANE_BITS, signed=True)

    def _entry(self, words: list[tuple[tuple, tuple]]):
        """A wmem entry of (key of rows 0..h-1, key of rows h..n-1) words, low word first:
        its value, or a template's ids (low rows, high rows of each word; -1: no word)."""
        if self.w is None:
            ids = [self._weight_word(k) for pair in words for k in pair]
            return tuple(ids + [-1] * (4 - len(ids)))
        n = self.geo.array_size
        low = (1 << (n // 2) * LANE_BITS) - 1 if self.period else (1 << n * LANE_BITS) - 1
        value = 0
        for i, (lo, hi) in enumerate(words):
            value |= ((self._weight_word(lo) & low) | (self._weight_word(hi) & ~low)) << (i * n * LANE_BITS)
        return value

    def pass_words(self, p: int) -> list[tuple[str, int, object]]:
        """(memory, address, data) of every operand of pass p: interior activation words
        (xmem) and weight entries (wmem; paired_entries when paired, else a word per entry).
        A template's data are ids (word_ids; an entry's: _entry)."""
        octs, icts = self.passes[p]
        geo, a_pad = self.geo, self.a_pad
        t, lane_bits, loads = geo.ic_tile, LANE_BITS // geo.lanes, geo.lanes * geo.array_size
        words = []
        for ict in icts:
            for nij in (nij for nij in range(geo.n_nij) if not geo.is_padding(nij)):
                words.append(("xmem", self.act_addr(p, ict, nij),
                              ict * geo.n_onij + geo.interior_index(nij) if a_pad is None else
                              pack_lanes(a_pad[ict * t:(ict + 1) * t, nij], lane_bits, signed=False)))
        if self.period:
            sets = self.wsets_of_pass[p]
            for e, entry in enumerate(self.paired_entries(p)):
                words.append(("wmem", self.weight_bank(p) + e, self._entry(
                    [(self.wsets[sets[min(b, len(sets) - 1)]] + (c,), self.wsets[sets[max(b - 1, 0)]] + (c,))
                     for b, c in entry])))
            return words
        for oct in octs:
            for ict in icts:
                for kij in range(KIJ):
                    for k in range(loads):
                        key = (oct, ict, kij, k)
                        words.append(("wmem", self.weight_addr(*key), self._entry([(key, key)])))
        return words


class _XmemLoader:
    """xmem and wmem writes of the next pass, once the pass whose bank it takes (the current
    pass, or with two banks the one before it) has read its last activation and weight
    word. An xmem write takes the D_xmem bus and xmem's port in a cycle no read wants it
    (schedule's order); a wmem write takes the D_wmem bus and wmem's write port, which no
    read uses, in the same cycle; a pass's words are read once all of them are written
    (readable)."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.loading_pass = 0                      # the pass whose words are (being) written
        self.pending: dict[str, deque] = {"xmem": deque(), "wmem": deque()}

    def next_pass(self, t: int, next_push: int, weights: "_WeightStager | _PairedStager") -> None:
        plan, p = self.plan, self.loading_pass
        freed = p + 1 - plan.banks                 # the pass whose bank the next one takes
        if (self.done() and p + 1 < len(plan.passes) and (freed < 0 or (
                next_push > plan.last_position.get(freed, -1) and weights.done_with(freed, t)))):
            self.loading_pass += 1
            for mem, addr, data in plan.pass_words(self.loading_pass):
                self.pending[mem].append((addr, data))

    def done(self) -> bool:
        return not any(self.pending.values())

    def readable(self, p: int) -> bool:
        """Are all the words of pass p in xmem and wmem?"""
        return p < self.loading_pass or (p == self.loading_pass and self.done())

    def write(self, tl: Timeline, t: int) -> None:
        for mem, port in (("xmem", "cen_xmem"), ("wmem", "wen_wmem")):
            queue = self.pending[mem]
            if queue and not tl.busy(t, port):
                addr, data = queue.popleft()
                tl.write(t, mem, addr, data)


class _L0Writer:
    """The L0 write port: pushes the next position, in order (zeros for padding, else the
    word once the activation source has it). Row r pops r cycles after row 0, so the
    deepest row holds n - 1 more than the vectors not yet executed."""

    def __init__(self, plan: _Plan, source: _ActivationSource, l0_depth: int):
        self.plan, self.source = plan, source
        self.room = l0_depth - plan.geo.array_size - 1
        self.next_push = 0
        self.pushed_at: dict[int, int] = {}       # position -> cycle of its L0 push

    def push(self, tl: Timeline, t: int, next_exec: int) -> None:
        positions, source = self.plan.positions, self.source
        if self.next_push >= len(positions) or self.next_push - next_exec >= self.room:
            return
        pos = positions[self.next_push]
        if pos.word is None:
            tl.at(t, l0_wr=1, l0_zero=1)
        elif source.ready(pos.word, t):
            if source.reuse:
                tl.at(t, l0_wr=1, l0_abuf=1, abuf_raddr=source.slot(pos.word))
            else:
                tl.at(t, l0_wr=1)
            source.pushed(pos.word)
        if pos.word is None or tl.busy(t, "l0_wr"):
            self.pushed_at[self.next_push] = t
            self.next_push += 1

    def fetch_next_word(self, tl: Timeline, t: int, next_exec: int, xmem: "_XmemLoader") -> None:
        """xmem read of the word the L0 needs next (direct: look past a run of zeros; Q holds
        the word until the next read)."""
        plan, source = self.plan, self.source
        if tl.busy(t, "cen_xmem"):            # a committed weight set's LOAD went first
            return
        ahead = 1 if source.reuse else _DIRECT_LOOKAHEAD
        head = next((p for p in plan.positions[self.next_push:self.next_push + ahead] if p.word is not None), None)
        if (head is not None and xmem.readable(plan.pass_of_wset[head.wset])
                and source.needs_fetch(head.word)
                and (source.reuse or self.next_push - next_exec < self.room - 1)):
            source.fetch(tl, t, head.word, plan.word_addr(head.word))


class _WeightStager:
    """Stages the weight sets column by column (plan.loads order): a wmem read, LOAD (WSRC)
    the next cycle. The rows of column c that a LOAD writes may be overwritten once the
    current set's start token has passed the last of them."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.next_wset, self.col = 0, 0           # next weight set, index into plan.loads
        self.loaded: dict[int, list[int]] = {}   # weight set -> cycle of each column's LOAD

    def done_with(self, p: int, t: int) -> bool:
        """Has pass p's last weight word been read?"""
        return self.next_wset > self.plan.last_wset[p]

    def stage(self, tl: Timeline, t: int, wset_start: dict[int, int], xmem: _XmemLoader) -> None:
        plan, g, n = self.plan, self.next_wset, self.plan.geo.array_size
        if g >= len(plan.wsets) or not xmem.readable(plan.pass_of_wset[g]):
            return
        if tl.busy(t, "cen_wmem") or tl.busy(t + 1, "load"):
            return
        prev, k = g - 1, plan.loads[self.col]
        last_row = plan.first_row[k] + plan.rows_per_load - 1
        if prev >= 0 and not (prev in wset_start and t + 1 >= wset_start[prev] + last_row + k % n):
            return
        tl.xmem_read(t, plan.weight_addr(*plan.wsets[g], k), "wmem")
        tl.at(t + 1, load=1, wsrc=1, wcol=k, **plan.mode)
        self.loaded.setdefault(g, []).append(t + 1)
        self.col += 1
        if self.col == len(plan.loads):
            self.next_wset, self.col = g + 1, 0

    def ready(self, g: int, t: int) -> bool:
        """Are all columns of weight set g staged before a start token at row 0 in cycle t
        reaches them (the first row r of column c that a LOAD writes is reached r + c cycles
        later)?"""
        plan, n, loads = self.plan, self.plan.geo.array_size, self.loaded.get(g, [])
        return len(loads) == len(plan.loads) and all(
            load <= t + plan.first_row[k] + k % n - 1 for k, load in zip(plan.loads, loads))

    def committed(self, wset_start: dict[int, int]) -> bool:
        """Has the set being staged started already (ready_soon)? Then its LOADs take their
        memory's port before anything else."""
        return self.col > 0 and self.next_wset in wset_start

    def ready_soon(self, g: int, t: int, wset_start: dict[int, int], xmem: "_XmemLoader") -> bool:
        """May set g start at t although LOADs are still to come (column c's LOAD is due only
        when the start token reaches it, c cycles after row 0; in 2-bit mode a set's 2n LOADs
        fill the wmem port for as long as the set computes)? Yes when the LOADs staged so
        far are in time and each remaining one, read in the cycles from t + 1 on
        (committed() gives it the port first), is both inside its window and in time."""
        plan, n, loads = self.plan, self.plan.geo.array_size, self.loaded.get(g, [])
        if self.next_wset != g or not loads or not xmem.readable(plan.pass_of_wset[g]):
            return False
        prev = wset_start.get(g - 1)
        for i, k in enumerate(plan.loads):
            load = loads[i] if i < len(loads) else t + 2 + i - len(loads)
            opens = prev + plan.first_row[k] + plan.rows_per_load - 1 + k % n if g else load
            if not opens <= load <= t + plan.first_row[k] + k % n - 1:
                return False
        return True


class _PairedStager:
    """Stages a paired layer's weights (module doc) a pass at a time. Once the pass's
    entries are in wmem and its first position is in the L0, the whole pass is committed:
    set j of the pass starts at start + j * period, and entry e (paired_entries) is read
    in cycle base + e - 1 and LOADed (and LOAD2ed) in base + e, where base = start - period
    + h - 1: boundary b's column c lands in the one cycle, start + (b - 1) * period + h - 1
    + c, that the start token of set b - 1 sits between rows h - 1 and h of column c. A pass
    begins after the previous one's last read (one read port), which also leaves the
    previous set's upper rows time to take their weights."""

    def __init__(self, plan: _Plan, l0: "_L0Writer"):
        self.plan, self.l0 = plan, l0
        self.next_pass = 0
        self.next_wset = 0                        # first weight set not committed
        self.starts: dict[int, int] = {}          # weight set -> the cycle it must start
        self.reads_end = 0                        # the cycle after the last committed read
        self.pass_end: dict[int, int] = {}        # pass -> the cycle after its last read

    def done_with(self, p: int, t: int) -> bool:
        """Has pass p's last wmem entry been read?"""
        return p in self.pass_end and t >= self.pass_end[p]

    def stage(self, tl: Timeline, t: int, wset_start: dict[int, int], xmem: _XmemLoader) -> None:
        plan, p = self.plan, self.next_pass
        if p >= len(plan.passes) or not xmem.readable(p) or self.l0.next_push <= plan.first_position[p]:
            return
        base = max(t + 1, self.reads_end)
        start = base + plan.period - plan.geo.array_size // 2 + 1
        entries = plan.paired_entries(p)
        for e, words in enumerate(entries):
            tl.xmem_read(base + e - 1, plan.weight_bank(p) + e, "wmem")
            pair = {"load2": 1, "wcol2": words[1][1]} if len(words) > 1 else {}
            tl.at(base + e, load=1, wsrc=1, wcol=words[0][1], **pair)
        sets = plan.wsets_of_pass[p]
        for j, g in enumerate(sets):
            self.starts[g] = start + j * plan.period
        self.reads_end = self.pass_end[p] = base + len(entries)
        self.next_pass, self.next_wset = p + 1, sets[-1] + 1

    def ready(self, g: int, t: int) -> bool:
        """Is t the cycle weight set g must start in? LayerError when its first position
        reaches the L0 later: its weights are gone by then (without the activation buffer
        each word waits for its xmem read; the L0 limits how far ahead they come)."""
        due = self.starts.get(g)
        if due is not None and t > due:
            raise LayerError(f"layer {self.plan.geo.name} cannot run: paired weight set {g} is due to start in "
                             f"cycle {due}, its activations reach the L0 for cycle {t} (a map larger than "
                             f"the activation buffer needs a deeper L0)")
        return due == t

    def committed(self, wset_start: dict[int, int]) -> bool:
        """Never: stage() commits a whole pass at once, its reads on their own cycles."""
        return False

    def ready_soon(self, g: int, t: int, wset_start: dict[int, int], xmem: _XmemLoader) -> bool:
        """Never: a paired set starts exactly in its cycle (ready)."""
        return False


class _ArrayIssuer:
    """EXECUTE of the next pushed position; the first of a weight set carries the start
    token and needs the set staged. Its psum vector is popped ofifo_latency later into
    pmem (for checking) and into the SFP bank (entry oct * Ho*Wo + o_nij)."""

    def __init__(self, plan: _Plan, program: Program, whole_layer_in_pmem: bool):
        self.plan, self.program = plan, program
        # the emit's SFP fields: ReLU (a layer on its own), the level, or the raw sum
        self.emit_fields = {"relu": {"relu": 1}, "requant": {"requant": 1}, "raw": {"raw": 1}}[program.emit]
        self.shift = program.ic_tile_shift or (0,) * plan.geo.n_ic_tiles
        self.whole_layer_in_pmem = whole_layer_in_pmem
        self.latency = ofifo_latency(plan.geo.array_size)
        self.next_exec = 0
        self.wset_start: dict[int, int] = {}     # weight set -> cycle its first vector executes at row 0

    def issue(self, tl: Timeline, t: int, l0: _L0Writer, weights: _WeightStager | _PairedStager,
              xmem: _XmemLoader) -> None:
        if self.next_exec >= l0.next_push or l0.pushed_at[self.next_exec] >= t:
            return
        pos = self.plan.positions[self.next_exec]
        first = pos.wset not in self.wset_start
        if first and not (weights.ready(pos.wset, t) or weights.ready_soon(pos.wset, t, self.wset_start, xmem)):
            return
        if first:
            self.wset_start[pos.wset] = t
        tl.at(t, l0_rd=1, execute=1, start=int(first), **self.plan.mode)
        self._pop_into_sfp(tl, pos, t + self.latency)
        self.next_exec += 1

    def _pop_into_sfp(self, tl: Timeline, pos: _Position, pop: int) -> None:
        geo, program = self.plan.geo, self.program
        index = len(program.psum_writes)
        addr = psum_addr(geo, pos.oct, pos.ict, pos.kij, pos.nij) if self.whole_layer_in_pmem else index % PMEM_DEPTH
        first = pos.ict == 0 and pos.kij == 0
        last = pos.ict == geo.n_ic_tiles - 1 and pos.kij == KIJ - 1
        tl.at(pop, ofifo_rd=1, cen_pmem=0, wen_pmem=0, a_pmem=addr, acc=1, acc_src=1,
              acc_first=int(first), acc_shift=self.shift[pos.ict], acc_addr=pos.oct * geo.n_onij + pos.o_nij)
        if last:
            tl.at(pop, emit=1, **self.emit_fields)
            if program.emit == "requant":
                tl.at(pop, thr_tile=pos.oct)
        program.psum_writes.append((addr, (pos.ict, pos.oct, pos.kij, pos.nij)))
        program.executes += 1
        if last:
            program.emits.append((pos.oct, pos.o_nij))


def ws_fast(x_int: np.ndarray, w_int: np.ndarray, array_size: int = CONFIG.row,
            l0_depth: int = CONFIG.fifo_depth, sfp_depth: int = CONFIG.sfp_depth,
            abuf_depth: int = CONFIG.abuf_depth, a_bit: int = A_BIT) -> Program:
    """Weight-stationary, streaming only the output-aligned positions of each kij.

    x_int: [IC, H, W] unsigned a_bit-bit activations; w_int: [OC, IC, 3, 3] 4-bit two's
    complement weights (a 3x3, stride 1, padding 1 conv; model.tiling.check_layer).
    a_bit=2 builds the 2-bit mode program (module doc): x_int in 0..3, 2n input channels
    per ic tile. array_size: n of the n x n array; l0_depth, sfp_depth, abuf_depth: entries
    of an L0 lane, of the SFP bank and of the activation buffer (default: the core's).
    Raises ModelError / LayerError (one line) for an a_bit other than 4 or 2
    (memory_map.A_BITS), a depth that is not an integer (sfp_depth and abuf_depth at most the
    core's: their instruction fields' reach), a layer check_layer refuses, a layer
    whose outputs do not fit the SFP bank (check_sfp_depth), whose operands do not fit the
    memories (plan_passes), an L0 too shallow for the schedule (check_l0_depth), or a paired
    layer whose activations cannot reach the L0 in time (a map larger than abuf_depth, read
    straight from xmem Q, with a shallow L0: _PairedStager.ready).

    - Per (oc tile, ic tile, kij) only the Ho*Wo positions that feed an output enter the
      array; padding positions are pushed into the L0 as zeros (L0_ZERO), costing no
      xmem read. xmem holds interior words only.
    - Activation words are read from xmem once per (oc tile, ic tile) into the activation
      buffer and pushed from there for every kij (when the map fits the buffer); weights
      are LOADed from wmem (WSRC), through its own read port; the host writes them through
      wmem's write port (D_wmem). A paired layer (module doc) LOADs two columns a cycle.
    - The next weight set is staged column by column while the current one computes:
      column c may be overwritten once the current set's start token has passed
      PE(row-1, c), and must be staged before the next start reaches PE(0, c).
    - Psums are accumulated on the fly in the SFP bank (entry oct * Ho*Wo + o_nij) as
      they leave the OFIFO, across kij and ic tiles, and are also written to pmem so they
      can be checked; the last contribution emits the ReLU output.
    - A layer whose operands do not fit xmem and wmem runs in passes of (oc-tile group,
      ic-tile group) (plan_passes); where a pass fits half of each (xmem_banks), pass
      p + 1's words are written into the other halves while pass p computes, else once
      the current pass has read its last word.
      Single-pass programs are measured from 'data in xmem and wmem' (compute_start);
      multi-pass programs from cycle 0, every load included.
    Each cycle the stages act in order of urgency on the two ports: the word the L0 needs
    next (xmem), a weight column whose window is open (wmem), words ahead of their first
    use (abuf prefetch, xmem), then the next pass's writes (D_xmem into xmem's port when
    no read wants it, D_wmem into wmem's write port).
    """
    geo, x, w = layer_operands(x_int, w_int, array_size, a_bit)
    l0_depth = check_int(l0_depth, "l0_depth")
    # the SFP bank and the activation buffer are addressed by instruction fields of their depth
    sfp_depth = check_int(sfp_depth, "sfp_depth", 1, CONFIG.sfp_depth)
    abuf_depth = check_int(abuf_depth, "abuf_depth", 0, CONFIG.abuf_depth)
    check_sfp_depth(geo, sfp_depth)
    plan = _Plan(geo, *padded_operands(x, w, geo.array_size, geo.ic_tile))
    program = Program("ws", "fast", geo.array_size, [], [], compute_start=0, a_bit=a_bit)
    tl = Timeline()
    tl.at(0, flush=1)   # a clean datapath, whatever the previous program left in flight
    schedule(plan, program, tl, 0, l0_depth, abuf_depth)
    if len(plan.passes) == 1:
        mems = [m for m, _, _ in plan.pass_words(0)]
        program.compute_start = max(mems.count("xmem"), mems.count("wmem"))   # the preload's cycles
    program.inst, program.d_xmem, program.d_wmem = tl.words()
    return program


def check_sfp_depth(geo: LayerGeometry, sfp_depth: int) -> None:
    """LayerError when the layer's output vectors do not fit the SFP bank."""
    if geo.n_oc_tiles * geo.n_onij > sfp_depth:
        raise LayerError(f"layer {geo.name} cannot run: {geo.n_oc_tiles * geo.n_onij} "
                         f"output vectors do not fit the SFP bank ({sfp_depth} entries)")


def check_l0_depth(geo: LayerGeometry, l0_depth: int) -> None:
    """LayerError when an L0 lane holds fewer than n + 3 entries, the depth the fast
    schedule is designed for. Row n-1 pops n-1 cycles after row 0 and _L0Writer keeps one
    entry free, so the lane has room for l0_depth - n - 1 vectors ahead of the array: with
    n + 1 none, and the schedule never pushes (its builder looped for ever); with n + 2 one,
    and most layers still build correct but slower programs (no longer one vector into the
    array a cycle) while paired layers (_PairedStager) fail; n + 3 keeps that rate."""
    n = geo.array_size
    if l0_depth < n + 3:
        raise LayerError(f"layer {geo.name} cannot run: the fast schedule needs an L0 of at least "
                         f"{n + 3} entries on the {n}x{n} array (n + 1 never pushes, n + 2 loses its one "
                         f"vector a cycle and fails paired layers), l0_depth is {l0_depth}")


def schedule(plan: _Plan, program: Program, tl: Timeline, start: int, l0_depth: int, abuf_depth: int) -> None:
    """The fast schedule of `plan` on `tl` from cycle `start` (the first pass's xmem and wmem
    writes first, side by side); fills program's results and last_emit and ends the timeline
    after it. LayerError when the L0 is too shallow (check_l0_depth) or a paired set's
    activations come too late (_PairedStager.ready)."""
    check_l0_depth(plan.geo, l0_depth)
    source = _ActivationSource(plan, abuf_depth)
    t = start
    for mem in ("xmem", "wmem"):            # the first pass: D_xmem and D_wmem side by side
        words = [(addr, data) for m, addr, data in plan.pass_words(0) if m == mem]
        for k, (addr, data) in enumerate(words):
            tl.write(start + k, mem, addr, data)
        t = max(t, start + len(words))
    xmem = _XmemLoader(plan)
    l0 = _L0Writer(plan, source, l0_depth)
    weights = _PairedStager(plan, l0) if plan.period else _WeightStager(plan)
    geo = plan.geo
    array = _ArrayIssuer(plan, program, geo.n_oc_tiles * geo.n_ic_tiles * KIJ * geo.n_nij <= PMEM_DEPTH)
    # (a weight set may start before its last LOADs: those still come after the last EXECUTE)
    while array.next_exec < len(plan.positions) or weights.next_wset < len(plan.wsets):
        xmem.next_pass(t, l0.next_push, weights)
        l0.push(tl, t, array.next_exec)
        if weights.committed(array.wset_start):
            weights.stage(tl, t, array.wset_start, xmem)
        l0.fetch_next_word(tl, t, array.next_exec, xmem)
        weights.stage(tl, t, array.wset_start, xmem)
        source.prefetch(tl, t, xmem)
        xmem.write(tl, t)
        array.issue(tl, t, l0, weights, xmem)
        t += 1
    program.last_emit = max(k for k, c in enumerate(tl.cycles) if c.get("emit")) + CONFIG.sfp_latency
    tl.at(program.last_emit + 1)
