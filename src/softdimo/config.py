"""Typed configuration: dataclass schemas, YAML presets and dotted command-line overrides.

Every knob is a dataclass field with a default and a docstring-like comment; nothing is encoded
in strings. :func:`load_config` reads a YAML file, applies ``a.b.c=value`` overrides and checks
every key and type against the schema, so that a typo fails early with a message that names
the key (and suggests the closest valid one).

Every numeric knob declares the values it accepts where it is defined: ``lr: float =
knob(1e-4, gt=0)`` puts a :class:`Range` in the field's metadata. :func:`from_dict` (hence
:func:`load_config` and every ``config.json`` a model folder is read from) checks each value
against it and names the key and the allowed range; :func:`check_ranges` checks an instance
built in Python (each config's ``__post_init__`` calls it). Checks that relate several fields
stay in ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import torch
import yaml

from .errors import ConfigError
from .files import atomic_write_bytes, read_text

T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """The values a numeric knob accepts: ``lo ≤ x ≤ hi`` (a bound may be open or absent).

    NaN and ±inf are never accepted. For a list or tuple of numbers the range applies to each
    item; ``None`` (an optional knob switched off) is always accepted.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, x: float) -> bool:
        if isinstance(x, float) and not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))

    def describe(self) -> str:
        """``in [0, 1)``, ``≥ 1``, ``> 0`` or ``a finite number``."""
        if self.lo is not None and self.hi is not None:
            return (f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '≥'} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '≤'} {_num(self.hi)}"
        return "a finite number"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def knob(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field whose numbers must lie in a range: ``knob(0.1, ge=0, le=1)``, ``knob(1, ge=1)``.

    ``ge``/``gt`` give the lower bound (closed/open), ``le``/``lt`` the upper one; none of them
    means any finite number. The range lives in the field's metadata under ``"range"``.
    """
    if ge is not None and gt is not None or le is not None and lt is not None:
        raise TypeError("give at most one lower bound (ge or gt) and one upper bound (le or lt)")
    rng = Range(lo=gt if gt is not None else ge, hi=lt if lt is not None else le,
                lo_open=gt is not None, hi_open=lt is not None)
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata={"range": rng})
    return field(default=default, metadata={"range": rng})


def field_range(f: dataclasses.Field) -> Range | None:
    """The :class:`Range` a field declares (None: not a ranged knob)."""
    return f.metadata.get("range")


def _numbers(value: Any) -> list[tuple[str, Any]]:
    """``(suffix, number)`` of a number or of each number in a list/tuple (booleans are not numbers)."""
    if isinstance(value, (list, tuple)):
        return [(f"[{i}]", v) for i, v in enumerate(value) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [("", value)]
    return []


def range_error(f: dataclasses.Field, value: Any) -> tuple[str, str] | None:
    """``(index suffix, "must be … ; got …")`` for a value outside its field's range, else None."""
    rng = field_range(f)
    if rng is None or value is None:
        return None
    for suffix, v in _numbers(value):
        if not rng.contains(v):
            return suffix, f"must be {rng.describe()}; got {v!r}."
    return None


def check_ranges(cfg: Any, flags: dict[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` if a ranged field of the dataclass instance ``cfg`` is out of range.

    Checks ``cfg``'s own fields (nested sections check themselves when they are built). Each
    config's ``__post_init__`` calls this, so a config built in Python is held to the same ranges.
    ``flags`` (for the options of a command) names each field by its command-line flag: the
    field ``batch_size`` is ``--batch-size`` unless ``flags`` maps it to another name.
    """
    for f in dataclasses.fields(cfg):
        bad = range_error(f, getattr(cfg, f.name))
        if bad:
            name = (flags.get(f.name) or "--" + f.name.replace("_", "-")) if flags is not None \
                else f"{type(cfg).__name__}.{f.name}"
            raise ConfigError(f"{name}{bad[0]} {bad[1]}")


@dataclass
class FaultConfig:
    """Fault injection (all off by default): proves that no failure loses work.

    Each knob names a 1-based optimiser step k (0 = off), counted as in ``checkpoint-k/`` and
    ``metrics.jsonl``. The NaN/Inf guards let training continue; the others stop it, leaving the
    newest complete checkpoint intact for ``--resume``.
    """

    nan_loss_at: int = knob(0, ge=0)  # every loss of step k is NaN (skipped and counted as nonfinite_loss)
    inf_grad_at: int = knob(0, ge=0)  # one gradient entry of step k is +Inf (zeroed and counted as nonfinite_grad)
    raise_at: int = knob(0, ge=0)  # an exception after the updates of step k (before its log and checkpoint)
    disk_full_at: int = knob(0, ge=0)  # writing checkpoint-k fails with "No space left on device" (ENOSPC)
    kill_at: int = knob(0, ge=0)  # SIGKILL the process after the updates of step k (a crash or power loss)
    kill_in_checkpoint_at: int = knob(0, ge=0)  # SIGKILL while checkpoint-k is half written (before its rename)

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class TrainConfig:
    """Knobs shared by every training stage (the one training loop reads these)."""

    max_steps: int = knob(1000, ge=1)  # optimiser steps (each may accumulate several micro-batches)
    batch_size: int = knob(64, ge=1)  # global batch per optimiser step, summed over processes and micro-batches
    grad_accum: int = knob(1, ge=1)  # micro-batches per optimiser step
    lr: float = knob(1e-4, gt=0)  # learning rate of the main (generator) optimiser
    warmup_steps: int = knob(0, ge=0)  # linear learning-rate warm-up; constant afterwards
    optimizer: Literal["adam", "adamw"] = "adam"  # optimiser of every phase (AdamW: decoupled weight decay)
    weight_decay: float = knob(0.0, ge=0)
    adam_betas: tuple[float, float] = knob((0.9, 0.999), ge=0, lt=1)  # each β in [0, 1)
    adam_eps: float = knob(1e-8, gt=0)
    grad_clip: float | None = knob(None, gt=0)  # max global grad norm of the main optimiser; None = off
    seed: int = knob(0, ge=0, le=2**31 - 1)  # global seed; process r uses seed * world_size + r for its own draws
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    ema_decay: float | None = knob(None, ge=0, lt=1)  # EMA of the exported model; None = no EMA
    ema_warmup: bool = True  # decay min(d, (1+s)/(10+s)) as in the Di[M]O code
    checkpoint_every: int = knob(500, ge=0)  # steps between resumable checkpoint-N/ folders (0 = only at the end)
    checkpoints_total_limit: int = knob(2, ge=0)  # keep at most this many checkpoint-N/ folders
    log_every: int = knob(10, ge=1)  # steps between metrics.jsonl / TensorBoard rows
    sample_every: int = knob(500, ge=0)  # steps between samples/step-N.png grids (0 = off)
    out_dir: str = "runs"  # run folders go to <out_dir>/<command>/<run_name>/
    run_name: str = ""  # defaults to the config file's stem
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = knob(0, ge=0, le=4096)  # torch intra-op threads (0 = leave torch's default)
    export_dtype: Literal["float32", "float16"] = "float32"  # dtype of floating weights in final/
    gradient_checkpointing: bool = False  # recompute block activations in backward (less memory, ~30% slower)
    faults: FaultConfig = field(default_factory=FaultConfig)  # fault injection for tests (off)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.run_name in (".", "..") or any(c in self.run_name for c in "/\\\0"):
            raise ConfigError(f"train.run_name must be one folder name (no '/', '..'); got {self.run_name!r}. "
                              f"Put runs elsewhere with train.out_dir.")


def resolve_device(name: str, what: str = "--device") -> str:
    """``auto`` → ``cuda`` when a GPU is usable, else ``cpu``; ``cuda`` without a usable GPU is a :class:`ConfigError`."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what} cuda: no usable GPU here (torch {torch.__version__}, CUDA "
                          f"{torch.version.cuda or 'not compiled in'}); use {what} cpu or auto.")
    return name


def torch_dtype(name: str):
    """``"float16"`` → ``torch.float16`` (for :attr:`TrainConfig.export_dtype`)."""
    return getattr(torch, name)


@dataclass
class DataConfig:
    """Which images a stage reads."""

    dataset: Literal["mnist", "fashion", "world", "folder"] = "mnist"
    root: str = ""  # image folder for dataset=folder
    image_size: int = knob(0, ge=0, le=4096)  # resize folder images to this square size (0 = keep; must be equal)
    channels: int = knob(0, ge=0, le=3)  # 1 or 3 for dataset=folder (0 = infer from the first image)
    world_size_px: int = knob(32, ge=24, le=1024)  # digit-world canvas size
    world_train_size: int = knob(60000, ge=1)  # number of digit-world training scenes
    world_test_size: int = knob(10000, ge=1)  # number of digit-world evaluation scenes
    world_seed: int = knob(0, ge=0, le=2**31 - 1)  # seed of the digit-world scene draws
    world_layout: Literal["free", "slots"] = "slots"  # digit placement, slots or free (docs/method.md §8.7)
    world_slots: int = knob(2, ge=2, le=16)  # slots per side for world_layout=slots
    world_digit_px: int = knob(0, ge=0, le=1024)  # digit size in pixels (0 = the layout's default)
    world_paraphrases: float = knob(0.0, ge=0, le=1)  # share of scenes captioned by a paraphrase (§8.8)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.channels == 2:
            raise ConfigError("data.channels must be 0 (infer), 1 (grey) or 3 (RGB); got 2.")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it converted (int→float, list→tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: config key '{key}' expects {_type_name(tp)}, got {value!r}.")
    if origin is Literal:
        if value in get_args(tp):
            return value
        if isinstance(value, bool):  # YAML reads no/off/false (yes/on/true) as booleans
            for word in (("yes", "on", "true") if value else ("no", "off", "false")):
                if word in get_args(tp):
                    return word
        choices = ", ".join(repr(a) for a in get_args(tp))
        raise ConfigError(f"{where}: config key '{key}' must be one of {choices}; got {value!r}.")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: config key '{key}' is a section; give a mapping, got {value!r}.")
        return from_dict(tp, value, where=where, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: config key '{key}' expects a list, got {value!r}.")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: config key '{key}' expects {len(args)} items, got {len(value)}.")
            return tuple(_coerce(v, a, f"{key}[{i}]", where) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: config key '{key}' expects a mapping, got {value!r}.")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: config key '{key}' expects true/false, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: config key '{key}' expects an integer, got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: config key '{key}' expects a number, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: config key '{key}' expects a string, got {value!r}.")
    raise ConfigError(f"{where}: config key '{key}' has an unsupported type {tp}.")


def _unknown_key(cls: type, key: str, prefix: str, where: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(f"{where}: unknown config key '{prefix}{key}'.{hint} Valid keys here: "
                       f"{', '.join(prefix + n for n in names)}.")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config", prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at '{prefix or 'top level'}', got {data!r}.")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(cls, str(key), prefix, where)
        default = _section_default(fields[key])
        if default is not None and isinstance(value, dict):  # a partial section keeps this class's defaults
            value = _merged(to_dict(default), value)
        kwargs[key] = _coerce(value, hints[key], prefix + key, where)
        bad = range_error(fields[key], kwargs[key])
        if bad:
            raise ConfigError(f"{where}: config key '{prefix}{key}{bad[0]}' {bad[1]}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: invalid values at '{prefix or 'top level'}': {e}") from e


def _section_default(f: dataclasses.Field) -> Any:
    """The default instance of a nested-section field (its ``default_factory``), else None.

    A stage may give a shared section its own defaults (``DistillRunConfig.train`` defaults to
    ``TrainConfig(lr=1e-5, ema_decay=0.9999, …)``); keys a YAML section leaves out keep those.
    """
    if f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
        return None
    value = f.default_factory()  # type: ignore[misc]
    return value if dataclasses.is_dataclass(value) else None


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys laid over it (a nested section given in ``update`` is then
    completed by its own field's default, one level down)."""
    return {**base, **update}


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists) of a config dataclass, for YAML/JSON output."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key.path=value (e.g. train.max_steps=10).")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key; write it as key.path=value.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{text}': value is not valid YAML ({e}).") from e
    return key.split("."), value


def _set_path(data: dict[str, Any], path: list[str], value: Any, cls: type, text: str) -> None:
    cur, cur_cls = data, cls
    for i, part in enumerate(path):
        names = {f.name: f for f in dataclasses.fields(cur_cls)}
        if part not in names:
            raise _unknown_key(cur_cls, part, ".".join(path[:i]) + ("." if i else ""), f"override '{text}'")
        if i == len(path) - 1:
            cur[part] = value
            return
        sub_cls = get_type_hints(cur_cls)[part]
        if not dataclasses.is_dataclass(sub_cls):
            raise ConfigError(f"override '{text}': '{'.'.join(path[:i + 1])}' is not a section.")
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"override '{text}': '{'.'.join(path[:i + 1])}' is not a mapping.")
        cur, cur_cls = nxt, sub_cls


def _read_sections(path: str | Path) -> dict[str, Any]:
    """The mapping of sections in the YAML file ``path`` (ConfigError when missing or malformed)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file '{p}' does not exist. Presets live under configs/ "
                          f"(e.g. configs/mnist/tokenizer.yaml).")
    try:
        loaded = yaml.safe_load(read_text(p, "config file", ConfigError))
    except yaml.YAMLError as e:
        raise ConfigError(f"config file '{p}' is not valid YAML: {e}") from e
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping of sections, got {type(loaded).__name__}.")
    return loaded


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Load ``cls`` from a YAML file (optional) and dotted overrides; validate everything."""
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        where = str(path)
        data = _read_sections(path)
    for text in overrides:
        keys, value = parse_override(text)
        _set_path(data, keys, value, cls, text)
    return from_dict(cls, data, where=where)


def load_data_config(path: str | Path) -> DataConfig:
    """The ``data:`` section of a stage's YAML (a preset or a run's ``config.yaml``), validated; the
    other sections are not read. For commands that score against the images a model was trained on
    (e.g. ``softdimo eval --data-config configs/world/teacher.yaml``)."""
    section = _read_sections(path).get("data")
    if not isinstance(section, dict):
        raise ConfigError(f"config file '{path}' has no 'data:' section; pass a stage config such as "
                          f"configs/world/teacher.yaml or a run's config.yaml.")
    return from_dict(DataConfig, section, where=str(path), prefix="data.")


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_bytes(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())


__all__ = ["TrainConfig", "FaultConfig", "DataConfig", "load_config", "load_data_config", "from_dict", "to_dict", "save_config",
           "parse_override", "field", "knob", "Range", "field_range", "check_ranges", "resolve_device"]
