"""The segmentation LightningDataModule: Cityscapes or seg-digits, train and validation loaders.

Validation batches are dicts ``{"image", "target", "name"[, "instance"]}`` (:class:`NamedSamples`),
so that prediction writers can name their files after the input images.
"""

from __future__ import annotations

import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from glore.errors import ArgumentError
from .loaders import EpochSeededDataset, make_loader

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


def _data_root(data: dict) -> str:
    root = data.get("root")
    if not root:
        raise ArgumentError("data.root is required for data.name='cityscapes' (a folder with leftImg8bit/ and gtFine/)")
    return os.path.expanduser(str(root))


class SegmentationData(L.LightningDataModule):
    """Train / val loaders for ``cfg["data"]`` (Cityscapes or seg-digits).

    ``val_limit`` (set before ``setup``) keeps only the first that many validation samples.
    """

    def __init__(self, data_cfg: dict, *, seed: int = 0, val_limit: int | None = None):
        super().__init__()
        self.data_cfg = dict(data_cfg)
        self.seed = seed
        self.val_limit = val_limit
        self.name = dataset_name(self.data_cfg)
        self.train_set = self.val_set = None

    def dataset(self, split_key: str, default: str, *, train: bool):
        data = self.data_cfg
        split = data.get(split_key, default)
        if self.name == "seg-digits":
            from glore.data.seg_digits import SegDigits

            options = dict(data.get("options") or {})
            key = "train_samples" if train else "val_samples"
            size = data.get(key)
            if size is not None:
                if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                    raise ArgumentError(f"data.{key} must be a positive integer (the split size), got {size!r}")
                options["num_samples"] = size
            return SegDigits(split, **options)
        from glore.data.cityscapes import CityscapesSegmentation
        from glore.data.seg_transforms import build_seg_transforms

        crop = data.get("crop_size", 769)
        transform = build_seg_transforms(
            train=train, crop_size=tuple(crop) if isinstance(crop, list) else crop,
            scale_range=data.get("scale_range", (0.5, 2.0)), hflip=bool(data.get("hflip", True)))
        return CityscapesSegmentation(_data_root(data), split, transform=transform, return_instances=not train)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = EpochSeededDataset(self.dataset("train_split", "train", train=True), seed=self.seed)
        if self.val_set is None:
            val_set = NamedSamples(self.dataset("val_split", "val", train=False))
            if self.val_limit is not None:
                if isinstance(self.val_limit, bool) or not isinstance(self.val_limit, int) or self.val_limit < 1:
                    raise ArgumentError(f"limit must be a positive integer (validation samples), got {self.val_limit!r}")
                val_set = torch.utils.data.Subset(val_set, range(min(self.val_limit, len(val_set))))
            self.val_set = val_set

    def _loader(self, dataset, *, batch_size: int, shuffle: bool, drop_last: bool, train: bool) -> DataLoader:
        return make_loader(dataset, trainer=self.trainer, batch_size=batch_size, shuffle=shuffle,
                           drop_last=drop_last, train=train, seed=self.seed,
                           num_workers=int(self.data_cfg.get("num_workers", 0)))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, batch_size=int(self.data_cfg.get("batch_size", 8)),
                            shuffle=bool(self.data_cfg.get("shuffle", True)),
                            drop_last=bool(self.data_cfg.get("drop_last", True)), train=True)

    def val_dataloader(self) -> DataLoader:
        """The one place validation loaders are made (evaluation goes through it too)."""
        batch = self.data_cfg.get("val_batch_size") or 1
        return self._loader(self.val_set, batch_size=int(batch), shuffle=False, drop_last=False, train=False)


def build_datamodule(cfg: dict) -> SegmentationData:
    return SegmentationData(cfg["data"], seed=int(cfg.get("seed", 0)))
