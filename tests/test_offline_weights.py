"""Pretrained weights without a network: a hub or URL miss fails in seconds with one line naming the
repository and the local-file option; local files for create_model and create_detector; a file of
another architecture or a corrupt one named in one line."""

import os
import time

import pytest
import torch
from safetensors.torch import save_file

from glore.checkpoint import CheckpointError
from glore.cli import main
from glore.models import create_model
from glore.models.weights import WeightsUnavailableError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_offline_hub_miss_fails_in_seconds_with_one_line(empty_caches, monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        create_model("resnet50", pretrained=True, block="glore", units=(0, 3))
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "\n" not in message and "'timm/resnet50." in message and "pretrained=/path/resnet50.safetensors" in message
    assert ("HF_HUB_OFFLINE is set" if env["HF_HUB_OFFLINE"] == "1" else "127.0.0.1:9 does not answer") in message


def test_shipped_config_with_pretrained_true_exits_2_offline(empty_caches, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    code = main(["train", "--config", os.path.join(CONFIGS, "classification", "cub200_resnet18_glore.yaml"),
                 "--output-dir", str(empty_caches / "run"), "data.root=/nonexistent"])
    assert code == 2 and time.perf_counter() - start < 10
    err = capsys.readouterr().err.strip()
    assert err.startswith("glore train: error: pretrained weights of resnet18") and "\n" not in err
    assert not (empty_caches / "run" / "checkpoints").exists()


def test_cached_hub_weights_load_offline(empty_caches, monkeypatch):
    """The check looks in the cache first: weights there load with HF_HUB_OFFLINE=1."""
    from timm.models import get_pretrained_cfg

    reference = create_model("resnet18")
    repo = get_pretrained_cfg("resnet18").hf_hub_id
    snapshot = empty_caches / "hf" / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(reference.state_dict(), str(snapshot / "model.safetensors"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("resnet18", pretrained=True, block="gc", units="all")
    torch.testing.assert_close(model.conv1.weight, reference.conv1.weight)


def test_weights_of_another_architecture_and_garbage_files_in_one_line(tmp_path):
    other = tmp_path / "resnet18.safetensors"
    save_file(create_model("resnet18").state_dict(), str(other))
    with pytest.raises(CheckpointError) as info:
        create_model("resnet50", pretrained=other, block="glore", units=(0, 3))
    message = str(info.value)
    assert "\n" not in message and len(message) < 600 and str(other) in message
    assert "does not fit resnet50 + glore: missing " in message and "mis-shaped 24 (" in message
    assert "glore" not in message.split("missing ", 1)[1].split(";")[0]     # the blocks may be missing
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        create_model("resnet50", pretrained=garbage)


def test_detector_backbone_from_a_local_file_or_a_fast_failure(empty_caches, monkeypatch):
    from glore.models import weights
    from glore.models.detection import create_detector

    small = dict(num_classes=3, returned_layers=(1,), anchor_sizes=(16, 32), fpn_channels=16, box_head_channels=32)
    monkeypatch.setattr(weights, "reachable", lambda url, timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError, match=r"download\.pytorch\.org.*pretrained_backbone=/path/resnet18\.pth"):
        create_detector("fasterrcnn", "resnet18", pretrained_backbone=True, **small)
    resnet = create_model("tv_resnet18")
    torch.save(resnet.state_dict(), empty_caches / "resnet18.pth")
    detector = create_detector("fasterrcnn", "resnet18", pretrained_backbone=str(empty_caches / "resnet18.pth"),
                               block="gc", units={"res2": [2]}, trainable_layers=4, **small)
    body = detector.backbone.body
    torch.testing.assert_close(body.layer1[0].conv1.weight, resnet.layer1[0].conv1.weight)
    assert type(body.bn1).__name__ == "FrozenBatchNorm2d"          # as with torchvision's weights
    with pytest.raises(CheckpointError, match="does not fit torchvision's resnet50: missing"):
        create_detector("fasterrcnn", "resnet50", pretrained_backbone=str(empty_caches / "resnet18.pth"), num_classes=3)
