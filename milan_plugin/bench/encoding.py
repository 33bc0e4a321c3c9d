"""Describe time with once-per-image encoding vs per-(unit, image) encoding, and units per second.

Exemplars of one real layer (MobileNetV2 ``features.17``, 320 units, ImageNet weights) over the
real photo folder; the same describer decodes both ways, so the ratio isolates the encoder's
share. Units of one layer share many exemplar images, which is what once-per-image exploits.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--describer", default="milan:demo")
    parser.add_argument("--layer", default="features.17")
    parser.add_argument("--units", type=int, default=256, help="how many units of the layer to describe")
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--beam-size", type=int, default=50)
    parser.add_argument("--images", help="image folder (default: the real photo folder)")
    parser.add_argument("--cache-dir", help="exemplar cache folder (reused between runs)")


def run(args: argparse.Namespace) -> int:
    import torch
    import torchvision

    from milan_plugin import compute_exemplars
    from milan_plugin.assets import install_offline_weights, photo_folder
    from milan_plugin.describe.loading import load_describer

    install_offline_weights()
    model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval()
    folder = args.images or str(photo_folder())
    units = list(range(args.units))
    exemplars = compute_exemplars(
        model,
        [args.layer],
        f"folder:{folder}",
        k=args.k,
        units=units,
        cache_dir=args.cache_dir,
        progress=False,
    )[args.layer]
    describer = load_describer(args.describer, beam_size=args.beam_size, progress=False)
    unique = len(torch.unique(exemplars.ids))
    print(
        f"layer {args.layer}: {len(exemplars)} units x k={exemplars.k} = {exemplars.ids.numel()} "
        f"(unit, image) "
        f"pairs over {unique} unique images; describer {describer.name}, beam {args.beam_size}"
    )
    timings = {}
    descriptions = {}
    for label, once in (("once per image", True), ("per (unit, image)", False)):
        started = time.perf_counter()
        features = describer.encode_exemplars(exemplars, units, once_per_image=once)
        encoded = time.perf_counter()
        descriptions[label] = describer.describe_features(features)
        finished = time.perf_counter()
        timings[label] = (encoded - started, finished - encoded)
        print(
            f"{label:>18}: encode {encoded - started:7.2f} s, decode {finished - encoded:7.2f} s, "
            f"total {finished - started:7.2f} s"
        )
    once, per_pair = (sum(timings[label]) for label in ("once per image", "per (unit, image)"))
    same = descriptions["once per image"] == descriptions["per (unit, image)"]
    print(f"describe time ratio once-per-image / per-pair: {once / per_pair:.3f} (same descriptions: {same})")
    print(f"units described per second (once per image, beam {args.beam_size}): {len(units) / once:.1f}")
    return 0 if same else 1
