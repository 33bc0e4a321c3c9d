"""How the synthetic world is talked about: reference descriptions and the lexicon that reads them back.

Each planted unit gets three references in varied wording, the way three annotators would write
them. The same lexicon maps any description (a describer's output included) back to world
concepts, a relation and a negation, which is what the benchmark's *exact concept match* compares
(see :func:`exact_match` and docs/synth.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from milan_plugin.synth.concepts import RELATIONS
from milan_plugin.synth.logic import Literal, LogicalForm

# shape: (singular, plural, adjective, extra synonyms read back but not generated)
SHAPE_WORDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "circle": ("circle", "circles", "round", ("circular", "disc", "discs", "disk", "disks")),
    "square": ("square", "squares", "square", ("squarish", "box", "boxes")),
    "triangle": ("triangle", "triangles", "triangular", ()),
    "star": ("star", "stars", "star-shaped", ()),
    "diamond": ("diamond", "diamonds", "diamond-shaped", ("rhombus", "rhombuses", "lozenge", "lozenges")),
    "hexagon": ("hexagon", "hexagons", "hexagonal", ()),
    "cross": ("cross", "crosses", "cross-shaped", ("plus sign", "plus signs")),
    "ring": ("ring", "rings", "ring-shaped", ("donut", "donuts", "hoop", "hoops", "annulus")),
    "heart": ("heart", "hearts", "heart-shaped", ()),
    "crescent": ("crescent", "crescents", "crescent-shaped", ("crescent moon", "crescent moons")),
    "arrow": ("arrow", "arrows", "arrow-shaped", ()),
    "pentagon": ("pentagon", "pentagons", "pentagonal", ()),
}
# texture: (noun phrase, adjective, extra synonyms)
TEXTURE_WORDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "stripes": ("stripes", "striped", ("stripe", "stripy", "banded")),
    "dots": ("dots", "dotted", ("polka dots", "dot", "spotted", "spots")),
    "checks": ("checks", "checkered", ("checkerboard", "checked", "chequered")),
    "waves": ("wavy lines", "wavy", ("waves", "wave", "squiggly")),
    "zigzag": ("zigzags", "zigzag", ("zig zag", "zig zags", "chevrons", "chevron")),
    "grid": ("grid lines", "grid-patterned", ("grid", "grids", "lattice", "mesh")),
    "speckles": ("speckles", "speckled", ("speckle", "grainy", "flecked")),
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("reddish", "crimson", "scarlet"),
    "orange": ("orangey",),
    "yellow": ("yellowish",),
    "green": ("greenish",),
    "blue": ("bluish",),
    "purple": ("violet", "purplish"),
    "pink": ("pinkish",),
    "brown": ("brownish",),
    "black": (),
    "white": (),
    "gray": ("grey", "grayish", "greyish"),
    "cyan": ("turquoise", "aqua"),
}
TEXT_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (generated plural phrases, extra synonyms)
    "letter": (
        ("letters", "single letters", "capital letters"),
        ("letter", "characters", "alphabet letters"),
    ),
    "word": (("words", "written words", "short words"), ("word", "printed words")),
    "text": (("text", "writing", "lettering"), ("texts", "script", "inscriptions")),
}
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "next_to": ("next to", "beside", "adjacent to", "alongside", "adjacent", "near", "besides"),
    "above": ("above", "over", "higher than"),
    "inside": ("inside", "within", "enclosed in", "enclosed by", "surrounded by", "inside of"),
    "on": ("on", "on top of", "resting on", "atop", "upon", "sitting on"),
}
NEGATION_WORDS: tuple[str, ...] = ("not", "non", "except", "other than", "without", "but", "excluding", "no")


def _build_lexicon() -> dict[tuple[str, ...], tuple[str, str]]:
    lexicon: dict[tuple[str, ...], tuple[str, str]] = {}

    def add(phrase: str, entry: tuple[str, str]) -> None:
        lexicon[tuple(re.findall(r"[a-z]+", phrase))] = entry

    for shape, (singular, plural, adjective, extra) in SHAPE_WORDS.items():
        for phrase in (singular, plural, adjective, *extra):
            add(phrase, ("concept", f"shape:{shape}"))
    for texture, (noun, adjective, extra) in TEXTURE_WORDS.items():
        for phrase in (noun, adjective, *extra):
            add(phrase, ("concept", f"texture:{texture}"))
    for colour, extra in COLOUR_WORDS.items():
        for phrase in (colour, *extra):
            add(phrase, ("concept", f"colour:{colour}"))
    for name, (phrases, extra) in TEXT_WORDS.items():
        family = "any_text" if name == "text" else "text"
        for phrase in (*phrases, *extra):
            add(phrase, ("concept", f"{family}:{name}"))
    for relation, phrases in RELATION_WORDS.items():
        for phrase in phrases:
            add(phrase, ("relation", relation))
    for phrase in NEGATION_WORDS:
        add(phrase, ("negation", phrase))
    return lexicon


LEXICON = _build_lexicon()
_LONGEST = max(len(phrase) for phrase in LEXICON)


@dataclass(frozen=True)
class ParsedDescription:
    """What the lexicon finds in a description.

    ``subject``/``partner`` split the concepts at the first relation word; ``negated`` holds the
    first concept after the first negation word ("non-red circles" negates red only).
    """

    concepts: frozenset[str]
    relation: str | None
    negated: frozenset[str]
    subject: frozenset[str]
    partner: frozenset[str]


def parse_description(text: str) -> ParsedDescription:
    """Map a description to world concepts (``shape:circle``, ``colour:red``...), relation and negation."""
    tokens = re.findall(r"[a-z]+", text.lower())
    found: list[tuple[int, str, str]] = []
    position = 0
    while position < len(tokens):
        for length in range(min(_LONGEST, len(tokens) - position), 0, -1):
            entry = LEXICON.get(tuple(tokens[position : position + length]))
            if entry is not None:
                found.append((position, *entry))
                position += length
                break
        else:
            position += 1
    concepts = [(where, value) for where, kind, value in found if kind == "concept"]
    relations = [(where, value) for where, kind, value in found if kind == "relation"]
    negations = [where for where, kind, _ in found if kind == "negation"]
    relation_at = relations[0][0] if relations else None
    negation_at = negations[0] if negations else None
    return ParsedDescription(
        concepts=frozenset(value for _, value in concepts),
        relation=relations[0][1] if relations else None,
        negated=frozenset(
            [value for where, value in concepts if negation_at is not None and where > negation_at][:1]
        ),
        subject=frozenset(value for where, value in concepts if relation_at is None or where < relation_at),
        partner=frozenset(
            value for where, value in concepts if relation_at is not None and where > relation_at
        ),
    )


def exact_match(text: str, form: LogicalForm) -> bool:
    """Whether ``text`` names exactly the concepts and logic of ``form``.

    The concept set found by the lexicon must equal the form's literals; a relation form also
    needs the same relation word, its subject before it and its partner after it; an ``and_not``
    form needs a negation word with the excluded concept after it; other forms must have neither
    relation nor negation. ``and`` and ``or`` are told apart by their concepts alone (the world
    only plants disjunctions within one family, where a conjunction could never fire).
    """
    parsed = parse_description(text)
    expected = frozenset(str(literal) for literal in form.literals)
    if parsed.concepts != expected:
        return False
    if form.operator in RELATIONS:
        return (
            parsed.relation == form.operator
            and parsed.subject == {str(form.first)}
            and parsed.partner == {str(form.second)}
        )
    if parsed.relation is not None:
        return False
    if form.operator == "and_not":
        return parsed.negated == {str(form.second)}
    return not parsed.negated


def _noun(literal: Literal, rng: np.random.Generator, singular: bool = False) -> str:
    """A noun phrase for a literal standing alone ("circles", "red things", "text")."""
    if literal.family == "shape":
        singular_word, plural, _, _ = SHAPE_WORDS[literal.name]
        return f"a {singular_word}" if singular else plural
    if literal.family == "colour":
        return f"{literal.name} {_pick(rng, ('things', 'objects', 'shapes'))}"
    if literal.family == "texture":
        return TEXTURE_WORDS[literal.name][0]
    name = "text" if literal.family == "any_text" else literal.name
    return _pick(rng, TEXT_WORDS[name][0])


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _templates(form: LogicalForm, rng: np.random.Generator) -> list[str]:
    first, second = form.first, form.second
    if form.operator == "concept":
        if first.family == "colour":
            c = first.name
            return [
                c,
                f"{c} objects",
                f"things that are {c}",
                f"the color {c}",
                f"{c} regions",
                f"{c} colored areas",
            ]
        if first.family == "shape":
            sg, pl, adj, _ = SHAPE_WORDS[first.name]
            return [pl, f"{adj} shapes", f"{pl} of any color", f"{sg} shapes", f"objects shaped like a {sg}"]
        if first.family == "texture":
            noun, adj, _ = TEXTURE_WORDS[first.name]
            return [f"{adj} patterns", noun, f"{adj} objects", f"things with {noun}", f"a {adj} texture"]
        name = "text" if first.family == "any_text" else first.name
        return [*TEXT_WORDS[name][0], f"some {TEXT_WORDS[name][0][0]}"]
    if form.operator == "and":
        families = (first.family, second.family)
        if families == ("colour", "shape"):
            sg, pl, adj, _ = SHAPE_WORDS[second.name]
            c = first.name
            return [f"{c} {pl}", f"{pl} that are {c}", f"{c} {adj} objects", f"{c} {sg} shapes"]
        if families == ("colour", "texture"):
            noun, adj, _ = TEXTURE_WORDS[second.name]
            c = first.name
            return [
                f"{c} {adj} objects",
                f"{adj} {c} shapes",
                f"{c} things with {noun}",
                f"{c} shapes covered in {noun}",
            ]
        if families == ("texture", "shape"):
            noun, adj, _ = TEXTURE_WORDS[first.name]
            _, pl, _, _ = SHAPE_WORDS[second.name]
            return [
                f"{adj} {pl}",
                f"{pl} with {noun}",
                f"{pl} covered in {noun}",
                f"{pl} with a {adj} pattern",
            ]
        c = first.name
        text = _noun(second, rng)
        return [f"{c} {text}", f"{text} in {c}", f"{text} colored {c}", f"{text} that is {c}"]
    if form.operator == "or":
        a, b = _noun(first, rng), _noun(second, rng)
        return [f"{a} or {b}", f"either {a} or {b}", f"{a} and {b}", f"{b} or {a}"]
    if form.operator == "and_not":
        if (first.family, second.family) == ("shape", "colour"):
            _, pl, _, _ = SHAPE_WORDS[first.name]
            c = second.name
            return [
                f"{pl} that are not {c}",
                f"non-{c} {pl}",
                f"{pl} except {c} ones",
                f"{pl} of any color but not {c}",
            ]
        if (first.family, second.family) == ("colour", "shape"):
            _, pl, _, _ = SHAPE_WORDS[second.name]
            c = first.name
            return [
                f"{c} things that are not {pl}",
                f"{c} objects except {pl}",
                f"{c} shapes other than {pl}",
            ]
        if (first.family, second.family) == ("shape", "texture"):
            _, pl, _, _ = SHAPE_WORDS[first.name]
            noun, adj, _ = TEXTURE_WORDS[second.name]
            return [f"{pl} without {noun}", f"{pl} that are not {adj}", f"plain {pl} but not {adj} ones"]
        text = _noun(first, rng)
        c = second.name
        return [f"{text} that is not {c}", f"non-{c} {text}", f"{text} in any color except {c}"]
    subject = _noun(first, rng)
    partner = _noun(second, rng, singular=bool(rng.integers(2)))
    phrases = RELATION_WORDS[form.operator][:3]
    return [f"{subject} {phrase} {partner}" for phrase in phrases]


def reference_descriptions(form: LogicalForm, rng: np.random.Generator, count: int = 3) -> list[str]:
    """``count`` distinct references for ``form``, worded differently, as three annotators would."""
    options = list(dict.fromkeys(_templates(form, rng)))
    order = rng.permutation(len(options))[:count]
    return [options[index] for index in order]


def canonical_description(form: LogicalForm) -> str:
    """One plain description of ``form`` (what a labeller that found this form would say)."""
    rng = np.random.default_rng(0)
    first, second = form.first, form.second
    if form.operator == "concept":
        return _templates(form, rng)[0]
    planted_orders = {
        "and": {
            ("colour", "shape"),
            ("colour", "texture"),
            ("texture", "shape"),
            ("colour", "text"),
            ("colour", "any_text"),
        },
        "and_not": {("shape", "colour"), ("colour", "shape"), ("shape", "texture"), ("any_text", "colour")},
    }
    if form.operator == "and" and (second.family, first.family) in planted_orders["and"]:
        form = LogicalForm("and", second, first)
    pair = (form.first.family, form.second.family)
    if form.operator in planted_orders and pair not in planted_orders[form.operator]:
        joiner = " and " if form.operator == "and" else " but not "
        return _noun(form.first, rng) + joiner + _noun(form.second, rng)
    return _templates(form, rng)[0]
