#!/usr/bin/env python
"""What the runner's allocator setting (:func:`agents.engine.allocator.retain_freed_memory`) does to
SAC's update: milliseconds and minor page faults per update, glibc's default malloc against the tuned one.

Each measurement is a fresh process (the setting is per process and cannot be undone) that builds the
update, takes 20 untimed updates on fresh random batches (as replay gives them), then times
``--updates`` more and counts the minor page faults (``getrusage``) they took. Cases:

  stacked   the seed-stacked update of 5 seeds (agents.sac.SeedStack), 2x128 networks, batch 256
  single    one SAC agent's update, 2x256 networks, batch 256

Both at Pendulum sizes (3 -> hidden -> 1) and ``--threads`` torch threads. Default and tuned alternate
within each round; the result is every round and the medians.

  python benchmarks/page_faults.py --rounds 3 --out benchmarks/results/page_faults.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = """
import resource, sys, time, torch
sys.path.insert(0, {root!r})
from agents.engine.allocator import retain_freed_memory
from agents.sac import SAC, SACConfig, SeedStack
from envs.base import BoxSpec
torch.set_num_threads({threads})
if {retain}:
    assert retain_freed_memory()
seeds, hidden = (5, 128) if {case!r} == "stacked" else (1, 256)
members = []
for seed in range(seeds):
    torch.manual_seed(seed)
    members.append(SAC(BoxSpec((3,)), BoxSpec((1,)), SACConfig(hidden=(hidden, hidden))))
g = torch.Generator().manual_seed(0)
def batch():
    return {{"obs": torch.randn(256, 3, generator=g), "action": torch.rand(256, 1, generator=g) * 2 - 1,
            "reward": torch.randn(256, generator=g), "next_obs": torch.randn(256, 3, generator=g),
            "terminated": torch.zeros(256, dtype=torch.bool)}}
if {case!r} == "stacked":
    stack = SeedStack(members)
    update = lambda step: stack.update([batch() for _ in range(seeds)], step=step)
else:
    update = lambda step: members[0].update(batch(), step=step)
for step in range(20):
    update(step)
faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
for step in range({updates}):
    update(20 + step)
ms = (time.perf_counter() - start) * 1e3 / {updates}
print(ms, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / {updates})
"""


def measure(case: str, retain: bool, args) -> tuple[float, float]:
    code = WORKER.format(root=str(ROOT), threads=args.threads, retain=retain, case=case, updates=args.updates)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ms, faults = out.stdout.split()
    return float(ms), float(faults)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=200, help="timed updates per measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows: dict[str, list] = {f"{case}/{mode}": [] for case in ("stacked", "single") for mode in ("default", "retain")}
    for round_ in range(args.rounds):
        for case in ("stacked", "single"):
            modes = ("default", "retain") if round_ % 2 == 0 else ("retain", "default")
            for mode in modes:
                ms, faults = measure(case, mode == "retain", args)
                rows[f"{case}/{mode}"].append({"ms_per_update": ms, "faults_per_update": faults})
                print(f"round {round_} {case:8s} {mode:8s} {ms:6.2f} ms/update {faults:8.1f} faults/update", flush=True)
    result = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "updates": args.updates,
        "rounds": rows,
        "medians": {
            key: {k: statistics.median(r[k] for r in values) for k in ("ms_per_update", "faults_per_update")}
            for key, values in rows.items()
        },
    }
    for case in ("stacked", "single"):
        default, retain = result["medians"][f"{case}/default"], result["medians"][f"{case}/retain"]
        speedup = default["ms_per_update"] / retain["ms_per_update"]
        result["medians"][f"{case}/speedup"] = speedup
        print(
            f"{case}: default {default['ms_per_update']:.2f} ms ({default['faults_per_update']:.0f} faults), "
            f"retained {retain['ms_per_update']:.2f} ms ({retain['faults_per_update']:.0f} faults): {speedup:.2f}x"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
