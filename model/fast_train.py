"""Fast training path (``python -m model train --fast``), made for one GPU.

What makes it fast, against ``model.train``:

* The whole split is decoded once and kept on the device as uint8 (150 MB for CIFAR-10);
  each epoch is augmented there in one call (``data.augment``: crop with 4-pixel zero
  padding, horizontal flip; the random offsets come from a seeded CPU generator), then
  shuffled, normalized per batch and handed to the model in channels-last layout.
* bf16 autocast with exact quantizers (``levels_forward``): each QuantConv2d quantizes its
  input and weight in float32 with the model's own quantizers, divides by the steps to get
  the integer levels (exact in bf16), convolves the levels in bf16 (products and fp32
  accumulation exact; the sum is rounded to bf16 once at the output) and multiplies by
  ``act_delta * w_delta`` in float32. The forward equals the model's up to that rounding, and
  the gradients reach weights and alphas through the quantizers' straight-through rules.
* A large batch (default 512) with SGD (Nesterov momentum 0.9), weight decay on conv and
  linear weights only (not BatchNorm, biases or alphas), the learning rate set per step
  (``lr_factor``: linear warm-up from lr/10 to lr over ``--warmup-epochs``, then cosine
  down to lr/1000), label smoothing (default 0.1), and ``--time-budget`` to fit the number
  of epochs to a device-time budget.

Every epoch prints its time, images/s, loss and train / test accuracy (test accuracy with the
bf16 forward). At the end the model is evaluated once more with its own float32 forward
(TF32 off): that is the accuracy reported in ``summary.json`` and the one ``model eval``
gives. Writes ``last.pt`` (full checkpoint) and ``summary.json`` into ``--out``.

Input: uint8 images ``[N, 3, 32, 32]`` or ``[N, 32, 32, 3]`` with int64 labels ``[N]``
(``train_fast``); ``load_split`` reads them from a CIFAR-10 folder (``model.data``) or a
folder of JPG class folders (``split/<class>/*.jpg``, decoded with Pillow).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as cifar
from .checkpoint import save_checkpoint
from .errors import DataError, ModelError
from .options import float_in
from .quant import QuantConv2d
from .vgg import build_model

__all__ = ["FAST_DEFAULTS", "load_split", "as_nchw", "levels_forward", "lr_factor", "train_fast",
           "evaluate_checkpoint", "add_fast_arguments", "run_train_command"]

# Defaults of --fast for the options it shares with the classic trainer.
FAST_DEFAULTS = {"batch_size": 512, "lr": 0.1, "weight_decay": 5e-4}
WARMUP_EPOCHS, LABEL_SMOOTHING = 2.0, 0.1
# Options only --fast reads (the classic trainer would ignore them): refused without it.
FAST_ONLY = ("warmup_epochs", "label_smoothing", "amp", "time_budget")


def _count(n, noun: str) -> str:
    """'1 epoch', '2 epochs', '0.5 epochs' (the log lines count epochs from 1 up)."""
    return f"{n:g} {noun}" if n == 1 else f"{n:g} {noun}s"


# --------------------------------------------------------------------------- data
def load_split(data, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 3, 32, 32] and int64 labels [N] of ``split`` (train / test).

    ``data`` is a folder with ``split/<class>/*.jpg`` (the JPG archive, unpacked), or
    anything else ``model.data.load_cifar10`` reads.
    """
    return cifar.load_cifar10(data, split, limit=limit)


def as_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] as is, or [N, H, W, 3] permuted to it; anything else is refused."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(f"images must be uint8 [N, 3, H, W] or [N, H, W, 3], got {images.dtype} "
                        f"{tuple(images.shape)}")
    if images.shape[1] == 3:
        return images
    if images.shape[3] == 3:
        return images.permute(0, 3, 1, 2)
    raise DataError(f"images must have 3 channels first or last, got shape {tuple(images.shape)}")


# --------------------------------------------------------------------------- model
def _levels_conv(conv: QuantConv2d, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, enabled=False):
        w_q = conv.quantize_weight()
        x_q = conv.quantize_input(x.float())
    # Steps detached: conv(x_q / s_a, w_q / s_w) * s_a * s_w is conv(x_q, w_q), gradients included.
    s_w = conv.weight_quant.wgt_alpha.detach() / conv.weight_quant.levels
    s_a = conv.act_alpha.detach() / (2 ** conv.a_bit - 1)
    out = F.conv2d(x_q / s_a, w_q / s_w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    out = out.float() * (s_a * s_w)
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)


@contextlib.contextmanager
def levels_forward(model: nn.Module, amp: bool):
    """Inside: every QuantConv2d convolves integer levels, in bf16 when ``amp`` (autocast on the
    model's device); outside, the model's own forward again (nothing is saved differently)."""
    convs = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    dev = next(model.parameters()).device
    try:
        for m in convs:
            m.forward = lambda x, m=m: _levels_conv(m, x)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            yield model
    finally:
        for m in convs:
            del m.forward


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_weight = name.endswith(".weight") and p.dim() > 1  # conv / linear weights
        (decay if is_weight else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.no_grad()
def _accuracy(model, images, labels, batch_size, dev, amp, fp32: bool) -> float:
    from .train import evaluate

    with contextlib.nullcontext() if fp32 else levels_forward(model, amp):
        correct, total, _ = evaluate(model, images, labels, batch_size, dev)
    return 100.0 * correct / total


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning rate / peak at ``step``: linear 0.1 -> 1 over ``warmup_steps``, then half a
    cosine down to 0.001 at ``total_steps``."""
    if step < warmup_steps:
        return 0.1 + 0.9 * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.001 + 0.999 * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_fast(train_x, train_y, test_x, test_y, epochs: int, out, model_name: str = "vgg16_quant_project",
               device: str | None = None, batch_size: int = 512, lr: float = 0.1, weight_decay: float = 5e-4,
               warmup_epochs: float = WARMUP_EPOCHS, label_smoothing: float = LABEL_SMOOTHING,
               amp: bool | None = None, seed: int = 0,
               time_budget: float | None = None, print_freq: int = 0, log=print) -> dict:
    """Train ``model_name`` from its seeded initialization; returns the summary dict
    (also written to ``out/summary.json``) with the measured figures.

    ``train_x`` / ``test_x``: uint8 [N, 3, 32, 32] or [N, 32, 32, 3]; ``*_y``: int64 [N].
    ``amp`` (default: on for CUDA) turns on the bf16 path. ``time_budget`` (seconds of
    training and per-epoch evaluation) makes ``epochs`` a maximum: the number of epochs is
    planned from the measured epoch times while the warm-up lasts (at least one epoch after
    it). ``print_freq`` > 0 adds a progress line every that many batches.
    """
    from .train import resolve_device

    for name, value, ok in (("--epochs", epochs, epochs >= 1), ("--batch-size", batch_size, batch_size >= 1),
                            ("--lr", lr, lr > 0), ("--weight-decay", weight_decay, weight_decay >= 0),
                            ("--warmup-epochs", warmup_epochs, 0 <= warmup_epochs < epochs),
                            ("--label-smoothing", label_smoothing, 0 <= label_smoothing < 1),
                            ("--time-budget", time_budget, time_budget is None or time_budget > 0)):
        if not ok:
            raise ModelError(f"{name} out of range: {value}")
    dev = resolve_device(device)
    amp = dev.type == "cuda" if amp is None else bool(amp)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out}: --out exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)

    t_load = time.time()
    train_x, test_x = as_nchw(train_x).to(dev).contiguous(), as_nchw(test_x).to(dev).contiguous()
    train_y, test_y = train_y.to(dev), test_y.to(dev)
    model = build_model(model_name, seed=seed).to(dev).to(memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    _sync(dev)
    t_load = time.time() - t_load

    n = len(train_y)
    steps = math.ceil(n / batch_size)
    optimizer = torch.optim.SGD(_param_groups(model, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    warmup_steps = round(warmup_epochs * steps)
    plan = {"epochs": epochs}
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, plan["epochs"] * steps))
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    gen = torch.Generator().manual_seed(seed)
    log(f"=> fast training {model_name} on {dev} ({'bf16 autocast' if amp else 'float32'}, channels-last): "
        f"{n} train / {len(test_y)} test images on the device, {steps} batches of {batch_size}, "
        f"{'at most ' if time_budget else ''}{_count(epochs, 'epoch')}, "
        f"lr {lr:g} (warm-up {_count(warmup_epochs, 'epoch')}, cosine), label smoothing {label_smoothing:g}")

    history = []
    t_train, walls = 0.0, []                 # walls: seconds of each epoch, evaluation included
    epoch = 0
    while epoch < plan["epochs"]:
        model.train()
        _sync(dev)
        t0 = time.time()
        aug = cifar.augment(train_x, gen)                           # [N, 3, 32, 32] uint8, on dev
        order = torch.randperm(n, generator=gen).to(dev)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        with levels_forward(model, amp):
            for i in range(steps):
                idx = order[i * batch_size:(i + 1) * batch_size]
                x = cifar.normalize(aug[idx]).contiguous(memory_format=torch.channels_last)
                y = train_y[idx]
                output = model(x)
                loss = criterion(output, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sched.step()
                loss_sum += loss.detach() * y.numel()
                correct += (output.detach().argmax(1) == y).sum()
                if print_freq > 0 and (i + 1) % print_freq == 0:
                    log(f"  epoch {epoch + 1} batch {i + 1}/{steps}: loss {loss.item():.4f}, "
                        f"{time.time() - t0:.1f}s")
        _sync(dev)
        seconds = time.time() - t0
        t_train += seconds
        test_acc = _accuracy(model, test_x, test_y, 1024, dev, amp, fp32=False)
        row = {"epoch": epoch + 1, "seconds": round(seconds, 3), "images_per_s": round(n / seconds, 1),
               "lr": optimizer.param_groups[0]["lr"], "loss": loss_sum.item() / n,
               "train_acc": 100.0 * correct.item() / n, "test_acc_bf16" if amp else "test_acc": test_acc}
        history.append(row)
        epoch += 1
        walls.append(time.time() - t0)
        if time_budget is not None and epoch * steps <= max(warmup_steps, steps):
            # Still warming up, so a new length leaves the schedule continuous. Epoch 1
            # carries cuDNN's autotuning: later epochs are timed without it.
            per_epoch = sum(walls[1:]) / (epoch - 1) if epoch > 1 else walls[0]
            fit = epoch + int((time_budget - sum(walls)) // per_epoch)
            plan["epochs"] = min(epochs, max(math.ceil(warmup_epochs) + 1, epoch + 1, fit))
            over = "" if fit >= plan["epochs"] else (
                f" (over the budget: the warm-up and an epoch after it come first, about "
                f"{sum(walls) + (plan['epochs'] - epoch) * per_epoch:.0f}s)")
            log(f"=> time budget {time_budget:g}s: {per_epoch:.2f}s per epoch, planning {_count(plan['epochs'], 'epoch')}{over}")
        log(f"epoch {epoch}/{plan['epochs']}: {seconds:.2f}s ({row['images_per_s']:.0f} images/s), "
            f"loss {row['loss']:.4f}, train acc {row['train_acc']:.2f}%, "
            f"test acc {test_acc:.2f}%{' (bf16 forward)' if amp else ''}, total {t_train:.1f}s")

    t0 = time.time()
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False          # the model's exact float32 forward
    try:
        final_acc = _accuracy(model, test_x, test_y, 1024, dev, amp, fp32=True)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    model = model.to(memory_format=torch.contiguous_format)
    epochs = plan["epochs"]
    last = save_checkpoint(out / "last.pt", model, model_name, epochs, final_acc)
    summary = {"model": model_name, "device": str(dev), "amp_bf16": amp, "epochs": epochs,
               "time_budget": time_budget,
               "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "warmup_epochs": warmup_epochs,
               "label_smoothing": label_smoothing, "seed": seed, "train_images": n, "test_images": len(test_y),
               "load_seconds": round(t_load, 3), "train_seconds": round(t_train, 3),
               "epoch_seconds_with_eval": round(sum(walls), 3),
               "final_test_acc_fp32": final_acc, "final_eval_seconds": round(time.time() - t0, 3),
               "checkpoint": str(last), "history": history}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"=> done: {_count(epochs, 'epoch')} in {t_train:.1f}s of training, test accuracy {final_acc:.2f}% "
        f"(float32 model forward, {len(test_y)} images); wrote {last} and {out / 'summary.json'}")
    return summary


def evaluate_checkpoint(path, data, device: str | None = None, limit: int | None = None) -> dict:
    """Accuracy of a checkpoint (full or packed) on the test split of ``data`` (``load_split``),
    with the model's own float32 forward: {"checkpoint", "correct", "total", "accuracy"}."""
    from .checkpoint import model_from_checkpoint
    from .train import evaluate, resolve_device

    dev = resolve_device(device)
    model, _, _ = model_from_checkpoint(path)
    x, y = load_split(data, "test", limit)
    torch.backends.cudnn.allow_tf32 = False
    correct, total, _ = evaluate(model.to(dev), x, y, 1024, dev)
    return {"checkpoint": str(path), "correct": correct, "total": total, "accuracy": 100.0 * correct / total}


# --------------------------------------------------------------------------- CLI glue
def add_fast_arguments(p) -> None:
    """Options of ``train --fast``; the options it shares with the classic trainer get
    ``FAST_DEFAULTS`` when ``--fast`` is given and are not set."""
    g = p.add_argument_group("fast GPU path (--fast)")
    g.add_argument("--fast", action="store_true",
                   help="data and augmentation on the device, bf16 autocast with exact quantizers, "
                        "channels-last, warm-up + cosine schedule; defaults then: " +
                        ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in FAST_DEFAULTS.items()))
    g.add_argument("--warmup-epochs", type=float_in(0, 10_000), default=None,
                   help=f"linear warm-up epochs, fewer than --epochs (default {WARMUP_EPOCHS:g}, "
                        "half of --epochs when that is 2 or fewer)")
    g.add_argument("--label-smoothing", type=float_in(0, 0.99), default=None,
                   help=f"label smoothing (default {LABEL_SMOOTHING:g})")
    g.add_argument("--amp", choices=("on", "off"), default=None, help="bf16 autocast (default: on for cuda)")
    g.add_argument("--time-budget", type=float_in(0, 1e7, lo_open=True), default=None, metavar="S",
                   help="seconds of training: --epochs becomes a maximum, planned from the warm-up epochs' times")
    classic = {k: p.get_default(k) for k in FAST_DEFAULTS}
    p.set_defaults(**{k: None for k in FAST_DEFAULTS}, _classic_defaults=classic)


def run_train_command(args) -> int:
    """``train``: the fast path with ``--fast``, else ``model.train.run_train``."""
    from .train import run_train

    defaults = FAST_DEFAULTS if args.fast else args._classic_defaults
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.fast:
        for key in FAST_ONLY:
            if getattr(args, key) is not None:
                raise ModelError(f"--{key.replace('_', '-')} needs --fast (the classic trainer has no such option)")
        return run_train(args)
    if args.resume is not None:
        raise ModelError("--resume is not supported with --fast (it trains one schedule from the start)")
    if args.warmup_epochs is None:                 # unset: 2 epochs, or half of a run of 2 or fewer
        args.warmup_epochs = WARMUP_EPOCHS if args.epochs > WARMUP_EPOCHS else args.epochs / 2
    elif args.warmup_epochs >= args.epochs:        # before the data is read
        raise ModelError(f"--warmup-epochs {args.warmup_epochs:g} must be fewer than --epochs {args.epochs}")
    if args.label_smoothing is None:
        args.label_smoothing = LABEL_SMOOTHING
    t0 = time.time()
    train_x, train_y = load_split(args.data, "train", args.limit)
    test_x, test_y = load_split(args.data, "test", args.test_limit)
    print(f"=> read {len(train_y)} train and {len(test_y)} test images in {time.time() - t0:.1f}s", flush=True)
    train_fast(train_x, train_y, test_x, test_y, epochs=args.epochs, out=args.out,
               model_name=args.model or "vgg16_quant_project", device=args.device, batch_size=args.batch_size,
               lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
               label_smoothing=args.label_smoothing, amp=None if args.amp is None else args.amp == "on",
               seed=args.seed, time_budget=args.time_budget, print_freq=args.print_freq)
    return 0
