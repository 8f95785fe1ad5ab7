"""Docstring coverage of the public API: every public module, class, function and method of the
modules below has a docstring (interrogate; private names, ``__init__``, magic methods, nested
functions and classes and ``extra_repr`` overrides are left out), and so has every function ``glore.models``
exports."""

import re
from pathlib import Path

import pytest

import glore.models

SRC = Path(__file__).resolve().parents[1] / "src" / "glore"
PUBLIC = ("nn", "zoo.py", "study", "engine/runner.py", "engine/config.py", "errors.py", "analysis",
          "models/__init__.py")
PRIVATE_MODULES = ("nn/_layout.py", "nn/_validate.py")


def _missing_docstrings() -> tuple[float, list[str]]:
    from interrogate.config import InterrogateConfig
    from interrogate.coverage import InterrogateCoverage

    config = InterrogateConfig(ignore_init_method=True, ignore_magic=True, ignore_private=True,
                               ignore_semiprivate=True, ignore_nested_functions=True,
                               ignore_nested_classes=True, fail_under=100,
                               ignore_regex=[re.compile(r"^extra_repr$")])   # nn.Module's repr hook
    coverage = InterrogateCoverage(paths=[str(SRC / p) for p in PUBLIC],
                                   conf=config, excluded=tuple(str(SRC / p) for p in PRIVATE_MODULES))
    results = coverage.get_coverage()
    missing = [f"{Path(file.filename).relative_to(SRC)}:{node.lineno} {node.name}"
               for file in results.file_results for node in file.nodes if not node.covered]
    return results.perc_covered, missing


def test_the_public_api_has_a_docstring_everywhere():
    percent, missing = _missing_docstrings()
    assert missing == [], f"{len(missing)} public names without a docstring ({percent:.1f}% covered): {missing}"


def test_the_check_sees_a_name_without_a_docstring(tmp_path, monkeypatch):
    module = tmp_path / "nn"
    module.mkdir()
    (module / "block.py").write_text('"""A module."""\n\n\ndef documented():\n    """Yes."""\n\n\n'
                                     'def undocumented():\n    pass\n\n\ndef _private():\n    pass\n')
    monkeypatch.setitem(globals(), "SRC", tmp_path)
    monkeypatch.setitem(globals(), "PUBLIC", ("nn",))
    percent, missing = _missing_docstrings()
    assert missing == ["nn/block.py:8 undocumented"]
    assert percent == pytest.approx(100 * 2 / 3)


def test_every_function_glore_models_exports_has_a_docstring():
    exported = {name: getattr(glore.models, name) for name in glore.models.__all__}
    functions = {name: value for name, value in exported.items() if callable(value)}
    assert "create_model" in functions and "insert_blocks" in functions
    assert [name for name, value in functions.items() if not (value.__doc__ or "").strip()] == []
