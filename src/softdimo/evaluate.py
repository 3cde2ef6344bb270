"""`softdimo eval` and its Python API: metrics of any image source against a dataset.

A *source* is where evaluated images come from:

* ``data:NAME[:SPLIT]`` — a dataset split itself (e.g. ``data:mnist:train`` against the MNIST
  test split gives the real-vs-real FID floor at that N);
* a folder of PNG/JPEG files (sorted by name), optionally with ``metadata.jsonl`` — one GenEval
  metadata object per image, in the same order — for the GenEval-like score;
* a softdimo generator folder (teachers and one-step students): any folder whose manifest kind
  the registry of model kinds knows (:mod:`softdimo.teachers.registry`; :class:`GeneratorSource`).
  A text generator draws the held-out prompts of the digit world, or the GenEval metadata list
  ``prompts`` when one is given.

Metrics: ``fid`` and ``pr`` (standard Inception features vs the first N test images),
``domain_fid`` and ``classifier_score`` (the in-project classifier of the dataset: MNIST and Fashion-MNIST),
``geneval`` (GenEval-like scorer; digit world only). Every result names its evaluator and N.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from .classifier import SHIPPED_BY_DATASET, domain_evaluator, load_shipped_classifier
from .config import DataConfig, check_ranges, knob, to_dict
from .data import build_dataset
from .errors import DataError, SoftdimoError
from .eval.domain import classifier_score, domain_fid
from .eval.fid import extract_features, fid_from_features
from .eval.geneval import GenEvalScorer
from .eval.inception import InceptionFeatures
from .eval.prdc import precision_recall
from .eval.references import dataset_id, image_batches, real_stats
from .eval.shard import draw, process_group, shard_starts
from .files import read_text
from .imageio import load_image
from .sample import conditions_for, load_generator, read_kind

METRICS = ("fid", "pr", "domain_fid", "classifier_score", "geneval")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class EvalOptions:
    """The numbers `softdimo eval` is given, with their valid ranges (checked on construction)."""

    num: int = knob(2000, ge=2)  # evaluated images N
    batch_size: int = knob(50, ge=1)
    seed: int = knob(0, ge=0, le=2**63 - 1)

    def __post_init__(self) -> None:
        check_ranges(self, flags={})


@dataclass
class Batch:
    """Images in [0, 1] and, where known, their GenEval metadata (one dict per image)."""

    images: torch.Tensor
    metadata: list[dict] | None = None


class ImageSource:
    """Something that yields evaluated images in fixed-size batches."""

    name: str = "source"

    def batches(self, num: int, batch_size: int, seed: int) -> Iterator[Batch]:
        raise NotImplementedError


class DatasetSource(ImageSource):
    """The images of a dataset split (for real-vs-real floors and scorer validation)."""

    def __init__(self, cfg: DataConfig, split: str):
        self.ds = build_dataset(cfg, split)
        self.name = f"data:{dataset_id(cfg)}:{split}"

    def batches(self, num: int, batch_size: int, seed: int) -> Iterator[Batch]:
        if num > len(self.ds):
            raise DataError(f"{self.name} has {len(self.ds)} images; --num {num} is larger.")
        start = 0
        for x in image_batches(self.ds, num, batch_size):
            idx = range(start, start + len(x))
            meta = [self.ds.metadata(i) for i in idx] if hasattr(self.ds, "metadata") else None
            start += len(x)
            yield Batch(x, meta)


class FolderSource(ImageSource):
    """Image files in a folder (sorted by name) and an optional ``metadata.jsonl``."""

    def __init__(self, root: str | Path, channels: int):
        self.root = Path(root)
        self.files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise DataError(f"{self.root} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        self.channels = channels
        self.name = f"folder:{self.root}"
        meta_file = self.root / "metadata.jsonl"
        self.metadata = None
        if meta_file.is_file():
            lines = [ln for ln in read_text(meta_file).splitlines() if ln.strip()]
            try:
                self.metadata = [json.loads(ln) for ln in lines]
            except json.JSONDecodeError as e:
                raise DataError(f"{meta_file} is not valid JSON lines ({e}).") from e
            if len(self.metadata) != len(self.files):
                raise DataError(f"{meta_file} has {len(self.metadata)} lines but the folder has "
                                f"{len(self.files)} images; write one metadata line per image, in "
                                f"file-name order.")

    def batches(self, num: int, batch_size: int, seed: int) -> Iterator[Batch]:
        if num > len(self.files):
            raise DataError(f"{self.root} has {len(self.files)} images; --num {num} is larger.")
        for i in range(0, num, batch_size):
            files = self.files[i:min(num, i + batch_size)]
            images = [load_image(f, self.channels) for f in files]
            shapes = {tuple(x.shape) for x in images}
            if len(shapes) > 1:
                raise DataError(f"images in {self.root} have different sizes {sorted(shapes)}; "
                                f"resize them to one size first.")
            meta = self.metadata[i:i + len(files)] if self.metadata else None
            yield Batch(torch.stack(images), meta)


class GeneratorSource(ImageSource):
    """Images drawn from a generator folder (:mod:`softdimo.sample`) with its default sampler.

    Class generators get labels 0..K−1 in round-robin order; text generators the committed
    held-out prompts of the digit world (tags interleaved), or the GenEval metadata list
    ``prompts``, cycled, with their metadata. ``sampling`` (a :class:`softdimo.sample.SamplingOptions`)
    overrides the model's steps / CFG / temperature. Under several processes, process ``rank`` draws every
    ``world``-th batch with seed ``seed · world + rank`` (:mod:`softdimo.eval.shard`).
    """

    shardable = True

    def __init__(self, path: Path, generator: Any, sampling: Any = None,
                 prompts: list[dict[str, Any]] | None = None):
        self.gen = generator
        self.sampling = sampling
        self.prompts = prompts if generator.cond_kind == "text" else None
        self.name = f"{generator.kind}:{path}"
        if self.prompts is not None:
            self.name += f"[first {len(self.prompts)} held-out prompts]"

    def batches(self, num: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        if self.prompts is None:
            conds = conditions_for(self.gen, num)
        else:
            conds = conditions_for(self.gen, num, prompts=[m["prompt"] for m in self.prompts], metadata=self.prompts)
        g = torch.Generator().manual_seed(seed * world + rank)
        for i in shard_starts(num, batch_size, rank, world):
            c = conds.slice(i, min(num, i + batch_size))
            x = self.gen.generate(labels=c.labels, prompts=c.prompts, options=self.sampling, generator=g)
            yield Batch(x.float().cpu(), c.metadata)


def open_source(model: str, data: DataConfig, sampling: Any = None,
                prompts: list[dict[str, Any]] | None = None) -> ImageSource:
    """Resolve ``--model`` to an :class:`ImageSource`.

    ``sampling`` (optional :class:`softdimo.sample.SamplingOptions`) overrides a generator's
    default sampler; it is an error for any other source. ``prompts`` (GenEval metadata dicts,
    each with a ``"prompt"``) replaces the held-out prompts a text generator draws.
    """
    src = _open_source(model, data, prompts)
    if sampling is not None:
        if not isinstance(src, GeneratorSource):
            raise SoftdimoError(f"sampler options (steps / cfg / temperature) apply to generator folders "
                                f"only; {src.name} is not one.")
        src.sampling = sampling
    return src


def _open_source(model: str, data: DataConfig, prompts: list[dict[str, Any]] | None = None) -> ImageSource:
    if model.startswith("data:"):
        parts = model.split(":")
        if len(parts) not in (2, 3) or parts[1] not in ("mnist", "fashion", "world"):
            raise DataError(f"--model {model!r}: write data:NAME or data:NAME:SPLIT with NAME in "
                            f"mnist, fashion, world and SPLIT in train, test.")
        cfg = DataConfig(**{**to_dict(data), "dataset": parts[1]})
        return DatasetSource(cfg, parts[2] if len(parts) == 3 else "test")
    path = Path(model)
    if not path.exists():
        raise DataError(f"--model {model!r} does not exist. Give a model folder, a folder of "
                        f"images, or data:NAME[:SPLIT].")
    if read_kind(path) is not None:  # teachers and students, by their manifest kind
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return GeneratorSource(path, load_generator(path, device), prompts=prompts)
    if (path / "config.json").is_file():
        raise SoftdimoError(f"{path} is a model folder but not a generator softdimo can sample "
                            f"from (a tokenizer or classifier?). Pass a teacher or student folder.")
    channels = 1 if data.dataset in ("mnist", "fashion") else 3
    return FolderSource(path, channels)


def evaluate(model: str, metrics: list[str] | tuple[str, ...], num: int, data: DataConfig | None = None,
             batch_size: int = 50, seed: int = 0, progress: bool = True,
             cache_dir: str | None = None, sampling: Any = None, shard: bool = True,
             prompts: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """Compute ``metrics`` for ``num`` images of ``model`` against ``data``'s test split.

    ``sampling`` (a :class:`softdimo.sample.SamplingOptions`) overrides a generator folder's
    default sampler (steps, CFG scale, temperature). Under ``torchrun`` the sampling is shared
    by the processes of the group (:mod:`softdimo.eval.shard`); rank 0 computes the metrics and
    the other ranks return None. Pass ``shard=False`` when only some processes call this.
    ``prompts`` (GenEval metadata dicts) replaces the held-out prompts a text generator draws.
    """
    data = data or DataConfig()
    EvalOptions(num=num, batch_size=batch_size, seed=seed)
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise SoftdimoError(f"unknown metric(s) {bad}; choose from {', '.join(METRICS)}.")
    if "geneval" in metrics and data.dataset != "world":
        raise SoftdimoError("the geneval metric scores digit-world images: pass --data world.")
    grey = data.dataset in ("mnist", "fashion")
    if ({"domain_fid", "classifier_score"} & set(metrics)) and data.dataset not in SHIPPED_BY_DATASET:
        raise SoftdimoError(f"domain_fid and classifier_score use the in-project classifier of the dataset: "
                            f"they are defined for --data {' or '.join(SHIPPED_BY_DATASET)} only.")
    source = open_source(model, data, sampling, prompts)
    t0 = time.time()
    rank, world = process_group() if shard else (0, 1)
    drawn = draw(source, num, batch_size, seed, rank, world)
    if drawn is None or rank != 0:
        return None
    images: list[torch.Tensor] = []
    metadata: list[dict] = []
    for b in drawn:
        images.append(b.images.float().cpu())
        if b.metadata is not None:
            metadata.extend(b.metadata)
    fake = torch.cat(images)
    if fake.shape[0] != num:
        raise DataError(f"{source.name} gave {fake.shape[0]} images, expected {num}.")
    if grey and fake.shape[1] == 3:
        fake = fake.mean(1, keepdim=True)
    out: dict[str, Any] = {"source": source.name, "n": num, "reference": f"{dataset_id(data)}:test[:{num}]"}
    if isinstance(source, GeneratorSource):
        out["sampler"] = source.gen.describe(source.sampling)

    if {"fid", "pr"} & set(metrics):
        ext = InceptionFeatures()
        real = real_stats(data, "test", num, ext, cache_dir=cache_dir, progress=progress)
        feats = extract_features(fake, ext, batch_size=batch_size, progress=progress, desc="evaluated")
        out["evaluator"] = ext.evaluator_id
        if "fid" in metrics:
            out["fid"] = fid_from_features(feats, real.features)
        if "pr" in metrics:
            pr = precision_recall(real.features, feats, k=3)
            out["precision"], out["recall"] = pr.precision, pr.recall
    if {"domain_fid", "classifier_score"} & set(metrics):
        clf = load_shipped_classifier(data.dataset)
        if "domain_fid" in metrics:
            real_img = torch.cat(list(image_batches(build_dataset(data, "test"), num)))
            out["domain_fid"] = domain_fid(real_img, fake, clf)
        if "classifier_score" in metrics:
            out["classifier_score"] = classifier_score(fake, clf)
        out["domain_evaluator"] = domain_evaluator(data.dataset)
    if "geneval" in metrics:
        if len(metadata) != num:
            raise DataError(f"{source.name} has no GenEval metadata for its images; a folder needs "
                            f"a metadata.jsonl with one line per image.")
        res = GenEvalScorer(load_shipped_classifier()).score(fake, metadata)
        out["geneval"] = res["overall"]
        out["geneval_per_tag"] = res["per_tag"]
    out["seconds"] = time.time() - t0
    return out


__all__ = ["METRICS", "Batch", "ImageSource", "DatasetSource", "FolderSource", "GeneratorSource", "open_source",
           "evaluate"]
