"""Layers for the core tests: from the PyTorch model (capture) or random integers.

A case is an .npz the pytest side writes and the cocotb side reads: x_int, w_int, the
schedule/dataflow to run, and for model layers the deltas and the layer's own float
output, so the bench can also check the recovered float output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from model.tiling import random_layer


def model_case(seed: int = 0, model_name: str = "vgg16_quant_project", layer: str | None = None,
               checkpoint: str | None = None, data: str | None = None, image: int = 0) -> dict:
    from model.capture import default_capture  # torch is imported only where a model is needed

    return case_from_capture(default_capture(model_name=model_name, layer=layer, checkpoint=checkpoint,
                                             data=data, image=image, seed=seed))


def case_from_capture(cap) -> dict:
    """A case from a model.capture.LayerCapture."""
    return {"x_int": cap.x_int, "w_int": cap.w_int, "act_delta": cap.act_delta,
            "w_delta": cap.w_delta, "out_float": cap.out_float, "layer": cap.layer_name}


def random_case(ic: int, oc: int, h: int, w: int, seed: int, a_bit: int = 4) -> dict:
    """Activations 0..2**a_bit-1 (a_bit 2: a layer for the 2-bit mode), weights -7..7."""
    x_int, w_int = random_layer(np.random.default_rng(seed), ic, oc, h, w, a_bit=a_bit)
    bits = "" if a_bit == 4 else f" {a_bit}-bit"
    return {"x_int": x_int.astype(np.uint8), "w_int": w_int.astype(np.int8),
            "layer": f"random{bits} {ic}->{oc} {h}x{w} seed {seed}"}


def saturating_case(weight: int, ic: int = 64, oc: int = 8, size: int = 4) -> dict:
    """All activations 15, all weights `weight`: the largest sums a layer can make.
    64 -> 8 with +7 gives 64 x 9 x 105 = 60,480 at the interior pixels (40,320 at edges):
    more than a 16-bit psum or sfp_out lane holds, but within the SFP's 20 bits. With -7
    the sums are as negative, and ReLU must clip them to 0."""
    return {"x_int": np.full((ic, size, size), 15, dtype=np.uint8),
            "w_int": np.full((oc, ic, 3, 3), weight, dtype=np.int8),
            "layer": f"{ic}->{oc} {size}x{size} all-15 activations x all-{weight:+d} weights"}


#: the sum of output channel c at every pixel of relu_edge_case
RELU_EDGE_TARGETS = [-1, 0, 1, -2, -1, 2, -7, 7]


def relu_edge_case(size: int = 4) -> dict:
    """8 -> 8, every sum on the ReLU edge: output channel c sums to TARGETS[c] at every
    pixel (-1 and 0 among them), built from activations 1 and the centre tap, plus a
    corner-tap pair (+3, -3) that cancels, so the sums go through several kij."""
    x = np.ones((8, size, size), dtype=np.uint8)
    w = np.zeros((8, 8, 3, 3), dtype=np.int8)
    w[:, 0, 1, 1] = RELU_EDGE_TARGETS
    w[:, 1, 0, 0], w[:, 2, 0, 0] = 3, -3
    return {"x_int": x, "w_int": w, "layer": f"8->8 {size}x{size} sums {RELU_EDGE_TARGETS} (ReLU edge)"}


def int_conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The exact integer conv (3x3, stride 1, padding 1) by torch.nn.functional.conv2d in
    float64, which holds these sums exactly: the reference independent of model.tiling."""
    import torch
    import torch.nn.functional as F

    out = F.conv2d(torch.from_numpy(np.asarray(x, dtype=np.float64))[None],
                   torch.from_numpy(np.asarray(w, dtype=np.float64)), padding=1)
    return out[0].numpy().astype(np.int64)


def quantile_requant(sums: np.ndarray, rng: np.random.Generator):
    """A model.requant.Requant whose thresholds are the 1/16 .. 15/16 quantiles of each
    channel's sums (so most are sums that occur: the threshold edge is hit), nudged by 0 or
    +1; every third channel descending."""
    from model.requant import LEVELS, Requant

    flat = sums.reshape(sums.shape[0], -1)
    q = np.quantile(flat, np.arange(1, LEVELS + 1) / (LEVELS + 1), axis=1).T        # (oc, 15)
    t = np.round(q).astype(np.int64) + rng.integers(0, 2, q.shape)
    desc = np.arange(sums.shape[0]) % 3 == 2
    t[desc] = t[desc][:, ::-1]
    return Requant(t, desc)


def network_case(x_int: np.ndarray, w_int: np.ndarray, requant: bool, seed: int, layer: str) -> dict:
    """A layer for the "network" schedule: with requant, quantile thresholds of its integer
    conv; "expected" is the independent reference (int_conv, then Requant.apply)."""
    sums = int_conv(x_int, w_int)
    case = {"x_int": x_int, "w_int": w_int, "expected": sums, "layer": layer}
    if requant:
        rq = quantile_requant(sums, np.random.default_rng(seed))
        case.update(thresholds=rq.thresholds, descending=rq.descending, expected=rq.apply(sums))
    return case


def save_case(path: Path, case: dict, schedule: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, schedule=schedule, **case)
    return path


def load_case(path: str) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
