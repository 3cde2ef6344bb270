"""Digit classifier: training signal, save/load, input checks, augmentation, digit framing, the
`train-classifier` command, the shipped checkpoint, and the domain metrics built on it."""
from __future__ import annotations

import pytest
import torch

from softdimo.classifier import ClassifierConfig, DigitClassifier, frame_digit
from softdimo.classifier.train import AugmentConfig, augment
from softdimo.cli import main
from softdimo.config import DataConfig
from softdimo.data import build_dataset
from softdimo.errors import CheckpointError, DataError
from softdimo.eval.domain import classifier_score, domain_fid
from softdimo.paths import checkpoint_dir, config_path

TINY = ClassifierConfig(channels=(4, 8), feature_dim=16, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped() -> DigitClassifier:
    return DigitClassifier.from_pretrained(checkpoint_dir("classifier-mnist")).eval()


@pytest.fixture(scope="module")
def mnist_test():
    ds = build_dataset(DataConfig(dataset="mnist"), "test")
    return ds.images_uint8(list(range(400))), ds.labels[:400]


def test_loss_falls_on_fixed_batch(mnist_test):
    torch.manual_seed(0)
    model = DigitClassifier(TINY)
    x, y = mnist_test[0][:32].float() / 255, mnist_test[1][:32]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_shapes_and_input_errors():
    model = DigitClassifier(TINY).eval()
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10) and model.features(x).shape == (3, 16)
    assert torch.equal(model(x), model(x[:, 0]))  # [B, 28, 28] accepted
    assert torch.allclose(model(torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)), model(torch.ones(1, 1, 28, 28)))
    with pytest.raises(DataError, match="grey 28×28"):
        model(torch.rand(2, 3, 32, 32))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = DigitClassifier(TINY).eval()
    x = torch.rand(4, 1, 28, 28)
    model.save_pretrained(tmp_path / "fp32")
    again = DigitClassifier.from_pretrained(tmp_path / "fp32")
    assert again.config == TINY and torch.equal(again(x), model(x))
    model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    half = DigitClassifier.from_pretrained(tmp_path / "fp16")
    torch.testing.assert_close(half(x), model(x), atol=1e-2, rtol=1e-2)
    with pytest.raises(CheckpointError):
        DigitClassifier.from_pretrained(tmp_path / "missing")


def test_augment_is_deterministic_and_in_range():
    x = torch.rand(16, 1, 28, 28)
    cfg = AugmentConfig(lowres_prob=0.5, blur_prob=0.5)
    a = augment(x, cfg, torch.Generator().manual_seed(3))
    b = augment(x, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.equal(a, augment(x, cfg, torch.Generator().manual_seed(4)))
    assert torch.equal(augment(x, AugmentConfig(enabled=False), torch.Generator()), x)


def test_frame_digit_is_mnist_like():
    ink = torch.zeros(13, 7)
    ink[2:11, 2:5] = 0.5  # a tall bar
    out = frame_digit(ink)
    assert out.shape == (1, 28, 28) and float(out.max()) == pytest.approx(1.0)
    ys, xs = torch.nonzero(out[0] > 0, as_tuple=True)
    assert int(ys.max() - ys.min()) + 1 == 20  # longer side fitted to 20 px
    w = out[0]
    cy = float((w.sum(1) * torch.arange(28)).sum() / w.sum())
    cx = float((w.sum(0) * torch.arange(28)).sum() / w.sum())
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0
    with pytest.raises(DataError):
        frame_digit(torch.zeros(5, 5))


def test_train_classifier_command(tmp_path, capsys):
    args = ["train-classifier", "--config", str(config_path("mnist", "classifier.yaml")), "train.max_steps=2",
            "train.batch_size=8", "train.sample_every=0", "train.checkpoint_every=0", "train.log_every=1",
            "model.channels=[4, 8]", "model.feature_dim=16", "world_crops.scenes=4",
            f"train.out_dir={tmp_path}", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    (final,) = list(tmp_path.glob("train-classifier/*/final"))
    assert DigitClassifier.from_pretrained(final).config.channels == (4, 8)
    assert main([*args[:-2], "data.dataset=world", f"train.out_dir={tmp_path / 'b'}"]) == 2
    assert "labelled" in capsys.readouterr().err


def test_shipped_checkpoint(shipped, mnist_test):
    x, y = mnist_test
    assert shipped.config.feature_dim == 128
    acc = (shipped.predict_proba(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.98


def test_domain_fid(shipped, mnist_test):
    x, _ = mnist_test
    a, b = x[:200], x[200:400]
    assert domain_fid(a, a, shipped) == pytest.approx(0.0, abs=1e-6)
    real_vs_real = domain_fid(a, b, shipped)
    blurred = torch.nn.functional.avg_pool2d(b.float() / 255, 5, stride=1, padding=2)
    assert 0 < real_vs_real < domain_fid(a, blurred, shipped)
    with pytest.raises(DataError, match="grey 28×28"):
        domain_fid(torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32), shipped)


def test_shipped_classifier_of_each_dataset():
    from softdimo.classifier import SHIPPED_BY_DATASET, domain_evaluator, load_shipped_classifier
    from softdimo.errors import ConfigError

    ds = build_dataset(DataConfig(dataset="fashion"), "test")
    clf = load_shipped_classifier("fashion")
    assert clf.config.num_classes == 10 and not clf.training
    acc = (clf.predict_proba(ds.images_uint8(list(range(1000)))).argmax(1) == ds.labels[:1000]).float().mean().item()
    assert acc >= 0.85  # garments are harder than digits (the card gives the full test split)
    assert set(SHIPPED_BY_DATASET) == {"mnist", "fashion"}
    assert domain_evaluator("fashion").startswith("softdimo classifier-fashion ")
    with pytest.raises(ConfigError, match="no evaluator classifier is shipped for dataset 'world'"):
        load_shipped_classifier("world")
    with pytest.raises(ConfigError, match="no evaluator classifier is shipped for dataset 'world'"):
        domain_evaluator("world")


def test_classifier_score(shipped, mnist_test):
    x, _ = mnist_test
    s = classifier_score(x, shipped)
    assert 8.0 < s <= 10.0  # balanced, confidently classified digits
    assert 1.0 <= classifier_score(x[:1].repeat(50, 1, 1, 1), shipped) < 1.01  # one image: no diversity
    with pytest.raises(DataError, match="RGB"):
        classifier_score(torch.rand(4, 3, 28, 28), shipped)


def test_world_crops_follow_their_layout_and_the_preset_keeps_the_shipped_one():
    from softdimo.classifier.crops import WorldCropConfig, world_crops
    from softdimo.classifier.train import ClassifierRunConfig
    from softdimo.config import load_config

    assert WorldCropConfig().layout == "slots"  # the world's default layout
    slots_images, slots_labels = world_crops(WorldCropConfig(scenes=6), "test")
    free_images, free_labels = world_crops(WorldCropConfig(scenes=6, layout="free"), "test")
    assert torch.equal(slots_labels, free_labels)  # the same scenes' digits, drawn at other sizes and places
    assert not torch.equal(slots_images, free_images)
    # the shipped classifier-mnist was trained on crops of the free layout: the preset says so
    assert load_config(ClassifierRunConfig, config_path("mnist", "classifier.yaml")).world_crops.layout == "free"
