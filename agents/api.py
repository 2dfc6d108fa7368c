"""The Python API for users' own code: train a preset, load a trained policy, act, evaluate.

    import agents

    run_dir = agents.train("sac", ["total_steps=5000"])          # a preset with key=value overrides
    policy = agents.load_policy(run_dir)                          # or a checkpoint file
    action, state = policy.predict(obs)                           # numpy in, the env's own action space out
    print(agents.evaluate(policy, episodes=10))                   # {"mean_reward": ..., "std_reward": ...}

``Policy.predict`` follows stable-baselines3's convention: ``predict(obs, state=None,
episode_start=None, deterministic=True) -> (action, state)``. ``obs`` is one observation (the env's
observation shape; ``[agents, D]`` for multi-agent runs) or a batch with a leading dimension; the
action comes back in the same form, in the env's own units (a Box action is mapped from the agent's
canonical [-1, 1] to the env's bounds exactly as the training env does). ``state`` carries a
recurrent agent's memory between calls (multi-agent learners; ``None`` for feed-forward agents):
pass back what the previous call returned, and mark rows whose episode restarts in
``episode_start``. Multi-agent runs take ``avail_actions [.., agents, A]`` (bool) where the env has
action masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.engine.run import LoadedRun


class Policy:
    """A trained policy acting from numpy observations (see the module docstring)."""

    def __init__(self, loaded: LoadedRun):
        self.run = loaded
        self.config = loaded.config
        self.agent = loaded.agent
        self.step = loaded.step
        self.device = torch.device(loaded.device)
        self.multi_agent = loaded.multi_agent

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.run.obs_spec.shape)

    @torch.no_grad()
    def predict(
        self,
        obs: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | Sequence[bool] | None = None,
        deterministic: bool = True,
        avail_actions: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Actions for one observation or a batch; ``(action, state)`` (see the module docstring)."""
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.shape == self.observation_shape
        if not single and obs.shape[1:] != self.observation_shape:
            raise ValueError(
                f"observation shape {obs.shape} fits neither one observation {self.observation_shape} "
                "nor a batch of them"
            )
        batch = torch.as_tensor(obs[None] if single else obs, device=self.device)
        n = batch.shape[0]
        if state is None:
            state = self.agent.initial_state(n)
        elif episode_start is not None:
            state = _reset_rows(state, torch.as_tensor(np.asarray(episode_start, dtype=bool), device=self.device))
        kwargs = {}
        if avail_actions is not None:
            mask = torch.as_tensor(np.asarray(avail_actions, dtype=bool), device=self.device)
            kwargs["avail_actions"] = mask[None] if single else mask
        action, state = self.agent.act(batch, state, step=self.step, explore=not deterministic, **kwargs)
        native = self.run.to_native(action)
        return (native[0] if single else native), state

    def __repr__(self) -> str:
        return f"Policy({self.config.algo} on {self.config.env.id}, step {self.step:,})"


def _reset_rows(state: Any, start: torch.Tensor) -> Any:
    """Zero the recurrent state of rows whose episode starts (tensors or tuples of tensors, batch first)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state * ~start.view(-1, *([1] * (state.dim() - 1)))
    return type(state)(_reset_rows(s, start) for s in state)


def load_policy(path: str | Path, device: str = "cpu") -> Policy:
    """The policy of a run directory (its newest checkpoint) or of a checkpoint file inside one."""
    from agents.registry import load_run

    path = Path(path)
    if path.is_file():  # RUN_DIR/checkpoints/step_N.pt
        return Policy(load_run(path.parent.parent, path, device))
    return Policy(load_run(path, None, device))


def train(
    preset: str = "sac",
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
) -> Path:
    """Train ``preset`` with ``key=value`` overrides (as on the command line); returns the run directory.

    With ``resume=True`` the run in ``run_dir`` continues from its newest checkpoint (overrides such
    as a larger ``total_steps`` apply on top of its config.json). Bad input raises ConfigError.
    """
    from agents.engine.config import ConfigError, apply_overrides
    from agents.engine.run import default_run_dir, read_config
    from agents.registry import get_preset
    from agents.registry import run_training as train_run

    if resume:
        if run_dir is None:
            raise ConfigError("resume=True needs the run_dir to continue")
        config = apply_overrides(read_config(Path(run_dir)), list(overrides))
        return train_run(config, Path(run_dir), resume=True)
    config = apply_overrides(get_preset(preset), list(overrides))
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} already holds a run; pass resume=True or another run_dir")
    return train_run(config, run_dir)


def evaluate(
    policy: Policy,
    env_id: str | None = None,
    episodes: int = 10,
    *,
    seed: int = 12345,
    deterministic: bool = True,
    options: dict | None = None,
    num_envs: int | None = None,
) -> dict[str, float]:
    """Score ``policy`` on ``env_id`` (default: its training env) over ``episodes`` episodes.

    Returns the suite's evaluation schema (``mean_reward``, ``std_reward``, ``min_reward``,
    ``max_reward``, ``episodes``, ``mean_ep_length``, and for single-agent policies
    ``mean_discounted_reward`` / ``std_discounted_reward`` at the agent's gamma), the numbers
    ``evaluate.py`` reports for the same seed: env ``i`` of ``num_envs`` (default ``min(10, episodes)``)
    starts from ``reset(seed + i)``.
    """
    from agents.engine.evaluation import episode_returns, evaluation_discount, summarize

    config = policy.config
    if env_id is not None and env_id != config.env.id:
        import dataclasses

        config = dataclasses.replace(config, env=dataclasses.replace(config.env, id=env_id, options=options or {}))
    result = episode_returns(
        policy.run.family,
        config,
        policy.agent,
        episodes,
        seed=seed,
        explore=not deterministic,
        step=policy.step,
        num_envs=num_envs,
        gamma=evaluation_discount(policy.run.family, policy.agent),
    )
    return summarize(result["returns"], result["lengths"], result.get("discounted_returns"))


__all__ = ["Policy", "evaluate", "load_policy", "train"]
