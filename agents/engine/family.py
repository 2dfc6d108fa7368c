"""The family contract: what an algorithm family declares so that the one runner can train, resume,
load and evaluate its runs.

Every family module (``agents/sac.py``, ``agents/marl/``, ``agents/qarl/`` ...) defines one
``FAMILY = Family(...)``; the registry (``agents/__init__.py``) maps algorithm names to those modules
and nothing else is looked up on a module. The runner (:mod:`agents.engine.run`) is the only place that
creates run directories, loggers, checkpointers and progress bars: a family builds a
:class:`~agents.engine.loops.Session` (env and named components) and names the loop that drives it.

Adding an algorithm: write its agent (``act`` / ``update`` / ``state_dict``, see
:mod:`agents.engine.agent`), its presets, and a ``Family``. A single-agent off-policy learner needs only
``build_agent``: :func:`agents.engine.run.off_policy_session` and :func:`agents.engine.loops.off_policy`
are the defaults (see ``agents/sac.py``, the shortest example).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.engine.config import RunConfig

BuildAgent = Callable[[RunConfig, Any, Any, Any], Any]  # (config, obs_spec, action_spec, device) -> agent
BuildSession = Callable[[RunConfig, Any], Any]  # (config, device) -> Session (no logger, no checkpointer yet)
Loop = Callable[[Any], None]  # (session) -> None: drives it to train.total_steps
PlayEpisodes = Callable[..., dict]  # (config, agent, episodes, seed, *, explore) -> {"returns", "lengths"}


@dataclass(frozen=True)
class Family:
    """An algorithm family as the runner, ``load_run`` and ``evaluate.py`` see it.

    - ``presets``: named runs (``"sac/hopper"`` -> :class:`RunConfig`).
    - ``build_agent(config, obs_spec, action_spec, device)``: the deployed policy, what a checkpoint's
      ``agent`` entry restores (evaluation, the Python API). Specs may be None for families that probe
      their own env (multi-agent learners, prompts).
    - ``build_session(config, device)``: the run's env and named components (None: the off-policy
      session of one ``build_agent`` learner, :func:`agents.engine.run.off_policy_session`).
    - ``loop(session)``: the loop (None: :func:`agents.engine.loops.off_policy`).
    - ``evaluation_metrics(agent, env, config, step)``: extra metrics of the in-training evaluation of
      the default off-policy session (ERC's and DQN's Q-estimation bias).
    - ``play_episodes``: the family plays its own evaluation episodes (multi-agent masks and
      recurrent state, prompts scored on a test split); None: the shared :func:`run_episodes`. Either way
      :func:`agents.engine.evaluation.episode_returns` is the one call that scores a run.
    - ``conditions``: evaluation condition classes of ``evaluate.py`` that only this family offers
      (QARL's force adversaries, the prompt report); the generic ones live in ``agents.robustness``.
    - ``multi_agent``: runs act for several agents (observations ``[N, agents, D]``).
    - ``stack_seeds(agents)``: seed-batched training (``train.py --seeds 0-4 --batched``): one learner
      over K ``build_agent`` agents of the same config (one per seed) whose ``update(batches, step=)``
      updates all K at once, member k on ``batches[k]``, and returns each member's metrics; the members
      stay ordinary agents (act, evaluate, checkpoint). None: the family cannot train seed-batched.
    - ``check(config)``: rules that span sections (QARL: the adversary's temperature follows the
      algorithm); the runner calls it before it builds anything.
    """

    presets: Mapping[str, RunConfig]
    build_agent: BuildAgent
    build_session: BuildSession | None = None
    loop: Loop | None = None
    evaluation_metrics: Callable[..., dict] | None = None
    play_episodes: PlayEpisodes | None = None
    conditions: tuple[type, ...] = field(default_factory=tuple)
    multi_agent: bool = False
    check: Callable[[RunConfig], None] | None = None  # rules across sections; raises ConfigError
    stack_seeds: Callable[[list[Any]], Any] | None = None  # K seeds' agents -> one lockstep learner
