"""Exemplar engine overhead over a plain forward pass, and its memory as the input count grows.

Runs torchvision resnet18 (random weights) over seeded random images, capturing layer1..layer4
at once. Prints the engine's time divided by the time of plain ``torch.no_grad()`` forward
passes over the same batches, and the peak memory of an engine run over 4x the images divided by
that over 1x (each run in a fresh subprocess, so one cannot inherit the other's peak).

``--device cuda`` runs both on the GPU: the model and the engine live there, inputs are copied
from the CPU per batch in both the engine and the baseline (as a real source's would be), every
timed region is bracketed by ``torch.cuda.synchronize()`` (CUDA calls return before the work is
done), and the memory figure is the GPU peak (``torch.cuda.max_memory_allocated``) instead of
the process RSS, which on a GPU mostly measures the CUDA runtime.
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
    parser.add_argument(
        "--device", default="cpu", help="where the model and engine run: cpu (default), cuda, cuda:N"
    )


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


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer read afterwards covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """A readable name for the report: the GPU's model, or ``cpu``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def resolve_device(name: str) -> torch.device:
    """``name`` as a device, refusing a GPU that is not there rather than failing mid-run."""
    from milan_plugin.errors import InvalidInputError

    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InvalidInputError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"--device {name!r} asks for a GPU, but torch sees no CUDA device; use cpu")
    if device.type not in ("cpu", "cuda"):
        raise InvalidInputError(f"--device {name!r}: only cpu and cuda are supported")
    return device


def measure_time(
    images: int, batch_size: int, size: int, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Engine seconds and plain-forward seconds over the same pre-made batches on ``device``."""
    from milan_plugin.exemplars import compute_exemplars
    from milan_plugin.sources.tensors import TensorSource

    device = torch.device(device)
    model = _model().to(device)
    seeded = SeededImages(images, size)
    inputs = seeded.load(range(images)).inputs
    source = TensorSource.raw(inputs)
    with torch.no_grad():
        model(inputs[:batch_size].to(device))  # warm-up (and, on a GPU, kernel selection)
    # The engine's own kernels (sort, bincount, ...) load lazily on first use; warm them up too.
    compute_exemplars(
        model, list(LAYERS), TensorSource.raw(inputs[:batch_size]), k=1, progress=False, device=device
    )
    _synchronize(device)

    def forward_seconds() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            for first in range(0, images, batch_size):
                model(inputs[first : first + batch_size].to(device))
        _synchronize(device)
        return time.perf_counter() - start

    before = forward_seconds()
    start = time.perf_counter()
    compute_exemplars(
        model, list(LAYERS), source, k=min(15, images), batch_size=batch_size, progress=False, device=device
    )
    _synchronize(device)
    engine = time.perf_counter() - start
    forward = (before + forward_seconds()) / 2
    return {"engine_s": engine, "forward_s": forward, "ratio": engine / forward}


def memory_child(images: int, batch_size: int, size: int, device: str = "cpu") -> None:
    """Run the engine over ``images`` seeded images on ``device`` and print its peak memory (MiB) as
    JSON: the process's peak RSS on the CPU, the peak of allocated GPU memory on a GPU."""
    import resource

    from milan_plugin.exemplars import compute_exemplars

    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    source = SeededImages(images, size)
    compute_exemplars(
        _model().to(target),
        list(LAYERS),
        source,
        k=min(15, images),
        batch_size=batch_size,
        progress=False,
        device=target,
    )
    if target.type == "cuda":
        _synchronize(target)
        peak_mib = torch.cuda.max_memory_allocated(target) / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": images, "peak_mib": peak_mib}))


def _peak_memory(images: int, batch_size: int, size: int, device: torch.device) -> float:
    code = (
        "from milan_plugin.bench.exemplars import memory_child; "
        f"memory_child({images}, {batch_size}, {size}, {str(device)!r})"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(json.loads(output.strip().splitlines()[-1])["peak_mib"])


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    print(
        f"exemplar engine: resnet18 (random weights), {', '.join(LAYERS)} at once, "
        f"{args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} torch threads, "
        f"device {device_name(device)}"
    )
    timing = measure_time(args.images, args.batch_size, args.image_size, device)
    print(
        f"time over {args.images} images: engine {timing['engine_s']:.2f} s, plain forward "
        f"{timing['forward_s']:.2f} s, engine/forward = {timing['ratio']:.3f} (target <= 1.25)"
    )
    if not args.skip_memory:
        single = _peak_memory(args.memory_images, args.batch_size, args.image_size, device)
        quadruple = _peak_memory(4 * args.memory_images, args.batch_size, args.image_size, device)
        what = "peak GPU memory allocated" if device.type == "cuda" else "peak RSS"
        print(
            f"{what}: {args.memory_images} images {single:.0f} MiB, {4 * args.memory_images} images "
            f"{quadruple:.0f} MiB, 4x/1x = {quadruple / single:.3f} (target <= 1.1)"
        )
    return 0
