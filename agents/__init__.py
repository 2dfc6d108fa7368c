"""regula's agents: the algorithm registry, every named preset, and the Python API.

The Python API (:mod:`agents.api`, imported on first use): ``agents.train(preset, overrides)`` ->
run directory, ``agents.load_policy(run_dir)`` -> :class:`agents.api.Policy` with SB3-style
``predict``, ``agents.evaluate(policy, env_id, episodes)`` -> the evaluation summary.

Each algorithm module defines ``PRESETS: dict[str, RunConfig]`` and ``build(config, obs_spec,
action_spec, device) -> Agent``; it may define ``run(config, run_dir, resume) -> Path`` when it needs
a loop other than the shared off-policy one. Modules are imported on first use so that ``--help``
stays fast and one family's optional dependency does not break another.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from agents.core.config import ConfigError, RunConfig

__version__ = "0.1.0"

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
    "pin": "agents.prompt",
    "rlprompt": "agents.prompt",
}


def algorithm_module(name: str) -> ModuleType:
    """The module implementing algorithm ``name``; ConfigError naming the closest on a typo."""
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, list(ALGORITHMS), n=3, cutoff=0.4)
        raise ConfigError(f"unknown algorithm {name!r}; closest: {', '.join(close) or ', '.join(sorted(ALGORITHMS))}")
    return importlib.import_module(ALGORITHMS[name])


def all_presets() -> dict[str, RunConfig]:
    """Every preset of every registered algorithm, by name."""
    out: dict[str, RunConfig] = {}
    for module_name in dict.fromkeys(ALGORITHMS.values()):
        out.update(importlib.import_module(module_name).PRESETS)
    return dict(sorted(out.items()))


def get_preset(name: str) -> RunConfig:
    """The preset ``name``; ConfigError naming the closest valid presets otherwise."""
    presets = all_presets()
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=3, cutoff=0.4)
        hint = ", ".join(close) if close else "run train.py --list"
        raise ConfigError(f"unknown preset {name!r}; closest: {hint}")
    return presets[name]


_API = ("Policy", "load_policy", "train", "evaluate")


def __getattr__(name: str):
    """The Python API names, imported on first use (``import agents`` stays light for ``--help``)."""
    if name in _API:
        from agents import api

        return getattr(api, name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
