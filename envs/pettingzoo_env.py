"""PettingZoo *parallel* envs as a cooperative ``MultiAgentVecEnv``; MPE (``mpe2``) ids ``mpe:SCENARIO``.

:class:`PettingZooCopy` turns one ``ParallelEnv`` (agent-keyed dicts) into the arrays of
:class:`envs.multiagent_copies.MultiAgentCopy`; :class:`envs.multiagent_copies.MultiAgentCopies`
batches N of them (shapes there: obs ``[N, n, D]``, team reward ``[N]``, actions ``[N, n]``,
``state [N, S]``, ``avail_actions [N, n, A]``). :func:`make_pettingzoo_env` wraps any parallel-env
factory; :func:`make_mpe_env` builds ``mpe:simple_spread`` (``mpe2.simple_spread_v3``) and the other
MPE scenarios, with ``continuous_actions=False`` and ``max_cycles`` = ``episode_limit`` (25 by
default, MPE's and the ROE spec's 6.5 item 3).

* Agents are ordered as ``possible_agents``; every agent needs the same ``Discrete`` action space
  and the same observation shape.
* Global state: the env's ``state()`` when it has one (MPE: the agents' observations concatenated,
  ``[n * D]``), else the observations concatenated; ``global_state="obs"`` always concatenates
  (for MPE the same vector without computing the observations twice: about 1.1x the env steps/s).
* Masks: PettingZoo's ``action_mask`` (in the info dict, or an observation dict with
  ``observation`` / ``action_mask``) when present, else all actions available.
* Episode end: every agent terminates or truncates together (MPE); an env whose agents leave one by
  one is refused with a message (``alive`` is all True here).

Deviations from the reference: (1) the team reward is the *sum* of the per-agent rewards
(EPyMARL's default ``reward_scalarisation``; ``team_reward="mean"`` gives the mean). In
``simple_spread`` every agent gets ``(1 - local_ratio) * global + local_ratio * own collision
penalty``, so the sum counts the shared term n times. (2) The episode limit is enforced by the
batching core as well as by ``max_cycles`` (the same step), and a truncation is never a termination.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from envs.multiagent_copies import MARL_EXTRA_HINT, MultiAgentCopies

MPE_PACKAGE = "mpe2"


class PettingZooCopy:
    """One PettingZoo ``ParallelEnv`` as a :class:`~envs.multiagent_copies.MultiAgentCopy`."""

    def __init__(self, env: Any, name: str = "pettingzoo", global_state: str = "env"):
        if global_state not in ("env", "obs"):
            raise ValueError(f"{name}: global_state must be 'env' or 'obs', got {global_state!r}")
        self.env, self.name = env, name
        self.agents = list(env.possible_agents)
        self.n_agents = len(self.agents)
        spaces = [env.action_space(agent) for agent in self.agents]
        sizes = {int(getattr(space, "n", -1)) for space in spaces}
        if len(sizes) != 1 or -1 in sizes:
            raise ValueError(f"{name}: every agent needs the same Discrete action space, got {spaces}")
        self.n_actions = sizes.pop()
        self._has_state: bool | None = None if global_state == "env" else False  # None: try state() once
        self._mask: np.ndarray | None = None

    @property
    def np_random(self) -> np.random.Generator:
        return self.env.unwrapped.np_random

    def _arrays(self, obs: dict[str, Any], infos: dict[str, Any]) -> np.ndarray:
        """Agent-keyed obs (and masks) -> obs ``[n, D]`` float32; keeps the masks for ``avail_actions``."""
        per_agent = [obs[agent] for agent in self.agents]
        masks = [infos.get(agent, {}).get("action_mask") for agent in self.agents]
        if isinstance(per_agent[0], dict):  # {"observation": ..., "action_mask": ...}
            masks = [o.get("action_mask") for o in per_agent]
            per_agent = [o["observation"] for o in per_agent]
        self._mask = None if masks[0] is None else np.stack(masks).astype(bool)
        try:
            return np.stack(per_agent).reshape(self.n_agents, -1).astype(np.float32, copy=False)
        except ValueError:
            shapes = {np.shape(o) for o in per_agent}
            raise ValueError(f"{self.name}: agents have different observation shapes {shapes}") from None

    def reset(self, seed: int | None) -> np.ndarray:
        obs, infos = self.env.reset(seed=seed)
        return self._arrays(obs, infos)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        joint = {agent: int(a) for agent, a in zip(self.agents, actions.tolist())}
        obs, rewards, terminations, truncations, infos = self.env.step(joint)
        ends = {(bool(terminations[a]), bool(truncations[a])) for a in self.agents}
        if len(ends) != 1:
            raise ValueError(f"{self.name}: agents ended at different steps ({ends}); not supported")
        terminated, truncated = ends.pop()
        reward = np.array([rewards[agent] for agent in self.agents], np.float32)
        return self._arrays(obs, infos), reward, terminated, truncated

    def state(self) -> np.ndarray | None:
        if self._has_state is False:
            return None
        try:
            state = self.env.state()
        except (NotImplementedError, AttributeError):  # ParallelEnv.state() raises when not provided
            self._has_state = False
            return None
        self._has_state = True
        return np.asarray(state, np.float32).reshape(-1)

    def avail_actions(self) -> np.ndarray | None:
        return self._mask

    def close(self) -> None:
        self.env.close()


def make_pettingzoo_env(
    factory: Callable[[], Any],
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    episode_limit: int = 25,
    team_reward: str = "sum",
    global_state: str = "env",
    name: str = "pettingzoo",
) -> MultiAgentCopies:
    """``num_envs`` copies of ``factory()`` (a PettingZoo parallel env) as a ``MultiAgentVecEnv``.

    ``global_state``: ``"env"`` uses the env's ``state()`` where it has one, ``"obs"`` always
    concatenates the observations (the same vector for MPE, without computing it twice).
    """
    return MultiAgentCopies(
        lambda: PettingZooCopy(factory(), name, global_state),
        num_envs=num_envs,
        device=device,
        seed=seed,
        episode_limit=episode_limit,
        team_reward=team_reward,
        name=name,
    )


def mpe_scenarios() -> dict[str, str]:
    """MPE scenario name -> ``mpe2`` module (``simple_spread`` -> ``mpe2.simple_spread_v3``)."""
    from envs import EnvError

    try:
        mpe2 = importlib.import_module(MPE_PACKAGE)
    except ImportError:
        raise EnvError(f"MPE envs need the optional package mpe2: {MARL_EXTRA_HINT}") from None
    import pkgutil

    modules = [m.name for m in pkgutil.iter_modules(mpe2.__path__) if re.search(r"_v\d+$", m.name)]
    return {m.rsplit("_v", 1)[0]: f"{MPE_PACKAGE}.{m}" for m in modules}


def make_mpe_env(
    env_id: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    episode_limit: int = 25,
    team_reward: str = "sum",
    global_state: str = "env",
    **scenario_options: Any,
) -> MultiAgentCopies:
    """``mpe:SCENARIO`` -> N copies of ``mpe2.SCENARIO_vK.parallel_env`` with discrete actions.

    ``scenario_options`` go to the scenario (``N``, ``local_ratio`` for simple_spread).
    """
    from envs import EnvError

    scenario = env_id.split(":", 1)[1] if env_id.startswith("mpe:") else env_id
    scenarios = mpe_scenarios()
    if scenario not in scenarios:
        close = difflib.get_close_matches(scenario, list(scenarios), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join('mpe:' + c for c in close)}" if close else ""
        raise EnvError(f"unknown MPE env {env_id!r}{hint}")
    if scenario_options.pop("continuous_actions", False):
        raise NotImplementedError("continuous MPE actions are not supported (discrete only)")
    module = importlib.import_module(scenarios[scenario])
    options = {**scenario_options, "max_cycles": int(episode_limit), "continuous_actions": False}
    return make_pettingzoo_env(
        lambda: module.parallel_env(**options),
        num_envs=num_envs,
        device=device,
        seed=seed,
        episode_limit=episode_limit,
        team_reward=team_reward,
        global_state=global_state,
        name=f"mpe:{scenario}",
    )
