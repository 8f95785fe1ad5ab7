"""The segmentation LightningDataModule: Cityscapes or seg-digits, train and validation loaders.

Validation batches are dicts ``{"image", "target", "name"[, "instance"]}`` (:class:`NamedSamples`),
so that prediction writers can name their files after the input images.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from glore.data.cityscapes import CityscapesSegmentation
from glore.data.seg_digits import SegDigits
from glore.data.seg_transforms import build_seg_transforms
from glore.errors import ArgumentError
from .datamodule import TaskData, data_root
from .schema import SegmentationDataSection

DATASETS = ("cityscapes", "seg-digits")


def dataset_name(data_cfg: dict) -> str:
    """``data_cfg["name"]``, checked against :data:`DATASETS`."""
    name = data_cfg.get("name")
    if name not in DATASETS:
        raise ArgumentError(f"unknown segmentation dataset data.name={name!r}; expected one of {', '.join(DATASETS)}")
    return name


class NamedSamples(Dataset):
    """``dataset``'s ``(image, target[, instance])`` samples as dicts with the sample's ``name``
    (``dataset.sample_name(i)``, e.g. Cityscapes' ``<city>_<seq>_<frame>``, else the zero-padded index)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, index: int) -> str:
        sample_name = getattr(self.dataset, "sample_name", None)
        return sample_name(index) if callable(sample_name) else f"{index:05d}"

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        item = {"image": sample[0], "target": sample[1], "name": self.name(index)}
        if len(sample) > 2 and sample[2] is not None:
            item["instance"] = sample[2]
        return item


class SegmentationData(TaskData):
    """Train / val loaders for ``cfg["data"]`` (Cityscapes or seg-digits).

    ``val_limit`` (set before ``setup``) keeps only the first that many validation samples.
    """

    section = SegmentationDataSection

    def __init__(self, data_cfg: dict, *, seed: int = 0, val_limit: int | None = None):
        super().__init__(data_cfg, seed=seed)
        self.val_limit = val_limit
        self.name = dataset_name(self.data_cfg)

    def train_dataset(self):
        return self._dataset(self.data.train_split, train=True)

    def val_dataset(self):
        val_set = NamedSamples(self._dataset(self.data.val_split, train=False))
        if self.val_limit is not None:
            if isinstance(self.val_limit, bool) or not isinstance(self.val_limit, int) or self.val_limit < 1:
                raise ArgumentError(f"limit must be a positive integer (validation samples), got {self.val_limit!r}")
            val_set = torch.utils.data.Subset(val_set, range(min(self.val_limit, len(val_set))))
        return val_set

    def _dataset(self, split: str, *, train: bool):
        data = self.data
        if self.name == "seg-digits":
            return self.builtin_set(SegDigits, split, train=train)

        crop = data.crop_size
        transform = build_seg_transforms(
            train=train, crop_size=tuple(crop) if isinstance(crop, list) else crop,
            scale_range=data.scale_range, hflip=data.hflip)
        return CityscapesSegmentation(data_root(self.data_cfg, "a folder with leftImg8bit/ and gtFine/"), split, transform=transform, return_instances=not train)


def build_datamodule(cfg: dict) -> SegmentationData:
    return SegmentationData(cfg["data"], seed=int(cfg.get("seed", 0)))
