"""The ``glore`` command. Each subcommand lives in a module that defines ``register(subparsers)``.

A :class:`glore.errors.GloreError` (a mistake in a config, a file, a checkpoint, a run folder) is
printed as one line and exits 2; any other exception is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from glore.errors import GloreError

# modules defining subcommands; each has register(subparsers) that adds parsers with set_defaults(func=...)
COMMAND_MODULES = (
    "glore.cli.train",    # train, evaluate
    "glore.cli.summary",  # summary
    "glore.cli.analyze",  # analyze projections|attention|query-independence|graph
    "glore.cli.study",    # study
    "glore.demo",         # demo [image|video]
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glore", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


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
    args = parser.parse_args(argv)
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
