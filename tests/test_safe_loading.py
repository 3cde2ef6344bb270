"""One safe loader: every weights path goes through softdimo.safeload, and no pickle is opened without the opt-in.

* a scan of the package's source finds every loading call (``torch.load``, ``torch.jit.load``,
  safetensors' ``load_file`` / ``safe_open``, ``pickle.load(s)``, ``numpy.load`` with pickles,
  ``from_pretrained`` of transformers / diffusers / open_clip classes, ``ImageReward.load``,
  hub downloads) outside :mod:`softdimo.safeload`, so that a new one cannot bypass it;
* reward paths (a ``.pt`` file, a Hugging Face folder with ``pytorch_model.bin``) are refused
  without ``--allow-pickle`` before anything is unpickled, and read with it;
* checkpoints hold no pickle, and a checkpoint of the earlier pickle format resumes only with
  ``--allow-pickle``.
"""
from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from softdimo.errors import CheckpointError
from softdimo.rewards.adapters import load_adapter
from softdimo.safeload import PickleRefused, hf_from_pretrained, load_tensors, pickle_allowed
from tiny_models import distill_args, make_teacher
from test_reward_adapters import write_hf_clip, write_imagereward, write_openclip

pytestmark = pytest.mark.usefixtures("one_thread")

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "softdimo"
LOADER = PACKAGE / "safeload.py"
FORBIDDEN = {"torch.load", "torch.jit.load", "torch.serialization.load", "pickle.load", "pickle.loads",
             "pickle.Unpickler", "safetensors.torch.load", "safetensors.torch.load_file", "safetensors.safe_open",
             "huggingface_hub.hf_hub_download", "huggingface_hub.snapshot_download",
             "open_clip.create_model_and_transforms", "open_clip.create_model_from_pretrained", "ImageReward.load"}
EXTERNAL = ("transformers", "diffusers", "open_clip", "huggingface_hub", "ImageReward")
HUB_KEYWORDS = {"local_files_only", "use_safetensors", "weights_only"}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def loading_calls(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` of every call in ``source`` that loads weights or files by unpickling."""
    tree = ast.parse(source)
    imported: dict[str, str] = {}  # local name -> the dotted name it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                imported[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                imported[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func) or ""
        head, _, rest = name.partition(".")
        full = f"{imported.get(head, head)}.{rest}" if rest else imported.get(head, head)
        full = full.replace("numpy.", "np.")
        keywords = {k.arg for k in node.keywords}
        if full in FORBIDDEN:
            found.append((node.lineno, full))
        elif full in ("np.load",) and not any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                                             and k.value.value is False for k in node.keywords):
            found.append((node.lineno, "numpy.load without allow_pickle=False"))
        elif name.endswith((".from_pretrained", ".load")) and imported.get(head, "").startswith(EXTERNAL):
            found.append((node.lineno, f"{full} (a {imported[head].split('.')[0]} loader)"))
        elif keywords & HUB_KEYWORDS:
            found.append((node.lineno, f"{name}({', '.join(sorted(keywords & HUB_KEYWORDS))}=…)"))
    return found


def test_every_loading_call_goes_through_the_safe_loader():
    outside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == LOADER:
            continue
        outside += [f"{path.relative_to(PACKAGE)}:{line}: {what}" for line, what in loading_calls(path.read_text())]
    assert not outside, ("weights are loaded outside softdimo.safeload; use load_tensors / load_pickle / "
                         "hf_from_pretrained / load_torchscript:\n" + "\n".join(outside))
    inside = {what for _, what in loading_calls(LOADER.read_text())}
    assert {"torch.load", "torch.jit.load", "safetensors.torch.load_file"} <= inside


@pytest.mark.parametrize("code", [
    "import torch\ntorch.load('x')",
    "import torch as T\nT.load('x', weights_only=True)",
    "from torch import load\nload('x')",
    "from safetensors.torch import load_file\nload_file('x')",
    "from safetensors import safe_open\nsafe_open('x', 'pt')",
    "import pickle\npickle.loads(b'')",
    "import numpy as np\nnp.load('x.npz')",
    "def f():\n    from transformers import CLIPModel\n    CLIPModel.from_pretrained('x')",
    "from diffusers import VQModel as V\nV.from_pretrained('x')",
    "def f(cls):\n    return cls.from_pretrained('x', local_files_only=True)",
    "import ImageReward as RM\nRM.load('ImageReward-v1.0')",
    "from huggingface_hub import hf_hub_download\nhf_hub_download('a', 'b')",
])
def test_the_scan_finds_each_kind_of_loading_call(code):
    assert loading_calls(code), code


def test_the_scan_leaves_safe_calls_alone():
    code = ("import numpy as np\nimport json\nnp.load('x.npz', allow_pickle=False)\njson.load(open('x'))\n"
            "from softdimo.tokenizer import VQTokenizer\nVQTokenizer.from_pretrained('x')\n")
    assert loading_calls(code) == []


# ---------------------------------------------------------------------- the loader itself
def _no_torch_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called without --allow-pickle")

    monkeypatch.setattr(torch, "load", refuse)


def test_format_is_read_from_the_content(tmp_path, monkeypatch):
    t = {"w": torch.arange(3.0)}
    save_file(t, tmp_path / "named_like_a_pickle.pt")
    torch.save(t, tmp_path / "a_pickle.safetensors")
    _no_torch_load(monkeypatch)
    assert torch.equal(load_tensors(tmp_path / "named_like_a_pickle.pt")["w"], t["w"])
    with pytest.raises(PickleRefused, match="--allow-pickle"):
        load_tensors(tmp_path / "a_pickle.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        load_tensors(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("kind, write", [
    ("hpsv2", lambda d: write_openclip(d, "HPS_v2.1_compressed.pt", wrap=True) / "HPS_v2.1_compressed.pt"),
    ("clip_score", lambda d: write_openclip(d)),
    ("imagereward", write_imagereward),
])
def test_reward_pickles_need_the_opt_in(tmp_path, monkeypatch, kind, write):
    path = write(tmp_path / kind)
    with monkeypatch.context() as m:
        _no_torch_load(m)
        with pytest.raises(PickleRefused, match="--allow-pickle"):
            load_adapter(kind, path, "cpu")
    with pickle_allowed():
        assert load_adapter(kind, path, "cpu") is not None


def test_hf_folder_with_pickle_weights(tmp_path, monkeypatch):
    folder = write_hf_clip(tmp_path / "clip")
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with monkeypatch.context() as m:
        _no_torch_load(m)
        with pytest.raises(PickleRefused, match="pytorch_model.bin"):
            load_adapter("pickscore", folder, "cpu")
    with pickle_allowed():
        assert load_adapter("pickscore", folder, "cpu") is not None
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    with pickle_allowed(), pytest.raises(CheckpointError, match="could not load"):
        load_adapter("pickscore", folder, "cpu")


def test_hf_loader_is_offline_and_names_the_folder(tmp_path):
    from transformers import CLIPModel

    with pytest.raises(CheckpointError, match="does not exist"):
        hf_from_pretrained(CLIPModel, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="could not load"):
        hf_from_pretrained(CLIPModel, tmp_path / "empty")


# ---------------------------------------------------------------------- checkpoints
def legacy_checkpoint(ck: Path) -> None:
    """Rewrite checkpoint folder ``ck`` in the earlier format: optimiser and RNG states as ``torch.save``
    pickles (``optim.pt``, ``rng-0.pt``) and no SHA-256 digests in ``state.json``."""
    from softdimo.train.statefile import load_state

    for name in ("optim", "rng-0"):
        torch.save(load_state(ck, name), ck / f"{name}.pt")
        (ck / f"{name}.safetensors").unlink()
        (ck / f"{name}.json").unlink()
    state = json.loads((ck / "state.json").read_text())
    state.pop("sha256", None)
    (ck / "state.json").write_text(json.dumps(state))


def test_checkpoints_hold_no_pickle_and_old_ones_resume_only_when_allowed(tmp_path, capsys):
    from softdimo.cli import main

    make_teacher().save_pretrained(tmp_path / "teacher")
    assert main(distill_args(tmp_path / "teacher", tmp_path, "r", 2)) == 0
    run = tmp_path / "distill" / "r"
    for ck in run.glob("checkpoint-*"):
        assert {f.suffix for f in ck.iterdir()} <= {".safetensors", ".json"}, sorted(ck.iterdir())
    old = tmp_path / "distill" / "old"
    shutil.copytree(run, old)
    shutil.rmtree(old / "final")
    for ck in old.glob("checkpoint-*"):
        legacy_checkpoint(ck)
    config = (old / "config.yaml").read_bytes()
    capsys.readouterr()
    assert main(distill_args(tmp_path / "teacher", tmp_path, "old", 4, "--resume")) == 2
    err = capsys.readouterr().err
    assert "optim.pt" in err and "--allow-pickle" in err and "Traceback" not in err
    assert (old / "config.yaml").read_bytes() == config and not (old / "final").exists()
    assert main(distill_args(tmp_path / "teacher", tmp_path, "old", 4, "--resume", "--allow-pickle")) == 0
    assert "resumed from checkpoint-2 at step 2" in capsys.readouterr().out
    assert json.loads((old / "checkpoint-4" / "state.json").read_text())["step"] == 4
