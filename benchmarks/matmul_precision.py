#!/usr/bin/env python
"""What ``train.matmul_precision`` does to float32 matrix products on this CPU: speed and accuracy.

torch multiplies float32 matrices on CPU with MKL by default (``highest``). With ``medium``
(``torch.set_float32_matmul_precision``) it hands them to oneDNN and allows it to multiply in bfloat16.
Whether oneDNN then does is up to the CPU: with AMX it does (an accuracy trade, as TF32 on GPUs);
without, it multiplies in float32 with its own kernels. This script measures, per precision:

1. GFLOP/s of the matrix products of a SAC update at 128x128 (5 seeds stacked: ``[10, 256, 128] x
   [10, 128, 128]``; one seed: ``[2, 256, 128] x [2, 128, 128]``), of 256x256 layers and of a large
   ``2048^2`` product, one thread, the precisions in alternating blocks (medians);
2. accuracy: the largest error against float64 relative to the largest |entry| (float32 rounding is
   ~1e-7, bfloat16 ~4e-3), and a probe that bfloat16 inputs cannot pass: ``(1 + 2^-10) x ones``
   over 128 terms is 128.125 in float32 and 128 in bfloat16;
3. a whole SAC update: 20 updates of one agent from the same seed under each precision, the largest
   parameter difference between the two (float32 rounding order only, or bfloat16);
4. milliseconds per SAC update at 128x128 under each precision, one seed and 5 seeds stacked
   (``--batched``'s update), one thread, alternating blocks.

  python benchmarks/matmul_precision.py --out benchmarks/results/matmul_precision.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

PRECISIONS = ("highest", "medium")
SHAPES = {  # name: (batch, rows, inner, cols)
    "stacked 5 seeds 128x128 [10,256,128]x[10,128,128]": (10, 256, 128, 128),
    "one seed 128x128 [2,256,128]x[2,128,128]": (2, 256, 128, 128),
    "one seed 256x256 [2,256,256]x[2,256,256]": (2, 256, 256, 256),
    "large [2048,2048]x[2048,2048]": (1, 2048, 2048, 2048),
}


def gflops(shape, precision: str, blocks: int) -> tuple[float, float]:
    """(GFLOP/s median over alternating blocks, relative error against float64) of one precision."""
    batch, rows, inner, cols = shape
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(batch, rows, inner, generator=g), torch.randn(batch, inner, cols, generator=g)
    torch.set_float32_matmul_precision(precision)
    out = torch.bmm(a, b)
    exact = torch.bmm(a.double(), b.double())
    error = ((out.double() - exact).abs().max() / exact.abs().max()).item()
    flop = 2 * batch * rows * inner * cols
    reps = max(3, int(2e9 / flop))
    rates = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(reps):
            torch.bmm(a, b)
        rates.append(flop * reps / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates), error


def bfloat16_probe(precision: str) -> float:
    torch.set_float32_matmul_precision(precision)
    return torch.bmm(torch.full((1, 4, 128), 1 + 2**-10), torch.ones(1, 128, 4))[0, 0, 0].item()


def update_times(seeds: int, blocks: int, updates: int = 30) -> dict[str, float]:
    """Milliseconds per SAC update at 128x128 under each precision (medians of alternating blocks): one
    agent (``seeds`` 1) or the stacked update of ``seeds`` agents (:class:`agents.sac.SeedStack`)."""
    from agents.sac import SAC, SACConfig, SeedStack
    from envs.base import BoxSpec

    def learner():
        members = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            members.append(SAC(BoxSpec((3,)), BoxSpec((1,)), SACConfig(hidden=(128, 128))))
        return SeedStack(members) if seeds > 1 else members[0]

    g = torch.Generator().manual_seed(0)
    batches = [
        {
            "obs": torch.randn(256, 3, generator=g),
            "action": torch.rand(256, 1, generator=g) * 2 - 1,
            "reward": torch.randn(256, generator=g),
            "next_obs": torch.randn(256, 3, generator=g),
            "terminated": torch.zeros(256, dtype=torch.bool),
        }
        for _ in range(seeds)
    ]
    learners = {precision: learner() for precision in PRECISIONS}

    def update(precision: str, i: int) -> None:
        target = learners[precision]
        target.update(batches, step=i) if seeds > 1 else target.update(batches[0], step=i)

    times: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    for block in range(blocks + 1):
        for precision in PRECISIONS[:: 1 if block % 2 == 0 else -1]:
            torch.set_float32_matmul_precision(precision)
            start = time.perf_counter()
            for i in range(updates):
                update(precision, i)
            if block:  # the first block warms up
                times[precision].append((time.perf_counter() - start) / updates * 1e3)
    return {precision: statistics.median(values) for precision, values in times.items()}


def sac_update_difference(updates: int = 20) -> float:
    """Largest parameter difference of one SAC agent (128x128) after ``updates`` updates under highest and
    under medium, same seed, same batches."""
    from agents.sac import SAC, SACConfig
    from envs.base import BoxSpec

    params = {}
    for precision in PRECISIONS:
        torch.set_float32_matmul_precision(precision)
        torch.manual_seed(0)
        agent = SAC(BoxSpec((3,)), BoxSpec((1,)), SACConfig(hidden=(128, 128)))
        g = torch.Generator().manual_seed(1)
        for i in range(updates):
            batch = {
                "obs": torch.randn(256, 3, generator=g),
                "action": torch.rand(256, 1, generator=g) * 2 - 1,
                "reward": torch.randn(256, generator=g),
                "next_obs": torch.randn(256, 3, generator=g),
                "terminated": torch.zeros(256, dtype=torch.bool),
            }
            torch.manual_seed(100 + i)
            agent.update(batch, step=i)
        params[precision] = [p.detach().clone() for p in [*agent.actor.parameters(), *agent.critic.parameters()]]
    return max((x - y).abs().max().item() for x, y in zip(*params.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=6, help="alternating timing blocks per precision and shape")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result: dict = {"cpus": os.cpu_count(), "machine": platform.platform(), "torch": torch.__version__, "shapes": {}}
    for name, shape in SHAPES.items():
        row = {}
        for precision in PRECISIONS:  # alternate: one block of each in turn
            row[precision] = gflops(shape, precision, 1)
        runs = {p: [row[p][0]] for p in PRECISIONS}
        for block in range(1, args.blocks):
            for precision in PRECISIONS[:: 1 if block % 2 == 0 else -1]:
                runs[precision].append(gflops(shape, precision, 1)[0])
        entry = {p: {"gflops": statistics.median(runs[p]), "relative_error": row[p][1]} for p in PRECISIONS}
        entry["medium/highest"] = entry["medium"]["gflops"] / entry["highest"]["gflops"]
        result["shapes"][name] = entry
        arms = ", ".join(
            f"{p} {entry[p]['gflops']:.0f} GFLOP/s (error {entry[p]['relative_error']:.1e})" for p in PRECISIONS
        )
        print(f"{name}: {arms}, medium/highest {entry['medium/highest']:.2f}x")
    result["bfloat16_probe"] = {p: bfloat16_probe(p) for p in PRECISIONS}
    result["bfloat16_probe"]["float32_value"] = 128 * (1 + 2**-10)
    print(f"probe (float32 gives 128.125, bfloat16 128.0): {result['bfloat16_probe']}")
    result["sac_update_max_param_difference"] = sac_update_difference()
    print(f"SAC 128x128, 20 updates, highest vs medium: largest parameter difference "
          f"{result['sac_update_max_param_difference']:.1e}")  # fmt: skip
    torch.set_flush_denormal(True)  # as the runner does by default
    for seeds in (1, 5):
        ms = update_times(seeds, args.blocks)
        result[f"sac_update_ms_{seeds}_seeds"] = {**ms, "highest/medium": ms["highest"] / ms["medium"]}
        print(f"SAC 128x128 update, {seeds} seed(s){' stacked' if seeds > 1 else ''}: highest {ms['highest']:.2f} ms, "
              f"medium {ms['medium']:.2f} ms, {ms['highest'] / ms['medium']:.2f}x")  # fmt: skip
    torch.set_float32_matmul_precision("highest")
    if args.out:
        from agents.experiments.sweep import write_json_atomic

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
