"""The suite's earlier benchmark results, re-aggregated through the shared statistics of ``evaluate.py --compare``.

The earlier benchmark scripts each computed their own mean +- std and t-intervals. This script reads
their raw per-seed results (``benchmarks/results/*.json``: evaluation curves or final scores per seed)
and feeds them to :func:`agents.experiments.aggregate.aggregate_runs`, the code behind ``evaluate.py
--compare``: IQM with 95% stratified-bootstrap intervals per task, probability of improvement between
the methods, performance profiles and learning curves with interval bands. One report per benchmark
goes to ``benchmarks/results/aggregate/<name>/`` (summary.md, summary.json, PNGs); ``--doc`` prints
the markdown section of docs/benchmarks.md.

    python benchmarks/aggregate_existing.py            # writes benchmarks/results/aggregate/*
    python benchmarks/aggregate_existing.py --doc      # and prints the docs section

Scores: the final evaluation of each seed (Pendulum, Hopper, ERC, predator-prey, simple_spread), or
the greedy payoff of each seed (matrix games). With a handful of seeds the IQM is the mean of the
middle half (of 3 seeds: the middle-ranked ones weighted as rliable does); intervals are wide.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.experiments.aggregate import RunRecord, aggregate_runs, curve_record  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def sac_learning(env: str) -> list[RunRecord]:
    """regula SAC (and stable-baselines3 where measured) on ``env``: one curve per seed."""
    runs = load(f"sac_learning_{env}.json")["runs"]
    labels = {"regula": "regula SAC", "sb3": "stable-baselines3 SAC"}
    return [
        curve_record(labels[key.split("/")[0]], env, int(key.split("seed")[1]), curve) for key, curve in runs.items()
    ]


def erc(suite: str) -> list[RunRecord]:
    """ERC and its weight-0 baseline, one curve per seed (benchmark A: DQN on CartPole, B: SAC on cartpole-swingup)."""
    data = load("erc.json")["suites"][suite]
    task = {"A": "CartPole-v1", "B": "dmc:cartpole-swingup"}[suite]
    return [
        curve_record(f"{arm} ({data['presets'][arm]})", task, int(seed), run["curve"])
        for arm, arm_data in data["arms"].items()
        for seed, run in arm_data["seeds"].items()
    ]


def matrix_games() -> list[RunRecord]:
    """Greedy payoff per seed of ROE and its risk-neutral baseline on the three games (mixers DDN and DMIX)."""
    records = []
    for run in load("marl_matrix_games.json")["runs"].values():
        method = f"{'ROE' if run['variant'] == 'roe' else 'baseline'} on {run['mixer'].upper()}"
        records.append(curve_record(method, f"matrix:{run['game']}", int(run["seed"]), [[3000, run["payoff"]]]))
    return records


def per_seed_curves(prefix: str, task: str, variants=("dmix", "roe")) -> list[RunRecord]:
    """One results file per (variant, seed): ``{prefix}_{variant}_seed{k}.json`` with an eval ``curve``."""
    records = []
    for variant in variants:
        for path in sorted(RESULTS.glob(f"{prefix}*_{variant}_seed*.json")):
            data = json.loads(path.read_text())
            records.append(curve_record(variant.upper(), task, int(data["seed"]), data["curve"], str(path.name)))
    return records


BENCHMARKS = {
    "sac_pendulum": ("SAC on Pendulum-v1, 5 seeds, 20k steps", lambda: sac_learning("Pendulum-v1")),
    "sac_hopper": ("SAC on Hopper-v5, 3 seeds each, 100k steps", lambda: sac_learning("Hopper-v5")),
    "erc_a": ("ERC benchmark A: DQN +- ERC on CartPole-v1, 5 seeds, 60k steps", lambda: erc("A")),
    "erc_b": ("ERC benchmark B: SAC +- ERC on DMC cartpole-swingup, 3 seeds, 50k steps", lambda: erc("B")),
    "matrix_games": ("ROE vs risk-neutral baselines on matrix games, 10 seeds", matrix_games),
    "predator_prey_p2": (
        "Predator-prey, miscapture punishment -2, 5 seeds, 100k steps",
        lambda: per_seed_curves("marl_predator_prey_p2", "predator-prey p=-2"),
    ),
    "predator_prey_p0": (
        "Predator-prey, no punishment, 5 seeds, 100k steps",
        lambda: per_seed_curves("marl_predator_prey_p0", "predator-prey p=0"),
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "aggregate", help="where the reports go")
    parser.add_argument("--doc", action="store_true", help="print the docs/benchmarks.md section")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap samples")
    args = parser.parse_args(argv)
    section = []
    for name, (title, read) in BENCHMARKS.items():
        runs = read()
        summary = aggregate_runs(runs, args.out / name, reps=args.reps, seed=0, where=name)
        rows = ["| method | task | seeds | IQM [95% CI] |", "|---|---|---|---|"]
        for method, tasks in summary["per_task"].items():
            for task, entry in tasks.items():
                point, low, high = entry["IQM"]
                rows.append(f"| {method} | {task} | {entry['runs']} | {point:.4g} [{low:.4g}, {high:.4g}] |")
        pairs = [
            f"P({pair}) = {p:.2f} [{lo:.2f}, {hi:.2f}]"
            for pair, (p, lo, hi) in summary["probability_of_improvement"].items()
        ]
        section += [f"#### {title}", "", *rows, ""]
        if pairs:
            section += ["Probability of improvement: " + "; ".join(pairs) + ".", ""]
        print(f"{name}: {len(runs)} runs -> {args.out / name / 'summary.md'}", file=sys.stderr)
    if args.doc:
        print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
