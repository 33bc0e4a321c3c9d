"""``milan describe`` writes the table; ``milan:demo`` ships with the package and describes real exemplars."""

from __future__ import annotations

import pandas as pd
import pytest
from test_describe_checkpoints import random_describer

from milan_plugin.cli import main
from milan_plugin.cli.describe_command import parse_units
from milan_plugin.errors import InvalidInputError


@pytest.fixture(scope="module")
def saved_exemplars(tmp_path_factory, copy_photos, mobilenet_v2):
    from milan_plugin import compute_exemplars

    root = tmp_path_factory.mktemp("describe-cli")
    images = copy_photos(root / "photos", 24)
    sets = compute_exemplars(
        mobilenet_v2, ["features.16"], f"folder:{images}", k=5, units=list(range(8)), progress=False
    )
    return sets["features.16"].save(root / "exemplars")


def test_describe_command_writes_parquet_and_csv(tmp_path, saved_exemplars, fresh_plugin_manager):
    model = random_describer().save_pretrained(tmp_path / "model")
    out = tmp_path / "table"
    code = main(
        ["describe", "--exemplars", str(saved_exemplars), "--describer", str(model), "--units", "0-2,6",
         "--out", str(out), "--beam-size", "4", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    table = pd.read_parquet(out.with_suffix(".parquet"))
    assert list(table["unit"]) == [0, 1, 2, 6]
    assert set(table["layer"]) == {"features.16"}
    assert list(table.columns[:5]) == ["layer", "unit", "description", "score", "candidates"]
    assert pd.read_csv(out.with_suffix(".csv"))["description"].tolist() == table["description"].tolist()


def test_parse_units_rejects_nonsense():
    assert parse_units("0-2,9") == [0, 1, 2, 9]
    with pytest.raises(InvalidInputError, match="--units"):
        parse_units("a-b")


def test_demo_describer_ships_and_describes_real_exemplars(saved_exemplars, fresh_plugin_manager):
    import milan_plugin
    from milan_plugin.exemplars.exemplar_set import ExemplarSet

    describer = milan_plugin.load_describer("milan:demo", beam_size=10, progress=False)
    assert describer.name == "milan:demo" and describer.encoder_config.backbone == "mobilenet_v2"
    descriptions = describer.describe(ExemplarSet.load(saved_exemplars), [0, 5])
    assert [d.unit for d in descriptions] == [0, 5]
    assert all(d.text and d.candidates and d.describer == "milan:demo" for d in descriptions)
    assert descriptions[0].candidates[0].lm_logprob is not None


@pytest.mark.slow
def test_demo_describes_held_out_planted_neurons_beside_their_ground_truth(tmp_path, capsys):
    import re

    assert main(["demo", "--no-real", "--units", "4", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    rows = re.findall(r"^\s+\d+\s+.+?\s(ok|--)\s\S", printed, flags=re.MULTILINE)
    assert len(rows) == 4
    reported = re.search(r"exact concept match on these held-out neurons: (\d+)/4", printed)
    assert reported and int(reported.group(1)) == rows.count("ok")
