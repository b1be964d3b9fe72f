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


def random_case(ic: int, oc: int, h: int, w: int, seed: int) -> dict:
    x_int, w_int = random_layer(np.random.default_rng(seed), ic, oc, h, w)
    return {"x_int": x_int.astype(np.uint8), "w_int": w_int.astype(np.int8),
            "layer": f"random {ic}->{oc} {h}x{w} seed {seed}"}


def save_case(path: Path, case: dict, schedule: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, schedule=schedule, **case)
    return path


def load_case(path: str) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
