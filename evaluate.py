#!/usr/bin/env python
"""Evaluate a trained policy, also under perturbations.

  python evaluate.py RUN_DIR                          # 10 greedy episodes of the newest checkpoint
  python evaluate.py RUN_DIR --episodes 50 --stochastic
  python evaluate.py RUN_DIR --video                  # also write RUN_DIR/eval/episode.mp4
  python evaluate.py RUN_DIR --obs-noise 0 0.05 0.1 --action-noise 0 0.1 0.3
  python evaluate.py RUN_DIR --mass 0.5 1 1.5 --friction 0.5 1 1.5     # MuJoCo envs: heatmap PNG

Observation noise is Gaussian with the given std in observation units; action noise is Gaussian in
the canonical [-1, 1] action scale. Mass and friction scale every body's mass and every geom's
sliding friction relative to nominal (a grid of all pairs). Results are printed as tables and saved
as JSON (and a heatmap PNG for the grid) under RUN_DIR/eval/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description=__doc__.split("\n\n")[0].strip(),
        epilog="\n".join(__doc__.strip().splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="a run directory written by train.py")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file (default: the run's newest)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per setting (default: 10)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the greedy policy")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the evaluation episodes (default: 12345)")
    parser.add_argument("--envs", type=int, default=10, help="environments stepped together (default: 10)")
    parser.add_argument("--obs-noise", type=float, nargs="+", metavar="SIGMA", help="observation noise stds")
    parser.add_argument("--action-noise", type=float, nargs="+", metavar="SIGMA", help="action noise stds")
    parser.add_argument("--mass", type=float, nargs="+", metavar="SCALE", help="body-mass scales (MuJoCo)")
    parser.add_argument("--friction", type=float, nargs="+", metavar="SCALE", help="friction scales (MuJoCo)")
    parser.add_argument("--video", action="store_true", help="record one episode to RUN_DIR/eval/episode.mp4")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    return args


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    from envs.video import configure_headless_gl

    configure_headless_gl()  # before mujoco is imported: headless rendering for --video

    from agents.core.checkpoint import CheckpointError
    from agents.core.config import ConfigError
    from agents.core.evaluation import run_episodes, summarize
    from agents.core.run import load_agent
    from envs import EnvError, make_env, make_vec_env
    from envs.perturb import ActionNoise, ModelScaling, ObservationNoise, mujoco_model

    try:
        config, agent, _, _, step = load_agent(args.run_dir, args.checkpoint, args.device)
        if (args.mass or args.friction) and mujoco_model(make_env(config.env.id, config.env.options)) is None:
            raise EnvError(f"--mass/--friction need a MuJoCo env; {config.env.id} is not one")
    except (ConfigError, CheckpointError, EnvError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    explore = args.stochastic
    from agents import algorithm_module

    module = algorithm_module(config.algo)
    if hasattr(module, "evaluate_agent"):  # multi-agent families: their own greedy episodes (masks, state)
        if args.obs_noise or args.action_noise or args.mass or args.friction or args.video or args.stochastic:
            print(
                f"error: {config.algo} supports the nominal greedy evaluation only (no perturbation, "
                "--stochastic or --video yet)",
                file=sys.stderr,
            )
            return 2
        result = module.evaluate_agent(config, agent, args.episodes, seed=args.seed)
        print(
            f"{config.algo} on {config.env.id}, checkpoint step {step:,}, {args.episodes} greedy episodes: "
            f"return {result['eval/mean_reward']:.2f} (min {result['eval/min_reward']:.2f}, "
            f"max {result['eval/max_reward']:.2f})"
        )
        out_dir = args.run_dir / "eval"
        out_dir.mkdir(exist_ok=True)
        path = out_dir / f"eval_step{step}_{time.strftime('%Y%m%d-%H%M%S')}.json"
        report = {
            "run_dir": str(args.run_dir),
            "checkpoint_step": step,
            "env": config.env.id,
            "episodes": args.episodes,
            "seed": args.seed,
            "nominal": result,
        }
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {path}")
        return 0

    def score(wrappers=()) -> dict:
        env = make_vec_env(
            config.env.id,
            min(args.envs, args.episodes),
            device=args.device,
            seed=args.seed,
            options=config.env.options,
            wrappers=wrappers,
        )
        try:
            result = run_episodes(agent, env, args.episodes, explore=explore, step=step, seed=args.seed)
        finally:
            env.close()
        return summarize(result["returns"])

    out_dir = args.run_dir / "eval"
    out_dir.mkdir(exist_ok=True)
    report: dict = {
        "run_dir": str(args.run_dir),
        "checkpoint_step": step,
        "env": config.env.id,
        "episodes": args.episodes,
        "policy": "stochastic" if explore else "deterministic",
        "seed": args.seed,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }

    nominal = score()
    report["nominal"] = nominal
    print(
        f"{config.algo} on {config.env.id}, checkpoint step {step:,}, {args.episodes} episodes "
        f"({report['policy']}): return {nominal['mean_reward']:.1f} +- {nominal['std_reward']:.1f} "
        f"(min {nominal['min_reward']:.1f}, max {nominal['max_reward']:.1f})"
    )

    def fmt(stats: dict) -> list:
        return [f"{stats['mean_reward']:.1f}", f"{stats['std_reward']:.1f}", f"{stats['min_reward']:.1f}"]

    for flag, wrapper, label in (
        (args.obs_noise, ObservationNoise, "observation noise"),
        (args.action_noise, ActionNoise, "action noise"),
    ):
        if not flag:
            continue
        results = []
        for sigma in flag:
            stats = score([lambda e, s=sigma, w=wrapper: w(e, s, seed=args.seed)])
            results.append({"sigma": sigma, **stats})
        report[label.replace(" ", "_")] = results
        print()
        print(table(f"{label}:", ["sigma", "mean", "std", "min"], [[r["sigma"], *fmt(r)] for r in results]))

    if args.mass or args.friction:
        from agents.core.plots import heatmap

        masses, frictions = args.mass or [1.0], args.friction or [1.0]
        grid = []
        for m in masses:
            row = []
            for f in frictions:
                row.append(score([lambda e, m=m, f=f: ModelScaling(e, mass_scale=m, friction_scale=f)]))
            grid.append(row)
        report["mass_friction"] = {"mass_scales": masses, "friction_scales": frictions, "grid": grid}
        print()
        print(
            table(
                "mean return by mass scale (rows) and friction scale (columns):",
                ["mass \\ friction", *frictions],
                [[m, *(f"{cell['mean_reward']:.1f}" for cell in row)] for m, row in zip(masses, grid)],
            )
        )
        png = heatmap(
            [[cell["mean_reward"] for cell in row] for row in grid],
            masses,
            frictions,
            out_dir / "mass_friction.png",
            title=f"{config.algo} on {config.env.id}: mean return",
        )
        print(f"heatmap: {png}")

    if args.video:
        import torch

        from envs.video import record_episode

        def policy(obs):
            with torch.no_grad():
                obs_t = torch.as_tensor(obs, dtype=torch.float32, device=args.device).unsqueeze(0)
                return agent.act(obs_t, None, step=step, explore=explore)[0][0].cpu().numpy()

        try:
            video = record_episode(
                lambda: make_env(config.env.id, config.env.options, render_mode="rgb_array"),
                policy,
                out_dir / "episode.mp4",
                seed=args.seed,
                canonical_actions=hasattr(agent, "actor"),
            )
        except RuntimeError as e:
            print(f"error: video failed: {e}", file=sys.stderr)
            return 2
        report["video"] = {"path": str(video["path"]), "frames": video["frames"], "return": video["return"]}
        print(f"video: {video['path']} ({video['frames']} frames, return {video['return']:.1f})")

    path = out_dir / f"eval_step{step}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
