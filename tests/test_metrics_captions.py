"""BLEU and CIDEr-D against the COCO caption evaluation code (pycocoevalcap), and their input checks."""

from __future__ import annotations

import pytest

from milan_plugin.scoring.metrics import cider_d, corpus_bleu, tokenize

CANDIDATES = [
    "red circles",
    "a blue square next to text",
    "striped stars",
    "dogs",
    "green things that are not round",
]
REFERENCES = [
    ["red circles", "circles that are red", "red round objects"],
    ["squares next to text", "blue squares beside words", "a blue square adjacent to text"],
    ["stars with stripes", "striped star shapes", "stars covered in stripes"],
    ["the heads of dogs", "dog faces", "animals"],
    ["green objects except circles", "green things that are not circles", "green shapes other than circles"],
]


def _coco_inputs():
    candidates = {index: [" ".join(tokenize(text))] for index, text in enumerate(CANDIDATES)}
    references = {index: [" ".join(tokenize(ref)) for ref in refs] for index, refs in enumerate(REFERENCES)}
    return candidates, references


def test_bleu_matches_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu

    references, candidates = _coco_inputs()[1], _coco_inputs()[0]
    expected, _ = Bleu(4).compute_score(references, candidates, verbose=0)
    assert corpus_bleu(CANDIDATES, REFERENCES) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_cider_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    candidates, references = _coco_inputs()
    expected, per_item = Cider().compute_score(references, candidates)
    corpus, scores = cider_d(CANDIDATES, REFERENCES)
    assert corpus == pytest.approx(expected, rel=1e-9)
    assert scores == pytest.approx(list(per_item), rel=1e-9)


def test_perfect_and_disjoint_candidates_bracket_the_scores():
    assert corpus_bleu(["red circles next to text"], [["red circles next to text"]])[3] == pytest.approx(1.0)
    assert corpus_bleu(["zebra"], [["red circles here"]])[0] < 1e-6
    assert cider_d(["zebra"], [["red circles here"]])[0] == 0.0


def test_metrics_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="reference lists"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no references"):
        cider_d(["a"], [[]])
