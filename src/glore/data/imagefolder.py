"""Readers of on-disk image-classification layouts, with the standard ImageNet transforms.

Layouts (``layout=``):

- ``imagefolder`` (ImageNet and most sets)::

      root/train/<class>/<image>     root/val/<class>/<image>

  class indices follow the sorted class-folder names (torchvision's ``ImageFolder``).
- ``cub200`` (the CUB-200-2011 archive as distributed)::

      root/images/<class>/<image>, root/images.txt, root/image_class_labels.txt,
      root/train_test_split.txt

  ``train`` is the official training split, ``val`` / ``test`` the official test split.

Transforms: training uses ``RandomResizedCrop(image_size, scale, ratio)`` and a horizontal flip,
optionally after a random rotation and followed by colour jitter and PCA lighting noise (GCNet's
ImageNet recipe, arXiv 2012.13375 §5.2: ``rotation=10, color_jitter=0.4, lighting=0.1``);
evaluation resizes the short side to ``resize_size`` and takes one ``image_size`` center crop
(the 256 / 224 single-crop protocol). Both normalise with the ImageNet mean and std.

Errors say what was expected: a missing root or split directory, a split with no class folders or no
images, and an image file that cannot be decoded (:class:`ImageReadError` naming the file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from timm.data import IMAGENET_DEFAULT_STD as IMAGENET_STD, create_transform
from torchvision import datasets, tv_tensors
from torchvision.transforms import v2

from glore.errors import ArgumentError, GloreError, MissingFileError
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LAYOUTS = ("imagefolder", "cub200")


class ImageReadError(GloreError, ValueError):
    """An image file that cannot be decoded; the message names the file."""


# modes whose samples are wider than 8 bits: PIL's convert("RGB") clips them at 255 instead of scaling
_WIDE_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB; 16-bit samples are scaled to 0..255 (PIL alone would clip them)."""
    if image.mode in _WIDE_MODES:
        samples = np.asarray(image, dtype=np.float64)
        # 16-bit PNGs open as mode "I" (32-bit) too; their range is still 0..65535
        scaled = np.clip(samples / _WIDE_MODES[image.mode] * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode == "F":
        raise ImageReadError("floating-point images (PIL mode 'F') have no fixed range; convert them to 8 or 16 bits")
    return image.convert("RGB")


def load_rgb(path: str) -> Image.Image:
    """Open ``path`` as an RGB PIL image; :class:`ImageReadError` naming the file when it is unreadable."""
    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            image.load()
            return to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"cannot read image file {path!r}: {exc}") from None


# ImageNet's RGB covariance (pixel values in [0, 1]): eigenvalues and eigenvectors (columns), as
# published with AlexNet's "PCA lighting" augmentation (Krizhevsky et al., 2012)
IMAGENET_EIGENVALUES = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGENVECTORS = ((-0.5675, 0.7192, 0.4009),
                         (-0.5808, -0.0045, -0.8140),
                         (-0.5836, -0.6948, 0.4203))


class PCALighting(v2.Transform):
    """AlexNet's lighting noise: ``image + E (alpha * lambda)``, ``alpha ~ N(0, std)`` per image, with
    ``E`` and ``lambda`` the eigenvectors and eigenvalues of ImageNet's RGB covariance; on float
    images in [0, 1] (torchvision has no such transform)."""

    def __init__(self, std: float = 0.1):
        super().__init__()
        if isinstance(std, bool) or not isinstance(std, (int, float)) or std < 0:
            raise ArgumentError(f"lighting must be a non-negative number (the std of the noise), got {std!r}")
        self.std = float(std)
        self.eigenvalues = torch.tensor(IMAGENET_EIGENVALUES)
        self.eigenvectors = torch.tensor(IMAGENET_EIGENVECTORS)

    def make_params(self, flat_inputs):
        return {"alpha": torch.randn(3) * self.std}

    def transform(self, inpt, params):
        if not isinstance(inpt, torch.Tensor) or not inpt.is_floating_point():
            return inpt                                         # (labels and the like pass through)
        shift = self.eigenvectors @ (params["alpha"] * self.eigenvalues)     # (3,): one RGB offset
        return tv_tensors.wrap(inpt + shift.to(inpt.dtype)[:, None, None], like=inpt)


def build_transform(
    *,
    train: bool,
    image_size: int = 224,
    resize_size: int = 256,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    hflip: bool = True,
    rotation: float = 0.0,
    color_jitter: float | Sequence[float] = 0.0,
    lighting: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    recipe: dict | None = None,
):
    """The standard transforms: random resized crop + flip for training, resize + center crop otherwise.

    Training options of GCNet's recipe (all off by default): ``rotation`` (a random rotation in
    ``[-rotation, rotation]`` degrees first), ``color_jitter`` (brightness, contrast and saturation
    scaled by a factor in ``[1 - j, 1 + j]``, one ``j`` or three; 0.4 is the recipe's [0.6, 1.4]
    scaling) and ``lighting`` (:class:`PCALighting` noise of this std).

    ``recipe`` (any of :data:`RECIPE_KEYS`) builds them with ``timm.data.create_transform`` instead:
    ``auto_augment`` (timm's policy strings: ``rand-m9-mstd0.5-inc1`` for RandAugment 9/0.5,
    ``original`` for AutoAugment, ``trivialaugment``...), random erasing (``re_prob``, ``re_mode``,
    ``re_count``) and ``interpolation``; the evaluation transform then is timm's too (resize to
    ``resize_size``, center crop of ``image_size``, with that interpolation).
    """
    if recipe:
        if rotation or lighting or (color_jitter if isinstance(color_jitter, (int, float)) else any(color_jitter)):
            raise ArgumentError("timm's augmentations (data.auto_augment, re_*, interpolation) and GCNet's "
                                f"(rotation, color_jitter, lighting) do not combine; got {sorted(recipe)} with "
                                f"rotation={rotation!r}, color_jitter={color_jitter!r}, lighting={lighting!r}")
        return _timm_transform(train=train, image_size=image_size, resize_size=resize_size, scale=scale,
                               hflip=hflip, mean=mean, std=std, **recipe)
    if train:
        steps = [v2.RandomRotation(rotation, interpolation=v2.InterpolationMode.BILINEAR)] if rotation else []
        steps.append(v2.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio)))
        if hflip:
            steps.append(v2.RandomHorizontalFlip())
        jitter = (color_jitter,) * 3 if isinstance(color_jitter, (int, float)) else tuple(color_jitter)
        if len(jitter) != 3:
            raise ArgumentError(f"color_jitter must be one number or [brightness, contrast, saturation], "
                                f"got {color_jitter!r}")
        if any(jitter):
            steps.append(v2.ColorJitter(brightness=jitter[0], contrast=jitter[1], saturation=jitter[2]))
    else:
        steps = [v2.Resize(resize_size), v2.CenterCrop(image_size)]
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if train and lighting:
        steps.append(PCALighting(lighting))
    steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(steps)


RECIPE_KEYS = ("auto_augment", "re_prob", "re_mode", "re_count", "interpolation")


def _timm_transform(*, train, image_size, resize_size, scale, hflip, mean, std, **recipe):
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ArgumentError(f"unknown augmentation option(s) {unknown}; expected some of {list(RECIPE_KEYS)}")
    interpolation = recipe.pop("interpolation", "bilinear")
    common = dict(input_size=image_size, interpolation=interpolation, mean=tuple(mean), std=tuple(std),
                  crop_pct=image_size / resize_size)
    if not train:
        return create_transform(is_training=False, **common)
    try:
        return create_transform(is_training=True, scale=tuple(scale), hflip=0.5 if hflip else 0.0,
                                **common, **recipe)
    except (AssertionError, ValueError, KeyError) as exc:
        raise ArgumentError(f"timm cannot build the augmentation {recipe}: {exc}") from None


def _has_image(directory: str) -> bool:
    for _, _, files in os.walk(directory):
        if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in files):
            return True
    return False


def _not_a_folder(path: str) -> str:
    return "is a file, not a folder" if os.path.exists(path) else "does not exist"


def class_folders(directory: str) -> list[str]:
    """The sorted class folder names of a split directory (hidden folders left out)."""
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))


def check_imagefolder(root: str, split: str) -> str:
    """Return ``root/split`` after checking it is an ImageFolder layout; errors say what was expected."""
    expected = f"expected {os.path.join(root, split, '<class>', '<image>')}"
    if not os.path.isdir(root):
        raise MissingFileError(f"data directory {root!r} {_not_a_folder(root)}; {expected}")
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
        found = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
        raise MissingFileError(
            f"split directory {split_dir!r} does not exist (subdirectories of {root!r}: {found}); {expected}"
        )
    classes = class_folders(split_dir)
    if not classes:
        loose = [e.name for e in os.scandir(split_dir) if e.is_file()][:3]
        hint = f" (found files {loose} directly in it)" if loose else ""
        raise ArgumentError(f"wrong layout: {split_dir!r} has no class folders{hint}; {expected}")
    if not any(_has_image(os.path.join(split_dir, c)) for c in classes):
        raise ArgumentError(
            f"wrong layout: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {split_dir!r}; {expected}"
        )
    return split_dir


class ImageFolderDataset(datasets.ImageFolder):
    """torchvision ``ImageFolder`` over ``root/split`` with a checked layout and file-naming errors.

    Class folders without images are allowed (they keep their index), so train and val agree.
    ``classes``: the class names the labels index (another split's folders: a folder this split lacks
    keeps its index); default this split's folders.
    """

    def __init__(self, root: str, split: str, *, transform=None, classes: Sequence[str] | None = None):
        split_dir = check_imagefolder(os.fspath(root), split)
        self._given_classes = list(classes) if classes is not None else None
        super().__init__(split_dir, transform=transform, loader=load_rgb, allow_empty=True)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        if self._given_classes is None:
            return super().find_classes(directory)
        return self._given_classes, {name: index for index, name in enumerate(self._given_classes)}


class CUB200Dataset(torch.utils.data.Dataset):
    """CUB-200-2011 in its distributed layout (see the module docstring); labels 0..199."""

    FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt")

    def __init__(self, root: str, split: str, *, transform=None):
        root = os.fspath(root)
        expected = "expected the CUB_200_2011 layout: images/<class>/<image>, " + ", ".join(self.FILES)
        if not os.path.isdir(root):
            raise MissingFileError(f"data directory {root!r} {_not_a_folder(root)}; {expected}")
        missing = [f for f in self.FILES if not os.path.isfile(os.path.join(root, f))]
        if missing or not os.path.isdir(os.path.join(root, "images")):
            missing += [] if os.path.isdir(os.path.join(root, "images")) else ["images/"]
            raise MissingFileError(f"wrong layout in {root!r}: missing {missing}; {expected}")
        if split not in ("train", "val", "test"):
            raise ArgumentError(f"CUB-200 split must be train, val or test, got {split!r}")
        paths = self._read(root, "images.txt")
        labels = self._read(root, "image_class_labels.txt")
        is_train = self._read(root, "train_test_split.txt")
        want = "1" if split == "train" else "0"
        self.samples = [
            (os.path.join(root, "images", paths[i]), int(labels[i]) - 1)
            for i in sorted(paths, key=int)
            if is_train.get(i) == want
        ]
        if not self.samples:
            raise ArgumentError(f"no {split} images listed in {os.path.join(root, 'train_test_split.txt')!r}")
        self.targets = [t for _, t in self.samples]
        self.classes = self._class_names(root)
        self.transform = transform

    @classmethod
    def _class_names(cls, root: str) -> list[str]:
        """The 200 names in label order: ``classes.txt`` of the archive (``001.Black_footed_Albatross``),
        else the sorted folders of ``images/``."""
        if os.path.isfile(os.path.join(root, "classes.txt")):
            names = cls._read(root, "classes.txt")
            return [names[k] for k in sorted(names, key=int)]
        return sorted(e.name for e in os.scandir(os.path.join(root, "images")) if e.is_dir())

    @staticmethod
    def _read(root: str, name: str) -> dict[str, str]:
        out = {}
        path = os.path.join(root, name)
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise ArgumentError(f"{path!r} line {line_no}: expected '<id> <value>', got {line.strip()!r}")
                out[parts[0]] = parts[1]
        return out

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        image = load_rgb(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, target


def build_image_dataset(
    root: str,
    split: str,
    *,
    train: bool,
    layout: str = "imagefolder",
    augment: bool = True,
    image_size: int = 224,
    resize_size: int = 256,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    hflip: bool = True,
    rotation: float = 0.0,
    color_jitter: float | Sequence[float] = 0.0,
    lighting: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    classes: Sequence[str] | None = None,
    recipe: dict | None = None,
):
    """Dataset of ``(image tensor (3, image_size, image_size), label)`` for ``split`` of ``root``.

    ``train=True`` with ``augment=True`` uses the training augmentation, otherwise the center crop.
    ``classes`` (image folders): the class names the labels index, see :class:`ImageFolderDataset`;
    ``recipe``: timm's augmentations (see :func:`build_transform`).
    """
    transform = build_transform(
        train=train and augment, image_size=image_size, resize_size=resize_size,
        scale=scale, ratio=ratio, hflip=hflip, rotation=rotation, color_jitter=color_jitter,
        lighting=lighting, mean=mean, std=std, recipe=recipe,
    )
    if layout == "imagefolder":
        return ImageFolderDataset(root, split, transform=transform, classes=classes)
    if layout == "cub200":
        return CUB200Dataset(root, split, transform=transform)
    raise ArgumentError(f"unknown image layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def count_classes(root: str, split: str = "train", *, layout: str = "imagefolder") -> int:
    """Number of classes of a layout (class folders, or 200 for CUB)."""
    if layout == "cub200":
        return 200
    split_dir = check_imagefolder(os.fspath(root), split)
    return len(class_folders(split_dir))
