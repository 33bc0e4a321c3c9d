"""Scene generator throughput: synthetic-world images (with masks) rendered per second on one core.

``milan bench scenes [--count 500]``. Renders scenes of a fresh world (glyph and shape caches
warmed on the first 50) and prints images/s, plus the ratio to the 200 images/s target.
"""

from __future__ import annotations

import argparse
import time

TARGET = 200.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=500, help="scenes to render")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import torch

    from milan_plugin.synth.scenes import World

    torch.set_num_threads(1)
    world = World(args.seed)
    for index in range(50):
        world.render(index)
    started = time.perf_counter()
    for index in range(50, 50 + args.count):
        world.render(index)
    rate = args.count / (time.perf_counter() - started)
    print(f"rendered {args.count} scenes (224x224 RGB + code map of 41 concept masks + noise)")
    print(
        f"throughput: {rate:.0f} images/s on one core ({rate / TARGET:.2f}x the {TARGET:.0f} images/s target)"
    )
    return 0
