"""A tiny network and image-folder fixtures for the engine tests (importable as ``test_engine_tinynet``)."""

import os

import torch
from PIL import Image


def tiny_net(*, num_classes: int = 2, width: int = 4, **_ignored) -> torch.nn.Module:
    """conv 3x3 stride 2 -> ReLU -> global average pool -> linear; no BatchNorm (DDP equality is exact)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(width, num_classes),
    )


def tiny_glore_net(*, num_classes: int = 2, width: int = 8, **_ignored) -> torch.nn.Module:
    """``tiny_net`` with a GloRe unit (not zero-initialised) after the first conv."""
    from glore.nn import GloRe

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        GloRe(width, mid=2, zero_init=False),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(width, num_classes),
    )


def make_image_folder(root, *, classes=("cat", "dog"), per_class=3, size=32, splits=("train", "val"), ext="png"):
    """Write ``root/<split>/<class>/<i>.<ext>``: class k images are brighter for larger k, with noise."""
    generator = torch.Generator().manual_seed(0)
    for split in splits:
        for k, name in enumerate(classes):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                base = 40 + 160 * k / max(len(classes) - 1, 1)
                noise = torch.randint(-30, 31, (size, size, 3), generator=generator)
                pixels = (base + noise).clamp(0, 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(os.path.join(folder, f"{i}.{ext}"))
    return str(root)


def test_tiny_net_output_shape():
    out = tiny_net(num_classes=3)(torch.zeros(2, 3, 16, 16))
    assert out.shape == (2, 3)


def test_make_image_folder_writes_readable_images(tmp_path):
    root = make_image_folder(tmp_path / "d", per_class=2)
    files = sorted(os.listdir(os.path.join(root, "train", "dog")))
    assert files == ["0.png", "1.png"]
    with Image.open(os.path.join(root, "train", "dog", "0.png")) as image:
        assert image.size == (32, 32)


class _NaNAfter(torch.nn.Module):
    """Wraps ``tiny_net``; in training mode, forward calls after the ``after``-th return NaN."""

    def __init__(self, net, after):
        super().__init__()
        self.net = net
        self.after = after
        self.calls = 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                out = out * float("nan")
        return out


def nan_net(*, num_classes: int = 2, nan_after: int = 3, **_ignored) -> torch.nn.Module:
    return _NaNAfter(tiny_net(num_classes=num_classes), nan_after)


def tiny_overrides(root, output_dir, *extra):
    """Overrides for a CPU run of ``tiny_net`` on an image folder made by ``make_image_folder``."""
    return [
        "model.name=test_engine_tinynet:tiny_net", "data.name=imagefolder", f"data.root={root}",
        "data.image_size=16", "data.resize_size=16", "data.augment=false", "data.batch_size=4",
        f"output_dir={output_dir}", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "optim.lr=0.05", "optim.schedule=cosine",
        *extra,
    ]
