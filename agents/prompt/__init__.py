"""Discrete prompt optimization by soft Q-learning: RLPrompt and its sparse Tsallis variant (PIN).

RLPrompt (Deng et al., EMNLP 2022, arXiv 2205.12548) writes a fixed-length prompt token by token
with a frozen causal LM plus a small trainable adapter whose tied output head gives one Q-value per
vocabulary token, and trains it with soft Q-learning (path consistency) on a reward that arrives
after the last token. PIN (Choi et al., ACL 2024, arXiv 2407.14733) swaps softmax / logsumexp for
sparsemax / spmax (sparse Tsallis entropy) and keeps only the policy LM's own top-k next tokens.

Modules: ``sparse`` (sparsemax, spmax, the softmax / sparsemax regularizer strategies, the LM top-k
token filter), ``losses`` (the v1 / v1_mc / v2 / v3 / v2_v3 losses and the Polyak target), ``policy``
(frozen LM + adapter + tied head, batched acting), ``agent`` (the agent, its config, the env
factory, the run with its report), ``presets`` (``rlprompt/...``, ``pin/...``, ``pin-nofilter/...``).
transformers is imported only when a model is loaded.

Registry contract (``agents/__init__.py``): ``PRESETS``, ``build``, ``run``, ``make_envs``,
``episode_returns`` and ``episode_layout`` (the episode fields of this family for the shared loop).
"""

from agents.prompt.agent import (
    ENV_ID,
    PromptAgent,
    PromptConfig,
    PromptEpisodes,
    PromptLoopConfig,
    build,
    episode_layout,
    episode_returns,
    make_envs,
    prompt_evaluation,
    run,
)
from agents.prompt.presets import ALGORITHM_CONFIGS, PRESETS

# algorithm name -> the module implementing it (the registry's format)
ALGORITHMS: dict[str, str] = {name: "agents.prompt" for name in ALGORITHM_CONFIGS}


def default_config(algo: str):
    """(loop config, agent config) of a bare algorithm name (no preset)."""
    return ALGORITHM_CONFIGS[algo]


__all__ = [
    "ALGORITHMS",
    "ALGORITHM_CONFIGS",
    "ENV_ID",
    "PRESETS",
    "PromptAgent",
    "PromptConfig",
    "PromptEpisodes",
    "PromptLoopConfig",
    "build",
    "default_config",
    "episode_layout",
    "episode_returns",
    "make_envs",
    "prompt_evaluation",
    "run",
]
