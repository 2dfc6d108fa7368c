"""The multi-agent form of the VecEnv protocol, and the factory for the suite's own MARL envs.

A ``MultiAgentVecEnv`` is a :class:`envs.base.VecEnv` with an agent dimension (cooperative, one
team reward, CTDE: the global state is for the centralized learner only):

* ``obs`` ``[N, agents, D]`` float32 (every agent's local observation),
* ``reward`` ``[N]`` float32 (the team reward),
* ``terminated`` / ``truncated`` ``[N]`` bool (episode-level; an episode ends for all agents),
* ``action`` given to ``step`` is ``[N, agents]`` int64 (one discrete choice per agent),
* ``info`` carries ``state [N, S]``, ``avail_actions [N, agents, A]`` bool and ``alive [N, agents]``
  bool of the *current* observation (post-reset where an episode ended), plus ``final_state`` and
  ``final_avail_actions``: the true last state / mask of a finished episode (equal to ``state`` /
  ``avail_actions`` elsewhere), the multi-agent counterpart of ``final_obs``.

``reset`` returns obs; the matching state and masks are then read from :meth:`MultiAgentVecEnv.
current_info` so that ``reset`` keeps the single-agent signature.

Deviations from the reference: PyMARL's ``MultiAgentEnv`` is a single env with Python-side
``get_obs_agent`` / ``get_state`` calls; here N copies live in batched tensors and the masks travel
with every step.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut


@runtime_checkable
class MultiAgentVecEnv(Protocol):
    """N cooperative multi-agent envs stepped as one (see the module docstring for shapes)."""

    num_envs: int
    device: torch.device
    n_agents: int
    n_actions: int
    episode_limit: int
    obs_spec: BoxSpec  # shape (agents, D)
    state_spec: BoxSpec  # shape (S,)
    action_spec: DiscreteSpec  # n = n_actions, shape (agents,)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every env; return obs ``[N, agents, D]``."""
        ...

    def current_info(self) -> dict[str, torch.Tensor]:
        """``state``, ``avail_actions`` and ``alive`` of the current observation."""
        ...

    def step(self, action: torch.Tensor) -> StepOut:
        """Apply joint actions ``[N, agents]`` and autoreset finished envs."""
        ...

    def close(self) -> None: ...


def make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """The env's own generator (never the global RNG, so agents and envs draw independently)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(0 if seed is None else int(seed))
    return generator


def finalize_info(
    info_next: dict[str, torch.Tensor], info_final: dict[str, torch.Tensor], done: torch.Tensor
) -> dict[str, Any]:
    """Info dict of a step: current (post-reset) tensors plus ``final_state`` / ``final_avail_actions``.

    ``info_final`` holds the tensors of the pre-reset last observation; ``done [N]`` selects rows.
    """
    out: dict[str, Any] = dict(info_next)
    out["final_state"] = torch.where(done[:, None], info_final["state"], info_next["state"])
    out["final_avail_actions"] = torch.where(
        done[:, None, None], info_final["avail_actions"], info_next["avail_actions"]
    )
    return out


# id -> "module:function" taking (num_envs, device, seed, **options): the form of envs.NATIVE_ENVS, so
# the suite's factory can register these with ``NATIVE_ENVS.update(MARL_ENVS)``.
MARL_ENVS: dict[str, str] = {
    "matrix": "envs.matrix_games:make_matrix_game",
    "matrix:wqmix": "envs.matrix_games:make_wqmix",
    "matrix:climbing": "envs.matrix_games:make_climbing",
    "matrix:penalty": "envs.matrix_games:make_penalty",
    "predator-prey": "envs.predator_prey:PredatorPrey",
}

# id prefix -> "module:function" taking (env_id, num_envs, device, seed, **options): adapters of
# third-party simulators whose ids name a scenario (``vmas:navigation``).
MARL_ENV_PREFIXES: dict[str, str] = {
    "vmas:": "envs.vmas_env:make_vmas_env",
    "mpe:": "envs.pettingzoo_env:make_mpe_env",
    "lbf:": "envs.lbforaging_env:make_lbf_env",
}


def make_marl_env(
    env_id: str, num_envs: int = 1, device: torch.device | str = "cpu", seed: int | None = 0, **options: Any
) -> MultiAgentVecEnv:
    """Build one of the suite's multi-agent envs by id (see ``MARL_ENVS``).

    ``matrix`` takes ``payoff=`` (or ``game=``); ``matrix:GAME`` is a named table (``payoff=`` still
    overrides it); ``predator-prey`` takes the options of :class:`envs.predator_prey.PredatorPrey`;
    ``vmas:SCENARIO`` those of :class:`envs.vmas_env.VmasEnv`; ``mpe:SCENARIO`` (PettingZoo MPE) those
    of :func:`envs.pettingzoo_env.make_mpe_env`; ``lbf:Foraging-...`` those of
    :func:`envs.lbforaging_env.make_lbf_env` (see ``MARL_ENV_PREFIXES``).
    """
    import importlib

    for prefix, target in MARL_ENV_PREFIXES.items():  # third-party families: "vmas:SCENARIO" ...
        if env_id.startswith(prefix):
            module, fn = target.split(":")
            return getattr(importlib.import_module(module), fn)(
                env_id, num_envs=num_envs, device=device, seed=seed, **options
            )
    if env_id not in MARL_ENVS:
        raise ValueError(f"unknown multi-agent env {env_id!r}; known: {', '.join(MARL_ENVS)}")
    module, fn = MARL_ENVS[env_id].split(":")
    return getattr(importlib.import_module(module), fn)(num_envs=num_envs, device=device, seed=seed, **options)
