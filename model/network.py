"""The whole network as integers: SFP thresholds from the model, the integer reference, the
PyTorch comparison, and one image through a conv runner (the RTL core).

``Network.from_model(model)`` walks ``model.features``. Every QuantConv2d becomes a
:class:`ConvStage`: its exact integer weights ``w_int`` (-7..7), its input size, the
number of 2x2 max-pools between its output and the next conv, and, for every conv but the
last, the :class:`~model.requant.Requant` thresholds that turn its integer output into the
next conv's input levels.

The float pipeline (what the thresholds reproduce exactly). For an integer conv output
``s`` of channel ``c`` of conv k, with conv k's own ``act_delta`` and ``w_delta``
(``model.quant.QuantConv2d``):

    v     = float32(float64(s) * act_delta * w_delta)          (left to right, in float64)
    y     = the modules after conv k up to its first MaxPool, the model's own, eval mode,
            float32 in torch: BatchNorm2d (running statistics) when present, ReLU
    level = round(next.quantize_input(y) / next.act_delta)      next = conv k+1: the
            course quantizer clamp(y / act_alpha, max=1), rounded to 1/15 steps

Each step is a monotone float function of ``s`` (a product with a constant, a sum with
a constant, max, clamp, round), so the level is a monotone step function of ``s``:
non-decreasing when the BatchNorm scale ``weight / sqrt(var + eps)`` is positive (or
there is no BatchNorm), non-increasing when it is negative, constant when it is 0.
``derive_requant`` binary-searches its 15 steps per channel over the whole SFP sum range
(``acc_bw`` bits, signed) and checks each threshold against its neighbour.

Max-pool runs on the host, on levels: the quantizer is monotone non-decreasing, so
``quantize(max(a, b)) == max(quantize(a), quantize(b))`` and pooling levels equals the
model's pooling of floats followed by quantization. The last conv's integers go to the host,
which runs the model's own modules after it (BatchNorm, ReLU, pools) and the float Linear
classifier on ``v`` above.

The first conv's input is the model's own quantizer applied to the normalized image: with
the course quantizer its levels can be negative (the core's signed first-layer path).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from .capture import ConvChannels, exact_fp32
from .errors import LayerError, ModelError, PsumOverflowError
from .hwconfig import CONFIG
from .program.memory_map import useful_macs
from .program.network import LayerShape
from .program.ws_fast import check_l0_depth, check_sfp_depth, plan_passes
from .quant import QuantConv2d
from .requant import LEVELS, THRESHOLD_BW, Requant

__all__ = ["ConvStage", "Network", "LayerResult", "ImageResult", "conv_int", "max_pool_levels",
           "derive_requant", "run_image", "SUM_MIN", "SUM_MAX"]

SUM_MIN, SUM_MAX = -(1 << (CONFIG.acc_bw - 1)), (1 << (CONFIG.acc_bw - 1)) - 1   # an SFP sum, acc_bw bits
T_MIN, T_MAX = -(1 << (THRESHOLD_BW - 1)), (1 << (THRESHOLD_BW - 1)) - 1       # threshold sentinels
DATAFLOW = "ws"       # tb.core_conv.CoreConv runs every network layer as the fast WS schedule


def conv_int(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact integer 3x3 convolution, stride 1, padding 1: x (IC, H, W) int, w (OC, IC, 3, 3)
    int -> int64 (OC, H, W). Computed in float64 (every partial sum is an integer far below
    2**53, so exact) and checked to fit an SFP sum (acc_bw bits, PsumOverflowError)."""
    ic, h, wd = x.shape
    xp = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, ki:ki + h, kj:kj + wd] for ki in range(3) for kj in range(3)], axis=1)   # (IC, 9, H, W)
    out = np.asarray(w, dtype=np.float64).reshape(w.shape[0], ic * 9) @ cols.reshape(ic * 9, h * wd)
    sums = np.rint(out).astype(np.int64).reshape(w.shape[0], h, wd)
    if sums.size and (sums.min() < SUM_MIN or sums.max() > SUM_MAX):
        raise PsumOverflowError(f"conv sums {sums.min()}..{sums.max()} do not fit the SFP's {CONFIG.acc_bw} bits")
    return sums


def max_pool_levels(levels: np.ndarray, pools: int) -> np.ndarray:
    """``pools`` 2x2 stride-2 max-pools (MaxPool2d(2, 2): odd edges dropped) of (C, H, W) levels."""
    for _ in range(pools):
        c, h, w = levels.shape
        levels = levels[:, :h // 2 * 2, :w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
    return levels


def _is_unit_pool(m: nn.Module) -> bool:
    return isinstance(m, nn.AvgPool2d) and m.kernel_size in (1, (1, 1)) and m.stride in (1, (1, 1)) \
        and m.padding in (0, (0, 0))


def _is_max_pool(m: nn.Module) -> bool:
    return isinstance(m, nn.MaxPool2d) and m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2)) \
        and m.padding in (0, (0, 0)) and m.dilation in (1, (1, 1)) and not m.ceil_mode


@dataclass
class ConvStage(ConvChannels):
    """One QuantConv2d of the network, ready for the core.

    ``w_int``: int64 (OC, IC, 3, 3) in -7..7; ``height`` x ``width``: its input (= output,
    padding 1) size; ``pools``: 2x2 max-pools on the host after it; ``requant``: thresholds
    to the next conv's levels (None for the last conv, whose raw sums go to the host);
    ``pointwise``: the model's BatchNorm / ReLU modules after it; ``tail``: for the last
    conv, every module after it in ``features``.
    """

    name: str
    conv: QuantConv2d
    w_int: np.ndarray
    height: int
    width: int
    pools: int = 0
    pointwise: list = field(default_factory=list)
    tail: list = field(default_factory=list)
    requant: Requant | None = None

    @property
    def macs(self) -> int:
        return useful_macs(self.in_channels, self.out_channels, self.height, self.width)

    def floats(self, sums) -> torch.Tensor:
        """float32(float64(sums) * act_delta * w_delta), as a torch tensor of sums' shape."""
        s = torch.from_numpy(np.asarray(sums, dtype=np.float64))
        return (s * self.conv.act_delta * self.conv.w_delta).float()

    def compute(self, x_levels: np.ndarray) -> np.ndarray:
        """The integer reference of this layer: levels (0..15, before pooling) or, for the last
        conv, its raw sums (int64 (OC, H, W))."""
        sums = conv_int(x_levels, self.w_int)
        return sums if self.requant is None else self.requant.apply(sums)


def input_levels(conv: QuantConv2d, x: torch.Tensor) -> torch.Tensor:
    """The levels ``conv`` quantizes ``x`` to (int64, x's shape): round(quantize_input(x) / act_delta)."""
    return torch.round(conv.quantize_input(x) / conv.act_delta).to(torch.int64)


def level_function(stage: ConvStage, nxt: QuantConv2d):
    """The float pipeline (module docstring) of ``stage``: int sums (OC, N) -> int64 levels (OC, N)."""
    def levels(sums: np.ndarray) -> np.ndarray:
        sums = np.asarray(sums)
        y = stage.floats(sums).reshape(1, sums.shape[0], -1, 1)
        with torch.no_grad(), exact_fp32():
            for m in stage.pointwise:
                y = m(y)
            return input_levels(nxt, y).reshape(sums.shape).numpy()
    return levels


def derive_requant(levels, out_channels: int, lo: int = SUM_MIN, hi: int = SUM_MAX) -> Requant:
    """The thresholds of a monotone step function ``levels`` (int sums (OC, N) -> levels (OC, N),
    0..LEVELS) over the sums lo..hi, by binary search, one search per (channel, level) at once.

    Ascending channel: t_k = the smallest sum with level >= k; descending: the largest. A level
    never reached gets the "never" sentinel, one reached by every sum the "always" sentinel
    (model.requant). ModelError when a step is not where the search left it (not monotone)."""
    ks = np.arange(1, LEVELS + 1)
    ends = levels(np.array([[lo, hi]] * out_channels, dtype=np.int64))
    desc = ends[:, 0] > ends[:, 1]
    first, last = np.where(desc, ends[:, 1], ends[:, 0]), np.where(desc, ends[:, 0], ends[:, 1])
    # search invariant: level(low side) < k <= level(high side) in the channel's direction
    a = np.full((out_channels, LEVELS), lo, dtype=np.int64)
    b = np.full((out_channels, LEVELS), hi, dtype=np.int64)
    while np.any(b - a > 1):
        m = (a + b) // 2
        up = levels(m) >= ks
        reach = np.where(desc[:, None], ~up, up)          # m is on the high side
        b, a = np.where(reach, m, b), np.where(reach, a, m)
    t = np.where(desc[:, None], a, b)
    t = np.where(first[:, None] >= ks, np.where(desc[:, None], T_MAX, T_MIN), t)     # always
    t = np.where(last[:, None] < ks, np.where(desc[:, None], T_MIN, T_MAX), t)       # never
    real = (first[:, None] < ks) & (last[:, None] >= ks)
    inner = np.where(real, t, 0)
    before = np.where(desc[:, None], inner + 1, inner - 1)
    if np.any(real & ((levels(inner) < ks) | (levels(np.clip(before, lo, hi)) >= ks))):
        raise ModelError("requant: the float pipeline is not a monotone step function of the sum")
    return Requant(t.astype(np.int64), desc)


@dataclass
class LayerResult:
    """One conv of one image. ``mismatches``: core outputs that differ from the integer reference
    on the same input; ``torch_differences``: this conv's input levels that differ from the ones
    PyTorch's own forward pass fed it."""

    name: str
    cycles: int
    busy: int
    macs: int
    outputs_checked: int
    mismatches: int
    torch_differences: int
    errors: int              # core error flags raised (CoreConv refuses a run that raises one)
    dataflow: str
    build_s: float
    sim_s: float
    sim_cpu_s: float
    check_s: float


@dataclass
class ImageResult:
    index: int
    label: int | None
    prediction_hw: int
    prediction_reference: int
    prediction_torch: int
    logits_hw: list
    logits_torch: list
    layers: list


class Network:
    """The integer network of a VGG_quant model (eval mode): its conv stages with thresholds,
    the host head after the last conv, and the PyTorch comparison."""

    def __init__(self, model: nn.Module, image_size: int = 32):
        model.eval()
        self.model = model
        self.prefix, self.stages = _stages(model, image_size)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)        # the search's ops are tiny: thread hand-offs cost 10x more
        try:
            for stage, nxt in zip(self.stages, self.stages[1:]):
                stage.requant = derive_requant(level_function(stage, nxt.conv), stage.out_channels)
        finally:
            torch.set_num_threads(threads)

    def check_array(self, array_size: int) -> None:
        """LayerError (one line, naming the conv as the model has it) when a conv cannot run on
        the ``array_size`` x ``array_size`` core, before any program or player is built: the
        program builder's sizing checks (its thresholds in the SFP, its output vectors in the
        SFP bank, one ic tile in xmem and wmem, the L0 depth), none of which depends on the
        input channels, so the signed first conv's digit split changes none of them."""
        n = array_size
        for stage in self.stages:
            try:
                geo = LayerShape(stage.in_channels, stage.out_channels, stage.height, stage.width, n,
                                 "raw" if stage.requant is None else "requant").geometry
                check_sfp_depth(geo, CONFIG.sfp_depth)
                plan_passes(geo)
                check_l0_depth(geo, CONFIG.fifo_depth)
            except ModelError as e:
                raise LayerError(f"{stage.name} ({stage.in_channels}->{stage.out_channels}, "
                                 f"{stage.height}x{stage.width}) cannot run on the {n}x{n} core: "
                                 f"{str(e).split(' cannot run: ', 1)[-1]}") from None

    def first_levels(self, image: torch.Tensor) -> np.ndarray:
        """The first conv's input levels of a normalized image (3, H, W): the model's modules before
        it (max-pools, on the host), then its quantizer. int64, may be negative."""
        y = image.unsqueeze(0)
        with torch.no_grad(), exact_fp32():
            for m in self.prefix:
                y = m(y)
            return input_levels(self.stages[0].conv, y)[0].numpy()

    def head(self, sums: np.ndarray) -> np.ndarray:
        """The last conv's integer output (OC, H, W) -> logits (float32, classes) on the host."""
        last = self.stages[-1]
        y = last.floats(sums).unsqueeze(0)
        with torch.no_grad(), exact_fp32():
            for m in last.tail:
                y = m(y)
            return self.model.classifier(y.reshape(1, -1))[0].numpy()

    def reference(self, image: torch.Tensor) -> tuple[list, np.ndarray]:
        """The integer network: (every conv's input levels, logits)."""
        x, inputs = self.first_levels(image), []
        for stage in self.stages:
            inputs.append(x)
            out = stage.compute(x)
            x = max_pool_levels(out, stage.pools)
        return inputs, self.head(out)

    def torch_forward(self, image: torch.Tensor) -> tuple[list, np.ndarray]:
        """PyTorch's own forward pass: (every QuantConv2d's input levels, logits)."""
        seen = []

        def hook(conv, inputs):
            seen.append(input_levels(conv, inputs[0])[0].numpy())

        handles = [s.conv.register_forward_pre_hook(hook) for s in self.stages]
        try:
            with torch.no_grad(), exact_fp32():
                logits = self.model(image.unsqueeze(0))[0].numpy()
        finally:
            for h in handles:
                h.remove()
        return seen, logits


def _stages(model: nn.Module, image_size: int) -> tuple[list, list[ConvStage]]:
    """Walk model.features: (the modules before the first conv, the conv stages with the pointwise
    modules and pools between them and the last one's tail)."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or not hasattr(model, "classifier"):
        raise ModelError("integer inference needs a VGG_quant model (features + classifier)")
    modules = list(features)
    convs = [i for i, m in enumerate(modules) if isinstance(m, QuantConv2d)]
    if not convs:
        raise ModelError("the model has no QuantConv2d")
    stages: list[ConvStage] = []
    size, pooled = image_size, False
    for i, m in enumerate(modules[:convs[0]]):        # on the float image, before its quantizer
        if _is_max_pool(m):
            size //= 2
        elif not (isinstance(m, nn.Identity) or _is_unit_pool(m)):
            raise ModelError(f"features.{i}: {type(m).__name__} before the first conv is not supported "
                             f"(MaxPool2d(2, 2) only)")
    for i, m in enumerate(modules[:convs[-1] + 1]):
        if i < convs[0]:
            continue
        name = f"features.{i}"
        if isinstance(m, QuantConv2d):
            if (m.kernel_size, m.stride, m.padding, m.dilation, m.groups) != ((3, 3), (1, 1), (1, 1), (1, 1), 1) \
                    or m.bias is not None:
                raise ModelError(f"{name}: the core runs 3x3 convs, stride 1, padding 1, no bias")
            if m.w_bit != 4 or m.a_bit != 4:
                raise ModelError(f"{name}: the whole-network path runs 4-bit weights and activations, got "
                                 f"w_bit={m.w_bit} a_bit={m.a_bit} (the core's 2-bit mode runs single layers: "
                                 f"demo, export, classic)")
            if size < 1:
                raise ModelError(f"{name}: the pools before it leave nothing of a {image_size}x{image_size} image")
            with torch.no_grad():
                w = torch.round(m.quantize_weight() / m.w_delta)
            stages.append(ConvStage(name, m, w.to(torch.int64).numpy(), size, size))
            pooled = False
        elif isinstance(m, nn.Identity) or _is_unit_pool(m):
            continue
        elif _is_max_pool(m):
            stages[-1].pools += 1
            size, pooled = size // 2, True
        elif isinstance(m, (nn.BatchNorm2d, nn.ReLU)) and not pooled:
            stages[-1].pointwise.append(m)
        else:
            raise ModelError(f"{name}: {type(m).__name__} between two convs is not supported "
                             f"(BatchNorm2d and ReLU, then MaxPool2d(2, 2))")
    stages[-1].tail = modules[convs[-1] + 1:]
    return modules[:convs[0]], stages


def _timed(fn, *args):
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0


def _mismatches(stage: ConvStage, x: np.ndarray, got: np.ndarray) -> int:
    """Core outputs that differ from the integer reference on the same input."""
    return int(np.count_nonzero(got != stage.compute(x)))


def run_image(net: Network, image: torch.Tensor, core, index: int = 0, label: int | None = None) -> ImageResult:
    """One normalized image (3, H, W) through every conv on ``core`` (``.run(x_int, w_int,
    requant) -> ConvRun``, tb.core_conv.CoreConv), each layer checked against the integer
    reference on the same input and against PyTorch's input levels; max-pools and the head
    on the host. The checks run in a second thread while the core simulates the next layer
    (``check_s``: their own time)."""
    with ThreadPoolExecutor(1) as checker:
        paths = checker.submit(_timed, lambda: (net.torch_forward(image), net.reference(image)))
        x, inputs, runs, checks = net.first_levels(image), [], [], []
        for stage in net.stages:
            run = core.run(x, stage.w_int, stage.requant)
            got = np.asarray(run.out, dtype=np.int64)
            if got.shape != (stage.out_channels, stage.height, stage.width):
                raise ModelError(f"{stage.name}: the core returned outputs of shape {got.shape}, expected "
                                 f"{(stage.out_channels, stage.height, stage.width)}")
            checks.append(checker.submit(_timed, _mismatches, stage, x, got))
            inputs.append(x)
            runs.append(run)
            x = max_pool_levels(got, stage.pools)
        ((torch_inputs, logits_torch), (_, logits_ref)), paths_s = paths.result()
        layers = []
        for k, (stage, run, check) in enumerate(zip(net.stages, runs, checks)):
            mismatches, check_s = check.result()
            layers.append(LayerResult(stage.name, int(run.cycles), int(run.busy), int(run.macs),
                                      stage.out_channels * stage.height * stage.width, mismatches,
                                      int(np.count_nonzero(inputs[k] != torch_inputs[k])), len(run.errors),
                                      DATAFLOW, float(run.build_s), float(run.sim_s), float(run.sim_cpu_s),
                                      check_s + (paths_s if k == 0 else 0.0)))
    logits_hw = net.head(got)
    return ImageResult(index, label, int(np.argmax(logits_hw)), int(np.argmax(logits_ref)),
                       int(np.argmax(logits_torch)), logits_hw.tolist(), logits_torch.tolist(),
                       layers)
