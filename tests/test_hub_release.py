"""Release zips -> Hub dataset folder -> load_milannotations: everything survives, bad input fails cleanly."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from milan_plugin.hub import convert, groupings
from milan_plugin.hub.convert import convert_release
from milan_plugin.hub.milannotations import load_milannotations, row_images, row_masks
from milan_plugin.hub.release import ReleaseFormatError
from test_hub_helpers import write_imagenet_tree, write_release_zip

from milan_plugin.errors import InvalidInputError, MilanError, PluginLookupError


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path_factory, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("datasets-cache"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    boxes = write_imagenet_tree(root)
    imagenet = write_release_zip(root / "resnet152-imagenet.zip", with_images=False, boxes=boxes, seed=3)
    places = write_release_zip(
        root / "alexnet-places365.zip", with_images=True, seed=4, prefix="alexnet/places365/"
    )
    out = convert_release([imagenet.path, places.path], root / "hub", imagenet_root=root, progress=False)
    return {"root": root, "out": out, "boxes": boxes, "imagenet": imagenet, "places": places}


def _rows_by_unit(dataset):
    return {(row["layer"], row["unit"]): row for row in dataset}


@pytest.mark.parametrize(
    ("name", "release"), [("resnet152/imagenet", "imagenet"), ("alexnet-places365", "places")]
)
def test_masks_ids_and_descriptions_round_trip(converted, name, release):
    fake = converted[release]
    rows = _rows_by_unit(load_milannotations(name, repo_id=converted["out"]))
    assert set(rows) == set(fake.descriptions), "annotated units kept, the unannotated one dropped"
    for key, row in rows.items():
        assert row["descriptions"] == fake.descriptions[key]
        assert row["image_ids"] == fake.ids[key]
        assert torch.equal(row_masks(row), torch.from_numpy(fake.masks[key]))
        if release == "places":
            assert torch.equal(row_images(row), torch.from_numpy(fake.images[key]))
            assert row["image_keys"] == []
        else:
            assert row["images"] == [] and row["source"] == "folder:imagenet/val"
    assert len(rows[("conv1", 1)]["descriptions"]) == 2, "units with fewer than 3 descriptions are kept"


def test_min_descriptions_drops_sparse_units(converted, tmp_path):
    out = convert_release(
        [converted["imagenet"].path], tmp_path / "strict", min_descriptions=3, progress=False
    )
    rows = _rows_by_unit(load_milannotations("resnet152-imagenet", repo_id=out))
    assert ("conv1", 1) not in rows and ("conv1", 0) in rows
    assert all(len(row["descriptions"]) == 3 for row in rows.values())


def _alignment(images: torch.Tensor, masks: torch.Tensor) -> tuple[float, float]:
    """Mean brightness strictly inside the masks and well outside them (2 px margins for blur)."""
    gray = images.float().mean(1)
    pool = torch.nn.functional.max_pool2d
    inner = (-pool(-masks.float()[:, None], 5, 1, 2))[:, 0] > 0.5
    outer = pool(masks.float()[:, None], 5, 1, 2)[:, 0] > 0.5
    return float(gray[inner].mean()), float(gray[~outer].mean())


def test_imagenet_images_join_from_local_folder_aligned_with_masks(converted):
    dataset = load_milannotations(
        "resnet152-imagenet", repo_id=converted["out"], imagenet_root=converted["root"]
    )
    for row in dataset:
        assert len(row["images"]) == 4, "the loader joins images lazily from the local folder"
        images = row_images(row)
        inside, outside = _alignment(images, row_masks(row))
        assert inside > 200 and outside < 40, (inside, outside)
        assert row["image_keys"][0].startswith("n0000000") and row["image_keys"][0].endswith(".JPEG")


def test_imagenet_join_by_ids_when_converted_without_the_folder(converted, tmp_path):
    out = convert_release([converted["imagenet"].path], tmp_path / "ids-only", progress=False)
    rows = list(load_milannotations("resnet152-imagenet", repo_id=out))
    assert all(row["image_keys"] == [] for row in rows)
    for row in rows:
        inside, outside = _alignment(row_images(row, imagenet_root=converted["root"]), row_masks(row))
        assert inside > 200 and outside < 40


def test_squashing_like_the_reference_would_misalign(converted):
    """The check above has teeth: Resize((224, 224)) moves the pattern off the masks."""
    from PIL import Image

    row = next(iter(load_milannotations("resnet152-imagenet", repo_id=converted["out"])))
    folder = converted["root"] / "imagenet" / "val"
    squashed = []
    for key in row["image_keys"]:
        with Image.open(folder / key) as image:
            squashed.append(np.asarray(image.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)))
    images = torch.from_numpy(np.stack(squashed)).permute(0, 3, 1, 2)
    inside, _ = _alignment(images, row_masks(row))
    assert inside < 150


def test_card_declares_configs_licence_citation_and_provenance(converted):
    from datasets import get_dataset_config_names

    card = (converted["out"] / "README.md").read_text()
    assert "license: other" in card and "@inproceedings{hernandez2022natural" in card
    assert "resnet152-imagenet.zip" in card and "## Provenance" in card
    assert set(get_dataset_config_names(str(converted["out"]))) == {"resnet152-imagenet", "alexnet-places365"}


def test_every_grouping_resolves_to_its_members(tmp_path):
    zips = [
        write_release_zip(
            tmp_path / f"{key}.zip",
            layers=("layer1",),
            units=2,
            k=2,
            with_images=key in groupings.REDISTRIBUTABLE_IMAGES,
            seed=index,
        ).path
        for index, key in enumerate(groupings.MODEL_KEYS)
    ]
    out = convert_release(zips, tmp_path / "all", progress=False)
    from datasets import get_dataset_config_names

    expected = {**{key: (key,) for key in groupings.MODEL_KEYS}, **groupings.groupings()}
    assert set(get_dataset_config_names(str(out))) == set(expected)
    assert len(groupings.groupings()) == 14
    from datasets import load_dataset_builder

    for name, members in expected.items():
        files = load_dataset_builder(str(out), name).config.data_files["train"]
        assert sorted({Path(file).parent.name for file in files}) == sorted(members), name
    for name in ("base", "not-resnet152-imagenet", "gen"):
        dataset = load_milannotations(name, repo_id=out)
        found = sorted(
            {f"{model}-{data}" for model, data in zip(dataset["model"], dataset["dataset"], strict=True)}
        )
        assert found == sorted(expected[name]) and len(dataset) == len(found), name
    assert groupings.groupings()["not-biggan-places365"] == (
        "alexnet-imagenet",
        "alexnet-places365",
        "resnet152-imagenet",
        "resnet152-places365",
        "biggan-imagenet",
    )


def test_interrupted_conversion_resumes_from_finished_shards(converted, tmp_path, monkeypatch):
    written = []
    real_write = convert._write_shard

    def flaky(rows, target):
        if len(written) == 1:
            raise KeyboardInterrupt
        written.append(target.name)
        real_write(rows, target)

    monkeypatch.setattr(convert, "_write_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert_release([converted["places"].path], tmp_path / "out", max_shard_bytes=1, progress=False)
    assert not (tmp_path / "out" / "alexnet-places365").exists()
    monkeypatch.setattr(
        convert, "_write_shard", lambda rows, target: (written.append(target.name), real_write(rows, target))
    )
    out = convert_release([converted["places"].path], tmp_path / "out", max_shard_bytes=1, progress=False)
    assert written == [
        "train-00000-of-00004.parquet",
        "train-00001-of-00004.parquet",
        "train-00002-of-00004.parquet",
        "train-00003-of-00004.parquet",
    ]
    rows = _rows_by_unit(load_milannotations("alexnet-places365", repo_id=out))
    assert set(rows) == set(converted["places"].descriptions)


# --- bad input --------------------------------------------------------------------------------


def _assert_untouched(out):
    assert not out.exists() or not any(out.iterdir())
    assert not list(out.parent.glob(f".{out.name}*"))


def test_truncated_zip_fails_clearly(converted, tmp_path):
    data = converted["imagenet"].path.read_bytes()
    broken = tmp_path / "resnet152-imagenet.zip"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseFormatError, match="truncated"):
        convert_release([broken], tmp_path / "out", progress=False)
    _assert_untouched(tmp_path / "out")


def _rewrite_zip(source_zip, target_zip, change):
    """Copy ``source_zip`` to ``target_zip``, each member's bytes passed through ``change(name, data)``."""
    with zipfile.ZipFile(source_zip) as source, zipfile.ZipFile(target_zip, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, change(info.filename, source.read(info)))


def test_truncated_array_inside_an_intact_zip_fails_clearly(tmp_path):
    fake = write_release_zip(tmp_path / "source" / "alexnet-places365.zip", with_images=True, units=2, k=2)
    broken = tmp_path / "alexnet-places365.zip"
    _rewrite_zip(
        fake.path, broken, lambda name, data: data[:-100] if name.endswith("conv2/images.npy") else data
    )
    with pytest.raises(ReleaseFormatError, match=r"conv2/images.npy .*truncated"):
        convert_release([broken], tmp_path / "out", progress=False)
    _assert_untouched(tmp_path / "out")


def test_mismatched_shapes_fail_clearly(tmp_path):
    fake = write_release_zip(tmp_path / "source" / "alexnet-places365.zip", with_images=True, units=2, k=2)
    broken = tmp_path / "alexnet-places365.zip"
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 3, 3, 224, 224), dtype=np.uint8))
    _rewrite_zip(
        fake.path, broken, lambda name, data: buffer.getvalue() if name == "conv1/images.npy" else data
    )
    with pytest.raises(
        ReleaseFormatError, match=r"images.npy has shape \(2, 3, 3, 224, 224\).*\(2, 2, 3, 224, 224\)"
    ):
        convert_release([broken], tmp_path / "out", progress=False)
    _assert_untouched(tmp_path / "out")


def test_ids_that_do_not_match_the_masks_fail_clearly(tmp_path):
    fake = write_release_zip(tmp_path / "source" / "resnet152-imagenet.zip", with_images=False, units=2, k=2)
    broken = tmp_path / "resnet152-imagenet.zip"
    _rewrite_zip(fake.path, broken, lambda name, data: b"1,2,3\n4,5,6\n" if name == "conv2/ids.csv" else data)
    with pytest.raises(ReleaseFormatError, match=r"ids.csv has 2 rows of \[3\] values.*2 rows of 2"):
        convert_release([broken], tmp_path / "out", progress=False)
    _assert_untouched(tmp_path / "out")


def test_missing_imagenet_folder_fails_clearly(converted, tmp_path):
    with pytest.raises(InvalidInputError, match="no imagenet validation folder"):
        convert_release([converted["imagenet"].path], tmp_path / "out", imagenet_root=tmp_path / "nope")
    _assert_untouched(tmp_path / "out")
    with pytest.raises(InvalidInputError, match="no imagenet validation folder"):
        load_milannotations("resnet152-imagenet", repo_id=converted["out"], imagenet_root=tmp_path / "nope")
    row = next(iter(load_milannotations("resnet152-imagenet", repo_id=converted["out"])))
    with pytest.raises(InvalidInputError, match="imagenet_root="):
        row_images(row)


def test_unknown_key_lists_the_known_keys(converted):
    with pytest.raises(PluginLookupError) as caught:
        load_milannotations("resnet50/imagenet", repo_id=converted["out"])
    message = str(caught.value)
    assert "unknown MILANNOTATIONS key 'resnet50/imagenet'" in message
    assert all(
        name in message
        for name in ("alexnet-imagenet", "dino_vits8-imagenet", "base", "not-biggan-places365")
    )
    with pytest.raises(MilanError, match=r"resnet152-imagenet\.zip"):
        convert_release([converted["root"] / "resnet50-imagenet.zip"], converted["root"] / "never")


def test_grouping_not_fully_converted_is_reported(converted):
    with pytest.raises(PluginLookupError, match=r"no config 'base'.*Known configs: alexnet-places365"):
        load_milannotations("base", repo_id=converted["out"])


def test_cli_convert_reports_success_and_errors(converted, tmp_path, capsys):
    from milan_plugin.cli import main

    out = tmp_path / "cli"
    assert main(["hub", "convert", str(converted["imagenet"].path), "--out", str(out), "--no-progress"]) == 0
    assert (out / "README.md").is_file() and (out / "resnet152-imagenet").is_dir()
    broken = tmp_path / "alexnet-imagenet.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["hub", "convert", str(broken), "--out", str(tmp_path / "never")]) == 2
    assert "not a readable zip" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
