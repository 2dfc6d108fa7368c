"""Sparse-Tsallis RLPrompt (PIN) vs RLPrompt vs PIN without its token filter, offline (docs/benchmarks.md).

Papers: Deng et al., "RLPrompt", EMNLP 2022 (arXiv 2205.12548); Choi et al., "Hard Prompts Made
Interpretable: Sparse Entropy Regularization for Prompt Tuning with RL" (PIN), ACL 2024 (arXiv 2407.14733).

For every arm (``--arms``: ``rlprompt``, ``pin``, ``pin-nofilter`` by default, the ablations
``pin-v2v3`` = PIN with the bootstrapped sparse losses and ``pin-k45`` = PIN with a filter of 45 tokens
calibrated on the policy LM instead of 815; ``--minilm`` runs them on
``*/fsc-sentiment-minilm``) x seed, train the preset with ``train.py`` in its own process (``nice -n
NICE``, one thread, at most ``--workers`` at once) and read the run's ``prompt_report.json``: the best dev
prompt and the final greedy prompt, each with dev / test accuracy, support size, perplexity under
the policy LM and whole-word fraction; plus the throughput: the median of the logger's per-interval
env steps per second (an env step is one token of one prompt; prompts scored per second = that / 5).
A baseline row scores ``--random-prompts`` uniformly random 5-token prompts on the test split.

Resumable: a finished run (its report exists) is skipped, an interrupted one resumes from its last
checkpoint; the summary JSON is rewritten after every run.

    nice -n 10 python benchmarks/prompt_benchmark.py                    # 3 arms x 3 seeds, 100 steps
    nice -n 10 python benchmarks/prompt_benchmark.py --arms pin-v2v3 \\
        --out benchmarks/results/prompt_fsc_sentiment_v2v3.json             # ablation: PIN with loss v2_v3
    nice -n 15 python benchmarks/prompt_benchmark.py --arms rlprompt pin pin-k45 pin-nofilter \\
        --seeds 0 1 2 3 4 --workers 1 --nice 0 --random-prompts 0 --out prompt_k45.json  # the filter's k
    python benchmarks/prompt_benchmark.py --minilm --steps 100 --out benchmarks/results/prompt_minilm.json
    python benchmarks/prompt_benchmark.py --minilm --device cuda --workers 8 --seeds 0 1 2 3 4 \\
        --override env.options.task_lm=MINILM_DIR --out benchmarks/results/prompt_minilm_gpu.json  # on a GPU
    python benchmarks/prompt_benchmark.py --diagnose   # the policy LM's held-out perplexity and its filter
    nice -n 5 python benchmarks/prompt_benchmark.py --smollm --seeds 0 1 2 3 4 --steps 100 --workers 1 \
        --nice 0 --random-prompts 10   # the real SmolLM2-135M arms on real tweets (*/tweets-smollm)

``--smollm`` runs the arms on ``*/tweets-smollm``: SmolLM2-135M-Instruct (the ``prompt-smollm`` extra) as
policy backbone and zero-shot task LM, the shipped real-tweet set. Its whole-word fraction counts
tokens that are words of an English word list (``--words``, default Debian's wamerican
``/usr/share/dict/words``: ``apt-get install wamerican``), and the summary adds PIN - RLPrompt (test
accuracy of the best dev prompt) with a 95 % percentile-bootstrap interval over seeds.

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
    # PIN with a filter calibrated on the policy LM instead of PIN's share of the vocabulary: 45 is the
    # smallest k whose top-k holds the true next token of 95 % of held-out corpus tokens (see
    # docs/algorithms/prompt.md, "Why PIN's prompts are not less perplex here")
    "pin-k45": ("pin", ["agent.filter_top_k=45"]),
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
        f"device={args.device}",
    ]
    if arm.startswith("pin"):
        out += [f"train.batch_episodes={args.pin_batch}", f"update_after_episodes={args.pin_batch}"]
    return out + ARMS[arm][1] + list(args.override)


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
    cmd = ["nice", "-n", str(args.nice), sys.executable, str(ROOT / "train.py")]
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


def random_prompts(count: int, seed: int, task: str, device: str = "cpu", extra: tuple[str, ...] = ()) -> dict:
    """Test accuracy of ``count`` uniformly random 5-token prompts (the floor a learned prompt must beat)."""
    import torch

    from agents import get_preset
    from agents.engine.config import apply_overrides
    from agents.prompt import make_envs
    from envs.prompt_env import evaluate_prompt

    torch.set_num_threads(1)
    config = apply_overrides(get_preset(f"pin/{task}"), list(extra))  # the runs' models and env options
    env, _ = make_envs(config, device)
    generator = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, env.action_spec.n, (count, 5), generator=generator)
    accs = [evaluate_prompt(env.scorer, p, env.eval_splits["test"])["accuracy"] for p in prompts]
    empty = evaluate_prompt(env.scorer, torch.zeros(0, dtype=torch.long), env.eval_splits["test"])["accuracy"]
    return {"test_accuracy": mean_std(accs), "no_prompt_test_accuracy": empty}


# contexts at which the filter is inspected: BOS alone and a few prompt prefixes of the benchmark
FILTER_CONTEXTS = ("", " the", " It was", " My verdict", ":", ": :", " was was")


def lm_diagnostics(heldout_lines: int = 2000, heldout_seed: int = 777, ks: tuple[int, ...] = (1, 10, 45, 815)) -> dict:
    """How good the shipped policy LM is, and what its top-k filter admits (``--diagnose``).

    * Held-out perplexity: fresh corpus lines from the build's own generator (another seed), cut into
      blocks of 32 tokens (the policy LM's positions), ``exp(mean_i -ln p(x_i | x_<i))``; against an
      add-one unigram and an interpolated bigram ``0.7 c(a, b) / c(a) + 0.3 p_unigram(b)`` counted on
      the build's training corpus.
    * Coverage: the share of held-out tokens whose rank among the LM's next tokens is below k
      (rank 0 = the LM's top token), and the smallest k reaching 95 % and 99 %.
    * The filter at a few prompt states (BOS + a prefix): how many tokens have p > 1e-3, ln p at
      ranks k, how many whole invented product names of the corpus are in the top k, the rank of ":".
    """
    import torch

    from envs.lm import load_causal_lm
    from envs.prompt_assets import ASSETS_DIR
    from envs.prompt_assets import build as shipped

    torch.set_num_threads(1)
    lm, tok = load_causal_lm("regula-tiny-gpt2")
    info = json.loads((ASSETS_DIR / "build_info.json").read_text())
    vocab, eos = len(tok), tok.convert_tokens_to_ids(shipped.EOS)

    def stream(lines: list[str]) -> list[int]:
        ids: list[int] = []
        for enc in tok(lines, add_special_tokens=False)["input_ids"]:
            ids += [eos, *enc]
        return ids

    train = stream(shipped.make_corpus(info["corpus_sentences"], info["seed"]))
    held = stream(shipped.make_corpus(heldout_lines, heldout_seed))
    counts = torch.bincount(torch.tensor(train), minlength=vocab).double()
    unigram = ((counts + 1) / (counts.sum() + vocab)).tolist()  # [V]
    counts = counts.tolist()
    pairs: dict[tuple[int, int], int] = {}
    for a, b in zip(train[:-1], train[1:]):
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    nll_uni = [-math.log(unigram[b]) for b in held[1:]]
    nll_bi = [
        -math.log(0.7 * pairs.get((a, b), 0) / max(counts[a], 1) + 0.3 * unigram[b])
        for a, b in zip(held[:-1], held[1:])
    ]
    blocks = torch.tensor(held[: len(held) // 32 * 32]).view(-1, 32)  # [n, 32]: the policy LM has 32 positions
    nll, ranks = [], []
    with torch.no_grad():
        for chunk in blocks.split(64):
            logits = lm(input_ids=chunk, attention_mask=torch.ones_like(chunk)).logits[:, :-1].float()  # [c, 31, V]
            target = chunk[:, 1:].unsqueeze(-1)
            nll.append(-logits.log_softmax(-1).gather(-1, target).flatten())
            ranks.append((logits > logits.gather(-1, target)).sum(-1).flatten())  # rank 0 = the LM's top token
    nll, ranks = torch.cat(nll), torch.cat(ranks).double()
    names = set(shipped.pseudo_words(shipped.N_PSEUDO_WORDS, info["seed"] + 1))
    name_ids = torch.tensor([i for i in range(vocab) if tok.decode([i]).strip() in names])
    colon = tok.convert_tokens_to_ids(":")
    states = {}
    for text in FILTER_CONTEXTS:
        ids = torch.tensor([[eos, *tok.encode(text, add_special_tokens=False)]])
        with torch.no_grad():
            logp = lm(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].float().log_softmax(-1)
        rank = (logp.unsqueeze(0) > logp.unsqueeze(1)).sum(-1)  # [V]: rank of every token
        ordered = logp.sort(descending=True).values
        states[text] = {
            "tokens_with_p_above_1e-3": int((logp > math.log(1e-3)).sum()),
            "ln_p_at_rank_k": {k: round(float(ordered[k - 1]), 2) for k in ks},
            "invented_names_in_top_k": {k: int((rank[name_ids] < k).sum()) for k in ks},
            "rank_of_colon": int(rank[colon]),
        }
    return {
        "heldout_tokens": len(held),
        "perplexity": {
            "policy_lm": math.exp(float(nll.mean())),
            "unigram": math.exp(sum(nll_uni) / len(nll_uni)),
            "bigram": math.exp(sum(nll_bi) / len(nll_bi)),
        },
        "coverage_top_k": {k: float((ranks < k).double().mean()) for k in ks},
        "smallest_k_for_coverage": {q: int(ranks.quantile(q)) + 1 for q in (0.95, 0.99)},
        "vocabulary": vocab,
        "whole_invented_names_in_vocabulary": len(name_ids),
        "filter_at_states": states,
    }


def english_words(path: Path) -> set[str]:
    """Lowercase alphabetic entries of a word list (one word a line, e.g. Debian's /usr/share/dict/words)."""
    if not path.is_file():
        raise SystemExit(f"error: no word list at {path}; apt-get install wamerican, or pass --words FILE")
    return {w for w in path.read_text(encoding="utf-8", errors="replace").lower().split() if w.isalpha()}


def bootstrap_difference(a: list[float], b: list[float], samples: int = 10_000, seed: int = 0) -> dict:
    """mean(a) - mean(b) with a 95 % percentile-bootstrap interval (each group resampled on its own)."""
    import random

    if not a or not b:
        return {"difference": math.nan, "low": math.nan, "high": math.nan, "n": [len(a), len(b)]}
    rng = random.Random(seed)
    diffs = sorted(
        sum(rng.choices(a, k=len(a))) / len(a) - sum(rng.choices(b, k=len(b))) / len(b) for _ in range(samples)
    )
    return {
        "difference": sum(a) / len(a) - sum(b) / len(b),
        "low": diffs[int(0.025 * samples)],
        "high": diffs[int(0.975 * samples) - 1],
        "n": [len(a), len(b)],
    }


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
    from agents.prompt.evaluation import dictionary_words, whole_word_fraction
    from envs.lm import load_prompt_dataset

    # the whole-word fraction is recomputed from the stored token pieces with the current definition
    if getattr(args, "smollm", False):
        words = english_words(args.words)
    else:
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
            report["seconds_per_step"] = STEP / report["env_steps_per_second"] if fps else None
            runs.append(report)
        measures = {}
        for which in ("best", "final"):
            for key in ("dev_accuracy", "test_accuracy", "support_size", "perplexity", "whole_word_fraction"):
                measures[f"{which}/{key}"] = mean_std([r[which][key] for r in runs])
            # perplexities span orders of magnitude: their geometric mean (exp of the mean log) is the summary
            logs = mean_std([math.log(r[which]["perplexity"]) for r in runs])
            measures[f"{which}/log_perplexity"] = logs
            measures[f"{which}/geometric_mean_perplexity"] = math.exp(logs["mean"]) if runs else math.nan
            # the largest rank of a prompt token among the policy LM's next tokens (reports that have it)
            ranks = [max(r[which]["lm_ranks"]) for r in runs if "lm_ranks" in r[which]]
            measures[f"{which}/max_lm_rank"] = mean_std(ranks)
        measures["prompts_per_second"] = mean_std([r["prompts_per_second"] for r in runs if r["prompts_per_second"]])
        measures["seconds_per_step"] = mean_std([r["seconds_per_step"] for r in runs if r.get("seconds_per_step")])
        out["arms"][preset] = {
            "complete": len(runs) == len(args.seeds),
            "measures": measures,
            "prompts": [{"seed": r["seed"], "best": r["best"]["prompt"], "final": r["final"]["prompt"]} for r in runs],
            "runs": runs,
        }
    pin, rl = (next((a for p, a in out["arms"].items() if p.startswith(f"{x}/")), None) for x in ("pin", "rlprompt"))
    if pin is not None and rl is not None:  # PIN - RLPrompt on the best dev prompts, each with its interval
        measures = {
            "test_accuracy": lambda b: b["test_accuracy"],
            "log_perplexity": lambda b: math.log(b["perplexity"]),
            "whole_word_fraction": lambda b: b["whole_word_fraction"],
        }
        for name, measure in measures.items():
            out[f"pin_minus_rlprompt_best_{name}"] = bootstrap_difference(
                [measure(r["best"]) for r in pin["runs"]], [measure(r["best"]) for r in rl["runs"]]
            )
    return out


def table(summary: dict) -> str:
    """A markdown table of the summary (mean +- std over seeds)."""
    lines = [
        "| arm | seeds | best-dev prompt: test acc | final prompt: test acc | support size (final policy) | "
        "perplexity (best, final; geometric mean) | ln perplexity (best, final) | whole words (best, final) | "
        "prompts/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in summary["arms"].items():
        m = arm["measures"]

        def cell(key: str, digits: int = 3, m: dict = m) -> str:
            return f"{m[key]['mean']:.{digits}f} +- {m[key]['std']:.{digits}f}"

        lines.append(
            f"| {name} | {m['best/test_accuracy']['n']} | {cell('best/test_accuracy')} | "
            f"{cell('final/test_accuracy')} | "
            f"{cell('final/support_size', 1)} | {m['best/geometric_mean_perplexity']:.0f}, "
            f"{m['final/geometric_mean_perplexity']:.0f} | {cell('best/log_perplexity', 2)}, "
            f"{cell('final/log_perplexity', 2)} | {cell('best/whole_word_fraction', 2)}, "
            f"{cell('final/whole_word_fraction', 2)} | "
            f"{cell('prompts_per_second', 1)} |"
        )
    for name, label in (
        ("test_accuracy", "test accuracy"),
        ("log_perplexity", "ln perplexity"),
        ("whole_word_fraction", "whole-word fraction"),
    ):
        diff = summary.get(f"pin_minus_rlprompt_best_{name}")
        if diff and diff["n"][0] and diff["n"][1]:
            lines.append(
                f"\nPIN - RLPrompt, {label} of the best dev prompt: {diff['difference']:+.3f} "
                f"(95 % bootstrap interval {diff['low']:+.3f} to {diff['high']:+.3f}; "
                f"seeds {diff['n'][0]} and {diff['n'][1]})."
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
    parser.add_argument("--smollm", action="store_true", help="the real SmolLM2-135M arms on real tweets instead")
    parser.add_argument("--words", type=Path, default=Path("/usr/share/dict/words"), help="English word list")
    parser.add_argument("--random-prompts", type=int, default=20)
    parser.add_argument("--nice", type=int, default=10, help="niceness added to each training run (nice -n)")
    parser.add_argument("--device", default="cpu", help="the runs' train.device (cuda for the MiniLM arms on a GPU)")
    parser.add_argument(
        "--override",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra settings of every run, e.g. env.options.task_lm=PATH (a local copy of the MiniLM encoder)",
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "benchmarks" / "runs" / "prompt")
    parser.add_argument("--out", type=Path, default=None, help="summary JSON (default: by task, benchmarks/results/)")
    parser.add_argument("--diagnose", action="store_true", help="only print the policy LM's quality and its filter")
    parser.add_argument(
        "--summarize", action="store_true",
        help="train nothing: rewrite the summary from the finished runs (the random-prompt baseline is read back "
        "from the summary JSON when it has one)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.diagnose:
        print(json.dumps(lm_diagnostics(), indent=1))
        return 0
    args.runs.mkdir(parents=True, exist_ok=True)
    task = "tweets-smollm" if args.smollm else "fsc-sentiment-minilm" if args.minilm else "fsc-sentiment"
    if args.out is None:
        name = "prompt_tweets_smollm.json" if args.smollm else "prompt_fsc_sentiment.json"
        args.out = ROOT / "benchmarks" / "results" / name
    if args.smollm:
        english_words(args.words)  # fail now, not after the runs
    presets = [(f"{arm}/{task}", arm) for arm in args.arms]
    jobs = [(preset, arm, seed) for seed in args.seeds for preset, arm in presets]
    saved = json.loads(args.out.read_text()).get("random_prompts") if args.out.is_file() else None
    if args.summarize and saved is not None:
        baseline = saved
    elif args.random_prompts:
        baseline = random_prompts(args.random_prompts, 0, task, args.device, args.override)
    else:
        baseline = {}
    if args.summarize:
        jobs = []

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
