#!/usr/bin/env python
"""Oversubscription: SAC updates/s of one process alone against two side by side, per thread setting.

Each worker is a fresh Python process that builds regula's SAC (Pendulum sizes: 3 -> 256x256 -> 1,
batch 256), takes 20 untimed updates, then counts updates for ``--seconds`` of wall time (a fixed
time, not a fixed count, so a collapsed setting costs no more than a healthy one). A setting is a
torch thread count and an OpenMP wait policy (the environment a worker starts with):

  spin2     2 threads, OpenMP's default wait policy (GNU OpenMP spins ~300k iterations before sleeping)
  passive2  2 threads, OMP_WAIT_POLICY=PASSIVE (idle OpenMP workers sleep at once)
  bounded2  2 threads, GOMP_SPINCOUNT=20000 (idle workers spin ~0.2 ms, then sleep; what train.py sets)
  one       1 thread (no OpenMP workers; what train.threads=0 now resolves to for CPU runs)

For each round and setting: one worker alone, then two at once. The settings alternate within every
round, so a change of background load hits them alike; the result is the ratio "per-process rate
beside a twin / rate alone" and the medians over rounds.

  python benchmarks/threads_under_load.py --rounds 3 --seconds 4 --out benchmarks/results/threads_under_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "spin2": (2, {}),
    "passive2": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "bounded2": (2, {"GOMP_SPINCOUNT": "20000"}),
    "one": (1, {}),
}
WORKER = """
import sys, time, torch
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
from agents.engine.allocator import retain_freed_memory
retain_freed_memory()  # as the runner does
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec
agent = SAC(BoxSpec((3,)), BoxSpec((1,)), SACConfig())
g = torch.Generator().manual_seed(0)
batch = {{"obs": torch.randn(256, 3, generator=g), "action": torch.rand(256, 1, generator=g) * 2 - 1,
         "reward": torch.randn(256, generator=g), "next_obs": torch.randn(256, 3, generator=g),
         "terminated": torch.zeros(256, dtype=torch.bool)}}
for _ in range(20):
    agent.update(batch, step=0)
print("ready", flush=True)
sys.stdin.readline()  # start together
n, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    agent.update(batch, step=0)
    n += 1
print(n / (time.perf_counter() - start), flush=True)
"""


def run_workers(setting: str, count: int, seconds: float) -> list[float]:
    threads, extra = SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra)
    code = WORKER.format(root=str(ROOT), threads=threads, seconds=seconds)
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True, "env": env}
    procs = [subprocess.Popen([sys.executable, "-c", code], **pipes) for _ in range(count)]
    for p in procs:  # imports and warm-up done in all before any clock starts
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return [float(p.communicate()[0].strip()) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for r in range(args.rounds):
        for setting in args.settings:
            load = os.getloadavg()[0]
            alone = run_workers(setting, 1, args.seconds)[0]
            pair = run_workers(setting, 2, args.seconds)
            row = {"round": r, "setting": setting, "load1": load, "alone": alone, "pair": pair}
            row["pair_over_alone"] = statistics.mean(pair) / alone
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for setting in args.settings:
        mine = [row for row in rows if row["setting"] == setting]
        summary[setting] = {
            "median_alone_updates_per_s": statistics.median(row["alone"] for row in mine),
            "median_pair_updates_per_s": statistics.median(statistics.mean(row["pair"]) for row in mine),
            "median_pair_over_alone": statistics.median(row["pair_over_alone"] for row in mine),
        }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count()}
        result.update({"args": vars(args) | {"out": str(args.out)}, "rounds": rows, "summary": summary})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
