"""Perturbations as torch-level VecEnv wrappers: they work on any VecEnv (multi-agent ones included), on its device.

The gymnasium-level wrappers of :mod:`envs.perturb` only fit gymnasium ids; these wrap the suite's ``VecEnv``
itself, so they also apply to the multi-agent adapters (obs ``[N, agents, D]``). Used by ``evaluate.py`` for
multi-agent runs and nameable in configs (``envs.WRAPPERS``: ``observation_noise_torch``, ``agent_mass``).

* :class:`ObservationNoiseVec` - o' = o + sigma * eps, eps ~ N(0, I) i.i.d. per env, agent, step and feature (the
  observation-noise evaluation of ERNIE, Bukharin et al., NeurIPS 2023, arXiv:2310.10810), drawn from the wrapper's
  own generator, re-seeded from (seed, episode seed) at every seeded reset: two policies evaluated with the same
  seeds see the same noise on the same episodes.
* :class:`AgentMass` - every MPE agent's mass scaled (``world.agents[i].initial_mass``; nominal 1), a dynamics shift.

Deviations from the reference: none in the math. Noise touches only the observation the agent acts on
(``obs``); ``final_obs`` (the last observation of a finished episode, which no policy acts on) stays clean. Padding
of agents with shorter observations (the adapter's zero columns past ``obs_dims[i]``) is not perturbed.
"""

from __future__ import annotations

from typing import Any

import torch

from envs.base import StepOut


class VecEnvWrapper:
    """Base: forwards every attribute it does not define to the wrapped VecEnv."""

    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not set yet (during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        return self.env.reset(seed=seed)

    def step(self, action: torch.Tensor) -> StepOut:
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()


def _padding_mask(env: Any) -> torch.Tensor | None:
    """``[agents, D]`` float mask of each agent's own observation features (None: no padding to skip)."""
    dims = getattr(env, "obs_dims", None)
    shape = tuple(env.obs_spec.shape)
    if dims is None or len(shape) != 2 or all(d == shape[1] for d in dims):
        return None
    columns = torch.arange(shape[1], device=env.device)
    return (columns[None, :] < torch.tensor(list(dims), device=env.device)[:, None]).float()


class ObservationNoiseVec(VecEnvWrapper):
    """Gaussian observation noise with std ``sigma`` (observation units) on every observation the agents act on.

    ``obs [N, ...] -> obs + sigma * eps`` (eps ``[N, ...]`` standard normal from the wrapper's generator). ``seed``
    (with the episode seed of ``reset(seed=s)``) fixes the noise stream; sigma 0 returns the env's tensors unchanged.
    """

    def __init__(self, env: Any, sigma: float, seed: int | None = None):
        super().__init__(env)
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma, self.seed = float(sigma), seed
        self.generator = torch.Generator(device=env.device)
        self.generator.manual_seed(0 if seed is None else int(seed))
        self.mask = _padding_mask(env)

    def _noisy(self, obs: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0:
            return obs
        noise = torch.randn(obs.shape, generator=self.generator, device=obs.device, dtype=obs.dtype) * self.sigma
        return obs + (noise if self.mask is None else noise * self.mask)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:  # the same (wrapper seed, episode seed) pair gives the same noise
            self.generator.manual_seed((0 if self.seed is None else int(self.seed)) * 1_000_003 + int(seed))
        return self._noisy(self.env.reset(seed=seed))

    def step(self, action: torch.Tensor) -> StepOut:
        out = self.env.step(action)
        return out._replace(obs=self._noisy(out.obs))


def mpe_worlds(env: Any) -> list[Any]:
    """The ``world`` object of every copy of an MPE (``mpe2``) VecEnv; ValueError when ``env`` is not one."""
    copies = getattr(env, "copies", None)
    worlds = [getattr(getattr(getattr(c, "env", None), "unwrapped", None), "world", None) for c in copies or []]
    if not worlds or any(w is None or not hasattr(w, "agents") for w in worlds):
        raise ValueError(f"agent mass needs an MPE env (mpe:SCENARIO); {getattr(env, 'name', env)!r} is not one")
    return worlds


def agent_mass_slots(env: Any) -> list[list[tuple[Any, str]]]:
    """Where each agent's mass lives, per simulated world: ``[(object, attribute), ...]`` in agent order.

    A VMAS env (one batched world) keeps it in ``agent.mass``; an MPE VecEnv has one world per copy, each
    agent's in ``initial_mass``. ValueError for any other env.
    """
    simulator = getattr(env, "_env", None)  # envs.vmas_env.VmasEnv holds the vmas Environment here
    agents = getattr(simulator, "agents", None)
    if agents and all(hasattr(a, "mass") for a in agents):
        return [[(agent, "mass") for agent in agents]]
    try:
        return [[(agent, "initial_mass") for agent in world.agents] for world in mpe_worlds(env)]
    except ValueError:
        raise ValueError(
            f"agent mass needs an MPE (mpe:SCENARIO) or VMAS (vmas:SCENARIO) env; {getattr(env, 'name', env)!r} "
            "is neither"
        ) from None


class AgentMass(VecEnvWrapper):
    """Every agent's mass times ``scale`` (or only the agents at ``agents``, indices in the env's agent order).

    MPE and VMAS integrate v += F / m dt, so a heavier agent accelerates less for the same action. The mass is
    set once (on every copy's world for MPE, on VMAS's batched world) and survives resets (neither resets masses).
    """

    def __init__(self, env: Any, scale: float, agents: list[int] | None = None):
        super().__init__(env)
        if not scale > 0:
            raise ValueError(f"mass scale must be > 0, got {scale}")
        self.scale = float(scale)
        for slots in agent_mass_slots(env):
            chosen = range(len(slots)) if agents is None else agents
            for index in chosen:
                holder, name = slots[index]
                setattr(holder, name, getattr(holder, name) * self.scale)
