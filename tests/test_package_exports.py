"""The packages' lazy exports: every public name is the object it names, whatever was imported first."""

import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import glore

# every package whose __init__ exports names lazily
LAZY_PACKAGES = sorted(
    "glore." + init.parent.relative_to(Path(glore.__file__).parent).as_posix().replace("/", ".")
    for init in Path(glore.__file__).parent.rglob("__init__.py") if "lazy_exports(" in init.read_text())


@pytest.mark.parametrize("package_name", LAZY_PACKAGES)
def test_exports_are_not_shadowed_by_submodules(package_name):
    package = importlib.import_module(package_name)
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    # importing a submodule sets it as an attribute of its package, which hides an export of the
    # same name from the lazy __getattr__
    assert not submodules & set(package._EXPORTS)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "__main__":              # running it is the command, not an import
            importlib.import_module(f"{package_name}.{info.name}")
    for name, module_name in package._EXPORTS.items():
        exported = getattr(package, name)
        assert not isinstance(exported, types.ModuleType), name
        assert exported is getattr(importlib.import_module(module_name), name)
