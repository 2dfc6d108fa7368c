#!/usr/bin/env python
"""Speed: regula SAC against stable-baselines3 SAC (and SBX, its JAX port) on Hopper-v5, CPU, same threads.

All use the same hyperparameters and networks (256x256 ReLU actor and twin critics, batch 256,
Adam 3e-4, one gradient update per env step, one env). Each measurement is a fresh training run
through the library's own public entry point (regula: ``agents.engine.run.train``; SB3 and SBX:
``SAC.learn``): ``--warmup`` random steps, ``--burn-in`` steps with updates (allocator and caches
settle, JAX compiles), then ``--measure`` timed steps. The libraries alternate for ``--rounds``
rounds (the order rotates by one each round), and the reported ratios are medians of per-round
ratios. A second part times the bare update step (updates/s on a filled buffer) of each.

  python benchmarks/sac_speed.py --threads 2 --rounds 3 --out benchmarks/results/sac_speed.json
  python benchmarks/sac_speed.py --sbx --compile --threads 2 --rounds 3 --out benchmarks/results/sac_speed_sbx.json
  python benchmarks/sac_speed.py --compiled-step --threads 1 --out benchmarks/results/sac_compiled_step.json
  python benchmarks/sac_speed.py --ci        # CI's guard: a few seconds, prints a ratio, never fails

regula and SB3 run in this process (torch threads ``--threads``, torch's float32 matmul precision
``--matmul-precision`` for both); ``--compile`` adds regula with ``agent.compile=true`` as a further
column.

SBX (``--sbx [PYTHON]``, default ``benchmarks/.venv-sbx/bin/python``): each round also runs
``benchmarks/sac_speed_sbx.py`` (which imports nothing from regula) in a fresh process with that
interpreter; the timing is SB3's (a callback marks env steps warmup + burn-in and the last one). Its
venv (ignored by git; torch first, so that SB3's torch requirement is met by the CPU wheel and pip
downloads no CUDA build; plain ``jax`` is the CPU wheel)::

    python -m venv benchmarks/.venv-sbx
    benchmarks/.venv-sbx/bin/pip install torch==2.13.0
    benchmarks/.venv-sbx/bin/pip install sbx-rl==0.28.0 "gymnasium[mujoco]==1.4.0" mujoco==3.17.0
    # -> sbx-rl 0.28.0, jax/jaxlib 0.10.2 (CPU), flax 0.12.8, optax 0.2.8, stable_baselines3 2.9.2

SBX's SAC settings, every one given explicitly (``sac_speed_sbx.make_sac``), with regula's / SB3's:
``MlpPolicy``, ``net_arch`` [256, 256] for the actor and each critic, ``activation_fn`` relu,
``n_critics`` 2, ``layer_norm`` False, ``dropout_rate`` 0 (no DroQ), ``optimizer_class`` optax.adam
(b1 0.9, b2 0.999, eps 1e-8: torch's defaults), ``learning_rate`` 3e-4 for actor, critics
(``qf_learning_rate`` None) and the entropy coefficient, ``batch_size`` 256, ``gamma`` 0.99, ``tau``
0.005, ``train_freq`` 1, ``gradient_steps`` 1, ``policy_delay`` 1 (SBX's default; TD3-style delays are
off), ``n_steps`` 1, ``ent_coef`` "auto" (learned, initial 1.0, as regula's ``initial_temperature``),
``target_entropy`` "auto" (-|A| = -3), ``use_sde`` False, ``param_resets`` None,
``learning_starts`` = ``--warmup``, ``buffer_size`` = the run's steps, ``device`` cpu, ``seed`` 0.

SBX's threads: JAX has no documented thread-count setting, and the often-quoted
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N"`` does not size
anything in jaxlib 0.10.2 (its second word is not an XLA flag: the process still starts one
``tf_XLAEigen`` thread per core). The worker sets ``PJRT_NPROC=N``, which XLA's CPU client reads for
its intra-op pool size (``xla::DefaultThreadPoolSize()``; checked: N ``tf_XLAEigen`` threads), adds
``--xla_cpu_multi_thread_eigen=false`` when N = 1, and sets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and
``torch.set_num_threads`` to N (SB3's replay buffer samples through torch). JAX's other threads
(dispatch, runtime bookkeeping) are not compute pools and are left alone. No core pinning for any
library.

What is not matched between SBX and regula (none of it changes the amount of arithmetic per step):

* SBX runs in its own process with its own interpreter (same Python, torch, numpy, gymnasium and
  MuJoCo versions); regula and SB3 share this one. Process start and JIT compilation fall outside
  the timed window (compilation happens in the burn-in).
* SBX's update is jitted XLA (one compiled critic step, Polyak step, actor and entropy step per
  ``train`` call, inside a one-iteration ``fori_loop``); regula's is eager torch (or one inductor
  graph with ``--compile``). Each SBX ``train`` call samples through SB3's torch replay buffer and
  converts the batch to numpy, then to device arrays; regula samples its own tensor buffer.
* Step order inside an update: SBX does critic step, Polyak step, then actor and entropy step; regula
  does critic, actor and temperature, then Polyak. The entropy coefficient's loss uses the same actor
  sample as the actor loss on both sides.
* Actor head: SBX (like SB3) has separate mean and log-std layers; regula one layer of width 2|A|.
  log-std is clipped to [-20, 2] on all three.
* Weight initialization: flax's (lecun normal, zero bias) against torch's.
* Bare updates: regula's reuses one fixed batch (no sampling); SB3's and SBX's sample a batch from a
  filled replay buffer each update. SBX also reports ``train(gradient_steps=N)`` (N updates in one
  jitted loop, batches sampled at once) as ``sbx_fused``: not what its training loop does here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing
SBX_PYTHON = ROOT / "benchmarks" / ".venv-sbx" / "bin" / "python"


def repo_relative(value) -> str:
    """``value`` as a string, a path inside the repository relative to it (results name no machine's paths)."""
    text = str(value)
    root = str(ROOT) + os.sep
    return text[len(root) :] if text.startswith(root) else text


SBX_WORKER = ROOT / "benchmarks" / "sac_speed_sbx.py"
SBX_VENV_HINT = (
    "python -m venv benchmarks/.venv-sbx && benchmarks/.venv-sbx/bin/pip install torch==2.13.0 && "
    'benchmarks/.venv-sbx/bin/pip install sbx-rl==0.28.0 "gymnasium[mujoco]==1.4.0" mujoco==3.17.0'
)


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
            f"train.matmul_precision={args.matmul_precision}",
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


def hopper_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(256, 11, generator=g),
        "action": torch.rand(256, 3, generator=g) * 2 - 1,
        "reward": torch.randn(256, generator=g),
        "next_obs": torch.randn(256, 11, generator=g),
        "terminated": torch.zeros(256, dtype=torch.bool),
    }


def compiled_step(args) -> dict:
    """agent.compile's whole-step graph (inductor) against the eager update on a fixed Hopper-sized
    batch: compile time, the largest loss difference over the first updates (same seeds), and
    updates/s in alternating blocks (median of per-block ratios)."""
    from agents.sac import SAC, SACConfig
    from envs.base import BoxSpec

    def agent(compile_: bool) -> SAC:
        torch.manual_seed(0)
        return SAC(BoxSpec((11,)), BoxSpec((3,)), SACConfig(compile=compile_))

    eager, compiled = agent(False), agent(True)
    batch = hopper_batch()
    start = time.perf_counter()
    torch.manual_seed(1)
    first = compiled.update(batch, step=0)
    compile_s = time.perf_counter() - start
    torch.manual_seed(1)
    reference = eager.update(batch, step=0)
    worst = max(abs(first[k].item() - reference[k].item()) for k in reference)
    for i in range(2, 6):
        torch.manual_seed(i)
        a = eager.update(batch, step=0)
        torch.manual_seed(i)
        b = compiled.update(batch, step=0)
        worst = max(worst, *(abs(a[k].item() - b[k].item()) for k in a))
    if compiled._compiled_update is None:
        return {"compiled": False, "compile_s": compile_s}

    def rate(a: SAC) -> float:
        t = time.perf_counter()
        for _ in range(args.block):
            a.update(batch, step=0)
        return args.block / (time.perf_counter() - t)

    rows = []
    for _ in range(args.blocks):
        e, c = rate(eager), rate(compiled)
        rows.append({"eager": e, "compiled": c, "ratio": c / e})
    return {
        "compiled": True,
        "compile_s": compile_s,
        "max_abs_loss_difference_first_5_updates": worst,
        "blocks": rows,
        "median_ratio_compiled_over_eager": statistics.median(r["ratio"] for r in rows),
    }


# The CI guard's fixed baseline: eager SAC updates/s (Hopper sizes, batch 256, 1 thread) measured on
# the 2-core VM at load 5.2, 2026-12-06 04:18 UTC (docs/benchmarks.md, "CI speed guard"). The guard
# prints the ratio; noise on a shared machine is too large for a failing threshold.
CI_BASELINE_UPDATES_PER_S = 37.0


def ci_guard(seconds: float) -> None:
    from agents.sac import SAC, SACConfig
    from envs.base import BoxSpec

    torch.set_num_threads(1)
    torch.manual_seed(0)
    agent = SAC(BoxSpec((11,)), BoxSpec((3,)), SACConfig())
    batch = hopper_batch()
    for _ in range(10):
        agent.update(batch, step=0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.update(batch, step=0)
        n += 1
    rate = n / (time.perf_counter() - start)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"sac_speed CI guard: eager SAC update {rate:.1f} updates/s (1 thread, load {load:.1f}); "
        f"{rate / CI_BASELINE_UPDATES_PER_S:.2f}x the fixed baseline {CI_BASELINE_UPDATES_PER_S:.0f} updates/s "
        "(informational: never fails)"
    )


def sbx_run(python: str, mode: str, args) -> dict:
    """One SBX measurement (``mode`` env or updates) in a fresh process of the SBX venv's python."""
    cmd = [python, str(SBX_WORKER), mode, f"--threads={args.threads}", f"--warmup={args.warmup}"]
    cmd += [f"--burn-in={args.burn_in}", f"--measure={args.measure}", f"--updates={args.updates}"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS", "PJRT_NPROC")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"SBX worker failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


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
    from agents.engine.config import MATMUL_PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before updates start")
    parser.add_argument("--burn-in", type=int, default=300, help="untimed steps with updates")
    parser.add_argument("--measure", type=int, default=1500, help="timed steps with updates")
    parser.add_argument("--updates", type=int, default=500, help="timed bare updates")
    parser.add_argument("--compile", action="store_true", help="also time regula with agent.compile=true")
    parser.add_argument(
        "--matmul-precision",
        default="highest",
        choices=MATMUL_PRECISIONS,
        help="torch's float32 matmul precision for regula (train.matmul_precision) and SB3 alike (the process's "
        "setting); SBX (JAX) is not affected",
    )
    parser.add_argument(
        "--sbx",
        nargs="?",
        const=str(SBX_PYTHON),
        default=None,
        metavar="PYTHON",
        help="also time SBX (JAX) in a fresh process of this interpreter each round (default: %(const)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sac_speed.json"))
    parser.add_argument(
        "--compiled-step", action="store_true", help="only time agent.compile's whole-step graph against eager"
    )
    parser.add_argument("--block", type=int, default=100, help="updates per timed block (--compiled-step)")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks (--compiled-step)")
    parser.add_argument("--ci", action="store_true", help="the CI guard: a few seconds, prints a ratio")
    parser.add_argument("--ci-seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.ci:
        ci_guard(args.ci_seconds)
        return
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)  # SB3's runs too (regula's runner sets its own)
    if args.compiled_step:
        load = os.getloadavg()[0]
        result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load1_start": load}
        result.update({"torch": torch.__version__, "threads": args.threads, **compiled_step(args)})
        result["load1_end"] = os.getloadavg()[0]
        print(json.dumps(result, indent=2))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return

    sbx_python = None
    if args.sbx is not None:
        sbx_python = Path(args.sbx)
        if not sbx_python.exists():
            raise SystemExit(f"no SBX interpreter at {sbx_python}; create the venv: {SBX_VENV_HINT}")
        sbx_python = str(sbx_python)

    measure = {
        "regula": lambda: regula_env_steps_per_second(args, compile_=False),
        "sb3": lambda: sb3_env_steps_per_second(args),
    }
    if sbx_python:
        measure["sbx"] = lambda: sbx_run(sbx_python, "env", args)["env_steps_per_second"]
    if args.compile:
        measure["regula_compiled"] = lambda: regula_env_steps_per_second(args, compile_=True)
    names = list(measure)
    rows = []
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotated each round
        row: dict = {"round": r, "order": order, "load1_before": os.getloadavg()[0]}
        for name in order:
            row[name] = measure[name]()
        row["ratio"] = row["regula"] / row["sb3"]
        if sbx_python:
            row["ratio_sbx"] = row["regula"] / row["sbx"]
        if args.compile:
            row["ratio_compiled"] = row["regula_compiled"] / row["sb3"]
            if sbx_python:
                row["ratio_compiled_sbx"] = row["regula_compiled"] / row["sbx"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    updates = {"regula": regula_updates_per_second(args.updates), "sb3": sb3_updates_per_second(args.updates)}
    updates["ratio"] = updates["regula"] / updates["sb3"]
    sbx_info = None
    if sbx_python:
        sbx_info = sbx_run(sbx_python, "updates", args)
        updates["sbx"] = sbx_info["updates_per_second"]
        updates["sbx_fused"] = sbx_info["fused_updates_per_second"]
        updates["sbx_compile_s"] = sbx_info["compile_s"]
        updates["ratio_sbx"] = updates["regula"] / updates["sbx"]
    print("bare updates/s:", json.dumps(updates), flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "args": {k: repo_relative(v) for k, v in vars(args).items()},
        "rounds": rows,
        "median_env_steps_per_second": {name: statistics.median(r[name] for r in rows) for name in names},
        "median_env_steps_ratio": statistics.median(r["ratio"] for r in rows),
        "updates_per_second": updates,
        "load1_end": os.getloadavg()[0],
    }
    if args.compile:
        result["median_env_steps_ratio_compiled"] = statistics.median(r["ratio_compiled"] for r in rows)
    if sbx_python:
        result["median_env_steps_ratio_sbx"] = statistics.median(r["ratio_sbx"] for r in rows)
        if args.compile:
            result["median_env_steps_ratio_compiled_sbx"] = statistics.median(r["ratio_compiled_sbx"] for r in rows)
        result["sbx"] = {
            k: sbx_info[k] for k in ("sbx", "jax", "backend", "torch", "python", "PJRT_NPROC", "XLA_FLAGS")
        }
        result["sbx"]["interpreter"] = repo_relative(sbx_python)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = f"median env-steps/s ratio regula/sb3: {result['median_env_steps_ratio']:.2f}"
    if sbx_python:
        summary += f", regula/sbx: {result['median_env_steps_ratio_sbx']:.2f}"
    print(f"{summary}  -> {args.out}")


if __name__ == "__main__":
    main()
