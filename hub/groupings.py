"""The MILANNOTATIONS model keys and the paper's named groupings of them.

Each released zip is one *model key* (``alexnet-imagenet``, ...); the groupings are the unions
the paper trains and evaluates on (MILAN-METHOD.md §3.5). They live here, apart from the
converter and the loader, because both the dataset card and ``load_milannotations`` must agree
on them exactly.
"""

from __future__ import annotations

from milan_plugin.errors import PluginLookupError

#: Every model key of the original release, in the paper's table order.
MODEL_KEYS: tuple[str, ...] = (
    "alexnet-imagenet",
    "alexnet-places365",
    "resnet152-imagenet",
    "resnet152-places365",
    "biggan-imagenet",
    "biggan-places365",
    "dino_vits8-imagenet",
)

ARCHITECTURES: tuple[str, ...] = ("alexnet", "resnet152", "biggan")
DATASETS: tuple[str, ...] = ("imagenet", "places365")

#: Sets whose exemplar images may be redistributed with the annotations: Places365 photos and
#: images BigGAN generated. ImageNet-based classifier sets ship keys only.
REDISTRIBUTABLE_IMAGES: frozenset[str] = frozenset(
    {"alexnet-places365", "resnet152-places365", "biggan-imagenet", "biggan-places365"}
)


def _base() -> tuple[str, ...]:
    return tuple(f"{arch}-{data}" for arch in ARCHITECTURES for data in DATASETS)


def groupings() -> dict[str, tuple[str, ...]]:
    """Group name -> member model keys, as in the reference code's ``DATASET_GROUPINGS``."""
    base = _base()
    groups: dict[str, tuple[str, ...]] = {
        "base": base,
        "cls": tuple(key for key in base if not key.startswith("biggan-")),
        "gen": tuple(key for key in base if key.startswith("biggan-")),
    }
    for data in DATASETS:
        groups[data] = tuple(key for key in base if key.endswith(f"-{data}"))
    for arch in ARCHITECTURES:
        groups[arch] = tuple(key for key in base if key.startswith(f"{arch}-"))
    for held_out in base:
        groups[f"not-{held_out}"] = tuple(key for key in base if key != held_out)
    return groups


def known_names() -> list[str]:
    """Every name ``load_milannotations`` accepts (model keys first, then groups)."""
    return [*MODEL_KEYS, *groupings()]


def normalize_name(name: str) -> str:
    """Canonical spelling of a model key or group: ``resnet152/imagenet`` -> ``resnet152-imagenet``.

    Also accepts ``places`` for ``places365`` and the reference's ``dino_vits8/imagenet``.
    """
    text = name.strip().lower().replace("/", "-")
    if text.endswith("-places"):
        text += "365"
    if text == "places":
        text = "places365"
    return text


def resolve_members(name: str) -> tuple[str, ...]:
    """The model keys that ``name`` (a key or a group) stands for.

    Raises :class:`~milan_plugin.errors.PluginLookupError` listing every known name otherwise.
    """
    canonical = normalize_name(name)
    if canonical in MODEL_KEYS:
        return (canonical,)
    groups = groupings()
    if canonical in groups:
        return groups[canonical]
    raise PluginLookupError(
        f"unknown MILANNOTATIONS key {name!r}", kind="MILANNOTATIONS key", options=known_names()
    )


def dataset_of(key: str) -> str:
    """The image dataset of a model key (``imagenet`` or ``places365``)."""
    return key.rsplit("-", 1)[1]
