import io
from contextlib import redirect_stdout

import pytest
import torch

from model.quant import QuantConv2d, act_quantization, weight_quantization, weight_quantize_fn


def test_weight_levels_are_integers_minus7_to_7():
    torch.manual_seed(0)
    wq = weight_quantize_fn(w_bit=4)
    assert wq.wgt_alpha.item() == 3.0
    w = torch.randn(64, 32, 3, 3) * 0.05 + 0.01
    q = wq(w)
    ints = q / (wq.wgt_alpha.detach() / 7)
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    vals = set(ints.round().int().unique().tolist())
    assert vals <= set(range(-7, 8))
    assert min(vals) < 0 < max(vals)
    # a large weight saturates at +-7
    w2 = torch.tensor([-10.0, -1.0, 0.0, 1.0, 10.0])
    q2 = weight_quantization(3)(w2, torch.tensor(1.0))
    assert q2.tolist() == pytest.approx([-1.0, -1.0, 0.0, 1.0, 1.0])


def test_weight_quant_bit_widths():
    w = torch.linspace(-5, 5, 1001)
    for w_bit in (2, 3, 4, 5):
        wq = weight_quantize_fn(w_bit=w_bit)
        wq.wgt_alpha.data.fill_(1.0)  # normalized |w| reaches 1.7: saturates
        levels = 2 ** (w_bit - 1) - 1
        ints = wq(w) / (wq.wgt_alpha.detach() / levels)
        assert ints.round().abs().max().item() == levels
        assert torch.allclose(ints, ints.round(), atol=1e-4)


def test_activation_levels_course_and_unsigned():
    alpha = torch.tensor(2.0)
    x = torch.linspace(-3, 5, 4001)
    course = act_quantization(4)(x, alpha) / (alpha / 15)
    unsigned = act_quantization(4, unsigned=True)(x, alpha) / (alpha / 15)
    for ints in (course, unsigned):
        assert torch.allclose(ints, ints.round(), atol=1e-4)
        assert ints[x > 2].round().eq(15).all()  # saturates at alpha
    # the notebooks' quantizer clamps only the maximum: -3 / 2 * 15 = -22.5 -> level -22 (half to even)
    assert course.round().int().unique().tolist() == list(range(-22, 16))
    assert torch.equal(course[x >= 0], unsigned[x >= 0])
    assert unsigned.round().int().unique().tolist() == list(range(16))
    assert unsigned[x < 0].abs().max().item() == 0.0
    # 2-bit activations: 0..3 above zero
    q2 = act_quantization(2, unsigned=True)(x, alpha) / (alpha / 3)
    assert q2.round().int().unique().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("unsigned", [False, True])
def test_activation_ste_gradients(unsigned):
    f = act_quantization(4, unsigned=unsigned)
    alpha = torch.tensor(2.0, requires_grad=True)
    x = torch.tensor([-1.0, 0.3, 1.0, 1.9, 2.5, 7.0], requires_grad=True)
    f(x, alpha).sum().backward()
    below = 0.0 if unsigned else 1.0
    assert x.grad.tolist() == [below, 1.0, 1.0, 1.0, 0.0, 0.0]
    # alpha: 1 per saturated value, (q - u) inside, below 0: 0 when unsigned, (q - u) for the course
    u = torch.tensor([0.15, 0.5, 0.95] + ([] if unsigned else [-0.5]))
    q = (u * 15).round() / 15
    expected = 2.0 + (q - u).sum().item()
    assert alpha.grad.item() == pytest.approx(expected, abs=1e-5)


def test_weight_ste_gradients():
    f = weight_quantization(3)
    alpha = torch.tensor(1.0, requires_grad=True)
    w = torch.tensor([-3.0, -0.4, 0.1, 0.55, 2.0], requires_grad=True)
    f(w, alpha).sum().backward()
    assert w.grad.tolist() == [1.0] * 5  # weights: straight through, unclipped
    inside = torch.tensor([-0.4, 0.1, 0.55])
    q = (inside.abs() * 7).round() / 7 * inside.sign()
    expected = -1.0 + 1.0 + (q - inside).sum().item()
    assert alpha.grad.item() == pytest.approx(expected, abs=1e-5)


def test_quantconv2d_forward_and_params():
    torch.manual_seed(0)
    conv = QuantConv2d(8, 8, 3, padding=1)
    assert isinstance(conv, torch.nn.Conv2d)
    assert conv.act_alpha.item() == 8.0
    assert conv.weight_q is None
    assert conv.w_delta == pytest.approx(3.0 / 7)
    assert conv.act_delta == pytest.approx(8.0 / 15)
    x = torch.rand(2, 8, 4, 4) * 10
    y = conv(x)
    assert y.shape == (2, 8, 4, 4)
    assert conv.weight_q is not None and not conv.weight_q.requires_grad
    ints = conv.weight_q / conv.w_delta
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    # gradients reach the weight and both alphas
    y.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert conv.act_alpha.grad is not None
    assert conv.weight_quant.wgt_alpha.grad is not None
    buf = io.StringIO()
    with redirect_stdout(buf):
        conv.show_params()
    assert buf.getvalue().strip() == "clipping threshold weight alpha: 3.000000, activation alpha: 8.000000"
    assert "weight_q" not in conv.state_dict()
    assert conv.act_quant == "course" and "act_quant=course" in repr(conv)
    conv.set_act_quant("unsigned")
    assert conv(-x).abs().max().item() == 0.0  # negative inputs clip to level 0
    with pytest.raises(ValueError, match="got 'signed'"):
        conv.set_act_quant("signed")


def test_quantconv2d_bit_widths():
    conv = QuantConv2d(3, 4, 3, w_bit=3, a_bit=2)
    assert conv.w_delta == pytest.approx(3.0 / 3)
    assert conv.act_delta == pytest.approx(8.0 / 3)
    conv(torch.rand(1, 3, 8, 8))
    assert (conv.weight_q / conv.w_delta).round().abs().max() <= 3
