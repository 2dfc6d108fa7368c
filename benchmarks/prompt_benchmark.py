"""Sparse-Tsallis RLPrompt (PIN) vs RLPrompt vs PIN without its token filter, offline (docs/benchmarks.md).

Papers: Deng et al., "RLPrompt", EMNLP 2022 (arXiv 2205.12548); Choi et al., "Hard Prompts Made
Interpretable: Sparse Entropy Regularization for Prompt Tuning with RL" (PIN), ACL 2024 (arXiv 2407.14733).

For every arm (``--arms``: ``rlprompt``, ``pin``, ``pin-nofilter`` by default, the ablation
``pin-v2v3`` = PIN with the bootstrapped sparse losses; ``--minilm`` runs them on
``*/fsc-sentiment-minilm``) x seed, train the preset with ``train.py`` in its own process (nice,
one thread, at most ``--workers`` at once) and read the run's ``prompt_report.json``: the best dev
prompt and the final greedy prompt, each with dev / test accuracy, support size, perplexity under
the policy LM and whole-word fraction; plus the throughput: the median of the logger's per-interval
env steps per second (an env step is one token of one prompt; prompts scored per second = that / 5).
A baseline row scores ``--random-prompts`` uniformly random 5-token prompts on the test split.

Resumable: a finished run (its report exists) is skipped, an interrupted one resumes from its last
checkpoint; the summary JSON is rewritten after every run.

    nice -n 10 python benchmarks/prompt_benchmark.py                    # 3 arms x 3 seeds, 100 steps
    nice -n 10 python benchmarks/prompt_benchmark.py --arms pin-v2v3 \\
        --out benchmarks/results/prompt_fsc_sentiment_v2v3.json             # ablation: PIN with loss v2_v3
    python benchmarks/prompt_benchmark.py --minilm --steps 100 --out benchmarks/results/prompt_minilm.json

Deviations from the presets (CPU budget on a shared 2-core machine): ``--steps`` training steps (default
100, i.e. 8,000 env steps; the presets train 1,000, the papers 12,000 / 6,000), every arm evaluated
on dev every 10 steps, and PIN's replay minibatch and warm-up lowered from 256 to ``--pin-batch``
(default 64) episodes, since each PIN update costs about 3 s at 256 here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# arm -> (preset family, extra overrides); the default arms are the three presets, pin-v2v3 an ablation
ARMS: dict[str, tuple[str, list[str]]] = {
    "rlprompt": ("rlprompt", []),
    "pin": ("pin", []),
    "pin-nofilter": ("pin-nofilter", []),
    "pin-v2v3": ("pin", ["agent.loss=v2_v3"]),  # PIN with the bootstrapped sparse PCL losses
}
DEFAULT_ARMS = ("rlprompt", "pin", "pin-nofilter")
STEP = 80  # env steps per training step: 16 prompts x 5 tokens


def overrides(arm: str, args: argparse.Namespace) -> list[str]:
    """The key=value settings of one benchmark run on top of its preset."""
    out = [
        f"total_steps={args.steps * STEP}",
        f"eval_every={10 * STEP}",
        f"log_every={10 * STEP}",
        f"checkpoint_every={20 * STEP}",
        "threads=1",
        "progress=false",
    ]
    if arm.startswith("pin"):
        out += [f"train.batch_episodes={args.pin_batch}", f"update_after_episodes={args.pin_batch}"]
    return out + ARMS[arm][1]


def run_one(preset: str, arm: str, seed: int, args: argparse.Namespace) -> Path:
    """Train (or resume, or skip) one run; returns its directory. Wall time is added up in ``wall.json``."""
    run_dir = args.runs / f"{preset.replace('/', '_')}_seed{seed}"
    if (run_dir / "prompt_report.json").is_file():
        return run_dir
    resume = run_dir.is_dir() and any((run_dir / "checkpoints").glob("*.pt"))
    if run_dir.is_dir() and not resume:
        shutil.rmtree(run_dir)
    wall_file = run_dir / "wall.json"
    previous = json.loads(wall_file.read_text())["seconds"] if wall_file.is_file() else 0.0
    cmd = ["nice", "-n", "10", sys.executable, str(ROOT / "train.py")]
    if resume:
        cmd += ["--resume", str(run_dir), *overrides(arm, args)]
    else:
        family_preset = f"{ARMS[arm][0]}/{preset.split('/', 1)[1]}"
        cmd += [family_preset, "--run-dir", str(run_dir), f"seed={seed}", *overrides(arm, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.time()
    log = args.runs / f"{run_dir.name}.log"
    with open(log, "a") as f:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if run_dir.is_dir():
        wall_file.write_text(json.dumps({"seconds": previous + time.time() - start}) + "\n")
    print(f"{preset} seed {seed}: exit {code} ({time.time() - start:.0f} s)", flush=True)
    return run_dir


def mean_std(values: list[float]) -> dict[str, float]:
    n = len(values)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def random_prompts(count: int, seed: int, task: str) -> dict:
    """Test accuracy of ``count`` uniformly random 5-token prompts (the floor a learned prompt must beat)."""
    import torch

    from agents import get_preset
    from agents.prompt import make_envs
    from envs.prompt_env import evaluate_prompt

    torch.set_num_threads(1)
    config = get_preset(f"pin/{task}")
    env, _ = make_envs(config, "cpu")
    generator = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, env.action_spec.n, (count, 5), generator=generator)
    accs = [evaluate_prompt(env.scorer, p, env.eval_splits["test"])["accuracy"] for p in prompts]
    empty = evaluate_prompt(env.scorer, torch.zeros(0, dtype=torch.long), env.eval_splits["test"])["accuracy"]
    return {"test_accuracy": mean_std(accs), "no_prompt_test_accuracy": empty}


def summarize(presets: list[tuple[str, str]], args: argparse.Namespace, baseline: dict) -> dict:
    """Per arm: every seed's report (prompts and measures) and mean / std of each measure."""
    out: dict = {
        "settings": {
            "steps": args.steps,
            "env_steps": args.steps * STEP,
            "seeds": args.seeds,
            "pin_batch": args.pin_batch,
        },
        "random_prompts": baseline,
        "arms": {},
    }
    from agents.prompt.agent import dictionary_words, whole_word_fraction
    from envs.lm import load_prompt_dataset

    # the whole-word fraction is recomputed from the stored token pieces with the current definition
    words = dictionary_words([load_prompt_dataset("synthetic-sentiment", s, 13) for s in ("train", "dev", "test")])
    for preset, _arm in presets:
        runs = []
        for seed in args.seeds:
            run_dir = args.runs / f"{preset.replace('/', '_')}_seed{seed}"
            report_file = run_dir / "prompt_report.json"
            if not report_file.is_file():
                continue
            report = json.loads(report_file.read_text())
            wall_file = run_dir / "wall.json"
            wall = json.loads(wall_file.read_text())["seconds"] if wall_file.is_file() else None
            for which in ("best", "final"):
                report[which]["whole_word_fraction"] = whole_word_fraction(report[which]["pieces"], words)
            report["seed"] = seed
            report["wall_seconds"] = wall
            # throughput from the logger's per-interval rate (robust to an interrupted and resumed run)
            fps = [
                json.loads(line).get("time/fps")
                for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                if "time/fps" in line
            ]
            fps = sorted(f for f in fps if f)
            report["env_steps_per_second"] = fps[len(fps) // 2] if fps else None
            report["prompts_per_second"] = report["env_steps_per_second"] / 5 if fps else None
            runs.append(report)
        measures = {}
        for which in ("best", "final"):
            for key in ("dev_accuracy", "test_accuracy", "support_size", "perplexity", "whole_word_fraction"):
                measures[f"{which}/{key}"] = mean_std([r[which][key] for r in runs])
            # perplexities span orders of magnitude: their geometric mean (exp of the mean log) is the summary
            logs = mean_std([math.log(r[which]["perplexity"]) for r in runs])
            measures[f"{which}/geometric_mean_perplexity"] = math.exp(logs["mean"]) if runs else math.nan
        measures["prompts_per_second"] = mean_std([r["prompts_per_second"] for r in runs if r["prompts_per_second"]])
        out["arms"][preset] = {
            "complete": len(runs) == len(args.seeds),
            "measures": measures,
            "prompts": [{"seed": r["seed"], "best": r["best"]["prompt"], "final": r["final"]["prompt"]} for r in runs],
            "runs": runs,
        }
    return out


def table(summary: dict) -> str:
    """A markdown table of the summary (mean +- std over seeds)."""
    lines = [
        "| arm | seeds | best-dev prompt: test acc | final prompt: test acc | support size (final policy) | "
        "perplexity (best, final; geometric mean) | whole words (best, final) | prompts/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in summary["arms"].items():
        m = arm["measures"]

        def cell(key: str, digits: int = 3, m: dict = m) -> str:
            return f"{m[key]['mean']:.{digits}f} +- {m[key]['std']:.{digits}f}"

        lines.append(
            f"| {name} | {m['best/test_accuracy']['n']} | {cell('best/test_accuracy')} | "
            f"{cell('final/test_accuracy')} | "
            f"{cell('final/support_size', 1)} | {m['best/geometric_mean_perplexity']:.0f}, "
            f"{m['final/geometric_mean_perplexity']:.0f} | {cell('best/whole_word_fraction', 2)}, "
            f"{cell('final/whole_word_fraction', 2)} | "
            f"{cell('prompts_per_second', 1)} |"
        )
    base = summary["random_prompts"]
    if base:
        acc = base["test_accuracy"]
        lines.append(
            f"\nRandom 5-token prompts: test accuracy {acc['mean']:.3f} +- {acc['std']:.3f} (n = {acc['n']}); "
            f"no prompt: {base['no_prompt_test_accuracy']:.3f}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per run (16 prompts each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pin-batch", type=int, default=64, help="PIN's replay minibatch and warm-up, in episodes")
    parser.add_argument("--workers", type=int, default=2, help="runs at once (one thread each)")
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=list(ARMS))
    parser.add_argument("--minilm", action="store_true", help="the MiniLM zero-shot classifier arms instead")
    parser.add_argument("--random-prompts", type=int, default=20)
    parser.add_argument("--runs", type=Path, default=ROOT / "benchmarks" / "runs" / "prompt")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prompt_fsc_sentiment.json")
    args = parser.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    task = "fsc-sentiment-minilm" if args.minilm else "fsc-sentiment"
    presets = [(f"{arm}/{task}", arm) for arm in args.arms]
    jobs = [(preset, arm, seed) for seed in args.seeds for preset, arm in presets]
    baseline = random_prompts(args.random_prompts, 0, task) if args.random_prompts else {}

    def write() -> None:
        summary = summarize(presets, args, baseline)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")

    write()
    with ThreadPoolExecutor(args.workers) as pool:
        for _ in pool.map(lambda job: (run_one(*job, args), write()), jobs):
            pass
    summary = summarize(presets, args, baseline)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
