"""MADDPG and ERNIE presets: MPE cooperative navigation, tag, speaker-listener and VMAS navigation."""

from __future__ import annotations

import dataclasses

from agents.engine.config import EnvConfig, RunConfig
from agents.engine.loops import OffPolicyConfig
from agents.maddpg.learner import MADDPGConfig

# MPE cooperative navigation with continuous actions and per-agent rewards (docs/algorithms/ernie.md):
# N = 3, local_ratio 0.5, 25-step episodes; 200k env steps, batch 1024, one update every 25 env steps.
SIMPLE_SPREAD = EnvConfig(
    id="mpe:simple_spread", options={"actions": "continuous", "reward": "agent", "N": 3, "local_ratio": 0.5}
)
MPE_TRAIN = OffPolicyConfig(
    total_steps=200_000, update_after_steps=1_024, buffer_size=1_000_000, batch_size=1_024, updates_per_step=1 / 25,
    eval_every=10_000, eval_episodes=10, log_every=2_500, checkpoint_every=50_000,
)  # fmt: skip
# VMAS navigation (3 agents, 100-step episodes, per-agent rewards), 10 batched worlds; a project choice.
VMAS_NAVIGATION = EnvConfig(
    id="vmas:navigation", num_envs=10, options={"actions": "continuous", "reward": "agent", "max_steps": 100}
)
VMAS_TRAIN = dataclasses.replace(MPE_TRAIN, total_steps=500_000, eval_every=25_000)
# Cheaper MPE scenarios, same settings: predator-prey (3 predators, 1 prey) and cooperative communication.
SIMPLE_TAG = EnvConfig(id="mpe:simple_tag", options={"actions": "continuous", "reward": "agent"})
SPEAKER_LISTENER = EnvConfig(id="mpe:simple_speaker_listener", options={"actions": "continuous", "reward": "agent"})

TASKS = {
    "simple-spread": (SIMPLE_SPREAD, MPE_TRAIN),
    "simple-tag": (SIMPLE_TAG, MPE_TRAIN),
    "speaker-listener": (SPEAKER_LISTENER, MPE_TRAIN),
    "vmas-navigation": (VMAS_NAVIGATION, VMAS_TRAIN),
}
# name -> (algorithm, agent config): MADDPG is ERNIE at weight 0; lambda 1 and 0.2 (the paper grid-searched it).
ARMS = {
    "maddpg": ("maddpg", MADDPGConfig()),
    "ernie": ("ernie", MADDPGConfig(ernie_weight=1.0)),
    "ernie-0.2": ("ernie", MADDPGConfig(ernie_weight=0.2)),
}
# The paper's lambda weighs D in MPE's own [0, 1] action units; VMAS acts in [-1, 1] already.
ACTION_SCALE = {"simple-spread": 0.5, "simple-tag": 0.5, "speaker-listener": 0.5, "vmas-navigation": 1.0}
PRESETS: dict[str, RunConfig] = {
    f"{arm}/{task}": RunConfig(algo, env, train, dataclasses.replace(agent, ernie_action_scale=ACTION_SCALE[task]))
    for task, (env, train) in TASKS.items()
    for arm, (algo, agent) in ARMS.items()
}
# The paper's controls on cooperative navigation: ERNIE without the Stackelberg gradient, and Baseline-Gaussian.
PRESETS["ernie-wo-st/simple-spread"] = RunConfig(
    "ernie", SIMPLE_SPREAD, MPE_TRAIN, MADDPGConfig(ernie_weight=1.0, ernie_form="plain", ernie_action_scale=0.5)
)
# Mean-field ERNIE: only the other agents' relative positions (features 10..13 of an 18-feature observation at N = 3,
# two atoms of width 2) move, inside a 1-Wasserstein ball.
PRESETS["ernie-mf/simple-spread"] = RunConfig(
    "ernie",
    SIMPLE_SPREAD,
    MPE_TRAIN,
    MADDPGConfig(ernie_weight=1.0, ernie_mean_field=(10, 2, 2), ernie_action_scale=0.5),
)
PRESETS["ernie-gaussian/simple-spread"] = RunConfig(
    "ernie",
    SIMPLE_SPREAD,
    MPE_TRAIN,
    MADDPGConfig(ernie_weight=1.0, ernie_baseline_gaussian=True, ernie_action_scale=0.5),
)
