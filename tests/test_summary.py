"""glore.analysis.summary (glore/analysis/complexity.py): multiply-adds in the papers' convention,
checked by hand counts."""

import json
import math

import pytest
import timm
import torch
from torch import nn

from glore.analysis.complexity import count_parameters, summary
from glore.cli import main
from glore.nn import GloRe, GlobalContext, NonLocal, SimplifiedNonLocal


def glore_macs(c, mid, L, order="cheaper"):
    """Hand count of one GloRe unit ("Graph-Based Global Reasoning Networks", arXiv 1811.12814, §3), C_s = 2 mid, N = mid; ``order`` of its products:
    ``paper``, ``reassociated`` or ``cheaper`` (the unit's default)."""
    cs, n = 2 * mid, mid
    shared = (c * n * L         # theta: projection B
              + n * n * cs      # node-wise graph conv
              + cs * cs * n)    # state-wise graph conv
    paper = (c * cs * L         # phi: state reduction
             + cs * L * n       # V = phi(X) B^T
             + cs * n * L       # Y = Z B (reverse projection)
             + cs * c * L)      # extension
    reassociated = (c * L * n   # X B^T
                    + cs * c * n  # V = W_phi (X B^T)
                    + c * cs * n  # W_ext Z
                    + c * n * L)  # (W_ext Z) B
    return shared + {"paper": paper, "reassociated": reassociated,
                     "cheaper": min(paper, reassociated)}[order]


@pytest.mark.parametrize("reassociate,order", [(None, "cheaper"), (False, "paper"),
                                               (True, "reassociated")])
@pytest.mark.parametrize("size", [4, 14])
def test_glore_unit_hand_count_in_either_order(reassociate, order, size):
    unit = GloRe(64, mid=16, reassociate=reassociate)
    assert summary(unit, (64, size, size))["macs"] == glore_macs(64, 16, size * size, order)


def test_one_glore_unit_hand_count_and_params():
    unit = GloRe(1024, mid=256)
    result = summary(unit, (1024, 14, 14))
    assert result["macs"] == glore_macs(1024, 256, 196)
    assert result["params"] == 1_641_472               # one unit at C = 1024, mid = 256
    # counted at the dispatcher: every product of the unit runs as a 1x1 convolution, an (add)mm or a bmm
    assert set(result["macs_by_operator"]) <= {"convolution", "addmm", "mm", "bmm"}
    assert sum(result["macs_by_operator"].values()) == result["macs"]
    assert any("batch_norm" in op for op in result["uncounted_ops"])


def test_batched_pointwise_products_are_counted_per_input():
    # a batched (out, in) @ (B, in, L) product counts B times, and the result is per input
    unit = GloRe(64, mid=16)
    single = summary(unit, (64, 8, 8))["macs"]
    assert single == glore_macs(64, 16, 64)
    assert summary(unit, (64, 8, 8), batch_size=3)["macs"] == single


def test_5d_input_glore_unit():
    unit = GloRe(64, mid=16)
    assert summary(unit, (64, 4, 6, 6))["macs"] == glore_macs(64, 16, 4 * 36)


def test_nl_snl_gc_hand_counts():
    c, L = 256, 49
    inner = c // 2
    nl = summary(NonLocal(c), (c, 7, 7))["macs"]
    assert nl == 3 * c * inner * L + L * inner * L + inner * L * L + inner * c * L
    snl = summary(SimplifiedNonLocal(c), (c, 7, 7))["macs"]
    assert snl == c * L + c * L + c * c             # key conv, attention pooling, W_v on (C, 1)
    gc = summary(GlobalContext(c), (c, 7, 7))["macs"]
    assert gc == c * L + c * L + 2 * c * (c // 16)


def test_convnet_counts_convs_and_linear_only():
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    expected = []

    def hook(module, args, out):
        if isinstance(module, nn.Conv2d):
            k = math.prod(module.kernel_size) * module.in_channels // module.groups
            expected.append(out.numel() * k)
        elif isinstance(module, nn.Linear):
            expected.append(out.numel() * module.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 96, 96))
    for h in handles:
        h.remove()
    model.train()
    result = summary(model, (3, 96, 96))
    assert result["macs"] == sum(expected)
    assert result["gmacs"] == pytest.approx(sum(expected) / 1e9)
    assert result["params"] == sum(p.numel() for p in model.parameters())
    assert model.training                                  # mode restored


def test_conv3d_video_input():
    model = nn.Sequential(nn.Conv3d(3, 8, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
                          nn.ReLU(), GloRe(8, mid=2))
    result = summary(model, (3, 4, 16, 16))
    conv = 8 * 4 * 8 * 8 * (3 * 3 * 5 * 5)
    assert result["macs"] == conv + glore_macs(8, 2, 4 * 64)
    assert result["input_size"] == (3, 4, 16, 16)


def test_bad_arguments_and_the_meta_device():
    with pytest.raises(ValueError, match=r"input_size must be .* got \(3, 224\)"):
        summary(GloRe(8, mid=2), (3, 224))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        summary(GloRe(8, mid=2), (8, 4, 4), batch_size=0)
    with torch.device("meta"):
        unit = GloRe(8, mid=2)
    assert summary(unit, (8, 4, 4))["macs"] == summary(GloRe(8, mid=2), (8, 4, 4))["macs"]
    assert count_parameters(unit) == sum(p.numel() for p in unit.parameters())


# ---------------------------------------------------------------- the command
def test_cli_prints_ours_and_the_papers(capsys):
    assert main(["summary", "resnet50", "--block", "glore", "--units", "0,3"]) == 0
    out = capsys.readouterr().out
    assert "params        30.481 M" in out
    assert "GMACs         5.316" in out
    assert "30.5 M" in out and "5.2 GMACs" in out and "GloRe Table 2" in out
    assert "resnet50_glore_0_3" in out


def test_cli_json_yaml_units_and_block_args(capsys):
    assert main(["summary", "resnet18", "--block", "gc", "--units", "{res4: [2]}",
                 "--block-arg", "ratio=1/4", "--input-size", "3,64,64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    model_params = count_parameters(timm.create_model("resnet18", pretrained=False))
    c, h = 256, 256 // 4             # ratio 1/4
    assert out["params"] == model_params + (c + 1) + (c * h + h) + 2 * h + (h * c + c)
    assert out["paper"] == [] and out["input_size"] == [3, 64, 64]


def test_cli_errors(capsys):
    assert main(["summary", "resnet50", "--block", "glore", "--units", "0,9"]) == 2
    assert "res4 has 6 blocks" in capsys.readouterr().err
    assert main(["summary", "resnett50"]) == 2
    assert "close matches" in capsys.readouterr().err
    assert main(["summary", "resnet50", "--units", "0,3"]) == 2
    assert "need --block" in capsys.readouterr().err


def test_cli_dispatches_video_models(capsys):
    assert main(["summary", "resnet50_3d", "--kind", "video", "--block", "none",
                 "--input-size", "3,2,32,32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["input_size"] == [3, 2, 32, 32] and out["gmacs"] > 0


def test_cli_summarises_the_tiny_segmenter(capsys):
    # tiny_segnet has no res5: the ResNets' default multi-grid must not be passed to it
    assert main(["summary", "tiny_segnet", "--kind", "segmentation", "--input-size", "3,48,48",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    from glore.models import create_segmenter
    assert out["params"] == count_parameters(create_segmenter("tiny_segnet", multigrid=None))
