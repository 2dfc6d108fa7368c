"""Named QCOMBO / ERNIE-QCOMBO runs on the SUMO traffic grid (``traffic:grid``).

``qcombo/grid-2x2`` and ``ernie-qcombo/grid-2x2``: the authors' 2 x 2 grid (700 veh/h on each of the 8 entry edges,
3000-step episodes, normalised observations), transition replay of 30 000 (the authors'), gamma 0.95, Adam 1e-4,
batch 30 (the authors'), local Q 64-64, global Q 256-256 (the QCOMBO paper). Budgets are sized for a 2-core CPU:
30 000 env steps (10 episodes, about 20 minutes at the measured speed, docs/benchmarks.md), one update per
env step after a 1 000-step random warm-up (the authors' 1 000 random steps; they take 100 updates every 10
steps, ten times as many, which this machine cannot afford). ERNIE: lambda 1, eps 0.1 (normalised observation
units), K = 2 Stackelberg steps on the local Q-net. Rewards are scaled by 0.01 inside the losses only.
"""

from __future__ import annotations

from agents.engine.config import EnvConfig, RunConfig
from agents.engine.loops import OffPolicyConfig
from agents.traffic.qcombo import QcomboConfig

GRID_2X2 = {"rows": 2, "cols": 2, "inflows": 700}
QCOMBO = QcomboConfig(reward_scale=0.01, epsilon_anneal_steps=15_000)
ERNIE_QCOMBO = QcomboConfig(reward_scale=0.01, epsilon_anneal_steps=15_000, ernie_weight=1.0)


def grid_2x2(algo: str, agent: QcomboConfig, total_steps: int = 30_000) -> RunConfig:
    return RunConfig(
        algo=algo,
        env=EnvConfig(id="traffic:grid", options=dict(GRID_2X2)),
        train=OffPolicyConfig(
            total_steps=total_steps,
            update_after_steps=1_000,
            buffer_size=30_000,
            batch_size=30,
            updates_per_step=1.0,
            eval_every=15_000,
            eval_episodes=1,
            log_every=1_000,
            checkpoint_every=3_000,
            threads=1,
        ),
        agent=agent,
    )


PRESETS: dict[str, RunConfig] = {
    "qcombo/grid-2x2": grid_2x2("qcombo", QCOMBO),
    "ernie-qcombo/grid-2x2": grid_2x2("ernie-qcombo", ERNIE_QCOMBO),
}
