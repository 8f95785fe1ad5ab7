"""Modulated deformable convolution (DCN v2, Zhu et al., arXiv 1811.11168) in a ResNet's 3x3 convs.

GCNet's strongest detectors (Table 7) put DCN v2 in every bottleneck of c3-c5. Each 3x3 conv ``w``
becomes

    y(p) = sum_k w_k * x(p + p_k + dp_k) * m_k,    (dp, m) = offset_mask_conv(x)

through ``torchvision.ops.DeformConv2d``. The offset/mask conv starts at zero, so ``dp = 0`` and
the modulation ``m = 2 * sigmoid(0) = 1``: a converted ImageNet backbone computes exactly the plain
conv at step 0. (DCN v2 as published uses ``m = sigmoid(.)`` in [0, 1], whose zero initialisation
halves every pretrained 3x3 conv at step 0; the factor 2 keeps the pretrained network intact and
lets a mask weight range over (0, 2).)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import register_flop_formula
from torchvision.ops import DeformConv2d


class ModulatedDeformConv2d(DeformConv2d):
    """DCN v2 with its own offset/mask conv; ``from_conv`` copies a plain conv's weight and bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        kh, kw = self.kernel_size
        # two offsets (dy, dx) and one modulation per kernel tap, one offset group
        self.offset_mask = nn.Conv2d(in_channels, 3 * kh * kw, self.kernel_size, self.stride, self.padding,
                                     self.dilation, bias=True)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "ModulatedDeformConv2d":
        dcn = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0],
                  conv.dilation[0], conv.groups, conv.bias is not None).to(conv.weight.device, conv.weight.dtype)
        with torch.no_grad():
            dcn.weight.copy_(conv.weight)
            if conv.bias is not None:
                dcn.bias.copy_(conv.bias)
        return dcn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_y, offset_x, mask = self.offset_mask(x).chunk(3, dim=1)   # (B, k*k, H', W') each
        offset = torch.cat((offset_y, offset_x), dim=1)                   # (B, 2*k*k, H', W')
        return super().forward(x, offset, 2 * torch.sigmoid(mask))        # (B, C_out, H', W')


def add_deformable_convs(resnet: nn.Module, stages=(2, 3, 4)) -> list[str]:
    """Replace the 3x3 ``conv2`` of every bottleneck (or ``conv2`` of every basic block) in
    ``layer{stages}`` by a :class:`ModulatedDeformConv2d` holding its weights; returns their names."""
    names = []
    for stage in stages:
        for index, block in enumerate(getattr(resnet, f"layer{stage}")):
            block.conv2 = ModulatedDeformConv2d.from_conv(block.conv2)
            names.append(f"layer{stage}.{index}.conv2")
    return names


def _register_flop_formula() -> None:
    """Count ``torchvision::deform_conv2d`` as the convolution it modulates (torch's counter skips
    custom operators; the offset/mask conv is an ordinary conv and is counted as such)."""
    @register_flop_formula(torch.ops.torchvision.deform_conv2d)
    def deform_conv2d_flop(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
        out_channels, in_per_group, kh, kw = weight_shape
        batch, _, height, width = out_shape
        return 2 * batch * out_channels * in_per_group * kh * kw * height * width


_register_flop_formula()
