"""Predator-prey with miscapture punishment: capture rule, punishment, masks, termination, autoreset."""

import torch

from envs.predator_prey import CAPTURE, DOWN, LEFT, RIGHT, STAY, UP, PredatorPrey


def place(env, agents, stags):
    """Put agents / stags ([N, k, 2] lists) on the grid of a reset env."""
    env.agent_pos = torch.tensor(agents)
    env.stag_pos = torch.tensor(stags)
    env.agent_active[:] = True
    env.stag_alive[:] = True


def stags_stay(low, high, size, device=None, generator=None):
    """Stand-in for torch.randint during a step: every stag draws 'stay' (the tests check agent rules)."""
    return torch.zeros(size, dtype=torch.long)


def test_shapes_and_spec():
    env = PredatorPrey(num_envs=3, grid_size=7, n_agents=4, n_stags=4, seed=1)
    obs = env.reset()
    info = env.current_info()
    assert obs.shape == (3, 4, 3 * 25 + 2) and env.obs_spec.shape == (4, 77)
    assert info["state"].shape == (3, 2 * 49 + 1) and info["avail_actions"].shape == (3, 4, 6)
    assert info["alive"].all()


def test_capture_needs_two_agents_and_miscapture_is_punished(monkeypatch):
    env = PredatorPrey(num_envs=2, grid_size=5, n_agents=3, n_stags=2, punishment=-2.0, seed=0)
    env.reset()
    # env 0: agents 0 and 1 next to stag 0 capture it, agent 2 stays. env 1: agent 0 tries alone.
    place(env, [[[1, 2], [3, 2], [4, 4]], [[1, 2], [4, 4], [4, 3]]], [[[2, 2], [0, 0]], [[2, 2], [0, 0]]])
    info = env.current_info()
    assert info["avail_actions"][0, :, CAPTURE].tolist() == [True, True, False]
    assert info["avail_actions"][1, :, CAPTURE].tolist() == [True, False, False]
    monkeypatch.setattr(torch, "randint", stags_stay)
    out = env.step(torch.tensor([[CAPTURE, CAPTURE, STAY], [CAPTURE, STAY, STAY]]))
    assert out.reward.tolist() == [10.0, -2.0]
    assert env.stag_alive.tolist() == [[False, True], [True, True]]
    assert env.agent_active.tolist() == [[False, False, True], [True, True, True]]
    assert out.info["alive"][0].tolist() == [False, False, True]
    assert not (out.terminated | out.truncated).any()
    # The last stag captured -> terminated, and the env autoresets (all agents active again).
    place(env, [[[0, 1], [1, 0], [4, 4]], [[1, 2], [4, 4], [4, 3]]], [[[0, 0], [0, 0]], [[2, 2], [0, 0]]])
    env.stag_alive[0, 0] = False
    out = env.step(torch.tensor([[CAPTURE, CAPTURE, STAY], [STAY, STAY, STAY]]))
    assert out.reward.tolist() == [10.0, 0.0]
    assert out.terminated.tolist() == [True, False]
    assert env.stag_alive[0].all() and env.agent_active[0].all() and env.t.tolist() == [0, 2]


def test_masks_block_walls_and_stags_and_frozen_agents_only_stay():
    env = PredatorPrey(num_envs=1, grid_size=4, n_agents=2, n_stags=1, seed=0)
    env.reset()
    place(env, [[[0, 0], [2, 2]]], [[[0, 1]]])
    avail = env.current_info()["avail_actions"][0]
    assert avail[0].tolist() == [True, False, True, False, False, True]  # stay, down, capture
    assert avail[1, CAPTURE].item() is False and avail[1, [STAY, UP, DOWN, LEFT, RIGHT]].all()
    env.agent_active[0, 1] = False
    assert env.current_info()["avail_actions"][0, 1].tolist() == [True] + [False] * 5


def test_truncation_autoreset_and_final_obs():
    env = PredatorPrey(num_envs=2, grid_size=5, n_agents=2, n_stags=2, episode_limit=3, seed=3)
    env.reset()
    for _ in range(2):
        out = env.step(torch.zeros(2, 2, dtype=torch.long))
        assert not (out.terminated | out.truncated).any()
        assert torch.equal(out.obs, out.final_obs)
    out = env.step(torch.zeros(2, 2, dtype=torch.long))
    assert out.truncated.all() and not out.terminated.any()
    assert env.t.tolist() == [0, 0]
    assert out.info["final_state"][:, -1].tolist() == [1.0, 1.0]  # elapsed fraction of the finished episode
    assert out.info["state"][:, -1].tolist() == [0.0, 0.0]


def test_observation_window_sees_stag_and_wall():
    env = PredatorPrey(num_envs=1, grid_size=5, n_agents=1, n_stags=1, sight=1, seed=0)
    env.reset()
    place(env, [[[0, 0]]], [[[1, 1]]])
    obs = env._observe()[0, 0]
    window = obs[:27].reshape(3, 3, 3)  # [channel, row, col] of the 3x3 window
    assert window[0, 1, 1] == 1  # itself
    assert window[1, 2, 2] == 1  # the stag down-right
    assert window[2, 0].tolist() == [1, 1, 1] and window[2, :, 0].tolist() == [1, 1, 1]  # off-grid
    assert obs[-2:].tolist() == [0.0, 0.0]


def test_random_policy_is_reproducible_and_vectorized():
    def rollout(seed):
        env = PredatorPrey(num_envs=4, seed=seed)
        env.reset()
        g = torch.Generator().manual_seed(0)
        total = torch.zeros(4)
        for _ in range(60):
            avail = env.current_info()["avail_actions"]
            act = torch.multinomial(avail.reshape(-1, 6).float(), 1, generator=g).view(4, 4)
            total += env.step(act).reward
        return total

    assert torch.equal(rollout(5), rollout(5))
    assert not torch.equal(rollout(5), rollout(6))
