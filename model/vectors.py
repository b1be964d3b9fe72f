"""Writers and readers for the classic text-vector files (README section "Classic text vectors").

Every file is built by one generic core: lines of ``k`` lanes, each lane a ``width``-bit
binary field (MSB first), highest lane first (row7 .. row0 / col7 .. col0), no spaces,
``'\\n'`` line endings.  Writers start headered kinds with exactly three ``#`` lines (the
notebook strings, table :data:`HEADERS`); ``acc_address.txt`` has none.  Readers take
any number of leading ``#`` lines as headers (one notebook writes some files without).

Course part 2 (the array's 2-bit mode, a WSReference with ``lanes`` 2): the activation file
holds 2n 2-bit lanes per line (kind ``activation2``: channel 2n-1 .. channel 0 of the ic
tile, the xmem word of the 2-bit mode as it is), the weight files 2n 4-bit lanes per line
(two weights per PE: input channel 2n-1 .. 0); psum and out files are as in 4-bit mode.

Writers check every value against the field first and refuse (PsumOverflowError naming
the file, the line, the lane and the value); nothing is ever truncated.  Readers return
int64 arrays in the same orientation the matching writer takes, expect the number of data
lines the kind has in the classic layer unless told otherwise (:func:`data_lines`), and
reject malformed files with VectorFileError ``"path:line: reason"`` (line 0 = the file as
a whole), with the same rules and messages as tb/classic_tb.v.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError, PsumOverflowError, VectorFileError
from .hwconfig import CONFIG
from .tiling import (N_KIJ, PMEM_ADDR_BITS, OSReference, WSReference, acc_addresses,
                     as_int_array, field_range, psum_address)

__all__ = [
    "HEADERS", "KINDS", "FileKind", "header_lines", "encode_lanes", "write_lanes",
    "read_lanes", "write_activation", "read_activation", "write_weight", "read_weight",
    "write_psum", "read_psum", "write_out", "read_out", "write_acc_address",
    "read_acc_address", "write_activation_os", "read_activation_os", "write_weight_os",
    "read_weight_os", "write_out_os", "read_out_os", "ws_file_names", "os_file_names",
    "write_activation2", "read_activation2",
    "write_ws_files", "write_os_files", "acc_address_fits", "psum_address", "prepare_out_dir",
    "CLASSIC_OUT_HW", "data_lines",
]

# ----------------------------------------------------------------------------------
# the one header table (notebook strings; {h} = highest lane, {h1} = next one)
# ----------------------------------------------------------------------------------
_ROW_TIME = ("#time0row{h}[msb-lsb],time0row{h1}[msb-lst],....,time0row0[msb-lst]#",
             "#time1row{h}[msb-lsb],time1row{h1}[msb-lst],....,time1row0[msb-lst]#",
             "#................#")
_COL_ROW = ("#col0row{h}[msb-lsb],col0row{h1}[msb-lst],....,col0row0[msb-lst]#",
            "#col1row{h}[msb-lsb],col1row{h1}[msb-lst],....,col1row0[msb-lst]#",
            "#................#")
_CH_TIME = ("#time0ch{h}[msb-lsb],time0ch{h1}[msb-lst],....,time0ch0[msb-lst]#",
            "#time1ch{h}[msb-lsb],time1ch{h1}[msb-lst],....,time1ch0[msb-lst]#",
            "#................#")
_COL_TIME = ("#time0col{h}[msb-lsb],time0col{h1}[msb-lst],....,time0col0[msb-lst]#",
             "#time1col{h}[msb-lsb],time1col{h1}[msb-lst],....,time1col0[msb-lst]#",
             "#................#")

#: header templates per file kind (None: the kind has no header)
HEADERS: dict[str, tuple[str, str, str] | None] = {
    "activation": _ROW_TIME,
    "activation2": _CH_TIME,
    "weight": _COL_ROW,
    "psum": _COL_TIME,
    "out": _COL_TIME,
    "acc_address": None,
    "activation_os": _ROW_TIME,
    "weight_os": _COL_ROW,
    "out_os": _COL_TIME,
}


@dataclass(frozen=True)
class FileKind:
    name: str
    width: int          # bits per lane (psum/out: default, the writer may override)
    signed: bool        # two's complement?
    lane: str           # what a lane is, for messages


#: field layout per kind
KINDS: dict[str, FileKind] = {
    "activation": FileKind("activation", 4, False, "row"),
    "activation2": FileKind("activation2", 2, False, "ch"),     # course part 2: 2-bit lanes
    "weight": FileKind("weight", 4, True, "row"),
    "psum": FileKind("psum", 16, True, "col"),
    "out": FileKind("out", 16, True, "col"),
    "acc_address": FileKind("acc_address", PMEM_ADDR_BITS, False, "address"),
    "activation_os": FileKind("activation_os", 4, False, "nij_out"),
    "weight_os": FileKind("weight_os", 4, True, "oc"),
    "out_os": FileKind("out_os", 16, True, "col"),
}


def header_lines(kind: str, lanes: int = CONFIG.row) -> list[str] | None:
    """The three header lines of ``kind`` for ``lanes`` lanes (None if headerless)."""
    t = HEADERS[kind]
    if t is None:
        return None
    return [s.format(h=lanes - 1, h1=lanes - 2) for s in t]


# ----------------------------------------------------------------------------------
# generic core
# ----------------------------------------------------------------------------------
def _field_name(width: int, signed: bool) -> str:
    return f"{width}-bit two's complement" if signed else f"{width}-bit unsigned"


def _to_int2d(values, path, what: str) -> np.ndarray:
    arr = as_int_array(values, f"{path}: {what}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ModelError(f"{path}: {what} must be 2-D [lines, lanes], got shape {arr.shape}")
    return arr


def encode_lanes(values, width: int, signed: bool, path="<values>", lane_name: str = "lane",
                 first_line: int = 1) -> bytes:
    """Encode ``values[n_lines, k]`` (lane 0 = column 0) as text lines, lane k-1 first.

    Raises PsumOverflowError for the first value that does not fit the field.
    ``first_line`` is the file line number of entry 0 (for messages).
    """
    v = _to_int2d(values, path, "values")
    lo, hi = field_range(width, signed)
    bad = (v < lo) | (v > hi)
    if bad.any():
        i, j = (int(t) for t in np.argwhere(bad)[0])
        raise PsumOverflowError(
            f"{path}: value {int(v[i, j])} at line {first_line + i} (entry {i}, "
            f"{lane_name}{j}) does not fit {_field_name(width, signed)} ({lo}..{hi}); "
            f"{int(bad.sum())} value(s) out of range, nothing written")
    n, k = v.shape
    u = v & ((1 << width) - 1)
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    bits = (u[:, ::-1, None] >> shifts) & 1                         # [n, k, width]
    chars = np.empty((n, k * width + 1), dtype=np.uint8)
    chars[:, :-1] = bits.reshape(n, k * width) + ord("0")
    chars[:, -1] = ord("\n")
    return chars.tobytes()


def write_lanes(path, values, width: int, signed: bool, headers=None,
                lane_name: str = "lane") -> Path:
    """Write ``headers`` (list of lines or None) then ``values[n_lines, k]``."""
    path = Path(path)
    head = "".join(h + "\n" for h in headers) if headers else ""
    for h in headers or ():
        if not h.startswith("#") or " " in h or "\n" in h:
            raise ModelError(f"{path}: bad header line {h!r}")
    body = encode_lanes(values, width, signed, path, lane_name,
                        first_line=len(headers or ()) + 1)
    try:
        with open(path, "wb") as f:
            f.write(head.encode("ascii") + body)
    except OSError as exc:
        raise ModelError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


def _line_problem(ln: bytes, length: int, lanes: int, width: int) -> str | None:
    """Why data line ``ln`` (without its ``'\\n'``) is malformed, or None. The rules, in
    this order, are also those of tb/classic_tb.v (task ``load``), message for message."""
    if ln.startswith(b"#"):
        return "comment line among the data lines"
    if not ln:
        return f"empty line, expected {length} characters ({lanes} lanes x {width} bits)"
    if ln.endswith(b"\r"):
        return "carriage return (CRLF line ending)"
    if ln.endswith((b" ", b"\t")):
        return "trailing whitespace"
    if len(ln) != length:
        return f"line length {len(ln)}, expected {length} characters ({lanes} lanes x {width} bits)"
    bad = ln.translate(None, b"01")
    if bad:
        shown = chr(bad[0]) if 32 <= bad[0] < 127 else f"\\x{bad[0]:02x}"
        return f"non-binary character '{shown}' at column {ln.index(bad[:1]) + 1}"
    return None


def read_lanes(path, lanes: int, width: int, signed: bool, n_lines: int | None = None) -> np.ndarray:
    """Read a lane file; int64 ``[n_lines, lanes]`` with column j = lane j.

    Leading lines that start with ``#`` are headers (any number, none included: both
    notebooks' files read). Then exactly ``n_lines`` data lines (None: one or more), each
    ``lanes * width`` characters ``0``/``1`` ended by ``'\\n'`` (the last one may lack
    it). CRLF endings and trailing whitespace are refused with that reason, as by
    tb/classic_tb.v. Errors: VectorFileError ``"path:line: reason"`` for the first
    problem in file order (line 0: the file as a whole).
    """
    path = Path(path)
    try:
        # a named pipe would block the open (until a writer comes), a device could read for ever
        if not stat.S_ISREG(mode := path.stat().st_mode) and not stat.S_ISDIR(mode):
            raise VectorFileError(f"{path}:0: not a regular file (a named pipe, a device or a socket)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise VectorFileError(f"{path}:0: file not found") from None
    except IsADirectoryError:
        raise VectorFileError(f"{path}:0: is a directory, not a file") from None
    except OSError as exc:
        raise VectorFileError(f"{path}:0: cannot read: {exc.strerror or exc}") from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()                                                # final newline
    length = lanes * width
    data: list[bytes] = []
    for lineno, ln in enumerate(lines, 1):
        if not data and ln.startswith(b"#"):
            continue                                               # header
        if n_lines is not None and len(data) == n_lines:
            raise VectorFileError(f"{path}:{lineno}: extra line after the {n_lines} expected "
                                  f"data lines")
        reason = _line_problem(ln, length, lanes, width)
        if reason:
            raise VectorFileError(f"{path}:{lineno}: {reason}")
        data.append(ln)
    if n_lines is not None and len(data) < n_lines:
        raise VectorFileError(f"{path}:{len(lines) + 1}: expected {n_lines} data lines, "
                              f"file ends after {len(data)}")
    if not data:
        raise VectorFileError(f"{path}:{len(lines) + 1}: no data lines")
    arr = np.frombuffer(b"".join(data), dtype=np.uint8).reshape(len(data), length)
    bits = (arr - ord("0")).astype(np.int64).reshape(len(data), lanes, width)
    weights = np.int64(1) << np.arange(width - 1, -1, -1, dtype=np.int64)
    vals = bits @ weights                                           # [n, lanes] MSB lane first
    if signed:
        vals = np.where(vals >= (1 << (width - 1)), vals - (1 << width), vals)
    return np.ascontiguousarray(vals[:, ::-1])


def _write_kind(kind: str, path, lines_by_lanes, width: int | None = None) -> Path:
    fk = KINDS[kind]
    v = _to_int2d(lines_by_lanes, path, kind)
    return write_lanes(path, v, width or fk.width, fk.signed,
                       header_lines(kind, v.shape[1]), fk.lane)


#: output map of the classic layer (the project VGG16's 8->8 layer): the readers' default
CLASSIC_OUT_HW = (4, 4)


def data_lines(kind: str, out_hw: tuple[int, int] = CLASSIC_OUT_HW, ic: int = CONFIG.row,
               lanes: int = CONFIG.row) -> int:
    """Number of data lines of a one-tile ``kind`` file for a 3x3, stride 1, padding 1 layer
    with output map ``out_hw`` and ``ic`` input channels (DESIGN.md section 5): activation
    and psum (H+2)(W+2), out H*W, acc_address 9*H*W, activation_os / weight_os 9*ic,
    weight and out_os ``lanes``."""
    h, w = out_hw
    return {"activation": (h + 2) * (w + 2), "activation2": (h + 2) * (w + 2), "psum": (h + 2) * (w + 2), "out": h * w,
            "acc_address": N_KIJ * h * w, "activation_os": N_KIJ * ic,
            "weight_os": N_KIJ * ic, "weight": lanes, "out_os": lanes}[kind]


def _read_kind(kind: str, path, lanes: int, n_lines: int | None,
               width: int | None = None) -> np.ndarray:
    """Read a ``kind`` file; ``n_lines`` None: the classic layer's count (:func:`data_lines`)."""
    fk = KINDS[kind]
    if n_lines is None:
        n_lines = data_lines(kind, lanes=lanes)
    return read_lanes(path, lanes, width or fk.width, fk.signed, n_lines)


# ----------------------------------------------------------------------------------
# per-kind writers / readers (orientation = the tensors of the reference)
# ----------------------------------------------------------------------------------
def write_activation(path, a_tile) -> Path:
    """``a_tile[row = ic in tile, nij]`` -> one line per nij, row7..row0, 4-bit unsigned."""
    return _write_kind("activation", path, np.asarray(a_tile).T)


def read_activation(path, lanes: int = CONFIG.row, n_lines: int | None = None) -> np.ndarray:
    """-> int64 ``[row, nij]``."""
    return _read_kind("activation", path, lanes, n_lines).T.copy()


def write_activation2(path, a_tile) -> Path:
    """Course part 2: ``a_tile[channel in tile (2n), nij]`` -> one line per nij, ch15..ch0
    (for n = 8), 2-bit unsigned."""
    return _write_kind("activation2", path, np.asarray(a_tile).T)


def read_activation2(path, lanes: int = 2 * CONFIG.row, n_lines: int | None = None) -> np.ndarray:
    """-> int64 ``[channel, nij]`` (2-bit lanes)."""
    return _read_kind("activation2", path, lanes, n_lines).T.copy()


def write_weight(path, w_tile) -> Path:
    """``w_tile[col = oc in tile, row = ic in tile]`` -> line c = col c, row7..row0."""
    return _write_kind("weight", path, w_tile)


def read_weight(path, lanes: int = CONFIG.row, n_lines: int | None = None) -> np.ndarray:
    """-> int64 ``[col, row]`` (``lanes`` lanes; ``n_lines`` lines, default ``lanes``; course
    part 2: ``2 * CONFIG.row`` lanes, ``CONFIG.col`` lines)."""
    return _read_kind("weight", path, lanes, lanes if n_lines is None else n_lines)


def write_psum(path, psum, width: int = CONFIG.psum_bw) -> Path:
    """``psum[col, nij]`` (one kij) -> one line per nij, col7..col0, two's complement."""
    return _write_kind("psum", path, np.asarray(psum).T, width)


def read_psum(path, lanes: int = CONFIG.row, n_lines: int | None = None, width: int = CONFIG.psum_bw) -> np.ndarray:
    """-> int64 ``[col, nij]``."""
    return _read_kind("psum", path, lanes, n_lines, width).T.copy()


def write_out(path, out, width: int = CONFIG.psum_bw) -> Path:
    """``out[col, o_nij]`` (ReLU'd) -> one line per o_nij, col7..col0."""
    return _write_kind("out", path, np.asarray(out).T, width)


def read_out(path, lanes: int = CONFIG.row, n_lines: int | None = None, width: int = CONFIG.psum_bw) -> np.ndarray:
    """-> int64 ``[col, o_nij]``."""
    return _read_kind("out", path, lanes, n_lines, width).T.copy()


def write_acc_address(path, addresses) -> Path:
    """``addresses`` (any shape, flattened C-order: o_nij-major then kij), 11-bit, no header."""
    return _write_kind("acc_address", path, np.asarray(addresses).reshape(-1, 1))


def read_acc_address(path, n_lines: int | None = None) -> np.ndarray:
    """-> int64 ``[n]``."""
    return _read_kind("acc_address", path, 1, n_lines)[:, 0].copy()


def write_activation_os(path, act) -> Path:
    """``act[step, lane nij_out]`` -> one line per step, nij_out7..0, 4-bit unsigned."""
    return _write_kind("activation_os", path, act)


def read_activation_os(path, lanes: int = CONFIG.row, n_lines: int | None = None) -> np.ndarray:
    """-> int64 ``[step, lane]``."""
    return _read_kind("activation_os", path, lanes, n_lines)


def write_weight_os(path, wgt) -> Path:
    """``wgt[step, lane oc]`` -> one line per step, oc7..oc0, 4-bit two's complement."""
    return _write_kind("weight_os", path, wgt)


def read_weight_os(path, lanes: int = CONFIG.row, n_lines: int | None = None) -> np.ndarray:
    """-> int64 ``[step, lane]``."""
    return _read_kind("weight_os", path, lanes, n_lines)


def write_out_os(path, out, width: int = CONFIG.psum_bw) -> Path:
    """``out[nij_out, col]`` (ReLU'd) -> one line per nij_out, col7..col0."""
    return _write_kind("out_os", path, out, width)


def read_out_os(path, lanes: int = CONFIG.row, n_lines: int | None = None, width: int = CONFIG.psum_bw) -> np.ndarray:
    """-> int64 ``[nij_out, col]``."""
    return _read_kind("out_os", path, lanes, n_lines, width)


# ----------------------------------------------------------------------------------
# whole layers
# ----------------------------------------------------------------------------------
def ws_file_names(n_ic_tiles: int, n_oc_tiles: int) -> dict:
    """File names of a WS layer: single-tile layers keep the classic names."""
    single = n_ic_tiles == 1 and n_oc_tiles == 1
    return {
        "activation": [f"activation_tile{i}.txt" for i in range(n_ic_tiles)],
        "weight": {(i, o, k): f"weight_itile{i}_otile{o}_kij{k}.txt"
                   for i in range(n_ic_tiles) for o in range(n_oc_tiles) for k in range(N_KIJ)},
        "psum": {(i, o, k): (f"psum_kij{k}.txt" if single
                             else f"psum_itile{i}_otile{o}_kij{k}.txt")
                 for i in range(n_ic_tiles) for o in range(n_oc_tiles) for k in range(N_KIJ)},
        "out": ["out.txt"] if single else [f"out_otile{o}.txt" for o in range(n_oc_tiles)],
        "acc_address": "acc_address.txt",
    }


def os_file_names(n_groups: int, n_oc_tiles: int) -> dict:
    """File names of an OS layer: group 0 / oc tile 0 keep the classic names."""
    return {
        "activation": [("activation_os.txt" if g == 0 else f"activation_os_group{g}.txt")
                       for g in range(n_groups)],
        "weight": [("weight_os.txt" if o == 0 else f"weight_os_otile{o}.txt")
                   for o in range(n_oc_tiles)],
        "out": {(g, o): ("out_os.txt" if g == 0 and o == 0 else f"out_os_group{g}_otile{o}.txt")
                for g in range(n_groups) for o in range(n_oc_tiles)},
    }


#: every name ws_file_names / os_file_names can give, per dataflow
_SET_NAMES = {
    "ws": re.compile(r"activation_tile\d+\.txt|weight_itile\d+_otile\d+_kij\d\.txt|"
                     r"psum_(itile\d+_otile\d+_)?kij\d\.txt|out(_otile\d+)?\.txt|acc_address\.txt"),
    "os": re.compile(r"activation_os(_group\d+)?\.txt|weight_os(_otile\d+)?\.txt|out_os(_group\d+_otile\d+)?\.txt"),
}


def remove_other_sets(out_dir, written, dataflow: str) -> list[Path]:
    """Remove from ``out_dir`` the files of ``dataflow``'s set that are not in ``written``
    (an earlier export's other tiles or layer: the classic bench would read them with the
    new ones and report a mismatch); return them. The other dataflow's files stay."""
    keep = {Path(p).name for p in written}
    stale = sorted(p for p in Path(out_dir).iterdir()
                   if p.is_file() and _SET_NAMES[dataflow].fullmatch(p.name) and p.name not in keep)
    for p in stale:
        p.unlink()
    return stale


def acc_address_fits(H: int, W: int) -> bool:
    """Whether every psum address of an H x W layer fits the 11-bit pmem address."""
    return N_KIJ * (H + 2) * (W + 2) <= (1 << PMEM_ADDR_BITS)


def prepare_out_dir(out_dir, option: str | None = None, create: bool = True) -> Path:
    """Create ``out_dir`` (and its parents) if missing; refuse, with one line, a path that
    is a file, lies under a file, or is not writable. ``option`` (e.g. ``"--out"``)
    prefixes the messages. create=False: the checks only, nothing created (a command that
    checks its --out before slower work that may still refuse)."""
    d = Path(out_dir)
    where = f"{option} {d}" if option else f"{d}"
    if d.exists() and not d.is_dir():
        raise ModelError(f"{where}: exists and is not a directory")
    for parent in d.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ModelError(f"{where}: {parent} is not a directory")
            if not create and not d.exists() and not os.access(parent, os.W_OK):
                raise ModelError(f"{where}: cannot create directory: {parent} is not writable")
            break
    if not create:
        if d.exists() and not os.access(d, os.W_OK):
            raise ModelError(f"{where}: directory is not writable")
        return d
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"{where}: cannot create directory: {exc.strerror or exc}") from None
    if not os.access(d, os.W_OK):
        raise ModelError(f"{where}: directory is not writable")
    return d


def _refuse_overflow(out_dir, ref) -> None:
    """Nothing is written for a reference with values outside their hardware width."""
    if ref.overflows:
        raise PsumOverflowError(f"{out_dir}: not writing the layer's files: {ref.overflows[0]}; "
                                f"nothing written")


def write_ws_files(out_dir, ref: WSReference) -> list[Path]:
    """Write every classic WS file of a layer from its reference; return the paths written.

    acc_address.txt is written only when all ``9 * Hp * Wp`` psum addresses fit the
    11-bit pmem address (see :func:`acc_address_fits`); otherwise it is left out.
    A reference with any value outside its hardware width (``ref.overflows``) is refused
    with PsumOverflowError before anything is written (no truncation, no partial set).
    """
    _refuse_overflow(out_dir, ref)
    d = prepare_out_dir(out_dir)
    names = ws_file_names(ref.n_ic_tiles, ref.n_oc_tiles)
    outs = ref.out_tiles(relu=True)                                # [o, c, o_nij]
    write_act = write_activation2 if ref.lanes == 2 else write_activation
    jobs = [(write_act, name, (ref.activation[i],)) for i, name in enumerate(names["activation"])]
    jobs += [(write_weight, name, (ref.weight[o, i, :, :, k],)) for (i, o, k), name in names["weight"].items()]
    jobs += [(write_psum, name, (ref.psum[i, o, :, :, k], ref.psum_bw)) for (i, o, k), name in names["psum"].items()]
    jobs += [(write_out, name, (outs[o], ref.acc_bw)) for o, name in enumerate(names["out"])]
    if acc_address_fits(ref.H, ref.W):
        jobs.append((write_acc_address, names["acc_address"], (acc_addresses(ref.H, ref.W),)))
    return _write_all(d, jobs)


def _write_all(d: Path, jobs) -> list[Path]:
    """Run (writer, file name, args) jobs into folder d; a progress bar on stderr when there
    are many (a deep layer's WS set is tens of thousands of files: conv12 writes 73,857)."""
    from tqdm import tqdm

    return [write(d / name, *args) for write, name, args in
            tqdm(jobs, desc=f"write {d}", unit="file", leave=False, disable=len(jobs) < 1000)]


def write_os_files(out_dir, osref: OSReference) -> list[Path]:
    """Write every classic OS file of a layer; return the paths written. Like
    :func:`write_ws_files`, refuses a reference with overflows before writing anything."""
    _refuse_overflow(out_dir, osref)
    d = prepare_out_dir(out_dir)
    names = os_file_names(osref.n_groups, osref.n_oc_tiles)
    jobs = [(write_activation_os, name, (osref.activation[g, 0],)) for g, name in enumerate(names["activation"])]
    jobs += [(write_weight_os, name, (osref.weight[0, o],)) for o, name in enumerate(names["weight"])]
    jobs += [(write_out_os, name, (osref.out_relu[g, o], osref.psum_bw)) for (g, o), name in names["out"].items()]
    return _write_all(d, jobs)
