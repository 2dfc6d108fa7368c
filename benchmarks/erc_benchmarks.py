"""ERC vs the same code with regularizer weight 0 (experiments A and B of docs/benchmarks.md).

A. DQN +- ERC on CartPole-v1 (``erc-dqn/cartpole`` vs ``erc-dqn-base/cartpole``; the base is DQN
   bit for bit): 5 seeds, 60k steps, greedy evaluation of 5 episodes every 2k steps.
B. SAC +- ERC on dmc cartpole-swingup (``erc/dmc-cartpole-swingup`` vs ``erc-base/...``): 3 seeds,
   50k steps, warm-up shortened from the paper's 25k to 5k, 10 deterministic episodes
   every 5k steps.

Runs go one after another (``--jobs 2`` for two processes), each in its own directory
``benchmarks/runs/erc/<suite>/<arm>/seed<k>``: a finished run is skipped, an interrupted one
resumed from its newest checkpoint, so the script can be killed and restarted at any time. After
every run the JSON summary (``benchmarks/results/erc.json``) and the curves
(``docs/figures/erc_<suite>.png``, mean +- std over seeds) are rewritten from the runs' metrics.jsonl.

    nice python benchmarks/erc_benchmarks.py --suite A          # about 25 min on an idle 2-core box
    nice python benchmarks/erc_benchmarks.py --suite B --jobs 2 # about 40 min
    python benchmarks/erc_benchmarks.py --summarize-only        # rebuild JSON and figures

Acceptance: A: paired mean difference (ERC - base, mean of the last 10 evaluations) >= 0
and ERC ahead on >= 3 of 5 seeds. B: non-inferior, |final difference| within one pooled std.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUITES = {
    "A": {
        "title": "DQN +- ERC, CartPole-v1",
        "arms": {"base": "erc-dqn-base/cartpole", "erc": "erc-dqn/cartpole"},
        "labels": {"base": "DQN (ERC weight 0)", "erc": "DQN + ERC (beta 5e-4)"},
        "seeds": 5,
        "overrides": ["total_steps=60000", "eval_every=2000", "eval_episodes=5"],
        "final_evals": 10,
        "figure": "erc_dqn_cartpole.png",
    },
    "B": {
        "title": "SAC +- ERC, dmc cartpole-swingup",
        "arms": {"base": "erc-base/dmc-cartpole-swingup", "erc": "erc/dmc-cartpole-swingup"},
        "labels": {"base": "SAC (ERC weight 0)", "erc": "SAC + ERC (beta 0.005, c 0.01)"},
        "seeds": 3,
        "overrides": ["total_steps=50000", "update_after_steps=5000", "eval_every=5000", "eval_episodes=10"],
        "final_evals": 1,
        "figure": "erc_sac_cartpole_swingup.png",
    },
}
COMMON = ["threads=1", "progress=false", "checkpoint_every=5000"]
DIAGNOSTICS = ("train/td_sq_mean", "train/td_sq_std", "train/erc_grad_ratio", "train/erc_clamped_fraction")


def run_dir(runs: Path, suite: str, arm: str, seed: int) -> Path:
    return runs / suite / arm / f"seed{seed}"


def read_metrics(path: Path) -> list[dict]:
    file = path / "metrics.jsonl"
    if not file.is_file():
        return []
    rows = []
    for line in file.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            pass
    return rows


def finished(path: Path, total_steps: int) -> bool:
    return any(r.get("step", 0) >= total_steps and "eval/mean_reward" in r for r in read_metrics(path))


def one_run(job: tuple) -> str:
    """Train (or resume, or skip) one (suite, arm, seed); returns a status line."""
    import torch

    torch.set_num_threads(1)
    from agents import get_preset
    from agents import run_training as train
    from agents.engine.config import apply_overrides

    runs, suite, arm, seed, extra = job
    spec = SUITES[suite]
    config = apply_overrides(get_preset(spec["arms"][arm]), [*spec["overrides"], *COMMON, f"seed={seed}", *extra])
    path = run_dir(runs, suite, arm, seed)
    if finished(path, config.train.total_steps):
        return f"{suite}/{arm}/seed{seed}: done already"
    resume = any((path / "checkpoints").glob("step_*.pt")) if (path / "checkpoints").is_dir() else False
    if not resume and path.exists():  # started but never checkpointed: start over
        for file in sorted(path.rglob("*"), reverse=True):
            file.unlink() if file.is_file() else file.rmdir()
    start = time.time()
    train(config, path, resume=resume)
    return f"{suite}/{arm}/seed{seed}: {'resumed' if resume else 'trained'} in {time.time() - start:.0f} s"


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))


def summarize_suite(runs: Path, suite: str, figures: Path) -> dict:
    from agents.robustness.plots import curves

    spec = SUITES[suite]
    out: dict = {"title": spec["title"], "presets": spec["arms"], "overrides": spec["overrides"], "arms": {}}
    series = {}
    for arm in spec["arms"]:
        seeds = {}
        for seed in range(spec["seeds"]):
            rows = read_metrics(run_dir(runs, suite, arm, seed))
            evals = [(r["step"], r["eval/mean_reward"]) for r in rows if "eval/mean_reward" in r]
            if not evals:
                continue
            last = [value for _, value in evals[-spec["final_evals"] :]]
            bias = [r["eval/q_bias"] for r in rows if math.isfinite(r.get("eval/q_bias", math.nan))]
            seeds[seed] = {
                "steps": evals[-1][0],
                "final_return": sum(last) / len(last),
                "curve": evals,
                "q_bias_last": bias[-1] if bias else None,
                **{key.split("/")[1] + "_mean": mean_std([r[key] for r in rows if key in r])[0] for key in DIAGNOSTICS},
            }
        finals = [s["final_return"] for s in seeds.values()]
        out["arms"][arm] = {"seeds": seeds, "final_return_mean_sd": mean_std(finals)}
        steps = sorted({step for s in seeds.values() for step, _ in s["curve"]})
        points = []
        for step in steps:
            values = [v for s in seeds.values() for st, v in s["curve"] if st == step]
            if len(values) == len(seeds):
                m, sd = mean_std(values)
                points.append((step, m, 0.0 if len(values) < 2 else sd))
        series[f"{spec['labels'][arm]}, n={len(seeds)}"] = points
    base, erc = out["arms"].get("base", {}).get("seeds", {}), out["arms"].get("erc", {}).get("seeds", {})
    paired = [erc[s]["final_return"] - base[s]["final_return"] for s in sorted(set(base) & set(erc))]
    if paired:
        pooled = math.sqrt(
            (out["arms"]["base"]["final_return_mean_sd"][1] ** 2 + out["arms"]["erc"]["final_return_mean_sd"][1] ** 2)
            / 2
        )
        out["paired"] = {
            "seeds": len(paired),
            "differences": paired,
            "mean_difference": sum(paired) / len(paired),
            "erc_wins": sum(d > 0 for d in paired),
            "pooled_sd": pooled,
        }
    if any(series.values()):
        figure = curves(series, figures / spec["figure"], spec["title"], spread_label="mean ± std over seeds")
        out["figure"] = str(figure.relative_to(ROOT) if figure.is_relative_to(ROOT) else figure)
    return out


def finite_or_null(value):
    """NaN (no runs yet) as JSON null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def summarize(runs: Path, out: Path, figures: Path) -> dict:
    summary = {"protocol": "docs/benchmarks.md, ERC experiments A and B", "suites": {}}
    for suite in SUITES:
        summary["suites"][suite] = summarize_suite(runs, suite, figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(finite_or_null(summary), indent=1, allow_nan=False) + "\n")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=["A", "B", "all"], default="all")
    parser.add_argument("--seeds", type=int, help="seeds per arm (default: the suite's)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes (machine has 2 cores)")
    parser.add_argument("--runs", type=Path, default=ROOT / "benchmarks/runs/erc")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/erc.json")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs/figures")
    parser.add_argument("--summarize-only", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra key=value for every run (smoke tests)")
    args = parser.parse_args()
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    jobs = [
        (args.runs, suite, arm, seed, args.overrides)
        for suite in suites
        for seed in range(args.seeds or SUITES[suite]["seeds"])
        for arm in SUITES[suite]["arms"]  # arms interleaved: partial results stay paired
    ]
    if not args.summarize_only:
        if args.jobs > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(args.jobs) as pool:
                for status in pool.imap(one_run, jobs):
                    print(status, flush=True)
                    summarize(args.runs, args.out, args.figures)
        else:
            for job in jobs:
                print(one_run(job), flush=True)
                summarize(args.runs, args.out, args.figures)
    summary = summarize(args.runs, args.out, args.figures)
    for suite in suites:
        result = summary["suites"][suite]
        print(result["title"])
        for arm, data in result["arms"].items():
            mean, sd = data["final_return_mean_sd"]
            print(f"  {arm:<5} final return {mean:8.1f} +- {sd:6.1f}  (n={len(data['seeds'])})")
        if "paired" in result:
            p = result["paired"]
            print(f"  ERC - base: {p['mean_difference']:+.1f} (pooled sd {p['pooled_sd']:.1f}), ", end="")
            print(f"ERC ahead on {p['erc_wins']}/{p['seeds']} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
