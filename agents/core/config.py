"""Configs: frozen dataclasses, named presets, typed ``key=value`` overrides, JSON round trip.

A run is described by one :class:`RunConfig`: the algorithm name, an :class:`EnvConfig`, the loop's
config (``train``) and the agent's config (``agent``). Each field carries a one-line doc in
``field(metadata={"doc": ...})``; that text is what ``train.py --show`` and ``--help`` print.

Overrides are ``section.key=value`` (``agent.lr=1e-3``) or a bare ``key=value``
(``total_steps=3000``), which sets every field of that name (``seed=3`` seeds both the loop and an
agent that has its own seed). Values are parsed by the field's type; dict and
list fields take JSON, and ``env.options.NAME=VALUE`` sets one entry of the env's option dict.
Unknown keys fail with :class:`ConfigError` naming the closest valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A bad preset, key or value. The message is one line, fit to show a user as it is."""


def doc(text: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING):
    """A dataclass field with a one-line doc (shown by ``--show`` and ``--help``)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class EnvConfig:
    """Which environment to build and how many copies to step at once."""

    id: str = doc("gymnasium id (Pendulum-v1, Hopper-v5), 'dmc:domain-task', or a suite env name", "Pendulum-v1")
    num_envs: int = doc("environments stepped together per collector step", 1)
    vectorization: str = doc("gymnasium vector mode: 'sync' (one process) or 'async' (one process per env)", "sync")
    options: dict = doc("extra keyword arguments for the env constructor (JSON)", factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """A whole run: algorithm, environment, loop settings and agent settings."""

    algo: str = doc("algorithm name in the registry", "sac")
    env: EnvConfig = doc("environment settings", factory=EnvConfig)
    train: Any = doc("loop settings (the algorithm's loop config dataclass)", None)
    agent: Any = doc("agent settings (the algorithm's config dataclass)", None)


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


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Return ``cfg`` with each ``key=value`` applied; ConfigError on an unknown key or bad value."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        fields = flat_fields(cfg)
        full = key if key in fields else None
        if full is None:
            # env.options.NAME=VALUE: one entry of a dict field.
            parent, _, leaf = key.rpartition(".")
            if parent in fields and isinstance(fields[parent][0], dict):
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError:
                    value = raw
                cfg = _replace_path(cfg, parent.split("."), {**fields[parent][0], leaf: value})
                continue
            matches = [k for k in fields if k.rsplit(".", 1)[-1] == key]
            if not matches:
                raise ConfigError(f"unknown key {key!r}; closest: {_closest(key, list(fields))}")
            # A bare key sets every field of that name (seed=3 seeds both the loop and the agent).
            for full in matches:
                cfg = _replace_path(cfg, full.split("."), _parse_value(raw, fields[full][2], full))
            continue
        _, _, typ = fields[full]
        cfg = _replace_path(cfg, full.split("."), _parse_value(raw, typ, full))
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


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Inverse of :func:`to_dict`. Unknown keys raise ConfigError (a config from another version)."""
    import importlib

    hints = _resolved_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "__type__":
            continue
        if key not in names:
            raise ConfigError(f"config key {key!r} is not a field of {cls.__name__}")
        if isinstance(value, dict) and "__type__" in value:
            module, qual = value["__type__"].split(":")
            sub = getattr(importlib.import_module(module), qual)
            kwargs[key] = from_dict(sub, value)
        elif typing.get_origin(hints.get(key)) is tuple or hints.get(key) is tuple:
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def describe(cfg: Any) -> str:
    """Human table of every key, its value and its doc (``train.py --show``)."""
    rows = flat_fields(cfg)
    width = max(len(k) for k in rows)
    lines = []
    for key, (value, text, _) in rows.items():
        shown = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
        lines.append(f"  {key:<{width}}  {shown:<14}  {text}")
    return "\n".join(lines)
