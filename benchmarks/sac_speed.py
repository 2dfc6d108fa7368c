#!/usr/bin/env python
"""Speed: regula SAC against stable-baselines3 SAC on Hopper-v5, CPU, same threads, one process.

Both use the same hyperparameters and networks (256x256 ReLU actor and twin critics, batch 256,
Adam 3e-4, one gradient update per env step, one env). Each measurement is a fresh training run
through the library's own public entry point (regula: ``agents.engine.run.train``; SB3:
``SAC.learn``): ``--warmup`` random steps, ``--burn-in`` steps with updates (allocator and caches
settle), then ``--measure`` timed steps. The two libraries alternate for ``--rounds`` rounds, and
the reported ratio is the median of per-round ratios. A second part times the bare update step
(updates/s on a filled buffer) of both.

  python benchmarks/sac_speed.py --threads 2 --rounds 3 --out benchmarks/results/sac_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing


def regula_env_steps_per_second(args, compile_: bool) -> float:
    from agents import get_preset
    from agents import run_training as train
    from agents.engine.config import apply_overrides
    from agents.engine.logger import Logger

    total = args.warmup + args.burn_in + args.measure
    config = apply_overrides(
        get_preset("sac/hopper"),
        [
            f"total_steps={total}",
            f"update_after_steps={args.warmup}",
            "eval_every=0",
            "eval_episodes=1",
            f"checkpoint_every={total}",
            f"log_every={args.warmup + args.burn_in}",
            "progress=false",
            f"threads={args.threads}",
            f"agent.compile={compile_}",
            f"buffer_size={total}",
        ],
    )
    marks: dict[int, float] = {}

    class TimingLogger(Logger):
        def log(self, step, metrics):
            marks.setdefault(step, time.perf_counter())  # first log call at a step: before eval
            return super().log(step, metrics)

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        train(config, run_dir, logger_factory=lambda: TimingLogger(run_dir, total, progress=False))
    start, end = marks[args.warmup + args.burn_in], marks[total]
    return args.measure / (end - start)


def sb3_env_steps_per_second(args) -> float:
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    start_at, end_at = args.warmup + args.burn_in, args.warmup + args.burn_in + args.measure
    marks: dict[str, float] = {}

    class Timer(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == start_at:
                marks["start"] = time.perf_counter()
            if self.num_timesteps == end_at:
                marks["end"] = time.perf_counter()
            return True

    model = SAC(
        "MlpPolicy",
        gym.make("Hopper-v5"),
        learning_rate=3e-4,
        buffer_size=end_at,
        learning_starts=args.warmup,
        batch_size=256,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        device="cpu",
        seed=0,
        policy_kwargs={"net_arch": [256, 256]},
        verbose=0,
    )
    model.learn(total_timesteps=end_at, callback=Timer())
    return args.measure / (marks["end"] - marks["start"])


def regula_updates_per_second(n: int) -> float:
    from agents.sac import SAC, SACConfig
    from envs.base import BoxSpec

    agent = SAC(BoxSpec((11,)), BoxSpec((3,)), SACConfig())
    batch = {
        "obs": torch.randn(256, 11),
        "action": torch.rand(256, 3) * 2 - 1,
        "reward": torch.randn(256),
        "next_obs": torch.randn(256, 11),
        "terminated": torch.zeros(256, dtype=torch.bool),
    }
    for _ in range(50):
        agent.update(batch, step=0)
    start = time.perf_counter()
    for _ in range(n):
        agent.update(batch, step=0)
    return n / (time.perf_counter() - start)


def sb3_updates_per_second(n: int) -> float:
    import gymnasium as gym
    from stable_baselines3 import SAC

    env = gym.make("Hopper-v5")
    model = SAC("MlpPolicy", env, batch_size=256, device="cpu", seed=0, policy_kwargs={"net_arch": [256, 256]})
    obs, _ = env.reset(seed=0)
    for _ in range(2000):  # fill the buffer with random transitions
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        model.replay_buffer.add(obs, next_obs, action, reward, terminated, [info])
        obs = env.reset()[0] if terminated or truncated else next_obs
    model._setup_learn(1)  # logger and progress bookkeeping that train() expects
    model.train(gradient_steps=50, batch_size=256)
    start = time.perf_counter()
    model.train(gradient_steps=n, batch_size=256)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before updates start")
    parser.add_argument("--burn-in", type=int, default=300, help="untimed steps with updates")
    parser.add_argument("--measure", type=int, default=1500, help="timed steps with updates")
    parser.add_argument("--updates", type=int, default=500, help="timed bare updates")
    parser.add_argument("--compile", action="store_true", help="also time regula with agent.compile=true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sac_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for r in range(args.rounds):
        ours = regula_env_steps_per_second(args, compile_=False)
        theirs = sb3_env_steps_per_second(args)
        row = {"round": r, "regula": ours, "sb3": theirs, "ratio": ours / theirs}
        if args.compile:
            row["regula_compiled"] = regula_env_steps_per_second(args, compile_=True)
            row["ratio_compiled"] = row["regula_compiled"] / theirs
        rows.append(row)
        print(json.dumps(row), flush=True)
    updates = {"regula": regula_updates_per_second(args.updates), "sb3": sb3_updates_per_second(args.updates)}
    updates["ratio"] = updates["regula"] / updates["sb3"]
    print("bare updates/s:", json.dumps(updates), flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
        "rounds": rows,
        "median_env_steps_ratio": statistics.median(r["ratio"] for r in rows),
        "updates_per_second": updates,
    }
    if args.compile:
        result["median_env_steps_ratio_compiled"] = statistics.median(r["ratio_compiled"] for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median env-steps/s ratio regula/sb3: {result['median_env_steps_ratio']:.2f}  -> {args.out}")


if __name__ == "__main__":
    main()
