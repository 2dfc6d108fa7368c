#!/usr/bin/env python
"""Reference returns of fixed light policies on the SUMO traffic-signal grid (no learning).

Three policies on ``traffic:grid`` (the authors' 2 x 2 setting by default): never switch; a fixed cycle (every
light asks to switch every ``--cycle`` seconds, so each axis gets ``cycle - 3`` s of green and 3 s of yellow); and
random switching with probability 0.1 per light and step. Reports the mean global reward per step (the sum over
lights, the env's default team reward) after ``--skip`` steps of filling, for each of ``--seeds``. A learner on
this env should beat the fixed cycle; never switching starves one axis and its reward keeps falling.

  python benchmarks/traffic_fixed_policies.py --steps 1200 --skip 200 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

POLICIES = ("keep", "cycle", "random")


def run(seed: int, steps: int, skip: int, cycle: int, options: dict) -> dict[str, float]:
    from envs import make_vec_env

    env = make_vec_env("traffic:grid", len(POLICIES), seed=seed, options={"episode_limit": steps + 1, **options})
    try:
        env.reset(seed=seed)
        generator = torch.Generator().manual_seed(seed)
        total = torch.zeros(len(POLICIES))
        for t in range(steps):
            actions = torch.zeros(len(POLICIES), env.n_agents, dtype=torch.int64)
            actions[1] = int(t % cycle == 0)
            actions[2] = (torch.rand(env.n_agents, generator=generator) < 0.1).long()
            reward = env.step(actions).reward
            if t >= skip:
                total += reward
    finally:
        env.close()
    return {name: float(v) / (steps - skip) for name, v in zip(POLICIES, total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--skip", type=int, default=200)
    parser.add_argument("--cycle", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--options", type=json.loads, default={}, help="env options as JSON, e.g. '{\"rows\": 3}'")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/traffic_fixed_policies.json"))
    args = parser.parse_args()
    rows = {}
    for seed in args.seeds:
        start = time.perf_counter()
        rows[seed] = run(seed, args.steps, args.skip, args.cycle, args.options)
        print(
            f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[seed].items()),
            f"({time.perf_counter() - start:.0f} s)",
        )
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "mean_global_reward_per_step": rows,
        "settings": {"steps": args.steps, "skip": args.skip, "cycle": args.cycle, "options": args.options},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
