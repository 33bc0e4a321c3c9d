"""The neuron handles on a wrapped model: identity, ablation, caching, registry, attach."""

from __future__ import annotations

import pytest
import torch
import torchvision
from helpers_models import EvidenceDescriber, random_image_source

import milan_plugin
from milan_plugin.descriptions import Description
from milan_plugin.errors import InvalidInputError

LAYER = "layer4"


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def images():
    return random_image_source(size=64, count=32, seed=1)


def wrapped(model, source, **options):
    options.setdefault("describer", EvidenceDescriber())
    return milan_plugin.wrap(model, source=source, progress=False, batch_size=16, **options)


def test_wrapped_model_outputs_equal_the_unwrapped_model(resnet, images):
    inputs = images.load(range(4)).inputs
    expected = resnet(inputs)
    model = wrapped(resnet, images)
    assert torch.equal(model(inputs), expected)
    with model.trace(inputs):
        traced = model.output.save()
    assert torch.equal(traced, expected)
    assert torch.equal(resnet(inputs), expected)


def channel_zeroing_hook(unit):
    def hook(module, args, output):
        keep = torch.ones(output.shape[1])
        keep[unit] = 0
        return output * keep.view(1, -1, 1, 1)

    return hook


def test_ablation_through_a_neuron_equals_zeroing_the_channel_with_a_forward_hook(resnet, images):
    inputs = images.load(range(4)).inputs
    handle = resnet.layer4.register_forward_hook(channel_zeroing_hook(12))
    try:
        expected = resnet(inputs)
    finally:
        handle.remove()
    model = wrapped(resnet, images)
    with model.trace(inputs):
        model.layer4.neurons[12].ablate()
        ablated = model.output.save()
    with model.trace(inputs):
        model.layer4.neurons[12].output = 0
        assigned = model.output.save()
    with model.trace(inputs):
        unit_map = model.layer4.neurons[12].output.save()
        clean = model.output.save()
    assert torch.allclose(ablated, expected, atol=1e-6)
    assert torch.allclose(assigned, expected, atol=1e-6)
    assert not torch.allclose(clean, expected, atol=1e-6)
    assert unit_map.shape == (4, 2, 2)


def test_neurons_behave_like_a_sequence(resnet, images):
    neurons = wrapped(resnet, images).layer4.neurons
    assert len(neurons) == 512
    assert [neuron.unit for neuron in neurons[3:6]] == [3, 4, 5]
    assert neurons[-1].unit == 511
    assert sum(1 for _ in neurons) == 512
    with pytest.raises(IndexError, match="512 units"):
        neurons[512]


def test_describe_computes_the_whole_layer_once_and_recomputes_after_a_weight_change(
    resnet, images, monkeypatch, tmp_path
):
    from milan_plugin.exemplars import engine

    computed = []
    original = engine.compute_exemplars

    def counting(*args, **kwargs):
        computed.append(kwargs.get("units"))
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "compute_exemplars", counting)
    model = wrapped(torchvision.models.resnet18(num_classes=10).eval(), images)
    first = model.layer4.neurons[5].describe()
    again = model.layer4.neurons[6].describe()
    assert computed == [None]
    assert model.milan_store.exemplars(LAYER).units.tolist() == list(range(512))
    assert first.unit == 5 and again.unit == 6
    assert model.layer4.neurons[5].describe().to_record() == first.to_record()
    assert len(computed) == 1

    with torch.no_grad():
        model.layer4[1].bn2.bias[5] += 10.0
    changed = model.layer4.neurons[5].describe()
    assert len(computed) == 2
    assert changed.exemplar_settings["model_fingerprint"] != first.exemplar_settings["model_fingerprint"]
    assert changed.score > first.score


def test_disk_cache_serves_a_new_session_without_describing_again(resnet, images, tmp_path):
    describer = EvidenceDescriber()
    first = wrapped(resnet, images, describer=describer, cache_dir=tmp_path).layer4.neurons[7].describe()
    assert describer.calls == 1
    later = EvidenceDescriber()
    second = wrapped(resnet, images, describer=later, cache_dir=tmp_path).layer4.neurons[7].describe()
    assert later.calls == 0
    assert second.to_record() == first.to_record()
    assert not list(tmp_path.rglob("*.partial"))


def test_describe_uses_a_registered_annotation_set_for_this_exact_model(
    resnet, images, tmp_path, fresh_plugin_manager
):
    from milan_plugin.hub import write_annotation_set

    from milan_plugin import plugins
    from milan_plugin.hookspecs import hookimpl
    from milan_plugin.protocols import RegistryEntry

    model = wrapped(resnet, None)
    fingerprint = model.milan_store.model_fingerprint()
    published = [
        Description(layer=LAYER, unit=unit, text=f"published unit {unit}", score=1.0, describer="milan:base")
        for unit in range(4)
    ]
    folder = write_annotation_set(
        published, tmp_path / "set", model="resnet18", model_fingerprint=fingerprint
    )

    class LocalRegistry:
        @hookimpl
        def milan_annotation_sets(self):
            entry = RegistryEntry(
                name="local/resnet18",
                kind="annotation-set",
                repo_id=str(folder),
                model_fingerprint=fingerprint,
                layers=(LAYER,),
            )
            return [entry]

    plugins.register(LocalRegistry(), name="local-registry")
    assert model.layer4.neurons[2].describe().text == "published unit 2"

    other = wrapped(torchvision.models.resnet18(num_classes=10).eval(), None)
    with pytest.raises(InvalidInputError, match="no exemplar source"):
        other.layer4.neurons[2].describe()


def test_attach_equips_a_model_the_user_already_wrapped(resnet, images):
    from nnsight import NNsight

    model = milan_plugin.attach(NNsight(resnet), source=images, describer=EvidenceDescriber(), progress=False)
    inputs = images.load(range(2)).inputs
    with model.trace(inputs):
        model.layer4.neurons[1].ablate()
        pooled = model.avgpool.output.save()
    assert torch.all(pooled[:, 1] == 0)
    assert model.layer4.neurons[1].describe().describer == "test:evidence"


def test_layer_table_and_exemplars(resnet, images):
    model = wrapped(resnet, images)
    table = model.layer4.neurons.describe(units=[0, 1, 2])
    assert table["unit"] == [0, 1, 2]
    assert all(text.startswith("tensor-") for text in table["description"])
    exemplars = model.layer4.neurons[1].exemplars(size=32)
    assert exemplars.images.shape == (15, 3, 32, 32) and exemplars.masks.shape == (15, 32, 32)
    assert exemplars.activations[0] >= exemplars.activations[-1]
    assert exemplars._repr_png_().startswith(b"\x89PNG")
    description = model.layer4.neurons[1].describe()
    assert "layer4[1]" in repr(description)
    assert description._repr_html_().count("<img") == 1


def test_only_modules_have_neurons_and_bad_settings_are_refused(resnet, images):
    model = wrapped(resnet, images)
    with pytest.raises(AttributeError, match="neurons"):
        _ = model.neurons
    with pytest.raises(InvalidInputError, match="quantile"):
        milan_plugin.wrap(resnet, source=images, quantile=1.5)
    with pytest.raises(InvalidInputError, match="attach"):
        milan_plugin.attach(resnet)
