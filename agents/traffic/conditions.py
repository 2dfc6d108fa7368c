"""Traffic robustness through ``evaluate.py --traffic``: the ERNIE paper's traffic shifts for a QCOMBO run.

Each condition plays ``--traffic-steps`` one-second steps (after ``--traffic-skip`` steps that are not scored: the
grid fills from empty) of the greedy policy on ``--episodes`` fresh simulations and reports, per step and over
the scored steps: the global reward, the mean queue (vehicles standing on an incoming edge), the mean delay
(``1 - mean speed / speed limit`` of an incoming edge) and the mean waiting time, read from the env's
observations in raw units, and the vehicles passed per hour: vehicles crossing a light (leaving one of its
incoming edges, the env's ``info["vehicles_passed"]``), summed over the lights (a vehicle that crosses two
lights counts twice) and scaled from one-second steps to an hour. Conditions (docs/algorithms/traffic.md):

* ``clean``: the training env;
* ``obs_noise``: i.i.d. Gaussian noise of std sigma on each light's 18 measured inputs (observation units: the
  normalised ones by default), not on its one-hot id; the authors' sigma = 0.1 was in raw units;
* ``demand``: other inflow vectors (the authors' skewed sets, uniform 600 and 800 veh/h);
* ``car_speed``: vehicles' maximum and entry speed;
* ``malicious``: each light's action flipped with probability p (the env wrapper ``malicious_lights``);
* ``grid_3x3``: the 2 x 2-trained local Q-net on a 3 x 3 grid; only possible with ``agent.light_id=false``
  (the one-hot id makes the input 22 wide on 2 x 2 and 27 on 3 x 3): otherwise reported as skipped, with why.

The report is one JSON section (``traffic``) and ``RUN_DIR/eval/traffic.png`` (reward per step by condition).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from agents.robustness.context import Context, table

FEATURES = 17
SKEWED_INFLOWS = {
    "skewed_a": [20, 500, 20, 500, 600, 900, 600, 900],
    "skewed_b": [20, 500, 20, 500, 600, 600, 600, 600],
    "uniform_600": [600] * 8,
    "uniform_800": [800] * 8,
}
SPEEDS = (25.0, 15.0)
MALICIOUS = (0.03, 0.05, 0.1)
NOISE = (0.05, 0.1, 0.2)
SECONDS_PER_HOUR = 3600  # the env steps one simulated second


def raw_scale(env: Any) -> torch.Tensor:
    """``[17]`` factors that turn the env's (possibly normalised) features back into raw units (through wrappers)."""
    while not hasattr(env, "_feature_scale") and hasattr(env, "env"):
        env = env.env
    return torch.as_tensor(env._feature_scale, dtype=torch.float32).broadcast_to(FEATURES)


@torch.no_grad()
def play_traffic(
    config: Any,
    agent: Any,
    *,
    episodes: int,
    seed: int,
    steps: int,
    skip: int,
    options: dict | None = None,
    wrappers: list | None = None,
    noise: float = 0.0,
) -> dict[str, float]:
    """Greedy policy on ``episodes`` fresh simulations of ``config``'s env with ``options`` changed and
    ``wrappers`` added; means over the steps after ``skip``: reward per step (global), queue and waiting time per
    incoming edge, delay per incoming edge, vehicles passed per hour (all lights); with their std over the
    simulations."""
    from envs import make_vec_env

    env = make_vec_env(
        config.env.id, episodes, device=agent.device, seed=seed,
        options={**dict(config.env.options), **(options or {})},
        wrappers=[*config.env.wrappers, *(wrappers or [])],
    )  # fmt: skip
    try:
        scale = raw_scale(env)
        generator = torch.Generator().manual_seed(seed + 31)
        obs = env.reset(seed=seed)
        sums = {key: torch.zeros(episodes) for key in ("reward", "queue", "wait", "delay", "passed")}
        for t in range(skip + steps):
            seen = obs
            if noise > 0:
                eps = torch.randn(obs.shape, generator=generator) * noise
                eps[..., FEATURES + 1 :] = 0.0  # the one-hot id is not measured
                seen = obs + eps.to(obs.device)
            action, _ = agent.act(seen, None, step=0, explore=False)
            out = env.step(action)
            obs = out.obs
            if t < skip:
                continue
            raw = out.final_obs[..., :FEATURES].cpu() * scale  # [n, L, 17]
            sums["reward"] += out.reward.cpu().reshape(episodes, -1).sum(-1)
            sums["queue"] += raw[..., 0:4].mean((-1, -2))
            sums["wait"] += raw[..., 4:8].mean((-1, -2))
            sums["delay"] += raw[..., 8:12].mean((-1, -2))
            sums["passed"] += out.info["vehicles_passed"].cpu().sum(-1)
        out = {}
        names = {"reward": "reward_per_step", "passed": "vehicles_passed_per_hour"}
        for key, total in sums.items():
            per_sim = total / steps * (SECONDS_PER_HOUR if key == "passed" else 1)  # [episodes]
            name = names.get(key, f"mean_{key}")
            out[name] = float(per_sim.mean())
            out[f"{name}_std"] = float(per_sim.std()) if episodes > 1 else 0.0
        return out
    finally:
        env.close()


def condition_list(config: Any, agent: Any) -> list[tuple[str, str, dict]]:
    """(group, label, play_traffic keywords) of every condition."""
    out: list[tuple[str, str, dict]] = [("clean", "clean", {})]
    out += [("obs_noise", f"sigma={s}", {"noise": s}) for s in NOISE]
    out += [("demand", name, {"options": {"inflows": flows}}) for name, flows in SKEWED_INFLOWS.items()]
    out += [("car_speed", f"speed={v:g}", {"options": {"vehicle_speed": v}}) for v in SPEEDS]
    out += [("malicious", f"p={p}", {"wrappers": [{"name": "malicious_lights", "p": p}]}) for p in MALICIOUS]
    out += [("grid_3x3", "3x3", {"options": {"rows": 3, "cols": 3}})]
    return out


def transfer_blocker(agent: Any) -> str | None:
    """Why a policy cannot run on another grid size, or None."""
    if getattr(agent.config, "light_id", True):
        return (
            "the local Q-net reads the one-hot light id (input 18 + lights: 22 on 2x2, 27 on 3x3); "
            "train with agent.light_id=false to transfer"
        )
    return None


def traffic_plot(results: list[dict], path: Any, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results if "reward_per_step" in r]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(done)), 4))
    ax.bar(range(len(done)), [r["reward_per_step"] for r in done], yerr=[r["reward_per_step_std"] for r in done])
    ax.set_xticks(range(len(done)), [f"{r['group']}\n{r['label']}" for r in done], fontsize=7, rotation=45)
    ax.set_ylabel("global reward per step")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def evaluate_traffic(config: Any, agent: Any, *, episodes: int, seed: int, steps: int, skip: int) -> list[dict]:
    """Every condition of :func:`condition_list`; a skipped one carries ``skipped`` (the reason)."""
    results = []
    for group, label, kwargs in condition_list(config, agent):
        if group == "grid_3x3" and transfer_blocker(agent):
            results.append({"group": group, "label": label, "skipped": transfer_blocker(agent)})
            continue
        stats = play_traffic(config, agent, episodes=episodes, seed=seed, steps=steps, skip=skip, **kwargs)
        results.append({"group": group, "label": label, **stats})
    return results


def summary_cells(r: dict) -> list[str]:
    if "skipped" in r:
        return ["skipped"] * 5
    cells = [f"{r['reward_per_step']:.2f}", f"{r['mean_queue']:.2f}", f"{r['mean_delay']:.3f}", f"{r['mean_wait']:.2f}"]
    return [*cells, f"{r['vehicles_passed_per_hour']:.0f}"]


class TrafficConditions:
    """``--traffic``: the traffic shifts above for a run on ``traffic:grid``."""

    key = "traffic"

    def __init__(self, steps: int, skip: int):
        self.steps, self.skip = steps, skip

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--traffic", action="store_true",
            help="traffic shifts (demand, car speed, malicious lights, obs noise, 3x3 grid) of a traffic:grid run",
        )  # fmt: skip
        parser.add_argument("--traffic-steps", type=int, default=1000, help="scored steps per simulation (--traffic)")
        parser.add_argument("--traffic-skip", type=int, default=200, help="unscored first steps (--traffic)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[TrafficConditions]:
        return [cls(args.traffic_steps, args.traffic_skip)] if args.traffic else []

    def check(self, context: Context) -> None:
        from agents.engine.config import ConfigError

        if not str(context.run.config.env.id).startswith("traffic:"):
            raise ConfigError(f"--traffic needs a run on traffic:grid, not {context.run.config.env.id}")
        if self.steps < 1 or self.skip < 0:
            raise ConfigError("--traffic-steps must be >= 1 and --traffic-skip >= 0")

    def run(self, context: Context) -> dict:
        run = context.run
        results = evaluate_traffic(
            run.config, run.agent, episodes=context.episodes, seed=context.seed, steps=self.steps, skip=self.skip
        )
        rows = [[r["group"], r["label"], *summary_cells(r)] for r in results]
        print()
        print(table("traffic:", ["group", "condition", "reward/step", "queue", "delay", "wait", "passed/h"], rows))
        context.out_dir.mkdir(parents=True, exist_ok=True)
        plot = traffic_plot(results, context.out_dir / "traffic.png", f"{run.config.algo}: traffic shifts")
        return {"conditions": results, "plot": plot, "steps": self.steps, "skip": self.skip}
