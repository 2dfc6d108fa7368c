#!/usr/bin/env python
"""Speed of seed-batched SAC (``train.py --seeds 0-4 --batched``) against the same seeds as separate runs.

Two measurements, both on CPU, SAC on Pendulum-v1 with ``--hidden`` networks:

1. End to end, seed-steps per second (K seeds x total_steps / wall seconds), each arm as the user runs
   it from the command line: the batched sweep (one process, ``train.threads`` threads) against K
   ordinary ``train.py`` runs, ``--parallel`` processes at a time (``train.threads`` each). Process
   start-up and the final evaluations are included in both arms. Note the cores: the batched arm
   uses ``threads`` cores, the separate arm ``parallel x threads``.
2. The bare update, updates per second of all K seeds: one stacked update
   (:class:`agents.sac.SeedStack`) against K eager ``SAC.update`` calls (and, with ``--compile``, the
   stacked step under ``agent.compile``), same batches, one process, the arms in alternating blocks.
   The ceiling beside it: the same stacked update with 8-unit layers on 8-row batches costs what the
   update costs besides arithmetic (dispatch, autograd, Python); the full update minus that is its
   arithmetic, and K eager updates' time over that arithmetic is the most stacking could give.

  python benchmarks/batched_speed.py                                   # K=5, 2,000 steps, 128x128
  python benchmarks/batched_speed.py --skip-end-to-end --compile --hidden 256     # bare update, + agent.compile
  python benchmarks/batched_speed.py --seeds 5 --steps 20000 --hidden 256 --out benchmarks/results/batched_speed.json
  python benchmarks/batched_speed.py --steps 20000 --batched-threads 2 --set agent.compile=true   # same 2 cores
  python benchmarks/batched_speed.py --steps 10000 --batched-threads 2 --parallel 5 --rounds 3 --compiled-arms
  python benchmarks/batched_speed.py --steps 10000 --batched-threads 2 --parallel 5 --rounds 3 --matmul-precision medium
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing


def overrides(args, threads: int | None = None, compiled: bool = False) -> list[str]:
    width = f"[{args.hidden},{args.hidden}]"
    threads = args.threads if threads is None else threads
    return [
        *(["agent.compile=true"] if compiled else []),
        f"train.total_steps={args.steps}",
        f"train.update_after_steps={args.update_after}",
        "train.eval_every=0",
        "train.eval_episodes=1",
        "train.checkpoint_every=0",
        "train.progress=false",
        f"train.threads={threads}",
        f"train.matmul_precision={args.matmul_precision}",
        f"agent.hidden={width}",
        *args.set,
    ]


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


def batched_wall(args, root: Path, compiled: bool = False) -> float:
    """Wall seconds of ``train.py sac --seeds 0-(K-1) --batched`` (one process)."""
    argv = [sys.executable, str(ROOT / "train.py"), "sac", "--seeds", f"0-{args.seeds - 1}", "--batched"]
    argv += ["--sweep-dir", str(root), "--no-progress", *overrides(args, args.batched_threads, compiled)]
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, env=child_env(args.batched_threads), capture_output=True)
    return time.perf_counter() - start


def separate_wall(args, root: Path, compiled: bool = False) -> float:
    """Wall seconds of K ordinary ``train.py sac seed=k`` runs, ``parallel`` at a time."""
    queue = list(range(args.seeds))
    running: list[subprocess.Popen] = []
    start = time.perf_counter()
    while queue or running:
        while queue and len(running) < args.parallel:
            seed = queue.pop(0)
            argv = [sys.executable, str(ROOT / "train.py"), "sac", f"seed={seed}", *overrides(args, compiled=compiled)]
            argv += ["--run-dir", str(root / f"seed{seed}")]
            running.append(
                subprocess.Popen(
                    argv, cwd=ROOT, env=child_env(args.threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            )
        for proc in list(running):
            if proc.poll() is not None:
                running.remove(proc)
                if proc.returncode != 0:
                    raise RuntimeError(f"a separate run failed: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.05)
    return time.perf_counter() - start


def update_rates(args) -> dict[str, float]:
    """Updates per second of all K seeds on a fixed set of batches, per arm: ``stacked`` (one eager
    :class:`SeedStack` update), ``eager_k_updates`` (K eager ``SAC.update`` calls) and, with
    ``--compile``, ``compiled`` (the stacked step under ``agent.compile``; its first update, the compile,
    is timed apart as ``compile_s``). The arms run in alternating blocks (``--blocks`` of ``--updates``
    each, the order reversed every other block) and each rate is the median over the blocks, as are the
    ratios ``<arm>/eager`` of same-block rates: on a shared machine the load drifts."""
    import dataclasses
    import statistics

    import torch

    from agents.engine.config import LoopConfig
    from agents.engine.run import prepare_process
    from agents.sac import SAC, SACConfig, SeedStack
    from envs.base import BoxSpec

    # the process settings a run trains under (threads, allocator, subnormals flushed, matmul precision)
    prepare_process(LoopConfig(threads=args.threads, matmul_precision=args.matmul_precision))
    config = SACConfig(hidden=(args.hidden, args.hidden), actor_lr=1e-3, critic_lr=1e-3, temperature_lr=1e-3)

    def agents(cfg):
        out = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            out.append(SAC(BoxSpec((3,)), BoxSpec((1,)), cfg))
        return out

    g = torch.Generator().manual_seed(0)

    def fixed_batches(size: int) -> list[dict[str, torch.Tensor]]:
        return [
            {
                "obs": torch.randn(size, 3, generator=g),
                "action": torch.rand(size, 1, generator=g) * 2 - 1,
                "reward": torch.randn(size, generator=g),
                "next_obs": torch.randn(size, 3, generator=g),
                "terminated": torch.zeros(size, dtype=torch.bool),
            }
            for _ in range(args.seeds)
        ]

    batches, tiny_batches = fixed_batches(256), fixed_batches(8)
    stack, eager = SeedStack(agents(config)), agents(config)
    # The same stacked update with 8-unit layers on 8-row batches: what it costs besides arithmetic
    tiny = SeedStack(agents(dataclasses.replace(config, hidden=(8, 8))))
    arms = {
        "stacked": lambda i: stack.update(batches, step=i),
        "eager_k_updates": lambda i: [agent.update(batch, step=i) for agent, batch in zip(eager, batches)],
        "stacked_overhead": lambda i: tiny.update(tiny_batches, step=i),
    }
    result = {}
    if args.compile:
        compiled = SeedStack(agents(dataclasses.replace(config, compile=True)))
        start = time.perf_counter()
        compiled.update(batches, step=0)
        result["compile_s"] = time.perf_counter() - start
        if compiled._compiled_step is None:
            raise RuntimeError("agent.compile fell back to eager: no compiled arm to time")
        arms["compiled"] = lambda i: compiled.update(batches, step=i)
    for step_fn in arms.values():
        for i in range(10):  # warm up
            step_fn(i)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for block in range(args.blocks):
        for name in list(arms)[:: 1 if block % 2 == 0 else -1]:
            start = time.perf_counter()
            for i in range(args.updates):
                arms[name](i)
            rates[name].append(args.updates / (time.perf_counter() - start))
    for name, values in rates.items():
        result[name] = statistics.median(values)
        if name not in ("eager_k_updates", "stacked_overhead"):
            ratios = [a / b for a, b in zip(values, rates["eager_k_updates"])]
            result[f"{name}/eager"] = statistics.median(ratios)
            result[f"{name}/eager_range"] = [min(ratios), max(ratios)]
    # The ceiling: the stacked update with its per-call cost gone, only the arithmetic of K seeds left
    arithmetic_s = max(1 / result["stacked"] - 1 / result["stacked_overhead"], 1e-9)
    result["stacked_arithmetic_ms"] = arithmetic_s * 1e3
    result["stacked/eager_ceiling"] = (1 / arithmetic_s) / result["eager_k_updates"]
    return result


def end_to_end(args) -> dict:
    """Seed-steps per second of each arm, as the user runs it: ``batched`` (one ``--batched`` process) and
    ``separate`` (K processes), with ``--compiled-arms`` also both under ``agent.compile``. ``--rounds``
    rounds, the arms' order rotated every round (the load of a shared machine drifts); per round and the
    medians, and the ratios batched / separate of same-round rates (medians): ``ratio`` eager against
    eager, ``ratio_compiled`` compiled against compiled, ``ratio_best`` the faster batched arm against
    the faster separate arm. Before the timed rounds one short untimed run of each compiled arm fills
    inductor's on-disk cache, so no timed round pays a first compile (each process still loads its
    graphs, as a user's second run does)."""
    import statistics

    arms = {"batched": (batched_wall, False), "separate": (separate_wall, False)}
    if args.compiled_arms:
        arms["batched_compiled"] = (batched_wall, True)
        arms["separate_compiled"] = (separate_wall, True)
        warm = argparse.Namespace(**{**vars(args), "steps": args.update_after + 100, "seeds": 2, "parallel": 1})
        with tempfile.TemporaryDirectory() as tmp:
            batched_wall(warm, Path(tmp) / "batched", compiled=True)
            separate_wall(warm, Path(tmp) / "separate", compiled=True)
    seed_steps = args.seeds * args.steps
    names = list(arms)
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        rates = {}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, compiled = arms[name]
            with tempfile.TemporaryDirectory() as tmp:
                rates[name] = seed_steps / wall(args, Path(tmp), compiled=compiled)
        rounds.append(rates)
        line = ", ".join(f"{name} {rates[name]:,.0f}" for name in names)
        print(f"end to end, round {r + 1}/{args.rounds}, seed-steps/s: {line}", flush=True)

    def median_ratio(top: str, bottom: str) -> float:
        return statistics.median(rates[top] / rates[bottom] for rates in rounds)

    out: dict = {name: statistics.median(rates[name] for rates in rounds) for name in names}
    out["ratio"] = median_ratio("batched", "separate")
    if args.compiled_arms:
        out["ratio_compiled"] = median_ratio("batched_compiled", "separate_compiled")
        out["ratio_batched_compiled_to_separate"] = median_ratio("batched_compiled", "separate")
        out["ratio_best"] = statistics.median(
            max(rates["batched"], rates["batched_compiled"]) / max(rates["separate"], rates["separate_compiled"])
            for rates in rounds
        )
    out["rounds"] = rounds
    out["batched_cores"] = args.batched_threads
    out["separate_cores"] = min(args.threads * args.parallel, os.cpu_count() or 1)
    ratios = ", ".join(f"{key} {out[key]:.2f}x" for key in out if key.startswith("ratio"))
    print(
        f"end to end, {args.seeds} seeds x {args.steps:,} steps, medians of {args.rounds} round(s): {ratios} "
        f"(batched: 1 process, {args.batched_threads} thread(s); separate: {args.parallel} at a time, "
        f"{args.threads} thread(s) each)"
    )
    return out


def main() -> int:
    from agents.engine.config import MATMUL_PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="K seeds")
    parser.add_argument("--steps", type=int, default=2_000, help="env steps per seed")
    parser.add_argument("--update-after", type=int, default=200, help="warm-up steps (random actions, no updates)")
    parser.add_argument("--hidden", type=int, default=128, help="width of the two hidden layers")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--parallel", type=int, default=2, help="separate runs at a time")
    parser.add_argument(
        "--batched-threads",
        type=int,
        help="torch threads of the batched process (default --threads; "
        "--parallel x --threads puts it on the separate runs' cores)",
    )
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="more overrides for both arms (agent.compile=true)"
    )
    parser.add_argument("--updates", type=int, default=20, help="timed updates per block in the bare-update part")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks per arm in the bare-update part")
    parser.add_argument("--compile", action="store_true", help="also time the stacked step under agent.compile")
    parser.add_argument("--skip-end-to-end", action="store_true", help="only the bare-update part")
    parser.add_argument(
        "--matmul-precision",
        default="highest",
        choices=MATMUL_PRECISIONS,
        help="train.matmul_precision of every arm (medium: oneDNN's CPU matrix products)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="end-to-end rounds (the arms' order rotated each)")
    parser.add_argument(
        "--compiled-arms", action="store_true", help="end to end, also both arms under agent.compile (4 arms)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    args.batched_threads = args.batched_threads or args.threads

    result = {
        "seeds": args.seeds,
        "steps": args.steps,
        "hidden": args.hidden,
        "threads": args.threads,
        "batched_threads": args.batched_threads,
        "parallel": args.parallel,
        "set": args.set,
        "matmul_precision": args.matmul_precision,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.platform(),
    }
    rates = update_rates(args)
    result["updates_per_s"] = rates
    line = f"bare update, all {args.seeds} seeds (median of {args.blocks} alternating blocks): "
    line += f"{args.seeds} eager updates {rates['eager_k_updates']:.1f}/s, stacked {rates['stacked']:.1f}/s "
    line += f"({rates['stacked/eager']:.2f}x; its arithmetic alone {rates['stacked_arithmetic_ms']:.1f} ms, "
    line += f"a ceiling of {rates['stacked/eager_ceiling']:.2f}x)"
    if args.compile:
        line += f", compiled stacked {rates['compiled']:.1f}/s ({rates['compiled/eager']:.2f}x; "
        line += f"first update, the compile, {rates['compile_s']:.0f} s)"
    print(line)
    if not args.skip_end_to_end:
        result["seed_steps_per_s"] = end_to_end(args)
    print(f"load average during the run: {result['load_average']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
