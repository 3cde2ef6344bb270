"""Typed config loading: presets, overrides and every error path."""
from dataclasses import dataclass, field
from typing import Literal

import pytest

from softdimo.config import TrainConfig, load_config, parse_override, to_dict
from softdimo.errors import ConfigError


@dataclass
class Inner:
    width: int = 8
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    pair: tuple[float, float] = (0.0, 0.95)
    maybe: float | None = None


@dataclass
class Root:
    train: TrainConfig = field(default_factory=TrainConfig)
    inner: Inner = field(default_factory=Inner)
    name: str = "x"
    flag: bool = False


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_and_yaml_and_overrides(tmp_path):
    p = write(tmp_path, "train:\n  max_steps: 5\ninner:\n  width: 3\n  pair: [0.1, 0.2]\n")
    cfg = load_config(Root, p, ["train.lr=0.01", "inner.mode=b", "flag=true", "inner.maybe=2"])
    assert cfg.train.max_steps == 5 and cfg.train.lr == 0.01
    assert cfg.inner.width == 3 and cfg.inner.pair == (0.1, 0.2) and cfg.inner.mode == "b"
    assert cfg.flag is True and cfg.inner.maybe == 2.0 and isinstance(cfg.inner.maybe, float)
    assert cfg.train.batch_size == TrainConfig().batch_size
    assert to_dict(cfg)["inner"]["pair"] == [0.1, 0.2]


def test_int_accepted_for_float_but_not_reverse(tmp_path):
    assert load_config(Root, None, ["inner.rate=1"]).inner.rate == 1.0
    with pytest.raises(ConfigError, match="train.max_steps"):
        load_config(Root, None, ["train.max_steps=1.5"])


@pytest.mark.parametrize("override, key", [
    ("train.max_stepz=3", "train.max_stepz"),
    ("trian.lr=3", "trian"),
    ("inner.width.deep=1", "inner.width"),
])
def test_unknown_keys_are_named(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(Root, None, [override])


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match="Did you mean 'train.max_steps'"):
        load_config(Root, None, ["train.max_stepz=3"])


@pytest.mark.parametrize("override, key", [
    ("train.batch_size=abc", "train.batch_size"),
    ("flag=3", "flag"),
    ("inner.mode=c", "inner.mode"),
    ("inner.pair=[1, 2, 3]", "inner.pair"),
    ("name=[1]", "name"),
    ("train.mixed_precision=fp8", "train.mixed_precision"),
])
def test_wrong_types_are_named(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(Root, None, [override])


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Root, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown config key 'inner.wdth'"):
        load_config(Root, write(tmp_path, "inner:\n  wdth: 1\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Root, write(tmp_path, "train: [\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(Root, write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="section"):
        load_config(Root, write(tmp_path, "train: 3\n"))


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=") == (["a"], "")
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("train.max_steps")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("train..x=1")


def test_every_shipped_preset_loads_with_its_command_schema():
    """Each configs/<data>/<stage>.yaml validates against the config class of the command that reads it."""
    from softdimo.cli import TRAIN_COMMANDS
    from softdimo.config import load_config
    from softdimo.paths import project_root

    by_stem = {"tokenizer": "train-tokenizer", "classifier": "train-classifier", "teacher": "train-teacher",
               "dimo": "distill", "soft_gan": "refine", "soft_gan_long": "refine"}
    presets = sorted((project_root() / "configs").glob("*/*.yaml"))
    assert presets
    for path in presets:
        assert path.stem in by_stem, f"{path}: no command reads this preset"
        cfg_cls, _ = TRAIN_COMMANDS[by_stem[path.stem]].load()
        load_config(cfg_cls, str(path), [])
