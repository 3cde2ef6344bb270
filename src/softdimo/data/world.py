"""The digit world: a text-to-image toy world of coloured MNIST digits with GenEval-style prompts.

A scene is an RGB canvas of ``world_size_px`` pixels (default 32) filled with :data:`BACKGROUND`
(mid-grey, not one of the ten colours) on which the digits named by a GenEval prompt are drawn.

Layouts (:class:`WorldLayout`, ``data.world_layout``; docs/method.md §8.7). The default, and the
world of the shipped ``*-world`` checkpoints, is the ``slots`` layout, which draws the prompts on
a grid the token grid respects:

* the canvas is cut into ``slots × slots`` square cells of ``S / slots`` pixels (default 2 × 2
  cells of 16 px on 32 px), so with a tokenizer whose patch divides the cell (4 px: 4 × 4 tokens
  per cell) every cell boundary is a token boundary;
* every digit has the same longer side, ``digit_px`` (default: the cell less :func:`gap_px` + 1,
  13 px on 32 px), and is centred in its own cell (offsets rounded down), so a digit always
  sits at the same phase of the token grid and neighbours stay at least :func:`gap_px` apart
  (``gap_px + 1`` by default);
* a scene's digits take distinct cells, drawn uniformly among the assignments that satisfy its
  position constraint *clearly* (under GenEval's rule, :func:`~softdimo.data.geneval.relation_holds`,
  the prompted relation holds with a margin, |d| > 0.65 on its axis, and the perpendicular
  relations do not, |d| < 0.35: in a 2 × 2 grid "right of" means the same row, the right
  column). A scene holds at most ``slots²`` digits.

The ``free`` layout is the world's earlier form, kept as a knob (``data.world_layout: free``); a
teacher trained on it did not follow its prompts (GenEval-like 0.055 at 16 steps with CFG 2,
docs/method.md §8.7). In it:

* a digit's longer side (nearly always its height) is a random 12–14 px on a 32 px
  canvas (scaled with the canvas: ``round(12·S/32)``–``round(14·S/32)``). That is large enough to
  stay legible and small enough that four digits fit in a 2×2 layout with gaps;
* positions are drawn uniformly and rejected until every pair of digit boxes is separated by at
  least :func:`gap_px` background pixels (2 on a 32 px canvas), so digits never touch (crowded
  four-digit scenes that fail 10 uniform layouts fall back to a jittered 2×2 grid). A position
  constraint ("a 9 right of a 2") is placed *clearly*, by the same rule as above.

Drawing a digit (both layouts, :func:`render_prompt`): it is an MNIST image cropped to its ink
bounding box and resized, keeping its aspect ratio, to its longer side; its coverage ``a`` is the
resized intensity / 255, with values below 0.1 set to 0 (so a digit has a crisp edge) and the
rest stretched so the strongest pixel has ``a = 1`` (every digit shows its exact colour
somewhere); pixel = background·(1 − a) + colour·a. Colours are the ten GenEval names of
:data:`COLORS` (clearly separated RGB values: every pair is ≥ 90 apart, every colour ≥ 100 from
the background).

Consequences a scorer may rely on (both layouts): every pixel outside the drawn digits is exactly
:data:`BACKGROUND`; every pixel of a digit differs from it (by ≥ 10 in some channel); each
object's ``bbox`` ``(x0, y0, x1, y1)`` is the tight box of its pixels with *exclusive* ends
(``x1 − x0`` is its width in pixels), y pointing down.

Scenes contain exactly the digits their prompt implies (1 for single_object/colors, 2 for
two_object/position/color_attr, the count for counting): no distractors. Attributes a prompt
does not fix (colours, except in colors/color_attr; positions, except in position) are drawn at
random. Scene ``i`` of a split is a pure function of ``(world_seed, split, i)`` and the MNIST
digits of the *same* split; tags cycle ``i % 6`` through :data:`~softdimo.data.geneval.TAGS`,
so any prefix of the dataset is balanced. Images are rendered lazily and cached in memory.

Held-out prompts (:func:`heldout_prompts`) are a fixed, committed set of 100 prompts per tag,
balanced over each tag's whole prompt space. The space is small (10 single_object prompts, 30
counting prompts, …), so held-out prompts repeat within small tags and also occur as training
captions; what is held out is the images, not the words.
"""
from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from ..config import DataConfig
from ..errors import DataError
from . import geneval as ge
from .dataset import ImageDataset, Split, check_split, index_tensor
from .geneval import relation_holds, relative_position  # re-exported: the scorer uses the same rule
from .mnist import load_mnist_arrays
from .paraphrase import POOLS, fields, paraphrase, templates

BACKGROUND: tuple[int, int, int] = (128, 128, 128)
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 130, 0),
    "yellow": (245, 235, 30),
    "green": (20, 160, 40),
    "blue": (30, 70, 230),
    "purple": (140, 30, 200),
    "pink": (255, 130, 200),
    "brown": (130, 75, 25),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
}
assert tuple(COLORS) == ge.COLOR_NAMES

DIGIT_SIZE_32 = (12, 14)  # longer side of a digit on a 32 px canvas, inclusive range
ALPHA_FLOOR = 0.1  # coverage below this is dropped (crisp digit edges)
RELATION_MARGIN = 0.15  # placed relations satisfy |d| > 0.5 + margin, perpendicular |d| < 0.5 - margin
MIN_SIZE_PX = 24
HELDOUT_SEED = 43
HELDOUT_PER_TAG = 100
HELDOUT_FILE = "world_prompts_heldout.jsonl"
PARAPHRASE_SEED = 44  # the wording draws of the paraphrased held-out set (§8.8)
PARAPHRASED_FILE = "world_prompts_paraphrased.jsonl"
_SPLIT_CODE = {"train": 0, "test": 1}
_CANDIDATES = 64  # positions drawn at once per digit
_RANDOM_TRIES = 10  # uniform layouts tried before grid layouts join in
_RESTARTS = 200  # whole-scene placement attempts before giving up


LayoutKind = Literal["free", "slots"]


# -- layout -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorldLayout:
    """Where the digits of a scene go (module docstring, "Layouts").

    Read from a :class:`~softdimo.config.DataConfig` by :func:`world_layout` (its
    ``world_layout``, ``world_slots`` and ``world_digit_px`` fields).
    """

    kind: LayoutKind = "slots"  # slots: centred in grid cells (the shipped world); free: anywhere, 12–14 px
    slots: int = 2  # cells per side of the slot grid, 2…16 (kind=slots; at most slots² digits)
    digit_px: int = 0  # longer side of every digit in pixels; 0 = the kind's default

    def __post_init__(self) -> None:
        if self.kind not in ("free", "slots"):
            raise DataError(f"data.world_layout must be 'free' or 'slots'; got {self.kind!r}.")
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or not 2 <= self.slots <= 16:
            raise DataError(f"data.world_slots must be an integer in [2, 16]; got {self.slots!r}.")
        if isinstance(self.digit_px, bool) or not isinstance(self.digit_px, int) or self.digit_px < 0:
            raise DataError(f"data.world_digit_px must be a non-negative integer (0 = the layout's default); "
                            f"got {self.digit_px!r}.")

    def check(self, size_px: int) -> None:
        """Raise :class:`DataError` when this layout cannot be drawn on a ``size_px`` canvas."""
        if self.kind == "free":
            cell = (size_px - gap_px(size_px)) // 2  # the 2×2 fallback grid must hold every digit
            if self.digit_px and not 4 <= self.digit_px <= cell:
                raise DataError(f"data.world_digit_px={self.digit_px} does not fit the free layout on a "
                                f"{size_px} px canvas: use 4…{cell} (or 0 for 12–14 px on 32 px).")
            return
        if size_px % self.slots:
            raise DataError(f"data.world_size_px={size_px} is not a multiple of data.world_slots={self.slots}: "
                            f"the slot grid cuts the canvas into equal square cells.")
        cell, gap = size_px // self.slots, gap_px(size_px)
        if self.digit_px and not 4 <= self.digit_px <= cell - gap:
            raise DataError(f"data.world_digit_px={self.digit_px} does not fit a {cell} px slot with "
                            f"{gap} px between digits: use 4…{cell - gap} (0 = {self.slot_digit_px(size_px)}).")
        if cell - gap < 4:
            raise DataError(f"a {self.slots}×{self.slots} slot grid on a {size_px} px canvas leaves {cell} px "
                            f"cells, too small for a digit; use fewer data.world_slots or a larger canvas.")

    def cell_px(self, size_px: int) -> int:
        """Side of one slot (kind=slots)."""
        return size_px // self.slots

    def slot_digit_px(self, size_px: int) -> int:
        """Longer side of every digit in the slots layout: ``digit_px``, by default the cell less
        ``gap_px + 1`` (13 px in a 16 px cell), so that digits in vertically neighbouring cells are
        ``gap_px + 1`` apart and a decoder's soft edges do not join them into one object."""
        return self.digit_px or max(4, self.cell_px(size_px) - gap_px(size_px) - 1)

    def identity(self) -> dict[str, Any]:
        """The fields that set the images, for cache keys and reference statistics: ``{}`` for the
        default layout (so the default world's caches keep short names), and every field for any
        other layout, so that caches of two layouts never share a name."""
        if self == DEFAULT_LAYOUT:
            return {}
        if self.kind == "free":  # the slot count does not change free-layout images
            return {"world_layout": self.kind, "world_digit_px": self.digit_px}
        return {"world_layout": self.kind, "world_slots": self.slots, "world_digit_px": self.digit_px}


DEFAULT_LAYOUT = WorldLayout()


def world_layout(cfg: DataConfig) -> WorldLayout:
    """The layout a data config asks for (``data.world_layout``, ``world_slots``, ``world_digit_px``);
    a config without those fields gets the default (slots) layout."""
    return WorldLayout(kind=getattr(cfg, "world_layout", DEFAULT_LAYOUT.kind),
                       slots=getattr(cfg, "world_slots", DEFAULT_LAYOUT.slots),
                       digit_px=getattr(cfg, "world_digit_px", DEFAULT_LAYOUT.digit_px))


def world_identity(cfg: DataConfig) -> dict[str, Any]:
    """What besides canvas size, seed and size tells one world from another (``{}`` for the default)."""
    return world_layout(cfg).identity()


# -- digits -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _digit_bank(split: str) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """MNIST ``split``: images, ink boxes ``[N, 4]`` (r0, r1, c0, c1; exclusive ends), indices per class."""
    images, labels = load_mnist_arrays(split)  # type: ignore[arg-type]
    ink = images > 0
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    r0 = rows.argmax(axis=1)
    r1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    c0 = cols.argmax(axis=1)
    c1 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([r0, r1, c0, c1], axis=1)
    per_class = tuple(np.flatnonzero(labels == c) for c in range(10))
    return images, boxes, per_class


def digit_size_range(size_px: int) -> tuple[int, int]:
    """Inclusive range of a digit's longer side on a canvas of ``size_px`` pixels."""
    return max(4, round(DIGIT_SIZE_32[0] * size_px / 32)), max(4, round(DIGIT_SIZE_32[1] * size_px / 32))


def gap_px(size_px: int) -> int:
    """Minimum number of background pixels between two digit boxes."""
    return max(2, round(2 * size_px / 32))


def _digit_alpha(image: np.ndarray, box: np.ndarray, longer: int) -> np.ndarray:
    """Coverage ``[h, w]`` in [0, 1] of one MNIST digit, cropped to its ink and resized."""
    r0, r1, c0, c1 = (int(v) for v in box)
    crop = image[r0:r1, c0:c1]
    h0, w0 = crop.shape
    scale = longer / max(h0, w0)
    w, h = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    small = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    peak = float(small.max())
    if peak <= 0:  # cannot happen for MNIST; keep a visible blob rather than an empty digit
        return np.ones((h, w), dtype=np.float32)
    alpha = np.clip(small / peak, 0.0, 1.0)
    alpha[alpha < ALPHA_FLOOR] = 0.0
    ys, xs = np.nonzero(alpha)
    return alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


# -- placement --------------------------------------------------------------------------------
def _clear_relation(box_a: Sequence[float], box_b: Sequence[float], relation: str) -> bool:
    """``relation`` holds for A vs B under GenEval's rule with a margin (|d| > 0.5 + margin on
    its axis, which implies :func:`relation_holds`) and the perpendicular relations do not."""
    d = ge.position_offsets(box_a, box_b)
    if d is None:
        return False
    dx, dy = d
    main, other = (dx, dy) if relation in ("left of", "right of") else (dy, dx)
    sign = -1.0 if relation in ("left of", "above") else 1.0
    return sign * main > 0.5 + RELATION_MARGIN and abs(other) < 0.5 - RELATION_MARGIN


def _random_layout(sizes: list[tuple[int, int]], constraints: list[list[tuple[int, str]]], size_px: int,
                   rng: np.random.Generator) -> list[tuple[int, int, int, int]] | None:
    """Digits placed one by one at uniformly drawn free positions; ``None`` when one finds no room."""
    gap = gap_px(size_px)
    boxes: list[tuple[int, int, int, int]] = []
    for k, (h, w) in enumerate(sizes):
        xs = rng.integers(0, size_px - w + 1, size=_CANDIDATES)
        ys = rng.integers(0, size_px - h + 1, size=_CANDIDATES)
        ok = np.ones(_CANDIDATES, dtype=bool)
        for bx0, by0, bx1, by1 in boxes:
            ok &= (xs + w + gap <= bx0) | (bx1 + gap <= xs) | (ys + h + gap <= by0) | (by1 + gap <= ys)
        for j, rel in constraints[k]:  # a related digit lies entirely on the prompted side
            bx0, by0, bx1, by1 = boxes[j]
            if rel == "left of":
                ok &= xs + w + gap <= bx0
            elif rel == "right of":
                ok &= xs >= bx1 + gap
            elif rel == "above":
                ok &= ys + h + gap <= by0
            else:
                ok &= ys >= by1 + gap
        chosen = None
        for c in np.flatnonzero(ok):
            box = (int(xs[c]), int(ys[c]), int(xs[c]) + w, int(ys[c]) + h)
            if all(_clear_relation(box, boxes[j], rel) for j, rel in constraints[k]):
                chosen = box
                break
        if chosen is None:
            return None
        boxes.append(chosen)
    return boxes


def _grid_layout(sizes: list[tuple[int, int]], constraints: list[list[tuple[int, str]]], size_px: int,
                 rng: np.random.Generator) -> list[tuple[int, int, int, int]] | None:
    """Up to four digits in distinct cells of a 2×2 grid (jittered inside their cells); ``None``
    when the constraints are not met. Cells are ``(S − gap) // 2`` wide with a gap between them,
    which :func:`digit_size_range` guarantees to hold the largest digit."""
    if len(sizes) > 4:
        return None
    gap = gap_px(size_px)
    cell = (size_px - gap) // 2
    starts = (0, size_px - cell)
    boxes = []
    for (h, w), c in zip(sizes, rng.permutation(4)[:len(sizes)]):
        if max(h, w) > cell:
            return None
        x = starts[int(c) % 2] + int(rng.integers(0, cell - w + 1))
        y = starts[int(c) // 2] + int(rng.integers(0, cell - h + 1))
        boxes.append((x, y, x + w, y + h))
    ok = all(_clear_relation(boxes[k], boxes[j], rel) for k, cons in enumerate(constraints) for j, rel in cons)
    return boxes if ok else None


def _place(sizes: list[tuple[int, int]], constraints: list[list[tuple[int, str]]], size_px: int,
           rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Boxes for digits of ``sizes`` (h, w), apart by ``gap_px``; ``constraints[k]`` lists
    (earlier digit index, relation) that digit k must clearly satisfy. Uniform placement is tried
    first; after ``_RANDOM_TRIES`` failures (crowded 4-digit scenes) random and grid layouts alternate."""
    for attempt in range(_RESTARTS):
        use_grid = attempt >= _RANDOM_TRIES and attempt % 2 == 1
        boxes = (_grid_layout if use_grid else _random_layout)(sizes, constraints, size_px, rng)
        if boxes is not None:
            return boxes
    raise DataError(f"could not place {len(sizes)} digits without overlap (and with the requested positions) "
                    f"on a {size_px}×{size_px} canvas. Ask for fewer digits or a larger data.world_size_px.")


def _slot_layout(sizes: list[tuple[int, int]], constraints: list[list[tuple[int, str]]], size_px: int,
                 layout: WorldLayout, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Digits of ``sizes`` (h, w) centred in distinct cells of the slot grid, the cells drawn
    uniformly among the assignments under which every constraint holds clearly."""
    n, cells, cell = len(sizes), layout.slots ** 2, layout.cell_px(size_px)
    if n > cells:
        raise DataError(f"a scene of {n} digits does not fit a {layout.slots}×{layout.slots} slot grid "
                        f"(at most {cells}); use a larger data.world_slots.")

    def boxes_of(assignment: Sequence[int]) -> list[tuple[int, int, int, int]]:
        out = []
        for (h, w), c in zip(sizes, assignment):
            x = (int(c) % layout.slots) * cell + (cell - w) // 2
            y = (int(c) // layout.slots) * cell + (cell - h) // 2
            out.append((x, y, x + w, y + h))
        return out

    def ok(boxes: list[tuple[int, int, int, int]]) -> bool:
        return all(_clear_relation(boxes[k], boxes[j], rel) for k, cons in enumerate(constraints) for j, rel in cons)

    if not any(constraints):
        return boxes_of(rng.permutation(cells)[:n])
    for _ in range(_RESTARTS):  # rejection: cheap for the usual grids (1/6 accepted on 2×2)
        boxes = boxes_of(rng.permutation(cells)[:n])
        if ok(boxes):
            return boxes
    if cells ** n <= 1_000_000:  # rare: enumerate every assignment and draw among those that work
        valid = [a for a in itertools.permutations(range(cells), n) if ok(boxes_of(a))]
        if valid:
            return boxes_of(valid[int(rng.integers(len(valid)))])
    raise DataError(f"no cells of the {layout.slots}×{layout.slots} slot grid place these {n} digits with "
                    f"the requested positions clearly.")


# -- rendering --------------------------------------------------------------------------------
def render_prompt(meta: dict[str, Any], rng: np.random.Generator | int, digits_split: Split = "test",
                  size_px: int = 32, layout: WorldLayout | None = None) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Draw a ground-truth scene for GenEval metadata ``meta`` (see the module docstring).

    Returns the image (uint8 ``[3, size_px, size_px]``) and its objects, one dict per drawn digit:
    ``{"class", "color", "bbox": (x0, y0, x1, y1), "group": include index, "mnist_index"}``, in the
    order of the ``include`` clauses. Exactly ``count`` digits are drawn per clause. ``layout``
    (default: :data:`DEFAULT_LAYOUT`, the slots layout) says where they go and how large they are.
    """
    ge.check_metadata(meta)
    check_split(digits_split)
    layout = layout or DEFAULT_LAYOUT
    if size_px < MIN_SIZE_PX:
        raise DataError(f"data.world_size_px must be at least {MIN_SIZE_PX} (four digits must fit); got {size_px}.")
    layout.check(size_px)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    images, ink_boxes, per_class = _digit_bank(digits_split)
    if layout.kind == "slots":
        lo = hi = layout.slot_digit_px(size_px)
    else:
        lo, hi = (layout.digit_px, layout.digit_px) if layout.digit_px else digit_size_range(size_px)

    objects: list[dict[str, Any]] = []
    alphas: list[np.ndarray] = []
    constraints: list[list[tuple[int, str]]] = []
    group_members: list[list[int]] = []
    for g, req in enumerate(meta["include"]):
        pool = per_class[int(req["class"])]
        picks = rng.choice(len(pool), size=req["count"], replace=req["count"] > len(pool))
        members = []
        for p in picks:
            idx = int(pool[int(p)])
            color = req.get("color") or ge.COLOR_NAMES[int(rng.integers(len(ge.COLOR_NAMES)))]
            longer = lo if layout.kind == "slots" else int(rng.integers(lo, hi + 1))  # slots: no draw
            alphas.append(_digit_alpha(images[idx], ink_boxes[idx], longer))
            rel = [(j, req["position"][0]) for j in group_members[req["position"][1]]] if "position" in req else []
            constraints.append(rel)
            members.append(len(objects))
            objects.append({"class": req["class"], "color": color, "bbox": None, "group": g, "mnist_index": idx})
        group_members.append(members)

    sizes = [a.shape for a in alphas]
    boxes = (_slot_layout(sizes, constraints, size_px, layout, rng) if layout.kind == "slots"
             else _place(sizes, constraints, size_px, rng))
    canvas = np.empty((size_px, size_px, 3), dtype=np.float32)
    canvas[:] = BACKGROUND
    for obj, alpha, box in zip(objects, alphas, boxes):
        x0, y0, x1, y1 = box
        obj["bbox"] = box
        a = alpha[..., None]
        region = canvas[y0:y1, x0:x1]
        region[:] = region * (1.0 - a) + np.asarray(COLORS[obj["color"]], dtype=np.float32) * a
    image = np.rint(canvas).astype(np.uint8).transpose(2, 0, 1).copy()
    return torch.from_numpy(image), objects


# -- prompts ----------------------------------------------------------------------------------
def sample_metadata(tag: str, rng: np.random.Generator) -> dict[str, Any]:
    """A random GenEval metadata dict of ``tag`` over the digit classes (uniform within the tag)."""
    def classes(n: int) -> list[str]:
        return [ge.CLASSES[int(i)] for i in rng.choice(10, size=n, replace=False)]

    def colors(n: int) -> list[str]:
        return [ge.COLOR_NAMES[int(i)] for i in rng.choice(len(ge.COLOR_NAMES), size=n, replace=False)]

    if tag == "single_object":
        return ge.single_object(*classes(1))
    if tag == "two_object":
        return ge.two_object(*classes(2))
    if tag == "counting":
        cls = classes(1)[0]
        return ge.counting(cls, int(rng.integers(2, 5)))
    if tag == "colors":
        return ge.colors(classes(1)[0], colors(1)[0])
    if tag == "position":
        a, b = classes(2)
        return ge.position(a, ge.RELATIONS[int(rng.integers(len(ge.RELATIONS)))], b)
    if tag == "color_attr":
        (a, b), (ca, cb) = classes(2), colors(2)
        return ge.color_attr(a, ca, b, cb)
    raise DataError(f"unknown GenEval tag {tag!r}; the tags are {', '.join(ge.TAGS)}.")


def enumerate_metadata(tag: str) -> list[dict[str, Any]]:
    """Every distinct metadata dict of ``tag`` over the digit world (its whole prompt space)."""
    C, K = ge.CLASSES, ge.COLOR_NAMES
    pairs = [(a, b) for a, b in itertools.permutations(C, 2)]
    if tag == "single_object":
        return [ge.single_object(c) for c in C]
    if tag == "two_object":
        return [ge.two_object(a, b) for a, b in pairs]
    if tag == "counting":
        return [ge.counting(c, n) for c in C for n in (2, 3, 4)]
    if tag == "colors":
        return [ge.colors(c, k) for c in C for k in K]
    if tag == "position":
        return [ge.position(a, r, b) for a, b in pairs for r in ge.RELATIONS]
    if tag == "color_attr":
        return [ge.color_attr(a, ka, b, kb) for a, b in pairs for ka, kb in itertools.permutations(K, 2)]
    raise DataError(f"unknown GenEval tag {tag!r}; the tags are {', '.join(ge.TAGS)}.")


def generate_heldout_prompts(seed: int = HELDOUT_SEED, per_tag: int = HELDOUT_PER_TAG) -> list[dict[str, Any]]:
    """``per_tag`` prompts for each tag, in tag order: each tag's whole prompt space, shuffled,
    repeated as often as needed (so small tags are balanced over their prompts)."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for tag in ge.TAGS:
        space = enumerate_metadata(tag)
        picked: list[dict[str, Any]] = []
        while len(picked) < per_tag:
            picked.extend(space[int(i)] for i in rng.permutation(len(space)))
        out.extend(json.loads(json.dumps(m)) for m in picked[:per_tag])
    return out


def write_heldout_prompts(path: str | Path | None = None) -> Path:
    """(Re)write the committed held-out prompt file (default: the package's own copy)."""
    target = Path(path) if path is not None else Path(__file__).with_name(HELDOUT_FILE)
    target.write_text("".join(json.dumps(m) + "\n" for m in generate_heldout_prompts()))
    return target


@functools.lru_cache(maxsize=1)
def _heldout_text() -> str:
    try:
        return resources.files("softdimo.data").joinpath(HELDOUT_FILE).read_text()
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"the held-out prompt file {HELDOUT_FILE} is missing from the softdimo package "
                        f"(a broken install?). Reinstall softdimo, or regenerate it with "
                        f"softdimo.data.world.write_heldout_prompts().") from e


def heldout_prompts() -> list[dict[str, Any]]:
    """The committed held-out prompt set: GenEval metadata dicts (with ``prompt``), 100 per tag."""
    return [json.loads(line) for line in _heldout_text().splitlines() if line.strip()]


def paraphrased_heldout_prompts(seed: int = PARAPHRASE_SEED) -> list[dict[str, Any]]:
    """The committed held-out metadata with each prompt reworded by a held-out template (same checks;
    the GenEval caption kept under ``"geneval_prompt"``), the tags interleaved so that every prefix
    covers all six (as ``heldout_prompts_interleaved``)."""
    rng = np.random.default_rng(seed)
    return ge.interleave_tags([{**m, "prompt": paraphrase(m, rng, "heldout"), "geneval_prompt": m["prompt"]}
                               for m in heldout_prompts()])


@functools.lru_cache(maxsize=1)
def paraphrase_table() -> dict[str, dict[str, Any]]:
    """Every paraphrase of the world's prompt space (both pools) → its GenEval metadata, so that
    readers of prompts (the attribute reward) understand the wordings the world trains and tests on."""
    out: dict[str, dict[str, Any]] = {}
    for tag in ge.TAGS:
        for meta in enumerate_metadata(tag):
            f = fields(meta)
            for pool in POOLS:
                for t in templates(meta, pool):  # type: ignore[arg-type]
                    out.setdefault(t.format(**f), meta)
    return out


def write_paraphrased_heldout(path: str | Path | None = None) -> Path:
    """(Re)write the committed paraphrased held-out file (default: the package's own copy), for
    ``--prompts-file`` of ``softdimo eval`` / ``sample``."""
    target = Path(path) if path is not None else Path(__file__).with_name(PARAPHRASED_FILE)
    target.write_text("".join(json.dumps(m) + "\n" for m in paraphrased_heldout_prompts()))
    return target


# -- dataset ----------------------------------------------------------------------------------
class WorldDataset(ImageDataset):
    """Digit-world scenes of one split, rendered on first access and cached (see module docstring)."""

    def __init__(self, split: Split, size: int, size_px: int = 32, seed: int = 0,
                 layout: WorldLayout | None = None, paraphrases: float = 0.0) -> None:
        check_split(split)
        if not 0.0 <= paraphrases <= 1.0:
            raise DataError(f"data.world_paraphrases must be a share in [0, 1]; got {paraphrases}.")
        if size < 1:
            raise DataError(f"data.world_{split}_size must be at least 1; got {size}.")
        if size_px < MIN_SIZE_PX:
            raise DataError(f"data.world_size_px must be at least {MIN_SIZE_PX} (four digits must fit); "
                            f"got {size_px}.")
        if seed < 0:
            raise DataError(f"data.world_seed must be a non-negative integer; got {seed}.")
        self.layout = layout or DEFAULT_LAYOUT
        self.layout.check(size_px)
        super().__init__("world", split, 3, size_px, num_classes=0)
        self.size = int(size)
        self.seed = int(seed)
        self.paraphrases = float(paraphrases)
        self._cache: torch.Tensor | None = None
        self._done: np.ndarray | None = None

    def __len__(self) -> int:
        return self.size

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _SPLIT_CODE[self.split], index, stream])

    def tag(self, index: int) -> str:
        return ge.TAGS[self._normalise_index(index) % len(ge.TAGS)]

    def metadata(self, index: int) -> dict[str, Any]:
        """GenEval metadata of scene ``index`` (cheap: no rendering)."""
        i = self._normalise_index(index)
        return sample_metadata(ge.TAGS[i % len(ge.TAGS)], self._rng(i, 0))

    def prompt(self, index: int) -> str:
        """Scene ``index``'s caption: GenEval's template, or for a share ``paraphrases`` of the scenes
        (drawn per scene, fixed by the seed) a training paraphrase of the same metadata (§8.8)."""
        i = self._normalise_index(index)
        meta = self.metadata(i)
        if self.paraphrases > 0:
            rng = self._rng(i, 2)  # streams 0 and 1 draw the metadata and the image
            if rng.random() < self.paraphrases:
                return paraphrase(meta, rng, "train")
        return meta["prompt"]

    def scene(self, index: int) -> dict[str, Any]:
        """``{"prompt", "metadata", "objects"}`` of scene ``index`` (objects as :func:`render_prompt`)."""
        i = self._normalise_index(index)
        meta = self.metadata(i)
        image, objects = render_prompt(meta, self._rng(i, 1), self.split, self.image_size, self.layout)
        self._store(i, image)
        return {"prompt": self.prompt(i), "metadata": meta, "objects": objects}

    def _store(self, i: int, image: torch.Tensor) -> None:
        if self._cache is None or self._done is None:
            self._cache = torch.empty(self.size, 3, self.image_size, self.image_size, dtype=torch.uint8)
            self._done = np.zeros(self.size, dtype=bool)
        self._cache[i] = image
        self._done[i] = True

    def image_uint8(self, index: int) -> torch.Tensor:
        i = self._normalise_index(index)
        if self._cache is not None and self._done is not None and self._done[i]:
            return self._cache[i]
        image, _ = render_prompt(self.metadata(i), self._rng(i, 1), self.split, self.image_size, self.layout)
        self._store(i, image)
        return image

    def images_uint8(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        idx = index_tensor(range(self.size) if indices is None else indices, self.size)
        for i in idx.tolist():
            if self._done is None or not self._done[i]:
                self.image_uint8(i)
        if self._cache is None:
            return torch.empty(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return self._cache[idx]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)  # data-loader workers start with an empty cache
        state["_cache"] = state["_done"] = None
        return state


def load_world(cfg: DataConfig, split: Split) -> WorldDataset:
    size = cfg.world_train_size if check_split(split) == "train" else cfg.world_test_size
    return WorldDataset(split, size, cfg.world_size_px, cfg.world_seed, world_layout(cfg), cfg.world_paraphrases)


__all__ = ["BACKGROUND", "COLORS", "WorldDataset", "WorldLayout", "DEFAULT_LAYOUT", "world_layout",
           "world_identity", "load_world", "render_prompt", "sample_metadata", "paraphrased_heldout_prompts",
           "paraphrase_table", "write_paraphrased_heldout", "PARAPHRASED_FILE", "PARAPHRASE_SEED",
           "enumerate_metadata", "generate_heldout_prompts", "heldout_prompts", "write_heldout_prompts",
           "relation_holds", "relative_position", "digit_size_range", "gap_px", "HELDOUT_SEED"]
