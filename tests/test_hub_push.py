"""Push: the dry run and a push with the two network calls mocked list exactly the same files and card."""

from __future__ import annotations

from unittest import mock

import pytest
from milan_plugin.hub.annotation_sets import push_annotation_set
from milan_plugin.hub.convert import convert_release
from milan_plugin.hub.transfer import push_folder
from test_hub_helpers import write_release_zip

from milan_plugin.cli import main
from milan_plugin.descriptions import Candidate, Description
from milan_plugin.errors import InvalidInputError


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    fake = write_release_zip(root / "alexnet-places365.zip", with_images=True, units=2, k=2, seed=5)
    return convert_release([fake.path], root / "hub", progress=False)


def _expected_files(folder):
    return sorted(
        (path.relative_to(folder).as_posix(), path.stat().st_size)
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _assert_card(card: str) -> None:
    assert card.startswith("---\nlicense: ")
    assert (
        "@inproceedings{hernandez2022natural" in card
        and "Natural Language Descriptions of Deep Visual" in card
    )
    assert "## Provenance" in card and "## Licence" in card


def test_dry_run_prints_exactly_the_files_and_the_card(dataset_folder, capsys):
    (dataset_folder / ".cache").mkdir(exist_ok=True)
    (dataset_folder / ".cache" / "lock").write_text("never sent")
    with (
        mock.patch("huggingface_hub.HfApi.create_repo") as create,
        mock.patch("huggingface_hub.HfApi.upload_folder") as up,
    ):
        assert main(["hub", "push", str(dataset_folder), "me/milannotations", "--dry-run", "--private"]) == 0
    create.assert_not_called()
    up.assert_not_called()
    printed = capsys.readouterr().out
    header, card = printed.split("--- README.md ---\n")
    listed = [line.split() for line in header.splitlines()[1:] if line.strip()]
    expected = _expected_files(dataset_folder)
    assert [(path, int(size.replace(",", ""))) for size, path in listed] == expected
    assert {path for path, _ in expected} >= {"README.md", "alexnet-places365/train-00000-of-00001.parquet"}
    assert "dataset repo me/milannotations (private, revision main)" in header
    assert card.rstrip() == (dataset_folder / "README.md").read_text().rstrip()
    _assert_card(card)


def test_mocked_push_sends_exactly_the_planned_files(dataset_folder):
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    with (
        mock.patch.object(HfApi, "create_repo", return_value=mock.MagicMock(repo_id="me/x")) as create,
        mock.patch.object(HfApi, "upload_folder", return_value=mock.MagicMock(oid="abc")) as upload,
    ):
        plan = push_folder(dataset_folder, "me/x", private=True, revision="v1")
    create.assert_called_once_with("me/x", repo_type="dataset", private=True, exist_ok=True)
    kwargs = upload.call_args.kwargs
    assert kwargs["repo_id"] == "me/x" and kwargs["repo_type"] == "dataset" and kwargs["revision"] == "v1"
    assert kwargs["folder_path"] == str(dataset_folder)
    on_disk = [
        path.relative_to(dataset_folder).as_posix() for path in dataset_folder.rglob("*") if path.is_file()
    ]
    sent = sorted(filter_repo_objects(on_disk, allow_patterns=kwargs["allow_patterns"]))
    assert sent == [path for path, _ in _expected_files(dataset_folder)] == [path for path, _ in plan.files]
    _assert_card(plan.card)


def test_annotation_set_push_sends_data_and_a_card_with_provenance():
    from huggingface_hub import HfApi

    descriptions = [
        Description(
            "layer4",
            3,
            "dog faces",
            1.5,
            (Candidate("dog faces", 1.5, -2.0, -4.0),),
            "milan",
            "abc",
            {"k": 15},
        )
    ]
    with (
        mock.patch.object(HfApi, "create_repo") as create,
        mock.patch.object(HfApi, "upload_folder") as upload,
    ):
        plan = push_annotation_set(
            descriptions, "me/resnet18-set", model="torchvision:resnet18", model_fingerprint="f00d"
        )
    create.assert_called_once()
    assert upload.call_args.kwargs["allow_patterns"] == ["README.md", "data/train-00000-of-00001.parquet"]
    assert [path for path, _ in plan.files] == ["README.md", "data/train-00000-of-00001.parquet"]
    _assert_card(plan.card)
    assert "model_fingerprint: f00d" in plan.card and "describer: `milan` version `abc`" in plan.card


def test_push_refuses_folders_without_a_card_and_bad_repo_ids(tmp_path, dataset_folder):
    (tmp_path / "data.parquet").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match=r"no README\.md"):
        push_folder(tmp_path, "me/x", dry_run=True)
    with pytest.raises(InvalidInputError, match="namespace/name"):
        push_folder(dataset_folder, "just-a-name", dry_run=True)
