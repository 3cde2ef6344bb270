"""Fault tolerance: injected NaN/Inf, exceptions, full disks and SIGKILL never lose work.

Each fault must leave the newest complete checkpoint intact, and either let training continue
(NaN/Inf guards) or stop it with a clear message; resuming then ends bit-identical to a run that
was never interrupted.
"""
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from softdimo.cli import main
from softdimo.config import FaultConfig, TrainConfig, load_config
from softdimo.errors import ConfigError
from softdimo.train import train
from softdimo.train.checkpoint import latest_checkpoint, list_checkpoints
from softdimo.train.faults import TrainingFailed
from tiny_models import distill_args, folder_tensors, make_teacher, run_cli, same_tensors
from toy_stage import ToyModel, ToyStage

pytestmark = pytest.mark.usefixtures("one_thread")


def cfg(max_steps=12, **faults):
    return TrainConfig(max_steps=max_steps, batch_size=8, lr=0.05, seed=3, checkpoint_every=4, log_every=1,
                       sample_every=0, ema_decay=0.9, checkpoints_total_limit=0, threads=1,
                       faults=FaultConfig(**faults))


def weights(run_dir):
    return ToyModel.from_pretrained(run_dir / "final").state_dict()


def rows(run_dir):
    return [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory):
    """The uninterrupted toy run every resumed one is compared with."""
    return train(ToyStage(two_phases=True), cfg(), tmp_path_factory.mktemp("ref") / "run", progress=False)


@dataclasses.dataclass
class RunConfig:
    """A run config holding only the shared train section."""

    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def test_fault_knobs_are_off_by_default_and_validated():
    assert all(v == 0 for v in dataclasses.asdict(TrainConfig().faults).values())
    assert load_config(RunConfig, None, ["train.faults.raise_at=7"]).train.faults.raise_at == 7
    with pytest.raises(ConfigError, match="train.faults.raise_at"):
        load_config(RunConfig, None, ["train.faults.raise_at=soon"])
    with pytest.raises(ConfigError, match="≥ 0"):
        load_config(RunConfig, None, ["train.faults.kill_at=-1"])


@pytest.mark.parametrize("knob, counter", [("nan_loss_at", "nonfinite_loss"), ("inf_grad_at", "nonfinite_grad")])
def test_nonfinite_guards_continue(tmp_path, knob, counter):
    with pytest.warns(UserWarning, match="non-finite") if knob == "nan_loss_at" else contextlib.nullcontext():
        res = train(ToyStage(two_phases=True), cfg(**{knob: 5}), tmp_path / "r", progress=False)
    by_step = {r["step"]: r for r in rows(res.run_dir)}
    assert by_step[4][counter] == 0 and by_step[5][counter] >= 1 and by_step[12][counter] == by_step[5][counter]
    assert len(by_step) == 12 and (res.run_dir / "final").is_dir()
    assert all(torch.isfinite(v).all() for v in weights(res.run_dir).values())
    # the counters are checkpointed: a resumed run carries them on
    part = tmp_path / "p"
    with pytest.warns(UserWarning, match="non-finite") if knob == "nan_loss_at" else contextlib.nullcontext():
        train(ToyStage(two_phases=True), cfg(max_steps=8, **{knob: 5}), part, progress=False)
    train(ToyStage(two_phases=True), cfg(**{knob: 5}), part, resume=True, progress=False)
    assert rows(part)[-1][counter] == by_step[12][counter]
    assert latest_checkpoint(part).extra["counters"][counter] == by_step[12][counter]


@pytest.mark.parametrize("faults, says", [
    ({"raise_at": 6}, "training stopped at step 6 while training: InjectedFault"),
    ({"disk_full_at": 8}, "the disk is full: writing checkpoint-8 at step 8 failed"),
])
def test_stopping_faults_keep_the_last_checkpoint_and_resume_exactly(tmp_path, toy_reference, faults, says):
    run = tmp_path / "r"
    with pytest.raises(TrainingFailed) as err:
        train(ToyStage(two_phases=True), cfg(**faults), run, progress=False)
    msg = str(err.value)
    assert says in msg and "checkpoint-4" in msg and "--resume" in msg
    assert [s for s, _ in list_checkpoints(run)] == [4]
    assert not list(run.glob(".tmp-*")) and not (run / "final").exists()  # half-written files removed
    assert latest_checkpoint(run).step == 4
    train(ToyStage(two_phases=True), cfg(), run, resume=True, progress=False)
    a, b = weights(toy_reference.run_dir), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows(run)) == strip(rows(toy_reference.run_dir))


def test_bit_flip_in_newest_checkpoint_is_detected(tmp_path):
    run = tmp_path / "r"
    train(ToyStage(), cfg(), run, progress=False)
    f = run / "checkpoint-12" / "models.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight: the file still parses, only the digest tells
    f.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checkpoint-12.*SHA-256"):
        assert latest_checkpoint(run).step == 8
    rng1 = run / "checkpoint-8" / "rng-0.safetensors"
    rng1.write_bytes(rng1.read_bytes()[:10])  # truncated
    with pytest.warns(UserWarning, match="checkpoint-8"):
        assert latest_checkpoint(run).step == 4


def test_checkpoint_without_digests_still_loads(tmp_path):
    """Checkpoints written before digests were recorded stay resumable."""
    run = tmp_path / "r"
    train(ToyStage(), cfg(max_steps=4), run, progress=False)
    state = run / "checkpoint-4" / "state.json"
    s = json.loads(state.read_text())
    s.pop("sha256")
    s.pop("extra")
    state.write_text(json.dumps(s))
    assert latest_checkpoint(run).step == 4


def test_resume_drops_a_metrics_row_cut_short(tmp_path, toy_reference):
    """A crash in the middle of a metrics.jsonl write leaves half a row; resume drops it."""
    run = tmp_path / "r"
    train(ToyStage(two_phases=True), cfg(max_steps=8), run, progress=False)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 9, "model/lo')
    train(ToyStage(two_phases=True), cfg(), run, resume=True, progress=False)
    assert [r["step"] for r in rows(run)] == list(range(1, 13))


# ---------------------------------------------------------------------- through the command line
@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    make_teacher().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cli_reference(teacher_dir, tmp_path_factory):
    """An uninterrupted 6-step `softdimo distill` run."""
    out = tmp_path_factory.mktemp("runs")
    assert main(distill_args(teacher_dir, out, "ref")) == 0
    return out / "distill" / "ref"


def _metrics(run_dir):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows(run_dir)]


@pytest.mark.slow
@pytest.mark.parametrize("knob", ["kill_at=3", "kill_in_checkpoint_at=4"])
def test_sigkill_then_resume_is_bit_identical(teacher_dir, cli_reference, tmp_path, knob):
    """SIGKILL between checkpoints, or with checkpoint-4 half written; `--resume` ends bit-identical."""
    res = run_cli(distill_args(teacher_dir, tmp_path, "b", 6, f"train.faults.{knob}"))
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    run = tmp_path / "distill" / "b"
    assert [s for s, _ in list_checkpoints(run)] == [2] and not (run / "final").exists()
    if knob.startswith("kill_in_checkpoint"):
        assert (run / ".tmp-checkpoint-4").is_dir()  # the kill left a half-written folder
    assert main(distill_args(teacher_dir, tmp_path, "b", 6, "--resume")) == 0
    assert not list(run.glob(".tmp-*"))
    assert same_tensors(folder_tensors(cli_reference / "final"), folder_tensors(run / "final"))
    assert same_tensors(latest_checkpoint(cli_reference).models, latest_checkpoint(run).models)
    assert _metrics(run) == _metrics(cli_reference)


@pytest.mark.parametrize("knob, code, says", [
    ("raise_at=3", 3, "training stopped at step 3"),
    ("disk_full_at=4", 3, "the disk is full"),
    ("nan_loss_at=3", 0, None),
])
def test_cli_exit_codes_and_messages(teacher_dir, tmp_path, capsys, knob, code, says):
    args = distill_args(teacher_dir, tmp_path, "f", 6, f"train.faults.{knob}")
    assert main(args) == code
    err = capsys.readouterr().err
    run = tmp_path / "distill" / "f"
    if says:
        assert says in err and "checkpoint-2" in err and "--resume" in err and "Traceback" not in err
        assert [s for s, _ in list_checkpoints(run)] == [2] and latest_checkpoint(run).step == 2
    else:
        assert rows(run)[2]["nonfinite_loss"] >= 1 and (run / "final").is_dir()


@pytest.mark.slow
def test_two_process_sigkill_then_resume_is_bit_identical(teacher_dir, tmp_path):
    """Under torchrun (2 CPU processes, gloo), a killed run resumed with --resume ends like an uninterrupted one."""
    def torchrun(name, *extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "softdimo", *distill_args(teacher_dir, tmp_path, name, 4, *extra)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    assert torchrun("full").returncode == 0
    killed = torchrun("b", "train.faults.kill_at=3")
    assert killed.returncode != 0
    run = tmp_path / "distill" / "b"
    assert [s for s, _ in list_checkpoints(run)] == [2] and not (run / "final").exists()
    assert {p.name for p in (run / "checkpoint-2").iterdir()} >= {"rng-0.safetensors", "rng-1.safetensors"}
    res = torchrun("b", "--resume")
    assert res.returncode == 0, res.stderr[-2000:]
    full = tmp_path / "distill" / "full"
    assert same_tensors(folder_tensors(full / "final"), folder_tensors(run / "final"))
    assert _metrics(run) == _metrics(full)  # losses averaged over both processes, rows not duplicated
