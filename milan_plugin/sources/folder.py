"""``folder:PATH`` — every image file under a directory, as torchvision's ImageFolder finds them.

Ids are the files' paths relative to the root (POSIX separators), sorted, so index ``i`` names the
same file on every machine that holds the same tree. The search is recursive and matches the
extensions in :data:`IMAGE_EXTENSIONS` case-insensitively; hidden files and directories (names
starting with ``.``) are skipped.

The fingerprint digests every relative path with its size and modification time (fast: no file
is read), plus the preprocessing settings. Pass ``content_hash=True`` to digest the files' bytes
instead, when trees are copied between machines and mtimes do not survive.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from PIL import Image

from milan_plugin.errors import EmptySourceError, InvalidInputError
from milan_plugin.fingerprint import digest_json
from milan_plugin.sources.pil_source import PILImageSource

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def find_images(root: Path) -> list[str]:
    """Sorted relative POSIX paths of the image files under ``root``."""
    found = []
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for file in files:
            if not file.startswith(".") and file.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(directory, file).relative_to(root).as_posix())
    return sorted(found)


class FolderSource(PILImageSource):
    """The image files under ``root`` (see the module docstring for ids and fingerprints).

    ``image_options`` (``image_size``, ``resize_size``, ``transform``, ``on_error``,
    ``background``) are those of :class:`~milan_plugin.sources.pil_source.PILImageSource`.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, content_hash: bool = False, **image_options: Any
    ) -> None:
        super().__init__(**image_options)
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise InvalidInputError(f"folder source: {str(root)!r} is not a directory")
        self.paths = find_images(self.root)
        if not self.paths:
            raise EmptySourceError(
                f"folder source: no image files under {self.root} "
                f"(looked recursively for {', '.join(IMAGE_EXTENSIONS)}, any case)"
            )
        self.content_hash = content_hash
        self.spec = f"folder:{self.root}"
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        size = self.preprocessing.image_size
        return f"FolderSource({str(self.root)!r}, images={len(self)}, image_size={size})"

    def key(self, index: int) -> str:
        return self.paths[self._check_index(index)]

    def describe(self, index: int) -> str:
        return str(self.root / self.paths[index])

    def open_image(self, index: int) -> Image.Image:
        return Image.open(self.root / self.paths[index])

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = digest_json(
                {"kind": "folder", "files": self._file_identities(), "settings": self.settings()}
            )
        return self._fingerprint

    def _file_identities(self) -> list[list[object]]:
        identities: list[list[object]] = []
        for relative in self.paths:
            path = self.root / relative
            if self.content_hash:
                identities.append([relative, hashlib.sha256(path.read_bytes()).hexdigest()])
            else:
                stat = path.stat()
                identities.append([relative, stat.st_size, stat.st_mtime_ns])
        return identities
