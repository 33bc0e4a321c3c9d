"""Seeded scenes of the synthetic world: a layout (what is where) and its rendering (pixels + masks).

Scene ``index`` of world ``seed`` depends on nothing else: its random generator is seeded with
``(seed, index)``, so a scene is the same whether it is drawn alone, in a batch or in another
process. Layout sampling is cheap and separate from rendering, so the ground truth of thousands of
scenes (which concepts and relations each holds) can be read without drawing a pixel.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from milan_plugin.synth.concepts import (
    BACKGROUNDS,
    COLOURS,
    RELATIONS,
    SHAPES,
    TEXT_KINDS,
    TEXTURES,
    WORDS,
    channel_names,
    concept_channel,
    role_channels,
)
from milan_plugin.synth.glyphs import glyph_masks
from milan_plugin.synth.logic import ATTRIBUTES
from milan_plugin.synth.shapes import shape_mask
from milan_plugin.synth.textures import PERIODS, texture_pattern

IMAGE_SIZE = 224
#: Shapes with room inside for another object (partners of "inside").
CONTAINERS: tuple[str, ...] = ("circle", "square", "hexagon", "pentagon", "heart", "diamond")
#: The things that usually stand in relations (a small vocabulary, so each related pair recurs).
RELATION_THINGS: tuple[str, ...] = ("circle", "square", "star", "text")
RELATION_BIAS = 0.8
_COLOUR_NAMES = tuple(COLOURS)
_ROLES = tuple(role_channels())
_DARK_COLOURS = frozenset({"black", "brown", "blue", "purple", "gray", "green", "red"})


@dataclass(frozen=True)
class SceneObject:
    """One drawn item: a shape or a piece of text, with its colour, texture, box and relation role."""

    kind: str  # "shape" or "text"
    name: str  # shape name, or "letter" / "word" for text
    colour: str
    texture: str | None
    top: int
    left: int
    height: int
    width: int
    text: str = ""
    font_size: int = 0
    period: int = 8
    role: str | None = None  # "next_to:subject", "inside:partner", ...

    def silhouette(self) -> np.ndarray:
        """The object's region within its box (the concept mask before occlusion)."""
        if self.kind == "shape":
            return shape_mask(self.name, self.height)
        return glyph_masks(self.text, self.font_size)[1]


@dataclass(frozen=True)
class SceneLayout:
    """What scene ``index`` holds; ``relation`` names the one related pair, if any."""

    index: int
    background: str
    background_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    split_row: int
    objects: tuple[SceneObject, ...]
    relation: str | None


@dataclass(frozen=True)
class Scene:
    """A rendered scene: uint8 RGB ``(H, W, 3)``, the code map ``(H, W)`` and a noise field ``(H, W)``.

    A pixel's code packs its shape, colour, texture, text kind and relation role (0 = background;
    see :mod:`milan_plugin.synth.logic`); :attr:`masks` unpacks it into one mask per concept.
    """

    layout: SceneLayout
    image: np.ndarray
    codes: np.ndarray
    noise: np.ndarray

    @property
    def masks(self) -> np.ndarray:
        """Bool ``(C, H, W)``: one mask per channel of ``channel_names()[:-1]``."""
        return codes_to_masks(self.codes)


def object_code(item: SceneObject) -> int:
    """The attribute code of an object's visible pixels."""
    attributes = (
        SHAPES.index(item.name) + 1 if item.kind == "shape" else 0,
        _COLOUR_NAMES.index(item.colour) + 1,
        TEXTURES.index(item.texture) + 1 if item.texture else 0,
        TEXT_KINDS.index(item.name) + 1 if item.kind == "text" else 0,
        _ROLES.index(item.role) + 1 if item.role else 0,
    )
    code = 0
    for value, (_, size) in zip(attributes, ATTRIBUTES, strict=True):
        code = code * size + value
    return code


def codes_to_masks(codes: np.ndarray) -> np.ndarray:
    """Unpack a code map ``(..., H, W)`` into bool masks ``(..., C, H, W)`` in channel order."""
    masks = []
    rest = codes.astype(np.int64)
    values = {}
    for name, size in reversed(ATTRIBUTES):
        values[name] = rest % size
        rest = rest // size
    for name, size in ATTRIBUTES:
        for value in range(1, size):
            masks.append(values[name] == value)
    return np.stack(masks, axis=-3)


class World:
    """The synthetic world of one seed: ``world.layout(i)`` and ``world.render(i)`` for any index."""

    def __init__(self, seed: int = 0) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"world seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.channels = channel_names()[:-1]  # the noise field is returned separately

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, concept channels={len(self.channels)})"

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        if index < 0:
            raise IndexError(f"scene index must be non-negative, got {index}")
        return np.random.default_rng([self.seed, index, stream])

    def layout(self, index: int) -> SceneLayout:
        """Sample the layout of scene ``index`` (no pixels drawn)."""
        rng = self._rng(index, 0)
        background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        tints = tuple(_pale_tint(rng) for _ in range(2))
        split_row = int(rng.integers(70, 160))
        kind = rng.choice(3, p=[0.15, 0.2, 0.65])
        relation = None
        if kind == 0:
            objects = [_place_free(rng, _sample_object(rng, big=True), [])]
            objects = [item for item in objects if item is not None]
        elif kind == 1:
            objects = []
            for _ in range(int(rng.integers(2, 4))):
                placed = _place_free(rng, _sample_object(rng), objects)
                if placed is not None:
                    objects.append(placed)
        else:
            relation = RELATIONS[rng.integers(len(RELATIONS))]
            objects = _related_pair(rng, relation)
            if rng.random() < 0.5:
                distractor = _place_free(rng, _sample_object(rng), objects)
                if distractor is not None:
                    objects.append(distractor)
        return SceneLayout(index, background, tints, split_row, tuple(objects), relation)

    def render(self, index: int) -> Scene:
        """Draw scene ``index``: pixels, one mask per concept channel, and the seeded noise field."""
        layout = self.layout(index)
        rng = self._rng(index, 1)
        image = _background(layout, rng)
        codes = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.int32)
        for item in layout.objects:
            _draw(image, codes, object_code(item), item, rng)
        noise = self._rng(index, 2).standard_normal((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        return Scene(layout, image, codes, noise)

    def concept_mask(self, scene: Scene, family: str, name: str) -> np.ndarray:
        """One concept's mask of a rendered scene."""
        return scene.masks[concept_channel(family, name)]


def _pale_tint(rng: np.random.Generator) -> tuple[int, int, int]:
    red, green, blue = (175 + rng.integers(0, 50) + rng.integers(-18, 19, size=3)).tolist()
    return red, green, blue


def _sample_object(rng: np.random.Generator, big: bool = False, kind: str | None = None) -> SceneObject:
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    if kind is None:
        kind = "text" if rng.random() < 0.2 else "shape"
    if kind == "text":
        if rng.random() < 0.5:
            text, font_size, name = (
                string.ascii_uppercase[rng.integers(26)],
                int(rng.integers(48, 84)),
                "letter",
            )
        else:
            text, font_size, name = WORDS[rng.integers(len(WORDS))], int(rng.integers(28, 44)), "word"
        height, width = glyph_masks(text, font_size)[1].shape
        return SceneObject("text", name, colour, None, 0, 0, height, width, text=text, font_size=font_size)
    size = int(rng.integers(72, 124)) if big else int(rng.integers(44, 92))
    texture = TEXTURES[rng.integers(len(TEXTURES))] if rng.random() < 0.45 else None
    period = PERIODS[rng.integers(len(PERIODS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    return SceneObject("shape", shape, colour, texture, 0, 0, size, size, period=period)


def _relation_thing(rng: np.random.Generator, allow_text: bool = True) -> SceneObject:
    """Mostly one of :data:`RELATION_THINGS`, sometimes anything (text only where allowed)."""
    things = RELATION_THINGS if allow_text else RELATION_THINGS[:-1]
    if rng.random() >= RELATION_BIAS:
        item = _sample_object(rng)
        return item if allow_text or item.kind == "shape" else _sample_object(rng, kind="shape")
    choice = things[rng.integers(len(things))]
    if choice == "text":
        return _sample_object(rng, kind="text")
    item = _sample_object(rng, kind="shape")
    return SceneObject(**{**item.__dict__, "name": choice})


def _moved(item: SceneObject, top: int, left: int, role: str | None = None) -> SceneObject:
    return SceneObject(
        item.kind, item.name, item.colour, item.texture, int(top), int(left), item.height, item.width,
        item.text, item.font_size, item.period, role,
    )  # fmt: skip


def _overlaps(top: int, left: int, item: SceneObject, others: list[SceneObject], margin: int) -> bool:
    for other in others:
        if (
            top < other.top + other.height + margin
            and other.top < top + item.height + margin
            and left < other.left + other.width + margin
            and other.left < left + item.width + margin
        ):
            return True
    return False


def _place_free(rng: np.random.Generator, item: SceneObject, others: list[SceneObject]) -> SceneObject | None:
    for _ in range(30):
        top = int(rng.integers(2, IMAGE_SIZE - item.height - 1))
        left = int(rng.integers(2, IMAGE_SIZE - item.width - 1))
        if not _overlaps(top, left, item, others, margin=14):
            return _moved(item, top, left)
    return None


def _related_pair(rng: np.random.Generator, relation: str) -> list[SceneObject]:
    """Subject and partner placed so that ``subject <relation> partner`` holds."""
    subject_role, partner_role = f"{relation}:subject", f"{relation}:partner"
    if relation == "inside":
        partner = _sample_object(rng, kind="shape", big=True)
        containers = RELATION_THINGS[:2] if rng.random() < RELATION_BIAS else CONTAINERS
        partner = SceneObject(
            "shape", containers[rng.integers(len(containers))], partner.colour, partner.texture, 0, 0,
            int(rng.integers(120, 170)), 0, period=partner.period,
        )  # fmt: skip
        partner = SceneObject(**{**partner.__dict__, "width": partner.height})
        inner_size = int(partner.height * rng.uniform(0.34, 0.42))
        subject = _relation_thing(rng)
        while subject.colour == partner.colour:
            subject = _relation_thing(rng)
        if subject.kind == "text":
            font_size = max(16, int(inner_size * 0.9))
            text = subject.text[:1].upper()
            height, width = glyph_masks(text, font_size)[1].shape
            subject = SceneObject(
                "text", "letter", subject.colour, None, 0, 0, height, width, text, font_size
            )
        else:
            subject = SceneObject(**{**subject.__dict__, "height": inner_size, "width": inner_size})
        top = int(rng.integers(2, IMAGE_SIZE - partner.height - 1))
        left = int(rng.integers(2, IMAGE_SIZE - partner.width - 1))
        centre_y = top + partner.height // 2 + (partner.height // 12 if partner.name == "heart" else 0)
        centre_x = left + partner.width // 2
        return [
            _moved(partner, top, left, partner_role),
            _moved(subject, centre_y - subject.height // 2, centre_x - subject.width // 2, subject_role),
        ]
    subject = _relation_thing(rng)
    partner = _relation_thing(rng, allow_text=relation != "on")
    for _ in range(30):
        if relation == "next_to":
            gap = int(rng.integers(4, 14))
            total_width = subject.width + gap + partner.width
            tallest = max(subject.height, partner.height)
            if total_width > IMAGE_SIZE - 4:
                subject, partner = _sample_object(rng), _sample_object(rng, kind=partner.kind)
                continue
            left = int(rng.integers(2, IMAGE_SIZE - total_width - 1))
            middle = int(rng.integers(tallest // 2 + 2, IMAGE_SIZE - tallest // 2 - 2))
            items = [subject, partner] if rng.random() < 0.5 else [partner, subject]
            placed, x = [], left
            for item in items:
                role = subject_role if item is subject else partner_role
                placed.append(_moved(item, middle - item.height // 2, x, role))
                x += item.width + gap
            return placed
        gap = int(rng.integers(8, 26)) if relation == "above" else -max(2, partner.height // 20)
        total_height = subject.height + gap + partner.height
        widest = max(subject.width, partner.width)
        if total_height > IMAGE_SIZE - 4:
            subject, partner = _relation_thing(rng), _relation_thing(rng, allow_text=partner.kind == "text")
            continue
        top = int(rng.integers(2, IMAGE_SIZE - total_height - 1))
        centre = int(rng.integers(widest // 2 + 2, IMAGE_SIZE - widest // 2 - 2))
        if relation == "on":
            centre_offset = 0
            # The subject sits on the partner's top edge: find the partner's topmost row near the centre.
            silhouette = partner.silhouette()
            third = silhouette.shape[1] // 3
            band = silhouette[:, third : 2 * third].any(axis=1)
            first_row = int(np.argmax(band)) if band.any() else 0
            gap = -first_row - max(2, partner.height // 20)
            total_height = subject.height + gap + partner.height
            top = int(rng.integers(2, max(3, IMAGE_SIZE - total_height - 1)))
        else:
            centre_offset = int(rng.integers(-10, 11))
        return [
            _moved(partner, top + subject.height + gap, centre - partner.width // 2, partner_role),
            _moved(subject, top, centre - subject.width // 2 + centre_offset, subject_role),
        ]
    return []


def _background(layout: SceneLayout, rng: np.random.Generator) -> np.ndarray:
    first, second = (np.array(tint, dtype=np.float32) for tint in layout.background_colours)
    if layout.background == "gradient":
        ramp = np.linspace(0.0, 1.0, IMAGE_SIZE, dtype=np.float32)[:, None]
        rows = (first * (1 - ramp) + second * ramp).astype(np.uint8)[:, None, :]
    elif layout.background == "horizon":
        rows = np.where(np.arange(IMAGE_SIZE)[:, None] < layout.split_row, first, second).astype(np.uint8)
        rows = rows[:, None, :]
    else:
        rows = first.astype(np.uint8)[None, None, :]
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    image[:] = rows
    if layout.background == "noise":
        grain = rng.integers(-10, 11, size=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.int16)
        image[:] = np.clip(image + grain, 0, 255)
    return image


def _draw(
    image: np.ndarray, codes: np.ndarray, code: int, item: SceneObject, rng: np.random.Generator
) -> None:
    top, left = max(item.top, 0), max(item.left, 0)
    bottom, right = min(item.top + item.height, IMAGE_SIZE), min(item.left + item.width, IMAGE_SIZE)
    if bottom <= top or right <= left:
        return
    local = (slice(top - item.top, bottom - item.top), slice(left - item.left, right - item.left))
    window = (slice(top, bottom), slice(left, right))
    colour = np.clip(np.array(COLOURS[item.colour]) + rng.integers(-10, 11, size=3), 0, 255).astype(np.uint8)
    region = item.silhouette()[local]
    codes[window][region] = code
    pixels = image[window]
    if item.kind == "text":
        ink = glyph_masks(item.text, item.font_size)[0][local]
        pixels[ink] = colour
        return
    pixels[region] = colour
    if item.texture is not None:
        pattern = texture_pattern(item.texture, item.period)[window] & region
        tone = colour * 0.35 + 255 * 0.65 if item.colour in _DARK_COLOURS else colour * 0.4
        pixels[pattern] = tone.astype(np.uint8)
