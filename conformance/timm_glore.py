"""pytest plugin: run timm's own model tests (tests/test_models.py of timm's sdist) on the model
configurations that glore registers with timm, and on nothing else.

Used by ``make timm-tests``; importing :mod:`glore.models` before timm's test module is collected
registers the configurations, so timm's parametrisations (``list_models(...)``) include them.
"""

import os

import glore.models  # noqa: F401  registers the configurations with timm
from glore.models.registry import CONFIGS

# GLORE_CONFIGS="name1 name2": only these configurations (make timm-tests CONFIGS="...")
_ONLY = set(os.environ.get("GLORE_CONFIGS", "").split()) or set(CONFIGS)


def _ours(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    name = params.get("model_name")
    return isinstance(name, str) and name.split(".", 1)[0] in CONFIGS and name.split(".", 1)[0] in _ONLY


def pytest_collection_modifyitems(config, items):
    keep = [item for item in items if _ours(item)]
    config.hook.pytest_deselected(items=[item for item in items if not _ours(item)])
    items[:] = keep
