"""Geometry and memory map: a 3x3 / stride 1 / padding 1 layer cut into ic / oc channel
tiles of the array's size (model.tiling.LayerGeometry, shared with the references), and
where its words live in xmem and pmem.

Classic memory map (a contract with the classic files and testbench), n = array size:
  xmem[ict * n_nij + nij]                         activation word: lane r = a_pad[ict*n + r, nij]
  xmem[WEIGHT_BASE + ((oct * n_ict + ict) * 9 + kij) * n + c]
                                                  weight word: lane r = w[oct*n + c, ict*n + r, kij]
  pmem[((oct * n_ict + ict) * 9 + kij) * n_nij + nij]
                                                  psum vector of that nij (lane c = column c)
For the 8->8 4x4 layer on the 8x8 array: activations at 0..35, weights at 1024 + kij*8 + c,
psum(kij, nij) at kij*36 + nij (acc_address.txt). ws_fast keeps only the interior words of
each pass (plan_passes), os_program its own operand words (see their docstrings).
"""
from __future__ import annotations

import math

import numpy as np

from model.errors import LayerError, ModelError
from model.hwconfig import CONFIG
from model.program.isa import LANE_BITS, Timeline, pack_lanes
from model.tiling import A_BIT, LayerGeometry, check_int, check_layer, lanes_per_pe, psum_address

WEIGHT_BASE = CONFIG.weight_base
XMEM_DEPTH = CONFIG.xmem_depth
WMEM_DEPTH = CONFIG.wmem_depth
PMEM_DEPTH = CONFIG.pmem_depth
KIJ = 9


def ofifo_latency(array_size: int) -> int:
    """hwconfig.CoreConfig.ofifo_latency of an array_size x array_size core."""
    return CONFIG.with_array(array_size).ofifo_latency




def act_addr(geo: LayerGeometry, ict: int, nij: int) -> int:
    """Classic xmem address of the activation word of ic tile ict at padded position nij."""
    return ict * geo.n_nij + nij


def weight_addr(geo: LayerGeometry, oct: int, ict: int, kij: int, c: int) -> int:
    """Classic xmem address of the weight word of column c (output channel oct*n + c)."""
    return WEIGHT_BASE + ((oct * geo.n_ic_tiles + ict) * KIJ + kij) * geo.array_size + c


def psum_addr(geo: LayerGeometry, oct: int, ict: int, kij: int, nij: int) -> int:
    """pmem address of a psum vector: model.tiling.psum_address (the one layout)."""
    return psum_address(kij, nij, geo.n_nij, ict, oct, geo.n_ic_tiles)


#: the activation widths a schedule can build: A_BIT (one activation a PE lane) and half a
#: lane (the array's 2-bit mode, model.tiling.lanes_per_pe)
A_BITS = (A_BIT, LANE_BITS // 2)


def check_array_size(array_size) -> int:
    """array_size as an int; ModelError (one line) for a non-integer or a size the core
    cannot be built with (hwconfig.CoreConfig.with_array)."""
    n = check_int(array_size, "array_size")
    CONFIG.with_array(n)
    return n


def layer_operands(x_int, w_int, array_size: int, a_bit: int = A_BIT) -> tuple[LayerGeometry, np.ndarray, np.ndarray]:
    """Validate the layer (model.tiling.check_layer: shapes, value ranges for a_bit-bit
    activations, at most MAX_HW x MAX_HW) and return its geometry and int64 x_int, w_int.
    a_bit 2 is the array's 2-bit mode (ic tiles of 2 x array_size channels); LayerError
    (one line, naming a_bit) for an a_bit not in A_BITS."""
    n = check_array_size(array_size)
    if a_bit not in A_BITS:
        raise LayerError(f"a_bit {a_bit!r} not supported: the array runs a_bit {A_BITS[0]} "
                         f"(or {A_BITS[1]}, its 2-bit mode: two activations a PE lane)")
    x, w = check_layer(x_int, w_int, a_bit=a_bit)
    lanes = lanes_per_pe(a_bit)
    if lanes == 2 and (n % 2 or 2 * n > CONFIG.max_array):
        raise LayerError(f"2-bit mode needs an even array size with 2 x {n} weight columns in the "
                         f"{CONFIG.wcol_bits}-bit WCOL field; this array is {n}x{n}")
    return LayerGeometry(IC=x.shape[0], OC=w.shape[0], H=x.shape[1], W=x.shape[2], array_size=n, lanes=lanes), x, w


def geometry(x_int, w_int, array_size: int = CONFIG.row) -> LayerGeometry:
    """The tiling of a layer the array can run; refuses (LayerError / ModelError, one line)
    what model.tiling.check_layer refuses."""
    return layer_operands(x_int, w_int, array_size)[0]


def useful_macs(ic: int, oc: int, ho: int, wo: int) -> int:
    """Multiply-accumulates a 3x3 layer needs (no padding channels or padding pixels)."""
    return ic * oc * KIJ * ho * wo


def scalesim_cycles(ic: int, oc: int, h: int, w: int, dataflow: str, n: int = CONFIG.row) -> int:
    """SCALE-Sim v2's analytic runtime of a 3x3, stride 1, padding 1 layer on an n x n array
    (its paper's equations): WS ceil(9IC/n) * ceil(OC/n) * (2n + n + Ho*Wo - 2) - 1,
    OS ceil(Ho*Wo/n) * ceil(OC/n) * (n + n + 9IC - 2) - 1."""
    pixels, window = h * w, KIJ * ic
    if dataflow == "ws":
        return math.ceil(window / n) * math.ceil(oc / n) * (2 * n + n + pixels - 2) - 1
    if dataflow == "os":
        return math.ceil(pixels / n) * math.ceil(oc / n) * (n + n + window - 2) - 1
    raise ModelError(f"dataflow must be ws or os, got {dataflow!r}")


def preload_xmem(tl: Timeline, geo: LayerGeometry, a_pad: np.ndarray, w: np.ndarray) -> int:
    """Write every activation and weight word into xmem; returns the next free cycle."""
    n = geo.array_size
    words = []
    for ict in range(geo.n_ic_tiles):
        for nij in range(geo.n_nij):
            words.append((act_addr(geo, ict, nij),
                          pack_lanes(a_pad[ict * n:(ict + 1) * n, nij], LANE_BITS, signed=False)))
    for oct in range(geo.n_oc_tiles):
        for ict in range(geo.n_ic_tiles):
            for kij in range(KIJ):
                for c in range(n):
                    lanes = w[oct * n + c, ict * n:(ict + 1) * n, kij]
                    words.append((weight_addr(geo, oct, ict, kij, c), pack_lanes(lanes, LANE_BITS, signed=True)))
    tl.at(0, flush=1)  # a clean datapath, whatever the previous program left in flight
    for t, (addr, data) in enumerate(words):
        tl.xmem_write(t, addr, data)
    return len(words)


def check_fits(geo: LayerGeometry, pmem_words: int) -> None:
    act_words = geo.n_ic_tiles * geo.n_nij
    weight_words = geo.n_oc_tiles * geo.n_ic_tiles * KIJ * geo.array_size
    if act_words > WEIGHT_BASE:
        raise LayerError(f"layer {geo.IC}->{geo.OC} {geo.H}x{geo.W}: {act_words} activation words "
                         f"do not fit xmem[0:{WEIGHT_BASE}]")
    if weight_words > XMEM_DEPTH - WEIGHT_BASE:
        raise LayerError(f"layer {geo.IC}->{geo.OC} {geo.H}x{geo.W}: {weight_words} weight words "
                         f"do not fit xmem[{WEIGHT_BASE}:{XMEM_DEPTH}]")
    if pmem_words > PMEM_DEPTH:
        raise LayerError(f"layer {geo.IC}->{geo.OC} {geo.H}x{geo.W}: {pmem_words} psum vectors "
                         f"do not fit pmem ({PMEM_DEPTH} words)")

