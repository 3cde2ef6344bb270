"""Every command, fuzzed: malformed values, files and folders never crash softdimo.

For every command ``softdimo --help`` lists, hypothesis draws command lines from
:mod:`cli_fuzz` (tiny models; bad knobs from the typed configs' declared ranges, bad files and
folders, damaged run folders, pickles with and without ``--allow-pickle``) and runs them in this
process. Each must exit 0 or 2 with no traceback, change nothing outside its output folder,
change nothing at all when it fails, load no pickle without ``--allow-pickle`` (and none without
``weights_only=True``) and run no code from one. ``benchmarks/bad_input.py`` runs the same
fuzzer at a larger budget.
"""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from cli_fuzz import Sandbox, commands, run_case, strategies, violations

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = {"train-tokenizer": 4, "train-classifier": 4, "train-teacher": 4, "train-reward": 4, "distill": 8,
            "refine": 6, "sample": 14, "tteo": 6, "eval": 8, "bench": 6, "convert": 6, "report": 5, "demo": 3,
            "serve": 5, "export": 6}
COUNTER = itertools.count()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    return Sandbox(tmp_path_factory.mktemp("fuzz"))


def test_every_command_is_fuzzed():
    assert sorted(strategies()) == commands() == sorted(EXAMPLES)


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_fuzzed_command_line(sandbox, command):
    @settings(max_examples=EXAMPLES[command], deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=strategies()[command])
    def check(case):
        outcome = run_case(case, sandbox, next(COUNTER))
        bad = violations(outcome)
        assert not bad, f"{case!r}:\n  " + "\n  ".join(bad) + f"\nstderr:\n{outcome.stderr[-3000:]}"

    check()
