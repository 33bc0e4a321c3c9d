"""Training the language model p(d) and the captioner p(d|E), resumable epoch by epoch.

Both use AdamW (lr 1e-3, weight decay 1e-2). The LM trains on the training descriptions
(batch 128) with early stopping on validation NLL; the captioner on (unit, description) pairs
(batch 64) with NLL + 1.0 × the doubly-stochastic attention penalty and early stopping on
validation BLEU of greedy decoding; the captioner standardises its input features with the
training features' statistics. The best state is *deep-copied* when it is reached (the
reference kept a live ``state_dict`` and so restored the last epoch instead). After every epoch
the whole training state is written atomically, so an interrupted run resumes from the last
finished epoch.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from milan_plugin.describe.captioner import CaptionerConfig
from milan_plugin.describe.describer import MilanDescriber
from milan_plugin.describe.encoder import EncoderConfig, ExemplarEncoder
from milan_plugin.describe.language_model import LanguageModelConfig
from milan_plugin.describe.vocabulary import Vocabulary
from milan_plugin.exemplars.atomic import write_bytes
from milan_plugin.fingerprint import digest_json, digest_state_dict

STATE_FILE = "training-state.pt"
LOG_FILE = "training-log.json"


@dataclass
class TrainingConfig:
    """Everything a run depends on; the defaults are the paper's (the demo uses smaller sizes)."""

    encoder: str = "resnet101"
    encoder_weights: str | None = "IMAGENET1K_V1"
    embedding_size: int = 128
    hidden_size: int = 512
    attention_hidden_size: int | None = None
    dropout: float = 0.5
    lm_embedding_size: int = 128
    lm_hidden_size: int = 512
    lm_layers: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    lm_batch_size: int = 128
    max_epochs: int = 100
    lm_max_epochs: int = 100
    patience: int = 4
    lm_patience: int = 4
    attention_penalty: float = 1.0
    hold_out: float = 0.1
    seed: int = 0
    name: str = "milan"


@dataclass
class EarlyStopping:
    """Tracks the best metric and keeps a deep copy of the state that reached it."""

    patience: int
    higher_is_better: bool
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def update(self, metric: float, epoch: int, model: nn.Module) -> bool:
        """Record one epoch's metric; True when training should stop (bad epochs exceed patience)."""
        improved = self.best is None or (metric > self.best if self.higher_is_better else metric < self.best)
        if improved:
            self.best, self.best_epoch, self.bad_epochs = metric, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return self.bad_epochs > self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def to_state(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "best_state"} | {"best_state": self.best_state}


def _pad(sequences: Sequence[Sequence[int]], pad_index: int) -> torch.Tensor:
    width = max(len(sequence) for sequence in sequences)
    tokens = torch.full((len(sequences), width), pad_index, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return tokens


def captioner_loss(
    describer: MilanDescriber, features: torch.Tensor, targets: torch.Tensor, attention_penalty: float
) -> torch.Tensor:
    """Token NLL (padding ignored) + ``attention_penalty`` × mean_j (1 - Σ_t α_tj)² over all forced steps."""
    vocab = describer.vocabulary
    log_probs, attentions = describer.captioner(features, targets, vocab.start_index)
    nll = F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), ignore_index=vocab.pad_index)
    penalty = ((1.0 - attentions.sum(dim=1)) ** 2).mean()
    return nll + attention_penalty * penalty


def lm_loss(describer: MilanDescriber, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token NLL of ``<start> w... `` predicting ``w... <stop>``, padding ignored."""
    vocab = describer.vocabulary
    start = torch.full((len(tokens), 1), vocab.start_index, dtype=torch.long, device=tokens.device)
    log_probs = describer.lm(torch.cat([start, tokens[:, :-1]], dim=1))
    return F.nll_loss(log_probs.flatten(0, 1), tokens.flatten(), ignore_index=vocab.pad_index)


class Trainer:
    """Trains a :class:`MilanDescriber` from encoded exemplar features and their descriptions."""

    def __init__(
        self,
        config: TrainingConfig,
        out_dir: str | os.PathLike[str],
        *,
        progress: bool = True,
        bleu: Callable[[Sequence[str], Sequence[Sequence[str]]], float] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        """``device`` runs the captioner and LM there (features stay in host memory, moved per
        batch); the saved checkpoint is the same on any device up to floating-point order."""
        self.config = config
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.bleu = bleu or _default_bleu
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def build(self, vocabulary: Vocabulary, feature_size: int) -> MilanDescriber:
        config = self.config
        torch.manual_seed(config.seed)
        return MilanDescriber(
            vocabulary,
            EncoderConfig(config.encoder, weights=config.encoder_weights),
            CaptionerConfig(
                feature_size,
                len(vocabulary),
                config.embedding_size,
                config.hidden_size,
                config.attention_hidden_size,
                config.dropout,
            ),
            LanguageModelConfig(
                len(vocabulary),
                vocabulary.pad_index,
                config.lm_embedding_size,
                config.lm_hidden_size,
                config.lm_layers,
                config.dropout,
            ),
            name=config.name,
            progress=False,
        )

    def fit(
        self,
        train_features: torch.Tensor,
        train_texts: Sequence[Sequence[str]],
        validation_features: torch.Tensor,
        validation_texts: Sequence[Sequence[str]],
    ) -> MilanDescriber:
        """Train (or resume) and save the best model to ``out_dir`` with ``save_pretrained``."""
        vocabulary = Vocabulary.build(text for texts in train_texts for text in texts)
        describer = self.build(vocabulary, int(train_features.shape[-1]))
        describer.captioner.fit_normalisation(train_features)
        describer.to(self.device)
        run_key = digest_json(
            [
                asdict(self.config),
                vocabulary.tokens,
                digest_state_dict({"train": train_features}),
                [list(texts) for texts in train_texts],
                [list(texts) for texts in validation_texts],
            ]
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = self._load_state(run_key)
        if state is not None:
            describer.load_state_dict(state["model"])
        log: dict[str, Any] = state["log"] if state else {"run": run_key, "lm": [], "captioner": []}
        lm_stopper, lm_optimizer = self._phase(describer.lm, state, "lm", self.config.lm_patience, False)
        cap_stopper, cap_optimizer = self._phase(
            describer.captioner, state, "captioner", self.config.patience, True
        )
        generator = torch.Generator().manual_seed(self.config.seed)
        if state is not None:
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
        phases = (
            ("lm", describer.lm, lm_stopper, lm_optimizer, self.config.lm_max_epochs),
            ("captioner", describer.captioner, cap_stopper, cap_optimizer, self.config.max_epochs),
        )
        for phase, module, stopper, optimizer, max_epochs in phases:
            entries = log[phase]
            done = bool(entries) and entries[-1].get("stopped", False)
            epoch = len(entries)
            while not done and epoch < max_epochs:
                if phase == "lm":
                    metric = self._lm_epoch(describer, optimizer, train_texts, validation_texts, generator)
                else:
                    metric = self._captioner_epoch(
                        describer,
                        optimizer,
                        train_features,
                        train_texts,
                        validation_features,
                        validation_texts,
                        generator,
                    )
                stop = stopper.update(metric, epoch, module)
                done = stop or epoch + 1 >= max_epochs
                entries.append(
                    {
                        "epoch": epoch,
                        "metric": metric,
                        "state_digest": digest_state_dict(module.state_dict()),
                        "best_epoch": stopper.best_epoch,
                        "stopped": done,
                    }
                )
                if done:
                    stopper.restore(module)
                    entries[-1]["restored_digest"] = digest_state_dict(module.state_dict())
                epoch += 1
                self._save_state(
                    run_key, describer, log, generator, lm_stopper, lm_optimizer, cap_stopper, cap_optimizer
                )
                if self.progress:
                    print(
                        f"{phase} epoch {epoch}: {'BLEU' if phase == 'captioner' else 'NLL'} {metric:.4f}"
                        f" (best epoch {stopper.best_epoch + 1})",
                        flush=True,
                    )
        describer.eval().to("cpu")
        describer.save_pretrained(self.out_dir)
        write_bytes(self.out_dir / LOG_FILE, json.dumps(log, indent=2).encode())
        return describer

    # -- epochs -------------------------------------------------------------------------------

    def _lm_epoch(self, describer, optimizer, train_texts, validation_texts, generator) -> float:
        from tqdm.auto import tqdm

        vocab = describer.vocabulary
        sentences = [vocab.encode(text) for texts in train_texts for text in texts]
        order = torch.randperm(len(sentences), generator=generator).tolist()
        describer.lm.train()
        batches = range(0, len(order), self.config.lm_batch_size)
        for begin in tqdm(batches, desc="train LM", leave=False, disable=not self.progress):
            tokens = _pad(
                [sentences[i] for i in order[begin : begin + self.config.lm_batch_size]], vocab.pad_index
            ).to(self.device)
            optimizer.zero_grad()
            lm_loss(describer, tokens).backward()
            optimizer.step()
        describer.lm.eval()
        validation = [vocab.encode(text) for texts in validation_texts for text in texts]
        with torch.no_grad():
            total, count = 0.0, 0
            for begin in range(0, len(validation), self.config.lm_batch_size):
                tokens = _pad(validation[begin : begin + self.config.lm_batch_size], vocab.pad_index)
                tokens = tokens.to(self.device)
                tokens_counted = int((tokens != vocab.pad_index).sum())
                total += float(lm_loss(describer, tokens)) * tokens_counted
                count += tokens_counted
        return total / max(count, 1)

    def _captioner_epoch(
        self,
        describer,
        optimizer,
        train_features,
        train_texts,
        validation_features,
        validation_texts,
        generator,
    ) -> float:
        from tqdm.auto import tqdm

        vocab = describer.vocabulary
        pairs = [(row, vocab.encode(text)) for row, texts in enumerate(train_texts) for text in texts]
        order = torch.randperm(len(pairs), generator=generator).tolist()
        describer.captioner.train()
        batches = range(0, len(order), self.config.batch_size)
        for begin in tqdm(batches, desc="train captioner", leave=False, disable=not self.progress):
            chosen = [pairs[i] for i in order[begin : begin + self.config.batch_size]]
            features = train_features[[row for row, _ in chosen]].to(self.device)
            targets = _pad([tokens for _, tokens in chosen], vocab.pad_index).to(self.device)
            optimizer.zero_grad()
            captioner_loss(describer, features, targets, self.config.attention_penalty).backward()
            optimizer.step()
        describer.captioner.eval()
        predictions = describer.describe_features(validation_features, strategy="greedy")
        return float(self.bleu(predictions, validation_texts))

    # -- state ---------------------------------------------------------------------------------

    def _phase(self, module, state, phase, patience, higher_is_better):
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        stopper = EarlyStopping(patience=patience, higher_is_better=higher_is_better)
        if state is not None:
            optimizer.load_state_dict(state[f"{phase}_optimizer"])
            for key, value in state[f"{phase}_stopper"].items():
                setattr(stopper, key, value)
        return stopper, optimizer

    def _load_state(self, run_key: str) -> dict[str, Any] | None:
        path = self.out_dir / STATE_FILE
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("run") != run_key:
            raise_stale(path)
        return state

    def _save_state(
        self, run_key, describer, log, generator, lm_stopper, lm_optimizer, cap_stopper, cap_optimizer
    ):
        state = {
            "run": run_key,
            "model": describer.state_dict(),
            "log": log,
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "lm_optimizer": lm_optimizer.state_dict(),
            "lm_stopper": lm_stopper.to_state(),
            "captioner_optimizer": cap_optimizer.state_dict(),
            "captioner_stopper": cap_stopper.to_state(),
        }
        path = self.out_dir / STATE_FILE
        temporary = path.with_name(path.name + ".partial")
        torch.save(state, temporary)
        os.replace(temporary, path)


def raise_stale(path: Path) -> None:
    from milan_plugin.errors import InvalidInputError

    raise InvalidInputError(
        f"{path} belongs to a training run with different data or settings; "
        "use a new --out folder or delete that file to start over"
    )


def _default_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 of the predictions, the early-stopping signal."""
    from milan_plugin.scoring.metrics import corpus_bleu

    return float(corpus_bleu(list(predictions), [list(texts) for texts in references])[3])


def _descriptions(rows: Any) -> list[list[str]]:
    import datasets

    column = (
        rows["descriptions"] if isinstance(rows, datasets.Dataset) else [row["descriptions"] for row in rows]
    )
    return [list(texts) for texts in column]


def train_describer(
    annotations: Any,
    out_dir: str | os.PathLike[str],
    config: TrainingConfig | None = None,
    *,
    progress: bool = True,
    feature_cache: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
) -> MilanDescriber:
    """Train captioner and LM on ``annotations`` (synth key, folder, ``datasets`` object or Hub key).

    Exemplar features are computed once per unique image and cached (in ``out_dir/features``
    unless ``feature_cache`` says otherwise); rerunning the same call resumes where it stopped.
    ``device`` (e.g. ``"cuda"``) runs the encoder backbone and the training there; the returned
    describer is on the CPU.
    """
    from milan_plugin.describe.annotation_data import encode_rows, load_annotation_splits

    config = config or TrainingConfig()
    splits = load_annotation_splits(
        annotations, hold_out=config.hold_out, seed=config.seed, progress=progress
    )
    encoder = ExemplarEncoder(EncoderConfig(config.encoder, weights=config.encoder_weights)).to(
        device or "cpu"
    )
    cache = Path(feature_cache) if feature_cache is not None else Path(out_dir) / "features"
    features = {
        split: encode_rows(splits[split], encoder, cache_dir=cache, progress=progress)
        for split in ("train", "validation")
    }
    describer = Trainer(config, out_dir, progress=progress, device=device).fit(
        features["train"],
        _descriptions(splits["train"]),
        features["validation"],
        _descriptions(splits["validation"]),
    )
    object.__setattr__(describer, "_encoder", encoder.to("cpu"))
    return describer
