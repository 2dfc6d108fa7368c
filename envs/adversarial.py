"""Two-player MuJoCo tasks for adversarial RL: an adversary pushes chosen bodies with external forces.

Paper: Reddi, Tölle, Peters, Chalvatzaki, D'Eramo, "Robust Adversarial Reinforcement Learning via
Bounded Rationality Curricula" (QARL), ICLR 2024 (arXiv:2311.01642); the force placements follow
Pinto, Davidson, Sukthankar, Gupta, "Robust Adversarial Reinforcement Learning" (RARL), ICML 2017
(arXiv:1703.02702).

- :class:`AdversarialForce` (a ``gymnasium.Wrapper`` for gymnasium's MuJoCo v5 envs and the suite's
  DeepMind Control envs) takes the joint action ``[protagonist action, adversary force]``. The
  protagonist part has the env's own bounds; the force part has ``adversary_dim`` components in
  newtons within ``[-force_limit, force_limit]``, so the suite's vector adapter maps the canonical
  [-1, 1] range onto both (the adversary's policy, its entropy included, lives in [-1, 1]; only the
  scale is in newtons). Before every step the whole ``data.xfrc_applied`` array is zeroed and the
  clipped force components are written into the rows of the chosen bodies (world frame, columns
  fx, fy, fz, tx, ty, tz); they act for every physics substep of that control step. Reset zeroes the
  array. A zero adversary is the action 0 in the canonical scale (the force box is symmetric).
- :data:`FORCE_PLACEMENTS` maps a task id to its bodies, force components, default force limit,
  temperature scale c (the teacher's Gamma rate is 1000 / c: temperatures are relative to the reward
  per step) and performance floor xi.
- :class:`AlphaObservation` (a torch VecEnv wrapper) appends each env's per-episode adversary
  temperature alpha to the observation as one extra column, replaying a given list of temperatures
  in order across resets and autoresets (the list a teacher drew for a training phase is replayed in
  the next phase), and reports the alpha of every stepped transition in ``info["temperature"]``.

Deviations from the reference: the authors port DeepMind Control tasks into two-player games with
their own env classes; here one wrapper serves gymnasium and DMC envs alike. Their adversary outputs
[-1, 1] and scales by F_max inside the env; here the scaling is the vector adapter's, with the same
result. The gymnasium force limits (5 N per component, RARL's default) are provisional: the DMC defaults do
not carry over (other bodies and units), and F_max should be calibrated per task (the smallest force
at which a learned adversary cuts a trained SAC protagonist's return by 30-60 %), not done yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.base import BoxSpec, StepOut, VecEnv
from envs.perturb import mujoco_model

# Columns of MjData.xfrc_applied: a Cartesian force then a torque, both in the world frame.
COMPONENTS: dict[str, int] = {"fx": 0, "fy": 1, "fz": 2, "tx": 3, "ty": 4, "tz": 5}


@dataclass(frozen=True)
class ForcePlacement:
    """Where the adversary pushes on one task, and the curriculum's scale for that task."""

    bodies: tuple[str, ...]  # MuJoCo body names
    components: tuple[str, ...]  # xfrc_applied columns written for every body (keys of COMPONENTS)
    force_limit: float  # default F_max per component (newtons; newton-metres for torques)
    temperature_scale: float  # c: typical reward per step of a competent policy; teacher rate = 1000 / c
    threshold: float  # performance floor xi of the teacher, in discounted-return units (gamma 0.99)


_FX_FZ = ("fx", "fz")

# Sources. gymnasium: placements follow RARL's env variants (pendulum pole, hopper foot, cheetah torso and
# both feet, walker both feet; 2-D forces in the x-z plane). The force limit is RARL's 5 N per component,
# provisional until calibrated against a trained protagonist. Temperature scales are our choice, a typical
# reward per step of a competent policy (InvertedPendulum 1, Hopper 3, HalfCheetah 6, Walker2d 3 like
# Hopper), so that alpha keeps the same size relative to the reward as in the paper's DMC tasks; floors are
# ours too, about 10-15 % of the best discounted return at gamma 0.99 and above a random policy's
# (50, 35, 80, 35). InvertedDoublePendulum-v5 (not in RARL): the top pole, like the single pendulum's pole;
# about 9.3 reward per step when balanced (alive bonus 10 less the distance and velocity penalties), so c = 9
# and xi = 100 (the best discounted return is about 930). DeepMind Control: the authors' code defaults
# (placement, force limit per component, floor per task); DMC rewards lie in [0, 1] per step, hence c = 1.
FORCE_PLACEMENTS: dict[str, ForcePlacement] = {
    "InvertedPendulum-v5": ForcePlacement(("pole",), _FX_FZ, 5.0, 1.0, 50.0),
    "InvertedDoublePendulum-v5": ForcePlacement(("pole2",), _FX_FZ, 5.0, 9.0, 100.0),
    "Hopper-v5": ForcePlacement(("foot",), _FX_FZ, 5.0, 3.0, 35.0),
    "HalfCheetah-v5": ForcePlacement(("torso", "bfoot", "ffoot"), _FX_FZ, 5.0, 6.0, 80.0),
    "Walker2d-v5": ForcePlacement(("foot", "foot_left"), _FX_FZ, 5.0, 3.0, 35.0),
    **{
        f"dmc:cartpole-{task}": ForcePlacement(("pole_1",), _FX_FZ, 2.0, 1.0, 10.0)
        for task in ("balance", "balance_sparse", "swingup", "swingup_sparse")
    },
    "dmc:pendulum-swingup": ForcePlacement(("pole",), _FX_FZ, 1.0, 1.0, 10.0),
    "dmc:acrobot-swingup": ForcePlacement(("upper_arm",), _FX_FZ, 1.0, 1.0, 10.0),
    "dmc:acrobot-swingup_sparse": ForcePlacement(("upper_arm",), _FX_FZ, 1.0, 1.0, 10.0),
    "dmc:ball_in_cup-catch": ForcePlacement(("ball",), _FX_FZ, 0.005, 1.0, 10.0),
    "dmc:reacher-easy": ForcePlacement(("arm",), ("fx", "fy"), 0.1, 1.0, 10.0),
    "dmc:reacher-hard": ForcePlacement(("arm",), ("fx", "fy"), 0.1, 1.0, 10.0),
    "dmc:cheetah-run": ForcePlacement(("torso", "bfoot", "ffoot"), _FX_FZ, 1.0, 1.0, 10.0),
    **{f"dmc:hopper-{task}": ForcePlacement(("foot",), _FX_FZ, 1.0, 1.0, 1.0) for task in ("stand", "hop")},
    **{
        f"dmc:walker-{task}": ForcePlacement(("right_foot", "left_foot"), _FX_FZ, 1.0, 1.0, 10.0)
        for task in ("stand", "walk", "run")
    },
    **{
        f"dmc:quadruped-{task}": ForcePlacement(("torso",), ("fx", "fz", "ty"), 10.0, 1.0, 100.0)
        for task in ("walk", "run")
    },
}


def mujoco_data(env: gym.Env) -> Any | None:
    """The raw ``mujoco.MjData`` behind ``env`` (``mujoco_data`` of the suite's DMC envs, ``data`` of
    gymnasium's MuJoCo envs), or None."""
    base = env.unwrapped
    candidate = getattr(base, "mujoco_data", None)
    if candidate is None:
        candidate = getattr(base, "data", None)
    candidate = getattr(candidate, "ptr", candidate)
    if candidate is None or not hasattr(candidate, "xfrc_applied"):
        return None
    return candidate


def task_id(env: gym.Env) -> str | None:
    """The id ``FORCE_PLACEMENTS`` knows ``env`` by: ``dmc:domain-task`` for DMC envs, else the gymnasium id."""
    base = env.unwrapped
    if hasattr(base, "domain") and hasattr(base, "task") and hasattr(base, "mujoco_model"):
        return f"dmc:{base.domain}-{base.task}"
    spec = getattr(env, "spec", None) or getattr(base, "spec", None)
    return None if spec is None else spec.id


class AdversarialForce(gym.Wrapper):
    """Joint action ``[protagonist action, adversary force]``; the force goes into ``xfrc_applied``.

    ``task`` keys :data:`FORCE_PLACEMENTS` (None: inferred from the env). ``bodies`` overrides the
    placement's bodies (each gets ``components``, default the placement's, else (fx, fz));
    ``force_limit`` overrides its limit. Without a table entry both ``bodies`` and ``force_limit`` are needed.
    """

    def __init__(
        self,
        env: gym.Env,
        task: str | None = None,
        force_limit: float | None = None,
        bodies: list[str] | None = None,
        *,
        components: Sequence[str] | None = None,
    ):
        super().__init__(env)
        model = mujoco_model(env)
        if model is None or mujoco_data(env) is None:
            raise ValueError(
                f"AdversarialForce needs a MuJoCo env (gymnasium MuJoCo or envs.dmc), got {env.unwrapped!r}."
            )
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"AdversarialForce needs a Box action space, got {env.action_space}.")
        inferred = task is None
        task = task_id(env) if task is None else task
        placement = FORCE_PLACEMENTS.get(task) if task is not None else None
        if placement is None and not inferred:
            raise ValueError(f"No force placement for task {task!r}; known: {', '.join(FORCE_PLACEMENTS)}.")
        if placement is None and (bodies is None or force_limit is None):
            raise ValueError(
                f"No force placement for task {task!r}: pass bodies= and force_limit= (known tasks: "
                f"{', '.join(FORCE_PLACEMENTS)})."
            )
        self.task = task
        self.placement = placement
        limit = placement.force_limit if force_limit is None else force_limit
        if not (np.isfinite(limit) and limit > 0):
            raise ValueError(f"force_limit must be a finite number > 0, got {limit}.")
        self.force_limit = float(limit)
        self.bodies = tuple(bodies) if bodies is not None else placement.bodies
        if not self.bodies:
            raise ValueError("AdversarialForce needs at least one body.")
        if components is None:
            components = placement.components if placement is not None else _FX_FZ
        self.components = tuple(components)
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown or not self.components:
            raise ValueError(f"Unknown force components {unknown}; valid: {', '.join(COMPONENTS)}.")

        import mujoco

        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(model.nbody)]
        body_ids = []
        for name in self.bodies:
            body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
            if body_id <= 0:  # 0 is the world body: a force on it does nothing
                raise ValueError(f"No body named {name!r} in {task or env.unwrapped!r}; bodies: {names[1:]}.")
            body_ids.append(body_id)
        # Flat (row, column) index of every adversary scalar, body-major: [b0 c0, b0 c1, b1 c0, ...].
        self.force_rows = np.repeat(np.asarray(body_ids, dtype=np.int64), len(self.components))
        self.force_cols = np.tile(np.asarray([COMPONENTS[c] for c in self.components], dtype=np.int64), len(body_ids))
        self.adversary_dim = int(self.force_rows.size)

        self.protagonist_action_space = env.action_space
        self.protagonist_dim = int(np.prod(env.action_space.shape))
        if len(env.action_space.shape) != 1:
            raise ValueError(f"AdversarialForce needs a 1-D action space, got shape {env.action_space.shape}.")
        dtype = env.action_space.dtype
        self.adversary_action_space = gym.spaces.Box(-self.force_limit, self.force_limit, (self.adversary_dim,), dtype)
        self.action_space = gym.spaces.Box(
            low=np.concatenate([env.action_space.low, self.adversary_action_space.low]).astype(dtype),
            high=np.concatenate([env.action_space.high, self.adversary_action_space.high]).astype(dtype),
            dtype=dtype,
        )

    def _data(self) -> Any:
        # Looked up every time: cheap, and never stale if a simulator rebuilds its MjData.
        return mujoco_data(self.env)

    def apply_force(self, force: np.ndarray) -> None:
        """Zero ``xfrc_applied`` and write ``force [adversary_dim]`` (clipped to the limit) into the chosen rows."""
        force = np.clip(np.asarray(force, dtype=np.float64), -self.force_limit, self.force_limit)
        xfrc = self._data().xfrc_applied
        xfrc[:] = 0.0
        xfrc[self.force_rows, self.force_cols] = force

    def step(self, action: Any):
        """``action [protagonist_dim + adversary_dim]``: the first part goes to the env, the rest is the force."""
        action = np.asarray(action)
        expected = (self.protagonist_dim + self.adversary_dim,)
        if action.shape != expected:
            raise ValueError(f"AdversarialForce expects an action of shape {expected}, got {action.shape}.")
        self.apply_force(action[self.protagonist_dim :])
        protagonist = action[: self.protagonist_dim].astype(self.protagonist_action_space.dtype, copy=False)
        return self.env.step(protagonist)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env with no external force (zeroed before and after, whatever the env's reset does)."""
        self._data().xfrc_applied[:] = 0.0
        out = self.env.reset(seed=seed, options=options)
        self._data().xfrc_applied[:] = 0.0
        return out


# --------------------------------------------------------------------------------------------------
# Temperature as an observation


class AlphaObservation:
    """A VecEnv whose observation gains one last column: the current episode's temperature alpha.

    ``set_alphas(alphas [L])`` installs a list; ``reset`` gives env i the next unused entries in env
    order, and every autoreset gives each finished env the next entry (finished envs in index order),
    so a phase that resets once and then runs replays the list in episode-start order. Installing the
    same list again (a new phase) replays it from the start. When the list runs out, ``sampler`` (if
    given; a callable ``count -> alphas [count]``, e.g. a bound teacher ``sample``) draws fresh values
    for the extra episodes; without one the list wraps around (its entries are i.i.d. draws of the
    same distribution, so reusing them keeps the distribution). Installing a list mid-episode leaves
    running episodes alone; the next episode to start takes the list's first entry.

    ``final_obs`` carries the finished episode's alpha, ``obs`` the new one; ``info["temperature"]``
    ``[N]`` is the alpha of each transition just stepped (the finished episode's where one ended).
    """

    def __init__(
        self,
        env: VecEnv,
        alphas: torch.Tensor | Sequence[float] | None = None,
        sampler: Callable[[int], torch.Tensor] | None = None,
    ):
        spec = env.obs_spec
        if not isinstance(spec, BoxSpec) or len(spec.shape) != 1:
            raise ValueError(f"AlphaObservation needs a 1-D Box observation, got {spec}.")
        self.env = env
        self.num_envs = env.num_envs
        self.device = env.device
        self.action_spec = env.action_spec
        dim = spec.shape[0]
        low = tuple(np.broadcast_to(np.asarray(spec.low, dtype=np.float64), (dim,)).tolist())
        high = tuple(np.broadcast_to(np.asarray(spec.high, dtype=np.float64), (dim,)).tolist())
        self.obs_spec = BoxSpec(shape=(dim + 1,), low=low + (0.0,), high=high + (float("inf"),), dtype=spec.dtype)
        self.sampler = sampler
        self.alphas = torch.zeros(0, device=self.device)
        self.cursor = 0  # entries of the installed list handed out so far
        self.current = torch.zeros(self.num_envs, device=self.device)
        if alphas is not None:
            self.set_alphas(alphas)

    def set_alphas(self, alphas: torch.Tensor | Sequence[float]) -> None:
        """Install the per-episode temperature list ``[L]`` (finite, >= 0) and restart it from its first entry."""
        alphas = torch.as_tensor(alphas, dtype=torch.float32).detach().flatten().to(self.device)
        if alphas.numel() == 0 or not bool(torch.isfinite(alphas).all()) or bool((alphas < 0).any()):
            raise ValueError("set_alphas needs a non-empty list of finite temperatures >= 0.")
        self.alphas = alphas.clone()
        self.cursor = 0

    @property
    def remaining(self) -> int:
        """Entries of the installed list not handed out yet."""
        return max(int(self.alphas.numel()) - self.cursor, 0)

    def _take(self, count: int) -> torch.Tensor:
        """The next ``count`` temperatures ``[count]`` of the list (extended by ``sampler`` or wrapped)."""
        length = int(self.alphas.numel())
        if length == 0:
            raise RuntimeError("AlphaObservation: call set_alphas(...) before reset().")
        missing = self.cursor + count - length
        if missing > 0 and self.sampler is not None:
            fresh = torch.as_tensor(self.sampler(missing), dtype=torch.float32).flatten().to(self.device)
            self.alphas = torch.cat([self.alphas, fresh])
            length = int(self.alphas.numel())
        index = torch.arange(self.cursor, self.cursor + count, device=self.device) % length
        self.cursor += count
        return self.alphas[index]

    def _with_alpha(self, obs: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return torch.cat([obs, alpha.to(obs.dtype).unsqueeze(-1)], dim=-1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every env; env i takes the next unused temperature. Returns obs ``[N, D + 1]``."""
        obs = self.env.reset(seed=seed)
        self.current = self._take(self.num_envs)
        return self._with_alpha(obs, self.current)

    def step(self, action: torch.Tensor) -> StepOut:
        out = self.env.step(action)
        stepped = self.current
        done = out.terminated | out.truncated
        # The host-side hint (gymnasium adapters) saves a device sync when no episode ended.
        ended = out.info.get("episode_ended")
        count = int(done.sum()) if ended is None or ended else 0
        if count:
            current = stepped.clone()
            current[done] = self._take(count)  # boolean-mask order = env index order
            self.current = current
        info = dict(out.info)
        info["temperature"] = stepped
        return StepOut(
            obs=self._with_alpha(out.obs, self.current),
            reward=out.reward,
            terminated=out.terminated,
            truncated=out.truncated,
            final_obs=self._with_alpha(out.final_obs, stepped),
            info=info,
        )

    def state_dict(self) -> dict[str, Any] | None:
        """The list, its cursor, the running temperatures and the inner env's state.

        None when the inner env has a ``state_dict`` that returns None (it cannot be restored, so a
        resume starts fresh episodes anyway).
        """
        inner = None
        if hasattr(self.env, "state_dict"):
            inner = self.env.state_dict()
            if inner is None:
                return None
        return {
            "alphas": self.alphas.cpu().clone(),
            "cursor": self.cursor,
            "current": self.current.cpu().clone(),
            "inner": inner,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of ``state_dict``."""
        self.alphas = torch.as_tensor(state["alphas"], dtype=torch.float32).to(self.device).clone()
        self.cursor = int(state["cursor"])
        self.current = torch.as_tensor(state["current"], dtype=torch.float32).to(self.device).clone()
        if state.get("inner") is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["inner"])

    def render(self):
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else (single_action_space, env-specific helpers) comes from the inner env.
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)
