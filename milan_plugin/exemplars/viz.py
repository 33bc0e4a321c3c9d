"""Pictures of exemplars: masked images as MILAN's annotators saw them, and a browsable page.

The masked image keeps pixels inside the mask and dims the rest to 25 % brightness (no border),
which is what the MTurk workers who wrote MILANNOTATIONS were shown.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from milan_plugin.exemplars.atomic import write_bytes, write_with

if TYPE_CHECKING:
    from milan_plugin.exemplars.exemplar_set import ExemplarSet


def masked_images(images: torch.Tensor, masks: torch.Tensor, dim: float = 0.25) -> torch.Tensor:
    """uint8 ``(k, 3, H, W)`` images with pixels outside the bool ``(k, H, W)`` masks dimmed."""
    scale = torch.where(masks[:, None], 1.0, dim)
    return (images.float() * scale).round().clamp(0, 255).to(torch.uint8)


def tile(images: torch.Tensor, columns: int = 5, gap: int = 2) -> torch.Tensor:
    """uint8 ``(3, H, W)``: ``images`` ``(k, 3, h, w)`` laid out row-major with white gaps."""
    count, channels, height, width = images.shape
    rows = -(-count // columns)
    used = min(columns, count)
    canvas = torch.full(
        (channels, rows * height + (rows - 1) * gap, used * width + (used - 1) * gap), 255, dtype=torch.uint8
    )
    for index in range(count):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        canvas[:, top : top + height, left : left + width] = images[index]
    return canvas


def save_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a uint8 ``(3, H, W)`` tensor as a PNG, atomically."""
    from PIL import Image

    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    write_with(path, lambda temporary: picture.save(temporary, format="PNG"))


def write_layer_viz(
    exemplars: ExemplarSet, directory: str | os.PathLike, units: Sequence[int] | None = None, size: int = 112
) -> Path:
    """Masked PNGs ``unit_<u>/image_<i>.png`` and one ``index.html`` for the layer; returns the page."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    units = exemplars.units.tolist() if units is None else list(units)
    sections = []
    for unit in units:
        row = exemplars.row(unit)
        unit_dir = directory / f"unit_{unit}"
        unit_dir.mkdir(exist_ok=True)
        shown = masked_images(exemplars.images(unit, size=size), exemplars.masks(unit, size=size))
        cells = []
        for rank, image in enumerate(shown):
            save_png(image, unit_dir / f"image_{rank}.png")
            activation = float(exemplars.activations[row, rank])
            key = html.escape(exemplars.keys[row][rank])
            cells.append(
                f'<figure><img src="unit_{unit}/image_{rank}.png" alt="{key}" title="{key}">'
                f"<figcaption>{activation:.3g}</figcaption></figure>"
            )
        threshold = float(exemplars.thresholds[row])
        sections.append(
            f'<section id="unit-{unit}"><h2>unit {unit}</h2><p>threshold {threshold:.4g}</p>'
            f'<div class="row">{"".join(cells)}</div></section>'
        )
    title = html.escape(f"{exemplars.settings.get('model', '')} {exemplars.layer}")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>body{{font-family:sans-serif}}.row{{display:flex;flex-wrap:wrap}}"
        "figure{margin:2px}figcaption{font-size:11px;text-align:center}</style></head><body>"
        f"<h1>{title}</h1><p>{len(units)} units; captions are spatial-max activations; outside the mask "
        f"the image is at 25% brightness.</p>{''.join(sections)}</body></html>"
    )
    index = directory / "index.html"
    write_bytes(index, page.encode("utf-8"))
    return index
