"""Training loops: short plain functions over the shared parts.

A loop receives a :class:`Session` (the run's env, agent, buffer, logger, checkpointer and
evaluator, built by :mod:`agents.core.run`) and drives it to ``total_steps``. Steps count env
transitions: a collector step with N envs advances the step by N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from agents.core.agent import NonFiniteLossError
from agents.core.collect import Collector
from agents.core.config import doc
from agents.core.logger import MetricAccumulator


@dataclass(frozen=True)
class OffPolicyConfig:
    """Settings of the off-policy loop (replay, update ratio, intervals, seeding, device)."""

    total_steps: int = doc("env transitions to collect in all", 100_000)
    warmup_steps: int = doc(
        "uniformly random actions and no updates for this many first steps (half the run if not below total_steps)",
        1_000,
    )
    buffer_size: int = doc("replay capacity in transitions", 1_000_000)
    batch_size: int = doc("transitions per gradient update", 256)
    updates_per_step: float = doc("gradient updates per env transition (update-to-data ratio)", 1.0)
    eval_every: int = doc("evaluate every this many steps (0: only at the end)", 10_000)
    eval_episodes: int = doc("episodes per evaluation", 10)
    log_every: int = doc("write metrics every this many steps", 1_000)
    checkpoint_every: int = doc("save a checkpoint every this many steps (0: only at the end)", 10_000)
    keep_checkpoints: int = doc("how many recent checkpoints to keep", 3)
    seed: int = doc("seed for envs, networks, replay sampling and exploration", 0)
    device: str = doc("torch device: cpu, cuda, cuda:1, mps", "cpu")
    threads: int = doc("torch CPU threads (0: leave torch's default)", 0)
    progress: bool = doc("show a progress bar", True)


@dataclass
class Session:
    """Everything a loop drives, built once per run (see agents.core.run)."""

    config: Any
    env: Any
    agent: Any
    buffer: Any
    logger: Any
    checkpointer: Any
    evaluate: Any  # callable(agent, step) -> dict of eval metrics
    collector: Collector
    step: int = 0
    extra_state: dict | None = None  # loop-specific counters to checkpoint


def check_finite(values: dict[str, float], step: int) -> None:
    """Stop the run on a NaN or infinite loss, naming it."""
    for key, value in values.items():
        if key.startswith("loss/") and not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss {key!r} became {value} at step {step}; stopping (last good checkpoint kept)"
            )


def session_state(session: Session) -> dict[str, Any]:
    """What a checkpoint holds to continue bit for bit."""
    return {
        "agent": session.agent.state_dict(),
        "buffer": session.buffer.state_dict(),
        "collector": session.collector.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "extra": session.extra_state or {},
    }


def restore_session(session: Session, state: dict[str, Any]) -> None:
    session.agent.load_state_dict(state["agent"])
    session.buffer.load_state_dict(state["buffer"])
    session.collector.load_state_dict(state["collector"])
    torch.set_rng_state(state["torch_rng"])
    session.extra_state = state.get("extra") or {}
    session.step = int(state["step"])


def off_policy(session: Session) -> None:
    """Collect with N envs, insert, update ``updates_per_step`` times per transition after warm-up."""
    cfg: OffPolicyConfig = session.config.train
    collector, buffer, agent = session.collector, session.buffer, session.agent
    num_envs = session.env.num_envs
    metrics = MetricAccumulator()
    extra = session.extra_state or {}
    update_credit = float(extra.get("update_credit", 0.0))  # fractional updates carried over
    next_log = _next_multiple(session.step, cfg.log_every)
    next_eval = _next_multiple(session.step, cfg.eval_every)
    next_checkpoint = _next_multiple(session.step, cfg.checkpoint_every)

    # A run shorter than its warm-up would never train (e.g. a 3k-step smoke run of a preset with
    # the paper's 25k warm-up): it warms up for half its length instead, and says so. The choice is
    # made once, at the start, and checkpointed, so a resume with a larger total_steps keeps it.
    warmup_steps = int(extra.get("warmup_steps", cfg.warmup_steps))
    if "warmup_steps" not in extra and warmup_steps >= cfg.total_steps > 1:
        warmup_steps = cfg.total_steps // 2
        session.logger.message(
            f"note: warmup_steps={cfg.warmup_steps:,} >= total_steps={cfg.total_steps:,}: warming up for "
            f"{warmup_steps:,} steps instead so the run trains (set warmup_steps below total_steps to choose)"
        )
    while session.step < cfg.total_steps:
        warm = session.step < warmup_steps
        rows = collector.step(session.step, random=warm)
        buffer.extend(rows)
        session.step += num_envs
        if not warm:
            update_credit += cfg.updates_per_step * num_envs
            while update_credit >= 1.0:
                metrics.add(agent.update(buffer.sample(cfg.batch_size), step=session.step))
                update_credit -= 1.0

        at_end = session.step >= cfg.total_steps
        checkpoint_due = (cfg.checkpoint_every and session.step >= next_checkpoint) or at_end
        # A checkpoint step always logs first, so a NaN loss is caught before it can be saved.
        if session.step >= next_log or checkpoint_due:
            next_log = _next_multiple(session.step, cfg.log_every)
            values = session.logger.log(session.step, {**metrics.means(), **collector.stats.summary()})
            check_finite(values, session.step)
        if (cfg.eval_every and session.step >= next_eval) or at_end:
            next_eval = _next_multiple(session.step, cfg.eval_every)
            session.logger.log(session.step, session.evaluate(agent, session.step))
        if checkpoint_due:
            next_checkpoint = _next_multiple(session.step, cfg.checkpoint_every)
            session.extra_state = {"update_credit": update_credit, "warmup_steps": warmup_steps}
            session.checkpointer.save(session.step, session_state(session))


def _next_multiple(step: int, every: int) -> int:
    if every <= 0:
        return 1 << 62
    return (step // every + 1) * every
