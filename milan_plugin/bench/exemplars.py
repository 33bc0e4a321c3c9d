"""Exemplar engine overhead over a plain forward pass, and its memory as the input count grows.

Runs torchvision resnet18 (random weights) over seeded random images, capturing layer1..layer4
at once. Prints the engine's time divided by the time of plain ``torch.no_grad()`` forward
passes over the same batches, and the peak RSS of an engine run over 4x the images divided by
that over 1x (each run in a fresh subprocess, so one cannot inherit the other's peak).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence

import torch

LAYERS = ("layer1", "layer2", "layer3", "layer4")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=512, help="images for the timing runs (default 512)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--memory-images", type=int, default=256, help="1x image count of the memory runs")
    parser.add_argument("--skip-memory", action="store_true", help="only measure time")


class SeededImages:
    """Model-ready random images made on demand from the index, so memory does not scale with count."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size, self.spec = count, size, f"bench:seeded:{count}:{size}"

    def __len__(self) -> int:
        return self.count

    def key(self, index: int) -> str:
        return f"seeded-{index}"

    def fingerprint(self) -> str:
        return self.spec

    def load(self, indices: Sequence[int]):
        from milan_plugin.protocols import LoadedBatch

        images = [
            torch.randn(3, self.size, self.size, generator=torch.Generator().manual_seed(index))
            for index in indices
        ]
        return LoadedBatch(torch.stack(images), list(indices))

    def images(self, indices: Sequence[int], size: int = 224) -> None:
        return None


def _model() -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def measure_time(images: int, batch_size: int, size: int) -> dict[str, float]:
    """Engine seconds and plain-forward seconds over the same pre-made batches."""
    from milan_plugin.exemplars import compute_exemplars
    from milan_plugin.sources.tensors import TensorSource

    model = _model()
    seeded = SeededImages(images, size)
    inputs = seeded.load(range(images)).inputs
    source = TensorSource.raw(inputs)
    with torch.no_grad():
        model(inputs[:batch_size])  # warm-up

    def forward_seconds() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for first in range(0, images, batch_size):
                model(inputs[first : first + batch_size])
        return time.perf_counter() - start

    before = forward_seconds()
    start = time.perf_counter()
    compute_exemplars(model, list(LAYERS), source, k=min(15, images), batch_size=batch_size, progress=False)
    engine = time.perf_counter() - start
    forward = (before + forward_seconds()) / 2
    return {"engine_s": engine, "forward_s": forward, "ratio": engine / forward}


def memory_child(images: int, batch_size: int, size: int) -> None:
    """Run the engine over ``images`` seeded images and print the process's peak RSS (MiB) as JSON."""
    import resource

    from milan_plugin.exemplars import compute_exemplars

    source = SeededImages(images, size)
    compute_exemplars(
        _model(), list(LAYERS), source, k=min(15, images), batch_size=batch_size, progress=False
    )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"images": images, "peak_rss_mib": peak_kib / 1024}))


def _peak_rss(images: int, batch_size: int, size: int) -> float:
    code = (
        f"from milan_plugin.bench.exemplars import memory_child; memory_child({images}, {batch_size}, {size})"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(json.loads(output.strip().splitlines()[-1])["peak_rss_mib"])


def run(args: argparse.Namespace) -> int:
    print(
        f"exemplar engine: resnet18 (random weights), {', '.join(LAYERS)} at once, "
        f"{args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} torch threads"
    )
    timing = measure_time(args.images, args.batch_size, args.image_size)
    print(
        f"time over {args.images} images: engine {timing['engine_s']:.2f} s, plain forward "
        f"{timing['forward_s']:.2f} s, engine/forward = {timing['ratio']:.3f} (target <= 1.25)"
    )
    if not args.skip_memory:
        single = _peak_rss(args.memory_images, args.batch_size, args.image_size)
        quadruple = _peak_rss(4 * args.memory_images, args.batch_size, args.image_size)
        print(
            f"peak RSS: {args.memory_images} images {single:.0f} MiB, {4 * args.memory_images} images "
            f"{quadruple:.0f} MiB, 4x/1x = {quadruple / single:.3f} (target <= 1.1)"
        )
    return 0
