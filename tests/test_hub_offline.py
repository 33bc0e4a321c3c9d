"""A Hub cache filled beforehand serves load_milannotations with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import shutil

import pytest
import torch
from milan_plugin.hub.convert import convert_release
from milan_plugin.hub.milannotations import load_milannotations, row_images, row_masks
from milan_plugin.hub.transfer import HubUnavailableError
from test_hub_helpers import write_release_zip

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A temp HF_HOME whose hub cache holds milan-plugin/milannotations at refs/main, offline mode on."""
    import datasets
    from huggingface_hub import constants

    fake = write_release_zip(tmp_path / "alexnet-places365.zip", with_images=True, units=2, k=3, seed=7)
    folder = convert_release([fake.path], tmp_path / "converted", progress=False)
    cache = tmp_path / "hf-home" / "hub"
    repo = cache / "datasets--milan-plugin--milannotations"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    return fake


def test_cached_snapshot_serves_the_registry_repo_offline(offline_hub):
    dataset = load_milannotations("alexnet/places365")
    assert len(dataset) == len(offline_hub.descriptions)
    for row in dataset:
        key = (row["layer"], row["unit"])
        assert row["descriptions"] == offline_hub.descriptions[key]
        assert torch.equal(row_masks(row), torch.from_numpy(offline_hub.masks[key]))
        assert torch.equal(row_images(row), torch.from_numpy(offline_hub.images[key]))
    again = load_milannotations("alexnet-places365", revision="main")
    assert again["descriptions"] == dataset["descriptions"]


def test_missing_repo_offline_says_what_to_do(offline_hub):
    with pytest.raises(HubUnavailableError, match=r"HF_HUB_OFFLINE=1.*local folder"):
        load_milannotations("alexnet-places365", repo_id="someone/not-cached")


def test_cli_pull_of_a_key_copies_only_its_config_from_the_cache(offline_hub, tmp_path):
    from milan_plugin.cli import main

    assert main(["hub", "pull", "alexnet/places365", "--out", str(tmp_path / "pulled")]) == 0
    pulled = tmp_path / "pulled"
    files = sorted(path.relative_to(pulled).as_posix() for path in pulled.rglob("*"))
    assert "README.md" in files and "alexnet-places365/train-00000-of-00001.parquet" in files
    assert main(["hub", "pull", "resnet50/imagenet", "--out", str(tmp_path / "other")]) == 2
    assert not (tmp_path / "other").exists()
