"""The PettingZoo (MPE, ``mpe2``) and lbforaging adapters: contract shapes and dtypes, agreement with the
raw simulators, truncation vs termination, same-step autoreset with the true final state, seeding,
checkpointable generators, error messages, and training through the presets, train.py and evaluate.py."""

import json
import sys

import gymnasium
import numpy as np
import pytest
import torch
from marl_checks import (
    TINY_AGENT_OVERRIDES,
    check_generator_round_trip,
    check_training_is_reproducible,
    check_truncation_then_same_step_autoreset,
    random_actions,
)
from mpe2 import simple_spread_v3

import evaluate
import train
from agents import run_training as marl_run
from agents.engine.checkpoint import Checkpointer, load_checkpoint
from agents.engine.config import apply_overrides
from agents.engine.run import read_config
from agents.marl import PRESETS
from envs import EnvError, make_vec_env
from envs.multiagent import MultiAgentVecEnv, make_marl_env
from envs.pettingzoo_env import make_pettingzoo_env

SPREAD = "mpe:simple_spread"
LBF = "lbf:Foraging-6x6-2p-1f-coop-v3"


@pytest.mark.parametrize(
    "env_id, options, shape",
    [(SPREAD, {}, (3, 18, 5, 25)), (LBF, {"penalty": 0.5}, (2, 9, 6, 50))],
)
def test_contract_shapes_and_dtypes(env_id, options, shape):
    n_agents, d, n_actions, limit = shape
    env = make_marl_env(env_id, 3, seed=0, **options)
    assert isinstance(env, MultiAgentVecEnv)
    assert (env.n_agents, env.n_actions, env.episode_limit) == (n_agents, n_actions, limit)
    assert env.obs_spec.shape == (n_agents, d) and env.state_spec.shape == (n_agents * d,)
    assert env.action_spec.shape == (n_agents,) and env.action_spec.n == n_actions
    obs = env.reset(seed=1)
    info = env.current_info()
    assert obs.shape == (3, n_agents, d) and obs.dtype == torch.float32
    # Both global states are the observations concatenated (MPE's state(), lbforaging's by the spec).
    assert info["state"].shape == (3, n_agents * d) and torch.equal(info["state"], obs.reshape(3, -1))
    assert info["avail_actions"].shape == (3, n_agents, n_actions) and info["avail_actions"].dtype == torch.bool
    assert info["avail_actions"].all() and info["alive"].shape == (3, n_agents) and info["alive"].all()
    out = env.step(random_actions(env, 1)[0])
    assert out.obs.shape == out.final_obs.shape == (3, n_agents, d) and out.obs.dtype == torch.float32
    assert out.reward.shape == (3,) and out.reward.dtype == torch.float32
    assert out.terminated.dtype == out.truncated.dtype == torch.bool
    assert out.terminated.shape == out.truncated.shape == (3,)
    for key in ("state", "avail_actions", "alive", "final_state", "final_avail_actions"):
        assert out.info[key].shape[0] == 3, key


@pytest.mark.parametrize("team_reward", ["sum", "mean"])
def test_mpe_matches_raw_parallel_env(team_reward):
    env = make_marl_env(SPREAD, 2, seed=0, team_reward=team_reward)
    raws = [simple_spread_v3.parallel_env(N=3, max_cycles=25, continuous_actions=False) for _ in range(2)]
    obs = env.reset(seed=7)
    raw_obs = [raw.reset(seed=7 + i)[0] for i, raw in enumerate(raws)]  # copy i gets seed + i
    agents = raws[0].possible_agents
    assert torch.equal(obs, torch.tensor(np.array([[o[a] for a in agents] for o in raw_obs])))
    for joint in random_actions(env, 5):
        out = env.step(joint)
        for i, raw in enumerate(raws):
            o, r, _, _, _ = raw.step({a: int(u) for a, u in zip(agents, joint[i])})
            assert torch.equal(out.obs[i], torch.tensor(np.array([o[a] for a in agents])))
            per_agent = torch.tensor([r[a] for a in agents], dtype=torch.float32)
            expected = per_agent.sum() if team_reward == "sum" else per_agent.mean()
            assert torch.allclose(out.reward[i], expected)
            assert torch.equal(out.info["state"][i], torch.from_numpy(raw.state()))


def test_mpe_state_is_the_concatenated_observations_either_way():
    acts = random_actions(make_marl_env(SPREAD, 2), 6)
    env, concat = make_marl_env(SPREAD, 2, global_state="env"), make_marl_env(SPREAD, 2, global_state="obs")
    assert torch.equal(rollout(env, 3, acts)[-1], rollout(concat, 3, acts)[-1])
    with pytest.raises(ValueError, match="global_state"):
        make_marl_env(SPREAD, global_state="joint")


@pytest.mark.parametrize("env_id", [SPREAD, LBF])
def test_truncation_at_the_limit_then_same_step_autoreset_with_true_final_state(env_id):
    env = make_marl_env(env_id, 3, seed=0, episode_limit=5)
    env.reset(seed=0)
    acts = random_actions(env, 10)
    if env_id == LBF:  # no-op actions only: the food stays, so the episode can only be truncated
        acts = torch.zeros_like(acts)
    check_truncation_then_same_step_autoreset(env, acts, limit=5)


def lbf_scene(env, row, food_level):
    """One food of ``food_level`` at (2, 2), agent 0 (level 1) west of it, agent 1 (level 1) far away."""
    foraging = env.copies[row].foraging
    foraging.field[:] = 0
    foraging.field[2, 2] = food_level
    foraging._food_spawned = food_level
    for player, position in zip(foraging.players, [(2, 1), (5, 5)]):
        player.position, player.level = position, 1
    foraging._gen_valid_moves()


def test_lbf_failed_load_pays_the_penalty_and_the_last_food_terminates():
    env = make_marl_env(LBF, 2, seed=0, penalty=0.5)
    env.reset(seed=0)
    lbf_scene(env, 0, food_level=3)  # too heavy for agent 0 alone: the load fails
    lbf_scene(env, 1, food_level=1)  # light enough: loaded, no food left -> terminated
    load_alone = torch.tensor([[5, 0], [5, 0]])
    out = env.step(load_alone)
    assert out.reward.tolist() == [-0.5, 1.0]
    assert out.terminated.tolist() == [False, True] and not out.truncated.any()
    assert not torch.equal(out.obs[1], out.final_obs[1]) and torch.equal(out.obs[0], out.final_obs[0])
    assert env._steps.tolist() == [1, 0]  # only row 1 restarted
    # The load penalty option reaches lbforaging; penalty 0 makes the failed load free.
    free = make_marl_env(LBF, 1, seed=0, penalty=0.0)
    free.reset(seed=0)
    lbf_scene(free, 0, food_level=3)
    assert free.step(load_alone[:1]).reward.tolist() == [0.0]


def test_lbf_action_masks_are_lbforagings_valid_actions():
    env = make_marl_env(LBF, 1, seed=0, action_masks=True)
    env.reset(seed=0)
    lbf_scene(env, 0, food_level=3)
    env.step(torch.zeros(1, 2, dtype=torch.long))  # masks are read after a step
    avail = env.current_info()["avail_actions"][0]
    assert avail[0, 5] and not avail[1, 5]  # agent 0 is next to food, agent 1 is not
    assert not avail[1, 2] and not avail[1, 4]  # agent 1 in the south-east corner: no south / east


def rollout(env, seed, acts):
    frames = [torch.cat([env.reset(seed=seed).flatten(1), env.current_info()["state"]], 1)]
    for joint in acts:
        out = env.step(joint)
        frames.append(torch.cat([out.obs.flatten(1), out.reward[:, None], out.info["final_state"]], 1))
    return frames


@pytest.mark.parametrize("env_id", [SPREAD, LBF])
def test_same_seed_same_trajectories_and_copies_differ(env_id):
    make = lambda seed: make_marl_env(env_id, 2, seed=seed, episode_limit=4)  # noqa: E731
    acts = random_actions(make(0), 10)
    a, b = rollout(make(0), 5, acts), rollout(make(99), 5, acts)  # reset(seed=5) decides
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = rollout(make(0), 6, acts)
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert not torch.equal(a[0][0], a[0][1])  # copy 1 is seeded with seed + 1


@pytest.mark.parametrize("env_id", [SPREAD, LBF])
def test_generators_round_trip_through_a_weights_only_checkpoint(env_id):
    check_generator_round_trip(make_marl_env(env_id, 2, seed=3, episode_limit=3))


class MaskedToyEnv:
    """A two-agent PettingZoo-style parallel env with action masks in the infos and no state()."""

    possible_agents = ["b", "a"]

    def __init__(self):
        self.unwrapped = self
        self.np_random = np.random.default_rng(0)

    def action_space(self, agent):
        return gymnasium.spaces.Discrete(3)

    def state(self):
        raise NotImplementedError

    def _out(self):
        obs = {agent: self.np_random.random(2).astype(np.float32) for agent in self.possible_agents}
        infos = {"a": {"action_mask": np.array([1, 0, 1])}, "b": {"action_mask": np.array([0, 1, 1])}}
        return obs, infos

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        return self._out()

    def step(self, joint):
        obs, infos = self._out()
        rewards = {"a": float(joint["a"]), "b": 10.0 * joint["b"]}
        done = {agent: False for agent in self.possible_agents}
        return obs, rewards, done, done, infos

    def close(self):
        pass


def test_generic_parallel_adapter_orders_agents_and_reads_masks():
    env = make_pettingzoo_env(MaskedToyEnv, num_envs=2, seed=0, episode_limit=3)
    obs = env.reset(seed=0)
    info = env.current_info()
    assert env.state_spec.shape == (4,) and torch.equal(info["state"], obs.reshape(2, -1))
    # Agents in possible_agents order: "b" first.
    assert info["avail_actions"][0].tolist() == [[False, True, True], [True, False, True]]
    out = env.step(torch.tensor([[1, 2], [2, 0]]))  # row 0: b=1, a=2
    assert out.reward.tolist() == [12.0, 20.0]


def test_unknown_ids_and_bad_options_fail_with_a_message():
    with pytest.raises(EnvError, match="closest: mpe:simple_spread"):
        make_vec_env("mpe:simple_sprad")
    with pytest.raises(EnvError, match="closest: lbf:Foraging-6x6-2p-1f-coop-v3"):
        make_marl_env("lbf:Foraging-6x6-2p-1f-coop-v2")
    with pytest.raises(NotImplementedError, match="continuous"):
        make_marl_env(SPREAD, continuous_actions=True)
    with pytest.raises(ValueError, match="team_reward"):
        make_marl_env(LBF, team_reward="max")


@pytest.mark.parametrize("env_id, module", [(SPREAD, "mpe2"), (LBF, "lbforaging")])
def test_missing_optional_package_names_the_extra(monkeypatch, env_id, module):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(EnvError, match=r"pip install -e \.\[marl\]") as error:
        make_marl_env(env_id)
    assert "\n" not in str(error.value)


def test_make_vec_env_routes_the_prefixes():
    assert make_vec_env(SPREAD, 2).obs_spec.shape == (3, 18)
    assert make_vec_env(LBF, 2, options={"penalty": 0.2}).copies[1].foraging.penalty == 0.2


TINY_RUN = [
    "env.num_envs=2",
    "env.options.episode_limit=6",
    "train.total_steps=24",
    "train.batch_episodes=2",
    "train.update_after_episodes=2",
    "train.eval_every=0",
    "train.eval_episodes=2",
    "train.checkpoint_every=12",
    "train.progress=false",
    *TINY_AGENT_OVERRIDES,
]


@pytest.mark.parametrize("task", ["simple-spread", "lbf-6x6-coop", "lbf-8x8-coop"])
def test_presets_carry_the_spec_settings(task):
    limit = 25 if task == "simple-spread" else 50
    for algo in ("roe", "dmix", "ddn", "qmix", "vdn"):
        preset = PRESETS[f"{algo}/{task}"]
        assert preset.env.options["episode_limit"] == limit and preset.agent.epsilon_anneal_steps == 50_000
        assert (preset.train.batch_episodes, preset.train.buffer_episodes, preset.agent.target_every) == (
            32,
            5_000,
            200,
        )
    assert PRESETS[f"roe/{task}"].agent.risk_anneal_steps == (50_000 if task == "simple-spread" else 150_000)
    assert PRESETS[f"roe/{task}"].agent.taus == "upper" and PRESETS[f"dmix/{task}"].agent.taus == "uniform"


@pytest.mark.parametrize("algo, task", [("roe", "simple-spread"), ("qmix", "lbf-6x6-coop")])
def test_train_py_and_evaluate_py_run_the_presets(tmp_path, algo, task):
    run_dir = tmp_path / "run"
    assert train.main([f"{algo}/{task}", *TINY_RUN, "--run-dir", str(run_dir)]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/td" in row for row in rows) and any("eval/mean_reward" in row for row in rows)
    assert evaluate.main([str(run_dir), "--episodes", "2"]) == 0
    (report,) = (run_dir / "eval").glob("eval_step24_*.json")
    assert np.isfinite(json.loads(report.read_text())["nominal"]["mean_reward"])


def test_resume_equals_straight_run(tmp_path):
    straight = apply_overrides(PRESETS["dmix/lbf-6x6-coop"], [*TINY_RUN, "env.options.penalty=0.2"])
    marl_run(straight, tmp_path / "straight")
    marl_run(apply_overrides(straight, ["train.total_steps=12"]), tmp_path / "split")
    marl_run(
        apply_overrides(read_config(tmp_path / "split"), ["train.total_steps=24"]), tmp_path / "split", resume=True
    )
    a, b = (load_checkpoint(Checkpointer(tmp_path / d).latest()) for d in ("straight", "split"))
    assert a["step"] == b["step"] == 24
    for key, value in a["buffer"]["storage"].items():  # the resumed envs replay the same episodes
        assert torch.equal(value, b["buffer"]["storage"][key]), key
    for key, value in a["agent"]["net"].items():
        assert torch.equal(value, b["agent"]["net"][key]), key


def test_training_is_reproducible():
    check_training_is_reproducible(apply_overrides(PRESETS["roe/simple-spread"], TINY_RUN))
