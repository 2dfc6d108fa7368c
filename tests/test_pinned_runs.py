"""Short fixed-seed runs give the same learners as before the runner was unified (see pinned_runs.py).

The hashes were recorded on main at 1b39e19, before the one-runner refactor, on the 2-core CPU VM
(torch 2.13.0, one thread). A change to what a run computes (the order of updates, a seed, a
component's state) changes a hash; so does a different torch build, in which case regenerate them
with ``python tests/pinned_runs.py`` on the old commit and the new one and compare.

One hash was re-recorded since, for a change of float summation order only: PIN's v1_mc update now
reads the taken tokens' Q-values alone instead of a ``[B, T, V]`` tensor (the same loss); after the
pinned run its parameters and Adam moments differ from the old code's by at most 1.9e-7 relative
(1.4e-9 absolute), measured against f8a7517.
"""

import json

import pytest
import torch
from pinned_runs import PINNED, run_hash

RECORDED = {
    "sac": "e89e689c20cd591b",
    "dqn/cartpole": "7272004753c5ca40",
    "erc-dqn/cartpole": "3ad52600ffbab1c7",
    "qmix/climbing": "4d1c702ab7999930",
    "roe/climbing": "1ff523b5eae19aae",
    "maddpg/simple-spread": "a5e0d2b392653067",
    "ernie/simple-spread": "cb620e3625dfc54d",
    "qarl-authors/inverted-pendulum": "a6ad6e0ca3a6a3ee",
    "rarl-authors/inverted-pendulum": "73b949fc4fb0370d",
    "pin/fsc-sentiment": "e2824867423e1b64",  # re-recorded: see the module docstring
    "rlprompt/fsc-sentiment": "aab1ad29529c0acc",
    "dmix/climbing": "2a70cf56352a9161",
    "sac-per": "b721fe5cac070e1b",
}


def test_every_pinned_run_has_a_recorded_hash():
    assert set(RECORDED) == set(PINNED)


@pytest.mark.skipif(torch.__version__.split("+")[0] != "2.13.0", reason="hashes recorded with torch 2.13.0 (CPU)")
@pytest.mark.parametrize("preset", sorted(PINNED))
def test_short_run_learns_the_recorded_parameters(preset, tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        digest = run_hash(preset, tmp_path)
    finally:
        torch.set_num_threads(threads)
    run_dir = tmp_path / preset.replace("/", "-")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(key.startswith("loss/") for row in rows for key in row), "the pinned run took no update"
    assert digest == RECORDED[preset]
