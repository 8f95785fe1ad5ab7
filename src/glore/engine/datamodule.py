"""The LightningDataModule every task's data module builds on: one ``setup`` and one way to make loaders.

A task's data module names its datasets (:meth:`TaskData.train_dataset`, :meth:`TaskData.val_dataset`)
and its defaults (class attributes); the loaders, the epoch-seeded training set, distributed sharding
(:func:`glore.engine.loaders.make_loader`) and the built-in sets' options are the same for all tasks.
"""

from __future__ import annotations

import inspect
import os
import warnings

import lightning as L
from torch.utils.data import DataLoader

from glore.errors import ArgumentError, ConfigError
from .loaders import EpochSeededDataset, make_loader
from .schema import Data, data_section


def data_root(data: dict, holds: str) -> str:
    """``data.root`` with ``~`` expanded; a missing one is named with what the folder should hold."""
    root = data.get("root")
    if not root:
        raise ArgumentError(f"data.root is required for data.name={data.get('name')!r} ({holds})")
    return os.path.expanduser(str(root))


class TaskData(L.LightningDataModule):
    """Train / val loaders for ``cfg["data"]``.

    ``section`` is the task's data section of :mod:`glore.engine.schema`, which declares the defaults of
    the keys the config leaves out; ``self.data`` is ``data_cfg`` checked against it, ``self.data_cfg``
    the keys as given. ``collate_fn`` is the loaders' collate function (None: PyTorch's default).
    """

    section: type[Data] = Data
    collate_fn = None

    def __init__(self, data_cfg: dict, *, seed: int = 0):
        super().__init__()
        self.data_cfg = dict(data_cfg)
        self.data = data_section(self.section, self.data_cfg)
        self.seed = seed
        self.train_set = self.val_set = None

    @property
    def batch_size(self) -> int:
        return self.data.batch_size

    @property
    def drop_last(self) -> bool:
        return self.data.drop_last

    def train_dataset(self):
        raise NotImplementedError

    def val_dataset(self):
        raise NotImplementedError

    def check_unread_keys(self) -> None:
        """Refuse the keys of data on disk given to a built-in set; warn about a built-in set's keys
        given for data on disk (configs derived from a built-in set's config keep them)."""
        name = self.data.name
        builtin = name in self.data.builtin_sets
        unread = [key for key in (self.data.disk_only_keys if builtin else self.data.builtin_only_keys)
                  if self.data_cfg.get(key) not in (None, {})]
        if not unread:
            return
        keys = ", ".join(f"data.{key}" for key in unread)
        if builtin:
            raise ConfigError(f"data.name={name!r} does not read {keys}: the built-in set's settings go in "
                              f"data.options; {keys} {'are' if len(unread) > 1 else 'is'} read for data on disk")
        warnings.warn(f"data.name={name!r} does not read {keys} (the built-in sets' keys); ignored", UserWarning,
                      stacklevel=2)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and self.val_set is None:
            self.check_unread_keys()
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = EpochSeededDataset(self.train_dataset(), seed=self.seed)
        if self.val_set is None:
            self.val_set = self.val_dataset()

    def class_names(self) -> list | None:
        """The labels' names in label order, from the training set (else the validation set): a
        dataset's ``class_names``, or the ``classes`` of a folder layout; None when neither has them."""
        for dataset in (self.train_set, self.val_set):
            while dataset is not None and "dataset" in vars(dataset):   # EpochSeededDataset, Subset, NamedSamples
                dataset = dataset.dataset
            names = getattr(dataset, "class_names", None) or getattr(dataset, "classes", None)
            if names is not None and all(n is None or isinstance(n, str) for n in names):
                return list(names)
        return None

    def builtin_options(self, *, train: bool) -> dict:
        """The keyword options of a built-in set: ``data.options``, with ``data.val_options`` over them
        for validation, and ``data.train_samples`` / ``data.val_samples`` as ``num_samples``."""
        options = dict(self.data_cfg.get("options") or {})
        if not train:
            options.update(self.data_cfg.get("val_options") or {})
        key = "train_samples" if train else "val_samples"
        size = self.data_cfg.get(key)
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ArgumentError(f"data.{key} must be a positive integer (the split size), got {size!r}")
            options["num_samples"] = size
        return options

    def builtin_set(self, dataset_class, split: str, *, train: bool):
        """``dataset_class(split, **options)`` with :meth:`builtin_options`; an option the class does not
        take is refused naming it and the ones it takes."""
        options = self.builtin_options(train=train)
        parameters = inspect.signature(dataset_class).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            accepted = [name for name, p in parameters.items() if name != "split"
                        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
            unknown = sorted(set(options) - set(accepted))
            if unknown:
                section = "data.options" if train else "data.options / data.val_options"
                raise ConfigError(f"{section}: {dataset_class.__name__} does not take {', '.join(map(repr, unknown))}; "
                                  f"it takes {', '.join(accepted)}")
        return dataset_class(split, **options)

    def loader(self, dataset, *, batch_size: int, shuffle: bool = False, drop_last: bool = False,
               train: bool = False) -> DataLoader:
        return make_loader(dataset, trainer=self.trainer, batch_size=batch_size, shuffle=shuffle,
                           drop_last=drop_last, train=train, seed=self.seed,
                           num_workers=self.data.num_workers, collate_fn=self.collate_fn)

    def eval_batch_size(self) -> int:
        """``data.val_batch_size``, else the training batch size."""
        return self.data.val_batch_size or self.data.batch_size

    def train_dataloader(self) -> DataLoader:
        batch_size, drop_last = self.batch_size, self.drop_last
        world = self.trainer.world_size if self.trainer is not None else 1
        if drop_last and len(self.train_set) < batch_size * world:
            raise ArgumentError(f"data.batch_size={batch_size} with data.drop_last=true leaves no training batch: the "
                                f"training split has {len(self.train_set)} samples"
                                f"{f' over {world} processes' if world > 1 else ''}; lower data.batch_size")
        return self.loader(self.train_set, batch_size=batch_size, shuffle=self.data.shuffle,
                           drop_last=drop_last, train=True)

    def val_dataloader(self) -> DataLoader:
        """The one place validation loaders are made (evaluation goes through it too)."""
        return self.loader(self.val_set, batch_size=self.eval_batch_size())
