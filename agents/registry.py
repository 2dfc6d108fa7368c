"""The registry: algorithm name -> family module, every named preset, and the two calls that resolve a
run's family for the runner.

Each family module defines one ``FAMILY`` (:class:`agents.engine.family.Family`: its presets, how to
build its agent and session, its loop, its evaluation hooks); :data:`ALGORITHMS` maps algorithm names
to those modules. Nothing else is looked up on a module. Modules are imported on first use so that
``--help`` stays fast and one family's optional dependency does not break another.

``run_training(config, run_dir)``, ``run_training_batched(configs, run_dirs)`` (K seeds in one process)
and ``load_run(run_dir)`` resolve the run's family and call the runner (:mod:`agents.engine.run`),
which never reads the registry itself.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from agents.engine.config import ConfigError, RunConfig
from agents.engine.family import Family

# algorithm name -> module that implements it (several names may share a module).
ALGORITHMS: dict[str, str] = {
    "sac": "agents.sac",
    "dqn": "agents.dqn",
    "erc": "agents.erc",
    "erc-dqn": "agents.erc",
    "vdn": "agents.marl",
    "qmix": "agents.marl",
    "ddn": "agents.marl",
    "dmix": "agents.marl",
    "roe": "agents.marl",
    "qarl": "agents.qarl",
    "rarl": "agents.qarl",
    "sac-adv0": "agents.qarl",
    "maddpg": "agents.maddpg",
    "ernie": "agents.maddpg",
    "qcombo": "agents.traffic",
    "ernie-qcombo": "agents.traffic",
    "pin": "agents.prompt",
    "rlprompt": "agents.prompt",
}


def algorithm_module(name: str) -> ModuleType:
    """The module implementing algorithm ``name``; ConfigError naming the closest on a typo."""
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, list(ALGORITHMS), n=3, cutoff=0.4)
        raise ConfigError(f"unknown algorithm {name!r}; closest: {', '.join(close) or ', '.join(sorted(ALGORITHMS))}")
    return importlib.import_module(ALGORITHMS[name])


def family_of(name: str) -> Family:
    """The :class:`Family` of algorithm ``name``; ConfigError naming the closest on a typo."""
    return algorithm_module(name).FAMILY


def families() -> list[Family]:
    """Every registered family, once each, in registry order."""
    return [importlib.import_module(module).FAMILY for module in dict.fromkeys(ALGORITHMS.values())]


def all_presets() -> dict[str, RunConfig]:
    """Every preset of every registered algorithm, by name."""
    out: dict[str, RunConfig] = {}
    for family in families():
        out.update(family.presets)
    return dict(sorted(out.items()))


def run_training(config: RunConfig, run_dir, *, resume=False, logger_factory=None):
    """Train (or resume) ``config`` in ``run_dir`` with its family, through the one runner (``resume``:
    True for the newest usable checkpoint, or the path of a chosen checkpoint file)."""
    from agents.engine.run import train

    return train(family_of(config.algo), config, run_dir, resume=resume, logger_factory=logger_factory)


def run_training_batched(configs, run_dirs, *, resume=False):
    """Train (or resume) K runs of one config that differ only in ``train.seed`` in one process, their
    updates stacked (:func:`agents.engine.run.train_batched`; the family must offer ``stack_seeds``)."""
    from agents.engine.run import train_batched

    configs = list(configs)
    if not configs:
        raise ConfigError("seed-batched training needs at least one config")
    return train_batched(family_of(configs[0].algo), configs, run_dirs, resume=resume)


def load_run(run_dir, checkpoint=None, device: str = "cpu"):
    """The trained agent of ``run_dir`` (:class:`agents.engine.run.LoadedRun`), with its family."""
    from pathlib import Path

    from agents.engine.run import load_run as load
    from agents.engine.run import read_config

    return load(family_of(read_config(Path(run_dir)).algo), run_dir, checkpoint, device)


def get_preset(name: str) -> RunConfig:
    """The preset ``name``; ConfigError naming the closest valid presets otherwise."""
    presets = all_presets()
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=3, cutoff=0.4)
        hint = ", ".join(close) if close else "run train.py --list"
        raise ConfigError(f"unknown preset {name!r}; closest: {hint}")
    return presets[name]
