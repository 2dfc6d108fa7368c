#!/usr/bin/env python
"""ERNIE: MADDPG vs ERNIE (lambda 1 and 0.2) on continuous multi-agent tasks, clean and perturbed.

Paper: Bukharin, Li, Yu, Zhang, Chen, Zuo, Zhao, "Robust Multi-Agent Reinforcement Learning via Adversarial
Regularization: Theoretical Foundation and Stable Algorithms", NeurIPS 2023 (arXiv:2310.10810). The arms
are one sweep of the preset ``ernie/<task>`` over ``agent.ernie_weight`` in {0, 0.2, 1}: weight 0 is
MADDPG bit for bit (tests/test_maddpg.py), so the three arms share every line but the penalty.

    python benchmarks/ernie_robustness.py run --task simple-spread --seeds 0-2       # rerun to resume
    python benchmarks/ernie_robustness.py summarize --task simple-spread

The paper's two ablations are sweeps of their own presets (one arm each, ERNIE's lambda 1 otherwise):

    python benchmarks/ernie_robustness.py run --task simple-spread --preset ernie-wo-st --seeds 0-4
    python benchmarks/ernie_robustness.py run --task simple-spread --preset ernie-gaussian --seeds 0-4
    python benchmarks/ernie_robustness.py summarize --task simple-spread --name simple-spread-ablations \
        --sweeps simple-spread-wo-st simple-spread-gaussian --reuse benchmarks/results/ernie_simple-spread-envunits.json

``--preset P`` trains ``P/<task>`` into the sweep ``<task>-<P minus 'ernie-'>`` (``--name`` to change it) with
no weight grid; ``--weights`` sets the grid of the default preset ``ernie`` (0, 0.2, 1). ``summarize --sweeps``
adds more sweeps' arms; ``--reuse`` takes an earlier summary JSON's per-seed measures for (arm, seed) pairs that
no sweep holds (runs whose directories are gone; their reports lack any condition added later).

``run`` trains the sweep (``train.py ernie/<task> --seeds S --grid agent.ernie_weight=0,0.2,1``, at most
``--parallel`` trials at once, one torch thread each; a killed sweep resumes from the trials' newest
checkpoints) and then scores every finished trial that has no report yet with ``evaluate.py``: greedy
actions on ``--episodes`` fixed-seed episodes per condition, Gaussian observation noise at every sigma,
the worst-case observation attack (10-step sign PGD in an l-inf ball, on the clean episodes' seeds) at
every epsilon, the value-aimed attack (the same PGD lowering the run's own critic's value of the joint action)
at every epsilon, every agent's mass scaled, and the Lipschitz meter (local Jacobian spectral
norm, PGD and random-direction ratios at r = 0.05 on clean-rollout observations).

``summarize`` reads the newest report of every trial and writes, per arm, means over seeds with 95 %
Student-t intervals; the pass criteria of the ERNIE benchmark (each ERNIE arm against MADDPG, means over
seeds):

1. Lipschitz: mean Jacobian spectral norm at most 1/2 of MADDPG's;
2. noise: ``Delta(sigma) <= 0.8 Delta_MADDPG(sigma)`` for sigma in {0.5, 1.0}, with
   ``Delta(c) = R(clean) - R(c)``;
3. attack: ``Delta(eps = 0.2) <= 0.5 Delta_MADDPG(eps = 0.2)`` and a higher return under that attack;
4. clean return at least MADDPG's minus 15 % of its magnitude.

Outputs: ``benchmarks/results/ernie_<task>.json``, ``docs/figures/ernie_<task>_curves.png`` (eval return
against env steps, mean over seeds with 95 % intervals) and ``docs/figures/ernie_<task>_robustness.png``
(return against sigma, epsilon and mass), and Markdown tables on stdout. Returns are the team's (the sum
of the agents' per-agent returns); ratios and criteria are the same for the per-agent mean.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere without installing

from agents.experiments.aggregate import _figure, latest_report, read_sweep, report_measures, t_interval  # noqa: E402

ARMS = {"0": "MADDPG", "0.2": "ERNIE λ=0.2", "1": "ERNIE λ=1"}  # agent.ernie_weight -> label
# presets of a single arm (the paper's ablations, at ERNIE's lambda 1) -> label
PRESET_ARMS = {"ernie-wo-st": "ERNIE w/o ST", "ernie-gaussian": "Baseline-Gaussian"}
SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
EPSILONS = (0.05, 0.1, 0.2)
MASSES = (0.5, 2.0, 3.0)
# report_measures prefixes of the figure's panels
PANELS = ("observation_noise", "observation_attack", "value_attack", "agent_mass")
ATTACKS = ("observation_attack", "value_attack")  # conditions whose loss is against their own paired clean run


def arm_of(trial: dict, preset: str = "ernie/") -> str:
    """The arm's label: the weight of a grid trial, or the preset of a single-arm sweep; a ball other than the
    presets' is named (``agent.ernie_scale`` / ``agent.ernie_radius`` overrides, of the trial or the sweep)."""
    overrides = list(trial.get("overrides", []))
    weight = next((o.split("=", 1)[1] for o in overrides if o.startswith("agent.ernie_weight=")), None)
    name = preset.split("/", 1)[0]
    label = ARMS[weight] if weight is not None else PRESET_ARMS.get(name, name)
    ball = [o.split("=", 1)[1] for o in (*trial.get("sweep_overrides", []), *overrides)
            if o.startswith(("agent.ernie_scale=", "agent.ernie_radius="))]  # fmt: skip
    return f"{label} (ball {' '.join(ball)})" if ball and label != "MADDPG" else label


def trials(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "manifest.json").read_text())["trials"]


def manifest(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "manifest.json").read_text())


def complete(report: dict) -> bool:
    """A report holds every condition of this benchmark."""
    return all(k in report for k in ("lipschitz", "observation_attack", "observation_noise", "agent_mass"))


def report_of(run_dir: Path) -> dict | None:
    return latest_report(run_dir, complete)


def needs_evaluation(run_dir: Path) -> bool:
    """No report yet with every condition of this benchmark, the value-aimed attack included."""
    return latest_report(run_dir, lambda report: complete(report) and "value_attack" in report) is None


def evaluate_command(run_dir: Path, task: str, episodes: int) -> list[str]:
    command = [sys.executable, str(REPO / "evaluate.py"), str(run_dir), "--episodes", str(episodes)]
    command += ["--obs-noise", *map(str, SIGMAS), "--attack", *map(str, EPSILONS), "--lipschitz"]
    command += ["--value-attack", *map(str, EPSILONS)]
    return command + ["--agent-mass", *map(str, MASSES)]  # every task of the presets is MPE or VMAS


def sweep_name(args) -> str:
    if args.name:
        return args.name
    return args.task if args.preset == "ernie" else f"{args.task}-{args.preset.removeprefix('ernie-')}"


def run(args) -> None:
    sweep_dir = args.root / sweep_name(args)
    train = [sys.executable, str(REPO / "train.py"), f"{args.preset}/{args.task}", "--seeds", args.seeds]
    weights = args.weights if args.weights is not None else (",".join(ARMS) if args.preset == "ernie" else "")
    if weights:
        train += ["--grid", "agent.ernie_weight=" + weights]
    train += ["--sweep-dir", str(sweep_dir)]
    train += ["--parallel", str(args.parallel), "--threads", "1", "--no-progress", *args.overrides]
    subprocess.run(train, check=True)
    pending = [
        sweep_dir / t["run_dir"]
        for t in trials(sweep_dir)
        if t.get("status") == "done" and needs_evaluation(sweep_dir / t["run_dir"])
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def score(run_dir: Path) -> None:
        log = run_dir / "evaluate.log"
        with open(log, "w") as out:
            subprocess.run(
                evaluate_command(run_dir, args.task, args.episodes), stdout=out, stderr=out, env=env, check=True
            )
        print(f"evaluated {run_dir}", flush=True)

    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(score, pending))


# ---- summary ------------------------------------------------------------------------------------


def loss(m: dict[str, float], condition: str) -> float:
    """Delta = R(clean) - R(condition), against the clean return on the same episodes."""
    attack = condition.split()[0]
    clean = m[f"{attack} clean"] if attack in ATTACKS else m["observation_noise 0"]
    return clean - m[condition]


def criteria(mean: dict[str, dict[str, float]], arm: str) -> dict[str, dict]:
    """The four pass criteria of ``arm`` against MADDPG, on means over seeds."""
    base, ours = mean["MADDPG"], mean[arm]
    checks = {
        "jacobian <= 0.5x": (ours["lipschitz jacobian_mean"] / base["lipschitz jacobian_mean"], 0.5),
        "noise 0.5 loss <= 0.8x": (ours["loss observation_noise 0.5"] / base["loss observation_noise 0.5"], 0.8),
        "noise 1 loss <= 0.8x": (ours["loss observation_noise 1"] / base["loss observation_noise 1"], 0.8),
        "attack 0.2 loss <= 0.5x": (ours["loss observation_attack 0.2"] / base["loss observation_attack 0.2"], 0.5),
    }
    out = {name: {"ratio": ratio, "pass": bool(ratio <= bound)} for name, (ratio, bound) in checks.items()}
    attacked, attacked_base = ours["observation_attack 0.2"], base["observation_attack 0.2"]
    out["attack 0.2 return higher"] = {
        "ours": attacked,
        "maddpg": attacked_base,
        "pass": bool(attacked > attacked_base),
    }
    floor = base["nominal"] - 0.15 * abs(base["nominal"])
    out["clean >= maddpg - 15%"] = {"ours": ours["nominal"], "floor": floor, "pass": bool(ours["nominal"] >= floor)}
    return out


def sweep_measures(sweep_dir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """``{arm: {seed: measures}}`` of every evaluated trial of a sweep, with the losses Delta."""
    info = manifest(sweep_dir)
    out: dict[str, dict[int, dict[str, float]]] = {}
    for trial in info["trials"]:
        report = report_of(sweep_dir / trial["run_dir"])
        if report is not None:
            m = report_measures(report)
            perturbed = [c for c in m if c.startswith(("observation_noise", *ATTACKS)) and "clean" not in c]
            m.update({f"loss {c}": loss(m, c) for c in perturbed})
            arm = arm_of({**trial, "sweep_overrides": info.get("overrides", [])}, info.get("preset", "ernie/"))
            out.setdefault(arm, {})[int(trial["seed"])] = m
    return out


def summarize(args) -> dict:
    name = args.name or args.task
    sweeps = [args.name or args.task, *args.sweeps] if (args.root / name).is_dir() else list(args.sweeps)
    per_arm: dict[str, dict[int, dict[str, float]]] = {}
    sources: dict[str, dict[str, str]] = {}
    for sweep in sweeps:
        for arm, seeds in sweep_measures(args.root / sweep).items():
            per_arm.setdefault(arm, {}).update(seeds)
            sources.setdefault(arm, {}).update({str(seed): f"sweep {sweep}" for seed in seeds})
    if args.reuse is not None:  # an earlier summary: (arm, seed) pairs no sweep holds
        earlier = json.loads(args.reuse.read_text())
        for arm, seeds in earlier["per_seed"].items():
            for seed, measures in seeds.items():
                if int(seed) not in per_arm.get(arm, {}):
                    per_arm.setdefault(arm, {})[int(seed)] = measures
                    sources.setdefault(arm, {})[seed] = f"reused {args.reuse.name}"
    order = [*ARMS.values(), *PRESET_ARMS.values()]

    def rank(arm: str) -> tuple[int, str]:
        return (order.index(arm) if arm in order else len(order), arm)

    per_arm = {arm: dict(sorted(per_arm[arm].items())) for arm in sorted(per_arm, key=rank) if per_arm[arm]}
    if "MADDPG" not in per_arm:
        raise SystemExit(f"no evaluated MADDPG trial in {sweeps} (or --reuse); run `run` first")
    # every measure over the seeds that have it (older reports lack later conditions); n says how many
    stats = {}
    for arm, seeds in per_arm.items():
        keys = list(dict.fromkeys(k for m in seeds.values() for k in m))
        stats[arm] = {k: t_interval([s[k] for s in seeds.values() if k in s]) for k in keys}
    mean = {arm: {k: v["mean"] for k, v in s.items()} for arm, s in stats.items()}
    checks = {arm: criteria(mean, arm) for arm in per_arm if arm != "MADDPG"}
    summary = {
        "task": args.task,
        "sweep": name,
        "sweeps": sweeps,
        "seeds": {arm: sorted(seeds) for arm, seeds in per_arm.items()},
        "sources": sources,
        "per_seed": {arm: {str(k): v for k, v in seeds.items()} for arm, seeds in per_arm.items()},
        "stats": stats,
        "criteria": checks,
    }
    out = args.results or REPO / "benchmarks" / "results" / f"ernie_{name}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print_tables(stats, checks, per_arm)
    figures = [
        plot_curves([args.root / s for s in sweeps], name, args.figures),
        plot_robustness(stats, name, args.figures),
    ]
    print(f"\nresults: {out}; figures: {', '.join(map(str, figures))}")
    return summary


def _cell(ci: dict | None, digits: int = 1, seeds: int | None = None) -> str:
    """mean ± 95 % half-width; a dash where no seed has the measure; ``[n seeds]`` where fewer than ``seeds``."""
    if ci is None:
        return "—"
    text = f"{ci['mean']:.{digits}f}"
    if ci["n"] > 1 and math.isfinite(ci["half"]):
        text += f" ± {ci['half']:.{digits}f}"
    return text + (f" [{ci['n']} seeds]" if seeds is not None and ci["n"] < seeds else "")


COMPACT = ("observation_noise 0.5", "observation_noise 1", "observation_attack 0.2", "value_attack 0.2")
HEADS = {"observation_noise": "σ", "observation_attack": "attack ε", "value_attack": "value attack ε"}


def compact_table(stats: dict, per_arm: dict) -> list[str]:
    """The docs' table: clean return, return (and loss) under sigma 0.5 / 1, the action-aimed and the value-aimed
    attack at eps 0.2, the mass shifts, and the mean Jacobian spectral norm; mean +- 95 % half-width over seeds."""
    every = list(dict.fromkeys(k for s in stats.values() for k in s))
    perturbed = [k for k in COMPACT if k in every]
    masses = [k for k in every if k.startswith("agent_mass")]
    head = ["clean", *(f"{HEADS[k.split()[0]]} = {k.split()[1]} (Δ)" for k in perturbed), *masses, "Jacobian"]
    lines = ["| arm (seeds) | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for arm, s in stats.items():
        n = len(per_arm[arm])
        cells = [_cell(s["nominal"])]
        cells += [f"{_cell(s[k], seeds=n)} ({s['loss ' + k]['mean']:.1f})" if k in s else "—" for k in perturbed]
        cells += [_cell(s.get(k)) for k in masses] + [_cell(s.get("lipschitz jacobian_mean"), 2)]
        lines.append(f"| {arm} ({n}) | " + " | ".join(cells) + " |")
    return lines


def print_tables(stats: dict, checks: dict, per_arm: dict) -> None:
    print("\n".join(compact_table(stats, per_arm)) + "\n")
    every = list(dict.fromkeys(k for s in stats.values() for k in s))
    returns = ["nominal"] + [k for k in every if k.startswith(PANELS) and "clean" not in k]
    print("| arm (seeds) | " + " | ".join(returns) + " |")
    print("|---" * (len(returns) + 1) + "|")
    for arm, s in stats.items():
        n = len(per_arm[arm])
        print(f"| {arm} ({n}) | " + " | ".join(_cell(s.get(k), seeds=n) for k in returns) + " |")
    losses = [k for k in every if k.startswith("loss")]
    print("\n| arm: loss Δ | " + " | ".join(k[5:] for k in losses) + " |")
    print("|---" * (len(losses) + 1) + "|")
    for arm, s in stats.items():
        n = len(per_arm[arm])
        print(f"| {arm} | " + " | ".join(_cell(s.get(k), 2, seeds=n) for k in losses) + " |")
    lips = [k for k in every if k.startswith("lipschitz") and "per_agent" not in k]
    print("\n| arm: Lipschitz | " + " | ".join(lips) + " |")
    print("|---" * (len(lips) + 1) + "|")
    for arm, s in stats.items():
        print(f"| {arm} | " + " | ".join(_cell(s.get(k), 2) for k in lips) + " |")
    for arm, arm_checks in checks.items():
        print(f"\ncriteria, {arm} against MADDPG:")
        for name, check in arm_checks.items():
            detail = {k: round(v, 3) for k, v in check.items() if k != "pass"}
            print(f"  {'PASS' if check['pass'] else 'FAIL'}  {name}  {detail}")


def plot_curves(sweep_dirs: list[Path], task: str, figures: Path) -> Path:
    """Eval return against env steps per arm (the sweeps' runs that still exist): mean over seeds, 95 %
    t-interval band."""
    groups: dict[str, list] = {}
    for sweep_dir in sweep_dirs:
        info = manifest(sweep_dir)
        extra = info.get("overrides", [])
        arms = {
            str(sweep_dir / t["run_dir"]): arm_of({**t, "sweep_overrides": extra}, info.get("preset", "ernie/"))
            for t in info["trials"]
        }
        for record in read_sweep(sweep_dir):
            if len(record.steps):
                groups.setdefault(arms[str(record.run_dir)], []).append(record)
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    for label, group in groups.items():
        common = sorted(set.intersection(*(set(r.steps.tolist()) for r in group)))
        values = np.array([[r.rewards[np.searchsorted(r.steps, s)] for s in common] for r in group])
        cis = [t_interval(column) for column in values.T]
        point = np.array([c["mean"] for c in cis])
        half = np.nan_to_num(np.array([c["half"] for c in cis]))
        (line,) = ax.plot(common, point, label=f"{label} ({len(group)} seeds)", linewidth=1.8)
        ax.fill_between(common, point - half, point + half, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("team return (greedy eval)")
    ax.set_title(f"{task}: greedy eval return (mean, 95% CI over seeds)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = figures / f"ernie_{task}_curves.png"
    fig.savefig(path)
    return path


def plot_robustness(stats: dict, task: str, figures: Path) -> Path:
    """Return against sigma, each attack's epsilon and the mass scale, one panel each; mean over seeds +- 95 %
    interval (an attack panel over the seeds that have it)."""
    labels = ("observation noise σ", "attack radius ε (l-inf)", "value-aimed attack ε (l-inf)", "agent mass scale")
    panels = [(p, x) for p, x in zip(PANELS, labels) if any(k.startswith(p + " ") for s in stats.values() for k in s)]
    fig = _figure(4.0 * len(panels), 3.8)
    for column, (prefix, xlabel) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), column + 1)
        for arm, s in stats.items():
            keys = [k for k in s if k.startswith(prefix + " ") and "clean" not in k]
            xs = [float(k.split()[1]) for k in keys]
            if not keys:
                continue
            if prefix in ATTACKS:  # radius 0: the attack's own paired clean episodes
                keys, xs = [f"{prefix} clean", *keys], [0.0, *xs]
            if prefix == "agent_mass":
                keys, xs = ["nominal", *keys], [1.0, *xs]
            order = np.argsort(xs)
            x = np.array(xs)[order]
            point = np.array([s[keys[i]]["mean"] for i in order])
            half = np.nan_to_num(np.array([s[keys[i]]["half"] for i in order]))
            ax.errorbar(x, point, yerr=half, label=arm, marker="o", markersize=3, capsize=3, linewidth=1.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("team return")
        ax.grid(True, alpha=0.3)
        if column == 0:
            ax.legend(fontsize=8)
    fig.suptitle(f"{task}: return under perturbations (mean, 95% interval over seeds)", fontsize=10)
    fig.tight_layout()
    path = figures / f"ernie_{task}_robustness.png"
    fig.savefig(path)
    return path


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("run", "summarize"))
    parser.add_argument("--task", default="simple-spread", help="a task of the ernie/<task> presets")
    parser.add_argument("--preset", default="ernie", help="run: train the preset <preset>/<task> (default: ernie)")
    parser.add_argument("--weights", help="run: the grid of agent.ernie_weight (default 0,0.2,1 for preset ernie)")
    parser.add_argument("--name", help="the sweep's directory under --root and the name of its outputs (default: task)")
    parser.add_argument("--sweeps", nargs="+", default=[], help="summarize: more sweeps whose arms join the tables")
    parser.add_argument(
        "--reuse", type=Path, help="summarize: an earlier summary JSON for (arm, seed) pairs no sweep has"
    )
    parser.add_argument("--seeds", default="0-2", help="seeds, e.g. 0-2 or 0,3 (default 0-2)")
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes per condition (default 100)")
    parser.add_argument("--parallel", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--root", type=Path, default=REPO / "benchmarks" / "runs" / "ernie", help="sweeps live here")
    parser.add_argument("--results", type=Path, help="summary JSON (default: benchmarks/results/ernie_<task>.json)")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "figures", help="where the PNGs go")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every trial (e.g. total_steps=60000)")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    run(args) if args.command == "run" else summarize(args)


if __name__ == "__main__":
    main()
