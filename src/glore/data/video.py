"""Kinetics-style video datasets: class folders of video files (PyAV) or of frame folders, or a CSV list.

Layouts accepted by :class:`VideoFolder` (``root`` is a split folder, e.g. ``kinetics/train``)::

    root/<class>/<video>.mp4             # any extension in VIDEO_EXTENSIONS, decoded with PyAV
    root/<class>/<video>/000001.jpg      # a folder of pre-extracted frames (sorted by name)

or an annotation list ``annotations=list.csv`` with a header holding ``path`` and ``label`` columns
(``path`` relative to ``root`` or absolute; ``label`` a class name or an integer index). A plain
``path label`` text list without header is accepted too.

Clip sampling (GloRe paper §4.4): ``num_frames`` frames ``stride`` apart (8 x 8 by default).

- ``mode="train"``: a random start; videos shorter than the clip span are looped.
- ``mode="center"``: the center clip (clip top-1).
- ``mode="multi"``: ``num_clips`` evenly spaced clips (video top-1 averages their scores); an item is
  then ``(clips (K, C, T, H, W), label)``.

A video that cannot be decoded raises :class:`VideoReadError` naming the file; with
``skip_unreadable=True`` it is reported once (a warning) and the next readable video is returned in
its place. The unreadable paths are collected in ``dataset.unreadable``.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "VideoFolder", "VideoReadError", "sample_clip_indices", "read_video_frames", "count_video_frames",
    "VIDEO_EXTENSIONS", "FRAME_EXTENSIONS",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MODES = ("train", "center", "multi")


class VideoReadError(RuntimeError):
    """A video (file or frame folder) that cannot be read; the message names it."""


# ----------------------------------------------------------------------------- sampling

def sample_clip_indices(num_video_frames: int, num_frames: int = 8, stride: int = 8, *, mode: str = "center",
                        num_clips: int = 10, generator: torch.Generator | None = None) -> list[list[int]]:
    """Frame indices of the clips to read from a video of ``num_video_frames`` frames.

    Returns a list of clips (one for ``train`` and ``center``, ``num_clips`` for ``multi``), each a list
    of ``num_frames`` indices ``start + stride * i``. A video shorter than the span
    ``(num_frames - 1) * stride + 1`` is looped (indices taken modulo its length).
    """
    if num_video_frames <= 0:
        raise ValueError(f"num_video_frames must be positive, got {num_video_frames}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    span = (num_frames - 1) * stride + 1
    room = max(num_video_frames - span, 0)
    if mode == "train":
        starts = [int(torch.randint(0, room + 1, (1,), generator=generator))]
    elif mode == "center":
        starts = [room // 2]
    else:
        starts = [int(round(s)) for s in np.linspace(0, room, num_clips)]
    return [[(s + stride * i) % num_video_frames for i in range(num_frames)] for s in starts]


# ----------------------------------------------------------------------------- decoding

def _is_frame_folder(path: Path) -> bool:
    return path.is_dir()


def _frame_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
    if not files:
        raise VideoReadError(f"frame folder {path} holds no frames ({', '.join(FRAME_EXTENSIONS)})")
    return files


def count_video_frames(path: str | Path) -> int:
    """Number of frames of a video file (header count when present, else by decoding) or frame folder."""
    path = Path(path)
    if _is_frame_folder(path):
        return len(_frame_files(path))
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.frames and stream.frames > 0:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))
    except VideoReadError:
        raise
    except Exception as exc:   # av.error.* and OSError: unreadable, truncated, not a video
        raise VideoReadError(f"cannot read video {path}: {type(exc).__name__}: {exc}") from exc


def _decode_file(path: Path) -> list:
    """All frames of a video file as PyAV frames (the caller converts the ones it needs to RGB)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = list(container.decode(stream))
    except VideoReadError:
        raise
    except Exception as exc:   # av.error.* and OSError: unreadable, truncated, not a video
        raise VideoReadError(f"cannot read video {path}: {type(exc).__name__}: {exc}") from exc
    if not frames:
        raise VideoReadError(f"cannot read video {path}: no frame could be decoded")
    return frames


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as exc:
        raise VideoReadError(f"cannot read frame {path}: {type(exc).__name__}: {exc}") from exc


def read_video_frames(path: str | Path, clips_fn: Callable[[int], list[list[int]]]) -> list[torch.Tensor]:
    """Decode ``path`` and return the clips chosen by ``clips_fn(num_video_frames)`` as ``uint8``
    ``(T, H, W, 3)`` tensors. The count passed to ``clips_fn`` is the number of frames actually decoded
    (frame folders: files), so a file whose header overstates its length still samples valid indices.
    """
    path = Path(path)
    if _is_frame_folder(path):
        files = _frame_files(path)
        clips = clips_fn(len(files))
        cache: dict[int, np.ndarray] = {}
        for index in sorted({i for clip in clips for i in clip}):
            cache[index] = _read_image(files[index])
        frames = cache
    else:
        if not path.is_file():
            raise VideoReadError(f"cannot read video {path}: no such file")
        decoded = _decode_file(path)
        clips = clips_fn(len(decoded))
        frames = {i: decoded[i].to_ndarray(format="rgb24") for clip in clips for i in clip}
    out = []
    for clip in clips:
        shapes = {frames[i].shape for i in clip}
        if len(shapes) != 1:
            raise VideoReadError(f"{path}: frames of different sizes {sorted(shapes)}")
        out.append(torch.from_numpy(np.stack([frames[i] for i in clip])))
    return out


# ----------------------------------------------------------------------------- dataset

def _list_classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_folders(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    items = []
    for label, name in enumerate(classes):
        for entry in sorted((root / name).iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS:
                items.append((entry, label))
            elif entry.is_dir():
                items.append((entry, label))
    return items


def _read_annotations(root: Path, annotations: Path, classes: list[str] | None
                      ) -> tuple[list[tuple[Path, int]], list[str]]:
    if not annotations.is_file():
        raise FileNotFoundError(f"annotation list not found: {annotations}")
    with open(annotations, newline="") as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{annotations}: empty annotation list")
    rows: list[tuple[str, str]] = []
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    if "path" in header and "label" in header:
        reader = csv.DictReader(lines, fieldnames=header)
        for lineno, row in enumerate(reader, start=1):
            if lineno == 1:
                continue
            rows.append((row["path"].strip(), row["label"].strip()))
    else:
        for lineno, line in enumerate(lines, start=1):
            parts = line.replace(",", " ").split()
            if len(parts) < 2:
                raise ValueError(f"{annotations}:{lineno}: expected 'path label' or a CSV with path,label "
                                 f"columns, got {line!r}")
            rows.append((parts[0], parts[-1]))
    names = sorted({label for _, label in rows if not label.lstrip("-").isdigit()})
    if classes is None:
        classes = names
    index = {name: i for i, name in enumerate(classes)}
    items = []
    for path, label in rows:
        if label.lstrip("-").isdigit():
            target = int(label)
        elif label in index:
            target = index[label]
        else:
            raise ValueError(f"{annotations}: label {label!r} of {path!r} is not a known class "
                             f"(expected one of {classes[:10]}{'...' if len(classes) > 10 else ''})")
        full = Path(path) if os.path.isabs(path) else root / path
        items.append((full, target))
    return items, classes


class VideoFolder(Dataset):
    """Clips from a Kinetics-style split folder (see the module docstring).

    Args:
        root: the split folder (class sub-folders), or the base of the paths of ``annotations``.
        annotations: optional CSV / text list of ``path, label``.
        classes: class names in label order (defaults to the sorted class folders or the list's names).
        num_frames: frames per clip (8).
        stride: frame stride (8).
        mode: ``train``, ``center`` or ``multi`` (``num_clips`` evenly spaced clips).
        num_clips: clips per video in ``multi`` mode (10).
        transform: applied to each clip's ``uint8`` ``(T, H, W, 3)`` tensor; without one the clip is
            returned as ``float32`` ``(3, T, H, W)`` in ``[0, 1]``.
        skip_unreadable: replace an unreadable video by the next readable one (warning once) instead of
            raising :class:`VideoReadError`.
        generator: random source of the training start frames.
    """

    def __init__(self, root: str | Path, *, annotations: str | Path | None = None,
                 classes: Sequence[str] | None = None, num_frames: int = 8, stride: int = 8,
                 mode: str = "train", num_clips: int = 10, transform: Callable | None = None,
                 skip_unreadable: bool = False, generator: torch.Generator | None = None):
        root = Path(os.path.expanduser(str(root)))
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        for name, value in (("num_frames", num_frames), ("stride", stride), ("num_clips", num_clips)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not root.is_dir():
            raise FileNotFoundError(f"video root not found (expected a folder of class folders): {root}")
        if annotations is not None:
            self.samples, self.classes = _read_annotations(
                root, Path(annotations), list(classes) if classes is not None else None)
        else:
            self.classes = list(classes) if classes is not None else _list_classes(root)
            if not self.classes:
                raise ValueError(f"{root}: no class folders found (expected root/<class>/<video>)")
            missing = [c for c in self.classes if not (root / c).is_dir()]
            if missing:
                raise ValueError(f"{root}: class folders {missing} not found")
            self.samples = _scan_folders(root, self.classes)
        if not self.samples:
            raise ValueError(f"{root}: no videos found (extensions {', '.join(VIDEO_EXTENSIONS)} or frame folders)")
        self.root, self.mode = root, mode
        self.num_frames, self.stride, self.num_clips = num_frames, stride, num_clips
        self.transform, self.skip_unreadable, self.generator = transform, skip_unreadable, generator
        self.unreadable: set[str] = set()

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def clip_indices(self, num_video_frames: int) -> list[list[int]]:
        return sample_clip_indices(num_video_frames, self.num_frames, self.stride, mode=self.mode,
                                   num_clips=self.num_clips, generator=self.generator)

    def _load(self, index: int):
        path, label = self.samples[index]
        clips = read_video_frames(path, self.clip_indices)
        if self.transform is not None:
            clips = [self.transform(c) for c in clips]
        else:
            clips = [c.permute(3, 0, 1, 2).float() / 255.0 for c in clips]
        if self.mode == "multi":
            return torch.stack(clips), label
        return clips[0], label

    def __getitem__(self, index: int):
        if not self.skip_unreadable:
            return self._load(index)
        for offset in range(len(self.samples)):
            i = (index + offset) % len(self.samples)
            try:
                return self._load(i)
            except VideoReadError as exc:
                path = str(self.samples[i][0])
                if path not in self.unreadable:
                    self.unreadable.add(path)
                    warnings.warn(f"skipping unreadable video: {exc}", stacklevel=2)
        raise VideoReadError(f"{self.root}: no readable video among {len(self.samples)}")
