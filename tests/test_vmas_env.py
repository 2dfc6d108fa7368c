"""The VMAS adapter: contract shapes and dtypes, agreement with raw VMAS, truncation vs termination,
same-step autoreset with the true final state, seeding, checkpointable random state, and a training
smoke through the presets and the episodic loop."""

import pytest
import torch
import vmas
from marl_checks import (
    TINY_AGENT_OVERRIDES,
    check_generator_round_trip,
    check_training_is_reproducible,
    check_truncation_then_same_step_autoreset,
    random_actions,
)

from agents.engine.config import apply_overrides
from agents.marl import PRESETS, evaluate_agent, train_config
from envs import make_vec_env
from envs.multiagent import MultiAgentVecEnv, make_marl_env
from envs.vmas_env import NAVIGATION_DEFAULTS, VmasEnv


def nav(n=3, seed=0, **options):
    """A small navigation env: 2 agents, short episodes."""
    options = {"n_agents": 2, "max_steps": 8, **options}
    return make_marl_env("vmas:navigation", n, seed=seed, **options)


def test_contract_shapes_and_dtypes():
    env = nav(3)
    assert isinstance(env, MultiAgentVecEnv)
    assert (env.n_agents, env.n_actions, env.episode_limit) == (2, 9, 8)
    obs = env.reset(seed=1)
    info = env.current_info()
    d = env.obs_spec.shape[1]
    assert env.obs_spec.shape == (2, d) and env.state_spec.shape == (2 * d,) and env.action_spec.shape == (2,)
    assert obs.shape == (3, 2, d) and obs.dtype == torch.float32
    assert info["state"].shape == (3, 2 * d) and torch.equal(info["state"], obs.reshape(3, -1))
    assert info["avail_actions"].shape == (3, 2, 9) and info["avail_actions"].dtype == torch.bool
    assert info["avail_actions"].all() and info["alive"].shape == (3, 2) and info["alive"].all()
    out = env.step(random_actions(env, 1)[0])
    assert out.obs.shape == (3, 2, d) and out.final_obs.shape == (3, 2, d)
    assert out.reward.shape == (3,) and out.reward.dtype == torch.float32
    assert out.terminated.dtype == torch.bool and out.truncated.dtype == torch.bool
    assert out.terminated.shape == out.truncated.shape == (3,)
    for key in ("state", "avail_actions", "alive", "final_state", "final_avail_actions"):
        assert out.info[key].shape[0] == 3, key


@pytest.mark.parametrize("team_reward", ["mean", "sum"])
def test_matches_raw_vmas_and_team_reward_reduces_agent_rewards(team_reward):
    env = nav(2, team_reward=team_reward, max_steps=50)
    raw = vmas.make_env(
        "navigation",
        num_envs=2,
        continuous_actions=False,
        max_steps=50,
        seed=7,  # VMAS seeds torch / numpy / random with it before its first reset, as reset(seed=7) does
        terminated_truncated=True,
        **{**NAVIGATION_DEFAULTS, "n_agents": 2},
    )
    raw_obs = raw.reset(seed=7)
    obs = env.reset(seed=7)
    assert torch.equal(obs, torch.stack(raw_obs, 1))
    for joint in random_actions(env, 6):
        out = env.step(joint)
        raw_obs, raw_rew, _, _, _ = raw.step([a.unsqueeze(-1) for a in joint.unbind(1)])
        per_agent = torch.stack(raw_rew, 1)
        expected = per_agent.mean(1) if team_reward == "mean" else per_agent.sum(1)
        assert torch.equal(out.obs, torch.stack(raw_obs, 1))
        assert torch.allclose(out.reward, expected)
    # The per-agent rewards differ (shared_rew=False), so mean and sum are different signals.
    assert not torch.allclose(per_agent[:, 0], per_agent[:, 1])


def test_truncation_at_max_steps_then_autoreset_with_true_final_state():
    env = nav(3, max_steps=5)
    env.reset(seed=0)
    check_truncation_then_same_step_autoreset(env, random_actions(env, 10), limit=5)


def park_on_goals(env, row):
    """Put every agent of env ``row`` on its goal, at rest: the scenario's done() holds after a no-op."""
    for agent in env._env.agents:
        agent.set_pos(agent.goal.state.pos[row], batch_index=row)
        agent.set_vel(torch.zeros(2), batch_index=row)


def test_termination_resets_only_the_finished_row():
    env = nav(3, max_steps=20)
    env.reset(seed=3)
    env.step(torch.zeros(3, 2, dtype=torch.long))
    park_on_goals(env, 1)
    before = env.step(torch.zeros(3, 2, dtype=torch.long))  # obs after parking, rows 0 and 2 untouched
    assert before.terminated.tolist() == [False, True, False] and not before.truncated.any()
    assert torch.equal(before.obs[[0, 2]], before.final_obs[[0, 2]])
    assert not torch.equal(before.obs[1], before.final_obs[1])  # row 1 was reset in the same step
    assert torch.equal(before.info["final_state"][1], before.final_obs[1].reshape(-1))
    assert env._env.steps.tolist() == [2, 0, 2]  # only row 1's episode restarted


def test_seeding_is_reproducible_and_independent_of_other_envs_and_global_rng():
    acts = random_actions(nav(2), 12)

    def rollout(env, interleave=None):
        obs = [env.reset(seed=5)]
        for joint in acts:
            obs.append(env.step(joint).obs)
            if interleave is not None:
                interleave.step(joint)  # another VMAS env drawing in between
        return torch.stack(obs)

    global_state = torch.get_rng_state()
    a = rollout(nav(2, max_steps=4))
    b = rollout(nav(2, max_steps=4, seed=99), interleave=nav(2, max_steps=3))
    assert torch.equal(a, b)  # reset(seed=5) decides; another env's draws do not leak in
    assert torch.equal(torch.get_rng_state(), global_state)  # the caller's RNG is untouched
    assert not torch.equal(nav(2).reset(seed=6), a[0])  # another seed, another layout


def test_random_state_round_trips_through_a_weights_only_checkpoint():
    check_generator_round_trip(nav(2, max_steps=3))


def test_bad_options_fail_with_a_message():
    with pytest.raises(NotImplementedError, match="continuous"):
        VmasEnv("navigation", continuous_actions=True)
    with pytest.raises(ValueError, match="team_reward"):
        VmasEnv("navigation", team_reward="max")
    with pytest.raises(ValueError, match="max_steps"):
        VmasEnv("navigation", max_steps=0)
    with pytest.raises(ValueError, match="vmas:SCENARIO"):
        make_marl_env("vmas:")


def test_make_vec_env_routes_vmas_ids():
    env = make_vec_env("vmas:navigation", 2, options={"n_agents": 2, "max_steps": 4})
    assert isinstance(env, VmasEnv) and env.obs_spec.shape[0] == 2


TINY_RUN = [
    "env.num_envs=2",
    "env.options.max_steps=6",
    "env.options.n_agents=2",
    "train.total_steps=36",
    "train.batch_episodes=2",
    "train.update_after_episodes=2",
    "train.eval_every=0",
    "train.eval_episodes=2",
    "train.progress=false",
    *TINY_AGENT_OVERRIDES,
]


@pytest.mark.parametrize("algo", ["qmix", "dmix", "roe"])
def test_presets_train_through_the_episodic_loop(algo):
    preset = PRESETS[f"{algo}/vmas-navigation"]
    assert preset.env.id == "vmas:navigation" and preset.env.options["max_steps"] == 100
    cfg = apply_overrides(preset, TINY_RUN)
    rows = []
    out = train_config(cfg, log=lambda step, metrics: rows.append(metrics))
    assert out["steps"] == 36 and out["updates"] == 3 and out["episodes"] == 6
    losses = [m["loss/td"] for m in rows if "loss/td" in m]
    assert losses and all(torch.isfinite(v) for v in losses)
    assert torch.isfinite(out["final_eval"]["eval/mean_reward"])
    # Stored episodes are full length (navigation rarely terminates early under random actions).
    batch = out["buffer"].sample(2)
    assert batch["obs"].shape == (2, 7, 2, out["agent"].obs_dim)
    result = evaluate_agent(cfg, out["agent"], episodes=2)
    assert set(result) >= {"mean_reward", "mean_ep_length"} and result["episodes"] == 2


def test_training_is_reproducible():
    check_training_is_reproducible(apply_overrides(PRESETS["qmix/vmas-navigation"], TINY_RUN))
