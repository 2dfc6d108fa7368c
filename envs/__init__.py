"""Environments as torch VecEnvs: adapters for gymnasium and DeepMind Control, and the suite's own.

:func:`make_vec_env` is the one factory. Ids route by form:

* ``dmc:domain-task``  - DeepMind Control Suite (state-based), via :mod:`envs.dmc`;
* a name in :data:`NATIVE_ENVS` - the suite's own vectorized torch envs;
* ``vmas:SCENARIO``    - VMAS scenarios as multi-agent envs, via :mod:`envs.vmas_env`;
* ``mpe:SCENARIO``     - PettingZoo MPE (``mpe2``) as multi-agent envs, via :mod:`envs.pettingzoo_env`;
* ``lbf:Foraging-...`` - level-based foraging (``lbforaging``), via :mod:`envs.lbforaging_env`;
* anything else      - a gymnasium id (``Pendulum-v1``, ``Hopper-v5``).

``wrappers`` are applied to every gymnasium env (e.g. the perturbations of :mod:`envs.perturb`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut, VecEnv
from envs.multiagent import MARL_ENV_PREFIXES, MARL_ENVS, make_marl_env

__all__ = ["BoxSpec", "DiscreteSpec", "StepOut", "VecEnv", "make_env", "make_vec_env", "NATIVE_ENVS", "EnvError"]

# name -> "module:function"; the function takes (num_envs, device, seed, **options) -> VecEnv.
NATIVE_ENVS: dict[str, str] = {}
NATIVE_ENVS.update(MARL_ENVS)  # matrix games, predator-prey


class EnvError(ValueError):
    """An env id or option that cannot be built; the message is one line for the user."""


def make_env(env_id: str, options: dict[str, Any] | None = None, render_mode: str | None = None) -> gymnasium.Env:
    """One gymnasium env (not vectorized) for ``env_id``: a gymnasium id or ``dmc:domain-task``."""
    options = dict(options or {})
    if render_mode is not None:
        options["render_mode"] = render_mode
    if env_id.startswith("dmc:"):
        from envs.dmc import make_dmc

        return make_dmc(env_id[len("dmc:") :], **options)
    try:
        return gymnasium.make(env_id, **options)
    except gymnasium.error.Error as e:
        known = [k for k in gymnasium.registry if "/" not in k]
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise EnvError(f"cannot make env {env_id!r}: {e}{hint}") from None


def make_vec_env(
    env_id: str,
    num_envs: int = 1,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    vectorization: str = "sync",
    options: dict[str, Any] | None = None,
    wrappers: Sequence[Callable[[gymnasium.Env], gymnasium.Env]] = (),
    render_mode: str | None = None,
) -> VecEnv:
    """Build ``num_envs`` copies of ``env_id`` as a torch VecEnv on ``device``."""
    if env_id.startswith(tuple(MARL_ENV_PREFIXES)):  # vmas: / mpe: / lbf:, see envs.multiagent
        return make_marl_env(env_id, num_envs, device=device, seed=seed, **(options or {}))
    if env_id in NATIVE_ENVS:
        module, fn = NATIVE_ENVS[env_id].split(":")
        return getattr(importlib.import_module(module), fn)(
            num_envs=num_envs, device=device, seed=seed, **(options or {})
        )
    from envs.gym import GymVecEnv

    make_env(env_id, options).close()  # fail fast, in this process, with a clear error

    def factory(index: int) -> Callable[[], gymnasium.Env]:
        def build() -> gymnasium.Env:
            env = make_env(env_id, options, render_mode)
            for wrap in wrappers:
                env = wrap(env)
            return env

        return build

    return GymVecEnv([factory(i) for i in range(num_envs)], device=device, vectorization=vectorization)
