"""Video data: PyAV-written Kinetics-style trees, frame folders, clip sampling, transforms, MovingDigits."""

import warnings

import av
import numpy as np
import pytest
import torch
from PIL import Image

from glore.data.moving_digits import MovingDigits
from glore.data.video import VideoFolder, VideoReadError, count_video_frames, sample_clip_indices
from torchvision.transforms import v2

from glore.data.video_transforms import MultiCrop, ToClip, ToVideo, eval_transform, train_transform

BITS = 6   # frame i shows its index in binary: 6 vertical bands of 8 pixels, white for a 1 bit


def frame_image(i: int, h: int, w: int) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    for bit in range(BITS):
        if (i >> bit) & 1:
            image[:, 8 * bit:8 * bit + 8] = 255
    return image


def write_video(path, num_frames: int, *, h: int = 32, w: int = 48):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, h, w), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frames(folder, num_frames: int, *, h: int = 32, w: int = 48):
    folder.mkdir(parents=True)
    for i in range(num_frames):
        Image.fromarray(frame_image(i, h, w)).save(folder / f"{i + 1:05d}.png")


def read_indices(clip: torch.Tensor) -> list[int]:
    """Frame indices of a float ``(C, T, H, W)`` clip in ``[0, 1]`` whose width is still 48 pixels."""
    bands = clip.mean(dim=(0, 2)).view(clip.shape[1], BITS, -1).mean(-1)      # (T, BITS)
    return [sum(1 << b for b in range(BITS) if float(row[b]) > 0.5) for row in bands]


@pytest.fixture()
def tree(tmp_path):
    """root/{jump,run}/: two mp4 files each (40 and 20 frames) and one frame folder (30 frames)."""
    root = tmp_path / "train"
    for name in ("jump", "run"):
        (root / name).mkdir(parents=True)
        write_video(root / name / "a.mp4", 40)
        write_video(root / name / "b.mp4", 20)
        write_frames(root / name / "c", 30)
    return root


# ----------------------------------------------------------------------------- sampling

def test_sample_clip_indices_center_multi_train_and_loop():
    assert sample_clip_indices(100, 8, 8, mode="center") == [[21 + 8 * i for i in range(8)]]   # room 43
    clips = sample_clip_indices(100, 8, 8, mode="multi", num_clips=10)
    starts = [c[0] for c in clips]
    assert len(clips) == 10 and starts[0] == 0 and starts[-1] == 100 - 57
    assert starts == sorted(starts) and len(set(starts)) == 10
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        (clip,) = sample_clip_indices(100, 8, 8, mode="train", generator=g)
        assert 0 <= clip[0] <= 43 and clip == [clip[0] + 8 * i for i in range(8)]
    # shorter than the span: looped
    assert sample_clip_indices(20, 8, 8, mode="center") == [[(8 * i) % 20 for i in range(8)]]
    with pytest.raises(ValueError, match="'random'"):
        sample_clip_indices(10, mode="random")


# ----------------------------------------------------------------------------- reading

def test_tree_is_read_with_classes_and_frame_indices(tree):
    ds = VideoFolder(tree, num_frames=4, stride=3, mode="center")
    assert ds.classes == ["jump", "run"]
    assert len(ds) == 6 and ds.targets == [0, 0, 0, 1, 1, 1]
    assert count_video_frames(tree / "jump" / "a.mp4") == 40
    for i, (path, _) in enumerate(ds.samples):
        clip, label = ds[i]
        assert clip.shape == (3, 4, 32, 48) and clip.dtype == torch.float32
        n = count_video_frames(path)
        assert read_indices(clip) == sample_clip_indices(n, 4, 3, mode="center")[0]
        assert label == ds.targets[i]


def test_multi_clip_mode_returns_evenly_spaced_clips(tree):
    ds = VideoFolder(tree, num_frames=4, stride=2, mode="multi", num_clips=5)
    clips, _ = ds[0]                     # a.mp4, 40 frames, span 7 -> starts 0 .. 33
    assert clips.shape == (5, 3, 4, 32, 48)
    assert [read_indices(c)[0] for c in clips] == [0, 8, 16, 25, 33]


def test_training_mode_random_start_and_transforms(tree):
    g = torch.Generator().manual_seed(1)
    ds = VideoFolder(tree, num_frames=4, stride=2, mode="train", generator=g)
    starts = set()
    for _ in range(8):
        clip, _ = ds[1]                  # b.mp4: 20 frames, span 7, start in 0..13
        idx = read_indices(clip)
        assert idx == [idx[0] + 2 * k for k in range(4)] and 0 <= idx[0] <= 13
        starts.add(idx[0])
    assert len(starts) > 1
    transform = train_transform(crop=24, scale=(28, 32))
    clip, _ = VideoFolder(tree, num_frames=4, stride=2, transform=transform, generator=g)[2]
    assert clip.shape == (3, 4, 24, 24)
    assert float(clip.min()) < 0        # normalised with the ImageNet statistics


def test_annotation_csv(tree, tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,label\njump/a.mp4,jump\nrun/c,run\nrun/b.mp4,1\n")
    ds = VideoFolder(tree, annotations=csv_path, num_frames=2, stride=1, mode="center")
    assert ds.classes == ["jump", "run"] and ds.targets == [0, 1, 1]
    clip, label = ds[1]
    assert label == 1 and read_indices(clip) == [14, 15]
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\njump/a.mp4,swim\n")
    with pytest.raises(ValueError, match="'swim'"):
        VideoFolder(tree, annotations=bad, classes=["jump", "run"])


def test_truncated_video_is_named_and_can_be_skipped(tree):
    broken = tree / "run" / "a.mp4"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    ds = VideoFolder(tree, num_frames=2, stride=1, mode="center")
    index = [str(p) for p, _ in ds.samples].index(str(broken))
    with pytest.raises(VideoReadError, match=str(broken)):
        ds[index]
    skipping = VideoFolder(tree, num_frames=2, stride=1, mode="center", skip_unreadable=True)
    with pytest.warns(UserWarning, match="a.mp4"):
        clip, label = skipping[index]
    assert clip.shape == (3, 2, 32, 48)
    assert skipping.unreadable == {str(broken)}
    with warnings.catch_warnings():      # reported once
        warnings.simplefilter("error")
        skipping[index]


def test_unreadable_file_and_empty_layouts(tmp_path):
    root = tmp_path / "val"
    (root / "x").mkdir(parents=True)
    (root / "x" / "junk.mp4").write_bytes(b"not a video" * 20)
    ds = VideoFolder(root, mode="center")
    with pytest.raises(VideoReadError, match="junk.mp4"):
        ds[0]
    (root / "x" / "junk.mp4").unlink()
    with pytest.raises(ValueError, match="no videos"):
        VideoFolder(root)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VideoFolder(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- transforms

def test_transforms_shapes_and_flip():
    frames = torch.arange(2 * 30 * 40 * 3, dtype=torch.float32).reshape(2, 30, 40, 3).to(torch.uint8)
    clip = ToClip()(ToVideo()(frames))
    assert clip.shape == (3, 2, 30, 40) and float(clip.max()) <= 1.0
    assert torch.equal(clip[:, 1, 4, 5] * 255, frames[1, 4, 5].float())
    out = eval_transform(crop=20, short_side=24, mean=None, std=None)(frames)
    assert out.shape == (3, 2, 20, 20)
    center = eval_transform(crop=10, short_side=30, mean=None, std=None)(frames)
    assert torch.equal(center, clip[..., 10:20, 15:25])
    normalised = eval_transform(crop=10, short_side=30, mean=(0.5, 0.25, 0), std=(2, 2, 1))(frames)
    torch.testing.assert_close(normalised[1], (center[1] - 0.25) / 2)      # per channel of (C, T, H, W)
    flipped = v2.Compose([ToVideo(), v2.RandomHorizontalFlip(1.0), ToClip()])(frames)
    assert torch.equal(flipped, clip.flip(-1))
    torch.manual_seed(0)
    crop = train_transform(crop=8, scale=(30, 34), mean=None)(frames)
    assert crop.shape == (3, 2, 8, 8)
    with pytest.raises(ValueError, match=r"\(50, 50\) larger than the short side 24"):
        eval_transform(crop=50, short_side=24)


# ----------------------------------------------------------------------------- MovingDigits

def test_moving_digits_deterministic_and_balanced():
    a = MovingDigits("train", length=32, seed=3)
    b = MovingDigits("train", length=32, seed=3)
    c = MovingDigits("train", length=32, seed=4)
    assert torch.equal(a[7][0], b[7][0]) and not torch.equal(a[7][0], c[7][0])
    labels = [a[i][1] for i in range(32)]
    assert sum(labels) == 16
    clip, _ = a[0]
    assert clip.shape == (1, 8, 48, 48) and clip.dtype == torch.float32
    assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0
    assert MovingDigits("val", length=4, channels=3, num_frames=16)[0][0].shape == (3, 16, 48, 48)


def test_moving_digits_same_task_has_one_still_and_one_moving_digit():
    ds = MovingDigits("train", length=16, task="same")
    for i in range(16):
        clip, _ = ds[i]
        frames = clip[0]
        static = (frames == frames[0]).all(0) & (frames[0] > 0.2)      # pixels of the still digit
        assert int(static.sum()) > 10
        assert not torch.equal(frames[0], frames[-1])                    # the other one moved


def test_moving_digits_closer_labels_match_the_geometry():
    ds = MovingDigits("train", length=16, task="closer", margin=4.0)
    # the digit masks drift apart or together: compare the spread of lit pixels at both ends
    spreads = []
    for i in range(16):
        clip, label = ds[i]
        first, last = clip[0, 0] > 0.3, clip[0, -1] > 0.3
        spread = [float(torch.nonzero(m).float().std(0).norm()) for m in (first, last)]
        spreads.append((spread[1] < spread[0]) == bool(label))
    assert sum(spreads) >= 12


def test_moving_digits_splits_use_disjoint_images():
    train, val = MovingDigits("train", length=2), MovingDigits("val", length=2)
    assert len(train.images) + len(val.images) == 1797
    assert not any(np.array_equal(train.images[0], v) for v in val.images[:50])
    with pytest.raises(ValueError, match="'valid'"):
        MovingDigits("valid")


def test_multi_crop_left_center_right_and_portrait():
    clip = torch.arange(40.0).expand(3, 2, 30, 40)             # pixel value = its column
    crops = MultiCrop(30, 3)(clip)
    assert crops.shape == (3, 3, 2, 30, 30)
    assert [int(c[0, 0, 0, 0]) for c in crops] == [0, 5, 10]   # left, center, right
    portrait = torch.arange(40.0)[:, None].expand(3, 2, 40, 30)
    assert [int(c[0, 0, 0, 0]) for c in MultiCrop(30, 3)(portrait)] == [0, 5, 10]   # top, center, bottom
    torch.testing.assert_close(MultiCrop(30, 1)(clip)[0], v2.CenterCrop(30)(clip))
    three = eval_transform(crop=30, short_side=30, num_crops=3, mean=None)
    frames = torch.zeros(2, 30, 40, 3, dtype=torch.uint8)
    assert three(frames).shape == (3, 3, 2, 30, 30)
    with pytest.raises(ValueError, match="num must be a positive integer, got 0"):
        MultiCrop(30, 0)


def test_multi_mode_stacks_clips_then_crops(tree):
    ds = VideoFolder(tree, num_frames=2, stride=4, mode="multi", num_clips=3,
                     transform=eval_transform(crop=32, short_side=32, num_crops=3, mean=None))
    clips, _ = ds[0]
    assert clips.shape == (9, 3, 2, 32, 32)
    # clip-major: views 0-2 are the three crops of the first clip (same frames, shifted windows)
    assert torch.equal(clips[0, :, :, :, 8:24], clips[1, :, :, :, 0:16])


def test_unreadable_videos_met_in_workers_are_counted_in_the_main_process(tree):
    broken = tree / "run" / "a.mp4"
    broken.write_bytes(broken.read_bytes()[:200])
    ds = VideoFolder(tree, num_frames=2, stride=1, mode="center", skip_unreadable=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sum(len(labels) for _, labels in loader) == len(ds)
    assert ds.unreadable == {str(broken)}
