"""A signed first layer on an unsigned array: split the input into base-16 digits.

The notebooks' quantizer leaves the normalized image (features.0's input) at levels <= 15
but unbounded below. The array multiplies unsigned 4-bit activations, so an input level
x >= MIN_LEVEL is written as

    x = p - n0 - 16 * n1,   p = max(x, 0), -min(x, 0) = n0 + 16 * n1,   p, n0, n1 in 0..15

and, the conv being linear, conv(x, w) = conv(p, w) + conv(n0, -w) + 16 * conv(n1, -w).
The expanded layer has input channels [p, n0] (one shift-0 channel group) and, when
some level is below -15, [n1] (a shift-1 group); each group is zero-padded to whole ic
tiles. The SFP adds the psums of a shift-1 ic tile times 16 (INST_ACC_SHIFT), so the
layer's sums are exactly the integer conv of x. Weights stay in -7..7 (negated).
"""
from __future__ import annotations

import numpy as np

from model.errors import ModelError
from model.program.isa import LANE_BITS

DIGIT = 1 << LANE_BITS                 # 16: an unsigned activation lane holds 0..15
MIN_LEVEL = -(DIGIT * DIGIT - 1)       # -255: two negative digits

__all__ = ["DIGIT", "MIN_LEVEL", "split_signed"]


def _pad_group(a: np.ndarray, n: int) -> np.ndarray:
    extra = (-a.shape[1]) % n
    return np.pad(a, [(0, 0), (0, extra)] + [(0, 0)] * (a.ndim - 2)) if extra else a


def split_signed(x: np.ndarray, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """x (IC, H, W) int, levels MIN_LEVEL..15; w (OC, IC, 3, 3) in -7..7; n: array size.

    Returns (x_digits (IC', H, W) in 0..15, w_digits (OC, IC', 3, 3) in -7..7, shift per ic
    tile of n channels: 0 or 1 = the SFP adds that tile's psums times DIGIT). IC' is 2*IC
    rounded up to n, plus IC rounded up to n when a level is below -(DIGIT-1).
    ModelError (one line) for a level below MIN_LEVEL or above DIGIT-1."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    lo, hi = int(x.min()), int(x.max())
    if lo < MIN_LEVEL or hi > DIGIT - 1:
        raise ModelError(f"x_int: levels {lo}..{hi}; a signed first layer takes {MIN_LEVEL}..{DIGIT - 1} "
                         f"(two negative base-{DIGIT} digits)")
    neg = np.maximum(-x, 0)
    groups_x = [_pad_group(np.concatenate([np.maximum(x, 0), neg % DIGIT])[None], n)[0]]
    groups_w = [_pad_group(np.concatenate([w, -w], axis=1), n)]
    if lo < -(DIGIT - 1):
        groups_x.append(_pad_group((neg // DIGIT)[None], n)[0])
        groups_w.append(_pad_group(-w, n))
    shifts = tuple(s for s, g in enumerate(groups_x) for _ in range(g.shape[0] // n))
    return np.concatenate(groups_x), np.concatenate(groups_w, axis=1), shifts
