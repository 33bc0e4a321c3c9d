"""Tokens and ids for descriptions, shared by the captioner and the language model.

MILAN tokenises with spaCy's English tokenizer, lowercased, with stop words and punctuation kept
and nothing lemmatised. spaCy is not a dependency here: for the short, plain descriptions MILAN
works with, a regex that splits words, numbers, clitics and single punctuation marks (hyphens
included, as spaCy's infix rules do) gives the same tokens. The vocabulary is every training
token in frequency order with no rare-word cutoff, followed by the four specials, so that ids
match the released checkpoints' layout (``<start>`` = V, ``<stop>`` = V+1, ``<pad>`` = V+2,
``<unk>`` = V+3).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from milan_plugin.errors import InvalidInputError

START, STOP, PAD, UNK = "<start>", "<stop>", "<pad>", "<unk>"
SPECIALS: tuple[str, ...] = (START, STOP, PAD, UNK)

_TOKEN = re.compile(
    r"[a-z0-9]+(?=n't\b)"  # "don't" -> "do", "n't"
    r"|n't\b"
    r"|'[a-z]+\b"  # clitics: "'s", "'re"
    r"|\d+(?:[.,]\d+)+"  # numbers keep their inner punctuation
    r"|[a-z0-9]+"
    r"|[^\sa-z0-9]"  # any other mark is a token of its own
)
_SPACE_BEFORE = re.compile(r" ([.,;:!?])")
_HYPHEN = re.compile(r" ?- ?")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")


def tokenize(text: str) -> list[str]:
    """Lowercased tokens of ``text``, punctuation and stop words kept.

    Typographic apostrophes count as straight ones, so "don’t" splits like "don't".
    """
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def detokenize(tokens: Sequence[str]) -> str:
    """Readable text from tokens: tight punctuation, glued hyphens, capitalised sentences."""
    text = " ".join(token for token in tokens if token not in SPECIALS)
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _HYPHEN.sub("-", text)
    return _SENTENCE_START.sub(lambda match: match.group(1) + match.group(2).upper(), text)


class Vocabulary:
    """Words in frequency order followed by ``<start> <stop> <pad> <unk>``."""

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        clashes = sorted(set(words) & set(SPECIALS))
        if clashes or len(set(words)) != len(words):
            raise InvalidInputError(
                f"vocabulary words must be unique and must not include the specials {SPECIALS}; "
                f"got duplicates or specials {clashes or 'duplicated words'}"
            )
        self.words: list[str] = words
        self.tokens: list[str] = [*words, *SPECIALS]
        self.ids: dict[str, int] = {token: index for index, token in enumerate(self.tokens)}
        self.start_index = len(words)
        self.stop_index = len(words) + 1
        self.pad_index = len(words) + 2
        self.unk_index = len(words) + 3

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocabulary:
        """Every token of ``texts``, most frequent first (ties keep first-seen order)."""
        counts = Counter(token for text in texts for token in tokenize(text))
        return cls([token for token, _ in counts.most_common()])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __repr__(self) -> str:
        shown = ", ".join(self.words[:8])
        return f"Vocabulary({len(self.words)} words: {shown}{', ...' if len(self.words) > 8 else ''})"

    def encode(self, text: str, *, start: bool = False, stop: bool = True) -> list[int]:
        """Token ids of ``text``; unknown words map to ``<unk>``."""
        ids = [self.ids.get(token, self.unk_index) for token in tokenize(text)]
        return ([self.start_index] if start else []) + ids + ([self.stop_index] if stop else [])

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, cut at the first ``<stop>``, specials dropped."""
        tokens = []
        for index in ids:
            index = int(index)
            if index == self.stop_index:
                break
            tokens.append(self.tokens[index])
        return detokenize(tokens)

    def to_json(self) -> dict[str, object]:
        return {"words": self.words, "specials": list(SPECIALS)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Vocabulary:
        specials = tuple(data.get("specials", SPECIALS))  # type: ignore[arg-type]
        if specials != SPECIALS:
            raise InvalidInputError(f"vocabulary file has specials {specials}; expected {SPECIALS}")
        return cls(list(data["words"]))  # type: ignore[arg-type]

    def save(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        temporary = path.with_name(path.name + ".partial")
        temporary.write_text(json.dumps(self.to_json(), ensure_ascii=False))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        return cls.from_json(json.loads(Path(path).read_text()))
