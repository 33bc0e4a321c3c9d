"""Logical forms of planted units and their exact evaluation on pixels or on scene layouts.

Every pixel (or object) of the world has one attribute tuple: shape, colour, texture, text kind
and relation role (each 0 when absent). A tuple packs into one integer *code*; a scene holds only a
handful of distinct codes, so a unit's predicate is evaluated once per distinct code (a lookup
table) instead of once per pixel. That keeps thousands of planted units cheap to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from milan_plugin.synth.concepts import (
    COLOURS,
    RELATIONS,
    SHAPES,
    SYMMETRIC_RELATIONS,
    TEXT_KINDS,
    TEXTURES,
)

#: Attribute columns of a code, with how many values each takes (0 = absent).
ATTRIBUTES: tuple[tuple[str, int], ...] = (
    ("shape", len(SHAPES) + 1),
    ("colour", len(COLOURS) + 1),
    ("texture", len(TEXTURES) + 1),
    ("text", len(TEXT_KINDS) + 1),
    ("role", 2 * len(RELATIONS) + 1),
)
_NAMES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "texture": TEXTURES,
    "text": TEXT_KINDS,
}
#: Literal families: the four concept families plus "any text" (letters or words).
LITERAL_FAMILIES: tuple[str, ...] = ("shape", "colour", "texture", "text", "any_text")
OPERATORS: tuple[str, ...] = ("concept", "and", "or", "and_not", *RELATIONS)
TEXT_ANY = "text"


@dataclass(frozen=True, order=True)
class Literal:
    """One concept as an operand: ``Literal("colour", "red")``; any text: ``Literal("any_text", "text")``."""

    family: str
    name: str

    def __post_init__(self) -> None:
        if self.family == "any_text":
            if self.name != TEXT_ANY:
                raise ValueError(f"an any_text literal is named {TEXT_ANY!r}, got {self.name!r}")
        elif self.family not in _NAMES or self.name not in _NAMES[self.family]:
            raise ValueError(f"no {self.family} called {self.name!r} in the synthetic world")

    def __str__(self) -> str:
        return f"{self.family}:{self.name}"

    @property
    def value(self) -> int:
        """The attribute value this literal tests for (1-based; any_text tests 'text > 0')."""
        return 1 if self.family == "any_text" else _NAMES[self.family].index(self.name) + 1


@dataclass(frozen=True, order=True)
class LogicalForm:
    """What a planted unit fires for.

    ``operator`` is ``concept`` (``first`` alone), ``and`` / ``or`` / ``and_not`` (``first`` with
    ``second``, on the same pixels), or a relation name: ``first`` objects that stand in that
    relation to a ``second`` object (``squares next_to text``); the unit fires on ``first`` only.
    """

    operator: str
    first: Literal
    second: Literal | None = None

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown operator {self.operator!r}; known: {', '.join(OPERATORS)}")
        if (self.operator == "concept") != (self.second is None):
            raise ValueError(
                f"operator {self.operator!r} takes {'one' if self.operator == 'concept' else 'two'} literals"
            )

    def __str__(self) -> str:
        if self.second is None:
            return str(self.first)
        return f"{self.operator}({self.first}, {self.second})"

    @property
    def kind(self) -> str:
        """The benchmark's breakdown: colour, shape, texture, text, relation or composition."""
        if self.operator == "concept":
            return "text" if self.first.family == "any_text" else self.first.family
        return "relation" if self.operator in RELATIONS else "composition"

    @property
    def literals(self) -> tuple[Literal, ...]:
        return (self.first,) if self.second is None else (self.first, self.second)

    def to_dict(self) -> dict[str, str]:
        data = {"operator": self.operator, "first": str(self.first)}
        if self.second is not None:
            data["second"] = str(self.second)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> LogicalForm:
        second = data.get("second")
        return cls(
            data["operator"],
            Literal(*data["first"].split(":")),
            Literal(*second.split(":")) if second else None,
        )


def encode_codes(attributes: torch.Tensor) -> torch.Tensor:
    """Pack attribute tuples ``(..., 5)`` (int) into codes ``(...)``."""
    code = torch.zeros(attributes.shape[:-1], dtype=torch.long)
    for column, (_, size) in enumerate(ATTRIBUTES):
        code = code * size + attributes[..., column].long()
    return code


def decode_codes(codes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode_codes`: ``(n,)`` codes to ``(5, n)`` attribute rows."""
    rows = []
    rest = codes.clone()
    for _, size in reversed(ATTRIBUTES):
        rows.append(rest % size)
        rest = rest // size
    return torch.stack(rows[::-1])


@dataclass
class FormTable:
    """The logical forms of a set of units, as tensors for vectorised lookup-table evaluation."""

    first_family: torch.Tensor
    first_value: torch.Tensor
    second_family: torch.Tensor
    second_value: torch.Tensor
    operator: torch.Tensor

    @classmethod
    def from_forms(cls, forms: Sequence[LogicalForm]) -> FormTable:
        def family(literal: Literal | None) -> int:
            return LITERAL_FAMILIES.index(literal.family) if literal is not None else 0

        return cls(
            first_family=torch.tensor([family(form.first) for form in forms], dtype=torch.long),
            first_value=torch.tensor([form.first.value for form in forms], dtype=torch.long),
            second_family=torch.tensor([family(form.second) for form in forms], dtype=torch.long),
            second_value=torch.tensor([form.second.value if form.second else 0 for form in forms]),
            operator=torch.tensor([OPERATORS.index(form.operator) for form in forms], dtype=torch.long),
        )

    def lookup(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For distinct ``codes`` (n,): ``(fire_a, gate_a, fire_b, gate_b)``, each bool ``(units, n)``.

        A unit fires on a pixel of code c in an image when ``fire_a[c]`` holds and some pixel of
        the image has a code with ``gate_a``, or likewise with ``fire_b``/``gate_b`` (the
        swapped roles of a symmetric relation).
        """
        attributes = decode_codes(codes)  # (5, n)
        literal_rows = torch.cat([attributes[:4], (attributes[3:4] > 0).long()])  # + any_text
        first = literal_rows[self.first_family] == self.first_value[:, None]
        second = literal_rows[self.second_family] == self.second_value[:, None]
        role = attributes[4][None, :]
        op = self.operator[:, None]
        names = OPERATORS
        predicate = torch.where(op == names.index("and"), first & second, first)
        predicate = torch.where(op == names.index("or"), first | second, predicate)
        predicate = torch.where(op == names.index("and_not"), first & ~second, predicate)
        relation_index = (self.operator - names.index(RELATIONS[0]))[:, None]
        is_relation = relation_index >= 0
        subject_role, partner_role = 1 + 2 * relation_index, 2 + 2 * relation_index
        symmetric = torch.tensor(
            [names[o] in SYMMETRIC_RELATIONS for o in self.operator.tolist()], dtype=torch.bool
        )[:, None]
        everything = torch.ones_like(predicate)
        fire_a = torch.where(is_relation, predicate & (role == subject_role), predicate)
        gate_a = torch.where(is_relation, second & (role == partner_role), everything)
        fire_b = is_relation & symmetric & predicate & (role == partner_role)
        gate_b = is_relation & symmetric & second & (role == subject_role)
        return fire_a, gate_a, fire_b, gate_b


def image_gates(present: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Whether each image holds a gating code: ``present`` (B, n) bool, ``gate`` (U, n) -> (B, U)."""
    return (present.float() @ gate.float().T) > 0


def form_region(form: LogicalForm, codes: torch.Tensor) -> torch.Tensor:
    """Where ``form`` holds in each of ``codes`` ``(n, H, W)`` (one code map per image): bool ``(n, H, W)``.

    This is the ground truth a planted unit's masks are checked against.
    """
    codes = codes.long()
    # Distinct codes by counting (codes are small integers): much faster than torch.unique's sort.
    distinct = torch.nonzero(torch.bincount(codes.reshape(-1))).reshape(-1)
    position = torch.zeros(int(distinct[-1]) + 1, dtype=torch.long)
    position[distinct] = torch.arange(len(distinct))
    inverse = position[codes]
    fire_a, gate_a, fire_b, gate_b = FormTable.from_forms([form]).lookup(distinct)
    present = torch.zeros(codes.shape[0], len(distinct), dtype=torch.bool)
    present.scatter_(1, inverse.reshape(codes.shape[0], -1), True)
    gate_a, gate_b = image_gates(present, gate_a)[:, 0], image_gates(present, gate_b)[:, 0]
    region_a = fire_a[0][inverse] & gate_a[:, None, None]
    region_b = fire_b[0][inverse] & gate_b[:, None, None]
    return region_a | region_b
