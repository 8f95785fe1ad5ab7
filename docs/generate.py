"""Pages the documentation build writes from the code: the model zoo, one table per paper table,
from the configs' ``reference:`` sections (each row counted by :func:`glore.zoo.count`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from glore import zoo
from glore.engine.config import load_config, yaml_load

PAPERS = {"glore": "Graph-Based Global Reasoning Networks (Chen et al., CVPR 2019, arXiv 1811.12814)",
          "gcnet": "Global Context Networks (Cao et al., arXiv 2012.13375)",
          "reproduction": "an independent reproduction of ResNet-18 + GloRe on CUB-200 (slides)"}


def _number(value) -> str:
    return "" if value is None else f"{value:g}"


def _table_key(key):
    paper, table = key
    digits = "".join(c for c in table if c.isdigit())
    return paper, int(digits) if digits else 999, table


def zoo_rows() -> dict:
    """``{(paper, table): [(config path, reference, counts), ...]}`` for every referenced config."""
    tables = defaultdict(list)
    for path in zoo.find_configs():
        if "reference" not in (yaml_load(path.read_text(encoding="utf-8")) or {}):
            continue
        cfg = load_config(path)
        tables[(cfg["reference"]["paper"], cfg["reference"]["table"])].append(
            (path, cfg["reference"], zoo.count(cfg)))
    return tables


def table_name(paper: str, table: str) -> str:
    """The file stem of one paper table's generated Markdown: ``gcnet_12a``, ``reproduction_cub200``."""
    return f"{paper}_{table}".lower().replace(" ", "_")


def table_markdown(rows: list) -> str:
    """One paper table: each row's config, the paper's figures and ours, its results."""
    lines = ["| row | input | params (M), paper | ours | GMACs, paper | ours | paper's results | config |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    for path, ref, counts in rows:
        metrics = ", ".join(f"{k} {v:g}" for k, v in (ref.get("metrics") or {}).items() if v is not None)
        mark = ""
        if ref.get("known_deviation"):
            notes.append(f"- {ref['row']}: {ref['known_deviation']}")
            mark = " *"
        convention = f" ({ref['convention']})" if ref.get("convention") else ""
        lines.append(f"| {ref['row']}{mark} | {'x'.join(map(str, ref['input']))}{convention} | "
                     f"{_number(ref.get('params_m'))} | {counts['params'] / 1e6:.2f} | "
                     f"{_number(ref.get('gmacs'))} | {counts['gmacs']:.2f} | {metrics} | "
                     f"`{path.relative_to(zoo.CONFIG_ROOT.parent).as_posix()}` |")
    if notes:
        lines += ["", "Rows marked * differ from the paper's count:", ""] + notes
    return "\n".join(lines) + "\n"


def zoo_page(tables: dict) -> str:
    lines = ["# Model zoo", "",
             "Every row of the papers' tables that the library builds is a config under `configs/` with a "
             "`reference:` section that copies the paper's figures. This page is generated from those "
             "configs when the documentation is built: *ours* is the network `glore train` builds from the "
             "config, counted by `glore summary --config FILE` at the paper's input size (multiply-adds, "
             "the papers' FLOPs; an input marked (mmdet) is counted as mmdetection's FLOP counter counts, "
             f"the convention of GCNet's detection FLOPs, see the detection page). A row matches when its parameters are within {zoo.PARAMS_TOLERANCE:.0%} "
             f"and its GMACs within {zoo.GMACS_TOLERANCE:.0%} of the paper's; a known deviation says why "
             "not. `tests/test_paper_configs.py` checks every row.", ""]
    for (paper, table), rows in sorted(tables.items(), key=lambda item: _table_key(item[0])):
        title = f"Table {table}" if table[:1].isdigit() else table
        lines += [f"## {paper}: {title}", "", f"{PAPERS.get(paper, paper)}.", "",
                  f"```{{include}} tables/{table_name(paper, table)}.md", "```", ""]
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:   # unchanged: no rebuild
        path.write_text(text, encoding="utf-8")


def write_pages(folder: Path) -> None:
    """``zoo.md`` and ``tables/<paper>_<table>.md`` (one per paper table, which the task pages include)."""
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    tables = zoo_rows()
    for (paper, table), rows in tables.items():
        _write(folder / "tables" / f"{table_name(paper, table)}.md", table_markdown(rows))
    _write(folder / "zoo.md", zoo_page(tables))
