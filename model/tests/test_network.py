"""The integer network (model/network.py): SFP thresholds against the float pipeline, the
integer reference against torch, the per-layer checks of run_image."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.capture import calibrate_act_alphas
from model.data import synthetic_images
from model.errors import ModelError
from model.network import SUM_MAX, SUM_MIN, Network, conv_int, level_function, max_pool_levels, run_image
from model.vgg import build_model

TINY_LAYOUT = "8,M,8n,M,8"       # 3->8 (BN) 8x8, pool, 8->8 (no BN) 4x4, pool, 8->8 (BN) 2x2
TINY_SIZE = 8
# BatchNorm scales of the first conv: positive, negative and zero (a constant channel)
TINY_GAMMA = (1.3, -0.8, 0.0, 0.5, -1.6, 1.0, 0.7, -0.3)


def tiny_images(n: int, seed: int) -> torch.Tensor:
    """n normalized synthetic images cropped to TINY_SIZE x TINY_SIZE."""
    x, _ = synthetic_images(n, seed=seed)
    return x[:, :, :TINY_SIZE, :TINY_SIZE].contiguous()


def tiny_model(seed: int = 0) -> nn.Module:
    """A seeded 3-conv network on 8x8 images (TINY_LAYOUT), calibrated, its first BatchNorm
    given the scales TINY_GAMMA and random statistics and shifts (the zero-scale channel: a
    shift to a level near 8)."""
    model = build_model(TINY_LAYOUT, seed=seed)
    side = TINY_SIZE >> 2
    model.classifier = nn.Linear(8 * side * side, 10)
    calibrate_act_alphas(model, tiny_images(16, seed + 1000), 99.0)
    bn = model.features[1]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(TINY_GAMMA))
        bn.bias.copy_(torch.rand(8, generator=g) * 0.5)
        bn.running_mean.add_(torch.randn(8, generator=g) * 0.1)
        bn.running_var.mul_(0.5 + torch.rand(8, generator=g))
        bn.bias[TINY_GAMMA.index(0.0)] = 0.5 * model.features[4].act_alpha     # a constant mid level
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model()
    return model, Network(model, image_size=TINY_SIZE)


def requant_differences(stage, nxt, requant=None, chunk=1 << 16) -> tuple[int, np.ndarray]:
    """Over every SFP sum (acc_bw bits): (how many levels Requant.apply gets wrong against the
    float pipeline, the set of levels each channel reaches)."""
    requant = requant or stage.requant
    f = level_function(stage, nxt.conv)
    wrong, reached = 0, [set() for _ in range(stage.out_channels)]
    for start in range(SUM_MIN, SUM_MAX + 1, chunk):
        sums = np.arange(start, min(start + chunk, SUM_MAX + 1))
        s = np.broadcast_to(sums, (stage.out_channels, len(sums)))
        want = f(s)
        wrong += int(np.count_nonzero(requant.apply(s) != want))
        for c in range(stage.out_channels):
            reached[c].update(np.unique(want[c]).tolist())
    return wrong, reached


def test_stages_of_tiny_network(tiny):
    _, net = tiny
    assert [s.name for s in net.stages] == ["features.0", "features.4", "features.7"]
    assert [(s.in_channels, s.out_channels, s.height, s.pools) for s in net.stages] == \
        [(3, 8, 8, 1), (8, 8, 4, 1), (8, 8, 2, 0)]
    assert [[type(m).__name__ for m in s.pointwise] for s in net.stages[:2]] == [["BatchNorm2d", "ReLU"], ["ReLU"]]
    assert net.stages[-1].requant is None


def test_requant_with_batchnorm_equals_float_pipeline_on_every_sum(tiny):
    """Positive, negative and zero BatchNorm scales: every sum of the SFP range."""
    _, net = tiny
    stage = net.stages[0]
    assert stage.requant.descending.tolist() == [g < 0 for g in TINY_GAMMA]
    wrong, reached = requant_differences(stage, net.stages[1])
    assert wrong == 0
    for c, g in enumerate(TINY_GAMMA):
        assert (len(reached[c]) == 1) == (g == 0), (c, reached[c])     # only the zero scale is constant
    assert 0 not in reached[TINY_GAMMA.index(0.0)]              # its levels need the "always" thresholds
    assert all(len(reached[c]) == 16 for c, g in enumerate(TINY_GAMMA) if g != 0)


def test_requant_without_batchnorm_equals_float_pipeline_on_every_sum(tiny):
    _, net = tiny
    wrong, reached = requant_differences(net.stages[1], net.stages[2])
    assert wrong == 0 and not net.stages[1].requant.descending.any()
    assert all(len(r) == 16 for r in reached)


def test_exhaustive_check_catches_an_off_by_one_threshold(tiny):
    """The exhaustive comparison is not vacuous: one threshold one too high is one wrong sum."""
    from model.requant import Requant

    _, net = tiny
    stage = net.stages[1]
    t = stage.requant.thresholds.copy()
    t[3, 7] += 1
    wrong, _ = requant_differences(stage, net.stages[2], Requant(t, stage.requant.descending))
    assert wrong == 1


def test_conv_int_equals_torch_conv_on_signed_inputs():
    g = np.random.default_rng(3)
    x = g.integers(-15, 16, (5, 7, 6))
    w = g.integers(-7, 8, (4, 5, 3, 3))
    want = F.conv2d(torch.from_numpy(x).double()[None], torch.from_numpy(w).double(), padding=1)[0]
    assert np.array_equal(conv_int(x, w), want.numpy().astype(np.int64))


def test_max_pool_levels_equals_torch():
    x = np.random.default_rng(4).integers(0, 16, (3, 9, 7))
    want = F.max_pool2d(F.max_pool2d(torch.from_numpy(x).double()[None], 2, 2), 2, 2)[0]
    assert np.array_equal(max_pool_levels(x, 2), want.numpy().astype(np.int64))


def test_integer_reference_follows_pytorch(tiny):
    """The integer network against PyTorch's own forward pass: the first conv's input levels
    are the same function of the image; later ones may differ only at float rounding ties."""
    model, net = tiny
    lowest = 0
    for image in tiny_images(4, seed=7):
        ref_inputs, ref_logits = net.reference(image)
        torch_inputs, torch_logits = net.torch_forward(image)
        assert np.array_equal(ref_inputs[0], torch_inputs[0])
        lowest = min(lowest, ref_inputs[0].min())
        for a, b in zip(ref_inputs[1:], torch_inputs[1:]):
            assert a.shape == b.shape and np.count_nonzero(a != b) <= a.size // 100
        assert np.abs(ref_logits - torch_logits).max() < 0.05 * np.abs(torch_logits).max()
    assert lowest < 0                           # the signed first layer is exercised


class ReferenceCore:
    """A stand-in for the core in these unit tests only: the integer reference itself,
    optionally with one output of one layer flipped."""

    def __init__(self, break_layer: int | None = None):
        self.break_layer, self.calls = break_layer, 0

    def run(self, x, w, requant):
        s = conv_int(x, w)
        out = (s if requant is None else requant.apply(s)).copy()
        if self.calls == self.break_layer:
            out[0, 0, 0] += 1
        self.calls += 1
        return SimpleNamespace(out=out, cycles=100, busy=90, macs=0, errors=[], build_s=0.0, sim_s=0.0,
                               sim_cpu_s=0.0)


def test_run_image_counts_mismatches_per_layer(tiny):
    _, net = tiny
    image = tiny_images(1, seed=7)[0]
    clean = run_image(net, image, ReferenceCore(), index=0)
    assert [l.mismatches for l in clean.layers] == [0, 0, 0]
    assert clean.prediction_hw == clean.prediction_reference
    broken = run_image(net, image, ReferenceCore(break_layer=1), index=0)
    assert [l.mismatches for l in broken.layers] == [0, 1, 0]
    assert [l.outputs_checked for l in broken.layers] == [8 * 64, 8 * 16, 8 * 4]


def test_unsupported_models_are_refused():
    with pytest.raises(ModelError, match=r"^features.0: the whole-network path runs 4-bit weights and activations, "
                                         r"got w_bit=4 a_bit=2 \(the core's 2-bit mode runs single layers: "):
        Network(build_model("8,8;a_bit=2", seed=0))
    model = build_model("8,M,8", seed=0)
    model.features[3] = nn.AvgPool2d(2)
    with pytest.raises(ModelError, match="features.3: AvgPool2d between two convs"):
        Network(model)
