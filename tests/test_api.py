"""The Python API: train from Python, load a policy, act in a plain gymnasium loop, evaluate.

The round trip: a tiny SAC run trained through ``agents.train``, loaded through ``agents.load_policy``
and played in a plain gymnasium loop (env i reset with seed + i, one episode each) returns what
``evaluate.py`` reports for the same seeds.
"""

import json
import re
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import agents
import evaluate

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "agent.hidden=[16,16]",
    "total_steps=200",
    "update_after_steps=100",
    "batch_size=32",
    "eval_every=0",
    "eval_episodes=1",
    "progress=false",
]


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    return agents.train("sac", TINY, tmp_path_factory.mktemp("api") / "run")


def test_round_trip_plain_gymnasium_loop_matches_evaluate_py(sac_run, capsys):
    policy = agents.load_policy(sac_run)
    seed, episodes = 321, 3
    returns = []
    for i in range(episodes):
        env = gymnasium.make("Pendulum-v1")
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            assert env.action_space.contains(action.astype(np.float32))
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    assert evaluate.main([str(sac_run), "--episodes", str(episodes), "--envs", str(episodes), "--seed", str(seed)]) == 0
    report = json.loads(sorted((sac_run / "eval").glob("eval_*.json"))[-1].read_text())
    assert report["nominal"]["mean_reward"] == pytest.approx(np.mean(returns), rel=1e-5)
    assert report["nominal"]["min_reward"] == pytest.approx(min(returns), rel=1e-5)
    # the API's evaluate gives evaluate.py's numbers exactly
    api = agents.evaluate(policy, episodes=episodes, seed=seed, num_envs=episodes)
    assert api == report["nominal"]
    assert report["nominal"]["mean_discounted_reward"] < 0  # single-agent: discounted too (Pendulum pays < 0)


def test_predict_single_and_batched_in_the_envs_own_units(sac_run):
    policy = agents.load_policy(sac_run)
    obs = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -3.0]], dtype=np.float32)
    batch, state = policy.predict(obs)
    assert batch.shape == (2, 1) and state is None
    single, _ = policy.predict(obs[1])
    assert single.shape == (1,) and np.allclose(single, batch[1], atol=1e-6)  # batched BLAS rounds differently
    # Pendulum's torque bound is 2: the canonical action is scaled by 2 (center 0)
    import torch

    canonical = policy.agent.act(torch.as_tensor(obs), step=0, explore=False)[0].numpy()
    assert np.allclose(batch, 2.0 * canonical)
    assert np.all(np.abs(batch) <= 2.0)
    stochastic = [policy.predict(obs[0], deterministic=False)[0] for _ in range(3)]
    assert len({float(a[0]) for a in stochastic}) > 1
    with pytest.raises(ValueError, match="observation shape"):
        policy.predict(np.zeros(5))


def test_load_policy_from_a_checkpoint_file(sac_run):
    checkpoint = sorted((sac_run / "checkpoints").glob("step_*.pt"))[0]
    policy = agents.load_policy(checkpoint)
    assert policy.step == int(checkpoint.stem.split("_")[1])


def test_multi_agent_policy_acts_with_recurrent_state(tmp_path):
    run_dir = agents.train("roe/penalty", ["agent.hidden_dim=8", "total_steps=40", "progress=false"], tmp_path / "marl")
    policy = agents.load_policy(run_dir)
    assert policy.multi_agent
    obs = np.zeros(policy.observation_shape, dtype=np.float32)
    actions, state = policy.predict(obs)
    assert actions.shape == (policy.observation_shape[0],) and actions.dtype == np.int64
    again, _ = policy.predict(obs, state, episode_start=[True])
    assert np.array_equal(actions, again)  # a restarted episode acts as from the zero state
    mask = np.zeros((policy.observation_shape[0], 3), dtype=bool)
    mask[:, 1] = True
    masked, _ = policy.predict(obs, avail_actions=mask)
    assert np.all(masked == 1)
    summary = agents.evaluate(policy, episodes=4)
    assert summary["episodes"] == 4 and set(summary) >= {"mean_reward", "std_reward", "mean_ep_length"}


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Python API.*?```python\n(.*?)```", readme, re.S)
    assert block, "README has no Python API example"
    monkeypatch.chdir(tmp_path)  # its runs/ directory goes to a temporary place
    exec(compile(block.group(1), "README.md", "exec"), {})
