#!/usr/bin/env python
"""SBX (the JAX port of stable-baselines3, ``sbx-rl``) SAC speed on Hopper-v5: the worker of
``benchmarks/sac_speed.py --sbx``. It imports nothing from regula (regula is not installed in the
SBX venv) and prints one JSON line; ``sac_speed.py`` runs it in a fresh process per measurement.

  benchmarks/.venv-sbx/bin/python benchmarks/sac_speed_sbx.py env --threads 2 --warmup 1000 --burn-in 300 --measure 1500
  benchmarks/.venv-sbx/bin/python benchmarks/sac_speed_sbx.py updates --threads 2 --updates 500

The venv, its settings and the thread restriction are described in ``sac_speed.py``'s docstring.
Thread restriction (set here before jax is imported, so a standalone run gets it too):
``PJRT_NPROC=N`` sizes XLA's CPU intra-op thread pool (``xla::DefaultThreadPoolSize()`` reads it;
JAX has no documented knob), ``--xla_cpu_multi_thread_eigen=false`` in ``XLA_FLAGS`` when N = 1 (Eigen
ops run on the calling thread), ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = N and
``torch.set_num_threads(N)`` (SB3's replay buffer, which SBX uses, samples through torch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def restrict_threads(n: int) -> None:
    """Before jax (and torch) are imported: the XLA CPU pool, Eigen, OpenMP/MKL to ``n`` threads."""
    os.environ["PJRT_NPROC"] = str(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def make_sac(env, buffer_size: int, learning_starts: int):
    """SBX SAC with every setting that matters for speed spelled out, matched to regula's and SB3's."""
    import flax.linen as nn
    import optax
    from sbx import SAC

    return SAC(
        "MlpPolicy",
        env,
        learning_rate=3e-4,  # actor, critics and entropy coefficient (qf_learning_rate None: the same)
        qf_learning_rate=None,
        buffer_size=buffer_size,
        learning_starts=learning_starts,
        batch_size=256,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        policy_delay=1,  # actor and temperature step after every critic step
        n_steps=1,  # one-step TD targets
        ent_coef="auto",  # learned, initial value 1.0
        target_entropy="auto",  # -|A|
        use_sde=False,
        param_resets=None,
        device="cpu",
        seed=0,
        verbose=0,
        policy_kwargs={
            "net_arch": [256, 256],  # actor and each critic
            "activation_fn": nn.relu,
            "n_critics": 2,
            "layer_norm": False,
            "dropout_rate": 0.0,
            "optimizer_class": optax.adam,  # b1 0.9, b2 0.999, eps 1e-8 (torch's Adam defaults)
            "optimizer_kwargs": {},
        },
    )


def env_steps_per_second(args) -> dict:
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    start_at, end_at = args.warmup + args.burn_in, args.warmup + args.burn_in + args.measure
    marks: dict[str, float] = {}

    class Timer(BaseCallback):  # the same callback as sac_speed.py's SB3 measurement
        def _on_step(self) -> bool:
            if self.num_timesteps == start_at:
                marks["start"] = time.perf_counter()
            if self.num_timesteps == end_at:
                marks["end"] = time.perf_counter()
            return True

    model = make_sac(gym.make("Hopper-v5"), buffer_size=end_at, learning_starts=args.warmup)
    model.learn(total_timesteps=end_at, callback=Timer())
    return {"env_steps_per_second": args.measure / (marks["end"] - marks["start"]), "n_updates": model._n_updates}


def updates_per_second(args) -> dict:
    """Bare updates on a filled buffer, after compiling: ``train(gradient_steps=1)`` called N times (what
    the training loop does: one replay sample and one jitted update per call), and for context one
    ``train(gradient_steps=N)`` (SBX samples N batches at once and runs the N updates in one jitted
    ``fori_loop``)."""
    import gymnasium as gym

    env = gym.make("Hopper-v5")
    model = make_sac(env, buffer_size=10_000, learning_starts=0)
    obs, _ = env.reset(seed=0)
    for _ in range(2000):  # fill the buffer with random transitions, as sac_speed.py's SB3 bare update
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        model.replay_buffer.add(obs, next_obs, action, reward, terminated, [info])
        obs = env.reset()[0] if terminated or truncated else next_obs
    model._setup_learn(1)  # logger and progress bookkeeping that train() expects
    compile_start = time.perf_counter()
    model.train(gradient_steps=1, batch_size=256)  # jit compile (train() syncs: it reads the losses)
    compile_s = time.perf_counter() - compile_start
    for _ in range(49):
        model.train(gradient_steps=1, batch_size=256)
    start = time.perf_counter()
    for _ in range(args.updates):
        model.train(gradient_steps=1, batch_size=256)
    per_call = args.updates / (time.perf_counter() - start)
    model.train(gradient_steps=args.updates, batch_size=256)  # compile the N-step fori_loop
    start = time.perf_counter()
    model.train(gradient_steps=args.updates, batch_size=256)
    fused = args.updates / (time.perf_counter() - start)
    return {"updates_per_second": per_call, "fused_updates_per_second": fused, "compile_s": compile_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["env", "updates"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before updates start")
    parser.add_argument("--burn-in", type=int, default=300, help="untimed steps with updates")
    parser.add_argument("--measure", type=int, default=1500, help="timed steps with updates")
    parser.add_argument("--updates", type=int, default=500, help="timed bare updates")
    args = parser.parse_args()
    restrict_threads(args.threads)
    import jax
    import torch

    torch.set_num_threads(args.threads)
    result = env_steps_per_second(args) if args.mode == "env" else updates_per_second(args)
    import sbx

    result.update(
        {
            "sbx": sbx.__version__,
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "PJRT_NPROC": os.environ.get("PJRT_NPROC"),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        }
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
