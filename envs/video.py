"""Headless rendering set-up and episode videos.

``record_episode`` runs one episode of any gymnasium env built with ``render_mode="rgb_array"``
(gymnasium classic control, gymnasium MuJoCo, the suite's DMC envs) and writes the frames to an mp4
with imageio (``imageio-ffmpeg`` ships its own ffmpeg binary, so no system ffmpeg is needed).

Headless MuJoCo rendering: on a machine without a display, MuJoCo needs an off-screen OpenGL
backend. EGL does not work on the CPU-only development machines, OSMesa (software rendering) does.
It needs the system library ``libosmesa6`` (Debian/Ubuntu: ``apt-get install -y libosmesa6``) and
the environment variables ``MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa``. Both ``mujoco`` and
``dm_control`` read ``MUJOCO_GL`` when they are *imported* (and PyOpenGL reads
``PYOPENGL_PLATFORM`` when it is first imported), so ``configure_headless_gl`` must run before
either is imported. ``envs/dmc.py`` calls it at import time; call it yourself first thing in a
script that renders gymnasium MuJoCo envs without importing ``envs.dmc``. Variables that are
already set are respected, so ``MUJOCO_GL=egl python ...`` still selects EGL on a GPU machine.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_GL_HINT = (
    "Headless MuJoCo rendering needs an off-screen OpenGL backend. On Debian/Ubuntu run "
    "`apt-get install -y libosmesa6` and set MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa before mujoco, "
    "dm_control or gymnasium's MuJoCo envs are imported (envs.video.configure_headless_gl() does this "
    "when the variables are unset)."
)


def configure_headless_gl() -> str | None:
    """Select OSMesa for MuJoCo rendering when no backend was chosen; return the backend in effect.

    Does nothing when ``MUJOCO_GL`` is already set. Otherwise, if the OSMesa library can be found,
    sets ``MUJOCO_GL=osmesa`` and ``PYOPENGL_PLATFORM=osmesa`` (the latter only if unset). If OSMesa
    is missing the variables stay unset, so importing still works (training needs no rendering) and
    rendering fails later with the hint from ``record_episode``.
    """
    if "MUJOCO_GL" in os.environ:
        return os.environ["MUJOCO_GL"]
    if ctypes.util.find_library("OSMesa") is None:
        return None
    # Set even if mujoco is already imported: gymnasium's MuJoCo renderer reads the variable when it
    # is created, and dm_control reads it when dm_control itself is first imported.
    os.environ["MUJOCO_GL"] = "osmesa"
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    return "osmesa"


def _to_native_action(action: np.ndarray, space: Any) -> np.ndarray:
    """Map a canonical [-1, 1] action to a Box space's bounds (affine, then clipped)."""
    low = np.asarray(space.low, dtype=np.float64)
    high = np.asarray(space.high, dtype=np.float64)
    native = low + (np.asarray(action, dtype=np.float64) + 1.0) * 0.5 * (high - low)
    return np.clip(native, low, high).astype(space.dtype)


def _render_frame(env: Any) -> np.ndarray:
    """Render one rgb frame, turning backend failures and wrong render modes into clear errors."""
    try:
        frame = env.render()
    except Exception as error:  # the GL backends raise many unrelated types (ImportError, GLError ...)
        if type(error).__name__ == "DependencyNotInstalled":  # e.g. pygame for classic control
            raise RuntimeError(f"Rendering {env} needs a missing package: {error}") from error
        backend = os.environ.get("MUJOCO_GL", "<unset>")
        raise RuntimeError(f"Rendering failed with MUJOCO_GL={backend}: {error!r}. {_GL_HINT}") from error
    if frame is None:
        raise RuntimeError(
            f"env.render() returned None: build the env with render_mode='rgb_array' (got {env.render_mode!r})."
        )
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise RuntimeError(f"env.render() must return an [H, W, 3] image, got shape {frame.shape}.")
    return frame[..., :3].astype(np.uint8, copy=False)


def record_episode(
    env_fn: Callable[[], Any],
    policy_fn: Callable[[np.ndarray], Any],
    path: str | os.PathLike,
    max_steps: int = 1000,
    fps: float | None = None,
    *,
    seed: int | None = 0,
    canonical_actions: bool = False,
) -> dict[str, Any]:
    """Run one episode, render every step and write an mp4. Returns ``{"path", "frames", "return"}``.

    Args:
        env_fn: builds a fresh gymnasium env with ``render_mode="rgb_array"``; it is closed afterwards.
        policy_fn: maps one observation (numpy, unbatched) to one action. Torch tensors are accepted
            and moved to numpy.
        path: output ``.mp4`` file; parent folders are created.
        max_steps: cap on env steps (the episode also ends on ``terminated`` or ``truncated``).
        fps: frame rate of the video; defaults to the env's ``metadata["render_fps"]`` or 30.
        seed: passed to ``env.reset(seed=...)``.
        canonical_actions: the policy outputs actions in [-1, 1] (the suite's canonical scale) and
            they are mapped affinely to the env's Box bounds, as the vector adapter does.
    """
    import imageio.v2 as imageio  # imported here so the env modules stay importable without imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = env_fn()
    try:
        obs, _ = env.reset(seed=seed)
        frames = [_render_frame(env)]
        episode_return = 0.0
        for _ in range(max_steps):
            action = policy_fn(obs)
            if hasattr(action, "detach"):  # a torch tensor from an agent
                action = action.detach().cpu().numpy()
            if canonical_actions:
                action = _to_native_action(action, env.action_space)
            obs, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            frames.append(_render_frame(env))
            if terminated or truncated:
                break
        if fps is None:
            fps = env.metadata.get("render_fps") or 30
    finally:
        env.close()
    # libx264 with yuv420p needs even frame sizes; macro_block_size=2 pads odd sizes instead of the
    # default 16, which would rescale most frames and print a warning.
    with imageio.get_writer(path, fps=float(fps), codec="libx264", macro_block_size=2) as writer:
        for frame in frames:
            writer.append_data(frame)
    return {"path": str(path), "frames": len(frames), "return": episode_return}
