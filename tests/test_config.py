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
               "teacher_all": "train-teacher", "dimo": "distill", "soft_gan": "refine", "soft_gan_long": "refine", "soft_reward": "refine",
               "reward_miniclip": "train-reward", "reward_attribute": "train-reward"}
    from softdimo.tteo import TTEOConfig

    other = {"tteo": TTEOConfig}  # presets of commands that do not train
    presets = sorted(p for p in (project_root() / "configs").glob("*/*.yaml")
                     if p.parent.name != "accelerate")  # configs/accelerate/: launcher presets, not run configs
    assert presets
    for path in presets:
        assert path.stem in by_stem or path.stem in other, f"{path}: no command reads this preset"
        cfg_cls = other[path.stem] if path.stem in other else TRAIN_COMMANDS[by_stem[path.stem]].load()[0]
        load_config(cfg_cls, str(path), [])


# ---------------------------------------------------------------------- property-based (hypothesis)
import dataclasses  # noqa: E402
import types  # noqa: E402
import typing  # noqa: E402

import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _run_config_classes() -> dict[str, type]:
    """The config class of every training command, plus the test schema above."""
    from softdimo.cli import TRAIN_COMMANDS

    return {"root": Root, **{name: tc.load()[0] for name, tc in TRAIN_COMMANDS.items()}}


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, annotation) of every non-section field, recursing into sections."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _leaves(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, tp))
    return out


def _sections(cls: type, prefix: str = "") -> list[tuple[str, type]]:
    """(dotted prefix, class) of the top level and every nested section."""
    out = [(prefix, cls)]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _sections(hints[f.name], f"{prefix}{f.name}.")
    return out


KINDS = {  # YAML value kinds, each with values of only that kind
    "bool": st.booleans(),
    "int": st.integers(-10**6, 10**6),
    "float": st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not float(x).is_integer()),
    "str": st.text(max_size=12),
    "list": st.lists(st.integers(0, 9), max_size=4),
    "dict": st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9), max_size=2),
}


def _accepted(tp) -> set[str] | None:
    """Value kinds a field of annotation ``tp`` accepts (None: only specific values, a Literal)."""
    origin = typing.get_origin(tp)
    if tp is typing.Any:
        return set(KINDS)
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        for a in typing.get_args(tp):
            if a is not type(None):
                got = _accepted(a)
                if got is None:
                    return None
                kinds |= got
        return kinds
    if origin is typing.Literal:
        return None
    if origin in (list, tuple):
        return {"list"}
    if origin is dict or dataclasses.is_dataclass(tp):
        return {"dict"}
    return {bool: {"bool"}, int: {"int"}, float: {"int", "float"}, str: {"str"}}[tp]


def _wrong_value(tp):
    """A strategy of values that can never fit ``tp``."""
    kinds = _accepted(tp)
    if kinds is None:  # a Literal: any value outside its choices
        choices = typing.get_args(tp)
        return st.one_of(*KINDS.values()).filter(lambda v: v not in choices and v is not None)
    return st.one_of(*[s for k, s in KINDS.items() if k not in kinds])


def _load_yaml(tmp_path, cls, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(cls, path)


def _nest(key: str, value) -> dict:
    out: dict = {}
    cur = out
    *head, last = key.split(".")
    for part in head:
        cur = cur.setdefault(part, {})
    cur[last] = value
    return out


@PROPERTY
@given(data=st.data())
def test_property_ill_typed_values_name_their_key(tmp_path, data):
    """Any value of the wrong kind, at any key of any command's config, is refused naming that key."""
    classes = _run_config_classes()
    name = data.draw(st.sampled_from(sorted(classes)), label="command")
    key, tp = data.draw(st.sampled_from(_leaves(classes[name])), label="key")
    value = data.draw(_wrong_value(tp), label="value")
    with pytest.raises(ConfigError) as err:
        _load_yaml(tmp_path, classes[name], _nest(key, value))
    assert f"'{key}" in str(err.value)


@PROPERTY
@given(data=st.data(), unknown=st.from_regex(r"[a-z_][a-z0-9_]{0,14}", fullmatch=True))
def test_property_unknown_keys_are_named(tmp_path, data, unknown):
    """An unknown key in any section, in a file or as an override, is refused with its full dotted name."""
    classes = _run_config_classes()
    name = data.draw(st.sampled_from(sorted(classes)), label="command")
    prefix, section = data.draw(st.sampled_from(_sections(classes[name])), label="section")
    if unknown in {f.name for f in dataclasses.fields(section)}:
        unknown += "_x"
    key = prefix + unknown
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        _load_yaml(tmp_path, classes[name], _nest(key, 1))
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        load_config(classes[name], None, [f"{key}=1"])


YAML_TREES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3),
                          max_leaves=8)


@PROPERTY
@given(data=st.data(), value=YAML_TREES)
def test_property_loader_fails_only_with_config_errors(tmp_path, data, value):
    """Whatever a YAML file or an override holds at a real key, loading returns a config or raises ConfigError."""
    classes = _run_config_classes()
    name = data.draw(st.sampled_from(sorted(classes)), label="command")
    key = data.draw(st.sampled_from([k for k, _ in _leaves(classes[name])] + [p.rstrip(".") for p, _ in
                                                                            _sections(classes[name])[1:]]))
    try:
        _load_yaml(tmp_path, classes[name], _nest(key, value))
    except ConfigError:
        pass
    text = data.draw(st.text(max_size=20), label="override text")
    try:
        load_config(classes[name], None, [f"{key}={text}"])
    except ConfigError:
        pass


def test_every_command_config_round_trips_through_yaml(tmp_path):
    """Defaults → resolved config.yaml → load_config gives the same config back (what --resume relies on)."""
    from softdimo.config import save_config

    for name, cls in _run_config_classes().items():
        cfg = cls()
        save_config(cfg, tmp_path / f"{name}.yaml")
        assert load_config(cls, tmp_path / f"{name}.yaml") == cfg, name


def test_partial_section_keeps_the_stage_defaults(tmp_path):
    from softdimo.distill.train import DistillRunConfig

    stage_default = DistillRunConfig().train
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  max_steps: 7\n")
    cfg = load_config(DistillRunConfig, p)
    assert cfg.train.max_steps == 7
    assert cfg.train.ema_decay == stage_default.ema_decay != TrainConfig().ema_decay
    assert cfg.train.lr == stage_default.lr
    cfg = load_config(DistillRunConfig, None, ["train.max_steps=3"])
    assert (cfg.train.max_steps, cfg.train.ema_decay) == (3, stage_default.ema_decay)


def test_yaml_boolean_words_read_as_literal_choices():
    cfg = load_config(TrainConfig, None, ["mixed_precision=no"])
    assert cfg.mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_config(TrainConfig, None, ["mixed_precision=yes"])
