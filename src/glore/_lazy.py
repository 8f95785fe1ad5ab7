"""Lazy attribute exports for package ``__init__`` modules (keeps ``import glore`` light)."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """Return a module ``__getattr__`` resolving ``exports[name]`` (a module path) on first use."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
