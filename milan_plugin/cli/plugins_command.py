"""``milan plugins``: what is loaded, which hooks each plugin implements, and from where."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plugins", help="list loaded plugins and their hooks")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from milan_plugin.plugins import list_plugins

    infos = list_plugins()
    if args.json:
        print(json.dumps([asdict(info) for info in infos], indent=2))
        return 0
    for info in infos:
        source = info.distribution or "built-in"
        print(f"{info.name}  [{source}]  {info.origin}")
        for hook in info.hooks:
            print(f"    {hook}")
    return 0
