"""A static check of src/glore: outside glore/_internals/ (the one place that reads what Lightning, timm
and torchvision do not export, tested against the installed libraries), no module imports a private module
or name of Lightning, timm or torchvision, and no module reads a private attribute (``obj._name``) that
glore does not define itself, so that an upgrade of a dependency cannot move something glore relies on
without a test naming it."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "glore"
ISOLATED = SRC / "_internals"
FOREIGN = ("lightning", "pytorch_lightning", "timm", "torchvision")


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def own_private_names(trees) -> set[str]:
    """Every ``_name`` glore defines: functions, classes, assigned names and attributes, parameters,
    keyword arguments, import aliases and module files."""
    names = {path.stem for path in SRC.rglob("*.py")}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.attr)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                names.add(node.value)     # setattr / getattr names, __slots__
    return {name for name in names if _private(name)}


def foreign_privates(source: str, where: str, own: set[str]) -> list[str]:
    """The private imports of Lightning, timm and torchvision, and the reads of private attributes
    glore does not define, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for module in modules:
            parts = module.split(".")
            if parts[0] in FOREIGN and any(_private(p) for p in parts):
                found.append(f"{where}:{node.lineno}: imports {module}")
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            found.append(f"{where}:{node.lineno}: reads .{node.attr}")
    return found


def test_no_module_outside_the_isolated_one_touches_a_private_of_another_library():
    files = {path: path.read_text(encoding="utf-8") for path in sorted(SRC.rglob("*.py"))}
    own = own_private_names(ast.parse(text) for text in files.values())
    found = []
    for path, text in files.items():
        if ISOLATED not in path.parents:
            found += foreign_privates(text, path.relative_to(SRC).as_posix(), own)
    assert not found, "private state of another library read outside glore/_internals/:\n" + \
        "\n".join(found)


@pytest.mark.parametrize("source, expected", [
    ("trainer._logger_connector.should_update_logs", "reads ._logger_connector"),
    ("module._trainer", "reads ._trainer"),
    ("from lightning.pytorch.overrides.distributed import _DatasetSamplerWrapper", "imports lightning.pytorch"),
    ("from timm.models._builder import build_model_with_cfg", "imports timm.models._builder"),
    ("import torchvision.models._utils", "imports torchvision.models._utils"),
])
def test_the_check_finds_what_it_looks_for(source, expected):
    assert any(expected in finding for finding in foreign_privates(source, "x.py", own={"_mine"}))
    assert not foreign_privates("self._mine = 1\nprint(self._mine)\nfrom timm.layers import SEModule", "x.py",
                                own={"_mine"})
