"""The digit world's slots layout: digits centred in the cells of a grid the token grid respects,
the prompts' relations (position, counting, colours) holding in the renders, slots as the default
layout (free as a knob), and the GenEval-like scorer reading slot renders."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from softdimo.config import DataConfig
from softdimo.data import build_dataset
from softdimo.data import geneval as ge
from softdimo.data import world
from softdimo.data.world import WorldDataset, WorldLayout, render_prompt
from softdimo.errors import SoftdimoError

pytestmark = pytest.mark.usefixtures("one_thread")

SLOTS = WorldLayout(kind="slots")
BG = np.array(world.BACKGROUND)
PATCH = 4  # the token patch of the world tokenizers (32 px → 8×8 tokens)


def cells_of(objects: list[dict], size_px: int = 32, layout: WorldLayout = SLOTS) -> list[int]:
    """The cell of each object, after checking that its box is centred in that cell."""
    cell, out = layout.cell_px(size_px), []
    for o in objects:
        x0, y0, x1, y1 = o["bbox"]
        col, row = x0 // cell, y0 // cell
        w, h = x1 - x0, y1 - y0
        assert max(w, h) == layout.slot_digit_px(size_px)
        assert (x0, y0) == (col * cell + (cell - w) // 2, row * cell + (cell - h) // 2), "not centred in its cell"
        assert x1 <= (col + 1) * cell and y1 <= (row + 1) * cell
        out.append(row * layout.slots + col)
    return out


def check_pixels(image: torch.Tensor, objects: list[dict], size_px: int = 32) -> None:
    """Background outside the boxes, ink touching every side of each box, neighbours gap_px apart."""
    assert image.dtype == torch.uint8 and image.shape == (3, size_px, size_px)
    img = image.numpy().transpose(1, 2, 0).astype(np.int64)
    ink = (img != BG).any(axis=-1)
    covered = np.zeros_like(ink)
    for o in objects:
        x0, y0, x1, y1 = o["bbox"]
        covered[y0:y1, x0:x1] = True
        sub = ink[y0:y1, x0:x1]
        assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any(), "bbox is not tight"
    assert not (ink & ~covered).any()
    gap = world.gap_px(size_px)
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["bbox"], b["bbox"]
            assert ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def test_objects_land_on_distinct_slots_aligned_with_token_patches() -> None:
    ds = WorldDataset("test", 60, layout=SLOTS)
    used = collections.Counter()
    for i in range(60):
        scene = ds.scene(i)
        objects, meta = scene["objects"], scene["metadata"]
        cells = cells_of(objects)
        assert len(set(cells)) == len(cells) == sum(r["count"] for r in meta["include"])
        check_pixels(ds.image_uint8(i), objects)
        used.update(cells)
    assert SLOTS.cell_px(32) % PATCH == 0  # every cell boundary is a token boundary
    assert set(used) == {0, 1, 2, 3}  # every slot is used


@pytest.mark.parametrize("relation", ge.RELATIONS)
def test_position_prompts_hold_clearly(relation: str) -> None:
    rng = np.random.default_rng(0)
    rows_cols = set()
    for k in range(12):
        a, b = (str(int(d)) for d in rng.choice(10, size=2, replace=False))
        meta = ge.position(a, relation, b)
        image, objects = render_prompt(meta, k, layout=SLOTS)
        check_pixels(image, objects)
        (cb,), (ca,) = cells_of([o for o in objects if o["group"] == 0]), cells_of([o for o in objects if o["group"] == 1])
        target, mover = objects[0], objects[1]
        assert (target["class"], mover["class"]) == (b, a)
        assert ge.relative_position(mover["bbox"], target["bbox"]) == {relation}  # that one and nothing else
        horizontal = relation in ("left of", "right of")
        assert (ca // 2 == cb // 2) if horizontal else (ca % 2 == cb % 2)  # same row / same column
        rows_cols.add((ca, cb))
    assert len(rows_cols) == 2  # both rows (or columns) are drawn


@pytest.mark.parametrize("count", [2, 3, 4])
def test_counting_prompts_draw_exactly_count_digits(count: int) -> None:
    for seed in range(6):
        meta = ge.counting("7", count)
        image, objects = render_prompt(meta, seed, layout=SLOTS)
        check_pixels(image, objects)
        assert [o["class"] for o in objects] == ["7"] * count
        assert len(set(cells_of(objects))) == count


def test_colours_and_attribution_hold() -> None:
    for seed in range(8):
        meta = ge.color_attr("3", "red", "8", "blue")
        image, objects = render_prompt(meta, seed, layout=SLOTS)
        assert [(o["class"], o["color"]) for o in objects] == [("3", "red"), ("8", "blue")]
        img = image.numpy().transpose(1, 2, 0).astype(np.int64)
        for o in objects:  # the digit's strongest pixel is exactly its colour
            x0, y0, x1, y1 = o["bbox"]
            px = img[y0:y1, x0:x1].reshape(-1, 3)
            assert (px == np.array(world.COLORS[o["color"]])).all(axis=1).any()


def test_deterministic_and_slots_layout_is_the_default() -> None:
    a, b = WorldDataset("train", 12, layout=SLOTS), WorldDataset("train", 12, layout=SLOTS)
    assert torch.equal(a.images_uint8(), b.images_uint8())
    free = WorldDataset("train", 12, layout=WorldLayout(kind="free"))
    assert [a.prompt(i) for i in range(12)] == [free.prompt(i) for i in range(12)]
    default = WorldDataset("train", 12)
    assert default.layout == WorldLayout() == SLOTS == world.DEFAULT_LAYOUT
    assert world.world_layout(DataConfig(dataset="world")) == SLOTS
    assert DataConfig().world_layout == "slots"
    assert torch.equal(default.images_uint8(), a.images_uint8())
    assert not torch.equal(free.images_uint8(), a.images_uint8())
    assert SLOTS.identity() == {}  # the shipped (default) world keeps short cache names
    assert WorldLayout(kind="free").identity() == {"world_layout": "free", "world_digit_px": 0}
    assert WorldLayout(kind="free", slots=3).identity() == WorldLayout(kind="free").identity()  # same images
    assert WorldLayout(kind="slots", slots=4).identity() == {"world_layout": "slots", "world_slots": 4,
                                                             "world_digit_px": 0}
    assert WorldLayout(kind="slots", digit_px=12).identity() != {}


def test_other_slot_grids_and_digit_sizes() -> None:
    three = WorldLayout(kind="slots", slots=3)
    ds = WorldDataset("test", 12, size_px=48, layout=three)
    for i in range(12):
        scene = ds.scene(i)
        assert len(set(cells_of(scene["objects"], 48, three))) == len(scene["objects"])
        check_pixels(ds.image_uint8(i), scene["objects"], 48)
    small = WorldLayout(kind="slots", digit_px=12)
    _, objects = render_prompt(ge.counting("1", 4), 0, layout=small)
    assert {max(o["bbox"][2] - o["bbox"][0], o["bbox"][3] - o["bbox"][1]) for o in objects} == {12}
    cells_of(objects, 32, small)
    _, objects = render_prompt(ge.two_object("2", "5"), 0, layout=WorldLayout(kind="free", digit_px=10))
    assert {max(o["bbox"][2] - o["bbox"][0], o["bbox"][3] - o["bbox"][1]) for o in objects} == {10}


def test_bad_layouts_are_data_errors() -> None:
    with pytest.raises(SoftdimoError, match="multiple of data.world_slots"):
        WorldDataset("test", 4, size_px=32, layout=WorldLayout(kind="slots", slots=3))
    with pytest.raises(SoftdimoError, match="world_digit_px=15"):
        WorldDataset("test", 4, layout=WorldLayout(kind="slots", digit_px=15))
    with pytest.raises(SoftdimoError, match="world_digit_px=20"):
        render_prompt(ge.single_object("4"), 0, layout=WorldLayout(kind="free", digit_px=20))
    with pytest.raises(SoftdimoError, match="at most 4"):
        render_prompt(ge.counting("4", 5), 0, layout=SLOTS)
    with pytest.raises(SoftdimoError, match=r"world_slots must be an integer in \[2, 16\]"):
        WorldLayout(kind="slots", slots=1)
    with pytest.raises(SoftdimoError, match="'free' or 'slots'"):
        WorldLayout(kind="grid")  # type: ignore[arg-type]


def test_data_config_selects_the_layout() -> None:
    cfg = DataConfig(dataset="world", world_layout="free", world_test_size=6)
    ds = build_dataset(cfg, "test")
    assert isinstance(ds, WorldDataset) and ds.layout == WorldLayout(kind="free")
    assert world.world_identity(cfg) == WorldLayout(kind="free").identity() != {}
    slots = build_dataset(DataConfig(dataset="world", world_test_size=6), "test")
    assert isinstance(slots, WorldDataset) and slots.layout == SLOTS


def test_caches_and_references_tell_the_layouts_apart(tmp_path) -> None:
    from softdimo.eval.references import dataset_id
    from softdimo.tokenizer.cache import _cache_key

    slots, free = DataConfig(dataset="world"), DataConfig(dataset="world", world_layout="free")
    assert dataset_id(slots) == "world-32px-seed0"  # the shipped (default) world has the short name
    assert dataset_id(free) != dataset_id(slots) and "free" in dataset_id(free)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert _cache_key(tmp_path, free, 8) != _cache_key(tmp_path, slots, 8)
    assert _cache_key(tmp_path, slots, 8) == _cache_key(tmp_path, DataConfig(dataset="world", world_layout="slots"), 8)


def test_eval_reads_the_data_section_of_a_config(tmp_path) -> None:
    from softdimo.cli import eval_data

    data = eval_data(None, "configs/world/teacher.yaml")
    assert data.dataset == "world" and data.world_layout == "slots"
    assert eval_data("world", "configs/world/teacher.yaml") == data
    assert eval_data(None, None) == DataConfig(dataset="mnist")
    with pytest.raises(SoftdimoError, match="describes dataset 'world'"):
        eval_data("mnist", "configs/world/teacher.yaml")
    bare = tmp_path / "bare.yaml"
    bare.write_text("train:\n  max_steps: 3\n")
    with pytest.raises(SoftdimoError, match="no 'data:' section"):
        eval_data(None, str(bare))
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  world_layout: grid\n")
    with pytest.raises(SoftdimoError, match="world_layout"):
        eval_data(None, str(bad))


def test_scorer_reads_slot_renders() -> None:
    from softdimo.classifier import DigitClassifier
    from softdimo.eval.geneval import GenEvalScorer
    from softdimo.paths import checkpoint_dir

    scorer = GenEvalScorer(DigitClassifier.from_pretrained(checkpoint_dir("classifier-mnist")))
    prompts = world.heldout_prompts()
    metas = [prompts[100 * t + k] for t in range(6) for k in range(4)]  # 4 held-out prompts per tag
    images = [render_prompt(m, 1000 + i, digits_split="test", layout=SLOTS)[0] for i, m in enumerate(metas)]
    matched = scorer.score(images, metas)
    assert matched["overall"] >= 0.9, matched
    shuffled = scorer.score(images, metas[4:] + metas[:4])  # every image paired with another tag's prompt
    assert shuffled["overall"] <= 0.2, shuffled
