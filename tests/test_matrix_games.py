"""One-step matrix games: payoff indexing for any number of agents, presets, command-line payoffs."""

import pytest
import torch

from agents.engine.config import apply_overrides
from envs.matrix_games import GAMES, MatrixGame, payoff_tensor
from envs.multiagent import MultiAgentVecEnv, make_marl_env


def test_named_games_and_shapes():
    env = make_marl_env("matrix:climbing", num_envs=4)
    assert isinstance(env, MultiAgentVecEnv)
    obs = env.reset(seed=0)
    info = env.current_info()
    assert obs.shape == (4, 2, 5) and info["state"].shape == (4, 5)
    assert info["avail_actions"].shape == (4, 2, 3) and info["avail_actions"].all()
    out = env.step(torch.tensor([[0, 0], [0, 1], [1, 1], [2, 2]]))
    assert out.reward.tolist() == [11.0, -30.0, 7.0, 5.0]
    assert out.terminated.all() and not out.truncated.any()
    assert torch.equal(out.final_obs, obs) and "final_state" in out.info
    assert env.optimum == 11.0


@pytest.mark.parametrize("game", sorted(GAMES))
def test_every_cell_of_the_named_payoffs(game):
    table = torch.tensor(GAMES[game])
    env = MatrixGame(game=game, num_envs=9)
    joint = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # [9, 2]
    assert torch.equal(env.step(joint).reward, table[joint[:, 0], joint[:, 1]])


def test_three_agents_and_four_actions():
    table = torch.arange(27.0).reshape(3, 3, 3)
    env = MatrixGame(payoff=table.tolist(), num_envs=3)
    assert env.n_agents == 3 and env.obs_spec.shape == (3, 5)
    joint = torch.tensor([[0, 1, 2], [2, 2, 2], [1, 0, 0]])
    assert env.step(joint).reward.tolist() == [5.0, 26.0, 9.0]
    env4 = MatrixGame(payoff=torch.eye(4).tolist(), num_envs=2)
    assert env4.step(torch.tensor([[3, 3], [3, 2]])).reward.tolist() == [1.0, 0.0]


def test_bad_payoffs_are_refused():
    with pytest.raises(ValueError):
        payoff_tensor([1.0, 2.0])  # one agent
    with pytest.raises(ValueError):
        payoff_tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # agents with different action counts
    with pytest.raises(ValueError):
        MatrixGame(game="nope")


def test_payoff_from_the_command_line():
    from agents.marl import PRESETS, build, make_envs

    cfg = apply_overrides(
        PRESETS["roe/wqmix"], ["env.id=matrix", "env.options.payoff=[[0,0,-12],[0,0,-12],[-12,-12,8]]"]
    )
    env, _ = make_envs(cfg, "cpu")
    agent = build(cfg)
    assert env.step(torch.tensor([[2, 2]])).reward.tolist() == [8.0]
    assert env.step(torch.tensor([[0, 0]])).reward.tolist() == [0.0]
    assert agent.n_actions == 3 and agent.n_agents == 2


def test_named_id_with_a_payoff_option_uses_the_payoff():
    env = make_marl_env("matrix:climbing", num_envs=1, payoff=[[1, 2], [3, 4]])
    assert env.n_actions == 2 and env.step(torch.tensor([[1, 0]])).reward.tolist() == [3.0]


def test_evaluate_agent_of_a_trained_config():
    from agents.marl import PRESETS, build, evaluate_agent

    cfg = apply_overrides(PRESETS["roe/penalty"], ["agent.hidden_dim=8"])
    result = evaluate_agent(cfg, build(cfg), episodes=3)
    assert result["mean_ep_length"] == 1.0 and -100.0 <= result["mean_reward"] <= 10.0 and result["episodes"] == 3
