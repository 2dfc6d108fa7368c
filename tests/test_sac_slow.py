"""Learning check (slow, minutes): the default preset learns Pendulum-v1 within 20k steps."""

import pytest

from agents import get_preset, load_run
from agents import run_training as train
from agents.engine.config import apply_overrides
from agents.engine.evaluation import run_episodes, summarize
from envs import make_vec_env


@pytest.mark.slow
def test_default_preset_learns_pendulum(tmp_path):
    overrides = ["progress=false", "eval_every=0", "train.threads=2"]  # the runner sets the threads
    run_dir = train(apply_overrides(get_preset("sac"), overrides), tmp_path / "run")
    agent = load_run(run_dir).agent
    env = make_vec_env("Pendulum-v1", 10, seed=777)
    returns = run_episodes(agent, env, 20, explore=False, seed=777)["returns"]
    assert summarize(returns)["mean_reward"] >= -250
