"""Command line: ``systolic {train,eval,export,pack,demo,bench,rtl-bench,infer} ...`` (the console
command of pyproject.toml), the same as ``python -m model ...``.

Every error is one line on stderr, ``error: ...``: exit status 2 for a usage
error (bad or missing option), 1 for anything else (bad path, bad layer, bad
checkpoint, ...). No traceback unless ``MODEL_DEBUG=1`` is set.

``export``, ``bench``, ``demo``, ``rtl-bench`` and ``infer`` live in ``model/export.py``,
``model/bench.py``, ``tb/demo.py``, ``tb/bench.py`` and ``model/infer.py``; their options come from their
``add_arguments(parser)`` and they run with ``run(args)`` (torch, cocotb and the slow
references are imported inside ``run``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from .errors import ModelError

__all__ = ["main", "build_parser", "UsageError", "OneLineArgumentParser"]

COMMANDS = {
    "train": "train the 4-bit VGG16 on CIFAR-10 (writes last.pt / best.pt)",
    "eval": "test accuracy of a checkpoint on CIFAR-10",
    "export": "capture a layer and write its classic text vectors and tensors.npz",
    "pack": "write a checkpoint as a packed deployable file (4-bit weights two per byte) and check its logits",
    "bench": "time the vectorized reference tiling against the notebook-style loops (RTL cycles: rtl-bench)",
    "demo": "run the 8->8 layer of the model through the RTL core in every schedule, bit-exact, with cycles",
    "rtl-bench": "RTL benchmark table: layers through the core, cycles and utilization, every output verified",
    "infer": "the whole network on the RTL core, conv after conv, from real or synthetic images, bit-exact",
}
# Commands whose module has add_arguments(parser) and run(args).
MODULES = {"export": "model.export", "bench": "model.bench", "demo": "tb.demo", "rtl-bench": "tb.bench",
           "infer": "model.infer"}


def program_name() -> str:
    """How the user called us: the console command or ``python -m model``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name and not name.endswith(".py") and name != "-c" else "python -m model"


class UsageError(Exception):
    """A bad command line (exit status 2)."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are raised (one line), not printed with usage."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message}" if self.prog else message)


def build_parser() -> OneLineArgumentParser:
    """The parser of every command."""
    from . import train as train_mod

    parser = OneLineArgumentParser(
        prog=program_name(),
        description="4-bit quantized VGG16 + systolic array co-design tool.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    p = sub.add_parser("train", help=COMMANDS["train"], description=COMMANDS["train"])
    train_mod.add_train_arguments(p)
    # --fast GPU path and the pack verb (model/fast_train.py, model/packed.py)
    from . import fast_train, packed
    fast_train.add_fast_arguments(p)
    p.set_defaults(_run=fast_train.run_train_command)
    p = sub.add_parser("pack", help=COMMANDS["pack"], description=COMMANDS["pack"])
    packed.add_arguments(p)
    p.set_defaults(_run=packed.run)
    p = sub.add_parser("eval", help=COMMANDS["eval"], description=COMMANDS["eval"])
    train_mod.add_eval_arguments(p)
    p.set_defaults(_run=train_mod.run_eval)

    for name, module in MODULES.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (never raises, never prints a traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def body():
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"{parser.prog}: a command is required ({', '.join(COMMANDS)}); see --help")
        return args._run(args)

    return run_cli(body)


def run_cli(body) -> int:
    """Run `body()` as a command: its int result is the exit status; a bad command line,
    a ModelError or any other failure is one line on stderr, never a traceback (set
    MODEL_DEBUG=1 for one). Shared by every command-line script of the project."""
    debug = os.environ.get("MODEL_DEBUG", "") not in ("", "0")
    try:
        rc = body()
        return rc if isinstance(rc, int) else 0
    except UsageError as e:
        _one_line(f"error: {e}")
        return 2
    except ModelError as e:
        if debug:
            raise
        _one_line(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        _one_line("error: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except SystemExit as e:  # --help, or a run() that calls sys.exit
        code = e.code
        if code is None or isinstance(code, int):
            return code or 0
        _one_line(f"error: {code}")
        return 1
    except Exception as e:  # noqa: BLE001 - the CLI promises one line, never a traceback
        if debug:
            raise
        _one_line(f"error: {_describe(e)}")
        return 1


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    text = str(e).strip() or type(e).__name__
    if isinstance(e, (MemoryError, RuntimeError)) or not isinstance(e, (ValueError, OSError)):
        text = f"{type(e).__name__}: {text}"
    return text


def _one_line(text: str) -> None:
    line = " ".join(str(text).split())
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
