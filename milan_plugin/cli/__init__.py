"""The ``milan`` command.

Each subcommand lives in its own module listed in :data:`SUBCOMMANDS`; a module defines
``add_parser(subparsers)``, which adds its parser and sets ``func`` (taking the parsed
arguments, returning an exit code). Subcommand modules import heavy libraries inside ``func``
so that ``milan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from milan_plugin.errors import MilanError

SUBCOMMANDS: tuple[str, ...] = (
    "milan_plugin.cli.plugins_command",
    "milan_plugin.cli.exemplars_command",
    "milan_plugin.cli.describe_command",
    "milan_plugin.cli.train_command",
    "milan_plugin.cli.bench_command",
    "milan_plugin.cli.demo_command",
    "milan_plugin.hub.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milan",
        description="Describe the neurons of vision models in natural language (MILAN).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for dotted in SUBCOMMANDS:
        importlib.import_module(dotted).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MilanError as error:
        print(f"milan {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"milan {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
