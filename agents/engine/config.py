"""Configs: frozen dataclasses, named presets, typed ``key=value`` overrides, range checks, JSON round trip.

A run is described by one :class:`RunConfig`: the algorithm name, an :class:`EnvConfig`, the loop's
config (``train``, a :class:`LoopConfig`) and the agent's config (``agent``, an :class:`AgentConfig`).
Each field carries a one-line doc and, for numbers and choices, its valid values, all given through
:func:`doc`; that text is what ``train.py --show`` and ``--help`` print, and :func:`validate` checks
every value against it when a config is resolved (overrides applied, or read back from a run).

Overrides are ``section.key=value`` (``agent.lr=1e-3``) or a bare ``key=value``
(``total_steps=3000``), which sets every field of that name. Values are parsed by the field's type;
dict and list fields take JSON, and ``env.options.NAME=VALUE`` sets one entry of the env's option
dict. Unknown keys fail with :class:`ConfigError` naming the closest valid keys; a renamed key
(a class's ``RENAMED`` table) still works and prints a one-line notice naming the new key.

One vocabulary for every loop (units in the names where they differ): ``total_steps``,
``eval_every``, ``log_every`` and ``checkpoint_every`` count env steps in every loop; replay sizes say
their unit (``buffer_size`` / ``batch_size`` in transitions, ``buffer_episodes`` / ``batch_episodes``
in episodes); the run's ``seed`` and ``device`` live in ``train`` only and are passed down.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


class ConfigError(ValueError):
    """A bad preset, key or value. The message is one line, fit to show a user as it is."""


def error_reason(error: BaseException, limit: int = 240) -> str:
    """One line for the user from an exception whose message may span lines (``load_state_dict``'s
    heading, then one line per problem): the first specific line, with how many more there are. A
    line longer than ``limit`` is cut after a whole list item (``, ...``), never mid-word."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    details = lines[1:] if len(lines) > 1 and lines[0].endswith(":") else lines
    first = details[0]
    if len(first) > limit:
        cut = first.rfind(", ", 0, limit)
        cut = cut if cut > 0 else first.rfind(" ", 0, limit)
        first = first[: cut if cut > 0 else limit].rstrip(" ,") + ", ..."
    return first + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")


def doc(
    text: str,
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    check: Callable[[Any], str | None] | None = None,
    min_items: int | None = None,
):
    """A dataclass field with a one-line doc (shown by ``--show`` and ``--help``) and its valid values.

    ``ge`` / ``gt`` / ``le`` / ``lt`` bound a number (every element of a tuple of numbers);
    ``choices`` lists the valid values of a choice field; ``check(value) -> None or a reason`` is a
    custom rule (e.g. a torch device string); ``min_items`` is the shortest valid length of a tuple
    or list (an actor needs one hidden layer). :func:`validate` enforces them.
    """
    metadata = {"doc": text, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "check": check}
    if min_items is not None:
        metadata["min_items"] = min_items
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_device(value: str) -> str | None:
    """None when ``value`` names a torch device (cpu, cuda, cuda:1, mps), else the reason."""
    import torch

    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        return "a torch device such as cpu, cuda, cuda:1 or mps"
    return None


def check_finite(value: float) -> str | None:
    """None for a finite number (any sign), else the reason: for numbers with no natural bounds."""
    return None if math.isfinite(value) else "a finite number"


def finite_float(text: str) -> float:
    """A command-line float option's ``type``: a finite number, else ``argparse.ArgumentTypeError`` (inf
    and nan are refused like an out-of-range config value)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is out of range; valid: a finite number")
    return value


def command_line_parser(**kwargs: Any):
    """An ``argparse.ArgumentParser`` whose errors are one line (``PROG: error: MESSAGE``, exit status 2,
    no usage block) and whose ``type=float`` options take finite numbers only (:func:`finite_float`)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):
            self.exit(2, f"{self.prog}: error: {message}\n")

    parser = Parser(**kwargs)
    parser.register("type", float, finite_float)  # argparse looks every ``type`` up in this registry
    return parser


@dataclass(frozen=True)
class Config:
    """Base of every config section. ``RENAMED`` maps an old key of this section to its new name;
    ``RETIRED`` maps a key that no longer exists to what decides it now (an old config.json's value is
    dropped; setting it on the command line is a one-line error saying so)."""

    RENAMED: ClassVar[dict[str, str]] = {}
    RETIRED: ClassVar[dict[str, str]] = {}


@dataclass(frozen=True)
class AgentConfig(Config):
    """Base of every algorithm's agent config (the run's seed and device are not in it: see LoopConfig)."""


MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's values


@dataclass(frozen=True)
class LoopConfig(Config):
    """The settings every training loop shares; every interval counts env steps (transitions)."""

    total_steps: int = doc("env transitions to collect in all (env steps)", 100_000, ge=1)
    eval_every: int = doc("evaluate every this many env steps (0: only at the end)", 10_000, ge=0)
    eval_episodes: int = doc("greedy episodes per evaluation", 10, ge=1)
    log_every: int = doc("write training metrics every this many env steps", 1_000, ge=1)
    checkpoint_every: int = doc("save a checkpoint every this many env steps (0: only at the end)", 10_000, ge=0)
    keep_checkpoints: int = doc("how many recent checkpoints to keep", 3, ge=1)
    seed: int = doc("the run's seed: envs, network weights, replay sampling and exploration", 0, ge=0)
    device: str = doc("torch device of the whole run: cpu, cuda, cuda:1, mps", "cpu", check=check_device)
    threads: int = doc(
        "torch CPU threads (0: auto = 1, which stays fast beside other jobs; more only pays alone on "
        "wide networks, see docs/benchmarks.md)",
        0,
        ge=0,
    )
    flush_denormal: bool = doc(
        "CPU: treat subnormal floats (below 1.2e-38) as zero, as JAX and TensorFlow do on CPU; arithmetic "
        "on them is slow in hardware (SAC 256x256: 10 % faster end to end, see docs/benchmarks.md)",
        True,
    )
    matmul_precision: str = doc(
        "float32 matrix products (torch.set_float32_matmul_precision): highest (plain float32, torch's "
        "default), high (TF32 on GPUs that have it), medium (on CPU through oneDNN, which may multiply in "
        "bfloat16 on CPUs with AMX; on AVX512-BF16 CPUs without AMX it stays float32 and ran the 5-seed "
        "stacked SAC update 1.5x faster than MKL here, see docs/benchmarks.md)",
        "highest",
        choices=MATMUL_PRECISIONS,
    )
    progress: bool = doc("show a progress bar", True)
    RENAMED: ClassVar[dict[str, str]] = {"eval_interval": "eval_every", "log_interval": "log_every"}


@dataclass(frozen=True)
class EnvConfig(Config):
    """Which environment to build and how many copies to step at once."""

    id: str = doc("gymnasium id (Pendulum-v1, Hopper-v5), 'dmc:domain-task', or a suite env name", "Pendulum-v1")
    num_envs: int = doc("environments stepped together per collector step", 1, ge=1)
    vectorization: str = doc(
        "gymnasium vector mode: 'sync' (one process) or 'async' (one process per env)",
        "sync",
        choices=("sync", "async"),
    )
    options: dict = doc("extra keyword arguments for the env constructor (JSON)", factory=dict)
    wrappers: list = doc(
        'env wrappers by name, applied in order: [{"name": NAME, ...options}] (JSON; see envs.WRAPPERS)',
        factory=list,
    )


@dataclass(frozen=True)
class RunConfig:
    """A whole run: algorithm, environment, loop settings and agent settings."""

    algo: str = doc("algorithm name in the registry", "sac")
    env: EnvConfig = doc("environment settings", factory=EnvConfig)
    train: LoopConfig = doc("loop settings (the algorithm's loop config)", factory=LoopConfig)
    agent: AgentConfig = doc("agent settings (the algorithm's config)", factory=AgentConfig)


# --------------------------------------------------------------------------------------------------
# Flattening, overrides


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flat_fields(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, str, Any]]:
    """``{"section.key": (value, doc, type)}`` for every leaf field of a nested config."""
    out: dict[str, tuple[Any, str, Any]] = {}
    hints = _resolved_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flat_fields(value, name + "."))
        else:
            out[name] = (value, f.metadata.get("doc", ""), hints.get(f.name, Any))
    return out


def field_rules(cfg: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    """``{"section.key": metadata}`` (doc, bounds, choices, check) for every leaf field."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(field_rules(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = dict(f.metadata)
    return out


def _target(entry: str | tuple[str, dict]) -> tuple[str, dict | None]:
    """A ``RENAMED`` entry: a new name, or ``(new name, {old value: new value})`` when the type changed too."""
    return (entry, None) if isinstance(entry, str) else entry


def renamed_keys(cfg: Any, prefix: str = "") -> dict[str, tuple[str, dict | None]]:
    """``{"old.full.key": ("new.full.key", value map or None)}`` from every section's ``RENAMED`` table."""
    out: dict[str, tuple[str, dict | None]] = {}
    for old, entry in getattr(type(cfg), "RENAMED", {}).items():
        new, values = _target(entry)
        out[f"{prefix}{old}"] = (new if "." in new else f"{prefix}{new}", values)  # dotted: another section
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(renamed_keys(value, f"{prefix}{f.name}."))
    return out


def retired_keys(cfg: Any, prefix: str = "") -> dict[str, str]:
    """``{"full.key": what decides it now}`` from every section's ``RETIRED`` table."""
    out = {f"{prefix}{key}": reason for key, reason in getattr(type(cfg), "RETIRED", {}).items()}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(retired_keys(value, f"{prefix}{f.name}."))
    return out


def notice(text: str) -> None:
    """A one-line note for the user on stderr (renamed keys and similar)."""
    print(f"note: {text}", file=sys.stderr)


def _parse_value(raw: str, typ: Any, key: str) -> Any:
    """Parse ``raw`` into ``typ``; raise ConfigError naming the key and the expected type."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse_value(raw, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: cannot parse {raw!r}")
    if typ is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} expects true or false, got {raw!r}")
    if typ is int:
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            pass
        try:  # accept 1e5 and 2.0, refuse 0.5
            number = float(raw)
        except ValueError:
            number = float("nan")
        if number.is_integer():
            return int(number)
        raise ConfigError(f"{key} expects an integer, got {raw!r}")
    if typ is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{key} expects a number, got {raw!r}") from None
    if typ is str:
        return raw
    if typ in (dict, list, tuple) or origin in (dict, list, tuple):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"{key} expects JSON, got {raw!r}") from None
        want = origin or typ
        if want is tuple and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, want):
            raise ConfigError(f"{key} expects a JSON {want.__name__}, got {raw!r}")
        return value
    # Any or something unusual: take JSON when it parses, else the string.
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _closest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    if not close:
        tail = key.rsplit(".", 1)[-1]
        close = [v for v in valid if v.rsplit(".", 1)[-1].startswith(tail[:3])][:3]
    return ", ".join(close) if close else "see --show for the valid keys"


def _replace_path(cfg: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    if not rest:
        return dataclasses.replace(cfg, **{head: value})
    return dataclasses.replace(cfg, **{head: _replace_path(getattr(cfg, head), rest, value)})


def _apply_renamed(cfg: Any, key: str, raw: str) -> Any | None:
    """Apply ``key=raw`` where ``key`` (full or bare) is an old name; None when it is not one."""
    renamed = renamed_keys(cfg)
    targets = [renamed[key]] if key in renamed else [t for old, t in renamed.items() if old.rsplit(".", 1)[-1] == key]
    if not targets:
        return None
    fields = flat_fields(cfg)
    seen = set()
    for new, values in targets:
        if new in seen:
            continue
        seen.add(new)
        notice(f"{key!r} is renamed {new!r}; please use the new name")
        if values is None:
            value = _parse_value(raw, fields[new][2], new)
        else:
            old = _parse_value(raw, type(next(iter(values))), key)
            value = values[old]
        cfg = _replace_path(cfg, new.split("."), value)
    return cfg


def _section_hint(cfg: Any, key: str) -> Any | None:
    """The type hint of the field ``key`` when it holds a section (a nested config) that may also be
    set whole (its hint admits None or another type, as ``train.prioritized``); else None."""
    *path, name = key.split(".")
    for part in path:
        cfg = getattr(cfg, part, None)
        if not dataclasses.is_dataclass(cfg):
            return None
    if not dataclasses.is_dataclass(cfg) or not dataclasses.is_dataclass(getattr(cfg, name, None)):
        return None
    hint = _resolved_hints(type(cfg)).get(name)
    return hint if typing.get_origin(hint) in (typing.Union, types.UnionType) else None


def apply_overrides(cfg: Any, overrides: list[str], *, check: bool = True) -> Any:
    """Return ``cfg`` with each ``key=value`` applied, then :func:`validate`-d.

    ConfigError on an unknown key, an unparsable value or a value out of its range.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        fields = flat_fields(cfg)
        if key in fields:
            cfg = _replace_path(cfg, key.split("."), _parse_value(raw, fields[key][2], key))
            continue
        whole = _section_hint(cfg, key)
        if whole is not None:  # a field that holds a section now, set whole (train.prioritized=null)
            cfg = _replace_path(cfg, key.split("."), _parse_value(raw, whole, key))
            continue
        # env.options.NAME=VALUE: one entry of a dict field.
        parent, _, leaf = key.rpartition(".")
        if parent in fields and isinstance(fields[parent][0], dict):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            cfg = _replace_path(cfg, parent.split("."), {**fields[parent][0], leaf: value})
            continue
        # A bare key sets every field of that name; a renamed key sets its new field(s).
        matches = [k for k in fields if k.rsplit(".", 1)[-1] == key]
        if not matches:
            renamed = _apply_renamed(cfg, key, raw)
            if renamed is None:
                retired = retired_keys(cfg)
                found = retired.get(key) or next((r for k, r in retired.items() if k.rsplit(".", 1)[-1] == key), None)
                if found is not None:
                    raise ConfigError(f"{key} is no longer a setting: {found}")
                raise ConfigError(f"unknown key {key!r}; closest: {_closest(key, list(fields))}")
            cfg = renamed
        for full in matches:
            cfg = _replace_path(cfg, full.split("."), _parse_value(raw, fields[full][2], full))
    if check:
        validate(cfg)
    return cfg


# --------------------------------------------------------------------------------------------------
# Validation


def _bound_reason(rules: dict[str, Any]) -> str:
    parts = []
    for name, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if rules.get(name) is not None:
            parts.append(f"{symbol} {rules[name]:g}")
    if rules.get("min_items"):  # a list: its length, then the bounds of each entry
        count = rules["min_items"]
        return f"at least {count} item{'s' if count > 1 else ''}" + (", each " + " and ".join(parts) if parts else "")
    return " and ".join(parts)


def _out_of_bounds(value: float, rules: dict[str, Any]) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return True
    return (
        (rules.get("ge") is not None and value < rules["ge"])
        or (rules.get("gt") is not None and value <= rules["gt"])
        or (rules.get("le") is not None and value > rules["le"])
        or (rules.get("lt") is not None and value >= rules["lt"])
    )


def validate(cfg: Any) -> None:
    """Check every field against its :func:`doc` rules; ConfigError naming key, value and what is valid."""
    for key, rules in field_rules(cfg).items():
        value = _get(cfg, key)
        if value is None:
            continue
        choices = rules.get("choices")
        if choices is not None and value not in choices:
            valid = ", ".join(map(str, choices))
            raise ConfigError(f"{key}={value!r} is not valid; choose from {valid}")
        numbers = value if isinstance(value, (tuple, list)) else (value,)
        bounded = any(rules.get(name) is not None for name in ("ge", "gt", "le", "lt"))
        if rules.get("min_items") and isinstance(value, (tuple, list)) and len(value) < rules["min_items"]:
            raise ConfigError(f"{key}={json.dumps(value)} is out of range; valid: {_bound_reason(rules)}")
        if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):  # inf / nan: never a setting
            shown = json.dumps(value) if isinstance(value, (tuple, list)) else repr(value)
            valid = "a finite number" + (f" {_bound_reason(rules)}" if bounded else "")
            raise ConfigError(f"{key}={shown} is out of range; valid: {valid}")
        if bounded:
            for number in numbers:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    continue
                if _out_of_bounds(number, rules):
                    shown = json.dumps(value) if isinstance(value, (tuple, list)) else repr(value)
                    raise ConfigError(f"{key}={shown} is out of range; valid: {_bound_reason(rules)}")
        if rules.get("check") is not None:
            reason = rules["check"](value)
            if reason:
                raise ConfigError(f"{key}={value!r} is not valid; expected {reason}")
    for section in _sections(cfg):  # cross-field rules: a section's own ``check()`` raises ConfigError
        hook = getattr(section, "check", None)
        if callable(hook):
            hook()


def _sections(cfg: Any):
    yield cfg
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from _sections(value)


def _get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


# --------------------------------------------------------------------------------------------------
# JSON round trip


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (JSON-ready) of a config, with ``__type__`` markers for the sections."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = {"__type__": f"{type(value).__module__}:{type(value).__qualname__}", **to_dict(value)}
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


# Sections whose class moved: old "module:qualname" -> new one (config.json of earlier runs).
MOVED_TYPES: dict[str, str] = {"agents.marl.loop:EpisodicConfig": "agents.engine.loops:EpisodicConfig"}
# Modules that moved: old module -> new module (the qualname stays). agents/core/ became the engine
# (agents/engine/), the robustness room (agents/robustness/) and the experiments room (agents/experiments/).
MOVED_MODULES: dict[str, str] = {
    "agents.qarl_teacher": "agents.qarl.teacher",
    "agents.core.agent": "agents.engine.agent",
    "agents.core.buffers": "agents.engine.buffers",
    "agents.core.collect": "agents.engine.collect",
    "agents.core.config": "agents.engine.config",
    "agents.core.checkpoint": "agents.engine.checkpoint",
    "agents.core.logger": "agents.engine.logger",
    "agents.core.nets": "agents.engine.nets",
    "agents.core.losses": "agents.engine.losses",
    "agents.core.schedules": "agents.engine.schedules",
    "agents.core.prioritized": "agents.engine.prioritized",
    "agents.core.loops": "agents.engine.loops",
    "agents.core.episodes": "agents.engine.episodes",
    "agents.core.family": "agents.engine.family",
    "agents.core.run": "agents.engine.run",
    "agents.core.evaluation": "agents.engine.evaluation",
    "agents.core.robust": "agents.robustness.robust",
    "agents.core.lipschitz": "agents.robustness.lipschitz",
    "agents.core.conditions": "agents.robustness.conditions",
    "agents.core.marl_robustness": "agents.robustness.multi_agent",
    "agents.core.plots": "agents.robustness.plots",
    "agents.core.sweep": "agents.experiments.sweep",
    "agents.core.aggregate": "agents.experiments.aggregate",
}


def section_class(type_name: str) -> type:
    """The config class a ``__type__`` marker names, following moved classes and modules."""
    import importlib

    module, qual = MOVED_TYPES.get(type_name, type_name).split(":")
    module = MOVED_MODULES.get(module, module)
    return getattr(importlib.import_module(module), qual)


def from_dict(cls: type, data: dict[str, Any], *, check: bool = True) -> Any:
    """Inverse of :func:`to_dict`; renamed keys are mapped with a notice, unknown keys raise ConfigError."""
    hints = _resolved_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    renamed = getattr(cls, "RENAMED", {})
    retired = getattr(cls, "RETIRED", {})
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "__type__" or (key not in names and key in retired):
            continue
        if key not in names and key in renamed:
            target, values = _target(renamed[key])
            if "." in target:  # moved to another section (the agent's seed / device): the run's own wins
                continue
            notice(f"{cls.__name__}: {key!r} is renamed {target!r}")
            key, value = target, value if values is None else values[value]
        if key not in names:
            raise ConfigError(f"config key {key!r} is not a field of {cls.__name__}")
        if isinstance(value, dict) and "__type__" in value:
            kwargs[key] = from_dict(section_class(value["__type__"]), value, check=False)
        elif typing.get_origin(hints.get(key)) is tuple or hints.get(key) is tuple:
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    out = cls(**kwargs)
    if check:
        validate(out)
    return out


def describe(cfg: Any) -> str:
    """Human table of every key, its value, its doc and its valid values (``train.py --show``)."""
    rows = flat_fields(cfg)
    rules = field_rules(cfg)
    width = max(len(k) for k in rows)
    lines = []
    for key, (value, text, _) in rows.items():
        shown = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
        valid = _bound_reason(rules[key])
        if rules[key].get("choices") is not None:
            valid = "|".join(map(str, rules[key]["choices"]))
        suffix = f" [{valid}]" if valid else ""
        lines.append(f"  {key:<{width}}  {shown:<14}  {text}{suffix}")
    return "\n".join(lines)
