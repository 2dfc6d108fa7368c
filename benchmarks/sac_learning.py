#!/usr/bin/env python
"""Learning: regula SAC against stable-baselines3 SAC, several seeds, same hyperparameters.

Each (library, seed) run trains for ``--steps`` env steps and evaluates the deterministic policy
every ``--eval-every`` steps on 10 episodes. Each finished run is written to
``benchmarks/results/sac_learning/<env>/<library>_seed<k>.json`` (so several processes can run
different seeds at once) and all finished runs are summarized in
``benchmarks/results/sac_learning_<env>.json``. Rerunning skips finished runs and resumes an
unfinished run from its checkpoint (SB3's from its last evaluation, approximately). Curves (mean +- std over seeds) go
to ``docs/figures/sac_learning_<env>.png``.

  python benchmarks/sac_learning.py --env Pendulum-v1 --seeds 0 1 2 3 4 --steps 20000
  python benchmarks/sac_learning.py --env Hopper-v5 --seeds 0 1 2 --steps 100000 --eval-every 5000

Hyperparameters are the regula preset's (``sac`` for Pendulum-v1, ``sac/hopper`` for Hopper-v5) and
SB3 is given the same: learning rates, batch 256, tau 0.005, gamma 0.99, 256x256 networks, the same
number of random warm-up steps (SB3's ``learning_starts``), one update per step, auto entropy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

PRESET = {"Pendulum-v1": "sac", "Hopper-v5": "sac/hopper"}
RUNS = Path("benchmarks/runs/sac_learning")


def regula_run(env_id: str, seed: int, args) -> list[tuple[int, float]]:
    from agents import get_preset
    from agents import run_training as train
    from agents.engine.checkpoint import Checkpointer
    from agents.engine.config import apply_overrides
    from agents.engine.run import read_config

    run_dir = RUNS / f"regula_{env_id}_seed{seed}"
    overrides = [
        f"seed={seed}",
        f"total_steps={args.steps}",
        f"eval_every={args.eval_every}",
        "eval_episodes=10",
        f"checkpoint_every={args.eval_every}",
        f"threads={args.threads}",
        "progress=false",
    ]
    if Checkpointer(run_dir).latest() is not None:
        train(apply_overrides(read_config(run_dir), overrides), run_dir, resume=True)
    else:
        train(apply_overrides(get_preset(PRESET[env_id]), overrides), run_dir)
    curve = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "eval/mean_reward" in row:
            curve[row["step"]] = row["eval/mean_reward"]
    return sorted(curve.items())


def sb3_run(env_id: str, seed: int, args) -> list[tuple[int, float]]:
    """SB3's SAC with the preset's hyperparameters; saves model, replay buffer and curve at every
    evaluation, so a killed run continues from there (SB3's RNG streams restart: approximate)."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    from agents import get_preset

    preset = get_preset(PRESET[env_id])
    cfg, train_cfg = preset.agent, preset.train
    torch.set_num_threads(args.threads)
    eval_env = gym.make(env_id)
    run_dir = RUNS / f"sb3_{env_id}_seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    curve: list[tuple[int, float]] = []

    class EvaluateAndSave(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10, deterministic=True)
                curve.append((self.num_timesteps, float(mean)))
                self.model.save(run_dir / "model.zip")
                self.model.save_replay_buffer(run_dir / "replay.pkl")
                (run_dir / "curve.json").write_text(json.dumps(curve))
            return True

    assert cfg.actor_lr == cfg.critic_lr == cfg.temperature_lr, "SB3 takes one learning rate"
    if (run_dir / "model.zip").exists() and (run_dir / "curve.json").exists():
        model = SAC.load(run_dir / "model.zip", env=gym.make(env_id), device="cpu")
        model.load_replay_buffer(run_dir / "replay.pkl")
        curve.extend(tuple(point) for point in json.loads((run_dir / "curve.json").read_text()))
        remaining = args.steps - model.num_timesteps
        model.learn(total_timesteps=max(remaining, 0), callback=EvaluateAndSave(), reset_num_timesteps=False)
        return curve
    model = SAC(
        "MlpPolicy",
        gym.make(env_id),
        learning_rate=cfg.actor_lr,
        buffer_size=args.steps,
        learning_starts=train_cfg.update_after_steps,
        batch_size=train_cfg.batch_size,
        tau=cfg.polyak,
        gamma=cfg.gamma,
        train_freq=1,
        gradient_steps=1,
        ent_coef="auto",
        seed=seed,
        device="cpu",
        policy_kwargs={"net_arch": list(cfg.hidden)},
        verbose=0,
    )
    model.learn(total_timesteps=args.steps, callback=EvaluateAndSave())
    return curve


def summarize(results: dict, env_id: str) -> dict:
    out = {}
    for lib in ("regula", "sb3"):
        runs = {k: v for k, v in results["runs"].items() if k.startswith(lib + "/")}
        if not runs:
            continue
        finals = [v[-1][1] for v in runs.values()]
        out[lib] = {
            "seeds": len(finals),
            "final_mean": float(np.mean(finals)),
            "final_std": float(np.std(finals)),
            "final_min": float(np.min(finals)),
            "finals": finals,
        }
    return out


def plot(results: dict, env_id: str) -> Path:
    from agents.robustness.plots import curves

    series = {}
    for lib in ("regula", "sb3"):
        runs = [v for k, v in results["runs"].items() if k.startswith(lib + "/")]
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(s for s, _ in r) for r in runs)))
        points = []
        for step in steps:
            values = [dict(r)[step] for r in runs]
            points.append((step, float(np.mean(values)), float(np.std(values))))
        series[f"{lib} SAC ({len(runs)} seeds)"] = points
    return curves(
        series,
        Path("docs/figures") / f"sac_learning_{env_id}.png",
        title=f"SAC on {env_id}",
        ylabel="eval return (10 episodes)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Pendulum-v1", choices=sorted(PRESET))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--libs", nargs="+", default=["regula", "sb3"], choices=["regula", "sb3"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run_files = Path("benchmarks/results/sac_learning") / args.env  # one file per (library, seed)
    run_files.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for lib in args.libs:
            path = run_files / f"{lib}_seed{seed}.json"
            if path.exists():
                continue
            start = time.time()
            curve = (regula_run if lib == "regula" else sb3_run)(args.env, seed, args)
            record = {
                "library": lib,
                "seed": seed,
                "steps": args.steps,
                "curve": curve,
                "seconds": time.time() - start,
                "date": time.strftime("%Y-%m-%d"),
            }
            path.write_text(json.dumps(record) + "\n")
            print(f"{lib}/seed{seed}: final eval {curve[-1][1]:.1f} ({record['seconds']:.0f} s)", flush=True)

    # Aggregate every finished run (also those written by other processes running other seeds).
    results = {"runs": {}, "seconds": {}}
    for path in sorted(run_files.glob("*.json")):
        record = json.loads(path.read_text())
        key = f"{record['library']}/seed{record['seed']}"
        results["runs"][key] = record["curve"]
        results["seconds"][key] = record["seconds"]
    results["summary"] = summarize(results, args.env)
    out = Path("benchmarks/results") / f"sac_learning_{args.env}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["summary"], indent=1))
    print(f"curves: {plot(results, args.env)}")


if __name__ == "__main__":
    main()
