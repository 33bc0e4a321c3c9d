"""Moving folders to and from the Hub: the only module that talks to the network.

Downloads go through ``snapshot_download`` into the Hub cache, so a second call works with
``HF_HUB_OFFLINE=1``; a local folder in the Hub layout is accepted wherever a repo id is.
Uploads are ``create_repo`` + ``upload_folder`` with an explicit list of files, so that what a
dry run prints is exactly what is sent.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from milan_plugin.hub.cards import CARD_FILENAME

from milan_plugin.errors import InvalidInputError, MilanError
from milan_plugin.exemplars.atomic import replace_folder

if TYPE_CHECKING:
    import datasets

REPO_TYPES = ("dataset", "model")


class HubUnavailableError(MilanError, ConnectionError):
    """A repo that is neither in the local Hub cache nor reachable (offline, missing, or private)."""


def is_local_folder(repo_or_path: str | os.PathLike[str]) -> bool:
    """True when ``repo_or_path`` names an existing directory rather than a Hub repo id."""
    return Path(repo_or_path).expanduser().is_dir()


def is_local_target(target: str | os.PathLike[str]) -> bool:
    """True when a push target is a folder: an existing one, or a path spelt as one (``/``, ``.``, ``~``)."""
    text = os.fspath(target)
    return is_local_folder(text) or text.startswith(("/", ".", "~")) or isinstance(target, os.PathLike)


def pull_folder(
    repo_or_path: str | os.PathLike[str],
    *,
    repo_type: str,
    revision: str | None = None,
    allow_patterns: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """A local folder with the repo's files: the folder itself if local, else the cached snapshot."""
    if is_local_folder(repo_or_path):
        return Path(repo_or_path).expanduser()
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = snapshot_download(
            str(repo_or_path),
            repo_type=repo_type,
            revision=revision,
            allow_patterns=list(allow_patterns) if allow_patterns else None,
            cache_dir=cache_dir,
        )
    except (LocalEntryNotFoundError, HfHubHTTPError) as error:
        hint = (
            " Offline mode is on (HF_HUB_OFFLINE=1) and the repo is not in the local Hub cache: fetch it "
            "online, or pass a local folder in the Hub layout instead of the repo id."
            if constants.HF_HUB_OFFLINE
            else ""
        )
        raise HubUnavailableError(
            f"cannot get {repo_type} repo {str(repo_or_path)!r} at revision {revision or 'main'} "
            f"({type(error).__name__}: {error}).{hint}"
        ) from error
    return Path(path)


def load_folder_dataset(
    folder: str | os.PathLike[str], config: str | None = None, split: str | None = None
) -> datasets.Dataset | datasets.DatasetDict:
    """A config of a local folder in the Hub layout, loaded by its absolute file paths.

    ``load_dataset(folder)`` caches local folders under the folder's *name* and config only, so two
    different folders called ``set`` would share one cache entry and the second would get the
    first's rows. Resolving the card's data files and loading them with the parquet builder keys
    the cache on the absolute paths and modification times instead.
    """
    from datasets import load_dataset, load_dataset_builder

    data_files = load_dataset_builder(str(Path(folder).resolve()), config).config.data_files
    files = {name: list(paths) for name, paths in data_files.items()}
    return load_dataset("parquet", data_files=files, split=split)


@dataclass
class PushPlan:
    """What a push sends: the files (relative path, bytes) and the card text."""

    folder: Path
    repo_id: str
    repo_type: str
    revision: str | None
    private: bool
    files: list[tuple[str, int]] = field(default_factory=list)
    card: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def describe(self) -> str:
        """The dry-run report: destination, every file with its size, then the card."""
        visibility = "private" if self.private else "public"
        lines = [
            f"would push {len(self.files)} files ({_human(self.total_bytes)}) from {self.folder} to "
            f"{self.repo_type} repo {self.repo_id} ({visibility}, revision {self.revision or 'main'}):"
        ]
        lines += [f"  {size:>12,d}  {path}" for path, size in self.files]
        lines += ["", f"--- {CARD_FILENAME} ---", self.card.rstrip()]
        return "\n".join(lines)


def plan_push(
    folder: str | os.PathLike[str],
    repo_id: str | os.PathLike[str],
    *,
    repo_type: str = "dataset",
    revision: str | None = None,
    private: bool = False,
) -> PushPlan:
    """Check ``folder`` and list what would be sent (hidden files and folders are never sent)."""
    if repo_type not in REPO_TYPES:
        raise InvalidInputError(f"repo_type must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InvalidInputError(f"nothing to push: {str(root)!r} is not a folder")
    card = root / CARD_FILENAME
    if not card.is_file():
        raise InvalidInputError(
            f"{str(root)!r} has no {CARD_FILENAME}: every pushed folder needs a card naming its licence, "
            "citation and provenance (milan hub convert and push_annotation_set write one)"
        )
    if not is_local_target(repo_id) and os.fspath(repo_id).count("/") != 1:
        raise InvalidInputError(f"repo id must look like 'namespace/name', got {repo_id!r}")
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files.append((relative.as_posix(), path.stat().st_size))
    return PushPlan(
        folder=root,
        repo_id=os.fspath(repo_id),
        repo_type=repo_type,
        revision=revision,
        private=private,
        files=files,
        card=card.read_text(),
    )


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str | os.PathLike[str],
    *,
    repo_type: str = "dataset",
    revision: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    stream: TextIO | None = None,
) -> PushPlan:
    """Upload ``folder`` to ``repo_id`` (creating the repo), or with ``dry_run`` only print the plan.

    A local ``repo_id`` (see :func:`is_local_target`) receives a copy of exactly the same files,
    which is how pushes are tested and how sets are shared on a file system.
    """
    plan = plan_push(folder, repo_id, repo_type=repo_type, revision=revision, private=private)
    if dry_run:
        print(plan.describe(), file=stream or sys.stdout)
        return plan
    if is_local_target(repo_id):
        _copy_files(plan, Path(repo_id).expanduser())
        return plan
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(plan.repo_id, repo_type=repo_type, private=private, exist_ok=True)
    api.upload_folder(
        repo_id=plan.repo_id,
        folder_path=str(plan.folder),
        repo_type=repo_type,
        revision=revision,
        commit_message=commit_message or f"Upload with milan-plugin ({len(plan.files)} files)",
        allow_patterns=[path for path, _ in plan.files],
    )
    return plan


def _copy_files(plan: PushPlan, target: Path) -> None:
    """Replace the local repo folder ``target`` with the planned files, all or nothing."""
    if target.exists() and any(target.iterdir()) and not (target / CARD_FILENAME).is_file():
        raise InvalidInputError(
            f"{str(target)!r} is a non-empty folder that was not pushed to before (no {CARD_FILENAME}); "
            "push into a new folder"
        )
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for relative, _ in plan.files:
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(plan.folder / relative, destination)
    replace_folder(staging, target)


def copy_snapshot(source: Path, out: str | os.PathLike[str]) -> Path:
    """Copy a snapshot's files into the new or empty folder ``out``, all or nothing."""
    target = Path(out).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInputError(
            f"{str(target)!r} already exists and is not an empty folder; choose a new one"
        )
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".*"))
    if target.exists():
        target.rmdir()
    os.replace(staging, target)
    return target


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
