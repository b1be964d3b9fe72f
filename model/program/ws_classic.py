"""The classic weight-stationary schedule (the notebooks' flow)."""
from __future__ import annotations

import numpy as np

from model.hwconfig import CONFIG
from model.program.memory_map import (KIJ, act_addr, check_fits, layer_operands, ofifo_latency, preload_xmem,
                                      psum_addr, weight_addr)
from model.program.isa import Program, Timeline
from model.tiling import padded_operands


def ws_classic(x_int: np.ndarray, w_int: np.ndarray, array_size: int = CONFIG.row) -> Program:
    """The notebooks' weight-stationary schedule: per (tile, kij) load the weights, stream
    all n_nij padded positions, store every psum vector in pmem; then a separate pass reads
    the psums of each output pixel back (acc_address order) and the SFP accumulates them
    and applies ReLU."""
    geo, x, w = layer_operands(x_int, w_int, array_size)
    n = geo.array_size
    check_fits(geo, geo.n_oc_tiles * geo.n_ic_tiles * KIJ * geo.n_nij)
    a_pad, w = padded_operands(x, w, n)
    tl = Timeline()
    t = preload_xmem(tl, geo, a_pad, w)
    program = Program("ws", "classic", n, [], [], compute_start=t)
    last_write = t
    for oct in range(geo.n_oc_tiles):
        for ict in range(geo.n_ic_tiles):
            for kij in range(KIJ):
                # Stage the n columns (xmem read, then LOAD the word next cycle).
                for c in range(n):
                    tl.xmem_read(t + c, weight_addr(geo, oct, ict, kij, c))
                    tl.at(t + c + 1, load=1, wcol=c)
                t += n
                for nij in range(geo.n_nij):
                    tl.xmem_read(t + nij, act_addr(geo, ict, nij))
                    tl.at(t + nij + 1, l0_wr=1)
                    execute = t + nij + 2
                    tl.at(execute, l0_rd=1, execute=1, start=int(nij == 0))
                    pop = execute + ofifo_latency(n)
                    addr = psum_addr(geo, oct, ict, kij, nij)
                    tl.at(pop, ofifo_rd=1, cen_pmem=0, wen_pmem=0, a_pmem=addr)
                    program.psum_writes.append((addr, (ict, oct, kij, nij)))
                    program.executes += 1
                    last_write = pop
                t += geo.n_nij
    # Accumulation pass: one pmem read per (ict, kij) of each output pixel.
    t = last_write + 1
    for oct in range(geo.n_oc_tiles):
        for o_nij in range(geo.n_onij):
            reads = [(ict, kij) for ict in range(geo.n_ic_tiles) for kij in range(KIJ)]
            nijs = geo.nij_table[:, o_nij].tolist()
            for i, (ict, kij) in enumerate(reads):
                addr = psum_addr(geo, oct, ict, kij, nijs[kij])
                last = i == len(reads) - 1
                tl.at(t, cen_pmem=0, wen_pmem=1, a_pmem=addr, acc=1, acc_src=0,
                      acc_first=int(i == 0), emit=int(last), relu=int(last), acc_addr=0)
                t += 1
            program.emits.append((oct, o_nij))
    program.last_emit = t - 1 + CONFIG.sfp_latency   # the last emit is at t-1
    tl.at(program.last_emit + 1)       # a few idle cycles so the player sees the last output
    program.inst, program.d_xmem, program.d_wmem = tl.words()
    return program

