"""The synth exemplar source: scenes of the synthetic world as model inputs, images and masks.

Spec: ``synth:scenes?seed=0&n=1000&inputs=world``. With ``inputs=world`` a model input is
``(5, 224, 224)``: the RGB image in [0, 1], the scene's code map (every concept mask packed into
one integer per pixel, see :mod:`milan_plugin.synth.logic`) and the seeded noise field: what
planted neurons read. With ``inputs=rgb`` it is the ImageNet-normalised RGB image only, for
models that see pixels. :meth:`SynthSource.concept_masks` unpacks the masks;
:meth:`SynthSource.images` always returns the RGB only, so a describer sees pixels and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import parse_qsl

import numpy as np
import torch
import torch.nn.functional as F

from milan_plugin.errors import InvalidInputError
from milan_plugin.fingerprint import digest_json
from milan_plugin.protocols import LoadedBatch
from milan_plugin.synth.concepts import WORLD_VERSION, channel_names
from milan_plugin.synth.scenes import Scene, World

SCHEME = "synth:scenes"
INPUT_MODES = ("world", "rgb")
_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def parse_scenes_spec(spec: str) -> dict[str, object]:
    """``synth:scenes?seed=0&n=1000&inputs=world`` -> ``{"seed": 0, "n": 1000, "inputs": "world"}``."""
    head, _, query = spec.partition("?")
    if head != SCHEME:
        raise InvalidInputError(f"not a synth scenes spec: {spec!r}; expected 'synth:scenes?seed=0&n=1000'")
    options: dict[str, object] = {"seed": 0, "n": 1000, "inputs": "world"}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in options:
            raise InvalidInputError(f"unknown option {key!r} in {spec!r}; known: seed, n, inputs")
        options[key] = value
    try:
        options["seed"], options["n"] = int(options["seed"]), int(options["n"])
    except ValueError as error:
        raise InvalidInputError(f"seed and n must be integers in {spec!r}") from error
    if options["inputs"] not in INPUT_MODES:
        raise InvalidInputError(f"inputs must be one of {', '.join(INPUT_MODES)} in {spec!r}")
    if options["n"] <= 0 or options["seed"] < 0:
        raise InvalidInputError(f"n must be positive and seed non-negative in {spec!r}")
    return options


class SynthSource:
    """``n`` scenes of the world ``seed``; index i is always scene i (keys ``scene-000042``)."""

    def __init__(self, seed: int = 0, n: int = 1000, inputs: str = "world", cache_scenes: int = 256) -> None:
        if inputs not in INPUT_MODES:
            raise InvalidInputError(f"inputs must be one of {', '.join(INPUT_MODES)}, got {inputs!r}")
        self.world = World(seed)
        self.seed, self.n, self.inputs = seed, n, inputs
        self.spec = f"{SCHEME}?seed={seed}&n={n}&inputs={inputs}"
        self.channels = channel_names()[:-1]
        self.scene = lru_cache(maxsize=cache_scenes)(self._render)

    @classmethod
    def from_spec(cls, spec: str) -> SynthSource:
        options = parse_scenes_spec(spec)
        return cls(seed=options["seed"], n=options["n"], inputs=options["inputs"])

    def __repr__(self) -> str:
        return f"SynthSource({self.spec!r})"

    def __len__(self) -> int:
        return self.n

    def _check(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.n:
            raise IndexError(f"scene index {index} out of range for {self.spec} (0..{self.n - 1})")
        return index

    def _render(self, index: int) -> Scene:
        return self.world.render(self._check(index))

    def key(self, index: int) -> str:
        return f"scene-{self._check(index):06d}"

    def index_of(self, key: str) -> int:
        """Inverse of :meth:`key`."""
        prefix = "scene-"
        if not key.startswith(prefix) or not key[len(prefix) :].isdigit():
            raise KeyError(f"{key!r} is not a synth scene key (expected e.g. 'scene-000042')")
        return self._check(int(key[len(prefix) :]))

    def fingerprint(self) -> str:
        return digest_json([WORLD_VERSION, self.seed, self.n, self.inputs, self.channels])

    def load(self, indices: Sequence[int]) -> LoadedBatch:
        indices = [int(index) for index in indices]
        return LoadedBatch(inputs=self.model_inputs(indices), indices=indices)

    def model_inputs(self, indices: Sequence[int]) -> torch.Tensor:
        """The model inputs of scenes ``indices`` as one float tensor ``(n, 5 or 3, 224, 224)``.

        Filled in place in one numpy buffer: converting and concatenating per image cost more
        than drawing the scenes.
        """
        scenes = [self.scene(int(index)) for index in indices]
        channels = 3 if self.inputs == "rgb" else 5
        batch = np.empty((len(scenes), channels, *scenes[0].codes.shape), dtype=np.float32)
        for row, scene in enumerate(scenes):
            np.divide(scene.image.transpose(2, 0, 1), np.float32(255), out=batch[row, :3])
            if channels == 5:
                batch[row, 3] = scene.codes
                batch[row, 4] = scene.noise
        inputs = torch.from_numpy(batch)
        if self.inputs == "rgb":
            inputs[:, :3].sub_(_MEAN).div_(_STD)
        return inputs

    def model_input(self, index: int) -> torch.Tensor:
        """The model input of one scene (see :meth:`model_inputs`)."""
        return self.model_inputs([index])[0]

    def images(self, indices: Sequence[int], size: int = 224) -> torch.Tensor:
        images = torch.stack([torch.from_numpy(self.scene(int(i)).image).permute(2, 0, 1) for i in indices])
        if size != images.shape[-1]:
            images = F.interpolate(images.float(), size=(size, size), mode="nearest").to(torch.uint8)
        return images

    def concept_masks(self, indices: Sequence[int], size: int = 224) -> torch.Tensor:
        """Bool ``(n, C, size, size)`` concept and role masks, channel names in ``self.channels``."""
        masks = torch.from_numpy(np.stack([self.scene(int(i)).masks for i in indices]))
        if size != masks.shape[-1]:
            masks = F.interpolate(masks.float(), size=(size, size), mode="nearest") > 0.5
        return masks
