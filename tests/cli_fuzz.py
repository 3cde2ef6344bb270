"""A fuzzer for the whole command line (tests/test_fuzz_cli.py; benchmarks/bad_input.py at a larger budget).

Every command ``softdimo --help`` lists has a hypothesis strategy in :data:`STRATEGIES` that draws
an argument list: a cheap valid base (tiny models, one training step) with malformed values,
files and folders mixed in — out-of-range and ill-typed knobs taken from the typed configs'
declared ranges, unknown keys, broken override syntax, binary / empty / truncated / wrong-kind
files, folders where files are expected, damaged run folders under ``--resume``, pickles
(harmless and malicious) wherever a weights path is read, with and without ``--allow-pickle``.

:func:`run_case` calls :func:`softdimo.cli.main` in this process and returns an :class:`Outcome`:
the exit status, whether a traceback reached stderr, every file that changed (compared by
size, mtime and inode) and every ``torch.load`` made without ``--allow-pickle`` or without
``weights_only=True``. The properties (:func:`violations`): status 0 or 2, no traceback,
nothing changed outside the case's output folder, nothing changed at all on failure, no unsafe
load, and no code run from a pickle. ``serve`` builds its page as usual, but no server starts
(Gradio's launch is stubbed: it only checks that the host can be bound).

Paths in a drawn argument list are placeholders, resolved per case: ``@g/NAME`` a file or
folder of the shared gallery (read only), ``@m/NAME`` a model folder, ``@out/NAME`` a fresh path
in the case's own output folder, ``@pre/NAME[/SUB]`` a copy of gallery item NAME placed in the
output folder before the case (an existing output; SUB a path below it). Outputs (``--out``,
``--json``, ``train.out_dir``, ``convert``'s DST) are always ``@out`` or ``@pre`` paths, so the
one place a case may change is its own output folder; a ``--resume`` case gets a copy of a run
template as its run folder there.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import shutil
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from hypothesis import strategies as st
from PIL import Image

from softdimo.cli import build_parser, main
from softdimo.config import field_range
from softdimo.run import TRAIN_COMMANDS
from test_safe_loading import legacy_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "configs"
LONG_PROMPT = " ".join(["a red 3 to the left of a blue 7"] * 8)


# ----------------------------------------------------------------------------- the sandbox
class Payload:
    """Unpickling this touches ``marker``: proof that code ran from a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _png(path: Path, size: int, seed: int, channels: int = 1) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size, size) if channels == 1 else (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _to_pickle(folder: Path, name: str = "pytorch_model.bin", extra: dict | None = None) -> None:
    """Replace ``folder/model.safetensors`` by the same tensors (plus ``extra``) in a torch.save pickle."""
    from safetensors.torch import load_file

    torch.save({**load_file(str(folder / "model.safetensors")), **(extra or {})}, folder / name)
    (folder / "model.safetensors").unlink()


class Sandbox:
    """The shared files of every case: models, a gallery of bad and good inputs, run templates.

    Built once (a few seconds); cases only read it, and write under their own output folder.
    """

    def __init__(self, root: Path):
        import tiny_models as tm  # the tests' tiny models
        from softdimo.distill import OneStepStudent
        from softdimo.mdm import MDM_PRESETS, MaskedTransformer
        from softdimo.teachers.maskgit_tiny import TinyMaskGITConfig, write_tiny_published
        from softdimo.tokenizer import VQTokenizer
        from test_reward_adapters import write_hf_clip, write_imagereward, write_openclip

        self.root = Path(root)
        self.models = self.root / "models"
        self.gallery = self.root / "gallery"
        self.templates = self.root / "templates"
        self.cache = self.root / "cache"
        self.marker = self.root / "code-ran"
        self.work = self.root / "work"
        for d in (self.models, self.gallery, self.templates, self.cache, self.work):
            d.mkdir(parents=True, exist_ok=True)
        m, g = self.models, self.gallery

        # models: tiny teacher (class and text), student, tokenizer, and damaged copies
        teacher = tm.make_teacher()
        teacher.save_pretrained(m / "teacher")
        tm.make_teacher(cond="text").save_pretrained(m / "text")
        tm.make_student(teacher).save_pretrained(m / "student")
        teacher.tokenizer.save_pretrained(m / "tokenizer")
        teacher.save_pretrained(m / "pickled")
        _to_pickle(m / "pickled" / "mdm")
        tm.make_student(teacher).save_pretrained(m / "student_pickled")
        _to_pickle(m / "student_pickled" / "mdm")
        teacher.save_pretrained(m / "payload")
        _to_pickle(m / "payload" / "mdm", "model.pt", {"extra": Payload(self.marker)})
        teacher.save_pretrained(m / "badshape")
        other = MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], grid=(4, 4), num_tokens=16, hidden=16))
        other.save_pretrained(m / "other_mdm")
        shutil.copy(m / "other_mdm" / "model.safetensors", m / "badshape" / "mdm" / "model.safetensors")
        teacher.save_pretrained(m / "truncated")
        f = m / "truncated" / "mdm" / "model.safetensors"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        teacher.save_pretrained(m / "badjson")
        (m / "badjson" / "teacher.json").write_bytes(b"\xff\xfe\x00garbage")
        teacher.save_pretrained(m / "badcfg")
        cfg = json.loads((m / "badcfg" / "mdm" / "config.json").read_text())
        (m / "badcfg" / "mdm" / "config.json").write_text(json.dumps({**cfg, "hidden": -32}))
        tok32 = VQTokenizer(dataclasses.replace(tm.TOK, codebook_size=32))
        OneStepStudent(MaskedTransformer(dataclasses.replace(MDM_PRESETS["tiny"], grid=(4, 4), num_tokens=32)),
                       tok32).save_pretrained(m / "student32")

        # real-model files: reward adapters, the published MaskGIT layout
        write_openclip(m / "hps", "HPS_v2.1_compressed.pt", wrap=True)
        write_hf_clip(m / "clip_hf")
        write_hf_clip(m / "clip_bin")
        _to_pickle(m / "clip_bin")
        write_imagereward(m / "imagereward")
        write_openclip(m / "hps_payload", "HPS_v2.1_compressed.pt")
        torch.save({"w": torch.zeros(2), "x": Payload(self.marker)}, m / "hps_payload" / "HPS_v2.1_compressed.pt")
        write_tiny_published(m / "maskgit_src" / "pretrained_maskgit", TinyMaskGITConfig())
        shutil.copytree(m / "maskgit_src", m / "maskgit_payload")
        torch.save({"model_state_dict": {"x": Payload(self.marker)}},
                   m / "maskgit_payload" / "pretrained_maskgit" / "MaskGIT" / "MaskGIT_ImageNet_256.pth")

        # gallery: files and folders of every wrong kind
        (g / "binary").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)))
        (g / "empty").write_bytes(b"")
        (g / "nul.txt").write_bytes(b"a red 3\x00\x01\n")
        (g / "text.txt").write_text("a red 3\na blue 7\n")
        (g / "prompts.jsonl").write_text('{"prompt": "a red 3", "tag": "colors"}\n')
        (g / "bad.jsonl").write_text('{"prompt": "a red 3"}\n{"prompt": \n')
        (g / "noprompt.jsonl").write_text('{"tag": "colors"}\n')
        (g / "bad.json").write_text('{"a": ')
        (g / "bad.yaml").write_text("train: [\n")
        (g / "list.yaml").write_text("- 1\n- 2\n")
        (g / "scalar.yaml").write_text("3\n")
        (g / "unknown.yaml").write_text("nonsense_key: 1\n")
        (g / "folder_empty").mkdir(exist_ok=True)
        (g / "folder_files").mkdir(exist_ok=True)
        (g / "folder_files" / "a.txt").write_text("x")
        _png(g / "ok.png", 8, 0)
        data = (g / "ok.png").read_bytes()
        (g / "truncated.png").write_bytes(data[: len(data) // 2])
        (g / "truncated.safetensors").write_bytes((m / "teacher" / "mdm" / "model.safetensors").read_bytes()[:100])
        torch.save({"w": torch.zeros(2)}, g / "plain.pt")
        torch.save({"w": torch.zeros(2), "x": Payload(self.marker)}, g / "payload.pt")
        for i in range(20):  # 8×8 grey images in ten class folders (tokenizer, teacher, refine)
            _png(g / "img8" / str(i % 10) / f"{i}.png", 8, i)
        for i in range(10):  # 28×28 grey images in two class folders (classifier)
            _png(g / "img28" / str(i % 2) / f"{i}.png", 28, 100 + i)
        for i in range(4):
            _png(g / "eval_ok" / f"{i:06d}.png", 28, 200 + i)
            _png(g / "eval_truncated" / f"{i:06d}.png", 28, 300 + i)
            _png(g / "eval_mixed" / f"{i:06d}.png", 28 if i else 12, 400 + i)
        t = g / "eval_truncated" / "000002.png"
        t.write_bytes(t.read_bytes()[:40])
        (g / "eval_badmeta").mkdir(exist_ok=True)
        for i in range(2):
            _png(g / "eval_badmeta" / f"{i:06d}.png", 32, 500 + i, channels=3)
        (g / "eval_badmeta" / "metadata.jsonl").write_bytes(b"\x00\xff binary")
        (g / "results_bad").mkdir(exist_ok=True)
        (g / "results_bad" / "a.json").write_text("{not json")
        (g / "results_bad" / "b.json").write_bytes(b"\xff\xfe\x00")
        (g / "results_bad" / "c.json").write_text('{"name": 3, "metrics": [1, 2]}')
        (g / "results_bad" / "d.json").write_text("[]")
        for name, terms in {"tteo_hps.yaml": [{"kind": "hpsv2", "path": str(m / "hps")}],
                            "tteo_clip_bin.yaml": [{"kind": "clip_score", "path": str(m / "clip_bin")}],
                            "tteo_ir.yaml": [{"kind": "imagereward", "path": str(m / "imagereward")}],
                            "tteo_payload.yaml": [{"kind": "hpsv2", "path": str(m / "hps_payload")}],
                            "tteo_badpath.yaml": [{"kind": "miniclip", "path": str(g / "binary")}],
                            "tteo_norewards.yaml": []}.items():
            (g / name).write_text(yaml.safe_dump({"rewards": terms, "iters": 1, "best_of": 1}))

        # run templates for --resume: a finished two-step distill run, and damaged copies
        self.build_templates()

    def build_templates(self) -> None:
        args = self.resolve(train_base("distill") + ["train.max_steps=2", "train.checkpoint_every=1",
                                                     "train.checkpoints_total_limit=0"],
                            self.templates / "tmp")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(args) == 0, "the fuzz base of distill does not run"
        ok = self.templates / "ok"
        shutil.move(str(self.templates / "tmp" / "runs" / "distill" / "r"), ok)
        shutil.rmtree(self.templates / "tmp")
        for name, change in {
            "cfg_binary": lambda d: (d / "config.yaml").write_bytes(b"\xff\xfe\x00\x01"),
            "cfg_badyaml": lambda d: (d / "config.yaml").write_text("train: [\n"),
            "cfg_list": lambda d: (d / "config.yaml").write_text("- 1\n"),
            "cfg_other": lambda d: (d / "config.yaml").write_text(
                (d / "config.yaml").read_text().replace("sigma: 0.1", "sigma: 0.3")),
            "ckpt_truncated": lambda d: [(c / "models.safetensors").write_bytes(b"\x00" * 10)
                                         for c in d.glob("checkpoint-*")],
            "ckpt_badstate": lambda d: [(c / "state.json").write_bytes(b"\xff") for c in d.glob("checkpoint-*")],
            "legacy_pickle": lambda d: [legacy_checkpoint(c) for c in d.glob("checkpoint-*")],
        }.items():
            shutil.copytree(ok, self.templates / name)
            change(self.templates / name)

    # ------------------------------------------------------------------ placeholders
    def resolve(self, argv: list[str], out: Path) -> list[str]:
        """``argv`` with its placeholders replaced (see the module docstring); prepares @pre/@run copies."""
        resolved = []
        for a in argv:
            for tag, base in (("@g/", self.gallery), ("@m/", self.models), ("@out/", out)):
                a = _subst(a, tag, base)
            if "@pre/" in a:
                name = a.split("@pre/", 1)[1].split()[0].rstrip(",]}")
                first = name.split("/")[0]
                src, dst = self.gallery / first, out / "pre" / first
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
                a = a.replace(f"@pre/{name}", str(out / "pre" / name))
            resolved.append(a)
        return resolved


def _subst(text: str, tag: str, base: Path) -> str:
    while tag in text:
        head, rest = text.split(tag, 1)
        name = rest.split()[0].split(",")[0].rstrip("]}'\"") if rest else ""
        text = head + str(base / name) + rest[len(name):]
    return text


# ----------------------------------------------------------------------------- running one case
@dataclass
class Case:
    """One command line to run: ``argv`` with placeholders, and a run template to seed (or None)."""

    command: str
    argv: list[str]
    run_template: str | None = None  # copied to <out>/runs/<command>/r before the run (for --resume)

    def __repr__(self) -> str:
        seed = f" [run folder: {self.run_template}]" if self.run_template else ""
        return "softdimo " + " ".join(self.argv) + seed


@dataclass
class Outcome:
    """What running a :class:`Case` did."""

    case: Case
    status: int
    stderr: str
    changed: list[str] = field(default_factory=list)  # files changed outside the case's output folder
    changed_on_failure: list[str] = field(default_factory=list)  # files changed anywhere by a failed case
    unsafe_loads: list[str] = field(default_factory=list)
    code_ran: bool = False

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


def _snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int, int]]:
    """``{relative path: (size, mtime, inode)}`` of everything under ``root`` (folders: size -1), ``skip`` left out."""
    out: dict[str, tuple[int, int, int]] = {}
    skipped = {str(p) for p in skip}
    stack = [str(root)]
    cut = len(str(root)) + 1
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if e.path in skipped:
                continue
            try:
                s = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_dir = e.is_dir(follow_symlinks=False)
            out[e.path[cut:]] = (-1, 0, s.st_ino) if is_dir else (s.st_size, s.st_mtime_ns, s.st_ino)
            if is_dir:
                stack.append(e.path)
    return out


def _diff(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


@contextlib.contextmanager
def _watch_torch_load(allowed: bool, record: list[str]):
    """Record every ``torch.load`` that is unsafe: without the opt-in, or without ``weights_only=True``."""
    real = torch.load

    def watched(f, *args, **kwargs):
        if not allowed or kwargs.get("weights_only") is not True:
            record.append(f"torch.load({f!s}, weights_only={kwargs.get('weights_only')!r}) "
                          f"{'without --allow-pickle' if not allowed else ''}")
        return real(f, *args, **kwargs)

    torch.load = watched
    try:
        yield
    finally:
        torch.load = real


@contextlib.contextmanager
def _no_server(enabled: bool):
    """`softdimo serve` without a server: Gradio's launch only checks that the host can be bound, and
    nothing blocks (the page itself is built as usual)."""
    if not enabled:
        yield
        return
    import socket

    import gradio as gr

    def launch(self, server_name="127.0.0.1", server_port=None, **kwargs):
        with socket.socket() as s:  # a bad host fails as in a real launch (OSError)
            s.bind((server_name, 0))
        return self, f"http://{server_name}:{server_port or 0}/", None

    real = gr.Blocks.launch, gr.Blocks.block_thread
    gr.Blocks.launch, gr.Blocks.block_thread = launch, lambda self: None
    try:
        yield
    finally:
        gr.Blocks.launch, gr.Blocks.block_thread = real


def run_case(case: Case, sb: Sandbox, index: int) -> Outcome:
    """Run ``case`` in this process (cwd: a fresh work folder) and report what it did."""
    work = sb.work / f"case-{index}"
    out = work / "out"
    out.mkdir(parents=True)
    if case.run_template:
        shutil.copytree(sb.templates / case.run_template, out / "runs" / case.command / "r")
    argv = sb.resolve(case.argv, out)
    before = _snapshot(sb.root, skip=(sb.cache,))
    record: list[str] = []
    stderr, stdout = io.StringIO(), io.StringIO()
    cwd, threads = os.getcwd(), torch.get_num_threads()
    env = {k: os.environ.get(k) for k in ("SOFTDIMO_CACHE",)}
    os.environ["SOFTDIMO_CACHE"] = str(sb.cache)
    os.chdir(work)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout), \
                _watch_torch_load("--allow-pickle" in argv, record), _no_server(case.command == "serve"):
            try:
                status = main(argv)
            except SystemExit as e:  # argparse: usage errors exit 2
                status = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            except BaseException as e:  # noqa: BLE001 - anything escaping main is a finding
                import traceback

                stderr.write("".join(traceback.format_exception(e)))
                status = -1
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    changes = _diff(before, _snapshot(sb.root, skip=(sb.cache,)))  # the shared cache may change
    own = str(out.relative_to(sb.root))
    cache = str(sb.cache.relative_to(sb.root))
    outside = [c for c in changes if not c.startswith(own) and not c.startswith(cache)]
    outcome = Outcome(case, status, stderr.getvalue(), changed=outside,
                      changed_on_failure=[c for c in changes if not c.startswith(cache)] if status != 0 else [],
                      unsafe_loads=record, code_ran=sb.marker.exists())
    if outcome.code_ran:
        sb.marker.unlink()
    shutil.rmtree(work, ignore_errors=True)
    return outcome


def violations(o: Outcome) -> list[str]:
    """The properties every case must keep (module docstring); empty when all hold."""
    bad = []
    if o.status not in (0, 2):
        bad.append(f"exit status {o.status} (expected 0 or 2)")
    if o.traceback:
        bad.append("a traceback on stderr")
    if o.changed:
        bad.append(f"files changed outside the output folder: {o.changed[:5]}")
    if o.changed_on_failure:
        bad.append(f"files changed by a failed command: {o.changed_on_failure[:5]}")
    if o.unsafe_loads:
        bad.append(f"unsafe loads: {o.unsafe_loads[:3]}")
    if o.code_ran:
        bad.append("code ran from a pickle")
    return bad


# ----------------------------------------------------------------------------- strategies
def pool(*items: Any) -> st.SearchStrategy:
    return st.sampled_from(items)


DROP = object()  # a fault that removes the argument (a required one goes missing)


def mutated(command: str, base: dict[str, str | None], faults: dict[str, st.SearchStrategy],
            max_faults: int = 2) -> st.SearchStrategy:
    """Cases of ``command``: the valid ``base`` arguments with 0 to ``max_faults`` of them replaced (or
    added, or dropped) by values drawn from ``faults``. Keys starting with ``<`` are positional; a
    value of None is a switch."""

    @st.composite
    def draw_case(draw) -> Case:
        args = dict(base)
        n = draw(st.sampled_from([0] + [1] * 4 + [2] * 2 + [max_faults] * (max_faults > 2)))
        for key in draw(st.lists(st.sampled_from(sorted(faults)), min_size=n, max_size=n, unique=True)):
            value = draw(faults[key])
            if value is DROP:
                args.pop(key, None)
            else:
                args[key] = value
        argv = [command]
        for key, value in args.items():
            if key.startswith("<"):
                argv.append(value)
            elif key.startswith("="):  # a bare extra argument (an override or stray word)
                argv.append(value)
            else:
                argv += [key] if value is None else [key, value]
        return Case(command, argv)

    return draw_case()


def switch() -> st.SearchStrategy:
    return st.sampled_from([None, DROP])


MODELS = pool("@m/teacher", "@m/student", "@m/text", "@m/tokenizer", "@m/pickled", "@m/student_pickled",
              "@m/payload", "@m/badshape", "@m/truncated", "@m/badjson", "@m/badcfg", "@m/student32",
              "@g/binary", "@g/empty", "@g/folder_empty", "@g/nope", "@g/ok.png", "@m/clip_hf", DROP)
TEXT_FILES = pool("@g/binary", "@g/empty", "@g/nul.txt", "@g/text.txt", "@g/prompts.jsonl", "@g/bad.jsonl",
                  "@g/noprompt.jsonl", "@g/folder_empty", "@g/nope", "@g/truncated.png")
INTS = pool("-1", "0", "1", "2", "x", "1.5", "", "nan", "99999999999999999999999")
SMALL = pool("-1", "0", "1", "2", "x", "1.5", "")  # counts that must stay small when valid
FLOATS = pool("-1", "0", "0.5", "1", "2.5", "nan", "inf", "-inf", "x", "")
SEEDS = pool("-1", "0", "7", "x", str(2 ** 64))
DEVICES = pool("cpu", "cuda", "gpu")
STRAY = pool("--nonsense", "key=value", "-", "--")
IMAGE_OUTS = pool("@out/g.png", "@out/d", "@pre/ok.png", "@pre/folder_files", "@pre/binary/x.png", "@pre/binary",
                  "@pre/folder_empty", DROP)
LABELS = pool("0", "0,1", "-1", "10", "a,b", "", "1,,2", "99999999999999999999", DROP)
PROMPTS = pool("a red 3", " ", LONG_PROMPT, "")


def sample_case() -> st.SearchStrategy:
    return mutated("sample", {"--model": "@m/teacher", "--out": "@out/g.png", "--labels": "1", "--num": "2",
                              "--no-progress": None}, {
        "--model": MODELS, "--out": IMAGE_OUTS, "--steps": pool("-1", "0", "1", "2", "17", "x", "1.5"),
        "--cfg": FLOATS, "--temperature": FLOATS, "--labels": LABELS, "--prompts": PROMPTS,
        "--prompts-file": TEXT_FILES, "--num": SMALL, "--batch-size": INTS, "--nrow": INTS, "--seed": SEEDS,
        "--device": DEVICES, "--overwrite": switch(), "--allow-pickle": switch(), "=": STRAY})


def tteo_case() -> st.SearchStrategy:
    return mutated("tteo", {"--model": "@m/student", "--out": "@out/g.png", "--labels": "3", "--iters": "1",
                            "--best-of": "1", "--no-progress": None}, {
        "--model": MODELS, "--out": IMAGE_OUTS, "--labels": LABELS, "--prompts": PROMPTS,
        "--iters": pool("-1", "0", "2", "x"), "--best-of": pool("0", "2", "x"), "--lr": FLOATS, "--num": SMALL,
        "--batch-size": SMALL, "--seed": SEEDS, "--allow-pickle": switch(), "--temperature": FLOATS,
        "--config": pool("@g/tteo_hps.yaml", "@g/tteo_clip_bin.yaml", "@g/tteo_ir.yaml", "@g/tteo_payload.yaml",
                         "@g/tteo_badpath.yaml", "@g/tteo_norewards.yaml", "@g/bad.yaml", "@g/binary",
                         "@g/list.yaml", "@g/nope", "@g/folder_empty", "@g/unknown.yaml"),
        "=": pool("soft_temperature=0", "temperature=-1", "rewards=[]", "bogus=1", "iters=x",
                  "rewards=[{kind: hpsv2, path: @m/hps}]", "rewards=[{kind: clip_score, path: @m/clip_bin}]",
                  "rewards=[{kind: imagereward, path: @m/imagereward}]", "rewards=[{kind: nope}]",
                  "select_rewards=[{kind: attribute, path: @g/binary}]", "rewards=[{kind: hpsv2, weight: .nan}]",
                  "--nonsense")}, max_faults=3)


def eval_case() -> st.SearchStrategy:
    return mutated("eval", {"--model": "@m/teacher", "--metrics": "classifier_score", "--num": "2",
                            "--no-progress": None}, {
        "--model": pool("@m/student", "@m/pickled", "@m/badshape", "@m/tokenizer", "@m/text", "@g/eval_ok",
                        "@g/eval_truncated", "@g/eval_mixed", "@g/eval_badmeta", "@g/folder_empty", "@g/binary",
                        "@g/nope", "data:mnist", "data:nope", "data:mnist:dev", "data:world:test:x", DROP),
        "--metrics": pool("domain_fid", "geneval", "fid", "pr", "bogus", "", " , ", "classifier_score,pr"),
        "--num": pool("-1", "0", "1", "3", "x"), "--data": pool("world", "fashion", "bogus"),
        "--json": pool("@out/r.json", "@pre/folder_files", "@pre/binary/x.json", "@pre/bad.json", "@pre/binary"),
        "--batch-size": INTS, "--seed": SEEDS, "--steps": pool("-1", "0", "1", "2", "x"), "--cfg": FLOATS,
        "--temperature": FLOATS, "--allow-pickle": switch(), "=": STRAY})


def bench_case() -> st.SearchStrategy:
    return mutated("bench", {"--teacher": "@m/teacher", "--students": "s=@m/student", "--batch-sizes": "1",
                             "--steps": "1", "--repeats": "1", "--warmup": "0"}, {
        "--teacher": MODELS, "--batch-sizes": pool("1,2", "0", "-1", "x", "", "1,,2"),
        "--steps": pool("2", "0", "x", "1,2", "-3"), "--repeats": pool("0", "x", "-1"),
        "--students": pool("@m/student", "=x", "s=@m/student,s=@m/student", "floor=@m/student", "s=@g/nope",
                           "s=@m/teacher", "s=@m/student_pickled", "s=@g/binary", "", DROP),
        "--cfg": FLOATS, "--warmup": pool("-1", "x"), "--max-seconds-per-call": FLOATS, "--seed": SEEDS,
        "--threads": pool("-1", "0", "1", "x"), "--device": DEVICES,
        "--json": pool("@out/s.json", "@pre/folder_files", "@pre/binary/s.json", "@pre/bad.json"),
        "--allow-pickle": switch(), "=": STRAY})


def convert_case() -> st.SearchStrategy:
    return mutated("convert", {"--kind": "maskgit", "<src>": "@m/maskgit_src", "<dst>": "@out/t",
                               "--allow-pickle": None, "--heads": "4"}, {
        "--kind": pool("other", DROP), "--allow-pickle": pool(DROP),
        "<src>": pool("@m/maskgit_payload", "@g/folder_empty", "@g/nope", "@g/binary", "@m/teacher", "@m/pickled"),
        "<dst>": pool("@pre/folder_files", "@pre/binary", "@pre/binary/t", "@pre/folder_empty"),
        "--overwrite": switch(), "--variant": pool("256", "512", "7"), "--heads": pool("0", "-1", "3", "x", "5"),
        "=": STRAY})


def report_case() -> st.SearchStrategy:
    return mutated("report", {"--results": "@g/results_bad", "--out": "@out/rep", "--no-grids": None}, {
        "--results": pool("@g/binary", "@g/nope", "@g/folder_empty", "@g/folder_files", "@g/bad.json"),
        "--out": pool("@pre/binary", "@pre/folder_files", "@pre/binary/rep", "@pre/ok.png"),
        "--checkpoints": pool("@g/nope", "@g/binary", "@g/folder_empty"), "--seed": SEEDS, "--device": DEVICES,
        "=": STRAY})


def export_case() -> st.SearchStrategy:
    """``export`` of a seeded run folder (a finished two-step distill run, or a damaged copy)."""

    @st.composite
    def draw_case(draw) -> Case:
        base = draw(mutated("export", {"<run>": "@out/runs/export/r", "--command": "distill", "--out": "@out/model"}, {
            "<run>": pool("@g/nope", "@g/binary", "@g/folder_empty", "@m/teacher", "@out/runs/export"),
            "--command": pool("train-teacher", "refine", "nope", DROP), "--step": pool("1", "2", "0", "-1", "x"),
            "--weights": pool("live", "ema", "none"), "--threads": pool("1", "0", "-1", "x"),
            "--out": pool("@pre/folder_files", "@pre/binary", "@pre/binary/m", "@pre/folder_empty"),
            "=": STRAY}))
        return Case("export", base.argv, draw(TEMPLATES))

    return draw_case()


def serve_case() -> st.SearchStrategy:
    # the page is built but no server starts: run_case stubs Gradio's launch (see _no_server)
    return mutated("serve", {"--checkpoints": "@m/", "--port": "0", "--device": "cpu"}, {
        "--checkpoints": pool("@g/binary", "@g/nope", "@g/folder_empty", "@g/folder_files", "@g/ok.png", DROP),
        "--teacher": MODELS, "--students": pool("@m/student", "@m/teacher", "@g/nope", "@g/binary", "student"),
        "--port": pool("-1", "65536", "x", "1.5", "", "99999999999999999999"),
        "--host": pool("localhost", "999.1.1.1", "not a host"), "--device": DEVICES,
        "--allow-pickle": switch(), "=": STRAY})


def demo_case() -> st.SearchStrategy:
    # a valid demo runs for minutes: every case keeps an --out the command must refuse at once
    @st.composite
    def draw_case(draw) -> Case:
        argv = ["demo", "--out", draw(pool("@pre/binary", "@pre/binary/demo", "@pre/ok.png")), "--no-progress"]
        return Case("demo", argv + draw(st.lists(pool("--tiny", "--full", "--bogus", "--allow-pickle"),
                                                 max_size=2, unique=True)))

    return draw_case()


# training commands: a valid tiny base plus faults taken from the typed configs
TRAIN = ["train.max_steps=1", "train.batch_size=2", "train.checkpoint_every=0", "train.sample_every=0",
         "train.log_every=1", "train.threads=1", "train.device=cpu", "train.warmup_steps=0",
         "train.out_dir=@out/runs", "train.run_name=r", "--no-progress"]
TINY_VQ = ["model.in_channels=1", "model.image_size=8", "model.base_channels=8", "model.channel_mult=[1,2]",
           "model.num_res_blocks=1", "model.mid_res_blocks=0", "model.norm_groups=4", "model.codebook_size=16",
           "model.codebook_dim=4"]
TINY_MDM = ["model.num_tokens=16", "model.grid=[4,4]", "model.hidden=32", "model.depth=2", "model.heads=2",
            "model.mlp_ratio=2.0", "model.dropout=0.0"]
IMG8 = ["data.dataset=folder", "data.root=@g/img8", "data.channels=1"]
BASES = {
    "train-tokenizer": ["--config", f"{PRESETS}/mnist/tokenizer.yaml", *IMG8, *TINY_VQ, "num_sample_images=2"],
    "train-classifier": ["--config", f"{PRESETS}/mnist/classifier.yaml", "data.dataset=folder", "data.root=@g/img28",
                         "data.channels=1", "model.num_classes=2", "model.channels=[4]", "model.feature_dim=8",
                         "world_crops.scenes=0", "num_sample_images=2"],
    "train-teacher": ["--config", f"{PRESETS}/mnist/teacher.yaml", "tokenizer=@m/tokenizer", *IMG8, *TINY_MDM,
                      "sampler.steps=2", "token_cache=false"],
    "train-reward": ["--config", f"{PRESETS}/world/reward_attribute.yaml", "data.world_train_size=8",
                     "data.world_test_size=4", "attribute.channels=[4,4]", "attribute.hidden=8",
                     "attribute.norm_groups=0", "num_sample_images=2"],
    "distill": ["--config", f"{PRESETS}/mnist/dimo.yaml", "teacher=@m/teacher", "diagnostics.enabled=false"],
    "refine": ["--config", f"{PRESETS}/mnist/soft_gan.yaml", "teacher=@m/teacher", "student=@m/student", *IMG8,
               "token_cache=false", "diag_samples=0", "max_real_images=4", "diagnostics.enabled=false"],
}


def train_base(command: str) -> list[str]:
    """A valid, one-step, tiny run of training command ``command`` (placeholders unresolved)."""
    return [command, *BASES[command], *TRAIN]


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, Any, dataclasses.Field]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _leaves(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, tp, f))
    return out


def _outside(f: dataclasses.Field) -> list[str]:
    """YAML values just outside the declared range of a numeric field (none when it has no range)."""
    rng = field_range(f)
    if rng is None:
        return []
    vals = []
    if rng.lo is not None:
        vals += [repr(rng.lo - 1), repr(rng.lo) if rng.lo_open else repr(rng.lo - 0.5)]
    if rng.hi is not None:
        vals += [repr(rng.hi + 1), repr(rng.hi) if rng.hi_open else repr(rng.hi + 0.5)]
    return vals + [".nan", ".inf", "-.inf"]


WRONG = ["abc", "[1, 2]", "{a: 1}", "true", "1e999", "''", "[", "]"]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return "|".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def faults_for(command: str) -> list[str]:
    """Every single-key fault of ``command``'s config: "key=value" overrides that must be refused."""
    cls = TRAIN_COMMANDS[command].load()[0]
    out = []
    for key, tp, f in _leaves(cls):
        origin = typing.get_origin(tp)
        if origin is typing.Literal:
            out.append(f"{key}=not_a_choice")
            continue
        for v in _outside(f):
            out.append(f"{key}={v}")
        if "str" not in _type_name(tp) and tp is not typing.Any:
            out += [f"{key}={w}" for w in WRONG if not (w == "true" and tp is bool)]
            if tp is bool:
                out.append(f"{key}=3")
    return out


def path_keys(command: str) -> list[str]:
    """The config keys of ``command`` that name a file or folder."""
    cls = TRAIN_COMMANDS[command].load()[0]
    names = ("teacher", "student", "tokenizer", "root", "prompts_file", "init_from", "meissonic_code", "out_dir")
    return [k for k, tp, _ in _leaves(cls) if tp is str and k.rsplit(".", 1)[-1] in names]


PATHS = pool("@g/binary", "@g/empty", "@g/folder_empty", "@g/folder_files", "@g/nope", "@g/ok.png", "@m/student",
             "@m/teacher", "@m/tokenizer", "@m/pickled", "@m/payload", "@m/badshape", "@m/truncated", "@m/badjson",
             "@m/badcfg", "@m/student32", "@g/truncated.png", "@g/binary/sub", "@g/nul.txt", "@g/bad.jsonl")
OUT_DIRS = pool("@pre/binary", "@pre/binary/sub", "@pre/ok.png", "@out/elsewhere")
CONFIGS = pool("@g/binary", "@g/empty", "@g/bad.yaml", "@g/list.yaml", "@g/scalar.yaml", "@g/unknown.yaml",
               "@g/folder_empty", "@g/nope", "@g/nul.txt", "@g/truncated.png")
SYNTAX = pool("novalue", "=3", "a..b=1", "train..max_steps=1", ".x=1", "train.max_steps", "train=3",
              "train.faults=3", "train.nope.deeper=1", "--nonsense")
TEMPLATES = pool("ok", "cfg_binary", "cfg_badyaml", "cfg_list", "cfg_other", "ckpt_badstate", "legacy_pickle")


def train_case(command: str) -> st.SearchStrategy:
    faults, paths = faults_for(command), path_keys(command)

    @st.composite
    def draw_case(draw) -> Case:
        argv = train_base(command)
        template = None
        kind = draw(pool("fault", "fault", "fault", "path", "config", "syntax", "resume", "reward"))
        if kind == "fault":
            argv += draw(st.lists(st.sampled_from(faults), min_size=1, max_size=2))
        elif kind == "path":
            key = draw(st.sampled_from(paths))
            argv.append(f"{key}={draw(OUT_DIRS if key.endswith('out_dir') else PATHS)}")
        elif kind == "config":
            argv[argv.index("--config") + 1] = draw(CONFIGS)
        elif kind == "syntax":
            argv.append(draw(SYNTAX))
        elif kind == "resume" and command == "distill":
            template = draw(TEMPLATES)
            argv += ["--resume", "train.max_steps=3"] + draw(st.lists(pool("--allow-pickle", "dimo.sigma=0.2",
                                                                            "train.lr=-1"), max_size=1))
        elif kind == "reward" and command == "refine":
            argv += ["reward.w_reward=1", draw(pool("reward.terms=[{kind: hpsv2, path: @m/hps}]",
                                                    "reward.terms=[{kind: clip_score, path: @m/clip_bin}]",
                                                    "reward.terms=[{kind: hpsv2, path: @m/hps_payload}]",
                                                    "reward.terms=[{kind: attribute, path: @g/binary}]",
                                                    "reward.terms=[{kind: imagereward, path: @m/imagereward}]",
                                                    "reward.terms=[{kind: nope}]", "reward.terms=[3]",
                                                    "reward.terms={}"))]
        else:  # resume/reward faults where the command has none: a fault instead
            argv.append(draw(st.sampled_from(faults)))
        if draw(st.booleans()) and "--allow-pickle" not in argv and kind in ("path", "reward"):
            argv.append("--allow-pickle")
        return Case(command, argv, template)

    return draw_case()


def strategies() -> dict[str, st.SearchStrategy]:
    """A strategy of :class:`Case` for every command of the command line."""
    out = {name: train_case(name) for name in TRAIN_COMMANDS}
    out.update({"sample": sample_case(), "tteo": tteo_case(), "eval": eval_case(), "bench": bench_case(),
                "convert": convert_case(), "report": report_case(), "demo": demo_case(), "serve": serve_case(),
                "export": export_case()})
    return out


def commands() -> list[str]:
    """Every command ``softdimo --help`` lists."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


__all__ = ["Sandbox", "Case", "Outcome", "run_case", "violations", "strategies", "commands", "train_base"]
