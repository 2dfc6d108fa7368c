"""Environments as torch VecEnvs: adapters for gymnasium and DeepMind Control, and the suite's own.

:func:`make_vec_env` is the one factory. Ids route by form:

* ``dmc:domain-task``  - DeepMind Control Suite (state-based), via :mod:`envs.dmc`;
* a name in :data:`NATIVE_ENVS` - the suite's own vectorized torch envs;
* ``vmas:SCENARIO``    - VMAS scenarios as multi-agent envs, via :mod:`envs.vmas_env`;
* ``mpe:SCENARIO``     - PettingZoo MPE (``mpe2``) as multi-agent envs, via :mod:`envs.pettingzoo_env`;
* ``lbf:Foraging-...`` - level-based foraging (``lbforaging``), via :mod:`envs.lbforaging_env`;
* ``traffic:grid``     - traffic-signal control on a SUMO grid (``traffic`` extra), via :mod:`envs.traffic`;
* anything else      - a gymnasium id (``Pendulum-v1``, ``Hopper-v5``).

``wrappers`` (callables or config dicts naming :data:`WRAPPERS`) are applied to every env: gymnasium-level
ones inside the vector adapter (the perturbations of :mod:`envs.perturb`, adversarial forces), torch-level
ones around the VecEnv.
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

__all__ = [
    "BoxSpec",
    "DiscreteSpec",
    "StepOut",
    "VecEnv",
    "make_env",
    "make_vec_env",
    "resolve_wrapper",
    "NATIVE_ENVS",
    "WRAPPERS",
    "EnvError",
]

# name -> "module:function"; the function takes (num_envs, device, seed, **options) -> VecEnv.
NATIVE_ENVS: dict[str, str] = {}
NATIVE_ENVS.update(MARL_ENVS)  # matrix games, predator-prey
NATIVE_ENVS["prompt"] = "envs.prompt_env:make_classification_env"  # few-shot classification prompts (prompt extra)


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


# Wrappers a config can name (``env.wrappers=[{"name": NAME, ...options}]``), so training, evaluation and
# ``--resume`` build the same env: name -> (level, "module:factory"). "gym" wrappers take one gymnasium
# env (applied inside the vector adapter, so gymnasium ids and dmc: only); "vec" wrappers take the torch
# VecEnv (any env). Options are the factory's keyword arguments.
WRAPPERS: dict[str, tuple[str, str]] = {
    "adversarial_force": ("gym", "envs.adversarial:AdversarialForce"),
    "temperature_observation": ("vec", "envs.adversarial:AlphaObservation"),
    "observation_noise": ("gym", "envs.perturb:ObservationNoise"),
    "action_noise": ("gym", "envs.perturb:ActionNoise"),
    "model_scaling": ("gym", "envs.perturb:ModelScaling"),
    "observation_noise_torch": ("vec", "envs.perturb_torch:ObservationNoiseVec"),
    "agent_mass": ("vec", "envs.perturb_torch:AgentMass"),
    "malicious_lights": ("vec", "envs.traffic.perturb:MaliciousLights"),
}

Wrapper = Callable[[Any], Any] | dict[str, Any]


def resolve_wrapper(spec: Wrapper) -> tuple[str, Callable[[Any], Any]]:
    """``(level, wrap)`` of a wrapper given as a callable (gym level) or a config dict naming one."""
    if callable(spec):
        return "gym", spec
    if not isinstance(spec, dict) or "name" not in spec:
        raise EnvError(f"an env wrapper is a dict with a 'name' (one of {', '.join(WRAPPERS)}), got {spec!r}")
    options = {k: v for k, v in spec.items() if k != "name"}
    name = spec["name"]
    if name not in WRAPPERS:
        close = difflib.get_close_matches(str(name), list(WRAPPERS), n=3, cutoff=0.4)
        raise EnvError(f"unknown env wrapper {name!r}; closest: {', '.join(close) or ', '.join(WRAPPERS)}")
    level, target = WRAPPERS[name]
    module, fn = target.split(":")
    factory = getattr(importlib.import_module(module), fn)
    return level, lambda env: factory(env, **options)


def make_vec_env(
    env_id: str,
    num_envs: int = 1,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    vectorization: str = "sync",
    options: dict[str, Any] | None = None,
    wrappers: Sequence[Wrapper] = (),
    render_mode: str | None = None,
) -> VecEnv:
    """Build ``num_envs`` copies of ``env_id`` as a torch VecEnv on ``device``.

    ``wrappers`` (callables on one gymnasium env, or config dicts naming :data:`WRAPPERS`) apply in
    order; a gymnasium-level wrapper on an env that is not a gymnasium env is refused, never dropped.
    """
    resolved = [resolve_wrapper(w) for w in wrappers]
    gym_wrappers = [wrap for level, wrap in resolved if level == "gym"]
    vec_wrappers = [wrap for level, wrap in resolved if level == "vec"]
    if env_id.startswith(tuple(MARL_ENV_PREFIXES)) or env_id in NATIVE_ENVS:
        if gym_wrappers:
            raise EnvError(f"{env_id} is not a gymnasium env: its wrappers must be VecEnv-level (torch) wrappers")
        if env_id in NATIVE_ENVS:
            module, fn = NATIVE_ENVS[env_id].split(":")
            env = getattr(importlib.import_module(module), fn)(
                num_envs=num_envs, device=device, seed=seed, **(options or {})
            )
        else:  # vmas: / mpe: / lbf:, see envs.multiagent
            env = make_marl_env(env_id, num_envs, device=device, seed=seed, **(options or {}))
    else:
        from envs.gym import GymVecEnv

        make_env(env_id, options).close()  # fail fast, in this process, with a clear error

        def factory(index: int) -> Callable[[], gymnasium.Env]:
            def build() -> gymnasium.Env:
                env = make_env(env_id, options, render_mode)
                for wrap in gym_wrappers:
                    env = wrap(env)
                return env

            return build

        env = GymVecEnv([factory(i) for i in range(num_envs)], device=device, vectorization=vectorization)
    for wrap in vec_wrappers:
        env = wrap(env)
    return env
