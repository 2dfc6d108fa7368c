"""run_episodes and summarize: undiscounted and discounted episode returns, checked by hand."""

from __future__ import annotations

import torch

from agents.engine.evaluation import run_episodes, summarize
from envs.base import StepOut


class RampEnv:
    """Two envs with reward t at step t of an episode (t = 1, 2, ...): env 0's episodes end after 2
    steps (terminated), env 1's after 3 (truncated); both restart at once (autoreset)."""

    num_envs, device = 2, torch.device("cpu")
    lengths = torch.tensor([2, 3])

    def reset(self, seed=None):
        self.t = torch.zeros(2, dtype=torch.int64)
        return torch.zeros(2, 1)

    def step(self, action):
        self.t += 1
        end = self.t == self.lengths
        reward = self.t.to(torch.float32)
        self.t = torch.where(end, 0, self.t)
        obs = torch.zeros(2, 1)
        return StepOut(obs, reward, end & torch.tensor([True, False]), end & torch.tensor([False, True]), obs, {})

    def close(self):
        pass


class StillAgent:
    def initial_state(self, num):
        return None

    def act(self, obs, state, step=0, explore=False):
        return torch.zeros(obs.shape[0], 1), state


def test_discounted_returns_by_hand():
    g = 0.5
    out = run_episodes(StillAgent(), RampEnv(), 4, gamma=g)
    # each env plays two episodes; finished in the order: env 0 (step 2), env 1 (step 3), env 0 (step 4)...
    assert out["returns"].tolist() == [3.0, 6.0, 3.0, 6.0]
    assert out["lengths"].tolist() == [2, 3, 2, 3]
    two, three = 1 + g * 2, 1 + g * 2 + g * g * 3  # the second episode starts again at g^0
    assert torch.allclose(out["discounted_returns"], torch.tensor([two, three, two, three]))
    scores = summarize(out["returns"], out["lengths"], out["discounted_returns"])
    assert abs(scores["mean_discounted_reward"] - (two + three) / 2) < 1e-6
    assert abs(scores["std_discounted_reward"] - (three - two) / 2) < 1e-6


def test_without_gamma_the_schema_is_unchanged():
    out = run_episodes(StillAgent(), RampEnv(), 4)
    assert set(out) == {"returns", "lengths"}
    assert "mean_discounted_reward" not in summarize(out["returns"], out["lengths"])
    with_gamma = run_episodes(StillAgent(), RampEnv(), 4, gamma=0.9)
    assert torch.equal(out["returns"], with_gamma["returns"])  # gamma only adds a key
