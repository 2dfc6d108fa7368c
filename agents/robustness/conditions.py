"""Evaluation conditions for ``evaluate.py``: each one a named set of episodes and its report section.

``evaluate.py`` is conditions x episodes x report: it loads a run, asks every condition in
the catalog (:func:`agents.robustness.catalog.conditions`) whether the command line asked for it, checks them
all before any episode runs
(so a bad option fails in one line, at once), then runs each and writes one JSON report (plus PNGs)
under ``RUN_DIR/eval/``. A condition is a small class:

* ``add_arguments(parser)`` - its command-line options;
* ``from_args(args) -> condition or None`` - None when not asked for;
* ``check(context)`` - raise ``EnvError`` / ``ConfigError`` when it cannot apply to this run;
* ``run(context) -> dict`` - the JSON section (episode summaries in the suite's one schema,
  :func:`agents.engine.evaluation.summarize`), printing its own table;
* ``key`` - the section's name in the JSON report.

:class:`agents.robustness.context.Context` gives a condition what it needs: the loaded run, the evaluation settings and
``score(wrappers)``, which plays the configured episodes on fresh envs with extra env wrappers (the
same episode seeds under every condition, so differences come from the condition alone). New
conditions plug in by adding a class here (generic ones) or to a family's ``Family.conditions``.
"""

from __future__ import annotations

import argparse

from agents.robustness.context import Context, cells, refuse_multi_agent, table


class NoiseSweep:
    """Gaussian noise at each of several stds: observation noise (observation units) or action noise
    (the canonical [-1, 1] action scale)."""

    def __init__(self, key: str, wrapper: str, sigmas: list[float]):
        self.key, self.wrapper, self.sigmas = key, wrapper, sigmas

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--obs-noise", type=float, nargs="+", metavar="SIGMA", help="observation noise stds")
        parser.add_argument("--action-noise", type=float, nargs="+", metavar="SIGMA", help="action noise stds")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[NoiseSweep]:
        out = []
        if args.obs_noise:
            out.append(cls("observation_noise", "observation_noise", args.obs_noise))
        if args.action_noise:
            out.append(cls("action_noise", "action_noise", args.action_noise))
        return out

    def check(self, context: Context) -> None:
        from agents.engine.config import ConfigError
        from agents.robustness.multi_agent import continuous_multi_agent

        # Multi-agent runs with continuous actions take observation noise through the torch-level wrapper.
        if not (self.key == "observation_noise" and continuous_multi_agent(context)):
            refuse_multi_agent(context, self.key.replace("_", " "))
        if any(sigma < 0 for sigma in self.sigmas):
            raise ConfigError(f"--{self.key.split('_')[0].replace('observation', 'obs')}-noise: stds must be >= 0")

    def run(self, context: Context) -> list[dict]:
        # A multi-agent env is a torch VecEnv, not a gymnasium env: noise per agent from envs.perturb_torch.
        name = "observation_noise_torch" if context.multi_agent else self.wrapper
        results = []
        for sigma in self.sigmas:
            wrapper = {"name": name, "sigma": sigma, "seed": context.seed}
            results.append({"sigma": sigma, **context.score([wrapper])})
        title = self.key.replace("_", " ")
        print()
        print(table(f"{title}:", ["sigma", "mean", "std", "min"], [[r["sigma"], *cells(r)] for r in results]))
        if context.multi_agent:
            from agents.robustness.multi_agent import sweep_png

            sweep_png(context, self.key, "observation noise sigma", [(r["sigma"], r) for r in results])
        return results


class MassFriction:
    """A grid of body-mass x sliding-friction scales (MuJoCo envs), one fresh env per cell; a heatmap PNG."""

    key = "mass_friction"

    def __init__(self, masses: list[float], frictions: list[float]):
        self.masses, self.frictions = masses, frictions

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--mass", type=float, nargs="+", metavar="SCALE", help="body-mass scales (MuJoCo)")
        parser.add_argument("--friction", type=float, nargs="+", metavar="SCALE", help="friction scales (MuJoCo)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[MassFriction]:
        if not (args.mass or args.friction):
            return []
        return [cls(args.mass or [1.0], args.friction or [1.0])]

    def check(self, context: Context) -> None:
        from agents.engine.config import ConfigError
        from envs import EnvError, make_env
        from envs.perturb import mujoco_model

        refuse_multi_agent(context, "--mass/--friction")
        config = context.run.config
        if mujoco_model(make_env(config.env.id, config.env.options)) is None:
            raise EnvError(f"--mass/--friction need a MuJoCo env; {config.env.id} is not one")
        if any(m <= 0 for m in self.masses) or any(f < 0 for f in self.frictions):
            raise ConfigError("--mass scales must be > 0 and --friction scales >= 0")

    def run(self, context: Context) -> dict:
        from agents.robustness.plots import heatmap

        grid = [
            [context.score([{"name": "model_scaling", "mass_scale": m, "friction_scale": f}]) for f in self.frictions]
            for m in self.masses
        ]
        print()
        print(
            table(
                "mean return by mass scale (rows) and friction scale (columns):",
                ["mass \\ friction", *self.frictions],
                [[m, *(f"{cell['mean_reward']:.1f}" for cell in row)] for m, row in zip(self.masses, grid)],
            )
        )
        config = context.run.config
        png = heatmap(
            [[cell["mean_reward"] for cell in row] for row in grid],
            self.masses,
            self.frictions,
            context.out_dir / "mass_friction.png",
            title=f"{config.algo} on {config.env.id}: mean return",
        )
        print(f"heatmap: {png}")
        return {"mass_scales": self.masses, "friction_scales": self.frictions, "grid": grid, "png": str(png)}


class Video:
    """One episode recorded to ``RUN_DIR/eval/episode.mp4`` (headless MuJoCo rendering)."""

    key = "video"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--video", action="store_true", help="record one episode to RUN_DIR/eval/episode.mp4")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[Video]:
        return [cls()] if args.video else []

    def check(self, context: Context) -> None:
        refuse_multi_agent(context, "--video")

    def run(self, context: Context) -> dict:
        import torch

        from envs import make_env
        from envs.base import BoxSpec
        from envs.video import record_episode

        run, config = context.run, context.run.config

        def policy(obs):
            with torch.no_grad():
                obs_t = torch.as_tensor(obs, dtype=torch.float32, device=run.device).unsqueeze(0)
                return run.agent.act(obs_t, None, step=run.step, explore=context.explore)[0][0].cpu().numpy()

        video = record_episode(
            lambda: make_env(config.env.id, config.env.options, render_mode="rgb_array"),
            policy,
            context.out_dir / "episode.mp4",
            seed=context.seed,
            canonical_actions=isinstance(run.action_spec, BoxSpec),  # Box actions are canonical [-1, 1]
        )
        print(f"video: {video['path']} ({video['frames']} frames, return {video['return']:.1f})")
        return {"path": str(video["path"]), "frames": video["frames"], "return": video["return"]}
