"""GCNet's detectors (Tables 5-7): SyncBN / frozen BN, DCN v2, the 4conv1fc head, ResNeXt-101 32x4d,
weights files, multi-scale training, Cascade R-CNN end to end on det-digits, test-dev results files."""

import os

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from glore.errors import GloreError
from glore.models import create_detector
from glore.models.cascade import CascadeRoIHeads
from glore.models.deformable import ModulatedDeformConv2d

SMALL = dict(min_size=64, max_size=64, fpn_channels=16, box_head_channels=32, mask_head_channels=8,
             rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_score_thresh=0.0)


def _randomise_norms(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine weights, so that a norm left out would show."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2)
            nn.init.uniform_(module.weight, 0.5, 1.5), nn.init.uniform_(module.bias, -0.5, 0.5)


def _plain_features(resnet, x):
    x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    out = []
    for k in (1, 2, 3, 4):
        x = getattr(resnet, f"layer{k}")(x)
        out.append(x)
    return out


@pytest.mark.parametrize("backbone, norm", [("resnet18", "frozen"), ("resnet18", "syncbn")])
def test_dcn_and_blocks_at_identity_give_the_plain_backbone_features(tmp_path, backbone, norm):
    torch.manual_seed(0)
    plain = torchvision.models.get_model(backbone).eval()
    with torch.no_grad():
        _randomise_norms(plain)
    weights = tmp_path / "backbone.pth"
    torch.save(plain.state_dict(), weights)
    detector = create_detector("maskrcnn", backbone, pretrained_backbone=str(weights), frozen_bn=norm == "frozen",
                               dcn=True, block="gc", units="all", block_kwargs={"ratio": 1 / 4}, num_classes=3,
                               **SMALL)
    if norm == "syncbn":           # what trainer.sync_batchnorm does to the model
        detector = nn.SyncBatchNorm.convert_sync_batchnorm(detector)
    body = detector.backbone.body
    assert isinstance(body.layer2[0].conv2, ModulatedDeformConv2d) and isinstance(body.layer4[-1].conv2, ModulatedDeformConv2d)
    assert not isinstance(body.layer1[0].conv2, ModulatedDeformConv2d)
    # trainable_layers 3 (pretrained): c1-c2 fixed, their norms frozen whatever frozen_bn says
    assert isinstance(body.bn1, FrozenBatchNorm2d) and isinstance(body.layer1[0].bn1, FrozenBatchNorm2d)
    expected = FrozenBatchNorm2d if norm == "frozen" else nn.SyncBatchNorm
    assert isinstance(body.layer3[0].bn2, expected) and body.layer3[0].conv2.offset_mask.weight.requires_grad
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        ours = list(body.eval()(x).values())
        theirs = _plain_features(plain, x)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_modulated_deform_conv_starts_as_the_conv_and_learns_its_offsets():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=True)
    dcn = ModulatedDeformConv2d.from_conv(conv)
    x = torch.randn(2, 8, 9, 11)
    torch.testing.assert_close(dcn(x), conv(x), rtol=1e-5, atol=1e-5)
    dcn(x).square().sum().backward()
    assert dcn.offset_mask.weight.grad.abs().sum() > 0 and dcn.weight.grad is not None


def test_deformable_convs_are_counted_as_convs():
    from glore.analysis.complexity import summary

    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    macs = summary(ModulatedDeformConv2d.from_conv(conv), (8, 10, 10))["macs"]
    assert macs == 16 * 8 * 9 * 100 + 27 * 8 * 9 * 100          # the conv + its offset/mask conv


class _Attention(nn.Module):
    def forward(self, x):                       # a matrix product outside any module: mmdetection does not count it
        flat = x.flatten(2)
        return x + (flat @ flat.mT @ flat).view_as(x)


def test_mmdet_convention_counts_modules_as_mmdetections_counter():
    from glore.analysis.detection_complexity import mmdet_macs

    deconv = nn.ConvTranspose2d(8, 4, 2, stride=2)                 # 5x5 -> 10x10
    assert mmdet_macs(deconv, torch.zeros(1, 8, 5, 5)) == 2 * 2 * 8 * 4 * 100 + 4 * 100     # over its output
    head = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         _Attention(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))
    conv, bn, relu, pool, linear = 27 * 6 * 64 + 6 * 64, 2 * 6 * 64, 6 * 64, 6 * 64, 96 * 5
    assert mmdet_macs(head, torch.zeros(2, 3, 8, 8)) == conv + bn + relu + pool + linear      # per image
    dcn = ModulatedDeformConv2d.from_conv(nn.Conv2d(8, 16, 3, padding=1, bias=False))
    assert mmdet_macs(dcn, torch.zeros(1, 8, 10, 10)) == 16 * 8 * 9 * 100 + (27 * 8 * 9 + 27) * 100


def test_mmdet_convention_of_a_detector_is_unpadded_and_named():
    from glore.analysis.detection_complexity import count_detector
    from glore.errors import ArgumentError

    model = create_detector("maskrcnn", "resnet18", num_classes=3, **SMALL).eval()
    torch_count = count_detector(model, (3, 64, 80))["macs"]                        # padded to 64x96
    mmdet = count_detector(model, (3, 64, 80), convention="mmdet")
    assert mmdet["params"] == sum(p.numel() for p in model.parameters())
    assert mmdet["macs"] < count_detector(model, (3, 64, 96), convention="mmdet")["macs"]    # 64x80: not padded
    # the mask head's 2x2 deconv over its 28x28 output: 3 x its multiply-adds more than the torch count
    deconv = model.roi_heads.mask_predictor.conv5_mask
    extra_deconv = 3 * deconv.weight.numel() * 14 * 14 * 100
    assert mmdet["macs"] - extra_deconv > torch_count * 0.8 * 80 / 96
    with pytest.raises(ArgumentError, match="convention must be one of"):
        count_detector(model, (3, 64, 80), convention="detectron")


def test_summary_counts_a_detector_in_either_convention(capsys):
    import json

    from glore.cli import main

    args = ["summary", "resnet18", "--kind", "detection", "--arch", "fasterrcnn", "--num-classes", "3",
            "--input-size", "3,64,80", "--json"]
    counts = {}
    for convention in ("torch", "mmdet"):
        assert main([*args, "--convention", convention]) == 0
        counts[convention] = json.loads(capsys.readouterr().out)["macs"]
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["macs"] == counts["torch"]   # the default
    assert counts["mmdet"] != counts["torch"]
    assert main(["summary", "resnet18", "--convention", "mmdet"]) == 2
    assert "counts detectors only" in capsys.readouterr().err


def test_4conv1fc_head_with_norms():
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead

    model = create_detector("maskrcnn", "resnet18", box_head="4conv1fc", head_norm=True, num_classes=3, **SMALL)
    head = model.roi_heads.box_head
    assert isinstance(head, FastRCNNConvFCHead)
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert len([m for m in head.modules() if isinstance(m, nn.BatchNorm2d)]) == 4
    assert [m.out_features for m in head.modules() if isinstance(m, nn.Linear)] == [32]
    assert len([m for m in model.roi_heads.mask_head.modules() if isinstance(m, nn.BatchNorm2d)]) == 4
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.fpn.modules())
    plain = create_detector("maskrcnn", "resnet18", box_head="4conv1fc", num_classes=3, **SMALL)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.roi_heads.modules())
    with pytest.raises(GloreError, match="box_head must be one of"):
        create_detector("maskrcnn", "resnet18", box_head="4conv2fc")


def test_resnext101_32x4d_is_timms_architecture():
    import timm

    with torch.device("meta"):
        ours = create_detector("maskrcnn", "resnext101_32x4d").backbone.body
        theirs = timm.create_model("resnext101_32x4d")
    ours_shapes = {k: v.shape for k, v in ours.state_dict().items()}
    theirs_shapes = {k: v.shape for k, v in theirs.state_dict().items() if not k.startswith("fc.")}
    assert ours_shapes == theirs_shapes                                     # timm's weights files load as they are
    with pytest.raises(GloreError, match="no weights for resnext101_32x4d"):
        create_detector("maskrcnn", "resnext101_32x4d", pretrained_backbone=True)


def test_a_weights_file_loads_into_the_backbone_and_a_missing_one_is_named(tmp_path):
    import timm

    source = timm.create_model("resnet18")                                 # timm's names
    path = tmp_path / "r18.safetensors"
    from safetensors.torch import save_file
    save_file(source.state_dict(), str(path))
    model = create_detector("fasterrcnn", "resnet18", pretrained_backbone=str(path), frozen_bn=False, **SMALL)
    torch.testing.assert_close(model.backbone.body.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert model.backbone.body.layer2[0].conv1.weight.requires_grad and not model.backbone.body.conv1.weight.requires_grad
    with pytest.raises(GloreError, match="missing.pth"):
        create_detector("fasterrcnn", "resnet18", pretrained_backbone=str(tmp_path / "missing.pth"))


def test_multi_scale_training_samples_the_shorter_side():
    from glore.engine.detection import build_detector

    model = build_detector({"arch": "fasterrcnn", "backbone": "resnet18", "min_size": [32, 48, 64],
                            "max_size": 1000, "fpn_channels": 16, "box_head_channels": 32})
    image = torch.rand(3, 64, 96)
    sizes = {model.transform.train()([image])[0].image_sizes[0][0] for _ in range(30)}
    assert sizes == {32, 48, 64}
    assert model.transform.eval()([image])[0].image_sizes[0][0] == 64   # test: the last size


def test_cascade_stages_weights_and_thresholds():
    torch.manual_seed(0)
    model = create_detector("cascade_maskrcnn", "resnet18", num_classes=3, **SMALL)
    heads = model.roi_heads
    assert isinstance(heads, CascadeRoIHeads) and len(heads.box_heads) == 3
    assert [m.high_threshold for m in heads.matchers] == [0.5, 0.6, 0.7] and heads.stage_weights == (1, 0.5, 0.25)
    assert [c.weights for c in heads.box_coders] == [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
    images = [torch.rand(3, 64, 64)]
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 5:30, 8:30], masks[1, 35:60, 30:62] = 1, 1
    targets = [{"boxes": torch.tensor([[8.0, 5, 30, 30], [30, 35, 62, 60]]), "labels": torch.tensor([1, 2]),
                "masks": masks}]

    def losses(weights):
        heads.stage_weights = weights
        torch.manual_seed(1)
        return model.train()(images, targets)

    weighted, unweighted = losses((1.0, 0.5, 0.25)), losses((1.0, 1.0, 1.0))
    for suffix, weight in (("", 1.0), ("_stage2", 0.5), ("_stage3", 0.25)):
        for name in ("loss_classifier", "loss_box_reg"):
            torch.testing.assert_close(weighted[name + suffix], weight * unweighted[name + suffix])
    assert "loss_mask" in weighted and weighted["loss_mask"] > 0


def test_cascade_trains_and_evaluates_through_glore_train(tmp_path):
    from glore.engine import runner
    from glore.engine.config import load_config

    here = os.path.dirname(__file__)
    overrides = ["model.arch=cascade_maskrcnn", "model.box_head=4conv1fc", "model.head_norm=true",
                 "model.min_size=[48,64]", "model.max_size=64", "model.fpn_channels=16",
                 "model.box_head_channels=32", "model.mask_head_channels=8", "model.box_score_thresh=0.0",
                 "model.rpn_post_nms_top_n_test=20", "model.anchor_sizes=[16,32]",
                 "data.options={canvas: 64, num_digits: 2, digit_size: 12, key_size: 8, min_distance: 16}",
                 "data.train_samples=4", "data.val_samples=3", "data.batch_size=2", "data.val_batch_size=2",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1",
                 "trainer.log_every_n_steps=1", f"output_dir={tmp_path / 'run'}"]
    cfg = load_config(os.path.join(here, "..", "configs", "detection", "det_digits_baseline.yaml"), overrides)
    metrics = runner.train(cfg)
    assert len([k for k in metrics if k.startswith("val/bbox/")]) == 12
    logged = (tmp_path / "run" / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_classifier_stage3", "train/loss_box_reg_stage2", "train/loss_mask"} <= set(logged)
    assert len([k for k in metrics if k.startswith("val/segm/")]) == 12
    values = runner.evaluate(str(tmp_path / "run" / "checkpoints" / "last.ckpt"),
                             detections=str(tmp_path / "detections.json"))
    assert values["val/images"] == 3 and values["val/detections"] > 0
    assert values["val/bbox/ap"] == pytest.approx(metrics["val/bbox/ap"], abs=1e-9)
    _writes_test_dev_results(tmp_path, str(tmp_path / "run" / "checkpoints" / "last.ckpt"))


def _writes_test_dev_results(tmp_path, checkpoint):
    """Images without annotations -> COCO results files per IoU type that pycocotools' loadRes reads."""
    import json
    import shutil

    from pycocotools.coco import COCO

    from glore.data.det_digits import DetDigits, write_coco_tree
    from glore.engine import runner

    root = tmp_path / "coco"
    write_coco_tree(DetDigits("val", num_samples=3, canvas=64, num_digits=2, digit_size=12, key_size=8,
                              min_distance=16), root)
    annotations = json.loads((root / "annotations" / "instances_val.json").read_text())
    info = tmp_path / "image_info_test.json"                       # as test-dev's: images and categories only
    info.write_text(json.dumps({"images": annotations["images"], "categories": annotations["categories"]}))
    values = runner.evaluate(checkpoint, images=str(root / "val"), image_info=str(info),
                             detections=str(tmp_path / "test" / "results.json"))
    assert values["test/images"] == 3 and values["test/detections"] > 0
    gt = COCO(str(info))
    for iou_type in ("bbox", "segm"):
        results = json.loads((tmp_path / "test" / f"results_{iou_type}.json").read_text())
        assert len(results) == values["test/detections"]
        assert {r["image_id"] for r in results} <= {image["id"] for image in annotations["images"]}
        assert ("segmentation" in results[0]) == (iou_type == "segm") and ("bbox" in results[0]) == (iou_type == "bbox")
        gt.loadRes(results)                                           # the official reader takes it
    # without an image_info file the ids are the file names' numbers (COCO's 000000123456.jpg)
    numbered = tmp_path / "numbered"
    numbered.mkdir()
    for image in annotations["images"]:
        shutil.copy(root / "val" / image["file_name"], numbered / f"{image['id'] + 100:012d}.png")
    values = runner.evaluate(checkpoint, images=str(numbered), detections=str(tmp_path / "numbered.json"))
    ids = {r["image_id"] for r in json.loads((tmp_path / "numbered_bbox.json").read_text())}
    assert ids and ids <= {image["id"] + 100 for image in annotations["images"]}
    with pytest.raises(GloreError, match="image ids come from the file names"):
        runner.evaluate(checkpoint, images=str(root / "val"))
