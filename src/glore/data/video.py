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
  then ``(clips (K, C, T, H, W), label)``, or ``(K * crops, C, T, H, W)`` when the transform returns
  several crops per clip (:class:`glore.data.video_transforms.MultiCrop`), clip-major.

A video that cannot be decoded raises :class:`VideoReadError` naming the file; with
``skip_unreadable=True`` it is reported once (a warning) and the next readable video is returned in
its place. The unreadable paths are collected in ``dataset.unreadable``, also those met in the
``DataLoader``'s worker processes (they append to a small file the main process reads).
"""

from __future__ import annotations

import csv
import os
import tempfile
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from glore.errors import ArgumentError, GloreError, MissingFileError
from .imagefolder import to_rgb

__all__ = [
    "VideoFolder", "VideoReadError", "UnreadableLog", "sample_clip_indices", "read_video_frames", "count_video_frames",
    "VIDEO_EXTENSIONS", "FRAME_EXTENSIONS",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MODES = ("train", "center", "multi")


class VideoReadError(GloreError, RuntimeError):
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
        raise ArgumentError(f"num_video_frames must be positive, got {num_video_frames}")
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {list(MODES)}, got {mode!r}")
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


# A wanted frame at most this many frames after the last decoded one is reached by decoding on; a
# farther one by seeking to the key frame before it. Either way the work per clip is bounded by the
# clip's span plus one group of pictures, whatever the video's length.
_SEEK_GAP = 64


def _header_frame_count(container, stream) -> int:
    """Frame count from the container's header (``stream.frames``, else duration x rate); 0 if unknown."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        return 0
    if stream.duration and stream.time_base:
        return int(stream.duration * stream.time_base * rate)
    if container.duration:                               # microseconds
        return int(container.duration * rate / 1_000_000)
    return 0


def _seek_frames(container, stream, wanted: list[int]) -> dict[int, np.ndarray] | None:
    """Decode only the ``wanted`` frame indices (sorted), seeking between far-apart ones.

    Frame ``i`` is the one whose presentation time is ``i / rate`` after the stream's start. Returns
    ``None`` when the file does not allow it (no rate or timestamps, a seek that lands after the
    wanted frame, or a frame past the end): the caller then decodes the whole file.
    """
    rate, tb = stream.average_rate or stream.guessed_rate, stream.time_base
    if not rate or not tb:
        return None
    start = stream.start_time or 0
    out: dict[int, np.ndarray] = {}
    frames, last = None, None
    for target in wanted:
        if target in out:
            continue
        if frames is None or last is None or not last < target <= last + _SEEK_GAP:
            container.seek(start + int(target / rate / tb), stream=stream, backward=True, any_frame=False)
            frames, last = container.decode(stream), None
        for frame in frames:
            if frame.pts is None:
                return None
            index = round(float((frame.pts - start) * tb * rate))
            if last is None and index > target:          # the seek overshot the wanted frame
                return None
            last = index
            if index in wanted:
                out[index] = frame.to_ndarray(format="rgb24")
            if index >= target:
                break
        if target not in out:                            # past the end, or a gap in the timestamps
            return None
    return out


def _read_file_clips(path: Path, clips_fn: Callable[[int], list[list[int]]]):
    """``(clips, {index: RGB frame})`` of a video file, decoding only the frames the clips need.

    The clips are chosen from the header's frame count; when the header has none, or seeking fails
    (see :func:`_seek_frames`), the whole file is decoded and the clips chosen from the decoded count.
    """

    if not path.is_file():
        raise VideoReadError(f"cannot read video {path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            count = _header_frame_count(container, stream)
            if count > 0:
                clips = clips_fn(count)
                frames = _seek_frames(container, stream, sorted({i for clip in clips for i in clip}))
                if frames is not None:
                    return clips, frames
    except VideoReadError:
        raise
    except Exception as exc:   # av.error.* and OSError: unreadable, truncated, not a video
        raise VideoReadError(f"cannot read video {path}: {type(exc).__name__}: {exc}") from exc
    decoded = _decode_file(path)
    clips = clips_fn(len(decoded))
    return clips, {i: decoded[i].to_ndarray(format="rgb24") for clip in clips for i in clip}


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(to_rgb(image))
    except Exception as exc:
        raise VideoReadError(f"cannot read frame {path}: {type(exc).__name__}: {exc}") from exc


def read_video_frames(path: str | Path, clips_fn: Callable[[int], list[list[int]]]) -> list[torch.Tensor]:
    """Decode ``path`` and return the clips chosen by ``clips_fn(num_video_frames)`` as ``uint8``
    ``(T, H, W, 3)`` tensors.

    Video files are read by seeking (PyAV): only the groups of pictures that hold a clip's frames are
    decoded, so the cost does not grow with the video's length. The count passed to ``clips_fn`` is
    the header's; when the header has none or overstates the length (a wanted frame is past the end),
    the whole file is decoded and ``clips_fn`` gets the number of frames actually decoded. For frame
    folders it is the number of files.
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
        clips, frames = _read_file_clips(path, clips_fn)
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
        raise MissingFileError(f"annotation list not found: {annotations}")
    with open(annotations, newline="") as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ArgumentError(f"{annotations}: empty annotation list")
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
                raise ArgumentError(f"{annotations}:{lineno}: expected 'path label' or a CSV with path,label "
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
            raise ArgumentError(f"{annotations}: label {label!r} of {path!r} is not a known class "
                             f"(expected one of {classes[:10]}{'...' if len(classes) > 10 else ''})")
        full = Path(path) if os.path.isabs(path) else root / path
        items.append((full, target))
    return items, classes


def _remove_owned(path: str, owner: int) -> None:
    if os.getpid() == owner:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


class UnreadableLog:
    """Paths of unreadable videos, shared between a dataset and its copies in worker processes.

    Workers hold a copy of the dataset (forked or pickled), so a set on the dataset would only fill in
    the worker. Each skip appends one line to a file created by the main process; :meth:`paths` reads
    it back there. The file is removed when the main process's log is collected.
    """

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="glore-unreadable-", suffix=".txt")
        os.close(fd)
        self._finalizer = weakref.finalize(self, _remove_owned, self.path, os.getpid())

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]

    def add(self, path: str) -> None:
        with open(self.path, "a") as f:      # one short append: atomic between processes
            f.write(path + "\n")

    def paths(self) -> set[str]:
        try:
            with open(self.path) as f:
                return {line.rstrip("\n") for line in f if line.strip()}
        except FileNotFoundError:
            return set()


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
            raise ArgumentError(f"mode must be one of {list(MODES)}, got {mode!r}")
        for name, value in (("num_frames", num_frames), ("stride", stride), ("num_clips", num_clips)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
        if not root.is_dir():
            raise MissingFileError(f"video root not found (expected a folder of class folders): {root}")
        if annotations is not None:
            self.samples, self.classes = _read_annotations(
                root, Path(annotations), list(classes) if classes is not None else None)
        else:
            self.classes = list(classes) if classes is not None else _list_classes(root)
            if not self.classes:
                raise ArgumentError(f"{root}: no class folders found (expected root/<class>/<video>)")
            missing = [c for c in self.classes if not (root / c).is_dir()]
            if missing:
                raise ArgumentError(f"{root}: class folders {missing} not found")
            self.samples = _scan_folders(root, self.classes)
        if not self.samples:
            raise ArgumentError(f"{root}: no videos found (extensions {', '.join(VIDEO_EXTENSIONS)} or frame folders)")
        self.root, self.mode = root, mode
        self.num_frames, self.stride, self.num_clips = num_frames, stride, num_clips
        self.transform, self.skip_unreadable, self.generator = transform, skip_unreadable, generator
        self._unreadable = UnreadableLog() if skip_unreadable else None

    @property
    def unreadable(self) -> set[str]:
        """Paths skipped as unreadable so far, in this process and in the DataLoader's workers."""
        return self._unreadable.paths() if self._unreadable is not None else set()

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
        if self.mode == "multi":   # (clips x crops, C, T, H, W) when the transform makes several crops
            return torch.cat([c if c.dim() == 5 else c[None] for c in clips]), label
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
                    self._unreadable.add(path)
                    warnings.warn(f"skipping unreadable video: {exc}", stacklevel=2)
        raise VideoReadError(f"{self.root}: no readable video among {len(self.samples)}")
