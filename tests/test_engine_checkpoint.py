import os

import pytest
import torch

from glore.engine import atomic_checkpoint as ckpt_mod
from glore.checkpoint import read_checkpoint
from glore.engine.atomic_checkpoint import AtomicCheckpointIO, CheckpointError


def test_roundtrip_with_weights_only(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "sub" / "last.ckpt"
    state = {"state_dict": {"w": torch.arange(3.0)}, "hyper_parameters": {"cfg": {"a": [1, 2], "b": None}}}
    io.save_checkpoint(state, path)
    loaded = io.load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(3.0))
    assert loaded["hyper_parameters"] == {"cfg": {"a": [1, 2], "b": None}}
    assert os.listdir(path.parent) == ["last.ckpt"]  # no temporary file left


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    before = path.read_bytes()

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]
    assert int(read_checkpoint(path)["step"]) == 1


def test_objects_needing_pickle_are_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"model": torch.nn.Linear(1, 1)}, path)  # a whole module: not loadable with weights_only
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_truncated_and_missing_files_are_named(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"w": torch.zeros(100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*last.ckpt"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="gone.ckpt"):
        read_checkpoint(tmp_path / "gone.ckpt")
    with pytest.raises(ValueError, match="weights_only=True"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
