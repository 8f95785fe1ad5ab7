"""Residual blocks that carry inserted blocks as submodules, where the blocks act.

:func:`glore.models.insert_blocks` turns a backbone's residual block into the matching class below
(in place: the block keeps its modules, parameters and state-dict keys) and puts the inserted block
into one of two slots, both ``nn.Identity`` until filled (GCNet Table 5b):

- ``after_1x1``: inside the residual branch, after its last conv and that conv's norm, before the
  addition (timm's ``attn_layer`` slot ``se`` sits at the same point, after ``after_1x1``);
- ``after_add``: after the residual addition and its activation, on the block's output.

So ``print(model)`` and ``named_modules()`` show each block where it acts (``layer3.0.after_add``),
the forward has no hooks, and FX, TorchScript, ``torch.compile``, SyncBatchNorm conversion and
timm's feature wrappers see an ordinary module tree.

DPN blocks carry one tensor ``[residual path, dense path]``; a block after a DPN block acts on the
residual path only (its first ``num_1x1_c`` channels), which reproduces the GloRe paper's Table 2
parameter counts for DPN-98/131 (acting on the concatenation would make every unit larger).
"""

from __future__ import annotations

import torch
import torchvision.models.resnet as tv_resnet
from timm.models import dpn as timm_dpn
from timm.models import resnet as timm_resnet
from torch import nn

from glore.errors import ArgumentTypeError
from .slow_only import Bottleneck3d

SLOTS = ("after_1x1", "after_add")


class _Slots:
    """The two slots, ``nn.Identity`` until filled."""

    def _init_slots(self) -> None:
        children = dict(self.named_children())
        for slot in SLOTS:
            if slot not in children:
                self.add_module(slot, nn.Identity())


class TimmBottleneck(_Slots, timm_resnet.Bottleneck):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(x)))))
        x = self.after_1x1(self.bn3(self.conv3(x)))
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        return self.after_add(self.act3(x + shortcut))


class TimmBasicBlock(_Slots, timm_resnet.BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        x = self.after_1x1(self.bn2(self.conv2(x)))
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        return self.after_add(self.act2(x + shortcut))


class TorchvisionBottleneck(_Slots, tv_resnet.Bottleneck):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.after_1x1(self.bn3(self.conv3(out)))
        return self.after_add(self.relu(out + identity))


class TorchvisionBasicBlock(_Slots, tv_resnet.BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.after_1x1(self.bn2(self.conv2(out)))
        return self.after_add(self.relu(out + identity))


class DualPathBlock(_Slots, timm_dpn.DualPathBlock):
    """timm's DPN block; ``after_add`` acts on the residual path only (``after_1x1`` stays empty)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.c1x1_w_s1 is not None:
            shortcut = self.c1x1_w_s1(x)
        elif self.c1x1_w_s2 is not None:
            shortcut = self.c1x1_w_s2(x)
        x = self.c1x1_c(self.c3x3_b(self.c1x1_a(x)))
        c = self.num_1x1_c
        if self.c1x1_c1 is not None and self.c1x1_c2 is not None:
            residual, dense = self.c1x1_c1(x), self.c1x1_c2(x)
        else:
            residual, dense = x[:, :c], x[:, c:]
        residual = self.after_add(shortcut[:, :c] + residual)
        return torch.cat([residual, shortcut[:, c:], dense], dim=1)


# the backbone's class -> the class that carries the slots
HOSTS: dict[type, type] = {
    timm_resnet.Bottleneck: TimmBottleneck,
    timm_resnet.BasicBlock: TimmBasicBlock,
    tv_resnet.Bottleneck: TorchvisionBottleneck,
    tv_resnet.BasicBlock: TorchvisionBasicBlock,
    timm_dpn.DualPathBlock: DualPathBlock,
}
# positions each host class offers (the Slow-only network's bottleneck is built with its slots)
OFFERS = {cls: SLOTS for cls in HOSTS.values()} | {DualPathBlock: ("after_add",), Bottleneck3d: SLOTS}


def offered_positions(block: nn.Module) -> tuple[str, ...]:
    """The positions residual ``block`` offers; a ``TypeError`` if it cannot host blocks."""
    cls = HOSTS.get(type(block), type(block))
    if cls not in OFFERS:
        raise ArgumentTypeError(f"blocks can be inserted into residual blocks of types "
                        f"{sorted(c.__module__ + '.' + c.__name__ for c in HOSTS)}, got "
                        f"{type(block).__module__}.{type(block).__name__}")
    return OFFERS[cls]


def as_host(block: nn.Module) -> nn.Module:
    """Give residual ``block`` the slots (in place; its modules and keys are kept) and return it."""
    offered_positions(block)
    if type(block) in HOSTS:
        block.__class__ = HOSTS[type(block)]
        block._init_slots()
    return block


def host_channels(block: nn.Module) -> int:
    """Channels a block in ``block``'s slots sees (the residual path's for DPN)."""
    if isinstance(block, timm_dpn.DualPathBlock):
        return block.num_1x1_c
    last = block.conv3 if hasattr(block, "conv3") else block.conv2
    return last.out_channels
