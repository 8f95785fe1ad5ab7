"""Run configuration: a nested dict loaded from YAML, with ``key.sub=value`` overrides.

A config has the top-level keys in :data:`TOP_LEVEL_KEYS`::

    task: classification            # a key of glore.engine.TASKS
    seed: 0
    output_dir: runs/example
    model: {name: resnet50, block: glore, units: [0, 3], num_classes: 1000}
    data: {name: imagefolder, root: /data/imagenet, batch_size: 32, num_workers: 8}
    optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4, schedule: cosine, warmup_epochs: 5}
    trainer: {max_epochs: 100, precision: 32-true, devices: 1, num_nodes: 1}

``load_config(path, overrides)`` deep-merges :data:`DEFAULTS`, the YAML file, then each override
(``optim.lr=0.1``, ``model.units=[0,3]``; values are parsed as YAML (safe loader; ``1e-4`` is a float) so numbers, lists,
booleans and ``null`` come out typed). The result holds only plain dicts, lists, strings, numbers,
booleans and None, so it can be stored in a checkpoint read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import io
import os
import re
from collections.abc import Iterable, Mapping

import yaml

from glore.errors import ConfigError, MissingFileError

from .schema import RunConfig, check_schema, filled_data


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` (no dot, YAML 1.2 style) as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A YAML mapping; a key given twice raises (PyYAML would keep the last one silently)."""
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def yaml_load(text_or_stream):
    """``yaml.safe_load`` with YAML 1.2 floats (``1e-4``); a key given twice in a mapping is an error."""
    return yaml.load(text_or_stream, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader

TOP_LEVEL_KEYS = ("task", "seed", "output_dir", "model", "data", "optim", "trainer", "reference")

def _schema_defaults() -> dict:
    """The defaults of every key of :mod:`glore.engine.schema` (the one table of them); ``data`` is
    empty: its keys differ per task, and the tasks read its defaults from their section of the schema
    (:func:`filled_config` shows them)."""
    defaults = RunConfig().model_dump()
    defaults["data"] = {}
    return defaults


DEFAULTS: dict = _schema_defaults()


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """Return a new dict: ``base`` with ``update`` merged in, recursing into nested dicts.

    A non-dict value in ``update`` replaces the value in ``base``; neither argument is modified.
    """
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], object]:
    """Split ``"a.b.c=value"`` into ``(["a", "b", "c"], parsed value)``."""
    if "=" not in text:
        raise ConfigError(f"override must look like key.sub=value, got {text!r}")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not key.strip() or any(not part for part in path):
        raise ConfigError(f"override key must be dotted names like optim.lr, got {key!r} in {text!r}")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse the value of override {text!r}: {exc}") from None
    return path, value


def apply_overrides(cfg: Mapping, overrides: Iterable[str]) -> dict:
    """Return ``cfg`` with each ``key.sub=value`` override set (creating nested dicts as needed)."""
    out = copy.deepcopy(dict(cfg))
    for text in overrides:
        path, value = parse_override(text)
        _check_top_level(path[0], source=f"override {text!r}")
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(path[: i + 1])
                raise ConfigError(
                    f"override {text!r}: {where} is a {type(child).__name__} ({child!r}), expected a mapping"
                )
            node = child
        node[path[-1]] = value
    return out


def _check_top_level(key: str, *, source: str) -> None:
    if key not in TOP_LEVEL_KEYS:
        raise ConfigError(
            f"unknown top-level config key {key!r} in {source}; expected one of {', '.join(TOP_LEVEL_KEYS)}"
        )


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> dict:
    """Load a run config: :data:`DEFAULTS`, then the YAML file at ``path`` (if any), then ``overrides``.

    Raises :class:`ConfigError` (a ``ValueError``) for a missing file, a file that is not a mapping,
    an unknown top-level key, or a malformed override; :class:`FileNotFoundError` when ``path`` does
    not exist.
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = os.fspath(path)
        if os.path.isdir(path):
            raise ConfigError(f"config {path!r} is a folder; expected a YAML file (configs/<task>/<name>.yaml)")
        if not os.path.isfile(path):
            raise MissingFileError(f"config file not found: {path!r}")
        with open(path, "rb") as handle:
            raw = handle.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path!r} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                              f"{exc.start}); save it as UTF-8") from None
        if "\x00" in text:
            raise ConfigError(f"config file {path!r} holds NUL bytes; expected a YAML text file")
        try:
            stream = io.StringIO(text)
            stream.name = path              # named in PyYAML's messages
            loaded = yaml_load(stream)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse config file {path!r}: {' '.join(str(exc).split())}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path!r} must hold a mapping, got {type(loaded).__name__}")
        for key in loaded:
            _check_top_level(key, source=f"config file {path!r}")
        cfg = deep_merge(cfg, loaded)
    cfg = apply_overrides(cfg, overrides)
    return validate_config(upgrade_spelling(cfg))


def upgrade_spelling(cfg: dict) -> dict:
    """``cfg`` with the ``model`` keys of an earlier release in today's spelling, each with a
    ``FutureWarning`` (:func:`glore.models.placement.upgrade_model_config`)."""
    if cfg.get("task") not in ("segmentation", "video") or not isinstance(cfg.get("model"), Mapping):
        return cfg
    # imported here: glore.models loads timm, and the config of the other tasks needs none of it
    from glore.models.placement import upgrade_model_config

    return {**cfg, "model": upgrade_model_config(cfg["task"], cfg["model"])}


def validate_config(cfg: Mapping) -> dict:
    """Check the shape of a merged config and return it as a plain dict."""
    cfg = dict(cfg)
    for key in cfg:
        _check_top_level(key, source="config")
    check_schema(cfg)
    return cfg


def filled_config(cfg: Mapping) -> dict:
    """``cfg`` with its ``data`` section's defaults filled in, for the keys its dataset reads."""
    return {**cfg, "data": filled_data(cfg.get("task", "classification"), cfg.get("data") or {})}


def to_plain(value):
    """Convert tuples and other sequences/mappings to plain lists/dicts (safe for ``weights_only`` loads)."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"config values must be plain YAML types, got {type(value).__name__} ({value!r})")


def dump_config(cfg: Mapping, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML."""
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(to_plain(cfg), handle, sort_keys=False)
