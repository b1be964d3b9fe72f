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
then weight words, then threshold words: :func:`word_table`), and for each D_wmem write
the ids of its entry's weight words (per word: the word of its rows 0..n/2-1 and the
word of its other rows, the same word unless the layer is paired: ws_fast). The instruction stream and
those ids depend only on the geometry, so :func:`template` builds them once per shape
(memory cache, and a disk cache keyed by the shape and the builder's sources) and
:func:`bind` fills in an image's words with numpy.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import LayerError, ModelError
from model.hwconfig import CONFIG
from model.program.isa import FIELDS, INST_WIDTH, LANE_BITS, Program, Timeline
from model.program.memory_map import KIJ, XMEM_DEPTH, LayerGeometry, check_array_size
from model.program.signed_input import split_signed
from model.program.ws_fast import _Plan, check_sfp_depth, schedule
from model.requant import Requant
from model.tiling import as_int_array, check_layer

__all__ = ["EMIT_MODES", "LayerShape", "Template", "bind", "bind_wmem", "data_hex", "encode_hex", "hex_lines",
           "inst_hex", "layer_operands",
           "layer_program", "max_batch", "template", "template_folder", "threshold_words", "word_table"]

EMIT_MODES = ("relu", "requant", "raw")
# what a template depends on besides its shape: the builders, the geometry, the instruction layout
_SOURCES = [Path(__file__).resolve().parent / name for name in ("network.py", "ws_fast.py", "isa.py", "memory_map.py")]
_SOURCES += [Path(__file__).resolve().parents[1] / "tiling.py", Path(__file__).resolve().parents[2] / "rtl" / "core_inst.vh"]


@dataclass(frozen=True)
class LayerShape:
    """What a network layer's program depends on: the (expanded) input channels, output
    channels, map size, array size, emit mode, the SFP shift of each ic tile and the
    number of images that share each weight set (batch: LayerGeometry's layout)."""

    ic: int
    oc: int
    h: int
    w: int
    array_size: int
    emit: str
    ic_tile_shift: tuple = ()
    batch: int = 1

    def __post_init__(self):
        if self.emit not in EMIT_MODES:
            raise ModelError(f"emit mode must be one of {', '.join(EMIT_MODES)}, got {self.emit!r}")
        if self.batch < 1:
            raise ModelError(f"batch must be at least 1, got {self.batch}")
        if self.emit == "requant" and -(-self.oc // self.array_size) > CONFIG.threshold_tiles:
            raise ModelError(f"layer with {self.oc} output channels: the SFP holds thresholds for "
                             f"{CONFIG.threshold_tiles * self.array_size} ({CONFIG.threshold_tiles} oc tiles)")

    @property
    def geometry(self) -> LayerGeometry:
        return LayerGeometry(IC=self.ic, OC=self.oc, H=self.h, W=self.w, array_size=self.array_size,
                             batch=self.batch)

    @property
    def key(self) -> str:
        shift = "".join(map(str, self.ic_tile_shift)) or "0"
        batch = f"-b{self.batch}" if self.batch > 1 else ""
        return f"{self.ic}x{self.oc}x{self.h}x{self.w}{batch}-n{self.array_size}-{self.emit}-s{shift}"


@dataclass
class Template:
    """A layer's program without its data.

    program: the Program's scalars (emit mode, shifts, executes, last_emit, ...) with inst,
    d_xmem, psum_writes and emits empty (held here as arrays; full_program() rebuilds them).
    inst_hex: the instruction words, one per line in hex (the player's inst.hex).
    write_cycles / write_ids: the cycle of every D_xmem write and the id of its word in
    word_table's order. wmem_cycles / wmem_ids (writes, 4): the cycle of every D_wmem write
    and its entry's ids (low word: rows 0..n/2-1, other rows; high word likewise; -1 none). emit_keys (outputs, 2): (oc tile, output pixel) of each output, in
    order; psum_addr / psum_keys (writes, 4): each pmem write's address and (ict, oct, kij, nij)."""

    shape: LayerShape
    program: Program
    inst_hex: bytes
    write_cycles: np.ndarray
    write_ids: np.ndarray
    emit_keys: np.ndarray
    psum_addr: np.ndarray
    psum_keys: np.ndarray
    wmem_cycles: np.ndarray
    wmem_ids: np.ndarray
    build_s: float = 0.0

    @property
    def n_words(self) -> int:
        return len(self.inst_hex) // ((INST_WIDTH + 3) // 4 + 1)

    def full_program(self, d_xmem: list[int], d_wmem: list[int]) -> Program:
        """The Program with its instruction words, `d_xmem`, `d_wmem` and result keys."""
        return dataclasses.replace(
            self.program, inst=[int(line, 16) for line in self.inst_hex.split()], d_xmem=list(d_xmem),
            d_wmem=list(d_wmem),
            psum_writes=list(zip(self.psum_addr.tolist(), map(tuple, self.psum_keys.tolist()))),
            emits=list(map(tuple, self.emit_keys.tolist())))

    _ARRAYS = ("write_cycles", "write_ids", "emit_keys", "psum_addr", "psum_keys", "wmem_cycles", "wmem_ids")

    def save(self, folder: Path) -> None:
        """inst.hex, arrays.npz and program.json in `folder` (written next to it, then renamed:
        a reader never sees half a template)."""
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "inst.hex").write_bytes(self.inst_hex)
        np.savez(tmp / "arrays.npz", **{k: getattr(self, k) for k in self._ARRAYS})
        scalars = {k: v for k, v in self.program.__dict__.items() if not isinstance(v, list)}
        (tmp / "program.json").write_text(json.dumps({"program": scalars, "build_s": self.build_s}))
        try:
            tmp.rename(folder)
        except OSError:                      # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, shape: LayerShape, folder: Path) -> "Template":
        meta = json.loads((folder / "program.json").read_text())
        scalars = dict(meta["program"], ic_tile_shift=tuple(meta["program"]["ic_tile_shift"]))
        with np.load(folder / "arrays.npz") as arrays:
            fields = {k: arrays[k] for k in cls._ARRAYS}
        return cls(shape, Program(inst=[], d_xmem=[], **scalars), (folder / "inst.hex").read_bytes(),
                   build_s=meta["build_s"], **fields)


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


def encode_hex(cycles: list[dict[str, int]]) -> bytes:
    """A timeline's cycles as inst.hex text: isa.encode of each cycle (fields not set take
    their idle value), vectorized over the cycles with the word in 64-bit halves.
    ModelError for a value that does not fit its field."""
    names = list(FIELDS)
    index = {name: i for i, name in enumerate(names)}
    flat = np.array([(t, index[k], v) for t, fields in enumerate(cycles) for k, v in fields.items()],
                    dtype=np.int64).reshape(-1, 3)
    idle = CONFIG.isa.idle
    halves = [np.full(len(cycles), idle >> (64 * h) & (2**64 - 1), dtype=np.uint64) for h in (0, 1)]
    flat = flat[np.argsort(flat[:, 1], kind="stable")]
    bounds = np.searchsorted(flat[:, 1], np.arange(len(names) + 1))
    for i, name in enumerate(names):
        t, value = flat[bounds[i]:bounds[i + 1], 0], flat[bounds[i]:bounds[i + 1], 2]
        off, width = FIELDS[name]
        bad = (value < 0) | (value >> width != 0)
        if bad.any():
            raise ModelError(f"instruction field {name}={value[bad][0]} does not fit {width} bits")
        mask = ((1 << width) - 1) << off
        for h, half in enumerate(halves):
            part_mask = mask >> (64 * h) & (2**64 - 1)
            if part_mask:
                shift = off - 64 * h
                part = (value << shift) if shift >= 0 else (value >> -shift)
                half[t] = (half[t] & np.uint64(~part_mask & (2**64 - 1))) | (part.astype(np.uint64) & np.uint64(part_mask))
    digits = (INST_WIDTH + 3) // 4
    if digits > 32:
        raise ModelError(f"an instruction word of {INST_WIDTH} bits does not fit two 64-bit halves")
    lo, hi = (np.frombuffer(hex_lines(half, 16), dtype=np.uint8).reshape(-1, 17) for half in halves)
    text = np.concatenate([hi[:, 16 - (digits - 16):16], lo], axis=1) if digits > 16 else lo[:, 16 - digits:]
    return text.tobytes()


def _build(shape: LayerShape) -> Template:
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
    cycles = np.array(sorted(tl.d_xmem), dtype=np.int64)
    ids = np.array([tl.d_xmem[t] for t in cycles.tolist()], dtype=np.int64)
    wmem_cycles = np.array(sorted(tl.d_wmem), dtype=np.int64)
    wmem_ids = np.array([tl.d_wmem[t] for t in wmem_cycles.tolist()], dtype=np.int64).reshape(-1, 4)
    emit_keys = np.array(program.emits, dtype=np.int64).reshape(-1, 2)
    psum_addr = np.array([a for a, _ in program.psum_writes], dtype=np.int64)
    psum_keys = np.array([k for _, k in program.psum_writes], dtype=np.int64).reshape(-1, 4)
    inst = encode_hex(tl.cycles)
    program = dataclasses.replace(program, psum_writes=[], emits=[])
    return Template(shape, program, inst, cycles, ids, emit_keys, psum_addr, psum_keys, wmem_cycles, wmem_ids,
                    time.perf_counter() - t0)


_MEMORY: dict[LayerShape, Template] = {}


def _sources_digest() -> str:
    h = hashlib.sha256()
    for path in _SOURCES:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def template_folder(shape: LayerShape, cache: Path) -> Path:
    """Where `cache` keeps the shape's template (keyed by a digest of the builder's sources
    and rtl/core_inst.vh, so an edit there builds afresh)."""
    return Path(cache) / f"{shape.key}-{_sources_digest()}"


def template(shape: LayerShape, cache: Path | None = None) -> Template:
    """The layer's template: from memory, else from the folder `cache`, else built (and
    stored there)."""
    if shape in _MEMORY:
        return _MEMORY[shape]
    folder = template_folder(shape, cache) if cache is not None else None
    if folder is not None and (folder / "program.json").is_file():
        tpl = Template.load(shape, folder)
    else:
        tpl = _build(shape)
        if folder is not None:
            tpl.save(folder)
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
    pixel of the batch, image-major: lane r = channel ict*n + r; x (C, H, W), or
    (batch, C, H, W) for a batched shape), weight words (((oct*n_ict + ict)*9 + kij)*n + c: lane r
    = w[oct*n + c, ict*n + r, kij]), then threshold words (threshold_words' order; only with
    thresholds (oc, 15) int and descending (oc,) bool)."""
    geo, n = shape.geometry, shape.array_size
    images = x.reshape(-1, *x.shape[-3:])                                    # [b, c, h, w]
    xp = np.zeros((geo.n_ic_tiles * n, geo.n_onij), dtype=np.int64)
    xp[:images.shape[1]] = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1)
    act = _pack(xp.reshape(geo.n_ic_tiles, n, -1), 1)                         # [ict, pixel]
    wp = np.zeros((geo.n_oc_tiles * n, geo.n_ic_tiles * n, KIJ), dtype=np.int64)
    wp[:w.shape[0], :w.shape[1]] = w.reshape(w.shape[0], w.shape[1], KIJ)
    wt = wp.reshape(geo.n_oc_tiles, n, geo.n_ic_tiles, n, KIJ).transpose(0, 2, 4, 1, 3)   # [o, i, k, c, r]
    parts = [act.ravel(), _pack(wt, 4).ravel()]
    if shape.emit == "requant":
        cfg = CONFIG.with_array(n)
        levels = thresholds.shape[1]
        # padding channels (sums 0) never reach a threshold: level 0, as the reference pads
        tp = np.full((geo.n_oc_tiles * n, levels), (1 << (cfg.threshold_bw - 1)) - 1, dtype=np.int64)
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
    d = np.zeros(tpl.n_words, dtype=np.uint64)
    d[tpl.write_cycles] = table[tpl.write_ids]
    return d


def bind_wmem(tpl: Template, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The D_wmem entry of every cycle as its (low word, high word), uint64 each (0 where
    nothing is written). A word's rows 0..n/2-1 come from its first id, the rest from its
    second (module doc)."""
    n = tpl.shape.array_size
    low = np.uint64((1 << (n // 2) * LANE_BITS) - 1)
    padded = np.append(table.astype(np.uint64), np.uint64(0))          # id -1: no word
    ids = tpl.wmem_ids
    words = []
    for k in (0, 2):
        word = np.zeros(tpl.n_words, dtype=np.uint64)
        word[tpl.wmem_cycles] = (padded[ids[:, k]] & low) | (padded[ids[:, k + 1]] & ~low)
        words.append(word)
    return words[0], words[1]


def data_hex(tpl: Template, table: np.ndarray) -> bytes:
    """dxmem.hex for the players: one {D_wmem, D_xmem} word per line (as Program.save_hex)."""
    digits = (CONFIG.with_array(tpl.shape.array_size).xmem_word_bits + 3) // 4
    columns = [*bind_wmem(tpl, table)[::-1], bind(tpl, table)]             # high word first
    lines = [np.frombuffer(hex_lines(c, digits), dtype=np.uint8).reshape(-1, digits + 1) for c in columns]
    return np.concatenate([lines[0][:, :digits], lines[1][:, :digits], lines[2]], axis=1).tobytes()


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


def layer_operands(x_int, w_int, array_size: int, emit: str) -> tuple[LayerShape, np.ndarray, np.ndarray]:
    """(shape, x, w): what the core multiplies for the layer, the digits of an input with
    negative levels (split_signed), else the input as it is. x_int (C, H, W) is one image,
    (N, C, H, W) a batch of N sharing the weights (x then (N, C', H, W), shape.batch N).
    One-line ModelError / LayerError for a layer the core cannot run."""
    array_size = check_array_size(array_size)
    x = as_int_array(x_int, "x_int")
    if x.ndim not in (3, 4):
        raise LayerError(f"x_int must be 3-D [IC, H, W] or 4-D [N, IC, H, W], got shape {tuple(x.shape)}")
    batched = x.ndim == 4
    if batched and x.shape[0] == 0:
        raise ModelError(f"x_int is an empty batch: shape {tuple(x.shape)}")
    images = x if batched else x[None]
    signed = bool(x.size and x.min() < 0)
    for image in images:                   # shapes, ranges (split_signed checks the signed levels)
        _, w = check_layer(np.clip(image, 0, None) if signed else image, w_int)
    # the batch's maps one under the other: the digit split is per value
    flat = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1, images.shape[3])
    xs, ws, shifts = split_signed(flat, w, array_size) if signed else (flat, w, ())
    xs = xs.reshape(xs.shape[0], len(images), *images.shape[2:]).transpose(1, 0, 2, 3)
    shape = LayerShape(ic=xs.shape[1], oc=ws.shape[0], h=xs.shape[2], w=xs.shape[3], array_size=array_size,
                       emit=emit, ic_tile_shift=shifts, batch=len(images))
    return shape, (xs if batched else xs[0]), ws


def max_batch(shape: LayerShape, abuf_depth: int = CONFIG.abuf_depth, sfp_depth: int = CONFIG.sfp_depth) -> int:
    """The most images of `shape` (its own batch ignored) that one program should run:
    the batch's pixels of one ic tile fit xmem (XMEM_DEPTH words: weights live in wmem), its
    output vectors fit the SFP bank, and, for a map that fits the activation buffer (few
    positions per weight set: the layers batching helps most), the batch's map fits it too, so
    each activation word is still read from xmem once per (oc tile, ic tile). A map
    larger than the buffer gains nothing from batching (its positions already outnumber
    a weight set's xmem port cycles): 1. At least 1 (one image that does not fit is
    refused by the builder)."""
    pixels, oc_tiles = shape.h * shape.w, -(-shape.oc // shape.array_size)
    fits = min(XMEM_DEPTH // pixels, sfp_depth // (oc_tiles * pixels))
    return max(1, min(fits, abuf_depth // pixels if pixels <= abuf_depth else 1))


def layer_program(x_int, w_int, requant: Requant | None = None, array_size: int = CONFIG.row, emit: str | None = None,
                  cache: Path | None = None) -> tuple[Program, np.ndarray, np.ndarray]:
    """A network layer's whole program, data bound (for the cocotb bench and the core
    model), and the operands (x, w) it multiplies (reference_results takes those).
    emit: "requant" when requant is given, else "raw" unless named ("relu")."""
    emit = emit or ("requant" if requant is not None else "raw")
    if (emit == "requant") != (requant is not None):
        raise ModelError(f"emit mode {emit!r} {'needs' if emit == 'requant' else 'takes no'} thresholds")
    shape, x, w = layer_operands(x_int, w_int, array_size, emit)
    if requant is not None and requant.out_channels != shape.oc:
        raise ModelError(f"requant has {requant.out_channels} channels, the layer {shape.oc} output channels")
    tpl = template(shape, cache)
    table = word_table(shape, x, w, *((requant.thresholds, requant.descending) if requant is not None else ()))
    lo, hi = bind_wmem(tpl, table)
    bits = CONFIG.with_array(shape.array_size).xmem_word_bits
    program = tpl.full_program(bind(tpl, table).tolist(), [int(h) << bits | int(lo_) for lo_, h in zip(lo, hi)])
    return program, x, w
