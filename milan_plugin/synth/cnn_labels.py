"""NetDissect-style labels of the world CNN's units: a second, independent reference for describers.

Each unit of :data:`~milan_plugin.synth.trained.LAYERS` gets its exemplars from the real engine
(top 15 of the first ``images`` scenes of the ``inputs=rgb`` synth source, masks at the 0.99
quantile threshold). Its label is the single world concept whose masks best overlap the unit's
exemplar masks: IoU = (sum of intersections) / (sum of unions) over the 15 exemplar images at
112 px, as NetDissect does over a dataset. Units whose best IoU is below ``min_iou`` (NetDissect's
0.04) are left unlabelled. Rows follow the synthetic annotation schema (split ``cnn``) plus an
``iou`` column; their three references are varied wordings of the label.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from milan_plugin.synth.trained import LAYERS, TrainingConfig, cnn_directory, world_cnn

if TYPE_CHECKING:
    import datasets

    from milan_plugin.exemplars.exemplar_set import ExemplarSet
    from milan_plugin.synth.logic import Literal
    from milan_plugin.synth.source import SynthSource

SPLIT = "cnn"
MIN_IOU = 0.04
EXEMPLAR_IMAGES = 1000
MASK_SIZE = 112


def cnn_source(seed: int = 0, images: int = EXEMPLAR_IMAGES) -> SynthSource:
    """The RGB-only synth source the CNN's exemplars are computed over."""
    from milan_plugin.synth.source import SynthSource

    return SynthSource(seed=seed, n=images, inputs="rgb")


def cnn_exemplars(
    seed: int = 0,
    config: TrainingConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    images: int = EXEMPLAR_IMAGES,
) -> dict[str, ExemplarSet]:
    """Exemplars of every unit of the trained world CNN's labelled layers (engine-cached)."""
    from milan_plugin.exemplars.engine import compute_exemplars

    config = config or TrainingConfig()
    model = world_cnn(seed, config, cache_dir=cache_dir, progress=progress)
    folder = cnn_directory(seed, config, cache_dir)
    return compute_exemplars(
        model, list(LAYERS), cnn_source(seed, images), k=15, quantile=0.99, batch_size=50,
        cache_dir=folder / "exemplars", progress=progress,
    )  # fmt: skip


def label_literals() -> list[Literal]:
    """Concepts a unit can be labelled with: every concept channel plus "any text"."""
    from milan_plugin.synth.catalogue import concept_literals
    from milan_plugin.synth.logic import TEXT_ANY, Literal

    return [*concept_literals(), Literal("any_text", TEXT_ANY)]


def concept_ious(unit_masks: torch.Tensor, concept_masks: torch.Tensor) -> torch.Tensor:
    """IoU of a unit with each concept, pooled over its exemplar images.

    ``unit_masks`` bool ``(k, H, W)``, ``concept_masks`` bool ``(k, C, H, W)`` in
    :func:`label_literals` order minus "any text" (added here as letters | words).
    """
    from milan_plugin.synth.catalogue import concept_literals

    literals = concept_literals()
    concepts = concept_masks[:, : len(literals)]
    text = [index for index, literal in enumerate(literals) if literal.family == "text"]
    concepts = torch.cat([concepts, concepts[:, text].any(dim=1, keepdim=True)], dim=1)
    unit = unit_masks[:, None]
    intersection = (concepts & unit).sum(dim=(0, 2, 3)).double()
    union = (concepts | unit).sum(dim=(0, 2, 3)).double()
    return (intersection / union.clamp(min=1)).float()


def label_units(exemplars: ExemplarSet, source: SynthSource) -> list[tuple[int, Literal, float]]:
    """``(unit, best concept, IoU)`` for every unit of ``exemplars``."""
    literals = label_literals()
    labels = []
    for unit in exemplars.units.tolist():
        ids = exemplars.ids[exemplars.row(unit)].tolist()
        ious = concept_ious(exemplars.masks(unit, size=MASK_SIZE), source.concept_masks(ids, size=MASK_SIZE))
        best = int(ious.argmax())
        labels.append((unit, literals[best], float(ious[best])))
    return labels


def trained_cnn_annotations(
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    min_iou: float = MIN_IOU,
    config: TrainingConfig | None = None,
    images: int = EXEMPLAR_IMAGES,
) -> datasets.Dataset:
    """Annotation rows of the world CNN's units whose IoU label reaches ``min_iou`` (split ``cnn``).

    Trains the CNN on first use (cached), computes exemplars with the engine (cached), labels
    every unit and caches the rows as parquet next to the weights. Read images and masks of a row
    with :func:`milan_plugin.synth.dataset.row_images` / ``row_masks`` / ``row_concept_masks``.
    """
    from datasets import Dataset

    config = config or TrainingConfig()
    folder = cnn_directory(seed, config, cache_dir)
    path = folder / f"annotations-{images}-iou{min_iou:g}.parquet"
    features = cnn_features()
    if not path.is_file():
        rows = _rows(seed, config, cache_dir, progress, min_iou, images)
        staging = folder / f".{path.name}.{os.getpid()}"
        Dataset.from_list(rows, features=features).to_parquet(str(staging))
        os.replace(staging, path)
    return Dataset.from_parquet(str(path), features=features)


def cnn_features() -> datasets.Features:
    """The synthetic annotation features plus ``iou`` (the label's IoU with the unit's masks)."""
    from datasets import Features, Value

    from milan_plugin.synth.dataset import annotation_features_with_ground_truth

    return Features({**annotation_features_with_ground_truth(), "iou": Value("float32")})


def _rows(
    seed: int, config: TrainingConfig, cache_dir: Any, progress: bool, min_iou: float, images: int
) -> list[dict[str, Any]]:
    from milan_plugin.annotations import exemplar_rows
    from milan_plugin.synth.language import reference_descriptions
    from milan_plugin.synth.logic import LogicalForm

    source = cnn_source(seed, images)
    rows = []
    layers = cnn_exemplars(seed, config, cache_dir, progress, images)
    for layer_index, exemplars in enumerate(layers.values()):
        labelled = [label for label in label_units(exemplars, source) if label[2] >= min_iou]
        forms = {unit: LogicalForm("concept", literal) for unit, literal, _ in labelled}
        references = {
            unit: reference_descriptions(form, np.random.default_rng([seed, layer_index, unit]))
            for unit, form in forms.items()
        }
        layer_rows = exemplar_rows(
            exemplars, references, model=f"synth:world-cnn?seed={seed}", dataset=f"synth-world-seed{seed}",
            mask_size=MASK_SIZE,
        )  # fmt: skip
        for row, (unit, _, iou) in zip(layer_rows, labelled, strict=True):
            form = forms[unit]
            row.update(
                split=SPLIT,
                concept_kind=form.kind,
                operator=form.operator,
                concepts=[str(literal) for literal in form.literals],
                logical_form=json.dumps(form.to_dict(), sort_keys=True),
                iou=iou,
            )
            rows.append(row)
    return rows


def cnn_summary(dataset: datasets.Dataset) -> dict[str, Any]:
    """Labelled units per layer and per concept kind (for docs and the bench)."""
    by_layer: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for layer, kind in zip(dataset["layer"], dataset["concept_kind"], strict=True):
        by_layer[layer] = by_layer.get(layer, 0) + 1
        by_kind[kind] = by_kind.get(kind, 0) + 1
    return {"units": len(dataset), "by_layer": by_layer, "by_kind": by_kind}
