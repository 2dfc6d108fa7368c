"""Cooperative MARL by value factorization: VDN, QMIX, DDN, DMIX (DFAC) and ROE.

One learner (:class:`agents.marl.learner.FactorizedQLearner`) covers all five; an algorithm name
selects its default config (``ALGORITHM_CONFIGS``), ``PRESETS`` holds the named runs. The episodic
loop is :func:`agents.marl.loop.train_episodic`.

Family contract (:mod:`agents.engine.family`): ``FAMILY`` names the presets, :func:`build` (the learner),
:func:`build_session` (the training and evaluation envs, the learner, its episode buffer and the two
collectors) and the engine's episodic loop; the runner writes the run directory. :func:`train_config`
trains in memory (benchmarks, tests) and returns the summary.

``train.prioritized`` (a :class:`agents.engine.prioritized.PrioritizedConfig`, or ``true`` on the command line)
replays whole episodes in proportion to their TD errors, PyMARL2's episode-level prioritized replay: the
episodic loop builds the sampler, the learner weights each episode's loss and returns its priority error.

Modules: ``nets`` (GRU or MLP agent + IQN head), ``mixers`` (sum / QMIX / DMIX), ``risk`` (fraction
samplers, risk schedule), ``learner``, ``loop``, ``presets``.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.engine.episodes import episodic, episodic_components, evaluate
from agents.engine.family import Family
from agents.engine.loops import EpisodicConfig, Session
from agents.marl.learner import FactorizedQLearner, MarlConfig
from agents.marl.loop import LogFn, train_episodic
from agents.marl.presets import ALGORITHM_CONFIGS, PRESETS


def make_envs(config: Any, device: torch.device | str) -> tuple[Any, Any]:
    """(training env, evaluation env) of a RunConfig whose env id is one of the suite's MARL envs."""
    from envs.multiagent import make_marl_env

    train_cfg, options = config.train, dict(config.env.options)
    env = make_marl_env(config.env.id, config.env.num_envs, device=device, seed=train_cfg.seed, **options)
    eval_env = make_marl_env(config.env.id, train_cfg.eval_episodes, device=device, seed=train_cfg.seed + 1, **options)
    return env, eval_env


def build(config: Any, obs_spec: Any = None, action_spec: Any = None, device: Any = None) -> FactorizedQLearner:
    """The learner of ``config`` (a RunConfig). The global-state spec comes from a probe env."""
    from envs.multiagent import make_marl_env

    device = torch.device(config.train.device if device is None else device)
    probe = make_marl_env(config.env.id, 1, device=device, seed=0, **dict(config.env.options))
    return FactorizedQLearner(
        obs_spec or probe.obs_spec,
        probe.state_spec,
        action_spec or probe.action_spec,
        config.agent,
        device=device,
        seed=config.train.seed,
    )


def train_config(config: Any, log: LogFn | None = None) -> dict[str, Any]:
    """Train ``config`` in memory (no run directory). Returns train_episodic's summary plus ``agent``."""
    env, eval_env = make_envs(config, config.train.device)
    agent = build(config)
    summary = train_episodic(env, agent, config.train, eval_env=eval_env, log=log)
    summary["agent"] = agent
    return summary


def play_episodes(
    config: Any, agent: FactorizedQLearner, episodes: int = 10, seed: int = 100_000, *, explore: bool = False
) -> dict[str, torch.Tensor]:
    """``{"returns": [episodes], "lengths": [episodes]}`` of one episode per env on ``episodes`` fresh envs
    (greedy: epsilon 0, fractions U[0, 1], masks respected, unless ``explore``)."""
    from agents.engine.episodes import EpisodeCollector
    from envs.multiagent import make_marl_env

    env = make_marl_env(config.env.id, episodes, device=agent.device, seed=seed, **dict(config.env.options))
    _, stats = EpisodeCollector(env, agent, seed=seed).collect(step=0, explore=explore)
    return {"returns": stats["return"].cpu(), "lengths": stats["length"].cpu()}


def evaluate_agent(config: Any, agent: FactorizedQLearner, episodes: int = 10, seed: int = 100_000) -> dict[str, float]:
    """Greedy test episodes summarized in the suite's one evaluation schema (``summarize``)."""
    from agents.engine.evaluation import summarize

    result = play_episodes(config, agent, episodes, seed)
    return summarize(result["returns"], result["lengths"])


def build_session(config: Any, device: Any) -> Session:
    """The run's session: training and evaluation envs, the learner, its episode buffer, both collectors."""
    env, eval_env = make_envs(config, device)
    agent = build(config, device=device)
    components = episodic_components(config.train, env, agent, eval_env=eval_env)
    session = Session(config, env, None, None, None, components, close=eval_env.close)
    session.evaluate = lambda _agent, step: evaluate(components["eval_collector"], step)
    return session


FAMILY = Family(
    presets=PRESETS,
    build_agent=build,
    build_session=build_session,
    loop=episodic,
    play_episodes=play_episodes,
    multi_agent=True,
)


__all__ = [
    "ALGORITHM_CONFIGS",
    "FAMILY",
    "PRESETS",
    "EpisodicConfig",
    "FactorizedQLearner",
    "MarlConfig",
    "build",
    "build_session",
    "play_episodes",
    "evaluate_agent",
    "make_envs",
    "train_config",
    "train_episodic",
]
