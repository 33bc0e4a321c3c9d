"""``milan exemplars``: compute a model's exemplars over a source and write them (and pictures).

The run's state is checkpointed under ``OUT/.cache``, so rerunning the same command after an
interruption resumes it, and rerunning a finished command returns at once.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "exemplars",
        help="top-k exemplars, activation maps and thresholds of every unit of some layers",
        description="Compute MILAN exemplars in one pass and write OUT/<layer>/exemplars.safetensors.",
    )
    parser.add_argument("--model", required=True, help="model spec, e.g. torchvision:resnet18:IMAGENET1K_V1")
    parser.add_argument(
        "--layers", help="comma-separated layer names (default: the adapter's default layers)"
    )
    parser.add_argument("--source", required=True, help="source spec, e.g. folder:PATH or hf:NAME:SPLIT")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--k", type=int, default=15, help="exemplars per unit (default 15)")
    parser.add_argument("--quantile", type=float, default=0.99, help="mask threshold quantile (default 0.99)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", help="comma-separated unit indices (default: every unit)")
    parser.add_argument("--device", help="torch device, e.g. cuda (default: where the model is)")
    parser.add_argument(
        "--viz", action="store_true", help="also write masked PNGs and one HTML page per layer"
    )
    parser.add_argument("--on-unreadable", choices=("skip", "raise"), default="skip")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from milan_plugin.errors import InvalidInputError
    from milan_plugin.exemplars import compute_exemplars
    from milan_plugin.exemplars.viz import write_layer_viz
    from milan_plugin.plugins import load_model

    units = None
    if args.units:
        try:
            units = [int(unit) for unit in args.units.split(",") if unit.strip()]
        except ValueError:
            raise InvalidInputError(f"--units must be comma-separated integers, got {args.units!r}") from None
    layers = [layer for layer in args.layers.split(",") if layer] if args.layers else None
    out = Path(args.out)
    model = load_model(args.model, device=args.device)
    results = compute_exemplars(
        model,
        layers,
        args.source,
        k=args.k,
        quantile=args.quantile,
        batch_size=args.batch_size,
        cache_dir=out / ".cache",
        progress=not args.no_progress,
        units=units,
        device=args.device,
        on_unreadable=args.on_unreadable,
    )
    for layer, exemplars in results.items():
        path = exemplars.save(out / layer)
        line = f"{layer}: {len(exemplars)} units, k={exemplars.k} -> {path}"
        if args.viz:
            line += f"; pictures: {write_layer_viz(exemplars, out / layer / 'viz')}"
        print(line)
    return 0
