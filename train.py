#!/usr/bin/env python
"""Train an agent of the regula suite from a named preset.

  python train.py                              # the default preset: SAC on Pendulum-v1
  python train.py sac/hopper total_steps=200000 seed=1
  python train.py sac env.id=dmc:cheetah-run agent.actor_lr=1e-3
  python train.py --list                       # every preset
  python train.py sac/hopper --show            # every key of a preset, its value and meaning
  python train.py --resume runs/sac_Pendulum-v1_seed0_20261123-101500 [total_steps=40000]
  python train.py --resume runs/sac_Pendulum-v1_seed0_20261123-101500/checkpoints/step_000010000.pt
  python train.py --config sweeps/x/best_config.json [overrides]    # a config written by --search

Many runs from one command (local processes, or Ray Tune with --ray / --ray-address ADDR):

  python train.py sac --seeds 0-4 total_steps=20000 --sweep-dir sweeps/pendulum   # rerun to resume
  python train.py sac --seeds 0-4 --batched --sweep-dir sweeps/pendulum-b   # 5 seeds in one process (SAC)
  python train.py sac --seeds 0-2 --grid agent.actor_lr=1e-4,3e-4 --sweep-dir sweeps/lr
  python train.py dqn/cartpole --search --space 'agent.lr=loguniform(1e-5,1e-3)' \
      --space 'train.batch_size=choice(64,128)' --samples 8 --sweep-dir sweeps/search
  python evaluate.py --compare sweeps/pendulum ...   # IQM, intervals, profiles, curves

Overrides are key=value: a section-qualified key (train.batch_size, agent.gamma, env.num_envs) or a
bare key where it is unique (total_steps, seed). A run directory holds config.json, TensorBoard
events, metrics.jsonl and checkpoints/; evaluate.py RUN_DIR scores its policy.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_PRESET = "sac"

# With more than one torch thread (train.threads=N asks for the cores to itself), idle OpenMP workers
# spin ~0.2 ms for the next parallel region, then sleep: as fast alone as OpenMP's default 3 ms spin, and
# 2.4x a passive wait's rate (docs/benchmarks.md, "Threads under load"). One thread, the default, has no
# workers. OpenMP reads this when torch is first imported, so here; a user's own setting wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")


SWEEP_FLAGS = (
    "--seeds",
    "--grid",
    "--sweep-dir",
    "--ray",
    "--ray-address",
    "--search",
    "--space",
    "--space-file",
    "--batched",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description=__doc__.split("\n\n")[0].strip(),
        epilog="\n".join(__doc__.strip().splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset", nargs="?", default=None, help=f"preset name (default: {DEFAULT_PRESET}); see --list")
    parser.add_argument("overrides", nargs="*", help="key=value settings applied on top of the preset")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    parser.add_argument(
        "--show", action="store_true", help="print the resolved config with each key's meaning and exit"
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its newest usable checkpoint, or from the file "
        "RUN_DIR/checkpoints/step_N.pt given instead",
    )
    parser.add_argument("--config", metavar="JSON", help="start from a config file (e.g. a search's best_config.json)")
    parser.add_argument(
        "--seeds",
        metavar="RANGE",
        help="run a sweep: one trial per seed (0-4 or 0,2,5); with --grid, --ray, --search, --batched and their "
        "options (python -m agents.experiments.sweep --help lists them all)",
    )
    parser.add_argument(
        "--run-dir", metavar="DIR", help="where to write the run (default: runs/<algo>_<env>_seed<k>_<time>)"
    )
    args = parser.parse_intermixed_args(argv)  # options may sit between overrides
    # "train.py total_steps=100" : the first positional is an override, not a preset.
    if args.preset is not None and "=" in args.preset:
        args.overrides.insert(0, args.preset)
        args.preset = None
    return args


def _remove_unstarted(run_dir: Path | None, created: bool) -> None:
    """Remove a run directory this command created when the run failed before its first checkpoint."""
    import shutil

    if created and run_dir is not None and run_dir.is_dir() and not any((run_dir / "checkpoints").glob("*.pt")):
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg.split("=", 1)[0] in SWEEP_FLAGS for arg in argv):  # many runs: the sweep runner
        from agents.experiments.sweep import main as sweep_main

        return sweep_main(argv)
    args = parse_args(argv)
    run_dir, created, chosen = None, False, None

    from agents import all_presets, get_preset
    from agents import run_training as train
    from agents.engine.agent import NonFiniteLossError
    from agents.engine.checkpoint import CheckpointError, resume_target
    from agents.engine.config import ConfigError, apply_overrides, describe
    from agents.engine.run import default_run_dir, read_config, read_config_file
    from envs import EnvError

    try:
        if args.list:
            for name, cfg in all_presets().items():
                print(f"{name:<32} {cfg.algo:<6} {cfg.env.id:<26} {cfg.train.total_steps:>10,} steps")
            return 0
        if args.resume:
            if args.preset is not None or args.config:
                raise ConfigError("--resume takes its config from RUN_DIR/config.json; give overrides only, no preset")
            run_dir, chosen = resume_target(Path(args.resume))  # a run directory or one of its checkpoints
            config = apply_overrides(read_config(run_dir), args.overrides)
        else:
            base = read_config_file(Path(args.config)) if args.config else get_preset(args.preset or DEFAULT_PRESET)
            config = apply_overrides(base, args.overrides)
            run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
        if args.show:
            print(f"preset {args.preset or DEFAULT_PRESET} (algo {config.algo})")
            print(describe(config))
            return 0
        if not args.resume and run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another --run-dir")
        print(f"run directory: {run_dir}", file=sys.stderr)
        created = not args.resume and not run_dir.exists()
        train(config, run_dir, resume=chosen or bool(args.resume))
    except (ConfigError, CheckpointError, EnvError) as e:
        _remove_unstarted(run_dir, created)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # invalid settings found while building (e.g. an option an env refuses)
        _remove_unstarted(run_dir, created)
        if os.environ.get("REGULA_DEBUG"):
            raise
        print(f"error: invalid configuration: {e} (REGULA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("\ninterrupted; resume with: python train.py --resume " + str(run_dir), file=sys.stderr)
        return 130

    from agents.engine.logger import final_evaluation

    print(f"\nDone. Run directory: {run_dir}")
    final = final_evaluation(run_dir)
    if final is not None:
        print(f"  Final evaluation return: {final[1]:.2f} (step {final[0]:,}, eval/mean_reward)")
    print(f"  TensorBoard:  tensorboard --logdir {run_dir.parent}")
    print(f"  Evaluate:     python evaluate.py {run_dir}")
    print(f"  Checkpoints:  {run_dir / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
