"""Shape silhouettes as boolean masks, drawn from implicit functions on a square grid.

Masks are cached per (shape, size): a scene pastes them at an offset, so drawing a shape costs
one lookup and one boolean slice assignment.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from milan_plugin.synth.concepts import SHAPES


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(centres, centres, indexing="ij")
    return x, -y  # y grows upwards


def _regular_polygon(x: np.ndarray, y: np.ndarray, sides: int, radius: float, turn: float) -> np.ndarray:
    inside = np.ones_like(x, dtype=bool)
    apothem = radius * np.cos(np.pi / sides)
    for index in range(sides):
        angle = turn + (index + 0.5) * 2 * np.pi / sides
        inside &= x * np.cos(angle) + y * np.sin(angle) <= apothem
    return inside


def _star(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    radius = np.hypot(x, y)
    angle = np.arctan2(y, x) - np.pi / 2
    sector = np.mod(angle, 2 * np.pi / 5) - np.pi / 5  # angle from the nearest spike, in [-36, 36] deg
    outer, inner = 0.98, 0.42
    # The boundary between a spike tip (outer) and the adjacent notch (inner) is a straight edge.
    tip = np.array([outer, 0.0])
    notch = np.array([inner * np.cos(np.pi / 5), inner * np.sin(np.pi / 5)])
    normal = np.array([notch[1] - tip[1], tip[0] - notch[0]])
    normal /= np.linalg.norm(normal)
    offset = normal @ tip
    px, py = radius * np.cos(sector), np.abs(radius * np.sin(sector))
    return px * normal[0] + py * normal[1] <= offset


def _heart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    hx, hy = x * 1.25, (y + 0.15) * 1.25
    return (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0


@lru_cache(maxsize=4096)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """A ``(size, size)`` boolean silhouette of ``shape``, centred, filling most of the square."""
    if shape not in SHAPES:
        raise KeyError(f"unknown shape {shape!r}; known shapes: {', '.join(SHAPES)}")
    x, y = _grid(size)
    radius = np.hypot(x, y)
    if shape == "circle":
        mask = radius <= 0.95
    elif shape == "square":
        mask = np.maximum(np.abs(x), np.abs(y)) <= 0.82
    elif shape == "triangle":
        mask = _regular_polygon(x, y + 0.2, 3, 1.05, np.pi / 2)
    elif shape == "star":
        mask = _star(x, y)
    elif shape == "diamond":
        mask = np.abs(x) / 0.75 + np.abs(y) <= 0.97
    elif shape == "hexagon":
        mask = _regular_polygon(x, y, 6, 0.97, 0.0)
    elif shape == "cross":
        mask = ((np.abs(x) <= 0.3) & (np.abs(y) <= 0.92)) | ((np.abs(y) <= 0.3) & (np.abs(x) <= 0.92))
    elif shape == "ring":
        mask = (radius <= 0.95) & (radius >= 0.55)
    elif shape == "heart":
        mask = _heart(x, y)
    elif shape == "crescent":
        mask = (radius <= 0.95) & (np.hypot(x - 0.42, y - 0.12) > 0.78)
    elif shape == "arrow":
        shaft = (np.abs(y) <= 0.22) & (x >= -0.92) & (x <= 0.15)
        head = (x >= 0.1) & (np.abs(y) <= 0.85 * (0.95 - x) / 0.85) & (x <= 0.95)
        mask = shaft | head
    else:  # pentagon
        mask = _regular_polygon(x, y + 0.05, 5, 0.97, np.pi / 2)
    mask.setflags(write=False)
    return mask
