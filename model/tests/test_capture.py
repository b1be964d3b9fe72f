import numpy as np
import pytest
import torch.nn as nn

from model.capture import LayerCapture, calibrate_act_alphas, capture_layer, default_capture
from model.checkpoint import save_checkpoint
from model.data import normalize, synthetic_images, write_synthetic_cifar
from model.errors import LayerError, ModelError
from model.vgg import build_model, conv_layers


@pytest.fixture(scope="module")
def cap() -> LayerCapture:
    return default_capture()


def _reference_conv(x_int, w_int, padding):
    """Plain integer convolution in numpy (int64), written independently of F.conv2d."""
    ic, h, w = x_int.shape
    oc, _, kh, kw = w_int.shape
    xp = np.zeros((ic, h + 2 * padding, w + 2 * padding), np.int64)
    xp[:, padding : padding + h, padding : padding + w] = x_int
    ho, wo = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    out = np.zeros((oc, ho, wo), np.int64)
    for ki in range(kh):
        for kj in range(kw):
            patch = xp[:, ki : ki + ho, kj : kj + wo]  # [IC, Ho, Wo]
            out += np.einsum("oc,chw->ohw", w_int[:, :, ki, kj].astype(np.int64), patch)
    return out


def test_default_capture_shapes_and_types(cap):
    assert cap.layer_name == "features.27"
    assert cap.x_int.shape == (8, 4, 4) and cap.x_int.dtype == np.uint8
    assert cap.w_int.shape == (8, 8, 3, 3) and cap.w_int.dtype == np.int8
    assert cap.out_int.shape == (8, 4, 4) and cap.out_int.dtype == np.int32
    assert cap.out_float.shape == (8, 4, 4) and cap.out_float.dtype == np.float32
    assert (cap.a_bit, cap.w_bit, cap.stride, cap.padding) == (4, 4, 1, 1)
    assert cap.in_channels == 8 and cap.out_channels == 8


def test_default_capture_ranges(cap):
    assert cap.x_int.min() >= 0 and cap.x_int.max() <= 15
    assert ((cap.x_int >= 8) & (cap.x_int <= 15)).any(), "unsigned values 8..15 must be exercised"
    assert cap.w_int.min() >= -7 and cap.w_int.max() <= 7
    assert (cap.w_int < 0).any() and (cap.w_int > 0).any()


def test_recovery_error(cap):
    assert cap.recovery_error < 1e-5
    err = np.abs(cap.out_float.astype(np.float64) - cap.out_recovered).mean()
    assert err == pytest.approx(cap.recovery_error, rel=1e-3, abs=1e-12)
    # out_float is the conv output BEFORE the in-place ReLU at features.28
    assert cap.out_float.min() < 0 and cap.out_int.min() < 0


def test_out_int_is_exact_integer_conv(cap):
    assert np.array_equal(cap.out_int, _reference_conv(cap.x_int, cap.w_int, cap.padding))


def test_deltas_match_module():
    model = build_model("vgg16_quant_project", seed=0)
    calibrate_act_alphas(model, synthetic_images(8, seed=5)[0])
    x, _ = synthetic_images(3, seed=0)
    c = capture_layer(model, "conv8", x, index=2)
    conv = model.features[27]
    assert c.act_delta == pytest.approx(conv.act_alpha.item() / 15)
    assert c.w_delta == pytest.approx(conv.weight_quant.wgt_alpha.item() / 7)
    assert c.recovery_error < 1e-5
    # index picks the image: same as capturing it alone
    alone = capture_layer(model, "features.27", x[2:3])
    assert np.array_equal(alone.x_int, c.x_int) and np.array_equal(alone.out_int, c.out_int)
    # hooks are removed and the train/eval mode restored
    assert not conv._forward_hooks and not conv._forward_pre_hooks
    model.train()
    capture_layer(model, "27", x[:1])
    assert model.training


def test_calibrate_act_alphas():
    model = build_model("vgg16_quant_project", seed=1)
    alphas = calibrate_act_alphas(model, synthetic_images(8, seed=0)[0])
    names = [n for n, _ in conv_layers(model)]
    assert set(alphas) == set(names)
    for name, conv in conv_layers(model):
        assert conv.act_alpha.item() == pytest.approx(alphas[name]) and alphas[name] > 0
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bn.momentum == 0.1 for bn in bns)
    assert all(bn.num_batches_tracked.item() == 1 for bn in bns)
    with pytest.raises(ModelError):
        calibrate_act_alphas(model, synthetic_images(1)[0], percentile=0)


def test_classic_vgg16_default_layer():
    c = default_capture("vgg16_quant", image=1)
    assert c.layer_name == "features.3"
    assert c.x_int.shape == (64, 32, 32) and c.w_int.shape == (64, 64, 3, 3)
    assert c.recovery_error < 1e-5
    assert c.x_int.max() <= 15


def test_capture_from_checkpoint_and_data(tmp_path):
    model = build_model("vgg16_quant_project", seed=7)
    calibrate_act_alphas(model, synthetic_images(8, seed=9)[0])
    ckpt = save_checkpoint(tmp_path / "m.pt", model, "vgg16_quant_project", 1, 0.0)
    data = write_synthetic_cifar(tmp_path / "cifar", n_train=5, n_test=4, seed=3, train_files=1)
    c = default_capture(checkpoint=ckpt, data=data, image=2)
    from model.data import load_cifar10

    x_u8, _ = load_cifar10(data, "test")
    direct = capture_layer(model, "features.27", normalize(x_u8[2:3]))
    assert np.array_equal(c.x_int, direct.x_int)
    assert np.array_equal(c.w_int, direct.w_int)
    assert np.array_equal(c.out_int, direct.out_int)
    assert c.recovery_error < 1e-5
    with pytest.raises(ModelError, match="out of range"):
        default_capture(checkpoint=ckpt, data=data, image=4)


def test_capture_errors():
    model = build_model("vgg16_quant_project", seed=0)
    x, _ = synthetic_images(2)
    with pytest.raises(LayerError, match="features.28"):
        capture_layer(model, "features.28", x)
    with pytest.raises(ModelError, match="index"):
        capture_layer(model, "features.27", x, index=5)
    conv = model.features[27]

    h = conv.register_forward_hook(lambda m, i, o: setattr(m, "weight_q", m.weight_q * 1.01))
    with pytest.raises(ModelError, match="w_int is not integral"):
        capture_layer(model, "features.27", x)
    h.remove()
    h = conv.register_forward_hook(lambda m, i, o: setattr(m, "weight_q", m.weight_q * 3))
    with pytest.raises(ModelError, match="w_int out of range"):
        capture_layer(model, "features.27", x)
    h.remove()
    with pytest.raises(LayerError):
        default_capture(layer="conv42")
    with pytest.raises(ModelError):
        default_capture(model_name="nope")
