"""A small CNN trained on the synthetic world: real neurons whose selectivity nobody planted.

Planted units are the benchmark's ground truth, but a describer could learn their quirks. Units
that emerge from training are a second, independent test: the network sees only RGB pixels and
learns to name the main object's shape (12 shapes or text) and its colour (12 colours). The main
object is the largest item of a scene's layout. Training is seeded and single-process, so a seed
always gives the same weights on one machine and thread count; the weights are cached under the
synth cache dir (``cnn-seed<seed>-<key>/weights.safetensors``) and trained on first use.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from milan_plugin.synth.concepts import COLOURS, SHAPES, WORLD_VERSION
from milan_plugin.synth.scenes import SceneLayout, World

SHAPE_CLASSES: tuple[str, ...] = (*SHAPES, "text")
COLOUR_CLASSES: tuple[str, ...] = tuple(COLOURS)
#: Training scenes start here, far from the scenes the exemplars are computed on (0, 1, 2, ...).
TRAIN_OFFSET = 1_000_000
INPUT_SIDE = 64
#: Changes whenever the same seed and config would train other weights (part of the cache key).
TRAINING_VERSION = "2"
LAYERS: tuple[str, ...] = ("block3", "block4")
_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


@dataclass(frozen=True)
class TrainingConfig:
    """How the world CNN is trained (part of the cache key)."""

    train_images: int = 1500
    test_images: int = 300
    epochs: int = 10
    batch_size: int = 50
    learning_rate: float = 5e-3
    width: int = 16


class WorldCNN(nn.Module):
    """Four conv blocks on a 64 px image, then two heads: main object's shape and colour.

    Inputs are ImageNet-normalised RGB of any square size (the ``inputs=rgb`` synth source gives
    224 px); they are average-pooled to 64 px first, which keeps training to minutes on a CPU.
    ``block3`` and ``block4`` (16x16 maps, receptive field 23 px = 80 px of the 224 px scene)
    are the layers whose units get labelled.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.block1 = _block(3, width // 2, stride=2)
        self.block2 = _block(width // 2, width, stride=2)
        self.block3 = _block(width, 2 * width, stride=1)
        self.block4 = _block(2 * width, 2 * width, stride=1)
        self.shape_head = nn.Linear(2 * width, len(SHAPE_CLASSES))
        self.colour_head = nn.Linear(2 * width, len(COLOUR_CLASSES))

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(
                f"WorldCNN reads RGB batches (B, 3, H, W); got {tuple(inputs.shape)}. Use the "
                "`synth:scenes?...&inputs=rgb` source."
            )
        if inputs.shape[-1] != INPUT_SIDE or inputs.shape[-2] != INPUT_SIDE:
            inputs = F.adaptive_avg_pool2d(inputs, INPUT_SIDE)
        return self.block4(self.block3(self.block2(self.block1(inputs))))

    def logits(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(inputs).mean(dim=(2, 3))
        return self.shape_head(pooled), self.colour_head(pooled)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Concatenated shape and colour logits (the engine only needs the blocks' outputs)."""
        return torch.cat(self.logits(inputs), dim=1)


def _block(channels_in: int, channels_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


def main_object_labels(layout: SceneLayout) -> tuple[int, int] | None:
    """(shape class, colour class) of the layout's largest item; None for an empty scene."""
    if not layout.objects:
        return None
    item = max(layout.objects, key=lambda obj: obj.height * obj.width)
    shape = SHAPE_CLASSES.index(item.name if item.kind == "shape" else "text")
    return shape, COLOUR_CLASSES.index(item.colour)


@functools.lru_cache(maxsize=4)
def training_data(seed: int, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised 64 px images ``(n, 3, 64, 64)`` and shape / colour labels of scenes.

    Scenes ``TRAIN_OFFSET + start ...`` of world ``seed``; scenes without objects are skipped.
    Cached: drawing the scenes costs more than a small training run (treat the tensors as read-only).
    """
    world = World(seed)
    images, shapes, colours = [], [], []
    for index in range(TRAIN_OFFSET + start, TRAIN_OFFSET + start + count):
        scene = world.render(index)
        labels = main_object_labels(scene.layout)
        if labels is None:
            continue
        rgb = torch.from_numpy(scene.image).permute(2, 0, 1).float().div_(255.0)
        images.append(F.adaptive_avg_pool2d(((rgb - _MEAN) / _STD)[None], INPUT_SIDE)[0])
        shapes.append(labels[0])
        colours.append(labels[1])
    return torch.stack(images), torch.tensor(shapes), torch.tensor(colours)


def train_world_cnn(seed: int = 0, config: TrainingConfig | None = None, progress: bool = True) -> WorldCNN:
    """Train a :class:`WorldCNN` on world ``seed`` from scratch (deterministic per seed).

    Training runs on one CPU thread: threads sum a convolution's gradients in an order that
    depends on how many there are, the last bits differ, and over a run the differences grow into
    other weights and other unit labels. One thread gives the same ``cnn`` split on every machine.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_world_cnn(seed, config or TrainingConfig(), progress)
    finally:
        torch.set_num_threads(previous_threads)


def _train_world_cnn(seed: int, config: TrainingConfig, progress: bool) -> WorldCNN:
    from tqdm.auto import tqdm

    images, shapes, colours = training_data(seed, 0, config.train_images)
    torch.manual_seed(seed)
    model = WorldCNN(config.width)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    steps = config.epochs * -(-len(images) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=steps)
    order_rng = np.random.default_rng([seed, 11])
    model.train()
    with tqdm(total=steps, desc="training world CNN", disable=not progress) as bar:
        for _ in range(config.epochs):
            order = torch.from_numpy(order_rng.permutation(len(images)))
            for batch in order.split(config.batch_size):
                shape_logits, colour_logits = model.logits(images[batch])
                loss = F.cross_entropy(shape_logits, shapes[batch]) + F.cross_entropy(
                    colour_logits, colours[batch]
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def held_out_accuracy(model: WorldCNN, seed: int, config: TrainingConfig | None = None) -> dict[str, float]:
    """Shape and colour accuracy on scenes never trained on, with the majority-class rates (chance)."""
    config = config or TrainingConfig()
    images, shapes, colours = training_data(seed, config.train_images, config.test_images)
    model.eval()
    predicted = [model.logits(batch) for batch in images.split(128)]
    shape_hits = torch.cat([logits.argmax(1) for logits, _ in predicted]) == shapes
    colour_hits = torch.cat([logits.argmax(1) for _, logits in predicted]) == colours
    return {
        "images": len(images),
        "shape_accuracy": float(shape_hits.float().mean()),
        "colour_accuracy": float(colour_hits.float().mean()),
        "shape_majority": float(torch.bincount(shapes).max()) / len(shapes),
        "colour_majority": float(torch.bincount(colours).max()) / len(colours),
    }


def cnn_directory(seed: int, config: TrainingConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    from milan_plugin.fingerprint import digest_json
    from milan_plugin.synth.dataset import default_cache_dir

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = digest_json([WORLD_VERSION, TRAINING_VERSION, seed, asdict(config), INPUT_SIDE])
    return cache / f"cnn-seed{seed}-{key}"


def world_cnn(
    seed: int = 0,
    config: TrainingConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> WorldCNN:
    """The trained world CNN of ``seed``: loaded from the cache, or trained and cached (atomically)."""
    from safetensors.torch import load_file, save_file

    config = config or TrainingConfig()
    folder = cnn_directory(seed, config, cache_dir)
    weights = folder / "weights.safetensors"
    model = WorldCNN(config.width)
    if weights.is_file():
        model.load_state_dict(load_file(str(weights)))
        return model.eval()
    model = train_world_cnn(seed, config, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".weights-{os.getpid()}.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, str(staging))
    os.replace(staging, weights)
    return model
