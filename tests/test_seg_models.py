"""create_segmenter: output stride 8, multi-grid, heads, auxiliary output, checkpoints."""

import pytest
import timm
import torch
from torch import nn

from glore.models import create_segmenter
from glore.models.segmentation import ContextHead
from glore.nn import GlobalContext, GloRe, NonLocal, SimplifiedNonLocal


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("head", [None, "glore", "nl", "snl", "gc"])
def test_heads_give_logits_at_input_size(head):
    model = create_segmenter("resnet18", head=head, num_classes=5, channels=64, aux_channels=32).eval()
    x = torch.randn(2, 3, 41, 57)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 5, 41, 57)


def test_feature_maps_are_at_stride_8():
    model = create_segmenter("resnet18", head="glore", num_classes=3, channels=64).eval()
    with torch.no_grad():
        c4, c5 = model.backbone(torch.randn(1, 3, 64, 96))
    assert c4.shape[-2:] == c5.shape[-2:] == (8, 12)


def test_multigrid_sets_res5_dilations():
    model = create_segmenter("resnet50", head=None, aux=False)
    dil = [m.dilation[0] for m in model.backbone.layer4.modules()
           if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert dil == [4 * g for g in (1, 2, 4)]
    res4 = {m.dilation[0] for m in model.backbone.layer3.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}
    assert res4 <= {1, 2} and 2 in res4
    strides = {m.stride for m in list(model.backbone.layer3.modules()) + list(model.backbone.layer4.modules())
               if isinstance(m, nn.Conv2d)}
    assert strides == {(1, 1)}


def test_resnet50_glore_head_parameters():
    # no forward pass: the GloRe head adds exactly one GloRe(512, mid=128) unit over the plain FCN
    fcn = create_segmenter("resnet50", head=None)
    glore = create_segmenter("resnet50", head="glore")
    two = create_segmenter("resnet50", head="glore", head_depth=2)
    unit = GloRe(512, mid=128)
    assert isinstance(glore.head.context[0], GloRe)
    assert n_params(glore) - n_params(fcn) == n_params(unit)
    assert n_params(two) - n_params(fcn) == 2 * n_params(unit)
    backbone = timm.create_model("resnet50", pretrained=False)
    assert n_params(fcn.backbone) == n_params(backbone) - n_params(backbone.fc)


@pytest.mark.parametrize("head,cls", [("nl", NonLocal), ("snl", SimplifiedNonLocal), ("gc", GlobalContext)])
def test_gcnet_heads_concatenate_c5(head, cls):
    model = create_segmenter("resnet18", head=head, num_classes=4, channels=64)
    assert isinstance(model.head.context[0], cls)
    conv = model.head.conv_cat[0]
    assert conv.in_channels == 512 + 64 and conv.kernel_size == (3, 3)
    if head == "gc":   # ratio 1/4 for segmentation
        assert model.head.context[0].transform[0].out_channels == 64 // 4
    assert create_segmenter("resnet18", head="glore", channels=64).head.conv_cat is None


def test_aux_output_in_training_only():
    model = create_segmenter("resnet18", head="glore", num_classes=3, channels=32, aux_channels=16)
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert set(out) == {"out", "aux"} and out["aux"].shape == (2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)
        assert set(model(x, return_aux=True)) == {"out", "aux"}
    no_aux = create_segmenter("resnet18", aux=False, num_classes=3, channels=32).train()
    assert isinstance(no_aux(x), torch.Tensor)


def test_glore_head_is_identity_at_init():
    head = ContextHead(16, 3, block="glore", channels=16).eval()
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        y = head.conv_in(x)
        assert torch.allclose(head.context(y), y)


def test_backbone_checkpoint_is_loaded(tmp_path):
    cls = timm.create_model("resnet18", pretrained=False, num_classes=7)
    path = tmp_path / "cls.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in cls.state_dict().items()}}, path)
    model = create_segmenter("resnet18", head="glore", num_classes=3, channels=32, checkpoint=path)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, cls.layer4[1].conv2.weight)
    # a full segmenter state dict round-trips
    seg_path = tmp_path / "seg.pth"
    torch.save(model.state_dict(), seg_path)
    again = create_segmenter("resnet18", head="glore", num_classes=3, channels=32, checkpoint=seg_path)
    assert torch.equal(again.head.classifier.weight, model.head.classifier.weight)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="head must be one of"):
        create_segmenter("resnet18", head="aspp")
    with pytest.raises(ValueError, match="multigrid"):
        create_segmenter("resnet18", multigrid=(1, 0))
    with pytest.raises(ValueError, match="num_classes"):
        create_segmenter("resnet18", num_classes=0)
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        create_segmenter("resnet18", checkpoint=tmp_path / "nothing.pth")
    torch.save({"foo": torch.zeros(3)}, tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="no tensor matches"):
        create_segmenter("resnet18", checkpoint=tmp_path / "junk.pth")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        create_segmenter("resnet18", channels=16).eval()(torch.randn(1, 1, 16, 16))


def test_tiny_backbone_is_stride_4_without_multigrid():
    model = create_segmenter("tiny_segnet", head="glore", num_classes=3, channels=32, aux_channels=16,
                             multigrid=None, head_kwargs={"mid": 8}).eval()
    with torch.no_grad():
        c4, c5 = model.backbone(torch.randn(2, 3, 64, 48))
        out = model(torch.randn(2, 3, 64, 48))
    assert c4.shape == (2, 32, 32, 24) and c5.shape == (2, 32, 16, 12)
    assert out.shape == (2, 3, 64, 48)
    assert create_segmenter("tiny_segnet", multigrid=None, output_stride=4,
                            backbone_kwargs={"width": 8}).backbone.out_channels == (8, 8)
    with pytest.raises(ValueError, match="pass multigrid=None"):
        create_segmenter("tiny_segnet")
    with pytest.raises(ValueError, match="fixed output_stride of 4, got output_stride=8"):
        create_segmenter("tiny_segnet", multigrid=None, output_stride=8)
