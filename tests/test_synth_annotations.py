"""Planted units through the real exemplar engine, and the synthetic annotation set built from them."""

from __future__ import annotations

import os
import time

import pytest
import torch

from milan_plugin.synth.catalogue import plan_units
from milan_plugin.synth.logic import form_region
from milan_plugin.synth.planted import PlantedNeurons
from milan_plugin.synth.source import SynthSource


def _mask_precision(exemplars, unit, form, source) -> float:
    masks = exemplars.masks(unit)
    codes = torch.stack(
        [torch.from_numpy(source.scene(i).codes) for i in exemplars.ids[exemplars.row(unit)].tolist()]
    )
    region = form_region(form, codes)
    return float((masks & region).sum()) / max(float(masks.sum()), 1.0)


def test_engine_exemplars_of_planted_units_lie_inside_their_concepts(tmp_path):
    from milan_plugin import compute_exemplars

    torch.manual_seed(0)
    plans = plan_units(0, 300, copies=1, min_images=20, max_forms=40)
    source = SynthSource(seed=0, n=300, cache_scenes=300)  # keep every scene: masks are read back
    model = PlantedNeurons([plan.form for plan in plans], seed=0)
    exemplars = compute_exemplars(model, "units", source, k=15, batch_size=50, progress=False)["units"]
    kinds = {plan.form.kind for plan in plans}
    assert {"colour", "shape", "composition"} <= kinds
    for plan in plans:
        precision = _mask_precision(exemplars, plan.unit, plan.form, source)
        assert precision >= 0.8, (str(plan.form), precision)


@pytest.mark.slow
def test_small_synthetic_annotation_set_builds_in_two_minutes_and_reads_back(tmp_path):
    from milan_plugin.synth.dataset import (
        build_synthetic_annotations,
        planted_exemplars,
        row_concept_masks,
        row_form,
        row_images,
        row_masks,
        unit_plans,
        world_source,
    )

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    dataset = build_synthetic_annotations(seed=0, size="small", cache_dir=tmp_path, progress=False)
    seconds = time.perf_counter() - started
    print(
        f"small synthetic annotation set built in {seconds:.1f} s wall "
        f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores)"
    )
    assert seconds < 120, f"building the small set took {seconds:.0f} s wall, over the 120 s budget"
    assert set(dataset) == {"train", "validation", "test", "test_family"}
    assert all(len(dataset[split]) > 0 for split in dataset)
    row = dataset["train"][0]
    assert row_images(row).shape == (15, 3, 224, 224)
    assert row_masks(row).shape == (15, 112, 112)
    assert row_concept_masks(row).shape[:2] == (15, 41)
    assert len(row["descriptions"]) == 3 and row_form(row).kind == row["concept_kind"]
    exemplars = planted_exemplars(0, "small", cache_dir=tmp_path, progress=False)
    world = world_source(0, "small").world
    # Every exemplar scene drawn once (the source's scene cache is smaller than the set of exemplars).
    codes = {index: torch.from_numpy(world.render(index).codes) for index in exemplars.ids.unique().tolist()}
    for plan in unit_plans(0, "small"):
        ids = exemplars.ids[exemplars.row(plan.unit)].tolist()
        region = form_region(plan.form, torch.stack([codes[index] for index in ids]))
        masks = exemplars.masks(plan.unit)
        precision = float((masks & region).sum()) / max(float(masks.sum()), 1.0)
        assert precision >= 0.8, (str(plan.form), precision)
    again = build_synthetic_annotations(seed=0, size="small", cache_dir=tmp_path, progress=False)
    assert again["test"]["descriptions"] == dataset["test"]["descriptions"]
