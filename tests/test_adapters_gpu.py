"""The adapters and sources on a CUDA model: inputs follow the model, nothing is moved back silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_model_with_cpu_inputs_matches_cpu_model() -> None:
    import torchvision

    from milan_plugin.plugins import get_adapter

    torch.manual_seed(0)
    cpu_model = torchvision.models.resnet18().eval()
    gpu_model = torchvision.models.resnet18().eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.cuda()
    gpu = get_adapter(gpu_model)
    assert gpu.device.type == "cuda"
    assert gpu.fingerprint() == get_adapter(cpu_model).fingerprint()
    x = torch.randn(2, 3, 64, 64)
    on_gpu = gpu.run(x, ["conv1", "layer3"])
    on_cpu = get_adapter(cpu_model).run(x, ["conv1", "layer3"])
    for layer in on_cpu:
        assert on_gpu[layer].device.type == "cuda"
        torch.testing.assert_close(on_gpu[layer].cpu(), on_cpu[layer], atol=2e-2, rtol=2e-2)
    with gpu.ablate("layer3", [0, 5]):
        ablated = gpu.run(x, ["layer3"])["layer3"]
    assert torch.all(ablated[:, [0, 5]] == 0)


def test_cuda_vit_planted_patch_and_generator_render() -> None:
    from milan_plugin.adapters.generative import GenerativeAdapter
    from torchvision.models import VisionTransformer

    from milan_plugin.plugins import get_adapter

    model = VisionTransformer(
        image_size=64, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    adapter = get_adapter(model.eval().cuda())
    layer = "blocks.0.mlp.fc1"
    fc1 = adapter.module(layer)
    with torch.no_grad():
        fc1.weight.zero_()
        fc1.bias.zero_()
        fc1.weight[3] = 1.0 / fc1.in_features

    def plant(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        tokens = torch.zeros_like(args[0])
        tokens[:, 0] = 7.0
        tokens[:, 1 + 2 * 4 + 1] = 1.0
        return (tokens,)

    handle = fc1.register_forward_pre_hook(plant)
    try:
        grid = adapter.run(torch.randn(1, 3, 64, 64), [layer])[layer][0, 3].cpu()
    finally:
        handle.remove()
    expected = torch.zeros(4, 4)
    expected[2, 1] = 1.0
    torch.testing.assert_close(grid, expected)

    generator = torch.nn.Sequential(
        torch.nn.Linear(8, 3 * 4 * 4), torch.nn.Unflatten(1, (3, 4, 4)), torch.nn.Tanh()
    )
    images = GenerativeAdapter(generator.cuda()).render(torch.randn(2, 8))
    assert images.dtype == torch.uint8 and images.device.type == "cpu" and images.shape == (2, 3, 4, 4)


def test_folder_source_through_engine_on_cuda(tmp_path: Path) -> None:
    import torchvision

    from milan_plugin import compute_exemplars
    from milan_plugin.plugins import get_adapter, open_source

    generator = torch.Generator().manual_seed(0)
    for number in range(12):
        pixels = torch.randint(0, 256, (40, 48, 3), dtype=torch.uint8, generator=generator)
        Image.fromarray(pixels.numpy()).save(tmp_path / f"image-{number:02d}.png")
    source = open_source(f"folder:{tmp_path}", image_size=64)
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2().eval().cuda()
    sets = compute_exemplars(model, ["features.6"], source, k=3, batch_size=5, progress=False, device="cuda")
    exemplars = sets["features.6"]
    unit = 4
    ids = exemplars.ids[exemplars.row(unit)].tolist()
    recomputed = get_adapter(model).run(source.load(ids).inputs, ["features.6"])["features.6"][:, unit]
    torch.testing.assert_close(
        recomputed.amax(dim=(1, 2)).cpu(), exemplars.activations[exemplars.row(unit)].cpu()
    )
    assert exemplars.images(unit, size=64).shape == (3, 3, 64, 64)


def test_engine_on_cuda_gives_a_cpu_model_back_on_the_cpu(tmp_path: Path) -> None:
    import torchvision

    from milan_plugin import compute_exemplars
    from milan_plugin.plugins import open_source

    for number in range(4):
        Image.fromarray(torch.full((32, 32, 3), number * 60, dtype=torch.uint8).numpy()).save(
            tmp_path / f"image-{number}.png"
        )
    model = torchvision.models.mobilenet_v2().eval()
    compute_exemplars(
        model,
        ["features.3"],
        open_source(f"folder:{tmp_path}", image_size=32),
        k=2,
        progress=False,
        device="cuda",
    )
    assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}
