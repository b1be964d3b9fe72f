import pytest
import torch
import torch.nn as nn

from model.errors import LayerError, ModelError
from model.quant import QuantConv2d
from model.vgg import MODELS, build_model, conv_layers, default_layer, resolve_layer

PROJECT_LAYOUT = {
    0: ("conv", 3, 64), 1: "bn", 2: "relu", 3: ("conv", 64, 64), 4: "bn", 5: "relu", 6: "mp",
    7: ("conv", 64, 128), 8: "bn", 9: "relu", 10: ("conv", 128, 128), 11: "bn", 12: "relu", 13: "mp",
    14: ("conv", 128, 256), 15: "bn", 16: "relu", 17: ("conv", 256, 256), 18: "bn", 19: "relu",
    20: ("conv", 256, 256), 21: "bn", 22: "relu", 23: "mp",
    24: ("conv", 256, 8), 25: "bn", 26: "relu", 27: ("conv", 8, 8), 28: "relu",
    29: ("conv", 8, 512), 30: "bn", 31: "relu", 32: "mp",
    33: ("conv", 512, 512), 34: "bn", 35: "relu", 36: ("conv", 512, 512), 37: "bn", 38: "relu",
    39: ("conv", 512, 512), 40: "bn", 41: "relu", 42: "mp", 43: "avg",
}
KINDS = {"bn": nn.BatchNorm2d, "relu": nn.ReLU, "mp": nn.MaxPool2d, "avg": nn.AvgPool2d}


@pytest.fixture(scope="module")
def project():
    return build_model("vgg16_quant_project", seed=0)


def test_project_layout_matches_notebook(project):
    feats = project.features
    assert len(feats) == len(PROJECT_LAYOUT)
    for i, spec in PROJECT_LAYOUT.items():
        m = feats[i]
        if isinstance(spec, tuple):
            assert isinstance(m, QuantConv2d), i
            assert (m.in_channels, m.out_channels) == spec[1:], i
            assert m.kernel_size == (3, 3) and m.padding == (1, 1) and m.bias is None
        else:
            assert isinstance(m, KINDS[spec]), (i, m)
    assert feats[25].num_features == 8
    assert isinstance(project.classifier, nn.Linear)
    assert (project.classifier.in_features, project.classifier.out_features) == (512, 10)
    assert type(project).__name__ == "VGG_quant"


def test_forward_shapes_and_layer27_map(project):
    seen = {}

    def hook(_m, inputs):
        seen["x"] = inputs[0].shape

    h = project.features[27].register_forward_pre_hook(hook)
    out = project(torch.randn(2, 3, 32, 32))
    h.remove()
    assert out.shape == (2, 10)
    assert seen["x"] == (2, 8, 4, 4)


def test_classic_vgg16():
    m = build_model("vgg16_quant", seed=0)
    convs = conv_layers(m)
    assert len(convs) == 13
    assert [c.out_channels for _, c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert resolve_layer(m, default_layer(m))[1].in_channels == 64


def test_seed_is_reproducible():
    a = build_model("vgg16_quant_project", seed=3).features[27].weight
    b = build_model("vgg16_quant_project", seed=3).features[27].weight
    c = build_model("vgg16_quant_project", seed=4).features[27].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unknown_model():
    with pytest.raises(ModelError) as e:
        build_model("resnet20")
    msg = str(e.value)
    assert "\n" not in msg and "resnet20" in msg
    for name in MODELS:
        assert name in msg


def test_resolve_layer_specs(project):
    names = [n for n, _ in conv_layers(project)]
    assert names[8] == "features.27"
    for spec in ("features.27", "27", 27, "conv8", "CONV8"):
        name, mod = resolve_layer(project, spec)
        assert name == "features.27" and mod is project.features[27]
    assert resolve_layer(project, "conv0")[0] == "features.0"
    assert default_layer(project) == "features.27"


@pytest.mark.parametrize("spec", ["features.28", "28", "conv99", "features.99", "fc", "", "-1"])
def test_resolve_layer_errors(project, spec):
    with pytest.raises(LayerError) as e:
        resolve_layer(project, spec)
    msg = str(e.value)
    assert "\n" not in msg
    assert repr(str(spec)) in msg
    assert "features.27" in msg  # lists the valid choices


def test_layout_strings_without_a_comma_and_channel_range():
    """'8;a_bit=2' is a one-conv layout (it was 'unknown model'); a channel count above
    MAX_CHANNELS is refused in one line naming the token (it was a raw allocator error)."""
    from model.vgg import MAX_CHANNELS, resolve_model

    assert resolve_model("8;a_bit=2").items == ((8, True),) and resolve_model("8;a_bit=2").a_bit == 2
    assert resolve_model("16n").items == ((16, False),)
    assert resolve_model(f"{MAX_CHANNELS},8").items[0] == (MAX_CHANNELS, True)
    with pytest.raises(ModelError, match=rf"'100000': a conv has 1..{MAX_CHANNELS} output channels"):
        resolve_model("100000,8")
    with pytest.raises(ModelError, match="unknown model 'vgg17'"):
        resolve_model("vgg17")
    with pytest.raises(ModelError, match="a_bit given twice"):        # it kept the last one
        resolve_model("8;a_bit=2;a_bit=3")
