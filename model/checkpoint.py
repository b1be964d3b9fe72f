"""Safe checkpoint save / load, for our checkpoints and the course notebooks' as people have them.

A checkpoint is loaded only with ``torch.load(weights_only=True)``: tensors, numbers,
strings, lists and dicts, plus exactly the numpy globals a numpy scalar needs
(``numpy.dtype``, ``numpy[._]core.multiarray.scalar`` and the numeric dtype classes),
because course checkpoints often hold ``best_prec`` as ``np.float64``. A file that needs
any other pickle code (a custom class, a ``__reduce__`` payload) is refused before
anything runs. Tensors saved on CUDA load onto the CPU.

Accepted layouts:
  * ours: ``{"state_dict", "epoch", "best_prec", "model", "act_quant", "optimizer"}``
  * the course notebooks': ``{"epoch", "state_dict", "best_prec", "optimizer"}``
    (``checkpoint.pth``, ``model_best.pth.tar``), with the ``*.weight_q`` entries the
    course's QuantConv2d registers as parameters (dropped: QuantConv2d recomputes them);
  * a bare ``state_dict``;
  * a packed deployable file (``model.packed``: 4-bit weight levels, two per byte);
each with keys prefixed by ``module.`` (nn.DataParallel) and/or ``_orig_mod.``
(torch.compile), which are stripped. A tensor that is not floating point, holds a NaN or inf,
or a clipping threshold (alpha) that is not > 0 is refused (``check_tensors``).
"""

from __future__ import annotations

import math
import os
import pickle
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .errors import CheckpointError, ModelError
from .quant import ACT_QUANT_MODES

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "load_state_dict",
    "check_tensors",
    "infer_model_name",
    "model_from_checkpoint",
    "describe_foreign",
    "map_optimizer_state",
    "SAFE_NUMPY_GLOBALS",
]

_PREFIXES = ("module.", "_orig_mod.")
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_ALPHAS = (".act_alpha", ".weight_quant.wgt_alpha")
_ZIP_MAGIC = b"PK\x03\x04"                   # torch.save's zip format
_SCALAR = np._core.multiarray.scalar
# What weights_only needs to rebuild a numpy scalar, under numpy 2's and numpy 1's module names.
SAFE_NUMPY_GLOBALS = [np.dtype, _SCALAR, (_SCALAR, "numpy.core.multiarray.scalar")] + [
    getattr(np.dtypes, f"{kind}DType") for kind in
    ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
     "Float16", "Float32", "Float64")
]


def save_checkpoint(path, model: nn.Module, model_name: str, epoch: int, best_prec: float,
                    optimizer: torch.optim.Optimizer | None = None, act_quant: str = "course") -> Path:
    """Write our checkpoint format (loadable with weights_only=True); ``model_name`` is a
    MODELS name or a layout config string."""
    path = Path(path)
    state = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "best_prec": float(best_prec),
        "model": str(model_name),
        "act_quant": str(act_quant),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def _refusal(path, err: Exception) -> CheckpointError:
    text = str(err)
    m = re.search(r"unsupported GLOBAL ([\w.]+)", text, re.IGNORECASE) or re.search(
        r"Unsupported global: GLOBAL ([\w.]+)", text
    ) or re.search(r"got <class '([\w.]+)'>", text)
    if m:
        return CheckpointError(f"{path}: refused: needs pickle code to load (unsafe checkpoint; global {m.group(1)})")
    m = re.search(r"Unsupported operand (\d+)", text)
    if m:
        return CheckpointError(f"{path}: refused: not a plain-tensor torch checkpoint (pickle opcode {m.group(1)})")
    return CheckpointError(f"{path}: refused: needs pickle code to load (unsafe checkpoint)")


def _torch_load(path: Path):
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    if not head:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    from .packed import is_packed, read_packed  # the deployable 4-bit format, told by its magic
    if is_packed(path):
        return read_packed(path)
    try:
        # torch warns about a pickle protocol it did not write before refusing the file in one line
        with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
            raise _refusal(path, e) from None
        raise CheckpointError(f"{path}: not a torch checkpoint ({_first_sentence(e)})") from None
    except Exception as e:  # EOFError, RuntimeError / OSError (bad zip), KeyError (garbage), ...
        if head == _ZIP_MAGIC and isinstance(e, (RuntimeError, OSError)):
            raise CheckpointError(f"{path}: not a torch checkpoint (truncated or corrupt zip archive)") from None
        if not head.startswith(b"\x80"):      # a pickle of protocol 2 or later, as torch writes
            raise CheckpointError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle)") from None
        raise CheckpointError(f"{path}: not a torch checkpoint or corrupt ({type(e).__name__}: "
                              f"{_first_sentence(e)})") from None


def _first_sentence(e: Exception) -> str:
    """The first sentence of an exception's message (torch appends paragraphs of advice)."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return line.split(". ", 1)[0].rstrip(".") or type(e).__name__


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _strip(key: str) -> str:
    """Drop leading ``module.`` / ``_orig_mod.`` prefixes, in any order and number."""
    while key.startswith(_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _number(path, ckpt: dict, key: str, kind):
    value = ckpt.get(key, 0)
    try:
        number = kind(value.item() if isinstance(value, (torch.Tensor, np.generic)) else value)
    except (TypeError, ValueError, RuntimeError):
        raise CheckpointError(f"{path}: {key!r} is not a number ({type(value).__name__})") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise CheckpointError(f"{path}: {key!r} is {number}")
    return number


def check_tensors(path, state_dict: dict) -> None:
    """Refuse (one CheckpointError line naming ``path`` and the tensor) a state_dict the model
    cannot run: a tensor that is not floating point (``num_batches_tracked`` excepted: an
    integer count), a NaN or inf, or a clipping threshold (``act_alpha``,
    ``weight_quant.wgt_alpha``) that is not > 0. The quantizers (``model.quant``) divide by
    alpha and step by ``alpha / levels``: 0 makes every logit NaN; with a negative one the
    integer levels ``q / (alpha / levels)`` change sign (an activation's clip at +alpha
    becomes a floor, a weight's levels flip) and are not the array's 0..15 / -7..7.
    Training does not clamp alpha, so a run that drives one to <= 0 is refused here, like
    one that diverged. Used by the full and the packed loaders alike."""
    for key, t in state_dict.items():
        if key.rsplit(".", 1)[-1] == "num_batches_tracked":
            continue
        if not t.is_floating_point():
            raise CheckpointError(f"{path}: refused: {key!r} has dtype {str(t.dtype).removeprefix('torch.')}; "
                                  f"model tensors are floating point")
        if not torch.isfinite(t).all():
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            raise CheckpointError(f"{path}: refused: {key!r} holds non-finite values ({nan} NaN, {inf} inf "
                                  f"of {t.numel()}); the training that wrote it diverged")
        if key.endswith(_ALPHAS) and t.numel() and not bool((t > 0).all()):
            raise CheckpointError(f"{path}: refused: {key!r} is {float(t.min()):g}; a clipping threshold "
                                  f"must be > 0 (the quantizer divides by it)")


def load_checkpoint(path, model: nn.Module | None = None) -> dict:
    """Load a checkpoint safely; with ``model``, load its weights (strict).

    Returns a dict with at least ``state_dict`` (prefixes stripped, ``weight_q`` dropped,
    every value finite), ``param_names`` (the saved parameters in saved order, ``weight_q``
    included: the order of the saved optimizer's indices), ``weight_q`` (how many were
    dropped), ``epoch`` (int), ``best_prec`` (float), ``model`` (name, config or None),
    ``act_quant`` (or None) and ``optimizer`` (maybe empty).
    """
    path = Path(path)
    obj = _torch_load(path)
    if isinstance(obj, dict) and "state_dict" in obj:
        sd = obj["state_dict"]
        if not _is_state_dict(sd):
            raise CheckpointError(f"{path}: 'state_dict' is not a dict of tensors")
        ckpt = dict(obj)
    elif _is_state_dict(obj):
        sd = obj
        ckpt = {}
    else:
        raise CheckpointError(f"{path}: not a model checkpoint (expected a state_dict or a dict with 'state_dict')")
    names = [_strip(k) for k in sd]
    if len(set(names)) != len(names):
        raise CheckpointError(f"{path}: keys collide once the module./_orig_mod. prefixes are stripped")
    clean = {n: v for n, v in zip(names, sd.values()) if not n.endswith(".weight_q")}
    check_tensors(path, clean)
    ckpt["state_dict"] = clean
    ckpt["param_names"] = [n for n in names if n.rsplit(".", 1)[-1] not in _BN_BUFFERS]
    ckpt["weight_q"] = len(names) - len(clean)
    ckpt["epoch"] = _number(path, ckpt, "epoch", int)
    ckpt["best_prec"] = _number(path, ckpt, "best_prec", float)
    if not isinstance(ckpt.get("optimizer"), dict):
        ckpt["optimizer"] = {}
    for key in ("model", "act_quant"):        # absent or None: not named (a course checkpoint)
        if ckpt.get(key) is not None and not isinstance(ckpt[key], str):
            raise CheckpointError(f"{path}: field {key!r} must be a string, got {ckpt[key]!r}")
        ckpt[key] = ckpt.get(key)
    if ckpt["act_quant"] is not None and ckpt["act_quant"] not in ACT_QUANT_MODES:
        raise CheckpointError(f"{path}: field 'act_quant' must be one of {', '.join(ACT_QUANT_MODES)}, "
                              f"got {ckpt['act_quant']!r}")
    if model is not None:
        load_state_dict(model, ckpt["state_dict"], source=path)
    return ckpt


def load_state_dict(model: nn.Module, state_dict: dict, source="checkpoint", hint: str = "") -> None:
    """Strict load that names the first bad key in a one-line CheckpointError (``hint`` appended)."""
    expected = model.state_dict()

    def wrong(reason):
        return CheckpointError(f"{source}: wrong architecture: {reason}{hint}")

    for key, tensor in expected.items():
        if key not in state_dict:
            raise wrong(f"missing key {key!r}")
        got = state_dict[key]
        if tuple(got.shape) != tuple(tensor.shape):
            raise wrong(f"{key!r} has shape {tuple(got.shape)}, model expects {tuple(tensor.shape)}")
    for key in state_dict:
        if key not in expected:
            raise wrong(f"unexpected key {key!r}")
    model.load_state_dict(state_dict, strict=True)


def describe_foreign(state_dict: dict) -> str:
    """What a checkpoint that is no VGG_quant seems to be, in a few words."""
    stages = {}
    for key in state_dict:
        m = re.match(r"layer(\d+)\.(\d+)\.conv(\d+)\.weight$", key)
        if m:
            stages.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            stages.setdefault("convs", set()).add(int(m.group(3)))
    if stages:
        per_block = max(stages.pop("convs"))
        blocks = [len(stages[s]) for s in sorted(stages)]
        depth = per_block * sum(blocks) + 2
        kind = "bottleneck" if per_block == 3 else "basic"
        return (f"looks like a ResNet-{depth} ({len(blocks)} stages of {'/'.join(map(str, blocks))} {kind} "
                f"blocks), not a VGG16_quant")
    keys = list(state_dict)
    return f"not a VGG16_quant checkpoint (keys {', '.join(repr(k) for k in keys[:3])}{', ...' if len(keys) > 3 else ''})"


def infer_model_name(state_dict: dict) -> str | None:
    """The layout (MODELS name or config string) that ``state_dict`` was saved from, or None."""
    from .vgg import layout_from_state_dict

    try:
        return layout_from_state_dict(state_dict).label
    except ModelError:
        return None


def model_from_checkpoint(path, model_name=None, act_quant: str | None = None):
    """Build the right model for a checkpoint and load it: (model, ckpt dict, model label).

    The layout is ``model_name`` (a MODELS name or config string) when given, else the one
    the checkpoint names, else the one its keys and shapes show. ``act_quant`` (default: the
    checkpoint's, else ``"course"``) chooses the activation quantizer.
    """
    from .vgg import MODELS, build_model, layout_from_state_dict, resolve_model

    ckpt = load_checkpoint(path)
    sd = ckpt["state_dict"]
    try:
        detected = layout_from_state_dict(sd)
    except ModelError as e:
        if any(k.startswith("features.") for k in sd):
            raise CheckpointError(f"{path}: not a VGG16_quant layout this tool can read: {e}") from None
        raise CheckpointError(f"{path}: {describe_foreign(sd)}; this tool runs VGG16_quant layouts only") from None
    named = None if model_name else ckpt["model"]
    try:
        layout = resolve_model(model_name or named or detected)
    except ModelError as e:
        if named is None:
            raise
        what = (f"a layout that does not parse ({e})" if "," in named else
                f"not one of {', '.join(MODELS)} nor a layout string")
        raise CheckpointError(f"{path}: names model {named!r}, {what}; --model NAME reads it as another") from None
    model = build_model(layout, act_quant=act_quant or ckpt["act_quant"] or "course")
    hint = "" if layout.same_network(detected) else f" (its keys and shapes are those of {detected.label})"
    load_state_dict(model, sd, source=path, hint=hint)
    # an override the shapes cannot catch (other bit widths, other quantizer) is said once
    theirs = _resolves(ckpt["model"]) if model_name else None
    if theirs is not None and theirs.label != layout.label:
        print(f"note: {path} names model {theirs.label}; --model reads it as {layout.label}", file=sys.stderr)
    if act_quant and ckpt["act_quant"] and act_quant != ckpt["act_quant"]:
        print(f"note: {path} was saved with activation quantizer {ckpt['act_quant']}; --act-quant runs it "
              f"with {act_quant}", file=sys.stderr)
    ckpt["model"] = layout.label
    return model, ckpt, layout.label


def _resolves(name):
    """The Layout a checkpoint's model name gives, or None (no name, or none that parses)."""
    from .vgg import resolve_model

    try:
        return resolve_model(name) if name else None
    except ModelError:
        return None


def map_optimizer_state(ckpt: dict, model: nn.Module) -> tuple[dict | None, str]:
    """The checkpoint's SGD state re-indexed for ``model``'s parameters, or (None, why not).

    A course optimizer was built over the course model's parameters, ``weight_q`` included
    (the course never gives them gradients, so they hold no momentum); its indices follow
    the saved state_dict's parameter order (``ckpt["param_names"]``). Entries of
    ``weight_q`` are dropped, the others move to the index of the same name here.
    """
    saved = ckpt.get("optimizer") or {}
    groups, state = saved.get("param_groups"), saved.get("state")
    if not groups or not isinstance(state, dict):
        return None, "the checkpoint holds no optimizer state"
    if len(groups) != 1 or not isinstance(groups[0], dict) or "params" not in groups[0]:
        return None, f"the saved optimizer has {len(groups)} parameter groups, not one"
    ids, names = list(groups[0]["params"]), ckpt["param_names"]
    if len(ids) != len(names):
        return None, f"the saved optimizer covers {len(ids)} parameters, the saved model has {len(names)}"
    params = dict(model.named_parameters())
    index = {name: j for j, name in enumerate(params)}
    name_of = dict(zip(ids, names))
    missing = [n for n in params if n not in name_of.values()]
    if missing:
        return None, f"the saved optimizer has no entry for {missing[0]!r}"
    mapped = {}
    for pid, entry in state.items():
        name = name_of.get(pid)
        if name is None or (name not in index and not name.endswith(".weight_q")):
            return None, f"the saved optimizer holds state for {name or pid!r}, which this model has not"
        if name not in index:
            continue
        buf = entry.get("momentum_buffer") if isinstance(entry, dict) else None
        if buf is not None and tuple(buf.shape) != tuple(params[name].shape):
            return None, f"the momentum of {name!r} has shape {tuple(buf.shape)}, the parameter {tuple(params[name].shape)}"
        mapped[index[name]] = entry
    group = dict(groups[0], params=list(range(len(params))))
    dropped = len(names) - len(params)
    note = f" ({dropped} weight_q entries dropped)" if dropped else ""
    return {"state": mapped, "param_groups": [group]}, f"momentum of {len(mapped)} parameters restored{note}"
