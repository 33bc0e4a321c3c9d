"""The registry (packaged YAML + plugins) and annotation sets found by model fingerprint."""

from __future__ import annotations

import pytest
from milan_plugin.hub.annotation_sets import load_annotation_set, pull_annotation_set, push_annotation_set
from milan_plugin.hub.registry import find_annotation_set, get_entry, list_registry, parse_registry

from milan_plugin import plugins
from milan_plugin.cli import main
from milan_plugin.descriptions import Candidate, Description
from milan_plugin.errors import FingerprintMismatchError, InvalidInputError, PluginLookupError
from milan_plugin.hookspecs import hookimpl
from milan_plugin.protocols import RegistryEntry


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path_factory, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("datasets-cache"))


def _descriptions() -> list[Description]:
    settings = {"k": 15, "quantile": 0.99, "source_spec": "folder:/data/val", "model_fingerprint": "beef"}
    return [
        Description(
            layer="features.3",
            unit=unit,
            text=f"text {unit}",
            score=-1.25 * unit,
            candidates=(Candidate(f"text {unit}", -1.25 * unit, -3.0, None), Candidate("other", -9.0)),
            describer="milan:test",
            describer_version="0123",
            exemplar_settings=settings,
        )
        for unit in range(3)
    ] + [Description("features.7", 0, "stripes", 0.5, (), "milan:test", "0123", settings)]


def test_packaged_registry_lists_milannotations_and_describers(fresh_plugin_manager):
    entries = list_registry()
    assert entries[0] == get_entry("milannotations")
    assert entries[0].repo_id == "milan-plugin/milannotations" and entries[0].revision == "main"
    assert "not-resnet152-places365" in entries[0].configs and len(entries[0].configs) == 21
    describers = {entry.name: entry for entry in list_registry("describer")}
    assert describers["milan:base"].repo_id == "milan-plugin/milan-base"
    assert set(describers) == {
        f"milan:{group}"
        for group in ("base", "cls", "gen", "imagenet", "places365", "alexnet", "resnet152", "biggan")
    }
    with pytest.raises(PluginLookupError, match="milannotations"):
        get_entry("milan:nope")


def test_registry_yaml_errors_are_clear():
    with pytest.raises(InvalidInputError, match="unknown registry section 'weights'"):
        parse_registry({"weights": []})
    with pytest.raises(InvalidInputError, match="lacks repo_id"):
        parse_registry({"describers": [{"name": "x"}]})


def test_annotation_set_round_trips_through_a_local_push(tmp_path):
    descriptions = _descriptions()
    push_annotation_set(
        descriptions, tmp_path / "set", model="torchvision:mobilenet_v2", model_fingerprint="beef"
    )
    pulled = pull_annotation_set(tmp_path / "set")
    assert pulled.descriptions == descriptions
    assert pulled.model == "torchvision:mobilenet_v2" and pulled.model_fingerprint == "beef"
    assert pulled.metadata["layers"] == ["features.3", "features.7"]
    assert pulled.for_layer("features.7")[0].text == "stripes"
    assert pull_annotation_set(tmp_path / "set", layers=["features.7"]).descriptions == descriptions[3:]
    pulled.check_model("beef")
    with pytest.raises(FingerprintMismatchError, match="fingerprint beef, not cafe"):
        pulled.check_model("cafe")
    assert len(load_annotation_set(str(tmp_path / "set"))) == 4


def test_plugins_register_annotation_sets_found_by_fingerprint(tmp_path, fresh_plugin_manager):
    push_annotation_set(_descriptions(), tmp_path / "set", model="m", model_fingerprint="beef")

    class LabPlugin:
        @hookimpl
        def milan_annotation_sets(self):
            return [
                RegistryEntry(
                    name="lab/mobilenet",
                    kind="annotation-set",
                    repo_id=str(tmp_path / "set"),
                    model="m",
                    model_fingerprint="beef",
                    layers=("features.3", "features.7"),
                )
            ]

    plugins.register(LabPlugin(), name="lab")
    entry = find_annotation_set("beef", "features.7")
    assert entry is not None and entry.name == "lab/mobilenet"
    assert find_annotation_set("beef", "features.9") is None
    assert find_annotation_set("cafe", "features.7") is None
    assert load_annotation_set(entry.repo_id)["text"][:2] == ["text 0", "text 1"]
    assert list_registry()[-1] == entry, "plugin entries come after the packaged ones"


def test_milan_hub_ls_prints_the_registry(capsys, fresh_plugin_manager):
    assert main(["hub", "ls", "--kind", "describer"]) == 0
    out = capsys.readouterr().out
    assert "milan:base" in out and "milan-plugin/milan-base@main" in out and "milannotations " not in out


def test_annotation_sets_refuse_bad_input(tmp_path):
    with pytest.raises(InvalidInputError, match="at least one description"):
        push_annotation_set([], tmp_path / "a", model="m", model_fingerprint="f")
    with pytest.raises(InvalidInputError, match="fingerprint"):
        push_annotation_set(_descriptions(), tmp_path / "b", model="m", model_fingerprint="")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not pushed to before"):
        push_annotation_set(_descriptions(), tmp_path / "c", model="m", model_fingerprint="f")
    assert [path.name for path in (tmp_path / "c").iterdir()] == ["notes.txt"]


def test_folders_with_the_same_name_never_share_a_cache_entry(tmp_path):
    first, second = _descriptions()[:1], _descriptions()[1:]
    push_annotation_set(first, tmp_path / "a" / "set", model="m", model_fingerprint="f")
    push_annotation_set(second, tmp_path / "b" / "set", model="m", model_fingerprint="f")
    assert pull_annotation_set(tmp_path / "a" / "set").descriptions == first
    assert pull_annotation_set(tmp_path / "b" / "set").descriptions == second
    push_annotation_set(second, tmp_path / "a" / "set", model="m", model_fingerprint="f")
    assert pull_annotation_set(tmp_path / "a" / "set").descriptions == second, "a re-push is seen"
