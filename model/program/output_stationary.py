"""The output-stationary schedule."""
from __future__ import annotations

import numpy as np

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program.memory_map import PMEM_DEPTH, WMEM_DEPTH, XMEM_DEPTH, layer_operands
from model.program.isa import LANE_BITS, Program, Timeline, pack_lanes
from model.tiling import check_int, os_operands


def os_program(x_int: np.ndarray, w_int: np.ndarray, array_size: int = CONFIG.row,
               fifo_depth: int = CONFIG.fifo_depth) -> Program:
    """Output-stationary: row r of the n x n array holds output pixel group*n + r, column c
    output channel oct*n + c; the reduction over (ic, kij) runs in time, one step per cycle at
    most. Per step the L0 takes the activation word (lane r = the input under pixel r at
    that (ic, kij)) from xmem and the IFIFO the weight word (lane c = w[oct*n+c, ic, kij])
    from wmem (WSRC; the low word of an entry, written through D_wmem), both read in the
    same cycle through their own ports: one step per
    cycle. The groups stream back to back: the next group's start moves each PE's finished
    sum into its shadow register, and n cycles after that start (once it has reached row
    n-1) the shadow sums drain down the columns (DRAIN_SHADOW) into the OFIFO (bottom row
    first) and through the SFP (ReLU) while the next group computes. The last group drains
    its live sums n cycles after its last step. A start overwrites the shadow sums, so the
    shadow drain must have left row 0 by the start after next (2n cycles after the one
    that moved them): a group has 9 x (input channels padded to n) >= 9n steps, so it has.

    Step = ic * 9 + kij. When every operand fits, activation word (group, step) is at
    xmem[group * steps + step] and weight word (oc tile, step) at wmem[oct * steps + step],
    written once before the measurement starts. Otherwise the memory that does not hold its
    operands is written per (oc tile, group) in chunks of steps (the PEs hold their sums
    meanwhile), and the measurement starts at cycle 0 with every load included.
    Keys: psum_writes and emits hold (group, oct, row) for output pixel group*n + row.
    """
    geo, x, w = layer_operands(x_int, w_int, array_size)
    fifo_depth = check_int(fifo_depth, "fifo_depth")
    n = geo.array_size
    act, wt = os_operands(x, w, n)
    n_groups, steps = act.shape[0], act.shape[1]
    act_resident = n_groups * steps <= XMEM_DEPTH
    w_resident = geo.n_oc_tiles * steps <= WMEM_DEPTH
    chunk = min(steps, XMEM_DEPTH, WMEM_DEPTH)

    def act_word(g, s):
        return "xmem", (g * steps + s if act_resident else s % chunk), pack_lanes(act[g, s], LANE_BITS, signed=False)

    def weight_word(o, s):
        return "wmem", (o * steps + s if w_resident else s % chunk), pack_lanes(wt[o, s], LANE_BITS, signed=True)

    tl = Timeline()
    tl.at(0, flush=1)
    resident = [act_word(g, s) for g in range(n_groups) for s in range(steps)] if act_resident else []
    resident += [weight_word(o, s) for o in range(geo.n_oc_tiles) for s in range(steps)] if w_resident else []
    for t, (mem, addr, data) in enumerate(resident):
        tl.write(t, mem, addr, data)
    t = len(resident)
    program = Program("os", "os", n, [], [], compute_start=t if act_resident and w_resident else 0)
    execute = t
    groups = [(oct, g) for oct in range(geo.n_oc_tiles) for g in range(n_groups)]
    finished = None             # (group, oct) whose sums the next start moves to the shadow registers

    def drain(at: int, shadow: int, g: int, oct: int) -> None:
        """DRAIN (DRAIN_SHADOW = shadow) from cycle `at`, then the group's n vectors into the SFP."""
        for k in range(n):
            tl.at(at + k, drain=1, drain_shadow=shadow)
        for k in range(n):                 # vector k is row n-1-k, complete once column n-1 wrote it
            row = n - 1 - k
            key = (g, oct, row)
            addr = len(program.psum_writes) % PMEM_DEPTH
            tl.at(at + n + k, ofifo_rd=1, cen_pmem=0, wen_pmem=0, a_pmem=addr, acc=1,
                  acc_src=1, acc_first=1, emit=1, relu=1, acc_addr=0)
            program.psum_writes.append((addr, key))
            program.emits.append(key)
        program.last_emit = at + 2 * n - 1 + CONFIG.sfp_latency

    for oct, g in groups:
        for c0 in range(0, steps, chunk):
            rng = range(c0, min(c0 + chunk, steps))
            writes = [] if act_resident else [act_word(g, s) for s in rng]
            writes += [] if w_resident else [weight_word(oct, s) for s in rng]
            # no further ahead than the group can start: the FIFOs hold what waits
            t = max(t, execute - 2 - len(writes))
            for mem, addr, data in writes:
                tl.write(t, mem, addr, data)
                t += 1
            # fill: a step's activation (xmem) and weight (wmem) are read in one cycle and
            # pushed in the next; each step executes once its words are in
            pushed = []
            for s in rng:
                tl.xmem_read(t, act_word(g, s)[1])
                tl.xmem_read(t, weight_word(oct, s)[1], "wmem")
                tl.at(t + 1, l0_wr=1, ififo_wr=1, wsrc=1)
                pushed.append(t + 1)
                t += 1
            for i, s in enumerate(rng):
                execute = max(execute, pushed[i] + 1)
                waiting = sum(1 for p in pushed if p < execute) - i
                if waiting + n >= fifo_depth:   # a builder invariant: row n-1 pops n-1 cycles late
                    raise ModelError(f"output-stationary schedule would overfill the {fifo_depth}-deep FIFOs")
                if s == 0 and finished is not None:
                    # this start moves the previous group's sums into the shadow registers;
                    # they drain once it has reached row n-1
                    drain(execute + n, 1, *finished)
                tl.at(execute, l0_rd=1, ififo_rd=1, execute=1, start=int(s == 0))
                program.executes += 1
                execute += 1
        finished = (g, oct)
    drain(execute - 1 + n, 0, *finished)       # PE(row-1, c) has its last product by then
    tl.at(program.last_emit + 1)
    for k in range(program.compute_start, len(tl.cycles)):
        tl.at(k, os=1)                         # the OS weight chain shifts every cycle
    program.inst, program.d_xmem, program.d_wmem = tl.words()
    return program

