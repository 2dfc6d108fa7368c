#!/usr/bin/env python
"""Evaluate a trained policy, also under perturbations.

  python evaluate.py RUN_DIR                          # 10 greedy episodes of the newest checkpoint
  python evaluate.py RUN_DIR --episodes 50 --stochastic
  python evaluate.py RUN_DIR --video                  # also write RUN_DIR/eval/episode.mp4
  python evaluate.py RUN_DIR --obs-noise 0 0.05 0.1 --action-noise 0 0.1 0.3
  python evaluate.py RUN_DIR --mass 0.5 1 1.5 --friction 0.5 1 1.5     # MuJoCo envs: heatmap PNG
  python evaluate.py RUN_DIR --adversary --random-force   # MuJoCo: a fresh worst-case force adversary
  python evaluate.py MARL_RUN --obs-noise 0 0.1 0.5 --attack 0.05 0.2 --agent-mass 2 --lipschitz
  python evaluate.py MARL_RUN --value-attack 0.05 0.2     # perturbations that lower the run's own critic
  python evaluate.py MARL_RUN --malicious 0 --malicious-mode adversarial   # agent 0 turns against the team
  python evaluate.py --compare SWEEP_DIR [LABEL=DIR ...] --out DIR   # many runs: IQM, 95% intervals, PNGs

Observation noise is Gaussian with the given std in observation units; action noise is Gaussian in
the canonical [-1, 1] action scale. Mass and friction scale every body's mass and every geom's
sliding friction relative to nominal (a grid of all pairs, a fresh env per cell). Every condition
plays the same episode seeds. Results are printed as tables and saved as one JSON report (and PNGs)
under RUN_DIR/eval/; the episode summaries have the same keys for single- and multi-agent runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Idle OpenMP workers spin briefly, then sleep (as in train.py); set before torch is first imported.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")


def all_conditions() -> list[type]:
    """The generic evaluation conditions and every registered family's own."""
    from agents import families
    from agents.robustness.catalog import conditions

    return conditions([c for family in families() for c in family.conditions])


def parse_args(argv: list[str]) -> argparse.Namespace:
    from agents.engine.config import command_line_parser

    parser = command_line_parser(
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
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1; see train.threads)")
    for condition in all_conditions():
        condition.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    if args.envs < 1:
        parser.error("--envs must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--compare":  # aggregate many runs / sweeps (IQM, intervals, profiles, curves)
        from agents.experiments.aggregate import main as aggregate_main

        return aggregate_main(argv[1:])
    args = parse_args(argv)

    from envs.video import configure_headless_gl

    configure_headless_gl()  # before mujoco is imported: headless rendering for --video

    import torch

    torch.set_num_threads(args.threads)

    from agents import load_run
    from agents.engine.checkpoint import CheckpointError
    from agents.engine.config import ConfigError
    from agents.robustness.context import Context
    from envs import EnvError

    try:
        run = load_run(args.run_dir, args.checkpoint, args.device)
        out_dir = args.run_dir / "eval"
        context = Context(
            run=run,
            episodes=args.episodes,
            seed=args.seed,
            explore=args.stochastic,
            num_envs=args.envs,
            out_dir=out_dir,
        )
        chosen = [c for kind in all_conditions() for c in kind.from_args(args)]
        for condition in chosen:  # every check before the first episode
            condition.check(context)
        out_dir.mkdir(exist_ok=True)
        config = run.config
        policy = "stochastic" if args.stochastic else "deterministic"
        report: dict = {
            "run_dir": str(args.run_dir),
            "algo": config.algo,
            "checkpoint_step": run.step,
            "env": config.env.id,
            "episodes": args.episodes,
            "policy": policy,
            "seed": args.seed,
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        nominal = report["nominal"] = context.score()
        print(
            f"{config.algo} on {config.env.id}, checkpoint step {run.step:,}, {args.episodes} episodes "
            f"({policy}): return {nominal['mean_reward']:.1f} +- {nominal['std_reward']:.1f} "
            f"(min {nominal['min_reward']:.1f}, max {nominal['max_reward']:.1f})"
            + (f", discounted {nominal['mean_discounted_reward']:.1f}" if "mean_discounted_reward" in nominal else "")
        )
        for condition in chosen:
            result = condition.run(context)
            if result is not None:  # a condition may have nothing to say about this run (--prompt on prompt runs only)
                report[condition.key] = result
    except (ConfigError, CheckpointError, EnvError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a condition that failed while running (e.g. video rendering)
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    path = out_dir / f"eval_step{run.step}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
