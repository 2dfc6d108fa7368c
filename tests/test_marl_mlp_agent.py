"""The feed-forward agent (``MarlConfig.agent_net='mlp'``): step == sequence, learning on a matrix
game, checkpoint round trip, and the GRU default left as it was."""

import io

import pytest
import torch
from marl_checks import check_clone_acts_and_updates_like_the_original

from agents.engine.config import apply_overrides
from agents.marl import PRESETS, FactorizedQLearner, MarlConfig, build
from agents.marl.loop import EpisodicConfig, train_episodic
from agents.marl.nets import FeedForwardAgentNet, RecurrentAgentNet, make_agent_net
from envs.matrix_games import MatrixGame

# One optimum at (1, 1), zero elsewhere: trivial for QMIX; the untrained agent (seed 0) picks (2, 2).
PAYOFF = [[0.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]


@pytest.fixture
def config(tiny_marl_config):
    """``config(algo="qmix", **changes)``: a tiny learner config with the feed-forward agent net."""
    return lambda algo="qmix", **changes: tiny_marl_config(algo, **{"agent_net": "mlp", **changes})


def learner_for(env, cfg, seed=0):
    return FactorizedQLearner(env.obs_spec, env.state_spec, env.action_spec, cfg, seed=seed)


def greedy_payoff(agent, env):
    obs, avail = env.reset(), env.current_info()["avail_actions"]
    action, _ = agent.act(obs, step=0, explore=False, avail_actions=avail)
    return env.step(action).reward.mean().item()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("embed", [None, 4])
def test_mlp_sequence_equals_per_step_calls_and_ignores_the_hidden_state(activation, embed):
    torch.manual_seed(0)
    net = make_agent_net("mlp", 6, 3, hidden_dim=8, quantile_embed_dim=embed, activation=activation)
    assert isinstance(net, FeedForwardAgentNet) and net.distributional == (embed is not None)
    inputs = torch.randn(2, 5, 3, 6)  # [B, T, agents, in]
    seq = net.sequence(inputs)
    assert seq.shape == (2, 5, 3, 8)
    hidden = torch.randn(2, 3, 8)
    for t in range(5):
        step = net.recurrent(inputs[:, t], hidden)
        assert torch.allclose(seq[:, t], step, atol=1e-6)
        assert torch.equal(step, net.recurrent(inputs[:, t], torch.zeros_like(hidden)))  # hidden unused
        hidden = step
    # The trunk is the two layers and the chosen activation (so the check above can fail).
    act = torch.tanh if activation == "tanh" else torch.relu
    x = inputs[:, 0]
    expected = act(net.fc_mid(act(net.fc1(x))))
    assert torch.allclose(seq[:, 0], expected, atol=1e-6)
    assert not torch.allclose(seq[:, 0], seq[:, 1])  # different inputs, different features


def test_agent_net_choice_and_gru_default(config):
    assert MarlConfig().agent_net == "gru" and MarlConfig().mlp_activation == "tanh"
    env = MatrixGame(game="wqmix", num_envs=2)
    gru = learner_for(env, config(agent_net="gru"))
    mlp = learner_for(env, config())
    assert type(gru.net) is RecurrentAgentNet and type(mlp.net) is FeedForwardAgentNet
    assert set(gru.net.state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"} | {
        f"rnn.{k}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }
    assert isinstance(mlp.net.activation, torch.nn.Tanh)
    assert isinstance(learner_for(env, config(mlp_activation="relu")).net.activation, torch.nn.ReLU)
    with pytest.raises(ValueError):
        learner_for(env, config(agent_net="lstm"))
    cli = apply_overrides(PRESETS["qmix/wqmix"], ["agent.agent_net=mlp", "agent.hidden_dim=8"])  # from the command line
    assert type(build(cli).net) is FeedForwardAgentNet
    with pytest.raises(ValueError):
        learner_for(env, config(mlp_activation="gelu"))


@pytest.mark.parametrize("algo", ["qmix", "dmix"])
def test_mlp_learner_loss_decreases_on_a_fixed_batch(algo, config):
    env = MatrixGame(payoff=PAYOFF, num_envs=32)
    # A fixed target (no copy) and a larger step size: plain regression on one batch.
    agent = learner_for(env, config(algo, target_every=10**6, lr=5e-3))
    loop = EpisodicConfig(
        total_steps=32,
        batch_episodes=32,
        buffer_episodes=64,
        update_after_episodes=10**6,
        eval_every=0,
        eval_episodes=1,
    )
    batch = train_episodic(env, agent, loop)["buffer"].sample(32)
    losses = torch.tensor([agent.update(batch, step=0)["loss/td"].item() for _ in range(80)])
    assert torch.isfinite(losses).all()
    assert losses[-10:].mean() < 0.3 * losses[:10].mean()


def test_mlp_qmix_solves_a_trivial_matrix_game(config):
    env, eval_env = MatrixGame(payoff=PAYOFF, num_envs=16), MatrixGame(payoff=PAYOFF, num_envs=4)
    agent = learner_for(env, config("qmix", epsilon_anneal_steps=400))
    assert greedy_payoff(agent, eval_env) < 5.0  # not solved before training
    loop = EpisodicConfig(
        total_steps=800,
        batch_episodes=32,
        buffer_episodes=500,
        update_after_episodes=32,
        updates_per_collect=4,
        eval_every=0,
        eval_episodes=4,
    )
    out = train_episodic(env, agent, loop, eval_env=eval_env)
    assert out["updates"] >= 150
    assert out["final_eval"]["eval/mean_reward"].item() == 5.0


def test_mlp_checkpoint_round_trip(config):
    env = MatrixGame(payoff=PAYOFF, num_envs=8)
    agent = learner_for(env, config("dmix"))
    loop = EpisodicConfig(
        total_steps=80, batch_episodes=8, buffer_episodes=100, update_after_episodes=8, eval_every=0, eval_episodes=1
    )
    out = train_episodic(env, agent, loop)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    clone = learner_for(env, config("dmix"), seed=123)
    clone.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    check_clone_acts_and_updates_like_the_original(agent, clone, env, out["buffer"], batch_size=8)
    assert all(torch.equal(a, b) for a, b in zip(agent.net.parameters(), clone.net.parameters(), strict=True))
    # An mlp checkpoint does not load into a GRU learner (strict state-dict keys).
    with pytest.raises(RuntimeError):
        learner_for(env, config("dmix", agent_net="gru")).load_state_dict(agent.state_dict())
