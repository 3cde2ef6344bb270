"""The command line: error paths exit non-zero with a message, and never overwrite a run."""
import os
import subprocess
import sys

import pytest

from softdimo.cli import main
from softdimo.paths import config_path

CFG = str(config_path("mnist", "tokenizer.yaml"))

TINY = ["train.max_steps=2", "train.batch_size=4", "train.checkpoint_every=1", "train.sample_every=0",
        "train.log_every=1", "model.base_channels=8", "model.codebook_size=16", "model.norm_groups=4",
        "train.threads=1"]


def run(args, capsys):
    code = main(args)
    return code, capsys.readouterr()


def test_unknown_key_exit_code_and_message(tmp_path, capsys):
    code, out = run(["train-tokenizer", "--config", CFG,
                     "train.max_stepz=3", f"train.out_dir={tmp_path}"], capsys)
    assert code == 2
    assert "unknown config key 'train.max_stepz'" in out.err and "Traceback" not in out.err
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_config_file(tmp_path, capsys):
    code, out = run(["train-tokenizer", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml" in out.err


def test_wrong_model_for_data(tmp_path, capsys):
    code, out = run(["train-tokenizer", "--config", CFG, *TINY,
                     "model.in_channels=3", f"train.out_dir={tmp_path}"], capsys)
    assert code == 2 and "model.in_channels=3" in out.err


def test_train_resume_and_refuse_overwrite(tmp_path, capsys):
    args = ["train-tokenizer", "--config", CFG, *TINY,
            f"train.out_dir={tmp_path}", "--no-progress"]
    code, out = run(args, capsys)
    assert code == 0, out.err
    run_dir = tmp_path / "train-tokenizer" / "mnist-tokenizer"
    assert (run_dir / "final" / "model.safetensors").is_file() and (run_dir / "config.yaml").is_file()
    before = (run_dir / "final" / "model.safetensors").read_bytes()
    code, out = run(args, capsys)  # same folder again, without --resume
    assert code == 2 and "already holds a run" in out.err
    assert (run_dir / "final" / "model.safetensors").read_bytes() == before
    code, out = run(args + ["--resume", "model.codebook_size=32"], capsys)
    assert code == 2 and "model" in out.err
    code, out = run(args[:-1] + ["train.max_steps=3", "--resume", "--no-progress"], capsys)
    assert code == 0, out.err
    assert (run_dir / "checkpoint-3").is_dir()


def test_python_m_entry_point(tmp_path):
    res = subprocess.run([sys.executable, "-m", "softdimo", "train-tokenizer", "--config",
                          CFG, "nonsense"], capture_output=True, text=True)
    assert res.returncode == 2 and "key.path=value" in res.stderr


@pytest.mark.slow
def test_two_process_training_with_torchrun(tmp_path):
    """Two CPU processes (gloo) train one tokenizer; only rank 0 writes the shared files."""
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "softdimo",
         "train-tokenizer", "--config", CFG, *TINY, "train.max_steps=3", "train.checkpoint_every=3",
         f"train.out_dir={tmp_path}", "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("model saved to") == 1
    run_dir = tmp_path / "train-tokenizer" / "mnist-tokenizer"
    ck = run_dir / "checkpoint-3"
    assert (ck / "rng-0.safetensors").is_file() and (ck / "rng-1.safetensors").is_file()
    from softdimo.tokenizer import VQTokenizer

    tok = VQTokenizer.from_pretrained(run_dir / "final")
    assert tok.num_tokens == 16


@pytest.mark.slow
def test_two_process_evaluation_shares_the_sampling(tmp_path):
    """`torchrun … eval`: each process draws half of the batches; rank 0 alone scores them and writes JSON."""
    import json

    import torch

    from softdimo.classifier import DigitClassifier
    from softdimo.evaluate import GeneratorSource
    from softdimo.eval.domain import classifier_score
    from softdimo.eval.shard import gather_in_order, shard_starts
    from softdimo.mdm import MaskGITSampler
    from softdimo.paths import checkpoint_dir
    from softdimo.sample import load_generator
    from tiny_models import TOK28, make_teacher

    make_teacher(tok=TOK28, sampler=MaskGITSampler(steps=2)).save_pretrained(tmp_path / "t")
    out = tmp_path / "r.json"
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "softdimo", "eval",
         "--model", str(tmp_path / "t"), "--metrics", "classifier_score", "--num-images", "8", "--batch-size", "2",
         "--seed", "3", "--json", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("classifier_score") == 1  # printed by rank 0 only
    got = json.loads(out.read_text())["metrics"]
    assert got["n"] == 8
    # the same images, drawn here by the sharding rule, give the same score
    src = GeneratorSource(tmp_path / "t", load_generator(tmp_path / "t"))
    shares = [x for r in (0, 1) for x in zip(shard_starts(8, 2, r, 2), src.batches(8, 2, 3, rank=r, world=2))]
    images = torch.cat([b.images for b in gather_in_order(shares, world=1)])
    clf = DigitClassifier.from_pretrained(checkpoint_dir("classifier-mnist")).eval()
    assert got["classifier_score"] == pytest.approx(classifier_score(images, clf), rel=1e-6)
