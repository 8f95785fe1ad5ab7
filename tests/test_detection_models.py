"""create_detector: torchvision's structure, the GCNet paper's parameter counts, identity at init."""

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from glore.models import create_detector, inserted_blocks

SMALL = dict(min_size=64, max_size=64, returned_layers=(1, 2), fpn_channels=32, box_head_channels=64,
             mask_head_channels=16, rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_score_thresh=0.0)


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_plain_detector_has_torchvisions_parameters():
    import torchvision

    ours = create_detector("maskrcnn", "resnet50")
    theirs = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    assert _params(ours) == _params(theirs) == 44_454_513
    assert {n for n, _ in ours.named_parameters()} == {n for n, _ in theirs.named_parameters()}


@pytest.mark.parametrize("ratio, paper_m", [(1 / 32, 45.7), (1 / 16, 46.9), (1 / 8, 49.4)])
def test_gc_c3_c5_parameters_match_gcnet_table_5e(ratio, paper_m):
    # GCNet (arXiv 2012.13375) Table 5(e): Mask R-CNN R50-FPN + GC after_1x1 in every block of c3-c5
    model = create_detector("maskrcnn", "resnet50", block="gc", units="all", block_kwargs={"ratio": ratio})
    blocks = inserted_blocks(model)
    assert len(blocks) == 4 + 6 + 3 and all(n.endswith(".after_1x1") for n in blocks)
    assert abs(_params(model) / 1e6 / paper_m - 1) < 0.01
    # the paper's mmdetection heads predict 80 classes + background: the counts then round to the table's
    mmdet = create_detector("maskrcnn", "resnet50", block="gc", units="all", block_kwargs={"ratio": ratio},
                            num_classes=81)
    assert round(_params(mmdet) / 1e6, 1) == paper_m


@pytest.mark.parametrize("block, units, kwargs", [("gc", {"res2": 2, "res3": 2}, {"ratio": 1 / 4}), ("glore", {"res3": 1}, {}),
                                                  ("nl", {"res3": [2]}, {})])
def test_blocks_at_identity_give_the_plain_detections(block, units, kwargs):
    torch.manual_seed(0)
    plain = create_detector("maskrcnn", "resnet18", num_classes=3, **SMALL).eval()
    extended = create_detector("maskrcnn", "resnet18", num_classes=3, block=block, units=units,
                               block_kwargs=kwargs, **SMALL).eval()
    missing, unexpected = extended.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".after_" in k for k in missing)
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]
    with torch.no_grad():
        ours, theirs = extended(images), plain(images)
    assert len(theirs[0]["boxes"]) > 0
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_frozen_bn_and_trainable_layers():
    model = create_detector("fasterrcnn", "resnet18", frozen_bn=True, trainable_layers=3, block="gc",
                            units={"res3": 2}, **SMALL)
    body = model.backbone.body
    assert isinstance(body.bn1, FrozenBatchNorm2d) and isinstance(body.layer2[0].bn2, FrozenBatchNorm2d)
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad
    assert all(p.requires_grad for p in inserted_blocks(model)["backbone.body.layer2.0.after_1x1"].parameters())


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"frozen_bn|trainable_layers=3 freezes"):
        create_detector("fasterrcnn", "resnet18", trainable_layers=3, block="gc", units={"res2": 1}, **SMALL)
    with pytest.raises(ValueError, match=r"layer3.0.after_1x1.* returned_layers=\[1, 2\]"):
        create_detector("fasterrcnn", "resnet18", block="gc", units="all", **SMALL)
    with pytest.raises(ValueError, match="arch must be one of"):
        create_detector("retinanet")
    with pytest.raises(ValueError, match="needs units"):
        create_detector("fasterrcnn", "resnet18", block="gc")
    with pytest.raises(ValueError, match="not a weight of torchvision's resnet18"):
        create_detector("fasterrcnn", "resnet18", pretrained_backbone="IMAGENET9K")
    with pytest.raises(ValueError, match="anchor_sizes needs one entry per feature level"):
        create_detector("fasterrcnn", "resnet18", returned_layers=(1, 2), anchor_sizes=[16, 32])
