"""A synthetic MILANNOTATIONS: planted units, their engine-computed exemplars and three references each.

Rows follow the shared schema of :mod:`milan_plugin.annotations` with images *not* inline: a row's
``source`` is the synth source spec and ``image_keys``/``image_ids`` index into it, so

* :func:`row_images` gives the uint8 exemplar images ``(k, 3, 224, 224)``,
* :func:`row_masks` the unit's bool exemplar masks ``(k, s, s)`` (``mask_shape``),
* :func:`row_concept_masks` the world's concept masks of those images ``(k, C, 224, 224)``,
* :func:`row_form` the unit's ground truth (:class:`~milan_plugin.synth.logic.LogicalForm`).

Extra columns beyond the schema: ``split`` (which split the row is in), ``concept_kind`` (colour,
shape, texture, text, relation, composition), ``operator``, ``concepts`` (the literals, e.g.
``["colour:red", "shape:circle"]``) and ``logical_form`` (JSON, read by :func:`row_form`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from milan_plugin.fingerprint import digest_json
from milan_plugin.synth.catalogue import PLAN_VERSION, SPLITS, UnitPlan, plan_units
from milan_plugin.synth.concepts import WORLD_VERSION
from milan_plugin.synth.logic import LogicalForm

if TYPE_CHECKING:
    import datasets

    from milan_plugin.exemplars.exemplar_set import ExemplarSet
    from milan_plugin.synth.planted import PlantedNeurons
    from milan_plugin.synth.source import SynthSource

LAYER = "units"
MASK_SIZE = 112
EXTRA_COLUMNS = ("split", "concept_kind", "operator", "concepts", "logical_form")


@dataclass(frozen=True)
class SizePreset:
    """How big a synthetic world is: scenes in the source, units per form, minimum support."""

    images: int
    copies: int
    min_images: int
    max_forms: int | None


SIZES: dict[str, SizePreset] = {
    "small": SizePreset(images=2500, copies=1, min_images=20, max_forms=360),
    "default": SizePreset(images=6000, copies=3, min_images=20, max_forms=None),
}


def _preset(size: str) -> SizePreset:
    if size not in SIZES:
        raise ValueError(f"unknown synthetic world size {size!r}; choose one of {', '.join(SIZES)}")
    return SIZES[size]


def default_cache_dir() -> Path:
    """``$MILAN_CACHE/synth`` (default ``~/.cache/milan-plugin/synth``)."""
    root = os.environ.get("MILAN_CACHE") or Path.home() / ".cache" / "milan-plugin"
    return Path(root) / "synth"


def model_spec(seed: int, size: str) -> str:
    return f"synth:planted?seed={seed}&size={size}"


@functools.lru_cache(maxsize=8)
def _cached_plans(seed: int, size: str) -> tuple[UnitPlan, ...]:
    preset = _preset(size)
    return tuple(plan_units(seed, preset.images, preset.copies, preset.min_images, preset.max_forms))


def unit_plans(seed: int = 0, size: str = "small") -> list[UnitPlan]:
    """The planted units of world ``seed`` at ``size``: forms, splits, references (deterministic)."""
    return list(_cached_plans(seed, size))


def planted_model(seed: int = 0, size: str = "small") -> PlantedNeurons:
    """The planted-neuron model of world ``seed`` at ``size`` (what ``synth:planted?...`` loads)."""
    from milan_plugin.synth.planted import PlantedNeurons

    return PlantedNeurons([plan.form for plan in unit_plans(seed, size)], seed=seed)


def world_source(seed: int = 0, size: str = "small", inputs: str = "world") -> SynthSource:
    """The synth source the planted units of ``(seed, size)`` are computed over."""
    from milan_plugin.synth.source import SynthSource

    return SynthSource(seed=seed, n=_preset(size).images, inputs=inputs)


def planted_exemplars(
    seed: int = 0,
    size: str = "small",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    batch_size: int = 32,
) -> ExemplarSet:
    """Exemplars of every planted unit, computed by the real engine (cached and resumable)."""
    from milan_plugin.exemplars.engine import compute_exemplars

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model = planted_model(seed, size)
    source = world_source(seed, size)
    sets = compute_exemplars(
        model, [LAYER], source, k=15, quantile=0.99, batch_size=batch_size,
        cache_dir=cache / "exemplars", progress=progress,
    )  # fmt: skip
    return sets[LAYER]


def build_synthetic_annotations(
    seed: int = 0,
    out: str | os.PathLike | None = None,
    size: str = "small",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> datasets.DatasetDict:
    """The synthetic annotation set of world ``seed``: splits train/validation/test/test_family.

    ``test`` holds out concept combinations never planted in training, ``test_family`` every
    unit that mentions a held-out shape family. Exemplars come from the real engine, cached under
    ``cache_dir`` (default :func:`default_cache_dir`), so an interrupted build resumes; the
    finished set is cached too. With ``out`` the set is also written there in the Hub layout
    (``data/<split>-00000-of-00001.parquet`` + ``README.md`` with configs). Read a row's images
    and masks with :func:`row_images`, :func:`row_masks`, :func:`row_concept_masks`.
    """
    preset = _preset(size)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = digest_json([WORLD_VERSION, PLAN_VERSION, seed, size, preset.__dict__, MASK_SIZE])
    folder = cache / f"annotations-seed{seed}-{size}-{key}"
    if not (folder / "README.md").is_file():
        started = time.perf_counter()
        exemplars = planted_exemplars(seed, size, cache_dir=cache, progress=progress)
        plans = unit_plans(seed, size)
        dataset = _dataset(exemplars, plans, seed, size)
        write_hub_layout(dataset, folder, _card(seed, size, plans, time.perf_counter() - started))
    dataset = read_hub_layout(folder)
    if out is not None:
        target = Path(out)
        if target.resolve() != folder.resolve():
            _copy_tree(folder, target)
    return dataset


def _dataset(exemplars: ExemplarSet, plans: list[UnitPlan], seed: int, size: str) -> datasets.DatasetDict:
    from datasets import Dataset, DatasetDict

    from milan_plugin.annotations import exemplar_rows

    rows_by_split: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    descriptions = {plan.unit: list(plan.descriptions) for plan in plans}
    rows = exemplar_rows(
        exemplars,
        descriptions,
        model=model_spec(seed, size),
        dataset=f"synth-world-seed{seed}",
        mask_size=MASK_SIZE,
    )
    for plan, row in zip(plans, rows, strict=True):
        row.update(
            split=plan.split,
            concept_kind=plan.form.kind,
            operator=plan.form.operator,
            concepts=[str(literal) for literal in plan.form.literals],
            logical_form=json.dumps(plan.form.to_dict(), sort_keys=True),
        )
        rows_by_split[plan.split].append(row)
    features = annotation_features_with_ground_truth()
    return DatasetDict(
        {split: Dataset.from_list(rows, features=features) for split, rows in rows_by_split.items()}
    )


def annotation_features_with_ground_truth() -> datasets.Features:
    """The shared row features plus the ground-truth columns of synthetic rows."""
    from datasets import Features, List, Value

    from milan_plugin.annotations import annotation_features

    features = dict(annotation_features())
    features.update(
        split=Value("string"),
        concept_kind=Value("string"),
        operator=Value("string"),
        concepts=List(Value("string")),
        logical_form=Value("string"),
    )
    return Features(features)


def write_hub_layout(dataset: datasets.DatasetDict, folder: str | os.PathLike, card: str) -> Path:
    """Write ``dataset`` as ``data/<split>-00000-of-00001.parquet`` + README, atomically (temp + rename)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / "data").mkdir()
        for split, table in dataset.items():
            table.to_parquet(str(staging / "data" / f"{split}-00000-of-00001.parquet"))
        (staging / "README.md").write_text(card)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def read_hub_layout(folder: str | os.PathLike) -> datasets.DatasetDict:
    """Read a folder written by :func:`write_hub_layout` back into a ``DatasetDict``."""
    from datasets import load_dataset

    folder = Path(folder)
    files = {split: str(folder / "data" / f"{split}-00000-of-00001.parquet") for split in SPLITS}
    missing = [path for path in files.values() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a synthetic annotation set: missing {', '.join(missing)}")
    return load_dataset("parquet", data_files=files, features=annotation_features_with_ground_truth())


def _copy_tree(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _card(seed: int, size: str, plans: list[UnitPlan], seconds: float) -> str:
    counts = {split: sum(plan.split == split for plan in plans) for split in SPLITS}
    configs = "\n".join(
        f"  - split: {split}\n    path: data/{split}-00000-of-00001.parquet" for split in SPLITS
    )
    table = "\n".join(f"| {split} | {counts[split]} |" for split in SPLITS)
    return (
        f"---\nconfigs:\n- config_name: default\n  data_files:\n{configs}\n"
        f"tags:\n- milan\n- synthetic\n---\n\n"
        f"# Synthetic MILANNOTATIONS (world seed {seed}, size {size})\n\n"
        "Planted neurons of the milan-plugin synthetic world with known logical forms, their top-15 "
        "exemplars computed by the milan-plugin exemplar engine, and three reference descriptions "
        "per unit. Images are not inline: `source` + `image_keys` read them back "
        "(`milan_plugin.synth.dataset.row_images`).\n\n"
        f"| split | units |\n|---|---|\n{table}\n\n"
        f"Built by `build_synthetic_annotations(seed={seed}, size={size!r})` in {seconds:.0f} s.\n"
    )


_SOURCES: dict[str, SynthSource] = {}


def _source_of(row: Mapping[str, Any]) -> SynthSource:
    from milan_plugin.synth.source import SynthSource

    spec = row["source"]
    if not spec:
        raise ValueError("this annotation row has no source spec, so its images cannot be read back")
    if spec not in _SOURCES:
        _SOURCES[spec] = SynthSource.from_spec(spec)
    return _SOURCES[spec]


def row_images(row: Mapping[str, Any], size: int = 224) -> torch.Tensor:
    """uint8 ``(k, 3, size, size)`` exemplar images of an annotation row, read back from its source."""
    source = _source_of(row)
    ids = [source.index_of(key) for key in row["image_keys"]]
    return source.images(ids, size=size)


def row_masks(row: Mapping[str, Any]) -> torch.Tensor:
    """bool ``(k, s, s)`` exemplar masks of an annotation row (``s = mask_shape[-1]``)."""
    from milan_plugin.annotations import unpack_masks

    return unpack_masks(row["masks"], row["mask_shape"])


def row_concept_masks(row: Mapping[str, Any], size: int = 224) -> torch.Tensor:
    """bool ``(k, C, size, size)`` world concept masks of the row's exemplar images.

    Channel names: ``milan_plugin.synth.concepts.channel_names()[:-1]``.
    """
    source = _source_of(row)
    return source.concept_masks([source.index_of(key) for key in row["image_keys"]], size=size)


def row_form(row: Mapping[str, Any]) -> LogicalForm:
    """The ground-truth logical form of a synthetic annotation row."""
    return LogicalForm.from_dict(json.loads(row["logical_form"]))
