"""Write a Hugging Face hub cache with stand-in weights for the backbones of glore's registered
configurations, so that timm's pretrained-loading tests (``test_model_load_pretrained``,
``test_model_features_pretrained``) run offline, through timm's own hub loading.

The stand-ins are random weights of each backbone's architecture, saved as ``model.safetensors``
under the hub id of the backbone's default pretrained tag (``timm/resnet50.a1_in1k``) in the
cache's layout (``models--timm--<id>/refs/main``, ``snapshots/<revision>/``). Run it with ``HF_HOME``
set to the cache folder; tests then run with ``HF_HUB_OFFLINE=1`` and the same ``HF_HOME``.
"""

import os
import sys
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

import glore.models  # noqa: F401  registers the configurations
from glore.models.registry import CONFIGS

REVISION = "0" * 40


def write(cache: Path) -> None:
    for backbone in sorted({cfg.backbone for cfg in CONFIGS.values()}):
        hub_id = timm.get_pretrained_cfg(backbone).hf_hub_id
        if hub_id is None:            # no published weights (resnet200): nothing to stand in for
            continue
        repo = cache / "hub" / f"models--{hub_id.replace('/', '--')}"
        target = repo / "snapshots" / REVISION / "model.safetensors"
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(REVISION)
        torch.manual_seed(0)
        state = timm.create_model(backbone).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(target))
        print(f"{hub_id}: {len(state)} tensors", file=sys.stderr)


if __name__ == "__main__":
    write(Path(os.environ["HF_HOME"]))
