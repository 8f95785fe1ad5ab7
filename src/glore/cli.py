"""The ``glore`` command. Each subcommand lives in a module that defines ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

# modules defining subcommands; each has register(subparsers) that adds parsers with set_defaults(func=...)
COMMAND_MODULES = (
    "glore.engine.commands",      # train, evaluate
    "glore.analysis.commands",    # summary
    "glore.analysis.analyze_commands",  # analyze projections|attention|query-independence|graph
    "glore.demo",                 # demo [image|video]
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glore", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        print(f"glore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
