"""One validation layer: every numeric knob declares its range, checked centrally; bad input writes nothing.

* every int / float knob of every config class a command reads (run configs, model configs read
  from ``config.json``, samplers, TTEO, bench) carries a :class:`softdimo.config.Range`;
* :func:`softdimo.config.load_config` refuses a value outside it, naming the key and the range,
  and so does a config built in Python;
* the command line: exit status 2 and no traceback for the issue's cases (``train.lr=-1``,
  ``train.max_steps=-5``, a damaged ``config.yaml`` under ``--resume``, a binary
  ``--prompts-file``, a truncated PNG under ``eval``), nothing written; ``--debug`` shows the
  traceback; every command takes ``--allow-pickle``; a resumed run says where it resumed.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing

import pytest

import softdimo
from softdimo.cli import build_parser, main
from softdimo.config import TrainConfig, field_range, load_config
from softdimo.errors import ConfigError, SoftdimoError
from tiny_models import distill_args, make_student, make_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


def _is_numeric(tp) -> bool:
    if tp in (int, float):
        return True
    if typing.get_origin(tp) in (typing.Union, types.UnionType, list, tuple):
        return any(_is_numeric(a) for a in typing.get_args(tp) if a is not Ellipsis)
    return False


def config_classes() -> set[type]:
    """Every config class a command reads: run configs and what they nest, model configs, samplers, TTEO, bench."""
    from softdimo.bench import BenchConfig
    from softdimo.evaluate import EvalOptions
    from softdimo.pretrained import PretrainedMixin
    from softdimo.run import TRAIN_COMMANDS
    from softdimo.sample import SampleRequest, SamplingOptions
    from softdimo.tteo import TTEOConfig, TTEORequest

    for m in pkgutil.walk_packages(softdimo.__path__, "softdimo."):
        if not m.name.endswith("__main__"):
            try:
                importlib.import_module(m.name)
            except ImportError:  # an optional dependency (e.g. the serve extra) is not installed
                pass
    roots = {tc.load()[0] for tc in TRAIN_COMMANDS.values()} | {TTEOConfig, BenchConfig, SamplingOptions,
                                                                  SampleRequest, TTEORequest, EvalOptions}
    stack = list(roots)

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    stack += [getattr(c, "config_class") for c in subclasses(PretrainedMixin)
              if hasattr(c, "config_class") and c.__module__.startswith("softdimo.")]  # not the tests' own models
    from softdimo.mdm import MaskGITSampler, MaskSchedule
    from softdimo.mdm.onestep import OneStepSampler

    stack += [MaskGITSampler, MaskSchedule, OneStepSampler]
    seen: set[type] = set()
    while stack:
        cls = stack.pop()
        if cls in seen or not dataclasses.is_dataclass(cls):
            continue
        seen.add(cls)
        for tp in typing.get_type_hints(cls).values():
            for t in (tp, *typing.get_args(tp)):
                if dataclasses.is_dataclass(t):
                    stack.append(t)
    return seen


def test_every_numeric_knob_declares_its_range():
    classes = config_classes()
    assert len(classes) > 25
    missing = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _is_numeric(hints[f.name]) and field_range(f) is None and f.name != "labels":
                missing.append(f"{cls.__module__}.{cls.__name__}.{f.name}")
    assert not missing, "numeric knobs without a declared range (use config.knob):\n" + "\n".join(sorted(missing))


@pytest.mark.parametrize("override, says", [
    ("train.lr=-1", "config key 'train.lr' must be > 0; got -1"),
    ("train.max_steps=-5", "config key 'train.max_steps' must be ≥ 1; got -5"),
    ("train.adam_betas=[0.9, 1.0]", "config key 'train.adam_betas[1]' must be in [0, 1); got 1.0"),
    ("dimo.sigma=.nan", "config key 'dimo.sigma' must be in [0, 1]; got nan"),
    ("train.grad_clip=.inf", "config key 'train.grad_clip' must be > 0; got inf"),
    ("gan.mask_ratio_range=[0, 2]", "config key 'gan.mask_ratio_range[1]' must be in [0, 1]; got 2"),
    ("diagnostics.per_condition=1", "config key 'diagnostics.per_condition' must be ≥ 2; got 1"),
    ("train.faults.kill_at=-1", "config key 'train.faults.kill_at' must be ≥ 0; got -1"),
])
def test_out_of_range_values_name_the_key_and_the_range(override, says):
    from softdimo.distill.refine import RefineRunConfig

    with pytest.raises(ConfigError) as err:
        load_config(RefineRunConfig, "configs/mnist/soft_gan.yaml", [override])
    assert says in str(err.value) and "configs/mnist/soft_gan.yaml" in str(err.value)


def test_configs_built_in_python_are_held_to_the_same_ranges():
    from softdimo.mdm import MaskGITSampler

    with pytest.raises(ConfigError, match="TrainConfig.max_steps must be ≥ 1; got -5"):
        TrainConfig(max_steps=-5)
    with pytest.raises(ConfigError, match="MaskGITSampler.temperature must be ≥ 0"):
        MaskGITSampler(temperature=-1.0)
    with pytest.raises(ConfigError, match="train.run_name"):
        TrainConfig(run_name="../elsewhere")


def test_a_model_config_json_out_of_range_is_refused(tmp_path):
    import json

    from softdimo.mdm import MaskedTransformer

    make_teacher().mdm.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**cfg, "dropout": 1.5}))
    with pytest.raises(ConfigError, match="'dropout' must be in \\[0, 1\\)"):
        MaskedTransformer.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_bytes(b"\xff\x00")
    with pytest.raises(SoftdimoError, match="not a UTF-8 text file"):
        MaskedTransformer.from_pretrained(tmp_path / "m")


# ---------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    t = make_teacher()
    t.save_pretrained(root / "teacher")
    make_student(t).save_pretrained(root / "student")
    return root / "teacher"


def _files(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("extra, says", [
    (["train.max_steps=-5"], "must be ≥ 1; got -5"),
    (["train.lr=-1"], "must be > 0; got -1"),
    (["train.run_name=a/b"], "train.run_name"),
    (["train.out_dir={tmp}/file/sub"], "is a file"),
])
def test_bad_training_input_exits_2_and_writes_nothing(teacher, tmp_path, capsys, extra, says):
    (tmp_path / "file").write_text("x")
    before = _files(tmp_path)
    assert main(distill_args(teacher, tmp_path, "r", 2, *[e.format(tmp=tmp_path) for e in extra])) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert _files(tmp_path) == before


@pytest.mark.parametrize("damage", [b"\xff\xfe\x00\x01", b"train: [\n", b"- 1\n"])
def test_resume_with_a_damaged_config_yaml(teacher, tmp_path, capsys, damage):
    assert main(distill_args(teacher, tmp_path, "r", 2)) == 0
    saved = tmp_path / "distill" / "r" / "config.yaml"
    saved.write_bytes(damage)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "distill" / "r").rglob("*")}
    assert main(distill_args(teacher, tmp_path, "r", 4, "--resume")) == 2
    err = capsys.readouterr().err
    assert "config.yaml" in err and "Traceback" not in err
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "distill" / "r").rglob("*")} == before


def test_resume_says_where_it_resumed_without_a_progress_bar(teacher, tmp_path, capsys):
    assert main(distill_args(teacher, tmp_path, "r", 2)) == 0
    capsys.readouterr()
    assert main(distill_args(teacher, tmp_path, "r", 4, "--resume")) == 0  # distill_args passes --no-progress
    assert "resumed from checkpoint-2 at step 2 of 4" in capsys.readouterr().out


def test_binary_prompts_file_and_truncated_png(teacher, tmp_path, capsys):
    from PIL import Image
    import numpy as np

    (tmp_path / "p.txt").write_bytes(b"\xff\xfe\x00\x81binary")
    args = ["sample", "--model", str(teacher.parent / "student"), "--out", str(tmp_path / "o.png"), "--no-progress"]
    assert main([*args, "--prompts-file", str(tmp_path / "p.txt")]) == 2
    err = capsys.readouterr().err
    assert "not a UTF-8 text file" in err and "Traceback" not in err
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(images / f"{i}.png")
    data = (images / "1.png").read_bytes()
    (images / "1.png").write_bytes(data[: len(data) // 2])
    assert main(["eval", "--model", str(images), "--metrics", "classifier_score", "--num", "3", "--no-progress",
                 "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "1.png" in err and "Traceback" not in err and not (tmp_path / "r.json").exists()


def test_every_command_takes_allow_pickle_and_debug():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        options = {o for a in p._actions for o in a.option_strings}
        assert {"--allow-pickle", "--debug"} <= options, name


@pytest.mark.parametrize("extra, says", [
    (["--port", "70000"], "--port must be in [0, 65535]"),
    (["--checkpoints", "{tmp}/file"], "is not a folder"),
    (["--teacher", "{tmp}/nope"], "not a generator folder"),
    (["--students", "{tmp}/file"], "not a generator folder"),
    (["--device", "cuda"], "cuda"),
])
def test_serve_refuses_bad_input_before_it_starts(tmp_path, capsys, monkeypatch, extra, says):
    import softdimo.cli as cli

    if extra[-1] == "cuda":
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(cli, "launch", lambda config: pytest.fail("serve started on bad input"))
    (tmp_path / "file").write_text("x")
    argv = ["serve", "--checkpoints", str(tmp_path)] + [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_debug_shows_the_traceback(teacher, tmp_path, capsys):
    args = ["sample", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o.png")]
    assert main(args) == 2 and "Traceback" not in capsys.readouterr().err
    with pytest.raises(SoftdimoError, match="does not exist"):
        main([*args, "--debug"])


def test_unexpected_errors_exit_1_without_a_traceback(monkeypatch, tmp_path, capsys):
    import softdimo.cli as cli

    def boom(args):
        raise RuntimeError("something softdimo did not foresee")

    args = ["sample", "--model", "m", "--out", str(tmp_path / "o.png")]
    monkeypatch.setattr(cli, "build_parser", _parser_with(cli, boom))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "internal error (RuntimeError" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        main([*args, "--debug"])


def _parser_with(cli, func):
    real = cli.build_parser

    def build():
        parser = real()
        sub = next(a for a in parser._actions if a.dest == "command")
        sub.choices["sample"].set_defaults(func=func)
        return parser

    return build
