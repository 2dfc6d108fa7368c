"""Named MARL presets (``algo/task``) with the spec's hyperparameters and their sources.

* Matrix games (spec 6.3, [OURS] setup of the ROE spec's pre-check): 2 agents, 3 actions, one-step
  terminal episodes, one update per step, batch 32, buffer 5 000, Adam 5e-4 (eps 1e-5), clip 10,
  ``t_max`` 3 000, epsilon 1 -> 0.05 over 1 500 steps, ROE alpha 1 -> 0 over 1 500 steps,
  N = N' = 8, N_act = 32 for both DDN and DMIX, greedy evaluation at U[0,1] with 256 fractions.
  ``roe/GAME`` is ROE on DMIX, ``roe/GAME-ddn`` ROE on DDN; ``dmix/GAME``, ``ddn/GAME`` are the
  risk-neutral baselines (the same code with the uniform sampler), ``qmix/GAME``, ``vdn/GAME`` the
  scalar learners.
* Predator-prey with miscapture punishment, scaled down (spec 6.5 item 1): 4 agents, 4 stags,
  7 x 7, limit 50, punishment -2; DFAC hyperparameters (spec 5.1: batch 32 episodes, buffer 5 000,
  target copy every 200 episodes, gamma 0.99, epsilon 1 -> 0.05 over 50k), 500k env steps; ROE
  anneals alpha 1 -> 0 over 150k steps. DDN keeps DFAC's N = N' = 1.

Deviations from the reference: the matrix-game presets use the suite's one recurrent agent network
(Linear-ReLU-GRUCell-IQN head, H = 64) instead of the spec's two-layer feed-forward trunk; with
one-step episodes the GRU starts from zero and acts as one more nonlinear layer. The predator-prey
presets follow DFAC's values, not the authors' fork's left-over ``lr 0.01 / gamma 0.85`` (spec 5.1).
"""

from __future__ import annotations

import dataclasses

from agents.core.config import EnvConfig, RunConfig
from agents.marl.learner import MarlConfig
from agents.marl.loop import EpisodicConfig

# Per-algorithm defaults: the same learner, three switches (see agents.marl.learner).
ALGORITHM_CONFIGS: dict[str, MarlConfig] = {
    "vdn": MarlConfig(mixer="sum", distributional=False),
    "qmix": MarlConfig(mixer="qmix", distributional=False),
    "ddn": MarlConfig(mixer="sum", distributional=True, n_taus_online=1, n_taus_target=1),  # DFAC ddn.yaml
    "dmix": MarlConfig(mixer="qmix", distributional=True),
    "roe": MarlConfig(mixer="qmix", distributional=True, taus="upper"),
}

MATRIX_TRAIN = EpisodicConfig(
    total_steps=3_000,
    batch_size=32,
    buffer_size=5_000,
    learning_starts=32,
    updates_per_collect=1,
    eval_interval=0,
    eval_episodes=1,
    log_interval=500,
    checkpoint_every=0,
)
MATRIX_AGENT = {
    "epsilon_anneal_steps": 1_500,
    "risk_anneal_steps": 1_500,
    "n_taus_online": 8,
    "n_taus_target": 8,
    "n_taus_act": 32,
    "n_taus_eval": 256,
}
PREDATOR_PREY_ENV = EnvConfig(
    id="predator-prey",
    num_envs=1,
    options={"grid_size": 7, "n_agents": 4, "n_stags": 4, "punishment": -2.0, "episode_limit": 50},
)
PREDATOR_PREY_TRAIN = EpisodicConfig(total_steps=500_000, eval_interval=10_000, eval_episodes=10)


def _agent(algo: str, **changes) -> MarlConfig:
    return dataclasses.replace(ALGORITHM_CONFIGS[algo], **changes)


def build_presets() -> dict[str, RunConfig]:
    presets: dict[str, RunConfig] = {}
    for game in ("wqmix", "climbing", "penalty"):
        env = EnvConfig(id=f"matrix:{game}", num_envs=1)
        for algo in ("roe", "dmix", "ddn", "qmix", "vdn"):
            changes = dict(MATRIX_AGENT) if ALGORITHM_CONFIGS[algo].distributional else {"epsilon_anneal_steps": 1_500}
            presets[f"{algo}/{game}"] = RunConfig(algo, env, MATRIX_TRAIN, _agent(algo, **changes))
        presets[f"roe/{game}-ddn"] = RunConfig("roe", env, MATRIX_TRAIN, _agent("roe", mixer="sum", **MATRIX_AGENT))
    for algo in ("roe", "dmix", "ddn", "qmix", "vdn"):
        changes = {"risk_anneal_steps": 150_000} if algo == "roe" else {}
        agent = _agent(algo, **changes)
        presets[f"{algo}/predator-prey"] = RunConfig(algo, PREDATOR_PREY_ENV, PREDATOR_PREY_TRAIN, agent)
    return presets


PRESETS = build_presets()
