"""The ``glore`` command. Each subcommand lives in a module that defines ``register(subparsers)``.

``key.sub=value`` overrides of ``train`` and ``evaluate`` may come anywhere on the line, also after
the options.

A :class:`glore.errors.GloreError` (a mistake in a config, a file, a checkpoint, a run folder) is
printed as one line and exits 2; any other exception is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from glore import __version__
from glore.errors import GloreError

# modules defining subcommands; each has register(subparsers) that adds parsers with set_defaults(func=...).
# They import glore.engine.*, glore.models, glore.study and glore.zoo inside the commands that use them:
# those load Lightning, timm, torchvision, pydantic or scipy, which `glore --help` and `glore --version`
# (which build every subcommand's parser) do not need (docs/design-notes.md has the measurement).
COMMAND_MODULES = (
    "glore.cli.train",    # train, evaluate
    "glore.cli.summary",  # summary
    "glore.cli.analyze",  # analyze projections|attention|query-independence|graph
    "glore.cli.study",    # study
    "glore.cli.predict",  # predict
    "glore.cli.export",   # export
    "glore.cli.listing",  # models, configs
    "glore.demo",         # demo [image|video]
)


DESCRIPTION = ("Graph-based global reasoning (GloRe) and global-context blocks: train, evaluate, predict, "
               "export, summarise and analyse models. A mistake in what you give prints one line and exits 2.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glore", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"glore {__version__}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    parser.set_defaults(_subparsers=subparsers)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, with the ``key=value`` overrides that follow an option (which argparse
    leaves over) added to ``overrides``; anything else left over is refused by the subcommand."""
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    subparser = args._subparsers.choices.get(args.command, parser) if args.command else parser
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if isinstance(getattr(args, "overrides", None), list) and len(overrides) == len(extra):
        args.overrides.extend(overrides)
        return args
    subparser.error(f"unrecognized arguments: {' '.join(extra)}")


def user_error(exc: BaseException) -> GloreError | None:
    """The :class:`GloreError` behind ``exc``, also when a DataLoader worker re-raised it under
    another type (its original is kept as the cause or context)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, GloreError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def one_line(error: GloreError) -> str:
    """The message of ``error``; for one re-raised by a DataLoader worker ("Caught ImageReadError in
    DataLoader worker process 0" and the worker's traceback), the original message at its end."""
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        name = type(error).__name__
        text = last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last
    return " ".join(text.split("\n")) if "\n" in text else text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        print(f"glore {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
