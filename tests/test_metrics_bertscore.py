"""BERTScore with the offline MiniLM backbone: identity, ranking, best-of-references, options."""

from __future__ import annotations

import pytest

from milan_plugin.scoring.metric_bertscore import BertScorer, bertscore_f1


def test_identical_text_scores_one_and_related_beats_unrelated():
    mean, scores = bertscore_f1(
        ["red circles", "dog faces", "dog faces"],
        [["red circles"], ["the heads of dogs"], ["striped blue squares"]],
    )
    assert scores[0] == pytest.approx(1.0, abs=1e-4)
    assert scores[1] > scores[2] + 0.1
    assert mean == pytest.approx(sum(scores) / 3)


def test_best_reference_wins_and_case_and_period_are_ignored():
    scorer = BertScorer()
    alone = scorer.score(["Red circles."], [["red circles"]])[0]
    with_noise = scorer.score(["red circles"], [["striped squares", "red circles", "text"]])[0]
    assert alone == pytest.approx(1.0, abs=1e-4)
    assert with_noise == pytest.approx(1.0, abs=1e-4)


def test_idf_and_baseline_change_the_scale():
    plain = BertScorer().score(["red circles"], [["blue circles"]])[0]
    rescaled = BertScorer(baseline=(0.5, 0.5, 0.5)).score(["red circles"], [["blue circles"]])[0]
    assert rescaled == pytest.approx((plain - 0.5) / 0.5, abs=1e-6)
    weighted = BertScorer(idf=True).score(["red circles"], [["blue circles"]])[0]
    assert 0 < weighted < 1


def test_missing_backbone_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        BertScorer(model_path=tmp_path / "nothing").score(["a"], [["a"]])
