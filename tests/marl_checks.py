"""Assertion helpers and settings shared by the MARL test files, kept here once so that every file runs the same
checks.

The third-party multi-agent adapters (VMAS, PettingZoo / MPE, lbforaging) promise the same ``MultiAgentVecEnv``
contract: truncation at the episode limit, a same-step autoreset that still reports the true final observation and
state, and a random state that survives a weights-only checkpoint. A learner restored from a checkpoint must act and
learn exactly as the one it was saved from, whatever its agent net."""

import io

import torch

from agents.marl import train_config

# Command-line overrides that shrink a MARL preset's networks and quantile fractions (train.py / PRESETS runs).
TINY_AGENT_OVERRIDES = [
    "agent.hidden_dim=8",
    "agent.quantile_embed_dim=4",
    "agent.mixing_embed_dim=4",
    "agent.hypernet_embed=8",
    "agent.n_taus_act=4",
    "agent.n_taus_eval=4",
]


def random_actions(env, steps, seed=123):
    """``steps`` joint actions ``[steps, num_envs, n_agents]``, uniform over each agent's actions, from a
    generator of their own (so drawing them leaves the env's and torch's random state alone)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, env.n_actions, (steps, env.num_envs, env.n_agents), generator=g)


def check_truncation_then_same_step_autoreset(env, acts, limit):
    """Step a freshly reset ``env`` with ``acts`` (at least ``2 * limit`` joint actions that end no episode early)
    and check that every row is truncated, not terminated, at step ``limit``, is reset in that same step with the
    true last observation and state kept in ``final_obs`` / ``final_state``, and is truncated again ``limit`` steps
    later."""
    n = env.num_envs
    for t in range(limit - 1):
        out = env.step(acts[t])
        assert not (out.terminated | out.truncated).any()
        assert torch.equal(out.obs, out.final_obs) and torch.equal(out.info["final_state"], out.info["state"])
    out = env.step(acts[limit - 1])
    assert out.truncated.all() and not out.terminated.any()
    # obs / state are the next episode's first; final_obs / final_state the true last ones.
    assert not torch.equal(out.obs, out.final_obs)
    assert not torch.equal(out.info["final_state"], out.info["state"])
    assert torch.equal(out.info["final_state"], out.final_obs.reshape(n, -1))
    assert torch.equal(out.info["state"], out.obs.reshape(n, -1))
    assert torch.equal(env.current_info()["state"], out.obs.reshape(n, -1))
    # The step counter restarted: the next truncation comes ``limit`` steps later.
    for t in range(limit, 2 * limit - 1):
        assert not env.step(acts[t]).truncated.any()
    assert env.step(acts[2 * limit - 1]).truncated.all()


def check_generator_round_trip(env):
    """Run ``env`` a few steps, save its generator state as a checkpoint would (``torch.save``, then a
    weights-only load), and check that restoring it replays the same resets."""
    env.reset(seed=11)
    for joint in random_actions(env, 4):
        env.step(joint)
    buffer = io.BytesIO()
    torch.save({"env_generator": env.generator.get_state()}, buffer)
    expected = [env.reset() for _ in range(3)]
    env.generator.set_state(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)["env_generator"])
    assert all(torch.equal(env.reset(), e) for e in expected)


def check_training_is_reproducible(cfg):
    """Train ``cfg`` twice: the parameters and the final evaluation come out identical."""
    a, b = train_config(cfg), train_config(cfg)
    for (name, p), q in zip(a["agent"].net.named_parameters(), b["agent"].net.parameters()):
        assert torch.equal(p, q), name
    assert torch.equal(a["final_eval"]["eval/mean_reward"], b["final_eval"]["eval/mean_reward"])


def check_clone_acts_and_updates_like_the_original(agent, clone, env, buffer, batch_size):
    """``clone`` holds ``agent``'s loaded state dict: on ``env``'s first observation both pick the same actions and
    hidden states, exploring and greedy, and one update on a batch of ``batch_size`` from ``buffer`` gives both the
    same TD loss."""
    obs, avail = env.reset(), env.current_info()["avail_actions"]
    for explore in (True, False):
        a1, s1 = agent.act(obs, step=40, explore=explore, avail_actions=avail)
        a2, s2 = clone.act(obs, step=40, explore=explore, avail_actions=avail)
        assert torch.equal(a1, a2) and torch.equal(s1[0], s2[0])
    batch = buffer.sample(batch_size)
    m1, m2 = agent.update(batch, step=50), clone.update(batch, step=50)
    assert torch.equal(m1["loss/td"], m2["loss/td"])


# ----------------------------------------------------------------------------------------------------------------
# Continuous-action adapters (``actions="continuous"``): the same contract with Box actions in [-1, 1].


def random_box_actions(env, steps, seed=123, scale=1.0):
    """``steps`` joint actions ``[steps, num_envs, n_agents, A]`` uniform in ``[-scale, scale]`` (``scale > 1`` also
    draws actions outside the canonical box), from a generator of their own."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, env.num_envs, env.n_agents, env.n_actions, generator=g) * 2 - 1) * scale


def check_continuous_contract(env, reward_shape):
    """Shapes and dtypes of a continuous env: Box action spec ``(agents, A)`` in [-1, 1], ``avail_actions [N, agents,
    A]`` bool with every agent using at least one component, the simulator bounds ``action_low <= action_high``
    ``[agents, A]``, and a step's reward of shape ``reward_shape``."""
    n, agents, a = env.num_envs, env.n_agents, env.n_actions
    assert env.action_spec.shape == (agents, a) and (env.action_spec.low, env.action_spec.high) == (-1.0, 1.0)
    assert env.action_spec.dtype == torch.float32
    assert env.action_low.shape == env.action_high.shape == (agents, a)
    assert (env.action_low <= env.action_high).all()
    obs = env.reset(seed=0)
    info = env.current_info()
    assert obs.shape == (n, agents, env.obs_spec.shape[1]) and obs.dtype == torch.float32
    assert info["state"].shape == (n, env.state_spec.shape[0])
    assert info["avail_actions"].shape == (n, agents, a) and info["avail_actions"].dtype == torch.bool
    assert info["avail_actions"].any(-1).all() and info["alive"].shape == (n, agents)
    out = env.step(random_box_actions(env, 1)[0])
    assert out.obs.shape == out.final_obs.shape == obs.shape
    assert out.reward.shape == reward_shape and out.reward.dtype == torch.float32
    assert out.terminated.shape == out.truncated.shape == (n,)
    for key in ("state", "avail_actions", "alive", "final_state", "final_avail_actions"):
        assert out.info[key].shape[0] == n, key


def check_continuous_truncation_then_same_step_autoreset(env, acts, limit):
    """The continuous counterpart of :func:`check_truncation_then_same_step_autoreset`: ``acts`` are ``[2 * limit, N,
    agents, A]`` Box actions that end no episode early. Agents may have observations of different lengths (zero-padded),
    so the global state is compared with the concatenated observations only where it has their size; the
    ``avail_actions`` mask of a continuous env is static and ``final_avail_actions`` equals it."""
    n = env.num_envs
    env.reset(seed=0)
    for t in range(limit - 1):
        out = env.step(acts[t])
        assert not (out.terminated | out.truncated).any()
        assert torch.equal(out.obs, out.final_obs) and torch.equal(out.info["final_state"], out.info["state"])
    out = env.step(acts[limit - 1])
    assert out.truncated.all() and not out.terminated.any()
    assert not torch.equal(out.obs, out.final_obs)
    assert not torch.equal(out.info["final_state"], out.info["state"])
    assert torch.equal(out.info["final_avail_actions"], out.info["avail_actions"])
    assert torch.equal(env.current_info()["state"], out.info["state"])
    if env.state_spec.shape[0] == env.n_agents * env.obs_spec.shape[1]:
        assert torch.equal(out.info["final_state"], out.final_obs.reshape(n, -1))
        assert torch.equal(out.info["state"], out.obs.reshape(n, -1))
    for t in range(limit, 2 * limit - 1):
        assert not env.step(acts[t]).truncated.any()
    assert env.step(acts[2 * limit - 1]).truncated.all()


def check_continuous_generator_round_trip(env):
    """:func:`check_generator_round_trip` for a continuous env: after a few Box-action steps, a weights-only round
    trip of the generator state replays the same resets and the same steps."""
    env.reset(seed=11)
    for joint in random_box_actions(env, 4):
        env.step(joint)
    buffer = io.BytesIO()
    torch.save({"env_generator": env.generator.get_state()}, buffer)
    acts = random_box_actions(env, 2, seed=5)
    expected = [env.reset() for _ in range(2)] + [env.step(a).obs for a in acts]
    env.generator.set_state(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)["env_generator"])
    replay = [env.reset() for _ in range(2)] + [env.step(a).obs for a in acts]
    assert all(torch.equal(r, e) for r, e in zip(replay, expected))


def check_canonical_actions_reach_the_simulator_bounds(env, received, low, high):
    """Step ``env`` with canonical actions and read what the simulator got: ``received()`` returns the last joint
    action it saw as a list of per-agent ``[N, A_i]`` tensors in simulator units; ``low`` / ``high`` are the
    simulator's own bounds per agent (read from its action spaces, not from the adapter). -1 must give ``low``, +1
    ``high``, 0 the midpoint, and actions outside [-1, 1] are clipped to the bounds (never beyond)."""
    n, agents, a = env.num_envs, env.n_agents, env.n_actions
    env.reset(seed=0)
    for value, expect in ((-1.0, low), (1.0, high), (0.0, [(lo + hi) / 2 for lo, hi in zip(low, high)])):
        env.step(torch.full((n, agents, a), value))
        for got, want in zip(received(), expect):
            assert torch.allclose(got, want.expand_as(got), atol=1e-6), (value, got, want)
        if value != 0.0:  # the ends are reached exactly
            assert all(torch.equal(got, want.expand_as(got)) for got, want in zip(received(), expect))
    for scale in (5.0, 1e6):
        joint = random_box_actions(env, 1, seed=7, scale=scale)[0]
        env.step(joint)
        for k, (got, lo, hi) in enumerate(zip(received(), low, high)):
            canonical = joint[:, k, : got.shape[1]]  # this agent's own components
            assert (got >= lo).all() and (got <= hi).all()
            assert torch.equal(got[canonical > 1], hi.expand_as(got)[canonical > 1])  # clipped to the top end
            assert torch.equal(got[canonical < -1], lo.expand_as(got)[canonical < -1])
