"""Describer weights on the Hub, and the original ``milan-<group>.pth`` release files.

Checkpoints travel in the layout ``MilanDescriber.save_pretrained`` writes (config.json,
model.safetensors, vocab.json, README.md), pushed and pulled as a whole folder. The original
release files are pickles: they are downloaded here but only ever opened by the describer's
restricted importer, which refuses anything but tensors and plain data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from milan_plugin.hub.cards import CARD_FILENAME, citation_section
from milan_plugin.hub.transfer import PushPlan, is_local_folder, pull_folder, push_folder

from milan_plugin.errors import InvalidInputError, PluginLookupError

CHECKPOINT_FILES = ("config.json", "model.safetensors", "vocab.json")


def resolve_describer_repo(name_or_repo: str) -> tuple[str, str | None]:
    """A registry name (``milan:base``) -> (repo id, pinned revision); repo ids and folders pass through."""
    if is_local_folder(name_or_repo) or ":" not in name_or_repo:
        return name_or_repo, None
    from milan_plugin.hub.registry import get_entry

    entry = get_entry(name_or_repo, kind="describer")
    return entry.repo_id, entry.revision


def pull_describer(
    name_or_repo: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """A local folder holding the describer checkpoint (from the Hub cache, or the folder itself)."""
    repo, pinned = resolve_describer_repo(name_or_repo)
    path = pull_folder(
        repo,
        repo_type="model",
        revision=revision or pinned,
        allow_patterns=[*CHECKPOINT_FILES, CARD_FILENAME],
        cache_dir=cache_dir,
    )
    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if missing:
        raise InvalidInputError(
            f"{name_or_repo!r} is not a describer checkpoint: {', '.join(missing)} missing "
            "(expected the folder MilanDescriber.save_pretrained writes)"
        )
    return path


def push_describer(
    folder: str | os.PathLike[str],
    repo_id: str | os.PathLike[str],
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    provenance: str = "",
) -> PushPlan:
    """Push a ``save_pretrained`` folder as a model repo (or into a local folder).

    The folder's model card is sent with the MILAN citation and ``provenance`` (how the weights
    were trained) appended; the folder itself is left unchanged.
    """
    folder = Path(folder)
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise InvalidInputError(
            f"{str(folder)!r} is not a describer checkpoint ({', '.join(missing)} missing); "
            "write one with MilanDescriber.save_pretrained"
        )
    with tempfile.TemporaryDirectory(prefix="milan-describer-") as workdir:
        staging = Path(workdir) / "checkpoint"
        staging.mkdir()
        for name in CHECKPOINT_FILES:
            shutil.copy2(folder / name, staging / name)
        card = (folder / CARD_FILENAME).read_text() if (folder / CARD_FILENAME).is_file() else _minimal_card()
        if "## Citation" not in card:
            card = card.rstrip() + "\n\n## Provenance\n\n" + (provenance or _default_provenance()) + "\n\n"
            card += citation_section()
        (staging / CARD_FILENAME).write_text(card)
        return push_folder(
            staging, repo_id, repo_type="model", private=private, revision=revision, dry_run=dry_run
        )


def download_original_checkpoint(
    name: str,
    dest: str | os.PathLike[str],
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download a reference release file (``milan:base`` -> ``milan-base.pth``) to ``dest``.

    The file is written under a temporary name and moved into place only when complete (and
    matching ``sha256`` when given). It is never unpickled here.
    """
    import urllib.request

    from milan_plugin.hub.registry import original_checkpoint_urls
    from tqdm.auto import tqdm

    urls = original_checkpoint_urls()
    if url is None:
        if name not in urls:
            raise PluginLookupError(
                f"no original checkpoint called {name!r}", kind="checkpoint", options=list(urls)
            )
        url = urls[name]
    dest = Path(dest)
    target = dest / url.rsplit("/", 1)[-1] if dest.is_dir() else dest
    temporary = target.with_name(f".{target.name}.partial")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                temporary.open("wb") as stream,
                tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar,
            ):
                for block in iter(lambda: response.read(2**20), b""):
                    stream.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        temporary.unlink()
        raise InvalidInputError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}; not kept")
    os.replace(temporary, target)
    return target


def convert_original_checkpoint(
    path: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any
) -> Path:
    """Import a reference ``.pth`` through the describer's safe importer and save it in the Hub layout."""
    from milan_plugin.describe.importer import import_original_checkpoint

    describer = import_original_checkpoint(path, **options)
    return describer.save_pretrained(out)


def _minimal_card() -> str:
    return (
        "---\nlibrary_name: milan-plugin\nlicense: mit\ntags:\n- interpretability\n- milan\n---\n"
        "# MILAN describer\n"
    )


def _default_provenance() -> str:
    return "Trained with milan-plugin; the folder was written by `MilanDescriber.save_pretrained`."
