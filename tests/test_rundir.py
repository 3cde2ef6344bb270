"""train/rundir.py: what --resume accepts from a run's saved config.yaml."""
from __future__ import annotations

import pytest
import yaml

from softdimo.config import load_config
from softdimo.distill.refine import RefineRunConfig
from softdimo.errors import ConfigError
from softdimo.train.rundir import prepare_run_dir


def refine_config(tmp_path, *overrides):
    return load_config(RefineRunConfig, None, [f"train.out_dir={tmp_path}", "train.run_name=r", *overrides])


def saved_run(tmp_path, drop=None):
    """A run folder whose config.yaml was written by an older softdimo that lacked knob ``drop``."""
    run = prepare_run_dir("refine", refine_config(tmp_path), None, resume=False)
    (run / "metrics.jsonl").write_text("")
    if drop:
        data = yaml.safe_load((run / "config.yaml").read_text())
        section, key = drop.split(".")
        del data[section][key]
        (run / "config.yaml").write_text(yaml.safe_dump(data))
    return run


def test_a_knob_added_since_the_run_started_takes_its_default(tmp_path):
    run = saved_run(tmp_path, drop="reward.shift_px")
    assert prepare_run_dir("refine", refine_config(tmp_path, "train.max_steps=600"), None, resume=True) == run


def test_a_knob_added_since_is_still_refused_at_another_value(tmp_path):
    saved_run(tmp_path, drop="reward.shift_px")
    with pytest.raises(ConfigError, match="section\\(s\\) reward"):
        prepare_run_dir("refine", refine_config(tmp_path, "reward.shift_px=2"), None, resume=True)


def test_a_knob_removed_since_is_named(tmp_path):
    run = saved_run(tmp_path)
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["gan"]["a_knob_this_version_lacks"] = 1
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="section\\(s\\) gan"):
        prepare_run_dir("refine", refine_config(tmp_path), None, resume=True)
