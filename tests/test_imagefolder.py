import os

import pytest
import torch
from PIL import Image

from glore.data.imagefolder import (
    CUB200Dataset, ImageFolderDataset, ImageReadError, build_image_dataset, build_transform, count_classes,
)


def _write(path, size=(40, 30), value=128):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)


@pytest.fixture
def folder(tmp_path):
    for split in ("train", "val"):
        for k, name in enumerate(("b_class", "a_class", "c_class")):
            for i in range(2):
                _write(str(tmp_path / split / name / f"{i}.png"), value=40 * k)
    return tmp_path


def test_imagefolder_sorted_classes_and_center_crop(folder):
    ds = build_image_dataset(str(folder), "val", train=False, image_size=16, resize_size=20)
    assert ds.classes == ["a_class", "b_class", "c_class"]
    image, label = ds[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 0
    assert count_classes(str(folder)) == 3


def test_train_augmentation_is_random_and_sized(folder):
    ramp = torch.arange(40 * 30 * 3).reshape(30, 40, 3).remainder(251).to(torch.uint8).numpy()
    Image.fromarray(ramp).save(folder / "train" / "a_class" / "0.png")
    ds = build_image_dataset(str(folder), "train", train=True, image_size=12, scale=(0.2, 0.5))
    crops = [ds[0][0] for _ in range(4)]
    assert crops[0].shape == (3, 12, 12)
    assert any(not torch.equal(crops[0], c) for c in crops[1:])  # random crops of a non-uniform image
    plain = build_image_dataset(str(folder), "train", train=True, augment=False, image_size=12, resize_size=14)
    assert torch.equal(plain[0][0], plain[0][0])  # augment=False: the deterministic center crop


def test_standard_transform_steps():
    names = [type(t).__name__ for t in build_transform(train=True).transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ToImage", "ToDtype", "Normalize"]
    eval_steps = build_transform(train=False).transforms
    assert [type(t).__name__ for t in eval_steps][:2] == ["Resize", "CenterCrop"]
    assert list(eval_steps[0].size) == [256] and tuple(eval_steps[1].size) == (224, 224)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*expected .*train.*<class>.*<image>"):
        ImageFolderDataset(str(tmp_path / "nowhere"), "train")


def test_missing_split(tmp_path):
    (tmp_path / "training").mkdir()
    with pytest.raises(FileNotFoundError, match=r"train' does not exist.*\['training'\]"):
        ImageFolderDataset(str(tmp_path), "train")


def test_images_without_class_folders(tmp_path):
    _write(str(tmp_path / "train" / "0.png"))
    with pytest.raises(ValueError, match=r"no class folders \(found files \['0.png'\].*expected"):
        ImageFolderDataset(str(tmp_path), "train")


def test_class_folders_without_images(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no image files"):
        ImageFolderDataset(str(tmp_path), "train")


def test_corrupt_image_names_the_file(folder):
    bad = folder / "val" / "a_class" / "0.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    ds = build_image_dataset(str(folder), "val", train=False, image_size=8, resize_size=8)
    with pytest.raises(ImageReadError, match=str(bad).replace("\\", "\\\\")):
        ds[0]
    assert ds[1][0].shape == (3, 8, 8)  # the other files still load


def test_cub200_layout(tmp_path):
    rows, labels, split = [], [], []
    for i, (cls, is_train) in enumerate([("001.Albatross", 1), ("001.Albatross", 0), ("002.Auklet", 1), ("002.Auklet", 0)], 1):
        rel = f"{cls}/img{i}.jpg"
        _write(str(tmp_path / "images" / rel))
        rows.append(f"{i} {rel}")
        labels.append(f"{i} {cls[:3].lstrip('0')}")
        split.append(f"{i} {is_train}")
    (tmp_path / "images.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (tmp_path / "train_test_split.txt").write_text("\n".join(split) + "\n")
    train = build_image_dataset(str(tmp_path), "train", train=True, layout="cub200", image_size=8)
    val = CUB200Dataset(str(tmp_path), "val")
    assert [t for _, t in train.samples] == [0, 1] and [os.path.basename(p) for p, _ in val.samples] == ["img2.jpg", "img4.jpg"]
    assert train[1][0].shape == (3, 8, 8)
    os.remove(tmp_path / "train_test_split.txt")
    with pytest.raises(FileNotFoundError, match=r"missing \['train_test_split.txt'\].*CUB_200_2011 layout"):
        CUB200Dataset(str(tmp_path), "train")
