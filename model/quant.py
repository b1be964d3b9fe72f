"""Quantizers with learned clipping thresholds (PACT / APoT style) and QuantConv2d.

Numerics (README section "Numerics"):

* Weights: normalized per layer by their mean and standard deviation, divided by
  the learned ``wgt_alpha``, clipped to [-1, 1], and the magnitude rounded to
  ``2**(w_bit-1) - 1`` uniform levels (sign kept), then multiplied by
  ``wgt_alpha``. For ``w_bit = 4`` the levels are -7..+7 with step
  ``w_delta = wgt_alpha / 7``.
* Activations (the course notebooks' quantizer, ``act_quant="course"``, the
  default): divided by the learned ``act_alpha``, clamped at 1 only (``clamp(x /
  alpha, max=1)``), rounded to steps of ``1 / (2**a_bit - 1)``, multiplied by
  ``act_alpha``. For ``a_bit = 4`` every input that follows a ReLU gets levels
  0..15 with step ``act_delta = act_alpha / 15``; the first layer's input (the
  normalized image) also gets negative levels, as a course checkpoint expects.
  ``act_quant="unsigned"`` also clips at 0 (levels 0..15 only): the unsigned
  activations of the array, on every layer.

Both use a straight-through estimator for the rounding, and give the clipping
threshold (alpha) its PACT gradient.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "act_quantization",
    "weight_quantization",
    "weight_quantize_fn",
    "QuantConv2d",
    "ACT_QUANT_MODES",
    "set_act_quant",
]


ACT_QUANT_MODES = ("course", "unsigned")


def act_quantization(b: int, unsigned: bool = False):
    """Return the activation quantizer ``f(x, alpha)`` for ``b``-bit activations.

    ``f(x, alpha) = alpha * round(clamp(x / alpha, max=1) * (2**b - 1)) / (2**b - 1)``,
    the course notebooks' quantizer: only the maximum is clamped, so a negative
    input gives a negative level (unbounded below). With ``unsigned`` the clamp is
    two-sided, ``clamp(x / alpha, 0, 1)``: levels 0 .. 2**b - 1 only.

    Gradients (straight-through, as in the course code): ``d/dx`` is ``grad`` where
    ``x/alpha <= 1`` (and, when unsigned, ``>= 0``), else 0; ``d/dalpha`` is ``grad``
    above the range and ``grad * (q - x/alpha)`` (the rounding residual) elsewhere
    (when unsigned, 0 below the range).
    """
    if b < 1:
        raise ValueError(f"activation bit width must be >= 1, got {b}")

    levels = 2 ** b - 1
    low = 0.0 if unsigned else None

    class _ActQuant(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            u = x / alpha
            q = u.clamp(low, 1.0).mul_(levels).round_().div_(levels)
            ctx.save_for_backward(u, q)
            return q * alpha

        @staticmethod
        def backward(ctx, grad_out):
            u, q = ctx.saved_tensors
            inside = u <= 1.0
            if unsigned:
                inside &= u >= 0.0
            grad_x = grad_out.masked_fill(~inside, 0.0)
            # d/dalpha: 1 above the range (q == 1 there), q - u inside, 0 below when unsigned (q == 0).
            term = torch.where(inside, q - u, q)
            grad_alpha = (grad_out * term).sum()
            return grad_x, grad_alpha

    return _ActQuant.apply


def weight_quantization(b: int):
    """Return the weight quantizer ``f(w, alpha)`` with ``2**b - 1`` magnitude levels.

    ``b`` counts magnitude bits: a ``w_bit``-bit signed weight uses
    ``b = w_bit - 1`` (``weight_quantize_fn`` does this), giving levels
    ``-(2**b - 1) .. 2**b - 1``.

    ``f(w, alpha) = alpha * sign(u) * round(|clip(u, -1, 1)| * (2**b - 1)) / (2**b - 1)``
    with ``u = w / alpha``.

    Gradients: ``d/dw`` passes straight through (weights are not clipped in the
    backward pass, as in the course code); ``d/dalpha`` is ``grad * sign(u)``
    outside [-1, 1] and ``grad * (q - u)`` inside.
    """
    if b < 1:
        raise ValueError(f"weight magnitude bits must be >= 1, got {b}")

    levels = 2 ** b - 1

    class _WeightQuant(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w, alpha):
            u = w / alpha
            # round() is symmetric (half to even), so this equals
            # sign(u) * round(|clip(u)| * levels) / levels.
            q = u.clamp(-1.0, 1.0).mul_(levels).round_().div_(levels)
            ctx.save_for_backward(u, q)
            return q * alpha

        @staticmethod
        def backward(ctx, grad_out):
            u, q = ctx.saved_tensors
            inside = u.abs() <= 1.0
            # d/dalpha: sign(u) outside (q == sign(u) there), q - u inside.
            term = torch.where(inside, q - u, q)
            grad_alpha = (grad_out * term).sum()
            return grad_out, grad_alpha

    return _WeightQuant.apply


class weight_quantize_fn(nn.Module):  # noqa: N801 - name kept from the course code
    """Weight quantizer module with the learned threshold ``wgt_alpha`` (init 3.0).

    Weights are first normalized by their (detached) mean and std, then quantized
    to ``w_bit``-bit signed levels ``-(2**(w_bit-1)-1) .. 2**(w_bit-1)-1``.
    """

    def __init__(self, w_bit: int = 4, alpha: float = 3.0):
        super().__init__()
        if w_bit < 2:
            raise ValueError(f"weight bit width must be >= 2, got {w_bit}")
        self.w_bit = int(w_bit)
        self.wgt_alpha = nn.Parameter(torch.tensor(float(alpha)))
        self._quant = weight_quantization(self.w_bit - 1)

    @property
    def levels(self) -> int:
        """Largest weight level, ``2**(w_bit-1) - 1`` (7 for 4 bits)."""
        return 2 ** (self.w_bit - 1) - 1

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        mean = weight.detach().mean()
        std = weight.detach().std()
        normalized = (weight - mean) / std
        return self._quant(normalized, self.wgt_alpha)

    def extra_repr(self) -> str:
        return f"w_bit={self.w_bit}"


class QuantConv2d(nn.Conv2d):
    """A Conv2d whose input activations and weights are quantized on every forward.

    ``act_quant`` is ``"course"`` (the notebooks' activation quantizer, clamps only
    the maximum) or ``"unsigned"`` (clips at 0 too); see :func:`act_quantization`.
    ``act_alpha`` (init 8.0) is the learned activation threshold; the weight
    threshold is ``weight_quant.wgt_alpha``. After each forward, ``weight_q``
    holds a detached copy of the quantized float weight (``None`` before the
    first forward). ``w_delta`` and ``act_delta`` are the integer steps:
    ``weight_q / w_delta`` and ``act_q / act_delta`` are integers.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = False,
        w_bit: int = 4,
        a_bit: int = 4,
        act_quant: str = "course",
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.w_bit = int(w_bit)
        self.a_bit = int(a_bit)
        self.weight_quant = weight_quantize_fn(w_bit=self.w_bit)
        self.set_act_quant(act_quant)
        self.act_alpha = nn.Parameter(torch.tensor(8.0))
        self.weight_q: torch.Tensor | None = None

    def set_act_quant(self, mode: str) -> None:
        """Choose the activation quantizer: ``"course"`` or ``"unsigned"``."""
        if mode not in ACT_QUANT_MODES:
            raise ValueError(f"activation quantizer must be one of {', '.join(ACT_QUANT_MODES)}, got {mode!r}")
        self.act_quant = mode
        self.act_alq = act_quantization(self.a_bit, unsigned=mode == "unsigned")

    # -- integer steps ---------------------------------------------------------
    @property
    def w_delta(self) -> float:
        """Weight step: ``wgt_alpha / levels`` with ``levels = 2**(w_bit-1) - 1``."""
        return float(self.weight_quant.wgt_alpha.detach()) / self.weight_quant.levels

    @property
    def act_delta(self) -> float:
        """Activation step: ``act_alpha / (2**a_bit - 1)``."""
        return float(self.act_alpha.detach()) / (2 ** self.a_bit - 1)

    # -- quantization ------------------------------------------------------------
    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized activation this layer feeds its convolution."""
        return self.act_alq(x, self.act_alpha)

    def quantize_weight(self) -> torch.Tensor:
        """The quantized float weight (with autograd)."""
        return self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight_q = self.quantize_weight()
        self.weight_q = weight_q.detach()
        x_q = self.quantize_input(x)
        return F.conv2d(x_q, weight_q, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def show_params(self) -> None:
        wgt_alpha = round(self.weight_quant.wgt_alpha.detach().item(), 3)
        act_alpha = round(self.act_alpha.detach().item(), 3)
        print("clipping threshold weight alpha: %f, activation alpha: %f" % (wgt_alpha, act_alpha))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", w_bit={self.w_bit}, a_bit={self.a_bit}, act_quant={self.act_quant}"


def set_act_quant(model: nn.Module, mode: str) -> None:
    """Set the activation quantizer of every QuantConv2d in ``model`` (see ACT_QUANT_MODES)."""
    for m in model.modules():
        if isinstance(m, QuantConv2d):
            m.set_act_quant(mode)
