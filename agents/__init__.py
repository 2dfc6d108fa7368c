"""regula's agents: the registry's calls, every named preset, and the Python API.

The Python API (:mod:`agents.api`, imported on first use): ``agents.train(preset, overrides)`` ->
run directory, ``agents.load_policy(run_dir)`` -> :class:`agents.api.Policy` with SB3-style
``predict``, ``agents.evaluate(policy, env_id, episodes)`` -> the evaluation summary.

The registry (:mod:`agents.registry`): ``get_preset``, ``all_presets``, ``family_of``, ``families``,
``run_training(config, run_dir)`` and ``load_run(run_dir)``, re-exported here.

The packages are rooms, each importing only the ones below it (``tests/test_architecture.py`` keeps it
so): ``agents.engine`` (the shared engine), ``agents.robustness`` (perturbations, attacks, evaluation
conditions), the families (``sac``, ``dqn``, ``erc``, ``maddpg``, ``qarl``, ``marl``, ``prompt``), the
registry, ``agents.experiments`` (sweeps, search, aggregation), and this facade with the API.
"""

from __future__ import annotations

from agents.registry import (
    ALGORITHMS,
    algorithm_module,
    all_presets,
    families,
    family_of,
    get_preset,
    load_run,
    run_training,
)

__version__ = "0.1.0"

_API = ("Policy", "load_policy", "train", "evaluate")


def __getattr__(name: str):
    """The Python API names, imported on first use (``import agents`` stays light for ``--help``)."""
    if name in _API:
        from agents import api

        return getattr(api, name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


__all__ = [
    "ALGORITHMS",
    "Policy",
    "algorithm_module",
    "all_presets",
    "evaluate",
    "families",
    "family_of",
    "get_preset",
    "load_policy",
    "load_run",
    "run_training",
    "train",
]
