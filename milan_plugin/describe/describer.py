"""The MILAN describer: encoder + captioner p(d|E) + language model p(d) + decoding settings.

A checkpoint is a folder in Hugging Face Hub layout: ``config.json`` (every size and setting),
``model.safetensors`` (captioner and language-model weights; the frozen encoder comes from
torchvision and is not stored) and ``vocab.json``. ``from_pretrained`` takes such a folder or
a Hub repo id (fetched with ``huggingface_hub.snapshot_download``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from milan_plugin.describe.captioner import Captioner, CaptionerConfig
from milan_plugin.describe.decoding import Hypothesis, beam_search, greedy, rerank
from milan_plugin.describe.encoder import IMAGE_SIZE, EncoderConfig, ExemplarEncoder
from milan_plugin.describe.language_model import LanguageModel, LanguageModelConfig
from milan_plugin.describe.vocabulary import Vocabulary
from milan_plugin.descriptions import Candidate, Description
from milan_plugin.errors import InvalidInputError
from milan_plugin.fingerprint import digest_state_dict

if TYPE_CHECKING:
    from milan_plugin.exemplars.exemplar_set import ExemplarSet

FORMAT = "milan-plugin/describer"
STRATEGIES = ("rerank", "beam", "greedy", "sample")
CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE = "config.json", "model.safetensors", "vocab.json"


class MilanDescriber(nn.Module):
    """Describes every unit of an :class:`ExemplarSet` the MILAN way.

    ``strategy``: ``rerank`` (the paper: beam search on p(d|E), rerank by wPMI), ``beam`` (beam
    search without the LM), ``greedy`` (the paper's "p(d|E)" baseline) or ``sample``.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        encoder_config: EncoderConfig,
        captioner_config: CaptionerConfig,
        lm_config: LanguageModelConfig,
        *,
        name: str = "milan",
        strategy: str = "rerank",
        beam_size: int = 50,
        lm_weight: float = 0.2,
        max_length: int = 15,
        batch_size: int = 16,
        num_candidates: int = 10,
        progress: bool = True,
        seed: int = 0,
        device: str | torch.device | None = None,
        encoder: ExemplarEncoder | None = None,
    ) -> None:
        super().__init__()
        if captioner_config.vocab_size != len(vocabulary) or lm_config.vocab_size != len(vocabulary):
            raise InvalidInputError(
                f"captioner ({captioner_config.vocab_size}) and language model ({lm_config.vocab_size}) "
                f"must both use the vocabulary's {len(vocabulary)} tokens"
            )
        if strategy not in STRATEGIES:
            raise InvalidInputError(f"unknown decoding strategy {strategy!r}; choose one of {STRATEGIES}")
        self.vocabulary = vocabulary
        self.encoder_config = encoder_config
        self.captioner = Captioner(captioner_config)
        self.lm = LanguageModel(lm_config)
        self.name = name
        self.strategy = strategy
        self.beam_size = beam_size
        self.lm_weight = lm_weight
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_candidates = num_candidates
        self.progress = progress
        self.seed = seed
        # The frozen backbone is built on first use and kept out of state_dict/save_pretrained.
        object.__setattr__(self, "_encoder", encoder)
        self.eval()
        if device is not None:
            self.to(device)

    @property
    def version(self) -> str:
        """A digest of the weights and vocabulary: two describers with one version decode alike."""
        return digest_state_dict({**self.state_dict(), "vocabulary": self.vocabulary.tokens})  # type: ignore[dict-item]

    @property
    def device(self) -> torch.device:
        return next(self.captioner.parameters()).device

    @property
    def encoder(self) -> ExemplarEncoder:
        if self._encoder is None:
            object.__setattr__(self, "_encoder", ExemplarEncoder(self.encoder_config))
        if self._encoder.device != self.device:
            self._encoder.to(self.device)
        return self._encoder

    def __repr__(self) -> str:
        return (
            f"MilanDescriber({self.name!r}, encoder={self.encoder_config.backbone}, "
            f"vocabulary={len(self.vocabulary.words)} words, strategy={self.strategy}, "
            f"beam={self.beam_size}, λ={self.lm_weight})"
        )

    # -- decoding -------------------------------------------------------------------------

    def decode(self, features: torch.Tensor, strategy: str | None = None) -> list[list[Hypothesis]]:
        """Ranked hypotheses per unit for exemplar features (units, k, feature_size)."""
        strategy = strategy or self.strategy
        if strategy not in STRATEGIES:
            raise InvalidInputError(f"unknown decoding strategy {strategy!r}; choose one of {STRATEGIES}")
        was_training = self.training
        self.eval()
        vocab = self.vocabulary
        features = features.to(self.device, torch.float32)
        try:
            results: list[list[Hypothesis]] = []
            generator = torch.Generator(device=self.device).manual_seed(self.seed)
            for batch in features.split(self.batch_size):
                if strategy in ("greedy", "sample"):
                    decoded = greedy(
                        self.captioner,
                        batch,
                        start_index=vocab.start_index,
                        stop_index=vocab.stop_index,
                        max_length=self.max_length,
                        generator=generator,
                        sample=strategy == "sample",
                    )
                    results.extend([hypothesis] for hypothesis in decoded)
                    continue
                beams = beam_search(
                    self.captioner,
                    batch,
                    start_index=vocab.start_index,
                    stop_index=vocab.stop_index,
                    beam_size=self.beam_size,
                    max_length=self.max_length,
                )
                if strategy == "rerank":
                    beams = rerank(
                        beams,
                        self.lm,
                        lm_weight=self.lm_weight,
                        start_index=vocab.start_index,
                        pad_index=vocab.pad_index,
                    )
                results.extend(beams)
            return results
        finally:
            self.train(was_training)

    def describe_features(self, features: torch.Tensor, strategy: str | None = None) -> list[str]:
        """The best description per unit for exemplar features (units, k, feature_size)."""
        return [self.vocabulary.decode(beam[0].tokens) for beam in self.decode(features, strategy)]

    # -- exemplar sets --------------------------------------------------------------------

    def encode_exemplars(
        self, exemplars: ExemplarSet, units: Sequence[int], once_per_image: bool = True
    ) -> torch.Tensor:
        """Encoder features (len(units), k, feature_size), each unique image through the backbone once."""
        rows = [exemplars.row(int(unit)) for unit in units]
        ids = exemplars.ids[rows]
        unique, image_index = torch.unique(ids.reshape(-1), return_inverse=True)
        images = exemplars.read_images(unique.tolist(), size=IMAGE_SIZE)
        masks = torch.cat([exemplars.masks(int(unit), size=IMAGE_SIZE) for unit in units])
        features = self.encoder.encode_shared(images, image_index, masks, once_per_image=once_per_image)
        return features.view(len(units), ids.shape[1], -1)

    def describe(
        self,
        exemplars: ExemplarSet,
        units: Sequence[int] | None = None,
        *,
        progress: bool | None = None,
        chunk_units: int = 256,
    ) -> list[Description]:
        """One :class:`Description` per unit (all units when ``None``), in the order asked."""
        from tqdm.auto import tqdm

        units = [int(unit) for unit in (exemplars.units.tolist() if units is None else units)]
        show = self.progress if progress is None else progress
        descriptions: list[Description] = []
        version = self.version
        with tqdm(total=len(units), desc=f"describe {exemplars.layer}", unit="unit", disable=not show) as bar:
            for begin in range(0, len(units), chunk_units):
                chunk = units[begin : begin + chunk_units]
                beams = self.decode(self.encode_exemplars(exemplars, chunk))
                for unit, beam in zip(chunk, beams, strict=True):
                    descriptions.append(self._description(exemplars, unit, beam, version))
                bar.update(len(chunk))
        return descriptions

    def _description(
        self, exemplars: ExemplarSet, unit: int, beam: list[Hypothesis], version: str
    ) -> Description:
        candidates = tuple(
            Candidate(
                text=self.vocabulary.decode(hypothesis.tokens),
                score=float(hypothesis.score),
                captioner_logprob=float(hypothesis.captioner_log_prob),
                lm_logprob=None if hypothesis.lm_log_prob is None else float(hypothesis.lm_log_prob),
            )
            for hypothesis in beam[: self.num_candidates]
        )
        return Description(
            layer=exemplars.layer,
            unit=unit,
            text=candidates[0].text if candidates else "",
            score=candidates[0].score if candidates else float("-inf"),
            candidates=candidates,
            describer=self.name,
            describer_version=version,
            exemplar_settings=dict(exemplars.settings),
        )

    # -- checkpoints ----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "encoder": self.encoder_config.to_json(),
            "captioner": self.captioner.config.to_json(),
            "language_model": self.lm.config.to_json(),
            "decoding": {
                "strategy": self.strategy,
                "beam_size": self.beam_size,
                "lm_weight": self.lm_weight,
                "max_length": self.max_length,
            },
        }

    def save_pretrained(self, directory: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        """Write config.json, model.safetensors, vocab.json and a model card; returns the folder.

        ``dtype=torch.float16`` halves the file; weights are cast back to float32 on loading.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            name: (tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor)
            .detach()
            .cpu()
            .contiguous()
            for name, tensor in self.state_dict().items()
        }
        with tempfile.TemporaryDirectory(dir=directory, prefix=".partial-") as staging:
            staging = Path(staging)
            save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
            self.vocabulary.save(staging / VOCAB_FILE)
            (staging / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2))
            (staging / "README.md").write_text(_model_card(self))
            for path in staging.iterdir():
                path.chmod(0o644)  # staging files may be private; a checkpoint is meant to be shared
                os.replace(path, directory / path.name)
        return directory

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike[str], *, revision: str | None = None, **options: Any
    ) -> MilanDescriber:
        """Load a folder written by :meth:`save_pretrained`, or a Hub repo id in that layout.

        ``options`` override decoding settings (``beam_size``, ``lm_weight``, ``strategy``,
        ``batch_size``, ``device``, ``progress``, ...).
        """
        from safetensors.torch import load_file

        directory = _resolve(name_or_path, revision)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise InvalidInputError(
                f"{directory} has no {CONFIG_FILE}; it is not a MILAN describer checkpoint"
            )
        config = json.loads(config_path.read_text())
        if config.get("format") != FORMAT:
            raise InvalidInputError(
                f"{config_path} is not a {FORMAT} config (format={config.get('format')!r})"
            )
        settings = {**config.get("decoding", {}), "name": options.pop("name", config.get("name", "milan"))}
        settings.update(options)
        describer = cls(
            Vocabulary.load(directory / VOCAB_FILE),
            EncoderConfig(**config["encoder"]),
            CaptionerConfig(**config["captioner"]),
            LanguageModelConfig(**config["language_model"]),
            **settings,
        )
        state = {name: tensor.float() for name, tensor in load_file(str(directory / WEIGHTS_FILE)).items()}
        describer.load_state_dict(state)
        return describer.to(settings.get("device") or "cpu")


def _resolve(name_or_path: str | os.PathLike[str], revision: str | None) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(name_or_path)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise InvalidInputError(
            f"no describer checkpoint folder at {text!r}, and it is not a Hub repo id of the form 'user/name'"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(text, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.md"])
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise InvalidInputError(
            f"could not fetch the describer {text!r} from the Hugging Face Hub "
            f"({type(error).__name__}: {error})"
        ) from error


def _model_card(describer: MilanDescriber) -> str:
    return (
        "---\nlibrary_name: milan-plugin\ntags:\n- interpretability\n- milan\nlicense: mit\n---\n"
        f"# {describer.name}\n\nA MILAN neuron describer for `milan-plugin`: captioner p(d|E) and "
        f"language model p(d) over a {len(describer.vocabulary.words)}-word vocabulary, encoder "
        f"`{describer.encoder_config.backbone}` "
        f"(torchvision weights `{describer.encoder_config.weights}`).\n\n"
        "```python\nimport milan_plugin\ndescriber = milan_plugin.load_describer(PATH_OR_REPO_ID)\n"
        "descriptions = describer.describe(exemplar_set)\n```\n"
    )
