"""Range-checked numeric command-line options: argparse ``type=`` functions.

Each factory returns a converter that accepts only a decimal integer (or a finite float)
inside its range and otherwise raises ``argparse.ArgumentTypeError`` with the range, so
the parser's one-line error names the option (``argument --seed: must be an integer in
0..4294967295, got '2**64'``) before anything is loaded or computed.
"""
from __future__ import annotations

import argparse
import math

__all__ = ["int_in", "float_in", "out_path", "SEED", "IMAGE", "CIFAR10_TEST_IMAGES", "MAX_SEED"]

#: images in the CIFAR-10 test split: every --image index is below this
CIFAR10_TEST_IMAGES = 10_000
#: seeds are 32-bit: torch, numpy and the derived seeds (seed * 1_000_003 + chunk) all take them
MAX_SEED = 2**32 - 1


def int_in(lo: int, hi: int | None = None):
    """argparse type: an integer in ``lo..hi`` (``hi`` None: no upper bound)."""
    span = f"in {lo}..{hi}" if hi is not None else f">= {lo}"

    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {text!r}")
        return value

    return convert


def float_in(lo: float, hi: float, lo_open: bool = False):
    """argparse type: a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text!r}") from None
        if not math.isfinite(value) or value < lo or (lo_open and value == lo) or value > hi:
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text!r}")
        return value

    return convert


def out_path(text: str) -> str:
    """argparse type of every --out: refuses an empty or all-blank path (an unset shell
    variable), which the commands would otherwise take for the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a path, got {text!r}")
    return text


#: --seed of every command
SEED = int_in(0, MAX_SEED)
#: --image: a CIFAR-10 test image, or the synthetic image of the same index
IMAGE = int_in(0, CIFAR10_TEST_IMAGES - 1)
