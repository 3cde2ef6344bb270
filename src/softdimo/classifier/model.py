"""The in-project evaluator classifier: a small CNN over 1×28×28 grey images, 10 classes.

It serves the evaluators, never a reward: its penultimate features drive the "domain FID"
(:mod:`softdimo.eval.domain`) and its softmax the "classifier score" and the GenEval-like scorer
of the digit world (:mod:`softdimo.eval.geneval`). One is shipped per grey dataset
(:data:`SHIPPED_BY_DATASET`): ``classifier-mnist`` (digits; also the GenEval-like scorer's) and
``classifier-fashion`` (the ten Fashion-MNIST garment classes, domain metrics of that dataset only).

Architecture (``ClassifierConfig``): one stage per entry of ``channels``, each
``convs_per_stage`` × (3×3 conv → ReLU) followed by a 2×2 max-pool (28 → 14 → 7 → 3 for three
stages); then flatten → linear ``feature_dim`` → ReLU (these are :meth:`DigitClassifier.features`)
→ dropout → linear ``num_classes`` (the logits). No normalisation layers, so the exported EMA
weights need no re-estimated batch statistics and the model is a pure function of its weights.

Inputs are ``[B, 1, 28, 28]`` (or ``[B, 28, 28]``) in [0, 1], white ink on black, MNIST framing
(the digit fitted in a 20×20 box, centred by its centre of mass): what :mod:`.crops` produces
from digit-world scenes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_ranges, knob
from ..errors import ConfigError, DataError
from ..paths import checkpoint_dir
from ..pretrained import PretrainedMixin

SHIPPED = "classifier-mnist"  # the shipped digit classifier under checkpoints/ (the GenEval-like scorer's)
# the shipped classifier of each grey dataset whose domain metrics (domain FID, classifier score) are defined
SHIPPED_BY_DATASET = {"mnist": SHIPPED, "fashion": "classifier-fashion"}


@dataclass
class ClassifierConfig:
    """Architecture of :class:`DigitClassifier`."""

    in_channels: int = knob(1, ge=1)  # grey input
    image_size: int = knob(28, ge=1)  # square input side (pixels)
    num_classes: int = knob(10, ge=2)
    channels: tuple[int, ...] = knob((32, 64, 128), ge=1)  # conv width of each stage (each ends in a 2× max-pool)
    convs_per_stage: int = knob(1, ge=1)  # 3×3 conv + ReLU layers per stage
    feature_dim: int = knob(128, ge=1)  # width of the penultimate layer (what features() returns)
    dropout: float = knob(0.25, ge=0, lt=1)  # dropout before the last linear layer (training only)

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.channels:
            raise ConfigError("channels must be a non-empty tuple of positive ints")
        if self.image_size // 2 ** len(self.channels) < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {len(self.channels)} "
                             f"2× poolings; use fewer stages")

    @property
    def final_side(self) -> int:
        """Side of the last feature map (after every pooling)."""
        side = self.image_size
        for _ in self.channels:
            side //= 2
        return side


class DigitClassifier(nn.Module, PretrainedMixin):
    """Small CNN digit classifier with ``features(x) -> [B, feature_dim]`` and ``forward -> logits``."""

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = config.in_channels
        for c in config.channels:
            for _ in range(config.convs_per_stage):
                layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = c
            layers.append(nn.MaxPool2d(2))
        self.conv = nn.Sequential(*layers)
        flat = c_in * config.final_side ** 2
        self.fc = nn.Linear(flat, config.feature_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as float ``[B, C, S, S]``; :class:`DataError` naming what is accepted otherwise."""
        c, s = self.config.in_channels, self.config.image_size
        if isinstance(x, torch.Tensor) and x.dim() == 3 and c == 1:
            x = x.unsqueeze(1)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (c, s, s):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"DigitClassifier reads {'grey' if c == 1 else f'{c}-channel'} {s}×{s} images "
                            f"shaped [B, {c}, {s}, {s}] (or [B, {s}, {s}]) in [0, 1]; got {got}. Digit-world "
                            f"scenes must first be cut into digit crops (softdimo.classifier.crops).")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return x.float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``[B, feature_dim]`` (after the ReLU)."""
        x = self.check_input(x)
        h = self.conv(x).flatten(1)
        return F.relu(self.fc(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, num_classes]``."""
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Softmax probabilities ``[B, num_classes]`` in eval mode, batched, on the model's device."""
        was = self.training
        self.eval()
        x = self.check_input(x)
        device = next(self.parameters()).device
        out = [torch.softmax(self(x[i:i + batch_size].to(device)), dim=-1).cpu()
               for i in range(0, x.shape[0], batch_size)]
        self.train(was)
        return torch.cat(out) if out else torch.empty(0, self.config.num_classes)


def _shipped_name(dataset: str) -> str:
    if dataset not in SHIPPED_BY_DATASET:
        raise ConfigError(f"no evaluator classifier is shipped for dataset {dataset!r}; the domain metrics are "
                          f"defined for {', '.join(SHIPPED_BY_DATASET)}.")
    return SHIPPED_BY_DATASET[dataset]


def domain_evaluator(dataset: str = "mnist") -> str:
    """The evaluator named beside the domain metrics of ``dataset``: its shipped classifier, and which output
    each metric reads (penultimate features → domain FID; softmax → classifier score)."""
    return f"softdimo {_shipped_name(dataset)} (penultimate features / softmax)"


def load_shipped_classifier(dataset: str = "mnist") -> DigitClassifier:
    """The shipped classifier of ``dataset`` (:data:`SHIPPED_BY_DATASET`; default the digit classifier
    ``checkpoints/classifier-mnist``) in eval mode: the evaluators' network."""
    path = checkpoint_dir(_shipped_name(dataset))
    if not path.is_dir():
        raise DataError(f"{path} is missing: the {dataset} domain metrics read this classifier (train it with "
                        f"softdimo train-classifier --config configs/{dataset}/classifier.yaml).")
    return DigitClassifier.from_pretrained(path).eval()


__all__ = ["ClassifierConfig", "DigitClassifier", "SHIPPED", "SHIPPED_BY_DATASET", "domain_evaluator",
           "load_shipped_classifier"]
