"""HRNet (glore.models.hrnet): its stages for inserted blocks, the blocks at identity from a
pretrained file written by the test, the HRNetV2 representation, the segmenter on it, its summary."""

import json

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from glore.analysis.complexity import count_parameters
from glore.cli import main
from glore.engine.config import load_config
from glore.engine.segmentation import build_segmenter
from glore.errors import GloreError
from glore.models import create_model, create_segmenter, find_stages, inserted_blocks
from glore.models.hrnet import HRNetV2Features
from glore.models.segmentation import create_backbone
from glore.nn import GlobalContext, GloRe

pytestmark = pytest.mark.xdist_group("hrnet")

NAME = "hrnet_w18_small"          # branches of 16, 32, 64, 128 channels; 1 module per stage
CONFIG = "configs/segmentation/seg_digits_hrnet_glore.yaml"


def _plain_state():
    """Weights like trained ones: BN biases and running statistics away from their initial values."""
    torch.manual_seed(0)
    model = timm.create_model(NAME)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.state_dict()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / f"{NAME}.safetensors"
    save_file({k: v.contiguous() for k, v in _plain_state().items()}, str(path))
    return path


def test_stages_are_layer1_and_the_branches_of_each_module():
    depths = {stage: len(hosts) for stage, hosts in find_stages(create_model(NAME)).items()}
    assert depths == {"layer1": 1, "stage2.0.branches.0": 2, "stage2.0.branches.1": 2,
                      **{f"stage3.0.branches.{b}": 2 for b in range(3)},
                      **{f"stage4.0.branches.{b}": 2 for b in range(4)}}


def test_units_sit_after_the_branch_blocks_with_mid_from_their_channels():
    model = create_model(NAME, block="glore", units={"stage4.0.branches.0": [2], "stage3.0.branches.2": 1})
    units = inserted_blocks(model)
    assert sorted(units) == ["stage3.0.branches.2.0.after_add", "stage4.0.branches.0.1.after_add"]
    assert units["stage3.0.branches.2.0.after_add"].num_nodes == 64 // 4   # mid = C / 4 nodes
    gc = inserted_blocks(create_model(NAME, block="gc", units="all"))
    assert len(gc) == 2 * 2 + 3 * 2 + 4 * 2 and all(isinstance(u, GlobalContext) for u in gc.values())
    assert all(name.endswith("after_1x1") for name in gc) and not any(n.startswith("layer1") for n in gc)
    with pytest.raises(GloreError, match="stage4.0.branches.0 has 2 blocks"):
        create_model(NAME, block="glore", units={"stage4.0.branches.0": [3]})


@pytest.mark.parametrize("block, units", [("glore", {"stage4.0.branches.0": [2], "stage2.0.branches.1": [1]}),
                                          ("gc", "all")])
def test_blocks_at_identity_give_the_plain_backbones_maps(block, units, weights):
    plain = create_backbone(NAME, multigrid=None, pretrained=str(weights)).eval()
    model = create_backbone(NAME, multigrid=None, pretrained=str(weights),
                            blocks=dict(block=block, units=units)).eval()
    assert inserted_blocks(model)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        want = plain(x)[1]
        torch.testing.assert_close(model(x)[1], want, rtol=1e-5, atol=1e-5)
        for unit in inserted_blocks(model).values():   # away from the identity, the units change the maps
            for p in unit.parameters():
                p.add_(0.1 * torch.randn_like(p))
        assert (model(x)[1] - want).abs().max() > 1e-4
    reference = timm.create_model(NAME, features_only=True, feature_location="", out_indices=(1, 2, 3, 4)).eval()
    reference.load_state_dict(plain.state_dict())
    assert torch.equal(plain(x)[1][:, :16], reference(x)[0])   # the file's weights, the stride-4 branch first


def test_hrnetv2_representation_concatenates_the_upsampled_branches():
    backbone = create_backbone(NAME, multigrid=None).eval()
    assert isinstance(backbone, HRNetV2Features) and backbone.out_channels == (240, 240)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        c4, c5 = backbone(x)
        branches = timm.models.hrnet.HighResolutionNetFeatures.forward(backbone, x)
    assert c4 is c5 and c5.shape == (1, 240, 16, 16)
    torch.testing.assert_close(c5[:, 16 + 32 + 64:], F.interpolate(branches[3], size=(16, 16), mode="bilinear", align_corners=False))
    with torch.no_grad():                      # sides not multiples of 32: padded, then cropped to ceil(H / 4)
        assert backbone(torch.randn(1, 3, 50, 70))[1].shape == (1, 240, 13, 18)
    with pytest.raises(GloreError, match="output_stride 4"):
        create_backbone(NAME, multigrid=None, output_stride=8)
    with pytest.raises(GloreError, match="multigrid=None"):
        create_backbone(NAME)


def test_segmenter_forward_and_aux():
    model = create_segmenter(NAME, head="glore", num_classes=3, multigrid=None, channels=32, aux_channels=16,
                             head_kwargs={"mid": 8})
    assert isinstance(model.head.context[0], GloRe)
    x = torch.randn(2, 3, 50, 70)
    out = model.train()(x)
    assert out["out"].shape == out["aux"].shape == (2, 3, 50, 70)
    (out["out"].mean() + out["aux"].mean()).backward()
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3, 50, 70)


def test_config_builds_and_summary_counts_it(capsys):
    cfg = load_config(CONFIG)
    model = build_segmenter(cfg["model"])
    assert list(inserted_blocks(model.backbone)) == ["stage4.0.branches.0.1.after_add"]
    assert main(["summary", "--config", CONFIG, "--input-size", "3,64,64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == count_parameters(model)
    assert main(["summary", NAME, "--block", "glore", "--units", "{stage4.0.branches.3: 1}",
                 "--input-size", "3,64,64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == count_parameters(timm.create_model(NAME)) + count_parameters(GloRe(128, mid=32))
