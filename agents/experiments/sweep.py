"""Many runs from one command: seed x grid sweeps (local processes or Ray Tune) and hyperparameter search.

A *sweep* trains one preset for several seeds and, optionally, every point of a grid of overrides::

    python -m agents.experiments.sweep sac --seeds 0-4 --grid agent.actor_lr=1e-4,3e-4 --sweep-dir sweeps/lr
    python -m agents.experiments.sweep sac --seeds 0-4 --ray                       # same trials as Ray Tune trials
    python -m agents.experiments.sweep sac --seeds 0-4 --ray-address HOST:6379     # on an existing Ray cluster
    python -m agents.experiments.sweep sac --search --space 'agent.actor_lr=loguniform(1e-5,1e-3)' --samples 16

The sweep directory holds ``manifest.json`` (preset, overrides, and per trial: id, seed, overrides,
run_dir, status) and one ordinary run directory per trial, ``trials/<id>``. Each trial is exactly
``python train.py PRESET --run-dir SWEEP/trials/<id> seed=K OVERRIDES... train.threads=T`` in a child
process (or ``train.py --resume SWEEP/trials/<id>``), so a trial's directory is indistinguishable from a
run started by hand and ``evaluate.py`` / :mod:`agents.experiments.aggregate` read it as they read any run.
The child's output goes to ``SWEEP/logs/<id>.log``.

Local runner: as many trials at once as the machine has cores (``parallel``), each with
``train.threads = cores // parallel``. Each child is the leader of its own process group, is killed
with its group when the sweep ends by SIGINT, SIGTERM or an exception, and (on Linux) receives SIGKILL
from the kernel if the driver itself is killed (``PR_SET_PDEATHSIG``), so no trial outlives its sweep.
Rerunning the same command on the same directory resumes: finished trials are kept, an unfinished
trial continues from its own newest checkpoint with ``train.py --resume`` (bit for bit, as resume is),
a trial without a checkpoint restarts, and failed trials are tried again. New seeds or grid points
on a rerun are added as new trials; a directory made for another preset or other base overrides
is refused.

Seed-batched runner (``--batched``, SAC): the trials (the seeds of one config, no grid) train in this
process with their updates stacked on a leading seed dimension (:func:`agents.engine.run.train_batched`):
each trial still writes an ordinary run directory (``train.py --resume SWEEP/trials/seed3`` continues
that seed alone), and a rerun resumes all of them from the newest checkpoint step they all have.

Ray runner: the same trial commands run as Ray Tune trials, one subprocess each, on a Ray instance
started here or on an existing cluster (``address``), with ``cpus_per_trial`` / ``gpus_per_trial``
(a fraction shares a GPU; Ray sets ``CUDA_VISIBLE_DEVICES`` for the trial, and the overrides must
say ``train.device=cuda``). Because a trial is the same command with the same ``train.threads``, its
results on CPU equal the local runner's bit for bit. On a cluster every node needs the suite at the
same path and the sweep directory on a shared filesystem.

Search: Ray Tune with Optuna's TPE sampler proposing configs and an ASHA scheduler stopping weak trials
early on ``eval/mean_reward``. Each trial trains in-process through :func:`agents.engine.run.train` with a
logger that also reports every evaluation to Tune (so ``train.eval_every`` must be positive). The space
comes from ``key=dist(...)`` arguments (``loguniform``, ``uniform``, ``randint``, ``choice``) or a small
JSON file; the budget is a number of trials and/or seconds. The best config is printed and written as
``SWEEP/best_config.json`` (:func:`agents.engine.config.to_dict` of its ``RunConfig``) next to
``SWEEP/search.json`` with every trial's parameters and score.

Deviations from the reference (Ray Tune's own experiment resumption): we keep our own manifest and
resume trials through the suite's checkpoints rather than Tune's, so a sweep resumes the same way on
either runner and a trial's directory is an ordinary run. A search trial's "best" is its last
evaluation among the trials that ran longest (ASHA stops the others early, so their last evaluation
comes from a shorter run and is not comparable).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import difflib
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.engine.checkpoint import write_atomic
from agents.engine.config import (
    ConfigError,
    apply_overrides,
    command_line_parser,
    error_reason,
    flat_fields,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = "manifest.json"
FORMAT = "regula-sweep-v1"
DONE, FAILED, PENDING, RUNNING = "done", "failed", "pending", "running"
DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")


# --------------------------------------------------------------------------------------------------
# Parsing


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` on ``sep`` outside brackets and quotes: ``"[1,2],3"`` -> ``["[1,2]", "3"]``."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def parse_seeds(spec: str) -> list[int]:
    """Seeds from ``"0-4"`` (inclusive range), ``"0,2,5"``, or a mix (``"0-2,7"``), in order, unique.

    An empty spec or range (``"5-3"``) or a non-integer raises :class:`ConfigError` (one line).
    """
    seeds: list[int] = []
    for part in (p.strip() for p in str(spec).split(",")):
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if match:
            low, high = int(match.group(1)), int(match.group(2))
            if high < low:
                raise ConfigError(f"seed range {part!r} is empty (write LOW-HIGH with LOW <= HIGH)")
            seeds.extend(range(low, high + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise ConfigError(f"bad seed spec {spec!r}: expected a range like 0-4 or a list like 0,2,5")
    return list(dict.fromkeys(seeds))


def closest_keys(key: str, valid: Sequence[str]) -> str:
    """The closest valid keys for an error message (as config overrides report them)."""
    close = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.5)
    if not close:
        tail = key.rsplit(".", 1)[-1]
        close = [v for v in valid if v.rsplit(".", 1)[-1].startswith(tail[:3])][:3]
    return ", ".join(close) if close else "see train.py PRESET --show for the valid keys"


def validate_keys(config: Any, keys: Sequence[str], what: str = "grid") -> None:
    """ConfigError naming the closest keys when a key is not a field of ``config`` (a bare key may name
    a unique leaf, as overrides allow). ``seed`` is refused: seeds come from the seed spec."""
    fields = flat_fields(config)
    leaves = {name.rsplit(".", 1)[-1] for name in fields}
    for key in keys:
        if key.rsplit(".", 1)[-1] == "seed":
            raise ConfigError(f"{what} key {key!r}: give seeds with --seeds, not as a {what} key")
        parent = key.rpartition(".")[0]
        dict_entry = parent in fields and isinstance(fields[parent][0], dict)  # env.options.NAME
        if key not in fields and key not in leaves and not dict_entry:
            raise ConfigError(f"unknown {what} key {key!r}; closest: {closest_keys(key, list(fields))}")


def parse_grid(specs: Sequence[str], config: Any | None = None) -> list[dict[str, str]]:
    """Grid points from ``["agent.actor_lr=1e-4,3e-4", "agent.gamma=0.98,0.99"]``: the cartesian product.

    Returns ``[{key: raw_value, ...}, ...]`` (one dict per point, keys in spec order; no spec gives one
    empty point). Values are split on top-level commas, so ``agent.hidden=[64,64],[256,256]`` is two
    values. With ``config``, every key is checked against it and every value is parsed by the field's
    type (ConfigError naming the key on a typo or a bad value).
    """
    axes: list[tuple[str, list[str]]] = []
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"grid {spec!r} is not of the form key=value1,value2")
        key, raw = spec.split("=", 1)
        key = key.strip()
        values = [v for v in split_top_level(raw) if v]
        if not key or not values:
            raise ConfigError(f"grid {spec!r} has no key or no values")
        if any(key == k for k, _ in axes):
            raise ConfigError(f"grid key {key!r} given twice; list all its values in one --grid")
        axes.append((key, values))
    if config is not None:
        validate_keys(config, [k for k, _ in axes])
        for key, values in axes:
            for value in values:
                apply_overrides(config, [f"{key}={value}"])
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def _parse_number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"search space {spec!r}: {text!r} is not a number") from None


def _parse_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip("'\"")


def parse_distribution(spec: str, key: str, text: str) -> tuple[str, list[Any]]:
    """``"loguniform(1e-5,1e-3)"`` -> ``("loguniform", [1e-05, 0.001])``; ConfigError on anything else."""
    match = re.fullmatch(r"\s*(\w+)\s*\((.*)\)\s*", text)
    if not match or match.group(1) not in DISTRIBUTIONS:
        raise ConfigError(f"search space {spec!r}: expected one of {', '.join(d + '(...)' for d in DISTRIBUTIONS)}")
    kind, args = match.group(1), [a for a in split_top_level(match.group(2)) if a]
    return _checked_distribution(spec, kind, args)


def _checked_distribution(spec: str, kind: str, args: list[Any]) -> tuple[str, list[Any]]:
    if kind == "choice":
        if not args:
            raise ConfigError(f"search space {spec!r}: choice needs at least one value")
        return kind, [_parse_literal(a) if isinstance(a, str) else a for a in args]
    if len(args) != 2:
        raise ConfigError(f"search space {spec!r}: {kind} takes two bounds (low, high)")
    low, high = (_parse_number(str(a), spec) for a in args)
    if not low < high:
        raise ConfigError(f"search space {spec!r}: low bound must be below the high bound")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"search space {spec!r}: loguniform bounds must be positive")
    if kind == "randint":
        if not (low.is_integer() and high.is_integer()):
            raise ConfigError(f"search space {spec!r}: randint bounds must be integers")
        return kind, [int(low), int(high)]
    return kind, [low, high]


def parse_space(specs: Sequence[str] = (), json_file: str | os.PathLike | None = None) -> dict[str, tuple[str, list]]:
    """A search space ``{key: (kind, args)}`` from ``key=dist(args)`` strings and/or a JSON file.

    The file maps keys to either the same string (``"loguniform(1e-5,1e-3)"``) or a one-entry object
    (``{"loguniform": [1e-5, 1e-3]}``, ``{"choice": [64, 128]}``). ``randint(low, high)`` excludes high.
    """
    space: dict[str, tuple[str, list]] = {}
    if json_file is not None:
        try:
            data = json.loads(Path(json_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{json_file}: unreadable search space ({type(e).__name__}: {e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{json_file}: a search space is a JSON object of key -> distribution")
        for key, value in data.items():
            spec = f"{key}={json.dumps(value)}"
            if isinstance(value, str):
                space[key] = parse_distribution(spec, key, value)
            elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS:
                kind, args = next(iter(value.items()))
                space[key] = _checked_distribution(spec, kind, list(args) if isinstance(args, list) else [args])
            else:
                raise ConfigError(f"{json_file}: {key}: expected 'dist(args)' or {{\"dist\": [args]}}")
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"search space {spec!r} is not of the form key=dist(args)")
        key, text = spec.split("=", 1)
        space[key.strip()] = parse_distribution(spec, key.strip(), text)
    return space


def format_value(value: Any) -> str:
    """A sampled value as an override's right-hand side (JSON for lists and dicts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def validate_space(config: Any, space: dict[str, tuple[str, list]]) -> None:
    """Keys must be config fields and each distribution's values must parse as the field's type."""
    validate_keys(config, list(space), what="search space")
    for key, (kind, args) in space.items():
        for value in args if kind == "choice" else [args[0]]:
            apply_overrides(config, [f"{key}={format_value(value)}"])


# --------------------------------------------------------------------------------------------------
# Manifest


@dataclasses.dataclass
class Trial:
    """One run of a sweep: its id, seed, the grid point's overrides, its run directory (relative to the
    sweep directory) and status (pending, running, done, failed; a search trial that ASHA ended early is
    stopped). ``launches`` records each start or resume (``{"mode", "from_step", "returncode"}``) so a
    user can see what a rerun did."""

    id: str
    seed: int
    overrides: list[str]
    run_dir: str
    status: str = PENDING
    returncode: int | None = None
    launches: list[dict] = dataclasses.field(default_factory=list)


def trial_id(seed: int, point_index: int | None) -> str:
    """``seed3`` without a grid, ``g01_seed3`` for grid point 1."""
    return f"seed{seed}" if point_index is None else f"g{point_index:02d}_seed{seed}"


def plan_trials(seeds: Sequence[int], grid: Sequence[dict[str, str]]) -> list[Trial]:
    """Every (grid point, seed) as a Trial, grid-point major (all seeds of point 0 first)."""
    points = list(grid) or [{}]
    with_grid = any(points)
    trials = []
    for index, point in enumerate(points):
        overrides = [f"{k}={v}" for k, v in point.items()]
        for seed in seeds:
            tid = trial_id(seed, index if with_grid else None)
            trials.append(Trial(tid, int(seed), overrides, f"trials/{tid}"))
    return trials


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file beside ``path`` and rename it over ``path`` (a kill never leaves half a file)."""
    write_atomic(path, lambda handle: handle.write(json.dumps(data, indent=2) + "\n"), binary=False)


@dataclasses.dataclass
class Manifest:
    """``SWEEP/manifest.json``: what the sweep is (kind, preset, base overrides) and its trials."""

    sweep_dir: Path
    preset: str
    overrides: list[str]
    trials: list[Trial]
    kind: str = "sweep"
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.sweep_dir / MANIFEST

    def save(self) -> None:
        data = {
            "format": FORMAT,
            "kind": self.kind,
            "preset": self.preset,
            "overrides": self.overrides,
            **self.extra,
            "trials": [dataclasses.asdict(t) for t in self.trials],
        }
        write_json_atomic(self.path, data)

    @classmethod
    def load(cls, sweep_dir: Path) -> Manifest:
        path = Path(sweep_dir) / MANIFEST
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            trials = [Trial(**t) for t in data["trials"]]
            extra = {k: v for k, v in data.items() if k not in ("format", "kind", "preset", "overrides", "trials")}
            kind = data.get("kind", "sweep")
            return cls(Path(sweep_dir), data["preset"], list(data["overrides"]), trials, kind, extra)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}: not a readable sweep manifest ({type(e).__name__}: {e})") from None


def open_sweep(sweep_dir: Path, preset: str | None, overrides: list[str], trials: list[Trial]) -> Manifest:
    """The sweep in ``sweep_dir``: a new manifest, or the existing one with any new trials appended.

    A directory made for another preset or other base overrides is refused (ConfigError, one line), as is
    a non-empty directory without a manifest. ``preset=None`` takes the preset from the manifest.
    """
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / MANIFEST).is_file():
        manifest = Manifest.load(sweep_dir)
        if manifest.kind != "sweep":
            raise ConfigError(f"{sweep_dir} holds a {manifest.kind}, not a sweep; choose another --sweep-dir")
        if preset is not None and preset != manifest.preset:
            raise ConfigError(
                f"{sweep_dir} is a sweep of preset {manifest.preset!r}, not {preset!r}; choose another --sweep-dir"
            )
        if overrides != manifest.overrides and (preset is not None or overrides):
            raise ConfigError(
                f"{sweep_dir} was made with overrides {' '.join(manifest.overrides) or '(none)'}; "
                "rerun with the same overrides or choose another --sweep-dir"
            )
        known = {t.id: t for t in manifest.trials}
        for trial in trials:
            if trial.id not in known:
                manifest.trials.append(trial)
            elif known[trial.id].overrides != trial.overrides:
                raise ConfigError(
                    f"{sweep_dir}: trial {trial.id} was made with {' '.join(known[trial.id].overrides)}, "
                    f"not {' '.join(trial.overrides)}; list the grid in the same order or choose another --sweep-dir"
                )
        return manifest
    if preset is None:
        raise ConfigError(f"{sweep_dir / MANIFEST}: missing; give a preset to start a new sweep")
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"{sweep_dir} exists and is not a sweep directory; choose another --sweep-dir")
    return Manifest(sweep_dir, preset, list(overrides), list(trials))


def has_checkpoint(run_dir: Path) -> int | None:
    """The newest checkpoint step in ``run_dir/checkpoints`` (None when there is none)."""
    from agents.engine.checkpoint import Checkpointer

    latest = Checkpointer(run_dir).latest()
    return None if latest is None else int(re.search(r"(\d+)", latest.name).group(1))


def trial_launch(manifest: Manifest, trial: Trial, threads: int | None) -> tuple[str, int, list[str]]:
    """``(mode, from_step, argv)`` of the next launch of ``trial``: ``resume`` from its newest checkpoint,
    else ``start`` (after clearing a run directory left without a checkpoint, which train.py refuses).

    ``threads`` adds ``train.threads=T`` to a start unless the overrides set it (a resume keeps the
    run's own thread count from its config.json).
    """
    run_dir = manifest.sweep_dir / trial.run_dir
    step = has_checkpoint(run_dir) if run_dir.is_dir() else None
    train_py = str(ROOT / "train.py")
    if step is not None:
        return "resume", step, [sys.executable, train_py, "--resume", str(run_dir)]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    argv = [sys.executable, train_py, manifest.preset, "--run-dir", str(run_dir), f"seed={trial.seed}"]
    argv += [*manifest.overrides, *trial.overrides]
    if threads and not any(o.split("=", 1)[0] in ("threads", "train.threads") for o in argv[5:]):
        argv.append(f"train.threads={threads}")
    return "start", 0, argv


# --------------------------------------------------------------------------------------------------
# Child processes


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL us when the parent dies (a SIGKILLed driver cannot
    clean up), and exit at once if the parent is already gone."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: rely on the process-group cleanup in the driver
    if os.getppid() == 1:
        os._exit(1)


def child_env(threads: int | None) -> dict[str, str]:
    """The child's environment: thread pools limited to the trial's share of the cores."""
    env = dict(os.environ)
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def spawn(argv: list[str], log_path: Path, threads: int | None) -> subprocess.Popen:
    """Start ``argv`` in ``ROOT`` as the leader of a new process group, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(threads),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def kill_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM the child's process group, give the leader ``grace_s`` to exit, then SIGKILL whatever is
    left of the group (a worker that ignored SIGTERM or outlived its leader) and reap the leader."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class _Terminated(Exception):
    """SIGTERM turned into an exception so the runner's cleanup runs."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _progress_bar(total: int, initial: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="trial", file=sys.stderr, disable=not enabled)


def run_local(
    manifest: Manifest, trials: list[Trial], *, parallel: int, threads: int | None, progress: bool = True
) -> None:
    """Run ``trials`` as local child processes, at most ``parallel`` at a time; updates the manifest as
    each starts and ends. On SIGINT, SIGTERM or any exception every running child's process group is
    killed and the exception propagates (their trials stay ``running``, so a rerun resumes them)."""
    queue = list(trials)
    running: dict[int, tuple[Trial, subprocess.Popen]] = {}
    failed = sum(t.status == FAILED for t in manifest.trials if t not in trials)
    done_before = sum(t.status == DONE for t in manifest.trials)
    bar = _progress_bar(len(manifest.trials), done_before, progress, "trials")
    bar.postfix_state = None  # redraw only when the counts change
    previous = None
    if threading_is_main():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        while queue or running:
            while queue and len(running) < parallel:
                trial = queue.pop(0)
                mode, step, argv = trial_launch(manifest, trial, threads)
                proc = spawn(argv, manifest.sweep_dir / "logs" / f"{trial.id}.log", threads)
                trial.status, trial.returncode = RUNNING, None
                trial.launches.append({"mode": mode, "from_step": step, "returncode": None})
                running[proc.pid] = (trial, proc)
                manifest.save()
            for pid, (trial, proc) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[pid]
                trial.returncode = code
                trial.launches[-1]["returncode"] = code
                trial.status = DONE if code == 0 else FAILED
                failed += code != 0
                manifest.save()
                bar.update(1)
                if code != 0:
                    log = manifest.sweep_dir / "logs" / f"{trial.id}.log"
                    bar.write(f"trial {trial.id} failed (exit {code}); see {log}")
            postfix = {"running": len(running), "failed": failed}
            if postfix != bar.postfix_state:
                bar.postfix_state = postfix
                bar.set_postfix(postfix)
            if running:
                time.sleep(0.2)
    finally:
        for _, proc in running.values():
            kill_group(proc)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        bar.close()


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# --------------------------------------------------------------------------------------------------
# Ray


def _import_tune():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("the Ray runner needs Ray Tune: pip install 'ray[tune]'") from None
    return ray, tune


def _wait_for_address(address: str, timeout_s: float) -> None:
    """ConfigError (one line) unless ``HOST:PORT`` of a Ray address accepts a TCP connection within
    ``timeout_s``; ``ray.init`` itself may retry for minutes against a dead address."""
    import socket

    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not of the form HOST:PORT or ray://HOST:PORT")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(2.0, timeout_s)):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ConfigError(f"no Ray cluster answers at {address} (waited {timeout_s:g} s)") from None
            time.sleep(0.5)


def init_ray(address: str | None, *, num_cpus: int | None = None, connect_timeout_s: float = 15.0):
    """Start a local Ray instance (``address=None``; workers import the suite from this source tree) or
    connect to the cluster at ``address``. Returns ``(ray, tune, started_here)``."""
    ray, tune = _import_tune()
    if ray.is_initialized():
        return ray, tune, False
    if address:
        _wait_for_address(address, connect_timeout_s)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot connect to Ray at {address}: {error_reason(e)}") from None
        return ray, tune, False
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
    )
    return ray, tune, True


def _tail_evals(metrics_path: Path, offset: int) -> tuple[list[tuple[int, float]], int]:
    """New ``(step, eval/mean_reward)`` pairs in a growing metrics.jsonl after byte ``offset``."""
    if not metrics_path.is_file():
        return [], offset
    with open(metrics_path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1  # a line being written stays for the next read
    found = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "eval/mean_reward" in row:
            found.append((int(row["step"]), float(row["eval/mean_reward"])))
    return found, offset + end


def _ray_trial(config: dict) -> None:
    """Ray Tune function trainable of a sweep: run the trial's command as a subprocess, report each
    evaluation it logs, and finally its exit code."""
    from ray import tune

    job = config["job"]
    proc = spawn(job["argv"], Path(job["log"]), job["threads"])
    metrics_path, offset = Path(job["run_dir"]) / "metrics.jsonl", 0
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            evals, offset = _tail_evals(metrics_path, offset)
            for step, value in evals:
                tune.report({"sweep_trial": job["id"], "step": step, "eval/mean_reward": value})
    finally:
        if proc.poll() is None:
            kill_group(proc)
    tune.report({"sweep_trial": job["id"], "returncode": proc.returncode})


def run_ray(
    manifest: Manifest,
    trials: list[Trial],
    *,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    threads: int | None = None,
    num_cpus: int | None = None,
    connect_timeout_s: float = 15.0,
    progress: bool = True,
) -> None:
    """Run ``trials`` as Ray Tune trials (same commands as :func:`run_local`); the manifest is updated
    from each trial's final report. ``threads`` defaults to ``ceil(cpus_per_trial)``."""
    ray, tune, started = init_ray(address, num_cpus=num_cpus, connect_timeout_s=connect_timeout_s)
    threads = threads or max(1, math.ceil(cpus_per_trial))
    jobs = []
    for trial in trials:
        mode, step, argv = trial_launch(manifest, trial, threads)
        trial.status, trial.returncode = RUNNING, None
        trial.launches.append({"mode": mode, "from_step": step, "returncode": None, "runner": "ray"})
        run_dir = manifest.sweep_dir / trial.run_dir
        log = manifest.sweep_dir / "logs" / f"{trial.id}.log"
        jobs.append({"id": trial.id, "argv": argv, "run_dir": str(run_dir), "log": str(log), "threads": threads})
    manifest.save()
    by_id = {t.id: t for t in trials}
    done_before = sum(t.status == DONE for t in manifest.trials)
    bar = _progress_bar(len(manifest.trials), done_before, progress, "trials (ray)")

    class ManifestCallback(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "returncode" not in result:
                return
            entry = by_id[result["sweep_trial"]]
            entry.returncode = int(result["returncode"])
            entry.status = DONE if entry.returncode == 0 else FAILED
            entry.launches[-1]["returncode"] = entry.returncode
            manifest.save()
            bar.update(1)

    resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(_ray_trial, resources),
        param_space={"job": tune.grid_search(jobs)},
        run_config=tune.RunConfig(
            name=f"sweep_{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str((manifest.sweep_dir / "ray").resolve()),
            callbacks=[ManifestCallback()],
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        bar.close()
        if started:
            ray.shutdown()
    # fit() returned normally: a trial that never reported an exit code raised inside Ray (see its
    # Tune error file under SWEEP/ray); on an interrupt we never get here and the rerun resumes it.
    for trial in trials:
        if trial.status == RUNNING:
            trial.status = FAILED
    manifest.save()


# --------------------------------------------------------------------------------------------------
# Seed-batched (one process)


def batched_configs(manifest: Manifest, trials: list[Trial], threads: int | None, progress: bool) -> list:
    """The RunConfig of each trial as ``trial_launch`` would start it: preset, base overrides, the
    trial's overrides, ``seed=K`` (and ``train.threads`` / ``train.progress`` when given)."""
    from agents.registry import get_preset

    configs = []
    for trial in trials:
        items = [*manifest.overrides, *trial.overrides, f"seed={trial.seed}"]
        if threads and not any(o.split("=", 1)[0] in ("threads", "train.threads") for o in items):
            items.append(f"train.threads={threads}")
        if not progress:
            items.append("train.progress=false")
        configs.append(apply_overrides(get_preset(manifest.preset), items))
    return configs


def checkpoint_steps(run_dir: Path) -> dict[int, Path]:
    """``{step: file}`` of the checkpoints in ``run_dir/checkpoints`` (empty when there are none)."""
    from agents.engine.checkpoint import Checkpointer

    return {int(re.search(r"(\d+)", p.name).group(1)): p for p in Checkpointer(run_dir).existing()}


def batched_resume(manifest: Manifest, trials: list[Trial]) -> tuple[int, list[Path] | bool]:
    """``(from_step, resume)`` of a seed-batched launch: ``(0, False)`` when no trial has a checkpoint
    (run directories left without one are cleared, as :func:`trial_launch` does), else the newest step
    at which every trial has a checkpoint and those K files. ConfigError (one line) when some trials
    have checkpoints and others none, or when they share no step."""
    run_dirs = [manifest.sweep_dir / t.run_dir for t in trials]
    found = [checkpoint_steps(d) if d.is_dir() else {} for d in run_dirs]
    if not any(found):
        for run_dir in run_dirs:
            if run_dir.exists():
                shutil.rmtree(run_dir)
        return 0, False
    missing = [t.id for t, steps in zip(trials, found) if not steps]
    if missing:
        raise ConfigError(
            f"--batched resumes all seeds from one step, but {', '.join(missing)} have no checkpoint; resume "
            "the others with train.py --resume, or start a new --sweep-dir"
        )
    common = set.intersection(*(set(steps) for steps in found))
    newest = {t.id: max(steps) for t, steps in zip(trials, found)}
    if not common:
        listed = ", ".join(f"{tid} at {step:,}" for tid, step in newest.items())
        raise ConfigError(f"--batched: the trials share no checkpoint step (newest: {listed}); resume them one by one")
    step = max(common)
    if any(s != step for s in newest.values()):
        listed = ", ".join(f"{tid} {s:,}" for tid, s in newest.items())
        print(f"note: --batched resumes every seed from step {step:,}, the newest they all have ({listed})")
    return step, [steps[step] for steps in found]


def run_batched(manifest: Manifest, trials: list[Trial], *, threads: int | None = None, progress: bool = True) -> None:
    """Train ``trials`` (the seeds of one config) in this process, their updates stacked
    (:func:`agents.engine.run.train_batched`); each trial's run directory is an ordinary run. Resumes
    all of them from the newest checkpoint step they share (:func:`batched_resume`). The manifest says
    ``batched-start`` / ``batched-resume`` for each launch; an error in any seed fails them all."""
    from agents.engine.agent import NonFiniteLossError
    from agents.engine.checkpoint import CheckpointError
    from agents.registry import run_training_batched

    configs = batched_configs(manifest, trials, threads, progress)
    step, resume = batched_resume(manifest, trials)
    mode = "batched-resume" if resume else "batched-start"
    for trial in trials:
        trial.status, trial.returncode = RUNNING, None
        trial.launches.append({"mode": mode, "from_step": step, "returncode": None})
    manifest.save()

    def finish(code: int) -> None:
        for trial in trials:
            trial.status, trial.returncode = (DONE if code == 0 else FAILED), code
            trial.launches[-1]["returncode"] = code
        manifest.save()

    run_dirs = [manifest.sweep_dir / t.run_dir for t in trials]
    try:
        run_training_batched(configs, run_dirs, resume=resume)
    except (ConfigError, CheckpointError) as e:
        finish(2)
        raise ConfigError(str(e)) from None
    except NonFiniteLossError as e:
        finish(3)
        print(f"error: {e}", file=sys.stderr)
        return
    finish(0)


# --------------------------------------------------------------------------------------------------
# Sweep entry point


def run_sweep(
    preset: str | None,
    overrides: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    grid: Sequence[str] = (),
    sweep_dir: str | os.PathLike | None = None,
    *,
    ray: bool = False,
    ray_address: str | None = None,
    parallel: int | None = None,
    threads: int | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    connect_timeout_s: float = 15.0,
    progress: bool = True,
    batched: bool = False,
) -> Manifest:
    """Create or resume the sweep in ``sweep_dir`` and run its unfinished trials.

    ``preset`` + ``overrides`` are the base config, ``seeds`` the seeds, ``grid`` the ``key=v1,v2`` specs.
    Local runner: ``parallel`` trials at once (default: one per core, at most the number of trials) with
    ``threads`` torch threads each (default ``cores // parallel``). ``ray`` or ``ray_address`` runs the
    trials on Ray instead. ``batched`` trains the seeds in this process with their updates stacked
    (:func:`run_batched`; local only, no grid). Returns the manifest; raises ConfigError (one line) on
    bad input.
    """
    from agents.registry import family_of, get_preset

    if not seeds:
        raise ConfigError("no seeds given")
    overrides = list(overrides)
    if sweep_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        sweep_dir = Path("sweeps") / f"{(preset or 'sweep').replace('/', '-')}_{stamp}"
    # Absolute: trials run with the source tree as their working directory (and on Ray, anywhere).
    sweep_dir = Path(sweep_dir).resolve()
    if preset is None and (sweep_dir / MANIFEST).is_file():
        preset = Manifest.load(sweep_dir).preset
        overrides = overrides or Manifest.load(sweep_dir).overrides
    if preset is None:
        raise ConfigError("give a preset (or the directory of an existing sweep to resume)")
    base = apply_overrides(get_preset(preset), overrides)
    for item in overrides:
        if item.split("=", 1)[0].strip().rsplit(".", 1)[-1] == "seed":
            raise ConfigError(f"override {item!r}: give seeds with --seeds")
    points = parse_grid(grid, base)
    if batched:  # refused before the sweep directory is written
        if ray or ray_address:
            raise ConfigError("--batched trains the seeds in this process; it does not combine with --ray")
        if grid:
            raise ConfigError("--batched trains the seeds of one config; it does not combine with --grid")
        from agents.engine.run import check_batchable

        check_batchable(family_of(base.algo), [apply_overrides(base, [f"seed={seed}"]) for seed in seeds])
    created = next((p for p in reversed([sweep_dir, *sweep_dir.parents]) if not p.exists()), None)
    manifest = open_sweep(sweep_dir, preset, overrides, plan_trials(seeds, points))
    manifest.extra.setdefault("created", time.strftime("%Y-%m-%d %H:%M:%S"))
    manifest.save()
    if progress:
        print(f"sweep directory: {sweep_dir} ({len(manifest.trials)} trials)", file=sys.stderr)
    todo = [t for t in manifest.trials if t.status != DONE]
    if not todo:
        return manifest
    if batched:
        run_batched(manifest, todo, threads=threads, progress=progress)
    elif ray or ray_address:
        try:
            run_ray(
                manifest,
                todo,
                address=ray_address,
                cpus_per_trial=cpus_per_trial,
                gpus_per_trial=gpus_per_trial,
                threads=threads,
                connect_timeout_s=connect_timeout_s,
                progress=progress,
            )
        except ConfigError:  # refused before any trial started (no Ray at the address): leave nothing
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
    else:
        cores = available_cores()
        parallel = max(1, min(parallel or cores, len(todo)))
        threads = threads or max(1, cores // parallel)
        run_local(manifest, todo, parallel=parallel, threads=threads, progress=progress)
    return manifest


# --------------------------------------------------------------------------------------------------
# Search


def tune_space(space: dict[str, tuple[str, list]], tune) -> dict[str, Any]:
    """Our ``{key: (kind, args)}`` as Ray Tune distributions (Optuna's searcher converts them)."""
    makers = {
        "loguniform": lambda a: tune.loguniform(*a),
        "uniform": lambda a: tune.uniform(*a),
        "randint": lambda a: tune.randint(*a),
        "choice": lambda a: tune.choice(a),
    }
    return {key: makers[kind](args) for key, (kind, args) in space.items()}


def search_config(preset: str, overrides: Sequence[str], params: dict[str, Any], seed: int, threads: int):
    """The RunConfig of one search trial: preset, base overrides, sampled params, seed and threads."""
    from agents.registry import get_preset

    items = [*overrides, *(f"{k}={format_value(v)}" for k, v in params.items()), f"seed={seed}"]
    config = apply_overrides(get_preset(preset), items)
    if "threads" in {name.rsplit(".", 1)[-1] for name in flat_fields(config)}:
        config = apply_overrides(config, [f"threads={threads}"])
    return config


def make_tune_logger_factory(run_dir: Path, total_steps: int, report):
    """A ``logger_factory`` for :func:`agents.engine.run.train` whose Logger also calls
    ``report({"step", "eval/mean_reward"})`` whenever a logged row holds an evaluation."""
    from agents.engine.logger import Logger

    class TuneLogger(Logger):
        def log(self, step, metrics):
            values = super().log(step, metrics)
            if "eval/mean_reward" in values:
                report({"step": int(step), "eval/mean_reward": values["eval/mean_reward"]})
            return values

    return lambda: TuneLogger(run_dir, total_steps, 0, progress=False)


def _search_trial(config: dict) -> None:
    """Ray Tune function trainable of a search: train in-process, reporting each evaluation."""
    import torch
    from ray import tune

    from agents.registry import run_training as train

    job = config["job"]
    params = {k: v for k, v in config.items() if k != "job"}
    run_config = search_config(job["preset"], job["overrides"], params, job["seed"], job["threads"])
    torch.set_num_threads(job["threads"])
    tid = tune.get_context().get_trial_id()
    run_dir = Path(job["sweep_dir"]) / "trials" / tid
    report = lambda metrics: tune.report({**metrics, "search_trial": tid})
    factory = make_tune_logger_factory(run_dir, run_config.train.total_steps, report)
    train(run_config, run_dir, logger_factory=factory)


def run_search(
    preset: str,
    overrides: Sequence[str] = (),
    space: dict[str, tuple[str, list]] | None = None,
    sweep_dir: str | os.PathLike | None = None,
    *,
    num_samples: int = 16,
    time_budget_s: float | None = None,
    seed: int = 0,
    search_seed: int = 0,
    metric: str = "eval/mean_reward",
    grace_steps: int | None = None,
    reduction_factor: float = 3.0,
    ray_address: str | None = None,
    parallel: int | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    connect_timeout_s: float = 15.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Search ``space`` with Optuna TPE + ASHA on Ray Tune; write ``search.json`` and ``best_config.json``.

    Every trial trains ``preset`` + ``overrides`` + its sampled values with the run seed ``seed``
    (``search_seed`` seeds the TPE sampler). ASHA compares trials at env steps ``grace_steps * rf^k``
    (default grace: a quarter of ``train.total_steps``, at least one ``eval_every``). Returns
    ``{"best": {...}, "trials": [...]}``; ConfigError on bad input or when no trial reported ``metric``.
    """
    from agents.registry import get_preset

    space = dict(space or {})
    if not space:
        raise ConfigError("an empty search space: give --space key=dist(...) or --space-file")
    base = apply_overrides(get_preset(preset), list(overrides))
    validate_space(base, space)
    eval_every = getattr(base.train, "eval_every", 0)
    if not eval_every or eval_every <= 0:
        raise ConfigError("search needs evaluations to compare trials: set train.eval_every > 0")
    total = int(base.train.total_steps)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    sweep_dir = Path(sweep_dir or Path("sweeps") / f"search_{preset.replace('/', '-')}_{stamp}")
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"{sweep_dir} is not empty; a search needs a new --sweep-dir")
    sweep_dir = sweep_dir.resolve()
    # Ray first: a dead address is refused before anything is written
    ray, tune, started = init_ray(ray_address, num_cpus=None, connect_timeout_s=connect_timeout_s)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(sweep_dir, preset, list(overrides), [], kind="search", extra={"space": space})
    manifest.save()

    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    threads = max(1, math.ceil(cpus_per_trial))
    grace = grace_steps or max(eval_every, total // 4)
    job = {"preset": preset, "overrides": list(overrides), "seed": seed, "threads": threads}
    job["sweep_dir"] = str(sweep_dir)
    tune_config = tune.TuneConfig(
        metric=metric,
        mode="max",
        search_alg=OptunaSearch(seed=search_seed),
        scheduler=ASHAScheduler(
            time_attr="step", max_t=total, grace_period=min(grace, total), reduction_factor=reduction_factor
        ),
        num_samples=num_samples,
        time_budget_s=time_budget_s,
        max_concurrent_trials=parallel,
    )
    tuner = tune.Tuner(
        tune.with_resources(_search_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
        param_space={"job": job, **tune_space(space, tune)},
        tune_config=tune_config,
        run_config=tune.RunConfig(name="search", storage_path=str(sweep_dir / "ray"), verbose=1 if progress else 0),
    )
    try:
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()

    rows = []
    for result in grid:
        params = {k: v for k, v in (result.config or {}).items() if k != "job"}
        metrics = result.metrics or {}
        tid = metrics.get("search_trial") or (result.path.rsplit("/", 1)[-1] if result.path else "")
        rows.append(
            {
                "id": tid,
                "params": params,
                "step": metrics.get("step"),
                metric: metrics.get(metric),
                # ASHA ends weak trials early: they are "stopped", not done.
                "status": FAILED if result.error else DONE if (metrics.get("step") or 0) >= total else "stopped",
                "run_dir": f"trials/{tid}",
            }
        )
    manifest.trials = [
        Trial(r["id"], seed, [f"{k}={format_value(v)}" for k, v in r["params"].items()], r["run_dir"], r["status"])
        for r in rows
    ]
    manifest.save()
    scored = [r for r in rows if isinstance(r[metric], (int, float)) and math.isfinite(r[metric])]
    if not scored:
        write_json_atomic(sweep_dir / "search.json", {"metric": metric, "trials": rows, "best": None})
        raise ConfigError(f"no search trial reported {metric}; see {sweep_dir / 'ray'}")
    longest = max(r["step"] or 0 for r in scored)
    best = max((r for r in scored if (r["step"] or 0) == longest), key=lambda r: r[metric])
    best_config = search_config(preset, overrides, best["params"], seed, threads)
    write_json_atomic(sweep_dir / "best_config.json", to_dict(best_config))
    summary = {"metric": metric, "best": best, "trials": rows}
    write_json_atomic(sweep_dir / "search.json", summary)
    return summary


# --------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = command_line_parser(
        prog="python -m agents.experiments.sweep",
        description="Run a preset for several seeds and grid points, or search its hyperparameters.",
    )
    parser.add_argument("preset", nargs="?", help="preset name (omit to resume the sweep in --sweep-dir)")
    parser.add_argument("overrides", nargs="*", help="key=value settings shared by every trial")
    parser.add_argument("--seeds", default="0", help="seeds: a range 0-4 or a list 0,2,5 (default 0)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="values to sweep")
    parser.add_argument("--sweep-dir", metavar="DIR", help="the sweep directory (rerun on it to resume)")
    parser.add_argument("--parallel", type=int, help="trials at once (local: default one per core)")
    parser.add_argument("--threads", type=int, help="torch threads per trial (default cores // parallel)")
    parser.add_argument("--ray", action="store_true", help="run the trials on a Ray instance started here")
    parser.add_argument("--ray-address", metavar="ADDR", help="run the trials on the Ray cluster at ADDR")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="Ray: CPUs reserved per trial")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="Ray: GPUs (fraction ok) per trial")
    parser.add_argument("--search", action="store_true", help="hyperparameter search (Optuna TPE + ASHA)")
    parser.add_argument("--space", action="append", default=[], metavar="KEY=DIST(ARGS)", help="search space entry")
    parser.add_argument("--space-file", metavar="JSON", help="search space as a JSON object")
    parser.add_argument("--samples", type=int, default=16, help="search: number of trials")
    parser.add_argument("--time-budget", type=float, help="search: stop starting trials after this many seconds")
    parser.add_argument(
        "--batched",
        action="store_true",
        help="train the seeds in one process with their updates stacked (SAC only; local, no --grid/--ray/--search)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: 0 when every trial finished, 1 when some failed, 2 on bad input, 130 on interrupt."""
    args = build_parser().parse_intermixed_args(sys.argv[1:] if argv is None else list(argv))
    if args.preset is not None and "=" in args.preset:
        args.overrides.insert(0, args.preset)
        args.preset = None
    try:
        if args.search:
            if args.batched:
                raise ConfigError("--batched trains the seeds of one config; it does not combine with --search")
            if args.preset is None:
                raise ConfigError("--search needs a preset")
            space = parse_space(args.space, args.space_file)
            summary = run_search(
                args.preset,
                args.overrides,
                space,
                args.sweep_dir,
                num_samples=args.samples,
                time_budget_s=args.time_budget,
                seed=parse_seeds(args.seeds)[0],
                ray_address=args.ray_address,
                parallel=args.parallel,
                cpus_per_trial=args.cpus_per_trial,
                gpus_per_trial=args.gpus_per_trial,
                progress=not args.no_progress,
            )
            best = summary["best"]
            print(f"best trial {best['id']}: {summary['metric']} {best[summary['metric']]:.4g} at step {best['step']}")
            print("  " + " ".join(f"{k}={format_value(v)}" for k, v in best["params"].items()))
            return 0
        manifest = run_sweep(
            args.preset,
            args.overrides,
            parse_seeds(args.seeds),
            args.grid,
            args.sweep_dir,
            ray=args.ray,
            ray_address=args.ray_address,
            parallel=args.parallel,
            threads=args.threads,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            progress=not args.no_progress,
            batched=args.batched,
        )
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated):
        where = f" {args.sweep_dir}" if args.sweep_dir else ""
        print(f"\ninterrupted; rerun the same command{where} to resume the unfinished trials", file=sys.stderr)
        return 130
    failed = [t.id for t in manifest.trials if t.status != DONE]
    print(f"sweep {manifest.sweep_dir}: {len(manifest.trials) - len(failed)} of {len(manifest.trials)} trials done")
    if failed:
        print(f"not done: {', '.join(failed)} (logs in {manifest.sweep_dir / 'logs'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
