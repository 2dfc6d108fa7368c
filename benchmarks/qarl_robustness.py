#!/usr/bin/env python
"""QARL tiers 1 to 3: SAC vs RARL vs QARL under a fresh worst-case adversary and model changes.

Paper: Reddi, Tölle, Peters, Chalvatzaki, D'Eramo, "Robust Adversarial Reinforcement Learning via
Bounded Rationality Curricula", ICLR 2024 (arXiv:2311.01642); RARL: Pinto et al., ICML 2017
(arXiv:1703.02702). The methods are the suite's presets ``qarl/<task>``, ``rarl/<task>`` and
``sac-adv0/<task>`` (agents/qarl/), for ``--task inverted-pendulum`` (tier 1, InvertedPendulum-v5,
the default) or ``--task hopper`` (tier 2, Hopper-v5).

Tier 3 (``--task tier3-inverted-pendulum``, ``--task tier3-inverted-double-pendulum``) runs the
suite-SAC presets ``qarl/<task>``, ``rarl/<task>``, ``sac-adv0/<task>`` (one gradient step per env
step; tiers 1 and 2 run the ``*-authors`` presets), calibrates the force to a cut of 30-70 % (tiers 1
and 2: 30-60 %), and trains every fresh adversary (calibrating and evaluating) until the attacked
return flattens (:func:`agents.qarl.conditions.returns_flat`, 5 %), at most ``--adversary-steps``
(40k; give ``--calibration-steps 40000`` too).

The plan, as one resumable job graph run by at most ``--workers`` processes:

1. Force limit. Tier 1 calibrates it (``--calibrate`` asks for the same on Hopper): train SAC (seed 0),
   then, against that frozen protagonist, train a fresh SAC adversary for ``--calibration-steps`` env
   steps at each F in ``--forces`` (newtons per force component on the task's bodies) and score it on
   10 deterministic episodes. Going up from the smallest F, the first whose adversary cuts the nominal
   return by at least 30 % is chosen (the plan asks for a cut of 30-60 %; the JSON records whether it
   overshot), else the F that cut the most (the largest F when none cut anything); larger forces are
   not calibrated. Tier 2 takes the presets' force limit as it stands
   (``envs.adversarial.FORCE_PLACEMENTS``: 5 N per component on Hopper's foot, RARL's value, not
   calibrated on Hopper); ``--force`` gives one explicitly.
2. Training. The three presets for every seed, QARL and RARL with ``agent.force_limit=F``; the SAC
   baseline trains against zero force, so its runs do not depend on F (the calibration protagonist
   is its seed-0 run). The presets' budgets: the same protagonist samples for all three (tier 1 30k,
   tier 2 150k protagonist env steps; QARL and RARL spend as many again on adversary phases).
3. Evaluation of each run's final protagonist (alpha = 0 for QARL): nominal return (``--episodes``,
   deterministic and stochastic); a fresh SAC adversary trained for ``--adversary-steps`` (tier 1 10k,
   tier 2 50k) against the frozen deterministic protagonist at F (seed 1000 + run seed) and scored
   against both protagonists; uniform random forces at F; and an n x n model-change grid, 1
   deterministic episode per cell, a fresh env per cell: pole mass x cart mass (tier 1) or torso mass
   x friction (tier 2).
4. ``summarize``: per-method means with 95 % t-intervals over seeds, paired differences, the plan's
   directional criteria (the fraction of nominal return kept against the fresh adversary, QARL / SAC
   per seed; grid mean and nominal QARL / SAC; QARL vs RARL), figures in
   ``docs/figures/qarl_tier1_*.png`` (tier 1) or ``docs/figures/qarl_<task>_*.png`` (or
   ``--figure-prefix``), and Markdown tables on stdout.

Every training run is an ordinary run directory under ``<root>/<tag>/``; a killed run resumes from its
newest checkpoint. Each finished job is added to the results JSON (``benchmarks/results/qarl_<tag>.json``
by default; the tag defaults to ``tier1`` / ``tier2``) at once, so rerunning the same command skips
finished work; a job still running when its scheduler died is waited for, and its output collected, by
the next scheduler. ``summarize`` writes ``<results>_summary.json`` next to it.

  python benchmarks/qarl_robustness.py run --tag tier1 --seeds 0 1 2 3 4
  python benchmarks/qarl_robustness.py summarize --tag tier1
  python benchmarks/qarl_robustness.py run --task hopper --tag tier2 --seeds 0 1 2 3 4 --workers 1
  python benchmarks/qarl_robustness.py summarize --task hopper --tag tier2

Deviations from the reference: gymnasium's v5 MuJoCo tasks (not the authors' dm_control ports); 2 x 128
networks (the presets'). Tier 1: the fresh adversary gets 10k env steps by default rather than the
plan's 20k, to fit the wall-clock budget of a shared 2-core machine; the mass grid scales mass *and*
rotational inertia of the pole (the same shape made of a denser material) and the cart's mass, each by
``default x logspace(0.25, 4, n)``. Tier 2: the force limit is not calibrated unless asked; the grid's
torso mass is set to ``linspace(1, 9, n)`` kg (inertia unchanged, as the authors' mass setter does) and
its friction axis ``linspace(0.1, 1.9, n)`` is a factor on every geom's own sliding friction rather
than one absolute value for all geoms: Hopper's geoms differ (floor 1, foot 2, the rest 0.9) and MuJoCo
takes the larger of a contact's two, so absolute values would put the nominal foot-floor friction (2)
outside the grid, while factors keep nominal at the grid's centre (1.0).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere without installing

from agents.experiments.aggregate import t_interval  # noqa: E402

METHODS = ("sac", "rarl", "qarl")
CUT_BAND = (0.30, 0.60)  # the fraction of nominal return the calibrating adversary should remove
EVAL_SEED = 12_345  # episode seeds of every evaluation (evaluate.py's default)
CALIBRATION_SEED = 2_026  # the calibrating adversaries' seed


@dataclass(frozen=True)
class Task:
    """One benchmark task: its env, the three presets, and what differs between the tiers."""

    env_id: str
    presets: dict[str, str]  # method -> preset name
    tag: str  # default tag: names the run folder and the results JSON
    figures: str  # figure file prefix: docs/figures/<figures>_*.png
    calibrate: bool  # calibrate the force limit by default (else the presets' value)
    adversary_steps: int  # default env steps of each fresh evaluation adversary
    grid_keys: tuple[str, str]  # result keys of the grid's row and column values
    grid_labels: tuple[str, str]  # their axis labels (rows, columns)
    grid: str = ""  # which model grid (grid()): the task's own name unless set
    band: tuple[float, float] = CUT_BAND  # the cut the calibrating adversary should make
    until_flat: float | None = None  # fresh adversaries stop once the attacked return flattens (tolerance)
    adversary_learner: str = "fresh"  # fresh adversaries' SAC settings: "fresh" (FRESH_ADVERSARY) or "run"
    # (the run's own adversary learner: agents.qarl.conditions.run_adversary_learner)
    flat_from: float = 0.25  # ... checked from this fraction of their budget on (a return still at its nominal
    # value early on is not an adversary that has finished learning)


def _presets(task: str, suffix: str = "") -> dict[str, str]:
    """method -> preset; ``suffix`` '-authors' names the authors' learner settings (tiers 1 and 2)."""
    return {"qarl": f"qarl{suffix}/{task}", "rarl": f"rarl{suffix}/{task}", "sac": f"sac-adv0{suffix}/{task}"}


TASKS = {
    "inverted-pendulum": Task(
        "InvertedPendulum-v5",
        _presets("inverted-pendulum", "-authors"),
        tag="tier1",
        figures="qarl_tier1",  # tier 1's figure names, kept as they were
        calibrate=True,
        adversary_steps=10_000,
        grid_keys=("pole_scales", "cart_scales"),
        grid_labels=("pole mass (and inertia) scale", "cart mass scale"),
    ),
    "hopper": Task(
        "Hopper-v5",
        _presets("hopper", "-authors"),
        tag="tier2",
        figures="qarl_hopper",
        calibrate=False,
        adversary_steps=50_000,  # the plan's budget on Hopper
        grid_keys=("torso_mass", "friction_scales"),
        grid_labels=("torso mass (kg)", "friction scale (every geom's sliding friction)"),
    ),
    # Tier 3: the suite-SAC presets (one update per env step), calibrated to a 30-70 % cut; fresh adversaries
    # train until the attacked return flattens (within 5 % over 10 % of their budget), at most 40k steps.
    "tier3-inverted-pendulum": Task(
        "InvertedPendulum-v5",
        _presets("inverted-pendulum"),
        tag="tier3",
        figures="qarl_tier3",
        calibrate=True,
        adversary_steps=40_000,
        grid_keys=("pole_scales", "cart_scales"),
        grid_labels=("pole mass (and inertia) scale", "cart mass scale"),
        grid="inverted-pendulum",
        band=(0.30, 0.70),
        until_flat=0.05,
        flat_from=0.5,
        adversary_learner="run",
    ),
    "tier3-inverted-double-pendulum": Task(
        "InvertedDoublePendulum-v5",
        _presets("inverted-double-pendulum"),
        tag="tier3-idp",
        figures="qarl_tier3_idp",
        calibrate=True,
        adversary_steps=40_000,
        grid_keys=("pole_scales", "cart_scales"),
        grid_labels=("both poles' mass (and inertia) scale", "cart mass scale"),
        band=(0.30, 0.70),
        until_flat=0.05,
    ),
}


# ---- force limit ---------------------------------------------------------------------------------


def choose_force(calibration: dict[float, float | None], band: tuple[float, float] = CUT_BAND):
    """The force limit from ``{F: fraction of nominal return removed, None while unmeasured}``.

    Returns ``(F, rule)``, or ``(None, "")`` while undecided. Going up from the smallest F, the first
    whose cut reaches the band's low end is chosen (noted when it overshoots the band); a larger F is
    never needed once a smaller one qualifies, so the calibration can stop there. With no F cutting
    enough, the F whose adversary cut the most (the nearest to the band), or the largest F tried when
    none cut anything. Not simply the largest: a stronger push can *raise* the undiscounted return (the
    adversary minimizes the discounted one; on Hopper it may hold a falling protagonist up longer).
    """
    for force in sorted(calibration):
        cut = calibration[force]
        if cut is None:
            return None, ""
        if band[0] <= cut <= band[1]:
            return force, f"smallest F with a cut in [{band[0]:.0%}, {band[1]:.0%}]"
        if cut > band[1]:
            return force, f"smallest F with a cut >= {band[0]:.0%} (above the band; no smaller F reached it)"
    best = max(sorted(calibration), key=lambda f: calibration[f])  # the smallest F among equal cuts
    if calibration[best] > 0:
        return best, f"no F cut >= {band[0]:.0%}; the F with the largest cut ({calibration[best]:.0%})"
    return max(calibration), f"no F cut >= {band[0]:.0%}; the largest F tried"


# ---- the model perturbation of the grid ------------------------------------------------------------


def body_scaling(scales: dict[str, float], inertia: bool = True):
    """A gym-level wrapper factory: body ``name``'s mass (and rotational inertia) times ``scales[name]``.

    ``envs.perturb.ModelScaling`` scales a set of bodies by one factor and rewrites every mass from its
    own nominal copy on reset, so two of them stacked do not compose (the inner one's write wins);
    this wrapper sets each body's factor in one write, from the nominal values at wrap time.
    """
    import gymnasium as gym
    import mujoco

    from envs.perturb import mujoco_model

    class BodyScaling(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.model = mujoco_model(env)
            self.nominal = (self.model.body_mass.copy(), self.model.body_inertia.copy())
            ids = {name: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name) for name in scales}
            missing = [name for name, i in ids.items() if i < 0]
            if missing:
                raise ValueError(f"no bodies {missing} in {env.unwrapped}")
            self.ids = ids
            self._write()

        def _write(self):
            mass, inertia_values = self.nominal[0].copy(), self.nominal[1].copy()
            for name, i in self.ids.items():
                mass[i] *= scales[name]
                if inertia:
                    inertia_values[i] *= scales[name]
            self.model.body_mass[:] = mass
            self.model.body_inertia[:] = inertia_values
            mujoco.mj_setConst(self.model, mujoco.MjData(self.model))  # derived constants, on scratch data

        def reset(self, **kwargs):
            self._write()
            return super().reset(**kwargs)

        def close(self):
            self.model.body_mass[:], self.model.body_inertia[:] = self.nominal
            super().close()

    return BodyScaling


def grid_scales(n: int) -> list[float]:
    """``logspace(log10 0.25, log10 4, n)``: factors on the default mass, symmetric in log around 1."""
    return [float(s) for s in np.logspace(math.log10(0.25), math.log10(4.0), n)]


def body_mass(env_id: str, body: str) -> float:
    """The default mass (kg) of ``body`` in ``env_id``, read from a freshly built env."""
    import mujoco

    from envs import make_env
    from envs.perturb import mujoco_model

    env = make_env(env_id)
    try:
        model = mujoco_model(env)
        return float(model.body_mass[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)])
    finally:
        env.close()


def grid(task: str, n: int) -> tuple[list[float], list[float], object]:
    """``(rows [n], columns [n], wrappers(row, column) -> list of env wrappers)`` of a task's model grid.

    inverted-pendulum: pole x cart mass factors, ``grid_scales(n)`` each (:func:`body_scaling`, inertia
    scaled too). hopper: torso mass ``linspace(1, 9, n)`` kg (the suite's ``model_scaling`` wrapper on
    the torso with factor ``kg / default``, inertia unchanged) x ``linspace(0.1, 1.9, n)``, a factor on
    every geom's sliding friction, both set by one ``model_scaling`` write.
    """
    task = TASKS[task].grid or task if task in TASKS else task
    if task == "inverted-pendulum":
        scales = grid_scales(n)
        return scales, scales, lambda pole, cart: [body_scaling({"pole": pole, "cart": cart})]
    if task == "tier3-inverted-double-pendulum":  # both poles scaled alike x the cart
        scales = grid_scales(n)
        return scales, scales, lambda pole, cart: [body_scaling({"pole": pole, "pole2": pole, "cart": cart})]
    if task == "hopper":
        masses = [round(float(m), 9) for m in np.linspace(1.0, 9.0, n)]  # 1.0, not 0.9999999999999999
        frictions = [round(float(f), 9) for f in np.linspace(0.1, 1.9, n)]
        nominal = body_mass(TASKS[task].env_id, "torso")

        def wrappers(mass: float, friction: float) -> list[dict]:
            scaling = {"mass_scale": mass / nominal, "friction_scale": friction, "bodies": ["torso"]}
            return [{"name": "model_scaling", **scaling}]

        return masses, frictions, wrappers
    raise ValueError(f"no model grid for task {task!r}; known: {', '.join(TASKS)}")


# ---- jobs (each runs in its own process) -----------------------------------------------------------


def _threads() -> None:
    import torch

    torch.set_num_threads(1)


def job_train(spec: dict) -> dict:
    """Train (or resume, or find finished) one run directory; returns its path and final step."""
    import agents
    from agents.engine.checkpoint import Checkpointer

    _threads()
    run_dir = Path(spec["run_dir"])
    start = time.time()
    if Checkpointer(run_dir).latest() is not None:
        agents.train(run_dir=run_dir, overrides=["train.progress=false"], resume=True)
    else:
        if run_dir.exists():  # started but killed before its first checkpoint: nothing to keep
            shutil.rmtree(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        agents.train(spec["preset"], spec["overrides"], run_dir=run_dir)
    latest = Checkpointer(run_dir).latest()
    return {"run_dir": str(run_dir), "checkpoint": str(latest), "seconds": time.time() - start}


def _nominal(run, episodes: int, explore: bool, wrappers=()) -> dict:
    """``evaluate.py``'s nominal score (:meth:`agents.robustness.context.Context.score`: the suite's summary,
    with the discounted return at the protagonist's gamma) on the benchmark's episode seed."""
    from agents.robustness.context import Context

    context = Context(run, episodes, EVAL_SEED, explore, num_envs=10, out_dir=Path(run.checkpoint).parent)
    return context.score(wrappers)


def job_calibrate(spec: dict) -> dict:
    """A fresh adversary at force ``F`` against the frozen calibration protagonist; the return it removes."""
    from agents import load_run
    from agents.engine.evaluation import evaluation_discount
    from agents.qarl import score_against, train_fresh_adversary

    _threads()
    run = load_run(Path(spec["run_dir"]))
    start = time.time()
    force = float(spec["force"])
    episodes = spec["episodes"]
    gamma = evaluation_discount(run.family, run.agent)  # discounted returns too: what the adversary minimizes
    nominal = _nominal(run, episodes, explore=False)
    curve: list = []
    adversary = train_fresh_adversary(
        run,
        steps=spec["adversary_steps"],
        seed=CALIBRATION_SEED,
        force_limit=force,
        progress=False,
        until_flat=spec.get("until_flat"),
        min_steps=spec.get("min_steps"),
        curve=curve,
        learner=fresh_learner(spec, run),
    )
    attacked = score_against(
        run, adversary, episodes=episodes, seed=EVAL_SEED, explore=False, force_limit=force, gamma=gamma
    )
    cut = 1.0 - attacked["mean_reward"] / nominal["mean_reward"]
    trained = curve[-1][0] if curve else spec["adversary_steps"]
    return {"force": force, "nominal": nominal, "attacked": attacked, "cut": cut, "adversary_trained_steps": trained,
            "adversary_curve": curve, "seconds": time.time() - start}  # fmt: skip


def job_evaluate(spec: dict) -> dict:
    """Nominal, fresh-adversary, random-force and model-grid scores of one run's final protagonist.

    Each finished stage (and grid row) is kept in ``spec["partial"]`` (when given), so a killed
    evaluation restarts after its last finished stage instead of from the beginning.
    """
    from agents import load_run
    from agents.engine.evaluation import evaluation_discount
    from agents.qarl import score_against, train_fresh_adversary

    _threads()
    run = load_run(Path(spec["run_dir"]))
    start = time.time()
    force, episodes = float(spec["force"]), spec["episodes"]
    task = spec.get("task", "inverted-pendulum")  # tier 1's evaluations were planned before tasks existed
    partial = Path(spec["partial"]) if spec.get("partial") else None
    # what the kept stages were computed for: another checkpoint or setting keeps nothing
    made_for = {k: v for k, v in spec.items() if k != "partial"} | {"checkpoint_step": run.step}
    kept = json.loads(partial.read_text()) if partial is not None and partial.exists() else {}
    out: dict = kept["out"] if kept.get("made_for") == made_for else {"checkpoint_step": run.step, "force": force}

    def stage(name: str, compute) -> None:
        if name not in out:
            out[name] = compute()
            if partial is not None:
                partial.write_text(json.dumps({"made_for": made_for, "out": out}) + "\n")

    # the discounted return too (the protagonist's gamma): the quantity both players optimize
    gamma = evaluation_discount(run.family, run.agent)
    common = dict(episodes=episodes, seed=EVAL_SEED, force_limit=force, gamma=gamma)

    def both(score) -> dict:  # the deterministic and the stochastic protagonist
        return {"deterministic": score(False), "stochastic": score(True)}

    stage("nominal", lambda: both(lambda explore: _nominal(run, episodes, explore)))
    stage("random_force", lambda: both(lambda explore: score_against(run, "random", explore=explore, **common)))

    def fresh() -> dict:
        curve: list = []
        adversary = train_fresh_adversary(
            run,
            steps=spec["adversary_steps"],
            seed=spec["adversary_seed"],
            force_limit=force,
            progress=False,
            until_flat=spec.get("until_flat"),
            min_steps=spec.get("min_steps"),
            curve=curve,
            learner=fresh_learner(spec, run),
        )
        scores = both(lambda explore: score_against(run, adversary, explore=explore, **common))
        trained = curve[-1][0] if curve else spec["adversary_steps"]
        return {"steps": spec["adversary_steps"], "trained_steps": trained, "curve": curve,
                "seed": spec["adversary_seed"], **scores}  # fmt: skip

    stage("fresh_adversary", fresh)
    rows, columns, wrappers = grid(task, spec["grid"])
    for i, row in enumerate(rows):  # one deterministic episode per cell, a fresh env per cell
        cells = [wrappers(row, column) for column in columns]
        stage(f"grid_row_{i}", lambda cells=cells: [_nominal(run, 1, False, w)["mean_reward"] for w in cells])
    returns = [out.pop(f"grid_row_{i}") for i in range(len(rows))]
    row_key, column_key = TASKS[task].grid_keys
    out["grid"] = {row_key: rows, column_key: columns, "returns": returns, "mean": float(np.mean(returns))}
    out["seconds"] = time.time() - start
    return out


JOBS = {"train": job_train, "calibrate": job_calibrate, "evaluate": job_evaluate}


# ---- the scheduler ---------------------------------------------------------------------------------


class Results:
    """``benchmarks/results/qarl_<tag>.json``: finished jobs by key, rewritten atomically after each one."""

    def __init__(self, path: Path, meta: dict):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"meta": dict(meta), "jobs": {}}
        # the newest plan's settings; the first start time stays
        self.data["meta"].update({k: v for k, v in meta.items() if k != "started" or k not in self.data["meta"]})

    def __contains__(self, key: str) -> bool:
        return key in self.data["jobs"]

    def __getitem__(self, key: str) -> dict:
        return self.data["jobs"][key]

    def add(self, key: str, value: dict) -> None:
        self.data["jobs"][key] = value
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        os.replace(tmp, self.path)


def plan(args, results: Results) -> list[dict]:
    """Every job in priority order, with ``key``, ``kind``, ``needs`` (keys) and a ``spec`` maker."""
    root = Path(args.root) / args.tag
    force = results.data["meta"].get("force_limit")
    base = ["train.threads=1", "train.progress=false"] + list(args.override)

    def train(method: str, seed: int) -> dict:
        name = f"{method}_s{seed}" if method == "sac" else f"{method}_F{force:g}_s{seed}"
        overrides = [*base, f"seed={seed}"]
        if args.steps:
            overrides.append(f"train.total_steps={args.steps // 2 if method == 'sac' else args.steps}")
        if method != "sac":
            overrides.append(f"agent.force_limit={force}")
        spec = {"preset": TASKS[args.task].presets[method], "overrides": overrides, "run_dir": str(root / name)}
        return {"key": f"train/{method}/s{seed}", "kind": "train", "needs": [], "spec": spec}

    def evaluate(method: str, seed: int) -> dict:
        spec = {
            "run_dir": results[f"train/{method}/s{seed}"]["run_dir"] if f"train/{method}/s{seed}" in results else None,
            "force": force,
            "episodes": args.episodes,
            "adversary_steps": args.adversary_steps,
            "adversary_seed": 1_000 + seed,
            "grid": args.grid,
            "task": args.task,
        }
        spec.update(fresh_adversary_spec(args.task, args.adversary_steps))
        return {"key": f"eval/{method}/s{seed}", "kind": "evaluate", "needs": [f"train/{method}/s{seed}"], "spec": spec}

    jobs = [train("sac", args.seeds[0])]
    calibration_run = str(root / f"sac_s{args.seeds[0]}")
    for f in args.forces if calibrating(args) else ():
        if force is not None and f > force:  # a smaller force already qualified
            continue
        spec = {"run_dir": calibration_run, "force": f, "adversary_steps": args.calibration_steps, "episodes": 10}
        spec.update(fresh_adversary_spec(args.task, args.calibration_steps))
        jobs.append({"key": f"calibrate/F{f:g}", "kind": "calibrate", "needs": [f"train/sac/s{args.seeds[0]}"],
                     "spec": spec})  # fmt: skip
    if force is None:  # the rest waits for the force limit
        return jobs + [train("sac", s) for s in args.seeds[1:]]
    for seed in args.seeds:
        jobs += [train("qarl", seed), train("rarl", seed), train("sac", seed)]
        jobs += [evaluate(m, seed) for m in METHODS]
    seen, unique = set(), []
    for job in jobs:
        if job["key"] not in seen:
            seen.add(job["key"])
            unique.append(job)
    return unique


def fresh_adversary_spec(task: str, steps: int) -> dict:
    """How a ``steps``-step fresh adversary of ``task`` trains: its learner (unless the default) and early
    stop (none, or its tolerance and first step)."""
    spec = TASKS[task]
    out = {"adversary_learner": spec.adversary_learner} if spec.adversary_learner != "fresh" else {}
    if spec.until_flat is None:
        return out
    return {**out, "until_flat": spec.until_flat, "min_steps": int(steps * spec.flat_from)}


def fresh_learner(spec: dict, run):
    """The fresh adversary's SAC settings a job asks for (None: the default FRESH_ADVERSARY)."""
    from agents.qarl.conditions import run_adversary_learner

    return run_adversary_learner(run.config) if spec.get("adversary_learner") == "run" else None


def calibrating(args) -> bool:
    """Whether the force limit comes from a calibration (tier 1, or ``--calibrate``)."""
    return bool(args.calibrate or TASKS[args.task].calibrate)


def preset_force(task: str) -> tuple[float, str]:
    """The QARL preset's force limit of ``task`` (its own, else its env's placement default) and its source."""
    from agents.qarl import PRESETS
    from envs.adversarial import FORCE_PLACEMENTS

    config = PRESETS[TASKS[task].presets["qarl"]]
    placement = FORCE_PLACEMENTS[config.env.id]
    if config.agent.force_limit is not None:
        return float(config.agent.force_limit), f"the preset {TASKS[task].presets['qarl']}'s agent.force_limit"
    bodies = ", ".join(placement.bodies)
    return placement.force_limit, (
        f"the presets' default: envs.adversarial.FORCE_PLACEMENTS[{config.env.id!r}] ({placement.force_limit:g} N "
        f"per component on {bodies}), not calibrated here"
    )


def maybe_choose_force(args, results: Results) -> None:
    """Fix the force limit once the calibration decides it (or take ``--force`` or the presets' value)."""
    meta = results.data["meta"]
    if meta.get("force_limit") is not None:
        return
    if args.force is not None:
        meta.update(force_limit=args.force, force_rule="given on the command line")
        results.save()
        return
    if not calibrating(args):
        force, rule = preset_force(args.task)
        meta.update(force_limit=force, force_rule=rule)
        results.save()
        print(f"[{time.strftime('%H:%M:%S')}] force limit {force:g} N ({rule})", flush=True)
        return
    keys = {f: f"calibrate/F{f:g}" for f in args.forces}
    cuts = {f: results[k]["cut"] if k in results else None for f, k in keys.items()}
    force, rule = choose_force(cuts, TASKS[args.task].band)
    if force is not None:
        meta.update(force_limit=force, force_rule=rule)
        results.save()
        print(f"[{time.strftime('%H:%M:%S')}] force limit {force:g} N ({rule}); cuts {cuts}", flush=True)


def _alive(pid_file: Path, command: str = "job") -> bool:
    """Whether the process named in ``pid_file`` still runs this script's ``command`` ('job': one started
    by a scheduler that has died; 'run': another scheduler)."""
    try:
        pid = int(pid_file.read_text())
        args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except (OSError, ValueError):
        return False
    script = next((i for i, a in enumerate(args) if a.endswith("qarl_robustness.py")), None)
    return pid != os.getpid() and script is not None and args[script + 1 : script + 2] == [command]


def run_all(args) -> None:
    meta = {
        "env": TASKS[args.task].env_id,
        "task": args.task,
        "seeds": args.seeds,
        "forces": args.forces,
        "adversary_steps": args.adversary_steps,
        "calibration_steps": args.calibration_steps,
        "grid": args.grid,
        "episodes": args.episodes,
        "steps": args.steps,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    if Path(args.results).exists():  # resuming: the file must hold this task's jobs
        held = json.loads(Path(args.results).read_text())["meta"].get("env")
        if held != meta["env"]:
            raise SystemExit(f"{args.results} holds {held} results, not {meta['env']}: choose another --tag/--results")
    stem = Path(args.results).stem  # each results file has its own job folder: outputs are collected from it
    logs = Path(args.root) / args.tag / ("jobs" if stem == f"qarl_{args.tag}" else f"jobs_{stem}")
    logs.mkdir(parents=True, exist_ok=True)
    lock = logs / "scheduler.pid"
    if _alive(lock, "run"):  # a second scheduler would run jobs twice; checked before the results are touched
        raise SystemExit(f"a scheduler (pid {lock.read_text().strip()}) already runs this plan; let it finish")
    lock.write_text(f"{os.getpid()}\n")
    results = Results(Path(args.results), meta)
    results.data["meta"].setdefault("restarts", []).append({**meta, "argv": sys.argv[1:]})  # each start's plan
    results.save()
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    failures: dict[str, int] = {}
    while True:
        maybe_choose_force(args, results)
        jobs = plan(args, results)
        collected = False
        for job in jobs:  # a job that finished after an earlier scheduler died left its output behind
            out = logs / f"{job['key'].replace('/', '_')}.json"
            if job["key"] not in results and job["key"] not in running and out.exists():
                results.add(job["key"], json.loads(out.read_text()))
                print(f"[{time.strftime('%H:%M:%S')}] collected {job['key']}", flush=True)
                collected = True
        if collected:  # the plan may have changed (a force limit, evaluations now ready)
            continue
        pending = [j for j in jobs if j["key"] not in results and j["key"] not in running]
        elsewhere = [j["key"] for j in pending if _alive(logs / f"{j['key'].replace('/', '_')}.pid")]
        pending = [j for j in pending if j["key"] not in elsewhere]  # still run by an earlier scheduler
        ready = [j for j in pending if all(n in results for n in j["needs"]) and failures.get(j["key"], 0) < 2]
        while ready and len(running) + len(elsewhere) < args.workers:
            job = ready.pop(0)
            name = job["key"].replace("/", "_")
            if job["kind"] == "evaluate":
                job["spec"]["run_dir"] = results[job["needs"][0]]["run_dir"]
                job["spec"]["partial"] = str(logs / f"{name}.partial.json")  # its finished stages
            out = logs / f"{name}.json"
            out.unlink(missing_ok=True)
            script = str(Path(__file__).resolve())
            command = [sys.executable, script, "job", job["kind"], json.dumps(job["spec"]), str(out)]
            with open(logs / f"{name}.log", "a") as log:  # the child keeps its own copy of the handle
                running[job["key"]] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), out)
            (logs / f"{name}.pid").write_text(f"{running[job['key']][0].pid}\n")
            print(f"[{time.strftime('%H:%M:%S')}] start {job['key']}", flush=True)
        if not running and not elsewhere:
            left = [j["key"] for j in pending]
            print(f"[{time.strftime('%H:%M:%S')}] done; not finished: {left or 'nothing'}", flush=True)
            return
        time.sleep(5)
        for key, (process, out) in list(running.items()):
            if process.poll() is None:
                continue
            del running[key]
            if process.returncode == 0 and out.exists():
                results.add(key, json.loads(out.read_text()))
                print(f"[{time.strftime('%H:%M:%S')}] finished {key}", flush=True)
            else:
                failures[key] = failures.get(key, 0) + 1
                print(f"[{time.strftime('%H:%M:%S')}] FAILED {key} (rc {process.returncode}), see its log", flush=True)


def run_job(kind: str, spec_json: str, out: str) -> None:
    result = JOBS[kind](json.loads(spec_json))
    Path(out).write_text(json.dumps(result) + "\n")


# ---- summary ---------------------------------------------------------------------------------------


def metrics_rows(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def per_seed(results: Results, method: str, seeds: list[int], value) -> dict[int, float]:
    """``{seed: value(eval result)}`` for the seeds whose evaluation has finished and holds the value
    (evaluations made before discounted returns were recorded lack those)."""
    out = {}
    for seed in seeds:
        key = f"eval/{method}/s{seed}"
        if key in results:
            try:
                out[seed] = float(value(results[key]))
            except KeyError:
                continue
    return out


QUANTITIES = {
    "nominal (det.)": lambda r: r["nominal"]["deterministic"]["mean_reward"],
    "nominal (stoch.)": lambda r: r["nominal"]["stochastic"]["mean_reward"],
    "fresh adversary (det.)": lambda r: r["fresh_adversary"]["deterministic"]["mean_reward"],
    "fresh adversary (stoch.)": lambda r: r["fresh_adversary"]["stochastic"]["mean_reward"],
    "retained (det.)": lambda r: (
        r["fresh_adversary"]["deterministic"]["mean_reward"] / r["nominal"]["deterministic"]["mean_reward"]
    ),
    "retained, discounted (det.)": lambda r: (
        r["fresh_adversary"]["deterministic"]["mean_discounted_reward"]
        / r["nominal"]["deterministic"]["mean_discounted_reward"]
    ),
    "random force (det.)": lambda r: r["random_force"]["deterministic"]["mean_reward"],
    "random force (stoch.)": lambda r: r["random_force"]["stochastic"]["mean_reward"],
    "grid mean (det.)": lambda r: r["grid"]["mean"],
}


def paired(x: dict[int, float], y: dict[int, float], how: str) -> dict:
    """Seed-paired comparison of ``x`` and ``y`` (``{seed: value}``), over the seeds both have.

    ``how`` 'difference': d_s = x_s - y_s; 'ratio': d_s = x_s / y_s (nan where y_s <= 0, left out of the
    interval). Returns ``t_interval`` of the d_s plus ``per_seed`` ``{seed: d_s}``.
    """
    common = sorted(set(x) & set(y))
    if how == "difference":
        values = {s: x[s] - y[s] for s in common}
    else:
        values = {s: x[s] / y[s] if y[s] > 0 else math.nan for s in common}
    return {**t_interval(list(values.values())), "per_seed": values}


def done_when(table: dict, margin: float = 1.2) -> tuple[dict, list[str]]:
    """The issue's pass numbers from ``table[method][quantity]["per_seed"]``, and Markdown lines of them.

    - retained: per seed the fraction r_s = fresh-adversary return / nominal return (deterministic) of
      QARL and SAC, the paired ratio r_QARL,s / r_SAC,s, and the seeds where it is >= ``margin`` (QARL
      keeps at least 20 % more of its nominal return than SAC; the plan asks for 4 of 5 seeds, tier 3 for
      8 of 10); the same for RARL / SAC (``retained rarl``);
    - grid mean and nominal return, QARL / SAC: the ratio of the seed means (the plan's criteria: grid
      >= 1.1, nominal >= 0.9) and the mean of per-seed ratios with its 95 % t-interval;
    - QARL vs RARL: paired differences QARL - RARL with 95 % t-intervals (nominal, fresh adversary,
      retained, grid mean) and the grid-mean ratio of seed means.
    """
    kept = {m: table[m]["retained (det.)"]["per_seed"] for m in ("qarl", "sac")}
    ratio = paired(kept["qarl"], kept["sac"], "ratio")
    wins = [s for s, r in ratio["per_seed"].items() if r >= margin]
    out: dict = {
        "retained": {
            "qarl": kept["qarl"],
            "sac": kept["sac"],
            "qarl/sac": ratio,
            f"seeds with qarl/sac >= {margin}": wins,
            "count": f"{len(wins)} of {len(ratio['per_seed'])}",
        }
    }
    lines = [
        "| done-when quantity | value |",
        "|---|---|",
        "| retained against the fresh adversary, QARL / SAC per seed | "
        + ", ".join(f"s{s} {r:.2f}" for s, r in ratio["per_seed"].items())
        + f" (>= {margin}: {len(wins)} of {len(ratio['per_seed'])} seeds {wins}) |",
    ]
    # RARL meets the same test (tier 3's criterion: each of RARL and QARL keeps >= margin x SAC's fraction)
    rarl = paired(table["rarl"]["retained (det.)"]["per_seed"], kept["sac"], "ratio")
    rarl_wins = [s for s, r in rarl["per_seed"].items() if r >= margin]
    out["retained rarl"] = {"rarl/sac": rarl, f"seeds with rarl/sac >= {margin}": rarl_wins,
                            "count": f"{len(rarl_wins)} of {len(rarl['per_seed'])}"}  # fmt: skip
    lines.append(
        "| retained against the fresh adversary, RARL / SAC per seed | "
        + ", ".join(f"s{s} {r:.2f}" for s, r in rarl["per_seed"].items())
        + f" (>= {margin}: {len(rarl_wins)} of {len(rarl['per_seed'])} seeds {rarl_wins}) |"
    )
    # the same on discounted returns, where recorded: what the adversary minimizes (not a criterion)
    name = "retained, discounted (det.)"
    discounted = paired(*(table[m].get(name, {"per_seed": {}})["per_seed"] for m in ("qarl", "sac")), "ratio")
    if discounted["per_seed"]:
        out["retained, discounted"] = {"qarl/sac": discounted}
        lines.append("| (not a criterion) the same on discounted returns | "
                     + ", ".join(f"s{s} {r:.2f}" for s, r in discounted["per_seed"].items()) + " |")  # fmt: skip

    def of_means(a: str, b: str, name: str) -> float:
        top, bottom = table[a][name]["mean"], table[b][name]["mean"]
        return top / bottom if bottom > 0 else math.nan

    for key, name in (("grid mean", "grid mean (det.)"), ("nominal", "nominal (det.)")):
        per = paired(table["qarl"][name]["per_seed"], table["sac"][name]["per_seed"], "ratio")
        out[f"{key} qarl/sac"] = {"of seed means": of_means("qarl", "sac", name), "per seed": per}
        lines.append(f"| {key} QARL / SAC | {of_means('qarl', 'sac', name):.3f} of seed means; "
                     f"per-seed ratios {_fmt(per, 3)} |")  # fmt: skip
    out["qarl-rarl"] = {}
    for name in ("nominal (det.)", "fresh adversary (det.)", "retained (det.)", "grid mean (det.)"):
        ci = paired(table["qarl"][name]["per_seed"], table["rarl"][name]["per_seed"], "difference")
        out["qarl-rarl"][name] = ci
        lines.append(f"| QARL - RARL: {name} | {_fmt(ci, 2 if name.startswith('retained') else 1)} |")
    grid_ratio = of_means("qarl", "rarl", "grid mean (det.)")
    out["grid mean qarl/rarl (of seed means)"] = grid_ratio
    lines.append(f"| grid mean QARL / RARL | {grid_ratio:.3f} of seed means |")
    return out, lines


def per_seed_lines(results: Results, seeds: list[int]) -> list[str]:
    """A markdown table per seed and method, deterministic protagonists: return / episode length /
    discounted return under each condition (a dash where a value was not recorded), and the grid mean."""

    def cell(stats: dict) -> str:
        formats = (("mean_reward", ",.0f"), ("mean_ep_length", ",.0f"), ("mean_discounted_reward", ".1f"))
        return " / ".join(format(stats[k], f) if k in stats else "-" for k, f in formats)

    conditions = ("nominal", "fresh_adversary", "random_force")
    lines = ["| seed | method | nominal | fresh adversary | random force | grid mean |", "|---|---|---|---|---|---|"]
    for seed in seeds:
        for method in METHODS:
            key = f"eval/{method}/s{seed}"
            if key in results:
                r = results[key]
                row = [cell(r[c]["deterministic"]) for c in conditions] + [f"{r['grid']['mean']:,.0f}"]
                lines.append(f"| {seed} | {method.upper()} | " + " | ".join(row) + " |")
    return lines


def _fmt(ci: dict, digits: int) -> str:
    if ci["n"] == 0:
        return "-"
    if not math.isfinite(ci["half"]):
        return f"{ci['mean']:.{digits}f} (n=1)"
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def summarize(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.robustness.plots import heatmap

    if not Path(args.results).exists():
        raise SystemExit(f"no results at {args.results}: run the plan first (same --task, --tag, --results)")
    results = Results(Path(args.results), {})
    meta = results.data["meta"]
    seeds = meta["seeds"]
    # the task the results were made for (tier 1's file predates the key; its env names it)
    name = meta.get("task") or next(k for k, t in TASKS.items() if t.env_id == meta["env"])
    task = TASKS[name]
    env_id, prefix = task.env_id, args.figure_prefix or task.figures
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    summary: dict = {"force_limit": meta.get("force_limit"), "force_rule": meta.get("force_rule")}
    calibration = {
        k: {"nominal": v["nominal"]["mean_reward"], "attacked": v["attacked"]["mean_reward"], "cut": v["cut"]}
        for k, v in results.data["jobs"].items()
        if k.startswith("calibrate/")
    }
    summary["calibration"] = calibration
    lines = ["| method | seeds | " + " | ".join(QUANTITIES) + " |", "|---" * (len(QUANTITIES) + 2) + "|"]
    table: dict = {}
    for method in METHODS:
        row = {}
        for name, value in QUANTITIES.items():
            values = per_seed(results, method, seeds, value)
            row[name] = {**t_interval(list(values.values())), "per_seed": values}
        table[method] = row
        n = max(r["n"] for r in row.values())
        digits = {name: 2 if name.startswith("retained") else 0 for name in QUANTITIES}
        lines.append(f"| {method} | {n} | " + " | ".join(_fmt(row[q], digits[q]) for q in QUANTITIES) + " |")
    summary["methods"] = table
    pairs: dict = {}
    pair_lines = ["| difference (paired by seed) | seeds | mean [95 % t-interval] | per seed |", "|---|---|---|---|"]
    for a, b in (("qarl", "sac"), ("qarl", "rarl"), ("rarl", "sac")):
        for name in ("nominal (det.)", "fresh adversary (det.)", "retained (det.)", "retained, discounted (det.)",
                     "random force (det.)", "grid mean (det.)"):  # fmt: skip
            ci = paired(table[a][name]["per_seed"], table[b][name]["per_seed"], "difference")
            pairs[f"{a}-{b}: {name}"] = ci
            diffs = ci["per_seed"]
            digits = 2 if name.startswith("retained") else 0
            per = ", ".join(f"{diffs[s]:.{digits}f}" for s in diffs)
            pair_lines.append(f"| {a.upper()} - {b.upper()}: {name} | {len(diffs)} | {_fmt(ci, digits)} | {per} |")
    summary["paired"] = pairs

    # The plan's directional pass criteria, checked on the numbers above.
    def seeds_of(method: str, name: str) -> dict[int, float]:
        return table[method][name]["per_seed"]

    criteria = {}
    sac_kept = seeds_of("sac", "retained (det.)")
    for method in ("rarl", "qarl"):
        kept = seeds_of(method, "retained (det.)")
        common = sorted(set(kept) & set(sac_kept))
        wins = [s for s in common if kept[s] >= 1.2 * sac_kept[s]]
        criteria[f"{method} retains >= 1.2x SAC's fraction"] = f"{len(wins)} of {len(common)} seeds {wins}"
    mean = {m: {q: table[m][q]["mean"] for q in QUANTITIES} for m in METHODS}
    criteria["QARL nominal >= 0.9 x SAC (seed means)"] = (
        f"{mean['qarl']['nominal (det.)']:.1f} vs 0.9 x {mean['sac']['nominal (det.)']:.1f}: "
        f"{mean['qarl']['nominal (det.)'] >= 0.9 * mean['sac']['nominal (det.)']}"
    )
    criteria["QARL grid mean >= 1.1 x SAC and >= RARL (seed means)"] = (
        f"{mean['qarl']['grid mean (det.)']:.1f} vs SAC {mean['sac']['grid mean (det.)']:.1f}, "
        f"RARL {mean['rarl']['grid mean (det.)']:.1f}"
    )
    summary["criteria"] = criteria
    summary["done_when"], done_lines = done_when(table)

    # Learning curves: eval/mean_reward of every training run, mean +- std over seeds.
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for method, color in zip(METHODS, ("tab:gray", "tab:blue", "tab:red")):
        curves = []
        for seed in seeds:
            key = f"train/{method}/s{seed}"
            if key not in results:
                continue
            rows = metrics_rows(results[key]["run_dir"])
            # protagonist samples on the x-axis: QARL / RARL spend half their env steps on the adversary
            curve = {r["step"] / (1 if method == "sac" else 2): r["eval/mean_reward"] for r in rows
                     if "eval/mean_reward" in r}  # fmt: skip
            if curve:
                curves.append(curve)
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        values = np.array([[c[s] for s in steps] for c in curves])
        mean = values.mean(0)
        ax.plot(steps, mean, color=color, label=f"{method.upper()} ({len(curves)} seeds)")
        if len(curves) > 1:
            ax.fill_between(steps, mean - values.std(0), mean + values.std(0), color=color, alpha=0.2)
    ax.set_xlabel("protagonist env steps (QARL / RARL: all env steps / 2)")
    ax.set_ylabel("eval return (10 episodes, deterministic)")
    ax.set_title(f"{env_id}: learning curves (mean +- std over seeds)")
    if ax.lines:  # none while no training run has metrics
        ax.legend()
    fig.savefig(figures / f"{prefix}_learning.png", dpi=120)
    plt.close(fig)

    adversary_figure(results, seeds, env_id, figures / f"{prefix}_adversaries.png")

    # Grid heatmaps: the seed-mean return per (pole, cart) cell, one figure per method.
    for method in METHODS:
        grids = [results[f"eval/{method}/s{s}"]["grid"] for s in seeds if f"eval/{method}/s{s}" in results]
        if grids:
            mean = np.mean([g["returns"] for g in grids], axis=0)
            heatmap(
                mean,
                [round(x, 2) for x in grids[0][task.grid_keys[0]]],  # readable tick labels
                [round(x, 2) for x in grids[0][task.grid_keys[1]]],
                figures / f"{prefix}_grid_{method}.png",
                title=f"{method.upper()} on {env_id} ({len(grids)} seeds)",
                xlabel=task.grid_labels[1],
                ylabel=task.grid_labels[0],
            )

    # Curriculum trace: the teacher's mean alpha and the performance it saw against its floor.
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True, constrained_layout=True)
    trace = {}
    for seed in seeds:
        key = f"train/qarl/s{seed}"
        if key not in results:
            continue
        rows = metrics_rows(results[key]["run_dir"])
        alpha = [(r["step"], r["teacher/mean_alpha"]) for r in rows if "teacher/mean_alpha" in r]
        perf = [(r["step"], r["teacher/performance"], r.get("teacher/floor", math.nan), r.get("teacher/accepted", 0))
                for r in rows if "teacher/performance" in r]  # fmt: skip
        trace[seed] = {"mean_alpha": alpha, "performance": perf}
        if alpha:
            top.plot(*zip(*alpha), label=f"seed {seed}")
        if perf:
            bottom.plot([p[0] for p in perf], [p[1] for p in perf], marker=".", label=f"seed {seed}")
            floor = perf[0][2]
    if trace:
        if any(t["performance"] for t in trace.values()):
            bottom.axhline(floor, color="k", linestyle="--", label="floor xi")
        top.set_yscale("log")
        top.set_ylabel("teacher mean alpha")
        bottom.set_ylabel("mean discounted return (teacher)")
        bottom.set_xlabel("env steps (both phases)")
        top.set_title(f"QARL curriculum on {env_id}")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
        fig.savefig(figures / f"{prefix}_curriculum.png", dpi=120)
    plt.close(fig)
    summary["curriculum"] = {
        seed: {
            "first_mean_alpha": t["mean_alpha"][0][1] if t["mean_alpha"] else None,
            "last_mean_alpha": t["mean_alpha"][-1][1] if t["mean_alpha"] else None,
            "updates": len(t["performance"]),
            "accepted": int(sum(p[3] for p in t["performance"])),
            "accepted_below_floor": int(sum(p[3] for p in t["performance"] if p[1] < p[2])),
        }
        for seed, t in trace.items()
    }
    # its own file: the scheduler may still be adding jobs to the results JSON
    out = Path(args.results).with_name(Path(args.results).stem + "_summary.json")
    out.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    print("\n".join(lines))
    print()
    print("\n".join(per_seed_lines(results, seeds)))
    print()
    print("\n".join(pair_lines))
    print()
    print("\n".join(done_lines))
    print()
    print(json.dumps({"force": summary["force_limit"], "rule": summary["force_rule"], "calibration": calibration,
                      "curriculum": summary["curriculum"], "criteria": summary["criteria"]}, indent=1))  # fmt: skip
    return summary


def adversary_figure(results: Results, seeds: list[int], env_id: str, path: Path) -> bool:
    """The force calibration (left: the fraction of SAC's nominal return each calibrating adversary cut, per F)
    and every fresh adversary's learning curve (right: the attacked protagonist's mean episode return as
    the adversary trains, one line per run, coloured by method). False when there is nothing to draw."""
    import matplotlib.pyplot as plt

    calibration = sorted((v["force"], v["cut"]) for k, v in results.data["jobs"].items() if k.startswith("calibrate/"))
    curves = {m: [results[f"eval/{m}/s{s}"]["fresh_adversary"].get("curve", []) for s in seeds
                  if f"eval/{m}/s{s}" in results] for m in METHODS}  # fmt: skip
    if not calibration and not any(curves.values()):
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    if calibration:
        left.plot(*zip(*calibration), marker="o", color="k")
        left.axhspan(0.3, 0.7, color="tab:green", alpha=0.15, label="30-70 % band")
        left.set_xlabel("force limit F (N per component)")
        left.set_ylabel("cut of SAC's nominal return")
        left.set_title("calibration: a fresh adversary per F")
        left.legend()
    for method, color in zip(METHODS, ("tab:gray", "tab:blue", "tab:red")):
        for i, curve in enumerate(c for c in curves[method] if c):
            right.plot(*zip(*curve), color=color, alpha=0.6, lw=1, label=method.upper() if i == 0 else None)
    right.set_xlabel("fresh adversary's env steps")
    right.set_ylabel("protagonist's mean episode return")
    right.set_title(f"{env_id}: fresh adversaries (stop once flat)")
    if right.lines:
        right.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def qualify(runs: list[Path], fraction: float = 0.9, need: int = 9, seeds: int = 10) -> dict:
    """Whether a task qualifies for tier 3: SAC reaches ``fraction`` of the best return in ``need`` seeds.

    ``runs``: SAC run directories (a sweep's trials). Per run, its evaluation curve (``eval/mean_reward``
    of metrics.jsonl); the best return is the highest evaluation of any run. A run *reaches* it when
    one of its evaluations within its budget is at least ``fraction`` of it; its final evaluation is
    reported too. Only finished runs (an evaluation at their config's ``total_steps``) count; the
    verdict is 'fails' once more than ``seeds - need`` finished runs miss, 'undecided' before.
    """
    curves, finished = {}, {}
    for run_dir in runs:
        config = json.loads((run_dir / "config.json").read_text())["config"]
        rows = [r for r in metrics_rows(run_dir) if "eval/mean_reward" in r]
        curves[run_dir.name] = [(r["step"], r["eval/mean_reward"]) for r in rows]
        finished[run_dir.name] = bool(rows) and rows[-1]["step"] >= config["train"]["total_steps"]
    best = max((value for curve in curves.values() for _, value in curve), default=math.nan)
    per_run = {
        name: {
            "finished": finished[name],
            "max": max(v for _, v in curve),
            "final": curve[-1][1],
            "reached": max(v for _, v in curve) >= fraction * best,
            "curve": curve,
        }  # fmt: skip
        for name, curve in curves.items()
        if curve
    }
    done = [r for r in per_run.values() if r["finished"]]
    reached = sum(r["reached"] for r in done)
    failed = len(done) - reached
    verdict = "qualifies" if reached >= need else ("fails" if failed > seeds - need else "undecided")
    return {"best": best, "fraction": fraction, "need": need, "finished": len(done), "reached": reached,
            "final_reached": sum(r["final"] >= fraction * best for r in done), "verdict": verdict,
            "runs": per_run}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the task's defaults filled in (tag, fresh-adversary budget, results path)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "summarize"):
        p = sub.add_parser(name)
        p.add_argument("--task", choices=sorted(TASKS), default="inverted-pendulum", help="tier 1 or tier 2 (hopper)")
        p.add_argument("--tag", help="names the run folder and the results JSON (default: tier1 / tier2)")
        p.add_argument("--root", default=str(REPO / "benchmarks/runs/qarl"))
        p.add_argument("--results", help="default: benchmarks/results/qarl_<tag>.json")
        p.add_argument("--figures", default=str(REPO / "docs/figures"))
        p.add_argument("--figure-prefix", help="figure file names <prefix>_*.png (default: qarl_tier1 / qarl_hopper)")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
        p.add_argument("--forces", type=float, nargs="+", default=[2, 5, 10, 20, 40])
        p.add_argument("--force", type=float, help="skip calibration: use this force limit")
        p.add_argument("--calibrate", action="store_true", help="calibrate the force limit (tier 1 always does)")
        p.add_argument("--steps", type=int, help="QARL/RARL env steps (SAC gets half); default: the presets'")
        p.add_argument("--adversary-steps", type=int, help="env steps of each evaluation adversary (10k / 50k)")
        p.add_argument("--calibration-steps", type=int, default=10_000, help="env steps of each calibrating adversary")
        p.add_argument("--episodes", type=int, default=10)
        p.add_argument("--grid", type=int, default=11, help="cells per axis of the model grid")
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--override", nargs="*", default=[], help="extra key=value overrides of every run")
    check = sub.add_parser("qualify", help="does SAC reach 90 %% of the best return in 9 of 10 seeds?")
    check.add_argument("runs", nargs="+", type=Path, help="SAC run directories (e.g. SWEEP_DIR/trials/*)")
    check.add_argument("--fraction", type=float, default=0.9)
    check.add_argument("--need", type=int, default=9)
    check.add_argument("--seeds", type=int, default=10, help="seeds the sweep runs in all")
    job = sub.add_parser("job")
    job.add_argument("kind", choices=sorted(JOBS))
    job.add_argument("spec")
    job.add_argument("out")
    args = parser.parse_args(argv)
    if args.command in ("job", "qualify"):
        return args
    task = TASKS[args.task]
    args.tag = args.tag or task.tag
    args.adversary_steps = args.adversary_steps or task.adversary_steps
    if args.results is None:
        args.results = str(REPO / f"benchmarks/results/qarl_{args.tag}.json")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "job":
        run_job(args.kind, args.spec, args.out)
    elif args.command == "qualify":
        out = qualify(args.runs, args.fraction, args.need, args.seeds)
        for name, r in out["runs"].items():
            curve = " ".join(f"{v:g}" for _, v in r["curve"])
            head = f"{name}: max {r['max']:g} final {r['final']:g} reached {r['reached']} finished {r['finished']}"
            print(f"{head} | {curve}")
        summary = {k: v for k, v in out.items() if k != "runs"}
        print(json.dumps(summary))
        sys.exit(0 if out["verdict"] == "qualifies" else 1)
    elif args.command == "run":
        run_all(args)
    else:
        summarize(args)


if __name__ == "__main__":
    main()
