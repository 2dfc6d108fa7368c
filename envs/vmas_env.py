"""VMAS scenarios (Bettini et al., DARS 2022, arXiv 2207.03530) as a cooperative ``MultiAgentVecEnv``.

VMAS is natively batched torch: one ``vmas.Environment`` holds ``num_envs`` worlds as tensors on
``device``, so this adapter only reshapes. Env ids are ``vmas:SCENARIO`` (``vmas:navigation``);
every other option goes to the scenario (``env.options.n_agents=4``, ``env.options.shared_rew=true``).

Shapes for N envs, n agents, D observation features, A discrete actions (or action components):

* ``obs [N, n, D]`` float32: the agents' observations stacked (every agent must have the same D);
* ``reward [N]`` float32: the team reward, ``team_reward="mean"`` (default) or ``"sum"`` over the
  agents' rewards ``[N, n]``; with ``reward="agent"`` those per-agent rewards ``[N, n]`` themselves;
* ``terminated [N]``: the scenario's ``done()`` (navigation: every agent on its goal);
  ``truncated [N]``: ``max_steps`` reached without termination (kept apart: the learner bootstraps);
* ``action [N, n]`` int64 in ``[0, A)``: VMAS's flat ``Discrete`` action of each agent
  (navigation: A = 9, the 3 x 3 grid of {-u, 0, +u} per axis, VMAS's flat index; action 0 = no force);
  with ``actions="continuous"`` VMAS's ``Box`` actions instead, ``[N, n, A]`` float32 in the canonical
  ``[-1, 1]`` (``A`` = the widest agent's action), clipped and mapped onto each agent's own bounds
  (``action_low`` / ``action_high`` ``[n, A]``: ``[-u_range, u_range]`` per physical component, ``[0, 1]``
  per communication component), so +1 is ``u_range`` (navigation: A = 2, u_range = 1);
* ``info``: ``state [N, n * D]`` (the observations concatenated), ``avail_actions [N, n, A]`` (all
  True: VMAS has no action masks; for continuous actions the components each agent uses),
  ``alive [N, n]`` (all True), ``final_state`` / ``final_avail_actions`` of finished episodes.

The env-level options (``num_envs``, ``device``, ``seed``, ``max_steps`` = ``episode_limit``,
``team_reward``, ``reward``, ``actions``) come as keywords or as one
:class:`envs.multiagent.MultiAgentOptions` (``options=``); every other keyword goes to the scenario.

Defaults match BenchMARL's ``vmas/navigation`` task (3 agents, collisions, per-agent rewards
``shared_rew=False``, lidar range 0.35, agent radius 0.1, ``max_steps`` 100).

Random numbers: VMAS draws from the *global* torch / numpy / ``random`` generators inside its
``local_seed`` context, whose saved state is one list shared by every VMAS env in the process. This
adapter swaps its own states (:class:`VmasRandomState`, the ``generator`` attribute the episode
collector checkpoints) into that list around every VMAS call, so two envs (training, evaluation)
draw independent, reproducible streams and the caller's global RNG is never touched.

Autoreset: finished rows are reset in the same step (the suite's contract). When every row is done
(the usual case: all episodes start together and truncate at ``max_steps``) one batched
``Environment.reset()`` resets all of them; otherwise ``Environment.reset_at(i)`` runs for each
finished row, without computing observations, and the observations of the whole batch are then
read once. VMAS 1.5 has no masked batched reset (``reset_at`` takes one int index; scenarios index
their tensors with it), and TorchRL's ``VmasEnv``, which BenchMARL uses, loops over ``reset_at`` the
same way. The loop runs only at episode ends and only over the finished rows; the per-step path has
no per-env Python loop (VMAS itself loops over agents and entities).

Deviations from the reference: (1) BenchMARL's QMIX forms the team reward as the mean over agents
(``process_batch``: ``reward.mean(-2)``) and feeds the mixer the stacked observations when the task
has no global state; both are the defaults here. PyMARL-style learners (the suite's) often sum
per-agent rewards instead (``team_reward="sum"``); with ``shared_rew=True`` the mean is the shared
reward itself. (2) Continuous actions are canonical ``[-1, 1]`` and rescaled here, where BenchMARL
hands the policy VMAS's own bounds. (3) VMAS keeps running a terminated world until it is reset; the
adapter resets it in the same step.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut
from envs.multiagent import MultiAgentOptions, canonical_to_bounds, finalize_info

# BenchMARL's vmas/navigation.yaml (benchmarl 1.5): the task of the speed comparison.
NAVIGATION_DEFAULTS: dict[str, Any] = {
    "n_agents": 3,
    "collisions": True,
    "agents_with_same_goal": 1,
    "split_goals": False,
    "observe_all_goals": False,
    "shared_rew": False,
    "lidar_range": 0.35,
    "agent_radius": 0.1,
}
SCENARIO_DEFAULTS: dict[str, dict[str, Any]] = {"navigation": NAVIGATION_DEFAULTS}


class VmasRandomState:
    """The torch / numpy / ``random`` states one VMAS env draws from (VMAS seeds all three).

    ``get_state()`` / ``set_state()`` round-trip through ``torch.load(weights_only=True)`` (tensors,
    numbers, lists, dicts), so the episode collector checkpoints it like a ``torch.Generator``.
    """

    def __init__(self, seed: int | None = 0):
        self.manual_seed(0 if seed is None else seed)

    def manual_seed(self, seed: int) -> VmasRandomState:
        """The states ``Environment.seed(seed)`` would give (``torch.manual_seed`` etc.)."""
        seed = int(seed)
        self.states: list[Any] = [
            torch.Generator().manual_seed(seed).get_state(),
            np.random.RandomState(seed).get_state(),
            random.Random(seed).getstate(),
        ]
        return self

    def get_state(self) -> dict[str, Any]:
        torch_state, (_, keys, pos, has_gauss, cached), (version, internal, gauss_next) = self.states
        return {
            "torch": torch_state.clone(),
            "numpy": {
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            },
            "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        n, p = state["numpy"], state["python"]
        keys = n["keys"].numpy().astype(np.uint32)
        self.states = [
            state["torch"].clone(),
            ("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]),
            (p["version"], tuple(p["internal"]), p["gauss_next"]),
        ]


class VmasEnv:
    """``num_envs`` copies of a VMAS scenario with discrete or continuous actions (a ``MultiAgentVecEnv``).

    Shapes in the module docstring. ``max_steps`` (or ``episode_limit``; default 100) is the episode
    limit (VMAS truncates there), ``team_reward`` defaults to ``"mean"``; the env-level options may
    also come as ``options`` (:meth:`envs.multiagent.MultiAgentOptions.resolve`). The other keywords
    go to the scenario, on top of :data:`SCENARIO_DEFAULTS` for that scenario.
    """

    def __init__(
        self,
        scenario: str = "navigation",
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int | None = 0,
        *,
        options: MultiAgentOptions | None = None,
        **kwargs: Any,
    ):
        import vmas
        from vmas.simulator.environment import Environment

        opts, scenario_options = MultiAgentOptions.resolve(
            options,
            num_envs=num_envs,
            device=device,
            seed=seed,
            defaults={"episode_limit": 100, "team_reward": "mean"},
            **kwargs,
        )
        self.scenario = scenario
        self.multi_agent_options = opts
        self.num_envs = int(opts.num_envs)
        self.device = torch.device(opts.device)
        self.episode_limit = int(opts.episode_limit)
        self.team_reward = opts.team_reward
        self.reward_mode = opts.reward
        self.continuous = opts.continuous
        self.options = {**SCENARIO_DEFAULTS.get(scenario, {}), **scenario_options}
        self.generator = VmasRandomState(opts.seed)
        self._shared_random_state = Environment.vmas_random_state  # the list VMAS's local_seed reads
        with self._own_random_state():
            self._env = vmas.make_env(
                scenario,
                num_envs=self.num_envs,
                device=self.device,
                continuous_actions=self.continuous,
                max_steps=self.episode_limit,
                seed=None,  # seeded through self.generator
                terminated_truncated=True,
                **self.options,
            )
        spaces = list(self._env.action_space)
        self.n_agents = int(self._env.n_agents)
        self.agent_names = tuple(agent.name for agent in self._env.agents)
        if self.continuous:
            self._box_actions(spaces)
        else:
            if any(not hasattr(space, "n") for space in spaces) or len({int(space.n) for space in spaces}) != 1:
                raise ValueError(f"vmas:{scenario}: every agent needs the same Discrete action space, got {spaces}")
            self.n_actions = int(spaces[0].n)
        obs = self._stack(self._read_obs())
        self.obs_dim = int(obs.shape[-1])
        self.obs_dims = (self.obs_dim,) * self.n_agents  # VMAS agents here share one observation length
        self.obs_spec = BoxSpec((self.n_agents, self.obs_dim), low=-float("inf"), high=float("inf"))
        self.state_spec = BoxSpec((self.n_agents * self.obs_dim,), low=-float("inf"), high=float("inf"))
        self._obs = obs
        if self.continuous:
            self.action_spec: BoxSpec | DiscreteSpec = BoxSpec((self.n_agents, self.n_actions), low=-1.0, high=1.0)
            self._avail = self._used.expand(self.num_envs, -1, -1).clone()
        else:
            self.action_spec = DiscreteSpec(self.n_actions, (self.n_agents,))
            self._avail = torch.ones(self.num_envs, self.n_agents, self.n_actions, dtype=torch.bool, device=self.device)

    def _box_actions(self, spaces: list[Any]) -> None:
        """Bounds ``action_low`` / ``action_high`` ``[n, A]`` and used components ``[n, A]`` of Box actions."""
        if any(not hasattr(space, "low") or len(space.shape) != 1 for space in spaces):
            raise ValueError(f"vmas:{self.scenario}: continuous actions need a 1-d Box per agent, got {spaces}")
        self.action_dims = tuple(int(space.shape[0]) for space in spaces)
        self.n_actions = max(self.action_dims)
        low = torch.zeros(self.n_agents, self.n_actions)
        high = torch.zeros(self.n_agents, self.n_actions)
        used = torch.zeros(self.n_agents, self.n_actions, dtype=torch.bool)
        for row, (space, width) in enumerate(zip(spaces, self.action_dims)):  # padded components stay 0
            low[row, :width], high[row, :width] = torch.as_tensor(space.low), torch.as_tensor(space.high)
            used[row, :width] = True
        self.action_low, self.action_high = low.to(self.device), high.to(self.device)
        self._used = used.to(self.device)

    # ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _own_random_state(self) -> Iterator[None]:
        """Run VMAS calls on this env's random states (VMAS's shared list is restored after)."""
        shared = self._shared_random_state
        saved = list(shared)
        shared[:] = self.generator.states
        try:
            yield
        finally:
            self.generator.states = list(shared)
            shared[:] = saved

    def _stack(self, per_agent: list[torch.Tensor]) -> torch.Tensor:
        """``n`` tensors ``[N, D]`` -> ``[N, n, D]`` float32."""
        dims = {tuple(t.shape[1:]) for t in per_agent}
        if len(dims) != 1:
            raise ValueError(f"vmas:{self.scenario}: agents have different observation shapes {dims}")
        return torch.stack(per_agent, 1).to(torch.float32).reshape(self.num_envs, len(per_agent), -1)

    def _read_obs(self) -> list[torch.Tensor]:
        (obs,) = self._env.get_from_scenario(
            get_observations=True, get_rewards=False, get_infos=False, get_dones=False, dict_agent_names=False
        )
        return obs

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every env (reseeding this env's random states first if ``seed`` is given)."""
        if seed is not None:
            self.generator.manual_seed(seed)
        with self._own_random_state():
            self._env.reset(return_observations=False)
            self._obs = self._stack(self._read_obs())
        return self._obs

    def current_info(self) -> dict[str, torch.Tensor]:
        return self._info(self._obs)

    def _info(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "state": obs.reshape(self.num_envs, -1),
            "avail_actions": self._avail.clone(),
            "alive": torch.ones(self.num_envs, self.n_agents, dtype=torch.bool, device=self.device),
        }

    def step(self, action: torch.Tensor) -> StepOut:
        """Apply joint actions ``[N, agents]`` int64 (or ``[N, agents, A]`` float in ``[-1, 1]``); reset
        finished rows in the same step."""
        if self.continuous:  # canonical -> VMAS units; each agent gets its own components, agents x [N, A_i]
            box = canonical_to_bounds(action.to(self.device, torch.float32), self.action_low, self.action_high)
            per_agent = [box[:, row, :width] for row, width in enumerate(self.action_dims)]
        else:
            per_agent = list(action.to(self.device, torch.long).unsqueeze(-1).unbind(1))  # agents x [N, 1]
        with self._own_random_state():
            obs, rewards, terminated, truncated, _ = self._env.step(per_agent)
            final_obs = self._stack(obs)
            agent_rewards = torch.stack(rewards, 1).to(torch.float32)  # [N, agents]
            if self.reward_mode == "agent":
                reward = agent_rewards
            else:
                reward = agent_rewards.mean(1) if self.team_reward == "mean" else agent_rewards.sum(1)
            terminated = terminated.to(torch.bool)
            truncated = truncated.to(torch.bool) & ~terminated
            done = terminated | truncated
            obs = final_obs
            if bool(done.any()):  # VMAS syncs the host every step anyway (asserts on actions)
                if bool(done.all()):
                    self._env.reset(return_observations=False)
                else:  # only the finished rows (VMAS has no masked batched reset)
                    for index in done.nonzero().flatten().tolist():
                        self._env.reset_at(index, return_observations=False)
                obs = torch.where(done[:, None, None], self._stack(self._read_obs()), final_obs)
        self._obs = obs
        info = finalize_info(self._info(obs), self._info(final_obs), done)
        return StepOut(obs, reward, terminated, truncated, final_obs, info)

    def close(self) -> None:
        pass


def make_vmas_env(
    env_id: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    *,
    options: MultiAgentOptions | None = None,
    **kwargs: Any,
) -> VmasEnv:
    """``vmas:SCENARIO`` -> :class:`VmasEnv` (keywords: ``max_steps``, ``team_reward``, ``reward``,
    ``actions`` or one ``options`` object, and scenario kwargs)."""
    if not env_id.startswith("vmas:") or not env_id[len("vmas:") :]:
        raise ValueError(f"a VMAS env id is 'vmas:SCENARIO' (e.g. vmas:navigation), got {env_id!r}")
    return VmasEnv(env_id[len("vmas:") :], num_envs=num_envs, device=device, seed=seed, options=options, **kwargs)
