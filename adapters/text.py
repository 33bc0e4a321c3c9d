"""Text exemplar sources for language-model neurons: windows of a word-level token corpus.

For a language model the "image" is a window of tokens and the "mask" marks the tokens where a
unit fires above its quantile (the engine keeps ``(B, units, T)`` maps as they are). A source
cuts a corpus into non-overlapping windows of ``window`` tokens; window ``i`` is the model input
``tokens[i*window:(i+1)*window]`` and its key says where it came from.

Specs (through the ``milan_exemplar_source`` hook):

* ``text:synthetic`` or ``text:synthetic:SEED`` — a generated corpus (Zipf-distributed common
  English words plus two-word phrases such as "ice cream"), deterministic per seed, so planted
  neurons can be tested offline. Option ``tokens`` sets its length (default 32768).
* ``text:PATH`` — a UTF-8 text file, tokenised into lowercase words and punctuation.

Options ``window`` (default 16) and ``tokens`` (synthetic corpus length) come from the options
or a ``?window=W&tokens=N`` suffix of the spec; a source's own ``spec`` always carries the
non-default ones, so it reopens identically. Token ids index the corpus vocabulary
(most frequent first), so a model for this source must take ``len(source.vocabulary)`` ids.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from milan_plugin.errors import EmptySourceError, InvalidInputError
from milan_plugin.fingerprint import digest_json, digest_state_dict
from milan_plugin.protocols import LoadedBatch

_WORD_LIST = """
the of and to in a is that for it as was with be by on not he this are or his from at which but have
an they you were her she there one all we their been has when who will more no if out so what up
said about into than them can only other new some could time these two may then do first any my now
such like our over man me even most made after also did many before must through back years where
much your way well down should because each just those people how too little state good very make
world still own see men work long get here between both life being under never day same another know
while last might us great old year off come since against go came right used take three river garden
window mountain doctor teacher kitchen bridge engine market winter summer letter silver forest
island music village castle ocean planet coffee yellow purple rabbit
"""
WORDS = _WORD_LIST.split()
PHRASES = (
    "ice cream",
    "new york",
    "red wine",
    "high school",
    "living room",
    "credit card",
    "solar panel",
    "fire truck",
    "real estate",
    "post office",
    "human rights",
    "green tea",
)
TOKEN_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
DEFAULT_WINDOW = 16
DEFAULT_SYNTHETIC_TOKENS = 32768


def tokenize(text: str) -> list[str]:
    """Lowercase words (with apostrophe suffixes) and single punctuation marks."""
    return TOKEN_PATTERN.findall(text.lower())


def synthetic_corpus(tokens: int = DEFAULT_SYNTHETIC_TOKENS, seed: int = 0) -> list[str]:
    """A deterministic word corpus of ``tokens`` tokens: sentences of Zipf-weighted common words,
    with a two-word phrase in about one slot in twelve and a single word of some phrase in another
    twelfth, so a phrase neuron has something to fire on and each of its words also occurs alone."""
    generator = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(len(WORDS))]
    phrase_words = sorted({word for phrase in PHRASES for word in phrase.split()})
    words: list[str] = []
    while len(words) < tokens:
        for _ in range(generator.randint(5, 12)):
            draw = generator.random()
            if draw < 1 / 12:
                words.extend(generator.choice(PHRASES).split())
            elif draw < 2 / 12:
                words.append(generator.choice(phrase_words))
            else:
                words.append(generator.choices(WORDS, weights=weights)[0])
        words.append(".")
    return words[:tokens]


class TextSource:
    """Non-overlapping token windows of a corpus (see the module docstring)."""

    def __init__(
        self, words: Sequence[str], *, window: int = DEFAULT_WINDOW, spec: str = "text:memory"
    ) -> None:
        if window < 1:
            raise InvalidInputError(f"window must be a positive number of tokens, got {window}")
        if len(words) < window:
            raise EmptySourceError(
                f"the corpus of {spec!r} has {len(words)} tokens, fewer than one window of {window}"
            )
        counts = Counter(words)
        self.vocabulary: list[str] = sorted(counts, key=lambda word: (-counts[word], word))
        self.index = {word: position for position, word in enumerate(self.vocabulary)}
        self.window = int(window)
        count = len(words) // self.window
        ids = torch.tensor([self.index[word] for word in words[: count * self.window]], dtype=torch.long)
        self.windows = ids.view(count, self.window)
        self.spec = spec
        self._ngram_counts: dict[int, Counter] = {}

    def __repr__(self) -> str:
        return (
            f"TextSource({self.spec!r}, windows={len(self)}, window={self.window}, "
            f"vocabulary={len(self.vocabulary)})"
        )

    def __len__(self) -> int:
        return self.windows.shape[0]

    def key(self, index: int) -> str:
        start = int(index) * self.window
        return f"tokens[{start}:{start + self.window}]"

    def fingerprint(self) -> str:
        return digest_json(
            ["text", self.window, self.vocabulary, digest_state_dict({"windows": self.windows})]
        )

    def load(self, indices: Sequence[int]) -> LoadedBatch:
        chosen = [int(index) for index in indices]
        bad = [index for index in chosen if not 0 <= index < len(self)]
        if bad:
            raise InvalidInputError(f"{self.spec!r} has {len(self)} windows; no windows {bad[:10]}")
        return LoadedBatch(inputs=self.windows[chosen].clone(), indices=chosen)

    def images(self, indices: Sequence[int], size: int = 224) -> None:
        """Text has no pictures; see :meth:`window_words`."""
        return None

    def window_tokens(self, indices: Sequence[int]) -> torch.Tensor:
        """Token ids ``(n, window)`` of windows ``indices``."""
        return self.load(indices).inputs

    def window_words(self, indices: Sequence[int]) -> list[list[str]]:
        """The words of windows ``indices``."""
        return [[self.vocabulary[token] for token in row] for row in self.window_tokens(indices).tolist()]

    def ngram_counts(self, n: int) -> Counter:
        """How often each ``n``-gram (tuple of token ids) occurs inside the windows."""
        if n not in self._ngram_counts:
            counts: Counter = Counter()
            for row in self.windows.tolist():
                counts.update(tuple(row[start : start + n]) for start in range(len(row) - n + 1))
            self._ngram_counts[n] = counts
        return self._ngram_counts[n]


def open_text_source(spec: str, options: Mapping[str, Any]) -> TextSource:
    """The source for a ``text:`` spec (see the module docstring).

    ``window`` and ``tokens`` come from ``options`` or from a ``?window=W&tokens=N`` suffix of the
    spec; the source's own spec always carries the non-default ones, so it reopens identically.
    """
    base, _, query = spec.partition("?")
    settings = {"window": DEFAULT_WINDOW, "tokens": DEFAULT_SYNTHETIC_TOKENS}
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        if name not in settings or not value.isdigit():
            raise InvalidInputError(
                f"{spec!r}: unknown or invalid option {part!r}; use window=W and tokens=N"
            )
        settings[name] = int(value)
    for name in settings:
        if name in options:
            settings[name] = int(options[name])
    return _open(base, settings["window"], settings["tokens"])


@lru_cache(maxsize=8)
def _open(base: str, window: int, tokens: int) -> TextSource:
    rest = base.removeprefix("text:")
    synthetic = rest == "synthetic" or rest.startswith("synthetic:")
    suffix = [f"window={window}"] if window != DEFAULT_WINDOW else []
    if synthetic and tokens != DEFAULT_SYNTHETIC_TOKENS:
        suffix.append(f"tokens={tokens}")
    spec = base + ("?" + "&".join(suffix) if suffix else "")
    if synthetic:
        seed_text = rest.removeprefix("synthetic").removeprefix(":") or "0"
        if not seed_text.isdigit():
            raise InvalidInputError(
                f"text:synthetic takes an integer seed (text:synthetic:SEED), got {seed_text!r}"
            )
        return TextSource(synthetic_corpus(tokens, int(seed_text)), window=window, spec=spec)
    path = Path(rest)
    if not path.is_file():
        raise InvalidInputError(
            f"{base!r}: no text file at {str(path)!r}; "
            "use text:PATH for a UTF-8 file or text:synthetic[:SEED]"
        )
    return TextSource(tokenize(path.read_text(encoding="utf-8")), window=window, spec=spec)
