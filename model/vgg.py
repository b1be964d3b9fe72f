"""4-bit quantization-aware VGG16 for CIFAR-10 in every layout of the course.

A *layout* is the list the features are built from: a conv channel count (QuantConv2d
3x3 pad 1, then BatchNorm unless marked, then ReLU), ``M`` (MaxPool 2x2) or ``I``
(Identity), plus the bit widths. Named layouts (``--model NAME``, any case):

``vgg16_quant``                the classic VGG16 (13 convs, all with BatchNorm).
``vgg16_quant_project``        notebook 000's listing: the 256 -> 512 conv of block 4
                               becomes 256 -> 8 (BN), 8 -> 8 (no BN), 8 -> 512 (BN);
                               features.27 (8 -> 8, 4x4 map) is the accelerator's
                               reference layer.
``vgg16_quant_project_part1``  notebook 003's ``VGG16_quant_project_part1``: as 000
                               without BatchNorm after the 8 -> 512 conv (the course
                               code drops BN on every conv whose input has 8 or 16
                               channels), so its AvgPool is at features.42.
``vgg16_quant_project_part2``  course part 2: the same with a 16-channel squeeze and
                               2-bit activations (4-bit weights).

A layout can also be given as a config string (``parse_layout``): comma-separated
tokens, ``C`` a conv with C output channels (1..MAX_CHANNELS) + BN + ReLU, ``Cn`` the same without BN,
``M`` max-pool, ``I`` identity, then optional ``;a_bit=A;w_bit=W``. 000's listing is
``64,64,M,128,128,M,256,256,256,M,8,8n,512,M,512,512,512,M``.

``layout_from_state_dict`` reads a layout back from a checkpoint's keys and shapes.

Layer specs (``resolve_layer``) accept ``"features.27"``, ``"27"`` (index into
``features``) or ``"convN"`` with N the 0-based position among the model's
QuantConv2d layers (``conv0`` is the first conv; in the project layouts
``conv8`` is ``features.27``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from .errors import LayerError, ModelError
from .quant import QuantConv2d

__all__ = [
    "Layout",
    "VGG_quant",
    "VGG16_quant",
    "VGG16_quant_project",
    "MODELS",
    "IMAGE_SIZE",
    "parse_layout",
    "resolve_model",
    "layout_from_state_dict",
    "build_model",
    "default_layer",
    "conv_layers",
    "resolve_layer",
]

IMAGE_SIZE = 32


@dataclass(frozen=True)
class Layout:
    """What a VGG_quant is built from.

    ``items``: ``"M"``, ``"I"`` or ``(out_channels, batch_norm)`` per block, in order;
    ``name``: the MODELS name, or None for a layout given as a config or read from keys.
    """

    items: tuple
    a_bit: int = 4
    w_bit: int = 4
    name: str | None = None

    @property
    def config(self) -> str:
        """The config string (``parse_layout`` reads it back)."""
        tokens = [t if isinstance(t, str) else f"{t[0]}{'' if t[1] else 'n'}" for t in self.items]
        return ",".join(tokens) + f";a_bit={self.a_bit};w_bit={self.w_bit}"

    @property
    def label(self) -> str:
        """Its name when it has one, else its config string."""
        return self.name or self.config

    def same_network(self, other: Layout) -> bool:
        """Same computation: the same items once Identity slots are dropped, the same bit widths."""
        def core(layout):
            return tuple(t for t in layout.items if t != "I"), layout.a_bit, layout.w_bit
        return core(self) == core(other)


def _cfg(channels: list, no_bn_inputs=()) -> tuple:
    """The course's cfg list -> layout items; a conv whose input channel count is in
    ``no_bn_inputs`` gets no BatchNorm (as the course's _make_layers does)."""
    items, in_channels = [], 3
    for c in channels:
        if c == "M":
            items.append("M")
            continue
        items.append((c, in_channels not in no_bn_inputs))
        in_channels = c
    return tuple(items)


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _squeezed(width: int) -> list:
    """VGG16 with block 4's 256 -> 512 -> 512 -> 512 convs as 256 -> width -> width -> 512."""
    return _VGG16[:10] + [width, width, 512] + _VGG16[13:]


MODELS = {
    "vgg16_quant": Layout(_cfg(_VGG16), name="vgg16_quant"),
    # 000's listing: only the 8 -> 8 conv (item 11, features.27) lacks BatchNorm.
    "vgg16_quant_project": Layout(tuple((t[0], False) if i == 11 else t for i, t in enumerate(_cfg(_squeezed(8)))),
                                  name="vgg16_quant_project"),
    "vgg16_quant_project_part1": Layout(_cfg(_squeezed(8), (8, 16)), name="vgg16_quant_project_part1"),
    "vgg16_quant_project_part2": Layout(_cfg(_squeezed(16), (8, 16)), a_bit=2, w_bit=4,
                                        name="vgg16_quant_project_part2"),
}


class VGG_quant(nn.Module):  # noqa: N801 - printed name kept from the course code
    """VGG features of QuantConv2d(3x3, pad 1) [+BN] + ReLU blocks, then Linear(C_last * s * s, 10).

    ``layout``: a :class:`Layout`. ``act_quant``: the activation quantizer of every conv
    (``"course"``, the notebooks', or ``"unsigned"``; see :mod:`model.quant`).
    """

    def __init__(self, layout: Layout, num_classes: int = 10, act_quant: str = "course"):
        super().__init__()
        self.layout = layout
        self.w_bit = layout.w_bit
        self.a_bit = layout.a_bit
        self.features, channels = self._make_layers(layout, act_quant)
        pools = sum(t == "M" for t in layout.items)
        side = IMAGE_SIZE >> pools
        if side < 1:
            raise ModelError(f"layout {layout.label}: {pools} max-pools leave nothing of a "
                             f"{IMAGE_SIZE}x{IMAGE_SIZE} image")
        self.classifier = nn.Linear(channels * side * side, num_classes)

    @staticmethod
    def _make_layers(layout: Layout, act_quant: str) -> tuple[nn.Sequential, int]:
        layers: list[nn.Module] = []
        in_channels = 3
        for item in layout.items:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            if item == "I":
                layers.append(nn.Identity())
                continue
            channels, batch_norm = item
            layers.append(QuantConv2d(in_channels, channels, kernel_size=3, padding=1, w_bit=layout.w_bit,
                                      a_bit=layout.a_bit, act_quant=act_quant))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = channels
        layers.append(nn.AvgPool2d(kernel_size=1, stride=1))
        return nn.Sequential(*layers), in_channels

    @property
    def act_quant(self) -> str:
        """The activation quantizer of the first conv (``set_act_quant`` sets every conv's)."""
        return conv_layers(self)[0][1].act_quant

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
    return VGG_quant(MODELS["vgg16_quant"], **kwargs)


def VGG16_quant_project(**kwargs) -> VGG_quant:  # noqa: N802
    """Notebook 000's project variant: features.24 conv(256,8), 27 conv(8,8)+ReLU, 29 conv(8,512)+BN."""
    return VGG_quant(MODELS["vgg16_quant_project"], **kwargs)


def _named(layout: Layout) -> Layout:
    """The MODELS entry with exactly this layout and these bit widths, else the layout itself."""
    for named in MODELS.values():
        if (named.items, named.a_bit, named.w_bit) == (layout.items, layout.a_bit, layout.w_bit):
            return named
    return layout


MAX_CHANNELS = 4096   # 8x VGG16's widest conv: a larger one is a typo, and its weights alone would be 600 MB+


def parse_layout(text: str) -> Layout:
    """A config string (module docstring) -> Layout; ModelError (one line) naming the bad token."""
    parts = [p.strip() for p in str(text).split(";")]
    items = []
    for token in (t.strip() for t in parts[0].split(",")):
        m = re.fullmatch(r"(\d+)([nN]?)", token)
        if token.upper() in ("M", "I"):
            items.append(token.upper())
        elif m and 0 < int(m.group(1)) <= MAX_CHANNELS:
            items.append((int(m.group(1)), not m.group(2)))
        elif m:
            raise ModelError(f"layout {text!r}: {token!r}: a conv has 1..{MAX_CHANNELS} output channels")
        else:
            raise ModelError(f"layout {text!r}: bad token {token!r} (a channel count like 64, 8n for no "
                             f"BatchNorm, M for max-pool, I for identity)")
    if not any(isinstance(t, tuple) for t in items):
        raise ModelError(f"layout {text!r}: no conv layer")
    bits, given = {"a_bit": 4, "w_bit": 4}, set()
    for opt in filter(None, parts[1:]):
        key, _, value = opt.partition("=")
        key = key.strip().lower()
        low = 2 if key == "w_bit" else 1
        if key not in bits or not value.strip().isdigit() or not low <= int(value) <= 8:
            raise ModelError(f"layout {text!r}: bad option {opt!r} (a_bit=1..8, w_bit=2..8)")
        if key in given:
            raise ModelError(f"layout {text!r}: {key} given twice")
        given.add(key)
        bits[key] = int(value)
    return _named(Layout(tuple(items), **bits))


def resolve_model(spec) -> Layout:
    """``--model``: a Layout, a MODELS name (any case) or a config string -> Layout."""
    if isinstance(spec, Layout):
        return spec
    text = str(spec).strip()
    if text.lower() in MODELS:
        return MODELS[text.lower()]
    if "," in text or ";" in text or text[:1].isdigit():    # one-conv layouts ('8;a_bit=2') too
        return parse_layout(text)
    raise ModelError(f"unknown model {text!r}; valid models: {', '.join(MODELS)}, "
                     f"or a layout like '64,64,M,...,8,8n,512,M,512,512,512,M;a_bit=4'")


def build_model(name="vgg16_quant_project", seed: int | None = None, act_quant: str = "course") -> VGG_quant:
    """Build a model from a name, config string or Layout; ``seed`` makes the initialization reproducible."""
    layout = resolve_model(name)
    if seed is not None:
        torch.manual_seed(int(seed))
    return VGG_quant(layout, act_quant=act_quant)


def layout_from_state_dict(state_dict: dict) -> Layout:
    """The layout a (cleaned) VGG_quant state_dict was saved from, read from its keys and shapes.

    Convs are the 4-D ``features.N.weight`` entries, BatchNorms the ``features.N.running_mean``
    ones; the parameter-free slots are a ReLU after each conv (+BN), then max-pools, then
    identities. Max-pools are placed so that the classifier's input size fits:
    ``log2(32 / side)`` in all, one after the last conv, the others in the gaps that have
    a spare slot (at the classic VGG16 places when there are more such gaps). A layout
    that computes the same network as a named one gets its bit widths (part 2: a_bit=2).
    Raises ModelError (one line) when the keys are not those of a VGG_quant.
    """
    convs, bns = {}, set()
    for key, t in state_dict.items():
        m = re.fullmatch(r"features\.(\d+)\.(\w+)", key)
        if not m:
            continue
        idx, leaf = int(m.group(1)), m.group(2)
        if leaf == "weight" and t.dim() == 4:
            convs[idx] = tuple(t.shape)
        elif leaf == "running_mean":
            bns.add(idx)
    if not convs:
        raise ModelError("no QuantConv2d weights 'features.N.weight'")
    order = sorted(convs)
    in_channels = 3
    for i in order:
        if convs[i][1:] != (in_channels, 3, 3):
            raise ModelError(f"'features.{i}.weight' has shape {convs[i]}, not a 3x3 conv on {in_channels} channels")
        in_channels = convs[i][0]
    cls = state_dict.get("classifier.weight")
    if cls is None or cls.dim() != 2:
        raise ModelError("no 'classifier.weight' (Linear) entry")
    side = math.isqrt(int(cls.shape[1]) // in_channels)
    ratio = IMAGE_SIZE // side if side else 0
    if side < 1 or side * side * in_channels != cls.shape[1] or ratio * side != IMAGE_SIZE or ratio & (ratio - 1):
        raise ModelError(f"'classifier.weight' takes {cls.shape[1]} inputs, which {in_channels} channels "
                         f"pooled from {IMAGE_SIZE}x{IMAGE_SIZE} cannot give")
    pools = ratio.bit_length() - 1
    spare = []  # free slots after conv k: all but its BN and its ReLU
    for k, i in enumerate(order[:-1]):
        spare.append(order[k + 1] - i - 2 - (i + 1 in bns))
        if spare[-1] < 0:
            raise ModelError(f"features.{i} and features.{order[k + 1]} leave no room for a ReLU between them")
    gaps = [k for k, n in enumerate(spare) if n > 0]
    inner = max(pools - 1, 0)
    if len(gaps) > inner:
        classic = [k for k in (1, 3, 6, 9) if k in gaps] if len(order) == 13 else []
        gaps = classic if len(classic) == inner else gaps[:inner]
    items = ["I"] * order[0]
    for k, i in enumerate(order):
        items.append((convs[i][0], i + 1 in bns))
        if k < len(spare):
            items += ["M"] * (k in gaps) + ["I"] * (spare[k] - (k in gaps))
    items += ["M"] * (pools - len(gaps))
    layout = Layout(tuple(items))
    for named in MODELS.values():
        same_bits = replace(layout, a_bit=named.a_bit, w_bit=named.w_bit)
        if named.same_network(same_bits):
            return _named(same_bits)
    return layout


def default_layer(model: nn.Module) -> str:
    """The layer capture/export use when none is named: among the convs after the first,
    the first with the fewest input channels. That is features.27 (the squeezed 8 -> 8
    layer, 4x4 output) in the project layouts, and features.3 (64 -> 64, 32x32) in the
    classic VGG16: both take a ReLU output, unlike features.0 (the signed normalized image)."""
    convs = conv_layers(model)
    return min(convs[1:] or convs, key=lambda nc: nc[1].in_channels)[0]


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
