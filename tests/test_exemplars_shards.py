"""Acceptance 2: shards merge to the single run, a SIGKILLed run resumes to the same result, caching."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from milan_plugin.exemplars import (
    EngineState,
    compute_exemplar_state,
    compute_exemplars,
    exemplar_sets,
    merge_states,
)

# Shared by this process and the subprocess that gets killed, so both build the same model and data.
BUILDERS = textwrap.dedent(
    """
    import time
    from collections import OrderedDict

    import torch
    from torch import nn

    from milan_plugin.sources.tensors import TensorSource

    LAYERS = ["conv1", "relu2", "head"]

    def build_model():
        torch.manual_seed(0)
        return nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, 6, 3, stride=2, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(6, 12, 3, stride=2, padding=1),
            relu2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            head=nn.Linear(12, 5),
        )).eval()

    def build_source():
        generator = torch.Generator().manual_seed(1)
        return TensorSource(torch.rand(96, 3, 40, 40, generator=generator), image_size=32)

    class SlowSource:
        '''Delegates to a source, sleeping on each load so that a run can be killed midway.'''

        def __init__(self, inner, delay):
            self.inner, self.delay, self.spec, self.loaded = inner, delay, inner.spec, 0

        def __len__(self):
            return len(self.inner)

        def key(self, index):
            return self.inner.key(index)

        def fingerprint(self):
            return self.inner.fingerprint()

        def load(self, indices):
            time.sleep(self.delay)
            self.loaded += len(indices)
            return self.inner.load(indices)

        def images(self, indices, size=224):
            return self.inner.images(indices, size)
    """
)
NAMESPACE: dict = {}
exec(BUILDERS, NAMESPACE)


def assert_same(first, second) -> None:
    assert first.keys() == second.keys()
    for layer in first:
        a, b = first[layer], second[layer]
        assert torch.equal(a.units, b.units)
        assert torch.equal(a.ids, b.ids), layer
        assert torch.equal(a.activations, b.activations), layer
        assert torch.equal(a.maps, b.maps), layer
        assert torch.equal(a.thresholds, b.thresholds), layer
        assert a.keys == b.keys


def test_three_shards_merge_to_the_single_run(tmp_path):
    model, source = NAMESPACE["build_model"](), NAMESPACE["build_source"]()
    layers = NAMESPACE["LAYERS"]
    single = compute_exemplars(model, layers, source, k=5, batch_size=16, progress=False)
    for shard in range(3):
        state = compute_exemplar_state(
            model, layers, source, k=5, batch_size=16, shard=(shard, 3), progress=False
        )
        state.save(tmp_path / f"shard{shard}.safetensors")
    states = [EngineState.load(tmp_path / f"shard{shard}.safetensors") for shard in (2, 0, 1)]
    merged = merge_states(states)
    assert merged.seen == 96
    assert_same(exemplar_sets(merged, source=source), single)
    whole = compute_exemplar_state(model, layers, source, k=5, batch_size=32, progress=False)
    for layer in layers:
        ours, theirs = merged.layers[layer].sketch.trimmed(), whole.layers[layer].sketch.trimmed()
        assert ours.base == theirs.base and torch.equal(ours.counts, theirs.counts)
    assert single["head"].maps.shape[2:] == (1, 1)
    assert single["conv1"].maps.shape[2:] == (16, 16)


def test_merge_refuses_states_of_different_settings():
    model, source = NAMESPACE["build_model"](), NAMESPACE["build_source"]()
    first = compute_exemplar_state(model, ["conv1"], source, k=3, shard=(0, 2), progress=False)
    second = compute_exemplar_state(model, ["conv1"], source, k=4, shard=(1, 2), progress=False)
    with pytest.raises(ValueError, match="different settings"):
        merge_states([first, second])


def test_sigkill_midway_then_rerun_equals_uninterrupted(tmp_path):
    cache = tmp_path / "cache"
    script = tmp_path / "run_exemplars.py"
    script.write_text(
        BUILDERS
        + textwrap.dedent(
            f"""
            from milan_plugin.exemplars import compute_exemplars
            compute_exemplars(build_model(), LAYERS, SlowSource(build_source(), 0.3), k=5, batch_size=8,
                              cache_dir={str(cache)!r}, checkpoint_every=1, progress=False)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 120
        while not list(cache.glob("checkpoint-*.safetensors")):
            assert process.poll() is None, "the run ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not list(cache.rglob("exemplars.safetensors"))
    checkpoint = EngineState.load(next(cache.glob("checkpoint-*.safetensors")))
    assert 0 < checkpoint.position < 96

    model, layers = NAMESPACE["build_model"](), NAMESPACE["LAYERS"]
    resumed_source = NAMESPACE["SlowSource"](NAMESPACE["build_source"](), 0.0)
    resumed = compute_exemplars(
        model, layers, resumed_source, k=5, batch_size=8, cache_dir=cache, progress=False
    )
    assert resumed_source.loaded == 96 - checkpoint.position
    assert not list(cache.glob("checkpoint-*"))
    uninterrupted = compute_exemplars(
        model, layers, NAMESPACE["build_source"](), k=5, batch_size=8, progress=False
    )
    assert_same(resumed, uninterrupted)


def test_finished_run_is_served_from_cache_but_not_for_a_changed_model(tmp_path):
    model, source = NAMESPACE["build_model"](), NAMESPACE["build_source"]()
    counting = NAMESPACE["SlowSource"](source, 0.0)
    first = compute_exemplars(model, ["conv1", "head"], counting, k=4, cache_dir=tmp_path, progress=False)
    assert counting.loaded == 96
    again = compute_exemplars(model, ["conv1", "head"], counting, k=4, cache_dir=tmp_path, progress=False)
    assert counting.loaded == 96, "a cached result must be served without a pass"
    assert_same(first, again)
    assert again["conv1"].images(0, size=32).shape == (4, 3, 32, 32)

    with torch.no_grad():
        model.conv1.weight[0, 0, 0, 0] += 1.0
    changed = compute_exemplars(model, ["conv1"], counting, k=4, cache_dir=tmp_path, progress=False)
    assert counting.loaded == 192, "a changed model must not be served a stale cache"
    assert not torch.equal(changed["conv1"].maps, first["conv1"].maps)


def test_exemplar_set_round_trip_subset_and_corrupt_file(tmp_path):
    model, source = NAMESPACE["build_model"](), NAMESPACE["build_source"]()
    exemplars = compute_exemplars(model, "conv1", source, k=4, units=[1, 4], progress=False)["conv1"]
    assert exemplars.units.tolist() == [1, 4] and len(exemplars) == 2
    assert "conv1" in repr(exemplars) and "units=2" in repr(exemplars)
    exemplars.save(tmp_path / "set")
    loaded = type(exemplars).load(tmp_path / "set", source=source)
    assert_same({"conv1": loaded}, {"conv1": exemplars})
    assert loaded.settings["model_fingerprint"] == exemplars.settings["model_fingerprint"]
    assert torch.equal(loaded.masks(4, size=32), exemplars.masks(4, size=32))
    assert torch.equal(loaded.images(4, size=32), source.images(exemplars.ids[1].tolist(), size=32))
    assert loaded.subset([4]).ids.tolist() == [exemplars.ids[1].tolist()]
    grid = loaded.grid(1, size=16, columns=2)
    assert grid.dtype == torch.uint8 and grid.shape == (3, 16 * 2 + 2, 16 * 2 + 2)
    with pytest.raises(KeyError, match="unit 0 is not in"):
        loaded.row(0)

    from milan_plugin.errors import InvalidInputError

    path = tmp_path / "set" / "exemplars.safetensors"
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(InvalidInputError, match="not a valid exemplar set"):
        type(exemplars).load(tmp_path / "set")


def test_top_k_and_sketch_do_not_depend_on_batching_or_order():
    """Ties (value desc, then index asc) and counts make any batching and merge order agree."""
    from milan_plugin.exemplars.sketch import QuantileSketch
    from milan_plugin.exemplars.topk import RunningTopK

    generator = torch.Generator().manual_seed(3)
    values = torch.randint(0, 4, (40, 3, 5), generator=generator).float()  # many exact ties
    values[:, 2] = torch.randn(40, 5, generator=generator)
    ids = torch.arange(40)

    def run(order, size):
        topk, sketch = RunningTopK.empty(3, 6, 5), QuantileSketch.empty(3)
        for start in range(0, 40, size):
            chosen = order[start : start + size]
            batch = values[chosen]
            topk.update(batch, batch.amax(dim=2), ids[chosen])
            sketch.update(batch, batch.amin(dim=(0, 2)), batch.amax(dim=(0, 2)))
        return topk, sketch.trimmed()

    reference_topk, reference_sketch = run(list(range(40)), 40)
    expected = torch.sort(values.amax(dim=2).T, dim=1, descending=True, stable=True)
    assert torch.equal(reference_topk.ids, expected.indices[:, :6])
    shuffled = list(range(40))
    random.Random(0).shuffle(shuffled)
    for order, size in ((shuffled, 1), (shuffled, 7), (list(reversed(range(40))), 13)):
        topk, sketch = run(order, size)
        assert torch.equal(topk.ids, reference_topk.ids)
        assert torch.equal(topk.values, reference_topk.values)
        assert torch.equal(topk.maps, reference_topk.maps)
        assert sketch.base == reference_sketch.base and torch.equal(sketch.counts, reference_sketch.counts)
    positions = values.transpose(0, 1).reshape(3, -1)
    for q in (0.0, 0.5, 0.99, 1.0):
        exact = torch.quantile(positions, q, dim=1)
        torch.testing.assert_close(reference_sketch.quantile(q), exact, rtol=2**-9, atol=0)
