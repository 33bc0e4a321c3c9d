"""Plugin discovery: ``milan plugins``, and a third-party adapter installed from its own project."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from milan_plugin import plugins
from milan_plugin.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "docs" / "examples" / "milan-adapter-example"
EXAMPLE_FILES = [
    "pyproject.toml",
    "milan_adapter_example/__init__.py",
    "milan_adapter_example/model.py",
    "milan_adapter_example/plugin.py",
]


def test_milan_plugins_lists_every_builtin(fresh_plugin_manager, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    for dotted in plugins.BUILTIN_PLUGINS:
        assert dotted in listed
        assert listed[dotted]["distribution"] is None
    assert listed["milan_plugin.adapters.builtin"]["hooks"] == ["milan_load_model", "milan_model_adapter"]
    assert listed["milan_plugin.sources.builtin"]["hooks"] == ["milan_exemplar_source"]
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out
    assert "milan_plugin.adapters.builtin  [built-in]" in table
    assert "    milan_model_adapter" in table


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project installed into a temporary ``--target`` directory.

    Its dist-info carries the entry point, so once the directory is on ``sys.path`` discovery
    works exactly as for a pip-installed distribution, and the venv is never touched. Built from
    a copy so that the build leaves no files in the repository.
    """
    root = tmp_path_factory.mktemp("example")
    project = root / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "--quiet", "--target", str(target), str(project)], check=True)
    assert (target / "milan_adapter_example-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


@pytest.fixture
def installed_example(example_site: Path, monkeypatch: pytest.MonkeyPatch):
    """``example_site`` on ``sys.path`` and a fresh plugin manager; all undone afterwards."""
    monkeypatch.syspath_prepend(str(example_site))
    monkeypatch.delenv("MILAN_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("MILAN_LOAD_PLUGINS", raising=False)
    monkeypatch.setattr(plugins, "_manager", None)
    yield example_site
    plugins.reset_plugin_manager()
    for name in [name for name in sys.modules if name.startswith("milan_adapter_example")]:
        del sys.modules[name]


def test_entry_point_adapter_is_discovered_and_computes_exemplars(
    installed_example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from milan_adapter_example.model import CapsuleClassifier

    from milan_plugin import compute_exemplars
    from milan_plugin.sources.tensors import TensorSource

    listed = {info.name: info for info in plugins.list_plugins()}
    assert listed["capsules"].distribution == "milan-adapter-example 0.1.0"
    assert listed["capsules"].hooks == ("milan_model_adapter",)
    assert main(["plugins"]) == 0
    assert re.search(r"^capsules  \[milan-adapter-example 0\.1\.0\]", capsys.readouterr().out, re.M)

    torch.manual_seed(0)
    model = CapsuleClassifier().eval()
    adapter = plugins.get_adapter(model)
    assert adapter.name == "example:capsules"
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8)
    source = TensorSource(images, image_size=32)
    maps = adapter.run(source.load([0, 1]).inputs, ["capsules"])["capsules"]
    assert maps.shape == (2, 8, 16, 16)
    lengths = model.capsules(model.stem(source.load([0]).inputs))["lengths"]
    torch.testing.assert_close(maps[0, 3, 2, 5], lengths[0, 2 * 16 + 5, 3])

    sets = compute_exemplars(model, None, source, k=5, batch_size=8, progress=False)
    exemplars = sets["capsules"]
    assert exemplars.settings["model"] == "example:capsules"
    assert len(exemplars) == 8 and exemplars.maps.shape[1:] == (5, 16, 16)
    best = int(exemplars.ids[exemplars.row(3), 0])
    expected = adapter.run(source.load([best]).inputs, ["capsules"])["capsules"][0, 3].max()
    torch.testing.assert_close(exemplars.activations[exemplars.row(3), 0], expected)


def test_disabling_entry_points_keeps_builtins(
    installed_example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MILAN_DISABLE_PLUGINS", "1")
    names = {info.name for info in plugins.list_plugins(plugins.create_plugin_manager())}
    assert "capsules" not in names and "milan_plugin.adapters.builtin" in names
    monkeypatch.delenv("MILAN_DISABLE_PLUGINS")
    assert "capsules" in {info.name for info in plugins.list_plugins(plugins.create_plugin_manager())}


def test_adapter_docs_include_the_example_files_verbatim() -> None:
    docs = (REPO / "docs" / "adapters.md").read_text()
    for relative in EXAMPLE_FILES:
        heading = f"`docs/examples/milan-adapter-example/{relative}`"
        assert heading in docs, f"docs/adapters.md does not show {relative}"
        after = docs[docs.index(heading) :]
        block = re.search(r"```[a-z]*\n(.*?)```", after, re.S)
        assert block is not None
        assert block.group(1) == (EXAMPLE / relative).read_text(), (
            f"{relative} differs from its copy in the docs"
        )
