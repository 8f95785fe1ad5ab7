"""``glore models`` and ``glore configs``: what can be built and which run configs ship with glore."""

from __future__ import annotations

import textwrap
from pathlib import Path

from glore.errors import MissingFileError
from ..nn import BLOCKS

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"


def model_sections() -> dict[str, list[str]]:
    """Name lists, by what builds them: the registered paper configurations, the blocks, the backbones
    of create_model, the small built-in networks, the segmentation, video and detection choices."""
    from ..models import available_backbones, registry
    from ..models.detection import ARCHS, BACKBONES
    from ..models.segmentation import HEADS, LOCAL_BACKBONES
    from ..models.small import SMALL_MODELS
    from ..models.video import VIDEO_MODELS

    registered = [f"{name}  ({config.description})" if config.description else name
                  for name, config in sorted(registry.CONFIGS.items())]
    return {
        "registered configurations (timm.create_model / create_model)": registered,
        "blocks (block=, create_block)": sorted(BLOCKS),
        "backbones (create_model; also model.name of classification configs)": available_backbones(),
        "small networks (model.name)": sorted(SMALL_MODELS) + ["distant_clips_net (video demo)"],
        "segmentation (create_segmenter): heads": [str(h).lower() if h is None else h for h in HEADS],
        "segmentation (create_segmenter): local backbones": sorted(LOCAL_BACKBONES),
        "video networks (create_video_model)": sorted(VIDEO_MODELS),
        "detection (create_detector): architectures": list(ARCHS),
        "detection (create_detector): backbones": list(BACKBONES),
    }


def _models(args) -> int:
    for title, names in model_sections().items():
        if args.filter:
            names = [n for n in names if args.filter.lower() in n.lower()]
            if not names:
                continue
        print(f"{title}: {len(names)}")
        if len(names) > 20 and not args.filter:
            print(textwrap.fill(", ".join(names), width=100, initial_indent="  ", subsequent_indent="  "))
        else:
            print("\n".join(f"  {n}" for n in names))
    return 0


def config_rows(root: Path = CONFIG_DIR) -> list[dict]:
    """One row per YAML file under ``root``: its path, task and, where it has one, its ``reference``
    (paper, table, row), each file read as a plain dict."""
    from ..engine.config import yaml_load

    rows = []
    for path in sorted(root.rglob("*.yaml")):
        row = {"config": str(path.relative_to(root.parent) if root.parent in path.parents else path),
               "task": "", "reference": ""}
        try:
            cfg = yaml_load(path.read_text(encoding="utf-8"))
        except Exception as exc:  # a broken file is listed with its reason, not hidden
            row["task"] = f"(unreadable: {' '.join(str(exc).split())[:80]})"
            rows.append(row)
            continue
        cfg = cfg if isinstance(cfg, dict) else {}
        row["task"] = str(cfg.get("task", "classification"))
        reference = cfg.get("reference")
        if isinstance(reference, dict):
            row["reference"] = ", ".join(str(reference[k]) for k in ("paper", "table", "row") if reference.get(k))
        elif reference:
            row["reference"] = str(reference)
        rows.append(row)
    return rows


def _configs(args) -> int:
    root = Path(args.root) if args.root else CONFIG_DIR
    if not root.is_dir():
        raise MissingFileError(f"config folder not found: {str(root)!r}; expected the configs/ folder of a glore checkout")
    rows = config_rows(root)
    if not rows:
        print(f"no YAML configs under {root}")
        return 0
    width = max(len(r["config"]) for r in rows)
    task_width = max(len(r["task"]) for r in rows + [{"task": "task"}])
    print(f"{'config':<{width}}  {'task':<{task_width}}  reference")
    for row in rows:
        print(f"{row['config']:<{width}}  {row['task']:<{task_width}}  {row['reference']}".rstrip())
    return 0


def register(subparsers) -> None:
    """Add the ``models`` and ``configs`` subcommands."""
    p = subparsers.add_parser("models", help="list the model names, backbones and blocks glore builds",
                              description="List what glore builds: the registered paper configurations, "
                                          "the blocks, the backbones and the task networks.")
    p.add_argument("--filter", default=None, help="only names containing this text (case-insensitive)")
    p.set_defaults(func=_models)

    p = subparsers.add_parser("configs", help="list the run configs with their task and paper reference",
                              description="List every YAML config under configs/ with its task and, where it "
                                          "has one, the paper table row it reproduces (its reference section).")
    p.add_argument("--root", default=None, help="the folder to list (default: the configs/ of this checkout)")
    p.set_defaults(func=_configs)
