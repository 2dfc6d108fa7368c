"""ROE vs the risk-neutral baseline on one-step cooperative matrix games (docs/benchmarks.md).

For every game x mixer (DDN, DMIX) x variant (baseline = uniform fractions, i.e. DFAC; ROE =
fractions U[alpha_t, 1], alpha 1 -> 0 over 1 500 steps) x seed, train 3 000 steps with the
``roe/GAME`` / ``roe/GAME-ddn`` / ``dmix/GAME`` / ``ddn/GAME`` presets and record the greedy joint
payoff (epsilon 0, fractions U[0, 1], 256 draws). Results are checkpointed to a JSON file after
every run; a restarted script skips the runs already there.

    nice python benchmarks/marl_matrix_games.py                      # 3 games x 2 mixers x 2 variants x 10 seeds
    python benchmarks/marl_matrix_games.py --games custom \\
        --payoff '[[0,0,-12],[0,0,-12],[-12,-12,8]]' --out benchmarks/results/marl_matrix_custom.json

Done-when (the issue): ROE reaches the optimum in >= 8/10 seeds with DDN and DMIX on WQMIX and
climbing, the baseline in <= 2/10. The summary prints the count per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GAMES = ("wqmix", "climbing", "penalty")
MIXERS = ("ddn", "dmix")
VARIANTS = ("baseline", "roe")
# Ablations (logged, not gated): ROE plus these overrides.
ABLATIONS = {
    "roe-acting-only": ["agent.shift_training_taus=false"],
    "roe-eps0": ["agent.epsilon_start=0", "agent.epsilon_end=0"],
    "roe-a0.75": ["agent.risk_start=0.75"],
    "roe-a0.5": ["agent.risk_start=0.5"],
}


def run_config(game: str, mixer: str, variant: str, seed: int, payoff: str | None, total_steps: int | None):
    """The RunConfig of one cell, built from the presets plus command-line style overrides."""
    from agents.engine.config import apply_overrides
    from agents.marl import PRESETS

    base = "wqmix" if game == "custom" else game
    if variant.startswith("roe"):
        name = f"roe/{base}" if mixer == "dmix" else f"roe/{base}-ddn"
    else:
        name = f"{mixer}/{base}"
    overrides = [f"train.seed={seed}", *ABLATIONS.get(variant, [])]
    if game == "custom":
        # Exactly what a user types: train.py roe/wqmix env.id=matrix env.options.payoff=[[...]]
        overrides += ["env.id=matrix", f"env.options.payoff={payoff}"]
    if total_steps:
        overrides.append(f"train.total_steps={total_steps}")
    return name, apply_overrides(PRESETS[name], overrides)


def one_run(job: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from agents.marl import train_config

    game, mixer, variant, seed, payoff, total_steps = job
    name, cfg = run_config(game, mixer, variant, seed, payoff, total_steps)
    start = time.time()
    out = train_config(cfg)
    return {
        "game": game,
        "mixer": mixer,
        "variant": variant,
        "seed": seed,
        "preset": name,
        "payoff": float(out["final_eval"]["eval/mean_reward"]),
        "seconds": round(time.time() - start, 1),
    }


def key(r: dict) -> str:
    return f"{r['game']}|{r['mixer']}|{r['variant']}|{r['seed']}"


def save(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file


def summarize(results: dict, optima: dict[str, float]) -> str:
    lines = [f"{'game':<9} {'mixer':<5} {'variant':<9} {'optimal':>8}  payoff per seed"]
    cells: dict[tuple, list] = {}
    for r in results["runs"].values():
        cells.setdefault((r["game"], r["mixer"], r["variant"]), []).append(r)
    for (game, mixer, variant), runs in sorted(cells.items()):
        runs.sort(key=lambda r: r["seed"])
        hits = sum(abs(r["payoff"] - optima[game]) < 1e-6 for r in runs)
        values = ", ".join(f"{r['payoff']:g}" for r in runs)
        lines.append(f"{game:<9} {mixer:<5} {variant:<9} {hits:>3}/{len(runs):<4}  {values}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=list(GAMES), help="wqmix climbing penalty custom")
    parser.add_argument("--mixers", nargs="+", default=list(MIXERS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"also: {', '.join(ABLATIONS)}")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--payoff", default=None, help="JSON payoff of the 'custom' game")
    parser.add_argument("--total-steps", type=int, default=None, help="override t_max (default: preset, 3000)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (one torch thread each)")
    parser.add_argument("--out", default="benchmarks/results/marl_matrix_games.json")
    args = parser.parse_args()
    if "custom" in args.games and not args.payoff:
        parser.error("--games custom needs --payoff")

    from envs.matrix_games import GAMES as TABLES
    from envs.matrix_games import payoff_tensor

    optima = {g: float(payoff_tensor(TABLES[g]).max()) for g in GAMES}
    if args.payoff:
        optima["custom"] = float(payoff_tensor(json.loads(args.payoff)).max())
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    results["setup"] = {"t_max": args.total_steps or 3000, "payoff_custom": args.payoff, "optima": optima}
    jobs = [
        (g, m, v, s, args.payoff, args.total_steps)
        for s in range(args.seeds)
        for g in args.games
        for m in args.mixers
        for v in args.variants
        if f"{g}|{m}|{v}|{s}" not in results["runs"]
    ]
    print(f"{len(jobs)} runs to do, {len(results['runs'])} already in {path}", flush=True)
    if args.workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(args.workers)
        iterator = pool.imap_unordered(one_run, jobs)
    else:
        iterator = map(one_run, jobs)
    for r in iterator:
        results["runs"][key(r)] = r
        save(path, results)
        print(f"{key(r):<28} payoff {r['payoff']:g}  ({r['seconds']} s)", flush=True)
    table = summarize(results, optima)
    print(table)
    command = "python benchmarks/marl_matrix_games.py " + " ".join(sys.argv[1:])
    path.with_suffix(".md").write_text(
        f"# Matrix games: greedy joint payoff after {results['setup']['t_max']} steps\n\n"
        f"`{command.strip()}`\n\n```\n{table}\n```\n"
    )


if __name__ == "__main__":
    main()
