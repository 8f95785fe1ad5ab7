"""timm's recipe components as config keys of the classification task: create_transform
(RandAugment, random erasing), Mixup / CutMix with the soft-target loss, EMA of the weights,
layer-wise lr decay, drop path; a tiny run through `glore train`."""

import pytest
import torch
import yaml

from glore.checkpoint import read_checkpoint
from glore.cli import main as glore_main
from glore.data.imagefolder import build_transform
from glore.engine.classification import build_module
from glore.engine.config import load_config
from glore.engine.optim import build_optimizer
from glore.errors import ConfigError
from test_engine_tinynet import make_image_folder

TINY_CONVNEXT = ["model.name=convnext_atto", "model.depths=[1,1,1,1]", "model.dims=[8,16,24,32]",
                 "model.block=glore", "model.units={stages.2: [1]}", "model.drop_path_rate=0.1"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data") / "folder", per_class=4, size=40)


def _recipe(data_root, out, *extra):
    return [*TINY_CONVNEXT, "model.label_smoothing=0.1", "data.name=imagefolder", f"data.root={data_root}",
            "data.image_size=32", "data.resize_size=36", "data.batch_size=4", "data.interpolation=bicubic",
            "data.auto_augment=rand-m9-mstd0.5-inc1", "data.re_prob=0.25", "data.mixup=0.8", "data.cutmix=1.0",
            "optim.name=adamw", "optim.lr=4e-3", "optim.weight_decay=0.05", "optim.layer_decay=0.8",
            "optim.ema_decay=0.9", "optim.warmup_steps=1", f"output_dir={out}", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
            "trainer.num_sanity_val_steps=0", *extra]


def test_a_training_step_with_mixup_ema_randaugment_through_glore_train(data_root, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"task": "classification"}))
    assert glore_main(["train", "--config", str(config), "--output-dir", str(out),
                       *_recipe(data_root, out)]) == 0
    ckpt = read_checkpoint(out / "checkpoints" / "last.ckpt")
    state = ckpt["state_dict"]
    assert ckpt["global_step"] == 2            # 8 images / batch 4
    trained, ema = state["model.head.fc.weight"], state["model_ema.module.head.fc.weight"]
    assert not torch.equal(trained, ema)     # the EMA follows the weights at a distance (decay 0.9)


def test_the_module_builds_timms_components(data_root, tmp_path):
    cfg = load_config(None, _recipe(data_root, tmp_path / "r"))
    cfg["model"]["num_classes"] = 2
    module = build_module(cfg)
    assert type(module.mixup).__name__ == "Mixup" and module.mixup.mixup_alpha == 0.8
    assert module.mixup.label_smoothing == 0.1
    assert type(module.model_ema).__name__ == "ModelEmaV3"
    assert not any(p.requires_grad for p in module.model_ema.parameters())
    # the units are in the model, and layer decay gives the earliest groups the smallest lr
    optimizer = build_optimizer(module.optimizer_param_groups(), cfg["optim"])
    lrs = sorted({round(g["lr"], 10) for g in optimizer.param_groups})
    assert len(lrs) > 2 and max(lrs) == pytest.approx(4e-3) and min(lrs) < 4e-3 * 0.8 ** 3
    unit = module.model.stages[2].blocks[0].after_add
    unit_groups = [g for g in optimizer.param_groups if any(p is unit.norm.weight for p in g["params"])]
    head_groups = [g for g in optimizer.param_groups if any(p is module.model.head.fc.weight for p in g["params"])]
    assert unit_groups[0]["lr"] < head_groups[0]["lr"]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(module.model.parameters()))


def test_randaugment_and_random_erasing_come_from_timm():
    transform = build_transform(train=True, image_size=32, resize_size=36,
                                recipe={"auto_augment": "rand-m9-mstd0.5-inc1", "re_prob": 0.25})
    names = [type(t).__name__ for t in transform.transforms]
    assert "RandAugment" in names and "RandomErasing" in names
    evaluation = build_transform(train=False, image_size=32, resize_size=36, recipe={"interpolation": "bicubic"})
    assert "CenterCrop" in [type(t).__name__ for t in evaluation.transforms]


def test_mixup_config_errors(data_root, tmp_path):
    cfg = load_config(None, _recipe(data_root, tmp_path / "r", "data.batch_size=3"))
    cfg["model"]["num_classes"] = 2
    with pytest.raises(ConfigError, match="batch_size must be even, got 3"):
        build_module(cfg)
    cfg = load_config(None, _recipe(data_root, tmp_path / "r", "data.drop_last=false"))
    cfg["model"]["num_classes"] = 2
    with pytest.raises(ConfigError, match="drop_last must be true"):
        build_module(cfg)
    with pytest.raises(ConfigError, match="optim.layer_decay"):
        load_config(None, _recipe(data_root, tmp_path / "r", "optim.layer_decay=1.5"))
