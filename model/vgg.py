"""4-bit quantization-aware VGG16 for CIFAR-10, in two variants.

``vgg16_quant``          the classic VGG16 (13 conv layers, all 4-bit).
``vgg16_quant_project``  the squeezed project variant of the course: the
                         256 -> 512 conv of block 4 becomes 256 -> 8, 8 -> 8
                         (no BatchNorm after it), 8 -> 512. The 8 -> 8 layer at
                         ``features.27`` (4x4 map, 6x6 padded) is the reference
                         layer of the accelerator.

The project variant's indices follow the layer listing the design brief fixes
(features.29 conv(8,512), 30 BatchNorm, 31 ReLU, 32 MaxPool, ..., 43 AvgPool),
which is the listing printed in notebook 000. Notebook 003's printout of its
"part1" model has no BatchNorm after features.29 (its AvgPool is at 42), so a
checkpoint of that exact model does not load here (missing features.30.*).

Layer specs (``resolve_layer``) accept ``"features.27"``, ``"27"`` (index into
``features``) or ``"convN"`` with N the 0-based position among the model's
QuantConv2d layers (``conv0`` is the first conv; in the project variant
``conv8`` is ``features.27``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .errors import LayerError, ModelError
from .quant import QuantConv2d

__all__ = [
    "VGG_quant",
    "VGG16_quant",
    "VGG16_quant_project",
    "MODELS",
    "DEFAULT_LAYER",
    "build_model",
    "conv_layers",
    "resolve_layer",
]

CFG_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# "R": a conv followed by ReLU only (no BatchNorm).
CFG_VGG16_PROJECT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 8, (8, "R"), 512, "M", 512, 512, 512, "M"]


class VGG_quant(nn.Module):  # noqa: N801 - printed name kept from the course code
    """VGG features of QuantConv2d(3x3, pad 1) [+BN] + ReLU blocks, then Linear(512, 10)."""

    def __init__(self, cfg, num_classes: int = 10, w_bit: int = 4, a_bit: int = 4):
        super().__init__()
        self.w_bit = w_bit
        self.a_bit = a_bit
        self.features = self._make_layers(cfg, w_bit, a_bit)
        self.classifier = nn.Linear(512, num_classes)

    @staticmethod
    def _make_layers(cfg, w_bit: int, a_bit: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        in_channels = 3
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            batch_norm = True
            if isinstance(item, tuple):
                item, flag = item
                batch_norm = flag != "R"
            layers.append(QuantConv2d(in_channels, item, kernel_size=3, padding=1, w_bit=w_bit, a_bit=a_bit))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU(inplace=True))
            in_channels = item
        layers.append(nn.AvgPool2d(kernel_size=1, stride=1))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        out = out.view(out.size(0), -1)
        return self.classifier(out)

    def show_params(self) -> None:
        for m in self.modules():
            if isinstance(m, QuantConv2d):
                m.show_params()


def VGG16_quant(**kwargs) -> VGG_quant:  # noqa: N802
    """Classic CIFAR-10 VGG16 with every conv 4-bit quantized."""
    return VGG_quant(CFG_VGG16, **kwargs)


def VGG16_quant_project(**kwargs) -> VGG_quant:  # noqa: N802
    """Squeezed project variant: features.24 conv(256,8), 27 conv(8,8)+ReLU, 29 conv(8,512)."""
    return VGG_quant(CFG_VGG16_PROJECT, **kwargs)


MODELS = {
    "vgg16_quant": VGG16_quant,
    "vgg16_quant_project": VGG16_quant_project,
}

# The layer a capture/export uses when none is named.
#  - project variant: the 8 -> 8 reference layer (4x4 output, 9,216 MACs).
#  - classic VGG16: features.3, the 64 -> 64, 32x32 layer (the "large layer" of the
#    README's benchmark table; its input is a ReLU output, so unsigned activations lose nothing,
#    unlike features.0 whose input is the signed normalized image).
DEFAULT_LAYER = {
    "vgg16_quant_project": "features.27",
    "vgg16_quant": "features.3",
}


def build_model(name: str = "vgg16_quant_project", seed: int | None = None, **kwargs) -> VGG_quant:
    """Build a model by name; ``seed`` makes the initialization reproducible."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    if seed is not None:
        torch.manual_seed(int(seed))
    return MODELS[name](**kwargs)


def conv_layers(model: nn.Module) -> list[tuple[str, QuantConv2d]]:
    """Every QuantConv2d of the model as (qualified name, module), in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QuantConv2d)]


def resolve_layer(model: nn.Module, spec) -> tuple[str, QuantConv2d]:
    """Find a QuantConv2d by ``"features.27"``, ``"27"`` / ``27`` or ``"conv8"`` (0-based)."""
    convs = conv_layers(model)
    by_name = dict(convs)
    choices = ", ".join(name for name, _ in convs)
    given = str(spec)
    text = given.strip()

    def fail(reason: str) -> LayerError:
        return LayerError(
            f"layer {given!r}: {reason}; valid layers: {choices} "
            f"(or a features index, or conv0..conv{len(convs) - 1})"
        )

    if isinstance(spec, int) or text.isdigit():
        text = f"features.{int(text)}"
    if text in by_name:
        return text, by_name[text]
    low = text.lower()
    if low.startswith("conv") and low[4:].isdigit():
        k = int(low[4:])
        if k < len(convs):
            return convs[k]
        raise fail(f"there are only {len(convs)} conv layers")
    modules = dict(model.named_modules())
    if text in modules:
        raise fail(f"{text} is a {type(modules[text]).__name__}, not a QuantConv2d")
    raise fail("no such layer")
