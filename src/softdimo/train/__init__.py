"""Training infrastructure shared by every stage: the loop, checkpoints, EMA, run folders, faults."""
from .faults import TrainingFailed
from .loop import Context, Phase, Stage, Tick, TrainResult, build_context, train
from .rundir import prepare_run_dir

__all__ = ["Context", "build_context", "Phase", "Stage", "Tick", "TrainResult", "TrainingFailed", "train", "prepare_run_dir"]
