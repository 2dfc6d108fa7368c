#!/usr/bin/env python
"""Speed: regula's QMIX against BenchMARL's QMIX on VMAS navigation (discrete actions), CPU.

Both sides run the whole off-policy loop, collection and training, for the same number of env
frames (one frame = one step of one env with all agents acting), with matched environments per
collection, network widths, batch, optimizer steps per iteration and torch threads. Each side runs
in a fresh subprocess (BenchMARL in its own venv: it pulls another torch), alternating the order
over R rounds; the timed region is the training call (``Experiment.run()`` /
``train_episodic``), after both have built their envs and networks. Reported: frames/s per round,
the median per side, and the ratio regula / BenchMARL (of the medians and per round), plus the
split of each side's time: milliseconds per optimizer step, and frames/s of the rest (collection,
replay writes, regula's final evaluation). Results, with every matched setting, go to
``benchmarks/results/marl_benchmarl.json``. Both sides use a feed-forward MLP agent (regula's
``agent_net='mlp'``); ``--regula-agent gru`` runs regula's recurrent agent instead (PyMARL's
``rnn_agent``, regula's default; results to ``marl_benchmarl_gru.json``), and ``--regula-hidden 64``
runs regula at its own (DFAC) width instead of the matched 256: unmatched variants for context.

The BenchMARL venv (ignored by git; it holds a CUDA build of torch, several GB)::

    python -m venv benchmarks/.venv-benchmarl
    benchmarks/.venv-benchmarl/bin/pip install benchmarl vmas     # benchmarl 1.5.2, torchrl 0.11.1

The reference measurement (BenchMARL's defaults: one iteration of 6,000 frames from 10 envs, 1,000
optimizer steps of 128 frames; the issue reports about 63 s) and a quick check::

    nice python benchmarks/marl_benchmarl.py --rounds 3 --threads 2              # 6,000 frames
    nice python benchmarks/marl_benchmarl.py --rounds 1 --frames 1000 --frames-per-batch 1000 \\
        --optimizer-steps 100 --out benchmarks/runs/marl_benchmarl_quick.json                # ~1 min
    nice python benchmarks/marl_benchmarl.py --rounds 3 --threads 2 --regula-agent gru  # regula's GRU

Matched settings (BenchMARL's ``base_experiment.yaml``, ``qmix.yaml``, ``layers/mlp.yaml`` and
``vmas/navigation.yaml`` -> regula):

* task: VMAS navigation, 3 agents, collisions, per-agent rewards, ``max_steps`` 100 (regula's
  ``vmas:navigation`` defaults are BenchMARL's task config); team reward = mean over agents (as
  BenchMARL's QMIX ``process_batch``); mixer state = the agents' observations concatenated.
* envs per collection E = ``off_policy_n_envs_per_worker`` (10); BenchMARL collects
  ``frames_per_batch`` (6,000) frames per iteration from them, regula collects one 100-step
  episode per env per collection, i.e. ``frames_per_batch / (E * max_steps)`` collections per
  iteration, each followed by ``ceil(optimizer_steps / collections)`` updates (1,000 / 6 -> 167:
  regula does 1,002 updates where BenchMARL does 1,000, counted against regula).
* agent: a feed-forward MLP on both sides, Linear-Tanh-Linear-Tanh-Linear of width 256
  (BenchMARL's ``layers/mlp.yaml``: ``num_cells [256, 256]``, ``activation_class`` Tanh; regula's
  ``agent_net='mlp'``, ``mlp_activation='tanh'``, ``hidden_dim`` 256), mixing embed 32, agent input =
  the observation only (regula's last-action and agent-id inputs switched off), lr 5e-5, Adam eps 1e-6,
  grad-norm clip 5, gamma 0.99, epsilon 0.8 -> 0.01 over a third of the frames, replay 1M frames
  (regula: the same capacity in 100-step episodes, capped at what the run collects).
* batch: BenchMARL samples 128 transitions per optimizer step; regula samples whole episodes,
  ``ceil(128 / max_steps)`` = 2 episodes (200 transitions) per update.

Deviations from the reference (what cannot be matched without rewriting regula's learner):

* regula trains on whole padded episodes: each update runs the agent (online and target) on all
  101 steps of its 2 episodes (202 rows per agent, padded steps masked out of the loss), where
  BenchMARL runs it on the 128 sampled transitions and their next observations. With
  ``--regula-agent gru`` regula's agent is recurrent (Linear-ReLU-GRUCell(256)-Linear, PyMARL's
  ``rnn_agent``), and each update does a 101-step sequential GRU unroll instead of MLP passes.
* the weight initialization differs (each side's own seeded init).
* regula's QMIX hyper-networks have two layers (PyMARL, hypernet width 64); TorchRL's ``QMixer``
  has one-layer hyper-networks.
* target network: regula copies every 200 updates (PyMARL); BenchMARL does a Polyak update
  (tau 0.005) after every optimizer step.
* regula's loop always ends with a greedy evaluation (one 100-step episode here); it is inside
  regula's timed region (BenchMARL's evaluation is switched off).
* the two processes run different torch builds (regula: the project's CPU wheel; BenchMARL: the
  torch its install pulls), both on CPU with the same thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = ROOT / "benchmarks" / ".venv-benchmarl"

try:  # only the BenchMARL worker (in its venv) has benchmarl; BenchMARL pickles callbacks, so module level
    from benchmarl.experiment.callback import Callback as _BenchmarlCallback
except ImportError:
    _BenchmarlCallback = object


class TrainingTimer(_BenchmarlCallback):
    """BenchMARL callback: time from 'batch collected' to 'training done' (the optimizer steps)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.mark = 0.0, 0.0

    def on_batch_collected(self, batch):
        self.mark = time.perf_counter()

    def on_train_end(self, training_td, group):
        self.seconds += time.perf_counter() - self.mark


def matched_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The one settings dict both workers read (and the JSON records)."""
    episode_frames = args.envs * args.max_steps
    if args.frames_per_batch % episode_frames or args.frames % args.frames_per_batch:
        raise SystemExit(
            f"frames_per_batch ({args.frames_per_batch}) must be a multiple of envs * max_steps ({episode_frames}) "
            f"and frames ({args.frames}) a multiple of frames_per_batch"
        )
    collections = args.frames_per_batch // episode_frames
    batch_episodes = math.ceil(args.train_batch / args.max_steps)
    total_episodes = args.frames // args.max_steps
    return {
        "task": "vmas navigation",
        "n_agents": args.agents,
        "max_steps": args.max_steps,
        "frames": args.frames,
        "frames_per_batch": args.frames_per_batch,
        "envs_per_collection": args.envs,
        "optimizer_steps_per_iteration": args.optimizer_steps,
        "train_batch_frames": args.train_batch,
        "hidden": args.hidden,
        "regula_hidden": args.regula_hidden or args.hidden,
        "regula_agent": args.regula_agent,
        "mixing_embed_dim": 32,
        "lr": 5e-5,
        "adam_eps": 1e-6,
        "grad_clip_norm": 5.0,
        "gamma": 0.99,
        "epsilon": [0.8, 0.01, args.frames // 3],
        "memory_frames": 1_000_000,
        "threads": args.threads,
        "seed": args.seed,
        "regula": {
            "collections_per_iteration": collections,
            "updates_per_collect": math.ceil(args.optimizer_steps / collections),
            "total_updates": math.ceil(args.optimizer_steps / collections) * (args.frames // episode_frames),
            "batch_episodes": batch_episodes,
            "buffer_episodes": max(min(1_000_000 // args.max_steps, total_episodes), batch_episodes),
            "agent": (
                "Linear-Tanh-Linear-Tanh-Linear (feed-forward, agent_net='mlp')"
                if args.regula_agent == "mlp"
                else "Linear-ReLU-GRUCell-Linear (recurrent, agent_net='gru')"
            )
            + ", input = observation only",
            "hypernet_embed": 64,
            "target_every": 200,
            "final_eval_episodes": 1,
        },
        "benchmarl": {
            "agent": f"MLP [{args.hidden}, {args.hidden}] Tanh (feed-forward)",
            "soft_target_update": 0.005,
            "evaluation": False,
            "loggers": [],
        },
    }


# --------------------------------------------------------------------------------------------------
# Workers: each runs in its own process and prints one JSON line.


def run_benchmarl(s: dict[str, Any]) -> dict[str, Any]:
    """BenchMARL's QMIX on VMAS navigation (run with the BenchMARL venv's python)."""
    import torch

    torch.set_num_threads(s["threads"])
    import benchmarl
    import torchrl
    from benchmarl.algorithms import QmixConfig
    from benchmarl.environments import VmasTask
    from benchmarl.experiment import Experiment, ExperimentConfig
    from benchmarl.models.mlp import MlpConfig

    config = ExperimentConfig.get_from_yaml()
    config.sampling_device = config.train_device = config.buffer_device = "cpu"
    config.max_n_frames, config.max_n_iters = s["frames"], None
    config.off_policy_collected_frames_per_batch = s["frames_per_batch"]
    config.off_policy_n_envs_per_worker = s["envs_per_collection"]
    config.off_policy_n_optimizer_steps = s["optimizer_steps_per_iteration"]
    config.off_policy_train_batch_size = s["train_batch_frames"]
    config.off_policy_memory_size = s["memory_frames"]
    config.lr, config.adam_eps, config.gamma = s["lr"], s["adam_eps"], s["gamma"]
    config.clip_grad_norm, config.clip_grad_val = True, s["grad_clip_norm"]
    config.exploration_eps_init, config.exploration_eps_end, config.exploration_anneal_frames = s["epsilon"]
    config.evaluation, config.render, config.loggers, config.create_json = False, False, [], False
    config.checkpoint_interval, config.checkpoint_at_end = 0, False
    config.save_folder = tempfile.mkdtemp(prefix="benchmarl_")
    task = VmasTask.NAVIGATION.get_from_yaml()
    task.config.update({"max_steps": s["max_steps"], "n_agents": s["n_agents"]})
    algorithm = QmixConfig.get_from_yaml()
    algorithm.mixing_embed_dim = s["mixing_embed_dim"]
    model = MlpConfig.get_from_yaml()
    model.num_cells = [s["hidden"], s["hidden"]]
    timer = TrainingTimer()
    experiment = Experiment(
        task=task, algorithm_config=algorithm, model_config=model, seed=s["seed"], config=config, callbacks=[timer]
    )
    start = time.perf_counter()
    experiment.run()
    seconds = time.perf_counter() - start
    steps = s["optimizer_steps_per_iteration"] * int(experiment.n_iters_performed)
    return {
        "seconds": seconds,
        "training_seconds": timer.seconds,
        "frames": int(experiment.total_frames),
        "iterations": int(experiment.n_iters_performed),
        "optimizer_steps": steps,
        "versions": {"benchmarl": benchmarl.__version__, "torchrl": torchrl.__version__, "torch": torch.__version__},
    }


def run_regula(s: dict[str, Any]) -> dict[str, Any]:
    """regula's QMIX on ``vmas:navigation`` with the matched settings (main environment)."""
    import dataclasses

    import torch

    torch.set_num_threads(s["threads"])
    sys.path.insert(0, str(ROOT))
    import vmas

    from agents.core.config import EnvConfig, RunConfig
    from agents.marl import ALGORITHM_CONFIGS, EpisodicConfig, build, make_envs, train_episodic

    r = s["regula"]
    env = EnvConfig(
        id="vmas:navigation",
        num_envs=s["envs_per_collection"],
        options={"max_steps": s["max_steps"], "n_agents": s["n_agents"], "team_reward": "mean"},
    )
    train = EpisodicConfig(
        total_steps=s["frames"],
        batch_episodes=r["batch_episodes"],
        buffer_episodes=r["buffer_episodes"],
        update_after_episodes=r["batch_episodes"],
        updates_per_collect=r["updates_per_collect"],
        eval_every=0,
        eval_episodes=r["final_eval_episodes"],
        log_every=10**12,
        checkpoint_every=0,
        seed=s["seed"],
        threads=s["threads"],
        progress=False,
    )
    eps_start, eps_end, eps_frames = s["epsilon"]
    agent = dataclasses.replace(
        ALGORITHM_CONFIGS["qmix"],
        agent_net=s["regula_agent"],
        mlp_activation="tanh",  # BenchMARL's layers/mlp.yaml activation_class
        hidden_dim=s["regula_hidden"],
        mixing_embed_dim=s["mixing_embed_dim"],
        hypernet_embed=r["hypernet_embed"],
        obs_last_action=False,
        obs_agent_id=False,
        lr=s["lr"],
        adam_eps=s["adam_eps"],
        grad_norm_clip=s["grad_clip_norm"],
        gamma=s["gamma"],
        epsilon_start=eps_start,
        epsilon_end=eps_end,
        epsilon_anneal_steps=eps_frames,
        target_every=r["target_every"],
    )
    config = RunConfig("qmix", env, train, agent)
    train_env, eval_env = make_envs(config, "cpu")
    learner = build(config)
    training = [0.0]
    update = learner.update

    def timed_update(batch, *, step):  # CPU ops are synchronous: wall time is the update's cost
        begin = time.perf_counter()
        metrics = update(batch, step=step)
        training[0] += time.perf_counter() - begin
        return metrics

    learner.update = timed_update
    start = time.perf_counter()
    out = train_episodic(train_env, learner, train, eval_env=eval_env)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "training_seconds": training[0],
        "frames": int(out["steps"]),
        "optimizer_steps": int(out["updates"]),
        "versions": {"torch": torch.__version__, "vmas": vmas.__version__},
    }


# --------------------------------------------------------------------------------------------------


def run_worker(side: str, python: str, settings: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(settings["threads"]), "MKL_NUM_THREADS": str(settings["threads"])}
    cmd = [python, str(Path(__file__).resolve()), "--worker", side, "--settings", json.dumps(settings)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(
            f"{side} worker failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    result = json.loads(lines[-1])
    result["frames_per_second"] = result["frames"] / result["seconds"]
    # The split: optimizer steps vs the rest (collection, replay writes, regula's final evaluation).
    result["ms_per_optimizer_step"] = 1000 * result["training_seconds"] / max(result["optimizer_steps"], 1)
    result["collection_frames_per_second"] = result["frames"] / max(
        result["seconds"] - result["training_seconds"], 1e-9
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=6_000, help="env frames per run (both sides)")
    parser.add_argument("--frames-per-batch", type=int, default=6_000, help="BenchMARL frames per iteration")
    parser.add_argument("--envs", type=int, default=10, help="envs per collection (BenchMARL n_envs_per_worker)")
    parser.add_argument("--optimizer-steps", type=int, default=1_000, help="optimizer steps per iteration")
    parser.add_argument("--train-batch", type=int, default=128, help="BenchMARL frames per optimizer step")
    parser.add_argument("--hidden", type=int, default=256, help="agent width (BenchMARL MLP num_cells)")
    parser.add_argument("--regula-hidden", type=int, default=0, help="regula agent width if not --hidden (unmatched)")
    parser.add_argument(
        "--regula-agent",
        choices=["mlp", "gru"],
        default="mlp",
        help="regula's agent net: mlp (matched to BenchMARL's MLP) or gru (regula's default, unmatched)",
    )
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (order flips each round)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="BenchMARL venv")
    parser.add_argument(
        "--out", type=Path, default=None, help="result JSON (default: results/marl_benchmarl[_gru].json)"
    )
    parser.add_argument("--note", default="", help="free text stored with the result (e.g. 'machine under load')")
    parser.add_argument("--worker", choices=["benchmarl", "regula"], help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        settings = json.loads(args.settings)
        result = run_benchmarl(settings) if args.worker == "benchmarl" else run_regula(settings)
        print(json.dumps(result))
        return

    if args.out is None:
        suffix = "" if args.regula_agent == "mlp" else f"_{args.regula_agent}"
        args.out = ROOT / "benchmarks" / "results" / f"marl_benchmarl{suffix}.json"
    settings = matched_settings(args)
    pythons = {"benchmarl": str(args.venv / "bin" / "python"), "regula": sys.executable}
    if not Path(pythons["benchmarl"]).exists():
        raise SystemExit(f"no BenchMARL venv at {args.venv}; create it as the docstring says")
    print(json.dumps(settings, indent=2))
    rounds = []
    for i in range(args.rounds):
        order = ["benchmarl", "regula"] if i % 2 == 0 else ["regula", "benchmarl"]
        row = {"order": order, "loadavg_before": os.getloadavg()}
        for side in order:
            row[side] = run_worker(side, pythons[side], settings)
            r = row[side]
            print(
                f"round {i + 1}/{args.rounds} {side:9s}: {r['frames']:,} frames in {r['seconds']:.1f} s = "
                f"{r['frames_per_second']:.1f} frames/s ({r['optimizer_steps']} optimizer steps, "
                f"{r['ms_per_optimizer_step']:.1f} ms each; collection etc. {r['collection_frames_per_second']:.0f} "
                "frames/s)",
                flush=True,
            )
        row["ratio"] = row["regula"]["frames_per_second"] / row["benchmarl"]["frames_per_second"]
        rounds.append(row)
    median = {side: statistics.median(r[side]["frames_per_second"] for r in rounds) for side in pythons}
    split = {
        side: {
            "ms_per_optimizer_step": statistics.median(r[side]["ms_per_optimizer_step"] for r in rounds),
            "collection_frames_per_second": statistics.median(r[side]["collection_frames_per_second"] for r in rounds),
        }
        for side in pythons
    }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "note": args.note,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_end": os.getloadavg()},
        "settings": settings,
        "rounds": rounds,
        "median_frames_per_second": median,
        "median_split": split,
        "ratio_regula_over_benchmarl": median["regula"] / median["benchmarl"],
        "ratio_per_round": [r["ratio"] for r in rounds],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"median frames/s: regula {median['regula']:.1f}, BenchMARL {median['benchmarl']:.1f}; "
        f"ratio regula / BenchMARL = {result['ratio_regula_over_benchmarl']:.2f} "
        f"(per round: {', '.join(f'{r:.2f}' for r in result['ratio_per_round'])}) -> {args.out}"
    )


if __name__ == "__main__":
    main()
