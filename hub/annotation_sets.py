"""Annotation sets: the descriptions the plugin computed for one model, as a Hub dataset.

A set is a folder in the Hub layout (``data/train-00000-of-00001.parquet`` of
:meth:`Description.to_record` rows plus a generated card whose YAML header records the model,
its fingerprint, the layers and the describer). It is pushed to a Hub repo or copied to a local
folder by the same function, and read back into :class:`Description` objects, so a published
set can stand in for computing descriptions again for exactly the same model.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from milan_plugin.hub.cards import CARD_FILENAME, annotation_set_card, read_card_metadata
from milan_plugin.hub.transfer import PushPlan, load_folder_dataset, pull_folder, push_folder

from milan_plugin.descriptions import Description
from milan_plugin.errors import FingerprintMismatchError, InvalidInputError

if TYPE_CHECKING:
    import datasets

DATA_FILE = "data/train-00000-of-00001.parquet"


def annotation_set_features() -> datasets.Features:
    """The row schema: a :meth:`Description.to_record` plus the model it describes."""
    from datasets import Features, List, Value

    candidate = {
        "text": Value("string"),
        "score": Value("float64"),
        "captioner_logprob": Value("float64"),
        "lm_logprob": Value("float64"),
    }
    return Features(
        {
            "model": Value("string"),
            "model_fingerprint": Value("string"),
            "layer": Value("string"),
            "unit": Value("int64"),
            "text": Value("string"),
            "score": Value("float64"),
            "candidates": List(candidate),
            "describer": Value("string"),
            "describer_version": Value("string"),
            "exemplar_settings": Value("string"),
        }
    )


@dataclass
class AnnotationSet:
    """Descriptions of one model's units with the metadata of the set's card."""

    model: str
    model_fingerprint: str
    descriptions: list[Description]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        layers = sorted({description.layer for description in self.descriptions})
        return (
            f"AnnotationSet({self.model} [{self.model_fingerprint}], {len(self.descriptions)} descriptions, "
            f"layers {layers})"
        )

    def for_layer(self, layer: str) -> dict[int, Description]:
        """unit -> description for one layer."""
        return {
            description.unit: description for description in self.descriptions if description.layer == layer
        }

    def check_model(self, model_fingerprint: str) -> None:
        """Refuse to serve these descriptions for a model with different weights."""
        if model_fingerprint != self.model_fingerprint:
            raise FingerprintMismatchError(
                f"annotation set for {self.model} was computed for fingerprint {self.model_fingerprint}, "
                f"not {model_fingerprint}; describe this model instead"
            )


def write_annotation_set(
    descriptions: Iterable[Description],
    folder: str | os.PathLike[str],
    *,
    model: str,
    model_fingerprint: str,
    license: str = "cc-by-4.0",
) -> Path:
    """Write a set into ``folder`` (created; must be new or empty) in the Hub layout."""
    from datasets import Dataset

    descriptions = list(descriptions)
    if not descriptions:
        raise InvalidInputError("an annotation set needs at least one description")
    if not model or not model_fingerprint:
        raise InvalidInputError("an annotation set needs the model's name and fingerprint")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise InvalidInputError(f"{str(folder)!r} is not empty; write an annotation set into a new folder")
    describers = sorted(
        {(description.describer, description.describer_version) for description in descriptions}
    )
    first = descriptions[0]
    metadata = {
        "model": model,
        "model_fingerprint": model_fingerprint,
        "layers": sorted({description.layer for description in descriptions}),
        "describer": ", ".join(name for name, _ in describers),
        "describer_version": ", ".join(version for _, version in describers),
        "exemplar_settings": _json_safe(first.exemplar_settings),
    }
    rows = [_row(description, model, model_fingerprint) for description in descriptions]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".partial-") as staging:
        staging = Path(staging)
        (staging / DATA_FILE).parent.mkdir(parents=True)
        Dataset.from_list(rows, features=annotation_set_features()).to_parquet(str(staging / DATA_FILE))
        card = annotation_set_card(metadata, license=license, count=len(rows))
        (staging / CARD_FILENAME).write_text(card)
        for entry in staging.iterdir():
            os.replace(entry, folder / entry.name)
    return folder


def push_annotation_set(
    descriptions: Iterable[Description],
    target: str | os.PathLike[str],
    *,
    model: str,
    model_fingerprint: str,
    license: str = "cc-by-4.0",
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
) -> PushPlan:
    """Publish a set to a Hub dataset repo, or to a local folder (a path: absolute, ``./`` or ``~``)."""
    with tempfile.TemporaryDirectory(prefix="milan-annotation-set-") as workdir:
        folder = write_annotation_set(
            descriptions,
            Path(workdir) / "set",
            model=model,
            model_fingerprint=model_fingerprint,
            license=license,
        )
        return push_folder(
            folder, target, repo_type="dataset", private=private, revision=revision, dry_run=dry_run
        )


def load_annotation_set(
    repo_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> datasets.Dataset:
    """The set's rows as a ``datasets.Dataset`` (Hub repo id or local folder)."""
    path = pull_folder(repo_or_path, repo_type="dataset", revision=revision, cache_dir=cache_dir)
    if not (path / DATA_FILE).is_file():
        raise InvalidInputError(f"{str(repo_or_path)!r} is not an annotation set (no {DATA_FILE})")
    return load_folder_dataset(path, split="train")


def pull_annotation_set(
    repo_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    layers: Sequence[str] | None = None,
) -> AnnotationSet:
    """Read a set back into :class:`Description` objects (optionally only some layers)."""
    path = pull_folder(repo_or_path, repo_type="dataset", revision=revision, cache_dir=cache_dir)
    metadata = read_card_metadata(path).get("milan_plugin") or {}
    rows = load_annotation_set(path)
    if layers is not None:
        wanted = set(layers)
        rows = rows.filter(lambda layer: layer in wanted, input_columns="layer")
    descriptions = [_description(row) for row in rows]
    model = metadata.get("model") or (rows[0]["model"] if len(rows) else "")
    fingerprint = metadata.get("model_fingerprint") or (rows[0]["model_fingerprint"] if len(rows) else "")
    return AnnotationSet(
        model=model, model_fingerprint=fingerprint, descriptions=descriptions, metadata=metadata
    )


def _row(description: Description, model: str, model_fingerprint: str) -> dict[str, Any]:
    record = description.to_record()
    record["exemplar_settings"] = json.dumps(_json_safe(record["exemplar_settings"]), sort_keys=True)
    return {"model": model, "model_fingerprint": model_fingerprint, **record}


def _description(row: dict[str, Any]) -> Description:
    record = {key: value for key, value in row.items() if key not in ("model", "model_fingerprint")}
    record["exemplar_settings"] = json.loads(record["exemplar_settings"] or "{}")
    return Description.from_record(record)


def _json_safe(value: Any) -> Any:
    """Settings as plain JSON (tensors and paths become lists and strings) for parquet and YAML."""
    return json.loads(json.dumps(value, default=_to_plain))


def _to_plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
