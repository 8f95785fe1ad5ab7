"""glore's Slow-only ResNet-50 against pytorchvideo's ``slow_r50`` (the SlowFast authors' library).

pytorchvideo is not a dependency of glore; install it aside and put it on the path::

    pip install --target /tmp/pytorchvideo --no-deps pytorchvideo==0.1.5 fvcore iopath portalocker \\
        yacs tabulate termcolor
    PYTHONPATH=src:/tmp/pytorchvideo python conformance/pytorchvideo_slow_only.py

Prints both networks' parameters and GMACs (one 3x8x224x224 clip, glore's counter), whether their
tensors have the same shapes, and the largest logit difference on a 1x3x8x64x64 clip once the same
random weights and BN statistics are in both.
"""

import re

import torch
from pytorchvideo.models.resnet import create_resnet

from glore.analysis import summary
from glore.models import create_slow_only

# our bottleneck's names -> pytorchvideo's ResBlock names
PARTS = {"conv1": "branch2.conv_a", "bn1": "branch2.norm_a", "conv2": "branch2.conv_b", "bn2": "branch2.norm_b",
         "conv3": "branch2.conv_c", "bn3": "branch2.norm_c", "downsample.0": "branch1_conv",
         "downsample.1": "branch1_norm"}


def pytorchvideo_name(name: str) -> str:
    found = re.fullmatch(r"layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.\d)\.(\w+)", name)
    if found:
        stage, block, part, tensor = found.groups()
        return f"blocks.{stage}.res_blocks.{block}.{PARTS[part]}.{tensor}"
    stem = {"conv1": "blocks.0.conv", "bn1": "blocks.0.norm", "fc": "blocks.5.proj"}
    module, tensor = name.rsplit(".", 1)
    return f"{stem[module]}.{tensor}"


def main() -> None:
    torch.manual_seed(0)
    ours = create_slow_only("slow_only_r50").eval()
    theirs = create_resnet(stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(8, 7, 7), model_depth=50,
                           model_num_class=400).eval()
    for label, model in (("glore slow_only_r50", ours), ("pytorchvideo slow_r50", theirs)):
        counts = summary(model, (3, 8, 224, 224))
        print(f"{label}: {counts['params']:,} parameters, {counts['gmacs']:.3f} GMACs")
    shapes = sorted(tuple(v.shape) for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked"))
    their_shapes = sorted(tuple(v.shape) for k, v in theirs.state_dict().items()
                          if not k.endswith("num_batches_tracked"))
    print(f"the same {len(shapes)} tensor shapes: {shapes == their_shapes}")

    # 64x64 clips end at 8x2x2 in res5: pytorchvideo pools with a fixed kernel, so rebuild its head for that
    theirs = create_resnet(stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(8, 2, 2), model_depth=50,
                           model_num_class=400).eval()
    state, their_state = ours.state_dict(), theirs.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                value.copy_(torch.rand_like(value) + 0.5)
            else:
                value.copy_(torch.randn_like(value) * 0.05)
            their_state[pytorchvideo_name(name)].copy_(value)
        clip = torch.randn(1, 3, 8, 64, 64)
        logits, their_logits = ours(clip), theirs(clip)
    print(f"largest logit difference: {(logits - their_logits).abs().max().item():.2e} "
          f"(largest logit magnitude {logits.abs().max().item():.2f})")


if __name__ == "__main__":
    main()
