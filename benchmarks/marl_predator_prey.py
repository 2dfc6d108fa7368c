"""DMIX (risk-neutral) vs ROE on predator-prey with miscapture punishment,
and on the other preset tasks (``--task``: level-based foraging, MPE simple_spread).

Trains the ``dmix/predator-prey`` and ``roe/predator-prey`` presets (4 agents, 4 stags, 7 x 7, limit
50, punishment -2, DFAC hyperparameters) for each seed and records the greedy evaluation curve
(mean team return over ``eval_episodes`` test episodes every ``eval_every`` env steps) to JSON,
rewritten after every evaluation so a killed run keeps its curve.

The runs in docs/benchmarks.md (two processes share the seeds; --summarize tabulates both):

    python benchmarks/marl_predator_prey.py --steps 100000 --seeds 0 1 2 \\
        --out benchmarks/results/marl_predator_prey_p2.json \\
        env.num_envs=8 train.updates_per_collect=8 agent.risk_anneal_steps=50000
    python benchmarks/marl_predator_prey.py --steps 100000 --seeds 3 4 \\
        --out benchmarks/results/marl_predator_prey_p2_b.json \\
        env.num_envs=8 train.updates_per_collect=8 agent.risk_anneal_steps=50000
    python benchmarks/marl_predator_prey.py --summarize 'benchmarks/results/marl_predator_prey_p2*_seed*.json' \\
        --out benchmarks/results/marl_predator_prey_p2.json --title "Predator-prey, punishment -2"

(punishment 0: add ``env.options.punishment=0.0`` and use ``_p0`` names.) ``--task`` trains another
preset task the same way; the level-based foraging and MPE runs in docs/benchmarks.md:

    python benchmarks/marl_predator_prey.py --task lbf-6x6-coop --steps 200000 --seeds 0 1 2 \\
        --variants dmix --out benchmarks/results/marl_lbf_6x6_p05.json \\
        env.num_envs=8 train.updates_per_collect=8 agent.risk_anneal_steps=100000
    (the same with --variants roe; penalty 0 control: env.options.penalty=0.0, marl_lbf_6x6_p0.json)
    python benchmarks/marl_predator_prey.py --task simple-spread --steps 100000 --seeds 0 1 2 \\
        --variants dmix --out benchmarks/results/marl_simple_spread.json \\
        env.num_envs=8 train.updates_per_collect=8 agent.risk_anneal_steps=50000
    (the same with --variants roe)

Deviations from the planned setup, for the 2-core budget: predator-prey 100k env steps (planned:
300k-500k) with T_alpha = 50k (the shorter option), level-based foraging 200k (planned:
500k-1M) with T_alpha = 100k, simple_spread 100k (planned: 500k) with T_alpha = 50k; epsilon over
50k; 8 envs collected at once with 8 updates per collection, which keeps DFAC's one update per
episode (its runner steps one env).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_run(job: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from agents.engine.config import apply_overrides
    from agents.marl import PRESETS, train_config

    variant, task, seed, steps, extra, out = job
    cfg = apply_overrides(
        PRESETS[f"{variant}/{task}"],
        [f"train.seed={seed}", f"train.total_steps={steps}", "train.progress=false", *extra],
    )
    curve: list[tuple[int, float]] = []
    path = Path(out).with_name(f"{Path(out).stem}_{variant}_seed{seed}.json")
    start = time.time()

    def log(step: int, metrics: dict) -> None:
        if "eval/mean_reward" in metrics:
            curve.append((step, float(metrics["eval/mean_reward"])))
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"variant": variant, "seed": seed, "curve": curve, "overrides": extra}))
            os.replace(tmp, path)

    train_config(cfg, log=log)
    return {"variant": variant, "seed": seed, "curve": curve, "seconds": round(time.time() - start)}


# Student t quantiles t(0.975, dof) for the 95% confidence half-width of a mean over few seeds.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def summarize(pattern: str, markdown: Path, figure: Path, title: str, digits: int = 1) -> str:
    """Table (final greedy return per seed, mean +- std, 95% CI, seeds that capture) and curves
    from every per-run file matching ``pattern``; several benchmark processes may have written them."""
    import math
    import statistics

    from agents.robustness.plots import curves

    runs: dict[str, dict[int, list]] = {}
    for path in sorted(Path().glob(pattern)):
        run = json.loads(path.read_text())
        if run["curve"]:
            runs.setdefault(run["variant"], {})[run["seed"]] = run["curve"]
    lines = [
        "| variant | final greedy return per seed | mean +- std | 95% CI | seeds with return > 0 |",
        "|---|---|---|---|---|",
    ]
    series = {}
    for variant, by_seed in sorted(runs.items()):
        finals = [by_seed[seed][-1][1] for seed in sorted(by_seed)]
        mean = statistics.fmean(finals)
        std = statistics.stdev(finals) if len(finals) > 1 else float("nan")
        half = T_975.get(len(finals) - 1, float("nan")) * std / math.sqrt(len(finals))
        steps = [by_seed[seed][-1][0] for seed in sorted(by_seed)]
        per_seed = ", ".join(
            f"{v:.{digits}f} (s{seed}, {step // 1000}k)" for seed, v, step in zip(sorted(by_seed), finals, steps)
        )
        captured = sum(v > 0 for v in finals)
        spread = f"{mean:.{digits}f} +- {std:.{digits}f} | +- {half:.{digits}f}"
        lines.append(f"| {variant} | {per_seed} | {spread} | {captured}/{len(finals)} |")
        # Mean curve over the seeds that reached each evaluation (evaluation steps differ by a few
        # env steps across seeds: aligned by evaluation index).
        length = min(len(c) for c in by_seed.values())
        points = []
        for i in range(length):
            values = [c[i][1] for c in by_seed.values()]
            x = statistics.fmean(c[i][0] for c in by_seed.values())
            points.append((x, statistics.fmean(values), statistics.pstdev(values)))
        series[f"{variant} ({len(by_seed)} seeds)"] = points
    table = "\n".join(lines)
    markdown.write_text(table + "\n")
    curves(series, figure, title, spread_label="mean ± std over seeds")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=["dmix", "roe"])
    parser.add_argument(
        "--task",
        default="predator-prey",
        help="preset task trained as VARIANT/TASK (predator-prey, lbf-6x6-coop, simple-spread, ...)",
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/marl_predator_prey.json")
    parser.add_argument("overrides", nargs="*", help="key=value overrides applied to every run")
    parser.add_argument(
        "--summarize",
        metavar="GLOB",
        help="only tabulate per-run files matching GLOB (e.g. 'benchmarks/results/marl_pp_p2*_seed*.json')",
    )
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/marl_predator_prey.png"))
    parser.add_argument("--title", default="Predator-prey: greedy return", help="figure title (--summarize)")
    parser.add_argument("--digits", type=int, default=1, help="decimals in the table (--summarize)")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize, Path(args.out).with_suffix(".md"), args.figure, args.title, args.digits))
        return
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    jobs = [(v, args.task, s, args.steps, args.overrides, args.out) for s in args.seeds for v in args.variants]
    if args.workers > 1:
        import multiprocessing as mp

        results = mp.get_context("spawn").Pool(args.workers).map(one_run, jobs)
    else:
        results = [one_run(job) for job in jobs]
    Path(args.out).write_text(json.dumps({"steps": args.steps, "overrides": args.overrides, "runs": results}))
    for r in results:
        tail = [round(v, 1) for _, v in r["curve"][-5:]]
        print(f"{r['variant']:<5} seed {r['seed']}: last evals {tail} ({r['seconds']} s)")


if __name__ == "__main__":
    main()
