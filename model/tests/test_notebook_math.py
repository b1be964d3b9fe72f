"""The product computes the course's network: an independent re-implementation of the
notebooks' quantizer and model math, written from the seed text and the design brief
(not from model/quant.py or model/vgg.py), must give the same logits on the same weights.

Sources: the course quantizer (design brief section 3 and the seeds' usage):
  activations: q = alpha * round(clamp(x / alpha, max=1) * (2**a_bit - 1)) / (2**a_bit - 1)
  weights:     w' = (w - mean(w)) / std(w);  u = clamp(w' / alpha, -1, 1);
               q = alpha * sign(u) * round(|u| * (2**(w_bit-1) - 1)) / (2**(w_bit-1) - 1)
and the layer listings the seeds print (000: VGG_quant, 003: VGG16_quant_project_part1);
part 2 is part 1 with a 16-channel squeeze and a_bit = 2.
"""

import pytest
import torch
import torch.nn.functional as F

from model.vgg import build_model

# features index -> "conv" / "bn" / "pool", as printed in the seeds (ReLUs follow each
# conv or its BN; the AvgPool(1) at the end is the identity).
_BLOCKS_000 = {0: "conv", 1: "bn", 3: "conv", 4: "bn", 6: "pool", 7: "conv", 8: "bn", 10: "conv", 11: "bn",
               13: "pool", 14: "conv", 15: "bn", 17: "conv", 18: "bn", 20: "conv", 21: "bn", 23: "pool",
               24: "conv", 25: "bn", 27: "conv", 29: "conv", 30: "bn", 32: "pool", 33: "conv", 34: "bn",
               36: "conv", 37: "bn", 39: "conv", 40: "bn", 42: "pool"}
_BLOCKS_003 = {0: "conv", 1: "bn", 3: "conv", 4: "bn", 6: "pool", 7: "conv", 8: "bn", 10: "conv", 11: "bn",
               13: "pool", 14: "conv", 15: "bn", 17: "conv", 18: "bn", 20: "conv", 21: "bn", 23: "pool",
               24: "conv", 25: "bn", 27: "conv", 29: "conv", 31: "pool", 32: "conv", 33: "bn",
               35: "conv", 36: "bn", 38: "conv", 39: "bn", 41: "pool"}

LISTINGS = {  # model name: (listing, a_bit, w_bit)
    "vgg16_quant_project": (_BLOCKS_000, 4, 4),
    "vgg16_quant_project_part1": (_BLOCKS_003, 4, 4),
    "vgg16_quant_project_part2": (_BLOCKS_003, 2, 4),
}


def notebook_act_quant(x, alpha, a_bit):
    levels = 2 ** a_bit - 1
    u = (x / alpha).clamp(max=1)
    return (u * levels).round() / levels * alpha


def notebook_weight_quant(w, alpha, w_bit):
    levels = 2 ** (w_bit - 1) - 1
    w = (w - w.mean()) / w.std()
    u = (w / alpha).clamp(-1, 1)
    return u.sign() * (u.abs() * levels).round() / levels * alpha


def notebook_forward(sd, listing, a_bit, w_bit, x):
    """Evaluation-mode forward of the listed network, straight from the state_dict."""
    for i in range(max(listing) + 1):
        kind = listing.get(i)
        p = f"features.{i}."
        if kind == "conv":
            wq = notebook_weight_quant(sd[p + "weight"], sd[p + "weight_quant.wgt_alpha"], w_bit)
            x = F.conv2d(notebook_act_quant(x, sd[p + "act_alpha"], a_bit), wq, padding=1)
            if listing.get(i + 1) != "bn":
                x = F.relu(x)
        elif kind == "bn":
            x = F.relu(F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"],
                                    sd[p + "bias"], training=False, eps=1e-5))
        elif kind == "pool":
            x = F.max_pool2d(x, 2)
    return F.linear(x.flatten(1), sd["classifier.weight"], sd["classifier.bias"])


def _trained_like(name, seed):
    """A model whose alphas and BN statistics are spread like a trained one's."""
    model = build_model(name, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("act_alpha"):
                t.fill_(0.5 + 3 * torch.rand((), generator=g).item())
            elif key.endswith("wgt_alpha"):
                t.fill_(1.5 + 2 * torch.rand((), generator=g).item())
            elif key.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
            elif key.endswith("running_var"):
                t.copy_(0.5 + 10 * torch.rand(t.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("name", list(LISTINGS))
def test_logits_match_the_notebook_math(name):
    listing, a_bit, w_bit = LISTINGS[name]
    model = _trained_like(name, seed=1)
    model.features[0].act_alpha.data.fill_(1.7)   # the normalized image (min about -2) gets negative levels
    x = torch.randn(8, 3, 32, 32) * 1.2
    sd = model.state_dict()
    with torch.no_grad():
        ours = model(x)
        ref = notebook_forward(sd, listing, a_bit, w_bit, x)
        diff = (ours - ref).abs().max().item()
        print(f"{name}: max |logit difference| vs the notebook math = {diff:.3g} "
              f"(logits span {ref.min().item():.3g}..{ref.max().item():.3g})")
        assert diff <= 1e-4 * max(1.0, ref.abs().max().item())
        # The unsigned quantizer computes a different network: the test can tell.
        model.features[0].set_act_quant("unsigned")
        assert (model(x) - ref).abs().max().item() > 100 * max(diff, 1e-6)
