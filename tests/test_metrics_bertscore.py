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


@pytest.fixture
def roberta_large_in_the_hub_cache(tmp_path, monkeypatch):
    """A tiny randomly initialised RoBERTa (18 layers) stored as ``roberta-large`` in the Hub cache layout."""
    import shutil

    import huggingface_hub.constants
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    from milan_plugin.scoring.metric_bertscore import default_backbone

    snapshot = tmp_path / "hub" / "models--roberta-large" / "snapshots" / ("0" * 40)
    tokenizer = AutoTokenizer.from_pretrained(default_backbone(), local_files_only=True)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=18, num_attention_heads=2,
        intermediate_size=32, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    RobertaModel(config).save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    yield snapshot
    shutil.rmtree(tmp_path / "hub")


def test_roberta_large_in_the_local_cache_is_used_at_layer_17_with_bert_scores_baseline(
    roberta_large_in_the_hub_cache, tmp_path, monkeypatch
):
    table = tmp_path / "site" / "bert_score" / "rescale_baseline" / "en" / "roberta-large.tsv"
    table.parent.mkdir(parents=True)
    (tmp_path / "site" / "bert_score" / "__init__.py").write_text("")
    rows = ["LAYER,P,R,F"] + [f"{layer},0.{layer:02d},0.5,0.{layer + 50}" for layer in range(25)]
    table.write_text("\n".join(rows) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    scorer = BertScorer()
    assert scorer.model_path == str(roberta_large_in_the_hub_cache)
    assert (scorer.layer, scorer.baseline) == (17, (0.17, 0.5, 0.67))
    assert repr(scorer) == "BertScorer(roberta-large, layer=17, idf=False, rescaled=True)"
    raw = BertScorer(model_path=roberta_large_in_the_hub_cache, layer=17).score(["red"], [["blue"]])[0]
    assert scorer.score(["red"], [["blue"]])[0] == pytest.approx((raw - 0.67) / 0.33, abs=1e-6)


def test_roberta_large_without_bert_score_warns_that_scores_are_not_rescaled(roberta_large_in_the_hub_cache):
    with pytest.warns(UserWarning, match="without baseline rescaling"):
        scorer = BertScorer()
    assert (scorer.layer, scorer.baseline) == (17, None)


def test_without_roberta_large_the_offline_minilm_is_used(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    scorer = BertScorer()
    assert (scorer.layer, scorer.baseline) == (6, None)
    assert repr(scorer) == "BertScorer(all-MiniLM-L6-v2, layer=6, idf=False, rescaled=False)"
