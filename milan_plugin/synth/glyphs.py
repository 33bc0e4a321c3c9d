"""Rendered text as boolean masks: the ink itself and the ink region a concept mask covers.

PIL's bundled default font is scalable (FreeType), so letters and words need no font files.
Masks are cached per (text, font size), which keeps scene rendering vectorised.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

REGION_PADDING = 2


@lru_cache(maxsize=2048)
def glyph_masks(text: str, font_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ink, region)`` boolean masks of ``text``, cropped to the ink's box plus 2 px.

    The region (the whole box) is what the text concept masks cover: a unit that "fires on text"
    fires on the lettering as a block, not only on the thin strokes, as a human would outline it.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = font.getbbox(text)
    pad = REGION_PADDING
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), text, fill=255, font=font)
    ink = np.asarray(canvas) >= 128
    region = np.ones_like(ink)
    ink.setflags(write=False)
    region.setflags(write=False)
    return ink, region
