"""QARL's robustness evaluation: a freshly trained worst-case force adversary and random forces.

``evaluate.py --adversary`` / ``--random-force`` score any single-agent MuJoCo run (SAC, RARL, QARL
alike) against them; the benchmark (``benchmarks/qarl_robustness.py``) calls the same functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from agents.engine.buffers import TransitionBuffer
from agents.engine.checkpoint import MemoryCheckpointer
from agents.engine.collect import Collector
from agents.engine.config import ConfigError, RunConfig
from agents.engine.logger import MemoryLogger
from agents.engine.loops import Session
from agents.engine.run import transition_fields
from agents.qarl.loop import JointActor, PhaseLoopConfig, force_dims, force_wrapper, phase_loop
from agents.qarl.presets import PLAYER
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec

# The fresh adversary: a plain auto-tuned SAC (the same networks as the players), one update per env
# step, learning from 1k transitions; its actor from 1k too (short budgets of 20k-50k steps).
FRESH_ADVERSARY = dataclasses.replace(PLAYER, actor_update_after_steps=1_000)


def run_adversary_learner(config: RunConfig) -> SACConfig:
    """A fresh adversary with the run's own adversary learner settings (a QARL-family run: its
    ``agent.adversary``, the temperature auto-tuned rather than QARL's per-sample one), actor from 1k
    transitions as :data:`FRESH_ADVERSARY`. Tier 3 attacks with it: the authors' learner (initial
    temperature 0.005, actor lr 1e-4) explores so little that whether it finds an attack within its
    budget depends on its seed."""
    adversary = getattr(config.agent, "adversary", None)
    if adversary is None:
        raise ValueError(f"{config.algo} runs have no adversary learner settings: use the default fresh adversary")
    return dataclasses.replace(adversary, temperature="learned", actor_update_after_steps=1_000)


def trained_compiled(config: RunConfig) -> bool:
    """Whether ``config``'s learner ran with ``agent.compile`` (QARL's protagonist, or a plain SAC run)."""
    agent = getattr(config.agent, "protagonist", config.agent)
    return bool(getattr(agent, "compile", False))


def adversary_env(config: RunConfig, wrapper: dict, num_envs: int, seed: int, device):
    """The run's deployment env with the adversary's force added (the protagonist sees what it saw)."""
    from envs import make_vec_env

    return make_vec_env(
        config.env.id,
        num_envs,
        device=device,
        seed=seed,
        options=config.env.options,
        wrappers=[wrapper, *config.env.wrappers],
    )


class _Flat(Exception):
    """Raised from the fresh adversary's logger once the protagonist's return has flattened."""


def returns_flat(values: list[float], window: int, tolerance: float) -> bool:
    """Whether a learning curve has flattened: the mean of its last ``window`` values differs from the
    mean of the ``window`` before by at most ``tolerance * max(|that mean|, 1)`` (needs 2 windows)."""
    if window < 1 or len(values) < 2 * window:
        return False
    before = sum(values[-2 * window : -window]) / window
    last = sum(values[-window:]) / window
    return abs(last - before) <= tolerance * max(abs(before), 1.0)


def train_fresh_adversary(
    run: Any,
    *,
    steps: int,
    seed: int,
    force_limit: float | None = None,
    explore: bool = False,
    progress: bool = True,
    until_flat: float | None = None,
    min_steps: int | None = None,
    curve: list | None = None,
    learner: SACConfig | None = None,
) -> SAC:
    """A new SAC adversary trained for ``steps`` env steps against the frozen protagonist of ``run``.

    Works for any single-agent MuJoCo run (SAC included, so every method meets the same test): the
    protagonist acts as it is evaluated (``explore``) and is never updated (only adversary phases run).
    ``until_flat`` (a relative tolerance) stops earlier, once the protagonist's mean episode return
    under attack (logged every ``steps // 100`` env steps) has flattened: :func:`returns_flat` over
    windows of ``steps // 10`` env steps, checked from ``min_steps`` (default ``steps // 4``) on.
    ``curve`` (a list) receives ``(env step, protagonist's mean episode return)`` at every log.
    ``learner``: the adversary's SAC settings (default :data:`FRESH_ADVERSARY`; see
    :func:`run_adversary_learner`).
    """
    curve = [] if curve is None else curve
    log_every = max(steps // 100, 1)
    window, first = max(steps // 10 // log_every, 1), steps // 4 if min_steps is None else min_steps

    def on_log(step: int, metrics: dict) -> None:
        if "rollout/ep_rew_mean" not in metrics:
            return
        curve.append((step, float(metrics["rollout/ep_rew_mean"])))
        values = [value for _, value in curve]
        if until_flat is not None and step >= first and returns_flat(values, window, until_flat):
            raise _Flat

    config, device = run.config, torch.device(run.device)
    wrapper = force_wrapper(config, force_limit)
    protagonist_dim, adversary_dim = force_dims(config, wrapper)
    env = adversary_env(config, wrapper, 1, seed, device)
    with torch.random.fork_rng(devices=[]):  # the adversary's own seed; the caller's RNG is left alone
        torch.manual_seed(seed)
        # the run's agent.compile carries over (the same math, faster; a run trained compiled evaluates so)
        learner = dataclasses.replace(learner or FRESH_ADVERSARY, compile=trained_compiled(config))
        adversary = SAC(env.obs_spec, BoxSpec((adversary_dim,)), learner, device)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        actor = JointActor(run.agent, adversary, adversary_dim, generator)
        actor.protagonist_explore = explore
        fields = transition_fields(env.obs_spec, BoxSpec((adversary_dim,)))
        train = PhaseLoopConfig(
            total_steps=steps,
            updates_per_step=1.0,
            phase_episodes=1,
            phase_min_steps=steps,
            update_after_transitions=1_000,
            eval_every=0,
            checkpoint_every=0,
            log_every=log_every,
            seed=seed,
        )
        session = Session(
            dataclasses.replace(config, train=train),
            env,
            MemoryLogger(steps, progress=progress, label="fresh adversary", on_log=on_log),
            MemoryCheckpointer(),
            lambda agent, step: {},
            {
                "agent": run.agent,
                "adversary": adversary,
                "buffer": TransitionBuffer(fields, 8, device=device),  # the protagonist never learns here
                "adversary_buffer": TransitionBuffer(fields, max(steps, 1), device=device, seed=seed),
                "collector": Collector(env, actor, seed=seed),
            },
        )
        try:
            phase_loop(session, ("adversary",), protagonist_dim, FRESH_ADVERSARY.gamma)
        except _Flat:  # the protagonist's return under attack has flattened: the adversary is done
            pass
        finally:
            session.logger.close()
            env.close()
    return adversary


def score_against(
    run: Any, adversary: Any, *, episodes: int, seed: int, explore: bool, force_limit=None, gamma: float | None = None
) -> dict:
    """Episodes of the protagonist against ``adversary`` (a SAC, 'random' or 'zero'), in the suite's schema
    (with the mean discounted return given ``gamma``)."""
    from agents.engine.evaluation import run_episodes, summarize

    config, device = run.config, torch.device(run.device)
    wrapper = force_wrapper(config, force_limit)
    _, adversary_dim = force_dims(config, wrapper)
    env = adversary_env(config, wrapper, min(episodes, 10), seed, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + 1)
    actor = JointActor(run.agent, adversary, adversary_dim, generator)
    actor.protagonist_explore = explore
    try:
        # the adversary plays its mean action
        result = run_episodes(actor, env, episodes, explore=False, step=run.step, seed=seed, gamma=gamma)
    finally:
        env.close()
    scores = summarize(result["returns"], result["lengths"], result.get("discounted_returns"))
    return {**scores, "force_limit": wrapper.get("force_limit")}


class AdversaryConditions:
    """``evaluate.py --adversary``: a freshly trained worst-case adversary against the frozen protagonist
    (its own budget and seed); ``--random-force``: uniformly random forces at the same limit."""

    key = "adversary"

    def __init__(self, fresh: bool, random: bool, steps: int, seed: int, force_limit: float | None):
        self.fresh, self.random, self.steps, self.seed, self.force_limit = fresh, random, steps, seed, force_limit

    @staticmethod
    def add_arguments(parser) -> None:
        parser.add_argument("--adversary", action="store_true", help="train a fresh worst-case force adversary")
        parser.add_argument("--random-force", action="store_true", help="uniformly random forces at the limit")
        parser.add_argument("--adversary-steps", type=int, default=20_000, help="fresh adversary's env steps")
        parser.add_argument("--adversary-seed", type=int, default=777, help="fresh adversary's seed (default 777)")
        parser.add_argument("--force-limit", type=float, help="force per component, N (default: the run's or task's)")

    @classmethod
    def from_args(cls, args) -> list[AdversaryConditions]:
        if not (args.adversary or args.random_force):
            return []
        return [cls(args.adversary, args.random_force, args.adversary_steps, args.adversary_seed, args.force_limit)]

    def check(self, context) -> None:
        from envs import EnvError

        if context.multi_agent:
            raise EnvError("--adversary / --random-force need a single-agent MuJoCo run")
        if self.steps < 1:
            raise ConfigError(f"--adversary-steps must be >= 1, got {self.steps}")
        if self.force_limit is not None and not self.force_limit > 0:
            raise ConfigError(f"--force-limit must be > 0, got {self.force_limit}")
        try:
            force_dims(context.run.config, force_wrapper(context.run.config, self.force_limit))
        except ValueError as e:  # not a MuJoCo env, no placement for the task, unknown body
            raise EnvError(f"--adversary on {context.run.config.env.id}: {str(e).splitlines()[0]}") from None

    def run(self, context) -> dict:
        from agents.robustness.context import cells, table

        out, rows = {}, []
        common = dict(
            episodes=context.episodes,
            seed=context.seed,
            explore=context.explore,
            force_limit=self.force_limit,
            gamma=context.gamma,  # the discounted return too: what the adversary minimizes
        )
        row = lambda name, stats: [name, *cells(stats), f"{stats.get('mean_discounted_reward', float('nan')):.1f}"]  # noqa: E731
        if self.random:
            out["random_force"] = score_against(context.run, "random", **common)
            rows.append(row("random force", out["random_force"]))
        if self.fresh:
            adversary = train_fresh_adversary(
                context.run, steps=self.steps, seed=self.seed, force_limit=self.force_limit, explore=context.explore
            )
            out["fresh"] = {**score_against(context.run, adversary, **common), "steps": self.steps, "seed": self.seed}
            rows.append(row(f"fresh adversary ({self.steps:,} steps)", out["fresh"]))
        print()
        print(table("against force adversaries:", ["adversary", "mean", "std", "min", "discounted"], rows))
        return out
