"""The GenEval-like scorer: GenEval's rules on hand-made digit-world images (position, counting with
its exclude clause, colour), noise robustness, ground-truth renders, and input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from softdimo.classifier import DigitClassifier
from softdimo.config import DataConfig
from softdimo.data import BACKGROUND, COLORS, build_dataset, render_prompt
from softdimo.data import geneval as ge
from softdimo.errors import DataError
from softdimo.eval.geneval import Detection, GenEvalScorer, evaluate_rules
from softdimo.paths import checkpoint_dir


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scorer() -> GenEvalScorer:
    return GenEvalScorer(DigitClassifier.from_pretrained(checkpoint_dir("classifier-mnist")))


@pytest.fixture(scope="module")
def digits(scorer) -> dict[str, list[torch.Tensor]]:
    """Per class, three MNIST test digits (as ink in [0, 1]) the classifier reads with confidence > 0.99."""
    ds = build_dataset(DataConfig(dataset="mnist"), "test")
    x = ds.images_uint8(list(range(300)))
    probs = scorer.classifier.predict_proba(x)
    out: dict[str, list[torch.Tensor]] = {str(c): [] for c in range(10)}
    for img, label, p in zip(x, ds.labels[:300].tolist(), probs):
        if p.argmax() == label and p.max() > 0.99 and len(out[str(label)]) < 3:
            out[str(label)].append(img[0].float() / 255)
    assert all(len(v) == 3 for v in out.values())
    return out


def draw(items: list[tuple[torch.Tensor, str, int, int]], size: int = 32) -> torch.Tensor:
    """A canvas with each (ink 28×28, colour, x, y) digit shrunk to 14 px and painted at (x, y)."""
    canvas = torch.tensor(BACKGROUND, dtype=torch.float32).view(3, 1, 1).repeat(1, size, size) / 255
    for ink, color, x, y in items:
        ys, xs = torch.nonzero(ink > 0, as_tuple=True)
        crop = ink[int(ys.min()):int(ys.max()) + 1, int(xs.min()):int(xs.max()) + 1]
        h, w = crop.shape
        s = 14 / max(h, w)
        small = F.interpolate(crop[None, None], size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                              antialias=True, align_corners=False)[0, 0]
        a = small / small.max()
        a[a < 0.1] = 0
        col = torch.tensor(COLORS[color], dtype=torch.float32).view(3, 1, 1) / 255
        region = canvas[:, y:y + a.shape[0], x:x + a.shape[1]]
        region.copy_(region * (1 - a) + col * a)
    return canvas


def test_left_right(scorer, digits):
    image = draw([(digits["3"][0], "red", 1, 9), (digits["7"][0], "blue", 18, 9)])
    ok, detail = scorer.score_image(image, ge.position("3", "left of", "7"))
    assert ok, detail
    assert sorted(o["class"] for o in detail["objects"]) == ["3", "7"]
    ok, detail = scorer.score_image(image, ge.position("3", "right of", "7"))
    assert not ok and detail["failed"] == ["position"]
    ok, _ = scorer.score_image(image, ge.position("7", "right of", "3"))
    assert ok


def test_counting_with_exclude(scorer, digits):
    image = draw([(digits["5"][0], "green", 0, 0), (digits["5"][1], "white", 17, 0),
                  (digits["5"][2], "black", 9, 17)])
    assert scorer.score_image(image, ge.counting("5", 3))[0]
    ok, detail = scorer.score_image(image, ge.counting("5", 2))  # exclude: three 5s reach the count 3
    assert not ok and detail["failed"] == ["exclude"]
    ok, detail = scorer.score_image(image, ge.counting("5", 4))
    assert not ok and detail["failed"] == ["count"]


def test_colors(scorer, digits):
    image = draw([(digits["4"][0], "blue", 9, 9)])
    assert scorer.score_image(image, ge.colors("4", "blue"))[0]
    ok, detail = scorer.score_image(image, ge.colors("4", "red"))
    assert not ok and detail["failed"] == ["color"]
    assert scorer.score_image(image, ge.single_object("4"))[0]
    assert not scorer.score_image(image, ge.single_object("9"))[0]


def test_color_attr_and_two_object(scorer, digits):
    image = draw([(digits["2"][0], "orange", 1, 2), (digits["8"][0], "purple", 17, 16)])
    assert scorer.score_image(image, ge.color_attr("2", "orange", "8", "purple"))[0]
    assert not scorer.score_image(image, ge.color_attr("2", "purple", "8", "orange"))[0]
    assert scorer.score_image(image, ge.two_object("8", "2"))[0]
    assert not scorer.score_image(image, ge.two_object("8", "1"))[0]


def test_near_background_noise_makes_no_objects(scorer):
    g = torch.Generator().manual_seed(0)
    bg = torch.tensor(BACKGROUND, dtype=torch.float32).view(3, 1, 1) / 255
    uniform = (bg + (torch.rand(3, 32, 32, generator=g) - 0.5) * 16 / 255).clamp(0, 1)
    gauss = (bg + 0.02 * torch.randn(3, 32, 32, generator=g)).clamp(0, 1)
    assert scorer.detect(uniform) == [] and scorer.detect(gauss) == []
    assert not scorer.score_image(gauss, ge.single_object("1"))[0]


def test_ground_truth_renders_score_correct(scorer):
    metas = [ge.single_object("0"), ge.two_object("1", "7"), ge.counting("9", 4), ge.colors("6", "brown"),
             ge.position("8", "below", "3"), ge.color_attr("5", "yellow", "2", "pink")]
    # fixed seeds; across the 1200 held-out renders the scorer is right on ≈ 98 % (benchmarks/)
    images = [render_prompt(m, 11 + k)[0] for k, m in enumerate(metas)]
    res = scorer.score(torch.stack(images), metas)
    assert res["n"] == 6 and set(res["per_tag"]) == set(ge.TAGS)
    assert res["overall"] == 1.0, scorer.score(images, metas, return_details=True)["details"]
    uint8_vs_float = scorer.score_image(images[5].float() / 255, metas[5])[1]["objects"]
    assert uint8_vs_float == scorer.score_image(images[5], metas[5])[1]["objects"]


def test_rules_use_the_most_confident_objects():
    def det(label, conf, color="red", bbox=(0, 0, 5, 5)):
        return Detection(label=label, confidence=conf, color=color, bbox=bbox, pixels=20)

    meta = ge.colors("3", "red")
    kept = {"3": [det("3", 0.9, "blue"), det("3", 0.5, "red")]}  # GenEval checks the top-1 only
    ok, failed, _ = evaluate_rules(kept, meta)
    assert not ok and failed == ["color"]
    ok, failed, _ = evaluate_rules({"3": [det("3", 0.9)]}, ge.position("3", "above", "4"))
    assert not ok and failed == ["count", "position"]  # the 4 (group 0) is missing: the 3 has no target
    ok, failed, reasons = evaluate_rules({"3": [det("3", 0.9, bbox=(0, 0, 4, 4))], "4": [det("4", 0.9, bbox=(0, 10, 4, 14))]},
                                         ge.position("3", "above", "4"))
    assert ok and failed == [] and reasons == []


def test_counting_uses_the_higher_confidence_threshold(scorer):
    dets = [Detection("5", 0.95, "red", (0, 0, 5, 5), 20), Detection("5", 0.6, "red", (10, 0, 15, 5), 20)]
    assert scorer.kept_objects(dets, "counting") == {"5": [dets[0]]}
    assert len(scorer.kept_objects(dets, "single_object")["5"]) == 2


def test_input_errors(scorer):
    meta = ge.single_object("1")
    with pytest.raises(DataError, match=r"\[3, H, W\]"):
        scorer.score_image(torch.rand(1, 32, 32), meta)
    with pytest.raises(DataError, match=r"\[3, H, W\]"):
        scorer.score_image(torch.rand(2, 3, 32, 32), meta)
    with pytest.raises(DataError, match="metadata"):
        scorer.score([torch.rand(3, 32, 32)], [meta, meta])
    with pytest.raises(DataError, match="invalid GenEval metadata"):
        scorer.score_image(torch.rand(3, 32, 32), {"tag": "colors", "include": []})
    with pytest.raises(DataError, match="digit classifier"):
        GenEvalScorer(torch.nn.Linear(2, 2))
    assert np.isfinite(scorer.score([torch.rand(3, 32, 32)], [meta])["overall"])
