#!/usr/bin/env python
"""Speed: regula's QMIX and MADDPG against BenchMARL's on VMAS navigation, CPU.

``--algorithm qmix`` (the default) compares the QMIX loops on discrete actions, ``--algorithm
maddpg`` the MADDPG loops on continuous actions (its own section below). Both sides run the whole
off-policy loop, collection and training, for the same number of env frames (one frame = one step
of one env with all agents acting), with matched environments per
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

MADDPG (``--algorithm maddpg``, results to ``benchmarks/results/marl_benchmarl_maddpg.json``): regula's
off-policy MADDPG (``agents/maddpg/``, preset ``maddpg/vmas-navigation``) trained by the suite's own
off-policy entry point (``agents.engine.run.train``, the runner ``train.py`` reaches for a
``maddpg`` run) against BenchMARL's ``MaddpgConfig.get_from_yaml()``; the same rounds, medians, ratio
and split as above. The timed region is the loop itself (``Experiment.run()`` / the ``off_policy`` loop
that the runner drives), after envs, networks, replay buffer and evaluator are built::

    nice python benchmarks/marl_benchmarl.py --algorithm maddpg --rounds 3 --threads 2      # 6,000 frames
    nice python benchmarks/marl_benchmarl.py --algorithm maddpg --rounds 1 --frames 1000 \\
        --frames-per-batch 1000 --optimizer-steps 100 --out benchmarks/runs/marl_benchmarl_maddpg_quick.json

Matched settings (BenchMARL's ``base_experiment.yaml``, ``maddpg.yaml``, ``layers/mlp.yaml`` and
``vmas/navigation.yaml`` -> regula):

* task: VMAS navigation, 3 agents, collisions, continuous actions in [-1, 1], per-agent rewards,
  ``max_steps`` 100 (regula: ``env.options`` ``actions=continuous``, ``reward=agent``).
* frames: one iteration of ``frames_per_batch`` (6,000) frames from E = 10 envs, then 1,000
  optimizer steps of 128 sampled frames each. regula's off-policy loop has one update ratio after its
  warm-up, so it warms up for all but the last collector step of the first batch
  (``update_after_steps = frames_per_batch - E``, 5,990) and spreads the rest of the updates over the
  remaining frames (``updates_per_step = total updates / (frames - update_after_steps)``, 1,000 / 10 = 100:
  all 1,000 updates after the collector step that completes the batch, as BenchMARL). One regula
  update = one critic step and one actor step (and the Polyak step), as one BenchMARL optimizer step
  (its DDPG loss has a value and an actor term, each with its own Adam step). ``batch_size`` 128
  transitions (one transition = one frame, all agents).
* networks: actor and critic MLPs [256, 256] with Tanh (BenchMARL's ``layers/mlp.yaml`` for both;
  regula's ``hidden=(256, 256)``, ``activation='tanh'``); parameters shared across agents on both
  sides (BenchMARL's ``share_policy_params`` and ``share_param_critic`` are both True; regula's
  ``shared_parameters=True``); actor and critic lr 5e-5, gamma 0.99, target Polyak step 0.005,
  gradient norm clipped at 5 per network; replay of 1M frames (regula: capped at the frames the run
  collects, its buffer is preallocated).
* exploration: additive Gaussian noise of std 0.8 while collecting (BenchMARL anneals sigma from 0.8 to
  0.01 over a third of the frames, stepped once per iteration, so it stays 0.8 in a one-iteration run;
  regula's ``exploration_noise`` is a constant 0.8).
* BenchMARL's evaluation, loggers and checkpoints are off; regula evaluates once at the end (one greedy
  100-step episode, the minimum its loop does, inside the timed region) and its end-of-run checkpoint is
  not written (the loop still gathers the state dicts: a copy of the filled replay, about 3 MB at 6,000
  frames).

Deviations from the reference (MADDPG):

* critic: BenchMARL's shared centralised critic is one MLP over all agents' observations and actions
  with one output per frame, copied to every agent and regressed on every agent's reward; regula's
  shared critic appends agent k's one-hot id to the same input and gives each agent its own value, so
  each critic pass (online, target and the actor loss's) runs n = 3 rows per frame where BenchMARL's
  runs one. regula's shared actor also sees the agent's one-hot id (+3 inputs); BenchMARL's sees the
  observation only.
* losses: BenchMARL's actor loss evaluates the critic at the joint action of the current policy for
  every agent, regula's critic k sees agent k's action from its actor and the others' from the batch;
  BenchMARL computes both losses before either optimizer step (its own forward passes for each), regula
  steps the critic and then computes the actor loss with the updated critic; BenchMARL's TD
  target takes the next action from the online actor (TorchRL's DDPG loss delays only the value
  network), regula's from the target actor. regula's Adam eps is torch's default 1e-8 (not a MADDPG
  setting), BenchMARL's 1e-6.
* warm-up: regula's 5,990 warm-up frames use uniform random actions (no actor pass while collecting);
  BenchMARL collects every frame with its noisy policy (``off_policy_init_random_frames`` 0).
* the split: BenchMARL's training time (callback from "batch collected" to "training done") also holds
  its replay write and batch sampling; regula's counts the ``update`` calls only, its batch sampling is
  reported apart (``sample_seconds``) and its replay writes sit in the rest.
* the weight initialization differs, and the two processes run different torch builds (as for QMIX).
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


def time_calls(owner: Any, name: str) -> list[float]:
    """Replace the method ``owner.name`` by a wrapper that adds each call's wall time to the returned
    one-element list (CPU ops are synchronous: wall time is the call's cost)."""
    total, method = [0.0], getattr(owner, name)

    def timed(*args, **kwargs):
        begin = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - begin

    setattr(owner, name, timed)
    return total


def matched_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The one settings dict both workers read (and the JSON records), for ``args.algorithm``."""
    return maddpg_settings(args) if args.algorithm == "maddpg" else qmix_settings(args)


def shared_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings both algorithms match the same way: task size, frames, batch, widths, optimizer, threads."""
    return {
        "n_agents": args.agents,
        "max_steps": args.max_steps,
        "frames": args.frames,
        "frames_per_batch": args.frames_per_batch,
        "envs_per_collection": args.envs,
        "optimizer_steps_per_iteration": args.optimizer_steps,
        "train_batch_frames": args.train_batch,
        "hidden": args.hidden,
        "lr": 5e-5,
        "adam_eps": 1e-6,
        "grad_clip_norm": 5.0,
        "gamma": 0.99,
        "memory_frames": 1_000_000,
        "threads": args.threads,
        "seed": args.seed,
    }


def qmix_settings(args: argparse.Namespace) -> dict[str, Any]:
    """QMIX: the matched settings of the module docstring's first part."""
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
        "algorithm": "qmix",
        "task": "vmas navigation",
        **shared_settings(args),
        "regula_hidden": args.regula_hidden or args.hidden,
        "regula_agent": args.regula_agent,
        "mixing_embed_dim": 32,
        "epsilon": [0.8, 0.01, args.frames // 3],
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


def maddpg_settings(args: argparse.Namespace) -> dict[str, Any]:
    """MADDPG: the matched settings of the module docstring's MADDPG part.

    regula's schedule: warm-up W = frames_per_batch - E env steps, then ``updates_per_step`` =
    U / (frames - W) with U = optimizer_steps * frames / frames_per_batch (BenchMARL's total), raised by
    a relative 1e-9 so that the loop's float credit does not fall one update short (U / 1010 * 1010
    accumulates to 1999.999...); the update count is replayed here with the loop's own credit and must
    come out as U.
    """
    sys.path.insert(0, str(ROOT))
    from agents.engine.loops import UpdateCredit

    if args.regula_agent != "mlp":
        raise SystemExit("--regula-agent is a QMIX option (regula's MADDPG networks are MLPs)")
    if args.frames_per_batch % args.envs or args.frames % args.frames_per_batch or args.frames_per_batch <= args.envs:
        raise SystemExit(
            f"frames_per_batch ({args.frames_per_batch}) must be a multiple of envs ({args.envs}) above it, "
            f"and frames ({args.frames}) a multiple of frames_per_batch"
        )
    benchmarl_updates = args.optimizer_steps * (args.frames // args.frames_per_batch)
    warmup = args.frames_per_batch - args.envs
    ratio = benchmarl_updates / (args.frames - warmup) * (1 + 1e-9)
    credit = UpdateCredit(ratio)
    regula_updates = sum(credit.take(args.envs) for _ in range((args.frames - warmup) // args.envs))
    if regula_updates != benchmarl_updates:
        raise SystemExit(f"regula's schedule makes {regula_updates} updates, BenchMARL {benchmarl_updates}")
    hidden = args.regula_hidden or args.hidden
    return {
        "algorithm": "maddpg",
        "task": "vmas navigation, continuous actions, per-agent rewards",
        **shared_settings(args),
        "regula_hidden": hidden,
        "activation": "tanh",
        "share_parameters": True,
        "polyak_tau": 0.005,
        "exploration_sigma": [0.8, 0.01, args.frames // 3],
        "regula": {
            "preset": "maddpg/vmas-navigation",
            "entry_point": "agents.engine.run.train (the runner; timed: its off_policy loop)",
            "update_after_steps": warmup,
            "warmup_actions": "uniform random (no actor pass)",
            "updates_per_step": ratio,
            "total_updates": regula_updates,
            "batch_size": args.train_batch,
            "buffer_size": min(1_000_000, args.frames),
            "actor": f"shared MLP [{hidden}, {hidden}] Tanh, input = observation + one-hot agent id, tanh head",
            "critic": f"shared MLP [{hidden}, {hidden}] Tanh, input = all observations and actions + one-hot "
            "agent id, one value per agent (n rows per frame)",
            "exploration_noise": 0.8,
            "adam_eps": 1e-8,
            "td_target_action": "target actor",
            "final_eval_episodes": 1,
            "checkpoint": "end-of-run state gathered by the loop, not written",
        },
        "benchmarl": {
            "config": "MaddpgConfig.get_from_yaml() (share_param_critic, loss l2, delay_value, tanh mapping)",
            "actor": f"shared MLP [{args.hidden}, {args.hidden}] Tanh, input = observation",
            "critic": f"shared centralised MLP [{args.hidden}, {args.hidden}] Tanh over all observations and "
            "actions, one value per frame copied to every agent",
            "td_target_action": "online actor (TorchRL DDPGLoss delays only the value network)",
            "init_random_frames": 0,
            "evaluation": False,
            "loggers": [],
            "checkpoints": False,
        },
    }


# --------------------------------------------------------------------------------------------------
# Workers: each runs in its own process and prints one JSON line.


def run_benchmarl(s: dict[str, Any]) -> dict[str, Any]:
    """BenchMARL's QMIX or MADDPG (``s["algorithm"]``) on VMAS navigation (run with the BenchMARL venv's python)."""
    import torch

    torch.set_num_threads(s["threads"])
    import benchmarl
    import torchrl
    from benchmarl.algorithms import MaddpgConfig, QmixConfig
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
    # QMIX: epsilon-greedy; MADDPG: the std of the additive Gaussian noise (the same three config fields)
    exploration = s["exploration_sigma"] if s["algorithm"] == "maddpg" else s["epsilon"]
    config.exploration_eps_init, config.exploration_eps_end, config.exploration_anneal_frames = exploration
    config.evaluation, config.render, config.loggers, config.create_json = False, False, [], False
    config.checkpoint_interval, config.checkpoint_at_end = 0, False
    config.save_folder = tempfile.mkdtemp(prefix="benchmarl_")
    task = VmasTask.NAVIGATION.get_from_yaml()
    task.config.update({"max_steps": s["max_steps"], "n_agents": s["n_agents"]})
    if s["algorithm"] == "maddpg":
        algorithm = MaddpgConfig.get_from_yaml()
        algorithm.share_param_critic = config.share_policy_params = s["share_parameters"]
        config.soft_target_update, config.polyak_tau = True, s["polyak_tau"]
    else:
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
    result = {
        "seconds": seconds,
        "training_seconds": timer.seconds,
        "frames": int(experiment.total_frames),
        "iterations": int(experiment.n_iters_performed),
        "optimizer_steps": steps,
        "versions": {"benchmarl": benchmarl.__version__, "torchrl": torchrl.__version__, "torch": torch.__version__},
    }
    if s["algorithm"] == "maddpg":  # the networks actually built, to set against regula's (one agent group)
        (loss,) = experiment.losses.values()
        result["parameters"] = {
            name: sum(p.numel() for p in params.values(True, True))
            for name, params in (("actor", loss.actor_network_params), ("critic", loss.value_network_params))
        }
    return result


def run_regula(s: dict[str, Any]) -> dict[str, Any]:
    """regula's QMIX or MADDPG (``s["algorithm"]``) with the matched settings (main environment)."""
    import torch

    torch.set_num_threads(s["threads"])
    sys.path.insert(0, str(ROOT))
    import vmas

    result = run_regula_maddpg(s) if s["algorithm"] == "maddpg" else run_regula_qmix(s)
    result["versions"] = {"torch": torch.__version__, "vmas": vmas.__version__}
    return result


def quiet_loop(s: dict[str, Any]) -> dict[str, Any]:
    """Loop keys of a timed regula run: no logs, checkpoints or progress bar; only the loop's own final evaluation
    (eval_every 0) of ``final_eval_episodes`` episodes; the matched seed and thread count."""
    return dict(
        eval_every=0,
        eval_episodes=s["regula"]["final_eval_episodes"],
        log_every=10**12,
        checkpoint_every=0,
        seed=s["seed"],
        threads=s["threads"],
        progress=False,
    )


def run_regula_qmix(s: dict[str, Any]) -> dict[str, Any]:
    """regula's QMIX on ``vmas:navigation`` (discrete actions), timed around ``train_episodic``."""
    import dataclasses

    from agents.engine.config import EnvConfig, RunConfig
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
        **quiet_loop(s),
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
    training = time_calls(learner, "update")
    start = time.perf_counter()
    out = train_episodic(train_env, learner, train, eval_env=eval_env)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "training_seconds": training[0],
        "frames": int(out["steps"]),
        "optimizer_steps": int(out["updates"]),
    }


def run_regula_maddpg(s: dict[str, Any]) -> dict[str, Any]:
    """regula's MADDPG on continuous ``vmas:navigation`` through the runner ``agents.engine.run.train``.

    The entry point builds env, agent, replay buffer, collector and evaluator, then hands the session to
    its ``off_policy`` loop; the timed region is that loop call (patched in this worker process only with
    a timing wrapper). The agent's ``update`` and the buffer's ``sample`` are timed per call.
    """
    import dataclasses
    import shutil

    from agents import maddpg
    from agents.engine import run as core_run
    from agents.engine.config import RunConfig
    from agents.engine.family import Family
    from agents.engine.loops import OffPolicyConfig, off_policy

    r = s["regula"]
    preset = maddpg.PRESETS[r["preset"]]
    options = {**preset.env.options, "max_steps": s["max_steps"], "n_agents": s["n_agents"]}
    env = dataclasses.replace(preset.env, num_envs=s["envs_per_collection"], options=options)
    train = OffPolicyConfig(
        total_steps=s["frames"],
        update_after_steps=r["update_after_steps"],
        buffer_size=s["memory_frames"],
        batch_size=r["batch_size"],
        updates_per_step=r["updates_per_step"],
        **quiet_loop(s),
    )
    agent = dataclasses.replace(
        preset.agent,
        hidden=(s["regula_hidden"], s["regula_hidden"]),
        activation=s["activation"],
        shared_parameters=s["share_parameters"],
        actor_lr=s["lr"],
        critic_lr=s["lr"],
        gamma=s["gamma"],
        polyak=s["polyak_tau"],
        max_grad_norm=s["grad_clip_norm"],
        exploration_noise=r["exploration_noise"],
    )
    config = RunConfig("maddpg", env, train, agent)
    timed: dict[str, Any] = {}

    def build(config, obs_spec, action_spec, device):
        learner = maddpg.build(config, obs_spec, action_spec, device)
        timed["update"] = time_calls(learner, "update")
        return learner

    def timed_loop(session):
        session.checkpointer.save = lambda step, payload: None  # checkpoints off: nothing is written
        timed["sample"] = time_calls(session.buffer, "sample")
        start = time.perf_counter()
        off_policy(session)
        timed["seconds"] = time.perf_counter() - start
        timed["frames"], timed["updates"] = session.step, session.agent.updates
        timed["parameters"] = {
            name: sum(p.numel() for p in params)
            for name, params in (("actor", session.agent.actor_params), ("critic", session.agent.critic_params))
        }

    run_dir = Path(tempfile.mkdtemp(prefix="regula_maddpg_"))
    try:
        core_run.train(Family(presets={}, build_agent=build, loop=timed_loop, multi_agent=True), config, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # config.json and the TensorBoard events of the timed run
    return {
        "seconds": timed["seconds"],
        "training_seconds": timed["update"][0],
        "sample_seconds": timed["sample"][0],
        "frames": int(timed["frames"]),
        "optimizer_steps": int(timed["updates"]),
        "parameters": timed["parameters"],
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
    parser.add_argument(
        "--algorithm",
        choices=["qmix", "maddpg"],
        default="qmix",
        help="qmix (discrete actions) or maddpg (continuous actions); see the module docstring for each",
    )
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
        help="QMIX only: regula's agent net: mlp (matched to BenchMARL's MLP) or gru (regula's default, unmatched)",
    )
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (order flips each round)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="BenchMARL venv")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON (default: results/marl_benchmarl[_gru].json, results/marl_benchmarl_maddpg.json)",
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
        suffix = "_maddpg" if args.algorithm == "maddpg" else suffix
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
