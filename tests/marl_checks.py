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
