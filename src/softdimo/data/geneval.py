"""GenEval's prompt schema and rules, restated for the digit world's classes ("0" … "9").

GenEval (Ghosh et al., 2023) evaluates text-to-image models on prompts of six tags; every prompt
comes with metadata that a detector-based scorer checks. This module holds the parts the digit
world's renderer and its scorer must share, written from GenEval's published rules:

* **Metadata:** ``{"tag": ..., "include": [{"class", "count", ["color"], ["position"]}, ...],
  ["exclude": [{"class", "count"}]], "prompt": ...}``. ``include`` clauses combine with AND
  (at least ``count`` objects of ``class``, of ``color`` when given); an ``exclude`` clause fails
  the image when ``count`` or more objects of its class are found. ``position`` is
  ``[relation, group]``: every object of this clause must stand in ``relation`` to every object
  matched by the earlier include clause number ``group``.
* **Prompts** (:func:`caption`): "a photo of a 3", "a photo of a 3 and a 7", "a photo of three
  7s", "a photo of a red 5", "a photo of a 9 right of a 2", "a photo of a red 3 and a blue 7".
  GenEval picks "a"/"an" from the first letter; for digits we follow spoken English instead
  ("an 8", "an orange 5").
* **Position rule** (:func:`relative_position`): for boxes A and B (``(x0, y0, x1, y1)``, y
  downwards) take the centre offset ``o = centre(A) − centre(B)``; shrink each axis towards 0 by
  0.1·(size_A + size_B) on that axis (clamped at 0, sign kept); if both shrunk components are
  below 1e-3 no relation holds; otherwise divide the shrunk offset by the length of the *original*
  offset ``|o|`` to get (dx, dy). Then ``dx < −0.5`` is "left of", ``dx > 0.5`` "right of",
  ``dy < −0.5`` "above", ``dy > 0.5`` "below" (several may hold at once). This is the rule of
  GenEval's ``evaluate_images.py`` (its normaliser is ``|o|``, not the canvas size).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import DataError

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLOR_NAMES: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
                                "black", "white")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                 "nine", "ten")
POSITION_THRESHOLD = 0.1  # GenEval's default: offsets shrink by 0.1 × (size_a + size_b) per axis
RELATION_CUTOFF = 0.5  # |dx| or |dy| beyond this means a relation holds

Box = Sequence[float]  # (x0, y0, x1, y1); x to the right, y downwards


def position_offsets(box_a: Box, box_b: Box) -> tuple[float, float] | None:
    """GenEval's normalised, size-shrunk offset (dx, dy) of A relative to B; ``None`` if too close."""
    ax0, ay0, ax1, ay1 = (float(v) for v in box_a[:4])
    bx0, by0, bx1, by1 = (float(v) for v in box_b[:4])
    ox = (ax0 + ax1) / 2 - (bx0 + bx1) / 2
    oy = (ay0 + ay1) / 2 - (by0 + by1) / 2
    shrink_x = POSITION_THRESHOLD * (abs(ax1 - ax0) + abs(bx1 - bx0))
    shrink_y = POSITION_THRESHOLD * (abs(ay1 - ay0) + abs(by1 - by0))
    rx = math.copysign(max(abs(ox) - shrink_x, 0.0), ox)
    ry = math.copysign(max(abs(oy) - shrink_y, 0.0), oy)
    if abs(rx) < 1e-3 and abs(ry) < 1e-3:
        return None
    norm = math.hypot(ox, oy)
    return rx / norm, ry / norm


def relative_position(box_a: Box, box_b: Box) -> set[str]:
    """The set of relations ("left of", "right of", "above", "below") in which A stands to B."""
    d = position_offsets(box_a, box_b)
    if d is None:
        return set()
    dx, dy = d
    rels = set()
    if dx < -RELATION_CUTOFF:
        rels.add("left of")
    if dx > RELATION_CUTOFF:
        rels.add("right of")
    if dy < -RELATION_CUTOFF:
        rels.add("above")
    if dy > RELATION_CUTOFF:
        rels.add("below")
    return rels


def relation_holds(box_a: Box, box_b: Box, relation: str) -> bool:
    """Whether box A is ``relation`` box B under GenEval's position rule."""
    if relation not in RELATIONS:
        raise DataError(f"unknown position relation {relation!r}; GenEval's relations are "
                        f"{', '.join(repr(r) for r in RELATIONS)}.")
    return relation in relative_position(box_a, box_b)


def article(word: str) -> str:
    """``"an"`` before a vowel sound ("an 8", "an orange"), ``"a"`` otherwise."""
    return "an" if word[:1].lower() in "aeiou8" else "a"


def with_article(word: str) -> str:
    return f"{article(word)} {word}"


def plural(name: str) -> str:
    return f"{name}es" if name.endswith("s") else f"{name}s"


def caption(meta: dict[str, Any]) -> str:
    """The GenEval-style prompt of a metadata dict (its ``prompt`` key is ignored)."""
    tag, inc = meta["tag"], meta["include"]
    if tag == "single_object":
        return f"a photo of {with_article(inc[0]['class'])}"
    if tag == "two_object":
        return f"a photo of {with_article(inc[0]['class'])} and {with_article(inc[1]['class'])}"
    if tag == "counting":
        return f"a photo of {NUMBER_WORDS[inc[0]['count']]} {plural(inc[0]['class'])}"
    if tag == "colors":
        return f"a photo of {with_article(inc[0]['color'])} {inc[0]['class']}"
    if tag == "position":
        return f"a photo of {with_article(inc[1]['class'])} {inc[1]['position'][0]} {with_article(inc[0]['class'])}"
    if tag == "color_attr":
        a, b = inc
        return f"a photo of {with_article(a['color'])} {a['class']} and {with_article(b['color'])} {b['class']}"
    raise DataError(f"unknown GenEval tag {tag!r}; the tags are {', '.join(TAGS)}.")


# -- metadata builders (key order as in GenEval's evaluation_metadata.jsonl) -------------------
def _meta(tag: str, include: list[dict[str, Any]], exclude: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"tag": tag, "include": include}
    if exclude is not None:
        meta["exclude"] = exclude
    meta["prompt"] = caption(meta)
    return meta


def single_object(cls: str) -> dict[str, Any]:
    return _meta("single_object", [{"class": cls, "count": 1}])


def two_object(cls_a: str, cls_b: str) -> dict[str, Any]:
    return _meta("two_object", [{"class": cls_a, "count": 1}, {"class": cls_b, "count": 1}])


def counting(cls: str, count: int) -> dict[str, Any]:
    return _meta("counting", [{"class": cls, "count": count}], [{"class": cls, "count": count + 1}])


def colors(cls: str, color: str) -> dict[str, Any]:
    return _meta("colors", [{"class": cls, "count": 1, "color": color}])


def position(cls_a: str, relation: str, cls_b: str) -> dict[str, Any]:
    """"a photo of an ``cls_a`` ``relation`` a ``cls_b``": B is group 0, A is placed relative to it."""
    return _meta("position", [{"class": cls_b, "count": 1},
                              {"class": cls_a, "count": 1, "position": [relation, 0]}])


def color_attr(cls_a: str, color_a: str, cls_b: str, color_b: str) -> dict[str, Any]:
    return _meta("color_attr", [{"class": cls_a, "count": 1, "color": color_a},
                                {"class": cls_b, "count": 1, "color": color_b}])


def check_metadata(meta: Any) -> dict[str, Any]:
    """Validate a GenEval metadata dict over digit classes; return it unchanged or raise DataError."""
    def bad(why: str) -> DataError:
        return DataError(f"invalid GenEval metadata {meta!r}: {why}. Metadata looks like "
                         f'{{"tag": "colors", "include": [{{"class": "5", "count": 1, "color": "red"}}], '
                         f'"prompt": "a photo of a red 5"}}.')

    if not isinstance(meta, dict) or not isinstance(meta.get("include"), list) or not meta["include"]:
        raise bad("it needs a non-empty 'include' list")
    if meta.get("tag") not in TAGS:
        raise bad(f"'tag' must be one of {', '.join(TAGS)}")
    for g, req in enumerate(meta["include"]):
        if not isinstance(req, dict) or req.get("class") not in CLASSES:
            raise bad(f"include[{g}] needs a 'class' among the digits '0'…'9'")
        if not isinstance(req.get("count"), int) or req["count"] < 1:
            raise bad(f"include[{g}] needs an integer 'count' ≥ 1")
        if "color" in req and req["color"] not in COLOR_NAMES:
            raise bad(f"include[{g}] colour must be one of {', '.join(COLOR_NAMES)}")
        if "position" in req:
            pos = req["position"]
            if (not isinstance(pos, (list, tuple)) or len(pos) != 2 or pos[0] not in RELATIONS
                    or not isinstance(pos[1], int) or not 0 <= pos[1] < g):
                raise bad(f"include[{g}] position must be [relation, earlier group index] with relation in "
                          f"{', '.join(RELATIONS)}")
    for req in meta.get("exclude", []):
        if not isinstance(req, dict) or req.get("class") not in CLASSES or not isinstance(req.get("count"), int):
            raise bad("every exclude clause needs a digit 'class' and an integer 'count'")
    return meta


def interleave_tags(metadata: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``metadata`` with the tags interleaved (tags in order of first appearance, each tag's prompts
    in their order), so that every prefix covers every tag."""
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for m in metadata:
        by_tag.setdefault(m["tag"], []).append(m)
    groups = list(by_tag.values())
    return [g[i] for i in range(max((len(g) for g in groups), default=0)) for g in groups if i < len(g)]


__all__ = ["TAGS", "COLOR_NAMES", "RELATIONS", "CLASSES", "NUMBER_WORDS", "POSITION_THRESHOLD",
           "position_offsets", "relative_position", "relation_holds", "caption", "article",
           "single_object", "two_object", "counting", "colors", "position", "color_attr", "check_metadata",
           "interleave_tags"]
