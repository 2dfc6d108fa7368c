"""Discrete prompt optimization by soft Q-learning: RLPrompt and its sparse Tsallis variant (PIN).

RLPrompt (Deng et al., EMNLP 2022, arXiv 2205.12548) writes a fixed-length prompt token by token
with a frozen causal LM plus a small trainable adapter whose tied output head gives one Q-value per
vocabulary token, and trains it with soft Q-learning (path consistency) on a reward that arrives
after the last token. PIN (Choi et al., ACL 2024, arXiv 2407.14733) swaps softmax / logsumexp for
sparsemax / spmax (sparse Tsallis entropy) and keeps only the policy LM's own top-k next tokens.

Modules: ``sparse`` (sparsemax, spmax, the softmax / sparsemax regularizer strategies, the LM top-k
token filter), ``losses`` (the v1 / v1_mc / v2 / v3 / v2_v3 losses and the Polyak target), ``policy``
(frozen LM + adapter + tied head, batched acting), ``agent`` (the agent, its config, the env
factory), ``evaluation`` (prompt measures, the final report, ``evaluate.py --prompt``), ``presets``
(``rlprompt/...``, ``pin/...``, ``pin-nofilter/...``). transformers is imported only when a model is loaded.

Family contract (:mod:`agents.engine.family`): ``FAMILY`` with :func:`build_session` (the prompt env,
the agent, its episode buffer, uniform or the newest episodes, and the collector, on the engine's
episodic loop), ``play_episodes`` (test accuracy of the greedy prompt) and the ``--prompt`` condition.
"""

import json
from pathlib import Path
from typing import Any

from agents.engine.episodes import EPISODE_REPLAYS, episodic, episodic_components, make_episode_buffer
from agents.engine.family import Family
from agents.engine.loops import Session
from agents.prompt.agent import (
    ENV_ID,
    PromptAgent,
    PromptConfig,
    PromptEpisodes,
    PromptLoopConfig,
    build,
    episode_layout,
    make_envs,
)
from agents.prompt.evaluation import PromptReport, evaluate_greedy, final_report, play_episodes, prompt_evaluation
from agents.prompt.presets import ALGORITHM_CONFIGS, PRESETS


def build_session(config: Any, device: Any) -> Session:
    """The prompt run's session: the prompt env (its scorer, the policy LM), the agent on that LM, the
    episode buffer of ``train.replay`` and the collector; the greedy prompt is scored on dev at each
    evaluation, and the run ends with ``prompt_report.json``."""
    env, _ = make_envs(config, device)
    agent = build(config, device=device, lm=env.policy_lm)
    layout = episode_layout(env)
    buffer = make_episode_buffer(config.train, layout["fields"], env, EPISODE_REPLAYS[config.train.replay])
    session = Session(config, env, None, None, None, rollout_metrics=env.take_stats, finish=write_report)
    session.components = episodic_components(config.train, env, agent, layout=layout, buffer=buffer)
    session.evaluate = lambda _agent, step: evaluate_greedy(agent, env, step, session.logger)
    return session


def write_report(session: Session, run_dir: Path) -> None:
    """``prompt_report.json``: the best dev prompt and the final greedy prompt, measured; one line for the user."""
    report = final_report(session.agent, session.env, session.config, session.step)
    (Path(run_dir) / "prompt_report.json").write_text(json.dumps(report, indent=2) + "\n")
    best = report["best"]
    session.logger.message(
        f"best prompt {best['prompt']!r}: dev accuracy {best['dev_accuracy']:.3f}, test accuracy "
        f"{best['test_accuracy']:.3f}, perplexity {best['perplexity']:.1f}, whole words "
        f"{best['whole_word_fraction']:.2f}, support size {best['support_size']:.1f}"
    )


FAMILY = Family(
    presets=PRESETS,
    build_agent=build,
    build_session=build_session,
    loop=episodic,
    play_episodes=play_episodes,
    conditions=(PromptReport,),
)


__all__ = [
    "ALGORITHM_CONFIGS",
    "FAMILY",
    "ENV_ID",
    "PRESETS",
    "PromptAgent",
    "PromptConfig",
    "PromptEpisodes",
    "PromptLoopConfig",
    "build",
    "build_session",
    "episode_layout",
    "play_episodes",
    "make_envs",
    "prompt_evaluation",
    "write_report",
]
