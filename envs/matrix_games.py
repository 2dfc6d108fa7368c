"""One-step cooperative matrix games, batched in torch (device resident, no per-env loop).

Every episode is a single step: all agents see a constant observation (``obs_dim`` ones, the agent
id is appended by the learner), pick one action each, the team receives ``payoff[a_1, ..., a_n]``
and the episode terminates. The payoff is an ``n``-dimensional nested list with the same number of
actions along every axis, so any number of actions and 2+ agents work, including from the command
line: ``env.options.payoff=[[8,-12,-12],[-12,0,0],[-12,0,0]]``.

Named games (row = agent 1, column = agent 2):

* ``wqmix``: the one-step game of Weighted QMIX (Rashid et al., NeurIPS 2020, arXiv 2006.10800),
  optimum (0, 0) = 8 surrounded by -12 miscoordination;
* ``climbing``: Claus & Boutilier (AAAI 1998), optimum 11;
* ``penalty``: penalty game with k = -100, two optima worth 10.

These are the relative-over-generalization tests of the ROE spec (section 6.3).

Deviations from the reference: WQMIX's game is a PyMARL env object with a 2-dim state; here the
state is the shared observation (``obs_dim`` ones), and N copies are stepped together.
"""

from __future__ import annotations

from typing import Any

import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut
from envs.multiagent import make_generator

GAMES: dict[str, list] = {
    "wqmix": [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]],
    "climbing": [[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]],
    "penalty": [[10.0, 0.0, -100.0], [0.0, 2.0, 0.0], [-100.0, 0.0, 10.0]],
}


def payoff_tensor(payoff: Any) -> torch.Tensor:
    """A cubic payoff tensor ``[A] * n_agents`` from a nested list; ValueError on a ragged/1-d table."""
    if isinstance(payoff, str):
        import json

        payoff = json.loads(payoff)
    table = torch.as_tensor(payoff, dtype=torch.float32)
    if table.dim() < 2:
        raise ValueError(f"payoff needs one axis per agent (2+ agents), got shape {tuple(table.shape)}")
    if len(set(table.shape)) != 1:
        raise ValueError(f"every agent needs the same number of actions, got payoff shape {tuple(table.shape)}")
    return table


class MatrixGame:
    """``num_envs`` copies of a one-step cooperative matrix game (a ``MultiAgentVecEnv``).

    Shapes: obs ``[N, agents, obs_dim]`` (ones), state ``[N, obs_dim]`` (ones), avail_actions
    ``[N, agents, A]`` (all True), reward ``[N]`` = payoff at the joint action, terminated always.
    """

    def __init__(
        self,
        payoff: Any = None,
        game: str = "wqmix",
        num_envs: int = 1,
        obs_dim: int = 5,
        device: torch.device | str = "cpu",
        seed: int | None = 0,
    ):
        if payoff is None:  # an explicit payoff wins over the named game
            if game not in GAMES:
                raise ValueError(f"unknown matrix game {game!r}; known: {sorted(GAMES)} or give payoff=")
            payoff = GAMES[game]
        self.device = torch.device(device)
        self.payoff = payoff_tensor(payoff).to(self.device)
        self.n_agents = self.payoff.dim()
        self.n_actions = self.payoff.shape[0]
        self.num_envs = int(num_envs)
        self.episode_limit = 1
        self.obs_dim = int(obs_dim)
        self.obs_spec = BoxSpec((self.n_agents, self.obs_dim), low=0.0, high=1.0)
        self.state_spec = BoxSpec((self.obs_dim,), low=0.0, high=1.0)
        self.action_spec = DiscreteSpec(self.n_actions, (self.n_agents,))
        self.generator = make_generator(self.device, seed)  # unused (deterministic game); kept for the protocol
        # Row-major strides turn a joint action into one flat index of the payoff table.
        self._strides = torch.tensor(
            [self.n_actions ** (self.n_agents - 1 - i) for i in range(self.n_agents)], device=self.device
        )
        n = self.num_envs
        self._obs = torch.ones(n, self.n_agents, self.obs_dim, device=self.device)
        self._info = {
            "state": torch.ones(n, self.obs_dim, device=self.device),
            "avail_actions": torch.ones(n, self.n_agents, self.n_actions, dtype=torch.bool, device=self.device),
            "alive": torch.ones(n, self.n_agents, dtype=torch.bool, device=self.device),
        }

    @property
    def optimum(self) -> float:
        """The best joint payoff (for reporting; not used by any agent)."""
        return float(self.payoff.max())

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(int(seed))
        return self._obs.clone()

    def current_info(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self._info.items()}

    def joint_payoff(self, action: torch.Tensor) -> torch.Tensor:
        """``payoff[a_1, ..., a_n]`` for joint actions ``[..., agents]`` -> ``[...]``."""
        return self.payoff.reshape(-1)[(action.long() * self._strides).sum(-1)]

    def step(self, action: torch.Tensor) -> StepOut:
        reward = self.joint_payoff(action)
        terminated = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = torch.zeros_like(terminated)
        info = self.current_info()
        info["final_state"] = info["state"].clone()
        info["final_avail_actions"] = info["avail_actions"].clone()
        return StepOut(self._obs.clone(), reward, terminated, truncated, self._obs.clone(), info)

    def close(self) -> None:
        pass


def make_matrix_game(num_envs: int = 1, device: torch.device | str = "cpu", seed: int | None = 0, **options: Any):
    """Factory in the ``NATIVE_ENVS`` form ``(num_envs, device, seed, **options)``; ``payoff=`` or ``game=``."""
    return MatrixGame(num_envs=num_envs, device=device, seed=seed, **options)


def make_wqmix(num_envs: int = 1, device: torch.device | str = "cpu", seed: int | None = 0, **options: Any):
    """``matrix:wqmix`` (a ``payoff=`` option still overrides the table)."""
    return MatrixGame(**{"game": "wqmix", **options}, num_envs=num_envs, device=device, seed=seed)


def make_climbing(num_envs: int = 1, device: torch.device | str = "cpu", seed: int | None = 0, **options: Any):
    """``matrix:climbing``."""
    return MatrixGame(**{"game": "climbing", **options}, num_envs=num_envs, device=device, seed=seed)


def make_penalty(num_envs: int = 1, device: torch.device | str = "cpu", seed: int | None = 0, **options: Any):
    """``matrix:penalty``."""
    return MatrixGame(**{"game": "penalty", **options}, num_envs=num_envs, device=device, seed=seed)
