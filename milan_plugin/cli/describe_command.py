"""``milan describe``: descriptions of a saved exemplar set's units, as parquet and CSV."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("describe", help="describe the units of a saved exemplar set")
    parser.add_argument(
        "--exemplars", required=True, help="folder written by ExemplarSet.save / milan exemplars"
    )
    parser.add_argument(
        "--describer", default="milan:demo", help="milan:demo, a checkpoint folder, a .pth or a repo id"
    )
    parser.add_argument("--units", help="comma-separated units and ranges, e.g. 0-9,17 (default: all)")
    parser.add_argument(
        "--out", required=True, help="output table; FILE.parquet and FILE.csv are both written"
    )
    parser.add_argument(
        "--source", help="source spec to read images from, if the set's own cannot be reopened"
    )
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--lm-weight", type=float)
    parser.add_argument("--strategy", choices=("rerank", "beam", "greedy", "sample"))
    parser.add_argument("--device")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def parse_units(text: str | None) -> list[int] | None:
    """``"0-3,9"`` -> ``[0, 1, 2, 3, 9]``."""
    from milan_plugin.errors import InvalidInputError

    if not text:
        return None
    units: list[int] = []
    for part in text.split(","):
        try:
            if "-" in part:
                first, last = (int(value) for value in part.split("-", 1))
                units.extend(range(first, last + 1))
            else:
                units.append(int(part))
        except ValueError:
            raise InvalidInputError(f"--units {text!r}: expected numbers and ranges like 0-9,17") from None
    return units


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from milan_plugin.describe.loading import load_describer
    from milan_plugin.exemplars.exemplar_set import ExemplarSet
    from milan_plugin.plugins import open_source

    options = {
        key: value
        for key, value in {
            "beam_size": args.beam_size,
            "lm_weight": args.lm_weight,
            "strategy": args.strategy,
            "device": args.device,
            "progress": not args.no_progress,
        }.items()
        if value is not None
    }
    exemplars = ExemplarSet.load(args.exemplars, source=open_source(args.source) if args.source else None)
    describer = load_describer(args.describer, **options)
    descriptions = describer.describe(exemplars, parse_units(args.units))
    table = pd.DataFrame(
        {
            "layer": [d.layer for d in descriptions],
            "unit": [d.unit for d in descriptions],
            "description": [d.text for d in descriptions],
            "score": [d.score for d in descriptions],
            "candidates": [json.dumps([c.__dict__ for c in d.candidates]) for d in descriptions],
            "describer": [d.describer for d in descriptions],
            "describer_version": [d.describer_version for d in descriptions],
        }
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, write in (
        (out.with_suffix(".parquet"), table.to_parquet),
        (out.with_suffix(".csv"), table.to_csv),
    ):
        temporary = path.with_name(path.name + ".partial")
        write(temporary, index=False)
        os.replace(temporary, path)
    print(
        f"described {len(table)} units of {exemplars.layer}: "
        f"{out.with_suffix('.parquet')}, {out.with_suffix('.csv')}"
    )
    return 0
