"""Requantization in the SFP: a conv's integer output -> the next layer's 4-bit activations.

Between two convs of the network, BatchNorm (folded), ReLU and the next QuantConv2d's
activation quantizer form one function of the integer conv output ``sum`` of an output
channel. Every float operation in that chain (scale, shift, max, clamp, round) is monotone,
so the function is a monotone step function of ``sum`` with ``2**a_bit - 1`` steps: it is
given exactly by integer thresholds, one set per output channel.

``Requant`` is the contract between the hardware (rtl/sfp.v, the program builders, the
reference model) and the network flow that derives the thresholds from a trained model:

    ascending channel:   level = #{k : sum >= thresholds[c, k]}
    descending channel:  level = #{k : sum <= thresholds[c, k]}

A threshold is a signed integer of ``THRESHOLD_BW = acc_bw + 1`` bits, one bit wider than
an SFP sum, so that "always" (``-2**acc_bw``) and "never" (``2**acc_bw - 1``) are both
expressible for any sum that fits ``acc_bw``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import ModelError
from model.hwconfig import CONFIG

__all__ = ["LEVELS", "THRESHOLD_BW", "Requant"]

LEVELS = (1 << CONFIG.lane_bits) - 1         # 15: activation levels 0..15 of a 4-bit lane
THRESHOLD_BW = CONFIG.acc_bw + 1       # 21 bits, signed


@dataclass(frozen=True)
class Requant:
    """Per-output-channel thresholds of the SFP's requantization.

    thresholds: int64 (oc, levels), signed, each in [-2**(THRESHOLD_BW-1), 2**(THRESHOLD_BW-1)).
    descending: bool (oc,): the level falls as the sum grows (a negative BatchNorm scale).
    ``levels`` is LEVELS (15) for 4-bit activations. Raises ModelError on a bad shape or range.
    """

    thresholds: np.ndarray
    descending: np.ndarray

    def __post_init__(self):
        t = np.asarray(self.thresholds)
        d = np.asarray(self.descending)
        if t.ndim != 2 or t.shape[1] < 1 or not np.issubdtype(t.dtype, np.integer):
            raise ModelError(f"requant thresholds: expected integers of shape (oc, levels), got {t.dtype} {t.shape}")
        if d.shape != (t.shape[0],) or d.dtype != np.bool_:
            raise ModelError(f"requant descending: expected bool of shape ({t.shape[0]},), got {d.dtype} {d.shape}")
        lo, hi = -(1 << (THRESHOLD_BW - 1)), (1 << (THRESHOLD_BW - 1)) - 1
        if t.size and (t.min() < lo or t.max() > hi):
            raise ModelError(f"requant thresholds: values {t.min()}..{t.max()} do not fit {THRESHOLD_BW} signed bits")
        object.__setattr__(self, "thresholds", t.astype(np.int64))
        object.__setattr__(self, "descending", d)

    @property
    def out_channels(self) -> int:
        return self.thresholds.shape[0]

    @property
    def levels(self) -> int:
        return self.thresholds.shape[1]

    def apply(self, sums) -> np.ndarray:
        """Levels of integer conv outputs: sums (oc, ...) int -> int64 (oc, ...) in 0..levels."""
        s = np.asarray(sums, dtype=np.int64)
        if s.ndim < 1 or s.shape[0] != self.out_channels:
            raise ModelError(f"requant: sums of shape {s.shape} do not have {self.out_channels} channels first")
        t = self.thresholds.reshape(self.thresholds.shape + (1,) * (s.ndim - 1))   # (oc, levels, 1...)
        up = (s[:, None] >= t).sum(axis=1)
        down = (s[:, None] <= t).sum(axis=1)
        d = self.descending.reshape((-1,) + (1,) * (s.ndim - 1))
        return np.where(d, down, up).astype(np.int64)
