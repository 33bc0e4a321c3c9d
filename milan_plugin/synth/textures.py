"""Texture patterns as boolean "second tone" masks over the whole canvas.

An object with a texture shows its colour where the pattern is False and a contrasting tone
where it is True. Patterns are defined in canvas coordinates and cached per (texture, period),
so texturing an object is one slice of a cached array.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from milan_plugin.synth.concepts import TEXTURES

PERIODS: tuple[int, ...] = (8, 10, 12)


@lru_cache(maxsize=64)
def texture_pattern(texture: str, period: int, size: int = 224) -> np.ndarray:
    """A ``(size, size)`` boolean pattern; True marks the pattern's second tone."""
    if texture not in TEXTURES:
        raise KeyError(f"unknown texture {texture!r}; known textures: {', '.join(TEXTURES)}")
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    half = period / 2
    if texture == "stripes":
        pattern = (y % period) < half
    elif texture == "dots":
        dy, dx = (y % period) - half + 0.5, (x % period) - half + 0.5
        pattern = dy**2 + dx**2 <= (period * 0.3) ** 2
    elif texture == "checks":
        pattern = ((y // half).astype(int) + (x // half).astype(int)) % 2 == 0
    elif texture == "waves":
        pattern = ((y + 0.35 * period * np.sin(2 * np.pi * x / (2.5 * period))) % period) < half
    elif texture == "zigzag":
        tri = np.abs((x % period) - half) / half * half
        pattern = ((y + tri) % period) < half
    elif texture == "grid":
        pattern = ((y % period) < 2) | ((x % period) < 2)
    else:  # speckles: a fixed pseudo-random sprinkle, the same for every scene
        rng = np.random.default_rng(period)
        pattern = rng.random((size, size)) < 0.3
    pattern.setflags(write=False)
    return pattern
