"""docs/hub.md's round trip runs as written: synth set and trained describer through push/pull."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "hub.md"
SECTION = "## Round trip: a synthetic annotation set and a trained describer"


def _example() -> str:
    text = DOC.read_text()
    section = text[text.index(SECTION) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_documented_round_trip_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_example(), str(DOC), "exec"), namespace)
    descriptions, published = namespace["descriptions"], namespace["published"]
    units = namespace["exemplars"].units[:4].tolist()
    assert [(item.layer, item.unit) for item in descriptions] == [("units", unit) for unit in units]
    assert any(description.text for description in descriptions), "the trained describer says something"
    assert published.descriptions == descriptions
    assert published.model_fingerprint == namespace["exemplars"].settings["model_fingerprint"]
    hub = tmp_path / "hub-round-trip" / "hub"
    assert (hub / "synth-annotations" / "README.md").is_file()
    assert sorted(path.name for path in (hub / "describer").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "vocab.json",
    ]
    assert "@inproceedings{hernandez2022natural" in (hub / "describer" / "README.md").read_text()
    pulled = namespace["describer"]
    assert pulled.version == namespace["trained"].version, "the pulled weights are the trained ones"
    printed = capsys.readouterr().out
    assert "AnnotationSet(" in printed and descriptions[0].text in printed
