"""DeepMind Control Suite state-based tasks as ``gymnasium.Env`` classes.

``make_dmc("cheetah-run")`` returns a plain gymnasium env, so the gymnasium vector adapter and every
single-agent algorithm use DMC like any other gymnasium task (the env factory routes ids that begin
with ``dmc:`` here). This replaces ``dmc2gym`` (not on PyPI) with the same conventions:

- observation: the task's observation dict flattened to one float32 vector, concatenating the
  entries in the task's own (ordered) ``observation_spec`` order, scalars as one element;
- action: a Box with the task's native bounds (``[-1, 1]`` for every suite task), frame skip 1;
- episodes: dm_control's own time limit, 1000 control steps for every task in ``DMC_TASKS``. A
  time-limit end is ``truncated=True``; ``terminated`` is True only if the task returns discount 0,
  which no task in ``DMC_TASKS`` ever does (so agents bootstrap through every episode end);
- seeding: ``reset(seed=s)`` replaces the task's ``RandomState`` (initial states, targets) with
  ``np.random.RandomState(s)``; ``reset()`` without a seed continues the current stream;
- rendering: ``render()`` returns an ``[H, W, 3]`` uint8 frame from ``physics.render`` (render mode
  ``rgb_array`` only). Headless machines need OSMesa, see ``envs/video.py``; dm_control is imported
  on first use, after ``configure_headless_gl`` selected OSMesa (when ``MUJOCO_GL`` is unset).

``DMCEnv.mujoco_model`` is the raw ``mujoco.MjModel`` (shared with the simulation, so writes take
effect), used by ``envs.perturb.ModelScaling``; ``DMCEnv.physics`` gives dm_control's named access
(``env.unwrapped.physics.named.model.body_mass["torso"]``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.video import configure_headless_gl


def _suite() -> Any:
    """Import ``dm_control.suite`` on first use, after choosing the OpenGL backend.

    dm_control picks its backend when it is imported, so the choice must come first (see
    envs/video.py); importing lazily also keeps ``import envs.dmc`` cheap (dm_control takes ~2 s).
    """
    configure_headless_gl()
    from dm_control import suite

    return suite


# The 26 state-based tasks of the ERC paper (He et al. 2023, Section 5.1).
DMC_TASKS: tuple[str, ...] = (
    "acrobot-swingup",
    "ball_in_cup-catch",
    "cartpole-balance",
    "cartpole-balance_sparse",
    "cartpole-swingup",
    "cartpole-swingup_sparse",
    "cheetah-run",
    "finger-spin",
    "finger-turn_easy",
    "finger-turn_hard",
    "fish-upright",
    "fish-swim",
    "hopper-stand",
    "hopper-hop",
    "humanoid-stand",
    "humanoid-walk",
    "humanoid-run",
    "pendulum-swingup",
    "point_mass-easy",
    "reacher-easy",
    "reacher-hard",
    "swimmer-swimmer6",
    "swimmer-swimmer15",
    "walker-stand",
    "walker-walk",
    "walker-run",
)


# Model fields that suite tasks rewrite in initialize_episode (targets, their size, colour and light,
# finger's hinge damping, point_mass's randomised gains), so they are part of the episode state.
_TASK_MUTABLE_MODEL_FIELDS = (
    "geom_pos",
    "geom_size",
    "geom_rgba",
    "site_pos",
    "site_size",
    "site_rgba",
    "dof_damping",
    "actuator_gear",
    "light_pos",
)


def split_task_name(name: str) -> tuple[str, str]:
    """``"ball_in_cup-catch"`` -> ``("ball_in_cup", "catch")``; a leading ``dmc:`` is accepted.

    Domain and task names use underscores, never dashes, so the first dash separates them.
    """
    name = name.removeprefix("dmc:")
    domain, dash, task = name.partition("-")
    if not dash or not domain or not task:
        raise ValueError(f"DMC task names look like 'domain-task' (e.g. 'cheetah-run'), got {name!r}.")
    all_tasks = _suite().ALL_TASKS
    if (domain, task) not in all_tasks:
        known = ", ".join(sorted(f"{d}-{t}" for d, t in all_tasks))
        raise ValueError(f"Unknown DMC task {name!r}. Known tasks: {known}.")
    return domain, task


class DMCEnv(gym.Env):
    """One dm_control suite task behind the gymnasium API (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        render_mode: str | None = "rgb_array",
        render_height: int = 240,
        render_width: int = 320,
        camera_id: int = 0,
        task_kwargs: dict[str, Any] | None = None,
        environment_kwargs: dict[str, Any] | None = None,
    ):
        """Build ``suite.load(domain, task)``.

        ``task_kwargs`` go to the task constructor (e.g. ``{"time_limit": 5.0}`` in seconds,
        ``{"random": 0}`` for a seed before the first reset; a seeded ``reset`` replaces it) and
        ``environment_kwargs`` to ``control.Environment`` (e.g. ``{"flat_observation": False}``). Rendering is
        lazy, so the default ``render_mode="rgb_array"`` costs nothing until ``render()`` is called.
        """
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"DMC envs only support render_mode='rgb_array', got {render_mode!r}.")
        self.domain, self.task = domain, task
        self.render_mode = render_mode
        self.render_height, self.render_width, self.camera_id = render_height, render_width, camera_id
        self._env = _suite().load(
            domain, task, task_kwargs=dict(task_kwargs or {}), environment_kwargs=environment_kwargs
        )

        self._obs_keys = tuple(self._env.observation_spec().keys())  # OrderedDict: a fixed order
        obs_dim = sum(int(np.prod(spec.shape)) for spec in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        action_spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(
            low=action_spec.minimum.astype(np.float32),
            high=action_spec.maximum.astype(np.float32),
            shape=action_spec.shape,
            dtype=np.float32,
        )
        # Per-instance metadata: the frame rate of a video is the task's control rate.
        self.metadata = {**type(self).metadata, "render_fps": round(1.0 / self._env.control_timestep())}

    # ---------------------------------------------------------------- accessors
    @property
    def physics(self) -> Any:
        """dm_control's ``Physics`` (named indexing: ``physics.named.model.body_mass["torso"]``)."""
        return self._env.physics

    @property
    def mujoco_model(self) -> Any:
        """The raw ``mujoco.MjModel`` of the simulation; in-place writes change the dynamics."""
        return self._env.physics.model.ptr

    @property
    def mujoco_data(self) -> Any:
        """The raw ``mujoco.MjData`` of the simulation."""
        return self._env.physics.data.ptr

    @property
    def max_episode_steps(self) -> int:
        """Control steps per episode: dm_control truncates once its step count reaches
        time_limit / control_timestep, so a quotient like 15.000000000000002 means 16 steps."""
        return math.ceil(self._env._step_limit)

    @property
    def dm_env(self) -> Any:
        """The wrapped ``dm_control.rl.control.Environment``."""
        return self._env

    # ---------------------------------------------------------------- gymnasium API
    def _flatten(self, observation: dict[str, Any]) -> np.ndarray:
        parts = [np.asarray(observation[key], dtype=np.float32).ravel() for key in self._obs_keys]
        return np.concatenate(parts)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``seed`` reseeds the task's random state (initial state, targets)."""
        super().reset(seed=seed)
        if seed is not None:
            # The task draws initial states and targets from this RandomState (what
            # task_kwargs={"random": seed} would set at construction); replacing it reseeds in place.
            self._env.task._random = np.random.RandomState(seed)
        time_step = self._env.reset()
        return self._flatten(time_step.observation), {}

    def step(self, action: Any):
        """Apply one action (clipped to the bounds) for one control step."""
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        time_step = self._env.step(action)
        reward = float(time_step.reward or 0.0)
        terminated = False
        truncated = False
        if time_step.last():
            # dm_control signals a true terminal state with discount 0; a time-limit end keeps 1.
            terminated = time_step.discount == 0.0
            truncated = not terminated
        return self._flatten(time_step.observation), reward, terminated, truncated, {}

    def render(self) -> np.ndarray | None:
        """An ``[render_height, render_width, 3]`` uint8 frame, or None without a render mode."""
        if self.render_mode is None:
            return None
        return self._env.physics.render(height=self.render_height, width=self.render_width, camera_id=self.camera_id)

    # ---------------------------------------------------------------- exact resume
    def get_env_state(self) -> dict[str, Any]:
        """Everything that decides the rest of this episode and the next resets, as numpy / numbers.

        Physics (``mj_getState`` with ``mjSTATE_INTEGRATION``: time, qpos, qvel, act, warm start,
        controls, applied forces), the model fields that tasks rewrite in ``initialize_episode``
        (targets such as reacher's ``geom_pos``), dm_control's step counter, and the task's
        ``RandomState``. ``set_env_state`` on a fresh env of the same task continues bit for bit.
        Body masses and friction are not included: ``envs.perturb.ModelScaling`` owns those.
        """
        import mujoco

        model, data = self.mujoco_model, self.mujoco_data
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics_state = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, physics_state, spec)
        _, keys, position, has_gauss, cached_gaussian = self._env.task.random.get_state()
        state: dict[str, Any] = {
            "physics": physics_state,
            "step_count": int(self._env._step_count),
            "reset_next_step": bool(self._env._reset_next_step),
            "random_keys": np.array(keys, dtype=np.uint32),
            "random_position": int(position),
            "random_has_gauss": int(has_gauss),
            "random_cached_gaussian": float(cached_gaussian),
        }
        for field in _TASK_MUTABLE_MODEL_FIELDS:
            state[f"model.{field}"] = getattr(model, field).copy()
        return state

    def set_env_state(self, state: dict[str, Any]) -> None:
        """Restore a ``get_env_state`` result (arrays may also be CPU torch tensors)."""
        import mujoco

        def array(value: Any) -> np.ndarray:
            return np.asarray(value.numpy() if hasattr(value, "numpy") else value)

        model, data = self.mujoco_model, self.mujoco_data
        for field in _TASK_MUTABLE_MODEL_FIELDS:
            getattr(model, field)[:] = array(state[f"model.{field}"])
        mujoco.mj_setState(model, data, array(state["physics"]), mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(model, data)  # recompute positions, contacts and sensors from the state
        self._env._step_count = int(state["step_count"])
        self._env._reset_next_step = bool(state["reset_next_step"])
        random = np.random.RandomState()
        random.set_state(
            (
                "MT19937",
                array(state["random_keys"]).astype(np.uint32),
                int(state["random_position"]),
                int(state["random_has_gauss"]),
                float(state["random_cached_gaussian"]),
            )
        )
        self._env.task._random = random

    def close(self) -> None:
        """Free the OpenGL contexts now, rather than in dm_control's noisy interpreter-exit hook."""
        # Only the rendering contexts are freed (not physics.free(), which also deletes the MjData),
        # so the env and a perturbation wrapper can still touch the model after close().
        physics = self._env.physics
        with physics._contexts_lock:
            if physics._contexts:
                physics._free_rendering_contexts()

    def __repr__(self) -> str:
        return f"DMCEnv({self.domain}-{self.task})"


def make_dmc(name: str, **kwargs: Any) -> DMCEnv:
    """Build a DMC task from ``"domain-task"`` (``"cheetah-run"``; a ``"dmc:"`` prefix is accepted).

    Keyword arguments go to ``DMCEnv`` (``render_mode``, ``render_height``, ``render_width``,
    ``camera_id``, ``task_kwargs``, ``environment_kwargs``). Seed through ``env.reset(seed=...)``.
    """
    domain, task = split_task_name(name)
    return DMCEnv(domain, task, **kwargs)
