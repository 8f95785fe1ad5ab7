"""End-to-end classification runs on a tiny image folder (CPU, a few seconds each)."""

import glob
import json
import os

import pytest
import torch
import yaml

from glore.cli import main as glore_main
from glore.engine import runner
from glore.engine.base import NonFiniteLossError
from glore.checkpoint import read_checkpoint
from glore.engine.classification import build_datamodule, build_module
from glore.engine.config import load_config
from glore.nn.glore_unit import GloRe
from test_engine_tinynet import make_image_folder, tiny_overrides

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "classification")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data") / "folder", per_class=3)


def test_cli_train_then_evaluate(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"task": "classification", "trainer": {"max_epochs": 2}}))
    overrides = [o for o in tiny_overrides(data_root, out) if not o.startswith(("output_dir", "trainer.max_epochs"))]
    assert glore_main(["train", "--config", str(config), "--output-dir", str(out), *overrides]) == 0
    printed = capsys.readouterr().out
    assert "val/acc1" in printed and "val/acc5" not in printed  # 2 classes: no top-5

    # files of a run
    for name in ("config.yaml", "metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (out / name).is_file(), name
    rows = (out / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "train/loss_step" in rows[0] and len(rows) > 2
    assert glob.glob(str(out / "tensorboard" / "version_0" / "events.out.tfevents.*"))
    assert yaml.safe_load((out / "config.yaml").read_text())["trainer"]["max_epochs"] == 2

    # checkpoints load with weights_only=True and carry the plain config
    ckpt = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 4  # 6 images / batch 4 = 2 steps x 2 epochs
    assert ckpt["hyper_parameters"]["cfg"]["model"]["name"] == "test_engine_tinynet:tiny_net"

    # evaluate reproduces the final validation metrics and writes JSON next to the run
    trained = json.loads((out / "metrics.json").read_text())
    assert glore_main(["evaluate", "--checkpoint", str(out / "checkpoints" / "last.ckpt")]) == 0
    evaluated = json.loads((out / "eval_last.json").read_text())
    assert evaluated["val/acc1"] == pytest.approx(trained["val/acc1"])
    assert evaluated["val/loss"] == pytest.approx(trained["val/loss"], rel=1e-5)
    assert "val/acc1" in capsys.readouterr().out

    network, cfg = runner.load_model(str(out / "checkpoints" / "best.ckpt"))
    assert isinstance(network, torch.nn.Sequential) and not network.training
    assert cfg["data"]["root"] == str(data_root)


def test_evaluate_rejects_options_for_tasks_without_them(data_root, tmp_path):
    out = tmp_path / "run"
    runner.train(load_config(None, tiny_overrides(data_root, out, "trainer.limit_train_batches=1")))
    with pytest.raises(ValueError, match=r"takes no evaluation options, got \['clips'\]"):
        runner.evaluate(str(out / "checkpoints" / "last.ckpt"), clips=10)
    assert glore_main(["evaluate", "--checkpoint", str(out / "checkpoints" / "last.ckpt"), "--opt", "clips=3"]) == 2


def test_bf16_mixed_precision_on_cpu(data_root, tmp_path):
    metrics = runner.train(load_config(None, tiny_overrides(data_root, tmp_path, "trainer.precision=bf16-mixed")))
    assert set(metrics) == {"val/acc1", "val/loss"} and all(map(lambda v: v == v, metrics.values()))


def test_seeded_cpu_runs_repeat(data_root, tmp_path):
    weights = []
    for name in ("a", "b"):
        runner.train(load_config(None, tiny_overrides(data_root, tmp_path / name, "seed=3", "data.augment=true")))
        weights.append(read_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.slow
def test_compiled_training_matches_eager(data_root, tmp_path):
    from torch._dynamo.utils import counters

    weights = {}
    for name in ("false", "true"):
        counters.clear()
        runner.train(load_config(None, tiny_overrides(data_root, tmp_path / name, f"trainer.compile={name}",
                                                      "model.name=test_engine_tinynet:tiny_glore_net")))
        assert bool(counters["stats"]["unique_graphs"]) == (name == "true")   # compiled, or not at all
        weights[name] = read_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"]
    assert weights["true"].keys() == weights["false"].keys()                # the parameter names are kept
    for key, value in weights["false"].items():
        torch.testing.assert_close(weights["true"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    with pytest.raises(ValueError, match=r"trainer.compile=1: Input should be a valid boolean"):
        load_config(None, tiny_overrides(data_root, tmp_path / "bad", "trainer.compile=1"))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(data_root, out, "model.name=test_engine_tinynet:nan_net",
                                           "model.nan_after=2", "trainer.max_epochs=3"))
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at global step 2 \(epoch 1, batch 0\)"):
        runner.train(cfg)
    ckpt = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2 and ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    # the command reports it as an error naming the step
    args = ["train", *tiny_overrides(data_root, tmp_path / "cli", "model.name=test_engine_tinynet:nan_net",
                                     "model.nan_after=2", "trainer.max_epochs=3")]
    assert glore_main(args) == 2  # a GloreError: one line, exit 2
    assert "global step 2" in capsys.readouterr().err


def test_unknown_model_names_the_choices():
    cfg = load_config(None, ["model.name=no_such_net", "model.num_classes=3"])
    with pytest.raises(ValueError, match=r"unknown model 'no_such_net'.*distant_digits_net"):
        build_module(cfg)
    with pytest.raises(ValueError, match=r"unknown model 'nomodule:net'"):
        build_module(load_config(None, ["model.name=nomodule:net", "model.num_classes=3"]))


def test_missing_data_directory(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path / "absent", tmp_path / "run", "model.num_classes=2"))
    with pytest.raises(FileNotFoundError, match=r"absent' does not exist; expected .*train"):
        runner.train(cfg)
    # without num_classes the class folders are counted first: same error
    with pytest.raises(FileNotFoundError, match="absent"):
        build_module(load_config(None, tiny_overrides(tmp_path / "absent", tmp_path / "run")))
    with pytest.raises(ValueError, match=r"unknown classification dataset data.name='mnist'"):
        build_datamodule(load_config(None, ["data.name=mnist"]))


def test_resume_needs_an_existing_checkpoint(data_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"last.ckpt"):
        runner.train(load_config(None, tiny_overrides(data_root, tmp_path)), resume="last")


@pytest.mark.parametrize("name, model_name, num_classes", [
    ("imagenet_resnet50_glore.yaml", "resnet50", 1000),
    ("cub200_resnet18_glore.yaml", "resnet18", 200),
])
def test_paper_configs_parse_and_build(name, model_name, num_classes, tmp_path):
    raw = yaml.safe_load(open(os.path.join(CONFIGS, name)))
    overrides = ["model.num_classes=7"]
    if raw["model"].get("pretrained"):          # fine-tuning configs: ImageNet weights, here a file
        import timm

        torch.save(timm.create_model(model_name).state_dict(), tmp_path / "imagenet.pth")
        overrides.append(f"model.pretrained={tmp_path / 'imagenet.pth'}")
    assert raw["model"]["pretrained"] is (name == "cub200_resnet18_glore.yaml")
    cfg = load_config(os.path.join(CONFIGS, name), overrides)
    assert cfg["model"]["name"] == model_name and cfg["model"]["block"] == "glore"
    assert cfg["optim"]["name"] == "sgd" and cfg["optim"]["momentum"] == 0.9
    assert raw["model"]["num_classes"] == num_classes
    module = build_module(cfg)
    n_units = sum(isinstance(m, GloRe) for m in module.modules())
    units = cfg["model"]["units"]             # (n, m) or {stage: [indices] or a count}
    per_stage = units.values() if isinstance(units, dict) else units
    assert n_units == sum(len(v) if isinstance(v, list) else v for v in per_stage)
    with torch.no_grad():
        assert module.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 7)


def test_distant_digits_config_builds_and_steps(tmp_path):
    cfg = load_config(os.path.join(CONFIGS, "distant_digits_glore.yaml"),
                      ["data.options={num_samples: 16}", "data.batch_size=8"])
    module, data = build_module(cfg), build_datamodule(cfg)
    data.setup("fit")
    images, labels = next(iter(torch.utils.data.DataLoader(data.train_set, batch_size=8)))
    assert module(images).shape == (8, 10) and labels.shape == (8,)


def test_epoch_shuffle_depends_only_on_seed_and_epoch():
    from glore.engine.loaders import EpochShuffleSampler

    a, b = EpochShuffleSampler(20, seed=1), EpochShuffleSampler(20, seed=1)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert sorted(first) == list(range(20)) and sorted(second) == list(range(20, 40))  # epoch 1 keys: 20 + index
    assert [k - 20 for k in second] != first  # a new order each epoch
    b.set_epoch(1)
    assert list(b) == second  # a fresh sampler (a resumed run) at epoch 1 gives the same order
    assert list(EpochShuffleSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_augmentation_is_seeded_by_epoch_and_index():
    from glore.engine.loaders import EpochSeededDataset

    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.rand(3) + index

    data = EpochSeededDataset(Noise(), seed=0)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(data[1], data[1]) and not torch.equal(data[1], data[5])  # key 5 = epoch 1, index 1
    assert (data[5] >= 1).all() and (data[5] < 2).all()
    assert torch.equal(torch.rand(1), expected)  # reading items left the global RNG alone


def test_command_line_options_and_table():
    from glore.cli.train import format_metrics, parse_options

    assert parse_options(["clips=10", "sliding-window=true", "scales=[0.5, 1.0]"]) == {
        "clips": 10, "sliding_window": True, "scales": [0.5, 1.0]}
    with pytest.raises(ValueError, match="name=value"):
        parse_options(["clips"])
    table = format_metrics({"val/acc1": 0.5, "val/loss": 1.25})
    assert table.splitlines()[2] == "val/acc1  0.5000"


def test_unknown_trainer_option_lists_the_supported_ones(data_root, tmp_path):
    # checked by the schema when the config is loaded, before a run starts
    with pytest.raises(ValueError, match=r"unknown key 'trainer.max_epoch'; trainer accepts max_epochs"):
        load_config(None, tiny_overrides(data_root, tmp_path, "trainer.max_epoch=3"))


def test_block_kwargs_reach_the_builder():
    from glore.engine.classification import build_model

    from glore.nn import GloRe

    model = build_model({"name": "distant_digits_net", "num_classes": 3, "label_smoothing": 0.1,
                         "block": "glore", "block_kwargs": {"mid": 6}})
    unit = next(m for m in model.modules() if isinstance(m, GloRe))
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert unit.extend.weight.shape[1] == 2 * 6 and classifier.out_features == 3


def test_num_classes_below_the_folders_classes_is_a_clear_error(data_root, tmp_path):
    root = make_image_folder(tmp_path / "three", classes=("a", "b", "c"), per_class=2)
    cfg = load_config(None, tiny_overrides(root, tmp_path / "few", "model.num_classes=2"))
    with pytest.raises(ValueError, match=r"model.num_classes=2 but the data has 3 classes \(a, b, c\)"):
        runner.train(cfg)
