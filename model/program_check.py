"""Cycle-level replay of a core program (model.program) against the reference tiling.

``check_program(program, x_int, w_int)`` plays ``program.inst`` / ``program.d_xmem`` /
``program.d_wmem`` one word per cycle through a behavioural model of rtl/core.v that follows the RTL's cycle
semantics register by register, one class per unit (sizes from model.hwconfig); the
model is cross-checked against the RTL by tb/test_core_model.py:

* xmem / pmem (_Sram): single port each, active-low CEN/WEN; a read puts mem[A] on Q at
  the end of the cycle and Q holds until the next read (writes leave Q alone); Q starts at 0,
  memory starts unknown (X). xmem writes the cycle's D_xmem word; pmem write data is the
  OFIFO head of that cycle. wmem (rtl/sram_1r1w.v): entries of two weight words, a write
  port (WEN_WMEM low: D_wmem into entry A_WMEM_W) and a read port (CEN_WMEM low: entry
  A_WMEM onto Q) that may act in the same cycle, but not on one entry (a block RAM's
  collision: an error). LOAD and IFIFO_WR take xmem Q, or wmem Q's low word with WSRC;
  LOAD2 (4-bit mode only, not into LOAD's column) stages column WCOL2 from wmem Q's high
  word.
* activation buffer (_Abuf): ABUF_WR stores xmem Q at the end of the cycle, the read is
  combinational. L0 write data: zeros (L0_ZERO), abuf[ABUF_RADDR] (L0_ABUF) or xmem Q.
* L0 (one FIFO per row) and IFIFO (one per column) (_SkewFifoBank): first-word fall-through, lane i pops
  i cycles after the RD instruction; a push into a full lane or a pop of an empty lane,
  which the RTL refuses (raising a sticky flag), is an error here.
* the array, PE by PE (_Array; rtl/mac_tile.v): west control (valid, start, os, act2) skewed per row
  and registered per column, column control (OS weight shift, drain, drain_shadow) skewed
  per column, staged / active weights, psums north to south, the bottom row's valid into
  the OFIFO. OS: a start moves the PE's finished sum into its shadow register; DRAIN with
  DRAIN_SHADOW shifts the shadow sums (while the next group computes), DRAIN alone the
  live ones.
  2-bit mode (ACT2): two 2-bit activations per lane times the two weight slots; a LOAD
  with ACT2 stages the slot pairs of one half of a column's rows (WCOL >= n: the upper).
* OFIFO (_Ofifo): one FIFO per column; OFIFO_RD pops a whole vector, only when every column holds
  one (a refused read is an error).
* SFP (_Sfp): executes one cycle behind its instruction (ACC, ACC_SRC, ACC_FIRST, EMIT, RELU,
  ACC_ADDR, ACC_SHIFT, RAW, REQUANT, THR_TILE registered, the OFIFO head registered) and
  emits one cycle after that; bank of ``sfp_depth`` sums at ``acc_bw`` bits; ACC_SHIFT adds
  the psum times 2**BW; a sum that leaves ``acc_bw`` or a ReLU/plain output that leaves
  ``psum_bw`` is an error (RAW and REQUANT outputs are whole sums / levels). THR_WR stores
  xmem Q as a threshold part (or a tile's descending bits); a REQUANT emit reads its tile's
  thresholds in the cycle after its own (after that cycle's instruction's THR_WR, before the
  next one's) and emits model.requant.Requant.apply of the sums. THR_WR of a threshold of
  the tile that a REQUANT emit of the previous instruction reads is an error: the
  thresholds are a block RAM, read there at its execute edge, and an FPGA's block RAM reads
  undefined data at the word it writes in the same cycle. The output of an EMIT at cycle e
  is on sfp_out during cycle e + CONFIG.sfp_latency (e + 3).
* FLUSH resets the FIFOs, the array and the SFP pipeline in its cycle (not the SRAMs, the
  activation buffer or the SFP bank).

Every pmem write is compared, as it happens, with the reference psum named by
``program.psum_writes`` and every SFP output with the reference output named by
``program.emits``; the last output must land at ``program.last_emit``. The first problem
raises :class:`ProgramError` with a one-line message that starts with its cycle.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program import FIELDS, Program, decode, reference_results
from model.requant import Requant
from model.tiling import field_range

__all__ = ["ProgramError", "CheckReport", "check_program"]

BW = CONFIG.lane_bits    # activation / weight lane width of an xmem word (bits)
LANE_MASK = (1 << BW) - 1


class ProgramError(ModelError):
    """A program does not do on the core what it claims; str(e) names the cycle."""


@dataclass
class CheckReport:
    """What the replayed core did. Arrays are int64; lanes are column 0 first."""

    psum_addr: np.ndarray              # [writes] pmem address of each pmem write
    psum_lanes: np.ndarray             # [writes, col] the vector written
    output_lanes: np.ndarray           # [outputs, col] each SFP output
    output_cycles: np.ndarray          # [outputs] cycle in which it is on sfp_out
    executes: int                      # instructions with EXECUTE
    last_output: int                   # cycle of the last output on sfp_out (-1: none)
    cycles: int                        # instruction words replayed

    @property
    def pmem_writes(self) -> list[tuple[int, tuple[int, ...]]]:
        """(address, lanes) of every pmem write, in order."""
        return [(int(a), tuple(int(v) for v in row)) for a, row in zip(self.psum_addr, self.psum_lanes)]

    @property
    def outputs(self) -> list[tuple[tuple[int, ...], int]]:
        """(lanes, cycle) of every SFP output, in order."""
        return [(tuple(int(v) for v in row), int(c)) for row, c in zip(self.output_lanes, self.output_cycles)]


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def _signed(lane: int) -> int:
    """A BW-bit lane as two's complement."""
    return lane - (1 << BW) if lane >> (BW - 1) else lane


class _SkewFifoBank:
    """L0 / IFIFO: `lanes` FIFOs written together (lane i = nibble i of the word), read with
    the skew (lane i pops i cycles after the RD instruction)."""

    def __init__(self, name: str, lane_name: str, lanes: int, depth: int):
        self.name, self.lane_name, self.lanes, self.depth = name, lane_name, lanes, depth
        self.full_mask = (1 << lanes) - 1
        self.reset()

    def reset(self) -> None:
        self.words: list[int] = []     # every word pushed since the last trim
        self.base = 0                  # absolute index of words[0]
        self.rd = [0] * self.lanes     # absolute index of each lane's head
        self.rd_skew = 0               # bit i: lane i pops this cycle

    def heads(self) -> list[int]:
        end = self.base + len(self.words)
        out = []
        for i, r in enumerate(self.rd):
            out.append((self.words[r - self.base] >> (BW * i)) & LANE_MASK if r < end else 0)
        return out

    def count(self, lane: int) -> int:
        return self.base + len(self.words) - self.rd[lane]

    def step(self, t: int, rd: int, wr: int, data: int) -> None:
        """One clock edge: the skewed pops, then the push (FIFO semantics of rtl/fifo.v)."""
        self.rd_skew = ((self.rd_skew << 1) | rd) & self.full_mask
        pops = self.rd_skew
        if not pops and not wr:
            return
        end = self.base + len(self.words)
        if pops:
            for i in range(self.lanes):
                if pops >> i & 1 and self.rd[i] == end:
                    raise ProgramError(f"cycle {t}: {self.name} {self.lane_name} {i} pops an empty FIFO "
                                       f"(the {self.name}_RD of cycle {t - i}; lane {i} pops {i} cycles later)")
        if wr:
            for i in range(self.lanes):
                if end - self.rd[i] >= self.depth and not pops >> i & 1:
                    raise ProgramError(f"cycle {t}: {self.name}_WR into a full {self.name} {self.lane_name} {i} "
                                       f"({self.depth} entries)")
            self.words.append(data)
        if pops:
            for i in range(self.lanes):
                if pops >> i & 1:
                    self.rd[i] += 1
            low = min(self.rd)
            if low - self.base > 4096:
                del self.words[:low - self.base]
                self.base = low


class _Array:
    """The row x col array, register by register (rtl/mac_array.v, mac_row.v, mac_tile.v)."""

    def __init__(self, n: int, psum_bw: int):
        self.n, self.psum_bw = n, psum_bw
        self.mask = (1 << n) - 1
        self.bits = np.array([[(m >> i) & 1 for i in range(n)] for m in range(1 << n)], dtype=bool) \
            if n <= 12 else None
        self.reset()

    def mask_vec(self, m: int) -> np.ndarray:
        if self.bits is not None:
            return self.bits[m]
        return np.array([(m >> i) & 1 for i in range(self.n)], dtype=bool)

    def reset(self) -> None:
        n = self.n
        # [r, c] is what enters PE(r, c) from the west this cycle; [r, c + 1] is PE(r, c)'s register
        self.a = np.zeros((n, n + 1), dtype=np.int64)
        self.v = np.zeros((n, n + 1), dtype=bool)
        self.s = np.zeros((n, n + 1), dtype=bool)
        self.o = np.zeros((n, n + 1), dtype=bool)
        self.x = np.zeros((n, n + 1), dtype=bool)          # act2: 2-bit mode
        # [r, c] enters PE(r, c) from the north; [r + 1, c] is PE(r, c)'s register
        self.w = np.zeros((n + 1, n), dtype=np.int64)      # OS chain / WS staged (w_q), signed
        self.p = np.zeros((n + 1, n), dtype=np.int64)      # psum_q, row 0 is the zero input
        self.h = np.zeros((n + 1, n), dtype=np.int64)      # shadow_q (OS), row 0 likewise
        self.w_active = np.zeros((n, n), dtype=np.int64)
        self.w1 = np.zeros((n, n), dtype=np.int64)        # 2-bit mode: staged / active slot-1 weights
        self.w1_active = np.zeros((n, n), dtype=np.int64)
        self.row_skew = [0, 0, 0, 0]                      # valid, start, os, act2: bit r = row r
        self.col_skew = [0, 0, 0]                         # shift, drain, drain_shadow: bit c = column c
        self.live_until = -1                              # last cycle a valid may still move
        self.bottom_ws = 0           # bit c: PE(row-1, c) registered a WS product (valid & ~os)
        self.last_valid = self.last_os = self.last_start = -(1 << 40)  # cycles they entered row 0..

    def outputs(self, drain: int, shadow: int, os: int) -> tuple[list[int], int]:
        """South edge this cycle: psum of each column and the valid mask (WS valid | drain).
        drain, shadow, os: this cycle's DRAIN, DRAIN_SHADOW and OS bits (column 0 sees them at
        once, column c c cycles later); a shadow drain is OS only (rtl/mac_array.v)."""
        n = self.n
        mask = self.bottom_ws | (((self.col_skew[1] << 1) | drain) & self.mask)
        if not mask:
            return [], 0
        shadow_c = self.mask_vec(((self.col_skew[2] << 1) | (drain & shadow & os)) & self.mask)
        return np.where(shadow_c, self.h[n], self.p[n]).tolist(), mask

    def step(self, t: int, valid: int, start: int, os: int, act2: int, shift: int, drain: int, shadow: int,
             load_col: int, load_word: int, load_half: int, heads_a, heads_w,
             load2_col: int = -1, load2_word: int = 0) -> None:
        """One clock edge. heads_a / heads_w: callables giving the L0 / IFIFO heads.
        load_half: -1 a 4-bit LOAD (slot 0 of every row), 0 / 1 a 2-bit one (slot pairs of
        the lower / upper rows). load2_col / load2_word: a LOAD2 (4-bit) in the same cycle."""
        n, m = self.n, self.mask
        rs = self.row_skew
        rs[0] = ((rs[0] << 1) | valid) & m
        rs[1] = ((rs[1] << 1) | start) & m
        rs[2] = ((rs[2] << 1) | os) & m
        rs[3] = ((rs[3] << 1) | act2) & m
        cs = self.col_skew
        cs[0] = ((cs[0] << 1) | shift) & m
        cs[1] = ((cs[1] << 1) | drain) & m
        cs[2] = ((cs[2] << 1) | (drain & shadow & shift)) & m   # shift is the column's OS bit
        entering = rs[0] & ~rs[2]
        self.bottom_ws = ((self.bottom_ws << 1) | (entering >> (n - 1) & 1)) & m
        if rs[0]:
            self.live_until = t + 2 * n
            self.last_valid = t
            if rs[0] & rs[2]:
                self.last_os = t
            if entering & rs[1]:
                self.last_start = t
        if t > self.live_until and load_col < 0 and load2_col < 0 and not cs[0] and not cs[1]:
            return                                       # nothing in the array can change
        a, v, s, o, x, w, p, h = self.a, self.v, self.s, self.o, self.x, self.w, self.p, self.h
        a[:, 0] = heads_a()
        v[:, 0] = self.mask_vec(rs[0])
        s[:, 0] = self.mask_vec(rs[1])
        o[:, 0] = self.mask_vec(rs[2])
        x[:, 0] = self.mask_vec(rs[3])
        a_in, v_in, s_in, o_in = a[:, :n], v[:, :n], s[:, :n], o[:, :n]
        x_in = x[:, :n] & ~o_in                           # 2-bit mode is weight-stationary only
        half = BW // 2
        a0 = np.where(x_in, a_in & ((1 << half) - 1), a_in)
        a1 = np.where(x_in, a_in >> half, 0)
        w_q = w[1:]
        psum_q = p[1:]
        if cs[0]:
            w[0] = heads_w()
        new_p = new_h = None
        if t - self.last_valid < n:                       # a valid is at some PE's input
            ws_w = np.where(s_in, w_q, self.w_active)
            if t - self.last_os < n:
                os_op = v_in & o_in
                mac_w = np.where(os_op, w[:n], ws_w)
                mac_c = np.where(os_op, np.where(s_in, 0, psum_q), p[:n])
                new_h = np.where(os_op & s_in, psum_q, h[1:])    # a start moves the finished sum
            else:
                mac_w, mac_c = ws_w, p[:n]
            mac = _wrap(mac_c + a0 * mac_w + a1 * np.where(s_in, self.w1, self.w1_active), self.psum_bw)
            new_p = np.where(v_in, mac, psum_q)
            if t - self.last_start < n:
                take = v_in & ~o_in & s_in
                self.w_active = np.where(take, w_q, self.w_active)
                self.w1_active = np.where(take, self.w1, self.w1_active)
        if cs[1]:
            shadow_c = self.mask_vec(cs[2])[None, :]
            live_c = self.mask_vec(cs[1] & ~cs[2])[None, :]
            north = np.where(shadow_c, h[:n], p[:n])            # psum_out of the PE above
            new_p = np.where(live_c, north, psum_q if new_p is None else new_p)
            new_h = np.where(shadow_c, north, h[1:] if new_h is None else new_h)
        if cs[0] or load_col >= 0 or load2_col >= 0:
            new_w = np.where(self.mask_vec(cs[0])[None, :], w[:n], w_q) if cs[0] else w_q.copy()
            if load2_col >= 0:
                new_w[:, load2_col] = [_signed((load2_word >> (BW * r)) & LANE_MASK) for r in range(n)]
            if load_col >= 0:
                nibbles = [_signed((load_word >> (BW * r)) & LANE_MASK) for r in range(n)]
                if load_half < 0:
                    new_w[:, load_col] = nibbles
                else:
                    rows = n // 2
                    for p_ in range(rows):
                        new_w[load_half * rows + p_, load_col] = nibbles[2 * p_]
                        self.w1[load_half * rows + p_, load_col] = nibbles[2 * p_ + 1]
            w[1:] = new_w
        if new_p is not None:
            p[1:] = new_p
        if new_h is not None:
            h[1:] = new_h
        # west-east registers (a, valid, start, os) move one column east
        a[:, 1:] = a[:, :n]                               # (numpy buffers overlapping copies)
        v[:, 1:] = v[:, :n]
        s[:, 1:] = s[:, :n]
        o[:, 1:] = o[:, :n]
        x[:, 1:] = x[:, :n]


class _Sram:
    """Single-port SRAM (rtl/sram.v): active-low CEN/WEN; a read puts mem[A] on Q at the end
    of the cycle and Q holds until the next read (writes leave it alone). Memory starts
    unknown (None); Q starts at `q_reset` (None: unknown, what the previous program read)."""

    def __init__(self, name: str, depth: int, q_reset):
        self.name, self.depth = name, depth
        self.aw = (depth - 1).bit_length()
        self.mem: list = [None] * (1 << self.aw)
        self.q, self.q_from = q_reset, None       # Q and the address it was read from

    def address(self, t: int, a: int) -> int:
        a &= (1 << self.aw) - 1
        if a >= self.depth:
            raise ProgramError(f"cycle {t}: {self.name} address {a} is outside {self.name} ({self.depth} words)")
        return a

    def write(self, t: int, a: int, data) -> None:
        self.mem[self.address(t, a)] = data

    def read(self, t: int, a: int) -> None:
        a = self.address(t, a)
        self.q, self.q_from = self.mem[a], a

    def known_q(self, t: int, what: str, verb: str = "takes"):
        """Q for `what` at cycle t; unknown data is an error ("<what> <verb> <name> Q ...")."""
        if self.q is None and self.q_from is None:
            raise ProgramError(f"cycle {t}: {what} {verb} {self.name} Q before this program read {self.name}: "
                               f"Q still holds what an earlier program read")
        if self.q is None:
            raise ProgramError(f"cycle {t}: {what} {verb} {self.name} Q, which is unknown "
                               f"({self.name}[{self.q_from}] was read before it was ever written)")
        return self.q


class _Abuf:
    """Activation buffer (rtl/abuf.v): written at the end of the cycle, read combinationally,
    never reset; entries start unknown."""

    def __init__(self, depth: int):
        self.depth = depth
        self.aw = max(1, (depth - 1).bit_length())
        self.entries: list[int | None] = [None] * (1 << self.aw)

    def read(self, t: int, ra: int) -> int:
        ra &= (1 << self.aw) - 1
        if ra >= self.depth or self.entries[ra] is None:
            raise ProgramError(f"cycle {t}: L0_WR from activation buffer entry {ra}, which "
                               f"was never written (or holds unknown data)")
        return self.entries[ra]

    def write(self, t: int, wa: int, value: int | None) -> None:
        wa &= (1 << self.aw) - 1
        if wa >= self.depth:
            raise ProgramError(f"cycle {t}: ABUF_WADDR {wa} is outside the activation buffer "
                               f"({self.depth} entries)")
        self.entries[wa] = value                  # unknown (None) stays unknown until used


class _Ofifo:
    """OFIFO (rtl/ofifo.v): one FIFO per column written by the array's south edge; OFIFO_RD
    pops a whole vector, only when every column holds one."""

    def __init__(self, n: int, depth: int):
        self.n, self.depth = n, depth
        self.lanes = [deque() for _ in range(n)]

    def valid(self) -> bool:
        return all(self.lanes)

    def heads(self) -> list[int]:
        return [q[0] if q else 0 for q in self.lanes]

    def step(self, t: int, pop: int, south: list[int], south_mask: int) -> None:
        if pop and not self.valid():
            c = next(k for k in range(self.n) if not self.lanes[k])
            raise ProgramError(f"cycle {t}: OFIFO_RD while column {c} of the OFIFO is empty "
                               f"(the RTL refuses the read)")
        for c in range(self.n):
            if south_mask >> c & 1:
                if len(self.lanes[c]) >= self.depth and not pop:
                    raise ProgramError(f"cycle {t}: OFIFO column {c} is full ({self.depth} entries), "
                                       f"its psum is lost")
                self.lanes[c].append(south[c])
        if pop:
            for q in self.lanes:
                q.popleft()

    def reset(self) -> None:
        for q in self.lanes:
            q.clear()

    def count(self) -> int:
        return max(len(q) for q in self.lanes)


class _Sfp:
    """SFP (rtl/sfp.v behind corelet.v's registers): executes one cycle behind its
    instruction (ACC, ACC_SRC, ACC_FIRST, EMIT, RELU, ACC_ADDR and the OFIFO head
    registered), emits one cycle after that; a bank of `depth` sums at `acc_bw` bits. A sum
    that leaves acc_bw or an output that leaves psum_bw is an error."""

    def __init__(self, n: int, depth: int, acc_bw: int, psum_bw: int):
        self.n, self.depth, self.acc_bw, self.psum_bw = n, depth, acc_bw, psum_bw
        self.aw = max(1, (depth - 1).bit_length())
        self.acc_lo, self.acc_hi = field_range(acc_bw)
        self.out_lo, self.out_hi = field_range(psum_bw)
        self.bank: dict[int, list[int]] = {}
        self.levels = (1 << BW) - 1
        self.word_bits = n * BW
        self.thr_bw = acc_bw + 1
        self.parts = -(-self.thr_bw // self.word_bits)
        self.thr: dict[tuple, int] = {}            # (tile, lane, level, part) -> bits; never reset
        self.desc: dict[int, int] = {}             # tile -> descending bits
        self.reset()

    def write_threshold(self, t: int, f: dict[str, int], q: int) -> None:
        """THR_WR: xmem Q (q) into the threshold memory."""
        tile, level = f["thr_tile"], f["thr_level"]
        if level == self.levels:
            self.desc[tile] = q
        elif level < self.levels and f["thr_lane"] < self.n and f["thr_part"] < self.parts:
            self.thr[tile, f["thr_lane"], level, f["thr_part"]] = q
        else:
            raise ProgramError(f"cycle {t}: THR_WR of lane {f['thr_lane']} level {level} part {f['thr_part']}: "
                               f"no such threshold on a core of {self.n} columns")

    def thresholds(self, t: int, tile: int) -> Requant:
        """The thresholds of `tile` as stored now (every one must have been written)."""
        values = np.zeros((self.n, self.levels), dtype=np.int64)
        for c in range(self.n):
            for k in range(self.levels):
                bits = 0
                for p in range(self.parts):
                    part = self.thr.get((tile, c, k, p))
                    if part is None or tile not in self.desc:
                        raise ProgramError(f"cycle {t}: REQUANT emit with tile {tile}'s threshold {k} of lane {c} "
                                           f"(part {p}) or its descending bits never written")
                    bits |= part << (p * self.word_bits)
                bits &= (1 << self.thr_bw) - 1
                values[c, k] = bits - (1 << self.thr_bw) if bits >> (self.thr_bw - 1) else bits
        return Requant(values, np.array([bool(self.desc[tile] >> c & 1) for c in range(self.n)]))

    def reset(self) -> None:
        self.reg = None                           # controls registered from the previous instruction
        self.head_q = [0] * self.n                # OFIFO head registered from the previous cycle
        self.held = None                          # the emit executed in the previous cycle

    def reads_thresholds(self, tile: int) -> bool:
        """Whether the registered instruction is a REQUANT emit of `tile` (which reads its
        thresholds in this cycle)."""
        return self.reg is not None and self.reg[2] and self.reg[9] and self.reg[10] == tile

    def step(self, pmem: _Sram) -> tuple[list[int], int, int] | None:
        """One cycle: the emit stage of the operation executed in the previous cycle, then the
        execution of the registered instruction; returns (lanes, entry, issuing cycle) of an
        output that goes to sfp_out at the end of this cycle."""
        out = None if self.held is None else self._emit(*self.held)
        self.held = self._execute(pmem)
        return out

    def _emit(self, total: list[int], relu: int, raw: int, requant: Requant | None, addr: int,
              issued: int) -> tuple[list[int], int, int]:
        if requant is not None:
            return requant.apply(np.array(total)).tolist(), addr, issued
        lanes = [max(v, 0) for v in total] if relu else total
        if raw:
            return lanes, addr, issued
        for c, v in enumerate(lanes):
            if not self.out_lo <= v <= self.out_hi:
                raise ProgramError(f"cycle {issued}: SFP output of entry {addr} column {c} = {v} "
                                   f"does not fit {self.psum_bw} bits")
        return lanes, addr, issued

    def _execute(self, pmem: _Sram) -> tuple | None:
        """The registered instruction's add and write-back; returns what its emit stage needs
        (None: no emit)."""
        if self.reg is None:
            return None
        acc, first, emit, relu, src, addr, issued, shift, raw, requant, tile = self.reg
        if not (acc or first or emit):
            return None
        if acc:
            if src:
                data = self.head_q
            else:
                data = pmem.known_q(issued, "ACC", "from")
        else:
            data = [0] * self.n
        if addr >= self.depth:
            raise ProgramError(f"cycle {issued}: ACC_ADDR {addr} is outside the SFP bank ({self.depth} entries)")
        if first:
            base = [0] * self.n
        else:
            base = self.bank.get(addr)
            if base is None:
                raise ProgramError(f"cycle {issued}: SFP bank entry {addr} is used before an "
                                   f"ACC_FIRST ever wrote it")
        scale = 1 << BW if shift else 1
        total = [b + d * scale for b, d in zip(base, data)]
        if acc:
            for c, v in enumerate(total):
                if not self.acc_lo <= v <= self.acc_hi:
                    raise ProgramError(f"cycle {issued}: SFP bank entry {addr} column {c} overflows "
                                       f"{self.acc_bw} bits ({v})")
        if acc or first:
            self.bank[addr] = total
        if not emit:
            return None
        return total, relu, raw, self.thresholds(issued, tile) if requant else None, addr, issued

    def register(self, t: int, f: dict[str, int], ofifo_heads: list[int]) -> None:
        if f["acc"] or f["acc_first"] or f["emit"]:
            self.reg = (f["acc"], f["acc_first"], f["emit"], f["relu"], f["acc_src"],
                        f["acc_addr"] & ((1 << self.aw) - 1), t, f["acc_shift"], f["raw"], f["requant"],
                        f["thr_tile"])
        else:
            self.reg = None
        self.head_q = ofifo_heads


class _Recorder:
    """Rows of `width` ints with a cycle (and an address), in a growing int64 array."""

    def __init__(self, capacity: int, width: int):
        self.lanes = np.zeros((max(capacity, 16), width), np.int64)
        self.cycles = np.zeros(len(self.lanes), np.int64)
        self.addr = np.zeros(len(self.lanes), np.int64)
        self.count = 0

    def add(self, lanes, cycle: int, addr: int = 0) -> None:
        if self.count == len(self.lanes):
            self.lanes = np.concatenate([self.lanes, np.zeros_like(self.lanes)])
            self.cycles = np.concatenate([self.cycles, np.zeros_like(self.cycles)])
            self.addr = np.concatenate([self.addr, np.zeros_like(self.addr)])
        self.lanes[self.count] = lanes
        self.cycles[self.count] = cycle
        self.addr[self.count] = addr
        self.count += 1

    def arrays(self):
        k = self.count
        return self.lanes[:k].copy(), self.cycles[:k].copy(), self.addr[:k].copy()


def check_program(program: Program, x_int, w_int, fifo_depth: int = CONFIG.fifo_depth,
                  abuf_depth: int = CONFIG.abuf_depth, sfp_depth: int = CONFIG.sfp_depth,
                  acc_bw: int = CONFIG.acc_bw, psum_bw: int = CONFIG.psum_bw,
                  xmem_depth: int = CONFIG.xmem_depth, pmem_depth: int = CONFIG.pmem_depth,
                  wmem_depth: int = CONFIG.wmem_depth,
                  verify: bool = True, requant: Requant | None = None) -> CheckReport:
    """Replay ``program`` cycle by cycle and check every pmem write and SFP output against the
    reference of (x_int, w_int) on a program.array_size x program.array_size core. Raises
    ProgramError (message: 'cycle N: what') on the first problem; returns a CheckReport
    when everything matches. A reference whose psums do not fit psum_bw is refused up front
    (ProgramError without a cycle: no schedule could produce it on this core); sums that
    leave the SFP's acc_bw are caught where the modelled SFP overflows.

    verify=False only replays: FIFO, SFP-overflow and unknown-data errors still raise, but
    the results are not compared with the reference or with what the program lists (x_int
    and w_int are not used); the report then says what the core would do. requant: the
    thresholds of a program that emits levels (model.program.network.layer_program)."""
    n = program.array_size
    if not 1 <= n <= (1 << FIELDS["wcol"][1]):
        raise ProgramError(f"array_size {n} does not fit the {FIELDS['wcol'][1]}-bit WCOL field")
    program.check_lengths(ProgramError)
    if verify and (program.psum_writes or program.emits):   # hand-made programs may have no results
        expected = reference_results(program, x_int, w_int, psum_bw=psum_bw, acc_bw=acc_bw, check_widths=False,
                                     requant=requant)
        # psum[...] (WS PE sums) and os_acc / os_out (OS PE sums) lines are at psum_bw: the
        # array itself cannot hold them. acc / out lines are the SFP's, modelled below.
        too_wide = [line for line in expected.ref.overflows if line.startswith(("psum[", "os_"))]
        if too_wide:
            raise ProgramError(f"the reference does not fit the hardware psum width ({psum_bw} bits), "
                               f"so no program can produce it: {too_wide[0]}")
        exp_psum, exp_out = expected.psums, expected.outputs
    n_writes, n_emits = len(program.psum_writes), len(program.emits)
    want_addr = [a for a, _ in program.psum_writes]

    xmask = (1 << (n * BW)) - 1
    # Q of every SRAM survives reset and flush (rtl/sram.v, sram_1r1w.v): unknown until read
    xmem = _Sram("xmem", xmem_depth, None)
    wmem = _Sram("wmem", wmem_depth, None)
    pmem = _Sram("pmem", pmem_depth, None)
    abuf = _Abuf(abuf_depth)
    l0 = _SkewFifoBank("L0", "row", n, fifo_depth)
    ififo = _SkewFifoBank("IFIFO", "column", n, fifo_depth)
    array = _Array(n, psum_bw)
    ofifo = _Ofifo(n, fifo_depth)
    sfp = _Sfp(n, sfp_depth, acc_bw, psum_bw)

    psum_rec = _Recorder(n_writes, n)
    out_rec = _Recorder(n_emits, n)
    writes = outputs = executes = 0

    idle = CONFIG.isa.idle
    words = program.inst
    d_words = program.d_xmem
    w_words = program.checked_wmem_words(ProgramError)
    wmask = (1 << (2 * n * BW)) - 1
    total = len(words)
    drain_tail = 2 * n + 4             # idle cycles after the program so the pipelines settle
    for t in range(total + drain_tail):
        word = words[t] if t < total else idle
        f = decode(word)
        flush = f["flush"]

        # ---- combinational values of this cycle (state at the start of the cycle) ----
        o_heads = ofifo.heads()
        south, south_mask = array.outputs(f["drain"], f["drain_shadow"], f["os"])

        # ---- SFP: the emit stage of the instruction two back, the execution of the previous one ----
        emitted = None if flush else sfp.step(pmem)
        if emitted is not None:
            lanes, _, issued = emitted
            if verify and outputs >= n_emits:
                raise ProgramError(f"cycle {issued}: EMIT number {outputs + 1}, but the program "
                                   f"lists {n_emits} outputs")
            want = exp_out[outputs].tolist() if verify else lanes
            if lanes != want:
                c = next(k for k in range(n) if lanes[k] != want[k])
                raise ProgramError(f"cycle {issued}: output #{outputs} ({expected.describe_output(outputs)}) column {c}: "
                                   f"expected {want[c]}, got {lanes[c]} (on sfp_out in cycle {t + 1})")
            out_rec.add(lanes, t + 1)
            outputs += 1

        if not flush:
            # ---- L0 push data: zeros, an abuf entry or xmem Q ----
            l0_wr = f["l0_wr"]
            l0_data = 0
            if l0_wr and not f["l0_zero"]:
                l0_data = abuf.read(t, f["abuf_raddr"]) if f["l0_abuf"] else xmem.known_q(t, "L0_WR")
            def weight_word(what: str) -> int:   # LOAD / IFIFO_WR: xmem Q, or wmem Q's low word
                return wmem.known_q(t, what) & xmask if f["wsrc"] else xmem.known_q(t, what)
            ififo_wr = f["ififo_wr"]
            ififo_data = weight_word("IFIFO_WR") if ififo_wr else 0
            load_col, load_word, load_half = -1, 0, -1
            if f["load"]:
                load_col = f["wcol"]
                if f["act2"]:                      # 2-bit LOAD: WCOL n + c is column c's upper rows
                    load_half, load_col = divmod(load_col, n)
                    if n % 2 or load_half > 1:
                        raise ProgramError(f"cycle {t}: 2-bit LOAD into column {f['wcol']} of an array of {n} columns")
                elif load_col >= n:
                    raise ProgramError(f"cycle {t}: LOAD into column {load_col} of an array of {n} columns")
                load_word = weight_word("LOAD")
            load2_col, load2_word = -1, 0
            if f["load2"]:
                load2_col = f["wcol2"]
                if f["act2"]:
                    raise ProgramError(f"cycle {t}: LOAD2 in 2-bit mode (ACT2): LOAD2 stages 4-bit weights only")
                if load2_col >= n:
                    raise ProgramError(f"cycle {t}: LOAD2 into column {load2_col} of an array of {n} columns")
                if load_col == load2_col:
                    raise ProgramError(f"cycle {t}: LOAD and LOAD2 both into column {load2_col}")
                load2_word = wmem.known_q(t, "LOAD2") >> (n * BW) & xmask
            # ---- the array (its inputs are the FIFO heads before this edge) ----
            array.step(t, f["execute"], f["start"], f["os"], f["act2"], f["os"], f["drain"], f["drain_shadow"],
                       load_col, load_word, load_half, l0.heads, lambda: [_signed(v) for v in ififo.heads()], load2_col, load2_word)
            if f["execute"]:
                executes += 1
            l0.step(t, f["l0_rd"], l0_wr, l0_data)
            ififo.step(t, f["ififo_rd"], ififo_wr, ififo_data)
            ofifo.step(t, f["ofifo_rd"], south, south_mask)

        # ---- activation buffer (never reset): stores xmem Q of the start of the cycle ----
        if f["abuf_wr"]:
            abuf.write(t, f["abuf_waddr"], xmem.q)
        if f["thr_wr"] and f["thr_level"] < sfp.levels and sfp.reads_thresholds(f["thr_tile"]):
            raise ProgramError(f"cycle {t}: THR_WR of threshold {f['thr_level']} right after a REQUANT EMIT of "
                               f"tile {f['thr_tile']}: its threshold block RAM would be read where it is written")
        threshold_word = xmem.known_q(t, "THR_WR") if f["thr_wr"] else None
        # ---- SRAMs (never reset); a pmem write is checked against the program's list ----
        if not f["cen_xmem"]:
            if not f["wen_xmem"]:
                xmem.write(t, f["a_xmem"], (d_words[t] if t < total else 0) & xmask)
            else:
                xmem.read(t, f["a_xmem"])
        if not f["cen_wmem"]:                  # wmem: the read port, then the write port
            if not f["wen_wmem"] and wmem.address(t, f["a_wmem"]) == wmem.address(t, f["a_wmem_w"]):
                raise ProgramError(f"cycle {t}: wmem entry {f['a_wmem']} is read and written in one cycle "
                                   f"(a block RAM's read of the entry it writes is undefined)")
            wmem.read(t, f["a_wmem"])
        if not f["wen_wmem"]:
            wmem.write(t, f["a_wmem_w"], (w_words[t] if t < total else 0) & wmask)
        if not f["cen_pmem"]:
            if not f["wen_pmem"]:
                a = pmem.address(t, f["a_pmem"])
                if verify and writes >= n_writes:
                    raise ProgramError(f"cycle {t}: pmem write number {writes + 1}, but the program "
                                       f"lists {n_writes} psum writes")
                if verify and a != want_addr[writes]:
                    raise ProgramError(f"cycle {t}: pmem write #{writes} ({expected.describe_psum(writes)}) goes to "
                                       f"address {a}, the program lists {want_addr[writes]}")
                want = exp_psum[writes].tolist() if verify else o_heads
                if o_heads != want:
                    c = next(k for k in range(n) if o_heads[k] != want[k])
                    empty = " (that OFIFO column is empty)" if not ofifo.lanes[c] else ""
                    raise ProgramError(f"cycle {t}: pmem write #{writes} ({expected.describe_psum(writes)}) column {c}: "
                                       f"expected {want[c]}, got {o_heads[c]}{empty}")
                pmem.write(t, a, o_heads)
                psum_rec.add(o_heads, t, a)
                writes += 1
            else:
                pmem.read(t, f["a_pmem"])
        # ---- registers of the SFP stage; flush clears the datapath ----
        if flush:
            sfp.reset()
            l0.reset()
            ififo.reset()
            array.reset()
            ofifo.reset()
        else:
            sfp.register(t, f, o_heads)
        # ---- the SFP's thresholds (never reset): written after the previous instruction's emit read them ----
        if threshold_word is not None:
            sfp.write_threshold(t, f, threshold_word)

    # ---- the whole program against what it claims ----
    psum_lanes, _, psum_addr = psum_rec.arrays()
    out_lanes, out_cycles, _ = out_rec.arrays()
    last = int(out_cycles[-1]) if outputs else -1
    if verify:
        if writes != n_writes:
            raise ProgramError(f"cycle {total}: the program made {writes} pmem writes, it lists {n_writes}")
        if outputs != n_emits:
            raise ProgramError(f"cycle {total}: the program produced {outputs} outputs, it lists {n_emits}")
        if executes != program.executes:
            raise ProgramError(f"cycle {total}: the program executes {executes} vectors, program.executes "
                               f"says {program.executes}")
        if outputs and last != program.last_emit:
            raise ProgramError(f"cycle {last}: the last output is on sfp_out in cycle {last}, "
                               f"program.last_emit says {program.last_emit}")
    left = [(name, k) for name, k in (("L0", max(l0.count(i) for i in range(n))),
                                      ("IFIFO", max(ififo.count(i) for i in range(n))),
                                      ("OFIFO", ofifo.count())) if k]
    if left and verify:
        raise ProgramError(f"cycle {total}: the program ends with " +
                           ", ".join(f"{k} entries left in the {name}" for name, k in left))
    return CheckReport(psum_addr=psum_addr, psum_lanes=psum_lanes, output_lanes=out_lanes,
                       output_cycles=out_cycles, executes=executes, last_output=last, cycles=total)
