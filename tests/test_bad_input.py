"""Bad input across the CLI and the API: a clear message, exit status 2, and nothing written or overwritten.

Covers malformed prompt files, empty and overlong prompts, class labels out of range, vocabulary
and grid mismatches between teacher, tokenizer and student, a student folder where a teacher is
expected, a run folder that already holds a different run, and pickle-based weights (refused
unless the user opts in, then read with ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import dataclasses
import pathlib
import shutil

import pytest
import torch

from softdimo.cli import main
from softdimo.distill import OneStepStudent
from softdimo.errors import CheckpointError
from softdimo.mdm import MDM_PRESETS, MaskedTransformer
from softdimo.pretrained import pickle_allowed
from softdimo.teachers import NativeTeacher
from softdimo.tokenizer import VQTokenizer
from tiny_models import TOK, distill_args, make_student, make_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

LONG_PROMPT = " ".join(["a red 3 to the left of a blue 7"] * 8)  # far beyond the tiny model's 16 tokens


def to_pickle_folder(folder: pathlib.Path) -> None:
    """Replace a pretrained folder's model.safetensors by the same weights in pytorch_model.bin."""
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Folders: class and text teachers, a student, a tokenizer, a pickle-only teacher, prompt files."""
    root = tmp_path_factory.mktemp("models")
    teacher = make_teacher()
    teacher.save_pretrained(root / "teacher")
    make_teacher(cond="text").save_pretrained(root / "text")
    make_student(teacher).save_pretrained(root / "student")
    teacher.tokenizer.save_pretrained(root / "tokenizer")
    teacher.save_pretrained(root / "pickled")
    to_pickle_folder(root / "pickled" / "mdm")
    # a teacher folder whose tokenizer has another vocabulary (K = 32) than its MDM (K = 16)
    teacher.save_pretrained(root / "mixed")
    shutil.rmtree(root / "mixed" / "tokenizer")
    VQTokenizer(dataclasses.replace(TOK, codebook_size=32)).save_pretrained(root / "mixed" / "tokenizer")
    # a student of another vocabulary than the teacher (for refine)
    mdm32 = MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], grid=TOK.grid, num_tokens=32))
    OneStepStudent(mdm32, VQTokenizer(dataclasses.replace(TOK, codebook_size=32))).save_pretrained(root / "student32")
    files = {
        "bad_json.jsonl": '{"prompt": "a red 3"}\n{"prompt": "a blue\n',
        "no_prompt.jsonl": '{"tag": "colors"}\n',
        "blank_prompt.jsonl": '{"prompt": "   "}\n',
        "empty.txt": "\n  \n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    return root


# (model folder, extra arguments, words the message must contain)
SAMPLE_CASES = {
    "label out of range": ("teacher", ["--labels", "0,10"], "[0, 9]"),
    "negative label": ("teacher", ["--labels=-1"], "[0, 9]"),
    "labels not integers": ("teacher", ["--labels", "a,b"], "comma-separated integers"),
    "prompts for a class model": ("teacher", ["--prompts", "a red 3"], "class-conditional"),
    "labels for a text model": ("text", ["--labels", "1"], "text-conditional"),
    "empty prompt": ("text", ["--prompts", "a red 3", " "], "empty"),
    "overlong prompt": ("text", ["--prompts", LONG_PROMPT], "longer than max_length"),
    "prompt file: bad JSON": ("text", ["--prompts-file", "{root}/bad_json.jsonl"], "line 2 is not valid JSON"),
    "prompt file: no prompt": ("text", ["--prompts-file", "{root}/no_prompt.jsonl"], '"prompt"'),
    "prompt file: blank prompt": ("text", ["--prompts-file", "{root}/blank_prompt.jsonl"], '"prompt"'),
    "prompt file: empty": ("text", ["--prompts-file", "{root}/empty.txt"], "holds no prompts"),
    "prompt file: missing": ("text", ["--prompts-file", "{root}/nope.txt"], "does not exist"),
    "zero images": ("teacher", ["--num", "0"], "--num must be ≥ 1"),
    "steps for a one-step student": ("student", ["--steps", "4"], "one-step"),
    "a tokenizer is not a generator": ("tokenizer", [], "not a generator folder"),
    "missing model": ("nope", [], "does not exist"),
    "pickle weights without opt-in": ("pickled", [], "--allow-pickle"),
    "teacher mixing vocabularies": ("mixed", [], "do not fit"),
}


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_sample_refuses_bad_input(models, tmp_path, capsys, case):
    model, extra, says = SAMPLE_CASES[case]
    out = tmp_path / "out"
    args = ["sample", "--model", str(models / model), "--out", str(out), "--no-progress",
            *[a.replace("{root}", str(models)) for a in extra]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and "softdimo sample: error:" in err
    assert not out.exists()  # nothing written


def test_sample_output_is_never_overwritten(models, tmp_path, capsys):
    out = tmp_path / "g.png"
    base = ["sample", "--model", str(models / "teacher"), "--steps", "2", "--labels", "1", "--no-progress"]
    assert main([*base, "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main([*base, "--labels", "2", "--out", str(out)]) == 2 and "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


# ---------------------------------------------------------------------- training commands
def _runs(path: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("case, teacher, extra, says", [
    ("a student where a teacher is expected", "student", [], "is a one-step student folder"),
    ("a teacher mixing vocabularies", "mixed", [], "do not fit"),
    ("batch not divisible", "teacher", ["train.grad_accum=3"], "divisible"),
    ("fp16 without loss scaling", "teacher", ["train.mixed_precision=fp16"], "bf16"),
    ("unknown key", "teacher", ["train.max_stepz=3"], "Did you mean 'train.max_steps'"),
    ("ill-typed key", "teacher", ["dimo.sigma=high"], "dimo.sigma"),
    ("pickle weights without opt-in", "pickled", [], "--allow-pickle"),
])
def test_distill_refuses_bad_input(models, tmp_path, capsys, case, teacher, extra, says):
    assert main(distill_args(models / teacher, tmp_path, "r", 2, *extra)) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not _runs(tmp_path)  # nothing written: no config, weights, logs or checkpoints


def test_refine_refuses_a_student_of_another_vocabulary(models, tmp_path, capsys):
    args = ["refine", "--config", "configs/mnist/soft_gan.yaml", f"teacher={models / 'teacher'}",
            f"student={models / 'student32'}", "train.max_steps=1", "train.batch_size=4", "train.threads=1",
            f"train.out_dir={tmp_path}", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "K=32" in err and "Traceback" not in err


def test_a_folder_holding_another_run_is_never_overwritten(models, tmp_path, capsys):
    assert main(distill_args(models / "teacher", tmp_path, "r", 2)) == 0
    final = tmp_path / "distill" / "r" / "final"
    before = {f: (final / f).read_bytes() for f in _runs(final)}
    other = make_teacher(seed=1)
    other.save_pretrained(tmp_path / "other")
    # the same run name with another teacher: refused with and without --resume
    assert main(distill_args(tmp_path / "other", tmp_path, "r", 2)) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(distill_args(tmp_path / "other", tmp_path, "r", 4, "--resume")) == 2
    assert "differs from the new one in section(s) teacher" in capsys.readouterr().err
    assert {f: (final / f).read_bytes() for f in _runs(final)} == before


# ---------------------------------------------------------------------- safe loading
class Payload:
    """Unpickling this touches a file: proof that code ran."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickle_weights_are_refused_unless_opted_in(tmp_path):
    m = make_teacher().mdm
    m.save_pretrained(tmp_path / "m")
    to_pickle_folder(tmp_path / "m")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        MaskedTransformer.from_pretrained(tmp_path / "m")
    want = m.state_dict()
    for loaded in (MaskedTransformer.from_pretrained(tmp_path / "m", allow_pickle=True).state_dict(),
                   _in_context(lambda: MaskedTransformer.from_pretrained(tmp_path / "m").state_dict())):
        assert all(torch.equal(want[k], loaded[k]) for k in want)
    # an explicit allow_pickle=False wins over the surrounding opt-in
    with pickle_allowed(), pytest.raises(CheckpointError, match="pickle-based"):
        MaskedTransformer.from_pretrained(tmp_path / "m", allow_pickle=False)


def _in_context(fn):
    with pickle_allowed():
        return fn()


def test_opted_in_pickle_never_runs_code(tmp_path):
    m = make_teacher().mdm
    m.save_pretrained(tmp_path / "m")
    marker = tmp_path / "code-ran"
    state = {k: v for k, v in m.state_dict().items()}
    torch.save({**state, "extra": Payload(marker)}, tmp_path / "m" / "model.pt")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="pickle-based"):
        MaskedTransformer.from_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        MaskedTransformer.from_pretrained(tmp_path / "m", allow_pickle=True)
    assert not marker.exists()


def test_cli_allow_pickle_flag(models, tmp_path, capsys):
    args = ["sample", "--model", str(models / "pickled"), "--steps", "2", "--labels", "3", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a.png")]) == 2
    assert "--allow-pickle" in capsys.readouterr().err and not (tmp_path / "a.png").exists()
    assert main([*args, "--out", str(tmp_path / "b.png"), "--allow-pickle"]) == 0
    assert (tmp_path / "b.png").is_file()
    assert NativeTeacher.from_pretrained(models / "pickled", allow_pickle=True).num_tokens == 16
