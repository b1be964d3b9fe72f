"""Exact integer tensors of one QuantConv2d, taken from a real forward pass.

``capture_layer`` hooks the chosen layer, runs the model on a batch of images
and returns, for one image, the unsigned activation integers ``x_int``, the
signed weight integers ``w_int``, the integer convolution ``out_int`` (before
ReLU) and the layer's own float output, with the check that
``out_float == out_int * act_delta * w_delta`` (README section "Numerics").

The array takes unsigned activations. With the course quantizer (the default) a layer
whose input can be negative (features.0: the normalized image) gets negative levels;
such a capture is refused with one line, unless the model runs the unsigned quantizer
(``--act-quant unsigned``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import LayerError, ModelError
from .options import CIFAR10_TEST_IMAGES
from .vgg import build_model, conv_layers, default_layer, resolve_layer

__all__ = ["ConvChannels", "LayerCapture", "capture_layer", "calibrate_act_alphas", "default_capture", "exact_fp32", "INTEGRAL_TOL"]

INTEGRAL_TOL = 1e-3


class ConvChannels:
    """in_channels / out_channels of a class holding integer conv weights ``w_int`` [OC, IC, kh, kw]."""

    w_int: np.ndarray

    @property
    def in_channels(self) -> int:
        return int(self.w_int.shape[1])

    @property
    def out_channels(self) -> int:
        return int(self.w_int.shape[0])


@dataclass
class LayerCapture(ConvChannels):
    """One layer's tensors for one image (numpy, channel-first, no batch axis)."""

    layer_name: str
    x_int: np.ndarray  # uint8 [IC, H, W], 0 .. 2**a_bit - 1
    w_int: np.ndarray  # int8 [OC, IC, kh, kw], -(2**(w_bit-1)-1) .. 2**(w_bit-1)-1
    act_delta: float
    w_delta: float
    out_int: np.ndarray  # int32 [OC, Ho, Wo], integer conv before ReLU
    out_float: np.ndarray  # float32 [OC, Ho, Wo], the module's own output
    recovery_error: float  # mean |out_float - out_int * act_delta * w_delta|
    a_bit: int
    w_bit: int
    stride: int
    padding: int

    @property
    def out_recovered(self) -> np.ndarray:
        """``out_int * act_delta * w_delta`` as float64."""
        return self.out_int.astype(np.float64) * self.act_delta * self.w_delta


@contextmanager
def exact_fp32():
    """Turn TF32 off for the duration (CUDA convs default to TF32, which would
    break the 1e-5 recovery check); no effect on the CPU."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    old = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = False
    matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = old


def _to_int(values: torch.Tensor, what: str, layer: str, lo: int, hi: int) -> torch.Tensor:
    rounded = values.round()
    err = (values - rounded).abs().max().item() if values.numel() else 0.0
    if err >= INTEGRAL_TOL:
        raise ModelError(f"{layer}: {what} is not integral (max distance to an integer {err:.3g})")
    if values.numel():
        vmin, vmax = int(rounded.min().item()), int(rounded.max().item())
        if vmin < lo or vmax > hi:
            raise ModelError(f"{layer}: {what} out of range {lo}..{hi} (found {vmin}..{vmax})")
    return rounded


def _single(v, what: str, layer: str) -> int:
    v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if isinstance(v[0], str) or v[0] != v[1]:
        raise LayerError(f"{layer}: only square {what} is supported, got {v}")
    return int(v[0])


def capture_layer(model: nn.Module, layer_spec, images: torch.Tensor, index: int = 0) -> LayerCapture:
    """Run ``model`` (eval, no grad) on ``images`` and capture image ``index`` at a layer."""
    name, conv = resolve_layer(model, layer_spec)
    if conv.bias is not None:
        raise LayerError(f"{name}: has a bias; integer capture needs bias=False")
    if conv.groups != 1:
        raise LayerError(f"{name}: grouped convolution is not supported")
    stride = _single(conv.stride, "stride", name)
    padding = _single(conv.padding, "padding", name)
    _single(conv.dilation, "dilation", name)
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise ModelError(f"images must be [N, 3, H, W], got shape {tuple(images.shape)}")
    if not 0 <= index < images.shape[0]:
        raise ModelError(f"image index {index} out of range 0..{images.shape[0] - 1}")

    seen: dict[str, torch.Tensor] = {}

    def pre_hook(_mod, inputs):
        seen["x"] = inputs[0][index : index + 1].detach().clone()

    def post_hook(_mod, _inputs, output):
        # Clone: the ReLU(inplace=True) after the layer would overwrite it.
        seen["y"] = output[index : index + 1].detach().clone()

    h1 = conv.register_forward_pre_hook(pre_hook)
    h2 = conv.register_forward_hook(post_hook)
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad(), exact_fp32():
            model(images.to(device))
            x = seen["x"]
            act_q = conv.quantize_input(x)
            weight_q = conv.weight_q if conv.weight_q is not None else conv.quantize_weight()
    finally:
        h1.remove()
        h2.remove()
        model.train(was_training)

    act_delta, w_delta = conv.act_delta, conv.w_delta
    a_max = 2 ** conv.a_bit - 1
    w_max = conv.weight_quant.levels
    x_levels = (act_q / act_delta).double().cpu()[0]
    x_min = int(x_levels.round().min().item()) if x_levels.numel() else 0
    if x_min < 0:
        raise LayerError(f"{name}: its input activations are signed (levels {x_min}..{int(x_levels.round().max())}, "
                         f"{conv.act_quant} quantizer) and the array takes unsigned 0..{a_max}: capture another "
                         f"layer, or run the unsigned quantizer (--act-quant unsigned)")
    x_int = _to_int(x_levels, "x_int", name, 0, a_max)
    w_int = _to_int((weight_q / w_delta).double().cpu(), "w_int", name, -w_max, w_max)
    # float64 is exact here: |sum| <= IC*kh*kw*15*7, far below 2**53.
    out_int = F.conv2d(x_int.unsqueeze(0), w_int, None, stride, padding)[0].round()
    out_float = seen["y"][0].float().cpu()
    recovery = (out_float.double() - out_int * act_delta * w_delta).abs().mean().item()
    return LayerCapture(
        layer_name=name,
        x_int=x_int.numpy().astype(np.uint8),
        w_int=w_int.numpy().astype(np.int8),
        act_delta=float(act_delta),
        w_delta=float(w_delta),
        out_int=out_int.numpy().astype(np.int32),
        out_float=out_float.numpy().astype(np.float32),
        recovery_error=float(recovery),
        a_bit=int(conv.a_bit),
        w_bit=int(conv.w_bit),
        stride=stride,
        padding=padding,
    )


def calibrate_act_alphas(model: nn.Module, images: torch.Tensor, percentile: float = 99.9,
                         batchnorm: bool = True) -> dict[str, float]:
    """Set every QuantConv2d's ``act_alpha`` to a percentile of its positive inputs.

    For an untrained (seeded) model, so that activations spread over the whole
    0..2**a_bit-1 range. One forward pass calibrates all layers in order: each
    layer's threshold is set (by a pre-hook) before it quantizes, so later
    layers see the already-calibrated activations.

    With ``batchnorm`` (default) the BatchNorm running statistics are also set
    to the statistics of ``images`` in the same pass: an untrained model's
    running stats (mean 0, var 1) do not normalize anything in eval mode, and
    activations would grow by orders of magnitude from layer to layer.

    Returns {layer name: alpha}.
    """
    if not 0 < percentile <= 100:
        raise ModelError(f"percentile must be in (0, 100], got {percentile}")
    alphas: dict[str, float] = {}
    handles = []

    def make_hook(name):
        def hook(mod, inputs):
            x = inputs[0].detach().float()
            pos = x[x > 0].flatten()
            if pos.numel() == 0:
                return
            if pos.numel() > 4_000_000:  # torch.quantile's input limit is 16M
                pos = pos[torch.linspace(0, pos.numel() - 1, 4_000_000, device=pos.device).long()]
            alpha = torch.quantile(pos, percentile / 100.0).item()
            if alpha > 0:
                mod.act_alpha.data.fill_(alpha)
                alphas[name] = alpha

        return hook

    for name, conv in conv_layers(model):
        handles.append(conv.register_forward_pre_hook(make_hook(name)))
    was_training = model.training
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if batchnorm else []
    momenta = [bn.momentum for bn in bns]
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: after one batch, exactly its stats
            bn.train()
        device = next(model.parameters()).device
        with torch.no_grad(), exact_fp32():
            model(images.to(device))
    finally:
        for h in handles:
            h.remove()
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        model.train(was_training)
    return alphas


def default_capture(
    model_name=None,
    layer=None,
    checkpoint=None,
    data=None,
    image: int = 0,
    seed: int = 0,
    calib_images: int = 16,
    percentile: float = 99.0,
    act_quant: str | None = None,
    echo=None,
) -> LayerCapture:
    """Capture a layer with sensible defaults.

    Without ``checkpoint``: builds ``model_name`` (a MODELS name or layout config; default
    ``vgg16_quant_project``), seeded, and calibrates the activation thresholds (and BatchNorm
    statistics) on ``calib_images`` synthetic images at ``percentile`` (99.0: for the default
    8 -> 8 layer this fills x_int up to the top levels, so the unsigned values 8..15 are
    exercised). With ``checkpoint``: loads it into ``model_name`` when given, else into the
    model the checkpoint shows. ``act_quant``: the activation quantizer (default: the
    checkpoint's, else ``"course"``).
    ``echo`` (e.g. print) gets one line naming the model and its quantizer, and one naming
    the image. The image is test image ``image`` of CIFAR-10 in ``data`` when given, else synthetic image ``image`` (``synthetic_images(seed=seed)``). The
    layer defaults to ``default_layer(model)``.
    """
    from .checkpoint import model_from_checkpoint
    from .data import CLASSES, load_test_image, normalize, synthetic_images

    if not 0 <= image < CIFAR10_TEST_IMAGES:     # before any model or data is loaded
        raise ModelError(f"image index must be in 0..{CIFAR10_TEST_IMAGES - 1}, got {image}")
    if checkpoint is not None:
        model, _, model_name = model_from_checkpoint(checkpoint, model_name, act_quant)
    else:
        model = build_model(model_name or "vgg16_quant_project", seed=seed, act_quant=act_quant or "course")
    if layer is None:
        layer = default_layer(model)
    resolve_layer(model, layer)  # fail early, with the list of layers
    if echo is not None:
        echo(f"model        {model.layout.label}, activation quantizer {model.act_quant}")
    if checkpoint is None:
        calib, _ = synthetic_images(calib_images, seed=seed + 1000)
        calibrate_act_alphas(model, calib, percentile)
    if data is not None:
        x_u8, label, source = load_test_image(data, image)
        if echo is not None:
            echo(f"image        test image {image}: {source} (label {label}, {CLASSES[label]})")
        x = normalize(x_u8.unsqueeze(0))
    else:
        x, _ = synthetic_images(image + 1, seed=seed)
        x = x[image : image + 1]
    return capture_layer(model, layer, x, index=0)
