"""The vocabulary of the synthetic world: every concept that can be drawn, and its mask channel.

Concepts come in families (shape, colour, texture, text). Relations are not concepts of a pixel
but roles of an object in a pair (subject or partner of "next to", "above", "inside", "on"), so
they get role channels. The channel order here is the order of the concept-mask channels that
the synth source appends to the RGB image, and it never changes for a given world version.
"""

from __future__ import annotations

from dataclasses import dataclass

WORLD_VERSION = "1"

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "diamond",
    "hexagon",
    "cross",
    "ring",
    "heart",
    "crescent",
    "arrow",
    "pentagon",
)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 220, 30),
    "green": (40, 160, 50),
    "blue": (35, 70, 215),
    "purple": (130, 45, 170),
    "pink": (245, 130, 190),
    "brown": (125, 75, 35),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
    "gray": (128, 128, 128),
    "cyan": (30, 215, 225),
}

TEXTURES: tuple[str, ...] = ("stripes", "dots", "checks", "waves", "zigzag", "grid", "speckles")

TEXT_KINDS: tuple[str, ...] = ("letter", "word")

WORDS: tuple[str, ...] = (
    "cat", "dog", "sun", "stop", "milk", "tree", "hello", "map", "fish", "open", "bus", "rain",
)  # fmt: skip

RELATIONS: tuple[str, ...] = ("next_to", "above", "inside", "on")

BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "noise", "horizon")

#: Relations whose two roles are interchangeable (a unit for "A next to B" fires on A either side).
SYMMETRIC_RELATIONS: frozenset[str] = frozenset({"next_to"})


@dataclass(frozen=True)
class Concept:
    """One drawable concept: its family and its name (``Concept("colour", "red")``)."""

    family: str
    name: str

    def __str__(self) -> str:
        return self.name


FAMILIES: tuple[str, ...] = ("shape", "colour", "texture", "text")


def concepts() -> list[Concept]:
    """Every concept with a mask channel, in channel order."""
    return (
        [Concept("shape", name) for name in SHAPES]
        + [Concept("colour", name) for name in COLOURS]
        + [Concept("texture", name) for name in TEXTURES]
        + [Concept("text", name) for name in TEXT_KINDS]
    )


def role_channels() -> list[str]:
    """Names of the relation-role channels: ``next_to:subject``, ``next_to:partner``, ..."""
    return [f"{relation}:{role}" for relation in RELATIONS for role in ("subject", "partner")]


def channel_names() -> list[str]:
    """All mask channels after the RGB: concepts, relation roles, then one noise channel."""
    return [f"{concept.family}:{concept.name}" for concept in concepts()] + role_channels() + ["noise"]


def concept_channel(family: str, name: str) -> int:
    """Index of a concept's mask among :func:`channel_names` (0 = first mask channel)."""
    key = f"{family}:{name}"
    names = channel_names()
    if key not in names:
        known = ", ".join(name for name in names if name.startswith(family + ":"))
        raise KeyError(f"the synthetic world has no {family} called {name!r}; known: {known}")
    return names.index(key)
