"""A CLIP-style scorer: how well each text matches the *masked regions* of a unit's exemplars.

Each exemplar image goes through the CLIP vision tower once; its patch tokens are averaged with
weights from the mask (resized to the patch grid and normalised; an empty mask falls back to
the whole image's pooled token) and projected like CLIP's image embedding. A text's score is its
mean cosine similarity with the k masked-region embeddings. Any local CLIP model works; nothing
is downloaded (``local_files_only``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from milan_plugin.errors import InvalidInputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MODEL_ENVIRONMENT_VARIABLE = "MILAN_CLIP_MODEL"


class ClipScorer:
    """``model``: a local CLIP folder, a ``CLIPModel``, or a ``CLIPConfig`` (random weights, for tests).

    Without a model, ``$MILAN_CLIP_MODEL`` names the folder; it is loaded on first use.
    ``tokenizer`` defaults to the folder's tokenizer.
    """

    name = "clip"

    def __init__(
        self, model: Any = None, tokenizer: Any = None, device: str | torch.device | None = None
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.device = torch.device(device or "cpu")

    def __repr__(self) -> str:
        where = self._model if isinstance(self._model, (str, os.PathLike)) else type(self._model).__name__
        return f"ClipScorer(model={where!r})"

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

        if self._model is None:
            self._model = os.environ.get(MODEL_ENVIRONMENT_VARIABLE)
            if not self._model:
                raise InvalidInputError(
                    "the clip scorer needs a local CLIP model: ClipScorer(model=PATH) or "
                    f"${MODEL_ENVIRONMENT_VARIABLE}=PATH (a folder with config.json, weights and "
                    "tokenizer files)"
                )
        if isinstance(self._model, CLIPConfig):
            self._model = CLIPModel(self._model)
        elif isinstance(self._model, (str, os.PathLike)):
            path = os.fspath(self._model)
            if self._tokenizer is None:
                self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = CLIPModel.from_pretrained(path, local_files_only=True)
        if self._tokenizer is None:
            raise InvalidInputError("a CLIP model given as an object needs tokenizer= as well")
        self._model = self._model.to(self.device).eval()
        return self._model, self._tokenizer

    @torch.no_grad()
    def region_embeddings(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings (k, projection_dim) of the masked regions of uint8 images (k, 3, H, W)."""
        model, _ = self._load()
        if images.dim() != 4 or masks.dim() != 3 or len(images) != len(masks):
            raise InvalidInputError(
                f"expected uint8 images (k, 3, H, W) and bool masks (k, H, W); got {tuple(images.shape)} "
                f"and {tuple(masks.shape)}"
            )
        size = model.config.vision_config.image_size
        pixels = F.interpolate(
            images.to(self.device, torch.float32) / 255.0,
            size=(size, size),
            mode="bicubic",
            align_corners=False,
        ).clamp(0, 1)
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        vision = model.vision_model(pixel_values=(pixels - mean) / std)
        patches = model.vision_model.post_layernorm(vision.last_hidden_state[:, 1:])
        grid = round(patches.shape[1] ** 0.5)
        weights = F.interpolate(
            masks[:, None].to(self.device, torch.float32),
            size=(grid, grid),
            mode="bilinear",
            align_corners=False,
        ).flatten(1)
        totals = weights.sum(dim=1, keepdim=True)
        pooled = torch.einsum("kp,kpd->kd", weights / totals.clamp_min(1e-12), patches)
        pooled = torch.where(totals > 0, pooled, vision.pooler_output)
        return F.normalize(model.visual_projection(pooled), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        model, tokenizer = self._load()
        tokens = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        output = model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return F.normalize(model.text_projection(output.pooler_output), dim=-1)

    def score(self, texts: Sequence[str], images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Mean cosine similarity of each text with the k masked-region embeddings, shape (len(texts),)."""
        regions = self.region_embeddings(images, masks)
        return (self.text_embeddings(texts) @ regions.T).mean(dim=1).cpu()
