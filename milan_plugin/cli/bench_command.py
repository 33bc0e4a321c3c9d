"""``milan bench NAME``: the benchmarks of :mod:`milan_plugin.bench`."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from milan_plugin.bench import add_benchmark_parsers

    parser = subparsers.add_parser("bench", help="run a benchmark and print measured ratios")
    add_benchmark_parsers(parser)
