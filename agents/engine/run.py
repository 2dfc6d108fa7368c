"""The runner: the one place that writes a run directory (config.json, logger, checkpoints) and resumes.

``train(config, run_dir)`` starts a run; ``train(config, run_dir, resume=True)`` continues the one in
``run_dir`` from its newest checkpoint. On CPU, K steps + resume + K steps equal 2K steps straight:
the checkpoint carries the agent (with optimizers), replay buffer, collector, env simulator state
and every random generator.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.engine.allocator import retain_freed_memory
from agents.engine.buffers import TransitionBuffer
from agents.engine.checkpoint import Checkpointer, CheckpointError
from agents.engine.collect import Collector
from agents.engine.config import ConfigError, LoopConfig, RunConfig, error_reason, from_dict, to_dict
from agents.engine.evaluation import run_episodes, summarize
from agents.engine.family import Family
from agents.engine.logger import Logger
from agents.engine.loops import Session, off_policy, restore_session
from envs import make_vec_env
from envs.base import BoxSpec, DiscreteSpec

CONFIG_FILE = "config.json"


def git_commit() -> str:
    """The source tree's commit (with ``+dirty`` for local changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def default_run_dir(config: RunConfig, root: Path = Path("runs")) -> Path:
    """``runs/<algo>_<env>_seed<k>_<YYYYmmdd-HHMMSS>``."""
    env = config.env.id.replace(":", "-").replace("/", "-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return root / f"{config.algo.replace('/', '-')}_{env}_seed{config.train.seed}_{stamp}"


def write_config(config: RunConfig, run_dir: Path) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        suite_version = version("regula")
    except PackageNotFoundError:  # a source tree that was never installed
        suite_version = "unknown"
    data = {"config": to_dict(config), "version": suite_version, "git_commit": git_commit(), "torch": torch.__version__}
    (run_dir / CONFIG_FILE).write_text(json.dumps(data, indent=2) + "\n")


def read_config(run_dir: Path) -> RunConfig:
    """The run's resolved config; ConfigError naming the file on any problem."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise ConfigError(f"{path}: missing; is {run_dir} a run directory made by train.py?")
    try:
        data = json.loads(path.read_text())
        return from_dict(RunConfig, data["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable run config ({type(e).__name__}: {e})") from None


def read_config_file(path: Path) -> RunConfig:
    """A RunConfig from a JSON file: ``to_dict`` of a config (a search's best_config.json) or a
    run's config.json; ConfigError naming the file on any problem."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = json.loads(path.read_text())
        data = data.get("config", data)
        missing = [k for k in ("algo", "env", "train", "agent") if k not in data]
        if missing:
            raise KeyError(f"missing {', '.join(missing)}")
        return from_dict(RunConfig, data)
    except (json.JSONDecodeError, KeyError, TypeError, ImportError, AttributeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: not a regula config ({reason})") from None


AUTO_THREADS = 1  # train.threads=0: one torch thread (docs/benchmarks.md, "Threads under load")


def resolve_threads(threads: int) -> int:
    """``train.threads`` as a thread count: 0 (auto) is :data:`AUTO_THREADS`.

    The suite's networks are small (256x256, batch 256): on cores shared with other jobs, OpenMP's
    workers collapse a multi-threaded run (measured 8.5x slower for two default-thread runs side by
    side on 2 cores, 10x for two 2-thread updates). So auto is one thread, which has no OpenMP workers.
    More threads are for a machine of the run's own: there train.py / evaluate.py let idle workers spin
    ~0.2 ms (``GOMP_SPINCOUNT=20000``, unless the environment chose; OpenMP reads it when torch is first
    imported), which keeps a 2-thread update 1.4x one thread's rate, where a passive wait made it slower.
    """
    return threads if threads > 0 else AUTO_THREADS


def prepare_process(cfg: LoopConfig) -> None:
    """Process settings a run trains under: ``train.threads`` torch threads, freed tensors kept in the
    process rather than page-faulted back at every update (:mod:`agents.engine.allocator`),
    ``train.flush_denormal``: subnormal floats flushed to zero (the CPU's FTZ/DAZ modes; they belong
    to the calling thread and the threads it starts afterwards, and OpenMP's pool is started at the
    first parallel op, which comes later in a training process), and ``train.matmul_precision``."""
    torch.set_num_threads(resolve_threads(cfg.threads))
    retain_freed_memory()
    torch.set_flush_denormal(cfg.flush_denormal)
    torch.set_float32_matmul_precision(cfg.matmul_precision)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def transition_fields(obs_spec, action_spec) -> dict:
    """Replay field spec for one transition per env step.

    Single-agent: obs ``obs_spec.shape``, action ``action_spec.shape``, reward ``()``. Multi-agent with
    continuous actions (obs ``[agents, D]``, Box actions ``[agents, A]``, see
    :func:`agents.engine.collect.multi_agent_box`): the same obs and action fields and a reward per agent,
    ``[agents]``; the collector stores an env's per-agent rewards (``reward='agent'``) as they are and copies
    a team reward to every agent, so the field's shape follows from the specs alone.
    """
    from agents.engine.collect import multi_agent_box

    if isinstance(action_spec, DiscreteSpec):
        action_field = (action_spec.shape, torch.int64)
    else:
        action_field = (action_spec.shape, torch.float32)
    obs_field = (obs_spec.shape, torch.float32) if isinstance(obs_spec, BoxSpec) else ((), torch.int64)
    reward_shape = (action_spec.shape[0],) if multi_agent_box(obs_spec, action_spec) else ()
    return {
        "obs": obs_field,
        "action": action_field,
        "reward": (reward_shape, torch.float32),
        "next_obs": obs_field,
        "terminated": ((), torch.bool),
    }


def make_evaluator(config: RunConfig, device: torch.device, extra=None):
    """``evaluate(agent, step) -> {"eval/mean_reward": ..., ...}`` on its own env, greedy policy.

    ``extra(agent, env, config, step) -> dict`` (an algorithm module's optional ``evaluation_metrics``,
    e.g. ERC's Q-estimation bias) adds metrics measured on the same env after the greedy episodes.
    """
    cfg = config.train
    num = max(1, min(cfg.eval_episodes, 10))
    env = make_vec_env(
        config.env.id,
        num,
        device=device,
        seed=cfg.seed + 100_000,
        vectorization="sync",
        options=config.env.options,
        wrappers=config.env.wrappers,
    )

    def evaluate(agent, step: int) -> dict[str, float]:
        result = run_episodes(agent, env, cfg.eval_episodes, explore=False, step=step, seed=cfg.seed + 100_000)
        stats = summarize(result["returns"])
        metrics = {
            "eval/mean_reward": stats["mean_reward"],
            "eval/std_reward": stats["std_reward"],
            "eval/mean_ep_length": float(result["lengths"].float().mean()),
        }
        if extra is not None:
            metrics.update(extra(agent, env, config, step))
        return metrics

    return evaluate


def off_policy_session(family: Family):
    """The default ``build_session`` of a single-learner off-policy family: the run's env, the
    family's ``build_agent`` learner, a transition buffer (prioritized when ``train.prioritized``), a
    collector and the greedy evaluator (with the family's ``evaluation_metrics``)."""

    def build(config: RunConfig, device: torch.device) -> Session:
        cfg = config.train
        env = make_run_env(config, device)
        agent = family.build_agent(config, env.obs_spec, env.action_spec, device)
        return Session(
            config=config,
            env=env,
            logger=None,
            checkpointer=None,
            evaluate=make_evaluator(config, device, family.evaluation_metrics),
            components={
                "agent": agent,
                "buffer": make_transition_buffer(cfg, transition_fields(env.obs_spec, env.action_spec), device),
                "collector": Collector(env, agent, seed=cfg.seed),
            },
        )

    return build


def make_transition_buffer(cfg, fields: dict, device, seed_offset: int = 0) -> TransitionBuffer:
    """The run's replay of ``fields``: ``min(buffer_size, total_steps)`` rows, sampling uniformly or,
    with ``train.prioritized``, through a prioritized sampler (its beta ramp is set by the loop,
    :func:`agents.engine.loops.resolve_beta`)."""
    from agents.engine.loops import run_sampler

    capacity = min(cfg.buffer_size, max(cfg.total_steps, 1))
    return TransitionBuffer(
        fields, capacity, device=device, seed=cfg.seed + seed_offset, sampler=run_sampler(cfg, capacity, device)
    )


def resume_checkpoint(checkpointer: Checkpointer, resume: bool | Path, device) -> tuple[Path | None, dict | None]:
    """``(path, data)`` of the checkpoint a run resumes from, ``(None, None)`` for a fresh start.
    ``resume``: False, True (the newest usable checkpoint) or a path (that file, which must load)."""
    if not resume:
        return None, None
    chosen = Path(resume) if isinstance(resume, (str, Path)) else None
    return checkpointer.load(chosen, map_location=device)


def open_session(family: Family, config: RunConfig, device, checkpoint: dict | None = None, checkpoint_path=None):
    """Seed every generator with ``train.seed``, build the family's session and restore ``checkpoint``
    into it (CheckpointError naming ``checkpoint_path`` when it does not fit; the session is closed)."""
    seed_everything(config.train.seed)
    session = (family.build_session or off_policy_session(family))(config, device)
    if checkpoint is not None:
        try:
            restore_session(session, checkpoint)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
            close_session(session)
            reason = error_reason(e)
            raise CheckpointError(f"{checkpoint_path}: does not match this run's config ({reason})") from None
    return session


def open_run_dir(session: Session, run_dir: Path, checkpointer: Checkpointer, logger_factory=None, progress=None):
    """Write ``run_dir`` (config.json) and give the session its checkpointer and logger (a
    :class:`Logger` from ``session.step``, with a progress bar when ``progress``, default
    ``train.progress``). Called once the session is built and restored: nothing changes before."""
    cfg = session.config.train
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(session.config, run_dir)
    session.checkpointer = checkpointer
    progress = cfg.progress if progress is None else progress
    make_logger = logger_factory or (lambda: Logger(run_dir, cfg.total_steps, session.step, progress=progress))
    session.logger = make_logger()


def close_session(session: Session) -> None:
    session.env.close()
    if session.close is not None:
        session.close()


def train(
    family: Family, config: RunConfig, run_dir: Path, *, resume: bool | Path = False, logger_factory=None
) -> Path:
    """Run (or resume) ``config`` in ``run_dir`` with ``family``'s session and loop. Returns ``run_dir``.

    The one place that writes a run directory. A resumed run is built and restored from its checkpoint
    before anything in ``run_dir`` changes, so a resume that does not fit (another network size, another
    env) fails with a CheckpointError naming the file and leaves the directory as it was.
    """
    if family.check is not None:
        family.check(config)
    cfg = config.train
    device = torch.device(cfg.device)
    prepare_process(cfg)
    run_dir = Path(run_dir)
    checkpointer = Checkpointer(run_dir, keep=cfg.keep_checkpoints)
    # resume True: the newest usable checkpoint; a path: that file (train.py --resume RUN/checkpoints/F)
    checkpoint_path, checkpoint = resume_checkpoint(checkpointer, resume, device)
    session = open_session(family, config, device, checkpoint, checkpoint_path)
    try:
        # Built and checked: only now does the run directory change.
        open_run_dir(session, run_dir, checkpointer, logger_factory)
        try:
            (family.loop or off_policy)(session)
            if session.finish is not None:
                session.finish(session, run_dir)
        finally:
            session.logger.close()
    finally:
        close_session(session)
    return run_dir


def check_batchable(family: Family, configs: list[RunConfig]) -> None:
    """ConfigError (one line) unless ``configs`` can train seed-batched: a family with a seed-stacked
    update and the default off-policy session and loop, uniform replay, and configs that differ only
    in ``train.seed`` (each seed once)."""
    algo = configs[0].algo
    if family.stack_seeds is None or family.loop is not None or family.build_session is not None:
        raise ConfigError(
            f"algo {algo} has no seed-batched update; --batched supports plain SAC (algo sac, "
            "agent.temperature learned or fixed)"
        )
    base = configs[0]
    if getattr(base.train, "prioritized", None) is not None:
        raise ConfigError("--batched does not support train.prioritized (seed-batched runs use uniform replay)")
    seeds = [c.train.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seed-batched runs need distinct seeds, got {seeds}")

    def without_seed(config: RunConfig) -> RunConfig:
        return replace(config, train=replace(config.train, seed=0))

    for config in configs[1:]:
        if without_seed(config) != without_seed(base):
            raise ConfigError("seed-batched runs must differ only in train.seed (one config, K seeds)")


def train_batched(family: Family, configs: list[RunConfig], run_dirs: list[Path], *, resume=False) -> list[Path]:
    """Train (or resume) K runs of one config that differ only in ``train.seed``, in one process, their
    updates stacked (``family.stack_seeds``; :mod:`agents.engine.batched`). Returns the run directories.

    Each run is built as :func:`train` builds one (its own env, buffer, collector, evaluator, logger,
    checkpointer, seeded with its own seed) and writes an ordinary run directory: ``evaluate.py`` and
    ``train.py --resume`` read it like any other. ``resume``: False, True (each run's newest usable
    checkpoint) or a list of K checkpoint paths; all K must then be at one step (CheckpointError).
    One progress bar for the batch: the first run's (the runs are in lockstep).
    """
    from agents.engine.batched import off_policy_batched

    configs, run_dirs = list(configs), [Path(d) for d in run_dirs]
    if not configs or len(configs) != len(run_dirs):
        raise ConfigError(f"seed-batched training needs one run directory per config ({len(configs)} configs)")
    check_batchable(family, configs)
    if family.check is not None:
        family.check(configs[0])
    cfg = configs[0].train
    device = torch.device(cfg.device)
    prepare_process(cfg)
    resumes = list(resume) if isinstance(resume, (list, tuple)) else [resume] * len(configs)
    checkpointers = [Checkpointer(d, keep=cfg.keep_checkpoints) for d in run_dirs]
    sessions: list[Session] = []
    try:
        # Built and restored in seed order: the global RNG ends as the last run's checkpoint left it,
        # which is where the lockstep loop stood when it saved that checkpoint (its last act that step).
        for config, checkpointer, chosen in zip(configs, checkpointers, resumes):
            path, checkpoint = resume_checkpoint(checkpointer, chosen, device)
            sessions.append(open_session(family, config, device, checkpoint, path))
        steps = sorted({s.step for s in sessions})
        if len(steps) > 1:
            raise CheckpointError(f"seed-batched runs must resume from one step; their checkpoints are at {steps}")
        try:
            stack = family.stack_seeds([s.agent for s in sessions])
        except ValueError as e:
            raise ConfigError(str(e)) from None
        try:
            for k, (session, run_dir, checkpointer) in enumerate(zip(sessions, run_dirs, checkpointers)):
                open_run_dir(session, run_dir, checkpointer, progress=cfg.progress and k == 0)
            if sessions[0].logger.bar is not None:
                sessions[0].logger.bar.set_description(f"{len(sessions)} seeds")
            off_policy_batched(sessions, stack)
        finally:
            for session in sessions:
                if session.logger is not None:
                    session.logger.close()
    finally:
        for session in sessions:
            close_session(session)
    return run_dirs


def make_run_env(config: RunConfig, device, wrappers: tuple = ()) -> Any:
    """The run's training env (``env.num_envs`` copies seeded with ``train.seed``), with ``wrappers``
    applied before the config's own (a family's training-only wrappers, e.g. QARL's adversary force)."""
    return make_vec_env(
        config.env.id,
        config.env.num_envs,
        device=device,
        seed=config.train.seed,
        vectorization=config.env.vectorization,
        options=config.env.options,
        wrappers=[*wrappers, *config.env.wrappers],
    )


@dataclass
class LoadedRun:
    """A trained agent with what is needed to use it: its config, specs, step and action mapping."""

    config: RunConfig
    agent: Any
    obs_spec: Any
    action_spec: Any
    step: int
    device: str
    checkpoint: Path
    action_center: np.ndarray | None = None  # Box actions: native = center + scale * clip(canonical, -1, 1)
    action_scale: np.ndarray | None = None
    family: Family | None = None  # how the run was trained: evaluation reads its hooks from here

    @property
    def multi_agent(self) -> bool:
        return bool(self.family is not None and self.family.multi_agent)

    def to_native(self, action: torch.Tensor) -> np.ndarray:
        """The agent's action tensor in the env's own units (as the training env maps it), as numpy."""
        array = action.detach().cpu().numpy()
        if self.action_center is None:
            return array
        return self.action_center + self.action_scale * np.minimum(np.maximum(array, -1.0), 1.0)


def load_run(family: Family, run_dir: Path, checkpoint: Path | None = None, device: str = "cpu") -> LoadedRun:
    """The agent of a run directory's newest (or given) checkpoint, with its specs and action mapping.

    ``family`` is the run's family (``agents.family_of(config.algo)``; the engine does not read the
    registry). Raises ConfigError / CheckpointError naming the file and the reason.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    path, data = Checkpointer(run_dir).load(checkpoint, map_location=device)  # a chosen file must load
    probe = make_vec_env(
        config.env.id, 1, device=device, seed=0, options=config.env.options, wrappers=config.env.wrappers
    )
    obs_spec, action_spec = probe.obs_spec, probe.action_spec
    probe.close()
    center = scale = None
    if isinstance(action_spec, BoxSpec) and action_spec.native_low is not None:
        low, high = np.asarray(action_spec.native_low), np.asarray(action_spec.native_high)
        center, scale = ((high + low) / 2).reshape(action_spec.shape), ((high - low) / 2).reshape(action_spec.shape)
    agent = family.build_agent(config, obs_spec, action_spec, torch.device(device))
    try:
        agent.load_state_dict(data["agent"])
    except (KeyError, RuntimeError, ValueError) as e:
        reason = error_reason(e)
        raise CheckpointError(f"{path}: does not fit the agent of {run_dir / CONFIG_FILE} ({reason})") from None
    return LoadedRun(config, agent, obs_spec, action_spec, int(data["step"]), device, path, center, scale, family)
