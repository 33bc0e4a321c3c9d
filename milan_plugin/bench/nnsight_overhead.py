"""nnsight overhead: exemplar computation through nnsight traces / through plain forward hooks.

Same model (a randomly initialised torchvision resnet18), same images, same batches, same layers;
the only difference is how activations are read: the nnsight adapter (one ``trace`` per batch,
envoy outputs saved) or the generic adapter (forward hooks). Each configuration runs
``--repeats`` times alternately and the fastest run of each is compared, so both see the same
machine load.
"""

from __future__ import annotations

import argparse
import time

DEFAULT_LAYERS = "layer1,layer2,layer3,layer4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=256, help="number of random images (default 256)")
    parser.add_argument("--image-size", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument(
        "--layers", default=DEFAULT_LAYERS, help=f"layers to capture (default {DEFAULT_LAYERS})"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (default 3)")
    parser.add_argument("--seed", type=int, default=0)


def measure(
    images: int, image_size: int, batch_size: int, layers: list[str], repeats: int, seed: int
) -> dict:
    """Fastest wall time of each path and their ratio (nnsight / hooks)."""
    import torch
    import torchvision

    from milan_plugin.adapters.nnsight_adapter import MilanNNsight, NNsightAdapter
    from milan_plugin.adapters.torch_module import TorchModuleAdapter
    from milan_plugin.exemplars.engine import compute_exemplars
    from milan_plugin.sources.tensors import TensorSource

    torch.manual_seed(seed)
    model = torchvision.models.resnet18().eval()
    pictures = torch.randint(0, 256, (images, 3, image_size, image_size), dtype=torch.uint8)
    source = TensorSource(pictures, image_size=image_size)
    hooks = TorchModuleAdapter(model)
    traced = NNsightAdapter(MilanNNsight(model), inner=hooks)
    timings: dict[str, list[float]] = {"hooks": [], "nnsight": []}
    results = {}
    for _ in range(repeats):
        for name, adapter in (("hooks", hooks), ("nnsight", traced)):
            start = time.perf_counter()
            results[name] = compute_exemplars(adapter, layers, source, batch_size=batch_size, progress=False)
            timings[name].append(time.perf_counter() - start)
    same = all(torch.equal(results["hooks"][layer].ids, results["nnsight"][layer].ids) for layer in layers)
    best = {name: min(values) for name, values in timings.items()}
    return {
        "hooks_s": best["hooks"],
        "nnsight_s": best["nnsight"],
        "ratio": best["nnsight"] / best["hooks"],
        "identical_exemplars": same,
    }


def run(args: argparse.Namespace) -> int:
    layers = [layer for layer in args.layers.split(",") if layer]
    result = measure(args.images, args.image_size, args.batch_size, layers, args.repeats, args.seed)
    print(
        f"resnet18, {args.images} images at {args.image_size}px, batch {args.batch_size}, "
        f"layers {','.join(layers)}, best of {args.repeats}"
    )
    print(f"plain hooks     {result['hooks_s']:.2f} s")
    print(f"nnsight traces  {result['nnsight_s']:.2f} s")
    print(f"overhead ratio (nnsight / hooks): {result['ratio']:.3f}")
    print(f"identical exemplars: {result['identical_exemplars']}")
    return 0 if result["identical_exemplars"] else 1
