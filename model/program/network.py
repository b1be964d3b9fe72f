"""Conv layers of a whole network on the core: the fast WS schedule (model.program.ws_fast)
in the network's emit modes, built once per geometry and bound to each image in numpy.

A network layer's program differs from a lone layer's in three ways:

* Emit mode: "requant" emits each output channel's level (the next layer's activation,
  model.requant.Requant, thresholds of oc tile THR_TILE in the SFP), "raw" the whole sum
  (sfp_wide; the last conv, whose BatchNorm runs on the host), "relu" the ReLU'd sum.
* Thresholds: a requant layer first copies its thresholds into the SFP (a prologue): in
  chunks of at most XMEM_DEPTH words, each chunk is written into xmem[0..] through D_xmem
  and then read back word by word, THR_WR one cycle after each read (xmem Q). Per oc
  tile: lane c's threshold k in ``CONFIG.threshold_parts`` words (low part first) for
  c in 0..n-1, k in 0..14, then one word of descending bits (bit c = lane c).
* Every cycle counts: the program is measured from its first word (every xmem write of
  activations, weights and thresholds included), compute_start = 0.

A :class:`Template` is the program of a geometry (:class:`LayerShape`) with, instead of
data, the id of the word each in-stream D_xmem write carries (activation words first,
then weight words, then threshold words: :func:`word_table`). The instruction stream and
those ids depend only on the geometry, so :func:`template` builds them once per shape
(memory cache, and a disk cache keyed by the shape and the builder's sources) and
:func:`bind` fills in an image's words with numpy.
"""
from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import ModelError
from model.hwconfig import CONFIG
from model.program.isa import FIELDS, INST_WIDTH, LANE_BITS, Program, Timeline
from model.program.memory_map import KIJ, XMEM_DEPTH, LayerGeometry
from model.program.ws_fast import _Plan, check_sfp_depth, schedule

__all__ = ["EMIT_MODES", "LayerShape", "Template", "bind", "encode_cycles", "hex_lines", "inst_hex", "template",
           "threshold_words", "word_table"]

EMIT_MODES = ("relu", "requant", "raw")
_SOURCES = [Path(__file__).resolve().parent / name for name in ("network.py", "ws_fast.py", "isa.py", "memory_map.py")]
_SOURCES.append(Path(__file__).resolve().parents[2] / "rtl" / "core_inst.vh")


@dataclass(frozen=True)
class LayerShape:
    """What a network layer's program depends on: the (expanded) input channels, output
    channels, map size, array size, emit mode and the SFP shift of each ic tile."""

    ic: int
    oc: int
    h: int
    w: int
    array_size: int
    emit: str
    ic_tile_shift: tuple = ()

    def __post_init__(self):
        if self.emit not in EMIT_MODES:
            raise ModelError(f"emit mode must be one of {', '.join(EMIT_MODES)}, got {self.emit!r}")
        if self.emit == "requant" and -(-self.oc // self.array_size) > CONFIG.threshold_tiles:
            raise ModelError(f"layer with {self.oc} output channels: the SFP holds thresholds for "
                             f"{CONFIG.threshold_tiles * self.array_size} ({CONFIG.threshold_tiles} oc tiles)")

    @property
    def geometry(self) -> LayerGeometry:
        return LayerGeometry(IC=self.ic, OC=self.oc, H=self.h, W=self.w, array_size=self.array_size)

    @property
    def key(self) -> str:
        shift = "".join(map(str, self.ic_tile_shift)) or "0"
        return f"{self.ic}x{self.oc}x{self.h}x{self.w}-n{self.array_size}-{self.emit}-s{shift}"


@dataclass
class Template:
    """A layer's program without its data. program.inst holds the instruction words;
    program.d_xmem is empty; write_cycles / write_ids: the cycle of every D_xmem write and
    the id of its word in word_table's order."""

    shape: LayerShape
    program: Program
    write_cycles: np.ndarray
    write_ids: np.ndarray
    build_s: float = 0.0


def threshold_words(shape: LayerShape) -> list[tuple[int, int, int, int]]:
    """(oc tile, lane, level, part) of each threshold word, in word_table's order; level 15
    (the levels' count) is the tile's descending-bits word (lane and part 0)."""
    n, levels, parts = shape.array_size, (1 << LANE_BITS) - 1, CONFIG.with_array(shape.array_size).threshold_parts
    words = []
    for t in range(-(-shape.oc // n)):
        words += [(t, c, k, p) for c in range(n) for k in range(levels) for p in range(parts)]
        words.append((t, 0, levels, 0))
    return words


def _threshold_prologue(tl: Timeline, shape: LayerShape, first_id: int) -> int:
    """Threshold words through xmem into the SFP (module doc); returns the next free cycle."""
    words = threshold_words(shape)
    t = 0
    for start in range(0, len(words), XMEM_DEPTH):
        chunk = words[start:start + XMEM_DEPTH]
        for i in range(len(chunk)):
            tl.xmem_write(t + i, i, first_id + start + i)
        t += len(chunk)
        for i, (tile, lane, level, part) in enumerate(chunk):
            tl.xmem_read(t + i, i)
            tl.at(t + i + 1, thr_wr=1, thr_tile=tile, thr_lane=lane, thr_level=level, thr_part=part)
        t += len(chunk)
    return t


def encode_cycles(cycles: list[dict[str, int]]) -> list[int]:
    """Instruction words of a timeline's cycles (isa.encode, one pass per word's set fields);
    ModelError for a value that does not fit its field."""
    idle = CONFIG.isa.idle
    layout = {name: (off, width, ((1 << width) - 1) << off) for name, (off, width) in FIELDS.items()}
    words = []
    for fields in cycles:
        word = idle
        for name, value in fields.items():
            off, width, mask = layout[name]
            if value >> width or value < 0:
                raise ModelError(f"instruction field {name}={value} does not fit {width} bits")
            word = (word & ~mask) | (value << off)
        words.append(word)
    return words


def _build(shape: LayerShape) -> Template:
    import time

    t0 = time.perf_counter()
    geo = shape.geometry
    check_sfp_depth(geo, CONFIG.sfp_depth)
    plan = _Plan(geo, None, None)
    program = Program("ws", "fast", shape.array_size, [], [], compute_start=0, emit=shape.emit,
                      ic_tile_shift=tuple(shape.ic_tile_shift))
    tl = Timeline()
    tl.at(0, flush=1)   # a clean datapath, whatever the previous program left in flight
    n_words = geo.n_ic_tiles * geo.n_onij + geo.n_oc_tiles * geo.n_ic_tiles * KIJ * geo.array_size
    start = _threshold_prologue(tl, shape, n_words) if shape.emit == "requant" else 0
    schedule(plan, program, tl, start, CONFIG.fifo_depth, CONFIG.abuf_depth)
    program.inst = encode_cycles(tl.cycles)
    cycles = np.array(sorted(tl.d_xmem), dtype=np.int64)
    ids = np.array([tl.d_xmem[t] for t in cycles.tolist()], dtype=np.int64)
    return Template(shape, program, cycles, ids, time.perf_counter() - t0)


_MEMORY: dict[LayerShape, Template] = {}


def _sources_digest() -> str:
    h = hashlib.sha256()
    for path in _SOURCES:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def template(shape: LayerShape, cache: Path | None = None) -> Template:
    """The layer's template: from memory, else from `cache` (a folder; entries keyed by the
    shape and a digest of the builder's sources and rtl/core_inst.vh), else built (and
    stored there)."""
    if shape in _MEMORY:
        return _MEMORY[shape]
    path = None
    if cache is not None:
        path = Path(cache) / f"{shape.key}-{_sources_digest()}.pkl"
        if path.is_file():
            with path.open("rb") as f:
                tpl = pickle.load(f)
            _MEMORY[shape] = tpl
            return tpl
    tpl = _build(shape)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(tpl, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    _MEMORY[shape] = tpl
    return tpl


def _pack(lanes: np.ndarray, axis: int) -> np.ndarray:
    """uint64 words of 4-bit lanes along `axis` (lane r at bits 4r.., two's complement)."""
    lanes = np.moveaxis(lanes.astype(np.int64) & ((1 << LANE_BITS) - 1), axis, -1).astype(np.uint64)
    shifts = (np.arange(lanes.shape[-1], dtype=np.uint64) * np.uint64(LANE_BITS))
    return np.bitwise_or.reduce(lanes << shifts, axis=-1)


def word_table(shape: LayerShape, x: np.ndarray, w: np.ndarray, thresholds: np.ndarray | None = None,
               descending: np.ndarray | None = None) -> np.ndarray:
    """Every xmem word of the layer, uint64, in id order: activation words (ic tile, interior
    pixel: lane r = channel ict*n + r), weight words (((oct*n_ict + ict)*9 + kij)*n + c: lane r
    = w[oct*n + c, ict*n + r, kij]), then threshold words (threshold_words' order; only with
    thresholds (oc, 15) int and descending (oc,) bool)."""
    geo, n = shape.geometry, shape.array_size
    xp = np.zeros((geo.n_ic_tiles * n, geo.H * geo.W), dtype=np.int64)
    xp[:x.shape[0]] = x.reshape(x.shape[0], -1)
    act = _pack(xp.reshape(geo.n_ic_tiles, n, -1), 1)                         # [ict, pixel]
    wp = np.zeros((geo.n_oc_tiles * n, geo.n_ic_tiles * n, KIJ), dtype=np.int64)
    wp[:w.shape[0], :w.shape[1]] = w.reshape(w.shape[0], w.shape[1], KIJ)
    wt = wp.reshape(geo.n_oc_tiles, n, geo.n_ic_tiles, n, KIJ).transpose(0, 2, 4, 1, 3)   # [o, i, k, c, r]
    parts = [act.ravel(), _pack(wt, 4).ravel()]
    if shape.emit == "requant":
        cfg = CONFIG.with_array(n)
        levels = thresholds.shape[1]
        tp = np.zeros((geo.n_oc_tiles * n, levels), dtype=np.int64)
        tp[:thresholds.shape[0]] = thresholds
        t = (tp & ((1 << cfg.threshold_bw) - 1)).astype(np.uint64)
        part_shift = np.arange(cfg.threshold_parts, dtype=np.uint64) * np.uint64(cfg.xmem_word_bits)
        word_mask = np.uint64((1 << cfg.xmem_word_bits) - 1)
        tw = ((t[..., None] >> part_shift) & word_mask).reshape(geo.n_oc_tiles, -1)   # [tile, c*k*p]
        dp = np.zeros(geo.n_oc_tiles * n, dtype=np.int64)
        dp[:descending.shape[0]] = descending
        desc = np.bitwise_or.reduce(dp.reshape(geo.n_oc_tiles, n).astype(np.uint64)
                                    << np.arange(n, dtype=np.uint64), axis=1)        # bit c = lane c
        parts.append(np.concatenate([tw, desc[:, None]], axis=1).ravel())
    return np.concatenate(parts)


def bind(tpl: Template, table: np.ndarray) -> np.ndarray:
    """The D_xmem word of every cycle (uint64, 0 where nothing is written)."""
    d = np.zeros(len(tpl.program.inst), dtype=np.uint64)
    d[tpl.write_cycles] = table[tpl.write_ids]
    return d


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_lines(words: np.ndarray, digits: int) -> bytes:
    """One word per line in `digits` hex digits (numpy; for $readmemh)."""
    words = np.asarray(words, dtype=np.uint64)
    shifts = np.arange(digits - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    text = np.empty((len(words), digits + 1), dtype=np.uint8)
    text[:, :digits] = _HEX[((words[:, None] >> shifts) & np.uint64(15)).astype(np.intp)]
    text[:, digits] = ord("\n")
    return text.tobytes()


def inst_hex(words: list[int]) -> bytes:
    """The instruction words, one per line in hex (INST_WIDTH bits)."""
    digits = (INST_WIDTH + 3) // 4
    return "".join(f"{w:0{digits}x}\n" for w in words).encode()
