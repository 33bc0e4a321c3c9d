"""The CLIP-style scorer, offline, with a tiny randomly initialised CLIP saved as a local folder."""

from __future__ import annotations

import pytest
import torch

from milan_plugin.errors import InvalidInputError
from milan_plugin.scoring.clip import ClipScorer

WORDS = ["<pad>", "<bos>", "<eos>", "<unk>", "red", "blue", "dots", "stripes", "a", "dog"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 1), ("<eos>", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(WORDS),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            eos_token_id=2,
            bos_token_id=1,
            pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip")
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_clip_scorer_scores_texts_against_masked_regions(clip_folder):
    scorer = ClipScorer(clip_folder)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 96, 96), dtype=torch.uint8, generator=generator)
    left = torch.zeros(3, 96, 96, dtype=torch.bool)
    left[:, :, :48] = True
    texts = ["red dots", "blue stripes", "a dog"]
    scores = scorer.score(texts, images, left)
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    assert len(set(scores.tolist())) == 3
    assert not torch.allclose(scorer.score(texts, images, ~left), scores)  # the mask decides the region
    regions = scorer.region_embeddings(images, left)
    assert torch.allclose(regions.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_empty_mask_falls_back_to_the_whole_image(clip_folder):
    scorer = ClipScorer(clip_folder)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    empty = scorer.region_embeddings(images, torch.zeros(2, 64, 64, dtype=torch.bool))
    model = scorer._load()[0]
    pixels = images.float() / 255.0
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    with torch.no_grad():
        whole = model.visual_projection(model.vision_model(pixel_values=(pixels - mean) / std).pooler_output)
    torch.testing.assert_close(empty, torch.nn.functional.normalize(whole, dim=-1), rtol=1e-4, atol=1e-4)


def test_clip_scorer_without_a_model_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("MILAN_CLIP_MODEL", raising=False)
    with pytest.raises(InvalidInputError, match="MILAN_CLIP_MODEL"):
        ClipScorer().score(
            ["red"], torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.ones(1, 8, 8, dtype=torch.bool)
        )


def test_builtin_scorers_are_registered(fresh_plugin_manager):
    from milan_plugin.plugins import get_scorers

    scorers = get_scorers()
    assert {"wpmi", "clip"} <= set(scorers)
    assert scorers["wpmi"].name == "wpmi"
