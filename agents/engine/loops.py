"""Training loops and the parts they are built from.

A loop receives a :class:`Session` (the run's env, named components, logger, checkpointer and
evaluator, built by :mod:`agents.engine.run`) and drives it to ``total_steps``. Steps count env
transitions: a collector step with N envs advances the step by N.

The parts every loop shares:

* :class:`Every` - one cadence ("every k env steps, 0: never") for logging, evaluation and checkpoints;
* :class:`UpdateCredit` - the fractional update-to-data ratio carried across collector steps;
* :func:`train_learner` - k updates of one learner from one buffer, metrics accumulated by reference;
* :func:`report` - the end of an iteration: log (with the NaN guard), evaluate, checkpoint, when due;
* :class:`Session` - named components (``agent``, ``buffer``, ``collector``, and for two-player runs
  ``adversary``, ``adversary_buffer``, ``teacher`` ...) that checkpoints walk by name.

:func:`off_policy` is the one-learner loop composed from them (its per-run state and the two halves
of an iteration are :class:`OffPolicyRun`, which the seed-batched loop reuses); a family with a new
data flow (QARL's alternating phases) writes a short loop from the same parts.

Prioritized replay (Schaul, Quan, Antonoglou, Silver, "Prioritized Experience Replay", ICLR 2016,
arXiv:1511.05952) is a loop setting, ``train.prioritized`` (None: uniform replay, exactly as without
it). With it the run's buffer samples through a :class:`agents.engine.prioritized.PrioritizedSampler`,
each batch carries ``index [B]`` and importance ``weights [B]``, the agent weights its TD loss by them
and returns each row's TD error as the non-scalar metric ``td_error [B]`` (:data:`TD_ERROR`), which
:func:`train_learner` takes out of the metrics and hands back to the buffer as the rows' new priorities.

Deviations from the reference (prioritized replay): ``train.prioritized=true`` on the command line
anneals beta over the whole run (``beta_steps=0``: the run's ``total_steps`` at its start, kept on
resume), as the paper does; a :class:`~agents.engine.prioritized.PrioritizedConfig` built in Python keeps
its own ``beta_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.engine.agent import NonFiniteLossError
from agents.engine.config import LoopConfig, doc
from agents.engine.logger import MetricAccumulator
from agents.engine.prioritized import PrioritizedConfig, PrioritizedSampler
from agents.engine.schedules import Linear

# The metric key under which an agent returns each sampled row's TD error ``[B]`` when its batch was
# drawn by a prioritized sampler (the batch holds ``weights``). It is not a scalar: train_learner and
# train_episodic pop it before the metrics reach the logger and turn it into new priorities.
TD_ERROR = "td_error"

PRIORITIZED_DOC = (
    "prioritized replay (Schaul et al. 2016): null = uniform; true or a JSON object of "
    "alpha / beta_start / beta_end / beta_steps / eps (beta_steps 0: anneal over the whole run), "
    "then train.prioritized.alpha=... sets one entry"
)


def as_prioritized(value: Any) -> PrioritizedConfig | None:
    """The ``prioritized`` loop setting as a config: None / False -> None (uniform), True -> the
    defaults with beta annealed over the whole run, a dict (JSON from the command line) -> those
    entries over the same defaults, a :class:`PrioritizedConfig` as it is."""
    if value is None or value is False:
        return None
    if value is True:
        return PrioritizedConfig(beta_steps=0)
    if isinstance(value, dict):
        return PrioritizedConfig(**{"beta_steps": 0, **value})
    if isinstance(value, PrioritizedConfig):
        return value
    raise ValueError(f"prioritized must be null, true, a JSON object or a PrioritizedConfig, got {value!r}")


def beta_horizon(prioritized: PrioritizedConfig, total_steps: int, saved: int | None = None) -> int:
    """Env steps of the beta ramp: ``beta_steps``, or (``beta_steps <= 0``) the run's ``total_steps``.

    ``saved`` is the horizon a resumed run chose at its start: it is kept, so a resume with a larger
    ``total_steps`` continues the same schedule rather than stretching it (as the warm-up is kept).
    """
    if saved is not None:
        return int(saved)
    return int(prioritized.beta_steps) if prioritized.beta_steps > 0 else max(int(total_steps), 1)


def prioritized_sampler(
    prioritized: PrioritizedConfig, capacity: int, device: torch.device | str, horizon: int
) -> PrioritizedSampler:
    """The proportional sampler of a ``capacity``-row buffer, beta = Linear(beta_start, beta_end, horizon)."""
    beta = Linear(prioritized.beta_start, prioritized.beta_end, horizon)
    return PrioritizedSampler(capacity, device, alpha=prioritized.alpha, beta=beta, eps=prioritized.eps)


def run_sampler(config: LoopConfig, capacity: int, device: torch.device | str) -> PrioritizedSampler | None:
    """A run's replay sampler for a ``capacity``-row buffer: None (uniform) unless ``train.prioritized``.
    Its beta ramp is provisional until the loop sets the run's own (:func:`resolve_beta`)."""
    prioritized = getattr(config, "prioritized", None)
    if prioritized is None:
        return None
    return prioritized_sampler(prioritized, capacity, device, beta_horizon(prioritized, config.total_steps))


@dataclass(frozen=True)
class OffPolicyConfig(LoopConfig):
    """Settings of the off-policy loop (replay, update ratio, intervals, seeding, device)."""

    update_after_steps: int = doc(
        "no gradient updates before this env step, and uniformly random actions until then (the warm-up; "
        "half the run if not below total_steps)",
        1_000,
        ge=0,
    )
    buffer_size: int = doc("replay capacity in transitions", 1_000_000, ge=1)
    batch_size: int = doc("transitions per gradient update", 256, ge=1)
    updates_per_step: float = doc("gradient updates per env transition (update-to-data ratio)", 1.0, gt=0)
    prioritized: PrioritizedConfig | None = doc(PRIORITIZED_DOC, None)

    def __post_init__(self):
        # the command line gives true or a JSON object; keep a config object either way
        object.__setattr__(self, "prioritized", as_prioritized(self.prioritized))

    # One name for "no updates before N", its unit in the name: update_after_steps (env steps),
    # update_after_episodes (the episodic loop), update_after_transitions (QARL's per-learner buffers).
    RENAMED = {**LoopConfig.RENAMED, "warmup_steps": "update_after_steps", "learning_starts": "update_after_steps"}


@dataclass(frozen=True)
class EpisodicConfig(LoopConfig):
    """Settings of the episodic loop: replay of whole episodes (recurrent multi-agent learners)."""

    total_steps: int = doc("env transitions to collect in all (env steps)", 1_000_000, ge=1)
    log_every: int = doc("write training metrics every this many env steps", 2_000, ge=1)
    checkpoint_every: int = doc("save a checkpoint every this many env steps (0: only at the end)", 50_000, ge=0)
    buffer_episodes: int = doc("replay capacity in episodes", 5_000, ge=1)
    batch_episodes: int = doc("episodes per gradient update", 32, ge=1)
    update_after_episodes: int = doc(
        "episodes in the buffer before the first update (PyMARL: the batch size)", 32, ge=0
    )
    updates_per_collect: int = doc("gradient updates per collection of num_envs episodes", 1, ge=0)
    prioritized: PrioritizedConfig | None = doc(
        PRIORITIZED_DOC + "; whole episodes are prioritized (PyMARL2's episode-level replay)", None
    )

    def __post_init__(self):
        object.__setattr__(self, "prioritized", as_prioritized(self.prioritized))

    RENAMED = {
        **LoopConfig.RENAMED,
        "buffer_size": "buffer_episodes",
        "batch_size": "batch_episodes",
        "learning_starts": "update_after_episodes",
    }


class Every:
    """A cadence: due at the first multiple of ``every`` env steps after the step it last fired.

    ``every <= 0`` is never due (callers add "and at the end" themselves).
    """

    def __init__(self, every: int, step: int = 0):
        self.every = int(every)
        self.advance(step)

    def advance(self, step: int) -> None:
        """Schedule the next firing after ``step``."""
        self.next = (step // self.every + 1) * self.every if self.every > 0 else math.inf

    def due(self, step: int) -> bool:
        return step >= self.next


@dataclass
class Cadence:
    """The three cadences of a loop, from its config."""

    log: Every
    eval: Every
    checkpoint: Every

    @classmethod
    def of(cls, cfg: LoopConfig, step: int) -> Cadence:
        return cls(Every(cfg.log_every, step), Every(cfg.eval_every, step), Every(cfg.checkpoint_every, step))


class UpdateCredit:
    """Fractional gradient updates carried over: ``ratio`` updates per env transition."""

    def __init__(self, ratio: float, credit: float = 0.0):
        self.ratio = ratio
        self.credit = float(credit)

    def take(self, transitions: int) -> int:
        """Add ``ratio * transitions`` and return the whole updates now due."""
        self.credit += self.ratio * transitions
        count = 0
        while self.credit >= 1.0:  # subtract one at a time: the same floats as every earlier run
            self.credit -= 1.0
            count += 1
        return count


def update_priorities(agent: Any, buffer: Any, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> None:
    """After one update on ``batch``: pop the agent's per-row ``td_error [B]`` from its metrics ``out``
    and, when the batch came from a prioritized sampler (it holds ``index``), make them the rows' new
    priorities. Nothing happens for a uniform batch. An agent that took a prioritized batch, updated
    (non-empty metrics) and returned no TD error would silently leave the priorities stale: refused.
    """
    td_error = out.pop(TD_ERROR, None)
    if "index" not in batch:
        return
    if td_error is None:
        if out:  # an empty dict is a skipped update (DQN before update_after_steps)
            raise RuntimeError(
                f"{type(agent).__name__} returned no '{TD_ERROR}' for a prioritized batch: "
                "it does not support prioritized replay (train it with uniform replay)"
            )
        return
    buffer.update_priorities(batch["index"], td_error)


def train_learner(
    agent: Any, buffer: Any, updates: int, batch_size: int, step: int, metrics: MetricAccumulator, prefix: str = ""
) -> None:
    """``updates`` gradient updates of ``agent`` on batches of ``buffer``; metrics under ``prefix``.

    ``step`` (the env step) also feeds a prioritized sampler's beta schedule; after each update the
    sampled rows get their new priorities (:func:`update_priorities`), before the next draw.
    """
    for _ in range(updates):
        batch = buffer.sample(batch_size, step=step)
        out = agent.update(batch, step=step)
        update_priorities(agent, buffer, batch, out)
        metrics.add({prefix + k: v for k, v in out.items()} if prefix else out)


@dataclass
class Session:
    """Everything a loop drives, built once per run by a family's ``build_session`` (see
    :mod:`agents.engine.family`); the runner (:mod:`agents.engine.run`) adds the logger and checkpointer.

    ``components`` are named objects with ``state_dict`` / ``load_state_dict`` (agents, buffers, the
    collectors, a curriculum teacher); a checkpoint holds each under its name. The evaluated policy is
    the component named ``agent``. ``rollout_metrics()`` (optional) adds family metrics at each log
    (the prompt env's reward statistics); ``finish(session, run_dir)`` (optional) runs once after the
    loop has finished (the prompt family's report).
    """

    config: Any
    env: Any
    logger: Any
    checkpointer: Any
    evaluate: Any  # callable(agent, step) -> dict of eval metrics
    components: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    extra_state: dict | None = None  # loop-specific counters to checkpoint
    rollout_metrics: Callable[[], dict[str, Any]] | None = None
    finish: Callable[[Session, Any], None] | None = None
    close: Callable[[], None] | None = None  # closes what the session opened besides ``env`` (an eval env)

    @property
    def agent(self) -> Any:
        return self.components["agent"]

    @property
    def buffer(self) -> Any:
        return self.components["buffer"]

    @property
    def collector(self) -> Any:
        return self.components["collector"]


def check_finite(values: dict[str, float], step: int) -> None:
    """Stop the run on a NaN or infinite loss, naming it."""
    for key, value in values.items():
        if "loss/" in key and not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss {key!r} became {value} at step {step}; stopping (last good checkpoint kept)"
            )


def session_state(session: Session) -> dict[str, Any]:
    """What a checkpoint holds to continue bit for bit: every component by name, RNG, loop counters."""
    return {
        **{name: component.state_dict() for name, component in session.components.items()},
        "torch_rng": torch.get_rng_state(),
        "extra": session.extra_state or {},
    }


def restore_session(session: Session, state: dict[str, Any]) -> None:
    """Load every component, the global RNG and the loop counters of a checkpoint (see
    :func:`upgrade_checkpoint` for the layout the episodic loop wrote before the runner was one)."""
    state = upgrade_checkpoint(state)
    for name, component in session.components.items():
        component.load_state_dict(state[name])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    session.extra_state = state.get("extra") or {}
    session.step = int(state["step"])


def upgrade_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of the episodic loop as it was before it ran on :class:`Session` parts
    (``loop: {steps, episodes, updates[, beta_steps]}`` and no global RNG state, which that loop never
    read) in the session layout: the counters become ``extra``. Other checkpoints are returned as they are.
    """
    if "loop" not in state or "extra" in state:
        return state
    loop = dict(state["loop"])
    upgraded = {key: value for key, value in state.items() if key != "loop"}
    upgraded["step"] = int(loop.pop("steps"))
    upgraded["extra"] = loop
    return upgraded


def report(
    session: Session,
    cadence: Cadence,
    metrics: Callable[[], dict[str, Any]],
    extra_state: Callable[[], dict[str, Any]],
) -> None:
    """End of a loop iteration at ``session.step``: log, evaluate and checkpoint when due.

    A checkpoint step always logs first, so a NaN loss is caught before it can be saved. At the end of
    the run everything happens once more: log, checkpoint, then the final evaluation (unless one was
    due at this very step): the checkpoint holds the state a straight longer run would have at that
    step, so a resume with a larger ``total_steps`` continues it exactly.
    ``metrics()`` is called only when logging; ``extra_state()`` only when checkpointing.
    """
    cfg, step = session.config.train, session.step
    at_end = step >= cfg.total_steps
    checkpoint_due = cadence.checkpoint.due(step) or at_end
    if cadence.log.due(step) or checkpoint_due:
        cadence.log.advance(step)
        values = metrics()
        if session.rollout_metrics is not None:
            values = {**values, **session.rollout_metrics()}
        check_finite(session.logger.log(step, values), step)
    evaluated = cadence.eval.due(step)
    if evaluated:
        cadence.eval.advance(step)
        session.logger.log(step, session.evaluate(session.agent, step))
    if checkpoint_due:
        cadence.checkpoint.advance(step)
        session.extra_state = extra_state()
        session.checkpointer.save(step, session_state(session))
    if at_end and not evaluated:
        session.logger.log(step, session.evaluate(session.agent, step))


def resolve_beta(session: Session) -> dict[str, int]:
    """Prioritized replay: set the run's beta ramp on its buffer's sampler, chosen once per run and
    checkpointed (see :func:`beta_horizon`). Returns the loop state to checkpoint (empty for uniform
    replay). Every loop calls it after the session is restored; buffers are built with any ramp."""
    prioritized = getattr(session.config.train, "prioritized", None)
    sampler = getattr(session.buffer, "sampler", None)
    if prioritized is None or sampler is None:
        return {}
    extra = session.extra_state or {}
    horizon = beta_horizon(prioritized, session.config.train.total_steps, extra.get("beta_steps"))
    sampler.beta = Linear(prioritized.beta_start, prioritized.beta_end, horizon)
    return {"beta_steps": horizon}


def resolve_update_after(session: Session, update_after_steps: int) -> int:
    """The warm-up length of this run (random actions, no updates), chosen once and checkpointed.

    A run shorter than its warm-up would never train (e.g. a 3k-step smoke run of a preset with the
    paper's 25k warm-up): it warms up for half its length instead, and says so. A resumed run keeps
    the choice made at its start, so a resume with a larger total_steps does not change it.
    """
    extra = session.extra_state or {}
    for key in ("update_after_steps", "warmup_steps"):  # the second: checkpoints written before the rename
        if key in extra:
            return int(extra[key])
    total = session.config.train.total_steps
    if update_after_steps >= total > 1:
        session.logger.message(
            f"note: update_after_steps={update_after_steps:,} >= total_steps={total:,}: warming up for "
            f"{total // 2:,} steps instead so the run trains (set update_after_steps below total_steps to choose)"
        )
        return total // 2
    return update_after_steps


class OffPolicyRun:
    """The per-run state of :func:`off_policy` and its two halves of an iteration, so that a loop over
    several runs in lockstep (:mod:`agents.engine.batched`) composes the same parts.

    :meth:`collect` is one collector step into the run's buffer and returns the updates now due
    (none during the warm-up); :meth:`report` ends the iteration (:func:`report` with this run's
    metrics and checkpointed counters).
    """

    def __init__(self, session: Session):
        cfg: OffPolicyConfig = session.config.train
        self.session = session
        self.metrics = MetricAccumulator()
        extra = session.extra_state or {}
        self.credit = UpdateCredit(cfg.updates_per_step, extra.get("update_credit", 0.0))
        self.update_after = resolve_update_after(session, cfg.update_after_steps)
        self.loop_state = {"update_after_steps": self.update_after, **resolve_beta(session)}
        self.cadence = Cadence.of(cfg, session.step)

    @property
    def done(self) -> bool:
        return self.session.step >= self.session.config.train.total_steps

    @property
    def warm(self) -> bool:
        """In the warm-up: uniformly random actions, no updates."""
        return self.session.step < self.update_after

    def collect(self, action: torch.Tensor | None = None) -> int:
        """Collect with N envs (random actions during the warm-up; after it ``action [N, ...]`` if given,
        else the agent's), insert; the updates now due."""
        session = self.session
        warm = self.warm
        session.buffer.extend(session.collector.step(session.step, random=warm, action=action))
        num_envs = session.env.num_envs
        session.step += num_envs
        return 0 if warm else self.credit.take(num_envs)

    def report(self) -> None:
        collector = self.session.collector
        report(
            self.session,
            self.cadence,
            lambda: {**self.metrics.means(), **collector.stats.summary()},
            lambda: {"update_credit": self.credit.credit, **self.loop_state},
        )


def off_policy(session: Session) -> None:
    """Collect with N envs, insert, update ``updates_per_step`` times per transition after warm-up."""
    cfg: OffPolicyConfig = session.config.train
    run = OffPolicyRun(session)
    while not run.done:
        updates = run.collect()
        train_learner(session.agent, session.buffer, updates, cfg.batch_size, session.step, run.metrics)
        run.report()
