"""Free wording for the digit world's prompts: paraphrases of a GenEval metadata dict (docs/method.md §8.8).

GenEval's captions follow one template per tag ("a photo of three 7s"); users write "three
sevens" or "a pair of sevens". A text model trained on the templates alone learns the templates.
:func:`paraphrase` words the same metadata — and so the same scorer check — in other ways,
from one of two disjoint template pools:

* ``"train"``: wordings a training scene's caption may take (``data.world_paraphrases`` is the
  share of training scenes captioned this way instead of with GenEval's template);
* ``"heldout"``: wordings no training caption uses ("a pair of sevens", "a 3 painted red"), for
  the paraphrased held-out set (:func:`softdimo.data.world.paraphrased_heldout_prompts`), which
  measures whether a teacher follows what a prompt means rather than how the templates spell it.

Templates name the objects of the caption in reading order: ``a`` (and ``ca``, its colour) is
the first object the prompt mentions, ``b`` (``cb``) the second; digits appear as numerals
(``{a}``: "7", ``{a_plural}``: "7s") or words (``{a_word}``: "seven", ``{a_word_plural}``:
"sevens"), ``_art`` adds the spoken article ("an 8", "a one"), ``{n}`` / ``{n_word}`` is a count.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..errors import DataError
from . import geneval as ge

Pool = Literal["train", "heldout"]
POOLS: tuple[str, ...] = ("train", "heldout")

TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "single_object": ("{a_art}", "the digit {a}", "{a_word_art}", "a picture of the number {a}",
                      "an image of {a_art}", "a handwritten {a_word}"),
    "two_object": ("{a_art} and {b_art}", "the digits {a} and {b}", "{a_word_art} and {b_word_art}",
                   "an image of {a_art} and {b_art}"),
    "counting": ("{n} {a_plural}", "{n_word} {a_plural}", "{n_word} {a_word_plural}",
                 "an image of {n_word} {a_plural}", "{n_word} copies of the digit {a}"),
    "colors": ("{ca_art} {a}", "the digit {a} in {ca}", "{ca_art} {a_word}", "an image of {ca_art} {a}"),
    "position": ("{a_art} {rel} {b_art}", "the digit {a} {rel} the digit {b}", "{a_word_art} {rel} {b_word_art}",
                 "an image of {a_art} {rel} {b_art}"),
    "color_attr": ("{ca_art} {a} and {cb_art} {b}", "the digit {a} in {ca} and the digit {b} in {cb}",
                   "{ca_art} {a_word} and {cb_art} {b_word}"),
}
HELDOUT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "single_object": ("a drawing of the digit {a_word}", "just one {a}", "number {a_word}"),
    "two_object": ("both {a_art} and {b_art}", "{a_word_art} together with {b_word_art}"),
    "counting": ("exactly {n_word} {a_word_plural}",),  # plus the count's own words below
    "colors": ("{a_art} painted {ca}", "{ca_art} coloured {a_word}"),
    "position": ("{a_art} placed {rel} {b_art}", "{a_word_art}, {rel} {b_word_art}"),
    "color_attr": ("{a_art} in {ca} with {b_art} in {cb}", "{a_word_art} coloured {ca} and {b_word_art} coloured {cb}"),
}
HELDOUT_COUNT_TEMPLATES: dict[int, tuple[str, ...]] = {
    2: ("a pair of {a_word_plural}", "a couple of {a_plural}"),
    3: ("a trio of {a_word_plural}", "a group of three {a_plural}"),
    4: ("a group of four {a_word_plural}", "four digits, all {a_plural}"),
}


def article(word: str) -> str:
    """Spoken English: "an 8", "an eight", "an orange", but "a one"."""
    w = word.lower()
    return "an" if w.startswith(("8", "eight")) or (w[:1] in "aeiou" and not w.startswith("one")) else "a"


def _word_plural(word: str) -> str:
    return f"{word}es" if word.endswith(("s", "x")) else f"{word}s"


def _objects(meta: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The objects in the order a caption mentions them, and the non-object fields."""
    tag, inc = meta.get("tag"), meta.get("include")
    if tag not in ge.TAGS or not isinstance(inc, list) or not inc:
        raise DataError(f"not GenEval metadata of the digit world (tag {tag!r}); the tags are {', '.join(ge.TAGS)}.")
    if tag == "position":  # "a photo of <inc[1]> <relation> <inc[0]>"
        return [inc[1], inc[0]], {"rel": inc[1]["position"][0]}
    if tag == "counting":
        return [inc[0]], {"n": str(inc[0]["count"]), "n_word": ge.NUMBER_WORDS[inc[0]["count"]]}
    return list(inc), {}


def fields(meta: dict[str, Any]) -> dict[str, str]:
    """The template fields of ``meta`` (see the module docstring)."""
    objects, out = _objects(meta)
    for key, obj in zip("ab", objects):
        digit = str(obj["class"])
        word = ge.NUMBER_WORDS[int(digit)]
        out.update({key: digit, f"{key}_art": f"{article(digit)} {digit}", f"{key}_word": word,
                    f"{key}_word_art": f"{article(word)} {word}", f"{key}_plural": f"{digit}s",
                    f"{key}_word_plural": _word_plural(word)})
        if "color" in obj:
            out.update({f"c{key}": obj["color"], f"c{key}_art": f"{article(obj['color'])} {obj['color']}"})
    return out


def templates(meta: dict[str, Any], pool: Pool) -> tuple[str, ...]:
    """The templates of ``pool`` that can word ``meta``."""
    if pool not in POOLS:
        raise DataError(f"paraphrase pool must be one of {', '.join(POOLS)}; got {pool!r}.")
    tag = meta.get("tag")
    if tag not in ge.TAGS:
        raise DataError(f"not GenEval metadata of the digit world (tag {tag!r}); the tags are {', '.join(ge.TAGS)}.")
    if pool == "train":
        return TRAIN_TEMPLATES[tag]
    extra = HELDOUT_COUNT_TEMPLATES.get(meta["include"][0]["count"], ()) if tag == "counting" else ()
    return HELDOUT_TEMPLATES[tag] + extra


def paraphrase(meta: dict[str, Any], rng: np.random.Generator, pool: Pool = "train") -> str:
    """``meta`` worded by a template of ``pool`` drawn uniformly with ``rng``."""
    options = templates(meta, pool)
    return options[int(rng.integers(len(options)))].format(**fields(meta))


__all__ = ["paraphrase", "templates", "fields", "article", "TRAIN_TEMPLATES",
           "HELDOUT_TEMPLATES", "HELDOUT_COUNT_TEMPLATES", "POOLS"]
