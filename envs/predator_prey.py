"""Predator-prey with miscapture punishment ("stag hunt"), batched in torch (no per-env loop).

The relative-over-generalization task of Weighted QMIX (Rashid et al., NeurIPS 2020, arXiv
2006.10800; PyMARL's ``stag_hunt``) as used by the ROE authors' predator-prey fork, scaled by
options (the ROE benchmark's scaled-down setting: 4 agents, 4 stags, 7 x 7, limit 50; the full size is
8 / 8 / 15 x 15 / 200).

Rules, per env and step:

* Actions per agent: 0 stay, 1 up, 2 down, 3 left, 4 right, 5 capture.
* A stag is captured when at least ``capture_agents`` (2) agents that are 4-adjacent to it issue
  *capture* in the same step: team reward ``capture_reward`` (+10) per stag, the stag is removed and
  the capturing agents are frozen (they stay on the grid as obstacles-free ghosts, can only *stay*,
  and disappear from the others' observations).
* Every agent that issues *capture* without taking part in a capture costs ``punishment``
  (e.g. -2): the miscapture punishment that makes "never try" a local optimum.
* Agents move after captures, never onto a live stag and never off the grid (the move is masked
  out of ``avail_actions``). Stags then move uniformly among stay/4 moves, never onto an agent or
  off the grid (blocked moves become stay).
* *capture* is available only next to a live stag; frozen agents have only *stay*.
* The episode terminates when every stag is captured or every agent frozen, and is truncated at
  ``episode_limit``.

Observation of agent i ``[3 * (2r+1)^2 + 2]``: a ``(2r+1) x (2r+1)`` window (radius ``sight``,
default 2 = 5 x 5) of three channels (active agents incl. itself, live stags, off-grid cells),
then its own position scaled to [0, 1]. Global state ``[2 * G * G + 1]``: the active-agent and
live-stag grids and the elapsed fraction of the episode.

Deviations from the reference: agents may share a cell (PyMARL blocks agent-agent collisions;
that needs a sequential resolution order); initial positions are uniform and may coincide; no
hares and no obstacles; the observation is a flat window rather than PyMARL's per-entity layout.
"""

from __future__ import annotations

import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut
from envs.multiagent import finalize_info, make_generator

STAY, UP, DOWN, LEFT, RIGHT, CAPTURE = range(6)
# (row, col) displacement of each action; capture does not move.
MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))


class PredatorPrey:
    """``num_envs`` copies of predator-prey with miscapture punishment (a ``MultiAgentVecEnv``)."""

    def __init__(
        self,
        num_envs: int = 1,
        grid_size: int = 7,
        n_agents: int = 4,
        n_stags: int = 4,
        punishment: float = -2.0,
        capture_reward: float = 10.0,
        capture_agents: int = 2,
        episode_limit: int = 50,
        sight: int = 2,
        device: torch.device | str = "cpu",
        seed: int | None = 0,
    ):
        self.device = torch.device(device)
        self.num_envs = int(num_envs)
        self.grid_size = int(grid_size)
        self.n_agents = int(n_agents)
        self.n_stags = int(n_stags)
        self.punishment = float(punishment)
        self.capture_reward = float(capture_reward)
        self.capture_agents = int(capture_agents)
        self.episode_limit = int(episode_limit)
        self.sight = int(sight)
        self.n_actions = len(MOVES)
        window = (2 * self.sight + 1) ** 2
        self.obs_dim = 3 * window + 2
        self.obs_spec = BoxSpec((self.n_agents, self.obs_dim), low=0.0, high=1.0)
        self.state_spec = BoxSpec((2 * self.grid_size**2 + 1,), low=0.0, high=1.0)
        self.action_spec = DiscreteSpec(self.n_actions, (self.n_agents,))
        self.generator = make_generator(self.device, seed)

        d = self.device
        self._moves = torch.tensor(MOVES, device=d)  # [A, 2]
        r = torch.arange(-self.sight, self.sight + 1, device=d)
        self._offsets = torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)  # [W, 2]
        self._padded = self.grid_size + 2 * self.sight
        n, g = self.num_envs, self.grid_size
        self.agent_pos = torch.zeros(n, self.n_agents, 2, dtype=torch.long, device=d)
        self.stag_pos = torch.zeros(n, self.n_stags, 2, dtype=torch.long, device=d)
        self.agent_active = torch.ones(n, self.n_agents, dtype=torch.bool, device=d)
        self.stag_alive = torch.ones(n, self.n_stags, dtype=torch.bool, device=d)
        self.t = torch.zeros(n, dtype=torch.long, device=d)
        # Off-grid channel of the padded grid: constant, built once.
        wall = torch.ones(self._padded, self._padded, device=d)
        wall[self.sight : self.sight + g, self.sight : self.sight + g] = 0
        self._wall = wall.reshape(-1)

    # ------------------------------------------------------------------------------------------
    def _random_layout(self) -> tuple[torch.Tensor, torch.Tensor]:
        g, n = self.grid_size, self.num_envs
        agents = torch.randint(0, g, (n, self.n_agents, 2), device=self.device, generator=self.generator)
        stags = torch.randint(0, g, (n, self.n_stags, 2), device=self.device, generator=self.generator)
        return agents, stags

    def _reset_rows(self, mask: torch.Tensor) -> None:
        """Fresh episodes where ``mask [N]``; draws a full layout every call so the draw count is fixed."""
        agents, stags = self._random_layout()
        self.agent_pos = torch.where(mask[:, None, None], agents, self.agent_pos)
        self.stag_pos = torch.where(mask[:, None, None], stags, self.stag_pos)
        self.agent_active = self.agent_active | mask[:, None]
        self.stag_alive = self.stag_alive | mask[:, None]
        self.t = torch.where(mask, torch.zeros_like(self.t), self.t)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(int(seed))
        self._reset_rows(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._observe()

    # ------------------------------------------------------------------------------------------
    def _occupancy(self, pos: torch.Tensor, present: torch.Tensor, size: int, pad: int) -> torch.Tensor:
        """Counts of present entities per cell: ``[N, size * size]`` for ``pos [N, k, 2]`` (+pad)."""
        flat = (pos[..., 0] + pad) * size + (pos[..., 1] + pad)
        grid = torch.zeros(self.num_envs, size * size, device=self.device)
        return grid.scatter_add_(1, flat, present.float())

    def _observe(self) -> torch.Tensor:
        p, s = self._padded, self.sight
        agents = self._occupancy(self.agent_pos, self.agent_active, p, s)
        stags = self._occupancy(self.stag_pos, self.stag_alive, p, s)
        grid = torch.stack([agents, stags, self._wall.expand_as(agents)], 1)  # [N, 3, P*P]
        cells = self.agent_pos[:, :, None, :] + self._offsets + s  # [N, agents, W, 2] in padded coords
        flat = (cells[..., 0] * p + cells[..., 1]).reshape(self.num_envs, 1, -1).expand(-1, 3, -1)
        window = grid.gather(2, flat).reshape(self.num_envs, 3, self.n_agents, -1)  # [N, 3, agents, W]
        window = window.permute(0, 2, 1, 3).reshape(self.num_envs, self.n_agents, -1)
        own = self.agent_pos.float() / max(self.grid_size - 1, 1)
        return torch.cat([window.clamp(max=1.0), own], -1)

    def _adjacent(self) -> torch.Tensor:
        """``[N, agents, stags]``: agent 4-adjacent to a live stag."""
        dist = (self.agent_pos[:, :, None, :] - self.stag_pos[:, None, :, :]).abs().sum(-1)
        return (dist == 1) & self.stag_alive[:, None, :]

    def _on_stag(self, pos: torch.Tensor) -> torch.Tensor:
        """``[N, k]``: positions ``pos [N, k, 2]`` coincide with a live stag."""
        same = (pos[:, :, None, :] == self.stag_pos[:, None, :, :]).all(-1) & self.stag_alive[:, None, :]
        return same.any(-1)

    def current_info(self) -> dict[str, torch.Tensor]:
        g = self.grid_size
        target = self.agent_pos[:, :, None, :] + self._moves  # [N, agents, A, 2]
        in_grid = ((target >= 0) & (target < g)).all(-1)
        blocked = self._on_stag(target.reshape(self.num_envs, -1, 2)).reshape(in_grid.shape)
        avail = in_grid & ~blocked
        avail[..., STAY] = True
        avail[..., CAPTURE] = self._adjacent().any(-1)
        avail = torch.where(self.agent_active[..., None], avail, torch.arange(self.n_actions, device=self.device) == 0)
        agents = self._occupancy(self.agent_pos, self.agent_active, g, 0)
        stags = self._occupancy(self.stag_pos, self.stag_alive, g, 0)
        elapsed = (self.t.float() / self.episode_limit)[:, None]
        state = torch.cat([agents.clamp(max=1.0), stags.clamp(max=1.0), elapsed], -1)
        return {"state": state, "avail_actions": avail, "alive": self.agent_active.clone()}

    # ------------------------------------------------------------------------------------------
    def step(self, action: torch.Tensor) -> StepOut:
        action = torch.where(self.agent_active, action.long(), torch.zeros_like(action, dtype=torch.long))
        # Captures first: a stag is taken when enough adjacent agents try at once.
        trying = (action == CAPTURE) & self.agent_active  # [N, agents]
        near = self._adjacent() & trying[..., None]  # [N, agents, stags]
        captured = near.sum(1) >= self.capture_agents  # [N, stags]
        captors = (near & captured[:, None, :]).any(-1)  # [N, agents]
        missed = trying & ~captors
        reward = self.capture_reward * captured.sum(-1).float() + self.punishment * missed.sum(-1).float()
        self.stag_alive = self.stag_alive & ~captured
        self.agent_active = self.agent_active & ~captors

        # Agents move (never off-grid, never onto a live stag; such moves stay in place).
        g = self.grid_size
        target = self.agent_pos + self._moves[action]
        ok = ((target >= 0) & (target < g)).all(-1) & ~self._on_stag(target) & self.agent_active
        self.agent_pos = torch.where(ok[..., None], target, self.agent_pos)

        # Stags move at random (never off-grid, never onto an active agent).
        pick = torch.randint(0, 5, (self.num_envs, self.n_stags), device=self.device, generator=self.generator)
        target = self.stag_pos + self._moves[pick]
        on_agent = (target[:, :, None, :] == self.agent_pos[:, None, :, :]).all(-1) & self.agent_active[:, None, :]
        ok = ((target >= 0) & (target < g)).all(-1) & ~on_agent.any(-1) & self.stag_alive
        self.stag_pos = torch.where(ok[..., None], target, self.stag_pos)

        self.t = self.t + 1
        terminated = ~self.stag_alive.any(-1) | ~self.agent_active.any(-1)
        truncated = (self.t >= self.episode_limit) & ~terminated
        done = terminated | truncated
        final_obs = self._observe()
        final_info = self.current_info()
        self._reset_rows(done)
        obs = torch.where(done[:, None, None], self._observe(), final_obs)
        info = finalize_info(self.current_info(), final_info, done)
        return StepOut(obs, reward, terminated, truncated, final_obs, info)

    def close(self) -> None:
        pass
