"""The config schema: every config in configs/ fits; misspelt keys below the top level, wrong types
and out-of-range values are refused with the key path."""

import glob
import os

import pytest

from glore.engine.config import ConfigError, load_config
from glore.errors import GloreError
from glore.zoo import find_configs

CONFIGS = [str(path) for path in find_configs()]   # every run config, paper rows in subfolders too
DEMO = os.path.join(os.path.dirname(__file__), "..", "configs", "demo", "glore.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_shipped_config_validates(path):
    assert load_config(path)["task"] in ("classification", "segmentation", "video", "detection")


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "unknown key 'optim.lrr'; optim accepts name, lr,"),
    ("data.batchsize=4", "unknown key 'data.batchsize' for task 'classification'; data accepts .*batch_size"),
    ("trainer.max_epochs=abc", "trainer.max_epochs='abc': Input should be a valid integer"),
    ("trainer.max_epochs=-5", "trainer.max_epochs=-5: Input should be greater than or equal to -1"),
    ("optim.lr=abc", "optim.lr='abc': Input should be a valid number"),
    ("optim.schedule=cosin", "optim.schedule='cosin': Input should be 'step', 'cosine'"),
    ("data.batch_size=0", "data.batch_size=0: Input should be greater than 0"),
    ("model=3", "model=3: Input should be a valid dictionary"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(DEMO, [override])
    assert isinstance(info.value, GloreError)


def test_model_keys_pass_through_to_the_builders():
    assert load_config(DEMO, ["model.drop_path_rate=0.1"])["model"]["drop_path_rate"] == 0.1
