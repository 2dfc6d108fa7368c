#!/usr/bin/env python
"""Simulation speed of the SUMO traffic-signal env: libsumo in worker processes against TraCI.

The authors' setting: a 2 x 2 grid, 400 m edges, 700 vehicles/hour on each of the 8 entry edges, 1 s steps.
Every light switches with probability 0.1 per step (a fixed random policy). After ``--warmup`` untimed steps
(the grid fills up: about 400 vehicles), ``--steps`` steps are timed. One sim-step is one second of one
simulation; with N simulations a VecEnv step is N sim-steps.

Two levels, each for both backends, alternating over ``--rounds`` rounds:

* ``sim``: one :class:`envs.traffic.simulation.GridSimulation` driven in this process (libsumo in-process, or one
  ``sumo`` process over a TraCI socket): the cost of SUMO plus the per-step measurements;
* ``env``: the ``traffic:grid`` VecEnv with N simulations (``--envs``): libsumo in N worker processes stepping in
  parallel, or N ``sumo`` processes driven one after the other over TraCI; torch tensors out.

  python benchmarks/traffic_speed.py --rounds 3 --envs 1 2 4
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

SWITCH_PROBABILITY = 0.1


def sim_speed(backend: str, warmup: int, steps: int, seed: int = 0) -> float:
    """Sim-steps/s of one GridSimulation in this process (run in a fresh subprocess: one libsumo per process)."""
    from envs.traffic.network import generate_grid, read_layout, sumo_binary, write_routes
    from envs.traffic.simulation import GridSimulation

    directory = Path(tempfile.mkdtemp(prefix="regula-sumo-bench-"))
    net = generate_grid(directory, 2, 2, 400.0, 35.0)
    layout = read_layout(net, 2, 2)
    routes = write_routes(directory / "grid.rou.xml", layout, [700.0] * 8, 35.0)
    args = ["-n", str(net), "-r", str(routes), "--step-length", "1", "--time-to-teleport", "-1"]
    args += ["--no-step-log", "true", "--no-warnings", "true", "--seed", str(seed)]
    if backend == "libsumo":
        with contextlib.redirect_stdout(io.StringIO()):
            import libsumo as api
        api.load(args)
    else:
        import traci
        from sumolib.miscutils import getFreeSocketPort

        port = getFreeSocketPort()
        proc = subprocess.Popen([sumo_binary("sumo"), "--remote-port", str(port), *args], stdout=subprocess.DEVNULL)
        with contextlib.redirect_stdout(io.StringIO()):
            api = traci.connect(port, numRetries=400, proc=proc, waitBetweenRetries=0.025)
    sim = GridSimulation(api, layout, yellow=3, min_green=2, speed_limit=35.0)
    sim._begin()
    rng = np.random.default_rng(seed)
    actions = (rng.random((warmup + steps, 4)) < SWITCH_PROBABILITY).astype(np.int64)
    for t in range(warmup):
        sim.step(actions[t])
    start = time.perf_counter()
    for t in range(warmup, warmup + steps):
        sim.step(actions[t])
    elapsed = time.perf_counter() - start
    sim.close()
    shutil.rmtree(directory, ignore_errors=True)
    return steps / elapsed


def env_speed(backend: str, num_envs: int, warmup: int, steps: int, seed: int = 0) -> float:
    """Sim-steps/s of the traffic:grid VecEnv with ``num_envs`` simulations (N sim-steps per env step)."""
    import torch

    from envs import make_vec_env

    env = make_vec_env("traffic:grid", num_envs, seed=seed, options={"backend": backend, "episode_limit": 100_000})
    try:
        generator = torch.Generator().manual_seed(seed)
        actions = (torch.rand(warmup + steps, num_envs, 4, generator=generator) < SWITCH_PROBABILITY).long()
        for t in range(warmup):
            env.step(actions[t])
        start = time.perf_counter()
        for t in range(warmup, warmup + steps):
            env.step(actions[t])
        elapsed = time.perf_counter() - start
    finally:
        env.close()
    return num_envs * steps / elapsed


def measure_in_subprocess(kind: str, backend: str, num_envs: int, warmup: int, steps: int) -> float:
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import benchmarks.traffic_speed as b; "
        "kind, backend, n, w, s = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]); "
        "v = b.sim_speed(backend, w, s) if kind == 'sim' else b.env_speed(backend, n, w, s); print(json.dumps(v))"
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code, root, kind, backend, str(num_envs), str(warmup), str(steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/traffic_speed.json"))
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    cases = [("sim", backend, 1) for backend in ("libsumo", "traci")]
    cases += [("env", backend, n) for n in args.envs for backend in ("libsumo", "traci")]
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        row = {}
        for kind, backend, n in cases:
            key = f"{kind}/{backend}/N={n}"
            row[key] = measure_in_subprocess(kind, backend, n, args.warmup, args.steps)
            print(f"round {r} {key:<22} {row[key]:8.1f} sim-steps/s", flush=True)
        rounds.append(row)
    median = {key: statistics.median(row[key] for row in rounds) for key in rounds[0]}
    print("median:", json.dumps({k: round(v, 1) for k, v in median.items()}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_end": os.getloadavg(),
        "note": args.note,
        "setting": "2x2 grid, 400 m edges, 700 veh/h on 8 entry edges, switch probability 0.1 per light and step",
        "warmup": args.warmup,
        "steps": args.steps,
        "rounds": rounds,
        "median": median,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
