"""The shared training loop: resume exactness, checkpoints, EMA, guards, outputs."""
import json
import shutil

import pytest
import torch

from softdimo.config import TrainConfig
from softdimo.train import train
from softdimo.train.checkpoint import latest_checkpoint, list_checkpoints
from toy_stage import ToyModel, ToyStage


def cfg(**kw):
    base = dict(max_steps=12, batch_size=8, lr=0.05, seed=3, checkpoint_every=4, log_every=2,
                sample_every=6, ema_decay=0.9, checkpoints_total_limit=0, threads=1)
    base.update(kw)
    return TrainConfig(**base)


class RecordingStage(ToyStage):
    """Two phases; the second (two repeats per step) records the losses it returns."""

    def __init__(self):
        super().__init__(two_phases=True)
        self.other_losses: dict[int, list[float]] = {}

    def loss_other(self, tick):
        loss, extra = super().loss_other(tick)
        self.other_losses.setdefault(tick.step, []).append(loss.item())
        return loss, {"double": 2 * loss.item()}


def test_a_repeated_phase_logs_the_mean_over_its_repeats(tmp_path):
    stage = RecordingStage()
    res = train(stage, cfg(max_steps=4, log_every=1, checkpoint_every=0, sample_every=0), tmp_path / "run",
                progress=False)
    rows = [json.loads(r) for r in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        losses = stage.other_losses[row["step"] - 1]
        assert len(losses) == 2
        assert row["other/loss"] == pytest.approx(sum(losses) / 2, rel=1e-6)
        assert row["other/double"] == pytest.approx(sum(losses), rel=1e-6)


def weights(run_dir):
    return ToyModel.from_pretrained(run_dir / "final").state_dict()


def test_outputs_written(tmp_path):
    res = train(ToyStage(), cfg(), tmp_path / "run", progress=False)
    run = res.run_dir
    assert (run / "final" / "model.safetensors").is_file() and (run / "final" / "config.json").is_file()
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12]
    assert all("model/loss" in r and "model/lr" in r for r in rows)
    assert rows[-1]["model/loss"] < rows[0]["model/loss"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-12.png", "step-6.png"]
    assert [s for s, _ in list_checkpoints(run)] == [4, 8, 12]
    assert any((run / "tensorboard").iterdir())


@pytest.mark.parametrize("two_phases", [False, True])
def test_resume_is_bit_exact(tmp_path, two_phases):
    full = train(ToyStage(two_phases), cfg(), tmp_path / "full", progress=False)
    part = tmp_path / "part"
    train(ToyStage(two_phases), cfg(max_steps=8), part, progress=False)
    shutil.rmtree(part / "checkpoint-8")  # as if killed between step 4 and 8
    shutil.rmtree(part / "final")
    train(ToyStage(two_phases), cfg(), part, resume=True, progress=False)
    a, b = weights(full.run_dir), weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ck_a, ck_b = latest_checkpoint(full.run_dir), latest_checkpoint(part)
    assert all(torch.equal(ck_a.models[k], ck_b.models[k]) for k in ck_a.models)
    steps = [json.loads(r)["step"] for r in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10, 12]  # rows after the resumed checkpoint were not duplicated


def test_corrupt_newest_checkpoint_falls_back(tmp_path):
    run = tmp_path / "r"
    train(ToyStage(), cfg(max_steps=8), run, progress=False)
    (run / "checkpoint-8" / "models.safetensors").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="checkpoint-8"):
        ck = latest_checkpoint(run)
    assert ck.step == 4
    (run / "checkpoint-4" / "state.json").unlink()
    with pytest.warns(UserWarning):
        assert latest_checkpoint(run) is None


def test_retention_limit(tmp_path):
    train(ToyStage(), cfg(checkpoints_total_limit=2), tmp_path / "r", progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [8, 12]


def test_grad_accumulation_matches_large_batch(tmp_path):
    a = train(ToyStage(), cfg(grad_accum=1, checkpoint_every=0, sample_every=0, ema_decay=None,
                              max_steps=3), tmp_path / "a", progress=False)
    b = train(ToyStage(), cfg(grad_accum=2, checkpoint_every=0, sample_every=0, ema_decay=None,
                              max_steps=3), tmp_path / "b", progress=False)
    wa, wb = weights(a.run_dir), weights(b.run_dir)
    # same examples per optimiser step; only the per-micro noise/dropout draws differ slightly
    assert all(torch.allclose(wa[k], wb[k], atol=0.05) for k in wa)


def test_nan_loss_is_skipped_and_counted(tmp_path):
    res = train(ToyStage(nan_at=2), cfg(max_steps=4, log_every=1), tmp_path / "r", progress=False)
    rows = [json.loads(r) for r in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["nonfinite_loss"] == 1
    w = weights(res.run_dir)
    assert all(torch.isfinite(v).all() for v in w.values())


def test_batch_not_divisible(tmp_path):
    from softdimo.errors import ConfigError

    with pytest.raises(ConfigError, match="divisible"):
        train(ToyStage(), cfg(batch_size=7, grad_accum=2), tmp_path / "r", progress=False)


def test_ema_differs_from_live_and_is_exported(tmp_path):
    res = train(ToyStage(), cfg(ema_decay=0.5), tmp_path / "r", progress=False)
    ck = latest_checkpoint(res.run_dir)
    live = ck.models["model.lin.weight"]
    ema = ck.models["ema.model.lin.weight"]
    assert not torch.equal(live, ema)
    assert torch.equal(weights(res.run_dir)["lin.weight"], ema)


def test_bf16_autocast_runs_and_learns(tmp_path):
    res = train(ToyStage(), cfg(mixed_precision="bf16", max_steps=8, log_every=1), tmp_path / "r",
                progress=False)
    rows = [json.loads(r) for r in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["model/loss"] < rows[0]["model/loss"]
    assert all(torch.isfinite(v).all() for v in weights(res.run_dir).values())


def test_gradient_checkpointing_gives_identical_weights(tmp_path):
    """train.gradient_checkpointing recomputes the MDM blocks in backward: same result, dropout included."""
    from softdimo.distill.train import DistillRunConfig, DistillStage
    from tiny_models import folder_tensors, make_teacher, same_tensors

    make_teacher(dropout=0.1).save_pretrained(tmp_path / "teacher")
    finals = []
    for on in (False, True):
        cfg = DistillRunConfig(train=TrainConfig(max_steps=2, batch_size=4, lr=1e-3, seed=1, checkpoint_every=0,
                                                 sample_every=0, threads=1, gradient_checkpointing=on),
                               teacher=str(tmp_path / "teacher"))
        stage = DistillStage(cfg)
        res = train(stage, cfg.train, tmp_path / f"run-{on}", progress=False)
        assert stage.student.gradient_checkpointing is on
        finals.append(folder_tensors(res.final_dir))
    assert same_tensors(*finals)


def test_gradient_checkpointing_warns_when_unsupported(tmp_path):
    with pytest.warns(UserWarning, match="gradient_checkpointing"):
        train(ToyStage(), cfg(max_steps=1, gradient_checkpointing=True), tmp_path / "r", progress=False)


def test_sharding_launchers_are_refused(monkeypatch, tmp_path):
    """An accelerate config asking for FSDP/DeepSpeed stops with a message instead of silently replicating."""
    import accelerate
    from accelerate.utils import DistributedType

    from softdimo.errors import ConfigError

    class FSDPAccelerator:
        def __init__(self, **kw):
            self.distributed_type = DistributedType.FSDP

    monkeypatch.setattr(accelerate, "Accelerator", FSDPAccelerator)
    with pytest.raises(ConfigError, match="ddp.yaml"):
        train(ToyStage(), cfg(max_steps=1), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_accelerate_presets_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    from softdimo.paths import project_root

    presets = sorted((project_root() / "configs" / "accelerate").glob("*.yaml"))
    assert [p.stem for p in presets] == ["ddp", "multinode"]
    for p in presets:
        c = load_config_from_file(str(p))
        assert c.distributed_type.value == "MULTI_GPU" and c.mixed_precision == "no"
