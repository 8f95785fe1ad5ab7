"""Options shared by the subcommands: one ``--output-dir`` spelling, with ``--output`` kept as a
deprecated alias where a command used to spell it so."""

from __future__ import annotations

import argparse
import sys


class DeprecatedAlias(argparse.Action):
    """Stores like ``store`` and prints a one-line warning that ``preferred`` replaces this spelling."""

    def __init__(self, option_strings, dest, *, preferred: str, **kwargs):
        self.preferred = preferred
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.preferred}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_output_dir(parser: argparse.ArgumentParser, *, help: str, required: bool = False, type=str,
                   default=None) -> None:
    """``--output-dir`` (dest ``output``) and its deprecated alias ``--output``."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--output-dir", dest="output", type=type, default=default, metavar="DIR", help=help)
    group.add_argument("--output", dest="output", type=type, default=default, action=DeprecatedAlias, metavar="DIR",
                       preferred="--output-dir", help="deprecated spelling of --output-dir")
