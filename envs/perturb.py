"""Test-time perturbations for robustness evaluation, as gymnasium wrappers.

Wrap the single gymnasium env *inside* the env factory (before the vector adapter), e.g.
``ModelScaling(ObservationNoise(make_dmc("cheetah-run"), sigma=0.1, seed=0), mass_scale=1.5)``.

- ``ObservationNoise(env, sigma, seed)``: i.i.d. Gaussian noise with std ``sigma`` (absolute units
  of the observation) added to every observation, including the one returned by ``reset``.
- ``ActionNoise(env, sigma, seed)``: Gaussian noise with std ``sigma`` in the canonical [-1, 1]
  action scale, i.e. ``sigma * (high - low) / 2`` in the env's native units, then clipped to the
  bounds. The vector adapter maps canonical actions to native ones before this wrapper sees them.
- ``ModelScaling(env, mass_scale, friction_scale)``: MuJoCo dynamics shift. Multiplies
  ``model.body_mass`` (all bodies, or the named ``bodies``) and the *sliding* friction column of
  ``model.geom_friction`` for every geom (column 0; ``friction_columns="all"`` also scales the
  torsional and rolling columns) by the factors, relative to the nominal values saved at wrap time.
  MuJoCo combines two geoms' friction with an element-wise max, so scaling every geom scales every
  contact's friction by the same factor. The values are rewritten before every ``reset``, so they
  survive anything that touched the model in between; ``set_scales`` changes them for the next
  episode and ``restore``/``close`` put the nominal values back. After writing, ``mj_setConst``
  recomputes the derived constants (``body_subtreemass``, used for centre-of-mass quantities, and
  the constraint solver's inverse weights), so a scaled model matches one compiled with those masses.
  Inertia tensors are left alone by default, as in RARL/QARL-style mass sweeps; pass
  ``scale_inertia=True`` to scale ``body_inertia`` with the mass (a uniform change of density).
- ``mujoco_model(env)``: the raw ``mujoco.MjModel`` behind an env (gymnasium MuJoCo envs and the
  suite's DMC envs), or None, so callers can say "not a MuJoCo env" clearly.

Noise generators are ``np.random.Generator`` seeded by the wrapper's ``seed``. ``reset(seed=s)``
reseeds them from ``(seed, s)``, so with the same episode seeds every evaluated policy meets the
same noise draws (as long as it takes the same number of steps). Zero ``sigma`` is an exact
identity and draws no numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np


def mujoco_model(env: gym.Env) -> Any | None:
    """Return the ``mujoco.MjModel`` simulated by ``env`` (through any wrappers), or None.

    Recognises ``env.unwrapped.mujoco_model`` (``envs.dmc.DMCEnv``) and ``env.unwrapped.model``
    (gymnasium's MuJoCo envs). The model is shared with the simulation: in-place writes take effect.
    """
    base = env.unwrapped
    candidate = getattr(base, "mujoco_model", None)
    if candidate is None:
        candidate = getattr(base, "model", None)
    candidate = getattr(candidate, "ptr", candidate)  # dm_control's MjModel wrapper holds the raw one
    if candidate is None or not type(candidate).__module__.startswith("mujoco"):
        return None
    if not (hasattr(candidate, "body_mass") and hasattr(candidate, "geom_friction")):
        return None
    return candidate


def _reseeded(base_seed: int | None, episode_seed: int) -> np.random.Generator:
    """A generator that depends on both the wrapper's seed and the episode seed."""
    entropy = [episode_seed] if base_seed is None else [base_seed, episode_seed]
    return np.random.default_rng(entropy)


class ObservationNoise(gym.ObservationWrapper):
    """Add ``N(0, sigma^2)`` noise to every observation of a Box observation space."""

    def __init__(self, env: gym.Env, sigma: float | Sequence[float] | np.ndarray, seed: int | None = None):
        super().__init__(env)
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise TypeError(f"ObservationNoise needs a Box observation space, got {env.observation_space}.")
        self.sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), env.observation_space.shape).copy()
        if np.any(self.sigma < 0):
            raise ValueError(f"sigma must be >= 0, got {sigma}.")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # Noise can push values outside finite bounds; the space is widened so checkers accept them.
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=env.observation_space.shape, dtype=env.observation_space.dtype
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.rng = _reseeded(self.seed, seed)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if not np.any(self.sigma):
            return observation
        noise = self.rng.normal(0.0, 1.0, size=np.shape(observation)) * self.sigma
        return (observation + noise).astype(self.observation_space.dtype, copy=False)


class ActionNoise(gym.ActionWrapper):
    """Add Gaussian noise with std ``sigma`` in canonical [-1, 1] units to Box actions, then clip."""

    def __init__(self, env: gym.Env, sigma: float | Sequence[float] | np.ndarray, seed: int | None = None):
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"ActionNoise needs a Box action space, got {space}.")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError("ActionNoise needs finite action bounds to define the canonical scale.")
        self.sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), space.shape).copy()
        if np.any(self.sigma < 0):
            raise ValueError(f"sigma must be >= 0, got {sigma}.")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._low = space.low.astype(np.float64)
        self._high = space.high.astype(np.float64)
        self._native_sigma = self.sigma * (self._high - self._low) / 2.0  # canonical -> native units

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.rng = _reseeded(self.seed, seed)
        return super().reset(seed=seed, options=options)

    def action(self, action: np.ndarray) -> np.ndarray:
        if not np.any(self.sigma):
            return action
        action = np.asarray(action, dtype=np.float64)
        noisy = action + self.rng.normal(0.0, 1.0, size=action.shape) * self._native_sigma
        return np.clip(noisy, self._low, self._high).astype(self.action_space.dtype)


class ModelScaling(gym.Wrapper):
    """Scale body masses and geom friction of a MuJoCo env relative to the values at wrap time."""

    def __init__(
        self,
        env: gym.Env,
        mass_scale: float = 1.0,
        friction_scale: float = 1.0,
        *,
        bodies: Sequence[str] | None = None,
        friction_columns: str = "sliding",
        scale_inertia: bool = False,
    ):
        """
        Args:
            mass_scale: factor on ``body_mass`` of ``bodies`` (default: every body).
            friction_scale: factor on ``geom_friction`` of every geom.
            bodies: body names to scale (e.g. ``["torso"]``); None scales all bodies.
            friction_columns: ``"sliding"`` (column 0, the tangential friction that RARL/QARL vary)
                or ``"all"`` (sliding, torsional and rolling).
            scale_inertia: also scale ``body_inertia`` of the same bodies by ``mass_scale``.
        """
        super().__init__(env)
        model = mujoco_model(env)
        if model is None:
            raise TypeError(
                f"ModelScaling needs a MuJoCo env (gymnasium MuJoCo or envs.dmc), got {env.unwrapped!r}; "
                "envs.perturb.mujoco_model(env) returned None."
            )
        if friction_columns not in ("sliding", "all"):
            raise ValueError(f"friction_columns must be 'sliding' or 'all', got {friction_columns!r}.")
        self.model = model
        self.friction_columns = friction_columns
        self.scale_inertia = scale_inertia
        # Nominal values: whatever the model holds now, copied so later writes cannot alias them.
        self.nominal_body_mass = model.body_mass.copy()
        self.nominal_body_inertia = model.body_inertia.copy()
        self.nominal_geom_friction = model.geom_friction.copy()
        if bodies is None:
            self.body_ids = np.arange(model.nbody)
        else:
            self.body_ids = np.array([self._body_id(name) for name in bodies], dtype=np.int64)
        self.set_scales(mass_scale, friction_scale)

    def _body_id(self, name: str) -> int:
        import mujoco

        body_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if body_id < 0:
            names = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(self.model.nbody)]
            raise ValueError(f"No body named {name!r}; bodies: {names}.")
        return body_id

    def set_scales(self, mass_scale: float, friction_scale: float) -> None:
        """Set new factors and write them to the model now (they hold from the next step on)."""
        if mass_scale <= 0 or friction_scale < 0:
            raise ValueError(f"Need mass_scale > 0 and friction_scale >= 0, got {mass_scale}, {friction_scale}.")
        self.mass_scale = float(mass_scale)
        self.friction_scale = float(friction_scale)
        self._write(self.mass_scale, self.friction_scale)

    def _write(self, mass_scale: float, friction_scale: float) -> None:
        import mujoco

        model = self.model
        # Always start from the nominal arrays, so factors never compound across resets.
        body_mass = self.nominal_body_mass.copy()
        body_mass[self.body_ids] *= mass_scale
        model.body_mass[:] = body_mass
        body_inertia = self.nominal_body_inertia.copy()
        if self.scale_inertia:
            body_inertia[self.body_ids] *= mass_scale
        model.body_inertia[:] = body_inertia
        geom_friction = self.nominal_geom_friction.copy()
        if self.friction_columns == "sliding":
            geom_friction[:, 0] *= friction_scale
        else:
            geom_friction *= friction_scale
        model.geom_friction[:] = geom_friction
        # Recompute derived constants (subtree masses, inverse weights) on scratch data, so the
        # env's own MjData (its current state) is left untouched.
        mujoco.mj_setConst(model, mujoco.MjData(model))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._write(self.mass_scale, self.friction_scale)
        return super().reset(seed=seed, options=options)

    def restore(self) -> None:
        """Write the nominal values back (the wrapper stays usable; the next reset re-applies)."""
        self._write(1.0, 1.0)

    def close(self) -> None:
        self.restore()
        super().close()
