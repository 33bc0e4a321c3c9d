"""Benchmarks that print what they measured, as ratios taken in one run.

Each benchmark is a module listed in :data:`BENCHMARKS` that defines ``add_arguments(parser)``
and ``run(args) -> int``. Run one with ``milan bench NAME`` or ``python -m milan_plugin.bench
NAME``. docs/benchmarks.md records their output together with the command that printed it.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, str] = {
    "exemplars": "milan_plugin.bench.exemplars",
    "scenes": "milan_plugin.bench.scenes",
    "describe": "milan_plugin.bench.describe",
    "encoding": "milan_plugin.bench.encoding",
    "nnsight": "milan_plugin.bench.nnsight_overhead",
}


def add_benchmark_parsers(parser: argparse.ArgumentParser) -> None:
    """Add one sub-parser per benchmark; modules are imported only when their help is built."""
    subparsers = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, dotted in BENCHMARKS.items():
        module = importlib.import_module(dotted)
        sub = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
