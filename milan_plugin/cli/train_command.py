"""``milan train``: train a MILAN describer (captioner + LM) on annotation rows; rerun to resume."""

from __future__ import annotations

import argparse
from dataclasses import fields


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from milan_plugin.describe.training import TrainingConfig

    parser = subparsers.add_parser("train", help="train a MILAN describer; rerunning resumes")
    parser.add_argument(
        "--annotations",
        required=True,
        help="synth:NAME, a local folder in Hub layout, or a MILANNOTATIONS key (e.g. base)",
    )
    parser.add_argument("--out", required=True, help="output folder (checkpoint in Hub layout)")
    parser.add_argument("--feature-cache", help="where to cache encoder features (default OUT/features)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--half", action="store_true", help="store the weights in float16")
    parser.add_argument("--device", default=None, help="where to encode and train, e.g. cuda (default cpu)")
    for field in fields(TrainingConfig):
        kind = {"int": int, "float": float}.get(str(field.type).split(" ")[0], str)
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=kind, default=None, help=f"default {field.default}"
        )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from milan_plugin.describe.training import TrainingConfig, train_describer

    overrides = {}
    for field in fields(TrainingConfig):
        value = getattr(args, field.name)
        if value is not None:
            overrides[field.name] = None if value == "none" else value
    config = TrainingConfig(**overrides)
    describer = train_describer(
        args.annotations,
        args.out,
        config,
        progress=not args.no_progress,
        feature_cache=args.feature_cache,
        device=args.device,
    )
    if args.half:
        describer.save_pretrained(args.out, dtype=torch.float16)
    print(f"trained {describer!r}; saved to {args.out}")
    return 0
