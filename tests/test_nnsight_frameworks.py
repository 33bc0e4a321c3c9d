"""One neuron API over torchvision ResNet and ViT, a transformers ViT and a TransformerLens model.

For each: exemplars through nnsight equal plain ``compute_exemplars`` on the unwrapped model, the
describer's output is identical either way, and ablating through ``neurons[i]`` equals ablating
with the plain adapter's forward hook.
"""

from __future__ import annotations

import pytest
import torch
from helpers_models import EvidenceDescriber, random_image_source

import milan_plugin
from milan_plugin.plugins import get_adapter, get_describer, open_source

UNIT = 3


def resnet_case():
    import torchvision

    torch.manual_seed(0)
    return (
        torchvision.models.resnet18(num_classes=5).eval(),
        "layer3",
        random_image_source(64),
        EvidenceDescriber(),
    )


def torchvision_vit_case():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=5
    ).eval()
    torch.nn.init.normal_(model.heads.head.weight)  # torchvision starts the head at zero
    return model, "encoder.layers.encoder_layer_1.mlp.0", random_image_source(), EvidenceDescriber()


def transformers_vit_case():
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    return ViTModel(config).eval(), "layers.1.mlp.fc1", random_image_source(), EvidenceDescriber()


def transformer_lens_case():
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    source = open_source("text:synthetic:0", tokens=4096)
    config = TransformerBridgeConfig(
        d_model=32,
        d_head=8,
        n_layers=2,
        n_ctx=16,
        n_heads=4,
        d_vocab=len(source.vocabulary),
        d_mlp=64,
        act_fn="gelu",
        seed=0,
    )
    return TransformerBridge.boot_native(config), "blocks.1.mlp.hook_post", source, get_describer("text:wpmi")


CASES = {
    "torchvision-resnet": resnet_case,
    "torchvision-vit": torchvision_vit_case,
    "transformers-vit": transformers_vit_case,
    "transformer-lens": transformer_lens_case,
}


def main_tensor(output):
    return output if isinstance(output, torch.Tensor) else output[0]


def envoy_at(model, layer):
    envoy = model
    for part in layer.split("."):
        envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
    return envoy


@pytest.mark.parametrize("case", list(CASES))
def test_neuron_api_matches_plain_exemplars_describe_and_ablation(case):
    from milan_plugin.exemplars.engine import compute_exemplars

    network, layer, source, describer = CASES[case]()
    plain = compute_exemplars(network, [layer], source, batch_size=8, progress=False)[layer]
    expected = describer.describe(plain, [UNIT])[0]

    model = milan_plugin.wrap(network, source=source, describer=describer, batch_size=8, progress=False)
    neurons = envoy_at(model, layer).neurons
    assert neurons.name == layer
    traced = model.milan_store.exemplars(layer)
    assert torch.equal(traced.ids, plain.ids)
    assert torch.equal(traced.maps, plain.maps)
    assert torch.equal(traced.thresholds, plain.thresholds)
    assert neurons[UNIT].describe().to_record() == expected.to_record()

    inputs = source.load(range(3)).inputs
    with get_adapter(network).ablate(layer, [UNIT]):
        hooked = main_tensor(network(inputs))
    with model.trace(inputs):
        envoy_at(model, layer).neurons[UNIT].ablate()
        ablated = model.output.save()
    assert torch.allclose(main_tensor(ablated), hooked, atol=1e-5)
    assert not torch.equal(main_tensor(network(inputs)), hooked)


def test_nnsight_adapter_ablation_is_an_edit_equal_to_the_hook_ablation():
    network, layer, source, _ = resnet_case()
    model = milan_plugin.wrap(network, source=source, progress=False)
    traced, hooked = get_adapter(model), get_adapter(network)
    inputs = source.load(range(4)).inputs
    with traced.ablate("layer2", [0, 5]):
        through_edit = traced.run(inputs, [layer, "layer2"])
    with hooked.ablate("layer2", [0, 5]):
        through_hook = hooked.run(inputs, [layer, "layer2"])
    assert torch.all(through_edit["layer2"][:, [0, 5]] == 0)
    for name in (layer, "layer2"):
        assert torch.allclose(through_edit[name], through_hook[name], atol=1e-6)
    after = traced.run(inputs, ["layer2"])["layer2"]
    assert after[:, [0, 5]].abs().sum() > 0


def test_unknown_layer_lists_close_names():
    from milan_plugin.errors import UnknownLayerError

    network, _, source, _ = resnet_case()
    adapter = get_adapter(milan_plugin.wrap(network, source=source, progress=False))
    with pytest.raises(UnknownLayerError, match="layer4"):
        adapter.run(source.load([0]).inputs, ["layer44"])
