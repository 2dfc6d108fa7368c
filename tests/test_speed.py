"""Issue #24's speed settings: the thread default."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents import get_preset
from agents import run_training as train
from agents.engine.config import apply_overrides
from agents.engine.run import resolve_threads

ROOT = Path(__file__).resolve().parents[1]


# ---- threads --------------------------------------------------------------------------------------


def test_auto_threads_is_one_and_the_runner_applies_it(tmp_path, tiny_sac_overrides):
    assert resolve_threads(0) == 1 and resolve_threads(3) == 3
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        config = apply_overrides(get_preset("sac"), [*tiny_sac_overrides, "train.total_steps=20", "train.threads=0"])
        assert config.train.threads == 0  # the preset's default is auto
        train(config, tmp_path / "run")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_entry_points_start_openmp_passive_unless_told(script):
    code = f"import runpy, os; runpy.run_path({script!r}, run_name='x'); print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's own setting wins
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "ACTIVE"
