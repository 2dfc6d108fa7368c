#!/usr/bin/env python
"""QCOMBO vs ERNIE-QCOMBO on the 2 x 2 SUMO grid: train, score the traffic shifts, summarize (resumable).

Paper: Bukharin et al., "Robust Multi-Agent Reinforcement Learning via Adversarial Regularization: Theoretical
Foundation and Stable Algorithms", NeurIPS 2023 (arXiv:2310.10810), traffic-light experiments; base learner QCOMBO
(Zhang, Yang and Zha, arXiv:1909.10651). The arms are the presets ``qcombo/grid-2x2`` and
``ernie-qcombo/grid-2x2`` (the same learner; ERNIE weight 0 is QCOMBO bit for bit, tests/test_qcombo.py).

    python benchmarks/traffic_robustness.py run --seeds 0 1 2          # rerun to resume; one run at a time
    python benchmarks/traffic_robustness.py summarize

``run`` trains each (arm, seed) in ``runs/traffic_robustness/<arm>_seed<k>`` through the one runner (a killed run
continues from its newest checkpoint, the simulations replayed) and then scores it with the conditions of
``evaluate.py --traffic`` (agents/traffic/conditions.py): greedy policy, ``--episodes`` simulations per condition,
``--steps`` scored one-second steps after ``--skip`` unscored ones; the report goes to the run's
``eval/traffic.json``. Runs are done in the order seed-major (QCOMBO s0, ERNIE s0, QCOMBO s1, ...), so a partial
benchmark compares the arms on the same seeds.

``summarize`` writes ``benchmarks/results/traffic_robustness.json`` (per arm and condition: mean and std over the
seeds done, the seeds), ``docs/figures/traffic_qcombo_curves.png`` (episode return against env steps, each seed)
and ``docs/figures/traffic_qcombo_robustness.png`` (reward per step by condition, mean +- std over seeds), and a
Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("qcombo", "ernie-qcombo")
RUNS = ROOT / "runs" / "traffic_robustness"
RESULT = ROOT / "benchmarks" / "results" / "traffic_robustness.json"
FIGURES = ROOT / "docs" / "figures"
FIGURE_NAME = "qcombo"  # docs/figures/traffic_<name>_{curves,robustness}.png
EPISODE = 3000  # steps per training episode (the presets')
METRICS = ("reward_per_step", "mean_queue", "mean_delay", "mean_wait", "vehicles_passed_per_hour")
NOISE_GROUP = "obs_noise"


def run_dir(arm: str, seed: int) -> Path:
    return RUNS / f"{arm}_seed{seed}"


def finished(path: Path, total: int) -> bool:
    from agents.engine.checkpoint import Checkpointer

    try:
        latest = Checkpointer(path).latest()
    except Exception:
        return False
    return latest is not None and int(latest.stem.split("_")[-1]) >= total


def train_one(arm: str, seed: int, overrides: list[str]) -> Path:
    from agents import get_preset, run_training
    from agents.engine.config import apply_overrides
    from agents.engine.run import read_config

    path = run_dir(arm, seed)
    config = apply_overrides(get_preset(f"{arm}/grid-2x2"), [f"train.seed={seed}", *overrides])
    if finished(path, config.train.total_steps):
        return path
    if (path / "checkpoints").is_dir() and any((path / "checkpoints").glob("step_*.pt")):
        print(f"resuming {path}", flush=True)
        run_training(apply_overrides(read_config(path), overrides), path, resume=True)
    else:
        print(f"training {path}", flush=True)
        run_training(config, path)
    return path


def score_one(path: Path, episodes: int, steps: int, skip: int) -> dict:
    from agents import load_run
    from agents.traffic.conditions import evaluate_traffic

    out = path / "eval" / "traffic.json"
    if out.is_file():
        report = json.loads(out.read_text())
        scored = [c for c in report["conditions"] if "skipped" not in c]
        if all(METRICS[-1] in c for c in scored):
            return report
        print(f"rescoring {path}: its report predates {METRICS[-1]}", flush=True)
    run = load_run(path)
    results = evaluate_traffic(run.config, run.agent, episodes=episodes, seed=12345, steps=steps, skip=skip)
    report = {"step": run.step, "episodes": episodes, "steps": steps, "skip": skip, "conditions": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def curves(path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(each finished training episode's return per step, each greedy evaluation's return per step) against env
    steps; episode returns are recovered from the logged running mean over the finished episodes."""
    episodes, evals, seen, mean = [], [], 0, 0.0
    for line in (path / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        count, value = int(row.get("rollout/episodes", 0) or 0), row.get("rollout/ep_rew_mean")
        if count > seen and value is not None and np.isfinite(value) and count == seen + 1:
            episodes.append((int(row["step"]), (count * value - seen * mean) / EPISODE))
        if count > seen and value is not None and np.isfinite(value):
            seen, mean = count, value
        if "eval/mean_reward" in row:
            evals.append((int(row["step"]), row["eval/mean_reward"] / row.get("eval/mean_ep_length", EPISODE)))
    return episodes, evals


def summarize(seeds: list[int]) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary: dict = {"arms": {}}
    fig, ax = plt.subplots(figsize=(6, 4))
    for colour, arm in zip(("tab:blue", "tab:red"), ARMS):
        reports = {}
        for seed in seeds:
            report = run_dir(arm, seed) / "eval" / "traffic.json"
            if report.is_file():
                reports[seed] = json.loads(report.read_text())
            if (run_dir(arm, seed) / "metrics.jsonl").is_file():
                episodes, evals = curves(run_dir(arm, seed))
                style = ("-", "--", ":")[seed % 3]
                if episodes:
                    x, y = zip(*episodes)
                    ax.plot(x, y, style, color=colour, marker="o", label=f"{arm} seed {seed} (training episodes)")
                if evals:
                    x, y = zip(*evals)
                    ax.plot(x, y, "x", color=colour, markersize=10, label=f"{arm} seed {seed} (greedy evaluation)")
        rows = {}
        for report in reports.values():
            for c in report["conditions"]:
                if "skipped" in c:
                    continue
                rows.setdefault((c["group"], c["label"]), []).append({k: c[k] for k in METRICS if k in c})
        summary["arms"][arm] = {
            "seeds": sorted(reports),
            "conditions": [
                {
                    "group": g,
                    "label": label,
                    **{
                        f"{k}_{stat}": float(fn([v[k] for v in vals]))
                        for k in METRICS
                        if all(k in v for v in vals)
                        for stat, fn in (("mean", np.mean), ("std", np.std))
                    },
                    "per_seed_reward_per_step": [v["reward_per_step"] for v in vals],
                }
                for (g, label), vals in rows.items()
            ],
        }
    ax.set_xlabel("env steps")
    ax.axhline(-20.9, color="gray", lw=0.8, label="fixed cycle 17 s green (reference)")
    ax.set_ylabel("global reward per step (episode mean)")
    ax.set_title("QCOMBO vs ERNIE-QCOMBO, 2x2 SUMO grid (training episodes)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / f"traffic_{FIGURE_NAME}_curves.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.4
    labels = None
    for i, arm in enumerate(ARMS):
        conds = summary["arms"][arm]["conditions"]
        if not conds:
            continue
        labels = labels or [f"{c['group']}\n{c['label']}" for c in conds]
        xs = np.arange(len(conds)) + (i - 0.5) * width
        ax.bar(
            xs,
            [c["reward_per_step_mean"] for c in conds],
            width,
            yerr=[c["reward_per_step_std"] for c in conds],
            label=f"{arm} (seeds {summary['arms'][arm]['seeds']})",
        )
    if labels:
        ax.set_xticks(np.arange(len(labels)), labels, fontsize=7, rotation=45)
    ax.set_ylabel("global reward per step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURES / f"traffic_{FIGURE_NAME}_robustness.png", dpi=100)
    plt.close(fig)

    summary["noise_degradation"] = noise_degradation(summary)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(summary, indent=2) + "\n")
    print("| condition | " + " | ".join(f"{a} reward/step | {a} queue" for a in ARMS) + " |")
    print("|---|" + "---|---|" * len(ARMS))
    keyed = {a: {(c["group"], c["label"]): c for c in summary["arms"][a]["conditions"]} for a in ARMS}
    for key in dict.fromkeys(k for a in ARMS for k in keyed[a]):
        cells = []
        for a in ARMS:
            c = keyed[a].get(key)
            cells += (
                [f"{c['reward_per_step_mean']:.2f} ± {c['reward_per_step_std']:.2f}", f"{c['mean_queue_mean']:.2f}"]
                if c
                else ["-", "-"]
            )
        print(f"| {key[0]} {key[1]} | " + " | ".join(cells) + " |")
    print("\nReward per step lost to observation noise (clean minus noisy, per seed; mean ± std):")
    for label, row in summary["noise_degradation"].items():
        arms = "; ".join(
            f"{a} {v['mean']:.1f} ± {v['std']:.1f} {[round(x, 1) for x in v['per_seed']]}"
            for a, v in row["arms"].items()
        )
        diff = row.get("ernie_minus_qcombo")
        tail = f"; ERNIE - QCOMBO {diff['mean']:.1f} ± {diff['ci95']:.1f} (95 % t, paired by seed)" if diff else ""
        print(f"- {label}: {arms}{tail}")
    return summary


def noise_degradation(summary: dict) -> dict:
    """Per noise level: each arm's reward per step lost against its own clean score, per seed (clean - noisy; > 0 is
    a loss), its mean and std (ddof 0), and ERNIE-QCOMBO minus QCOMBO paired by seed with a 95 % t half-width."""
    from scipy import stats

    out: dict = {}
    per_arm = {}
    for arm, data in summary["arms"].items():
        by_label = {(c["group"], c["label"]): c["per_seed_reward_per_step"] for c in data["conditions"]}
        clean = by_label.get(("clean", "clean"))
        if clean is None:
            continue
        per_arm[arm] = {
            label: [c - n for c, n in zip(clean, noisy)]
            for (group, label), noisy in by_label.items()
            if group == NOISE_GROUP
        }
    for label in dict.fromkeys(label for losses in per_arm.values() for label in losses):
        row = {"arms": {}}
        for arm, losses in per_arm.items():
            if label in losses:
                values = losses[label]
                row["arms"][arm] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": values}
        if all(arm in row["arms"] for arm in ARMS):
            a, b = (row["arms"][arm]["per_seed"] for arm in reversed(ARMS))
            n = min(len(a), len(b))
            diff = np.array(a[:n]) - np.array(b[:n])
            half = float(stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
            row["ernie_minus_qcombo"] = {"mean": float(diff.mean()), "ci95": half, "n": n}
        out[label] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "summarize"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--episodes", type=int, default=2, help="simulations per condition")
    parser.add_argument("--steps", type=int, default=1000, help="scored steps per simulation")
    parser.add_argument("--skip", type=int, default=200, help="unscored first steps")
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder of the runs")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings of the training runs")
    parser.add_argument(
        "--name", default=None,
        help="name of the outputs: benchmarks/results/traffic_<name>.json, docs/figures/traffic_<name>_*.png "
        "(default: traffic_robustness.json and traffic_qcombo_*.png)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    globals()["RUNS"] = args.runs
    if args.name:
        globals()["RESULT"] = RESULT.with_name(f"traffic_{args.name}.json")
        globals()["FIGURE_NAME"] = args.name
    if args.command == "run":
        for seed in args.seeds:
            for arm in args.arms:
                path = train_one(arm, seed, ["train.progress=false", *args.set])
                score_one(path, args.episodes, args.steps, args.skip)
                print(f"scored {path}", flush=True)
    summarize(args.seeds)


if __name__ == "__main__":
    main()
