"""gymnasium vector envs as a torch :class:`~envs.base.VecEnv`.

Steps N envs in this process (:class:`SyncEnvs`) or with ``gymnasium.vector.AsyncVectorEnv`` (a
worker process per env), both in same-step autoreset mode, so ``step`` returns the next episode's
first observation where an episode ended and the true last observation in ``final_obs``. Box
actions are canonical in [-1, 1] and rescaled here to the env's bounds; observations become float32
tensors on ``device``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut


def space_to_spec(space: gym.Space, *, canonical: bool) -> BoxSpec | DiscreteSpec:
    """gymnasium space -> suite spec. ``canonical`` reports Box bounds as [-1, 1] (actions)."""
    if isinstance(space, gym.spaces.Discrete):
        return DiscreteSpec(n=int(space.n))
    if isinstance(space, gym.spaces.Box):
        if canonical:
            return BoxSpec(shape=tuple(space.shape))
        return BoxSpec(
            shape=tuple(space.shape), low=tuple(map(float, space.low.flat)), high=tuple(map(float, space.high.flat))
        )
    raise TypeError(f"unsupported gymnasium space {space}; the suite handles Box and Discrete")


class SyncEnvs:
    """N envs stepped in turn, same-step autoreset: gymnasium's ``SyncVectorEnv`` without its info
    merging and deep copies, which cost more than a MuJoCo step and are never read here.

    Seeding matches gymnasium's: ``reset(seed)`` seeds env i with ``seed + i``; autoresets are unseeded.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]):
        self.envs = [fn() for fn in env_fns]
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space

    def reset(self, seed: int | None = None) -> np.ndarray:
        return np.stack([env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(self.envs)])

    def step(self, actions: np.ndarray):
        """``(obs [N, ...], reward [N], terminated [N], truncated [N], final_obs {env index: obs})``."""
        n = len(self.envs)
        obs, final_obs = [], {}
        reward, terminated, truncated = np.empty(n), np.empty(n, dtype=bool), np.empty(n, dtype=bool)
        for i, env in enumerate(self.envs):
            ob, reward[i], terminated[i], truncated[i], _ = env.step(actions[i])
            if terminated[i] or truncated[i]:
                final_obs[i] = ob
                ob, _ = env.reset()
            obs.append(ob)
        return np.stack(obs), reward, terminated, truncated, final_obs

    def render(self):
        return tuple(env.render() for env in self.envs)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class AsyncEnvs:
    """``gymnasium.vector.AsyncVectorEnv`` (same-step autoreset) with :class:`SyncEnvs`' interface."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]):
        self.vec = gym.vector.AsyncVectorEnv(list(env_fns), autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.vec.reset(seed=seed)[0]  # gymnasium seeds env i with seed + i

    def step(self, actions: np.ndarray):
        obs, reward, terminated, truncated, info = self.vec.step(actions)
        done = np.flatnonzero(np.logical_or(terminated, truncated))
        # info["final_obs"] is an object array, set only where an episode ended.
        return obs, reward, terminated, truncated, {int(i): info["final_obs"][i] for i in done}

    def render(self):
        return self.vec.render()

    def close(self) -> None:
        self.vec.close()


class GymVecEnv:
    """N gymnasium envs behind the torch VecEnv protocol (see envs/base.py)."""

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        device: torch.device | str = "cpu",
        vectorization: str = "sync",
    ):
        if vectorization not in ("sync", "async"):
            raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
        self.vec = SyncEnvs(env_fns) if vectorization == "sync" else AsyncEnvs(env_fns)
        self.num_envs = len(env_fns)
        self.device = torch.device(device)
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        self.obs_spec = space_to_spec(self.single_observation_space, canonical=False)
        self.action_spec = space_to_spec(self.single_action_space, canonical=True)
        if isinstance(self.single_action_space, gym.spaces.Box):
            low, high = self.single_action_space.low, self.single_action_space.high
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise ValueError("Box action spaces must be bounded to map the canonical [-1, 1] range")
            self._action_center = ((high + low) / 2).astype(np.float64)
            self._action_scale = ((high - low) / 2).astype(np.float64)
            self.action_spec = dataclasses.replace(
                self.action_spec,
                native_low=tuple(float(x) for x in low.reshape(-1)),
                native_high=tuple(float(x) for x in high.reshape(-1)),
            )

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        return self._to_tensor(self.vec.reset(seed=seed))

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        """Canonical tensor action -> the numpy action gymnasium expects."""
        array = action.detach().cpu().numpy()
        if isinstance(self.single_action_space, gym.spaces.Box):
            # np.minimum/np.maximum: same result as np.clip at a fraction of its dispatch cost.
            return self._action_center + self._action_scale * np.minimum(np.maximum(array, -1.0), 1.0)
        return array.astype(np.int64)

    def step(self, action: torch.Tensor) -> StepOut:
        obs, reward, terminated, truncated, finished = self.vec.step(self.env_action(action))
        episode_ended = bool(finished)
        obs_tensor = self._to_tensor(obs)
        final_obs_tensor = obs_tensor  # read-only downstream, so sharing is safe
        if episode_ended:
            final_obs = obs.copy()
            for i, last in finished.items():
                final_obs[i] = last
            final_obs_tensor = self._to_tensor(final_obs)
        return StepOut(
            obs=obs_tensor,
            reward=self._to_tensor(reward),
            terminated=torch.as_tensor(terminated, device=self.device),
            truncated=torch.as_tensor(truncated, device=self.device),
            final_obs=final_obs_tensor,
            # Known on the host for free here; lets episode bookkeeping skip its scatter.
            info={"episode_ended": episode_ended},
        )

    # ---- exact resume: the simulator state of every env (sync vectorization only) -------------

    def state_dict(self) -> dict | None:
        """Per-env simulator state, or None where it cannot be captured (async workers).

        Captured for each layer of every env's wrapper chain: numpy arrays, numbers and numpy
        Generators among its attributes; for MuJoCo envs also ``mj_getState(mjSTATE_INTEGRATION)``
        (positions, velocities, warm-start, time), so a resumed run steps exactly as it would have.
        """
        if not isinstance(self.vec, SyncEnvs):
            return None
        return {"envs": [_capture_env(env) for env in self.vec.envs]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["envs"]) != self.num_envs:
            raise ValueError(f"saved env state has {len(state['envs'])} envs, this run has {self.num_envs}")
        for env, env_state in zip(self.vec.envs, state["envs"]):
            _restore_env(env, env_state)

    def render(self):
        return self.vec.render()

    def close(self) -> None:
        self.vec.close()


_PRIMITIVES = (bool, int, float, np.integer, np.floating)


def _layers(env: gym.Env) -> list:
    chain = [env]
    while hasattr(chain[-1], "env"):
        chain.append(chain[-1].env)
    return chain


def _capture_env(env: gym.Env) -> list[dict]:
    out = []
    for layer in _layers(env):
        saved: dict = {}
        for name, value in vars(layer).items():
            if isinstance(value, np.ndarray) and value.dtype != object:
                saved[name] = torch.from_numpy(value.copy())
            elif isinstance(value, _PRIMITIVES):
                saved[name] = value.item() if isinstance(value, np.generic) else value
            elif isinstance(value, np.random.Generator):
                saved[name] = {"__generator__": value.bit_generator.state}
        if hasattr(layer, "get_env_state"):  # envs that know their own state (DeepMind Control)
            saved["__env_state__"] = {
                k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
                for k, v in layer.get_env_state().items()
            }
        model, data = getattr(layer, "model", None), getattr(layer, "data", None)
        if model is not None and data is not None and type(data).__name__ == "MjData":
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            buffer = np.empty(mujoco.mj_stateSize(model, spec))
            mujoco.mj_getState(model, data, buffer, spec)
            saved["__mujoco_state__"] = torch.from_numpy(buffer)
        out.append(saved)
    return out


def _restore_env(env: gym.Env, layers_state: list[dict]) -> None:
    layers = _layers(env)
    if len(layers) != len(layers_state):
        raise ValueError("saved env state does not match this env's wrapper chain")
    for layer, saved in zip(layers, layers_state):
        for name, value in saved.items():
            if name == "__env_state__":
                layer.set_env_state(value)
            elif name == "__mujoco_state__":
                import mujoco

                mujoco.mj_setState(layer.model, layer.data, value.numpy(), mujoco.mjtState.mjSTATE_INTEGRATION)
                mujoco.mj_forward(layer.model, layer.data)
            elif isinstance(value, dict) and "__generator__" in value:
                state = value["__generator__"]
                generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
                generator.bit_generator.state = state
                setattr(layer, name, generator)
            elif isinstance(value, torch.Tensor):
                setattr(layer, name, value.numpy().copy())
            else:
                setattr(layer, name, value)
