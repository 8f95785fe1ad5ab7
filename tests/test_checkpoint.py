"""glore.checkpoint: the one checkpoint reader of every task."""

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from glore.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, read_state_dict
from glore.models.segmentation import create_segmenter


def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def test_read_state_dict_unwraps_lightning_ddp_and_compile_names(tmp_path):
    own = small_net().state_dict()
    lightning = {"state_dict": {f"model.{k}": v for k, v in own.items()}, "epoch": 3}
    torch.save(lightning, tmp_path / "last.ckpt")
    assert set(read_state_dict(tmp_path / "last.ckpt", expected=own)) == set(own)
    ddp = {f"module._orig_mod.{k}": v for k, v in own.items()}
    assert set(read_state_dict(ddp)) == set(own)
    save_file({k: v.contiguous() for k, v in own.items()}, str(tmp_path / "w.safetensors"))
    torch.testing.assert_close(read_state_dict(tmp_path / "w.safetensors"), dict(own))
    # a model whose own names start with "model." keeps them
    assert set(read_state_dict({"model.w": torch.ones(1)}, expected={"model.w"})) == {"model.w"}


def test_read_checkpoint_names_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.pth"):
        read_checkpoint(tmp_path / "gone.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="bad.pth"):
        read_checkpoint(tmp_path / "bad.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        read_checkpoint(tmp_path / "list.pth")


def test_load_checkpoint_strict_names_every_problem(tmp_path):
    state = small_net().state_dict()
    state.pop("2.bias")
    state["extra"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(5, 3)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"w.pth.*missing 1: 2.bias; unexpected 1: extra; "
                                              r"mismatched 1: 0.weight \(checkpoint \(5, 3\), model \(4, 3\)\)"):
        load_checkpoint(small_net(), tmp_path / "w.pth")
    model = small_net()
    torch.nn.init.zeros_(model[2].weight)
    with pytest.warns(UserWarning, match="2.bias"):
        load_checkpoint(model, state, strict=False)
    assert torch.equal(model[2].weight, small_net()[2].weight)         # the fitting tensors were loaded


def test_load_checkpoint_optional_prefixes_and_rename():
    source = small_net().state_dict()
    partial = {k: v for k, v in source.items() if not k.startswith("2.")}
    with pytest.warns(UserWarning, match=r"2 tensors under \['2.'\]"):
        load_checkpoint(small_net(), partial, optional=("2.",))
    renamed = {k.replace("0.", "first.", 1) if k.startswith("0.") else k: v for k, v in source.items()}
    with pytest.raises(CheckpointError, match="first.weight"):
        load_checkpoint(small_net(), renamed)
    model = load_checkpoint(small_net(), renamed, rename=lambda s: {k.replace("first.", "0."): v for k, v in s.items()})
    torch.testing.assert_close(model.state_dict(), source)


def test_importing_it_loads_no_engine_module():
    code = "import sys, glore.checkpoint; assert not any(m.startswith('glore.engine') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_segmenter_checkpoint_reads_as_load_checkpoint_does(tmp_path):
    def tiny(checkpoint=None):
        torch.manual_seed(0)
        return create_segmenter("tiny_segnet", num_classes=3, channels=8, aux_channels=8, multigrid=None,
                                backbone_kwargs={"width": 8}, checkpoint=checkpoint)

    own = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in tiny().state_dict().items()}
    torch.save({"state_dict": {f"model.{k}": v for k, v in own.items()}}, tmp_path / "last.ckpt")
    torch.testing.assert_close(tiny(tmp_path / "last.ckpt").state_dict(), own)
    bad = dict(own)
    bad["head.classifier.weight"] = torch.zeros(5, 8, 1, 1)
    bad["extra"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad.pth.*unexpected 1: extra; mismatched 1: head.classifier.weight"):
        tiny(tmp_path / "bad.pth")
    backbone = {k.removeprefix("backbone."): v for k, v in own.items() if k.startswith("backbone.")}
    backbone.pop("down.0.weight")
    backbone["fc.weight"] = torch.zeros(7, 8)                       # a classifier is dropped, not reported
    torch.save(backbone, tmp_path / "cls.pth")
    with pytest.raises(CheckpointError, match=r"cls.pth.*missing 1: down.0.weight$"):
        tiny(tmp_path / "cls.pth")
