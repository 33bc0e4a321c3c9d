"""Shared fixtures: real offline assets and a plugin manager with no global state."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def photo_folder() -> Path:
    """Real photos from Debian's tuxpaint-stamps-default (extracted by ``make setup``)."""
    from milan_plugin.assets import photo_folder

    return photo_folder()


@pytest.fixture(scope="session")
def copy_photos(photo_folder: Path) -> Callable[[Path, int], Path]:
    """``copy_photos(folder, count)``: a new flat folder holding the first ``count`` photos."""

    def copy(folder: Path, count: int) -> Path:
        folder.mkdir(parents=True)
        for path in sorted(photo_folder.rglob("*.png"))[:count]:
            shutil.copyfile(path, folder / path.name)
        return folder

    return copy


@pytest.fixture(scope="session")
def mobilenet_v2():
    """torchvision MobileNetV2 with its real ImageNet weights, in eval mode."""
    import torchvision

    from milan_plugin.assets import install_offline_weights

    install_offline_weights()
    return torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval()


@pytest.fixture
def fresh_plugin_manager(monkeypatch):
    """A freshly built process-wide plugin manager, restored afterwards."""
    from milan_plugin import plugins

    monkeypatch.setattr(plugins, "_manager", None)
    yield plugins.get_plugin_manager()
    plugins.reset_plugin_manager()
