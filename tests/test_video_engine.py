"""Video task through the engine: one training step on a PyAV-written tree, clip and video top-1."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from glore.engine import runner
from glore.engine import video as video_task
from glore.engine.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "video"


def write_video(path, num_frames: int, value: int, *, h: int = 36, w: int = 44):
    rng = np.random.default_rng(value)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _ in range(num_frames):
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture()
def kinetics(tmp_path):
    root = tmp_path / "kinetics"
    for split, n in (("train", 2), ("val", 1)):
        for c, name in enumerate(("abseiling", "bowling", "juggling")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(n):
                write_video(folder / f"{k}.mp4", 12 + 3 * k, value=10 * c + k)
    return root


def video_cfg(tmp_path, root, **model):
    return {
        "task": "video", "seed": 0, "output_dir": str(tmp_path / "run"),
        "model": {"name": "resnet50_3d", "block": "glore", "width_mult": 0.0625, **model},
        "data": {"name": "kinetics", "root": str(root), "num_frames": 4, "stride": 2, "crop": 32,
                 "scale": [34, 40], "short_side": 36, "num_clips": 3, "batch_size": 2, "num_workers": 0},
        "optim": {"name": "sgd", "lr": 0.001, "schedule": "constant"},
        "trainer": {"max_epochs": 1, "limit_train_batches": 1, "enable_progress_bar": False,
                    "accelerator": "cpu", "log_every_n_steps": 1},
    }


def test_one_training_step_then_clip_and_video_top1(tmp_path, kinetics):
    cfg = video_cfg(tmp_path, kinetics)
    module = video_task.build_module(cfg)
    assert module.num_classes == 3                      # inferred from the class folders
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    data = video_task.build_datamodule(cfg)
    data.setup("fit")
    clips, labels = next(iter(data.train_dataloader()))
    assert clips.shape == (2, 3, 4, 32, 32) and labels.shape == (2,)

    metrics = runner.train(cfg)
    assert 0.0 <= metrics["val/acc1"] <= 1.0 and np.isfinite(metrics["val/loss"])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    changed = [k for k, v in before.items() if not torch.equal(state[f"model.{k}"], v)]
    assert any(k.startswith("conv1") for k in changed)        # the step updated the weights

    result = runner.evaluate(str(ckpt), num_clips=3)
    assert result["val/videos"] == 3 and result["num_clips"] == 3 and result["num_crops"] == 3
    assert result["data/unreadable"] == 0
    assert result["val/video_acc5"] == 1.0                # 3 classes: the true one is always in the top 5
    for key in ("val/acc1", "val/video_acc1"):
        assert 0.0 <= result[key] <= 1.0
        assert result[key] * 3 == pytest.approx(round(result[key] * 3))   # k of 3 videos
    assert runner.evaluate(str(ckpt), clips=2, limit_batches=1)["num_clips"] == 2   # glore evaluate --clips
    assert runner.evaluate(str(ckpt), num_crops=1, limit_batches=1)["num_crops"] == 1
    with pytest.raises(ValueError, match="'views'"):
        runner.evaluate(str(ckpt), views=3)


def test_video_top1_averages_the_clip_scores(tmp_path, kinetics):
    cfg = video_cfg(tmp_path, kinetics, num_classes=3)
    module = video_task.build_module(cfg)
    data = video_task.build_datamodule(cfg)

    class Scripted(torch.nn.Module):
        """Counts the clips it has scored. evaluate() first scores the 3 center clips (one per video,
        videos in class order): all wrong. Then 3 clips per video: clip 0 strongly right, clips 1 and 2
        mildly wrong, so that only the averaged softmax scores get the video right."""

        seen = 0

        def forward(self, x):
            out = torch.zeros(x.shape[0], 3)
            for row in range(x.shape[0]):
                r = self.seen
                self.seen += 1
                if r < 3:
                    out[row, (r + 1) % 3] = 10.0
                else:
                    video, clip = divmod(r - 3, 3)
                    if clip == 0:
                        out[row, video] = 10.0
                    else:
                        out[row, (video + 1) % 3] = 1.0
            return out

    module.model = Scripted()
    result = video_task.evaluate(module, data, cfg, num_clips=3, num_crops=1)
    assert result["val/acc1"] == 0.0
    assert result["val/video_acc1"] == 1.0
    assert module.model.seen == 3 + 3 * 3


def test_video_top1_and_top5_average_clips_and_crops(tmp_path, kinetics):
    cfg = video_cfg(tmp_path, kinetics, num_classes=8)
    cfg["data"]["short_side"] = 32                      # frames 32 x 39: three 32 x 32 crops
    module = video_task.build_module(cfg)
    data = video_task.build_datamodule(cfg)

    class Scripted(torch.nn.Module):
        """Call 1 scores the 3 center clips; then one call per video (videos in class order 0, 1, 2)
        of 2 clips x 3 crops. Each crop votes strongly for its own wrong class (4, 5 or 6), every view
        a little for one class (the true one for videos 0 and 1, 7 for video 2): only averaging all
        six views ranks that class first. Video 2's true class comes 5th (after 7, 4, 5, 6)."""

        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, x):
            self.calls.append(tuple(x.shape))
            out = torch.zeros(x.shape[0], 8)
            if len(self.calls) == 1:
                return out
            video = len(self.calls) - 2
            for view in range(x.shape[0]):
                out[view, 4 + view % 3] = 3.0
                out[view, video if video < 2 else 7] = 2.5
                out[view, 3] = 1.0
            if video == 2:
                out[:, 2] = 1.5
            return out

    module.model = Scripted()
    result = video_task.evaluate(module, data, cfg, num_clips=2, num_crops=3, batch_size=6)
    assert module.model.calls == [(3, 3, 4, 32, 32)] + [(6, 3, 4, 32, 32)] * 3
    assert result["val/video_acc1"] == pytest.approx(2 / 3)
    assert result["val/video_acc5"] == 1.0
    assert result["num_clips"] == 2 and result["num_crops"] == 3
    module.model = Scripted()
    video_task.evaluate(module, data, cfg, num_clips=2, num_crops=1, batch_size=3)
    assert module.model.calls == [(3, 3, 4, 32, 32)] + [(2, 3, 4, 32, 32)] * 3


def test_moving_digits_config_trains_one_step(tmp_path):
    cfg = load_config(str(CONFIGS / "moving_digits_glore.yaml"),
                      [f"output_dir={tmp_path / 'md'}", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                       "trainer.limit_val_batches=1", "data.options.length=8", "data.val_options.length=8",
                       "data.batch_size=4",
                       "model.width_mult=0.0625"])
    metrics = runner.train(cfg)
    assert set(metrics) >= {"val/acc1", "val/loss"}
    result = runner.evaluate(str(tmp_path / "md" / "checkpoints" / "last.ckpt"))
    assert "val/video_acc1" not in result and 0 <= result["val/acc1"] <= 1 and result["val/videos"] == 8


def test_unknown_dataset_is_named(tmp_path, kinetics):
    cfg = video_cfg(tmp_path, kinetics)
    cfg["data"]["name"] = "ucf"
    with pytest.raises(ValueError, match="'ucf'"):
        video_task.build_datamodule(cfg)
