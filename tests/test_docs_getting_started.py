"""The fine-tuning config that docs/getting-started.md shows in full passes the config schema and
builds the classification run it describes (the network with its GloRe units), so the page cannot
drift from the schema unnoticed."""

import re
from pathlib import Path

import torch

from glore.engine.config import load_config, validate_config

PAGE = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"


def _shown_config() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "getting-started.md shows one YAML config"
    return blocks[0]


def test_the_getting_started_config_is_a_valid_run(tmp_path):
    path = tmp_path / "my_images.yaml"
    path.write_text(_shown_config())
    cfg = validate_config(load_config(str(path), ["model.pretrained=false", "model.num_classes=2"]))
    assert (cfg["task"], cfg["data"]["name"], cfg["model"]["block"]) == ("classification", "imagefolder", "glore")

    from glore.engine.classification import build_module

    network = build_module(cfg).model
    units = [name for name, module in network.named_modules() if type(module).__name__ == "GloRe"]
    assert len(units) == 2                                  # units: [1, 1]: one in Res3, one in Res4
    assert network(torch.randn(1, 3, 64, 64)).shape[-1] == 2
