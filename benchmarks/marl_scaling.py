#!/usr/bin/env python
"""Scaling of the vectorized episodic collection: env-steps/s at N parallel envs.

Times ``EpisodeCollector.collect`` (GRU agent acting with its ROE fraction sampler, the torch
predator-prey env stepping, episode tensors filled on the device) for N = 1, 8, 32 envs, after a
burn-in. One env step counts one step of one env. Training updates are left out: their cost does
not depend on N (one batch of episodes per update).

  python benchmarks/marl_scaling.py --threads 2 --envs 1 8 32
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing


def steps_per_second(num_envs: int, repeats: int, preset: str) -> float:
    from agents import get_preset
    from agents.engine.episodes import EpisodeCollector
    from agents.marl import build
    from envs.multiagent import make_marl_env

    config = get_preset(preset)
    env = make_marl_env(config.env.id, num_envs, device="cpu", seed=0, **dict(config.env.options))
    agent = build(config)
    collector = EpisodeCollector(env, agent, seed=0)
    collector.collect(step=0)  # burn-in
    start = time.perf_counter()
    steps = 0
    for _ in range(repeats):
        episodes, _ = collector.collect(step=0)
        steps += int(episodes["filled"].sum())
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="roe/predator-prey")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/marl_scaling.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rates = {n: steps_per_second(n, args.repeats, args.preset) for n in args.envs}
    base = rates[min(rates)]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "preset": args.preset,
        "threads": args.threads,
        "env_steps_per_second": rates,
        "speedup_vs_smallest": {n: r / base for n, r in rates.items()},
    }
    for n, r in rates.items():
        print(f"N={n:>3}: {r:9.0f} env-steps/s  ({r / base:.1f}x N={min(rates)})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
