"""Describer benchmark on the synthetic world: exact match, BLEU-4, CIDEr-D, BERTScore F1 by kind.

``milan bench describe --describer baseline:netdissect --split test [--json]``. Each describer
describes the planted units of the split from their engine-computed exemplars; its descriptions
are scored against the three references per unit. Exact concept match is defined in
:func:`milan_plugin.synth.language.exact_match` and docs/synth.md.

``--split cnn`` judges describers on real trained neurons instead: the units of the world CNN
(:mod:`milan_plugin.synth.trained`) whose NetDissect IoU label reaches 0.04, with varied
wordings of that label as references (:mod:`milan_plugin.synth.cnn_labels`).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from typing import Any

KINDS = ("colour", "shape", "texture", "text", "relation", "composition")
#: Compositions by operator: conjunction, disjunction, exception.
OPERATORS = ("and", "or", "and_not")
METRICS = ("units", "exact_match", "bleu4", "cider", "bertscore_f1", "ceiling")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--describer", action="append", required=True, help="describer name (repeatable)")
    parser.add_argument(
        "--split", default="test", choices=("train", "validation", "test", "test_family", "cnn")
    )
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--size", default="small", choices=("small", "default"))
    parser.add_argument("--cache-dir", default=None, help="where the synthetic set is cached")
    parser.add_argument("--json", action="store_true", help="print one JSON object per describer and split")


def score_descriptions(
    texts: list[str], rows: list[dict[str, Any]], ceilings: list[float] | None = None
) -> dict[str, Any]:
    """All metrics for ``texts`` against the rows' references, overall, per concept kind and per
    composition operator; with ``ceilings`` (per row, :mod:`milan_plugin.synth.identifiability`)
    also the mean exact match an ideal reader of the masked regions could reach."""
    from milan_plugin.scoring.metric_bertscore import BertScorer
    from milan_plugin.scoring.metrics import cider_d, corpus_bleu
    from milan_plugin.synth.dataset import row_form
    from milan_plugin.synth.language import exact_match

    references = [list(row["descriptions"]) for row in rows]
    exact = [float(exact_match(text, row_form(row))) for text, row in zip(texts, rows, strict=True)]
    scorer = BertScorer()
    bert = scorer.score(texts, references)

    def summary(indices: list[int]) -> dict[str, float]:
        if not indices:
            return {"units": 0}
        cands, refs = [texts[i] for i in indices], [references[i] for i in indices]
        values = {
            "units": len(indices),
            "exact_match": sum(exact[i] for i in indices) / len(indices),
            "bleu4": corpus_bleu(cands, refs)[3],
            "cider": cider_d(cands, refs)[0],
            "bertscore_f1": sum(bert[i] for i in indices) / len(indices),
        }
        if ceilings is not None:
            values["ceiling"] = sum(ceilings[i] for i in indices) / len(indices)
        return values

    result = summary(list(range(len(rows))))
    result["bertscore_backbone"] = repr(scorer)
    result["by_kind"] = {
        kind: summary([i for i, row in enumerate(rows) if row["concept_kind"] == kind]) for kind in KINDS
    }
    result["by_operator"] = {
        operator: summary(
            [
                i
                for i, row in enumerate(rows)
                if row["concept_kind"] == "composition" and row["operator"] == operator
            ]
        )
        for operator in OPERATORS
    }
    return result


@functools.lru_cache(maxsize=4)
def _ceilings(seed: int, size: str, split: str, cache_dir: Any) -> tuple[float, ...]:
    from milan_plugin.synth.dataset import build_synthetic_annotations
    from milan_plugin.synth.identifiability import row_ceiling

    rows = build_synthetic_annotations(seed=seed, size=size, cache_dir=cache_dir, progress=False)[split]
    return tuple(row_ceiling(row) for row in rows)


def evaluate(describer_name: str, split: str, seed: int, size: str, cache_dir: Any = None) -> dict[str, Any]:
    from milan_plugin.plugins import get_describer
    from milan_plugin.synth.dataset import LAYER, build_synthetic_annotations, planted_exemplars

    if split == "cnn":
        from milan_plugin.synth.cnn_labels import cnn_exemplars, trained_cnn_annotations

        rows = list(trained_cnn_annotations(seed, cache_dir=cache_dir, progress=False))
        ceilings = None
        exemplar_sets = cnn_exemplars(seed, cache_dir=cache_dir, progress=False)
    else:
        dataset = build_synthetic_annotations(seed=seed, size=size, cache_dir=cache_dir, progress=False)
        rows = list(dataset[split])
        ceilings = list(_ceilings(seed, size, split, cache_dir))
        exemplar_sets = {LAYER: planted_exemplars(seed, size, cache_dir=cache_dir, progress=False)}
    describer = get_describer(describer_name, seed=seed, size=size, cache_dir=cache_dir)
    texts: dict[tuple[str, int], str] = {}
    started = time.perf_counter()
    for layer, exemplars in exemplar_sets.items():
        units = [row["unit"] for row in rows if row["layer"] == layer]
        if units:
            for description in describer.describe(exemplars.subset(units), units):
                texts[layer, description.unit] = description.text
    seconds = time.perf_counter() - started
    result = {"describer": describer_name, "split": split, "seed": seed, "size": size}
    result.update(score_descriptions([texts[row["layer"], row["unit"]] for row in rows], rows, ceilings))
    result["describe_seconds"] = seconds
    return result


def format_table(result: dict[str, Any]) -> str:
    world = f"world seed {result['seed']}, size {result['size']}"
    header = f"{result['describer']} on split {result['split']} ({world}; {result['bertscore_backbone']})"
    with_ceiling = "ceiling" in result
    columns = "| kind | units | exact match | BLEU-4 | CIDEr-D | BERTScore F1 |"
    lines = [
        header,
        columns + (" ceiling |" if with_ceiling else ""),
        "|---|---|---|---|---|---|" + ("---|" if with_ceiling else ""),
    ]
    rows = [(kind, result["by_kind"][kind]) for kind in KINDS]
    rows += [(f"composition: {operator}", result["by_operator"][operator]) for operator in OPERATORS]
    rows += [("**all**", result)]
    for kind, values in rows:
        if not values.get("units"):
            lines.append(f"| {kind} | 0 | – | – | – | – |" + (" – |" if with_ceiling else ""))
            continue
        line = (
            f"| {kind} | {values['units']} | {values['exact_match']:.3f} | {values['bleu4']:.3f} | "
            f"{values['cider']:.3f} | {values['bertscore_f1']:.3f} |"
        )
        lines.append(line + (f" {values['ceiling']:.3f} |" if with_ceiling else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    for name in args.describer:
        result = evaluate(name, args.split, args.seed, args.size, args.cache_dir)
        print(json.dumps(result) if args.json else format_table(result) + "\n")
    return 0
