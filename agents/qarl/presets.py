"""QARL, RARL and SAC-against-zero-force presets on the MuJoCo tasks (see :mod:`agents.qarl`)."""

from __future__ import annotations

import dataclasses

from agents.engine.config import EnvConfig, RunConfig
from agents.qarl.loop import PhaseLoopConfig, QARLConfig
from agents.qarl.teacher import TeacherConfig
from agents.sac import SACConfig

# CPU-sized networks (the authors use 3 x 256; recorded as a deviation), the authors' learner values:
# actor lr 1e-4, critic and temperature lr 3e-4, initial temperature 0.005, actor from 5k transitions.
PLAYER = SACConfig(
    hidden=(128, 128), actor_lr=1e-4, initial_temperature=0.005, actor_update_after_steps=5_000, fused_adam=False
)


def preset(method: str, env_id: str, total_steps: int) -> RunConfig:
    """``method`` on ``env_id``: QARL / RARL / SAC with the same protagonist sample budget."""
    from envs.adversarial import FORCE_PLACEMENTS

    placement = FORCE_PLACEMENTS[env_id]
    adversary = dataclasses.replace(PLAYER, temperature="per-sample" if method == "qarl" else "learned")
    teacher = TeacherConfig(rate=1000.0 / placement.temperature_scale, threshold=placement.threshold)
    wrappers = [{"name": "temperature_observation", "alphas": [0.0]}] if method == "qarl" else []
    steps = total_steps if method != "sac" else total_steps // 2  # both phases vs the protagonist's only
    train = PhaseLoopConfig(
        total_steps=steps,
        buffer_size=1_000_000,
        batch_size=256,
        eval_every=10_000,
        eval_episodes=10,
        checkpoint_every=10_000,
    )
    agent = QARLConfig(protagonist=PLAYER, adversary=adversary, teacher=teacher)
    algo = "sac-adv0" if method == "sac" else method
    return RunConfig(algo, EnvConfig(id=env_id, wrappers=wrappers), train, agent)


# preset task -> (env id, env steps of QARL / RARL; SAC gets half: the same protagonist samples)
TASKS = {
    "inverted-pendulum": ("InvertedPendulum-v5", 60_000),
    "hopper": ("Hopper-v5", 300_000),
    "halfcheetah": ("HalfCheetah-v5", 300_000),
    "walker2d": ("Walker2d-v5", 300_000),
}
PRESETS: dict[str, RunConfig] = {}
for _task, (_env_id, _steps) in TASKS.items():
    PRESETS[f"qarl/{_task}"] = preset("qarl", _env_id, _steps)
    PRESETS[f"rarl/{_task}"] = preset("rarl", _env_id, _steps)
    PRESETS[f"sac-adv0/{_task}"] = preset("sac", _env_id, _steps)

__all__ = ["PLAYER", "PRESETS", "TASKS", "preset"]


