"""Quantization-aware training and evaluation on CIFAR-10.

``python -m model train --data DIR --epochs N --out DIR`` trains with SGD
(momentum 0.9, weight decay 4e-4), a step schedule (lr x0.1 at 50% and 75% of
the epochs), random-crop + flip augmentation, and writes ``last.pt`` every
epoch and ``best.pt`` only when the test accuracy beats the best so far (the
checkpoint's, when resuming). ``--resume PATH`` continues from a ``last.pt`` or a
course checkpoint (``checkpoint.pth``, ``model_best.pth.tar``): the model is read
from the file as ``eval`` does, and the saved optimizer state is mapped onto the
model's parameters, or a fresh optimizer starts (one line says which).

``python -m model eval --checkpoint PATH --data DIR`` shows a progress bar and prints
``Test set: Accuracy: X/N (P%)``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from . import data as cifar
from .checkpoint import map_optimizer_state, model_from_checkpoint, save_checkpoint
from .errors import ModelError
from .options import SEED, float_in, int_in, out_path
from .quant import ACT_QUANT_MODES
from .vgg import MODELS, build_model, resolve_model

__all__ = [
    "resolve_device",
    "lr_at",
    "evaluate",
    "train",
    "add_train_arguments",
    "run_train",
    "add_eval_arguments",
    "run_eval",
    "add_model_arguments",
]

DEFAULT_MODEL = "vgg16_quant_project"


def resolve_device(name: str | None) -> torch.device:
    """``cuda`` / ``cpu`` / ``cuda:N``; None picks cuda when available."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ModelError(f"unknown device {name!r} (use cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ModelError(f"unsupported device {name!r} (use cpu or cuda)")
    return dev


def lr_at(epoch: int, epochs: int, base_lr: float) -> float:
    """Step schedule: base_lr, x0.1 from 50% of the epochs, x0.01 from 75%."""
    lr = base_lr
    for milestone in (epochs // 2, (3 * epochs) // 4):
        if milestone > 0 and epoch >= milestone:
            lr *= 0.1
    return lr


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
             device="cpu", progress: bool = False) -> tuple[int, int, float]:
    """(correct, total, mean loss) of ``model`` on uint8 images; ``progress`` shows a bar on stderr."""
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    correct, total, loss = 0, 0, 0.0
    with tqdm(total=len(labels), unit="img", desc="eval", disable=not progress, leave=False) as bar:
        for x, y in cifar.batches(images, labels, batch_size, device=device):
            out = model(x)
            loss += criterion(out, y).item()
            correct += (out.argmax(1) == y).sum().item()
            total += y.numel()
            bar.update(y.numel())
            bar.set_postfix(acc=f"{100.0 * correct / total:.2f}%")
    return correct, total, loss / max(total, 1)


def train(
    data=None,
    epochs: int = 100,
    out="result",
    model_name: str | None = None,
    device: str | None = None,
    resume=None,
    batch_size: int = 128,
    lr: float = 1e-2,
    weight_decay: float = 4e-4,
    limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
    print_freq: int = 100,
    act_quant: str | None = None,
    log=print,
) -> dict:
    """Train a model; returns {"best_prec", "epoch", "last", "best", "model"}."""
    if epochs < 1:
        raise ModelError(f"--epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ModelError(f"--batch-size must be >= 1, got {batch_size}")
    if not (math.isfinite(lr) and lr > 0):
        raise ModelError(f"--lr must be a finite number > 0, got {lr}")
    dev = resolve_device(device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out}: --out exists and is not a directory")

    train_x, train_y = cifar.load_cifar10(data, "train", limit=limit)
    test_x, test_y = cifar.load_cifar10(data, "test", limit=test_limit)

    ckpt = None
    if resume is not None:
        model, ckpt, model_name = model_from_checkpoint(resume, model_name, act_quant)
        act_quant = model.act_quant
    else:
        act_quant = act_quant or "course"
        model_name = resolve_model(model_name or DEFAULT_MODEL).label
        model = build_model(model_name, seed=seed, act_quant=act_quant)
    model.to(dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # The whole uint8 dataset fits on the GPU (150 MB for CIFAR-10): batches are
        # then gathered, augmented and normalized there.
        train_x, train_y = train_x.to(dev), train_y.to(dev)
        test_x, test_y = test_x.to(dev), test_y.to(dev)

    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    # A fresh run's first epoch is an improvement whatever its accuracy; a resumed run
    # must beat the checkpoint's best.
    start_epoch, best_prec = 0, -1.0
    if ckpt is not None:
        _resume_optimizer(optimizer, ckpt, model, resume, log)
        start_epoch = ckpt["epoch"]
        best_prec = ckpt["best_prec"]
        log(f"=> resumed {model_name} from {resume} at epoch {start_epoch} (best {best_prec:.2f}%)")
    if start_epoch >= epochs:
        log(f"=> {resume} is already at epoch {start_epoch} of {epochs}: nothing to train")
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out / "last.pt", out / "best.pt"
    n_batches = cifar.num_batches(len(train_y), batch_size)
    log(f"=> training {model_name} on {dev}: {len(train_y)} train / {len(test_y)} test images, "
        f"{n_batches} batches of {batch_size}, epochs {start_epoch + 1}..{epochs}")

    for epoch in range(start_epoch, epochs):
        cur_lr = lr_at(epoch, epochs, lr)
        for group in optimizer.param_groups:
            group["lr"] = cur_lr
        gen = torch.Generator().manual_seed(seed * 100003 + epoch)
        model.train()
        loss_sum = torch.zeros((), device=dev)
        correct_sum = torch.zeros((), dtype=torch.long, device=dev)
        seen = 0
        t0 = time.time()
        for i, (x, y) in enumerate(
            cifar.batches(train_x, train_y, batch_size, shuffle=True, augment_data=True, generator=gen, device=dev)
        ):
            output = model(x)
            loss = criterion(output, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # Running sums stay on the device: no GPU sync per batch.
            loss_sum += loss.detach() * y.numel()
            correct_sum += (output.detach().argmax(1) == y).sum()
            seen += y.numel()
            if print_freq > 0 and (i % print_freq == 0 or i == n_batches - 1):
                log(f"Epoch: [{epoch + 1}][{i + 1}/{n_batches}]\tTime {time.time() - t0:.1f}s\t"
                    f"Loss {loss.item():.4f} ({loss_sum.item() / seen:.4f})\t"
                    f"Prec {100.0 * correct_sum.item() / seen:.3f}%")
        tr_loss = loss_sum.item() / seen
        tr_acc = 100.0 * correct_sum.item() / seen
        train_time = time.time() - t0
        correct, total, test_loss = evaluate(model, test_x, test_y, max(batch_size, 256), dev)
        prec = 100.0 * correct / total
        is_best = prec > best_prec
        best_prec = max(prec, best_prec)
        save_checkpoint(last_path, model, model_name, epoch + 1, best_prec, optimizer, act_quant)
        if is_best:
            shutil.copyfile(last_path, best_path)
        log(f"epoch {epoch + 1}/{epochs}: {n_batches} batches, lr {cur_lr:g}, loss {tr_loss:.4f}, "
            f"train acc {tr_acc:.2f}%, test loss {test_loss:.4f}, test acc {prec:.2f}% ({correct}/{total}), "
            f"best {best_prec:.2f}%, time {train_time:.1f}s + eval {time.time() - t0 - train_time:.1f}s")
    if not best_path.exists():
        log(f"=> no {best_path}: no epoch beat the best accuracy so far ({best_prec:.2f}%)")
    return {"best_prec": best_prec, "epoch": epochs, "last": last_path, "best": best_path, "model": model_name}


def _resume_optimizer(optimizer, ckpt: dict, model: nn.Module, resume, log) -> None:
    """Load the checkpoint's optimizer state mapped onto ``model``, or keep the fresh one; one line says which."""
    state, why = map_optimizer_state(ckpt, model)
    if state is not None:
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError, RuntimeError) as e:
            state, why = None, f"it does not load ({type(e).__name__}: {e})"
    if state is None:
        log(f"=> {resume}: optimizer state not used ({why}); starting a fresh SGD optimizer")
    else:
        log(f"=> {resume}: optimizer state mapped: {why}")


# --------------------------------------------------------------------------- CLI glue
_LIMIT_HOW = "(the first N; of image folders, each class's files in turn: model.data)"
_DATA_HELP = ("CIFAR-10: python batches folder, its .tar.gz, or image folders train/<class>/, test/<class>/ "
              "(default: $CIFAR10_DIR)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help=_DATA_HELP)
    p.add_argument("--epochs", type=int_in(1, 100_000), default=100, help="number of epochs (default 100)")
    p.add_argument("--out", type=out_path, default="result", help="folder for last.pt / best.pt (default ./result)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--resume", default=None, metavar="PATH", help="continue from a checkpoint (last.pt)")
    add_model_arguments(p, f"{DEFAULT_MODEL}, or the --resume checkpoint's")
    p.add_argument("--batch-size", type=int_in(1, 100_000), default=128, help="batch size (default 128)")
    p.add_argument("--lr", type=float_in(0, 10, lo_open=True), default=1e-2, help="initial learning rate (default 0.01)")
    p.add_argument("--weight-decay", type=float_in(0, 1), default=4e-4, help="weight decay (default 4e-4)")
    p.add_argument("--limit", type=int_in(1), default=None, metavar="N",
                   help=f"use only N training images {_LIMIT_HOW}")
    p.add_argument("--test-limit", type=int_in(1), default=None, metavar="N",
                   help=f"use only N test images {_LIMIT_HOW}")
    p.add_argument("--seed", type=SEED, default=0, help="seed for init, shuffling and augmentation (default 0)")
    p.add_argument("--print-freq", type=int_in(1), default=100, metavar="K", help="progress line every K batches")


def run_train(args) -> int:
    train(
        data=args.data,
        epochs=args.epochs,
        out=args.out,
        model_name=args.model,
        device=args.device,
        resume=args.resume,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        limit=args.limit,
        test_limit=args.test_limit,
        seed=args.seed,
        print_freq=args.print_freq,
        act_quant=args.act_quant,
    )
    return 0


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint to evaluate")
    p.add_argument("--data", default=None, help=_DATA_HELP)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    add_model_arguments(p, "read from the checkpoint")
    p.add_argument("--batch-size", type=int_in(1, 100_000), default=256, help="batch size (default 256)")
    p.add_argument("--limit", type=int_in(1), default=None, metavar="N",
                   help=f"use only N test images {_LIMIT_HOW}")


def run_eval(args) -> int:
    if args.batch_size < 1:
        raise ModelError(f"--batch-size must be >= 1, got {args.batch_size}")
    dev = resolve_device(args.device)
    model, _, name = model_from_checkpoint(args.checkpoint, args.model, args.act_quant)
    test_x, test_y = cifar.load_cifar10(args.data, "test", limit=args.limit)
    model.to(dev)
    print(f"model {name}, activation quantizer {model.act_quant}", file=sys.stderr)
    correct, total, _ = evaluate(model, test_x, test_y, args.batch_size, dev, progress=True)
    print(f"Test set: Accuracy: {correct}/{total} ({100.0 * correct / total:.2f}%)")
    return 0


def _model_arg(text: str) -> str:
    """argparse type of --model: a MODELS name or a layout config string, refused early."""
    try:
        return resolve_model(text).label
    except ModelError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_model_arguments(p: argparse.ArgumentParser, model_default: str) -> None:
    """--model and --act-quant, shared by train, eval and export."""
    p.add_argument("--model", default=None, type=_model_arg, metavar="NAME|LAYOUT",
                   help=f"{', '.join(MODELS)}, or a layout config like "
                        f"'64,64,M,...,8,8n,512,M,512,512,512,M;a_bit=4' (default: {model_default})")
    p.add_argument("--act-quant", default=None, choices=ACT_QUANT_MODES,
                   help="activation quantizer: course (the notebooks': clamps only the maximum, so the first "
                        "layer sees signed levels) or unsigned (clips at 0 too, as the array's unsigned "
                        "activations) (default: the checkpoint's, else course)")
