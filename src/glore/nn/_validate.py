"""Argument and input checks shared by the blocks (errors name the expected and the given value),
and the initialisation they share.

The blocks call :func:`check_block_input` first thing in ``forward``. Each module that calls it
registers it with ``torch.fx.wrap``, so that ``torch.fx.symbolic_trace`` (and torchvision's and
timm's feature extractors, which use it) records the check as one call in the graph instead of
tracing its Python conditions: a traced model still validates its inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from glore.errors import ArgumentError, ArgumentTypeError


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


# a block larger than this is a mistake in its sizes (ResNet-50 + GloRe holds 3e7 parameters)
MAX_BLOCK_PARAMETERS = 2**31


def check_parameter_count(block: str, count: int, sizes: str) -> None:
    """Refuse a block of more than :data:`MAX_BLOCK_PARAMETERS` parameters before allocating it."""
    if count > MAX_BLOCK_PARAMETERS:
        raise ArgumentError(f"{block}({sizes}) would hold {count:.3g} parameters ({count * 4 / 2**30:.3g} GiB in "
                            f"float32), more than {MAX_BLOCK_PARAMETERS:.3g}; check the channel sizes")


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ArgumentError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_block_input(block: str, x: torch.Tensor, channels: int, dtype: torch.dtype | None = None) -> None:
    """Validate an input of shape ``(B, C, *S)`` with 1 to 3 spatial/temporal dims, and (outside
    autocast, which casts by itself) of the block's parameter ``dtype``."""
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{block} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.dim() > 5:
        raise ArgumentError(
            f"{block} expects an input of shape (B, C, L), (B, C, H, W) or (B, C, T, H, W) "
            f"(3 to 5 dims), got {x.dim()} dims with shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ArgumentTypeError(f"{block} expects a floating-point input, got dtype {x.dtype}")
    if x.shape[1] != channels:
        raise ArgumentError(f"{block} was built for {channels} channels, got an input with {x.shape[1]} "
                         f"channels (shape {tuple(x.shape)})")
    if any(s <= 0 for s in x.shape):
        raise ArgumentError(f"{block} expects non-empty dims, got shape {tuple(x.shape)}")
    if dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ArgumentTypeError(f"{block} has {dtype} parameters, got a {x.dtype} input; cast the input "
                                f"(x.to({dtype})) or the block (.to({x.dtype}))")


def _parameter_dtype(module: nn.Module) -> torch.dtype | None:
    if torch.compiler.is_compiling():  # dtypes are fixed in a compiled graph; iterating would break it
        return None
    for parameter in module.parameters():
        return parameter.dtype
    return None


class ZeroInitBlock(nn.Module):
    """A block whose residual branch starts at zero (with ``zero_init``): the identity.

    ``zero_init_last()`` zeroes the branch's last layer (timm's ``ResNet.init_weights`` calls it on
    every module that has it); ``reset_parameters()`` re-initialises every submodule as at
    construction, then calls it, so a block built on the meta device and reset is the identity again.
    """

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.zero_init_last()

    def zero_init_last(self) -> None:
        raise NotImplementedError
