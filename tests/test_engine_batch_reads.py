import torch

from glore.data.distant_digits import DistantDigits
from glore.engine.classification import ClassificationModule
from glore.engine.config import load_config
from glore.engine.loaders import BatchReads, EpochSeededDataset, EpochShuffleSampler, make_loader


def test_batch_reads_give_the_batches_of_item_reads():
    data = DistantDigits("train", num_samples=40, seed=1)
    seeded = EpochSeededDataset(data, seed=4)
    loader = make_loader(seeded, batch_size=8, shuffle=True, drop_last=True, train=True, seed=4)
    assert isinstance(loader.dataset, BatchReads)
    loader.sampler.set_epoch(2)
    item_loader = torch.utils.data.DataLoader(seeded, batch_size=8, drop_last=True,
                                              sampler=EpochShuffleSampler(40, seed=4))
    item_loader.sampler.set_epoch(2)
    batches = list(zip(loader, item_loader))
    assert len(batches) == 5
    for (images, labels), (item_images, item_labels) in batches:
        assert torch.equal(images, item_images) and torch.equal(labels, item_labels)
        assert labels.dtype == torch.int64


def test_datasets_without_get_batch_keep_item_reads():
    data = torch.utils.data.TensorDataset(torch.rand(10, 3), torch.arange(10))
    loader = make_loader(data, batch_size=4, shuffle=False, drop_last=False, train=False)
    assert loader.dataset is data
    assert [len(labels) for _, labels in loader] == [4, 4, 2]


def test_channels_last_option_lays_out_images_and_weights():
    cfg = load_config(None, ["model.name=distant_digits_net", "model.width=8", "model.num_classes=10",
                             "data.name=distant-digits", "trainer.channels_last=true"])
    module = ClassificationModule(cfg)
    # 3 channels: a 1-channel tensor is contiguous in both layouts
    images = module.in_memory_layout(torch.rand(2, 3, 48, 48))
    assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    weight = [p for p in module.model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1][-1]
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    plain = ClassificationModule(load_config(None, ["model.name=distant_digits_net", "model.width=8",
                                                    "model.num_classes=10", "data.name=distant-digits"]))
    images = plain.in_memory_layout(torch.rand(2, 3, 48, 48))
    assert images.is_contiguous()
