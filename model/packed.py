"""Packed deployable checkpoints: 4-bit weight levels two per byte, the rest float32.

A packed file holds what inference needs and nothing else: for every QuantConv2d the
integer weight levels ``w_int`` (-7..7, two's complement nibbles, two per byte), its
``wgt_alpha`` and ``act_alpha``; every BatchNorm tensor and the classifier in float32
(``num_batches_tracked`` as int64): 4.51 MB for the project VGG16, whose full checkpoint
holds 35.5 MB of float32 weights.

Layout (little-endian)::

    magic    8 bytes   b"Q4VGGPK\\0"
    version  uint32    2 (1: the same without the CRC at the end, written before it was added)
    hlen     uint32    length of the header
    header   hlen bytes of UTF-8 JSON: {"model", "epoch", "best_prec", "w_bit", "act_quant",
             "tensors": [{"name", "dtype": "int4" | "float32" | "int64",
                          "shape": [...], "nbytes"}, ...]}
             ("act_quant": "course" | "unsigned", the activation quantizer; a file
             without it was written before it was stored, when only "course" packed)
    arrays   the tensors' bytes, in header order, back to back
    crc      uint32    zlib.crc32 of every byte before it (version 2); nothing after it

An ``int4`` array of n levels takes ceil(n / 2) bytes: level 2i in the low nibble of
byte i, level 2i+1 in the high nibble (0 pads an odd count). Level -8 never occurs.

Loading rebuilds each conv's float ``weight`` so that the model's own weight quantizer
(normalize by mean / std, divide by ``wgt_alpha``, clip, round; ``model.quant``)
gives back exactly ``w_int``: the quantized weights, hence every logit, are bit-identical
to the full checkpoint's. ``rebuild_weight`` documents how; the loader checks it on
every conv and refuses a file it cannot honour.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .checkpoint import check_tensors
from .errors import CheckpointError
from .options import out_path
from .quant import ACT_QUANT_MODES

__all__ = ["MAGIC", "VERSION", "is_packed", "pack_state", "write_packed", "read_packed",
           "pack_int4", "unpack_int4", "rebuild_weight", "pack_checkpoint"]

MAGIC = b"Q4VGGPK\0"
VERSION = 2
_VERSIONS = (1, 2)                          # 1: no CRC (files packed before it was added)
_CRC = struct.Struct("<I")
W_BIT = 4
LEVEL_MAX = 2 ** (W_BIT - 1) - 1          # 7: weight levels are -7..7
_PREFIX = struct.Struct("<8sII")            # magic, version, header length
_MAX_HEADER = 1 << 20
_DTYPES = {"float32": np.dtype("<f4"), "int64": np.dtype("<i8")}
# Each rebuilt normalized weight sits this far (in levels) inside its rounding bin, so
# the float32 mean / std of the quantizer (about 1e-7 off) cannot move it across an edge.
_BIN_MARGIN = 0.25


def is_packed(path) -> bool:
    """True when ``path`` starts with the packed magic (a short or unreadable file is not)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


# --------------------------------------------------------------------------- int4
def pack_int4(levels: np.ndarray) -> bytes:
    """Levels in -7..7 (any shape, flattened C order) -> ceil(n/2) bytes, low nibble first."""
    flat = np.asarray(levels).reshape(-1)
    if flat.size and (flat.min() < -LEVEL_MAX or flat.max() > LEVEL_MAX):
        raise CheckpointError(f"weight levels must be in -{LEVEL_MAX}..{LEVEL_MAX}, "
                              f"got {int(flat.min())}..{int(flat.max())}")
    nib = (flat.astype(np.int64) & 0xF).astype(np.uint8)
    if nib.size % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).tobytes()


def unpack_int4(raw: bytes, n: int) -> np.ndarray:
    """Inverse of :func:`pack_int4`: int8 levels [n] (two's complement nibbles)."""
    b = np.frombuffer(raw, dtype=np.uint8)
    nib = np.empty(b.size * 2, dtype=np.uint8)
    nib[0::2] = b & 0xF
    nib[1::2] = b >> 4
    nib = nib[:n].astype(np.int8)
    return np.where(nib >= 8, nib - 16, nib).astype(np.int8)


# --------------------------------------------------------------------------- weights
def _conv_names(state_dict: dict) -> list[str]:
    """Prefixes of the QuantConv2d layers: those with ``weight_quant.wgt_alpha``."""
    suffix = ".weight_quant.wgt_alpha"
    return [k[: -len(suffix)] for k in state_dict if k.endswith(suffix)]


def _quantizer(alpha: float):
    from .quant import weight_quantize_fn

    q = weight_quantize_fn(w_bit=W_BIT)
    with torch.no_grad():
        q.wgt_alpha.fill_(alpha)
    return q


def conv_levels(weight: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The integer levels the model's weight quantizer gives ``weight`` (int8, -7..7)."""
    with torch.no_grad():
        wq = _quantizer(float(alpha))(weight.float())
        return torch.round(wq / (alpha.float() / LEVEL_MAX)).to(torch.int8)


def rebuild_weight(levels: np.ndarray, alpha: float) -> np.ndarray | None:
    """A float32 weight whose quantization (``model.quant``) is exactly ``levels``.

    The quantizer computes ``round(clip(u / alpha, -1, 1) * 7)`` of the normalized weight
    ``u = (w - mean(w)) / std(w)``. So ``w = u`` works for any ``u`` with mean 0, standard
    deviation 1 (unbiased, as ``torch.std``), and every ``u_i`` inside the rounding bin of
    its level: ``|u_i * 7 / alpha - k_i| < 0.5``, or beyond ``alpha`` for ``k_i = +-7``.
    Start from the bin centres ``alpha * k / 7`` and iterate ``u <- clamp_bins((u - mean)
    / std)`` (bins shrunk by ``_BIN_MARGIN`` levels) until mean and std settle; trained
    layers need a few steps. Returns None when no such ``u`` was found (for example a
    layer whose levels are all equal).
    """
    k = np.asarray(levels, dtype=np.float64).reshape(-1)
    step = alpha / LEVEL_MAX
    lo = np.where(k <= -LEVEL_MAX, -np.inf, (k - 0.5 + _BIN_MARGIN) * step)
    hi = np.where(k >= LEVEL_MAX, np.inf, (k + 0.5 - _BIN_MARGIN) * step)
    u = k * step
    for _ in range(100):
        m, s = u.mean(), u.std(ddof=1) if u.size > 1 else 0.0
        if not s > 0 or not math.isfinite(s):
            return None
        if abs(m) < 1e-9 and abs(s - 1.0) < 1e-9:
            break
        u = np.clip((u - m) / s, lo, hi)
    w = u.astype(np.float32).reshape(np.shape(levels))
    ok = torch.equal(conv_levels(torch.from_numpy(w), torch.tensor(alpha, dtype=torch.float32)),
                     torch.from_numpy(np.asarray(levels, dtype=np.int8)))
    return w if ok else None


# --------------------------------------------------------------------------- write
def pack_state(state_dict: dict) -> list[tuple[str, str, tuple, bytes]]:
    """(name, dtype, shape, bytes) of every tensor to store, conv weights as int4 levels."""
    convs = set(_conv_names(state_dict))
    if not convs:
        raise CheckpointError("no quantized conv layers (weight_quant.wgt_alpha) in the state_dict")
    out = []
    for name, t in state_dict.items():
        t = t.detach().cpu()
        prefix = name.rsplit(".", 1)[0]
        if name.endswith(".weight") and prefix in convs:
            alpha = state_dict[prefix + ".weight_quant.wgt_alpha"]
            levels = conv_levels(t, alpha).numpy()
            out.append((name, "int4", tuple(t.shape), pack_int4(levels)))
        elif t.dtype == torch.int64:
            out.append((name, "int64", tuple(t.shape), t.numpy().astype("<i8").tobytes()))
        elif t.is_floating_point():
            a = t.float().numpy()
            if not np.isfinite(a).all():
                raise CheckpointError(f"{name}: holds non-finite values")
            out.append((name, "float32", tuple(t.shape), a.astype("<f4").tobytes()))
        else:
            raise CheckpointError(f"{name}: cannot pack a {t.dtype} tensor")
    return out


def write_packed(path, state_dict: dict, model_name: str, epoch: int = 0, best_prec: float = 0.0,
                 act_quant: str = "course") -> Path:
    """Write ``state_dict`` as a packed file (``act_quant``: the model's activation quantizer,
    model.quant.ACT_QUANT_MODES); returns the path."""
    if act_quant not in ACT_QUANT_MODES:
        raise CheckpointError(f"act_quant must be one of {', '.join(ACT_QUANT_MODES)}, got {act_quant!r}")
    items = pack_state(state_dict)
    header = {"model": str(model_name), "epoch": int(epoch), "best_prec": float(best_prec), "w_bit": W_BIT,
              "act_quant": act_quant,
              "tensors": [{"name": n, "dtype": d, "shape": list(s), "nbytes": len(b)} for n, d, s, b in items]}
    head = json.dumps(header, separators=(",", ":")).encode()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            crc = 0
            for part in (_PREFIX.pack(MAGIC, VERSION, len(head)), head, *(b for _, _, _, b in items)):
                f.write(part)
                crc = zlib.crc32(part, crc)
            f.write(_CRC.pack(crc))
        tmp.replace(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write: {e.strerror or e}") from None
    return path


# --------------------------------------------------------------------------- read
def _nbytes(dtype: str, count: int) -> int:
    return (count + 1) // 2 if dtype == "int4" else count * _DTYPES[dtype].itemsize


def _parse_header(path: Path, raw: bytes) -> tuple[dict, int, bytes]:
    """(header, offset of the first array, the file without its CRC); a version-2 file's
    CRC is checked first, so any changed byte is named as such."""
    def bad(reason: str) -> CheckpointError:
        return CheckpointError(f"{path}: malformed packed checkpoint: {reason}")

    if len(raw) < _PREFIX.size:
        raise bad(f"{len(raw)} bytes, shorter than the {_PREFIX.size}-byte prefix")
    magic, version, hlen = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise bad(f"wrong magic {magic!r} (expected {MAGIC!r})")
    if version not in _VERSIONS:
        raise bad(f"version {version} (this reader knows versions {', '.join(map(str, _VERSIONS))})")
    if version >= 2:
        if len(raw) < _PREFIX.size + _CRC.size:
            raise bad(f"{len(raw)} bytes, no room for the CRC-32 after the prefix (truncated)")
        raw, (want,) = raw[:-_CRC.size], _CRC.unpack_from(raw, len(raw) - _CRC.size)
        got = zlib.crc32(raw)
        if got != want:
            raise CheckpointError(f"{path}: corrupt packed checkpoint: its CRC-32 is {got:08x}, the file says "
                                  f"{want:08x} (changed after packing, or truncated)")
    if hlen > _MAX_HEADER or _PREFIX.size + hlen > len(raw):
        raise bad(f"header of {hlen} bytes does not fit the {len(raw)}-byte file (truncated)")
    try:
        header = json.loads(raw[_PREFIX.size:_PREFIX.size + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"header is not JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise bad("header has no 'tensors' list")
    if not isinstance(header.get("model"), str) or header.get("w_bit") != W_BIT:
        raise bad(f"header needs 'model' (a name) and 'w_bit' = {W_BIT}")
    for key in ("epoch", "best_prec"):
        v = header.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"header field {key!r} must be a finite number, got {v!r}")
    if header.get("act_quant", "course") not in ACT_QUANT_MODES:
        raise bad(f"header field 'act_quant' must be one of {', '.join(ACT_QUANT_MODES)}, "
                  f"got {header['act_quant']!r}")
    return header, _PREFIX.size + hlen, raw


def read_packed(path) -> dict:
    """Load a packed file as a checkpoint dict: {"state_dict", "epoch", "best_prec", "model",
    "act_quant", "optimizer": {}}. Any defect is one CheckpointError line naming the file and the tensor."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    header, pos, raw = _parse_header(path, raw)
    arrays: dict[str, tuple[str, tuple, bytes]] = {}
    for i, entry in enumerate(header["tensors"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path}: tensor {name if isinstance(name, str) else f'#{i}'}"
        shape, dtype = entry.get("shape") if name else None, entry.get("dtype") if name else None
        if not isinstance(name, str) or name in arrays:
            raise CheckpointError(f"{where}: missing or repeated name")
        if dtype not in ("int4", *_DTYPES) or not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CheckpointError(f"{where}: bad dtype {dtype!r} or shape {shape!r}")
        need = _nbytes(dtype, math.prod(shape))
        if entry.get("nbytes") != need:
            raise CheckpointError(f"{where}: nbytes {entry.get('nbytes')!r} does not match "
                                  f"{dtype} {tuple(shape)} ({need} bytes)")
        if pos + need > len(raw):
            raise CheckpointError(f"{where}: truncated ({len(raw) - pos} of {need} bytes present)")
        arrays[name] = (dtype, tuple(shape), raw[pos:pos + need])
        pos += need
    if pos != len(raw):
        raise CheckpointError(f"{path}: malformed packed checkpoint: {len(raw) - pos} bytes after the last tensor")

    state: dict[str, torch.Tensor] = {}
    for name, (dtype, shape, b) in arrays.items():
        if dtype == "int4":
            continue
        a = np.frombuffer(b, dtype=_DTYPES[dtype]).reshape(shape)
        state[name] = torch.from_numpy(a.astype(a.dtype.newbyteorder("="), copy=True))
    check_tensors(path, state)      # the full checkpoint's rule: floating, finite, alphas > 0
    levels = {}
    for name, (dtype, shape, b) in arrays.items():
        if dtype != "int4":
            continue
        n = math.prod(shape)
        if n % 2 and b and b[-1] >> 4:
            raise CheckpointError(f"{path}: tensor {name}: padding nibble is not 0")
        levels[name] = unpack_int4(b, n).reshape(shape)
        if n and levels[name].min() < -LEVEL_MAX:
            raise CheckpointError(f"{path}: tensor {name}: weight level -8 is out of range "
                                  f"(-{LEVEL_MAX}..{LEVEL_MAX})")
        alpha_t = state.get(name.rsplit(".", 1)[0] + ".weight_quant.wgt_alpha")
        if alpha_t is None or alpha_t.numel() != 1:
            raise CheckpointError(f"{path}: tensor {name}: needs a one-value "
                                  f"{name.rsplit('.', 1)[0]}.weight_quant.wgt_alpha")
    for name, k in levels.items():
        w = rebuild_weight(k, float(state[name.rsplit(".", 1)[0] + ".weight_quant.wgt_alpha"]))
        if w is None:
            raise CheckpointError(f"{path}: tensor {name}: no float weight quantizes back to these "
                                  f"levels (e.g. all levels equal)")
        state[name] = torch.from_numpy(w)
    # The header's order is the state_dict's order.
    ordered = {name: state[name] for name in arrays}
    return {"state_dict": ordered, "epoch": int(header["epoch"]), "best_prec": float(header["best_prec"]),
            "model": header["model"], "act_quant": header.get("act_quant", "course"), "optimizer": {}}


# --------------------------------------------------------------------------- pack verb
def pack_checkpoint(src, dst, model_name: str | None = None, check_images: int = 8, echo=print) -> dict:
    """Pack the checkpoint ``src`` into ``dst``, then load ``dst`` back and check that the
    logits of ``check_images`` synthetic images are bit-identical (torch.equal) to the
    full checkpoint's. Returns {"src_bytes", "dst_bytes", "model", "checked"}."""
    from .checkpoint import model_from_checkpoint
    from .data import synthetic_images

    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        raise CheckpointError(f"{dst}: --out is a directory, expected a file path")
    if dst.exists() and src.exists() and dst.samefile(src):
        raise CheckpointError(f"{dst}: --out is the checkpoint itself; pack into another file")
    model, ckpt, name = model_from_checkpoint(src, model_name)
    from .vgg import conv_layers
    w_bits = sorted({int(conv.w_bit) for _, conv in conv_layers(model)})
    if w_bits != [4]:
        raise CheckpointError(f"{src} read as {name}: w_bit={','.join(map(str, w_bits))}; the packed format holds "
                              f"4-bit weight levels (w_bit=4 only); nothing written")
    write_packed(dst, model.state_dict(), name, ckpt.get("epoch", 0), ckpt.get("best_prec", 0.0), model.act_quant)
    packed_model, _, _ = model_from_checkpoint(dst, name)
    x, _ = synthetic_images(check_images, seed=0)
    model.eval()
    packed_model.eval()
    with torch.no_grad():
        same = torch.equal(model(x), packed_model(x))
    if not same:
        dst.unlink(missing_ok=True)
        raise CheckpointError(f"{dst}: packed model's logits differ from {src} (removed; internal error)")
    info = {"src_bytes": src.stat().st_size, "dst_bytes": dst.stat().st_size, "model": name,
            "checked": check_images}
    echo(f"packed {src} ({info['src_bytes']:,} bytes) -> {dst} ({info['dst_bytes']:,} bytes, {name}); "
         f"logits of {check_images} image{'' if check_images == 1 else 's'} bit-identical")
    return info


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="full checkpoint to pack")
    p.add_argument("--out", type=out_path, required=True, metavar="PATH", help="packed file to write")
    p.add_argument("--model", default=None, metavar="NAME", help="model (default: from the checkpoint)")


def run(args) -> int:
    pack_checkpoint(args.checkpoint, args.out, args.model)
    return 0
