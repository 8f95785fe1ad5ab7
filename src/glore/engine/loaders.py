"""Data loaders whose order and random augmentation depend only on ``(seed, epoch, index)``.

Shared by the training tasks: a run resumed from a checkpoint, or run with any number of workers or
processes, sees the same samples in the same order, augmented the same way, as an uninterrupted one.

In-memory datasets without random augmentation (``DistantDigits``, ``DistantClips``) may define
``get_batch(indices: LongTensor) -> batch``; their loaders then read each batch with one tensor index
(:class:`BatchReads`) instead of reading and collating the items one by one.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler

from glore._internals.lightning_state import next_epoch


class EpochShuffleSampler(torch.utils.data.Sampler):
    """Indices in an order that depends only on ``(seed, epoch)`` (random with ``shuffle``, else in
    order), encoded as ``epoch * length + index`` for :class:`EpochSeededDataset`. Lightning calls
    ``set_epoch`` before each epoch, so a resumed run sees what an uninterrupted one would have."""

    def __init__(self, length: int, *, seed: int = 0, shuffle: bool = True):
        self.length = int(length)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = range(self.length)
        offset = self.epoch * self.length
        return iter([offset + i for i in order])


class EpochDistributedSampler(torch.utils.data.DistributedSampler):
    """``DistributedSampler`` whose indices carry the epoch like :class:`EpochShuffleSampler`."""

    def __iter__(self):
        offset = self.epoch * len(self.dataset)
        return iter([offset + i for i in super().__iter__()])


def seed_generators(key: int, device: torch.device | None = None) -> None:
    """Seed the CPU generator (and ``device``'s, if an accelerator) with ``key`` (mod 2**63 - 1).

    Not ``torch.manual_seed``: it also queues a seeding of every accelerator backend (CUDA, XPU,
    MTIA) with a stack trace each, 2.4 ms per call on a CPU machine, once per step or item here."""
    key %= 2**63 - 1
    torch.default_generator.manual_seed(key)
    if device is not None and device.type != "cpu":
        torch.get_device_module(device.type).manual_seed(key)


class EpochSeededDataset(torch.utils.data.Dataset):
    """Item ``epoch * len + index`` is ``dataset[index]`` read with torch's RNG seeded from
    ``(seed, epoch, index)``: random augmentation is then the same with any number of workers or
    processes, and after a resume. Plain indices ``< len`` read epoch 0."""

    def __init__(self, dataset, *, seed: int = 0):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # classes, samples, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: int):
        epoch, index = divmod(int(key), len(self.dataset))
        with torch.random.fork_rng(devices=[]):
            seed_generators((self.seed * 1_000_003 + epoch) * 1_000_033 + index)    # what transforms draw from
            return self.dataset[index]

    def get_batch(self, keys: torch.Tensor):
        """The items of ``keys`` from the wrapped dataset's ``get_batch`` (which draws no random
        numbers, so the epoch part of the keys does not matter)."""
        return self.dataset.get_batch(keys % len(self.dataset))


def reads_batches(dataset) -> bool:
    """Whether ``dataset`` (or the dataset an :class:`EpochSeededDataset` wraps) has ``get_batch``."""
    inner = dataset.dataset if isinstance(dataset, EpochSeededDataset) else dataset
    return callable(getattr(inner, "get_batch", None))


class BatchReads(torch.utils.data.Dataset):
    """A view of a dataset with ``get_batch``: the DataLoader hands a batch's indices to
    ``__getitems__``, which returns the whole batch (use with ``collate_fn=keep_batch``)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: int):
        return self.dataset[key]

    def __getitems__(self, keys):
        return self.dataset.get_batch(torch.as_tensor(keys, dtype=torch.long))


def keep_batch(batch):
    """``collate_fn`` of :class:`BatchReads` loaders: the batch is already collated."""
    return batch


def evaluation_sampler(dataset, *, num_replicas: int | None = None, rank: int | None = None):
    """A sampler that shards ``dataset`` over the processes in order, each sample on exactly one of them
    (shards may differ in length by one), so that metrics summed over the processes count each sample
    once; ``None`` (in order, one process) without ``torch.distributed`` or with a single process.
    ``num_replicas`` and ``rank`` default to those of the initialised process group."""
    if num_replicas is None:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return None
        num_replicas, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    if num_replicas <= 1:
        return None
    return ShardSampler(dataset, num_replicas=num_replicas, rank=rank)


class ShardSampler(DistributedSampler):
    """Indices ``rank, rank + num_replicas, ...`` of ``dataset``, in order, nothing repeated: shards
    differ in length by at most one. A ``DistributedSampler``, so Lightning keeps it as it is."""

    def __init__(self, dataset, *, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self):
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


def make_loader(dataset, *, trainer=None, batch_size: int, shuffle: bool, drop_last: bool, train: bool,
                seed: int = 0, num_workers: int = 0, collate_fn=None) -> DataLoader:
    """A ``DataLoader`` for ``dataset``; a train loader (on an :class:`EpochSeededDataset`) gets an
    epoch-carrying sampler, distributed when ``trainer.world_size > 1``; an evaluation loader is sharded
    by :func:`evaluation_sampler` (each sample on one process) when ``trainer.world_size > 1``, or, without
    a trainer, when ``torch.distributed`` is initialised. A dataset that reads whole batches
    (:func:`reads_batches`) is read that way unless ``collate_fn`` is given."""
    sampler = None
    if trainer is not None and trainer.world_size > 1 and train:
        # our own DistributedSampler (Lightning keeps it): honours shuffle=False, seeded by epoch
        sampler = EpochDistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                          shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif trainer is not None and trainer.world_size > 1:
        sampler = evaluation_sampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank)
    elif trainer is None and not train:  # an evaluation outside Lightning, maybe in a process group
        sampler = evaluation_sampler(dataset)
    elif train:
        sampler = EpochShuffleSampler(len(dataset), seed=seed, shuffle=shuffle)
    if train and trainer is not None:
        # Lightning creates (and, with workers, prefetches from) the first iterator of a run before it
        # calls set_epoch; start from the epoch a resumed run continues with
        sampler.set_epoch(next_epoch(trainer))
    if collate_fn is None and reads_batches(dataset):
        dataset, collate_fn = BatchReads(dataset), keep_batch
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                      persistent_workers=num_workers > 0)
