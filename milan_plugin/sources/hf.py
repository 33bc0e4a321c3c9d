"""``hf:NAME_OR_PATH:SPLIT`` — a Hugging Face ``datasets`` dataset with an image column.

``NAME_OR_PATH`` is a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``,
a local folder in the Hub layout (parquet files and a README), or a Hub dataset id (which needs
the network, or the ``datasets`` cache of an earlier online run). ``DatasetSource(ds)`` wraps a
``datasets.Dataset`` you already hold.

The image column is ``image_column`` when given, else the first column whose feature is
``datasets.Image``. Ids are ``<SPLIT>/<row>`` (``rows/<row>`` when the split is unknown), or
the values of ``key_column`` when given. The fingerprint is the dataset's own ``_fingerprint``
(which ``datasets`` derives from its files and every transform applied) plus the column and
preprocessing settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from milan_plugin.errors import EmptySourceError, InvalidInputError
from milan_plugin.fingerprint import digest_json
from milan_plugin.sources.pil_source import PILImageSource


def image_column_of(dataset: Any, image_column: str | None) -> str:
    """The column that holds the images (validated), see the module docstring."""
    from datasets import Image as ImageFeature

    columns = list(dataset.column_names)
    if image_column is not None:
        if image_column not in columns:
            raise InvalidInputError(f"dataset has no column {image_column!r}; its columns are {columns}")
        return image_column
    for column, feature in dataset.features.items():
        if isinstance(feature, ImageFeature):
            return column
    raise InvalidInputError(
        f"dataset has no column of type datasets.Image (columns: {columns}); pass image_column= to name one"
    )


class DatasetSource(PILImageSource):
    """The images of a ``datasets.Dataset``; ``image_options`` are those of ``PILImageSource``."""

    def __init__(
        self,
        dataset: Any,
        *,
        image_column: str | None = None,
        key_column: str | None = None,
        spec: str | None = None,
        split: str | None = None,
        **image_options: Any,
    ) -> None:
        super().__init__(**image_options)
        from datasets import Dataset

        if not isinstance(dataset, Dataset):
            raise InvalidInputError(
                f"expected a datasets.Dataset, got {type(dataset).__name__}; pick a split of a DatasetDict"
            )
        if len(dataset) == 0:
            raise EmptySourceError("dataset source: the dataset has no rows")
        self.image_column = image_column_of(dataset, image_column)
        if key_column is not None and key_column not in dataset.column_names:
            raise InvalidInputError(
                f"dataset has no column {key_column!r}; its columns are {dataset.column_names}"
            )
        self.dataset = dataset
        self._images = dataset.select_columns([self.image_column])
        self._keys = [str(value) for value in dataset[key_column]] if key_column is not None else None
        self.split = split or (str(dataset.split) if dataset.split is not None else "rows")
        self.spec = spec or f"memory:dataset-{dataset._fingerprint}"

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"DatasetSource({self.spec!r}, rows={len(self)}, image_column={self.image_column!r})"

    def key(self, index: int) -> str:
        index = self._check_index(index)
        return self._keys[index] if self._keys is not None else f"{self.split}/{index}"

    def describe(self, index: int) -> str:
        return f"row {index} of {self.spec}"

    def open_image(self, index: int) -> Image.Image:
        image = self._images[int(index)][self.image_column]
        if not isinstance(image, Image.Image):
            raise ValueError(f"column {self.image_column!r} holds {type(image).__name__}, not an image")
        return image

    def fingerprint(self) -> str:
        return digest_json(
            {
                "kind": "datasets",
                "dataset": self.dataset._fingerprint,
                "column": self.image_column,
                "keys": self._keys is not None and digest_json(self._keys),
                "settings": self.settings(),
            }
        )


def load_split(name_or_path: str, split: str, config: str | None = None) -> Any:
    """The ``split`` of a dataset on disk or on the Hub (see the module docstring)."""
    import datasets

    path = Path(name_or_path).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise InvalidInputError(f"{path} has no split {split!r}; its splits are {list(loaded)}")
            return loaded[split]
        return loaded
    try:
        return datasets.load_dataset(str(path) if path.is_dir() else name_or_path, config, split=split)
    except ValueError as error:
        raise InvalidInputError(f"cannot load split {split!r} of {name_or_path!r}: {error}") from error
    except (ConnectionError, FileNotFoundError) as error:
        raise InvalidInputError(
            f"cannot load {name_or_path!r}: {error}. Offline, give a local folder (save_to_disk output or "
            "the Hub layout) instead of a Hub id"
        ) from error
