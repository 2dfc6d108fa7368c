"""DQN (agents/dqn.py): target and loss by hand, epsilon-greedy acting, target updates, persistence."""

import io

import pytest
import torch

from agents.dqn import DQN, PRESETS, DQNConfig
from agents.engine.evaluation import q_estimation_bias
from envs.base import BoxSpec, DiscreteSpec, StepOut

OBS, ACT = BoxSpec((3,)), DiscreteSpec(4)


def make_agent(**kw) -> DQN:
    torch.manual_seed(0)
    return DQN(OBS, ACT, DQNConfig(hidden=(8, 8), **kw))


def batch(n: int = 3) -> dict:
    g = torch.Generator().manual_seed(1)
    return {
        "obs": torch.randn(n, 3, generator=g),
        "action": torch.randint(0, 4, (n,), generator=g),
        "reward": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 3, generator=g),
        "terminated": torch.tensor([False, True, False][:n]),
    }


def test_target_and_loss_by_hand():
    agent = make_agent()
    b = batch()
    y = agent.critic_target_value(b)
    next_q = agent.q_target(b["next_obs"])
    for i in range(3):
        done = float(b["terminated"][i])
        expected = b["reward"][i].item() + 0.99 * (1 - done) * next_q[i].max().item()
        assert abs(y[i].item() - expected) < 1e-5
    q = agent.q_network(b["obs"])[torch.arange(3), b["action"]]
    loss, _ = agent.critic_loss(q, y, b)
    assert torch.allclose(loss, sum((q[i] - y[i]) ** 2 for i in range(3)) / 3)  # MSE, no 1/2
    huber = make_agent(loss="huber")
    delta = q - y
    by_hand = torch.where(delta.abs() < 1, 0.5 * delta**2, delta.abs() - 0.5).mean()
    assert torch.allclose(huber.critic_loss(q, y, b)[0], by_hand)


def test_polyak_and_hard_target_updates():
    agent = make_agent(polyak=0.25)
    before = [p.clone() for p in agent.q_target.parameters()]
    agent.update(batch(), step=0)
    for t, o, b in zip(agent.q_target.parameters(), agent.q_network.parameters(), before):
        assert torch.allclose(t, 0.75 * b + 0.25 * o, atol=1e-7)
    hard = make_agent(polyak=1.0, target_every=2)
    hard.update(batch(), step=0)
    assert not all(torch.equal(t, o) for t, o in zip(hard.q_target.parameters(), hard.q_network.parameters()))
    hard.update(batch(), step=0)
    assert all(torch.equal(t, o) for t, o in zip(hard.q_target.parameters(), hard.q_network.parameters()))


def test_update_after_steps_skips_updates():
    agent = make_agent(update_after_steps=10)
    params = [p.clone() for p in agent.q_network.parameters()]
    assert agent.update(batch(), step=9) == {}
    assert all(torch.equal(a, b) for a, b in zip(params, agent.q_network.parameters()))
    assert "loss/critic" in agent.update(batch(), step=10) and agent.updates == 1


def test_act_epsilon_greedy_int64_and_linear_schedule():
    agent = make_agent(epsilon_start=1.0, epsilon_end=0.0, epsilon_anneal_steps=100)
    obs = torch.randn(4000, 3)
    greedy, _ = agent.act(obs, step=0, explore=False)
    assert greedy.dtype == torch.int64 and greedy.shape == (4000,)
    assert torch.equal(greedy, agent.q_network(obs).argmax(-1))
    assert torch.equal(agent.act(obs, step=100)[0], greedy)  # epsilon 0 after the ramp
    half = (agent.act(obs, step=50)[0] != greedy).float().mean().item()
    assert abs(half - 0.5 * 3 / 4) < 0.05  # epsilon 0.5, a random action differs 3/4 of the time


def test_save_load_identical():
    agent = make_agent()
    for _ in range(3):
        agent.update(batch(), step=0)
    other = DQN(OBS, ACT, DQNConfig(hidden=(8, 8)))
    saved = io.BytesIO()
    torch.save(agent.state_dict(), saved)
    saved.seek(0)
    other.load_state_dict(torch.load(saved, weights_only=True))
    obs = torch.randn(5, 3)
    assert torch.equal(agent.act(obs, step=0, explore=False)[0], other.act(obs, step=0, explore=False)[0])
    agent.update(batch(), step=0)
    other.update(batch(), step=0)
    assert all(torch.equal(a, b) for a, b in zip(agent.q_network.parameters(), other.q_network.parameters()))


def test_rejects_box_actions():
    with pytest.raises(ValueError, match="discrete"):
        DQN(OBS, BoxSpec((2,)), DQNConfig())


def test_cartpole_preset_matches_spec():
    cfg = PRESETS["dqn/cartpole"]
    assert cfg.env.id == "CartPole-v1" and cfg.train.total_steps == 60_000 and cfg.train.batch_size == 256
    a = cfg.agent
    assert (a.hidden, a.lr, a.gamma, a.polyak, a.epsilon_start, a.epsilon_end, a.update_after_steps) == (
        (128, 128),
        1e-4,
        0.99,
        0.005,
        0.1,
        0.1,
        2000,
    )


class CountdownEnv:
    """Reward 1 per step; env 0 terminates after 3 steps, env 1 is truncated after 600."""

    num_envs, device = 2, torch.device("cpu")

    def reset(self, seed=None):
        self.t = 0
        return torch.zeros(2, 1)

    def step(self, action):
        self.t += 1
        terminated = torch.tensor([self.t == 3, False])
        truncated = torch.tensor([False, self.t == 600])
        obs = torch.zeros(2, 1)
        return StepOut(obs, torch.ones(2), terminated, truncated, obs, {})


def test_q_estimation_bias_returns_by_hand():
    # env 0: G = [1 + g + g^2, 1 + g, 1] (terminated: all 3 pairs count); env 1: truncated at 600, so
    # only pairs with >= 459 steps after them count (t < 141), G_t = (1 - g^(600 - t)) / (1 - g).
    g = 0.99
    policy = lambda obs: (torch.zeros(2, dtype=torch.int64), torch.zeros(2), torch.zeros(2))
    out = q_estimation_bias(policy, CountdownEnv(), gamma=g)
    returns = [1 + g + g * g, 1 + g, 1.0] + [(1 - g ** (600 - t)) / (1 - g) for t in range(141)]
    mean = sum(returns) / len(returns)
    assert abs(out["mc_return"] - mean) < 1e-6 * mean
    assert abs(out["q_bias"] + 1.0) < 1e-9  # Q = 0 everywhere: bias -mean G / |mean G|
    # an entropy bonus of 1 per step adds g + g^2 to G_0 of env 0 (bonus of steps 1 and 2)
    bonus = lambda obs: (torch.zeros(2, dtype=torch.int64), torch.zeros(2), torch.ones(2))
    out_bonus = q_estimation_bias(bonus, CountdownEnv(), gamma=g)
    assert out_bonus["mc_return"] > out["mc_return"]
