"""Continuous actions and per-agent rewards in the multi-agent adapters (``actions="continuous"``, ``reward="agent"``),
and the shared options object: MPE (``mpe2``) simple_spread, simple_tag, simple_speaker_listener and simple_crypto and
VMAS navigation run the continuous form of the adapter checks (truncation with same-step autoreset, true final state,
generator round trip), agree with the raw simulators fed the rescaled actions, and canonical -1 / +1 reach the
simulators' own action bounds."""

import dataclasses

import numpy as np
import pytest
import torch
import vmas
from marl_checks import (
    check_canonical_actions_reach_the_simulator_bounds,
    check_continuous_contract,
    check_continuous_generator_round_trip,
    check_continuous_truncation_then_same_step_autoreset,
    random_actions,
    random_box_actions,
)
from mpe2 import simple_speaker_listener_v4, simple_spread_v3

from envs.multiagent import MultiAgentOptions, MultiAgentVecEnv, make_marl_env
from envs.vmas_env import NAVIGATION_DEFAULTS

LBF = "lbf:Foraging-6x6-2p-1f-coop-v3"

# id -> (agent names in order, each agent's observation length, each agent's action width); from mpe2 1.1's
# scenario sources (the adversaries / eve come first) and VMAS navigation with 2 agents (2-d force).
CONTINUOUS = {
    "mpe:simple_spread": (["agent_0", "agent_1", "agent_2"], [18, 18, 18], [5, 5, 5]),
    "mpe:simple_tag": (["adversary_0", "adversary_1", "adversary_2", "agent_0"], [16, 16, 16, 14], [5, 5, 5, 5]),
    "mpe:simple_speaker_listener": (["speaker_0", "listener_0"], [3, 11], [3, 5]),
    "mpe:simple_crypto": (["eve_0", "bob_0", "alice_0"], [4, 8, 8], [4, 4, 4]),
    "vmas:navigation": (["agent_0", "agent_1"], [18, 18], [2, 2]),
}


def continuous(env_id, n=2, seed=0, **options):
    """A continuous env; VMAS navigation with 2 agents (the MPE scenarios keep their own agent counts)."""
    if env_id.startswith("vmas:"):
        options = {"n_agents": 2, **options}
    return make_marl_env(env_id, n, seed=seed, actions="continuous", **options)


@pytest.mark.parametrize("env_id", list(CONTINUOUS))
def test_contract_agent_order_and_padding(env_id):
    names, obs_dims, action_dims = CONTINUOUS[env_id]
    env = continuous(env_id, 3, episode_limit=5)
    assert isinstance(env, MultiAgentVecEnv)
    assert env.agent_names == tuple(names) and env.n_agents == len(names)
    assert env.n_actions == max(action_dims) and env.obs_spec.shape == (len(names), max(obs_dims))
    assert env.obs_dims == tuple(obs_dims) and env.action_dims == tuple(action_dims)
    check_continuous_contract(env, reward_shape=(3,))
    obs, info = env.reset(seed=2), env.current_info()
    # Narrower agents use the first components of their row; shorter observations are zero-padded at the end.
    used = torch.tensor([[k < width for k in range(max(action_dims))] for width in action_dims])
    assert torch.equal(info["avail_actions"], used.expand(3, -1, -1))
    for row, d in enumerate(obs_dims):
        assert not obs[:, row, d:].any()
    if env_id.startswith("mpe:"):  # MPE's state is every agent's own observation, concatenated without padding
        assert env.state_spec.shape == (sum(obs_dims),)
        unpadded = torch.cat([obs[:, row, :d] for row, d in enumerate(obs_dims)], 1)
        assert torch.equal(info["state"], unpadded)


@pytest.mark.parametrize("env_id", list(CONTINUOUS))
def test_truncation_then_same_step_autoreset_with_true_final_state(env_id):
    env = continuous(env_id, 3, episode_limit=4)
    check_continuous_truncation_then_same_step_autoreset(env, random_box_actions(env, 8), limit=4)


@pytest.mark.parametrize("env_id", list(CONTINUOUS))
def test_generator_round_trips_through_a_weights_only_checkpoint(env_id):
    check_continuous_generator_round_trip(continuous(env_id, 2, seed=3, episode_limit=3))


def copies_spy(env):
    """Record the joint action every PettingZoo copy receives; returns ``received()`` (per-agent ``[N, A_i]``) and the
    simulator's own bounds (its action spaces)."""
    seen = {}
    for i, copy in enumerate(env.copies):
        step = copy.env.step

        def spy(joint, i=i, step=step):
            seen[i] = {agent: np.array(a, copy=True) for agent, a in joint.items()}
            return step(joint)

        copy.env.step = spy
    agents = env.copies[0].agents

    def received():
        return [torch.tensor(np.stack([seen[i][a] for i in range(env.num_envs)])) for a in agents]

    spaces = [env.copies[0].env.action_space(a) for a in agents]
    return received, [torch.tensor(s.low) for s in spaces], [torch.tensor(s.high) for s in spaces]


def vmas_spy(env):
    """The same for VMAS: the list of per-agent ``[N, A_i]`` tensors handed to ``Environment.step``."""
    seen = []
    step = env._env.step

    def spy(actions):
        seen[:] = [a.clone() for a in actions]
        return step(actions)

    env._env.step = spy
    spaces = list(env._env.action_space)
    return (lambda: seen), [torch.tensor(s.low) for s in spaces], [torch.tensor(s.high) for s in spaces]


@pytest.mark.parametrize("env_id", [*CONTINUOUS, "vmas:give_way"])
def test_canonical_plus_minus_one_reach_the_simulators_bounds(env_id):
    options = {"n_agents": 2} if env_id == "vmas:navigation" else {}
    env = make_marl_env(env_id, 2, seed=0, actions="continuous", episode_limit=50, **options)
    received, low, high = (vmas_spy if env_id.startswith("vmas:") else copies_spy)(env)
    if env_id.startswith("mpe:"):  # mpe2's continuous actions live in [0, 1]
        assert all(torch.equal(lo, torch.zeros_like(lo)) for lo in low)
        assert all(torch.equal(hi, torch.ones_like(hi)) for hi in high)
    if env_id == "vmas:give_way":  # a box that is not [-1, 1]: v_range 0.5 (VMAS's default for this scenario)
        assert all(torch.equal(hi, torch.full_like(hi, 0.5)) for hi in high)
    check_canonical_actions_reach_the_simulator_bounds(env, received, low, high)


def test_mpe_plus_one_on_a_direction_moves_the_agent_with_full_force():
    """MPE turns a continuous action [no-op, -x, +x, -y, +y] into the force 5 * (a[2] - a[1], a[4] - a[3])."""
    env = continuous("mpe:simple_spread", 1)
    env.reset(seed=0)
    world = env.copies[0].env.unwrapped.world
    env.step(torch.tensor([[[-1.0, -1.0, 1.0, -1.0, -1.0], [-1.0, 1.0, -1.0, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]]]))
    assert world.agents[0].action.u.tolist() == [5.0, 0.0]  # +x only
    assert world.agents[1].action.u.tolist() == [-5.0, 5.0]  # -x and +y
    assert world.agents[2].action.u.tolist() == [0.0, 0.0]  # 0 is the middle of [0, 1] on every component


@pytest.mark.parametrize("scenario", ["spread", "speaker_listener"])
def test_mpe_matches_the_raw_env_fed_zero_one_actions(scenario):
    module = {"spread": simple_spread_v3, "speaker_listener": simple_speaker_listener_v4}[scenario]
    env = continuous(f"mpe:simple_{scenario}", 2, reward="agent")
    raws = [module.parallel_env(max_cycles=25, continuous_actions=True) for _ in range(2)]
    agents = raws[0].possible_agents
    widths = [raws[0].action_space(a).shape[0] for a in agents]
    obs = env.reset(seed=7)
    raw_obs = [raw.reset(seed=7 + i)[0] for i, raw in enumerate(raws)]  # copy i gets seed + i
    for joint in [None, *random_box_actions(env, 5)]:
        if joint is not None:
            out = env.step(joint)
            obs = out.obs
            for i, raw in enumerate(raws):
                zero_one = {a: ((joint[i, k, :w] + 1) / 2).numpy() for k, (a, w) in enumerate(zip(agents, widths))}
                raw_obs[i], r, _, _, _ = raw.step(zero_one)
                assert torch.allclose(out.reward[i], torch.tensor([r[a] for a in agents], dtype=torch.float32))
        for i in range(2):
            for k, a in enumerate(agents):
                d = raw_obs[i][a].shape[0]
                assert torch.allclose(obs[i, k, :d], torch.from_numpy(raw_obs[i][a]), atol=1e-6)


def test_vmas_matches_raw_vmas_and_reports_per_agent_rewards():
    env = continuous("vmas:navigation", 2, reward="agent", max_steps=50)
    raw = vmas.make_env(
        "navigation",
        num_envs=2,
        continuous_actions=True,
        max_steps=50,
        seed=7,
        terminated_truncated=True,
        **{**NAVIGATION_DEFAULTS, "n_agents": 2},
    )
    assert torch.equal(env.reset(seed=7), torch.stack(raw.reset(seed=7), 1))
    for joint in random_box_actions(env, 5):
        out = env.step(joint)
        raw_obs, raw_rew, _, _, _ = raw.step(list(joint.unbind(1)))  # navigation's box is [-1, 1] already
        assert torch.equal(out.obs, torch.stack(raw_obs, 1))
        assert torch.equal(out.reward, torch.stack(raw_rew, 1))
    assert out.reward.shape == (2, 2) and not torch.equal(out.reward[:, 0], out.reward[:, 1])


@pytest.mark.parametrize(
    "env_id, actions, reduce",
    [
        ("mpe:simple_spread", "discrete", "sum"),
        ("mpe:simple_tag", "continuous", "mean"),
        (LBF, "discrete", "sum"),
        ("vmas:navigation", "discrete", "mean"),
        ("vmas:navigation", "continuous", "sum"),
    ],
)
def test_per_agent_rewards_reduce_to_the_team_reward(env_id, actions, reduce):
    options = {"n_agents": 2} if env_id.startswith("vmas:") else {}

    def make(reward):
        return make_marl_env(env_id, 3, seed=1, actions=actions, reward=reward, team_reward=reduce, **options)

    per_agent, team = make("agent"), make("team")  # 3 copies each
    acts = random_box_actions(team, 6) if actions == "continuous" else random_actions(team, 6)
    per_agent.reset(seed=4), team.reset(seed=4)
    for joint in acts:
        a, t = per_agent.step(joint), team.step(joint)
        assert a.reward.shape == (3, team.n_agents) and t.reward.shape == (3,)
        expected = a.reward.sum(1) if reduce == "sum" else a.reward.mean(1)
        assert torch.allclose(t.reward, expected, atol=1e-6)
        assert torch.equal(a.obs, t.obs)


def test_simple_tag_rewards_are_per_team():
    """Tag is mixed: every predator gets +10 per catch, the prey -10 per catch (plus its boundary penalty)."""
    env = continuous("mpe:simple_tag", 1, reward="agent")
    env.reset(seed=0)
    world = env.copies[0].env.unwrapped.world
    prey = world.agents[3]
    prey.state.p_pos[:] = 0.0  # in the middle: no boundary penalty for the prey
    for k, predator in enumerate(world.agents[:3]):  # adversary_0 touches the prey (radii 0.075 + 0.05), the others not
        predator.state.p_pos[:] = [0.02, 0.0] if k == 0 else [0.5 * k, 0.5]
    out = env.step(torch.zeros(1, 4, 5))
    assert out.reward[0].tolist() == [10.0, 10.0, 10.0, -10.0]


def test_options_object_equals_keywords_and_keywords_win():
    opts = MultiAgentOptions(num_envs=2, seed=5, episode_limit=3, reward="agent", actions="continuous")
    by_object, by_keywords = (
        make_marl_env("mpe:simple_spread", options=opts),
        continuous("mpe:simple_spread", 2, seed=5, episode_limit=3, reward="agent"),
    )
    assert by_object.num_envs == 2 and by_object.episode_limit == 3
    assert by_object.multi_agent_options == by_keywords.multi_agent_options
    acts = random_box_actions(by_object, 4)
    for x, y in zip([by_object.step(a) for a in acts], [by_keywords.step(a) for a in acts]):
        assert torch.equal(x.obs, y.obs) and torch.equal(x.reward, y.reward) and torch.equal(x.truncated, y.truncated)
    # A keyword overrides the object; num_envs / device / seed left at their defaults take the object's values.
    assert make_marl_env("mpe:simple_spread", options=opts, episode_limit=7).episode_limit == 7
    assert make_marl_env("mpe:simple_spread", 3, options=opts).num_envs == 3
    vmas_env = make_marl_env("vmas:navigation", options=opts, n_agents=2)
    assert (vmas_env.num_envs, vmas_env.episode_limit, vmas_env.team_reward) == (2, 3, "mean")  # VMAS's mean default
    assert vmas_env.multi_agent_options == dataclasses.replace(opts, team_reward="mean")
    assert make_marl_env("vmas:navigation", options=MultiAgentOptions(), n_agents=2).episode_limit == 100
    assert make_marl_env(LBF, options=MultiAgentOptions(reward="agent")).episode_limit == 50  # the registered limit
    # The suite's own games take the shared options too (team reward, discrete actions only).
    game = make_marl_env("predator-prey", options=MultiAgentOptions(num_envs=2, episode_limit=9))
    assert (game.num_envs, game.episode_limit) == (2, 9)


def test_bad_options_fail_with_a_message():
    with pytest.raises(ValueError, match="reward must be"):
        MultiAgentOptions(reward="joint")
    with pytest.raises(ValueError, match="actions must be"):
        make_marl_env("mpe:simple_spread", actions="box")
    with pytest.raises(ValueError, match="once"):
        make_marl_env("vmas:navigation", max_steps=5, episode_limit=5)
    with pytest.raises(NotImplementedError, match="actions='continuous'"):
        make_marl_env("vmas:navigation", continuous_actions=True)
    with pytest.raises(ValueError, match="discrete actions only"):
        make_marl_env(LBF, actions="continuous")
    with pytest.raises(ValueError, match="team reward and discrete actions only"):
        make_marl_env("matrix:climbing", reward="agent")
    with pytest.raises(ValueError, match="team reward and discrete actions only"):
        make_marl_env("predator-prey", actions="continuous")


def test_discrete_mpe_with_mixed_observation_lengths_is_padded_too():
    """Discrete simple_tag (every agent Discrete(5), observations 16 / 14) runs with zero-padded observations; agents
    with different discrete action counts (speaker 3, listener 5) are still refused."""
    env = make_marl_env("mpe:simple_tag", 2, seed=0)
    obs = env.reset(seed=1)
    assert obs.shape == (2, 4, 16) and not obs[:, 3, 14:].any() and env.obs_dims == (16, 16, 16, 14)
    assert env.action_spec.n == 5 and env.current_info()["avail_actions"].shape == (2, 4, 5)
    assert env.step(random_actions(env, 1)[0]).reward.shape == (2,)
    with pytest.raises(ValueError, match="same Discrete action space"):
        make_marl_env("mpe:simple_speaker_listener")


def test_make_vec_env_passes_the_options_through():
    from envs import make_vec_env

    env = make_vec_env("mpe:simple_spread", 2, options={"actions": "continuous", "reward": "agent", "episode_limit": 3})
    assert env.action_spec.shape == (3, 5) and env.episode_limit == 3
    assert env.step(torch.zeros(2, 3, 5)).reward.shape == (2, 3)
