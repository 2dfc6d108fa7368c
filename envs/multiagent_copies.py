"""N copies of a third-party (numpy, one-episode-at-a-time) multi-agent env as one ``MultiAgentVecEnv``.

The reference is EPyMARL's env wrappers (Papoudakis et al., NeurIPS 2021 Datasets and Benchmarks,
arXiv 2006.07869), which step one such env at a time.

The batching core shared by the PettingZoo (:mod:`envs.pettingzoo_env`) and lbforaging
(:mod:`envs.lbforaging_env`) adapters. Each copy is a :class:`MultiAgentCopy`: a thin per-simulator
shim that speaks numpy arrays with the agents in a fixed order. :class:`MultiAgentCopies` steps the
copies in a Python loop (unavoidable for a Python simulator), writes each copy's result into one
row of preallocated numpy buffers, and converts every buffer to torch once per step.

Shapes for N copies, n agents, D observation features, S state features, A actions:

* ``obs [N, n, D]`` float32; ``reward [N]`` float32, the team reward (``team_reward="sum"``, the
  default, or ``"mean"`` of the per-agent rewards ``[N, n]``), or with ``reward="agent"`` the
  per-agent rewards ``[N, n]`` themselves;
* ``terminated [N]``: the simulator's own episode end; ``truncated [N]``: the episode limit reached
  without termination (this class counts the steps, so the limit holds whatever the simulator
  reports; a simulator's own truncation is kept too), the learner bootstraps through it;
* ``action [N, n]`` int64, or with ``actions="continuous"`` ``[N, n, A]`` float32 in ``[-1, 1]``: the
  core clips it and maps it onto each agent's bounds (the copy's ``action_low`` / ``action_high``
  ``[n, A]``, see :func:`envs.multiagent.canonical_to_bounds`) in one batched torch call, so a copy
  receives simulator units;
* ``info``: ``state [N, S]`` (the copy's ``state()``, or the agents' observations concatenated),
  ``avail_actions [N, n, A]`` bool (all True unless the copy reports masks; for continuous actions
  the components an agent uses), ``alive [N, n]`` (all True: an episode ends for every agent at
  once), ``final_state`` / ``final_avail_actions``.

The env-level options (``num_envs``, ``device``, ``seed``, ``episode_limit``, ``team_reward``,
``reward``, ``actions``) arrive as one :class:`envs.multiagent.MultiAgentOptions`.

Seeding: copy ``i`` is reset with ``seed + i`` at the first ``reset`` (or ``reset(seed=s)``: ``s +
i``); later resets (the collector's, the same-step autoresets) continue each copy's own numpy
generator, so a run is reproducible. ``generator`` (:class:`CopiesRandomState`) reads and writes
those generators as a checkpointable state, which is all a resumed run needs: the episode collector
resets every env at the start of each collection.

Deviations from the reference: PyMARL / EPyMARL step one env at a time through ``get_obs`` /
``get_state`` calls; here N copies are stacked and the masks and final state travel with every
step. The team reward is a reduction of the per-agent rewards (EPyMARL's ``reward_scalarisation``,
default sum). Continuous actions are canonical ``[-1, 1]`` here and rescaled for the simulator (MPE
itself takes ``[0, 1]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut
from envs.multiagent import MultiAgentOptions, canonical_to_bounds, finalize_info

# The one-line fix for a missing simulator package (the adapters' EnvError messages end with it).
MARL_EXTRA_HINT = "pip install -e .[marl]"


class MultiAgentCopy(Protocol):
    """One copy of a simulator, agents in a fixed order (the shim each adapter writes).

    A copy with continuous actions also has ``action_low`` / ``action_high``: float32 ``[n, A]``, the
    simulator's bounds of each agent's (padded) action vector; it then takes ``[n, A]`` float32 actions
    in those units. ``n_actions`` is ``A`` then.
    """

    n_agents: int
    n_actions: int

    def reset(self, seed: int | None) -> np.ndarray:
        """Start an episode (reseed first if ``seed`` is given); obs ``[n, D]``."""
        ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        """Actions ``[n]`` int (or ``[n, A]`` float) -> (obs ``[n, D]``, rewards ``[n]``, terminated, truncated)."""
        ...

    def state(self) -> np.ndarray | None:
        """The global state ``[S]`` of the current step, or None (the obs are concatenated)."""
        ...

    def avail_actions(self) -> np.ndarray | None:
        """Action masks ``[n, A]`` bool of the current step, or None (all available)."""
        ...

    @property
    def np_random(self) -> np.random.Generator:
        """The simulator's generator (read and replaced by :class:`CopiesRandomState`)."""
        ...


class CopiesRandomState:
    """The numpy generators of every copy as one checkpointable state (the collector's ``generator``).

    ``get_state()`` gives ``{"bit_generators": [json str, ...]}``: strings, so the state survives
    ``torch.load(weights_only=True)`` (PCG64 states are 128-bit integers).
    """

    def __init__(self, copies: Sequence[MultiAgentCopy]):
        self.copies = copies

    def get_state(self) -> dict[str, Any]:
        return {"bit_generators": [json.dumps(c.np_random.bit_generator.state) for c in self.copies]}

    def set_state(self, state: dict[str, Any]) -> None:
        for copy, saved in zip(self.copies, state["bit_generators"], strict=True):
            copy.np_random.bit_generator.state = json.loads(saved)


class MultiAgentCopies:
    """``num_envs`` copies of one simulator as a ``MultiAgentVecEnv`` (shapes in the module docstring).

    ``make_copy()`` builds one :class:`MultiAgentCopy` (with continuous actions when
    ``options.actions == "continuous"``); ``options.episode_limit`` is the truncation step (None: 25),
    ``options.team_reward`` the reduction (None: sum); ``name`` appears in error messages.
    """

    def __init__(
        self,
        make_copy: Callable[[], MultiAgentCopy],
        options: MultiAgentOptions | None = None,
        name: str = "env",
    ):
        options, _ = MultiAgentOptions.resolve(options, defaults={"episode_limit": 25, "team_reward": "sum"})
        self.multi_agent_options, self.name = options, name
        self.num_envs = int(options.num_envs)
        self.device = torch.device(options.device)
        self.episode_limit = int(options.episode_limit)
        self.team_reward = options.team_reward
        self.reward_mode = options.reward
        self.seed = 0 if options.seed is None else int(options.seed)
        self.copies = [make_copy() for _ in range(self.num_envs)]
        self.generator = CopiesRandomState(self.copies)
        first = self.copies[0]
        self.n_agents, self.n_actions = int(first.n_agents), int(first.n_actions)
        self.agent_names = tuple(getattr(first, "agents", [f"agent_{i}" for i in range(self.n_agents)]))
        self.continuous = options.continuous
        obs = np.stack([c.reset(self.seed + i) for i, c in enumerate(self.copies)])  # [N, n, D]
        self.obs_dim = int(obs.shape[-1])
        # Each agent's own observation length (the rest of its row is zero padding) and action width.
        self.obs_dims = tuple(getattr(first, "obs_dims", None) or [self.obs_dim] * self.n_agents)
        state = first.state()
        self.state_dim = self.n_agents * self.obs_dim if state is None else int(np.asarray(state).size)
        self.obs_spec = BoxSpec((self.n_agents, self.obs_dim), low=-float("inf"), high=float("inf"))
        self.state_spec = BoxSpec((self.state_dim,), low=-float("inf"), high=float("inf"))
        if self.continuous:  # canonical box; the core maps it onto the copy's bounds before every step
            self.action_low = torch.as_tensor(np.asarray(first.action_low, np.float32))  # [n, A], CPU
            self.action_high = torch.as_tensor(np.asarray(first.action_high, np.float32))
            self.action_dims = tuple(getattr(first, "action_dims", None) or [self.n_actions] * self.n_agents)
            self.action_spec: BoxSpec | DiscreteSpec = BoxSpec((self.n_agents, self.n_actions), low=-1.0, high=1.0)
        else:
            self.action_spec = DiscreteSpec(self.n_actions, (self.n_agents,))
        # Fresh numpy arrays every step (never written after being handed out as tensors, which share
        # their memory on CPU): one row per copy, converted to torch once per step.
        self._obs = obs.astype(np.float32)
        self._state, self._avail = self._extras(range(self.num_envs), self._obs)
        self._steps = np.zeros(self.num_envs, np.int64)  # env steps of the running episode, per copy

    # ------------------------------------------------------------------------------------------
    def _extras(
        self, rows: Sequence[int], obs: np.ndarray, into: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """State ``[N, S]`` and masks ``[N, n, A]`` of copies ``rows`` (written into ``into`` if given)."""
        if into is None:
            into = (
                np.empty((self.num_envs, self.state_dim), np.float32),
                np.empty((self.num_envs, self.n_agents, self.n_actions), bool),
            )
        state, avail = into
        for i in rows:
            copy_state = self.copies[i].state()
            state[i] = obs[i].reshape(-1) if copy_state is None else copy_state
            mask = self.copies[i].avail_actions()
            avail[i] = True if mask is None else mask
        return state, avail

    def _info(self, state: np.ndarray, avail: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "state": self._tensor(state),
            "avail_actions": self._tensor(avail),
            "alive": torch.ones(self.num_envs, self.n_agents, dtype=torch.bool, device=self.device),
        }

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every copy (copy ``i`` reseeded with ``seed + i`` if given); obs ``[N, agents, D]``."""
        seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        self._obs = np.stack([copy.reset(s) for copy, s in zip(self.copies, seeds)]).astype(np.float32)
        self._state, self._avail = self._extras(range(self.num_envs), self._obs)
        self._steps[:] = 0
        return self._tensor(self._obs)

    def current_info(self) -> dict[str, torch.Tensor]:
        return self._info(self._state, self._avail)

    def step(self, action: torch.Tensor) -> StepOut:
        """Apply joint actions ``[N, agents]`` int64 (or ``[N, agents, A]`` float in ``[-1, 1]``); finished
        copies restart in the same step."""
        if self.continuous:  # [N, n, A] canonical -> simulator units, once for the whole batch
            box = action.detach().to("cpu", torch.float32)
            actions = canonical_to_bounds(box, self.action_low, self.action_high).numpy()
        else:
            actions = action.detach().to("cpu", torch.int64).numpy()
        n = self.num_envs
        final_obs = np.empty_like(self._obs)  # [N, n, D]
        rewards = np.empty((n, self.n_agents), np.float32)  # [N, n]
        terminated = np.empty(n, bool)
        env_truncated = np.empty(n, bool)
        for i, copy in enumerate(self.copies):
            final_obs[i], rewards[i], terminated[i], env_truncated[i] = copy.step(actions[i])
        self._steps += 1
        # Truncation is the limit (or the simulator's own) without termination: the learner bootstraps.
        truncated = (env_truncated | (self._steps >= self.episode_limit)) & ~terminated
        done = terminated | truncated
        final_state, final_avail = self._extras(range(n), final_obs)  # the true last state / masks
        obs, state, avail = final_obs.copy(), final_state.copy(), final_avail.copy()
        done_rows = np.flatnonzero(done)
        for i in done_rows:  # same-step autoreset, continuing each copy's own generator
            obs[i] = self.copies[i].reset(None)
        self._extras(done_rows, obs, into=(state, avail))
        self._steps[done_rows] = 0
        self._obs, self._state, self._avail = obs, state, avail
        if self.reward_mode == "agent":
            reward = rewards  # [N, n], each agent's own reward
        else:
            reward = rewards.sum(1) if self.team_reward == "sum" else rewards.mean(1)
        info = finalize_info(self._info(state, avail), self._info(final_state, final_avail), self._tensor(done))
        return StepOut(
            self._tensor(obs),
            self._tensor(reward),
            self._tensor(terminated),
            self._tensor(truncated),
            self._tensor(final_obs),
            info,
        )

    def close(self) -> None:
        for copy in self.copies:
            close = getattr(copy, "close", None)
            if close is not None:
                close()
