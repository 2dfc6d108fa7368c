#!/usr/bin/env python
"""Cost of prioritized experience replay against uniform sampling, on CPU, at a million rows.

Prioritized replay: Schaul et al., "Prioritized Experience Replay", ICLR 2016 (arXiv:1511.05952);
the sampler is :class:`agents.engine.prioritized.PrioritizedSampler`. One full buffer of
``--capacity`` rows with a MuJoCo-sized field spec (obs 17 floats, action 6, reward, next_obs,
terminated) is sampled uniformly and, sharing the same storage tensors, through the sampler whose
priorities were set from random TD errors. Timed per call, batch ``--batch``:

- ``uniform_sample``: ``buffer.sample(B)`` (``torch.randint`` + one gather per field)
- ``per_sample``: ``buffer.sample(B, step=)`` with the sampler (stratified tree search, importance
  weights, the same gathers)
- ``per_update``: ``buffer.update_priorities(index, td_error)`` for a sampled batch
- ``per_step``: ``per_sample + per_update``, what one prioritized learner update adds over uniform

Each of ``--rounds`` rounds runs ``--burn-in`` untimed calls, then times blocks of ``--block`` calls
of each operation in turn (interleaved, so a machine whose load changes affects all alike). The
reported cost is the median over blocks; the ratio ``per_sample / uniform_sample`` is the median of
per-block-pair ratios. The fastest block (``best_us``) is reported too: on a shared machine it
is the cost with the least interference. Deviations from the reference: none (a measurement, not an algorithm).

  python benchmarks/per_cost.py --threads 1 2 --rounds 5 --blocks 40 --out benchmarks/results/per_cost.json

``--fanout`` overrides the sum tree's leaves per group (default: automatic, 32 at a million rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from agents.engine.buffers import TransitionBuffer  # noqa: E402
from agents.engine.prioritized import PrioritizedConfig, PrioritizedSampler  # noqa: E402

FIELDS = {
    "obs": ((17,), torch.float32),
    "action": ((6,), torch.float32),
    "reward": ((), torch.float32),
    "next_obs": ((17,), torch.float32),
    "terminated": ((), torch.bool),
}


def build(capacity: int, fanout: int | None = None) -> tuple[TransitionBuffer, TransitionBuffer]:
    """A full uniform buffer and a prioritized one sharing its storage (random rows, random priorities)."""
    generator = torch.Generator().manual_seed(0)
    uniform = TransitionBuffer(FIELDS, capacity, seed=0)
    chunk = 1 << 16
    for start in range(0, capacity, chunk):
        n = min(chunk, capacity - start)
        uniform.extend(
            {
                "obs": torch.randn(n, 17, generator=generator),
                "action": torch.rand(n, 6, generator=generator) * 2 - 1,
                "reward": torch.randn(n, generator=generator),
                "next_obs": torch.randn(n, 17, generator=generator),
                "terminated": torch.rand(n, generator=generator) < 0.01,
            }
        )
    config = PrioritizedConfig()
    sampler = PrioritizedSampler(capacity, alpha=config.alpha, beta=config.beta_start, eps=config.eps, fanout=fanout)
    prioritized = TransitionBuffer(FIELDS, capacity, seed=0, sampler=sampler)
    prioritized.storage, prioritized.size, prioritized.cursor = uniform.storage, uniform.size, uniform.cursor
    # TD errors of a learning critic are heavy-tailed: |N(0, 1)|^2 spans several decades
    prioritized.update_priorities(torch.arange(capacity), torch.randn(capacity, generator=generator).pow(2))
    return uniform, prioritized


def measure(uniform: TransitionBuffer, prioritized: TransitionBuffer, args) -> dict:
    generator = torch.Generator().manual_seed(1)
    td_errors = [torch.randn(args.batch, generator=generator) for _ in range(64)]
    step = 0
    sampled = prioritized.sample(args.batch)

    def uniform_sample():
        uniform.sample(args.batch)

    def per_sample():
        nonlocal sampled, step
        step += 1
        sampled = prioritized.sample(args.batch, step=step)

    def per_update():
        prioritized.update_priorities(sampled["index"], td_errors[step % 64])

    operations = {"uniform_sample": uniform_sample, "per_sample": per_sample, "per_update": per_update}
    blocks: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(args.rounds):
        for _ in range(args.burn_in):
            for fn in operations.values():
                fn()
        for _ in range(args.blocks):
            for name, fn in operations.items():
                start = time.perf_counter()
                for _ in range(args.block):
                    fn()
                blocks[name].append((time.perf_counter() - start) / args.block * 1e6)
    median = {name: statistics.median(times) for name, times in blocks.items()}
    median["per_step"] = statistics.median(s + u for s, u in zip(blocks["per_sample"], blocks["per_update"]))
    ratios = {
        "per_sample_over_uniform": statistics.median(
            p / u for p, u in zip(blocks["per_sample"], blocks["uniform_sample"])
        ),
        "per_step_over_uniform": statistics.median(
            (p + q) / u for p, q, u in zip(blocks["per_sample"], blocks["per_update"], blocks["uniform_sample"])
        ),
    }
    # the fastest block: the cost with the least interference from other processes on the machine
    best = {name: min(times) for name, times in blocks.items()}
    best["per_step"] = min(s + u for s, u in zip(blocks["per_sample"], blocks["per_update"]))
    ratios["best_per_sample_over_uniform"] = best["per_sample"] / best["uniform_sample"]
    ratios["best_per_step_over_uniform"] = best["per_step"] / best["uniform_sample"]
    return {"median_us": median, "best_us": best, "ratio": ratios, "blocks": len(blocks["uniform_sample"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burn-in", type=int, default=50, help="untimed calls of each operation per round")
    parser.add_argument("--blocks", type=int, default=30, help="timed blocks per round")
    parser.add_argument("--block", type=int, default=20, help="calls per timed block")
    parser.add_argument("--fanout", type=int, default=None, help="sum tree leaves per group (default: automatic)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "per_cost.json")
    args = parser.parse_args()

    uniform, prioritized = build(args.capacity, args.fanout)
    results = {}
    load_before = os.getloadavg()
    for threads in args.threads:
        torch.set_num_threads(threads)
        results[str(threads)] = measure(uniform, prioritized, args)
    load_after = os.getloadavg()

    print(f"PER vs uniform, capacity {args.capacity:,}, batch {args.batch}, CPU (microseconds per call, median)")
    print(f"{'threads':>7} {'':>6} {'uniform':>9} {'per sample':>11} {'per update':>11} {'sample x':>9} {'step x':>7}")
    for threads, r in results.items():
        for kind, prefix in (("median", ""), ("best", "best_")):
            m, q = r[f"{kind}_us"], r["ratio"]
            print(
                f"{threads:>7} {kind:>6} {m['uniform_sample']:>9.1f} {m['per_sample']:>11.1f} {m['per_update']:>11.1f}"
                f" {q[prefix + 'per_sample_over_uniform']:>9.2f} {q[prefix + 'per_step_over_uniform']:>7.2f}"
            )
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min)")
    report = {
        "what": "cost per call of uniform vs prioritized sampling and priority updates (microseconds)",
        "capacity": args.capacity,
        "batch": args.batch,
        "fields": {
            name: f"{list(shape)} {str(dtype).removeprefix('torch.')}" for name, (shape, dtype) in FIELDS.items()
        },
        "fanout": prioritized.sampler.tree.fanout,
        "rounds": args.rounds,
        "burn_in": args.burn_in,
        "block": args.block,
        "threads": results,
        "load_average_1min": [load_before[0], load_after[0]],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "command": " ".join(["python", "benchmarks/per_cost.py", *sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
