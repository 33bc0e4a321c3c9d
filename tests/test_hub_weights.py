"""Describer weights: original .pth download + safe conversion, push/pull in the from_pretrained layout."""

from __future__ import annotations

import hashlib
from unittest import mock

import pytest
import torch
from milan_plugin.hub.weights import (
    convert_original_checkpoint,
    download_original_checkpoint,
    pull_describer,
    push_describer,
)
from test_describe_checkpoints import random_describer, write_original_checkpoint

from milan_plugin.cli import main
from milan_plugin.errors import InvalidInputError


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A file in the layout of the released milan-<group>.pth, served from a file:// URL."""
    root = tmp_path_factory.mktemp("original")
    source = random_describer()
    path = write_original_checkpoint(root / "milan-base.pth", source)
    return {
        "source": source,
        "path": path,
        "url": path.as_uri(),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def test_original_checkpoint_downloads_converts_pushes_and_pulls(original, tmp_path, fresh_plugin_manager):
    import milan_plugin

    downloaded = download_original_checkpoint(
        "milan:base", tmp_path, url=original["url"], sha256=original["sha256"], progress=False
    )
    assert (
        downloaded == tmp_path / "milan-base.pth" and downloaded.read_bytes() == original["path"].read_bytes()
    )
    converted = convert_original_checkpoint(downloaded, tmp_path / "converted", beam_size=6, progress=False)
    push_describer(converted, tmp_path / "hub" / "milan-base", provenance="Imported from milan-base.pth.")
    pulled = pull_describer(str(tmp_path / "hub" / "milan-base"))
    card = (pulled / "README.md").read_text()
    assert "Imported from milan-base.pth." in card and "@inproceedings{hernandez2022natural" in card
    assert "Citation" not in (converted / "README.md").read_text(), "the source folder is left unchanged"
    describer = milan_plugin.load_describer(pulled, beam_size=6, progress=False)
    features = torch.randn(3, 15, 488, generator=torch.Generator().manual_seed(1))
    assert describer.describe_features(features) == original["source"].describe_features(features)


def test_describer_push_to_the_hub_sends_the_checkpoint_files(original, tmp_path):
    from huggingface_hub import HfApi

    original["source"].save_pretrained(tmp_path / "checkpoint")
    with (
        mock.patch.object(HfApi, "create_repo") as create,
        mock.patch.object(HfApi, "upload_folder") as upload,
    ):
        plan = push_describer(tmp_path / "checkpoint", "me/milan-demo", private=True)
    create.assert_called_once_with("me/milan-demo", repo_type="model", private=True, exist_ok=True)
    assert upload.call_args.kwargs["repo_type"] == "model"
    expected = ["README.md", "config.json", "model.safetensors", "vocab.json"]
    assert upload.call_args.kwargs["allow_patterns"] == expected == [path for path, _ in plan.files]


def test_checksum_mismatch_keeps_nothing(original, tmp_path):
    with pytest.raises(InvalidInputError, match="expected 00"):
        download_original_checkpoint(
            "milan:base", tmp_path, url=original["url"], sha256="00" * 32, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_weights_errors_are_clear(tmp_path, fresh_plugin_manager):
    with pytest.raises(InvalidInputError, match=r"model\.safetensors"):
        push_describer(tmp_path, "me/x", dry_run=True)
    with pytest.raises(InvalidInputError, match="not a describer checkpoint"):
        pull_describer(str(tmp_path))
    with pytest.raises(LookupError, match="milan:base"):
        download_original_checkpoint("milan:nope", tmp_path)


def test_cli_pull_of_a_local_describer(original, tmp_path):
    original["source"].save_pretrained(tmp_path / "checkpoint")
    command = ["hub", "pull", str(tmp_path / "checkpoint"), "--out", str(tmp_path / "copy")]
    assert main([*command, "--repo-type", "model"]) == 0
    copied = sorted(path.name for path in (tmp_path / "copy").iterdir())
    assert copied == ["README.md", "config.json", "model.safetensors", "vocab.json"]
    assert main(command) == 2, "pulling into a non-empty folder is refused"
