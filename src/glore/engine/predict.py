"""Run a trained checkpoint on image and video files: ``glore predict``.

:func:`predict` rebuilds the network of a ``glore train`` checkpoint (:func:`glore.engine.runner.restore`),
reads each input the way its dataset's evaluation reads it (:func:`input_reader`), runs the network in
batches and writes, into ``output_dir``:

- classification and video: ``predictions.csv``, one row per input: ``file``, ``class``, ``score`` (the
  softmax probability of the top class), then ``top2_class``, ``top2_score`` ... up to ``topk``; a video
  of a Kinetics-layout run is scored as the mean softmax over its ``data.num_clips`` clips x
  ``data.num_crops`` crops, as ``glore evaluate`` scores video top-1;
- segmentation: ``<name>_labels.png`` (label ids: Cityscapes' own ids for a Cityscapes run, else the
  train ids) and ``<name>_colour.png`` (the palette of ``glore evaluate --opt save_coloured=N``);
- detection: ``detections.json`` (COCO results, each with its ``file`` and ``category_name``) and
  ``<name>_detections.png`` (boxes and masks above ``score_threshold`` drawn by ``torchvision.utils``).

Inputs are files or folders (searched recursively for images, videos and, for video runs, frame
folders). ``<name>`` is an input's path relative to the folder it was found in (the folder's own name
first), or its file name, without the extension. Files this would write that already exist are refused unless ``overwrite``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.transforms.v2.functional import normalize, pil_to_tensor
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks
from tqdm.auto import tqdm

from glore.checkpoint import checkpoint_class_names
from glore.data._options import dataset_option
from glore.data.cityscapes import train_id_to_id_lut
from glore.data.det_digits import DetDigits
from glore.data.distant_clips import DistantClips
from glore.data.distant_digits import DistantDigits
from glore.data.imagefolder import IMAGE_EXTENSIONS, ImageReadError, build_transform, load_rgb, to_rgb
from glore.data.moving_digits import MovingDigits
from glore.data.seg_digits import SegDigits
from glore.data.seg_palette import colour_image, palette
from glore.data.video import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, read_video_frames, sample_clip_indices
from glore.data.video_transforms import eval_transform
from glore.errors import ArgumentError, MissingFileError, RunFolderError
from glore.metrics.coco import to_coco_results
from .runner import restore
from .schema import VideoDataSection, data_section
from .segmentation import inference_options

# built-in sets whose canvases are grey: (the set, the channels the network reads)
_GREY_SETS = {"distant-digits": (DistantDigits, 1), "seg-digits": (SegDigits, 3), "det-digits": (DetDigits, 3)}
# built-in clip sets: a video read as grey frames
_CLIP_SETS = {"distant-clips": DistantClips, "moving-digits": MovingDigits}


# ---------------------------------------------------------------- inputs

def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def find_inputs(inputs: Sequence[str | os.PathLike], *, videos: bool) -> list[tuple[Path, str]]:
    """``(path, name)`` of every input file: the files given, and the images (``videos``: the videos
    and frame folders) found under the folders given, in sorted order."""

    def wanted(path: Path) -> bool:
        return path.suffix.lower() in (VIDEO_EXTENSIONS if videos else IMAGE_EXTENSIONS)

    def is_frame_folder(path: Path) -> bool:
        return videos and any(p.suffix.lower() in FRAME_EXTENSIONS for p in path.iterdir() if p.is_file())

    found = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            found.append((path, path.stem))
        elif path.is_dir():
            base = path.resolve().name or "input"
            if is_frame_folder(path):
                found.append((path, base))
                continue
            before = len(found)
            for root, dirs, files in os.walk(path):
                dirs.sort()
                root = Path(root)
                for sub in list(dirs):
                    if is_frame_folder(root / sub):
                        found.append((root / sub, str(Path(base, (root / sub).relative_to(path)))))
                        dirs.remove(sub)
                for name in sorted(files):
                    if wanted(root / name):
                        found.append((root / name, str(Path(base, (root / name).relative_to(path)).with_suffix(""))))
            if len(found) == before:
                kinds = ", ".join(VIDEO_EXTENSIONS if videos else IMAGE_EXTENSIONS)
                raise ArgumentError(f"input folder {str(path)!r} holds no {'videos' if videos else 'images'} ({kinds})")
        else:
            raise MissingFileError(f"input not found: {str(path)!r}; expected an image, a video or a folder of them")
    if not found:
        raise ArgumentError("no inputs given; expected image or video files or folders")
    names = [name for _, name in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ArgumentError(f"two inputs would write the same outputs: {duplicates[:3]}; give them from "
                            "different folders or rename them")
    return found


def read_grey(path: Path, channels: int = 1, size: int | None = None) -> torch.Tensor:
    """``(channels, H, W)`` float32 in [0, 1] of an image read as grey (a saved canvas), resized
    (bilinear) to ``size`` x ``size`` when it has another size."""

    try:
        with Image.open(path) as image:
            grey = to_rgb(image).convert("L")
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image file {str(path)!r}: {exc}") from None
    if size is not None and grey.size != (size, size):
        grey = grey.resize((size, size), Image.BILINEAR)
    tensor = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None]
    return tensor.expand(channels, -1, -1).contiguous()


def _rgb_tensor(path: Path) -> torch.Tensor:
    return pil_to_tensor(load_rgb(str(path))).float() / 255.0


def input_reader(cfg: dict) -> Callable[[Path], torch.Tensor]:
    """The function reading one input file of a run as its evaluation reads its data: a built-in set's
    grey canvas, an image layout's resize + center crop + ImageNet normalisation, a Cityscapes image
    normalised, a COCO image in [0, 1], a video's evaluation clips ``(views, C, T, H, W)``."""
    task, model = cfg.get("task", "classification"), cfg["model"]
    data = data_section(task, cfg["data"])
    name = data.name
    options = dict(data.options or {})
    if name in _GREY_SETS:
        dataset, channels = _GREY_SETS[name]
        channels = int(model.get("in_chans") or channels) if name == "distant-digits" else channels
        size = int(dataset_option(dataset, options, "canvas"))
        return lambda path: read_grey(path, channels, size)
    if name == "imagefolder":
        transform = build_transform(train=False, image_size=data.image_size, resize_size=data.resize_size)
        return lambda path: transform(load_rgb(str(path)))
    if name == "cityscapes":
        return lambda path: normalize(_rgb_tensor(path), list(IMAGENET_DEFAULT_MEAN), list(IMAGENET_DEFAULT_STD))
    if name == "coco":
        return _rgb_tensor
    if name == "kinetics":
        return _kinetics_reader(data)
    if name in _CLIP_SETS:
        return _clip_reader(cfg)
    raise ArgumentError(f"glore predict cannot read inputs for data.name={name!r} (task {task!r})")


def _kinetics_reader(data: VideoDataSection) -> Callable[[Path], torch.Tensor]:
    num_frames, stride = int(data.num_frames), int(data.stride)
    num_clips, num_crops = int(data.num_clips), int(data.num_crops)
    transform = eval_transform(crop=int(data.crop), short_side=int(data.short_side), num_crops=num_crops)

    def read(path: Path) -> torch.Tensor:
        clips = read_video_frames(path, lambda n: sample_clip_indices(n, num_frames, stride, mode="multi",
                                                                      num_clips=num_clips))
        views = [transform(clip) for clip in clips]
        return torch.cat([v if v.dim() == 5 else v[None] for v in views])      # (clips x crops, C, T, H, W)

    return read


def _clip_reader(cfg: dict) -> Callable[[Path], torch.Tensor]:
    """A built-in clip set's clip: ``num_frames`` consecutive grey frames from the middle of a video."""

    data, model = cfg["data"], cfg["model"]
    dataset, options = _CLIP_SETS[data["name"]], dict(data.get("options") or {})
    num_frames = int(dataset_option(dataset, options, "num_frames"))
    channels = int(options.get("channels", model.get("in_chans") or 1))

    def read(path: Path) -> torch.Tensor:
        clip = read_video_frames(path, lambda n: sample_clip_indices(n, num_frames, 1, mode="center"))[0]
        grey = clip.float().mean(dim=-1) / 255.0                               # (T, H, W)
        return grey[None].expand(channels, -1, -1, -1).contiguous()[None]      # (1, C, T, H, W)

    return read


# ---------------------------------------------------------------- running

def _device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ArgumentError(f"--device must be a torch device such as cpu, cuda or cuda:0, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"--device {device}: CUDA is not available on this machine")
    return dev


def _batches(items: list, batch_size: int):
    for start in range(0, len(items), batch_size):
        yield items[start:start + batch_size]


def _stack_runs(tensors: list[torch.Tensor]):
    """Consecutive tensors of one shape as stacked batches: ``(first index, batch)``."""
    start = 0
    while start < len(tensors):
        end = start + 1
        while end < len(tensors) and tensors[end].shape == tensors[start].shape:
            end += 1
        yield start, torch.stack(tensors[start:end])
        start = end


def num_classes(module) -> int:
    """The number of labels a task module's network scores (a detector's include the background)."""
    count = getattr(module, "num_classes", None)
    if count is None:                                  # torchvision's detectors
        count = module.model.roi_heads.box_predictor.cls_score.out_features
    return int(count)


def _output_paths(task: str, names: list[str], output_dir: Path) -> list[Path]:
    if task in ("classification", "video"):
        return [output_dir / "predictions.csv"]
    if task == "segmentation":
        return [output_dir / f"{n}{suffix}" for n in names for suffix in ("_labels.png", "_colour.png")]
    return [output_dir / "detections.json"] + [output_dir / f"{n}_detections.png" for n in names]


def predict(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *,
            device: str | None = None, batch_size: int = 16, topk: int = 5, score_threshold: float = 0.5,
            overwrite: bool = False, progress: bool | None = None) -> dict:
    """Predict ``inputs`` with ``checkpoint`` into ``output_dir`` (see the module docstring); returns
    ``{"task", "inputs", "files"}`` (the files written)."""

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ArgumentError(f"--topk must be a positive integer, got {topk!r}")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ArgumentError(f"--score-threshold must be in [0, 1], got {score_threshold!r}")
    dev = _device(device)
    _, module, cfg = restore(checkpoint)
    task = cfg.get("task", "classification")
    videos = task == "video" or cfg["data"].get("name") in _CLIP_SETS
    found = find_inputs(inputs, videos=videos)
    read = input_reader(cfg)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise RunFolderError(f"--output-dir {str(output_dir)!r} is a file; expected a folder")
    targets = _output_paths(task, [name for _, name in found], output_dir)
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise RunFolderError(f"{len(existing)} output file(s) already exist ({existing[0]}, ...); "
                             "pass --overwrite to replace them or choose another --output-dir")
    network = module.model.to(dev).eval()
    class_names = checkpoint_class_names({"class_names": module.class_names}, num_classes(module))
    bar = tqdm(total=len(found), unit="file", desc="predict", disable=None if progress is None else not progress)
    writer = {"classification": _ClassWriter, "video": _ClassWriter, "segmentation": _SegWriter,
              "detection": _DetWriter}[task](output_dir, class_names, cfg, topk=topk, score_threshold=score_threshold)
    with torch.inference_mode():
        for chunk in _batches(found, batch_size):
            tensors = [read(path) for path, _ in chunk]
            writer.run(network, chunk, tensors, dev)
            bar.update(len(chunk))
    bar.close()
    written = writer.close()
    return {"task": task, "inputs": len(found), "files": [str(p) for p in written]}


class _ClassWriter:
    """Top-k classes per input into ``predictions.csv``; several views of an input (clips x crops)
    are scored as their mean softmax."""

    def __init__(self, output_dir: Path, class_names: list[str], cfg: dict, *, topk: int, score_threshold: float):
        self.path = output_dir / "predictions.csv"
        self.names, self.k = class_names, min(topk, len(class_names))
        self.rows = []

    def run(self, network, chunk, tensors, dev) -> None:
        scores = [None] * len(tensors)
        multi = tensors[0].dim() == 5 and any(t.dim() == 5 for t in tensors)    # clips: (views, C, T, H, W)
        if multi:
            for i, views in enumerate(tensors):
                scores[i] = torch.softmax(network(views.to(dev)).float(), dim=1).mean(0)
        else:
            for start, batch in _stack_runs(tensors):
                probs = torch.softmax(network(batch.to(dev)).float(), dim=1)
                for offset, row in enumerate(probs):
                    scores[start + offset] = row
        for (path, _), prob in zip(chunk, scores):
            values, indices = prob.cpu().topk(self.k)
            row = [str(path)]
            for value, index in zip(values.tolist(), indices.tolist()):
                row += [self.names[index], f"{value:.6f}"]
            self.rows.append(row)

    def close(self) -> list[Path]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = ["file", "class", "score"]
        for rank in range(2, self.k + 1):
            header += [f"top{rank}_class", f"top{rank}_score"]
        with open(self.path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(self.rows)
        return [self.path]


class _SegWriter:
    """Per image: a label-id PNG and a colour PNG (the ``glore evaluate`` palette)."""

    def __init__(self, output_dir: Path, class_names: list[str], cfg: dict, *, topk: int, score_threshold: float):
        self.output_dir = output_dir
        self.dataset = cfg["data"].get("name")
        self.colours = palette(self.dataset, len(class_names))
        self.options = inference_options(cfg["model"])
        self.written: list[Path] = []

    def run(self, network, chunk, tensors, dev) -> None:
        for start, batch in _stack_runs(tensors):
            preds = network.predict(batch.to(dev), **self.options).argmax(1).to(torch.uint8).cpu().numpy()
            for offset, pred in enumerate(preds):
                name = chunk[start + offset][1]
                labels = train_id_to_id_lut()[pred] if self.dataset == "cityscapes" else pred
                for suffix, array in (("_labels.png", labels), ("_colour.png", colour_image(pred, self.colours))):
                    path = self.output_dir / f"{name}{suffix}"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.ascontiguousarray(array)).save(path)
                    self.written.append(path)

    def close(self) -> list[Path]:
        return self.written


class _DetWriter:
    """COCO results of every image into ``detections.json``; per image its boxes (and masks) drawn."""

    def __init__(self, output_dir: Path, class_names: list[str], cfg: dict, *, topk: int, score_threshold: float):
        self.output_dir, self.names, self.threshold = output_dir, class_names, float(score_threshold)
        self.results: list[dict] = []
        self.written: list[Path] = []
        self.count = 0

    def run(self, network, chunk, tensors, dev) -> None:
        outputs = network([t.to(dev) for t in tensors])
        for (path, name), image, output in zip(chunk, tensors, outputs):
            self.count += 1
            for result in to_coco_results([output], [self.count]):
                label = int(result["category_id"])
                self.results.append({"file": str(path), **result,
                                     "category_name": self.names[label] if label < len(self.names) else str(label)})
            keep = output["scores"].cpu() >= self.threshold
            canvas = (image.clamp(0, 1) * 255).to(torch.uint8)
            if canvas.shape[0] == 1:
                canvas = canvas.expand(3, -1, -1)
            if "masks" in output and bool(keep.any()):
                masks = output["masks"].cpu()[keep][:, 0] > 0.5
                canvas = draw_segmentation_masks(canvas, masks, alpha=0.4)
            labels = [f"{self.names[int(k)] if int(k) < len(self.names) else int(k)} {s:.2f}"
                      for k, s in zip(output["labels"].cpu()[keep], output["scores"].cpu()[keep].tolist())]
            canvas = draw_bounding_boxes(canvas, output["boxes"].cpu()[keep], labels=labels, colors="red")
            path_out = self.output_dir / f"{name}_detections.png"
            path_out.parent.mkdir(parents=True, exist_ok=True)

            Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(path_out)
            self.written.append(path_out)

    def close(self) -> list[Path]:
        path = self.output_dir / "detections.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.results) + "\n", encoding="utf-8")
        return [path, *self.written]
