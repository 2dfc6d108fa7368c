"""Aggregate many runs into robust scores with intervals: IQM, mean, median, optimality gap, performance
profiles, probability of improvement and learning curves, as a markdown table and PNGs.

    python -m agents.experiments.aggregate sweeps/sac_lr sweeps/erc_lr --out reports/lr
    python -m agents.experiments.aggregate ours=sweeps/a base=sweeps/b --range dmc:cheetah-run=0,1000

Paper: Agarwal, Schwarzer, Castro, Courville, Bellemare, "Deep Reinforcement Learning at the Edge of the
Statistical Precipice", NeurIPS 2021, arXiv:2108.13264 (the ``rliable`` library). With few runs per task,
point estimates mislead; the paper reports aggregate metrics with stratified bootstrap confidence
intervals. For normalized scores ``x[run, task]`` of one method (``n`` runs, ``T`` tasks):

    IQM            = mean of the middle 50% of all n*T scores (sort, drop floor(nT/4) from each end)
    mean, median   = over all n*T scores
    optimality gap = mean over all scores of max(gamma - x, 0), gamma = 1 (the normalized target)
    profile(tau)   = mean over tasks of the fraction of runs with x > tau
    P(X > Y)       = mean over tasks of P(x_X > x_Y) + 1/2 P(x_X = x_Y)   (Mann-Whitney, per task)

The 95% interval is the percentile interval of the metric over ``reps`` stratified bootstrap samples:
each sample redraws, independently for every task, that task's runs with replacement (for P(X > Y), the
runs of X and of Y are redrawn separately).

Inputs: sweep directories (``manifest.json``), run directories (``config.json`` + ``metrics.jsonl``) or
folders holding either, each optionally named ``LABEL=PATH``. A run's method is its label, else for a
sweep trial the sweep's preset plus the trial's grid overrides, else the run's algorithm; its task is
``env.id``. Its score is the last ``eval/mean_reward`` in ``metrics.jsonl`` (``score="final"``), the
newest ``evaluate.py`` result in ``eval/*.json`` (``score="eval"``, falling back to the final one), or
the last ``rollout/ep_rew_mean`` (``score="rollout"``).

Normalization: scores are mapped to [0, 1] per task as ``(x - low) / (high - low)``, with a given range
per task or else the min and max over every run of every method on that task. With one task the
normalized and the raw metrics are the same up to that affine map (IQM, mean, median and their
intervals commute with it), so the per-task table in raw units is the one to read; the optimality gap
then measures the distance to the best run observed.

Deviations from the reference: our own numpy implementation of the metrics and the stratified bootstrap
(rliable 1.2.0 fails to import with pandas 3 through its ``arch`` dependency, and pulls in statsmodels
and arch for a few lines of numpy). Like rliable, the IQM trims ``floor(nT / 4)`` scores from each end
(``scipy.stats.trim_mean``), intervals are percentile intervals, and the default is 2000 bootstrap
samples (rliable's 50000 is slow for the learning curves; pass ``reps``). Methods that ran different
numbers of seeds on a task are cut to the smallest common number (lowest seeds first) so the score
matrix stays ``[runs, tasks]``; the report says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONFIDENCE = 0.95


# --------------------------------------------------------------------------------------------------
# Reading runs


@dataclass
class RunRecord:
    """One run: where it is, which method and task it belongs to, its seed, learning curve and scores."""

    run_dir: Path
    method: str
    task: str
    seed: int
    steps: np.ndarray  # [evals] env steps of each evaluation
    rewards: np.ndarray  # [evals] eval/mean_reward at those steps
    final: float  # last eval/mean_reward (nan if the run never evaluated)
    evaluated: float | None = None  # newest evaluate.py mean return, if any
    rollout: float = math.nan  # last finite rollout/ep_rew_mean
    notes: list[str] = field(default_factory=list)

    def score(self, kind: str) -> float:
        if kind == "final":
            return self.final
        if kind == "eval":
            return self.evaluated if self.evaluated is not None else self.final
        if kind == "rollout":
            return self.rollout
        raise ValueError(f"unknown score kind {kind!r}; use final, eval or rollout")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl``; a line cut short by a killed run is skipped."""
    rows = []
    if not Path(path).is_file():
        return rows
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def latest_report(run_dir: Path, accept: Callable[[dict], bool] = lambda report: True) -> dict | None:
    """The newest ``evaluate.py`` report (``RUN_DIR/eval/*.json``) that ``accept`` takes, or None."""
    files = sorted((Path(run_dir) / "eval").glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and accept(data):
            return data
    return None


def _nominal_return(report: dict) -> float | None:
    for source in (report.get("nominal"), report):
        if isinstance(source, dict):
            for key in ("mean_reward", "eval/mean_reward"):
                if isinstance(source.get(key), (int, float)):
                    return float(source[key])
    return None


def _latest_eval_json(run_dir: Path) -> float | None:
    """The mean return of the newest ``evaluate.py`` result (``eval/*.json``) that has one."""
    report = latest_report(run_dir, lambda r: _nominal_return(r) is not None)
    return None if report is None else _nominal_return(report)


_PARAMETERS = ("sigma", "eps", "scale")  # the swept value of a condition's rows


def report_measures(report: Mapping[str, Any]) -> dict[str, float]:
    """One ``evaluate.py`` report as flat ``{measure: value}``, the same names for every family:

    ``nominal``; ``observation_noise 0.5``, ``action_noise 0.1``, ``agent_mass 2`` (a row per swept value);
    ``observation_attack clean`` and ``observation_attack 0.2`` (the attack's paired clean episodes and each
    radius); ``mass_friction 0.5x1.5`` per grid cell; ``malicious_agents``; ``adversary fresh`` and
    ``adversary random_force``; ``lipschitz jacobian_mean`` and the meter's other scalars. Mean returns
    everywhere but the Lipschitz entries.
    """
    out: dict[str, float] = {}
    nominal = _nominal_return(dict(report))
    if nominal is not None:
        out["nominal"] = nominal
    for key, value in report.items():
        if key == "nominal":
            continue
        if isinstance(value, list) and value and all(isinstance(r, dict) and "mean_reward" in r for r in value):
            for row in value:
                parameter = next((row[p] for p in _PARAMETERS if p in row), None)
                out[f"{key} {parameter:g}" if parameter is not None else key] = float(row["mean_reward"])
        elif isinstance(value, dict) and isinstance(value.get("results"), list):  # an attack: clean + radii
            out[f"{key} clean"] = float(value["clean"]["mean_reward"])
            out.update(report_measures({key: value["results"]}))
        elif isinstance(value, dict) and "grid" in value:  # mass x friction
            for mass, row in zip(value["mass_scales"], value["grid"]):
                for friction, cell in zip(value["friction_scales"], row):
                    out[f"{key} {mass:g}x{friction:g}"] = float(cell["mean_reward"])
        elif isinstance(value, dict) and "mean_reward" in value:
            out[key] = float(value["mean_reward"])
        elif isinstance(value, dict) and key == "lipschitz":
            skip = ("radius", "observations_per_agent")
            out.update(
                {f"{key} {k}": float(v) for k, v in value.items() if isinstance(v, (int, float)) and k not in skip}
            )
        elif isinstance(value, dict):  # named sub-conditions (the force adversaries)
            out.update(
                {
                    f"{key} {k}": float(v["mean_reward"])
                    for k, v in value.items()
                    if isinstance(v, dict) and "mean_reward" in v
                }
            )
    return out


def condition_table(runs: Sequence[RunRecord]) -> tuple[list[str], dict[str, dict[str, dict[str, dict]]]]:
    """Markdown lines and ``{method: {task: {measure: t_interval}}}``: every measure of the runs' newest
    ``evaluate.py`` reports (:func:`report_measures`), mean and 95 % t-interval over each method's seeds.

    A measure shows up where every run of the method on that task has it (reports with other conditions
    are not mixed in silently)."""
    groups: dict[tuple[str, str], list[dict[str, float]]] = {}
    for run in runs:
        report = latest_report(run.run_dir)
        if report is not None:
            groups.setdefault((run.method, run.task), []).append(report_measures(report))
    stats: dict[str, dict[str, dict[str, dict]]] = {}
    lines: list[str] = []
    for (method, task), rows in groups.items():
        common = [k for k in rows[0] if all(k in r for r in rows[1:])]
        stats.setdefault(method, {})[task] = {k: t_interval([r[k] for r in rows]) for k in common}
    for task in sorted({task for _, task in groups}):
        methods = [m for m in stats if task in stats[m]]
        measures = list(dict.fromkeys(k for m in methods for k in stats[m][task]))
        if measures == ["nominal"]:
            continue
        runs_of = {m: len(groups[(m, task)]) for m in methods}
        header = " | ".join(f"{m} ({runs_of[m]})" for m in methods)
        lines += [f"### {task}", "", f"| measure | {header} |", "|---" * (len(methods) + 1) + "|"]
        for measure in measures:
            cells = [_mean_half(stats[m][task].get(measure)) for m in methods]
            lines.append(f"| {measure} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines, stats


def _mean_half(ci: dict | None) -> str:
    if ci is None:
        return ""
    digits = 3 if abs(ci["mean"]) < 10 else 1
    if ci["n"] > 1 and math.isfinite(ci["half"]):
        return f"{ci['mean']:.{digits}f} ± {ci['half']:.{digits}f}"
    return f"{ci['mean']:.{digits}f}"


def read_run(run_dir: Path, method: str | None = None) -> RunRecord:
    """A :class:`RunRecord` of one run directory (config.json read as plain JSON, so runs of other suite
    versions load too). ``method`` defaults to the run's algorithm name."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text()).get("config", {})
    rows = read_metrics(run_dir / "metrics.jsonl")
    evals = [(int(r["step"]), float(r["eval/mean_reward"])) for r in rows if "eval/mean_reward" in r]
    # A resumed run may log the same step twice; keep the last value of each step.
    by_step = dict(evals)
    steps = np.array(sorted(by_step), dtype=np.int64)
    rewards = np.array([by_step[s] for s in steps], dtype=np.float64)
    rollouts = [float(r["rollout/ep_rew_mean"]) for r in rows if isinstance(r.get("rollout/ep_rew_mean"), float)]
    rollouts = [v for v in rollouts if math.isfinite(v)]
    return RunRecord(
        run_dir=run_dir,
        method=method or str(config.get("algo", "?")),
        task=str(config.get("env", {}).get("id", "?")),
        seed=int(config.get("train", {}).get("seed", 0)),
        steps=steps,
        rewards=rewards,
        final=float(rewards[-1]) if len(rewards) else math.nan,
        evaluated=_latest_eval_json(run_dir),
        rollout=rollouts[-1] if rollouts else math.nan,
    )


def read_sweep(sweep_dir: Path, label: str | None = None) -> list[RunRecord]:
    """Every trial of a sweep with a run directory; method = ``label`` or the preset, plus the grid point."""
    manifest = json.loads((Path(sweep_dir) / "manifest.json").read_text())
    runs = []
    for trial in manifest.get("trials", []):
        run_dir = Path(sweep_dir) / trial["run_dir"]
        if not (run_dir / "config.json").is_file():
            continue
        # A grid point (or a search trial's sampled values) is a method of its own.
        point = " ".join(trial.get("overrides", []))
        method = f"{label or manifest.get('preset', '?')} {point}".strip()
        record = read_run(run_dir, method)
        record.seed = int(trial.get("seed", record.seed))
        if trial.get("status") != "done":
            record.notes.append(f"trial status {trial.get('status')}")
        runs.append(record)
    return runs


def load_runs(paths: Sequence[str | Path]) -> list[RunRecord]:
    """Runs under each path: a sweep directory, a run directory, or a folder searched for both.

    A path may be written ``LABEL=PATH`` to name the method of every run under it.
    """
    runs: list[RunRecord] = []
    for item in paths:
        # A path that exists is a path even if it holds "=" (Ray Tune's trial folder names do).
        label, raw = (None, str(item)) if Path(item).exists() or "=" not in str(item) else str(item).split("=", 1)
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such sweep or run directory")
        if (path / "manifest.json").is_file():
            runs.extend(read_sweep(path, label or None))
        elif (path / "config.json").is_file():
            runs.append(read_run(path, label or None))
        else:
            sweeps = sorted(p.parent for p in path.rglob("manifest.json"))
            for sweep in sweeps:
                runs.extend(read_sweep(sweep, label or None))
            for config in sorted(path.rglob("config.json")):
                if not any(sweep in config.parents for sweep in sweeps):
                    runs.append(read_run(config.parent, label or None))
    return runs


# --------------------------------------------------------------------------------------------------
# Score matrices and normalization


def task_scores(runs: Sequence[RunRecord], score: str = "final") -> tuple[dict[str, dict[str, list]], list[str]]:
    """``({method: {task: [(seed, score), ...]}}, notes)`` over every task each method ran, whatever the
    other methods ran (the per-task tables); runs with no score (nan) are left out with a note."""
    notes: list[str] = []
    table: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run in runs:
        value = run.score(score)
        if not math.isfinite(value):
            notes.append(f"{run.run_dir}: no {score} score, left out")
            continue
        table.setdefault(run.method, {}).setdefault(run.task, []).append((run.seed, value))
    return table, notes


def score_matrices(
    runs: Sequence[RunRecord], score: str = "final"
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """``({method: scores[runs, tasks]}, tasks, notes)`` over the tasks every method ran.

    Runs with no score (nan) are dropped; a method with unequal run counts across tasks is cut to its
    smallest count (lowest seeds kept) so that its matrix is rectangular.
    """
    table, notes = task_scores(runs, score)
    if not table:
        return {}, [], notes
    tasks = sorted(set.intersection(*(set(by_task) for by_task in table.values())))
    dropped = sorted(set().union(*(set(by_task) for by_task in table.values())) - set(tasks))
    if dropped:
        notes.append(f"tasks not run by every method, left out of the aggregate: {', '.join(dropped)}")
    matrices = {}
    for method, by_task in sorted(table.items()):
        if not tasks:
            continue
        count = min(len(by_task[t]) for t in tasks)
        if any(len(by_task[t]) != count for t in tasks):
            notes.append(f"{method}: unequal runs per task, cut to {count} per task")
        columns = [[v for _, v in sorted(by_task[t])[:count]] for t in tasks]
        matrices[method] = np.asarray(columns, dtype=np.float64).T  # [runs, tasks]
    return matrices, tasks, notes


def task_ranges(
    matrices: Mapping[str, np.ndarray], tasks: Sequence[str], given: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, tuple[float, float]]:
    """``{task: (low, high)}``: the given range, else the min and max over every method's runs of that task
    (a task where all runs scored the same gets ``(low, low + 1)`` so nothing divides by zero)."""
    given = dict(given or {})
    ranges = {}
    for index, task in enumerate(tasks):
        if task in given:
            ranges[task] = (float(given[task][0]), float(given[task][1]))
            continue
        column = np.concatenate([m[:, index] for m in matrices.values()])
        low, high = float(column.min()), float(column.max())
        ranges[task] = (low, high if high > low else low + 1.0)
    return ranges


def normalize(matrix: np.ndarray, tasks: Sequence[str], ranges: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """``(x - low[task]) / (high[task] - low[task])`` column by column; ``matrix`` is ``[runs, tasks]``."""
    low = np.array([ranges[t][0] for t in tasks])
    high = np.array([ranges[t][1] for t in tasks])
    return (matrix - low) / (high - low)


# --------------------------------------------------------------------------------------------------
# Metrics


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all scores: sort the ``N`` values, drop ``floor(N / 4)`` from each end, average."""
    flat = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """``mean(max(gamma - x, 0))`` over all scores: how far below the target ``gamma`` on average."""
    return float(np.mean(gamma - np.minimum(np.asarray(scores, dtype=np.float64), gamma)))


METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "IQM": iqm,
    "mean": lambda x: float(np.mean(x)),
    "median": lambda x: float(np.median(x)),
    "optimality gap": optimality_gap,
}


def stratified_resample(matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap sample of ``matrix[runs, tasks]``: each task's runs redrawn with replacement."""
    runs, tasks = matrix.shape
    rows = rng.integers(0, runs, size=(runs, tasks))
    return matrix[rows, np.arange(tasks)]


def bootstrap_interval(
    matrix: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    reps: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``statistic(matrix)`` and its percentile interval over ``reps`` stratified
    bootstrap samples (a single run per task gives the point as both bounds)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    point = statistic(matrix)
    rng = np.random.default_rng(seed)
    samples = np.array([statistic(stratified_resample(matrix, rng)) for _ in range(reps)])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(point), float(low), float(high)


def t_interval(values, confidence: float = 0.95) -> dict:
    """Mean and Student-t interval of ``values [n]``: mean +- t_{n-1, (1+c)/2} * s / sqrt(n).

    ``s`` is the sample standard deviation (ddof 1). With one value the half-width is nan.
    """
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "half": math.nan, "n": 0}
    mean = float(x.mean())
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": mean, "low": mean - half, "high": mean + half, "half": half, "n": n}


def interval_estimates(
    matrices: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0, metrics: Mapping[str, Callable] = METRICS
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``{method: {metric: (point, low, high)}}`` for every method's (normalized) score matrix."""
    return {
        method: {name: bootstrap_interval(matrix, fn, reps, seed) for name, fn in metrics.items()}
        for method, matrix in matrices.items()
    }


def score_profile(matrix: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """``[len(taus)]``: for each threshold, the mean over tasks of the fraction of runs scoring above it."""
    above = matrix[None, :, :] > np.asarray(taus, dtype=np.float64)[:, None, None]  # [taus, runs, tasks]
    return above.mean(axis=1).mean(axis=1)


def performance_profiles(
    matrices: Mapping[str, np.ndarray], taus: np.ndarray, reps: int = 2000, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{method: (profile, low, high)}`` over ``taus`` with pointwise stratified bootstrap intervals."""
    out = {}
    alpha = (1.0 - CONFIDENCE) / 2.0
    for method, matrix in matrices.items():
        rng = np.random.default_rng(seed)
        samples = np.stack([score_profile(stratified_resample(matrix, rng), taus) for _ in range(reps)])
        low, high = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
        out[method] = (score_profile(matrix, taus), low, high)
    return out


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y)``: mean over tasks of ``P(x > y) + 1/2 P(x = y)`` over all pairs of a run of X and a run
    of Y on that task. ``x`` is ``[n, tasks]``, ``y`` ``[m, tasks]`` (same tasks, any run counts)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))  # [tasks]
    equal = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * equal))


def improvement_interval(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``(point, low, high)`` of ``P(X > Y)``; each bootstrap sample redraws X's and Y's runs per task."""
    rng = np.random.default_rng(seed)
    samples = np.array(
        [probability_of_improvement(stratified_resample(x, rng), stratified_resample(y, rng)) for _ in range(reps)]
    )
    alpha = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return probability_of_improvement(x, y), float(low), float(high)


def learning_curves(
    runs: Sequence[RunRecord], task: str, reps: int = 500, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``{method: (steps, iqm, low, high)}`` of raw eval returns on ``task``, at the evaluation steps that
    every run of the method has (a shorter, unfinished run shortens the curve rather than biasing it)."""
    out = {}
    methods = sorted({r.method for r in runs if r.task == task})
    for method in methods:
        group = [r for r in runs if r.task == task and r.method == method and len(r.steps)]
        if not group:
            continue
        common = sorted(set.intersection(*(set(r.steps.tolist()) for r in group)))
        if not common:
            continue
        values = np.array([[r.rewards[np.searchsorted(r.steps, s)] for s in common] for r in group])  # [runs, steps]
        points, lows, highs = [], [], []
        for column in values.T:
            point, low, high = bootstrap_interval(column[:, None], iqm, reps, seed)
            points.append(point)
            lows.append(low)
            highs.append(high)
        out[method] = (np.array(common), np.array(points), np.array(lows), np.array(highs))
    return out


# --------------------------------------------------------------------------------------------------
# Plots and report


def _figure(width: float, height: float):
    """A matplotlib figure on the Agg canvas (no pyplot: no global backend, no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def plot_interval_curves(
    series: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    path: Path,
    title: str = "",
    xlabel: str = "environment steps",
    ylabel: str = "return (IQM)",
    band_label: str = "95% CI",
    steps: bool = False,
) -> Path:
    """Lines ``series[label] = (x, point, low, high)`` with the band ``[low, high]`` shaded; ``steps``
    draws step functions (a performance profile is one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    for label, (x, point, low, high) in series.items():
        marker = "o" if len(x) <= 12 else None
        style = {"drawstyle": "steps-post"} if steps else {}
        (line,) = ax.plot(x, point, label=label, linewidth=1.8, marker=marker, markersize=3, **style)
        band = {"step": "post"} if steps else {}
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0, **band)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(title=band_label, fontsize=8, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_intervals(estimates: Mapping[str, Mapping[str, tuple[float, float, float]]], path: Path) -> Path:
    """One panel per metric: each method's point estimate with its interval as a horizontal bar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    methods = list(estimates)
    names = list(next(iter(estimates.values()))) if estimates else []
    fig = _figure(3.2 * max(1, len(names)), 0.5 * len(methods) + 1.5)
    for column, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), column + 1)
        for row, method in enumerate(methods):
            point, low, high = estimates[method][name]
            ax.plot([low, high], [row, row], linewidth=6, alpha=0.5, solid_capstyle="butt")
            ax.plot([point], [row], "k|", markersize=12)
        ax.set_yticks(range(len(methods)), methods if column == 0 else [""] * len(methods))
        ax.set_title(name)
        ax.set_xlabel("normalized score")
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _cell(point: float, low: float, high: float) -> str:
    digits = 3 if max(abs(point), abs(low), abs(high)) < 10 else 1
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def aggregate(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    score: str = "final",
    ranges: Mapping[str, tuple[float, float]] | None = None,
    reps: int = 2000,
    seed: int = 0,
    plots: bool = True,
) -> dict[str, Any]:
    """Read the runs under ``paths`` and write ``summary.md``, ``summary.json`` and PNGs to ``out_dir``.

    Returns the summary dict (also what ``summary.json`` holds): per-task raw IQM with intervals, aggregate
    normalized metrics, probability of improvement between every pair of methods, the ranges used and
    notes about left-out runs. Raises ValueError when no run has a score.
    """
    runs = load_runs(paths)
    where = ", ".join(map(str, paths))
    return aggregate_runs(runs, out_dir, score=score, ranges=ranges, reps=reps, seed=seed, plots=plots, where=where)


def curve_record(method: str, task: str, seed: int, curve: Sequence[Sequence[float]], source: str = "") -> RunRecord:
    """A run known only by its evaluation curve ``[(step, mean return), ...]`` (e.g. a results JSON of
    an earlier benchmark), as :func:`aggregate_runs` reads it; the final score is the last point."""
    points = np.asarray(curve, dtype=np.float64).reshape(-1, 2)
    final = float(points[-1, 1]) if len(points) else math.nan
    where = Path(source or f"{method}/{task}/seed{seed}")
    return RunRecord(where, method, task, seed, points[:, 0], points[:, 1], final)


def aggregate_runs(
    runs: Sequence[RunRecord],
    out_dir: str | Path,
    *,
    score: str = "final",
    ranges: Mapping[str, tuple[float, float]] | None = None,
    reps: int = 2000,
    seed: int = 0,
    plots: bool = True,
    where: str = "the given runs",
) -> dict[str, Any]:
    """:func:`aggregate` on runs already read (run directories, sweeps, or :func:`curve_record`s)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    matrices, tasks, notes = score_matrices(runs, score)
    scored, _ = task_scores(runs, score)
    if not scored:
        raise ValueError(f"no run with a {score} score under {where}")
    # Per task: every task each method ran, all its scored runs there (no common task needed).
    per_task = {
        method: {
            task: {
                "runs": len(values),
                "IQM": bootstrap_interval(np.asarray([[v] for _, v in sorted(values)]), iqm, reps, seed),
            }
            for task, values in sorted(by_task.items())
        }
        for method, by_task in sorted(scored.items())
    }
    methods = list(per_task)
    # Across tasks: only the tasks every method ran (the score matrices are [runs, shared tasks]).
    used = task_ranges(matrices, tasks, ranges) if matrices else {}
    normalized = {m: normalize(x, tasks, used) for m, x in matrices.items()}
    estimates = interval_estimates(normalized, reps, seed) if matrices else {}
    # Each unordered pair once: P(Y > X) = 1 - P(X > Y), ties counting half either way.
    improvement = {
        f"{a} > {b}": improvement_interval(normalized[a], normalized[b], reps, seed)
        for index, a in enumerate(methods)
        for b in methods[index + 1 :]
        if a in normalized and b in normalized
    }

    lines = [f"# Aggregate of {len(runs)} runs ({score} score)", ""]
    lines += ["## Per task (raw returns, IQM over runs, 95% stratified bootstrap CI)", ""]
    lines += ["| method | task | runs | IQM [95% CI] |", "|---|---|---|---|"]
    for method in methods:
        for task, entry in per_task[method].items():
            lines.append(f"| {method} | {task} | {entry['runs']} | {_cell(*entry['IQM'])} |")
    if matrices:
        source = "given ranges" if ranges else "per-task min-max over all runs"
        lines += ["", f"## Aggregate over {len(tasks)} task(s) (normalized: {source})", ""]
        lines += ["| method | runs x tasks | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
        for method in methods:
            shape = f"{matrices[method].shape[0]} x {matrices[method].shape[1]}"
            cells = " | ".join(_cell(*estimates[method][m]) for m in METRICS)
            lines.append(f"| {method} | {shape} | {cells} |")
    else:
        shared = f"it needs tasks that every method ran, and {', '.join(methods)} share none"
        lines += ["", f"No cross-task aggregate: {shared}."]
    if len(tasks) == 1:
        lines += ["", "One task: the normalized metrics are an affine map of the raw ones; read the per-task table."]
    if improvement:
        lines += ["", "## Probability of improvement P(X > Y)", "", "| X > Y | P [95% CI] |", "|---|---|"]
        lines += [f"| {pair} | {_cell(*value)} |" for pair, value in improvement.items()]
    if used:
        lines += ["", "Normalization ranges: " + ", ".join(f"{t} [{lo:g}, {hi:g}]" for t, (lo, hi) in used.items())]
    conditions, condition_stats = condition_table(runs)
    if conditions:
        lines += ["", "## Conditions of evaluate.py (newest report per run; mean ± 95% t-interval over seeds)", ""]
        lines += conditions
    if notes:
        lines += ["", "Notes:", *(f"- {note}" for note in notes)]

    figures = []
    if plots:
        if matrices:
            taus = np.linspace(0.0, 1.0, 41)
            profiles = performance_profiles(normalized, taus, min(reps, 1000), seed)
            series = {m: (taus, p, lo, hi) for m, (p, lo, hi) in profiles.items()}
            figures.append(
                plot_interval_curves(
                    series,
                    out_dir / "profile.png",
                    "performance profile",
                    "normalized score tau",
                    "fraction of runs with score > tau",
                    steps=True,
                )
            )
            figures.append(plot_intervals(estimates, out_dir / "intervals.png"))
        for task in sorted(set().union(*(set(by_task) for by_task in per_task.values()))):
            curves = learning_curves(runs, task, min(reps, 500), seed)
            if curves:
                name = "curves_" + "".join(c if c.isalnum() or c in "-_." else "-" for c in task) + ".png"
                figures.append(plot_interval_curves(curves, out_dir / name, task))
        lines += ["", *(f"![{p.stem}]({p.name})" for p in figures)]

    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    summary = {
        "score": score,
        "tasks": tasks,
        "ranges": used,
        "per_task": per_task,
        "aggregate": estimates,
        "probability_of_improvement": improvement,
        "conditions": condition_stats,
        "notes": notes,
        "figures": [p.name for p in figures],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def parse_range(spec: str) -> tuple[str, tuple[float, float]]:
    """``"TASK=LOW,HIGH"`` -> ``(task, (low, high))``; ValueError (one line) otherwise."""
    task, _, bounds = spec.rpartition("=")
    try:
        low, high = (float(v) for v in bounds.split(","))
    except ValueError:
        raise ValueError(f"range {spec!r} is not of the form TASK=LOW,HIGH") from None
    if not task or not high > low or not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"range {spec!r}: needs a task and finite LOW < HIGH")
    return task, (low, high)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agents.experiments.aggregate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("paths", nargs="+", help="sweep dirs, run dirs or folders of them; LABEL=PATH names a method")
    parser.add_argument("--out", default="aggregate", help="where to write summary.md, summary.json and PNGs")
    parser.add_argument("--score", choices=("final", "eval", "rollout"), default="final", help="which score per run")
    parser.add_argument("--range", action="append", default=[], metavar="TASK=LOW,HIGH", help="normalization range")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap samples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        ranges = dict(parse_range(spec) for spec in args.range)
        aggregate(args.paths, args.out, score=args.score, ranges=ranges, reps=args.reps, seed=args.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print((Path(args.out) / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
