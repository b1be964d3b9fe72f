"""Safe checkpoint save / load.

A checkpoint is loaded only with ``torch.load(weights_only=True)``: plain
tensors, numbers, strings, lists and dicts. A file that needs pickle code (a
custom class, a ``__reduce__`` payload) is refused before anything runs.

Accepted layouts:
  * ours: ``{"state_dict", "epoch", "best_prec", "model", "optimizer"}``
  * the course notebooks': ``{"state_dict": ..., "epoch": ..., ...}`` (its
    ``*.weight_q`` entries, which QuantConv2d re-creates on every forward, and a
    ``module.`` prefix from nn.DataParallel are dropped)
  * a bare ``state_dict``.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch
import torch.nn as nn

from .errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "load_state_dict", "check_finite", "infer_model_name",
           "model_from_checkpoint"]


def save_checkpoint(path, model: nn.Module, model_name: str, epoch: int, best_prec: float,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write our checkpoint format (loadable with weights_only=True)."""
    path = Path(path)
    state = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "best_prec": float(best_prec),
        "model": str(model_name),
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
    )
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
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
            raise _refusal(path, e) from None
        raise CheckpointError(f"{path}: not a torch checkpoint ({_first_line(e)})") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    except Exception as e:  # EOFError, RuntimeError (bad zip), KeyError (garbage), ...
        raise CheckpointError(f"{path}: not a torch checkpoint or corrupt ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return line[:160] or type(e).__name__


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _clean_state_dict(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.endswith(".weight_q"):  # course QuantConv2d registered it as a parameter
            continue
        out[k] = v
    return out


def load_checkpoint(path, model: nn.Module | None = None) -> dict:
    """Load a checkpoint safely; with ``model``, load its weights (strict).

    Returns a dict with at least ``state_dict`` (cleaned), ``epoch``,
    ``best_prec``, ``model`` (name or None) and ``optimizer`` (maybe empty).
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
    ckpt["state_dict"] = _clean_state_dict(sd)
    check_finite(ckpt["state_dict"], path)
    ckpt.setdefault("epoch", 0)
    ckpt.setdefault("best_prec", 0.0)
    ckpt.setdefault("optimizer", {})
    name = ckpt.get("model")
    ckpt["model"] = name if isinstance(name, str) else None
    if model is not None:
        load_state_dict(model, ckpt["state_dict"], source=path)
    return ckpt


def check_finite(state_dict: dict, source="checkpoint") -> None:
    """Refuse (CheckpointError, one line) a state_dict whose floating-point tensors hold
    NaN or infinity: such a model would be evaluated or exported without a word."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(f"{source}: refused: {key!r} holds {bad} non-finite value(s) (NaN or inf)")


def load_state_dict(model: nn.Module, state_dict: dict, source="checkpoint") -> None:
    """Strict load that names the first bad key in a one-line CheckpointError."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state_dict:
            raise CheckpointError(f"{source}: wrong architecture: missing key {key!r}")
        got = state_dict[key]
        if tuple(got.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: wrong architecture: {key!r} has shape {tuple(got.shape)}, model expects {tuple(tensor.shape)}"
            )
    for key in state_dict:
        if key not in expected:
            raise CheckpointError(f"{source}: wrong architecture: unexpected key {key!r}")
    model.load_state_dict(state_dict, strict=True)


def infer_model_name(state_dict: dict) -> str | None:
    """The MODELS entry whose parameter names and shapes match ``state_dict``, if any."""
    from .vgg import MODELS

    with torch.device("meta"):
        for name, ctor in MODELS.items():
            expected = ctor().state_dict()
            if set(expected) == set(state_dict) and all(
                tuple(expected[k].shape) == tuple(state_dict[k].shape) for k in expected
            ):
                return name
    return None


def model_from_checkpoint(path, model_name: str | None = None):
    """Build the right model for a checkpoint and load it: (model, ckpt dict, name)."""
    from .vgg import build_model

    ckpt = load_checkpoint(path)
    name = model_name or ckpt.get("model") or infer_model_name(ckpt["state_dict"])
    if name is None:
        raise CheckpointError(f"{path}: cannot tell which model this checkpoint is for; pass --model")
    model = build_model(name)
    load_state_dict(model, ckpt["state_dict"], source=path)
    ckpt["model"] = name
    return model, ckpt, name
